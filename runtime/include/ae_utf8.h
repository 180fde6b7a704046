/* Streaming generated text: whole UTF-8 characters only, and stop strings.
 *
 * A token's piece can end inside a multi-byte character (byte-level BPE, SentencePiece byte
 * fallback), and a stop string can span several pieces. An ae_utf8_stream takes piece bytes as they
 * come and passes text on to a sink only when it is final:
 *   - a partial UTF-8 sequence is held until its last byte arrives; bytes that cannot be part of a
 *     valid sequence (stray continuation bytes, overlong forms, surrogates, values past U+10FFFF)
 *     become U+FFFD, one per maximal invalid subpart as Unicode recommends, and a sequence still
 *     incomplete at ae_utf8_stream_flush becomes one U+FFFD;
 *   - text that could be the start of a stop string is held until it either completes the stop
 *     string (the stream stops; the stop string and everything after it are never passed on) or
 *     can no longer match (it is passed on).
 * Every sink call carries whole characters. The stream allocates at creation only.
 */
#ifndef AE_UTF8_H
#define AE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae_error.h"

/* Receives final text: len bytes of valid UTF-8 (not NUL-terminated), never empty. */
typedef void (*ae_utf8_sink_fn)(void *ctx, const char *text, size_t len);

typedef struct ae_utf8_stream ae_utf8_stream;

/* Creates a stream that writes to sink. stops holds n_stops NUL-terminated stop strings (copied),
 * each non-empty valid UTF-8; n_stops may be 0. On failure *out is untouched and err names the
 * stop string at fault. */
int ae_utf8_stream_create(ae_utf8_stream **out, const char *const *stops, size_t n_stops,
                          ae_utf8_sink_fn sink, void *ctx, ae_error *err);

void ae_utf8_stream_destroy(ae_utf8_stream *u);

/* Takes n more bytes. Returns 1 when a stop string has completed (now or before: later bytes are
 * ignored), 0 otherwise. */
int ae_utf8_stream_push(ae_utf8_stream *u, const void *bytes, size_t n);

/* Ends the text: an incomplete sequence becomes U+FFFD and the held text is passed on (unless a
 * stop string completes). Returns 1 when the stream has stopped, 0 otherwise. */
int ae_utf8_stream_flush(ae_utf8_stream *u);

/* Forgets all held text and the stop, for the next generation. */
void ae_utf8_stream_reset(ae_utf8_stream *u);

/* The index of the stop string that completed, or -1. */
int ae_utf8_stream_stop_index(const ae_utf8_stream *u);

/* Whether s[0..n) is valid UTF-8 (no overlong forms, surrogates or values past U+10FFFF). */
bool ae_utf8_valid(const char *s, size_t n);

#endif
