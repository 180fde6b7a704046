/* The llama graph (llama 1/2/3, TinyLlama, stories, and Mistral-style files that say "llama").
 *
 * Per layer, as llama.cpp builds it:
 *   h = rms_norm(x) * attn_norm
 *   q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv); rope (adjacent pairs) on q and k, with the
 *             rope_freqs.weight frequency factors when the file has them (llama 3.1)
 *   x = x + attention(q, k, v; scale = attention.scale or 1/sqrt(head_dim)) Wo (+bo)
 *   x = x + (silu(h' Wgate) * (h' Wup)) Wdown,  h' = rms_norm(x) * ffn_norm
 * then rms_norm(x) * output_norm and the lm head (output.weight, or the tied token_embd.weight).
 * qwen2 is this graph with the q/k/v biases required and NeoX rope (import_qwen2.c).
 */
#include "import.h"

#include <math.h>

int import_build_llama_like(struct import_ctx *c, bool qkv_bias)
{
    const struct import_hparams *hp = c->hp;
    struct ir_graph *g = c->g;
    int64_t n_embd = hp->n_embd;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim_k;
    int64_t n_k = (int64_t)hp->n_head_kv * hp->head_dim_k;
    int64_t n_v = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int64_t n_o = (int64_t)hp->n_head * hp->head_dim_v;
    int64_t n_ff = hp->n_ff;

    struct import_attn_params ap = {
        .rope_mode = hp->rope_mode,
        .kq_scale = hp->attn_scale != 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)hp->head_dim_k),
    };
    int64_t ff_shape[1] = {hp->n_rot / 2};
    if (import_weight(c, &ap.rope_factors, "rope_freqs.weight", 1, ff_shape, false))
        return -1;

    struct ir_node *x;
    if (import_embeddings(c, &x))
        return -1;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        struct import_layer l = {0};
        if (import_layer_vec(c, &l.attn_norm, il, "attn_norm.weight", n_embd, true) ||
            import_layer_mat(c, &l.wq, il, "attn_q.weight", n_q, n_embd, true) ||
            import_layer_mat(c, &l.wk, il, "attn_k.weight", n_k, n_embd, true) ||
            import_layer_mat(c, &l.wv, il, "attn_v.weight", n_v, n_embd, true) ||
            import_layer_vec(c, &l.bq, il, "attn_q.bias", n_q, qkv_bias) ||
            import_layer_vec(c, &l.bk, il, "attn_k.bias", n_k, qkv_bias) ||
            import_layer_vec(c, &l.bv, il, "attn_v.bias", n_v, qkv_bias) ||
            import_layer_mat(c, &l.wo, il, "attn_output.weight", n_embd, n_o, true) ||
            import_layer_vec(c, &l.bo, il, "attn_output.bias", n_embd, false) ||
            import_layer_vec(c, &l.ffn_norm, il, "ffn_norm.weight", n_embd, true) ||
            import_layer_mat(c, &l.ffn_gate, il, "ffn_gate.weight", n_ff, n_embd, true) ||
            import_layer_mat(c, &l.ffn_up, il, "ffn_up.weight", n_ff, n_embd, true) ||
            import_layer_mat(c, &l.ffn_down, il, "ffn_down.weight", n_embd, n_ff, true))
            return -1;
        int32_t li = (int32_t)il;
        struct ir_node *h = import_rms_norm(c, x, l.attn_norm, import_name(c, li, "attn_norm"));
        struct ir_node *q = import_linear(c, h, l.wq, l.bq, import_name(c, li, "attn_q"));
        struct ir_node *k = import_linear(c, h, l.wk, l.bk, import_name(c, li, "attn_k"));
        struct ir_node *v = import_linear(c, h, l.wv, l.bv, import_name(c, li, "attn_v"));
        struct ir_node *a = import_self_attention(c, il, q, k, v, &ap);
        a = import_linear(c, a, l.wo, l.bo, import_name(c, li, "attn_output"));
        x = ir_add(g, a, x);
        ir_node_set_name(g, x, import_name(c, li, "ffn_inp"));
        h = import_rms_norm(c, x, l.ffn_norm, import_name(c, li, "ffn_norm"));
        struct ir_node *f = import_ffn_gated(c, il, h, l.ffn_gate, l.ffn_up, l.ffn_down, IR_OP_SILU);
        x = ir_add(g, f, x);
        ir_node_set_name(g, x, import_name(c, li, "l_out"));
    }
    return import_logits(c, x, 0.0f);
}

int import_build_llama(struct import_ctx *c)
{
    return import_build_llama_like(c, false);
}
