/* The server (`PROGRAM --serve`, runtime/serve/) driven over HTTP with a fake model.
 *
 * The fake model stands in for generated code, so that these tests run in milliseconds and under the
 * sanitizers. Its KV cache rows carry a running hash of the sequence (each row: the token, its position,
 * the hash of the tokens up to it), every forward step checks that its sequence's rows are all there,
 * and the next token is a function of that hash: a request whose cache was touched by another request,
 * or whose prompt was fed out of order, gets other tokens. A step can be slowed down (fake_delay_us) so
 * that requests overlap, queue up and get cancelled. Requests whose length a test counts on are greedy
 * (temperature 0): sampled, the fake's logits give every token, EOS too, a small chance.
 *
 * The server runs in a forked child (ae_program_main with --serve --port 0) and the tests talk to it
 * through raw sockets (test_http.h): the OpenAI API's answers, the corpus of malformed requests (each
 * must get its status, and the server must answer the next request), the API key, the bounded queue,
 * clients that disconnect, SIGTERM, concurrency and the metrics.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ae_gguf.h"
#include "ae_tokenizer.h"
#include "ae_pool.h"
#include "ae_program.h"
#include "ae_types.h"
#include "gguf_write.h"
#include "test_http.h"
#include "test_util.h"

/* ---- The fake model -------------------------------------------------------------------------------- */

#define FAKE_VOCAB 512         /* stories260K's vocabulary */
#define FAKE_DIM 4             /* one layer, one KV head of 4 */
#define FAKE_T_MAX 16
#define FAKE_CTX_TRAIN 256
#define FAKE_EOS 2
#define FAKE_FIRST_WORD 259    /* the first id after stories260K's byte tokens */
#define FAKE_HASH_MOD 2039     /* a prime below 2048: every hash is exact in fp16 */
#define FAKE_WEIGHTS 4096

static uint8_t fake_weights[FAKE_WEIGHTS];
static int fake_delay_us;      /* sleep per forward call */
static int32_t fake_eos_after = -1; /* this token is followed by EOS */

static float fake_kv_get(const struct ae_state *s, const void *cache, int32_t pos, int e)
{
    if (s->kv_type == AE_TYPE_F32)
        return ((const float *)cache)[pos * FAKE_DIM + e];
    return ae_fp16_to_fp32(((const uint16_t *)cache)[pos * FAKE_DIM + e]);
}

static void fake_kv_set(const struct ae_state *s, void *cache, int32_t pos, int e, float v)
{
    if (s->kv_type == AE_TYPE_F32)
        ((float *)cache)[pos * FAKE_DIM + e] = v;
    else
        ((uint16_t *)cache)[pos * FAKE_DIM + e] = ae_fp32_to_fp16(v);
}

/* The next token after a sequence whose hash is h and whose last token is last, at position pos. */
static int32_t fake_next(int32_t h, int32_t last, int32_t pos)
{
    if (last == fake_eos_after)
        return FAKE_EOS;
    return FAKE_FIRST_WORD + (int32_t)(((int64_t)h * 7 + pos) % (FAKE_VOCAB - FAKE_FIRST_WORD));
}

static int32_t fake_hash(int32_t h, int32_t token) { return (int32_t)(((int64_t)h * 31 + token + 1) % FAKE_HASH_MOD); }

/* One sequence's step on its own cache (k: [n_ctx, FAKE_DIM]): checks the rows before pos, stores the
 * new ones, writes the logits of the last. */
static int fake_run(const struct ae_state *s, void *k, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
                    ae_error *err)
{
    if (n < 1 || n > FAKE_T_MAX || pos < 0 || pos + n > s->n_ctx)
        return ae_fail(err, "fake: %" PRId32 " tokens at %" PRId32 " (t_max %d, n_ctx %" PRId32 ")", n, pos,
                       FAKE_T_MAX, s->n_ctx);
    int32_t h = 0;
    for (int32_t p = 0; p < pos; p++) {
        if (fake_kv_get(s, k, p, 1) != (float)(p + 1))
            return ae_fail(err, "fake: cache row %" PRId32 " was never written", p);
        int32_t t = (int32_t)fake_kv_get(s, k, p, 0) - 1;
        h = fake_hash(h, t);
        if (fake_kv_get(s, k, p, 2) != (float)h)
            return ae_fail(err, "fake: cache row %" PRId32 " belongs to another sequence", p);
    }
    for (int32_t j = 0; j < n; j++) {
        h = fake_hash(h, tokens[j]);
        fake_kv_set(s, k, pos + j, 0, (float)(tokens[j] + 1));
        fake_kv_set(s, k, pos + j, 1, (float)(pos + j + 1));
        fake_kv_set(s, k, pos + j, 2, (float)h);
    }
    int32_t target = fake_next(h, tokens[n - 1], pos + n - 1);
    for (int32_t i = 0; i < FAKE_VOCAB; i++) {
        int32_t d = (i - target + FAKE_VOCAB) % FAKE_VOCAB;
        logits[i] = d == 0 ? 2.0f : -(float)d / 32.0f;
    }
    return 0;
}

static int fake_forward(struct ae_state *s, const int32_t *tokens, int32_t n, int32_t pos, float *logits, ae_error *err)
{
    if (!s->weights || memcmp(s->weights[0], fake_weights, FAKE_WEIGHTS) != 0)
        return ae_fail(err, "fake: the weights are not the pack's");
    if (fake_delay_us)
        usleep((useconds_t)fake_delay_us);
    return fake_run(s, s->k_cache[0], tokens, n, pos, logits, err);
}

/* The batched step: checks that the runs cover the rows as ae_program.h says, then each run on its own
 * sequence's cache. */
static int fake_forward_batch(struct ae_state *s, const struct ae_batch *b, ae_error *err)
{
    if (b->n_tokens < 1 || b->n_tokens > FAKE_T_MAX || b->n_runs < 1)
        return ae_fail(err, "fake: a batch of %" PRId32 " rows in %" PRId32 " runs", b->n_tokens, b->n_runs);
    int32_t next_row = 0;
    for (int32_t k = 0; k < b->n_runs; k++) {
        const struct ae_batch_run *r = &b->runs[k];
        if (r->row0 != next_row || r->n_rows < 1)
            return ae_fail(err, "fake: run %" PRId32 " starts at row %" PRId32 ", expected %" PRId32, k, r->row0, next_row);
        for (int32_t j = 0; j < k; j++)
            if (b->runs[j].seq == r->seq)
                return ae_fail(err, "fake: sequence %" PRId32 " has two runs", r->seq);
        next_row += r->n_rows;
    }
    if (next_row != b->n_tokens)
        return ae_fail(err, "fake: the runs cover %" PRId32 " of %" PRId32 " rows", next_row, b->n_tokens);
    if (fake_delay_us)
        usleep((useconds_t)fake_delay_us);
    for (int32_t k = 0; k < b->n_runs; k++) {
        const struct ae_batch_run *r = &b->runs[k];
        if (fake_run(s, s->k_cache[r->seq], b->tokens + r->row0, r->n_rows, r->pos0, b->logits + (size_t)k * FAKE_VOCAB,
                     err) < 0)
            return -1;
    }
    return 0;
}

static uint64_t fake_scratch_size(int32_t n_ctx, int32_t n_threads)
{
    (void)n_ctx;
    (void)n_threads;
    return 64;
}

static const uint64_t fake_weight_offsets[1] = { 0 };

static struct ae_model fake_model = {
    .name = "fake-serve",
    .arch = "llama",
    .n_vocab = FAKE_VOCAB,
    .n_layer = 1,
    .n_head_kv = 1,
    .head_dim_k = FAKE_DIM,
    .head_dim_v = FAKE_DIM,
    .n_ctx_train = FAKE_CTX_TRAIN,
    .n_ctx = FAKE_CTX_TRAIN,
    .n_ctx_min = 1,
    .n_ctx_max = FAKE_CTX_TRAIN,
    .kv_type = AE_TYPE_F16,
    .t_max = FAKE_T_MAX,
    .arena_bytes = 64,
    .scratch_size = fake_scratch_size,
    .n_weights = 1,
    .weight_offsets = fake_weight_offsets,
    .weights_bytes = FAKE_WEIGHTS,
    .compiler = "check_serve's fake model",
    .tokenizer = &ae_tokenizer_spm,
    .server = &ae_server,
    .info = "fake model for check_serve",
    .forward = fake_forward,
};

/* The greedy continuation the fake gives a prompt of token ids (what a request must return). */
static void fake_greedy(const int32_t *prompt, int32_t n, int32_t n_gen, int32_t *out)
{
    int32_t h = 0, last = -1, pos = -1;
    for (int32_t i = 0; i < n; i++) {
        h = fake_hash(h, prompt[i]);
        last = prompt[i];
        pos++;
    }
    for (int32_t i = 0; i < n_gen; i++) {
        out[i] = fake_next(h, last, pos);
        h = fake_hash(h, out[i]);
        last = out[i];
        pos++;
    }
}

/* ---- The pack: stories260K's tokenizer, a chatml template, the fake weights ---------------------------- */

static uint8_t *pack;

static void pack_make(void)
{
    ae_error err = { { 0 } };
    for (size_t i = 0; i < FAKE_WEIGHTS; i++)
        fake_weights[i] = (uint8_t)(i * 13 + 5);
    struct ae_pack_memory mem;
    struct ae_pack_weights pw;
    ck_assert_msg(ae_pack_memory_init(&mem, fake_weights, FAKE_WEIGHTS, &pw, &err) == 0, "%s", err.msg);
    memcpy(fake_model.weights_hash, pw.hash, AE_HASH_BYTES);
    ae_gguf *src;
    ck_assert_msg(ae_gguf_open(&src, test_shared_path("models/stories260K.gguf"), &err) == 0, "%s", err.msg);
    ae_gguf_writer *w = ae_gguf_writer_create();
    ck_assert(w != NULL);
    ae_gguf_writer_add_str(w, "general.architecture", "llama");
    ae_gguf_writer_add_str(w, "general.name", "fake-serve");
    ae_gguf_writer_add_str(w, "tokenizer.chat_template", "chatml");
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const struct ae_gguf_kv *kv = &src->kv[i];
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (strncmp(key, "tokenizer.ggml.", 15) == 0)
            ae_gguf_writer_add_value(w, key, &kv->value);
    }
    char *meta = NULL, *bytes = NULL;
    size_t meta_size = 0, n = 0;
    FILE *f = open_memstream(&meta, &meta_size);
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_gguf_writer_destroy(w);
    ae_gguf_close(src);
    f = open_memstream(&bytes, &n);
    ck_assert_msg(ae_pack_write(f, meta, meta_size, &pw, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_pack_memory_free(&mem);
    pack = aligned_alloc(AE_PACK_ALIGN, (n + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN);
    ck_assert(pack != NULL);
    memcpy(pack, bytes, n);
    ae_program_set_pack(pack, n);
    free(bytes);
    free(meta);
}

/* ---- The server ------------------------------------------------------------------------------------ */

static pid_t server_pid;
static int server_port, server_err;

/* Starts `fake --serve --port 0 ARGS...` in a child; returns its port. */
static int server_start(const char *const *args)
{
    int fds[2];
    ck_assert(pipe(fds) == 0);
    fflush(NULL);
    server_pid = fork();
    ck_assert(server_pid >= 0);
    if (server_pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        char *argv[64] = { "fake", "--serve", "--port", "0", "-t", "1" };
        int argc = 6;
        for (int i = 0; args[i]; i++)
            argv[argc++] = (char *)args[i];
        argv[argc] = NULL;
        _exit(ae_program_main(argc, argv, &fake_model));
    }
    close(fds[1]);
    server_err = fds[0];
    server_port = test_http_wait_port(server_err, 10000);
    return server_port;
}

#define SERVER(...) server_start((const char *const[]){ __VA_ARGS__, NULL })

static int server_stop(void)
{
    int rc = test_http_stop_server(server_pid, 10000);
    close(server_err);
    server_pid = 0;
    return rc;
}

static void setup(void)
{
    pack_make();
}

static void teardown(void)
{
    if (server_pid > 0)
        server_stop();
    ae_program_set_pack(NULL, 0);
    free(pack);
}

/* POSTs body to path and checks the status; the response is left in r. */
static void post(const char *path, const char *body, int status, struct test_http_response *r)
{
    int got = test_http(server_port, "POST", path, NULL, body, r);
    ck_assert_msg(got == status, "POST %s %s: status %d, expected %d: %s", path, body, got, status, r->body);
}

static void expect_health(void)
{
    struct test_http_response r;
    ck_assert_msg(test_http(server_port, "GET", "/health", NULL, NULL, &r) == 200, "the server no longer answers");
    test_http_free(&r);
}

/* The value of "key": in a JSON body, as text up to the next delimiter (numbers, strings without escapes). */
static const char *json_value(const char *body, const char *key, char *buf, size_t size)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *v = strstr(body, needle);
    ck_assert_msg(v != NULL, "no \"%s\" in %s", key, body);
    v += strlen(needle);
    size_t n = *v == '"' ? strcspn(v + 1, "\"") + 2 : strcspn(v, ",}]");
    snprintf(buf, size, "%.*s", (int)n, v);
    return buf;
}

/* The value of a metric line "name value" of a Prometheus text. */
static const char *metric_value(const char *text, const char *name, char *buf, size_t size)
{
    char needle[96];
    snprintf(needle, sizeof needle, "\n%s ", name);
    const char *v = strstr(text, needle);
    ck_assert_msg(v != NULL, "no %s in %s", name, text);
    v += strlen(needle);
    snprintf(buf, size, "%.*s", (int)strcspn(v, "\n"), v);
    return buf;
}

/* The ids of a prompt as the server tokenizes it, for fake_greedy. */
static int32_t prompt_ids(const char *text, int32_t *ids, int32_t cap)
{
    ae_error err = { { 0 } };
    ae_gguf *g;
    ae_tokenizer *tok;
    ck_assert_msg(ae_gguf_open(&g, test_shared_path("models/stories260K.gguf"), &err) == 0, "%s", err.msg);
    ck_assert_msg(ae_tokenizer_load(&tok, g, &err) == 0, "%s", err.msg);
    size_t n = 0;
    ck_assert_msg(ae_tokenize(tok, text, strlen(text), true, true, ids, (size_t)cap, &n, &err) == 0, "%s", err.msg);
    ae_tokenizer_free(tok);
    ae_gguf_close(g);
    return (int32_t)n;
}

/* The text of token ids as the server streams it. */
static void ids_text(const int32_t *ids, int32_t n, char *buf, size_t size)
{
    ae_error err = { { 0 } };
    ae_gguf *g;
    ae_tokenizer *tok;
    ck_assert_msg(ae_gguf_open(&g, test_shared_path("models/stories260K.gguf"), &err) == 0, "%s", err.msg);
    ck_assert_msg(ae_tokenizer_load(&tok, g, &err) == 0, "%s", err.msg);
    size_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        const char *p = ae_token_to_piece(tok, ids[i], false, 0, &len);
        ck_assert(k + len < size);
        memcpy(buf + k, p, len);
        k += len;
    }
    buf[k] = 0;
    ae_tokenizer_free(tok);
    ae_gguf_close(g);
}

/* "\"text\":\"TEXT\"" with TEXT escaped as json-c prints it (quote and backslash; the fake's greedy
 * tokens print no control characters). */
static void text_field(const char *text, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "\"text\":\"");
    for (; *text && n + 3 < size; text++) {
        if (*text == '"' || *text == '\\')
            out[n++] = '\\';
        out[n++] = *text;
    }
    snprintf(out + n, size - n, "\"");
}

/* ---- The API --------------------------------------------------------------------------------------- */

START_TEST(test_completion_greedy)
{
    SERVER("--ctx", "64");
    struct test_http_response r;
    post("/v1/completions", "{\"model\":\"x\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}", 200, &r);
    int32_t ids[64], gen[8];
    int32_t n = prompt_ids("Once upon a time", ids, 64);
    fake_greedy(ids, n, 8, gen);
    char want[512], got[600], buf[64];
    ids_text(gen, 8, want, sizeof want);
    text_field(want, got, sizeof got);
    ck_assert_msg(strstr(r.body, got), "expected %s in %s", got, r.body);
    ck_assert_str_eq(json_value(r.body, "finish_reason", buf, sizeof buf), "\"length\"");
    ck_assert_str_eq(json_value(r.body, "object", buf, sizeof buf), "\"text_completion\"");
    ck_assert_int_eq(atoi(json_value(r.body, "prompt_tokens", buf, sizeof buf)), n);
    ck_assert_int_eq(atoi(json_value(r.body, "completion_tokens", buf, sizeof buf)), 8);
    ck_assert_int_eq(atoi(json_value(r.body, "total_tokens", buf, sizeof buf)), n + 8);
    ck_assert_str_eq(test_http_header(&r, "Content-Type"), "application/json");
    test_http_free(&r);

    /* The same prompt as token ids gives the same text. */
    char body[512];
    size_t k = (size_t)snprintf(body, sizeof body, "{\"prompt\":[");
    for (int32_t i = 0; i < n; i++)
        k += (size_t)snprintf(body + k, sizeof body - k, "%s%" PRId32, i ? "," : "", ids[i]);
    snprintf(body + k, sizeof body - k, "],\"max_tokens\":8,\"temperature\":0}");
    post("/completions", body, 200, &r);
    ck_assert_msg(strstr(r.body, got), "expected %s in %s", got, r.body);
    test_http_free(&r);
}
END_TEST

START_TEST(test_finish_stop_and_stop_strings)
{
    /* The fake says EOS after the prompt's second greedy token: finish_reason stop, the EOS counted. */
    int32_t ids[64], gen[4];
    int32_t n = prompt_ids("Hello", ids, 64);
    fake_greedy(ids, n, 2, gen);
    fake_eos_after = gen[1];
    SERVER("--ctx", "64");
    struct test_http_response r;
    char buf[64], text[256], want[300];
    post("/v1/completions", "{\"prompt\":\"Hello\",\"max_tokens\":10,\"temperature\":0}", 200, &r);
    ck_assert_str_eq(json_value(r.body, "finish_reason", buf, sizeof buf), "\"stop\"");
    ck_assert_int_eq(atoi(json_value(r.body, "completion_tokens", buf, sizeof buf)), 3);
    ids_text(gen, 2, text, sizeof text);
    text_field(text, want, sizeof want);
    ck_assert_msg(strstr(r.body, want), "expected %s in %s", want, r.body);
    test_http_free(&r);

    /* A stop string made of the second token's text: only the first token's text comes back. */
    ids_text(gen + 1, 1, text, sizeof text);
    char body[512];
    snprintf(body, sizeof body, "{\"prompt\":\"Hello\",\"max_tokens\":10,\"temperature\":0,\"stop\":[\"%s\"]}", text);
    post("/v1/completions", body, 200, &r);
    ck_assert_str_eq(json_value(r.body, "finish_reason", buf, sizeof buf), "\"stop\"");
    ids_text(gen, 1, text, sizeof text);
    text_field(text, want, sizeof want);
    ck_assert_msg(strstr(r.body, want), "expected %s in %s", want, r.body);
    test_http_free(&r);
}
END_TEST

START_TEST(test_chat_and_stream)
{
    SERVER("--ctx", "128");
    struct test_http_response r, s;
    const char *msgs = "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"text\",\"text\":\"Hi\"}]}]";
    char body[1024], buf[256];
    snprintf(body, sizeof body, "{%s,\"max_tokens\":6,\"seed\":42,\"temperature\":1}", msgs);
    post("/v1/chat/completions", body, 200, &r);
    ck_assert_str_eq(json_value(r.body, "object", buf, sizeof buf), "\"chat.completion\"");
    ck_assert_str_eq(json_value(r.body, "role", buf, sizeof buf), "\"assistant\"");
    /* The prompt went through chatml: the fake counts its tokens. */
    int32_t ids[128];
    int32_t n = prompt_ids("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n", ids, 128);
    ck_assert_int_eq(atoi(json_value(r.body, "prompt_tokens", buf, sizeof buf)), n);

    /* Streamed with the same seed: the chunks' contents put together are the same text. */
    snprintf(body, sizeof body, "{%s,\"max_tokens\":6,\"seed\":42,\"temperature\":1,\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true}}", msgs);
    post("/v1/chat/completions", body, 200, &s);
    ck_assert_str_eq(test_http_header(&s, "Content-Type"), "text/event-stream");
    char joined[1024] = "";
    int events = 0;
    for (const char *e = s.body; (e = strstr(e, "data: ")); e += 6) {
        events++;
        const char *c = strstr(e, "\"content\":\"");
        const char *next = strstr(e + 6, "data: ");
        if (c && (!next || c < next))
            strncat(joined, c + 11, strcspn(c + 11, "\""));
    }
    char whole[1100];
    snprintf(whole, sizeof whole, "\"content\":\"%s\"", joined);
    ck_assert_msg(strstr(r.body, whole), "streamed %s, whole answer %s", joined, r.body);
    ck_assert_msg(strstr(s.body, "\"finish_reason\":\"length\""), "%s", s.body);
    ck_assert_msg(strstr(s.body, "\"choices\":[],\"usage\":{\"prompt_tokens\""), "no usage chunk: %s", s.body);
    const char *done = strstr(s.body, "data: [DONE]\n\n");
    ck_assert_msg(done && done[14] == 0, "the stream does not end with [DONE]: %s", s.body);
    ck_assert_int_ge(events, 4);
    test_http_free(&r);
    test_http_free(&s);

    /* Another seed, another answer (the fake's distribution is wide enough). */
    snprintf(body, sizeof body, "{%s,\"max_tokens\":6,\"seed\":43,\"temperature\":1}", msgs);
    post("/v1/chat/completions", body, 200, &r);
    ck_assert_msg(!strstr(r.body, whole), "seeds 42 and 43 gave the same text %s", whole);
    test_http_free(&r);
}
END_TEST

START_TEST(test_logprobs)
{
    SERVER("--ctx", "64");
    struct test_http_response r;
    char buf[64];
    post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":3,"
         "\"temperature\":0,\"logprobs\":true,\"top_logprobs\":2}", 200, &r);
    /* Greedy picks the fake's largest logit: it is the first alternative. Its probability is e^2 over
     * e^2 + the sum of e^(-d/32) for d = 1..511. */
    const char *c = strstr(r.body, "\"logprobs\":{\"content\":[{\"token\":");
    ck_assert_msg(c != NULL, "%s", r.body);
    double lp = atof(json_value(c, "logprob", buf, sizeof buf)), sum = exp(2.0);
    for (int d = 1; d < FAKE_VOCAB; d++)
        sum += exp(-d / 32.0);
    ck_assert_msg(fabs(lp - (2.0 - log(sum))) < 1e-5, "logprob %g, expected %g", lp, 2.0 - log(sum));
    const char *top = strstr(c, "\"top_logprobs\":[{");
    ck_assert_msg(top && fabs(atof(json_value(top, "logprob", buf, sizeof buf)) - lp) < 1e-6, "%s", r.body);
    test_http_free(&r);
    post("/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2,\"temperature\":0,\"logprobs\":1}", 200, &r);
    ck_assert_msg(strstr(r.body, "\"token_logprobs\":[") && strstr(r.body, "\"text_offset\":[0,"), "%s", r.body);
    test_http_free(&r);
}
END_TEST

START_TEST(test_models_health_metrics)
{
    SERVER("--parallel", "2");
    struct test_http_response r;
    char buf[64];
    ck_assert_int_eq(test_http(server_port, "GET", "/v1/models", NULL, NULL, &r), 200);
    ck_assert_str_eq(json_value(r.body, "id", buf, sizeof buf), "\"fake-serve\"");
    ck_assert_str_eq(json_value(r.body, "object", buf, sizeof buf), "\"list\"");
    test_http_free(&r);
    ck_assert_int_eq(test_http(server_port, "GET", "/health", NULL, NULL, &r), 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    test_http_free(&r);
    post("/v1/completions", "{\"prompt\":\"a b c\",\"max_tokens\":4,\"temperature\":0}", 200, &r);
    test_http_free(&r);
    post("/v1/completions", "{\"prompt\":7}", 400, &r);
    test_http_free(&r);
    ck_assert_int_eq(test_http(server_port, "GET", "/metrics", NULL, NULL, &r), 200);
    static const char *const lines[] = {
        "aether_requests_total{status=\"200\"} 3\n", "aether_requests_total{status=\"400\"} 1\n",
        "aether_generated_tokens_total 4\n", "aether_time_to_first_token_seconds_count 1\n",
        "aether_time_per_output_token_seconds_count 3\n", "aether_slots_total 2\n", "aether_slots_busy 0\n",
        "aether_queue_depth 0\n", "aether_kv_cache_tokens_used 0\n", "# TYPE aether_kv_cache_usage_ratio gauge\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(strstr(r.body, lines[i]), "no '%s' in\n%s", lines[i], r.body);
    test_http_free(&r);
}
END_TEST

/* ---- The malformed-request corpus ----------------------------------------------------------------- */

struct bad_row {
    const char *name;
    const char *request;       /* raw bytes; NULL: a POST of body to path */
    const char *path;
    const char *body;
    int status;                /* -1: the connection is closed without an answer */
};

#define BAD(body) { body, NULL, "/v1/completions", body, 400 }
#define BAD_CHAT(body) { body, NULL, "/v1/chat/completions", body, 400 }

static const struct bad_row bad_rows[] = {
    /* HTTP */
    { "unknown path", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, NULL, 404 },
    { "unknown path 2", "GET /v2/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, NULL, 404 },
    { "path with dots", "GET /v1/../health/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, NULL, 404 },
    { "GET on a POST path", "GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, NULL, 405 },
    { "PUT", "PUT /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", NULL, NULL, 405 },
    { "DELETE", "DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, NULL, 405 },
    { "POST on a GET path", "POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", NULL, NULL, 405 },
    { "unknown method", "BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, NULL, 405 },
    { "not HTTP", "hello there\r\n\r\n", NULL, NULL, 400 },
    { "HTTP/9", "GET /health HTTP/9.0\r\nHost: x\r\n\r\n", NULL, NULL, 505 },
    { "no Host", "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", NULL, NULL, 400 },
    { "bad Content-Length", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", NULL, NULL, 400 },
    { "huge Content-Length", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
      "Connection: close\r\n\r\n{", NULL, NULL, 413 },
    { "chunked body", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
      "\r\n10\r\n{\"prompt\":\"a\",\"m\r\n10\r\nax_tokens\":1}   \r\n0\r\n\r\n", NULL, NULL, 200 },
    { "bad chunk size", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      NULL, NULL, 400 },
    { "truncated head", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le", NULL, NULL, -1 },
    { "truncated body", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":", NULL, NULL, -1 },
    /* JSON */
    { "empty body", NULL, "/v1/completions", "", 400 },
    BAD("not json"),
    BAD("{"),
    BAD("{\"prompt\":\"a\""),
    BAD("[]"),
    BAD("\"prompt\""),
    BAD("null"),
    BAD("{\"prompt\":\"a\"} x"),
    BAD("{\"prompt\":\"a\",}"),
    BAD("{\"prompt\":\"\xff\xfe\"}"),
    BAD("{\"prompt\":\"\xc0\xaf\"}"),
    BAD("{\"prompt\":\"\xed\xa0\x80\"}"),
    BAD("{\"prompt\":\"a\\u0000b\"}"),
    BAD("{\"prompt\":\"a\",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
    /* fields */
    BAD("{}"),
    BAD("{\"prompt\":1}"),
    BAD("{\"prompt\":true}"),
    BAD("{\"prompt\":[]}"),
    BAD("{\"prompt\":[1.5]}"),
    BAD("{\"prompt\":[99999]}"),
    BAD("{\"prompt\":[-1]}"),
    BAD("{\"prompt\":[\"a\",\"b\"]}"),
    BAD("{\"prompt\":[[1],[2]]}"),
    BAD("{\"prompt\":\"a\",\"max_tokens\":\"5\"}"),
    BAD("{\"prompt\":\"a\",\"max_tokens\":1.5}"),
    BAD("{\"prompt\":\"a\",\"max_tokens\":0}"),
    BAD("{\"prompt\":\"a\",\"max_tokens\":-1}"),
    BAD("{\"prompt\":\"a\",\"max_tokens\":99999999999999999999}"),
    BAD("{\"prompt\":\"a\",\"max_tokens\":100000}"),
    BAD("{\"prompt\":\"a\",\"max_completion_tokens\":[1]}"),
    BAD("{\"prompt\":\"a\",\"temperature\":\"hot\"}"),
    BAD("{\"prompt\":\"a\",\"temperature\":3}"),
    BAD("{\"prompt\":\"a\",\"temperature\":NaN}"),
    BAD("{\"prompt\":\"a\",\"temperature\":1e999}"),
    BAD("{\"prompt\":\"a\",\"top_p\":2}"),
    BAD("{\"prompt\":\"a\",\"top_k\":-1}"),
    BAD("{\"prompt\":\"a\",\"top_k\":1.5}"),
    BAD("{\"prompt\":\"a\",\"min_p\":true}"),
    BAD("{\"prompt\":\"a\",\"seed\":\"1\"}"),
    BAD("{\"prompt\":\"a\",\"seed\":0.5}"),
    BAD("{\"prompt\":\"a\",\"stop\":5}"),
    BAD("{\"prompt\":\"a\",\"stop\":[1]}"),
    BAD("{\"prompt\":\"a\",\"stop\":\"\"}"),
    BAD("{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\","
        "\"14\",\"15\",\"16\",\"17\"]}"),
    BAD("{\"prompt\":\"a\",\"stream\":\"yes\"}"),
    BAD("{\"prompt\":\"a\",\"stream\":true,\"stream_options\":1}"),
    BAD("{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":1}}"),
    BAD("{\"prompt\":\"a\",\"n\":2}"),
    BAD("{\"prompt\":\"a\",\"best_of\":3}"),
    BAD("{\"prompt\":\"a\",\"echo\":true}"),
    BAD("{\"prompt\":\"a\",\"suffix\":\"b\"}"),
    BAD("{\"prompt\":\"a\",\"logprobs\":21}"),
    BAD("{\"prompt\":\"a\",\"presence_penalty\":3}"),
    BAD("{\"prompt\":\"a\",\"frequency_penalty\":\"x\"}"),
    BAD("{\"prompt\":\"a\",\"logit_bias\":{\"abc\":1}}"),
    BAD("{\"prompt\":\"a\",\"logit_bias\":{\"1\":200}}"),
    BAD("{\"prompt\":\"a\",\"logit_bias\":[1]}"),
    BAD("{\"prompt\":\"a\",\"model\":5}"),
    BAD_CHAT("{}"),
    BAD_CHAT("{\"messages\":\"hi\"}"),
    BAD_CHAT("{\"messages\":[]}"),
    BAD_CHAT("{\"messages\":[1]}"),
    BAD_CHAT("{\"messages\":[{\"content\":\"x\"}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":5,\"content\":\"x\"}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"\",\"content\":\"x\"}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":5}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000\"}]}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":3}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}"),
    BAD_CHAT("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}"),
    /* well-formed, for contrast: unknown fields are ignored */
    { "unknown fields", NULL, "/v1/completions", "{\"prompt\":\"a\",\"max_tokens\":1,\"user\":\"u\",\"foo\":{\"bar\":[1,{}]}}", 200 },
    { "null fields", NULL, "/v1/completions", "{\"prompt\":\"a\",\"max_tokens\":1,\"temperature\":null,\"stop\":null}", 200 },
};

/* Every row against one server, which must answer /health after each. */
START_TEST(test_bad_requests)
{
    SERVER("--ctx", "64");
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        const struct bad_row *row = &bad_rows[i];
        struct test_http_response r;
        int got;
        if (row->request)
            got = test_http_send(server_port, row->request, strlen(row->request), 0, 0, row->status < 0 ? 300 : 10000,
                                 &r);
        else
            got = test_http(server_port, "POST", row->path, NULL, row->body, &r);
        ck_assert_msg(got == row->status, "%s: status %d, expected %d: %s%s", row->name, got, row->status,
                      r.head ? r.head : "", r.body ? r.body : "");
        /* Our own errors are OpenAI's JSON; the HTTP-level ones come from libmicrohttpd. */
        if (row->status == 400 && !row->request)
            ck_assert_msg(strstr(r.body, "{\"error\":{\"message\":\"") &&
                          strstr(r.body, "\"type\":\"invalid_request_error\""), "%s: %s", row->name, r.body);
        test_http_free(&r);
        expect_health();
    }
}
END_TEST

START_TEST(test_huge_bodies)
{
    SERVER("--ctx", "64");
    size_t n = (1u << 20) + 100;
    char *body = malloc(n + 1);
    ck_assert(body != NULL);
    memset(body, ' ', n);
    memcpy(body, "{\"prompt\":\"", 11);
    body[n - 2] = '"';
    body[n - 1] = '}';
    body[n] = 0;
    struct test_http_response r;
    post("/v1/completions", body, 413, &r);
    ck_assert_msg(strstr(r.body, "\"error\""), "%s", r.body);
    test_http_free(&r);
    /* The same in chunks: read to its end, then 413. */
    size_t cap = n + 4096, k = 0;
    char *req = malloc(cap);
    ck_assert(req != NULL);
    k += (size_t)snprintf(req, cap, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n");
    for (size_t off = 0; off < n; off += 65536) {
        size_t c = n - off < 65536 ? n - off : 65536;
        k += (size_t)snprintf(req + k, cap - k, "%zx\r\n", c);
        memcpy(req + k, body + off, c);
        k += c;
        memcpy(req + k, "\r\n", 2);
        k += 2;
    }
    k += (size_t)snprintf(req + k, cap - k, "0\r\n\r\n");
    ck_assert_int_eq(test_http_send(server_port, req, k, 0, 0, 10000, &r), 413);
    test_http_free(&r);
    /* A prompt longer than the context. */
    memset(body + 11, 'a', 400);
    memcpy(body + 411, "\"}", 3);
    post("/v1/completions", body, 400, &r);
    ck_assert_msg(strstr(r.body, "more than the context"), "%s", r.body);
    test_http_free(&r);
    free(req);
    free(body);
    expect_health();
}
END_TEST

/* Heads over libmicrohttpd's 64 KiB per connection: a long header, a long path, many headers. */
START_TEST(test_huge_heads)
{
    SERVER("--ctx", "64");
    static const struct {
        const char *before, *unit, *after;
        int times, status;
    } rows[] = {
        { "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", "a", "\r\n\r\n", 70000, 431 },
        { "GET /", "a", " HTTP/1.1\r\nHost: x\r\n\r\n", 70000, 414 },
        { "GET /health HTTP/1.1\r\nHost: x\r\n", "X-A: b\r\n", "\r\n", 10000, 431 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t unit = strlen(rows[i].unit), cap = strlen(rows[i].before) + unit * (size_t)rows[i].times + 64, n = 0;
        char *req = malloc(cap);
        ck_assert(req != NULL);
        n += (size_t)snprintf(req, cap, "%s", rows[i].before);
        for (int k = 0; k < rows[i].times; k++, n += unit)
            memcpy(req + n, rows[i].unit, unit);
        n += (size_t)snprintf(req + n, cap - n, "%s", rows[i].after);
        struct test_http_response r;
        ck_assert_int_eq(test_http_send(server_port, req, n, 0, 0, 10000, &r), rows[i].status);
        test_http_free(&r);
        free(req);
        expect_health();
    }
}
END_TEST

START_TEST(test_slow_requests)
{
    SERVER("--ctx", "64", "--timeout", "1");
    /* A request sent a few bytes at a time, slower than nothing but faster than the timeout, is answered. */
    const char *req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 32\r\n\r\n"
                      "{\"prompt\":\"a b\",\"max_tokens\":2} ";
    struct test_http_response r;
    ck_assert_int_eq(test_http_send(server_port, req, strlen(req), 7, 30, 10000, &r), 200);
    test_http_free(&r);
    /* A request that stops half-way is closed after the timeout, without an answer. */
    int fd = test_http_connect(server_port);
    const char *part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"pro";
    ck_assert(send(fd, part, strlen(part), MSG_NOSIGNAL) == (ssize_t)strlen(part));
    double t0 = test_http_now_ms();
    char c;
    ssize_t got = recv(fd, &c, 1, 0);
    double waited = test_http_now_ms() - t0;
    close(fd);
    ck_assert_msg(got == 0 && waited > 500 && waited < 5000, "recv %zd after %.0f ms", got, waited);
    expect_health();
}
END_TEST

/* ---- Keys, capacity, clients that leave, SIGTERM --------------------------------------------------- */

START_TEST(test_api_key)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/check_serve_key_XXXXXX");
    int fd = mkstemp(path);
    ck_assert(fd >= 0 && write(fd, "s3cret-key\n", 11) == 11);
    close(fd);
    SERVER("--api-key-file", path);
    unlink(path);
    struct test_http_response r;
    const char *body = "{\"prompt\":\"a\",\"max_tokens\":1}";
    static const struct {
        const char *headers;
        int status;
    } rows[] = {
        { NULL, 401 },
        { "Authorization: Bearer wrong\r\n", 401 },
        { "Authorization: Bearer s3cret-ke\r\n", 401 },
        { "Authorization: Bearer s3cret-key2\r\n", 401 },
        { "Authorization: Basic s3cret-key\r\n", 401 },
        { "Authorization: Bearer s3cret-key\r\n", 200 },
        { "Authorization: bearer  s3cret-key\r\n", 200 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int got = test_http(server_port, "POST", "/v1/completions", rows[i].headers, body, &r);
        ck_assert_msg(got == rows[i].status, "%s: %d", rows[i].headers ? rows[i].headers : "(none)", got);
        if (got == 401)
            ck_assert_msg(strstr(r.body, "\"code\":\"invalid_api_key\"") && test_http_header(&r, "WWW-Authenticate"),
                          "%s", r.body);
        test_http_free(&r);
    }
    ck_assert_int_eq(test_http(server_port, "GET", "/v1/models", NULL, NULL, &r), 401);
    test_http_free(&r);
    ck_assert_int_eq(test_http(server_port, "GET", "/metrics", NULL, NULL, &r), 401);
    test_http_free(&r);
    expect_health();
}
END_TEST

/* Opens a streaming request and returns its socket after the first chunk arrived. */
static int stream_open(const char *body)
{
    int fd = test_http_connect(server_port);
    char req[1024];
    int n = snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    ck_assert(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
    char buf[4096];
    ck_assert_msg(recv(fd, buf, sizeof buf, 0) > 0, "no first chunk");
    return fd;
}

START_TEST(test_queue_full)
{
    fake_delay_us = 20000;
    SERVER("--ctx", "128", "--parallel", "1", "--queue", "1");
    int a = stream_open("{\"prompt\":\"a\",\"max_tokens\":100,\"temperature\":0,\"stream\":true}");
    int b = stream_open("{\"prompt\":\"b\",\"max_tokens\":100,\"temperature\":0,\"stream\":true}");
    struct test_http_response r;
    post("/v1/completions", "{\"prompt\":\"c\",\"max_tokens\":1}", 503, &r);
    ck_assert_str_eq(test_http_header(&r, "Retry-After"), "1");
    ck_assert_msg(strstr(r.body, "\"type\":\"unavailable_error\""), "%s", r.body);
    test_http_free(&r);
    close(a);
    close(b);
}
END_TEST

/* Polls /metrics until the metric name reads value; fails after 30 s (a server that never gets there). */
static void wait_metric(const char *name, const char *value)
{
    char buf[64] = "";
    for (int i = 0; i < 3000; i++) {
        struct test_http_response r;
        ck_assert_int_eq(test_http(server_port, "GET", "/metrics", NULL, NULL, &r), 200);
        metric_value(r.body, name, buf, sizeof buf);
        test_http_free(&r);
        if (strcmp(buf, value) == 0)
            return;
        usleep(10000);
    }
    ck_abort_msg("%s is %s after 30 s, expected %s", name, buf, value);
}

START_TEST(test_disconnect_frees_slot)
{
    /* A client that leaves mid-answer cancels its request (aether_requests_cancelled_total counts only
     * requests that end before their last token) and frees the slot for the next one. 190 steps of 50 ms
     * take longer than the wait can, so the count cannot come from a request that ran to its end; the
     * test waits on the metrics, not on a clock, and takes a fraction of a second. */
    fake_delay_us = 50000;
    SERVER("--ctx", "200", "--parallel", "1", "--queue", "4");
    int a = stream_open("{\"prompt\":\"a\",\"max_tokens\":190,\"temperature\":0,\"stream\":true}");
    close(a);
    wait_metric("aether_requests_cancelled_total", "1");
    wait_metric("aether_slots_busy", "0");
    struct test_http_response r;
    post("/v1/completions", "{\"prompt\":\"b\",\"max_tokens\":2}", 200, &r);
    test_http_free(&r);
    /* The same for a whole (not streamed) answer whose client leaves while it is generated. */
    int fd = test_http_connect(server_port);
    const char *body = "{\"prompt\":\"a\",\"max_tokens\":190,\"temperature\":0}";
    char req[512];
    int n = snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    ck_assert(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
    wait_metric("aether_slots_busy", "1");
    close(fd);
    wait_metric("aether_requests_cancelled_total", "2");
    wait_metric("aether_slots_busy", "0");
    post("/v1/completions", "{\"prompt\":\"b\",\"max_tokens\":2}", 200, &r);
    test_http_free(&r);
}
END_TEST

START_TEST(test_sigterm_drains)
{
    fake_delay_us = 10000;
    SERVER("--ctx", "128", "--parallel", "1", "--queue", "2");
    /* A stream under way when SIGTERM comes is answered to its end; then the program exits 0. */
    int a = stream_open("{\"prompt\":\"a\",\"max_tokens\":40,\"temperature\":0,\"stream\":true}");
    kill(server_pid, SIGTERM);
    usleep(200000);
    char buf[65536];
    size_t n = 0;
    ssize_t k;
    while ((k = recv(a, buf + n, sizeof buf - 1 - n, 0)) > 0)
        n += (size_t)k;
    buf[n] = 0;
    close(a);
    ck_assert_msg(strstr(buf, "\"finish_reason\":\"length\"") && strstr(buf, "data: [DONE]"), "%s", buf);
    int st;
    ck_assert(waitpid(server_pid, &st, 0) == server_pid);
    server_pid = 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}
END_TEST

/* ---- Concurrency ----------------------------------------------------------------------------------- */

#define N_CONCURRENT 6

struct concurrent_job {
    char body[256];
    struct test_http_response r;
};

static void *concurrent_run(void *arg)
{
    struct concurrent_job *j = arg;
    test_http(server_port, "POST", "/v1/completions", NULL, j->body, &j->r);
    return NULL;
}

/* Twice: the server calling forward once per sequence, then the batched step. */
START_TEST(test_concurrent_equals_alone)
{
    fake_model.forward_batch = _i ? fake_forward_batch : NULL;
    fake_delay_us = 1000;
    SERVER("--ctx", "96", "--parallel", "3", "--queue", "8");
    /* Prompts of different lengths (some longer than one step), sampled with seeds: each answer must be
     * what the same request gets alone. */
    static const char *const prompts[N_CONCURRENT] = {
        "a", "Once upon a time there was a little girl named Lily who", "b c", "the end of it all",
        "One day, a big dog ran and ran and ran to the park", "x",
    };
    struct concurrent_job alone[N_CONCURRENT], together[N_CONCURRENT];
    for (int i = 0; i < N_CONCURRENT; i++) {
        snprintf(alone[i].body, sizeof alone[i].body,
                 "{\"prompt\":\"%s\",\"max_tokens\":%d,\"seed\":%d,\"temperature\":0.9,\"stream\":%s}", prompts[i],
                 10 + 3 * i, 100 + i, i % 2 ? "true" : "false");
        together[i] = alone[i];
        concurrent_run(&alone[i]);
        ck_assert_int_eq(alone[i].r.status, 200);
    }
    pthread_t th[N_CONCURRENT];
    for (int i = 0; i < N_CONCURRENT; i++)
        ck_assert(pthread_create(&th[i], NULL, concurrent_run, &together[i]) == 0);
    for (int i = 0; i < N_CONCURRENT; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_CONCURRENT; i++) {
        ck_assert_int_eq(together[i].r.status, 200);
        /* Ids and times differ; the text and counts must not. */
        const char *ta = strstr(alone[i].r.body, "\"choices\""), *tt = strstr(together[i].r.body, "\"choices\"");
        ck_assert_msg(ta && tt, "%s", together[i].r.body);
        if (i % 2 == 0)
            ck_assert_str_eq(tt, ta);
        else {
            /* Streams: the same chunks' texts in the same order, whatever the chunking. */
            char a[2048] = "", t[2048] = "";
            for (const char *e = alone[i].r.body; (e = strstr(e, "\"text\":\"")); e += 8)
                strncat(a, e + 8, strcspn(e + 8, "\""));
            for (const char *e = together[i].r.body; (e = strstr(e, "\"text\":\"")); e += 8)
                strncat(t, e + 8, strcspn(e + 8, "\""));
            ck_assert_str_eq(t, a);
        }
        test_http_free(&alone[i].r);
        test_http_free(&together[i].r);
    }
    /* The steps did batch: more tokens than steps. */
    struct test_http_response r;
    ck_assert_int_eq(test_http(server_port, "GET", "/metrics", NULL, NULL, &r), 200);
    char buf[64];
    double steps = atof(metric_value(r.body, "aether_steps_total", buf, sizeof buf));
    double rows = atof(metric_value(r.body, "aether_step_tokens_total", buf, sizeof buf));
    ck_assert_msg(rows > 1.5 * steps, "%g tokens in %g steps", rows, steps);
    test_http_free(&r);
}
END_TEST

/* A prompt that starts as the last one in a free slot began reuses its cache, with the same answer. */
START_TEST(test_prompt_cache)
{
    fake_model.forward_batch = fake_forward_batch;
    SERVER("--ctx", "96", "--parallel", "2");
    static const char *const bodies[] = {
        "{\"prompt\":\"Once upon a time there was a little dog\",\"max_tokens\":5,\"temperature\":0}",
        "{\"prompt\":\"Once upon a time there was a little dog who ran\",\"max_tokens\":5,\"temperature\":0}",
        "{\"prompt\":\"Once upon a time there was a little dog\",\"max_tokens\":5,\"temperature\":0}",
        "{\"prompt\":\"Once upon a time there was a cat\",\"max_tokens\":5,\"temperature\":0}",
    };
    static const char *const prompts[] = {
        "Once upon a time there was a little dog", "Once upon a time there was a little dog who ran",
        "Once upon a time there was a little dog", "Once upon a time there was a cat",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct test_http_response r;
        post("/v1/completions", bodies[i], 200, &r);
        int32_t ids[96], gen[5];
        int32_t n = prompt_ids(prompts[i], ids, 96);
        fake_greedy(ids, n, 5, gen);
        char want[256], got[300];
        ids_text(gen, 5, want, sizeof want);
        text_field(want, got, sizeof got);
        ck_assert_msg(strstr(r.body, got), "request %zu: expected %s in %s", i, got, r.body);
        test_http_free(&r);
    }
    struct test_http_response r;
    ck_assert_int_eq(test_http(server_port, "GET", "/metrics", NULL, NULL, &r), 200);
    char buf[64];
    ck_assert_msg(atof(metric_value(r.body, "aether_prompt_tokens_cached_total", buf, sizeof buf)) >= 20, "%s", r.body);
    test_http_free(&r);
}
END_TEST

Suite *serve_suite(void);

Suite *serve_suite(void)
{
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_completion_greedy);
    tcase_add_test(tc, test_finish_stop_and_stop_strings);
    tcase_add_test(tc, test_chat_and_stream);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_models_health_metrics);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_requests);
    tcase_add_test(tc, test_huge_bodies);
    tcase_add_test(tc, test_huge_heads);
    tcase_add_test(tc, test_slow_requests);
    suite_add_tcase(s, tc);
    tc = tcase_create("capacity");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_api_key);
    tcase_add_test(tc, test_queue_full);
    tcase_add_test(tc, test_disconnect_frees_slot);
    tcase_add_test(tc, test_sigterm_drains);
    tcase_add_loop_test(tc, test_concurrent_equals_alone, 0, 2);
    tcase_add_test(tc, test_prompt_cache);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(serve_suite());
}
