/* AVX2 (+FMA +F16C) row kernels for the matmul, chosen at run time (cpu.c) when the CPU has them.
 *
 * The library is built for baseline x86-64, so every function here carries a target attribute and is
 * only called through ae_kernels_avx2() after the feature check. Each kernel reproduces the scalar
 * reference's order of float operations (see kernels_matmul.c): integer sums are exact in any order,
 * block terms go into the same 8 float lanes and meet in the same reduction tree, and FMA is used only
 * where the product is exact (fp16 x fp16, bf16 x bf16). The results are therefore the scalar ones,
 * bit for bit, only faster. Activations from this library's quantizers lie in [-127, 127], which the
 * sign trick of the signed byte products relies on. Q4_0 and Q8_0 also have 2 x 2 block kernels for
 * prefill. On other hosts this file compiles to nothing.
 */
#if defined(__x86_64__)

#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "matmul_iq.h"

#include <immintrin.h>
#include <string.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* ---- reductions ----------------------------------------------------------------------------------- */

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), the scalar code's lanes_hsum8. */
AVX2_FN static inline float hsum8_ps(__m256 v)
{
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

/* lanes32_finish of the scalar code over four accumulators holding lanes 0-7, 8-15, 16-23, 24-31. */
AVX2_FN static inline float lanes32_finish_ps(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    return hsum8_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

AVX2_FN static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* ---- 32-value blocks ------------------------------------------------------------------------------ */

/* The 32 nibbles of a Q4 block as bytes in value order: low nibbles (values 0-15), then high. */
AVX2_FN static inline __m256i unpack_nibbles(const uint8_t qs[AE_QK / 2])
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(raw, m4);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
    return _mm256_set_m128i(hi, lo);
}

/* 0x10 in byte j where bit j of a Q5 block's qh is set, 0 elsewhere. */
AVX2_FN static inline __m256i q5_high_bytes(const uint8_t qh[4])
{
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* Lane l (0..7): the exact sum of a[i] * b[i] for bytes i = 4l..4l+3; a, b signed, b in [-127, 127]. */
AVX2_FN static inline __m256i lanes_i8(__m256i a, __m256i b)
{
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* The same for unsigned a in [0, 127]. */
AVX2_FN static inline __m256i lanes_u8(__m256i a, __m256i b)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}

/* acc + (float)lanes * d, one rounding for the product and one for the sum, as lanes_add_block. */
AVX2_FN static inline __m256 lanes_add(__m256 acc, __m256i lanes, float d)
{
    const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(lanes), _mm256_set1_ps(d));
    return _mm256_add_ps(acc, t);
}

AVX2_FN static inline __m256 block_q4_0(__m256 acc, const struct ae_block_q4_0 *w, const struct ae_block_q8_0 *x)
{
    const __m256i q = _mm256_sub_epi8(unpack_nibbles(w->qs), _mm256_set1_epi8(8));
    const __m256i lanes = lanes_i8(q, _mm256_loadu_si256((const __m256i *)x->qs));
    const float d = _cvtsh_ss(w->d) * _cvtsh_ss(x->d);
    return lanes_add(acc, lanes, d);
}

AVX2_FN static void dot_q4_0(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_0 *w = vw;
    const struct ae_block_q8_0 *x = vx;
    const int64_t nb = k / AE_QK;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        even = block_q4_0(even, &w[b], &x[b]);
        odd = block_q4_0(odd, &w[b + 1], &x[b + 1]);
    }
    if (b < nb)
        even = block_q4_0(even, &w[b], &x[b]);
    *out = hsum8_ps(_mm256_add_ps(even, odd));
}

AVX2_FN static inline __m256 block_q5_0(__m256 acc, const struct ae_block_q5_0 *w, const struct ae_block_q8_0 *x)
{
    const __m256i u = _mm256_or_si256(unpack_nibbles(w->qs), q5_high_bytes(w->qh));
    const __m256i q = _mm256_sub_epi8(u, _mm256_set1_epi8(16));
    const __m256i lanes = lanes_i8(q, _mm256_loadu_si256((const __m256i *)x->qs));
    const float d = _cvtsh_ss(w->d) * _cvtsh_ss(x->d);
    return lanes_add(acc, lanes, d);
}

AVX2_FN static void dot_q5_0(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_0 *w = vw;
    const struct ae_block_q8_0 *x = vx;
    const int64_t nb = k / AE_QK;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        even = block_q5_0(even, &w[b], &x[b]);
        odd = block_q5_0(odd, &w[b + 1], &x[b + 1]);
    }
    if (b < nb)
        even = block_q5_0(even, &w[b], &x[b]);
    *out = hsum8_ps(_mm256_add_ps(even, odd));
}

AVX2_FN static inline __m256 block_q8_0(__m256 acc, const struct ae_block_q8_0 *w, const struct ae_block_q8_0 *x)
{
    const __m256i lanes = lanes_i8(_mm256_loadu_si256((const __m256i *)w->qs),
                                   _mm256_loadu_si256((const __m256i *)x->qs));
    const float d = _cvtsh_ss(w->d) * _cvtsh_ss(x->d);
    return lanes_add(acc, lanes, d);
}

AVX2_FN static void dot_q8_0(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q8_0 *w = vw;
    const struct ae_block_q8_0 *x = vx;
    const int64_t nb = k / AE_QK;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        even = block_q8_0(even, &w[b], &x[b]);
        odd = block_q8_0(odd, &w[b + 1], &x[b + 1]);
    }
    if (b < nb)
        even = block_q8_0(even, &w[b], &x[b]);
    *out = hsum8_ps(_mm256_add_ps(even, odd));
}

/* ---- tiles of 32-value blocks (Q4_0, Q8_0) ---------------------------------------------------------- */

/* A tile of up to 2 weight rows by 2 activation rows, so each unpacked weight block serves both
 * activation rows and each activation block both weight rows. Every output keeps its own 'even' and
 * 'odd' accumulators and takes its blocks in order, so it is the row dot's value bit for bit. The lane
 * sums: Q4_0 multiplies the unbiased nibbles (0..15) by x and subtracts 8 * sum(x) per lane; Q8_0
 * multiplies |w| by x with w's sign. Neither saturates the 16-bit pair sums. */
#define TILE2 2

struct tile2_acc {
    __m256 v[2][TILE2][TILE2]; /* [parity][c][r] */
};

AVX2_INLINE void tile2_step(struct tile2_acc *a, int par, int q8, int R, int C, const uint8_t *w, size_t w_row,
                             const uint8_t *x, size_t x_row, int64_t b)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i u[TILE2], sgn[TILE2];
    __m256 dw[TILE2];
    #pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        if (q8) {
            const struct ae_block_q8_0 *wb = (const struct ae_block_q8_0 *)(w + (size_t)r * w_row) + b;
            sgn[r] = _mm256_loadu_si256((const __m256i *)wb->qs);
            u[r] = _mm256_abs_epi8(sgn[r]);
            dw[r] = _mm256_set1_ps(_cvtsh_ss(wb->d));
        } else {
            const struct ae_block_q4_0 *wb = (const struct ae_block_q4_0 *)(w + (size_t)r * w_row) + b;
            u[r] = unpack_nibbles(wb->qs);
            sgn[r] = _mm256_setzero_si256();
            dw[r] = _mm256_set1_ps(_cvtsh_ss(wb->d));
        }
    }
    #pragma GCC unroll 2
    for (int c = 0; c < C; c++) {
        const struct ae_block_q8_0 *xb = (const struct ae_block_q8_0 *)(x + (size_t)c * x_row) + b;
        const __m256i xq = _mm256_loadu_si256((const __m256i *)xb->qs);
        const __m256 dx = _mm256_set1_ps(_cvtsh_ss(xb->d));
        /* Q4_0: 8 * the sum of each 4 activations */
        const __m256i bias = q8 ? _mm256_setzero_si256()
                                : _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), xq), ones);
        #pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m256i p16 = _mm256_maddubs_epi16(u[r], q8 ? _mm256_sign_epi8(xq, sgn[r]) : xq);
            const __m256i lanes = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones), bias);
            const __m256 d = _mm256_mul_ps(dw[r], dx);
            const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(lanes), d);
            a->v[par][c][r] = _mm256_add_ps(a->v[par][c][r], t);
        }
    }
}

AVX2_INLINE void tile2(int q8, int R, int C, int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x,
                        size_t x_row, float *y, int64_t y_stride)
{
    struct tile2_acc a;
    #pragma GCC unroll 2
    for (int p = 0; p < 2; p++)
        #pragma GCC unroll 2
        for (int c = 0; c < C; c++)
            #pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                a.v[p][c][r] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        tile2_step(&a, 0, q8, R, C, w, w_row, x, x_row, b);
        tile2_step(&a, 1, q8, R, C, w, w_row, x, x_row, b + 1);
    }
    if (b < nb)
        tile2_step(&a, 0, q8, R, C, w, w_row, x, x_row, b);
    #pragma GCC unroll 2
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 2
        for (int r = 0; r < R; r++)
            y[c * y_stride + r] = hsum8_ps(_mm256_add_ps(a.v[0][c][r], a.v[1][c][r]));
}

#define TILE2_FN(name, q8, R, C)                                                                                  \
    AVX2_FN static void name(int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y, \
                             int64_t y_stride)                                                                   \
    {                                                                                                            \
        tile2(q8, R, C, nb, w, w_row, x, x_row, y, y_stride);                                                    \
    }
TILE2_FN(tile_q4_0_1x2, 0, 1, 2)
TILE2_FN(tile_q4_0_2x1, 0, 2, 1)
TILE2_FN(tile_q4_0_2x2, 0, 2, 2)
TILE2_FN(tile_q8_0_1x2, 1, 1, 2)
TILE2_FN(tile_q8_0_2x1, 1, 2, 1)
TILE2_FN(tile_q8_0_2x2, 1, 2, 2)

typedef void (*tile2_fn)(int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y,
                         int64_t y_stride);

/* 2 x 2 tiles; a lone last row or column takes the 1 x 2 or 2 x 1 tile, and a single activation row
 * (decode, where the weights' memory traffic bounds the time) the row dot. */
static void gemm_tiles2(ae_vec_dot_fn dot, const tile2_fn tiles[3], int64_t k, const void *w, size_t w_row,
                        int64_t n_rows, const void *x, size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const uint8_t *w8 = w, *x8 = x;
    const int64_t nb = k / AE_QK;
    for (int64_t r0 = 0; r0 < n_rows; r0 += TILE2) {
        const int R = n_rows - r0 < TILE2 ? 1 : TILE2;
        for (int64_t c0 = 0; c0 < n_cols; c0 += TILE2) {
            const int C = n_cols - c0 < TILE2 ? 1 : TILE2;
            const uint8_t *wt = w8 + (size_t)r0 * w_row, *xt = x8 + (size_t)c0 * x_row;
            float *yt = y + c0 * y_stride + r0;
            if (R == 1 && C == 1)
                dot(k, wt, xt, yt);
            else
                tiles[R == 1 ? 0 : C == 1 ? 1 : 2](nb, wt, w_row, xt, x_row, yt, y_stride);
        }
    }
}

static void dot_q4_0(int64_t k, const void *vw, const void *vx, float *out);
static void dot_q8_0(int64_t k, const void *vw, const void *vx, float *out);

static void gemm_q4_0(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                      int64_t n_cols, float *y, int64_t y_stride)
{
    static const tile2_fn tiles[3] = {tile_q4_0_1x2, tile_q4_0_2x1, tile_q4_0_2x2};
    if (n_cols == 1)
        for (int64_t r = 0; r < n_rows; r++)
            dot_q4_0(k, (const uint8_t *)w + (size_t)r * w_row, x, &y[r]);
    else
        gemm_tiles2(dot_q4_0, tiles, k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);
}

static void gemm_q8_0(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                      int64_t n_cols, float *y, int64_t y_stride)
{
    static const tile2_fn tiles[3] = {tile_q8_0_1x2, tile_q8_0_2x1, tile_q8_0_2x2};
    if (n_cols == 1)
        for (int64_t r = 0; r < n_rows; r++)
            dot_q8_0(k, (const uint8_t *)w + (size_t)r * w_row, x, &y[r]);
    else
        gemm_tiles2(dot_q8_0, tiles, k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);
}

/* Q4_1 and Q5_1 add mw * sx per block into one scalar sum, in block order. */
AVX2_FN static inline __m256 block_q4_1(__m256 acc, float *sm, const struct ae_block_q4_1 *w,
                                        const struct ae_block_q8_1 *x)
{
    const __m256i lanes = lanes_u8(unpack_nibbles(w->qs), _mm256_loadu_si256((const __m256i *)x->qs));
    const float d = _cvtsh_ss(w->d) * _cvtsh_ss(x->d);
    const float ms = _cvtsh_ss(w->m) * _cvtsh_ss(x->s);
    *sm += ms;
    return lanes_add(acc, lanes, d);
}

AVX2_FN static void dot_q4_1(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_1 *w = vw;
    const struct ae_block_q8_1 *x = vx;
    const int64_t nb = k / AE_QK;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    float sm = 0.0f;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        even = block_q4_1(even, &sm, &w[b], &x[b]);
        odd = block_q4_1(odd, &sm, &w[b + 1], &x[b + 1]);
    }
    if (b < nb)
        even = block_q4_1(even, &sm, &w[b], &x[b]);
    const float dots = hsum8_ps(_mm256_add_ps(even, odd));
    *out = dots + sm;
}

AVX2_FN static inline __m256 block_q5_1(__m256 acc, float *sm, const struct ae_block_q5_1 *w,
                                        const struct ae_block_q8_1 *x)
{
    const __m256i q = _mm256_or_si256(unpack_nibbles(w->qs), q5_high_bytes(w->qh));
    const __m256i lanes = lanes_u8(q, _mm256_loadu_si256((const __m256i *)x->qs));
    const float d = _cvtsh_ss(w->d) * _cvtsh_ss(x->d);
    const float ms = _cvtsh_ss(w->m) * _cvtsh_ss(x->s);
    *sm += ms;
    return lanes_add(acc, lanes, d);
}

AVX2_FN static void dot_q5_1(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_1 *w = vw;
    const struct ae_block_q8_1 *x = vx;
    const int64_t nb = k / AE_QK;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    float sm = 0.0f;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        even = block_q5_1(even, &sm, &w[b], &x[b]);
        odd = block_q5_1(odd, &sm, &w[b + 1], &x[b + 1]);
    }
    if (b < nb)
        even = block_q5_1(even, &sm, &w[b], &x[b]);
    const float dots = hsum8_ps(_mm256_add_ps(even, odd));
    *out = dots + sm;
}

/* ---- K-quants ------------------------------------------------------------------------------------- */

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

/* From 16 int16 group scales, the scale vector for the 32 values of groups 2p and 2p+1 (values
 * 32p..32p+31): 8 int16 lanes of scale 2p, then 8 of scale 2p+1, matching the lanes of maddubs. */
AVX2_FN static inline __m256i pair_scales(__m256i scales16, int p)
{
    const __m256i both = _mm256_permutevar8x32_epi32(scales16, _mm256_set1_epi32(p));
    const __m256i spread = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2,
                                            3, 2, 3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(both, spread);
}

/* The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K or Q5_K block, each 6 bits, unpacked
 * from their 12 bytes (layout in ae_quant_blocks.h; the same values as kernels_matmul.c's k_scale_min)
 * with 32-bit masks, and built in registers (a store read back as a vector would stall the load). */
AVX2_FN static inline __m128i k_scales_mins(const uint8_t s[AE_K_SCALE_BYTES])
{
    uint32_t u[3];
    memcpy(u, s, sizeof u);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    return _mm_setr_epi32((int)(u[0] & low6),                                       /* scales 0-3 */
                          (int)((u[2] & low4) | ((u[0] >> 6) & top2) << 4),         /* scales 4-7 */
                          (int)(u[1] & low6),                                       /* mins 0-3 */
                          (int)(((u[2] >> 4) & low4) | ((u[1] >> 6) & top2) << 4)); /* mins 4-7 */
}

/* The 16 scales of a Q3_K block, offset by 32 (each in [0, 63]), as bytes in group order. Built in
 * registers: a store of four words read back as one vector would stall the load. */
AVX2_FN static inline __m128i q3_k_scales(const uint8_t s[AE_K_SCALE_BYTES])
{
    uint32_t u[3];
    memcpy(u, s, sizeof u);
    const uint32_t low4 = 0x0f0f0f0f, top2 = 0x03030303;
    return _mm_setr_epi32((int)((u[0] & low4) | (u[2] & top2) << 4),                /* groups 0-3 */
                          (int)((u[1] & low4) | ((u[2] >> 2) & top2) << 4),         /* groups 4-7 */
                          (int)(((u[0] >> 4) & low4) | ((u[2] >> 4) & top2) << 4),  /* groups 8-11 */
                          (int)(((u[1] >> 4) & low4) | ((u[2] >> 6) & top2) << 4)); /* groups 12-15 */
}

AVX2_FN static void dot_q2_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q2_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i m3 = _mm256_set1_epi8(3);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const __m256i packed = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        const __m256i scales = _mm256_and_si256(packed, _mm256_set1_epi16(0x0f));
        const __m256i mins = _mm256_srli_epi16(packed, 4);
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        const int summs = hsum_epi32(_mm256_madd_epi16(bsums, mins));

        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_and_si256(q2, m3);
                q2 = _mm256_srli_epi16(q2, 2);
                const __m256i y = _mm256_loadu_si256((const __m256i *)(x[i].qs + 128 * h + 32 * j));
                const __m256i p = _mm256_maddubs_epi16(q, y);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scales(scales, 4 * h + j)));
            }
        }
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        const float dmin = _cvtsh_ss(w[i].dmin) * x[i].d;
        acc = kq_step(acc, hsum_epi32(isum), summs, d, dmin, 1);
    }
    *out = acc;
}

AVX2_FN static void dot_q3_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q3_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i one = _mm256_set1_epi8(1);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const __m256i scales = _mm256_sub_epi16(_mm256_cvtepu8_epi16(q3_k_scales(w[i].scales)), _mm256_set1_epi16(32));
        /* the quants are handled as q + 4 in [0, 7]; the 4 comes back out as 4 * sum(scale * bsum) */
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(scales, bsums), 2));

        __m256i hm = _mm256_loadu_si256((const __m256i *)w[i].hmask);
        for (int h = 0; h < 2; h++) {
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                const __m256i hbit = _mm256_slli_epi16(_mm256_and_si256(hm, one), 2);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(q2, m3), hbit);
                q2 = _mm256_srli_epi16(q2, 2);
                hm = _mm256_srli_epi16(hm, 1);
                const __m256i y = _mm256_loadu_si256((const __m256i *)(x[i].qs + 128 * h + 32 * j));
                const __m256i p = _mm256_maddubs_epi16(q, y);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scales(scales, 4 * h + j)));
            }
        }
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        acc = kq_step(acc, hsum_epi32(isum), 0, d, 0.0f, 0);
    }
    *out = acc;
}

/* The mins term of Q4_K and Q5_K: sum over the 16 bsums of bsum * the min of its group of 32 (mins as
 * 8 int16). */
AVX2_FN static inline int kq_summs_32(const struct ae_block_q8_k *x, __m128i mins)
{
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    /* each group of 32 has two bsums of at most 16 * 127: their sums fit in int16 */
    const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    __m128i s = _mm_madd_epi16(pairs, mins);
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Scales 2h and 2h+1 of the int16 lanes 0-7 of sm16, each broadcast to a whole vector. */
AVX2_FN static inline void k_scale_pair(__m256i sm16, int h, __m256i *lo, __m256i *hi)
{
    const __m256i both = _mm256_permutevar8x32_epi32(sm16, _mm256_set1_epi32(h));
    *lo = _mm256_shuffle_epi8(both, _mm256_set1_epi16(0x0100));
    *hi = _mm256_shuffle_epi8(both, _mm256_set1_epi16(0x0302));
}

AVX2_FN static void dot_q4_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const __m256i sm16 = _mm256_cvtepu8_epi16(k_scales_mins(w[i].scales)); /* 8 scales, then 8 mins */
        const int summs = kq_summs_32(&x[i], _mm256_extracti128_si256(sm16, 1));

        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 4; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * h));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * h + 32));
            __m256i s0, s1;
            k_scale_pair(sm16, h, &s0, &s1);
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        const float dmin = _cvtsh_ss(w[i].dmin) * x[i].d;
        acc = kq_step(acc, hsum_epi32(isum), summs, d, dmin, 1);
    }
    *out = acc;
}

AVX2_FN static void dot_q5_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i one = _mm256_set1_epi8(1);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const __m256i sm16 = _mm256_cvtepu8_epi16(k_scales_mins(w[i].scales)); /* 8 scales, then 8 mins */
        const int summs = kq_summs_32(&x[i], _mm256_extracti128_si256(sm16, 1));

        __m256i hb = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 4; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(hb, one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4);
            hb = _mm256_srli_epi16(hb, 2);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * h));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * h + 32));
            __m256i s0, s1;
            k_scale_pair(sm16, h, &s0, &s1);
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        const float dmin = _cvtsh_ss(w[i].dmin) * x[i].d;
        acc = kq_step(acc, hsum_epi32(isum), summs, d, dmin, 1);
    }
    *out = acc;
}

AVX2_FN static void dot_q6_k(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q6_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m3 = _mm256_set1_epi8(3);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        /* the quants are handled as q + 32 in [0, 63]; the 32 comes back out as 32 * sum(scale * bsum) */
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(scales, bsums), 5));
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w[i].qh + 32 * h));
            __m256i q[4]; /* q + 32 of values 128h + 32j + l */
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            for (int j = 0; j < 4; j++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)(x[i].qs + 128 * h + 32 * j));
                const __m256i p = _mm256_maddubs_epi16(q[j], y);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scales(scales, 4 * h + j)));
            }
        }
        const float d = _cvtsh_ss(w[i].d) * x[i].d;
        acc = kq_step(acc, hsum_epi32(isum), 0, d, 0.0f, 0);
    }
    *out = acc;
}

/* ---- F32, F16, BF16 ------------------------------------------------------------------------------- */

AVX2_FN static void dot_f32(int64_t k, const void *vw, const void *vx, float *out)
{
    const float *w = vw, *x = vx;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= k; i += 32)
        for (int j = 0; j < 4; j++) { /* no FMA: the product is rounded first, as in the scalar code */
            const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(w + i + 8 * j), _mm256_loadu_ps(x + i + 8 * j));
            a[j] = _mm256_add_ps(a[j], p);
        }
    if (i < k) {
        float lanes[32];
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(lanes + 8 * j, a[j]);
        for (int64_t l = 0; i + l < k; l++) {
            const float p = w[i + l] * x[i + l];
            lanes[l] += p;
        }
        for (int j = 0; j < 4; j++)
            a[j] = _mm256_loadu_ps(lanes + 8 * j);
    }
    *out = lanes32_finish_ps(a[0], a[1], a[2], a[3]);
}

AVX2_FN static inline __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2_FN static void dot_f16(int64_t k, const void *vw, const void *vx, float *out)
{
    const uint16_t *w = vw, *x = vx;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= k; i += 32)
        for (int j = 0; j < 4; j++) /* fp16 x fp16 is exact in f32: the FMA rounds once, like mul + add */
            a[j] = _mm256_fmadd_ps(load_f16(w + i + 8 * j), load_f16(x + i + 8 * j), a[j]);
    if (i < k) {
        float lanes[32];
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(lanes + 8 * j, a[j]);
        for (int64_t l = 0; i + l < k; l++) {
            const float p = _cvtsh_ss(w[i + l]) * _cvtsh_ss(x[i + l]);
            lanes[l] += p;
        }
        for (int j = 0; j < 4; j++)
            a[j] = _mm256_loadu_ps(lanes + 8 * j);
    }
    *out = lanes32_finish_ps(a[0], a[1], a[2], a[3]);
}

AVX2_FN static inline __m256 load_bf16(const uint16_t *p)
{
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2_FN static void dot_bf16(int64_t k, const void *vw, const void *vx, float *out)
{
    const uint16_t *w = vw, *x = vx;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= k; i += 32)
        for (int j = 0; j < 4; j++) /* bf16 x bf16 is exact in f32 */
            a[j] = _mm256_fmadd_ps(load_bf16(w + i + 8 * j), load_bf16(x + i + 8 * j), a[j]);
    if (i < k) {
        float lanes[32];
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(lanes + 8 * j, a[j]);
        for (int64_t l = 0; i + l < k; l++) {
            const float p = ae_bf16_to_fp32(w[i + l]) * ae_bf16_to_fp32(x[i + l]);
            lanes[l] += p;
        }
        for (int j = 0; j < 4; j++)
            a[j] = _mm256_loadu_ps(lanes + 8 * j);
    }
    *out = lanes32_finish_ps(a[0], a[1], a[2], a[3]);
}

/* y += a * x: product rounded, then the sum, as the scalar code (a need not be an fp16 value). */
AVX2_FN static void mad_f16(int64_t n, float *y, const uint16_t *x, float a)
{
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 p = _mm256_mul_ps(va, load_f16(x + i));
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), p));
    }
    for (; i < n; i++) {
        const float p = a * _cvtsh_ss(x[i]);
        y[i] += p;
    }
}

/* f32 -> fp16 rounding to nearest even, as ae_fp32_to_fp16 (NaN payloads aside). */
AVX2_FN static void to_f16(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = ae_fp32_to_fp16(x[i]);
}

static const struct ae_kernel_set avx2_set = {
    .name = "avx2",
    .vec_dot =
        {
            [AE_TYPE_F32] = dot_f32,   [AE_TYPE_F16] = dot_f16,   [AE_TYPE_BF16] = dot_bf16,
            [AE_TYPE_Q4_0] = dot_q4_0, [AE_TYPE_Q4_1] = dot_q4_1, [AE_TYPE_Q5_0] = dot_q5_0,
            [AE_TYPE_Q5_1] = dot_q5_1, [AE_TYPE_Q8_0] = dot_q8_0, [AE_TYPE_Q2_K] = dot_q2_k,
            [AE_TYPE_Q3_K] = dot_q3_k, [AE_TYPE_Q4_K] = dot_q4_k, [AE_TYPE_Q5_K] = dot_q5_k,
            [AE_TYPE_Q6_K] = dot_q6_k,
            [AE_TYPE_IQ4_NL] = ae_dot_iq4_nl_avx2, [AE_TYPE_IQ4_XS] = ae_dot_iq4_xs_avx2,
            [AE_TYPE_TQ1_0] = ae_dot_tq1_0_avx2,   [AE_TYPE_TQ2_0] = ae_dot_tq2_0_avx2,
        },
    .gemm =
        {
            [AE_TYPE_Q4_0] = gemm_q4_0,
            [AE_TYPE_Q8_0] = gemm_q8_0,
        },
    .to_f16 = to_f16,
    .mad_f16 = mad_f16,
};

const struct ae_kernel_set *ae_kernels_avx2(void)
{
    return &avx2_set;
}

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int kernels_matmul_avx2_not_built;

#endif
