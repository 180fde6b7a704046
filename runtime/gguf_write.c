/* The GGUF writer: version 3 files, metadata in the order given, tensor data aligned.
 *
 * Metadata values are serialized as they are added (into a growing byte buffer), so the writer keeps no
 * typed copies. Tensor data is either referenced (the caller keeps it alive) or produced on demand by a
 * fill callback at write time, so a model larger than memory can be written tensor by tensor.
 */
#include "ae_gguf.h"

#include <errno.h>
#include <inttypes.h>
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
    uint64_t alignment;
    struct writer_tensor *tensors;
    uint64_t n_tensors, cap_tensors;
    uint64_t data_size; /* bytes of the data section so far, aligned */
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->oom)
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
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

static void begin_kv(ae_gguf_writer *w, const char *key, enum ae_gguf_type type)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}

void ae_gguf_writer_add_u32(ae_gguf_writer *w, const char *key, uint32_t v)
{
    begin_kv(w, key, AE_GGUF_U32);
    put_u32(&w->kv, v);
    if (!strcmp(key, "general.alignment") && v && !(v & (v - 1)))
        w->alignment = v;
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
        if (v->arr.elems)
            for (uint64_t i = 0; i < v->arr.n; i++)
                put_value(b, &v->arr.elems[i]);
        else
            buf_put(b, v->arr.data, v->arr.n * ae_gguf_type_size(v->arr.type));
        break;
    case AE_GGUF_TYPE_COUNT: break;
    }
}

void ae_gguf_writer_add_value(ae_gguf_writer *w, const char *key, const struct ae_gguf_value *v)
{
    begin_kv(w, key, v->type);
    put_value(&w->kv, v);
    if (!strcmp(key, "general.alignment") && v->type == AE_GGUF_U32 && v->u && !(v->u & (v->u - 1)))
        w->alignment = v->u;
}

int ae_gguf_writer_add_tensor(ae_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                              const void *data, ae_error *err)
{
    if (n_dims < 1 || n_dims > AE_GGUF_MAX_DIMS)
        return ae_fail(err, "tensor '%s': %" PRIu32 " dimensions, expected 1..%d", name, n_dims, AE_GGUF_MAX_DIMS);
    const struct ae_type_info *ti = ae_type_info(type);
    if (!ti)
        return ae_fail(err, "tensor '%s': unknown type %" PRIu32, name, type);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0 || (ne[d] && n > UINT64_MAX / (uint64_t)ne[d]))
            return ae_fail(err, "tensor '%s': bad dimension %" PRIu32 " (%" PRId64 ")", name, d, ne[d]);
        n *= (uint64_t)ne[d];
    }
    if (ne[0] % ti->block_size)
        return ae_fail(err, "tensor '%s' of type %s has %" PRId64 " elements per row, not a multiple of block size (%"
                       PRIu32 ")", name, ti->name, ne[0], ti->block_size);
    uint64_t n_bytes;
    if (ae_type_row_bytes(type, n, &n_bytes, err) < 0)
        return ae_fail_prefix(err, "tensor '%s'", name);
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
    w->data_size += (n_bytes + w->alignment - 1) / w->alignment * w->alignment;
    w->n_tensors++;
    return 0;
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
    /* Tensor offsets were laid out with the alignment in force when each was added; a later
     * general.alignment key changes it, so lay them out again. */
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        off += (w->tensors[i].n_bytes + w->alignment - 1) / w->alignment * w->alignment;
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
    if (head.oom || w->kv.oom) {
        ae_fail(err, "out of memory");
        goto free_head;
    }
    if (write_all(f, head.p, head.len, err) < 0 ||
        write_padding(f, (w->alignment - head.len % w->alignment) % w->alignment, err) < 0)
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
