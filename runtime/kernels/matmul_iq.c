/* The values of IQ4_NL, IQ4_XS, TQ1_0 and TQ2_0 blocks (matmul_iq.h), as ggml's reference dequantizers
 * read them, for the scalar reference kernels of matmul.c. The AVX2 row dots (matmul_iq_avx2.c) give
 * the same bytes.
 */
#include "matmul_iq.h"

#include "ae_quant_blocks.h"
#include "ae_types.h"

#include <string.h>

static const int8_t iq4_values[16] = AE_IQ4_VALUES;

void ae_iq4_nl_unpack(const void *block, int8_t q[32], float *d)
{
    struct ae_block_iq4_nl w;
    memcpy(&w, block, sizeof w);
    for (int j = 0; j < AE_QK / 2; j++) {
        q[j] = iq4_values[w.qs[j] & 0x0f];
        q[j + AE_QK / 2] = iq4_values[w.qs[j] >> 4];
    }
    *d = ae_fp16_to_fp32(w.d);
}

void ae_iq4_xs_unpack(const void *block, int8_t q[256], int sc[8], float *d)
{
    struct ae_block_iq4_xs w;
    memcpy(&w, block, sizeof w);
    for (int g = 0; g < AE_QK_K / 32; g++) {
        sc[g] = (((w.scales_l[g / 2] >> 4 * (g % 2)) & 0x0f) | ((w.scales_h >> 2 * g) & 3) << 4) - 32;
        for (int j = 0; j < 16; j++) {
            q[32 * g + j] = iq4_values[w.qs[16 * g + j] & 0x0f];
            q[32 * g + j + 16] = iq4_values[w.qs[16 * g + j] >> 4];
        }
    }
    *d = ae_fp16_to_fp32(w.d);
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

void ae_tq2_0_unpack(const void *block, uint8_t t[256])
{
    const struct ae_block_tq2_0 *b = block;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++)
                t[128 * h + 32 * l + m] = (uint8_t)((b->qs[32 * h + m] >> (2 * l)) & 3);
}
