/* The backend-neutral lowering: the optimized graph as the steps a backend prints.
 *
 * Everything a backend needs to know about the program is decided here, once, for every backend; a
 * printer (emit_c.c prints C; a Vulkan printer would print shaders and command buffers) walks the
 * result and never looks back at the IR for it:
 *   - storage: every node's value as a reference (struct lower_ref): the activation arena at the offset
 *     the memory plan gave it, a weight by its slot in the pack, a layer's K or V cache, the
 *     step's token ids, the logits. A view (reshape, last_row, and kv_store, which is its cache) refers to
 *     its source's storage, at an offset for last_row.
 *   - steps: every node that computes becomes one or more steps, in graph order (struct lower_step): a
 *     kernel kind, the references it writes and reads, its constant shape parameters, and the
 *     elementwise steps fused after it (its epilogue). Sizes that depend on the step's token count T
 *     or the cache length P are struct lower_size, k + t*T + p*P; everything else is a constant.
 *   - checks: a node that no kernel can run (attention that does not read the cache, a weight type the
 *     target's matmul does not take, a step kind the target lacks, ...) is refused here, the message naming
 *     the node.
 * docs/emit.md describes the step kinds and how a printer uses them.
 */
#ifndef AE_LOWER_H
#define AE_LOWER_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_error.h"
#include "ir.h"
#include "ir_fused.h"
#include "pack_build.h"
#include "pass.h"

/* What a backend tells the lowering about itself. */
struct lower_target {
    const char *backend;                    /* in messages: "the C backend cannot emit ..." */
    const char *kernels;                    /* whose kernels: "no CPU matmul kernel for this weight type" */
    uint64_t arena_alignment;               /* the memory plan's alignment of every arena offset */
    bool (*matmul_supports)(uint32_t type); /* whether its matmul reads weights of this ggml type */
    uint32_t missing_kinds;                 /* 1u << enum lower_kind for every step kind it has no kernel for */
    bool matmul_parts;                      /* its matmul runs a group of matmuls (pass_matmul_groups) as
                                             * one: one MATMUL step with parts at the group's head */
};

/* A count, or a byte offset, that may depend on the step: k + t*T + p*P + r*R. R is the number of
 * sequences in a batched step (lower_program_batched); the other steps have no R. */
struct lower_size {
    int64_t k, t, p, r;
};

/* The storage a reference points into. */
enum lower_base {
    LOWER_NOWHERE,    /* no storage: the step's positions, which the kernels compute from P */
    LOWER_TOKENS,     /* the step's token ids, i32[T] */
    LOWER_ARENA,      /* the activation arena (struct ae_state.arena): f32 values */
    LOWER_WEIGHTS,    /* one weight (slot), in its own ggml type: ae_state.weights[slot] (pack_build.h) */
    LOWER_K_CACHE,    /* the K cache of one layer: [n_ctx, n_head_kv, head_dim_k] in the run's KV type */
    LOWER_V_CACHE,    /* the V cache of one layer */
    LOWER_LOGITS,     /* the step's result: the logits of its last token */
};

/* Where a value lives: a byte offset into a base. */
struct lower_ref {
    enum lower_base base;
    uint32_t dtype;               /* the value's ggml type: a weight's own, f32 activations, i32 tokens */
    int32_t layer;                /* K_CACHE, V_CACHE: the layer */
    uint32_t slot;                /* WEIGHTS: the weight's slot */
    struct lower_size offset;     /* bytes from the start of the base (the weight, the layer's cache) */
};

/* The kernels. In each, out is the result, in[] the sources in the order given, rows the result's
 * every dimension but the last and cols its last one. */
enum lower_kind {
    LOWER_GET_ROWS,   /* in: table, ids. out[i, :] = row ids[i] of table, dequantized; rows = ids' count */
    LOWER_MATMUL,     /* in: x [rows, k], w [n, k]. out[r, j] = sum x[r, :] w[j, :]; cols = n. With parts
                       * (p.matmul.n_parts > 1): every part's product of x, the step's own among them */
    LOWER_EW,         /* in: x. out[r, i] = the steps (ew) applied to x[r, i] */
    LOWER_RMS_NORM,   /* in: x, w (NOWHERE: none). out = x / sqrt(mean(x^2) + eps) (* w), per row */
    LOWER_LAYER_NORM, /* in: x. out = (x - mean) / sqrt(var + eps), per row */
    LOWER_SOFTMAX,    /* in: x. out = softmax(x * scale), per row */
    LOWER_ROPE,       /* in: x [rows = S, heads, head_dim], factors (NOWHERE: none). At positions P.. */
    LOWER_ATTENTION,  /* in: q [rows = T, n_head, head_dim_k], K cache, V cache; out [T, n_head, head_dim_v] */
    LOWER_KV_STORE,   /* in: x [rows = T, row_len]; out: the cache, rows P .. P+T-1 */
    LOWER_SLICE,      /* in: x. out[o, j, i] = x[o, start + j, i] over [outer, len, inner] views */
    LOWER_CONCAT,     /* in: a, b. out[o, :, i] = a[o, :, i] then b[o, :, i] over [outer, len, inner] views */
    LOWER_PERMUTE,    /* in: x, dims (4, padded with 1 in front). out dim i = x dim perm[i] */
    LOWER_COPY,       /* in: x. out = x: rows * cols elements */
    LOWER_BROADCAST,  /* in: x. out [dims] = x [x_dims], every x dim 1 or out's (4, padded with 1 in front) */
    LOWER_TOPK,       /* in: x [rows, n]. out i32 [rows, k]: each row's k largest, largest first (docs/ir.md) */
    LOWER_MOE_WEIGHTS,/* in: probs [rows, n], ids [rows, k]. out [rows, k]: the chosen probabilities (norm, scale) */
    LOWER_MATMUL_ID,  /* in: x [rows, k or 1, K], w [experts, n, K], ids [rows, k]. out [rows, k, n] */
    LOWER_MOE_SUM,    /* in: x [rows, k, cols], w [rows, k]. out [rows, cols] = sum over k of w x */
    LOWER_LAST_ROWS,  /* batched: in: x [T, cols]. out[q, :] = x[the last row of sequence q, :]; rows = R */
    LOWER_KIND_COUNT
};

/* One weight of a multi-part matmul: out [rows, n] = x w^T, w [n, k] in its own type and layout. */
struct lower_part {
    struct lower_ref w, out;
    int64_t n;
    uint32_t layout;               /* enum ae_layout */
};
#define LOWER_MAX_PARTS 8

/* One elementwise step (ir_fused.h): v = op(v[, operand]) with the constant k. */
struct lower_ew {
    enum ir_ew_step op;
    float k;
    struct lower_ref operand;  /* for steps that take one */
    bool operand_row;          /* the operand is one row (cols values), the same for every row */
};

struct lower_step {
    enum lower_kind kind;
    uint32_t node;                 /* the graph node this step computes, or a part of it */
    const char *name;              /* the node's origin name, or its op's: for run-time messages */
    struct lower_ref out;
    struct lower_ref in[3];
    uint32_t n_in;
    struct lower_size rows;
    int64_t cols;
    struct lower_ew ew[IR_EW_MAX_STEPS]; /* EW: its steps; otherwise the epilogue, applied to out after */
    uint32_t n_ew;
    bool per_seq;                  /* batched ROPE, ATTENTION, KV_STORE: once per sequence, on its rows (a
                                    * run of rows of the T), at its positions, in its own cache */
    union {
        struct { int64_t n_rows; uint64_t row_bytes; uint32_t layout; } get_rows; /* the table's rows, bytes
                                                                          * per row, layout (enum ae_layout) */
        struct {
            int64_t n, k;          /* the weight: [n, k] */
            uint32_t layout;       /* enum ae_layout */
            uint32_t n_parts;      /* > 1: the group this step heads (lower_target.matmul_parts), in the
                                    * weights' order in the pack; its other members' nodes lower to
                                    * their epilogues alone (EW in place, ROPE) */
            struct lower_part parts[LOWER_MAX_PARTS];
        } matmul;
        struct { float eps; } norm;                                      /* RMS_NORM, LAYER_NORM */
        struct { float scale; } softmax;
        struct {
            int64_t heads, head_dim;
            int32_t n_dims;        /* the leading features of each head that rotate */
            bool neox;             /* pairs (i, i + n_dims/2); else (2i, 2i+1) */
            float freq_base, freq_scale;
            float attn_factor;     /* scales cos and sin */
            float ext_factor;      /* YaRN: 0 none; the ramp's weight otherwise */
            int32_t n_ctx_orig;    /* YaRN: the training context */
            float beta_fast, beta_slow;
        } rope;
        struct {
            int64_t n_head, n_head_kv, head_dim_k, head_dim_v;
            float scale, softcap;  /* softcap 0: none */
            int32_t window;        /* 0: none */
        } attention;
        struct { int64_t row_len; } kv_store;                           /* elements per token */
        struct { struct lower_size outer, inner; int64_t len, x_len, start; } slice;
        struct { struct lower_size outer, inner; int64_t a_len, b_len; } concat;
        struct { struct lower_size dims[4]; int32_t perm[4]; } permute;
        struct { struct lower_size dims[4], x_dims[4]; } broadcast;
        struct { int64_t n, k; } topk;                                   /* TOPK, MOE_WEIGHTS: n values a row */
        struct { int64_t n, k; bool norm; float scale; } moe_weights;
        struct { int64_t experts, n, k, slots; bool x_per_slot; uint32_t layout; } matmul_id; /* w [experts, n, k] in
                                                                          * layout; ids: slots a row */
        struct { int64_t k; } moe_sum;
    } p;
};

struct lower_program {
    const struct ir_graph *g;
    struct lower_ref *ref;         /* per node: where its value lives */
    uint32_t *first_step;          /* per node: its steps are steps[first_step[i] .. first_step[i + 1]) */
    struct lower_step *steps;
    uint32_t n_steps;
    uint64_t arena_bytes;          /* the activation arena: the memory plan's peak (batched: and the
                                    * per-sequence rows after it) */
    uint32_t kv_type;              /* the KV cache type the graph was built for: the program's default */
    int32_t max_seqs;              /* batched: the most sequences one step takes; 0 otherwise */
};

/* Lowers g after the passes (c holds the memory plan, pb the weights' slots) for target t. Fails, naming
 * the node, for a node t's kernels cannot run. */
int lower_program(struct lower_program *lp, const struct ir_graph *g, const struct pass_ctx *c,
                  const struct pack_build *pb, const struct lower_target *t, ae_error *err);
void lower_program_free(struct lower_program *lp);

/* The batched step (ae_program.h, struct ae_batch): the same graph over T rows from up to max_seqs
 * sequences, each a run of rows at its own positions with its own KV cache. Everything before the last
 * row is taken (the body) runs over the T rows as the prefill step does, except rope, the cache store and
 * attention, which run per sequence (per_seq). last_row becomes LAST_ROWS, each sequence's last row, and
 * what comes after it (the tail: final norm, output matmul, logit scaling) runs over those R rows, stored
 * past the memory plan's peak (max_seqs rows each). Fails, err saying why, for a graph that has no
 * batched step: a tail that is not row by row or reads the body, a size in P outside rope, the cache
 * store and attention. */
int lower_program_batched(struct lower_program *lp, const struct ir_graph *g, const struct pass_ctx *c,
                          const struct pack_build *pb, const struct lower_target *t, int32_t max_seqs, ae_error *err);

/* Whether a size is the constant k (no T, no P). */
bool lower_size_is_const(struct lower_size s);

#endif
