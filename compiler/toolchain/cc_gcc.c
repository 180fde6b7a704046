/* The gcc toolchain: runs gcc as a separate process on a generated C file. */
#include "toolchain.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int cc_gcc_build(const char *c_file, const char *out, const struct toolchain_paths *p, const struct cc_options *o,
                 ae_error *err)
{
    char inc[PATH_MAX + 2], march[64], cross[80], map[PATH_MAX + 16];
    snprintf(inc, sizeof inc, "-I%s", p->include_dir);
    const char *argv[32];
    int argc = 0;
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "gcc";
    if (o->target != cc_target_host()) {
        snprintf(cross, sizeof cross, "%s-gcc", o->target->triple);
        cc = cross;
    }
    argv[argc++] = cc;
    argv[argc++] = "-std=c17";
    argv[argc++] = "-O2";
    /* A program to ship: without -g, no symbols or debug information (the runtime library has them). */
    argv[argc++] = o->debug ? "-g" : "-s";
    if (o->march) {
        snprintf(march, sizeof march, "-march=%s", o->march);
        argv[argc++] = march;
    }
    /* Only what the program reaches: the runtime's functions and data are each in a section of their
     * own, so the linker drops what no path from main uses (docs/targets.md, Size). */
    argv[argc++] = "-fno-asynchronous-unwind-tables";
    argv[argc++] = "-fno-unwind-tables";
    argv[argc++] = "-Wl,--gc-sections";
    if (o->static_link)
        argv[argc++] = "-static";
    if (o->link_map) {
        snprintf(map, sizeof map, "-Wl,-Map=%s", o->link_map);
        argv[argc++] = map;
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
        return ae_fail(err, "cannot run %s: %s (%s)", cc, strerror(rc),
                       o->target == cc_target_host() ? "is gcc installed? try --cc tcc"
                                                     : "install the cross compiler, e.g. Debian's gcc-aarch64-linux-gnu");
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return ae_fail(err, "waiting for %s: %s", cc, strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ae_fail(err, "%s failed (exit status %d); its messages are above", cc,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
