/* The backend-neutral lowering (lower.h): storage, then the steps of every node, with the checks. */
#include "lower.h"

#include "ae_kernels.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct lowering {
    const struct ir_graph *g;
    const struct pass_ctx *c;
    const struct pack_build *pb;
    const struct lower_target *t;
    struct lower_program *lp;
    ae_error *err;
    int32_t *group;             /* per node: its matmul group's head (pass_matmul_groups); NULL: none */
    /* The batched step (lower_program_batched). */
    bool batched;
    bool *tail;                 /* per node: last_row or after it */
    uint64_t seq_next;          /* the next free byte of the per-sequence rows past the plan's peak */
};

static int node_fail(const struct lowering *l, const struct ir_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "the C backend cannot emit '%12 = ...': <why>" */
static int node_fail(const struct lowering *l, const struct ir_node *n, const char *fmt, ...)
{
    char line[256], why[256];
    ir_print_node(n, line, sizeof line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ae_fail(l->err, "the %s backend cannot emit '%s': %s", l->t->backend, line, why);
}

/* ---- Sizes ---------------------------------------------------------------------------------------- */

bool lower_size_is_const(struct lower_size s)
{
    return s.t == 0 && s.p == 0 && s.r == 0;
}

static struct lower_size size_const(int64_t k)
{
    return (struct lower_size){k, 0, 0, 0};
}

/* A dimension: a constant, T, P or P+T. */
static struct lower_size size_of_dim(int64_t d)
{
    switch (d) {
    case IR_DIM_T: return (struct lower_size){0, 1, 0, 0};
    case IR_DIM_P: return (struct lower_size){0, 0, 1, 0};
    case IR_DIM_PT: return (struct lower_size){0, 1, 1, 0};
    default: return size_const(d);
    }
}

static struct lower_size size_add(struct lower_size a, struct lower_size b)
{
    return (struct lower_size){a.k + b.k, a.t + b.t, a.p + b.p, a.r + b.r};
}

/* a * b, when one of them is a constant; *ok turns false when neither is (not linear in T and P). */
static struct lower_size size_mul(struct lower_size a, struct lower_size b, bool *ok)
{
    if (!lower_size_is_const(a) && !lower_size_is_const(b)) {
        *ok = false;
        return size_const(0);
    }
    if (!lower_size_is_const(a)) {
        struct lower_size x = a;
        a = b;
        b = x;
    }
    return (struct lower_size){a.k * b.k, a.k * b.t, a.k * b.p, a.k * b.r};
}

/* The product of dims [from, to) of n. */
static struct lower_size dims_product(const struct ir_node *n, uint32_t from, uint32_t to, bool *ok)
{
    struct lower_size s = size_const(1);
    for (uint32_t i = from; i < to && i < n->rank; i++)
        s = size_mul(s, size_of_dim(n->shape[i]), ok);
    return s;
}

static struct lower_size rows_of(const struct ir_node *n, bool *ok)
{
    return dims_product(n, 0, n->rank ? n->rank - 1 : 0, ok);
}

static int64_t cols_of(const struct ir_node *n)
{
    return n->rank ? n->shape[n->rank - 1] : 1;
}

/* ---- Storage -------------------------------------------------------------------------------------- */

/* Batched: the storage of a tail value, one copy of its rows (a constant count) per sequence, past the
 * plan's peak. */
static int seq_rows(struct lowering *l, const struct ir_node *n, struct lower_ref *r)
{
    bool ok = true;
    struct lower_size rows = n->op == IR_OP_LAST_ROW ? size_const(1) : rows_of(n, &ok);
    const struct ir_node *x = n->op == IR_OP_LAST_ROW ? n->src[0] : n;
    struct lower_size cols = n->op == IR_OP_LAST_ROW ? dims_product(x, 1, x->rank, &ok) : size_const(cols_of(n));
    const struct ae_type_info *ti = ae_type_info(n->dtype);
    if (!ok || !lower_size_is_const(rows) || !lower_size_is_const(cols) || !ti || ti->block_size != 1)
        return ae_fail(l->err, "'%s' after the last row is taken has rows of a size that depends on the step",
                       n->name ? n->name : ir_op_name(n->op));
    uint64_t a = l->t->arena_alignment, bytes = (uint64_t)(rows.k * cols.k) * ti->block_bytes * (uint64_t)l->lp->max_seqs;
    *r = (struct lower_ref){.base = LOWER_ARENA, .dtype = n->dtype, .layer = -1, .slot = UINT32_MAX,
                            .offset = size_const((int64_t)l->seq_next)};
    l->seq_next += (bytes + a - 1) / a * a;
    return 0;
}

static int assign_storage(struct lowering *l)
{
    const struct pass_plan *plan = &l->c->plan;
    uint64_t *arena = malloc((l->g->n_nodes ? l->g->n_nodes : 1) * sizeof *arena);
    if (!arena)
        return ae_fail(l->err, "out of memory");
    for (uint32_t i = 0; i < l->g->n_nodes; i++)
        arena[i] = UINT64_MAX;
    for (uint32_t b = 0; b < plan->n; b++)
        arena[plan->node[b]] = plan->buf[b].offset;
    int rc = 0;
    for (uint32_t i = 0; i < l->g->n_nodes && rc == 0; i++) {
        const struct ir_node *n = l->g->nodes[i];
        struct lower_ref *r = &l->lp->ref[i];
        *r = (struct lower_ref){.base = LOWER_NOWHERE, .dtype = n->dtype, .layer = -1, .slot = UINT32_MAX};
        bool ok = true;
        switch (n->op) {
        case IR_OP_INPUT:
            if (n->p.input.kind == IR_INPUT_TOKENS)
                r->base = LOWER_TOKENS;
            break; /* positions are P .. P+T-1: kernels take P */
        case IR_OP_WEIGHT:
            if (l->pb->slot[i] == UINT32_MAX)
                rc = node_fail(l, n, "the weight is not in the pack");
            r->base = LOWER_WEIGHTS;
            r->slot = l->pb->slot[i];
            break;
        case IR_OP_KV_CACHE:
            r->base = n->p.kv_cache.kind == IR_KV_K ? LOWER_K_CACHE : LOWER_V_CACHE;
            r->layer = n->p.kv_cache.layer;
            break;
        case IR_OP_KV_STORE:
        case IR_OP_RESHAPE:
            *r = l->lp->ref[n->src[0]->id];
            r->dtype = n->dtype;
            break;
        case IR_OP_LAST_ROW: {
            if (l->batched) {
                rc = seq_rows(l, n, r);
                break;
            }
            /* The source's last row: (S - 1) rows of the rest past its start. */
            const struct ir_node *x = n->src[0];
            const struct ae_type_info *ti = ae_type_info(x->dtype);
            if (!ti || ti->block_size != 1) {
                rc = node_fail(l, n, "last_row of a %s value, which has no whole elements", ae_type_name(x->dtype));
                break;
            }
            uint64_t elem = ti->block_bytes;
            struct lower_size skip = size_add(size_of_dim(x->shape[0]), size_const(-1));
            struct lower_size bytes = size_mul(skip, size_mul(dims_product(x, 1, x->rank, &ok),
                                                              size_const((int64_t)elem), &ok), &ok);
            *r = l->lp->ref[x->id];
            r->offset = size_add(r->offset, bytes);
            r->dtype = n->dtype;
            break;
        }
        case IR_OP_OUTPUT:
            r->base = LOWER_LOGITS;
            break;
        case IR_OP_GET_ROWS: case IR_OP_MATMUL: case IR_OP_ADD: case IR_OP_MUL: case IR_OP_SCALE:
        case IR_OP_SILU: case IR_OP_GELU: case IR_OP_SOFTCAP: case IR_OP_RMS_NORM: case IR_OP_LAYER_NORM:
        case IR_OP_SOFTMAX: case IR_OP_ROPE: case IR_OP_ATTENTION: case IR_OP_SLICE: case IR_OP_PERMUTE:
        case IR_OP_CONCAT: case IR_OP_EW: case IR_OP_MATMUL_EW: case IR_OP_RMS_NORM_MUL: case IR_OP_MATMUL_ROPE:
        case IR_OP_SIGMOID: case IR_OP_BROADCAST: case IR_OP_TOPK: case IR_OP_MOE_WEIGHTS: case IR_OP_MATMUL_ID:
        case IR_OP_MOE_SUM:
            if (arena[i] == UINT64_MAX)
                rc = node_fail(l, n, "the memory plan gave it no buffer");
            r->base = LOWER_ARENA;
            r->offset = size_const((int64_t)arena[i]);
            if (l->batched && l->tail[i])
                rc = seq_rows(l, n, r);
            break;
        case IR_OP_COUNT:
            rc = node_fail(l, n, "unknown op");
            break;
        }
        if (rc == 0 && !ok)
            rc = node_fail(l, n, "its offset is not linear in T and P");
    }
    free(arena);
    return rc;
}

/* ---- Steps ---------------------------------------------------------------------------------------- */

static const struct lower_ref *ref(const struct lowering *l, const struct ir_node *n)
{
    return &l->lp->ref[n->id];
}

/* Every node lowers to at most this many steps (matmul_rope: the matmul, then the rope). */
_Static_assert(LOWER_MAX_PARTS == AE_MATMUL_MAX_PARTS, "a step's parts are one ae_matmul_parts call");
#define MAX_STEPS_PER_NODE 2

/* A new step of kind for node n writing n's value, with n's rows and cols. */
static struct lower_step *step_new(struct lowering *l, const struct ir_node *n, enum lower_kind kind, bool *ok)
{
    struct lower_program *lp = l->lp;
    assert(lp->n_steps - lp->first_step[n->id] < MAX_STEPS_PER_NODE);
    struct lower_step *s = &lp->steps[lp->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = n->id;
    s->name = n->name ? n->name : ir_op_name(n->op);
    s->out = *ref(l, n);
    s->rows = rows_of(n, ok);
    s->cols = cols_of(n);
    return s;
}

static void step_in(const struct lowering *l, struct lower_step *s, const struct ir_node *src)
{
    s->in[s->n_in++] = src ? *ref(l, src) : (struct lower_ref){.base = LOWER_NOWHERE, .layer = -1, .slot = UINT32_MAX};
}

/* Appends the elementwise step op(v[, operand]) with constant k to s, for a value shaped like n. */
static void add_ew(const struct lowering *l, struct lower_step *s, const struct ir_node *n, enum ir_ew_step op,
                   float k, const struct ir_node *operand)
{
    struct lower_ew *e = &s->ew[s->n_ew++];
    e->op = op;
    e->k = k;
    if (operand) {
        e->operand = *ref(l, operand);
        e->operand_row = operand->rank == 1 && n->rank > 1; /* docs/ir.md: add, mul */
    }
}

/* The steps of an ew or matmul_ew node, their operands the sources after the op's fixed ones. */
static void add_node_steps(const struct lowering *l, struct lower_step *s, const struct ir_node *n)
{
    uint32_t next = ir_op_min_src(n->op);
    for (uint32_t i = 0; i < ir_ew_n_steps(n); i++) {
        enum ir_ew_step op = (enum ir_ew_step)n->p.ew.op[i];
        add_ew(l, s, n, op, n->p.ew.k[i], ir_ew_step_has_operand(op) ? n->src[next++] : NULL);
    }
}

/* The pack offset of a matmul node's weight: the order of a group's parts. */
static uint64_t weight_offset(const struct lowering *l, const struct ir_node *m)
{
    return l->pb->offset[l->pb->slot[m->src[1]->id]];
}

/* The step of a matmul node: the matmul; at a group's head, the matmul of every member (its parts); at
 * another member, whose product the head wrote, an EW step in place that the epilogue fills (removed
 * by lower_node when it stays empty). */
static int lower_matmul(struct lowering *l, const struct ir_node *n, struct lower_step **out, bool *ok)
{
    const struct ir_node *x = n->src[0], *w = n->src[1];
    if (!l->t->matmul_supports(w->dtype))
        return node_fail(l, n, "no %s matmul kernel for this weight type", l->t->kernels);
    const int32_t head = l->group ? l->group[n->id] : (int32_t)n->id;
    struct lower_step *s = step_new(l, n, head == (int32_t)n->id ? LOWER_MATMUL : LOWER_EW, ok);
    s->rows = rows_of(x, ok);
    s->cols = w->shape[0];
    *out = s;
    if (s->kind == LOWER_EW) {
        s->in[s->n_in++] = s->out;
        return 0;
    }
    step_in(l, s, x);
    step_in(l, s, w);
    s->p.matmul.n = w->shape[0];
    s->p.matmul.k = w->shape[1];
    s->p.matmul.layout = pass_weight_layout(l->c, w->name);
    if (!l->group)
        return 0;
    /* the members in the order of their weights in the pack (a merged matrix: its rows in order) */
    const struct ir_node *members[LOWER_MAX_PARTS];
    uint32_t k = 0;
    for (uint32_t i = n->id; i < l->g->n_nodes; i++)
        if (l->group[i] == head) {
            const struct ir_node *m = l->g->nodes[i];
            if (k == LOWER_MAX_PARTS || !l->t->matmul_supports(m->src[1]->dtype))
                return node_fail(l, m, "no %s matmul kernel for this weight type, or too many in its group",
                                 l->t->kernels);
            uint32_t at = k++;
            for (; at > 0 && weight_offset(l, members[at - 1]) > weight_offset(l, m); at--)
                members[at] = members[at - 1];
            members[at] = m;
        }
    if (k < 2)
        return 0;
    s->p.matmul.n_parts = k;
    for (uint32_t p = 0; p < k; p++) {
        const struct ir_node *mw = members[p]->src[1];
        s->p.matmul.parts[p] = (struct lower_part){.w = *ref(l, mw), .out = *ref(l, members[p]), .n = mw->shape[0],
                                                   .layout = pass_weight_layout(l->c, mw->name)};
    }
    return 0;
}

/* Whether pos is the step's positions (rope takes them from P). */
static bool is_positions(const struct ir_node *pos)
{
    return pos->op == IR_OP_INPUT && pos->p.input.kind == IR_INPUT_POSITIONS;
}

/* rope of x (already in out's storage, or x's) shaped like n, with n's parameters. */
static int lower_rope(struct lowering *l, const struct ir_node *n, const struct ir_node *x,
                      const struct ir_node *pos, const struct ir_node *factors, bool *ok)
{
    if (!is_positions(pos))
        return node_fail(l, n, "rope positions must be the step's positions");
    if (n->rank != 3)
        return node_fail(l, n, "rope expects [S, heads, head_dim]");
    struct lower_step *s = step_new(l, n, LOWER_ROPE, ok);
    if (x)
        step_in(l, s, x);
    else
        s->in[s->n_in++] = s->out; /* in place, after the matmul */
    step_in(l, s, factors);
    s->rows = size_of_dim(n->shape[0]);
    s->per_seq = l->batched;
    s->p.rope.heads = n->shape[1];
    s->p.rope.head_dim = n->shape[2];
    s->p.rope.n_dims = n->p.rope.n_dims;
    s->p.rope.neox = n->p.rope.mode == IR_ROPE_NEOX;
    s->p.rope.freq_base = n->p.rope.freq_base;
    s->p.rope.freq_scale = n->p.rope.freq_scale;
    s->p.rope.attn_factor = n->p.rope.attn_factor;
    s->p.rope.ext_factor = n->p.rope.ext_factor;
    s->p.rope.n_ctx_orig = n->p.rope.n_ctx_orig;
    s->p.rope.beta_fast = n->p.rope.beta_fast;
    s->p.rope.beta_slow = n->p.rope.beta_slow;
    return 0;
}

/* The cache behind an attention operand: a kv_store (this step's rows appended) of a kv_cache. */
static const struct ir_node *attention_cache(const struct ir_node *kv)
{
    if (kv->op == IR_OP_KV_STORE && kv->src[0]->op == IR_OP_KV_CACHE)
        return kv->src[0];
    return NULL;
}

static int lower_attention(struct lowering *l, const struct ir_node *n, bool *ok)
{
    const struct ir_node *q = n->src[0], *k = attention_cache(n->src[1]), *v = attention_cache(n->src[2]);
    if (!k || !v)
        return node_fail(l, n, "attention must read the KV cache after this step's kv_store");
    if (n->p.attention.softcap > 0.0f && n->p.attention.scale != 1.0f)
        return node_fail(l, n, "attention with both a scale and a softcap has no %s kernel yet", l->t->kernels);
    if (k->dtype != v->dtype)
        return node_fail(l, n, "K and V caches of different types");
    struct lower_step *s = step_new(l, n, LOWER_ATTENTION, ok);
    step_in(l, s, q);
    step_in(l, s, n->src[1]);
    step_in(l, s, n->src[2]);
    s->rows = size_of_dim(q->shape[0]);
    s->per_seq = l->batched;
    s->p.attention.n_head = q->shape[1];
    s->p.attention.n_head_kv = k->shape[1];
    s->p.attention.head_dim_k = q->shape[2];
    s->p.attention.head_dim_v = v->shape[2];
    s->p.attention.scale = n->p.attention.scale;
    s->p.attention.softcap = n->p.attention.softcap;
    s->p.attention.window = n->p.attention.window;
    return 0;
}

/* slice and concat see their tensors as [outer, axis, inner]. */
static void outer_inner(const struct ir_node *n, uint32_t axis, struct lower_size *outer, struct lower_size *inner,
                        bool *ok)
{
    *outer = dims_product(n, 0, axis, ok);
    *inner = dims_product(n, axis + 1, n->rank, ok);
}

static int lower_node(struct lowering *l, const struct ir_node *n)
{
    bool ok = true;
    struct lower_step *s = NULL;
    switch (n->op) {
    case IR_OP_LAST_ROW:
        if (l->batched) {
            const struct ir_node *x = n->src[0];
            s = step_new(l, n, LOWER_LAST_ROWS, &ok);
            step_in(l, s, x);
            s->rows = (struct lower_size){0, 0, 0, 1};
            s->cols = dims_product(x, 1, x->rank, &ok).k;
        }
        return 0; /* a view of the source's last row */
    case IR_OP_INPUT: case IR_OP_WEIGHT: case IR_OP_KV_CACHE: case IR_OP_RESHAPE:
        return 0; /* storage only */
    case IR_OP_GET_ROWS: {
        const struct ir_node *w = n->src[0], *ids = n->src[1];
        uint64_t row_bytes;
        if (ae_type_row_bytes(w->dtype, (uint64_t)w->shape[1], &row_bytes, l->err) < 0)
            return node_fail(l, n, "%s", l->err->msg);
        s = step_new(l, n, LOWER_GET_ROWS, &ok);
        step_in(l, s, w);
        step_in(l, s, ids);
        s->rows = dims_product(ids, 0, ids->rank, &ok);
        s->cols = w->shape[1];
        s->p.get_rows.n_rows = w->shape[0];
        s->p.get_rows.row_bytes = row_bytes;
        s->p.get_rows.layout = w->op == IR_OP_WEIGHT ? pass_weight_layout(l->c, w->name) : 0;
        break;
    }
    case IR_OP_MATMUL:
        if (lower_matmul(l, n, &s, &ok))
            return -1;
        break;
    case IR_OP_ADD: case IR_OP_MUL: case IR_OP_SCALE: case IR_OP_SILU: case IR_OP_GELU: case IR_OP_SOFTCAP:
    case IR_OP_SIGMOID: {
        /* One elementwise op: a chain of one step (ops.def says which step and what it takes). */
        enum ir_ew_step op = ir_ew_step_of(n->op);
        s = step_new(l, n, LOWER_EW, &ok);
        step_in(l, s, n->src[0]);
        add_ew(l, s, n, op, ir_ew_step_k(n), ir_ew_step_has_operand(op) ? n->src[1] : NULL);
        break;
    }
    case IR_OP_EW:
        s = step_new(l, n, LOWER_EW, &ok);
        step_in(l, s, n->src[0]);
        add_node_steps(l, s, n);
        break;
    case IR_OP_MATMUL_EW:
        if (lower_matmul(l, n, &s, &ok))
            return -1;
        add_node_steps(l, s, n);
        break;
    case IR_OP_RMS_NORM:
    case IR_OP_RMS_NORM_MUL:
        s = step_new(l, n, LOWER_RMS_NORM, &ok);
        step_in(l, s, n->src[0]);
        step_in(l, s, n->op == IR_OP_RMS_NORM_MUL ? n->src[1] : NULL);
        s->p.norm.eps = n->p.norm.eps;
        if (n->op == IR_OP_RMS_NORM_MUL && n->n_src == 3)
            add_ew(l, s, n, IR_EW_ADD, 0.0f, n->src[2]);
        break;
    case IR_OP_LAYER_NORM:
        s = step_new(l, n, LOWER_LAYER_NORM, &ok);
        step_in(l, s, n->src[0]);
        s->p.norm.eps = n->p.norm.eps;
        break;
    case IR_OP_SOFTMAX:
        s = step_new(l, n, LOWER_SOFTMAX, &ok);
        step_in(l, s, n->src[0]);
        s->p.softmax.scale = n->p.softmax.scale;
        break;
    case IR_OP_ROPE:
        if (lower_rope(l, n, n->src[0], n->src[1], n->n_src > 2 ? n->src[2] : NULL, &ok))
            return -1;
        break;
    case IR_OP_MATMUL_ROPE:
        /* x w^T (+ bias) into the result, then rope in place. */
        if (!is_positions(n->src[2]))
            return node_fail(l, n, "rope positions must be the step's positions");
        if (lower_matmul(l, n, &s, &ok))
            return -1;
        if (n->n_src > 3)
            add_ew(l, s, n, IR_EW_ADD, 0.0f, n->src[3]);
        if (lower_rope(l, n, NULL, n->src[2], NULL, &ok))
            return -1;
        break;
    case IR_OP_ATTENTION:
        if (lower_attention(l, n, &ok))
            return -1;
        break;
    case IR_OP_KV_STORE: {
        const struct ir_node *x = n->src[1];
        s = step_new(l, n, LOWER_KV_STORE, &ok);
        step_in(l, s, x);
        s->rows = size_of_dim(x->shape[0]);
        s->cols = x->shape[1] * x->shape[2];
        s->p.kv_store.row_len = x->shape[1] * x->shape[2];
        s->per_seq = l->batched;
        break;
    }
    case IR_OP_SLICE: {
        uint32_t axis = (uint32_t)n->p.slice.axis;
        s = step_new(l, n, LOWER_SLICE, &ok);
        step_in(l, s, n->src[0]);
        outer_inner(n, axis, &s->p.slice.outer, &s->p.slice.inner, &ok);
        s->p.slice.len = n->shape[axis];
        s->p.slice.x_len = n->src[0]->shape[axis];
        s->p.slice.start = n->p.slice.start;
        break;
    }
    case IR_OP_CONCAT: {
        uint32_t axis = (uint32_t)n->p.concat.axis;
        s = step_new(l, n, LOWER_CONCAT, &ok);
        step_in(l, s, n->src[0]);
        step_in(l, s, n->src[1]);
        outer_inner(n, axis, &s->p.concat.outer, &s->p.concat.inner, &ok);
        s->p.concat.a_len = n->src[0]->shape[axis];
        s->p.concat.b_len = n->src[1]->shape[axis];
        break;
    }
    case IR_OP_PERMUTE: {
        const struct ir_node *x = n->src[0];
        s = step_new(l, n, LOWER_PERMUTE, &ok);
        step_in(l, s, x);
        /* Both padded to four dimensions with leading ones. */
        for (uint32_t i = 0; i < 4; i++) {
            s->p.permute.dims[i] = size_const(1);
            s->p.permute.perm[i] = (int32_t)i;
        }
        for (uint32_t i = 0; i < x->rank; i++)
            s->p.permute.dims[4 - x->rank + i] = size_of_dim(x->shape[i]);
        for (uint32_t i = 0; i < n->rank; i++)
            s->p.permute.perm[4 - n->rank + i] = (int32_t)(4 - x->rank) + n->p.permute.perm[i];
        break;
    }
    case IR_OP_OUTPUT:
        s = step_new(l, n, LOWER_COPY, &ok);
        step_in(l, s, n->src[0]);
        break;
    case IR_OP_BROADCAST: {
        const struct ir_node *x = n->src[0];
        s = step_new(l, n, LOWER_BROADCAST, &ok);
        step_in(l, s, x);
        for (uint32_t i = 0; i < 4; i++)
            s->p.broadcast.dims[i] = s->p.broadcast.x_dims[i] = size_const(1);
        for (uint32_t i = 0; i < n->rank; i++) {
            s->p.broadcast.dims[4 - n->rank + i] = size_of_dim(n->shape[i]);
            s->p.broadcast.x_dims[4 - n->rank + i] = size_of_dim(x->shape[i]);
        }
        break;
    }
    case IR_OP_TOPK:
        s = step_new(l, n, LOWER_TOPK, &ok);
        step_in(l, s, n->src[0]);
        s->p.topk.n = n->src[0]->shape[1];
        s->p.topk.k = n->p.topk.k;
        break;
    case IR_OP_MOE_WEIGHTS:
        s = step_new(l, n, LOWER_MOE_WEIGHTS, &ok);
        step_in(l, s, n->src[0]);
        step_in(l, s, n->src[1]);
        s->p.moe_weights.n = n->src[0]->shape[1];
        s->p.moe_weights.k = n->shape[1];
        s->p.moe_weights.norm = n->p.moe_weights.norm != 0;
        s->p.moe_weights.scale = n->p.moe_weights.scale;
        break;
    case IR_OP_MATMUL_ID: {
        const struct ir_node *x = n->src[0], *w = n->src[1];
        if (!l->t->matmul_supports(w->dtype))
            return node_fail(l, n, "no %s matmul kernel for this weight type", l->t->kernels);
        s = step_new(l, n, LOWER_MATMUL_ID, &ok);
        step_in(l, s, x);
        step_in(l, s, w);
        step_in(l, s, n->src[2]);
        s->rows = size_of_dim(n->shape[0]);
        s->p.matmul_id.experts = w->shape[0];
        s->p.matmul_id.n = w->shape[1];
        s->p.matmul_id.k = w->shape[2];
        s->p.matmul_id.slots = n->shape[1];
        s->p.matmul_id.x_per_slot = x->rank == 3;
        s->p.matmul_id.layout = pass_weight_layout(l->c, w->name);
        break;
    }
    case IR_OP_MOE_SUM:
        s = step_new(l, n, LOWER_MOE_SUM, &ok);
        step_in(l, s, n->src[0]);
        step_in(l, s, n->src[1]);
        s->p.moe_sum.k = n->src[0]->shape[1];
        break;
    case IR_OP_COUNT:
        return node_fail(l, n, "unknown op");
    }
    if (!ok)
        return node_fail(l, n, "a size is not linear in T and P");
    /* a group member without an epilogue: its group's head wrote its value */
    struct lower_program *lp = l->lp;
    const uint32_t first = lp->first_step[n->id];
    const bool member = l->group && l->group[n->id] >= 0 && l->group[n->id] != (int32_t)n->id;
    if (member && first < lp->n_steps && lp->steps[first].kind == LOWER_EW && lp->steps[first].n_ew == 0) {
        memmove(&lp->steps[first], &lp->steps[first + 1], (lp->n_steps - first - 1) * sizeof *lp->steps);
        lp->n_steps--;
    }
    for (uint32_t i = l->lp->first_step[n->id]; i < l->lp->n_steps; i++)
        if (l->t->missing_kinds & 1u << l->lp->steps[i].kind)
            return node_fail(l, n, "the %s backend has no kernel for this op yet", l->t->backend);
    return 0;
}

/* ---- The batched step ------------------------------------------------------------------------------ */

/* Marks the tail (last_row and what depends on it) and checks that it can run on one row per sequence:
 * only row-by-row ops, reading nothing of the body but through last_row. */
static int batch_tail(struct lowering *l)
{
    const struct ir_graph *g = l->g;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        bool reads_tail = false, reads_body = false;
        for (uint32_t k = 0; k < n->n_src; k++) {
            const struct ir_node *x = n->src[k];
            if (l->tail[x->id])
                reads_tail = true;
            else if (x->op != IR_OP_WEIGHT)
                reads_body = true;
        }
        l->tail[i] = n->op == IR_OP_LAST_ROW || reads_tail;
        if (!l->tail[i] || n->op == IR_OP_LAST_ROW)
            continue;
        const char *name = n->name ? n->name : ir_op_name(n->op);
        if (reads_body)
            return ae_fail(l->err, "'%s' after the last row is taken reads a value from before", name);
        switch (n->op) {
        case IR_OP_MATMUL: case IR_OP_MATMUL_EW: case IR_OP_ADD: case IR_OP_MUL: case IR_OP_SCALE: case IR_OP_SILU:
        case IR_OP_GELU: case IR_OP_SOFTCAP: case IR_OP_EW: case IR_OP_RMS_NORM: case IR_OP_RMS_NORM_MUL:
        case IR_OP_LAYER_NORM: case IR_OP_SOFTMAX: case IR_OP_OUTPUT:
            break;
        case IR_OP_INPUT: case IR_OP_WEIGHT: case IR_OP_KV_CACHE: case IR_OP_KV_STORE: case IR_OP_RESHAPE:
        case IR_OP_LAST_ROW: case IR_OP_GET_ROWS: case IR_OP_ROPE: case IR_OP_ATTENTION: case IR_OP_SLICE:
        case IR_OP_PERMUTE: case IR_OP_CONCAT: case IR_OP_MATMUL_ROPE: case IR_OP_SIGMOID: case IR_OP_BROADCAST:
        case IR_OP_TOPK: case IR_OP_MOE_WEIGHTS: case IR_OP_MATMUL_ID: case IR_OP_MOE_SUM: case IR_OP_COUNT:
            return ae_fail(l->err, "'%s' after the last row is taken is not a row-by-row op (%s)", name,
                           ir_op_name(n->op));
        }
    }
    /* Every output is per sequence: the step writes one row of logits for each. */
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == IR_OP_OUTPUT && !l->tail[i])
            return ae_fail(l->err, "the graph's output is not the logits of its last row");
    return 0;
}

/* After the tail's steps are made: their rows are per sequence (R of them), and no step may depend on P
 * but through the per-sequence kernels' positions. */
static int batch_finish(struct lowering *l)
{
    struct lower_program *lp = l->lp;
    for (uint32_t k = 0; k < lp->n_steps; k++) {
        struct lower_step *s = &lp->steps[k];
        if (l->tail[s->node] && s->kind != LOWER_LAST_ROWS)
            s->rows = (struct lower_size){0, 0, 0, s->rows.k};
        bool p = s->rows.p || s->out.offset.p;
        for (uint32_t i = 0; i < s->n_in; i++)
            p = p || s->in[i].offset.p;
        for (uint32_t i = 0; i < s->n_ew; i++)
            p = p || s->ew[i].operand.offset.p;
        if (s->kind == LOWER_SLICE)
            p = p || s->p.slice.outer.p || s->p.slice.inner.p;
        if (s->kind == LOWER_CONCAT)
            p = p || s->p.concat.outer.p || s->p.concat.inner.p;
        for (int i = 0; s->kind == LOWER_PERMUTE && i < 4; i++)
            p = p || s->p.permute.dims[i].p;
        if (p)
            return ae_fail(l->err, "'%s' has a size that depends on the tokens in the cache", s->name);
    }
    lp->arena_bytes = l->seq_next;
    return 0;
}

static int lower(struct lower_program *lp, const struct ir_graph *g, const struct pass_ctx *c,
                 const struct pack_build *pb, const struct lower_target *t, int32_t max_seqs, ae_error *err)
{
    memset(lp, 0, sizeof *lp);
    if (!c->plan.done)
        return ae_fail(err, "the %s backend needs the memory plan: memplan cannot be disabled", t->backend);
    struct lowering l = {.g = g, .c = c, .pb = pb, .t = t, .lp = lp, .err = err, .batched = max_seqs > 0};
    lp->g = g;
    lp->arena_bytes = c->plan.peak;
    lp->max_seqs = max_seqs > 0 ? max_seqs : 0;
    l.seq_next = (c->plan.peak + t->arena_alignment - 1) / t->arena_alignment * t->arena_alignment;
    lp->kv_type = AE_TYPE_F16;
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == IR_OP_KV_CACHE)
            lp->kv_type = g->nodes[i]->dtype;
    lp->ref = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *lp->ref);
    lp->first_step = calloc(g->n_nodes + 1, sizeof *lp->first_step);
    lp->steps = calloc((size_t)g->n_nodes * MAX_STEPS_PER_NODE + 1, sizeof *lp->steps);
    if (l.batched && !(l.tail = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *l.tail)))
        goto oom;
    if (!lp->ref || !lp->first_step || !lp->steps)
        goto oom;
    if (t->matmul_parts && !(l.group = pass_matmul_groups(g, c)))
        goto oom;
    if ((l.batched && batch_tail(&l)) || assign_storage(&l))
        goto fail;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        lp->first_step[i] = lp->n_steps;
        if (lower_node(&l, g->nodes[i]))
            goto fail;
    }
    lp->first_step[g->n_nodes] = lp->n_steps;
    if (l.batched && batch_finish(&l))
        goto fail;
    free(l.tail);
    free(l.group);
    return 0;
oom:
    ae_fail(err, "out of memory");
fail:
    free(l.tail);
    free(l.group);
    lower_program_free(lp);
    return -1;
}

int lower_program(struct lower_program *lp, const struct ir_graph *g, const struct pass_ctx *c,
                  const struct pack_build *pb, const struct lower_target *t, ae_error *err)
{
    return lower(lp, g, c, pb, t, 0, err);
}

int lower_program_batched(struct lower_program *lp, const struct ir_graph *g, const struct pass_ctx *c,
                          const struct pack_build *pb, const struct lower_target *t, int32_t max_seqs, ae_error *err)
{
    if (max_seqs < 1)
        return ae_fail(err, "a batched step of %" PRId32 " sequences", max_seqs);
    return lower(lp, g, c, pb, t, max_seqs, err);
}

void lower_program_free(struct lower_program *lp)
{
    free(lp->ref);
    free(lp->first_step);
    free(lp->steps);
    memset(lp, 0, sizeof *lp);
}
