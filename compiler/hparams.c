/* Reads a model's hyperparameters from GGUF metadata (see hparams.h). */
#include "hparams.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *const hparams_supported_archs[] = {"llama", "qwen2", "phi3", "gemma2", NULL};

/* Per family: how it rotates. Everything else is read from keys. */
static int arch_rope(const char *arch, enum rope_kind *rope)
{
    if (!strcmp(arch, "llama"))
        *rope = ROPE_NORMAL;
    else if (!strcmp(arch, "qwen2") || !strcmp(arch, "phi3") || !strcmp(arch, "gemma2"))
        *rope = ROPE_NEOX;
    else
        return -1;
    return 0;
}

static const char *key(const struct hparams *hp, const char *name)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s.%s", hp->arch, name);
    return buf;
}

static int need_u32(const ae_gguf *g, const struct hparams *hp, const char *name, uint32_t *out, ae_error *err)
{
    const char *k = key(hp, name);
    int rc = ae_gguf_get_u32(g, k, out, err);
    if (rc == 0)
        return ae_fail(err, "%s: missing key '%s' (required for architecture '%s')", g->path, k, hp->arch);
    return rc < 0 ? -1 : 0;
}

static int opt_u32(const ae_gguf *g, const struct hparams *hp, const char *name, uint32_t *out, ae_error *err)
{
    return ae_gguf_get_u32(g, key(hp, name), out, err) < 0 ? -1 : 0;
}

static int opt_f32(const ae_gguf *g, const struct hparams *hp, const char *name, float *out, ae_error *err)
{
    return ae_gguf_get_f32(g, key(hp, name), out, err) < 0 ? -1 : 0;
}

static int read_arch(const ae_gguf *g, struct hparams *hp, ae_error *err)
{
    struct ae_str arch;
    int rc = ae_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return ae_fail(err, "%s: missing key 'general.architecture': not a model file", g->path);
    if (arch.len >= sizeof hp->arch)
        return ae_fail(err, "%s: general.architecture '%.*s...' is too long", g->path, 40, arch.ptr);
    memcpy(hp->arch, arch.ptr, arch.len);
    hp->arch[arch.len] = 0;
    if (arch_rope(hp->arch, &hp->rope) < 0) {
        char list[128] = "";
        for (const char *const *a = hparams_supported_archs; *a; a++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == hparams_supported_archs ? "" : ", ", *a);
        return ae_fail(err, "%s: architecture '%s' is not supported (supported: %s)", g->path, hp->arch, list);
    }
    return 0;
}

static int read_vocab(const ae_gguf *g, struct hparams *hp, ae_error *err)
{
    const struct ae_gguf_tensor *embd = ae_gguf_find_tensor(g, "token_embd.weight");
    if (!embd)
        return ae_fail(err, "%s: missing tensor 'token_embd.weight'", g->path);
    if (embd->n_dims != 2 || embd->ne[0] != hp->n_embd || embd->ne[1] <= 0 || embd->ne[1] > INT32_MAX)
        return ae_fail(err, "%s: tensor 'token_embd.weight' has shape [%" PRId64 ", %" PRId64 "], expected [%" PRIu32
                       ", n_vocab]", g->path, embd->ne[0], embd->ne[1], hp->n_embd);
    hp->n_vocab = (uint32_t)embd->ne[1];
    const struct ae_gguf_array *tokens;
    int rc = ae_gguf_get_arr(g, "tokenizer.ggml.tokens", AE_GGUF_STRING, &tokens, err);
    if (rc < 0)
        return -1;
    if (rc == 1 && tokens->n != hp->n_vocab)
        return ae_fail(err, "%s: the vocabulary has %" PRIu64 " tokens but token_embd.weight has %" PRIu32 " rows",
                       g->path, tokens->n, hp->n_vocab);
    hp->tied_embeddings = ae_gguf_find_tensor(g, "output.weight") == NULL;
    return 0;
}

int hparams_read(const ae_gguf *g, struct hparams *out, ae_error *err)
{
    struct hparams hp = {0};
    if (read_arch(g, &hp, err) < 0)
        return -1;
    if (need_u32(g, &hp, "embedding_length", &hp.n_embd, err) < 0 ||
        need_u32(g, &hp, "block_count", &hp.n_layer, err) < 0 ||
        need_u32(g, &hp, "feed_forward_length", &hp.n_ff, err) < 0 ||
        need_u32(g, &hp, "attention.head_count", &hp.n_head, err) < 0)
        return -1;
    if (hp.n_embd == 0 || hp.n_layer == 0 || hp.n_head == 0 || hp.n_ff == 0)
        return ae_fail(err, "%s: embedding_length, block_count, feed_forward_length and head_count must be "
                       "non-zero (found %" PRIu32 ", %" PRIu32 ", %" PRIu32 ", %" PRIu32 ")",
                       g->path, hp.n_embd, hp.n_layer, hp.n_ff, hp.n_head);
    hp.n_ctx_train = 0;
    hp.n_head_kv = hp.n_head;
    hp.head_dim_k = hp.head_dim_v = hp.n_embd / hp.n_head;
    if (opt_u32(g, &hp, "context_length", &hp.n_ctx_train, err) < 0 ||
        opt_u32(g, &hp, "attention.head_count_kv", &hp.n_head_kv, err) < 0 ||
        opt_u32(g, &hp, "attention.key_length", &hp.head_dim_k, err) < 0 ||
        opt_u32(g, &hp, "attention.value_length", &hp.head_dim_v, err) < 0)
        return -1;
    hp.n_rot = hp.head_dim_k;
    if (opt_u32(g, &hp, "rope.dimension_count", &hp.n_rot, err) < 0)
        return -1;
    if (hp.n_head_kv == 0 || hp.n_head % hp.n_head_kv != 0)
        return ae_fail(err, "%s: head_count %" PRIu32 " is not a multiple of head_count_kv %" PRIu32, g->path,
                       hp.n_head, hp.n_head_kv);
    if (hp.head_dim_k == 0 || hp.head_dim_v == 0 || hp.n_rot > hp.head_dim_k || hp.n_rot % 2 != 0)
        return ae_fail(err, "%s: rope dimension count %" PRIu32 " must be even and at most the key length %" PRIu32,
                       g->path, hp.n_rot, hp.head_dim_k);

    hp.rope_freq_base = 10000.0f;
    hp.rope_freq_scale = 1.0f;
    float factor = 0.0f;
    if (opt_f32(g, &hp, "rope.freq_base", &hp.rope_freq_base, err) < 0 ||
        opt_f32(g, &hp, "rope.scaling.factor", &factor, err) < 0 ||
        opt_u32(g, &hp, "rope.scaling.original_context_length", &hp.rope_orig_ctx, err) < 0)
        return -1;
    /* Older files say rope.scale_linear instead of rope.scaling.type = linear + factor. */
    float linear = 0.0f;
    if (opt_f32(g, &hp, "rope.scale_linear", &linear, err) < 0)
        return -1;
    struct ae_str scaling = {"none", 4};
    if (ae_gguf_get_str(g, key(&hp, "rope.scaling.type"), &scaling, err) < 0)
        return -1;
    if (linear != 0.0f && scaling.len == 4 && !memcmp(scaling.ptr, "none", 4)) {
        scaling = (struct ae_str){"linear", 6};
        factor = linear;
    }
    snprintf(hp.rope_scaling, sizeof hp.rope_scaling, "%.*s", (int)(scaling.len < 15 ? scaling.len : 15), scaling.ptr);
    if (!strcmp(hp.rope_scaling, "linear") && factor != 0.0f)
        hp.rope_freq_scale = 1.0f / factor;
    else if (strcmp(hp.rope_scaling, "none") != 0 && strcmp(hp.rope_scaling, "linear") != 0)
        return ae_fail(err, "%s: rope scaling type '%s' is not supported (supported: none, linear)", g->path,
                       hp.rope_scaling);
    hp.has_rope_freqs = ae_gguf_find_tensor(g, "rope_freqs.weight") != NULL;

    hp.rms_eps = 1e-5f;
    if (opt_f32(g, &hp, "attention.layer_norm_rms_epsilon", &hp.rms_eps, err) < 0 ||
        opt_f32(g, &hp, "attn_logit_softcapping", &hp.attn_softcap, err) < 0 ||
        opt_f32(g, &hp, "final_logit_softcapping", &hp.final_softcap, err) < 0 ||
        opt_u32(g, &hp, "attention.sliding_window", &hp.sliding_window, err) < 0 ||
        ae_gguf_get_u32(g, "general.file_type", &hp.file_type, err) < 0)
        return -1;
    if (read_vocab(g, &hp, err) < 0)
        return -1;
    *out = hp;
    return 0;
}
