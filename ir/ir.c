/* Building graphs: the op tables generated from ops.def, the per-graph arena, node creation, the
 * builders that compute each op's result shape, and the edits passes make (replace uses, kill and
 * compact, topological sort).
 *
 * The arena is a list of large chunks; nothing is freed until the graph is destroyed, which is what a
 * compiler IR wants (QBE, chibicc). Running out of memory in the compiler is not bad input: it aborts
 * with a message.
 */
#include "ir.h"
#include "ir_fused.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Op tables ------------------------------------------------------------------------------------ */

static const struct op_info {
    const char *name;
    uint32_t min_src, max_src;
    uint32_t props;
} op_table[IR_OP_COUNT] = {
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) [IR_OP_##NAME] = {STR, MIN_SRC, MAX_SRC, PROPS},
#include "ops.def"
#undef X
};

_Static_assert(IR_OP_COUNT == 33, "ops.def changed: update the op count, docs/ir.md and every switch");

const char *ir_op_name(enum ir_op op)
{
    assert((unsigned)op < IR_OP_COUNT);
    return op_table[op].name;
}

int ir_op_from_name(const char *name, size_t len)
{
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (strlen(op_table[i].name) == len && memcmp(op_table[i].name, name, len) == 0)
            return i;
    return -1;
}

uint32_t ir_op_props(enum ir_op op)
{
    assert((unsigned)op < IR_OP_COUNT);
    return op_table[op].props;
}

bool ir_op_has(enum ir_op op, enum ir_op_prop p)
{
    return (ir_op_props(op) & (uint32_t)p) != 0;
}

uint32_t ir_op_min_src(enum ir_op op)
{
    assert((unsigned)op < IR_OP_COUNT);
    return op_table[op].min_src;
}

uint32_t ir_op_max_src(enum ir_op op)
{
    assert((unsigned)op < IR_OP_COUNT);
    return op_table[op].max_src;
}

/* ---- Parameter tables ----------------------------------------------------------------------------- */

static const char *const input_kind_names[] = {"tokens", "positions", NULL};
static const char *const kv_kind_names[] = {"k", "v", NULL};
static const char *const rope_mode_names[] = {"normal", "neox", NULL};

#define PARAM(NAME, KIND, FIELD, ENUMS) {NAME, KIND, offsetof(union ir_params, FIELD), ENUMS}

static const struct ir_param_desc params_input[] = {
    PARAM("kind", IR_PARAM_ENUM, input.kind, input_kind_names),
};
static const struct ir_param_desc params_kv_cache[] = {
    PARAM("layer", IR_PARAM_I32, kv_cache.layer, NULL),
    PARAM("kind", IR_PARAM_ENUM, kv_cache.kind, kv_kind_names),
};
static const struct ir_param_desc params_scale[] = {
    PARAM("s", IR_PARAM_F32, scale.s, NULL),
};
static const struct ir_param_desc params_softcap[] = {
    PARAM("cap", IR_PARAM_F32, softcap.cap, NULL),
};
static const struct ir_param_desc params_norm[] = {
    PARAM("eps", IR_PARAM_F32, norm.eps, NULL),
};
static const struct ir_param_desc params_softmax[] = {
    PARAM("scale", IR_PARAM_F32, softmax.scale, NULL),
};
static const struct ir_param_desc params_rope[] = {
    PARAM("mode", IR_PARAM_ENUM, rope.mode, rope_mode_names),
    PARAM("n_dims", IR_PARAM_I32, rope.n_dims, NULL),
    PARAM("base", IR_PARAM_F32, rope.freq_base, NULL),
    PARAM("freq_scale", IR_PARAM_F32, rope.freq_scale, NULL),
    PARAM("ext_factor", IR_PARAM_F32, rope.ext_factor, NULL),
    PARAM("attn_factor", IR_PARAM_F32, rope.attn_factor, NULL),
    PARAM("beta_fast", IR_PARAM_F32, rope.beta_fast, NULL),
    PARAM("beta_slow", IR_PARAM_F32, rope.beta_slow, NULL),
    PARAM("n_ctx_orig", IR_PARAM_I32, rope.n_ctx_orig, NULL),
};
static const struct ir_param_desc params_attention[] = {
    PARAM("scale", IR_PARAM_F32, attention.scale, NULL),
    PARAM("softcap", IR_PARAM_F32, attention.softcap, NULL),
    PARAM("window", IR_PARAM_I32, attention.window, NULL),
};
static const struct ir_param_desc params_slice[] = {
    PARAM("axis", IR_PARAM_I32, slice.axis, NULL),
    PARAM("start", IR_PARAM_I32, slice.start, NULL),
};
static const struct ir_param_desc params_permute[] = {
    PARAM("perm", IR_PARAM_PERM, permute.perm, NULL),
};
static const struct ir_param_desc params_concat[] = {
    PARAM("axis", IR_PARAM_I32, concat.axis, NULL),
};
static const struct ir_param_desc params_topk[] = {
    PARAM("k", IR_PARAM_I32, topk.k, NULL),
};
static const struct ir_param_desc params_moe_weights[] = {
    PARAM("norm", IR_PARAM_I32, moe_weights.norm, NULL),
    PARAM("scale", IR_PARAM_F32, moe_weights.scale, NULL),
};

#undef PARAM

#define PARAMS(A) (*n = sizeof(A) / sizeof((A)[0]), (A))

const struct ir_param_desc *ir_op_params(enum ir_op op, uint32_t *n)
{
    *n = 0;
    switch (op) {
    case IR_OP_INPUT: return PARAMS(params_input);
    case IR_OP_KV_CACHE: return PARAMS(params_kv_cache);
    case IR_OP_SCALE: return PARAMS(params_scale);
    case IR_OP_SOFTCAP: return PARAMS(params_softcap);
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM: return PARAMS(params_norm);
    case IR_OP_SOFTMAX: return PARAMS(params_softmax);
    case IR_OP_ROPE: return PARAMS(params_rope);
    case IR_OP_ATTENTION: return PARAMS(params_attention);
    case IR_OP_SLICE: return PARAMS(params_slice);
    case IR_OP_PERMUTE: return PARAMS(params_permute);
    case IR_OP_CONCAT: return PARAMS(params_concat);
    case IR_OP_TOPK: return PARAMS(params_topk);
    case IR_OP_MOE_WEIGHTS: return PARAMS(params_moe_weights);
    case IR_OP_RMS_NORM_MUL: return PARAMS(params_norm);
    case IR_OP_MATMUL_ROPE: return PARAMS(params_rope);
    case IR_OP_EW:
    case IR_OP_MATMUL_EW: return ir_ew_params(n);
    case IR_OP_WEIGHT:
    case IR_OP_GET_ROWS:
    case IR_OP_MATMUL:
    case IR_OP_ADD:
    case IR_OP_MUL:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_KV_STORE:
    case IR_OP_RESHAPE:
    case IR_OP_LAST_ROW:
    case IR_OP_OUTPUT:
    case IR_OP_SIGMOID:
    case IR_OP_BROADCAST:
    case IR_OP_MATMUL_ID:
    case IR_OP_MOE_SUM:
    case IR_OP_COUNT:
        return NULL;
    }
    return NULL;
}

#undef PARAMS

/* ---- Dims ----------------------------------------------------------------------------------------- */

bool ir_dim_is_symbol(int64_t d)
{
    return d == IR_DIM_T || d == IR_DIM_P || d == IR_DIM_PT;
}

int64_t ir_dim_value(int64_t d, int64_t T, int64_t P)
{
    switch (d) {
    case IR_DIM_T: return T;
    case IR_DIM_P: return P;
    case IR_DIM_PT: return P + T;
    default: return d;
    }
}

const char *ir_dim_str(int64_t d, char *buf)
{
    switch (d) {
    case IR_DIM_T: return strcpy(buf, "T");
    case IR_DIM_P: return strcpy(buf, "P");
    case IR_DIM_PT: return strcpy(buf, "P+T");
    default: snprintf(buf, 24, "%" PRId64, d); return buf;
    }
}

/* ---- Arena ---------------------------------------------------------------------------------------- */

#define ARENA_CHUNK (256u * 1024u)

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

struct ir_arena {
    struct arena_chunk *head;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "aetherc: out of memory (%zu bytes for the IR)\n", n);
        abort();
    }
    return p;
}

void *ir_alloc(struct ir_graph *g, size_t size)
{
    struct ir_arena *a = g->arena;
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->size - a->head->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        struct arena_chunk *c = xmalloc(sizeof *c + cap);
        c->next = a->head;
        c->used = 0;
        c->size = cap;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    memset(p, 0, size);
    return p;
}

const char *ir_strdup(struct ir_graph *g, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        len = strlen(s);
    char *d = ir_alloc(g, len + 1);
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

struct ir_graph *ir_graph_create(void)
{
    struct ir_graph *g = xmalloc(sizeof *g);
    memset(g, 0, sizeof *g);
    g->arena = xmalloc(sizeof *g->arena);
    g->arena->head = NULL;
    return g;
}

void ir_graph_destroy(struct ir_graph *g)
{
    if (!g)
        return;
    struct arena_chunk *c = g->arena->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(g->arena);
    free(g);
}

/* ---- Nodes ---------------------------------------------------------------------------------------- */

static void graph_append(struct ir_graph *g, struct ir_node *n)
{
    if (g->n_nodes == g->cap_nodes) {
        uint32_t cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        struct ir_node **nodes = ir_alloc(g, cap * sizeof *nodes);
        if (g->n_nodes)
            memcpy(nodes, g->nodes, g->n_nodes * sizeof *nodes);
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    n->id = g->n_nodes;
    g->nodes[g->n_nodes++] = n;
}

struct ir_node *ir_node_new(struct ir_graph *g, enum ir_op op, uint32_t dtype, uint32_t rank,
                            const int64_t *shape, uint32_t n_src, struct ir_node *const *src)
{
    assert((unsigned)op < IR_OP_COUNT);
    assert(rank <= IR_MAX_DIMS && n_src <= IR_MAX_SRC);
    struct ir_node *n = ir_alloc(g, sizeof *n);
    n->op = op;
    n->dtype = dtype;
    n->rank = rank;
    for (uint32_t i = 0; i < rank; i++)
        n->shape[i] = shape[i];
    n->n_src = n_src;
    for (uint32_t i = 0; i < n_src; i++)
        n->src[i] = src[i];
    n->layer = -1;
    graph_append(g, n);
    return n;
}

int32_t ir_name_layer(const char *name)
{
    if (!name || strncmp(name, "blk.", 4) != 0)
        return -1;
    const char *p = name + 4;
    if (*p < '0' || *p > '9')
        return -1;
    int64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > INT32_MAX)
            return -1;
        p++;
    }
    if (*p != 0 && *p != '.')
        return -1;
    return (int32_t)v;
}

void ir_node_set_name(struct ir_graph *g, struct ir_node *n, const char *name)
{
    n->name = name ? ir_strdup(g, name, SIZE_MAX) : NULL;
    n->layer = ir_name_layer(name);
}

int64_t ir_node_numel(const struct ir_node *n, int64_t T, int64_t P)
{
    int64_t e = 1;
    for (uint32_t i = 0; i < n->rank; i++)
        e *= ir_dim_value(n->shape[i], T, P);
    return e;
}

bool ir_shape_equal(const struct ir_node *a, const struct ir_node *b)
{
    if (a->rank != b->rank)
        return false;
    for (uint32_t i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

uint32_t ir_replace_uses(struct ir_graph *g, struct ir_node *from, struct ir_node *to)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        struct ir_node *n = g->nodes[i];
        if (n->dead || n == to)
            continue;
        for (uint32_t s = 0; s < n->n_src; s++)
            if (n->src[s] == from) {
                n->src[s] = to;
                count++;
            }
    }
    return count;
}

void ir_node_kill(struct ir_node *n)
{
    n->dead = true;
}

void ir_graph_compact(struct ir_graph *g)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        struct ir_node *n = g->nodes[i];
        if (n->dead)
            continue;
        n->id = k;
        g->nodes[k++] = n;
    }
    g->n_nodes = k;
}

/* Depth-first post-order from each node in list order: the result keeps the existing order wherever
 * it is already topological. state: 0 unvisited, 1 on the stack, 2 done. */
int ir_graph_sort(struct ir_graph *g, ae_error *err)
{
    uint32_t n = g->n_nodes;
    if (n == 0)
        return 0;
    struct ir_node **order = xmalloc(n * sizeof *order);
    struct frame {
        struct ir_node *node;
        uint32_t next_src;
    } *stack = xmalloc(n * sizeof *stack);
    unsigned char *state = xmalloc(n);
    for (uint32_t i = 0; i < n; i++) {
        state[i] = 0;
        g->nodes[i]->id = i;
    }
    uint32_t n_order = 0;
    int rc = 0;
    for (uint32_t root = 0; root < n && rc == 0; root++) {
        if (state[root])
            continue;
        uint32_t sp = 0;
        stack[sp++] = (struct frame){g->nodes[root], 0};
        state[root] = 1;
        while (sp > 0) {
            struct frame *f = &stack[sp - 1];
            if (f->next_src < f->node->n_src) {
                struct ir_node *s = f->node->src[f->next_src++];
                if (s->id >= n || g->nodes[s->id] != s) {
                    rc = ae_fail(err, "%%%" PRIu32 " (%s) has a source that is not in the graph", f->node->id,
                                 ir_op_name(f->node->op));
                    break;
                }
                if (state[s->id] == 1) {
                    rc = ae_fail(err, "the graph has a cycle through %%%" PRIu32 " (%s)", s->id, ir_op_name(s->op));
                    break;
                }
                if (state[s->id] == 0) {
                    state[s->id] = 1;
                    stack[sp++] = (struct frame){s, 0};
                }
            } else {
                state[f->node->id] = 2;
                order[n_order++] = f->node;
                sp--;
            }
        }
    }
    if (rc == 0) {
        for (uint32_t i = 0; i < n; i++) {
            g->nodes[i] = order[i];
            order[i]->id = i;
        }
    }
    free(state);
    free(stack);
    free(order);
    return rc;
}

/* ---- Builders ------------------------------------------------------------------------------------- */

static struct ir_node *unary(struct ir_graph *g, enum ir_op op, struct ir_node *x)
{
    return ir_node_new(g, op, IR_F32, x->rank, x->shape, 1, &x);
}

static struct ir_node *binary(struct ir_graph *g, enum ir_op op, struct ir_node *a, struct ir_node *b)
{
    struct ir_node *src[2] = {a, b};
    return ir_node_new(g, op, IR_F32, a->rank, a->shape, 2, src);
}

struct ir_node *ir_input(struct ir_graph *g, enum ir_input_kind kind)
{
    int64_t shape[1] = {IR_DIM_T};
    struct ir_node *n = ir_node_new(g, IR_OP_INPUT, IR_I32, 1, shape, 0, NULL);
    n->p.input.kind = kind;
    return n;
}

struct ir_node *ir_weight(struct ir_graph *g, const char *tensor, uint32_t dtype, uint32_t rank,
                          const int64_t *shape)
{
    struct ir_node *n = ir_node_new(g, IR_OP_WEIGHT, dtype, rank, shape, 0, NULL);
    ir_node_set_name(g, n, tensor);
    return n;
}

struct ir_node *ir_kv_cache(struct ir_graph *g, int32_t layer, enum ir_kv_kind kind, uint32_t dtype,
                            int64_t n_head_kv, int64_t head_dim)
{
    int64_t shape[3] = {IR_DIM_P, n_head_kv, head_dim};
    struct ir_node *n = ir_node_new(g, IR_OP_KV_CACHE, dtype, 3, shape, 0, NULL);
    n->p.kv_cache.layer = layer;
    n->p.kv_cache.kind = kind;
    return n;
}

struct ir_node *ir_get_rows(struct ir_graph *g, struct ir_node *w, struct ir_node *ids)
{
    int64_t shape[2] = {ids->rank ? ids->shape[0] : 1, w->rank ? w->shape[w->rank - 1] : 1};
    struct ir_node *src[2] = {w, ids};
    return ir_node_new(g, IR_OP_GET_ROWS, IR_F32, 2, shape, 2, src);
}

struct ir_node *ir_matmul(struct ir_graph *g, struct ir_node *w, struct ir_node *x)
{
    int64_t shape[IR_MAX_DIMS];
    uint32_t rank = x->rank ? x->rank : 1;
    for (uint32_t i = 0; i < x->rank; i++)
        shape[i] = x->shape[i];
    shape[rank - 1] = w->rank ? w->shape[0] : 1;
    struct ir_node *src[2] = {x, w};
    return ir_node_new(g, IR_OP_MATMUL, IR_F32, rank, shape, 2, src);
}

struct ir_node *ir_add(struct ir_graph *g, struct ir_node *a, struct ir_node *b)
{
    return binary(g, IR_OP_ADD, a, b);
}

struct ir_node *ir_mul(struct ir_graph *g, struct ir_node *a, struct ir_node *b)
{
    return binary(g, IR_OP_MUL, a, b);
}

struct ir_node *ir_scale(struct ir_graph *g, struct ir_node *x, float s)
{
    struct ir_node *n = unary(g, IR_OP_SCALE, x);
    n->p.scale.s = s;
    return n;
}

struct ir_node *ir_silu(struct ir_graph *g, struct ir_node *x)
{
    return unary(g, IR_OP_SILU, x);
}

struct ir_node *ir_gelu(struct ir_graph *g, struct ir_node *x)
{
    return unary(g, IR_OP_GELU, x);
}

struct ir_node *ir_softcap(struct ir_graph *g, struct ir_node *x, float cap)
{
    struct ir_node *n = unary(g, IR_OP_SOFTCAP, x);
    n->p.softcap.cap = cap;
    return n;
}

struct ir_node *ir_rms_norm(struct ir_graph *g, struct ir_node *x, float eps)
{
    struct ir_node *n = unary(g, IR_OP_RMS_NORM, x);
    n->p.norm.eps = eps;
    return n;
}

struct ir_node *ir_layer_norm(struct ir_graph *g, struct ir_node *x, float eps)
{
    struct ir_node *n = unary(g, IR_OP_LAYER_NORM, x);
    n->p.norm.eps = eps;
    return n;
}

struct ir_node *ir_softmax(struct ir_graph *g, struct ir_node *x, float scale)
{
    struct ir_node *n = unary(g, IR_OP_SOFTMAX, x);
    n->p.softmax.scale = scale;
    return n;
}

struct ir_node *ir_rope(struct ir_graph *g, struct ir_node *x, struct ir_node *pos, struct ir_node *freq_factors,
                        const struct ir_rope_params *rp)
{
    struct ir_node *src[3] = {x, pos, freq_factors};
    struct ir_node *n = ir_node_new(g, IR_OP_ROPE, IR_F32, x->rank, x->shape, freq_factors ? 3 : 2, src);
    n->p.rope.mode = rp->mode;
    n->p.rope.n_dims = rp->n_dims;
    n->p.rope.n_ctx_orig = rp->n_ctx_orig;
    n->p.rope.freq_base = rp->freq_base;
    n->p.rope.freq_scale = rp->freq_scale;
    n->p.rope.ext_factor = rp->ext_factor;
    n->p.rope.attn_factor = rp->attn_factor;
    n->p.rope.beta_fast = rp->beta_fast;
    n->p.rope.beta_slow = rp->beta_slow;
    return n;
}

struct ir_node *ir_attention(struct ir_graph *g, struct ir_node *q, struct ir_node *k, struct ir_node *v,
                             float scale, float softcap, int32_t window)
{
    int64_t shape[3] = {q->shape[0], q->rank > 1 ? q->shape[1] : 1, v->rank > 2 ? v->shape[2] : 1};
    struct ir_node *src[3] = {q, k, v};
    struct ir_node *n = ir_node_new(g, IR_OP_ATTENTION, IR_F32, 3, shape, 3, src);
    n->p.attention.scale = scale;
    n->p.attention.softcap = softcap;
    n->p.attention.window = window;
    return n;
}

struct ir_node *ir_kv_store(struct ir_graph *g, struct ir_node *cache, struct ir_node *x)
{
    int64_t shape[IR_MAX_DIMS];
    for (uint32_t i = 0; i < cache->rank; i++)
        shape[i] = cache->shape[i];
    if (cache->rank)
        shape[0] = IR_DIM_PT;
    struct ir_node *src[2] = {cache, x};
    return ir_node_new(g, IR_OP_KV_STORE, cache->dtype, cache->rank, shape, 2, src);
}

struct ir_node *ir_reshape(struct ir_graph *g, struct ir_node *x, uint32_t rank, const int64_t *shape)
{
    return ir_node_new(g, IR_OP_RESHAPE, x->dtype, rank, shape, 1, &x);
}

struct ir_node *ir_slice(struct ir_graph *g, struct ir_node *x, int32_t axis, int32_t start, int64_t len)
{
    int64_t shape[IR_MAX_DIMS];
    for (uint32_t i = 0; i < x->rank; i++)
        shape[i] = x->shape[i];
    if (axis >= 0 && (uint32_t)axis < x->rank)
        shape[axis] = len;
    struct ir_node *n = ir_node_new(g, IR_OP_SLICE, x->dtype, x->rank, shape, 1, &x);
    n->p.slice.axis = axis;
    n->p.slice.start = start;
    return n;
}

struct ir_node *ir_permute(struct ir_graph *g, struct ir_node *x, const int32_t *perm)
{
    int64_t shape[IR_MAX_DIMS];
    for (uint32_t i = 0; i < x->rank; i++)
        shape[i] = (perm[i] >= 0 && (uint32_t)perm[i] < x->rank) ? x->shape[perm[i]] : 0;
    struct ir_node *n = ir_node_new(g, IR_OP_PERMUTE, x->dtype, x->rank, shape, 1, &x);
    for (uint32_t i = 0; i < x->rank; i++)
        n->p.permute.perm[i] = perm[i];
    return n;
}

struct ir_node *ir_concat(struct ir_graph *g, struct ir_node *a, struct ir_node *b, int32_t axis)
{
    int64_t shape[IR_MAX_DIMS];
    for (uint32_t i = 0; i < a->rank; i++)
        shape[i] = a->shape[i];
    if (axis >= 0 && (uint32_t)axis < a->rank && (uint32_t)axis < b->rank && !ir_dim_is_symbol(a->shape[axis]) &&
        !ir_dim_is_symbol(b->shape[axis]))
        shape[axis] = a->shape[axis] + b->shape[axis];
    struct ir_node *src[2] = {a, b};
    struct ir_node *n = ir_node_new(g, IR_OP_CONCAT, a->dtype, a->rank, shape, 2, src);
    n->p.concat.axis = axis;
    return n;
}

struct ir_node *ir_broadcast(struct ir_graph *g, struct ir_node *x, uint32_t rank, const int64_t *shape)
{
    return ir_node_new(g, IR_OP_BROADCAST, x->dtype, rank, shape, 1, &x);
}

struct ir_node *ir_sigmoid(struct ir_graph *g, struct ir_node *x)
{
    return unary(g, IR_OP_SIGMOID, x);
}

struct ir_node *ir_topk(struct ir_graph *g, struct ir_node *x, int32_t k)
{
    int64_t shape[2] = {x->rank ? x->shape[0] : 1, k};
    struct ir_node *n = ir_node_new(g, IR_OP_TOPK, IR_I32, 2, shape, 1, &x);
    n->p.topk.k = k;
    return n;
}

struct ir_node *ir_moe_weights(struct ir_graph *g, struct ir_node *probs, struct ir_node *ids, bool norm, float scale)
{
    struct ir_node *src[2] = {probs, ids};
    struct ir_node *n = ir_node_new(g, IR_OP_MOE_WEIGHTS, IR_F32, ids->rank, ids->shape, 2, src);
    n->p.moe_weights.norm = norm;
    n->p.moe_weights.scale = scale;
    return n;
}

struct ir_node *ir_matmul_id(struct ir_graph *g, struct ir_node *w, struct ir_node *x, struct ir_node *ids)
{
    int64_t shape[3] = {ids->rank ? ids->shape[0] : 1, ids->rank > 1 ? ids->shape[1] : 1, w->rank ? w->shape[1] : 1};
    struct ir_node *src[3] = {x, w, ids};
    return ir_node_new(g, IR_OP_MATMUL_ID, IR_F32, 3, shape, 3, src);
}

struct ir_node *ir_moe_sum(struct ir_graph *g, struct ir_node *x, struct ir_node *w)
{
    int64_t shape[2] = {x->rank ? x->shape[0] : 1, x->rank > 2 ? x->shape[2] : 1};
    struct ir_node *src[2] = {x, w};
    return ir_node_new(g, IR_OP_MOE_SUM, IR_F32, 2, shape, 2, src);
}

struct ir_node *ir_last_row(struct ir_graph *g, struct ir_node *x)
{
    int64_t shape[IR_MAX_DIMS];
    for (uint32_t i = 0; i < x->rank; i++)
        shape[i] = x->shape[i];
    if (x->rank)
        shape[0] = 1;
    return ir_node_new(g, IR_OP_LAST_ROW, x->dtype, x->rank, shape, 1, &x);
}

struct ir_node *ir_output(struct ir_graph *g, struct ir_node *x, const char *name)
{
    struct ir_node *n = ir_node_new(g, IR_OP_OUTPUT, x->dtype, x->rank, x->shape, 1, &x);
    ir_node_set_name(g, n, name);
    return n;
}
