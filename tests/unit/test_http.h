/* A small HTTP client over raw sockets for the server's tests, and the server's start-up line.
 *
 * Raw sockets rather than a client library, so that a test can send exactly the bytes it means: a
 * truncated request, a request line that is not HTTP, a body that arrives one byte at a time. Every
 * request the helpers build asks for "Connection: close", so an answer ends when the server closes.
 */
#ifndef AE_TEST_HTTP_H
#define AE_TEST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct test_http_response {
    int status;       /* -1: the server closed the connection without an answer */
    char *head;       /* the status line and headers, NUL-terminated */
    char *body;       /* de-chunked, NUL-terminated */
    size_t body_len;
};

/* A connected TCP socket to 127.0.0.1:port, or a failed test. */
int test_http_connect(int port);

/* Sends len bytes (in pieces of `piece` bytes with delay_ms between them when piece > 0), then reads
 * the answer until the server closes the connection or timeout_ms passes. Returns out->status. */
int test_http_send(int port, const void *req, size_t len, size_t piece, int delay_ms, int timeout_ms,
                   struct test_http_response *out);

/* A request: method, path, extra header lines (each ending in "\r\n", or NULL) and a body (NULL: none). */
int test_http(int port, const char *method, const char *path, const char *headers, const char *body,
              struct test_http_response *out);

/* The value of a header of the response (case-insensitive name), in a static buffer; NULL when absent. */
const char *test_http_header(const struct test_http_response *r, const char *name);

void test_http_free(struct test_http_response *r);

/* Reads the server's standard error from fd until its "serving ... on http://HOST:PORT" line; returns the
 * port, or fails the test with what the server printed. */
int test_http_wait_port(int fd, int timeout_ms);

/* Sends SIGTERM and waits for the process; returns its exit status (-1 when it was killed by a signal
 * or did not stop within timeout_ms, after which it is killed). */
int test_http_stop_server(pid_t pid, int timeout_ms);

/* Milliseconds on a monotonic clock. */
double test_http_now_ms(void);

#endif
