/* libFuzzer harness for the GGUF reader and writer.
 *
 * Each input is opened with ae_gguf_open_memory. When the reader accepts it, everything it returned is
 * walked (every key and value, nested arrays and strings included, through the typed getters and the
 * ae_gguf_arr_* accessors; every tensor, touching the first and last byte of its data), so the sanitizers
 * see any pointer that leaves the input. Then what was read is written again (ae_gguf_writer_add_value and
 * ae_gguf_writer_add_tensor into an open_memstream FILE), read back, and compared field by field: a file
 * the reader accepts must survive the writer unchanged. Any difference aborts, which libFuzzer reports.
 *
 *   make fuzz FUZZ_SECONDS=600
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_gguf.h"
#include "gguf_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps reads from being optimized away. */
static volatile uint64_t sink;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz_gguf: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Getters over this many keys at most: each lookup is a linear search. */
#define MAX_GETTER_KEYS 64

static bool is_int_type(enum ae_gguf_type t)
{
    return t == AE_GGUF_U8 || t == AE_GGUF_I8 || t == AE_GGUF_U16 || t == AE_GGUF_I16 || t == AE_GGUF_U32 ||
           t == AE_GGUF_I32 || t == AE_GGUF_U64 || t == AE_GGUF_I64 || t == AE_GGUF_BOOL;
}

static void touch_str(const ae_gguf *g, struct ae_str s)
{
    CHECK((const uint8_t *)s.ptr >= g->base && s.len <= g->size &&
          (const uint8_t *)s.ptr + s.len <= g->base + g->size);
    if (s.len)
        sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
}

static void walk_value(const ae_gguf *g, const struct ae_gguf_value *v, int depth)
{
    CHECK(depth <= 16);
    CHECK((unsigned)v->type < AE_GGUF_TYPE_COUNT);
    switch (v->type) {
    case AE_GGUF_STRING: touch_str(g, v->str); return;
    case AE_GGUF_ARRAY: break;
    case AE_GGUF_U8: case AE_GGUF_I8: case AE_GGUF_U16: case AE_GGUF_I16: case AE_GGUF_U32: case AE_GGUF_I32:
    case AE_GGUF_F32: case AE_GGUF_BOOL: case AE_GGUF_U64: case AE_GGUF_I64: case AE_GGUF_F64:
        sink += v->u;
        return;
    case AE_GGUF_TYPE_COUNT: CHECK(!"bad type"); return;
    }
    const struct ae_gguf_array *a = &v->arr;
    CHECK((unsigned)a->type < AE_GGUF_TYPE_COUNT);
    if (a->type == AE_GGUF_STRING || a->type == AE_GGUF_ARRAY) {
        CHECK(a->n == 0 || a->elems != NULL);
        for (uint64_t i = 0; i < a->n; i++) {
            CHECK(a->elems[i].type == a->type);
            if (a->type == AE_GGUF_STRING)
                touch_str(g, ae_gguf_arr_str(a, i));
            walk_value(g, &a->elems[i], depth + 1);
        }
        return;
    }
    uint64_t size = ae_gguf_type_size(a->type);
    CHECK(size > 0 && a->n <= g->size / size);
    CHECK(a->data >= g->base && a->data + a->n * size <= g->base + g->size);
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == AE_GGUF_F32 || a->type == AE_GGUF_F64) {
            double f = ae_gguf_arr_float(a, i);
            sink += !isnan(f);
        } else {
            CHECK(is_int_type(a->type));
            sink += (uint64_t)ae_gguf_arr_int(a, i);
        }
    }
}

/* A getter's result: 1, or -1 with a message naming the file and the key (never 0: the key exists). */
static int getter_rc(const ae_gguf *g, int rc, const ae_error *err)
{
    CHECK(rc == 1 || rc == -1);
    if (rc < 0)
        CHECK(strncmp(err->msg, g->path, strlen(g->path)) == 0 && strstr(err->msg, ": key '") != NULL);
    return rc;
}

/* Every getter on one key; the ones that must succeed for its stored type do. */
static void try_getters(const ae_gguf *g, const char *key, const struct ae_gguf_kv *kv)
{
    ae_error err;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f;
    bool b;
    struct ae_str s;
    const struct ae_gguf_array *a = NULL;
    enum ae_gguf_type t = kv->value.type;
    bool integer = is_int_type(t) && t != AE_GGUF_BOOL;
    getter_rc(g, ae_gguf_get_u32(g, key, &u32, &err), &err);
    getter_rc(g, ae_gguf_get_u64(g, key, &u64, &err), &err);
    CHECK(getter_rc(g, ae_gguf_get_i64(g, key, &i64, &err), &err) == 1 ||
          !integer || t == AE_GGUF_U64);
    CHECK((getter_rc(g, ae_gguf_get_f32(g, key, &f, &err), &err) == 1) ==
          (t == AE_GGUF_F32 || t == AE_GGUF_F64));
    CHECK((getter_rc(g, ae_gguf_get_bool(g, key, &b, &err), &err) == 1) == (t == AE_GGUF_BOOL));
    CHECK((getter_rc(g, ae_gguf_get_str(g, key, &s, &err), &err) == 1) == (t == AE_GGUF_STRING));
    if (t == AE_GGUF_STRING)
        CHECK(s.ptr == kv->value.str.ptr && s.len == kv->value.str.len);
    CHECK((getter_rc(g, ae_gguf_get_arr(g, key, AE_GGUF_TYPE_COUNT, &a, &err), &err) == 1) == (t == AE_GGUF_ARRAY));
    if (t == AE_GGUF_ARRAY) {
        CHECK(a == &kv->value.arr);
        CHECK((getter_rc(g, ae_gguf_get_arr(g, key, AE_GGUF_U32, &a, &err), &err) == 1) ==
              (kv->value.arr.type == AE_GGUF_U32));
    }
}

static char *key_cstr(struct ae_str k)
{
    char *c = malloc(k.len + 1);
    CHECK(c != NULL);
    memcpy(c, k.ptr, k.len);
    c[k.len] = 0;
    return c;
}

static void walk(const ae_gguf *g)
{
    CHECK(g->version == 2 || g->version == 3);
    CHECK(g->alignment > 0 && (g->alignment & (g->alignment - 1)) == 0);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct ae_gguf_kv *kv = &g->kv[i];
        touch_str(g, kv->key);
        CHECK(kv->key.len > 0 && memchr(kv->key.ptr, 0, kv->key.len) == NULL);
        CHECK(kv->offset >= 24 && kv->offset < g->size);
        walk_value(g, &kv->value, 0);
        if (i < MAX_GETTER_KEYS) {
            char *key = key_cstr(kv->key);
            CHECK(ae_gguf_find_kv(g, key) == kv); /* keys are unique */
            try_getters(g, key, kv);
            free(key);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct ae_gguf_tensor *t = &g->tensors[i];
        CHECK(t->n_dims >= 1 && t->n_dims <= AE_GGUF_MAX_DIMS);
        CHECK(ae_type_info(t->type) != NULL);
        CHECK(t->offset % g->alignment == 0);
        const uint8_t *p = t->data;
        CHECK(p >= g->base + g->data_offset && t->n_bytes <= g->size && p + t->n_bytes <= g->base + g->size);
        if (t->n_bytes)
            sink += p[0] + p[t->n_bytes - 1];
        if (i < MAX_GETTER_KEYS)
            CHECK(ae_gguf_find_tensor(g, t->name) == t); /* names are unique */
    }
}

/* ---- Writer round trip ------------------------------------------------------------------------------- */

static bool value_equal(const struct ae_gguf_value *a, const struct ae_gguf_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case AE_GGUF_U8: case AE_GGUF_U16: case AE_GGUF_U32: case AE_GGUF_U64: return a->u == b->u;
    case AE_GGUF_I8: case AE_GGUF_I16: case AE_GGUF_I32: case AE_GGUF_I64: return a->i == b->i;
    case AE_GGUF_F32: {
        /* Widening a signalling NaN to double quiets it, so NaNs compare as NaNs. */
        float x = (float)a->f, y = (float)b->f;
        return (isnan(x) && isnan(y)) || memcmp(&x, &y, 4) == 0;
    }
    case AE_GGUF_F64: return (isnan(a->f) && isnan(b->f)) || memcmp(&a->f, &b->f, 8) == 0;
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
        return a->arr.n == 0 || memcmp(a->arr.data, b->arr.data, a->arr.n * ae_gguf_type_size(a->arr.type)) == 0;
    case AE_GGUF_TYPE_COUNT: break;
    }
    return false;
}

static void round_trip(const ae_gguf *g)
{
    ae_gguf_writer *w = ae_gguf_writer_create();
    CHECK(w != NULL);
    ae_error err;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char *key = key_cstr(g->kv[i].key);
        ae_gguf_writer_add_value(w, key, &g->kv[i].value);
        free(key);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct ae_gguf_tensor *t = &g->tensors[i];
        if (ae_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err) < 0) {
            fprintf(stderr, "fuzz_gguf: the writer refused a tensor the reader accepted: %s\n", err.msg);
            abort();
        }
    }
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK(f != NULL);
    int rc = ae_gguf_writer_write(w, f, NULL, NULL, &err);
    CHECK(fclose(f) == 0);
    ae_gguf_writer_destroy(w);
    if (rc < 0) {
        fprintf(stderr, "fuzz_gguf: the writer refused what the reader accepted: %s\n", err.msg);
        abort();
    }
    ae_gguf *h = NULL;
    if (ae_gguf_open_memory(&h, buf, n, "rewritten", &err) < 0) {
        fprintf(stderr, "fuzz_gguf: the reader rejected the writer's output: %s\n", err.msg);
        abort();
    }
    CHECK(h->version == 3);
    CHECK(h->alignment == g->alignment);
    CHECK(h->n_kv == g->n_kv && h->n_tensors == g->n_tensors);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        CHECK(h->kv[i].key.len == g->kv[i].key.len);
        CHECK(memcmp(h->kv[i].key.ptr, g->kv[i].key.ptr, g->kv[i].key.len) == 0);
        CHECK(value_equal(&h->kv[i].value, &g->kv[i].value));
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct ae_gguf_tensor *a = &g->tensors[i], *b = &h->tensors[i];
        CHECK(strcmp(a->name, b->name) == 0);
        CHECK(a->n_dims == b->n_dims && a->type == b->type && a->n_bytes == b->n_bytes);
        CHECK(a->n_elements == b->n_elements);
        CHECK(memcmp(a->ne, b->ne, sizeof a->ne) == 0);
        CHECK(a->n_bytes == 0 || memcmp(a->data, b->data, a->n_bytes) == 0);
    }
    walk(h);
    ae_gguf_close(h);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ae_gguf *g = NULL;
    ae_error err;
    err.msg[0] = 0;
    if (ae_gguf_open_memory(&g, data, size, "fuzz.gguf", &err) < 0) {
        /* Every rejection says where and what. */
        CHECK(g == NULL);
        CHECK(strncmp(err.msg, "fuzz.gguf: ", 11) == 0);
        return 0;
    }
    walk(g);
    round_trip(g);
    ae_gguf_close(g);
    return 0;
}
