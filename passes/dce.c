/* dce: removes every node that no result of the step depends on.
 *
 * The roots are what the step delivers: output nodes (the logits) and kv_store nodes (the cache rows
 * the next step reads, even when nothing in this step reads them back); input nodes stay too, as they
 * are the program's interface. A walk backwards over g->nodes (users come after their sources) marks
 * every source of a marked node; the rest is removed, weights included.
 */
#include "pass.h"

#include <stdlib.h>

static bool is_root(const struct ir_node *n)
{
    return n->op == IR_OP_OUTPUT || n->op == IR_OP_KV_STORE || n->op == IR_OP_INPUT;
}

int pass_dce(struct ir_graph *g, struct pass_ctx *c)
{
    bool *live = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *live);
    if (!live)
        return ae_fail(c->err, "out of memory");
    for (uint32_t i = g->n_nodes; i-- > 0;) {
        const struct ir_node *n = g->nodes[i];
        if (is_root(n))
            live[i] = true;
        if (!live[i])
            continue;
        for (uint32_t s = 0; s < n->n_src; s++)
            live[n->src[s]->id] = true;
    }
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (!live[i]) {
            ir_node_kill(g->nodes[i]);
            c->stats.dce_removed++;
        }
    free(live);
    ir_graph_compact(g);
    return 0;
}
