/* The text dump: one node per line, stable and diffable, read back by ir_parse (docs/ir.md).
 *
 *   %12 = matmul %11, @blk.3.attn_q.weight : f32[T,2048]  ; blk.3.attn_q
 *
 * Ids are positions in g->nodes, so a dump is canonical: print(parse(print(g))) == print(g) byte for
 * byte. Floats are printed with the fewest digits that read back to the same bits (integral values
 * without an exponent).
 */
#include "ir.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A growing output buffer with snprintf's contract: it counts what it would need. */
struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->size ? o->size - o->len : 0;
    int k = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0)
        o->len += (size_t)k;
}

const char *ir_float_str(float f, char *buf)
{
    if (f == rintf(f) && fabsf(f) < 1e9f) {
        snprintf(buf, 48, "%.0f", (double)f);
        return buf;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, 48, "%.*g", prec, (double)f);
        float back = strtof(buf, NULL);
        if (memcmp(&back, &f, sizeof f) == 0 || (f != f && back != back))
            break;
    }
    return buf;
}

static void put_float(struct out *o, float f)
{
    char tmp[48];
    put(o, "%s", ir_float_str(f, tmp));
}

static void put_operand(struct out *o, const struct ir_node *s)
{
    if (s->op == IR_OP_WEIGHT && s->name)
        put(o, "@%s", s->name);
    else
        put(o, "%%%" PRIu32, s->id);
}

static void put_params(struct out *o, const struct ir_node *n)
{
    uint32_t np;
    const struct ir_param_desc *pd = ir_op_params(n->op, &np);
    if (!np)
        return;
    const unsigned char *base = (const unsigned char *)&n->p;
    put(o, " {");
    for (uint32_t i = 0; i < np; i++) {
        const void *field = base + pd[i].offset;
        put(o, "%s%s=", i ? ", " : "", pd[i].name);
        switch (pd[i].kind) {
        case IR_PARAM_I32: {
            int32_t v;
            memcpy(&v, field, sizeof v);
            put(o, "%" PRId32, v);
            break;
        }
        case IR_PARAM_F32: {
            float v;
            memcpy(&v, field, sizeof v);
            put_float(o, v);
            break;
        }
        case IR_PARAM_ENUM: {
            int32_t v;
            uint32_t count = 0;
            memcpy(&v, field, sizeof v);
            while (pd[i].enum_names[count])
                count++;
            if (v >= 0 && (uint32_t)v < count)
                put(o, "%s", pd[i].enum_names[v]);
            else
                put(o, "%" PRId32, v);
            break;
        }
        case IR_PARAM_PERM: {
            int32_t v[IR_MAX_DIMS];
            memcpy(v, field, sizeof v);
            put(o, "[");
            for (uint32_t d = 0; d < n->rank; d++)
                put(o, "%s%" PRId32, d ? "," : "", v[d]);
            put(o, "]");
            break;
        }
        }
    }
    put(o, "}");
}

static void put_node(struct out *o, const struct ir_node *n)
{
    char d[24];
    put(o, "%%%" PRIu32 " = %s", n->id, ir_op_name(n->op));
    if (n->op == IR_OP_WEIGHT)
        put(o, " @%s", n->name ? n->name : "");
    for (uint32_t i = 0; i < n->n_src; i++) {
        put(o, i ? ", " : " ");
        put_operand(o, n->src[i]);
    }
    put_params(o, n);
    put(o, " : %s[", ae_type_name(n->dtype));
    for (uint32_t i = 0; i < n->rank; i++)
        put(o, "%s%s", i ? "," : "", ir_dim_str(n->shape[i], d));
    put(o, "]");
    if (n->name && n->op != IR_OP_WEIGHT)
        put(o, "  ; %s", n->name);
}

int ir_print_node(const struct ir_node *n, char *buf, size_t size)
{
    struct out o = {buf, size, 0};
    if (size)
        buf[0] = 0;
    put_node(&o, n);
    return (int)o.len;
}

char *ir_print_string(const struct ir_graph *g)
{
    struct out o = {NULL, 0, 0};
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        put_node(&o, g->nodes[i]);
        put(&o, "\n");
    }
    size_t need = o.len + 1;
    char *buf = malloc(need);
    if (!buf)
        return NULL;
    o = (struct out){buf, need, 0};
    buf[0] = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        put_node(&o, g->nodes[i]);
        put(&o, "\n");
    }
    return buf;
}

int ir_print(const struct ir_graph *g, FILE *f)
{
    char line[1024];
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        int k = ir_print_node(g->nodes[i], line, sizeof line);
        if (k < 0)
            return -1;
        if ((size_t)k < sizeof line) {
            if (fprintf(f, "%s\n", line) < 0)
                return -1;
        } else {
            char *big = malloc((size_t)k + 1);
            if (!big)
                return -1;
            ir_print_node(g->nodes[i], big, (size_t)k + 1);
            int rc = fprintf(f, "%s\n", big);
            free(big);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}
