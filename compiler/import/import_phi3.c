/* The phi3 graph: fused projections, NeoX rope, query pre-scaling and a sliding window.
 *
 * Per layer, as llama.cpp builds it:
 *   h = rms_norm(x) * attn_norm
 *   q | k | v = h Wqkv (one matrix, rows q then k then v; separate attn_q/k/v are read when the file
 *               has no attn_qkv); NeoX rope on q and k with the rope_factors_long/short tensors when
 *               present (long when the run's context exceeds rope.scaling.original_context_length;
 *               the program then keeps its context on that side of it)
 *   x = x + attention(q / sqrt(head_dim), k, v; scale = 1, window = attention.sliding_window) Wo
 *   x = x + (silu(u[:n_ff]) * u[n_ff:]) Wdown,  u = h' Wup (gate and up in one matrix),
 *       h' = rms_norm(x) * ffn_norm
 * then rms_norm(x) * output_norm and the lm head.
 */
#include "import.h"

#include <math.h>

int import_build_phi3(struct import_ctx *c)
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
        .q_scale = 1.0f / sqrtf((float)hp->head_dim_k),
        .kq_scale = 1.0f,
        .window = (int32_t)hp->sliding_window,
    };
    /* llama.cpp picks the factors by the context it runs with; the graph holds one set, so the contexts
     * the program allows stay on the side of the original context where that set is llama.cpp's. */
    bool long_ctx = hp->n_ctx > hp->n_ctx_orig;
    int64_t ff_shape[1] = {hp->n_rot / 2};
    if (import_weight(c, &ap.rope_factors, long_ctx ? "rope_factors_long.weight" : "rope_factors_short.weight", 1,
                      ff_shape, false))
        return -1;
    if (ae_gguf_find_tensor(c->f, "rope_factors_long.weight") || ae_gguf_find_tensor(c->f, "rope_factors_short.weight")) {
        if (long_ctx)
            c->n_ctx_min = hp->n_ctx_orig + 1;
        else if (c->n_ctx_max > hp->n_ctx_orig)
            c->n_ctx_max = hp->n_ctx_orig;
    }

    struct ir_node *x;
    if (import_embeddings(c, &x))
        return -1;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        struct import_layer l = {0};
        if (import_layer_vec(c, &l.attn_norm, il, "attn_norm.weight", n_embd, true) ||
            import_layer_mat(c, &l.wqkv, il, "attn_qkv.weight", n_q + n_k + n_v, n_embd, false))
            return -1;
        if (!l.wqkv && (import_layer_mat(c, &l.wq, il, "attn_q.weight", n_q, n_embd, true) ||
                        import_layer_mat(c, &l.wk, il, "attn_k.weight", n_k, n_embd, true) ||
                        import_layer_mat(c, &l.wv, il, "attn_v.weight", n_v, n_embd, true)))
            return -1;
        if (import_layer_mat(c, &l.wo, il, "attn_output.weight", n_embd, n_o, true) ||
            import_layer_vec(c, &l.ffn_norm, il, "ffn_norm.weight", n_embd, true) ||
            import_layer_mat(c, &l.ffn_up, il, "ffn_up.weight", 2 * n_ff, n_embd, true) ||
            import_layer_mat(c, &l.ffn_down, il, "ffn_down.weight", n_embd, n_ff, true))
            return -1;
        int32_t li = (int32_t)il;
        struct ir_node *h = import_rms_norm(c, x, l.attn_norm, import_name(c, li, "attn_norm"));
        struct ir_node *q, *k, *v;
        if (l.wqkv) {
            struct ir_node *qkv = import_linear(c, h, l.wqkv, NULL, import_name(c, li, "attn_qkv"));
            q = ir_slice(g, qkv, 1, 0, n_q);
            ir_node_set_name(g, q, import_name(c, li, "attn_q"));
            k = ir_slice(g, qkv, 1, (int32_t)n_q, n_k);
            ir_node_set_name(g, k, import_name(c, li, "attn_k"));
            v = ir_slice(g, qkv, 1, (int32_t)(n_q + n_k), n_v);
            ir_node_set_name(g, v, import_name(c, li, "attn_v"));
        } else {
            q = import_linear(c, h, l.wq, NULL, import_name(c, li, "attn_q"));
            k = import_linear(c, h, l.wk, NULL, import_name(c, li, "attn_k"));
            v = import_linear(c, h, l.wv, NULL, import_name(c, li, "attn_v"));
        }
        struct ir_node *a = import_self_attention(c, il, q, k, v, &ap);
        a = import_linear(c, a, l.wo, NULL, import_name(c, li, "attn_output"));
        x = ir_add(g, a, x);
        ir_node_set_name(g, x, import_name(c, li, "ffn_inp"));
        h = import_rms_norm(c, x, l.ffn_norm, import_name(c, li, "ffn_norm"));

        struct ir_node *u = import_linear(c, h, l.ffn_up, NULL, import_name(c, li, "ffn_up"));
        struct ir_node *gate = ir_slice(g, u, 1, 0, n_ff);
        ir_node_set_name(g, gate, import_name(c, li, "ffn_gate"));
        struct ir_node *up = ir_slice(g, u, 1, (int32_t)n_ff, n_ff);
        ir_node_set_name(g, up, import_name(c, li, "ffn_up"));
        struct ir_node *f = ir_silu(g, gate);
        ir_node_set_name(g, f, import_name(c, li, "ffn_act"));
        f = ir_mul(g, f, up);
        ir_node_set_name(g, f, import_name(c, li, "ffn_par"));
        f = import_linear(c, f, l.ffn_down, NULL, import_name(c, li, "ffn_down"));
        x = ir_add(g, x, f);
        ir_node_set_name(g, x, import_name(c, li, "l_out"));
    }
    return import_logits(c, x, 0.0f);
}
