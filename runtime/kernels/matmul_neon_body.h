/* The integer row kernels of the NEON levels, included by matmul_neon.c once per level: with
 * NEON_FN(name) naming the level's functions and LANES4(q, x) giving the level's lane sums (lane l of the
 * int32x4 result = the exact sum of q[i] * x[i] for bytes i = 4l..4l+3) and DOT16(acc, q, x) adding to acc an
 * int32x4 whose lanes sum to q . x (for the K-quants, where only totals count). Each kernel keeps the scalar
 * reference's order of float operations (matmul.c): block terms into 8 lanes (two int32x4 halves),
 * even and odd blocks in separate accumulators, the same reduction tree; K-quants sum exactly in
 * integers and take the float steps once per super-block. Not a header of its own: it has no guard.
 */

/* ---- 32-value blocks ------------------------------------------------------------------------------ */

/* acc (lanes 0-3, 4-7) + (float)(the lane sums of q . x) * d, q and x as two halves of 16 values. */
static inline struct lanes8 NEON_FN(block_add)(struct lanes8 acc, int8x16_t q0, int8x16_t q1, const int8_t x[AE_QK],
                                               float d)
{
    const int32x4_t s0 = LANES4(q0, vld1q_s8(x));
    const int32x4_t s1 = LANES4(q1, vld1q_s8(x + 16));
    acc.lo = vaddq_f32(acc.lo, vmulq_n_f32(vcvtq_f32_s32(s0), d));
    acc.hi = vaddq_f32(acc.hi, vmulq_n_f32(vcvtq_f32_s32(s1), d));
    return acc;
}

/* One block of each type into acc; Q4_1 and Q5_1 also add mw * sx to *sm. */
static inline struct lanes8 NEON_FN(blk_q4_0)(struct lanes8 acc, const struct ae_block_q4_0 *w,
                                              const struct ae_block_q8_0 *x, float *sm)
{
    (void)sm;
    int8x16_t q0, q1;
    nibbles(w->qs, &q0, &q1);
    const float d = h2f(w->d) * h2f(x->d);
    return NEON_FN(block_add)(acc, vsubq_s8(q0, vdupq_n_s8(8)), vsubq_s8(q1, vdupq_n_s8(8)), x->qs, d);
}

static inline struct lanes8 NEON_FN(blk_q4_1)(struct lanes8 acc, const struct ae_block_q4_1 *w,
                                              const struct ae_block_q8_1 *x, float *sm)
{
    int8x16_t q0, q1;
    nibbles(w->qs, &q0, &q1);
    const float d = h2f(w->d) * h2f(x->d);
    const float ms = h2f(w->m) * h2f(x->s);
    *sm += ms;
    return NEON_FN(block_add)(acc, q0, q1, x->qs, d);
}

static inline struct lanes8 NEON_FN(blk_q5_0)(struct lanes8 acc, const struct ae_block_q5_0 *w,
                                              const struct ae_block_q8_0 *x, float *sm)
{
    (void)sm;
    int8x16_t q0, q1, h0, h1;
    nibbles(w->qs, &q0, &q1);
    q5_high(w->qh, &h0, &h1);
    const float d = h2f(w->d) * h2f(x->d);
    return NEON_FN(block_add)(acc, vsubq_s8(vorrq_s8(q0, h0), vdupq_n_s8(16)), vsubq_s8(vorrq_s8(q1, h1), vdupq_n_s8(16)),
                              x->qs, d);
}

static inline struct lanes8 NEON_FN(blk_q5_1)(struct lanes8 acc, const struct ae_block_q5_1 *w,
                                              const struct ae_block_q8_1 *x, float *sm)
{
    int8x16_t q0, q1, h0, h1;
    nibbles(w->qs, &q0, &q1);
    q5_high(w->qh, &h0, &h1);
    const float d = h2f(w->d) * h2f(x->d);
    const float ms = h2f(w->m) * h2f(x->s);
    *sm += ms;
    return NEON_FN(block_add)(acc, vorrq_s8(q0, h0), vorrq_s8(q1, h1), x->qs, d);
}

static inline struct lanes8 NEON_FN(blk_q8_0)(struct lanes8 acc, const struct ae_block_q8_0 *w,
                                              const struct ae_block_q8_0 *x, float *sm)
{
    (void)sm;
    const float d = h2f(w->d) * h2f(x->d);
    return NEON_FN(block_add)(acc, vld1q_s8(w->qs), vld1q_s8(w->qs + 16), x->qs, d);
}

/* The row dot of a 32-value type: blocks alternate between the even and the odd accumulator, two at a
 * time so that both stay in registers; the types with a minimum add sm last. */
#define NEON_DOT32(type, xtype, has_min)                                                                        \
    static void NEON_FN(dot_##type)(int64_t k, const void *vw, const void *vx, float *out)                      \
    {                                                                                                           \
        const struct ae_block_##type *w = vw;                                                                   \
        const struct ae_block_##xtype *x = vx;                                                                  \
        const int64_t nb = k / AE_QK;                                                                           \
        struct lanes8 even = lanes8_zero(), odd = lanes8_zero();                                                \
        float sm = 0.0f;                                                                                        \
        int64_t b = 0;                                                                                          \
        for (; b + 1 < nb; b += 2) {                                                                            \
            even = NEON_FN(blk_##type)(even, &w[b], &x[b], &sm);                                                \
            odd = NEON_FN(blk_##type)(odd, &w[b + 1], &x[b + 1], &sm);                                          \
        }                                                                                                       \
        if (b < nb)                                                                                             \
            even = NEON_FN(blk_##type)(even, &w[b], &x[b], &sm);                                                \
        const float dots = lanes8_finish(even, odd);                                                            \
        *out = has_min ? dots + sm : dots;                                                                      \
    }
NEON_DOT32(q4_0, q8_0, 0)
NEON_DOT32(q4_1, q8_1, 1)
NEON_DOT32(q5_0, q8_0, 0)
NEON_DOT32(q5_1, q8_1, 1)
NEON_DOT32(q8_0, q8_0, 0)
#undef NEON_DOT32

/* ---- tiles of 32-value blocks (Q4_0, Q8_0) for prefill -------------------------------------------- */

/* Up to 2 weight rows by 2 activation rows: the four outputs of one parity (even or odd blocks). */
struct NEON_FN(tile_acc) {
    struct lanes8 v[2][2]; /* [c][r] */
};

/* Block b into the accumulators of its parity: each weight block is unpacked once for both activation
 * rows. */
static inline __attribute__((always_inline)) void NEON_FN(tile_step)(struct NEON_FN(tile_acc) *a, int q8, int R, int C,
                                                                     const uint8_t *w, size_t w_row, const uint8_t *x,
                                                                     size_t x_row, int64_t b)
{
    int8x16_t q[2][2];
    float dw[2];
    _Pragma("GCC unroll 2") for (int r = 0; r < R; r++) {
        if (q8) {
            const struct ae_block_q8_0 *wb = (const struct ae_block_q8_0 *)(w + (size_t)r * w_row) + b;
            q[r][0] = vld1q_s8(wb->qs);
            q[r][1] = vld1q_s8(wb->qs + 16);
            dw[r] = h2f(wb->d);
        } else {
            const struct ae_block_q4_0 *wb = (const struct ae_block_q4_0 *)(w + (size_t)r * w_row) + b;
            nibbles(wb->qs, &q[r][0], &q[r][1]);
            q[r][0] = vsubq_s8(q[r][0], vdupq_n_s8(8));
            q[r][1] = vsubq_s8(q[r][1], vdupq_n_s8(8));
            dw[r] = h2f(wb->d);
        }
    }
    _Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
        const struct ae_block_q8_0 *xb = (const struct ae_block_q8_0 *)(x + (size_t)c * x_row) + b;
        const float dx = h2f(xb->d);
        _Pragma("GCC unroll 2") for (int r = 0; r < R; r++) {
            const float d = dw[r] * dx;
            a->v[c][r] = NEON_FN(block_add)(a->v[c][r], q[r][0], q[r][1], xb->qs, d);
        }
    }
}

/* R x C outputs (R, C <= 2) over nb blocks, each the row dot's value bit for bit: its own even and odd
 * accumulators, its blocks in order. */
static inline __attribute__((always_inline)) void NEON_FN(tile)(int q8, int R, int C, int64_t nb, const uint8_t *w,
                                                                size_t w_row, const uint8_t *x, size_t x_row, float *y,
                                                                int64_t y_stride)
{
    struct NEON_FN(tile_acc) even, odd;
    _Pragma("GCC unroll 2") for (int c = 0; c < 2; c++)
        _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++)
            even.v[c][r] = odd.v[c][r] = lanes8_zero();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        NEON_FN(tile_step)(&even, q8, R, C, w, w_row, x, x_row, b);
        NEON_FN(tile_step)(&odd, q8, R, C, w, w_row, x, x_row, b + 1);
    }
    if (b < nb)
        NEON_FN(tile_step)(&even, q8, R, C, w, w_row, x, x_row, b);
    _Pragma("GCC unroll 2") for (int c = 0; c < C; c++)
        _Pragma("GCC unroll 2") for (int r = 0; r < R; r++)
            y[c * y_stride + r] = lanes8_finish(even.v[c][r], odd.v[c][r]);
}

#define NEON_TILE(name, q8, R, C)                                                                               \
    static void NEON_FN(name)(int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y, \
                              int64_t y_stride)                                                                 \
    {                                                                                                           \
        NEON_FN(tile)(q8, R, C, nb, w, w_row, x, x_row, y, y_stride);                                           \
    }
NEON_TILE(tile_q4_0_1x2, 0, 1, 2)
NEON_TILE(tile_q4_0_2x1, 0, 2, 1)
NEON_TILE(tile_q4_0_2x2, 0, 2, 2)
NEON_TILE(tile_q8_0_1x2, 1, 1, 2)
NEON_TILE(tile_q8_0_2x1, 1, 2, 1)
NEON_TILE(tile_q8_0_2x2, 1, 2, 2)
#undef NEON_TILE

static void NEON_FN(gemm_q4_0)(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                               int64_t n_cols, float *y, int64_t y_stride)
{
    static const tile_fn tiles[3] = {NEON_FN(tile_q4_0_1x2), NEON_FN(tile_q4_0_2x1), NEON_FN(tile_q4_0_2x2)};
    gemm_tiles(NEON_FN(dot_q4_0), tiles, k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);
}

static void NEON_FN(gemm_q8_0)(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                               int64_t n_cols, float *y, int64_t y_stride)
{
    static const tile_fn tiles[3] = {NEON_FN(tile_q8_0_1x2), NEON_FN(tile_q8_0_2x1), NEON_FN(tile_q8_0_2x2)};
    gemm_tiles(NEON_FN(dot_q8_0), tiles, k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);
}

/* ---- K-quants ------------------------------------------------------------------------------------- */

/* Each super-block's sums are exact integers: per group of 16 (or 32) values an int32x4 whose lanes add
 * up to q . x (DOT16), four groups' totals side by side (group4), times their scales, summed. Only the
 * float steps (kq_step) have an order, the scalar code's. */

static void NEON_FN(dot_q2_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q2_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const uint8x16_t packed = vld1q_u8(w[i].scales);
        int32x4_t sc[4];
        widen_scales(vandq_u8(packed, vdupq_n_u8(0x0f)), sc);
        const int summs = summs16(x[i].bsums, vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(vshrq_n_u8(packed, 4)))),
                                  vreinterpretq_s16_u16(vmovl_high_u8(vshrq_n_u8(packed, 4))));
        int32x4_t isum = vdupq_n_s32(0);
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            const uint8x16_t v0 = vld1q_u8(w[i].qs + 32 * h), v1 = vld1q_u8(w[i].qs + 32 * h + 16);
            const int8_t *y = x[i].qs + 128 * h;
            int32x4_t g[8]; /* groups 8h .. 8h+7 */
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
                const int8x16_t q0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(v0, vdupq_n_s8((int8_t)(-2 * j))), m3));
                const int8x16_t q1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(v1, vdupq_n_s8((int8_t)(-2 * j))), m3));
                g[2 * j] = DOT16(vdupq_n_s32(0), q0, vld1q_s8(y + 32 * j));
                g[2 * j + 1] = DOT16(vdupq_n_s32(0), q1, vld1q_s8(y + 32 * j + 16));
            }
            isum = vmlaq_s32(isum, group4(g[0], g[1], g[2], g[3]), sc[2 * h]);
            isum = vmlaq_s32(isum, group4(g[4], g[5], g[6], g[7]), sc[2 * h + 1]);
        }
        const float d = h2f(w[i].d) * x[i].d;
        const float dmin = h2f(w[i].dmin) * x[i].d;
        acc = kq_step(acc, vaddvq_s32(isum), summs, d, dmin, 1);
    }
    *out = acc;
}

static void NEON_FN(dot_q3_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q3_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    const int8x16_t four = vdupq_n_s8(4);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[4];
        widen_scales_signed(vsubq_s8(vreinterpretq_s8_u8(q3_k_scales(w[i].scales)), vdupq_n_s8(32)), sc);
        const uint8x16_t hm0 = vld1q_u8(w[i].hmask), hm1 = vld1q_u8(w[i].hmask + 16);
        int32x4_t isum = vdupq_n_s32(0);
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            const uint8x16_t v0 = vld1q_u8(w[i].qs + 32 * h), v1 = vld1q_u8(w[i].qs + 32 * h + 16);
            const int8_t *y = x[i].qs + 128 * h;
            int32x4_t g[8];
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
                /* low | high << 2, minus 4: low - 4 where the high bit is clear, low where it is set */
                const int8x16_t s2 = vdupq_n_s8((int8_t)(-2 * j)), sh = vdupq_n_s8((int8_t)(-(4 * h + j)));
                const uint8x16_t a0 = vorrq_u8(vandq_u8(vshlq_u8(v0, s2), m3), vshlq_n_u8(vandq_u8(vshlq_u8(hm0, sh), one), 2));
                const uint8x16_t a1 = vorrq_u8(vandq_u8(vshlq_u8(v1, s2), m3), vshlq_n_u8(vandq_u8(vshlq_u8(hm1, sh), one), 2));
                g[2 * j] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(a0), four), vld1q_s8(y + 32 * j));
                g[2 * j + 1] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(a1), four), vld1q_s8(y + 32 * j + 16));
            }
            isum = vmlaq_s32(isum, group4(g[0], g[1], g[2], g[3]), sc[2 * h]);
            isum = vmlaq_s32(isum, group4(g[4], g[5], g[6], g[7]), sc[2 * h + 1]);
        }
        const float d = h2f(w[i].d) * x[i].d;
        acc = kq_step(acc, vaddvq_s32(isum), 0, d, 0.0f, 0);
    }
    *out = acc;
}

/* Q4_K and Q5_K: scales and mins per group of 32; value 64h + l (l < 32) is in group 2h, 64h + 32 + l
 * in group 2h + 1. hi0, hi1: the fifth bits of Q5_K (0x10 or 0) for values 64h + l, NULL for Q4_K. */
static inline int32x4_t NEON_FN(k45_isum)(const uint8_t qs[AE_QK_K / 2], const uint8_t *qh, const int8_t *y,
                                          const int32x4_t sc[2])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    const uint8x16_t qh0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), qh1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
    int32x4_t g[8];
    _Pragma("GCC unroll 4") for (int h = 0; h < 4; h++) {
        const uint8x16_t v0 = vld1q_u8(qs + 32 * h), v1 = vld1q_u8(qs + 32 * h + 16);
        uint8x16_t l0 = vandq_u8(v0, m4), l1 = vandq_u8(v1, m4), u0 = vshrq_n_u8(v0, 4), u1 = vshrq_n_u8(v1, 4);
        if (qh) {
            const int8x16_t s0 = vdupq_n_s8((int8_t)(-2 * h)), s1 = vdupq_n_s8((int8_t)(-2 * h - 1));
            l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(vshlq_u8(qh0, s0), one), 4));
            l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(vshlq_u8(qh1, s0), one), 4));
            u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(vshlq_u8(qh0, s1), one), 4));
            u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(vshlq_u8(qh1, s1), one), 4));
        }
        const int8_t *yh = y + 64 * h;
        g[2 * h] = DOT16(DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(yh)), vreinterpretq_s8_u8(l1),
                         vld1q_s8(yh + 16));
        g[2 * h + 1] = DOT16(DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(u0), vld1q_s8(yh + 32)), vreinterpretq_s8_u8(u1),
                             vld1q_s8(yh + 48));
    }
    return vmlaq_s32(vmulq_s32(group4(g[0], g[1], g[2], g[3]), sc[0]), group4(g[4], g[5], g[6], g[7]), sc[1]);
}

static void NEON_FN(dot_q4_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[2];
        int16x8_t mins;
        k_scales_mins(w[i].scales, sc, &mins);
        const int summs = summs32(x[i].bsums, mins);
        const int isum = vaddvq_s32(NEON_FN(k45_isum)(w[i].qs, NULL, x[i].qs, sc));
        const float d = h2f(w[i].d) * x[i].d;
        const float dmin = h2f(w[i].dmin) * x[i].d;
        acc = kq_step(acc, isum, summs, d, dmin, 1);
    }
    *out = acc;
}

static void NEON_FN(dot_q5_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[2];
        int16x8_t mins;
        k_scales_mins(w[i].scales, sc, &mins);
        const int summs = summs32(x[i].bsums, mins);
        const int isum = vaddvq_s32(NEON_FN(k45_isum)(w[i].qs, w[i].qh, x[i].qs, sc));
        const float d = h2f(w[i].d) * x[i].d;
        const float dmin = h2f(w[i].dmin) * x[i].d;
        acc = kq_step(acc, isum, summs, d, dmin, 1);
    }
    *out = acc;
}

static void NEON_FN(dot_q6_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q6_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[4];
        widen_scales_signed(vld1q_s8(w[i].scales), sc);
        int32x4_t isum = vdupq_n_s32(0);
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const int8_t *y = x[i].qs + 128 * h;
            int32x4_t g[8]; /* group 8h + 2j + half: values 128h + 32j + 16 half .. + 15 */
            _Pragma("GCC unroll 2") for (int half = 0; half < 2; half++) {
                const int l = 16 * half;
                const uint8x16_t a = vld1q_u8(ql + l), b = vld1q_u8(ql + 32 + l), hb = vld1q_u8(qh + l);
                const uint8x16_t q0 = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
                const uint8x16_t q1 = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
                const uint8x16_t q2 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
                const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                g[half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q0), off), vld1q_s8(y + l));
                g[2 + half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q1), off), vld1q_s8(y + 32 + l));
                g[4 + half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q2), off), vld1q_s8(y + 64 + l));
                g[6 + half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q3), off), vld1q_s8(y + 96 + l));
            }
            isum = vmlaq_s32(isum, group4(g[0], g[1], g[2], g[3]), sc[2 * h]);
            isum = vmlaq_s32(isum, group4(g[4], g[5], g[6], g[7]), sc[2 * h + 1]);
        }
        const float d = h2f(w[i].d) * x[i].d;
        acc = kq_step(acc, vaddvq_s32(isum), 0, d, 0.0f, 0);
    }
    *out = acc;
}
