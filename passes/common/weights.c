/* Weight values for the passes: reading a weight as f32, the constants fold makes, and a GGUF image of
 * the weights a passed graph uses.
 *
 * A weight node names a tensor of the model's GGUF file, or a constant fold computed (kept in the
 * context, f32). Passes read values through pass_weight_values, which hides the difference. The GGUF
 * image in memory holds the model's metadata and every tensor the graph names, constants included, so
 * anything that binds weights by name (the interpreter, later the emitters) works on a passed graph.
 */
#include "pass.h"

#include "gguf_write.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const struct pass_const *pass_const_find(const struct pass_ctx *c, const char *name)
{
    for (uint32_t i = 0; i < c->n_consts; i++)
        if (strcmp(c->consts[i].name, name) == 0)
            return &c->consts[i];
    return NULL;
}

int pass_weight_values(struct pass_ctx *c, const struct ir_node *w, float **out)
{
    *out = NULL;
    int64_t numel = ir_node_numel(w, 0, 0);
    int64_t cols = w->rank ? w->shape[w->rank - 1] : 1;
    if (numel <= 0 || cols <= 0)
        return ae_fail(c->err, "weight @%s has no elements", w->name);
    float *v = malloc((size_t)numel * sizeof *v);
    if (!v)
        return ae_fail(c->err, "out of memory reading @%s (%" PRId64 " values)", w->name, numel);
    const struct pass_const *k = pass_const_find(c, w->name);
    if (k) {
        memcpy(v, k->data, (size_t)numel * sizeof *v);
        *out = v;
        return 1;
    }
    const struct ae_gguf_tensor *t = c->gguf ? ae_gguf_find_tensor(c->gguf, w->name) : NULL;
    if (!t) {
        free(v);
        if (!c->gguf)
            return 0;
        return ae_fail(c->err, "weight @%s is not a tensor of %s", w->name, c->gguf->path);
    }
    if (t->type != w->dtype || (int64_t)t->n_elements != numel || t->ne[0] != cols) {
        free(v);
        return ae_fail(c->err, "weight @%s is %s with %" PRIu64 " values in %s; the graph expects %s with %" PRId64,
                       w->name, ae_type_name(t->type), t->n_elements, c->gguf->path, ae_type_name(w->dtype), numel);
    }
    uint64_t row_bytes;
    if (ae_type_row_bytes(t->type, (uint64_t)cols, &row_bytes, c->err)) {
        free(v);
        return ae_fail_prefix(c->err, "weight @%s", w->name);
    }
    for (int64_t r = 0; r < numel / cols; r++) {
        const unsigned char *src = (const unsigned char *)t->data + (uint64_t)r * row_bytes;
        if (t->type == AE_TYPE_F32) {
            memcpy(v + r * cols, src, (size_t)cols * sizeof *v);
        } else if (ae_dequantize_row(t->type, src, v + r * cols, cols, c->err)) {
            free(v);
            return ae_fail_prefix(c->err, "weight @%s, row %" PRId64, w->name, r);
        }
    }
    *out = v;
    return 1;
}

struct ir_node *pass_const_new(struct ir_graph *g, struct pass_ctx *c, const char *base, uint32_t rank,
                               const int64_t *shape, float *data)
{
    if (c->n_consts == c->cap_consts) {
        uint32_t cap = c->cap_consts ? 2 * c->cap_consts : 8;
        struct pass_const *k = realloc(c->consts, cap * sizeof *k);
        if (!k) {
            free(data);
            ae_fail(c->err, "out of memory");
            return NULL;
        }
        c->consts = k;
        c->cap_consts = cap;
    }
    /* A constant made from another keeps the original tensor's name as its base: "w.fold3", not
     * "w.fold2.fold3". */
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && !strncmp(dot, ".fold", 5) && dot[5] && strspn(dot + 5, "0123456789") == strlen(dot + 5))
        len = (size_t)(dot - base);
    char name[256];
    uint32_t suffix = c->n_consts;
    do
        snprintf(name, sizeof name, "%.*s.fold%" PRIu32, (int)len, base, suffix++);
    while (pass_const_find(c, name) || (c->gguf && ae_gguf_find_tensor(c->gguf, name)));
    struct ir_node *w = ir_weight(g, name, IR_F32, rank, shape);
    struct pass_const *k = &c->consts[c->n_consts++];
    k->name = w->name;
    k->rank = rank;
    memset(k->shape, 0, sizeof k->shape);
    memcpy(k->shape, shape, rank * sizeof shape[0]);
    k->data = data;
    return w;
}

int pass_weights_open(struct pass_weights *pw, const struct ir_graph *g, const struct pass_ctx *c)
{
    memset(pw, 0, sizeof *pw);
    ae_gguf_writer *w = ae_gguf_writer_create();
    if (!w)
        return ae_fail(c->err, "out of memory");
    int rc = 0;
    for (uint64_t i = 0; c->gguf && i < c->gguf->n_kv; i++) {
        const struct ae_gguf_kv *kv = &c->gguf->kv[i];
        char key[512];
        if (kv->key.len >= sizeof key)
            continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        ae_gguf_writer_add_value(w, key, &kv->value);
    }
    for (uint32_t i = 0; i < g->n_nodes && rc == 0; i++) {
        const struct ir_node *n = g->nodes[i];
        if (n->op != IR_OP_WEIGHT)
            continue;
        int64_t ne[AE_GGUF_MAX_DIMS];
        const struct pass_const *k = pass_const_find(c, n->name);
        if (k) {
            for (uint32_t d = 0; d < k->rank; d++)
                ne[d] = k->shape[k->rank - 1 - d];
            rc = ae_gguf_writer_add_tensor(w, n->name, AE_TYPE_F32, k->rank, ne, k->data, c->err);
            continue;
        }
        const struct ae_gguf_tensor *t = c->gguf ? ae_gguf_find_tensor(c->gguf, n->name) : NULL;
        if (!t) {
            rc = ae_fail(c->err, "weight @%s is neither a tensor of the model nor a folded constant", n->name);
            break;
        }
        rc = ae_gguf_writer_add_tensor(w, n->name, t->type, t->n_dims, t->ne, t->data, c->err);
    }
    FILE *f = NULL;
    if (rc == 0) {
        f = open_memstream(&pw->bytes, &pw->size);
        if (!f)
            rc = ae_fail(c->err, "out of memory for the weights image");
    }
    if (rc == 0)
        rc = ae_gguf_writer_write(w, f, NULL, NULL, c->err);
    if (f && fclose(f) != 0 && rc == 0)
        rc = ae_fail(c->err, "out of memory for the weights image");
    ae_gguf_writer_destroy(w);
    if (rc == 0)
        rc = ae_gguf_open_memory(&pw->f, pw->bytes, pw->size, c->gguf ? c->gguf->path : "folded weights", c->err);
    if (rc) {
        free(pw->bytes);
        memset(pw, 0, sizeof *pw);
        return -1;
    }
    return 0;
}

void pass_weights_close(struct pass_weights *pw)
{
    if (pw->f)
        ae_gguf_close(pw->f);
    free(pw->bytes);
    memset(pw, 0, sizeof *pw);
}
