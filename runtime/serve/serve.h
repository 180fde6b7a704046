/* The server behind `PROGRAM --serve`: what its parts share.
 *
 * Four parts, one file each:
 *   serve_http.c    the HTTP side (libmicrohttpd, one thread per connection): routes, the API key, body
 *                   limits, and each request's answer, whole or streamed as server-sent events;
 *   serve_api.c     the OpenAI API: a request body (json-c) into struct serve_params, with a 400 that
 *                   names the field for anything wrong; response, chunk, error and model-list bodies;
 *   serve_engine.c  the slots and the scheduler: a bounded queue, one slot (one KV cache region) per
 *                   running request, and the step loop that advances every running request together;
 *   serve_metrics.c the counters and histograms of GET /metrics (Prometheus text).
 * serve.c starts them in order and drains them on SIGTERM.
 *
 * Threads: the program's main thread runs the step loop; libmicrohttpd runs one thread per connection,
 * which parses, tokenizes, submits, then waits for its request's text. They meet under one mutex,
 * struct serve.mu: the queue, the slots' owners, every request's published output and the metrics.
 * Everything else a running request has (its sampler, its text stream, its slot's position) belongs to
 * the step loop alone.
 */
#ifndef SERVE_H
#define SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "program_internal.h"
#include "serve_lib.h"

/* ---- Limits (docs/serve.md lists them) ------------------------------------------------------------ */

#define SERVE_MAX_BODY_BYTES (1u << 20)   /* a request body; larger ones get 413 */
#define SERVE_MAX_JSON_DEPTH 16           /* nesting of arrays and objects in a body */
#define SERVE_MAX_MESSAGES 1024           /* messages in one chat request */
#define SERVE_MAX_STOPS 16                /* stop strings in one request */
#define SERVE_MAX_STOP_BYTES 256          /* bytes of one stop string */
#define SERVE_MAX_TOP_LOGPROBS 20         /* alternatives per token */
#define SERVE_MAX_LOGIT_BIAS 1024         /* entries of logit_bias */
#define SERVE_CONNECTION_LIMIT 1024       /* connections at once; more are refused at accept */
#define SERVE_WAIT_MS 50                  /* how often a waiting connection checks that its client is there */

/* ---- Errors ---------------------------------------------------------------------------------------- */

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with an HTTP status. */
struct serve_error {
    int status;
    char param[64];          /* the request field at fault, "" for none */
    char message[512];
};

/* Fills e and returns -1. */
int serve_fail(struct serve_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- A request's parameters (serve_api.c) ----------------------------------------------------------- */

enum serve_kind {
    SERVE_KIND_CHAT,         /* POST /v1/chat/completions */
    SERVE_KIND_COMPLETION,   /* POST /v1/completions */
};

struct serve_params {
    enum serve_kind kind;
    char *prompt;                 /* text to tokenize (chat: the formatted conversation), or NULL */
    size_t prompt_len;
    int32_t *prompt_ids;          /* a prompt given as token ids (completions), or NULL */
    int32_t n_prompt_ids;
    int32_t max_tokens;           /* 0: until the end of text or of the context */
    struct ae_sampler_params sampling;  /* seed AE_SAMPLER_SEED_RANDOM unless given */
    struct ae_logit_bias *logit_bias;   /* sampling.logit_bias points here */
    char *stops[SERVE_MAX_STOPS];
    size_t n_stops;
    bool stream;
    bool include_usage;           /* stream_options.include_usage */
    bool logprobs;
    int32_t top_logprobs;         /* 0..SERVE_MAX_TOP_LOGPROBS alternatives per token */
};

/* What parsing a request needs to know of the model. */
struct serve_model_info {
    const ae_tokenizer *tok;
    int32_t n_vocab;              /* the tokenizer's */
    bool have_template;           /* a chat template was found */
    enum ae_chat_template tmpl;
    const char *template_error;   /* why there is none, for chat requests */
};

/* Parses and checks a request body. Returns 0, or -1 with e (400) naming the field and what is wrong. */
int serve_params_parse(struct serve_params *p, enum serve_kind kind, const char *body, size_t len,
                       const struct serve_model_info *mi, struct serve_error *e);
void serve_params_free(struct serve_params *p);

/* ---- Requests and slots (serve_engine.c) ----------------------------------------------------------- */

enum serve_finish {
    SERVE_FINISH_NONE,       /* still running */
    SERVE_FINISH_STOP,       /* end of text or a stop string */
    SERVE_FINISH_LENGTH,     /* max_tokens, or the context is full */
    SERVE_FINISH_CANCELLED,  /* the client went away */
    SERVE_FINISH_ERROR,      /* the forward step failed (error holds why) */
};

/* One generated token's log-probability and its most likely alternatives, under the model's own
 * distribution (the softmax of the raw logits). */
struct serve_logprob {
    int32_t token;
    float logprob;
    int32_t n_top;
    int32_t top_token[SERVE_MAX_TOP_LOGPROBS];
    float top_logprob[SERVE_MAX_TOP_LOGPROBS];
};

struct serve_request {
    /* Set before submission, read-only afterwards. */
    struct serve_params params;
    uint64_t id;
    int64_t created;              /* Unix time */
    int32_t *prompt;              /* (n_prompt) token ids */
    int32_t n_prompt;
    int32_t max_tokens;           /* resolved: at most what the context leaves */
    double t_submit;              /* monotonic ms */
    /* The step loop's alone while the request runs. */
    ae_sampler *sampler;
    ae_utf8_stream *text_stream;
    char *stage;                  /* text produced in this step, not yet published */
    size_t stage_len, stage_cap;
    struct serve_logprob *lp;     /* (max_tokens) when logprobs were asked for */
    /* Under struct serve.mu. */
    pthread_cond_t cv;            /* signalled when output is published or the request ends */
    bool cancelled;               /* the client went away: the slot is freed at the next step */
    enum serve_finish finish;
    char error[256];
    char *text;                   /* published text (text_len bytes, NUL-terminated) */
    size_t text_len, text_cap;
    int32_t n_lp;                 /* published logprob entries */
    int32_t n_gen;                /* tokens generated (an end-of-text token included) */
    int refs;                     /* the HTTP side and the engine's: freed when both let go */
};

struct serve_slot {
    struct serve_request *req;    /* NULL: free */
    int32_t *tokens;              /* (n_ctx) the tokens at positions 0..n_past-1 of its cache, kept while the
                                   * slot is free: a prompt that begins the same way starts after them */
    int32_t n_past;               /* positions in this slot's KV cache */
    int32_t n_fed;                /* prompt tokens fed so far */
    int32_t next;                 /* the last sampled token, to feed at the next step; -1 while prefilling */
    double t_last;                /* when its last token came out (monotonic ms) */
};

/* ---- Metrics (serve_metrics.c) ------------------------------------------------------------------- */

#define SERVE_HIST_MAX 16       /* bucket bounds of a histogram */
#define SERVE_STATUS_MAX 16     /* distinct HTTP statuses counted */

struct serve_histogram {
    const double *bounds;         /* upper bounds in seconds, ascending (+Inf implied) */
    int n_bounds;
    uint64_t counts[SERVE_HIST_MAX + 1]; /* per bucket, not cumulative; [n_bounds] is +Inf */
    double sum;
    uint64_t n;
};

struct serve_metrics {
    int status_code[SERVE_STATUS_MAX];
    uint64_t status_count[SERVE_STATUS_MAX];
    int n_status;
    uint64_t prompt_tokens, prompt_tokens_cached, generated_tokens, requests_cancelled;
    uint64_t steps, step_rows;
    struct serve_histogram ttft, tpot;
};

void serve_metrics_init(struct serve_metrics *m);
void serve_histogram_add(struct serve_histogram *h, double seconds);
void serve_metrics_count_status(struct serve_metrics *m, int status);

/* ---- The server ---------------------------------------------------------------------------------- */

struct serve {
    struct prog *p;                   /* model, tokenizer, arena, pool */
    const struct prog_serve_opts *o;
    struct serve_model_info mi;
    const char *model_id;             /* GET /v1/models and every response's "model" */
    char *api_key;                    /* NULL: no key */
    size_t api_key_len;
    int64_t created;                  /* when the server started (Unix time) */
    struct ae_state st;               /* the program's state with every slot's cache pointers */
    bool batched;                     /* steps go through ae_model.forward_batch */
    void *batch_arena;                /* its arena (ae_model.batch_arena_bytes), when batched */
    int32_t n_batch;                  /* the most tokens one step takes, all slots together */

    pthread_mutex_t mu;
    pthread_cond_t work;              /* signalled when a request is submitted or cancelled */
    struct serve_request **queue;     /* (queue_cap) ring */
    int32_t q_head, q_len, q_cap;
    struct serve_slot *slots;         /* (n_slots) */
    int32_t n_slots;
    int32_t n_busy;                   /* slots with a request */
    int64_t kv_used;                  /* positions in use over all slots */
    int32_t n_open;                   /* requests accepted whose answer is not yet complete */
    bool draining;                    /* SIGTERM: no new requests; stop when n_open is 0 */
    uint64_t next_id;
    struct serve_metrics metrics;

    /* The step loop's buffers. */
    int32_t *b_tokens;                /* (n_batch) */
    int32_t *b_slot;                  /* (n_slots) the slot of each run */
    float *b_logits;                  /* (n_slots * n_vocab) */

    struct MHD_Daemon *daemon;
    int listen_fd;                    /* ours until quiesced, then closed */
};

double serve_now_ms(void);

/* serve_engine.c */
int serve_engine_init(struct serve *s, ae_error *err);
void serve_engine_free(struct serve *s);
/* Creates a request from parsed parameters (taking them over): tokenizes the prompt and checks it
 * against the context, makes its sampler and text stream. Returns NULL with e set. */
struct serve_request *serve_request_create(struct serve *s, struct serve_params *params, struct serve_error *e);
/* Queues a request (the caller keeps its reference). Fails with 503 when the queue is full or the
 * server is draining. */
int serve_request_submit(struct serve *s, struct serve_request *r, struct serve_error *e);
/* Drops a reference; the HTTP side calls it once it is done with the request (after setting cancelled
 * if the client left). Takes s->mu itself. */
void serve_request_release(struct serve *s, struct serve_request *r);
/* The step loop: runs until *stop is set and every open request is answered. */
int serve_engine_run(struct serve *s, volatile sig_atomic_t *stop, ae_error *err);

/* serve_api.c: bodies. Each returns a malloc'd NUL-terminated string (NULL when out of memory). */
char *serve_body_error(const struct serve_error *e);
char *serve_body_models(const struct serve *s);
/* The whole answer of a finished request (under s->mu). */
char *serve_body_response(const struct serve *s, const struct serve_request *r);
/* One streamed chunk: the text and logprobs published since the last chunk (text[from..to), logprob
 * entries [lp_from..lp_to)), and the finish reason when finished. */
char *serve_body_chunk(const struct serve *s, const struct serve_request *r, size_t from, size_t to,
                       int32_t lp_from, int32_t lp_to, bool first, bool finished);
/* The usage-only chunk of stream_options.include_usage. */
char *serve_body_usage_chunk(const struct serve *s, const struct serve_request *r);

/* serve_metrics.c: the Prometheus text (under s->mu). */
char *serve_metrics_render(const struct serve *s);

/* serve_http.c */
int serve_http_start(struct serve *s, ae_error *err);
void serve_http_quiesce(struct serve *s);
void serve_http_stop(struct serve *s);

#endif
