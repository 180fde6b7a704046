/* AVX-512 (F, BW, VL, VNNI) kernels for the matmul, chosen at run time (cpu.c) when the CPU has them.
 *
 * The main pieces are block kernels (ae_kernel_set.gemm) for Q4_0, Q8_0 and F16. For prefill a tile
 * of up to 4 weight rows by 4 activation rows (F16: 3 by 3) is computed at once, so each unpacked
 * weight block serves every activation row of the tile and each activation block every weight row;
 * for a single activation row (decode) up to 8 weight rows go side by side, with the weights fetched
 * ahead. For Q4_0 and Q8_0 a 512-bit register holds two 32-value blocks: lanes 0-7 carry block b's 8
 * lane sums and lanes 8-15 block b+1's, which are exactly the scalar reference's 'even' and 'odd'
 * accumulators (kernels_matmul.c) side by side. Each lane adds (float)sum * (dw * dx) with one
 * rounding for each product and one for the sum, and the result is hsum8(even + odd), so every output
 * is bit-identical to the scalar and the AVX2 row dots. The integer lane sums come from vpdpbusd
 * (unsigned x signed bytes), made exact for signed weights by a bias that is taken back out: Q4_0
 * nibbles are used unbiased and 8 * sum(x) is subtracted, Q8_0 quants are biased by 128 and
 * 128 * sum(x) is subtracted. F16 keeps the scalar code's 32 lanes in two registers. Types without a
 * kernel here fall back to the AVX2 ones. On other hosts this file compiles to nothing.
 */
#if defined(__x86_64__)

#include "ae_kernels.h"
#include "ae_quant_blocks.h"

#include <immintrin.h>
#include <string.h>

#define AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
#define AVX512_FN __attribute__((target(AVX512_TARGET)))
#define AVX512_INLINE __attribute__((target(AVX512_TARGET), always_inline)) static inline

/* Rows and columns of the largest register tile; a single activation row (decode) takes up to
 * TILE_R1 weight rows at once. */
#define TILE_R 4
#define TILE_C 4
#define TILE_R1 8
/* How far ahead of its use each weight row is fetched into the cache. */
#define PREFETCH_BYTES 512

/* Lanes 0-7 plus lanes 8-15. */
AVX512_INLINE __m256 halves_sum(__m512 a)
{
    return _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) of even + odd, the scalar code's lanes_finish. */
AVX512_INLINE float finish_pair(__m512 acc)
{
    const __m256 v = halves_sum(acc);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

/* The fp16 scales at 16-bit words w0 and w1 of raw as 8 lanes of the first and 8 of the second. */
AVX512_INLINE __m512 scales_at(__m512i raw, int w0, int w1)
{
    const __m512i idx = _mm512_mask_blend_epi16(0xff00, _mm512_set1_epi16((short)w0), _mm512_set1_epi16((short)w1));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, raw)));
}

/* Two Q8_0 blocks (68 bytes): the 64 quants and the scales. The first 64 bytes, one load, hold both
 * scales (16-bit words 0 and 17). */
AVX512_INLINE void q8_0_blocks(const struct ae_block_q8_0 *xb, __m512i *q, __m512 *d)
{
    *q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs)),
                            _mm256_loadu_si256((const __m256i *)xb[1].qs), 1);
    *d = scales_at(_mm512_loadu_si512(xb), 0, 17);
}

/* Two Q4_0 blocks (36 bytes): the 64 nibbles as bytes in value order, unbiased (0..15), and the
 * scales. Bytes 0-31 and 20-35 are loaded side by side; the nibble bytes start at even offsets (words
 * 1 and 16 of that pair of loads), so a word permutation puts each block's 16 bytes into two 128-bit
 * lanes, the second of which is shifted down by 4 bits. */
AVX512_INLINE void q4_0_blocks(const struct ae_block_q4_0 *wb, __m512i *u, __m512 *d)
{
    const __m512i raw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)wb)),
                                           _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)wb[1].qs)), 1);
    const __m512i idx = _mm512_set_epi16(23, 22, 21, 20, 19, 18, 17, 16, 23, 22, 21, 20, 19, 18, 17, 16, /* b+1 */
                                         8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1);                /* b */
    const __m512i dup = _mm512_permutexvar_epi16(idx, raw);
    const __m512i shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    /* the 64-bit shift moves bits across bytes; the mask keeps each byte's own nibble */
    *u = _mm512_and_si512(_mm512_srlv_epi64(dup, shift), _mm512_set1_epi8(0x0f));
    *d = scales_at(raw, 0, 9);
}

/* A lone last block copied into zeros the size of two, so that the loads above stay inside it. */
AVX512_INLINE const void *lone_block(uint8_t buf[128], const void *block, size_t bytes)
{
    memset(buf, 0, 128);
    memcpy(buf, block, bytes);
    return buf;
}

/* The running accumulators of one tile: acc[c][r] for activation row c, weight row r. */
struct tile_acc {
    __m512 v[TILE_C][TILE_R1];
};

/* One step of a tile over blocks b (and b + 1 when two): R weight rows at w + r * w_row, C activation
 * rows of Q8_0 blocks at x + c * x_row. The weights become unsigned bytes u = q + bias (Q4_0: the
 * nibble, bias 8; Q8_0: q ^ 0x80, bias 128), so u . x - bias * sum(x) is the exact q . x of each lane. */
AVX512_INLINE void qk32_step(struct tile_acc *a, int q8, int R, int C, const uint8_t *w, size_t w_row,
                             const uint8_t *x, size_t x_row, int64_t b, int two)
{
    const __m512i bias = _mm512_set1_epi8(q8 ? (char)0x80 : 8);
    const size_t w_block = q8 ? sizeof(struct ae_block_q8_0) : sizeof(struct ae_block_q4_0);
    uint8_t lone[128] __attribute__((aligned(64)));
    __m512i u[TILE_R1];
    __m512 dw[TILE_R1];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *wb = w + (size_t)r * w_row + (size_t)b * w_block;
        _mm_prefetch((const char *)wb + PREFETCH_BYTES, _MM_HINT_T0);
        if (!two)
            wb = lone_block(lone, wb, w_block);
        if (q8) {
            __m512i q;
            q8_0_blocks((const struct ae_block_q8_0 *)wb, &q, &dw[r]);
            u[r] = _mm512_xor_si512(q, bias);
        } else {
            q4_0_blocks((const struct ae_block_q4_0 *)wb, &u[r], &dw[r]);
        }
    }
    const __mmask16 mask = two ? 0xffff : 0x00ff;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        const uint8_t *xb = x + (size_t)c * x_row + (size_t)b * sizeof(struct ae_block_q8_0);
        if (!two)
            xb = lone_block(lone, xb, sizeof(struct ae_block_q8_0));
        __m512i xq;
        __m512 dx;
        q8_0_blocks((const struct ae_block_q8_0 *)xb, &xq, &dx);
        const __m512i zero = _mm512_setzero_si512();
        const __m512i neg = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, xq));
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512i lanes = _mm512_dpbusd_epi32(neg, u[r], xq);
            const __m512 d = _mm512_mul_ps(dw[r], dx);
            /* the product rounded, then the sum: as the scalar lanes_add_block */
            const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(lanes), d);
            a->v[c][r] = _mm512_mask_add_ps(a->v[c][r], mask, a->v[c][r], t);
        }
    }
}

/* One R x C tile of 32-value-block weights: y[c * y_stride + r]. */
AVX512_INLINE void tile_qk32(int q8, int R, int C, int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x,
                             size_t x_row, float *y, int64_t y_stride)
{
    struct tile_acc a;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            a.v[c][r] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2)
        qk32_step(&a, q8, R, C, w, w_row, x, x_row, b, 1);
    if (b < nb)
        qk32_step(&a, q8, R, C, w, w_row, x, x_row, b, 0);
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            y[c * y_stride + r] = finish_pair(a.v[c][r]);
}

/* The tile sizes, each its own specialised copy. */
#define TILE_FN(name, q8, R, C)                                                                                      \
    AVX512_FN static void name(int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y, \
                               int64_t y_stride)                                                                     \
    {                                                                                                                \
        tile_qk32(q8, R, C, nb, w, w_row, x, x_row, y, y_stride);                                                    \
    }

typedef void (*tile_fn)(int64_t nb, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y,
                        int64_t y_stride);

/* The tiles of one weight type: R x C for R, C <= 4, and R x 1 for R <= 8. */
struct tile_set {
    tile_fn rc[TILE_R][TILE_C];
    tile_fn r1[TILE_R1];
};

#define TILE_ROW(name, q8, R) TILE_FN(name##_##R##x1, q8, R, 1) TILE_FN(name##_##R##x2, q8, R, 2) \
    TILE_FN(name##_##R##x3, q8, R, 3) TILE_FN(name##_##R##x4, q8, R, 4)
#define TILE_ALL(name, q8)                                                                                        \
    TILE_ROW(name, q8, 1) TILE_ROW(name, q8, 2) TILE_ROW(name, q8, 3) TILE_ROW(name, q8, 4)                         \
    TILE_FN(name##_5x1, q8, 5, 1) TILE_FN(name##_6x1, q8, 6, 1) TILE_FN(name##_7x1, q8, 7, 1)                       \
    TILE_FN(name##_8x1, q8, 8, 1)
#define TILE_TABLE_ROW(name, R) {name##_##R##x1, name##_##R##x2, name##_##R##x3, name##_##R##x4}
#define TILE_TABLE(name)                                                                                     \
    {                                                                                                        \
        .rc = {TILE_TABLE_ROW(name, 1), TILE_TABLE_ROW(name, 2), TILE_TABLE_ROW(name, 3), TILE_TABLE_ROW(name, 4)}, \
        .r1 = {name##_1x1, name##_2x1, name##_3x1, name##_4x1, name##_5x1, name##_6x1, name##_7x1, name##_8x1},     \
    }

TILE_ALL(tile_q4_0, 0)
TILE_ALL(tile_q8_0, 1)

static const struct tile_set tiles_q4_0 = TILE_TABLE(tile_q4_0);
static const struct tile_set tiles_q8_0 = TILE_TABLE(tile_q8_0);

/* Covers n_rows x n_cols with tiles, rows outermost so that a tile's weight rows stay in cache while
 * every activation row passes. */
static void gemm_tiles(const struct tile_set *tiles, int64_t k, const void *w, size_t w_row, int64_t n_rows,
                       const void *x, size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const int64_t nb = k / AE_QK;
    const uint8_t *w8 = w, *x8 = x;
    if (n_cols == 1) {
        for (int64_t r0 = 0; r0 < n_rows; r0 += TILE_R1) {
            const int R = n_rows - r0 < TILE_R1 ? (int)(n_rows - r0) : TILE_R1;
            tiles->r1[R - 1](nb, w8 + (size_t)r0 * w_row, w_row, x8, x_row, y + r0, y_stride);
        }
        return;
    }
    for (int64_t r0 = 0; r0 < n_rows; r0 += TILE_R) {
        const int R = n_rows - r0 < TILE_R ? (int)(n_rows - r0) : TILE_R;
        for (int64_t c0 = 0; c0 < n_cols; c0 += TILE_C) {
            const int C = n_cols - c0 < TILE_C ? (int)(n_cols - c0) : TILE_C;
            tiles->rc[R - 1][C - 1](nb, w8 + (size_t)r0 * w_row, w_row, x8 + (size_t)c0 * x_row, x_row,
                                    y + c0 * y_stride + r0, y_stride);
        }
    }
}

/* ---- F16 ------------------------------------------------------------------------------------------ */

/* F16 tiles: value i of a row goes to lane i % 32 as in the scalar code; lanes 0-15 live in one
 * register and 16-31 in another. fp16 x fp16 is exact in f32, so the FMA rounds once, like the scalar
 * product and sum. A last part shorter than 32 values changes only its own lanes. */
#define F16_TILE 3 /* rows and columns of a prefill tile: 18 accumulators */

struct f16_acc {
    __m512 lo[F16_TILE][TILE_R1], hi[F16_TILE][TILE_R1];
};

AVX512_INLINE __m512 load_f16x16(const uint16_t *p, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* 32 values from i on (fewer at the end: masks mlo, mhi) of R weight rows and C activation rows. */
AVX512_INLINE void f16_step(struct f16_acc *a, int R, int C, const uint16_t *w, size_t w_row, const uint16_t *x,
                            size_t x_row, int64_t i, __mmask16 mlo, __mmask16 mhi)
{
    __m512 xlo[F16_TILE], xhi[F16_TILE];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        xlo[c] = load_f16x16(x + c * x_row + i, mlo);
        xhi[c] = load_f16x16(x + c * x_row + i + 16, mhi);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint16_t *wr = w + r * w_row + i;
        _mm_prefetch((const char *)wr + PREFETCH_BYTES, _MM_HINT_T0);
        const __m512 wlo = load_f16x16(wr, mlo), whi = load_f16x16(wr + 16, mhi);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            a->lo[c][r] = _mm512_mask3_fmadd_ps(wlo, xlo[c], a->lo[c][r], mlo);
            a->hi[c][r] = _mm512_mask3_fmadd_ps(whi, xhi[c], a->hi[c][r], mhi);
        }
    }
}

/* The scalar lanes32_finish: v[l] = (a[l] + a[l+8]) + (a[l+16] + a[l+24]), then hsum8(v). */
AVX512_INLINE float f16_finish(__m512 lo, __m512 hi)
{
    const __m256 v = _mm256_add_ps(halves_sum(lo), halves_sum(hi));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

/* w_row and x_row in values here. */
AVX512_INLINE void tile_f16(int R, int C, int64_t k, const uint16_t *w, size_t w_row, const uint16_t *x, size_t x_row,
                            float *y, int64_t y_stride)
{
    struct f16_acc a;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            a.lo[c][r] = a.hi[c][r] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32)
        f16_step(&a, R, C, w, w_row, x, x_row, i, 0xffff, 0xffff);
    if (i < k) {
        const int64_t left = k - i;
        const __mmask16 mlo = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        const __mmask16 mhi = left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        f16_step(&a, R, C, w, w_row, x, x_row, i, mlo, mhi);
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            y[c * y_stride + r] = f16_finish(a.lo[c][r], a.hi[c][r]);
}

typedef void (*f16_tile_fn)(int64_t k, const uint16_t *w, size_t w_row, const uint16_t *x, size_t x_row, float *y,
                            int64_t y_stride);

#define F16_FN(R, C)                                                                                            \
    AVX512_FN static void tile_f16_##R##x##C(int64_t k, const uint16_t *w, size_t w_row, const uint16_t *x,      \
                                             size_t x_row, float *y, int64_t y_stride)                         \
    {                                                                                                           \
        tile_f16(R, C, k, w, w_row, x, x_row, y, y_stride);                                                     \
    }
F16_FN(1, 1) F16_FN(1, 2) F16_FN(1, 3) F16_FN(2, 1) F16_FN(2, 2) F16_FN(2, 3) F16_FN(3, 1) F16_FN(3, 2) F16_FN(3, 3)
F16_FN(4, 1) F16_FN(5, 1) F16_FN(6, 1) F16_FN(7, 1) F16_FN(8, 1)

static const f16_tile_fn f16_tiles[F16_TILE][F16_TILE] = {
    {tile_f16_1x1, tile_f16_1x2, tile_f16_1x3},
    {tile_f16_2x1, tile_f16_2x2, tile_f16_2x3},
    {tile_f16_3x1, tile_f16_3x2, tile_f16_3x3},
};
static const f16_tile_fn f16_tiles_r1[TILE_R1] = {tile_f16_1x1, tile_f16_2x1, tile_f16_3x1, tile_f16_4x1,
                                                  tile_f16_5x1, tile_f16_6x1, tile_f16_7x1, tile_f16_8x1};

static void gemm_f16(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                     int64_t n_cols, float *y, int64_t y_stride)
{
    const uint16_t *w16 = w, *x16 = x;
    const size_t wr = w_row / 2, xr = x_row / 2;
    if (n_cols == 1) {
        for (int64_t r0 = 0; r0 < n_rows; r0 += TILE_R1) {
            const int R = n_rows - r0 < TILE_R1 ? (int)(n_rows - r0) : TILE_R1;
            f16_tiles_r1[R - 1](k, w16 + r0 * wr, wr, x16, xr, y + r0, y_stride);
        }
        return;
    }
    for (int64_t r0 = 0; r0 < n_rows; r0 += F16_TILE) {
        const int R = n_rows - r0 < F16_TILE ? (int)(n_rows - r0) : F16_TILE;
        for (int64_t c0 = 0; c0 < n_cols; c0 += F16_TILE) {
            const int C = n_cols - c0 < F16_TILE ? (int)(n_cols - c0) : F16_TILE;
            f16_tiles[R - 1][C - 1](k, w16 + r0 * wr, wr, x16 + c0 * xr, xr, y + c0 * y_stride + r0, y_stride);
        }
    }
}

static void dot_f16(int64_t k, const void *w, const void *x, float *out)
{
    tile_f16_1x1(k, w, 0, x, 0, out, 0);
}

static void gemm_q4_0(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                      int64_t n_cols, float *y, int64_t y_stride)
{
    gemm_tiles(&tiles_q4_0, k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);
}

/* A single activation row of Q8_0 weights goes to the AVX2 row dot, which streams the weights as fast
 * (the product is bound by memory) with fewer instructions. */
static void gemm_q8_0(int64_t k, const void *w, size_t w_row, int64_t n_rows, const void *x, size_t x_row,
                      int64_t n_cols, float *y, int64_t y_stride)
{
    if (n_cols == 1) {
        const ae_vec_dot_fn dot = ae_kernels_avx2()->vec_dot[AE_TYPE_Q8_0];
        for (int64_t r = 0; r < n_rows; r++)
            dot(k, (const uint8_t *)w + (size_t)r * w_row, x, &y[r]);
        return;
    }
    gemm_tiles(&tiles_q8_0, k, w, w_row, n_rows, x, x_row, n_cols, y, y_stride);
}

static void dot_q4_0(int64_t k, const void *w, const void *x, float *out)
{
    tile_q4_0_1x1(k / AE_QK, w, 0, x, 0, out, 0);
}

static const struct ae_kernel_set avx512_set = {
    .name = "avx512",
    .vec_dot =
        {
            [AE_TYPE_F16] = dot_f16,
            [AE_TYPE_Q4_0] = dot_q4_0,
        },
    .gemm =
        {
            [AE_TYPE_F16] = gemm_f16,
            [AE_TYPE_Q4_0] = gemm_q4_0,
            [AE_TYPE_Q8_0] = gemm_q8_0,
        },
};

const struct ae_kernel_set *ae_kernels_avx512(void)
{
    return &avx512_set;
}

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int kernels_matmul_avx512_not_built;

#endif
