/* The optimization passes: one signature, one context, and the pipeline that runs them in order.
 *
 * Every pass is `int pass_<name>(struct ir_graph *g, struct pass_ctx *c)`: it rewrites g in place, leaves
 * it valid for ir_verify, counts what it did in c->stats and returns 0, or returns -1 with c->err set.
 * The context carries the target's parameters (arena alignment, the largest step T_max, the context
 * length), the options (passes turned off, dumps, ir_verify after each pass), the model's weights when
 * the graph came from a GGUF file (rewrites that look at weight values are skipped without them), and
 * what passes leave for later stages: the constants fold made, the layout of every weight, the memory
 * plan. The order of the passes is PASS_LIST below, the one list that the ids, the names, the pipeline
 * and its messages are made from; docs/passes.md describes each one.
 */
#ifndef AE_PASS_H
#define AE_PASS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_error.h"
#include "ae_gguf.h"
#include "ir.h"
#include "memplan.h"

/* The passes, in pipeline order: X(ID, name) runs pass_<name> as PASS_<ID>. Cleanups first (simplify, cse,
 * dce), then fold, which evaluates what is constant, then layout, which decides how weights are stored,
 * then fuse, which groups nodes into kernels, and memplan last, because it plans the buffers of the nodes
 * that remain. */
#define PASS_LIST(X) \
    X(SIMPLIFY, simplify) \
    X(CSE, cse) \
    X(DCE, dce) \
    X(FOLD, fold) \
    X(LAYOUT, layout) \
    X(FUSE, fuse) \
    X(MEMPLAN, memplan)

enum pass_id {
#define X(ID, NAME) PASS_##ID,
    PASS_LIST(X)
#undef X
    PASS_COUNT
};

/* The kinds of fused groups the fuse pass forms, for the report. */
enum fuse_kind {
    FUSE_EW_CHAIN,        /* ew: two or more elementwise ops in one loop */
    FUSE_NORM_MUL,        /* rms_norm(x) * w */
    FUSE_NORM_MUL_ADD,    /* rms_norm(x) * w + residual */
    FUSE_MATMUL_BIAS,     /* x W^T + b */
    FUSE_MATMUL_RESIDUAL, /* x W^T + r */
    FUSE_MATMUL_BIAS_RESIDUAL,
    FUSE_MATMUL_SOFTCAP,  /* softcap(x W^T) */
    FUSE_SWIGLU,          /* silu(gate) * up, in the gate matmul's epilogue or as its own loop */
    FUSE_GEGLU,           /* gelu(gate) * up */
    FUSE_MATMUL_EPILOGUE, /* another chain after a matmul */
    FUSE_MATMUL_ROPE,     /* rope(x W^T (+ b)) on the Q/K projections */
    FUSE_ATTENTION,       /* scores, mask, softmax and V in one op (the importer already emits it so) */
    FUSE_KIND_COUNT
};

const char *fuse_kind_name(enum fuse_kind k);

struct pass_options {
    uint64_t alignment;      /* arena offsets are multiples of this (a power of two): the target's, 64 for the CPU */
    int64_t t_max;           /* the largest step (prompt chunk) the plan must hold: 512 */
    int64_t n_ctx;           /* context length; sizes that depend on P use P = n_ctx - t_max */
    uint32_t disabled;       /* 1u << pass_id for every pass that does not run */
    bool verify_each;        /* ir_verify after every pass */
    uint64_t fold_max_bytes; /* fold makes no constant larger than this */
    double byte_cost;        /* fuse's cost model: the cost of one byte of memory traffic ... */
    double flop_cost;        /* ... and of one floating-point operation */
    bool interleave;         /* layout may store matmul weights interleaved (x16): the target's kernels read
                              * it; false keeps every weight in the GGUF's rows (a run from the file in place) */
    bool merge;              /* matmuls that read the same input run as one (pass_matmul_groups) and layout
                              * stores their matrices merged; false keeps every matmul apart (--no-merge) */
};

enum pass_dump_format { PASS_DUMP_TEXT, PASS_DUMP_YAML };

/* What each pass did. */
struct pass_stats {
    uint32_t nodes_in, nodes_out;      /* nodes before the first pass and after the last */
    uint32_t simplified;               /* rewrites by simplify */
    uint32_t cse_merged;               /* nodes cse found equal to an earlier one */
    uint32_t dce_removed;              /* nodes dce removed */
    uint32_t folded;                   /* constants fold made */
    uint64_t folded_bytes;
    uint32_t layout_weights, layout_merges;
    uint32_t fused[FUSE_KIND_COUNT];   /* groups by kind */
    uint64_t fuse_saved_bytes;         /* intermediate traffic fuse removed, at T_max */
};

/* A constant made by fold: f32 values of a new weight node. */
struct pass_const {
    const char *name;                  /* the weight's tensor name (in the graph's arena) */
    uint32_t rank;
    int64_t shape[IR_MAX_DIMS];        /* outermost first, as the node's */
    float *data;                       /* numel values, owned */
};

/* Where the kernels will read a weight from: its layout, and the merged matrix it is a part of. */
struct pass_layout {
    const char *weight;                /* tensor name */
    uint32_t layout;                   /* enum ae_layout: AE_LAYOUT_ROWS (as the GGUF stores it) or X16 */
    char format[32];                   /* "<layout>-<type>", e.g. "x16-q4_0", "rows-q6_k" */
    int32_t merge;                     /* index into c->merges, or -1 */
    int64_t row_begin, row_end;        /* this weight's rows in the merged matrix */
};

/* Matrices multiplied by the same activations, stored as one: [rows, cols] of dtype. */
struct pass_merge {
    char kind[16];                     /* "qkv", "gate_up" or "rows" */
    int32_t layer;
    uint32_t n_parts;
    uint32_t dtype;
    int64_t rows, cols;
};

/* The activation memory plan: one buffer per node that owns a value, in schedule order. */
struct pass_plan {
    bool done;
    uint32_t n;
    uint32_t *node;                    /* the node id each buffer belongs to */
    struct plan_buffer *buf;           /* size, first and last step (node ids), offset */
    uint64_t peak;                     /* arena bytes */
    uint64_t naive;                    /* sum of all buffers, each aligned: no reuse at all */
    uint64_t max_live;                 /* the most bytes live at one step: no plan can do better */
    int64_t t_max, n_ctx;
};

struct pass_ctx {
    struct pass_options opt;
    const ae_gguf *gguf;               /* the model's weights, or NULL (weight values unknown) */
    ae_error *err;
    struct pass_stats stats;

    /* Dumps: after each pass whose bit is set (bit PASS_COUNT: the graph as imported). */
    uint32_t dump_mask;
    enum pass_dump_format dump_format;
    FILE *dump_file;                   /* stdout when NULL and no dump_dir */
    const char *dump_dir;              /* one file per dump, "NN-<pass>.ir" / ".yaml" */

    struct pass_const *consts;         /* made by fold */
    uint32_t n_consts, cap_consts;
    struct pass_layout *layouts;       /* made by layout */
    uint32_t n_layouts;
    struct pass_merge *merges;
    uint32_t n_merges;
    struct pass_plan plan;             /* made by memplan */
};

/* Defaults: alignment 64 (the C backend's; the frontend sets the target's), T_max 512, n_ctx 0 (set it:
 * the model's context), every pass on, verify after each pass in builds without NDEBUG, fold constants up
 * to 1 MiB. */
void pass_ctx_init(struct pass_ctx *c, ae_error *err);
void pass_ctx_free(struct pass_ctx *c);

/* ---- The passes ----------------------------------------------------------------------------------- */

#define X(ID, NAME) int pass_##NAME(struct ir_graph *g, struct pass_ctx *c);
PASS_LIST(X)
#undef X

/* ---- The pipeline (pipeline.c) -------------------------------------------------------------------- */

const char *pass_name(enum pass_id id);
/* The pass spelled name (len bytes), or -1. */
int pass_from_name(const char *name, size_t len);
/* "simplify, cse, dce, fold, layout, fuse, memplan", for messages. */
const char *pass_list(void);

/* Runs every pass not disabled, in PASS_LIST's order, with ir_verify after each when opt.verify_each, and the dumps
 * the context asks for. Fills stats.nodes_in / nodes_out. */
int pass_pipeline_run(struct ir_graph *g, struct pass_ctx *c);
/* Runs one pass (whether disabled or not) and, with opt.verify_each, ir_verify after it. */
int pass_run(struct ir_graph *g, struct pass_ctx *c, enum pass_id id);

/* The graph in text form followed by what the passes recorded beside it, as comment lines (layouts,
 * the plan), which ir_parse skips. */
int pass_print(const struct ir_graph *g, const struct pass_ctx *c, FILE *f);

/* ---- Weights (weights.c) -------------------------------------------------------------------------- */

/* The values of weight node w as numel f32 (malloc'd into *out): a folded constant's, or its GGUF
 * tensor's dequantized. Returns 1, or 0 when they are unknown (no GGUF in the context), or -1. */
int pass_weight_values(struct pass_ctx *c, const struct ir_node *w, float **out);
/* A new f32 weight node holding data (taken over), named after base with a ".fold<k>" suffix. */
struct ir_node *pass_const_new(struct ir_graph *g, struct pass_ctx *c, const char *base, uint32_t rank,
                               const int64_t *shape, float *data);
const struct pass_const *pass_const_find(const struct pass_ctx *c, const char *name);

/* A GGUF image in memory with the metadata of c->gguf and the tensors of every weight g uses, folded
 * constants included: what the interpreter binds a passed graph to. Close with pass_weights_close. */
struct pass_weights {
    ae_gguf *f;
    char *bytes;
    size_t size;
};
int pass_weights_open(struct pass_weights *w, const struct ir_graph *g, const struct pass_ctx *c);
void pass_weights_close(struct pass_weights *w);

/* ---- Helpers the passes share (util.c) ------------------------------------------------------------ */

/* Bytes of a node's value with T = t_max and P = n_ctx - t_max (0 for weights' and the cache's types
 * that are not f32/f16/i32). */
uint64_t pass_node_bytes(const struct ir_node *n, const struct pass_ctx *c);
/* The layout the layout pass chose for the weight named name: AE_LAYOUT_ROWS when it chose none (or did
 * not run). */
uint32_t pass_weight_layout(const struct pass_ctx *c, const char *name);
/* The layout pass's record of the weight named name (its layout, its merged matrix), or NULL. */
const struct pass_layout *pass_weight_find(const struct pass_ctx *c, const char *name);

/* Matmuls that run as one multi-part matmul (ae_matmul_parts): those that multiply the same input (x,
 * src[0]) by 2-D weights of the same row length whose activations convert alike (ae_matmul_vec_type),
 * AE_MATMUL_MAX_PARTS at most. group[i] is the id of the first node of node i's group (the head, where
 * the group runs: every member's raw product is written there, each member's epilogue at its own place),
 * i itself for a matmul alone, -1 for other nodes. With opt.merge off every matmul is alone. Caller
 * frees; NULL when out of memory. */
int32_t *pass_matmul_groups(const struct ir_graph *g, const struct pass_ctx *c);

/* users[i]: how many sources of live nodes are node i. Caller frees. */
uint32_t *pass_count_uses(const struct ir_graph *g);

#endif
