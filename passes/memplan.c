/* Activation memory planning (see memplan.h): the planner's core, and pass_memplan, which plans the
 * buffers of a graph's schedule with it. */
#include "memplan.h"
#include "pass.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

static int overlaps_in_time(const struct plan_buffer *a, const struct plan_buffer *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* Largest first; among equal sizes the earlier-born first, then by index, so plans are deterministic. */
static const struct plan_buffer *sort_base;

static int cmp_by_size(const void *x, const void *y)
{
    uint32_t i = *(const uint32_t *)x, j = *(const uint32_t *)y;
    const struct plan_buffer *a = &sort_base[i], *b = &sort_base[j];
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return (i > j) - (i < j);
}

static int cmp_by_offset(const void *x, const void *y)
{
    const struct plan_buffer *a = *(const struct plan_buffer *const *)x, *b = *(const struct plan_buffer *const *)y;
    return (a->offset > b->offset) - (a->offset < b->offset);
}

uint64_t plan_arena_assign(struct plan_buffer *b, uint32_t n, uint64_t alignment)
{
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    const struct plan_buffer **live = malloc((n ? n : 1) * sizeof *live);
    if (!order || !live) {
        /* Out of memory: fall back to no sharing at all, which is always a valid plan. */
        uint64_t off = 0;
        for (uint32_t i = 0; i < n; i++) {
            b[i].offset = off;
            off = align_up(off + b[i].size, alignment);
        }
        free(order);
        free(live);
        return off;
    }
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    sort_base = b;
    qsort(order, n, sizeof *order, cmp_by_size);
    uint64_t peak = 0;
    for (uint32_t k = 0; k < n; k++) {
        struct plan_buffer *cur = &b[order[k]];
        uint32_t n_live = 0;
        for (uint32_t j = 0; j < k; j++)
            if (overlaps_in_time(&b[order[j]], cur))
                live[n_live++] = &b[order[j]];
        qsort(live, n_live, sizeof *live, cmp_by_offset);
        uint64_t off = 0;
        for (uint32_t j = 0; j < n_live; j++) {
            if (live[j]->offset >= off + cur->size)
                break; /* the gap before this buffer fits */
            uint64_t end = align_up(live[j]->offset + live[j]->size, alignment);
            if (end > off)
                off = end;
        }
        cur->offset = off;
        if (off + cur->size > peak)
            peak = off + cur->size;
    }
    free(order);
    free(live);
    return align_up(peak, alignment);
}

int plan_check(const struct plan_buffer *b, uint32_t n, uint64_t alignment, uint64_t arena_size, ae_error *err)
{
    for (uint32_t i = 0; i < n; i++) {
        if (b[i].offset % alignment)
            return ae_fail(err, "buffer %" PRIu32 ": offset %" PRIu64 " is not a multiple of %" PRIu64, i, b[i].offset,
                           alignment);
        if (b[i].offset + b[i].size > arena_size)
            return ae_fail(err, "buffer %" PRIu32 ": [%" PRIu64 ", %" PRIu64 ") ends past the arena (%" PRIu64 " bytes)",
                           i, b[i].offset, b[i].offset + b[i].size, arena_size);
        for (uint32_t j = 0; j < i; j++)
            if (overlaps_in_time(&b[i], &b[j]) && b[i].size && b[j].size && b[i].offset < b[j].offset + b[j].size &&
                b[j].offset < b[i].offset + b[i].size)
                return ae_fail(err, "buffers %" PRIu32 " (steps %" PRIu32 "..%" PRIu32 ", bytes %" PRIu64 "..%" PRIu64
                               ") and %" PRIu32 " (steps %" PRIu32 "..%" PRIu32 ", bytes %" PRIu64 "..%" PRIu64
                               ") are live together and overlap", j, b[j].first, b[j].last, b[j].offset,
                               b[j].offset + b[j].size, i, b[i].first, b[i].last, b[i].offset, b[i].offset + b[i].size);
    }
    return 0;
}

uint64_t plan_max_live(const struct plan_buffer *b, uint32_t n)
{
    uint64_t best = 0;
    /* The maximum is reached at some buffer's first step. */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t sum = 0;
        for (uint32_t j = 0; j < n; j++)
            if (b[j].first <= b[i].first && b[i].first <= b[j].last)
                sum += b[j].size;
        if (sum > best)
            best = sum;
    }
    return best;
}

/* ---- The pass ------------------------------------------------------------------------------------- */

/* pass_memplan: one buffer per node that owns a value, planned over the schedule (g->nodes in order).
 *
 * A buffer is written at its node's step (inputs: before step 0) and last read at the step of its last
 * reader; a view (reshape, last_row) and an output own nothing and keep their source's buffer alive
 * as long as they are read, an output until the end of the step. A matmul that runs in another's group
 * (pass_matmul_groups) is written at its head's step. Weights live in the weight pack and
 * the KV cache (kv_cache, kv_store) in its own storage, so neither is planned here. Sizes are taken at
 * T = t_max and P = n_ctx - t_max, so P + T = n_ctx: the largest step the program will run. */
int pass_memplan(struct ir_graph *g, struct pass_ctx *c)
{
    struct pass_plan *p = &c->plan;
    free(p->node);
    free(p->buf);
    memset(p, 0, sizeof *p);
    uint32_t n = g->n_nodes;
    int32_t *owner = malloc((n ? n : 1) * sizeof *owner);
    int32_t *group = pass_matmul_groups(g, c);
    p->node = malloc((n ? n : 1) * sizeof *p->node);
    p->buf = malloc((n ? n : 1) * sizeof *p->buf);
    if (!owner || !group || !p->node || !p->buf) {
        free(owner);
        free(group);
        return ae_fail(c->err, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct ir_node *x = g->nodes[i];
        owner[i] = -1;
        if (ir_op_has(x->op, IR_PROP_VIEW) || x->op == IR_OP_OUTPUT) {
            owner[i] = owner[x->src[0]->id];
        } else if (x->op != IR_OP_WEIGHT && x->op != IR_OP_KV_CACHE && x->op != IR_OP_KV_STORE) {
            owner[i] = (int32_t)p->n;
            p->node[p->n] = i;
            uint32_t first = x->op == IR_OP_INPUT ? 0 : group[i] >= 0 ? (uint32_t)group[i] : i;
            p->buf[p->n] = (struct plan_buffer){pass_node_bytes(x, c), first, i, 0};
            p->n++;
        }
        for (uint32_t s = 0; s < x->n_src; s++) {
            int32_t b = owner[x->src[s]->id];
            if (b >= 0 && p->buf[b].last < i)
                p->buf[b].last = i;
        }
        if (x->op == IR_OP_OUTPUT && owner[i] >= 0)
            p->buf[owner[i]].last = n;
    }
    free(owner);
    free(group);
    p->t_max = c->opt.t_max;
    p->n_ctx = c->opt.n_ctx;
    p->peak = plan_arena_assign(p->buf, p->n, c->opt.alignment);
    p->max_live = plan_max_live(p->buf, p->n);
    for (uint32_t i = 0; i < p->n; i++)
        p->naive += align_up(p->buf[i].size, c->opt.alignment);
    if (plan_check(p->buf, p->n, c->opt.alignment, p->peak, c->err))
        return ae_fail_prefix(c->err, "the memory plan is broken");
    p->done = true;
    return 0;
}
