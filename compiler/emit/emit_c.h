/* The C emitter: one translation unit per model.
 *
 * The unit holds the shapes and arena offsets as constants, one forward function (a step of 1..T_MAX
 * tokens: the prefill chunk and the decode step share it, T being its argument), calls into the runtime's
 * kernels with constant arguments, fused elementwise groups as inline loops, the model description the
 * runtime reads, and main. It compiles with no warnings under -Wall -Wextra with gcc and with libtcc.
 */
#ifndef AE_EMIT_C_H
#define AE_EMIT_C_H

#include <stdio.h>

#include "emit_vk.h"
#include "import.h"
#include "pack_build.h"
#include "pass.h"

struct emit_options {
    const char *model_file;   /* the GGUF's file name, for comments and --info */
    const char *model_name;   /* general.name, or the file's name */
    const char *info;         /* what --info prints about the compilation */
    int32_t t_max;            /* the largest step */
    const struct emit_vk_options *vk; /* the Vulkan half too (emit_vk.h); NULL: the CPU only */
};

/* Writes the program for graph g after the passes (c holds the plan and the constants; pb the weight
 * offsets). Fails, naming the node, for an op or parameter the CPU kernels cannot run. */
int emit_c(FILE *out, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
           const struct import_hparams *hp, const struct emit_options *o, ae_error *err);

#endif
