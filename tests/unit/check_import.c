/* Tests of the GGUF importers (compiler/import/).
 *
 * Bad files are built in memory with the GGUF writer: a tiny llama whose metadata or tensors are
 * changed one row at a time, each row naming the message import_model must give (unsupported
 * architecture with the supported list, missing key, missing tensor, wrong shape, ...). Then the
 * hyperparameters read from the shared models against the values their READMEs list, and the
 * structure of each family's graph: tied embeddings, biases, fused QKV, gemma2's alternating window.
 */
#include "gguf_write.h"
#include "import.h"
#include "interp.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- A tiny llama, built in memory -------------------------------------------------------------- */

#define N_EMBD 8
#define N_FF 16
#define N_VOCAB 12

/* Changes to the base file, applied while writing it. */
struct variant {
    const char *arch;          /* general.architecture; NULL: leave the key out */
    const char *skip_key;      /* a metadata key to leave out */
    const char *skip_tensor;   /* a tensor to leave out */
    const char *bad_shape;     /* a tensor written with its two dimensions swapped */
    const char *f16_tensor;    /* a tensor written as F16 */
    bool with_bias;            /* add attn_q/k/v.bias */
    bool with_rope_freqs;      /* add rope_freqs.weight */
    bool with_output;          /* add output.weight (else the embeddings are tied) */
    uint32_t head_count_kv;    /* 0: 1 */
    const char *scaling;       /* rope.scaling.type, or NULL */
    const char *zero_key;      /* a u32 metadata key written as 0 */
    bool nan_eps;              /* layer_norm_rms_epsilon written as NaN */
    bool rope_factors;         /* phi3: rope_factors_long/short.weight, original context 16 */
};

static float weights[N_VOCAB * N_FF * 2];

struct mem_file {
    char *buf;
    size_t len;
    ae_gguf *f;
};

static void add_tensor(ae_gguf_writer *w, const struct variant *v, const char *name, int64_t ne0, int64_t ne1)
{
    ae_error err = {{0}};
    if (v->skip_tensor && !strcmp(name, v->skip_tensor))
        return;
    int64_t ne[2] = {ne0, ne1};
    if (v->bad_shape && !strcmp(name, v->bad_shape)) {
        ne[0] = ne1;
        ne[1] = ne0;
    }
    uint32_t type = v->f16_tensor && !strcmp(name, v->f16_tensor) ? AE_TYPE_F16 : AE_TYPE_F32;
    ck_assert_msg(ae_gguf_writer_add_tensor(w, name, type, ne1 ? 2 : 1, ne, weights, &err) == 0, "%s", err.msg);
}

static void add_u32(ae_gguf_writer *w, const struct variant *v, const char *arch, const char *key, uint32_t val)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (v->skip_key && !strcmp(k, v->skip_key))
        return;
    ae_gguf_writer_add_u32(w, k, v->zero_key && !strcmp(k, v->zero_key) ? 0 : val);
}

static void make_file(struct mem_file *m, const struct variant *v)
{
    const char *arch = v->arch ? v->arch : "llama";
    uint32_t kv = v->head_count_kv ? v->head_count_kv : 1;
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++)
        weights[i] = 0.01f * (float)((i * 7) % 13) - 0.05f;
    ae_gguf_writer *w = ae_gguf_writer_create();
    if (v->arch)
        ae_gguf_writer_add_str(w, "general.architecture", v->arch);
    add_u32(w, v, arch, "context_length", 64);
    add_u32(w, v, arch, "embedding_length", N_EMBD);
    add_u32(w, v, arch, "block_count", 1);
    add_u32(w, v, arch, "feed_forward_length", N_FF);
    add_u32(w, v, arch, "attention.head_count", 2);
    add_u32(w, v, arch, "attention.head_count_kv", kv);
    char k[128];
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    if (!v->skip_key || strcmp(k, v->skip_key))
        ae_gguf_writer_add_f32(w, k, v->nan_eps ? NAN : 1e-5f);
    if (v->rope_factors)
        add_u32(w, v, arch, "rope.scaling.original_context_length", 16);
    if (v->scaling) {
        snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
        ae_gguf_writer_add_str(w, k, v->scaling);
        snprintf(k, sizeof k, "%s.rope.scaling.factor", arch);
        ae_gguf_writer_add_f32(w, k, 4.0f);
    }

    add_tensor(w, v, "token_embd.weight", N_EMBD, N_VOCAB);
    add_tensor(w, v, "output_norm.weight", N_EMBD, 0);
    if (v->with_output)
        add_tensor(w, v, "output.weight", N_EMBD, N_VOCAB);
    if (v->with_rope_freqs)
        add_tensor(w, v, "rope_freqs.weight", 2, 0);
    if (v->rope_factors) {
        add_tensor(w, v, "rope_factors_long.weight", 2, 0);
        add_tensor(w, v, "rope_factors_short.weight", 2, 0);
    }
    add_tensor(w, v, "blk.0.attn_norm.weight", N_EMBD, 0);
    add_tensor(w, v, "blk.0.attn_q.weight", N_EMBD, N_EMBD);
    add_tensor(w, v, "blk.0.attn_k.weight", N_EMBD, 4 * kv);
    add_tensor(w, v, "blk.0.attn_v.weight", N_EMBD, 4 * kv);
    if (v->with_bias) {
        add_tensor(w, v, "blk.0.attn_q.bias", N_EMBD, 0);
        add_tensor(w, v, "blk.0.attn_k.bias", 4 * kv, 0);
        add_tensor(w, v, "blk.0.attn_v.bias", 4 * kv, 0);
    }
    add_tensor(w, v, "blk.0.attn_output.weight", N_EMBD, N_EMBD);
    add_tensor(w, v, "blk.0.ffn_norm.weight", N_EMBD, 0);
    if (strcmp(arch, "phi3") != 0)
        add_tensor(w, v, "blk.0.ffn_gate.weight", N_EMBD, N_FF);
    add_tensor(w, v, "blk.0.ffn_up.weight", N_EMBD, strcmp(arch, "phi3") ? N_FF : 2 * N_FF); /* phi3: gate|up */
    add_tensor(w, v, "blk.0.ffn_down.weight", N_FF, N_EMBD);

    ae_error err = {{0}};
    m->buf = NULL;
    m->len = 0;
    FILE *f = open_memstream(&m->buf, &m->len);
    ck_assert(f != NULL);
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_gguf_writer_destroy(w);
    ck_assert_msg(ae_gguf_open_memory(&m->f, m->buf, m->len, "tiny.gguf", &err) == 0, "%s", err.msg);
}

static void free_file(struct mem_file *m)
{
    ae_gguf_close(m->f);
    free(m->buf);
}

/* ---- Bad files ---------------------------------------------------------------------------------- */

static const struct bad_row {
    const char *what;
    struct variant v;
    const char *message; /* must appear in import_model's error */
    const char *message2;
} bad_rows[] = {
    {"unsupported architecture", {.arch = "mamba"}, "tiny.gguf: architecture 'mamba' is not supported",
     "supported architectures: llama, qwen2, phi3, gemma2"},
    {"no architecture", {.arch = NULL}, "'general.architecture' is missing", "llama, qwen2, phi3, gemma2"},
    {"missing tensor", {.arch = "llama", .skip_tensor = "blk.0.ffn_down.weight"},
     "tensor 'blk.0.ffn_down.weight' is missing", "llama graph"},
    {"missing norm", {.arch = "llama", .skip_tensor = "output_norm.weight"}, "'output_norm.weight' is missing", NULL},
    {"missing embeddings", {.arch = "llama", .skip_tensor = "token_embd.weight"}, "'token_embd.weight' is missing",
     NULL},
    {"missing key", {.arch = "llama", .skip_key = "llama.embedding_length"},
     "metadata key 'llama.embedding_length' is missing", NULL},
    {"missing eps", {.arch = "llama", .skip_key = "llama.attention.layer_norm_rms_epsilon"},
     "'llama.attention.layer_norm_rms_epsilon' is missing", NULL},
    {"wrong shape", {.arch = "llama", .bad_shape = "blk.0.ffn_up.weight"},
     "tensor 'blk.0.ffn_up.weight' (info at offset", "has shape {16, 8}, expected {8, 16}"},
    {"f16 norm", {.arch = "llama", .f16_tensor = "blk.0.attn_norm.weight"}, "'blk.0.attn_norm.weight' is f16",
     "must be f32"},
    {"qwen2 without biases", {.arch = "qwen2"}, "tensor 'blk.0.attn_q.bias' is missing", "qwen2 graph"},
    {"phi3 without fused qkv or q", {.arch = "phi3", .skip_tensor = "blk.0.attn_q.weight"},
     "'blk.0.attn_q.weight' is missing", NULL},
    {"gemma2 without post norms", {.arch = "gemma2"}, "'blk.0.post_attention_norm.weight' is missing", NULL},
    {"heads", {.arch = "llama", .head_count_kv = 3}, "metadata key 'llama.attention.head_count_kv' is 3, which does "
     "not divide head_count 2", "tiny.gguf: byte "},
    {"scaling", {.arch = "llama", .scaling = "warp"}, "metadata key 'llama.rope.scaling.type' is 'warp'",
     "linear, yarn"},
    /* Impossible settings name the key's byte offset. */
    {"no layers", {.arch = "llama", .zero_key = "llama.block_count"},
     "metadata key 'llama.block_count' is 0, expected 1..", "tiny.gguf: byte "},
    {"no kv heads", {.arch = "llama", .zero_key = "llama.attention.head_count_kv"},
     "metadata key 'llama.attention.head_count_kv' is 0", "tiny.gguf: byte "},
    {"no context", {.arch = "llama", .zero_key = "llama.context_length"}, "metadata key 'llama.context_length' is 0",
     "tiny.gguf: byte "},
    {"eps NaN", {.arch = "llama", .nan_eps = true}, "metadata key 'llama.attention.layer_norm_rms_epsilon' is nan",
     "tiny.gguf: byte "},
};
#define N_BAD ((int)(sizeof bad_rows / sizeof bad_rows[0]))

START_TEST(test_bad_file)
{
    const struct bad_row *row = &bad_rows[_i];
    struct mem_file m;
    make_file(&m, &row->v);
    struct ir_graph *g = NULL;
    ae_error err = {{0}};
    ck_assert_msg(import_model(&g, m.f, NULL, NULL, &err) == -1, "%s: accepted", row->what);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(err.msg, row->message) != NULL, "%s: expected \"%s\" in \"%s\"", row->what, row->message,
                  err.msg);
    if (row->message2)
        ck_assert_msg(strstr(err.msg, row->message2) != NULL, "%s: expected \"%s\" in \"%s\"", row->what,
                      row->message2, err.msg);
    free_file(&m);
}
END_TEST

/* The Q8_0 file whose ffn_down rows (172 values) are not whole blocks: refused, naming the tensor. */
START_TEST(test_partial_blocks)
{
    ae_error err = {{0}};
    ae_gguf *f = NULL;
    if (ae_gguf_open(&f, test_shared_path("models/tinyllamas-stories-260k-q8_0.gguf"), &err) != 0) {
        ck_assert_msg(strstr(err.msg, "ffn_down") != NULL, "%s", err.msg);
        return;
    }
    struct ir_graph *g = NULL;
    ck_assert_int_eq(import_model(&g, f, NULL, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "blk.0.ffn_down.weight") && strstr(err.msg, "block size 32"), "%s", err.msg);
    ae_gguf_close(f);
}
END_TEST

START_TEST(test_bad_options)
{
    struct mem_file m;
    make_file(&m, &(struct variant){.arch = "llama"});
    struct import_options opt;
    import_options_init(&opt);
    ck_assert_uint_eq(opt.kv_type, AE_TYPE_F16);
    opt.kv_type = AE_TYPE_Q8_0;
    struct ir_graph *g = NULL;
    ae_error err = {{0}};
    ck_assert_int_eq(import_model(&g, m.f, &opt, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "KV cache type q8_0"), "%s", err.msg);
    free_file(&m);
}
END_TEST

/* ---- Good tiny files ---------------------------------------------------------------------------- */

static uint32_t count_op(const struct ir_graph *g, enum ir_op op)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i]->op == op;
    return n;
}

static const struct ir_node *find_named(const struct ir_graph *g, enum ir_op op, const char *name)
{
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == op && g->nodes[i]->name && !strcmp(g->nodes[i]->name, name))
            return g->nodes[i];
    return NULL;
}

/* Optional tensors change the graph: biases add adds, rope_freqs feeds rope, output.weight is the lm
 * head when present; linear scaling sets freq_scale. The graph runs in the interpreter. */
START_TEST(test_optional_tensors)
{
    struct mem_file m;
    make_file(&m, &(struct variant){.arch = "llama", .with_bias = true, .with_rope_freqs = true,
                                    .with_output = true, .head_count_kv = 2, .scaling = "linear"});
    struct ir_graph *g;
    struct import_hparams hp;
    ae_error err = {{0}};
    ck_assert_msg(import_model(&g, m.f, NULL, &hp, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(hp.n_vocab, N_VOCAB);
    ck_assert_uint_eq(hp.n_head_kv, 2);
    ck_assert_float_eq(hp.rope_freq_scale, 0.25f);
    ck_assert_uint_eq(count_op(g, IR_OP_ADD), 2 + 3);
    const struct ir_node *rope = find_named(g, IR_OP_ROPE, "blk.0.q_rope");
    ck_assert_ptr_nonnull(rope);
    ck_assert_uint_eq(rope->n_src, 3);
    ck_assert_str_eq(rope->src[2]->name, "rope_freqs.weight");
    ck_assert_float_eq(rope->p.rope.freq_scale, 0.25f);
    ck_assert_int_eq(rope->p.rope.mode, IR_ROPE_NORMAL);
    const struct ir_node *head = find_named(g, IR_OP_MATMUL, "output");
    ck_assert_str_eq(head->src[1]->name, "output.weight");

    struct interp *it;
    ck_assert_msg(interp_create(&it, g, m.f, 16, &err) == 0, "%s", err.msg);
    float logits[N_VOCAB];
    int32_t toks[3] = {1, 5, 11};
    ck_assert_msg(interp_eval(it, toks, 3, 0, logits, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N_VOCAB; i++)
        ck_assert(isfinite(logits[i]));
    interp_destroy(it);
    ir_graph_destroy(g);
    free_file(&m);

    /* Without output.weight the embeddings are tied: the lm head reads token_embd.weight. */
    make_file(&m, &(struct variant){.arch = "llama"});
    ck_assert_msg(import_model(&g, m.f, NULL, NULL, &err) == 0, "%s", err.msg);
    head = find_named(g, IR_OP_MATMUL, "output");
    ck_assert_str_eq(head->src[1]->name, "token_embd.weight");
    ck_assert_uint_eq(count_op(g, IR_OP_WEIGHT), 11); /* token_embd once, for rows and head */
    ir_graph_destroy(g);
    free_file(&m);
}
END_TEST

/* The context has one owner: import_model. The default is the training context (64 here); asking for
 * more is refused. phi3's rope factors are chosen for the context, and the contexts the program may run
 * stay on that side of the original context (16 here), where the choice is llama.cpp's. */
START_TEST(test_context)
{
    struct mem_file m;
    make_file(&m, &(struct variant){.arch = "llama"});
    struct import_options opt;
    import_options_init(&opt);
    struct ir_graph *g;
    struct import_hparams hp;
    ae_error err = {{0}};
    ck_assert_msg(import_model(&g, m.f, &opt, &hp, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(hp.n_ctx, 64);
    ck_assert_uint_eq(hp.n_ctx_min, 1);
    ck_assert_uint_eq(hp.n_ctx_max, 64);
    ir_graph_destroy(g);
    opt.n_ctx = 65;
    ck_assert_int_eq(import_model(&g, m.f, &opt, &hp, &err), -1);
    ck_assert_msg(strstr(err.msg, "longer than the model's training context (64 tokens"), "%s", err.msg);
    free_file(&m);

    static const struct {
        uint32_t n_ctx, ctx, lo, hi;
        const char *factors;
    } rows[] = {{0, 64, 17, 64, "rope_factors_long.weight"}, {20, 20, 17, 64, "rope_factors_long.weight"},
                {16, 16, 1, 16, "rope_factors_short.weight"}, {8, 8, 1, 16, "rope_factors_short.weight"}};
    make_file(&m, &(struct variant){.arch = "phi3", .rope_factors = true});
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        opt.n_ctx = rows[i].n_ctx;
        ck_assert_msg(import_model(&g, m.f, &opt, &hp, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(hp.n_ctx, rows[i].ctx);
        ck_assert_uint_eq(hp.n_ctx_min, rows[i].lo);
        ck_assert_uint_eq(hp.n_ctx_max, rows[i].hi);
        const struct ir_node *rope = find_named(g, IR_OP_ROPE, "blk.0.q_rope");
        ck_assert_ptr_nonnull(rope);
        ck_assert_uint_eq(rope->n_src, 3);
        ck_assert_str_eq(rope->src[2]->name, rows[i].factors);
        ir_graph_destroy(g);
    }
    free_file(&m);
}
END_TEST

/* ---- The shared models -------------------------------------------------------------------------- */

static const struct hp_row {
    const char *file;
    const char *arch;
    uint32_t n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot, n_ctx;
    float eps, base, attn_softcap, final_softcap;
    uint32_t window;
} hp_rows[] = {
    {"stories260K.gguf", "llama", 512, 64, 5, 172, 8, 4, 8, 8, 2048, 1e-5f, 10000.0f, 0, 0, 0},
    {"llama-2-tiny-random.gguf", "llama", 32000, 8, 1, 32, 2, 2, 4, 4, 4096, 1e-5f, 10000.0f, 0, 0, 0},
    {"synthetic/tiny-llama-q4_k.gguf", "llama", 512, 256, 4, 768, 8, 4, 32, 32, 512, 1e-5f, 10000.0f, 0, 0, 0},
    {"synthetic/tiny-qwen2-q8_0.gguf", "qwen2", 50257, 64, 4, 256, 2, 1, 32, 32, 512, 1e-6f, 1e6f, 0, 0, 0},
    {"synthetic/tiny-phi3-f32.gguf", "phi3", 512, 256, 4, 512, 8, 4, 32, 32, 512, 1e-5f, 10000.0f, 0, 0, 2047},
    {"synthetic/tiny-gemma2-q4_0.gguf", "gemma2", 512, 128, 26, 128, 4, 2, 32, 32, 512, 1e-6f, 10000.0f, 50, 30, 4096},
};

START_TEST(test_shared_hparams)
{
    const struct hp_row *r = &hp_rows[_i];
    ae_error err = {{0}};
    ae_gguf *f;
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", r->file);
    ck_assert_msg(ae_gguf_open(&f, test_shared_path(rel), &err) == 0, "%s", err.msg);
    struct ir_graph *g;
    struct import_hparams hp;
    ck_assert_msg(import_model(&g, f, NULL, &hp, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(hp.arch, r->arch);
    ck_assert_uint_eq(hp.n_vocab, r->n_vocab);
    ck_assert_uint_eq(hp.n_embd, r->n_embd);
    ck_assert_uint_eq(hp.n_layer, r->n_layer);
    ck_assert_uint_eq(hp.n_ff, r->n_ff);
    ck_assert_uint_eq(hp.n_head, r->n_head);
    ck_assert_uint_eq(hp.n_head_kv, r->n_head_kv);
    ck_assert_uint_eq(hp.head_dim_k, r->head_dim);
    ck_assert_uint_eq(hp.head_dim_v, r->head_dim);
    ck_assert_uint_eq(hp.n_rot, r->n_rot);
    ck_assert_uint_eq(hp.n_ctx_train, r->n_ctx);
    ck_assert_float_eq(hp.rms_eps, r->eps);
    ck_assert_float_eq(hp.rope_freq_base, r->base);
    ck_assert_float_eq(hp.rope_freq_scale, 1.0f);
    ck_assert_float_eq(hp.attn_softcap, r->attn_softcap);
    ck_assert_float_eq(hp.final_softcap, r->final_softcap);
    ck_assert_uint_eq(hp.sliding_window, r->window);
    /* One attention, two caches and two stores per layer; one output. */
    ck_assert_uint_eq(count_op(g, IR_OP_ATTENTION), r->n_layer);
    ck_assert_uint_eq(count_op(g, IR_OP_KV_CACHE), 2 * r->n_layer);
    ck_assert_uint_eq(count_op(g, IR_OP_KV_STORE), 2 * r->n_layer);
    ck_assert_uint_eq(count_op(g, IR_OP_OUTPUT), 1);
    ir_graph_destroy(g);
    ae_gguf_close(f);
}
END_TEST

static struct ir_graph *import_file(const char *file, ae_gguf **fp)
{
    ae_error err = {{0}};
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", file);
    ck_assert_msg(ae_gguf_open(fp, test_shared_path(rel), &err) == 0, "%s", err.msg);
    struct ir_graph *g;
    ck_assert_msg(import_model(&g, *fp, NULL, NULL, &err) == 0, "%s", err.msg);
    return g;
}

/* Each family's particulars, as the graph shows them. */
START_TEST(test_family_structure)
{
    ae_gguf *f;
    /* gemma2: scaled embeddings, window on even layers only, softcaps, gelu, q pre-scaled. */
    struct ir_graph *g = import_file("synthetic/tiny-gemma2-f32.gguf", &f);
    uint32_t layer = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        if (n->op != IR_OP_ATTENTION)
            continue;
        ck_assert_int_eq(n->layer, (int32_t)layer);
        ck_assert_int_eq(n->p.attention.window, layer % 2 == 0 ? 4096 : 0);
        ck_assert_float_eq(n->p.attention.softcap, 50.0f);
        ck_assert_float_eq(n->p.attention.scale, 1.0f);
        ck_assert_int_eq(n->src[0]->op, IR_OP_SCALE);
        ck_assert_float_eq_tol(n->src[0]->p.scale.s, 1.0f / sqrtf(32.0f), 1e-7f);
        layer++;
    }
    ck_assert_uint_eq(layer, 26);
    ck_assert_float_eq_tol(find_named(g, IR_OP_SCALE, "token_embd_scaled")->p.scale.s, sqrtf(128.0f), 1e-6f);
    ck_assert_float_eq(find_named(g, IR_OP_SOFTCAP, "output_softcap")->p.softcap.cap, 30.0f);
    ck_assert_uint_eq(count_op(g, IR_OP_GELU), 26);
    ck_assert_uint_eq(count_op(g, IR_OP_RMS_NORM), 4 * 26 + 1);
    ck_assert_str_eq(find_named(g, IR_OP_MATMUL, "output")->src[1]->name, "token_embd.weight");
    ck_assert_int_eq(find_named(g, IR_OP_ROPE, "blk.3.k_rope")->p.rope.mode, IR_ROPE_NEOX);
    ir_graph_destroy(g);
    ae_gguf_close(f);

    /* phi3: q, k, v sliced from one matmul; gate and up sliced from one; window everywhere. */
    g = import_file("synthetic/tiny-phi3-f32.gguf", &f);
    const struct ir_node *k = find_named(g, IR_OP_SLICE, "blk.2.attn_k");
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(k->p.slice.start, 256);
    ck_assert_int_eq(k->shape[1], 128);
    ck_assert_str_eq(k->src[0]->src[1]->name, "blk.2.attn_qkv.weight");
    ck_assert_int_eq(find_named(g, IR_OP_SLICE, "blk.2.ffn_up")->p.slice.start, 512);
    ck_assert_int_eq(find_named(g, IR_OP_ATTENTION, "blk.1.attn")->p.attention.window, 2047);
    ck_assert_uint_eq(count_op(g, IR_OP_SLICE), 5 * 4);
    ck_assert_str_eq(find_named(g, IR_OP_MATMUL, "output")->src[1]->name, "output.weight");
    ir_graph_destroy(g);
    ae_gguf_close(f);

    /* qwen2: biases on q, k and v; neox rope with base 1e6; tied lm head; 1/sqrt(32) scale. */
    g = import_file("synthetic/tiny-qwen2-f32.gguf", &f);
    ck_assert_uint_eq(count_op(g, IR_OP_ADD), 4 * (3 + 2));
    const struct ir_node *q = find_named(g, IR_OP_ADD, "blk.0.attn_q");
    ck_assert_str_eq(q->src[1]->name, "blk.0.attn_q.bias");
    const struct ir_node *rope = find_named(g, IR_OP_ROPE, "blk.0.q_rope");
    ck_assert_int_eq(rope->p.rope.mode, IR_ROPE_NEOX);
    ck_assert_float_eq(rope->p.rope.freq_base, 1e6f);
    ck_assert_float_eq_tol(find_named(g, IR_OP_ATTENTION, "blk.0.attn")->p.attention.scale, 1.0f / sqrtf(32.0f),
                           1e-7f);
    ck_assert_str_eq(find_named(g, IR_OP_MATMUL, "output")->src[1]->name, "token_embd.weight");
    ir_graph_destroy(g);
    ae_gguf_close(f);

    /* llama: normal rope, no biases, separate lm head. */
    g = import_file("stories260K.gguf", &f);
    ck_assert_int_eq(find_named(g, IR_OP_ROPE, "blk.4.q_rope")->p.rope.mode, IR_ROPE_NORMAL);
    ck_assert_uint_eq(count_op(g, IR_OP_ADD), 5 * 2);
    ck_assert_uint_eq(count_op(g, IR_OP_SILU), 5);
    ck_assert_str_eq(find_named(g, IR_OP_MATMUL, "output")->src[1]->name, "output.weight");
    ir_graph_destroy(g);
    ae_gguf_close(f);
}
END_TEST

static Suite *import_suite(void)
{
    Suite *s = suite_create("import");
    TCase *tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_bad_file, 0, N_BAD);
    tcase_add_test(tc, test_partial_blocks);
    tcase_add_test(tc, test_bad_options);
    suite_add_tcase(s, tc);

    tc = tcase_create("graphs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_optional_tensors);
    tcase_add_test(tc, test_context);
    tcase_add_loop_test(tc, test_shared_hparams, 0, (int)(sizeof hp_rows / sizeof hp_rows[0]));
    tcase_add_test(tc, test_family_structure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(import_suite());
}
