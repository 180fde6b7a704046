/* simplify: algebraic identities that make the graph smaller without changing what it computes.
 *
 *   scale(x, 1)                    -> x
 *   scale(scale(x, a), b)          -> scale(x, a*b)
 *   mul(x, ones), add(x, zeros)    -> x       (a weight whose values are all 1 / all 0; needs the GGUF)
 *   reshape(reshape(x))            -> reshape(x); a reshape to x's own shape -> x
 *   permute(permute(x, p), q)      -> permute(x, p[q]); the identity permutation -> x
 *   slice of a whole axis, last_row of one row -> x
 *   scale(rope(x), s)              -> rope(x) with attn_factor * s   (every feature of a head rotates,
 *                                     and nothing else reads the rope)
 *   softmax(scale(x, s))           -> softmax(x) with scale * s
 *   attention(scale(q, s), k, v)   -> attention(q, k, v) with scale * s   (no softcap, f32 cache: the
 *                                     interpreter and ggml round q to f16 for an f16 cache, so moving
 *                                     the scale past that rounding would change the result)
 * Scale folding reassociates float products, which changes results by a rounding at most. Rewrites run
 * to a fixed point; nodes they leave unused are dce's to remove.
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct simp {
    struct ir_graph *g;
    struct pass_ctx *c;
    uint32_t *uses;          /* live uses per node id, kept up to date */
    signed char *is_ones;    /* per weight id: -1 unknown yet, 0 no, 1 all ones, 2 all zeros */
};

static void set_src(struct simp *s, struct ir_node *n, uint32_t i, struct ir_node *to)
{
    s->uses[n->src[i]->id]--;
    s->uses[to->id]++;
    n->src[i] = to;
}

/* Every use of n becomes a use of to, and n goes. */
static void replace(struct simp *s, struct ir_node *n, struct ir_node *to)
{
    uint32_t k = ir_replace_uses(s->g, n, to);
    s->uses[to->id] += k;
    s->uses[n->id] = 0;
    for (uint32_t i = 0; i < n->n_src; i++)
        s->uses[n->src[i]->id]--;
    ir_node_kill(n);
}

/* 1 when weight w holds only ones, 2 only zeros, 0 otherwise or when its values are unknown. */
static int constant_kind(struct simp *s, const struct ir_node *w)
{
    if (w->op != IR_OP_WEIGHT || w->dtype != IR_F32)
        return 0;
    if (s->is_ones[w->id] >= 0)
        return s->is_ones[w->id];
    float *v = NULL;
    int rc = pass_weight_values(s->c, w, &v);
    int kind = 0;
    if (rc == 1) {
        int64_t n = ir_node_numel(w, 0, 0);
        bool ones = true, zeros = true;
        for (int64_t i = 0; i < n && (ones || zeros); i++) {
            ones = ones && v[i] == 1.0f;
            zeros = zeros && v[i] == 0.0f && !signbit(v[i]);
        }
        kind = ones ? 1 : zeros ? 2 : 0;
    }
    free(v);
    s->is_ones[w->id] = (signed char)kind;
    return kind;
}

static bool perm_identity(const struct ir_node *n)
{
    for (uint32_t i = 0; i < n->rank; i++)
        if (n->p.permute.perm[i] != (int32_t)i)
            return false;
    return true;
}

/* One rewrite of n, if one applies; returns whether it did. */
static bool simplify_node(struct simp *s, struct ir_node *n)
{
    struct ir_node *x = n->n_src ? n->src[0] : NULL;
    switch (n->op) {
    case IR_OP_SCALE:
        if (n->p.scale.s == 1.0f) {
            replace(s, n, x);
            return true;
        }
        if (x->op == IR_OP_SCALE) {
            n->p.scale.s *= x->p.scale.s;
            set_src(s, n, 0, x->src[0]);
            return true;
        }
        if (x->op == IR_OP_ROPE && s->uses[x->id] == 1 && x->p.rope.n_dims == x->shape[2]) {
            x->p.rope.attn_factor *= n->p.scale.s;
            replace(s, n, x);
            return true;
        }
        return false;
    case IR_OP_MUL:
    case IR_OP_ADD: {
        int want = n->op == IR_OP_MUL ? 1 : 2;
        struct ir_node *a = n->src[0], *b = n->src[1];
        if (constant_kind(s, b) == want) {
            replace(s, n, a);
            return true;
        }
        if (ir_shape_equal(a, b) && constant_kind(s, a) == want) {
            replace(s, n, b);
            return true;
        }
        return false;
    }
    case IR_OP_RESHAPE:
        if (ir_shape_equal(n, x) && n->dtype == x->dtype) {
            replace(s, n, x);
            return true;
        }
        if (x->op == IR_OP_RESHAPE) {
            set_src(s, n, 0, x->src[0]);
            return true;
        }
        return false;
    case IR_OP_PERMUTE:
        if (perm_identity(n)) {
            replace(s, n, x);
            return true;
        }
        if (x->op == IR_OP_PERMUTE) {
            int32_t perm[IR_MAX_DIMS] = {0};
            for (uint32_t i = 0; i < n->rank; i++)
                perm[i] = x->p.permute.perm[n->p.permute.perm[i]];
            memcpy(n->p.permute.perm, perm, sizeof perm);
            set_src(s, n, 0, x->src[0]);
            return true;
        }
        return false;
    case IR_OP_SLICE:
        if (n->p.slice.start == 0 && ir_shape_equal(n, x)) {
            replace(s, n, x);
            return true;
        }
        return false;
    case IR_OP_BROADCAST:
        if (ir_shape_equal(n, x)) {
            replace(s, n, x);
            return true;
        }
        return false;
    case IR_OP_LAST_ROW:
        if (x->rank >= 1 && x->shape[0] == 1) {
            replace(s, n, x);
            return true;
        }
        return false;
    case IR_OP_SOFTMAX:
        if (x->op == IR_OP_SCALE) {
            n->p.softmax.scale *= x->p.scale.s;
            set_src(s, n, 0, x->src[0]);
            return true;
        }
        return false;
    case IR_OP_ATTENTION:
        if (x->op == IR_OP_SCALE && n->p.attention.softcap == 0.0f && n->src[1]->dtype == IR_F32) {
            n->p.attention.scale *= x->p.scale.s;
            set_src(s, n, 0, x->src[0]);
            return true;
        }
        return false;
    case IR_OP_INPUT:
    case IR_OP_WEIGHT:
    case IR_OP_KV_CACHE:
    case IR_OP_GET_ROWS:
    case IR_OP_MATMUL:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SOFTCAP:
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_ROPE:
    case IR_OP_KV_STORE:
    case IR_OP_CONCAT:
    case IR_OP_OUTPUT:
    case IR_OP_EW:
    case IR_OP_MATMUL_EW:
    case IR_OP_RMS_NORM_MUL:
    case IR_OP_MATMUL_ROPE:
    case IR_OP_SIGMOID:
    case IR_OP_TOPK:
    case IR_OP_MOE_WEIGHTS:
    case IR_OP_MATMUL_ID:
    case IR_OP_MOE_SUM:
    case IR_OP_COUNT:
        return false;
    }
    return false;
}

int pass_simplify(struct ir_graph *g, struct pass_ctx *c)
{
    struct simp s = {g, c, pass_count_uses(g), malloc(g->n_nodes ? g->n_nodes : 1)};
    if (!s.uses || !s.is_ones) {
        free(s.uses);
        free(s.is_ones);
        return ae_fail(c->err, "out of memory");
    }
    memset(s.is_ones, -1, g->n_nodes ? g->n_nodes : 1);
    /* Each rewrite removes a node or a source edge, so this ends; the bound is a safety net. */
    for (uint32_t round = 0; round < 64; round++) {
        bool changed = false;
        for (uint32_t i = 0; i < g->n_nodes; i++) {
            struct ir_node *n = g->nodes[i];
            while (!n->dead && simplify_node(&s, n)) {
                c->stats.simplified++;
                changed = true;
            }
        }
        if (!changed)
            break;
    }
    free(s.uses);
    free(s.is_ones);
    ir_graph_compact(g);
    return 0;
}
