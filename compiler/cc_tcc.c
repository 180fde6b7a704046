/* The libtcc toolchain: compiles generated C in-process, into an executable or into memory. */
#include "toolchain.h"

#include <libtcc.h>
#include <stdio.h>
#include <string.h>

/* libtcc reports through a callback; keep the first message for the error. */
struct tcc_diag {
    ae_error *err;
    int n;
};

static void on_error(void *opaque, const char *msg)
{
    struct tcc_diag *d = opaque;
    if (d->n++ == 0)
        ae_fail(d->err, "tcc: %s", msg);
    fprintf(stderr, "tcc: %s\n", msg);
}

static TCCState *tcc_setup(const char *source, int output, const struct toolchain_paths *p, struct tcc_diag *d)
{
    TCCState *s = tcc_new();
    if (!s) {
        ae_fail(d->err, "tcc: cannot create a compiler state");
        return NULL;
    }
    tcc_set_error_func(s, d, on_error);
    tcc_set_output_type(s, output);
    tcc_add_include_path(s, p->include_dir);
    if (tcc_compile_string(s, source) < 0 || tcc_add_file(s, p->runtime_lib) < 0 || tcc_add_library(s, "m") < 0 ||
        tcc_add_library(s, "pthread") < 0) {
        if (d->n == 0)
            ae_fail(d->err, "tcc: compilation failed");
        tcc_delete(s);
        return NULL;
    }
    return s;
}

int cc_tcc_build(const char *source, const char *out, const struct toolchain_paths *p, ae_error *err)
{
    struct tcc_diag d = {err, 0};
    TCCState *s = tcc_setup(source, TCC_OUTPUT_EXE, p, &d);
    if (!s)
        return -1;
    int rc = tcc_output_file(s, out);
    tcc_delete(s);
    if (rc < 0)
        return d.n ? -1 : ae_fail(err, "tcc: cannot write %s", out);
    return 0;
}

int cc_tcc_run(const char *source, const struct toolchain_paths *p, int argc, char **argv, int *status, ae_error *err)
{
    struct tcc_diag d = {err, 0};
    TCCState *s = tcc_setup(source, TCC_OUTPUT_MEMORY, p, &d);
    if (!s)
        return -1;
    if (tcc_relocate(s, TCC_RELOCATE_AUTO) < 0) {
        tcc_delete(s);
        return d.n ? -1 : ae_fail(err, "tcc: relocation failed");
    }
    int (*entry)(int, char **) = (int (*)(int, char **))tcc_get_symbol(s, "main");
    if (!entry) {
        tcc_delete(s);
        return ae_fail(err, "tcc: the generated program has no main");
    }
    *status = entry(argc, argv);
    tcc_delete(s);
    return 0;
}
