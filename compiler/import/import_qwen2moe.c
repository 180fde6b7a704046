/* The qwen2moe graph (Qwen1.5-MoE, Qwen2-MoE): qwen2's attention (q/k/v biases, NeoX rope) and, in every
 * layer, routed experts plus a shared expert, as llama.cpp builds it:
 *   y = moe(h) + sigmoid(h . ffn_gate_inp_shexp) * (silu(h Wgate_shexp) * (h Wup_shexp)) Wdown_shexp
 * with h the ffn_norm output. The routing weights are the top-k softmax probabilities, not renormalized
 * (llama.cpp ignores expert_weights_norm for this family). Experts are expert_feed_forward_length wide
 * (default feed_forward_length / expert_used_count), the shared expert expert_shared_feed_forward_length
 * (default feed_forward_length).
 */
#include "import.h"

#include <inttypes.h>

int import_build_qwen2moe(struct import_ctx *c)
{
    if (c->hp->n_expert == 0)
        return ae_fail(c->err, "%s: qwen2moe needs qwen2moe.expert_count and expert_used_count (the file has no "
                       "experts)", c->f->path);
    if (c->hp->n_ff_exp == 0 && c->hp->n_ff % c->hp->n_expert_used != 0)
        return ae_fail(c->err, "%s: qwen2moe.feed_forward_length %" PRIu32 " is not a multiple of expert_used_count "
                       "%" PRIu32 " and expert_feed_forward_length is absent", c->f->path, c->hp->n_ff,
                       c->hp->n_expert_used);
    static const struct import_llama_variant qwen2moe = {.qkv_bias = true, .gated_shared_expert = true};
    return import_build_llama_like(c, &qwen2moe);
}
