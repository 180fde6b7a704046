/* GLSL kernels to SPIR-V, at compile time.
 *
 * The kernels are the files of shaders/, embedded in aetherc (embed_shaders.sh). A kernel is
 * instantiated by giving its file and a list of #defines (the weight type, the fused epilogue, tile
 * sizes): spirv_source writes the whole text a compiler sees, the defines first and every
 * #include "file" replaced by that file, so that the text stands alone (--dump-spirv writes it beside
 * the .spv, and glslc compiles it as it is). spirv_compile runs libshaderc on it for Vulkan 1.2.
 */
#ifndef AE_SPIRV_H
#define AE_SPIRV_H

#include <stddef.h>
#include <stdint.h>

#include "ae_error.h"

struct spirv_source {
    const char *name;     /* file name in shaders/, e.g. "matvec.comp" */
    const char *text;
};

/* Every file of shaders/, ending with {NULL, NULL}. */
extern const struct spirv_source spirv_sources[];

/* The text of a shaders/ file, or NULL. */
const char *spirv_file(const char *name);

/* The standalone text of kernel file `kernel` with defines (lines "NAME VALUE", NUL-terminated text,
 * may be NULL). Returns a malloc'd string, or NULL with err set (an unknown file or include). */
char *spirv_source(const char *kernel, const char *defines, ae_error *err);

/* Compiles standalone GLSL text to SPIR-V words (malloc'd). name is used in messages. Compile errors are
 * reported with the compiler's message. */
int spirv_compile(const char *text, const char *name, uint32_t **words, size_t *n_words, ae_error *err);

#endif
