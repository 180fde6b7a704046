/* The YAML form of a graph, for tools (--dump-format=yaml), emitted through libyaml.
 *
 *   nodes:
 *   - {id: 12, op: matmul, src: ['%11', '@blk.3.attn_q.weight'], dtype: f32, shape: [T, 2048],
 *      params: {}, name: blk.3.attn_q, layer: 3}
 *
 * It carries the same information as the text form (docs/ir.md) in a shape any YAML reader loads.
 * Only emitting is supported; the text form is the one that parses back.
 */
#include "ir.h"

#include <inttypes.h>
#include <string.h>
#include <yaml.h>

struct yemit {
    yaml_emitter_t em;
    yaml_event_t ev;
    bool failed;
};

static void emit(struct yemit *y, int ok)
{
    if (y->failed)
        return;
    if (!ok || !yaml_emitter_emit(&y->em, &y->ev))
        y->failed = true;
}

/* A scalar; libyaml quotes it when a plain one would not read back ('%12', '@blk.0.attn_q.weight'). */
static void scalar(struct yemit *y, const char *s)
{
    if (y->failed)
        return;
    emit(y, yaml_scalar_event_initialize(&y->ev, NULL, NULL, (const yaml_char_t *)s, (int)strlen(s), 1, 1,
                                         YAML_ANY_SCALAR_STYLE));
}

static void seq_start(struct yemit *y, bool flow)
{
    if (y->failed)
        return;
    emit(y, yaml_sequence_start_event_initialize(&y->ev, NULL, NULL, 1,
                                                 flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
}

static void seq_end(struct yemit *y)
{
    if (y->failed)
        return;
    emit(y, yaml_sequence_end_event_initialize(&y->ev));
}

static void map_start(struct yemit *y, bool flow)
{
    if (y->failed)
        return;
    emit(y, yaml_mapping_start_event_initialize(&y->ev, NULL, NULL, 1,
                                                flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(struct yemit *y)
{
    if (y->failed)
        return;
    emit(y, yaml_mapping_end_event_initialize(&y->ev));
}

static void emit_params(struct yemit *y, const struct ir_node *n)
{
    uint32_t np;
    const struct ir_param_desc *pd = ir_op_params(n->op, &np);
    const unsigned char *base = (const unsigned char *)&n->p;
    char buf[64];
    map_start(y, true);
    for (uint32_t i = 0; i < np; i++) {
        const void *field = base + pd[i].offset;
        scalar(y, pd[i].name);
        switch (pd[i].kind) {
        case IR_PARAM_I32: {
            int32_t v;
            memcpy(&v, field, sizeof v);
            snprintf(buf, sizeof buf, "%" PRId32, v);
            scalar(y, buf);
            break;
        }
        case IR_PARAM_F32: {
            float v;
            memcpy(&v, field, sizeof v);
            scalar(y, ir_float_str(v, buf));
            break;
        }
        case IR_PARAM_ENUM: {
            int32_t v;
            uint32_t count = 0;
            memcpy(&v, field, sizeof v);
            while (pd[i].enum_names[count])
                count++;
            if (v >= 0 && (uint32_t)v < count) {
                scalar(y, pd[i].enum_names[v]);
            } else {
                snprintf(buf, sizeof buf, "%" PRId32, v);
                scalar(y, buf);
            }
            break;
        }
        case IR_PARAM_PERM: {
            int32_t v[IR_MAX_DIMS];
            memcpy(v, field, sizeof v);
            seq_start(y, true);
            for (uint32_t d = 0; d < n->rank; d++) {
                snprintf(buf, sizeof buf, "%" PRId32, v[d]);
                scalar(y, buf);
            }
            seq_end(y);
            break;
        }
        }
    }
    map_end(y);
}

static void emit_node(struct yemit *y, const struct ir_node *n)
{
    char buf[64];
    map_start(y, false);
    scalar(y, "id");
    snprintf(buf, sizeof buf, "%" PRIu32, n->id);
    scalar(y, buf);
    scalar(y, "op");
    scalar(y, ir_op_name(n->op));
    scalar(y, "src");
    seq_start(y, true);
    for (uint32_t i = 0; i < n->n_src; i++) {
        const struct ir_node *s = n->src[i];
        char ref[1024];
        if (s->op == IR_OP_WEIGHT && s->name)
            snprintf(ref, sizeof ref, "@%s", s->name);
        else
            snprintf(ref, sizeof ref, "%%%" PRIu32, s->id);
        scalar(y, ref);
    }
    seq_end(y);
    scalar(y, "dtype");
    scalar(y, ae_type_name(n->dtype));
    scalar(y, "shape");
    seq_start(y, true);
    for (uint32_t i = 0; i < n->rank; i++)
        scalar(y, ir_dim_str(n->shape[i], buf));
    seq_end(y);
    uint32_t np;
    ir_op_params(n->op, &np);
    if (np) {
        scalar(y, "params");
        emit_params(y, n);
    }
    if (n->name) {
        scalar(y, n->op == IR_OP_WEIGHT ? "tensor" : "name");
        scalar(y, n->name);
    }
    if (n->layer >= 0) {
        scalar(y, "layer");
        snprintf(buf, sizeof buf, "%" PRId32, n->layer);
        scalar(y, buf);
    }
    map_end(y);
}

int ir_emit_yaml(const struct ir_graph *g, FILE *f, ae_error *err)
{
    struct yemit y;
    memset(&y, 0, sizeof y);
    if (!yaml_emitter_initialize(&y.em))
        return ae_fail(err, "cannot initialize the YAML emitter");
    yaml_emitter_set_output_file(&y.em, f);
    yaml_emitter_set_unicode(&y.em, 1);
    yaml_emitter_set_width(&y.em, 120);
    emit(&y, yaml_stream_start_event_initialize(&y.ev, YAML_UTF8_ENCODING));
    emit(&y, !y.failed && yaml_document_start_event_initialize(&y.ev, NULL, NULL, NULL, 1));
    map_start(&y, false);
    scalar(&y, "nodes");
    seq_start(&y, false);
    for (uint32_t i = 0; i < g->n_nodes && !y.failed; i++)
        emit_node(&y, g->nodes[i]);
    seq_end(&y);
    map_end(&y);
    emit(&y, !y.failed && yaml_document_end_event_initialize(&y.ev, 1));
    emit(&y, !y.failed && yaml_stream_end_event_initialize(&y.ev));
    int rc = 0;
    if (y.failed)
        rc = ae_fail(err, "YAML emitter: %s", y.em.problem ? y.em.problem : "cannot write the output");
    yaml_emitter_delete(&y.em);
    return rc;
}
