/* Attention over a KV cache: out = softmax(mask(softcap(scale * q.k))) v, tiled, with an online softmax.
 *
 * No T x P score matrix: a task takes the query rows of up to ATTN_TOKENS tokens times the query heads
 * of one kv head, and walks the keys in blocks of 16 positions (aligned to multiples of 16), keeping per
 * query row a running maximum m, a running sum l and the unnormalized output o. The block's K rows are
 * transposed (dims-major) and its V rows widened to f32 once for all of the task's rows, so F16 caches
 * are read with SIMD and each K and V row is converted once per task. The float order, the same at every
 * level (attention_body.h is the one algorithm, instantiated per level below) and for any thread count:
 *   s_j   = (sum over d, in order, of fmaf(q[d], k_j[d], s_j)) * scale, then softcap; -inf for keys the
 *           query does not see (causal, window)
 *   m'    = max(m, max_j s_j); alpha = exp(m - m'); p_j = exp(s_j - m')
 *   l     = fmaf(l, alpha, reduce16(p))
 *   o[d]  = o[d] * alpha, then o[d] = fmaf(p_j, v_j[d], o[d]) for the keys j of the block in order
 *   out   = o / l
 * where exp is attn_expf below (a fixed range reduction and polynomial of fmaf steps, 0 below -86), so
 * every level (scalar, AVX2, AVX-512, NEON) computes it bit for bit alike. With an F16 cache q is
 * rounded to fp16 before the products, as the cache's values were. docs/kernels.md states the same order.
 */
#include "ae_kernels.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

/* Tokens of one task (its query rows: these times the query heads of a kv head). */
#define ATTN_TOKENS 16

struct attn_job {
    const struct ae_attn_params *p;
    const float *q;
    const uint8_t *k, *v;
    float *out;
    uint8_t *scratch;
    size_t slice;        /* bytes of one thread's scratch */
    size_t k_row, v_row; /* bytes of one cache row */
    size_t elt;          /* bytes of one cache value */
    int64_t tiles;       /* token tiles per kv head */
};

/* exp(x), the same bits at every level: x = n ln2 + r (n rounded to nearest even by the 1.5 * 2^23
 * trick, ln2 in two parts), exp(r) by Cephes' degree-6 polynomial in Horner form, 2^n added to the
 * exponent. 0 below -86 (and for -inf and NaN), where 2^n would leave the normal range. */
#define EXP_MAGIC 12582912.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.428606765330187045e-06f
#define EXP_C0 1.9875691500E-4f
#define EXP_C1 1.3981999507E-3f
#define EXP_C2 8.3334519073E-3f
#define EXP_C3 4.1665795894E-2f
#define EXP_C4 1.6666665459E-1f
#define EXP_C5 5.0000001201E-1f
#define EXP_MIN (-86.0f)

static inline float attn_expf(float x)
{
    if (!(x >= EXP_MIN))
        return 0.0f;
    const float t = fmaf(x, EXP_LOG2E, EXP_MAGIC);
    const float n = t - EXP_MAGIC;
    float r = fmaf(n, -EXP_LN2_HI, x);
    r = fmaf(n, -EXP_LN2_LO, r);
    float y = fmaf(EXP_C0, r, EXP_C1);
    y = fmaf(y, r, EXP_C2);
    y = fmaf(y, r, EXP_C3);
    y = fmaf(y, r, EXP_C4);
    y = fmaf(y, r, EXP_C5);
    const float z = r * r;
    y = fmaf(y, z, r);
    y = y + 1.0f;
    int32_t tb, yb;
    memcpy(&tb, &t, 4);
    memcpy(&yb, &y, 4);
    yb += (int32_t)((uint32_t)(tb - 0x4B400000) << 23);
    memcpy(&y, &yb, 4);
    return y;
}

/* reduce16 of docs/kernels.md. */
static inline float reduce16(const float a[16])
{
    float v8[8], v4[4];
    for (int l = 0; l < 8; l++)
        v8[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++)
        v4[l] = v8[l] + v8[l + 4];
    const float v2a = v4[0] + v4[2], v2b = v4[1] + v4[3];
    return v2a + v2b;
}

/* ---- scalar ---------------------------------------------------------------------------------------- */

typedef struct {
    float f[16];
} v16s;

static inline v16s v16s_zero(void) { return (v16s){{0}}; }
static inline v16s v16s_set1(float a) { v16s r; for (int i = 0; i < 16; i++) r.f[i] = a; return r; }
static inline v16s v16s_load(const float *p) { v16s r; memcpy(r.f, p, sizeof r.f); return r; }
static inline void v16s_store(float *p, v16s a) { memcpy(p, a.f, sizeof a.f); }
static inline v16s v16s_fma(v16s a, v16s b, v16s c) { for (int i = 0; i < 16; i++) c.f[i] = fmaf(a.f[i], b.f[i], c.f[i]); return c; }
static inline v16s v16s_mul(v16s a, v16s b) { for (int i = 0; i < 16; i++) a.f[i] = a.f[i] * b.f[i]; return a; }
static inline v16s v16s_sub(v16s a, v16s b) { for (int i = 0; i < 16; i++) a.f[i] = a.f[i] - b.f[i]; return a; }
static inline v16s v16s_div(v16s a, v16s b) { for (int i = 0; i < 16; i++) a.f[i] = a.f[i] / b.f[i]; return a; }
static inline v16s v16s_keep(v16s a, int j0, int j1) { for (int i = 0; i < 16; i++) if (i < j0 || i >= j1) a.f[i] = -INFINITY; return a; }
static inline float v16s_hmax(v16s a) { float m = a.f[0]; for (int i = 1; i < 16; i++) m = fmaxf(m, a.f[i]); return m; }
static inline float v16s_reduce16(v16s a) { return reduce16(a.f); }
static inline v16s v16s_exp(v16s a) { for (int i = 0; i < 16; i++) a.f[i] = attn_expf(a.f[i]); return a; }
static inline float attn_exp1(float x) { return attn_expf(x); }

/* The block's K rows b0 + ja .. b0 + jb - 1 transposed into kt [dk][16] (zeros for the other keys) and
 * its V rows widened into vb [16][dv]. */
static void kv_block_scalar(const struct attn_job *job, const uint8_t *kbase, const uint8_t *vbase, int64_t b0, int ja,
                            int jb, float *kt, float *vb)
{
    const int dk = job->p->head_dim_k, dv = job->p->head_dim_v;
    const bool f16 = job->elt == 2;
    for (int j = 0; j < 16; j++) {
        const bool in = j >= ja && j < jb;
        const uint8_t *kr = kbase + (size_t)(b0 + j) * job->k_row;
        const uint8_t *vr = vbase + (size_t)(b0 + j) * job->v_row;
        for (int d = 0; d < dk; d++)
            kt[(size_t)d * 16 + j] = !in ? 0.0f : f16 ? ae_fp16_to_fp32(((const uint16_t *)kr)[d]) : ((const float *)kr)[d];
        for (int d = 0; d < dv && in; d++)
            vb[(size_t)j * dv + d] = f16 ? ae_fp16_to_fp32(((const uint16_t *)vr)[d]) : ((const float *)vr)[d];
    }
}

#define kv_block kv_block_scalar
#define V16 v16s
#define v16_zero v16s_zero
#define v16_set1 v16s_set1
#define v16_load v16s_load
#define v16_store v16s_store
#define v16_fma v16s_fma
#define v16_mul v16s_mul
#define v16_sub v16s_sub
#define v16_div v16s_div
#define v16_keep v16s_keep
#define v16_hmax v16s_hmax
#define v16_reduce16 v16s_reduce16
#define v16_exp v16s_exp
#define ATTN_FN(name) static void name##_scalar
#include "attention_body.h"
#undef V16
#undef v16_zero
#undef v16_set1
#undef v16_load
#undef v16_store
#undef v16_fma
#undef v16_mul
#undef v16_sub
#undef v16_div
#undef v16_keep
#undef v16_hmax
#undef v16_reduce16
#undef v16_exp
#undef ATTN_FN
#undef kv_block

#if defined(__x86_64__)

/* ---- AVX2: lanes 0-7 and 8-15 in two registers ----------------------------------------------------- */

#define A2 __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

typedef struct {
    __m256 lo, hi;
} v16a;

A2 v16a v16a_zero(void) { return (v16a){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
A2 v16a v16a_set1(float a) { return (v16a){_mm256_set1_ps(a), _mm256_set1_ps(a)}; }
A2 v16a v16a_load(const float *p) { return (v16a){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
A2 void v16a_store(float *p, v16a a) { _mm256_storeu_ps(p, a.lo); _mm256_storeu_ps(p + 8, a.hi); }
A2 v16a v16a_fma(v16a a, v16a b, v16a c) { return (v16a){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
A2 v16a v16a_mul(v16a a, v16a b) { return (v16a){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
A2 v16a v16a_sub(v16a a, v16a b) { return (v16a){_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
A2 v16a v16a_div(v16a a, v16a b) { return (v16a){_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
A2 v16a v16a_keep(v16a a, int j0, int j1)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lo0 = _mm256_set1_epi32(j0 - 1), hi1 = _mm256_set1_epi32(j1);
    const __m256i i8 = _mm256_add_epi32(idx, _mm256_set1_epi32(8));
    const __m256 in_lo = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(idx, lo0), _mm256_cmpgt_epi32(hi1, idx)));
    const __m256 in_hi = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(i8, lo0), _mm256_cmpgt_epi32(hi1, i8)));
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    return (v16a){_mm256_blendv_ps(ninf, a.lo, in_lo), _mm256_blendv_ps(ninf, a.hi, in_hi)};
}
A2 float v16a_hmax(v16a a)
{
    __m256 m = _mm256_max_ps(a.lo, a.hi);
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}
A2 float v16a_reduce16(v16a a)
{
    const __m256 v8 = _mm256_add_ps(a.lo, a.hi);
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    return _mm_cvtss_f32(_mm_add_ss(v2, _mm_movehdup_ps(v2)));
}
A2 __m256 exp8(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(EXP_MAGIC);
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-EXP_LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-EXP_LN2_LO), r);
    __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(EXP_C0), r, _mm256_set1_ps(EXP_C1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_C2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_C3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_C4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_C5));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000)), 23);
    y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
    const __m256 ok = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MIN), _CMP_GE_OQ);
    return _mm256_and_ps(y, ok);
}
A2 v16a v16a_exp(v16a a) { return (v16a){exp8(a.lo), exp8(a.hi)}; }

/* 8 values of a cache row (F16 or F32) from value d on, as f32; n < 8 reads only n of them. */
A2 __m256 row8_avx2(const uint8_t *row, bool f16, int d, int n)
{
    if (n == 8)
        return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * d))) : _mm256_loadu_ps((const float *)row + d);
    float t[8] = {0};
    for (int i = 0; i < n; i++)
        t[i] = f16 ? _cvtsh_ss(((const uint16_t *)row)[d + i]) : ((const float *)row)[d + i];
    return _mm256_loadu_ps(t);
}

/* kv_block_scalar with 8 x 8 transposes in registers. */
__attribute__((target("avx2,fma,f16c"))) static void kv_block_avx2(const struct attn_job *job, const uint8_t *kbase,
                                                                   const uint8_t *vbase, int64_t b0, int ja, int jb,
                                                                   float *kt, float *vb)
{
    const int dk = job->p->head_dim_k, dv = job->p->head_dim_v;
    const bool f16 = job->elt == 2;
    for (int half = 0; half < 2; half++)
        for (int d0 = 0; d0 < dk; d0 += 8) {
            const int n = dk - d0 < 8 ? dk - d0 : 8;
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const int j = 8 * half + i;
                r[i] = j >= ja && j < jb ? row8_avx2(kbase + (size_t)(b0 + j) * job->k_row, f16, d0, n) : _mm256_setzero_ps();
            }
            const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
            const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
            const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
            const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
            const __m256 c[8] = {
                _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31),
            };
            for (int i = 0; i < n; i++) /* c[i]: dimension d0 + i of the 8 keys */
                _mm256_storeu_ps(kt + (size_t)(d0 + i) * 16 + 8 * half, c[i]);
        }
    for (int j = ja; j < jb; j++) {
        const uint8_t *vr = vbase + (size_t)(b0 + j) * job->v_row;
        for (int d = 0; d < dv; d += 8)
            _mm256_storeu_ps(vb + (size_t)j * dv + d, row8_avx2(vr, f16, d, dv - d < 8 ? dv - d : 8));
    }
}

#define kv_block kv_block_avx2
#define V16 v16a
#define v16_zero v16a_zero
#define v16_set1 v16a_set1
#define v16_load v16a_load
#define v16_store v16a_store
#define v16_fma v16a_fma
#define v16_mul v16a_mul
#define v16_sub v16a_sub
#define v16_div v16a_div
#define v16_keep v16a_keep
#define v16_hmax v16a_hmax
#define v16_reduce16 v16a_reduce16
#define v16_exp v16a_exp
#define ATTN_FN(name) __attribute__((target("avx2,fma,f16c"))) static void name##_avx2
#include "attention_body.h"
#undef V16
#undef v16_zero
#undef v16_set1
#undef v16_load
#undef v16_store
#undef v16_fma
#undef v16_mul
#undef v16_sub
#undef v16_div
#undef v16_keep
#undef v16_hmax
#undef v16_reduce16
#undef v16_exp
#undef ATTN_FN
#undef kv_block

/* ---- AVX-512: the 16 lanes in one register ----------------------------------------------------------- */

#define A5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"), always_inline)) static inline

typedef struct {
    __m512 v;
} v16z;

A5 v16z v16z_zero(void) { return (v16z){_mm512_setzero_ps()}; }
A5 v16z v16z_set1(float a) { return (v16z){_mm512_set1_ps(a)}; }
A5 v16z v16z_load(const float *p) { return (v16z){_mm512_loadu_ps(p)}; }
A5 void v16z_store(float *p, v16z a) { _mm512_storeu_ps(p, a.v); }
A5 v16z v16z_fma(v16z a, v16z b, v16z c) { return (v16z){_mm512_fmadd_ps(a.v, b.v, c.v)}; }
A5 v16z v16z_mul(v16z a, v16z b) { return (v16z){_mm512_mul_ps(a.v, b.v)}; }
A5 v16z v16z_sub(v16z a, v16z b) { return (v16z){_mm512_sub_ps(a.v, b.v)}; }
A5 v16z v16z_div(v16z a, v16z b) { return (v16z){_mm512_div_ps(a.v, b.v)}; }
A5 v16z v16z_keep(v16z a, int j0, int j1)
{
    const __mmask16 in = (__mmask16)(((1u << j1) - 1) & ~((1u << j0) - 1));
    return (v16z){_mm512_mask_blend_ps(in, _mm512_set1_ps(-INFINITY), a.v)};
}
A5 float v16z_hmax(v16z a) { return _mm512_reduce_max_ps(a.v); }
A5 float v16z_reduce16(v16z a)
{
    const __m256 v8 = _mm256_add_ps(_mm512_castps512_ps256(a.v),
                                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a.v), 1)));
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    return _mm_cvtss_f32(_mm_add_ss(v2, _mm_movehdup_ps(v2)));
}
A5 v16z v16z_exp(v16z a)
{
    const __m512 x = a.v, magic = _mm512_set1_ps(EXP_MAGIC);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(EXP_LOG2E), magic);
    const __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-EXP_LN2_HI), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-EXP_LN2_LO), r);
    __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(EXP_C0), r, _mm512_set1_ps(EXP_C1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_C2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_C3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_C4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_C5));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
    const __m512i e = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000)), 23);
    y = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(y), e));
    const __mmask16 ok = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_MIN), _CMP_GE_OQ);
    return (v16z){_mm512_maskz_mov_ps(ok, y)};
}

/* 16 values of a cache row from value d on, as f32; the lanes from n on are 0 and not read. */
A5 __m512 row16_avx512(const uint8_t *row, bool f16, int d, int n)
{
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    return f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * d)) : _mm512_maskz_loadu_ps(m, (const float *)row + d);
}

/* kv_block_scalar with 16 x 16 transposes in registers. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))) static void
kv_block_avx512(const struct attn_job *job, const uint8_t *kbase, const uint8_t *vbase, int64_t b0, int ja, int jb,
                float *kt, float *vb)
{
    const int dk = job->p->head_dim_k, dv = job->p->head_dim_v;
    const bool f16 = job->elt == 2;
    for (int d0 = 0; d0 < dk; d0 += 16) {
        const int n = dk - d0 < 16 ? dk - d0 : 16;
        __m512 r[16];
        for (int j = 0; j < 16; j++)
            r[j] = j >= ja && j < jb ? row16_avx512(kbase + (size_t)(b0 + j) * job->k_row, f16, d0, n) : _mm512_setzero_ps();
        /* 16 x 16 transpose: pairs, quads, then 128-bit lanes across registers */
        __m512 t[16], u[16];
        for (int i = 0; i < 8; i++) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 4; i++) {
            const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
            const __m512d c = _mm512_castps_pd(t[4 * i + 1]), e = _mm512_castps_pd(t[4 * i + 3]);
            u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
            u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
            u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
        }
        /* u[4i + k] holds, in each 128-bit lane L, dimension 4L + k of keys 4i .. 4i + 3 */
        for (int k = 0; k < 4; k++) {
            const __m512 a = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88), b = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xdd);
            const __m512 c = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88), e = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xdd);
            /* lanes L of a: keys 0-7, dims k (L even) ... */
            const __m512 d0v = _mm512_shuffle_f32x4(a, c, 0x88), d2v = _mm512_shuffle_f32x4(a, c, 0xdd);
            const __m512 d1v = _mm512_shuffle_f32x4(b, e, 0x88), d3v = _mm512_shuffle_f32x4(b, e, 0xdd);
            const __m512 outv[4] = {d0v, d1v, d2v, d3v}; /* dimensions k, 4 + k, 8 + k, 12 + k */
            for (int L = 0; L < 4; L++)
                if (4 * L + k < n)
                    _mm512_storeu_ps(kt + (size_t)(d0 + 4 * L + k) * 16, outv[L]);
        }
    }
    for (int j = ja; j < jb; j++) {
        const uint8_t *vr = vbase + (size_t)(b0 + j) * job->v_row;
        for (int d = 0; d < dv; d += 16) {
            const int n = dv - d < 16 ? dv - d : 16;
            _mm512_mask_storeu_ps(vb + (size_t)j * dv + d, (__mmask16)((1u << n) - 1), row16_avx512(vr, f16, d, n));
        }
    }
}

#define kv_block kv_block_avx512
#define V16 v16z
#define v16_zero v16z_zero
#define v16_set1 v16z_set1
#define v16_load v16z_load
#define v16_store v16z_store
#define v16_fma v16z_fma
#define v16_mul v16z_mul
#define v16_sub v16z_sub
#define v16_div v16z_div
#define v16_keep v16z_keep
#define v16_hmax v16z_hmax
#define v16_reduce16 v16z_reduce16
#define v16_exp v16z_exp
#define ATTN_FN(name) __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))) static void name##_avx512
#include "attention_body.h"
#undef V16
#undef v16_zero
#undef v16_set1
#undef v16_load
#undef v16_store
#undef v16_fma
#undef v16_mul
#undef v16_sub
#undef v16_div
#undef v16_keep
#undef v16_hmax
#undef v16_reduce16
#undef v16_exp
#undef ATTN_FN
#undef kv_block

#endif

#if defined(__aarch64__)

/* ---- NEON: four registers of four lanes ------------------------------------------------------------- */

typedef struct {
    float32x4_t q[4];
} v16n;

static inline v16n v16n_zero(void) { const float32x4_t z = vdupq_n_f32(0.0f); return (v16n){{z, z, z, z}}; }
static inline v16n v16n_set1(float a) { const float32x4_t v = vdupq_n_f32(a); return (v16n){{v, v, v, v}}; }
static inline v16n v16n_load(const float *p) { return (v16n){{vld1q_f32(p), vld1q_f32(p + 4), vld1q_f32(p + 8), vld1q_f32(p + 12)}}; }
static inline void v16n_store(float *p, v16n a) { for (int i = 0; i < 4; i++) vst1q_f32(p + 4 * i, a.q[i]); }
static inline v16n v16n_fma(v16n a, v16n b, v16n c) { for (int i = 0; i < 4; i++) c.q[i] = vfmaq_f32(c.q[i], a.q[i], b.q[i]); return c; }
static inline v16n v16n_mul(v16n a, v16n b) { for (int i = 0; i < 4; i++) a.q[i] = vmulq_f32(a.q[i], b.q[i]); return a; }
static inline v16n v16n_sub(v16n a, v16n b) { for (int i = 0; i < 4; i++) a.q[i] = vsubq_f32(a.q[i], b.q[i]); return a; }
static inline v16n v16n_div(v16n a, v16n b) { for (int i = 0; i < 4; i++) a.q[i] = vdivq_f32(a.q[i], b.q[i]); return a; }
static inline v16n v16n_keep(v16n a, int j0, int j1)
{
    float t[16];
    v16n_store(t, a);
    for (int i = 0; i < 16; i++)
        if (i < j0 || i >= j1)
            t[i] = -INFINITY;
    return v16n_load(t);
}
static inline float v16n_hmax(v16n a) { return vmaxvq_f32(vmaxq_f32(vmaxq_f32(a.q[0], a.q[1]), vmaxq_f32(a.q[2], a.q[3]))); }
static inline float v16n_reduce16(v16n a)
{
    /* v8 = lanes l and l + 8: q0 + q2, q1 + q3; v4 = their sum; then lanes l and l + 2, then 0 and 1 */
    const float32x4_t v4 = vaddq_f32(vaddq_f32(a.q[0], a.q[2]), vaddq_f32(a.q[1], a.q[3]));
    const float32x4_t v2 = vaddq_f32(v4, vextq_f32(v4, v4, 2));
    return vgetq_lane_f32(v2, 0) + vgetq_lane_f32(v2, 1);
}
static inline float32x4_t exp4(float32x4_t x)
{
    const float32x4_t magic = vdupq_n_f32(EXP_MAGIC);
    const float32x4_t t = vfmaq_f32(magic, x, vdupq_n_f32(EXP_LOG2E));
    const float32x4_t n = vsubq_f32(t, magic);
    float32x4_t r = vfmaq_f32(x, n, vdupq_n_f32(-EXP_LN2_HI));
    r = vfmaq_f32(r, n, vdupq_n_f32(-EXP_LN2_LO));
    float32x4_t y = vfmaq_f32(vdupq_n_f32(EXP_C1), vdupq_n_f32(EXP_C0), r);
    y = vfmaq_f32(vdupq_n_f32(EXP_C2), y, r);
    y = vfmaq_f32(vdupq_n_f32(EXP_C3), y, r);
    y = vfmaq_f32(vdupq_n_f32(EXP_C4), y, r);
    y = vfmaq_f32(vdupq_n_f32(EXP_C5), y, r);
    y = vfmaq_f32(r, y, vmulq_f32(r, r));
    y = vaddq_f32(y, vdupq_n_f32(1.0f));
    const int32x4_t e = vshlq_n_s32(vsubq_s32(vreinterpretq_s32_f32(t), vdupq_n_s32(0x4B400000)), 23);
    y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(y), e));
    const uint32x4_t ok = vcgeq_f32(x, vdupq_n_f32(EXP_MIN));
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), ok));
}
static inline v16n v16n_exp(v16n a) { for (int i = 0; i < 4; i++) a.q[i] = exp4(a.q[i]); return a; }

#define kv_block kv_block_scalar
#define V16 v16n
#define v16_zero v16n_zero
#define v16_set1 v16n_set1
#define v16_load v16n_load
#define v16_store v16n_store
#define v16_fma v16n_fma
#define v16_mul v16n_mul
#define v16_sub v16n_sub
#define v16_div v16n_div
#define v16_keep v16n_keep
#define v16_hmax v16n_hmax
#define v16_reduce16 v16n_reduce16
#define v16_exp v16n_exp
#define ATTN_FN(name) static void name##_neon
#include "attention_body.h"
#undef V16
#undef v16_zero
#undef v16_set1
#undef v16_load
#undef v16_store
#undef v16_fma
#undef v16_mul
#undef v16_sub
#undef v16_div
#undef v16_keep
#undef v16_hmax
#undef v16_reduce16
#undef v16_exp
#undef ATTN_FN
#undef kv_block

#endif

/* ---- the op ---------------------------------------------------------------------------------------- */

/* Floats of one thread's scratch: kt, vb, then per query row q, o, m and l. */
static size_t attn_slice_floats(const struct ae_attn_params *p)
{
    const size_t rows = (size_t)ATTN_TOKENS * (size_t)(p->n_head / p->n_head_kv);
    return (size_t)p->head_dim_k * 16 + (size_t)16 * p->head_dim_v +
           rows * ((size_t)p->head_dim_k + (size_t)p->head_dim_v + 2);
}

static size_t attn_slice_bytes(const struct ae_attn_params *p)
{
    return (attn_slice_floats(p) * sizeof(float) + 63) & ~(size_t)63;
}

static int attn_check(const struct ae_attn_params *p, ae_error *err)
{
    if (!p)
        return ae_fail(err, "attention: no parameters");
    if (p->n_head <= 0 || p->n_head_kv <= 0 || p->n_head % p->n_head_kv != 0)
        return ae_fail(err, "attention: %" PRId32 " query heads is not a positive multiple of %" PRId32 " kv heads",
                       p->n_head, p->n_head_kv);
    if (p->head_dim_k <= 0 || p->head_dim_v <= 0 || p->head_dim_k > 4096 || p->head_dim_v > 4096)
        return ae_fail(err, "attention: head sizes k %" PRId32 ", v %" PRId32 " must be 1..4096", p->head_dim_k,
                       p->head_dim_v);
    if (p->kv_type != AE_TYPE_F16 && p->kv_type != AE_TYPE_F32)
        return ae_fail(err, "attention: KV cache type %s is not supported (expected f16 or f32)",
                       ae_type_name(p->kv_type));
    if (p->n_tokens < 0 || p->pos0 < 0 || p->n_ctx < 0 || p->window < 0)
        return ae_fail(err, "attention: negative tokens %" PRId64 ", position %" PRId64 ", context %" PRId64
                            " or window %" PRId64,
                       p->n_tokens, p->pos0, p->n_ctx, p->window);
    if (p->n_tokens > p->n_ctx - p->pos0)
        return ae_fail(err, "attention: positions %" PRId64 "..%" PRId64 " do not fit a cache of %" PRId64 " rows",
                       p->pos0, p->pos0 + p->n_tokens - 1, p->n_ctx);
    if (p->n_head / p->n_head_kv > 4096)
        return ae_fail(err, "attention: %" PRId32 " query heads per kv head is too many", p->n_head / p->n_head_kv);
    return 0;
}

size_t ae_attention_scratch_size(const struct ae_attn_params *p, int n_threads)
{
    if (attn_check(p, NULL) != 0 || n_threads < 1 || n_threads > AE_POOL_MAX_THREADS)
        return 0;
    return attn_slice_bytes(p) * (size_t)n_threads;
}

typedef void (*attn_body_fn)(const struct attn_job *job, int64_t tok0, int n_tok, int64_t g, float *ws);

struct attn_run {
    struct attn_job job;
    attn_body_fn body;
};

/* Task i: kv head i / tiles, tokens ATTN_TOKENS * (i % tiles) on. */
static void attn_task(void *vctx, int64_t task, int thread)
{
    const struct attn_run *run = vctx;
    const struct attn_job *job = &run->job;
    const int64_t g = task / job->tiles, tok0 = (task % job->tiles) * ATTN_TOKENS;
    const int64_t left = job->p->n_tokens - tok0;
    run->body(job, tok0, left < ATTN_TOKENS ? (int)left : ATTN_TOKENS, g,
              (float *)(job->scratch + (size_t)thread * job->slice));
}

int ae_attention(const struct ae_attn_params *p, const float *q, const void *k_cache, const void *v_cache,
                 float *out, void *scratch, ae_pool *pool, ae_error *err)
{
    if (attn_check(p, err) != 0)
        return -1;
    if (p->n_tokens == 0)
        return 0;
    if (!q || !k_cache || !v_cache || !out || !scratch)
        return ae_fail(err, "attention: NULL query, cache, output or scratch");
    const size_t align = p->kv_type == AE_TYPE_F16 ? 2 : 4;
    if ((uintptr_t)k_cache % align != 0 || (uintptr_t)v_cache % align != 0 || (uintptr_t)scratch % 4 != 0)
        return ae_fail(err, "attention: misaligned cache or scratch");
    const size_t elt = p->kv_type == AE_TYPE_F16 ? sizeof(uint16_t) : sizeof(float);
    struct attn_run run = {
        .job =
            {
                .p = p,
                .q = q,
                .k = k_cache,
                .v = v_cache,
                .out = out,
                .scratch = scratch,
                .slice = attn_slice_bytes(p),
                .k_row = (size_t)p->n_head_kv * (size_t)p->head_dim_k * elt,
                .v_row = (size_t)p->n_head_kv * (size_t)p->head_dim_v * elt,
                .elt = elt,
                .tiles = (p->n_tokens + ATTN_TOKENS - 1) / ATTN_TOKENS,
            },
        .body = attn_task_body_scalar,
    };
#if defined(__x86_64__)
    if (ae_cpu_isa() >= AE_ISA_AVX512)
        run.body = attn_task_body_avx512;
    else if (ae_cpu_isa() >= AE_ISA_AVX2)
        run.body = attn_task_body_avx2;
#elif defined(__aarch64__)
    if (ae_cpu_isa() >= AE_ISA_NEON)
        run.body = attn_task_body_neon;
#endif
    ae_pool_run(pool, attn_task, &run, (int64_t)p->n_head_kv * run.job.tiles);
    return 0;
}
