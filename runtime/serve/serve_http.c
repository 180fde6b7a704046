/* The HTTP side of the server (serve.h), on libmicrohttpd with one thread per connection.
 *
 * Routes (llama-server's aliases without /v1 too):
 *   POST /v1/chat/completions, POST /v1/completions   generation, whole or streamed (server-sent events)
 *   GET  /v1/models, GET /health, GET /metrics
 * Anything else is 404; a known path with another method is 405 with Allow.
 *
 * What is refused before the body is read: an unknown route, a wrong or missing API key (401, compared
 * in constant time; /health needs no key), and a Content-Length over SERVE_MAX_BODY_BYTES (413). A body
 * sent in chunks that grows past the limit is read to its end (up to 16 times the limit, after which the
 * connection is closed) and answered 413. Every error body is OpenAI's {"error": {...}}.
 *
 * A generation request is parsed, tokenized and submitted by the connection's thread, which then waits
 * for its output: for a whole answer, in the handler; for a stream, in the response's reader, which
 * sends one chunk per wake-up with everything published since the last one. While it waits it checks
 * every SERVE_WAIT_MS that the client is still connected; when it is not, the request is cancelled and
 * its slot freed at the next step. libmicrohttpd's idle timeout (--timeout) covers reading a request;
 * it is suspended while the request is generated, when the connection is silent because the model is
 * working.
 */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define M serve_mhd

enum http_route {
    HTTP_ROUTE_NONE,
    HTTP_ROUTE_CHAT,
    HTTP_ROUTE_COMPLETION,
    HTTP_ROUTE_MODELS,
    HTTP_ROUTE_HEALTH,
    HTTP_ROUTE_METRICS,
};

static const struct {
    const char *path;
    const char *method;
    enum http_route route;
} http_routes[] = {
    { "/v1/chat/completions", "POST", HTTP_ROUTE_CHAT },
    { "/chat/completions", "POST", HTTP_ROUTE_CHAT },
    { "/v1/completions", "POST", HTTP_ROUTE_COMPLETION },
    { "/completions", "POST", HTTP_ROUTE_COMPLETION },
    { "/v1/models", "GET", HTTP_ROUTE_MODELS },
    { "/models", "GET", HTTP_ROUTE_MODELS },
    { "/health", "GET", HTTP_ROUTE_HEALTH },
    { "/v1/health", "GET", HTTP_ROUTE_HEALTH },
    { "/metrics", "GET", HTTP_ROUTE_METRICS },
};
#define HTTP_N_ROUTES (sizeof http_routes / sizeof http_routes[0])

/* One request on a connection (libmicrohttpd's per-request pointer). */
struct http_conn {
    struct serve *s;
    struct MHD_Connection *c;
    enum http_route route;
    const char *allow;            /* for a 405: the path's method */
    bool responded;
    char *body;
    size_t body_len, body_cap;
    size_t discarded;             /* bytes past the limit, read and dropped */
    struct serve_request *req;    /* a submitted generation */
    double checked_ms;            /* when the client was last seen connected */
    /* A stream: what has gone out, and formatted events not yet handed to libmicrohttpd. */
    size_t sent_text;
    int32_t sent_lp;
    bool sent_first, sent_end;
    char *out;
    size_t out_len, out_off, out_cap;
};

/* ---- Answers ---------------------------------------------------------------------------------------- */

static void http_count(struct serve *s, int status)
{
    pthread_mutex_lock(&s->mu);
    serve_metrics_count_status(&s->metrics, status);
    pthread_mutex_unlock(&s->mu);
}

/* Queues body (malloc'd, taken over; NULL means out of memory) with a status. */
static enum MHD_Result http_respond(struct http_conn *h, int status, const char *content_type, char *body)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                              "\"code\":500}}";
    if (!body) {
        status = 500;
        content_type = "application/json";
        body = malloc(sizeof oom);
        if (!body)
            return MHD_NO;
        memcpy(body, oom, sizeof oom);
    }
    struct MHD_Response *r = M.MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    M.MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == 503)
        M.MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401)
        M.MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405 && h->allow)
        M.MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, h->allow);
    enum MHD_Result ret = M.MHD_queue_response(h->c, (unsigned)status, r);
    M.MHD_destroy_response(r);
    h->responded = true;
    http_count(h->s, status);
    return ret;
}

static enum MHD_Result http_error(struct http_conn *h, const struct serve_error *e)
{
    return http_respond(h, e->status, "application/json", serve_body_error(e));
}

static enum MHD_Result http_fail(struct http_conn *h, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result http_fail(struct http_conn *h, int status, const char *fmt, ...)
{
    struct serve_error e = { .status = status };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return http_error(h, &e);
}

/* ---- Before the body ------------------------------------------------------------------------------- */

/* Whether the Authorization header is "Bearer KEY", compared in time that depends on the key's length
 * only. */
static bool http_authorized(const struct serve *s, struct MHD_Connection *c)
{
    if (!s->api_key)
        return true;
    const char *a = M.MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return false;
    a += 7;
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    volatile unsigned diff = n != s->api_key_len;
    for (size_t i = 0; i < s->api_key_len; i++)
        diff |= (unsigned)((unsigned char)s->api_key[i] ^ (unsigned char)(i < n ? a[i] : 0));
    return diff == 0;
}

static enum MHD_Result http_begin(struct http_conn *h, const char *url, const char *method)
{
    bool path_known = false;
    bool head = strcmp(method, "HEAD") == 0;
    for (size_t i = 0; i < HTTP_N_ROUTES; i++) {
        if (strcmp(url, http_routes[i].path) != 0)
            continue;
        path_known = true;
        h->route = http_routes[i].route;
        if (strcmp(method, http_routes[i].method) == 0 || (head && strcmp(http_routes[i].method, "GET") == 0))
            break;
        h->route = HTTP_ROUTE_NONE;
    }
    if (h->route == HTTP_ROUTE_NONE) {
        if (path_known) {
            for (size_t i = 0; i < HTTP_N_ROUTES; i++)
                if (strcmp(url, http_routes[i].path) == 0)
                    h->allow = http_routes[i].method;
            return http_fail(h, 405, "%.32s is not allowed on %.64s", method, url);
        }
        return http_fail(h, 404, "no such endpoint: %.32s %.128s", method, url);
    }
    if (h->route != HTTP_ROUTE_HEALTH && !http_authorized(h->s, h->c))
        return http_fail(h, 401, "a valid API key is required: send 'Authorization: Bearer KEY'");
    const char *cl = M.MHD_lookup_connection_value(h->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && *cl >= '0' && *cl <= '9' && !*end && n > SERVE_MAX_BODY_BYTES)
            return http_fail(h, 413, "the body is %llu bytes, more than the %u allowed", n, SERVE_MAX_BODY_BYTES);
    }
    return MHD_YES;
}

/* Takes a piece of the body; past the limit the rest is dropped (and the answer will be 413). */
static enum MHD_Result http_body(struct http_conn *h, const char *data, size_t n)
{
    if (h->discarded || h->body_len + n > SERVE_MAX_BODY_BYTES) {
        h->discarded += n;
        return h->discarded > 16 * (size_t)SERVE_MAX_BODY_BYTES ? MHD_NO : MHD_YES;
    }
    if (h->body_len + n + 1 > h->body_cap) {
        size_t cap = h->body_cap ? h->body_cap : 4096;
        while (cap < h->body_len + n + 1)
            cap *= 2;
        char *b = realloc(h->body, cap);
        if (!b)
            return MHD_NO;
        h->body = b;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, data, n);
    h->body_len += n;
    h->body[h->body_len] = 0;
    return MHD_YES;
}

/* ---- Waiting for output ---------------------------------------------------------------------------- */

/* Whether the client has closed its side or the connection broke. */
static bool http_client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = M.MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return true;
    struct pollfd pfd = { .fd = ci->connect_fd, .events = POLLRDHUP };
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Under s->mu: waits until the request has published more than text_seen bytes or lp_seen logprob
 * entries, or has finished. Returns false (and cancels the request) when the client went away, which
 * it checks at least every SERVE_WAIT_MS. */
static bool http_wait(struct http_conn *h, size_t text_seen, int32_t lp_seen)
{
    struct serve *s = h->s;
    struct serve_request *r = h->req;
    for (;;) {
        double now = serve_now_ms();
        if (now - h->checked_ms >= SERVE_WAIT_MS) {
            h->checked_ms = now;
            if (http_client_gone(h->c)) {
                r->cancelled = true;
                pthread_cond_signal(&s->work);
                return false;
            }
        }
        if (r->finish != SERVE_FINISH_NONE || r->text_len != text_seen || r->n_lp != lp_seen)
            return true;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SERVE_WAIT_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &s->mu, &ts);
    }
}

/* The connection may be silent while the model works: no idle timeout from here until the answer is
 * complete (setting it again restarts its clock). */
static void http_timeout(struct http_conn *h, bool on)
{
    M.MHD_set_connection_option(h->c, MHD_CONNECTION_OPTION_TIMEOUT, on ? (unsigned)h->s->o->timeout_s : 0u);
}

static enum MHD_Result http_whole(struct http_conn *h)
{
    struct serve *s = h->s;
    struct serve_request *r = h->req;
    pthread_mutex_lock(&s->mu);
    while (r->finish == SERVE_FINISH_NONE)
        if (!http_wait(h, r->text_len, r->n_lp)) {
            pthread_mutex_unlock(&s->mu);
            return MHD_NO;
        }
    char *body = NULL;
    struct serve_error e = { .status = 500 };
    if (r->finish == SERVE_FINISH_ERROR || r->finish == SERVE_FINISH_CANCELLED)
        snprintf(e.message, sizeof e.message, "%s", r->finish == SERVE_FINISH_ERROR ? r->error : "cancelled");
    else
        body = serve_body_response(s, r);
    pthread_mutex_unlock(&s->mu);
    http_timeout(h, true);
    if (e.message[0])
        return http_error(h, &e);
    return http_respond(h, 200, "application/json", body);
}

/* Appends "data: TEXT\n\n" to the stream's pending output; takes text (NULL: out of memory, nothing). */
static void http_event(struct http_conn *h, char *text)
{
    if (!text)
        return;
    size_t n = strlen(text), need = h->out_len + n + 9;
    if (need > h->out_cap) {
        size_t cap = h->out_cap ? h->out_cap : 1024;
        while (cap < need)
            cap *= 2;
        char *b = realloc(h->out, cap);
        if (!b) {
            free(text);
            return;
        }
        h->out = b;
        h->out_cap = cap;
    }
    memcpy(h->out + h->out_len, "data: ", 6);
    memcpy(h->out + h->out_len + 6, text, n);
    memcpy(h->out + h->out_len + 6 + n, "\n\n", 2);
    h->out_len += n + 8;
    free(text);
}

/* Under s->mu: the events for what the request published since the last call. */
static void http_stream_events(struct http_conn *h)
{
    struct serve *s = h->s;
    struct serve_request *r = h->req;
    bool finished = r->finish != SERVE_FINISH_NONE;
    if (r->text_len > h->sent_text || r->n_lp > h->sent_lp || (!h->sent_first && !finished)) {
        http_event(h, serve_body_chunk(s, r, h->sent_text, r->text_len, h->sent_lp, r->n_lp, !h->sent_first, false));
        h->sent_first = true;
        h->sent_text = r->text_len;
        h->sent_lp = r->n_lp;
    }
    if (!finished)
        return;
    if (r->finish == SERVE_FINISH_ERROR || r->finish == SERVE_FINISH_CANCELLED) {
        struct serve_error e = { .status = 500 };
        snprintf(e.message, sizeof e.message, "%s", r->finish == SERVE_FINISH_ERROR ? r->error : "cancelled");
        http_event(h, serve_body_error(&e));
    } else {
        http_event(h, serve_body_chunk(s, r, r->text_len, r->text_len, r->n_lp, r->n_lp, !h->sent_first, true));
        if (r->params.include_usage)
            http_event(h, serve_body_usage_chunk(s, r));
    }
    size_t n = strlen("[DONE]");
    char *done = malloc(n + 1);
    if (done)
        memcpy(done, "[DONE]", n + 1);
    http_event(h, done);
    h->sent_end = true;
}

static ssize_t http_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct http_conn *h = cls;
    struct serve *s = h->s;
    for (;;) {
        if (h->out_off < h->out_len) {
            size_t n = h->out_len - h->out_off < max ? h->out_len - h->out_off : max;
            memcpy(buf, h->out + h->out_off, n);
            h->out_off += n;
            if (h->out_off == h->out_len)
                h->out_off = h->out_len = 0;
            return (ssize_t)n;
        }
        if (h->sent_end) {
            http_timeout(h, true);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        pthread_mutex_lock(&s->mu);
        bool here = !h->sent_first || http_wait(h, h->sent_text, h->sent_lp);
        if (here)
            http_stream_events(h);
        pthread_mutex_unlock(&s->mu);
        if (!here)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static enum MHD_Result http_stream(struct http_conn *h)
{
    struct MHD_Response *r = M.MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, http_stream_read, h,
                                                                  NULL);
    if (!r)
        return MHD_NO;
    M.MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    M.MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = M.MHD_queue_response(h->c, 200, r);
    M.MHD_destroy_response(r);
    h->responded = true;
    http_count(h->s, 200);
    return ret;
}

/* ---- After the body -------------------------------------------------------------------------------- */

static enum MHD_Result http_generate(struct http_conn *h)
{
    struct serve *s = h->s;
    struct serve_params params;
    struct serve_error e = { 0 };
    enum serve_kind kind = h->route == HTTP_ROUTE_CHAT ? SERVE_KIND_CHAT : SERVE_KIND_COMPLETION;
    if (serve_params_parse(&params, kind, h->body ? h->body : "", h->body_len, &s->mi, &e) < 0)
        return http_error(h, &e);
    bool stream = params.stream;
    struct serve_request *r = serve_request_create(s, &params, &e);
    if (!r)
        return http_error(h, &e);
    if (serve_request_submit(s, r, &e) < 0) {
        serve_request_release(s, r);
        return http_error(h, &e);
    }
    h->req = r;
    http_timeout(h, false);
    return stream ? http_stream(h) : http_whole(h);
}

static enum MHD_Result http_get(struct http_conn *h)
{
    struct serve *s = h->s;
    switch (h->route) {
    case HTTP_ROUTE_MODELS:
        return http_respond(h, 200, "application/json", serve_body_models(s));
    case HTTP_ROUTE_HEALTH: {
        pthread_mutex_lock(&s->mu);
        bool draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        const char *text = draining ? "{\"status\":\"shutting down\"}" : "{\"status\":\"ok\"}";
        char *body = malloc(strlen(text) + 1);
        if (body)
            memcpy(body, text, strlen(text) + 1);
        return http_respond(h, draining ? 503 : 200, "application/json", body);
    }
    case HTTP_ROUTE_METRICS: {
        pthread_mutex_lock(&s->mu);
        char *body = serve_metrics_render(s);
        pthread_mutex_unlock(&s->mu);
        return http_respond(h, 200, "text/plain; version=0.0.4", body);
    }
    case HTTP_ROUTE_NONE:
    case HTTP_ROUTE_CHAT:
    case HTTP_ROUTE_COMPLETION:
        break;
    }
    return http_fail(h, 500, "no handler for this route");
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    (void)version;
    struct http_conn *h = *con_cls;
    if (!h) {
        if (!(h = calloc(1, sizeof *h)))
            return MHD_NO;
        h->s = cls;
        h->c = c;
        *con_cls = h;
        return http_begin(h, url, method);
    }
    if (h->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return http_body(h, upload_data, n);
    }
    if (h->discarded)
        return http_fail(h, 413, "the body is %zu bytes or more, more than the %u allowed",
                         h->body_len + h->discarded, SERVE_MAX_BODY_BYTES);
    if (h->route == HTTP_ROUTE_CHAT || h->route == HTTP_ROUTE_COMPLETION)
        return http_generate(h);
    return http_get(h);
}

/* The end of a request, however it ended: the request goes back to the engine's care, or is freed. */
static void http_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct http_conn *h = *con_cls;
    if (!h)
        return;
    serve_request_release(cls, h->req);
    free(h->body);
    free(h->out);
    free(h);
    *con_cls = NULL;
}

/* ---- The daemon ------------------------------------------------------------------------------------ */

/* A listening socket on host:port (a name or a numeric address, IPv4 or IPv6). */
static int http_listen(const char *host, int32_t port, int *out, int32_t *bound, ae_error *err)
{
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%" PRId32, port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0)
        return ae_fail(err, "--host %s: %s", host, gai_strerror(rc));
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ae_fail(err, "cannot listen on %s port %" PRId32 ": %s", host, port, strerror(e));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    *bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    *out = fd;
    return 0;
}

int serve_http_start(struct serve *s, ae_error *err)
{
    int32_t port = s->o->port;
    s->listen_fd = -1;
    if (http_listen(s->o->host, s->o->port, &s->listen_fd, &port, err) < 0)
        return -1;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    s->daemon = M.MHD_start_daemon(flags, 0, NULL, NULL, http_handler, s,
                                   MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o->timeout_s,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_CONNECTION_LIMIT,
                                   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                                   MHD_OPTION_THREAD_STACK_SIZE, (size_t)1 << 20,
                                   MHD_OPTION_STRICT_FOR_CLIENT, 1,
                                   MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
                                   MHD_OPTION_END);
    if (!s->daemon) {
        close(s->listen_fd);
        s->listen_fd = -1;
        return ae_fail(err, "libmicrohttpd could not start the server on %s port %" PRId32, s->o->host, port);
    }
    const char *h = s->o->host;
    bool v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "%s: serving %s on http://%s%s%s:%" PRId32 " (%" PRId32 " slot%s of %" PRId32 " tokens)\n",
            s->p->o->prog, s->model_id, v6 ? "[" : "", h, v6 ? "]" : "", port, s->n_slots,
            s->n_slots == 1 ? "" : "s", s->st.n_ctx);
    fflush(stderr);
    return 0;
}

void serve_http_quiesce(struct serve *s)
{
    if (s->daemon && s->listen_fd >= 0) {
        M.MHD_quiesce_daemon(s->daemon);
        close(s->listen_fd);
        s->listen_fd = -1;
    }
}

void serve_http_stop(struct serve *s)
{
    if (s->daemon)
        M.MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
}
