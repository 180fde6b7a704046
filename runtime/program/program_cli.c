/* The generated program's command line: one table of flags, strict value parsing, usage text.
 *
 * Every flag is a row of cli_flags (its names, its argument, one line of help); parsing looks the flag
 * up there and converts its value with range checks, so that a bad command line fails before anything
 * is loaded, with a message that names the flag, what it takes and what it was given. Long flags also
 * take "--flag=VALUE". The values' meanings are documented in the usage text, which is the reference.
 */
#include "program_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum cli_id {
    CLI_PROMPT,
    CLI_TOKENS,
    CLI_N_PREDICT,
    CLI_TEMP,
    CLI_TOP_K,
    CLI_TOP_P,
    CLI_MIN_P,
    CLI_REPEAT_PENALTY,
    CLI_REPEAT_LAST_N,
    CLI_SEED,
    CLI_THREADS,
    CLI_CTX,
    CLI_KV,
    CLI_DEVICE,
    CLI_DUMP_LOGITS,
    CLI_PRINT_IDS,
    CLI_TIMINGS,
    CLI_INFO,
    CLI_VERIFY,
    CLI_STOP,
    CLI_NO_BOS,
    CLI_IGNORE_EOS,
    CLI_CHAT,
    CLI_SYSTEM,
    CLI_CHAT_TEMPLATE,
    CLI_HELP,
};

struct cli_flag {
    enum cli_id id;
    const char *name;   /* "-p" or "--temp" */
    const char *alias;  /* another spelling, or NULL */
    const char *arg;    /* the argument's name, NULL for a switch */
    const char *help;
};

static const struct cli_flag cli_flags[] = {
    { CLI_PROMPT, "-p", "--prompt", "TEXT", "prompt text (special tokens such as <s> are parsed; BOS is added)" },
    { CLI_TOKENS, "--tokens", NULL, "IDS", "prompt as comma-separated token ids, e.g. 1,450,4996" },
    { CLI_N_PREDICT, "-n", "--n-predict", "N", "tokens to generate (default 128; -1: until the end of text "
      "or of the context)" },
    { CLI_TEMP, "--temp", NULL, "T", "temperature (default 0.8; 0: greedy)" },
    { CLI_TOP_K, "--top-k", NULL, "K", "keep the K most likely tokens (default 40; 0: off)" },
    { CLI_TOP_P, "--top-p", NULL, "P", "nucleus sampling (default 0.95; 1: off)" },
    { CLI_MIN_P, "--min-p", NULL, "P", "drop tokens below P times the top probability (default 0.05; 0: off)" },
    { CLI_REPEAT_PENALTY, "--repeat-penalty", NULL, "F", "penalty for repeated tokens (default 1.0: off)" },
    { CLI_REPEAT_LAST_N, "--repeat-last-n", NULL, "N", "tokens the penalty looks back at (default 64; "
      "-1: the context)" },
    { CLI_SEED, "--seed", NULL, "S", "sampling seed (default -1: random, shown by --timings)" },
    { CLI_THREADS, "-t", "--threads", "N", "threads (default: the CPUs this process may use, at most 8)" },
    { CLI_CTX, "--ctx", "-c", "N", "context length: KV cache size in tokens (default: the model's, at most 4096)" },
    { CLI_KV, "--kv", NULL, "f16|f32", "KV cache element type (default f16)" },
    { CLI_DEVICE, "--device", NULL, "auto|cpu|vulkan[:N]", "where the model runs (default auto: a Vulkan GPU "
      "whose memory holds it, else the CPU; --info lists the devices)" },
    { CLI_DUMP_LOGITS, "--dump-logits", NULL, "FILE", "write the last prompt position's logits to FILE "
      "(n_vocab little-endian float32)" },
    { CLI_PRINT_IDS, "--print-ids", NULL, NULL, "print generated token ids, one per line, instead of text" },
    { CLI_TIMINGS, "--timings", NULL, NULL, "print prompt and generation speed to stderr" },
    { CLI_INFO, "--info", NULL, NULL, "print what was compiled and the memory it needs, then exit" },
    { CLI_VERIFY, "--verify", NULL, NULL, "check the weights' checksum, print OK or the mismatch, then exit" },
    { CLI_STOP, "--stop", NULL, "STRING", "stop when the text produces STRING (not printed); repeatable" },
    { CLI_NO_BOS, "--no-bos", NULL, NULL, "tokenize -p without adding BOS (or EOS)" },
    { CLI_IGNORE_EOS, "--ignore-eos", NULL, NULL, "keep generating past end-of-text tokens (for benchmarks)" },
    { CLI_CHAT, "--chat", NULL, NULL, "interactive chat on stdin/stdout (/clear, /exit; Ctrl-C stops an answer)" },
    { CLI_SYSTEM, "--system", NULL, "TEXT", "chat: system message" },
    { CLI_CHAT_TEMPLATE, "--chat-template", NULL, "NAME", "chat: template family instead of the model's" },
    { CLI_HELP, "--help", "-h", NULL, "show this help" },
};
#define CLI_N_FLAGS (sizeof cli_flags / sizeof cli_flags[0])

void ae_prog_print_usage(FILE *f, const char *prog)
{
    fprintf(f, "usage: %s [-p TEXT | --tokens IDS] [options]\n"
               "       %s --chat [--system TEXT] [--chat-template NAME] [options]\n"
               "       %s --info | --verify\n\n"
               "Generates text after the prompt (which is not echoed). Without a prompt, generation starts\n"
               "from BOS alone. Output stops at the end of text (EOS/EOT, not printed), at a --stop string,\n"
               "after -n tokens, or when the context is full.\n\noptions:\n",
            prog, prog, prog);
    for (size_t i = 0; i < CLI_N_FLAGS; i++) {
        const struct cli_flag *c = &cli_flags[i];
        char head[64];
        snprintf(head, sizeof head, "%s%s%s%s%s", c->name, c->alias ? ", " : "", c->alias ? c->alias : "",
                 c->arg ? " " : "", c->arg ? c->arg : "");
        fprintf(f, "  %-26s %s\n", head, c->help);
    }
    fprintf(f, "\nchat templates: %s\n", ae_chat_template_names());
}

/* ---- Values ---------------------------------------------------------------------------------------- */

static int cli_parse_i64(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out, ae_error *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi)
        return ae_fail(err, "%s: expected an integer from %" PRId64 " to %" PRId64 ", found '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

static int cli_parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int32_t *out, ae_error *err)
{
    int64_t v = 0;
    if (cli_parse_i64(flag, s, lo, hi, &v, err) < 0)
        return -1;
    *out = (int32_t)v;
    return 0;
}

/* A finite number in [lo, hi]; lo itself is excluded when lo_open. */
static int cli_parse_float(const char *flag, const char *s, double lo, bool lo_open, double hi, float *out,
                           ae_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || v < lo || (lo_open && v == lo) || v > hi) {
        if (isinf(hi))
            return ae_fail(err, "%s: expected a number %s %g, found '%s'", flag, lo_open ? ">" : ">=", lo, s);
        return ae_fail(err, "%s: expected a number from %g to %g, found '%s'", flag, lo, hi, s);
    }
    *out = (float)v;
    return 0;
}

static int cli_parse_seed(const char *s, uint64_t *out, ae_error *err)
{
    if (strcmp(s, "-1") == 0) {
        *out = AE_SAMPLER_SEED_RANDOM;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *s == '+' || *end || errno == ERANGE || v == AE_SAMPLER_SEED_RANDOM)
        return ae_fail(err, "--seed: expected an integer from 0 to %" PRIu64 " or -1 (random), found '%s'",
                       (uint64_t)AE_SAMPLER_SEED_RANDOM - 1, s);
    *out = v;
    return 0;
}

/* "1, 450,4996": ids in 0..n_vocab-1. */
static int cli_parse_tokens(struct prog_opts *o, const char *s, int32_t n_vocab, ae_error *err)
{
    size_t n = 1;
    for (const char *c = s; *c; c++)
        n += *c == ',';
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids)
        return ae_fail(err, "--tokens: out of memory for %zu ids", n);
    size_t k = 0;
    const char *c = s;
    for (;;) {
        while (*c == ' ')
            c++;
        const char *start = c;
        while (*c && *c != ',')
            c++;
        size_t len = (size_t)(c - start);
        while (len > 0 && start[len - 1] == ' ')
            len--;
        char *end;
        errno = 0;
        long long v = len ? strtoll(start, &end, 10) : 0;
        if (len == 0 || end != start + len || errno == ERANGE || *start == '+') {
            free(ids);
            return ae_fail(err, "--tokens: item %zu ('%.*s') is not a token id: expected comma-separated "
                           "integers", k + 1, (int)(len > 40 ? 40 : len), start);
        }
        if (v < 0 || v >= n_vocab) {
            free(ids);
            return ae_fail(err, "--tokens: item %zu: id %lld is outside the vocabulary (0..%" PRId32 ")", k + 1, v,
                           n_vocab - 1);
        }
        ids[k++] = (int32_t)v;
        if (!*c)
            break;
        c++;
    }
    free((void *)o->tokens);
    o->tokens = ids;
    o->n_tokens = (int32_t)k;
    return 0;
}

/* ---- Flags ----------------------------------------------------------------------------------------- */

static const struct cli_flag *cli_find(const char *name, size_t len)
{
    for (size_t i = 0; i < CLI_N_FLAGS; i++) {
        const struct cli_flag *c = &cli_flags[i];
        if ((strlen(c->name) == len && memcmp(c->name, name, len) == 0) ||
            (c->alias && strlen(c->alias) == len && memcmp(c->alias, name, len) == 0))
            return c;
    }
    return NULL;
}

static int cli_apply(struct prog_opts *o, const struct cli_flag *c, const char *v, const struct ae_model *m,
                     ae_error *err)
{
    int32_t max_ctx = m->n_ctx_train > 0 ? m->n_ctx_train : INT32_MAX / 2;
    switch (c->id) {
    case CLI_PROMPT:
        o->prompt = v;
        return 0;
    case CLI_TOKENS:
        return cli_parse_tokens(o, v, m->n_vocab, err);
    case CLI_N_PREDICT:
        return cli_parse_int(c->name, v, -1, INT32_MAX, &o->n_predict, err);
    case CLI_TEMP:
        return cli_parse_float(c->name, v, 0, false, INFINITY, &o->sampling.temp, err);
    case CLI_TOP_K:
        return cli_parse_int(c->name, v, 0, INT32_MAX, &o->sampling.top_k, err);
    case CLI_TOP_P:
        return cli_parse_float(c->name, v, 0, false, 1, &o->sampling.top_p, err);
    case CLI_MIN_P:
        return cli_parse_float(c->name, v, 0, false, 1, &o->sampling.min_p, err);
    case CLI_REPEAT_PENALTY:
        return cli_parse_float(c->name, v, 0, true, INFINITY, &o->sampling.repeat_penalty, err);
    case CLI_REPEAT_LAST_N: {
        int32_t n;
        if (cli_parse_int(c->name, v, -1, INT32_MAX, &n, err) < 0)
            return -1;
        o->repeat_last_n_ctx = n < 0;
        o->sampling.repeat_last_n = n < 0 ? 0 : n;
        return 0;
    }
    case CLI_SEED:
        return cli_parse_seed(v, &o->sampling.seed, err);
    case CLI_THREADS: {
        int32_t n;
        if (cli_parse_int(c->name, v, 1, AE_POOL_MAX_THREADS, &n, err) < 0)
            return -1;
        o->n_threads = n;
        return 0;
    }
    case CLI_CTX:
        if (cli_parse_int(c->name, v, 1, max_ctx, &o->n_ctx, err) < 0)
            return ae_fail(err, "--ctx: expected a context length from 1 to %" PRId32 "%s, found '%s'", max_ctx,
                           m->n_ctx_train > 0 ? " (the model's training context)" : "", v);
        return 0;
    case CLI_KV:
        if (strcmp(v, "f16") == 0 || strcmp(v, "F16") == 0)
            o->kv_type = AE_TYPE_F16;
        else if (strcmp(v, "f32") == 0 || strcmp(v, "F32") == 0)
            o->kv_type = AE_TYPE_F32;
        else
            return ae_fail(err, "--kv: expected f16 or f32, found '%s'", v);
        return 0;
    case CLI_DEVICE:
        return ae_prog_parse_device(o, v, err);
    case CLI_DUMP_LOGITS:
        o->dump_logits = v;
        return 0;
    case CLI_STOP:
        if (!*v)
            return ae_fail(err, "--stop: the stop string is empty");
        o->stops[o->n_stops++] = v;
        return 0;
    case CLI_SYSTEM:
        o->system = v;
        return 0;
    case CLI_CHAT_TEMPLATE: {
        enum ae_chat_template t;
        if (ae_chat_template_from_name(v, &t, err) < 0)
            return ae_fail_prefix(err, "--chat-template");
        o->chat_template = v;
        return 0;
    }
    case CLI_PRINT_IDS:
        o->print_ids = true;
        return 0;
    case CLI_TIMINGS:
        o->timings = true;
        return 0;
    case CLI_INFO:
        o->info = true;
        return 0;
    case CLI_VERIFY:
        o->verify = true;
        return 0;
    case CLI_NO_BOS:
        o->no_bos = true;
        return 0;
    case CLI_IGNORE_EOS:
        o->ignore_eos = true;
        return 0;
    case CLI_CHAT:
        o->chat = true;
        return 0;
    case CLI_HELP:
        o->help = true;
        return 0;
    }
    return ae_fail(err, "%s: unhandled flag", c->name);
}

/* Combinations that make no sense, named. */
static int cli_check(const struct prog_opts *o, ae_error *err)
{
    if (o->prompt && o->tokens)
        return ae_fail(err, "-p and --tokens: give the prompt one way, not both");
    if (o->chat && (o->prompt || o->tokens))
        return ae_fail(err, "--chat reads the conversation from standard input: -p and --tokens do not apply");
    if (o->chat && o->dump_logits)
        return ae_fail(err, "--dump-logits does not apply to --chat");
    if (!o->chat && o->system)
        return ae_fail(err, "--system is a --chat option");
    if (!o->chat && o->chat_template)
        return ae_fail(err, "--chat-template is a --chat option");
    if (o->info && o->verify)
        return ae_fail(err, "--info and --verify: choose one");
    return 0;
}

int ae_prog_parse_args(struct prog_opts *o, int argc, char **argv, const struct ae_model *m, ae_error *err)
{
    const char *slash = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
    *o = (struct prog_opts){
        .prog = slash ? slash + 1 : (argc > 0 && argv[0] ? argv[0] : "aether"),
        .n_predict = AE_PROG_DEFAULT_N_PREDICT,
        .kv_type = AE_TYPE_F16,
        .device_index = -1,
    };
    ae_sampler_params_init(&o->sampling);
    o->stops = calloc(argc > 0 ? (size_t)argc : 1, sizeof *o->stops);
    if (!o->stops)
        return ae_fail(err, "out of memory for the command line");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0)
            return ae_fail(err, "unexpected argument '%s': the prompt goes after -p", a);
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const struct cli_flag *c = cli_find(a, len);
        if (!c)
            return ae_fail(err, "unknown flag '%.*s'", (int)len, a);
        const char *v = NULL;
        if (c->arg) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return ae_fail(err, "%s: expects %s", c->name, c->arg);
        } else if (eq) {
            return ae_fail(err, "%s: takes no value, found '%s'", c->name, eq + 1);
        }
        if (cli_apply(o, c, v, m, err) < 0)
            return -1;
    }
    return cli_check(o, err);
}

void ae_prog_opts_free(struct prog_opts *o)
{
    free((void *)o->tokens);
    free(o->stops);
    o->tokens = NULL;
    o->stops = NULL;
}
