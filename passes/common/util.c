/* Helpers the passes share: the bytes of a node's value at the planned sizes, and use counts. */
#include "pass.h"

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
