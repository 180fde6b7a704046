/* Dequantization of ggml tensor types to f32, and the fp16/bf16 conversions it rests on.
 *
 * The reference interpreter, the constant folder and the tests read weights through this file, so it
 * must agree with llama.cpp bit for bit: each type's formula is ggml's reference dequantizer
 * (dequantize_row_* in ggml-quants.c) evaluated in the same order of float operations, one rounding
 * per operation. Each product is written as its own statement before a sum uses it, so that no
 * compiler fuses the two into one FMA: gcc in ISO C mode (-std=c17) does not contract at all, and
 * clang's default contracts only within one expression. Regrouping (d * sc) * q as d * (sc * q), or
 * fusing (as gcc would in GNU mode with -ffp-contract=fast), moves some values by an ulp, which the
 * reference tests catch.
 *
 * The half-precision conversions are plain integer code, exact on every host: widening is exact,
 * narrowing rounds to nearest even, and NaNs stay NaNs (quieted, as ggml's conversions do).
 */
#include "ae_quant_blocks.h"
#include "ae_types.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

/* ---- fp16 and bf16 ---------------------------------------------------------------------------- */

static uint32_t bits_of_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Float: 1, 8 (bias 127), 23. */
float ae_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;

    if (exp == 0x1f) /* inf, or NaN made quiet with its payload kept */
        return float_of_bits(sign | 0x7f800000u | (man ? 0x00400000u | (man << 13) : 0));
    if (exp != 0) /* normal: rebias the exponent */
        return float_of_bits(sign | ((exp + 127 - 15) << 23) | (man << 13));
    if (man == 0)
        return float_of_bits(sign);
    /* subnormal man * 2^-24: shift the leading one up to the implicit bit, lowering the exponent */
    uint32_t e = 127 - 14;
    while (!(man & 0x400u)) {
        man <<= 1;
        e--;
    }
    return float_of_bits(sign | (e << 23) | ((man & 0x3ffu) << 13));
}

/* value / 2^shift rounded to nearest, ties to even (1 <= shift <= 31). */
static uint32_t round_shifted(uint32_t value, uint32_t shift)
{
    uint32_t q = value >> shift;
    uint32_t rem = value & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return q;
}

uint16_t ae_fp32_to_fp16(float f)
{
    uint32_t u = bits_of_float(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;

    if (a > 0x7f800000u) /* NaN: the canonical quiet half NaN */
        return sign | 0x7e00u;
    if (a >= 0x477ff000u) /* 65520 and up, inf included, round to inf (65504 is odd, so the tie goes up) */
        return sign | 0x7c00u;
    if (a >= 0x38800000u) { /* normal half (2^-14 and up): drop 13 mantissa bits, rounding; a carry
                              * into the exponent is the correct next binade */
        uint32_t rebased = a - ((127u - 15u) << 23);
        return sign | (uint16_t)round_shifted(rebased, 13);
    }
    if (a <= 0x33000000u) /* at most 2^-25, half the smallest subnormal: zero (the tie goes to even 0) */
        return sign;
    /* subnormal half: the result is a * 2^24 rounded; a = sig * 2^(e - 150), so shift by 126 - e */
    uint32_t e = a >> 23;
    uint32_t sig = (a & 0x7fffffu) | 0x800000u;
    return sign | (uint16_t)round_shifted(sig, 126 - e); /* 1024 here is the smallest normal's encoding */
}

float ae_bf16_to_fp32(uint16_t h)
{
    return float_of_bits((uint32_t)h << 16);
}

/* Rounds to nearest even (subnormals included, overflow to inf); NaNs are quieted, as ggml does. */
uint16_t ae_fp32_to_bf16(float f)
{
    uint32_t u = bits_of_float(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)round_shifted(u, 16); /* at most 0xff80, -inf */
}

/* ---- the dequantizers ------------------------------------------------------------------------- */

/* Each converts nb blocks at src (any alignment) into nb * block_size floats at dst. Blocks are
 * copied out with memcpy so that their fields can be read wherever the row starts. */
typedef void (*dequant_fn)(const uint8_t *src, float *dst, int64_t nb);

static void dequant_f32(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += 4)
        memcpy(&dst[i], src, 4);
}

static void dequant_f16(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += 2) {
        uint16_t h;
        memcpy(&h, src, 2);
        dst[i] = ae_fp16_to_fp32(h);
    }
}

static void dequant_bf16(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += 2) {
        uint16_t h;
        memcpy(&h, src, 2);
        dst[i] = ae_bf16_to_fp32(h);
    }
}

/* The 32 fifth bits of a Q5 block, bit j for element j. */
static uint32_t q5_high_bits(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* x = d * (q - 8) */
static void dequant_q4_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q4_0), y += AE_QK) {
        struct ae_block_q4_0 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int j = 0; j < AE_QK / 2; j++) {
            const int q0 = (b.qs[j] & 0x0f) - 8;
            const int q1 = (b.qs[j] >> 4) - 8;
            y[j] = q0 * d;
            y[j + AE_QK / 2] = q1 * d;
        }
    }
}

/* x = d * q + m */
static void dequant_q4_1(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q4_1), y += AE_QK) {
        struct ae_block_q4_1 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        const float m = ae_fp16_to_fp32(b.m);
        for (int j = 0; j < AE_QK / 2; j++) {
            const float p0 = (b.qs[j] & 0x0f) * d;
            const float p1 = (b.qs[j] >> 4) * d;
            y[j] = p0 + m;
            y[j + AE_QK / 2] = p1 + m;
        }
    }
}

/* x = d * (q - 16), q = low nibble | fifth bit << 4 */
static void dequant_q5_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q5_0), y += AE_QK) {
        struct ae_block_q5_0 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        const uint32_t qh = q5_high_bits(b.qh);
        for (int j = 0; j < AE_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + AE_QK / 2)) & 1) << 4;
            const int q0 = ((b.qs[j] & 0x0f) | h0) - 16;
            const int q1 = ((b.qs[j] >> 4) | h1) - 16;
            y[j] = q0 * d;
            y[j + AE_QK / 2] = q1 * d;
        }
    }
}

/* x = d * q + m, q as in Q5_0 */
static void dequant_q5_1(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q5_1), y += AE_QK) {
        struct ae_block_q5_1 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        const float m = ae_fp16_to_fp32(b.m);
        const uint32_t qh = q5_high_bits(b.qh);
        for (int j = 0; j < AE_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + AE_QK / 2)) & 1) << 4;
            const float p0 = ((b.qs[j] & 0x0f) | h0) * d;
            const float p1 = ((b.qs[j] >> 4) | h1) * d;
            y[j] = p0 + m;
            y[j + AE_QK / 2] = p1 + m;
        }
    }
}

/* x = d * q */
static void dequant_q8_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q8_0), y += AE_QK) {
        struct ae_block_q8_0 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int j = 0; j < AE_QK; j++)
            y[j] = b.qs[j] * d;
    }
}

/* Q2_K: 16 groups of 16. Byte qs[32*h + l] holds, in its bit pairs 0-1, 2-3, 4-5, 6-7, the quants of
 * elements 128*h + l, +32, +64, +96 (l < 32). Group g has scale d * (scales[g] & 15) and min
 * dmin * (scales[g] >> 4); x = (d * sc) * q - dmin * m. */
static void dequant_q2_k(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q2_k)) {
        struct ae_block_q2_k b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        const float dmin = ae_fp16_to_fp32(b.dmin);
        int g = 0;
        for (int h = 0; h < AE_QK_K / 128; h++) {
            const uint8_t *q = b.qs + 32 * h;
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++, g++) { /* elements l and l + 16 of the 32 */
                    const float dl = d * (b.scales[g] & 0x0f);
                    const float ml = dmin * (b.scales[g] >> 4);
                    for (int l = 0; l < 16; l++) {
                        const float p = dl * ((q[16 * half + l] >> shift) & 3);
                        *y++ = p - ml;
                    }
                }
            }
        }
    }
}

/* Q3_K: 16 groups of 16. The low 2 bits are packed as in Q2_K; the third bit of element
 * 32 * k + l (k < 8, l < 32) is bit k of hmask[l], and a clear bit subtracts 4. The 16 6-bit scales:
 * low nibbles in scales[0..7] (groups 0-7 low, 8-15 high nibble), high 2 bits of group g in bits
 * 2 * (g / 4) of scales[8 + g % 4]. x = (d * (sc - 32)) * q3, q3 in [-4, 3]. */
static void dequant_q3_k(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q3_k)) {
        struct ae_block_q3_k b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);

        int sc[16];
        for (int g = 0; g < 16; g++) {
            const int low = g < 8 ? b.scales[g] & 0x0f : b.scales[g - 8] >> 4;
            const int high = (b.scales[8 + g % 4] >> (2 * (g / 4))) & 3;
            sc[g] = (low | high << 4) - 32;
        }

        int g = 0;
        uint8_t mask = 1;
        for (int h = 0; h < AE_QK_K / 128; h++) {
            const uint8_t *q = b.qs + 32 * h;
            for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
                for (int half = 0; half < 2; half++, g++) {
                    const float dl = d * sc[g];
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        const int q3 = ((q[l] >> shift) & 3) - ((b.hmask[l] & mask) ? 0 : 4);
                        *y++ = dl * q3;
                    }
                }
            }
        }
    }
}

/* The 6-bit scale and min of group g (< 8) of a Q4_K or Q5_K block: groups 0-3 in the low 6 bits of
 * bytes 0-3 (scales) and 4-7 (mins); groups 4-7 have their low 4 bits in the nibbles of bytes 8-11
 * and their top 2 bits in the top bits of bytes 0-3 (scales) and 4-7 (mins). */
static void k_scale_min(const uint8_t s[AE_K_SCALE_BYTES], int g, int *sc, int *m)
{
    if (g < 4) {
        *sc = s[g] & 63;
        *m = s[g + 4] & 63;
    } else {
        *sc = (s[g + 4] & 0x0f) | (s[g - 4] >> 6) << 4;
        *m = (s[g + 4] >> 4) | (s[g] >> 6) << 4;
    }
}

/* Q4_K: 8 groups of 32. Byte qs[32*h + l] holds element 64*h + l in its low nibble and 64*h + 32 + l
 * in its high nibble. x = (d * sc) * q - dmin * m. */
static void dequant_q4_k(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q4_k)) {
        struct ae_block_q4_k b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        const float dmin = ae_fp16_to_fp32(b.dmin);
        for (int h = 0; h < AE_QK_K / 64; h++) {
            const uint8_t *q = b.qs + 32 * h;
            int sc, m;
            k_scale_min(b.scales, 2 * h, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            k_scale_min(b.scales, 2 * h + 1, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) {
                const float p = d1 * (q[l] & 0x0f);
                *y++ = p - m1;
            }
            for (int l = 0; l < 32; l++) {
                const float p = d2 * (q[l] >> 4);
                *y++ = p - m2;
            }
        }
    }
}

/* Q5_K: Q4_K plus a fifth bit: bit 2h of qh[l] for element 64*h + l, bit 2h+1 for 64*h + 32 + l. */
static void dequant_q5_k(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q5_k)) {
        struct ae_block_q5_k b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        const float dmin = ae_fp16_to_fp32(b.dmin);
        for (int h = 0; h < AE_QK_K / 64; h++) {
            const uint8_t *ql = b.qs + 32 * h;
            const uint8_t bit1 = (uint8_t)(1u << (2 * h)), bit2 = (uint8_t)(2u << (2 * h));
            int sc, m;
            k_scale_min(b.scales, 2 * h, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            k_scale_min(b.scales, 2 * h + 1, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) {
                const float p = d1 * ((ql[l] & 0x0f) + ((b.qh[l] & bit1) ? 16 : 0));
                *y++ = p - m1;
            }
            for (int l = 0; l < 32; l++) {
                const float p = d2 * ((ql[l] >> 4) + ((b.qh[l] & bit2) ? 16 : 0));
                *y++ = p - m2;
            }
        }
    }
}

/* Q6_K: 16 groups of 16, in two halves of 128. In half h, for l < 32: ql[64h + l] holds the low 4 bits
 * of elements 128h + l (low nibble) and 128h + 64 + l (high nibble), ql[64h + 32 + l] those of
 * 128h + 32 + l and 128h + 96 + l; qh[32h + l] holds their top 2 bits in bit pairs 0-1, 2-3, 4-5, 6-7
 * (for +0, +32, +64, +96). x = (d * sc) * (q - 32), sc the signed scale of the element's group. */
static void dequant_q6_k(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q6_k)) {
        struct ae_block_q6_k b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int h = 0; h < AE_QK_K / 128; h++, y += 128) {
            const uint8_t *ql = b.ql + 64 * h;
            const uint8_t *qh = b.qh + 32 * h;
            const int8_t *sc = b.scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                const int g = l / 16;
                const int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * sc[g] * q1;
                y[l + 32] = d * sc[g + 2] * q2;
                y[l + 64] = d * sc[g + 4] * q3;
                y[l + 96] = d * sc[g + 6] * q4;
            }
        }
    }
}

/* x = d * q, d an f32 */
static void dequant_q8_k(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_q8_k), y += AE_QK_K) {
        struct ae_block_q8_k b;
        memcpy(&b, src, sizeof b);
        for (int j = 0; j < AE_QK_K; j++)
            y[j] = b.d * b.qs[j];
    }
}

static const int8_t iq4_values[16] = AE_IQ4_VALUES;

/* x = d * kv[q] */
static void dequant_iq4_nl(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_iq4_nl), y += AE_QK) {
        struct ae_block_iq4_nl b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int j = 0; j < AE_QK / 2; j++) {
            y[j] = d * iq4_values[b.qs[j] & 0x0f];
            y[j + AE_QK / 2] = d * iq4_values[b.qs[j] >> 4];
        }
    }
}

/* x = (d * (sc - 32)) * kv[q], per group of 32 */
static void dequant_iq4_xs(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_iq4_xs)) {
        struct ae_block_iq4_xs b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int g = 0; g < AE_QK_K / 32; g++, y += 32) {
            const int sc = ((b.scales_l[g / 2] >> 4 * (g % 2)) & 0x0f) | ((b.scales_h >> 2 * g) & 3) << 4;
            const float dl = d * (sc - 32);
            const uint8_t *q = b.qs + 16 * g;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * iq4_values[q[j] & 0x0f];
                y[j + 16] = dl * iq4_values[q[j] >> 4];
            }
        }
    }
}

/* Trit t (0 = the top one) of a byte packing ternary digits: 0, 1 or 2. */
static int tq1_trit(uint8_t byte, int t)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = (uint8_t)(byte * pow3[t]);
    return (q * 3) >> 8;
}

/* x = (t - 1) * d */
static void dequant_tq1_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_tq1_0)) {
        struct ae_block_tq1_0 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int t = 0; t < 5; t++)
            for (int m = 0; m < 32; m++)
                *y++ = (float)(tq1_trit(b.qs[m], t) - 1) * d;
        for (int t = 0; t < 5; t++)
            for (int m = 0; m < 16; m++)
                *y++ = (float)(tq1_trit(b.qs[32 + m], t) - 1) * d;
        for (int t = 0; t < 4; t++)
            for (int j = 0; j < 4; j++)
                *y++ = (float)(tq1_trit(b.qh[j], t) - 1) * d;
    }
}

/* x = (q - 1) * d */
static void dequant_tq2_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += sizeof(struct ae_block_tq2_0)) {
        struct ae_block_tq2_0 b;
        memcpy(&b, src, sizeof b);
        const float d = ae_fp16_to_fp32(b.d);
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                    *y++ = (float)(((b.qs[32 * h + m] >> (2 * l)) & 3) - 1) * d;
    }
}

/* The dequantizer of each type id; NULL for the types without one yet (Q8_1, the other IQ types,
 * the integer types and F64). */
static const dequant_fn dequant_table[AE_TYPE_ID_LIMIT] = {
    [AE_TYPE_F32] = dequant_f32,   [AE_TYPE_F16] = dequant_f16,   [AE_TYPE_BF16] = dequant_bf16,
    [AE_TYPE_Q4_0] = dequant_q4_0, [AE_TYPE_Q4_1] = dequant_q4_1, [AE_TYPE_Q5_0] = dequant_q5_0,
    [AE_TYPE_Q5_1] = dequant_q5_1, [AE_TYPE_Q8_0] = dequant_q8_0, [AE_TYPE_Q2_K] = dequant_q2_k,
    [AE_TYPE_Q3_K] = dequant_q3_k, [AE_TYPE_Q4_K] = dequant_q4_k, [AE_TYPE_Q5_K] = dequant_q5_k,
    [AE_TYPE_Q6_K] = dequant_q6_k, [AE_TYPE_Q8_K] = dequant_q8_k, [AE_TYPE_IQ4_NL] = dequant_iq4_nl,
    [AE_TYPE_IQ4_XS] = dequant_iq4_xs, [AE_TYPE_TQ1_0] = dequant_tq1_0, [AE_TYPE_TQ2_0] = dequant_tq2_0,
};

bool ae_type_can_dequantize(uint32_t type)
{
    return type < AE_TYPE_ID_LIMIT && dequant_table[type] != NULL;
}

int ae_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n, ae_error *err)
{
    const struct ae_type_info *t = ae_type_info(type);
    if (!t)
        return ae_fail(err, "unknown tensor type %" PRIu32, type);
    if (!ae_type_can_dequantize(type))
        return ae_fail(err, "type %s is not supported yet", t->name);
    if (n < 0 || n % t->block_size != 0)
        return ae_fail(err, "%" PRId64 " elements of type %s is not a multiple of its block size %" PRIu32, n,
                       t->name, t->block_size);
    assert((src && dst) || n == 0);
    if (n > 0)
        dequant_table[type]((const uint8_t *)src, dst, n / t->block_size);
    return 0;
}
