/* The row-wise f32 ops of a transformer and the KV cache store, with ggml's CPU formulas.
 *
 * Each op is the formula llama.cpp evaluates, in the same precision: rms_norm and softmax sum in double,
 * rope builds its angles by repeated multiplication in float as ggml's rope cache does, GELU goes
 * through fp16 as ggml's lookup table does, soft-capping is scale, tanh, scale. Attention is in
 * attention.c. The loops are plain so gcc vectorizes them; the KV store rounds to fp16 with the
 * matmul's conversion (AVX2 where present). Products are separate statements so that no compiler fuses
 * them into FMAs.
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

/* The dimension at which a pair turns n_rot times over n_ctx_orig positions (ggml's rope_yarn_corr_dim). */
static float rope_yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

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
    const struct ae_rope_yarn none = {0.0f, 1.0f, 0, 32.0f, 1.0f}, *yarn = p->yarn ? p->yarn : &none;
    float corr[2] = {0.0f, 0.0f}; /* YaRN's correction dims, as ggml_rope_yarn_corr_dims */
    if (yarn->ext_factor != 0.0f) {
        const float start = floorf(rope_yarn_corr_dim(n_rot, yarn->n_ctx_orig, yarn->beta_fast, p->freq_base));
        const float end = ceilf(rope_yarn_corr_dim(n_rot, yarn->n_ctx_orig, yarn->beta_slow, p->freq_base));
        corr[0] = fmaxf(0.0f, start);
        corr[1] = fminf((float)(n_rot - 1), end);
    }

    for (int64_t t = 0; t < n_tokens; t++) {
        float theta = (float)(pos0 + t);
        for (int i0 = 0; i0 < n_rot; i0 += 2) {
            const float ff = p->freq_factors ? p->freq_factors[i0 / 2] : 1.0f;
            const float extrap = theta / ff;
            const float interp = p->freq_scale * extrap;
            float angle = interp, mscale = yarn->attn_factor;
            if (yarn->ext_factor != 0.0f) {
                const float r = (float)(i0 / 2 - corr[0]) / fmaxf(0.001f, corr[1] - corr[0]);
                const float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, r))) * yarn->ext_factor;
                const float a = interp * (1 - ramp), b = extrap * ramp;
                angle = a + b;
                mscale *= 1.0f + 0.1f * logf(1.0f / p->freq_scale);
            }
            cache[i0] = cosf(angle) * mscale;
            cache[i0 + 1] = sinf(angle) * mscale;
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

/* ---- the KV cache ---------------------------------------------------------------------------------- */

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
        ae_convert_row_f16_fast(src, dst, n);
    } else {
        memcpy((float *)cache + pos0 * row_len, src, (size_t)n * sizeof(float));
    }
    return 0;
}
