/* Tests of the passes (passes/) and the compiler driver's flags.
 *
 * Golden tests: every tests/ir/<pass>/<case>.in.ir is parsed, run through that one pass and printed
 * (with what the pass records beside the graph); the text must equal <case>.out.ir. A case whose first
 * line is "; weights: <path under the shared folder>" gets that model's tensors as weight values.
 * AE_UPDATE_GOLDEN=1 rewrites the .out.ir files instead (review the diff). The interpreter runs each
 * case before and after its pass (with random f32 weights when no model is named) and every output must
 * agree within 1e-5; cases the interpreter cannot run (weights of other types and no model, a matmul
 * of two activations) are compared as text only.
 *
 * Models: for every shared model, the imported graph goes through the passes one at a time; after
 * each, print(parse(print(g))) must equal print(g), and the interpreter's logits (a 4-token prompt,
 * then one more token) must agree with those of the imported graph within 1e-5 relative (the largest
 * difference over the largest magnitude). Fused graphs run through ir_fused_lower, and folded
 * constants through the weights image. The memory plan of each is checked with plan_check and against
 * its bounds, and one line per model reports nodes, fused groups and the plan.
 *
 * Around them: cse keeps operand order, dce keeps cache writes, fused ops verify and lower, and the
 * driver's flags (dumps, --disable-pass, -O0, -o, plan) behave as documented.
 */
#include "gguf_write.h"
#include "import.h"
#include "interp.h"
#include "ir.h"
#include "ir_fused.h"
#include "pass.h"
#include "commands.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Helpers ------------------------------------------------------------------------------------ */

static char *print_with_notes(const struct ir_graph *g, const struct pass_ctx *c)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    ck_assert(f != NULL);
    ck_assert_int_eq(pass_print(g, c, f), 0);
    fclose(f);
    return buf;
}

static struct ir_graph *parse_text(const char *text, const char *name)
{
    struct ir_graph *g;
    ae_error err;
    ck_assert_msg(ir_parse(&g, text, strlen(text), name, &err) == 0, "%s", err.msg);
    ck_assert_msg(ir_verify(g, &err) == 0, "%s: %s", name, err.msg);
    return g;
}

/* print(parse(print(g))) == print(g); returns the parsed copy. */
static struct ir_graph *round_trip(const struct ir_graph *g, const char *what)
{
    char *a = ir_print_string(g);
    ck_assert(a != NULL);
    struct ir_graph *h = parse_text(a, what);
    char *b = ir_print_string(h);
    ck_assert_msg(strcmp(a, b) == 0, "%s: the dump does not read back to the same graph", what);
    free(a);
    free(b);
    return h;
}

/* ---- Golden dumps ------------------------------------------------------------------------------- */

static const char *const golden_passes[] = {"simplify", "cse", "dce", "fold", "layout", "fuse", "memplan"};
#define N_GOLDEN_PASSES ((int)(sizeof golden_passes / sizeof golden_passes[0]))

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every output's values (by name, in order) after one step of PROMPT tokens and one more token, with
 * weights from f (or random f32 values when f is NULL): the golden cases' oracle. */
struct outputs {
    char names[16][64];
    float *data[16];
    int64_t numel[16];
    int n;
};

static void collect_output(void *ctx, const struct ir_node *n, const float *data, int64_t numel)
{
    struct outputs *o = ctx;
    if (n->op != IR_OP_OUTPUT || o->n == 16)
        return;
    snprintf(o->names[o->n], sizeof o->names[0], "%s", n->name);
    o->data[o->n] = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    memcpy(o->data[o->n], data, (size_t)numel * sizeof(float));
    o->numel[o->n++] = numel;
}

static void free_outputs(struct outputs *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->data[i]);
    o->n = 0;
}

static uint64_t golden_rng = 0x2545f4914f6cdd1du;

static float golden_random(void)
{
    golden_rng ^= golden_rng << 13;
    golden_rng ^= golden_rng >> 7;
    golden_rng ^= golden_rng << 17;
    return (float)((double)(golden_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A GGUF image with random f32 values for every weight of g (which must all be f32). */
static int random_weights(const struct ir_graph *g, char **bytes, size_t *size, ae_gguf **out)
{
    ae_error err;
    ae_gguf_writer *w = ae_gguf_writer_create();
    float *bufs[256];
    int n_bufs = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        if (n->op != IR_OP_WEIGHT)
            continue;
        if (n->dtype != IR_F32 || n_bufs == 256) {
            ae_gguf_writer_destroy(w);
            for (int k = 0; k < n_bufs; k++)
                free(bufs[k]);
            return -1;
        }
        int64_t numel = ir_node_numel(n, 0, 0), ne[4];
        float *v = malloc((size_t)numel * sizeof *v);
        for (int64_t k = 0; k < numel; k++)
            v[k] = golden_random();
        for (uint32_t d = 0; d < n->rank; d++)
            ne[d] = n->shape[n->rank - 1 - d];
        ck_assert_msg(ae_gguf_writer_add_tensor(w, n->name, AE_TYPE_F32, n->rank, ne, v, &err) == 0, "%s", err.msg);
        bufs[n_bufs++] = v;
    }
    FILE *f = open_memstream(bytes, size);
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_gguf_writer_destroy(w);
    for (int k = 0; k < n_bufs; k++)
        free(bufs[k]);
    ck_assert_msg(ae_gguf_open_memory(out, *bytes, *size, "random weights", &err) == 0, "%s", err.msg);
    return 0;
}

/* The interpreter reads matmul and get_rows tables only from weights. */
static bool interp_can_run(const struct ir_graph *g)
{
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        if ((n->op == IR_OP_MATMUL && n->src[1]->op != IR_OP_WEIGHT) ||
            (n->op == IR_OP_GET_ROWS && n->src[0]->op != IR_OP_WEIGHT))
            return false;
    }
    return true;
}

static void golden_outputs(const struct ir_graph *g, struct pass_ctx *c, const ae_gguf *f, struct outputs *o)
{
    static const int32_t ids[5] = {1, 5, 3, 7, 2};
    ae_error err;
    struct ir_graph *h = round_trip(g, "golden");
    ck_assert_msg(ir_fused_lower(h, &err) == 0, "%s", err.msg);
    struct pass_weights pw = {0};
    if (c && c->n_consts) {
        ck_assert_msg(pass_weights_open(&pw, h, c) == 0, "%s", c->err->msg);
        f = pw.f;
    }
    struct interp *it;
    ck_assert_msg(interp_create(&it, h, f, 16, &err) == 0, "%s", err.msg);
    float *out = malloc((size_t)interp_output_size(it, 4) * sizeof *out);
    memset(o, 0, sizeof *o);
    interp_set_trace(it, collect_output, o);
    ck_assert_msg(interp_eval(it, ids, 4, 0, out, &err) == 0, "%s", err.msg);
    ck_assert_msg(interp_eval(it, ids + 4, 1, 4, out, &err) == 0, "%s", err.msg);
    free(out);
    interp_destroy(it);
    pass_weights_close(&pw);
    ir_graph_destroy(h);
}

/* The outputs of the case before and after its pass agree within 1e-5 relative. */
static void check_golden_outputs(const char *what, struct outputs *before, struct outputs *after)
{
    ck_assert_msg(before->n == after->n, "%s: %d outputs before the pass, %d after", what, before->n, after->n);
    for (int i = 0; i < before->n; i++) {
        ck_assert_str_eq(before->names[i], after->names[i]);
        ck_assert_int_eq(before->numel[i], after->numel[i]);
        double d = 0, mag = 0;
        for (int64_t k = 0; k < before->numel[i]; k++) {
            double e = fabs((double)before->data[i][k] - (double)after->data[i][k]);
            if (!(e <= d))
                d = e;
            if (fabs((double)before->data[i][k]) > mag)
                mag = fabs((double)before->data[i][k]);
        }
        ck_assert_msg((mag > 0 ? d / mag : d) <= 1e-5, "%s: output %s differs by %.3g relative", what,
                      before->names[i], mag > 0 ? d / mag : d);
    }
}

static void run_golden_case(const char *pass, const char *dir, const char *in_name)
{
    char in_path[512], out_path[512];
    snprintf(in_path, sizeof in_path, "%s/%s", dir, in_name);
    snprintf(out_path, sizeof out_path, "%s/%.*s.out.ir", dir, (int)(strlen(in_name) - 6), in_name);
    size_t size;
    char *text = test_read_file(in_path, &size);
    text = realloc(text, size + 1);
    text[size] = 0;

    ae_error err;
    ae_gguf *f = NULL;
    if (!strncmp(text, "; weights: ", 11)) {
        char rel[256];
        size_t n = strcspn(text + 11, "\n");
        snprintf(rel, sizeof rel, "%.*s", (int)n, text + 11);
        ck_assert_msg(ae_gguf_open(&f, test_shared_path(rel), &err) == 0, "%s: %s", in_path, err.msg);
    }
    struct ir_graph *g = parse_text(text, in_path);
    struct pass_ctx c;
    pass_ctx_init(&c, &err);
    c.gguf = f;
    c.opt.verify_each = true;
    c.opt.t_max = 8;
    c.opt.n_ctx = 16;
    int id = pass_from_name(pass, strlen(pass));
    ck_assert_int_ge(id, 0);

    /* The oracle: the case's outputs in the interpreter, with the model's weights or random ones. */
    char *bytes = NULL;
    size_t n_bytes = 0;
    ae_gguf *weights = f;
    bool run = interp_can_run(g) && (f || random_weights(g, &bytes, &n_bytes, &weights) == 0);
    struct outputs before = {0}, after = {0};
    if (run)
        golden_outputs(g, NULL, weights, &before);

    ck_assert_msg(pass_run(g, &c, (enum pass_id)id) == 0, "%s: %s", in_path, err.msg);
    if (run) {
        golden_outputs(g, &c, weights, &after);
        check_golden_outputs(in_path, &before, &after);
        free_outputs(&before);
        free_outputs(&after);
        if (weights != f)
            ae_gguf_close(weights);
        free(bytes);
    }
    char *got = print_with_notes(g, &c);
    struct ir_graph *back = round_trip(g, in_path);
    ir_graph_destroy(back);

    const char *update = getenv("AE_UPDATE_GOLDEN");
    if (update && *update == '1') {
        FILE *o = fopen(out_path, "w");
        ck_assert_msg(o != NULL, "cannot write %s", out_path);
        fputs(got, o);
        fclose(o);
    } else {
        size_t want_size;
        char *want = test_read_file(out_path, &want_size);
        want = realloc(want, want_size + 1);
        want[want_size] = 0;
        if (strcmp(got, want) != 0) {
            /* Name the first line that differs. */
            const char *a = got, *b = want;
            int line = 1;
            while (*a && *a == *b) {
                if (*a == '\n')
                    line++;
                a++;
                b++;
            }
            ck_abort_msg("%s after %s differs from %s at line %d:\n  got:  %.*s\n  want: %.*s", in_path, pass, out_path,
                         line, (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
        }
        free(want);
    }
    free(got);
    pass_ctx_free(&c);
    ir_graph_destroy(g);
    if (f)
        ae_gguf_close(f);
    free(text);
}

START_TEST(test_golden)
{
    const char *pass = golden_passes[_i];
    char dir[256];
    snprintf(dir, sizeof dir, "tests/ir/%s", pass);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "%s is missing: run the tests from the repository root", dir);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 6 && !strcmp(e->d_name + len - 6, ".in.ir"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    ck_assert_msg(n > 0, "%s has no golden cases", dir);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        run_golden_case(pass, dir, names[i]);
        free(names[i]);
    }
}
END_TEST

/* ---- Models: round trips, interpreter invariance, plans ----------------------------------------- */

static const char *const models[] = {
    "models/stories260K.gguf",
    "models/stories260K-q8_0.gguf",
    "models/stories260K-q4_0.gguf",
    "models/llama-2-tiny-random.gguf",
    "models/synthetic/tiny-llama-f32.gguf",
    "models/synthetic/tiny-llama-f16.gguf",
    "models/synthetic/tiny-llama-bf16.gguf",
    "models/synthetic/tiny-llama-q8_0.gguf",
    "models/synthetic/tiny-llama-q6_k.gguf",
    "models/synthetic/tiny-llama-q5_k.gguf",
    "models/synthetic/tiny-llama-q5_1.gguf",
    "models/synthetic/tiny-llama-q5_0.gguf",
    "models/synthetic/tiny-llama-q4_k.gguf",
    "models/synthetic/tiny-llama-q4_k_m.gguf",
    "models/synthetic/tiny-llama-q4_1.gguf",
    "models/synthetic/tiny-llama-q4_0.gguf",
    "models/synthetic/tiny-llama-q3_k.gguf",
    "models/synthetic/tiny-llama-q2_k.gguf",
    "models/synthetic/tiny-qwen2-f32.gguf",
    "models/synthetic/tiny-qwen2-q8_0.gguf",
    "models/synthetic/tiny-qwen2-q4_k.gguf",
    "models/synthetic/tiny-qwen2-q4_0.gguf",
    "models/synthetic/tiny-phi3-f32.gguf",
    "models/synthetic/tiny-phi3-q8_0.gguf",
    "models/synthetic/tiny-phi3-q4_k.gguf",
    "models/synthetic/tiny-phi3-q4_0.gguf",
    "models/synthetic/tiny-gemma2-f32.gguf",
    "models/synthetic/tiny-gemma2-q8_0.gguf",
    "models/synthetic/tiny-gemma2-q4_0.gguf",
    "models/synthetic/tiny-llama-iq4_nl.gguf",
    "models/synthetic/tiny-llama-iq4_xs.gguf",
    "models/synthetic/tiny-llama-tq2_0.gguf",
    "models/synthetic/tiny-llama-tq1_0.gguf",
    "models/synthetic/tiny-mixtral-f32.gguf",
    "models/synthetic/tiny-mixtral-q8_0.gguf",
    "models/synthetic/tiny-mixtral-q4_0.gguf",
    "models/synthetic/tiny-mixtral-q4_k_m.gguf",
    "models/synthetic/tiny-qwen2moe-f32.gguf",
    "models/synthetic/tiny-qwen2moe-q8_0.gguf",
    "models/synthetic/tiny-deepseek2-f32.gguf",
    "models/synthetic/tiny-deepseek2-q8_0.gguf",
};
/* models/tinyllamas-stories-260k-q8_0.gguf is not here: its ffn_down rows are not whole Q8_0 blocks and
 * the importer refuses it (as llama.cpp does). */
#define N_MODELS ((int)(sizeof models / sizeof models[0]))

#define PROMPT_LEN 4
static const int32_t prompt[PROMPT_LEN + 1] = {1, 15, 300, 42, 7};

/* Logits of the prompt step and of one more token, concatenated; *n receives their count. */
static float *run_interp(const struct ir_graph *g, struct pass_ctx *c, const ae_gguf *f, const char *what,
                         int64_t *n)
{
    ae_error err;
    struct ir_graph *h = round_trip(g, what);
    ck_assert_msg(ir_fused_lower(h, &err) == 0, "%s: %s", what, err.msg);
    ck_assert_msg(ir_verify(h, &err) == 0, "%s, lowered: %s", what, err.msg);
    struct pass_weights pw = {0};
    if (c && c->n_consts) {
        ck_assert_msg(pass_weights_open(&pw, h, c) == 0, "%s: %s", what, c->err->msg);
        f = pw.f;
    }
    struct interp *it;
    ck_assert_msg(interp_create(&it, h, f, 16, &err) == 0, "%s: %s", what, err.msg);
    int64_t n1 = interp_output_size(it, PROMPT_LEN), n2 = interp_output_size(it, 1);
    float *out = malloc((size_t)(n1 + n2) * sizeof *out);
    ck_assert_msg(interp_eval(it, prompt, PROMPT_LEN, 0, out, &err) == 0, "%s: %s", what, err.msg);
    ck_assert_msg(interp_eval(it, prompt + PROMPT_LEN, 1, PROMPT_LEN, out + n1, &err) == 0, "%s: %s", what, err.msg);
    interp_destroy(it);
    pass_weights_close(&pw);
    ir_graph_destroy(h);
    *n = n1 + n2;
    return out;
}

/* max |a - b| / max |a| */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double diff = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= diff))
            diff = d; /* NaN propagates */
        if (fabs((double)a[i]) > mag)
            mag = fabs((double)a[i]);
    }
    return mag > 0 ? diff / mag : diff;
}

static const char *short_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

START_TEST(test_models)
{
    const char *path = models[_i];
    ae_error err;
    ae_gguf *f;
    ck_assert_msg(ae_gguf_open(&f, test_shared_path(path), &err) == 0, "%s", err.msg);
    struct ir_graph *g;
    struct import_hparams hp;
    ck_assert_msg(import_model(&g, f, NULL, &hp, &err) == 0, "%s: %s", path, err.msg);
    struct pass_ctx c;
    pass_ctx_init(&c, &err);
    c.gguf = f;
    c.opt.verify_each = true;
    c.opt.n_ctx = hp.n_ctx_train;
    c.stats.nodes_in = g->n_nodes;

    int64_t n_ref, n_got;
    float *ref = run_interp(g, NULL, f, path, &n_ref);
    for (int p = 0; p < PASS_COUNT; p++) {
        char what[256];
        snprintf(what, sizeof what, "%s after %s", short_name(path), pass_name((enum pass_id)p));
        ck_assert_msg(pass_run(g, &c, (enum pass_id)p) == 0, "%s: %s", what, err.msg);
        float *got = run_interp(g, &c, f, what, &n_got);
        ck_assert_int_eq(n_got, n_ref);
        double d = rel_diff(ref, got, n_ref);
        ck_assert_msg(d <= 1e-5, "%s: logits differ by %.3g relative (limit 1e-5)", what, d);
        free(got);
    }
    c.stats.nodes_out = g->n_nodes;

    /* The plan: valid, and between the lower bound and no reuse at all. */
    const struct pass_plan *pl = &c.plan;
    ck_assert(pl->done);
    ck_assert_msg(plan_check(pl->buf, pl->n, 64, pl->peak, &err) == 0, "%s: %s", path, err.msg);
    ck_assert_uint_ge(pl->peak, pl->max_live);
    ck_assert_uint_le(pl->peak, pl->naive);
    ck_assert_uint_eq(pl->peak % 64, 0);
    ck_assert_int_eq(pl->t_max, 512);

    char fused[512] = "";
    size_t k = 0;
    for (int i = 0; i < FUSE_KIND_COUNT; i++)
        if (c.stats.fused[i])
            k += (size_t)snprintf(fused + k, sizeof fused - k, "%s%" PRIu32 " %s", k ? ", " : "", c.stats.fused[i],
                                  fuse_kind_name((enum fuse_kind)i));
    printf("report %-22s nodes %4" PRIu32 " -> %4" PRIu32 "; fused: %s; peak %" PRIu64 " vs naive %" PRIu64
           " bytes (%.1fx), lower bound %" PRIu64 "\n",
           short_name(path), c.stats.nodes_in, c.stats.nodes_out, fused, pl->peak, pl->naive,
           (double)pl->naive / (double)pl->peak, pl->max_live);
    fflush(stdout);
    free(ref);
    pass_ctx_free(&c);
    ir_graph_destroy(g);
    ae_gguf_close(f);
}
END_TEST

/* ---- Single properties -------------------------------------------------------------------------- */

START_TEST(test_cse_operand_order)
{
    static const char text[] =
        "%0 = input {kind=tokens} : i32[T]\n"
        "%1 = weight @emb : f32[16,8]\n"
        "%2 = get_rows @emb, %0 : f32[T,8]\n"
        "%3 = weight @w : f32[8,8]\n"
        "%4 = matmul %2, @w : f32[T,8]\n"
        "%5 = silu %2 : f32[T,8]\n"
        "%6 = reshape %4 : f32[T,1,8]\n"
        "%7 = reshape %5 : f32[T,1,8]\n"
        "%8 = concat %6, %7 {axis=1} : f32[T,2,8]\n"
        "%9 = concat %7, %6 {axis=1} : f32[T,2,8]\n"
        "%10 = add %4, %5 : f32[T,8]\n"
        "%11 = add %5, %4 : f32[T,8]\n"
        "%12 = matmul %2, @w : f32[T,8]\n"
        "%13 = reshape %8 : f32[T,16]\n"
        "%14 = reshape %9 : f32[T,16]\n"
        "%15 = add %13, %14 : f32[T,16]\n"
        "%16 = add %10, %11 : f32[T,8]\n"
        "%17 = add %16, %12 : f32[T,8]\n"
        "%18 = output %15 : f32[T,16]  ; a\n"
        "%19 = output %17 : f32[T,8]  ; b\n";
    struct ir_graph *g = parse_text(text, "cse");
    ae_error err;
    struct pass_ctx c;
    pass_ctx_init(&c, &err);
    ck_assert_int_eq(pass_run(g, &c, PASS_CSE), 0);
    /* add %5,%4 merged into add %4,%5; the second matmul into the first; the swapped concat stays. */
    ck_assert_uint_eq(c.stats.cse_merged, 2);
    uint32_t concats = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++)
        concats += g->nodes[i]->op == IR_OP_CONCAT;
    ck_assert_uint_eq(concats, 2);
    pass_ctx_free(&c);
    ir_graph_destroy(g);
}
END_TEST

START_TEST(test_dce_keeps_cache_writes)
{
    static const char text[] =
        "%0 = input {kind=tokens} : i32[T]\n"
        "%1 = weight @emb : f32[16,8]\n"
        "%2 = get_rows @emb, %0 : f32[T,8]\n"
        "%3 = reshape %2 : f32[T,1,8]\n"
        "%4 = kv_cache {layer=0, kind=k} : f16[P,1,8]\n"
        "%5 = kv_store %4, %3 : f16[P+T,1,8]\n"
        "%6 = silu %2 : f32[T,8]\n"
        "%7 = weight @unused : f32[8]\n"
        "%8 = output %2 : f32[T,8]  ; logits\n";
    struct ir_graph *g = parse_text(text, "dce");
    ae_error err;
    struct pass_ctx c;
    pass_ctx_init(&c, &err);
    ck_assert_int_eq(pass_run(g, &c, PASS_DCE), 0);
    ck_assert_uint_eq(c.stats.dce_removed, 2); /* the silu and the unused weight */
    bool store = false;
    for (uint32_t i = 0; i < g->n_nodes; i++)
        store = store || g->nodes[i]->op == IR_OP_KV_STORE;
    ck_assert(store);
    pass_ctx_free(&c);
    ir_graph_destroy(g);
}
END_TEST

START_TEST(test_fused_verify)
{
    static const struct {
        const char *text, *msg;
    } rows[] = {
        {"%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[4,8]\n%2 = get_rows @e, %0 : f32[T,8]\n"
         "%3 = ew %2 {op0=none, op1=none, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,8]\n",
         "op0 is none: a fused chain needs at least one step"},
        {"%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[4,8]\n%2 = get_rows @e, %0 : f32[T,8]\n"
         "%3 = ew %2 {op0=add, op1=none, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,8]\n",
         "step op0 (add) has no source left"},
        {"%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[4,8]\n%2 = get_rows @e, %0 : f32[T,8]\n"
         "%3 = ew %2, %2 {op0=silu, op1=none, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,8]\n",
         "2 sources, but the steps use 1"},
        {"%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[4,8]\n%2 = get_rows @e, %0 : f32[T,8]\n"
         "%3 = ew %2 {op0=softcap, op1=none, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,8]\n",
         "softcap step op0 needs a positive cap k0, found 0"},
        {"%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[4,8]\n%2 = get_rows @e, %0 : f32[T,8]\n"
         "%3 = weight @w : q8_0[6,32]\n"
         "%4 = matmul_ew %2, @w {op0=silu, op1=none, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,6]\n",
         "do not end in the weight's row length 32"},
        {"%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[4,8]\n%2 = get_rows @e, %0 : f32[T,8]\n"
         "%3 = weight @n : f32[4]\n%4 = rms_norm_mul %2, @n {eps=1e-05} : f32[T,8]\n",
         "source 1 has shape [4]: it must be [T,8] or one row of its last dimension"},
        {"%0 = input {kind=tokens} : i32[T]\n%1 = input {kind=positions} : i32[T]\n%2 = weight @e : f32[4,8]\n"
         "%3 = get_rows @e, %0 : f32[T,8]\n%4 = weight @w : f32[8,8]\n"
         "%5 = matmul_rope %3, @w, %1 {mode=neox, n_dims=4, base=10000, freq_scale=1, ext_factor=0, "
         "attn_factor=1, beta_fast=32, beta_slow=1, n_ctx_orig=512} : f32[T,3,4]\n",
         "expected [rows, heads, head_dim] with heads * head_dim = 8"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ir_graph *g;
        ae_error err;
        ck_assert_msg(ir_parse(&g, rows[i].text, strlen(rows[i].text), "row", &err) == 0, "%s", err.msg);
        ck_assert_msg(ir_verify(g, &err) == -1, "row %zu verified", i);
        ck_assert_msg(strstr(err.msg, rows[i].msg) != NULL, "row %zu: '%s' lacks '%s'", i, err.msg, rows[i].msg);
        ir_graph_destroy(g);
    }
}
END_TEST

/* ---- The driver --------------------------------------------------------------------------------- */

/* Runs cmd_compile (argv[0] = "aetherc") with stdout and stderr captured; returns its exit status. */
static int run_driver(const char *const *args, char **out, char **errs)
{
    char out_path[] = "/tmp/check_passes_outXXXXXX", err_path[] = "/tmp/check_passes_errXXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path);
    ck_assert(fo >= 0 && fe >= 0);
    int argc = 0;
    char *argv[32];
    argv[argc++] = "aetherc";
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = !strcmp(argv[1], "plan") ? cmd_plan(argc - 1, argv + 1) : cmd_compile(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fo);
    close(fe);
    size_t n;
    *out = test_read_file(out_path, &n);
    *out = realloc(*out, n + 1);
    (*out)[n] = 0;
    *errs = test_read_file(err_path, &n);
    *errs = realloc(*errs, n + 1);
    (*errs)[n] = 0;
    unlink(out_path);
    unlink(err_path);
    return rc;
}

START_TEST(test_driver)
{
    char model[512];
    snprintf(model, sizeof model, "%s", test_shared_path("models/stories260K.gguf"));
    char *out, *errs;

    /* The summary paragraph. */
    ck_assert_int_eq(run_driver((const char *[]){model, NULL}, &out, &errs), 0);
    ck_assert_msg(strstr(out, "stories260K.gguf (llama, 5 layers): ") && strstr(out, "fuse formed") &&
                  strstr(out, "planned peak"), "%s", out);
    free(out);
    free(errs);

    /* Dumps after named passes, in order, each headed. */
    ck_assert_int_eq(run_driver((const char *[]){"--dump-ir=after=dce,fuse", model, NULL}, &out, &errs), 0);
    const char *a = strstr(out, "; after dce\n%0 = input"), *b = strstr(out, "; after fuse\n");
    ck_assert_msg(a && b && a < b && !strstr(out, "; after cse"), "%s", out);
    ck_assert(strstr(b, "matmul_rope") != NULL);
    free(out);
    free(errs);

    /* after-all into a folder: one file per pass, numbered, plus the imported graph. */
    char dir[] = "/tmp/check_passes_dumpXXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    ck_assert_int_eq(run_driver((const char *[]){model, "--dump-ir=after-all", "--dump-dir", dir, NULL}, &out, &errs),
                     0);
    static const char *const files[] = {"00-import.ir", "01-simplify.ir", "02-cse.ir", "03-dce.ir",
                                        "04-fold.ir", "05-layout.ir", "06-fuse.ir", "07-memplan.ir"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        size_t n;
        char *t = test_read_file(p, &n);
        ck_assert_msg(n > 20 && !strncmp(t, "; after ", 8), "%s", p);
        if (i == 5)
            ck_assert_msg(strstr(t, "; layout @blk.0.attn_q.weight rows-f32 merged qkv#0") != NULL, "%s", t);
        if (i == 7)
            ck_assert(strstr(t, "; plan t_max=512") != NULL);
        free(t);
        unlink(p);
    }
    rmdir(dir);
    free(out);
    free(errs);

    /* YAML dumps. */
    ck_assert_int_eq(run_driver((const char *[]){model, "--dump-ir=after=cse", "--dump-format=yaml", NULL}, &out,
                                &errs), 0);
    ck_assert_msg(strstr(out, "# after cse\n") && strstr(out, "nodes:"), "%s", out);
    free(out);
    free(errs);

    /* An unknown pass is an error that lists the passes. */
    ck_assert_int_eq(run_driver((const char *[]){model, "--disable-pass=cse,bogus", NULL}, &out, &errs), 2);
    char want[256];
    snprintf(want, sizeof want, "unknown pass 'bogus'; the passes are: %s", pass_list());
    ck_assert_msg(strstr(errs, want), "%s", errs);
    free(out);
    free(errs);

    /* Disabled passes do not run; -O0 runs memplan alone. */
    ck_assert_int_eq(run_driver((const char *[]){model, "--disable-pass", "fuse", "--dump-ir=after=memplan", NULL},
                                &out, &errs), 0);
    ck_assert_msg(!strstr(out, "matmul_ew") && !strstr(out, "matmul_rope") && strstr(out, "; after memplan"), "%s",
                  out);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){"-O0", "--dump-ir=after-all", model, NULL}, &out, &errs), 0);
    ck_assert_msg(strstr(out, "; after import") && strstr(out, "; after memplan") && !strstr(out, "; after fuse") &&
                  strstr(out, "At -O0 only memplan ran."), "%s", out);
    free(out);
    free(errs);

    /* Program flags: checked before anything is compiled (writing programs is check_e2e's). */
    ck_assert_int_eq(run_driver((const char *[]){model, "-o", "/tmp/never_written", "--cc", "clang", NULL}, &out,
                                &errs), 2);
    ck_assert_msg(strstr(errs, "--cc takes gcc or tcc, not 'clang'"), "%s", errs);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){model, "--march=x86-64-v3", NULL}, &out, &errs), 2);
    ck_assert_msg(strstr(errs, "they need -o OUT"), "%s", errs);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){model, "-o", "/tmp/never_written", "--march", "pentium", NULL}, &out,
                                &errs), 2);
    ck_assert_msg(strstr(errs, "--march takes native, x86-64, x86-64-v2, x86-64-v3 or x86-64-v4, not 'pentium'"), "%s",
                  errs);
    ck_assert(access("/tmp/never_written", F_OK) != 0);
    free(out);
    free(errs);

    /* Usage errors. */
    ck_assert_int_eq(run_driver((const char *[]){model, "--dump-ir=sometimes", NULL}, &out, &errs), 2);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){"--dump-ir=after-all", NULL}, &out, &errs), 2);
    ck_assert(strstr(errs, "no model given") != NULL);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){"/nonexistent.gguf", NULL}, &out, &errs), 1);
    ck_assert(strstr(errs, "aetherc: ") != NULL);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){"--help", NULL}, &out, &errs), 0);
    ck_assert(strstr(out, "--dump-ir=after-all") != NULL);
    free(out);
    free(errs);

    /* plan: the table and the totals. */
    ck_assert_int_eq(run_driver((const char *[]){"plan", model, "--t-max", "64", "--ctx", "256", NULL}, &out, &errs),
                     0);
    ck_assert_msg(strstr(out, "buffer    node  op") && strstr(out, "for steps of up to 64 tokens, contexts up to 2048") &&
                  strstr(out, "naive sum of all") && strstr(out, "Offsets are multiples of 64 bytes"), "%s", out);
    free(out);
    free(errs);
    /* and the layout of each weight: matmul weights interleaved, norms and the embedding as rows */
    snprintf(model, sizeof model, "%s", test_shared_path("models/stories260K-q4_0.gguf"));
    ck_assert_int_eq(run_driver((const char *[]){"plan", model, NULL}, &out, &errs), 0);
    ck_assert_msg(strstr(out, "\nweight ") && strstr(out, "\nblk.0.attn_q.weight ") && strstr(out, " x16-q4_0\n") &&
                  strstr(out, " rows-f32\n"), "%s", out);
    /* and the merged matrices: layer 0's Q, K and V (64, 32 and 32 rows); its gate and up (172 rows, no
     * whole x16 groups) stay apart */
    ck_assert_msg(strstr(out, "\nblk.0.attn_q.weight                      x16-q4_0     qkv#0 rows 0..64 of 128\n") &&
                  strstr(out, "\nblk.0.attn_v.weight                      x16-q4_0     qkv#0 rows 96..128 of 128\n") &&
                  strstr(out, "\nblk.0.ffn_up.weight                      x16-q4_0\n"), "%s", out);
    free(out);
    free(errs);
    ck_assert_int_eq(run_driver((const char *[]){"plan", model, "--no-merge", NULL}, &out, &errs), 0);
    ck_assert_msg(strstr(out, "\nblk.0.attn_q.weight ") && !strstr(out, "qkv#"), "%s", out);
    free(out);
    free(errs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("passes");
    TCase *tc = tcase_create("golden");
    tcase_add_loop_test(tc, test_golden, 0, N_GOLDEN_PASSES);
    tcase_add_test(tc, test_cse_operand_order);
    tcase_add_test(tc, test_dce_keeps_cache_writes);
    tcase_add_test(tc, test_fused_verify);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("models");
    tcase_set_timeout(tm, 300);
    tcase_add_loop_test(tm, test_models, 0, N_MODELS);
    suite_add_tcase(s, tm);
    TCase *td = tcase_create("driver");
    tcase_set_timeout(td, 120);
    tcase_add_test(td, test_driver);
    suite_add_tcase(s, td);
    return test_run_suite(s);
}
