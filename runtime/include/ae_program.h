/* The contract between a generated program and the runtime.
 *
 * aetherc emits one C file per model: constants, the forward step, and a main that hands a struct
 * ae_model to ae_program_main. The runtime does everything else: command line, weights pack, tokenizer,
 * KV cache, thread pool, sampling, streaming text, chat, timings. The generated code never allocates;
 * every buffer it touches is in struct ae_state, sized from the numbers in struct ae_model.
 *
 * The weights pack holds the packed weights (page-aligned, used in place through a read-only mapping),
 * the table of their chunk hashes, and a metadata-only GGUF with the model's tokenizer and general.* keys.
 * It is found, in order: set by ae_program_set_pack (a pack held in memory), appended to the program's own
 * executable, or in a file "<program>.weights" beside it (aetherc --weights=external). An in-process run
 * (aetherc run) has no pack: ae_program_set_weights hands over weights that are already in memory.
 */
#ifndef AE_PROGRAM_H
#define AE_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_error.h"

#define AE_HASH_BYTES 32         /* BLAKE2b-256 */

struct ae_gpu_model;
struct ae_tokenizer_algo;
struct ae_server;
struct ae_type_kernels;

/* The server (--serve), for ae_model.server. */
extern const struct ae_server ae_server;

/* Everything one forward step may touch. */
struct ae_state {
    uint8_t *arena;          /* activations: ae_model.arena_bytes, 64-byte aligned */
    uint8_t *scratch;        /* per-step kernel scratch: ae_model.scratch_size(n_ctx, threads) bytes */
    const uint8_t *const *weights; /* (ae_model.n_weights) where each weight's bytes are */
    /* Per sequence, then per layer (index seq * n_layer + layer): [n_ctx, n_head_kv, head_dim_k], F16 or
     * F32 (kv_type). A program that is not serving has one sequence. */
    void **k_cache;
    void **v_cache;          /* the same: [n_ctx, n_head_kv, head_dim_v] */
    uint32_t kv_type;        /* AE_TYPE_F16 or AE_TYPE_F32 */
    int32_t n_ctx;           /* KV cache length */
    struct ae_pool *pool;    /* the thread pool (ae_pool.h) */
    struct ae_profile *profile; /* NULL, or --profile's table: the steps time their kernels into it */
};

/* A batched step: tokens of several sequences, each at its own positions in its own KV cache.
 * The rows of one sequence form a run: rows row0..row0+n_rows-1 are its tokens at positions
 * pos0..pos0+n_rows-1, and its cache (sequence seq) holds positions 0..pos0-1. Runs do not overlap,
 * each sequence has at most one run, and every row belongs to a run. */
struct ae_batch_run {
    int32_t seq, row0, n_rows, pos0;
};

struct ae_batch {
    const int32_t *tokens;          /* (n_tokens) 1..t_max rows */
    int32_t n_tokens;
    const struct ae_batch_run *runs; /* (n_runs) */
    int32_t n_runs;
    float *logits;                  /* (n_runs, n_vocab): the logits of each run's last row */
};

struct ae_model {
    const char *name;        /* general.name, or the GGUF file's name */
    const char *arch;        /* "llama", "qwen2", ... */
    int32_t n_vocab, n_layer, n_head_kv, head_dim_k, head_dim_v;
    int32_t n_ctx_train;     /* the model's training context */
    int32_t n_ctx;           /* the default context (aetherc --ctx, or the training context, at most 4096) */
    int32_t n_ctx_min, n_ctx_max; /* the contexts --ctx may choose (the graph is right for all of them) */
    uint32_t kv_type;        /* the default KV cache type (aetherc --kv): AE_TYPE_F16 or AE_TYPE_F32 */
    int32_t t_max;           /* the most tokens one forward call takes (prefill chunk) */
    uint64_t arena_bytes;    /* planned for t_max tokens */
    /* Bytes of per-step kernel scratch (quantized activations, attention rows) for a KV cache of n_ctx
     * rows and a pool of n_threads threads; the runtime allocates it once at start-up. */
    uint64_t (*scratch_size)(int32_t n_ctx, int32_t n_threads);
    uint32_t n_weights;      /* the weights the step reads, ae_state.weights[0..n_weights) */
    const uint64_t *weight_offsets; /* (n_weights) each weight's offset in the pack's weights */
    uint64_t weights_bytes;  /* size of the packed weights */
    uint8_t weights_hash[AE_HASH_BYTES]; /* ae_hash_root of the packed weights (all zeros: not hashed) */
    const char *compiler;    /* for --version: "aetherc 0.1.0 (commit ...) with gcc -O2 -march=native" */
    const char *info;        /* what --info prints: passes, fused groups, compiler and flags */
    /* One step: n tokens (1..t_max) at positions pos..pos+n-1; writes the logits of the last one
     * (n_vocab floats). The KV cache holds positions 0..pos-1. Returns 0, or -1 with err set. */
    int (*forward)(struct ae_state *s, const int32_t *tokens, int32_t n, int32_t pos, float *logits, ae_error *err);
    /* The batched step, or NULL when the program has none (the server then calls forward once per
     * run). Every row's result depends only on its own run's tokens and cache. It takes up to
     * batch_max_seqs runs and an arena of batch_arena_bytes (its per-sequence rows follow the plan's).
     * Returns 0, or -1 with err set. */
    int (*forward_batch)(struct ae_state *s, const struct ae_batch *b, ae_error *err);
    uint64_t batch_arena_bytes;
    int32_t batch_max_seqs;
    /* The same steps for a Vulkan device (ae_gpu.h), or NULL when the program runs on the CPU only. */
    const struct ae_gpu_model *gpu;
    /* Why gpu is NULL: "built with aetherc --backend cpu", or the step of this model that the Vulkan
     * backend has no kernel for; "" when there is a GPU half. */
    const char *cpu_only;
    /* The model's tokenizer kind (&ae_tokenizer_spm, _bpe or _wpm; ae_tokenizer.h), or NULL when the
     * file names none that the runtime has: the program then fails at start-up saying why. */
    const struct ae_tokenizer_algo *tokenizer;
    /* &ae_server, or NULL in a program linked with --static: such a program cannot load the libraries
     * the server needs at run time, so it links none of the server (nor glibc's dlopen). */
    const struct ae_server *server;
    /* The CPU kernel tables of the weight types the steps multiply by (&ae_kernels_q4_0, ...; ae_kernels.h),
     * NULL-terminated: given to ae_kernels_use at start-up. Naming only these is what keeps the other
     * types' SIMD kernels out of the program. */
    const struct ae_type_kernels *const *kernels;
};

/* The most sequences a batched step is compiled for (fewer when t_max is smaller). */
#define AE_BATCH_MAX_SEQS 256

/* The generated program's main: parses the command line and runs. Returns the exit status. */
int ae_program_main(int argc, char **argv, const struct ae_model *m);

/* Checks a command line as ae_program_main would, before there is a program (aetherc run reports bad
 * flags before it compiles): everything but what depends on the model (vocabulary, context range).
 * Returns 0, or -1 with err set. */
int ae_program_check_args(int argc, char **argv, ae_error *err);

/* Use this pack (its bytes, held in memory) instead of looking for one; NULL restores the search. */
void ae_program_set_pack(const void *pack, uint64_t size);

/* Weights that are already in memory, for in-process runs: no pack is looked for and nothing is hashed.
 * The pointers must stay valid while the program runs. */
struct ae_program_weights {
    const void *meta;        /* a metadata GGUF with the tokenizer (and general.*) keys */
    uint64_t meta_size;
    const uint8_t *const *weights; /* (n) each weight's bytes, in ae_model.weight_offsets' order */
    const uint64_t *bytes;   /* (n) each weight's size, for --mlock */
    uint32_t n;
    const char *source;      /* where they are, for --info ("in place from model.gguf") */
};
/* NULL restores the search for a pack. */
void ae_program_set_weights(const struct ae_program_weights *w);

/* ---- The weights pack ------------------------------------------------------------------------------
 * Layout, every offset relative to the start of the pack, which is page-aligned in its file:
 *   struct ae_pack_header
 *   the metadata GGUF (tokenizer.* and general.* keys, no tensors) at meta_offset, meta_size bytes
 *   the chunk hashes at hashes_offset: BLAKE2b-256 of each chunk_size bytes of the weights (the last
 *   chunk shorter), ae_hash_n_chunks(weights_size, chunk_size) of them
 *   the packed weights at weights_offset (a multiple of AE_PACK_ALIGN), weights_size bytes
 * weights_hash is ae_hash_root of the chunk hashes; the program carries the same value, so a pack whose
 * table was changed is refused at once, and a chunk whose bytes were changed is found by --verify (every
 * chunk) or by the sampled check at start-up (a few chunks).
 * A pack appended to an executable is followed by a struct ae_pack_trailer at the very end of the file.
 */

#define AE_PACK_MAGIC "AETHPACK"
#define AE_PACK_VERSION 2
#define AE_PACK_ALIGN 4096
#define AE_PACK_CHUNK (1u << 20)  /* the chunk size aetherc writes */
#define AE_PACK_SAMPLES 4         /* chunks hashed at every start: the first, the last, two at random */

struct ae_pack_header {
    char magic[8];           /* AE_PACK_MAGIC */
    uint32_t version;        /* AE_PACK_VERSION */
    uint32_t header_size;    /* sizeof(struct ae_pack_header) */
    uint64_t meta_offset, meta_size;
    uint64_t hashes_offset, chunk_size;
    uint64_t weights_offset, weights_size;
    uint8_t weights_hash[AE_HASH_BYTES];
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
    const uint8_t (*hashes)[AE_HASH_BYTES]; /* n_chunks chunk hashes */
    uint64_t chunk_size, n_chunks;
    const uint8_t *weights;
    uint64_t weights_size;
    uint8_t weights_hash[AE_HASH_BYTES];
    void *map;               /* the mapping to release, NULL when the bytes belong to someone else */
    uint64_t map_size;
};

/* Validates a pack held in memory (bytes not copied): magic, version, that every part lies inside it.
 * name is used in messages. */
int ae_pack_parse(struct ae_pack *p, const void *bytes, uint64_t size, const char *name, ae_error *err);

/* Maps a file and finds the pack in it: at offset 0 (a .weights file) or through the trailer at the end
 * (an executable). */
int ae_pack_open_file(struct ae_pack *p, const char *path, ae_error *err);

void ae_pack_close(struct ae_pack *p);

/* The check every start makes, cheap whatever the model's size: the pack holds size bytes of weights,
 * its chunk table hashes to expect (the hash the program was built for), and AE_PACK_SAMPLES chunks hash
 * to their entries. Returns 0, or -1 with err saying what differs. */
int ae_pack_check(const struct ae_pack *p, uint64_t size, const uint8_t expect[AE_HASH_BYTES], ae_error *err);

/* --verify: the same, then every chunk, hashed on n_threads threads. err names the first chunk that
 * differs and its bytes. */
int ae_pack_verify(const struct ae_pack *p, uint64_t size, const uint8_t expect[AE_HASH_BYTES], int n_threads,
                   ae_error *err);

/* ---- Hashing (hash.c) ------------------------------------------------------------------------------ */

/* Bytes to hash: contiguous (data), or pieces that read feeds to update in order. */
struct ae_hash_source {
    uint64_t size;
    const uint8_t *data;     /* NULL: use read */
    void (*read)(void *ctx, uint64_t off, uint64_t n, void (*update)(void *state, const void *p, uint64_t n),
                 void *state);
    void *ctx;
};

/* How far a long job is (done of total bytes); called from one thread. */
struct ae_progress {
    void (*update)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
};

uint64_t ae_hash_n_chunks(uint64_t size, uint64_t chunk_size);
/* BLAKE2b-256 of chunk index (chunk_size bytes, or what is left). */
void ae_hash_chunk(const struct ae_hash_source *src, uint64_t chunk_size, uint64_t index, uint8_t out[AE_HASH_BYTES]);
/* Every chunk into out[0..n_chunks), on n_threads threads (this one among them); progress may be NULL. */
void ae_hash_chunks(const struct ae_hash_source *src, uint64_t chunk_size, uint8_t (*out)[AE_HASH_BYTES],
                    int n_threads, const struct ae_progress *progress);
/* The root: BLAKE2b-256 of a 32-byte head (a tag, size and chunk_size) and the chunk hashes in order. */
void ae_hash_root(uint64_t size, uint64_t chunk_size, const uint8_t (*chunks)[AE_HASH_BYTES], uint64_t n_chunks,
                  uint8_t out[AE_HASH_BYTES]);
void ae_hash_hex(const uint8_t h[AE_HASH_BYTES], char out[2 * AE_HASH_BYTES + 1]);
/* The CPUs this process may use (at most 64): the default thread count for hashing. */
int ae_hash_default_threads(void);

/* ---- Writing a pack (aetherc, and tests) ------------------------------------------------------------ */

/* Where a pack's weights come from when they are written: size bytes whose chunk hashes are known, put
 * to f by write (so that a model larger than memory is written piece by piece). */
struct ae_pack_weights {
    uint64_t size;
    uint64_t chunk_size;
    const uint8_t (*chunk_hashes)[AE_HASH_BYTES]; /* ae_hash_n_chunks(size, chunk_size) of them */
    uint8_t hash[AE_HASH_BYTES];                   /* their root */
    int (*write)(void *ctx, FILE *f, ae_error *err);
    void *ctx;
};

/* Writes a pack at f's current position, which must be a multiple of AE_PACK_ALIGN from the start of
 * the file (true for a new .weights file; ae_pack_append pads an executable first). */
int ae_pack_write(FILE *f, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w, ae_error *err);

/* Appends a pack and its trailer to the executable at path. */
int ae_pack_append(const char *path, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w,
                   ae_error *err);

/* Weights held in memory as a struct ae_pack_weights: hashes them (chunk_size AE_PACK_CHUNK) into a
 * table that ae_pack_memory_free releases. */
struct ae_pack_memory {
    const void *data;
    uint64_t size;
    uint8_t (*hashes)[AE_HASH_BYTES];
};
int ae_pack_memory_init(struct ae_pack_memory *m, const void *data, uint64_t size, struct ae_pack_weights *w,
                        ae_error *err);
void ae_pack_memory_free(struct ae_pack_memory *m);

#endif
