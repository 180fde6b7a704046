/* Matrix multiplication of ggml-typed weights by f32 activations: the scalar reference row kernels,
 * the table of vec types, and the driver that converts the activations and splits the work.
 *
 * The scalar kernels define the order of every float operation; the AVX2 and AVX-512 kernels
 * (kernels_matmul_avx2.c, kernels_matmul_avx512.c) reproduce it, which is what makes the paths agree
 * bit for bit:
 *   - 32-value blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 with Q8_0/Q8_1 activations): in block b, lane l
 *     (0..7) holds the exact integer sum of the products of values 4l..4l+3; the lane adds
 *     (float)sum * (dw * dx) to accumulator set b % 2. For Q4_1/Q5_1 the term mw * sx of every block goes
 *     into one separate sum, in block order. The result is hsum8(even + odd) (+ that sum), where
 *     hsum8(a) = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
 *   - K-quants (with Q8_K activations): per super-block the exact integer sums isum = sum(scale * q * x)
 *     and summs = sum(min * bsum); the row sum adds d * isum - dmin * summs (d = w.d * x.d,
 *     dmin = w.dmin * x.d) in super-block order.
 *   - F32, F16, BF16: value i goes to lane i % 32; lanes are combined as
 *     v[l] = (a[l] + a[l+8]) + (a[l+16] + a[l+24]) and then hsum8(v). Products of two fp16 or two bf16
 *     values are exact in f32, so the AVX2 code may use FMA for them; for F32 it may not.
 * Every product is written as its own statement, so that no compiler contracts it into an FMA.
 *
 * The driver: each task owns a range of weight rows and computes every output of those rows for all
 * M activation rows, so no output depends on how rows were split among threads. Where the level has a
 * block kernel for the type, the task hands it its rows and up to MATMUL_TILE_COLS activation rows at
 * a time (the kernel tiles them in registers); otherwise it calls the row dot per output, tile by tile.
 */
#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "matmul_iq.h"

#include <inttypes.h>
#include <string.h>

/* ---- shared pieces of the reduction order ---------------------------------------------------------- */

static float lanes_hsum8(const float a[8])
{
    const float s04 = a[0] + a[4], s15 = a[1] + a[5], s26 = a[2] + a[6], s37 = a[3] + a[7];
    const float lo = s04 + s26, hi = s15 + s37;
    return lo + hi;
}

/* acc[l] += (float)(qw[4l..4l+3] . qx[4l..4l+3]) * d, for one 32-value block. */
static void lanes_add_block(float acc[8], const int8_t qw[AE_QK], const int8_t qx[AE_QK], float d)
{
    for (int l = 0; l < 8; l++) {
        int p = 0;
        for (int i = 4 * l; i < 4 * l + 4; i++)
            p += qw[i] * qx[i];
        const float t = (float)p * d;
        acc[l] += t;
    }
}

static float lanes_finish(const float even[8], const float odd[8])
{
    float v[8];
    for (int l = 0; l < 8; l++)
        v[l] = even[l] + odd[l];
    return lanes_hsum8(v);
}

static float lanes32_finish(const float a[32])
{
    float v[8];
    for (int l = 0; l < 8; l++) {
        const float lo = a[l] + a[l + 8];
        const float hi = a[l + 16] + a[l + 24];
        v[l] = lo + hi;
    }
    return lanes_hsum8(v);
}

/* ---- 32-value blocks ------------------------------------------------------------------------------ */

/* The 32 fifth bits of a Q5 block, bit j for value j. */
static uint32_t q5_bits(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void dot_q4_0(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_0 *w = vw;
    const struct ae_block_q8_0 *x = vx;
    float acc[2][8] = {{0}};
    for (int64_t b = 0; b < k / AE_QK; b++) {
        int8_t q[AE_QK];
        for (int j = 0; j < AE_QK / 2; j++) {
            q[j] = (int8_t)((w[b].qs[j] & 0x0f) - 8);
            q[j + AE_QK / 2] = (int8_t)((w[b].qs[j] >> 4) - 8);
        }
        const float d = ae_fp16_to_fp32(w[b].d) * ae_fp16_to_fp32(x[b].d);
        lanes_add_block(acc[b & 1], q, x[b].qs, d);
    }
    *out = lanes_finish(acc[0], acc[1]);
}

static void dot_q4_1(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_1 *w = vw;
    const struct ae_block_q8_1 *x = vx;
    float acc[2][8] = {{0}};
    float sm = 0.0f;
    for (int64_t b = 0; b < k / AE_QK; b++) {
        int8_t q[AE_QK];
        for (int j = 0; j < AE_QK / 2; j++) {
            q[j] = (int8_t)(w[b].qs[j] & 0x0f);
            q[j + AE_QK / 2] = (int8_t)(w[b].qs[j] >> 4);
        }
        const float d = ae_fp16_to_fp32(w[b].d) * ae_fp16_to_fp32(x[b].d);
        lanes_add_block(acc[b & 1], q, x[b].qs, d);
        const float ms = ae_fp16_to_fp32(w[b].m) * ae_fp16_to_fp32(x[b].s);
        sm += ms;
    }
    const float dots = lanes_finish(acc[0], acc[1]);
    *out = dots + sm;
}

static void dot_q5_0(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_0 *w = vw;
    const struct ae_block_q8_0 *x = vx;
    float acc[2][8] = {{0}};
    for (int64_t b = 0; b < k / AE_QK; b++) {
        const uint32_t qh = q5_bits(w[b].qh);
        int8_t q[AE_QK];
        for (int j = 0; j < AE_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + AE_QK / 2)) & 1) << 4;
            q[j] = (int8_t)(((w[b].qs[j] & 0x0f) | h0) - 16);
            q[j + AE_QK / 2] = (int8_t)(((w[b].qs[j] >> 4) | h1) - 16);
        }
        const float d = ae_fp16_to_fp32(w[b].d) * ae_fp16_to_fp32(x[b].d);
        lanes_add_block(acc[b & 1], q, x[b].qs, d);
    }
    *out = lanes_finish(acc[0], acc[1]);
}

static void dot_q5_1(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_1 *w = vw;
    const struct ae_block_q8_1 *x = vx;
    float acc[2][8] = {{0}};
    float sm = 0.0f;
    for (int64_t b = 0; b < k / AE_QK; b++) {
        const uint32_t qh = q5_bits(w[b].qh);
        int8_t q[AE_QK];
        for (int j = 0; j < AE_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + AE_QK / 2)) & 1) << 4;
            q[j] = (int8_t)((w[b].qs[j] & 0x0f) | h0);
            q[j + AE_QK / 2] = (int8_t)((w[b].qs[j] >> 4) | h1);
        }
        const float d = ae_fp16_to_fp32(w[b].d) * ae_fp16_to_fp32(x[b].d);
        lanes_add_block(acc[b & 1], q, x[b].qs, d);
        const float ms = ae_fp16_to_fp32(w[b].m) * ae_fp16_to_fp32(x[b].s);
        sm += ms;
    }
    const float dots = lanes_finish(acc[0], acc[1]);
    *out = dots + sm;
}

static void dot_q8_0(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q8_0 *w = vw;
    const struct ae_block_q8_0 *x = vx;
    float acc[2][8] = {{0}};
    for (int64_t b = 0; b < k / AE_QK; b++) {
        const float d = ae_fp16_to_fp32(w[b].d) * ae_fp16_to_fp32(x[b].d);
        lanes_add_block(acc[b & 1], w[b].qs, x[b].qs, d);
    }
    *out = lanes_finish(acc[0], acc[1]);
}

/* ---- K-quants ------------------------------------------------------------------------------------- */

/* A super-block unpacked: its 256 quants (offsets already subtracted where the type has them), and
 * the integer scale and min of each group of 16 values (groups of 32 repeat theirs). */
struct kq_unpacked {
    int8_t q[AE_QK_K];
    int sc[AE_QK_K / 16];
    int m[AE_QK_K / 16];
};

/* Adds one super-block: isum = sum over groups of sc * (q . x), summs = sum over groups of m * bsum. */
static float kq_add(float acc, const struct kq_unpacked *u, const struct ae_block_q8_k *x, float d, float dmin,
                    int has_min)
{
    int isum = 0, summs = 0;
    for (int g = 0; g < AE_QK_K / 16; g++) {
        int s = 0;
        for (int l = 16 * g; l < 16 * g + 16; l++)
            s += u->q[l] * x->qs[l];
        isum += u->sc[g] * s;
        summs += u->m[g] * x->bsums[g];
    }
    const float t = d * (float)isum;
    if (!has_min)
        return acc + t;
    const float tm = dmin * (float)summs;
    const float diff = t - tm;
    return acc + diff;
}

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

static void dot_q2_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q2_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        struct kq_unpacked u;
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++)
                    u.q[128 * h + 32 * j + l] = (int8_t)((w[i].qs[32 * h + l] >> (2 * j)) & 3);
        for (int g = 0; g < 16; g++) {
            u.sc[g] = w[i].scales[g] & 0x0f;
            u.m[g] = w[i].scales[g] >> 4;
        }
        const float d = ae_fp16_to_fp32(w[i].d) * x[i].d;
        const float dmin = ae_fp16_to_fp32(w[i].dmin) * x[i].d;
        acc = kq_add(acc, &u, &x[i], d, dmin, 1);
    }
    *out = acc;
}

static void dot_q3_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q3_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        struct kq_unpacked u;
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) {
                    const int low = (w[i].qs[32 * h + l] >> (2 * j)) & 3;
                    const int high = (w[i].hmask[l] >> (4 * h + j)) & 1;
                    u.q[128 * h + 32 * j + l] = (int8_t)(low - (high ? 0 : 4));
                }
        for (int g = 0; g < 16; g++) {
            const int low = g < 8 ? w[i].scales[g] & 0x0f : w[i].scales[g - 8] >> 4;
            const int high = (w[i].scales[8 + g % 4] >> (2 * (g / 4))) & 3;
            u.sc[g] = (low | high << 4) - 32;
            u.m[g] = 0;
        }
        const float d = ae_fp16_to_fp32(w[i].d) * x[i].d;
        acc = kq_add(acc, &u, &x[i], d, 0.0f, 0);
    }
    *out = acc;
}

static void dot_q4_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        struct kq_unpacked u;
        for (int h = 0; h < 4; h++)
            for (int l = 0; l < 32; l++) {
                u.q[64 * h + l] = (int8_t)(w[i].qs[32 * h + l] & 0x0f);
                u.q[64 * h + 32 + l] = (int8_t)(w[i].qs[32 * h + l] >> 4);
            }
        for (int g = 0; g < 8; g++) {
            int sc, m;
            k_scale_min(w[i].scales, g, &sc, &m);
            u.sc[2 * g] = u.sc[2 * g + 1] = sc;
            u.m[2 * g] = u.m[2 * g + 1] = m;
        }
        const float d = ae_fp16_to_fp32(w[i].d) * x[i].d;
        const float dmin = ae_fp16_to_fp32(w[i].dmin) * x[i].d;
        acc = kq_add(acc, &u, &x[i], d, dmin, 1);
    }
    *out = acc;
}

static void dot_q5_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        struct kq_unpacked u;
        for (int h = 0; h < 4; h++)
            for (int l = 0; l < 32; l++) {
                const int h1 = (w[i].qh[l] >> (2 * h)) & 1;
                const int h2 = (w[i].qh[l] >> (2 * h + 1)) & 1;
                u.q[64 * h + l] = (int8_t)((w[i].qs[32 * h + l] & 0x0f) | h1 << 4);
                u.q[64 * h + 32 + l] = (int8_t)((w[i].qs[32 * h + l] >> 4) | h2 << 4);
            }
        for (int g = 0; g < 8; g++) {
            int sc, m;
            k_scale_min(w[i].scales, g, &sc, &m);
            u.sc[2 * g] = u.sc[2 * g + 1] = sc;
            u.m[2 * g] = u.m[2 * g + 1] = m;
        }
        const float d = ae_fp16_to_fp32(w[i].d) * x[i].d;
        const float dmin = ae_fp16_to_fp32(w[i].dmin) * x[i].d;
        acc = kq_add(acc, &u, &x[i], d, dmin, 1);
    }
    *out = acc;
}

static void dot_q6_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q6_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        struct kq_unpacked u;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h;
            const uint8_t *qh = w[i].qh + 32 * h;
            int8_t *q = u.q + 128 * h;
            for (int l = 0; l < 32; l++) {
                q[l] = (int8_t)(((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32);
                q[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32);
                q[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
                q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
            }
        }
        for (int g = 0; g < 16; g++) {
            u.sc[g] = w[i].scales[g];
            u.m[g] = 0;
        }
        const float d = ae_fp16_to_fp32(w[i].d) * x[i].d;
        acc = kq_add(acc, &u, &x[i], d, 0.0f, 0);
    }
    *out = acc;
}

/* ---- F32, F16, BF16 ------------------------------------------------------------------------------- */

static void dot_f32(int64_t k, const void *vw, const void *vx, float *out)
{
    const float *w = vw, *x = vx;
    float acc[32] = {0};
    for (int64_t i = 0; i < k; i++) {
        const float p = w[i] * x[i];
        acc[i % 32] += p;
    }
    *out = lanes32_finish(acc);
}

static void dot_f16(int64_t k, const void *vw, const void *vx, float *out)
{
    const uint16_t *w = vw, *x = vx;
    float acc[32] = {0};
    for (int64_t i = 0; i < k; i++) {
        const float p = ae_fp16_to_fp32(w[i]) * ae_fp16_to_fp32(x[i]);
        acc[i % 32] += p;
    }
    *out = lanes32_finish(acc);
}

static void dot_bf16(int64_t k, const void *vw, const void *vx, float *out)
{
    const uint16_t *w = vw, *x = vx;
    float acc[32] = {0};
    for (int64_t i = 0; i < k; i++) {
        const float p = ae_bf16_to_fp32(w[i]) * ae_bf16_to_fp32(x[i]);
        acc[i % 32] += p;
    }
    *out = lanes32_finish(acc);
}

static void mad_f16_scalar(int64_t n, float *y, const uint16_t *x, float a)
{
    for (int64_t i = 0; i < n; i++) {
        const float p = a * ae_fp16_to_fp32(x[i]);
        y[i] += p;
    }
}

static const struct ae_kernel_set scalar_set = {
    .name = "scalar",
    .vec_dot =
        {
            [AE_TYPE_F32] = dot_f32,   [AE_TYPE_F16] = dot_f16,   [AE_TYPE_BF16] = dot_bf16,
            [AE_TYPE_Q4_0] = dot_q4_0, [AE_TYPE_Q4_1] = dot_q4_1, [AE_TYPE_Q5_0] = dot_q5_0,
            [AE_TYPE_Q5_1] = dot_q5_1, [AE_TYPE_Q8_0] = dot_q8_0, [AE_TYPE_Q2_K] = dot_q2_k,
            [AE_TYPE_Q3_K] = dot_q3_k, [AE_TYPE_Q4_K] = dot_q4_k, [AE_TYPE_Q5_K] = dot_q5_k,
            [AE_TYPE_Q6_K] = dot_q6_k,
            [AE_TYPE_IQ4_NL] = ae_dot_iq4_nl_scalar, [AE_TYPE_IQ4_XS] = ae_dot_iq4_xs_scalar,
            [AE_TYPE_TQ1_0] = ae_dot_tq1_0_scalar,   [AE_TYPE_TQ2_0] = ae_dot_tq2_0_scalar,
        },
    .to_f16 = ae_convert_row_f16,
    .mad_f16 = mad_f16_scalar,
};

const struct ae_kernel_set *ae_kernels_scalar(void)
{
    return &scalar_set;
}

#if !defined(__x86_64__)
const struct ae_kernel_set *ae_kernels_avx2(void)
{
    return NULL;
}

const struct ae_kernel_set *ae_kernels_avx512(void)
{
    return NULL;
}
#endif

/* Puts the sets of the current level and the levels below it into sets, best first, and returns their count
 * (the scalar set is not among them). */
static int kernels_current(const struct ae_kernel_set *sets[AE_ISA_COUNT])
{
    static const struct ae_kernel_set *(*const level_sets[AE_ISA_COUNT])(void) = {
#if defined(__aarch64__)
        [AE_ISA_NEON] = ae_kernels_neon, [AE_ISA_DOTPROD] = ae_kernels_dotprod, [AE_ISA_I8MM] = ae_kernels_i8mm,
#else
        [AE_ISA_AVX2] = ae_kernels_avx2, [AE_ISA_AVX512] = ae_kernels_avx512,
#endif
    };
    int n = 0;
    for (int level = (int)ae_cpu_isa(); level > AE_ISA_SCALAR; level--)
        if (level_sets[level] && level_sets[level]())
            sets[n++] = level_sets[level]();
    return n;
}

ae_vec_dot_fn ae_kernel_vec_dot(uint32_t type)
{
    if (!ae_matmul_supports(type))
        return NULL;
    const struct ae_kernel_set *sets[AE_ISA_COUNT];
    const int n = kernels_current(sets);
    for (int i = 0; i < n; i++)
        if (sets[i]->vec_dot[type])
            return sets[i]->vec_dot[type];
    return scalar_set.vec_dot[type];
}

ae_gemm_fn ae_kernel_gemm(uint32_t type)
{
    if (!ae_matmul_supports(type))
        return NULL;
    const struct ae_kernel_set *sets[AE_ISA_COUNT];
    const int n = kernels_current(sets);
    for (int i = 0; i < n; i++) {
        if (sets[i]->gemm[type])
            return sets[i]->gemm[type];
        if (sets[i]->vec_dot[type]) /* a level's own row dot beats a lower level's block kernel */
            return NULL;
    }
    return NULL;
}

/* ---- vec types and activation conversion ---------------------------------------------------------- */

static void quantize_f16(const float *x, void *y, int64_t k)
{
    const struct ae_kernel_set *sets[AE_ISA_COUNT];
    const int n = kernels_current(sets);
    for (int i = 0; i < n; i++)
        if (sets[i]->to_f16) {
            sets[i]->to_f16(x, y, k);
            return;
        }
    ae_convert_row_f16(x, y, k);
}

static void quantize_bf16(const float *x, void *y, int64_t k)
{
    ae_convert_row_bf16(x, y, k);
}

struct matmul_type {
    uint32_t vec_type; /* 0 (F32) also marks unsupported rows, told apart by quantize */
    void (*quantize)(const float *x, void *y, int64_t k); /* NULL for F32: X is used as it is */
};

static const struct matmul_type matmul_types[AE_TYPE_ID_LIMIT] = {
    [AE_TYPE_F16] = {AE_TYPE_F16, quantize_f16},
    [AE_TYPE_BF16] = {AE_TYPE_BF16, quantize_bf16},
    [AE_TYPE_Q4_0] = {AE_TYPE_Q8_0, ae_quantize_row_q8_0},
    [AE_TYPE_Q5_0] = {AE_TYPE_Q8_0, ae_quantize_row_q8_0},
    [AE_TYPE_Q8_0] = {AE_TYPE_Q8_0, ae_quantize_row_q8_0},
    [AE_TYPE_Q4_1] = {AE_TYPE_Q8_1, ae_quantize_row_q8_1},
    [AE_TYPE_Q5_1] = {AE_TYPE_Q8_1, ae_quantize_row_q8_1},
    [AE_TYPE_Q2_K] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q3_K] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q4_K] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q5_K] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_Q6_K] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_IQ4_NL] = {AE_TYPE_Q8_0, ae_quantize_row_q8_0},
    [AE_TYPE_IQ4_XS] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_TQ1_0] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
    [AE_TYPE_TQ2_0] = {AE_TYPE_Q8_K, ae_quantize_row_q8_k},
};

bool ae_matmul_supports(uint32_t type)
{
    return type < AE_TYPE_ID_LIMIT && scalar_set.vec_dot[type] != NULL;
}

uint32_t ae_matmul_vec_type(uint32_t type)
{
    if (!ae_matmul_supports(type))
        return AE_TYPE_ID_LIMIT;
    return type == AE_TYPE_F32 ? AE_TYPE_F32 : matmul_types[type].vec_type;
}

/* Bytes of one row of k values of type, or 0 when k is not a whole number of blocks or overflows. */
static uint64_t row_bytes(uint32_t type, int64_t k)
{
    uint64_t n;
    if (k < 0 || ae_type_row_bytes(type, (uint64_t)k, &n, NULL) != 0)
        return 0;
    return n;
}

size_t ae_matmul_scratch_size(uint32_t type, int64_t K, int64_t M)
{
    if (!ae_matmul_supports(type) || type == AE_TYPE_F32 || M < 0)
        return 0;
    const uint64_t rb = row_bytes(ae_matmul_vec_type(type), K);
    if (M > 0 && rb > SIZE_MAX / (uint64_t)M)
        return 0;
    return (size_t)(rb * (uint64_t)M);
}

/* Checks the arguments shared by the entry points: type, sizes, block multiple. */
static int matmul_check(const char *fn, uint32_t type, int64_t N, int64_t K, int64_t M, ae_error *err)
{
    if (!ae_matmul_supports(type))
        return ae_fail(err, "%s: weight type %s (%" PRIu32 ") is not supported", fn, ae_type_name(type), type);
    if (N < 0 || K < 0 || M < 0)
        return ae_fail(err, "%s: negative size N=%" PRId64 " K=%" PRId64 " M=%" PRId64, fn, N, K, M);
    const struct ae_type_info *wt = ae_type_info(type);
    const struct ae_type_info *vt = ae_type_info(ae_matmul_vec_type(type));
    if (K % wt->block_size != 0 || K % vt->block_size != 0)
        return ae_fail(err, "%s: K=%" PRId64 " is not a multiple of the %s block size %" PRIu32, fn, K, wt->name,
                       wt->block_size > vt->block_size ? wt->block_size : vt->block_size);
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
    if (matmul_check("matmul quantize", type, 1, K, M, err) != 0)
        return -1;
    if (type == AE_TYPE_F32 || M == 0 || K == 0)
        return 0;
    if (!X || !Xq)
        return ae_fail(err, "matmul quantize: NULL activations or scratch");
    if ((uintptr_t)Xq % 4 != 0)
        return ae_fail(err, "matmul quantize: scratch at %p is not 4-byte aligned", Xq);
    struct quantize_job job = {
        .quantize = matmul_types[type].quantize,
        .X = X,
        .K = K,
        .Xq = Xq,
        .xq_row = (size_t)row_bytes(matmul_types[type].vec_type, K),
    };
    /* one row is one task; a single short row is not worth waking the workers */
    if (M == 1)
        quantize_task(&job, 0, 0);
    else
        ae_pool_run(pool, quantize_task, &job, M);
    return 0;
}

/* Weight rows per tile: the tile's rows stay in cache while every activation row passes over them. */
#define MATMUL_TILE_ROWS 16
/* Activation rows per pass of a block kernel: they stay in cache while the task's weight rows pass. */
#define MATMUL_TILE_COLS 64

struct matmul_job {
    ae_vec_dot_fn dot;
    ae_gemm_fn gemm; /* NULL: dot per output */
    const uint8_t *W;
    size_t w_row;
    const uint8_t *Xq;
    size_t x_row;
    int64_t N, K, M;
    float *Y;
    int64_t rows_per_task;
};

static void matmul_task(void *vctx, int64_t task, int thread)
{
    (void)thread;
    const struct matmul_job *job = vctx;
    const int64_t first = task * job->rows_per_task;
    const int64_t end = first + job->rows_per_task < job->N ? first + job->rows_per_task : job->N;
    if (job->gemm) {
        for (int64_t m0 = 0; m0 < job->M; m0 += MATMUL_TILE_COLS) {
            const int64_t mc = job->M - m0 < MATMUL_TILE_COLS ? job->M - m0 : MATMUL_TILE_COLS;
            job->gemm(job->K, job->W + (size_t)first * job->w_row, job->w_row, end - first,
                      job->Xq + (size_t)m0 * job->x_row, job->x_row, mc, job->Y + m0 * job->N + first, job->N);
        }
        return;
    }
    for (int64_t n0 = first; n0 < end; n0 += MATMUL_TILE_ROWS) {
        const int64_t n1 = n0 + MATMUL_TILE_ROWS < end ? n0 + MATMUL_TILE_ROWS : end;
        for (int64_t m = 0; m < job->M; m++) {
            const uint8_t *x = job->Xq + (size_t)m * job->x_row;
            float *y = job->Y + m * job->N;
            for (int64_t n = n0; n < n1; n++)
                job->dot(job->K, job->W + (size_t)n * job->w_row, x, &y[n]);
        }
    }
}

int ae_matmul_prequantized(uint32_t type, const void *W, int64_t N, int64_t K, const void *Xq, int64_t M,
                           float *Y, ae_pool *pool, ae_error *err)
{
    if (matmul_check("matmul", type, N, K, M, err) != 0)
        return -1;
    if (N == 0 || M == 0)
        return 0;
    if (!Y)
        return ae_fail(err, "matmul: NULL output");
    if (K == 0) { /* empty sums */
        memset(Y, 0, (size_t)(N * M) * sizeof *Y);
        return 0;
    }
    if (!W || !Xq)
        return ae_fail(err, "matmul: NULL weights or activations");
    const size_t align = type == AE_TYPE_F32 ? 4 : 2;
    if ((uintptr_t)W % align != 0)
        return ae_fail(err, "matmul: %s weights at %p are not %zu-byte aligned", ae_type_name(type), W, align);
    if ((uintptr_t)Xq % 4 != 0)
        return ae_fail(err, "matmul: converted activations at %p are not 4-byte aligned", Xq);

    struct matmul_job job = {
        .dot = ae_kernel_vec_dot(type),
        .gemm = ae_kernel_gemm(type),
        .W = W,
        .w_row = (size_t)row_bytes(type, K),
        .Xq = Xq,
        .x_row = (size_t)row_bytes(ae_matmul_vec_type(type), K),
        .N = N,
        .K = K,
        .M = M,
        .Y = Y,
    };
    /* Several tasks per thread even out uneven progress; small products stay on one thread. */
    const int threads = ae_pool_threads(pool);
    int64_t n_tasks = 1;
    if (threads > 1 && (double)N * (double)K * (double)M >= 32768.0)
        n_tasks = (int64_t)threads * 4 < N ? (int64_t)threads * 4 : N;
    job.rows_per_task = (N + n_tasks - 1) / n_tasks;
    n_tasks = (N + job.rows_per_task - 1) / job.rows_per_task;
    ae_pool_run(pool, matmul_task, &job, n_tasks);
    return 0;
}

int ae_matmul(uint32_t type, const void *W, int64_t N, int64_t K, const float *X, int64_t M, float *Y,
              void *scratch, ae_pool *pool, ae_error *err)
{
    if (matmul_check("matmul", type, N, K, M, err) != 0)
        return -1;
    if (type == AE_TYPE_F32)
        return ae_matmul_prequantized(type, W, N, K, X, M, Y, pool, err);
    if (N > 0 && M > 0 && K > 0 && !scratch)
        return ae_fail(err, "matmul: no scratch for the %s activations (%zu bytes needed)",
                       ae_type_name(ae_matmul_vec_type(type)), ae_matmul_scratch_size(type, K, M));
    if (ae_matmul_quantize(type, X, K, M, scratch, pool, err) != 0)
        return -1;
    return ae_matmul_prequantized(type, W, N, K, scratch, M, Y, pool, err);
}
