/* GGUF: read (strict, memory-mapped, every offset checked). The writer is compile-time code: gguf_write.h.
 *
 * A file is validated whole before anything is returned: counts and lengths are checked for
 * overflow and against the file size, tensor infos against the type table, tensor data against the
 * data section. Values point into the mapping; strings are not NUL-terminated (struct ae_str).
 * Only versions 2 and 3 are read. Integers in the file are little-endian, as on every supported host.
 */
#ifndef AE_GGUF_H
#define AE_GGUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_error.h"
#include "ae_types.h"

#define AE_GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian uint32 */
#define AE_GGUF_DEFAULT_ALIGNMENT 32
#define AE_GGUF_MAX_DIMS 4

enum ae_gguf_type {
    AE_GGUF_U8 = 0,
    AE_GGUF_I8 = 1,
    AE_GGUF_U16 = 2,
    AE_GGUF_I16 = 3,
    AE_GGUF_U32 = 4,
    AE_GGUF_I32 = 5,
    AE_GGUF_F32 = 6,
    AE_GGUF_BOOL = 7,
    AE_GGUF_STRING = 8,
    AE_GGUF_ARRAY = 9,
    AE_GGUF_U64 = 10,
    AE_GGUF_I64 = 11,
    AE_GGUF_F64 = 12,
    AE_GGUF_TYPE_COUNT
};

/* A string inside the file: len bytes at ptr, not NUL-terminated. */
struct ae_str {
    const char *ptr;
    uint64_t len;
};

struct ae_gguf_value;

struct ae_gguf_array {
    enum ae_gguf_type type;        /* element type */
    uint64_t n;                    /* element count */
    const uint8_t *data;           /* fixed-size elements: n * size, raw little-endian, maybe unaligned */
    struct ae_gguf_value *elems;   /* STRING and ARRAY elements: n parsed values; NULL otherwise */
};

struct ae_gguf_value {
    enum ae_gguf_type type;
    union {
        uint64_t u;           /* U8, U16, U32, U64 */
        int64_t i;            /* I8, I16, I32, I64 */
        double f;             /* F32, F64 */
        bool b;               /* BOOL */
        struct ae_str str;    /* STRING */
        struct ae_gguf_array arr; /* ARRAY */
    };
};

struct ae_gguf_kv {
    struct ae_str key;
    struct ae_gguf_value value;
    uint64_t offset; /* byte offset of the key-value pair in the file */
};

struct ae_gguf_tensor {
    char *name;                     /* NUL-terminated copy */
    uint32_t n_dims;                /* 1..4 */
    int64_t ne[AE_GGUF_MAX_DIMS];   /* ne[0] is the row length (contiguous); unused dims are 1 */
    uint32_t type;                  /* enum ae_type */
    uint64_t offset;                /* relative to the data section, aligned */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;               /* inside the mapping */
    uint64_t info_offset;           /* byte offset of the tensor info in the file */
};

typedef struct ae_gguf {
    char *path;                     /* for messages */
    const uint8_t *base;            /* the file's bytes */
    uint64_t size;
    bool mapped;                    /* base is an mmap to unmap on close */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;           /* start of the data section */
    uint64_t n_kv;
    struct ae_gguf_kv *kv;
    uint64_t n_tensors;
    struct ae_gguf_tensor *tensors;
    void *arena;                    /* owns every allocation above */
} ae_gguf;

/* Maps and validates a file. On failure *out is untouched and err names the file, the byte offset,
 * the key or tensor, what was expected and what was found. */
int ae_gguf_open(ae_gguf **out, const char *path, ae_error *err);

/* The same over bytes in memory (not copied: they must outlive the handle). name is used in messages. */
int ae_gguf_open_memory(ae_gguf **out, const void *data, uint64_t size, const char *name, ae_error *err);

void ae_gguf_close(ae_gguf *g);

/* Lookups; NULL when absent. */
const struct ae_gguf_kv *ae_gguf_find_kv(const ae_gguf *g, const char *key);
const struct ae_gguf_tensor *ae_gguf_find_tensor(const ae_gguf *g, const char *name);

/* Typed getters. Each returns 1 when the key is present and its stored type fits, 0 when the key is
 * absent (*out untouched), and -1 with err set when the stored type is wrong or the value does not
 * fit. Integer getters take any integer type whose value is in range; float getters take F32/F64. */
int ae_gguf_get_u32(const ae_gguf *g, const char *key, uint32_t *out, ae_error *err);
int ae_gguf_get_u64(const ae_gguf *g, const char *key, uint64_t *out, ae_error *err);
int ae_gguf_get_i64(const ae_gguf *g, const char *key, int64_t *out, ae_error *err);
int ae_gguf_get_f32(const ae_gguf *g, const char *key, float *out, ae_error *err);
int ae_gguf_get_bool(const ae_gguf *g, const char *key, bool *out, ae_error *err);
int ae_gguf_get_str(const ae_gguf *g, const char *key, struct ae_str *out, ae_error *err);
/* An array whose elements have type elem (or any element type when elem is AE_GGUF_TYPE_COUNT). */
int ae_gguf_get_arr(const ae_gguf *g, const char *key, enum ae_gguf_type elem,
                    const struct ae_gguf_array **out, ae_error *err);

/* Element access for arrays; i < a->n and the element type must fit (asserted). */
int64_t ae_gguf_arr_int(const struct ae_gguf_array *a, uint64_t i);   /* any integer or BOOL type */
double ae_gguf_arr_float(const struct ae_gguf_array *a, uint64_t i);  /* F32 or F64 */
struct ae_str ae_gguf_arr_str(const struct ae_gguf_array *a, uint64_t i); /* STRING */

/* Names and sizes of the metadata value types; size 0 for STRING and ARRAY. */
const char *ae_gguf_type_name(enum ae_gguf_type t);
uint32_t ae_gguf_type_size(enum ae_gguf_type t);

/* Whether s equals the NUL-terminated string c. */
bool ae_str_eq(struct ae_str s, const char *c);

#endif
