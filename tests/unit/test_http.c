/* Raw-socket HTTP for the server's tests (test_http.h). */
#include "test_http.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double test_http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int test_http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to port %d: %s", port, strerror(errno));
    return fd;
}

/* Decodes a chunked body in place; returns its length. */
static size_t http_dechunk(char *b, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        char *end;
        unsigned long size = strtoul(b + r, &end, 16);
        char *line_end = strstr(b + r, "\r\n");
        if (!line_end || end == b + r)
            break;
        r = (size_t)(line_end - b) + 2;
        if (size == 0 || r + size > n)
            break;
        memmove(b + w, b + r, size);
        w += size;
        r += size + 2;
    }
    b[w] = 0;
    return w;
}

static void http_parse(char *raw, size_t n, struct test_http_response *out)
{
    char *sep = strstr(raw, "\r\n\r\n");
    if (n < 12 || strncmp(raw, "HTTP/1.", 7) != 0 || !sep) {
        out->status = -1;
        out->head = raw;
        out->body = calloc(1, 1);
        return;
    }
    out->status = atoi(raw + 9);
    size_t head_len = (size_t)(sep - raw);
    out->body_len = n - head_len - 4;
    out->body = malloc(out->body_len + 1);
    ck_assert(out->body != NULL);
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = 0;
    raw[head_len] = 0;
    out->head = raw;
    const char *te = test_http_header(out, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") == 0)
        out->body_len = http_dechunk(out->body, out->body_len);
}

int test_http_send(int port, const void *req, size_t len, size_t piece, int delay_ms, int timeout_ms,
                   struct test_http_response *out)
{
    memset(out, 0, sizeof *out);
    int fd = test_http_connect(port);
    const char *p = req;
    for (size_t off = 0; off < len;) {
        size_t k = piece ? (len - off < piece ? len - off : piece) : len - off;
        ssize_t w = send(fd, p + off, k, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before the request is all sent */
        off += (size_t)w;
        if (piece && delay_ms && off < len)
            usleep((useconds_t)delay_ms * 1000);
    }
    size_t cap = 1 << 16, n = 0;
    char *raw = malloc(cap + 1);
    ck_assert(raw != NULL);
    double end = test_http_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - test_http_now_ms());
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        if (n == cap) {
            cap *= 2;
            raw = realloc(raw, cap + 1);
            ck_assert(raw != NULL);
        }
        ssize_t r = recv(fd, raw + n, cap - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    raw[n] = 0;
    http_parse(raw, n, out);
    return out->status;
}

int test_http(int port, const char *method, const char *path, const char *headers, const char *body,
              struct test_http_response *out)
{
    size_t body_len = body ? strlen(body) : 0;
    size_t cap = body_len + 1024 + (headers ? strlen(headers) : 0);
    char *req = malloc(cap);
    ck_assert(req != NULL);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                     headers ? headers : "");
    if (body)
        n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) {
        memcpy(req + n, body, body_len);
        n += (int)body_len;
    }
    int status = test_http_send(port, req, (size_t)n, 0, 0, 30000, out);
    free(req);
    return status;
}

const char *test_http_header(const struct test_http_response *r, const char *name)
{
    static char value[512];
    size_t len = strlen(name);
    for (const char *l = r->head ? strstr(r->head, "\r\n") : NULL; l; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, len) == 0 && l[len] == ':') {
            const char *v = l + len + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            snprintf(value, sizeof value, "%.*s", (int)k, v);
            return value;
        }
    }
    return NULL;
}

void test_http_free(struct test_http_response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int test_http_wait_port(int fd, int timeout_ms)
{
    char buf[8192];
    size_t n = 0;
    double end = test_http_now_ms() + timeout_ms;
    for (;;) {
        buf[n] = 0;
        const char *at = strstr(buf, " on http://");
        if (at) {
            const char *host = at + 11;
            const char *colon = *host == '[' ? strchr(host, ']') : host;
            colon = colon ? strchr(colon, ':') : NULL;
            if (colon && strchr(colon, '\n'))
                return atoi(colon + 1);
        }
        int left = (int)(end - test_http_now_ms());
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t r = left > 0 && poll(&pfd, 1, left) > 0 ? read(fd, buf + n, sizeof buf - 1 - n) : 0;
        ck_assert_msg(r > 0, "the server did not start:\n%s", buf);
        n += (size_t)r;
    }
}

int test_http_stop_server(pid_t pid, int timeout_ms)
{
    kill(pid, SIGTERM);
    double end = test_http_now_ms() + timeout_ms;
    int st;
    while (test_http_now_ms() < end) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}
