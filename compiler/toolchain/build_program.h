/* From an optimized graph to a program: lay out and hash the weights, emit the C, compile it with gcc
 * or libtcc, and attach the weights (appended to the executable, or in a .weights file beside it); or
 * compile it into memory with libtcc and run it at once on the weights where they lie (aetherc run).
 */
#ifndef AE_BUILD_PROGRAM_H
#define AE_BUILD_PROGRAM_H

#include <stdbool.h>

#include "ae_gguf.h"
#include "ae_program.h"
#include "import.h"
#include "ir.h"
#include "pass.h"
#include "toolchain.h"

struct build_options {
    const char *output;        /* the executable to write */
    bool use_tcc;              /* --cc tcc: libtcc in-process (host target only); otherwise gcc */
    const struct cc_target *target; /* --target; NULL: the host */
    const char *march;         /* --march for gcc, one of target->march; NULL: gcc's default */
    bool static_link;          /* --static: a fully static program (gcc only) */
    const char *emit_c_dir;    /* --emit-c DIR: keep the generated C there (and gcc's link map) */
    bool weights_external;     /* --weights=external: OUTPUT.weights beside the program */
    bool debug;                /* -g */
    bool cpu_only;             /* --backend cpu: leave the Vulkan half out */
    const char *dump_spirv_dir; /* --dump-spirv DIR: each Vulkan kernel's .comp and .spv there */
};

/* The model the graph came from: its file, its metadata and hyperparameters, and the passes' results. */
struct build_model {
    const char *path;
    const ae_gguf *f;
    const struct ir_graph *g;
    const struct pass_ctx *c;
    const struct import_hparams *hp;
};

/* What a build wrote, for aetherc's closing line. */
struct build_result {
    uint64_t program_bytes;    /* the executable, without its weights */
    uint64_t weights_bytes;    /* the packed weights */
    uint8_t weights_hash[AE_HASH_BYTES];
};

/* The files to write must have been checked (output_check.h): a failure here is one of the disk's. */
int build_program(const struct build_model *m, const struct build_options *o, struct build_result *r, ae_error *err);

/* aetherc run: compiles in memory with libtcc and calls the program's main with argv (argv[0] is the
 * program name) and --timings, so that it reports its speed and time to first token. The program reads
 * the weights in place (pack_build.h: the GGUF mapping, or the constants aetherc made); nothing is
 * copied or hashed. *status is what main returned. Prints the compile time to stderr. */
int build_and_run(const struct build_model *m, int argc, char **argv, int *status, ae_error *err);

#endif
