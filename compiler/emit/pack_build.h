/* The weights of a program, laid out at compile time.
 *
 * Every weight node of the final graph gets a slot k (in graph order): the generated step reads it as
 * ae_state.weights[k], in the layout the layout pass chose for it (layout[k]). rows[k] says where its
 * bytes are as the GGUF rows: the GGUF mapping, or a folded constant's values. A weight in the rows
 * layout is those bytes; an interleaved one (x16) is packed from them (ae_layout_pack) on its way into
 * the blob. A program gets the weights in a pack, one blob in which slot k lies at offset[k] (64-byte
 * aligned); an in-process run (aetherc run) reads source[], which is rows[] for weights in the rows
 * layout (so the GGUF mapping is read in place and nothing is copied) and a packed copy made by
 * pack_build_materialize for the others.
 *
 * The matrices of a merge (the layout pass's c->merges: Q, K and V, gate and up) are one matrix in the
 * blob: the members' rows one after another in the merge's order, each member's slot a view of its rows
 * (at the merged matrix's offset plus the bytes of the members before it, with no padding between: every
 * member's rows are whole groups of its layout).
 *
 * The blob is never built in memory: its chunk hashes are computed from the sources, in parallel, and its
 * bytes go from them straight to the output file, interleaved weights packed a few group blocks at a
 * time. The metadata GGUF carries what the program needs at run time besides weights: the tokenizer.*
 * and general.* keys.
 */
#ifndef AE_PACK_BUILD_H
#define AE_PACK_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_gguf.h"
#include "ae_program.h"
#include "ir.h"
#include "pass.h"

#define PACK_WEIGHT_ALIGN 64

struct pack_build {
    uint8_t *meta;           /* the metadata GGUF's bytes */
    uint64_t meta_size;
    uint32_t n_weights;
    uint32_t *slot;          /* per node id: the weight's slot, or UINT32_MAX for other nodes */
    const uint8_t **rows;    /* (n_weights) each weight's GGUF rows */
    const uint8_t **source;  /* (n_weights) each weight's bytes in its layout; NULL for an interleaved
                              * weight until pack_build_materialize */
    uint8_t **owned;         /* (n_weights) the packed copies pack_build_materialize made */
    uint32_t *type;          /* (n_weights) ggml type */
    uint32_t *layout;        /* (n_weights) enum ae_layout */
    int64_t *n, *k;          /* (n_weights) rows and row length (for the interleaved layouts) */
    uint64_t *bytes;         /* (n_weights) each weight's size in its layout */
    uint64_t *offset;        /* (n_weights) each weight's offset in the blob */
    uint32_t *order;         /* (n_weights) the slots by increasing offset */
    uint64_t weights_size;   /* the blob's size */
    uint8_t (*chunk_hashes)[AE_HASH_BYTES]; /* the blob's chunks (AE_PACK_CHUNK bytes), when hashed */
    uint8_t weights_hash[AE_HASH_BYTES];    /* their root; all zeros when not hashed */
    const struct ae_progress *progress;     /* hashing and writing report here (may be NULL) */
};

/* Lays out every weight of g (GGUF tensors of f, and the constants fold made in c) and copies the
 * metadata keys; with hash, also hashes the blob (what a program needs; an in-process run skips it).
 * progress (may be NULL) hears how far hashing and, later, writing are. */
int pack_build(struct pack_build *pb, const struct ir_graph *g, const struct pass_ctx *c, const ae_gguf *f, bool hash,
               const struct ae_progress *progress, ae_error *err);
void pack_build_free(struct pack_build *pb);

/* Packs every interleaved weight into memory of its own, so that source[] holds every weight (for an
 * in-process run). */
int pack_build_materialize(struct pack_build *pb, ae_error *err);

/* The blob as the pack writer takes it (valid while pb is; pb must have been hashed). */
struct ae_pack_weights pack_build_weights(const struct pack_build *pb);

#endif
