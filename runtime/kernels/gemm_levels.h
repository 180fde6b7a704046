/* The block kernels of each instruction-set level, one small table per weight type (struct
 * ae_gemm_level): each level's file defines the tables of the types it has kernels for, and
 * kernel_table.c gathers them into each type's struct ae_type_kernels. Internal to the runtime library.
 *
 * A table per type and level, rather than one per level holding every type, is what lets a program's
 * link (--gc-sections) keep only the kernels of the types its model has: a table is referenced only
 * through its type's struct ae_type_kernels, which only a program of that type names.
 */
#ifndef AE_GEMM_LEVELS_H
#define AE_GEMM_LEVELS_H

#include "ae_kernels.h"

/* Defines ae_gemm_<level>_<t>, the kernels of type t at that level: rows, x16 (either may be NULL). */
#define AE_GEMM_LEVEL(level, t, rows, x16)                                                                        \
    const struct ae_gemm_level ae_gemm_##level##_##t = {#level, {[AE_LAYOUT_ROWS] = rows, [AE_LAYOUT_X16] = x16}}

/* The types with kernels at every level that has any: the float types and the 32-value types with an
 * x16 layout, and the K-quants. */
#define AE_GEMM_DECLARE(level)                                                                                  \
    extern const struct ae_gemm_level ae_gemm_##level##_f32, ae_gemm_##level##_f16, ae_gemm_##level##_bf16,    \
        ae_gemm_##level##_q4_0, ae_gemm_##level##_q4_1, ae_gemm_##level##_q5_0, ae_gemm_##level##_q5_1,        \
        ae_gemm_##level##_q8_0, ae_gemm_##level##_q2_k, ae_gemm_##level##_q3_k, ae_gemm_##level##_q4_k,        \
        ae_gemm_##level##_q5_k, ae_gemm_##level##_q6_k, ae_gemm_##level##_iq4_nl, ae_gemm_##level##_iq4_xs,    \
        ae_gemm_##level##_tq1_0, ae_gemm_##level##_tq2_0

/* Declared for every level and type; only those a level's file defines may be named. */
AE_GEMM_DECLARE(scalar);
AE_GEMM_DECLARE(avx2);
AE_GEMM_DECLARE(avx512);
AE_GEMM_DECLARE(amx);
AE_GEMM_DECLARE(neon);
AE_GEMM_DECLARE(dotprod);
AE_GEMM_DECLARE(i8mm);

/* The f32 -> fp16 conversions of the levels that have one (x86-64: AVX2; aarch64: NEON). */
void ae_convert_row_f16_avx2(const float *x, uint16_t *y, int64_t n);
void ae_convert_row_f16_neon(const float *x, uint16_t *y, int64_t n);

#endif
