/* The GGUF reader: maps a file and validates all of it before handing anything out.
 *
 * Layout (versions 2 and 3 are identical for little-endian files):
 *   magic u32 "GGUF", version u32, n_tensors u64, n_kv u64,
 *   n_kv x (key: string, type: u32, value),
 *   n_tensors x (name: string, n_dims: u32, ne: n_dims x u64, type: u32, offset: u64),
 *   padding to general.alignment, then the data section.
 * A string is a u64 length and that many bytes. An array is an element type u32, a count u64, and the
 * elements. Every count and length is checked against the bytes left before anything is allocated, so a
 * hostile header cannot make the reader allocate more than a small multiple of the file's size.
 *
 * Every message has one shape: "<file>: byte <offset>: <subject>: <problem>: expected <x>, found <y>",
 * where the subject is the header, a key (with the element index inside arrays) or a tensor.
 */
#include "ae_gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes");

/* Nested arrays deeper than this are rejected: no real file needs more than 2, and it bounds recursion. */
#define MAX_ARRAY_DEPTH 8

/* The fewest bytes a key-value pair (key of 1 byte, 1-byte value) and a tensor info (name of 1 byte,
 * one dimension) can take; they bound the counts in the header before anything is allocated. */
#define MIN_KV_BYTES 14
#define MIN_TENSOR_INFO_BYTES 33

/* ---- A bump arena that owns every allocation of one file ------------------------------------------ */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

/* size must be at most SIZE_MAX / 2 (every caller's size is bounded by the file size). */
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

/* ---- Names in messages -------------------------------------------------------------------------- */

/* Writes a key or tensor name for a message: at most 120 bytes, control bytes and quotes escaped. */
static void quote_name(char *dst, size_t cap, const char *s, uint64_t len)
{
    size_t o = 0;
    for (uint64_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o >= 120) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        else
            dst[o++] = (char)c;
    }
    dst[o] = 0;
}

/* ---- The cursor ------------------------------------------------------------------------------------- */

struct reader {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *path;
    void **arena;
    ae_error *err;
    char subject[256];                 /* "header", "key 'x'", "tensor 'y'", ... */
    int depth;                         /* arrays entered while reading the current value */
    uint64_t index[MAX_ARRAY_DEPTH];   /* the element being read at each of those levels */
};

static uint64_t left(const struct reader *r) { return r->size - r->pos; }

/* Fails with "<file>: byte <at>: <subject>[ element [i][j]]: <message>". */
__attribute__((format(printf, 3, 4))) static int fail_at(struct reader *r, uint64_t at, const char *fmt, ...)
{
    char msg[768], where[200] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->depth > 0) {
        size_t o = (size_t)snprintf(where, sizeof where, " element ");
        for (int d = 0; d < r->depth && o < sizeof where; d++)
            o += (size_t)snprintf(where + o, sizeof where - o, "[%" PRIu64 "]", r->index[d]);
    }
    return ae_fail(r->err, "%s: byte %" PRIu64 ": %s%s: %s", r->path, at, r->subject, where, msg);
}

static void set_subject(struct reader *r, const char *kind, const char *s, uint64_t len)
{
    char name[136];
    quote_name(name, sizeof name, s, len);
    snprintf(r->subject, sizeof r->subject, "%s '%s'", kind, name);
}

static int read_bytes(struct reader *r, void *dst, uint64_t n, const char *what)
{
    if (left(r) < n)
        return fail_at(r, r->pos, "file ends inside %s: expected %" PRIu64 " byte%s, found %" PRIu64, what, n,
                       n == 1 ? "" : "s", left(r));
    memcpy(dst, r->base + r->pos, n);
    r->pos += n;
    return 0;
}

static int read_u32(struct reader *r, uint32_t *v, const char *what) { return read_bytes(r, v, 4, what); }
static int read_u64(struct reader *r, uint64_t *v, const char *what) { return read_bytes(r, v, 8, what); }

/* what names the string ("the key"); its length field is "the length of <what>". */
static int read_str(struct reader *r, struct ae_str *s, const char *what)
{
    char len_what[64];
    snprintf(len_what, sizeof len_what, "the length of %s", what);
    uint64_t at = r->pos, len = 0;
    if (read_u64(r, &len, len_what) < 0)
        return -1;
    if (len > left(r))
        return fail_at(r, at, "%s runs past the end of the file: expected a length of at most %" PRIu64
                       " (the bytes left), found %" PRIu64, what, left(r), len);
    s->ptr = (const char *)r->base + r->pos;
    s->len = len;
    r->pos += len;
    return 0;
}

static void *alloc_array(struct reader *r, uint64_t n, size_t size)
{
    /* n * size is at most a few times the file size: every caller bounded n by the bytes left. */
    assert(n <= SIZE_MAX / 2 / size);
    void *p = arena_alloc(r->arena, n ? n * size : 1);
    if (!p)
        ae_fail(r->err, "%s: out of memory allocating %" PRIu64 " bytes", r->path, (uint64_t)(n * size));
    return p;
}

/* A NUL-terminated copy in the arena. */
static char *arena_cstr(struct reader *r, struct ae_str s)
{
    char *c = arena_alloc(r->arena, s.len + 1);
    if (!c) {
        ae_fail(r->err, "%s: out of memory", r->path);
        return NULL;
    }
    memcpy(c, s.ptr, s.len);
    c[s.len] = 0;
    return c;
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
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
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

static int read_value(struct reader *r, struct ae_gguf_value *v, enum ae_gguf_type type);

/* Reads a value type (of a pair or of an array's elements). */
static int read_type(struct reader *r, enum ae_gguf_type *type, const char *what)
{
    uint64_t at = r->pos;
    uint32_t t = 0;
    if (read_u32(r, &t, what) < 0)
        return -1;
    if (t >= AE_GGUF_TYPE_COUNT)
        return fail_at(r, at, "%s is not a GGUF value type: expected 0..%d, found %" PRIu32, what,
                       AE_GGUF_TYPE_COUNT - 1, t);
    *type = (enum ae_gguf_type)t;
    return 0;
}

static int read_array(struct reader *r, struct ae_gguf_array *a)
{
    uint64_t at = r->pos;
    if (r->depth >= MAX_ARRAY_DEPTH)
        return fail_at(r, at, "arrays nested too deeply: expected at most %d levels, found %d", MAX_ARRAY_DEPTH,
                       r->depth + 1);
    if (read_type(r, &a->type, "the array's element type") < 0)
        return -1;
    enum ae_gguf_type t = a->type;
    at = r->pos;
    if (read_u64(r, &a->n, "the array's element count") < 0)
        return -1;
    /* The smallest encoding of one element bounds the count before anything is allocated. */
    uint64_t min_size = t == AE_GGUF_STRING ? 8 : t == AE_GGUF_ARRAY ? 12 : type_sizes[t];
    if (a->n > left(r) / min_size)
        return fail_at(r, at, "array of %s does not fit in the %" PRIu64 " bytes left in the file: expected at most %"
                       PRIu64 " elements, found %" PRIu64, type_names[t], left(r), left(r) / min_size, a->n);
    a->data = r->base + r->pos;
    a->elems = NULL;
    if (t != AE_GGUF_STRING && t != AE_GGUF_ARRAY) {
        r->pos += a->n * min_size;
        return 0;
    }
    if (!(a->elems = alloc_array(r, a->n, sizeof *a->elems)))
        return -1;
    int d = r->depth++;
    for (uint64_t i = 0; i < a->n; i++) {
        r->index[d] = i;
        if (read_value(r, &a->elems[i], t) < 0)
            return -1;
    }
    r->depth--;
    return 0;
}

static int read_value(struct reader *r, struct ae_gguf_value *v, enum ae_gguf_type type)
{
    v->type = type;
    switch (type) {
    case AE_GGUF_STRING:
        return read_str(r, &v->str, "the string");
    case AE_GGUF_ARRAY:
        return read_array(r, &v->arr);
    case AE_GGUF_U8: case AE_GGUF_I8: case AE_GGUF_U16: case AE_GGUF_I16: case AE_GGUF_U32:
    case AE_GGUF_I32: case AE_GGUF_F32: case AE_GGUF_BOOL: case AE_GGUF_U64: case AE_GGUF_I64:
    case AE_GGUF_F64:
        if (left(r) < type_sizes[type])
            return fail_at(r, r->pos, "file ends inside the %s value: expected %" PRIu8 " byte%s, found %" PRIu64,
                           type_names[type], type_sizes[type], type_sizes[type] == 1 ? "" : "s", left(r));
        decode_scalar(v, r->base + r->pos);
        r->pos += type_sizes[type];
        return 0;
    case AE_GGUF_TYPE_COUNT:
        break;
    }
    assert(!"unreachable: type checked by read_type");
    return -1;
}

/* Keys and tensor names: not empty, no NUL (a NUL would make them unprintable and unfindable). */
static int check_name(struct reader *r, uint64_t at, struct ae_str s, const char *what)
{
    if (s.len == 0)
        return fail_at(r, at, "%s is empty: expected at least 1 byte, found 0", what);
    const char *nul = memchr(s.ptr, 0, s.len);
    if (nul)
        return fail_at(r, at, "%s contains a NUL byte: expected none, found one at position %" PRIu64 " of %" PRIu64,
                       what, (uint64_t)(nul - s.ptr), s.len);
    return 0;
}

static int read_kv(struct reader *r, struct ae_gguf_kv *kv, uint64_t index)
{
    snprintf(r->subject, sizeof r->subject, "key-value pair %" PRIu64, index);
    kv->offset = r->pos;
    if (read_str(r, &kv->key, "the key") < 0 || check_name(r, kv->offset, kv->key, "the key") < 0)
        return -1;
    set_subject(r, "key", kv->key.ptr, kv->key.len);
    enum ae_gguf_type t = AE_GGUF_TYPE_COUNT;
    if (read_type(r, &t, "the value type") < 0)
        return -1;
    r->depth = 0;
    return read_value(r, &kv->value, t);
}

/* ---- Tensor infos --------------------------------------------------------------------------------- */

static int read_tensor_info(struct reader *r, struct ae_gguf_tensor *ti, uint64_t index)
{
    struct ae_str name;
    snprintf(r->subject, sizeof r->subject, "tensor info %" PRIu64, index);
    ti->info_offset = r->pos;
    if (read_str(r, &name, "the tensor name") < 0 || check_name(r, ti->info_offset, name, "the tensor name") < 0)
        return -1;
    if (!(ti->name = arena_cstr(r, name)))
        return -1;
    set_subject(r, "tensor", name.ptr, name.len);

    uint64_t at = r->pos;
    if (read_u32(r, &ti->n_dims, "the dimension count") < 0)
        return -1;
    if (ti->n_dims < 1 || ti->n_dims > AE_GGUF_MAX_DIMS)
        return fail_at(r, at, "bad dimension count: expected n_dims 1..%d, found %" PRIu32, AE_GGUF_MAX_DIMS,
                       ti->n_dims);
    ti->n_elements = 1;
    for (uint32_t d = 0; d < AE_GGUF_MAX_DIMS; d++)
        ti->ne[d] = 1;
    for (uint32_t d = 0; d < ti->n_dims; d++) {
        char what[32];
        snprintf(what, sizeof what, "the shape (ne[%" PRIu32 "])", d);
        uint64_t ne = 0;
        at = r->pos;
        if (read_u64(r, &ne, what) < 0)
            return -1;
        if (ne > INT64_MAX)
            return fail_at(r, at, "negative dimension: expected ne[%" PRIu32 "] >= 0, found %" PRId64, d, (int64_t)ne);
        ti->ne[d] = (int64_t)ne;
        if (ne != 0 && ti->n_elements > INT64_MAX / ne)
            return fail_at(r, at, "element count overflows at ne[%" PRIu32 "] = %" PRIu64 ": expected a product of "
                           "dimensions below 2^63, found %" PRIu64 " x %" PRIu64, d, ne, ti->n_elements, ne);
        ti->n_elements *= ne;
    }
    at = r->pos;
    if (read_u32(r, &ti->type, "the tensor type") < 0)
        return -1;
    const struct ae_type_info *t = ae_type_info(ti->type);
    if (!t)
        return fail_at(r, at, "unknown tensor type: expected a ggml type id this reader knows, found %" PRIu32,
                       ti->type);
    if (ti->ne[0] % t->block_size != 0) {
        /* Worded as llama.cpp words it, so the message is recognizable (and searchable). */
        size_t n = strlen(r->subject);
        snprintf(r->subject + n, sizeof r->subject - n, " of type %" PRIu32 " (%s) has %" PRId64 " elements per row, "
                 "not a multiple of block size (%" PRIu32 ")", ti->type, t->name, ti->ne[0], t->block_size);
        return fail_at(r, at, "expected a row length ne[0] that is a multiple of %" PRIu32 ", found %" PRId64,
                       t->block_size, ti->ne[0]);
    }
    uint64_t blocks = ti->n_elements / t->block_size;
    if (blocks > UINT64_MAX / t->block_bytes)
        return fail_at(r, at, "data size overflows: expected at most 2^64-1 bytes, found %" PRIu64 " blocks of %"
                       PRIu32 " bytes (%s)", blocks, t->block_bytes, t->name);
    ti->n_bytes = blocks * t->block_bytes;
    return read_u64(r, &ti->offset, "the data offset");
}

/* ---- The whole file -------------------------------------------------------------------------------- */

static int cmp_kv_key(const void *a, const void *b)
{
    const struct ae_gguf_kv *x = *(const struct ae_gguf_kv *const *)a, *y = *(const struct ae_gguf_kv *const *)b;
    uint64_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    if (c == 0)
        c = (x->key.len > y->key.len) - (x->key.len < y->key.len);
    /* Ties by position, so the first of two duplicates sorts first. */
    return c ? c : (x->offset > y->offset) - (x->offset < y->offset);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct ae_gguf_tensor *x = *(const struct ae_gguf_tensor *const *)a;
    const struct ae_gguf_tensor *y = *(const struct ae_gguf_tensor *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->info_offset > y->info_offset) - (x->info_offset < y->info_offset);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const struct ae_gguf_tensor *x = *(const struct ae_gguf_tensor *const *)a;
    const struct ae_gguf_tensor *y = *(const struct ae_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return (x->offset > y->offset) - (x->offset < y->offset);
    return (x->info_offset > y->info_offset) - (x->info_offset < y->info_offset);
}

/* Sorts pointers to the n elements of size sz at base; NULL when out of memory (err set). */
static const void **sorted_ptrs(struct reader *r, const void *base, uint64_t n, size_t sz,
                                int (*cmp)(const void *, const void *))
{
    const void **p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        ae_fail(r->err, "%s: out of memory", r->path);
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++)
        p[i] = (const char *)base + i * sz;
    qsort(p, n, sizeof *p, cmp);
    return p;
}

static int check_duplicates(struct reader *r, ae_gguf *g)
{
    const void **s = sorted_ptrs(r, g->kv, g->n_kv, sizeof *g->kv, cmp_kv_key);
    if (!s)
        return -1;
    int rc = 0;
    for (uint64_t i = 1; i < g->n_kv && rc == 0; i++) {
        const struct ae_gguf_kv *a = s[i - 1], *b = s[i];
        if (a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0) {
            set_subject(r, "key", b->key.ptr, b->key.len);
            rc = fail_at(r, b->offset, "duplicate key: expected each key once, found it also at byte %" PRIu64,
                         a->offset);
        }
    }
    free(s);
    if (rc < 0 || !(s = sorted_ptrs(r, g->tensors, g->n_tensors, sizeof *g->tensors, cmp_tensor_name)))
        return -1;
    for (uint64_t i = 1; i < g->n_tensors && rc == 0; i++) {
        const struct ae_gguf_tensor *a = s[i - 1], *b = s[i];
        if (strcmp(a->name, b->name) == 0) {
            set_subject(r, "tensor", b->name, strlen(b->name));
            rc = fail_at(r, b->info_offset, "duplicate tensor name: expected each name once, found it also at byte %"
                         PRIu64, a->info_offset);
        }
    }
    free(s);
    return rc;
}

static int read_alignment(struct reader *r, ae_gguf *g)
{
    g->alignment = AE_GGUF_DEFAULT_ALIGNMENT;
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, "general.alignment");
    if (!kv)
        return 0;
    snprintf(r->subject, sizeof r->subject, "key 'general.alignment'");
    if (kv->value.type != AE_GGUF_U32)
        return fail_at(r, kv->offset, "wrong type: expected u32, found %s", type_names[kv->value.type]);
    uint64_t a = kv->value.u;
    if (a == 0 || (a & (a - 1)) != 0)
        return fail_at(r, kv->offset, "bad alignment: expected a non-zero power of two, found %" PRIu64, a);
    g->alignment = a;
    return 0;
}

/* Places every tensor's data: aligned, inside the data section, no two overlapping. */
static int place_tensors(struct reader *r, ae_gguf *g)
{
    uint64_t end_of_infos = r->pos, pad = (g->alignment - end_of_infos % g->alignment) % g->alignment;
    g->data_offset = end_of_infos + pad; /* cannot overflow: end_of_infos <= size < 2^63, alignment <= 2^31 */
    if (g->n_tensors == 0)
        return 0;
    snprintf(r->subject, sizeof r->subject, "data section");
    if (g->data_offset > g->size)
        return fail_at(r, end_of_infos, "the file ends before it starts: expected a file of at least %" PRIu64
                       " bytes (tensor infos padded to alignment %" PRIu64 "), found %" PRIu64 " bytes",
                       g->data_offset, g->alignment, g->size);
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct ae_gguf_tensor *t = &g->tensors[i];
        set_subject(r, "tensor", t->name, strlen(t->name));
        if (t->offset % g->alignment != 0)
            return fail_at(r, t->info_offset, "misaligned data offset: expected a multiple of %" PRIu64 ", found %"
                           PRIu64, g->alignment, t->offset);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            char file_byte[48] = "beyond 2^64";
            if (t->offset <= UINT64_MAX - g->data_offset)
                snprintf(file_byte, sizeof file_byte, "%" PRIu64, g->data_offset + t->offset);
            return fail_at(r, t->info_offset, "data (%" PRIu64 " bytes at offset %" PRIu64 " of the data section, file"
                           " byte %s) runs past the end of the file: expected it to end within the %" PRIu64
                           " bytes of the data section", t->n_bytes, t->offset, file_byte, data_size);
        }
        t->data = g->base + g->data_offset + t->offset;
    }
    const void **s = sorted_ptrs(r, g->tensors, g->n_tensors, sizeof *g->tensors, cmp_tensor_offset);
    if (!s)
        return -1;
    /* Every tensor lies inside the data section now, so offset + n_bytes cannot overflow. */
    const struct ae_gguf_tensor *reach = s[0]; /* the tensor whose data ends furthest so far */
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors && rc == 0; i++) {
        const struct ae_gguf_tensor *b = s[i];
        if (b->n_bytes > 0 && reach->offset + reach->n_bytes > b->offset) {
            set_subject(r, "tensor", b->name, strlen(b->name));
            rc = fail_at(r, b->info_offset, "data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' [%" PRIu64 ", %"
                         PRIu64 "): expected disjoint tensor data", b->offset, b->offset + b->n_bytes, reach->name,
                         reach->offset, reach->offset + reach->n_bytes);
        }
        if (b->offset + b->n_bytes > reach->offset + reach->n_bytes)
            reach = b;
    }
    free(s);
    return rc;
}

static int read_header(struct reader *r, ae_gguf *g)
{
    snprintf(r->subject, sizeof r->subject, "header");
    if (g->size == 0)
        return fail_at(r, 0, "the file is empty: expected a GGUF header of 24 bytes, found 0 bytes");
    uint8_t m[4];
    if (read_bytes(r, m, 4, "the magic") < 0)
        return -1;
    if (memcmp(m, "GGUF", 4) != 0)
        return fail_at(r, 0, "not a GGUF file: expected the magic \"GGUF\" (47 47 55 46), found %02x %02x %02x %02x",
                       m[0], m[1], m[2], m[3]);
    uint32_t version = 0;
    if (read_u32(r, &version, "the version") < 0)
        return -1;
    if (version == 1)
        return fail_at(r, 4, "GGUF version 1 is not supported (it uses 32-bit counts; convert the file to version 3):"
                       " expected version 2 or 3, found 1");
    if (version == 0x02000000u || version == 0x03000000u)
        return fail_at(r, 4, "big-endian GGUF files are not supported: expected version 2 or 3 little-endian, found "
                       "version %" PRIu32 " big-endian", version >> 24);
    if (version != 2 && version != 3)
        return fail_at(r, 4, "unsupported GGUF version: expected 2 or 3, found %" PRIu32, version);
    g->version = version;
    if (read_u64(r, &g->n_tensors, "the tensor count") < 0 || read_u64(r, &g->n_kv, "the key-value count") < 0)
        return -1;
    if (g->n_kv > left(r) / MIN_KV_BYTES)
        return fail_at(r, 16, "key-value count does not fit in the %" PRIu64 " bytes left in the file: expected at "
                       "most %" PRIu64 ", found %" PRIu64, left(r), left(r) / MIN_KV_BYTES, g->n_kv);
    if (g->n_tensors > left(r) / MIN_TENSOR_INFO_BYTES)
        return fail_at(r, 8, "tensor count does not fit in the %" PRIu64 " bytes left in the file: expected at "
                       "most %" PRIu64 ", found %" PRIu64, left(r), left(r) / MIN_TENSOR_INFO_BYTES, g->n_tensors);
    return 0;
}

static int parse(ae_gguf *g, ae_error *err)
{
    struct reader r = {.base = g->base, .size = g->size, .path = g->path, .arena = &g->arena, .err = err};
    if (read_header(&r, g) < 0)
        return -1;
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
    if (st.st_size == 0) { /* mmap cannot map nothing; the parser gives the message */
        close(fd);
        return open_bytes(out, NULL, 0, false, path, err);
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
    char name[136];
    quote_name(name, sizeof name, kv->key.ptr, kv->key.len);
    return ae_fail(err, "%s: byte %" PRIu64 ": key '%s': wrong type: expected %s, found %s", g->path, kv->offset,
                   name, expected, ae_gguf_type_name(kv->value.type));
}

static int out_of_range(const ae_gguf *g, const struct ae_gguf_kv *kv, const char *range, ae_error *err)
{
    char name[136], found[32];
    quote_name(name, sizeof name, kv->key.ptr, kv->key.len);
    if (is_signed(kv->value.type))
        snprintf(found, sizeof found, "%" PRId64, kv->value.i);
    else
        snprintf(found, sizeof found, "%" PRIu64, kv->value.u);
    return ae_fail(err, "%s: byte %" PRIu64 ": key '%s': value out of range: expected %s, found %s (%s)", g->path,
                   kv->offset, name, range, found, ae_gguf_type_name(kv->value.type));
}

/* Any integer value as unsigned in [0, max]: 1, or -1 with err set. */
static int get_unsigned(const ae_gguf *g, const struct ae_gguf_kv *kv, uint64_t max, const char *range,
                        uint64_t *out, ae_error *err)
{
    if (is_unsigned(kv->value.type) && kv->value.u <= max)
        *out = kv->value.u;
    else if (is_signed(kv->value.type) && kv->value.i >= 0 && (uint64_t)kv->value.i <= max)
        *out = (uint64_t)kv->value.i;
    else if (is_signed(kv->value.type) || is_unsigned(kv->value.type))
        return out_of_range(g, kv, range, err);
    else
        return wrong_type(g, kv, "an integer type (u8..u64, i8..i64)", err);
    return 1;
}

int ae_gguf_get_u64(const ae_gguf *g, const char *key, uint64_t *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    return kv ? get_unsigned(g, kv, UINT64_MAX, "0..18446744073709551615", out, err) : 0;
}

int ae_gguf_get_u32(const ae_gguf *g, const char *key, uint32_t *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    uint64_t v = 0;
    if (!kv)
        return 0;
    if (get_unsigned(g, kv, UINT32_MAX, "0..4294967295", &v, err) < 0)
        return -1;
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
        return out_of_range(g, kv, "-9223372036854775808..9223372036854775807", err);
    else
        return wrong_type(g, kv, "an integer type (u8..u64, i8..i64)", err);
    return 1;
}

int ae_gguf_get_f32(const ae_gguf *g, const char *key, float *out, ae_error *err)
{
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (kv->value.type != AE_GGUF_F32 && kv->value.type != AE_GGUF_F64)
        return wrong_type(g, kv, "f32 or f64", err);
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
    if (elem != AE_GGUF_TYPE_COUNT && kv->value.arr.type != elem) {
        char name[136];
        quote_name(name, sizeof name, kv->key.ptr, kv->key.len);
        return ae_fail(err, "%s: byte %" PRIu64 ": key '%s': wrong element type: expected an array of %s, found an "
                       "array of %s", g->path, kv->offset, name, ae_gguf_type_name(elem),
                       ae_gguf_type_name(kv->value.arr.type));
    }
    *out = &kv->value.arr;
    return 1;
}

int64_t ae_gguf_arr_int(const struct ae_gguf_array *a, uint64_t i)
{
    assert(i < a->n);
    assert(is_signed(a->type) || is_unsigned(a->type) || a->type == AE_GGUF_BOOL);
    struct ae_gguf_value v = {.type = a->type};
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
