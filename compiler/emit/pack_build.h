/* Building a program's weights pack at compile time.
 *
 * Every weight node of the final graph gets an offset in one blob (64-byte aligned, in graph order;
 * the layout pass's format decides the bytes, today the GGUF rows as stored), and the metadata GGUF
 * carries what the program needs at run time besides weights: the tokenizer.* and general.* keys.
 * The blob is never built in memory: its checksum is computed from the sources (the GGUF mapping, the
 * folded constants), and its bytes go from them straight to the output file.
 */
#ifndef AE_PACK_BUILD_H
#define AE_PACK_BUILD_H

#include <stdint.h>

#include "ae_gguf.h"
#include "ir.h"
#include "pass.h"
#include "ae_program.h"

#define PACK_WEIGHT_ALIGN 64

struct pack_build {
    uint8_t *meta;           /* the metadata GGUF's bytes */
    uint64_t meta_size;
    uint64_t weights_size;
    uint64_t weights_checksum;   /* ae_pack_checksum of the blob */
    uint64_t *offset;        /* per node id: the weight's offset in the blob (UINT64_MAX for non-weights) */
    const void **source;     /* per node id: where a weight's bytes are (the GGUF mapping or a constant) */
    uint32_t n_nodes;
    const struct ir_graph *g;
};

/* Lays out every weight of g (GGUF tensors of f, and the constants fold made in c) and copies the
 * metadata keys. */
int pack_build(struct pack_build *pb, const struct ir_graph *g, const struct pass_ctx *c, const ae_gguf *f,
               ae_error *err);
void pack_build_free(struct pack_build *pb);

/* The blob as the pack writer takes it (valid while pb is). */
struct ae_pack_weights pack_build_weights(const struct pack_build *pb);

#endif
