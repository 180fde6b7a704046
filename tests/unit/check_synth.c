/* Tests for 'aetherc synth' (compiler/synth/cmd_synth.c) and its generator (compiler/synth/synth.h).
 *
 * A small llama model of every supported weight type is written (in-process through cmd_synth, with
 * stderr captured), read back with the GGUF reader and imported into IR by the llama importer, and every tensor
 * is dequantized: names, shapes, types, metadata and tokenizer keys must be right, and each tensor's
 * values finite with the std (and for norms the mean) that the generator promises. Then: the same seed
 * gives the same bytes whatever the thread count, another seed other bytes, a tensor's bytes do not
 * depend on the rest of the model, and bad flags exit 2 (bad input 1) with a message naming the flag.
 * With AE_AETHERC set (make check), the built binary is run too, for its exit statuses.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ae_gguf.h"
#include "gguf_write.h"
#include "commands.h"
#include "import.h"
#include "synth.h"
#include "test_util.h"

#define VOCAB_FILE "models/stories260K.gguf" /* 512-token SentencePiece vocab */
#define VOCAB_SIZE 512
#define MAX_ARGS 64

/* ---- helpers ------------------------------------------------------------------------------------- */

static char tmp_dir_path[256];

/* A fresh temporary folder for this test, made on first use and removed by tmp_remove. */
static const char *tmp_dir(void)
{
    char *dir = tmp_dir_path;
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof tmp_dir_path, "%s/check_synth.XXXXXX", base && *base ? base : "/tmp");
        ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
    }
    return dir;
}

/* Removes the temporary folder and the files in it (a checked teardown: runs in the test's process). */
static void tmp_remove(void)
{
    if (!tmp_dir_path[0])
        return;
    const char *dir = tmp_dir_path;
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            char path[600];
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(dir);
    tmp_dir_path[0] = 0;
}

/* "<tmp>/<name>" in one of two rotating buffers. */
static const char *tmp_path(const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir(), name);
    return buf[k];
}

/* Runs cmd_synth on a space-separated argument line ("synth" is prepended); stderr goes into err. */
static int run_synth(const char *line, char *err, size_t err_cap)
{
    char copy[4096];
    char *argv[MAX_ARGS];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", line);
    argv[argc++] = "synth";
    for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
        ck_assert_int_lt(argc, MAX_ARGS - 1);
        argv[argc++] = tok;
    }
    argv[argc] = NULL;

    FILE *cap = tmpfile();
    ck_assert(cap != NULL);
    fflush(stderr);
    int saved = dup(2);
    ck_assert(saved >= 0 && dup2(fileno(cap), 2) >= 0);
    int rc = cmd_synth(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(cap);
    size_t n = fread(err, 1, err_cap - 1, cap);
    err[n] = 0;
    fclose(cap);
    return rc;
}

/* The argument line of a small model: dim 256, 2 layers, 4 heads of 64, 2 kv heads, ffn 512. */
static const char *model_args(const char *type, const char *out, const char *extra)
{
    static char line[2048];
    snprintf(line, sizeof line,
             "--arch llama --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 --type %s --vocab-from %s -o %s %s",
             type, test_shared_path(VOCAB_FILE), out, extra ? extra : "");
    return line;
}

static void synth_ok(const char *type, const char *out, const char *extra)
{
    char err[4096];
    int rc = run_synth(model_args(type, out, extra), err, sizeof err);
    ck_assert_msg(rc == 0, "synth %s failed (%d): %s", type, rc, err);
    ck_assert_msg(strstr(err, "params") && strchr(err, '\n') == strrchr(err, '\n'),
                  "expected a one-line summary, got: %s", err);
}

static ae_gguf *open_ok(const char *path)
{
    ae_gguf *g = NULL;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_open(&g, path, &err) == 0, "%s", err.msg);
    return g;
}

static uint32_t get_u32(const ae_gguf *g, const char *key)
{
    uint32_t v = 0;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_get_u32(g, key, &v, &err) == 1, "key %s: missing or not u32 (%s)", key, err.msg);
    return v;
}

static float get_f32(const ae_gguf *g, const char *key)
{
    float v = 0;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_get_f32(g, key, &v, &err) == 1, "key %s: missing or not f32 (%s)", key, err.msg);
    return v;
}

static void check_str(const ae_gguf *g, const char *key, const char *want)
{
    struct ae_str s;
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_get_str(g, key, &s, &err) == 1, "key %s: missing or not a string", key);
    ck_assert_msg(ae_str_eq(s, want), "key %s: expected \"%s\", got \"%.*s\"", key, want, (int)s.len, s.ptr);
}

struct stats {
    double mean, std;
};

/* Dequantizes every row of a tensor, asserting finite values; returns mean and std. */
static struct stats tensor_stats(const struct ae_gguf_tensor *t)
{
    ae_error err = {{0}};
    uint64_t row_bytes;
    ck_assert_msg(ae_type_row_bytes(t->type, (uint64_t)t->ne[0], &row_bytes, &err) == 0, "%s", err.msg);
    float *row = malloc((size_t)t->ne[0] * sizeof *row);
    ck_assert(row != NULL);
    int64_t rows = (int64_t)(t->n_elements / (uint64_t)t->ne[0]);
    double s1 = 0, s2 = 0;
    int64_t bad = 0, first_bad = -1; /* counted, not asserted per value: each ck_assert is a message */
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (uint64_t)r * row_bytes;
        if (ae_dequantize_row(t->type, src, row, t->ne[0], &err) != 0)
            ck_abort_msg("%s: %s", t->name, err.msg);
        for (int64_t i = 0; i < t->ne[0]; i++) {
            if (!isfinite(row[i])) {
                first_bad = bad++ ? first_bad : r * t->ne[0] + i;
                continue;
            }
            s1 += row[i];
            s2 += (double)row[i] * row[i];
        }
    }
    free(row);
    ck_assert_msg(bad == 0, "%s: %lld values are NaN or Inf, the first at index %lld", t->name, (long long)bad,
                  (long long)first_bad);
    double n = (double)t->n_elements, mean = s1 / n;
    return (struct stats){mean, sqrt(fmax(s2 / n - mean * mean, 0))};
}

/* The llama importer builds the model's graph (which passes ir_verify) and reads its hyperparameters. */
static void import_model_ok(const ae_gguf *g, struct import_hparams *hp)
{
    struct import_options opt;
    struct ir_graph *graph = NULL;
    ae_error err = {{0}};
    import_options_init(&opt);
    ck_assert_msg(import_model(&graph, g, &opt, hp, &err) == 0, "import: %s", err.msg);
    ir_graph_destroy(graph);
}

/* ---- the model of each type ---------------------------------------------------------------------- */

static const struct type_row {
    const char *name;
    uint32_t type;
    uint32_t file_type; /* llama_ftype */
} type_rows[] = {
    {"f32", AE_TYPE_F32, 0},    {"f16", AE_TYPE_F16, 1},    {"bf16", AE_TYPE_BF16, 32}, {"q4_0", AE_TYPE_Q4_0, 2},
    {"q4_1", AE_TYPE_Q4_1, 3},  {"q5_0", AE_TYPE_Q5_0, 8},  {"q5_1", AE_TYPE_Q5_1, 9},  {"q8_0", AE_TYPE_Q8_0, 7},
    {"q2_k", AE_TYPE_Q2_K, 10}, {"q3_k", AE_TYPE_Q3_K, 12}, {"q4_k", AE_TYPE_Q4_K, 15}, {"q5_k", AE_TYPE_Q5_K, 17},
    {"q6_k", AE_TYPE_Q6_K, 18}, {"iq4_nl", AE_TYPE_IQ4_NL, 25}, {"iq4_xs", AE_TYPE_IQ4_XS, 30},
    {"tq1_0", AE_TYPE_TQ1_0, 36}, {"tq2_0", AE_TYPE_TQ2_0, 37},
};
#define N_TYPES ((int)(sizeof type_rows / sizeof type_rows[0]))

/* What one tensor of the small model must be. ne1 0: 1-D. std, mean: of the dequantized values. */
struct want_tensor {
    char name[64];
    int64_t ne0, ne1;
    bool quantized; /* of the chosen type; else F32 */
    double mean, std;
};

/* The expected tensors of the small model (dim 256, 2 layers, q 256, kv 128, ffn 512, vocab 512). */
static int want_tensors(struct want_tensor *w, bool tied, int64_t head_dim)
{
    const double dim = 256, layers = 2, q = 4.0 * head_dim, kv = 2.0 * head_dim, ffn = 512;
    const double deep = 1 / sqrt(2 * layers);
    int n = 0;
#define WANT(NAME, NE0, NE1, QUANT, MEAN, STD)                                                                  \
    do {                                                                                                      \
        snprintf(w[n].name, sizeof w[n].name, "%s", NAME);                                                   \
        w[n].ne0 = (int64_t)(NE0), w[n].ne1 = (int64_t)(NE1), w[n].quantized = QUANT;                        \
        w[n].mean = MEAN, w[n].std = STD;                                                                     \
        n++;                                                                                                  \
    } while (0)
    WANT("token_embd.weight", dim, VOCAB_SIZE, true, 0, tied ? 0.02 : 1.0);
    for (int l = 0; l < 2; l++) {
        char name[64];
#define LAYER(SUFFIX, NE0, NE1, QUANT, MEAN, STD)                                                               \
    do {                                                                                                      \
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, SUFFIX);                                           \
        WANT(name, NE0, NE1, QUANT, MEAN, STD);                                                               \
    } while (0)
        LAYER("attn_norm", dim, 0, false, 1, 0.1);
        LAYER("attn_q", dim, q, true, 0, 1 / sqrt(dim));
        LAYER("attn_k", dim, kv, true, 0, 1 / sqrt(dim));
        LAYER("attn_v", dim, kv, true, 0, 1 / sqrt(dim));
        LAYER("attn_output", q, dim, true, 0, deep / sqrt(q));
        LAYER("ffn_norm", dim, 0, false, 1, 0.1);
        LAYER("ffn_gate", dim, ffn, true, 0, 1 / sqrt(dim));
        LAYER("ffn_up", dim, ffn, true, 0, 1 / sqrt(dim));
        LAYER("ffn_down", ffn, dim, true, 0, deep / sqrt(ffn));
#undef LAYER
    }
    const double m = tied ? 8 * sqrt(256 / dim) : 1;
    WANT("output_norm.weight", dim, 0, false, m, 0.1 * m);
    if (!tied)
        WANT("output.weight", dim, VOCAB_SIZE, true, 0, 4 / sqrt(dim));
#undef WANT
    return n;
}

/* Checks shapes, types and value statistics of every tensor against the expected list. */
static void check_tensors(const ae_gguf *g, uint32_t type, bool tied, int64_t head_dim)
{
    struct want_tensor want[32];
    int n = want_tensors(want, tied, head_dim);
    ck_assert_uint_eq(g->n_tensors, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        const struct want_tensor *w = &want[i];
        const struct ae_gguf_tensor *t = ae_gguf_find_tensor(g, w->name);
        ck_assert_msg(t != NULL, "tensor %s is missing", w->name);
        ck_assert_msg(t->n_dims == (w->ne1 ? 2u : 1u), "%s: %u dims", w->name, t->n_dims);
        ck_assert_msg(t->ne[0] == w->ne0 && t->ne[1] == (w->ne1 ? w->ne1 : 1),
                      "%s: shape [%lld, %lld], expected [%lld, %lld]", w->name, (long long)t->ne[0],
                      (long long)t->ne[1], (long long)w->ne0, (long long)w->ne1);
        uint32_t want_type = w->quantized ? type : AE_TYPE_F32;
        ck_assert_msg(t->type == want_type, "%s: type %s, expected %s", w->name, ae_type_name(t->type),
                      ae_type_name(want_type));
        struct stats s = tensor_stats(t);
        /* The generator's calibration is within 1% (test_generator_calibration); the margins are four
         * standard errors of a sample of this size, plus 5%. */
        double n_values = (double)t->n_elements;
        double std_tol = 1.05 + 4 / sqrt(2 * n_values), mean_tol = w->std * (0.01 + 4 / sqrt(n_values));
        ck_assert_msg(s.std > w->std / std_tol && s.std < w->std * std_tol, "%s (%s): std %g, expected %g",
                      w->name, ae_type_name(t->type), s.std, w->std);
        ck_assert_msg(fabs(s.mean - w->mean) < mean_tol, "%s (%s): mean %g, expected %g", w->name,
                      ae_type_name(t->type), s.mean, w->mean);
    }
}

/* Every tokenizer.* key of the vocab file is in the model with the same type and size. */
static void check_tokenizer(const ae_gguf *g)
{
    ae_gguf *v = open_ok(test_shared_path(VOCAB_FILE));
    int copied = 0, in_model = 0;
    for (uint64_t i = 0; i < v->n_kv; i++) {
        const struct ae_gguf_kv *kv = &v->kv[i];
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10))
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        const struct ae_gguf_kv *got = ae_gguf_find_kv(g, key);
        ck_assert_msg(got != NULL, "tokenizer key %s was not copied", key);
        ck_assert_msg(got->value.type == kv->value.type, "%s: type %s, expected %s", key,
                      ae_gguf_type_name(got->value.type), ae_gguf_type_name(kv->value.type));
        if (kv->value.type == AE_GGUF_ARRAY) {
            ck_assert_uint_eq(got->value.arr.n, kv->value.arr.n);
            ck_assert_uint_eq(got->value.arr.type, kv->value.arr.type);
        }
        copied++;
    }
    for (uint64_t i = 0; i < g->n_kv; i++)
        in_model += g->kv[i].key.len >= 10 && !memcmp(g->kv[i].key.ptr, "tokenizer.", 10);
    ck_assert_int_ge(copied, 3);
    ck_assert_int_eq(in_model, copied);
    const struct ae_gguf_array *a, *b;
    ae_error err = {{0}};
    ck_assert_int_eq(ae_gguf_get_arr(g, "tokenizer.ggml.tokens", AE_GGUF_STRING, &a, &err), 1);
    ck_assert_int_eq(ae_gguf_get_arr(v, "tokenizer.ggml.tokens", AE_GGUF_STRING, &b, &err), 1);
    ck_assert_uint_eq(a->n, VOCAB_SIZE);
    for (uint64_t i = 0; i < a->n; i += 37) {
        struct ae_str x = ae_gguf_arr_str(a, i), y = ae_gguf_arr_str(b, i);
        ck_assert_msg(x.len == y.len && !memcmp(x.ptr, y.ptr, x.len), "token %llu differs", (unsigned long long)i);
    }
    ae_gguf_close(v);
}

START_TEST(test_each_type)
{
    const struct type_row *tr = &type_rows[_i];
    const char *out = tmp_path("model.gguf");
    synth_ok(tr->name, out, NULL);
    ae_gguf *g = open_ok(out);
    ck_assert_uint_eq(g->version, 3);
    check_str(g, "general.architecture", "llama");
    ck_assert_uint_eq(get_u32(g, "general.file_type"), tr->file_type);
    ck_assert_uint_eq(get_u32(g, "llama.context_length"), 2048);
    ck_assert_uint_eq(get_u32(g, "llama.embedding_length"), 256);
    ck_assert_uint_eq(get_u32(g, "llama.block_count"), 2);
    ck_assert_uint_eq(get_u32(g, "llama.feed_forward_length"), 512);
    ck_assert_uint_eq(get_u32(g, "llama.attention.head_count"), 4);
    ck_assert_uint_eq(get_u32(g, "llama.attention.head_count_kv"), 2);
    ck_assert_uint_eq(get_u32(g, "llama.rope.dimension_count"), 64);
    ck_assert_uint_eq(get_u32(g, "llama.vocab_size"), VOCAB_SIZE);
    ck_assert_float_eq(get_f32(g, "llama.rope.freq_base"), 10000.0f);
    ck_assert_float_eq(get_f32(g, "llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    ck_assert(ae_gguf_find_kv(g, "general.name") != NULL);

    struct import_hparams hp;
    import_model_ok(g, &hp);
    ck_assert_uint_eq(hp.n_vocab, VOCAB_SIZE);
    ck_assert_uint_eq(hp.n_embd, 256);
    ck_assert_uint_eq(hp.n_head_kv, 2);
    ck_assert_uint_eq(hp.head_dim_k, 64);
    ck_assert(!hp.tied_embeddings);

    check_tokenizer(g);
    check_tensors(g, tr->type, false, 64);
    ae_gguf_close(g);
}
END_TEST

START_TEST(test_tied_and_options)
{
    const char *out = tmp_path("tied.gguf");
    synth_ok("q8_0", out, "--tied --head-dim 32 --ctx 512 --rope-base 500000 --eps 1e-6 --name tiny --seed 7");
    ae_gguf *g = open_ok(out);
    check_str(g, "general.name", "tiny");
    ck_assert_uint_eq(get_u32(g, "llama.context_length"), 512);
    ck_assert_uint_eq(get_u32(g, "llama.rope.dimension_count"), 32);
    ck_assert_uint_eq(get_u32(g, "llama.attention.key_length"), 32);
    ck_assert_uint_eq(get_u32(g, "llama.attention.value_length"), 32);
    ck_assert_float_eq(get_f32(g, "llama.rope.freq_base"), 500000.0f);
    ck_assert_float_eq(get_f32(g, "llama.attention.layer_norm_rms_epsilon"), 1e-6f);
    ck_assert(ae_gguf_find_tensor(g, "output.weight") == NULL);
    struct import_hparams hp;
    import_model_ok(g, &hp);
    ck_assert(hp.tied_embeddings);
    ck_assert_uint_eq(hp.head_dim_k, 32);
    check_tensors(g, AE_TYPE_Q8_0, true, 32);
    ae_gguf_close(g);
}
END_TEST

/* ---- determinism --------------------------------------------------------------------------------- */

static bool files_equal(const char *a, const char *b)
{
    size_t na, nb;
    void *pa = test_read_file(a, &na), *pb = test_read_file(b, &nb);
    bool eq = na == nb && !memcmp(pa, pb, na);
    free(pa);
    free(pb);
    return eq;
}

START_TEST(test_same_seed_same_bytes)
{
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s", tmp_path("a.gguf"));
    snprintf(b, sizeof b, "%s", tmp_path("b.gguf"));
    snprintf(c, sizeof c, "%s", tmp_path("c.gguf"));
    synth_ok("q4_k", a, "--seed 99 --threads 1");
    synth_ok("q4_k", b, "--seed 99 --threads 3");
    synth_ok("q4_k", c, "--seed 100");
    ck_assert_msg(files_equal(a, b), "same seed, different thread counts: files differ");
    ck_assert_msg(!files_equal(a, c), "different seeds: files are identical");
    ae_gguf *ga = open_ok(a), *gc = open_ok(c);
    for (uint64_t i = 0; i < ga->n_tensors; i++) {
        const struct ae_gguf_tensor *ta = &ga->tensors[i], *tc = ae_gguf_find_tensor(gc, ta->name);
        ck_assert(tc != NULL && tc->n_bytes == ta->n_bytes);
        ck_assert_msg(memcmp(ta->data, tc->data, ta->n_bytes), "%s: same bytes for seeds 99 and 100", ta->name);
    }
    ae_gguf_close(ga);
    ae_gguf_close(gc);
}
END_TEST

/* A tensor's bytes depend on (seed, name, type, shape) only: adding a layer changes no other tensor. */
START_TEST(test_tensor_bytes_independent_of_model)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tmp_path("two.gguf"));
    snprintf(b, sizeof b, "%s", tmp_path("three.gguf"));
    synth_ok("q6_k", a, NULL);
    char err[4096], line[2048];
    snprintf(line, sizeof line,
             "--arch llama --dim 256 --layers 3 --heads 4 --kv-heads 2 --ffn 512 --type q6_k --vocab-from %s -o %s",
             test_shared_path(VOCAB_FILE), b);
    ck_assert_msg(run_synth(line, err, sizeof err) == 0, "%s", err);
    ae_gguf *ga = open_ok(a), *gb = open_ok(b);
    const char *same[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_gate.weight", "output.weight"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        const struct ae_gguf_tensor *x = ae_gguf_find_tensor(ga, same[i]), *y = ae_gguf_find_tensor(gb, same[i]);
        ck_assert(x && y && x->n_bytes == y->n_bytes);
        ck_assert_msg(!memcmp(x->data, y->data, x->n_bytes), "%s differs between 2 and 3 layers", same[i]);
    }
    /* attn_output and ffn_down are scaled by 1/sqrt(2 layers), so they must differ. */
    const struct ae_gguf_tensor *x = ae_gguf_find_tensor(ga, "blk.0.ffn_down.weight");
    const struct ae_gguf_tensor *y = ae_gguf_find_tensor(gb, "blk.0.ffn_down.weight");
    ck_assert(x && y && memcmp(x->data, y->data, x->n_bytes));
    ae_gguf_close(ga);
    ae_gguf_close(gb);
}
END_TEST

/* The generator alone, on larger tensors: std within 2% and mean within 0.01 std for every type. */
START_TEST(test_generator_calibration)
{
    struct synth_tables *t = synth_tables_create();
    ck_assert(t != NULL);
    const int64_t ne0 = 4096, rows = 64;
    for (int i = 0; i < N_TYPES; i++) {
        uint32_t type = type_rows[i].type;
        ck_assert(synth_type_supported(type));
        ck_assert(strstr(synth_type_list(), type_rows[i].name) != NULL);
        uint64_t row_bytes;
        ck_assert_int_eq(ae_type_row_bytes(type, (uint64_t)ne0, &row_bytes, NULL), 0);
        uint8_t *buf = malloc(row_bytes * rows);
        ck_assert(buf != NULL);
        const float target = 0.003f;
        synth_fill_tensor(t, type, (struct synth_dist){0, target}, synth_tensor_seed(5, "w"), ne0, rows, buf, 2);
        struct ae_gguf_tensor tensor = {.name = "w", .n_dims = 2, .ne = {ne0, rows, 1, 1}, .type = type,
                                        .n_elements = (uint64_t)(ne0 * rows), .n_bytes = row_bytes * rows,
                                        .data = buf};
        struct stats s = tensor_stats(&tensor);
        ck_assert_msg(fabs(s.std / target - 1) < 0.02, "%s: std %g, expected %g", type_rows[i].name, s.std, target);
        ck_assert_msg(fabs(s.mean) < 0.01 * target, "%s: mean %g", type_rows[i].name, s.mean);
        free(buf);
    }
    ck_assert(!synth_type_supported(AE_TYPE_IQ2_XXS));
    ck_assert(!synth_type_supported(AE_TYPE_Q8_K));
    synth_tables_destroy(t);
}
END_TEST

/* ---- the mixture-of-experts architectures ---------------------------------------------------------- */

/* One tensor the model must have: shape [ne0, ne1, ne2] (0: fewer dims), of the chosen type or f32, and
 * the std its values are drawn with. */
struct want_moe {
    const char *name;
    int64_t ne[3];
    bool quantized;
    double std;
};

static const struct moe_row {
    const char *arch, *gguf_arch, *flags;
    uint32_t n_expert, n_used, n_tensors;
    struct want_moe want[6];
} moe_rows[] = {
    {"mixtral", "llama", "--experts 5 --experts-used 3 --type q4_0", 5, 3, 3 + 2 * 10,
     {{"blk.1.ffn_gate_inp.weight", {256, 5, 0}, false, 1 / 16.0},
      {"blk.1.ffn_gate_exps.weight", {256, 512, 5}, true, 1 / 16.0},
      {"blk.0.ffn_down_exps.weight", {512, 256, 5}, true, 0.5 / sqrt(512)},
      {"blk.1.attn_q.weight", {256, 256, 0}, true, 1 / 16.0}}},
    {"qwen2moe", "qwen2moe", "--experts 7 --experts-used 1 --expert-ffn 64 --shared-ffn 256 --type iq4_nl", 7, 1,
     3 + 2 * 17,
     {{"blk.0.ffn_up_exps.weight", {256, 64, 7}, true, 1 / 16.0},
      {"blk.1.ffn_gate_inp_shexp.weight", {256, 0, 0}, false, 1 / 16.0},
      {"blk.1.ffn_down_shexp.weight", {256, 256, 0}, true, 0.5 / 16},
      {"blk.1.attn_k.bias", {256, 0, 0}, false, 0.1}}},
    {"deepseek2", "deepseek2",
     "--head-dim 96 --experts 4 --experts-used 2 --expert-ffn 128 --kv-lora 64 --q-lora 128 --type q8_0", 4, 2,
     3 + 12 + 16,
     {{"blk.0.ffn_gate.weight", {256, 512, 0}, true, 1 / 16.0},
      {"blk.1.attn_q_b.weight", {128, 4 * 96, 0}, true, 1 / sqrt(128)},
      {"blk.1.attn_kv_a_mqa.weight", {256, 64 + 32, 0}, true, 1 / 16.0},
      {"blk.1.attn_kv_b.weight", {64, 4 * (64 + 64), 0}, true, 1 / 8.0},
      {"blk.1.attn_output.weight", {4 * 64, 256, 0}, true, 0.5 / 16},
      {"blk.1.ffn_up_shexp.weight", {256, 128, 0}, true, 1 / 16.0}}},
};

START_TEST(test_moe_arch)
{
    const struct moe_row *m = &moe_rows[_i];
    const char *out = tmp_path("moe.gguf");
    char line[2048], err[4096];
    snprintf(line, sizeof line, "--arch %s --dim 256 --layers 2 --heads 4 --ffn 512 %s --vocab-from %s -o %s", m->arch,
             m->flags, test_shared_path(VOCAB_FILE), out);
    int rc = run_synth(line, err, sizeof err);
    ck_assert_msg(rc == 0, "synth %s failed (%d): %s", m->arch, rc, err);
    ae_gguf *g = open_ok(out);
    check_str(g, "general.architecture", m->gguf_arch);
    ck_assert_uint_eq(g->n_tensors, m->n_tensors);
    struct import_hparams hp;
    import_model_ok(g, &hp);
    ck_assert_uint_eq(hp.n_expert, m->n_expert);
    ck_assert_uint_eq(hp.n_expert_used, m->n_used);
    uint32_t type = (uint32_t)ae_type_from_name(strstr(m->flags, "--type ") + 7);
    for (int i = 0; i < 6 && m->want[i].name; i++) {
        const struct want_moe *w = &m->want[i];
        const struct ae_gguf_tensor *t = ae_gguf_find_tensor(g, w->name);
        ck_assert_msg(t != NULL, "%s: tensor %s is missing", m->arch, w->name);
        uint32_t dims = w->ne[2] ? 3 : w->ne[1] ? 2 : 1;
        ck_assert_msg(t->n_dims == dims && t->ne[0] == w->ne[0] && t->ne[1] == (w->ne[1] ? w->ne[1] : 1) &&
                          t->ne[2] == (w->ne[2] ? w->ne[2] : 1),
                      "%s: %s has %u dims {%lld, %lld, %lld}", m->arch, w->name, t->n_dims, (long long)t->ne[0],
                      (long long)t->ne[1], (long long)t->ne[2]);
        ck_assert_msg(t->type == (w->quantized ? type : AE_TYPE_F32), "%s: %s is %s", m->arch, w->name,
                      ae_type_name(t->type));
        struct stats st = tensor_stats(t);
        double tol = 1.05 + 4 / sqrt(2 * (double)t->n_elements);
        ck_assert_msg(st.std > w->std / tol && st.std < w->std * tol, "%s: %s has std %g, expected %g", m->arch,
                      w->name, st.std, w->std);
    }
    ae_gguf_close(g);
}
END_TEST

/* ---- bad flags ----------------------------------------------------------------------------------- */

/* A vocab file without tokenizer.ggml.tokens. */
static const char *write_vocabless_file(void)
{
    const char *path = tmp_path("no_vocab.gguf");
    ae_gguf_writer *w = ae_gguf_writer_create();
    ck_assert(w != NULL);
    ae_gguf_writer_add_str(w, "general.architecture", "llama");
    ae_error err = {{0}};
    ck_assert_msg(ae_gguf_writer_write_file(w, path, NULL, NULL, &err) == 0, "%s", err.msg);
    ae_gguf_writer_destroy(w);
    return path;
}

/* Rows: the flags after the valid base line (later flags override earlier ones), or the whole line when
 * whole is set; the exit status; a string the message must contain. */
static const struct bad_row {
    bool whole;
    const char *flags;
    int status;
    const char *says;
} bad_rows[] = {
    {true, "", 2, "missing --arch"},
    {true, "--arch llama --layers 2 --heads 4 --ffn 512 --type q8_0 --vocab-from V -o O", 2, "missing --dim"},
    {true, "--arch llama --dim 256 --layers 2 --heads 4 --ffn 512 --vocab-from V -o O", 2, "missing --type"},
    {true, "--arch llama --dim 256 --layers 2 --heads 4 --ffn 512 --type q8_0 --vocab-from V", 2, "missing -o"},
    {true, "--arch llama --dim 256 --layers 2 --heads 4 --ffn 512 --type q8_0 -o O", 2, "missing --vocab-from"},
    {false, "--dim abc", 2, "--dim: expected an integer"},
    {false, "--dim 0", 2, "--dim"},
    {false, "--dim -256", 2, "--dim"},
    {false, "--dim 99999999999999999999999", 2, "--dim"},
    {false, "--layers 2x", 2, "--layers"},
    {false, "--seed -1", 2, "--seed"},
    {false, "--eps -1", 2, "--eps"},
    {false, "--rope-base nan", 2, "--rope-base"},
    {false, "--dim", 2, "--dim needs a value"},
    {false, "--frobnicate 3", 2, "unknown flag '--frobnicate'"},
    {false, "stray", 2, "unexpected argument 'stray'"},
    {false, "--tied=yes", 2, "--tied takes no value"},
    {false, "--arch gpt2", 2, "--arch: 'gpt2' is not supported"},
    {false, "--experts 4", 2, "--experts does not apply to --arch llama"},
    {false, "--arch mixtral", 2, "--arch mixtral needs --experts"},
    {false, "--arch mixtral --experts 2 --experts-used 3", 2, "--experts-used 3 is more than --experts 2"},
    {false, "--arch qwen2moe --experts 4 --tied", 2, "requires output.weight"},
    {false, "--arch qwen2moe --experts 4 --kv-lora 8", 2, "--kv-lora does not apply to --arch qwen2moe"},
    {false, "--arch deepseek2 --experts 4 --kv-heads 2", 2, "as many kv heads as heads"},
    {false, "--arch deepseek2 --experts 4 --rope-dim 64", 2, "--rope-dim 64 must be even"},
    {false, "--arch deepseek2 --experts 4 --dense-layers 3", 2, "--dense-layers 3 is more than --layers 2"},
    {false, "--type q9_9", 2, "valid types: f32 f16 bf16 q4_0"},
    {false, "--type iq2_xxs", 2, "'iq2_xxs' is not supported"},
    {false, "--kv-heads 3", 2, "--kv-heads 3 does not divide --heads 4"},
    {false, "--heads 3 --kv-heads 3", 2, "--dim 256 is not a multiple of --heads 3"},
    {false, "--head-dim 33", 2, "--head-dim 33 is odd"},
    {false, "--dim 64 --heads 2 --type q4_k", 2, "token_embd.weight has rows of 64 values"},
    {false, "--ffn 100 --type q4_0", 2, "blk.0.ffn_down.weight has rows of 100 values"},
    {false, "--head-dim 4 --type q5_0", 2, "blk.0.attn_output.weight has rows of 16 values"},
    {false, "--head-dim 8 --type q6_k", 2, "blk.0.attn_output.weight has rows of 32 values, not a multiple of q6_k"},
    {false, "--vocab-from /nonexistent/vocab.gguf", 1, "/nonexistent/vocab.gguf"},
    {false, "--vocab-from NOVOCAB", 1, "no tokenizer.ggml.tokens"},
    {false, "-o /nonexistent/dir/out.gguf", 1, "/nonexistent/dir/out.gguf"},
};
#define N_BAD ((int)(sizeof bad_rows / sizeof bad_rows[0]))

/* Replaces the placeholders V, O and NOVOCAB by paths. */
static void expand_line(const char *in, char *out, size_t cap, const char *out_path)
{
    out[0] = 0;
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", in);
    for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
        const char *s = !strcmp(tok, "V")         ? test_shared_path(VOCAB_FILE)
                        : !strcmp(tok, "O")       ? out_path
                        : !strcmp(tok, "NOVOCAB") ? write_vocabless_file()
                                                  : tok;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? " " : "", s);
    }
}

START_TEST(test_bad_flags)
{
    const struct bad_row *b = &bad_rows[_i];
    char out_path[512], flags_line[2048], line[4096], err[4096];
    snprintf(out_path, sizeof out_path, "%s", tmp_path("bad.gguf"));
    expand_line(b->flags, flags_line, sizeof flags_line, out_path);
    if (b->whole)
        snprintf(line, sizeof line, "%s", flags_line);
    else
        snprintf(line, sizeof line, "%s %s", model_args("q8_0", out_path, NULL), flags_line);
    int rc = run_synth(line, err, sizeof err);
    ck_assert_msg(rc == b->status, "'%s': exit %d, expected %d (%s)", b->flags, rc, b->status, err);
    ck_assert_msg(strstr(err, b->says) != NULL, "'%s': message \"%s\" does not contain \"%s\"", b->flags, err, b->says);
    ck_assert_msg(!strncmp(err, "aetherc: ", 9), "message lacks the 'aetherc: ' prefix: %s", err);
    ck_assert_msg(access(out_path, F_OK) != 0, "'%s' failed but left %s behind", b->flags, out_path);
}
END_TEST

START_TEST(test_help)
{
    char err[4096];
    FILE *cap = tmpfile();
    ck_assert(cap != NULL);
    fflush(stdout);
    int saved = dup(1);
    dup2(fileno(cap), 1);
    int rc = run_synth("--help", err, sizeof err);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    rewind(cap);
    char text[8192];
    text[fread(text, 1, sizeof text - 1, cap)] = 0;
    fclose(cap);
    ck_assert_int_eq(rc, 0);
    const char *every[] = {"--arch", "--dim", "--layers", "--heads", "--kv-heads", "--ffn", "--type", "--vocab-from",
                           "-o ", "--ctx", "--tied", "--seed", "--head-dim", "--rope-base", "--eps", "--name",
                           "--threads", "q6_k", "block size"};
    for (size_t i = 0; i < sizeof every / sizeof every[0]; i++)
        ck_assert_msg(strstr(text, every[i]) != NULL, "--help does not mention %s", every[i]);
}
END_TEST

/* ---- the built binary (make check sets AE_AETHERC) ----------------------------------------------- */

static int run_binary(const char *aetherc, const char *line)
{
    char copy[4096];
    char *argv[MAX_ARGS];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", line);
    argv[argc++] = (char *)aetherc;
    argv[argc++] = "synth";
    for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execv(aetherc, argv);
        _exit(127);
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st), "aetherc synth did not exit normally");
    return WEXITSTATUS(st);
}

START_TEST(test_binary_exit_status)
{
    const char *aetherc = getenv("AE_AETHERC");
    const char *out = tmp_path("bin.gguf");
    char line[4096];
    ck_assert_int_eq(run_binary(aetherc, model_args("q4_0", out, NULL)), 0);
    ae_gguf_close(open_ok(out));
    snprintf(line, sizeof line, "%s --dim abc", model_args("q4_0", out, NULL));
    ck_assert_int_eq(run_binary(aetherc, line), 2);
    snprintf(line, sizeof line, "%s --vocab-from /nonexistent.gguf", model_args("q4_0", out, NULL));
    ck_assert_int_eq(run_binary(aetherc, line), 1);
}
END_TEST

static Suite *synth_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, NULL, tmp_remove);
    tcase_add_loop_test(tc, test_each_type, 0, N_TYPES);
    tcase_add_loop_test(tc, test_moe_arch, 0, (int)(sizeof moe_rows / sizeof moe_rows[0]));
    tcase_add_test(tc, test_tied_and_options);
    tcase_add_test(tc, test_same_seed_same_bytes);
    tcase_add_test(tc, test_tensor_bytes_independent_of_model);
    tcase_add_test(tc, test_generator_calibration);
    tcase_add_loop_test(tc, test_bad_flags, 0, N_BAD);
    tcase_add_test(tc, test_help);
    if (getenv("AE_AETHERC") && *getenv("AE_AETHERC"))
        tcase_add_test(tc, test_binary_exit_status);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(synth_suite());
}
