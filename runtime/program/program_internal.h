/* What the generated program's files share: the parsed command line and the running program.
 *
 * Internal to the runtime library. program_cli.c turns argv into struct prog_opts; program.c owns
 * ae_program_main (pack, start-up allocation, --info, --verify, one-shot generation) and the token
 * loop; chat_loop.c runs --chat on top of the same loop. Everything a run needs is allocated once by
 * program.c before the first token; the loop functions below never allocate.
 */
#ifndef AE_PROGRAM_INTERNAL_H
#define AE_PROGRAM_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_chat.h"
#include "ae_error.h"
#include "ae_gguf.h"
#include "ae_gpu.h"
#include "ae_pool.h"
#include "ae_program.h"
#include "ae_sampler.h"
#include "ae_tokenizer.h"
#include "ae_utf8.h"

/* Exit statuses of ae_program_main. */
#define AE_PROG_EXIT_OK 0
#define AE_PROG_EXIT_FAIL 1        /* bad input: pack, prompt, model, I/O */
#define AE_PROG_EXIT_USAGE 2       /* bad command line */
#define AE_PROG_EXIT_INTERRUPT 130 /* Ctrl-C at the chat prompt, as a shell reports SIGINT */

/* Defaults that are ours rather than llama.cpp's (the context's is the compiler's: ae_model.n_ctx). */
#define AE_PROG_DEFAULT_N_PREDICT 128
#define AE_PROG_DEFAULT_MAX_THREADS 8
#define AE_PROG_DEFAULT_QUEUE 64
#define AE_PROG_MAX_PARALLEL AE_BATCH_MAX_SEQS
#define AE_PROG_MAX_QUEUE 65536

/* --serve and its options (runtime/serve/, docs/serve.md). */
struct prog_serve_opts {
    bool on;                     /* --serve */
    const char *host;            /* --host: the address to bind (default 127.0.0.1) */
    int32_t port;                /* --port (default 8080; 0: any free port, printed at start) */
    const char *api_key;         /* --api-key KEY, or NULL */
    const char *api_key_file;    /* --api-key-file F: the key is the file's first line */
    int32_t parallel;            /* --parallel: slots, requests generated at once (default 1) */
    int32_t queue;               /* --queue: requests that may wait for a slot before 503 (default 64) */
    int32_t timeout_s;           /* --timeout: seconds a connection may stay silent (default 600) */
};

/* Where the model runs (--device). */
enum prog_device { PROG_DEVICE_AUTO = 0, PROG_DEVICE_CPU, PROG_DEVICE_VULKAN };

/* The command line, parsed. Strings point into argv. */
struct prog_opts {
    const char *prog;            /* argv[0]'s last component, for messages */
    const char *prompt;          /* -p TEXT, or NULL */
    const char *prompt_file;     /* -f FILE, or "-" (-p -, -f -): standard input; NULL: none */
    const int32_t *tokens;       /* --tokens IDS: n_tokens ids, or NULL */
    int32_t n_tokens;
    int32_t n_predict;           /* -n: tokens to generate; -1: until EOG or the context is full */
    struct ae_sampler_params sampling;
    bool repeat_last_n_ctx;      /* --repeat-last-n -1: the whole context */
    int n_threads;               /* -t; 0: the default (see prog_default_threads) */
    int32_t n_ctx;               /* --ctx; 0: the model's default (ae_model.n_ctx) */
    uint32_t kv_type;            /* AE_TYPE_F16 or AE_TYPE_F32 (default: ae_model.kv_type) */
    int32_t n_batch;             /* -b: prompt step at most; 0: the model's t_max */
    int32_t gpu_layers;          /* -ngl; 0: not asked */
    enum prog_device device;     /* --device */
    int32_t device_index;        /* --device vulkan:N; -1: any */
    bool device_set;             /* --device was given (then -ngl 0 does not choose the CPU) */
    const char *dump_logits;     /* --dump-logits FILE */
    const char **stops;          /* --stop STRING, n_stops of them */
    size_t n_stops;
    const char *system;          /* --system TEXT (chat) */
    const char *chat_template;   /* --chat-template NAME (chat) */
    bool no_bos;                 /* --no-bos: tokenize -p without BOS/EOS */
    bool ignore_eos;             /* --ignore-eos: end-of-text tokens do not stop generation */
    bool escape;                 /* process escapes in the prompt and --stop strings (default; --no-escape) */
    bool quiet;                  /* --log-disable: no notes on stderr */
    bool mlock;                  /* --mlock */
    bool print_ids, timings, profile, info, verify, chat, version, help;
    struct prog_serve_opts serve;
    const char *serve_flag;      /* the last --serve option given, for the message when --serve is not */
};

/* Parses argv. Returns 0, or -1 with err naming the flag and what is wrong (the caller prints it and
 * exits AE_PROG_EXIT_USAGE). Allocates o->tokens and o->stops, which ae_prog_opts_free releases (also
 * after a failure). m gives the vocabulary size, the context range and the defaults; NULL checks only
 * what does not depend on the model. Reads nothing: -f FILE is only checked to be readable. */
int ae_prog_parse_args(struct prog_opts *o, int argc, char **argv, const struct ae_model *m, ae_error *err);
void ae_prog_opts_free(struct prog_opts *o);
void ae_prog_print_usage(FILE *f, const char *prog);
/* The notes the flags ask for (-ngl without a GPU backend), on stderr unless --log-disable. */
void ae_prog_print_notes(const struct prog_opts *o);
/* A malloc'd copy of s as the program uses it: escapes processed unless --no-escape. NULL: no memory. */
char *ae_prog_text(const struct prog_opts *o, const char *s);

/* Why a generation ended. */
enum prog_stop {
    PROG_STOP_LIMIT,     /* -n tokens generated */
    PROG_STOP_EOG,       /* the model ended its text (EOS, EOT...) */
    PROG_STOP_STRING,    /* a --stop string completed */
    PROG_STOP_CTX,       /* the KV cache is full */
    PROG_STOP_INTERRUPT, /* Ctrl-C (chat) */
    PROG_STOP_OUTPUT,    /* standard output could not be written */
};

/* A running program: everything allocated at start-up. */
struct prog {
    const struct ae_model *m;
    const struct prog_opts *o;
    struct ae_pack pack;
    ae_gguf *meta;               /* the pack's metadata GGUF */
    ae_tokenizer *tok;
    struct ae_state st;
    ae_gpu *gpu;                 /* the Vulkan device the steps run on, or NULL: the CPU */
    void *kv_map;                /* one mapping for every layer's K and V */
    size_t kv_map_bytes;
    size_t arena_map_bytes, scratch_map_bytes;
    float *logits;               /* (n_vocab) of the last position fed */
    ae_sampler *sampler;
    ae_utf8_stream *text;        /* generated text -> stdout (or only stop-string matching with --print-ids) */
    char **stops;                /* (o->n_stops) the --stop strings, escapes processed */
    const uint8_t **weights;     /* (m->n_weights) where each weight is in the pack; NULL for in-memory weights */
    int32_t *hist;               /* (n_ctx) the tokens in the KV cache, at positions 0..n_hist-1 */
    int32_t n_hist;
    int32_t *ids;                /* (n_ctx + 1) a tokenized prompt or conversation */
    char *piece;                 /* (piece_cap) the first generated token's text */
    size_t piece_cap;
    char *answer;                /* (answer_cap) chat: the text of the answer being generated */
    size_t answer_cap, answer_len;
    bool out_failed;             /* a write to stdout failed */
    volatile sig_atomic_t *interrupted; /* chat: set by SIGINT; NULL when Ctrl-C is not caught */
    /* --timings */
    int64_t prompt_tokens, gen_tokens;
    double prompt_ms, gen_ms;
    double start_ms;             /* when ae_program_main began */
    double first_token_ms;       /* when the first generated token came out; 0 before */
};

/* ---- device.c: where the model runs ---- */

/* Parses a --device value: auto, cpu, vulkan or vulkan:N. */
int ae_prog_parse_device(struct prog_opts *o, const char *v, ae_error *err);

/* Chooses the device as --device says (printing one line that says which and why, unless --device cpu or
 * the program has no GPU half) and opens it. Fails when --device vulkan cannot be honoured. */
int ae_prog_device_start(struct prog *p, ae_error *err);

/* One step on the chosen device: a prompt chunk (prefill) or one generated token (decode). */
int ae_prog_forward(struct prog *p, const int32_t *ids, int32_t n, int32_t pos, bool prompt, ae_error *err);

/* --info's lines about devices: each Vulkan device seen, and the bytes the model needs on one. */
void ae_prog_device_info(const struct prog_opts *o, const struct ae_model *m, int32_t n_ctx);

/* Writes n bytes to standard output, retrying interrupted writes. Returns -1 when it fails. */
int ae_prog_write(struct prog *p, const char *s, size_t n);

/* Feeds ids[0..n) at positions n_hist.. in chunks of at most t_max tokens, appends them to hist and
 * the sampler's window, and leaves the logits of the last one. With p->interrupted set it stops after
 * the chunk where Ctrl-C arrived and returns 1 (hist holds what was fed). Returns 0, or -1 with err set
 * (a context overflow is the caller's to prevent and is asserted). */
int ae_prog_feed(struct prog *p, const int32_t *ids, int32_t n, ae_error *err);

/* Samples and emits up to n_predict tokens (all when n_predict < 0) after the logits left by the last
 * feed, feeding each one back except the last. Text is streamed through p->text (reset first, flushed
 * at the end). Returns 0 and the reason in *why, or -1 with err set. */
int ae_prog_generate(struct prog *p, int32_t n_predict, enum prog_stop *why, ae_error *err);

/* Prints --timings to stderr. */
void ae_prog_print_timings(const struct prog *p);

/* The interactive loop of --chat. Returns the exit status. */
int ae_prog_chat(struct prog *p);

/* --serve: the HTTP server (runtime/serve/). Returns the exit status. */
int ae_prog_serve(struct prog *p);

/* What ae_model.server points to. */
struct ae_server {
    int (*run)(struct prog *p);
};

#endif
