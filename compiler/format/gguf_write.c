/* The GGUF writer: version 3 files, metadata in the order given, tensor data aligned.
 *
 * Metadata values are serialized as they are added (into a growing byte buffer), so the writer keeps no
 * typed copies. Tensor data is either referenced (the caller keeps it alive) or produced on demand by a
 * fill callback at write time, so a model larger than memory can be written tensor by tensor.
 *
 * The writer never produces a file the reader rejects: add_tensor checks each tensor as the reader will,
 * and a bad key (empty, duplicate, or a general.alignment that is not a u32 power of two) is remembered
 * and reported by ae_gguf_writer_write, since the add functions return nothing. The layout is llama.cpp's:
 * tensor data padded to the alignment in the order added, and no padding at all in a file without
 * tensors, so writing back what the reader read reproduces a llama.cpp file byte for byte.
 */
#include "ae_gguf.h"
#include "gguf_write.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

struct writer_tensor {
    char *name;
    uint32_t n_dims, type;
    int64_t ne[AE_GGUF_MAX_DIMS];
    uint64_t n_bytes, offset;
    const void *data;
};

struct ae_gguf_writer {
    struct buf kv;      /* serialized key-value pairs */
    uint64_t n_kv;
    char **keys;        /* n_kv copies, to find duplicates at write time */
    uint64_t cap_keys;
    bool failed;        /* a key was bad; the message is in pending and write fails with it */
    ae_error pending;
    uint64_t alignment;
    struct writer_tensor *tensors;
    uint64_t n_tensors, cap_tensors;
    uint64_t data_size; /* bytes of the data section so far, aligned */
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { buf_put(b, &v, 8); }

static void put_str(struct buf *b, const char *s, uint64_t len)
{
    put_u64(b, len);
    buf_put(b, s, len);
}

ae_gguf_writer *ae_gguf_writer_create(void)
{
    ae_gguf_writer *w = calloc(1, sizeof *w);
    if (w)
        w->alignment = AE_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void ae_gguf_writer_destroy(ae_gguf_writer *w)
{
    if (!w)
        return;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

/* Remembers the first problem with a key; ae_gguf_writer_write reports it. */
__attribute__((format(printf, 2, 3))) static void defer_fail(ae_gguf_writer *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->pending.msg, sizeof w->pending.msg, fmt, ap);
    va_end(ap);
    w->failed = true;
}

static void begin_kv(ae_gguf_writer *w, const char *key, enum ae_gguf_type type)
{
    assert((unsigned)type < AE_GGUF_TYPE_COUNT);
    if (!*key)
        defer_fail(w, "key-value pair %" PRIu64 ": the key is empty: expected at least 1 byte", w->n_kv);
    if (!strcmp(key, "general.alignment") && type != AE_GGUF_U32)
        defer_fail(w, "key 'general.alignment': wrong type: expected u32, found %s", ae_gguf_type_name(type));
    if (w->n_kv == w->cap_keys) {
        uint64_t cap = w->cap_keys ? 2 * w->cap_keys : 64;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) {
            w->kv.oom = true;
            return;
        }
        w->keys = k;
        w->cap_keys = cap;
    }
    if (!(w->keys[w->n_kv] = strdup(key))) {
        w->kv.oom = true;
        return;
    }
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}

/* general.alignment sets the alignment of tensor data; it must be a non-zero power of two. */
static void set_alignment(ae_gguf_writer *w, const char *key, uint64_t v)
{
    if (strcmp(key, "general.alignment") != 0)
        return;
    if (v == 0 || (v & (v - 1)) != 0)
        defer_fail(w, "key 'general.alignment': bad alignment: expected a non-zero power of two, found %" PRIu64, v);
    else
        w->alignment = v;
}

void ae_gguf_writer_add_u32(ae_gguf_writer *w, const char *key, uint32_t v)
{
    begin_kv(w, key, AE_GGUF_U32);
    put_u32(&w->kv, v);
    set_alignment(w, key, v);
}

void ae_gguf_writer_add_i32(ae_gguf_writer *w, const char *key, int32_t v)
{
    begin_kv(w, key, AE_GGUF_I32);
    buf_put(&w->kv, &v, 4);
}

void ae_gguf_writer_add_u64(ae_gguf_writer *w, const char *key, uint64_t v)
{
    begin_kv(w, key, AE_GGUF_U64);
    put_u64(&w->kv, v);
}

void ae_gguf_writer_add_f32(ae_gguf_writer *w, const char *key, float v)
{
    begin_kv(w, key, AE_GGUF_F32);
    buf_put(&w->kv, &v, 4);
}

void ae_gguf_writer_add_bool(ae_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    begin_kv(w, key, AE_GGUF_BOOL);
    buf_put(&w->kv, &b, 1);
}

void ae_gguf_writer_add_str(ae_gguf_writer *w, const char *key, const char *v)
{
    begin_kv(w, key, AE_GGUF_STRING);
    put_str(&w->kv, v, strlen(v));
}

void ae_gguf_writer_add_arr(ae_gguf_writer *w, const char *key, enum ae_gguf_type elem, uint64_t n, const void *data)
{
    assert(ae_gguf_type_size(elem) > 0 && "add_arr takes fixed-size elements; use add_arr_str or add_value");
    begin_kv(w, key, AE_GGUF_ARRAY);
    put_u32(&w->kv, elem);
    put_u64(&w->kv, n);
    buf_put(&w->kv, data, n * ae_gguf_type_size(elem));
}

void ae_gguf_writer_add_arr_str(ae_gguf_writer *w, const char *key, uint64_t n, const char *const *strs)
{
    begin_kv(w, key, AE_GGUF_ARRAY);
    put_u32(&w->kv, AE_GGUF_STRING);
    put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(&w->kv, strs[i], strlen(strs[i]));
}

static void put_value(struct buf *b, const struct ae_gguf_value *v)
{
    switch (v->type) {
    case AE_GGUF_U8: case AE_GGUF_U16: case AE_GGUF_U32: case AE_GGUF_U64:
    case AE_GGUF_I8: case AE_GGUF_I16: case AE_GGUF_I32: case AE_GGUF_I64: {
        /* Little-endian: the low bytes of the 64-bit value are the narrower value. */
        uint64_t x = v->u;
        buf_put(b, &x, ae_gguf_type_size(v->type));
        break;
    }
    case AE_GGUF_F32: {
        float f = (float)v->f;
        buf_put(b, &f, 4);
        break;
    }
    case AE_GGUF_F64: buf_put(b, &v->f, 8); break;
    case AE_GGUF_BOOL: {
        uint8_t x = v->b;
        buf_put(b, &x, 1);
        break;
    }
    case AE_GGUF_STRING: put_str(b, v->str.ptr, v->str.len); break;
    case AE_GGUF_ARRAY:
        put_u32(b, v->arr.type);
        put_u64(b, v->arr.n);
        if (v->arr.type == AE_GGUF_STRING || v->arr.type == AE_GGUF_ARRAY) {
            assert(v->arr.n == 0 || v->arr.elems);
            for (uint64_t i = 0; i < v->arr.n; i++)
                put_value(b, &v->arr.elems[i]);
        } else {
            buf_put(b, v->arr.data, v->arr.n * ae_gguf_type_size(v->arr.type));
        }
        break;
    case AE_GGUF_TYPE_COUNT: assert(!"not a value type"); break;
    }
}

void ae_gguf_writer_add_value(ae_gguf_writer *w, const char *key, const struct ae_gguf_value *v)
{
    begin_kv(w, key, v->type);
    put_value(&w->kv, v);
    if (v->type == AE_GGUF_U32)
        set_alignment(w, key, v->u);
}

int ae_gguf_writer_add_tensor(ae_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                              const void *data, ae_error *err)
{
    if (!*name)
        return ae_fail(err, "tensor %" PRIu64 ": the name is empty: expected at least 1 byte", w->n_tensors);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return ae_fail(err, "tensor '%s': duplicate tensor name: expected each name once, found it as tensor %"
                           PRIu64, name, i);
    if (n_dims < 1 || n_dims > AE_GGUF_MAX_DIMS)
        return ae_fail(err, "tensor '%s': bad dimension count: expected n_dims 1..%d, found %" PRIu32, name,
                       AE_GGUF_MAX_DIMS, n_dims);
    const struct ae_type_info *ti = ae_type_info(type);
    if (!ti)
        return ae_fail(err, "tensor '%s': unknown tensor type: expected a ggml type id this writer knows, found %" PRIu32,
                       name, type);
    /* The same limits as the reader: every dimension >= 0 and their product below 2^63. */
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return ae_fail(err, "tensor '%s': negative dimension: expected ne[%" PRIu32 "] >= 0, found %" PRId64, name,
                           d, ne[d]);
        if (ne[d] && n > INT64_MAX / (uint64_t)ne[d])
            return ae_fail(err, "tensor '%s': element count overflows at ne[%" PRIu32 "] = %" PRId64 ": expected a "
                           "product of dimensions below 2^63", name, d, ne[d]);
        n *= (uint64_t)ne[d];
    }
    if (ne[0] % ti->block_size)
        return ae_fail(err, "tensor '%s': row length ne[0] is not a multiple of the block size of type %s: expected a "
                       "multiple of %" PRIu32 ", found %" PRId64, name, ti->name, ti->block_size, ne[0]);
    uint64_t n_bytes;
    if (ae_type_row_bytes(type, n, &n_bytes, err) < 0)
        return ae_fail_prefix(err, "tensor '%s'", name);
    if (n_bytes > UINT64_MAX / 2 - w->data_size)
        return ae_fail(err, "tensor '%s': data section too large: %" PRIu64 " bytes after %" PRIu64, name, n_bytes,
                       w->data_size);
    if (w->n_tensors == w->cap_tensors) {
        uint64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        struct writer_tensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t)
            return ae_fail(err, "out of memory");
        w->tensors = t;
        w->cap_tensors = cap;
    }
    struct writer_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return ae_fail(err, "out of memory");
    t->n_dims = n_dims;
    t->type = type;
    for (uint32_t d = 0; d < AE_GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->n_bytes = n_bytes;
    t->offset = w->data_size;
    t->data = data;
    w->data_size += n_bytes + (w->alignment - n_bytes % w->alignment) % w->alignment;
    w->n_tensors++;
    return 0;
}

static int cmp_cstr_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The checks that can only be made once every key is in: the first bad key, duplicate keys. */
static int check_keys(ae_gguf_writer *w, ae_error *err)
{
    if (w->kv.oom)
        return ae_fail(err, "out of memory");
    if (w->failed)
        return ae_fail(err, "%s", w->pending.msg);
    char **sorted = malloc((w->n_kv ? w->n_kv : 1) * sizeof *sorted);
    if (!sorted)
        return ae_fail(err, "out of memory");
    if (w->n_kv)
        memcpy(sorted, w->keys, w->n_kv * sizeof *sorted);
    qsort(sorted, w->n_kv, sizeof *sorted, cmp_cstr_ptr);
    int rc = 0;
    for (uint64_t i = 1; i < w->n_kv && rc == 0; i++)
        if (!strcmp(sorted[i - 1], sorted[i]))
            rc = ae_fail(err, "key '%s': duplicate key: expected each key once, found it twice", sorted[i]);
    free(sorted);
    return rc;
}

static int write_all(FILE *f, const void *p, size_t n, ae_error *err)
{
    if (n && fwrite(p, 1, n, f) != n)
        return ae_fail(err, "write failed: %s", strerror(errno));
    return 0;
}

static int write_padding(FILE *f, uint64_t n, ae_error *err)
{
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (write_all(f, zeros, k, err) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

int ae_gguf_writer_write(ae_gguf_writer *w, FILE *f, ae_gguf_fill_fn fill, void *ctx, ae_error *err)
{
    if (check_keys(w, err) < 0)
        return -1;
    /* Tensor offsets were laid out with the alignment in force when each was added; a later
     * general.alignment key changes it, so lay them out again. */
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        off += w->tensors[i].n_bytes + (w->alignment - w->tensors[i].n_bytes % w->alignment) % w->alignment;
    }
    struct buf head = {0};
    put_u32(&head, AE_GGUF_MAGIC);
    put_u32(&head, 3);
    put_u64(&head, w->n_tensors);
    put_u64(&head, w->n_kv);
    buf_put(&head, w->kv.p, w->kv.len);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct writer_tensor *t = &w->tensors[i];
        put_str(&head, t->name, strlen(t->name));
        put_u32(&head, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(&head, (uint64_t)t->ne[d]);
        put_u32(&head, t->type);
        put_u64(&head, t->offset);
    }
    int rc = -1;
    void *scratch = NULL;
    if (head.oom) {
        ae_fail(err, "out of memory");
        goto free_head;
    }
    /* A file without tensors has no data section, so nothing to pad to (as llama.cpp's vocab files). */
    uint64_t head_pad = w->n_tensors ? (w->alignment - head.len % w->alignment) % w->alignment : 0;
    if (write_all(f, head.p, head.len, err) < 0 || write_padding(f, head_pad, err) < 0)
        goto free_head;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct writer_tensor *t = &w->tensors[i];
        const void *data = t->data;
        if (!data) {
            if (!fill) {
                ae_fail(err, "tensor '%s' has no data and no fill callback was given", t->name);
                goto free_scratch;
            }
            free(scratch);
            if (!(scratch = malloc(t->n_bytes ? t->n_bytes : 1))) {
                ae_fail(err, "out of memory for tensor '%s' (%" PRIu64 " bytes)", t->name, t->n_bytes);
                goto free_scratch;
            }
            if (fill(ctx, i, scratch, t->n_bytes, err) < 0)
                goto free_scratch;
            data = scratch;
        }
        if (write_all(f, data, t->n_bytes, err) < 0 ||
            write_padding(f, (w->alignment - t->n_bytes % w->alignment) % w->alignment, err) < 0)
            goto free_scratch;
    }
    rc = 0;
free_scratch:
    free(scratch);
free_head:
    free(head.p);
    return rc;
}

int ae_gguf_writer_write_file(ae_gguf_writer *w, const char *path, ae_gguf_fill_fn fill, void *ctx, ae_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ae_fail(err, "%s: cannot create: %s", path, strerror(errno));
    int rc = ae_gguf_writer_write(w, f, fill, ctx, err);
    if (fclose(f) != 0 && rc == 0)
        rc = ae_fail(err, "%s: write failed: %s", path, strerror(errno));
    if (rc < 0) {
        ae_fail_prefix(err, "%s", path);
        remove(path);
    }
    return rc;
}
