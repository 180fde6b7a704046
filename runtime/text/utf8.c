/* UTF-8 streaming with stop strings (see ae_utf8.h).
 *
 * Two stages. The decoder assembles complete characters from the bytes pushed, replacing invalid
 * input with U+FFFD. The matcher keeps `held`, the longest suffix of the text so far that is a
 * proper prefix of some stop string; each new character is appended to it, a stop string ending
 * there stops the stream, and whatever can no longer start a stop string moves to the output. A
 * stop string that ends at the new character starts inside held (held is the longest candidate),
 * so held never needs more than the longest stop string's length. Output collects in a small
 * buffer that reaches the sink at the end of each push.
 */
#include "ae_utf8.h"

#include <stdlib.h>
#include <string.h>

#define UTF8_OUT_CAP 256

static const char utf8_replacement[3] = { (char)0xEF, (char)0xBF, (char)0xBD }; /* U+FFFD */

struct utf8_stop {
    char *text;
    size_t len;
};

struct ae_utf8_stream {
    ae_utf8_sink_fn sink;
    void *ctx;
    struct utf8_stop *stops;   /* (n_stops) */
    size_t n_stops;
    int stopped;               /* index of the stop string that completed, or -1 */
    uint8_t pend[4];           /* bytes of the character being assembled */
    size_t pend_len;
    size_t pend_need;          /* its full length, from the lead byte */
    char *held;                /* (max stop length + 4) text that may start a stop string */
    size_t held_len;
    char out[UTF8_OUT_CAP];    /* final text not yet given to the sink */
    size_t out_len;
};

/* ---- Validation ----------------------------------------------------------------------------------- */

/* The sequence length a lead byte starts (2..4), or 0 when it cannot start one. ASCII is 1. */
static size_t utf8_lead_len(uint8_t b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Whether b can follow the bytes seq[0..pos) of a sequence (pos >= 1). The second byte's range
 * depends on the lead, which rules out overlong forms, surrogates and values past U+10FFFF. */
static bool utf8_cont_ok(const uint8_t *seq, size_t pos, uint8_t b)
{
    uint8_t lo = 0x80, hi = 0xBF;
    if (pos == 1) {
        switch (seq[0]) {
        case 0xE0: lo = 0xA0; break;
        case 0xED: hi = 0x9F; break;
        case 0xF0: lo = 0x90; break;
        case 0xF4: hi = 0x8F; break;
        default: break;
        }
    }
    return b >= lo && b <= hi;
}

bool ae_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_lead_len(p[i]);
        if (len == 0 || n - i < len)
            return false;
        for (size_t k = 1; k < len; k++)
            if (!utf8_cont_ok(p + i, k, p[i + k]))
                return false;
        i += len;
    }
    return true;
}

/* ---- Output --------------------------------------------------------------------------------------- */

static void utf8_out_flush(ae_utf8_stream *u)
{
    if (u->out_len > 0) {
        u->sink(u->ctx, u->out, u->out_len);
        u->out_len = 0;
    }
}

/* Queues final text (whole characters) for the sink. */
static void utf8_out_add(ae_utf8_stream *u, const char *text, size_t n)
{
    if (n == 0)
        return;
    if (u->out_len + n > UTF8_OUT_CAP)
        utf8_out_flush(u);
    if (n > UTF8_OUT_CAP) {
        u->sink(u->ctx, text, n);
        return;
    }
    memcpy(u->out + u->out_len, text, n);
    u->out_len += n;
}

/* ---- Stop strings --------------------------------------------------------------------------------- */

/* Whether the m bytes at s are a proper prefix of some stop string. */
static bool utf8_is_stop_prefix(const ae_utf8_stream *u, const char *s, size_t m)
{
    for (size_t i = 0; i < u->n_stops; i++)
        if (u->stops[i].len > m && memcmp(u->stops[i].text, s, m) == 0)
            return true;
    return false;
}

/* Takes one complete character through the stop-string matcher. */
static void utf8_take_char(ae_utf8_stream *u, const char *ch, size_t n)
{
    if (u->stopped >= 0)
        return;
    if (u->n_stops == 0) {
        utf8_out_add(u, ch, n);
        return;
    }
    memcpy(u->held + u->held_len, ch, n);
    u->held_len += n;

    /* A stop string ending here: the longest one starts earliest, so the least text goes out. */
    int best = -1;
    for (size_t i = 0; i < u->n_stops; i++) {
        const struct utf8_stop *s = &u->stops[i];
        if (s->len <= u->held_len && memcmp(u->held + u->held_len - s->len, s->text, s->len) == 0 &&
            (best < 0 || s->len > u->stops[best].len))
            best = (int)i;
    }
    if (best >= 0) {
        utf8_out_add(u, u->held, u->held_len - u->stops[best].len);
        u->held_len = 0;
        u->stopped = best;
        return;
    }

    size_t k = 0; /* start of the longest suffix that may still grow into a stop string */
    while (k < u->held_len && !utf8_is_stop_prefix(u, u->held + k, u->held_len - k))
        k++;
    utf8_out_add(u, u->held, k);
    memmove(u->held, u->held + k, u->held_len - k);
    u->held_len -= k;
}

/* ---- Decoding ------------------------------------------------------------------------------------- */

/* Replaces the bytes being assembled (a maximal invalid subpart) with one U+FFFD. */
static void utf8_pend_reject(ae_utf8_stream *u)
{
    u->pend_len = 0;
    u->pend_need = 0;
    utf8_take_char(u, utf8_replacement, sizeof utf8_replacement);
}

static void utf8_take_byte(ae_utf8_stream *u, uint8_t b)
{
    if (u->pend_len > 0) {
        if (utf8_cont_ok(u->pend, u->pend_len, b)) {
            u->pend[u->pend_len++] = b;
            if (u->pend_len == u->pend_need) {
                size_t n = u->pend_len;
                u->pend_len = 0;
                u->pend_need = 0;
                utf8_take_char(u, (const char *)u->pend, n);
            }
            return;
        }
        utf8_pend_reject(u); /* b starts afresh below */
    }
    size_t len = utf8_lead_len(b);
    if (len == 1) {
        char c = (char)b;
        utf8_take_char(u, &c, 1);
    } else if (len == 0) {
        utf8_take_char(u, utf8_replacement, sizeof utf8_replacement);
    } else {
        u->pend[0] = b;
        u->pend_len = 1;
        u->pend_need = len;
    }
}

/* ---- Public --------------------------------------------------------------------------------------- */

int ae_utf8_stream_create(ae_utf8_stream **out, const char *const *stops, size_t n_stops,
                          ae_utf8_sink_fn sink, void *ctx, ae_error *err)
{
    size_t max_len = 0;
    for (size_t i = 0; i < n_stops; i++) {
        if (!stops[i] || !stops[i][0])
            return ae_fail(err, "stop string %zu is empty: expected at least one character", i);
        size_t len = strlen(stops[i]);
        if (!ae_utf8_valid(stops[i], len))
            return ae_fail(err, "stop string %zu (\"%.64s\") is not valid UTF-8", i, stops[i]);
        if (len > max_len)
            max_len = len;
    }

    ae_utf8_stream *u = calloc(1, sizeof *u);
    if (!u)
        goto fail_alloc;
    u->sink = sink;
    u->ctx = ctx;
    u->stopped = -1;
    u->held = malloc(max_len + 4);
    u->stops = calloc(n_stops > 0 ? n_stops : 1, sizeof *u->stops);
    if (!u->held || !u->stops)
        goto fail_stream;
    for (size_t i = 0; i < n_stops; i++) {
        u->stops[i].len = strlen(stops[i]);
        u->stops[i].text = malloc(u->stops[i].len);
        if (!u->stops[i].text)
            goto fail_stream;
        memcpy(u->stops[i].text, stops[i], u->stops[i].len);
        u->n_stops = i + 1;
    }
    *out = u;
    return 0;

fail_stream:
    ae_utf8_stream_destroy(u);
fail_alloc:
    return ae_fail(err, "out of memory for a text stream with %zu stop strings", n_stops);
}

void ae_utf8_stream_destroy(ae_utf8_stream *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n_stops; i++)
        free(u->stops[i].text);
    free(u->stops);
    free(u->held);
    free(u);
}

int ae_utf8_stream_push(ae_utf8_stream *u, const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n && u->stopped < 0; i++)
        utf8_take_byte(u, p[i]);
    utf8_out_flush(u);
    return u->stopped >= 0;
}

int ae_utf8_stream_flush(ae_utf8_stream *u)
{
    if (u->stopped < 0 && u->pend_len > 0)
        utf8_pend_reject(u);
    if (u->stopped < 0) {
        utf8_out_add(u, u->held, u->held_len);
        u->held_len = 0;
    }
    utf8_out_flush(u);
    return u->stopped >= 0;
}

void ae_utf8_stream_reset(ae_utf8_stream *u)
{
    u->stopped = -1;
    u->pend_len = 0;
    u->pend_need = 0;
    u->held_len = 0;
    u->out_len = 0;
}

int ae_utf8_stream_stop_index(const ae_utf8_stream *u)
{
    return u->stopped;
}
