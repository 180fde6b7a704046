/* NEON kernels for the matmul on aarch64, in three levels chosen at run time (cpu.c): NEON (every
 * ARMv8-A CPU), dotprod (SDOT, ARMv8.2-A) and i8mm (SMMLA, ARMv8.6-A).
 *
 * The library is built for baseline ARMv8-A. The integer kernels are written once
 * (matmul_neon_body.h) and compiled twice: for NEON, where 4-byte dot products come from widening
 * multiplies and pairwise adds, and under "+dotprod", where one SDOT gives four of them. Each follows
 * the canonical order of docs/kernels.md: an exact integer sum per block (or super-block), one fused
 * multiply-add into the output's accumulator, blocks in order; F32/F16/BF16 in 16 lanes (four registers)
 * with the fixed reduction. The results are the scalar kernels' bytes, and so the x86-64 kernels'.
 *
 * x16 layout: a group block's chunk (16 rows x 4 bytes) is four registers of 4 rows each; every chunk's
 * register is multiplied by the activation's 4 bytes broadcast (one SDOT adds 4 products per row), and
 * each unpacked chunk serves every activation row of a tile. rows layout: 32-value types 4 rows at once
 * (one lane per row, so each block's FMA is one vector FMA), K-quants one row at a time. The i8mm level
 * adds block kernels for the rows-layout K-quants: SMMLA multiplies 2 weight rows by 2 activation rows, 8
 * bytes deep, and a super-block's sums are exact integers in any order. On other hosts this file only
 * says that the levels are absent.
 */
#include "ae_kernels.h"

#if defined(__aarch64__)

#include "ae_quant_blocks.h"
#include "gemm_levels.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

/* Activation rows of one x16 tile (32-value types, K-quants). */
#define X16_COLS 4
#define KX16_COLS 2

/* ---- pieces every level shares -------------------------------------------------------------------- */

static inline float h2f(uint16_t h)
{
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

/* 16 fp16 values as four float32x4. */
static inline void load_f16x16(const uint8_t *p, float32x4_t v[4])
{
    for (int i = 0; i < 4; i++)
        v[i] = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p + 8 * i)));
}

/* The first n (<= 16) of 16 outputs, held four to a register. */
static inline void store_rows16(float *y, const float32x4_t v[4], int n)
{
    if (n == 16) {
        for (int i = 0; i < 4; i++)
            vst1q_f32(y + 4 * i, v[i]);
        return;
    }
    float t[16];
    for (int i = 0; i < 4; i++)
        vst1q_f32(t + 4 * i, v[i]);
    for (int i = 0; i < n; i++)
        y[i] = t[i];
}

/* 4 activation bytes in every 32-bit lane. */
static inline int8x16_t bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* The 32 nibbles of a Q4 block as bytes in value order: values 0-15 (low nibbles) and 16-31 (high). */
static inline void nibbles(const uint8_t qs[AE_QK / 2], int8x16_t *q0, int8x16_t *q1)
{
    const uint8x16_t raw = vld1q_u8(qs);
    *q0 = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
    *q1 = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
}

/* 0x10 in byte j where bit j of a Q5 block's qh is set, 0 elsewhere: values 0-15 and 16-31. */
static inline void q5_high(const uint8_t qh[4], int8x16_t *h0, int8x16_t *h1)
{
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits);
    const uint8x16_t v = vreinterpretq_u8_u32(vdupq_n_u32(bits));
    static const uint8_t spread0[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t spread1[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t m = vld1q_u8(bit), sixteen = vdupq_n_u8(0x10);
    *h0 = vreinterpretq_s8_u8(vandq_u8(vtstq_u8(vqtbl1q_u8(v, vld1q_u8(spread0)), m), sixteen));
    *h1 = vreinterpretq_s8_u8(vandq_u8(vtstq_u8(vqtbl1q_u8(v, vld1q_u8(spread1)), m), sixteen));
}

/* The fifth bits of x16 chunk j for 4 rows (qh: each row's uint32, byte j bit i for value 4j + i, bit
 * 4 + i for value 16 + 4j + i): 0x10 where set, in the bytes of the low values and of the high ones. */
static inline void q5_chunk_bits(uint32x4_t qh, int j, uint8x16_t *lo, uint8x16_t *hi)
{
    const uint32x4_t byte = vandq_u32(vshlq_u32(qh, vdupq_n_s32(-8 * j)), vdupq_n_u32(0xff));
    const uint8x16_t v = vreinterpretq_u8_u32(vmulq_n_u32(byte, 0x01010101u)); /* the byte in all 4 */
    const uint8x16_t blo = vreinterpretq_u8_u32(vdupq_n_u32(0x08040201u));
    const uint8x16_t bhi = vreinterpretq_u8_u32(vdupq_n_u32(0x80402010u));
    const uint8x16_t sixteen = vdupq_n_u8(0x10);
    *lo = vandq_u8(vtstq_u8(v, blo), sixteen);
    *hi = vandq_u8(vtstq_u8(v, bhi), sixteen);
}

/* Lane r: the exact sum of q[i] * x[i] for bytes i = 4r..4r+3 (widening multiplies, pairwise adds). */
static inline int32x4_t lanes4_neon(int8x16_t q, int8x16_t x)
{
    const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(q), vget_low_s8(x)));
    const int32x4_t hi = vpaddlq_s16(vmull_high_s8(q, x));
    return vpaddq_s32(lo, hi);
}

/* acc plus an int32x4 whose lanes add up to the exact q . x. */
static inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t q, int8x16_t x)
{
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(q), vget_low_s8(x)));
    return vpadalq_s16(acc, vmull_high_s8(q, x));
}

/* The totals of four int32x4 side by side: [sum(a), sum(b), sum(c), sum(d)]. */
static inline int32x4_t group4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

/* v >> s for a shift known only at run time. */
static inline uint8x16_t shr_u8(uint8x16_t v, int s)
{
    return vshlq_u8(v, vdupq_n_s8((int8_t)-s));
}

/* 16 byte scales as four int32x4 (scales 0-3, 4-7, 8-11, 12-15). */
static inline void widen_scales(uint8x16_t u, int32x4_t sc[4])
{
    const uint16x8_t lo = vmovl_u8(vget_low_u8(u)), hi = vmovl_high_u8(u);
    sc[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo)));
    sc[1] = vreinterpretq_s32_u32(vmovl_high_u16(lo));
    sc[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi)));
    sc[3] = vreinterpretq_s32_u32(vmovl_high_u16(hi));
}

static inline void widen_scales_signed(int8x16_t v, int32x4_t sc[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    sc[0] = vmovl_s16(vget_low_s16(lo));
    sc[1] = vmovl_high_s16(lo);
    sc[2] = vmovl_s16(vget_low_s16(hi));
    sc[3] = vmovl_high_s16(hi);
}

/* The 16 6-bit scales of a Q3_K block (offset by 32) as bytes in group order, from their 12 bytes with
 * 32-bit masks: the values of matmul.c's blk_q3_k. */
static inline uint8x16_t q3_k_scales(const uint8_t s[AE_K_SCALE_BYTES])
{
    uint32_t u[3];
    memcpy(u, s, sizeof u);
    const uint32_t low4 = 0x0f0f0f0f, top2 = 0x03030303;
    const uint32_t v[4] = {(u[0] & low4) | (u[2] & top2) << 4, (u[1] & low4) | ((u[2] >> 2) & top2) << 4,
                           ((u[0] >> 4) & low4) | ((u[2] >> 4) & top2) << 4,
                           ((u[1] >> 4) & low4) | ((u[2] >> 6) & top2) << 4};
    return vreinterpretq_u8_u32(vld1q_u32(v));
}

/* The 8 scales (as two int32x4) and 8 mins (int16x8) of a Q4_K or Q5_K block: matmul.c's k_scale_min. */
static inline void k_scales_mins(const uint8_t s[AE_K_SCALE_BYTES], int32x4_t sc[2], int16x8_t *mins)
{
    uint32_t u[3];
    memcpy(u, s, sizeof u);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    const uint32_t v[4] = {u[0] & low6, (u[2] & low4) | ((u[0] >> 6) & top2) << 4, u[1] & low6,
                           ((u[2] >> 4) & low4) | ((u[1] >> 6) & top2) << 4};
    const uint8x16_t b = vreinterpretq_u8_u32(vld1q_u32(v)); /* scales 0-7, mins 0-7 */
    const uint16x8_t scales = vmovl_u8(vget_low_u8(b));
    sc[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(scales)));
    sc[1] = vreinterpretq_s32_u32(vmovl_high_u16(scales));
    *mins = vreinterpretq_s16_u16(vmovl_high_u8(b));
}

/* sum over 16 groups of min * bsum (mins of groups 0-7 and 8-15). */
static inline int summs16(const int16_t bsums[16], int16x8_t m_lo, int16x8_t m_hi)
{
    const int16x8_t b_lo = vld1q_s16(bsums), b_hi = vld1q_s16(bsums + 8);
    int32x4_t s = vmull_s16(vget_low_s16(b_lo), vget_low_s16(m_lo));
    s = vmlal_high_s16(s, b_lo, m_lo);
    s = vmlal_s16(s, vget_low_s16(b_hi), vget_low_s16(m_hi));
    return vaddvq_s32(vmlal_high_s16(s, b_hi, m_hi));
}

/* sum over 8 groups of 32 of min * (the two bsums of the group); a pair's sum fits int16. */
static inline int summs32(const int16_t bsums[16], int16x8_t mins)
{
    const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int32x4_t s = vmull_s16(vget_low_s16(pairs), vget_low_s16(mins));
    return vaddvq_s32(vmlal_high_s16(s, pairs, mins));
}

/* The canonical float steps of one super-block with exact sums isum and msum. */
static inline float kq_step(float acc, int isum, int msum, float d, float dmin, int has_min)
{
    acc = fmaf((float)isum, d, acc);
    if (has_min)
        acc = fmaf(-(float)msum, dmin, acc);
    return acc;
}

/* The per-row integer scales of one x16 K-quant group block, per group and quarter of 4 rows: sc[g][q]
 * (Q4_K/Q5_K: 8 groups of 32; Q2_K, Q3_K, Q6_K: 16 groups of 16) and the mins m[g][q] (Q4_K/Q5_K: 8,
 * Q2_K: 16). */
struct kscales16 {
    int32x4_t sc[16][4];
    int32x4_t m[16][4];
};

/* scales: byte j of the 16 rows' packed scales at scales + 16 j; decoded for all 16 rows at once. */
static inline void kscales16_q45(const uint8_t *scales, struct kscales16 *o)
{
    uint8x16_t s[AE_K_SCALE_BYTES];
    for (int j = 0; j < AE_K_SCALE_BYTES; j++)
        s[j] = vld1q_u8(scales + 16 * j);
    const uint8x16_t m63 = vdupq_n_u8(63), m0f = vdupq_n_u8(0x0f), m30 = vdupq_n_u8(0x30);
    for (int g = 0; g < 8; g++) {
        uint8x16_t sc, m;
        if (g < 4) {
            sc = vandq_u8(s[g], m63);
            m = vandq_u8(s[g + 4], m63);
        } else {
            sc = vorrq_u8(vandq_u8(s[g + 4], m0f), vandq_u8(vshrq_n_u8(s[g - 4], 2), m30));
            m = vorrq_u8(vshrq_n_u8(s[g + 4], 4), vandq_u8(vshrq_n_u8(s[g], 2), m30));
        }
        widen_scales(sc, o->sc[g]);
        widen_scales(m, o->m[g]);
    }
}

static inline void kscales16_q6(const int8_t *scales, struct kscales16 *o)
{
    for (int g = 0; g < 16; g++)
        widen_scales_signed(vld1q_s8(scales + 16 * g), o->sc[g]);
}

/* Q2_K: byte g of each row holds group g's scale (low nibble) and min (high nibble). */
static inline void kscales16_q2(const uint8_t *scales, struct kscales16 *o)
{
    for (int g = 0; g < 16; g++) {
        const uint8x16_t v = vld1q_u8(scales + 16 * g);
        widen_scales(vandq_u8(v, vdupq_n_u8(0x0f)), o->sc[g]);
        widen_scales(vshrq_n_u8(v, 4), o->m[g]);
    }
}

/* Q3_K: the 16 6-bit scales less 32 (matmul.c's blk_q3_k) from byte j of the 16 rows' 12 at scales + 16 j. */
static inline void kscales16_q3(const uint8_t *scales, struct kscales16 *o)
{
    uint8x16_t s[AE_K_SCALE_BYTES];
    for (int j = 0; j < AE_K_SCALE_BYTES; j++)
        s[j] = vld1q_u8(scales + 16 * j);
    for (int g = 0; g < 16; g++) {
        const uint8x16_t low = g < 8 ? vandq_u8(s[g], vdupq_n_u8(0x0f)) : vshrq_n_u8(s[g - 8], 4);
        const uint8x16_t high = vandq_u8(shr_u8(s[8 + g % 4], 2 * (g / 4)), vdupq_n_u8(3));
        const uint8x16_t sc = vsubq_u8(vorrq_u8(low, vshlq_n_u8(high, 4)), vdupq_n_u8(32));
        widen_scales_signed(vreinterpretq_s8_u8(sc), o->sc[g]);
    }
}

/* A tile kernel: one x16 group (n_rows of its 16 written) by a fixed number of activation rows. */
typedef void (*x16_tile_fn)(int64_t nb, const uint8_t *w, int n_rows, const uint8_t *x, size_t x_row, float *y,
                            int64_t y_stride);

/* Every group by every activation row: `cols` at a time through tile_n, the rest one by one. */
static void x16_run(x16_tile_fn tile_1, x16_tile_fn tile_n, int cols, int64_t nb, const void *w, size_t ws,
                    int64_t nr, const void *x, size_t xr, int64_t nc, float *y, int64_t ys)
{
    for (int64_t r = 0; r < nr; r += AE_X16_ROWS) {
        const uint8_t *wg = (const uint8_t *)w + (size_t)(r / AE_X16_ROWS) * ws;
        const int n = nr - r < AE_X16_ROWS ? (int)(nr - r) : AE_X16_ROWS;
        int64_t c = 0;
        for (; c + cols <= nc; c += cols)
            tile_n(nb, wg, n, (const uint8_t *)x + (size_t)c * xr, xr, y + c * ys + r, ys);
        for (; c < nc; c++)
            tile_1(nb, wg, n, (const uint8_t *)x + (size_t)c * xr, xr, y + c * ys + r, ys);
    }
}

static void x16_tiles(x16_tile_fn tile_1, x16_tile_fn tile_n, int64_t nb, const void *w, size_t ws, int64_t nr,
                      const void *x, size_t xr, int64_t nc, float *y, int64_t ys)
{
    x16_run(tile_1, tile_n, X16_COLS, nb, w, ws, nr, x, xr, nc, y, ys);
}

static void kx16_tiles(x16_tile_fn tile_1, x16_tile_fn tile_n, int64_t nb, const void *w, size_t ws, int64_t nr,
                       const void *x, size_t xr, int64_t nc, float *y, int64_t ys)
{
    x16_run(tile_1, tile_n, KX16_COLS, nb, w, ws, nr, x, xr, nc, y, ys);
}

/* ---- the NEON level's integer kernels ------------------------------------------------------------- */

#define NEON_FN(name) name##_neon
#define ROWS4(acc, q, p) vaddq_s32(acc, lanes4_neon(q, bcast4(p)))
#define DOT16(acc, q, x) dot16_neon(acc, q, x)
#include "matmul_neon_body.h"
#undef NEON_FN
#undef ROWS4
#undef DOT16

/* ---- the dotprod level's: the same code, dot products from SDOT ----------------------------------- */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

#define NEON_FN(name) name##_dotprod
#define ROWS4(acc, q, p) vdotq_s32(acc, q, bcast4(p))
#define DOT16(acc, q, x) vdotq_s32(acc, q, x)
#include "matmul_neon_body.h"
#undef NEON_FN
#undef ROWS4
#undef DOT16

#pragma GCC pop_options

/* ---- F32, F16, BF16, rows layout (one level: NEON) ------------------------------------------------ */

/* reduce16 of docs/kernels.md over lanes 0-3, 4-7, 8-11, 12-15. */
static inline float reduce16(const float32x4_t a[4])
{
    const float32x4_t v8lo = vaddq_f32(a[0], a[2]), v8hi = vaddq_f32(a[1], a[3]); /* v8[0..3], v8[4..7] */
    const float32x4_t v4 = vaddq_f32(v8lo, v8hi);
    const float32x2_t v2 = vadd_f32(vget_low_f32(v4), vget_high_f32(v4));
    return vget_lane_f32(v2, 0) + vget_lane_f32(v2, 1);
}

static inline float32x4_t load4(uint32_t type, const void *p, int64_t i)
{
    if (type == AE_TYPE_F32)
        return vld1q_f32((const float *)p + i);
    const uint16x4_t h = vld1_u16((const uint16_t *)p + i);
    if (type == AE_TYPE_F16)
        return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

static inline float value_at(uint32_t type, const void *p, int64_t i)
{
    if (type == AE_TYPE_F32)
        return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return type == AE_TYPE_F16 ? h2f(h) : ae_bf16_to_fp32(h);
}

/* One row by one activation row (f32): value i goes to lane i % 16, fmaf each. */
static inline __attribute__((always_inline)) float dot_float(uint32_t type, int64_t k, const void *w, const float *x)
{
    float32x4_t a[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= k; i += 16)
        for (int j = 0; j < 4; j++)
            a[j] = vfmaq_f32(a[j], load4(type, w, i + 4 * j), vld1q_f32(x + i + 4 * j));
    if (i < k) {
        float lanes[16];
        for (int j = 0; j < 4; j++)
            vst1q_f32(lanes + 4 * j, a[j]);
        for (int64_t l = 0; i + l < k; l++)
            lanes[l] = fmaf(value_at(type, w, i + l), x[i + l], lanes[l]);
        for (int j = 0; j < 4; j++)
            a[j] = vld1q_f32(lanes + 4 * j);
    }
    return reduce16(a);
}

#define NEON_FLOAT(T, t)                                                                                        \
    static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,         \
                              int64_t nc, float *y, int64_t ys)                                                 \
    {                                                                                                           \
        for (int64_t c = 0; c < nc; c++)                                                                        \
            for (int64_t r = 0; r < nr; r++)                                                                    \
                y[c * ys + r] = dot_float(AE_TYPE_##T, k, (const uint8_t *)w + (size_t)r * ws,                  \
                                          (const float *)((const uint8_t *)x + (size_t)c * xr));                \
    }
NEON_FLOAT(F32, f32)
NEON_FLOAT(F16, f16)
NEON_FLOAT(BF16, bf16)
#undef NEON_FLOAT

/* f32 -> fp16 rounding to nearest even (the FPCR's default mode), as ae_fp32_to_fp16 (NaN payloads
 * aside). */
static void to_f16(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++)
        y[i] = ae_fp32_to_fp16(x[i]);
}

/* ---- the i8mm level: K-quant block kernels, rows layout ------------------------------------------- */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+i8mm")

/* One K-quant super-block of a weight row, unpacked: quants in value order, scale and min per group
 * of 16 (groups of 32 repeat theirs; their mins count once per 16 values against that half's bsum). */
struct kq_row {
    int8_t q[AE_QK_K] __attribute__((aligned(16)));
    int sc[16], m[16];
    float d, dmin;
};

typedef void (*kq_unpack_fn)(const uint8_t *block, struct kq_row *r);

static void kq_unpack_q2_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q2_k *w = (const struct ae_block_q2_k *)block;
    for (int h = 0; h < 2; h++) {
        const uint8x16_t v0 = vld1q_u8(w->qs + 32 * h), v1 = vld1q_u8(w->qs + 32 * h + 16);
        for (int j = 0; j < 4; j++) {
            vst1q_u8((uint8_t *)r->q + 128 * h + 32 * j, vandq_u8(shr_u8(v0, 2 * j), vdupq_n_u8(3)));
            vst1q_u8((uint8_t *)r->q + 128 * h + 32 * j + 16, vandq_u8(shr_u8(v1, 2 * j), vdupq_n_u8(3)));
        }
    }
    for (int g = 0; g < 16; g++) {
        r->sc[g] = w->scales[g] & 0x0f;
        r->m[g] = w->scales[g] >> 4;
    }
    r->d = h2f(w->d);
    r->dmin = h2f(w->dmin);
}

static void kq_unpack_q3_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q3_k *w = (const struct ae_block_q3_k *)block;
    const uint8x16_t hm0 = vld1q_u8(w->hmask), hm1 = vld1q_u8(w->hmask + 16), m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    for (int h = 0; h < 2; h++) {
        const uint8x16_t v0 = vld1q_u8(w->qs + 32 * h), v1 = vld1q_u8(w->qs + 32 * h + 16);
        for (int j = 0; j < 4; j++) {
            const uint8x16_t a0 = vorrq_u8(vandq_u8(shr_u8(v0, 2 * j), m3),
                                           vshlq_n_u8(vandq_u8(shr_u8(hm0, 4 * h + j), one), 2));
            const uint8x16_t a1 = vorrq_u8(vandq_u8(shr_u8(v1, 2 * j), m3),
                                           vshlq_n_u8(vandq_u8(shr_u8(hm1, 4 * h + j), one), 2));
            vst1q_s8(r->q + 128 * h + 32 * j, vsubq_s8(vreinterpretq_s8_u8(a0), vdupq_n_s8(4)));
            vst1q_s8(r->q + 128 * h + 32 * j + 16, vsubq_s8(vreinterpretq_s8_u8(a1), vdupq_n_s8(4)));
        }
    }
    uint8_t sc[16];
    vst1q_u8(sc, q3_k_scales(w->scales));
    for (int g = 0; g < 16; g++) {
        r->sc[g] = sc[g] - 32;
        r->m[g] = 0;
    }
    r->d = h2f(w->d);
    r->dmin = 0.0f;
}

/* Q4_K and Q5_K (qh NULL for Q4_K). */
static void kq_unpack_q45(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, uint16_t d, uint16_t dmin,
                          struct kq_row *r)
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    const uint8x16_t qh0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), qh1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
    for (int h = 0; h < 4; h++) {
        const uint8x16_t v0 = vld1q_u8(qs + 32 * h), v1 = vld1q_u8(qs + 32 * h + 16);
        uint8x16_t l0 = vandq_u8(v0, m4), l1 = vandq_u8(v1, m4), u0 = vshrq_n_u8(v0, 4), u1 = vshrq_n_u8(v1, 4);
        if (qh) {
            l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(shr_u8(qh0, 2 * h), one), 4));
            l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(shr_u8(qh1, 2 * h), one), 4));
            u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(shr_u8(qh0, 2 * h + 1), one), 4));
            u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(shr_u8(qh1, 2 * h + 1), one), 4));
        }
        vst1q_u8((uint8_t *)r->q + 64 * h, l0);
        vst1q_u8((uint8_t *)r->q + 64 * h + 16, l1);
        vst1q_u8((uint8_t *)r->q + 64 * h + 32, u0);
        vst1q_u8((uint8_t *)r->q + 64 * h + 48, u1);
    }
    int32x4_t sc[2];
    int16x8_t mins;
    k_scales_mins(scales, sc, &mins);
    int32_t s8[8];
    int16_t m8[8];
    vst1q_s32(s8, sc[0]);
    vst1q_s32(s8 + 4, sc[1]);
    vst1q_s16(m8, mins);
    for (int g = 0; g < 8; g++) {
        r->sc[2 * g] = r->sc[2 * g + 1] = s8[g];
        r->m[2 * g] = r->m[2 * g + 1] = m8[g];
    }
    r->d = h2f(d);
    r->dmin = h2f(dmin);
}

static void kq_unpack_q4_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q4_k *w = (const struct ae_block_q4_k *)block;
    kq_unpack_q45(w->qs, NULL, w->scales, w->d, w->dmin, r);
}

static void kq_unpack_q5_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q5_k *w = (const struct ae_block_q5_k *)block;
    kq_unpack_q45(w->qs, w->qh, w->scales, w->d, w->dmin, r);
}

static void kq_unpack_q6_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q6_k *w = (const struct ae_block_q6_k *)block;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    for (int h = 0; h < 2; h++)
        for (int half = 0; half < 2; half++) {
            const int l = 16 * half;
            const uint8_t *ql = w->ql + 64 * h, *qh = w->qh + 32 * h;
            int8_t *o = r->q + 128 * h;
            const uint8x16_t a = vld1q_u8(ql + l), b = vld1q_u8(ql + 32 + l), hb = vld1q_u8(qh + l);
            const uint8x16_t v0 = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
            const uint8x16_t v1 = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
            const uint8x16_t v2 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
            const uint8x16_t v3 = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
            vst1q_s8(o + l, vsubq_s8(vreinterpretq_s8_u8(v0), off));
            vst1q_s8(o + 32 + l, vsubq_s8(vreinterpretq_s8_u8(v1), off));
            vst1q_s8(o + 64 + l, vsubq_s8(vreinterpretq_s8_u8(v2), off));
            vst1q_s8(o + 96 + l, vsubq_s8(vreinterpretq_s8_u8(v3), off));
        }
    for (int g = 0; g < 16; g++) {
        r->sc[g] = w->scales[g];
        r->m[g] = 0;
    }
    r->d = h2f(w->d);
    r->dmin = 0.0f;
}

/* The most activation rows one call of the matmul driver hands a block kernel (matmul.c's
 * MATMUL_TILE_COLS); more are taken in passes. */
#define KQ_COLS 64

/* Weight rows in pairs by activation rows in pairs: per super-block both rows are unpacked once, and
 * each 2 x 2 tile's exact integer sums come from SMMLA (rows a, b by columns c, e: [ac, ae, bc, be]).
 * The float steps per output are the canonical ones, in super-block order; a lone last row or column
 * takes the dotprod row dot. */
static void kq_gemm(kq_unpack_fn unpack, void (*dot)(int64_t, const void *, const void *, float *),
                    size_t block_bytes, int has_min, int64_t k, const void *w, size_t w_row, int64_t n_rows,
                    const void *x, size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const uint8_t *w8 = w, *x8 = x;
    const int64_t nsb = k / AE_QK_K;
    for (int64_t c0 = 0; c0 < n_cols; c0 += KQ_COLS) {
        const int64_t nc = n_cols - c0 < KQ_COLS ? n_cols - c0 : KQ_COLS;
        const int64_t pc = nc / 2;
        for (int64_t r0 = 0; r0 + 1 < n_rows; r0 += 2) {
            float acc[KQ_COLS][2];
            memset(acc, 0, sizeof acc);
            for (int64_t i = 0; i < nsb; i++) {
                struct kq_row a, b;
                unpack(w8 + (size_t)r0 * w_row + (size_t)i * block_bytes, &a);
                unpack(w8 + (size_t)(r0 + 1) * w_row + (size_t)i * block_bytes, &b);
                int8x16_t wq[32]; /* per group g: values 0-7 of a and b, then values 8-15 */
                int32x4_t scv[16];
                for (int g = 0; g < 16; g++) {
                    wq[2 * g] = vcombine_s8(vld1_s8(a.q + 16 * g), vld1_s8(b.q + 16 * g));
                    wq[2 * g + 1] = vcombine_s8(vld1_s8(a.q + 16 * g + 8), vld1_s8(b.q + 16 * g + 8));
                    const int32_t s4[4] = {a.sc[g], a.sc[g], b.sc[g], b.sc[g]};
                    scv[g] = vld1q_s32(s4);
                }
                for (int64_t p = 0; p < pc; p++) {
                    const struct ae_block_q8_k *xs[2] = {
                        (const struct ae_block_q8_k *)(x8 + (size_t)(c0 + 2 * p) * x_row) + i,
                        (const struct ae_block_q8_k *)(x8 + (size_t)(c0 + 2 * p + 1) * x_row) + i,
                    };
                    int32x4_t isum = vdupq_n_s32(0);
                    for (int g = 0; g < 16; g++) {
                        const int8x16_t x0 = vcombine_s8(vld1_s8(xs[0]->qs + 16 * g), vld1_s8(xs[1]->qs + 16 * g));
                        const int8x16_t x1 =
                            vcombine_s8(vld1_s8(xs[0]->qs + 16 * g + 8), vld1_s8(xs[1]->qs + 16 * g + 8));
                        const int32x4_t s = vmmlaq_s32(vmmlaq_s32(vdupq_n_s32(0), wq[2 * g], x0), wq[2 * g + 1], x1);
                        isum = vmlaq_s32(isum, s, scv[g]);
                    }
                    int32_t is[4]; /* [r][e] */
                    vst1q_s32(is, isum);
                    const struct kq_row *rs[2] = {&a, &b};
                    for (int e = 0; e < 2; e++)
                        for (int r = 0; r < 2; r++) {
                            int msum = 0;
                            for (int g = 0; has_min && g < 16; g++)
                                msum += rs[r]->m[g] * xs[e]->bsums[g];
                            const float d = rs[r]->d * xs[e]->d;
                            const float dmin = rs[r]->dmin * xs[e]->d;
                            acc[2 * p + e][r] = kq_step(acc[2 * p + e][r], is[2 * r + e], msum, d, dmin, has_min);
                        }
                }
            }
            for (int64_t c = 0; c < 2 * pc; c++)
                for (int r = 0; r < 2; r++)
                    y[(c0 + c) * y_stride + r0 + r] = acc[c][r];
            if (nc & 1)
                for (int r = 0; r < 2; r++)
                    dot(k, w8 + (size_t)(r0 + r) * w_row, x8 + (size_t)(c0 + nc - 1) * x_row,
                        &y[(c0 + nc - 1) * y_stride + r0 + r]);
        }
        if (n_rows & 1)
            for (int64_t c = c0; c < c0 + nc; c++)
                dot(k, w8 + (size_t)(n_rows - 1) * w_row, x8 + (size_t)c * x_row, &y[c * y_stride + n_rows - 1]);
    }
}

#define KQ_GEMM(type, has_min)                                                                                  \
    static void gemm_i8mm_##type(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x,         \
                                 size_t x_row, int64_t n_cols, float *y, int64_t y_stride)                      \
    {                                                                                                           \
        if (n_cols == 1) {                                                                                      \
            gemm_rows_##type##_dotprod(k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);                     \
            return;                                                                                             \
        }                                                                                                       \
        kq_gemm(kq_unpack_##type, dot_##type##_dotprod, sizeof(struct ae_block_##type), has_min, k, w, w_row,   \
                n_rows, x, x_row, n_cols, y, y_stride);                                                         \
    }
KQ_GEMM(q2_k, 1)
KQ_GEMM(q3_k, 0)
KQ_GEMM(q4_k, 1)
KQ_GEMM(q5_k, 1)
KQ_GEMM(q6_k, 0)
#undef KQ_GEMM

#pragma GCC pop_options

/* ---- the tables ----------------------------------------------------------------------------------- */

/* The NEON and dotprod levels' kernels: the integer kernels compiled for each, F32, F16 and BF16 the same
 * NEON kernels at both (named by the level, as the level they run at). */
AE_GEMM_LEVEL(neon, f32, gemm_rows_f32, NULL);
AE_GEMM_LEVEL(neon, f16, gemm_rows_f16, NULL);
AE_GEMM_LEVEL(neon, bf16, gemm_rows_bf16, NULL);
AE_GEMM_LEVEL(neon, q4_0, gemm_rows_q4_0_neon, gemm_x16_q4_0_neon);
AE_GEMM_LEVEL(neon, q4_1, gemm_rows_q4_1_neon, gemm_x16_q4_1_neon);
AE_GEMM_LEVEL(neon, q5_0, gemm_rows_q5_0_neon, gemm_x16_q5_0_neon);
AE_GEMM_LEVEL(neon, q5_1, gemm_rows_q5_1_neon, gemm_x16_q5_1_neon);
AE_GEMM_LEVEL(neon, q8_0, gemm_rows_q8_0_neon, gemm_x16_q8_0_neon);
AE_GEMM_LEVEL(neon, q2_k, gemm_rows_q2_k_neon, gemm_x16_q2_k_neon);
AE_GEMM_LEVEL(neon, q3_k, gemm_rows_q3_k_neon, gemm_x16_q3_k_neon);
AE_GEMM_LEVEL(neon, q4_k, gemm_rows_q4_k_neon, gemm_x16_q4_k_neon);
AE_GEMM_LEVEL(neon, q5_k, gemm_rows_q5_k_neon, gemm_x16_q5_k_neon);
AE_GEMM_LEVEL(neon, q6_k, gemm_rows_q6_k_neon, gemm_x16_q6_k_neon);

AE_GEMM_LEVEL(dotprod, f32, gemm_rows_f32, NULL);
AE_GEMM_LEVEL(dotprod, f16, gemm_rows_f16, NULL);
AE_GEMM_LEVEL(dotprod, bf16, gemm_rows_bf16, NULL);
AE_GEMM_LEVEL(dotprod, q4_0, gemm_rows_q4_0_dotprod, gemm_x16_q4_0_dotprod);
AE_GEMM_LEVEL(dotprod, q4_1, gemm_rows_q4_1_dotprod, gemm_x16_q4_1_dotprod);
AE_GEMM_LEVEL(dotprod, q5_0, gemm_rows_q5_0_dotprod, gemm_x16_q5_0_dotprod);
AE_GEMM_LEVEL(dotprod, q5_1, gemm_rows_q5_1_dotprod, gemm_x16_q5_1_dotprod);
AE_GEMM_LEVEL(dotprod, q8_0, gemm_rows_q8_0_dotprod, gemm_x16_q8_0_dotprod);
AE_GEMM_LEVEL(dotprod, q2_k, gemm_rows_q2_k_dotprod, gemm_x16_q2_k_dotprod);
AE_GEMM_LEVEL(dotprod, q3_k, gemm_rows_q3_k_dotprod, gemm_x16_q3_k_dotprod);
AE_GEMM_LEVEL(dotprod, q4_k, gemm_rows_q4_k_dotprod, gemm_x16_q4_k_dotprod);
AE_GEMM_LEVEL(dotprod, q5_k, gemm_rows_q5_k_dotprod, gemm_x16_q5_k_dotprod);
AE_GEMM_LEVEL(dotprod, q6_k, gemm_rows_q6_k_dotprod, gemm_x16_q6_k_dotprod);
/* The i8mm level's: only the rows-layout K-quants' block kernels; everything else is the dotprod level's. */
AE_GEMM_LEVEL(i8mm, q2_k, gemm_i8mm_q2_k, NULL);
AE_GEMM_LEVEL(i8mm, q3_k, gemm_i8mm_q3_k, NULL);
AE_GEMM_LEVEL(i8mm, q4_k, gemm_i8mm_q4_k, NULL);
AE_GEMM_LEVEL(i8mm, q5_k, gemm_i8mm_q5_k, NULL);
AE_GEMM_LEVEL(i8mm, q6_k, gemm_i8mm_q6_k, NULL);

void ae_convert_row_f16_neon(const float *x, uint16_t *y, int64_t n)
{
    to_f16(x, y, n);
}

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int kernels_matmul_neon_not_built;

#endif
