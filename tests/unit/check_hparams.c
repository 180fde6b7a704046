/* Hyperparameters of every shared model as the compiler reads them (the values the models' READMEs
 * give), and `aetherc inspect` end to end: its text and JSON forms, its errors and exit codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "import.h"
#include "test_util.h"

static const struct expected {
    const char *file;
    const char *arch;
    uint32_t n_vocab, n_ctx, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot;
    enum ir_rope_mode rope;
    float rope_base, eps, attn_softcap, final_softcap;
    uint32_t sliding_window;
    int tied;
} models[] = {
    {"models/stories260K.gguf", "llama", 512, 2048, 64, 5, 172, 8, 4, 8, 8, IR_ROPE_NORMAL, 10000, 1e-5f, 0, 0, 0, 0},
    {"models/stories260K-q8_0.gguf", "llama", 512, 2048, 64, 5, 172, 8, 4, 8, 8, IR_ROPE_NORMAL, 10000, 1e-5f, 0, 0, 0, 0},
    {"models/stories260K-q4_0.gguf", "llama", 512, 2048, 64, 5, 172, 8, 4, 8, 8, IR_ROPE_NORMAL, 10000, 1e-5f, 0, 0, 0, 0},
    {"models/llama-2-tiny-random.gguf", "llama", 32000, 4096, 8, 1, 32, 2, 2, 4, 4, IR_ROPE_NORMAL, 10000, 1e-5f, 0, 0, 0, 0},
    {"models/synthetic/tiny-llama-f32.gguf", "llama", 512, 512, 256, 4, 768, 8, 4, 32, 32, IR_ROPE_NORMAL, 10000, 1e-5f, 0, 0, 0, 0},
    {"models/synthetic/tiny-llama-q4_k_m.gguf", "llama", 512, 512, 256, 4, 768, 8, 4, 32, 32, IR_ROPE_NORMAL, 10000, 1e-5f, 0, 0, 0, 0},
    {"models/synthetic/tiny-phi3-q4_0.gguf", "phi3", 512, 512, 256, 4, 512, 8, 4, 32, 32, IR_ROPE_NEOX, 10000, 1e-5f, 0, 0, 2047, 0},
    {"models/synthetic/tiny-gemma2-f32.gguf", "gemma2", 512, 512, 128, 26, 128, 4, 2, 32, 32, IR_ROPE_NEOX, 10000, 1e-6f, 50, 30, 4096, 1},
    {"models/synthetic/tiny-qwen2-q4_k.gguf", "qwen2", 50257, 512, 64, 4, 256, 2, 1, 32, 32, IR_ROPE_NEOX, 1e6f, 1e-6f, 0, 0, 0, 1},
};

START_TEST(test_model_hparams)
{
    const struct expected *e = &models[_i];
    ae_gguf *g;
    ae_error err;
    ck_assert_msg(ae_gguf_open(&g, test_shared_path(e->file), &err) == 0, "%s", err.msg);
    struct import_hparams hp;
    ck_assert_msg(import_model_hparams(g, &hp, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(hp.arch, e->arch);
    ck_assert_uint_eq(hp.n_vocab, e->n_vocab);
    ck_assert_uint_eq(hp.n_ctx_train, e->n_ctx);
    ck_assert_uint_eq(hp.n_embd, e->n_embd);
    ck_assert_uint_eq(hp.n_layer, e->n_layer);
    ck_assert_uint_eq(hp.n_ff, e->n_ff);
    ck_assert_uint_eq(hp.n_head, e->n_head);
    ck_assert_uint_eq(hp.n_head_kv, e->n_head_kv);
    ck_assert_uint_eq(hp.head_dim_k, e->head_dim);
    ck_assert_uint_eq(hp.head_dim_v, e->head_dim);
    ck_assert_uint_eq(hp.n_rot, e->n_rot);
    ck_assert_int_eq(hp.rope_mode, e->rope);
    ck_assert_float_eq(hp.rope_freq_base, e->rope_base);
    ck_assert_float_eq(hp.rms_eps, e->eps);
    ck_assert_float_eq(hp.attn_softcap, e->attn_softcap);
    ck_assert_float_eq(hp.final_softcap, e->final_softcap);
    ck_assert_uint_eq(hp.sliding_window, e->sliding_window);
    ck_assert_int_eq(hp.tied_embeddings, e->tied);
    ae_gguf_close(g);
}
END_TEST

/* Runs aetherc with args, captures stdout+stderr, returns the exit status. */
static int run_aetherc(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("AE_AETHERC");
    ck_assert_msg(bin != NULL, "AE_AETHERC is not set: run the tests through make check");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    ck_assert(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[1 << 20];

/* The experts and latent attention of the MoE/MLA models, as their README gives them. */
static const struct expected_moe {
    const char *file;
    const char *arch;
    uint32_t n_expert, n_used, n_ff_exp, n_ff_shexp, n_shared, n_dense, n_lora_kv, head_dim_k, head_dim_v, n_rot;
    float w_scale;
    bool w_norm;
    enum ir_rope_mode rope;
} moe_models[] = {
    {"models/synthetic/tiny-mixtral-q4_k_m.gguf", "llama", 4, 2, 0, 0, 0, 0, 0, 32, 32, 32, 0, false, IR_ROPE_NORMAL},
    {"models/synthetic/tiny-qwen2moe-f32.gguf", "qwen2moe", 8, 4, 64, 256, 0, 0, 0, 32, 32, 32, 0, false, IR_ROPE_NEOX},
    {"models/synthetic/tiny-deepseek2-q8_0.gguf", "deepseek2", 4, 2, 32, 0, 1, 1, 32, 32, 16, 16, 1.5f, false,
     IR_ROPE_NORMAL},
};

START_TEST(test_moe_hparams)
{
    const struct expected_moe *e = &moe_models[_i];
    ae_gguf *g;
    ae_error err;
    ck_assert_msg(ae_gguf_open(&g, test_shared_path(e->file), &err) == 0, "%s", err.msg);
    struct import_hparams hp;
    ck_assert_msg(import_model_hparams(g, &hp, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(hp.arch, e->arch);
    ck_assert_uint_eq(hp.n_expert, e->n_expert);
    ck_assert_uint_eq(hp.n_expert_used, e->n_used);
    ck_assert_uint_eq(hp.n_ff_exp, e->n_ff_exp);
    ck_assert_uint_eq(hp.n_ff_shexp, e->n_ff_shexp);
    ck_assert_uint_eq(hp.n_expert_shared, e->n_shared);
    ck_assert_uint_eq(hp.n_layer_dense_lead, e->n_dense);
    ck_assert_uint_eq(hp.n_lora_kv, e->n_lora_kv);
    ck_assert_uint_eq(hp.n_lora_q, 0);
    ck_assert_uint_eq(hp.head_dim_k, e->head_dim_k);
    ck_assert_uint_eq(hp.head_dim_v, e->head_dim_v);
    ck_assert_uint_eq(hp.n_rot, e->n_rot);
    ck_assert_float_eq(hp.expert_weights_scale, e->w_scale);
    ck_assert_int_eq(hp.expert_weights_norm, e->w_norm);
    ck_assert_uint_eq(hp.expert_gating_func, IMPORT_GATING_SOFTMAX);
    ck_assert_int_eq(hp.rope_mode, e->rope);
    ae_gguf_close(g);
}
END_TEST

START_TEST(test_inspect_text)
{
    char args[4096];
    snprintf(args, sizeof args, "inspect --tensors %s", test_shared_path("models/stories260K.gguf"));
    ck_assert_int_eq(run_aetherc(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "format: GGUF v3, 1185376 bytes, alignment 32"));
    ck_assert_ptr_nonnull(strstr(out, "[string x 512] \"<unk>\", \"<s>\", \"</s>\""));
    ck_assert_ptr_nonnull(strstr(out, "tensors: 48, 292800 parameters, 1171200 bytes"));
    ck_assert_ptr_nonnull(strstr(out, "blk.0.ffn_down.weight"));
    ck_assert_ptr_nonnull(strstr(out, "n_head 8, n_head_kv 4 (GQA 2), head_dim k 8 v 8"));
}
END_TEST

START_TEST(test_inspect_json)
{
    char args[4096];
    snprintf(args, sizeof args, "inspect --json --tensors %s", test_shared_path("models/synthetic/tiny-qwen2-q4_k.gguf"));
    ck_assert_int_eq(run_aetherc(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"tokenizer.ggml.merges\": {\"type\": \"array\", \"value\": {\"array\": \"string\""));
    ck_assert_ptr_nonnull(strstr(out, "\"hyperparameters\": {\"arch\": \"qwen2\", \"n_vocab\": 50257"));
    ck_assert_ptr_nonnull(strstr(out, "\"by_type\": {"));
    /* Balanced braces and brackets outside strings: a cheap structural check (python's json module
     * checks it fully in the demo). */
    int depth = 0, in_str = 0;
    for (const char *p = out; *p; p++) {
        if (in_str) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_str = 0;
        } else if (*p == '"')
            in_str = 1;
        else if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            ck_assert_int_ge(--depth, 0);
    }
    ck_assert_int_eq(depth, 0);
    ck_assert_int_eq(in_str, 0);
}
END_TEST

START_TEST(test_inspect_errors)
{
    ck_assert_int_eq(run_aetherc("inspect --bogus x.gguf", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown flag '--bogus'"));
    ck_assert_int_eq(run_aetherc("inspect", out, sizeof out), 2);
    ck_assert_int_eq(run_aetherc("inspect /nonexistent/model.gguf", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/model.gguf: cannot open: No such file or directory"));
    char args[4096];
    snprintf(args, sizeof args, "inspect %s", test_shared_path("models/tinyllamas-stories-260k-q8_0.gguf"));
    ck_assert_int_eq(run_aetherc(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "tensor 'blk.0.ffn_down.weight' of type 8 (q8_0) has 172 elements per row, "
                                      "not a multiple of block size (32)"));
    /* A vocab-only file is not a model: inspect still shows it and says why there are no hyperparameters. */
    snprintf(args, sizeof args, "inspect %s", test_shared_path("tokenizer/ggml-vocab-gpt-2.gguf"));
    ck_assert_int_eq(run_aetherc(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "architecture 'gpt2' is not supported; supported architectures: llama, qwen2, phi3, gemma2"));
    ck_assert_int_eq(run_aetherc("frobnicate", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown command 'frobnicate'"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hparams");
    TCase *tc = tcase_create("models");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_model_hparams, 0, (int)(sizeof models / sizeof models[0]));
    tcase_add_loop_test(tc, test_moe_hparams, 0, (int)(sizeof moe_models / sizeof moe_models[0]));
    tcase_add_test(tc, test_inspect_text);
    tcase_add_test(tc, test_inspect_json);
    tcase_add_test(tc, test_inspect_errors);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
