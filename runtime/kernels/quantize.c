/* Activation quantizers: f32 rows into the blocks that the matmul's integer dot products read.
 *
 * Before a quantized matmul, llama.cpp converts the activations to the weight type's vec type; to track
 * its results we convert them the same way, following ggml's reference quantizers value for value:
 * Q8_0 and Q8_1 round x * (1/d) half away from zero (roundf), Q8_K rounds iscale * x to nearest even
 * (ggml's nearest_int) and stores an f32 scale. Q8_0 and Q8_1 go into the kernels' own block (struct
 * ae_block_q8a): the same quants, the fp16 scale's value as f32, and the negated quant sum (Q8_0) or
 * the value of Q8_1's fp16 s. Each product is its own statement so that no compiler
 * fuses it into an FMA. The conversions run once per activation row, which is cheap next to the
 * matmul; only Q8_0, which a prefill of 512 tokens spends a few percent of its time in, has an AVX2
 * path, and it gives the scalar bytes exactly (the maximum is exact in any order, the product is the
 * same single rounding, and roundf is rebuilt from truncation and the exact remainder). The F16 and
 * BF16 matmuls read their activations as f32 values rounded to fp16 / bf16 (ae_round_row_f16, _bf16),
 * so that their kernels widen them once per matmul rather than once per weight row.
 */
#include "ae_kernels.h"
#include "ae_quant_blocks.h"

#include <assert.h>
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

/* The absolute maximum of n floats (0 for an all-zero block). */
static float row_amax(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

#if defined(__x86_64__)
/* ae_quantize_row_q8_0 with AVX2, the same bytes for all inputs without NaN. */
__attribute__((target("avx2,fma,f16c"))) static void quantize_row_q8_0_avx2(const float *x, struct ae_block_q8a *y,
                                                                             int64_t nb)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < nb; i++, x += AE_QK) {
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + 8 * j);
            m = _mm256_max_ps(m, _mm256_and_ps(v[j], abs_mask));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float d = _mm_cvtss_f32(m4) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ae_fp16_to_fp32(ae_fp32_to_fp16(d));
        __m256i q[4];
        for (int j = 0; j < 4; j++) {
            const __m256 p = _mm256_mul_ps(v[j], _mm256_set1_ps(id));
            /* roundf: truncate, then step away from zero where the exact remainder is at least 1/2 */
            const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 rem = _mm256_and_ps(_mm256_sub_ps(p, t), abs_mask);
            const __m256 step = _mm256_and_ps(_mm256_cmp_ps(rem, half, _CMP_GE_OQ),
                                              _mm256_or_ps(one, _mm256_andnot_ps(abs_mask, p)));
            q[j] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
        }
        const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        const __m256i q8 = _mm256_permutevar8x32_epi32(q16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[i].qs, q8);
        const __m256i s16 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s16), _mm256_extracti128_si256(s16, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
        y[i].neg_sum = -_mm_cvtsi128_si32(s);
    }
}
#endif

/* One Q8_0 block, as quantize_row_q8_0_ref; returns the unrounded scale (Q8_1's s needs it). */
static float quantize_block_q8a(const float *x, struct ae_block_q8a *y)
{
    const float d = row_amax(x, AE_QK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    y->d = ae_fp16_to_fp32(ae_fp32_to_fp16(d));
    for (int j = 0; j < AE_QK; j++) {
        const float v = x[j] * id;
        y->qs[j] = (int8_t)roundf(v);
        sum += y->qs[j];
    }
    y->neg_sum = -sum;
    return d;
}

void ae_quantize_row_q8_0(const float *x, void *vy, int64_t k)
{
    assert(k % AE_QK == 0);
    struct ae_block_q8a *y = vy;
#if defined(__x86_64__)
    if (ae_cpu_isa() >= AE_ISA_AVX2) {
        quantize_row_q8_0_avx2(x, y, k / AE_QK);
        return;
    }
#endif
    for (int64_t i = 0; i < k / AE_QK; i++, x += AE_QK)
        quantize_block_q8a(x, &y[i]);
}

void ae_quantize_row_q8_1(const float *x, void *vy, int64_t k)
{
    assert(k % AE_QK == 0);
    struct ae_block_q8a *y = vy;
    for (int64_t i = 0; i < k / AE_QK; i++, x += AE_QK) {
        const float d = quantize_block_q8a(x, &y[i]);
        const float s = (float)-y[i].neg_sum * d;
        y[i].s = ae_fp16_to_fp32(ae_fp32_to_fp16(s));
    }
}

/* ggml's nearest_int: round to nearest, ties to even, through the float adder (|v| < 2^22). */
static int nearest_even_int(float v)
{
    const float t = v + 12582912.0f; /* 1.5 * 2^23: the integer part lands in the low mantissa bits */
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void ae_quantize_row_q8_k(const float *x, void *vy, int64_t k)
{
    assert(k % AE_QK_K == 0);
    struct ae_block_q8_k *y = vy;
    for (int64_t i = 0; i < k / AE_QK_K; i++, x += AE_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < AE_QK_K; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < AE_QK_K; j++) {
            const float v = iscale * x[j];
            const int q = nearest_even_int(v);
            y[i].qs[j] = (int8_t)(q < 127 ? q : 127);
        }
        for (int g = 0; g < AE_QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

#if defined(__x86_64__)
/* ae_round_row_f16 and ae_round_row_bf16 with AVX2 and F16C; the same bits for every input. */
__attribute__((target("avx2,fma,f16c"))) static int64_t round_row_f16_avx2(const float *x, float *y, int64_t k)
{
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    return i;
}

__attribute__((target("avx2,fma,f16c"))) static int64_t round_row_bf16_avx2(const float *x, float *y, int64_t k)
{
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u), one = _mm256_set1_epi32(1);
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const __m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
        /* nearest even: add 0x7fff plus the bit that is kept last, drop the low half */
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd));
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf); /* NaNs are quieted */
        const __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_and_si256(_mm256_blendv_epi8(r, q, nan), high));
    }
    return i;
}
#endif

void ae_round_row_f16(const float *x, float *y, int64_t k)
{
    int64_t i = 0;
#if defined(__x86_64__)
    if (ae_cpu_isa() >= AE_ISA_AVX2)
        i = round_row_f16_avx2(x, y, k);
#elif defined(__aarch64__)
    for (; i + 4 <= k; i += 4)
        vst1q_f32(y + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
#endif
    for (; i < k; i++)
        y[i] = ae_fp16_to_fp32(ae_fp32_to_fp16(x[i]));
}

void ae_round_row_bf16(const float *x, float *y, int64_t k)
{
    int64_t i = 0;
#if defined(__x86_64__)
    if (ae_cpu_isa() >= AE_ISA_AVX2)
        i = round_row_bf16_avx2(x, y, k);
#endif
    for (; i < k; i++)
        y[i] = ae_bf16_to_fp32(ae_fp32_to_bf16(x[i]));
}

void ae_convert_row_f16(const float *x, uint16_t *y, int64_t k)
{
    for (int64_t i = 0; i < k; i++)
        y[i] = ae_fp32_to_fp16(x[i]);
}

void ae_convert_row_bf16(const float *x, uint16_t *y, int64_t k)
{
    for (int64_t i = 0; i < k; i++)
        y[i] = ae_fp32_to_bf16(x[i]);
}
