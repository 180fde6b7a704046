/* AVX-512 (F, BW, VL, VNNI) kernels for the matmul, chosen at run time (cpu.c) when the CPU has them.
 *
 * The x16 layout is made for this level: a chunk of a group block (4 quant bytes of each of 16 rows) is
 * one 512-bit register whose 32-bit lane r belongs to row r, so vpdpbusd adds 4 exact products to each
 * row's integer block sum, with the 4 activation bytes broadcast from memory. The weights enter as
 * unsigned bytes u = q + bias (Q4_0: the nibble, bias 8; Q5_0: bias 16; Q8_0: q ^ 0x80, bias 128;
 * Q4_1/Q5_1 are unsigned already) and the activation block's negated quant sum brings bias * sum(x)
 * back out, so each lane ends with the exact integer block sum of docs/kernels.md. Then one vector FMA
 * per block adds (float)isum * (dw * dx) to the 16 rows' accumulators, blocks in order: every output is
 * the scalar reference's, bit for bit.
 *
 * A tile is G groups (16 or 32 rows) by C activation rows; the group blocks are unpacked once per tile
 * step and serve all C columns. Decode (one activation row) takes two groups at a time. F32/F16/BF16 in
 * the rows layout keep the canonical 16 lanes in one register; with many activation rows the weights are
 * widened once into f32 panels that 4 x 6 register tiles reuse (see "Panels" below). Types and layouts
 * without a kernel here use the AVX2 ones. On other hosts this file compiles to nothing.
 */
#if defined(__x86_64__)

#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "gemm_levels.h"
#include "prefetch_x86.h"
#include "x16_avx512.h"

#include <immintrin.h>
#include <string.h>

#define AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
#define AVX512_FN __attribute__((target(AVX512_TARGET)))
#define AVX512_INLINE __attribute__((target(AVX512_TARGET), always_inline)) static inline

/* Largest tile: groups and activation rows. */
#define TILE_G 2
#define TILE_C 4

/* Bytes of one x16 group block of a type (a constant once inlined). */
static inline size_t x16_block_bytes(uint32_t type)
{
    switch (type) {
    case AE_TYPE_Q4_0: return sizeof(struct ae_x16_q4_0);
    case AE_TYPE_Q4_1: return sizeof(struct ae_x16_q4_1);
    case AE_TYPE_Q5_0: return sizeof(struct ae_x16_q5_0);
    case AE_TYPE_Q5_1: return sizeof(struct ae_x16_q5_1);
    case AE_TYPE_Q8_0: return sizeof(struct ae_x16_q8_0);
    case AE_TYPE_Q2_K: return sizeof(struct ae_x16_q2_k);
    case AE_TYPE_Q3_K: return sizeof(struct ae_x16_q3_k);
    case AE_TYPE_Q4_K: return sizeof(struct ae_x16_q4_k);
    case AE_TYPE_Q5_K: return sizeof(struct ae_x16_q5_k);
    default: return sizeof(struct ae_x16_q6_k);
    }
}

/* ---- 32-value blocks, x16 layout --------------------------------------------------------------------- */

/* One unpacked group block: u[j] the unsigned values of 4 consecutive values per row (j < 4: chunk j's
 * low nibbles, values 4j..; j >= 4: its high nibbles, values 16 + 4(j - 4)..; Q8_0: chunk j, values
 * 4j..), the rows' scales and minimums. */
struct grp32 {
    __m512i u[8];
    __m512 d, m;
};

/* The activation byte offset of u[j]'s 4 values. */
static inline int x_offset(uint32_t type, int j)
{
    return type == AE_TYPE_Q8_0 ? 4 * j : j < 4 ? 4 * j : 16 + 4 * (j - 4);
}

AVX512_INLINE __m512 load_f16x16(const void *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

AVX512_INLINE void grp32_load(uint32_t type, const uint8_t *g, struct grp32 *o)
{
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    o->d = load_f16x16(g);
    if (has_min)
        o->m = load_f16x16(g + 32);
    if (type == AE_TYPE_Q8_0) {
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            o->u[j] = _mm512_xor_si512(_mm512_loadu_si512(g + 32 + 64 * j), _mm512_set1_epi8((char)0x80));
        return;
    }
    const bool q5 = type == AE_TYPE_Q5_0 || type == AE_TYPE_Q5_1;
    const size_t qs_at = 32 + (has_min ? 32 : 0) + (q5 ? 64 : 0);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i qh = _mm512_setzero_si512();
    if (q5)
        qh = _mm512_loadu_si512(g + qs_at - 64);
    #pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512i raw = _mm512_loadu_si512(g + qs_at + 64 * j);
        o->u[j] = _mm512_and_si512(raw, m4);
        o->u[4 + j] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
        if (q5) {
            /* byte j of each row's word, in all 4 bytes of its lane; bit i marks value 4j+i, bit 4+i value 16+4j+i */
            const __m512i lane = _mm512_set4_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0);
            const __m512i v = _mm512_shuffle_epi8(qh, _mm512_add_epi8(lane, _mm512_set1_epi8((char)j)));
            const __mmask64 lo = _mm512_test_epi8_mask(v, _mm512_set1_epi32(0x08040201));
            const __mmask64 hi = _mm512_test_epi8_mask(v, _mm512_set1_epi32((int)0x80402010u));
            const __m512i m10 = _mm512_set1_epi8(0x10);
            o->u[j] = _mm512_mask_add_epi8(o->u[j], lo, o->u[j], m10);
            o->u[4 + j] = _mm512_mask_add_epi8(o->u[4 + j], hi, o->u[4 + j], m10);
        }
    }
}

/* The exact int32 block sums of the group's 16 rows with activation block xb. */
AVX512_INLINE __m512i grp32_isum(uint32_t type, const struct grp32 *o, const struct ae_block_q8a *xb)
{
    const int shift = type == AE_TYPE_Q4_0 ? 3 : type == AE_TYPE_Q5_0 ? 4 : 7;
    const bool biased = type == AE_TYPE_Q4_0 || type == AE_TYPE_Q5_0 || type == AE_TYPE_Q8_0;
    __m512i a = biased ? _mm512_slli_epi32(_mm512_set1_epi32(xb->neg_sum), shift) : _mm512_setzero_si512();
    __m512i b = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
        int32_t x0, x1;
        memcpy(&x0, xb->qs + x_offset(type, j), 4);
        memcpy(&x1, xb->qs + x_offset(type, j + 1), 4);
        a = _mm512_dpbusd_epi32(a, o->u[j], _mm512_set1_epi32(x0));
        b = _mm512_dpbusd_epi32(b, o->u[j + 1], _mm512_set1_epi32(x1));
    }
    return _mm512_add_epi32(a, b);
}

/* Stores the first n (<= 16) lanes of v. */
AVX512_INLINE void store_rows(float *y, __m512 v, int n)
{
    _mm512_mask_storeu_ps(y, (__mmask16)((1u << n) - 1), v);
}

/* G groups (at w, w + w_stride) by C activation rows over all nb blocks; rows n_rows.. are not stored. */
AVX512_INLINE void tile32(uint32_t type, int G, int C, int64_t nb, const uint8_t *w, size_t w_stride, int n_rows,
                          const uint8_t *x, size_t x_row, float *y, int64_t y_stride)
{
    const size_t gb = x16_block_bytes(type);
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    __m512 acc[TILE_G][TILE_C];
    #pragma GCC unroll 2
    for (int g = 0; g < G; g++)
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            acc[g][c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        struct grp32 o[TILE_G];
        #pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            const uint8_t *src = w + (size_t)g * w_stride + (size_t)b * gb;
            prefetch_block(src + PREFETCH_BLOCKS * gb, gb);
            grp32_load(type, src, &o[g]);
        }
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct ae_block_q8a *xb = (const struct ae_block_q8a *)(x + (size_t)c * x_row) + b;
            const __m512 dx = _mm512_set1_ps(xb->d);
            #pragma GCC unroll 2
            for (int g = 0; g < G; g++) {
                const __m512i isum = grp32_isum(type, &o[g], xb);
                acc[g][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(o[g].d, dx), acc[g][c]);
                if (has_min)
                    acc[g][c] = _mm512_fmadd_ps(o[g].m, _mm512_set1_ps(xb->s), acc[g][c]);
            }
        }
    }
    #pragma GCC unroll 2
    for (int g = 0; g < G; g++) {
        const int n = n_rows - 16 * g < 16 ? n_rows - 16 * g : 16;
        #pragma GCC unroll 8
        for (int c = 0; c < C && n > 0; c++)
            store_rows(y + c * y_stride + 16 * g, acc[g][c], n);
    }
}

typedef void (*tile_fn)(int64_t nb, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x, size_t x_row,
                        float *y, int64_t y_stride);

#define TILE32_FN(t, T, G, C)                                                                                     \
    AVX512_FN static void tile_##t##_##G##x##C(int64_t nb, const uint8_t *w, size_t ws, int n_rows, const uint8_t *x, \
                                               size_t xr, float *y, int64_t ys)                                  \
    {                                                                                                             \
        tile32(AE_TYPE_##T, G, C, nb, w, ws, n_rows, x, xr, y, ys);                                               \
    }
#define TILE32_TYPE(t, T)                                                                                         \
    TILE32_FN(t, T, 1, 1) TILE32_FN(t, T, 1, 2) TILE32_FN(t, T, 1, 3) TILE32_FN(t, T, 1, 4)                       \
    TILE32_FN(t, T, 2, 1) TILE32_FN(t, T, 2, 2) TILE32_FN(t, T, 2, 3) TILE32_FN(t, T, 2, 4)                       \
    static const tile_fn tiles_##t[TILE_G][TILE_C] = {                                                            \
        {tile_##t##_1x1, tile_##t##_1x2, tile_##t##_1x3, tile_##t##_1x4},                                         \
        {tile_##t##_2x1, tile_##t##_2x2, tile_##t##_2x3, tile_##t##_2x4}};                                        \
    static void gemm_x16_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,            \
                             int64_t nc, float *y, int64_t ys)                                                    \
    {                                                                                                             \
        gemm_x16_tiles(tiles_##t, k / AE_QK, w, ws, nr, x, xr, nc, y, ys);                                        \
    }

/* Covers n_rows x n_cols with tiles: pairs of groups, activation rows TILE_C at a time; rows outermost,
 * so that a tile's weights stay in cache while every activation row passes. */
static void gemm_x16_tiles(const tile_fn tiles[TILE_G][TILE_C], int64_t nb, const void *w, size_t w_stride,
                           int64_t n_rows, const void *x, size_t x_row, int64_t n_cols, float *y, int64_t y_stride)
{
    const uint8_t *w8 = w, *x8 = x;
    for (int64_t r = 0; r < n_rows; r += TILE_G * AE_X16_ROWS) {
        const int64_t left = n_rows - r;
        const int G = left > AE_X16_ROWS ? 2 : 1;
        const int rows = left < TILE_G * AE_X16_ROWS ? (int)left : TILE_G * AE_X16_ROWS;
        for (int64_t c = 0; c < n_cols; c += TILE_C) {
            const int C = n_cols - c < TILE_C ? (int)(n_cols - c) : TILE_C;
            tiles[G - 1][C - 1](nb, w8 + (size_t)(r / AE_X16_ROWS) * w_stride, w_stride, rows, x8 + (size_t)c * x_row,
                                x_row, y + c * y_stride + r, y_stride);
        }
    }
}

TILE32_TYPE(q4_0, Q4_0)
TILE32_TYPE(q4_1, Q4_1)
TILE32_TYPE(q5_0, Q5_0)
TILE32_TYPE(q5_1, Q5_1)
TILE32_TYPE(q8_0, Q8_0)

/* ---- K-quants, x16 layout ----------------------------------------------------------------------------- */

/* Columns of a K-quant tile: one group's unpacked sub-block (16 registers) serves them all. */
#define KTILE_C 4

/* The 4 activation bytes at p broadcast to every lane. */
AVX512_INLINE __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Whether a K-quant's groups are 16 values (Q2_K, Q3_K, Q6_K) rather than 32 (Q4_K, Q5_K). */
static inline bool groups_of_16(uint32_t type)
{
    return type == AE_TYPE_Q2_K || type == AE_TYPE_Q3_K || type == AE_TYPE_Q6_K;
}

/* One sub-block of 64 values (Q4_K/Q5_K: h = 0..3, groups 2h and 2h+1) or 128 (Q2_K, Q3_K, Q6_K: h = 0, 1,
 * groups 8h..8h+7) unpacked into u[]: u[j] (and u[8 + j], u[16 + j], u[24 + j] for groups of 16) hold 4
 * values per row. */
AVX512_INLINE void ksub_load(uint32_t type, const uint8_t *g, int h, __m512i u[32])
{
    const __m512i m0f = _mm512_set1_epi8(0x0f);
    if (type == AE_TYPE_Q2_K || type == AE_TYPE_Q3_K) {
        /* u[8s + j] holds values 128h + 32s + 4j..: bits 2s, 2s + 1 of qs chunk 8h + j; Q3_K's as q + 4, with
         * 4 added where bit 4h + s of hmask chunk j is set */
        const uint8_t *qs = type == AE_TYPE_Q2_K ? ((const struct ae_x16_q2_k *)g)->qs[0][0]
                                                 : ((const struct ae_x16_q3_k *)g)->qs[0][0];
        const __m512i m3 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(4);
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i raw = _mm512_loadu_si512(qs + 64 * (8 * h + j));
            __m512i hm = _mm512_setzero_si512();
            if (type == AE_TYPE_Q3_K)
                hm = _mm512_loadu_si512(((const struct ae_x16_q3_k *)g)->hmask[j]);
            #pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                u[8 * s + j] = _mm512_and_si512(_mm512_srli_epi16(raw, 2 * s), m3);
                if (type == AE_TYPE_Q3_K) {
                    const int b = 4 * h + s; /* to bit 2 */
                    const __m512i t = b >= 2 ? _mm512_srli_epi16(hm, b - 2) : _mm512_slli_epi16(hm, 2 - b);
                    u[8 * s + j] = _mm512_or_si512(u[8 * s + j], _mm512_and_si512(t, m4));
                }
            }
        }
        return;
    }
    if (type == AE_TYPE_Q6_K) {
        const struct ae_x16_q6_k *q = (const struct ae_x16_q6_k *)g;
        const __m512i m30 = _mm512_set1_epi8(0x30);
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i la = _mm512_loadu_si512(q->ql[16 * h + j]), lb = _mm512_loadu_si512(q->ql[16 * h + 8 + j]);
            const __m512i qh = _mm512_loadu_si512(q->qh[8 * h + j]);
            u[j] = _mm512_or_si512(_mm512_and_si512(la, m0f), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
            u[8 + j] = _mm512_or_si512(_mm512_and_si512(lb, m0f), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30));
            u[16 + j] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(la, 4), m0f), _mm512_and_si512(qh, m30));
            u[24 + j] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lb, 4), m0f),
                                        _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30));
        }
        return;
    }
    const uint8_t *qs = type == AE_TYPE_Q4_K ? ((const struct ae_x16_q4_k *)g)->qs[0][0]
                                             : ((const struct ae_x16_q5_k *)g)->qs[0][0];
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const __m512i raw = _mm512_loadu_si512(qs + 64 * (8 * h + j));
        u[j] = _mm512_and_si512(raw, m0f);
        u[8 + j] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m0f);
        if (type == AE_TYPE_Q5_K) {
            const __m512i qh = _mm512_loadu_si512(((const struct ae_x16_q5_k *)g)->qh[j]);
            const __m512i m10 = _mm512_set1_epi8(0x10);
            /* the fifth bit of the low values is bit 2h of qh, of the high values bit 2h + 1 */
            const __m512i lo = 2 * h <= 4 ? _mm512_slli_epi16(qh, 4 - 2 * h) : _mm512_srli_epi16(qh, 2 * h - 4);
            const __m512i hi = 2 * h + 1 <= 4 ? _mm512_slli_epi16(qh, 3 - 2 * h) : _mm512_srli_epi16(qh, 2 * h - 3);
            u[j] = _mm512_or_si512(u[j], _mm512_and_si512(lo, m10));
            u[8 + j] = _mm512_or_si512(u[8 + j], _mm512_and_si512(hi, m10));
        }
    }
}

/* isum += the scaled integer dot products of sub-block h of one group with activation row xs (the 256
 * quants of a Q8_K block). */
AVX512_INLINE __m512i ksub_dot(uint32_t type, const __m512i u[32], const struct kscales *sc, int h, const int8_t *xs,
                               __m512i isum)
{
    if (groups_of_16(type)) {
        /* u[8s + j] holds values 128h + 32s + 4j..; group 8h + 2s + j / 4 */
        #pragma GCC unroll 4
        for (int s = 0; s < 4; s++)
            #pragma GCC unroll 2
            for (int half = 0; half < 2; half++) {
                __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
                #pragma GCC unroll 4
                for (int j = 4 * half; j < 4 * half + 4; j += 2) {
                    a = _mm512_dpbusd_epi32(a, u[8 * s + j], bcast4(xs + 128 * h + 32 * s + 4 * j));
                    b = _mm512_dpbusd_epi32(b, u[8 * s + j + 1], bcast4(xs + 128 * h + 32 * s + 4 * j + 4));
                }
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(_mm512_add_epi32(a, b), sc->sc[8 * h + 2 * s + half]));
            }
        return isum;
    }
    /* u[j]: values 64h + 4j.. (group 2h); u[8 + j]: values 64h + 32 + 4j.. (group 2h + 1) */
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
    __m512i b0 = _mm512_setzero_si512(), b1 = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
        a0 = _mm512_dpbusd_epi32(a0, u[j], bcast4(xs + 64 * h + 4 * j));
        a1 = _mm512_dpbusd_epi32(a1, u[j + 1], bcast4(xs + 64 * h + 4 * j + 4));
        b0 = _mm512_dpbusd_epi32(b0, u[8 + j], bcast4(xs + 64 * h + 32 + 4 * j));
        b1 = _mm512_dpbusd_epi32(b1, u[8 + j + 1], bcast4(xs + 64 * h + 32 + 4 * j + 4));
    }
    isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(_mm512_add_epi32(a0, a1), sc->sc[2 * h]));
    return _mm512_add_epi32(isum, _mm512_mullo_epi32(_mm512_add_epi32(b0, b1), sc->sc[2 * h + 1]));
}

/* One group (16 rows at w) by C activation rows of Q8_K blocks, over all nb super-blocks. */
AVX512_INLINE void ktile(uint32_t type, int C, int64_t nb, const uint8_t *w, int n_rows, const uint8_t *x, size_t x_row,
                         float *y, int64_t y_stride)
{
    const size_t gb = x16_block_bytes(type);
    const bool has_min = type == AE_TYPE_Q2_K || type == AE_TYPE_Q4_K || type == AE_TYPE_Q5_K;
    const int subs = groups_of_16(type) ? 2 : 4;
    const int bias_shift = type == AE_TYPE_Q3_K ? 2 : 5; /* Q3_K's values enter as q + 4, Q6_K's as q + 32 */
    __m512 acc[KTILE_C];
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * gb;
        prefetch_block(g + PREFETCH_BLOCKS * gb, gb);
        struct kscales sc;
        __m512 d, dmin = _mm512_setzero_ps();
        if (type == AE_TYPE_Q6_K) {
            kscales_q6(((const struct ae_x16_q6_k *)g)->scales[0], &sc);
            d = load_f16x16(g);
        } else if (type == AE_TYPE_Q2_K) {
            kscales_q2(((const struct ae_x16_q2_k *)g)->scales[0], &sc);
            d = load_f16x16(g);
            dmin = load_f16x16(g + 32);
        } else if (type == AE_TYPE_Q3_K) {
            kscales_q3(((const struct ae_x16_q3_k *)g)->scales[0], &sc);
            d = load_f16x16(g);
        } else {
            kscales_q45(type == AE_TYPE_Q4_K ? ((const struct ae_x16_q4_k *)g)->scales[0]
                                             : ((const struct ae_x16_q5_k *)g)->scales[0], &sc);
            d = load_f16x16(g);
            dmin = load_f16x16(g + 32);
        }
        __m512i isum[KTILE_C], msum[KTILE_C];
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct ae_block_q8_k *xb = (const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b;
            /* Q2_K/Q4_K/Q5_K: msum = sum of m_g * bsums of group g; Q3_K, Q6_K: isum starts at -4 or -32 times
             * the sum of sc_g * bsum_g */
            __m512i t = _mm512_setzero_si512();
            #pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                int32_t pair;
                memcpy(&pair, &xb->bsums[2 * k], 4);
                t = _mm512_add_epi32(t, _mm512_madd_epi16(sc.mp[k], _mm512_set1_epi32(pair)));
            }
            msum[c] = t;
            isum[c] = has_min ? _mm512_setzero_si512()
                              : _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(t, bias_shift));
        }
        #pragma GCC unroll 4
        for (int h = 0; h < subs; h++) {
            __m512i u[32];
            ksub_load(type, g, h, u);
            #pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                const struct ae_block_q8_k *xb = (const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b;
                isum[c] = ksub_dot(type, u, &sc, h, xb->qs, isum[c]);
            }
        }
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct ae_block_q8_k *xb = (const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b;
            const __m512 dx = _mm512_set1_ps(xb->d);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(d, dx), acc[c]);
            if (has_min) {
                const __m512 nm = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_cvtepi32_ps(msum[c])),
                                                                       _mm512_set1_epi32(INT32_MIN))); /* -(float)msum */
                acc[c] = _mm512_fmadd_ps(nm, _mm512_mul_ps(dmin, dx), acc[c]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        store_rows(y + c * y_stride, acc[c], n_rows < 16 ? n_rows : 16);
}

typedef void (*ktile_fn)(int64_t nb, const uint8_t *w, int n_rows, const uint8_t *x, size_t x_row, float *y,
                         int64_t y_stride);

#define KTILE_FN(t, T, C)                                                                                         \
    AVX512_FN static void ktile_##t##_##C(int64_t nb, const uint8_t *w, int n_rows, const uint8_t *x, size_t xr,  \
                                          float *y, int64_t ys)                                                   \
    {                                                                                                             \
        ktile(AE_TYPE_##T, C, nb, w, n_rows, x, xr, y, ys);                                                       \
    }
#define KTILE_TYPE(t, T)                                                                                          \
    KTILE_FN(t, T, 1) KTILE_FN(t, T, 2) KTILE_FN(t, T, 3) KTILE_FN(t, T, 4)                                       \
    static void gemm_x16_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,            \
                             int64_t nc, float *y, int64_t ys)                                                    \
    {                                                                                                             \
        static const ktile_fn tiles[KTILE_C] = {ktile_##t##_1, ktile_##t##_2, ktile_##t##_3, ktile_##t##_4};     \
        for (int64_t r = 0; r < nr; r += AE_X16_ROWS)                                                             \
            for (int64_t c = 0; c < nc; c += KTILE_C) {                                                           \
                const int C = nc - c < KTILE_C ? (int)(nc - c) : KTILE_C;                                         \
                tiles[C - 1](k / AE_QK_K, (const uint8_t *)w + (size_t)(r / AE_X16_ROWS) * ws,                    \
                             nr - r < AE_X16_ROWS ? (int)(nr - r) : AE_X16_ROWS, (const uint8_t *)x + (size_t)c * xr, \
                             xr, y + c * ys + r, ys);                                                             \
            }                                                                                                     \
    }
KTILE_TYPE(q4_k, Q4_K)
KTILE_TYPE(q5_k, Q5_K)
KTILE_TYPE(q6_k, Q6_K)
KTILE_TYPE(q2_k, Q2_K)
KTILE_TYPE(q3_k, Q3_K)

/* ---- F32, F16, BF16, rows layout --------------------------------------------------------------------- */

/* 16 values from p as f32; m masks a last part shorter than 16 (the lanes past it are 0). */
AVX512_INLINE __m512 load16(uint32_t type, const void *p, __mmask16 m)
{
    switch (type) {
    case AE_TYPE_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    case AE_TYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    default:
        return _mm512_maskz_loadu_ps(m, p);
    }
}

/* reduce16 of docs/kernels.md. */
AVX512_INLINE float reduce16(__m512 a)
{
    const __m256 v8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    const __m128 v1 = _mm_add_ss(v2, _mm_movehdup_ps(v2));
    return _mm_cvtss_f32(v1);
}

#define FLOAT_R 4 /* weight rows of a direct tile */
#define FLOAT_C 4 /* activation rows of a direct tile */

/* A direct tile: R weight rows by C activation rows (f32), the weights widened as they are read. Masked
 * lanes of a last short part leave the accumulator as it is. */
AVX512_INLINE void tile_float(uint32_t type, int R, int C, int64_t k, const uint8_t *w, size_t w_row, const uint8_t *x,
                              size_t x_row, float *y, int64_t y_stride)
{
    const size_t es = type == AE_TYPE_F32 ? 4 : 2;
    __m512 acc[FLOAT_C][FLOAT_R];
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[c][r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 m = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
        __m512 xv[FLOAT_C];
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            xv[c] = _mm512_maskz_loadu_ps(m, (const float *)(x + (size_t)c * x_row) + i);
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 wv = load16(type, w + (size_t)r * w_row + (size_t)i * es, m);
            #pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                acc[c][r] = _mm512_mask3_fmadd_ps(wv, xv[c], acc[c][r], m);
        }
    }
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            y[c * y_stride + r] = reduce16(acc[c][r]);
}

typedef void (*float_tile_fn)(int64_t k, const uint8_t *w, size_t w_row, const uint8_t *x, size_t x_row, float *y,
                              int64_t y_stride);

/* Panels. With many activation rows, the weights are widened once into a panel (PANEL_R rows by up to
 * PANEL_K values, f32, in L1), which PANEL_R x PANEL_C register tiles then run over, up to PANEL_COLS
 * activation rows (as many as keep their f32 rows within PANEL_X_BYTES, in L2) before the next panel.
 * The 16-lane accumulators of every output a panel serves wait in memory between panels; each output
 * still gets its terms in the canonical order, K in increasing order. */
#define PANEL_R 4
#define PANEL_C 6 /* 24 accumulators, 4 weight registers, 1 activation register */
#define PANEL_K 512
#define PANEL_COLS 48
#define PANEL_X_BYTES (1 << 20)
#define PANEL_MIN_COLS 8 /* fewer activation rows take the direct tiles */

/* Values k0..k0 + kc of weight rows 0..R-1 widened into p[r * PANEL_K + i]; rows R.. and the values past
 * kc up to a multiple of 16 are zero. */
AVX512_INLINE void panel_load(uint32_t type, int R, int64_t k0, int64_t kc, const uint8_t *w, size_t w_row, float *p)
{
    const size_t es = type == AE_TYPE_F32 ? 4 : 2;
    for (int r = 0; r < PANEL_R; r++)
        for (int64_t i = 0; i < kc; i += 16) {
            const __mmask16 m = kc - i >= 16 ? 0xffff : (__mmask16)((1u << (kc - i)) - 1);
            _mm512_store_ps(p + r * PANEL_K + i,
                            r < R ? load16(type, w + (size_t)r * w_row + (size_t)(k0 + i) * es, m) : _mm512_setzero_ps());
        }
}

/* The register tile: the panel's rows by C activation rows (f32, at x, x_row bytes apart) over values
 * 0..kc. acc[c * PANEL_R + r] holds the accumulators between panels: read unless first, written unless
 * last; after the last panel, y[c * y_stride + r] = the output, for r < R. */
AVX512_INLINE void panel_tile(int C, const float *p, int64_t kc, const uint8_t *x, size_t x_row, __m512 *acc,
                              bool first, bool last, int R, float *y, int64_t y_stride)
{
    __m512 a[PANEL_C][PANEL_R];
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 4
        for (int r = 0; r < PANEL_R; r++)
            a[c][r] = first ? _mm512_setzero_ps() : acc[c * PANEL_R + r];
    int64_t i = 0;
    for (; i + 16 <= kc; i += 16) {
        __m512 wv[PANEL_R];
        #pragma GCC unroll 4
        for (int r = 0; r < PANEL_R; r++)
            wv[r] = _mm512_load_ps(p + r * PANEL_K + i);
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const __m512 xv = _mm512_loadu_ps((const float *)(x + (size_t)c * x_row) + i);
            #pragma GCC unroll 4
            for (int r = 0; r < PANEL_R; r++)
                a[c][r] = _mm512_fmadd_ps(wv[r], xv, a[c][r]);
        }
    }
    if (i < kc) {
        const __mmask16 m = (__mmask16)((1u << (kc - i)) - 1);
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, (const float *)(x + (size_t)c * x_row) + i);
            #pragma GCC unroll 4
            for (int r = 0; r < PANEL_R; r++)
                a[c][r] = _mm512_mask3_fmadd_ps(_mm512_load_ps(p + r * PANEL_K + i), xv, a[c][r], m);
        }
    }
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 4
        for (int r = 0; r < PANEL_R; r++) {
            if (!last)
                acc[c * PANEL_R + r] = a[c][r];
            else if (r < R)
                y[c * y_stride + r] = reduce16(a[c][r]);
        }
}

typedef void (*panel_tile_fn)(const float *p, int64_t kc, const uint8_t *x, size_t x_row, __m512 *acc, bool first,
                              bool last, int R, float *y, int64_t y_stride);

#define PANEL_TILE(C)                                                                                            \
    AVX512_FN static void panel_tile_##C(const float *p, int64_t kc, const uint8_t *x, size_t xr, __m512 *acc,    \
                                         bool first, bool last, int R, float *y, int64_t ys)                     \
    {                                                                                                            \
        panel_tile(C, p, kc, x, xr, acc, first, last, R, y, ys);                                                 \
    }
PANEL_TILE(1) PANEL_TILE(2) PANEL_TILE(3) PANEL_TILE(4) PANEL_TILE(5) PANEL_TILE(6)
static const panel_tile_fn panel_tiles[PANEL_C] = {panel_tile_1, panel_tile_2, panel_tile_3,
                                                   panel_tile_4, panel_tile_5, panel_tile_6};

/* The block kernel of a float type: direct tiles for few activation rows, panels for many. */
AVX512_INLINE void gemm_float(uint32_t type, const float_tile_fn tiles[FLOAT_R][FLOAT_C], int64_t k, const uint8_t *w,
                              size_t ws, int64_t nr, const uint8_t *x, size_t xr, int64_t nc, float *y, int64_t ys)
{
    if (nc < PANEL_MIN_COLS) {
        for (int64_t r = 0; r < nr; r += FLOAT_R)
            for (int64_t c = 0; c < nc; c += FLOAT_C) {
                const int R = nr - r < FLOAT_R ? (int)(nr - r) : FLOAT_R;
                const int C = nc - c < FLOAT_C ? (int)(nc - c) : FLOAT_C;
                tiles[R - 1][C - 1](k, w + (size_t)r * ws, ws, x + (size_t)c * xr, xr, y + c * ys + r, ys);
            }
        return;
    }
    float panel[PANEL_R * PANEL_K] __attribute__((aligned(64)));
    __m512 acc[PANEL_COLS * PANEL_R];
    int64_t cols = PANEL_X_BYTES / ((k + 1) * 4) / PANEL_C * PANEL_C;
    cols = cols < PANEL_C ? PANEL_C : cols > PANEL_COLS ? PANEL_COLS : cols;
    for (int64_t c0 = 0; c0 < nc; c0 += cols) {
        const int64_t cb = nc - c0 < cols ? nc - c0 : cols;
        for (int64_t r0 = 0; r0 < nr; r0 += PANEL_R) {
            const int R = nr - r0 < PANEL_R ? (int)(nr - r0) : PANEL_R;
            for (int64_t k0 = 0; k0 < k; k0 += PANEL_K) {
                const int64_t kc = k - k0 < PANEL_K ? k - k0 : PANEL_K;
                panel_load(type, R, k0, kc, w + (size_t)r0 * ws, ws, panel);
                for (int64_t c = 0; c < cb; c += PANEL_C) {
                    const int C = cb - c < PANEL_C ? (int)(cb - c) : PANEL_C;
                    panel_tiles[C - 1](panel, kc, x + (size_t)(c0 + c) * xr + (size_t)k0 * 4, xr, acc + c * PANEL_R,
                                       k0 == 0, k0 + kc == k, R, y + (c0 + c) * ys + r0, ys);
                }
            }
        }
    }
}

#define FLOAT_TILE(t, T, R, C)                                                                                   \
    AVX512_FN static void tile_##t##_##R##x##C(int64_t k, const uint8_t *w, size_t wr, const uint8_t *x,          \
                                              size_t xr, float *y, int64_t ys)                                   \
    {                                                                                                            \
        tile_float(AE_TYPE_##T, R, C, k, w, wr, x, xr, y, ys);                                                   \
    }
#define FLOAT_ROW(t, T, R) FLOAT_TILE(t, T, R, 1) FLOAT_TILE(t, T, R, 2) FLOAT_TILE(t, T, R, 3) FLOAT_TILE(t, T, R, 4)
#define FLOAT_TYPE(t, T)                                                                                         \
    FLOAT_ROW(t, T, 1) FLOAT_ROW(t, T, 2) FLOAT_ROW(t, T, 3) FLOAT_ROW(t, T, 4)                                  \
    static const float_tile_fn ftiles_##t[FLOAT_R][FLOAT_C] = {                                                  \
        {tile_##t##_1x1, tile_##t##_1x2, tile_##t##_1x3, tile_##t##_1x4},                                        \
        {tile_##t##_2x1, tile_##t##_2x2, tile_##t##_2x3, tile_##t##_2x4},                                        \
        {tile_##t##_3x1, tile_##t##_3x2, tile_##t##_3x3, tile_##t##_3x4},                                        \
        {tile_##t##_4x1, tile_##t##_4x2, tile_##t##_4x3, tile_##t##_4x4}};                                       \
    AVX512_FN static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr, \
                                        int64_t nc, float *y, int64_t ys)                                        \
    {                                                                                                            \
        gemm_float(AE_TYPE_##T, ftiles_##t, k, w, ws, nr, x, xr, nc, y, ys);                                     \
    }
FLOAT_TYPE(f32, F32)
FLOAT_TYPE(f16, F16)
FLOAT_TYPE(bf16, BF16)

/* The AVX-512 level's kernels: the float types, and the x16 layouts. */
AE_GEMM_LEVEL(avx512, f32, gemm_rows_f32, NULL);
AE_GEMM_LEVEL(avx512, f16, gemm_rows_f16, NULL);
AE_GEMM_LEVEL(avx512, bf16, gemm_rows_bf16, NULL);
AE_GEMM_LEVEL(avx512, q4_0, NULL, gemm_x16_q4_0);
AE_GEMM_LEVEL(avx512, q4_1, NULL, gemm_x16_q4_1);
AE_GEMM_LEVEL(avx512, q5_0, NULL, gemm_x16_q5_0);
AE_GEMM_LEVEL(avx512, q5_1, NULL, gemm_x16_q5_1);
AE_GEMM_LEVEL(avx512, q8_0, NULL, gemm_x16_q8_0);
AE_GEMM_LEVEL(avx512, q2_k, NULL, gemm_x16_q2_k);
AE_GEMM_LEVEL(avx512, q3_k, NULL, gemm_x16_q3_k);
AE_GEMM_LEVEL(avx512, q4_k, NULL, gemm_x16_q4_k);
AE_GEMM_LEVEL(avx512, q5_k, NULL, gemm_x16_q5_k);
AE_GEMM_LEVEL(avx512, q6_k, NULL, gemm_x16_q6_k);

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int kernels_matmul_avx512_not_built;

#endif
