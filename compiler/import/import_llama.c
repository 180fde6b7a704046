/* The llama graph (llama 1/2/3, TinyLlama, stories, Mistral-style files that say "llama", and Mixtral:
 * llama files with experts).
 *
 * Per layer, as llama.cpp builds it:
 *   h = rms_norm(x) * attn_norm
 *   q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv); rope (adjacent pairs) on q and k, with the
 *             rope_freqs.weight frequency factors when the file has them (llama 3.1)
 *   x = x + attention(q, k, v; scale = attention.scale or 1/sqrt(head_dim)) Wo (+bo)
 *   x = x + ffn(h'),  h' = rms_norm(x) * ffn_norm, where ffn is
 *       dense:  (silu(h' Wgate) * (h' Wup)) Wdown
 *       MoE (expert_count > 0): the top-k experts' SwiGLU FFNs weighted by their router probabilities,
 *            renormalized to sum 1 (import_moe.c; each expert is feed_forward_length wide)
 * then rms_norm(x) * output_norm and the lm head (output.weight, or the tied token_embd.weight).
 * qwen2 is this graph with the q/k/v biases required and NeoX rope (import_qwen2.c); qwen2moe adds a
 * gated shared expert to the MoE FFN (import_qwen2moe.c).
 */
#include "import.h"

#include <math.h>

/* The FFN weights of one layer: dense, or routed experts plus the variant's shared expert. */
struct ffn_weights {
    struct ir_node *gate, *up, *down;       /* dense, or the shared expert */
    struct import_moe moe;                  /* with experts */
    struct ir_node *shared_gate;            /* qwen2moe: ffn_gate_inp_shexp [1, n_embd] */
};

static int load_ffn(struct import_ctx *c, const struct import_llama_variant *v, uint32_t il, struct ffn_weights *w)
{
    const struct import_hparams *hp = c->hp;
    int64_t n_embd = hp->n_embd;
    *w = (struct ffn_weights){0};
    if (hp->n_expert == 0)
        return import_layer_mat(c, &w->gate, il, "ffn_gate.weight", hp->n_ff, n_embd, true) ||
                       import_layer_mat(c, &w->up, il, "ffn_up.weight", hp->n_ff, n_embd, true) ||
                       import_layer_mat(c, &w->down, il, "ffn_down.weight", n_embd, hp->n_ff, true)
                   ? -1
                   : 0;
    /* llama's experts are feed_forward_length wide; qwen2moe's expert_feed_forward_length, or
     * feed_forward_length / expert_used_count without that key (llama.cpp's default). */
    int64_t n_ff_exp = !v->gated_shared_expert ? hp->n_ff
                       : hp->n_ff_exp ? hp->n_ff_exp : hp->n_ff / hp->n_expert_used;
    if (import_moe_load(c, il, n_ff_exp, &w->moe))
        return -1;
    if (!v->gated_shared_expert)
        return 0;
    int64_t n_ff_sh = hp->n_ff_shexp ? hp->n_ff_shexp : hp->n_ff;
    return import_layer_mat(c, &w->shared_gate, il, "ffn_gate_inp_shexp.weight", 1, n_embd, true) ||
                   import_layer_mat(c, &w->gate, il, "ffn_gate_shexp.weight", n_ff_sh, n_embd, true) ||
                   import_layer_mat(c, &w->up, il, "ffn_up_shexp.weight", n_ff_sh, n_embd, true) ||
                   import_layer_mat(c, &w->down, il, "ffn_down_shexp.weight", n_embd, n_ff_sh, true)
               ? -1
               : 0;
}

static struct ir_node *build_ffn(struct import_ctx *c, const struct import_llama_variant *v, uint32_t il,
                                 struct ir_node *h, const struct ffn_weights *w)
{
    struct ir_graph *g = c->g;
    int32_t li = (int32_t)il;
    if (c->hp->n_expert == 0)
        return import_ffn_gated(c, il, h, w->gate, w->up, w->down, IR_OP_SILU);
    struct ir_node *y = import_moe_ffn(c, il, h, &w->moe, v->moe_norm, 1.0f);
    if (!v->gated_shared_expert)
        return y;
    struct ir_node *gi = ir_matmul(g, w->shared_gate, h);
    ir_node_set_name(g, gi, import_name(c, li, "ffn_shexp_gate_inp"));
    struct ir_node *gs = ir_sigmoid(g, gi);
    ir_node_set_name(g, gs, import_name(c, li, "ffn_shexp_gate"));
    struct ir_node *s = import_ffn_gated(c, il, h, w->gate, w->up, w->down, IR_OP_SILU);
    s = import_scaled_rows(c, s, gs, import_name(c, li, "ffn_shexp_out"));
    y = ir_add(g, y, s);
    ir_node_set_name(g, y, import_name(c, li, "ffn_out"));
    return y;
}

int import_build_llama_like(struct import_ctx *c, const struct import_llama_variant *v)
{
    const struct import_hparams *hp = c->hp;
    struct ir_graph *g = c->g;
    int64_t n_embd = hp->n_embd;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim_k;
    int64_t n_k = (int64_t)hp->n_head_kv * hp->head_dim_k;
    int64_t n_v = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int64_t n_o = (int64_t)hp->n_head * hp->head_dim_v;

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
            import_layer_vec(c, &l.bq, il, "attn_q.bias", n_q, v->qkv_bias) ||
            import_layer_vec(c, &l.bk, il, "attn_k.bias", n_k, v->qkv_bias) ||
            import_layer_vec(c, &l.bv, il, "attn_v.bias", n_v, v->qkv_bias) ||
            import_layer_mat(c, &l.wo, il, "attn_output.weight", n_embd, n_o, true) ||
            import_layer_vec(c, &l.bo, il, "attn_output.bias", n_embd, false) ||
            import_layer_vec(c, &l.ffn_norm, il, "ffn_norm.weight", n_embd, true))
            return -1;
        struct ffn_weights fw;
        if (load_ffn(c, v, il, &fw))
            return -1;
        int32_t li = (int32_t)il;
        struct ir_node *h = import_rms_norm(c, x, l.attn_norm, import_name(c, li, "attn_norm"));
        struct ir_node *q = import_linear(c, h, l.wq, l.bq, import_name(c, li, "attn_q"));
        struct ir_node *k = import_linear(c, h, l.wk, l.bk, import_name(c, li, "attn_k"));
        struct ir_node *vv = import_linear(c, h, l.wv, l.bv, import_name(c, li, "attn_v"));
        struct ir_node *a = import_self_attention(c, il, q, k, vv, &ap);
        a = import_linear(c, a, l.wo, l.bo, import_name(c, li, "attn_output"));
        x = ir_add(g, a, x);
        ir_node_set_name(g, x, import_name(c, li, "ffn_inp"));
        h = import_rms_norm(c, x, l.ffn_norm, import_name(c, li, "ffn_norm"));
        x = ir_add(g, build_ffn(c, v, il, h, &fw), x);
        ir_node_set_name(g, x, import_name(c, li, "l_out"));
    }
    return import_logits(c, x, 0.0f);
}

int import_build_llama(struct import_ctx *c)
{
    static const struct import_llama_variant llama = {.moe_norm = true};
    return import_build_llama_like(c, &llama);
}
