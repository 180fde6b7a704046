/* NEON row kernels for the matmul on aarch64, in three levels chosen at run time (cpu.c): NEON (every
 * ARMv8-A CPU), dotprod (SDOT, ARMv8.2-A) and i8mm (SMMLA, ARMv8.6-A).
 *
 * The library is built for baseline ARMv8-A. The integer kernels are written once
 * (matmul_neon_body.h) and compiled twice: for NEON, where the four-byte lane sums come from widening
 * multiplies and pairwise adds, and under "+dotprod", where one SDOT gives them. The i8mm level adds
 * block kernels for the K-quants' prefill: SMMLA multiplies 2 weight rows by 2 activation rows, 8 bytes
 * deep, and since a K-quant super-block's sums are exact integers in any order, that changes no bit. For
 * the 32-value types the canonical order keeps the float sums of each four-byte lane apart, which
 * SMMLA's eight-byte sums cannot give, so they keep their dotprod kernels there.
 *
 * Every kernel reproduces the scalar reference's order of float operations (matmul.c): integer sums
 * are exact, block terms go into the same 8 lanes (two float32x4 halves) and meet in the same
 * reduction tree, and a fused multiply-add is used only where the product is exact (fp16 x fp16, bf16 x
 * bf16). An aarch64 program therefore computes the x86-64 program's bits. On other hosts this file only
 * says that the levels are absent.
 */
#include "ae_kernels.h"

#if defined(__aarch64__)

#include "ae_quant_blocks.h"

#include <arm_neon.h>
#include <string.h>

/* ---- pieces every level shares -------------------------------------------------------------------- */

static inline float h2f(uint16_t h)
{
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

/* Lanes 0-7 of a 32-value block sum: lanes 0-3 in lo, 4-7 in hi. */
struct lanes8 {
    float32x4_t lo, hi;
};

static inline struct lanes8 lanes8_zero(void)
{
    return (struct lanes8){vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
}

/* The scalar lanes_finish: v = even + odd, then ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)). */
static inline float lanes8_finish(struct lanes8 even, struct lanes8 odd)
{
    const float32x4_t v = vaddq_f32(vaddq_f32(even.lo, odd.lo), vaddq_f32(even.hi, odd.hi)); /* v0+v4 .. v3+v7 */
    const float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));                        /* s04+s26, s15+s37 */
    return vget_lane_f32(s, 0) + vget_lane_f32(s, 1);
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

/* Lane l: the exact sum of q[i] * x[i] for bytes i = 4l..4l+3, from widening multiplies (the products
 * fit int16) and pairwise adds. */
static inline int32x4_t lanes4_neon(int8x16_t q, int8x16_t x)
{
    const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(q), vget_low_s8(x)));
    const int32x4_t hi = vpaddlq_s16(vmull_high_s8(q, x));
    return vpaddq_s32(lo, hi);
}

/* acc plus an int32x4 whose lanes add up to the exact q . x (widening multiplies, pairwise adds). */
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
 * 32-bit masks: the values of matmul.c's dot_q3_k. */
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

/* The 8 scales (as two int32x4) and 8 mins (int16x8) of a Q4_K or Q5_K block, the values of matmul.c's
 * k_scale_min. */
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

/* The scalar kq_add's float steps for one super-block with exact sums isum and summs. */
static inline float kq_step(float acc, int isum, int summs, float d, float dmin, int has_min)
{
    const float t = d * (float)isum;
    if (!has_min)
        return acc + t;
    const float tm = dmin * (float)summs;
    const float diff = t - tm;
    return acc + diff;
}

/* sum over the 16 groups of m[g] * bsums[g]. */
static inline int kq_summs(const int16_t bsums[16], const int m[16])
{
    int s = 0;
    for (int g = 0; g < 16; g++)
        s += m[g] * bsums[g];
    return s;
}

/* The scales and mins of a Q4_K or Q5_K block per group of 16 (each group of 32 repeats its pair), as
 * matmul.c's k_scale_min. */
static inline void k_scales_mins16(const uint8_t s[AE_K_SCALE_BYTES], int sc[16], int m[16])
{
    for (int g = 0; g < 8; g++) {
        int a, b;
        if (g < 4) {
            a = s[g] & 63;
            b = s[g + 4] & 63;
        } else {
            a = (s[g + 4] & 0x0f) | (s[g - 4] >> 6) << 4;
            b = (s[g + 4] >> 4) | (s[g] >> 6) << 4;
        }
        sc[2 * g] = sc[2 * g + 1] = a;
        m[2 * g] = m[2 * g + 1] = b;
    }
}

/* v >> s for a shift known only at run time. */
static inline uint8x16_t shr_u8(uint8x16_t v, int s)
{
    return vshlq_u8(v, vdupq_n_s8((int8_t)-s));
}

/* The super-blocks' quants in value order (offsets subtracted where the type has them), as matmul.c's
 * dot_q*_k unpack them. */
static inline void q2_k_unpack(const struct ae_block_q2_k *w, int8_t q[AE_QK_K])
{
    for (int h = 0; h < 2; h++) {
        const uint8x16_t v0 = vld1q_u8(w->qs + 32 * h), v1 = vld1q_u8(w->qs + 32 * h + 16);
        for (int j = 0; j < 4; j++) {
            vst1q_s8(q + 128 * h + 32 * j, vreinterpretq_s8_u8(vandq_u8(shr_u8(v0, 2 * j), vdupq_n_u8(3))));
            vst1q_s8(q + 128 * h + 32 * j + 16, vreinterpretq_s8_u8(vandq_u8(shr_u8(v1, 2 * j), vdupq_n_u8(3))));
        }
    }
}

static inline void q3_k_unpack(const struct ae_block_q3_k *w, int8_t q[AE_QK_K], int sc[16])
{
    const uint8x16_t hm0 = vld1q_u8(w->hmask), hm1 = vld1q_u8(w->hmask + 16);
    const uint8x16_t three = vdupq_n_u8(3), one = vdupq_n_u8(1);
    const int8x16_t four = vdupq_n_s8(4);
    for (int h = 0; h < 2; h++) {
        const uint8x16_t v0 = vld1q_u8(w->qs + 32 * h), v1 = vld1q_u8(w->qs + 32 * h + 16);
        for (int j = 0; j < 4; j++) {
            /* low | high << 2, minus 4: low - 4 where the high bit is clear, low where it is set */
            const uint8x16_t a0 = vorrq_u8(vandq_u8(shr_u8(v0, 2 * j), three),
                                           vshlq_n_u8(vandq_u8(shr_u8(hm0, 4 * h + j), one), 2));
            const uint8x16_t a1 = vorrq_u8(vandq_u8(shr_u8(v1, 2 * j), three),
                                           vshlq_n_u8(vandq_u8(shr_u8(hm1, 4 * h + j), one), 2));
            vst1q_s8(q + 128 * h + 32 * j, vsubq_s8(vreinterpretq_s8_u8(a0), four));
            vst1q_s8(q + 128 * h + 32 * j + 16, vsubq_s8(vreinterpretq_s8_u8(a1), four));
        }
    }
    for (int g = 0; g < 16; g++) {
        const int low = g < 8 ? w->scales[g] & 0x0f : w->scales[g - 8] >> 4;
        const int high = (w->scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        sc[g] = (low | high << 4) - 32;
    }
}

static inline void q4_k_unpack(const uint8_t qs[AE_QK_K / 2], int8_t q[AE_QK_K])
{
    for (int h = 0; h < 4; h++) {
        const uint8x16_t v0 = vld1q_u8(qs + 32 * h), v1 = vld1q_u8(qs + 32 * h + 16);
        vst1q_s8(q + 64 * h, vreinterpretq_s8_u8(vandq_u8(v0, vdupq_n_u8(0x0f))));
        vst1q_s8(q + 64 * h + 16, vreinterpretq_s8_u8(vandq_u8(v1, vdupq_n_u8(0x0f))));
        vst1q_s8(q + 64 * h + 32, vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)));
        vst1q_s8(q + 64 * h + 48, vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)));
    }
}

static inline void q5_k_unpack(const struct ae_block_q5_k *w, int8_t q[AE_QK_K])
{
    const uint8x16_t qh0 = vld1q_u8(w->qh), qh1 = vld1q_u8(w->qh + 16);
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    for (int h = 0; h < 4; h++) {
        const uint8x16_t v0 = vld1q_u8(w->qs + 32 * h), v1 = vld1q_u8(w->qs + 32 * h + 16);
        const uint8x16_t l0 = vshlq_n_u8(vandq_u8(shr_u8(qh0, 2 * h), one), 4);
        const uint8x16_t l1 = vshlq_n_u8(vandq_u8(shr_u8(qh1, 2 * h), one), 4);
        const uint8x16_t u0 = vshlq_n_u8(vandq_u8(shr_u8(qh0, 2 * h + 1), one), 4);
        const uint8x16_t u1 = vshlq_n_u8(vandq_u8(shr_u8(qh1, 2 * h + 1), one), 4);
        vst1q_s8(q + 64 * h, vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v0, m4), l0)));
        vst1q_s8(q + 64 * h + 16, vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v1, m4), l1)));
        vst1q_s8(q + 64 * h + 32, vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v0, 4), u0)));
        vst1q_s8(q + 64 * h + 48, vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v1, 4), u1)));
    }
}

static inline void q6_k_unpack(const struct ae_block_q6_k *w, int8_t q[AE_QK_K])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = w->ql + 64 * h, *qh = w->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int half = 0; half < 2; half++) {
            const int l = 16 * half;
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
    }
}

/* A block kernel of R x C outputs (R, C <= 2) over nb 32-value blocks. */
typedef void (*tile_fn)(int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y,
                        int64_t y_stride);

/* 2 x 2 tiles; a lone last row or column takes the 1 x 2 or 2 x 1 tile, and a single activation row
 * (decode, bound by the weights' memory traffic) the row dot. */
static void gemm_tiles(ae_vec_dot_fn dot, const tile_fn tiles[3], int64_t k, const void *w, size_t w_row,
                       int64_t n_rows, const void *x, size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const uint8_t *w8 = w, *x8 = x;
    const int64_t nb = k / AE_QK;
    if (n_cols == 1) {
        for (int64_t r = 0; r < n_rows; r++)
            dot(k, w8 + (size_t)r * w_row, x, &y[r]);
        return;
    }
    for (int64_t r0 = 0; r0 < n_rows; r0 += 2) {
        const int R = n_rows - r0 < 2 ? 1 : 2;
        for (int64_t c0 = 0; c0 < n_cols; c0 += 2) {
            const int C = n_cols - c0 < 2 ? 1 : 2;
            const uint8_t *wt = w8 + (size_t)r0 * w_row, *xt = x8 + (size_t)c0 * x_row;
            float *yt = y + c0 * y_stride + r0;
            if (R == 1 && C == 1)
                dot(k, wt, xt, yt);
            else
                tiles[R == 1 ? 0 : C == 1 ? 1 : 2](nb, wt, w_row, xt, x_row, yt, y_stride);
        }
    }
}

/* ---- the NEON level's integer kernels ------------------------------------------------------------- */

#define NEON_FN(name) name##_neon
#define LANES4(q, x) lanes4_neon(q, x)
#define DOT16(acc, q, x) dot16_neon(acc, q, x)
#include "matmul_neon_body.h"
#undef NEON_FN
#undef LANES4
#undef DOT16

/* ---- the dotprod level's: the same code, lanes from SDOT ------------------------------------------ */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

static inline int32x4_t lanes4_dot(int8x16_t q, int8x16_t x)
{
    return vdotq_s32(vdupq_n_s32(0), q, x);
}

#define NEON_FN(name) name##_dotprod
#define LANES4(q, x) lanes4_dot(q, x)
#define DOT16(acc, q, x) vdotq_s32(acc, q, x)
#include "matmul_neon_body.h"
#undef NEON_FN
#undef LANES4
#undef DOT16

#pragma GCC pop_options

/* ---- F32, F16, BF16 (one level: NEON) -------------------------------------------------------------- */

/* The 32 lanes of an F32, F16 or BF16 dot: v[j] holds lanes 4j..4j+3 (kept in registers: passed by value,
 * loops over j unrolled). */
struct lanes32 {
    float32x4_t v[8];
};

static inline struct lanes32 lanes32_zero(void)
{
    struct lanes32 a;
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a.v[j] = vdupq_n_f32(0.0f);
    return a;
}

/* lanes32_finish of the scalar code. */
static inline float lanes32_finish(struct lanes32 a)
{
    const float32x4_t lo = vaddq_f32(vaddq_f32(a.v[0], a.v[2]), vaddq_f32(a.v[4], a.v[6])); /* v0..v3 */
    const float32x4_t hi = vaddq_f32(vaddq_f32(a.v[1], a.v[3]), vaddq_f32(a.v[5], a.v[7])); /* v4..v7 */
    return lanes8_finish((struct lanes8){lo, hi}, lanes8_zero());
}

/* The n < 32 products past the last whole 32 go to their lanes one at a time, as in the scalar code. */
static inline struct lanes32 lanes32_tail(struct lanes32 a, int64_t n, const float *p)
{
    float lanes[32];
    for (int j = 0; j < 8; j++)
        vst1q_f32(lanes + 4 * j, a.v[j]);
    for (int64_t l = 0; l < n; l++)
        lanes[l] += p[l];
    for (int j = 0; j < 8; j++)
        a.v[j] = vld1q_f32(lanes + 4 * j);
    return a;
}

static void dot_f32(int64_t k, const void *vw, const void *vx, float *out)
{
    const float *w = vw, *x = vx;
    struct lanes32 a = lanes32_zero();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) /* no FMA: the product is rounded first, as in the scalar code */
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            a.v[j] = vaddq_f32(a.v[j], vmulq_f32(vld1q_f32(w + i + 4 * j), vld1q_f32(x + i + 4 * j)));
    if (i < k) {
        float p[32];
        for (int64_t l = 0; i + l < k; l++)
            p[l] = w[i + l] * x[i + l];
        a = lanes32_tail(a, k - i, p);
    }
    *out = lanes32_finish(a);
}

static inline float32x4_t load_f16(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

static void dot_f16(int64_t k, const void *vw, const void *vx, float *out)
{
    const uint16_t *w = vw, *x = vx;
    struct lanes32 a = lanes32_zero();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) /* fp16 x fp16 is exact in f32: the FMA rounds once, like mul + add */
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            a.v[j] = vfmaq_f32(a.v[j], load_f16(w + i + 4 * j), load_f16(x + i + 4 * j));
    if (i < k) {
        float p[32];
        for (int64_t l = 0; i + l < k; l++)
            p[l] = h2f(w[i + l]) * h2f(x[i + l]);
        a = lanes32_tail(a, k - i, p);
    }
    *out = lanes32_finish(a);
}

static inline float32x4_t load_bf16(const uint16_t *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

static void dot_bf16(int64_t k, const void *vw, const void *vx, float *out)
{
    const uint16_t *w = vw, *x = vx;
    struct lanes32 a = lanes32_zero();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) /* bf16 x bf16 is exact in f32 */
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            a.v[j] = vfmaq_f32(a.v[j], load_bf16(w + i + 4 * j), load_bf16(x + i + 4 * j));
    if (i < k) {
        float p[32];
        for (int64_t l = 0; i + l < k; l++)
            p[l] = ae_bf16_to_fp32(w[i + l]) * ae_bf16_to_fp32(x[i + l]);
        a = lanes32_tail(a, k - i, p);
    }
    *out = lanes32_finish(a);
}

/* y += a * x: product rounded, then the sum, as the scalar code. */
static void mad_f16(int64_t n, float *y, const uint16_t *x, float a)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_n_f32(load_f16(x + i), a)));
    for (; i < n; i++) {
        const float p = a * h2f(x[i]);
        y[i] += p;
    }
}

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

/* ---- the i8mm level: K-quant block kernels -------------------------------------------------------- */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+i8mm")

/* One K-quant super-block of a weight row, unpacked: quants in value order, scale and min per group
 * of 16. */
struct kq_row {
    int8_t q[AE_QK_K] __attribute__((aligned(16)));
    int sc[16], m[16];
    float d, dmin;
};

typedef void (*kq_unpack_fn)(const uint8_t *block, struct kq_row *r);

static void kq_unpack_q2_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q2_k *w = (const struct ae_block_q2_k *)block;
    q2_k_unpack(w, r->q);
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
    q3_k_unpack(w, r->q, r->sc);
    memset(r->m, 0, sizeof r->m);
    r->d = h2f(w->d);
    r->dmin = 0.0f;
}

static void kq_unpack_q4_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q4_k *w = (const struct ae_block_q4_k *)block;
    q4_k_unpack(w->qs, r->q);
    k_scales_mins16(w->scales, r->sc, r->m);
    r->d = h2f(w->d);
    r->dmin = h2f(w->dmin);
}

static void kq_unpack_q5_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q5_k *w = (const struct ae_block_q5_k *)block;
    q5_k_unpack(w, r->q);
    k_scales_mins16(w->scales, r->sc, r->m);
    r->d = h2f(w->d);
    r->dmin = h2f(w->dmin);
}

static void kq_unpack_q6_k(const uint8_t *block, struct kq_row *r)
{
    const struct ae_block_q6_k *w = (const struct ae_block_q6_k *)block;
    q6_k_unpack(w, r->q);
    for (int g = 0; g < 16; g++)
        r->sc[g] = w->scales[g];
    memset(r->m, 0, sizeof r->m);
    r->d = h2f(w->d);
    r->dmin = 0.0f;
}

/* The most activation rows one call of the matmul driver hands a block kernel (matmul.c's
 * MATMUL_TILE_COLS); more are taken in passes. */
#define KQ_COLS 64

/* Weight rows in pairs by activation rows in pairs: per super-block both rows are unpacked once, and
 * each 2 x 2 tile's exact integer sums come from SMMLA (rows a, b by columns c, e: [ac, ae, bc, be]).
 * The float steps per output are the row dot's, in super-block order; a lone last row or column takes
 * the dotprod row dot. */
static void kq_gemm(kq_unpack_fn unpack, ae_vec_dot_fn dot, size_t block_bytes, int has_min, int64_t k,
                    const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row, int64_t n_cols, float *y,
                    int64_t y_stride)
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
                    const struct ae_block_q8_k *xc =
                        (const struct ae_block_q8_k *)(x8 + (size_t)(c0 + 2 * p) * x_row) + i;
                    const struct ae_block_q8_k *xe =
                        (const struct ae_block_q8_k *)(x8 + (size_t)(c0 + 2 * p + 1) * x_row) + i;
                    int32x4_t isum = vdupq_n_s32(0);
                    for (int g = 0; g < 16; g++) {
                        const int8x16_t x0 = vcombine_s8(vld1_s8(xc->qs + 16 * g), vld1_s8(xe->qs + 16 * g));
                        const int8x16_t x1 = vcombine_s8(vld1_s8(xc->qs + 16 * g + 8), vld1_s8(xe->qs + 16 * g + 8));
                        const int32x4_t s = vmmlaq_s32(vmmlaq_s32(vdupq_n_s32(0), wq[2 * g], x0), wq[2 * g + 1], x1);
                        isum = vmlaq_s32(isum, s, scv[g]);
                    }
                    int32_t is[4]; /* [r][e] */
                    vst1q_s32(is, isum);
                    const struct ae_block_q8_k *xs[2] = {xc, xe};
                    const struct kq_row *rs[2] = {&a, &b};
                    for (int e = 0; e < 2; e++)
                        for (int r = 0; r < 2; r++) {
                            const float d = rs[r]->d * xs[e]->d;
                            const float dmin = rs[r]->dmin * xs[e]->d;
                            const int summs = has_min ? kq_summs(xs[e]->bsums, rs[r]->m) : 0;
                            acc[2 * p + e][r] = kq_step(acc[2 * p + e][r], is[2 * r + e], summs, d, dmin, has_min);
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
    static void gemm_##type(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row, \
                            int64_t n_cols, float *y, int64_t y_stride)                                          \
    {                                                                                                            \
        if (n_cols == 1) {                                                                                       \
            for (int64_t r = 0; r < n_rows; r++)                                                                 \
                dot_##type##_dotprod(k, (const uint8_t *)w + (size_t)r * w_row, x, &y[r]);                       \
            return;                                                                                              \
        }                                                                                                        \
        kq_gemm(kq_unpack_##type, dot_##type##_dotprod, sizeof(struct ae_block_##type), has_min, k, w, w_row,    \
                n_rows, x, x_row, n_cols, y, y_stride);                                                          \
    }
KQ_GEMM(q2_k, 1)
KQ_GEMM(q3_k, 0)
KQ_GEMM(q4_k, 1)
KQ_GEMM(q5_k, 1)
KQ_GEMM(q6_k, 0)
#undef KQ_GEMM

#pragma GCC pop_options

/* ---- the sets ------------------------------------------------------------------------------------- */

static const struct ae_kernel_set neon_set = {
    .name = "neon",
    .vec_dot =
        {
            [AE_TYPE_F32] = dot_f32,        [AE_TYPE_F16] = dot_f16,        [AE_TYPE_BF16] = dot_bf16,
            [AE_TYPE_Q4_0] = dot_q4_0_neon, [AE_TYPE_Q4_1] = dot_q4_1_neon, [AE_TYPE_Q5_0] = dot_q5_0_neon,
            [AE_TYPE_Q5_1] = dot_q5_1_neon, [AE_TYPE_Q8_0] = dot_q8_0_neon, [AE_TYPE_Q2_K] = dot_q2_k_neon,
            [AE_TYPE_Q3_K] = dot_q3_k_neon, [AE_TYPE_Q4_K] = dot_q4_k_neon, [AE_TYPE_Q5_K] = dot_q5_k_neon,
            [AE_TYPE_Q6_K] = dot_q6_k_neon,
        },
    .gemm = {[AE_TYPE_Q4_0] = gemm_q4_0_neon, [AE_TYPE_Q8_0] = gemm_q8_0_neon},
    .to_f16 = to_f16,
    .mad_f16 = mad_f16,
};

/* F32, F16 and BF16 have no kernels of their own here: they come from the NEON level. */
static const struct ae_kernel_set dotprod_set = {
    .name = "dotprod",
    .vec_dot =
        {
            [AE_TYPE_Q4_0] = dot_q4_0_dotprod, [AE_TYPE_Q4_1] = dot_q4_1_dotprod, [AE_TYPE_Q5_0] = dot_q5_0_dotprod,
            [AE_TYPE_Q5_1] = dot_q5_1_dotprod, [AE_TYPE_Q8_0] = dot_q8_0_dotprod, [AE_TYPE_Q2_K] = dot_q2_k_dotprod,
            [AE_TYPE_Q3_K] = dot_q3_k_dotprod, [AE_TYPE_Q4_K] = dot_q4_k_dotprod, [AE_TYPE_Q5_K] = dot_q5_k_dotprod,
            [AE_TYPE_Q6_K] = dot_q6_k_dotprod,
        },
    .gemm = {[AE_TYPE_Q4_0] = gemm_q4_0_dotprod, [AE_TYPE_Q8_0] = gemm_q8_0_dotprod},
};

/* Only the K-quants' block kernels: every row dot is the dotprod level's. */
static const struct ae_kernel_set i8mm_set = {
    .name = "i8mm",
    .gemm =
        {
            [AE_TYPE_Q2_K] = gemm_q2_k,
            [AE_TYPE_Q3_K] = gemm_q3_k,
            [AE_TYPE_Q4_K] = gemm_q4_k,
            [AE_TYPE_Q5_K] = gemm_q5_k,
            [AE_TYPE_Q6_K] = gemm_q6_k,
        },
};

const struct ae_kernel_set *ae_kernels_neon(void)
{
    return &neon_set;
}

const struct ae_kernel_set *ae_kernels_dotprod(void)
{
    return &dotprod_set;
}

const struct ae_kernel_set *ae_kernels_i8mm(void)
{
    return &i8mm_set;
}

#else

const struct ae_kernel_set *ae_kernels_neon(void)
{
    return NULL;
}

const struct ae_kernel_set *ae_kernels_dotprod(void)
{
    return NULL;
}

const struct ae_kernel_set *ae_kernels_i8mm(void)
{
    return NULL;
}

#endif
