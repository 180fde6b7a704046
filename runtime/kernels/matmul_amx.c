/* AMX kernels for the matmul's prefill: Q4_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights in the x16
 * layout, chosen at run time (cpu.c) when the CPU has AMX-TILE and AMX-INT8 and the OS lets the process
 * use them.
 *
 * An AMX tile multiply (tdpbssd) adds, for 16 activation rows by 16 weight rows, the exact int32 sums of
 * 4-byte products over up to 64 bytes. With K = 32 bytes it gives one block's integer sums for a whole
 * 16 x 16 tile of outputs at once: the A tile is 16 activation rows' quants of block b (the q8a blocks'
 * first 32 bytes, one row per activation row), the B tile is the weight group's block b in AMX's VNNI
 * format, which is exactly the x16 layout's chunks (row j of B: 4 bytes of each of the 16 weight rows).
 * Q8_0's chunks are loaded as they are; Q4_0's nibbles are unpacked once per group into signed bytes
 * (q - 8) and reused by every activation row. The block sums then take the canonical float step of
 * docs/kernels.md in AVX-512 registers: acc = fmaf((float)isum, dw * dx, acc), blocks in order, one
 * accumulator register per activation row of the tile, so every output is the scalar reference's,
 * bit for bit.
 *
 * Few activation rows (decode) do not fill a tile; below AMX_MIN_COLS rows the AVX-512 kernels run.
 * Types without a kernel here use the AVX-512 ones. On other hosts this file compiles to nothing.
 */
#if defined(__x86_64__)

#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "gemm_levels.h"
#include "x16_avx512.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define AMX_TARGET "amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
#define AMX_FN __attribute__((target(AMX_TARGET)))
#define AMX_INLINE __attribute__((target(AMX_TARGET), always_inline)) static inline

/* Activation rows below which a tile would be mostly empty. */
#define AMX_MIN_COLS 8
/* Weight blocks whose B tiles are unpacked at a time (32 KiB of Q4_0 tiles). */
#define AMX_KCHUNK 64
/* Activation rows per pass over a group (their accumulators wait in a buffer between chunks). */
#define AMX_MAX_COLS 256

/* The tile configuration (palette 1): tmm0 = C (rows x 64 bytes of int32), tmm1 = A (rows x 32 bytes),
 * tmm2 = B (8 rows x 64 bytes). */
struct tile_config {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

AMX_INLINE void tiles_configure(int rows)
{
    struct tile_config c __attribute__((aligned(64)));
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.colsb[0] = 64;
    c.rows[0] = (uint8_t)rows;
    c.colsb[1] = 32;
    c.rows[1] = (uint8_t)rows;
    c.colsb[2] = 64;
    c.rows[2] = 8;
    _tile_loadconfig(&c);
}

/* B tiles of blocks b0..b0+n-1 of one group block run (stride gb) as signed bytes, and the 16 rows'
 * scales per block. */
AMX_INLINE void unpack_q4_0(const uint8_t *g, size_t gb, int n, int8_t (*bt)[8][64], float (*dw)[16])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    for (int b = 0; b < n; b++, g += gb) {
        const struct ae_x16_q4_0 *q = (const struct ae_x16_q4_0 *)g;
        _mm512_store_ps(dw[b], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)q->d)));
        #pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i raw = _mm512_loadu_si512(q->qs[j]);
            _mm512_store_si512(bt[b][j], _mm512_sub_epi8(_mm512_and_si512(raw, m4), eight));
            _mm512_store_si512(bt[b][4 + j], _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(raw, 4), m4), eight));
        }
    }
}

/* acc[m] for activation rows m < mt of one tile, over blocks b0..b0+n-1: A from x (row stride x_row),
 * B from bt (unpacked) or straight from the group blocks (Q8_0, stride gb). */
AMX_INLINE void tile_blocks(int mt, const uint8_t *x, size_t x_row, int64_t b0, int n, const int8_t (*bt)[8][64],
                            const uint8_t *g, size_t gb, const float (*dw)[16], __m512 acc[16])
{
    int32_t c[16][16] __attribute__((aligned(64)));
    for (int b = 0; b < n; b++) {
        const uint8_t *xb = x + (size_t)(b0 + b) * sizeof(struct ae_block_q8a);
        _tile_zero(0);
        _tile_loadd(1, xb, (long)x_row);
        if (bt)
            _tile_loadd(2, bt[b], 64);
        else
            _tile_loadd(2, g + (size_t)b * gb + offsetof(struct ae_x16_q8_0, qs), 64);
        _tile_dpbssd(0, 1, 2);
        _tile_stored(0, c, 64);
        const __m512 d = _mm512_load_ps(dw[b]);
        #pragma GCC unroll 16
        for (int m = 0; m < mt; m++) {
            const float dx = ((const struct ae_block_q8a *)(xb + (size_t)m * x_row))->d;
            const __m512 isum = _mm512_cvtepi32_ps(_mm512_load_si512(c[m]));
            acc[m] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc[m]);
        }
    }
}

/* Full tiles of 16 activation rows: the same, with the row loop unrolled. */
AMX_INLINE void tile_blocks16(const uint8_t *x, size_t x_row, int64_t b0, int n, const int8_t (*bt)[8][64],
                              const uint8_t *g, size_t gb, const float (*dw)[16], __m512 acc[16])
{
    int32_t c[16][16] __attribute__((aligned(64)));
    for (int b = 0; b < n; b++) {
        const uint8_t *xb = x + (size_t)(b0 + b) * sizeof(struct ae_block_q8a);
        _tile_zero(0);
        _tile_loadd(1, xb, (long)x_row);
        if (bt)
            _tile_loadd(2, bt[b], 64);
        else
            _tile_loadd(2, g + (size_t)b * gb + offsetof(struct ae_x16_q8_0, qs), 64);
        _tile_dpbssd(0, 1, 2);
        _tile_stored(0, c, 64);
        const __m512 d = _mm512_load_ps(dw[b]);
#pragma GCC unroll 16
        for (int m = 0; m < 16; m++) {
            const float dx = ((const struct ae_block_q8a *)(xb + (size_t)m * x_row))->d;
            const __m512 isum = _mm512_cvtepi32_ps(_mm512_load_si512(c[m]));
            acc[m] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc[m]);
        }
    }
}

/* Q8_0: the scales of a run of group blocks. */
AMX_INLINE void scales_q8_0(const uint8_t *g, size_t gb, int n, float (*dw)[16])
{
    for (int b = 0; b < n; b++, g += gb)
        _mm512_store_ps(dw[b], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g)));
}

/* The finished accumulators of one group (weight rows r0.., n_rows in all) for n_cols activation rows:
 * y[c][r0 + r] for the group's rows below n_rows. */
AMX_INLINE void group_store(const float (*accs)[16], int64_t n_cols, int64_t r0, int64_t n_rows, float *y,
                            int64_t y_stride)
{
    const int nr = n_rows - r0 < 16 ? (int)(n_rows - r0) : 16;
    for (int64_t c = 0; c < n_cols; c++)
        _mm512_mask_storeu_ps(y + c * y_stride + r0, (__mmask16)((1u << nr) - 1), _mm512_load_ps(accs[c]));
}

AMX_INLINE void gemm_amx32(uint32_t type, int64_t k, const void *w, size_t ws, int64_t n_rows, const void *x,
                           size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const int64_t nb = k / AE_QK;
    const size_t gb = type == AE_TYPE_Q4_0 ? sizeof(struct ae_x16_q4_0) : sizeof(struct ae_x16_q8_0);
    int8_t bt[AMX_KCHUNK][8][64] __attribute__((aligned(64)));
    float dw[AMX_KCHUNK][16] __attribute__((aligned(64)));
    float accs[AMX_MAX_COLS][16] __attribute__((aligned(64)));
    int configured = 16;
    tiles_configure(16);
    for (int64_t r0 = 0; r0 < n_rows; r0 += AE_X16_ROWS) {
        const uint8_t *grp = (const uint8_t *)w + (size_t)(r0 / AE_X16_ROWS) * ws;
        for (int64_t b0 = 0; b0 < nb; b0 += AMX_KCHUNK) {
            const int n = nb - b0 < AMX_KCHUNK ? (int)(nb - b0) : AMX_KCHUNK;
            const uint8_t *g = grp + (size_t)b0 * gb;
            if (type == AE_TYPE_Q4_0)
                unpack_q4_0(g, gb, n, bt, dw);
            else
                scales_q8_0(g, gb, n, dw);
            for (int64_t c0 = 0; c0 < n_cols; c0 += 16) {
                const int mt = n_cols - c0 < 16 ? (int)(n_cols - c0) : 16;
                __m512 acc[16];
                #pragma GCC unroll 16
                for (int m = 0; m < 16; m++)
                    acc[m] = b0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(accs[c0 + m]);
                const uint8_t *xt = (const uint8_t *)x + (size_t)c0 * x_row;
                if (mt != configured) {
                    tiles_configure(mt);
                    configured = mt;
                }
                const int8_t(*b)[8][64] = type == AE_TYPE_Q4_0 ? (const int8_t(*)[8][64])bt : NULL;
                if (mt == 16)
                    tile_blocks16(xt, x_row, b0, n, b, g, gb, (const float(*)[16])dw, acc);
                else
                    tile_blocks(mt, xt, x_row, b0, n, b, g, gb, (const float(*)[16])dw, acc);
                #pragma GCC unroll 16
                for (int m = 0; m < 16; m++)
                    _mm512_store_ps(accs[c0 + m], acc[m]);
            }
        }
        group_store((const float(*)[16])accs, n_cols, r0, n_rows, y, y_stride);
    }
}

/* A type's kernel: AMX for AMX_MIN_COLS activation rows or more, in passes of at most AMX_MAX_COLS; the
 * AVX-512 kernel for fewer. The tiles are released after each pass. */
#define AMX_GEMM(t, T, kernel)                                                                                    \
    AMX_FN static void amx_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,          \
                               int64_t nc, float *y, int64_t ys)                                                  \
    {                                                                                                             \
        kernel(AE_TYPE_##T, k, w, ws, nr, x, xr, nc, y, ys);                                                      \
        _tile_release();                                                                                          \
    }                                                                                                             \
    static void gemm_x16_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,            \
                             int64_t nc, float *y, int64_t ys)                                                    \
    {                                                                                                             \
        for (int64_t c = 0; c < nc; c += AMX_MAX_COLS) {                                                          \
            const int64_t n = nc - c < AMX_MAX_COLS ? nc - c : AMX_MAX_COLS;                                      \
            if (n < AMX_MIN_COLS)                                                                                 \
                ae_gemm_avx512_##t.gemm[AE_LAYOUT_X16](k, w, ws, nr, (const uint8_t *)x + c * xr, xr, n,          \
                                                       y + c * ys, ys);                                           \
            else                                                                                                  \
                amx_##t(k, w, ws, nr, (const uint8_t *)x + c * xr, xr, n, y + c * ys, ys);                         \
        }                                                                                                         \
    }
AMX_GEMM(q4_0, Q4_0, gemm_amx32)
AMX_GEMM(q8_0, Q8_0, gemm_amx32)

/* ---- K-quants -------------------------------------------------------------------------------------- */

/* Q4_K, Q5_K (groups of 32), Q2_K, Q3_K and Q6_K (groups of 16): one tile multiply per group gives the
 * group's exact integer sums for 16 activation rows by 16 weight rows (B: the group's values as signed
 * bytes, Q3_K's as q - 4 and Q6_K's as q - 32); they are scaled by the rows' group scales (vpmulld) and
 * summed into the super-block's isum. The mins term of Q2_K/Q4_K/Q5_K is a tile multiply too: msum = sum
 * over the super-block's values of x * the min of the value's group, with the mins repeated over their
 * groups' values in B. Then the canonical float steps per super-block. */

/* Super-blocks unpacked at a time. */
#define AMX_KSB 4

/* One super-block of one group of 16 weight rows, unpacked. */
struct kpack {
    int8_t b[4096] __attribute__((aligned(64))); /* per group: its B tile (groups of 32: 8 x 64, of 16: 4 x 64) */
    int8_t bmin[4][16][64];                      /* Q2_K/Q4_K/Q5_K: the mins' B tiles, 64 values each */
    int32_t sc[16][16];                          /* per group: the 16 rows' scales */
    float d[16], dmin[16];
};

AMX_INLINE void kpack_q45(uint32_t type, const uint8_t *g, struct kpack *k)
{
    const struct ae_x16_q4_k *q4 = (const struct ae_x16_q4_k *)g;
    const struct ae_x16_q5_k *q5 = (const struct ae_x16_q5_k *)g;
    const uint8_t *qs = type == AE_TYPE_Q4_K ? q4->qs[0][0] : q5->qs[0][0];
    const __m512i m0f = _mm512_set1_epi8(0x0f), m10 = _mm512_set1_epi8(0x10);
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i raw = _mm512_loadu_si512(qs + 64 * (8 * h + j));
            __m512i lo = _mm512_and_si512(raw, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m0f);
            if (type == AE_TYPE_Q5_K) { /* the fifth bit of group 2h is bit 2h of qh, of group 2h + 1 bit 2h + 1 */
                const __m512i qh = _mm512_loadu_si512(q5->qh[j]);
                const __m512i bl = 2 * h <= 4 ? _mm512_slli_epi16(qh, 4 - 2 * h) : _mm512_srli_epi16(qh, 2 * h - 4);
                const __m512i bh = 2 * h + 1 <= 4 ? _mm512_slli_epi16(qh, 3 - 2 * h) : _mm512_srli_epi16(qh, 2 * h - 3);
                lo = _mm512_or_si512(lo, _mm512_and_si512(bl, m10));
                hi = _mm512_or_si512(hi, _mm512_and_si512(bh, m10));
            }
            _mm512_store_si512(k->b + 512 * (2 * h) + 64 * j, lo);
            _mm512_store_si512(k->b + 512 * (2 * h + 1) + 64 * j, hi);
        }
    struct kscales sc;
    kscales_q45(type == AE_TYPE_Q4_K ? q4->scales[0] : q5->scales[0], &sc);
    const __m512i spread = _mm512_set4_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0); /* byte 0 of each lane, 4 times */
#pragma GCC unroll 8
    for (int gi = 0; gi < 8; gi++) {
        _mm512_store_si512(k->sc[gi], sc.sc[gi]);
        const __m512i m4 = _mm512_shuffle_epi8(_mm512_and_si512(sc.mp[gi], _mm512_set1_epi32(0xff)), spread);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) /* values 32 gi .. 32 gi + 31: B rows 8 (gi % 2) .. of 64-value chunk gi / 2 */
            _mm512_store_si512(k->bmin[gi / 2][8 * (gi % 2) + r], m4);
    }
    _mm512_store_ps(k->d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)q4->d)));
    _mm512_store_ps(k->dmin, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)q4->dmin)));
}

AMX_INLINE void kpack_q6(const uint8_t *g, struct kpack *k)
{
    const struct ae_x16_q6_k *q = (const struct ae_x16_q6_k *)g;
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30), b32 = _mm512_set1_epi8(32);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i la = _mm512_loadu_si512(q->ql[16 * h + j]), lb = _mm512_loadu_si512(q->ql[16 * h + 8 + j]);
            const __m512i qh = _mm512_loadu_si512(q->qh[8 * h + j]);
            __m512i u[4]; /* values 128h + 32s + 4j.. */
            u[0] = _mm512_or_si512(_mm512_and_si512(la, m0f), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
            u[1] = _mm512_or_si512(_mm512_and_si512(lb, m0f), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30));
            u[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(la, 4), m0f), _mm512_and_si512(qh, m30));
            u[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lb, 4), m0f),
                                   _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) { /* group 8h + 2s + j / 4, its B row j % 4 */
                const int gg = 8 * h + 2 * s + j / 4;
                _mm512_store_si512(k->b + 256 * gg + 64 * (j % 4), _mm512_sub_epi8(u[s], b32));
            }
        }
    struct kscales sc;
    kscales_q6(q->scales[0], &sc);
#pragma GCC unroll 16
    for (int gi = 0; gi < 16; gi++)
        _mm512_store_si512(k->sc[gi], sc.sc[gi]);
    _mm512_store_ps(k->d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)q->d)));
}

/* Q2_K and Q3_K: value 128h + 32s + 4j + i is in bits 2s, 2s + 1 of byte i of qs chunk 8h + j (Q3_K: less
 * 4 unless bit 4h + s of hmask chunk j is set), in group 8h + 2s + j / 4, B row j % 4. */
AMX_INLINE void kpack_q23(uint32_t type, const uint8_t *g, struct kpack *k)
{
    const struct ae_x16_q2_k *q2 = (const struct ae_x16_q2_k *)g;
    const struct ae_x16_q3_k *q3 = (const struct ae_x16_q3_k *)g;
    const uint8_t *qs = type == AE_TYPE_Q2_K ? q2->qs[0][0] : q3->qs[0][0];
    const __m512i m3 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(4);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i raw = _mm512_loadu_si512(qs + 64 * (8 * h + j));
            const __m512i hm = type == AE_TYPE_Q3_K ? _mm512_loadu_si512(q3->hmask[j]) : _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                __m512i u = _mm512_and_si512(_mm512_srli_epi16(raw, 2 * s), m3);
                if (type == AE_TYPE_Q3_K) {
                    const int b = 4 * h + s; /* to bit 2 */
                    const __m512i t = b >= 2 ? _mm512_srli_epi16(hm, b - 2) : _mm512_slli_epi16(hm, 2 - b);
                    u = _mm512_sub_epi8(_mm512_or_si512(u, _mm512_and_si512(t, m4)), m4);
                }
                _mm512_store_si512(k->b + 256 * (8 * h + 2 * s + j / 4) + 64 * (j % 4), u);
            }
        }
    struct kscales sc;
    if (type == AE_TYPE_Q2_K) {
        kscales_q2(q2->scales[0], &sc);
        const __m512i spread = _mm512_set4_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0); /* byte 0 of each lane, 4 times */
#pragma GCC unroll 16
        for (int gi = 0; gi < 16; gi++) {
            /* values 16 gi .. 16 gi + 15: B rows 4 (gi % 4) .. of 64-value chunk gi / 4 */
            const __m512i m = _mm512_srli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q2->scales[gi])), 4);
            const __m512i m4b = _mm512_shuffle_epi8(m, spread);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                _mm512_store_si512(k->bmin[gi / 4][4 * (gi % 4) + r], m4b);
        }
        _mm512_store_ps(k->dmin, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)q2->dmin)));
    } else {
        kscales_q3(q3->scales[0], &sc);
    }
#pragma GCC unroll 16
    for (int gi = 0; gi < 16; gi++)
        _mm512_store_si512(k->sc[gi], sc.sc[gi]);
    _mm512_store_ps(k->d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g)));
}

/* The tiles: tmm0 C, tmm1 a group's A (rows x gbytes), tmm2 its B, tmm3 A of 64 values, tmm4 the mins'
 * B, tmm5 the mins' C. */
AMX_INLINE void ktiles_configure(int rows, int gbytes)
{
    struct tile_config c __attribute__((aligned(64)));
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.colsb[0] = 64, c.rows[0] = (uint8_t)rows;
    c.colsb[1] = (uint16_t)gbytes, c.rows[1] = (uint8_t)rows;
    c.colsb[2] = 64, c.rows[2] = (uint8_t)(gbytes / 4);
    c.colsb[3] = 64, c.rows[3] = (uint8_t)rows;
    c.colsb[4] = 64, c.rows[4] = 16;
    c.colsb[5] = 64, c.rows[5] = (uint8_t)rows;
    _tile_loadconfig(&c);
}

/* One super-block of one token tile (mt rows at x, stride x_row; the super-block's Q8_K blocks at
 * x + sb * sizeof(struct ae_block_q8_k)) with one unpacked group: accs[m] takes its canonical steps. */
AMX_INLINE void ktile_sb(uint32_t type, int mt, const uint8_t *x, size_t x_row, int64_t sb, const struct kpack *k,
                         float (*accs)[16])
{
    const bool g16 = type == AE_TYPE_Q2_K || type == AE_TYPE_Q3_K || type == AE_TYPE_Q6_K;
    const bool mins = type == AE_TYPE_Q2_K || type == AE_TYPE_Q4_K || type == AE_TYPE_Q5_K;
    const int groups = g16 ? 16 : 8, gbytes = g16 ? 16 : 32;
    const uint8_t *xb = x + (size_t)sb * sizeof(struct ae_block_q8_k);
    const uint8_t *xs = xb + offsetof(struct ae_block_q8_k, qs);
    int32_t c[16][16] __attribute__((aligned(64)));
    __m512i isum[16];
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++)
        isum[m] = _mm512_setzero_si512();
    for (int gi = 0; gi < groups; gi++) {
        _tile_zero(0);
        _tile_loadd(1, xs + gbytes * gi, (long)x_row);
        _tile_loadd(2, k->b + (g16 ? 256 : 512) * gi, 64);
        _tile_dpbssd(0, 1, 2);
        _tile_stored(0, c, 64);
        const __m512i sc = _mm512_load_si512(k->sc[gi]);
#pragma GCC unroll 16
        for (int m = 0; m < 16; m++)
            if (m < mt)
                isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(_mm512_load_si512(c[m]), sc));
    }
    int32_t cm[16][16] __attribute__((aligned(64)));
    if (mins) {
        _tile_zero(5);
#pragma GCC unroll 4
        for (int cc = 0; cc < 4; cc++) {
            _tile_loadd(3, xs + 64 * cc, (long)x_row);
            _tile_loadd(4, k->bmin[cc], 64);
            _tile_dpbssd(5, 3, 4);
        }
        _tile_stored(5, cm, 64);
    }
    const __m512 d = _mm512_load_ps(k->d), dmin = _mm512_load_ps(k->dmin);
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) {
        if (m >= mt)
            continue;
        const float dx = ((const struct ae_block_q8_k *)(xb + (size_t)m * x_row))->d;
        __m512 acc = _mm512_load_ps(accs[m]);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc);
        if (mins) {
            const __m512 nm = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_load_si512(cm[m]))),
                                                                   _mm512_set1_epi32(INT32_MIN))); /* -(float)msum */
            acc = _mm512_fmadd_ps(nm, _mm512_mul_ps(dmin, _mm512_set1_ps(dx)), acc);
        }
        _mm512_store_ps(accs[m], acc);
    }
}

AMX_INLINE void gemm_amx_k(uint32_t type, int64_t k, const void *w, size_t ws, int64_t n_rows, const void *x,
                           size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const int64_t nb = k / AE_QK_K;
    const int gbytes = type == AE_TYPE_Q4_K || type == AE_TYPE_Q5_K ? 32 : 16; /* a group's A tile row */
    const size_t gb = type == AE_TYPE_Q2_K ? sizeof(struct ae_x16_q2_k)
                    : type == AE_TYPE_Q3_K ? sizeof(struct ae_x16_q3_k)
                    : type == AE_TYPE_Q4_K ? sizeof(struct ae_x16_q4_k)
                    : type == AE_TYPE_Q5_K ? sizeof(struct ae_x16_q5_k) : sizeof(struct ae_x16_q6_k);
    struct kpack kp[AMX_KSB];
    float accs[AMX_MAX_COLS][16] __attribute__((aligned(64)));
    int configured = 16;
    ktiles_configure(16, gbytes);
    for (int64_t r0 = 0; r0 < n_rows; r0 += AE_X16_ROWS) {
        const uint8_t *grp = (const uint8_t *)w + (size_t)(r0 / AE_X16_ROWS) * ws;
        memset(accs, 0, (size_t)n_cols * sizeof accs[0]);
        for (int64_t b0 = 0; b0 < nb; b0 += AMX_KSB) {
            const int n = nb - b0 < AMX_KSB ? (int)(nb - b0) : AMX_KSB;
            for (int i = 0; i < n; i++) {
                if (type == AE_TYPE_Q6_K)
                    kpack_q6(grp + (size_t)(b0 + i) * gb, &kp[i]);
                else if (type == AE_TYPE_Q2_K || type == AE_TYPE_Q3_K)
                    kpack_q23(type, grp + (size_t)(b0 + i) * gb, &kp[i]);
                else
                    kpack_q45(type, grp + (size_t)(b0 + i) * gb, &kp[i]);
            }
            for (int64_t c0 = 0; c0 < n_cols; c0 += 16) {
                const int mt = n_cols - c0 < 16 ? (int)(n_cols - c0) : 16;
                if (mt != configured) {
                    ktiles_configure(mt, gbytes);
                    configured = mt;
                }
                const uint8_t *xt = (const uint8_t *)x + (size_t)c0 * x_row;
                for (int i = 0; i < n; i++)
                    ktile_sb(type, mt, xt, x_row, b0 + i, &kp[i], accs + c0);
            }
        }
        group_store((const float(*)[16])accs, n_cols, r0, n_rows, y, y_stride);
    }
}

AMX_GEMM(q2_k, Q2_K, gemm_amx_k)
AMX_GEMM(q3_k, Q3_K, gemm_amx_k)
AMX_GEMM(q4_k, Q4_K, gemm_amx_k)
AMX_GEMM(q5_k, Q5_K, gemm_amx_k)
AMX_GEMM(q6_k, Q6_K, gemm_amx_k)

/* The AMX level's kernels: x16 Q4_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K. */
AE_GEMM_LEVEL(amx, q4_0, NULL, gemm_x16_q4_0);
AE_GEMM_LEVEL(amx, q8_0, NULL, gemm_x16_q8_0);
AE_GEMM_LEVEL(amx, q2_k, NULL, gemm_x16_q2_k);
AE_GEMM_LEVEL(amx, q3_k, NULL, gemm_x16_q3_k);
AE_GEMM_LEVEL(amx, q4_k, NULL, gemm_x16_q4_k);
AE_GEMM_LEVEL(amx, q5_k, NULL, gemm_x16_q5_k);
AE_GEMM_LEVEL(amx, q6_k, NULL, gemm_x16_q6_k);

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int kernels_matmul_amx_not_built;

#endif
