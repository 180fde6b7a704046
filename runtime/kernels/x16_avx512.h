/* AVX-512 pieces that the x16 K-quant kernels of matmul_avx512.c and matmul_amx.c share: the integer
 * scales and mins of a group block, unpacked into one 32-bit lane per weight row. Internal to the runtime
 * library; x86-64 only, and only to be called from functions whose target includes AVX-512 F and BW.
 */
#ifndef AE_X16_AVX512_H
#define AE_X16_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "ae_quant_blocks.h"

#define X16_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"), always_inline)) static inline

/* The per-row integer scales of one super-block of a group, as int32 lanes: sc[g] for the groups of 32
 * (Q4_K, Q5_K: 8) or 16 (Q6_K: 16), and the mins as 16-bit pairs (m_g, m_g) per lane (Q4_K, Q5_K), so
 * that vpmaddwd with a pair of bsums gives m_g * (bsum_2g + bsum_2g+1); Q2_K's min pairs (m_2k, m_2k+1)
 * (groups of 16); Q3_K's and Q6_K's scale pairs (sc_2k, sc_2k+1) for their bias terms. */
struct kscales {
    __m512i sc[16];
    __m512i mp[8];
};

X16_AVX512_INLINE void kscales_q45(const uint8_t *scales, struct kscales *o)
{
    /* bytes j of the 16 rows at scales + 16 j (ae_x16_q4_k.scales); see k_scale_min in matmul.c */
    const __m512i a = _mm512_loadu_si512(scales), b = _mm512_loadu_si512(scales + 64), c = _mm512_loadu_si512(scales + 128);
    const __m512i m63 = _mm512_set1_epi8(63), m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    uint8_t buf[4][64] __attribute__((aligned(64)));
    _mm512_store_si512(buf[0], _mm512_and_si512(a, m63));                                          /* sc 0-3 */
    _mm512_store_si512(buf[1], _mm512_or_si512(_mm512_and_si512(c, m0f),                          /* sc 4-7 */
                                               _mm512_and_si512(_mm512_srli_epi16(a, 2), m30)));
    _mm512_store_si512(buf[2], _mm512_and_si512(b, m63));                                          /* m 0-3 */
    _mm512_store_si512(buf[3], _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(c, 4), m0f),     /* m 4-7 */
                                               _mm512_and_si512(_mm512_srli_epi16(b, 2), m30)));
    #pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
        o->sc[g] = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(buf[g / 4] + 16 * (g % 4))));
        const __m512i m = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(buf[2 + g / 4] + 16 * (g % 4))));
        o->mp[g] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
    }
}

/* (v[2k] & 0xffff) | v[2k+1] << 16: two groups' int32 values as one lane's 16-bit pair. */
X16_AVX512_INLINE void kscales_pairs(const __m512i v[16], __m512i mp[8])
{
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        mp[k] = _mm512_or_si512(_mm512_and_si512(v[2 * k], _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(v[2 * k + 1], 16));
}

X16_AVX512_INLINE void kscales_q6(const int8_t *scales, struct kscales *o)
{
    #pragma GCC unroll 16
    for (int g = 0; g < 16; g++)
        o->sc[g] = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(scales + 16 * g)));
    kscales_pairs(o->sc, o->mp);
}

/* Q2_K: scales[g] holds group g's scale in the low nibble and its min in the high one. */
X16_AVX512_INLINE void kscales_q2(const uint8_t *scales, struct kscales *o)
{
    __m512i m[16];
    #pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(scales + 16 * g)));
        o->sc[g] = _mm512_and_si512(v, _mm512_set1_epi32(0x0f));
        m[g] = _mm512_srli_epi32(v, 4);
    }
    kscales_pairs(m, o->mp);
}

/* Q3_K: 16 6-bit scales, offset by 32, from 12 bytes (see blk_q3_k in matmul.c): the low 4 bits of group
 * g in byte g % 8 (the high nibble for g >= 8), the top 2 in byte 8 + g % 4 at bit 2 (g / 4). */
X16_AVX512_INLINE void kscales_q3(const uint8_t *scales, struct kscales *o)
{
    __m512i v[AE_K_SCALE_BYTES];
    #pragma GCC unroll 12
    for (int j = 0; j < AE_K_SCALE_BYTES; j++)
        v[j] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(scales + 16 * j)));
    #pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m512i low = g < 8 ? _mm512_and_si512(v[g], _mm512_set1_epi32(0x0f)) : _mm512_srli_epi32(v[g - 8], 4);
        const __m512i high = _mm512_and_si512(_mm512_srli_epi32(v[8 + g % 4], 2 * (g / 4)), _mm512_set1_epi32(3));
        o->sc[g] = _mm512_sub_epi32(_mm512_or_si512(low, _mm512_slli_epi32(high, 4)), _mm512_set1_epi32(32));
    }
    kscales_pairs(o->sc, o->mp);
}

#endif
