/* The two toolchains that turn generated C into a program: gcc (a separate process; the default) and
 * libtcc (in-process, milliseconds; also runs the program in memory for `aetherc run`).
 *
 * Both compile one translation unit against the runtime's headers and link the runtime library
 * (libaether_rt.a) and libsodium (libsodium.a, the weights' hash) statically, so the result needs only
 * libc, libm and libpthread (or nothing, linked with --static). gcc builds for any target in cc_targets
 * (another machine's through its cross gcc); libtcc for the host only.
 */
#ifndef AE_TOOLCHAIN_H
#define AE_TOOLCHAIN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae_error.h"

/* A machine programs are built for (target.c). */
struct cc_target {
    const char *triple;         /* GNU triple: "x86_64-linux-gnu", "aarch64-linux-gnu" */
    const char *debian_arch;    /* Debian's name for it: "amd64", "arm64" */
    const char *const *march;   /* the --march values it takes, NULL-terminated */
};

/* Every target, ended by one with a NULL triple. */
extern const struct cc_target cc_targets[];

/* The target of this triple, or NULL. */
const struct cc_target *cc_target_find(const char *triple);

/* The machine aetherc runs on (NULL on one that is not in cc_targets). */
const struct cc_target *cc_target_host(void);

bool cc_target_takes_march(const struct cc_target *t, const char *march);

/* "native, x86-64, ... or x86-64-v4": the --march values of t, for messages. */
void cc_target_march_list(const struct cc_target *t, char *buf, size_t size);

/* Where the runtime's headers and library are: beside aetherc in the build tree (build/aetherc,
 * build/libaether_rt.a, runtime/include/), or under the install prefix (bin/, lib/, include/aether/).
 * Another target's library is in a folder named after its triple below those (build/<triple>/,
 * lib/<triple>/). */
struct toolchain_paths {
    char include_dir[PATH_MAX];
    char runtime_lib[PATH_MAX];
    char sodium_lib[PATH_MAX];   /* the host's: where libsodium.a was when aetherc was built; another
                                  * target's: Debian's multiarch one, /usr/lib/<triple>/libsodium.a */
};

int toolchain_find(struct toolchain_paths *p, const struct cc_target *target, ae_error *err);

struct cc_options {
    const struct cc_target *target; /* the host's: gcc (or $CC); another: its cross gcc, <triple>-gcc */
    const char *march;   /* one of target->march; NULL: the compiler's default */
    bool static_link;    /* -static: no loader, no shared libc */
    bool debug;          /* -g */
    const char *link_map; /* the linker's map of the program goes here; NULL: none */
};

/* gcc -O2 [-march=M] [-static] c_file -o out with the runtime (the target's cross gcc for another
 * target); the compiler's own messages go to stderr, and a failure says so. */
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
