/* GGUF to IR: architecture dispatch, hyperparameters, and the pieces every decoder builder shares.
 *
 * import_model reads general.architecture and hands the file to its builder (import_<arch>.c). The
 * hyperparameters are read here once for all families, with llama.cpp's defaults for optional keys.
 * Tensors are looked up through import_weight, which checks that each exists with the shape and type
 * the graph needs before any node uses it, so errors name the tensor and never leave a broken graph.
 * The shared pieces (norms, projections, self-attention with rope and the KV cache, gated FFNs, the
 * lm head) reproduce llama.cpp's graph op for op.
 */
#include "import.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void import_options_init(struct import_options *o)
{
    memset(o, 0, sizeof *o);
    o->kv_type = AE_TYPE_F16;
    o->all_logits = false;
    o->n_ctx = 0;
}

static const struct arch_entry {
    const char *name;
    int (*build)(struct import_ctx *c);
    enum ir_rope_mode rope_mode;
} arch_table[] = {
    {"llama", import_build_llama, IR_ROPE_NORMAL},
    {"qwen2", import_build_qwen2, IR_ROPE_NEOX},
    {"phi3", import_build_phi3, IR_ROPE_NEOX},
    {"gemma2", import_build_gemma2, IR_ROPE_NEOX},
    {"qwen2moe", import_build_qwen2moe, IR_ROPE_NEOX},
    {"deepseek2", import_build_deepseek2, IR_ROPE_NORMAL},
};

/* The table row of the file's general.architecture; fails naming what is supported. */
static int find_arch(const ae_gguf *f, const struct arch_entry **out, ae_error *err)
{
    struct ae_str arch;
    int rc = ae_gguf_get_str(f, "general.architecture", &arch, err);
    if (rc < 0)
        return ae_fail_prefix(err, "%s", f->path);
    if (rc == 0)
        return ae_fail(err, "%s: metadata key 'general.architecture' is missing; supported architectures: %s",
                       f->path, import_supported_archs());
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (ae_str_eq(arch, arch_table[i].name)) {
            *out = &arch_table[i];
            return 0;
        }
    return ae_fail(err, "%s: architecture '%.*s' is not supported; supported architectures: %s", f->path,
                   (int)(arch.len > 64 ? 64 : arch.len), arch.ptr, import_supported_archs());
}

const char *import_supported_archs(void)
{
    return "llama, qwen2, phi3, gemma2, qwen2moe, deepseek2";
}

/* ---- Hyperparameters ------------------------------------------------------------------------------ */

int import_model_hparams(const ae_gguf *f, struct import_hparams *hp, ae_error *err)
{
    const struct arch_entry *entry;
    return find_arch(f, &entry, err) || import_read_hparams(f, entry->name, hp, err) ? -1 : 0;
}


/* "<arch>.<key>" into buf. */
static const char *arch_key(char *buf, size_t size, const char *arch, const char *key)
{
    snprintf(buf, size, "%s.%s", arch, key);
    return buf;
}

/* An integer key; a per-layer array is accepted when all its entries are equal. Returns 1 when found,
 * 0 when absent (and not required), -1 on error. */
static int read_u32(const ae_gguf *f, const char *arch, const char *key, bool required, uint32_t *out, ae_error *err)
{
    char k[160];
    arch_key(k, sizeof k, arch, key);
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(f, k);
    if (!kv) {
        if (required)
            return ae_fail(err, "%s: metadata key '%s' is missing; the %s graph needs it", f->path, k, arch);
        return 0;
    }
    if (kv->value.type == AE_GGUF_ARRAY) {
        const struct ae_gguf_array *a;
        if (ae_gguf_get_arr(f, k, AE_GGUF_TYPE_COUNT, &a, err) < 0)
            return ae_fail_prefix(err, "%s", f->path);
        if (a->n == 0 || a->elems || a->type == AE_GGUF_F32 || a->type == AE_GGUF_F64)
            return ae_fail(err, "%s: byte %" PRIu64 ": metadata key '%s' is an array of %s, expected an integer",
                           f->path, kv->offset, k, ae_gguf_type_name(a->type));
        int64_t v0 = ae_gguf_arr_int(a, 0);
        for (uint64_t i = 1; i < a->n; i++)
            if (ae_gguf_arr_int(a, i) != v0)
                return ae_fail(err, "%s: byte %" PRIu64 ": metadata key '%s' differs between layers (%" PRId64
                               " and %" PRId64 "); per-layer values are not supported",
                               f->path, kv->offset, k, v0, ae_gguf_arr_int(a, i));
        if (v0 < 0 || v0 > UINT32_MAX)
            return ae_fail(err, "%s: byte %" PRIu64 ": metadata key '%s' is %" PRId64 ", expected a 32-bit count",
                           f->path, kv->offset, k, v0);
        *out = (uint32_t)v0;
        return 1;
    }
    int rc = ae_gguf_get_u32(f, k, out, err);
    if (rc < 0)
        return ae_fail_prefix(err, "%s", f->path);
    return rc;
}

/* A bad value: "FILE: byte N: metadata key 'ARCH.KEY' is ...", the offset being the key's in the file (a
 * key that is absent has its default value, and the message says so). */
static int key_fail(const ae_gguf *f, const char *arch, const char *key, ae_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int key_fail(const ae_gguf *f, const char *arch, const char *key, ae_error *err, const char *fmt, ...)
{
    char k[160], what[512];
    arch_key(k, sizeof k, arch, key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const struct ae_gguf_kv *kv = ae_gguf_find_kv(f, k);
    if (kv)
        return ae_fail(err, "%s: byte %" PRIu64 ": metadata key '%s' %s", f->path, kv->offset, k, what);
    return ae_fail(err, "%s: metadata key '%s' (absent: the default) %s", f->path, k, what);
}

static int read_f32(const ae_gguf *f, const char *arch, const char *key, bool required, float *out, ae_error *err)
{
    char k[160];
    arch_key(k, sizeof k, arch, key);
    int rc = ae_gguf_get_f32(f, k, out, err);
    if (rc < 0)
        return ae_fail_prefix(err, "%s", f->path);
    if (rc == 0 && required)
        return ae_fail(err, "%s: metadata key '%s' is missing; the %s graph needs it", f->path, k, arch);
    return rc;
}

/* Counts that become tensor dimensions are bounded so that products of a few of them cannot overflow. */
#define MAX_DIM (1u << 24)

static int check_count(const ae_gguf *f, const char *arch, const char *key, uint32_t v, ae_error *err)
{
    if (v == 0 || v > MAX_DIM)
        return key_fail(f, arch, key, err, "is %" PRIu32 ", expected 1..%u", v, MAX_DIM);
    return 0;
}

/* A float that must be finite and at least lo (above it when open). */
static int check_float(const ae_gguf *f, const char *arch, const char *key, float v, float lo, bool open,
                       ae_error *err)
{
    if (!isfinite(v) || v < lo || (open && v == lo))
        return key_fail(f, arch, key, err, "is %g, expected a finite number %s %g", (double)v, open ? ">" : ">=",
                        (double)lo);
    return 0;
}

/* The keys of mixtures of experts and of latent attention, all optional here; the builders say which
 * their family needs (import_moe.c, import_deepseek2.c). */
static int read_expert_hparams(const ae_gguf *f, const char *arch, struct import_hparams *h, ae_error *err)
{
    h->expert_gating_func = IMPORT_GATING_SOFTMAX;
    char k[160];
    int rc;
    if (read_u32(f, arch, "expert_count", false, &h->n_expert, err) < 0 ||
        read_u32(f, arch, "expert_used_count", false, &h->n_expert_used, err) < 0 ||
        read_u32(f, arch, "expert_feed_forward_length", false, &h->n_ff_exp, err) < 0 ||
        read_u32(f, arch, "expert_shared_feed_forward_length", false, &h->n_ff_shexp, err) < 0 ||
        read_u32(f, arch, "expert_shared_count", false, &h->n_expert_shared, err) < 0 ||
        read_u32(f, arch, "leading_dense_block_count", false, &h->n_layer_dense_lead, err) < 0 ||
        read_f32(f, arch, "expert_weights_scale", false, &h->expert_weights_scale, err) < 0 ||
        read_u32(f, arch, "expert_gating_func", false, &h->expert_gating_func, err) < 0 ||
        read_u32(f, arch, "attention.q_lora_rank", false, &h->n_lora_q, err) < 0 ||
        read_u32(f, arch, "attention.kv_lora_rank", false, &h->n_lora_kv, err) < 0 ||
        read_f32(f, arch, "rope.scaling.yarn_log_multiplier", false, &h->rope_yarn_log_mul, err) < 0)
        return -1;
    if ((rc = ae_gguf_get_bool(f, arch_key(k, sizeof k, arch, "expert_weights_norm"), &h->expert_weights_norm, err)) < 0)
        return ae_fail_prefix(err, "%s", f->path);
    if (h->n_expert > MAX_DIM || h->n_expert_used > h->n_expert || (h->n_expert > 0) != (h->n_expert_used > 0))
        return ae_fail(err, "%s: %s.expert_count %" PRIu32 " and expert_used_count %" PRIu32 " do not agree: both 0, or "
                       "1 <= used <= count", f->path, arch, h->n_expert, h->n_expert_used);
    if (h->n_ff_exp > MAX_DIM || h->n_ff_shexp > MAX_DIM || h->n_expert_shared > 64 || h->n_lora_q > MAX_DIM ||
        h->n_lora_kv > MAX_DIM || h->n_layer_dense_lead > h->n_layer)
        return ae_fail(err, "%s: %s's expert or attention rank keys are out of range", f->path, arch);
    if (h->expert_gating_func == 0) /* files written before the key existed mean softmax */
        h->expert_gating_func = IMPORT_GATING_SOFTMAX;
    if (h->expert_gating_func != IMPORT_GATING_SOFTMAX && h->expert_gating_func != IMPORT_GATING_SIGMOID)
        return ae_fail(err, "%s: %s.expert_gating_func is %" PRIu32 "; supported: 1 (softmax), 2 (sigmoid)", f->path,
                       arch, h->expert_gating_func);
    if (!isfinite(h->expert_weights_scale) || !isfinite(h->rope_yarn_log_mul))
        return ae_fail(err, "%s: %s.expert_weights_scale or rope.scaling.yarn_log_multiplier is not finite", f->path,
                       arch);
    return 0;
}

int import_read_hparams(const ae_gguf *f, const char *arch, struct import_hparams *hp, ae_error *err)
{
    struct import_hparams h;
    memset(&h, 0, sizeof h);
    snprintf(h.arch, sizeof h.arch, "%s", arch);
    h.rope_mode = IR_ROPE_NORMAL;
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (!strcmp(arch, arch_table[i].name))
            h.rope_mode = arch_table[i].rope_mode;
    h.tied_embeddings = ae_gguf_find_tensor(f, "output.weight") == NULL;

    if (read_u32(f, arch, "embedding_length", true, &h.n_embd, err) < 0 ||
        read_u32(f, arch, "block_count", true, &h.n_layer, err) < 0 ||
        read_u32(f, arch, "feed_forward_length", true, &h.n_ff, err) < 0 ||
        read_u32(f, arch, "attention.head_count", true, &h.n_head, err) < 0 ||
        read_u32(f, arch, "context_length", true, &h.n_ctx_train, err) < 0)
        return -1;
    if (check_count(f, arch, "embedding_length", h.n_embd, err) || check_count(f, arch, "block_count", h.n_layer, err) ||
        check_count(f, arch, "feed_forward_length", h.n_ff, err) ||
        check_count(f, arch, "attention.head_count", h.n_head, err) ||
        check_count(f, arch, "context_length", h.n_ctx_train, err))
        return -1;
    h.n_head_kv = h.n_head;
    if (read_u32(f, arch, "attention.head_count_kv", false, &h.n_head_kv, err) < 0 ||
        check_count(f, arch, "attention.head_count_kv", h.n_head_kv, err))
        return -1;
    if (h.n_head % h.n_head_kv != 0)
        return key_fail(f, arch, "attention.head_count_kv", err, "is %" PRIu32 ", which does not divide head_count %"
                        PRIu32, h.n_head_kv, h.n_head);

    int has_k = 0, has_v = 0;
    if ((has_k = read_u32(f, arch, "attention.key_length", false, &h.head_dim_k, err)) < 0 ||
        (has_v = read_u32(f, arch, "attention.value_length", false, &h.head_dim_v, err)) < 0)
        return -1;
    if (!has_k || !has_v) {
        if (h.n_embd % h.n_head != 0)
            return key_fail(f, arch, "embedding_length", err, "is %" PRIu32 ", not a multiple of head_count %" PRIu32
                            ", and attention.key_length/value_length are absent", h.n_embd, h.n_head);
        if (!has_k)
            h.head_dim_k = h.n_embd / h.n_head;
        if (!has_v)
            h.head_dim_v = h.n_embd / h.n_head;
    }
    if (check_count(f, arch, "attention.key_length", h.head_dim_k, err) ||
        check_count(f, arch, "attention.value_length", h.head_dim_v, err))
        return -1;
    if ((uint64_t)h.n_head * h.head_dim_k > MAX_DIM || (uint64_t)h.n_head * h.head_dim_v > MAX_DIM)
        return ae_fail(err, "%s: %" PRIu32 " heads of %" PRIu32 "/%" PRIu32 " dims are too large", f->path, h.n_head,
                       h.head_dim_k, h.head_dim_v);

    h.n_rot = h.head_dim_k;
    if (read_u32(f, arch, "rope.dimension_count", false, &h.n_rot, err) < 0)
        return -1;
    if (h.n_rot < 2 || h.n_rot % 2 != 0 || h.n_rot > h.head_dim_k)
        return key_fail(f, arch, "rope.dimension_count", err, "is %" PRIu32 ", expected an even number from 2 to the "
                        "head size %" PRIu32, h.n_rot, h.head_dim_k);

    if (read_f32(f, arch, "attention.layer_norm_rms_epsilon", true, &h.rms_eps, err) < 0)
        return -1;
    if (!(h.rms_eps >= 0.0f) || h.rms_eps > 1.0f)
        return key_fail(f, arch, "attention.layer_norm_rms_epsilon", err, "is %g, expected a small non-negative "
                        "number", (double)h.rms_eps);

    h.rope_freq_base = 10000.0f;
    if (read_f32(f, arch, "rope.freq_base", false, &h.rope_freq_base, err) < 0)
        return -1;
    if (check_float(f, arch, "rope.freq_base", h.rope_freq_base, 0.0f, true, err))
        return -1;

    /* Scaling: the factor from rope.scaling.factor or the older rope.scale_linear; 0 means none. */
    float factor = 0.0f;
    int rc = read_f32(f, arch, "rope.scaling.factor", false, &factor, err);
    if (rc < 0)
        return -1;
    if (rc == 0 && read_f32(f, arch, "rope.scale_linear", false, &factor, err) < 0)
        return -1;
    if (check_float(f, arch, rc ? "rope.scaling.factor" : "rope.scale_linear", factor, 0.0f, false, err))
        return -1;
    h.rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;

    char k[160];
    struct ae_str st;
    h.rope_scaling = IMPORT_ROPE_SCALING_NONE;
    rc = ae_gguf_get_str(f, arch_key(k, sizeof k, arch, "rope.scaling.type"), &st, err);
    if (rc < 0)
        return ae_fail_prefix(err, "%s", f->path);
    if (rc == 1) {
        if (ae_str_eq(st, "none") || ae_str_eq(st, "longrope"))
            h.rope_scaling = IMPORT_ROPE_SCALING_NONE;
        else if (ae_str_eq(st, "linear"))
            h.rope_scaling = IMPORT_ROPE_SCALING_LINEAR;
        else if (ae_str_eq(st, "yarn"))
            h.rope_scaling = IMPORT_ROPE_SCALING_YARN;
        else
            return key_fail(f, arch, "rope.scaling.type", err, "is '%.*s'; supported: none, linear, yarn, longrope",
                            (int)(st.len > 64 ? 64 : st.len), st.ptr);
    }
    h.n_ctx_orig = h.n_ctx_train;
    if (read_u32(f, arch, "rope.scaling.original_context_length", false, &h.n_ctx_orig, err) < 0 ||
        check_count(f, arch, "rope.scaling.original_context_length", h.n_ctx_orig, err))
        return -1;
    h.yarn_ext_factor = h.rope_scaling == IMPORT_ROPE_SCALING_YARN ? 1.0f : 0.0f;
    h.yarn_attn_factor = 1.0f;
    h.yarn_beta_fast = 32.0f;
    h.yarn_beta_slow = 1.0f;
    if (read_f32(f, arch, "rope.scaling.attn_factor", false, &h.yarn_attn_factor, err) < 0 ||
        read_f32(f, arch, "rope.scaling.yarn_beta_fast", false, &h.yarn_beta_fast, err) < 0 ||
        read_f32(f, arch, "rope.scaling.yarn_beta_slow", false, &h.yarn_beta_slow, err) < 0 ||
        check_float(f, arch, "rope.scaling.attn_factor", h.yarn_attn_factor, 0.0f, true, err) ||
        check_float(f, arch, "rope.scaling.yarn_beta_fast", h.yarn_beta_fast, 0.0f, false, err) ||
        check_float(f, arch, "rope.scaling.yarn_beta_slow", h.yarn_beta_slow, 0.0f, false, err))
        return -1;

    if (read_f32(f, arch, "attention.scale", false, &h.attn_scale, err) < 0 ||
        read_f32(f, arch, "attn_logit_softcapping", false, &h.attn_softcap, err) < 0 ||
        read_f32(f, arch, "final_logit_softcapping", false, &h.final_softcap, err) < 0 ||
        read_u32(f, arch, "attention.sliding_window", false, &h.sliding_window, err) < 0)
        return -1;
    if (check_float(f, arch, "attention.scale", h.attn_scale, 0.0f, false, err) ||
        check_float(f, arch, "attn_logit_softcapping", h.attn_softcap, 0.0f, false, err) ||
        check_float(f, arch, "final_logit_softcapping", h.final_softcap, 0.0f, false, err))
        return -1;
    if (h.sliding_window > INT32_MAX)
        return key_fail(f, arch, "attention.sliding_window", err, "is %" PRIu32 ", too large", h.sliding_window);

    if (read_expert_hparams(f, arch, &h, err))
        return -1;

    const struct ae_gguf_tensor *te = ae_gguf_find_tensor(f, "token_embd.weight");
    if (!te)
        return ae_fail(err, "%s: tensor 'token_embd.weight' is missing; the %s graph needs it", f->path, arch);
    if (te->n_dims != 2 || te->ne[0] != (int64_t)h.n_embd || te->ne[1] < 1 || te->ne[1] > (int64_t)MAX_DIM)
        return ae_fail(err, "%s: tensor 'token_embd.weight' has %" PRIu32 " dims {%" PRId64 ", %" PRId64
                       "}, expected {n_embd = %" PRIu32 ", n_vocab}", f->path, te->n_dims, te->ne[0], te->ne[1],
                       h.n_embd);
    h.n_vocab = (uint32_t)te->ne[1];
    *hp = h;
    return 0;
}

/* ---- Weights -------------------------------------------------------------------------------------- */

static const char *shape_text(char *buf, size_t size, uint32_t rank, const int64_t *ne)
{
    size_t k = (size_t)snprintf(buf, size, "{");
    for (uint32_t i = 0; i < rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%" PRId64, i ? ", " : "", ne[i]);
    if (k < size)
        snprintf(buf + k, size - k, "}");
    return buf;
}

int import_weight(struct import_ctx *c, struct ir_node **out, const char *name, uint32_t rank,
                  const int64_t *shape, bool required)
{
    *out = NULL;
    for (uint32_t i = 0; i < c->g->n_nodes; i++) {
        struct ir_node *n = c->g->nodes[i];
        if (n->op == IR_OP_WEIGHT && strcmp(n->name, name) == 0) {
            bool same = n->rank == rank;
            for (uint32_t d = 0; same && d < rank; d++)
                same = n->shape[d] == shape[d];
            if (!same)
                return ae_fail(c->err, "%s: tensor '%s' is needed with two different shapes", c->f->path, name);
            *out = n;
            return 0;
        }
    }
    const struct ae_gguf_tensor *t = ae_gguf_find_tensor(c->f, name);
    if (!t) {
        if (!required)
            return 0;
        return ae_fail(c->err, "%s: tensor '%s' is missing; the %s graph needs it", c->f->path, name, c->hp->arch);
    }
    /* GGUF lists dimensions innermost first: ne[0] is the row length. */
    int64_t ne_want[AE_GGUF_MAX_DIMS] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < rank; d++)
        ne_want[d] = shape[rank - 1 - d];
    bool ok = t->n_dims <= AE_GGUF_MAX_DIMS;
    for (uint32_t d = 0; ok && d < AE_GGUF_MAX_DIMS; d++)
        ok = (d < t->n_dims ? t->ne[d] : 1) == ne_want[d];
    if (!ok) {
        char a[96], b[96];
        return ae_fail(c->err, "%s: tensor '%s' (info at offset %" PRIu64 ") has shape %s, expected %s", c->f->path,
                       name, t->info_offset, shape_text(a, sizeof a, t->n_dims, t->ne),
                       shape_text(b, sizeof b, rank, ne_want));
    }
    const struct ae_type_info *ti = ae_type_info(t->type);
    if (!ti)
        return ae_fail(c->err, "%s: tensor '%s' has unknown type %" PRIu32, c->f->path, name, t->type);
    if (rank == 1 && t->type != AE_TYPE_F32)
        return ae_fail(c->err, "%s: tensor '%s' is %s; 1-D tensors (norms, biases) must be f32", c->f->path, name,
                       ti->name);
    if (t->ne[0] % ti->block_size != 0)
        return ae_fail(c->err, "%s: tensor '%s' of type %s has rows of %" PRId64 " values, not a multiple of its "
                       "block size %" PRIu32, c->f->path, name, ti->name, t->ne[0], ti->block_size);
    *out = ir_weight(c->g, name, t->type, rank, shape);
    return 0;
}

int import_layer_weight(struct import_ctx *c, struct ir_node **out, uint32_t layer, const char *suffix,
                        uint32_t rank, const int64_t *shape, bool required)
{
    char name[160];
    snprintf(name, sizeof name, "blk.%" PRIu32 ".%s", layer, suffix);
    return import_weight(c, out, name, rank, shape, required);
}

int import_layer_vec(struct import_ctx *c, struct ir_node **out, uint32_t layer, const char *suffix, int64_t n,
                     bool required)
{
    int64_t shape[1] = {n};
    return import_layer_weight(c, out, layer, suffix, 1, shape, required);
}

int import_layer_mat(struct import_ctx *c, struct ir_node **out, uint32_t layer, const char *suffix,
                     int64_t rows, int64_t cols, bool required)
{
    int64_t shape[2] = {rows, cols};
    return import_layer_weight(c, out, layer, suffix, 2, shape, required);
}

/* ---- Shared graph pieces -------------------------------------------------------------------------- */

const char *import_name(struct import_ctx *c, int32_t layer, const char *what)
{
    if (layer >= 0)
        snprintf(c->name_buf, sizeof c->name_buf, "blk.%" PRId32 ".%s", layer, what);
    else
        snprintf(c->name_buf, sizeof c->name_buf, "%s", what);
    return c->name_buf;
}

static struct ir_node *named(struct import_ctx *c, struct ir_node *n, const char *name)
{
    ir_node_set_name(c->g, n, name);
    return n;
}

struct ir_node *import_rms_norm(struct import_ctx *c, struct ir_node *x, struct ir_node *w, const char *name)
{
    struct ir_node *n = named(c, ir_rms_norm(c->g, x, c->hp->rms_eps), name);
    return named(c, ir_mul(c->g, n, w), name);
}

struct ir_node *import_linear(struct import_ctx *c, struct ir_node *x, struct ir_node *w, struct ir_node *b,
                              const char *name)
{
    struct ir_node *y = named(c, ir_matmul(c->g, w, x), name);
    if (b)
        y = named(c, ir_add(c->g, y, b), name);
    return y;
}

struct ir_rope_params import_rope_params(const struct import_ctx *c, enum ir_rope_mode mode)
{
    const struct import_hparams *hp = c->hp;
    struct ir_rope_params rp = {
        .mode = mode,
        .n_dims = (int32_t)hp->n_rot,
        .n_ctx_orig = (int32_t)hp->n_ctx_orig,
        .freq_base = hp->rope_freq_base,
        .freq_scale = hp->rope_freq_scale,
        .ext_factor = hp->yarn_ext_factor,
        .attn_factor = hp->yarn_attn_factor,
        .beta_fast = hp->yarn_beta_fast,
        .beta_slow = hp->yarn_beta_slow,
    };
    return rp;
}

struct ir_node *import_attend(struct import_ctx *c, uint32_t layer, struct ir_node *q, struct ir_node *k,
                              struct ir_node *v, const struct import_attn_params *ap)
{
    struct ir_graph *g = c->g;
    int32_t il = (int32_t)layer;
    struct ir_node *kc = named(c, ir_kv_cache(g, il, IR_KV_K, c->opt->kv_type, k->shape[1], k->shape[2]),
                               import_name(c, il, "cache_k"));
    struct ir_node *vc = named(c, ir_kv_cache(g, il, IR_KV_V, c->opt->kv_type, v->shape[1], v->shape[2]),
                               import_name(c, il, "cache_v"));
    k = named(c, ir_kv_store(g, kc, k), import_name(c, il, "cache_k"));
    v = named(c, ir_kv_store(g, vc, v), import_name(c, il, "cache_v"));

    struct ir_node *a = named(c, ir_attention(g, q, k, v, ap->kq_scale, ap->softcap, ap->window),
                              import_name(c, il, "attn"));
    int64_t os[2] = {IR_DIM_T, q->shape[1] * v->shape[2]};
    return named(c, ir_reshape(g, a, 2, os), import_name(c, il, "attn"));
}

struct ir_node *import_self_attention(struct import_ctx *c, uint32_t layer, struct ir_node *q, struct ir_node *k,
                                      struct ir_node *v, const struct import_attn_params *ap)
{
    const struct import_hparams *hp = c->hp;
    struct ir_graph *g = c->g;
    int32_t il = (int32_t)layer;
    int64_t qs[3] = {IR_DIM_T, hp->n_head, hp->head_dim_k};
    int64_t ks[3] = {IR_DIM_T, hp->n_head_kv, hp->head_dim_k};
    int64_t vs[3] = {IR_DIM_T, hp->n_head_kv, hp->head_dim_v};
    q = named(c, ir_reshape(g, q, 3, qs), import_name(c, il, "q"));
    k = named(c, ir_reshape(g, k, 3, ks), import_name(c, il, "k"));
    v = named(c, ir_reshape(g, v, 3, vs), import_name(c, il, "v"));

    struct ir_rope_params rp = import_rope_params(c, ap->rope_mode);
    q = named(c, ir_rope(g, q, c->positions, ap->rope_factors, &rp), import_name(c, il, "q_rope"));
    k = named(c, ir_rope(g, k, c->positions, ap->rope_factors, &rp), import_name(c, il, "k_rope"));
    if (ap->q_scale != 0.0f)
        q = named(c, ir_scale(g, q, ap->q_scale), import_name(c, il, "q_scaled"));
    return import_attend(c, layer, q, k, v, ap);
}

struct ir_node *import_ffn_gated(struct import_ctx *c, uint32_t layer, struct ir_node *x, struct ir_node *gate,
                                 struct ir_node *up, struct ir_node *down, enum ir_op act)
{
    struct ir_graph *g = c->g;
    int32_t il = (int32_t)layer;
    struct ir_node *u = named(c, ir_matmul(g, up, x), import_name(c, il, "ffn_up"));
    struct ir_node *h = named(c, ir_matmul(g, gate, x), import_name(c, il, "ffn_gate"));
    h = named(c, act == IR_OP_GELU ? ir_gelu(g, h) : ir_silu(g, h), import_name(c, il, "ffn_act"));
    h = named(c, ir_mul(g, h, u), import_name(c, il, "ffn_par"));
    return named(c, ir_matmul(g, down, h), import_name(c, il, "ffn_down"));
}

int import_embeddings(struct import_ctx *c, struct ir_node **out)
{
    int64_t shape[2] = {c->hp->n_vocab, c->hp->n_embd};
    struct ir_node *w;
    if (import_weight(c, &w, "token_embd.weight", 2, shape, true))
        return -1;
    *out = named(c, ir_get_rows(c->g, w, c->tokens), "token_embd");
    return 0;
}

int import_logits(struct import_ctx *c, struct ir_node *x, float final_softcap)
{
    const struct import_hparams *hp = c->hp;
    int64_t ns[1] = {hp->n_embd};
    int64_t hs[2] = {hp->n_vocab, hp->n_embd};
    struct ir_node *norm, *head;
    if (import_weight(c, &norm, "output_norm.weight", 1, ns, true) ||
        import_weight(c, &head, "output.weight", 2, hs, false))
        return -1;
    if (!head && import_weight(c, &head, "token_embd.weight", 2, hs, true)) /* tied embeddings */
        return -1;
    if (!c->opt->all_logits)
        x = named(c, ir_last_row(c->g, x), "last_token");
    x = import_rms_norm(c, x, norm, "output_norm");
    x = named(c, ir_matmul(c->g, head, x), "output");
    if (final_softcap != 0.0f)
        x = named(c, ir_softcap(c->g, x, final_softcap), "output_softcap");
    ir_output(c->g, x, "logits");
    return 0;
}

/* ---- Dispatch ------------------------------------------------------------------------------------- */

int import_model(struct ir_graph **out, const ae_gguf *f, const struct import_options *opt,
                 struct import_hparams *hp_out, ae_error *err)
{
    struct import_options defaults;
    if (!opt) {
        import_options_init(&defaults);
        opt = &defaults;
    }
    if (opt->kv_type != AE_TYPE_F16 && opt->kv_type != AE_TYPE_F32)
        return ae_fail(err, "KV cache type %s is not supported; use f16 or f32", ae_type_name(opt->kv_type));

    const struct arch_entry *entry;
    struct import_hparams hp;
    if (find_arch(f, &entry, err) || import_read_hparams(f, entry->name, &hp, err))
        return -1;

    if (opt->n_ctx > hp.n_ctx_train)
        return ae_fail(err, "%s: a context of %" PRIu32 " tokens is longer than the model's training context (%" PRIu32
                       " tokens, %s.context_length)", f->path, opt->n_ctx, hp.n_ctx_train, hp.arch);
    hp.n_ctx = opt->n_ctx ? opt->n_ctx : hp.n_ctx_train < IMPORT_DEFAULT_CTX ? hp.n_ctx_train : IMPORT_DEFAULT_CTX;

    struct import_ctx c;
    memset(&c, 0, sizeof c);
    c.n_ctx_min = 1;
    c.n_ctx_max = hp.n_ctx_train;
    c.f = f;
    c.g = ir_graph_create();
    c.hp = &hp;
    c.opt = opt;
    c.err = err;
    c.tokens = named(&c, ir_input(c.g, IR_INPUT_TOKENS), "tokens");
    c.positions = named(&c, ir_input(c.g, IR_INPUT_POSITIONS), "positions");
    if (entry->build(&c)) {
        ir_graph_destroy(c.g);
        return -1;
    }
    if (ir_verify(c.g, err)) {
        ae_fail_prefix(err, "%s: the %s importer built an invalid graph", f->path, entry->name);
        ir_graph_destroy(c.g);
        return -1;
    }
    hp.n_ctx_min = c.n_ctx_min;
    hp.n_ctx_max = c.n_ctx_max;
    if (hp_out)
        *hp_out = hp;
    *out = c.g;
    return 0;
}
