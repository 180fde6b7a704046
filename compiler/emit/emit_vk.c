/* The Vulkan emitter (emit_vk.h).
 *
 * Storage: every value is a reference (ae_gpu.h) into one of the program's buffer spaces: the arena at
 * the memory plan's offset for computed values, the weights at their pack offset, a layer's K or V
 * cache, the token ids; views (reshape, kv_store) take their source's reference. The plan's alignment
 * (64 bytes) also serves the kernels, whose widest loads are 16 bytes. The one value the plan gives no
 * buffer of its own is the last-row view: its address depends on T, which recorded dispatches cannot
 * know, so the prefill step copies that row into room after the plan's peak.
 *
 * Lowering: each node becomes one or two dispatches (matmul_rope: the product, then rope in place;
 * concat: one copy per half). A dispatch's first reference is always the step's parameters; the
 * kernel's own references and constants follow in the order its file names them (#define X_REF 1 ...).
 * Rows that scale with T are given as a count and a flag (the kernel multiplies by the T it reads),
 * and the workgroups along that axis as groups * ceil(T / per_t), so the same dispatch serves every T.
 *
 * Kernels: a (file, #defines) pair, compiled once however many dispatches use it. Fused elementwise
 * steps become the EPILOGUE macro of the kernel that ends in them (matvec, matmul, ew).
 */
#include "emit_vk.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ae_gpu.h"
#include "ae_types.h"
#include "ir_fused.h"
#include "spirv.h"

#define DEFINES_MAX 1024

struct vk_kernel {
    uint32_t needs;                 /* enum ae_gpu_need bits */
    char file[32];
    char defines[DEFINES_MAX];
    char name[64];
    uint32_t *words;
    size_t n_words;
};

/* A list of dispatches being built, with the IR line each came from. */
struct vk_list {
    struct ae_gpu_dispatch *d;
    uint32_t *node;
    uint32_t n, cap;
};

struct vk_emitter {
    FILE *out;
    const struct ir_graph *g;
    const struct pass_ctx *c;
    const struct pack_build *pb;
    struct ae_gpu_ref *ref;         /* per node: where its value is (space NONE: nowhere) */
    uint64_t arena_bytes;           /* the plan's peak, then the GPU's own room */
    uint64_t dq_offset;             /* room for one weight matrix dequantized to f16 (tensor-core prefill) */
    struct vk_kernel *k;
    uint32_t n_k, cap_k;
    bool decode;                    /* lowering the decode step (T = 1) */
    uint32_t use;                   /* the enum ae_gpu_need bits this lowering may use */
    struct vk_list *list;           /* the step being lowered */
    ae_error *err;
};

static int node_error(struct vk_emitter *e, const struct ir_node *n, const char *what)
{
    char line[256];
    ir_print_node(n, line, sizeof line);
    return ae_fail(e->err, "the Vulkan backend cannot emit '%s': %s", line, what);
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A float as a GLSL literal that reads back as the same float. */
static void glsl_float(float v, char *buf, size_t size)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "uintBitsToFloat(0x%08" PRIx32 "u)", fbits(v));
        return;
    }
    snprintf(buf, size, "%.9g", (double)v);
    if (!strpbrk(buf, ".e"))
        strncat(buf, ".0", size - strlen(buf) - 1);
}

/* ---- Kernels ----------------------------------------------------------------------------------------- */

/* The index of kernel (file, defines), added when new; name says what it is ("matvec_q4_0"), needs what
 * it needs of the device. */
static int kernel_needing(struct vk_emitter *e, const char *file, const char *defines, const char *name, uint32_t needs)
{
    for (uint32_t i = 0; i < e->n_k; i++)
        if (!strcmp(e->k[i].file, file) && !strcmp(e->k[i].defines, defines))
            return (int)i;
    if (strlen(defines) >= DEFINES_MAX)
        return ae_fail(e->err, "kernel %s: its #defines are too long", name);
    if (e->n_k == e->cap_k) {
        uint32_t cap = e->cap_k ? 2 * e->cap_k : 16;
        struct vk_kernel *k = realloc(e->k, cap * sizeof *k);
        if (!k)
            return ae_fail(e->err, "out of memory");
        e->k = k;
        e->cap_k = cap;
    }
    struct vk_kernel *k = &e->k[e->n_k];
    memset(k, 0, sizeof *k);
    k->needs = needs;
    snprintf(k->file, sizeof k->file, "%s", file);
    snprintf(k->defines, sizeof k->defines, "%s", defines);
    /* Names are unique: a second variant of the same name gets a number. */
    uint32_t same = 0;
    for (uint32_t i = 0; i < e->n_k; i++)
        if (!strncmp(e->k[i].name, name, strlen(name)) &&
            (e->k[i].name[strlen(name)] == 0 || e->k[i].name[strlen(name)] == '_'))
            same++;
    if (same)
        snprintf(k->name, sizeof k->name, "%s_%" PRIu32, name, same);
    else
        snprintf(k->name, sizeof k->name, "%s", name);
    return (int)e->n_k++;
}

static int kernel_index(struct vk_emitter *e, const char *file, const char *defines, const char *name)
{
    return kernel_needing(e, file, defines, name, 0);
}

/* A new dispatch of kernel k for node n, its first reference the step's parameters. */
static struct ae_gpu_dispatch *dispatch_new(struct vk_emitter *e, int k, const struct ir_node *n)
{
    struct vk_list *l = e->list;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? 2 * l->cap : 256;
        struct ae_gpu_dispatch *d = realloc(l->d, cap * sizeof *d);
        uint32_t *node = d ? realloc(l->node, cap * sizeof *node) : NULL;
        if (d)
            l->d = d;
        if (!d || !node) {
            ae_fail(e->err, "out of memory");
            return NULL;
        }
        l->node = node;
        l->cap = cap;
    }
    struct ae_gpu_dispatch *d = &l->d[l->n];
    memset(d, 0, sizeof *d);
    d->kernel = (uint32_t)k;
    d->ref[0] = (struct ae_gpu_ref){AE_GPU_STEP, 0, 0};
    l->node[l->n++] = n->id;
    return d;
}

/* ---- Shapes ------------------------------------------------------------------------------------------ */

/* Dims [from, to) of n as a count times T or not; fails for P or P+T. */
static int dims_count(struct vk_emitter *e, const struct ir_node *n, uint32_t from, uint32_t to, uint32_t *count,
                      bool *times_t)
{
    uint64_t k = 1;
    *times_t = false;
    for (uint32_t i = from; i < to && i < n->rank; i++) {
        if (n->shape[i] == IR_DIM_T) {
            if (*times_t)
                return node_error(e, n, "T appears twice in one shape");
            *times_t = true;
        } else if (ir_dim_is_symbol(n->shape[i]))
            return node_error(e, n, "a shape with P in it has no kernel");
        else
            k *= (uint64_t)n->shape[i];
    }
    if (k > UINT32_MAX)
        return node_error(e, n, "a dimension too large for the kernels");
    *count = (uint32_t)k;
    return 0;
}

/* Rows: every dimension but the last. */
static int rows_of(struct vk_emitter *e, const struct ir_node *n, uint32_t *count, bool *times_t)
{
    return dims_count(e, n, 0, n->rank ? n->rank - 1 : 0, count, times_t);
}

static uint32_t last_dim(const struct ir_node *n) { return n->rank ? (uint32_t)n->shape[n->rank - 1] : 1; }

/* Workgroups along axis i: count (times ceil(T / per) when times_t). */
static void groups_set(struct ae_gpu_dispatch *d, int i, uint32_t count, bool times_t, uint32_t per)
{
    d->groups[i] = count;
    d->per_t[i] = times_t ? per : 0;
}

/* ---- Storage ------------------------------------------------------------------------------------------ */

/* Whether the tensor-core prefill takes a weight: quantized or f16 rows of whole 32-value blocks (f32 and
 * bf16 weights stay on the exact f32 kernels). */
static bool coop_weight(const struct ir_node *w)
{
    return w->rank == 2 && w->dtype != AE_TYPE_F32 && w->dtype != AE_TYPE_BF16 && w->shape[1] % 32 == 0 &&
           ae_type_info(w->dtype) != NULL;
}

static int assign_storage(struct vk_emitter *e)
{
    const struct pass_plan *plan = &e->c->plan;
    e->arena_bytes = plan->peak;
    for (uint32_t i = 0; i < e->g->n_nodes; i++)
        e->ref[i] = (struct ae_gpu_ref){AE_GPU_NONE, 0, 0};
    for (uint32_t b = 0; b < plan->n; b++)
        e->ref[plan->node[b]] = (struct ae_gpu_ref){AE_GPU_ARENA, 0, plan->buf[b].offset};
    for (uint32_t i = 0; i < e->g->n_nodes; i++) {
        const struct ir_node *n = e->g->nodes[i];
        struct ae_gpu_ref *r = &e->ref[i];
        switch (n->op) {
        case IR_OP_INPUT:
            if (n->p.input.kind == IR_INPUT_TOKENS)
                *r = (struct ae_gpu_ref){AE_GPU_TOKENS, 0, 0};
            break; /* positions: the kernels take P */
        case IR_OP_WEIGHT:
            if (e->pb->offset[i] == UINT64_MAX)
                return node_error(e, n, "the weight is not in the pack");
            *r = (struct ae_gpu_ref){AE_GPU_WEIGHTS, 0, e->pb->offset[i]};
            break;
        case IR_OP_KV_CACHE:
            *r = (struct ae_gpu_ref){n->p.kv_cache.kind == IR_KV_K ? AE_GPU_KV_K : AE_GPU_KV_V, n->p.kv_cache.layer, 0};
            break;
        case IR_OP_KV_STORE:
        case IR_OP_RESHAPE:
        case IR_OP_OUTPUT:
            *r = e->ref[n->src[0]->id];
            break;
        case IR_OP_LAST_ROW: {
            /* Room of its own after the plan (the prefill copies the row there; decode reads it in place). */
            uint32_t inner;
            bool t;
            if (dims_count(e, n, 1, n->rank, &inner, &t) < 0)
                return -1;
            *r = (struct ae_gpu_ref){AE_GPU_ARENA, 0, e->arena_bytes};
            e->arena_bytes += ((uint64_t)inner * 4 + 255) / 256 * 256;
            break;
        }
        case IR_OP_GET_ROWS: case IR_OP_MATMUL: case IR_OP_ADD: case IR_OP_MUL: case IR_OP_SCALE:
        case IR_OP_SILU: case IR_OP_GELU: case IR_OP_SOFTCAP: case IR_OP_RMS_NORM: case IR_OP_LAYER_NORM:
        case IR_OP_SOFTMAX: case IR_OP_ROPE: case IR_OP_ATTENTION: case IR_OP_SLICE: case IR_OP_PERMUTE:
        case IR_OP_CONCAT: case IR_OP_EW: case IR_OP_MATMUL_EW: case IR_OP_RMS_NORM_MUL: case IR_OP_MATMUL_ROPE:
            if (r->space != AE_GPU_ARENA)
                return node_error(e, n, "the memory plan gave it no buffer");
            break;
        case IR_OP_COUNT:
            return node_error(e, n, "unknown op");
        }
    }
    /* The tensor-core prefill reads weights dequantized to f16: room for the largest such matrix. */
    uint64_t dq = 0;
    for (uint32_t i = 0; i < e->g->n_nodes; i++) {
        const struct ir_node *n = e->g->nodes[i];
        if ((n->op == IR_OP_MATMUL || n->op == IR_OP_MATMUL_EW || n->op == IR_OP_MATMUL_ROPE) && coop_weight(n->src[1]) &&
            n->src[1]->dtype != AE_TYPE_F16 &&
            (uint64_t)n->src[1]->shape[0] * (uint64_t)n->src[1]->shape[1] * 2 > dq)
            dq = (uint64_t)n->src[1]->shape[0] * (uint64_t)n->src[1]->shape[1] * 2;
    }
    e->dq_offset = e->arena_bytes;
    e->arena_bytes += (dq + 255) / 256 * 256;
    return 0;
}

/* Where a value is in this step: a last-row view is the prefill's copy, or in decode (T = 1) its
 * source. */
static struct ae_gpu_ref value_ref(struct vk_emitter *e, const struct ir_node *v)
{
    if (v->op == IR_OP_LAST_ROW && e->decode)
        return value_ref(e, v->src[0]);
    if (v->op == IR_OP_RESHAPE)
        return v->src[0]->op == IR_OP_LAST_ROW ? value_ref(e, v->src[0]) : e->ref[v->id];
    return e->ref[v->id];
}

/* The reference of a value the kernels read as f32: an activation, or an f32 weight. */
static int f32_ref(struct vk_emitter *e, const struct ir_node *user, const struct ir_node *v, struct ae_gpu_ref *out)
{
    *out = value_ref(e, v);
    if (out->space == AE_GPU_ARENA || (out->space == AE_GPU_WEIGHTS && v->dtype == AE_TYPE_F32))
        return 0;
    return node_error(e, user, "an operand that is not an f32 value in memory");
}

/* ---- Epilogues ----------------------------------------------------------------------------------------- */

/* Appends "EPILOGUE(v, r, c, n) ...;" for steps applied to an output shaped like out, their add/mul
 * operands taking reference slots from first_slot on. */
static int epilogue(struct vk_emitter *e, const struct ir_node *n, const struct ir_node *out, uint32_t n_steps,
                    const enum ir_ew_step *steps, const float *ks, const struct ir_node *const *operands,
                    struct ae_gpu_dispatch *d, uint32_t first_slot, char *defines, size_t size)
{
    if (!n_steps)
        return 0;
    size_t len = strlen(defines);
    len += (size_t)snprintf(defines + len, size - len, "EPILOGUE(v, r, c, n)");
    uint32_t slot = first_slot, next = 0;
    for (uint32_t s = 0; s < n_steps && len < size; s++) {
        char k[64];
        glsl_float(ks[s], k, sizeof k);
        switch (steps[s]) {
        case IR_EW_ADD:
        case IR_EW_MUL: {
            const struct ir_node *op = operands[next++];
            if (slot >= AE_GPU_MAX_REFS)
                return node_error(e, n, "too many operands for one kernel");
            if (f32_ref(e, n, op, &d->ref[slot]) < 0)
                return -1;
            const bool row = op->rank == 1 && out->rank > 1;
            len += (size_t)snprintf(defines + len, size - len, " v = v %c %s%" PRIu32 "%s;", steps[s] == IR_EW_ADD ? '+' : '*',
                                    row ? "ew_row_operand(" : "ew_operand(", slot, row ? ", c)" : ", r, c, n)");
            slot++;
            break;
        }
        case IR_EW_SCALE: len += (size_t)snprintf(defines + len, size - len, " v = v * %s;", k); break;
        case IR_EW_SILU: len += (size_t)snprintf(defines + len, size - len, " v = ew_silu(v);"); break;
        case IR_EW_GELU: len += (size_t)snprintf(defines + len, size - len, " v = ew_gelu(v);"); break;
        case IR_EW_SOFTCAP: len += (size_t)snprintf(defines + len, size - len, " v = ew_softcap(v, %s);", k); break;
        case IR_EW_NONE:
        case IR_EW_STEP_COUNT:
            return node_error(e, n, "a step the kernels do not know");
        }
    }
    if (len + 2 >= size)
        return node_error(e, n, "its elementwise steps are too long for one kernel");
    defines[len++] = '\n';
    defines[len] = 0;
    return 0;
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

/* ---- Lowering, node by node ---------------------------------------------------------------------------- */

static int lower_ew(struct vk_emitter *e, const struct ir_node *n, const struct ir_node *x, uint32_t n_steps,
                    const enum ir_ew_step *steps, const float *ks, const struct ir_node *const *operands)
{
    char defines[DEFINES_MAX] = "";
    struct ae_gpu_dispatch tmp = {0};
    if (epilogue(e, n, n, n_steps, steps, ks, operands, &tmp, 3, defines, sizeof defines) < 0)
        return -1;
    int k = kernel_index(e, "ew.comp", defines, "ew");
    struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
    if (!d)
        return -1;
    memcpy(&d->ref[3], &tmp.ref[3], sizeof d->ref - 3 * sizeof d->ref[0]);
    uint32_t rows;
    bool t;
    if (rows_of(e, n, &rows, &t) < 0 || f32_ref(e, n, x, &d->ref[1]) < 0)
        return -1;
    d->ref[2] = e->ref[n->id];
    d->k[0] = last_dim(n);
    groups_set(d, 0, (last_dim(n) + 255) / 256, false, 0);
    groups_set(d, 1, rows, t, 1);
    groups_set(d, 2, 1, false, 0);
    return 0;
}

static int lower_matmul(struct vk_emitter *e, const struct ir_node *n, const struct ir_node *x, const struct ir_node *w,
                        uint32_t n_steps, const enum ir_ew_step *steps, const float *ks,
                        const struct ir_node *const *operands)
{
    const struct ae_type_info *ti = ae_type_info(w->dtype);
    if (!ti)
        return node_error(e, n, "no kernel for this weight type");
    switch (w->dtype) {
    case AE_TYPE_F32: case AE_TYPE_F16: case AE_TYPE_BF16: case AE_TYPE_Q4_0: case AE_TYPE_Q4_1: case AE_TYPE_Q5_0:
    case AE_TYPE_Q5_1: case AE_TYPE_Q8_0: case AE_TYPE_Q2_K: case AE_TYPE_Q3_K: case AE_TYPE_Q4_K: case AE_TYPE_Q5_K:
    case AE_TYPE_Q6_K:
        break;
    default:
        return node_error(e, n, "no Vulkan kernel for this weight type");
    }
    if (w->rank != 2 || x->rank < 1 || x->shape[x->rank - 1] != w->shape[1])
        return node_error(e, n, "a matmul of unexpected shapes");
    if (ti->block_size > 1 && w->shape[1] % 32 != 0)
        return node_error(e, n, "rows that are not whole blocks");
    uint32_t rows;
    bool t;
    if (rows_of(e, x, &rows, &t) < 0)
        return -1;
    const bool vec = !t || e->decode;
    if (vec && rows != 1)
        return node_error(e, n, "a matrix-vector product of more than one row");
    char defines[DEFINES_MAX];
    snprintf(defines, sizeof defines, "WTYPE %" PRIu32 "\n", w->dtype);
    struct ae_gpu_dispatch tmp = {0};
    if (epilogue(e, n, n, n_steps, steps, ks, operands, &tmp, 4, defines, sizeof defines) < 0)
        return -1;
    /* Integer dot products for the decode product of Q4_0 and Q8_0 rows, and tensor cores for the prefill
     * products of quantized and f16 weights, where the device has them. */
    const bool q8 = vec && (e->use & AE_GPU_NEED_INT_DOT) && (w->dtype == AE_TYPE_Q4_0 || w->dtype == AE_TYPE_Q8_0) &&
                    w->shape[1] / 32 <= 640;
    const bool coop = !vec && (e->use & AE_GPU_NEED_COOPMAT_NV) && coop_weight(w);
    const char *file = q8 ? "matvec_q8.comp" : coop ? "matmul_coop.comp" : vec ? "matvec.comp" : "matmul.comp";
    char name[64];
    if (coop && w->dtype != AE_TYPE_F16) { /* first the weights to f16 rows, then the product of halves */
        snprintf(name, sizeof name, "dequant_f16_%s", ti->name);
        int kd = kernel_index(e, "dequant_f16.comp", defines, name);
        struct ae_gpu_dispatch *dd = kd < 0 ? NULL : dispatch_new(e, kd, n);
        if (!dd)
            return -1;
        const uint64_t pieces = (uint64_t)w->shape[0] * (uint64_t)w->shape[1] / 8, groups = (pieces + 255) / 256;
        const uint64_t gx = groups < 32768 ? groups : 32768;
        dd->ref[1] = e->ref[w->id];
        dd->ref[2] = (struct ae_gpu_ref){AE_GPU_ARENA, 0, e->dq_offset};
        dd->k[0] = (uint32_t)w->shape[0];
        dd->k[1] = (uint32_t)w->shape[1];
        groups_set(dd, 0, (uint32_t)gx, false, 0);
        groups_set(dd, 1, (uint32_t)((groups + gx - 1) / gx), false, 0);
        groups_set(dd, 2, 1, false, 0);
    }
    if (coop) { /* the product of halves has no weight type of its own */
        snprintf(defines, sizeof defines, "%s", "");
        if (epilogue(e, n, n, n_steps, steps, ks, operands, &tmp, 4, defines, sizeof defines) < 0)
            return -1;
        snprintf(name, sizeof name, "matmul_coop%s", n_steps ? "_ew" : "");
    } else
        snprintf(name, sizeof name, "%.*s_%s%s", (int)(strchr(file, '.') - file), file, ti->name, n_steps ? "_ew" : "");
    int k = kernel_needing(e, file, defines, name, q8 ? AE_GPU_NEED_INT_DOT : coop ? AE_GPU_NEED_COOPMAT_NV : 0);
    struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
    if (!d)
        return -1;
    memcpy(&d->ref[4], &tmp.ref[4], sizeof d->ref - 4 * sizeof d->ref[0]);
    if (f32_ref(e, n, x, &d->ref[1]) < 0)
        return -1;
    d->ref[2] = coop && w->dtype != AE_TYPE_F16 ? (struct ae_gpu_ref){AE_GPU_ARENA, 0, e->dq_offset} : e->ref[w->id];
    d->ref[3] = e->ref[n->id];
    const uint32_t N = (uint32_t)w->shape[0];
    d->k[0] = N;
    d->k[1] = (uint32_t)w->shape[1];
    if (q8) {
        groups_set(d, 0, (N + 15) / 16, false, 0);
        groups_set(d, 1, 1, false, 0);
    } else if (vec) {
        groups_set(d, 0, (N + 7) / 8, false, 0);
        groups_set(d, 1, 1, false, 0);
    } else {
        d->k[2] = rows;
        d->k[3] = 1;
        if (coop) { /* x over the rows, y over N: neighbours share a weight tile */
            groups_set(d, 0, rows, true, 64);
            groups_set(d, 1, (N + 127) / 128, false, 0);
        } else {
            groups_set(d, 0, (N + 63) / 64, false, 0);
            groups_set(d, 1, rows, true, 64);
        }
    }
    groups_set(d, 2, 1, false, 0);
    return 0;
}

/* rope of x (shaped [S, H, D] like shape) into y. */
static int lower_rope(struct vk_emitter *e, const struct ir_node *n, struct ae_gpu_ref x, struct ae_gpu_ref y,
                      const struct ir_node *shape, const union ir_params *p, const struct ir_node *factors)
{
    if (p->rope.ext_factor != 0.0f)
        return node_error(e, n, "YaRN rope scaling has no kernel yet");
    if (shape->rank != 3 || shape->shape[0] != IR_DIM_T)
        return node_error(e, n, "rope expects [T, heads, head_dim]");
    if (p->rope.n_dims <= 0 || p->rope.n_dims % 2 || p->rope.n_dims > shape->shape[2] || !(p->rope.freq_base > 0.0f))
        return node_error(e, n, "rope's rotated dimensions or base are out of range");
    int k = kernel_index(e, "rope.comp", "", "rope");
    struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
    if (!d)
        return -1;
    d->ref[1] = x;
    d->ref[2] = y;
    if (factors && f32_ref(e, n, factors, &d->ref[3]) < 0)
        return -1;
    d->k[1] = (uint32_t)shape->shape[2];
    d->k[2] = (uint32_t)p->rope.n_dims;
    d->k[3] = p->rope.mode == IR_ROPE_NEOX;
    d->k[4] = fbits(powf(p->rope.freq_base, -2.0f / (float)p->rope.n_dims));
    d->k[5] = fbits(p->rope.freq_scale);
    d->k[6] = fbits(p->rope.attn_factor);
    groups_set(d, 0, (uint32_t)shape->shape[1], false, 0);
    groups_set(d, 1, 1, true, 1);
    groups_set(d, 2, 1, false, 0);
    return 0;
}

static const struct ir_node *attention_cache(const struct ir_node *kv)
{
    return kv->op == IR_OP_KV_STORE && kv->src[0]->op == IR_OP_KV_CACHE ? kv->src[0] : NULL;
}

static int lower_attention(struct vk_emitter *e, const struct ir_node *n)
{
    const struct ir_node *q = n->src[0], *k = attention_cache(n->src[1]), *v = attention_cache(n->src[2]);
    if (!k || !v)
        return node_error(e, n, "attention must read the KV cache after this step's kv_store");
    if (q->rank != 3 || q->shape[0] != IR_DIM_T || q->shape[2] > 256 || v->shape[2] > 256)
        return node_error(e, n, "attention expects q [T, heads, head_dim] with head dims of at most 256");
    if (k->shape[1] <= 0 || q->shape[1] % k->shape[1] != 0)
        return node_error(e, n, "query heads are not a multiple of the KV heads");
    int ki = kernel_index(e, "attention.comp", "", "attention");
    struct ae_gpu_dispatch *d = ki < 0 ? NULL : dispatch_new(e, ki, n);
    if (!d)
        return -1;
    d->ref[1] = value_ref(e, q);
    d->ref[2] = e->ref[k->id];
    d->ref[3] = e->ref[v->id];
    d->ref[4] = e->ref[n->id];
    d->k[0] = (uint32_t)q->shape[1];
    d->k[1] = (uint32_t)k->shape[1];
    d->k[2] = (uint32_t)q->shape[2];
    d->k[3] = (uint32_t)v->shape[2];
    d->k[4] = fbits(n->p.attention.scale);
    d->k[5] = fbits(n->p.attention.softcap);
    d->k[6] = n->p.attention.window > 0 ? (uint32_t)n->p.attention.window : 0;
    groups_set(d, 0, (uint32_t)q->shape[1], false, 0);
    groups_set(d, 1, 1, true, 1);
    groups_set(d, 2, 1, false, 0);
    return 0;
}

/* A shape as 4 dimensions, outermost first, padded with leading 1s. A first dimension of T becomes
 * n[0] = 1 with t0 set (the copy kernel's workgroup rows): the dimensions between are 1, so the strides
 * stay those of the shape. */
struct dims4 {
    uint32_t n[4];
    bool t0;                        /* n[0] is times T */
};

static int dims4_of(struct vk_emitter *e, const struct ir_node *n, struct dims4 *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 4; i++)
        out->n[i] = 1;
    if (n->rank > 4 || n->rank == 0)
        return node_error(e, n, "a copy of 1 to 4 dimensions expected");
    for (uint32_t i = 0; i < n->rank; i++) {
        if (n->shape[i] == IR_DIM_T && i == 0)
            out->t0 = true;
        else if (ir_dim_is_symbol(n->shape[i]))
            return node_error(e, n, "a copy with T other than in its first dimension, or with P");
        else
            out->n[4 - n->rank + i] = (uint32_t)n->shape[i];
    }
    return 0;
}

/* Contiguous strides of a 4-d shape (elements). */
static void strides4(const struct dims4 *s, uint32_t st[4])
{
    st[3] = 1;
    for (int i = 2; i >= 0; i--)
        st[i] = st[i + 1] * s->n[i + 1];
}

/* One copy dispatch: the index space out (dims4), source x (+ x_off elements) with strides xs, dest y
 * (+ y_off) with strides ys. */
static int copy_dispatch(struct vk_emitter *e, const struct ir_node *n, const struct dims4 *out, struct ae_gpu_ref x,
                         uint64_t x_off, const uint32_t xs[4], struct ae_gpu_ref y, uint64_t y_off, const uint32_t ys[4],
                         bool last_row, uint32_t row)
{
    int k = kernel_index(e, "copy.comp", "", "copy");
    struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
    if (!d)
        return -1;
    d->ref[1] = x;
    d->ref[1].offset += 4 * x_off;
    d->ref[2] = y;
    d->ref[2].offset += 4 * y_off;
    for (int i = 0; i < 4; i++) {
        d->k[i] = out->n[i];
        d->k[4 + i] = xs[i];
        d->k[8 + i] = ys[i];
    }
    d->k[12] = last_row;
    d->k[13] = row;
    const uint64_t inner = (uint64_t)out->n[1] * out->n[2] * out->n[3];
    groups_set(d, 0, (uint32_t)((inner + 255) / 256), false, 0);
    groups_set(d, 1, out->n[0], out->t0, 1);
    groups_set(d, 2, 1, false, 0);
    return 0;
}

static int lower_slice(struct vk_emitter *e, const struct ir_node *n)
{
    const struct ir_node *x = n->src[0];
    struct dims4 xo, yo;
    if (dims4_of(e, x, &xo) < 0 || dims4_of(e, n, &yo) < 0)
        return -1;
    uint32_t xs[4], ys[4];
    strides4(&xo, xs);
    strides4(&yo, ys);
    const uint32_t axis = 4 - x->rank + (uint32_t)n->p.slice.axis;
    if (xo.t0 && axis == 4 - x->rank)
        return node_error(e, n, "a slice along T");
    return copy_dispatch(e, n, &yo, value_ref(e, x), (uint64_t)n->p.slice.start * xs[axis], xs, e->ref[n->id], 0, ys,
                         false, 0);
}

static int lower_permute(struct vk_emitter *e, const struct ir_node *n)
{
    const struct ir_node *x = n->src[0];
    struct dims4 xo, yo;
    if (dims4_of(e, x, &xo) < 0 || dims4_of(e, n, &yo) < 0)
        return -1;
    if (xo.t0 && n->p.permute.perm[0] != 0)
        return node_error(e, n, "a permutation that moves T");
    uint32_t xs[4], ys[4], ps[4] = {1, 1, 1, 1};
    strides4(&xo, xs);
    strides4(&yo, ys);
    /* out dim i (padded index 4 - rank + i) reads in dim perm[i]: its source stride */
    for (uint32_t i = 0; i < n->rank; i++)
        ps[4 - n->rank + i] = xs[4 - x->rank + (uint32_t)n->p.permute.perm[i]];
    if (xo.t0) /* T stays outermost, at n[0] */
        ps[0] = xs[0];
    return copy_dispatch(e, n, &yo, value_ref(e, x), 0, ps, e->ref[n->id], 0, ys, false, 0);
}

static int lower_concat(struct vk_emitter *e, const struct ir_node *n)
{
    const struct ir_node *a = n->src[0], *b = n->src[1];
    struct dims4 yo, ao, bo;
    if (dims4_of(e, n, &yo) < 0 || dims4_of(e, a, &ao) < 0 || dims4_of(e, b, &bo) < 0)
        return -1;
    const uint32_t axis = 4 - n->rank + (uint32_t)n->p.concat.axis;
    if (yo.t0 && axis == 4 - n->rank)
        return node_error(e, n, "a concatenation along T");
    uint32_t ys[4], as[4], bs[4];
    strides4(&yo, ys);
    strides4(&ao, as);
    strides4(&bo, bs);
    if (copy_dispatch(e, n, &ao, value_ref(e, a), 0, as, e->ref[n->id], 0, ys, false, 0) < 0)
        return -1;
    return copy_dispatch(e, n, &bo, value_ref(e, b), 0, bs, e->ref[n->id], (uint64_t)ao.n[axis] * ys[axis], ys, false, 0);
}

static int lower_last_row(struct vk_emitter *e, const struct ir_node *n)
{
    if (e->decode)
        return 0; /* T = 1: the row is its source */
    const struct ir_node *x = n->src[0];
    if (x->rank < 1 || x->shape[0] != IR_DIM_T)
        return node_error(e, n, "the last row of a value whose rows are not the step's");
    uint32_t inner;
    bool t;
    if (dims_count(e, x, 1, x->rank, &inner, &t) < 0)
        return -1;
    struct dims4 out = {{1, 1, 1, inner}, false};
    const uint32_t st[4] = {inner, inner, inner, 1};
    return copy_dispatch(e, n, &out, value_ref(e, x), 0, st, e->ref[n->id], 0, st, true, inner);
}

static int lower_rows_kernel(struct vk_emitter *e, const struct ir_node *n, const char *file, const char *name)
{
    int k = kernel_index(e, file, "", name);
    struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
    if (!d)
        return -1;
    uint32_t rows;
    bool t;
    if (rows_of(e, n, &rows, &t) < 0)
        return -1;
    groups_set(d, 0, rows, t, 1);
    groups_set(d, 1, 1, false, 0);
    groups_set(d, 2, 1, false, 0);
    d->k[0] = last_dim(n);
    d->ref[1] = value_ref(e, n->src[0]);
    if (d->ref[1].space != AE_GPU_ARENA)
        return node_error(e, n, "its input is not an activation");
    return 0;
}

static int lower_node(struct vk_emitter *e, const struct ir_node *n)
{
    enum ir_ew_step steps[IR_EW_MAX_STEPS] = {IR_EW_NONE};
    float ks[IR_EW_MAX_STEPS] = {0};
    const struct ir_node *ops[IR_EW_MAX_STEPS] = {NULL};
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_WEIGHT: case IR_OP_KV_CACHE: case IR_OP_RESHAPE: case IR_OP_OUTPUT:
        return 0;
    case IR_OP_LAST_ROW:
        return lower_last_row(e, n);
    case IR_OP_GET_ROWS: {
        const struct ir_node *w = n->src[0], *ids = n->src[1];
        const struct ae_type_info *ti = ae_type_info(w->dtype);
        if (!ti || w->rank != 2 || (ti->block_size > 1 && w->shape[1] % 32 != 0))
            return node_error(e, n, "no embedding kernel for this weight");
        if (e->ref[ids->id].space != AE_GPU_TOKENS)
            return node_error(e, n, "embedding lookups take the step's tokens");
        char defines[64], name[64];
        snprintf(defines, sizeof defines, "WTYPE %" PRIu32 "\n", w->dtype);
        snprintf(name, sizeof name, "get_rows_%s", ti->name);
        int k = kernel_index(e, "get_rows.comp", defines, name);
        struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
        if (!d)
            return -1;
        uint32_t count;
        bool t;
        if (dims_count(e, ids, 0, ids->rank, &count, &t) < 0)
            return -1;
        d->ref[1] = e->ref[ids->id];
        d->ref[2] = e->ref[w->id];
        d->ref[3] = e->ref[n->id];
        d->k[0] = (uint32_t)w->shape[1];
        d->k[1] = (uint32_t)w->shape[0];
        const uint32_t D = (uint32_t)w->shape[1], threads = D / 8 > D % 8 ? D / 8 : D % 8;
        groups_set(d, 0, (threads + 63) / 64, false, 0);
        groups_set(d, 1, count, t, 1);
        groups_set(d, 2, 1, false, 0);
        return 0;
    }
    case IR_OP_MATMUL:
        return lower_matmul(e, n, n->src[0], n->src[1], 0, steps, ks, ops);
    case IR_OP_MATMUL_EW: {
        uint32_t k = ew_steps(n, 2, steps, ks, ops);
        return lower_matmul(e, n, n->src[0], n->src[1], k, steps, ks, ops);
    }
    case IR_OP_ADD:
    case IR_OP_MUL:
        steps[0] = n->op == IR_OP_ADD ? IR_EW_ADD : IR_EW_MUL;
        ks[0] = 0;
        ops[0] = n->src[1];
        return lower_ew(e, n, n->src[0], 1, steps, ks, ops);
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_SOFTCAP:
        steps[0] = n->op == IR_OP_SCALE ? IR_EW_SCALE : n->op == IR_OP_SILU ? IR_EW_SILU
                 : n->op == IR_OP_GELU ? IR_EW_GELU : IR_EW_SOFTCAP;
        ks[0] = n->op == IR_OP_SCALE ? n->p.scale.s : n->op == IR_OP_SOFTCAP ? n->p.softcap.cap : 0.0f;
        return lower_ew(e, n, n->src[0], 1, steps, ks, ops);
    case IR_OP_EW: {
        uint32_t k = ew_steps(n, 1, steps, ks, ops);
        return lower_ew(e, n, n->src[0], k, steps, ks, ops);
    }
    case IR_OP_RMS_NORM:
    case IR_OP_RMS_NORM_MUL: {
        if (lower_rows_kernel(e, n, "rms_norm.comp", "rms_norm") < 0)
            return -1;
        struct ae_gpu_dispatch *d = &e->list->d[e->list->n - 1];
        d->ref[3] = e->ref[n->id];
        if (n->op == IR_OP_RMS_NORM_MUL && f32_ref(e, n, n->src[1], &d->ref[2]) < 0)
            return -1;
        if (n->op == IR_OP_RMS_NORM_MUL && n->n_src == 3) {
            if (f32_ref(e, n, n->src[2], &d->ref[4]) < 0)
                return -1;
        }
        d->k[3] = fbits(n->p.norm.eps);
        return 0;
    }
    case IR_OP_LAYER_NORM: {
        if (lower_rows_kernel(e, n, "layer_norm.comp", "layer_norm") < 0)
            return -1;
        struct ae_gpu_dispatch *d = &e->list->d[e->list->n - 1];
        d->ref[2] = e->ref[n->id];
        d->k[3] = fbits(n->p.norm.eps);
        return 0;
    }
    case IR_OP_SOFTMAX: {
        if (lower_rows_kernel(e, n, "softmax.comp", "softmax") < 0)
            return -1;
        struct ae_gpu_dispatch *d = &e->list->d[e->list->n - 1];
        d->ref[2] = e->ref[n->id];
        d->k[3] = fbits(n->p.softmax.scale);
        return 0;
    }
    case IR_OP_ROPE:
        if (n->src[1]->op != IR_OP_INPUT || n->src[1]->p.input.kind != IR_INPUT_POSITIONS)
            return node_error(e, n, "rope positions must be the step's positions");
        return lower_rope(e, n, value_ref(e, n->src[0]), e->ref[n->id], n, &n->p, n->n_src > 2 ? n->src[2] : NULL);
    case IR_OP_MATMUL_ROPE: {
        if (n->src[2]->op != IR_OP_INPUT || n->src[2]->p.input.kind != IR_INPUT_POSITIONS)
            return node_error(e, n, "rope positions must be the step's positions");
        uint32_t k = 0;
        if (n->n_src > 3) { /* the bias, added to each row */
            steps[0] = IR_EW_ADD;
            ks[0] = 0;
            ops[0] = n->src[3];
            k = 1;
        }
        if (lower_matmul(e, n, n->src[0], n->src[1], k, steps, ks, ops) < 0)
            return -1;
        return lower_rope(e, n, e->ref[n->id], e->ref[n->id], n, &n->p, NULL);
    }
    case IR_OP_ATTENTION:
        return lower_attention(e, n);
    case IR_OP_KV_STORE: {
        const struct ir_node *x = n->src[1];
        if (x->rank != 3 || x->shape[0] != IR_DIM_T || n->src[0]->op != IR_OP_KV_CACHE)
            return node_error(e, n, "kv_store expects [T, heads, head_dim] rows into a layer's cache");
        int k = kernel_index(e, "kv_store.comp", "", "kv_store");
        struct ae_gpu_dispatch *d = k < 0 ? NULL : dispatch_new(e, k, n);
        if (!d)
            return -1;
        const uint32_t row = (uint32_t)(x->shape[1] * x->shape[2]);
        d->ref[1] = value_ref(e, x);
        d->ref[2] = e->ref[n->src[0]->id];
        d->k[0] = row;
        groups_set(d, 0, (row + 255) / 256, false, 0);
        groups_set(d, 1, 1, true, 1);
        groups_set(d, 2, 1, false, 0);
        return 0;
    }
    case IR_OP_SLICE:
        return lower_slice(e, n);
    case IR_OP_CONCAT:
        return lower_concat(e, n);
    case IR_OP_PERMUTE:
        return lower_permute(e, n);
    case IR_OP_COUNT:
        break;
    }
    return node_error(e, n, "unknown op");
}

/* Lowers every node for one step into l, with kernels that need at most `use` of the device. */
static int lower_step(struct vk_emitter *e, struct vk_list *l, bool decode, uint32_t use)
{
    e->decode = decode;
    e->use = use;
    e->list = l;
    for (uint32_t i = 0; i < e->g->n_nodes; i++)
        if (lower_node(e, e->g->nodes[i]) < 0)
            return -1;
    return 0;
}

/* The arena offset of the logits: the output's source. */
static int logits_offset(struct vk_emitter *e, bool decode, uint64_t *off)
{
    e->decode = decode;
    for (uint32_t i = 0; i < e->g->n_nodes; i++) {
        const struct ir_node *n = e->g->nodes[i];
        if (n->op != IR_OP_OUTPUT)
            continue;
        struct ae_gpu_ref r = value_ref(e, n->src[0]);
        if (r.space != AE_GPU_ARENA)
            return node_error(e, n, "the logits are not an activation");
        *off = r.offset;
        return 0;
    }
    return ae_fail(e->err, "the graph has no output");
}

/* ---- Compiling and writing ----------------------------------------------------------------------------- */

static int write_file(const char *path, const void *data, size_t size, ae_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ae_fail(err, "%s: cannot create: %s", path, strerror(errno));
    bool ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok)
        return ae_fail(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int compile_kernels(struct vk_emitter *e, const struct emit_vk_options *o)
{
    if (o && o->dump_dir && mkdir(o->dump_dir, 0777) < 0 && errno != EEXIST)
        return ae_fail(e->err, "%s: cannot create: %s", o->dump_dir, strerror(errno));
    for (uint32_t i = 0; i < e->n_k; i++) {
        struct vk_kernel *k = &e->k[i];
        char *text = spirv_source(k->file, k->defines, e->err);
        if (!text)
            return -1;
        int rc = spirv_compile(text, k->name, &k->words, &k->n_words, e->err);
        if (rc == 0 && o && o->dump_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.comp", o->dump_dir, k->name);
            rc = write_file(path, text, strlen(text), e->err);
            snprintf(path, sizeof path, "%s/%s.spv", o->dump_dir, k->name);
            if (rc == 0)
                rc = write_file(path, k->words, k->n_words * 4, e->err);
        }
        free(text);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void print_ref(FILE *f, const struct ae_gpu_ref *r)
{
    if (r->space == AE_GPU_NONE)
        fprintf(f, "{0}");
    else
        fprintf(f, "{%" PRIu32 ", %" PRId32 ", %" PRIu64 "u}", r->space, r->layer, r->offset);
}

static void print_list(struct vk_emitter *e, const char *name, const struct vk_list *l)
{
    FILE *f = e->out;
    fprintf(f, "static const struct ae_gpu_dispatch %s[] = {\n", name);
    for (uint32_t i = 0; i < l->n; i++) {
        const struct ae_gpu_dispatch *d = &l->d[i];
        char line[512];
        ir_print_node(e->g->nodes[l->node[i]], line, sizeof line);
        for (char *p = line; (p = strstr(p, "*/")); p++)
            p[1] = '|';
        fprintf(f, "    /* %s: %s */\n", e->k[d->kernel].name, line);
        fprintf(f, "    {%" PRIu32 ", %" PRIu32 ", {%" PRIu32 ", %" PRIu32 ", %" PRIu32 "}, {%" PRIu32 ", %" PRIu32 ", %" PRIu32
                "}, {", d->kernel, d->flags, d->groups[0], d->groups[1], d->groups[2], d->per_t[0], d->per_t[1], d->per_t[2]);
        int last = AE_GPU_MAX_REFS - 1;
        while (last > 0 && d->ref[last].space == AE_GPU_NONE)
            last--;
        for (int r = 0; r <= last; r++) {
            fprintf(f, "%s", r ? ", " : "");
            print_ref(f, &d->ref[r]);
        }
        fprintf(f, "}, {");
        int lastk = AE_GPU_MAX_CONSTS - 1;
        while (lastk > 0 && d->k[lastk] == 0)
            lastk--;
        for (int k = 0; k <= lastk; k++)
            fprintf(f, "%s%" PRIu32 "u", k ? ", " : "", d->k[k]);
        fprintf(f, "}},\n");
    }
    if (l->n == 0)
        fprintf(f, "    {0},\n");
    fprintf(f, "};\n\n");
}

/* ---- Which dispatches wait, and their order -------------------------------------------------------------- */

/* The reference slot each kernel file writes; every other reference is read. */
static int write_slot(const char *file)
{
    static const struct {
        const char *file;
        int slot;
    } slots[] = {
        {"get_rows.comp", 3}, {"matvec.comp", 3}, {"matvec_q8.comp", 3}, {"matmul.comp", 3}, {"matmul_coop.comp", 3},
        {"dequant_f16.comp", 2}, {"rms_norm.comp", 3}, {"layer_norm.comp", 2}, {"softmax.comp", 2}, {"rope.comp", 2}, {"attention.comp", 4},
        {"kv_store.comp", 2}, {"ew.comp", 2}, {"copy.comp", 2},
    };
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        if (!strcmp(slots[i].file, file))
            return slots[i].slot;
    return -1;
}

/* A byte range of a space the kernels write (the arena, a layer's K or V cache). */
struct range {
    uint32_t space;
    int32_t layer;
    uint64_t lo, hi;
};

static bool overlap(const struct range *a, const struct range *b)
{
    return a->space == b->space && a->layer == b->layer && a->lo < b->hi && b->lo < a->hi;
}

/* The bytes a reference of a dispatch for node `at` may touch: the arena buffer that holds its offset
 * among those live at that node (live buffers never share bytes), from the offset to the buffer's end;
 * the GPU's own room after the plan to its end; a whole cache for the KV spaces. false for the read-only
 * spaces. */
static bool ref_range(const struct vk_emitter *e, const struct ae_gpu_ref *r, uint32_t at, struct range *out)
{
    if (r->space != AE_GPU_ARENA && r->space != AE_GPU_KV_K && r->space != AE_GPU_KV_V)
        return false;
    *out = (struct range){r->space, r->layer, 0, UINT64_MAX};
    if (r->space != AE_GPU_ARENA)
        return true;
    const struct pass_plan *plan = &e->c->plan;
    out->lo = r->offset;
    out->hi = r->offset >= plan->peak ? e->arena_bytes : plan->peak;
    for (uint32_t b = 0; b < plan->n; b++) {
        const struct plan_buffer *pb = &plan->buf[b];
        if (pb->first <= at && at <= pb->last && pb->offset <= r->offset && r->offset < pb->offset + pb->size) {
            out->hi = pb->offset + pb->size;
            break;
        }
    }
    return true;
}

/* The ranges a dispatch reads and writes (up to AE_GPU_MAX_REFS of them). */
struct access {
    struct range r[AE_GPU_MAX_REFS];
    bool write[AE_GPU_MAX_REFS];
    uint32_t n;
};

static void access_of(const struct vk_emitter *e, const struct vk_list *l, uint32_t i, struct access *a)
{
    const struct ae_gpu_dispatch *d = &l->d[i];
    const int ws = write_slot(e->k[d->kernel].file);
    a->n = 0;
    for (int r = 0; r < AE_GPU_MAX_REFS; r++)
        if (ref_range(e, &d->ref[r], l->node[i], &a->r[a->n]))
            a->write[a->n++] = r == ws || ws < 0;
}

/* Whether b (after a) must wait for a: one writes what the other reads or writes. */
static bool conflict(const struct access *a, const struct access *b)
{
    for (uint32_t i = 0; i < a->n; i++)
        for (uint32_t j = 0; j < b->n; j++)
            if ((a->write[i] || b->write[j]) && overlap(&a->r[i], &b->r[j]))
                return true;
    return false;
}

/* Orders the dispatches in waves: wave 0 depends on nothing before it, wave k on something in wave k - 1
 * and nothing later. A dispatch moves earlier only past dispatches it does not conflict with, so every
 * dependency keeps its order; within a wave nothing conflicts, so only the first dispatch of each wave
 * waits (AE_GPU_WAIT), and the rest may overlap on the device. */
static int schedule_waves(struct vk_emitter *e, struct vk_list *l)
{
    if (l->n == 0)
        return 0;
    struct access *acc = malloc(l->n * sizeof *acc);
    uint32_t *wave = calloc(l->n, sizeof *wave), *order = malloc(l->n * sizeof *order);
    struct ae_gpu_dispatch *d = malloc(l->n * sizeof *d);
    uint32_t *node = malloc(l->n * sizeof *node);
    int rc = 0;
    if (!acc || !wave || !order || !d || !node) {
        rc = ae_fail(e->err, "out of memory");
        goto done;
    }
    uint32_t n_waves = 0;
    for (uint32_t j = 0; j < l->n; j++) {
        access_of(e, l, j, &acc[j]);
        for (uint32_t i = 0; i < j; i++)
            if (wave[i] + 1 > wave[j] && conflict(&acc[i], &acc[j]))
                wave[j] = wave[i] + 1;
        if (wave[j] + 1 > n_waves)
            n_waves = wave[j] + 1;
    }
    uint32_t k = 0;
    for (uint32_t w = 0; w < n_waves; w++)
        for (uint32_t j = 0; j < l->n; j++)
            if (wave[j] == w)
                order[k++] = j;
    for (uint32_t i = 0; i < l->n; i++) {
        d[i] = l->d[order[i]];
        node[i] = l->node[order[i]];
        d[i].flags &= ~AE_GPU_WAIT;
        if (i > 0 && wave[order[i]] != wave[order[i - 1]])
            d[i].flags |= AE_GPU_WAIT;
    }
    memcpy(l->d, d, l->n * sizeof *d);
    memcpy(l->node, node, l->n * sizeof *node);
done:
    free(acc);
    free(wave);
    free(order);
    free(d);
    free(node);
    return rc;
}

/* What the kernels of a list need together. */
static uint32_t list_needs(const struct vk_emitter *e, const struct vk_list *l)
{
    uint32_t needs = 0;
    for (uint32_t i = 0; i < l->n; i++)
        needs |= e->k[l->d[i].kernel].needs;
    return needs;
}

static void print_kernels(struct vk_emitter *e)
{
    FILE *f = e->out;
    fprintf(f, "/* ---- The Vulkan kernels: SPIR-V compiled by libshaderc from shaders/ ---- */\n\n");
    for (uint32_t i = 0; i < e->n_k; i++) {
        const struct vk_kernel *k = &e->k[i];
        fprintf(f, "/* %s: shaders/%s with", k->name, k->file);
        for (const char *d = k->defines; *d; d++)
            fputc(*d == '\n' ? ';' : *d == '*' && d[1] == '/' ? '|' : *d, f);
        fprintf(f, " */\nstatic const uint32_t gpu_spv_%" PRIu32 "[] = {", i);
        for (size_t w = 0; w < k->n_words; w++)
            fprintf(f, "%s0x%08" PRIx32 "u,", w % 8 ? " " : "\n    ", k->words[w]);
        fprintf(f, "\n};\n\n");
    }
    fprintf(f, "static const struct ae_gpu_kernel gpu_kernels[] = {\n");
    for (uint32_t i = 0; i < e->n_k; i++)
        fprintf(f, "    {\"%s\", gpu_spv_%" PRIu32 ", %zu, %" PRIu32 "},\n", e->k[i].name, i, e->k[i].n_words, e->k[i].needs);
    fprintf(f, "};\n\n");
}

int emit_vk(FILE *out, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
            const struct emit_vk_options *o, ae_error *err)
{
    if (!c->plan.done)
        return ae_fail(err, "the Vulkan backend needs the memory plan: memplan cannot be disabled");
    if (c->plan.n && c->opt.alignment % 16 != 0)
        return ae_fail(err, "the Vulkan kernels need a memory plan aligned to 16 bytes, not %" PRIu64,
                       (uint64_t)c->opt.alignment);
    struct vk_emitter e = {.out = out, .g = g, .c = c, .pb = pb, .err = err};
    /* [step][variant]: step 0 decode, 1 prefill; variant 0 portable, 1 with what faster devices have. */
    struct vk_list lists[2][2] = {{{0}}};
    static const uint32_t fast[2] = {AE_GPU_NEED_INT_DOT, AE_GPU_NEED_COOPMAT_NV};
    static const char *const names[2][2] = {{"gpu_decode", "gpu_decode_fast"}, {"gpu_prefill", "gpu_prefill_fast"}};
    uint64_t logits[2] = {0, 0};
    int rc = -1;
    e.ref = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *e.ref);
    if (!e.ref) {
        ae_fail(err, "out of memory");
        goto done;
    }
    if (assign_storage(&e) < 0)
        goto done;
    for (int s = 0; s < 2; s++) {
        if (lower_step(&e, &lists[s][0], s == 0, 0) < 0 || lower_step(&e, &lists[s][1], s == 0, fast[s]) < 0 ||
            logits_offset(&e, s == 0, &logits[s]) < 0)
            goto done;
        if (!list_needs(&e, &lists[s][1])) /* nothing faster: one variant */
            lists[s][1].n = 0;
        if (schedule_waves(&e, &lists[s][0]) < 0 || schedule_waves(&e, &lists[s][1]) < 0)
            goto done;
    }
    if (compile_kernels(&e, o) < 0)
        goto done;
    print_kernels(&e);
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 2; v++)
            if (v == 0 || lists[s][v].n)
                print_list(&e, names[s][v], &lists[s][v]);
    fprintf(out, "static const struct ae_gpu_model gpu_model = {\n");
    fprintf(out, "    .kernels = gpu_kernels,\n    .n_kernels = %" PRIu32 ",\n", e.n_k);
    for (int s = 1; s >= 0; s--) {
        fprintf(out, "    .%s = {{%s, %" PRIu32 ", %" PRIu64 "u, 0}", s ? "prefill" : "decode", names[s][0], lists[s][0].n,
                logits[s]);
        if (lists[s][1].n)
            fprintf(out, ", {%s, %" PRIu32 ", %" PRIu64 "u, %" PRIu32 "}},\n", names[s][1], lists[s][1].n, logits[s],
                    list_needs(&e, &lists[s][1]));
        else
            fprintf(out, ", {0}},\n");
    }
    fprintf(out, "    .arena_bytes = %" PRIu64 "u,\n    .alignment = %" PRIu64 ",\n};\n\n", e.arena_bytes,
            (uint64_t)c->opt.alignment);
    rc = ferror(out) ? ae_fail(err, "writing the Vulkan part of the C file failed") : 0;
done:
    for (uint32_t i = 0; i < e.n_k; i++)
        free(e.k[i].words);
    free(e.k);
    free(e.ref);
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 2; v++) {
            free(lists[s][v].d);
            free(lists[s][v].node);
        }
    return rc;
}
