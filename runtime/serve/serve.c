/* --serve (serve.h): loads the libraries, reads the API key, starts the slots and the HTTP server, runs
 * the step loop on this thread, and drains on SIGTERM or SIGINT.
 *
 * Draining: the listening socket closes (new connections are refused), requests that arrive on open
 * connections get 503, /health says so, and every request already accepted, running or queued, is
 * answered to its end; then the server stops and the program exits 0. A second signal exits at once.
 */
#include "serve.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t serve_stop;

static void serve_on_signal(int sig)
{
    if (serve_stop) {
        /* A second signal: leave now, as the default action would. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    serve_stop = 1;
}

/* The key from --api-key, or the first line of --api-key-file (without its line end). */
static int serve_read_key(struct serve *s, ae_error *err)
{
    const struct prog_serve_opts *o = s->o;
    if (o->api_key) {
        s->api_key_len = strlen(o->api_key);
        s->api_key = malloc(s->api_key_len + 1);
        if (!s->api_key)
            return ae_fail(err, "out of memory");
        memcpy(s->api_key, o->api_key, s->api_key_len + 1);
        return 0;
    }
    if (!o->api_key_file)
        return 0;
    FILE *f = fopen(o->api_key_file, "r");
    if (!f)
        return ae_fail(err, "--api-key-file: cannot open %s: %s", o->api_key_file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    if (n <= 0) {
        free(line);
        return ae_fail(err, "--api-key-file: %s: the first line is empty", o->api_key_file);
    }
    s->api_key = line;
    s->api_key_len = (size_t)n;
    return 0;
}

/* The tokenizer and the chat template the requests are read with. */
static void serve_model_info(struct serve *s, char *template_error, size_t size)
{
    struct prog *p = s->p;
    ae_error err = { { 0 } };
    s->mi.tok = p->tok;
    s->mi.n_vocab = (int32_t)ae_tokenizer_n_vocab(p->tok);
    s->mi.have_template = ae_chat_template_from_gguf(p->meta, p->o->chat_template, &s->mi.tmpl, &err) == 0;
    snprintf(template_error, size, "%s", err.msg);
    s->mi.template_error = template_error;
    if (!s->mi.have_template)
        fprintf(stderr, "%s: no chat template: /v1/chat/completions will answer 400 (%s)\n", p->o->prog, err.msg);
    s->model_id = p->m->name && *p->m->name ? p->m->name : p->o->prog;
}

int ae_prog_serve(struct prog *p)
{
    ae_error err = { { 0 } };
    struct serve s = { .p = p, .o = &p->o->serve, .listen_fd = -1, .created = (int64_t)time(NULL) };
    char template_error[sizeof err.msg];
    int rc = AE_PROG_EXIT_FAIL;
    bool engine = false;
    if (serve_lib_load(&err) < 0 || serve_read_key(&s, &err) < 0)
        goto done;
    serve_model_info(&s, template_error, sizeof template_error);
    if (serve_engine_init(&s, &err) < 0)
        goto done;
    engine = true;
    /* Writes to a client that has gone must fail with EPIPE, not end the program. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = serve_on_signal };
    sigemptyset(&sa.sa_mask);
    struct sigaction old_term, old_int;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    if (serve_http_start(&s, &err) == 0 && serve_engine_run(&s, &serve_stop, &err) == 0)
        rc = AE_PROG_EXIT_OK;
    serve_http_stop(&s);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    if (rc == AE_PROG_EXIT_OK)
        fprintf(stderr, "%s: stopped after answering every request\n", p->o->prog);
done:
    if (rc != AE_PROG_EXIT_OK)
        fprintf(stderr, "%s: %s\n", p->o->prog, err.msg);
    if (engine)
        serve_engine_free(&s);
    free(s.api_key);
    return rc;
}

const struct ae_server ae_server = {ae_prog_serve};
