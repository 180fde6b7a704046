/* The ggml type table and dequantization to f32.
 *
 * Every type llama.cpp writes has a row in ggml_types.def (block size, bytes per block). Dequantization
 * follows ggml's reference formulas in the same order of float operations, so results are bit-exact
 * with llama.cpp's to_float. Types without a dequantizer yet are reported, never read as zeros.
 */
#ifndef AE_TYPES_H
#define AE_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_error.h"

enum ae_type {
#define X(NAME, ID, STR, BS, BB) AE_TYPE_##NAME = ID,
#include "ggml_types.def"
#undef X
    AE_TYPE_ID_LIMIT = 39 /* one past the largest id ggml has used */
};

struct ae_type_info {
    const char *name;     /* "q4_0" */
    uint32_t block_size;  /* elements per block */
    uint32_t block_bytes; /* bytes per block */
};

/* The row for a type id, or NULL when the id is not a known type. */
const struct ae_type_info *ae_type_info(uint32_t type);

/* The name of a type id; "unknown" for ids without a row. */
const char *ae_type_name(uint32_t type);

/* Looks a type up by name ("q4_0", case-insensitive); returns -1 if there is none. */
int ae_type_from_name(const char *name);

/* Bytes taken by n elements of a type: n / block_size * block_bytes. Fails when n is not a multiple of
 * the block size or the result overflows. */
int ae_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out, ae_error *err);

/* Whether ae_dequantize_row can convert this type. */
bool ae_type_can_dequantize(uint32_t type);

/* Converts n elements (a multiple of the block size) stored in type to f32. Returns -1 with
 * "type X is not supported yet" for types without a dequantizer. */
int ae_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n, ae_error *err);

/* IEEE half and bfloat16 conversions (exact widening; narrowing rounds to nearest even). */
float ae_fp16_to_fp32(uint16_t h);
uint16_t ae_fp32_to_fp16(float f);
float ae_bf16_to_fp32(uint16_t h);
uint16_t ae_fp32_to_bf16(float f);

#endif
