/* The weights of a program, laid out at compile time (pack_build.h). */
#include "pack_build.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ae_kernels.h"
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

/* Feeds bytes [from, to) of weight k (in its layout) to update. Interleaved weights are packed a few
 * group blocks at a time from their rows. */
static void read_weight(const struct pack_build *pb, uint32_t k, uint64_t from, uint64_t to,
                        void (*update)(void *state, const void *p, uint64_t n), void *state)
{
    if (pb->source[k]) {
        update(state, pb->source[k] + from, to - from);
        return;
    }
    const uint32_t type = pb->type[k];
    const enum ae_layout layout = (enum ae_layout)pb->layout[k];
    const uint64_t group = ae_layout_group_bytes(type, layout, pb->k[k]);
    const int64_t per = ae_layout_rows_per_group(layout);
    uint64_t row_bytes = 0;
    ae_type_row_bytes(type, (uint64_t)pb->k[k], &row_bytes, NULL);
    uint8_t buf[8 * 3360]; /* up to 8 rows' worth of the largest group block */
    const uint64_t bb = group / ((uint64_t)pb->k[k] / ae_type_info(type)->block_size); /* one group block */
    const uint64_t step = sizeof buf / bb * bb;
    for (uint64_t at = from; at < to;) {
        /* the group, and the run of its group blocks that holds byte at */
        const uint64_t g = at / group, in = at % group;
        const uint64_t b0 = in / bb * bb, b1 = b0 + step < group ? b0 + step : group;
        const int64_t rows = pb->n[k] - (int64_t)g * per < per ? pb->n[k] - (int64_t)g * per : per;
        /* pack those blocks of the group's rows: a sub-matrix of whole blocks */
        const int64_t kb = (int64_t)((b1 - b0) / bb) * ae_type_info(type)->block_size;
        const int64_t first_block = (int64_t)(b0 / bb);
        uint8_t sub_rows[16 * 8 * 210];
        const uint64_t sub_row = (uint64_t)(kb / ae_type_info(type)->block_size) * ae_type_info(type)->block_bytes;
        for (int64_t r = 0; r < rows; r++)
            memcpy(sub_rows + (uint64_t)r * sub_row,
                   pb->rows[k] + ((uint64_t)g * (uint64_t)per + (uint64_t)r) * row_bytes +
                       (uint64_t)first_block * ae_type_info(type)->block_bytes,
                   sub_row);
        ae_layout_pack(type, layout, sub_rows, rows, kb, buf, NULL);
        const uint64_t stop = g * group + b1 < to ? g * group + b1 : to;
        update(state, buf + (at - g * group - b0), stop - at);
        at = stop;
    }
}

/* Feeds bytes [off, off + n) of the blob to update: each weight's bytes and the zeros between them. */
static void read_blob(void *ctx, uint64_t off, uint64_t n, void (*update)(void *state, const void *p, uint64_t n),
                      void *state)
{
    static const uint8_t zeros[PACK_WEIGHT_ALIGN];
    const struct pack_build *pb = ctx;
    /* the first weight (in blob order) that ends after off */
    uint32_t lo = 0, hi = pb->n_weights;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pb->offset[pb->order[mid]] + pb->bytes[pb->order[mid]] <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t at = off, end = off + n;
    for (uint32_t j = lo; at < end; j++) {
        const uint32_t k = j < pb->n_weights ? pb->order[j] : 0;
        uint64_t start = j < pb->n_weights && pb->offset[k] < end ? pb->offset[k] : end;
        while (at < start) { /* the padding before weight k */
            uint64_t z = start - at < PACK_WEIGHT_ALIGN ? start - at : PACK_WEIGHT_ALIGN;
            update(state, zeros, z);
            at += z;
        }
        if (at >= end)
            break;
        uint64_t stop = start + pb->bytes[k] < end ? start + pb->bytes[k] : end;
        read_weight(pb, k, at - start, stop - start, update, state);
        at = stop;
    }
}

struct blob_writer {
    FILE *f;
    const struct pack_build *pb;
    uint64_t done;
    bool failed;
};

static void write_piece(void *state, const void *p, uint64_t n)
{
    struct blob_writer *w = state;
    if (w->failed || (n && fwrite(p, 1, n, w->f) != n)) {
        w->failed = true;
        return;
    }
    w->done += n;
}

/* Writes the blob in pieces of a few MiB, so that progress moves. */
static int write_blob(void *ctx, FILE *f, ae_error *err)
{
    const struct pack_build *pb = ctx;
    struct blob_writer w = {f, pb, 0, false};
    const uint64_t step = 8u << 20;
    for (uint64_t off = 0; off < pb->weights_size && !w.failed; off += step) {
        read_blob((void *)pb, off, pb->weights_size - off < step ? pb->weights_size - off : step, write_piece, &w);
        if (pb->progress && pb->progress->update)
            pb->progress->update(pb->progress->ctx, w.done, pb->weights_size);
    }
    return w.failed ? ae_fail(err, "writing the weights failed") : 0;
}

struct ae_pack_weights pack_build_weights(const struct pack_build *pb)
{
    struct ae_pack_weights w = {.size = pb->weights_size, .chunk_size = AE_PACK_CHUNK,
                                .chunk_hashes = (const uint8_t (*)[AE_HASH_BYTES])pb->chunk_hashes,
                                .write = write_blob, .ctx = (void *)pb};
    memcpy(w.hash, pb->weights_hash, AE_HASH_BYTES);
    return w;
}

static int pack_hash(struct pack_build *pb, ae_error *err)
{
    uint64_t n = ae_hash_n_chunks(pb->weights_size, AE_PACK_CHUNK);
    pb->chunk_hashes = malloc((n ? n : 1) * AE_HASH_BYTES);
    if (!pb->chunk_hashes)
        return ae_fail(err, "out of memory for %" PRIu64 " chunk hashes", n);
    struct ae_hash_source src = {.size = pb->weights_size, .read = read_blob, .ctx = pb};
    ae_hash_chunks(&src, AE_PACK_CHUNK, pb->chunk_hashes, ae_hash_default_threads(), pb->progress);
    ae_hash_root(pb->weights_size, AE_PACK_CHUNK, (const uint8_t (*)[AE_HASH_BYTES])pb->chunk_hashes, n,
                 pb->weights_hash);
    return 0;
}

int pack_build(struct pack_build *pb, const struct ir_graph *g, const struct pass_ctx *c, const ae_gguf *f, bool hash,
               const struct ae_progress *progress, ae_error *err)
{
    memset(pb, 0, sizeof *pb);
    pb->progress = progress;
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i]->op == IR_OP_WEIGHT;
    size_t cap = n ? n : 1;
    pb->slot = malloc((g->n_nodes ? g->n_nodes : 1) * sizeof *pb->slot);
    pb->rows = calloc(cap, sizeof *pb->rows);
    pb->source = calloc(cap, sizeof *pb->source);
    pb->owned = calloc(cap, sizeof *pb->owned);
    pb->type = calloc(cap, sizeof *pb->type);
    pb->layout = calloc(cap, sizeof *pb->layout);
    pb->n = calloc(cap, sizeof *pb->n);
    pb->k = calloc(cap, sizeof *pb->k);
    pb->bytes = calloc(cap, sizeof *pb->bytes);
    pb->offset = calloc(cap, sizeof *pb->offset);
    pb->order = calloc(cap, sizeof *pb->order);
    int32_t *merge = calloc(cap, sizeof *merge);    /* per slot: its merge, or -1 */
    int64_t *begin = calloc(cap, 2 * sizeof *begin); /* per slot: its first row in the merged matrix */
    int64_t *rows = begin ? begin + cap : NULL;      /* and its rows */
    if (!pb->slot || !pb->rows || !pb->source || !pb->owned || !pb->type || !pb->layout || !pb->n || !pb->k ||
        !pb->bytes || !pb->offset || !pb->order || !merge || !begin) {
        ae_fail(err, "out of memory");
        goto fail;
    }
    /* Slots in graph order, and where each weight's rows are: a folded constant's values, or the GGUF
     * tensor's rows as stored. */
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *node = g->nodes[i];
        pb->slot[i] = UINT32_MAX;
        if (node->op != IR_OP_WEIGHT)
            continue;
        uint64_t numel = (uint64_t)ir_node_numel(node, 1, 0), bytes;
        if (ae_type_row_bytes(node->dtype, numel, &bytes, err) < 0)
            goto fail;
        uint32_t k = pb->n_weights++;
        const struct pass_const *kc = c ? pass_const_find(c, node->name) : NULL;
        if (kc) {
            if (node->dtype != AE_TYPE_F32) {
                ae_fail(err, "folded constant '%s' is %s, expected f32", node->name, ae_type_name(node->dtype));
                goto fail;
            }
            pb->rows[k] = (const uint8_t *)kc->data;
        } else {
            const struct ae_gguf_tensor *t = ae_gguf_find_tensor(f, node->name);
            if (!t || t->type != node->dtype || t->n_bytes != bytes) {
                ae_fail(err, "%s: weight '%s' (%s, %" PRIu64 " bytes) is not a tensor of the file with that type and "
                        "size", f->path, node->name, ae_type_name(node->dtype), bytes);
                goto fail;
            }
            pb->rows[k] = (const uint8_t *)t->data;
        }
        pb->type[k] = node->dtype;
        const struct pass_layout *pl = c && !kc ? pass_weight_find(c, node->name) : NULL;
        pb->layout[k] = pl ? pl->layout : AE_LAYOUT_ROWS;
        merge[k] = pl ? pl->merge : -1;
        begin[k] = pl ? pl->row_begin : 0;
        rows[k] = node->shape[0];
        if (pb->layout[k] != AE_LAYOUT_ROWS) {
            /* a 2-D matrix, or experts [E, N, K] as E * N rows (each expert whole groups: layout.c) */
            pb->k[k] = node->shape[node->rank - 1];
            pb->n[k] = (int64_t)(numel / (uint64_t)pb->k[k]);
            bytes = ae_layout_bytes(node->dtype, (enum ae_layout)pb->layout[k], pb->n[k], pb->k[k]);
            bool whole = node->rank == 2 ||
                         (node->rank == 3 && node->shape[1] % ae_layout_rows_per_group((enum ae_layout)pb->layout[k]) == 0);
            if (!whole || bytes == 0) {
                ae_fail(err, "weight '%s' (%s) cannot be stored in layout %s", node->name, ae_type_name(node->dtype),
                        ae_layout_name((enum ae_layout)pb->layout[k]));
                goto fail;
            }
        } else {
            pb->source[k] = pb->rows[k];
        }
        if (merge[k] >= 0 && node->shape[0] % ae_layout_rows_per_group((enum ae_layout)pb->layout[k]) != 0) {
            ae_fail(err, "weight '%s' (%s rows) cannot be part of a merged matrix in layout %s", node->name,
                    ae_type_name(node->dtype), ae_layout_name((enum ae_layout)pb->layout[k]));
            goto fail;
        }
        pb->slot[i] = k;
        pb->bytes[k] = bytes;
    }
    /* Offsets: each weight in slot order, 64-byte aligned, except that the first member of a merge brings
     * the others right after it, in the merge's row order. */
    uint64_t size = 0;
    uint32_t placed = 0;
    for (uint32_t k = 0; k < pb->n_weights; k++) {
        if (merge[k] == INT32_MIN)
            continue; /* placed with its merge */
        size = (size + PACK_WEIGHT_ALIGN - 1) / PACK_WEIGHT_ALIGN * PACK_WEIGHT_ALIGN;
        const int32_t m = merge[k];
        for (int64_t row = 0;;) {
            uint32_t next = k; /* the member whose rows begin at row */
            if (m >= 0) {
                for (next = k; next < pb->n_weights && !(merge[next] == m && begin[next] == row); next++)
                    ;
                if (next == pb->n_weights)
                    break;
                if (pb->type[next] != pb->type[k] || pb->layout[next] != pb->layout[k]) {
                    ae_fail(err, "merged matrix %" PRId32 ": its parts differ in type or layout", m);
                    goto fail;
                }
                merge[next] = INT32_MIN;
            }
            pb->offset[next] = size;
            pb->order[placed++] = next;
            size += pb->bytes[next];
            if (m < 0)
                break;
            row += rows[next] > 0 ? rows[next] : 1;
        }
    }
    if (placed != pb->n_weights) {
        ae_fail(err, "a merged matrix's parts do not cover its rows: %" PRIu32 " of %" PRIu32 " weights placed", placed,
                pb->n_weights);
        goto fail;
    }
    free(merge);
    free(begin);
    merge = NULL;
    begin = NULL;
    pb->weights_size = size;
    if (build_meta(pb, f, err) < 0 || (hash && pack_hash(pb, err) < 0))
        goto fail;
    return 0;
fail:
    free(merge);
    free(begin);
    pack_build_free(pb);
    return -1;
}

int pack_build_materialize(struct pack_build *pb, ae_error *err)
{
    for (uint32_t k = 0; k < pb->n_weights; k++) {
        if (pb->source[k])
            continue;
        if (!(pb->owned[k] = aligned_alloc(PACK_WEIGHT_ALIGN, (pb->bytes[k] + PACK_WEIGHT_ALIGN - 1) /
                                                                  PACK_WEIGHT_ALIGN * PACK_WEIGHT_ALIGN)))
            return ae_fail(err, "out of memory for a packed weight of %" PRIu64 " bytes", pb->bytes[k]);
        if (ae_layout_pack(pb->type[k], (enum ae_layout)pb->layout[k], pb->rows[k], pb->n[k], pb->k[k], pb->owned[k],
                           err) < 0)
            return -1;
        pb->source[k] = pb->owned[k];
    }
    return 0;
}

void pack_build_free(struct pack_build *pb)
{
    for (uint32_t k = 0; pb->owned && k < pb->n_weights; k++)
        free(pb->owned[k]);
    free(pb->owned);
    free(pb->rows);
    free(pb->type);
    free(pb->layout);
    free(pb->n);
    free(pb->k);
    free(pb->meta);
    free(pb->slot);
    free(pb->source);
    free(pb->bytes);
    free(pb->offset);
    free(pb->order);
    free(pb->chunk_hashes);
    memset(pb, 0, sizeof *pb);
}
