/* cse: common subexpression elimination. A node equal to an earlier one is replaced by it.
 *
 * Equal means structurally equal, never merely hash-equal: the same op, parameter bytes, dtype, shape
 * and sources (after earlier merges). The hash only picks the bucket; every candidate in it is compared
 * in full. Sources are compared in order, so matmul(x, w) and concat(a, b) never match a node with the
 * operands swapped; for commutative ops (add, mul) whose two operands have the same shape, the order
 * is canonicalized by node id first, so add(a, b) and add(b, a) match. Nodes with effects or identity
 * are never merged: kv_cache, kv_store and output; weights are unique by name already. Names (origins)
 * are not compared: the first node keeps its own.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

/* The sources of n in canonical order, followed through earlier merges. */
static void canonical_sources(const struct ir_node *n, struct ir_node **src)
{
    for (uint32_t i = 0; i < n->n_src; i++)
        src[i] = n->src[i];
    if (ir_op_has(n->op, IR_PROP_COMMUTATIVE) && n->n_src >= 2 && ir_shape_equal(src[0], src[1]) &&
        src[1]->id < src[0]->id) {
        struct ir_node *t = src[0];
        src[0] = src[1];
        src[1] = t;
    }
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    return h * 0x100000001b3u;
}

static uint64_t node_hash(const struct ir_node *n)
{
    struct ir_node *src[IR_MAX_SRC];
    canonical_sources(n, src);
    uint64_t h = mix(0xcbf29ce484222325u, (uint64_t)n->op);
    h = mix(h, n->dtype);
    h = mix(h, n->rank);
    for (uint32_t i = 0; i < n->rank; i++)
        h = mix(h, (uint64_t)n->shape[i]);
    h = mix(h, n->n_src);
    for (uint32_t i = 0; i < n->n_src; i++)
        h = mix(h, src[i]->id);
    const unsigned char *p = (const unsigned char *)&n->p;
    for (size_t i = 0; i < sizeof n->p; i++)
        h = mix(h, p[i]);
    return h;
}

static bool node_equal(const struct ir_node *a, const struct ir_node *b)
{
    if (a->op != b->op || a->dtype != b->dtype || a->n_src != b->n_src || !ir_shape_equal(a, b))
        return false;
    if (memcmp(&a->p, &b->p, sizeof a->p) != 0)
        return false;
    struct ir_node *sa[IR_MAX_SRC], *sb[IR_MAX_SRC];
    canonical_sources(a, sa);
    canonical_sources(b, sb);
    for (uint32_t i = 0; i < a->n_src; i++)
        if (sa[i] != sb[i])
            return false;
    return true;
}

static bool mergeable(const struct ir_node *n)
{
    return n->op != IR_OP_WEIGHT && n->op != IR_OP_KV_CACHE && n->op != IR_OP_KV_STORE && n->op != IR_OP_OUTPUT;
}

int pass_cse(struct ir_graph *g, struct pass_ctx *c)
{
    uint32_t cap = 16;
    while (cap < 2 * g->n_nodes)
        cap *= 2;
    struct ir_node **table = calloc(cap, sizeof *table);
    if (!table)
        return ae_fail(c->err, "out of memory");
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        struct ir_node *n = g->nodes[i];
        /* Earlier merges: a source that was replaced points (through aux) at its representative. */
        for (uint32_t s = 0; s < n->n_src; s++)
            if (n->src[s]->aux)
                n->src[s] = n->src[s]->aux;
        n->aux = NULL;
        if (!mergeable(n))
            continue;
        uint32_t slot = (uint32_t)(node_hash(n) & (cap - 1));
        while (table[slot] && !node_equal(table[slot], n))
            slot = (slot + 1) & (cap - 1);
        if (!table[slot]) {
            table[slot] = n;
            continue;
        }
        n->aux = table[slot];
        ir_node_kill(n);
        c->stats.cse_merged++;
    }
    free(table);
    for (uint32_t i = 0; i < g->n_nodes; i++)
        g->nodes[i]->aux = NULL;
    ir_graph_compact(g);
    return 0;
}
