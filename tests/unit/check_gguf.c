/* The GGUF reader and writer on valid files: writer -> reader round trips of every value type (nested
 * arrays included) and of tensors of many types, shapes and alignments, the fill callback, the typed
 * getters and their messages, the writer's own errors, and every shared .gguf file: it parses (except the
 * one with a row that is not a multiple of its block size, which must say so), known values read back,
 * and writing what was read reproduces the file byte for byte. Corrupt files are in check_gguf_corrupt.c. */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ae_gguf.h"
#include "gguf_write.h"
#include "test_util.h"

/* ---- Helpers ------------------------------------------------------------------------------------- */

/* Writes w into memory; the bytes are malloc'd. */
static uint8_t *write_to_memory(ae_gguf_writer *w, ae_gguf_fill_fn fill, void *ctx, size_t *size)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ck_assert_ptr_nonnull(f);
    ae_error err = {{0}};
    int rc = ae_gguf_writer_write(w, f, fill, ctx, &err);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(rc == 0, "write failed: %s", err.msg);
    *size = n;
    return (uint8_t *)buf;
}

/* Write failure: the message, for the caller to check. */
static void write_expect_fail(ae_gguf_writer *w, ae_gguf_fill_fn fill, void *ctx, ae_error *err)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ck_assert_ptr_nonnull(f);
    int rc = ae_gguf_writer_write(w, f, fill, ctx, err);
    fclose(f);
    free(buf);
    ck_assert_msg(rc == -1, "write succeeded, expected a failure");
}

static ae_gguf *open_ok(const uint8_t *p, size_t n)
{
    ae_gguf *g = NULL;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_open_memory(&g, p, n, "mem.gguf", &err) == 0, "%s", err.msg);
    return g;
}

static void assert_has(const char *msg, const char *part)
{
    ck_assert_msg(part == NULL || strstr(msg, part) != NULL, "message \"%s\" lacks \"%s\"", msg, part);
}

static bool str_is(struct ae_str s, const char *c) { return ae_str_eq(s, c); }

/* Bit-exact equality of two values (floats compared as the bits the file stores). */
static bool value_equal(const struct ae_gguf_value *a, const struct ae_gguf_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case AE_GGUF_U8: case AE_GGUF_U16: case AE_GGUF_U32: case AE_GGUF_U64: return a->u == b->u;
    case AE_GGUF_I8: case AE_GGUF_I16: case AE_GGUF_I32: case AE_GGUF_I64: return a->i == b->i;
    case AE_GGUF_F32: {
        float x = (float)a->f, y = (float)b->f;
        return memcmp(&x, &y, 4) == 0;
    }
    case AE_GGUF_F64: return memcmp(&a->f, &b->f, 8) == 0;
    case AE_GGUF_BOOL: return a->b == b->b;
    case AE_GGUF_STRING: return a->str.len == b->str.len && memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0;
    case AE_GGUF_ARRAY:
        if (a->arr.type != b->arr.type || a->arr.n != b->arr.n)
            return false;
        if (a->arr.type == AE_GGUF_STRING || a->arr.type == AE_GGUF_ARRAY) {
            for (uint64_t i = 0; i < a->arr.n; i++)
                if (!value_equal(&a->arr.elems[i], &b->arr.elems[i]))
                    return false;
            return true;
        }
        return memcmp(a->arr.data, b->arr.data, a->arr.n * ae_gguf_type_size(a->arr.type)) == 0;
    case AE_GGUF_TYPE_COUNT: break;
    }
    return false;
}

static uint32_t rng_next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* ---- Metadata round trip --------------------------------------------------------------------------- */

static const struct scalar_row {
    const char *key;
    struct ae_gguf_value v;
} scalars[] = {
    {"s.u8", {.type = AE_GGUF_U8, .u = 200}},
    {"s.i8", {.type = AE_GGUF_I8, .i = -100}},
    {"s.u16", {.type = AE_GGUF_U16, .u = 60000}},
    {"s.i16", {.type = AE_GGUF_I16, .i = -30000}},
    {"s.u32", {.type = AE_GGUF_U32, .u = 4000000000u}},
    {"s.i32", {.type = AE_GGUF_I32, .i = -2000000000}},
    {"s.f32", {.type = AE_GGUF_F32, .f = 1.5}},
    {"s.f32.tiny", {.type = AE_GGUF_F32, .f = 1e-5f}},
    {"s.bool.true", {.type = AE_GGUF_BOOL, .b = true}},
    {"s.bool.false", {.type = AE_GGUF_BOOL, .b = false}},
    {"s.u64", {.type = AE_GGUF_U64, .u = UINT64_MAX}},
    {"s.i64", {.type = AE_GGUF_I64, .i = INT64_MIN}},
    {"s.f64", {.type = AE_GGUF_F64, .f = -1e300}},
    {"s.str", {.type = AE_GGUF_STRING, .str = {"hello", 5}}},
    {"s.str.empty", {.type = AE_GGUF_STRING, .str = {"", 0}}},
    {"s.str.utf8", {.type = AE_GGUF_STRING, .str = {"h\xc3\xa9llo \xe2\x96\x81", 10}}},
    {"s.str.nul", {.type = AE_GGUF_STRING, .str = {"a\0b", 3}}}, /* values may hold NUL; keys may not */
};

/* Fixed-size arrays: three elements of every scalar type, raw little-endian. */
static const uint8_t u8s[] = {0, 1, 255};
static const int8_t i8s[] = {-128, 0, 127};
static const uint16_t u16s[] = {0, 1, 65535};
static const int16_t i16s[] = {-32768, -1, 32767};
static const uint32_t u32s[] = {0, 7, 4294967295u};
static const int32_t i32s[] = {INT32_MIN, -1, INT32_MAX};
static const float f32s[] = {-0.0f, 1e-5f, 3.25f};
static const uint8_t bools[] = {1, 0, 1};
static const uint64_t u64s[] = {0, 1, UINT64_MAX};
static const int64_t i64s[] = {INT64_MIN, -1, INT64_MAX};
static const double f64s[] = {-1e300, 0.1, 2.0};

static const struct array_row {
    const char *key;
    enum ae_gguf_type type;
    uint64_t n;
    const void *data;
} arrays[] = {
    {"a.u8", AE_GGUF_U8, 3, u8s},     {"a.i8", AE_GGUF_I8, 3, i8s},     {"a.u16", AE_GGUF_U16, 3, u16s},
    {"a.i16", AE_GGUF_I16, 3, i16s},  {"a.u32", AE_GGUF_U32, 3, u32s},  {"a.i32", AE_GGUF_I32, 3, i32s},
    {"a.f32", AE_GGUF_F32, 3, f32s},  {"a.bool", AE_GGUF_BOOL, 3, bools}, {"a.u64", AE_GGUF_U64, 3, u64s},
    {"a.i64", AE_GGUF_I64, 3, i64s},  {"a.f64", AE_GGUF_F64, 3, f64s},
    {"a.u8.empty", AE_GGUF_U8, 0, u8s}, {"a.f64.empty", AE_GGUF_F64, 0, f64s},
};

/* The value of element i of a fixed-size array row, widened as ae_gguf_arr_int/float widen it. */
static int64_t row_int(const struct array_row *r, uint64_t i)
{
    switch (r->type) {
    case AE_GGUF_U8: return u8s[i];
    case AE_GGUF_I8: return i8s[i];
    case AE_GGUF_U16: return u16s[i];
    case AE_GGUF_I16: return i16s[i];
    case AE_GGUF_U32: return u32s[i];
    case AE_GGUF_I32: return i32s[i];
    case AE_GGUF_BOOL: return bools[i];
    case AE_GGUF_U64: return (int64_t)u64s[i];
    case AE_GGUF_I64: return i64s[i];
    case AE_GGUF_F32: case AE_GGUF_F64: case AE_GGUF_STRING: case AE_GGUF_ARRAY: case AE_GGUF_TYPE_COUNT: break;
    }
    ck_abort_msg("not an integer row");
    return 0;
}

static const char *const strs[] = {"a", "", "\xe2\x96\x81the", "<0x0A>"};

/* [[1, 2, 3] (u32), ["x", ""], [[], [-1]] (arrays of i8), []] and an empty array of arrays. */
static const uint32_t nest_u32[] = {1, 2, 3};
static const int8_t nest_i8[] = {-1};
static struct ae_gguf_value nest_strs[] = {
    {.type = AE_GGUF_STRING, .str = {"x", 1}},
    {.type = AE_GGUF_STRING, .str = {"", 0}},
};
static struct ae_gguf_value nest_i8_arrays[] = {
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_I8, .n = 0, .data = (const uint8_t *)nest_i8}},
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_I8, .n = 1, .data = (const uint8_t *)nest_i8}},
};
static struct ae_gguf_value nest_top[] = {
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_U32, .n = 3, .data = (const uint8_t *)nest_u32}},
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_STRING, .n = 2, .elems = nest_strs}},
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_ARRAY, .n = 2, .elems = nest_i8_arrays}},
    {.type = AE_GGUF_ARRAY, .arr = {.type = AE_GGUF_ARRAY, .n = 0, .elems = NULL}},
};
static const struct ae_gguf_value nested = {.type = AE_GGUF_ARRAY,
                                            .arr = {.type = AE_GGUF_ARRAY, .n = 4, .elems = nest_top}};
static const struct ae_gguf_value nested_empty = {.type = AE_GGUF_ARRAY,
                                                  .arr = {.type = AE_GGUF_ARRAY, .n = 0, .elems = NULL}};

static ae_gguf_writer *metadata_writer(void)
{
    ae_gguf_writer *w = ae_gguf_writer_create();
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        ae_gguf_writer_add_value(w, scalars[i].key, &scalars[i].v);
    ae_gguf_writer_add_u32(w, "d.u32", 123456789u);
    ae_gguf_writer_add_i32(w, "d.i32", -42);
    ae_gguf_writer_add_u64(w, "d.u64", 1ull << 40);
    ae_gguf_writer_add_f32(w, "d.f32", -2.5f);
    ae_gguf_writer_add_bool(w, "d.bool", true);
    ae_gguf_writer_add_str(w, "d.str", "tokenizer");
    ae_gguf_writer_add_str(w, "d.str.empty", "");
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        ae_gguf_writer_add_arr(w, arrays[i].key, arrays[i].type, arrays[i].n, arrays[i].data);
    ae_gguf_writer_add_arr_str(w, "a.str", 4, strs);
    ae_gguf_writer_add_arr_str(w, "a.str.empty", 0, strs);
    ae_gguf_writer_add_value(w, "a.nested", &nested);
    ae_gguf_writer_add_value(w, "a.nested.empty", &nested_empty);
    return w;
}

START_TEST(test_metadata_round_trip)
{
    ae_gguf_writer *w = metadata_writer();
    size_t n;
    uint8_t *bytes = write_to_memory(w, NULL, NULL, &n);
    ae_gguf_writer_destroy(w);
    ae_gguf *g = open_ok(bytes, n);
    ck_assert_uint_eq(g->version, 3);
    ck_assert_uint_eq(g->n_tensors, 0);
    ck_assert_uint_eq(g->alignment, AE_GGUF_DEFAULT_ALIGNMENT);
    size_t n_scalars = sizeof scalars / sizeof scalars[0], n_arrays = sizeof arrays / sizeof arrays[0];
    ck_assert_uint_eq(g->n_kv, n_scalars + 7 + n_arrays + 4);
    ck_assert_uint_eq(g->kv[0].offset, 24); /* the first pair follows the 24-byte header */

    /* Keys come back in the order written, each value bit-exact. */
    for (size_t i = 0; i < n_scalars; i++) {
        ck_assert_msg(str_is(g->kv[i].key, scalars[i].key), "kv %zu", i);
        ck_assert_msg(value_equal(&g->kv[i].value, &scalars[i].v), "key %s", scalars[i].key);
    }
    uint32_t u32 = 0;
    int64_t i64 = 0;
    uint64_t u64 = 0;
    float f = 0;
    bool b = false;
    struct ae_str s;
    ae_error err;
    ck_assert_int_eq(ae_gguf_get_u32(g, "d.u32", &u32, &err), 1);
    ck_assert_uint_eq(u32, 123456789u);
    ck_assert_int_eq(ae_gguf_get_i64(g, "d.i32", &i64, &err), 1);
    ck_assert_int_eq(i64, -42);
    ck_assert_int_eq(ae_gguf_get_u64(g, "d.u64", &u64, &err), 1);
    ck_assert_uint_eq(u64, 1ull << 40);
    ck_assert_int_eq(ae_gguf_get_f32(g, "d.f32", &f, &err), 1);
    ck_assert(f == -2.5f);
    ck_assert_int_eq(ae_gguf_get_bool(g, "d.bool", &b, &err), 1);
    ck_assert(b);
    ck_assert_int_eq(ae_gguf_get_str(g, "d.str", &s, &err), 1);
    ck_assert(str_is(s, "tokenizer"));
    ck_assert_int_eq(ae_gguf_get_str(g, "d.str.empty", &s, &err), 1);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_int_eq(ae_gguf_get_str(g, "s.str.nul", &s, &err), 1);
    ck_assert(s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0);

    for (size_t i = 0; i < n_arrays; i++) {
        const struct array_row *r = &arrays[i];
        const struct ae_gguf_array *a;
        ck_assert_msg(ae_gguf_get_arr(g, r->key, r->type, &a, &err) == 1, "%s: %s", r->key, err.msg);
        ck_assert_uint_eq(a->n, r->n);
        ck_assert_ptr_null(a->elems);
        ck_assert_msg(memcmp(a->data, r->data, r->n * ae_gguf_type_size(r->type)) == 0, "%s", r->key);
        for (uint64_t k = 0; k < r->n; k++) {
            if (r->type == AE_GGUF_F32)
                ck_assert(ae_gguf_arr_float(a, k) == (double)f32s[k]);
            else if (r->type == AE_GGUF_F64)
                ck_assert(ae_gguf_arr_float(a, k) == f64s[k]);
            else
                ck_assert_msg(ae_gguf_arr_int(a, k) == row_int(r, k), "%s[%" PRIu64 "]", r->key, k);
        }
    }
    const struct ae_gguf_array *a;
    ck_assert_int_eq(ae_gguf_get_arr(g, "a.str", AE_GGUF_STRING, &a, &err), 1);
    ck_assert_uint_eq(a->n, 4);
    for (uint64_t k = 0; k < 4; k++)
        ck_assert_msg(str_is(ae_gguf_arr_str(a, k), strs[k]), "a.str[%" PRIu64 "]", k);
    ck_assert_int_eq(ae_gguf_get_arr(g, "a.str.empty", AE_GGUF_STRING, &a, &err), 1);
    ck_assert_uint_eq(a->n, 0);
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, "a.nested");
    ck_assert_ptr_nonnull(kv);
    ck_assert(value_equal(&kv->value, &nested));
    const struct ae_gguf_array *inner = &kv->value.arr.elems[2].arr.elems[1].arr;
    ck_assert_int_eq(ae_gguf_arr_int(inner, 0), -1);
    ck_assert(str_is(ae_gguf_arr_str(&kv->value.arr.elems[1].arr, 0), "x"));
    ck_assert_int_eq(ae_gguf_get_arr(g, "a.nested.empty", AE_GGUF_ARRAY, &a, &err), 1);
    ck_assert_uint_eq(a->n, 0);

    /* Writing what was read gives the same bytes. */
    w = ae_gguf_writer_create();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.ptr);
        ae_gguf_writer_add_value(w, key, &g->kv[i].value);
    }
    size_t n2;
    uint8_t *again = write_to_memory(w, NULL, NULL, &n2);
    ck_assert_uint_eq(n2, n);
    ck_assert(memcmp(again, bytes, n) == 0);
    free(again);
    ae_gguf_writer_destroy(w);
    ae_gguf_close(g);
    free(bytes);
}
END_TEST

/* Version 2 files read as version 3 ones do (the layouts are the same). */
START_TEST(test_version_2)
{
    ae_gguf_writer *w = metadata_writer();
    size_t n;
    uint8_t *bytes = write_to_memory(w, NULL, NULL, &n);
    ae_gguf_writer_destroy(w);
    bytes[4] = 2;
    ae_gguf *g = open_ok(bytes, n);
    ck_assert_uint_eq(g->version, 2);
    ck_assert(value_equal(&ae_gguf_find_kv(g, "a.nested")->value, &nested));
    ae_gguf_close(g);
    free(bytes);
}
END_TEST

/* ---- Typed getters ------------------------------------------------------------------------------------ */

enum getter { GET_U32, GET_U64, GET_I64, GET_F32, GET_BOOL, GET_STR, GET_ARR };

static const struct getter_row {
    enum getter get;
    const char *key;
    enum ae_gguf_type elem; /* GET_ARR only */
    int rc;
    uint64_t u;             /* expected value for GET_U32/U64/BOOL; int for I64 in i; float in f */
    int64_t i;
    double f;
    const char *s;
    const char *msg1, *msg2; /* substrings of the message when rc is -1 */
} getter_rows[] = {
    {GET_U32, "g.u32", 0, 1, 7, 0, 0, NULL, NULL, NULL},
    {GET_U32, "g.u8", 0, 1, 200, 0, 0, NULL, NULL, NULL},
    {GET_U32, "g.i32.pos", 0, 1, 5, 0, 0, NULL, NULL, NULL},
    {GET_U32, "g.u64.small", 0, 1, 4294967295u, 0, 0, NULL, NULL, NULL},
    {GET_U32, "g.u64.big", 0, -1, 0, 0, 0, NULL, "key 'g.u64.big': value out of range",
     "expected 0..4294967295, found 5000000000 (u64)"},
    {GET_U32, "g.i32.neg", 0, -1, 0, 0, 0, NULL, "key 'g.i32.neg'", "expected 0..4294967295, found -1 (i32)"},
    {GET_U32, "g.str", 0, -1, 0, 0, 0, NULL, "key 'g.str': wrong type",
     "expected an integer type (u8..u64, i8..i64), found string"},
    {GET_U32, "g.f32", 0, -1, 0, 0, 0, NULL, "key 'g.f32'", "found f32"},
    {GET_U32, "g.bool", 0, -1, 0, 0, 0, NULL, "key 'g.bool'", "found bool"},
    {GET_U32, "absent", 0, 0, 0, 0, 0, NULL, NULL, NULL},
    {GET_U64, "g.u64.big", 0, 1, 5000000000u, 0, 0, NULL, NULL, NULL},
    {GET_U64, "g.u64.max", 0, 1, UINT64_MAX, 0, 0, NULL, NULL, NULL},
    {GET_U64, "g.i32.neg", 0, -1, 0, 0, 0, NULL, "key 'g.i32.neg'", "found -1 (i32)"},
    {GET_U64, "g.arr", 0, -1, 0, 0, 0, NULL, "key 'g.arr'", "found array"},
    {GET_U64, "absent", 0, 0, 0, 0, 0, NULL, NULL, NULL},
    {GET_I64, "g.i32.neg", 0, 1, 0, -1, 0, NULL, NULL, NULL},
    {GET_I64, "g.i64.min", 0, 1, 0, INT64_MIN, 0, NULL, NULL, NULL},
    {GET_I64, "g.u64.big", 0, 1, 0, 5000000000, 0, NULL, NULL, NULL},
    {GET_I64, "g.u64.max", 0, -1, 0, 0, 0, NULL, "key 'g.u64.max': value out of range",
     "found 18446744073709551615 (u64)"},
    {GET_I64, "g.f32", 0, -1, 0, 0, 0, NULL, "key 'g.f32'", "found f32"},
    {GET_I64, "absent", 0, 0, 0, 0, 0, NULL, NULL, NULL},
    {GET_F32, "g.f32", 0, 1, 0, 0, 0.25, NULL, NULL, NULL},
    {GET_F32, "g.f64", 0, 1, 0, 0, -0.5, NULL, NULL, NULL},
    {GET_F32, "g.u32", 0, -1, 0, 0, 0, NULL, "key 'g.u32': wrong type", "expected f32 or f64, found u32"},
    {GET_F32, "absent", 0, 0, 0, 0, 0, NULL, NULL, NULL},
    {GET_BOOL, "g.bool", 0, 1, 1, 0, 0, NULL, NULL, NULL},
    {GET_BOOL, "g.u8", 0, -1, 0, 0, 0, NULL, "key 'g.u8': wrong type", "expected bool, found u8"},
    {GET_BOOL, "absent", 0, 0, 0, 0, 0, NULL, NULL, NULL},
    {GET_STR, "g.str", 0, 1, 0, 0, 0, "llama", NULL, NULL},
    {GET_STR, "g.arr", 0, -1, 0, 0, 0, NULL, "key 'g.arr': wrong type", "expected string, found array"},
    {GET_STR, "absent", 0, 0, 0, 0, 0, NULL, NULL, NULL},
    {GET_ARR, "g.arr", AE_GGUF_U32, 1, 3, 0, 0, NULL, NULL, NULL},
    {GET_ARR, "g.arr", AE_GGUF_TYPE_COUNT, 1, 3, 0, 0, NULL, NULL, NULL},
    {GET_ARR, "g.arr", AE_GGUF_STRING, -1, 0, 0, 0, NULL, "key 'g.arr': wrong element type",
     "expected an array of string, found an array of u32"},
    {GET_ARR, "g.str", AE_GGUF_STRING, -1, 0, 0, 0, NULL, "key 'g.str'", "expected array, found string"},
    {GET_ARR, "absent", AE_GGUF_U32, 0, 0, 0, 0, NULL, NULL, NULL},
};

static uint8_t *getter_file(size_t *n)
{
    ae_gguf_writer *w = ae_gguf_writer_create();
    struct ae_gguf_value u8 = {.type = AE_GGUF_U8, .u = 200}, i64 = {.type = AE_GGUF_I64, .i = INT64_MIN};
    struct ae_gguf_value f64 = {.type = AE_GGUF_F64, .f = -0.5};
    ae_gguf_writer_add_u32(w, "g.u32", 7);
    ae_gguf_writer_add_value(w, "g.u8", &u8);
    ae_gguf_writer_add_i32(w, "g.i32.pos", 5);
    ae_gguf_writer_add_i32(w, "g.i32.neg", -1);
    ae_gguf_writer_add_u64(w, "g.u64.small", 4294967295u);
    ae_gguf_writer_add_u64(w, "g.u64.big", 5000000000u);
    ae_gguf_writer_add_u64(w, "g.u64.max", UINT64_MAX);
    ae_gguf_writer_add_value(w, "g.i64.min", &i64);
    ae_gguf_writer_add_f32(w, "g.f32", 0.25f);
    ae_gguf_writer_add_value(w, "g.f64", &f64);
    ae_gguf_writer_add_bool(w, "g.bool", true);
    ae_gguf_writer_add_str(w, "g.str", "llama");
    ae_gguf_writer_add_arr(w, "g.arr", AE_GGUF_U32, 3, u32s);
    uint8_t *bytes = write_to_memory(w, NULL, NULL, n);
    ae_gguf_writer_destroy(w);
    return bytes;
}

START_TEST(test_getters)
{
    const struct getter_row *r = &getter_rows[_i];
    size_t n;
    uint8_t *bytes = getter_file(&n);
    ae_gguf *g = open_ok(bytes, n);
    ae_error err = {{0}};
    /* Outputs start as a sentinel, which must survive a 0 or -1 return. */
    uint32_t u32 = 0xdeadbeef;
    uint64_t u64 = 0xdeadbeef;
    int64_t i64 = 0xdeadbeef;
    float f = 1234.0f;
    bool b = false;
    struct ae_str s = {"sentinel", 8};
    const struct ae_gguf_array *a = NULL;
    int rc = -2;
    switch (r->get) {
    case GET_U32: rc = ae_gguf_get_u32(g, r->key, &u32, &err); break;
    case GET_U64: rc = ae_gguf_get_u64(g, r->key, &u64, &err); break;
    case GET_I64: rc = ae_gguf_get_i64(g, r->key, &i64, &err); break;
    case GET_F32: rc = ae_gguf_get_f32(g, r->key, &f, &err); break;
    case GET_BOOL: rc = ae_gguf_get_bool(g, r->key, &b, &err); break;
    case GET_STR: rc = ae_gguf_get_str(g, r->key, &s, &err); break;
    case GET_ARR: rc = ae_gguf_get_arr(g, r->key, r->elem, &a, &err); break;
    }
    ck_assert_msg(rc == r->rc, "row %d (%s): rc %d, expected %d (%s)", _i, r->key, rc, r->rc, err.msg);
    if (rc == 1) {
        switch (r->get) {
        case GET_U32: ck_assert_uint_eq(u32, r->u); break;
        case GET_U64: ck_assert_uint_eq(u64, r->u); break;
        case GET_I64: ck_assert_int_eq(i64, r->i); break;
        case GET_F32: ck_assert(f == (float)r->f); break;
        case GET_BOOL: ck_assert_int_eq(b, r->u); break;
        case GET_STR: ck_assert(str_is(s, r->s)); break;
        case GET_ARR: ck_assert_uint_eq(a->n, r->u); break;
        }
    } else {
        ck_assert(u32 == 0xdeadbeef && u64 == 0xdeadbeef && i64 == 0xdeadbeef && f == 1234.0f && !b);
        ck_assert(str_is(s, "sentinel") && a == NULL);
    }
    if (rc < 0) {
        assert_has(err.msg, "mem.gguf: byte ");
        assert_has(err.msg, r->msg1);
        assert_has(err.msg, r->msg2);
    }
    ae_gguf_close(g);
    free(bytes);
}
END_TEST

/* ---- Tensors ------------------------------------------------------------------------------------------- */

static const struct tensor_row {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[4];
} tensor_rows[] = {
    {"t.f32.vec", AE_TYPE_F32, 1, {7}},
    {"t.f16.mat", AE_TYPE_F16, 2, {3, 5}},
    {"t.q8_0", AE_TYPE_Q8_0, 2, {64, 3}},
    {"t.q4_0.3d", AE_TYPE_Q4_0, 3, {32, 2, 2}},
    {"t.q6_k", AE_TYPE_Q6_K, 2, {256, 2}},
    {"t.bf16.4d", AE_TYPE_BF16, 4, {2, 3, 1, 2}},
    {"t.i32.one", AE_TYPE_I32, 1, {1}},
    {"t.f32.empty", AE_TYPE_F32, 2, {0, 4}},
    {"t.q4_k", AE_TYPE_Q4_K, 1, {512}},
    {"t.iq4_nl", AE_TYPE_IQ4_NL, 2, {32, 1}},
    {"t.f64", AE_TYPE_F64, 1, {3}},
    {"blk.0.attn_q.weight", AE_TYPE_Q5_K, 2, {256, 4}},
};
#define N_TENSORS (sizeof tensor_rows / sizeof tensor_rows[0])

static uint64_t row_bytes(const struct tensor_row *t)
{
    const struct ae_type_info *ti = ae_type_info(t->type);
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n *= (uint64_t)t->ne[d];
    return n / ti->block_size * ti->block_bytes;
}

/* Deterministic contents for tensor i. */
static void fill_pattern(uint64_t i, uint8_t *p, uint64_t n)
{
    uint32_t s = (uint32_t)i * 2654435761u + 1;
    for (uint64_t k = 0; k < n; k++)
        p[k] = (uint8_t)rng_next(&s);
}

static void check_tensors(const ae_gguf *g, uint64_t alignment)
{
    ck_assert_uint_eq(g->alignment, alignment);
    ck_assert_uint_eq(g->n_tensors, N_TENSORS);
    ck_assert_uint_eq(g->data_offset % alignment, 0);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const struct tensor_row *r = &tensor_rows[i];
        const struct ae_gguf_tensor *t = &g->tensors[i];
        ck_assert_str_eq(t->name, r->name);
        ck_assert_ptr_eq(ae_gguf_find_tensor(g, r->name), t);
        ck_assert_uint_eq(t->n_dims, r->n_dims);
        ck_assert_uint_eq(t->type, r->type);
        uint64_t n_elements = 1;
        for (uint32_t d = 0; d < 4; d++) {
            ck_assert_int_eq(t->ne[d], d < r->n_dims ? r->ne[d] : 1);
            n_elements *= (uint64_t)t->ne[d];
        }
        ck_assert_uint_eq(t->n_elements, n_elements);
        ck_assert_uint_eq(t->n_bytes, row_bytes(r));
        ck_assert_uint_eq(t->offset % alignment, 0);
        ck_assert_ptr_eq(t->data, g->base + g->data_offset + t->offset);
        uint8_t want[4096];
        ck_assert_uint_le(t->n_bytes, sizeof want);
        fill_pattern(i, want, t->n_bytes);
        ck_assert_msg(memcmp(t->data, want, t->n_bytes) == 0, "tensor %s data", r->name);
    }
    ck_assert_ptr_null(ae_gguf_find_tensor(g, "absent"));
}

/* Alignment 0 means: no general.alignment key (the default 32). key_last adds the key after the tensors. */
static const struct align_row {
    uint32_t alignment;
    bool key_last;
} align_rows[] = {{0, false}, {32, false}, {64, false}, {64, true}, {1, false}, {16, true}, {256, false}, {4096, false}};

START_TEST(test_tensor_round_trip)
{
    const struct align_row *ar = &align_rows[_i];
    uint8_t data[N_TENSORS][4096];
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_error err;
    ae_gguf_writer_add_str(w, "general.architecture", "test");
    if (ar->alignment && !ar->key_last)
        ae_gguf_writer_add_u32(w, "general.alignment", ar->alignment);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const struct tensor_row *r = &tensor_rows[i];
        fill_pattern(i, data[i], row_bytes(r));
        ck_assert_msg(ae_gguf_writer_add_tensor(w, r->name, r->type, r->n_dims, r->ne, data[i], &err) == 0, "%s",
                      err.msg);
    }
    if (ar->alignment && ar->key_last)
        ae_gguf_writer_add_u32(w, "general.alignment", ar->alignment);
    size_t n;
    uint8_t *bytes = write_to_memory(w, NULL, NULL, &n);
    ae_gguf_writer_destroy(w);
    ae_gguf *g = open_ok(bytes, n);
    uint64_t alignment = ar->alignment ? ar->alignment : AE_GGUF_DEFAULT_ALIGNMENT;
    check_tensors(g, alignment);
    /* The file ends with the last tensor's data padded to the alignment. */
    const struct ae_gguf_tensor *last = &g->tensors[N_TENSORS - 1];
    ck_assert_uint_eq(n, g->data_offset + last->offset + (last->n_bytes + alignment - 1) / alignment * alignment);
    ae_gguf_close(g);
    free(bytes);
}
END_TEST

struct fill_ctx {
    int calls;
    int fail_at; /* tensor index whose fill fails; -1 for none */
};

static int fill_tensor(void *ctx, uint64_t index, void *buf, uint64_t n_bytes, ae_error *err)
{
    struct fill_ctx *c = ctx;
    c->calls++;
    if ((int64_t)index == c->fail_at)
        return ae_fail(err, "cannot produce tensor %" PRIu64, index);
    ck_assert_uint_eq(n_bytes, row_bytes(&tensor_rows[index]));
    fill_pattern(index, buf, n_bytes);
    return 0;
}

/* Tensors without data get their bytes from the fill callback, at write time, in order. */
START_TEST(test_fill_callback)
{
    uint8_t data[4096];
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_error err = {{0}};
    ae_gguf_writer_add_u32(w, "general.alignment", 64);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const struct tensor_row *r = &tensor_rows[i];
        const void *p = NULL;
        if (i == 3) { /* one tensor with its data given, the rest filled */
            fill_pattern(i, data, row_bytes(r));
            p = data;
        }
        ck_assert_int_eq(ae_gguf_writer_add_tensor(w, r->name, r->type, r->n_dims, r->ne, p, &err), 0);
    }
    struct fill_ctx ctx = {0, -1};
    size_t n;
    uint8_t *bytes = write_to_memory(w, fill_tensor, &ctx, &n);
    ck_assert_int_eq(ctx.calls, (int)N_TENSORS - 1);
    ae_gguf *g = open_ok(bytes, n);
    check_tensors(g, 64);
    ae_gguf_close(g);
    free(bytes);

    /* The callback's failure is the write's failure, with its message. */
    ctx = (struct fill_ctx){0, 5};
    write_expect_fail(w, fill_tensor, &ctx, &err);
    assert_has(err.msg, "cannot produce tensor 5");
    /* No callback for a tensor without data. */
    write_expect_fail(w, NULL, NULL, &err);
    assert_has(err.msg, "tensor 't.f32.vec' has no data and no fill callback");

    /* Through a file on disk, read back through mmap. */
    char path[] = "/tmp/check_gguf_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ctx = (struct fill_ctx){0, -1};
    ck_assert_msg(ae_gguf_writer_write_file(w, path, fill_tensor, &ctx, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(ae_gguf_open(&g, path, &err), 0);
    ck_assert(g->mapped);
    ck_assert_str_eq(g->path, path);
    check_tensors(g, 64);
    ae_gguf_close(g);
    /* A failed write leaves no file behind. */
    ctx = (struct fill_ctx){0, 0};
    ck_assert_int_eq(ae_gguf_writer_write_file(w, path, fill_tensor, &ctx, &err), -1);
    assert_has(err.msg, path);
    assert_has(err.msg, "cannot produce tensor 0");
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(ae_gguf_writer_write_file(w, "/nonexistent-dir/x.gguf", fill_tensor, &ctx, &err), -1);
    assert_has(err.msg, "/nonexistent-dir/x.gguf: cannot create");
    ae_gguf_writer_destroy(w);
}
END_TEST

/* ---- Writer errors ------------------------------------------------------------------------------------ */

static const struct writer_tensor_error {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[5];
    const char *msg1, *msg2;
} writer_tensor_errors[] = {
    {"dup", AE_TYPE_F32, 1, {4}, "tensor 'dup': duplicate tensor name", "found it as tensor 0"},
    {"", AE_TYPE_F32, 1, {4}, "tensor 1: the name is empty", NULL},
    {"nd0", AE_TYPE_F32, 0, {4}, "tensor 'nd0': bad dimension count", "expected n_dims 1..4, found 0"},
    {"nd5", AE_TYPE_F32, 5, {1, 1, 1, 1, 1}, "tensor 'nd5'", "expected n_dims 1..4, found 5"},
    {"type4", 4, 1, {4}, "tensor 'type4': unknown tensor type", "found 4"},
    {"type200", 200, 1, {4}, "tensor 'type200': unknown tensor type", "found 200"},
    {"neg", AE_TYPE_F32, 2, {4, -3}, "tensor 'neg': negative dimension", "expected ne[1] >= 0, found -3"},
    {"big", AE_TYPE_F32, 3, {1 << 30, 1 << 30, 1 << 30}, "tensor 'big': element count overflows at ne[2]", NULL},
    {"block", AE_TYPE_Q8_0, 2, {48, 2}, "tensor 'block': row length ne[0] is not a multiple of the block size",
     "expected a multiple of 32, found 48"},
    {"f32.huge", AE_TYPE_F32, 2, {INT64_C(1) << 31, INT64_C(1) << 31}, "tensor 'f32.huge'", "overflow"},
};

START_TEST(test_writer_tensor_errors)
{
    const struct writer_tensor_error *r = &writer_tensor_errors[_i];
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_error err = {{0}};
    static const float x[4];
    int64_t one = 4;
    ck_assert_int_eq(ae_gguf_writer_add_tensor(w, "dup", AE_TYPE_F32, 1, &one, x, &err), 0);
    ck_assert_int_eq(ae_gguf_writer_add_tensor(w, r->name, r->type, r->n_dims, r->ne, x, &err), -1);
    assert_has(err.msg, r->msg1);
    assert_has(err.msg, r->msg2);
    /* The failed tensor was not added: the file still holds the one good tensor. */
    size_t n;
    uint8_t *bytes = write_to_memory(w, NULL, NULL, &n);
    ae_gguf *g = open_ok(bytes, n);
    ck_assert_uint_eq(g->n_tensors, 1);
    ae_gguf_close(g);
    free(bytes);
    ae_gguf_writer_destroy(w);
}
END_TEST

/* Key problems the writer finds are reported by the write, so it never produces a file the reader rejects. */
START_TEST(test_writer_key_errors)
{
    static const struct {
        const char *msg1, *msg2;
    } want[] = {
        {"key 'a.b': duplicate key", "expected each key once"},
        {"key 'general.alignment': bad alignment", "expected a non-zero power of two, found 3"},
        {"key 'general.alignment': bad alignment", "found 0"},
        {"key 'general.alignment': wrong type", "expected u32, found u64"},
        {"key 'general.alignment': wrong type", "expected u32, found string"},
        {"key-value pair 1: the key is empty", NULL},
    };
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_gguf_writer_add_u32(w, "a.b", 1);
    switch (_i) {
    case 0: ae_gguf_writer_add_str(w, "a.b", "again"); break;
    case 1: ae_gguf_writer_add_u32(w, "general.alignment", 3); break;
    case 2: ae_gguf_writer_add_u32(w, "general.alignment", 0); break;
    case 3: ae_gguf_writer_add_u64(w, "general.alignment", 64); break;
    case 4: ae_gguf_writer_add_str(w, "general.alignment", "64"); break;
    case 5: ae_gguf_writer_add_bool(w, "", true); break;
    }
    ae_error err = {{0}};
    write_expect_fail(w, NULL, NULL, &err);
    assert_has(err.msg, want[_i].msg1);
    assert_has(err.msg, want[_i].msg2);
    ae_gguf_writer_destroy(w);
}
END_TEST

/* ---- The shared files --------------------------------------------------------------------------------- */

static const char *const rejected_file = "tinyllamas-stories-260k-q8_0.gguf";

/* Every key, array element and tensor byte range of a file that opened lies inside it. (Plain ifs:
 * a Check assertion per token string would dominate the run time.) */
static void walk_file(const ae_gguf *g, const char *path)
{
    const uint8_t *end = g->base + g->size;
    ck_assert_msg(g->version == 2 || g->version == 3, "%s", path);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct ae_gguf_kv *kv = &g->kv[i];
        if (kv->offset < 24 || kv->offset >= g->size)
            ck_abort_msg("%s: kv %" PRIu64 " at byte %" PRIu64, path, i, kv->offset);
        if (kv->value.type == AE_GGUF_STRING && (const uint8_t *)kv->value.str.ptr + kv->value.str.len > end)
            ck_abort_msg("%s: kv %" PRIu64 ": string past the end", path, i);
        if (kv->value.type == AE_GGUF_ARRAY && kv->value.arr.type == AE_GGUF_STRING)
            for (uint64_t k = 0; k < kv->value.arr.n; k++) {
                struct ae_str s = ae_gguf_arr_str(&kv->value.arr, k);
                if ((const uint8_t *)s.ptr + s.len > end)
                    ck_abort_msg("%s: kv %" PRIu64 "[%" PRIu64 "]: string past the end", path, i, k);
            }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct ae_gguf_tensor *t = &g->tensors[i];
        if ((const uint8_t *)t->data < g->base + g->data_offset || (const uint8_t *)t->data + t->n_bytes > end ||
            t->offset % g->alignment != 0)
            ck_abort_msg("%s: tensor %s: data out of place", path, t->name);
    }
}

static int count_files(const char *dir_rel, int *rejected)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_shared_path(dir_rel));
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ae_gguf *g = NULL;
        ae_error err = {{0}};
        int rc = ae_gguf_open(&g, path, &err);
        if (!strcmp(e->d_name, rejected_file)) {
            ck_assert_msg(rc == -1, "%s opened, expected the block size error", path);
            assert_has(err.msg, path);
            assert_has(err.msg, "tensor 'blk.0.ffn_down.weight' of type 8 (q8_0) has 172 elements per row, "
                                "not a multiple of block size (32)");
            assert_has(err.msg, "expected a row length ne[0] that is a multiple of 32, found 172");
            ++*rejected;
        } else {
            ck_assert_msg(rc == 0, "%s", err.msg);
            ck_assert(g->mapped);
            walk_file(g, path);
            ae_gguf_close(g);
        }
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(test_shared_files_parse)
{
    int rejected = 0;
    ck_assert_int_ge(count_files("models", &rejected), 5);
    ck_assert_int_ge(count_files("models/synthetic", &rejected), 24);
    ck_assert_int_ge(count_files("tokenizer", &rejected), 12);
    ck_assert_int_eq(rejected, 1);
}
END_TEST

enum spot_kind { SPOT_U32, SPOT_F32, SPOT_STR, SPOT_STR_ARRAY, SPOT_TENSORS, SPOT_VERSION, SPOT_TENSOR };

static const struct spot_row {
    const char *file;
    enum spot_kind kind;
    const char *key;  /* key, or tensor name for SPOT_TENSOR */
    uint64_t u;       /* value; count; for SPOT_TENSOR: the type */
    double f;
    const char *s;    /* string; first element of a string array */
    int64_t ne0, ne1; /* SPOT_TENSOR */
} spots[] = {
    {"models/stories260K.gguf", SPOT_VERSION, NULL, 3, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.block_count", 5, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.embedding_length", 64, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.context_length", 2048, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.feed_forward_length", 172, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.attention.head_count", 8, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.attention.head_count_kv", 4, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "llama.rope.dimension_count", 8, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_U32, "tokenizer.ggml.bos_token_id", 1, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_F32, "llama.attention.layer_norm_rms_epsilon", 0, 1e-5, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_STR, "general.architecture", 0, 0, "llama", 0, 0},
    {"models/stories260K.gguf", SPOT_STR, "tokenizer.ggml.model", 0, 0, "llama", 0, 0},
    {"models/stories260K.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.tokens", 512, 0, "<unk>", 0, 0},
    {"models/stories260K.gguf", SPOT_TENSORS, NULL, 48, 0, NULL, 0, 0},
    {"models/stories260K.gguf", SPOT_TENSOR, "token_embd.weight", AE_TYPE_F32, 0, NULL, 64, 512},
    {"models/stories260K.gguf", SPOT_TENSOR, "blk.4.ffn_down.weight", AE_TYPE_F32, 0, NULL, 172, 64},
    {"models/stories260K-q8_0.gguf", SPOT_U32, "general.file_type", 7, 0, NULL, 0, 0},
    {"models/stories260K-q8_0.gguf", SPOT_TENSOR, "token_embd.weight", AE_TYPE_Q8_0, 0, NULL, 64, 512},
    {"models/stories260K-q8_0.gguf", SPOT_TENSOR, "blk.0.ffn_down.weight", AE_TYPE_F16, 0, NULL, 172, 64},
    {"models/stories260K-q4_0.gguf", SPOT_U32, "general.file_type", 2, 0, NULL, 0, 0},
    {"models/stories260K-q4_0.gguf", SPOT_TENSOR, "blk.1.attn_k.weight", AE_TYPE_Q4_0, 0, NULL, 64, 32},
    {"models/llama-2-tiny-random.gguf", SPOT_U32, "llama.embedding_length", 8, 0, NULL, 0, 0},
    {"models/llama-2-tiny-random.gguf", SPOT_U32, "llama.block_count", 1, 0, NULL, 0, 0},
    {"models/llama-2-tiny-random.gguf", SPOT_U32, "llama.context_length", 4096, 0, NULL, 0, 0},
    {"models/llama-2-tiny-random.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.tokens", 32000, 0, "<unk>", 0, 0},
    {"models/llama-2-tiny-random.gguf", SPOT_TENSORS, NULL, 12, 0, NULL, 0, 0},
    {"models/synthetic/tiny-qwen2-f32.gguf", SPOT_U32, "qwen2.embedding_length", 64, 0, NULL, 0, 0},
    {"models/synthetic/tiny-qwen2-f32.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.merges", 50000, 0,
     "\xc4\xa0 t", 0, 0},
    {"models/synthetic/tiny-gemma2-q4_0.gguf", SPOT_U32, "gemma2.block_count", 26, 0, NULL, 0, 0},
    {"models/synthetic/tiny-gemma2-q4_0.gguf", SPOT_F32, "gemma2.final_logit_softcapping", 0, 30, NULL, 0, 0},
    {"models/synthetic/tiny-phi3-q8_0.gguf", SPOT_U32, "phi3.attention.sliding_window", 2047, 0, NULL, 0, 0},
    {"models/synthetic/tiny-llama-q6_k.gguf", SPOT_TENSOR, "blk.0.ffn_down.weight", AE_TYPE_Q6_K, 0, NULL, 768, 256},
    {"tokenizer/ggml-vocab-gpt-2.gguf", SPOT_TENSORS, NULL, 0, 0, NULL, 0, 0},
    {"tokenizer/ggml-vocab-gpt-2.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.tokens", 50257, 0, "!", 0, 0},
    {"tokenizer/ggml-vocab-gpt-2.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.merges", 50000, 0, "\xc4\xa0 t", 0, 0},
    {"tokenizer/ggml-vocab-gpt-2.gguf", SPOT_STR, "tokenizer.ggml.pre", 0, 0, "gpt-2", 0, 0},
    {"tokenizer/ggml-vocab-llama-spm.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.tokens", 32000, 0, "<unk>", 0, 0},
    {"tokenizer/ggml-vocab-deepseek-llm.gguf", SPOT_STR_ARRAY, "tokenizer.ggml.tokens", 102400, 0, NULL, 0, 0},
};

START_TEST(test_spot_values)
{
    const struct spot_row *r = &spots[_i];
    ae_gguf *g;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_open(&g, test_shared_path(r->file), &err) == 0, "%s", err.msg);
    uint32_t u32 = 0;
    float f = 0;
    struct ae_str s = {"", 0};
    const struct ae_gguf_array *a;
    const struct ae_gguf_tensor *t;
    switch (r->kind) {
    case SPOT_U32:
        ck_assert_msg(ae_gguf_get_u32(g, r->key, &u32, &err) == 1, "%s %s: %s", r->file, r->key, err.msg);
        ck_assert_uint_eq(u32, r->u);
        break;
    case SPOT_F32:
        ck_assert_msg(ae_gguf_get_f32(g, r->key, &f, &err) == 1, "%s %s: %s", r->file, r->key, err.msg);
        ck_assert_msg(f == (float)r->f, "%s %s: %g", r->file, r->key, (double)f);
        break;
    case SPOT_STR:
        ck_assert_msg(ae_gguf_get_str(g, r->key, &s, &err) == 1, "%s %s: %s", r->file, r->key, err.msg);
        ck_assert_msg(str_is(s, r->s), "%s %s: '%.*s'", r->file, r->key, (int)s.len, s.ptr);
        break;
    case SPOT_STR_ARRAY:
        ck_assert_msg(ae_gguf_get_arr(g, r->key, AE_GGUF_STRING, &a, &err) == 1, "%s %s: %s", r->file, r->key,
                      err.msg);
        ck_assert_uint_eq(a->n, r->u);
        if (r->s)
            ck_assert(str_is(ae_gguf_arr_str(a, 0), r->s));
        break;
    case SPOT_TENSORS: ck_assert_uint_eq(g->n_tensors, r->u); break;
    case SPOT_VERSION: ck_assert_uint_eq(g->version, r->u); break;
    case SPOT_TENSOR:
        t = ae_gguf_find_tensor(g, r->key);
        ck_assert_msg(t != NULL, "%s: no tensor %s", r->file, r->key);
        ck_assert_uint_eq(t->type, r->u);
        ck_assert_uint_eq(t->n_dims, 2 - (r->ne1 == 1));
        ck_assert_int_eq(t->ne[0], r->ne0);
        ck_assert_int_eq(t->ne[1], r->ne1);
        break;
    }
    ae_gguf_close(g);
}
END_TEST

/* Writing what was read (every key with add_value, every tensor with its data) gives back the same file,
 * byte for byte: the writer lays data out exactly as llama.cpp does. */
static const char *const rewrite_files[] = {
    "models/stories260K.gguf",
    "models/stories260K-q4_0.gguf",
    "models/llama-2-tiny-random.gguf",
    "models/synthetic/tiny-qwen2-q4_k.gguf",
    "models/synthetic/tiny-llama-q4_k_m.gguf",
    "tokenizer/ggml-vocab-gpt-2.gguf",
    "tokenizer/ggml-vocab-bert-bge.gguf",
};

START_TEST(test_rewrite_identical)
{
    const char *path = test_shared_path(rewrite_files[_i]);
    ae_gguf *g;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_open(&g, path, &err) == 0, "%s", err.msg);
    ae_gguf_writer *w = ae_gguf_writer_create();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[256];
        ck_assert_uint_lt(g->kv[i].key.len, sizeof key);
        snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.ptr);
        ae_gguf_writer_add_value(w, key, &g->kv[i].value);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct ae_gguf_tensor *t = &g->tensors[i];
        ck_assert_msg(ae_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err) == 0, "%s",
                      err.msg);
    }
    size_t n;
    uint8_t *bytes = write_to_memory(w, NULL, NULL, &n);
    ae_gguf_writer_destroy(w);
    ck_assert_uint_eq(n, g->size);
    if (memcmp(bytes, g->base, n) != 0) {
        size_t k = 0;
        while (bytes[k] == g->base[k])
            k++;
        ck_abort_msg("%s: byte %zu differs", path, k);
    }
    ae_gguf_close(g);
    free(bytes);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, test_metadata_round_trip);
    tcase_add_test(tc, test_version_2);
    tcase_add_loop_test(tc, test_getters, 0, (int)(sizeof getter_rows / sizeof getter_rows[0]));
    tcase_add_loop_test(tc, test_tensor_round_trip, 0, (int)(sizeof align_rows / sizeof align_rows[0]));
    tcase_add_test(tc, test_fill_callback);
    tcase_add_loop_test(tc, test_writer_tensor_errors, 0,
                        (int)(sizeof writer_tensor_errors / sizeof writer_tensor_errors[0]));
    tcase_add_loop_test(tc, test_writer_key_errors, 0, 6);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("shared_files");
    tcase_set_timeout(tm, 120);
    tcase_add_test(tm, test_shared_files_parse);
    tcase_add_loop_test(tm, test_spot_values, 0, (int)(sizeof spots / sizeof spots[0]));
    tcase_add_loop_test(tm, test_rewrite_identical, 0, (int)(sizeof rewrite_files / sizeof rewrite_files[0]));
    suite_add_tcase(s, tm);
    return test_run_suite(s);
}
