/* GET /metrics: the server's counters and histograms as Prometheus text (exposition format 0.0.4).
 *
 *   aether_requests_total{status}             answers sent, by HTTP status
 *   aether_requests_cancelled_total           requests whose client left before the end
 *   aether_prompt_tokens_total                prompt tokens of requests that reached a slot
 *   aether_prompt_tokens_cached_total         of those, the ones their slot's cache held already
 *   aether_generated_tokens_total             tokens generated
 *   aether_time_to_first_token_seconds        histogram: from the request's submission to its first token
 *   aether_time_per_output_token_seconds      histogram: between a request's consecutive tokens
 *   aether_queue_depth                        requests waiting for a slot
 *   aether_slots_busy, aether_slots_total     slots with a request, and all of them
 *   aether_kv_cache_tokens_used, aether_kv_cache_tokens_total, aether_kv_cache_usage_ratio
 *   aether_steps_total, aether_step_tokens_total   forward steps and the tokens they took (their ratio
 *                                             is the mean batch size)
 * Everything is updated under the server's lock, and rendered under it.
 */
#include "serve.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double serve_ttft_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
static const double serve_tpot_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

_Static_assert(sizeof serve_ttft_bounds / sizeof serve_ttft_bounds[0] <= SERVE_HIST_MAX, "too many buckets");
_Static_assert(sizeof serve_tpot_bounds / sizeof serve_tpot_bounds[0] <= SERVE_HIST_MAX, "too many buckets");

void serve_metrics_init(struct serve_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->ttft.bounds = serve_ttft_bounds;
    m->ttft.n_bounds = (int)(sizeof serve_ttft_bounds / sizeof serve_ttft_bounds[0]);
    m->tpot.bounds = serve_tpot_bounds;
    m->tpot.n_bounds = (int)(sizeof serve_tpot_bounds / sizeof serve_tpot_bounds[0]);
}

void serve_histogram_add(struct serve_histogram *h, double seconds)
{
    int b = 0;
    while (b < h->n_bounds && seconds > h->bounds[b])
        b++;
    h->counts[b]++;
    h->sum += seconds;
    h->n++;
}

void serve_metrics_count_status(struct serve_metrics *m, int status)
{
    int i = 0;
    while (i < m->n_status && m->status_code[i] != status)
        i++;
    if (i == m->n_status) {
        if (m->n_status == SERVE_STATUS_MAX)
            return;
        m->status_code[m->n_status++] = status;
    }
    m->status_count[i]++;
}

/* A growing text. */
struct metrics_text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void text_add(struct metrics_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct metrics_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->failed ? 0 : vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (t->failed || n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static void text_metric(struct metrics_text *t, const char *name, const char *type, const char *help)
{
    text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void text_histogram(struct metrics_text *t, const char *name, const char *help, const struct serve_histogram *h)
{
    text_metric(t, name, "histogram", help);
    uint64_t cum = 0;
    for (int b = 0; b < h->n_bounds; b++) {
        cum += h->counts[b];
        text_add(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, h->bounds[b], cum);
    }
    text_add(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n", name, h->n, name, h->sum,
             name, h->n);
}

char *serve_metrics_render(const struct serve *s)
{
    const struct serve_metrics *m = &s->metrics;
    struct metrics_text t = { .cap = 4096 };
    if (!(t.buf = malloc(t.cap)))
        return NULL;
    t.buf[0] = 0;
    text_metric(&t, "aether_requests_total", "counter", "Answers sent, by HTTP status.");
    for (int i = 0; i < m->n_status; i++)
        text_add(&t, "aether_requests_total{status=\"%d\"} %" PRIu64 "\n", m->status_code[i], m->status_count[i]);
    text_metric(&t, "aether_requests_cancelled_total", "counter", "Requests whose client went away before the end.");
    text_add(&t, "aether_requests_cancelled_total %" PRIu64 "\n", m->requests_cancelled);
    text_metric(&t, "aether_prompt_tokens_total", "counter", "Prompt tokens of requests that reached a slot.");
    text_add(&t, "aether_prompt_tokens_total %" PRIu64 "\n", m->prompt_tokens);
    text_metric(&t, "aether_prompt_tokens_cached_total", "counter",
                "Prompt tokens their slot's cache held already (not computed again).");
    text_add(&t, "aether_prompt_tokens_cached_total %" PRIu64 "\n", m->prompt_tokens_cached);
    text_metric(&t, "aether_generated_tokens_total", "counter", "Tokens generated.");
    text_add(&t, "aether_generated_tokens_total %" PRIu64 "\n", m->generated_tokens);
    text_histogram(&t, "aether_time_to_first_token_seconds", "From a request's submission to its first token.", &m->ttft);
    text_histogram(&t, "aether_time_per_output_token_seconds", "Between consecutive tokens of a request.", &m->tpot);
    text_metric(&t, "aether_queue_depth", "gauge", "Requests waiting for a slot.");
    text_add(&t, "aether_queue_depth %" PRId32 "\n", s->q_len);
    text_metric(&t, "aether_slots_busy", "gauge", "Slots generating or reading a prompt.");
    text_add(&t, "aether_slots_busy %" PRId32 "\n", s->n_busy);
    text_metric(&t, "aether_slots_total", "gauge", "Slots (--parallel).");
    text_add(&t, "aether_slots_total %" PRId32 "\n", s->n_slots);
    int64_t total = (int64_t)s->n_slots * s->st.n_ctx;
    text_metric(&t, "aether_kv_cache_tokens_used", "gauge", "KV cache positions in use, all slots together.");
    text_add(&t, "aether_kv_cache_tokens_used %" PRId64 "\n", s->kv_used);
    text_metric(&t, "aether_kv_cache_tokens_total", "gauge", "KV cache positions, all slots together.");
    text_add(&t, "aether_kv_cache_tokens_total %" PRId64 "\n", total);
    text_metric(&t, "aether_kv_cache_usage_ratio", "gauge", "KV cache positions in use over all positions.");
    text_add(&t, "aether_kv_cache_usage_ratio %.6f\n", total ? (double)s->kv_used / (double)total : 0.0);
    text_metric(&t, "aether_steps_total", "counter", "Forward steps run.");
    text_add(&t, "aether_steps_total %" PRIu64 "\n", m->steps);
    text_metric(&t, "aether_step_tokens_total", "counter", "Tokens the forward steps took, all slots together.");
    text_add(&t, "aether_step_tokens_total %" PRIu64 "\n", m->step_rows);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
