/* The targets aetherc builds programs for, and where each one's runtime library is.
 *
 * A target is a GNU triple. The host's own target uses the runtime aetherc was built with (beside it in
 * the build tree, or under the install prefix); another target uses a runtime cross-built for it (`make
 * runtime-aarch64` puts it in build/aarch64-linux-gnu/, `make install` in PREFIX/lib/aarch64-linux-gnu/)
 * and the cross compiler named after the triple (aarch64-linux-gnu-gcc, as Debian's packages install it),
 * with the target's libsodium from Debian's multiarch packages. The runtime's headers are the same for
 * every target.
 */
#include "toolchain.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ae_build_info.h"

static const char *const x86_64_march[] = {"native", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", NULL};
static const char *const aarch64_march[] = {"native", "armv8-a", "armv8.2-a+dotprod", "armv8.6-a+i8mm", NULL};

const struct cc_target cc_targets[] = {
    {"x86_64-linux-gnu", "amd64", x86_64_march},
    {"aarch64-linux-gnu", "arm64", aarch64_march},
    {NULL, NULL, NULL},
};

const struct cc_target *cc_target_find(const char *triple)
{
    for (const struct cc_target *t = cc_targets; t->triple; t++)
        if (!strcmp(t->triple, triple))
            return t;
    return NULL;
}

const struct cc_target *cc_target_host(void)
{
#if defined(__x86_64__)
    return cc_target_find("x86_64-linux-gnu");
#elif defined(__aarch64__)
    return cc_target_find("aarch64-linux-gnu");
#else
    return NULL;
#endif
}

bool cc_target_takes_march(const struct cc_target *t, const char *march)
{
    for (const char *const *m = t->march; *m; m++)
        if (!strcmp(*m, march))
            return true;
    return false;
}

void cc_target_march_list(const struct cc_target *t, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; t->march[i] && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i == 0 ? "" : t->march[i + 1] ? ", " : " or ", t->march[i]);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The runtime in dir (the build tree: build/, or build/<triple>/ for another target's) with the headers
 * in include_dir; true when both are there. */
static bool found(struct toolchain_paths *p, const char *lib_dir, const char *include_dir)
{
    char probe[PATH_MAX + 16];
    snprintf(p->runtime_lib, sizeof p->runtime_lib, "%s/libaether_rt.a", lib_dir);
    snprintf(p->include_dir, sizeof p->include_dir, "%s", include_dir);
    snprintf(probe, sizeof probe, "%s/ae_gguf.h", p->include_dir);
    return is_file(p->runtime_lib) && is_file(probe);
}

/* libsodium's static library for target: the one aetherc was built with for the host; for another
 * target Debian's multiarch one (libsodium-dev:arm64 for aarch64). */
static int find_sodium(struct toolchain_paths *p, const struct cc_target *target, bool host, ae_error *err)
{
    if (host)
        snprintf(p->sodium_lib, sizeof p->sodium_lib, "%s", AE_SODIUM_LIB);
    else
        snprintf(p->sodium_lib, sizeof p->sodium_lib, "/usr/lib/%s/libsodium.a", target->triple);
    if (is_file(p->sodium_lib))
        return 0;
    if (host)
        return ae_fail(err, "cannot find libsodium's static library %s, which every program links: install "
                       "libsodium-dev", p->sodium_lib);
    return ae_fail(err, "cannot find libsodium's static library for %s, %s, which every program links: install "
                   "Debian's libsodium-dev:%s (after dpkg --add-architecture %s)", target->triple, p->sodium_lib,
                   target->debian_arch, target->debian_arch);
}

int toolchain_find(struct toolchain_paths *p, const struct cc_target *target, ae_error *err)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return ae_fail(err, "cannot find aetherc's own location: %s", strerror(errno));
    exe[n] = 0;
    const char *dir = dirname(exe);
    const bool host = target == cc_target_host();
    if (find_sodium(p, target, host, err) < 0)
        return -1;
    char lib[PATH_MAX], inc[PATH_MAX];
    /* The build tree: build/aetherc beside build/libaether_rt.a (or build/<triple>/), headers in
     * runtime/include/. */
    if (host)
        snprintf(lib, sizeof lib, "%s", dir);
    else
        snprintf(lib, sizeof lib, "%s/%s", dir, target->triple);
    snprintf(inc, sizeof inc, "%s/../runtime/include", dir);
    if (found(p, lib, inc))
        return 0;
    char build_lib[PATH_MAX + 16];
    snprintf(build_lib, sizeof build_lib, "%s/libaether_rt.a", lib);
    /* An installed tree: PREFIX/bin/aetherc, PREFIX/lib/[<triple>/]libaether_rt.a, PREFIX/include/aether/. */
    if (host)
        snprintf(lib, sizeof lib, "%s/../lib", dir);
    else
        snprintf(lib, sizeof lib, "%s/../lib/%s", dir, target->triple);
    snprintf(inc, sizeof inc, "%s/../include/aether", dir);
    if (found(p, lib, inc))
        return 0;
    if (!host)
        return ae_fail(err, "no runtime library for %s: looked for %s and %s; build it with 'make runtime-%.*s' "
                       "(it needs %s-gcc)", target->triple, build_lib, p->runtime_lib,
                       (int)strcspn(target->triple, "-"), target->triple, target->triple);
    return ae_fail(err, "cannot find the runtime library: looked for %s and %s; reinstall with 'make install'",
                   build_lib, p->runtime_lib);
}
