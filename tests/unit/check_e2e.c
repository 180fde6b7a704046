/* End to end: every shared model compiled by `aetherc MODEL -o PROGRAM` and run as a program, against
 * llama.cpp's references.
 *
 * Per model: the prompt logits of the three prompts (--dump-logits) within the reference README's
 * tolerance, and teacher forcing: the prompt plus the reference's first s greedy tokens, fed as one
 * prompt, must give the reference's token s wherever its margin exceeds the tolerance. stories260K's
 * free-running 32 greedy tokens, ids and text, must be exact. The libtcc build must give the gcc build's
 * tokens; 1 and 2 threads must give bit-identical logits; and a model no test has seen, made by
 * `aetherc synth` with unusual shapes, must match the reference interpreter.
 *
 * Programs run through the shell with AE_AETHERC (set by make) as the compiler; everything is written
 * under a fresh temporary folder.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <termios.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_reference.h"
#include "test_util.h"

static char tmp_dir[64];

static const char *aetherc(void)
{
    const char *bin = getenv("AE_AETHERC");
    ck_assert_msg(bin && *bin, "AE_AETHERC is not set: run the tests through make check");
    return bin;
}

/* Runs a shell command; its output (stdout and stderr, unless the command redirects stderr itself) goes
 * to out (when not NULL, up to cap bytes) and the exit status is returned. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (!strstr(cmd, "2>"))
        strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    char sink[4096];
    size_t n = 0, k;
    while ((k = fread(out && n < cap - 1 ? out + n : sink, 1, out && n < cap - 1 ? cap - 1 - n : sizeof sink, p)) > 0)
        if (out && n < cap - 1)
            n += k;
    if (out)
        out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char log_buf[1 << 16];

/* Compiles models/<file> into <tmp>/<name> with extra aetherc flags. */
static void compile(const char *file, const char *name, const char *flags)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", file);
    int rc = run(log_buf, sizeof log_buf, "%s %s -o %s/%s %s", aetherc(), test_shared_path(rel), tmp_dir, name, flags);
    ck_assert_msg(rc == 0, "aetherc %s -o %s %s failed (%d):\n%s", file, name, flags, rc, log_buf);
}

/* compile() with no flags, unless an earlier test made the program already (the Vulkan tests run the
 * programs the CPU tests built). */
static void compile_once(const char *file, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    if (access(path, X_OK) != 0)
        compile(file, name, "");
}

static void ids_list(const int32_t *ids, uint32_t n, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%" PRId32, i ? "," : "", ids[i]);
}

/* The logits after the last of n prompt tokens, from a program run with flags. */
static float *prompt_logits(const char *name, const int32_t *ids, uint32_t n, int64_t n_vocab, const char *flags)
{
    char list[2048], path[128];
    ids_list(ids, n, list, sizeof list);
    snprintf(path, sizeof path, "%s/%s.logits", tmp_dir, name);
    int rc = run(log_buf, sizeof log_buf, "%s/%s --tokens %s -n 0 --dump-logits %s %s", tmp_dir, name, list, path, flags);
    ck_assert_msg(rc == 0, "%s --tokens %s failed (%d):\n%s", name, list, rc, log_buf);
    size_t size;
    float *l = test_read_file(path, &size);
    ck_assert_msg(size == (size_t)n_vocab * sizeof(float), "%s wrote %zu bytes of logits, expected %" PRId64 " floats",
                  name, size, n_vocab);
    return l;
}

/* n_vocab of a reference folder: the size of its prompt-1 logits. */
static int64_t ref_n_vocab(const char *ref)
{
    char rel[256];
    struct stat st;
    snprintf(rel, sizeof rel, "reference/%s/prompt1.kvf16.logits.f32", ref);
    ck_assert_msg(stat(test_shared_path(rel), &st) == 0, "missing %s", rel);
    return (int64_t)st.st_size / 4;
}

/* A step whose routing nearly ties (reference README, MoE) counts like one with a small margin; the
 * gaps come from the reference interpreter. */
static void check_against_llama_cpp(const struct model_row *row)
{
    compile(row->file, row->ref, "");
    int64_t nv = ref_n_vocab(row->ref);
    double tol = ref_tol_max_abs(row->tol);
    for (int prompt = 1; prompt <= 3; prompt++) {
        struct reference r;
        ref_load(&r, row->ref, prompt, "f16", nv);
        float *l = prompt_logits(row->ref, r.prompt, r.n_prompt, nv, "-t 1");
        struct ref_diff d = ref_compare(l, r.logits, nv);
        ck_assert_msg(d.max_abs <= tol, "%s prompt %d: logit %" PRId64 " is %g, llama.cpp %g (|diff| %g > %g)", row->ref,
                      prompt, d.at, (double)l[d.at], (double)r.logits[d.at], d.max_abs, tol);
        if (row->tol == TOL_QUANT)
            ck_assert_msg(d.rms <= REF_QUANT_RMS, "%s prompt %d: RMS diff %g > %g", row->ref, prompt, d.rms, REF_QUANT_RMS);
        free(l);
        free(r.logits);
        if (prompt > 1 && !row->force_all)
            continue;
        int32_t ids[64 + REF_STEPS];
        memcpy(ids, r.prompt, r.n_prompt * sizeof *ids);
        memcpy(ids + r.n_prompt, r.greedy, sizeof r.greedy);
        double gap[REF_STEPS];
        ref_router_gaps(row->file, &r, gap);
        for (int s = 1; s < REF_STEPS; s++) {
            if (r.margin[s] <= tol || gap[s] <= ref_router_tol(row->tol))
                continue;
            l = prompt_logits(row->ref, ids, r.n_prompt + (uint32_t)s, nv, "-t 1");
            int32_t top = ref_argmax(l, nv);
            ck_assert_msg(top == r.greedy[s], "%s prompt %d step %d: argmax %" PRId32 ", llama.cpp chose %" PRId32
                          " with margin %g", row->ref, prompt, s, top, r.greedy[s], r.margin[s]);
            free(l);
        }
    }
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

/* The ids a program prints with --print-ids, into out; returns how many. (stderr, which says which device
 * runs the model, goes to a file of its own.) */
static uint32_t generated_ids(const char *name, const char *prompt_flags, int32_t *out, uint32_t max)
{
    int rc = run(log_buf, sizeof log_buf, "%s/%s %s -n %u --temp 0 --print-ids 2>%s/ids.err", tmp_dir, name, prompt_flags,
                 max, tmp_dir);
    ck_assert_msg(rc == 0, "%s %s failed (%d):\n%s (stderr in %s/ids.err)", name, prompt_flags, rc, log_buf, tmp_dir);
    uint32_t n = 0;
    for (char *p = log_buf; *p && n < max;) {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) {
            p++;
            continue;
        }
        out[n++] = (int32_t)v;
        p = e;
    }
    return n;
}

START_TEST(test_stories_free_running)
{
    compile("stories260K.gguf", "stories", "");
    for (int prompt = 1; prompt <= 3; prompt++) {
        struct reference r;
        ref_load(&r, "stories260K", prompt, "f16", 512);
        free(r.logits);
        char list[2048], flags[2100];
        ids_list(r.prompt, r.n_prompt, list, sizeof list);
        snprintf(flags, sizeof flags, "--tokens %s", list);
        int32_t got[REF_STEPS];
        ck_assert_uint_eq(generated_ids("stories", flags, got, REF_STEPS), REF_STEPS);
        for (int s = 0; s < REF_STEPS; s++)
            ck_assert_msg(got[s] == r.greedy[s], "prompt %d step %d: %" PRId32 ", llama.cpp %" PRId32, prompt, s, got[s],
                          r.greedy[s]);
    }
    /* Text in, text out: exactly the reference's greedy_text for "Once upon a time" on stdout. */
    int rc = run(log_buf, sizeof log_buf, "%s/stories -p 'Once upon a time' -n 32 --temp 0 2>/dev/null", tmp_dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(log_buf, ", there was a little girl named Lily. She loved to play outside in the park. One day, "
                              "she saw");
}
END_TEST

START_TEST(test_tcc_build_matches_gcc)
{
    static const char *const files[] = {"stories260K-q4_0.gguf", "synthetic/tiny-llama-q4_k_m.gguf",
                                         "synthetic/tiny-phi3-q8_0.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        compile(files[i], "by_gcc", "--cc gcc");
        compile(files[i], "by_tcc", "--cc tcc");
        int32_t a[REF_STEPS], b[REF_STEPS];
        uint32_t na = generated_ids("by_gcc", "--tokens 1,403,407,261,378", a, REF_STEPS);
        uint32_t nb = generated_ids("by_tcc", "--tokens 1,403,407,261,378", b, REF_STEPS);
        ck_assert_uint_eq(na, nb);
        for (uint32_t s = 0; s < na; s++)
            ck_assert_msg(a[s] == b[s], "%s step %u: gcc build %" PRId32 ", tcc build %" PRId32, files[i], s, a[s], b[s]);
    }
}
END_TEST

START_TEST(test_threads_bit_identical)
{
    static const char *const files[] = {"synthetic/tiny-llama-q4_k_m.gguf", "synthetic/tiny-llama-f16.gguf",
                                         "synthetic/tiny-qwen2-q8_0.gguf"};
    const int32_t ids[] = {1, 403, 407, 261, 378, 300, 301, 302, 303, 304, 305};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        compile(files[i], "threads", "");
        int64_t nv = i == 2 ? 50257 : 512;
        float *one = prompt_logits("threads", ids, 11, nv, "-t 1");
        float *two = prompt_logits("threads", ids, 11, nv, "-t 2");
        ck_assert_msg(memcmp(one, two, (size_t)nv * sizeof(float)) == 0, "%s: -t 1 and -t 2 logits differ", files[i]);
        free(one);
        free(two);
    }
}
END_TEST

/* Matmuls run as one multi-part matmul (Q, K and V with their biases and rope; gate and up; the experts'
 * router and shared expert) and matrices stored merged give the bytes of a program built with --no-merge,
 * in prefill (11 tokens, 2 threads) and in decode (-b 1: one token a step). */
START_TEST(test_merged_bit_identical)
{
    static const char *const files[] = {"synthetic/tiny-llama-q4_k_m.gguf", "synthetic/tiny-qwen2-q8_0.gguf",
                                         "synthetic/tiny-qwen2moe-f32.gguf"};
    static const int64_t n_vocab[] = {512, 50257, 512};
    static const char *const runs[] = {"-t 2", "-t 2 -b 1"};
    const int32_t ids[] = {1, 403, 407, 261, 378, 300, 301, 302, 303, 304, 305};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        compile(files[i], "merged", "");
        compile(files[i], "apart", "--no-merge");
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            float *a = prompt_logits("merged", ids, 11, n_vocab[i], runs[r]);
            float *b = prompt_logits("apart", ids, 11, n_vocab[i], runs[r]);
            ck_assert_msg(memcmp(a, b, (size_t)n_vocab[i] * sizeof(float)) == 0, "%s %s: merged and --no-merge logits differ",
                          files[i], runs[r]);
            free(a);
            free(b);
        }
    }
}
END_TEST

/* Models of shapes no shared model has: the program against the reference interpreter, with a prompt
 * longer than the program's step (--t-max 16), so that prefill runs in chunks at P > 0. The mixtures of
 * experts have odd expert counts and route to 3 and to 1 expert; deepseek2 has q_lora and 3 layers. */
START_TEST(test_unseen_model_matches_interpreter)
{
    static const struct {
        const char *flags;
        double tol;
    } models[] = {
        {"--arch llama --dim 96 --layers 3 --heads 3 --kv-heads 1 --ffn 160 --type f32", 2e-3},
        {"--arch llama --dim 96 --layers 3 --heads 3 --kv-heads 1 --ffn 160 --type f16", 2e-2},
        {"--arch llama --dim 96 --layers 3 --heads 3 --kv-heads 1 --ffn 160 --type q4_1", 0.5},
        {"--arch mixtral --dim 96 --layers 2 --heads 3 --kv-heads 1 --ffn 64 --experts 5 --experts-used 3 --type f32",
         2e-3},
        {"--arch qwen2moe --dim 96 --layers 2 --heads 3 --kv-heads 1 --ffn 160 --experts 7 --experts-used 1 "
         "--expert-ffn 32 --shared-ffn 64 --type f32", 2e-3},
        {"--arch deepseek2 --dim 96 --layers 3 --heads 3 --head-dim 48 --ffn 160 --experts 5 --experts-used 3 "
         "--expert-ffn 32 --kv-lora 32 --q-lora 64 --type f32", 2e-3},
    };
    int32_t ids[70];
    char list[1024];
    for (int i = 0; i < 70; i++)
        ids[i] = i == 0 ? 1 : 3 + (i * 79) % 500;
    ids_list(ids, 70, list, sizeof list);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char model[128];
        snprintf(model, sizeof model, "%s/unseen-%zu.gguf", tmp_dir, i);
        int rc = run(log_buf, sizeof log_buf, "%s synth %s --vocab-from %s --seed 7 -o %s", aetherc(), models[i].flags,
                     test_shared_path("models/stories260K.gguf"), model);
        ck_assert_msg(rc == 0, "synth failed:\n%s", log_buf);
        rc = run(log_buf, sizeof log_buf, "%s %s -o %s/unseen --t-max 16", aetherc(), model, tmp_dir);
        ck_assert_msg(rc == 0, "compiling %s failed:\n%s", model, log_buf);
        char ref_path[128];
        snprintf(ref_path, sizeof ref_path, "%s/unseen.interp", tmp_dir);
        rc = run(log_buf, sizeof log_buf, "%s run --interp %s --tokens %s --dump-logits %s", aetherc(), model, list,
                 ref_path);
        ck_assert_msg(rc == 0, "the interpreter failed:\n%s", log_buf);
        float *got = prompt_logits("unseen", ids, 70, 512, "");
        size_t size;
        float *want = test_read_file(ref_path, &size);
        ck_assert_uint_eq(size, 512 * sizeof(float));
        struct ref_diff d = ref_compare(got, want, 512);
        ck_assert_msg(d.max_abs <= models[i].tol, "%s: logit %" PRId64 " is %g, the interpreter says %g (|diff| %g > %g)",
                      models[i].flags, d.at, (double)got[d.at], (double)want[d.at], d.max_abs, models[i].tol);
        free(got);
        free(want);
    }
}
END_TEST

/* The generated C of every architecture compiles with no warnings under -Wall -Wextra -Werror. */
START_TEST(test_generated_c_has_no_warnings)
{
    static const char *const files[] = {"stories260K-q4_0.gguf", "synthetic/tiny-qwen2-q4_k.gguf",
                                         "synthetic/tiny-phi3-q8_0.gguf", "synthetic/tiny-gemma2-q4_0.gguf"};
    const char *inc = getenv("AE_RUNTIME_INCLUDE");
    ck_assert_msg(inc && *inc, "AE_RUNTIME_INCLUDE is not set: run the tests through make check");
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char flags[256];
        snprintf(flags, sizeof flags, "--emit-c %s/c", tmp_dir);
        compile(files[i], "warn", flags);
        int rc = run(log_buf, sizeof log_buf, "gcc -std=c17 -O2 -Wall -Wextra -Werror -I%s -c %s/c/warn.c -o %s/warn.o",
                     inc, tmp_dir, tmp_dir);
        ck_assert_msg(rc == 0, "the C generated for %s has warnings:\n%s", files[i], log_buf);
    }
}
END_TEST

/* What the program needs at run time: libc, libm, libpthread and the loader, nothing else. */
START_TEST(test_program_needs_only_libc)
{
    compile("stories260K.gguf", "deps", "");
    compile("stories260K.gguf", "deps_tcc", "--cc tcc");
    static const char *const names[] = {"deps", "deps_tcc"};
    for (int k = 0; k < 2; k++) {
        int rc = run(log_buf, sizeof log_buf, "ldd %s/%s", tmp_dir, names[k]);
        ck_assert_msg(rc == 0, "ldd failed:\n%s", log_buf);
        for (char *line = strtok(log_buf, "\n"); line; line = strtok(NULL, "\n")) {
            while (*line == ' ' || *line == '\t')
                line++;
            bool allowed = !strncmp(line, "linux-vdso.so", 13) || !strncmp(line, "libc.so", 7) ||
                           !strncmp(line, "libm.so", 7) || !strncmp(line, "libpthread.so", 13) ||
                           strstr(line, "ld-linux") != NULL;
            ck_assert_msg(allowed, "%s links more than libc: '%s'", names[k], line);
        }
    }
}
END_TEST

/* --weights=external: the program and PROGRAM.weights beside it; --verify checks them, and a flipped byte is
 * found. */
START_TEST(test_external_weights_and_verify)
{
    compile("stories260K-q8_0.gguf", "ext", "--weights=external");
    int32_t got[REF_STEPS];
    struct reference r;
    ref_load(&r, "stories260K-q8_0", 1, "f16", 512);
    free(r.logits);
    ck_assert_uint_eq(generated_ids("ext", "--tokens 1,403,407,261,378", got, REF_STEPS), REF_STEPS);
    for (int s = 0; s < REF_STEPS; s++)
        ck_assert_msg(got[s] == r.greedy[s], "step %d: %" PRId32 ", llama.cpp %" PRId32, s, got[s], r.greedy[s]);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s/ext --verify", tmp_dir), 0);
    ck_assert_msg(strstr(log_buf, "weights OK"), "%s", log_buf);
    /* Flip one bit near the end of the weights file. */
    char path[128];
    snprintf(path, sizeof path, "%s/ext.weights", tmp_dir);
    FILE *f = fopen(path, "r+b");
    ck_assert(f != NULL);
    ck_assert(fseek(f, -100, SEEK_END) == 0);
    int c = fgetc(f);
    ck_assert(fseek(f, -100, SEEK_END) == 0);
    fputc(c ^ 0x10, f);
    fclose(f);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s/ext --verify", tmp_dir), 1);
    /* Without its weights file the program says what is missing. */
    unlink(path);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s/ext -p hi -n 1", tmp_dir), 1);
    ck_assert_msg(strstr(log_buf, "ext.weights"), "%s", log_buf);
}
END_TEST

/* aetherc run: compiled in memory by libtcc, the same tokens as llama.cpp. */
START_TEST(test_aetherc_run_in_memory)
{
    struct reference r;
    ref_load(&r, "stories260K", 2, "f16", 512);
    free(r.logits);
    char list[2048];
    ids_list(r.prompt, r.n_prompt, list, sizeof list);
    int rc = run(log_buf, sizeof log_buf, "%s run %s --tokens %s -n 32 --temp 0 --print-ids 2>%s/run.err", aetherc(),
                 test_shared_path("models/stories260K.gguf"), list, tmp_dir);
    ck_assert_msg(rc == 0, "aetherc run failed (%d):\n%s", rc, log_buf);
    char *p = log_buf;
    for (int s = 0; s < REF_STEPS; s++) {
        char *e;
        long v = strtol(p, &e, 10);
        ck_assert_msg(e != p && v == r.greedy[s], "step %d: '%.20s', llama.cpp %" PRId32, s, p, r.greedy[s]);
        p = e;
    }
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/run.err", tmp_dir);
    size_t size;
    char *errs = test_read_file(err_path, &size);
    errs = realloc(errs, size + 1);
    errs[size] = 0;
    ck_assert_msg(strstr(errs, "aetherc: compiled in ") && strstr(errs, "time to first token: "), "%s", errs);
    free(errs);
}
END_TEST

/* A matmul after the first attention needs the most scratch (ffn_down with K = 2048, in 64-token steps):
 * the program's scratch must be sized for it, not only for the matmuls before attention. */
START_TEST(test_scratch_sized_for_every_matmul)
{
    char model[128];
    snprintf(model, sizeof model, "%s/wide.gguf", tmp_dir);
    int rc = run(log_buf, sizeof log_buf,
                 "%s synth --arch llama --dim 64 --layers 1 --heads 2 --kv-heads 1 --ffn 2048 --type q8_0 "
                 "--vocab-from %s --seed 3 -o %s", aetherc(), test_shared_path("models/stories260K.gguf"), model);
    ck_assert_msg(rc == 0, "synth failed:\n%s", log_buf);
    rc = run(log_buf, sizeof log_buf, "%s %s -o %s/wide --t-max 64", aetherc(), model, tmp_dir);
    ck_assert_msg(rc == 0, "compiling failed:\n%s", log_buf);
    int32_t ids[60];
    char list[1024];
    for (int i = 0; i < 60; i++)
        ids[i] = i == 0 ? 1 : 3 + (i * 79) % 500;
    ids_list(ids, 60, list, sizeof list);
    rc = run(log_buf, sizeof log_buf, "%s/wide --tokens %s -n 4 --ctx 64 --temp 0 --print-ids", tmp_dir, list);
    ck_assert_msg(rc == 0, "the program failed (%d):\n%s", rc, log_buf);
}
END_TEST

/* --chat in a pseudo-terminal (no echo, no output processing: the transcript is what the program wrote). */
struct pty_chat {
    pid_t pid;
    int fd;
    char buf[16384];
    size_t len;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads until the transcript after `from` holds needle; false at timeout or when the program is gone. */
static bool pty_wait(struct pty_chat *p, size_t from, const char *needle, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (!(from <= p->len && strstr(p->buf + from, needle))) {
        double left = end - now_ms();
        struct pollfd pfd = {p->fd, POLLIN, 0};
        int r = left > 0 ? poll(&pfd, 1, (int)left + 1) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        ssize_t n = r > 0 ? read(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len) : 0;
        if (n <= 0)
            return false;
        p->len += (size_t)n;
        p->buf[p->len] = 0;
    }
    return true;
}

static void pty_send(struct pty_chat *p, const char *s)
{
    ck_assert(write(p->fd, s, strlen(s)) == (ssize_t)strlen(s));
}

/* Two turns with the compiled stories260K (chatml template), then /exit; the transcript into p->buf. */
static void chat_two_turns(struct pty_chat *p, const char *program)
{
    memset(p, 0, sizeof *p);
    fflush(NULL);
    p->pid = forkpty(&p->fd, NULL, NULL, NULL);
    ck_assert(p->pid >= 0);
    if (p->pid == 0) {
        struct termios t;
        tcgetattr(0, &t);
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHOCTL);
        t.c_lflag |= ICANON | ISIG;
        t.c_oflag &= ~(tcflag_t)OPOST;
        tcsetattr(0, TCSANOW, &t);
        execl(program, program, "--chat", "--chat-template", "chatml", "--system", "You tell stories.", "--temp", "0",
              "-n", "24", (char *)NULL);
        _exit(127);
    }
    ck_assert_msg(pty_wait(p, 0, "> ", 10000), "no prompt: %s", p->buf);
    pty_send(p, "Once upon a time\n");
    ck_assert_msg(pty_wait(p, 2, "\n> ", 10000), "no second prompt: %s", p->buf);
    size_t mark = p->len;
    pty_send(p, "What did the dog do?\n");
    ck_assert_msg(pty_wait(p, mark, "\n> ", 10000), "no third prompt: %s", p->buf);
    pty_send(p, "/exit\n");
    int st = 0;
    double end = now_ms() + 10000;
    pid_t w;
    while ((w = waitpid(p->pid, &st, WNOHANG)) == 0 && now_ms() < end)
        pty_wait(p, p->len, "\x01never", 20);
    if (w == 0)
        kill(p->pid, SIGKILL), waitpid(p->pid, &st, 0);
    close(p->fd);
    ck_assert_msg(w == p->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the chat did not exit cleanly: %s", p->buf);
}

START_TEST(test_chat_two_turns_in_a_pty)
{
    compile("stories260K.gguf", "chat", "--backend cpu"); /* the transcript: no line about the device */
    char program[128];
    snprintf(program, sizeof program, "%s/chat", tmp_dir);
    static struct pty_chat a, b;
    chat_two_turns(&a, program);
    /* "> " answer "\n> " answer "\n> ": two prompts answered with text, and the third prompt. */
    ck_assert_msg(!strncmp(a.buf, "> ", 2), "%s", a.buf);
    const char *second = strstr(a.buf + 2, "\n> ");
    ck_assert_msg(second && second > a.buf + 2, "the first answer is empty: %s", a.buf);
    const char *third = strstr(second + 3, "\n> ");
    ck_assert_msg(third && third > second + 3, "the second answer is empty: %s", a.buf);
    ck_assert_str_eq(third, "\n> ");
    /* Greedy: the same conversation gives the same transcript. */
    chat_two_turns(&b, program);
    ck_assert_str_eq(a.buf, b.buf);
}
END_TEST


/* ---- The same programs on Vulkan (lavapipe in CI: --device vulkan picks it; auto never takes a device
 * that runs on the CPU itself) ---------------------------------------------------------------------------- */

/* Every shared model on Vulkan, against llama.cpp as on the CPU: the prompt logits within the class's
 * tolerance, and the free-running greedy tokens equal to the reference's up to the first step whose margin
 * is within the tolerance (from there on the two may part, as teacher forcing would show; a run per step
 * on lavapipe would cost minutes). For prompt 1 the Vulkan and CPU logits are compared too. */
START_TEST(test_vulkan_model_against_llama_cpp)
{
    const struct model_row *row = &ref_models[_i];
    compile_once(row->file, row->ref);
    int64_t nv = ref_n_vocab(row->ref);
    double tol = ref_tol_max_abs(row->tol);
    for (int prompt = 1; prompt <= 3; prompt++) {
        struct reference r;
        ref_load(&r, row->ref, prompt, "f16", nv);
        uint32_t steps = 0;
        while (steps < REF_STEPS && r.margin[steps] > tol)
            steps++;
        char list[2048], flags[2400], path[128];
        ids_list(r.prompt, r.n_prompt, list, sizeof list);
        snprintf(path, sizeof path, "%s/%s.vk.logits", tmp_dir, row->ref);
        snprintf(flags, sizeof flags, "--tokens %s --device vulkan --ignore-eos --dump-logits %s", list, path);
        int32_t got[REF_STEPS];
        ck_assert_uint_eq(generated_ids(row->ref, flags, got, steps), steps);
        for (uint32_t s = 0; s < steps; s++)
            ck_assert_msg(got[s] == r.greedy[s], "%s prompt %d step %u on Vulkan: %" PRId32 ", llama.cpp %" PRId32
                          " (margin %g)", row->ref, prompt, s, got[s], r.greedy[s], r.margin[s]);
        size_t size;
        float *l = test_read_file(path, &size);
        ck_assert_uint_eq(size, (size_t)nv * sizeof(float));
        struct ref_diff d = ref_compare(l, r.logits, nv);
        ck_assert_msg(d.max_abs <= tol, "%s prompt %d on Vulkan: logit %" PRId64 " is %g, llama.cpp %g (|diff| %g > %g)",
                      row->ref, prompt, d.at, (double)l[d.at], (double)r.logits[d.at], d.max_abs, tol);
        if (row->tol == TOL_QUANT)
            ck_assert_msg(d.rms <= REF_QUANT_RMS, "%s prompt %d on Vulkan: RMS diff %g > %g", row->ref, prompt, d.rms,
                          REF_QUANT_RMS);
        if (prompt == 1) {
            float *cpu = prompt_logits(row->ref, r.prompt, r.n_prompt, nv, "--device cpu -t 1");
            struct ref_diff c = ref_compare(l, cpu, nv);
            printf("vulkan vs cpu: %s: max |diff| %.3g, rms %.3g\n", row->ref, c.max_abs, c.rms);
            ck_assert_msg(c.max_abs <= tol, "%s: Vulkan and CPU logits differ by %g > %g", row->ref, c.max_abs, tol);
            free(cpu);
        }
        free(l);
        free(r.logits);
    }
}
END_TEST

/* On one device the logits are the same bits run to run, and whatever the prompt's split into steps (a
 * program of 16-token steps against one that takes the 40 tokens at once). */
START_TEST(test_vulkan_deterministic)
{
    compile("synthetic/tiny-llama-q4_k_m.gguf", "det", "");
    compile("synthetic/tiny-llama-q4_k_m.gguf", "det16", "--t-max 16");
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = i == 0 ? 1 : 3 + (i * 37) % 500;
    float *a = prompt_logits("det", ids, 40, 512, "--device vulkan");
    float *b = prompt_logits("det", ids, 40, 512, "--device vulkan");
    float *c = prompt_logits("det16", ids, 40, 512, "--device vulkan");
    ck_assert_msg(memcmp(a, b, 512 * sizeof *a) == 0, "two runs on Vulkan gave different logits");
    ck_assert_msg(memcmp(a, c, 512 * sizeof *a) == 0, "steps of 16 tokens gave other logits than one step of 40");
    free(a);
    free(b);
    free(c);
}
END_TEST

/* Where Vulkan is missing (no loader, no driver) or too small, auto runs on the CPU and says why, and
 * --device vulkan stops with a message. */
START_TEST(test_vulkan_fallback)
{
    compile("stories260K.gguf", "fall", "");
    static const struct {
        const char *env, *flags;
        int status;
        const char *says;
    } rows[] = {
        {"AE_VULKAN_LIBRARY=/nonexistent/libvulkan.so.1", "", 0, "device: CPU (no Vulkan loader"},
        {"AE_VULKAN_LIBRARY=/nonexistent/libvulkan.so.1", "--device vulkan", 1, "--device vulkan: no Vulkan loader"},
        {"VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json", "", 0, "device: CPU (no Vulkan driver"},
        {"VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json", "--device vulkan", 1, "--device vulkan: no Vulkan driver"},
        {"AETHER_GPU_MEMORY=100000", "", 0, "needed, 0.1 MiB free)"},
        {"AETHER_GPU_MEMORY=100000", "--device vulkan", 1, "the model needs"},
        {"", "--device vulkan:9", 1, "--device vulkan:9: there are"},
        {"", "--device gpu", 2, "--device: expected auto, cpu, vulkan or vulkan:N"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = run(log_buf, sizeof log_buf, "%s %s/fall -p 'Once upon a time' -n 4 --temp 0 %s", rows[i].env, tmp_dir,
                     rows[i].flags);
        ck_assert_msg(rc == rows[i].status, "%s fall %s: exit %d, expected %d:\n%s", rows[i].env, rows[i].flags, rc,
                      rows[i].status, log_buf);
        ck_assert_msg(strstr(log_buf, rows[i].says), "%s fall %s: the output lacks '%s':\n%s", rows[i].env, rows[i].flags,
                      rows[i].says, log_buf);
    }
}
END_TEST

/* aetherc --backend cpu leaves the Vulkan half out: a smaller program that says so. */
START_TEST(test_vulkan_cpu_only_build)
{
    compile("stories260K.gguf", "both", "");
    compile("stories260K.gguf", "cpuonly", "--backend cpu");
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/both", tmp_dir);
    snprintf(b, sizeof b, "%s/cpuonly", tmp_dir);
    struct stat sa, sb;
    ck_assert(stat(a, &sa) == 0 && stat(b, &sb) == 0);
    ck_assert_msg(sb.st_size < sa.st_size, "--backend cpu: %lld bytes, not less than %lld", (long long)sb.st_size,
                  (long long)sa.st_size);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s -p hi -n 2 --device vulkan", b), 1);
    ck_assert_msg(strstr(log_buf, "runs on the CPU only: built with aetherc --backend cpu"), "%s", log_buf);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s --info", b), 0);
    ck_assert_msg(strstr(log_buf, "devices: the CPU only (built with aetherc --backend cpu)"), "%s", log_buf);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s --info", a), 0);
    ck_assert_msg(strstr(log_buf, "Vulkan 0: "), "--info lists no Vulkan device:\n%s", log_buf);
}
END_TEST

/* A model with steps the Vulkan backend has no kernels for (a mixture of experts' top-k, ...) is built for
 * the CPU only: --device vulkan stops naming the step, --info says why, and --device auto (the default)
 * runs it on the CPU. The program is the one test_moe_against_llama_cpp built. */
START_TEST(test_vulkan_moe_cpu_only)
{
    compile_once("synthetic/tiny-mixtral-q4_0.gguf", "tiny-mixtral-q4_0");
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s/tiny-mixtral-q4_0 -p hi -n 2 --device vulkan", tmp_dir), 1);
    ck_assert_msg(strstr(log_buf, "--device vulkan: this program runs on the CPU only: the Vulkan backend cannot emit") &&
                      strstr(log_buf, "= topk "),
                  "%s", log_buf);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s/tiny-mixtral-q4_0 -p hi -n 2 --temp 0", tmp_dir), 0);
    ck_assert_int_eq(run(log_buf, sizeof log_buf, "%s/tiny-mixtral-q4_0 --info", tmp_dir), 0);
    ck_assert_msg(strstr(log_buf, "devices: the CPU only (the Vulkan backend cannot emit"), "%s", log_buf);
}
END_TEST

/* --dump-spirv writes each kernel's GLSL and SPIR-V; the SPIR-V passes spirv-val, the GLSL compiles with
 * glslc as it is. */
START_TEST(test_dump_spirv_validates)
{
    char flags[256];
    snprintf(flags, sizeof flags, "--dump-spirv %s/kernels", tmp_dir);
    compile("synthetic/tiny-gemma2-q4_0.gguf", "spv", flags);
    int rc = run(log_buf, sizeof log_buf,
                 "cd %s/kernels && n=0 && for f in *.spv; do spirv-val --target-env vulkan1.2 $f || exit 1; "
                 "glslc --target-env=vulkan1.2 -fshader-stage=compute ${f%%.spv}.comp -o /dev/null || exit 1; "
                 "n=$((n+1)); done && echo kernels=$n", tmp_dir);
    ck_assert_msg(rc == 0, "a dumped kernel does not validate:\n%s", log_buf);
    const char *k = strstr(log_buf, "kernels=");
    ck_assert_msg(k && atoi(k + 8) >= 8, "too few kernels dumped:\n%s", log_buf);
}
END_TEST

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/aether-e2e-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("programs");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_model_against_llama_cpp, 0, ref_n_models);
    tcase_add_loop_test(tc, test_moe_against_llama_cpp, 0, ref_n_moe_models);
    tcase_add_test(tc, test_stories_free_running);
    tcase_add_test(tc, test_tcc_build_matches_gcc);
    tcase_add_test(tc, test_threads_bit_identical);
    tcase_add_test(tc, test_merged_bit_identical);
    tcase_add_test(tc, test_unseen_model_matches_interpreter);
    tcase_add_test(tc, test_scratch_sized_for_every_matmul);
    tcase_add_test(tc, test_generated_c_has_no_warnings);
    tcase_add_test(tc, test_program_needs_only_libc);
    tcase_add_test(tc, test_external_weights_and_verify);
    tcase_add_test(tc, test_aetherc_run_in_memory);
    tcase_add_test(tc, test_chat_two_turns_in_a_pty);
    suite_add_tcase(s, tc);
    TCase *vk = tcase_create("vulkan");
    tcase_set_timeout(vk, 600);
    tcase_add_loop_test(vk, test_vulkan_model_against_llama_cpp, 0, ref_n_models);
    tcase_add_test(vk, test_vulkan_deterministic);
    tcase_add_test(vk, test_vulkan_fallback);
    tcase_add_test(vk, test_vulkan_cpu_only_build);
    tcase_add_test(vk, test_vulkan_moe_cpu_only);
    tcase_add_test(vk, test_dump_spirv_validates);
    suite_add_tcase(s, vk);
    int rc = test_run_suite(s);
    test_remove_dir(tmp_dir);
    return rc;
}
