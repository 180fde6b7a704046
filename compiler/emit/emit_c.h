/* The C backend: the lowered graph (lower.h) printed as one C translation unit per model.
 *
 * The unit holds the model's forward step twice, for the prefill chunk (1..T_MAX tokens, T an argument)
 * and the decode step (T = 1, a constant), each node a block headed by its IR line: calls into the
 * runtime's kernels with constant arguments and fused elementwise chains as inline loops; then the model
 * description the runtime reads, and main. Its text comes from the snippets of templates/; it compiles
 * with no warnings under -Wall -Wextra with gcc and with libtcc.
 */
#ifndef AE_EMIT_C_H
#define AE_EMIT_C_H

#include <stdbool.h>
#include <stdio.h>

#include "emit_vk.h"
#include "import.h"
#include "lower.h"
#include "pack_build.h"
#include "pass.h"

/* The C backend as a target of the lowering: the CPU kernels, the arena aligned to 64 bytes. */
extern const struct lower_target emit_c_target;

struct emit_options {
    const char *model_file;   /* the GGUF's file name, for comments and --info */
    const char *model_name;   /* general.name, or the file's name */
    const char *info;         /* what --info prints about the compilation */
    const char *compiler;     /* what --version says built the program */
    int32_t t_max;            /* the largest step */
    const struct emit_vk_options *vk; /* the Vulkan half too (emit_vk.h); NULL: the CPU only */
    const char *tokenizer;    /* the model's tokenizer kind, "&ae_tokenizer_spm" etc.; NULL: none known */
    bool no_server;           /* a program linked with --static: no --serve */
};

/* Writes the program for graph g after the passes (c holds the plan and the constants; pb the weight
 * offsets). Fails, naming the node, for an op or parameter the CPU kernels cannot run (lower_program). */
int emit_c(FILE *out, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
           const struct import_hparams *hp, const struct emit_options *o, ae_error *err);

#endif
