/* The reference interpreter (interp.h): one plain loop per op, f32 activations, weights dequantized as
 * they are read, KV caches in f32 or f16.
 *
 * Each step resolves the symbols (T = tokens in the step, P = tokens already cached), walks g->nodes in
 * order and gives every node a value: a buffer of its own, or a view of another value (reshape,
 * last_row, the weights' mapping, the KV cache). A buffer is freed after the last node that reads it.
 * Where llama.cpp's result depends on the order or precision of float operations, the loops follow
 * ggml's CPU code: sums of squares and softmax sums in double, rope angles from a running product of
 * floats, gelu through fp16 as ggml's lookup table does, and for an f16 cache the query and the
 * softmax weights rounded to f16 before their products with K and V, as ggml's f16 matmuls round them.
 */
#include "interp.h"

#include "ir_fused.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct value {
    void *data;
    int64_t dims[IR_MAX_DIMS];
    bool owned;            /* data is a buffer this step allocated */
};

struct kv_buffer {
    void *data;            /* n_ctx rows of row_elems elements in the cache node's dtype */
    int64_t row_elems;
};

struct interp {
    const struct ir_graph *g;
    struct ir_graph *lowered;       /* owned: g with its fused ops lowered, when it had any */
    const ae_gguf *f;
    uint32_t n_ctx;
    struct value *vals;             /* per node, for the current step */
    uint32_t *last_use;             /* per node: index of the last node that reads its buffer */
    const void **weight_data;       /* per node: weight bytes (NULL for other ops) */
    void **weight_copy;             /* per node: an aligned copy when the mapping is not aligned */
    struct kv_buffer *kv;           /* per node: storage of kv_cache nodes */
    const struct ir_node *output;   /* the first output node */
    float *row_buf;                 /* scratch: one dequantized weight row */
    int64_t row_buf_len;
    interp_trace_fn trace;
    void *trace_ctx;
};

static size_t dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case AE_TYPE_F32: return 4;
    case AE_TYPE_F16: return 2;
    case AE_TYPE_I32: return 4;
    default: return 0;
    }
}

static int64_t rows_before_last(const struct value *v, uint32_t rank)
{
    int64_t r = 1;
    for (uint32_t i = 0; i + 1 < rank; i++)
        r *= v->dims[i];
    return r;
}

static int64_t numel(const struct value *v, uint32_t rank)
{
    int64_t e = 1;
    for (uint32_t i = 0; i < rank; i++)
        e *= v->dims[i];
    return e;
}

static int node_fail(ae_error *err, const struct ir_node *n, const char *what)
{
    return ae_fail(err, "interp: %%%" PRIu32 " = %s%s%s: %s", n->id, ir_op_name(n->op), n->name ? " ; " : "",
                   n->name ? n->name : "", what);
}

/* ---- Creation ------------------------------------------------------------------------------------- */

static int bind_weight(struct interp *it, const struct ir_node *n, ae_error *err)
{
    const struct ae_gguf_tensor *t = ae_gguf_find_tensor(it->f, n->name);
    if (!t)
        return ae_fail(err, "interp: weight @%s is not a tensor of %s", n->name, it->f->path);
    bool ok = t->type == n->dtype && t->n_dims <= AE_GGUF_MAX_DIMS && n->rank <= AE_GGUF_MAX_DIMS;
    for (uint32_t d = 0; ok && d < AE_GGUF_MAX_DIMS; d++) {
        int64_t want = d < n->rank ? n->shape[n->rank - 1 - d] : 1;
        ok = (d < t->n_dims ? t->ne[d] : 1) == want;
    }
    if (!ok)
        return ae_fail(err, "interp: weight @%s is %s with ne {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                       "} in %s, which does not match the graph's %s node", n->name, ae_type_name(t->type), t->ne[0],
                       t->ne[1], t->ne[2], t->ne[3], it->f->path, ae_type_name(n->dtype));
    if (t->type != AE_TYPE_F32 && !ae_type_can_dequantize(t->type))
        return ae_fail(err, "interp: weight @%s has type %s, which cannot be dequantized yet", n->name,
                       ae_type_name(t->type));
    it->weight_data[n->id] = t->data;
    if (t->type == AE_TYPE_F32 && ((uintptr_t)t->data % sizeof(float)) != 0) {
        void *copy = malloc(t->n_bytes ? t->n_bytes : 1);
        if (!copy)
            return ae_fail(err, "interp: out of memory copying @%s", n->name);
        memcpy(copy, t->data, t->n_bytes);
        it->weight_copy[n->id] = copy;
        it->weight_data[n->id] = copy;
    }
    return 0;
}

/* A copy of g with its fused ops lowered to the primitive ops they stand for (ir_fused.h), made through
 * the text form, which round-trips exactly. */
static int lowered_copy(const struct ir_graph *g, struct ir_graph **out, ae_error *err)
{
    char *text = ir_print_string(g);
    if (!text)
        return ae_fail(err, "interp: out of memory");
    int rc = ir_parse(out, text, strlen(text), "fused graph", err);
    free(text);
    if (rc == 0 && ir_fused_lower(*out, err) != 0) {
        ir_graph_destroy(*out);
        rc = -1;
    }
    return rc ? ae_fail_prefix(err, "interp: lowering the fused ops") : 0;
}

int interp_create(struct interp **out, const struct ir_graph *g, const ae_gguf *f, uint32_t n_ctx, ae_error *err)
{
    if (n_ctx == 0)
        return ae_fail(err, "interp: the context size must be at least 1");
    struct ir_graph *lowered = NULL;
    for (uint32_t i = 0; i < g->n_nodes && !lowered; i++)
        if (ir_op_is_fused(g->nodes[i]->op)) {
            if (lowered_copy(g, &lowered, err))
                return -1;
            g = lowered;
        }
    struct interp *it = calloc(1, sizeof *it);
    if (!it) {
        ir_graph_destroy(lowered);
        return ae_fail(err, "interp: out of memory");
    }
    it->lowered = lowered;
    it->g = g;
    it->f = f;
    it->n_ctx = n_ctx;
    uint32_t n = g->n_nodes;
    it->vals = calloc(n ? n : 1, sizeof *it->vals);
    it->last_use = calloc(n ? n : 1, sizeof *it->last_use);
    it->weight_data = calloc(n ? n : 1, sizeof *it->weight_data);
    it->weight_copy = calloc(n ? n : 1, sizeof *it->weight_copy);
    it->kv = calloc(n ? n : 1, sizeof *it->kv);
    if (!it->vals || !it->last_use || !it->weight_data || !it->weight_copy || !it->kv) {
        interp_destroy(it);
        return ae_fail(err, "interp: out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct ir_node *node = g->nodes[i];
        it->last_use[i] = i;
        for (uint32_t s = 0; s < node->n_src; s++)
            if (it->last_use[node->src[s]->id] < i)
                it->last_use[node->src[s]->id] = i;
        if (node->op == IR_OP_OUTPUT) {
            it->last_use[i] = UINT32_MAX;
            if (!it->output)
                it->output = node;
        }
        if (node->op == IR_OP_WEIGHT && bind_weight(it, node, err)) {
            interp_destroy(it);
            return -1;
        }
        if (node->op == IR_OP_KV_CACHE) {
            int64_t row = node->shape[1] * node->shape[2];
            size_t bytes = (size_t)row * n_ctx * dtype_size(node->dtype);
            it->kv[i].row_elems = row;
            it->kv[i].data = calloc(bytes ? bytes : 1, 1);
            if (!it->kv[i].data) {
                interp_destroy(it);
                return ae_fail(err, "interp: out of memory for a KV cache of %u rows", n_ctx);
            }
        }
    }
    /* A view keeps the buffer it looks into alive as long as the view itself is read. */
    for (uint32_t i = n; i-- > 0;) {
        const struct ir_node *node = g->nodes[i];
        if (ir_op_has(node->op, IR_PROP_VIEW) || node->op == IR_OP_OUTPUT) {
            uint32_t s = node->src[0]->id;
            if (it->last_use[s] < it->last_use[i])
                it->last_use[s] = it->last_use[i];
        }
    }
    if (!it->output) {
        interp_destroy(it);
        return ae_fail(err, "interp: the graph has no output node");
    }
    *out = it;
    return 0;
}

void interp_destroy(struct interp *it)
{
    if (!it)
        return;
    uint32_t n = it->g->n_nodes;
    for (uint32_t i = 0; i < n; i++) {
        if (it->vals && it->vals[i].owned)
            free(it->vals[i].data);
        if (it->weight_copy)
            free(it->weight_copy[i]);
        if (it->kv)
            free(it->kv[i].data);
    }
    free(it->vals);
    free(it->last_use);
    free(it->weight_data);
    free(it->weight_copy);
    ir_graph_destroy(it->lowered);
    free(it->kv);
    free(it->row_buf);
    free(it);
}

void interp_set_trace(struct interp *it, interp_trace_fn fn, void *ctx)
{
    it->trace = fn;
    it->trace_ctx = ctx;
}

int64_t interp_output_size(const struct interp *it, uint32_t n_tokens)
{
    return ir_node_numel(it->output, n_tokens, 0);
}

int32_t interp_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* ---- Weights -------------------------------------------------------------------------------------- */

/* Row r (of cols elements) of a weight as f32: the mapping itself for F32, else dequantized into the
 * scratch row. */
static const float *weight_row(struct interp *it, const struct ir_node *w, int64_t r, int64_t cols, ae_error *err)
{
    const unsigned char *base = it->weight_data[w->id];
    if (w->dtype == AE_TYPE_F32)
        return (const float *)base + r * cols;
    uint64_t row_bytes;
    if (ae_type_row_bytes(w->dtype, (uint64_t)cols, &row_bytes, err))
        return NULL;
    if (it->row_buf_len < cols) {
        float *b = realloc(it->row_buf, (size_t)cols * sizeof *b);
        if (!b) {
            ae_fail(err, "interp: out of memory");
            return NULL;
        }
        it->row_buf = b;
        it->row_buf_len = cols;
    }
    if (ae_dequantize_row(w->dtype, base + (uint64_t)r * row_bytes, it->row_buf, cols, err))
        return NULL;
    return it->row_buf;
}

/* ---- Elementwise math as ggml computes it --------------------------------------------------------- */

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

/* ggml's gelu: the tanh approximation, looked up through fp16 (its table holds gelu of every fp16
 * value, rounded to fp16), exact outside [-10, 10]. */
static float gelu(float x)
{
    const float coef_a = 0.044715f;
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    if (x <= -10.0f)
        return 0.0f;
    if (x >= 10.0f)
        return x;
    float h = ae_fp16_to_fp32(ae_fp32_to_fp16(x));
    float y = 0.5f * h * (1.0f + tanhf(sqrt_2_over_pi * h * (1.0f + coef_a * h * h)));
    return ae_fp16_to_fp32(ae_fp32_to_fp16(y));
}

static float softcap(float x, float cap)
{
    return tanhf(x * (1.0f / cap)) * cap;
}

/* ---- Rope ----------------------------------------------------------------------------------------- */

static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

static float yarn_ramp(float low, float high, int i0)
{
    float y = (float)(i0 / 2 - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

/* cos and sin for each rotated pair of one position: theta_i = p * base^(-2i/n_dims) / factor_i, with
 * YaRN's interpolation/extrapolation mix when ext_factor is not 0. */
static void rope_angles(const struct ir_node *n, int64_t pos, const float *factors, float *cs, float *sn)
{
    int n_dims = n->p.rope.n_dims;
    float base = n->p.rope.freq_base, freq_scale = n->p.rope.freq_scale;
    float ext_factor = n->p.rope.ext_factor, mscale = n->p.rope.attn_factor;
    float theta_scale = powf(base, -2.0f / (float)n_dims);
    float corr[2];
    float start = floorf(yarn_corr_dim(n_dims, n->p.rope.n_ctx_orig, n->p.rope.beta_fast, base));
    float end = ceilf(yarn_corr_dim(n_dims, n->p.rope.n_ctx_orig, n->p.rope.beta_slow, base));
    corr[0] = fmaxf(0.0f, start);
    corr[1] = fminf((float)(n_dims - 1), end);
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_dims; i0 += 2) {
        float ff = factors ? factors[i0 / 2] : 1.0f;
        if (ff == 0.0f)
            ff = 1.0f;
        float theta_extrap = theta / ff;
        float theta_interp = freq_scale * theta_extrap;
        float th = theta_interp, ms = mscale;
        if (ext_factor != 0.0f) {
            float ramp_mix = yarn_ramp(corr[0], corr[1], i0) * ext_factor;
            th = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix;
            ms *= 1.0f + 0.1f * logf(1.0f / freq_scale);
        }
        cs[i0 / 2] = cosf(th) * ms;
        sn[i0 / 2] = sinf(th) * ms;
        theta *= theta_scale;
    }
}

static int run_rope(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct value *x = &it->vals[n->src[0]->id];
    const int32_t *pos = it->vals[n->src[1]->id].data;
    const float *factors = n->n_src > 2 ? it->vals[n->src[2]->id].data : NULL;
    int64_t S = x->dims[0], H = x->dims[1], D = x->dims[2];
    int n_dims = n->p.rope.n_dims;
    float *cs = malloc((size_t)n_dims / 2 * sizeof *cs), *sn = malloc((size_t)n_dims / 2 * sizeof *sn);
    if (!cs || !sn) {
        free(cs);
        free(sn);
        return node_fail(err, n, "out of memory");
    }
    const float *src = x->data;
    float *dst = out->data;
    for (int64_t s = 0; s < S; s++) {
        rope_angles(n, pos[s], factors, cs, sn);
        for (int64_t h = 0; h < H; h++) {
            const float *xr = src + (s * H + h) * D;
            float *yr = dst + (s * H + h) * D;
            memcpy(yr, xr, (size_t)D * sizeof *yr);
            for (int i = 0; i < n_dims / 2; i++) {
                int a = n->p.rope.mode == IR_ROPE_NEOX ? i : 2 * i;
                int b = n->p.rope.mode == IR_ROPE_NEOX ? i + n_dims / 2 : 2 * i + 1;
                float x0 = xr[a], x1 = xr[b];
                yr[a] = x0 * cs[i] - x1 * sn[i];
                yr[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
    free(cs);
    free(sn);
    return 0;
}

/* ---- Attention ------------------------------------------------------------------------------------ */

static float load_elem(const void *data, uint32_t dtype, int64_t i)
{
    if (dtype == AE_TYPE_F16)
        return ae_fp16_to_fp32(((const uint16_t *)data)[i]);
    return ((const float *)data)[i];
}

/* For query t (position P + t, P = S - T) and head h: logits over keys 0..P+t within the window,
 * softcapped and scaled, softmax, then the weighted sum of values. */
static int run_attention(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct ir_node *qn = n->src[0], *kn = n->src[1], *vn = n->src[2];
    const struct value *q = &it->vals[qn->id], *k = &it->vals[kn->id], *v = &it->vals[vn->id];
    int64_t T = q->dims[0], H = q->dims[1], D = q->dims[2];
    int64_t S = k->dims[0], Hkv = k->dims[1], Dv = v->dims[2];
    int64_t P = S - T, group = H / Hkv;
    float scale = n->p.attention.scale, cap = n->p.attention.softcap;
    int64_t window = n->p.attention.window;
    if (P < 0)
        return node_fail(err, n, "fewer keys than queries");
    float *logit = malloc((size_t)(S ? S : 1) * sizeof *logit);
    float *qr = malloc((size_t)D * sizeof *qr);
    double *acc = malloc((size_t)Dv * sizeof *acc);
    if (!logit || !qr || !acc) {
        free(logit);
        free(qr);
        free(acc);
        return node_fail(err, n, "out of memory");
    }
    const float *qd = q->data;
    float *od = out->data;
    for (int64_t t = 0; t < T; t++) {
        int64_t qpos = P + t;
        int64_t j0 = window > 0 && qpos - window + 1 > 0 ? qpos - window + 1 : 0;
        for (int64_t h = 0; h < H; h++) {
            int64_t hk = h / group;
            for (int64_t d = 0; d < D; d++) {
                float x = qd[(t * H + h) * D + d];
                qr[d] = kn->dtype == AE_TYPE_F16 ? ae_fp16_to_fp32(ae_fp32_to_fp16(x)) : x;
            }
            float max = -INFINITY;
            for (int64_t j = j0; j <= qpos; j++) {
                double s = 0.0;
                int64_t base = (j * Hkv + hk) * D;
                for (int64_t d = 0; d < D; d++)
                    s += (double)qr[d] * (double)load_elem(k->data, kn->dtype, base + d);
                float l = (float)s;
                if (cap != 0.0f)
                    l = softcap(l, cap);
                l *= scale;
                logit[j] = l;
                if (l > max)
                    max = l;
            }
            double sum = 0.0;
            for (int64_t j = j0; j <= qpos; j++) {
                float e = expf(logit[j] - max);
                logit[j] = e;
                sum += (double)e;
            }
            float inv = (float)(1.0 / sum);
            for (int64_t d = 0; d < Dv; d++)
                acc[d] = 0.0;
            for (int64_t j = j0; j <= qpos; j++) {
                float p = logit[j] * inv;
                if (vn->dtype == AE_TYPE_F16)
                    p = ae_fp16_to_fp32(ae_fp32_to_fp16(p));
                int64_t base = (j * Hkv + hk) * Dv;
                for (int64_t d = 0; d < Dv; d++)
                    acc[d] += (double)p * (double)load_elem(v->data, vn->dtype, base + d);
            }
            for (int64_t d = 0; d < Dv; d++)
                od[(t * H + h) * Dv + d] = (float)acc[d];
        }
    }
    free(logit);
    free(qr);
    free(acc);
    return 0;
}

/* ---- One node ------------------------------------------------------------------------------------- */

static int run_matmul(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct ir_node *wn = n->src[1];
    const struct value *x = &it->vals[n->src[0]->id];
    int64_t K = wn->shape[1], N = wn->shape[0];
    int64_t R = rows_before_last(x, n->src[0]->rank);
    const float *xd = x->data;
    float *od = out->data;
    for (int64_t r = 0; r < N; r++) {
        const float *w = weight_row(it, wn, r, K, err);
        if (!w)
            return ae_fail_prefix(err, "interp: %%%" PRIu32 " = matmul, row %" PRId64 " of @%s", n->id, r, wn->name);
        for (int64_t i = 0; i < R; i++) {
            const float *xr = xd + i * K;
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)w[k] * (double)xr[k];
            od[i * N + r] = (float)s;
        }
    }
    return 0;
}

static int run_get_rows(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct ir_node *wn = n->src[0];
    const struct value *ids = &it->vals[n->src[1]->id];
    int64_t V = wn->shape[0], D = wn->shape[1];
    const int32_t *id = ids->data;
    float *od = out->data;
    for (int64_t i = 0; i < ids->dims[0]; i++) {
        if (id[i] < 0 || id[i] >= V)
            return ae_fail(err, "interp: token %" PRId64 " is id %" PRId32 ", outside the vocabulary of %" PRId64
                           " rows of @%s", i, id[i], V, wn->name);
        const float *row = weight_row(it, wn, id[i], D, err);
        if (!row)
            return ae_fail_prefix(err, "interp: %%%" PRIu32 " = get_rows of @%s", n->id, wn->name);
        memcpy(od + i * D, row, (size_t)D * sizeof *od);
    }
    return 0;
}

static void run_binary(struct interp *it, const struct ir_node *n, struct value *out)
{
    const struct value *a = &it->vals[n->src[0]->id], *b = &it->vals[n->src[1]->id];
    int64_t na = numel(a, n->src[0]->rank), nb = numel(b, n->src[1]->rank);
    const float *ad = a->data, *bd = b->data;
    float *od = out->data;
    for (int64_t i = 0; i < na; i++) {
        float y = bd[nb == na ? i : i % nb];
        od[i] = n->op == IR_OP_ADD ? ad[i] + y : ad[i] * y;
    }
}

static void run_unary(struct interp *it, const struct ir_node *n, struct value *out)
{
    const struct value *x = &it->vals[n->src[0]->id];
    int64_t ne = numel(x, n->src[0]->rank);
    const float *xd = x->data;
    float *od = out->data;
    if (n->op == IR_OP_SCALE) {
        for (int64_t i = 0; i < ne; i++)
            od[i] = xd[i] * n->p.scale.s;
    } else if (n->op == IR_OP_SILU) {
        for (int64_t i = 0; i < ne; i++)
            od[i] = silu(xd[i]);
    } else if (n->op == IR_OP_GELU) {
        for (int64_t i = 0; i < ne; i++)
            od[i] = gelu(xd[i]);
    } else if (n->op == IR_OP_SIGMOID) {
        for (int64_t i = 0; i < ne; i++)
            od[i] = 1.0f / (1.0f + expf(-xd[i]));
    } else { /* softcap */
        for (int64_t i = 0; i < ne; i++)
            od[i] = softcap(xd[i], n->p.softcap.cap);
    }
}

static void run_rowwise(struct interp *it, const struct ir_node *n, struct value *out)
{
    const struct value *x = &it->vals[n->src[0]->id];
    uint32_t rank = n->src[0]->rank;
    int64_t C = rank ? x->dims[rank - 1] : 1, R = rows_before_last(x, rank);
    for (int64_t r = 0; r < R; r++) {
        const float *xr = (const float *)x->data + r * C;
        float *yr = (float *)out->data + r * C;
        if (n->op == IR_OP_RMS_NORM) {
            double sum = 0.0;
            for (int64_t i = 0; i < C; i++)
                sum += (double)(xr[i] * xr[i]);
            float mean = (float)(sum / (double)C);
            float s = 1.0f / sqrtf(mean + n->p.norm.eps);
            for (int64_t i = 0; i < C; i++)
                yr[i] = xr[i] * s;
        } else if (n->op == IR_OP_LAYER_NORM) {
            double sum = 0.0;
            for (int64_t i = 0; i < C; i++)
                sum += (double)xr[i];
            float mean = (float)(sum / (double)C);
            double sum2 = 0.0;
            for (int64_t i = 0; i < C; i++) {
                yr[i] = xr[i] - mean;
                sum2 += (double)(yr[i] * yr[i]);
            }
            float var = (float)(sum2 / (double)C);
            float s = 1.0f / sqrtf(var + n->p.norm.eps);
            for (int64_t i = 0; i < C; i++)
                yr[i] *= s;
        } else { /* softmax */
            float max = -INFINITY;
            for (int64_t i = 0; i < C; i++) {
                yr[i] = xr[i] * n->p.softmax.scale;
                if (yr[i] > max)
                    max = yr[i];
            }
            double sum = 0.0;
            for (int64_t i = 0; i < C; i++) {
                yr[i] = expf(yr[i] - max);
                sum += (double)yr[i];
            }
            float inv = (float)(1.0 / sum);
            for (int64_t i = 0; i < C; i++)
                yr[i] *= inv;
        }
    }
}

/* Strided copy for slice, permute and concat: out[idx] = src[offset + sum(idx[d] * stride[d])]. */
static void copy_strided(void *dst, const void *src, size_t esize, uint32_t rank, const int64_t *dims,
                         const int64_t *stride, int64_t offset)
{
    int64_t idx[IR_MAX_DIMS] = {0};
    int64_t total = 1;
    for (uint32_t d = 0; d < rank; d++)
        total *= dims[d];
    for (int64_t i = 0; i < total; i++) {
        int64_t o = offset;
        for (uint32_t d = 0; d < rank; d++)
            o += idx[d] * stride[d];
        memcpy((char *)dst + (size_t)i * esize, (const char *)src + (size_t)o * esize, esize);
        for (uint32_t d = rank; d-- > 0;) {
            if (++idx[d] < dims[d])
                break;
            idx[d] = 0;
        }
    }
}

static void strides_of(const int64_t *dims, uint32_t rank, int64_t *stride)
{
    int64_t s = 1;
    for (uint32_t d = rank; d-- > 0;) {
        stride[d] = s;
        s *= dims[d];
    }
}

static void run_layout(struct interp *it, const struct ir_node *n, struct value *out)
{
    const struct ir_node *sn = n->src[0];
    const struct value *x = &it->vals[sn->id];
    size_t esize = dtype_size(n->dtype);
    int64_t in_stride[IR_MAX_DIMS], stride[IR_MAX_DIMS];
    strides_of(x->dims, sn->rank, in_stride);
    if (n->op == IR_OP_SLICE) {
        int32_t ax = n->p.slice.axis;
        copy_strided(out->data, x->data, esize, n->rank, out->dims, in_stride, n->p.slice.start * in_stride[ax]);
    } else if (n->op == IR_OP_PERMUTE) {
        for (uint32_t d = 0; d < n->rank; d++)
            stride[d] = in_stride[n->p.permute.perm[d]];
        copy_strided(out->data, x->data, esize, n->rank, out->dims, stride, 0);
    } else { /* concat: the first source, then the second, each into its part of the output */
        const struct value *y = &it->vals[n->src[1]->id];
        int32_t ax = n->p.concat.axis;
        int64_t out_stride[IR_MAX_DIMS], y_stride[IR_MAX_DIMS];
        strides_of(out->dims, n->rank, out_stride);
        strides_of(y->dims, n->rank, y_stride);
        int64_t idx[IR_MAX_DIMS] = {0};
        int64_t total = numel(out, n->rank);
        for (int64_t i = 0; i < total; i++) {
            bool second = idx[ax] >= x->dims[ax];
            int64_t o = 0;
            for (uint32_t d = 0; d < n->rank; d++) {
                int64_t k = idx[d] - (second && d == (uint32_t)ax ? x->dims[ax] : 0);
                o += k * (second ? y_stride[d] : in_stride[d]);
            }
            memcpy((char *)out->data + (size_t)i * esize, (const char *)(second ? y->data : x->data) + (size_t)o * esize,
                   esize);
            for (uint32_t d = n->rank; d-- > 0;) {
                if (++idx[d] < out->dims[d])
                    break;
                idx[d] = 0;
            }
        }
    }
}

/* out[idx] = x[idx with every broadcast dimension at 0]: a stride of 0 repeats the source. */
static void run_broadcast(struct interp *it, const struct ir_node *n, struct value *out)
{
    const struct ir_node *sn = n->src[0];
    const struct value *x = &it->vals[sn->id];
    int64_t stride[IR_MAX_DIMS];
    strides_of(x->dims, sn->rank, stride);
    for (uint32_t d = 0; d < n->rank; d++)
        if (x->dims[d] == 1)
            stride[d] = 0;
    copy_strided(out->data, x->data, dtype_size(n->dtype), n->rank, out->dims, stride, 0);
}

/* ---- Experts -------------------------------------------------------------------------------------- */

/* Per row: the first k entries of ggml's descending argsort, an exchange sort that swaps only when a
 * later value is strictly larger (so among equal values the one found first in the current order stays). */
static int run_topk(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct value *x = &it->vals[n->src[0]->id];
    int64_t R = x->dims[0], E = x->dims[1], k = n->p.topk.k;
    int32_t *idx = malloc((size_t)E * sizeof *idx);
    if (!idx)
        return node_fail(err, n, "out of memory");
    for (int64_t r = 0; r < R; r++) {
        const float *v = (const float *)x->data + r * E;
        for (int64_t j = 0; j < E; j++)
            idx[j] = (int32_t)j;
        for (int64_t j = 0; j < k; j++)
            for (int64_t m = j + 1; m < E; m++)
                if (v[idx[j]] < v[idx[m]]) {
                    int32_t t = idx[j];
                    idx[j] = idx[m];
                    idx[m] = t;
                }
        memcpy((int32_t *)out->data + r * k, idx, (size_t)k * sizeof *idx);
    }
    free(idx);
    return 0;
}

/* w[j] = probs[ids[j]]; with norm, w[j] / (their sum, in double, as a float); then w[j] * scale. */
static int run_moe_weights(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct value *p = &it->vals[n->src[0]->id], *ids = &it->vals[n->src[1]->id];
    int64_t R = p->dims[0], E = p->dims[1], k = ids->dims[1];
    for (int64_t r = 0; r < R; r++) {
        const float *pr = (const float *)p->data + r * E;
        const int32_t *id = (const int32_t *)ids->data + r * k;
        float *w = (float *)out->data + r * k;
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            if (id[j] < 0 || id[j] >= E)
                return node_fail(err, n, "an expert id is outside 0..experts-1");
            w[j] = pr[id[j]];
            sum += (double)w[j];
        }
        float s = (float)sum;
        for (int64_t j = 0; j < k; j++) {
            if (n->p.moe_weights.norm)
                w[j] = w[j] / s;
            w[j] = w[j] * n->p.moe_weights.scale;
        }
    }
    return 0;
}

/* y[r, j, :] = x[r, j or 0, :] times the transpose of expert ids[r, j]; dot products in double. */
static int run_matmul_id(struct interp *it, const struct ir_node *n, struct value *out, ae_error *err)
{
    const struct ir_node *xn = n->src[0], *wn = n->src[1];
    const struct value *x = &it->vals[xn->id], *ids = &it->vals[n->src[2]->id];
    int64_t E = wn->shape[0], N = wn->shape[1], K = wn->shape[2];
    int64_t R = ids->dims[0], k = ids->dims[1];
    const int32_t *id = ids->data;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < k; j++) {
            int32_t e = id[r * k + j];
            if (e < 0 || e >= E)
                return ae_fail(err, "interp: %%%" PRIu32 " = matmul_id: expert id %" PRId32 " is outside 0..%" PRId64,
                               n->id, e, E - 1);
            const float *xr = (const float *)x->data + (xn->rank == 3 ? r * k + j : r) * K;
            float *yr = (float *)out->data + (r * k + j) * N;
            for (int64_t o = 0; o < N; o++) {
                const float *w = weight_row(it, wn, (int64_t)e * N + o, K, err);
                if (!w)
                    return ae_fail_prefix(err, "interp: %%%" PRIu32 " = matmul_id, expert %" PRId32 " row %" PRId64
                                          " of @%s", n->id, e, o, wn->name);
                double acc = 0.0;
                for (int64_t c = 0; c < K; c++)
                    acc += (double)w[c] * (double)xr[c];
                yr[o] = (float)acc;
            }
        }
    return 0;
}

/* y[r, :] = ((w[r,0] * x[r,0,:] + w[r,1] * x[r,1,:]) + ...): each product rounded, then added in slot order. */
static void run_moe_sum(struct interp *it, const struct ir_node *n, struct value *out)
{
    const struct value *x = &it->vals[n->src[0]->id], *wv = &it->vals[n->src[1]->id];
    int64_t R = x->dims[0], k = x->dims[1], D = x->dims[2];
    for (int64_t r = 0; r < R; r++) {
        const float *w = (const float *)wv->data + r * k;
        float *y = (float *)out->data + r * D;
        for (int64_t d = 0; d < D; d++) {
            const float *xr = (const float *)x->data + r * k * D + d;
            float acc = w[0] * xr[0];
            for (int64_t j = 1; j < k; j++) {
                const float p = w[j] * xr[j * D];
                acc = acc + p;
            }
            y[d] = acc;
        }
    }
}

static int run_kv_store(struct interp *it, const struct ir_node *n, int64_t T, int64_t P)
{
    const struct ir_node *cn = n->src[0];
    struct kv_buffer *kv = &it->kv[cn->id];
    const float *x = it->vals[n->src[1]->id].data;
    int64_t count = T * kv->row_elems, at = P * kv->row_elems;
    if (cn->dtype == AE_TYPE_F16) {
        uint16_t *d = (uint16_t *)kv->data + at;
        for (int64_t i = 0; i < count; i++)
            d[i] = ae_fp32_to_fp16(x[i]);
    } else {
        memcpy((float *)kv->data + at, x, (size_t)count * sizeof(float));
    }
    return 0;
}

/* Gives node n its value for a step with T tokens after P cached ones. */
static int run_node(struct interp *it, const struct ir_node *n, const int32_t *tokens, int64_t T, int64_t P,
                    ae_error *err)
{
    struct value *v = &it->vals[n->id];
    for (uint32_t d = 0; d < n->rank; d++)
        v->dims[d] = ir_dim_value(n->shape[d], T, P);
    const struct value *s0 = n->n_src ? &it->vals[n->src[0]->id] : NULL;

    /* Values that are views of something that already exists. */
    if (n->op == IR_OP_WEIGHT) {
        v->data = (void *)it->weight_data[n->id];
        return 0;
    }
    if (n->op == IR_OP_KV_CACHE) {
        v->data = it->kv[n->id].data;
        return 0;
    }
    if (n->op == IR_OP_KV_STORE) {
        v->data = it->kv[n->src[0]->id].data;
        return run_kv_store(it, n, T, P);
    }
    if (n->op == IR_OP_RESHAPE || n->op == IR_OP_OUTPUT) {
        v->data = s0->data;
        return 0;
    }
    if (n->op == IR_OP_LAST_ROW) {
        if (s0->dims[0] < 1)
            return node_fail(err, n, "the source has no rows");
        int64_t row = numel(s0, n->src[0]->rank) / s0->dims[0];
        v->data = (char *)s0->data + (size_t)((s0->dims[0] - 1) * row) * dtype_size(n->dtype);
        return 0;
    }

    size_t esize = dtype_size(n->dtype);
    if (!esize)
        return node_fail(err, n, "the interpreter computes only f32, f16 and i32 values");
    int64_t ne = numel(v, n->rank);
    v->data = malloc((size_t)(ne ? ne : 1) * esize);
    if (!v->data)
        return node_fail(err, n, "out of memory");
    v->owned = true;

    switch (n->op) {
    case IR_OP_INPUT: {
        int32_t *d = v->data;
        for (int64_t i = 0; i < T; i++)
            d[i] = n->p.input.kind == IR_INPUT_TOKENS ? tokens[i] : (int32_t)(P + i);
        return 0;
    }
    case IR_OP_GET_ROWS: return run_get_rows(it, n, v, err);
    case IR_OP_MATMUL: return run_matmul(it, n, v, err);
    case IR_OP_ADD:
    case IR_OP_MUL: run_binary(it, n, v); return 0;
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SIGMOID:
    case IR_OP_SOFTCAP: run_unary(it, n, v); return 0;
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_SOFTMAX: run_rowwise(it, n, v); return 0;
    case IR_OP_ROPE: return run_rope(it, n, v, err);
    case IR_OP_ATTENTION: return run_attention(it, n, v, err);
    case IR_OP_SLICE:
    case IR_OP_PERMUTE:
    case IR_OP_CONCAT: run_layout(it, n, v); return 0;
    case IR_OP_BROADCAST: run_broadcast(it, n, v); return 0;
    case IR_OP_TOPK: return run_topk(it, n, v, err);
    case IR_OP_MOE_WEIGHTS: return run_moe_weights(it, n, v, err);
    case IR_OP_MATMUL_ID: return run_matmul_id(it, n, v, err);
    case IR_OP_MOE_SUM: run_moe_sum(it, n, v); return 0;
    case IR_OP_WEIGHT:
    case IR_OP_KV_CACHE:
    case IR_OP_KV_STORE:
    case IR_OP_RESHAPE:
    case IR_OP_LAST_ROW:
    case IR_OP_OUTPUT:
    case IR_OP_EW:          /* fused ops: interp_create lowered them (ir_fused.h) */
    case IR_OP_MATMUL_EW:
    case IR_OP_RMS_NORM_MUL:
    case IR_OP_MATMUL_ROPE:
    case IR_OP_COUNT:
        break;
    }
    return node_fail(err, n, "op not handled by the interpreter");
}

int interp_eval(struct interp *it, const int32_t *tokens, uint32_t n_tokens, uint32_t pos, float *out, ae_error *err)
{
    if (n_tokens == 0)
        return ae_fail(err, "interp: a step needs at least one token");
    if ((uint64_t)pos + n_tokens > it->n_ctx)
        return ae_fail(err, "interp: positions %" PRIu32 "..%" PRIu64 " do not fit the context of %" PRIu32 " tokens",
                       pos, (uint64_t)pos + n_tokens - 1, it->n_ctx);
    const struct ir_graph *g = it->g;
    int64_t T = n_tokens, P = pos;
    int rc = 0;
    uint32_t i;
    for (i = 0; i < g->n_nodes && rc == 0; i++) {
        const struct ir_node *n = g->nodes[i];
        rc = run_node(it, n, tokens, T, P, err);
        if (rc == 0 && it->trace && n->dtype == IR_F32 && n->op != IR_OP_WEIGHT)
            it->trace(it->trace_ctx, n, it->vals[i].data, ir_node_numel(n, T, P));
        /* Free what no later node reads. */
        for (uint32_t s = 0; s < n->n_src; s++) {
            struct value *sv = &it->vals[n->src[s]->id];
            if (sv->owned && it->last_use[n->src[s]->id] <= i) {
                free(sv->data);
                sv->data = NULL;
                sv->owned = false;
            }
        }
    }
    if (rc == 0) {
        const struct value *ov = &it->vals[it->output->id];
        memcpy(out, ov->data, (size_t)ir_node_numel(it->output, T, P) * sizeof(float));
    }
    for (uint32_t k = 0; k < g->n_nodes; k++) {
        struct value *v = &it->vals[k];
        if (v->owned)
            free(v->data);
        v->data = NULL;
        v->owned = false;
    }
    return rc;
}
