/* llama.cpp's reference outputs for the tests (test_reference.h). */
#include "test_reference.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "test_util.h"

const struct model_row ref_models[] = {
    {"stories260K.gguf", "stories260K", TOL_F32, true},
    {"synthetic/tiny-llama-f32.gguf", "tiny-llama-f32", TOL_F32, true},
    {"synthetic/tiny-qwen2-f32.gguf", "tiny-qwen2-f32", TOL_F32, true},
    {"synthetic/tiny-phi3-f32.gguf", "tiny-phi3-f32", TOL_F32, true},
    {"synthetic/tiny-gemma2-f32.gguf", "tiny-gemma2-f32", TOL_F32, true},
    {"synthetic/tiny-llama-f16.gguf", "tiny-llama-f16", TOL_F16, false},
    {"llama-2-tiny-random.gguf", "llama-2-tiny-random", TOL_F16, false},
    {"synthetic/tiny-llama-bf16.gguf", "tiny-llama-bf16", TOL_BF16, false},
    {"synthetic/tiny-llama-q8_0.gguf", "tiny-llama-q8_0", TOL_QUANT, false},
    {"synthetic/tiny-llama-q6_k.gguf", "tiny-llama-q6_k", TOL_QUANT, false},
    {"synthetic/tiny-llama-q5_k.gguf", "tiny-llama-q5_k", TOL_QUANT, false},
    {"synthetic/tiny-llama-q5_1.gguf", "tiny-llama-q5_1", TOL_QUANT, false},
    {"synthetic/tiny-llama-q5_0.gguf", "tiny-llama-q5_0", TOL_QUANT, false},
    {"synthetic/tiny-llama-q4_k.gguf", "tiny-llama-q4_k", TOL_QUANT, false},
    {"synthetic/tiny-llama-q4_k_m.gguf", "tiny-llama-q4_k_m", TOL_QUANT, false},
    {"synthetic/tiny-llama-q4_1.gguf", "tiny-llama-q4_1", TOL_QUANT, false},
    {"synthetic/tiny-llama-q4_0.gguf", "tiny-llama-q4_0", TOL_QUANT, false},
    {"synthetic/tiny-llama-q3_k.gguf", "tiny-llama-q3_k", TOL_QUANT, false},
    {"synthetic/tiny-llama-q2_k.gguf", "tiny-llama-q2_k", TOL_QUANT, false},
    {"synthetic/tiny-llama-iq4_nl.gguf", "tiny-llama-iq4_nl", TOL_QUANT, false},
    {"synthetic/tiny-llama-iq4_xs.gguf", "tiny-llama-iq4_xs", TOL_QUANT, false},
    {"synthetic/tiny-llama-tq2_0.gguf", "tiny-llama-tq2_0", TOL_QUANT, false},
    {"synthetic/tiny-llama-tq1_0.gguf", "tiny-llama-tq1_0", TOL_QUANT, false},
    {"synthetic/tiny-qwen2-q8_0.gguf", "tiny-qwen2-q8_0", TOL_QUANT, false},
    {"synthetic/tiny-qwen2-q4_k.gguf", "tiny-qwen2-q4_k", TOL_QUANT, false},
    {"synthetic/tiny-qwen2-q4_0.gguf", "tiny-qwen2-q4_0", TOL_QUANT, false},
    {"synthetic/tiny-phi3-q8_0.gguf", "tiny-phi3-q8_0", TOL_QUANT, false},
    {"synthetic/tiny-phi3-q4_k.gguf", "tiny-phi3-q4_k", TOL_QUANT, false},
    {"synthetic/tiny-phi3-q4_0.gguf", "tiny-phi3-q4_0", TOL_QUANT, false},
    {"synthetic/tiny-gemma2-q8_0.gguf", "tiny-gemma2-q8_0", TOL_QUANT, false},
    {"synthetic/tiny-gemma2-q4_0.gguf", "tiny-gemma2-q4_0", TOL_QUANT, false},
    {"stories260K-q8_0.gguf", "stories260K-q8_0", TOL_QUANT, false},
    {"stories260K-q4_0.gguf", "stories260K-q4_0", TOL_QUANT, false},
};
const int ref_n_models = (int)(sizeof ref_models / sizeof ref_models[0]);

const struct model_row ref_moe_models[] = {
    {"synthetic/tiny-mixtral-f32.gguf", "tiny-mixtral-f32", TOL_F32, true},
    {"synthetic/tiny-qwen2moe-f32.gguf", "tiny-qwen2moe-f32", TOL_F32, true},
    {"synthetic/tiny-deepseek2-f32.gguf", "tiny-deepseek2-f32", TOL_F32, true},
    {"synthetic/tiny-mixtral-q8_0.gguf", "tiny-mixtral-q8_0", TOL_QUANT, false},
    {"synthetic/tiny-mixtral-q4_0.gguf", "tiny-mixtral-q4_0", TOL_QUANT, false},
    {"synthetic/tiny-mixtral-q4_k_m.gguf", "tiny-mixtral-q4_k_m", TOL_QUANT, false},
    {"synthetic/tiny-qwen2moe-q8_0.gguf", "tiny-qwen2moe-q8_0", TOL_QUANT, false},
    {"synthetic/tiny-deepseek2-q8_0.gguf", "tiny-deepseek2-q8_0", TOL_QUANT, false},
};
const int ref_n_moe_models = (int)(sizeof ref_moe_models / sizeof ref_moe_models[0]);

double ref_tol_max_abs(enum tol_kind k)
{
    switch (k) {
    case TOL_F32: return 2e-2;
    case TOL_F16: return 2e-2;
    case TOL_BF16: return 0.1;
    case TOL_QUANT: return 0.5;
    }
    return 0;
}

/* The numbers of the JSON array under "key": a tiny scanner, enough for the reference files. */
static uint32_t json_array(const char *text, const char *key, double *out, uint32_t max)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    ck_assert_msg(p != NULL, "reference JSON has no key \"%s\"", key);
    p = strchr(p + strlen(pat), '[');
    ck_assert_msg(p != NULL, "reference JSON key \"%s\" is not an array", key);
    p++;
    uint32_t n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == ',')
            p++;
        if (*p == ']')
            break;
        char *e;
        double v = strtod(p, &e);
        ck_assert_msg(e != p, "reference JSON key \"%s\": bad number at '%.16s'", key, p);
        ck_assert_msg(n < max, "reference JSON key \"%s\" has more than %u entries", key, max);
        out[n++] = v;
        p = e;
    }
    return n;
}

float *ref_read_floats(const char *rel, int64_t n)
{
    size_t size;
    float *f = test_read_file(test_shared_path(rel), &size);
    ck_assert_msg(size == (size_t)n * sizeof(float), "%s has %zu bytes, expected %" PRId64 " floats", rel, size, n);
    return f;
}

void ref_load(struct reference *r, const char *ref, int prompt, const char *kv, int64_t n_vocab)
{
    char rel[256];
    size_t size;
    double tmp[64];
    snprintf(rel, sizeof rel, "reference/%s/prompt%d.kv%s.json", ref, prompt, kv);
    char *raw = test_read_file(test_shared_path(rel), &size);
    char *text = malloc(size + 1);
    ck_assert(text != NULL);
    memcpy(text, raw, size);
    text[size] = 0;
    free(raw);
    r->n_prompt = json_array(text, "prompt_tokens", tmp, 64);
    for (uint32_t i = 0; i < r->n_prompt; i++)
        r->prompt[i] = (int32_t)tmp[i];
    ck_assert_uint_eq(json_array(text, "greedy_tokens", tmp, 64), REF_STEPS);
    for (uint32_t i = 0; i < REF_STEPS; i++)
        r->greedy[i] = (int32_t)tmp[i];
    ck_assert_uint_eq(json_array(text, "greedy_margins", r->margin, REF_STEPS), REF_STEPS);
    free(text);
    snprintf(rel, sizeof rel, "reference/%s/prompt%d.kv%s.logits.f32", ref, prompt, kv);
    r->logits = ref_read_floats(rel, n_vocab);
}

struct ref_diff ref_compare(const float *a, const float *b, int64_t n)
{
    struct ref_diff d = {0, 0, 0};
    double sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d.max_abs)) {
            d.max_abs = e;
            d.at = i;
        }
        sq += e * e;
    }
    d.rms = sqrt(sq / (double)n);
    return d;
}

int32_t ref_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

void ref_router_trace(void *ctx, const struct ir_node *n, const float *data, int64_t numel)
{
    struct router_watch *w = ctx;
    size_t len = n->name ? strlen(n->name) : 0;
    if (len < 14 || strcmp(n->name + len - 14, "ffn_moe_logits") != 0 || n->rank != 2 || n->shape[1] <= w->k)
        return;
    int64_t E = n->shape[1];
    for (int64_t r = 0; r < numel / E; r++) {
        const float *v = data + r * E;
        /* the k-th and (k+1)-th largest: count, for each value, how many are larger */
        double kth = -INFINITY, next = -INFINITY;
        for (int64_t i = 0; i < E; i++) {
            int larger = 0;
            for (int64_t j = 0; j < E; j++)
                larger += v[j] > v[i] || (v[j] == v[i] && j < i);
            if (larger == w->k - 1)
                kth = v[i];
            else if (larger == w->k)
                next = v[i];
        }
        if (kth - next < w->min_gap)
            w->min_gap = kth - next;
    }
}

double ref_router_tol(enum tol_kind k)
{
    return k == TOL_QUANT ? 0.05 : 1e-3;
}
