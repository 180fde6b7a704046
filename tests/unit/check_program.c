/* The generated program's main (ae_program_main) driven end to end with a fake model.
 *
 * The fake model stands in for generated code: its forward step writes every KV row it is given,
 * checks that the cache holds every earlier position, that n <= t_max and that the buffers it was
 * handed have the sizes promised, and produces logits whose argmax is a fixed function of the last
 * token and its position (fake_next). A test can therefore predict every greedy run (sim_generate),
 * and each forward call is appended to a log file, so that the positions the program fed (prompt
 * chunks, one token at a time, what a chat turn reuses from the cache) are checked call by call.
 *
 * The pack is built here: the tokenizer.* keys of the shared stories260K model, a chat template, and
 * a few KiB of weights the fake model recognizes. Every run is a forked child with stdout and stderr
 * captured; the chat runs in a pseudo-terminal so that Ctrl-C is a real SIGINT from the terminal.
 * The same binary also serves as a compiled model program: with AE_CHECK_PROGRAM_RUN set its main is
 * ae_program_main, which lets a test append a pack to a copy of it and run that as an executable.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ae_chat.h"
#include "ae_gguf.h"
#include "gguf_write.h"
#include "ae_pool.h"
#include "ae_program.h"
#include "ae_tokenizer.h"
#include "ae_types.h"
#include "ae_utf8.h"
#include "test_util.h"

/* ---- The fake model -------------------------------------------------------------------------------- */

#define FAKE_VOCAB 512         /* stories260K's vocabulary */
#define FAKE_LAYERS 2
#define FAKE_HEADS_KV 2
#define FAKE_DIM_K 8
#define FAKE_DIM_V 4
#define FAKE_CTX_TRAIN 256
#define FAKE_T_MAX 8
#define FAKE_ARENA 1000        /* not a multiple of 64, on purpose */
#define FAKE_SCRATCH 100       /* per thread, plus one byte per context position */
#define FAKE_WEIGHTS 8192
#define FAKE_EOS 2             /* stories260K: </s> */
#define FAKE_BYTE(b) (3 + (b)) /* stories260K: <0x00>..<0xFF> are ids 3..258 */
#define FAKE_FIRST_WORD 259    /* the first id after the byte tokens */
#define FAKE_EOS_AFTER 400     /* this token is followed by EOS */
#define FAKE_EURO_AFTER 401    /* this token is followed by the bytes of U+20AC: E2 82 AC */
#define FAKE_LOG_MAX 4096

static uint8_t fake_weights[FAKE_WEIGHTS];
static struct ae_pack_memory fake_pack_memory;   /* set by fake_init */
static struct ae_pack_weights fake_pack_weights; /* set by fake_init */
static const uint64_t fake_weight_offsets[1] = { 0 };
static const char *fake_log_path; /* each forward call is appended here when set */
static int fake_delay_us;         /* sleep per decode step, so that Ctrl-C lands inside an answer */
static bool fake_never_eos;       /* FAKE_EOS_AFTER is an ordinary token */
static int32_t fake_filled;       /* KV positions written so far (0..fake_filled-1) */

/* The greedy next token after `last` at position pos. Never a byte token (whose text could be invalid
 * UTF-8) except in the complete sequence of the euro sign. */
static int32_t fake_next(int32_t last, int32_t pos)
{
    if (last == FAKE_EOS_AFTER && !fake_never_eos)
        return FAKE_EOS;
    if (last == FAKE_EURO_AFTER)
        return FAKE_BYTE(0xE2);
    if (last == FAKE_BYTE(0xE2))
        return FAKE_BYTE(0x82);
    if (last == FAKE_BYTE(0x82))
        return FAKE_BYTE(0xAC);
    return FAKE_FIRST_WORD + (int32_t)(((int64_t)last * 7 + pos) % (FAKE_VOCAB - FAKE_FIRST_WORD));
}

struct fake_logits {
    float *logits;
    int32_t target;
};

#define FAKE_LOGIT_TASKS 4

/* A quarter of the vocabulary: the target far above the rest, the rest falling with distance. */
static void fake_logits_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct fake_logits *c = ctx;
    int64_t per = FAKE_VOCAB / FAKE_LOGIT_TASKS;
    for (int64_t j = task * per; j < (task + 1) * per; j++) {
        int64_t d = (j - c->target + FAKE_VOCAB) % FAKE_VOCAB;
        c->logits[j] = d == 0 ? 4.0f : -(float)d / 64.0f;
    }
}

static size_t fake_kv_elt(uint32_t kv_type)
{
    return kv_type == AE_TYPE_F32 ? 4 : kv_type == AE_TYPE_F16 ? 2 : 0;
}

static void fake_kv_put(uint8_t *row, size_t n_elt, uint32_t kv_type, float v)
{
    for (size_t e = 0; e < n_elt; e++) {
        if (kv_type == AE_TYPE_F32) {
            memcpy(row + e * 4, &v, 4);
        } else {
            uint16_t h = ae_fp32_to_fp16(v);
            memcpy(row + e * 2, &h, 2);
        }
    }
}

static bool fake_kv_written(const uint8_t *row, size_t n_elt, size_t elt)
{
    static const uint8_t zero[4];
    return memcmp(row, zero, elt) != 0 && memcmp(row + (n_elt - 1) * elt, zero, elt) != 0;
}

/* The K and V regions of all layers, [n_ctx, heads, dim] each, must not overlap. */
static int fake_check_kv_layout(const struct ae_state *s, size_t elt, ae_error *err)
{
    uintptr_t lo[2 * FAKE_LAYERS], hi[2 * FAKE_LAYERS];
    for (int l = 0; l < FAKE_LAYERS; l++) {
        lo[2 * l] = (uintptr_t)s->k_cache[l];
        hi[2 * l] = lo[2 * l] + (size_t)s->n_ctx * FAKE_HEADS_KV * FAKE_DIM_K * elt;
        lo[2 * l + 1] = (uintptr_t)s->v_cache[l];
        hi[2 * l + 1] = lo[2 * l + 1] + (size_t)s->n_ctx * FAKE_HEADS_KV * FAKE_DIM_V * elt;
    }
    for (int a = 0; a < 2 * FAKE_LAYERS; a++)
        for (int b = a + 1; b < 2 * FAKE_LAYERS; b++)
            if (lo[a] < hi[b] && lo[b] < hi[a])
                return ae_fail(err, "fake: KV regions %d and %d overlap", a, b);
    return 0;
}

static int fake_forward(struct ae_state *s, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
                        ae_error *err)
{
    if (n < 1 || n > FAKE_T_MAX)
        return ae_fail(err, "fake: %" PRId32 " tokens in one step, expected 1..%d", n, FAKE_T_MAX);
    if (pos < 0 || pos > fake_filled)
        return ae_fail(err, "fake: step at position %" PRId32 " but the cache holds %" PRId32 " positions", pos,
                       fake_filled);
    if (pos + n > s->n_ctx)
        return ae_fail(err, "fake: positions %" PRId32 "..%" PRId32 " past the context %" PRId32, pos, pos + n - 1,
                       s->n_ctx);
    if (!s->weights || memcmp(s->weights[0], fake_weights, FAKE_WEIGHTS) != 0)
        return ae_fail(err, "fake: the weights are not the pack's");
    if ((uintptr_t)s->arena % 64 != 0 || (uintptr_t)s->weights[0] % 64 != 0)
        return ae_fail(err, "fake: arena or weights not 64-byte aligned");
    size_t elt = fake_kv_elt(s->kv_type);
    if (elt == 0)
        return ae_fail(err, "fake: KV type %" PRIu32, s->kv_type);
    if (fake_check_kv_layout(s, elt, err) < 0)
        return -1;
    memset(s->arena, 0xA5, FAKE_ARENA);
    memset(s->scratch, 0x5A, ((size_t)FAKE_SCRATCH + (size_t)s->n_ctx) * (size_t)ae_pool_threads(s->pool));

    size_t k_row = FAKE_HEADS_KV * FAKE_DIM_K, v_row = FAKE_HEADS_KV * FAKE_DIM_V;
    for (int l = 0; l < FAKE_LAYERS; l++) {
        uint8_t *k = s->k_cache[l], *v = s->v_cache[l];
        for (int32_t p = 0; p < pos; p++)
            if (!fake_kv_written(k + (size_t)p * k_row * elt, k_row, elt) ||
                !fake_kv_written(v + (size_t)p * v_row * elt, v_row, elt))
                return ae_fail(err, "fake: layer %d position %" PRId32 " was never written", l, p);
        for (int32_t j = 0; j < n; j++) {
            fake_kv_put(k + (size_t)(pos + j) * k_row * elt, k_row, s->kv_type, (float)(tokens[j] + 1));
            fake_kv_put(v + (size_t)(pos + j) * v_row * elt, v_row, s->kv_type, (float)(tokens[j] + 1));
        }
    }
    struct fake_logits c = { logits, fake_next(tokens[n - 1], pos + n - 1) };
    ae_pool_run(s->pool, fake_logits_task, &c, FAKE_LOGIT_TASKS);
    fake_filled = pos + n;

    if (fake_log_path) {
        FILE *f = fopen(fake_log_path, "a");
        if (!f)
            return ae_fail(err, "fake: cannot open the log %s", fake_log_path);
        fprintf(f, "%" PRId32 " %" PRId32 " %d %s", pos, n, ae_pool_threads(s->pool),
                s->kv_type == AE_TYPE_F32 ? "f32" : "f16");
        for (int32_t j = 0; j < n; j++)
            fprintf(f, " %" PRId32, tokens[j]);
        fprintf(f, "\n");
        fclose(f);
    }
    if (fake_delay_us && n == 1)
        usleep((useconds_t)fake_delay_us);
    return 0;
}

static uint64_t fake_scratch_size(int32_t n_ctx, int32_t n_threads)
{
    return ((uint64_t)FAKE_SCRATCH + (uint64_t)n_ctx) * (uint64_t)n_threads;
}

static struct ae_model fake_model = {
    .name = "fake-stories",
    .arch = "llama",
    .n_vocab = FAKE_VOCAB,
    .n_layer = FAKE_LAYERS,
    .n_head_kv = FAKE_HEADS_KV,
    .head_dim_k = FAKE_DIM_K,
    .head_dim_v = FAKE_DIM_V,
    .n_ctx_train = FAKE_CTX_TRAIN,
    .n_ctx = FAKE_CTX_TRAIN,
    .n_ctx_min = 1,
    .n_ctx_max = FAKE_CTX_TRAIN,
    .kv_type = AE_TYPE_F16,
    .t_max = FAKE_T_MAX,
    .arena_bytes = FAKE_ARENA,
    .scratch_size = fake_scratch_size,
    .n_weights = 1,
    .weight_offsets = fake_weight_offsets,
    .weights_bytes = FAKE_WEIGHTS,
    .compiler = "check_program's fake model",
    .tokenizer = &ae_tokenizer_spm,
    .info = "fake model for check_program: no passes",
    .forward = fake_forward,
};

static void fake_init(void)
{
    memcpy(fake_weights, "FAKEWGTS", 8);
    for (size_t i = 8; i < FAKE_WEIGHTS; i++)
        fake_weights[i] = (uint8_t)(i * 31 + 7);
    ae_error err = { { 0 } };
    ae_pack_memory_free(&fake_pack_memory);
    if (ae_pack_memory_init(&fake_pack_memory, fake_weights, FAKE_WEIGHTS, &fake_pack_weights, &err) < 0) {
        fprintf(stderr, "fake_init: %s\n", err.msg); /* also runs outside a test (AE_CHECK_PROGRAM_RUN) */
        exit(1);
    }
    memcpy(fake_model.weights_hash, fake_pack_weights.hash, AE_HASH_BYTES);
}

/* ---- The pack -------------------------------------------------------------------------------------- */

static const char chatml_jinja[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* The metadata GGUF: stories260K's tokenizer.* keys, a name, and the chat template (when not NULL). */
static char *meta_build(const char *chat_template, size_t *size)
{
    ae_error err = { { 0 } };
    ae_gguf *src;
    ck_assert_msg(ae_gguf_open(&src, test_shared_path("models/stories260K.gguf"), &err) == 0, "%s", err.msg);
    ae_gguf_writer *w = ae_gguf_writer_create();
    ck_assert(w != NULL);
    ae_gguf_writer_add_str(w, "general.architecture", "llama");
    ae_gguf_writer_add_str(w, "general.name", "fake-stories");
    int copied = 0;
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const struct ae_gguf_kv *kv = &src->kv[i];
        if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
            ae_gguf_writer_add_value(w, key, &kv->value);
            copied++;
        }
    }
    ck_assert_msg(copied >= 5, "stories260K.gguf has only %d tokenizer keys", copied);
    if (chat_template)
        ae_gguf_writer_add_str(w, "tokenizer.chat_template", chat_template);
    char *meta = NULL;
    size_t meta_size = 0;
    FILE *f = open_memstream(&meta, &meta_size);
    ck_assert(f != NULL);
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert(fclose(f) == 0);
    ae_gguf_writer_destroy(w);
    ae_gguf_close(src);
    *size = meta_size;
    return meta;
}

/* A pack with the fake weights, in a page-aligned buffer (free with free). */
static uint8_t *pack_build(const char *chat_template, size_t *size)
{
    ae_error err = { { 0 } };
    size_t meta_size;
    char *meta = meta_build(chat_template, &meta_size);
    char *bytes = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&bytes, &n);
    ck_assert(f != NULL);
    ck_assert_msg(ae_pack_write(f, meta, meta_size, &fake_pack_weights, &err) == 0, "%s", err.msg);
    ck_assert(fclose(f) == 0);
    uint8_t *aligned = aligned_alloc(AE_PACK_ALIGN, (n + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN);
    ck_assert(aligned != NULL);
    memcpy(aligned, bytes, n);
    free(bytes);
    free(meta);
    *size = n;
    return aligned;
}

/* ---- Per-test state -------------------------------------------------------------------------------- */

static uint8_t *pack;
static size_t pack_size;
static ae_tokenizer *tok;
static char log_path[64];

static void setup(void)
{
    ae_error err = { { 0 } };
    fake_init();
    pack = pack_build(chatml_jinja, &pack_size);
    ae_program_set_pack(pack, pack_size);
    ae_gguf *g;
    ck_assert_msg(ae_gguf_open(&g, test_shared_path("models/stories260K.gguf"), &err) == 0, "%s", err.msg);
    ck_assert_msg(ae_tokenizer_load(&tok, g, &err) == 0, "%s", err.msg);
    ae_gguf_close(g);
    ck_assert_int_eq(ae_tokenizer_n_vocab(tok), FAKE_VOCAB);
    ck_assert_int_eq(ae_tokenizer_eos(tok), FAKE_EOS);
    ck_assert_int_eq(ae_token_find(tok, "<0xE2>", 6), FAKE_BYTE(0xE2));
    ck_assert_int_eq(ae_token_find(tok, "<0xAC>", 6), FAKE_BYTE(0xAC));
    snprintf(log_path, sizeof log_path, "/tmp/check_program_log_XXXXXX");
    int fd = mkstemp(log_path);
    ck_assert(fd >= 0);
    close(fd);
    fake_log_path = log_path;
}

static void teardown(void)
{
    ae_program_set_pack(NULL, 0);
    free(pack);
    ae_tokenizer_free(tok);
    unlink(log_path);
}

/* ---- Running the program --------------------------------------------------------------------------- */

struct run {
    int status;   /* the exit status; 1000 + the signal when killed */
    char *out;    /* stdout, NUL-terminated */
    size_t out_len;
    char *err;    /* stderr, NUL-terminated */
};

static char *read_fd_all(int fd, size_t *len)
{
    off_t end = lseek(fd, 0, SEEK_END);
    ck_assert(end >= 0);
    char *buf = malloc((size_t)end + 1);
    ck_assert(buf != NULL);
    ck_assert(pread(fd, buf, (size_t)end, 0) == (ssize_t)end);
    buf[end] = 0;
    if (len)
        *len = (size_t)end;
    return buf;
}

static int argv_count(const char *const *args)
{
    int n = 0;
    while (args[n])
        n++;
    return n;
}

static int wait_status(pid_t pid)
{
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

/* Runs ae_program_main(args) in a child with stdin from the text given (or empty). The fake model's
 * log starts empty. */
static struct run run_in(const char *stdin_text, const char *const *args)
{
    int fo = memfd_create("stdout", 0), fe = memfd_create("stderr", 0), fi = memfd_create("stdin", 0);
    ck_assert(fo >= 0 && fe >= 0 && fi >= 0);
    if (stdin_text)
        ck_assert(write(fi, stdin_text, strlen(stdin_text)) == (ssize_t)strlen(stdin_text));
    lseek(fi, 0, SEEK_SET);
    ck_assert(truncate(log_path, 0) == 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        char *argv[64];
        int argc = argv_count(args);
        for (int i = 0; i <= argc; i++)
            argv[i] = (char *)args[i];
        exit(ae_program_main(argc, argv, &fake_model));
    }
    struct run r = { .status = wait_status(pid) };
    r.out = read_fd_all(fo, &r.out_len);
    r.err = read_fd_all(fe, NULL);
    close(fo);
    close(fe);
    close(fi);
    return r;
}

static struct run run_args(const char *const *args)
{
    return run_in(NULL, args);
}

#define RUN(...) run_args((const char *const[]){ "fake_run", __VA_ARGS__, NULL })

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void expect_ok(const struct run *r)
{
    ck_assert_msg(r->status == 0, "exit %d, stderr: %s", r->status, r->err);
}

/* The ids printed by --print-ids. */
static int32_t parse_ids(const char *s, int32_t *ids, int32_t cap)
{
    int32_t n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        ck_assert_msg(end != s && *end == '\n', "bad --print-ids output near '%.20s'", s);
        ck_assert(n < cap);
        ids[n++] = (int32_t)v;
        s = end + 1;
    }
    return n;
}

/* The fake model's log: one line per forward call. */
struct fwd {
    int32_t pos, n;
    int threads;
    char kv[4];
    int32_t tokens[FAKE_T_MAX];
};

static int read_log(struct fwd *out, int cap)
{
    FILE *f = fopen(log_path, "r");
    ck_assert(f != NULL);
    int n = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        ck_assert(n < cap);
        struct fwd *w = &out[n++];
        int used;
        ck_assert(sscanf(line, "%" SCNd32 " %" SCNd32 " %d %3s%n", &w->pos, &w->n, &w->threads, w->kv, &used) == 4);
        const char *s = line + used;
        for (int32_t j = 0; j < w->n; j++) {
            int k;
            ck_assert(sscanf(s, " %" SCNd32 "%n", &w->tokens[j], &k) == 1);
            s += k;
        }
    }
    fclose(f);
    return n;
}

/* ---- Predictions ----------------------------------------------------------------------------------- */

enum sim_stop { SIM_LIMIT, SIM_EOG, SIM_CTX };

/* What greedy generation after prompt gives: the ids printed (EOG excluded), as ae_prog_generate
 * produces them; n_predict < 0 is unlimited. */
static int32_t sim_generate(const int32_t *prompt, int32_t n_prompt, int32_t n_predict, int32_t n_ctx, int32_t *out,
                            enum sim_stop *why)
{
    int32_t last = prompt[n_prompt - 1], pos = n_prompt - 1, k = 0;
    *why = SIM_LIMIT;
    for (int32_t i = 0; n_predict < 0 || i < n_predict; i++) {
        int32_t t = fake_next(last, pos);
        if (ae_tokenizer_is_eog(tok, t)) {
            *why = SIM_EOG;
            break;
        }
        out[k++] = t;
        if (n_predict >= 0 && i + 1 == n_predict)
            break;
        if (pos + 1 >= n_ctx) {
            *why = SIM_CTX;
            break;
        }
        last = t;
        pos++;
    }
    return k;
}

static char *detok(const int32_t *ids, int32_t n)
{
    ae_error err = { { 0 } };
    size_t len = 0;
    ae_detokenize(tok, ids, (size_t)n, false, false, NULL, 0, &len, &err);
    char *s = malloc(len + 1);
    ck_assert(s != NULL);
    ck_assert_msg(ae_detokenize(tok, ids, (size_t)n, false, false, s, len + 1, &len, &err) == 0, "%s", err.msg);
    s[len] = 0;
    return s;
}

static int32_t tokenize(const char *text, bool add_special, int32_t *out, int32_t cap)
{
    ae_error err = { { 0 } };
    size_t n;
    ck_assert_msg(ae_tokenize(tok, text, strlen(text), add_special, true, out, (size_t)cap, &n, &err) == 0, "%s",
                  err.msg);
    return (int32_t)n;
}

/* "1,2,3" */
static void ids_arg(const int32_t *ids, int32_t n, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int32_t i = 0; i < n; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId32, i ? "," : "", ids[i]);
    ck_assert(k < cap);
}

/* ---- One-shot generation --------------------------------------------------------------------------- */

/* Bytes fed in pieces of odd sizes, as aetherc feeds a blob from its sources. */
static void read_in_pieces(void *ctx, uint64_t off, uint64_t n, void (*update)(void *state, const void *p, uint64_t n),
                           void *state)
{
    const uint8_t *data = ctx;
    static const uint64_t cuts[] = { 1, 7, 64, 0, 333, 4096 };
    for (size_t k = 0; n > 0; k++) {
        uint64_t c = cuts[k % 6] < n ? cuts[k % 6] : n;
        update(state, data + off, c);
        off += c;
        n -= c;
    }
}

/* The weights' hash: the same from contiguous bytes and from pieces, on 1 thread and on 3, with chunks
 * that do not divide the size; BLAKE2b-256 of the chunk itself (the empty input's hash is the known
 * one); and every byte counts. */
START_TEST(test_hash_chunks)
{
    enum { SIZE = 70001, CHUNK = 4096 };
    uint8_t *data = malloc(SIZE);
    ck_assert(data != NULL);
    for (size_t i = 0; i < SIZE; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 9));
    uint64_t n = ae_hash_n_chunks(SIZE, CHUNK);
    ck_assert_uint_eq(n, 18);
    uint8_t (*a)[AE_HASH_BYTES] = malloc(n * AE_HASH_BYTES), (*b)[AE_HASH_BYTES] = malloc(n * AE_HASH_BYTES);
    ck_assert(a && b);
    struct ae_hash_source whole = { .size = SIZE, .data = data };
    struct ae_hash_source pieces = { .size = SIZE, .read = read_in_pieces, .ctx = data };
    ae_hash_chunks(&whole, CHUNK, a, 1, NULL);
    ae_hash_chunks(&pieces, CHUNK, b, 3, NULL);
    ck_assert(memcmp(a, b, n * AE_HASH_BYTES) == 0);
    uint8_t root[AE_HASH_BYTES], again[AE_HASH_BYTES];
    ae_hash_root(SIZE, CHUNK, (const uint8_t (*)[AE_HASH_BYTES])a, n, root);
    data[SIZE - 1] ^= 1;
    ae_hash_chunks(&whole, CHUNK, b, 2, NULL);
    ae_hash_root(SIZE, CHUNK, (const uint8_t (*)[AE_HASH_BYTES])b, n, again);
    ck_assert(memcmp(root, again, AE_HASH_BYTES) != 0);
    ck_assert(memcmp(a, b, (n - 1) * AE_HASH_BYTES) == 0 && memcmp(a[n - 1], b[n - 1], AE_HASH_BYTES) != 0);
    /* BLAKE2b-256 of nothing */
    struct ae_hash_source empty = { .size = 0, .data = data };
    uint8_t h[AE_HASH_BYTES];
    char hex[2 * AE_HASH_BYTES + 1];
    ae_hash_chunk(&empty, CHUNK, 0, h);
    ae_hash_hex(h, hex);
    ck_assert_str_eq(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    free(a);
    free(b);
    free(data);
}
END_TEST

START_TEST(test_tokens_print_ids)
{
    const int32_t prompt[] = { 1, 300, 301 };
    int32_t expect[64], got[64];
    enum sim_stop why;
    int32_t n_expect = sim_generate(prompt, 3, 10, FAKE_CTX_TRAIN, expect, &why);
    ck_assert_int_eq(n_expect, 10);

    struct run r = RUN("--tokens", "1, 300,301", "-n", "10", "--temp", "0", "--print-ids");
    expect_ok(&r);
    int32_t n = parse_ids(r.out, got, 64);
    ck_assert_int_eq(n, n_expect);
    for (int32_t i = 0; i < n; i++)
        ck_assert_int_eq(got[i], expect[i]);

    /* the prompt in one step at 0, then each generated token but the last, one at a time */
    struct fwd log[64];
    int n_log = read_log(log, 64);
    ck_assert_int_eq(n_log, 1 + 9);
    ck_assert_int_eq(log[0].pos, 0);
    ck_assert_int_eq(log[0].n, 3);
    ck_assert_str_eq(log[0].kv, "f16");
    for (int j = 0; j < 3; j++)
        ck_assert_int_eq(log[0].tokens[j], prompt[j]);
    for (int i = 1; i < n_log; i++) {
        ck_assert_int_eq(log[i].pos, 2 + i);
        ck_assert_int_eq(log[i].n, 1);
        ck_assert_int_eq(log[i].tokens[0], expect[i - 1]);
    }
    run_free(&r);
}
END_TEST

START_TEST(test_prompt_text)
{
    const char *text = "Once upon a time <s> there";
    int32_t ids[64], expect[64], got[64];
    int32_t n_ids = tokenize(text, true, ids, 64);
    ck_assert_int_eq(ids[0], ae_tokenizer_bos(tok));
    ck_assert_int_ge(n_ids, 4);
    enum sim_stop why;
    int32_t n_expect = sim_generate(ids, n_ids, 6, FAKE_CTX_TRAIN, expect, &why);

    struct run r = RUN("-p", text, "-n", "6", "--temp", "0", "--print-ids");
    expect_ok(&r);
    ck_assert_int_eq(parse_ids(r.out, got, 64), n_expect);
    for (int32_t i = 0; i < n_expect; i++)
        ck_assert_int_eq(got[i], expect[i]);
    /* the prompt the model saw: add_special and parse_special, as llama.cpp tokenizes -p */
    struct fwd log[64];
    int n_log = read_log(log, 64);
    int32_t fed = 0;
    for (int i = 0; i < n_log && fed < n_ids; i++) {
        ck_assert_int_eq(log[i].pos, fed);
        for (int32_t j = 0; j < log[i].n; j++)
            ck_assert_int_eq(log[i].tokens[j], ids[fed + j]);
        fed += log[i].n;
    }
    ck_assert_int_eq(fed, n_ids);
    run_free(&r);

    /* --no-bos: the same text without BOS */
    r = RUN("-p", text, "-n", "1", "--temp", "0", "--no-bos");
    expect_ok(&r);
    n_log = read_log(log, 64);
    ck_assert_int_ge(n_log, 1);
    ck_assert_int_eq(log[0].tokens[0], ids[1]);
    run_free(&r);

    /* no prompt at all: BOS alone */
    r = RUN("-n", "2", "--temp", "0");
    expect_ok(&r);
    n_log = read_log(log, 64);
    ck_assert_int_eq(log[0].n, 1);
    ck_assert_int_eq(log[0].tokens[0], ae_tokenizer_bos(tok));
    run_free(&r);
}
END_TEST

/* Text output is the detokenized generated ids, whatever tokens the stream had to split or hold. */
START_TEST(test_text_equals_detokenize)
{
    static const int32_t prompts[][3] = {
        { 1, 300, 301 },
        { 1, 300, FAKE_EURO_AFTER }, /* starts with the euro sign's three byte tokens */
        { 1, 350, 260 },
        { 1, 2, 511 },
    };
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        int32_t expect[64];
        enum sim_stop why;
        int32_t n_expect = sim_generate(prompts[p], 3, 20, FAKE_CTX_TRAIN, expect, &why);
        char *text = detok(expect, n_expect);
        char arg[64];
        ids_arg(prompts[p], 3, arg, sizeof arg);
        struct run r = RUN("--tokens", arg, "-n", "20", "--temp", "0");
        expect_ok(&r);
        ck_assert_msg(strcmp(r.out, text) == 0, "prompt %zu: printed '%s', detokenized '%s'", p, r.out, text);
        ck_assert_msg(ae_utf8_valid(r.out, r.out_len), "prompt %zu: output is not valid UTF-8", p);
        if (p == 1)
            ck_assert_msg(strncmp(r.out, "\xE2\x82\xAC", 3) == 0, "the euro sign is missing: '%s'", r.out);
        free(text);
        run_free(&r);
    }
}
END_TEST

START_TEST(test_deterministic_across_threads)
{
    const char *const greedy[] = { "--tokens", "1,300,301", "-n", "30", "--temp", "0", "--print-ids" };
    const char *const sampled[] = { "--tokens", "1,300,301", "-n", "30", "--temp", "1.5", "--top-k", "0",
                                    "--top-p", "1", "--min-p", "0", "--seed", "1234", "--print-ids" };
    struct {
        const char *const *args;
        int n;
    } cases[] = { { greedy, 7 }, { sampled, 15 } };
    for (int c = 0; c < 2; c++) {
        char *outs[3];
        const char *threads[3] = { "1", "2", "2" };
        for (int k = 0; k < 3; k++) {
            const char *argv[32] = { "fake_run" };
            int n = 1;
            for (int i = 0; i < cases[c].n; i++)
                argv[n++] = cases[c].args[i];
            argv[n++] = "-t";
            argv[n++] = threads[k];
            argv[n] = NULL;
            struct run r = run_args(argv);
            expect_ok(&r);
            struct fwd log[64];
            ck_assert_int_ge(read_log(log, 64), 1);
            ck_assert_int_eq(log[0].threads, atoi(threads[k]));
            outs[k] = r.out;
            free(r.err);
        }
        ck_assert_str_eq(outs[0], outs[1]);
        ck_assert_str_eq(outs[1], outs[2]);
        if (c == 1) {
            /* sampling at temperature 1.5 over a flat tail strays from the greedy path */
            int32_t ids[64], expect[64];
            enum sim_stop why;
            const int32_t prompt[] = { 1, 300, 301 };
            int32_t n = parse_ids(outs[0], ids, 64), n_expect = sim_generate(prompt, 3, 30, FAKE_CTX_TRAIN, expect, &why);
            ck_assert(n != n_expect || memcmp(ids, expect, (size_t)n * sizeof *ids) != 0);
        }
        for (int k = 0; k < 3; k++)
            free(outs[k]);
    }
}
END_TEST

START_TEST(test_dump_logits)
{
    char path[] = "/tmp/check_program_logits_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    struct run r = RUN("--tokens", "1,300,301,302", "-n", "0", "--dump-logits", path);
    expect_ok(&r);
    ck_assert_uint_eq(r.out_len, 0);
    size_t size;
    float *l = test_read_file(path, &size);
    ck_assert_uint_eq(size, FAKE_VOCAB * sizeof(float));
    int32_t best = 0;
    for (int32_t i = 1; i < FAKE_VOCAB; i++)
        if (l[i] > l[best])
            best = i;
    ck_assert_int_eq(best, fake_next(302, 3));
    ck_assert(l[best] == 4.0f);
    free(l);
    unlink(path);
    run_free(&r);
}
END_TEST

START_TEST(test_stop_string)
{
    const int32_t prompt[] = { 1, 300, 301 };
    int32_t expect[64];
    enum sim_stop why;
    int32_t n_expect = sim_generate(prompt, 3, 30, FAKE_CTX_TRAIN, expect, &why);
    char *text = detok(expect, n_expect);
    size_t len = strlen(text);
    ck_assert_uint_ge(len, 20);
    /* a stop string from the middle of the text, spanning whatever pieces it spans */
    char stop[8];
    memcpy(stop, text + len / 2, 5);
    stop[5] = 0;
    size_t cut = (size_t)(strstr(text, stop) - text);

    struct run r = RUN("--tokens", "1,300,301", "-n", "30", "--temp", "0", "--stop", stop, "--stop", "never seen");
    expect_ok(&r);
    ck_assert_uint_eq(r.out_len, cut);
    ck_assert(memcmp(r.out, text, cut) == 0);
    run_free(&r);

    /* the generation stopped there: fewer steps than 30 tokens would take */
    struct fwd log[64];
    ck_assert_int_lt(read_log(log, 64), 30);
    free(text);
}
END_TEST

START_TEST(test_eos_stops)
{
    /* a prompt whose greedy continuation reaches EOS after a few tokens */
    int32_t prompt[2] = { 1, 0 }, expect[256];
    enum sim_stop why = SIM_LIMIT;
    int32_t n_expect = 0;
    for (int32_t t = FAKE_FIRST_WORD; t < FAKE_VOCAB; t++) {
        prompt[1] = t;
        n_expect = sim_generate(prompt, 2, 100, FAKE_CTX_TRAIN, expect, &why);
        if (why == SIM_EOG && n_expect >= 3)
            break;
    }
    ck_assert_msg(why == SIM_EOG && n_expect >= 3, "no prompt reaches EOS");
    char arg[64];
    ids_arg(prompt, 2, arg, sizeof arg);
    struct run r = RUN("--tokens", arg, "-n", "100", "--temp", "0", "--print-ids");
    expect_ok(&r);
    int32_t got[256];
    ck_assert_int_eq(parse_ids(r.out, got, 256), n_expect);
    for (int32_t i = 0; i < n_expect; i++)
        ck_assert_int_eq(got[i], expect[i]);
    ck_assert_int_eq(expect[n_expect - 1], FAKE_EOS_AFTER);
    run_free(&r);

    r = RUN("--tokens", arg, "-n", "100", "--temp", "0");
    expect_ok(&r);
    char *text = detok(expect, n_expect);
    ck_assert_str_eq(r.out, text);
    free(text);
    run_free(&r);
}
END_TEST

START_TEST(test_prompt_chunks)
{
    /* 20 prompt tokens through t_max = 8: steps of 8, 8 and 4, then one token at a time */
    int32_t prompt[20];
    prompt[0] = 1;
    for (int i = 1; i < 20; i++)
        prompt[i] = 260 + i * 11;
    char arg[256];
    ids_arg(prompt, 20, arg, sizeof arg);
    struct run r = RUN("--tokens", arg, "-n", "3", "--temp", "0", "--kv", "f32", "--print-ids");
    expect_ok(&r);
    struct fwd log[64];
    int n_log = read_log(log, 64);
    static const int32_t want[][2] = { { 0, 8 }, { 8, 8 }, { 16, 4 }, { 20, 1 }, { 21, 1 } };
    ck_assert_int_eq(n_log, 5);
    for (int i = 0; i < n_log; i++) {
        ck_assert_int_eq(log[i].pos, want[i][0]);
        ck_assert_int_eq(log[i].n, want[i][1]);
        ck_assert_str_eq(log[i].kv, "f32");
    }
    for (int i = 0; i < 3; i++)
        for (int32_t j = 0; j < log[i].n; j++)
            ck_assert_int_eq(log[i].tokens[j], prompt[log[i].pos + j]);
    int32_t expect[8], got[8];
    enum sim_stop why;
    ck_assert_int_eq(sim_generate(prompt, 20, 3, FAKE_CTX_TRAIN, expect, &why), 3);
    ck_assert_int_eq(parse_ids(r.out, got, 8), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(got[i], expect[i]);
    run_free(&r);
}
END_TEST

START_TEST(test_context_overflow)
{
    fake_never_eos = true;
    int32_t prompt[20];
    prompt[0] = 1;
    for (int i = 1; i < 20; i++)
        prompt[i] = 260 + i * 13;
    char arg[256];

    /* 10 prompt tokens in a context of 16: 7 tokens, the last one sampled from a full cache */
    ids_arg(prompt, 10, arg, sizeof arg);
    struct run r = RUN("--tokens", arg, "-n", "100", "--temp", "0", "--ctx", "16", "--print-ids");
    expect_ok(&r);
    int32_t got[64], expect[64];
    enum sim_stop why;
    int32_t n_expect = sim_generate(prompt, 10, 100, 16, expect, &why);
    ck_assert_int_eq(why, SIM_CTX);
    ck_assert_int_eq(n_expect, 7);
    ck_assert_int_eq(parse_ids(r.out, got, 64), 7);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(got[i], expect[i]);
    ck_assert_msg(strstr(r.err, "context is full (16 tokens)"), "stderr: %s", r.err);
    struct fwd log[64];
    int n_log = read_log(log, 64);
    ck_assert_int_eq(log[n_log - 1].pos, 15);
    run_free(&r);

    /* -n -1: until the context is full */
    r = RUN("--tokens", arg, "-n", "-1", "--temp", "0", "--ctx", "16", "--print-ids");
    expect_ok(&r);
    ck_assert_int_eq(parse_ids(r.out, got, 64), 7);
    run_free(&r);

    /* a prompt that does not fit is refused before anything runs */
    ids_arg(prompt, 20, arg, sizeof arg);
    r = RUN("--tokens", arg, "--ctx", "16");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "prompt is 20 tokens") && strstr(r.err, "16"), "stderr: %s", r.err);
    ck_assert_int_eq(read_log(log, 64), 0);
    run_free(&r);

    char longtext[400];
    memset(longtext, 0, sizeof longtext);
    for (int i = 0; i < 60; i++)
        strcat(longtext, "tree ");
    r = RUN("-p", longtext, "--ctx", "16");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "more than the context holds (16"), "stderr: %s", r.err);
    run_free(&r);
}
END_TEST

/* ---- --info, --verify, --help, bad flags ----------------------------------------------------------- */

START_TEST(test_info)
{
    struct run r = RUN("--info", "-t", "1");
    expect_ok(&r);
    ck_assert_msg(strstr(r.out, "fake-stories (llama)"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "fake model for check_program"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "arena: 1000 bytes"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "scratch: 356 bytes"), "%s", r.out); /* (100 + 256) x 1 thread */
    /* 2 layers x 256 positions x 2 heads x (8 + 4) dims x 2 bytes */
    ck_assert_msg(strstr(r.out, "KV cache: 24576 bytes") && strstr(r.out, "256 tokens, f16"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "weights: 8192 bytes"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "weights pack: in memory"), "%s", r.out);
    run_free(&r);

    r = RUN("--info", "--ctx", "100", "--kv", "f32");
    expect_ok(&r);
    ck_assert_msg(strstr(r.out, "KV cache: 19200 bytes") && strstr(r.out, "100 tokens, f32"), "%s", r.out);
    run_free(&r);
}
END_TEST

START_TEST(test_verify)
{
    struct run r = RUN("--verify");
    expect_ok(&r);
    ck_assert_msg(strstr(r.out, "weights OK"), "%s", r.out);
    run_free(&r);

    /* one flipped weight byte in a copy of the pack */
    uint8_t *bad = aligned_alloc(AE_PACK_ALIGN, (pack_size + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN);
    ck_assert(bad != NULL);
    memcpy(bad, pack, pack_size);
    struct ae_pack_header h;
    memcpy(&h, bad, sizeof h);
    bad[h.weights_offset + 1234] ^= 0x10;
    ae_program_set_pack(bad, pack_size);
    r = RUN("--verify");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.out, "MISMATCH"), "%s", r.out);
    run_free(&r);
    ae_program_set_pack(pack, pack_size);
    free(bad);
}
END_TEST

START_TEST(test_help)
{
    struct run r = RUN("--help");
    expect_ok(&r);
    ck_assert_msg(strstr(r.out, "usage:") && strstr(r.out, "--dump-logits") && strstr(r.out, "chatml"), "%s", r.out);
    run_free(&r);
}
END_TEST

static const struct {
    const char *args[6];
    const char *says; /* in stderr */
} bad_flag_rows[] = {
    { { "--bogus" }, "unknown flag '--bogus'" },
    { { "--temp", "hot" }, "--temp" },
    { { "--temp", "-1" }, "--temp" },
    { { "-n" }, "-n: expects N" },
    { { "-n", "-2" }, "-n" },
    { { "--tokens", "1,x,3" }, "item 2 ('x')" },
    { { "--tokens", "1,600" }, "id 600 is outside the vocabulary" },
    { { "--tokens", "" }, "--tokens" },
    { { "--kv", "f8" }, "--kv: expected f16 or f32" },
    { { "--ctx", "0" }, "--ctx" },
    { { "--ctx", "257" }, "--ctx" },
    { { "-t", "0" }, "-t" },
    { { "--top-p", "1.5" }, "--top-p" },
    { { "--repeat-penalty", "0" }, "--repeat-penalty" },
    { { "--seed", "abc" }, "--seed" },
    { { "--stop", "" }, "--stop" },
    { { "-p", "a", "--tokens", "1" }, "-p and --tokens" },
    { { "--system", "be nice" }, "--system" },
    { { "--chat", "-p", "x" }, "--chat" },
    { { "--chat-template", "nope", "--chat" }, "--chat-template" },
    { { "--print-ids=yes" }, "--print-ids: takes no value" },
    { { "stray" }, "unexpected argument 'stray'" },
};

START_TEST(test_bad_flags)
{
    const char *argv[8] = { "fake_run" };
    int n = 1;
    for (int i = 0; i < 6 && bad_flag_rows[_i].args[i]; i++)
        argv[n++] = bad_flag_rows[_i].args[i];
    argv[n] = NULL;
    struct run r = run_args(argv);
    ck_assert_msg(r.status == 2, "%s: exit %d", bad_flag_rows[_i].args[0], r.status);
    ck_assert_msg(strstr(r.err, bad_flag_rows[_i].says), "%s: stderr lacks '%s': %s", bad_flag_rows[_i].args[0],
                  bad_flag_rows[_i].says, r.err);
    ck_assert_msg(!strstr(r.err, "usage:") && strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
                  "not one line: %s", r.err);
    ck_assert_uint_eq(r.out_len, 0);
    run_free(&r);
}
END_TEST

START_TEST(test_flag_forms)
{
    /* --flag=VALUE, aliases */
    struct run r = RUN("--tokens=1,300,301", "--n-predict=4", "--temp=0", "--threads", "2", "-c", "64",
                       "--repeat-last-n", "-1", "--repeat-penalty", "1.0", "--seed", "5", "--print-ids");
    expect_ok(&r);
    int32_t got[8];
    ck_assert_int_eq(parse_ids(r.out, got, 8), 4);
    run_free(&r);
}
END_TEST

/* ---- Finding the pack ------------------------------------------------------------------------------ */

START_TEST(test_pack_errors)
{
    /* none set, none appended to this test binary, no "<exe>.weights" */
    ae_program_set_pack(NULL, 0);
    struct run r = RUN("--tokens", "1");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "no weights pack") && strstr(r.err, ".weights"), "stderr: %s", r.err);
    run_free(&r);

    /* a pack with a bad magic */
    uint8_t *bad = malloc(pack_size);
    ck_assert(bad != NULL);
    memcpy(bad, pack, pack_size);
    bad[0] = 'X';
    ae_program_set_pack(bad, pack_size);
    r = RUN("--tokens", "1");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "bad magic"), "stderr: %s", r.err);
    run_free(&r);
    free(bad);

    /* a pack from another build: its checksum is not the program's */
    ae_program_set_pack(pack, pack_size);
    fake_model.weights_hash[0] ^= 1;
    r = RUN("--tokens", "1");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "does not belong to this program"), "stderr: %s", r.err);
    run_free(&r);
    fake_model.weights_hash[0] ^= 1;

    /* a pack whose metadata has no tokenizer */
    ae_error err = { { 0 } };
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_gguf_writer_add_str(w, "general.name", "no tokenizer");
    char *meta = NULL, *bytes = NULL;
    size_t meta_size = 0, n = 0;
    FILE *f = open_memstream(&meta, &meta_size);
    ck_assert(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0);
    fclose(f);
    ae_gguf_writer_destroy(w);
    f = open_memstream(&bytes, &n);
    ck_assert(ae_pack_write(f, meta, meta_size, &fake_pack_weights, &err) == 0);
    fclose(f);
    uint8_t *aligned = aligned_alloc(AE_PACK_ALIGN, (n + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN);
    memcpy(aligned, bytes, n);
    ae_program_set_pack(aligned, n);
    r = RUN("--tokens", "1");
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "tokenizer"), "stderr: %s", r.err);
    run_free(&r);
    ae_program_set_pack(pack, pack_size);
    free(aligned);
    free(bytes);
    free(meta);
}
END_TEST

static void self_exe(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    ck_assert(n > 0);
    buf[n] = 0;
}

START_TEST(test_pack_beside_executable)
{
    char path[4200];
    self_exe(path, 4096);
    strcat(path, ".weights");
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(pack, 1, pack_size, f) == pack_size);
    ck_assert(fclose(f) == 0);
    ae_program_set_pack(NULL, 0);

    struct run r = RUN("--tokens", "1,300,301", "-n", "5", "--temp", "0", "--print-ids");
    struct run v = RUN("--verify");
    unlink(path);
    expect_ok(&r);
    int32_t got[8];
    ck_assert_int_eq(parse_ids(r.out, got, 8), 5);
    expect_ok(&v);
    ck_assert_msg(strstr(v.out, "OK") && strstr(v.out, ".weights"), "%s", v.out);
    run_free(&r);
    run_free(&v);
}
END_TEST

START_TEST(test_pack_appended_to_executable)
{
    /* a copy of this binary with the pack appended runs as a compiled model program */
    char self[4096], copy[] = "/tmp/check_program_exe_XXXXXX";
    self_exe(self, sizeof self);
    size_t size;
    void *exe = test_read_file(self, &size);
    int fd = mkstemp(copy);
    ck_assert(fd >= 0);
    ck_assert(write(fd, exe, size) == (ssize_t)size);
    ck_assert(fchmod(fd, 0700) == 0);
    close(fd);
    free(exe);
    ae_error err = { { 0 } };
    size_t meta_size;
    char *meta = meta_build(chatml_jinja, &meta_size);
    ck_assert_msg(ae_pack_append(copy, meta, meta_size, &fake_pack_weights, &err) == 0, "%s", err.msg);
    free(meta);

    const char *modes[2][10] = {
        { copy, "--tokens", "1,300,301", "-n", "5", "--temp", "0", "--print-ids", NULL },
        { copy, "--verify", NULL },
    };
    for (int m = 0; m < 2; m++) {
        int fo = memfd_create("stdout", 0), fe = memfd_create("stderr", 0);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert(pid >= 0);
        if (pid == 0) {
            dup2(fo, 1);
            dup2(fe, 2);
            setenv("AE_CHECK_PROGRAM_RUN", "1", 1);
            execv(copy, (char *const *)modes[m]);
            _exit(127);
        }
        int status = wait_status(pid);
        char *out = read_fd_all(fo, NULL), *errs = read_fd_all(fe, NULL);
        ck_assert_msg(status == 0, "exit %d: %s", status, errs);
        if (m == 0) {
            int32_t got[8], expect[8];
            const int32_t prompt[] = { 1, 300, 301 };
            enum sim_stop why;
            ck_assert_int_eq(sim_generate(prompt, 3, 5, FAKE_CTX_TRAIN, expect, &why), 5);
            ck_assert_int_eq(parse_ids(out, got, 8), 5);
            for (int i = 0; i < 5; i++)
                ck_assert_int_eq(got[i], expect[i]);
        } else {
            ck_assert_msg(strstr(out, "OK") && strstr(out, "appended to"), "%s", out);
        }
        free(out);
        free(errs);
        close(fo);
        close(fe);
    }
    unlink(copy);
}
END_TEST

/* ---- Chat ------------------------------------------------------------------------------------------ */

/* What a chat should do, turn by turn: the tokens in the cache and the forward calls expected. */
struct chat_sim {
    int32_t hist[FAKE_CTX_TRAIN];
    int32_t n_hist;
    struct fwd expect[FAKE_LOG_MAX];
    int n_expect;
    struct ae_chat_message msgs[16];
    char *owned[16];
    size_t n_msgs;
};

static void chat_sim_add(struct chat_sim *cs, const char *role, const char *content)
{
    ck_assert(cs->n_msgs < 16);
    cs->owned[cs->n_msgs] = strdup(content);
    cs->msgs[cs->n_msgs] = (struct ae_chat_message){ role, cs->owned[cs->n_msgs] };
    cs->n_msgs++;
}

static void chat_sim_free(struct chat_sim *cs)
{
    for (size_t i = 0; i < cs->n_msgs; i++)
        free(cs->owned[i]);
    cs->n_msgs = 0;
}

static void chat_sim_expect(struct chat_sim *cs, int32_t pos, int32_t n)
{
    ck_assert(cs->n_expect < FAKE_LOG_MAX);
    cs->expect[cs->n_expect++] = (struct fwd){ .pos = pos, .n = n };
}

/* A user turn with greedy answers of at most n_predict tokens; returns the answer (malloc'd) and the
 * position the turn starts feeding at. */
static char *chat_sim_turn(struct chat_sim *cs, const char *user, int32_t n_predict, int32_t *first_pos)
{
    chat_sim_add(cs, "user", user);
    char text[8192];
    size_t len = ae_chat_format(AE_CHAT_CHATML, cs->msgs, cs->n_msgs, true, text, sizeof text);
    ck_assert(len < sizeof text);
    int32_t ids[FAKE_CTX_TRAIN];
    int32_t n = tokenize(text, true, ids, FAKE_CTX_TRAIN);
    int32_t k = 0;
    while (k < n && k < cs->n_hist && ids[k] == cs->hist[k])
        k++;
    if (k == n)
        k--;
    *first_pos = k;
    for (int32_t p = k; p < n; p += FAKE_T_MAX)
        chat_sim_expect(cs, p, n - p < FAKE_T_MAX ? n - p : FAKE_T_MAX);
    memcpy(cs->hist, ids, (size_t)n * sizeof *ids);
    cs->n_hist = n;
    int32_t out[FAKE_CTX_TRAIN];
    enum sim_stop why;
    int32_t n_out = sim_generate(ids, n, n_predict, FAKE_CTX_TRAIN, out, &why);
    /* every printed token is fed back except the last when -n ends the answer */
    int32_t fed = why == SIM_LIMIT ? n_out - 1 : n_out;
    for (int32_t i = 0; i < fed; i++) {
        chat_sim_expect(cs, cs->n_hist, 1);
        cs->hist[cs->n_hist++] = out[i];
    }
    char *answer = detok(out, n_out);
    chat_sim_add(cs, "assistant", answer);
    return answer;
}

static void expect_log(const struct chat_sim *cs)
{
    struct fwd log[FAKE_LOG_MAX];
    int n = read_log(log, FAKE_LOG_MAX);
    ck_assert_int_eq(n, cs->n_expect);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(log[i].pos == cs->expect[i].pos && log[i].n == cs->expect[i].n,
                      "forward %d: (pos %d, n %d), expected (pos %d, n %d)", i, log[i].pos, log[i].n, cs->expect[i].pos,
                      cs->expect[i].n);
    }
}

START_TEST(test_chat_stdin)
{
    /* two turns, /clear, the first turn again, /exit; stdin is a file */
    struct chat_sim *cs = calloc(1, sizeof *cs);
    int32_t pos1, pos2, pos3;
    char *a1 = chat_sim_turn(cs, "Hello there", 12, &pos1);
    char *a2 = chat_sim_turn(cs, "Tell me more", 12, &pos2);
    chat_sim_free(cs);
    cs->n_hist = 0;
    char *a3 = chat_sim_turn(cs, "Hello there", 12, &pos3);
    ck_assert_int_eq(pos1, 0);
    ck_assert_int_gt(pos2, 10); /* the second turn reuses the cache */
    ck_assert_int_eq(pos3, 0);  /* /clear empties it */
    ck_assert_str_eq(a1, a3);

    struct run r = run_in("Hello there\nTell me more\n/clear\nHello there\n/exit\n",
                          (const char *const[]){ "fake_run", "--chat", "--temp", "0", "-n", "12", NULL });
    expect_ok(&r);
    char want[4096];
    snprintf(want, sizeof want, "> %s\n> %s\n> (conversation cleared)\n> %s\n> ", a1, a2, a3);
    ck_assert_str_eq(r.out, want);
    expect_log(cs);
    run_free(&r);

    /* end of input ends the chat too */
    r = run_in("Hello there\n", (const char *const[]){ "fake_run", "--chat", "--temp", "0", "-n", "12", NULL });
    expect_ok(&r);
    snprintf(want, sizeof want, "> %s\n> \n", a1);
    ck_assert_str_eq(r.out, want);
    run_free(&r);

    chat_sim_free(cs);
    free(cs);
    free(a1);
    free(a2);
    free(a3);
}
END_TEST

START_TEST(test_chat_system_and_template)
{
    /* --system goes first and stays after /clear */
    struct chat_sim *cs = calloc(1, sizeof *cs);
    chat_sim_add(cs, "system", "You are a storyteller");
    int32_t pos;
    char *a1 = chat_sim_turn(cs, "Hi", 8, &pos);
    struct run r = run_in("Hi\n", (const char *const[]){ "fake_run", "--chat", "--system", "You are a storyteller",
                                                          "--temp", "0", "-n", "8", NULL });
    expect_ok(&r);
    char want[2048];
    snprintf(want, sizeof want, "> %s\n> \n", a1);
    ck_assert_str_eq(r.out, want);
    expect_log(cs);
    run_free(&r);
    chat_sim_free(cs);
    free(cs);
    free(a1);

    /* a model template of no supported family is an error; --chat-template overrides it */
    free(pack);
    pack = pack_build("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", &pack_size);
    ae_program_set_pack(pack, pack_size);
    r = run_in("/exit\n", (const char *const[]){ "fake_run", "--chat", NULL });
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "chat template") && strstr(r.err, "--chat-template"), "stderr: %s", r.err);
    run_free(&r);
    r = run_in("/exit\n", (const char *const[]){ "fake_run", "--chat", "--chat-template", "llama2", NULL });
    expect_ok(&r);
    ck_assert_str_eq(r.out, "> ");
    run_free(&r);
}
END_TEST

/* A chat in a pseudo-terminal: canonical input with ISIG, so that \x03 is a SIGINT; no echo and no
 * output processing, so that the transcript is exactly what the program wrote. */
struct pty_run {
    pid_t pid;
    int fd;
    char buf[65536];
    size_t len;
};

static void pty_start(struct pty_run *p, const char *const *args)
{
    ck_assert(truncate(log_path, 0) == 0);
    fflush(NULL);
    p->len = 0;
    p->buf[0] = 0;
    p->pid = forkpty(&p->fd, NULL, NULL, NULL);
    ck_assert(p->pid >= 0);
    if (p->pid == 0) {
        struct termios t;
        tcgetattr(0, &t);
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHOCTL);
        t.c_lflag |= ICANON | ISIG | NOFLSH; /* no flush at Ctrl-C: the transcript stays whole */
        t.c_oflag &= ~(tcflag_t)OPOST;
        tcsetattr(0, TCSANOW, &t);
        char *argv[32];
        int argc = argv_count(args);
        for (int i = 0; i <= argc; i++)
            argv[i] = (char *)args[i];
        exit(ae_program_main(argc, argv, &fake_model));
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads until the transcript from offset `from` holds needle (or at least min_len bytes when needle is
 * NULL); false at timeout or when the child has gone. */
static bool pty_wait(struct pty_run *p, size_t from, const char *needle, size_t min_len, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    for (;;) {
        if (from <= p->len && (needle ? strstr(p->buf + from, needle) != NULL : p->len - from >= min_len))
            return true;
        double left = end - now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = { p->fd, POLLIN, 0 };
        int r = poll(&pfd, 1, (int)left + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t n = read(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (n <= 0)
            return false;
        p->len += (size_t)n;
        p->buf[p->len] = 0;
    }
}

static void pty_send(struct pty_run *p, const char *s)
{
    ck_assert(write(p->fd, s, strlen(s)) == (ssize_t)strlen(s));
}

/* Waits for the child (killing it after timeout_ms) and returns its status. */
static int pty_finish(struct pty_run *p, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    int st;
    pid_t w;
    while ((w = waitpid(p->pid, &st, WNOHANG)) == 0 && now_ms() < end) {
        pty_wait(p, p->len, "\x01never", 0, 20);
    }
    if (w == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
        close(p->fd);
        ck_abort_msg("the chat did not exit; transcript: %s", p->buf);
    }
    pty_wait(p, p->len, "\x01never", 0, 20);
    close(p->fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

START_TEST(test_chat_pty_two_turns)
{
    struct chat_sim *cs = calloc(1, sizeof *cs);
    int32_t pos1, pos2;
    char *a1 = chat_sim_turn(cs, "Hello there", 10, &pos1);
    char *a2 = chat_sim_turn(cs, "And then?", 10, &pos2);
    ck_assert_int_gt(pos2, 10);

    struct pty_run *p = calloc(1, sizeof *p);
    pty_start(p, (const char *const[]){ "fake_run", "--chat", "--temp", "0", "-n", "10", NULL });
    ck_assert_msg(pty_wait(p, 0, "> ", 0, 5000), "no prompt: %s", p->buf);
    pty_send(p, "Hello there\n");
    ck_assert_msg(pty_wait(p, 2, "\n> ", 0, 5000), "no second prompt: %s", p->buf);
    size_t mark = p->len;
    pty_send(p, "And then?\n");
    ck_assert_msg(pty_wait(p, mark, "\n> ", 0, 5000), "no third prompt: %s", p->buf);
    pty_send(p, "/exit\n");
    ck_assert_int_eq(pty_finish(p, 5000), 0);

    char want[4096];
    snprintf(want, sizeof want, "> %s\n> %s\n> ", a1, a2);
    ck_assert_str_eq(p->buf, want);
    expect_log(cs);
    chat_sim_free(cs);
    free(cs);
    free(p);
    free(a1);
    free(a2);
}
END_TEST

START_TEST(test_chat_pty_interrupt)
{
    /* an endless slow answer: Ctrl-C ends it and the prompt comes back */
    fake_never_eos = true;
    fake_delay_us = 20000;
    struct pty_run *p = calloc(1, sizeof *p);
    pty_start(p, (const char *const[]){ "fake_run", "--chat", "--temp", "0", "-n", "-1", NULL });
    ck_assert_msg(pty_wait(p, 0, "> ", 0, 5000), "no prompt: %s", p->buf);
    pty_send(p, "Hello there\n");
    ck_assert_msg(pty_wait(p, 2, NULL, 4, 5000), "no answer: %s", p->buf);
    double t0 = now_ms();
    pty_send(p, "\x03");
    ck_assert_msg(pty_wait(p, 2, "\n> ", 0, 3000), "no prompt after Ctrl-C: %s", p->buf);
    ck_assert_msg(now_ms() - t0 < 2000, "the answer did not stop at once");
    struct fwd *log = malloc(FAKE_LOG_MAX * sizeof *log);
    int n_log = read_log(log, FAKE_LOG_MAX);
    ck_assert_int_lt(n_log, 150); /* the context (256) was far from full */

    /* the program goes on: another turn, then Ctrl-C at the prompt leaves with 130 */
    size_t mark = p->len;
    pty_send(p, "More\n");
    ck_assert_msg(pty_wait(p, mark, NULL, 4, 5000), "no second answer: %s", p->buf);
    pty_send(p, "\x03");
    ck_assert_msg(pty_wait(p, mark, "\n> ", 0, 3000), "no prompt after the second Ctrl-C: %s", p->buf);
    int n_log2 = read_log(log, FAKE_LOG_MAX);
    ck_assert_int_gt(n_log2, n_log);
    /* the second turn fed only its new tokens: it started past the first turn's prompt */
    ck_assert_int_gt(log[n_log].pos, 10);
    pty_send(p, "\x03");
    ck_assert_int_eq(pty_finish(p, 5000), 130);
    free(log);
    free(p);
}
END_TEST

START_TEST(test_chat_pty_eof)
{
    struct pty_run *p = calloc(1, sizeof *p);
    pty_start(p, (const char *const[]){ "fake_run", "--chat", NULL });
    ck_assert_msg(pty_wait(p, 0, "> ", 0, 5000), "no prompt: %s", p->buf);
    pty_send(p, "\x04"); /* end of input at the prompt */
    ck_assert_int_eq(pty_finish(p, 5000), 0);
    free(p);
}
END_TEST

/* ---- Suite ----------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (getenv("AE_CHECK_PROGRAM_RUN")) {
        /* a copy of this binary with a pack appended: a compiled model program */
        fake_init();
        return ae_program_main(argc, argv, &fake_model);
    }
    Suite *s = suite_create("program");
    TCase *tc = tcase_create("generate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tokens_print_ids);
    tcase_add_test(tc, test_prompt_text);
    tcase_add_test(tc, test_text_equals_detokenize);
    tcase_add_test(tc, test_deterministic_across_threads);
    tcase_add_test(tc, test_dump_logits);
    tcase_add_test(tc, test_stop_string);
    tcase_add_test(tc, test_eos_stops);
    tcase_add_test(tc, test_prompt_chunks);
    tcase_add_test(tc, test_context_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_verify);
    tcase_add_test(tc, test_help);
    tcase_add_loop_test(tc, test_bad_flags, 0, (int)(sizeof bad_flag_rows / sizeof bad_flag_rows[0]));
    tcase_add_test(tc, test_flag_forms);
    tcase_add_test(tc, test_pack_errors);
    tcase_add_test(tc, test_pack_beside_executable);
    tcase_add_test(tc, test_pack_appended_to_executable);
    suite_add_tcase(s, tc);

    tc = tcase_create("chat");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_chat_stdin);
    tcase_add_test(tc, test_chat_system_and_template);
    tcase_add_test(tc, test_chat_pty_two_turns);
    tcase_add_test(tc, test_chat_pty_interrupt);
    tcase_add_test(tc, test_chat_pty_eof);
    tcase_add_test(tc, test_hash_chunks);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
