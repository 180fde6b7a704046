/* The two toolchains that turn generated C into a program: gcc (a separate process; the default) and
 * libtcc (in-process, milliseconds; also runs the program in memory for `aetherc run`).
 *
 * Both compile one translation unit against the runtime's headers and link the runtime library
 * (libaether_rt.a) and libsodium (libsodium.a, the weights' hash) statically, so the result needs only
 * libc, libm and libpthread.
 */
#ifndef AE_TOOLCHAIN_H
#define AE_TOOLCHAIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "ae_error.h"

/* Where the runtime's headers and library are: beside aetherc in the build tree (build/aetherc,
 * build/libaether_rt.a, runtime/include/), or under the install prefix (bin/, lib/, include/aether/). */
struct toolchain_paths {
    char include_dir[PATH_MAX];
    char runtime_lib[PATH_MAX];
    char sodium_lib[PATH_MAX];   /* where libsodium.a was when aetherc was built */
};

int toolchain_find(struct toolchain_paths *p, ae_error *err);

struct cc_options {
    const char *march;   /* gcc: "native", "x86-64-v2", "x86-64-v3", "x86-64-v4"; NULL: the compiler's default */
    bool debug;          /* -g */
};

/* The -march values --march accepts, NULL-terminated. */
extern const char *const cc_march_names[];

/* gcc -O2 [-march=M] c_file -o out with the runtime; the compiler's own messages go to stderr, and a
 * failure says so. */
int cc_gcc_build(const char *c_file, const char *out, const struct toolchain_paths *p, const struct cc_options *o,
                 ae_error *err);

/* libtcc: compiles source (NUL-terminated C) into the executable out. libtcc's messages are gathered
 * into err, one line. */
int cc_tcc_build(const char *source, const char *out, const struct toolchain_paths *p, ae_error *err);

/* libtcc: compiles source into memory, linked against aetherc's own runtime, and calls its main(argc,
 * argv); *status is what main returned. Prints the time from t_start (CLOCK_MONOTONIC
 * seconds) to the program's start as the compile time. */
int cc_tcc_run(const char *source, const struct toolchain_paths *p, int argc, char **argv, int *status, double t_start,
               ae_error *err);

#endif
