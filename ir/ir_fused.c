/* Fused ops (ir_fused.h): their parameter table, their verification rules and their lowering.
 *
 * The rules mirror those of the primitive ops each fused op stands for, so that a graph passes
 * ir_verify before and after the fuse pass, and its lowering passes too.
 */
#include "ir_fused.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool ir_op_is_fused(enum ir_op op)
{
    return ir_op_has(op, IR_PROP_FUSED);
}

/* ---- Steps and parameters ------------------------------------------------------------------------- */

/* The tables of the steps, made from the STEP rows of ops.def. */
#define NAME_STEP(STR) STR,
#define NAME_NO_STEP(STR)
static const char *const ew_step_names[] = {
    "none",
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) NAME_##STEP(STR)
#include "ops.def"
#undef X
    NULL,
};

#define STEP_OF_STEP(NAME) IR_EW_##NAME
#define STEP_OF_NO_STEP(NAME) IR_EW_NONE
static const enum ir_ew_step step_of_op[IR_OP_COUNT] = {
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) [IR_OP_##NAME] = STEP_OF_##STEP(NAME),
#include "ops.def"
#undef X
};

#define OP_OF_STEP(NAME) [IR_EW_##NAME] = IR_OP_##NAME,
#define OP_OF_NO_STEP(NAME)
static const enum ir_op op_of_step[IR_EW_STEP_COUNT] = {
    [IR_EW_NONE] = IR_OP_COUNT,
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) OP_OF_##STEP(NAME)
#include "ops.def"
#undef X
};

/* The number of fused ops, counted from their property. */
enum {
    N_FUSED_OPS = 0
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) + !!((PROPS) & IR_PROP_FUSED)
#include "ops.def"
#undef X
};

_Static_assert(IR_EW_STEP_COUNT == 7, "ops.def's STEP rows changed: update the count, docs/ir.md and the templates");
_Static_assert(N_FUSED_OPS == 4, "ops.def's fused rows changed: update the count, docs/ir.md and docs/passes.md");
_Static_assert(sizeof ew_step_names / sizeof ew_step_names[0] == IR_EW_STEP_COUNT + 1, "one name per step");

enum ir_ew_step ir_ew_step_of(enum ir_op op)
{
    return (unsigned)op < IR_OP_COUNT ? step_of_op[op] : IR_EW_NONE;
}

enum ir_op ir_ew_step_op(enum ir_ew_step s)
{
    return (unsigned)s < IR_EW_STEP_COUNT ? op_of_step[s] : IR_OP_COUNT;
}

bool ir_ew_step_has_operand(enum ir_ew_step s)
{
    return s != IR_EW_NONE && ir_op_min_src(ir_ew_step_op(s)) == 2;
}

/* The parameter that is a step's constant: the step op's only parameter (ops.def), or NULL. */
static const struct ir_param_desc *step_param(enum ir_ew_step s)
{
    uint32_t n = 0;
    const struct ir_param_desc *d = s != IR_EW_NONE ? ir_op_params(ir_ew_step_op(s), &n) : NULL;
    return n == 1 && d[0].kind == IR_PARAM_F32 ? &d[0] : NULL;
}

bool ir_ew_step_has_k(enum ir_ew_step s)
{
    return step_param(s) != NULL;
}

float ir_ew_step_k(const struct ir_node *n)
{
    const struct ir_param_desc *d = step_param(ir_ew_step_of(n->op));
    float k = 0.0f;
    if (d)
        memcpy(&k, (const char *)&n->p + d->offset, sizeof k);
    return k;
}

#define EW_OP(I) {"op" #I, IR_PARAM_ENUM, offsetof(union ir_params, ew.op[I]), ew_step_names}
#define EW_K(I) {"k" #I, IR_PARAM_F32, offsetof(union ir_params, ew.k[I]), NULL}

static const struct ir_param_desc params_ew[] = {
    EW_OP(0), EW_OP(1), EW_OP(2), EW_OP(3), EW_K(0), EW_K(1), EW_K(2), EW_K(3),
};

#undef EW_OP
#undef EW_K

const struct ir_param_desc *ir_ew_params(uint32_t *n)
{
    *n = sizeof params_ew / sizeof params_ew[0];
    return params_ew;
}

uint32_t ir_ew_n_steps(const struct ir_node *n)
{
    uint32_t k = 0;
    while (k < IR_EW_MAX_STEPS && n->p.ew.op[k] != IR_EW_NONE)
        k++;
    return k;
}

/* ---- Verification --------------------------------------------------------------------------------- */

static bool has_symbol(const struct ir_node *n)
{
    for (uint32_t i = 0; i < n->rank; i++)
        if (ir_dim_is_symbol(n->shape[i]))
            return true;
    return false;
}

/* An operand of a binary step: f32, and v's shape or one row of v's last dimension. */
static int check_operand(ae_error *err, const struct ir_node *n, uint32_t i, const struct ir_node *like)
{
    const struct ir_node *s = n->src[i];
    char a[96], b[96];
    if (s->dtype != IR_F32)
        return ir_node_fail(err, n, "source %" PRIu32 " (%%%" PRIu32 ") has dtype %s, expected f32", i, s->id,
                         ae_type_name(s->dtype));
    bool row = s->rank == 1 && like->rank >= 1 && s->shape[0] == like->shape[like->rank - 1];
    if (!ir_shape_equal(s, like) && !row)
        return ir_node_fail(err, n, "source %" PRIu32 " has shape %s: it must be %s or one row of its last dimension",
                         i, ir_shape_str(s, a, sizeof a), ir_shape_str(like, b, sizeof b));
    return 0;
}

/* The steps of ew / matmul_ew: a run of steps then only none, at least one step, one source for each
 * step with an operand starting after the op's fixed sources, a constant only where the step has one,
 * and positive softcap constants. */
static int check_steps(ae_error *err, const struct ir_node *n)
{
    uint32_t steps = ir_ew_n_steps(n), next = ir_op_min_src(n->op);
    if (steps == 0)
        return ir_node_fail(err, n, "op0 is none: a fused chain needs at least one step");
    for (uint32_t i = 0; i < IR_EW_MAX_STEPS; i++) {
        int32_t s = n->p.ew.op[i];
        if (s < 0 || s >= IR_EW_STEP_COUNT)
            return ir_node_fail(err, n, "op%" PRIu32 " is %" PRId32 ", not a step", i, s);
        if (i >= steps) {
            if (s != IR_EW_NONE || n->p.ew.k[i] != 0.0f)
                return ir_node_fail(err, n, "op%" PRIu32 " follows a none step and must be none with k%" PRIu32 " = 0",
                                 i, i);
            continue;
        }
        if (ir_ew_step_has_operand((enum ir_ew_step)s)) {
            if (next >= n->n_src)
                return ir_node_fail(err, n, "step op%" PRIu32 " (%s) has no source left", i, ew_step_names[s]);
            if (check_operand(err, n, next, n))
                return -1;
            next++;
        }
        if (s == IR_EW_SOFTCAP && !(n->p.ew.k[i] > 0))
            return ir_node_fail(err, n, "softcap step op%" PRIu32 " needs a positive cap k%" PRIu32 ", found %g", i, i,
                             (double)n->p.ew.k[i]);
        if (!ir_ew_step_has_k((enum ir_ew_step)s) && n->p.ew.k[i] != 0.0f)
            return ir_node_fail(err, n, "step op%" PRIu32 " (%s) takes no constant; k%" PRIu32 " must be 0", i,
                             ew_step_names[s], i);
    }
    if (next != n->n_src)
        return ir_node_fail(err, n, "%" PRIu32 " sources, but the steps use %" PRIu32, n->n_src, next);
    return 0;
}

static int check_f32_out(ae_error *err, const struct ir_node *n)
{
    if (n->dtype != IR_F32)
        return ir_node_fail(err, n, "dtype %s, expected f32", ae_type_name(n->dtype));
    return 0;
}

/* x [..., K] times w [N, K]: the result's shape is x's with N last. */
static int check_matmul(ae_error *err, const struct ir_node *n, int64_t *out_shape)
{
    const struct ir_node *x = n->src[0], *w = n->src[1];
    char a[96], b[96];
    if (w->rank != 2 || has_symbol(w) || !ae_type_info(w->dtype))
        return ir_node_fail(err, n, "weight %%%" PRIu32 " has shape %s and dtype %s, expected [out, in] of a ggml type",
                         w->id, ir_shape_str(w, a, sizeof a), ae_type_name(w->dtype));
    if (x->dtype != IR_F32 || x->rank < 1 || x->shape[x->rank - 1] != w->shape[1])
        return ir_node_fail(err, n, "activations %s (%s) do not end in the weight's row length %" PRId64 " (weight %s)",
                         ir_shape_str(x, a, sizeof a), ae_type_name(x->dtype), w->shape[1], ir_shape_str(w, b, sizeof b));
    memcpy(out_shape, x->shape, sizeof x->shape);
    out_shape[x->rank - 1] = w->shape[0];
    return 0;
}

static int expect_shape(ae_error *err, const struct ir_node *n, uint32_t rank, const int64_t *shape,
                        const char *why)
{
    bool ok = n->rank == rank;
    for (uint32_t i = 0; ok && i < rank; i++)
        ok = n->shape[i] == shape[i];
    if (ok)
        return 0;
    struct ir_node want;
    memset(&want, 0, sizeof want);
    want.rank = rank;
    memcpy(want.shape, shape, rank * sizeof shape[0]);
    char a[96], b[96];
    return ir_node_fail(err, n, "shape %s, expected %s (%s)", ir_shape_str(n, a, sizeof a), ir_shape_str(&want, b, sizeof b),
                     why);
}

static int verify_matmul_rope(const struct ir_node *n, ae_error *err)
{
    const struct ir_node *x = n->src[0], *w = n->src[1], *pos = n->src[2];
    int64_t mm[IR_MAX_DIMS];
    char a[96];
    if (check_f32_out(err, n) || check_matmul(err, n, mm))
        return -1;
    if (x->rank != 2)
        return ir_node_fail(err, n, "activations %s, expected [rows, features]", ir_shape_str(x, a, sizeof a));
    if (n->rank != 3 || n->shape[0] != x->shape[0] || ir_dim_is_symbol(n->shape[1]) ||
        ir_dim_is_symbol(n->shape[2]) || n->shape[1] * n->shape[2] != w->shape[0])
        return ir_node_fail(err, n, "shape %s, expected [rows, heads, head_dim] with heads * head_dim = %" PRId64,
                         ir_shape_str(n, a, sizeof a), w->shape[0]);
    if (pos->dtype != IR_I32 || pos->rank != 1 || pos->shape[0] != x->shape[0])
        return ir_node_fail(err, n, "positions %s (%s), expected i32 [%s]", ir_shape_str(pos, a, sizeof a),
                         ae_type_name(pos->dtype), ir_dim_str(x->shape[0], (char[24]){0}));
    if (n->n_src == 4) {
        const struct ir_node *b = n->src[3];
        if (b->dtype != IR_F32 || b->rank != 1 || b->shape[0] != w->shape[0])
            return ir_node_fail(err, n, "bias %s (%s), expected f32 [%" PRId64 "]", ir_shape_str(b, a, sizeof a),
                             ae_type_name(b->dtype), w->shape[0]);
    }
    if (n->p.rope.mode != IR_ROPE_NORMAL && n->p.rope.mode != IR_ROPE_NEOX)
        return ir_node_fail(err, n, "mode %" PRId32 " is neither normal nor neox", n->p.rope.mode);
    if (n->p.rope.n_dims < 2 || n->p.rope.n_dims % 2 || n->p.rope.n_dims > n->shape[2])
        return ir_node_fail(err, n, "n_dims %" PRId32 " must be even, >= 2 and at most head_dim %" PRId64,
                         n->p.rope.n_dims, n->shape[2]);
    if (!(n->p.rope.freq_base > 0) || !(n->p.rope.freq_scale > 0))
        return ir_node_fail(err, n, "base %g and freq_scale %g must be positive", (double)n->p.rope.freq_base,
                         (double)n->p.rope.freq_scale);
    return 0;
}

int ir_verify_fused(const struct ir_node *n, ae_error *err)
{
    int64_t shape[IR_MAX_DIMS];
    switch (n->op) {
    case IR_OP_EW:
        if (check_f32_out(err, n))
            return -1;
        if (n->src[0]->dtype != IR_F32)
            return ir_node_fail(err, n, "source 0 has dtype %s, expected f32", ae_type_name(n->src[0]->dtype));
        if (expect_shape(err, n, n->src[0]->rank, n->src[0]->shape, "same as the first source"))
            return -1;
        return check_steps(err, n);
    case IR_OP_MATMUL_EW:
        if (check_f32_out(err, n) || check_matmul(err, n, shape) ||
            expect_shape(err, n, n->src[0]->rank, shape, "activations' rows by weight rows"))
            return -1;
        return check_steps(err, n);
    case IR_OP_RMS_NORM_MUL:
        if (check_f32_out(err, n))
            return -1;
        if (n->src[0]->dtype != IR_F32)
            return ir_node_fail(err, n, "source 0 has dtype %s, expected f32", ae_type_name(n->src[0]->dtype));
        if (!(n->p.norm.eps >= 0))
            return ir_node_fail(err, n, "eps %g must be >= 0", (double)n->p.norm.eps);
        if (expect_shape(err, n, n->src[0]->rank, n->src[0]->shape, "same as the first source"))
            return -1;
        for (uint32_t i = 1; i < n->n_src; i++)
            if (check_operand(err, n, i, n))
                return -1;
        return 0;
    case IR_OP_MATMUL_ROPE:
        return verify_matmul_rope(n, err);
    case IR_OP_INPUT:
    case IR_OP_WEIGHT:
    case IR_OP_KV_CACHE:
    case IR_OP_GET_ROWS:
    case IR_OP_MATMUL:
    case IR_OP_ADD:
    case IR_OP_MUL:
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SOFTCAP:
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_SOFTMAX:
    case IR_OP_ROPE:
    case IR_OP_ATTENTION:
    case IR_OP_KV_STORE:
    case IR_OP_RESHAPE:
    case IR_OP_SLICE:
    case IR_OP_PERMUTE:
    case IR_OP_CONCAT:
    case IR_OP_LAST_ROW:
    case IR_OP_OUTPUT:
    case IR_OP_SIGMOID:
    case IR_OP_BROADCAST:
    case IR_OP_TOPK:
    case IR_OP_MOE_WEIGHTS:
    case IR_OP_MATMUL_ID:
    case IR_OP_MOE_SUM:
    case IR_OP_COUNT:
        break;
    }
    return ir_node_fail(err, n, "not a fused op");
}

/* ---- Lowering ------------------------------------------------------------------------------------- */

static struct ir_node *named(struct ir_node *n, const struct ir_node *like)
{
    n->name = like->name;
    n->layer = like->layer;
    return n;
}

/* The steps of n applied to v, each the node of its op, taking operands from the sources after n's fixed
 * ones. */
static struct ir_node *lower_steps(struct ir_graph *g, const struct ir_node *n, struct ir_node *v)
{
    uint32_t next = ir_op_min_src(n->op);
    for (uint32_t i = 0; i < ir_ew_n_steps(n); i++) {
        enum ir_ew_step s = (enum ir_ew_step)n->p.ew.op[i];
        struct ir_node *src[2] = {v, NULL};
        uint32_t n_src = 1;
        if (ir_ew_step_has_operand(s))
            src[n_src++] = n->src[next++];
        v = named(ir_node_new(g, ir_ew_step_op(s), IR_F32, v->rank, v->shape, n_src, src), n);
        const struct ir_param_desc *k = step_param(s);
        if (k)
            memcpy((char *)&v->p + k->offset, &n->p.ew.k[i], sizeof(float));
    }
    return v;
}

static struct ir_node *lower_node(struct ir_graph *g, const struct ir_node *n)
{
    struct ir_node *v = NULL;
    switch (n->op) {
    case IR_OP_EW:
        return lower_steps(g, n, n->src[0]);
    case IR_OP_MATMUL_EW:
        v = named(ir_matmul(g, n->src[1], n->src[0]), n);
        return lower_steps(g, n, v);
    case IR_OP_RMS_NORM_MUL:
        v = named(ir_rms_norm(g, n->src[0], n->p.norm.eps), n);
        v = named(ir_mul(g, v, n->src[1]), n);
        if (n->n_src == 3)
            v = named(ir_add(g, v, n->src[2]), n);
        return v;
    case IR_OP_MATMUL_ROPE: {
        v = named(ir_matmul(g, n->src[1], n->src[0]), n);
        if (n->n_src == 4)
            v = named(ir_add(g, v, n->src[3]), n);
        v = named(ir_reshape(g, v, n->rank, n->shape), n);
        struct ir_node *src[2] = {v, n->src[2]};
        v = named(ir_node_new(g, IR_OP_ROPE, IR_F32, n->rank, n->shape, 2, src), n);
        v->p = n->p;
        return v;
    }
    case IR_OP_INPUT:
    case IR_OP_WEIGHT:
    case IR_OP_KV_CACHE:
    case IR_OP_GET_ROWS:
    case IR_OP_MATMUL:
    case IR_OP_ADD:
    case IR_OP_MUL:
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SOFTCAP:
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_SOFTMAX:
    case IR_OP_ROPE:
    case IR_OP_ATTENTION:
    case IR_OP_KV_STORE:
    case IR_OP_RESHAPE:
    case IR_OP_SLICE:
    case IR_OP_PERMUTE:
    case IR_OP_CONCAT:
    case IR_OP_LAST_ROW:
    case IR_OP_OUTPUT:
    case IR_OP_SIGMOID:
    case IR_OP_BROADCAST:
    case IR_OP_TOPK:
    case IR_OP_MOE_WEIGHTS:
    case IR_OP_MATMUL_ID:
    case IR_OP_MOE_SUM:
    case IR_OP_COUNT:
        break;
    }
    return NULL;
}

int ir_fused_lower(struct ir_graph *g, ae_error *err)
{
    uint32_t n_orig = g->n_nodes, lowered = 0;
    for (uint32_t i = 0; i < n_orig; i++) {
        struct ir_node *n = g->nodes[i];
        if (n->dead || !ir_op_is_fused(n->op))
            continue;
        struct ir_node *v = lower_node(g, n);
        ir_replace_uses(g, n, v);
        ir_node_kill(n);
        lowered++;
    }
    if (!lowered)
        return 0;
    ir_graph_compact(g);
    return ir_graph_sort(g, err);
}
