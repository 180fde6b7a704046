/* ir_parse: reads the text dump (docs/ir.md) back into a graph.
 *
 * Each non-blank line that does not start with ';' is one node:
 *   %<id> = <op> [@<tensor>] [<operand>, ...] [{<param>=<value>, ...}] : <dtype>[<dims>] [; <origin>]
 * Operands are %<id> of an earlier line or @<tensor> of an earlier weight line. Nodes are appended in
 * file order, so the ids in the file need not be dense; printing renumbers them. Errors name the line
 * and column and say what was expected and what was found. The result is not verified here.
 */
#include "ir.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

struct parser {
    const char *name;       /* for messages */
    const char *line;       /* start of the current line */
    const char *p, *end;    /* cursor and end of the current line */
    uint32_t line_no;
    struct ir_graph *g;
    struct id_slot *ids;    /* text id -> node: open addressing, cap_ids a power of two (or 0) */
    uint32_t perm_len;      /* entries of the last permutation read */
    uint32_t cap_ids, n_ids;
    ae_error *err;
};

/* One entry of the id table. A table (not an array indexed by id) so that memory follows the number of
 * lines, not the size of the ids written in them. */
struct id_slot {
    uint32_t id;
    struct ir_node *node; /* NULL: empty */
};

/* A well-mixed hash of an id, so that ids with equal low bits (0, 256, 512, ...) do not collide. */
static uint32_t id_hash(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Stores (id, node) in a table of cap slots that has a free one. */
static void id_put(struct id_slot *t, uint32_t cap, uint32_t id, struct ir_node *node)
{
    uint32_t i = id_hash(id) & (cap - 1);
    while (t[i].node)
        i = (i + 1) & (cap - 1);
    t[i] = (struct id_slot){id, node};
}

static struct ir_node *find_id(const struct parser *ps, uint64_t id)
{
    if (ps->cap_ids == 0 || id > UINT32_MAX)
        return NULL;
    for (uint32_t i = id_hash((uint32_t)id) & (ps->cap_ids - 1);; i = (i + 1) & (ps->cap_ids - 1)) {
        if (!ps->ids[i].node)
            return NULL;
        if (ps->ids[i].id == id)
            return ps->ids[i].node;
    }
}

static int parse_fail(struct parser *ps, const char *what)
{
    const char *q = ps->p;
    size_t n = 0;
    while (q + n < ps->end && n < 24)
        n++;
    return ae_fail(ps->err, "%s:%" PRIu32 ":%u: expected %s, found '%.*s'%s", ps->name, ps->line_no,
                   (unsigned)(ps->p - ps->line + 1), what, (int)n, q, q == ps->end ? "(end of line)" : "");
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'))
        ps->p++;
}

static bool accept(struct parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return true;
    }
    return false;
}

static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* An identifier [A-Za-z0-9_]+; returns its length (0 when there is none). */
static size_t ident(struct parser *ps, const char **start)
{
    skip_ws(ps);
    *start = ps->p;
    while (ps->p < ps->end && is_ident(*ps->p))
        ps->p++;
    return (size_t)(ps->p - *start);
}

/* A bare name as written after '@' or ';': up to a space, ',', '{' or the end. */
static size_t bare_name(struct parser *ps, const char **start)
{
    *start = ps->p;
    while (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t' && *ps->p != ',' && *ps->p != '{' && *ps->p != '\r')
        ps->p++;
    return (size_t)(ps->p - *start);
}

static int parse_int(struct parser *ps, int64_t lo, int64_t hi, int64_t *out, const char *what)
{
    skip_ws(ps);
    char buf[32];
    size_t n = 0;
    while (ps->p + n < ps->end && n < sizeof buf - 1 && (ps->p[n] == '-' || (ps->p[n] >= '0' && ps->p[n] <= '9')))
        n++;
    if (n == 0)
        return parse_fail(ps, what);
    memcpy(buf, ps->p, n);
    buf[n] = 0;
    char *e;
    errno = 0;
    long long v = strtoll(buf, &e, 10);
    if (errno || *e || v < lo || v > hi)
        return parse_fail(ps, what);
    ps->p += n;
    *out = v;
    return 0;
}

static int parse_float(struct parser *ps, float *out)
{
    skip_ws(ps);
    char buf[64];
    size_t n = 0;
    while (ps->p + n < ps->end && n < sizeof buf - 1 && ps->p[n] != ',' && ps->p[n] != '}' && ps->p[n] != ' ')
        n++;
    memcpy(buf, ps->p, n);
    buf[n] = 0;
    char *e;
    errno = 0;
    float v = strtof(buf, &e);
    /* Underflow is fine (the printer writes subnormals such as 1e-45); overflow to inf is not. */
    if (n == 0 || *e || (errno == ERANGE && isinf(v)))
        return parse_fail(ps, "a number");
    ps->p += n;
    *out = v;
    return 0;
}

static struct ir_node *find_weight(struct parser *ps, const char *name, size_t len)
{
    for (uint32_t i = 0; i < ps->g->n_nodes; i++) {
        struct ir_node *n = ps->g->nodes[i];
        if (n->op == IR_OP_WEIGHT && n->name && strlen(n->name) == len && memcmp(n->name, name, len) == 0)
            return n;
    }
    return NULL;
}

static int parse_operand(struct parser *ps, struct ir_node **out)
{
    skip_ws(ps);
    if (accept(ps, '%')) {
        int64_t id = 0;
        if (parse_int(ps, 0, UINT32_MAX, &id, "a node id after '%'"))
            return -1;
        struct ir_node *n = find_id(ps, (uint64_t)id);
        if (!n) {
            ps->p--;
            return ae_fail(ps->err, "%s:%" PRIu32 ": %%%" PRId64 " is used before it is defined", ps->name,
                           ps->line_no, id);
        }
        *out = n;
        return 0;
    }
    if (accept(ps, '@')) {
        const char *s;
        size_t len = bare_name(ps, &s);
        struct ir_node *w = len ? find_weight(ps, s, len) : NULL;
        if (!w)
            return ae_fail(ps->err, "%s:%" PRIu32 ": weight @%.*s is used before a weight line defines it", ps->name,
                           ps->line_no, (int)len, s);
        *out = w;
        return 0;
    }
    return parse_fail(ps, "an operand (%id or @tensor)");
}

static int parse_param_value(struct parser *ps, struct ir_node *n, const struct ir_param_desc *pd)
{
    unsigned char *field = (unsigned char *)&n->p + pd->offset;
    switch (pd->kind) {
    case IR_PARAM_I32: {
        int64_t v = 0;
        if (parse_int(ps, INT32_MIN, INT32_MAX, &v, "an integer"))
            return -1;
        int32_t v32 = (int32_t)v;
        memcpy(field, &v32, sizeof v32);
        return 0;
    }
    case IR_PARAM_F32: {
        float v = 0.0f;
        if (parse_float(ps, &v))
            return -1;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case IR_PARAM_ENUM: {
        const char *s;
        size_t len = ident(ps, &s);
        for (int32_t i = 0; pd->enum_names[i]; i++)
            if (strlen(pd->enum_names[i]) == len && memcmp(pd->enum_names[i], s, len) == 0) {
                memcpy(field, &i, sizeof i);
                return 0;
            }
        ps->p = s;
        return parse_fail(ps, pd->enum_names[1] ? "one of the parameter's names" : "the parameter's name");
    }
    case IR_PARAM_PERM: {
        int32_t v[IR_MAX_DIMS] = {0};
        uint32_t k = 0;
        if (!accept(ps, '['))
            return parse_fail(ps, "'[' starting a permutation");
        if (!accept(ps, ']')) {
            do {
                int64_t x = 0;
                if (k == IR_MAX_DIMS)
                    return parse_fail(ps, "at most 4 entries");
                if (parse_int(ps, INT32_MIN, INT32_MAX, &x, "an axis"))
                    return -1;
                v[k++] = (int32_t)x;
            } while (accept(ps, ','));
            if (!accept(ps, ']'))
                return parse_fail(ps, "']' closing the permutation");
        }
        memcpy(field, v, sizeof v);
        ps->perm_len = k;
        return 0;
    }
    }
    return parse_fail(ps, "a parameter value");
}

static int parse_params(struct parser *ps, struct ir_node *n)
{
    uint32_t np;
    const struct ir_param_desc *pd = ir_op_params(n->op, &np);
    if (accept(ps, '}'))
        return 0;
    do {
        const char *s;
        size_t len = ident(ps, &s);
        const struct ir_param_desc *d = NULL;
        for (uint32_t i = 0; i < np; i++)
            if (strlen(pd[i].name) == len && memcmp(pd[i].name, s, len) == 0)
                d = &pd[i];
        if (!d) {
            ps->p = s;
            return parse_fail(ps, np ? "a parameter of this op" : "no parameters for this op");
        }
        if (!accept(ps, '='))
            return parse_fail(ps, "'=' after the parameter name");
        if (parse_param_value(ps, n, d))
            return -1;
    } while (accept(ps, ','));
    if (!accept(ps, '}'))
        return parse_fail(ps, "',' or '}' in the parameters");
    return 0;
}

static int parse_type(struct parser *ps, uint32_t *dtype, uint32_t *rank, int64_t *shape)
{
    const char *s;
    size_t len = ident(ps, &s);
    char name[16];
    if (len == 0 || len >= sizeof name) {
        ps->p = s;
        return parse_fail(ps, "a dtype (f32, i32, q4_0, ...)");
    }
    memcpy(name, s, len);
    name[len] = 0;
    int t = ae_type_from_name(name);
    if (t < 0) {
        ps->p = s;
        return parse_fail(ps, "a ggml type name");
    }
    *dtype = (uint32_t)t;
    if (!accept(ps, '['))
        return parse_fail(ps, "'[' starting the shape");
    *rank = 0;
    if (accept(ps, ']'))
        return 0;
    do {
        if (*rank == IR_MAX_DIMS)
            return parse_fail(ps, "at most 4 dimensions");
        skip_ws(ps);
        int64_t d = 0;
        if (ps->end - ps->p >= 3 && memcmp(ps->p, "P+T", 3) == 0) {
            ps->p += 3;
            d = IR_DIM_PT;
        } else if (ps->p < ps->end && *ps->p == 'T') {
            ps->p++;
            d = IR_DIM_T;
        } else if (ps->p < ps->end && *ps->p == 'P') {
            ps->p++;
            d = IR_DIM_P;
        } else if (parse_int(ps, 0, INT64_MAX, &d, "a dimension (a number, T, P or P+T)")) {
            return -1;
        }
        shape[(*rank)++] = d;
    } while (accept(ps, ','));
    if (!accept(ps, ']'))
        return parse_fail(ps, "',' or ']' in the shape");
    return 0;
}

static int remember_id(struct parser *ps, int64_t id, struct ir_node *n)
{
    if ((ps->n_ids + 1) * 2 > ps->cap_ids) { /* keep the table at most half full */
        uint32_t cap = ps->cap_ids ? ps->cap_ids * 2 : 256;
        struct id_slot *m = calloc(cap, sizeof *m);
        if (!m)
            return ae_fail(ps->err, "%s:%" PRIu32 ": out of memory for node ids", ps->name, ps->line_no);
        for (uint32_t i = 0; i < ps->cap_ids; i++)
            if (ps->ids[i].node)
                id_put(m, cap, ps->ids[i].id, ps->ids[i].node);
        free(ps->ids);
        ps->ids = m;
        ps->cap_ids = cap;
    }
    id_put(ps->ids, ps->cap_ids, (uint32_t)id, n);
    ps->n_ids++;
    return 0;
}

static int parse_line(struct parser *ps)
{
    int64_t id = 0;
    if (!accept(ps, '%'))
        return parse_fail(ps, "'%' starting a node line");
    if (parse_int(ps, 0, (1 << 24) - 1, &id, "a node id below 2^24"))
        return -1;
    if (find_id(ps, (uint64_t)id))
        return ae_fail(ps->err, "%s:%" PRIu32 ": %%%" PRId64 " is defined twice", ps->name, ps->line_no, id);
    if (!accept(ps, '='))
        return parse_fail(ps, "'=' after the node id");
    const char *s;
    size_t len = ident(ps, &s);
    int op = ir_op_from_name(s, len);
    if (op < 0) {
        ps->p = s;
        return parse_fail(ps, "an op name");
    }

    const char *wname = NULL;
    size_t wlen = 0;
    struct ir_node *src[IR_MAX_SRC];
    uint32_t n_src = 0;
    if (op == IR_OP_WEIGHT) {
        if (!accept(ps, '@'))
            return parse_fail(ps, "'@' and the tensor name of a weight");
        wlen = bare_name(ps, &wname);
        if (wlen == 0)
            return parse_fail(ps, "a tensor name");
        if (find_weight(ps, wname, wlen))
            return ae_fail(ps->err, "%s:%" PRIu32 ": weight @%.*s is defined twice", ps->name, ps->line_no,
                           (int)wlen, wname);
    } else {
        skip_ws(ps);
        if (ps->p < ps->end && (*ps->p == '%' || *ps->p == '@')) {
            do {
                if (n_src == IR_MAX_SRC)
                    return parse_fail(ps, "at most " STR(IR_MAX_SRC) " operands");
                if (parse_operand(ps, &src[n_src]))
                    return -1;
                n_src++;
            } while (accept(ps, ','));
        }
    }
    if (n_src < ir_op_min_src((enum ir_op)op) || n_src > ir_op_max_src((enum ir_op)op))
        return ae_fail(ps->err, "%s:%" PRIu32 ": %s takes %" PRIu32 " to %" PRIu32 " operands, found %" PRIu32,
                       ps->name, ps->line_no, ir_op_name((enum ir_op)op), ir_op_min_src((enum ir_op)op),
                       ir_op_max_src((enum ir_op)op), n_src);

    union ir_params params;
    memset(&params, 0, sizeof params);
    struct ir_node tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.op = (enum ir_op)op;
    ps->perm_len = 0;
    if (accept(ps, '{')) {
        if (parse_params(ps, &tmp))
            return -1;
    }
    params = tmp.p;
    if (!accept(ps, ':'))
        return parse_fail(ps, "':' before the type");
    uint32_t dtype = 0, rank = 0;
    int64_t shape[IR_MAX_DIMS] = {0};
    if (parse_type(ps, &dtype, &rank, shape))
        return -1;
    if (op == IR_OP_PERMUTE && ps->perm_len != rank)
        return parse_fail(ps, "a permutation with one entry per dimension");

    const char *origin = NULL;
    size_t olen = 0;
    if (accept(ps, ';')) {
        skip_ws(ps);
        olen = bare_name(ps, &origin);
        if (olen == 0)
            return parse_fail(ps, "an origin name after ';'");
    }
    skip_ws(ps);
    if (ps->p != ps->end)
        return parse_fail(ps, "the end of the line");

    struct ir_node *n = ir_node_new(ps->g, (enum ir_op)op, dtype, rank, shape, n_src, src);
    n->p = params;
    if (wname) {
        n->name = ir_strdup(ps->g, wname, wlen);
        n->layer = ir_name_layer(n->name);
    } else if (origin) {
        n->name = ir_strdup(ps->g, origin, olen);
        n->layer = ir_name_layer(n->name);
    }
    return remember_id(ps, id, n);
}

int ir_parse(struct ir_graph **out, const char *text, size_t len, const char *name, ae_error *err)
{
    struct parser ps = {0};
    ps.name = name ? name : "<ir>";
    ps.g = ir_graph_create();
    ps.err = err;
    const char *p = text, *end = text + len;
    int rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        ps.line_no++;
        ps.line = ps.p = p;
        ps.end = le;
        skip_ws(&ps);
        if (ps.p < ps.end && *ps.p != ';')
            rc = parse_line(&ps);
        p = nl ? nl + 1 : end;
    }
    free(ps.ids);
    if (rc) {
        ir_graph_destroy(ps.g);
        return -1;
    }
    *out = ps.g;
    return 0;
}
