/* The pass pipeline: the passes in PASS_LIST's order (pass.h), ir_verify after each, and the IR dumps
 * between them.
 *
 * A dump after a pass prints "; after <pass>" and the graph, to one stream or to one file per pass named
 * by its place in the order ("03-dce.ir"); "00-import" is the graph before the first pass.
 */
#include "pass.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const struct pass_entry {
    const char *name;
    int (*run)(struct ir_graph *g, struct pass_ctx *c);
} pass_table[PASS_COUNT] = {
#define X(ID, NAME) [PASS_##ID] = {#NAME, pass_##NAME},
    PASS_LIST(X)
#undef X
};

/* "simplify, cse, ...": the names joined, less the first separator. */
static const char pass_names_joined[] = ""
#define X(ID, NAME) ", " #NAME
    PASS_LIST(X)
#undef X
    ;

const char *pass_name(enum pass_id id)
{
    return (unsigned)id < PASS_COUNT ? pass_table[id].name : "import";
}

int pass_from_name(const char *name, size_t len)
{
    for (int i = 0; i < PASS_COUNT; i++)
        if (strlen(pass_table[i].name) == len && memcmp(pass_table[i].name, name, len) == 0)
            return i;
    return -1;
}

const char *pass_list(void)
{
    return pass_names_joined + 2;
}

void pass_ctx_init(struct pass_ctx *c, ae_error *err)
{
    memset(c, 0, sizeof *c);
    c->err = err;
    c->opt.alignment = 64;
    c->opt.t_max = 512;
    c->opt.n_ctx = 0;
#ifdef NDEBUG
    c->opt.verify_each = false;
#else
    c->opt.verify_each = true;
#endif
    c->opt.fold_max_bytes = 1u << 20;
    c->opt.byte_cost = 1.0;
    c->opt.flop_cost = 0.25;
    c->opt.interleave = true;
    c->opt.merge = true;
    c->dump_format = PASS_DUMP_TEXT;
}

void pass_ctx_free(struct pass_ctx *c)
{
    for (uint32_t i = 0; i < c->n_consts; i++)
        free(c->consts[i].data);
    free(c->consts);
    free(c->layouts);
    free(c->merges);
    free(c->plan.node);
    free(c->plan.buf);
    memset(&c->plan, 0, sizeof c->plan);
    c->consts = NULL;
    c->layouts = NULL;
    c->merges = NULL;
    c->n_consts = c->cap_consts = c->n_layouts = c->n_merges = 0;
}

/* ---- Printing and dumps --------------------------------------------------------------------------- */

static void print_notes(const struct pass_ctx *c, FILE *f, const char *cm)
{
    for (uint32_t i = 0; i < c->n_layouts; i++) {
        const struct pass_layout *l = &c->layouts[i];
        fprintf(f, "%s layout @%s %s", cm, l->weight, l->format);
        if (l->merge >= 0) {
            const struct pass_merge *m = &c->merges[l->merge];
            fprintf(f, " merged %s#%" PRId32 " rows %" PRId64 "..%" PRId64 " of %" PRId64, m->kind, l->merge,
                    l->row_begin, l->row_end, m->rows);
        }
        fprintf(f, "\n");
    }
    const struct pass_plan *p = &c->plan;
    if (!p->done)
        return;
    fprintf(f, "%s plan t_max=%" PRId64 " n_ctx=%" PRId64 " buffers=%" PRIu32 " peak=%" PRIu64 " naive=%" PRIu64
            " max_live=%" PRIu64 "\n", cm, p->t_max, p->n_ctx, p->n, p->peak, p->naive, p->max_live);
    for (uint32_t i = 0; i < p->n; i++) {
        const struct plan_buffer *b = &p->buf[i];
        uint32_t id = p->node[i];
        fprintf(f, "%s plan %%%" PRIu32 " offset=%" PRIu64 " size=%" PRIu64 " live=%" PRIu32 "..%" PRIu32 "\n", cm,
                id, b->offset, b->size, b->first, b->last);
    }
}

int pass_print(const struct ir_graph *g, const struct pass_ctx *c, FILE *f)
{
    if (ir_print(g, f))
        return -1;
    print_notes(c, f, ";");
    return 0;
}

/* Dumps g after pass id (PASS_COUNT: before the first pass) when the context asks for it. */
static int dump(const struct ir_graph *g, struct pass_ctx *c, uint32_t id)
{
    if (!(c->dump_mask & (1u << id)))
        return 0;
    const char *name = pass_name((enum pass_id)id);
    bool yaml = c->dump_format == PASS_DUMP_YAML;
    FILE *f = c->dump_file ? c->dump_file : stdout;
    char path[4096];
    if (c->dump_dir) {
        snprintf(path, sizeof path, "%s/%02u-%s.%s", c->dump_dir, id == PASS_COUNT ? 0u : id + 1u, name,
                 yaml ? "yaml" : "ir");
        f = fopen(path, "w");
        if (!f)
            return ae_fail(c->err, "cannot write the dump %s: %s", path, strerror(errno));
    }
    int rc = 0;
    fprintf(f, "%s after %s\n", yaml ? "#" : ";", name);
    if (yaml) {
        rc = ir_emit_yaml(g, f, c->err);
        if (rc == 0)
            print_notes(c, f, "#");
    } else if (pass_print(g, c, f)) {
        rc = ae_fail(c->err, "writing the dump after %s failed", name);
    }
    if (c->dump_dir) {
        if (fclose(f) != 0 && rc == 0)
            rc = ae_fail(c->err, "cannot write the dump %s: %s", path, strerror(errno));
    } else {
        fflush(f);
    }
    return rc;
}

/* ---- Running -------------------------------------------------------------------------------------- */

int pass_run(struct ir_graph *g, struct pass_ctx *c, enum pass_id id)
{
    if (pass_table[id].run(g, c))
        return ae_fail_prefix(c->err, "pass %s", pass_table[id].name);
    if (c->opt.verify_each && ir_verify(g, c->err))
        return ae_fail_prefix(c->err, "the graph is invalid after pass %s", pass_table[id].name);
    return 0;
}

/* Runs pass id unless it is disabled, then the dump after it. */
static int step(struct ir_graph *g, struct pass_ctx *c, enum pass_id id)
{
    if (c->opt.disabled & (1u << id))
        return 0;
    if (pass_run(g, c, id))
        return -1;
    return dump(g, c, id);
}

int pass_pipeline_run(struct ir_graph *g, struct pass_ctx *c)
{
    c->stats.nodes_in = g->n_nodes;
    if (dump(g, c, PASS_COUNT))
        return -1;
    for (int id = 0; id < PASS_COUNT; id++)
        if (step(g, c, (enum pass_id)id))
            return -1;
    c->stats.nodes_out = g->n_nodes;
    return 0;
}
