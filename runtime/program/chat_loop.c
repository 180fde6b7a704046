/* --chat: an interactive conversation on stdin/stdout that keeps the KV cache between turns.
 *
 * Each turn formats the whole conversation with the model's chat template (plus the assistant's turn
 * header), tokenizes it, and feeds only the tokens past the longest common prefix with what the cache
 * already holds: usually the closing of the last answer and the new user message. Comparing tokens
 * rather than text (llama.cpp's simple-chat compares text) also covers an answer whose text re-tokenizes
 * differently from the tokens generated, or one the template reformats: the cache is then rewound to
 * where the two first differ, which costs a few tokens and never gives a wrong cache.
 *
 * Commands: /clear forgets the conversation (the system message stays) and empties the cache; /exit
 * and end of input leave. Ctrl-C while an answer is generated (or its prompt fed) ends that turn and
 * returns to the prompt "> "; Ctrl-C at the prompt leaves with status 130. SIGINT is caught only while
 * the chat runs and the previous handler is restored afterwards.
 */
#include "program_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t chat_interrupted;

static void chat_on_sigint(int sig)
{
    (void)sig;
    chat_interrupted = 1;
}

/* The conversation; every content string is owned. */
struct chat_conv {
    struct ae_chat_message *msgs; /* (cap) */
    size_t n, cap;
};

static int chat_conv_add(struct chat_conv *c, const char *role, const char *content, ae_error *err)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct ae_chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m)
            return ae_fail(err, "out of memory for a conversation of %zu messages", c->n + 1);
        c->msgs = m;
        c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy)
        return ae_fail(err, "out of memory for a message of %zu bytes", strlen(content));
    c->msgs[c->n++] = (struct ae_chat_message){ role, copy };
    return 0;
}

/* Drops the messages after the first keep. */
static void chat_conv_truncate(struct chat_conv *c, size_t keep)
{
    while (c->n > keep)
        free((void *)c->msgs[--c->n].content);
}

static void chat_conv_free(struct chat_conv *c)
{
    chat_conv_truncate(c, 0);
    free(c->msgs);
}

/* A growable text buffer for the formatted conversation (grown between turns, never in the loop). */
struct chat_buf {
    char *buf;
    size_t cap;
};

/* One turn: the last message is the user's. Returns 0 (the turn ran, or was refused or interrupted
 * with the user message dropped) or -1 with err set for a failure that ends the chat. */
static int chat_turn(struct prog *p, enum ae_chat_template tmpl, struct chat_conv *c, struct chat_buf *t,
                     ae_error *err)
{
    const struct prog_opts *o = p->o;
    int32_t n_ctx = p->st.n_ctx;
    size_t len = ae_chat_format(tmpl, c->msgs, c->n, true, NULL, 0);
    if (len + 1 > t->cap) {
        char *b = realloc(t->buf, len + 1);
        if (!b)
            return ae_fail(err, "out of memory for a conversation of %zu bytes", len);
        t->buf = b;
        t->cap = len + 1;
    }
    ae_chat_format(tmpl, c->msgs, c->n, true, t->buf, t->cap);

    size_t n = 0;
    if (ae_tokenize(p->tok, t->buf, len, true, true, p->ids, (size_t)n_ctx + 1, &n, err) < 0 &&
        n <= (size_t)n_ctx + 1)
        return ae_fail_prefix(err, "tokenizing the conversation");
    if (n > (size_t)n_ctx) {
        fprintf(stderr, "%s: the conversation is %zu tokens, more than the context holds (%" PRId32 "): /clear "
                "starts a new one\n", o->prog, n, n_ctx);
        chat_conv_truncate(c, c->n - 1);
        return 0;
    }
    if (n == 0) {
        chat_conv_truncate(c, c->n - 1);
        return 0;
    }

    /* Keep the cache up to the first difference; feed at least one token for fresh logits. */
    int32_t k = 0, n_ids = (int32_t)n;
    while (k < n_ids && k < p->n_hist && p->ids[k] == p->hist[k])
        k++;
    if (k == n_ids)
        k--;
    p->n_hist = k;
    int r = ae_prog_feed(p, p->ids + k, n_ids - k, err);
    if (r < 0)
        return -1;
    if (r > 0) {
        ae_prog_write(p, "\n", 1);
        chat_conv_truncate(c, c->n - 1);
        return 0;
    }

    enum prog_stop why;
    if (ae_prog_generate(p, o->n_predict, &why, err) < 0)
        return -1;
    ae_prog_write(p, "\n", 1);
    switch (why) {
    case PROG_STOP_CTX:
        fprintf(stderr, "%s: the context is full (%" PRId32 " tokens): /clear starts a new conversation\n", o->prog,
                n_ctx);
        break;
    case PROG_STOP_OUTPUT:
        return ae_fail(err, "writing the answer to standard output failed");
    case PROG_STOP_INTERRUPT:
        if (p->answer_len == 0) { /* stopped before a word: as if the question was never asked */
            chat_conv_truncate(c, c->n - 1);
            return 0;
        }
        break;
    case PROG_STOP_LIMIT:
    case PROG_STOP_EOG:
    case PROG_STOP_STRING:
        break;
    }
    return chat_conv_add(c, "assistant", p->answer, err);
}

/* Standard input, read with read(2) into our own buffer: waiting for it must be interruptible by
 * Ctrl-C without a race, which stdio cannot give (see chat_read_line). */
struct chat_input {
    char *buf;       /* (cap) */
    size_t len, cap;
    size_t consumed; /* bytes of buf taken by the line last returned */
    bool eof;
};

/* Reads one line without its end-of-line into *line (valid until the next call). Returns 1 for a line,
 * 0 at end of input, -1 for Ctrl-C. SIGINT stays blocked from the flag check until ppoll unblocks it
 * atomically, so a Ctrl-C that lands just before the wait still ends it. */
static int chat_read_line(struct chat_input *in, char **line)
{
    if (in->consumed > 0) {
        memmove(in->buf, in->buf + in->consumed, in->len - in->consumed);
        in->len -= in->consumed;
        in->consumed = 0;
    }
    for (;;) {
        char *nl = in->len ? memchr(in->buf, '\n', in->len) : NULL;
        if (nl || (in->eof && in->len > 0)) {
            size_t n = nl ? (size_t)(nl - in->buf) : in->len;
            in->consumed = nl ? n + 1 : n;
            in->buf[n] = 0;
            while (n > 0 && in->buf[n - 1] == '\r')
                in->buf[--n] = 0;
            *line = in->buf;
            return 1;
        }
        if (in->eof)
            return 0;

        sigset_t sigint, old, wait_mask;
        sigemptyset(&sigint);
        sigaddset(&sigint, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigint, &old);
        if (chat_interrupted) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return -1;
        }
        wait_mask = old;
        sigdelset(&wait_mask, SIGINT);
        struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
        int r = ppoll(&pfd, 1, NULL, &wait_mask);
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (chat_interrupted)
            return -1;
        if (r < 0) {
            if (e == EINTR)
                continue;
            in->eof = true;
            continue;
        }

        if (in->cap - in->len < 4096) {
            size_t cap = in->cap ? in->cap * 2 : 8192;
            char *b = realloc(in->buf, cap);
            if (!b) {
                in->eof = true; /* a line that does not fit in memory ends the chat */
                continue;
            }
            in->buf = b;
            in->cap = cap;
        }
        ssize_t n = read(STDIN_FILENO, in->buf + in->len, in->cap - in->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            in->eof = true;
        else
            in->len += (size_t)n;
    }
}

int ae_prog_chat(struct prog *p)
{
    const struct prog_opts *o = p->o;
    ae_error err = { { 0 } };
    enum ae_chat_template tmpl;
    if (ae_chat_template_from_gguf(p->meta, o->chat_template, &tmpl, &err) < 0) {
        fprintf(stderr, "%s: %s\n", o->prog, err.msg);
        return AE_PROG_EXIT_FAIL;
    }

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = chat_on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C must interrupt the read at the prompt */
    sigaction(SIGINT, &sa, &old);
    p->interrupted = &chat_interrupted;

    struct chat_conv conv = { 0 };
    struct chat_buf text = { 0 };
    struct chat_input in = { 0 };
    char *line;
    size_t keep = 0;
    int rc = AE_PROG_EXIT_OK;
    if (o->system) {
        if (chat_conv_add(&conv, "system", o->system, &err) < 0)
            goto fail;
        keep = 1;
    }
    for (;;) {
        chat_interrupted = 0;
        ae_prog_write(p, "> ", 2);
        int r = chat_read_line(&in, &line);
        if (r < 0) {
            ae_prog_write(p, "\n", 1);
            rc = AE_PROG_EXIT_INTERRUPT;
            break;
        }
        if (r == 0) {
            ae_prog_write(p, "\n", 1);
            break;
        }
        if (line[0] == 0)
            continue;
        if (strcmp(line, "/exit") == 0)
            break;
        if (strcmp(line, "/clear") == 0) {
            chat_conv_truncate(&conv, keep);
            p->n_hist = 0;
            ae_sampler_reset(p->sampler);
            const char *msg = "(conversation cleared)\n";
            ae_prog_write(p, msg, strlen(msg));
            continue;
        }
        if (chat_conv_add(&conv, "user", line, &err) < 0 || chat_turn(p, tmpl, &conv, &text, &err) < 0)
            goto fail;
        if (p->out_failed)
            break;
    }
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", o->prog, err.msg);
    rc = AE_PROG_EXIT_FAIL;
done:
    if (o->timings)
        ae_prog_print_timings(p);
    sigaction(SIGINT, &old, NULL);
    p->interrupted = NULL;
    free(in.buf);
    free(text.buf);
    chat_conv_free(&conv);
    return rc;
}
