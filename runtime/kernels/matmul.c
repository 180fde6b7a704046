/* Matrix multiplication of ggml-typed weights by f32 activations: the scalar reference kernels, the
 * table of vec types, and the driver that converts the activations and splits the work.
 *
 * The scalar kernels are the canonical order of docs/kernels.md written out plainly: per block (or
 * super-block) an exact integer sum, then one fmaf into the output's accumulator, blocks in order; for
 * F32/F16/BF16 sixteen fmaf lanes and a fixed reduction tree. The SIMD kernels (matmul_avx2.c,
 * matmul_avx512.c) reproduce that order, which is what makes every path agree bit for bit. The scalar
 * x16 kernels unpack each group block back into 16 GGUF blocks and run the same code.
 *
 * The driver: each task owns a range of weight rows (whole x16 groups) and computes every output of
 * those rows for all M activation rows, so no output depends on how rows were split among threads. The
 * block kernel gets up to MATMUL_TILE_COLS activation rows at a time and tiles them in registers. A
 * multi-part matmul (ae_matmul_parts) converts its input once and splits the rows of all its weights,
 * taken one after another, among the tasks of one run of the pool.
 */
#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "gemm_levels.h"
#include "matmul_iq.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* ---- 32-value blocks ------------------------------------------------------------------------------ */

/* The integer values of one weight block (docs/kernels.md), and the block's scale and minimum. */
struct blk32 {
    int8_t q[AE_QK];
    float d, m;
};

static void q4_values(const uint8_t qs[AE_QK / 2], int off, int8_t q[AE_QK])
{
    for (int j = 0; j < AE_QK / 2; j++) {
        q[j] = (int8_t)((qs[j] & 0x0f) - off);
        q[j + AE_QK / 2] = (int8_t)((qs[j] >> 4) - off);
    }
}

static void q5_values(const uint8_t qs[AE_QK / 2], const uint8_t qh4[4], int off, int8_t q[AE_QK])
{
    uint32_t qh;
    memcpy(&qh, qh4, sizeof qh);
    for (int j = 0; j < AE_QK / 2; j++) {
        const int h0 = (int)((qh >> j) & 1) << 4;
        const int h1 = (int)((qh >> (j + AE_QK / 2)) & 1) << 4;
        q[j] = (int8_t)(((qs[j] & 0x0f) | h0) - off);
        q[j + AE_QK / 2] = (int8_t)(((qs[j] >> 4) | h1) - off);
    }
}

static void blk_q4_0(const void *v, struct blk32 *o)
{
    struct ae_block_q4_0 b;
    memcpy(&b, v, sizeof b);
    q4_values(b.qs, 8, o->q);
    o->d = ae_fp16_to_fp32(b.d);
}

static void blk_q4_1(const void *v, struct blk32 *o)
{
    struct ae_block_q4_1 b;
    memcpy(&b, v, sizeof b);
    q4_values(b.qs, 0, o->q);
    o->d = ae_fp16_to_fp32(b.d);
    o->m = ae_fp16_to_fp32(b.m);
}

static void blk_q5_0(const void *v, struct blk32 *o)
{
    struct ae_block_q5_0 b;
    memcpy(&b, v, sizeof b);
    q5_values(b.qs, b.qh, 16, o->q);
    o->d = ae_fp16_to_fp32(b.d);
}

static void blk_q5_1(const void *v, struct blk32 *o)
{
    struct ae_block_q5_1 b;
    memcpy(&b, v, sizeof b);
    q5_values(b.qs, b.qh, 0, o->q);
    o->d = ae_fp16_to_fp32(b.d);
    o->m = ae_fp16_to_fp32(b.m);
}

static void blk_q8_0(const void *v, struct blk32 *o)
{
    struct ae_block_q8_0 b;
    memcpy(&b, v, sizeof b);
    memcpy(o->q, b.qs, AE_QK);
    o->d = ae_fp16_to_fp32(b.d);
}

static void blk_iq4_nl(const void *v, struct blk32 *o)
{
    ae_iq4_nl_unpack(v, o->q, &o->d);
}

/* acc after one block: fmaf(isum, dw * dx, acc), then fmaf(mw, sx, acc) for types with a minimum. */
static float step32(float acc, const struct blk32 *w, const struct ae_block_q8a *x, bool has_min)
{
    int32_t isum = 0;
    for (int i = 0; i < AE_QK; i++)
        isum += w->q[i] * x->qs[i];
    const float d = w->d * x->d; /* exact: both are fp16 values */
    acc = fmaf((float)isum, d, acc);
    if (has_min)
        acc = fmaf(w->m, x->s, acc);
    return acc;
}

/* ---- K-quants ------------------------------------------------------------------------------------- */

/* A super-block unpacked: its 256 quant values, the integer scale and min of each group of 16 values
 * (groups of 32 repeat theirs, and their mins count once per 32), and its scales. */
struct blk256 {
    int8_t q[AE_QK_K];
    int sc[AE_QK_K / 16];
    int m[AE_QK_K / 16]; /* per group of 16; 0 for the types without mins */
    float d, dmin;
    bool has_min;
};

/* The 6-bit scale and min of group g (< 8) of a Q4_K or Q5_K block (see ae_quant_blocks.h). */
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

static void blk_q2_k(const void *v, struct blk256 *u)
{
    struct ae_block_q2_k w;
    memcpy(&w, v, sizeof w);
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                u->q[128 * h + 32 * j + l] = (int8_t)((w.qs[32 * h + l] >> (2 * j)) & 3);
    for (int g = 0; g < 16; g++) {
        u->sc[g] = w.scales[g] & 0x0f;
        u->m[g] = w.scales[g] >> 4;
    }
    u->d = ae_fp16_to_fp32(w.d);
    u->dmin = ae_fp16_to_fp32(w.dmin);
    u->has_min = true;
}

static void blk_q3_k(const void *v, struct blk256 *u)
{
    struct ae_block_q3_k w;
    memcpy(&w, v, sizeof w);
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const int low = (w.qs[32 * h + l] >> (2 * j)) & 3;
                const int high = (w.hmask[l] >> (4 * h + j)) & 1;
                u->q[128 * h + 32 * j + l] = (int8_t)(low - (high ? 0 : 4));
            }
    for (int g = 0; g < 16; g++) {
        const int low = g < 8 ? w.scales[g] & 0x0f : w.scales[g - 8] >> 4;
        const int high = (w.scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        u->sc[g] = (low | high << 4) - 32;
        u->m[g] = 0;
    }
    u->d = ae_fp16_to_fp32(w.d);
    u->dmin = 0.0f;
    u->has_min = false;
}

static void k_groups_of_32(const uint8_t scales[AE_K_SCALE_BYTES], struct blk256 *u)
{
    for (int g = 0; g < 8; g++) {
        int sc, m;
        k_scale_min(scales, g, &sc, &m);
        u->sc[2 * g] = u->sc[2 * g + 1] = sc;
        u->m[2 * g] = u->m[2 * g + 1] = m;
    }
}

static void blk_q4_k(const void *v, struct blk256 *u)
{
    struct ae_block_q4_k w;
    memcpy(&w, v, sizeof w);
    for (int h = 0; h < 4; h++)
        for (int l = 0; l < 32; l++) {
            u->q[64 * h + l] = (int8_t)(w.qs[32 * h + l] & 0x0f);
            u->q[64 * h + 32 + l] = (int8_t)(w.qs[32 * h + l] >> 4);
        }
    k_groups_of_32(w.scales, u);
    u->d = ae_fp16_to_fp32(w.d);
    u->dmin = ae_fp16_to_fp32(w.dmin);
    u->has_min = true;
}

static void blk_q5_k(const void *v, struct blk256 *u)
{
    struct ae_block_q5_k w;
    memcpy(&w, v, sizeof w);
    for (int h = 0; h < 4; h++)
        for (int l = 0; l < 32; l++) {
            const int h1 = (w.qh[l] >> (2 * h)) & 1;
            const int h2 = (w.qh[l] >> (2 * h + 1)) & 1;
            u->q[64 * h + l] = (int8_t)((w.qs[32 * h + l] & 0x0f) | h1 << 4);
            u->q[64 * h + 32 + l] = (int8_t)((w.qs[32 * h + l] >> 4) | h2 << 4);
        }
    k_groups_of_32(w.scales, u);
    u->d = ae_fp16_to_fp32(w.d);
    u->dmin = ae_fp16_to_fp32(w.dmin);
    u->has_min = true;
}

static void blk_q6_k(const void *v, struct blk256 *u)
{
    struct ae_block_q6_k w;
    memcpy(&w, v, sizeof w);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = w.ql + 64 * h;
        const uint8_t *qh = w.qh + 32 * h;
        int8_t *q = u->q + 128 * h;
        for (int l = 0; l < 32; l++) {
            q[l] = (int8_t)(((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
        }
    }
    for (int g = 0; g < 16; g++) {
        u->sc[g] = w.scales[g];
        u->m[g] = 0;
    }
    u->d = ae_fp16_to_fp32(w.d);
    u->dmin = 0.0f;
    u->has_min = false;
}

static void blk_iq4_xs(const void *v, struct blk256 *u)
{
    int sc[8];
    ae_iq4_xs_unpack(v, u->q, sc, &u->d);
    for (int g = 0; g < 16; g++) {
        u->sc[g] = sc[g / 2];
        u->m[g] = 0;
    }
    u->dmin = 0.0f;
    u->has_min = false;
}

/* The ternary types: q = t - 1, one group with scale 1. */
static void blk_ternary(const uint8_t t[AE_QK_K], uint16_t d, struct blk256 *u)
{
    for (int j = 0; j < AE_QK_K; j++)
        u->q[j] = (int8_t)(t[j] - 1);
    for (int g = 0; g < 16; g++) {
        u->sc[g] = 1;
        u->m[g] = 0;
    }
    u->d = ae_fp16_to_fp32(d);
    u->dmin = 0.0f;
    u->has_min = false;
}

static void blk_tq1_0(const void *v, struct blk256 *u)
{
    struct ae_block_tq1_0 w;
    memcpy(&w, v, sizeof w);
    uint8_t t[AE_QK_K];
    ae_tq1_0_unpack(&w, t);
    blk_ternary(t, w.d, u);
}

static void blk_tq2_0(const void *v, struct blk256 *u)
{
    struct ae_block_tq2_0 w;
    memcpy(&w, v, sizeof w);
    uint8_t t[AE_QK_K];
    ae_tq2_0_unpack(&w, t);
    blk_ternary(t, w.d, u);
}

/* acc after one super-block: fmaf(isum, d, acc), then fmaf(-msum, dmin, acc) for types with mins. The
 * mins of groups of 32 are stored for both halves, so msum counts each of those once per 16 values. */
static float step256(float acc, const struct blk256 *u, const struct ae_block_q8_k *x)
{
    int32_t isum = 0, msum = 0;
    for (int g = 0; g < AE_QK_K / 16; g++) {
        int32_t s = 0;
        for (int l = 16 * g; l < 16 * g + 16; l++)
            s += u->q[l] * x->qs[l];
        isum += u->sc[g] * s;
        msum += u->m[g] * x->bsums[g];
    }
    const float d = u->d * x->d;
    acc = fmaf((float)isum, d, acc);
    if (u->has_min) {
        const float dmin = u->dmin * x->d;
        acc = fmaf(-(float)msum, dmin, acc);
    }
    return acc;
}

/* ---- Quantized types: the generic scalar kernels ------------------------------------------------------ */

struct qtype {
    void (*blk32)(const void *v, struct blk32 *o);   /* 32-value types */
    void (*blk256)(const void *v, struct blk256 *u); /* 256-value types */
    bool has_min;                                    /* 32-value types with a minimum */
};

static const struct qtype qtypes[AE_TYPE_ID_LIMIT] = {
    [AE_TYPE_Q4_0] = {blk_q4_0, NULL, false}, [AE_TYPE_Q4_1] = {blk_q4_1, NULL, true},
    [AE_TYPE_Q5_0] = {blk_q5_0, NULL, false}, [AE_TYPE_Q5_1] = {blk_q5_1, NULL, true},
    [AE_TYPE_Q8_0] = {blk_q8_0, NULL, false}, [AE_TYPE_Q2_K] = {NULL, blk_q2_k, false},
    [AE_TYPE_Q3_K] = {NULL, blk_q3_k, false}, [AE_TYPE_Q4_K] = {NULL, blk_q4_k, false},
    [AE_TYPE_Q5_K] = {NULL, blk_q5_k, false}, [AE_TYPE_Q6_K] = {NULL, blk_q6_k, false},
    [AE_TYPE_IQ4_NL] = {blk_iq4_nl, NULL, false}, [AE_TYPE_IQ4_XS] = {NULL, blk_iq4_xs, false},
    [AE_TYPE_TQ1_0] = {NULL, blk_tq1_0, false}, [AE_TYPE_TQ2_0] = {NULL, blk_tq2_0, false},
};

/* Columns of one pass of the scalar x16 kernel (its accumulators live on the stack). */
#define SCALAR_COLS 16

/* The scalar kernel of a quantized type in either layout. For x16, each group block is unpacked into
 * its 16 GGUF blocks once per pass over the columns. */
static void gemm_quant(uint32_t type, enum ae_layout layout, int64_t k, const void *w, size_t w_stride,
                       int64_t n_rows, const void *x, size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const struct qtype *qt = &qtypes[type];
    const struct ae_type_info *ti = ae_type_info(type);
    const int64_t nb = k / ti->block_size;
    const size_t wb = ti->block_bytes;
    const size_t xb = qt->blk32 ? sizeof(struct ae_block_q8a) : sizeof(struct ae_block_q8_k);
    const int64_t group = layout == AE_LAYOUT_X16 ? AE_X16_ROWS : 1;
    const size_t gb = layout == AE_LAYOUT_X16 ? (size_t)ae_layout_group_bytes(type, layout, ti->block_size) : wb;
    uint8_t blocks[AE_X16_ROWS * AE_BLOCK_BYTES_Q6_K];
    float acc[SCALAR_COLS][AE_X16_ROWS];
    for (int64_t r0 = 0; r0 < n_rows; r0 += group) {
        const int64_t nr = n_rows - r0 < group ? n_rows - r0 : group;
        const uint8_t *wg = (const uint8_t *)w + (size_t)(r0 / group) * w_stride;
        for (int64_t c0 = 0; c0 < n_cols; c0 += SCALAR_COLS) {
            const int64_t nc = n_cols - c0 < SCALAR_COLS ? n_cols - c0 : SCALAR_COLS;
            memset(acc, 0, sizeof acc);
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *src = wg + (size_t)b * gb;
                if (layout == AE_LAYOUT_X16) {
                    ae_x16_unpack_group(type, src, blocks);
                    src = blocks;
                }
                for (int64_t r = 0; r < nr; r++) {
                    const uint8_t *wblk = src + (size_t)r * wb;
                    struct blk32 u32;
                    struct blk256 u256;
                    if (qt->blk32)
                        qt->blk32(wblk, &u32);
                    else
                        qt->blk256(wblk, &u256);
                    for (int64_t c = 0; c < nc; c++) {
                        const uint8_t *xblk = (const uint8_t *)x + (size_t)(c0 + c) * x_row + (size_t)b * xb;
                        acc[c][r] = qt->blk32 ? step32(acc[c][r], &u32, (const struct ae_block_q8a *)xblk, qt->has_min)
                                              : step256(acc[c][r], &u256, (const struct ae_block_q8_k *)xblk);
                    }
                }
            }
            for (int64_t c = 0; c < nc; c++)
                for (int64_t r = 0; r < nr; r++)
                    y[(c0 + c) * y_stride + r0 + r] = acc[c][r];
        }
    }
}

/* In the rows layout each row is its own group, so the block of row r is at w + r * w_stride + b * wb. */
#define QUANT_ROWS(T, t)                                                                                         \
    static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,          \
                              int64_t nc, float *y, int64_t ys)                                                  \
    {                                                                                                            \
        gemm_quant(AE_TYPE_##T, AE_LAYOUT_ROWS, k, w, ws, nr, x, xr, nc, y, ys);                                 \
    }
#define QUANT_X16(T, t)                                                                                          \
    static void gemm_x16_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,           \
                             int64_t nc, float *y, int64_t ys)                                                   \
    {                                                                                                            \
        gemm_quant(AE_TYPE_##T, AE_LAYOUT_X16, k, w, ws, nr, x, xr, nc, y, ys);                                  \
    }
QUANT_ROWS(Q4_0, q4_0) QUANT_X16(Q4_0, q4_0)
QUANT_ROWS(Q4_1, q4_1) QUANT_X16(Q4_1, q4_1)
QUANT_ROWS(Q5_0, q5_0) QUANT_X16(Q5_0, q5_0)
QUANT_ROWS(Q5_1, q5_1) QUANT_X16(Q5_1, q5_1)
QUANT_ROWS(Q8_0, q8_0) QUANT_X16(Q8_0, q8_0)
QUANT_ROWS(Q2_K, q2_k) QUANT_X16(Q2_K, q2_k)
QUANT_ROWS(Q3_K, q3_k) QUANT_X16(Q3_K, q3_k)
QUANT_ROWS(Q4_K, q4_k) QUANT_X16(Q4_K, q4_k)
QUANT_ROWS(Q5_K, q5_k) QUANT_X16(Q5_K, q5_k)
QUANT_ROWS(Q6_K, q6_k) QUANT_X16(Q6_K, q6_k)
QUANT_ROWS(IQ4_NL, iq4_nl)
QUANT_ROWS(IQ4_XS, iq4_xs)
QUANT_ROWS(TQ1_0, tq1_0)
QUANT_ROWS(TQ2_0, tq2_0)

/* ---- F32, F16, BF16 ------------------------------------------------------------------------------- */

/* reduce16 of docs/kernels.md. */
static float lanes16_reduce(const float a[16])
{
    float v8[8], v4[4], v2[2];
    for (int l = 0; l < 8; l++)
        v8[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++)
        v4[l] = v8[l] + v8[l + 4];
    for (int l = 0; l < 2; l++)
        v2[l] = v4[l] + v4[l + 2];
    return v2[0] + v2[1];
}

static float value_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
static float value_f16(const void *p, int64_t i) { return ae_fp16_to_fp32(((const uint16_t *)p)[i]); }
static float value_bf16(const void *p, int64_t i) { return ae_bf16_to_fp32(((const uint16_t *)p)[i]); }

/* x: f32 activations (for F16 and BF16 weights, values rounded to that type). */
static float dot_float(float (*value)(const void *, int64_t), int64_t k, const void *w, const float *x)
{
    float acc[16] = {0};
    for (int64_t i = 0; i < k; i++)
        acc[i % 16] = fmaf(value(w, i), x[i], acc[i % 16]);
    return lanes16_reduce(acc);
}

#define FLOAT_KERNEL(t)                                                                                        \
    static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,        \
                              int64_t nc, float *y, int64_t ys)                                                \
    {                                                                                                          \
        for (int64_t c = 0; c < nc; c++)                                                                       \
            for (int64_t r = 0; r < nr; r++)                                                                   \
                y[c * ys + r] = dot_float(value_##t, k, (const uint8_t *)w + (size_t)r * ws,                   \
                                          (const float *)((const uint8_t *)x + (size_t)c * xr));               \
    }
FLOAT_KERNEL(f32)
FLOAT_KERNEL(f16)
FLOAT_KERNEL(bf16)

/* The scalar level's kernels of every type: complete for every supported type and layout. */
AE_GEMM_LEVEL(scalar, f32, gemm_rows_f32, NULL);
AE_GEMM_LEVEL(scalar, f16, gemm_rows_f16, NULL);
AE_GEMM_LEVEL(scalar, bf16, gemm_rows_bf16, NULL);
AE_GEMM_LEVEL(scalar, q4_0, gemm_rows_q4_0, gemm_x16_q4_0);
AE_GEMM_LEVEL(scalar, q4_1, gemm_rows_q4_1, gemm_x16_q4_1);
AE_GEMM_LEVEL(scalar, q5_0, gemm_rows_q5_0, gemm_x16_q5_0);
AE_GEMM_LEVEL(scalar, q5_1, gemm_rows_q5_1, gemm_x16_q5_1);
AE_GEMM_LEVEL(scalar, q8_0, gemm_rows_q8_0, gemm_x16_q8_0);
AE_GEMM_LEVEL(scalar, q2_k, gemm_rows_q2_k, gemm_x16_q2_k);
AE_GEMM_LEVEL(scalar, q3_k, gemm_rows_q3_k, gemm_x16_q3_k);
AE_GEMM_LEVEL(scalar, q4_k, gemm_rows_q4_k, gemm_x16_q4_k);
AE_GEMM_LEVEL(scalar, q5_k, gemm_rows_q5_k, gemm_x16_q5_k);
AE_GEMM_LEVEL(scalar, q6_k, gemm_rows_q6_k, gemm_x16_q6_k);
AE_GEMM_LEVEL(scalar, iq4_nl, gemm_rows_iq4_nl, NULL);
AE_GEMM_LEVEL(scalar, iq4_xs, gemm_rows_iq4_xs, NULL);
AE_GEMM_LEVEL(scalar, tq1_0, gemm_rows_tq1_0, NULL);
AE_GEMM_LEVEL(scalar, tq2_0, gemm_rows_tq2_0, NULL);

/* ---- vec types and activation conversion ---------------------------------------------------------- */

static void quantize_f16(const float *x, void *y, int64_t k)
{
    ae_round_row_f16(x, y, k);
}

static void quantize_bf16(const float *x, void *y, int64_t k)
{
    ae_round_row_bf16(x, y, k);
}

struct matmul_type {
    uint32_t vec_type;
    uint32_t act_block;      /* bytes of one converted block */
    uint32_t act_values;     /* values per converted block */
    void (*quantize)(const float *x, void *y, int64_t k); /* NULL for F32: X is used as it is */
};

static const struct matmul_type matmul_types[AE_TYPE_ID_LIMIT] = {
    [AE_TYPE_F32] = {AE_TYPE_F32, 4, 1, NULL},
    [AE_TYPE_F16] = {AE_TYPE_F16, 4, 1, quantize_f16},   /* fp16 values held as f32 */
    [AE_TYPE_BF16] = {AE_TYPE_BF16, 4, 1, quantize_bf16}, /* bf16 values held as f32 */
    [AE_TYPE_Q4_0] = {AE_TYPE_Q8_0, sizeof(struct ae_block_q8a), AE_QK, ae_quantize_row_q8_0},
    [AE_TYPE_Q5_0] = {AE_TYPE_Q8_0, sizeof(struct ae_block_q8a), AE_QK, ae_quantize_row_q8_0},
    [AE_TYPE_Q8_0] = {AE_TYPE_Q8_0, sizeof(struct ae_block_q8a), AE_QK, ae_quantize_row_q8_0},
    [AE_TYPE_Q4_1] = {AE_TYPE_Q8_1, sizeof(struct ae_block_q8a), AE_QK, ae_quantize_row_q8_1},
    [AE_TYPE_Q5_1] = {AE_TYPE_Q8_1, sizeof(struct ae_block_q8a), AE_QK, ae_quantize_row_q8_1},
    [AE_TYPE_Q2_K] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q3_K] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q4_K] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q5_K] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q6_K] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_IQ4_NL] = {AE_TYPE_Q8_0, sizeof(struct ae_block_q8a), AE_QK, ae_quantize_row_q8_0},
    [AE_TYPE_IQ4_XS] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_TQ1_0] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
    [AE_TYPE_TQ2_0] = {AE_TYPE_Q8_K, sizeof(struct ae_block_q8_k), AE_QK_K, ae_quantize_row_q8_k},
};

bool ae_matmul_supports(uint32_t type)
{
    return type < AE_TYPE_ID_LIMIT && matmul_types[type].act_values != 0;
}

uint32_t ae_matmul_vec_type(uint32_t type)
{
    return ae_matmul_supports(type) ? matmul_types[type].vec_type : AE_TYPE_ID_LIMIT;
}

/* Bytes of one row of k values of type, or 0 when k is not a whole number of blocks or overflows. */
static uint64_t row_bytes(uint32_t type, int64_t k)
{
    uint64_t n;
    if (k < 0 || ae_type_row_bytes(type, (uint64_t)k, &n, NULL) != 0)
        return 0;
    return n;
}

size_t ae_matmul_act_row_bytes(uint32_t type, int64_t K)
{
    if (!ae_matmul_supports(type) || type == AE_TYPE_F32 || K < 0)
        return 0;
    const struct matmul_type *mt = &matmul_types[type];
    if (K % mt->act_values != 0 || (uint64_t)(K / mt->act_values) > SIZE_MAX / mt->act_block)
        return 0;
    return (size_t)(K / mt->act_values) * mt->act_block;
}

size_t ae_matmul_scratch_size(uint32_t type, int64_t K, int64_t M)
{
    if (M < 0)
        return 0;
    const size_t rb = ae_matmul_act_row_bytes(type, K);
    if (M > 0 && rb > SIZE_MAX / (uint64_t)M)
        return 0;
    return rb * (size_t)M;
}

/* Checks the arguments shared by the entry points: type, layout, sizes, block multiple. */
static int matmul_check(const char *fn, uint32_t type, enum ae_layout layout, int64_t N, int64_t K, int64_t M,
                        ae_error *err)
{
    if (!ae_matmul_supports(type))
        return ae_fail(err, "%s: weight type %s (%" PRIu32 ") is not supported", fn, ae_type_name(type), type);
    if (!ae_layout_supports(type, layout))
        return ae_fail(err, "%s: no kernel reads %s weights in layout %s", fn, ae_type_name(type),
                       ae_layout_name(layout));
    if (N < 0 || K < 0 || M < 0)
        return ae_fail(err, "%s: negative size N=%" PRId64 " K=%" PRId64 " M=%" PRId64, fn, N, K, M);
    const struct ae_type_info *wt = ae_type_info(type);
    const uint32_t vb = matmul_types[type].act_values;
    if (K % wt->block_size != 0 || K % vb != 0)
        return ae_fail(err, "%s: K=%" PRId64 " is not a multiple of the %s block size %" PRIu32, fn, K, wt->name,
                       wt->block_size > vb ? wt->block_size : vb);
    if (row_bytes(type, K) == 0 && K > 0)
        return ae_fail(err, "%s: K=%" PRId64 " is too large for type %s", fn, K, wt->name);
    return 0;
}

struct quantize_job {
    void (*quantize)(const float *x, void *y, int64_t k);
    const float *X;
    int64_t K;
    uint8_t *Xq;
    size_t xq_row;
};

static void quantize_task(void *vctx, int64_t m, int thread)
{
    (void)thread;
    const struct quantize_job *job = vctx;
    job->quantize(job->X + m * job->K, job->Xq + (size_t)m * job->xq_row, job->K);
}

int ae_matmul_quantize(uint32_t type, const float *X, int64_t K, int64_t M, void *Xq, ae_pool *pool,
                       ae_error *err)
{
    if (matmul_check("matmul quantize", type, AE_LAYOUT_ROWS, 1, K, M, err) != 0)
        return -1;
    if (type == AE_TYPE_F32 || M == 0 || K == 0)
        return 0;
    if (!X || !Xq)
        return ae_fail(err, "matmul quantize: NULL activations or scratch");
    if ((uintptr_t)Xq % 8 != 0)
        return ae_fail(err, "matmul quantize: scratch at %p is not 8-byte aligned", Xq);
    struct quantize_job job = {
        .quantize = matmul_types[type].quantize,
        .X = X,
        .K = K,
        .Xq = Xq,
        .xq_row = ae_matmul_act_row_bytes(type, K),
    };
    /* one row is one task; a single short row is not worth waking the workers */
    if (M == 1)
        quantize_task(&job, 0, 0);
    else
        ae_pool_run(pool, quantize_task, &job, M);
    return 0;
}

/* Activation rows per call of a block kernel: they stay in cache while the task's weight rows pass. */
#define MATMUL_TILE_COLS 256

/* The weights of one run of the pool: one or several parts (ae_matmul_parts), seen as one matrix of their
 * rows one after another, each part's rows rounded up to whole groups of the largest group. A task owns
 * `chunk` of those rows (a multiple of every part's group), which may span parts. */
struct matmul_part_job {
    ae_gemm_fn gemm;
    const uint8_t *W;
    size_t w_stride; /* bytes of one group (one row in the rows layout) */
    int64_t group;   /* rows per group */
    int64_t N;
    int64_t begin;   /* the part's first row in the concatenation */
    int64_t end;     /* begin + N, rounded up to whole groups */
    float *Y;
};

struct matmul_job {
    const uint8_t *Xq;
    size_t x_row;
    int64_t K, M;
    int64_t chunk;   /* rows per task */
    int n_parts;
    struct matmul_part_job part[AE_MATMUL_MAX_PARTS];
};

static void matmul_task(void *vctx, int64_t task, int thread)
{
    (void)thread;
    const struct matmul_job *job = vctx;
    const int64_t lo = task * job->chunk, hi = lo + job->chunk;
    for (int p = 0; p < job->n_parts; p++) {
        const struct matmul_part_job *pj = &job->part[p];
        if (pj->end <= lo || pj->begin >= hi)
            continue;
        const int64_t first = (lo > pj->begin ? lo : pj->begin) - pj->begin;
        int64_t end = (hi < pj->end ? hi : pj->end) - pj->begin;
        end = end < pj->N ? end : pj->N;
        for (int64_t m0 = 0; m0 < job->M; m0 += MATMUL_TILE_COLS) {
            const int64_t mc = job->M - m0 < MATMUL_TILE_COLS ? job->M - m0 : MATMUL_TILE_COLS;
            pj->gemm(job->K, pj->W + (size_t)(first / pj->group) * pj->w_stride, pj->w_stride, end - first,
                     job->Xq + (size_t)m0 * job->x_row, job->x_row, mc, pj->Y + m0 * pj->N + first, pj->N);
        }
    }
}

/* Checks each part (its vec type that of parts[0]) and multiplies them all by the converted rows Xq in
 * one run of the pool. */
static int matmul_parts_run(const char *fn, const struct ae_matmul_part *parts, int n_parts, int64_t K,
                            const void *Xq, int64_t M, ae_pool *pool, ae_error *err)
{
    if (n_parts < 1 || n_parts > AE_MATMUL_MAX_PARTS)
        return ae_fail(err, "%s: %d parts (1 to %d)", fn, n_parts, AE_MATMUL_MAX_PARTS);
    const uint32_t type0 = parts[0].type;
    struct matmul_job job = {.Xq = Xq, .K = K, .M = M, .n_parts = n_parts};
    /* every part starts at a multiple of the largest group (1 or 16 rows), so tasks split no group */
    int64_t rows = 0, group = 1;
    for (int p = 0; p < n_parts; p++)
        if (ae_layout_rows_per_group(parts[p].layout) > group)
            group = ae_layout_rows_per_group(parts[p].layout);
    for (int p = 0; p < n_parts; p++) {
        const struct ae_matmul_part *q = &parts[p];
        if (matmul_check(fn, q->type, q->layout, q->N, K, M, err) != 0)
            return -1;
        if (!ae_kernel_gemm(q->type, q->layout))
            return ae_fail(err, "%s: no kernels for %s weights were given (ae_kernels_use)", fn, ae_type_name(q->type));
        if (ae_matmul_vec_type(q->type) != ae_matmul_vec_type(type0))
            return ae_fail(err, "%s: part %d's %s weights take %s activations, part 0's %s take %s", fn, p,
                           ae_type_name(q->type), ae_type_name(ae_matmul_vec_type(q->type)), ae_type_name(type0),
                           ae_type_name(ae_matmul_vec_type(type0)));
        if (q->N > 0 && M > 0 && !q->Y)
            return ae_fail(err, "%s: NULL output", fn);
        if (q->N == 0 || M == 0)
            continue;
        if (K == 0) { /* empty sums */
            memset(q->Y, 0, (size_t)(q->N * M) * sizeof *q->Y);
            continue;
        }
        if (!q->W || !Xq)
            return ae_fail(err, "%s: NULL weights or activations", fn);
        const size_t align = q->type == AE_TYPE_F32 ? 4 : 2;
        if ((uintptr_t)q->W % align != 0)
            return ae_fail(err, "%s: %s weights at %p are not %zu-byte aligned", fn, ae_type_name(q->type), q->W,
                           align);
        struct matmul_part_job *pj = &job.part[p];
        pj->gemm = ae_kernel_gemm(q->type, q->layout);
        pj->W = q->W;
        pj->w_stride = (size_t)ae_layout_group_bytes(q->type, q->layout, K);
        pj->group = ae_layout_rows_per_group(q->layout);
        pj->N = q->N;
        pj->begin = rows;
        pj->end = rows + (q->N + group - 1) / group * group;
        pj->Y = q->Y;
        rows = pj->end;
    }
    if (rows == 0 || M == 0 || K == 0)
        return 0;
    if ((uintptr_t)Xq % (type0 == AE_TYPE_F32 ? 4 : 8) != 0)
        return ae_fail(err, "%s: converted activations at %p are not aligned", fn, Xq);
    job.x_row = type0 == AE_TYPE_F32 ? (size_t)K * sizeof(float) : ae_matmul_act_row_bytes(type0, K);
    /* Several tasks per thread even out uneven progress; small products stay on one thread. */
    const int threads = ae_pool_threads(pool);
    int64_t n_tasks = 1;
    if (threads > 1 && (double)rows * (double)K * (double)M >= 32768.0)
        n_tasks = (int64_t)threads * 4;
    job.chunk = ((rows + n_tasks - 1) / n_tasks + group - 1) / group * group;
    n_tasks = (rows + job.chunk - 1) / job.chunk;
    ae_pool_run(pool, matmul_task, &job, n_tasks);
    return 0;
}

int ae_matmul_prequantized(uint32_t type, enum ae_layout layout, const void *W, int64_t N, int64_t K, const void *Xq,
                           int64_t M, float *Y, ae_pool *pool, ae_error *err)
{
    const struct ae_matmul_part part = {type, layout, W, N, Y};
    return matmul_parts_run("matmul", &part, 1, K, Xq, M, pool, err);
}

int ae_matmul_parts(const struct ae_matmul_part *parts, int n_parts, int64_t K, const float *X, int64_t M,
                    void *scratch, ae_pool *pool, ae_error *err)
{
    if (n_parts < 1 || !parts)
        return ae_fail(err, "matmul parts: no parts");
    const uint32_t type = parts[0].type;
    if (matmul_check("matmul parts", type, parts[0].layout, parts[0].N, K, M, err) != 0)
        return -1;
    if (type == AE_TYPE_F32)
        return matmul_parts_run("matmul parts", parts, n_parts, K, X, M, pool, err);
    if (M > 0 && K > 0 && !scratch)
        return ae_fail(err, "matmul parts: no scratch for the %s activations (%zu bytes needed)",
                       ae_type_name(ae_matmul_vec_type(type)), ae_matmul_scratch_size(type, K, M));
    if (ae_matmul_quantize(type, X, K, M, scratch, pool, err) != 0)
        return -1;
    return matmul_parts_run("matmul parts", parts, n_parts, K, scratch, M, pool, err);
}

int ae_matmul(uint32_t type, enum ae_layout layout, const void *W, int64_t N, int64_t K, const float *X, int64_t M,
              float *Y, void *scratch, ae_pool *pool, ae_error *err)
{
    if (matmul_check("matmul", type, layout, N, K, M, err) != 0)
        return -1;
    if (type == AE_TYPE_F32)
        return ae_matmul_prequantized(type, layout, W, N, K, X, M, Y, pool, err);
    if (N > 0 && M > 0 && K > 0 && !scratch)
        return ae_fail(err, "matmul: no scratch for the %s activations (%zu bytes needed)",
                       ae_type_name(ae_matmul_vec_type(type)), ae_matmul_scratch_size(type, K, M));
    if (ae_matmul_quantize(type, X, K, M, scratch, pool, err) != 0)
        return -1;
    return ae_matmul_prequantized(type, layout, W, N, K, scratch, M, Y, pool, err);
}
