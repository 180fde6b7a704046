/* The deepseek2 graph (DeepSeek-V2, V2-Lite, V2.5, V3): multi-head latent attention, leading dense layers,
 * then routed and shared experts, as llama.cpp's build_deepseek2 computes it.
 *
 * Per layer, with h = rms_norm(x) * attn_norm, H heads, K = key_length = nope + rope dims (rope dims =
 * rope.dimension_count), V = value_length, r = kv_lora_rank:
 *   q = h Wq, or (rms_norm(h Wq_a) * attn_q_a_norm) Wq_b when the file has attention.q_lora_rank;
 *       per head q = [q_nope, q_pe]
 *   [c, k_pe] = h Wkv_a_mqa              c: r values, k_pe: rope dims shared by all heads
 *   [k_nope, v] = (rms_norm(c) * attn_kv_a_norm) Wkv_b, per head
 *   q_pe, k_pe roped (adjacent pairs, YaRN as the file says, attn_factor 1 / (1 + 0.1 ln(1/freq_scale)),
 *   which YaRN multiplies back)
 *   x = x + attention([q_nope, q_pe], [k_nope, k_pe], v; scale = mscale^2 / sqrt(K)) Wo,
 *       mscale = 1 + yarn_log_multiplier * ln(1/freq_scale)
 *   x = x + ffn(h'): layers below leading_dense_block_count a dense SwiGLU FFN (feed_forward_length);
 *       the others routed experts (expert_feed_forward_length wide; softmax or sigmoid gating, weights
 *       divided by their sum when expert_weights_norm, times expert_weights_scale; exp_probs_b biases the
 *       selection when present) plus expert_shared_count shared experts as one plain SwiGLU FFN.
 * The KV cache holds the full K (H x K) and V (H x V) of every token, as llama.cpp's does at the
 * reference commit.
 */
#include "import.h"

#include <inttypes.h>
#include <math.h>

static struct ir_node *named(struct import_ctx *c, struct ir_node *n, int32_t layer, const char *what)
{
    ir_node_set_name(c->g, n, import_name(c, layer, what));
    return n;
}

/* The keys this family cannot do without (llama.cpp requires them too). */
static int check_keys(struct import_ctx *c)
{
    const struct import_hparams *hp = c->hp;
    const char *missing = hp->n_lora_kv == 0 ? "attention.kv_lora_rank"
                          : hp->n_expert == 0 ? "expert_count"
                          : hp->n_ff_exp == 0 ? "expert_feed_forward_length"
                          : hp->n_expert_shared == 0 ? "expert_shared_count"
                          : hp->expert_weights_scale == 0.0f ? "expert_weights_scale"
                          : NULL;
    if (missing)
        return ae_fail(c->err, "%s: metadata key 'deepseek2.%s' is missing or 0; the deepseek2 graph needs it",
                       c->f->path, missing);
    if (hp->head_dim_k <= hp->n_rot)
        return ae_fail(c->err, "%s: deepseek2.attention.key_length %" PRIu32 " must exceed rope.dimension_count %" PRIu32
                       " (each head's key is its nope part, then its rope part)", c->f->path, hp->head_dim_k, hp->n_rot);
    if (hp->n_head_kv != hp->n_head)
        return ae_fail(c->err, "%s: deepseek2 needs head_count_kv = head_count (%" PRIu32 " and %" PRIu32 ")",
                       c->f->path, hp->n_head_kv, hp->n_head);
    return 0;
}

int import_build_deepseek2(struct import_ctx *c)
{
    const struct import_hparams *hp = c->hp;
    struct ir_graph *g = c->g;
    if (check_keys(c))
        return -1;
    int64_t n_embd = hp->n_embd, H = hp->n_head, K = hp->head_dim_k, V = hp->head_dim_v;
    int64_t rot = hp->n_rot, nope = K - rot, r_kv = hp->n_lora_kv, r_q = hp->n_lora_q;
    int64_t n_ff_shared = (int64_t)hp->n_ff_exp * hp->n_expert_shared;

    /* llama.cpp pre-scales the attention and the rope so that YaRN comes out right. */
    const float freq_scale = hp->rope_freq_scale;
    const float mscale = hp->yarn_attn_factor * (1.0f + hp->rope_yarn_log_mul * logf(1.0f / freq_scale));
    struct import_attn_params ap = {
        .rope_mode = IR_ROPE_NORMAL,
        .kq_scale = 1.0f * mscale * mscale / sqrtf((float)K),
    };
    struct ir_rope_params rp = import_rope_params(c, IR_ROPE_NORMAL);
    rp.attn_factor = 1.0f / (1.0f + 0.1f * logf(1.0f / freq_scale));

    struct ir_node *x;
    if (import_embeddings(c, &x))
        return -1;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        int32_t li = (int32_t)il;
        bool dense = il < hp->n_layer_dense_lead;
        struct ir_node *attn_norm, *wq = NULL, *wq_a = NULL, *q_a_norm = NULL, *wq_b = NULL, *wkv_a, *kv_a_norm, *wkv_b,
                       *wo, *ffn_norm, *gate, *up, *down;
        struct import_moe moe = {0};
        if (import_layer_vec(c, &attn_norm, il, "attn_norm.weight", n_embd, true))
            return -1;
        if (r_q > 0 ? import_layer_mat(c, &wq_a, il, "attn_q_a.weight", r_q, n_embd, true) ||
                          import_layer_vec(c, &q_a_norm, il, "attn_q_a_norm.weight", r_q, true) ||
                          import_layer_mat(c, &wq_b, il, "attn_q_b.weight", H * K, r_q, true)
                    : import_layer_mat(c, &wq, il, "attn_q.weight", H * K, n_embd, true))
            return -1;
        if (import_layer_mat(c, &wkv_a, il, "attn_kv_a_mqa.weight", r_kv + rot, n_embd, true) ||
            import_layer_vec(c, &kv_a_norm, il, "attn_kv_a_norm.weight", r_kv, true) ||
            import_layer_mat(c, &wkv_b, il, "attn_kv_b.weight", H * (nope + V), r_kv, true) ||
            import_layer_mat(c, &wo, il, "attn_output.weight", n_embd, H * V, true) ||
            import_layer_vec(c, &ffn_norm, il, "ffn_norm.weight", n_embd, true))
            return -1;
        if (dense ? import_layer_mat(c, &gate, il, "ffn_gate.weight", hp->n_ff, n_embd, true) ||
                        import_layer_mat(c, &up, il, "ffn_up.weight", hp->n_ff, n_embd, true) ||
                        import_layer_mat(c, &down, il, "ffn_down.weight", n_embd, hp->n_ff, true)
                  : import_moe_load(c, il, hp->n_ff_exp, &moe) ||
                        import_layer_mat(c, &gate, il, "ffn_gate_shexp.weight", n_ff_shared, n_embd, true) ||
                        import_layer_mat(c, &up, il, "ffn_up_shexp.weight", n_ff_shared, n_embd, true) ||
                        import_layer_mat(c, &down, il, "ffn_down_shexp.weight", n_embd, n_ff_shared, true))
            return -1;

        struct ir_node *h = import_rms_norm(c, x, attn_norm, import_name(c, li, "attn_norm"));
        struct ir_node *q;
        if (r_q > 0) {
            q = named(c, ir_matmul(g, wq_a, h), li, "q_a");
            q = import_rms_norm(c, q, q_a_norm, import_name(c, li, "q_a_norm"));
            q = named(c, ir_matmul(g, wq_b, q), li, "q");
        } else {
            q = named(c, ir_matmul(g, wq, h), li, "q");
        }
        int64_t qs[3] = {IR_DIM_T, H, K};
        q = named(c, ir_reshape(g, q, 3, qs), li, "q");
        struct ir_node *q_nope = named(c, ir_slice(g, q, 2, 0, nope), li, "q_nope");
        struct ir_node *q_pe = named(c, ir_slice(g, q, 2, (int32_t)nope, rot), li, "q_pe");

        struct ir_node *kv_pe = named(c, ir_matmul(g, wkv_a, h), li, "kv_pe_compressed");
        struct ir_node *kv_c = named(c, ir_slice(g, kv_pe, 1, 0, r_kv), li, "kv_compressed");
        struct ir_node *k_pe = named(c, ir_slice(g, kv_pe, 1, (int32_t)r_kv, rot), li, "k_pe");
        int64_t ks[3] = {IR_DIM_T, 1, rot};
        k_pe = named(c, ir_reshape(g, k_pe, 3, ks), li, "k_pe");
        kv_c = import_rms_norm(c, kv_c, kv_a_norm, import_name(c, li, "kv_compressed"));
        struct ir_node *kv = named(c, ir_matmul(g, wkv_b, kv_c), li, "kv");
        int64_t kvs[3] = {IR_DIM_T, H, nope + V};
        kv = named(c, ir_reshape(g, kv, 3, kvs), li, "kv");
        struct ir_node *k_nope = named(c, ir_slice(g, kv, 2, 0, nope), li, "k_nope");
        struct ir_node *v = named(c, ir_slice(g, kv, 2, (int32_t)nope, V), li, "v_states");

        q_pe = named(c, ir_rope(g, q_pe, c->positions, NULL, &rp), li, "q_pe_rope");
        k_pe = named(c, ir_rope(g, k_pe, c->positions, NULL, &rp), li, "k_pe_rope");
        int64_t bs[3] = {IR_DIM_T, H, rot};
        k_pe = named(c, ir_broadcast(g, k_pe, 3, bs), li, "k_pe_heads");
        q = named(c, ir_concat(g, q_nope, q_pe, 2), li, "q_states");
        struct ir_node *k = named(c, ir_concat(g, k_nope, k_pe, 2), li, "k_states");
        struct ir_node *a = import_attend(c, il, q, k, v, &ap);
        a = import_linear(c, a, wo, NULL, import_name(c, li, "attn_output"));
        x = named(c, ir_add(g, a, x), li, "ffn_inp");

        h = import_rms_norm(c, x, ffn_norm, import_name(c, li, "ffn_norm"));
        struct ir_node *f;
        if (dense) {
            f = import_ffn_gated(c, il, h, gate, up, down, IR_OP_SILU);
        } else {
            struct ir_node *routed = import_moe_ffn(c, il, h, &moe, hp->expert_weights_norm, hp->expert_weights_scale);
            struct ir_node *shared = import_ffn_gated(c, il, h, gate, up, down, IR_OP_SILU);
            f = named(c, ir_add(g, routed, shared), li, "ffn_out");
        }
        x = named(c, ir_add(g, f, x), li, "l_out");
    }
    return import_logits(c, x, 0.0f);
}
