/* AVX2 row dots of IQ4_NL, IQ4_XS, TQ1_0 and TQ2_0 (matmul_iq.h) in the canonical order of
 * docs/kernels.md, bit-identical to the scalar reference of matmul.c: the integer sums are exact in any
 * order, and each block (super-block) adds fmaf((float)isum, d, acc), blocks in order.
 *
 * The 4-bit types look their table values up with a byte shuffle; the signed products use the sign
 * trick of matmul_avx2.c (activation quants lie in [-127, 127]). The ternary types multiply their digits
 * t (0, 1, 2) as unsigned bytes and subtract the sum of the activations (the super-block's bsums), which
 * gives the sum of (t - 1) * x. TQ1_0's digits are unpacked as ggml defines them: digit j of a byte b is
 * the top digit of q = b * 3^j mod 256, that is (q * 3) >> 8, which is (q >= 86) + (q >= 171).
 * Built with a target attribute; called only after the CPU check. On other hosts this file is empty.
 */
#if defined(__x86_64__)

#include "matmul_iq.h"

#include "ae_quant_blocks.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

static const int8_t iq4_values[16] = AE_IQ4_VALUES;

AVX2_FN static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* The 32 table values of 16 bytes of 4-bit indices, in value order: low nibbles, then high. */
AVX2_FN static inline __m256i iq4_lookup(const uint8_t qs[16], __m256i table)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
    return _mm256_shuffle_epi8(table, idx);
}

/* 16 int16 sums of adjacent products a[i] * b[i] (a signed, b in [-127, 127]). */
AVX2_FN static inline __m256i pairs_i8(__m256i a, __m256i b)
{
    return _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

AVX2_FN void ae_dot_iq4_nl_avx2(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_iq4_nl *w = vw;
    const struct ae_block_q8a *x = vx;
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4_values));
    const __m256i ones = _mm256_set1_epi16(1);
    float acc = 0.0f;
    for (int64_t b = 0; b < k / AE_QK; b++) {
        const __m256i q = iq4_lookup(w[b].qs, table);
        const __m256i lanes = _mm256_madd_epi16(pairs_i8(q, _mm256_loadu_si256((const __m256i *)x[b].qs)), ones);
        const float d = _cvtsh_ss(w[b].d) * x[b].d;
        acc = fmaf((float)hsum_epi32(lanes), d, acc);
    }
    *out = acc;
}

AVX2_FN void ae_dot_iq4_xs_avx2(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_iq4_xs *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4_values));
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        __m256i isum = _mm256_setzero_si256();
        for (int g = 0; g < AE_QK_K / 32; g++) {
            const int sc = ((w[i].scales_l[g / 2] >> 4 * (g % 2)) & 0x0f) | ((w[i].scales_h >> 2 * g) & 3) << 4;
            const __m256i q = iq4_lookup(w[i].qs + 16 * g, table);
            const __m256i p = pairs_i8(q, _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * g)));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_set1_epi16((short)(sc - 32))));
        }
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        acc = fmaf((float)hsum_epi32(isum), d, acc);
    }
    *out = acc;
}

/* Sum of the 256 activation quants of a Q8_K block, from its 16 group sums. */
AVX2_FN static inline int q8_k_sum(const struct ae_block_q8_k *x)
{
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    return hsum_epi32(_mm256_madd_epi16(bsums, _mm256_set1_epi16(1)));
}

/* The exact sum of t[i] * y[i] over 32 bytes, t in [0, 2], added to the 8 int32 lanes of acc. */
AVX2_FN static inline __m256i add_ternary(__m256i acc, __m256i t, const int8_t *y)
{
    const __m256i p = _mm256_maddubs_epi16(t, _mm256_loadu_si256((const __m256i *)y));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

AVX2_FN void ae_dot_tq2_0_avx2(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_tq2_0 *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i m3 = _mm256_set1_epi8(3);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        __m256i sum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            for (int l = 0; l < 4; l++) {
                sum = add_ternary(sum, _mm256_and_si256(q2, m3), x[i].qs + 128 * h + 32 * l);
                q2 = _mm256_srli_epi16(q2, 2);
            }
        }
        const int isum = hsum_epi32(sum) - q8_k_sum(&x[i]);
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        acc = fmaf((float)isum, d, acc);
    }
    *out = acc;
}

/* The digits of 32 packed bytes v, byte i multiplied by mult[i] (a power of 3) first: each result byte
 * is the top ternary digit of (v * mult mod 256), that is (q >= 86) + (q >= 171). */
AVX2_FN static inline __m256i trits(__m256i v, __m256i mult)
{
    const __m256i lo8 = _mm256_set1_epi16(0x00ff), hi8 = _mm256_set1_epi16((short)0xff00);
    const __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(v, _mm256_and_si256(mult, lo8)), lo8);
    const __m256i hi = _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(v, hi8), _mm256_srli_epi16(mult, 8)), hi8);
    const __m256i q = _mm256_or_si256(lo, hi);
    const __m256i ge86 = _mm256_cmpeq_epi8(_mm256_max_epu8(q, _mm256_set1_epi8(86)), q);
    const __m256i ge171 = _mm256_cmpeq_epi8(_mm256_max_epu8(q, _mm256_set1_epi8((char)171)), q);
    return _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(ge86, ge171));
}

AVX2_FN void ae_dot_tq1_0_avx2(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_tq1_0 *w = vw;
    const struct ae_block_q8_k *x = vx;
    /* Values 160-223: the 16 bytes qs[32..47] in both halves, digits (0, 1) and (2, 3). Values 224-255:
     * digit 4 of those bytes, then the 16 digits of qh (digit j of qh[m] is value 240 + 4j + m). */
    const __m256i m01 = _mm256_setr_epi8(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
                                         3, 3, 3, 3, 3);
    const __m256i m23 = _mm256_setr_epi8(9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27,
                                         27, 27, 27, 27, 27, 27, 27, 27);
    const __m256i m4h = _mm256_setr_epi8(81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 1, 1, 3, 3,
                                         3, 3, 9, 9, 9, 9, 27, 27, 27, 27);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const __m256i q0 = _mm256_loadu_si256((const __m256i *)w[i].qs);
        __m256i sum = _mm256_setzero_si256();
        static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
        for (int j = 0; j < 5; j++)
            sum = add_ternary(sum, trits(q0, _mm256_set1_epi8((char)pow3[j])), x[i].qs + 32 * j);
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(w[i].qs + 32));
        const __m256i q11 = _mm256_set_m128i(q1, q1);
        sum = add_ternary(sum, trits(q11, m01), x[i].qs + 160);
        sum = add_ternary(sum, trits(q11, m23), x[i].qs + 192);
        uint32_t qh;
        memcpy(&qh, w[i].qh, sizeof qh);
        const __m256i tail = _mm256_set_m128i(_mm_set1_epi32((int)qh), q1);
        sum = add_ternary(sum, trits(tail, m4h), x[i].qs + 224);
        const int isum = hsum_epi32(sum) - q8_k_sum(&x[i]);
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        acc = fmaf((float)isum, d, acc);
    }
    *out = acc;
}

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int matmul_iq_avx2_not_built;

#endif
