/* The Vulkan printer: the GPU half of a generated program.
 *
 * It walks the same lowering as the C printer (lower.h) and prints each step as dispatches of the
 * kernels in shaders/ (each kernel instantiated with #defines for the weight type and the fused
 * epilogue, compiled to SPIR-V by libshaderc), for two steps: decode (T = 1: matrix-vector kernels)
 * and prefill (T = 1..t_max: tiled matrix kernels), the latter also in a faster variant for devices that
 * have cooperative matrices. It writes them as C data, a struct ae_gpu_model named
 * gpu_model (ae_gpu.h), into the program's C file. docs/gpu.md describes the backend.
 */
#ifndef AE_EMIT_VK_H
#define AE_EMIT_VK_H

#include <stdio.h>

#include "pack_build.h"
#include "pass.h"

struct emit_vk_options {
    const char *dump_dir;     /* --dump-spirv DIR: each kernel's .comp and .spv there; NULL: none */
};

/* Writes `static const struct ae_gpu_model gpu_model` and what it points at. Fails, naming the node, for
 * an op or parameter the kernels cannot run (nothing is written then), and with the compiler's message
 * for a kernel that does not compile. */
int emit_vk(FILE *out, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
            const struct emit_vk_options *o, ae_error *err);

#endif
