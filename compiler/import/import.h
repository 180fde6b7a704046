/* GGUF to IR: reads a model's hyperparameters from its metadata and builds its forward step as a graph.
 *
 * import_model dispatches on general.architecture to one builder per family (compiler/import/import_<arch>.c).
 * Every hyperparameter comes from the file's metadata (or llama.cpp's documented default when a key is
 * optional); every tensor is looked up by name and its type and shape checked before the graph is
 * built, so a bad file gives an error naming the key or tensor and never a half-built graph.
 *
 * The graph computes, for T new tokens at positions P..P+T-1, the logits of the last one (or of every
 * one with all_logits) and appends the tokens' K and V to the cache. Its math follows llama.cpp's
 * graph for the same architecture op by op, so the interpreter reproduces llama.cpp's numbers.
 */
#ifndef AE_IMPORT_H
#define AE_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_error.h"
#include "ae_gguf.h"
#include "ir.h"

enum import_rope_scaling { IMPORT_ROPE_SCALING_NONE, IMPORT_ROPE_SCALING_LINEAR, IMPORT_ROPE_SCALING_YARN };

/* What the metadata says, with defaults applied. */
struct import_hparams {
    char arch[32];                /* general.architecture */
    uint32_t n_vocab;             /* rows of token_embd.weight */
    uint32_t n_embd;              /* <arch>.embedding_length */
    uint32_t n_layer;             /* <arch>.block_count */
    uint32_t n_ff;                /* <arch>.feed_forward_length */
    uint32_t n_head, n_head_kv;   /* attention.head_count, head_count_kv (default: n_head) */
    uint32_t head_dim_k;          /* attention.key_length (default: n_embd / n_head) */
    uint32_t head_dim_v;          /* attention.value_length (default: n_embd / n_head) */
    uint32_t n_rot;               /* rope.dimension_count (default: head_dim_k) */
    uint32_t n_ctx_train;         /* context_length */
    float rms_eps;                /* attention.layer_norm_rms_epsilon */
    float rope_freq_base;         /* rope.freq_base (default 10000) */
    float rope_freq_scale;        /* 1 / rope.scaling.factor (or rope.scale_linear); 1 without scaling */
    enum import_rope_scaling rope_scaling; /* rope.scaling.type */
    uint32_t n_ctx_orig;          /* rope.scaling.original_context_length (default: n_ctx_train) */
    float yarn_ext_factor;        /* 1 for YaRN, else 0 */
    float yarn_attn_factor;       /* rope.scaling.attn_factor (default 1) */
    float yarn_beta_fast, yarn_beta_slow; /* rope.scaling.yarn_beta_fast/slow (default 32, 1) */
    float attn_scale;             /* attention.scale; 0: 1/sqrt(head_dim_k) */
    float attn_softcap;           /* attn_logit_softcapping; 0: none */
    float final_softcap;          /* final_logit_softcapping; 0: none */
    uint32_t sliding_window;      /* attention.sliding_window; 0: none */
    enum ir_rope_mode rope_mode;  /* the family's rotation: adjacent pairs (llama) or halves (neox) */
    bool tied_embeddings;         /* no output.weight: the lm head is token_embd.weight */
    /* Mixture of experts (all 0 for a dense model). */
    uint32_t n_expert;            /* expert_count */
    uint32_t n_expert_used;       /* expert_used_count: the k of the top-k routing */
    uint32_t n_ff_exp;            /* expert_feed_forward_length; 0 when absent (the family's default) */
    uint32_t n_ff_shexp;          /* expert_shared_feed_forward_length; 0 when absent */
    uint32_t n_expert_shared;     /* expert_shared_count */
    uint32_t n_layer_dense_lead;  /* leading_dense_block_count: layers before the first MoE layer */
    float expert_weights_scale;   /* expert_weights_scale; 0 when absent */
    bool expert_weights_norm;     /* expert_weights_norm: routing weights divided by their sum */
    uint32_t expert_gating_func;  /* expert_gating_func: IMPORT_GATING_SOFTMAX or _SIGMOID (default softmax) */
    /* Multi-head latent attention (deepseek2). */
    uint32_t n_lora_q;            /* attention.q_lora_rank; 0: a plain attn_q */
    uint32_t n_lora_kv;           /* attention.kv_lora_rank */
    float rope_yarn_log_mul;      /* rope.scaling.yarn_log_multiplier */
    /* The context: the one place it is decided (import_model). n_ctx is what the program runs with by
     * default (import_options.n_ctx, or the training context capped at IMPORT_DEFAULT_CTX); the graph is
     * right for every context from n_ctx_min to n_ctx_max (1 and the training context, unless a choice
     * the graph makes depends on the context, such as phi3's rope factors). */
    uint32_t n_ctx, n_ctx_min, n_ctx_max;
};

enum { IMPORT_GATING_SOFTMAX = 1, IMPORT_GATING_SIGMOID = 2 };

/* The default context when none is asked for: the training context, at most this (a 128k-token KV
 * cache is rarely what a first run wants). */
#define IMPORT_DEFAULT_CTX 4096

struct import_options {
    uint32_t kv_type;             /* AE_TYPE_F16 (llama.cpp's default) or AE_TYPE_F32 */
    bool all_logits;              /* logits for every token of the step, not only the last */
    uint32_t n_ctx;               /* the context the program runs with by default (1 to the training
                                     context); 0: the training context, at most IMPORT_DEFAULT_CTX */
};

void import_options_init(struct import_options *o);

/* The supported architectures, comma-separated, for messages. */
const char *import_supported_archs(void);

/* Builds the graph of the model in f. hp (may be NULL) receives the hyperparameters. On failure *out is
 * untouched and err names the file and the key or tensor at fault. The graph passes ir_verify. */
int import_model(struct ir_graph **out, const ae_gguf *f, const struct import_options *opt,
                 struct import_hparams *hp, ae_error *err);

/* Reads general.architecture (an error lists the supported ones) and that family's hyperparameters. */
int import_model_hparams(const ae_gguf *f, struct import_hparams *hp, ae_error *err);

/* Reads the hyperparameters of architecture arch (keys "<arch>.*") and n_vocab from token_embd.weight. */
int import_read_hparams(const ae_gguf *f, const char *arch, struct import_hparams *hp, ae_error *err);

/* ---- For the per-architecture builders (compiler/import/import_<arch>.c) --------------------------------- */

struct import_ctx {
    const ae_gguf *f;
    struct ir_graph *g;
    const struct import_hparams *hp;
    const struct import_options *opt;
    struct ir_node *tokens;       /* i32 [T] */
    struct ir_node *positions;    /* i32 [T]: P .. P+T-1 */
    uint32_t n_ctx_min, n_ctx_max; /* the contexts the graph is right for; a builder narrows them */
    ae_error *err;
    char name_buf[160];           /* import_name's result */
};

/* The weights one decoder layer may have; absent optional ones are NULL. Shapes are IR shapes
 * (GGUF ne reversed): a projection from n_in to n_out features is [n_out, n_in]. */
struct import_layer {
    struct ir_node *attn_norm;        /* [n_embd] */
    struct ir_node *wq, *wk, *wv;     /* [n_head*hd_k, n_embd], [n_head_kv*hd_k, n_embd], [n_head_kv*hd_v, n_embd] */
    struct ir_node *bq, *bk, *bv;     /* biases of the same row counts, or NULL */
    struct ir_node *wqkv;             /* phi3: q, k and v rows in one matrix */
    struct ir_node *wo, *bo;          /* [n_embd, n_head*hd_v]; bias [n_embd] or NULL */
    struct ir_node *attn_post_norm;   /* gemma2: [n_embd] */
    struct ir_node *ffn_norm;         /* [n_embd] */
    struct ir_node *ffn_gate;         /* [n_ff, n_embd], or NULL when ffn_up holds gate and up (phi3) */
    struct ir_node *ffn_up;           /* [n_ff, n_embd] or [2*n_ff, n_embd] */
    struct ir_node *ffn_down;         /* [n_embd, n_ff] */
    struct ir_node *ffn_post_norm;    /* gemma2: [n_embd] */
};

/* A weight node for tensor name (created once, then reused). The tensor must exist with the given IR
 * shape; required=false returns 0 with *out NULL when it is absent. 1-D tensors must be F32. */
int import_weight(struct import_ctx *c, struct ir_node **out, const char *name, uint32_t rank,
                  const int64_t *shape, bool required);
/* The same for "blk.<layer>.<suffix>". */
int import_layer_weight(struct import_ctx *c, struct ir_node **out, uint32_t layer, const char *suffix,
                        uint32_t rank, const int64_t *shape, bool required);
/* A 1-D weight [n] / a 2-D weight [rows, cols] of a layer. */
int import_layer_vec(struct import_ctx *c, struct ir_node **out, uint32_t layer, const char *suffix, int64_t n,
                     bool required);
int import_layer_mat(struct import_ctx *c, struct ir_node **out, uint32_t layer, const char *suffix,
                     int64_t rows, int64_t cols, bool required);

/* rms_norm(x) * w, named name. */
struct ir_node *import_rms_norm(struct import_ctx *c, struct ir_node *x, struct ir_node *w, const char *name);
/* x w^T (+ b), named name. */
struct ir_node *import_linear(struct import_ctx *c, struct ir_node *x, struct ir_node *w, struct ir_node *b,
                              const char *name);

struct import_attn_params {
    enum ir_rope_mode rope_mode;
    struct ir_node *rope_factors;     /* [n_rot/2] or NULL */
    float q_scale;                    /* 0: none; else q is scaled after rope (gemma2, phi3) */
    float kq_scale;                   /* the attention op's scale */
    float softcap;                    /* 0: none */
    int32_t window;                   /* 0: none */
};
/* The rope parameters of the file (base, scaling, YaRN) with the given rotation. */
struct ir_rope_params import_rope_params(const struct import_ctx *c, enum ir_rope_mode mode);
/* Appends k [T, Hkv, Dk] and v [T, Hkv, Dv] to the layer's caches and attends q [T, H, Dk] over them
 * (causal, ap's scale, softcap and window): [T, H*Dv] before the output projection. */
struct ir_node *import_attend(struct import_ctx *c, uint32_t layer, struct ir_node *q, struct ir_node *k,
                              struct ir_node *v, const struct import_attn_params *ap);
/* Self-attention of one layer from projected q [T, n_head*hd_k], k [T, n_head_kv*hd_k] and
 * v [T, n_head_kv*hd_v]: rope, cache store, causal attention; returns [T, n_head*hd_v] before the
 * output projection. */
struct ir_node *import_self_attention(struct import_ctx *c, uint32_t layer, struct ir_node *q, struct ir_node *k,
                                      struct ir_node *v, const struct import_attn_params *ap);
/* act(x gate^T) * (x up^T), then down: the gated FFN of llama (silu) and gemma2 (gelu). */
struct ir_node *import_ffn_gated(struct import_ctx *c, uint32_t layer, struct ir_node *x, struct ir_node *gate,
                                 struct ir_node *up, struct ir_node *down, enum ir_op act);
/* The expert weights of one MoE layer (import_moe.c). Shapes [n_expert, out, in]. */
struct import_moe {
    struct ir_node *router;           /* ffn_gate_inp [n_expert, n_embd] */
    struct ir_node *probs_bias;       /* exp_probs_b [n_expert] (selection only), or NULL */
    struct ir_node *gate, *up;        /* [n_expert, n_ff_exp, n_embd] */
    struct ir_node *down;             /* [n_expert, n_embd, n_ff_exp] */
};
/* Loads the experts of a layer, each n_ff_exp wide. */
int import_moe_load(struct import_ctx *c, uint32_t layer, int64_t n_ff_exp, struct import_moe *m);
/* The routed experts' output [T, n_embd] for x [T, n_embd]: top-k routing (softmax or sigmoid as the
 * file says), weights divided by their sum when norm, times scale, SwiGLU experts, weighted sum. */
struct ir_node *import_moe_ffn(struct import_ctx *c, uint32_t layer, struct ir_node *x, const struct import_moe *m,
                               bool norm, float scale);
/* Each row of x [T, D] times the matching value of s [T, 1]. */
struct ir_node *import_scaled_rows(struct import_ctx *c, struct ir_node *x, struct ir_node *s, const char *name);

/* The last row (unless all_logits), output norm, lm head (output.weight, or token_embd.weight when
 * the file ties them), optional final softcap, and the output node. */
int import_logits(struct import_ctx *c, struct ir_node *x, float final_softcap);
/* token_embd.weight rows for the input tokens: f32 [T, n_embd]. */
int import_embeddings(struct import_ctx *c, struct ir_node **out);

/* The node name "blk.<layer>.<what>" (or "<what>" for layer < 0), in c->name_buf: valid until the
 * next call; the builders copy it. */
const char *import_name(struct import_ctx *c, int32_t layer, const char *what);

/* The builders, one per architecture. */
/* What sets the families built by import_build_llama_like apart. */
struct import_llama_variant {
    bool qkv_bias;                /* the q/k/v biases are required (qwen2, qwen2moe) rather than optional */
    bool moe_norm;                /* routing weights divided by their sum (llama with experts) */
    bool gated_shared_expert;     /* qwen2moe: plus a shared expert gated by sigmoid(x . ffn_gate_inp_shexp) */
};
/* llama's graph, with a dense FFN or, when the file has experts, a MoE FFN. */
int import_build_llama_like(struct import_ctx *c, const struct import_llama_variant *v);
int import_build_llama(struct import_ctx *c);
int import_build_qwen2(struct import_ctx *c);
int import_build_phi3(struct import_ctx *c);
int import_build_gemma2(struct import_ctx *c);
int import_build_qwen2moe(struct import_ctx *c);
int import_build_deepseek2(struct import_ctx *c);

#endif
