/* The gemma2 graph: scaled embeddings, pre- and post-norms, GELU-gated FFN, logit soft-capping and
 * sliding-window attention on every other layer.
 *
 * As llama.cpp builds it:
 *   x = token_embd[tokens] * sqrt(n_embd)
 *   per layer:
 *     h = rms_norm(x) * attn_norm        (norm weights are used as stored: the converter already
 *                                         added gemma's +1)
 *     q, k, v = h Wq, h Wk, h Wv; NeoX rope on q and k; q *= 1/sqrt(head_dim) (the 2B and 9B rule;
 *               1/sqrt(n_embd / n_head) for the 46-layer 27B)
 *     a = attention(q, k, v; scale 1, softcap attn_logit_softcapping, window sliding_window on even
 *                   layers) Wo
 *     x = x + rms_norm(a) * post_attention_norm
 *     f = (gelu(h' Wgate) * (h' Wup)) Wdown,  h' = rms_norm(x) * ffn_norm
 *     x = x + rms_norm(f) * post_ffw_norm
 *   logits = softcap(final_logit_softcapping, (rms_norm(x) * output_norm) token_embd^T)
 * The softcaps default to 50 and 30 and the window to 4096 when the keys are absent, as in llama.cpp.
 */
#include "import.h"

#include <math.h>

int import_build_gemma2(struct import_ctx *c)
{
    const struct import_hparams *hp = c->hp;
    struct ir_graph *g = c->g;
    int64_t n_embd = hp->n_embd;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim_k;
    int64_t n_k = (int64_t)hp->n_head_kv * hp->head_dim_k;
    int64_t n_v = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int64_t n_o = (int64_t)hp->n_head * hp->head_dim_v;
    int64_t n_ff = hp->n_ff;

    float attn_softcap = hp->attn_softcap != 0.0f ? hp->attn_softcap : 50.0f;
    float final_softcap = hp->final_softcap != 0.0f ? hp->final_softcap : 30.0f;
    uint32_t window = hp->sliding_window != 0 ? hp->sliding_window : 4096;
    float q_scale = hp->n_layer == 46 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                                      : 1.0f / sqrtf((float)hp->head_dim_k);

    struct ir_node *x;
    if (import_embeddings(c, &x))
        return -1;
    x = ir_scale(g, x, sqrtf((float)n_embd));
    ir_node_set_name(g, x, "token_embd_scaled");
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        struct import_layer l = {0};
        if (import_layer_vec(c, &l.attn_norm, il, "attn_norm.weight", n_embd, true) ||
            import_layer_mat(c, &l.wq, il, "attn_q.weight", n_q, n_embd, true) ||
            import_layer_mat(c, &l.wk, il, "attn_k.weight", n_k, n_embd, true) ||
            import_layer_mat(c, &l.wv, il, "attn_v.weight", n_v, n_embd, true) ||
            import_layer_mat(c, &l.wo, il, "attn_output.weight", n_embd, n_o, true) ||
            import_layer_vec(c, &l.attn_post_norm, il, "post_attention_norm.weight", n_embd, true) ||
            import_layer_vec(c, &l.ffn_norm, il, "ffn_norm.weight", n_embd, true) ||
            import_layer_mat(c, &l.ffn_gate, il, "ffn_gate.weight", n_ff, n_embd, true) ||
            import_layer_mat(c, &l.ffn_up, il, "ffn_up.weight", n_ff, n_embd, true) ||
            import_layer_mat(c, &l.ffn_down, il, "ffn_down.weight", n_embd, n_ff, true) ||
            import_layer_vec(c, &l.ffn_post_norm, il, "post_ffw_norm.weight", n_embd, true))
            return -1;
        int32_t li = (int32_t)il;
        struct import_attn_params ap = {
            .rope_mode = hp->rope_mode,
            .q_scale = q_scale,
            .kq_scale = 1.0f,
            .softcap = attn_softcap,
            .window = il % 2 == 0 ? (int32_t)window : 0,
        };
        struct ir_node *h = import_rms_norm(c, x, l.attn_norm, import_name(c, li, "attn_norm"));
        struct ir_node *q = import_linear(c, h, l.wq, NULL, import_name(c, li, "attn_q"));
        struct ir_node *k = import_linear(c, h, l.wk, NULL, import_name(c, li, "attn_k"));
        struct ir_node *v = import_linear(c, h, l.wv, NULL, import_name(c, li, "attn_v"));
        struct ir_node *a = import_self_attention(c, il, q, k, v, &ap);
        a = import_linear(c, a, l.wo, NULL, import_name(c, li, "attn_output"));
        a = import_rms_norm(c, a, l.attn_post_norm, import_name(c, li, "attn_post_norm"));
        x = ir_add(g, a, x);
        ir_node_set_name(g, x, import_name(c, li, "sa_out"));
        h = import_rms_norm(c, x, l.ffn_norm, import_name(c, li, "ffn_norm"));
        struct ir_node *f = import_ffn_gated(c, il, h, l.ffn_gate, l.ffn_up, l.ffn_down, IR_OP_GELU);
        f = import_rms_norm(c, f, l.ffn_post_norm, import_name(c, li, "ffn_post_norm"));
        x = ir_add(g, f, x);
        ir_node_set_name(g, x, import_name(c, li, "l_out"));
    }
    return import_logits(c, x, final_softcap);
}
