/* The C emitter (emit_c.h).
 *
 * Every node gets a C expression for where its value lives: an arena offset from the memory plan for
 * values the step computes, an offset in the weights pack for weights, the layer's cache for kv_cache and
 * kv_store, the source's storage for views (reshape, last_row), and the token array for the input. The
 * nodes are then emitted in graph order, each as one block headed by its IR line: a kernel call for
 * matmuls, norms, rope and attention, and a plain loop for elementwise work. Shapes are constants except
 * T and P, which are the forward function's arguments.
 */
#include "emit_c.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ae_kernels.h"
#include "ir_fused.h"

extern const char tmpl_program_head[];

#define EXPR_MAX 160

struct emitter {
    FILE *out;
    const struct ir_graph *g;
    const struct pass_ctx *c;
    const struct pack_build *pb;
    const struct import_hparams *hp;
    char (*expr)[EXPR_MAX];   /* per node: a C expression for its data pointer ("" if it has none) */
    uint64_t *arena_off;      /* per node: offset in the arena, or UINT64_MAX */
    ae_error *err;
};

static void out(struct emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(struct emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->out, fmt, ap);
    va_end(ap);
}

static int node_error(struct emitter *e, const struct ir_node *n, const char *what)
{
    char line[256];
    ir_print_node(n, line, sizeof line);
    return ae_fail(e->err, "the C backend cannot emit '%s': %s", line, what);
}

/* A float as a C literal that reads back as the same float: "0.353553385f", "10000.0f". */
struct flt {
    char s[40];
};

static struct flt flt(float v)
{
    struct flt r;
    if (isnan(v))
        snprintf(r.s, sizeof r.s, "NAN");
    else if (isinf(v))
        snprintf(r.s, sizeof r.s, "%sINFINITY", v < 0 ? "-" : "");
    else {
        snprintf(r.s, sizeof r.s, "%.9g", (double)v);
        if (!strpbrk(r.s, ".e"))
            strcat(r.s, ".0");
        strcat(r.s, "f");
    }
    return r;
}

/* ---- Shapes as C expressions -------------------------------------------------------------------- */

/* A dimension: a constant, T, P or (P + T). */
static const char *dim(int64_t d, char *buf)
{
    if (d == IR_DIM_T)
        return "T";
    if (d == IR_DIM_P)
        return "P";
    if (d == IR_DIM_PT)
        return "(P + T)";
    snprintf(buf, 24, "%" PRId64, d);
    return buf;
}

/* The product of dims [from, to) of n, folded where constant: "(T * 8)", "T", "64", "1". */
static void dims_product(const struct ir_node *n, uint32_t from, uint32_t to, char *buf, size_t size)
{
    int64_t k = 1;
    char sym[64] = "";
    for (uint32_t i = from; i < to && i < n->rank; i++) {
        if (ir_dim_is_symbol(n->shape[i])) {
            char b[24];
            size_t l = strlen(sym);
            snprintf(sym + l, sizeof sym - l, "%s%s", l ? " * " : "", dim(n->shape[i], b));
        } else
            k *= n->shape[i];
    }
    if (!sym[0])
        snprintf(buf, size, "%" PRId64, k);
    else if (k == 1)
        snprintf(buf, size, "(int64_t)%s%s%s", strchr(sym, '*') ? "(" : "", sym, strchr(sym, '*') ? ")" : "");
    else
        snprintf(buf, size, "((int64_t)%s * %" PRId64 ")", sym, k);
}

/* Rows: everything but the last dimension. */
static void rows_expr(const struct ir_node *n, char *buf, size_t size)
{
    dims_product(n, 0, n->rank ? n->rank - 1 : 0, buf, size);
}

static int64_t last_dim(const struct ir_node *n) { return n->rank ? n->shape[n->rank - 1] : 1; }

static void numel_expr(const struct ir_node *n, char *buf, size_t size) { dims_product(n, 0, n->rank, buf, size); }

/* ---- Where values live ------------------------------------------------------------------------------ */

/* Formats a node's storage expression; fails when it does not fit (an internal limit). */
static bool set_expr(char *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool set_expr(char *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(x, EXPR_MAX, fmt, ap);
    va_end(ap);
    return n >= 0 && n < EXPR_MAX;
}

static int assign_storage(struct emitter *e)
{
    const struct pass_plan *plan = &e->c->plan;
    for (uint32_t i = 0; i < e->g->n_nodes; i++)
        e->arena_off[i] = UINT64_MAX;
    for (uint32_t b = 0; b < plan->n; b++)
        e->arena_off[plan->node[b]] = plan->buf[b].offset;
    for (uint32_t i = 0; i < e->g->n_nodes; i++) {
        const struct ir_node *n = e->g->nodes[i];
        char *x = e->expr[i];
        bool ok = true;
        x[0] = 0;
        switch (n->op) {
        case IR_OP_INPUT:
            if (n->p.input.kind == IR_INPUT_TOKENS)
                ok = set_expr(x, "tokens");
            break; /* positions are P .. P+T-1: kernels take P */
        case IR_OP_WEIGHT:
            if (e->pb->offset[i] == UINT64_MAX)
                return node_error(e, n, "the weight is not in the pack");
            if (n->dtype == AE_TYPE_F32)
                ok = set_expr(x, "((const float *)(W + %" PRIu64 "))", e->pb->offset[i]);
            else
                ok = set_expr(x, "(W + %" PRIu64 ")", e->pb->offset[i]);
            break;
        case IR_OP_KV_CACHE:
            ok = set_expr(x, "s->%s_cache[%" PRId32 "]", n->p.kv_cache.kind == IR_KV_K ? "k" : "v",
                     n->p.kv_cache.layer);
            break;
        case IR_OP_KV_STORE:
        case IR_OP_RESHAPE:
            memcpy(x, e->expr[n->src[0]->id], EXPR_MAX);
            break;
        case IR_OP_LAST_ROW: {
            char inner[64];
            dims_product(n->src[0], 1, n->src[0]->rank, inner, sizeof inner);
            char b[24], src[EXPR_MAX];
            memcpy(src, e->expr[n->src[0]->id], EXPR_MAX);
            ok = set_expr(x, "(%s + (%s - 1) * %s)", src, dim(n->src[0]->shape[0], b), inner);
            break;
        }
        case IR_OP_OUTPUT:
            ok = set_expr(x, "logits");
            break;
        case IR_OP_GET_ROWS: case IR_OP_MATMUL: case IR_OP_ADD: case IR_OP_MUL: case IR_OP_SCALE:
        case IR_OP_SILU: case IR_OP_GELU: case IR_OP_SOFTCAP: case IR_OP_RMS_NORM: case IR_OP_LAYER_NORM:
        case IR_OP_SOFTMAX: case IR_OP_ROPE: case IR_OP_ATTENTION: case IR_OP_SLICE: case IR_OP_PERMUTE:
        case IR_OP_CONCAT: case IR_OP_EW: case IR_OP_MATMUL_EW: case IR_OP_RMS_NORM_MUL: case IR_OP_MATMUL_ROPE:
            if (e->arena_off[i] == UINT64_MAX)
                return node_error(e, n, "the memory plan gave it no buffer");
            ok = set_expr(x, "((float *)(A + %" PRIu64 "))", e->arena_off[i]);
            break;
        case IR_OP_COUNT:
            return node_error(e, n, "unknown op");
        }
        if (!ok)
            return node_error(e, n, "its storage expression is too long");
    }
    return 0;
}

static const char *X(struct emitter *e, const struct ir_node *n) { return e->expr[n->id]; }

/* "AE_TYPE_Q4_0" for a ggml type id. */
static const char *type_const(uint32_t type, char *buf, size_t size)
{
    const char *name = ae_type_name(type);
    size_t i = (size_t)snprintf(buf, size, "AE_TYPE_");
    for (; *name && i + 1 < size; name++)
        buf[i++] = (char)(*name >= 'a' && *name <= 'z' ? *name - 32 : *name);
    buf[i] = 0;
    return buf;
}

/* Whether b is one row applied to every row of a (docs/ir.md: add, mul). */
static bool row_broadcast(const struct ir_node *a, const struct ir_node *b)
{
    return b->rank == 1 && a->rank > 1;
}

/* ---- Elementwise loops ------------------------------------------------------------------------------ */

/* One step of an elementwise chain applied to v; src is the operand of add/mul. */
static void emit_step(struct emitter *e, enum ir_ew_step step, float k, const struct ir_node *dst,
                      const struct ir_node *src)
{
    switch (step) {
    case IR_EW_ADD:
    case IR_EW_MUL:
        out(e, "                v = v %c %s[%s];\n", step == IR_EW_ADD ? '+' : '*', X(e, src),
            row_broadcast(dst, src) ? "i" : "r * D + i");
        break;
    case IR_EW_SCALE: out(e, "                v = v * %s;\n", flt(k).s); break;
    case IR_EW_SILU: out(e, "                v = ew_silu(v);\n"); break;
    case IR_EW_GELU: out(e, "                v = ew_gelu(v);\n"); break;
    case IR_EW_SOFTCAP: out(e, "                v = ew_softcap(v, %s);\n", flt(k).s); break;
    case IR_EW_NONE:
    case IR_EW_STEP_COUNT: break;
    }
}

/* y[r, i] = steps(first[r, i]) for every row r and column i < D. first may be y (in place). */
static void emit_ew_loop(struct emitter *e, const struct ir_node *n, const char *first, uint32_t n_steps,
                         const enum ir_ew_step *steps, const float *ks, const struct ir_node *const *operands)
{
    char rows[96];
    rows_expr(n, rows, sizeof rows);
    out(e, "        const int64_t R = %s, D = %" PRId64 ";\n", rows, last_dim(n));
    out(e, "        float *y = %s;\n", X(e, n));
    out(e, "        for (int64_t r = 0; r < R; r++)\n            for (int64_t i = 0; i < D; i++) {\n");
    out(e, "                float v = %s[r * D + i];\n", first);
    uint32_t next = 0;
    for (uint32_t s = 0; s < n_steps; s++) {
        const struct ir_node *src = NULL;
        if (steps[s] == IR_EW_ADD || steps[s] == IR_EW_MUL)
            src = operands[next++];
        emit_step(e, steps[s], ks[s], n, src);
    }
    out(e, "                y[r * D + i] = v;\n            }\n");
}

/* The steps of an ew or matmul_ew node, with the operands of its add/mul steps (sources from first_src). */
static uint32_t ew_steps(const struct ir_node *n, uint32_t first_src, enum ir_ew_step *steps, float *ks,
                         const struct ir_node **operands)
{
    uint32_t k = ir_ew_n_steps(n), next = first_src;
    for (uint32_t s = 0; s < k; s++) {
        steps[s] = (enum ir_ew_step)n->p.ew.op[s];
        ks[s] = n->p.ew.k[s];
        if (steps[s] == IR_EW_ADD || steps[s] == IR_EW_MUL)
            operands[next - first_src] = n->src[next], next++;
    }
    return k;
}

/* ---- Kernel calls ---------------------------------------------------------------------------------- */

static int emit_matmul_call(struct emitter *e, const struct ir_node *n, const struct ir_node *x,
                            const struct ir_node *w)
{
    if (!ae_matmul_supports(w->dtype))
        return node_error(e, n, "no CPU matmul kernel for this weight type");
    char rows[96], t[32];
    rows_expr(x, rows, sizeof rows);
    out(e, "        AE_CHECK(ae_matmul(%s, %s, %" PRId64 ", %" PRId64 ", %s, %s, %s, s->scratch, s->pool, err), "
           "\"%s\");\n", type_const(w->dtype, t, sizeof t), X(e, w), w->shape[0], w->shape[1], X(e, x), rows,
        X(e, n), n->name ? n->name : "matmul");
    return 0;
}

static int emit_rope_call(struct emitter *e, const struct ir_node *n, const char *x, const struct ir_node *shape,
                          const union ir_params *p, const struct ir_node *factors)
{
    if (p->rope.ext_factor != 0.0f)
        return node_error(e, n, "YaRN rope scaling has no CPU kernel yet");
    if (shape->rank != 3)
        return node_error(e, n, "rope expects [S, heads, head_dim]");
    char b[24];
    out(e, "        static const struct ae_rope_params rp = {%" PRId32 ", %s, %s, %s, NULL};\n", p->rope.n_dims,
        p->rope.mode == IR_ROPE_NEOX ? "true" : "false", flt(p->rope.freq_base).s, flt(p->rope.freq_scale).s);
    out(e, "        struct ae_rope_params r = rp;\n");
    if (factors)
        out(e, "        r.freq_factors = %s;\n", X(e, factors));
    out(e, "        AE_CHECK(ae_rope(%s, %s, %s, %" PRId64 ", %" PRId64 ", P, &r, err), \"%s\");\n", x, X(e, n),
        dim(shape->shape[0], b), shape->shape[1], shape->shape[2], n->name ? n->name : "rope");
    if (p->rope.attn_factor != 1.0f) {
        /* attn_factor multiplies cos and sin: it scales the rotated features of each head, not the rest. */
        out(e, "        for (int64_t h = 0; h < (int64_t)%s * %" PRId64 "; h++)\n", dim(shape->shape[0], b), shape->shape[1]);
        out(e, "            for (int64_t i = 0; i < %" PRId32 "; i++) %s[h * %" PRId64 " + i] *= %s;\n", p->rope.n_dims,
            X(e, n), shape->shape[2], flt(p->rope.attn_factor).s);
    }
    return 0;
}

/* The cache behind an attention operand: a kv_store (this step's rows appended) of a kv_cache. */
static const struct ir_node *attention_cache(const struct ir_node *kv)
{
    if (kv->op == IR_OP_KV_STORE && kv->src[0]->op == IR_OP_KV_CACHE)
        return kv->src[0];
    return NULL;
}

static int emit_attention(struct emitter *e, const struct ir_node *n)
{
    const struct ir_node *q = n->src[0], *k = attention_cache(n->src[1]), *v = attention_cache(n->src[2]);
    if (!k || !v)
        return node_error(e, n, "attention must read the KV cache after this step's kv_store");
    if (n->p.attention.softcap > 0.0f && n->p.attention.scale != 1.0f)
        return node_error(e, n, "attention with both a scale and a softcap has no CPU kernel yet");
    if (k->dtype != v->dtype)
        return node_error(e, n, "K and V caches of different types");
    char b[24];
    out(e, "        const struct ae_attn_params ap = {.n_tokens = %s, .pos0 = P, .n_ctx = s->n_ctx, .n_head = %" PRId64
           ", .n_head_kv = %" PRId64 ", .head_dim_k = %" PRId64 ", .head_dim_v = %" PRId64 ",\n"
           "            .kv_type = s->kv_type, .scale = %s, .softcap = %s, .window = %" PRId32 "};\n",
        dim(q->shape[0], b), q->shape[1], k->shape[1], q->shape[2], v->shape[2], flt(n->p.attention.scale).s,
        flt(n->p.attention.softcap).s, n->p.attention.window);
    out(e, "        AE_CHECK(ae_attention(&ap, %s, %s, %s, %s, s->scratch, s->pool, err), \"%s\");\n", X(e, q),
        X(e, n->src[1]), X(e, n->src[2]), X(e, n), n->name ? n->name : "attention");
    return 0;
}

static int emit_get_rows(struct emitter *e, const struct ir_node *n)
{
    const struct ir_node *w = n->src[0], *ids = n->src[1];
    uint64_t row_bytes;
    if (ae_type_row_bytes(w->dtype, (uint64_t)w->shape[1], &row_bytes, e->err) < 0)
        return node_error(e, n, e->err->msg);
    char count[96], t[32];
    numel_expr(ids, count, sizeof count);
    out(e, "        const int64_t n = %s;\n", count);
    out(e, "        for (int64_t i = 0; i < n; i++) {\n");
    out(e, "            const int32_t id = %s[i];\n", X(e, ids));
    out(e, "            if (id < 0 || id >= %" PRId64 ")\n", w->shape[0]);
    out(e, "                return ae_fail(err, \"token id %%d is outside the vocabulary (0..%" PRId64 ")\", id);\n",
        w->shape[0] - 1);
    out(e, "            AE_CHECK(ae_dequantize_row(%s, (const uint8_t *)%s + (int64_t)id * %" PRIu64
           ", %s + i * %" PRId64 ", %" PRId64 ", err), \"%s\");\n", type_const(w->dtype, t, sizeof t), X(e, w),
        row_bytes, X(e, n),
        w->shape[1], w->shape[1], n->name ? n->name : "get_rows");
    out(e, "        }\n");
    return 0;
}

/* slice, concat and permute: copies through a [outer, axis, inner] view of the tensors. */
static void emit_slice(struct emitter *e, const struct ir_node *n)
{
    const struct ir_node *x = n->src[0];
    uint32_t axis = (uint32_t)n->p.slice.axis;
    char outer[96], inner[96];
    dims_product(n, 0, axis, outer, sizeof outer);
    dims_product(n, axis + 1, n->rank, inner, sizeof inner);
    out(e, "        const int64_t O = %s, I = %s;\n", outer, inner);
    out(e, "        for (int64_t o = 0; o < O; o++)\n");
    out(e, "            memcpy(%s + o * %" PRId64 " * I, %s + (o * %" PRId64 " + %" PRId32 ") * I, sizeof(float) * %" PRId64 " * I);\n",
        X(e, n), n->shape[axis], X(e, x), x->shape[axis], n->p.slice.start, n->shape[axis]);
}

static void emit_concat(struct emitter *e, const struct ir_node *n)
{
    const struct ir_node *a = n->src[0], *b = n->src[1];
    uint32_t axis = (uint32_t)n->p.concat.axis;
    char outer[96], inner[96];
    dims_product(n, 0, axis, outer, sizeof outer);
    dims_product(n, axis + 1, n->rank, inner, sizeof inner);
    out(e, "        const int64_t O = %s, I = %s;\n", outer, inner);
    out(e, "        for (int64_t o = 0; o < O; o++) {\n");
    out(e, "            memcpy(%s + o * %" PRId64 " * I, %s + o * %" PRId64 " * I, sizeof(float) * %" PRId64 " * I);\n",
        X(e, n), n->shape[axis], X(e, a), a->shape[axis], a->shape[axis]);
    out(e, "            memcpy(%s + (o * %" PRId64 " + %" PRId64 ") * I, %s + o * %" PRId64 " * I, sizeof(float) * %" PRId64 " * I);\n",
        X(e, n), n->shape[axis], a->shape[axis], X(e, b), b->shape[axis], b->shape[axis]);
    out(e, "        }\n");
}

static void emit_permute(struct emitter *e, const struct ir_node *n)
{
    const struct ir_node *x = n->src[0];
    char b[24];
    /* Strides of the source, then a loop over the result's index space (up to 4 dims). */
    out(e, "        int64_t xd[4] = {1, 1, 1, 1}, xs[4], yd[4] = {1, 1, 1, 1};\n");
    for (uint32_t i = 0; i < x->rank; i++)
        out(e, "        xd[%" PRIu32 "] = %s;\n", 4 - x->rank + i, dim(x->shape[i], b));
    out(e, "        xs[3] = 1; xs[2] = xd[3]; xs[1] = xd[2] * xs[2]; xs[0] = xd[1] * xs[1];\n");
    int32_t perm[4] = {0, 1, 2, 3};
    for (uint32_t i = 0; i < n->rank; i++)
        perm[4 - n->rank + i] = (int32_t)(4 - x->rank) + n->p.permute.perm[i];
    for (uint32_t i = 0; i < 4; i++)
        out(e, "        yd[%" PRIu32 "] = xd[%" PRId32 "];\n", i, perm[i]);
    out(e, "        float *y = %s;\n        const float *x = %s;\n        int64_t k = 0;\n", X(e, n), X(e, x));
    out(e, "        for (int64_t a = 0; a < yd[0]; a++) for (int64_t b = 0; b < yd[1]; b++)\n");
    out(e, "            for (int64_t c = 0; c < yd[2]; c++) for (int64_t d = 0; d < yd[3]; d++)\n");
    out(e, "                y[k++] = x[a * xs[%" PRId32 "] + b * xs[%" PRId32 "] + c * xs[%" PRId32 "] + d * xs[%" PRId32 "]];\n",
        perm[0], perm[1], perm[2], perm[3]);
}

/* ---- One node -------------------------------------------------------------------------------------- */

/* Nodes that only name storage: their value is somewhere already, and they emit no code. */
static bool storage_only(enum ir_op op)
{
    return op == IR_OP_INPUT || op == IR_OP_WEIGHT || op == IR_OP_KV_CACHE || op == IR_OP_RESHAPE ||
           op == IR_OP_LAST_ROW;
}

static int emit_node(struct emitter *e, const struct ir_node *n)
{
    char rows[96], b[24];
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_WEIGHT: case IR_OP_KV_CACHE: case IR_OP_RESHAPE: case IR_OP_LAST_ROW:
        return 0; /* no code: storage only */
    case IR_OP_GET_ROWS:
        return emit_get_rows(e, n);
    case IR_OP_MATMUL:
        return emit_matmul_call(e, n, n->src[0], n->src[1]);
    case IR_OP_ADD:
    case IR_OP_MUL: {
        enum ir_ew_step st = n->op == IR_OP_ADD ? IR_EW_ADD : IR_EW_MUL;
        float k = 0;
        const struct ir_node *operand = n->src[1];
        emit_ew_loop(e, n, X(e, n->src[0]), 1, &st, &k, &operand);
        return 0;
    }
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SOFTCAP: {
        enum ir_ew_step st = n->op == IR_OP_SCALE ? IR_EW_SCALE : n->op == IR_OP_SILU ? IR_EW_SILU
                           : n->op == IR_OP_GELU ? IR_EW_GELU : IR_EW_SOFTCAP;
        float k = n->op == IR_OP_SCALE ? n->p.scale.s : n->op == IR_OP_SOFTCAP ? n->p.softcap.cap : 0.0f;
        emit_ew_loop(e, n, X(e, n->src[0]), 1, &st, &k, NULL);
        return 0;
    }
    case IR_OP_EW: {
        enum ir_ew_step steps[IR_EW_MAX_STEPS];
        float ks[IR_EW_MAX_STEPS];
        const struct ir_node *ops[IR_EW_MAX_STEPS];
        uint32_t k = ew_steps(n, 1, steps, ks, ops);
        emit_ew_loop(e, n, X(e, n->src[0]), k, steps, ks, ops);
        return 0;
    }
    case IR_OP_MATMUL_EW: {
        if (emit_matmul_call(e, n, n->src[0], n->src[1]))
            return -1;
        enum ir_ew_step steps[IR_EW_MAX_STEPS];
        float ks[IR_EW_MAX_STEPS];
        const struct ir_node *ops[IR_EW_MAX_STEPS];
        uint32_t k = ew_steps(n, 2, steps, ks, ops);
        emit_ew_loop(e, n, X(e, n), k, steps, ks, ops);
        return 0;
    }
    case IR_OP_RMS_NORM:
    case IR_OP_RMS_NORM_MUL: {
        const char *w = n->op == IR_OP_RMS_NORM_MUL ? X(e, n->src[1]) : "NULL";
        rows_expr(n, rows, sizeof rows);
        out(e, "        ae_rms_norm(%s, %s, %s, %s, %" PRId64 ", %s);\n", X(e, n->src[0]), w, X(e, n), rows,
            last_dim(n), flt(n->p.norm.eps).s);
        if (n->op == IR_OP_RMS_NORM_MUL && n->n_src == 3) {
            enum ir_ew_step st = IR_EW_ADD;
            float k = 0;
            const struct ir_node *residual = n->src[2];
            emit_ew_loop(e, n, X(e, n), 1, &st, &k, &residual);
        }
        return 0;
    }
    case IR_OP_LAYER_NORM:
        rows_expr(n, rows, sizeof rows);
        out(e, "        const int64_t R = %s, D = %" PRId64 ";\n", rows, last_dim(n));
        out(e, "        const float *x = %s;\n        float *y = %s;\n", X(e, n->src[0]), X(e, n));
        out(e, "        for (int64_t r = 0; r < R; r++) {\n");
        out(e, "            double sum = 0, sq = 0;\n");
        out(e, "            for (int64_t i = 0; i < D; i++) sum += x[r * D + i];\n");
        out(e, "            const float mean = (float)(sum / D);\n");
        out(e, "            for (int64_t i = 0; i < D; i++) { const float d = x[r * D + i] - mean; sq += (double)(d * d); }\n");
        out(e, "            const float scale = 1.0f / sqrtf((float)(sq / D) + %s);\n", flt(n->p.norm.eps).s);
        out(e, "            for (int64_t i = 0; i < D; i++) y[r * D + i] = (x[r * D + i] - mean) * scale;\n        }\n");
        return 0;
    case IR_OP_SOFTMAX:
        rows_expr(n, rows, sizeof rows);
        if (n->p.softmax.scale != 1.0f) {
            enum ir_ew_step st = IR_EW_SCALE;
            float k = n->p.softmax.scale;
            emit_ew_loop(e, n, X(e, n->src[0]), 1, &st, &k, NULL);
            out(e, "        ae_softmax(%s, %s, %s, %" PRId64 ");\n", X(e, n), X(e, n), rows, last_dim(n));
        } else
            out(e, "        ae_softmax(%s, %s, %s, %" PRId64 ");\n", X(e, n->src[0]), X(e, n), rows, last_dim(n));
        return 0;
    case IR_OP_ROPE:
        if (n->src[1]->op != IR_OP_INPUT || n->src[1]->p.input.kind != IR_INPUT_POSITIONS)
            return node_error(e, n, "rope positions must be the step's positions");
        return emit_rope_call(e, n, X(e, n->src[0]), n, &n->p, n->n_src > 2 ? n->src[2] : NULL);
    case IR_OP_MATMUL_ROPE: {
        /* x w^T (+ bias) into the result, then rope in place. */
        const struct ir_node *x = n->src[0], *w = n->src[1];
        if (n->src[2]->op != IR_OP_INPUT || n->src[2]->p.input.kind != IR_INPUT_POSITIONS)
            return node_error(e, n, "rope positions must be the step's positions");
        if (emit_matmul_call(e, n, x, w))
            return -1;
        if (n->n_src > 3) {
            const struct ir_node *bias = n->src[3];
            rows_expr(x, rows, sizeof rows);
            out(e, "        for (int64_t r = 0; r < %s; r++)\n", rows);
            out(e, "            for (int64_t i = 0; i < %" PRId64 "; i++) %s[r * %" PRId64 " + i] += %s[i];\n", w->shape[0],
                X(e, n), w->shape[0], X(e, bias));
        }
        return emit_rope_call(e, n, X(e, n), n, &n->p, NULL);
    }
    case IR_OP_ATTENTION:
        return emit_attention(e, n);
    case IR_OP_KV_STORE: {
        const struct ir_node *x = n->src[1];
        out(e, "        AE_CHECK(ae_kv_store(s->kv_type, %s, s->n_ctx, %" PRId64 ", P, %s, %s, err), \"%s\");\n",
            X(e, n), x->shape[1] * x->shape[2], X(e, x), dim(x->shape[0], b), n->name ? n->name : "kv_store");
        return 0;
    }
    case IR_OP_SLICE:
        emit_slice(e, n);
        return 0;
    case IR_OP_CONCAT:
        emit_concat(e, n);
        return 0;
    case IR_OP_PERMUTE:
        emit_permute(e, n);
        return 0;
    case IR_OP_OUTPUT: {
        char count[96];
        numel_expr(n, count, sizeof count);
        out(e, "        memcpy(logits, %s, sizeof(float) * %s);\n", X(e, n->src[0]), count);
        return 0;
    }
    case IR_OP_COUNT:
        break;
    }
    return node_error(e, n, "unknown op");
}

/* ---- The whole unit ------------------------------------------------------------------------------- */

static void emit_string(struct emitter *e, const char *s)
{
    out(e, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            out(e, "\\%c", *s);
        else if (*s == '\n')
            out(e, "\\n\"\n    \"");
        else if ((unsigned char)*s < 0x20)
            out(e, "\\%03o", (unsigned char)*s);
        else
            out(e, "%c", *s);
    }
    out(e, "\"");
}

static void emit_scratch_size(struct emitter *e)
{
    out(e, "/* Kernel scratch: the largest any one call needs (they run one after another). */\n");
    out(e, "static uint64_t scratch_size(int32_t n_ctx, int32_t n_threads)\n{\n    uint64_t m = 64, x;\n");
    out(e, "    (void)n_ctx;\n    (void)n_threads;\n");
    bool attention_seen = false;
    for (uint32_t i = 0; i < e->g->n_nodes; i++) {
        const struct ir_node *n = e->g->nodes[i];
        if (n->op == IR_OP_MATMUL || n->op == IR_OP_MATMUL_EW || n->op == IR_OP_MATMUL_ROPE) {
            const struct ir_node *w = n->src[1];
            bool seen = false;
            for (uint32_t j = 0; j < i && !seen; j++) {
                const struct ir_node *o = e->g->nodes[j];
                seen = (o->op == IR_OP_MATMUL || o->op == IR_OP_MATMUL_EW || o->op == IR_OP_MATMUL_ROPE) &&
                       o->src[1]->dtype == w->dtype && o->src[1]->shape[1] == w->shape[1];
            }
            if (!seen)
            {
                char t[32];
                out(e, "    x = ae_matmul_scratch_size(%s, %" PRId64 ", T_MAX);\n    if (x > m) m = x;\n",
                    type_const(w->dtype, t, sizeof t), w->shape[1]);
            }
        } else if (n->op == IR_OP_ATTENTION && !attention_seen) {
            attention_seen = true; /* every layer's attention has the same shape */
            const struct ir_node *q = n->src[0], *k = n->src[1], *v = n->src[2];
            out(e, "    for (uint32_t kv_type = AE_TYPE_F32; kv_type <= AE_TYPE_F16; kv_type++) {\n");
            out(e, "        const struct ae_attn_params ap = {.n_tokens = T_MAX, .n_ctx = n_ctx, .n_head = %" PRId64
                   ", .n_head_kv = %" PRId64 ", .head_dim_k = %" PRId64 ", .head_dim_v = %" PRId64 ",\n"
                   "            .kv_type = kv_type, .scale = 1};\n", q->shape[1], k->shape[1], q->shape[2], v->shape[2]);
            out(e, "        x = ae_attention_scratch_size(&ap, n_threads);\n        if (x > m) m = x;\n    }\n");
        }
    }
    out(e, "    return m;\n}\n\n");
}

/* One step function: the prefill chunk (T tokens, 1..T_MAX) or the decode step (T = 1, a constant, so
 * that every shape is constant and the compiler can specialize the loops). */
static int emit_step_function(struct emitter *e, bool decode)
{
    if (decode) {
        out(e, "/* The decode step: one token at position P. */\n");
        out(e, "static int forward_decode(struct ae_state *s, const int32_t *tokens, int32_t P, float *logits, ae_error *err)\n{\n");
        out(e, "    enum { T = 1 };\n");
    } else {
        out(e, "/* The prefill step: T tokens (1..T_MAX) at positions P..P+T-1. */\n");
        out(e, "static int forward_prefill(struct ae_state *s, const int32_t *tokens, int32_t T, int32_t P, float *logits, ae_error *err)\n{\n");
    }
    out(e, "    uint8_t *const A = s->arena;\n    const uint8_t *const W = s->weights;\n");
    out(e, "    (void)A;\n    (void)W;\n    (void)tokens;\n");
    for (uint32_t i = 0; i < e->g->n_nodes; i++) {
        const struct ir_node *n = e->g->nodes[i];
        char line[512];
        ir_print_node(n, line, sizeof line);
        for (char *p = line; (p = strstr(p, "*/")); p++)
            p[1] = '|'; /* keep the comment closed only where we close it */
        if (storage_only(n->op)) {
            out(e, "    /* %s */\n", line);
            continue;
        }
        out(e, "    { /* %s */\n", line);
        if (emit_node(e, n))
            return -1;
        out(e, "    }\n");
    }
    out(e, "    return 0;\n}\n\n");
    return 0;
}

int emit_c(FILE *f, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
           const struct import_hparams *hp, const struct emit_options *o, ae_error *err)
{
    if (!c->plan.done)
        return ae_fail(err, "the C backend needs the memory plan: memplan cannot be disabled");
    struct emitter e = {.out = f, .g = g, .c = c, .pb = pb, .hp = hp, .err = err};
    e.expr = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *e.expr);
    e.arena_off = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *e.arena_off);
    int rc = -1;
    if (!e.expr || !e.arena_off) {
        ae_fail(err, "out of memory");
        goto done;
    }
    if (assign_storage(&e))
        goto done;

    out(&e, "/* Generated by aetherc from %s (%s, %s): the model's forward step and description.\n"
            " * Do not edit: compile the model again instead. */\n", o->model_file, o->model_name, hp->arch);
    out(&e, "%s\n", tmpl_program_head);
    out(&e, "#define T_MAX %" PRId32 "\n\n", o->t_max);
    emit_scratch_size(&e);

    if (emit_step_function(&e, false) || emit_step_function(&e, true))
        goto done;
    out(&e, "/* One step: T tokens (1..T_MAX) at positions P..P+T-1; writes the last token's logits. */\n");
    out(&e, "static int forward(struct ae_state *s, const int32_t *tokens, int32_t T, int32_t P, float *logits, ae_error *err)\n{\n");
    out(&e, "    return T == 1 ? forward_decode(s, tokens, P, logits, err) : forward_prefill(s, tokens, T, P, logits, err);\n}\n\n");

    if (o->vk && emit_vk(f, g, c, pb, o->vk, err) < 0)
        goto done;
    out(&e, "static const struct ae_model model = {\n    .name = ");
    emit_string(&e, o->model_name);
    out(&e, ",\n    .arch = \"%s\",\n", hp->arch);
    out(&e, "    .n_vocab = %" PRIu32 ",\n    .n_layer = %" PRIu32 ",\n    .n_head_kv = %" PRIu32 ",\n", hp->n_vocab,
        hp->n_layer, hp->n_head_kv);
    out(&e, "    .head_dim_k = %" PRIu32 ",\n    .head_dim_v = %" PRIu32 ",\n    .n_ctx_train = %" PRIu32 ",\n",
        hp->head_dim_k, hp->head_dim_v, hp->n_ctx_train);
    out(&e, "    .t_max = T_MAX,\n    .arena_bytes = %" PRIu64 ",\n    .scratch_size = scratch_size,\n", c->plan.peak);
    out(&e, "    .weights_bytes = %" PRIu64 ",\n    .weights_checksum = 0x%016" PRIx64 "u,\n", pb->weights_size,
        pb->weights_checksum);
    out(&e, "    .info = ");
    emit_string(&e, o->info);
    out(&e, ",\n    .forward = forward,\n    .gpu = %s,\n};\n\n", o->vk ? "&gpu_model" : "NULL");
    out(&e, "int main(int argc, char **argv)\n{\n    return ae_program_main(argc, argv, &model);\n}\n");
    rc = ferror(f) ? ae_fail(err, "writing the C file failed") : 0;
done:
    free(e.expr);
    free(e.arena_off);
    return rc;
}
