/* Checks on aetherc's outputs before any work (output_check.h). */
#include "output_check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ae_program.h"

/* Whether a new file can be made in dir: the only test that holds for read-only file systems and for
 * root, to whom access() says yes everywhere. */
static int probe_dir(const char *flag, const char *path, const char *dir, ae_error *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return ae_fail(err, "%s %s: the folder %s does not exist", flag, path, dir);
    if (!S_ISDIR(st.st_mode))
        return ae_fail(err, "%s %s: %s is not a folder", flag, path, dir);
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/.aetherc-probe-XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0)
        return ae_fail(err, "%s %s: cannot write in the folder %s: %s", flag, path, dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

/* The folder part of path ("." for a bare name). */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, size, ".");
    else if (slash == path)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* Whether the file at path starts with magic (n bytes), or is empty. */
static bool starts_with(const char *path, const char *magic, size_t n)
{
    char head[16] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t got = read(fd, head, n);
    close(fd);
    return got == 0 || (got == (ssize_t)n && !memcmp(head, magic, n));
}

int output_check(const char *flag, const char *path, enum output_kind kind, const char *input, ae_error *err)
{
    if (!*path)
        return ae_fail(err, "%s: the path is empty", flag);
    struct stat out, in;
    if (stat(path, &out) == 0) {
        if (S_ISDIR(out.st_mode))
            return ae_fail(err, "%s %s: that is a folder; %s names the file to write", flag, path, flag);
        if (input && stat(input, &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
            return ae_fail(err, "%s %s: that is the model itself (%s); writing it would destroy the model", flag,
                           path, input);
        if (kind == OUTPUT_PROGRAM && !starts_with(path, "\x7f" "ELF", 4))
            return ae_fail(err, "%s %s: the file exists and is not a program; aetherc replaces only programs "
                           "(remove it, or choose another name)", flag, path);
        if (kind == OUTPUT_WEIGHTS && !starts_with(path, AE_PACK_MAGIC, 8))
            return ae_fail(err, "%s %s: the file exists and is not a weights pack; aetherc replaces only weights "
                           "packs (remove it, or choose another name)", flag, path);
    } else if (errno != ENOENT) {
        return ae_fail(err, "%s %s: %s", flag, path, strerror(errno));
    }
    char dir[PATH_MAX];
    dir_of(path, dir, sizeof dir);
    return probe_dir(flag, path, dir, err);
}

int output_check_dir(const char *flag, const char *dir, ae_error *err)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return probe_dir(flag, dir, dir, err);
    char parent[PATH_MAX];
    dir_of(dir, parent, sizeof parent);
    return probe_dir(flag, dir, parent, err);
}
