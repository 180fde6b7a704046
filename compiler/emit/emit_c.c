/* The C printer (emit_c.h): the lowered program (lower.h) as one C translation unit.
 *
 * Every piece of C it writes is a snippet of templates/ (program_head.c verbatim, then the frame of
 * program.c around the steps of steps.c); this file only computes what fills their placeholders: C
 * expressions for references and sizes, float literals that read back exactly, escaped strings. The
 * forward step is written three times, for prefill (T an argument), decode (T = 1, a constant, so that
 * every shape is constant and gcc specializes the loops) and the batched step of the server (T rows of R
 * sequences, from the batched lowering), each node a block headed by its IR line.
 */
#include "emit_c.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ae_kernels.h"
#include "template.h"

extern const char tmpl_program_head[], tmpl_program[], tmpl_steps[];

const struct lower_target emit_c_target = {
    .backend = "C",
    .kernels = "CPU",
    .arena_alignment = 64,
    .matmul_supports = ae_matmul_supports,
};

struct printer {
    FILE *out;
    const struct lower_program *lp;
    ae_error *err;
    uint32_t n_layer;      /* the batched step's cache of sequence q, layer l: s->k_cache[q * n_layer + l] */
    bool in_seq;           /* printing a per-sequence step: caches are the sequence's */
};

/* ---- Placeholder values ----------------------------------------------------------------------------- */

#define MAX_ARGS 32

/* The values of one snippet's placeholders, formatted into buf. */
struct args {
    uint32_t n;
    struct tmpl_arg a[MAX_ARGS];
    char buf[1 << 16];             /* the weight offsets of a 7B model alone take ~4 KiB */
    size_t used;
    const char *overflow;          /* the placeholder that did not fit, reported by put() and fill() */
};

static void arg(struct args *a, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void arg(struct args *a, const char *name, const char *fmt, ...)
{
    char *v = a->buf + a->used;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(v, sizeof a->buf - a->used, fmt, ap);
    va_end(ap);
    if (a->n == MAX_ARGS || k < 0 || (size_t)k >= sizeof a->buf - a->used) {
        if (!a->overflow)
            a->overflow = name;
        return;
    }
    a->a[a->n++] = (struct tmpl_arg){name, v};
    a->used += (size_t)k + 1;
}

/* A placeholder whose value is a string the caller keeps alive until the snippet is written (not copied
 * into buf: the weights' offsets and the description grow with the model). */
static void arg_text(struct args *a, const char *name, const char *value)
{
    if (a->n == MAX_ARGS) {
        if (!a->overflow)
            a->overflow = name;
        return;
    }
    a->a[a->n++] = (struct tmpl_arg){name, value};
}

/* A printer limit, not bad input: said as an error naming the snippet rather than a truncated program. */
static int args_overflowed(struct printer *p, const char *snippet, const struct args *a)
{
    if (!a || !a->overflow)
        return 0;
    ae_fail(p->err, "internal limit: the C printer's snippet '%s' has no room for placeholder '%s' (%d at most, "
            "%zu bytes of values)", snippet, a->overflow, MAX_ARGS, sizeof a->buf);
    return -1;
}

static int put(struct printer *p, const char *text, const char *snippet, const struct args *a)
{
    if (args_overflowed(p, snippet, a))
        return -1;
    return tmpl_write(p->out, text, snippet, a ? a->a : NULL, a ? a->n : 0, p->err);
}

/* A snippet filled into a malloc'd string without its last newline (for a placeholder inside another). */
static char *fill(struct printer *p, const char *text, const char *snippet, const struct args *a)
{
    if (args_overflowed(p, snippet, a))
        return NULL;
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f) {
        ae_fail(p->err, "out of memory");
        return NULL;
    }
    int rc = tmpl_write(f, text, snippet, a ? a->a : NULL, a ? a->n : 0, p->err);
    if (fclose(f) != 0 || rc) {
        if (!rc)
            ae_fail(p->err, "out of memory");
        free(s);
        return NULL;
    }
    if (len && s[len - 1] == '\n')
        s[len - 1] = 0;
    return s;
}

/* A float as a C literal that reads back as the same float: "0.353553385f", "10000.0f". */
static const char *flt(float v, char *buf)
{
    if (isnan(v))
        return "NAN";
    if (isinf(v))
        return v < 0 ? "-INFINITY" : "INFINITY";
    snprintf(buf, 40, "%.9g", (double)v);
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
    strcat(buf, "f");
    return buf;
}

/* A size: "64", "(int64_t)T", "((int64_t)T * 8)", "((int64_t)T * 256 - 256)". */
static const char *size_expr(struct lower_size s, char *buf, size_t cap)
{
    if (lower_size_is_const(s)) {
        snprintf(buf, cap, "%" PRId64, s.k);
        return buf;
    }
    const struct { int64_t c; const char *sym; } terms[3] = {{s.t, "(int64_t)T"}, {s.p, "(int64_t)P"},
                                                             {s.r, "(int64_t)b->n_runs"}};
    size_t k = 0;
    int n_terms = 0;
    bool simple = true;
    for (int i = 0; i < 3; i++) {
        if (!terms[i].c)
            continue;
        int64_t c = terms[i].c < 0 ? -terms[i].c : terms[i].c;
        const char *sign = terms[i].c < 0 ? (n_terms ? " - " : "-") : (n_terms ? " + " : "");
        if (c == 1)
            k += (size_t)snprintf(buf + k, cap - k, "%s%s", sign, terms[i].sym);
        else
            k += (size_t)snprintf(buf + k, cap - k, "%s%s * %" PRId64, sign, terms[i].sym, c);
        simple = simple && c == 1 && terms[i].c > 0;
        n_terms++;
    }
    if (s.k)
        k += (size_t)snprintf(buf + k, cap - k, " %c %" PRId64, s.k < 0 ? '-' : '+', s.k < 0 ? -s.k : s.k);
    if (simple && n_terms == 1 && !s.k)
        return buf;
    memmove(buf + 1, buf, strlen(buf) + 1 < cap - 2 ? strlen(buf) + 1 : cap - 2);
    buf[0] = '(';
    size_t l = strlen(buf);
    if (l + 1 < cap) {
        buf[l] = ')';
        buf[l + 1] = 0;
    }
    return buf;
}

/* Where a reference points, as a C expression: "((float *)(A + 4096))", "W[12]", "s->k_cache[3]" (in a
 * per-sequence step of the batched step, "s->k_cache[run->seq * 16 + 3]"); a view at an offset past a
 * weight, the cache or the tokens adds its bytes to that pointer. */
static const char *ref_expr(const struct printer *p, const struct lower_ref *r, char *buf, size_t cap)
{
    char off[96], base[64];
    size_expr(r->offset, off, sizeof off);
    switch (r->base) {
    case LOWER_NOWHERE: return "NULL";
    case LOWER_ARENA:
        snprintf(buf, cap, "((%s *)(A + %s))", r->dtype == AE_TYPE_I32 ? "int32_t" : "float", off);
        return buf;
    case LOWER_TOKENS: snprintf(base, sizeof base, "tokens"); break;
    case LOWER_WEIGHTS: snprintf(base, sizeof base, "W[%" PRIu32 "]", r->slot); break;
    case LOWER_K_CACHE:
    case LOWER_V_CACHE:
        if (p->in_seq)
            snprintf(base, sizeof base, "s->%c_cache[run->seq * %" PRIu32 " + %" PRId32 "]",
                     r->base == LOWER_K_CACHE ? 'k' : 'v', p->n_layer, r->layer);
        else
            snprintf(base, sizeof base, "s->%c_cache[%" PRId32 "]", r->base == LOWER_K_CACHE ? 'k' : 'v', r->layer);
        break;
    case LOWER_LOGITS: snprintf(base, sizeof base, "logits"); break;
    }
    bool at_start = lower_size_is_const(r->offset) && r->offset.k == 0;
    if (r->base == LOWER_WEIGHTS && r->dtype == AE_TYPE_F32 && at_start)
        snprintf(buf, cap, "((const float *)%s)", base);
    else if (r->base == LOWER_WEIGHTS && r->dtype == AE_TYPE_F32)
        snprintf(buf, cap, "((const float *)(%s + %s))", base, off);
    else if (at_start)
        snprintf(buf, cap, "%s", base);
    else
        snprintf(buf, cap, "((void *)((const char *)%s + %s))", base, off);
    return buf;
}

/* Adds placeholder name: the C expression of reference r. */
static void arg_ref(const struct printer *p, struct args *a, const char *name, const struct lower_ref *r)
{
    char b[192];
    arg(a, name, "%s", ref_expr(p, r, b, sizeof b));
}

static void arg_size(struct args *a, const char *name, struct lower_size s)
{
    char b[96];
    arg(a, name, "%s", size_expr(s, b, sizeof b));
}

static void arg_float(struct args *a, const char *name, float v)
{
    char b[40];
    arg(a, name, "%s", flt(v, b));
}

/* "AE_TYPE_Q4_0" for a ggml type id. */
static void arg_type(struct args *a, const char *name, uint32_t type)
{
    char b[32];
    const char *s = ae_type_name(type);
    size_t i = 0;
    for (; *s && i + 1 < sizeof b; s++)
        b[i++] = (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s);
    b[i] = 0;
    arg(a, name, "AE_TYPE_%s", b);
}

/* The text of a C string literal's inside: quotes, backslashes and control bytes escaped. */
static void arg_c_string(struct args *a, const char *name, const char *s)
{
    char b[512];
    size_t k = 0;
    for (; *s && k + 5 < sizeof b; s++) {
        if (*s == '"' || *s == '\\')
            k += (size_t)snprintf(b + k, sizeof b - k, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            k += (size_t)snprintf(b + k, sizeof b - k, "\\%03o", (unsigned char)*s);
        else
            b[k++] = *s;
    }
    b[k] = 0;
    arg(a, name, "%s", b);
}

/* A C string literal of s, one source line per line of s. */
static char *c_string_lines(const char *s)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n\"\n    \"", f);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\%03o", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- Steps ---------------------------------------------------------------------------------------- */

/* y[r, i] = steps(x[r, i]) over rows x cols; x may be out (in place). */
static int print_ew_loop(struct printer *p, const struct lower_step *s, const struct lower_ref *x,
                         const struct lower_ew *ew, uint32_t n_ew)
{
    char *body = NULL;
    size_t len = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n_ew && rc == 0; i++) {
        const struct lower_ew *e = &ew[i];
        char snippet[48];
        snprintf(snippet, sizeof snippet, "ew_%s", ir_op_name(ir_ew_step_op(e->op)));
        if (!tmpl_has(tmpl_steps, snippet)) {
            char line[256];
            ir_print_node(p->lp->g->nodes[s->node], line, sizeof line);
            rc = ae_fail(p->err, "the C backend cannot emit '%s': no template for the step %s", line,
                         ir_op_name(ir_ew_step_op(e->op)));
            break;
        }
        struct args a = {0};
        char *operand = NULL;
        if (ir_ew_step_has_operand(e->op)) {
            struct args oa = {0};
            arg_ref(p, &oa, "x", &e->operand);
            if (!(operand = fill(p, tmpl_steps, e->operand_row ? "ew_operand_row" : "ew_operand", &oa))) {
                rc = -1;
                break;
            }
            arg(&a, "operand", "%s", operand);
        }
        arg_float(&a, "k", e->k);
        char *line = fill(p, tmpl_steps, snippet, &a);
        free(operand);
        if (!line) {
            rc = -1;
            break;
        }
        char *grown = realloc(body, len + strlen(line) + 2);
        if (!grown) {
            free(line);
            rc = ae_fail(p->err, "out of memory");
            break;
        }
        body = grown;
        len += (size_t)sprintf(body + len, "%s%s", len ? "\n" : "", line);
        free(line);
    }
    if (rc == 0) {
        struct args a = {0};
        arg_size(&a, "rows", s->rows);
        arg(&a, "cols", "%" PRId64, s->cols);
        arg_ref(p, &a, "out", &s->out);
        arg_ref(p, &a, "x", x);
        arg(&a, "steps", "%s", body ? body : "");
        rc = put(p, tmpl_steps, "ew_loop", &a);
    }
    free(body);
    return rc;
}

/* The epilogue of a step: its elementwise steps applied to its result in place. */
static int print_epilogue(struct printer *p, const struct lower_step *s)
{
    return s->n_ew ? print_ew_loop(p, s, &s->out, s->ew, s->n_ew) : 0;
}

static int print_rope(struct printer *p, const struct lower_step *s)
{
    struct args a = {0};
    bool yarn = s->p.rope.ext_factor != 0.0f || s->p.rope.attn_factor != 1.0f;
    arg(&a, "n_dims", "%" PRId32, s->p.rope.n_dims);
    arg(&a, "neox", "%s", s->p.rope.neox ? "true" : "false");
    arg_float(&a, "freq_base", s->p.rope.freq_base);
    arg_float(&a, "freq_scale", s->p.rope.freq_scale);
    arg(&a, "yarn", "%s", yarn ? "&yarn" : "NULL");
    arg_float(&a, "ext_factor", s->p.rope.ext_factor);
    arg_float(&a, "attn_factor", s->p.rope.attn_factor);
    arg(&a, "n_ctx_orig", "%" PRId32, s->p.rope.n_ctx_orig);
    arg_float(&a, "beta_fast", s->p.rope.beta_fast);
    arg_float(&a, "beta_slow", s->p.rope.beta_slow);
    arg_ref(p, &a, "x", &s->in[0]);
    arg_ref(p, &a, "out", &s->out);
    arg_ref(p, &a, "factors", &s->in[1]);
    arg_size(&a, "rows", s->rows);
    arg(&a, "heads", "%" PRId64, s->p.rope.heads);
    arg(&a, "head_dim", "%" PRId64, s->p.rope.head_dim);
    arg_c_string(&a, "name", s->name);
    if ((yarn && put(p, tmpl_steps, "rope_yarn", &a)) || put(p, tmpl_steps, "rope", &a) ||
        (s->in[1].base != LOWER_NOWHERE && put(p, tmpl_steps, "rope_factors", &a)) ||
        put(p, tmpl_steps, s->per_seq ? "rope_call_seq" : "rope_call", &a))
        return -1;
    return 0;
}

static int print_step(struct printer *p, const struct lower_step *s)
{
    p->in_seq = s->per_seq;
    struct args a = {0};
    arg_ref(p, &a, "out", &s->out);
    arg_size(&a, "rows", s->rows);
    arg(&a, "cols", "%" PRId64, s->cols);
    arg_c_string(&a, "name", s->name);
    switch (s->kind) {
    case LOWER_GET_ROWS:
        arg_ref(p, &a, "table", &s->in[0]);
        arg_ref(p, &a, "ids", &s->in[1]);
        arg_size(&a, "count", s->rows);
        arg(&a, "n_rows", "%" PRId64, s->p.get_rows.n_rows);
        arg(&a, "max_id", "%" PRId64, s->p.get_rows.n_rows - 1);
        arg(&a, "row_bytes", "%" PRIu64, s->p.get_rows.row_bytes);
        arg_type(&a, "type", s->in[0].dtype);
        arg(&a, "layout", "%s", s->p.get_rows.layout == AE_LAYOUT_X16 ? "AE_LAYOUT_X16" : "AE_LAYOUT_ROWS");
        return put(p, tmpl_steps, "get_rows", &a);
    case LOWER_MATMUL:
        arg_ref(p, &a, "x", &s->in[0]);
        arg_ref(p, &a, "w", &s->in[1]);
        arg_type(&a, "type", s->in[1].dtype);
        arg(&a, "n", "%" PRId64, s->p.matmul.n);
        arg(&a, "k", "%" PRId64, s->p.matmul.k);
        arg(&a, "layout", "%s", s->p.matmul.layout == AE_LAYOUT_X16 ? "AE_LAYOUT_X16" : "AE_LAYOUT_ROWS");
        return put(p, tmpl_steps, "matmul", &a) || print_epilogue(p, s) ? -1 : 0;
    case LOWER_EW:
        return print_ew_loop(p, s, &s->in[0], s->ew, s->n_ew);
    case LOWER_RMS_NORM:
        arg_ref(p, &a, "x", &s->in[0]);
        arg_ref(p, &a, "w", &s->in[1]);
        arg_float(&a, "eps", s->p.norm.eps);
        return put(p, tmpl_steps, "rms_norm", &a) || print_epilogue(p, s) ? -1 : 0;
    case LOWER_LAYER_NORM:
        arg_ref(p, &a, "x", &s->in[0]);
        arg_float(&a, "eps", s->p.norm.eps);
        return put(p, tmpl_steps, "layer_norm", &a);
    case LOWER_SOFTMAX:
        /* The kernel has no scale: the scale is a loop into the result first. */
        if (s->p.softmax.scale != 1.0f) {
            const struct lower_ew scale = {.op = IR_EW_SCALE, .k = s->p.softmax.scale};
            if (print_ew_loop(p, s, &s->in[0], &scale, 1))
                return -1;
            arg_ref(p, &a, "x", &s->out);
        } else {
            arg_ref(p, &a, "x", &s->in[0]);
        }
        return put(p, tmpl_steps, "softmax", &a);
    case LOWER_ROPE:
        return print_rope(p, s);
    case LOWER_ATTENTION:
        arg_ref(p, &a, "q", &s->in[0]);
        arg_ref(p, &a, "k", &s->in[1]);
        arg_ref(p, &a, "v", &s->in[2]);
        arg(&a, "n_head", "%" PRId64, s->p.attention.n_head);
        arg(&a, "n_head_kv", "%" PRId64, s->p.attention.n_head_kv);
        arg(&a, "head_dim_k", "%" PRId64, s->p.attention.head_dim_k);
        arg(&a, "head_dim_v", "%" PRId64, s->p.attention.head_dim_v);
        arg_float(&a, "scale", s->p.attention.scale);
        arg_float(&a, "softcap", s->p.attention.softcap);
        arg(&a, "window", "%" PRId32, s->p.attention.window);
        return put(p, tmpl_steps, s->per_seq ? "attention_seq" : "attention", &a);
    case LOWER_KV_STORE:
        arg_ref(p, &a, "x", &s->in[0]);
        arg(&a, "row_len", "%" PRId64, s->p.kv_store.row_len);
        return put(p, tmpl_steps, s->per_seq ? "kv_store_seq" : "kv_store", &a);
    case LOWER_LAST_ROWS:
        arg_ref(p, &a, "x", &s->in[0]);
        return put(p, tmpl_steps, "last_rows", &a);
    case LOWER_SLICE:
        arg_ref(p, &a, "x", &s->in[0]);
        arg_size(&a, "outer", s->p.slice.outer);
        arg_size(&a, "inner", s->p.slice.inner);
        arg(&a, "len", "%" PRId64, s->p.slice.len);
        arg(&a, "x_len", "%" PRId64, s->p.slice.x_len);
        arg(&a, "start", "%" PRId64, s->p.slice.start);
        return put(p, tmpl_steps, "slice", &a);
    case LOWER_CONCAT:
        arg_ref(p, &a, "a", &s->in[0]);
        arg_ref(p, &a, "b", &s->in[1]);
        arg_size(&a, "outer", s->p.concat.outer);
        arg_size(&a, "inner", s->p.concat.inner);
        arg(&a, "len", "%" PRId64, s->p.concat.a_len + s->p.concat.b_len);
        arg(&a, "a_len", "%" PRId64, s->p.concat.a_len);
        arg(&a, "b_len", "%" PRId64, s->p.concat.b_len);
        return put(p, tmpl_steps, "concat", &a);
    case LOWER_PERMUTE: {
        static const char *const d[4] = {"d0", "d1", "d2", "d3"}, *const q[4] = {"p0", "p1", "p2", "p3"};
        arg_ref(p, &a, "x", &s->in[0]);
        for (int i = 0; i < 4; i++) {
            arg_size(&a, d[i], s->p.permute.dims[i]);
            arg(&a, q[i], "%" PRId32, s->p.permute.perm[i]);
        }
        return put(p, tmpl_steps, "permute", &a);
    }
    case LOWER_COPY: {
        struct lower_size count = s->rows;
        count.k *= s->cols, count.t *= s->cols, count.p *= s->cols, count.r *= s->cols;
        arg_ref(p, &a, "x", &s->in[0]);
        arg_size(&a, "count", count);
        return put(p, tmpl_steps, "copy", &a);
    }
    case LOWER_BROADCAST: {
        static const char *const d[4] = {"d0", "d1", "d2", "d3"}, *const xd[4] = {"x0", "x1", "x2", "x3"};
        arg_ref(p, &a, "x", &s->in[0]);
        for (int i = 0; i < 4; i++) {
            arg_size(&a, d[i], s->p.broadcast.dims[i]);
            arg_size(&a, xd[i], s->p.broadcast.x_dims[i]);
        }
        return put(p, tmpl_steps, "broadcast", &a);
    }
    case LOWER_TOPK:
        arg_ref(p, &a, "x", &s->in[0]);
        arg(&a, "n", "%" PRId64, s->p.topk.n);
        arg(&a, "k", "%" PRId64, s->p.topk.k);
        return put(p, tmpl_steps, "topk", &a);
    case LOWER_MOE_WEIGHTS:
        arg_ref(p, &a, "probs", &s->in[0]);
        arg_ref(p, &a, "ids", &s->in[1]);
        arg(&a, "n", "%" PRId64, s->p.moe_weights.n);
        arg(&a, "k", "%" PRId64, s->p.moe_weights.k);
        arg(&a, "norm", "%s", s->p.moe_weights.norm ? "true" : "false");
        arg_float(&a, "scale", s->p.moe_weights.scale);
        return put(p, tmpl_steps, "moe_weights", &a);
    case LOWER_MATMUL_ID:
        arg_ref(p, &a, "x", &s->in[0]);
        arg_ref(p, &a, "w", &s->in[1]);
        arg_ref(p, &a, "ids", &s->in[2]);
        arg_type(&a, "type", s->in[1].dtype);
        arg(&a, "experts", "%" PRId64, s->p.matmul_id.experts);
        arg(&a, "n", "%" PRId64, s->p.matmul_id.n);
        arg(&a, "k", "%" PRId64, s->p.matmul_id.k);
        arg(&a, "slots", "%" PRId64, s->p.matmul_id.slots);
        arg(&a, "per_slot", "%s", s->p.matmul_id.x_per_slot ? "true" : "false");
        arg(&a, "layout", "%s", s->p.matmul_id.layout == AE_LAYOUT_X16 ? "AE_LAYOUT_X16" : "AE_LAYOUT_ROWS");
        return put(p, tmpl_steps, "matmul_id", &a);
    case LOWER_MOE_SUM:
        arg_ref(p, &a, "x", &s->in[0]);
        arg_ref(p, &a, "w", &s->in[1]);
        arg(&a, "k", "%" PRId64, s->p.moe_sum.k);
        return put(p, tmpl_steps, "moe_sum", &a);
    case LOWER_KIND_COUNT:
        break;
    }
    return ae_fail(p->err, "the C printer has no step of kind %d", (int)s->kind);
}

/* What --profile counts a step's time under: "matmul q4_0 x16", "attention", ... */
static void step_kind(const struct lower_step *s, char *buf, size_t cap)
{
    static const char *const names[LOWER_KIND_COUNT] = {
        [LOWER_GET_ROWS] = "get_rows", [LOWER_MATMUL] = "matmul", [LOWER_EW] = "elementwise",
        [LOWER_RMS_NORM] = "rms_norm", [LOWER_LAYER_NORM] = "layer_norm", [LOWER_SOFTMAX] = "softmax",
        [LOWER_ROPE] = "rope", [LOWER_ATTENTION] = "attention", [LOWER_KV_STORE] = "kv_store",
        [LOWER_SLICE] = "copy", [LOWER_CONCAT] = "copy", [LOWER_PERMUTE] = "copy", [LOWER_COPY] = "copy",
        [LOWER_BROADCAST] = "copy", [LOWER_TOPK] = "routing", [LOWER_MOE_WEIGHTS] = "routing",
        [LOWER_MOE_SUM] = "elementwise",
    };
    const char *name = (unsigned)s->kind < LOWER_KIND_COUNT && names[s->kind] ? names[s->kind] : "other";
    if (s->kind == LOWER_MATMUL)
        snprintf(buf, cap, "matmul %s %s", ae_type_name(s->in[1].dtype), ae_layout_name((enum ae_layout)s->p.matmul.layout));
    else if (s->kind == LOWER_MATMUL_ID)
        snprintf(buf, cap, "matmul_id %s %s", ae_type_name(s->in[1].dtype),
                 ae_layout_name((enum ae_layout)s->p.matmul_id.layout));
    else
        snprintf(buf, cap, "%s", name);
}

/* ---- The whole unit ------------------------------------------------------------------------------- */

/* scratch_size(): the largest scratch any kernel call asks for, one line per distinct matmul (weight type
 * and row length) and one for attention (every layer's has the same shape). */
static int print_scratch_size(struct printer *p)
{
    const struct lower_program *lp = p->lp;
    if (put(p, tmpl_program, "scratch_begin", NULL))
        return -1;
    bool attention_seen = false;
    for (uint32_t i = 0; i < lp->n_steps; i++) {
        const struct lower_step *s = &lp->steps[i];
        struct args a = {0};
        if (s->kind == LOWER_MATMUL) {
            bool seen = false;
            for (uint32_t j = 0; j < i && !seen; j++)
                seen = lp->steps[j].kind == LOWER_MATMUL && lp->steps[j].in[1].dtype == s->in[1].dtype &&
                       lp->steps[j].p.matmul.k == s->p.matmul.k;
            if (seen)
                continue;
            arg_type(&a, "type", s->in[1].dtype);
            arg(&a, "k", "%" PRId64, s->p.matmul.k);
            if (put(p, tmpl_program, "scratch_matmul", &a))
                return -1;
        } else if (s->kind == LOWER_MATMUL_ID) {
            arg_type(&a, "type", s->in[1].dtype);
            arg(&a, "experts", "%" PRId64, s->p.matmul_id.experts);
            arg(&a, "n", "%" PRId64, s->p.matmul_id.n);
            arg(&a, "k", "%" PRId64, s->p.matmul_id.k);
            arg(&a, "slots", "%" PRId64, s->p.matmul_id.slots);
            arg(&a, "per_slot", "%s", s->p.matmul_id.x_per_slot ? "true" : "false");
            if (put(p, tmpl_program, "scratch_matmul_id", &a))
                return -1;
        } else if (s->kind == LOWER_TOPK) {
            arg(&a, "bytes", "%" PRId64, s->p.topk.n * 4);
            if (put(p, tmpl_program, "scratch_bytes", &a))
                return -1;
        } else if (s->kind == LOWER_ATTENTION && !attention_seen) {
            attention_seen = true;
            arg(&a, "n_head", "%" PRId64, s->p.attention.n_head);
            arg(&a, "n_head_kv", "%" PRId64, s->p.attention.n_head_kv);
            arg(&a, "head_dim_k", "%" PRId64, s->p.attention.head_dim_k);
            arg(&a, "head_dim_v", "%" PRId64, s->p.attention.head_dim_v);
            if (put(p, tmpl_program, "scratch_attention", &a))
                return -1;
        }
    }
    return put(p, tmpl_program, "scratch_end", NULL);
}

/* One forward function, begun by the snippet begin: prefill (T tokens), decode (T = 1) or, from the
 * batched lowering, the batched step. */
static int print_forward(struct printer *p, const char *begin)
{
    const struct lower_program *lp = p->lp;
    /* --profile counts the decode step's time apart; the batched step (the server's) with the prefill's */
    const char *phase = strcmp(begin, "decode_begin") == 0 ? "AE_PROFILE_DECODE" : "AE_PROFILE_PREFILL";
    struct args head = {0}, locals = {0};
    arg(&head, "max_seqs", "%" PRId32, lp->max_seqs);
    arg(&locals, "phase", "%s", phase);
    if (put(p, tmpl_program, begin, &head) || put(p, tmpl_program, "step_locals", &locals))
        return -1;
    for (uint32_t i = 0; i < lp->g->n_nodes; i++) {
        char line[512];
        ir_print_node(lp->g->nodes[i], line, sizeof line);
        for (char *c = line; (c = strstr(c, "*/")); c++)
            c[1] = '|'; /* keep the comment closed only where the snippet closes it */
        struct args a = {0};
        arg(&a, "ir", "%s", line);
        uint32_t first = lp->first_step[i], end = lp->first_step[i + 1];
        if (first == end) {
            if (put(p, tmpl_program, "node_storage", &a))
                return -1;
            continue;
        }
        if (put(p, tmpl_program, "node_begin", &a))
            return -1;
        for (uint32_t k = first; k < end; k++) {
            struct args ka = {0};
            char kind[64];
            step_kind(&lp->steps[k], kind, sizeof kind);
            arg(&ka, "kind", "%s", kind);
            if (put(p, tmpl_program, "kind_begin", NULL) || print_step(p, &lp->steps[k]) ||
                put(p, tmpl_program, "kind_end", &ka))
                return -1;
        }
        if (put(p, tmpl_program, "node_end", NULL))
            return -1;
    }
    return put(p, tmpl_program, "step_end", NULL);
}

/* The weights' offsets in the pack: "\n    0, 4096, ..." eight a line. */
static char *weight_offsets(const struct pack_build *pb)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    for (uint32_t k = 0; k < pb->n_weights; k++)
        fprintf(f, "%s%" PRIu64, k % 8 ? ", " : k ? ",\n    " : "\n    ", pb->offset[k]);
    fputs(pb->n_weights ? "\n" : "0", f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* The kernel tables of the weight types the steps multiply by, for ae_model.kernels:
 * "&ae_kernels_f32, &ae_kernels_q4_0, NULL" (types in ascending order; "NULL" when there is no matmul).
 * The types are those of the graph's matmul nodes' weights and of the lowered matmul steps' weights, so
 * that a lowering that folds several matmuls into one step still names every type. */
static void kernel_tables(const struct lower_program *lp, char *buf, size_t cap)
{
    bool used[AE_TYPE_ID_LIMIT] = {false};
    for (uint32_t i = 0; i < lp->g->n_nodes; i++) {
        const struct ir_node *n = lp->g->nodes[i];
        const bool matmul = n->op == IR_OP_MATMUL || n->op == IR_OP_MATMUL_EW || n->op == IR_OP_MATMUL_ROPE ||
                            n->op == IR_OP_MATMUL_ID;
        if (matmul && n->n_src > 1 && n->src[1]->dtype < AE_TYPE_ID_LIMIT && ae_matmul_supports(n->src[1]->dtype))
            used[n->src[1]->dtype] = true;
    }
    for (uint32_t i = 0; i < lp->n_steps; i++) {
        const struct lower_step *s = &lp->steps[i];
        if ((s->kind == LOWER_MATMUL || s->kind == LOWER_MATMUL_ID) && s->in[1].dtype < AE_TYPE_ID_LIMIT)
            used[s->in[1].dtype] = true;
    }
    size_t k = 0;
    buf[0] = 0;
    for (uint32_t t = 0; t < AE_TYPE_ID_LIMIT; t++)
        if (used[t] && k < cap)
            k += (size_t)snprintf(buf + k, cap - k, "&ae_kernels_%s, ", ae_type_name(t));
    if (k < cap)
        snprintf(buf + k, cap - k, "NULL");
}

static int print_program_end(struct printer *p, const struct pack_build *pb, const struct import_hparams *hp,
                             const struct emit_options *o, const struct lower_program *batched, bool gpu,
                             const char *cpu_only)
{
    char *name = c_string_lines(o->model_name), *info = c_string_lines(o->info);
    char *compiler = c_string_lines(o->compiler), *offsets = weight_offsets(pb);
    int rc = -1;
    if (!name || !info || !compiler || !offsets) {
        ae_fail(p->err, "out of memory");
        goto done;
    }
    char hash[AE_HASH_BYTES * 6 + 1];
    size_t k = 0;
    for (int i = 0; i < AE_HASH_BYTES; i++)
        k += (size_t)snprintf(hash + k, sizeof hash - k, "%s0x%02x", i ? ", " : "", pb->weights_hash[i]);
    struct args a = {0};
    arg_text(&a, "model_name_string", name);
    arg_c_string(&a, "arch", hp->arch);
    arg(&a, "n_vocab", "%" PRIu32, hp->n_vocab);
    arg(&a, "n_layer", "%" PRIu32, hp->n_layer);
    arg(&a, "n_head_kv", "%" PRIu32, hp->n_head_kv);
    arg(&a, "head_dim_k", "%" PRIu32, hp->head_dim_k);
    arg(&a, "head_dim_v", "%" PRIu32, hp->head_dim_v);
    arg(&a, "n_ctx_train", "%" PRIu32, hp->n_ctx_train);
    arg(&a, "n_ctx", "%" PRIu32, hp->n_ctx);
    arg(&a, "n_ctx_min", "%" PRIu32, hp->n_ctx_min);
    arg(&a, "n_ctx_max", "%" PRIu32, hp->n_ctx_max);
    arg_type(&a, "kv_type", p->lp->kv_type);
    arg(&a, "arena_bytes", "%" PRIu64, p->lp->arena_bytes);
    arg(&a, "n_weights", "%" PRIu32, pb->n_weights);
    arg(&a, "n_weights_or_1", "%" PRIu32, pb->n_weights ? pb->n_weights : 1);
    arg_text(&a, "weight_offsets", offsets);
    arg(&a, "weights_bytes", "%" PRIu64, pb->weights_size);
    arg(&a, "weights_hash", "%s", hash);
    arg_text(&a, "compiler_string", compiler);
    arg_text(&a, "info_string", info);
    arg(&a, "forward_batch", "%s", batched ? "forward_batch" : "NULL");
    arg(&a, "batch_arena_bytes", "%" PRIu64, batched ? batched->arena_bytes : 0);
    arg(&a, "batch_max_seqs", "%" PRId32, batched ? batched->max_seqs : 0);
    arg(&a, "gpu", "%s", gpu ? "&gpu_model" : "NULL");
    arg_c_string(&a, "cpu_only", cpu_only);
    arg(&a, "tokenizer", "%s", o->tokenizer ? o->tokenizer : "NULL");
    arg(&a, "server", "%s", o->no_server ? "NULL" : "&ae_server");
    char kernels[AE_TYPE_ID_LIMIT * 24];
    kernel_tables(p->lp, kernels, sizeof kernels);
    arg(&a, "kernels", "%s", kernels);
    rc = put(p, tmpl_program, "program_end", &a);
done:
    free(name);
    free(info);
    free(compiler);
    free(offsets);
    return rc;
}

/* Text for a comment: "*" followed by "/" would end it. */
static void arg_comment(struct args *a, const char *name, const char *s)
{
    char b[512];
    snprintf(b, sizeof b, "%s", s);
    for (char *c = b; (c = strstr(c, "*/")); c++)
        c[1] = '|';
    arg(a, name, "%s", b);
}

int emit_c(FILE *f, const struct ir_graph *g, const struct pass_ctx *c, const struct pack_build *pb,
           const struct import_hparams *hp, const struct emit_options *o, ae_error *err)
{
    struct lower_program lp, lpb = {0};
    if (lower_program(&lp, g, c, pb, &emit_c_target, err))
        return -1;
    struct printer p = {.out = f, .lp = &lp, .err = err};
    struct args head = {0}, tmax = {0};
    arg_comment(&head, "model_file", o->model_file);
    arg_comment(&head, "model_name", o->model_name);
    arg_comment(&head, "arch", hp->arch);
    arg(&tmax, "t_max", "%" PRId32, o->t_max);
    int rc = -1;
    if (put(&p, tmpl_program, "file_head", &head))
        goto done;
    fprintf(f, "%s\n", tmpl_program_head);
    if (put(&p, tmpl_program, "t_max", &tmax) || print_scratch_size(&p) || print_forward(&p, "prefill_begin") ||
        print_forward(&p, "decode_begin"))
        goto done;
    /* The server's batched step, when the graph has one (lower_program_batched says why not). */
    ae_error why = {{0}};
    int32_t max_seqs = o->t_max < AE_BATCH_MAX_SEQS ? o->t_max : AE_BATCH_MAX_SEQS;
    bool batched = lower_program_batched(&lpb, g, c, pb, &emit_c_target, max_seqs, &why) == 0;
    struct printer pbatch = {.out = f, .lp = &lpb, .err = err, .n_layer = hp->n_layer};
    if (batched) {
        if (print_forward(&pbatch, "batch_begin"))
            goto done;
    } else {
        struct args a = {0};
        char line[400];
        snprintf(line, sizeof line, "%.399s", why.msg);
        arg_comment(&a, "why", line);
        if (put(&p, tmpl_program, "no_batch", &a))
            goto done;
    }
    /* The Vulkan half, where the kernels can run this model; otherwise a program for the CPU only, which
     * keeps the reason for --device vulkan and --info. */
    bool gpu = false;
    ae_error vk_err = {{0}};
    if (o->vk) {
        gpu = emit_vk(f, g, c, pb, o->vk, &vk_err) == 0;
        if (!gpu)
            fprintf(stderr, "aetherc: the program runs on the CPU only: %s\n", vk_err.msg);
    } else {
        snprintf(vk_err.msg, sizeof vk_err.msg, "built with aetherc --backend cpu");
    }
    if (print_program_end(&p, pb, hp, o, batched ? &lpb : NULL, gpu, gpu ? "" : vk_err.msg))
        goto done;
    rc = ferror(f) ? ae_fail(err, "writing the C file failed") : 0;
done:
    lower_program_free(&lp);
    lower_program_free(&lpb);
    return rc;
}
