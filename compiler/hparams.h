/* Hyperparameters of a model, read from GGUF metadata as the compiler uses them.
 *
 * One reader for every architecture family: keys are "<arch>.<name>" as llama.cpp writes them. What a
 * family does not store takes llama.cpp's default (head_dim = n_embd / n_head, n_rot = head_dim,
 * rope base 10000, ...). Missing required keys and values that contradict each other are errors.
 */
#ifndef AE_HPARAMS_H
#define AE_HPARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_gguf.h"

enum rope_kind {
    ROPE_NORMAL, /* rotate adjacent pairs (x0, x1), (x2, x3), ... (llama) */
    ROPE_NEOX,   /* rotate halves (x_i, x_{i + n_rot/2}) (qwen2, phi3, gemma2) */
};

struct hparams {
    char arch[32];            /* general.architecture */
    uint32_t n_vocab;         /* tokens in the vocabulary (token_embd rows) */
    uint32_t n_ctx_train;     /* <arch>.context_length */
    uint32_t n_embd;          /* <arch>.embedding_length */
    uint32_t n_layer;         /* <arch>.block_count */
    uint32_t n_ff;            /* <arch>.feed_forward_length */
    uint32_t n_head;          /* <arch>.attention.head_count */
    uint32_t n_head_kv;       /* <arch>.attention.head_count_kv (default n_head) */
    uint32_t head_dim_k;      /* <arch>.attention.key_length (default n_embd / n_head) */
    uint32_t head_dim_v;      /* <arch>.attention.value_length (default n_embd / n_head) */
    uint32_t n_rot;           /* <arch>.rope.dimension_count (default head_dim_k) */
    enum rope_kind rope;
    float rope_freq_base;     /* <arch>.rope.freq_base (default 10000) */
    float rope_freq_scale;    /* 1 / <arch>.rope.scaling.factor for linear scaling, else 1 */
    char rope_scaling[16];    /* <arch>.rope.scaling.type: "none", "linear", "yarn", ... */
    uint32_t rope_orig_ctx;   /* <arch>.rope.scaling.original_context_length (0 if absent) */
    bool has_rope_freqs;      /* a rope_freqs.weight tensor gives per-dimension frequency factors */
    float rms_eps;            /* <arch>.attention.layer_norm_rms_epsilon */
    float attn_softcap;       /* <arch>.attn_logit_softcapping (0 = none) */
    float final_softcap;      /* <arch>.final_logit_softcapping (0 = none) */
    uint32_t sliding_window;  /* <arch>.attention.sliding_window (0 = none) */
    bool tied_embeddings;     /* no output.weight: logits use token_embd.weight */
    uint32_t file_type;       /* general.file_type (0 if absent) */
};

/* The architectures the compiler builds, NULL-terminated. */
extern const char *const hparams_supported_archs[];

/* Reads general.architecture and its hyperparameters. Fails for an unsupported architecture (the
 * message lists the supported ones), a missing required key, or inconsistent values. */
int hparams_read(const ae_gguf *g, struct hparams *hp, ae_error *err);

#endif
