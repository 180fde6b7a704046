/* The contract between a generated program and the runtime.
 *
 * aetherc emits one C file per model: constants, the forward step, and a main that hands a struct
 * ae_model to ae_program_main. The runtime does everything else: command line, weights pack, tokenizer,
 * KV cache, thread pool, sampling, streaming text, chat, timings. The generated code never allocates;
 * every buffer it touches is in struct ae_state, sized from the numbers in struct ae_model.
 *
 * The weights pack holds the packed weights (page-aligned, used in place through a read-only mapping)
 * and a metadata-only GGUF with the model's tokenizer and general.* keys. It is found, in order: set by
 * ae_program_set_pack (aetherc run, in-process), appended to the program's own executable, or in a file
 * "<program>.weights" beside it (aetherc --weights=external).
 */
#ifndef AE_PROGRAM_H
#define AE_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_error.h"

struct ae_gpu_model;

/* Everything one forward step may touch. */
struct ae_state {
    uint8_t *arena;          /* activations: ae_model.arena_bytes, 64-byte aligned */
    uint8_t *scratch;        /* per-step kernel scratch: ae_model.scratch_size(n_ctx, threads) bytes */
    const uint8_t *weights;  /* the packed weights; each weight at a constant offset */
    void **k_cache;          /* per layer: [n_ctx, n_head_kv, head_dim_k], F16 or F32 (kv_type) */
    void **v_cache;          /* per layer: [n_ctx, n_head_kv, head_dim_v] */
    uint32_t kv_type;        /* AE_TYPE_F16 or AE_TYPE_F32 */
    int32_t n_ctx;           /* KV cache length */
    struct ae_pool *pool;    /* the thread pool (ae_pool.h) */
};

struct ae_model {
    const char *name;        /* general.name, or the GGUF file's name */
    const char *arch;        /* "llama", "qwen2", ... */
    int32_t n_vocab, n_layer, n_head_kv, head_dim_k, head_dim_v;
    int32_t n_ctx_train;     /* the model's context length; --ctx defaults to min(this, 4096) */
    int32_t t_max;           /* the most tokens one forward call takes (prefill chunk) */
    uint64_t arena_bytes;    /* planned for t_max tokens */
    /* Bytes of per-step kernel scratch (quantized activations, attention rows) for a KV cache of n_ctx
     * rows and a pool of n_threads threads; the runtime allocates it once at start-up. */
    uint64_t (*scratch_size)(int32_t n_ctx, int32_t n_threads);
    uint64_t weights_bytes;  /* size of the packed weights */
    uint64_t weights_checksum; /* ae_pack_checksum of the packed weights, for --verify */
    const char *info;        /* what --info prints: passes, fused groups, compiler and flags */
    /* One step: n tokens (1..t_max) at positions pos..pos+n-1; writes the logits of the last one
     * (n_vocab floats). The KV cache holds positions 0..pos-1. Returns 0, or -1 with err set. */
    int (*forward)(struct ae_state *s, const int32_t *tokens, int32_t n, int32_t pos, float *logits, ae_error *err);
    /* The same steps for a Vulkan device (ae_gpu.h), or NULL when the program was built for the CPU only
     * (aetherc --backend cpu). */
    const struct ae_gpu_model *gpu;
};

/* The generated program's main: parses the command line and runs. Returns the exit status. */
int ae_program_main(int argc, char **argv, const struct ae_model *m);

/* For in-process runs: use this pack (its bytes) instead of looking for one. */
void ae_program_set_pack(const void *pack, uint64_t size);

/* ---- The weights pack ------------------------------------------------------------------------------
 * Layout, every offset relative to the start of the pack, which is page-aligned in its file:
 *   struct ae_pack_header
 *   the metadata GGUF (tokenizer.* and general.* keys, no tensors) at meta_offset, meta_size bytes
 *   the packed weights at weights_offset (a multiple of AE_PACK_ALIGN), weights_size bytes
 * A pack appended to an executable is followed by a struct ae_pack_trailer at the very end of the file.
 */

#define AE_PACK_MAGIC "AETHPACK"
#define AE_PACK_VERSION 1
#define AE_PACK_ALIGN 4096

struct ae_pack_header {
    char magic[8];           /* AE_PACK_MAGIC */
    uint32_t version;        /* AE_PACK_VERSION */
    uint32_t header_size;    /* sizeof(struct ae_pack_header) */
    uint64_t meta_offset, meta_size;
    uint64_t weights_offset, weights_size;
    uint64_t weights_checksum;
};

struct ae_pack_trailer {
    uint64_t pack_offset;    /* from the start of the file; a multiple of AE_PACK_ALIGN */
    uint64_t pack_size;
    char magic[8];           /* AE_PACK_MAGIC */
};

struct ae_pack {
    const uint8_t *base;     /* the pack's first byte */
    uint64_t size;
    const uint8_t *meta;     /* the metadata GGUF */
    uint64_t meta_size;
    const uint8_t *weights;
    uint64_t weights_size;
    uint64_t weights_checksum;
    void *map;               /* the mapping to release, NULL when the bytes belong to someone else */
    uint64_t map_size;
};

/* 64-bit FNV-1a over 8-byte words (then the tail bytes): fast enough to check a 1 GB pack in about a
 * second, and any flipped bit changes it. */
uint64_t ae_pack_checksum(const void *data, uint64_t size);

/* The same checksum over bytes that come in pieces: init, update with each piece in order, final. */
struct ae_checksum {
    uint64_t h;
    uint8_t tail[8];
    unsigned n_tail;
};
void ae_checksum_init(struct ae_checksum *c);
void ae_checksum_update(struct ae_checksum *c, const void *data, uint64_t size);
uint64_t ae_checksum_final(const struct ae_checksum *c);

/* Validates a pack held in memory (bytes not copied). name is used in messages. */
int ae_pack_parse(struct ae_pack *p, const void *bytes, uint64_t size, const char *name, ae_error *err);

/* Maps a file and finds the pack in it: at offset 0 (a .weights file) or through the trailer at the end
 * (an executable). */
int ae_pack_open_file(struct ae_pack *p, const char *path, ae_error *err);

void ae_pack_close(struct ae_pack *p);

/* Where a pack's weights come from when they are written: size bytes whose checksum is known, put to f by
 * write (so that a model larger than memory is written piece by piece). */
struct ae_pack_weights {
    uint64_t size;
    uint64_t checksum;
    int (*write)(void *ctx, FILE *f, ae_error *err);
    void *ctx;
};

/* Writes a pack at f's current position, which must be a multiple of AE_PACK_ALIGN from the start of
 * the file (true for a new .weights file; ae_pack_append pads an executable first). */
int ae_pack_write(FILE *f, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w, ae_error *err);

/* Appends a pack and its trailer to the executable at path. */
int ae_pack_append(const char *path, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w,
                   ae_error *err);

/* Weights held in memory, as a struct ae_pack_weights (ctx points at the struct ae_pack_memory). */
struct ae_pack_memory {
    const void *data;
    uint64_t size;
};
struct ae_pack_weights ae_pack_weights_in_memory(const struct ae_pack_memory *m);

#endif
