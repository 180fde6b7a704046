/* The gcc toolchain: runs gcc as a separate process on a generated C file. */
#include "toolchain.h"

#include <errno.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ae_build_info.h"

extern char **environ;

const char *const cc_march_names[] = {"native", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", NULL};

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int toolchain_find(struct toolchain_paths *p, ae_error *err)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return ae_fail(err, "cannot find aetherc's own location: %s", strerror(errno));
    exe[n] = 0;
    const char *dir = dirname(exe);
    /* The build tree: build/aetherc beside build/libaether_rt.a, headers in runtime/include/. */
    snprintf(p->runtime_lib, sizeof p->runtime_lib, "%s/libaether_rt.a", dir);
    snprintf(p->include_dir, sizeof p->include_dir, "%s/../runtime/include", dir);
    char probe[PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/ae_gguf.h", p->include_dir);
    snprintf(p->sodium_lib, sizeof p->sodium_lib, "%s", AE_SODIUM_LIB);
    if (!is_file(p->sodium_lib))
        return ae_fail(err, "cannot find libsodium's static library %s, which every program links: install "
                       "libsodium-dev", p->sodium_lib);
    if (is_file(p->runtime_lib) && is_file(probe))
        return 0;
    /* An installed tree: PREFIX/bin/aetherc, PREFIX/lib/libaether_rt.a, PREFIX/include/aether/. */
    snprintf(p->runtime_lib, sizeof p->runtime_lib, "%s/../lib/libaether_rt.a", dir);
    snprintf(p->include_dir, sizeof p->include_dir, "%s/../include/aether", dir);
    snprintf(probe, sizeof probe, "%s/ae_gguf.h", p->include_dir);
    if (is_file(p->runtime_lib) && is_file(probe))
        return 0;
    return ae_fail(err, "cannot find the runtime library: looked for %s/libaether_rt.a and %s; "
                   "reinstall with 'make install'", dir, p->runtime_lib);
}

int cc_gcc_build(const char *c_file, const char *out, const struct toolchain_paths *p, const struct cc_options *o,
                 ae_error *err)
{
    char inc[PATH_MAX + 2], march[64];
    snprintf(inc, sizeof inc, "-I%s", p->include_dir);
    const char *argv[32];
    int argc = 0;
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "gcc";
    argv[argc++] = cc;
    argv[argc++] = "-std=c17";
    argv[argc++] = "-O2";
    /* A program to ship: without -g, no symbols or debug information (the runtime library has them). */
    argv[argc++] = o->debug ? "-g" : "-s";
    if (o->march) {
        snprintf(march, sizeof march, "-march=%s", o->march);
        argv[argc++] = march;
    }
    argv[argc++] = "-Wall";
    argv[argc++] = "-Wextra";
    argv[argc++] = inc;
    argv[argc++] = "-o";
    argv[argc++] = out;
    argv[argc++] = c_file;
    argv[argc++] = p->runtime_lib;
    argv[argc++] = p->sodium_lib;
    argv[argc++] = "-lm";
    argv[argc++] = "-lpthread";
    argv[argc] = NULL;
    pid_t pid;
    int rc = posix_spawnp(&pid, cc, NULL, NULL, (char *const *)argv, environ);
    if (rc != 0)
        return ae_fail(err, "cannot run %s: %s (is gcc installed? try --cc tcc)", cc, strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return ae_fail(err, "waiting for %s: %s", cc, strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ae_fail(err, "%s failed (exit status %d); its messages are above", cc,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
