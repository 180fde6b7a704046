/* Scalar row dots of IQ4_NL, IQ4_XS, TQ1_0 and TQ2_0 (matmul_iq.h): the reference order that the
 * AVX2 kernels (matmul_iq_avx2.c) reproduce bit for bit.
 *
 * IQ4_NL follows the 32-value block order of matmul.c: in block b, lane l (0..7) holds the exact integer
 * sum of the products of values 4l..4l+3 (table value times activation quant) and adds
 * (float)sum * (dw * dx) to accumulator set b % 2; the result is hsum8(even + odd). IQ4_XS, TQ1_0 and
 * TQ2_0 follow the K-quant order: per super-block the exact integer sum isum (IQ4_XS: sum over its 8
 * groups of (sc - 32) * (q . x); ternary: sum of (t - 1) * x), and the row sum adds d * isum with
 * d = w.d * x.d, in super-block order. Every product is its own statement (no contraction to FMA).
 */
#include "matmul_iq.h"

#include "ae_quant_blocks.h"
#include "ae_types.h"

static const int8_t iq4_values[16] = AE_IQ4_VALUES;

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) of even + odd: matmul.c's lanes_finish. */
static float lanes_finish(const float even[8], const float odd[8])
{
    float v[8];
    for (int l = 0; l < 8; l++)
        v[l] = even[l] + odd[l];
    const float s04 = v[0] + v[4], s15 = v[1] + v[5], s26 = v[2] + v[6], s37 = v[3] + v[7];
    const float lo = s04 + s26, hi = s15 + s37;
    return lo + hi;
}

void ae_dot_iq4_nl_scalar(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_iq4_nl *w = vw;
    const struct ae_block_q8_0 *x = vx;
    float acc[2][8] = {{0}};
    for (int64_t b = 0; b < k / AE_QK; b++) {
        int8_t q[AE_QK];
        for (int j = 0; j < AE_QK / 2; j++) {
            q[j] = iq4_values[w[b].qs[j] & 0x0f];
            q[j + AE_QK / 2] = iq4_values[w[b].qs[j] >> 4];
        }
        const float d = ae_fp16_to_fp32(w[b].d) * ae_fp16_to_fp32(x[b].d);
        for (int l = 0; l < 8; l++) {
            int p = 0;
            for (int i = 4 * l; i < 4 * l + 4; i++)
                p += q[i] * x[b].qs[i];
            const float t = (float)p * d;
            acc[b & 1][l] += t;
        }
    }
    *out = lanes_finish(acc[0], acc[1]);
}

/* acc + d * isum: one super-block of the K-quant order. */
static float superblock_add(float acc, int isum, float d)
{
    const float t = d * (float)isum;
    return acc + t;
}

void ae_dot_iq4_xs_scalar(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_iq4_xs *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int isum = 0;
        for (int g = 0; g < AE_QK_K / 32; g++) {
            const int sc = ((w[i].scales_l[g / 2] >> 4 * (g % 2)) & 0x0f) | ((w[i].scales_h >> 2 * g) & 3) << 4;
            const uint8_t *q = w[i].qs + 16 * g;
            const int8_t *y = x[i].qs + 32 * g;
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += iq4_values[q[j] & 0x0f] * y[j] + iq4_values[q[j] >> 4] * y[j + 16];
            isum += (sc - 32) * s;
        }
        acc = superblock_add(acc, isum, ae_fp16_to_fp32(w[i].d) * x[i].d);
    }
    *out = acc;
}

/* Trit t (0 = the top one) of a byte that packs ternary digits, as ggml reads it: the top trit of
 * (byte * 3^t mod 256), which is (that * 3) >> 8. */
static int trit(uint8_t byte, int t)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = (uint8_t)(byte * pow3[t]);
    return (q * 3) >> 8;
}

void ae_tq1_0_unpack(const void *block, uint8_t t[256])
{
    const struct ae_block_tq1_0 *b = block;
    int n = 0;
    for (int j = 0; j < 5; j++)
        for (int m = 0; m < 32; m++)
            t[n++] = (uint8_t)trit(b->qs[m], j);
    for (int j = 0; j < 5; j++)
        for (int m = 0; m < 16; m++)
            t[n++] = (uint8_t)trit(b->qs[32 + m], j);
    for (int j = 0; j < 4; j++)
        for (int m = 0; m < 4; m++)
            t[n++] = (uint8_t)trit(b->qh[m], j);
}

void ae_dot_tq1_0_scalar(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_tq1_0 *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        uint8_t t[AE_QK_K];
        ae_tq1_0_unpack(&w[i], t);
        int isum = 0;
        for (int j = 0; j < AE_QK_K; j++)
            isum += (t[j] - 1) * x[i].qs[j];
        acc = superblock_add(acc, isum, ae_fp16_to_fp32(w[i].d) * x[i].d);
    }
    *out = acc;
}

void ae_dot_tq2_0_scalar(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_tq2_0 *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int isum = 0;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) {
                    const int q = ((w[i].qs[32 * h + m] >> (2 * l)) & 3) - 1;
                    isum += q * x[i].qs[128 * h + 32 * l + m];
                }
        acc = superblock_add(acc, isum, ae_fp16_to_fp32(w[i].d) * x[i].d);
    }
    *out = acc;
}
