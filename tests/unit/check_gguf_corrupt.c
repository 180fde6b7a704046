/* The GGUF reader on corrupt files: each row of the table below damages a small valid file (written by
 * the writer, every field's position known) by truncating it or patching a few bytes, or builds a file
 * byte by byte, and names the substrings its error message must hold: the byte offset, the key or tensor,
 * what was expected and what was found. ae_gguf_open_memory must fail with that message; some rows are
 * also written to disk and read through ae_gguf_open. Valid edge cases (nesting at the limit, zero-size
 * tensors, alignment 1) sit at the end, so the checks are known not to reject good files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ae_gguf.h"
#include "gguf_write.h"
#include "test_util.h"

/* ---- The base file -------------------------------------------------------------------------------- */

enum base_kv {
    KV_ARCH, KV_PAD, KV_STR, KV_U8, KV_I8, KV_U16, KV_I16, KV_U32, KV_I32, KV_F32, KV_BOOL, KV_U64, KV_I64, KV_F64,
    KV_ARR, KV_STRS, KV_NESTED, KV_ALIGN, N_KV
};

static const uint32_t arr_u32[] = {1, 2, 3};
static const uint8_t arr_u8[] = {1, 2};
static const uint8_t pad[256];
static const struct ae_gguf_value strs[] = {
    {.type = AE_GGUF_STRING, .str = {"ab", 2}},
    {.type = AE_GGUF_STRING, .str = {"c", 1}},
};
static const struct ae_gguf_value inner[] = {
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_U8, .n = 2, .data = arr_u8}},
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_U8, .n = 0, .data = arr_u8}},
};

static const struct {
    const char *key;
    struct ae_gguf_value v;
} base_kvs[N_KV] = {
    [KV_ARCH] = {"general.architecture", {.type = AE_GGUF_STRING, .str = {"test", 4}}},
    /* 256 bytes early in the file, so that truncating any later pair leaves enough bytes for the header's
     * key-value count to be plausible and the reader gets as far as the cut. */
    [KV_PAD] = {"k.pad", {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_U8, .n = 256, .data = pad}}},
    [KV_STR] = {"k.str", {.type = AE_GGUF_STRING, .str = {"hello", 5}}},
    [KV_U8] = {"k.u8", {.type = AE_GGUF_U8, .u = 7}},
    [KV_I8] = {"k.i8", {.type = AE_GGUF_I8, .i = -7}},
    [KV_U16] = {"k.u16", {.type = AE_GGUF_U16, .u = 700}},
    [KV_I16] = {"k.i16", {.type = AE_GGUF_I16, .i = -700}},
    [KV_U32] = {"k.u32", {.type = AE_GGUF_U32, .u = 70000}},
    [KV_I32] = {"k.i32", {.type = AE_GGUF_I32, .i = -70000}},
    [KV_F32] = {"k.f32", {.type = AE_GGUF_F32, .f = 0.5}},
    [KV_BOOL] = {"k.bool", {.type = AE_GGUF_BOOL, .b = true}},
    [KV_U64] = {"k.u64", {.type = AE_GGUF_U64, .u = UINT64_C(1) << 40}},
    [KV_I64] = {"k.i64", {.type = AE_GGUF_I64, .i = -(INT64_C(1) << 40)}},
    [KV_F64] = {"k.f64", {.type = AE_GGUF_F64, .f = 0.25}},
    [KV_ARR] = {"k.arr", {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_U32, .n = 3, .data = (const uint8_t *)arr_u32}}},
    [KV_STRS] = {"k.strs", {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_STRING, .n = 2,
                                                         .elems = (struct ae_gguf_value *)strs}}},
    [KV_NESTED] = {"k.nested", {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_ARRAY, .n = 2,
                                                             .elems = (struct ae_gguf_value *)inner}}},
    [KV_ALIGN] = {"general.alignment", {.type = AE_GGUF_U32, .u = 32}},
};

/* Two tensors: "t.a" f32 [4, 2] (32 bytes at data offset 0) and "t.b" q8_0 [32] (34 bytes at offset 32). */
enum { T_A, T_B, N_T };
static const struct {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[2];
    uint64_t n_bytes;
} base_tensors[N_T] = {
    [T_A] = {"t.a", AE_TYPE_F32, 2, {4, 2}, 32},
    [T_B] = {"t.b", AE_TYPE_Q8_0, 1, {32, 1}, 34},
};

/* Where each field of the base file lies, computed from the serialization rules (and checked against the
 * bytes the writer produced). */
static struct layout {
    uint64_t kv_len[N_KV], kv_key[N_KV], kv_type[N_KV], kv_val[N_KV];
    uint64_t t_len[N_T], t_name[N_T], t_ndims[N_T], t_ne[N_T], t_type[N_T], t_offset[N_T];
    uint64_t infos_end, data, size;
} L;

static uint64_t value_size(const struct ae_gguf_value *v)
{
    if (v->type == AE_GGUF_STRING)
        return 8 + v->str.len;
    if (v->type != AE_GGUF_ARRAY)
        return ae_gguf_type_size(v->type);
    uint64_t n = 12;
    if (v->arr.type == AE_GGUF_STRING || v->arr.type == AE_GGUF_ARRAY)
        for (uint64_t i = 0; i < v->arr.n; i++)
            n += value_size(&v->arr.elems[i]);
    else
        n += v->arr.n * ae_gguf_type_size(v->arr.type);
    return n;
}

static uint8_t *base_file(size_t *size)
{
    static uint8_t data[N_T][64];
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_error err;
    uint64_t pos = 24;
    for (int i = 0; i < N_KV; i++) {
        ae_gguf_writer_add_value(w, base_kvs[i].key, &base_kvs[i].v);
        L.kv_len[i] = pos;
        L.kv_key[i] = pos + 8;
        L.kv_type[i] = L.kv_key[i] + strlen(base_kvs[i].key);
        L.kv_val[i] = L.kv_type[i] + 4;
        pos = L.kv_val[i] + value_size(&base_kvs[i].v);
    }
    for (int i = 0; i < N_T; i++) {
        for (size_t k = 0; k < sizeof data[i]; k++)
            data[i][k] = (uint8_t)(i * 64 + k);
        ck_assert_int_eq(ae_gguf_writer_add_tensor(w, base_tensors[i].name, base_tensors[i].type,
                                                   base_tensors[i].n_dims, base_tensors[i].ne, data[i], &err), 0);
        L.t_len[i] = pos;
        L.t_name[i] = pos + 8;
        L.t_ndims[i] = L.t_name[i] + strlen(base_tensors[i].name);
        L.t_ne[i] = L.t_ndims[i] + 4;
        L.t_type[i] = L.t_ne[i] + 8 * base_tensors[i].n_dims;
        L.t_offset[i] = L.t_type[i] + 4;
        pos = L.t_offset[i] + 8;
    }
    L.infos_end = pos;
    L.data = (pos + 31) / 32 * 32;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ck_assert_int_eq(ae_gguf_writer_write(w, f, NULL, NULL, &err), 0);
    fclose(f);
    ae_gguf_writer_destroy(w);
    L.size = n;
    /* The layout is right: keys and names where it says, the file as long as it says. */
    for (int i = 0; i < N_KV; i++)
        ck_assert(memcmp(buf + L.kv_key[i], base_kvs[i].key, strlen(base_kvs[i].key)) == 0);
    for (int i = 0; i < N_T; i++)
        ck_assert(memcmp(buf + L.t_name[i], base_tensors[i].name, strlen(base_tensors[i].name)) == 0);
    ck_assert_uint_eq(n, L.data + 96);
    /* Rows below need padding between the tensor infos and the data section. */
    ck_assert_uint_gt(L.data, L.infos_end);
    *size = n;
    return (uint8_t *)buf;
}

/* ---- A byte builder for files the writer would not make --------------------------------------------- */

struct bytes {
    uint8_t p[4096];
    size_t n;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->n + n, sizeof b->p);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u32(struct bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct bytes *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_header(struct bytes *b, uint64_t n_tensors, uint64_t n_kv)
{
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

static void build_alignment_string(struct bytes *b)
{
    put_header(b, 0, 1);
    put_str(b, "general.alignment");
    put_u32(b, AE_GGUF_STRING);
    put_str(b, "32");
}

static void build_alignment_u64(struct bytes *b)
{
    put_header(b, 0, 1);
    put_str(b, "general.alignment");
    put_u32(b, AE_GGUF_U64);
    put_u64(b, 32);
}

/* A key holding arrays nested `levels` deep, the innermost an empty u8 array. */
static void build_nested(struct bytes *b, int levels)
{
    put_header(b, 0, 1);
    put_str(b, "deep");
    put_u32(b, AE_GGUF_ARRAY);
    for (int i = 1; i < levels; i++) {
        put_u32(b, AE_GGUF_ARRAY);
        put_u64(b, 1);
    }
    put_u32(b, AE_GGUF_U8);
    put_u64(b, 0);
}
static void build_nested_9(struct bytes *b) { build_nested(b, 9); }
static void build_nested_8(struct bytes *b) { build_nested(b, 8); }

/* Two tensors: "x" [8] f32 at offset 0 and "y" with the given shape, type and offset; alignment 32. */
static void build_tensors(struct bytes *b, uint32_t y_type, int64_t y_ne0, uint64_t y_offset, uint64_t data_bytes)
{
    put_header(b, 2, 0);
    put_str(b, "x");
    put_u32(b, 1);
    put_u64(b, 8);
    put_u32(b, AE_TYPE_F32);
    put_u64(b, 0);
    put_str(b, "y");
    put_u32(b, 1);
    put_u64(b, (uint64_t)y_ne0);
    put_u32(b, y_type);
    put_u64(b, y_offset);
    while (b->n % 32)
        put(b, "", 1);
    for (uint64_t i = 0; i < data_bytes; i++)
        put(b, "\x5a", 1);
}
/* A zero-size tensor may sit anywhere, even at another tensor's offset or at the very end. */
static void build_zero_size(struct bytes *b) { build_tensors(b, AE_TYPE_F32, 0, 0, 32); }
static void build_zero_size_at_end(struct bytes *b) { build_tensors(b, AE_TYPE_F32, 0, 32, 32); }
/* "y" [8] f32 at offset 32, right after x's 32 bytes: touching is not overlapping. */
static void build_adjacent(struct bytes *b) { build_tensors(b, AE_TYPE_F32, 8, 32, 64); }
/* "x" [8] at 0, "y" [16] at 0 too: y (64 bytes) covers x entirely. */
static void build_covering(struct bytes *b) { build_tensors(b, AE_TYPE_F32, 16, 0, 64); }

/* "big" [32] at 0 (128 bytes), a zero-size "z" at 0, and "c" [8] at 96, inside big: a zero-size tensor in
 * between must not hide the overlap. */
static void build_overlap_behind_empty(struct bytes *b)
{
    put_header(b, 3, 0);
    static const struct {
        const char *name;
        uint64_t ne, offset;
    } t[] = {{"big", 32, 0}, {"z", 0, 0}, {"c", 8, 96}};
    for (int i = 0; i < 3; i++) {
        put_str(b, t[i].name);
        put_u32(b, 1);
        put_u64(b, t[i].ne);
        put_u32(b, AE_TYPE_F32);
        put_u64(b, t[i].offset);
    }
    while (b->n % 32)
        put(b, "", 1);
    for (int i = 0; i < 128; i++)
        put(b, "\x11", 1);
}

/* ---- The table ---------------------------------------------------------------------------------------- */

enum op { OP_NONE, OP_TRUNC, OP_PUT8, OP_PUT32, OP_PUT64 };
enum at { AT_ABS, AT_KV_LEN, AT_KV_KEY, AT_KV_TYPE, AT_KV_VAL, AT_T_LEN, AT_T_NAME, AT_T_NDIMS, AT_T_NE,
          AT_T_TYPE, AT_T_OFFSET, AT_DATA };

struct patch {
    enum op op;
    enum at at;
    int idx;       /* key or tensor index */
    int64_t delta; /* added to the field's position */
    uint64_t value;
};

/* Expected substrings may hold {at} (the first patch's field position, without its delta), {kv} (the start
 * of its key-value pair), {ti} (the start of its tensor info) and {idx} (its key or tensor index). */
static const struct row {
    const char *what;
    void (*build)(struct bytes *b); /* instead of the base file (patches use AT_ABS then) */
    struct patch p[3];
    const char *m[3];
} rows[] = {
    /* The header. */
    {"empty file", NULL, {{OP_TRUNC, AT_ABS, 0, 0, 0}},
     {"byte 0: header: the file is empty: expected a GGUF header of 24 bytes, found 0 bytes"}},
    {"magic truncated", NULL, {{OP_TRUNC, AT_ABS, 0, 3, 0}},
     {"byte 0: header: file ends inside the magic: expected 4 bytes, found 3"}},
    {"bad magic", NULL, {{OP_PUT8, AT_ABS, 0, 3, 'X'}},
     {"byte 0: header: not a GGUF file", "expected the magic \"GGUF\" (47 47 55 46), found 47 47 55 58"}},
    {"version truncated", NULL, {{OP_TRUNC, AT_ABS, 0, 6, 0}},
     {"byte 4: header: file ends inside the version: expected 4 bytes, found 2"}},
    {"version 0", NULL, {{OP_PUT32, AT_ABS, 0, 4, 0}},
     {"byte 4: header: unsupported GGUF version: expected 2 or 3, found 0"}},
    {"version 1", NULL, {{OP_PUT32, AT_ABS, 0, 4, 1}},
     {"byte 4: header: GGUF version 1 is not supported", "expected version 2 or 3, found 1"}},
    {"version 4", NULL, {{OP_PUT32, AT_ABS, 0, 4, 4}},
     {"byte 4: header: unsupported GGUF version: expected 2 or 3, found 4"}},
    {"big-endian version 3", NULL, {{OP_PUT32, AT_ABS, 0, 4, 0x03000000}},
     {"byte 4: header: big-endian GGUF files are not supported", "found version 3 big-endian"}},
    {"big-endian version 2", NULL, {{OP_PUT32, AT_ABS, 0, 4, 0x02000000}},
     {"byte 4: header: big-endian", "found version 2 big-endian"}},
    {"tensor count truncated", NULL, {{OP_TRUNC, AT_ABS, 0, 12, 0}},
     {"byte 8: header: file ends inside the tensor count: expected 8 bytes, found 4"}},
    {"key-value count truncated", NULL, {{OP_TRUNC, AT_ABS, 0, 23, 0}},
     {"byte 16: header: file ends inside the key-value count: expected 8 bytes, found 7"}},
    {"key-value count huge", NULL, {{OP_PUT64, AT_ABS, 0, 16, UINT64_C(1) << 62}},
     {"byte 16: header: key-value count does not fit", "found 4611686018427387904"}},
    {"key-value count all ones", NULL, {{OP_PUT64, AT_ABS, 0, 16, UINT64_MAX}},
     {"byte 16: header: key-value count", "found 18446744073709551615"}},
    {"tensor count huge", NULL, {{OP_PUT64, AT_ABS, 0, 8, UINT64_C(1) << 60}},
     {"byte 8: header: tensor count does not fit", "found 1152921504606846976"}},

    /* Key-value pairs. */
    {"truncated after the header", NULL, {{OP_TRUNC, AT_KV_LEN, KV_ARCH, 3, 0}},
     {"byte 16: header: key-value count does not fit in the 3 bytes left in the file: expected at most 0, found "}},
    {"key length truncated", NULL, {{OP_TRUNC, AT_KV_LEN, KV_U8, 3, 0}},
     {"byte {at}: key-value pair {idx}: file ends inside the length of the key: expected 8 bytes, found 3"}},
    {"key bytes truncated", NULL, {{OP_TRUNC, AT_KV_KEY, KV_U8, 2, 0}},
     {"byte {kv}: key-value pair {idx}: the key runs past the end of the file", "expected a length of at most 2 "
      "(the bytes left), found 4"}},
    {"key length past the end", NULL, {{OP_PUT64, AT_KV_LEN, KV_ARCH, 0, 1000000}},
     {"byte {at}: key-value pair 0: the key runs past the end of the file", "found 1000000"}},
    {"key length overflows", NULL, {{OP_PUT64, AT_KV_LEN, KV_U32, 0, UINT64_MAX - 3}},
     {"byte {at}: key-value pair {idx}: the key runs past the end", "found 18446744073709551612"}},
    {"empty key", NULL, {{OP_PUT64, AT_KV_LEN, KV_ARCH, 0, 0}},
     {"byte {at}: key-value pair 0: the key is empty: expected at least 1 byte, found 0"}},
    {"NUL in a key", NULL, {{OP_PUT8, AT_KV_KEY, KV_U16, 1, 0}},
     {"byte {kv}: key-value pair {idx}: the key contains a NUL byte", "found one at position 1 of 5"}},
    {"value type truncated", NULL, {{OP_TRUNC, AT_KV_TYPE, KV_U8, 1, 0}},
     {"byte {at}: key 'k.u8': file ends inside the value type: expected 4 bytes, found 1"}},
    {"unknown value type 13", NULL, {{OP_PUT32, AT_KV_TYPE, KV_U32, 0, 13}},
     {"byte {at}: key 'k.u32': the value type is not a GGUF value type: expected 0..12, found 13"}},
    {"unknown value type huge", NULL, {{OP_PUT32, AT_KV_TYPE, KV_ARCH, 0, 0xffffffff}},
     {"byte {at}: key 'general.architecture': the value type", "found 4294967295"}},
    {"u8 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_U8, 0, 0}},
     {"byte {at}: key 'k.u8': file ends inside the u8 value: expected 1 byte, found 0"}},
    {"i8 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_I8, 0, 0}},
     {"byte {at}: key 'k.i8': file ends inside the i8 value: expected 1 byte, found 0"}},
    {"u16 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_U16, 1, 0}},
     {"byte {at}: key 'k.u16': file ends inside the u16 value: expected 2 bytes, found 1"}},
    {"i16 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_I16, 1, 0}},
     {"byte {at}: key 'k.i16': file ends inside the i16 value: expected 2 bytes, found 1"}},
    {"u32 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_U32, 3, 0}},
     {"byte {at}: key 'k.u32': file ends inside the u32 value: expected 4 bytes, found 3"}},
    {"i32 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_I32, 2, 0}},
     {"byte {at}: key 'k.i32': file ends inside the i32 value: expected 4 bytes, found 2"}},
    {"f32 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_F32, 1, 0}},
     {"byte {at}: key 'k.f32': file ends inside the f32 value: expected 4 bytes, found 1"}},
    {"bool truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_BOOL, 0, 0}},
     {"byte {at}: key 'k.bool': file ends inside the bool value: expected 1 byte, found 0"}},
    {"u64 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_U64, 7, 0}},
     {"byte {at}: key 'k.u64': file ends inside the u64 value: expected 8 bytes, found 7"}},
    {"i64 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_I64, 4, 0}},
     {"byte {at}: key 'k.i64': file ends inside the i64 value: expected 8 bytes, found 4"}},
    {"f64 truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_F64, 5, 0}},
     {"byte {at}: key 'k.f64': file ends inside the f64 value: expected 8 bytes, found 5"}},
    {"string length truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_STR, 5, 0}},
     {"byte {at}: key 'k.str': file ends inside the length of the string: expected 8 bytes, found 5"}},
    {"string bytes truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_STR, 10, 0}},
     {"byte {at}: key 'k.str': the string runs past the end of the file",
      "expected a length of at most 2 (the bytes left), found 5"}},
    {"string length past the end", NULL, {{OP_PUT64, AT_KV_VAL, KV_ARCH, 0, 5000000}},
     {"byte {at}: key 'general.architecture': the string runs past the end of the file", "found 5000000"}},
    {"array type truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_ARR, 2, 0}},
     {"byte {at}: key 'k.arr': file ends inside the array's element type: expected 4 bytes, found 2"}},
    {"unknown array element type", NULL, {{OP_PUT32, AT_KV_VAL, KV_ARR, 0, 13}},
     {"byte {at}: key 'k.arr': the array's element type is not a GGUF value type: expected 0..12, found 13"}},
    {"array count truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_ARR, 7, 0}},
     {"key 'k.arr': file ends inside the array's element count: expected 8 bytes, found 3"}},
    {"array elements truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_ARR, 12 + 10, 0}},
     {"key 'k.arr': array of u32 does not fit in the 10 bytes left in the file",
      "expected at most 2 elements, found 3"}},
    {"array count huge", NULL, {{OP_PUT64, AT_KV_VAL, KV_ARR, 4, UINT64_C(1) << 61}},
     {"key 'k.arr': array of u32 does not fit", "found 2305843009213693952"}},
    {"array count all ones", NULL, {{OP_PUT64, AT_KV_VAL, KV_ARR, 4, UINT64_MAX}},
     {"key 'k.arr': array of u32 does not fit", "found 18446744073709551615"}},
    {"string array count huge", NULL, {{OP_PUT64, AT_KV_VAL, KV_STRS, 4, UINT64_C(1) << 40}},
     {"key 'k.strs': array of string does not fit", "found 1099511627776"}},
    {"string array element past the end", NULL, {{OP_PUT64, AT_KV_VAL, KV_STRS, 12 + 10, 1 << 20}},
     {"key 'k.strs' element [1]: the string runs past the end of the file", "found 1048576"}},
    {"string array element truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_STRS, 12 + 10 + 7, 0}},
     {"key 'k.strs' element [1]: file ends inside the length of the string: expected 8 bytes, found 7"}},
    {"nested array count huge", NULL, {{OP_PUT64, AT_KV_VAL, KV_NESTED, 4, UINT64_C(1) << 50}},
     {"key 'k.nested': array of array does not fit", "found 1125899906842624"}},
    {"nested array inner type unknown", NULL, {{OP_PUT32, AT_KV_VAL, KV_NESTED, 12, 99}},
     {"key 'k.nested' element [0]: the array's element type is not a GGUF value type", "found 99"}},
    {"nested array inner elements past the end", NULL, {{OP_PUT64, AT_KV_VAL, KV_NESTED, 16, 1000}},
     {"key 'k.nested' element [0]: array of u8 does not fit", "found 1000"}},
    {"nested array second inner truncated", NULL, {{OP_TRUNC, AT_KV_VAL, KV_NESTED, 12 + 14 + 4 + 6, 0}},
     {"key 'k.nested' element [1]: file ends inside the array's element count: expected 8 bytes, found 6"}},
    {"arrays nested 9 deep", build_nested_9, {{OP_NONE, AT_ABS, 0, 0, 0}},
     {"key 'deep' element [0][0][0][0][0][0][0][0]: arrays nested too deeply: expected at most 8 levels, "
      "found 9"}},
    {"duplicate key", NULL, {{OP_PUT8, AT_KV_KEY, KV_I8, 2, 'u'}},
     {"byte {kv}: key 'k.u8': duplicate key: expected each key once, found it also at byte "}},
    {"alignment 0", NULL, {{OP_PUT32, AT_KV_VAL, KV_ALIGN, 0, 0}},
     {"byte {kv}: key 'general.alignment': bad alignment: expected a non-zero power of two, found 0"}},
    {"alignment 3", NULL, {{OP_PUT32, AT_KV_VAL, KV_ALIGN, 0, 3}},
     {"byte {kv}: key 'general.alignment': bad alignment: expected a non-zero power of two, found 3"}},
    {"alignment 2^31 + 1", NULL, {{OP_PUT32, AT_KV_VAL, KV_ALIGN, 0, 0x80000001u}},
     {"key 'general.alignment': bad alignment", "found 2147483649"}},
    {"alignment of type string", build_alignment_string, {{OP_NONE, AT_ABS, 0, 0, 0}},
     {"byte 24: key 'general.alignment': wrong type: expected u32, found string"}},
    {"alignment of type u64", build_alignment_u64, {{OP_NONE, AT_ABS, 0, 0, 0}},
     {"byte 24: key 'general.alignment': wrong type: expected u32, found u64"}},

    /* Tensor infos. */
    {"tensor name length truncated", NULL, {{OP_TRUNC, AT_T_LEN, T_A, 4, 0}},
     {"byte {at}: tensor info 0: file ends inside the length of the tensor name: expected 8 bytes, found 4"}},
    {"tensor name truncated", NULL, {{OP_TRUNC, AT_T_NAME, T_B, 1, 0}},
     {"byte {ti}: tensor info 1: the tensor name runs past the end of the file",
      "expected a length of at most 1 (the bytes left), found 3"}},
    {"tensor name length past the end", NULL, {{OP_PUT64, AT_T_LEN, T_A, 0, UINT64_C(1) << 63}},
     {"byte {at}: tensor info 0: the tensor name runs past the end", "found 9223372036854775808"}},
    {"empty tensor name", NULL, {{OP_PUT64, AT_T_LEN, T_A, 0, 0}},
     {"byte {at}: tensor info 0: the tensor name is empty"}},
    {"NUL in a tensor name", NULL, {{OP_PUT8, AT_T_NAME, T_B, 1, 0}},
     {"byte {ti}: tensor info 1: the tensor name contains a NUL byte", "found one at position 1 of 3"}},
    {"n_dims truncated", NULL, {{OP_TRUNC, AT_T_NDIMS, T_A, 1, 0}},
     {"byte {at}: tensor 't.a': file ends inside the dimension count: expected 4 bytes, found 1"}},
    {"n_dims 0", NULL, {{OP_PUT32, AT_T_NDIMS, T_A, 0, 0}},
     {"byte {at}: tensor 't.a': bad dimension count: expected n_dims 1..4, found 0"}},
    {"n_dims 5", NULL, {{OP_PUT32, AT_T_NDIMS, T_B, 0, 5}},
     {"byte {at}: tensor 't.b': bad dimension count: expected n_dims 1..4, found 5"}},
    {"ne truncated", NULL, {{OP_TRUNC, AT_T_NE, T_A, 8 + 6, 0}},
     {"tensor 't.a': file ends inside the shape (ne[1]): expected 8 bytes, found 6"}},
    {"negative ne", NULL, {{OP_PUT64, AT_T_NE, T_A, 8, (uint64_t)-3}},
     {"tensor 't.a': negative dimension: expected ne[1] >= 0, found -3"}},
    {"element count overflow", NULL,
     {{OP_PUT64, AT_T_NE, T_A, 0, UINT64_C(1) << 32}, {OP_PUT64, AT_T_NE, T_A, 8, UINT64_C(1) << 31}},
     {"tensor 't.a': element count overflows at ne[1] = 2147483648",
      "expected a product of dimensions below 2^63, found 4294967296 x 2147483648"}},
    {"byte count overflow", NULL, {{OP_PUT64, AT_T_NE, T_A, 0, UINT64_C(1) << 62}, {OP_PUT64, AT_T_NE, T_A, 8, 1}},
     {"tensor 't.a': data size overflows", "found 4611686018427387904 blocks of 4 bytes (f32)"}},
    {"tensor type truncated", NULL, {{OP_TRUNC, AT_T_TYPE, T_A, 3, 0}},
     {"byte {at}: tensor 't.a': file ends inside the tensor type: expected 4 bytes, found 3"}},
    {"unknown tensor type 4", NULL, {{OP_PUT32, AT_T_TYPE, T_A, 0, 4}},
     {"byte {at}: tensor 't.a': unknown tensor type: expected a ggml type id this reader knows, found 4"}},
    {"unknown tensor type 200", NULL, {{OP_PUT32, AT_T_TYPE, T_B, 0, 200}},
     {"byte {at}: tensor 't.b': unknown tensor type", "found 200"}},
    {"row not a multiple of the block size", NULL, {{OP_PUT64, AT_T_NE, T_B, 0, 48}},
     {"tensor 't.b' of type 8 (q8_0) has 48 elements per row, not a multiple of block size (32)",
      "expected a row length ne[0] that is a multiple of 32, found 48"}},
    {"tensor offset truncated", NULL, {{OP_TRUNC, AT_T_OFFSET, T_B, 5, 0}},
     {"byte {at}: tensor 't.b': file ends inside the data offset: expected 8 bytes, found 5"}},
    {"duplicate tensor name", NULL, {{OP_PUT8, AT_T_NAME, T_B, 2, 'a'}},
     {"byte {ti}: tensor 't.a': duplicate tensor name: expected each name once, found it also at byte "}},

    /* Tensor data. */
    {"data section past the end", NULL, {{OP_TRUNC, AT_DATA, 0, -1, 0}},
     {"data section: the file ends before it starts: expected a file of at least {at} bytes"}},
    {"data truncated", NULL, {{OP_TRUNC, AT_DATA, T_B, 40, 0}},
     {"byte {ti}: tensor 't.b': data (34 bytes at offset 32 of the data section", "runs past the end of the file",
      "expected it to end within the 40 bytes of the data section"}},
    {"data offset past the end", NULL, {{OP_PUT64, AT_T_OFFSET, T_A, 0, 1 << 20}},
     {"tensor 't.a': data (32 bytes at offset 1048576 of the data section", "runs past the end of the file"}},
    {"data offset overflows", NULL, {{OP_PUT64, AT_T_OFFSET, T_B, 0, UINT64_MAX - 31}},
     {"tensor 't.b': data (34 bytes at offset 18446744073709551584 of the data section, file byte beyond 2^64)",
      "runs past the end of the file"}},
    {"misaligned data offset", NULL, {{OP_PUT64, AT_T_OFFSET, T_B, 0, 33}},
     {"byte {ti}: tensor 't.b': misaligned data offset: expected a multiple of 32, found 33"}},
    {"overlapping tensor data", NULL, {{OP_PUT64, AT_T_OFFSET, T_B, 0, 0}},
     {"byte {ti}: tensor 't.b': data [0, 34) overlaps tensor 't.a' [0, 32): expected disjoint tensor data"}},
    {"tensor covering another", build_covering, {{OP_NONE, AT_ABS, 0, 0, 0}},
     {"tensor 'y': data [0, 64) overlaps tensor 'x' [0, 32)"}},
    {"overlap behind a zero-size tensor", build_overlap_behind_empty, {{OP_NONE, AT_ABS, 0, 0, 0}},
     {"tensor 'c': data [96, 128) overlaps tensor 'big' [0, 128)"}},
    {"misaligned with alignment 64", NULL, {{OP_PUT32, AT_KV_VAL, KV_ALIGN, 0, 64}},
     {"tensor 't.b': misaligned data offset: expected a multiple of 64, found 32"}},
};
#define N_ROWS (sizeof rows / sizeof rows[0])
_Static_assert(N_ROWS >= 30, "at least 30 corrupt files");

static uint64_t field_pos(const struct patch *p)
{
    switch (p->at) {
    case AT_ABS: return 0;
    case AT_KV_LEN: return L.kv_len[p->idx];
    case AT_KV_KEY: return L.kv_key[p->idx];
    case AT_KV_TYPE: return L.kv_type[p->idx];
    case AT_KV_VAL: return L.kv_val[p->idx];
    case AT_T_LEN: return L.t_len[p->idx];
    case AT_T_NAME: return L.t_name[p->idx];
    case AT_T_NDIMS: return L.t_ndims[p->idx];
    case AT_T_NE: return L.t_ne[p->idx];
    case AT_T_TYPE: return L.t_type[p->idx];
    case AT_T_OFFSET: return L.t_offset[p->idx];
    case AT_DATA: return L.data;
    }
    ck_abort_msg("bad field");
    return 0;
}

/* The corrupt bytes of a row (malloc'd, exactly *size bytes so sanitizers see any read past the end). */
static uint8_t *row_bytes(const struct row *r, size_t *size)
{
    uint8_t *src;
    size_t n;
    struct bytes b = {.n = 0};
    if (r->build) {
        r->build(&b);
        src = b.p;
        n = b.n;
    } else {
        src = base_file(&n);
    }
    uint8_t *out = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, src, n);
    if (!r->build)
        free(src);
    for (int i = 0; i < 3 && r->p[i].op != OP_NONE; i++) {
        const struct patch *p = &r->p[i];
        uint64_t at = field_pos(p) + (uint64_t)p->delta;
        uint8_t v8 = (uint8_t)p->value;
        uint32_t v32 = (uint32_t)p->value;
        switch (p->op) {
        case OP_NONE: break;
        case OP_TRUNC: ck_assert_uint_le(at, n); n = at; break;
        case OP_PUT8: ck_assert_uint_le(at + 1, n); memcpy(out + at, &v8, 1); break;
        case OP_PUT32: ck_assert_uint_le(at + 4, n); memcpy(out + at, &v32, 4); break;
        case OP_PUT64: ck_assert_uint_le(at + 8, n); memcpy(out + at, &p->value, 8); break;
        }
    }
    /* Shrink to the truncated size so the allocation ends where the file does. */
    uint8_t *exact = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, out, n);
    free(out);
    *size = n;
    return exact;
}

/* Replaces {at}, {kv} and {ti} in an expected substring. */
static void expand(const struct row *r, const char *in, char *out, size_t cap)
{
    const struct patch *p = &r->p[0];
    size_t o = 0;
    while (*in && o + 24 < cap) {
        uint64_t v;
        if (!strncmp(in, "{at}", 4))
            v = field_pos(p);
        else if (!strncmp(in, "{kv}", 4))
            v = L.kv_len[p->idx];
        else if (!strncmp(in, "{ti}", 4))
            v = L.t_len[p->idx];
        else if (!strncmp(in, "{idx}", 5)) {
            o += (size_t)snprintf(out + o, cap - o, "%d", p->idx);
            in += 5;
            continue;
        }
        else {
            out[o++] = *in++;
            continue;
        }
        o += (size_t)snprintf(out + o, cap - o, "%" PRIu64, v);
        in += 4;
    }
    out[o] = 0;
}

static void check_message(const struct row *r, const char *msg, const char *name)
{
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s: byte ", name);
    ck_assert_msg(strncmp(msg, prefix, strlen(prefix)) == 0, "%s: message \"%s\" does not start with \"%s\"",
                  r->what, msg, prefix);
    for (int i = 0; i < 3 && r->m[i]; i++) {
        char want[512];
        expand(r, r->m[i], want, sizeof want);
        ck_assert_msg(strstr(msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", r->what, msg, want);
    }
}

START_TEST(test_corrupt_memory)
{
    const struct row *r = &rows[_i];
    size_t n;
    uint8_t *bytes = row_bytes(r, &n);
    ae_gguf *g = (ae_gguf *)&n; /* must stay untouched on failure */
    ae_error err = {{0}};
    int rc = ae_gguf_open_memory(&g, bytes, n, "bad.gguf", &err);
    ck_assert_msg(rc == -1, "%s: the reader accepted it", r->what);
    ck_assert_ptr_eq(g, (ae_gguf *)&n);
    check_message(r, err.msg, "bad.gguf");
    free(bytes);
}
END_TEST

/* Every few rows, the same bytes through a file on disk (mmap). */
START_TEST(test_corrupt_disk)
{
    char path[] = "/tmp/check_gguf_corrupt_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    for (size_t i = 0; i < N_ROWS; i += 7) {
        const struct row *r = &rows[i];
        size_t n;
        uint8_t *bytes = row_bytes(r, &n);
        ck_assert_int_eq(ftruncate(fd, 0), 0);
        ck_assert_int_eq(pwrite(fd, bytes, n, 0), (ssize_t)n);
        ae_gguf *g = NULL;
        ae_error err = {{0}};
        ck_assert_msg(ae_gguf_open(&g, path, &err) == -1, "%s: the reader accepted it", r->what);
        ck_assert_ptr_null(g);
        check_message(r, err.msg, path);
        free(bytes);
    }
    close(fd);
    unlink(path);
}
END_TEST

/* The base file and the valid edge cases open; without them, a reader rejecting everything would pass. */
static void (*const valid_builds[])(struct bytes *b) = {
    NULL, build_nested_8, build_zero_size, build_zero_size_at_end, build_adjacent,
};

START_TEST(test_valid_edge_cases)
{
    struct bytes b = {.n = 0};
    uint8_t *bytes;
    size_t n;
    if (valid_builds[_i]) {
        valid_builds[_i](&b);
        n = b.n;
        bytes = malloc(n);
        memcpy(bytes, b.p, n);
    } else {
        bytes = base_file(&n);
    }
    ae_gguf *g = NULL;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_open_memory(&g, bytes, n, "good.gguf", &err) == 0, "%s", err.msg);
    if (!valid_builds[_i]) {
        ck_assert_uint_eq(g->n_kv, N_KV);
        ck_assert_uint_eq(g->n_tensors, N_T);
        ck_assert_uint_eq(g->data_offset, L.data);
        for (int i = 0; i < N_KV; i++)
            ck_assert_uint_eq(g->kv[i].offset, L.kv_len[i]);
        for (int i = 0; i < N_T; i++)
            ck_assert_uint_eq(g->tensors[i].info_offset, L.t_len[i]);
    }
    ae_gguf_close(g);
    free(bytes);
}
END_TEST

/* Alignment 1 and a huge power of two are both valid values; the rows' expectations hold for both. */
START_TEST(test_alignment_values)
{
    static const struct {
        uint32_t alignment;
        int ok;
        const char *msg;
    } cases[] = {
        {1, 1, NULL},
        {0x80000000u, 0, "data section: the file ends before it starts"},
    };
    size_t n;
    uint8_t *bytes = base_file(&n);
    uint32_t v = cases[_i].alignment;
    memcpy(bytes + L.kv_val[KV_ALIGN], &v, 4);
    ae_gguf *g = NULL;
    ae_error err = {{0}};
    int rc = ae_gguf_open_memory(&g, bytes, n, "a.gguf", &err);
    if (cases[_i].ok) {
        ck_assert_msg(rc == 0, "%s", err.msg);
        ck_assert_uint_eq(g->alignment, v);
        ck_assert_uint_eq(g->data_offset, L.infos_end);
        ae_gguf_close(g);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err.msg, cases[_i].msg) != NULL, "%s", err.msg);
    }
    free(bytes);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf_corrupt");
    TCase *tc = tcase_create("corrupt");
    tcase_add_loop_test(tc, test_corrupt_memory, 0, (int)N_ROWS);
    tcase_add_test(tc, test_corrupt_disk);
    tcase_add_loop_test(tc, test_valid_edge_cases, 0, (int)(sizeof valid_builds / sizeof valid_builds[0]));
    tcase_add_loop_test(tc, test_alignment_values, 0, 2);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
