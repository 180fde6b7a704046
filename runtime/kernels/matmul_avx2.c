/* AVX2 (+FMA +F16C) kernels for the matmul, chosen at run time (cpu.c) when the CPU has them.
 *
 * The library is built for baseline x86-64, so every function here carries a target attribute and is
 * only called through its type's kernel table (kernel_table.c) after the feature check. Each kernel
 * follows the canonical order of docs/kernels.md (the scalar reference in matmul.c): exact integer sums
 * per block, then one FMA per block into each output's accumulator, blocks in order; F32/F16/BF16 in 16
 * lanes (two registers) with the fixed reduction. The results are the scalar ones, bit for bit, only faster.
 *
 * Integer sums come from maddubs (unsigned x signed bytes into saturating 16-bit pairs) and madd (pairs
 * into 32-bit lanes). The weights enter as unsigned values and the activations as signed ones in
 * [-127, 127] (what this library's quantizers produce), and every partial sum is bounded so that no
 * 16-bit sum saturates (the bounds are noted where the sums are made). Signed weights (Q4_0, Q5_0) are
 * used unbiased and bias * sum(x) is taken back out; Q8_0 weights multiply |w| by x with w's sign.
 *
 * rows layout: 32-value types compute 8 rows at once, one lane per row, so that each block's FMA is one
 * vector FMA (the 8 rows' block sums come out of a transposing horizontal add); K-quants one row at a
 * time. x16 layout: each group of 16 rows is two halves of 8 lanes; a group block's chunks are loaded
 * whole, each 32-bit lane one row's 4 quant bytes, and every activation row of a tile shares the
 * unpacked weights. F32/F16/BF16 with many activation rows widen the weights once into f32 panels that
 * register tiles reuse. On other hosts this file compiles to nothing.
 */
#if defined(__x86_64__)

#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "gemm_levels.h"
#include "matmul_iq.h"
#include "prefetch_x86.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* ---- shared pieces ----------------------------------------------------------------------------------- */

AVX2_INLINE int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Lane r: the sum of the 8 lanes of v[r]. */
AVX2_INLINE __m256i hsum8x8_epi32(const __m256i v[8])
{
    const __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* reduce16 of docs/kernels.md over lanes 0-7 (lo) and 8-15 (hi). */
AVX2_INLINE float reduce16(__m256 lo, __m256 hi)
{
    const __m256 v8 = _mm256_add_ps(lo, hi);
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    const __m128 v1 = _mm_add_ss(v2, _mm_movehdup_ps(v2));
    return _mm_cvtss_f32(v1);
}

/* int32 lanes: the sum of 4 products u * s each (u unsigned, s signed; no pair may saturate). */
AVX2_INLINE __m256i dot4(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* 4 activation bytes broadcast to every 32-bit lane. */
AVX2_INLINE __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* The 32 nibbles of a Q4 block as bytes in value order: low nibbles (values 0-15), then high. */
AVX2_INLINE __m256i unpack_nibbles(const uint8_t qs[AE_QK / 2])
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

/* 0x10 in byte j where bit j of a Q5 block's qh is set, 0 elsewhere. */
AVX2_INLINE __m256i q5_high_bytes(const uint8_t qh[4])
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

/* ---- 32-value blocks, rows layout ---------------------------------------------------------------- */

/* One weight row's block as unsigned bytes u in value order (the bias to take back out per type), and
 * its scale and minimum. Q8_0 is kept signed (|w| and the sign are applied with x). */
struct row32 {
    __m256i u;
    uint16_t d, m;
};

AVX2_INLINE struct row32 row32_load(uint32_t type, const uint8_t *blk)
{
    struct row32 o = {_mm256_setzero_si256(), 0, 0};
    switch (type) {
    case AE_TYPE_Q4_0:
        memcpy(&o.d, blk, 2);
        o.u = unpack_nibbles(blk + 2);
        break;
    case AE_TYPE_Q4_1:
        memcpy(&o.d, blk, 2);
        memcpy(&o.m, blk + 2, 2);
        o.u = unpack_nibbles(blk + 4);
        break;
    case AE_TYPE_Q5_0:
        memcpy(&o.d, blk, 2);
        o.u = _mm256_or_si256(unpack_nibbles(blk + 6), q5_high_bytes(blk + 2));
        break;
    case AE_TYPE_Q5_1:
        memcpy(&o.d, blk, 2);
        memcpy(&o.m, blk + 2, 2);
        o.u = _mm256_or_si256(unpack_nibbles(blk + 8), q5_high_bytes(blk + 4));
        break;
    default: /* Q8_0 */
        memcpy(&o.d, blk, 2);
        o.u = _mm256_loadu_si256((const __m256i *)(blk + 2));
        break;
    }
    return o;
}

/* Up to 8 rows (lane r = row r; rows past n_rows repeat the last) by one activation row. */
AVX2_INLINE void rows32(uint32_t type, int64_t nb, const uint8_t *w, size_t w_row, int n_rows, const uint8_t *x,
                        float *y)
{
    const size_t wb = ae_type_info(type)->block_bytes;
    const int bias = type == AE_TYPE_Q4_0 ? 8 : type == AE_TYPE_Q5_0 ? 16 : 0;
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const struct ae_block_q8a *xb = (const struct ae_block_q8a *)x + b;
        const __m256i xq = _mm256_loadu_si256((const __m256i *)xb->qs);
        __m256i lanes[8];
        uint16_t d[8], m[8];
        #pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            const int rr = r < n_rows ? r : n_rows - 1;
            const struct row32 o = row32_load(type, w + (size_t)rr * w_row + (size_t)b * wb);
            d[r] = o.d;
            m[r] = o.m;
            /* Q4/Q5: unsigned u <= 31, pairs <= 2 * 31 * 127; Q8_0: |w| * (x with w's sign) */
            lanes[r] = type == AE_TYPE_Q8_0 ? dot4(_mm256_sign_epi8(o.u, o.u), _mm256_sign_epi8(xq, o.u))
                                            : dot4(o.u, xq);
        }
        __m256i isum = hsum8x8_epi32(lanes);
        if (bias)
            isum = _mm256_add_epi32(isum, _mm256_set1_epi32(bias * xb->neg_sum));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), acc);
        if (has_min) {
            const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)m));
            acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(xb->s), acc);
        }
    }
    float out[8];
    _mm256_storeu_ps(out, acc);
    for (int r = 0; r < n_rows; r++)
        y[r] = out[r];
}

#define ROWS32_FN(T, t)                                                                                         \
    AVX2_FN static void rows32_##t(int64_t nb, const uint8_t *w, size_t w_row, int n_rows, const uint8_t *x,     \
                                   float *y)                                                                    \
    {                                                                                                           \
        rows32(AE_TYPE_##T, nb, w, w_row, n_rows, x, y);                                                        \
    }                                                                                                           \
    static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,         \
                              int64_t nc, float *y, int64_t ys)                                                 \
    {                                                                                                           \
        for (int64_t c = 0; c < nc; c++)                                                                        \
            for (int64_t r = 0; r < nr; r += 8)                                                                 \
                rows32_##t(k / AE_QK, (const uint8_t *)w + (size_t)r * ws, ws, nr - r < 8 ? (int)(nr - r) : 8,  \
                           (const uint8_t *)x + (size_t)c * xr, y + c * ys + r);                                \
    }
ROWS32_FN(Q4_0, q4_0)
ROWS32_FN(Q4_1, q4_1)
ROWS32_FN(Q5_0, q5_0)
ROWS32_FN(Q5_1, q5_1)
ROWS32_FN(Q8_0, q8_0)

/* ---- 32-value blocks, x16 layout --------------------------------------------------------------------- */

/* Activation rows of one x16 tile. */
#define X16_COLS 4

/* The unpacked half h (rows 8h..8h+7) of one group block: u[j] holds 4 values of each row, the values
 * of chunk j's low nibbles for j < 4 and of chunk j - 4's high nibbles for j >= 4 (Q8_0: chunk j as
 * signed bytes, and its magnitudes in a[j]). */
struct half32 {
    __m256i u[8], a[8];
    __m256 d, m;
};

/* The fifth bits of chunk j for a half's 8 rows: 0x10 where set, in the bytes of the low values (lo)
 * and of the high values (hi). */
AVX2_INLINE void q5_chunk_bits(__m256i qh, int j, __m256i *lo, __m256i *hi)
{
    const __m256i lane = _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0c0c0c0c, 0, 0x04040404, 0x08080808, 0x0c0c0c0c);
    const __m256i v = _mm256_shuffle_epi8(qh, _mm256_add_epi8(lane, _mm256_set1_epi8((char)j)));
    const __m256i blo = _mm256_set1_epi32(0x08040201), bhi = _mm256_set1_epi32((int)0x80402010u);
    const __m256i m10 = _mm256_set1_epi8(0x10);
    *lo = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, blo), blo), m10);
    *hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bhi), bhi), m10);
}

AVX2_INLINE void half32_load(uint32_t type, const uint8_t *g, int h, struct half32 *o)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint16_t *d = (const uint16_t *)g;
    o->d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 8 * h)));
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    if (has_min)
        o->m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 16 + 8 * h)));
    if (type == AE_TYPE_Q8_0) {
        const uint8_t *qs = g + 32;
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            o->u[j] = _mm256_loadu_si256((const __m256i *)(qs + 64 * j + 32 * h));
            o->a[j] = _mm256_sign_epi8(o->u[j], o->u[j]);
        }
        return;
    }
    const bool q5 = type == AE_TYPE_Q5_0 || type == AE_TYPE_Q5_1;
    const size_t qs_at = 32 + (has_min ? 32 : 0) + (q5 ? 64 : 0);
    __m256i qh = _mm256_setzero_si256();
    if (q5)
        qh = _mm256_loadu_si256((const __m256i *)(g + qs_at - 64 + 32 * h));
    #pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(g + qs_at + 64 * j + 32 * h));
        o->u[j] = _mm256_and_si256(raw, m4);
        o->u[4 + j] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        if (q5) {
            __m256i lo, hi;
            q5_chunk_bits(qh, j, &lo, &hi);
            o->u[j] = _mm256_or_si256(o->u[j], lo);
            o->u[4 + j] = _mm256_or_si256(o->u[4 + j], hi);
        }
    }
}

/* The int32 block sums of the half's 8 rows with activation block xb. The low values of chunk j are
 * x values 4j.., the high ones 16 + 4j... */
AVX2_INLINE __m256i half32_isum(uint32_t type, const struct half32 *o, const struct ae_block_q8a *xb)
{
    const __m256i ones = _mm256_set1_epi16(1);
    if (type == AE_TYPE_Q8_0) {
        __m256i s = _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) /* |w| * (+-x): each pair <= 2 * 128 * 127 */
            s = _mm256_add_epi32(s, dot4(o->a[j], _mm256_sign_epi8(bcast4(xb->qs + 4 * j), o->u[j])));
        return s;
    }
    if (type == AE_TYPE_Q4_0 || type == AE_TYPE_Q4_1) {
        /* nibbles: each maddubs pair <= 2 * 15 * 127, eight of them <= 30480 */
        __m256i p = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(o->u[j], bcast4(xb->qs + 4 * j)));
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(o->u[4 + j], bcast4(xb->qs + 16 + 4 * j)));
        }
        __m256i s = _mm256_madd_epi16(p, ones);
        if (type == AE_TYPE_Q4_0)
            s = _mm256_add_epi32(s, _mm256_set1_epi32(8 * xb->neg_sum));
        return s;
    }
    /* five bits: each pair <= 2 * 31 * 127, four of them <= 31496 */
    __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
    #pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(o->u[j], bcast4(xb->qs + 4 * j)));
        p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(o->u[4 + j], bcast4(xb->qs + 16 + 4 * j)));
    }
    __m256i s = _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
    if (type == AE_TYPE_Q5_0)
        s = _mm256_add_epi32(s, _mm256_set1_epi32(16 * xb->neg_sum));
    return s;
}

/* One group's half h by C activation rows: acc[c] over every block. */
AVX2_INLINE void x16_half32(uint32_t type, int C, int64_t nb, const uint8_t *w, int h, const uint8_t *x, size_t x_row,
                            __m256 acc[X16_COLS])
{
    const size_t gb = x16_block_bytes(type);
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        struct half32 o;
        if (h == 0) /* the two halves read the same blocks: the first asks */
            prefetch_block(w + (size_t)(b + PREFETCH_BLOCKS) * gb, gb);
        half32_load(type, w + (size_t)b * gb, h, &o);
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct ae_block_q8a *xb = (const struct ae_block_q8a *)(x + (size_t)c * x_row) + b;
            const __m256i isum = half32_isum(type, &o, xb);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(o.d, _mm256_set1_ps(xb->d)), acc[c]);
            if (has_min)
                acc[c] = _mm256_fmadd_ps(o.m, _mm256_set1_ps(xb->s), acc[c]);
        }
    }
}

/* Stores the first n (<= 8) lanes of v. */
AVX2_INLINE void store_rows(float *y, __m256 v, int n)
{
    if (n == 8) {
        _mm256_storeu_ps(y, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < n; i++)
        y[i] = t[i];
}

#define X16_32_FN(T, t, C)                                                                                       \
    AVX2_FN static void x16_##t##_##C(int64_t nb, const uint8_t *w, int n_rows, const uint8_t *x, size_t x_row,   \
                                      float *y, int64_t y_stride)                                                \
    {                                                                                                            \
        for (int h = 0; h < 2 && 8 * h < n_rows; h++) {                                                           \
            __m256 acc[X16_COLS];                                                                                \
            x16_half32(AE_TYPE_##T, C, nb, w, h, x, x_row, acc);                                                 \
            const int n = n_rows - 8 * h < 8 ? n_rows - 8 * h : 8;                                               \
            _Pragma("GCC unroll 8") for (int c = 0; c < C; c++)                                                   \
                store_rows(y + c * y_stride + 8 * h, acc[c], n);                                                 \
        }                                                                                                        \
    }
#define X16_32_TYPE(T, t)                                                                                        \
    X16_32_FN(T, t, 1) X16_32_FN(T, t, 2) X16_32_FN(T, t, 3) X16_32_FN(T, t, 4)                                  \
    static void gemm_x16_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,           \
                             int64_t nc, float *y, int64_t ys)                                                   \
    {                                                                                                            \
        static void (*const tiles[X16_COLS])(int64_t, const uint8_t *, int, const uint8_t *, size_t, float *,    \
                                             int64_t) = {x16_##t##_1, x16_##t##_2, x16_##t##_3, x16_##t##_4};     \
        for (int64_t r = 0; r < nr; r += AE_X16_ROWS)                                                            \
            for (int64_t c = 0; c < nc; c += X16_COLS) {                                                         \
                const int C = nc - c < X16_COLS ? (int)(nc - c) : X16_COLS;                                      \
                tiles[C - 1](k / AE_QK, (const uint8_t *)w + (size_t)(r / AE_X16_ROWS) * ws,                     \
                             nr - r < AE_X16_ROWS ? (int)(nr - r) : AE_X16_ROWS, (const uint8_t *)x + (size_t)c * xr, \
                             xr, y + c * ys + r, ys);                                                            \
            }                                                                                                    \
    }
X16_32_TYPE(Q4_0, q4_0)
X16_32_TYPE(Q4_1, q4_1)
X16_32_TYPE(Q5_0, q5_0)
X16_32_TYPE(Q5_1, q5_1)
X16_32_TYPE(Q8_0, q8_0)

/* ---- K-quants, x16 layout ----------------------------------------------------------------------------- */

/* Activation rows of a K-quant tile: each half-group's unpacked values serve them all. */
#define KX16_COLS 2

/* The per-row integer scales of one half (8 rows) of a group's super-block, as 16-bit pairs per 32-bit
 * lane: sc[g] = (sc_g, sc_g), so that madd of 16-bit pair sums with it gives sc_g * (p0 + p1) exactly;
 * mp[k] = (m_k, m_k) (Q4_K, Q5_K), (m_2k, m_2k+1) (Q2_K) or (sc_2k, sc_2k+1) (Q3_K, Q6_K), for madd with
 * a pair of bsums. */
struct kscales8 {
    __m256i sc[16];
    __m256i mp[8];
};

/* 8 bytes as int32 lanes, zero- or sign-extended, and as a pair (v, v) of 16-bit halves. */
AVX2_INLINE __m256i dup16(__m256i v)
{
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_slli_epi32(v, 16));
}

AVX2_INLINE void kscales8_q45(const uint8_t *scales, int half, struct kscales8 *o)
{
    __m128i s[AE_K_SCALE_BYTES];
    #pragma GCC unroll 12
    for (int j = 0; j < AE_K_SCALE_BYTES; j++) /* byte j of rows 8 half.. in the low 8 bytes */
        s[j] = _mm_loadl_epi64((const __m128i *)(scales + 16 * j + 8 * half));
    const __m128i m63 = _mm_set1_epi8(63), m0f = _mm_set1_epi8(0x0f), m30 = _mm_set1_epi8(0x30);
    #pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
        __m128i sc, m;
        if (g < 4) {
            sc = _mm_and_si128(s[g], m63);
            m = _mm_and_si128(s[g + 4], m63);
        } else {
            sc = _mm_or_si128(_mm_and_si128(s[g + 4], m0f), _mm_and_si128(_mm_srli_epi16(s[g - 4], 2), m30));
            m = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(s[g + 4], 4), m0f), _mm_and_si128(_mm_srli_epi16(s[g], 2), m30));
        }
        o->sc[g] = dup16(_mm256_cvtepu8_epi32(sc));
        o->mp[g] = dup16(_mm256_cvtepu8_epi32(m));
    }
}

/* mp[k] = (v[2k], v[2k+1]) as a lane's 16-bit pair. */
AVX2_INLINE void kscales8_pairs(const __m256i v[16], __m256i mp[8])
{
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        mp[k] = _mm256_or_si256(_mm256_and_si256(v[2 * k], _mm256_set1_epi32(0xffff)), _mm256_slli_epi32(v[2 * k + 1], 16));
}

AVX2_INLINE void kscales8_q6(const int8_t *scales, int half, struct kscales8 *o)
{
    __m256i v[16];
    #pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        v[g] = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(scales + 16 * g + 8 * half)));
        o->sc[g] = dup16(v[g]);
    }
    kscales8_pairs(v, o->mp);
}

/* Q2_K: byte g of each row holds group g's scale (low nibble) and min (high nibble). */
AVX2_INLINE void kscales8_q2(const uint8_t *scales, int half, struct kscales8 *o)
{
    __m256i m[16];
    #pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(scales + 16 * g + 8 * half)));
        o->sc[g] = dup16(_mm256_and_si256(v, _mm256_set1_epi32(0x0f)));
        m[g] = _mm256_srli_epi32(v, 4);
    }
    kscales8_pairs(m, o->mp);
}

/* Q3_K: the 16 6-bit scales less 32 (matmul.c's blk_q3_k), from byte j of each row's 12. */
AVX2_INLINE void kscales8_q3(const uint8_t *scales, int half, struct kscales8 *o)
{
    __m256i v[AE_K_SCALE_BYTES], sc[16];
    #pragma GCC unroll 12
    for (int j = 0; j < AE_K_SCALE_BYTES; j++)
        v[j] = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(scales + 16 * j + 8 * half)));
    #pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m256i low = g < 8 ? _mm256_and_si256(v[g], _mm256_set1_epi32(0x0f)) : _mm256_srli_epi32(v[g - 8], 4);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi32(v[8 + g % 4], 2 * (g / 4)), _mm256_set1_epi32(3));
        sc[g] = _mm256_sub_epi32(_mm256_or_si256(low, _mm256_slli_epi32(high, 4)), _mm256_set1_epi32(32));
        o->sc[g] = dup16(sc[g]);
    }
    kscales8_pairs(sc, o->mp);
}

/* 16-bit pair sums of u (unsigned, 4 values per lane) with the 4 activation bytes at p. */
AVX2_INLINE __m256i pairs4(__m256i u, const int8_t *p)
{
    return _mm256_maddubs_epi16(u, bcast4(p));
}

/* One half (8 rows at lanes of 32 bytes from w + 32 half) of one group by C activation rows. */
AVX2_INLINE void ktile8(uint32_t type, int C, int64_t nb, const uint8_t *w, int half, const uint8_t *x, size_t x_row,
                        __m256 acc[KX16_COLS])
{
    const size_t gb = x16_block_bytes(type);
    const bool has_min = type == AE_TYPE_Q2_K || type == AE_TYPE_Q4_K || type == AE_TYPE_Q5_K;
    const int bias_shift = type == AE_TYPE_Q3_K ? 2 : 5; /* Q3_K's values enter as q + 4, Q6_K's as q + 32 */
    const __m256i m0f = _mm256_set1_epi8(0x0f);
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * gb;
        if (half == 0)
            prefetch_block(g + PREFETCH_BLOCKS * gb, gb);
        struct kscales8 sc;
        __m256 d, dmin = _mm256_setzero_ps();
        d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 16 * half)));
        if (type == AE_TYPE_Q6_K) {
            kscales8_q6(((const struct ae_x16_q6_k *)g)->scales[0], half, &sc);
        } else if (type == AE_TYPE_Q2_K) {
            kscales8_q2(((const struct ae_x16_q2_k *)g)->scales[0], half, &sc);
            dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 32 + 16 * half)));
        } else if (type == AE_TYPE_Q3_K) {
            kscales8_q3(((const struct ae_x16_q3_k *)g)->scales[0], half, &sc);
        } else {
            kscales8_q45(((const struct ae_x16_q4_k *)g)->scales[0], half, &sc); /* same offset in Q5_K */
            dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 32 + 16 * half)));
        }
        __m256i isum[KX16_COLS], msum[KX16_COLS];
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct ae_block_q8_k *xb = (const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b;
            __m256i t = _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                int32_t pair;
                memcpy(&pair, &xb->bsums[2 * k], 4);
                t = _mm256_add_epi32(t, _mm256_madd_epi16(sc.mp[k], _mm256_set1_epi32(pair)));
            }
            msum[c] = t;
            isum[c] = has_min ? _mm256_setzero_si256()
                              : _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(t, bias_shift));
        }
        if (type == AE_TYPE_Q2_K || type == AE_TYPE_Q3_K) {
            const uint8_t *qs = type == AE_TYPE_Q2_K ? ((const struct ae_x16_q2_k *)g)->qs[0][0]
                                                     : ((const struct ae_x16_q3_k *)g)->qs[0][0];
            const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
            #pragma GCC unroll 2
            for (int h = 0; h < 2; h++)
                #pragma GCC unroll 4
                for (int s = 0; s < 4; s++) {
                    /* u[j]: values 128h + 32s + 4j.., bits 2s, 2s + 1 of qs chunk 8h + j; Q3_K's as q + 4, with 4
                     * added where bit 4h + s of hmask chunk j is set */
                    __m256i u[8];
                    #pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) {
                        const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 64 * (8 * h + j) + 32 * half));
                        u[j] = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * s), m3);
                        if (type == AE_TYPE_Q3_K) {
                            const __m256i hm = _mm256_loadu_si256((const __m256i *)(((const struct ae_x16_q3_k *)g)->hmask[j][8 * half]));
                            const int bit = 4 * h + s; /* to bit 2 */
                            const __m256i t = bit >= 2 ? _mm256_srli_epi16(hm, bit - 2) : _mm256_slli_epi16(hm, 2 - bit);
                            u[j] = _mm256_or_si256(u[j], _mm256_and_si256(t, m4));
                        }
                    }
                    #pragma GCC unroll 8
                    for (int c = 0; c < C; c++) {
                        const int8_t *xs = ((const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b)->qs + 128 * h + 32 * s;
                        #pragma GCC unroll 2
                        for (int gi = 0; gi < 2; gi++) { /* group 8h + 2s + gi: u[4 gi..4 gi + 3] */
                            /* each pair <= 2 * 7 * 127: four of them fit in 16 bits */
                            const __m256i p = _mm256_add_epi16(
                                _mm256_add_epi16(pairs4(u[4 * gi], xs + 16 * gi), pairs4(u[4 * gi + 1], xs + 16 * gi + 4)),
                                _mm256_add_epi16(pairs4(u[4 * gi + 2], xs + 16 * gi + 8), pairs4(u[4 * gi + 3], xs + 16 * gi + 12)));
                            isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sc.sc[8 * h + 2 * s + gi]));
                        }
                    }
                }
        } else if (type == AE_TYPE_Q6_K) {
            const struct ae_x16_q6_k *q = (const struct ae_x16_q6_k *)g;
            const __m256i m30 = _mm256_set1_epi8(0x30);
            #pragma GCC unroll 2
            for (int h = 0; h < 2; h++)
                #pragma GCC unroll 4
                for (int s = 0; s < 4; s++) {
                    __m256i u[8]; /* values 128h + 32s + 4j.. */
                    #pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) {
                        const __m256i l = _mm256_loadu_si256((const __m256i *)(q->ql[16 * h + 8 * (s & 1) + j][8 * half]));
                        const __m256i qh = _mm256_loadu_si256((const __m256i *)(q->qh[8 * h + j][8 * half]));
                        const __m256i lo = s < 2 ? _mm256_and_si256(l, m0f) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m0f);
                        const __m256i top = s == 0 ? _mm256_slli_epi16(qh, 4) : s == 1 ? _mm256_slli_epi16(qh, 2)
                                          : s == 2 ? qh : _mm256_srli_epi16(qh, 2);
                        u[j] = _mm256_or_si256(lo, _mm256_and_si256(top, m30));
                    }
                    #pragma GCC unroll 8
                    for (int c = 0; c < C; c++) {
                        const int8_t *xs = ((const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b)->qs + 128 * h + 32 * s;
                        #pragma GCC unroll 2
                        for (int gi = 0; gi < 2; gi++) { /* group 8h + 2s + gi: u[4 gi..4 gi + 3] */
                            /* each pair <= 2 * 63 * 127: two of them fit in 16 bits */
                            const __m256i p0 = _mm256_add_epi16(pairs4(u[4 * gi], xs + 16 * gi), pairs4(u[4 * gi + 1], xs + 16 * gi + 4));
                            const __m256i p1 = _mm256_add_epi16(pairs4(u[4 * gi + 2], xs + 16 * gi + 8), pairs4(u[4 * gi + 3], xs + 16 * gi + 12));
                            const __m256i scg = sc.sc[8 * h + 2 * s + gi];
                            isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(p0, scg), _mm256_madd_epi16(p1, scg)));
                        }
                    }
                }
        } else {
            const uint8_t *qs = type == AE_TYPE_Q4_K ? ((const struct ae_x16_q4_k *)g)->qs[0][0]
                                                     : ((const struct ae_x16_q5_k *)g)->qs[0][0];
            #pragma GCC unroll 8
            for (int gi = 0; gi < 8; gi++) { /* group gi: chunks 8 (gi / 2) + j, low nibbles for even gi */
                const int h = gi / 2, high = gi % 2;
                __m256i u[8];
                #pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 64 * (8 * h + j) + 32 * half));
                    u[j] = high ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f) : _mm256_and_si256(raw, m0f);
                    if (type == AE_TYPE_Q5_K) {
                        const __m256i qh = _mm256_loadu_si256((const __m256i *)(((const struct ae_x16_q5_k *)g)->qh[j][8 * half]));
                        const int bit = gi; /* the fifth bit of group gi is bit gi of qh */
                        const __m256i t = bit <= 4 ? _mm256_slli_epi16(qh, 4 - bit) : _mm256_srli_epi16(qh, bit - 4);
                        u[j] = _mm256_or_si256(u[j], _mm256_and_si256(t, _mm256_set1_epi8(0x10)));
                    }
                }
                #pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const int8_t *xs = ((const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b)->qs + 32 * gi;
                    if (type == AE_TYPE_Q4_K) { /* nibbles: eight pairs of <= 2 * 15 * 127 fit in 16 bits */
                        __m256i p = pairs4(u[0], xs);
                        #pragma GCC unroll 8
                        for (int j = 1; j < 8; j++)
                            p = _mm256_add_epi16(p, pairs4(u[j], xs + 4 * j));
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sc.sc[gi]));
                    } else { /* five bits: four pairs of <= 2 * 31 * 127 */
                        __m256i p0 = pairs4(u[0], xs), p1 = pairs4(u[4], xs + 16);
                        #pragma GCC unroll 4
                        for (int j = 1; j < 4; j++) {
                            p0 = _mm256_add_epi16(p0, pairs4(u[j], xs + 4 * j));
                            p1 = _mm256_add_epi16(p1, pairs4(u[4 + j], xs + 16 + 4 * j));
                        }
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(p0, sc.sc[gi]),
                                                                             _mm256_madd_epi16(p1, sc.sc[gi])));
                    }
                }
            }
        }
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct ae_block_q8_k *xb = (const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b;
            const __m256 dx = _mm256_set1_ps(xb->d);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(d, dx), acc[c]);
            if (has_min) {
                const __m256 nm = _mm256_xor_ps(_mm256_cvtepi32_ps(msum[c]), _mm256_set1_ps(-0.0f)); /* -(float)msum */
                acc[c] = _mm256_fmadd_ps(nm, _mm256_mul_ps(dmin, dx), acc[c]);
            }
        }
    }
}

#define KX16_FN(t, T, C)                                                                                         \
    AVX2_FN static void kx16_##t##_##C(int64_t nb, const uint8_t *w, int n_rows, const uint8_t *x, size_t x_row,  \
                                       float *y, int64_t y_stride)                                               \
    {                                                                                                            \
        for (int h = 0; h < 2 && 8 * h < n_rows; h++) {                                                           \
            __m256 acc[KX16_COLS];                                                                               \
            ktile8(AE_TYPE_##T, C, nb, w, h, x, x_row, acc);                                                     \
            const int n = n_rows - 8 * h < 8 ? n_rows - 8 * h : 8;                                               \
            _Pragma("GCC unroll 8") for (int c = 0; c < C; c++)                                                   \
                store_rows(y + c * y_stride + 8 * h, acc[c], n);                                                 \
        }                                                                                                        \
    }
#define KX16_TYPE(t, T)                                                                                          \
    KX16_FN(t, T, 1) KX16_FN(t, T, 2)                                                                            \
    static void gemm_x16_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,           \
                             int64_t nc, float *y, int64_t ys)                                                   \
    {                                                                                                            \
        for (int64_t r = 0; r < nr; r += AE_X16_ROWS)                                                            \
            for (int64_t c = 0; c < nc; c += KX16_COLS) {                                                        \
                const int C = nc - c < KX16_COLS ? (int)(nc - c) : KX16_COLS;                                    \
                (C == 1 ? kx16_##t##_1 : kx16_##t##_2)(k / AE_QK_K, (const uint8_t *)w + (size_t)(r / AE_X16_ROWS) * ws, \
                                                      nr - r < AE_X16_ROWS ? (int)(nr - r) : AE_X16_ROWS,       \
                                                      (const uint8_t *)x + (size_t)c * xr, xr, y + c * ys + r, ys); \
            }                                                                                                    \
    }
KX16_TYPE(q4_k, Q4_K)
KX16_TYPE(q5_k, Q5_K)
KX16_TYPE(q6_k, Q6_K)
KX16_TYPE(q2_k, Q2_K)
KX16_TYPE(q3_k, Q3_K)

/* ---- K-quants, rows layout --------------------------------------------------------------------------- */

/* The canonical float steps of one super-block with exact sums isum and msum. */
AVX2_INLINE float kq_step(float acc, int isum, int msum, float d, float dmin, int has_min)
{
    acc = fmaf((float)isum, d, acc);
    if (has_min)
        acc = fmaf(-(float)msum, dmin, acc);
    return acc;
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
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            #pragma GCC unroll 4
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
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            #pragma GCC unroll 4
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
        #pragma GCC unroll 4
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
        #pragma GCC unroll 4
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
        #pragma GCC unroll 2
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
            #pragma GCC unroll 4
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

#define ROWS_K_FN(t)                                                                                             \
    static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,          \
                              int64_t nc, float *y, int64_t ys)                                                  \
    {                                                                                                            \
        for (int64_t c = 0; c < nc; c++)                                                                         \
            for (int64_t r = 0; r < nr; r++)                                                                     \
                dot_##t(k, (const uint8_t *)w + (size_t)r * ws, (const uint8_t *)x + (size_t)c * xr, &y[c * ys + r]); \
    }
ROWS_K_FN(q2_k)
ROWS_K_FN(q3_k)
ROWS_K_FN(q4_k)
ROWS_K_FN(q5_k)
ROWS_K_FN(q6_k)
#define dot_iq4_nl ae_dot_iq4_nl_avx2
#define dot_iq4_xs ae_dot_iq4_xs_avx2
#define dot_tq1_0 ae_dot_tq1_0_avx2
#define dot_tq2_0 ae_dot_tq2_0_avx2
ROWS_K_FN(iq4_nl)
ROWS_K_FN(iq4_xs)
ROWS_K_FN(tq1_0)
ROWS_K_FN(tq2_0)

/* ---- F32, F16, BF16, rows layout --------------------------------------------------------------------- */

/* 8 values from p as f32. */
AVX2_INLINE __m256 load8(uint32_t type, const void *p)
{
    switch (type) {
    case AE_TYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case AE_TYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default:
        return _mm256_loadu_ps((const float *)p);
    }
}

static inline float value_at(uint32_t type, const void *p, int64_t i)
{
    switch (type) {
    case AE_TYPE_F16:
        return ae_fp16_to_fp32(((const uint16_t *)p)[i]);
    case AE_TYPE_BF16:
        return ae_bf16_to_fp32(((const uint16_t *)p)[i]);
    default:
        return ((const float *)p)[i];
    }
}

/* R weight rows by C activation rows (f32), 16 lanes each (lo: lanes 0-7, hi: 8-15). A last part
 * shorter than 16 values goes through the lanes one by one. */
AVX2_INLINE void tile_float(uint32_t type, int R, int C, int64_t k, const uint8_t *w, size_t w_row, const uint8_t *x,
                            size_t x_row, float *y, int64_t y_stride)
{
    const size_t es = type == AE_TYPE_F32 ? 4 : 2;
    __m256 lo[4][4], hi[4][4];
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            lo[c][r] = hi[c][r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256 xl[4], xh[4];
        #pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            xl[c] = _mm256_loadu_ps((const float *)(x + (size_t)c * x_row) + i);
            xh[c] = _mm256_loadu_ps((const float *)(x + (size_t)c * x_row) + i + 8);
        }
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m256 wl = load8(type, w + (size_t)r * w_row + (size_t)i * es);
            const __m256 wh = load8(type, w + (size_t)r * w_row + (size_t)(i + 8) * es);
            #pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                lo[c][r] = _mm256_fmadd_ps(wl, xl[c], lo[c][r]);
                hi[c][r] = _mm256_fmadd_ps(wh, xh[c], hi[c][r]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            float a[16];
            _mm256_storeu_ps(a, lo[c][r]);
            _mm256_storeu_ps(a + 8, hi[c][r]);
            for (int64_t j = i; j < k; j++)
                a[j - i] = fmaf(value_at(type, w + (size_t)r * w_row, j), ((const float *)(x + (size_t)c * x_row))[j],
                                a[j - i]);
            y[c * y_stride + r] = reduce16(_mm256_loadu_ps(a), _mm256_loadu_ps(a + 8));
        }
}

/* Panels, as in matmul_avx512.c: with many activation rows the weights are widened once into a panel
 * (PANEL_R rows by up to PANEL_K values, f32, in L1) that PANEL_R x PANEL_C register tiles (12
 * accumulators of two registers' halves) run over for up to PANEL_COLS activation rows; the accumulators
 * wait in memory between panels, and each output takes its terms in increasing K. */
#define PANEL_R 2
#define PANEL_C 3
#define PANEL_K 512
#define PANEL_COLS 48
#define PANEL_X_BYTES (1 << 20)
#define PANEL_MIN_COLS 8 /* fewer activation rows take the direct tiles */

/* Values k0..k0 + kc of weight rows 0..R-1 widened into p[r * PANEL_K + i]; rows R.. and the values past
 * kc up to a multiple of 16 are zero. */
AVX2_INLINE void panel_load(uint32_t type, int R, int64_t k0, int64_t kc, const uint8_t *w, size_t w_row, float *p)
{
    const size_t es = type == AE_TYPE_F32 ? 4 : 2;
    for (int r = 0; r < PANEL_R; r++) {
        float *pr = p + r * PANEL_K;
        const uint8_t *wr = w + (size_t)r * w_row + (size_t)k0 * es;
        int64_t i = 0;
        if (r < R) {
            for (; i + 8 <= kc; i += 8)
                _mm256_store_ps(pr + i, load8(type, wr + (size_t)i * es));
            for (; i < kc; i++)
                pr[i] = value_at(type, wr, i);
        }
        for (; i < (kc + 15) / 16 * 16; i++)
            pr[i] = 0.0f;
    }
}

/* The register tile: the panel's rows by C activation rows (f32, at x, x_row bytes apart) over values
 * 0..kc; acc[(c * PANEL_R + r) * 2 + h] holds the accumulators between panels: read unless first, written
 * unless last; after the last panel, y[c * y_stride + r] = the output, for r < R. A last part shorter
 * than 16 values goes through the lanes one by one. */
AVX2_INLINE void panel_tile(int C, const float *p, int64_t kc, const uint8_t *x, size_t x_row, __m256 *acc,
                            bool first, bool last, int R, float *y, int64_t y_stride)
{
    __m256 lo[PANEL_C][PANEL_R], hi[PANEL_C][PANEL_R];
    #pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 2
        for (int r = 0; r < PANEL_R; r++) {
            lo[c][r] = first ? _mm256_setzero_ps() : acc[(c * PANEL_R + r) * 2];
            hi[c][r] = first ? _mm256_setzero_ps() : acc[(c * PANEL_R + r) * 2 + 1];
        }
    int64_t i = 0;
    for (; i + 16 <= kc; i += 16) {
        __m256 wl[PANEL_R], wh[PANEL_R];
        #pragma GCC unroll 2
        for (int r = 0; r < PANEL_R; r++)
            wl[r] = _mm256_load_ps(p + r * PANEL_K + i);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const __m256 xv = _mm256_loadu_ps((const float *)(x + (size_t)c * x_row) + i);
            #pragma GCC unroll 2
            for (int r = 0; r < PANEL_R; r++)
                lo[c][r] = _mm256_fmadd_ps(wl[r], xv, lo[c][r]);
        }
        #pragma GCC unroll 2
        for (int r = 0; r < PANEL_R; r++)
            wh[r] = _mm256_load_ps(p + r * PANEL_K + i + 8);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const __m256 xv = _mm256_loadu_ps((const float *)(x + (size_t)c * x_row) + i + 8);
            #pragma GCC unroll 2
            for (int r = 0; r < PANEL_R; r++)
                hi[c][r] = _mm256_fmadd_ps(wh[r], xv, hi[c][r]);
        }
    }
    #pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        #pragma GCC unroll 2
        for (int r = 0; r < PANEL_R; r++) {
            if (i < kc) {
                float a[16];
                _mm256_storeu_ps(a, lo[c][r]);
                _mm256_storeu_ps(a + 8, hi[c][r]);
                for (int64_t j = i; j < kc; j++)
                    a[j - i] = fmaf(p[r * PANEL_K + j], ((const float *)(x + (size_t)c * x_row))[j], a[j - i]);
                lo[c][r] = _mm256_loadu_ps(a);
                hi[c][r] = _mm256_loadu_ps(a + 8);
            }
            if (!last) {
                acc[(c * PANEL_R + r) * 2] = lo[c][r];
                acc[(c * PANEL_R + r) * 2 + 1] = hi[c][r];
            } else if (r < R) {
                y[c * y_stride + r] = reduce16(lo[c][r], hi[c][r]);
            }
        }
}

typedef void (*panel_tile_fn)(const float *p, int64_t kc, const uint8_t *x, size_t x_row, __m256 *acc, bool first,
                              bool last, int R, float *y, int64_t y_stride);

#define PANEL_TILE(C)                                                                                            \
    AVX2_FN static void panel_tile_##C(const float *p, int64_t kc, const uint8_t *x, size_t xr, __m256 *acc,      \
                                       bool first, bool last, int R, float *y, int64_t ys)                       \
    {                                                                                                            \
        panel_tile(C, p, kc, x, xr, acc, first, last, R, y, ys);                                                 \
    }
PANEL_TILE(1) PANEL_TILE(2) PANEL_TILE(3)
static const panel_tile_fn panel_tiles[PANEL_C] = {panel_tile_1, panel_tile_2, panel_tile_3};

/* The panel path of a float type's block kernel (nc >= PANEL_MIN_COLS). */
AVX2_INLINE void gemm_float_panels(uint32_t type, int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *x,
                                   size_t xr, int64_t nc, float *y, int64_t ys)
{
    float panel[PANEL_R * PANEL_K] __attribute__((aligned(32)));
    __m256 acc[PANEL_COLS * PANEL_R * 2];
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
                    panel_tiles[C - 1](panel, kc, x + (size_t)(c0 + c) * xr + (size_t)k0 * 4, xr,
                                       acc + c * PANEL_R * 2, k0 == 0, k0 + kc == k, R, y + (c0 + c) * ys + r0, ys);
                }
            }
        }
    }
}

#define FLOAT_TILE(T, t, R, C)                                                                                    \
    AVX2_FN static void tile_##t##_##R##x##C(int64_t k, const uint8_t *w, size_t wr, const uint8_t *x, size_t xr,  \
                                            float *y, int64_t ys)                                                 \
    {                                                                                                             \
        tile_float(AE_TYPE_##T, R, C, k, w, wr, x, xr, y, ys);                                                    \
    }
#define FLOAT_TYPE(T, t)                                                                                          \
    FLOAT_TILE(T, t, 1, 1) FLOAT_TILE(T, t, 2, 1) FLOAT_TILE(T, t, 3, 1) FLOAT_TILE(T, t, 4, 1)                   \
    FLOAT_TILE(T, t, 1, 2) FLOAT_TILE(T, t, 2, 2)                                                                 \
    AVX2_FN static void gemm_rows_##t(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr,   \
                                      int64_t nc, float *y, int64_t ys)                                           \
    {                                                                                                             \
        static void (*const r1[4])(int64_t, const uint8_t *, size_t, const uint8_t *, size_t, float *, int64_t) = { \
            tile_##t##_1x1, tile_##t##_2x1, tile_##t##_3x1, tile_##t##_4x1};                                      \
        const uint8_t *w8 = w, *x8 = x;                                                                           \
        if (nc >= PANEL_MIN_COLS) {                                                                               \
            gemm_float_panels(AE_TYPE_##T, k, w8, ws, nr, x8, xr, nc, y, ys);                                     \
            return;                                                                                               \
        }                                                                                                         \
        int64_t c = 0;                                                                                            \
        for (; c + 2 <= nc; c += 2)                                                                               \
            for (int64_t r = 0; r < nr; r += 2) {                                                                 \
                if (nr - r >= 2)                                                                                  \
                    tile_##t##_2x2(k, w8 + (size_t)r * ws, ws, x8 + (size_t)c * xr, xr, y + c * ys + r, ys);      \
                else                                                                                              \
                    tile_##t##_1x2(k, w8 + (size_t)r * ws, ws, x8 + (size_t)c * xr, xr, y + c * ys + r, ys);      \
            }                                                                                                     \
        for (; c < nc; c++)                                                                                       \
            for (int64_t r = 0; r < nr; r += 4) {                                                                 \
                const int R = nr - r < 4 ? (int)(nr - r) : 4;                                                     \
                r1[R - 1](k, w8 + (size_t)r * ws, ws, x8 + (size_t)c * xr, xr, y + c * ys + r, ys);               \
            }                                                                                                     \
    }
FLOAT_TYPE(F32, f32)
FLOAT_TYPE(F16, f16)
FLOAT_TYPE(BF16, bf16)

/* f32 -> fp16 rounding to nearest even, as ae_fp32_to_fp16 (NaN payloads aside). */
AVX2_FN static void to_f16(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = ae_fp32_to_fp16(x[i]);
}

/* The AVX2 level's kernels: every type. */
AE_GEMM_LEVEL(avx2, f32, gemm_rows_f32, NULL);
AE_GEMM_LEVEL(avx2, f16, gemm_rows_f16, NULL);
AE_GEMM_LEVEL(avx2, bf16, gemm_rows_bf16, NULL);
AE_GEMM_LEVEL(avx2, q4_0, gemm_rows_q4_0, gemm_x16_q4_0);
AE_GEMM_LEVEL(avx2, q4_1, gemm_rows_q4_1, gemm_x16_q4_1);
AE_GEMM_LEVEL(avx2, q5_0, gemm_rows_q5_0, gemm_x16_q5_0);
AE_GEMM_LEVEL(avx2, q5_1, gemm_rows_q5_1, gemm_x16_q5_1);
AE_GEMM_LEVEL(avx2, q8_0, gemm_rows_q8_0, gemm_x16_q8_0);
AE_GEMM_LEVEL(avx2, q2_k, gemm_rows_q2_k, gemm_x16_q2_k);
AE_GEMM_LEVEL(avx2, q3_k, gemm_rows_q3_k, gemm_x16_q3_k);
AE_GEMM_LEVEL(avx2, q4_k, gemm_rows_q4_k, gemm_x16_q4_k);
AE_GEMM_LEVEL(avx2, q5_k, gemm_rows_q5_k, gemm_x16_q5_k);
AE_GEMM_LEVEL(avx2, q6_k, gemm_rows_q6_k, gemm_x16_q6_k);
AE_GEMM_LEVEL(avx2, iq4_nl, gemm_rows_iq4_nl, NULL);
AE_GEMM_LEVEL(avx2, iq4_xs, gemm_rows_iq4_xs, NULL);
AE_GEMM_LEVEL(avx2, tq1_0, gemm_rows_tq1_0, NULL);
AE_GEMM_LEVEL(avx2, tq2_0, gemm_rows_tq2_0, NULL);

void ae_convert_row_f16_avx2(const float *x, uint16_t *y, int64_t n)
{
    to_f16(x, y, n);
}

#else

/* ISO C wants at least one declaration in a translation unit; this one emits nothing. */
typedef int kernels_matmul_avx2_not_built;

#endif
