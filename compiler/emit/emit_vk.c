/* The Vulkan printer (emit_vk.h).
 *
 * References: the lowering's references become addresses in the program's buffer spaces (ae_gpu.h): the
 * arena at the memory plan's offset (the plan's 64-byte alignment also serves the kernels, whose widest
 * loads are 16 bytes), a weight at its offset in the device's weights buffer (every weight in GGUF rows
 * there: the upload unpacks interleaved ones), a layer's K or V cache, the token ids. The logits are the
 * arena value the last step copies. A recorded dispatch cannot know T, so a source whose offset moves
 * with T (the last-row view) is first copied, in the prefill step, into room after the plan's peak; in
 * decode, T = 1 and the offset is a constant.
 *
 * Steps: each lowering step becomes one dispatch (and a copy first where a source moves with T). A
 * dispatch's first reference is always the step's parameters; the kernel's own
 * references and constants follow in the order its file names them (#define X_REF 1 ...). Rows that
 * scale with T are a count and a flag (the kernel multiplies by the T it reads), and the workgroups
 * along that axis groups * ceil(T / per_t), so one dispatch serves every T. Kernels are (file, #defines)
 * pairs, compiled once however many dispatches use them; a step's elementwise epilogue is the EPILOGUE
 * macro of its kernel.
 *
 * Variants: the prefill step is lowered twice, once with the portable kernels and once with those that
 * need cooperative matrices; a device runs the faster variant where it has what it needs. (Decode has
 * one: on the H100 the portable product with f32 activations outran one with 8-bit activations and
 * integer dot products, 163 against 143 tokens/s for a 7B Q4_0 model.)
 *
 * Order: dispatches are put in waves (schedule_waves), so that independent ones (the Q, K and V
 * products) run together and only the first of each wave waits for the writes before it.
 */
#include "emit_vk.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ae_gpu.h"
#include "ae_kernels.h"
#include "ae_types.h"
#include "lower.h"
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

/* A list of dispatches being built, with the step (and so the node) each came from. */
struct vk_list {
    struct ae_gpu_dispatch *d;
    uint32_t *node;
    uint32_t n, cap;
};

struct vk_printer {
    const struct lower_program *lp;
    const struct pass_ctx *c;
    const struct pack_build *pb;
    uint64_t *weight_at;            /* per slot: offset in the device's weights buffer */
    uint64_t weights_bytes;
    uint64_t arena_bytes;           /* the plan's peak, then the GPU's own room */
    uint64_t *copy_at;              /* per step: where its T-moving source is copied (prefill), or 0 */
    uint64_t logits_offset;
    struct vk_kernel *k;
    uint32_t n_k, cap_k;
    bool decode;                    /* printing the decode step (T = 1) */
    uint32_t use;                   /* the enum ae_gpu_need bits this variant may use */
    struct vk_list *list;
    ae_error *err;
};

static int step_error(struct vk_printer *e, const struct lower_step *s, const char *what)
{
    char line[256];
    ir_print_node(e->lp->g->nodes[s->node], line, sizeof line);
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

/* ---- Kernels and dispatches ------------------------------------------------------------------------ */

/* The index of kernel (file, defines), added when new; name says what it is ("matvec_q4_0"), needs what
 * it needs of the device. */
static int kernel(struct vk_printer *e, const char *file, const char *defines, const char *name, uint32_t needs)
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
    uint32_t same = 0; /* names are unique: a second variant of a name gets a number */
    const size_t len = strlen(name);
    for (uint32_t i = 0; i < e->n_k; i++)
        if (!strncmp(e->k[i].name, name, len) && (e->k[i].name[len] == 0 || e->k[i].name[len] == '_'))
            same++;
    if (same)
        snprintf(k->name, sizeof k->name, "%s_%" PRIu32, name, same);
    else
        snprintf(k->name, sizeof k->name, "%s", name);
    return (int)e->n_k++;
}

/* A new dispatch of kernel k for step s, its first reference the step's parameters. */
static struct ae_gpu_dispatch *dispatch(struct vk_printer *e, int k, uint32_t node)
{
    if (k < 0)
        return NULL;
    struct vk_list *l = e->list;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? 2 * l->cap : 256;
        struct ae_gpu_dispatch *d = realloc(l->d, cap * sizeof *d);
        if (d)
            l->d = d;
        uint32_t *nd = d ? realloc(l->node, cap * sizeof *nd) : NULL;
        if (!d || !nd) {
            ae_fail(e->err, "out of memory");
            return NULL;
        }
        l->node = nd;
        l->cap = cap;
    }
    struct ae_gpu_dispatch *d = &l->d[l->n];
    memset(d, 0, sizeof *d);
    d->kernel = (uint32_t)k;
    d->ref[0] = (struct ae_gpu_ref){AE_GPU_STEP, 0, 0};
    l->node[l->n++] = node;
    return d;
}

/* Workgroups along axis i: count (times ceil(T / per) when times_t). */
static void groups(struct ae_gpu_dispatch *d, int i, uint32_t count, bool times_t, uint32_t per)
{
    d->groups[i] = count;
    d->per_t[i] = times_t ? per : 0;
}

/* ---- Sizes and references -------------------------------------------------------------------------- */

/* A row count k or k * T (in decode: a constant, T = 1); fails for P or a constant plus a T term. */
static int count(struct vk_printer *e, const struct lower_step *s, struct lower_size z, uint32_t *n, bool *times_t)
{
    if (z.p != 0 || (z.t != 0 && z.k != 0) || z.k < 0 || z.t < 0 || z.k > UINT32_MAX || z.t > UINT32_MAX)
        return step_error(e, s, "a size the kernels cannot take (only k or k * T)");
    *times_t = z.t != 0 && !e->decode;
    *n = (uint32_t)(z.t != 0 ? z.t : z.k);
    return 0;
}

/* The address of a lowering reference in this step (decode: T = 1), or -1 (a reference that moves with T
 * in prefill, which the caller copies first, or one the kernels cannot reach). */
static int ref_of(struct vk_printer *e, const struct lower_step *s, struct lower_ref r, struct ae_gpu_ref *out)
{
    if (r.offset.p != 0)
        return step_error(e, s, "a reference that moves with P");
    int64_t off = r.offset.k + (e->decode ? r.offset.t : 0);
    if (!e->decode && r.offset.t != 0)
        return step_error(e, s, "a reference that moves with T");
    if (off < 0)
        return step_error(e, s, "a reference before its buffer");
    switch (r.base) {
    case LOWER_NOWHERE:
        *out = (struct ae_gpu_ref){AE_GPU_NONE, 0, 0};
        return 0;
    case LOWER_TOKENS:
        *out = (struct ae_gpu_ref){AE_GPU_TOKENS, 0, (uint64_t)off};
        return 0;
    case LOWER_ARENA:
        *out = (struct ae_gpu_ref){AE_GPU_ARENA, 0, (uint64_t)off};
        return 0;
    case LOWER_LOGITS:
        *out = (struct ae_gpu_ref){AE_GPU_ARENA, 0, e->logits_offset};
        return 0;
    case LOWER_WEIGHTS:
        if (r.slot >= e->pb->n_weights)
            return step_error(e, s, "a weight outside the pack");
        *out = (struct ae_gpu_ref){AE_GPU_WEIGHTS, 0, e->weight_at[r.slot] + (uint64_t)off};
        return 0;
    case LOWER_K_CACHE:
    case LOWER_V_CACHE:
        *out = (struct ae_gpu_ref){r.base == LOWER_K_CACHE ? AE_GPU_KV_K : AE_GPU_KV_V, r.layer, (uint64_t)off};
        return 0;
    }
    return step_error(e, s, "a reference of an unknown kind");
}

/* An f32 source: an activation, or an f32 weight; a prefill source that moves with T was copied to
 * copy_at[step] first. */
static int source(struct vk_printer *e, const struct lower_step *s, struct lower_ref r, struct ae_gpu_ref *out)
{
    if (!e->decode && r.offset.t != 0 && r.base == LOWER_ARENA) {
        *out = (struct ae_gpu_ref){AE_GPU_ARENA, 0, e->copy_at[s - e->lp->steps]};
        return 0;
    }
    if (ref_of(e, s, r, out) < 0)
        return -1;
    if (out->space == AE_GPU_ARENA || (out->space == AE_GPU_WEIGHTS && r.dtype == AE_TYPE_F32))
        return 0;
    return step_error(e, s, "an operand that is not an f32 value in memory");
}

/* ---- Epilogues --------------------------------------------------------------------------------------- */

/* Appends "EPILOGUE(v, r, c, n) ...;" for the step's elementwise steps, their operands taking reference
 * slots from first_slot on. */
static int epilogue(struct vk_printer *e, const struct lower_step *s, const struct lower_ew *ew, uint32_t n_ew,
                    struct ae_gpu_dispatch *d, uint32_t first_slot, char *defines, size_t size)
{
    if (!n_ew)
        return 0;
    size_t len = strlen(defines);
    len += (size_t)snprintf(defines + len, size - len, "EPILOGUE(v, r, c, n)");
    uint32_t slot = first_slot;
    for (uint32_t i = 0; i < n_ew && len < size; i++) {
        char k[64];
        glsl_float(ew[i].k, k, sizeof k);
        switch (ew[i].op) {
        case IR_EW_ADD:
        case IR_EW_MUL:
            if (slot >= AE_GPU_MAX_REFS)
                return step_error(e, s, "too many operands for one kernel");
            if (source(e, s, ew[i].operand, &d->ref[slot]) < 0)
                return -1;
            len += (size_t)snprintf(defines + len, size - len, " v = v %c %s%" PRIu32 "%s;", ew[i].op == IR_EW_ADD ? '+' : '*',
                                    ew[i].operand_row ? "ew_row_operand(" : "ew_operand(", slot,
                                    ew[i].operand_row ? ", c)" : ", r, c, n)");
            slot++;
            break;
        case IR_EW_SCALE: len += (size_t)snprintf(defines + len, size - len, " v = v * %s;", k); break;
        case IR_EW_SILU: len += (size_t)snprintf(defines + len, size - len, " v = ew_silu(v);"); break;
        case IR_EW_GELU: len += (size_t)snprintf(defines + len, size - len, " v = ew_gelu(v);"); break;
        case IR_EW_SOFTCAP: len += (size_t)snprintf(defines + len, size - len, " v = ew_softcap(v, %s);", k); break;
        case IR_EW_NONE:
        case IR_EW_STEP_COUNT:
        default:
            return step_error(e, s, "an elementwise step the kernels do not know");
        }
    }
    if (len + 2 >= size)
        return step_error(e, s, "its elementwise steps are too long for one kernel");
    defines[len++] = '\n';
    defines[len] = 0;
    return 0;
}

/* ---- Steps ------------------------------------------------------------------------------------------- */

/* Whether the kernels read weights of this type (every type of the CPU's). */
static bool vk_supports(uint32_t type)
{
    switch (type) {
    case AE_TYPE_F32: case AE_TYPE_F16: case AE_TYPE_BF16: case AE_TYPE_Q4_0: case AE_TYPE_Q4_1: case AE_TYPE_Q5_0:
    case AE_TYPE_Q5_1: case AE_TYPE_Q8_0: case AE_TYPE_Q2_K: case AE_TYPE_Q3_K: case AE_TYPE_Q4_K: case AE_TYPE_Q5_K:
    case AE_TYPE_Q6_K: case AE_TYPE_IQ4_NL: case AE_TYPE_IQ4_XS: case AE_TYPE_TQ1_0: case AE_TYPE_TQ2_0:
        return true;
    default:
        return false;
    }
}

/* Whether the tensor-core prefill takes a weight: quantized or f16 rows of whole 32-value blocks (f32
 * and bf16 weights stay on the exact f32 kernels). */
static bool coop_weight(uint32_t type, int64_t k)
{
    return type != AE_TYPE_F32 && type != AE_TYPE_BF16 && k % 32 == 0;
}

static int print_get_rows(struct vk_printer *e, const struct lower_step *s, uint32_t node)
{
    const uint32_t type = s->in[0].dtype;
    const struct ae_type_info *ti = ae_type_info(type);
    if (!ti || !vk_supports(type) || (ti->block_size > 1 && s->cols % 32 != 0))
        return step_error(e, s, "no embedding kernel for this weight type");
    char defines[64], name[64];
    snprintf(defines, sizeof defines, "WTYPE %" PRIu32 "\n", type);
    snprintf(name, sizeof name, "get_rows_%s", ti->name);
    struct ae_gpu_dispatch *d = dispatch(e, kernel(e, "get_rows.comp", defines, name, 0), node);
    uint32_t rows;
    bool t;
    if (!d || count(e, s, s->rows, &rows, &t) < 0 || ref_of(e, s, s->in[1], &d->ref[1]) < 0 ||
        ref_of(e, s, s->in[0], &d->ref[2]) < 0 || ref_of(e, s, s->out, &d->ref[3]) < 0)
        return -1;
    const uint32_t D = (uint32_t)s->cols, threads = D / 8 > D % 8 ? D / 8 : D % 8;
    d->k[0] = D;
    d->k[1] = (uint32_t)s->p.get_rows.n_rows;
    groups(d, 0, (threads + 63) / 64, false, 0);
    groups(d, 1, rows, t, 1);
    groups(d, 2, 1, false, 0);
    return 0;
}

static int print_matmul(struct vk_printer *e, const struct lower_step *s, uint32_t node)
{
    const uint32_t type = s->in[1].dtype;
    const int64_t N = s->p.matmul.n, K = s->p.matmul.k;
    const struct ae_type_info *ti = ae_type_info(type);
    if (!ti || !vk_supports(type))
        return step_error(e, s, "no Vulkan kernel for this weight type");
    if (ti->block_size > 1 && K % 32 != 0)
        return step_error(e, s, "rows that are not whole blocks");
    uint32_t rows;
    bool t;
    if (count(e, s, s->rows, &rows, &t) < 0)
        return -1;
    const bool vec = !t;
    if (vec && rows != 1)
        return step_error(e, s, "a matrix-vector product of more than one row");
    /* Tensor cores for the prefill products of quantized and f16 weights, where the device has them. */
    const bool coop = !vec && (e->use & AE_GPU_NEED_COOPMAT_NV) && coop_weight(type, K);
    const char *file = coop ? "matmul_coop.comp" : vec ? "matvec.comp" : "matmul.comp";
    struct ae_gpu_ref w = {0};
    if (ref_of(e, s, s->in[1], &w) < 0)
        return -1;
    char defines[DEFINES_MAX], name[64];
    snprintf(defines, sizeof defines, "WTYPE %" PRIu32 "\n", type);
    struct ae_gpu_dispatch tmp = {0};
    if (epilogue(e, s, s->ew, s->n_ew, &tmp, 4, defines, sizeof defines) < 0)
        return -1;
    snprintf(name, sizeof name, "%.*s_%s%s", (int)(strchr(file, '.') - file), file, ti->name, s->n_ew ? "_ew" : "");
    struct ae_gpu_dispatch *d =
        dispatch(e, kernel(e, file, defines, name, coop ? AE_GPU_NEED_COOPMAT_NV : 0), node);
    if (!d)
        return -1;
    memcpy(&d->ref[4], &tmp.ref[4], sizeof d->ref - 4 * sizeof d->ref[0]);
    if (source(e, s, s->in[0], &d->ref[1]) < 0 || ref_of(e, s, s->out, &d->ref[3]) < 0)
        return -1;
    d->ref[2] = w;
    d->k[0] = (uint32_t)N;
    d->k[1] = (uint32_t)K;
    if (vec) {
        groups(d, 0, (uint32_t)((N + 7) / 8), false, 0);
        groups(d, 1, 1, false, 0);
    } else {
        d->k[2] = rows;
        d->k[3] = 1;
        groups(d, 0, (uint32_t)((N + (coop ? 127 : 63)) / (coop ? 128 : 64)), false, 0);
        groups(d, 1, rows, true, 64);
    }
    groups(d, 2, 1, false, 0);
    return 0;
}

/* The kernels of one workgroup per row: rms_norm, layer_norm, softmax, with the step's epilogue. */
static int print_row_kernel(struct vk_printer *e, const struct lower_step *s, uint32_t node, const char *file,
                            const char *name)
{
    char defines[DEFINES_MAX] = "";
    struct ae_gpu_dispatch tmp = {0};
    if (epilogue(e, s, s->ew, s->n_ew, &tmp, 4, defines, sizeof defines) < 0)
        return -1;
    struct ae_gpu_dispatch *d = dispatch(e, kernel(e, file, defines, name, 0), node);
    uint32_t rows;
    bool t;
    if (!d || count(e, s, s->rows, &rows, &t) < 0 || source(e, s, s->in[0], &d->ref[1]) < 0 ||
        ref_of(e, s, s->out, &d->ref[3]) < 0)
        return -1;
    memcpy(&d->ref[4], &tmp.ref[4], sizeof d->ref - 4 * sizeof d->ref[0]);
    d->k[0] = (uint32_t)s->cols;
    groups(d, 0, rows, t, 1);
    groups(d, 1, 1, false, 0);
    groups(d, 2, 1, false, 0);
    return 0;
}

/* One copy: the index space n (n[0] times T when t0), source x + x_off elements with strides xs, dest y +
 * y_off elements with strides ys (copy.comp). */
static int copy(struct vk_printer *e, uint32_t node, const uint32_t n[4], bool t0, struct ae_gpu_ref x, uint64_t x_off,
                const uint32_t xs[4], struct ae_gpu_ref y, uint64_t y_off, const uint32_t ys[4])
{
    struct ae_gpu_dispatch *d = dispatch(e, kernel(e, "copy.comp", "", "copy", 0), node);
    if (!d)
        return -1;
    d->ref[1] = x;
    d->ref[1].offset += 4 * x_off;
    d->ref[2] = y;
    d->ref[2].offset += 4 * y_off;
    for (int i = 0; i < 4; i++) {
        d->k[i] = n[i];
        d->k[4 + i] = xs[i];
        d->k[8 + i] = ys[i];
    }
    const uint64_t inner = (uint64_t)n[1] * n[2] * n[3];
    groups(d, 0, (uint32_t)((inner + 255) / 256), false, 0);
    groups(d, 1, n[0], t0, 1);
    groups(d, 2, 1, false, 0);
    return 0;
}

/* A [outer, len, inner] view as copy.comp's index space: outer at n[0] (times T or not). */
static int outer_inner(struct vk_printer *e, const struct lower_step *s, struct lower_size outer, struct lower_size inner,
                       uint32_t *o, bool *t0, uint32_t *in)
{
    bool ti;
    if (count(e, s, outer, o, t0) < 0 || count(e, s, inner, in, &ti) < 0)
        return -1;
    if (ti)
        return step_error(e, s, "a copy whose inner size moves with T");
    return 0;
}

static int print_slice(struct vk_printer *e, const struct lower_step *s, uint32_t node)
{
    uint32_t o, in;
    bool t0;
    struct ae_gpu_ref x, y;
    if (outer_inner(e, s, s->p.slice.outer, s->p.slice.inner, &o, &t0, &in) < 0 || source(e, s, s->in[0], &x) < 0 ||
        ref_of(e, s, s->out, &y) < 0)
        return -1;
    const uint32_t len = (uint32_t)s->p.slice.len, x_len = (uint32_t)s->p.slice.x_len;
    const uint32_t n[4] = {o, 1, len, in}, xs[4] = {x_len * in, 0, in, 1}, ys[4] = {len * in, 0, in, 1};
    return copy(e, node, n, t0, x, (uint64_t)s->p.slice.start * in, xs, y, 0, ys);
}

static int print_concat(struct vk_printer *e, const struct lower_step *s, uint32_t node)
{
    uint32_t o, in;
    bool t0;
    struct ae_gpu_ref a, b, y;
    if (outer_inner(e, s, s->p.concat.outer, s->p.concat.inner, &o, &t0, &in) < 0 || source(e, s, s->in[0], &a) < 0 ||
        source(e, s, s->in[1], &b) < 0 || ref_of(e, s, s->out, &y) < 0)
        return -1;
    const uint32_t al = (uint32_t)s->p.concat.a_len, bl = (uint32_t)s->p.concat.b_len;
    const uint32_t na[4] = {o, 1, al, in}, nb[4] = {o, 1, bl, in};
    const uint32_t as[4] = {al * in, 0, in, 1}, bs[4] = {bl * in, 0, in, 1}, ys[4] = {(al + bl) * in, 0, in, 1};
    if (copy(e, node, na, t0, a, 0, as, y, 0, ys) < 0)
        return -1;
    return copy(e, node, nb, t0, b, 0, bs, y, (uint64_t)al * in, ys);
}

static int print_permute(struct vk_printer *e, const struct lower_step *s, uint32_t node)
{
    uint32_t xd[4], n[4], xs[4], ys[4], ps[4];
    bool t0 = false;
    for (int i = 0; i < 4; i++) {
        bool t;
        if (count(e, s, s->p.permute.dims[i], &xd[i], &t) < 0)
            return -1;
        if (t && i > 0)
            return step_error(e, s, "a permutation with T other than in its first dimension");
        t0 |= t;
    }
    if (t0 && s->p.permute.perm[0] != 0)
        return step_error(e, s, "a permutation that moves T");
    xs[3] = 1;
    for (int i = 2; i >= 0; i--)
        xs[i] = xs[i + 1] * xd[i + 1];
    for (int i = 0; i < 4; i++) {
        n[i] = xd[s->p.permute.perm[i]];
        ps[i] = xs[s->p.permute.perm[i]];
    }
    ys[3] = 1;
    for (int i = 2; i >= 0; i--)
        ys[i] = ys[i + 1] * n[i + 1];
    struct ae_gpu_ref x, y;
    if (source(e, s, s->in[0], &x) < 0 || ref_of(e, s, s->out, &y) < 0)
        return -1;
    return copy(e, node, n, t0, x, 0, ps, y, 0, ys);
}

static int print_step(struct vk_printer *e, const struct lower_step *s)
{
    const uint32_t node = s->node;
    /* A prefill source that moves with T (the last-row view) is copied first to room of its own. */
    const uint64_t moved = e->decode ? 0 : e->copy_at[s - e->lp->steps];
    if (moved) {
        const struct lower_ref *r = &s->in[0];
        if (r->base != LOWER_ARENA || r->offset.t % 4 != 0 || (r->offset.k + r->offset.t) < 0)
            return step_error(e, s, "a source that moves with T and is not one row of an activation");
        const uint32_t row = (uint32_t)(r->offset.t / 4), n[4] = {1, 1, 1, row}, st[4] = {row, row, row, 1};
        struct ae_gpu_ref x = {AE_GPU_ARENA, 0, (uint64_t)(r->offset.k + r->offset.t)}, y = {AE_GPU_ARENA, 0, moved};
        if (copy(e, node, n, false, x, 0, st, y, 0, st) < 0)
            return -1;
        struct ae_gpu_dispatch *d = &e->list->d[e->list->n - 1];
        d->k[12] = 1; /* the source is T - 1 rows further */
        d->k[13] = row;
    }
    switch (s->kind) {
    case LOWER_GET_ROWS:
        return print_get_rows(e, s, node);
    case LOWER_MATMUL:
        return print_matmul(e, s, node);
    case LOWER_EW: {
        char defines[DEFINES_MAX] = "";
        struct ae_gpu_dispatch tmp = {0};
        if (epilogue(e, s, s->ew, s->n_ew, &tmp, 3, defines, sizeof defines) < 0)
            return -1;
        struct ae_gpu_dispatch *d = dispatch(e, kernel(e, "ew.comp", defines, "ew", 0), node);
        uint32_t rows;
        bool t;
        if (!d || count(e, s, s->rows, &rows, &t) < 0 || source(e, s, s->in[0], &d->ref[1]) < 0 ||
            ref_of(e, s, s->out, &d->ref[2]) < 0)
            return -1;
        memcpy(&d->ref[3], &tmp.ref[3], sizeof d->ref - 3 * sizeof d->ref[0]);
        d->k[0] = (uint32_t)s->cols;
        groups(d, 0, (uint32_t)((s->cols + 255) / 256), false, 0);
        groups(d, 1, rows, t, 1);
        groups(d, 2, 1, false, 0);
        return 0;
    }
    case LOWER_RMS_NORM: {
        if (print_row_kernel(e, s, node, "rms_norm.comp", "rms_norm") < 0)
            return -1;
        struct ae_gpu_dispatch *d = &e->list->d[e->list->n - 1];
        if (s->n_in > 1 && s->in[1].base != LOWER_NOWHERE && source(e, s, s->in[1], &d->ref[2]) < 0)
            return -1;
        d->k[3] = fbits(s->p.norm.eps);
        return 0;
    }
    case LOWER_LAYER_NORM:
        if (print_row_kernel(e, s, node, "layer_norm.comp", "layer_norm") < 0)
            return -1;
        e->list->d[e->list->n - 1].k[3] = fbits(s->p.norm.eps);
        return 0;
    case LOWER_SOFTMAX:
        if (print_row_kernel(e, s, node, "softmax.comp", "softmax") < 0)
            return -1;
        e->list->d[e->list->n - 1].k[3] = fbits(s->p.softmax.scale);
        return 0;
    case LOWER_ROPE: {
        struct ae_gpu_dispatch *d = dispatch(e, kernel(e, "rope.comp", "", "rope", 0), node);
        uint32_t rows;
        bool t;
        if (!d || count(e, s, s->rows, &rows, &t) < 0 || source(e, s, s->in[0], &d->ref[1]) < 0 ||
            ref_of(e, s, s->out, &d->ref[2]) < 0 || (s->n_in > 1 && ref_of(e, s, s->in[1], &d->ref[3]) < 0))
            return -1;
        if (s->n_ew)
            return step_error(e, s, "rope with an epilogue");
        if (rows != 1 || !(t || e->decode))
            return step_error(e, s, "rope expects [T, heads, head_dim]");
        d->k[1] = (uint32_t)s->p.rope.head_dim;
        d->k[2] = (uint32_t)s->p.rope.n_dims;
        d->k[3] = s->p.rope.neox;
        d->k[4] = fbits(powf(s->p.rope.freq_base, -2.0f / (float)s->p.rope.n_dims));
        d->k[5] = fbits(s->p.rope.freq_scale);
        d->k[6] = fbits(s->p.rope.attn_factor);
        groups(d, 0, (uint32_t)s->p.rope.heads, false, 0);
        groups(d, 1, 1, t, 1);
        groups(d, 2, 1, false, 0);
        return 0;
    }
    case LOWER_ATTENTION: {
        const int64_t H = s->p.attention.n_head, HKV = s->p.attention.n_head_kv;
        if (s->p.attention.head_dim_k > 256 || s->p.attention.head_dim_v > 256 || HKV <= 0 || H % HKV != 0)
            return step_error(e, s, "attention with head dims above 256 or heads not a multiple of the KV heads");
        struct ae_gpu_dispatch *d = dispatch(e, kernel(e, "attention.comp", "", "attention", 0), node);
        uint32_t rows;
        bool t;
        if (!d || count(e, s, s->rows, &rows, &t) < 0 || source(e, s, s->in[0], &d->ref[1]) < 0 ||
            ref_of(e, s, s->in[1], &d->ref[2]) < 0 || ref_of(e, s, s->in[2], &d->ref[3]) < 0 ||
            ref_of(e, s, s->out, &d->ref[4]) < 0)
            return -1;
        if (s->n_ew)
            return step_error(e, s, "attention with an epilogue");
        d->k[0] = (uint32_t)H;
        d->k[1] = (uint32_t)HKV;
        d->k[2] = (uint32_t)s->p.attention.head_dim_k;
        d->k[3] = (uint32_t)s->p.attention.head_dim_v;
        d->k[4] = fbits(s->p.attention.scale);
        d->k[5] = fbits(s->p.attention.softcap);
        d->k[6] = s->p.attention.window > 0 ? (uint32_t)s->p.attention.window : 0;
        groups(d, 0, (uint32_t)H, false, 0);
        groups(d, 1, 1, t, 1);
        groups(d, 2, 1, false, 0);
        return 0;
    }
    case LOWER_KV_STORE: {
        struct ae_gpu_dispatch *d = dispatch(e, kernel(e, "kv_store.comp", "", "kv_store", 0), node);
        uint32_t rows;
        bool t;
        if (!d || count(e, s, s->rows, &rows, &t) < 0 || source(e, s, s->in[0], &d->ref[1]) < 0 ||
            ref_of(e, s, s->out, &d->ref[2]) < 0)
            return -1;
        if (rows != 1)
            return step_error(e, s, "kv_store expects T rows");
        const uint32_t row = (uint32_t)s->p.kv_store.row_len;
        d->k[0] = row;
        groups(d, 0, (row + 255) / 256, false, 0);
        groups(d, 1, 1, t, 1);
        groups(d, 2, 1, false, 0);
        return 0;
    }
    case LOWER_SLICE:
        return print_slice(e, s, node);
    case LOWER_CONCAT:
        return print_concat(e, s, node);
    case LOWER_PERMUTE:
        return print_permute(e, s, node);
    case LOWER_COPY: {
        /* The logits: the last step's result already is an activation, read where it is. */
        if (s->out.base != LOWER_LOGITS)
            return step_error(e, s, "a copy other than the logits");
        return 0;
    }
    case LOWER_LAST_ROWS: /* the server's batched step runs on the CPU */
    case LOWER_KIND_COUNT:
        break;
    }
    return step_error(e, s, "a step kind the kernels do not know");
}

/* ---- Which dispatches wait, and their order ------------------------------------------------------------ */

/* The reference slot each kernel file writes; every other reference is read. */
static int write_slot(const char *file)
{
    static const struct {
        const char *file;
        int slot;
    } slots[] = {
        {"get_rows.comp", 3}, {"matvec.comp", 3}, {"matmul.comp", 3}, {"matmul_coop.comp", 3},
        {"rms_norm.comp", 3}, {"layer_norm.comp", 3}, {"softmax.comp", 3}, {"rope.comp", 2},
        {"attention.comp", 4}, {"kv_store.comp", 2}, {"ew.comp", 2}, {"copy.comp", 2},
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
static bool ref_range(const struct vk_printer *e, const struct ae_gpu_ref *r, uint32_t at, struct range *out)
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

/* The ranges a dispatch reads and writes. */
struct access {
    struct range r[AE_GPU_MAX_REFS];
    bool write[AE_GPU_MAX_REFS];
    uint32_t n;
};

static void access_of(const struct vk_printer *e, const struct vk_list *l, uint32_t i, struct access *a)
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

/* Orders the dispatches in waves: a dispatch's wave is one more than the latest wave of the earlier
 * dispatches it conflicts with. Stably sorted by wave, every dependency keeps its order; within a wave
 * nothing conflicts, so only the first dispatch of each wave waits (AE_GPU_WAIT) and the rest may
 * overlap on the device. */
static int schedule_waves(struct vk_printer *e, struct vk_list *l)
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

/* ---- Room of the GPU's own ----------------------------------------------------------------------------- */

/* After the plan's peak: each prefill copy of a source that moves with T. Also finds the logits and lays
 * out the device's weights buffer: every slot in GGUF rows, 64-byte aligned. */
static int lay_out(struct vk_printer *e)
{
    const struct lower_program *lp = e->lp;
    e->arena_bytes = (e->c->plan.peak + 255) / 256 * 256;
    e->weight_at = calloc(e->pb->n_weights ? e->pb->n_weights : 1, sizeof *e->weight_at);
    e->copy_at = calloc(lp->n_steps ? lp->n_steps : 1, sizeof *e->copy_at);
    if (!e->weight_at || !e->copy_at)
        return ae_fail(e->err, "out of memory");
    for (uint32_t w = 0; w < e->pb->n_weights; w++) {
        uint64_t bytes = e->pb->bytes[w];
        if (e->pb->layout[w] != AE_LAYOUT_ROWS &&
            ae_type_row_bytes(e->pb->type[w], (uint64_t)e->pb->k[w], &bytes, e->err) == 0)
            bytes *= (uint64_t)e->pb->n[w];
        e->weight_at[w] = e->weights_bytes;
        e->weights_bytes += (bytes + 63) / 64 * 64;
    }
    bool logits_found = false;
    for (uint32_t i = 0; i < lp->n_steps; i++) {
        const struct lower_step *s = &lp->steps[i];
        if (s->n_in > 0 && s->in[0].offset.t != 0 && s->in[0].base == LOWER_ARENA && s->kind != LOWER_COPY) {
            e->copy_at[i] = e->arena_bytes;
            e->arena_bytes += ((uint64_t)(s->in[0].offset.t > 0 ? s->in[0].offset.t : -s->in[0].offset.t) + 255) / 256 * 256;
        }
        if (s->kind == LOWER_COPY && s->out.base == LOWER_LOGITS) {
            if (s->in[0].base != LOWER_ARENA || s->in[0].offset.t != 0 || s->in[0].offset.p != 0)
                return step_error(e, s, "logits that are not one activation row");
            e->logits_offset = (uint64_t)s->in[0].offset.k;
            logits_found = true;
        }
    }
    if (!logits_found)
        return ae_fail(e->err, "the Vulkan backend found no logits in the program");
    return 0;
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

static int compile_kernels(struct vk_printer *e, const struct emit_vk_options *o)
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

static void print_list(const struct vk_printer *e, FILE *f, const char *name, const struct vk_list *l)
{
    fprintf(f, "static const struct ae_gpu_dispatch %s[] = {\n", name);
    for (uint32_t i = 0; i < l->n; i++) {
        const struct ae_gpu_dispatch *d = &l->d[i];
        char line[512];
        ir_print_node(e->lp->g->nodes[l->node[i]], line, sizeof line);
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

static uint32_t list_needs(const struct vk_printer *e, const struct vk_list *l)
{
    uint32_t needs = 0;
    for (uint32_t i = 0; i < l->n; i++)
        needs |= e->k[l->d[i].kernel].needs;
    return needs;
}

static void print_all(const struct vk_printer *e, FILE *f, struct vk_list lists[2][2])
{
    static const char *const names[2][2] = {{"gpu_decode", "gpu_decode_fast"}, {"gpu_prefill", "gpu_prefill_fast"}};
    fprintf(f, "/* ---- The Vulkan half: SPIR-V compiled by libshaderc from shaders/, and the steps' dispatches ---- */\n\n");
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
    fprintf(f, "/* Each weight in the device's weights buffer, as GGUF rows. */\n");
    fprintf(f, "static const struct ae_gpu_weight gpu_weights[] = {\n");
    for (uint32_t w = 0; w < e->pb->n_weights; w++)
        fprintf(f, "    {%" PRIu32 ", %" PRIu32 ", %" PRIu32 ", %" PRId64 ", %" PRId64 ", %" PRIu64 "u, %" PRIu64 "u},\n", w,
                e->pb->type[w], e->pb->layout[w], e->pb->n[w], e->pb->k[w], e->weight_at[w], e->pb->bytes[w]);
    if (!e->pb->n_weights)
        fprintf(f, "    {0},\n");
    fprintf(f, "};\n\n");
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 2; v++)
            if (v == 0 || lists[s][v].n)
                print_list(e, f, names[s][v], &lists[s][v]);
    fprintf(f, "static const struct ae_gpu_model gpu_model = {\n");
    fprintf(f, "    .kernels = gpu_kernels,\n    .n_kernels = %" PRIu32 ",\n", e->n_k);
    for (int s = 1; s >= 0; s--) {
        fprintf(f, "    .%s = {{%s, %" PRIu32 ", %" PRIu64 "u, 0}", s ? "prefill" : "decode", names[s][0], lists[s][0].n,
                e->logits_offset);
        if (lists[s][1].n)
            fprintf(f, ", {%s, %" PRIu32 ", %" PRIu64 "u, %" PRIu32 "}},\n", names[s][1], lists[s][1].n, e->logits_offset,
                    list_needs(e, &lists[s][1]));
        else
            fprintf(f, ", {0}},\n");
    }
    fprintf(f, "    .weights = gpu_weights,\n    .n_weights = %" PRIu32 ",\n    .weights_bytes = %" PRIu64 "u,\n",
            e->pb->n_weights, e->weights_bytes);
    fprintf(f, "    .arena_bytes = %" PRIu64 "u,\n    .alignment = %" PRIu64 ",\n    .runtime = &ae_gpu_runtime,\n};\n\n",
            e->arena_bytes,
            (uint64_t)e->c->opt.alignment);
}

static const struct lower_target vk_target = {
    .backend = "the Vulkan backend",
    .kernels = "Vulkan",
    .arena_alignment = 64,
    .matmul_supports = vk_supports,
};

int emit_vk(FILE *out, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
            const struct emit_vk_options *o, ae_error *err)
{
    if (c->opt.alignment % 16 != 0)
        return ae_fail(err, "the Vulkan kernels need a memory plan aligned to 16 bytes, not %" PRIu64,
                       (uint64_t)c->opt.alignment);
    struct lower_program lp;
    if (lower_program(&lp, g, c, pb, &vk_target, err) < 0)
        return -1;
    struct vk_printer e = {.lp = &lp, .c = c, .pb = pb, .err = err};
    /* [step][variant]: step 0 decode, 1 prefill; variant 0 portable, 1 with what faster devices have. */
    struct vk_list lists[2][2] = {{{0}}};
    static const uint32_t fast[2] = {0, AE_GPU_NEED_COOPMAT_NV}; /* decode has no faster variant */
    int rc = -1;
    char *text = NULL;
    size_t text_size = 0;
    if (lay_out(&e) < 0)
        goto done;
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 2; v++) {
            e.decode = s == 0;
            e.use = v ? fast[s] : 0;
            e.list = &lists[s][v];
            for (uint32_t i = 0; i < lp.n_steps; i++)
                if (print_step(&e, &lp.steps[i]) < 0)
                    goto done;
            if (v == 1 && !list_needs(&e, &lists[s][1])) /* nothing faster: one variant */
                lists[s][1].n = 0;
            if (schedule_waves(&e, &lists[s][v]) < 0)
                goto done;
        }
    if (compile_kernels(&e, o) < 0)
        goto done;
    FILE *mem = open_memstream(&text, &text_size);
    if (!mem) {
        ae_fail(err, "out of memory");
        goto done;
    }
    print_all(&e, mem, lists);
    if (fclose(mem) != 0) {
        ae_fail(err, "out of memory writing the Vulkan half");
        goto done;
    }
    rc = fwrite(text, 1, text_size, out) == text_size ? 0 : ae_fail(err, "writing the Vulkan half of the C file failed");
done:
    free(text);
    for (uint32_t i = 0; i < e.n_k; i++)
        free(e.k[i].words);
    free(e.k);
    free(e.weight_at);
    free(e.copy_at);
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 2; v++) {
            free(lists[s][v].d);
            free(lists[s][v].node);
        }
    lower_program_free(&lp);
    return rc;
}
