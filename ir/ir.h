/* The graph IR: a model's forward step as a DAG of nodes in SSA form.
 *
 * A node is an op (ops.def), a fixed array of sources, small op parameters, a dtype, a shape and a name
 * that points back at its origin (a GGUF tensor name such as "blk.3.attn_q", from which the layer index
 * is taken). Shapes are row-major, outermost dimension first, the last one contiguous: an activation of
 * T tokens by 2048 features is [T, 2048], and a GGUF weight with ne = {2048, 512} is [512, 2048].
 * Dimensions are constants or one of three symbols: T (tokens in this step), P (tokens already in the
 * KV cache) and P+T.
 *
 * A graph owns one arena; every node, name and array is allocated from it and freed with the graph.
 * Nodes live in g->nodes in a topological order (every source before its users) and node->id is the
 * node's index there. Builders only append, so the order holds; a pass that rewires sources calls
 * ir_graph_sort, and one that drops nodes calls ir_node_kill and ir_graph_compact. ir_verify checks all
 * of it. The text form (ir_print/ir_parse) and its meaning are documented in docs/ir.md.
 */
#ifndef AE_IR_H
#define AE_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_error.h"
#include "ae_types.h"

/* ---- Ops ------------------------------------------------------------------------------------------ */

enum ir_op {
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) IR_OP_##NAME,
#include "ops.def"
#undef X
    IR_OP_COUNT
};

enum ir_op_prop {
    IR_PROP_LEAF = 1u << 0,
    IR_PROP_ELEMENTWISE = 1u << 1,
    IR_PROP_COMMUTATIVE = 1u << 2,
    IR_PROP_INPLACE_OK = 1u << 3,
    IR_PROP_ROWWISE = 1u << 4,
    IR_PROP_VIEW = 1u << 5,
    IR_PROP_STATEFUL = 1u << 6,
    IR_PROP_FUSED = 1u << 7,
};

const char *ir_op_name(enum ir_op op);
/* The op spelled name, or -1. */
int ir_op_from_name(const char *name, size_t len);
uint32_t ir_op_props(enum ir_op op);
bool ir_op_has(enum ir_op op, enum ir_op_prop p);
uint32_t ir_op_min_src(enum ir_op op);
uint32_t ir_op_max_src(enum ir_op op);

/* ---- Dtypes and dims ------------------------------------------------------------------------------ */

/* A node's dtype is a ggml type id (enum ae_type): activations are F32, token ids and positions I32,
 * an F16 KV cache F16, and weights keep their GGUF type (Q4_0, Q6_K, BF16, ...). */
#define IR_F32 AE_TYPE_F32
#define IR_F16 AE_TYPE_F16
#define IR_I32 AE_TYPE_I32

#define IR_MAX_DIMS 4
#define IR_MAX_SRC 8 /* room for fused ops with many inputs */

/* Symbolic dimensions; every other dimension is a constant >= 0. */
#define IR_DIM_T (-1)  /* tokens in this step */
#define IR_DIM_P (-2)  /* tokens already in the KV cache */
#define IR_DIM_PT (-3) /* P + T */

bool ir_dim_is_symbol(int64_t d);
/* The value of a dimension once T and P are known. */
int64_t ir_dim_value(int64_t d, int64_t T, int64_t P);
/* "T", "P", "P+T" or the decimal constant, into buf (at least 24 bytes). */
const char *ir_dim_str(int64_t d, char *buf);

/* ---- Op parameters -------------------------------------------------------------------------------- */

enum ir_input_kind { IR_INPUT_TOKENS = 0, IR_INPUT_POSITIONS = 1 };
enum ir_rope_mode { IR_ROPE_NORMAL = 0, IR_ROPE_NEOX = 1 };
enum ir_kv_kind { IR_KV_K = 0, IR_KV_V = 1 };

/* The parameters of each op (docs/ir.md gives the formulas). Unused bytes are zero, so two nodes'
 * parameters are equal exactly when memcmp says so. */
union ir_params {
    struct { int32_t kind; } input;                   /* enum ir_input_kind */
    struct { int32_t layer, kind; } kv_cache;         /* kind: enum ir_kv_kind */
    struct { float s; } scale;                        /* y = x * s */
    struct { float cap; } softcap;                    /* y = cap * tanh(x * (1/cap)) */
    struct { float eps; } norm;                       /* rms_norm, layer_norm */
    struct { float scale; } softmax;                  /* y = softmax(x * scale) over the last dim */
    struct {
        int32_t mode;         /* enum ir_rope_mode */
        int32_t n_dims;       /* leading features of each head that rotate; the rest pass through */
        int32_t n_ctx_orig;   /* training context, for YaRN's correction dims */
        float freq_base;      /* theta_i = pos * freq_base^(-2i/n_dims) */
        float freq_scale;     /* 1 / linear or YaRN scaling factor */
        float ext_factor;     /* YaRN extrapolation mix; 0 disables YaRN */
        float attn_factor;    /* scales cos and sin */
        float beta_fast, beta_slow;
    } rope;
    struct {
        float scale;          /* logits are q.k, softcapped, then times scale */
        float softcap;        /* 0: none; else cap * tanh(logit / cap) before scale */
        int32_t window;       /* 0: none; else key j is seen from query position p when p - j < window */
    } attention;
    struct { int32_t axis; int32_t start; } slice;    /* out = x[..., start : start + out_dim, ...] */
    struct { int32_t perm[IR_MAX_DIMS]; } permute;    /* out dim i = in dim perm[i] */
    struct { int32_t axis; } concat;
    struct { int32_t k; } topk;                       /* the k largest of each row */
    struct { int32_t norm; float scale; } moe_weights; /* norm: divide by their sum; then times scale */
    struct { int32_t op[4]; float k[4]; } ew;         /* ew, matmul_ew: steps and their constants (ir_fused.h) */
};

enum ir_param_kind { IR_PARAM_I32, IR_PARAM_F32, IR_PARAM_ENUM, IR_PARAM_PERM };

/* One named parameter of an op, for the printer, the parser and the YAML emitter. */
struct ir_param_desc {
    const char *name;
    enum ir_param_kind kind;
    size_t offset;               /* into union ir_params */
    const char *const *enum_names; /* IR_PARAM_ENUM: names indexed by value, NULL-terminated */
};

/* The parameters of an op in printing order; *n is 0 for ops without parameters. */
const struct ir_param_desc *ir_op_params(enum ir_op op, uint32_t *n);

/* ---- Nodes and graphs ----------------------------------------------------------------------------- */

struct ir_node {
    uint32_t id;                    /* index in g->nodes; printed as %id */
    enum ir_op op;
    uint32_t dtype;                 /* enum ae_type */
    uint32_t n_src;
    struct ir_node *src[IR_MAX_SRC];
    uint32_t rank;                  /* 0..IR_MAX_DIMS */
    int64_t shape[IR_MAX_DIMS];     /* outermost first; constants or IR_DIM_* */
    union ir_params p;
    const char *name;               /* origin: GGUF tensor (weights) or "blk.3.attn_q"; NULL if none */
    int32_t layer;                  /* from name "blk.<n>..." ; -1 outside layers */
    bool dead;                      /* marked by ir_node_kill, removed by ir_graph_compact */
    void *aux;                      /* scratch for a pass; not printed, not compared */
};

struct ir_arena;

struct ir_graph {
    struct ir_arena *arena;
    struct ir_node **nodes;         /* topological order */
    uint32_t n_nodes;
    uint32_t cap_nodes;
};

struct ir_graph *ir_graph_create(void);
void ir_graph_destroy(struct ir_graph *g);

/* size bytes from the graph's arena, 16-byte aligned and zeroed; freed with the graph. */
void *ir_alloc(struct ir_graph *g, size_t size);
/* A copy of s (len bytes, or up to its NUL when len is SIZE_MAX) in the arena. */
const char *ir_strdup(struct ir_graph *g, const char *s, size_t len);

/* Appends a node. shape has rank entries, src n_src (each already in g). Parameters start zeroed. */
struct ir_node *ir_node_new(struct ir_graph *g, enum ir_op op, uint32_t dtype, uint32_t rank,
                            const int64_t *shape, uint32_t n_src, struct ir_node *const *src);
/* Sets the origin name (copied) and the layer index read from a "blk.<n>" prefix. */
void ir_node_set_name(struct ir_graph *g, struct ir_node *n, const char *name);
/* The layer index that a name starting "blk.<n>." or equal to "blk.<n>" names, or -1. */
int32_t ir_name_layer(const char *name);

/* Number of elements of a node's value for given T and P. */
int64_t ir_node_numel(const struct ir_node *n, int64_t T, int64_t P);
bool ir_shape_equal(const struct ir_node *a, const struct ir_node *b);

/* Replaces every use of from (as a source of a live node) by to; returns how many were replaced. */
uint32_t ir_replace_uses(struct ir_graph *g, struct ir_node *from, struct ir_node *to);
/* Marks a node for removal; ir_graph_compact drops marked nodes and renumbers the rest. */
void ir_node_kill(struct ir_node *n);
void ir_graph_compact(struct ir_graph *g);
/* Reorders g->nodes topologically (stable: keeps the current order where it is already valid) and
 * renumbers. Fails, naming a node on the cycle, when the sources form a cycle. */
int ir_graph_sort(struct ir_graph *g, ae_error *err);

/* ---- Builders --------------------------------------------------------------------------------------
 * Each computes the result's dtype and shape from its sources. They do not check: a graph built from
 * inconsistent sources is reported by ir_verify. name may be NULL. */

struct ir_node *ir_input(struct ir_graph *g, enum ir_input_kind kind);
/* A weight: tensor name, its ggml type and its shape (outermost first). */
struct ir_node *ir_weight(struct ir_graph *g, const char *tensor, uint32_t dtype, uint32_t rank,
                          const int64_t *shape);
/* The KV cache of one layer before this step: [P, n_head_kv, head_dim], dtype F32 or F16. */
struct ir_node *ir_kv_cache(struct ir_graph *g, int32_t layer, enum ir_kv_kind kind, uint32_t dtype,
                            int64_t n_head_kv, int64_t head_dim);
/* rows of w ([V, D], any type) picked by ids ([N], I32): f32 [N, D]. */
struct ir_node *ir_get_rows(struct ir_graph *g, struct ir_node *w, struct ir_node *ids);
/* x ([..., K], f32) times the transpose of w ([N, K], any type): f32 [..., N]. Sources are stored as
 * (x, w), the order the dump prints them in. */
struct ir_node *ir_matmul(struct ir_graph *g, struct ir_node *w, struct ir_node *x);
struct ir_node *ir_add(struct ir_graph *g, struct ir_node *a, struct ir_node *b);
struct ir_node *ir_mul(struct ir_graph *g, struct ir_node *a, struct ir_node *b);
struct ir_node *ir_scale(struct ir_graph *g, struct ir_node *x, float s);
struct ir_node *ir_silu(struct ir_graph *g, struct ir_node *x);
struct ir_node *ir_gelu(struct ir_graph *g, struct ir_node *x);
struct ir_node *ir_softcap(struct ir_graph *g, struct ir_node *x, float cap);
struct ir_node *ir_rms_norm(struct ir_graph *g, struct ir_node *x, float eps);
struct ir_node *ir_layer_norm(struct ir_graph *g, struct ir_node *x, float eps);
struct ir_node *ir_softmax(struct ir_graph *g, struct ir_node *x, float scale);

struct ir_rope_params {
    enum ir_rope_mode mode;
    int32_t n_dims, n_ctx_orig;
    float freq_base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
};
/* x [S, H, D] rotated by positions pos [S] (I32); freq_factors ([n_dims/2], f32) may be NULL. */
struct ir_node *ir_rope(struct ir_graph *g, struct ir_node *x, struct ir_node *pos, struct ir_node *freq_factors,
                        const struct ir_rope_params *rp);
/* Causal attention of q [T, H, D] over k [S, Hkv, D] and v [S, Hkv, Dv]: f32 [T, H, Dv]. */
struct ir_node *ir_attention(struct ir_graph *g, struct ir_node *q, struct ir_node *k, struct ir_node *v,
                             float scale, float softcap, int32_t window);
/* Appends x [T, Hkv, D] to a cache [P, Hkv, D]: the cache after this step, [P+T, Hkv, D]. */
struct ir_node *ir_kv_store(struct ir_graph *g, struct ir_node *cache, struct ir_node *x);
struct ir_node *ir_reshape(struct ir_graph *g, struct ir_node *x, uint32_t rank, const int64_t *shape);
/* x[..., start : start + len, ...] along axis. */
struct ir_node *ir_slice(struct ir_graph *g, struct ir_node *x, int32_t axis, int32_t start, int64_t len);
struct ir_node *ir_permute(struct ir_graph *g, struct ir_node *x, const int32_t *perm);
struct ir_node *ir_concat(struct ir_graph *g, struct ir_node *a, struct ir_node *b, int32_t axis);
/* x broadcast to shape: every dimension of x equals the result's or is 1 (then repeated). */
struct ir_node *ir_broadcast(struct ir_graph *g, struct ir_node *x, uint32_t rank, const int64_t *shape);
struct ir_node *ir_sigmoid(struct ir_graph *g, struct ir_node *x);
/* The indices (i32 [R, k]) of the k largest values of each row of x [R, E], largest first. */
struct ir_node *ir_topk(struct ir_graph *g, struct ir_node *x, int32_t k);
/* The routing weights f32 [R, k]: probs [R, E] at ids [R, k], divided by their sum when norm, times scale. */
struct ir_node *ir_moe_weights(struct ir_graph *g, struct ir_node *probs, struct ir_node *ids, bool norm, float scale);
/* x ([R, K], or [R, k, K] with one row per slot) times the transpose of expert ids[r, j] of w ([E, N, K]):
 * f32 [R, k, N]. Sources are stored as (x, w, ids). */
struct ir_node *ir_matmul_id(struct ir_graph *g, struct ir_node *w, struct ir_node *x, struct ir_node *ids);
/* sum_j w[r, j] * x[r, j, :] for x [R, k, D] and w [R, k]: f32 [R, D]. */
struct ir_node *ir_moe_sum(struct ir_graph *g, struct ir_node *x, struct ir_node *w);
/* The last row of x [S, ...]: [1, ...]. */
struct ir_node *ir_last_row(struct ir_graph *g, struct ir_node *x);
/* Marks x as a result of the step (the logits); name says which. */
struct ir_node *ir_output(struct ir_graph *g, struct ir_node *x, const char *name);

/* ---- Checking, printing, parsing ------------------------------------------------------------------ */

/* Checks that every source is a node of g defined before its user (so the graph is acyclic), that each
 * node has its op's number of sources, and that dtypes, shapes and parameters agree with the op's rules
 * (docs/ir.md). The first problem found is reported with the node's %id, op and name. */
int ir_verify(const struct ir_graph *g, ae_error *err);

/* The text form: one node per line (docs/ir.md). ir_print_string returns a malloc'd string. */
/* For ir_verify's messages: fails naming the node ("%12 = matmul ; blk.3.attn_q: ...") and returns -1;
 * and a node's shape as "[T,4,8]" in buf. */
int ir_node_fail(ae_error *err, const struct ir_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *ir_shape_str(const struct ir_node *n, char *buf, size_t size);

int ir_print(const struct ir_graph *g, FILE *f);
char *ir_print_string(const struct ir_graph *g);
/* Prints one node (no newline) into buf; returns the length it needed, like snprintf. */
int ir_print_node(const struct ir_node *n, char *buf, size_t size);

/* The shortest decimal form of f that reads back (strtof) to the same bits, into buf (>= 48 bytes). */
const char *ir_float_str(float f, char *buf);

/* Reads the text form back; name is used in messages ("graph.ir:12: ..."). The result is not
 * verified; call ir_verify. On failure *out is untouched. */
int ir_parse(struct ir_graph **out, const char *text, size_t len, const char *name, ae_error *err);

/* The YAML form, for tools: a mapping with a 'nodes' sequence (docs/ir.md). Emitting only. */
int ir_emit_yaml(const struct ir_graph *g, FILE *f, ae_error *err);

#endif
