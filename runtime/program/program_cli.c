/* The generated program's command line: one table of flags, strict value parsing, usage text.
 *
 * Every flag is a row of cli_flags (its names, its argument, one line of help); parsing looks the flag
 * up there and converts its value with range checks, so that a bad command line fails before anything
 * is loaded, with one line that names the flag, what it takes and what it was given (an unknown flag:
 * the closest known one). Long flags also take "--flag=VALUE". llama.cpp's everyday spellings are
 * aliases of their rows (-c, -s, -f, -r, -i, -cnv, ...), so that a llama.cpp command line runs as it is.
 * The values' meanings are documented in the usage text, which is the reference.
 */
#include "program_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    CLI_PROFILE,
    CLI_INFO,
    CLI_VERIFY,
    CLI_STOP,
    CLI_NO_BOS,
    CLI_IGNORE_EOS,
    CLI_CHAT,
    CLI_SYSTEM,
    CLI_CHAT_TEMPLATE,
    CLI_FILE,
    CLI_ESCAPE,
    CLI_NO_ESCAPE,
    CLI_BATCH,
    CLI_MLOCK,
    CLI_GPU_LAYERS,
    CLI_LOG_DISABLE,
    CLI_NO_DISPLAY_PROMPT,
    CLI_COLOR,
    CLI_VERSION,
    CLI_SERVE,
    CLI_HOST,
    CLI_PORT,
    CLI_API_KEY,
    CLI_API_KEY_FILE,
    CLI_PARALLEL,
    CLI_QUEUE,
    CLI_TIMEOUT,
    CLI_HELP,
};

struct cli_flag {
    enum cli_id id;
    const char *name;   /* "-p" or "--temp" */
    const char *aliases; /* other spellings, space-separated ("-c --ctx-size"), or NULL */
    const char *arg;    /* the argument's name, NULL for a switch */
    const char *help;
};

static const struct cli_flag cli_flags[] = {
    { CLI_PROMPT, "-p", "--prompt", "TEXT", "prompt text (special tokens such as <s> are parsed; BOS is added); "
      "-p - reads it from standard input" },
    { CLI_FILE, "-f", "--file", "FILE", "read the prompt from FILE (one final newline dropped, as llama.cpp does)" },
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
    { CLI_SEED, "--seed", "-s", "S", "sampling seed (default -1: random, shown by --timings)" },
    { CLI_THREADS, "-t", "--threads", "N", "threads (default: the CPUs this process may use, at most 8)" },
    { CLI_CTX, "--ctx", "-c --ctx-size", "N", "context length: KV cache size in tokens (default: what aetherc "
      "--ctx said; --info shows the range)" },
    { CLI_KV, "--kv", NULL, "f16|f32", "KV cache element type (default: what aetherc --kv said, f16 unless told)" },
    { CLI_BATCH, "-b", "--batch-size", "N", "feed the prompt in steps of at most N tokens (default and most: the "
      "compiled step, --info)" },
    { CLI_DEVICE, "--device", NULL, "auto|cpu|vulkan[:N]", "where the model runs (default auto: a Vulkan GPU "
      "whose memory holds it, else the CPU; --info lists the devices)" },
    { CLI_DUMP_LOGITS, "--dump-logits", NULL, "FILE", "write the last prompt position's logits to FILE "
      "(n_vocab little-endian float32)" },
    { CLI_PRINT_IDS, "--print-ids", NULL, NULL, "print generated token ids, one per line, instead of text" },
    { CLI_TIMINGS, "--timings", NULL, NULL, "print prompt and generation speed to stderr" },
    { CLI_PROFILE, "--profile", NULL, NULL, "print where the steps' time went, per op kind (matmul by type, "
      "attention, norms, ...), to stderr" },
    { CLI_INFO, "--info", NULL, NULL, "print what was compiled and the memory it needs, then exit" },
    { CLI_VERIFY, "--verify", NULL, NULL, "check the weights' checksum, print OK or the mismatch, then exit" },
    { CLI_STOP, "--stop", "-r --reverse-prompt", "STRING", "stop when the text produces STRING (not printed); "
      "repeatable" },
    { CLI_ESCAPE, "-e", "--escape", NULL, "process \\n \\r \\t \\' \\\" \\\\ \\xHH in the prompt and --stop "
      "strings (the default, as llama.cpp)" },
    { CLI_NO_ESCAPE, "--no-escape", NULL, NULL, "take the prompt and --stop strings literally" },
    { CLI_NO_BOS, "--no-bos", NULL, NULL, "tokenize -p without adding BOS (or EOS)" },
    { CLI_IGNORE_EOS, "--ignore-eos", NULL, NULL, "keep generating past end-of-text tokens (for benchmarks)" },
    { CLI_CHAT, "--chat", "-i -cnv --conversation", NULL, "interactive chat on stdin/stdout (/clear, /exit; "
      "Ctrl-C stops an answer)" },
    { CLI_SYSTEM, "--system", NULL, "TEXT", "chat: system message" },
    { CLI_CHAT_TEMPLATE, "--chat-template", NULL, "NAME", "chat: template family instead of the model's" },
    { CLI_MLOCK, "--mlock", NULL, NULL, "keep the weights in RAM (mlock; a note when the system refuses)" },
    { CLI_GPU_LAYERS, "-ngl", "--n-gpu-layers --gpu-layers", "N", "layers on the GPU (llama.cpp's flag): 0 runs "
      "on the CPU (--device cpu), more puts every layer where --device says (default auto)" },
    { CLI_LOG_DISABLE, "--log-disable", NULL, NULL, "no notes on stderr (errors and --timings still print)" },
    { CLI_NO_DISPLAY_PROMPT, "--no-display-prompt", NULL, NULL, "accepted for llama.cpp's command lines: the prompt "
      "is never echoed" },
    { CLI_COLOR, "--color", "-co", NULL, "accepted for llama.cpp's command lines: the output is generated text only, "
      "uncolored" },
    { CLI_SERVE, "--serve", NULL, NULL, "serve the OpenAI API over HTTP (/v1/chat/completions, /v1/completions, "
      "/v1/models, /health, /metrics) until SIGTERM" },
    { CLI_HOST, "--host", NULL, "ADDR", "serve: address to listen on (default 127.0.0.1)" },
    { CLI_PORT, "--port", NULL, "N", "serve: TCP port (default 8080; 0: any free port)" },
    { CLI_API_KEY, "--api-key", NULL, "KEY", "serve: require 'Authorization: Bearer KEY'" },
    { CLI_API_KEY_FILE, "--api-key-file", NULL, "FILE", "serve: the key is FILE's first line" },
    { CLI_PARALLEL, "--parallel", "-np", "N", "serve: requests generated at once, each with its own KV cache of "
      "--ctx tokens (default 1)" },
    { CLI_QUEUE, "--queue", NULL, "N", "serve: requests that may wait for a free slot; more get 503 (default 64)" },
    { CLI_TIMEOUT, "--timeout", "-to", "SECONDS", "serve: close a connection silent this long (default 600)" },
    { CLI_VERSION, "--version", NULL, NULL, "what built this program, the runtime and the kernels this CPU runs" },
    { CLI_HELP, "--help", "-h", NULL, "show this help" },
};
#define CLI_N_FLAGS (sizeof cli_flags / sizeof cli_flags[0])

void ae_prog_print_usage(FILE *f, const char *prog)
{
    fprintf(f, "usage: %s [-p TEXT | -f FILE | --tokens IDS] [options]\n"
               "       %s --chat [--system TEXT] [--chat-template NAME] [options]\n"
               "       %s --serve [--host ADDR] [--port N] [--api-key KEY] [--parallel N] [options]\n"
               "       %s --info | --verify | --version\n\n"
               "Generates text after the prompt (which is not echoed). Without a prompt, generation starts\n"
               "from BOS alone. Output stops at the end of text (EOS/EOT, not printed), at a --stop string,\n"
               "after -n tokens, or when the context is full.\n\n"
               "Every start checks the weights cheaply: the pack's header and sizes, that its table of chunk\n"
               "hashes (BLAKE2b) is the one this program was built with, and %d sampled chunks of %u MiB.\n"
               "Other bytes are not read until they are used: --verify hashes every chunk.\n\noptions:\n",
            prog, prog, prog, prog, AE_PACK_SAMPLES, AE_PACK_CHUNK >> 20);
    for (size_t i = 0; i < CLI_N_FLAGS; i++) {
        const struct cli_flag *c = &cli_flags[i];
        char head[96];
        size_t k = (size_t)snprintf(head, sizeof head, "%s", c->name);
        for (const char *a = c->aliases; a && *a && k < sizeof head;) {
            size_t len = strcspn(a, " ");
            k += (size_t)snprintf(head + k, sizeof head - k, ", %.*s", (int)len, a);
            a += len + (a[len] == ' ');
        }
        if (c->arg && k < sizeof head)
            snprintf(head + k, sizeof head - k, " %s", c->arg);
        if (strlen(head) > 26)
            fprintf(f, "  %s\n  %-26s %s\n", head, "", c->help);
        else
            fprintf(f, "  %-26s %s\n", head, c->help);
    }
    fprintf(f, "\nchat templates: %s\n", ae_chat_template_names());
}

void ae_prog_print_notes(const struct prog_opts *o)
{
    if (o->quiet)
        return;
    /* -ngl is where llama.cpp's command lines ask for the GPU (mapped to the device in cli_apply): the
     * whole model runs on one device, never a share of its layers. */
    if (o->gpu_layers > 0 && o->device != PROG_DEVICE_CPU)
        fprintf(stderr, "%s: -ngl %" PRId32 ": every layer runs on one device (--device %s)\n", o->prog, o->gpu_layers,
                o->device == PROG_DEVICE_VULKAN ? "vulkan" : "auto");
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

/* Whether one of the space-separated words of list is name[0..len). */
static bool cli_in_list(const char *list, const char *name, size_t len)
{
    while (list && *list) {
        size_t n = strcspn(list, " ");
        if (n == len && memcmp(list, name, len) == 0)
            return true;
        list += n + (list[n] == ' ');
    }
    return false;
}

static const struct cli_flag *cli_find(const char *name, size_t len)
{
    for (size_t i = 0; i < CLI_N_FLAGS; i++) {
        const struct cli_flag *c = &cli_flags[i];
        if ((strlen(c->name) == len && memcmp(c->name, name, len) == 0) || cli_in_list(c->aliases, name, len))
            return c;
    }
    return NULL;
}

/* "unknown flag '--temperature'; did you mean '--temp'?" */
static int cli_unknown(const char *a, size_t len, ae_error *err)
{
    static char spellings[CLI_N_FLAGS * 4][32];
    const char *names[CLI_N_FLAGS * 4];
    size_t n = 0;
    for (size_t i = 0; i < CLI_N_FLAGS; i++) {
        names[n++] = cli_flags[i].name;
        for (const char *l = cli_flags[i].aliases; l && *l && n < CLI_N_FLAGS * 4;) {
            size_t k = strcspn(l, " ");
            snprintf(spellings[n], sizeof spellings[n], "%.*s", (int)k, l);
            names[n] = spellings[n];
            n++;
            l += k + (l[k] == ' ');
        }
    }
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)(len < 63 ? len : 63), a);
    const char *near = ae_closest_name(word, names, n);
    if (near)
        return ae_fail(err, "unknown flag '%s'; did you mean '%s'?", word, near);
    return ae_fail(err, "unknown flag '%s' (--help lists the flags)", word);
}

/* A copy of s with llama.cpp's escapes processed: \n \r \t \' \" \\ and \xHH; any other backslash
 * stays as it is. */
static char *cli_unescape(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            out[k++] = s[i];
            continue;
        }
        char c = s[++i];
        const char *simple = strchr("nrt'\"\\", c);
        if (simple && c) {
            out[k++] = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        } else if (c == 'x' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[k++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[k++] = '\\';
            out[k++] = c;
        }
    }
    out[k] = 0;
    return out;
}

char *ae_prog_text(const struct prog_opts *o, const char *s)
{
    return o->escape ? cli_unescape(s) : strdup(s);
}

/* m is NULL for a check before there is a program (ae_program_check_args): the ranges that depend on
 * the model are not checked then. */
static int cli_apply(struct prog_opts *o, const struct cli_flag *c, const char *v, const struct ae_model *m,
                     ae_error *err)
{
    switch (c->id) {
    case CLI_PROMPT:
        if (strcmp(v, "-") == 0) {
            o->prompt = NULL;
            o->prompt_file = "-";
        } else {
            o->prompt = v;
            o->prompt_file = NULL;
        }
        return 0;
    case CLI_FILE:
        if (strcmp(v, "-") != 0 && access(v, R_OK) != 0)
            return ae_fail(err, "%s %s: cannot read the prompt file: %s", c->name, v, strerror(errno));
        o->prompt_file = v;
        o->prompt = NULL;
        return 0;
    case CLI_TOKENS:
        return cli_parse_tokens(o, v, m ? m->n_vocab : INT32_MAX, err);
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
    case CLI_CTX: {
        int32_t lo = m ? m->n_ctx_min : 1, hi = m ? m->n_ctx_max : INT32_MAX / 2;
        if (cli_parse_int(c->name, v, lo, hi, &o->n_ctx, err) < 0)
            return ae_fail(err, "--ctx: this program runs contexts from %" PRId32 " to %" PRId32 " tokens%s, found '%s'",
                           lo, hi, m && hi == m->n_ctx_train && lo == 1 ? " (the model's training context)"
                                   : m ? " (the rope factors it was compiled with hold there; aetherc --ctx chose "
                                         "them)" : "", v);
        return 0;
    }
    case CLI_KV:
        if (strcmp(v, "f16") == 0 || strcmp(v, "F16") == 0)
            o->kv_type = AE_TYPE_F16;
        else if (strcmp(v, "f32") == 0 || strcmp(v, "F32") == 0)
            o->kv_type = AE_TYPE_F32;
        else
            return ae_fail(err, "--kv: expected f16 or f32, found '%s'", v);
        return 0;
    case CLI_DEVICE:
        o->device_set = true;
        return ae_prog_parse_device(o, v, err);
    case CLI_BATCH:
        return cli_parse_int(c->name, v, 1, INT32_MAX, &o->n_batch, err);
    case CLI_GPU_LAYERS:
        if (cli_parse_int(c->name, v, -1, INT32_MAX, &o->gpu_layers, err) < 0)
            return -1;
        if (o->gpu_layers == 0 && !o->device_set) /* -ngl 0: llama.cpp's CPU run */
            o->device = PROG_DEVICE_CPU;
        return 0;
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
    case CLI_SERVE:
        o->serve.on = true;
        return 0;
    case CLI_HOST:
        if (!*v)
            return ae_fail(err, "--host: the address is empty");
        o->serve.host = v;
        return 0;
    case CLI_PORT:
        return cli_parse_int(c->name, v, 0, 65535, &o->serve.port, err);
    case CLI_API_KEY:
        if (!*v)
            return ae_fail(err, "--api-key: the key is empty");
        o->serve.api_key = v;
        return 0;
    case CLI_API_KEY_FILE:
        o->serve.api_key_file = v;
        return 0;
    case CLI_PARALLEL:
        return cli_parse_int(c->name, v, 1, m && m->t_max < AE_PROG_MAX_PARALLEL ? m->t_max : AE_PROG_MAX_PARALLEL,
                             &o->serve.parallel, err);
    case CLI_QUEUE:
        return cli_parse_int(c->name, v, 0, AE_PROG_MAX_QUEUE, &o->serve.queue, err);
    case CLI_TIMEOUT:
        return cli_parse_int(c->name, v, 1, 86400, &o->serve.timeout_s, err);
    case CLI_ESCAPE:
    case CLI_NO_ESCAPE:
        o->escape = c->id == CLI_ESCAPE;
        return 0;
    case CLI_PRINT_IDS:
        o->print_ids = true;
        return 0;
    case CLI_TIMINGS:
        o->timings = true;
        return 0;
    case CLI_PROFILE:
        o->profile = true;
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
    case CLI_MLOCK:
        o->mlock = true;
        return 0;
    case CLI_LOG_DISABLE:
        o->quiet = true;
        return 0;
    case CLI_NO_DISPLAY_PROMPT:
    case CLI_COLOR:
        return 0; /* what they ask for is already so (the usage text says why) */
    case CLI_VERSION:
        o->version = true;
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
    bool text_prompt = o->prompt || o->prompt_file;
    if (text_prompt && o->tokens)
        return ae_fail(err, "%s and --tokens: give the prompt one way, not both", o->prompt ? "-p" : "-f");
    if (o->chat && (text_prompt || o->tokens))
        return ae_fail(err, "--chat reads the conversation from standard input: -p, -f and --tokens do not apply");
    if (o->chat && o->dump_logits)
        return ae_fail(err, "--dump-logits does not apply to --chat");
    if (!o->chat && o->system)
        return ae_fail(err, "--system is a --chat option");
    if (!o->chat && !o->serve.on && o->chat_template)
        return ae_fail(err, "--chat-template is a --chat and --serve option");
    if (o->serve.on && (o->chat || text_prompt || o->tokens || o->dump_logits || o->n_stops || o->print_ids))
        return ae_fail(err, "--serve takes prompts over HTTP: --chat, -p, -f, --tokens, --stop, --dump-logits and "
                       "--print-ids do not apply");
    if (o->serve.api_key && o->serve.api_key_file)
        return ae_fail(err, "--api-key and --api-key-file: give the key one way, not both");
    if (!o->serve.on && o->serve_flag)
        return ae_fail(err, "%s is a --serve option", o->serve_flag);
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
        .kv_type = m ? m->kv_type : AE_TYPE_F16,
        .escape = true,
        .serve = { .host = "127.0.0.1", .port = 8080, .parallel = 1, .queue = AE_PROG_DEFAULT_QUEUE,
                   .timeout_s = 600 },
        .device_index = -1,
    };
    ae_sampler_params_init(&o->sampling);
    o->stops = calloc(argc > 0 ? (size_t)argc : 1, sizeof *o->stops);
    if (!o->stops)
        return ae_fail(err, "out of memory for the command line");

    /* -p and -f: the last one given is the prompt; a prompt given both ways is refused. */
    bool by_text = false, by_file = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0)
            return ae_fail(err, "unexpected argument '%s': the prompt goes after -p (or in a file: -f FILE)", a);
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const struct cli_flag *c = cli_find(a, len);
        if (!c)
            return cli_unknown(a, len, err);
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
        by_text |= c->id == CLI_PROMPT;
        by_file |= c->id == CLI_FILE;
        if (c->id >= CLI_HOST && c->id <= CLI_TIMEOUT)
            o->serve_flag = c->name;
    }
    if (by_text && by_file)
        return ae_fail(err, "-p and -f: give the prompt one way, not both");
    return cli_check(o, err);
}

int ae_program_check_args(int argc, char **argv, ae_error *err)
{
    struct prog_opts o;
    int rc = ae_prog_parse_args(&o, argc, argv, NULL, err);
    ae_prog_opts_free(&o);
    return rc;
}

void ae_prog_opts_free(struct prog_opts *o)
{
    free((void *)o->tokens);
    free(o->stops);
    o->tokens = NULL;
    o->stops = NULL;
}
