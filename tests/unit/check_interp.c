/* Tests of the reference interpreter (ir/interp.c) on the imported graphs, against llama.cpp.
 *
 * One row per shared model: its prompt logits for the three reference prompts must match llama.cpp's
 * (reference/<model>/promptN.kvf16.logits.f32, F16 KV cache as llama.cpp's default) within the
 * README's tolerance for the model's weight type, and with teacher forcing (the reference's greedy
 * tokens fed back one at a time) the argmax must equal llama.cpp's greedy token at every step whose
 * reference margin exceeds that tolerance. F32 models are teacher-forced on all prompts, quantized
 * ones on prompt 1. Around the rows: stories260K's free-running greedy text equals llama.cpp's
 * exactly, the F32 models' per-step logits with an F32 cache match prompt1.kvf32.steps.f32, a prompt
 * fed one token at a time gives the same logits as one step, and bad steps are refused.
 */
#include "gguf_write.h"
#include "import.h"
#include "interp.h"
#include "pass.h"
#include "test_reference.h"
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CTX 512

/* ---- A model under test ------------------------------------------------------------------------- */

struct model {
    ae_gguf *f;
    struct ir_graph *g;
    struct interp *it;
    struct import_hparams hp;
};

static void model_open(struct model *m, const char *file, uint32_t kv_type)
{
    char rel[256];
    ae_error err = {{0}};
    snprintf(rel, sizeof rel, "models/%s", file);
    ck_assert_msg(ae_gguf_open(&m->f, test_shared_path(rel), &err) == 0, "%s", err.msg);
    struct import_options opt;
    import_options_init(&opt);
    opt.kv_type = kv_type;
    opt.n_ctx = N_CTX;
    ck_assert_msg(import_model(&m->g, m->f, &opt, &m->hp, &err) == 0, "%s", err.msg);
    ck_assert_msg(interp_create(&m->it, m->g, m->f, N_CTX, &err) == 0, "%s", err.msg);
}

static void model_close(struct model *m)
{
    interp_destroy(m->it);
    ir_graph_destroy(m->g);
    ae_gguf_close(m->f);
}

static void eval(struct model *m, const int32_t *tokens, uint32_t n, uint32_t pos, float *logits)
{
    ae_error err = {{0}};
    ck_assert_msg(interp_eval(m->it, tokens, n, pos, logits, &err) == 0, "%s", err.msg);
}

/* ---- The main rows ------------------------------------------------------------------------------ */

static void check_against_llama_cpp(const struct model_row *row)
{
    struct model m;
    model_open(&m, row->file, AE_TYPE_F16);
    int64_t nv = m.hp.n_vocab;
    double tol = ref_tol_max_abs(row->tol);
    float *logits = malloc((size_t)nv * sizeof *logits);
    ck_assert(logits != NULL);
    struct router_watch watch = {.k = (int)m.hp.n_expert_used};
    interp_set_trace(m.it, ref_router_trace, &watch);
    bool verbose = getenv("AE_REF_VERBOSE") != NULL;

    for (int prompt = 1; prompt <= 3; prompt++) {
        struct reference r;
        ref_load(&r, row->ref, prompt, "f16", nv);
        watch.min_gap = INFINITY;
        eval(&m, r.prompt, r.n_prompt, 0, logits);
        struct ref_diff d = ref_compare(logits, r.logits, nv);
        if (verbose)
            fprintf(stderr, "%s prompt %d: max diff %g rms %g, router gap %g\n", row->ref, prompt, d.max_abs, d.rms,
                    watch.min_gap);
        ck_assert_msg(d.max_abs <= tol, "%s prompt %d: logit %" PRId64 " is %g, llama.cpp %g (|diff| %g > %g)",
                      row->ref, prompt, d.at, (double)logits[d.at], (double)r.logits[d.at], d.max_abs, tol);
        if (row->tol == TOL_QUANT)
            ck_assert_msg(d.rms <= REF_QUANT_RMS, "%s prompt %d: RMS diff %g > %g", row->ref, prompt, d.rms, REF_QUANT_RMS);
        free(r.logits);

        if (prompt > 1 && !row->force_all)
            continue;
        /* Teacher forcing: the reference's greedy tokens go in, our argmax must agree where the
         * reference's top-2 margin is larger than our tolerance. */
        uint32_t pos = r.n_prompt;
        for (int s = 0; s < REF_STEPS; s++) {
            if (s > 0) {
                watch.min_gap = INFINITY;
                eval(&m, &r.greedy[s - 1], 1, pos++, logits);
            }
            int32_t top = interp_argmax(logits, nv);
            if (verbose)
                fprintf(stderr, "  step %2d: margin %8.4f router gap %8.5f %s\n", s, r.margin[s], watch.min_gap,
                        top == r.greedy[s] ? "" : "DIFFERS");
            if (r.margin[s] > tol && watch.min_gap > ref_router_tol(row->tol))
                ck_assert_msg(top == r.greedy[s], "%s prompt %d step %d: argmax %" PRId32 " (%g), llama.cpp chose %"
                              PRId32 " (%g here) with margin %g", row->ref, prompt, s, top, (double)logits[top],
                              r.greedy[s], (double)logits[r.greedy[s]], r.margin[s]);
        }
    }
    free(logits);
    model_close(&m);
}

START_TEST(test_model_against_llama_cpp)
{
    check_against_llama_cpp(&ref_models[_i]);
}
END_TEST

START_TEST(test_moe_against_llama_cpp)
{
    check_against_llama_cpp(&ref_moe_models[_i]);
}
END_TEST

/* stories260K is trained: its free-running greedy continuation must be llama.cpp's, token for token. */
START_TEST(test_stories_free_running)
{
    struct model m;
    model_open(&m, "stories260K.gguf", AE_TYPE_F16);
    int64_t nv = m.hp.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits);
    ck_assert(logits != NULL);
    for (int prompt = 1; prompt <= 3; prompt++) {
        struct reference r;
        ref_load(&r, "stories260K", prompt, "f16", nv);
        free(r.logits);
        eval(&m, r.prompt, r.n_prompt, 0, logits);
        uint32_t pos = r.n_prompt;
        for (int s = 0; s < REF_STEPS; s++) {
            int32_t next = interp_argmax(logits, nv);
            ck_assert_msg(next == r.greedy[s], "prompt %d step %d: %" PRId32 ", llama.cpp %" PRId32, prompt, s, next,
                          r.greedy[s]);
            if (s + 1 < REF_STEPS)
                eval(&m, &next, 1, pos++, logits);
        }
    }
    free(logits);
    model_close(&m);
}
END_TEST

/* With an F32 cache, every teacher-forced step of prompt 1 against llama.cpp's logged logits. */
static const char *const f32_models[][2] = {
    {"stories260K.gguf", "stories260K"},
    {"synthetic/tiny-llama-f32.gguf", "tiny-llama-f32"},
    {"synthetic/tiny-qwen2-f32.gguf", "tiny-qwen2-f32"},
    {"synthetic/tiny-phi3-f32.gguf", "tiny-phi3-f32"},
    {"synthetic/tiny-gemma2-f32.gguf", "tiny-gemma2-f32"},
};

START_TEST(test_kv_f32_steps)
{
    struct model m;
    model_open(&m, f32_models[_i][0], AE_TYPE_F32);
    int64_t nv = m.hp.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits);
    ck_assert(logits != NULL);
    struct reference r;
    ref_load(&r, f32_models[_i][1], 1, "f32", nv);
    char rel[256];
    snprintf(rel, sizeof rel, "reference/%s/prompt1.kvf32.steps.f32", f32_models[_i][1]);
    float *steps = ref_read_floats(rel, REF_STEPS * nv);
    eval(&m, r.prompt, r.n_prompt, 0, logits);
    uint32_t pos = r.n_prompt;
    for (int s = 0; s < REF_STEPS; s++) {
        if (s > 0)
            eval(&m, &r.greedy[s - 1], 1, pos++, logits);
        struct ref_diff d = ref_compare(logits, steps + (int64_t)s * nv, nv);
        ck_assert_msg(d.max_abs <= 2e-2, "%s step %d: logit %" PRId64 " differs by %g", f32_models[_i][1], s, d.at,
                      d.max_abs);
    }
    free(steps);
    free(r.logits);
    free(logits);
    model_close(&m);
}
END_TEST

/* The KV cache makes a prompt fed one token per step compute exactly what one step computes. */
START_TEST(test_one_token_at_a_time)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    const uint32_t n = sizeof prompt / sizeof prompt[0];
    struct model m;
    model_open(&m, f32_models[_i][0], AE_TYPE_F16);
    int64_t nv = m.hp.n_vocab;
    float *whole = malloc((size_t)nv * sizeof *whole), *split = malloc((size_t)nv * sizeof *split);
    ck_assert(whole && split);
    eval(&m, prompt, n, 0, whole);
    for (uint32_t i = 0; i < n; i++)
        eval(&m, &prompt[i], 1, i, split);
    ck_assert_msg(memcmp(whole, split, (size_t)nv * sizeof *whole) == 0, "%s: logits differ (max %g)",
                  f32_models[_i][1], ref_compare(whole, split, nv).max_abs);
    free(whole);
    free(split);
    model_close(&m);
}
END_TEST

/* The all_logits graph computes every row; its last row is the default graph's output, bit for bit. */
START_TEST(test_all_logits)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    const uint32_t n = sizeof prompt / sizeof prompt[0];
    ae_error err = {{0}};
    struct model m;
    model_open(&m, "synthetic/tiny-gemma2-f32.gguf", AE_TYPE_F16);
    int64_t nv = m.hp.n_vocab;
    struct import_options opt;
    import_options_init(&opt);
    opt.all_logits = true;
    struct ir_graph *g;
    struct interp *it;
    ck_assert_msg(import_model(&g, m.f, &opt, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(interp_create(&it, g, m.f, N_CTX, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(interp_output_size(it, n), (int64_t)n * nv);
    ck_assert_int_eq(interp_output_size(m.it, n), nv);
    float *all = malloc((size_t)(n * nv) * sizeof *all), *last = malloc((size_t)nv * sizeof *last);
    ck_assert(all && last);
    ck_assert_msg(interp_eval(it, prompt, n, 0, all, &err) == 0, "%s", err.msg);
    eval(&m, prompt, n, 0, last);
    ck_assert(memcmp(all + (n - 1) * nv, last, (size_t)nv * sizeof *last) == 0);
    free(all);
    free(last);
    interp_destroy(it);
    ir_graph_destroy(g);
    model_close(&m);
}
END_TEST

static void count_nodes(void *ctx, const struct ir_node *n, const float *data, int64_t numel)
{
    (void)n;
    ck_assert(data != NULL && numel > 0);
    (*(int *)ctx)++;
}

START_TEST(test_bad_steps)
{
    struct model m;
    model_open(&m, "stories260K.gguf", AE_TYPE_F16);
    ae_error err = {{0}};
    float *logits = malloc((size_t)m.hp.n_vocab * sizeof *logits);
    ck_assert(logits != NULL);
    int32_t bad = 512, good = 1;
    ck_assert_int_eq(interp_eval(m.it, &bad, 1, 0, logits, &err), -1);
    ck_assert_msg(strstr(err.msg, "512") && strstr(err.msg, "token_embd.weight"), "%s", err.msg);
    ck_assert_int_eq(interp_eval(m.it, &good, 1, N_CTX, logits, &err), -1);
    ck_assert_msg(strstr(err.msg, "context"), "%s", err.msg);
    ck_assert_int_eq(interp_eval(m.it, &good, 0, 0, logits, &err), -1);
    /* After refused steps the interpreter still works, and the trace sees every f32 node. */
    int traced = 0;
    interp_set_trace(m.it, count_nodes, &traced);
    ck_assert_msg(interp_eval(m.it, &good, 1, 0, logits, &err) == 0, "%s", err.msg);
    ck_assert_int_gt(traced, 100);
    ck_assert_int_eq(interp_argmax((const float[]){1, 3, 3, 2}, 4), 1);
    free(logits);
    model_close(&m);
}
END_TEST

/* ---- Ops the importers do not use, on a hand-built graph ----------------------------------------- */

#define SMALL_ROWS 4
#define SMALL_COLS 6

struct captured {
    const struct ir_graph *g;
    float *vals[64];     /* per node id: a copy of its value */
};

static void capture(void *ctx, const struct ir_node *n, const float *data, int64_t numel)
{
    struct captured *c = ctx;
    ck_assert_uint_lt(n->id, 64);
    c->vals[n->id] = malloc((size_t)numel * sizeof(float));
    ck_assert(c->vals[n->id] != NULL);
    memcpy(c->vals[n->id], data, (size_t)numel * sizeof(float));
}

START_TEST(test_small_ops)
{
    /* A GGUF in memory with one f32 table x [4 rows, 6 columns]. */
    static float table[SMALL_ROWS * SMALL_COLS];
    for (int i = 0; i < SMALL_ROWS * SMALL_COLS; i++)
        table[i] = (float)(i % 7) * 0.5f - 1.25f + 0.01f * (float)i;
    ae_error err = {{0}};
    ae_gguf_writer *w = ae_gguf_writer_create();
    int64_t ne[2] = {SMALL_COLS, SMALL_ROWS};
    ck_assert_msg(ae_gguf_writer_add_tensor(w, "x", AE_TYPE_F32, 2, ne, table, &err) == 0, "%s", err.msg);
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    ck_assert_msg(ae_gguf_writer_write(w, mf, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(mf);
    ae_gguf_writer_destroy(w);
    ae_gguf *f;
    ck_assert_msg(ae_gguf_open_memory(&f, buf, len, "small.gguf", &err) == 0, "%s", err.msg);

    struct ir_graph *g = ir_graph_create();
    struct ir_node *tok = ir_input(g, IR_INPUT_TOKENS);
    struct ir_node *pos = ir_input(g, IR_INPUT_POSITIONS);
    struct ir_node *x = ir_weight(g, "x", AE_TYPE_F32, 2, (int64_t[]){SMALL_ROWS, SMALL_COLS});
    struct ir_node *e = ir_get_rows(g, x, tok);                                   /* [T,6] */
    struct ir_node *perm = ir_permute(g, e, (int32_t[]){1, 0});                   /* [6,T] */
    struct ir_node *cat = ir_concat(g, e, ir_scale(g, e, 2.0f), 1);               /* [T,12] */
    struct ir_node *sl = ir_slice(g, cat, 1, 4, 5);                               /* [T,5] */
    struct ir_node *sm = ir_softmax(g, e, 0.5f);
    struct ir_node *ln = ir_layer_norm(g, e, 1e-5f);
    struct ir_node *ge = ir_gelu(g, e);
    struct ir_node *sc = ir_softcap(g, e, 2.0f);
    struct ir_node *e3 = ir_reshape(g, e, 3, (int64_t[]){IR_DIM_T, 1, SMALL_COLS});
    struct ir_rope_params rp = {IR_ROPE_NORMAL, 4, 64, 100.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f};
    struct ir_node *rn = ir_rope(g, e3, pos, NULL, &rp);
    rp.mode = IR_ROPE_NEOX;
    struct ir_node *rx = ir_rope(g, e3, pos, NULL, &rp);
    struct ir_node *att = ir_attention(g, e3, e3, e3, 1.0f, 0.0f, 1);            /* sees only itself */
    struct ir_node *att2 = ir_attention(g, e3, e3, e3, 0.5f, 0.0f, 0);
    ir_output(g, ir_last_row(g, sl), "out");
    ck_assert_msg(ir_verify(g, &err) == 0, "%s", err.msg);

    struct interp *it;
    ck_assert_msg(interp_create(&it, g, f, 8, &err) == 0, "%s", err.msg);
    struct captured c = {g, {0}};
    interp_set_trace(it, capture, &c);
    const int32_t toks[3] = {2, 0, 3};
    const int T = 3, P = 4;
    float out[5];
    ck_assert_int_eq(interp_output_size(it, 3), 5);
    ck_assert_msg(interp_eval(it, toks, 3, P, out, &err) == 0, "%s", err.msg);

    const float *E = c.vals[e->id];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < SMALL_COLS; j++)
            ck_assert_float_eq(E[t * SMALL_COLS + j], table[toks[t] * SMALL_COLS + j]);
    for (int t = 0; t < T; t++) {
        const float *er = E + t * SMALL_COLS;
        double mean = 0, var = 0, sum = 0;
        for (int j = 0; j < SMALL_COLS; j++) {
            ck_assert_float_eq(c.vals[perm->id][j * T + t], er[j]);
            ck_assert_float_eq(c.vals[cat->id][t * 12 + j], er[j]);
            ck_assert_float_eq(c.vals[cat->id][t * 12 + 6 + j], 2 * er[j]);
            sum += c.vals[sm->id][t * SMALL_COLS + j];
            mean += c.vals[ln->id][t * SMALL_COLS + j] / SMALL_COLS;
            ck_assert_float_eq_tol(c.vals[ge->id][t * SMALL_COLS + j],
                                   0.5 * er[j] * (1 + erf(er[j] / sqrt(2.0))), 2e-3);
            ck_assert_float_eq_tol(c.vals[sc->id][t * SMALL_COLS + j], 2 * tanh(er[j] / 2), 1e-6);
        }
        for (int j = 0; j < 5; j++)
            ck_assert_float_eq(c.vals[sl->id][t * 5 + j], c.vals[cat->id][t * 12 + 4 + j]);
        for (int j = 0; j < SMALL_COLS; j++) {
            double d = c.vals[ln->id][t * SMALL_COLS + j] - mean;
            var += d * d / SMALL_COLS;
        }
        ck_assert_float_eq_tol(sum, 1.0, 1e-6);
        ck_assert_float_eq_tol(c.vals[sm->id][t * SMALL_COLS + 1] / c.vals[sm->id][t * SMALL_COLS + 0],
                               exp(0.5 * (er[1] - er[0])), 1e-5);
        ck_assert_float_eq_tol(mean, 0.0, 1e-6);
        ck_assert_float_eq_tol(var, 1.0, 1e-3);

        /* rope at position P + t: pairs (0,1), (2,3) normal; (0,2), (1,3) neox; 4, 5 pass through. */
        int p = P + t;
        for (int i = 0; i < 2; i++) {
            double th = p * pow(100.0, -2.0 * i / 4.0);
            int a = 2 * i, b = 2 * i + 1;
            ck_assert_float_eq_tol(c.vals[rn->id][t * 6 + a], er[a] * cos(th) - er[b] * sin(th), 1e-5);
            ck_assert_float_eq_tol(c.vals[rn->id][t * 6 + b], er[a] * sin(th) + er[b] * cos(th), 1e-5);
            a = i, b = i + 2;
            ck_assert_float_eq_tol(c.vals[rx->id][t * 6 + a], er[a] * cos(th) - er[b] * sin(th), 1e-5);
            ck_assert_float_eq_tol(c.vals[rx->id][t * 6 + b], er[a] * sin(th) + er[b] * cos(th), 1e-5);
        }
        for (int j = 4; j < 6; j++) {
            ck_assert_float_eq(c.vals[rn->id][t * 6 + j], er[j]);
            ck_assert_float_eq(c.vals[rx->id][t * 6 + j], er[j]);
        }
        /* A window of 1 leaves each query its own value; without a window, the causal softmax mix. */
        double wsum = 0, acc[SMALL_COLS] = {0};
        for (int j = 0; j <= t; j++) {
            double l = 0;
            for (int d = 0; d < SMALL_COLS; d++)
                l += (double)er[d] * E[j * SMALL_COLS + d];
            double wgt = exp(0.5 * l);
            wsum += wgt;
            for (int d = 0; d < SMALL_COLS; d++)
                acc[d] += wgt * E[j * SMALL_COLS + d];
        }
        for (int d = 0; d < SMALL_COLS; d++) {
            ck_assert_float_eq_tol(c.vals[att->id][t * 6 + d], er[d], 1e-6);
            ck_assert_float_eq_tol(c.vals[att2->id][t * 6 + d], acc[d] / wsum, 1e-5);
        }
    }
    for (int j = 0; j < 5; j++)
        ck_assert_float_eq(out[j], c.vals[sl->id][(T - 1) * 5 + j]);

    for (int i = 0; i < 64; i++)
        free(c.vals[i]);
    interp_destroy(it);
    ir_graph_destroy(g);
    ae_gguf_close(f);
    free(buf);
}
END_TEST

/* A graph after the passes, fused ops and all, runs as it is and gives the imported graph's logits. */
START_TEST(test_fused_graph_runs)
{
    struct model m;
    model_open(&m, "stories260K.gguf", AE_TYPE_F16);
    ae_error err = {{0}};
    struct ir_graph *fused;
    struct import_options opt;
    import_options_init(&opt);
    opt.n_ctx = N_CTX;
    ck_assert_msg(import_model(&fused, m.f, &opt, NULL, &err) == 0, "%s", err.msg);
    struct pass_ctx c;
    pass_ctx_init(&c, &err);
    c.gguf = m.f;
    c.opt.n_ctx = N_CTX;
    ck_assert_msg(pass_pipeline_run(fused, &c) == 0, "%s", err.msg);
    ck_assert_uint_gt(c.stats.fused[FUSE_MATMUL_ROPE], 0);
    struct interp *it;
    ck_assert_msg(interp_create(&it, fused, m.f, N_CTX, &err) == 0, "%s", err.msg);
    const int32_t ids[] = {1, 403, 407, 261, 378};
    float a[512], b[512];
    eval(&m, ids, 5, 0, a);
    ck_assert_msg(interp_eval(it, ids, 5, 0, b, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 512; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])), "logit %d: %g imported, %g fused", i,
                      (double)a[i], (double)b[i]);
    interp_destroy(it);
    pass_ctx_free(&c);
    ir_graph_destroy(fused);
    model_close(&m);
}
END_TEST

static Suite *interp_suite(void)
{
    Suite *s = suite_create("interp");
    TCase *tc = tcase_create("llama.cpp");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_model_against_llama_cpp, 0, ref_n_models);
    tcase_add_loop_test(tc, test_moe_against_llama_cpp, 0, ref_n_moe_models);
    tcase_add_test(tc, test_fused_graph_runs);
    tcase_add_test(tc, test_stories_free_running);
    tcase_add_loop_test(tc, test_kv_f32_steps, 0, (int)(sizeof f32_models / sizeof f32_models[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("self");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_one_token_at_a_time, 0, (int)(sizeof f32_models / sizeof f32_models[0]));
    tcase_add_test(tc, test_all_logits);
    tcase_add_test(tc, test_bad_steps);
    tcase_add_test(tc, test_small_ops);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(interp_suite());
}
