/* fuse: groups nodes into the fused ops of ir_fused.h, driven by a cost model.
 *
 * Candidates, each grown from a head node along its users:
 *   matmul -> [add bias] -> reshape -> rope            matmul_rope   (RoPE in the Q/K projection)
 *   matmul -> up to 4 elementwise steps                matmul_ew     (bias, residual add, SwiGLU's
 *                                                                     silu(gate) * up, softcap, ...)
 *   rms_norm -> mul by its weight [-> add residual]    rms_norm_mul
 *   elementwise op -> more elementwise steps           ew            (at least two ops in one loop)
 * Attention (scores, mask, softmax, times V) is already one op from the importer; it is counted as a
 * fused group and left as it is.
 *
 * The cost model: absorbing an intermediate that only the next step reads saves its write and its read,
 * 2 * bytes at T_max, at no cost. Absorbing one that other nodes read too keeps it in memory for them,
 * saves one read and recomputes it (and the steps before it in the group) inside the fused node:
 *   gain = byte_cost * bytes - flop_cost * flops_per_element * elements.
 * With the CPU's weights (byte 1, flop 0.25) a scale or an add is worth recomputing, a matmul never.
 * Candidates are taken best gain first; a node belongs to at most one group, so after each choice the
 * rest are grown again. A fused node takes the place of its chain's last node in the schedule; nodes
 * that nothing reads any more are removed.
 */
#include "pass.h"

#include "ir_fused.h"

#include <stdlib.h>
#include <string.h>

static const char *const fuse_kind_names[FUSE_KIND_COUNT] = {
    [FUSE_EW_CHAIN] = "elementwise chain",
    [FUSE_NORM_MUL] = "rms_norm*w",
    [FUSE_NORM_MUL_ADD] = "rms_norm*w+residual",
    [FUSE_MATMUL_BIAS] = "matmul+bias",
    [FUSE_MATMUL_RESIDUAL] = "matmul+residual",
    [FUSE_MATMUL_BIAS_RESIDUAL] = "matmul+bias+residual",
    [FUSE_MATMUL_SOFTCAP] = "matmul+softcap",
    [FUSE_SWIGLU] = "swiglu",
    [FUSE_GEGLU] = "geglu",
    [FUSE_MATMUL_EPILOGUE] = "matmul+epilogue",
    [FUSE_MATMUL_ROPE] = "matmul+rope",
    [FUSE_ATTENTION] = "attention",
};

const char *fuse_kind_name(enum fuse_kind k)
{
    return (unsigned)k < FUSE_KIND_COUNT ? fuse_kind_names[k] : "?";
}

struct fuse {
    struct ir_graph *g;
    struct pass_ctx *c;
    uint32_t n_orig;          /* nodes before the pass; only those are candidates */
    uint32_t *user_off;       /* users of node i: user_list[user_off[i] .. user_off[i+1]) */
    struct ir_node **user_list;
    bool *claimed;            /* absorbed into a group (or the root of one) */
};

/* A candidate group. */
struct cand {
    enum ir_op op;                       /* the fused op */
    struct ir_node *head, *end;          /* first and last node of the chain */
    struct ir_node *chain[8];            /* head, then every absorbed node in order */
    bool shared[8];                      /* the node is read outside the group too: recomputed */
    uint32_t n_chain;
    int32_t steps[IR_EW_MAX_STEPS];
    float k[IR_EW_MAX_STEPS];
    uint32_t n_steps;
    struct ir_node *src[IR_MAX_SRC];
    uint32_t n_src;
    double gain;
    uint64_t saved_bytes;
};

/* ---- Costs ---------------------------------------------------------------------------------------- */

/* Floating-point operations per output element, roughly: exp and tanh count as several. */
static double flops_per_element(const struct ir_node *n)
{
    switch (n->op) {
    case IR_OP_ADD:
    case IR_OP_MUL:
    case IR_OP_SCALE: return 1;
    case IR_OP_SILU: return 8;
    case IR_OP_GELU: return 12;
    case IR_OP_SOFTCAP: return 10;
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_SOFTMAX: return 4;
    case IR_OP_MATMUL: return 2.0 * (double)n->src[1]->shape[1];
    case IR_OP_INPUT:
    case IR_OP_WEIGHT:
    case IR_OP_KV_CACHE:
    case IR_OP_GET_ROWS:
    case IR_OP_ROPE:
    case IR_OP_ATTENTION:
    case IR_OP_KV_STORE:
    case IR_OP_RESHAPE:
    case IR_OP_SLICE:
    case IR_OP_PERMUTE:
    case IR_OP_CONCAT:
    case IR_OP_LAST_ROW:
    case IR_OP_OUTPUT:
    case IR_OP_EW:
    case IR_OP_MATMUL_EW:
    case IR_OP_RMS_NORM_MUL:
    case IR_OP_MATMUL_ROPE:
    case IR_OP_SIGMOID:
    case IR_OP_BROADCAST:
    case IR_OP_TOPK:
    case IR_OP_MOE_WEIGHTS:
    case IR_OP_MATMUL_ID:
    case IR_OP_MOE_SUM:
    case IR_OP_COUNT:
        break;
    }
    return 1e9; /* never worth recomputing */
}

static uint32_t n_users(const struct fuse *f, const struct ir_node *n)
{
    return f->user_off[n->id + 1] - f->user_off[n->id];
}

static bool usable(const struct fuse *f, const struct ir_node *n)
{
    return n->id < f->n_orig && f->g->nodes[n->id] == n && !f->claimed[n->id];
}

/* Records that the chain grows past cur (which its next node reads). Returns false when the cost model
 * says no: cur is read elsewhere too and recomputing the group so far costs more than the read saved. */
static bool absorb(const struct fuse *f, struct cand *k, const struct ir_node *cur, double chain_flops)
{
    double bytes = (double)pass_node_bytes(cur, f->c);
    if (n_users(f, cur) == 1) {
        k->gain += 2.0 * bytes * f->c->opt.byte_cost;
        k->saved_bytes += 2 * (uint64_t)bytes;
        return true;
    }
    double elems = (double)ir_node_numel(cur, f->c->opt.t_max, 0);
    double delta = bytes * f->c->opt.byte_cost - chain_flops * elems * f->c->opt.flop_cost;
    if (delta <= 0)
        return false;
    k->gain += delta;
    k->saved_bytes += (uint64_t)bytes;
    k->shared[k->n_chain - 1] = true;
    return true;
}

/* ---- Growing candidates --------------------------------------------------------------------------- */

/* An operand that a binary step may take: f32, v's shape or one row of its last dimension. */
static bool operand_fits(const struct ir_node *o, const struct ir_node *like)
{
    return o->dtype == IR_F32 && (ir_shape_equal(o, like) ||
                                  (o->rank == 1 && like->rank >= 1 && o->shape[0] == like->shape[like->rank - 1]));
}

/* Whether u can be the next step after cur; *other receives its operand for add and mul. */
static bool step_fits(const struct fuse *f, const struct ir_node *cur, const struct ir_node *u,
                      struct ir_node **other)
{
    *other = NULL;
    if (!usable(f, u) || ir_ew_step_of(u->op) == IR_EW_NONE || u->dtype != IR_F32 || !ir_shape_equal(u, cur))
        return false;
    if (u->n_src == 1)
        return u->src[0] == cur;
    if (u->src[0] == cur && u->src[1] != cur && operand_fits(u->src[1], u)) {
        *other = u->src[1];
        return true;
    }
    if (u->src[1] == cur && u->src[0] != cur && ir_shape_equal(u->src[0], u)) {
        *other = u->src[0]; /* add and mul commute exactly in floating point */
        return true;
    }
    return false;
}

/* Extends k's chain with elementwise steps while they fit, up to max_src sources in all. */
static void grow_steps(const struct fuse *f, struct cand *k, uint32_t max_src, double chain_flops)
{
    struct ir_node *cur = k->end;
    while (k->n_steps < IR_EW_MAX_STEPS && k->n_chain < 8) {
        struct ir_node *next = NULL, *other = NULL;
        for (uint32_t i = f->user_off[cur->id]; i < f->user_off[cur->id + 1] && !next; i++)
            if (step_fits(f, cur, f->user_list[i], &other) && (!other || k->n_src < max_src))
                next = f->user_list[i];
        if (!next || !absorb(f, k, cur, chain_flops))
            return;
        k->steps[k->n_steps] = ir_ew_step_of(next->op);
        k->k[k->n_steps++] = ir_ew_step_k(next);
        if (other)
            k->src[k->n_src++] = other;
        k->chain[k->n_chain++] = next;
        k->end = cur = next;
        chain_flops += flops_per_element(next);
    }
}

static void cand_start(struct cand *k, enum ir_op op, struct ir_node *head)
{
    memset(k, 0, sizeof *k);
    k->op = op;
    k->head = k->end = head;
    k->chain[0] = head;
    k->n_chain = 1;
}

/* matmul -> [add bias] -> reshape -> rope, every link read only by the next. */
static bool grow_rope(const struct fuse *f, struct ir_node *m, struct cand *k)
{
    cand_start(k, IR_OP_MATMUL_ROPE, m);
    if (m->src[0]->rank != 2 || n_users(f, m) != 1)
        return false;
    struct ir_node *u = f->user_list[f->user_off[m->id]], *bias = NULL;
    if (u->op == IR_OP_ADD && usable(f, u) && u->src[0] == m && u->src[1]->rank == 1 && u->src[1] != m &&
        u->src[1]->dtype == IR_F32 && n_users(f, u) == 1) {
        bias = u->src[1];
        absorb(f, k, m, 0);
        k->chain[k->n_chain++] = u;
        u = f->user_list[f->user_off[u->id]];
    }
    struct ir_node *prev = k->chain[k->n_chain - 1];
    if (u->op != IR_OP_RESHAPE || !usable(f, u) || u->rank != 3 || u->shape[0] != m->shape[0] || n_users(f, u) != 1)
        return false;
    struct ir_node *r = f->user_list[f->user_off[u->id]];
    if (r->op != IR_OP_ROPE || !usable(f, r) || r->src[0] != u || r->n_src != 2)
        return false;
    absorb(f, k, prev, 0);
    k->chain[k->n_chain++] = u;
    k->chain[k->n_chain++] = r;
    k->end = r;
    k->src[0] = m->src[0];
    k->src[1] = m->src[1];
    k->src[2] = r->src[1];
    k->n_src = 3;
    if (bias)
        k->src[k->n_src++] = bias;
    return true;
}

/* matmul followed by elementwise steps. */
static bool grow_matmul_ew(const struct fuse *f, struct ir_node *m, struct cand *k)
{
    cand_start(k, IR_OP_MATMUL_EW, m);
    k->src[0] = m->src[0];
    k->src[1] = m->src[1];
    k->n_src = 2;
    grow_steps(f, k, ir_op_max_src(IR_OP_MATMUL_EW), flops_per_element(m));
    return k->n_steps > 0;
}

/* rms_norm -> mul by a weight row -> [add residual]. */
static bool grow_norm(const struct fuse *f, struct ir_node *h, struct cand *k)
{
    cand_start(k, IR_OP_RMS_NORM_MUL, h);
    if (n_users(f, h) != 1)
        return false;
    struct ir_node *u = f->user_list[f->user_off[h->id]], *w;
    if (!step_fits(f, h, u, &w) || u->op != IR_OP_MUL)
        return false;
    absorb(f, k, h, 0);
    k->chain[k->n_chain++] = u;
    k->end = u;
    k->src[0] = h->src[0];
    k->src[1] = w;
    k->n_src = 2;
    if (n_users(f, u) == 1) {
        struct ir_node *a = f->user_list[f->user_off[u->id]], *r;
        if (step_fits(f, u, a, &r) && a->op == IR_OP_ADD) {
            absorb(f, k, u, 0);
            k->chain[k->n_chain++] = a;
            k->end = a;
            k->src[k->n_src++] = r;
        }
    }
    return true;
}

/* An elementwise op and the steps after it: at least two ops. */
static bool grow_ew(const struct fuse *f, struct ir_node *h, struct cand *k)
{
    cand_start(k, IR_OP_EW, h);
    k->src[0] = h->src[0];
    k->n_src = 1;
    if (h->n_src == 2) {
        if (!operand_fits(h->src[1], h) || !ir_shape_equal(h->src[0], h))
            return false;
        k->src[k->n_src++] = h->src[1];
    }
    k->steps[0] = ir_ew_step_of(h->op);
    k->k[0] = ir_ew_step_k(h);
    k->n_steps = 1;
    grow_steps(f, k, ir_op_max_src(IR_OP_EW), flops_per_element(h));
    return k->n_steps > 1;
}

/* Keeps k as *best when grown and better. */
static bool keep_better(bool grown, const struct cand *k, struct cand *best)
{
    if (!grown || k->gain <= best->gain)
        return false;
    *best = *k;
    return true;
}

/* The best candidate headed by h, if any: a matmul heads matmul_rope and matmul_ew, an rms_norm heads
 * rms_norm_mul, and any op that is an elementwise step (ops.def) heads an ew chain. */
static bool best_for(const struct fuse *f, struct ir_node *h, struct cand *best)
{
    struct cand k;
    bool found = false;
    best->gain = 0;
    if (!usable(f, h))
        return false;
    if (h->op == IR_OP_MATMUL) {
        found |= keep_better(grow_rope(f, h, &k), &k, best);
        found |= keep_better(grow_matmul_ew(f, h, &k), &k, best);
    } else if (h->op == IR_OP_RMS_NORM) {
        found |= keep_better(grow_norm(f, h, &k), &k, best);
    } else if (ir_ew_step_of(h->op) != IR_EW_NONE && h->dtype == IR_F32) {
        found |= keep_better(grow_ew(f, h, &k), &k, best);
    }
    return found;
}

/* ---- Building groups ------------------------------------------------------------------------------ */

static enum fuse_kind kind_of(const struct cand *k)
{
    const int32_t *s = k->steps;
    switch (k->op) {
    case IR_OP_MATMUL_ROPE: return FUSE_MATMUL_ROPE;
    case IR_OP_RMS_NORM_MUL: return k->n_src == 3 ? FUSE_NORM_MUL_ADD : FUSE_NORM_MUL;
    case IR_OP_EW:
    case IR_OP_MATMUL_EW: {
        uint32_t first = ir_op_min_src(k->op); /* the steps' operands follow the fixed sources */
        if (k->n_steps == 2 && s[0] == IR_EW_SILU && s[1] == IR_EW_MUL)
            return FUSE_SWIGLU;
        if (k->n_steps == 2 && s[0] == IR_EW_GELU && s[1] == IR_EW_MUL)
            return FUSE_GEGLU;
        if (k->op == IR_OP_EW)
            return FUSE_EW_CHAIN;
        bool row0 = k->n_src > first && k->src[first]->rank == 1;
        if (k->n_steps == 1 && s[0] == IR_EW_SOFTCAP)
            return FUSE_MATMUL_SOFTCAP;
        if (k->n_steps == 1 && s[0] == IR_EW_ADD)
            return row0 ? FUSE_MATMUL_BIAS : FUSE_MATMUL_RESIDUAL;
        if (k->n_steps == 2 && s[0] == IR_EW_ADD && s[1] == IR_EW_ADD && row0 && k->src[first + 1]->rank > 1)
            return FUSE_MATMUL_BIAS_RESIDUAL;
        return FUSE_MATMUL_EPILOGUE;
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
    return FUSE_MATMUL_EPILOGUE;
}

/* Makes the fused node of k; it takes the place of k's last node. */
static void build(struct fuse *f, const struct cand *k)
{
    struct ir_node *e = k->end;
    struct ir_node *n = ir_node_new(f->g, k->op, IR_F32, e->rank, e->shape, k->n_src, k->src);
    n->name = e->name;
    n->layer = e->layer;
    if (k->op == IR_OP_MATMUL_ROPE) {
        n->p = e->p;
    } else if (k->op == IR_OP_RMS_NORM_MUL) {
        n->p = k->head->p;
    } else {
        for (uint32_t i = 0; i < k->n_steps; i++) {
            n->p.ew.op[i] = k->steps[i];
            n->p.ew.k[i] = k->k[i];
        }
    }
    ir_replace_uses(f->g, e, n);
    /* n takes e's place in the schedule: every source of n comes before e, and every user after. */
    f->g->nodes[e->id] = n;
    n->id = e->id;
    for (uint32_t i = 0; i < k->n_chain; i++)
        if (!k->shared[i])
            f->claimed[k->chain[i]->id] = true;
    f->c->stats.fused[kind_of(k)]++;
    f->c->stats.fuse_saved_bytes += k->saved_bytes;
}

/* Builds the user lists of the nodes as they are before any group is made. */
static int index_users(struct fuse *f)
{
    uint32_t n = f->n_orig;
    f->user_off = calloc(n + 1, sizeof *f->user_off);
    f->claimed = calloc(n ? n : 1, sizeof *f->claimed);
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += f->g->nodes[i]->n_src;
    f->user_list = malloc((total ? total : 1) * sizeof *f->user_list);
    uint32_t *fill = calloc(n ? n : 1, sizeof *fill);
    if (!f->user_off || !f->claimed || !f->user_list || !fill) {
        free(fill);
        return ae_fail(f->c->err, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t s = 0; s < f->g->nodes[i]->n_src; s++)
            f->user_off[f->g->nodes[i]->src[s]->id + 1]++;
    for (uint32_t i = 0; i < n; i++)
        f->user_off[i + 1] += f->user_off[i];
    for (uint32_t i = 0; i < n; i++) {
        struct ir_node *u = f->g->nodes[i];
        for (uint32_t s = 0; s < u->n_src; s++) {
            uint32_t j = u->src[s]->id;
            /* A node that reads the same source twice is one user. */
            bool dup = false;
            for (uint32_t t = 0; t < s; t++)
                dup = dup || u->src[t]->id == j;
            if (!dup)
                f->user_list[f->user_off[j] + fill[j]++] = u;
        }
    }
    /* Close the gaps left by duplicates: shift each list down to its new start. */
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t start = f->user_off[i];
        f->user_off[i] = w;
        for (uint32_t t = 0; t < fill[i]; t++)
            f->user_list[w++] = f->user_list[start + t];
    }
    f->user_off[n] = w;
    free(fill);
    return 0;
}

/* Removes what no output or cache write reads any more. */
static void sweep(struct ir_graph *g)
{
    bool *live = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *live);
    if (!live)
        return; /* leaving unused nodes is still a valid graph */
    for (uint32_t i = g->n_nodes; i-- > 0;) {
        struct ir_node *n = g->nodes[i];
        if (n->op == IR_OP_OUTPUT || n->op == IR_OP_KV_STORE || n->op == IR_OP_INPUT)
            live[i] = true;
        if (!live[i] || n->dead)
            continue;
        for (uint32_t s = 0; s < n->n_src; s++)
            live[n->src[s]->id] = true;
    }
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (!live[i])
            ir_node_kill(g->nodes[i]);
    free(live);
}

int pass_fuse(struct ir_graph *g, struct pass_ctx *c)
{
    struct fuse f = {g, c, g->n_nodes, NULL, NULL, NULL};
    int rc = index_users(&f);
    /* Best gain first; each choice claims nodes, so the others are grown again. */
    while (rc == 0) {
        struct cand best, k;
        bool any = false;
        for (uint32_t i = 0; i < f.n_orig; i++)
            if (best_for(&f, g->nodes[i], &k) && (!any || k.gain > best.gain)) {
                best = k;
                any = true;
            }
        if (!any)
            break;
        build(&f, &best);
    }
    free(f.user_off);
    free(f.user_list);
    free(f.claimed);
    if (rc)
        return -1;
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == IR_OP_ATTENTION)
            c->stats.fused[FUSE_ATTENTION]++;
    /* The fused nodes were appended, then moved into the places of the nodes they replace. */
    g->n_nodes = f.n_orig;
    sweep(g);
    ir_graph_compact(g);
    return 0;
}
