/* The libtcc toolchain: compiles generated C in-process, into an executable or into memory. */
#include "toolchain.h"

#include "ae_gpu.h"
#include "ae_kernels.h"
#include "ae_profile.h"
#include "ae_program.h"
#include "ae_tokenizer.h"

#include <libtcc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* libtcc reports through a callback; its messages are gathered into the error, "; " between them, so that
 * a failure is reported once, in one line. */
struct tcc_diag {
    ae_error *err;
    int n;
};

static void on_error(void *opaque, const char *msg)
{
    struct tcc_diag *d = opaque;
    if (d->n++ == 0) {
        ae_fail(d->err, "tcc: %s", msg);
        return;
    }
    size_t len = strlen(d->err->msg);
    snprintf(d->err->msg + len, sizeof d->err->msg - len, "; %s", msg);
}

/* The runtime functions generated code calls (the snippets of templates/ that the C printer fills); a
 * program run in memory links them from aetherc itself. */
static const struct {
    const char *name;
    const void *addr;
} jit_symbols[] = {
#define SYM(f) {#f, (const void *)f}
    SYM(ae_attention), SYM(ae_attention_scratch_size), SYM(ae_dequantize_row), SYM(ae_layout_get_row), SYM(ae_fail), SYM(ae_fail_prefix),
    SYM(ae_gelu), SYM(ae_kv_store), SYM(ae_matmul), SYM(ae_matmul_scratch_size), SYM(ae_program_main),
    SYM(ae_rms_norm), SYM(ae_rope), SYM(ae_softmax), SYM(ae_profile_begin), SYM(ae_profile_mark), SYM(ae_profile_end),
#undef SYM
    /* and the runtime's objects it points to */
#define DATA(v) {#v, (const void *)&v}
    DATA(ae_gpu_runtime), DATA(ae_tokenizer_spm), DATA(ae_tokenizer_bpe), DATA(ae_tokenizer_wpm), DATA(ae_server),
    DATA(ae_kernels_f32), DATA(ae_kernels_f16), DATA(ae_kernels_bf16), DATA(ae_kernels_q4_0), DATA(ae_kernels_q4_1),
    DATA(ae_kernels_q5_0), DATA(ae_kernels_q5_1), DATA(ae_kernels_q8_0), DATA(ae_kernels_q2_k), DATA(ae_kernels_q3_k),
    DATA(ae_kernels_q4_k), DATA(ae_kernels_q5_k), DATA(ae_kernels_q6_k), DATA(ae_kernels_iq4_nl),
    DATA(ae_kernels_iq4_xs), DATA(ae_kernels_tq1_0), DATA(ae_kernels_tq2_0),
#undef DATA
};

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
    if (tcc_compile_string(s, source) < 0) {
        if (d->n == 0)
            ae_fail(d->err, "tcc: compilation failed");
        tcc_delete(s);
        return NULL;
    }
    if (output == TCC_OUTPUT_MEMORY) {
        /* In memory the program uses aetherc's own runtime: libtcc 0.9.27 mislinks gcc-built code that
         * reaches libc's data (stdout) through the GOT when it relocates into memory. */
        for (size_t i = 0; i < sizeof jit_symbols / sizeof jit_symbols[0]; i++)
            tcc_add_symbol(s, jit_symbols[i].name, jit_symbols[i].addr);
        return s;
    }
    if (tcc_add_file(s, p->runtime_lib) < 0 || tcc_add_file(s, p->sodium_lib) < 0 || tcc_add_library(s, "m") < 0 ||
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

int cc_tcc_run(const char *source, const struct toolchain_paths *p, int argc, char **argv, int *status, double t_start,
               ae_error *err)
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
    fprintf(stderr, "aetherc: compiled in %.1f ms\n", (seconds() - t_start) * 1e3);
    *status = entry(argc, argv);
    tcc_delete(s);
    return 0;
}
