/* layout: decides, for every weight, the layout the target's kernels will read it in (docs/kernels.md),
 * and which matrices are stored merged.
 *
 * A weight that only matmuls (as their weight operand; or the experts' matmul_id, when each expert's
 * row count is a multiple of 16) and get_rows (as its table) read, and whose type has an interleaved
 * layout, is stored as x16: 16 rows interleaved so that a SIMD register holds 4 quant bytes of each of
 * 16 rows. A tied embedding that is also the lm head is one of them: get_rows unpacks the few rows it
 * reads. Every other weight (norm weights, types without an x16 format, weights other ops read) keeps
 * the GGUF's rows. The weights pack is written in the chosen
 * layout at compile time (compiler/emit/pack_build.c); a program never repacks. With
 * opt.interleave off (a run from the GGUF mapping in place) every weight keeps its rows. The format
 * names the layout and the ggml type: "x16-q4_0", "rows-q6_k".
 *
 * Merging (opt.merge): matrices multiplied by the same activations (the Q, K and V projections, the
 * FFN's gate and up) are stored as one matrix, their rows one after another, and run as one multi-part
 * matmul (pass_matmul_groups, which also groups weights of different types whose activations convert
 * alike). A group is merged when every member is a 2-D weight of the same type, layout and row length,
 * read by no other node, whose rows are whole groups of its layout (x16: a multiple of 16, so that no
 * padded group sits inside the matrix); its kind is named from the members ("qkv", "gate_up", "qk", or
 * "rows" for other groups). The decisions are recorded in the context (c->layouts, c->merges), keyed by
 * tensor name, and printed beside the graph; the graph itself does not change. The weights pack writes a
 * merged group as one matrix, each member a view of its rows (compiler/emit/pack_build.c).
 */
#include "pass.h"

#include "ae_kernels.h"

#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The role of a projection weight: a short name for merge kinds, or NULL. */
static const char *role(const char *name)
{
    static const struct { const char *suffix, *role; } roles[] = {
        {"attn_q.weight", "q"}, {"attn_k.weight", "k"}, {"attn_v.weight", "v"},
        {"ffn_gate.weight", "gate"}, {"ffn_up.weight", "up"},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (ends_with(name, roles[i].suffix))
            return roles[i].role;
    return NULL;
}

static void merge_kind(char out[16], const struct ir_node *const *w, uint32_t n)
{
    char buf[16] = "";
    for (uint32_t i = 0; i < n; i++) {
        const char *r = role(w[i]->name);
        size_t len = strlen(buf);
        bool wide = r && strlen(r) > 1;
        if (!r || w[i]->layer != w[0]->layer || len + strlen(r) + 2 > sizeof buf) {
            memcpy(out, "rows", 5);
            return;
        }
        if (wide && len)
            buf[len++] = '_';
        memcpy(buf + len, r, strlen(r) + 1);
    }
    memcpy(out, buf, sizeof buf);
}

/* Whether some matmul multiplies by w (an embedding only get_rows reads keeps its rows). */
static bool has_matmul_use(const struct ir_graph *g, const struct ir_node *w)
{
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *m = g->nodes[i];
        const bool matmul = m->op == IR_OP_MATMUL || m->op == IR_OP_MATMUL_EW || m->op == IR_OP_MATMUL_ROPE ||
                            m->op == IR_OP_MATMUL_ID;
        if (matmul && m->src[1] == w)
            return true;
    }
    return false;
}

/* Whether w's rows are whole groups of its layout, so that its rows can follow another's in one matrix
 * (an x16 matrix of 172 rows ends in a padded group). */
static bool whole_groups(const struct pass_ctx *c, const int32_t *entry, const struct ir_node *w)
{
    return w->shape[0] % ae_layout_rows_per_group((enum ae_layout)c->layouts[entry[w->id]].layout) == 0;
}

int pass_layout(struct ir_graph *g, struct pass_ctx *c)
{
    free(c->layouts);
    free(c->merges);
    c->layouts = NULL;
    c->merges = NULL;
    c->n_layouts = c->n_merges = 0;
    uint32_t n = g->n_nodes;
    uint32_t *uses = pass_count_uses(g);
    int32_t *entry = malloc((n ? n : 1) * sizeof *entry);          /* weight id -> layout index */
    struct ir_node **group = malloc((n ? n : 1) * sizeof *group);
    c->layouts = calloc(n ? n : 1, sizeof *c->layouts);
    c->merges = calloc(n ? n : 1, sizeof *c->merges);
    if (!uses || !entry || !group || !c->layouts || !c->merges) {
        free(uses);
        free(entry);
        free(group);
        return ae_fail(c->err, "out of memory");
    }
    /* weights read by anything but a matmul's weight operand keep their rows */
    bool *other_use = calloc(n ? n : 1, sizeof *other_use);
    if (!other_use) {
        free(uses);
        free(entry);
        free(group);
        return ae_fail(c->err, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct ir_node *m = g->nodes[i];
        const bool matmul = m->op == IR_OP_MATMUL || m->op == IR_OP_MATMUL_EW || m->op == IR_OP_MATMUL_ROPE ||
                            m->op == IR_OP_MATMUL_ID;
        for (uint32_t s = 0; s < m->n_src; s++)
            if (!(matmul && s == 1) && !(m->op == IR_OP_GET_ROWS && s == 0))
                other_use[m->src[s]->id] = true;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct ir_node *w = g->nodes[i];
        entry[i] = -1;
        if (w->op != IR_OP_WEIGHT)
            continue;
        struct pass_layout *l = &c->layouts[c->n_layouts];
        l->weight = w->name;
        l->layout = AE_LAYOUT_ROWS;
        /* experts' matrices [E, N, K] too, when each is whole groups (so the pack can interleave E * N rows) */
        const bool whole = w->rank == 2 || (w->rank == 3 && w->shape[1] % ae_layout_rows_per_group(AE_LAYOUT_X16) == 0);
        if (c->opt.interleave && !other_use[w->id] && uses[w->id] > 0 && whole && has_matmul_use(g, w) &&
            ae_layout_supports(w->dtype, AE_LAYOUT_X16))
            l->layout = AE_LAYOUT_X16;
        snprintf(l->format, sizeof l->format, "%s-%s", ae_layout_name((enum ae_layout)l->layout),
                 ae_type_name(w->dtype));
        l->merge = -1;
        l->row_begin = 0;
        l->row_end = w->shape[0];
        entry[i] = (int32_t)c->n_layouts++;
    }
    free(other_use);
    c->stats.layout_weights = c->n_layouts;

    /* Groups: for each activation x, the single-use weights of the matmuls that read x, by type and row
     * length, in node order. */
    for (uint32_t i = 0; c->opt.merge && i < n; i++) {
        const struct ir_node *x = g->nodes[i];
        bool *taken = NULL;
        uint32_t n_mm = 0;
        for (uint32_t j = i + 1; j < n; j++) {
            const struct ir_node *m = g->nodes[j];
            if (m->op == IR_OP_MATMUL && m->src[0] == x && m->src[1]->op == IR_OP_WEIGHT &&
                m->src[1]->rank == 2 && uses[m->src[1]->id] == 1 && whole_groups(c, entry, m->src[1]))
                group[n_mm++] = m->src[1];
        }
        if (n_mm < 2)
            continue;
        taken = calloc(n_mm, sizeof *taken);
        if (!taken) {
            free(uses);
            free(entry);
            free(group);
            return ae_fail(c->err, "out of memory");
        }
        for (uint32_t a = 0; a < n_mm; a++) {
            if (taken[a])
                continue;
            struct ir_node *members[AE_MATMUL_MAX_PARTS];
            uint32_t k = 0;
            for (uint32_t b = a; b < n_mm && k < AE_MATMUL_MAX_PARTS; b++)
                if (!taken[b] && group[b]->dtype == group[a]->dtype && group[b]->shape[1] == group[a]->shape[1]) {
                    members[k++] = group[b];
                    taken[b] = true;
                }
            if (k < 2)
                continue;
            struct pass_merge *m = &c->merges[c->n_merges];
            merge_kind(m->kind, (const struct ir_node *const *)members, k);
            m->layer = members[0]->layer;
            m->n_parts = k;
            m->dtype = members[0]->dtype;
            m->cols = members[0]->shape[1];
            m->rows = 0;
            for (uint32_t p = 0; p < k; p++) {
                struct pass_layout *l = &c->layouts[entry[members[p]->id]];
                l->merge = (int32_t)c->n_merges;
                l->row_begin = m->rows;
                m->rows += members[p]->shape[0];
                l->row_end = m->rows;
            }
            c->n_merges++;
        }
        free(taken);
    }
    c->stats.layout_merges = c->n_merges;
    free(uses);
    free(entry);
    free(group);
    return 0;
}

const struct pass_layout *pass_weight_find(const struct pass_ctx *c, const char *name)
{
    for (uint32_t i = 0; name && i < c->n_layouts; i++)
        if (strcmp(c->layouts[i].weight, name) == 0)
            return &c->layouts[i];
    return NULL;
}

uint32_t pass_weight_layout(const struct pass_ctx *c, const char *name)
{
    const struct pass_layout *l = pass_weight_find(c, name);
    return l ? l->layout : AE_LAYOUT_ROWS;
}
