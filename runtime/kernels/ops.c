/* The row-wise f32 ops of a transformer, and attention over a KV cache, with ggml's CPU formulas.
 *
 * Each op is the formula llama.cpp evaluates, in the same precision: rms_norm and softmax sum in double,
 * rope builds its angles by repeated multiplication in float as ggml's rope cache does, GELU goes
 * through fp16 as ggml's lookup table does, soft-capping is scale, tanh, scale. Attention is the
 * non-flash path of llama.cpp: q.k per cached position, scale, optional soft-cap, causal (and sliding
 * window) mask, softmax, then the weighted sum of v; with an F16 cache q and the softmax weights are
 * rounded to fp16 before their products, as ggml's F16 matmuls do. The loops are plain so gcc
 * vectorizes them; the q.k and fp16 row products use the matmul's row kernels (AVX2 where present).
 * Products are separate statements so that no compiler fuses them into FMAs.
 */
#include "ae_kernels.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* ---- elementwise and row ops ---------------------------------------------------------------------- */

void ae_rms_norm(const float *x, const float *w, float *y, int64_t n_rows, int64_t n, float eps)
{
    if (n <= 0)
        return;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float sq = xr[i] * xr[i];
            sum += (double)sq;
        }
        const float mean = (float)(sum / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        if (w) {
            for (int64_t i = 0; i < n; i++) {
                const float t = xr[i] * scale;
                yr[i] = t * w[i];
            }
        } else {
            for (int64_t i = 0; i < n; i++)
                yr[i] = xr[i] * scale;
        }
    }
}

/* Replaces n scores by their softmax; the sum of the exponentials in double, as ggml. */
static void softmax_row(float *s, int64_t n)
{
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        max = s[i] > max ? s[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += (double)s[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        s[i] *= inv;
}

void ae_softmax(const float *x, float *y, int64_t n_rows, int64_t n)
{
    if (n <= 0)
        return;
    for (int64_t r = 0; r < n_rows; r++) {
        if (y + r * n != x + r * n)
            memmove(y + r * n, x + r * n, (size_t)n * sizeof *y);
        softmax_row(y + r * n, n);
    }
}

void ae_silu(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float e = expf(-x[i]);
        y[i] = x[i] / (1.0f + e);
    }
}

static const float gelu_coef_a = 0.044715f;
static const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;

/* 0.5 x (1 + tanh(sqrt(2/pi) x (1 + a x^2))), in ggml's order of float operations. */
static float gelu_one(float x)
{
    const float ax = gelu_coef_a * x;
    const float axx = ax * x;
    const float sx = sqrt_2_over_pi * x;
    const float u = sx * (1.0f + axx);
    const float hx = 0.5f * x;
    return hx * (1.0f + tanhf(u));
}

void ae_gelu_f32(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = gelu_one(x[i]);
}

void ae_gelu(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        if (v <= -10.0f) {
            y[i] = 0.0f;
        } else if (v >= 10.0f) {
            y[i] = v;
        } else {
            const float h = ae_fp16_to_fp32(ae_fp32_to_fp16(v));
            y[i] = ae_fp16_to_fp32(ae_fp32_to_fp16(gelu_one(h)));
        }
    }
}

void ae_softcap(const float *x, float *y, int64_t n, float cap)
{
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < n; i++) {
        const float t = x[i] * inv;
        y[i] = tanhf(t) * cap;
    }
}

/* ---- rope ----------------------------------------------------------------------------------------- */

int ae_rope(const float *x, float *y, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
            const struct ae_rope_params *p, ae_error *err)
{
    if (!p)
        return ae_fail(err, "rope: no parameters");
    if (p->n_rot <= 0 || p->n_rot % 2 != 0 || p->n_rot > head_dim || p->n_rot > AE_ROPE_MAX_ROT)
        return ae_fail(err, "rope: n_rot %" PRId32 " must be even, positive, at most head_dim %" PRId64 " and at most %d",
                       p->n_rot, head_dim, AE_ROPE_MAX_ROT);
    if (n_tokens < 0 || n_heads < 0 || pos0 < 0)
        return ae_fail(err, "rope: negative size or position (tokens %" PRId64 ", heads %" PRId64 ", pos %" PRId64 ")",
                       n_tokens, n_heads, pos0);
    if (!(p->freq_base > 0.0f))
        return ae_fail(err, "rope: frequency base %g is not positive", (double)p->freq_base);

    const int n_rot = p->n_rot;
    const float theta_scale = powf(p->freq_base, -2.0f / (float)n_rot);
    float cache[AE_ROPE_MAX_ROT]; /* cos, sin of each pair's angle */

    for (int64_t t = 0; t < n_tokens; t++) {
        float theta = (float)(pos0 + t);
        for (int i0 = 0; i0 < n_rot; i0 += 2) {
            const float ff = p->freq_factors ? p->freq_factors[i0 / 2] : 1.0f;
            const float extrap = theta / ff;
            const float angle = p->freq_scale * extrap;
            cache[i0] = cosf(angle);
            cache[i0 + 1] = sinf(angle);
            theta *= theta_scale;
        }
        for (int64_t h = 0; h < n_heads; h++) {
            const float *xr = x + (t * n_heads + h) * head_dim;
            float *yr = y + (t * n_heads + h) * head_dim;
            const int half = n_rot / 2;
            for (int i = 0; i < half; i++) {
                /* normal: the pair (2i, 2i+1); neox: (i, i + n_rot/2); both use angle i */
                const int a = p->neox ? i : 2 * i;
                const int b = p->neox ? i + half : 2 * i + 1;
                const float c = cache[2 * i], s = cache[2 * i + 1];
                const float x0 = xr[a], x1 = xr[b];
                const float x0c = x0 * c, x1s = x1 * s, x0s = x0 * s, x1c = x1 * c;
                yr[a] = x0c - x1s;
                yr[b] = x0s + x1c;
            }
            if (yr != xr)
                memmove(yr + n_rot, xr + n_rot, (size_t)(head_dim - n_rot) * sizeof *yr);
        }
    }
    return 0;
}

/* ---- attention ------------------------------------------------------------------------------------ */

/* The kernel set of the current level, falling back to scalar entries. */
static const struct ae_kernel_set *ops_kernels(void)
{
    const struct ae_kernel_set *set = ae_cpu_isa() >= AE_ISA_AVX2 ? ae_kernels_avx2() : NULL;
    return set ? set : ae_kernels_scalar();
}

/* Bytes of one thread's scratch: n_ctx scores, then head_dim_k halves for q, 64-byte rounded. */
static size_t attn_slice_bytes(const struct ae_attn_params *p)
{
    const size_t bytes = (size_t)p->n_ctx * sizeof(float) + (size_t)p->head_dim_k * sizeof(uint16_t);
    return (bytes + 63) & ~(size_t)63;
}

static int attn_check(const struct ae_attn_params *p, ae_error *err)
{
    if (!p)
        return ae_fail(err, "attention: no parameters");
    if (p->n_head <= 0 || p->n_head_kv <= 0 || p->n_head % p->n_head_kv != 0)
        return ae_fail(err, "attention: %" PRId32 " query heads is not a positive multiple of %" PRId32 " kv heads",
                       p->n_head, p->n_head_kv);
    if (p->head_dim_k <= 0 || p->head_dim_v <= 0)
        return ae_fail(err, "attention: head sizes k %" PRId32 ", v %" PRId32 " must be positive", p->head_dim_k,
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
    if ((uint64_t)p->n_ctx > SIZE_MAX / 16 / AE_POOL_MAX_THREADS)
        return ae_fail(err, "attention: context %" PRId64 " is too large", p->n_ctx);
    return 0;
}

size_t ae_attention_scratch_size(const struct ae_attn_params *p, int n_threads)
{
    if (attn_check(p, NULL) != 0 || n_threads < 1 || n_threads > AE_POOL_MAX_THREADS)
        return 0;
    return attn_slice_bytes(p) * (size_t)n_threads;
}

struct attn_job {
    const struct ae_attn_params *p;
    const float *q;
    const uint8_t *k, *v;
    float *out;
    uint8_t *scratch;
    size_t slice;
    size_t k_row, v_row; /* bytes of one cache row */
    size_t elt;          /* bytes of one cache value */
    ae_gemm_fn dot; /* q.k for a run of cache rows */
    const struct ae_kernel_set *set;
};

/* One (token, head) pair: out = softmax(mask(softcap(scale * q.k))) v. */
static void attn_task(void *vctx, int64_t task, int thread)
{
    const struct attn_job *job = vctx;
    const struct ae_attn_params *p = job->p;
    const bool f16 = p->kv_type == AE_TYPE_F16;
    const int64_t t = task / p->n_head;
    const int64_t h = task % p->n_head;
    const int64_t g = h / (p->n_head / p->n_head_kv);
    const int64_t pos = p->pos0 + t;
    const int64_t lo = p->window > 0 && pos - p->window + 1 > 0 ? pos - p->window + 1 : 0;
    const int64_t n = pos - lo + 1;

    float *s = (float *)(job->scratch + (size_t)thread * job->slice);
    uint16_t *q16 = (uint16_t *)(s + p->n_ctx);
    const float *qr = job->q + (t * p->n_head + h) * p->head_dim_k;
    const void *qv = qr;
    if (f16) {
        job->set->to_f16(qr, q16, p->head_dim_k);
        qv = q16;
    }

    const uint8_t *kbase = job->k + (size_t)g * (size_t)p->head_dim_k * job->elt;
    const float inv_cap = p->softcap > 0.0f ? 1.0f / p->softcap : 0.0f;
    job->dot(p->head_dim_k, kbase + (size_t)lo * job->k_row, job->k_row, n, qv, 0, 1, s, 0);
    for (int64_t j = 0; j < n; j++) {
        float v = s[j] * p->scale;
        if (p->softcap > 0.0f) {
            const float c = v * inv_cap;
            v = tanhf(c) * p->softcap;
        }
        s[j] = v;
    }
    softmax_row(s, n);

    float *o = job->out + (t * p->n_head + h) * p->head_dim_v;
    memset(o, 0, (size_t)p->head_dim_v * sizeof *o);
    const uint8_t *vbase = job->v + (size_t)g * (size_t)p->head_dim_v * job->elt;
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *vr = vbase + (size_t)(lo + j) * job->v_row;
        if (f16) {
            const float w = ae_fp16_to_fp32(ae_fp32_to_fp16(s[j]));
            job->set->mad_f16(p->head_dim_v, o, (const uint16_t *)vr, w);
        } else {
            const float *vf = (const float *)vr;
            for (int32_t d = 0; d < p->head_dim_v; d++) {
                const float pv = s[j] * vf[d];
                o[d] += pv;
            }
        }
    }
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

    const struct ae_kernel_set *set = ops_kernels();
    const size_t elt = p->kv_type == AE_TYPE_F16 ? sizeof(uint16_t) : sizeof(float);
    struct attn_job job = {
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
        .dot = ae_kernel_gemm(p->kv_type, AE_LAYOUT_ROWS),
        .set = set,
    };
    if (!job.set->to_f16)
        job.set = ae_kernels_scalar();
    ae_pool_run(pool, attn_task, &job, p->n_tokens * p->n_head);
    return 0;
}

int ae_kv_store(uint32_t kv_type, void *cache, int64_t n_ctx, int64_t row_len, int64_t pos0, const float *src,
                int64_t n_rows, ae_error *err)
{
    if (kv_type != AE_TYPE_F16 && kv_type != AE_TYPE_F32)
        return ae_fail(err, "kv store: cache type %s is not supported (expected f16 or f32)", ae_type_name(kv_type));
    if (n_ctx < 0 || row_len < 0 || pos0 < 0 || n_rows < 0 || n_rows > n_ctx - pos0)
        return ae_fail(err, "kv store: rows %" PRId64 "..%" PRId64 " do not fit a cache of %" PRId64 " rows", pos0,
                       pos0 + n_rows - 1, n_ctx);
    if (n_rows == 0 || row_len == 0)
        return 0;
    if (!cache || !src)
        return ae_fail(err, "kv store: NULL cache or source");
    const int64_t n = n_rows * row_len;
    if (kv_type == AE_TYPE_F16) {
        uint16_t *dst = (uint16_t *)cache + pos0 * row_len;
        ops_kernels()->to_f16(src, dst, n);
    } else {
        memcpy((float *)cache + pos0 * row_len, src, (size_t)n * sizeof(float));
    }
    return 0;
}
