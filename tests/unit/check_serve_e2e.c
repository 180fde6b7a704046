/* The server end to end: stories260K compiled by aetherc, served with --parallel 4 and an API key, and
 * called by the official OpenAI client (tests/serve/openai_client.mjs, the npm package version pinned in
 * tests/serve/package.json, installed by make into AE_SERVE_NODE), by curl, and by concurrent raw
 * clients.
 *
 * Checked: the client's chat, completion, streaming, model list and error paths; greedy text through
 * the server equals the program's own (-p ... --temp 0); concurrent requests, streamed or not, each get
 * the text they get alone (the batch a request shares with others changes nothing). The compile and the
 * server are made once for the suite (an unchecked fixture).
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_http.h"
#include "test_util.h"

#define E2E_KEY "e2e-secret"
#define E2E_SLOTS "4"

static char tmp_dir[64];
static char program[128];
static pid_t server_pid;
static int server_port, server_err;

/* Runs argv with stdout (and stderr, unless quiet) into out; returns the exit status. */
static int run_argv(char *const *argv, bool quiet, char *out, size_t cap)
{
    int fds[2];
    ck_assert(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        if (quiet)
            freopen("/dev/null", "w", stderr);
        else
            dup2(fds[1], 2);
        close(fds[0]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], out + n, cap - 1 - n)) > 0 && n + (size_t)k < cap - 1)
        n += (size_t)k;
    if (k > 0)
        n += (size_t)k;
    out[n] = 0;
    close(fds[0]);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define RUN(out, ...) run_argv((char *const[]){ __VA_ARGS__, NULL }, false, out, sizeof out)

static void suite_setup(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/check_serve_e2e_XXXXXX");
    ck_assert(mkdtemp(tmp_dir) != NULL);
    snprintf(program, sizeof program, "%s/stories", tmp_dir);
    const char *aetherc = getenv("AE_AETHERC");
    ck_assert_msg(aetherc && *aetherc, "AE_AETHERC is not set: run the tests through make check");
    char log[8192];
    int rc = RUN(log, (char *)aetherc, (char *)test_shared_path("models/stories260K.gguf"), "-o", program);
    ck_assert_msg(rc == 0, "aetherc failed (%d): %s", rc, log);

    int fds[2];
    ck_assert(pipe(fds) == 0);
    fflush(NULL);
    server_pid = fork();
    ck_assert(server_pid >= 0);
    if (server_pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        execl(program, program, "--serve", "--port", "0", "--parallel", E2E_SLOTS, "--ctx", "256", "--api-key",
              E2E_KEY, "-t", "1", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    server_err = fds[0];
    server_port = test_http_wait_port(server_err, 20000);
}

static void suite_teardown(void)
{
    if (server_pid > 0) {
        int rc = test_http_stop_server(server_pid, 10000);
        ck_assert_msg(rc == 0, "the server exited with %d after SIGTERM", rc);
        close(server_err);
    }
    char log[256];
    RUN(log, "rm", "-rf", tmp_dir);
}

/* What the program itself prints for a prompt, greedy. */
static void program_greedy(const char *prompt, const char *n, char *out, size_t cap)
{
    int rc = run_argv((char *const[]){ program, "-p", (char *)prompt, "-n", (char *)n, "--temp", "0", NULL }, true,
                      out, cap);
    ck_assert_msg(rc == 0, "%s -p %s failed (%d): %s", program, prompt, rc, out);
}

/* The "text" (or "content") string of a JSON answer, with JSON's escapes undone (\n, \", \\, \/ and \uXXXX
 * below 0x80 are all that stories260K's text needs). */
static void json_text(const char *body, const char *key, char *out, size_t cap)
{
    char needle[32];
    snprintf(needle, sizeof needle, "\"%s\":\"", key);
    const char *p = strstr(body, needle);
    ck_assert_msg(p != NULL, "no %s in %s", key, body);
    p += strlen(needle);
    size_t n = 0;
    for (; *p && *p != '"' && n + 1 < cap; p++) {
        if (*p == '\\') {
            p++;
            if (*p == 'n')
                out[n++] = '\n';
            else if (*p == 'u') {
                out[n++] = (char)strtol((char[]){ p[1], p[2], p[3], p[4], 0 }, NULL, 16);
                p += 4;
            } else
                out[n++] = *p;
        } else
            out[n++] = *p;
    }
    out[n] = 0;
}

START_TEST(test_openai_client)
{
    const char *node_dir = getenv("AE_SERVE_NODE");
    ck_assert_msg(node_dir && *node_dir, "AE_SERVE_NODE is not set: run the tests through make check");
    char script[512], url[64], greedy[1024], out[16384];
    snprintf(script, sizeof script, "%s/openai_client.mjs", node_dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", server_port);
    program_greedy("Once upon a time", "32", greedy, sizeof greedy);
    int rc = RUN(out, "node", script, url, E2E_KEY, greedy);
    ck_assert_msg(rc == 0, "the openai client failed %d checks:\n%s", rc, out);
}
END_TEST

static const char *const greedy_prompts[] = {
    "Once upon a time", "Lily and Ben went to the park", "The cat", "One day, a big",
};

START_TEST(test_greedy_equals_program)
{
    char body[512], url[128], out[16384], want[1024], got[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", server_port);
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":48,\"temperature\":0}", greedy_prompts[_i]);
    int rc = RUN(out, "curl", "-sS", "--fail-with-body", "-H", "Authorization: Bearer " E2E_KEY, "-H",
                 "Content-Type: application/json", "-d", body, url);
    ck_assert_msg(rc == 0, "curl failed (%d): %s", rc, out);
    json_text(out, "text", got, sizeof got);
    program_greedy(greedy_prompts[_i], "48", want, sizeof want);
    /* A completion continues the prompt, so its text keeps the space a SentencePiece piece starts with;
     * the program drops it from the first piece it prints (as llama.cpp's detokenizer does). */
    ck_assert_msg(strcmp(got, want) == 0 || (got[0] == ' ' && strcmp(got + 1, want) == 0),
                  "the server says '%s', the program '%s'", got, want);
}
END_TEST

START_TEST(test_curl_endpoints)
{
    char url[128], out[16384];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", server_port);
    ck_assert_int_eq(RUN(out, "curl", "-sS", "--fail-with-body", url), 0);
    ck_assert_str_eq(out, "{\"status\":\"ok\"}");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", server_port);
    ck_assert_int_eq(RUN(out, "curl", "-sS", "--fail-with-body", "-H", "Authorization: Bearer " E2E_KEY, url), 0);
    ck_assert_msg(strstr(out, "aether_slots_total " E2E_SLOTS "\n") && strstr(out, "aether_kv_cache_tokens_total 1024\n"),
                  "%s", out);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/models", server_port);
    ck_assert_int_eq(RUN(out, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url), 0);
    ck_assert_str_eq(out, "401");
}
END_TEST

#define N_STREAMS 8

struct job {
    char body[256];
    struct test_http_response r;
};

static void *job_run(void *arg)
{
    struct job *j = arg;
    test_http(server_port, "POST", "/v1/completions", "Authorization: Bearer " E2E_KEY "\r\n", j->body, &j->r);
    return NULL;
}

/* The same, to a server without a key. */
static void *job_run_open(void *arg)
{
    struct job *j = arg;
    test_http(server_port, "POST", "/v1/completions", NULL, j->body, &j->r);
    return NULL;
}

/* The text of an answer: the whole "text", or the streamed chunks' texts put together. */
static void answer_text(const struct test_http_response *r, char *out, size_t cap)
{
    out[0] = 0;
    for (const char *e = r->body; (e = strstr(e, "\"text\":\"")); e += 8) {
        char piece[1024];
        json_text(e, "text", piece, sizeof piece);
        strncat(out, piece, cap - strlen(out) - 1);
    }
}

START_TEST(test_concurrent_streams)
{
    static const char *const prompts[N_STREAMS] = {
        "Once upon a time", "Tom had a red ball", "The sun was", "She",
        "One day, Lily found a shiny stone in the garden and", "Ben", "The little bird", "It was a cold day",
    };
    struct job alone[N_STREAMS], together[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        snprintf(alone[i].body, sizeof alone[i].body,
                 "{\"prompt\":\"%s\",\"max_tokens\":%d,\"seed\":%d,\"temperature\":0.8,\"stream\":%s}", prompts[i],
                 24 + 4 * i, 1000 + i, i % 2 ? "true" : "false");
        together[i] = alone[i];
        job_run(&alone[i]);
        ck_assert_int_eq(alone[i].r.status, 200);
    }
    pthread_t th[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++)
        ck_assert(pthread_create(&th[i], NULL, job_run, &together[i]) == 0);
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_STREAMS; i++) {
        char a[4096], t[4096];
        ck_assert_int_eq(together[i].r.status, 200);
        answer_text(&alone[i].r, a, sizeof a);
        answer_text(&together[i].r, t, sizeof t);
        ck_assert_msg(strcmp(a, t) == 0, "request %d alone: '%s', with others: '%s'", i, a, t);
        test_http_free(&alone[i].r);
        test_http_free(&together[i].r);
    }
}
END_TEST

/* The batched step of other architectures (biases and NeoX rope, fused QKV slices, softcaps and sliding
 * windows, K-quants, mixtures of experts with and without a shared expert): three greedy requests at once, their prompts read and their tokens generated in
 * shared steps, must each give the program's own text. */
static const char *const batched_models[] = {
    "models/synthetic/tiny-qwen2-q4_0.gguf", "models/synthetic/tiny-phi3-q4_0.gguf",
    "models/synthetic/tiny-gemma2-q8_0.gguf", "models/synthetic/tiny-llama-q4_k.gguf",
    "models/synthetic/tiny-mixtral-q4_0.gguf", "models/synthetic/tiny-qwen2moe-q8_0.gguf",
};

START_TEST(test_batched_architectures)
{
    char prog[160], log[8192];
    snprintf(prog, sizeof prog, "%s/model%d", tmp_dir, _i);
    int rc = RUN(log, getenv("AE_AETHERC"), (char *)test_shared_path(batched_models[_i]), "-o", prog);
    ck_assert_msg(rc == 0, "aetherc %s failed (%d): %s", batched_models[_i], rc, log);
    int fds[2];
    ck_assert(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        execl(prog, prog, "--serve", "--port", "0", "--parallel", "3", "--ctx", "128", "-t", "1", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    int port = test_http_wait_port(fds[0], 20000);
    static const char *const ids[3] = {
        "1,300,301,302,303,304,305,306,307,308,309,310,311,312,313,314,315,316,317,318,319,320,321,322,323,324",
        "1,42", "1,100,200,300,400,150,250,350",
    };
    struct job jobs[3];
    pthread_t th[3];
    int saved_port = server_port;
    server_port = port;
    for (int i = 0; i < 3; i++) {
        snprintf(jobs[i].body, sizeof jobs[i].body, "{\"prompt\":[%s],\"max_tokens\":12,\"temperature\":0}", ids[i]);
        ck_assert(pthread_create(&th[i], NULL, job_run_open, &jobs[i]) == 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    struct test_http_response m;
    ck_assert_int_eq(test_http(port, "GET", "/metrics", NULL, NULL, &m), 200);
    server_port = saved_port;
    ck_assert_int_eq(test_http_stop_server(pid, 10000), 0);
    close(fds[0]);
    const char *steps = strstr(m.body, "\naether_steps_total "), *rows = strstr(m.body, "\naether_step_tokens_total ");
    ck_assert_msg(steps && rows && atof(rows + 26) > atof(steps + 20), "no step was shared: %s", m.body);
    test_http_free(&m);
    for (int i = 0; i < 3; i++) {
        char got[1024], want[1024];
        ck_assert_msg(jobs[i].r.status == 200, "%s: %s", batched_models[_i], jobs[i].r.body);
        json_text(jobs[i].r.body, "text", got, sizeof got);
        rc = run_argv((char *const[]){ prog, "--tokens", (char *)ids[i], "-n", "12", "--temp", "0", NULL }, true, want,
                      sizeof want);
        ck_assert_msg(rc == 0, "%s --tokens failed: %s", prog, want);
        ck_assert_msg(strcmp(got, want) == 0 || (got[0] == ' ' && strcmp(got + 1, want) == 0),
                      "%s, prompt %d: the server says '%s', the program '%s'", batched_models[_i], i, got, want);
        test_http_free(&jobs[i].r);
    }
}
END_TEST

Suite *serve_e2e_suite(void);

Suite *serve_e2e_suite(void)
{
    Suite *s = suite_create("serve_e2e");
    TCase *tc = tcase_create("stories260K");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_openai_client);
    tcase_add_loop_test(tc, test_greedy_equals_program, 0, (int)(sizeof greedy_prompts / sizeof greedy_prompts[0]));
    tcase_add_test(tc, test_curl_endpoints);
    tcase_add_test(tc, test_concurrent_streams);
    tcase_add_loop_test(tc, test_batched_architectures, 0, (int)(sizeof batched_models / sizeof batched_models[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(serve_e2e_suite());
}
