/* fold: evaluates constant subgraphs at compile time.
 *
 * A constant is a weight whose values are known: a tensor of the model's GGUF, or one fold made. Fold
 * computes, once, what every step would otherwise recompute from constants alone:
 *   scale / add / mul of constants          -> one new constant
 *   scale(get_rows(W, ids), s)              -> get_rows(W * s, ids)   (gemma's embedding scale)
 *   scale(mul(x, C), s)                     -> mul(x, C * s)          (a scale folded into a norm weight)
 * New constants are f32 (their values are the products the step would compute, so results do not
 * change) and live in the pass context until the weights are written out. A rewrite that would make a
 * constant larger than opt.fold_max_bytes is not made: scaling a 256k-row embedding table to save one
 * multiply per token is a bad trade. Without the model's weights (c->gguf NULL) fold does nothing.
 * RoPE frequency tables are not nodes of the IR (the rope op computes its angles), so there is nothing
 * to fold there.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

struct fold {
    struct ir_graph *g;
    struct pass_ctx *c;
    uint32_t *uses;
};

static bool fits(const struct fold *f, const struct ir_node *like)
{
    int64_t numel = ir_node_numel(like, 0, 0);
    return numel > 0 && (uint64_t)numel * sizeof(float) <= f->c->opt.fold_max_bytes;
}

static bool is_constant(const struct ir_node *n)
{
    return n->op == IR_OP_WEIGHT;
}

/* values of w times s (w's numel floats), or NULL with c->err set / *unknown when values are unknown. */
static float *scaled_values(struct fold *f, const struct ir_node *w, float s, int *rc)
{
    float *v = NULL;
    *rc = pass_weight_values(f->c, w, &v);
    if (*rc != 1)
        return NULL;
    int64_t numel = ir_node_numel(w, 0, 0);
    for (int64_t i = 0; i < numel; i++)
        v[i] = v[i] * s;
    return v;
}

static void replace(struct fold *f, struct ir_node *n, struct ir_node *to)
{
    f->uses[to->id] += ir_replace_uses(f->g, n, to);
    for (uint32_t i = 0; i < n->n_src; i++)
        f->uses[n->src[i]->id]--;
    f->uses[n->id] = 0;
    ir_node_kill(n);
}

/* Grows the use counts for a node just appended. */
static int track(struct fold *f, struct ir_node *n)
{
    uint32_t *u = realloc(f->uses, f->g->n_nodes * sizeof *u);
    if (!u)
        return ae_fail(f->c->err, "out of memory");
    f->uses = u;
    f->uses[n->id] = 0;
    return 0;
}

/* scale/add/mul whose sources are all constants: a new constant. Returns 1 when folded. */
static int fold_constant_op(struct fold *f, struct ir_node *n)
{
    if (n->op != IR_OP_SCALE && n->op != IR_OP_ADD && n->op != IR_OP_MUL)
        return 0;
    for (uint32_t i = 0; i < n->n_src; i++)
        if (!is_constant(n->src[i]) || n->src[i]->dtype != IR_F32)
            return 0;
    if (!fits(f, n))
        return 0;
    int rc;
    float *a = scaled_values(f, n->src[0], n->op == IR_OP_SCALE ? n->p.scale.s : 1.0f, &rc);
    if (!a)
        return rc < 0 ? -1 : 0;
    if (n->op != IR_OP_SCALE) {
        float *b = scaled_values(f, n->src[1], 1.0f, &rc);
        if (!b) {
            free(a);
            return rc < 0 ? -1 : 0;
        }
        int64_t na = ir_node_numel(n, 0, 0), nb = ir_node_numel(n->src[1], 0, 0);
        for (int64_t i = 0; i < na; i++) {
            float y = b[nb == na ? i : i % nb];
            a[i] = n->op == IR_OP_ADD ? a[i] + y : a[i] * y;
        }
        free(b);
    }
    struct ir_node *k = pass_const_new(f->g, f->c, n->src[0]->name, n->rank, n->shape, a);
    if (!k || track(f, k))
        return -1;
    replace(f, n, k);
    return 1;
}

/* scale(get_rows(W, ids), s) and scale(mul(x, C), s): the scale moves into a new constant. */
static int fold_scale_into(struct fold *f, struct ir_node *n)
{
    if (n->op != IR_OP_SCALE)
        return 0;
    struct ir_node *x = n->src[0];
    if (f->uses[x->id] != 1)
        return 0;
    uint32_t slot;
    if (x->op == IR_OP_GET_ROWS)
        slot = 0;
    else if (x->op == IR_OP_MUL && is_constant(x->src[1]))
        slot = 1;
    else if (x->op == IR_OP_MUL && is_constant(x->src[0]) && ir_shape_equal(x->src[0], x->src[1]))
        slot = 0;
    else
        return 0;
    struct ir_node *w = x->src[slot];
    if (!is_constant(w) || !fits(f, w))
        return 0;
    int rc;
    float *v = scaled_values(f, w, n->p.scale.s, &rc);
    if (!v)
        return rc < 0 ? -1 : 0;
    struct ir_node *k = pass_const_new(f->g, f->c, w->name, w->rank, w->shape, v);
    if (!k || track(f, k))
        return -1;
    f->uses[w->id]--;
    f->uses[k->id]++;
    x->src[slot] = k;
    replace(f, n, x);
    return 1;
}

int pass_fold(struct ir_graph *g, struct pass_ctx *c)
{
    struct fold f = {g, c, pass_count_uses(g)};
    if (!f.uses)
        return ae_fail(c->err, "out of memory");
    uint32_t n_orig = g->n_nodes, consts_before = c->n_consts;
    int rc = 0;
    for (uint32_t i = 0; i < n_orig && rc >= 0; i++) {
        struct ir_node *n = g->nodes[i];
        if (n->dead)
            continue;
        rc = fold_constant_op(&f, n);
        if (rc == 0)
            rc = fold_scale_into(&f, n);
    }
    if (rc >= 0) {
        /* Weights that folding left unused go. */
        for (uint32_t i = 0; i < g->n_nodes; i++)
            if (g->nodes[i]->op == IR_OP_WEIGHT && !g->nodes[i]->dead && f.uses[i] == 0)
                ir_node_kill(g->nodes[i]);
        for (uint32_t i = consts_before; i < c->n_consts; i++) {
            uint64_t numel = 1;
            for (uint32_t d = 0; d < c->consts[i].rank; d++)
                numel *= (uint64_t)c->consts[i].shape[d];
            c->stats.folded++;
            c->stats.folded_bytes += numel * sizeof(float);
        }
    }
    free(f.uses);
    ir_graph_compact(g);
    if (rc < 0)
        return -1;
    /* New constants were appended after their users. */
    return ir_graph_sort(g, c->err);
}
