/* 'aetherc run': runs a model at once.
 *
 *   aetherc run MODEL [PROGRAM FLAGS]   compiles the model in memory with libtcc and runs the program
 *                                       with the flags that follow (-p TEXT, --tokens IDS, -n N, ...)
 *   aetherc run --interp MODEL --tokens 1,2,3 [--dump-logits FILE] [-n N] [--kv f16|f32] [--ctx N]
 *               [--dump-ir FILE] [--dump-format text|yaml]
 *
 * With --interp the model is imported to IR and executed by the reference interpreter: the prompt in
 * one step, then -n N greedy tokens one at a time (argmax, the lowest id wins ties), printed as
 * comma-separated ids. --dump-logits writes the logits after the prompt's last token as raw
 * little-endian float32 (n_vocab values). Compiled execution is another command's job and is refused
 * here with a clear message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_gguf.h"
#include "ae_program.h"
#include "build_program.h"
#include "commands.h"
#include "frontend.h"
#include "import.h"
#include "interp.h"
#include "ir.h"
#include "output_check.h"

struct run_args {
    bool interp;
    const char *model;
    const char *tokens;
    const char *dump_logits;
    const char *dump_ir;
    bool yaml;
    uint32_t n_gen;
    uint32_t kv_type;
    uint32_t n_ctx;
};

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: aetherc run MODEL [-p TEXT | --tokens IDS] [-n N] [program flags]\n"
            "       aetherc run --interp MODEL --tokens IDS [options]\n"
            "\n"
            "The first form compiles MODEL in memory with libtcc and runs it: the flags after MODEL are the\n"
            "generated program's (run it with --help to list them). It prints the compile time, and with\n"
            "--timings the time to the first token.\n"
            "\n"
            "The second runs the model in the reference interpreter:\n"
            "  --interp            execute in the reference interpreter\n"
            "  --tokens 1,2,3      prompt token ids\n"
            "  -n N                generate N tokens greedily after the prompt and print their ids\n"
            "  --dump-logits FILE  write the prompt's last logits as raw little-endian float32\n"
            "  --kv f16|f32        KV cache type (default f16, as llama.cpp)\n"
            "  --ctx N             context size (default: the model's, at most 4096)\n"
            "  --dump-ir FILE      write the imported graph ('-' for stdout)\n"
            "  --dump-format F     text (default) or yaml\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || *e || v > UINT32_MAX || s[0] == '-')
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct run_args *a)
{
    memset(a, 0, sizeof *a);
    a->kv_type = AE_TYPE_F16;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            run_usage(stdout);
            exit(0);
        } else if (!strcmp(arg, "--interp")) {
            a->interp = true;
        } else if (!strcmp(arg, "--tokens") && val) {
            a->tokens = val;
            i++;
        } else if (!strcmp(arg, "--dump-logits") && val) {
            a->dump_logits = val;
            i++;
        } else if (!strcmp(arg, "--dump-ir") && val) {
            a->dump_ir = val;
            i++;
        } else if (!strcmp(arg, "--dump-format") && val) {
            if (!strcmp(val, "yaml"))
                a->yaml = true;
            else if (strcmp(val, "text") != 0) {
                fprintf(stderr, "aetherc: run: --dump-format is '%s', expected text or yaml\n", val);
                return -1;
            }
            i++;
        } else if (!strcmp(arg, "-n") && val) {
            if (parse_u32(val, &a->n_gen)) {
                fprintf(stderr, "aetherc: run: -n '%s' is not a count\n", val);
                return -1;
            }
            i++;
        } else if (!strcmp(arg, "--ctx") && val) {
            if (parse_u32(val, &a->n_ctx) || a->n_ctx == 0) {
                fprintf(stderr, "aetherc: run: --ctx '%s' is not a positive count\n", val);
                return -1;
            }
            i++;
        } else if (!strcmp(arg, "--kv") && val) {
            if (!strcmp(val, "f16"))
                a->kv_type = AE_TYPE_F16;
            else if (!strcmp(val, "f32"))
                a->kv_type = AE_TYPE_F32;
            else {
                fprintf(stderr, "aetherc: run: --kv '%s', expected f16 or f32\n", val);
                return -1;
            }
            i++;
        } else if (arg[0] != '-' && !a->model) {
            a->model = arg;
        } else {
            fprintf(stderr, "aetherc: run: unknown or incomplete option '%s'\n", arg);
            return -1;
        }
    }
    if (!a->model || !a->tokens) {
        fprintf(stderr, "aetherc: run: a MODEL and --tokens are required\n");
        return -1;
    }
    return 0;
}

/* "1,2,3" -> ids (malloc'd). */
static int parse_tokens(const char *s, int32_t **out, uint32_t *n_out)
{
    uint32_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -1;
    const char *p = s;
    while (*p) {
        char *e;
        errno = 0;
        long v = strtol(p, &e, 10);
        if (e == p || errno || v < 0 || v > INT32_MAX || (*e && *e != ',')) {
            fprintf(stderr, "aetherc: run: --tokens '%s': expected comma-separated ids, stopped at '%s'\n", s, p);
            free(ids);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *b = realloc(ids, cap * sizeof *b);
            if (!b) {
                free(ids);
                return -1;
            }
            ids = b;
        }
        ids[n++] = (int32_t)v;
        p = *e ? e + 1 : e;
    }
    if (n == 0) {
        fprintf(stderr, "aetherc: run: --tokens is empty\n");
        free(ids);
        return -1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

static int dump_graph(const struct ir_graph *g, const struct run_args *a, ae_error *err)
{
    FILE *f = strcmp(a->dump_ir, "-") == 0 ? stdout : fopen(a->dump_ir, "w");
    if (!f)
        return ae_fail(err, "cannot write %s: %s", a->dump_ir, strerror(errno));
    int rc = a->yaml ? ir_emit_yaml(g, f, err) : ir_print(g, f);
    if (rc && !a->yaml)
        ae_fail(err, "cannot write the graph to %s", a->dump_ir);
    if (f != stdout && fclose(f) != 0 && rc == 0)
        rc = ae_fail(err, "cannot write %s: %s", a->dump_ir, strerror(errno));
    return rc;
}

static int write_logits(const char *path, const float *logits, int64_t n, ae_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ae_fail(err, "cannot write %s: %s", path, strerror(errno));
    size_t w = fwrite(logits, sizeof *logits, (size_t)n, f);
    if (fclose(f) != 0 || w != (size_t)n)
        return ae_fail(err, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* The in-place run reads the weights from the GGUF mapping as the file stores them: no interleaving. */
static void configure_in_place(struct pass_ctx *c, void *arg)
{
    (void)arg;
    c->opt.interleave = false;
}

/* aetherc run MODEL [flags]: the program's argv is MODEL and the flags after it, checked before the
 * compile so that a typo costs nothing. */
static int run_jit(int argc, char **argv)
{
    ae_error err = {{0}};
    if (ae_program_check_args(argc, argv, &err) < 0) {
        fprintf(stderr, "aetherc: run: %s\n", err.msg);
        return 2;
    }
    struct frontend fe;
    if (frontend_compile(&fe, argv[0], NULL, configure_in_place, NULL, &err)) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        return 1;
    }
    struct build_model m = {fe.path, fe.f, fe.g, &fe.c, &fe.hp};
    int status = 1;
    if (build_and_run(&m, argc, argv, &status, &err)) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        status = 1;
    }
    frontend_free(&fe);
    return status;
}

int cmd_run(int argc, char **argv)
{
    bool interp = false;
    for (int i = 1; i < argc; i++)
        interp |= !strcmp(argv[i], "--interp");
    if (!interp && argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        run_usage(stdout);
        return 0;
    }
    if (!interp && argc >= 2 && argv[1][0] != '-')
        return run_jit(argc - 1, argv + 1);
    struct run_args a;
    if (parse_args(argc, argv, &a)) {
        run_usage(stderr);
        return 2;
    }
    if (!a.interp) {
        fprintf(stderr, "aetherc: run: the model comes first: aetherc run MODEL [flags], or --interp\n");
        run_usage(stderr);
        return 2;
    }
    int32_t *tokens = NULL;
    uint32_t n_tokens = 0;
    if (parse_tokens(a.tokens, &tokens, &n_tokens)) {
        run_usage(stderr);
        return 2;
    }

    ae_error err = {{0}};
    if ((a.dump_logits && output_check("--dump-logits", a.dump_logits, OUTPUT_ANY, a.model, &err) < 0) ||
        (a.dump_ir && strcmp(a.dump_ir, "-") != 0 && output_check("--dump-ir", a.dump_ir, OUTPUT_ANY, a.model, &err) < 0)) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        free(tokens);
        return 1;
    }
    ae_gguf *f = NULL;
    struct ir_graph *g = NULL;
    struct interp *it = NULL;
    float *logits = NULL;
    int status = 1;
    struct import_hparams hp;
    struct import_options opt;
    import_options_init(&opt);
    opt.kv_type = a.kv_type;
    opt.n_ctx = a.n_ctx;

    if (ae_gguf_open(&f, a.model, &err))
        goto fail;
    if (import_model(&g, f, &opt, &hp, &err))
        goto fail;
    uint32_t n_ctx = hp.n_ctx;
    if (a.dump_ir && dump_graph(g, &a, &err))
        goto fail;
    if ((uint64_t)n_tokens + a.n_gen > n_ctx) {
        ae_fail(&err, "%" PRIu32 " prompt tokens and %" PRIu32 " generated ones do not fit the context of %" PRIu32
                " (use --ctx)", n_tokens, a.n_gen, n_ctx);
        goto fail;
    }
    if (interp_create(&it, g, f, n_ctx, &err))
        goto fail;
    logits = malloc((size_t)interp_output_size(it, n_tokens) * sizeof *logits);
    if (!logits) {
        ae_fail(&err, "out of memory");
        goto fail;
    }
    if (interp_eval(it, tokens, n_tokens, 0, logits, &err))
        goto fail;
    if (a.dump_logits && write_logits(a.dump_logits, logits, hp.n_vocab, &err))
        goto fail;
    uint32_t pos = n_tokens;
    for (uint32_t i = 0; i < a.n_gen; i++) {
        int32_t next = interp_argmax(logits, hp.n_vocab);
        printf("%s%" PRId32, i ? "," : "", next);
        fflush(stdout);
        if (i + 1 < a.n_gen && interp_eval(it, &next, 1, pos++, logits, &err))
            goto fail;
    }
    if (a.n_gen)
        printf("\n");
    status = 0;
    goto done;

fail:
    fprintf(stderr, "aetherc: %s\n", err.msg);
done:
    free(logits);
    interp_destroy(it);
    ir_graph_destroy(g);
    ae_gguf_close(f);
    free(tokens);
    return status;
}
