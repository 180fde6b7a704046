/* llama.cpp's reference outputs (../shared/reference) for the tests that compare against them: the
 * table of shared models with their tolerance class, the prompt/greedy/margin data of each prompt, and
 * the comparison of two logit vectors. The tolerances are the reference README's recommendations. */
#ifndef AE_TEST_REFERENCE_H
#define AE_TEST_REFERENCE_H

#include <stdbool.h>
#include <stdint.h>

#define REF_STEPS 32

enum tol_kind { TOL_F32, TOL_F16, TOL_BF16, TOL_QUANT };

struct model_row {
    const char *file;     /* under models/ */
    const char *ref;      /* folder under reference/ */
    enum tol_kind tol;
    bool force_all;       /* teacher forcing on all three prompts (else prompt 1) */
};

extern const struct model_row ref_models[];
extern const int ref_n_models;
/* The mixture-of-experts and MLA models (tiny-mixtral, tiny-qwen2moe, tiny-deepseek2). */
extern const struct model_row ref_moe_models[];
extern const int ref_n_moe_models;

/* Max abs difference of prompt logits allowed for a class; quantized ones also need RMS <= REF_QUANT_RMS. */
double ref_tol_max_abs(enum tol_kind k);
#define REF_QUANT_RMS 0.15

struct reference {
    int32_t prompt[64];
    uint32_t n_prompt;
    int32_t greedy[REF_STEPS];
    double margin[REF_STEPS];
    float *logits;        /* n_vocab, malloc'd */
};

/* Loads reference/<ref>/prompt<prompt>.kv<kv>.json and its logits ("f16" or "f32"). */
void ref_load(struct reference *r, const char *ref, int prompt, const char *kv, int64_t n_vocab);

/* n floats from a file under the shared folder (malloc'd); fails the test on a size mismatch. */
float *ref_read_floats(const char *rel, int64_t n);

struct ref_diff {
    double max_abs, rms;
    int64_t at;
};

struct ref_diff ref_compare(const float *a, const float *b, int64_t n);

/* Routing near-ties. When the k-th and (k+1)-th largest router logits of a token nearly tie, a difference
 * of rounding upstream makes an implementation run another expert, and its logits then move by far more
 * than the tolerance (reference README, "MoE"); a step with such a decision counts like a step with a
 * small margin. ref_router_trace is an interpreter trace callback (interp_set_trace, ctx a struct
 * router_watch) that records the smallest such gap over the router nodes ("*.ffn_moe_logits") it sees. */
struct router_watch {
    int k;                /* experts used per token */
    double min_gap;       /* set to INFINITY before a step */
};
struct ir_node;
void ref_router_trace(void *ctx, const struct ir_node *n, const float *data, int64_t numel);
/* The gap below which a routing decision counts as a tie, for a tolerance class. */
double ref_router_tol(enum tol_kind k);

/* The index of the largest value; the lowest index wins ties (llama.cpp's greedy sampler). */
int32_t ref_argmax(const float *x, int64_t n);

#endif
