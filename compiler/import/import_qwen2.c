/* The qwen2 graph: llama's (import_llama.c) with q/k/v biases, which qwen2 files must have, and NeoX rope
 * (half-split pairs, from the architecture table). The lm head is usually tied to token_embd.weight.
 */
#include "import.h"

int import_build_qwen2(struct import_ctx *c)
{
    static const struct import_llama_variant qwen2 = {.qkv_bias = true};
    return import_build_llama_like(c, &qwen2);
}
