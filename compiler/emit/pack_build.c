/* Building the weights pack's contents (pack_build.h). */
#include "pack_build.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"

/* The metadata a program reads at run time: the tokenizer and the general.* description. */
static bool meta_key_wanted(struct ae_str key)
{
    return (key.len > 10 && !memcmp(key.ptr, "tokenizer.", 10)) || (key.len > 8 && !memcmp(key.ptr, "general.", 8));
}

static int build_meta(struct pack_build *pb, const ae_gguf *f, ae_error *err)
{
    ae_gguf_writer *w = ae_gguf_writer_create();
    if (!w)
        return ae_fail(err, "out of memory");
    char key[512];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct ae_gguf_kv *kv = &f->kv[i];
        if (!meta_key_wanted(kv->key) || kv->key.len >= sizeof key || ae_str_eq(kv->key, "general.alignment"))
            continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        ae_gguf_writer_add_value(w, key, &kv->value);
    }
    char *bytes = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&bytes, &size);
    int rc = -1;
    if (!mem)
        ae_fail(err, "out of memory");
    else {
        rc = ae_gguf_writer_write(w, mem, NULL, NULL, err);
        if (fclose(mem) != 0 && rc == 0)
            rc = ae_fail(err, "out of memory writing the metadata");
    }
    ae_gguf_writer_destroy(w);
    if (rc < 0) {
        free(bytes);
        return -1;
    }
    pb->meta = (uint8_t *)bytes;
    pb->meta_size = size;
    return 0;
}

/* Visits the blob in order: each weight's bytes, then the zeros up to the next one. */
static int walk_blob(const struct pack_build *pb, int (*piece)(void *ctx, const void *data, uint64_t n, ae_error *err),
                     void *ctx, ae_error *err)
{
    static const uint8_t zeros[PACK_WEIGHT_ALIGN];
    uint64_t at = 0;
    for (uint32_t i = 0; i < pb->n_nodes; i++) {
        if (pb->offset[i] == UINT64_MAX)
            continue;
        const struct ir_node *n = pb->g->nodes[i];
        uint64_t bytes;
        ae_type_row_bytes(n->dtype, (uint64_t)ir_node_numel(n, 1, 0), &bytes, NULL);
        if (pb->offset[i] > at && piece(ctx, zeros, pb->offset[i] - at, err) < 0)
            return -1;
        if (piece(ctx, pb->source[i], bytes, err) < 0)
            return -1;
        at = pb->offset[i] + bytes;
    }
    return 0;
}

static int checksum_piece(void *ctx, const void *data, uint64_t n, ae_error *err)
{
    (void)err;
    ae_checksum_update(ctx, data, n);
    return 0;
}

static int write_piece(void *ctx, const void *data, uint64_t n, ae_error *err)
{
    if (n && fwrite(data, 1, n, ctx) != n)
        return ae_fail(err, "writing the weights failed");
    return 0;
}

static int write_blob(void *ctx, FILE *f, ae_error *err)
{
    return walk_blob(ctx, write_piece, f, err);
}

struct ae_pack_weights pack_build_weights(const struct pack_build *pb)
{
    return (struct ae_pack_weights){pb->weights_size, pb->weights_checksum, write_blob, (void *)pb};
}

int pack_build(struct pack_build *pb, const struct ir_graph *g, const struct pass_ctx *c, const ae_gguf *f,
               ae_error *err)
{
    memset(pb, 0, sizeof *pb);
    pb->g = g;
    pb->n_nodes = g->n_nodes;
    pb->offset = malloc((g->n_nodes ? g->n_nodes : 1) * sizeof *pb->offset);
    pb->source = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *pb->source);
    if (!pb->offset || !pb->source) {
        ae_fail(err, "out of memory");
        goto fail;
    }
    /* Offsets in graph order, and where each weight's bytes are: a folded constant's values, or the
     * GGUF tensor's rows as stored. */
    uint64_t size = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = g->nodes[i];
        pb->offset[i] = UINT64_MAX;
        if (n->op != IR_OP_WEIGHT)
            continue;
        uint64_t numel = (uint64_t)ir_node_numel(n, 1, 0), bytes;
        if (ae_type_row_bytes(n->dtype, numel, &bytes, err) < 0)
            goto fail;
        const struct pass_const *k = c ? pass_const_find(c, n->name) : NULL;
        if (k) {
            if (n->dtype != AE_TYPE_F32) {
                ae_fail(err, "folded constant '%s' is %s, expected f32", n->name, ae_type_name(n->dtype));
                goto fail;
            }
            pb->source[i] = k->data;
        } else {
            const struct ae_gguf_tensor *t = ae_gguf_find_tensor(f, n->name);
            if (!t || t->type != n->dtype || t->n_bytes != bytes) {
                ae_fail(err, "%s: weight '%s' (%s, %" PRIu64 " bytes) is not a tensor of the file with that type and "
                        "size", f->path, n->name, ae_type_name(n->dtype), bytes);
                goto fail;
            }
            pb->source[i] = t->data;
        }
        size = (size + PACK_WEIGHT_ALIGN - 1) / PACK_WEIGHT_ALIGN * PACK_WEIGHT_ALIGN;
        pb->offset[i] = size;
        size += bytes;
    }
    pb->weights_size = size;
    struct ae_checksum sum;
    ae_checksum_init(&sum);
    walk_blob(pb, checksum_piece, &sum, err);
    pb->weights_checksum = ae_checksum_final(&sum);
    if (build_meta(pb, f, err) < 0)
        goto fail;
    return 0;
fail:
    pack_build_free(pb);
    return -1;
}

void pack_build_free(struct pack_build *pb)
{
    free(pb->meta);
    free(pb->offset);
    free(pb->source);
    memset(pb, 0, sizeof *pb);
}
