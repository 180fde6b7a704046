/* The GGUF writer (version 3 files): aetherc's weights-pack metadata, `aetherc synth` and the tests'
 * hand-made files. It lives with the compiler because no generated program writes GGUF. */
#ifndef AE_GGUF_WRITE_H
#define AE_GGUF_WRITE_H

#include <stdio.h>

#include "ae_gguf.h"

typedef struct ae_gguf_writer ae_gguf_writer;

/* Supplies a tensor's bytes when it was added without data: write exactly n_bytes into buf. */
typedef int (*ae_gguf_fill_fn)(void *ctx, uint64_t tensor_index, void *buf, uint64_t n_bytes, ae_error *err);

ae_gguf_writer *ae_gguf_writer_create(void);
void ae_gguf_writer_destroy(ae_gguf_writer *w);

/* Metadata, written in the order added. Keys and strings are copied. Writing the key
 * general.alignment also sets the alignment used for tensor data. A bad key (empty, given twice, or a
 * general.alignment that is not a u32 power of two) is remembered and makes ae_gguf_writer_write fail. */
void ae_gguf_writer_add_u32(ae_gguf_writer *w, const char *key, uint32_t v);
void ae_gguf_writer_add_i32(ae_gguf_writer *w, const char *key, int32_t v);
void ae_gguf_writer_add_u64(ae_gguf_writer *w, const char *key, uint64_t v);
void ae_gguf_writer_add_f32(ae_gguf_writer *w, const char *key, float v);
void ae_gguf_writer_add_bool(ae_gguf_writer *w, const char *key, bool v);
void ae_gguf_writer_add_str(ae_gguf_writer *w, const char *key, const char *v);
/* An array of fixed-size elements: n elements of type elem, raw little-endian bytes at data. */
void ae_gguf_writer_add_arr(ae_gguf_writer *w, const char *key, enum ae_gguf_type elem, uint64_t n,
                            const void *data);
void ae_gguf_writer_add_arr_str(ae_gguf_writer *w, const char *key, uint64_t n, const char *const *strs);
/* Copies a value read from another file, nested arrays included. */
void ae_gguf_writer_add_value(ae_gguf_writer *w, const char *key, const struct ae_gguf_value *v);

/* A tensor. ne has n_dims entries. With data NULL the writer calls fill for its bytes. data (when given)
 * must stay valid until ae_gguf_writer_write returns. */
int ae_gguf_writer_add_tensor(ae_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const int64_t *ne, const void *data, ae_error *err);

int ae_gguf_writer_write(ae_gguf_writer *w, FILE *f, ae_gguf_fill_fn fill, void *ctx, ae_error *err);
int ae_gguf_writer_write_file(ae_gguf_writer *w, const char *path, ae_gguf_fill_fn fill, void *ctx,
                              ae_error *err);

#endif
