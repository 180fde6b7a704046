/* Building a program's weights pack at compile time.
 *
 * Every weight node of the final graph gets an offset in one blob (64-byte aligned, in graph order;
 * the layout pass's format decides the bytes, today the GGUF rows as stored), and the metadata GGUF
 * carries what the program needs at run time besides weights: the tokenizer.* and general.* keys.
 */
#ifndef AE_PACK_BUILD_H
#define AE_PACK_BUILD_H

#include <stdint.h>

#include "ae_gguf.h"
#include "ir.h"
#include "pass.h"

#define PACK_WEIGHT_ALIGN 64

struct pack_build {
    uint8_t *meta;           /* the metadata GGUF's bytes */
    uint64_t meta_size;
    uint8_t *weights;        /* the weights blob */
    uint64_t weights_size;
    uint64_t weights_checksum;   /* ae_pack_checksum of the blob */
    uint64_t *offset;        /* per node id: the weight's offset in the blob (UINT64_MAX for non-weights) */
    uint32_t n_nodes;
};

/* Lays out every weight of g (GGUF tensors of f, and the constants fold made in c) and copies the
 * metadata keys. */
int pack_build(struct pack_build *pb, const struct ir_graph *g, const struct pass_ctx *c, const ae_gguf *f,
               ae_error *err);
void pack_build_free(struct pack_build *pb);

#endif
