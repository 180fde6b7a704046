/* ir_verify: the invariants every pass must keep, checked after each one in tests and debug builds.
 *
 * Structure: every source is a live node of this graph that comes earlier in g->nodes (so the graph is
 * acyclic), ids match positions, source counts match ops.def. Types: each op's rules for dtypes, ranks,
 * shapes and parameters, as docs/ir.md states them. The message names the node (%id, op, origin) and
 * says what was expected and what was found, so a broken pass is caught at the pass.
 */
#include "ir.h"
#include "ir_fused.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ir_node_fail(ae_error *err, const struct ir_node *n, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ae_fail(err, "%%%" PRIu32 " = %s%s%s: %s", n->id, ir_op_name(n->op), n->name ? " ; " : "",
                   n->name ? n->name : "", what);
}

/* "[T,4,8]" for messages. */
const char *ir_shape_str(const struct ir_node *n, char *buf, size_t size)
{
    size_t k = 0;
    char d[24];
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (uint32_t i = 0; i < n->rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? "," : "", ir_dim_str(n->shape[i], d));
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

static bool is_float_act(uint32_t dtype)
{
    return dtype == IR_F32;
}

/* Element count as constant part times symbol powers, so reshapes with T or P can be compared. */
struct volume {
    int64_t c;
    int t, p, pt;
};

static struct volume volume_of(const struct ir_node *n)
{
    struct volume v = {1, 0, 0, 0};
    for (uint32_t i = 0; i < n->rank; i++) {
        switch (n->shape[i]) {
        case IR_DIM_T: v.t++; break;
        case IR_DIM_P: v.p++; break;
        case IR_DIM_PT: v.pt++; break;
        default: v.c *= n->shape[i]; break;
        }
    }
    return v;
}

static bool dims_valid(const struct ir_node *n)
{
    if (n->rank > IR_MAX_DIMS)
        return false;
    for (uint32_t i = 0; i < n->rank; i++)
        if (n->shape[i] < 0 && !ir_dim_is_symbol(n->shape[i]))
            return false;
    return true;
}

/* The most elements the constant dimensions of one node may make together (2^48): a bound that keeps
 * every product of dimensions, and sums such as a slice's start plus its length, inside int64_t, in
 * here and in the passes and backends that size buffers from verified shapes. */
#define MAX_CONST_ELEMENTS ((int64_t)1 << 48)

static bool const_elements_fit(const struct ir_node *n)
{
    int64_t c = 1;
    for (uint32_t i = 0; i < n->rank; i++) {
        if (ir_dim_is_symbol(n->shape[i]))
            continue;
        if (n->shape[i] > MAX_CONST_ELEMENTS || (n->shape[i] > 0 && c > MAX_CONST_ELEMENTS / n->shape[i]))
            return false;
        c *= n->shape[i];
    }
    return true;
}

static bool has_symbol(const struct ir_node *n)
{
    for (uint32_t i = 0; i < n->rank; i++)
        if (ir_dim_is_symbol(n->shape[i]))
            return true;
    return false;
}

/* Names are printed bare in the text form, so they must not hold separators. */
static bool name_printable(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == ',' || *s == ';' || *s == '{' || *s == '}' || *s == 0x7f)
            return false;
    return true;
}

static int expect_shape(ae_error *err, const struct ir_node *n, uint32_t rank, const int64_t *shape,
                        const char *why)
{
    bool ok = n->rank == rank;
    for (uint32_t i = 0; ok && i < rank; i++)
        ok = n->shape[i] == shape[i];
    if (ok)
        return 0;
    struct ir_node want = {0};
    want.rank = rank;
    for (uint32_t i = 0; i < rank; i++)
        want.shape[i] = shape[i];
    char a[96], b[96];
    return ir_node_fail(err, n, "shape %s, expected %s (%s)", ir_shape_str(n, a, sizeof a), ir_shape_str(&want, b, sizeof b),
                     why);
}

static int expect_same_shape(ae_error *err, const struct ir_node *n, const struct ir_node *s, const char *why)
{
    return expect_shape(err, n, s->rank, s->shape, why);
}

static int check_src_dtype(ae_error *err, const struct ir_node *n, uint32_t i, uint32_t dtype)
{
    if (n->src[i]->dtype != dtype)
        return ir_node_fail(err, n, "source %" PRIu32 " (%%%" PRIu32 ") has dtype %s, expected %s", i, n->src[i]->id,
                         ae_type_name(n->src[i]->dtype), ae_type_name(dtype));
    return 0;
}

static int check_dtype(ae_error *err, const struct ir_node *n, uint32_t dtype)
{
    if (n->dtype != dtype)
        return ir_node_fail(err, n, "dtype %s, expected %s", ae_type_name(n->dtype), ae_type_name(dtype));
    return 0;
}

static int check_elementwise(ae_error *err, const struct ir_node *n)
{
    if (check_dtype(err, n, IR_F32) || check_src_dtype(err, n, 0, IR_F32))
        return -1;
    if (expect_same_shape(err, n, n->src[0], "same as the first source"))
        return -1;
    if (n->n_src == 2) {
        const struct ir_node *a = n->src[0], *b = n->src[1];
        if (check_src_dtype(err, n, 1, IR_F32))
            return -1;
        bool same = ir_shape_equal(a, b);
        bool row = b->rank == 1 && a->rank >= 1 && b->shape[0] == a->shape[a->rank - 1];
        if (!same && !row) {
            char sa[96], sb[96];
            return ir_node_fail(err, n, "sources have shapes %s and %s: the second must equal the first or be one "
                             "row of its last dimension", ir_shape_str(a, sa, sizeof sa), ir_shape_str(b, sb, sizeof sb));
        }
    }
    return 0;
}

static int verify_node(const struct ir_node *n, ae_error *err)
{
    const struct ir_node *s0 = n->n_src > 0 ? n->src[0] : NULL;
    const struct ir_node *s1 = n->n_src > 1 ? n->src[1] : NULL;
    const struct ir_node *s2 = n->n_src > 2 ? n->src[2] : NULL;
    char sa[96], sb[96];

    switch (n->op) {
    case IR_OP_INPUT: {
        if (n->p.input.kind != IR_INPUT_TOKENS && n->p.input.kind != IR_INPUT_POSITIONS)
            return ir_node_fail(err, n, "kind %" PRId32 " is neither tokens nor positions", n->p.input.kind);
        int64_t shape[1] = {IR_DIM_T};
        if (check_dtype(err, n, IR_I32) || expect_shape(err, n, 1, shape, "one id per token"))
            return -1;
        return 0;
    }
    case IR_OP_WEIGHT:
        if (!n->name || !name_printable(n->name))
            return ir_node_fail(err, n, "a weight needs a tensor name without spaces, commas, ';' or braces");
        if (!ae_type_info(n->dtype))
            return ir_node_fail(err, n, "dtype %" PRIu32 " is not a ggml type", n->dtype);
        if (n->rank < 1 || has_symbol(n))
            return ir_node_fail(err, n, "shape %s: a weight has 1 to 4 constant dimensions", ir_shape_str(n, sa, sizeof sa));
        if (n->shape[n->rank - 1] % ae_type_info(n->dtype)->block_size != 0)
            return ir_node_fail(err, n, "rows of %" PRId64 " values are not a multiple of %s's block size %" PRIu32,
                             n->shape[n->rank - 1], ae_type_name(n->dtype), ae_type_info(n->dtype)->block_size);
        return 0;
    case IR_OP_KV_CACHE:
        if (n->dtype != IR_F32 && n->dtype != IR_F16)
            return ir_node_fail(err, n, "dtype %s, expected f32 or f16", ae_type_name(n->dtype));
        if (n->rank != 3 || n->shape[0] != IR_DIM_P || ir_dim_is_symbol(n->shape[1]) ||
            ir_dim_is_symbol(n->shape[2]) || n->shape[1] < 1 || n->shape[2] < 1)
            return ir_node_fail(err, n, "shape %s, expected [P, heads, head_dim]", ir_shape_str(n, sa, sizeof sa));
        if (n->p.kv_cache.layer < 0 || (n->p.kv_cache.kind != IR_KV_K && n->p.kv_cache.kind != IR_KV_V))
            return ir_node_fail(err, n, "layer %" PRId32 " / kind %" PRId32 " out of range", n->p.kv_cache.layer,
                             n->p.kv_cache.kind);
        return 0;
    case IR_OP_GET_ROWS: {
        if (s0->rank != 2 || has_symbol(s0))
            return ir_node_fail(err, n, "table %%%" PRIu32 " has shape %s, expected [rows, width]", s0->id,
                             ir_shape_str(s0, sa, sizeof sa));
        if (!ae_type_info(s0->dtype))
            return ir_node_fail(err, n, "table dtype %" PRIu32 " is not a ggml type", s0->dtype);
        if (check_src_dtype(err, n, 1, IR_I32))
            return -1;
        if (s1->rank != 1)
            return ir_node_fail(err, n, "ids %%%" PRIu32 " have rank %" PRIu32 ", expected 1", s1->id, s1->rank);
        int64_t shape[2] = {s1->shape[0], s0->shape[1]};
        if (check_dtype(err, n, IR_F32) || expect_shape(err, n, 2, shape, "[ids, width]"))
            return -1;
        return 0;
    }
    case IR_OP_MATMUL: {
        const struct ir_node *x = s0, *w = s1;
        if (w->rank != 2 || has_symbol(w))
            return ir_node_fail(err, n, "weight %%%" PRIu32 " has shape %s, expected [out, in]", w->id,
                             ir_shape_str(w, sa, sizeof sa));
        if (!ae_type_info(w->dtype))
            return ir_node_fail(err, n, "weight dtype %" PRIu32 " is not a ggml type", w->dtype);
        if (check_src_dtype(err, n, 0, IR_F32))
            return -1;
        if (x->rank < 1 || x->shape[x->rank - 1] != w->shape[1])
            return ir_node_fail(err, n, "activations %s do not end in the weight's row length %" PRId64 " (weight %s)",
                             ir_shape_str(x, sa, sizeof sa), w->shape[1], ir_shape_str(w, sb, sizeof sb));
        int64_t shape[IR_MAX_DIMS];
        memcpy(shape, x->shape, sizeof shape);
        shape[x->rank - 1] = w->shape[0];
        if (check_dtype(err, n, IR_F32) || expect_shape(err, n, x->rank, shape, "activations' rows by weight rows"))
            return -1;
        return 0;
    }
    case IR_OP_ADD:
    case IR_OP_MUL:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SIGMOID:
        return check_elementwise(err, n);
    case IR_OP_SCALE:
        return check_elementwise(err, n);
    case IR_OP_SOFTCAP:
        if (!(n->p.softcap.cap > 0))
            return ir_node_fail(err, n, "cap %g must be positive", (double)n->p.softcap.cap);
        return check_elementwise(err, n);
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
        if (!(n->p.norm.eps >= 0))
            return ir_node_fail(err, n, "eps %g must be >= 0", (double)n->p.norm.eps);
        return check_elementwise(err, n);
    case IR_OP_SOFTMAX:
        return check_elementwise(err, n);
    case IR_OP_ROPE: {
        if (check_dtype(err, n, IR_F32) || check_src_dtype(err, n, 0, IR_F32) || check_src_dtype(err, n, 1, IR_I32))
            return -1;
        if (s0->rank != 3 || ir_dim_is_symbol(s0->shape[2]))
            return ir_node_fail(err, n, "input %s, expected [tokens, heads, head_dim]", ir_shape_str(s0, sa, sizeof sa));
        if (s1->rank != 1 || s1->shape[0] != s0->shape[0])
            return ir_node_fail(err, n, "positions %s do not match the %s rows of the input",
                             ir_shape_str(s1, sa, sizeof sa), ir_shape_str(s0, sb, sizeof sb));
        if (expect_same_shape(err, n, s0, "same as the input"))
            return -1;
        if (n->p.rope.mode != IR_ROPE_NORMAL && n->p.rope.mode != IR_ROPE_NEOX)
            return ir_node_fail(err, n, "mode %" PRId32 " is neither normal nor neox", n->p.rope.mode);
        if (n->p.rope.n_dims < 2 || n->p.rope.n_dims % 2 || n->p.rope.n_dims > s0->shape[2])
            return ir_node_fail(err, n, "n_dims %" PRId32 " must be even, >= 2 and at most head_dim %" PRId64,
                             n->p.rope.n_dims, s0->shape[2]);
        if (!(n->p.rope.freq_base > 0) || !(n->p.rope.freq_scale > 0))
            return ir_node_fail(err, n, "base %g and freq_scale %g must be positive", (double)n->p.rope.freq_base,
                             (double)n->p.rope.freq_scale);
        if (s2) {
            int64_t shape[1] = {n->p.rope.n_dims / 2};
            if (check_src_dtype(err, n, 2, IR_F32))
                return -1;
            if (s2->rank != 1 || s2->shape[0] != shape[0])
                return ir_node_fail(err, n, "frequency factors %s, expected [%" PRId64 "] (n_dims / 2)",
                                 ir_shape_str(s2, sa, sizeof sa), shape[0]);
        }
        return 0;
    }
    case IR_OP_ATTENTION: {
        const struct ir_node *q = s0, *k = s1, *v = s2;
        if (check_dtype(err, n, IR_F32) || check_src_dtype(err, n, 0, IR_F32))
            return -1;
        if (q->rank != 3 || k->rank != 3 || v->rank != 3)
            return ir_node_fail(err, n, "q, k and v must be [rows, heads, head_dim]");
        if (k->dtype != IR_F32 && k->dtype != IR_F16)
            return ir_node_fail(err, n, "k has dtype %s, expected f32 or f16", ae_type_name(k->dtype));
        if (v->dtype != IR_F32 && v->dtype != IR_F16)
            return ir_node_fail(err, n, "v has dtype %s, expected f32 or f16", ae_type_name(v->dtype));
        if (ir_dim_is_symbol(q->shape[1]) || ir_dim_is_symbol(k->shape[1]) || q->shape[2] != k->shape[2] ||
            ir_dim_is_symbol(q->shape[2]))
            return ir_node_fail(err, n, "q %s and k %s need constant heads and the same head_dim",
                             ir_shape_str(q, sa, sizeof sa), ir_shape_str(k, sb, sizeof sb));
        if (k->shape[0] != v->shape[0] || k->shape[1] != v->shape[1] || ir_dim_is_symbol(v->shape[2]))
            return ir_node_fail(err, n, "k %s and v %s need the same rows and heads", ir_shape_str(k, sa, sizeof sa),
                             ir_shape_str(v, sb, sizeof sb));
        if (k->shape[1] < 1 || q->shape[1] % k->shape[1] != 0)
            return ir_node_fail(err, n, "%" PRId64 " query heads are not a multiple of %" PRId64 " kv heads", q->shape[1],
                             k->shape[1]);
        if (n->p.attention.softcap < 0 || n->p.attention.window < 0)
            return ir_node_fail(err, n, "softcap %g and window %" PRId32 " must be >= 0", (double)n->p.attention.softcap,
                             n->p.attention.window);
        int64_t shape[3] = {q->shape[0], q->shape[1], v->shape[2]};
        return expect_shape(err, n, 3, shape, "[q rows, q heads, v head_dim]");
    }
    case IR_OP_KV_STORE: {
        if (s0->op != IR_OP_KV_CACHE)
            return ir_node_fail(err, n, "source 0 is %%%" PRIu32 " (%s), expected a kv_cache", s0->id, ir_op_name(s0->op));
        if (check_src_dtype(err, n, 1, IR_F32) || check_dtype(err, n, s0->dtype))
            return -1;
        int64_t xs[3] = {IR_DIM_T, s0->shape[1], s0->shape[2]};
        if (s1->rank != 3 || s1->shape[0] != xs[0] || s1->shape[1] != xs[1] || s1->shape[2] != xs[2])
            return ir_node_fail(err, n, "stored rows %s, expected [T,%" PRId64 ",%" PRId64 "] to match the cache",
                             ir_shape_str(s1, sa, sizeof sa), xs[1], xs[2]);
        int64_t shape[3] = {IR_DIM_PT, s0->shape[1], s0->shape[2]};
        return expect_shape(err, n, 3, shape, "the cache with T rows appended");
    }
    case IR_OP_RESHAPE: {
        struct volume a = volume_of(s0), b = volume_of(n);
        if (check_dtype(err, n, s0->dtype))
            return -1;
        if (a.c != b.c || a.t != b.t || a.p != b.p || a.pt != b.pt)
            return ir_node_fail(err, n, "%s has a different element count than its source %s", ir_shape_str(n, sa, sizeof sa),
                             ir_shape_str(s0, sb, sizeof sb));
        return 0;
    }
    case IR_OP_SLICE: {
        int32_t ax = n->p.slice.axis;
        if (check_dtype(err, n, s0->dtype))
            return -1;
        if (ax < 0 || (uint32_t)ax >= s0->rank || n->rank != s0->rank)
            return ir_node_fail(err, n, "axis %" PRId32 " is outside the source's rank %" PRIu32, ax, s0->rank);
        for (uint32_t i = 0; i < n->rank; i++)
            if (i != (uint32_t)ax && n->shape[i] != s0->shape[i])
                return ir_node_fail(err, n, "shape %s differs from its source %s outside axis %" PRId32,
                                 ir_shape_str(n, sa, sizeof sa), ir_shape_str(s0, sb, sizeof sb), ax);
        if (ir_dim_is_symbol(s0->shape[ax]) || ir_dim_is_symbol(n->shape[ax]) || n->p.slice.start < 0 ||
            n->p.slice.start + n->shape[ax] > s0->shape[ax])
            return ir_node_fail(err, n, "slice [%" PRId32 ", +%s) does not fit the source's %s along axis %" PRId32,
                             n->p.slice.start, ir_shape_str(n, sa, sizeof sa), ir_shape_str(s0, sb, sizeof sb), ax);
        return 0;
    }
    case IR_OP_PERMUTE: {
        unsigned seen = 0;
        if (check_dtype(err, n, s0->dtype))
            return -1;
        if (n->rank != s0->rank)
            return ir_node_fail(err, n, "rank %" PRIu32 " differs from its source's %" PRIu32, n->rank, s0->rank);
        for (uint32_t i = 0; i < n->rank; i++) {
            int32_t p = n->p.permute.perm[i];
            if (p < 0 || (uint32_t)p >= n->rank || (seen & (1u << p)))
                return ir_node_fail(err, n, "perm is not a permutation of 0..%" PRIu32, n->rank - 1);
            seen |= 1u << p;
            if (n->shape[i] != s0->shape[p])
                return ir_node_fail(err, n, "dim %" PRIu32 " should be source dim %" PRId32, i, p);
        }
        for (uint32_t i = n->rank; i < IR_MAX_DIMS; i++)
            if (n->p.permute.perm[i] != 0)
                return ir_node_fail(err, n, "perm has entries past the rank");
        return 0;
    }
    case IR_OP_CONCAT: {
        int32_t ax = n->p.concat.axis;
        if (check_dtype(err, n, s0->dtype) || check_src_dtype(err, n, 1, s0->dtype))
            return -1;
        if (ax < 0 || (uint32_t)ax >= s0->rank || s1->rank != s0->rank || n->rank != s0->rank)
            return ir_node_fail(err, n, "axis %" PRId32 " and ranks do not agree", ax);
        for (uint32_t i = 0; i < n->rank; i++) {
            if (i == (uint32_t)ax)
                continue;
            if (s0->shape[i] != s1->shape[i] || n->shape[i] != s0->shape[i])
                return ir_node_fail(err, n, "sources %s and %s differ outside axis %" PRId32, ir_shape_str(s0, sa, sizeof sa),
                                 ir_shape_str(s1, sb, sizeof sb), ax);
        }
        if (ir_dim_is_symbol(s0->shape[ax]) || ir_dim_is_symbol(s1->shape[ax]) ||
            n->shape[ax] != s0->shape[ax] + s1->shape[ax])
            return ir_node_fail(err, n, "axis %" PRId32 " must be constant and the sum of the sources'", ax);
        return 0;
    }
    case IR_OP_LAST_ROW: {
        if (check_dtype(err, n, s0->dtype))
            return -1;
        if (s0->rank < 1)
            return ir_node_fail(err, n, "the source has no rows");
        int64_t shape[IR_MAX_DIMS];
        memcpy(shape, s0->shape, sizeof shape);
        shape[0] = 1;
        return expect_shape(err, n, s0->rank, shape, "one row of the source");
    }
    case IR_OP_OUTPUT:
        if (!is_float_act(s0->dtype))
            return ir_node_fail(err, n, "outputs are f32, the source is %s", ae_type_name(s0->dtype));
        if (!n->name || !name_printable(n->name))
            return ir_node_fail(err, n, "an output needs a name without spaces, commas, ';' or braces");
        if (check_dtype(err, n, s0->dtype))
            return -1;
        return expect_same_shape(err, n, s0, "same as its source");
    case IR_OP_BROADCAST:
        if (check_dtype(err, n, s0->dtype))
            return -1;
        if (n->rank != s0->rank)
            return ir_node_fail(err, n, "rank %" PRIu32 " differs from its source's %" PRIu32, n->rank, s0->rank);
        for (uint32_t i = 0; i < n->rank; i++)
            if (s0->shape[i] != n->shape[i] && s0->shape[i] != 1)
                return ir_node_fail(err, n, "source %s does not broadcast to %s: each dimension must match or be 1",
                                    ir_shape_str(s0, sa, sizeof sa), ir_shape_str(n, sb, sizeof sb));
        return 0;
    case IR_OP_TOPK: {
        if (check_dtype(err, n, IR_I32) || check_src_dtype(err, n, 0, IR_F32))
            return -1;
        if (s0->rank != 2 || ir_dim_is_symbol(s0->shape[1]))
            return ir_node_fail(err, n, "input %s, expected [rows, a constant number of values]",
                                ir_shape_str(s0, sa, sizeof sa));
        if (n->p.topk.k < 1 || n->p.topk.k > s0->shape[1])
            return ir_node_fail(err, n, "k %" PRId32 " must be from 1 to the row length %" PRId64, n->p.topk.k,
                                s0->shape[1]);
        int64_t shape[2] = {s0->shape[0], n->p.topk.k};
        return expect_shape(err, n, 2, shape, "[rows, k]");
    }
    case IR_OP_MOE_WEIGHTS: {
        if (check_dtype(err, n, IR_F32) || check_src_dtype(err, n, 0, IR_F32) || check_src_dtype(err, n, 1, IR_I32))
            return -1;
        if (s0->rank != 2 || s1->rank != 2 || s0->shape[0] != s1->shape[0] || ir_dim_is_symbol(s0->shape[1]) ||
            ir_dim_is_symbol(s1->shape[1]))
            return ir_node_fail(err, n, "probabilities %s and ids %s must be [rows, experts] and [rows, k]",
                                ir_shape_str(s0, sa, sizeof sa), ir_shape_str(s1, sb, sizeof sb));
        if (n->p.moe_weights.norm != 0 && n->p.moe_weights.norm != 1)
            return ir_node_fail(err, n, "norm %" PRId32 " is neither 0 nor 1", n->p.moe_weights.norm);
        if (!isfinite(n->p.moe_weights.scale))
            return ir_node_fail(err, n, "scale %g is not finite", (double)n->p.moe_weights.scale);
        return expect_same_shape(err, n, s1, "one weight per selected expert");
    }
    case IR_OP_MATMUL_ID: {
        const struct ir_node *x = s0, *w = s1, *ids = s2;
        if (w->rank != 3 || has_symbol(w) || !ae_type_info(w->dtype))
            return ir_node_fail(err, n, "experts %%%" PRIu32 " %s, expected a weight [experts, out, in]", w->id,
                                ir_shape_str(w, sa, sizeof sa));
        if (check_dtype(err, n, IR_F32) || check_src_dtype(err, n, 0, IR_F32) || check_src_dtype(err, n, 2, IR_I32))
            return -1;
        if (ids->rank != 2 || ir_dim_is_symbol(ids->shape[1]))
            return ir_node_fail(err, n, "ids %s, expected [rows, k]", ir_shape_str(ids, sa, sizeof sa));
        bool x_ok = (x->rank == 2 || (x->rank == 3 && x->shape[1] == ids->shape[1])) && x->shape[0] == ids->shape[0] &&
                    x->shape[x->rank - 1] == w->shape[2];
        if (!x_ok)
            return ir_node_fail(err, n, "activations %s must be [rows, %" PRId64 "] or [rows, k, %" PRId64 "] with the "
                                "ids' rows %s", ir_shape_str(x, sa, sizeof sa), w->shape[2], w->shape[2],
                                ir_shape_str(ids, sb, sizeof sb));
        int64_t shape[3] = {ids->shape[0], ids->shape[1], w->shape[1]};
        return expect_shape(err, n, 3, shape, "[rows, k, expert rows]");
    }
    case IR_OP_MOE_SUM: {
        if (check_dtype(err, n, IR_F32) || check_src_dtype(err, n, 0, IR_F32) || check_src_dtype(err, n, 1, IR_F32))
            return -1;
        if (s0->rank != 3 || s1->rank != 2 || s0->shape[0] != s1->shape[0] || s0->shape[1] != s1->shape[1] ||
            ir_dim_is_symbol(s0->shape[1]))
            return ir_node_fail(err, n, "outputs %s and weights %s must be [rows, k, width] and [rows, k]",
                                ir_shape_str(s0, sa, sizeof sa), ir_shape_str(s1, sb, sizeof sb));
        int64_t shape[2] = {s0->shape[0], s0->shape[2]};
        return expect_shape(err, n, 2, shape, "[rows, width]");
    }
    case IR_OP_EW:
    case IR_OP_MATMUL_EW:
    case IR_OP_RMS_NORM_MUL:
    case IR_OP_MATMUL_ROPE:
        return ir_verify_fused(n, err);
    case IR_OP_COUNT:
        break;
    }
    return ir_node_fail(err, n, "op %d is not a valid op", (int)n->op);
}

int ir_verify(const struct ir_graph *g, ae_error *err)
{
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        if (!n)
            return ae_fail(err, "node slot %" PRIu32 " is empty", i);
        if (n->id != i)
            return ae_fail(err, "node at position %" PRIu32 " has id %%%" PRIu32 "; ids must equal positions "
                           "(compact or sort after editing)", i, n->id);
        if ((unsigned)n->op >= IR_OP_COUNT)
            return ae_fail(err, "%%%" PRIu32 " has op %d, which is not an op", i, (int)n->op);
        if (n->dead)
            return ir_node_fail(err, n, "the node is marked dead but still in the graph (call ir_graph_compact)");
        if (n->n_src < ir_op_min_src(n->op) || n->n_src > ir_op_max_src(n->op))
            return ir_node_fail(err, n, "%" PRIu32 " sources, expected %" PRIu32 "..%" PRIu32, n->n_src,
                             ir_op_min_src(n->op), ir_op_max_src(n->op));
        for (uint32_t s = 0; s < n->n_src; s++) {
            const struct ir_node *src = n->src[s];
            if (!src)
                return ir_node_fail(err, n, "source %" PRIu32 " is undefined (NULL)", s);
            if (src->id >= g->n_nodes || g->nodes[src->id] != src)
                return ir_node_fail(err, n, "source %" PRIu32 " is not a node of this graph", s);
            if (src->dead)
                return ir_node_fail(err, n, "source %" PRIu32 " (%%%" PRIu32 ") was killed", s, src->id);
            if (src->id >= i)
                return ir_node_fail(err, n, "source %" PRIu32 " is %%%" PRIu32 ", which is not defined before it "
                                 "(a cycle, or the order is not topological: call ir_graph_sort)", s, src->id);
        }
        if (!dims_valid(n))
            return ir_node_fail(err, n, "rank %" PRIu32 " or a dimension is invalid", n->rank);
        if (!const_elements_fit(n)) {
            char sa[96];
            return ir_node_fail(err, n, "shape %s has more than 2^48 elements", ir_shape_str(n, sa, sizeof sa));
        }
        if (n->name && n->op != IR_OP_WEIGHT && !name_printable(n->name))
            return ir_node_fail(err, n, "origin name has spaces, commas, ';' or braces");
        if (verify_node(n, err))
            return -1;
        if (n->op == IR_OP_KV_CACHE) {
            for (uint32_t j = 0; j < i; j++) {
                const struct ir_node *o = g->nodes[j];
                if (o->op == IR_OP_KV_CACHE && o->p.kv_cache.layer == n->p.kv_cache.layer &&
                    o->p.kv_cache.kind == n->p.kv_cache.kind)
                    return ir_node_fail(err, n, "layer %" PRId32 " already has this cache (%%%" PRIu32 ")",
                                     n->p.kv_cache.layer, o->id);
            }
        }
        if (n->op == IR_OP_KV_STORE) {
            for (uint32_t j = 0; j < i; j++) {
                const struct ir_node *o = g->nodes[j];
                if (o->op == IR_OP_KV_STORE && o->src[0] == n->src[0])
                    return ir_node_fail(err, n, "cache %%%" PRIu32 " is already written by %%%" PRIu32 "; a cache takes "
                                     "one store per step", n->src[0]->id, o->id);
            }
        }
        if (n->op == IR_OP_WEIGHT) {
            for (uint32_t j = 0; j < i; j++) {
                const struct ir_node *o = g->nodes[j];
                if (o->op == IR_OP_WEIGHT && strcmp(o->name, n->name) == 0)
                    return ir_node_fail(err, n, "weight %s is already %%%" PRIu32, n->name, o->id);
            }
        }
    }
    return 0;
}
