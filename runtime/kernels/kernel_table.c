/* The kernel table of each weight type (struct ae_type_kernels), the tables a program uses, and the
 * choice of a block kernel for a type and layout at the current instruction-set level.
 *
 * Each type's table points to that type's small table at each level (gemm_levels.h), defined in the
 * level's file. A program names the tables of its model's types (ae_model.kernels) and gives them to
 * ae_kernels_use at start-up; nothing else refers to them, so a program linked with --gc-sections holds
 * the SIMD kernels of its own types only. Tools and tests give ae_kernels_all. The level is chosen at
 * every call, as before: the best level at or under the current one (ae_cpu_isa: the CPU's features and
 * the AETHER_ISA cap) that has a kernel of its own for the type and layout, the scalar one last.
 */
#include "ae_kernels.h"
#include "gemm_levels.h"

#define TYPE_KERNELS(t, T, ...) const struct ae_type_kernels ae_kernels_##t = {AE_TYPE_##T, {&ae_gemm_scalar_##t, __VA_ARGS__}}

#if defined(__x86_64__)
/* levels: AVX2, AVX-512, AMX */
TYPE_KERNELS(f32, F32, &ae_gemm_avx2_f32, &ae_gemm_avx512_f32, NULL);
TYPE_KERNELS(f16, F16, &ae_gemm_avx2_f16, &ae_gemm_avx512_f16, NULL);
TYPE_KERNELS(bf16, BF16, &ae_gemm_avx2_bf16, &ae_gemm_avx512_bf16, NULL);
TYPE_KERNELS(q4_0, Q4_0, &ae_gemm_avx2_q4_0, &ae_gemm_avx512_q4_0, &ae_gemm_amx_q4_0);
TYPE_KERNELS(q4_1, Q4_1, &ae_gemm_avx2_q4_1, &ae_gemm_avx512_q4_1, NULL);
TYPE_KERNELS(q5_0, Q5_0, &ae_gemm_avx2_q5_0, &ae_gemm_avx512_q5_0, NULL);
TYPE_KERNELS(q5_1, Q5_1, &ae_gemm_avx2_q5_1, &ae_gemm_avx512_q5_1, NULL);
TYPE_KERNELS(q8_0, Q8_0, &ae_gemm_avx2_q8_0, &ae_gemm_avx512_q8_0, &ae_gemm_amx_q8_0);
TYPE_KERNELS(q2_k, Q2_K, &ae_gemm_avx2_q2_k, &ae_gemm_avx512_q2_k, &ae_gemm_amx_q2_k);
TYPE_KERNELS(q3_k, Q3_K, &ae_gemm_avx2_q3_k, &ae_gemm_avx512_q3_k, &ae_gemm_amx_q3_k);
TYPE_KERNELS(q4_k, Q4_K, &ae_gemm_avx2_q4_k, &ae_gemm_avx512_q4_k, &ae_gemm_amx_q4_k);
TYPE_KERNELS(q5_k, Q5_K, &ae_gemm_avx2_q5_k, &ae_gemm_avx512_q5_k, &ae_gemm_amx_q5_k);
TYPE_KERNELS(q6_k, Q6_K, &ae_gemm_avx2_q6_k, &ae_gemm_avx512_q6_k, &ae_gemm_amx_q6_k);
TYPE_KERNELS(iq4_nl, IQ4_NL, &ae_gemm_avx2_iq4_nl, NULL, NULL);
TYPE_KERNELS(iq4_xs, IQ4_XS, &ae_gemm_avx2_iq4_xs, NULL, NULL);
TYPE_KERNELS(tq1_0, TQ1_0, &ae_gemm_avx2_tq1_0, NULL, NULL);
TYPE_KERNELS(tq2_0, TQ2_0, &ae_gemm_avx2_tq2_0, NULL, NULL);
#elif defined(__aarch64__)
/* levels: NEON, dotprod, i8mm */
TYPE_KERNELS(f32, F32, &ae_gemm_neon_f32, &ae_gemm_dotprod_f32, NULL);
TYPE_KERNELS(f16, F16, &ae_gemm_neon_f16, &ae_gemm_dotprod_f16, NULL);
TYPE_KERNELS(bf16, BF16, &ae_gemm_neon_bf16, &ae_gemm_dotprod_bf16, NULL);
TYPE_KERNELS(q4_0, Q4_0, &ae_gemm_neon_q4_0, &ae_gemm_dotprod_q4_0, NULL);
TYPE_KERNELS(q4_1, Q4_1, &ae_gemm_neon_q4_1, &ae_gemm_dotprod_q4_1, NULL);
TYPE_KERNELS(q5_0, Q5_0, &ae_gemm_neon_q5_0, &ae_gemm_dotprod_q5_0, NULL);
TYPE_KERNELS(q5_1, Q5_1, &ae_gemm_neon_q5_1, &ae_gemm_dotprod_q5_1, NULL);
TYPE_KERNELS(q8_0, Q8_0, &ae_gemm_neon_q8_0, &ae_gemm_dotprod_q8_0, NULL);
TYPE_KERNELS(q2_k, Q2_K, &ae_gemm_neon_q2_k, &ae_gemm_dotprod_q2_k, &ae_gemm_i8mm_q2_k);
TYPE_KERNELS(q3_k, Q3_K, &ae_gemm_neon_q3_k, &ae_gemm_dotprod_q3_k, &ae_gemm_i8mm_q3_k);
TYPE_KERNELS(q4_k, Q4_K, &ae_gemm_neon_q4_k, &ae_gemm_dotprod_q4_k, &ae_gemm_i8mm_q4_k);
TYPE_KERNELS(q5_k, Q5_K, &ae_gemm_neon_q5_k, &ae_gemm_dotprod_q5_k, &ae_gemm_i8mm_q5_k);
TYPE_KERNELS(q6_k, Q6_K, &ae_gemm_neon_q6_k, &ae_gemm_dotprod_q6_k, &ae_gemm_i8mm_q6_k);
TYPE_KERNELS(iq4_nl, IQ4_NL, NULL, NULL, NULL);
TYPE_KERNELS(iq4_xs, IQ4_XS, NULL, NULL, NULL);
TYPE_KERNELS(tq1_0, TQ1_0, NULL, NULL, NULL);
TYPE_KERNELS(tq2_0, TQ2_0, NULL, NULL, NULL);
#else
/* the scalar kernels only */
TYPE_KERNELS(f32, F32, NULL);
TYPE_KERNELS(f16, F16, NULL);
TYPE_KERNELS(bf16, BF16, NULL);
TYPE_KERNELS(q4_0, Q4_0, NULL);
TYPE_KERNELS(q4_1, Q4_1, NULL);
TYPE_KERNELS(q5_0, Q5_0, NULL);
TYPE_KERNELS(q5_1, Q5_1, NULL);
TYPE_KERNELS(q8_0, Q8_0, NULL);
TYPE_KERNELS(q2_k, Q2_K, NULL);
TYPE_KERNELS(q3_k, Q3_K, NULL);
TYPE_KERNELS(q4_k, Q4_K, NULL);
TYPE_KERNELS(q5_k, Q5_K, NULL);
TYPE_KERNELS(q6_k, Q6_K, NULL);
TYPE_KERNELS(iq4_nl, IQ4_NL, NULL);
TYPE_KERNELS(iq4_xs, IQ4_XS, NULL);
TYPE_KERNELS(tq1_0, TQ1_0, NULL);
TYPE_KERNELS(tq2_0, TQ2_0, NULL);
#endif

const struct ae_type_kernels *const ae_kernels_all[] = {
    &ae_kernels_f32,  &ae_kernels_f16,  &ae_kernels_bf16, &ae_kernels_q4_0,   &ae_kernels_q4_1,   &ae_kernels_q5_0,
    &ae_kernels_q5_1, &ae_kernels_q8_0, &ae_kernels_q2_k, &ae_kernels_q3_k,   &ae_kernels_q4_k,   &ae_kernels_q5_k,
    &ae_kernels_q6_k, &ae_kernels_iq4_nl, &ae_kernels_iq4_xs, &ae_kernels_tq1_0, &ae_kernels_tq2_0, NULL,
};

/* The tables given, by type. */
static const struct ae_type_kernels *given[AE_TYPE_ID_LIMIT];

void ae_kernels_use(const struct ae_type_kernels *const *types)
{
    for (; types && *types; types++)
        if ((*types)->type < AE_TYPE_ID_LIMIT)
            given[(*types)->type] = *types;
}

const struct ae_type_kernels *ae_kernels_of(uint32_t type)
{
    return type < AE_TYPE_ID_LIMIT ? given[type] : NULL;
}

/* The level table whose kernel the matmul uses for this type and layout now; NULL when there is none. */
static const struct ae_gemm_level *gemm_level(uint32_t type, enum ae_layout layout)
{
    const struct ae_type_kernels *tk = ae_kernels_of(type);
    if (!tk || (unsigned)layout >= AE_LAYOUT_COUNT || !ae_layout_supports(type, layout))
        return NULL;
    for (int level = (int)ae_cpu_isa(); level >= AE_ISA_SCALAR; level--)
        if (tk->level[level] && tk->level[level]->gemm[layout])
            return tk->level[level];
    return NULL;
}

ae_gemm_fn ae_kernel_gemm(uint32_t type, enum ae_layout layout)
{
    const struct ae_gemm_level *l = gemm_level(type, layout);
    return l ? l->gemm[layout] : NULL;
}

const char *ae_kernel_gemm_level(uint32_t type, enum ae_layout layout)
{
    const struct ae_gemm_level *l = gemm_level(type, layout);
    return l ? l->name : NULL;
}

void ae_convert_row_f16_fast(const float *x, uint16_t *y, int64_t n)
{
#if defined(__x86_64__)
    if (ae_cpu_isa() >= AE_ISA_AVX2) {
        ae_convert_row_f16_avx2(x, y, n);
        return;
    }
#elif defined(__aarch64__)
    if (ae_cpu_isa() >= AE_ISA_NEON) {
        ae_convert_row_f16_neon(x, y, n);
        return;
    }
#endif
    ae_convert_row_f16(x, y, n);
}
