/* Helpers the passes share: the bytes of a node's value at the planned sizes, the groups of matmuls that
 * run as one, and use counts. */
#include "pass.h"

#include "ae_kernels.h"

#include <stdlib.h>

uint64_t pass_node_bytes(const struct ir_node *n, const struct pass_ctx *c)
{
    int64_t T = c->opt.t_max, P = c->opt.n_ctx > T ? c->opt.n_ctx - T : 0;
    int64_t numel = ir_node_numel(n, T, P);
    if (numel <= 0)
        return 0;
    uint64_t bytes = 0;
    if (ae_type_row_bytes(n->dtype, (uint64_t)numel, &bytes, NULL) != 0)
        return 0;
    return bytes;
}

uint32_t *pass_count_uses(const struct ir_graph *g)
{
    uint32_t *uses = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *uses);
    if (!uses)
        return NULL;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        if (n->dead)
            continue;
        for (uint32_t s = 0; s < n->n_src; s++)
            uses[n->src[s]->id]++;
    }
    return uses;
}

static bool is_weight_matmul(const struct ir_node *n)
{
    return (n->op == IR_OP_MATMUL || n->op == IR_OP_MATMUL_EW || n->op == IR_OP_MATMUL_ROPE) &&
           n->src[1]->op == IR_OP_WEIGHT && n->src[1]->rank == 2;
}

int32_t *pass_matmul_groups(const struct ir_graph *g, const struct pass_ctx *c)
{
    uint32_t n = g->n_nodes;
    int32_t *group = malloc((n ? n : 1) * sizeof *group);
    uint32_t *size = calloc(n ? n : 1, sizeof *size);
    if (!group || !size) {
        free(group);
        free(size);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct ir_node *m = g->nodes[i];
        group[i] = -1;
        if (!is_weight_matmul(m))
            continue;
        group[i] = (int32_t)i;
        const struct ir_node *w = m->src[1];
        for (uint32_t h = 0; c->opt.merge && h < i; h++) {
            const struct ir_node *head = g->nodes[h];
            if (group[h] == (int32_t)h && head->src[0] == m->src[0] && head->src[1]->shape[1] == w->shape[1] &&
                ae_matmul_vec_type(head->src[1]->dtype) == ae_matmul_vec_type(w->dtype) &&
                size[h] < AE_MATMUL_MAX_PARTS) {
                group[i] = (int32_t)h;
                break;
            }
        }
        size[group[i]]++;
    }
    free(size);
    return group;
}
