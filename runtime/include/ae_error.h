/* Errors that point at the input.
 *
 * Every runtime function that reads untrusted input returns 0 on success and -1 on failure, and on
 * failure fills an ae_error with one line that names the file, the byte offset, the key or tensor,
 * what was expected and what was found. The runtime never exits or aborts on bad input: main decides.
 */
#ifndef AE_ERROR_H
#define AE_ERROR_H

#include <stddef.h>

typedef struct ae_error {
    char msg[1024];
} ae_error;

/* Formats a message into err (when err is not NULL) and returns -1, so a failing path reads
 * `return ae_fail(err, "...", ...);`. */
int ae_fail(ae_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message and returns -1. */
int ae_fail_prefix(ae_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For "did you mean" messages: the name among names[0..n) closest to word (a name the word starts
 * with, or within an edit distance of a third of the word's length, at least 2), or NULL. */
const char *ae_closest_name(const char *word, const char *const *names, size_t n);

#endif
