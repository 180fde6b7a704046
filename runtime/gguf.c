/* The GGUF reader: maps a file and validates all of it before handing anything out.
 *
 * Layout (versions 2 and 3 are identical for little-endian files):
 *   magic u32 "GGUF", version u32, n_tensors u64, n_kv u64,
 *   n_kv x (key: string, type: u32, value),
 *   n_tensors x (name: string, n_dims: u32, ne: n_dims x u64, type: u32, offset: u64),
 *   padding to general.alignment, then the data section.
 * A string is a u64 length and that many bytes. An array is an element type u32, a count u64, and the
 * elements. Every count and length is checked against the bytes left before anything is allocated, so a
 * hostile header cannot make the reader allocate more than the file could describe.
 */
#include "ae_gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes");

/* Nested arrays deeper than this are rejected: no real file needs more, and it bounds recursion. */
#define MAX_ARRAY_DEPTH 8

/* ---- A bump arena that owns every allocation of one file ------------------------------------------ */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

static void *arena_alloc(void **arena, size_t size)
{
    struct arena_chunk *c = *arena;
    size = (size + 15) & ~(size_t)15;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        struct arena_chunk *n = malloc(sizeof *n + cap);
        if (!n)
            return NULL;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        *arena = c = n;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

static void arena_free(void *arena)
{
    for (struct arena_chunk *c = arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
}

/* ---- The cursor ------------------------------------------------------------------------------------- */

struct reader {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *path;
    void **arena;
    ae_error *err;
};

static uint64_t left(const struct reader *r) { return r->size - r->pos; }

static int truncated(struct reader *r, uint64_t need, const char *what)
{
    return ae_fail(r->err, "%s: byte %" PRIu64 ": file ends inside %s: need %" PRIu64 " bytes, %" PRIu64 " left",
                   r->path, r->pos, what, need, left(r));
}

static int read_bytes(struct reader *r, void *dst, uint64_t n, const char *what)
{
    if (left(r) < n)
        return truncated(r, n, what);
    memcpy(dst, r->base + r->pos, n);
    r->pos += n;
    return 0;
}

static int read_u32(struct reader *r, uint32_t *v, const char *what) { return read_bytes(r, v, 4, what); }
static int read_u64(struct reader *r, uint64_t *v, const char *what) { return read_bytes(r, v, 8, what); }

static int read_str(struct reader *r, struct ae_str *s, const char *what)
{
    uint64_t at = r->pos, len = 0;
    if (read_u64(r, &len, what) < 0)
        return -1;
    if (len > left(r))
        return ae_fail(r->err, "%s: byte %" PRIu64 ": %s has length %" PRIu64 ", past the end of the file (%" PRIu64
                       " bytes left)", r->path, at, what, len, left(r));
    s->ptr = (const char *)r->base + r->pos;
    s->len = len;
    r->pos += len;
    return 0;
}

static void *alloc_array(struct reader *r, uint64_t n, size_t size)
{
    if (n > SIZE_MAX / size) {
        ae_fail(r->err, "%s: out of memory", r->path);
        return NULL;
    }
    void *p = arena_alloc(r->arena, n ? n * size : 1);
    if (!p)
        ae_fail(r->err, "%s: out of memory allocating %" PRIu64 " bytes", r->path, (uint64_t)(n * size));
    return p;
}

/* ---- Metadata values ---------------------------------------------------------------------------- */

static const char *const type_names[AE_GGUF_TYPE_COUNT] = {
    [AE_GGUF_U8] = "u8",     [AE_GGUF_I8] = "i8",         [AE_GGUF_U16] = "u16",    [AE_GGUF_I16] = "i16",
    [AE_GGUF_U32] = "u32",   [AE_GGUF_I32] = "i32",       [AE_GGUF_F32] = "f32",    [AE_GGUF_BOOL] = "bool",
    [AE_GGUF_STRING] = "string", [AE_GGUF_ARRAY] = "array", [AE_GGUF_U64] = "u64", [AE_GGUF_I64] = "i64",
    [AE_GGUF_F64] = "f64",
};

static const uint8_t type_sizes[AE_GGUF_TYPE_COUNT] = {
    [AE_GGUF_U8] = 1,  [AE_GGUF_I8] = 1,  [AE_GGUF_U16] = 2, [AE_GGUF_I16] = 2, [AE_GGUF_U32] = 4,
    [AE_GGUF_I32] = 4, [AE_GGUF_F32] = 4, [AE_GGUF_BOOL] = 1, [AE_GGUF_U64] = 8, [AE_GGUF_I64] = 8,
    [AE_GGUF_F64] = 8,
};

const char *ae_gguf_type_name(enum ae_gguf_type t)
{
    return (unsigned)t < AE_GGUF_TYPE_COUNT ? type_names[t] : "unknown";
}

uint32_t ae_gguf_type_size(enum ae_gguf_type t) { return (unsigned)t < AE_GGUF_TYPE_COUNT ? type_sizes[t] : 0; }

bool ae_str_eq(struct ae_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* Decodes one fixed-size scalar at p into v (which already has its type). */
static void decode_scalar(struct ae_gguf_value *v, const uint8_t *p)
{
    switch (v->type) {
    case AE_GGUF_U8: v->u = p[0]; break;
    case AE_GGUF_I8: v->i = (int8_t)p[0]; break;
    case AE_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v->u = x; break; }
    case AE_GGUF_I16: { int16_t x; memcpy(&x, p, 2); v->i = x; break; }
    case AE_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v->u = x; break; }
    case AE_GGUF_I32: { int32_t x; memcpy(&x, p, 4); v->i = x; break; }
    case AE_GGUF_U64: { uint64_t x; memcpy(&x, p, 8); v->u = x; break; }
    case AE_GGUF_I64: { int64_t x; memcpy(&x, p, 8); v->i = x; break; }
    case AE_GGUF_F32: { float x; memcpy(&x, p, 4); v->f = x; break; }
    case AE_GGUF_F64: { double x; memcpy(&x, p, 8); v->f = x; break; }
    case AE_GGUF_BOOL: v->b = p[0] != 0; break;
    case AE_GGUF_STRING:
    case AE_GGUF_ARRAY:
    case AE_GGUF_TYPE_COUNT: assert(!"not a scalar type"); break;
    }
}

static int read_value(struct reader *r, struct ae_gguf_value *v, enum ae_gguf_type type, const char *key, int depth);

static int read_array(struct reader *r, struct ae_gguf_array *a, const char *key, int depth)
{
    uint64_t at = r->pos;
    uint32_t t = 0;
    if (read_u32(r, &t, "an array's element type") < 0)
        return ae_fail_prefix(r->err, "key '%s'", key);
    if (t >= AE_GGUF_TYPE_COUNT)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key '%s': array element type %" PRIu32
                       " is not a GGUF value type (expected 0..%d)", r->path, at, key, t, AE_GGUF_TYPE_COUNT - 1);
    if (depth >= MAX_ARRAY_DEPTH)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key '%s': arrays nested deeper than %d levels",
                       r->path, at, key, MAX_ARRAY_DEPTH);
    a->type = t;
    at = r->pos;
    if (read_u64(r, &a->n, "an array's element count") < 0)
        return ae_fail_prefix(r->err, "key '%s'", key);
    /* The smallest encoding of one element bounds the count before anything is allocated. */
    uint64_t min_size = t == AE_GGUF_STRING ? 8 : t == AE_GGUF_ARRAY ? 12 : type_sizes[t];
    if (a->n > left(r) / min_size)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key '%s': array of %" PRIu64 " %s elements needs at least %s"
                       " bytes, but only %" PRIu64 " are left in the file", r->path, at, key, a->n,
                       type_names[t], a->n > UINT64_MAX / min_size ? "2^64" : "that many", left(r));
    a->data = r->base + r->pos;
    a->elems = NULL;
    if (t != AE_GGUF_STRING && t != AE_GGUF_ARRAY) {
        r->pos += a->n * min_size;
        return 0;
    }
    a->elems = alloc_array(r, a->n, sizeof *a->elems);
    if (!a->elems)
        return -1;
    for (uint64_t i = 0; i < a->n; i++)
        if (read_value(r, &a->elems[i], t, key, depth + 1) < 0)
            return -1;
    return 0;
}

static int read_value(struct reader *r, struct ae_gguf_value *v, enum ae_gguf_type type, const char *key, int depth)
{
    v->type = type;
    switch (type) {
    case AE_GGUF_STRING:
        if (read_str(r, &v->str, "a string value") < 0)
            return ae_fail_prefix(r->err, "key '%s'", key);
        return 0;
    case AE_GGUF_ARRAY:
        return read_array(r, &v->arr, key, depth);
    case AE_GGUF_U8: case AE_GGUF_I8: case AE_GGUF_U16: case AE_GGUF_I16: case AE_GGUF_U32:
    case AE_GGUF_I32: case AE_GGUF_F32: case AE_GGUF_BOOL: case AE_GGUF_U64: case AE_GGUF_I64:
    case AE_GGUF_F64:
        if (left(r) < type_sizes[type]) {
            truncated(r, type_sizes[type], "a value");
            return ae_fail_prefix(r->err, "key '%s'", key);
        }
        decode_scalar(v, r->base + r->pos);
        r->pos += type_sizes[type];
        return 0;
    case AE_GGUF_TYPE_COUNT:
        break;
    }
    assert(!"unreachable: type checked by the caller");
    return -1;
}

/* Keys are NUL-free in every real file; a NUL would make the key unprintable and unfindable. */
static char *key_cstr(struct reader *r, struct ae_str s)
{
    char *c = arena_alloc(r->arena, s.len + 1);
    if (c) {
        memcpy(c, s.ptr, s.len);
        c[s.len] = 0;
    }
    return c;
}

static int read_kv(struct reader *r, struct ae_gguf_kv *kv, uint64_t index)
{
    kv->offset = r->pos;
    if (read_str(r, &kv->key, "a key") < 0)
        return ae_fail_prefix(r->err, "key-value pair %" PRIu64, index);
    if (kv->key.len == 0 || memchr(kv->key.ptr, 0, kv->key.len))
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key-value pair %" PRIu64 ": key is %s", r->path, kv->offset,
                       index, kv->key.len == 0 ? "empty" : "not a valid string (it contains a NUL byte)");
    char *key = key_cstr(r, kv->key);
    if (!key)
        return ae_fail(r->err, "%s: out of memory", r->path);
    uint64_t at = r->pos;
    uint32_t t = 0;
    if (read_u32(r, &t, "a value type") < 0)
        return ae_fail_prefix(r->err, "key '%s'", key);
    if (t >= AE_GGUF_TYPE_COUNT)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key '%s': value type %" PRIu32
                       " is not a GGUF value type (expected 0..%d)", r->path, at, key, t, AE_GGUF_TYPE_COUNT - 1);
    return read_value(r, &kv->value, t, key, 0);
}

/* ---- Tensor infos --------------------------------------------------------------------------------- */

static int read_tensor_info(struct reader *r, struct ae_gguf_tensor *ti, uint64_t index)
{
    struct ae_str name;
    ti->info_offset = r->pos;
    if (read_str(r, &name, "a tensor name") < 0)
        return ae_fail_prefix(r->err, "tensor info %" PRIu64, index);
    if (name.len == 0 || memchr(name.ptr, 0, name.len))
        return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor info %" PRIu64 ": name is %s", r->path,
                       ti->info_offset, index, name.len == 0 ? "empty" : "not a valid string (it contains a NUL byte)");
    if (!(ti->name = key_cstr(r, name)))
        return ae_fail(r->err, "%s: out of memory", r->path);

    uint64_t at = r->pos;
    if (read_u32(r, &ti->n_dims, "a tensor's dimension count") < 0)
        return ae_fail_prefix(r->err, "tensor '%s'", ti->name);
    if (ti->n_dims < 1 || ti->n_dims > AE_GGUF_MAX_DIMS)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': n_dims is %" PRIu32 ", expected 1..%d", r->path,
                       at, ti->name, ti->n_dims, AE_GGUF_MAX_DIMS);
    ti->n_elements = 1;
    for (uint32_t d = 0; d < AE_GGUF_MAX_DIMS; d++) {
        ti->ne[d] = 1;
        if (d >= ti->n_dims)
            continue;
        uint64_t ne = 0;
        at = r->pos;
        if (read_u64(r, &ne, "a tensor's shape") < 0)
            return ae_fail_prefix(r->err, "tensor '%s'", ti->name);
        if (ne > INT64_MAX)
            return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': dimension %" PRIu32 " is %" PRId64
                           ", expected a count >= 0", r->path, at, ti->name, d, (int64_t)ne);
        if (ne != 0 && ti->n_elements > INT64_MAX / ne)
            return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': element count overflows at dimension %" PRIu32
                           " (%" PRIu64 ")", r->path, at, ti->name, d, ne);
        ti->ne[d] = (int64_t)ne;
        ti->n_elements *= ne;
    }
    at = r->pos;
    if (read_u32(r, &ti->type, "a tensor's type") < 0)
        return ae_fail_prefix(r->err, "tensor '%s'", ti->name);
    const struct ae_type_info *t = ae_type_info(ti->type);
    if (!t)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': type %" PRIu32 " is not a known ggml type",
                       r->path, at, ti->name, ti->type);
    if (ti->ne[0] % t->block_size != 0)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s' of type %" PRIu32 " (%s) has %" PRId64
                       " elements per row, not a multiple of block size (%" PRIu32 ")", r->path, ti->info_offset,
                       ti->name, ti->type, t->name, ti->ne[0], t->block_size);
    if (ae_type_row_bytes(ti->type, ti->n_elements, &ti->n_bytes, r->err) < 0)
        return ae_fail_prefix(r->err, "%s: byte %" PRIu64 ": tensor '%s'", r->path, ti->info_offset, ti->name);
    if (read_u64(r, &ti->offset, "a tensor's data offset") < 0)
        return ae_fail_prefix(r->err, "tensor '%s'", ti->name);
    return 0;
}

/* ---- The whole file -------------------------------------------------------------------------------- */

static int cmp_kv_key(const void *a, const void *b)
{
    const struct ae_gguf_kv *x = *(const struct ae_gguf_kv *const *)a, *y = *(const struct ae_gguf_kv *const *)b;
    uint64_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const struct ae_gguf_tensor *const *)a)->name, (*(const struct ae_gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const struct ae_gguf_tensor *x = *(const struct ae_gguf_tensor *const *)a, *y = *(const struct ae_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int check_duplicates(struct reader *r, ae_gguf *g)
{
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    const void **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return ae_fail(r->err, "%s: out of memory", r->path);
    int rc = 0;
    for (uint64_t i = 0; i < g->n_kv; i++)
        sorted[i] = &g->kv[i];
    qsort(sorted, g->n_kv, sizeof *sorted, cmp_kv_key);
    for (uint64_t i = 1; i < g->n_kv && rc == 0; i++)
        if (cmp_kv_key(&sorted[i - 1], &sorted[i]) == 0) {
            const struct ae_gguf_kv *a = sorted[i - 1], *b = sorted[i];
            if (a->offset > b->offset) {
                const struct ae_gguf_kv *t = a;
                a = b;
                b = t;
            }
            rc = ae_fail(r->err, "%s: byte %" PRIu64 ": duplicate key '%.*s' (first defined at byte %" PRIu64 ")",
                         r->path, b->offset, (int)(b->key.len > 200 ? 200 : b->key.len), b->key.ptr, a->offset);
        }
    for (uint64_t i = 0; i < g->n_tensors && rc == 0; i++)
        sorted[i] = &g->tensors[i];
    if (rc == 0)
        qsort(sorted, g->n_tensors, sizeof *sorted, cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors && rc == 0; i++)
        if (cmp_tensor_name(&sorted[i - 1], &sorted[i]) == 0) {
            const struct ae_gguf_tensor *a = sorted[i - 1], *b = sorted[i];
            if (a->info_offset > b->info_offset) {
                const struct ae_gguf_tensor *t = a;
                a = b;
                b = t;
            }
            rc = ae_fail(r->err, "%s: byte %" PRIu64 ": duplicate tensor name '%s' (first defined at byte %" PRIu64 ")",
                         r->path, b->info_offset, b->name, a->info_offset);
        }
    free(sorted);
    return rc;
}

static int read_alignment(struct reader *r, ae_gguf *g)
{
    g->alignment = AE_GGUF_DEFAULT_ALIGNMENT;
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, "general.alignment");
    if (!kv)
        return 0;
    if (kv->value.type != AE_GGUF_U32)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key 'general.alignment' has type %s, expected u32", r->path,
                       kv->offset, ae_gguf_type_name(kv->value.type));
    uint64_t a = kv->value.u;
    if (a == 0 || (a & (a - 1)) != 0)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": key 'general.alignment' is %" PRIu64
                       ", expected a non-zero power of two", r->path, kv->offset, a);
    g->alignment = a;
    return 0;
}

/* Places every tensor's data: aligned, inside the data section, no two overlapping. */
static int place_tensors(struct reader *r, ae_gguf *g)
{
    uint64_t end_of_infos = r->pos, pad = (g->alignment - end_of_infos % g->alignment) % g->alignment;
    g->data_offset = end_of_infos + pad; /* cannot overflow: end_of_infos <= size, alignment <= 2^32 */
    if (g->n_tensors == 0)
        return 0;
    if (g->data_offset > g->size)
        return ae_fail(r->err, "%s: byte %" PRIu64 ": the data section starts at byte %" PRIu64
                       " (aligned to %" PRIu64 "), past the end of the file (%" PRIu64 " bytes)",
                       r->path, end_of_infos, g->data_offset, g->alignment, g->size);
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct ae_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': data offset %" PRIu64
                           " is not a multiple of the alignment %" PRIu64, r->path, t->info_offset, t->name,
                           t->offset, g->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': data at offset %" PRIu64 " + %" PRIu64
                           " bytes ends past the end of the file (data section holds %" PRIu64 " bytes)",
                           r->path, t->info_offset, t->name, t->offset, t->n_bytes, data_size);
        t->data = g->base + g->data_offset + t->offset;
    }
    const struct ae_gguf_tensor **sorted = malloc(g->n_tensors * sizeof *sorted);
    if (!sorted)
        return ae_fail(r->err, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        sorted[i] = &g->tensors[i];
    qsort(sorted, g->n_tensors, sizeof *sorted, cmp_tensor_offset);
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors && rc == 0; i++) {
        const struct ae_gguf_tensor *a = sorted[i - 1], *b = sorted[i];
        if (a->offset + a->n_bytes > b->offset && b->n_bytes > 0)
            rc = ae_fail(r->err, "%s: byte %" PRIu64 ": tensor '%s': data at offset %" PRIu64
                         " overlaps tensor '%s' (offset %" PRIu64 ", %" PRIu64 " bytes)", r->path, b->info_offset,
                         b->name, b->offset, a->name, a->offset, a->n_bytes);
    }
    free(sorted);
    return rc;
}

static int parse(ae_gguf *g, ae_error *err)
{
    struct reader r = {g->base, g->size, 0, g->path, &g->arena, err};
    uint32_t magic, version = 0;
    if (g->size < 4)
        return ae_fail(err, "%s: byte 0: not a GGUF file: %" PRIu64 " bytes, too short for the magic", g->path, g->size);
    memcpy(&magic, g->base, 4);
    if (magic != AE_GGUF_MAGIC)
        return ae_fail(err, "%s: byte 0: not a GGUF file: magic is %02x %02x %02x %02x, expected \"GGUF\"",
                       g->path, g->base[0], g->base[1], g->base[2], g->base[3]);
    r.pos = 4;
    if (read_u32(&r, &version, "the header (version)") < 0)
        return -1;
    if (version == 1)
        return ae_fail(err, "%s: byte 4: GGUF version 1 is not supported (it uses 32-bit counts); "
                       "convert the file to version 3", g->path);
    if (version == 0x02000000 || version == 0x03000000)
        return ae_fail(err, "%s: byte 4: big-endian GGUF files are not supported", g->path);
    if (version != 2 && version != 3)
        return ae_fail(err, "%s: byte 4: GGUF version %" PRIu32 " is not supported, expected 2 or 3", g->path, version);
    g->version = version;
    if (read_u64(&r, &g->n_tensors, "the header (tensor count)") < 0 ||
        read_u64(&r, &g->n_kv, "the header (key-value count)") < 0)
        return -1;
    /* The smallest key-value pair takes 13 bytes and the smallest tensor info 33. */
    if (g->n_kv > left(&r) / 13)
        return ae_fail(err, "%s: byte 16: key-value count %" PRIu64 " cannot fit in the %" PRIu64
                       " bytes left in the file", g->path, g->n_kv, left(&r));
    if (g->n_tensors > left(&r) / 33)
        return ae_fail(err, "%s: byte 8: tensor count %" PRIu64 " cannot fit in the %" PRIu64
                       " bytes left in the file", g->path, g->n_tensors, left(&r));
    if (!(g->kv = alloc_array(&r, g->n_kv, sizeof *g->kv)))
        return -1;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (read_kv(&r, &g->kv[i], i) < 0)
            return -1;
    if (!(g->tensors = alloc_array(&r, g->n_tensors, sizeof *g->tensors)))
        return -1;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor_info(&r, &g->tensors[i], i) < 0)
            return -1;
    if (check_duplicates(&r, g) < 0 || read_alignment(&r, g) < 0)
        return -1;
    return place_tensors(&r, g);
}

static int open_bytes(ae_gguf **out, const uint8_t *base, uint64_t size, bool mapped, const char *name, ae_error *err)
{
    ae_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return ae_fail(err, "%s: out of memory", name);
    }
    g->base = base;
    g->size = size;
    g->mapped = mapped;
    if (parse(g, err) < 0) {
        g->mapped = false; /* the caller still owns the bytes on failure */
        ae_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int ae_gguf_open_memory(ae_gguf **out, const void *data, uint64_t size, const char *name, ae_error *err)
{
    return open_bytes(out, data, size, false, name, err);
}

int ae_gguf_open(ae_gguf **out, const char *path, ae_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ae_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return ae_fail(err, "%s: cannot read: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ae_fail(err, "%s: cannot read: %s", path, S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
    }
    if (st.st_size == 0) {
        close(fd);
        return ae_fail(err, "%s: byte 0: not a GGUF file: the file is empty", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return ae_fail(err, "%s: cannot map: %s", path, strerror(e));
    if (open_bytes(out, map, (uint64_t)st.st_size, true, path, err) < 0) {
        munmap(map, (size_t)st.st_size);
        return -1;
    }
    return 0;
}

void ae_gguf_close(ae_gguf *g)
{
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->size);
    arena_free(g->arena);
    free(g->path);
    free(g);
}

/* ---- Lookups and typed getters ---------------------------------------------------------------------- */

const struct ae_gguf_kv *ae_gguf_find_kv(const ae_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (ae_str_eq(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const struct ae_gguf_tensor *ae_gguf_find_tensor(const ae_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

static bool is_unsigned(enum ae_gguf_type t)
{
    return t == AE_GGUF_U8 || t == AE_GGUF_U16 || t == AE_GGUF_U32 || t == AE_GGUF_U64;
}

static bool is_signed(enum ae_gguf_type t)
{
    return t == AE_GGUF_I8 || t == AE_GGUF_I16 || t == AE_GGUF_I32 || t == AE_GGUF_I64;
}

static int wrong_type(const ae_gguf *g, const struct ae_gguf_kv *kv, const char *expected, ae_error *err)
{
    return ae_fail(err, "%s: byte %" PRIu64 ": key '%.*s' has type %s, expected %s", g->path, kv->offset,
                   (int)kv->key.len, kv->key.ptr, ae_gguf_type_name(kv->value.type), expected);
}

static int out_of_range(const ae_gguf *g, const struct ae_gguf_kv *kv, const char *range, ae_error *err)
{
    if (is_signed(kv->value.type))
        return ae_fail(err, "%s: byte %" PRIu64 ": key '%.*s' is %" PRId64 ", expected a value in %s", g->path,
                       kv->offset, (int)kv->key.len, kv->key.ptr, kv->value.i, range);
    return ae_fail(err, "%s: byte %" PRIu64 ": key '%.*s' is %" PRIu64 ", expected a value in %s", g->path,
                   kv->offset, (int)kv->key.len, kv->key.ptr, kv->value.u, range);
}

int ae_gguf_get_u64(const ae_gguf *g, const char *key, uint64_t *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (is_unsigned(kv->value.type))
        *out = kv->value.u;
    else if (is_signed(kv->value.type) && kv->value.i >= 0)
        *out = (uint64_t)kv->value.i;
    else if (is_signed(kv->value.type))
        return out_of_range(g, kv, "0..2^64-1", err);
    else
        return wrong_type(g, kv, "an unsigned integer", err);
    return 1;
}

int ae_gguf_get_u32(const ae_gguf *g, const char *key, uint32_t *out, ae_error *err)
{
    uint64_t v;
    int rc = ae_gguf_get_u64(g, key, &v, err);
    if (rc <= 0)
        return rc;
    if (v > UINT32_MAX)
        return out_of_range(g, ae_gguf_find_kv(g, key), "0..4294967295", err);
    *out = (uint32_t)v;
    return 1;
}

int ae_gguf_get_i64(const ae_gguf *g, const char *key, int64_t *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (is_signed(kv->value.type))
        *out = kv->value.i;
    else if (is_unsigned(kv->value.type) && kv->value.u <= INT64_MAX)
        *out = (int64_t)kv->value.u;
    else if (is_unsigned(kv->value.type))
        return out_of_range(g, kv, "-2^63..2^63-1", err);
    else
        return wrong_type(g, kv, "an integer", err);
    return 1;
}

int ae_gguf_get_f32(const ae_gguf *g, const char *key, float *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (kv->value.type != AE_GGUF_F32 && kv->value.type != AE_GGUF_F64)
        return wrong_type(g, kv, "f32", err);
    *out = (float)kv->value.f;
    return 1;
}

int ae_gguf_get_bool(const ae_gguf *g, const char *key, bool *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (kv->value.type != AE_GGUF_BOOL)
        return wrong_type(g, kv, "bool", err);
    *out = kv->value.b;
    return 1;
}

int ae_gguf_get_str(const ae_gguf *g, const char *key, struct ae_str *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (kv->value.type != AE_GGUF_STRING)
        return wrong_type(g, kv, "string", err);
    *out = kv->value.str;
    return 1;
}

int ae_gguf_get_arr(const ae_gguf *g, const char *key, enum ae_gguf_type elem, const struct ae_gguf_array **out,
                    ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (kv->value.type != AE_GGUF_ARRAY)
        return wrong_type(g, kv, "array", err);
    if (elem != AE_GGUF_TYPE_COUNT && kv->value.arr.type != elem)
        return ae_fail(err, "%s: byte %" PRIu64 ": key '%s' is an array of %s, expected an array of %s", g->path,
                       kv->offset, key, ae_gguf_type_name(kv->value.arr.type), ae_gguf_type_name(elem));
    *out = &kv->value.arr;
    return 1;
}

int64_t ae_gguf_arr_int(const struct ae_gguf_array *a, uint64_t i)
{
    assert(i < a->n);
    struct ae_gguf_value v = {.type = a->type};
    assert(is_signed(a->type) || is_unsigned(a->type) || a->type == AE_GGUF_BOOL);
    decode_scalar(&v, a->data + i * type_sizes[a->type]);
    return is_signed(a->type) ? v.i : a->type == AE_GGUF_BOOL ? v.b : (int64_t)v.u;
}

double ae_gguf_arr_float(const struct ae_gguf_array *a, uint64_t i)
{
    assert(i < a->n && (a->type == AE_GGUF_F32 || a->type == AE_GGUF_F64));
    struct ae_gguf_value v = {.type = a->type};
    decode_scalar(&v, a->data + i * type_sizes[a->type]);
    return v.f;
}

struct ae_str ae_gguf_arr_str(const struct ae_gguf_array *a, uint64_t i)
{
    assert(i < a->n && a->type == AE_GGUF_STRING);
    return a->elems[i].str;
}
