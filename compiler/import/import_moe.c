/* The mixture-of-experts FFN, as llama.cpp's llm_build_moe_ffn computes it, for every family that has one
 * (llama files with experts, qwen2moe, deepseek2).
 *
 * For the ffn_norm output x [T, n_embd] of one layer:
 *   logits = x Wrouter^T                       [T, n_expert]   (ffn_gate_inp, f32 in every file)
 *   probs  = softmax(logits), or sigmoid(logits) (expert_gating_func 2)
 *   ids    = topk(probs (+ exp_probs_b), k)     [T, k]          the k experts with the largest values
 *   w      = probs[ids], / their sum (norm), * scale
 *   y      = sum_j w_j * down_e(silu(gate_e(x)) * up_e(x)),  e = ids[:, j]
 * Each expert matrix is one 3-D weight [n_expert, rows, cols] read through matmul_id, so a step touches
 * only the experts its tokens chose. The shared experts (qwen2moe: gated by sigmoid(x . w), deepseek2:
 * plain) are ordinary gated FFNs added to y by the builders.
 */
#include "import.h"

int import_moe_load(struct import_ctx *c, uint32_t layer, int64_t n_ff_exp, struct import_moe *m)
{
    const struct import_hparams *hp = c->hp;
    int64_t E = hp->n_expert, D = hp->n_embd;
    int64_t up_shape[3] = {E, n_ff_exp, D};
    int64_t down_shape[3] = {E, D, n_ff_exp};
    int64_t bias_shape[1] = {E};
    *m = (struct import_moe){0};
    if (import_layer_mat(c, &m->router, layer, "ffn_gate_inp.weight", E, D, true) ||
        import_layer_weight(c, &m->probs_bias, layer, "exp_probs_b.bias", 1, bias_shape, false) ||
        import_layer_weight(c, &m->gate, layer, "ffn_gate_exps.weight", 3, up_shape, true) ||
        import_layer_weight(c, &m->up, layer, "ffn_up_exps.weight", 3, up_shape, true) ||
        import_layer_weight(c, &m->down, layer, "ffn_down_exps.weight", 3, down_shape, true))
        return -1;
    return 0;
}

struct ir_node *import_moe_ffn(struct import_ctx *c, uint32_t layer, struct ir_node *x, const struct import_moe *m,
                               bool norm, float scale)
{
    struct ir_graph *g = c->g;
    int32_t il = (int32_t)layer;
    struct ir_node *logits = ir_matmul(g, m->router, x);
    ir_node_set_name(g, logits, import_name(c, il, "ffn_moe_logits"));
    struct ir_node *probs = c->hp->expert_gating_func == IMPORT_GATING_SIGMOID ? ir_sigmoid(g, logits)
                                                                                : ir_softmax(g, logits, 1.0f);
    ir_node_set_name(g, probs, import_name(c, il, "ffn_moe_probs"));
    struct ir_node *select = probs;
    if (m->probs_bias) {
        select = ir_add(g, probs, m->probs_bias);
        ir_node_set_name(g, select, import_name(c, il, "ffn_moe_probs_biased"));
    }
    struct ir_node *ids = ir_topk(g, select, (int32_t)c->hp->n_expert_used);
    ir_node_set_name(g, ids, import_name(c, il, "ffn_moe_topk"));
    struct ir_node *w = ir_moe_weights(g, probs, ids, norm, scale);
    ir_node_set_name(g, w, import_name(c, il, "ffn_moe_weights"));

    struct ir_node *up = ir_matmul_id(g, m->up, x, ids);
    ir_node_set_name(g, up, import_name(c, il, "ffn_moe_up"));
    struct ir_node *gate = ir_matmul_id(g, m->gate, x, ids);
    ir_node_set_name(g, gate, import_name(c, il, "ffn_moe_gate"));
    struct ir_node *h = ir_silu(g, gate);
    ir_node_set_name(g, h, import_name(c, il, "ffn_moe_silu"));
    h = ir_mul(g, h, up);
    ir_node_set_name(g, h, import_name(c, il, "ffn_moe_gate_par"));
    struct ir_node *down = ir_matmul_id(g, m->down, h, ids);
    ir_node_set_name(g, down, import_name(c, il, "ffn_moe_down"));
    struct ir_node *y = ir_moe_sum(g, down, w);
    ir_node_set_name(g, y, import_name(c, il, "ffn_moe_out"));
    return y;
}

struct ir_node *import_scaled_rows(struct import_ctx *c, struct ir_node *x, struct ir_node *s, const char *name)
{
    int64_t shape[3] = {x->shape[0], 1, x->shape[1]};
    struct ir_node *x3 = ir_reshape(c->g, x, 3, shape);
    ir_node_set_name(c->g, x3, name);
    struct ir_node *y = ir_moe_sum(c->g, x3, s);
    ir_node_set_name(c->g, y, name);
    return y;
}
