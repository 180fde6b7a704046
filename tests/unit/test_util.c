/* Helpers shared by the Check suites (see test_util.h). */
#include "test_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

const char *test_shared_dir(void)
{
    const char *d = getenv("AE_SHARED");
    struct stat st;
    ck_assert_msg(d && *d, "AE_SHARED is not set: run the tests through make check");
    ck_assert_msg(stat(d, &st) == 0 && S_ISDIR(st.st_mode),
                  "shared test data folder %s is missing: the tests need ../shared beside the repository", d);
    return d;
}

const char *test_shared_path(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", test_shared_dir(), rel);
    return buf;
}

void *test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    ck_assert(buf != NULL);
    ck_assert_msg(fread(buf, 1, (size_t)n, f) == (size_t)n, "short read of %s", path);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

int test_sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (!strstr(cmd, "2>"))
        strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    char sink[4096];
    size_t n = 0, k;
    while ((k = fread(out && n + 1 < cap ? out + n : sink, 1, out && n + 1 < cap ? cap - 1 - n : sizeof sink, p)) > 0)
        if (out && n + 1 < cap)
            n += k;
    if (out && cap)
        out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_remove_dir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
