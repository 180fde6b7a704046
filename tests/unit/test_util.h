/* Helpers shared by the Check suites: where the shared models are, reading whole files, running commands. */
#ifndef AE_TEST_UTIL_H
#define AE_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

/* The shared test data folder (env AE_SHARED, set by make). Fails the test loudly when it is absent. */
const char *test_shared_dir(void);

/* "<shared>/<rel>" in a static buffer that the next call overwrites. */
const char *test_shared_path(const char *rel);

/* Reads a whole file (malloc'd; caller frees) or fails the test. */
void *test_read_file(const char *path, size_t *size);

/* Runs a shell command (printf-style); its stdout and stderr (unless the command redirects stderr itself)
 * go to out, up to cap - 1 bytes and NUL-terminated (out may be NULL: discarded). Returns the exit
 * status, or -1 when the command was killed. */
int test_sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Runs a suite with CK_NORMAL output and returns the process exit status. */
int test_run_suite(Suite *s);

/* Removes a temporary folder and everything in it (a message on failure, no test failure). */
void test_remove_dir(const char *dir);

#endif
