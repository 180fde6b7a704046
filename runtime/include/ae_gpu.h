/* The Vulkan half of a generated program, and the device layer that runs it.
 *
 * aetherc compiles each kernel of the model's step to SPIR-V and writes, beside the C forward step, a
 * struct ae_gpu_model: the kernels as SPIR-V words, and the prefill and decode steps as lists of
 * dispatches. A dispatch names its kernel, the workgroups to launch and 128 bytes of push constants:
 * eight buffer addresses (each a reference to a space and an offset in it, resolved once at start-up)
 * and sixteen 32-bit constants (shapes, epsilons, flags). Nothing in a dispatch changes from step to
 * step: the runtime records each step's command buffer once and replays it, and what does change (the
 * tokens, T and P) lives in two small host-visible buffers the kernels read, struct ae_gpu_step and
 * the token ids. A prefill dispatch whose workgroup count grows with T is recorded as an indirect
 * dispatch, its counts written by the host before each submission. A dispatch runs after the writes of
 * those before it only where it says so (AE_GPU_WAIT): aetherc sets it where the dispatch reads or
 * writes memory that an earlier one since the last wait writes, or writes what one reads, so that
 * independent dispatches (the Q, K and V products; gate and up) may overlap on the device.
 *
 * The device layer (runtime/gpu/) loads libvulkan with dlopen, so a program still runs where there is
 * no Vulkan at all; ae_gpu_devices then finds none and says why. ae_gpu_create picks the device, makes
 * the buffers (weights, uploaded once; the KV cache; the activation arena), creates the pipelines
 * through a pipeline cache, and records the two command buffers; ae_gpu_step runs one step and reads
 * back only the logits row.
 */
#ifndef AE_GPU_H
#define AE_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae_error.h"
#include "ae_pool.h"

/* The spaces a dispatch's buffer addresses point into. */
enum ae_gpu_space {
    AE_GPU_NONE = 0,  /* no buffer: the address is 0 */
    AE_GPU_STEP,      /* struct ae_gpu_step */
    AE_GPU_TOKENS,    /* int32 token ids of this step, t_max of them */
    AE_GPU_WEIGHTS,   /* the weights, as GGUF rows at the offsets of ae_gpu_model.weights */
    AE_GPU_ARENA,     /* activations, offsets from the memory plan */
    AE_GPU_KV_K,      /* the K cache of layer `layer`: [n_ctx, n_head_kv, head_dim_k] of the KV type */
    AE_GPU_KV_V,      /* the V cache of layer `layer` */
    AE_GPU_SPACE_COUNT
};

/* What the kernels read to know the step they are in (AE_GPU_STEP). */
struct ae_gpu_step {
    int32_t T;        /* tokens in this step */
    int32_t P;        /* tokens already in the KV cache */
    int32_t n_ctx;    /* rows the KV cache holds */
    int32_t kv_f32;   /* 1: the KV cache is f32; 0: f16 */
};

struct ae_gpu_ref {
    uint32_t space;   /* enum ae_gpu_space */
    int32_t layer;    /* for the KV spaces */
    uint64_t offset;  /* bytes from the start of the space (or of the layer's cache) */
};

#define AE_GPU_MAX_REFS 8
#define AE_GPU_MAX_CONSTS 16
/* Push constants: the refs as 64-bit addresses at bytes 0..63, then the constants at 64..127. */
#define AE_GPU_PUSH_BYTES (8 * AE_GPU_MAX_REFS + 4 * AE_GPU_MAX_CONSTS)

/* Dispatch flags. */
#define AE_GPU_WAIT 1u                      /* waits for the writes of every dispatch before it */

struct ae_gpu_dispatch {
    uint32_t kernel;                        /* index into ae_gpu_model.kernels */
    uint32_t flags;                         /* AE_GPU_WAIT, ... */
    uint32_t groups[3];                     /* workgroups in x, y, z ... */
    uint32_t per_t[3];                      /* ... each times ceil(T / per_t[i]) where per_t[i] > 0 */
    struct ae_gpu_ref ref[AE_GPU_MAX_REFS];
    uint32_t k[AE_GPU_MAX_CONSTS];          /* kernel constants (floats as their bits) */
};

/* What a kernel needs beyond the baseline (gpu_device.c lists the baseline). */
enum ae_gpu_need {
    AE_GPU_NEED_COOPMAT_NV = 1u << 0,       /* VK_NV_cooperative_matrix, 16x16x16 f16 -> f32 */
};

struct ae_gpu_kernel {
    const char *name;                       /* "matvec_q4_0", for messages and --info */
    const uint32_t *code;                   /* SPIR-V */
    uint32_t n_words;
    uint32_t needs;                         /* enum ae_gpu_need bits */
};

/* One step kind. Its dispatches run in order, each after the previous one's writes. */
struct ae_gpu_graph {
    const struct ae_gpu_dispatch *dispatch;
    uint32_t n_dispatch;
    uint64_t logits_offset;                 /* arena offset of the n_vocab logits after the step */
    uint32_t needs;                         /* what its kernels need, together */
};

/* A weight in the device's weights buffer, always as GGUF rows: an interleaved host copy (x16, the CPU
 * kernels' layout) is unpacked as it is uploaded. */
struct ae_gpu_weight {
    uint32_t slot;                          /* ae_state.weights[slot] on the host */
    uint32_t type;                          /* ggml type */
    uint32_t layout;                        /* enum ae_layout of the host copy */
    int64_t n, k;                           /* rows, row length (for unpacking) */
    uint64_t offset;                        /* in the device's weights buffer */
    uint64_t host_bytes;                    /* of the host copy */
};

struct ae_gpu_runtime;

/* Each step comes as a portable graph ([0]) and, where faster kernels exist for devices that have more,
 * a second graph ([1], n_dispatch 0 when there is none) that a device with all of its needs runs
 * instead. */
struct ae_gpu_model {
    const struct ae_gpu_kernel *kernels;
    uint32_t n_kernels;
    struct ae_gpu_graph prefill[2];         /* T = 1..t_max tokens */
    struct ae_gpu_graph decode[2];          /* T = 1 */
    const struct ae_gpu_weight *weights;
    uint32_t n_weights;
    uint64_t weights_bytes;                 /* the device's weights buffer */
    uint64_t arena_bytes;                   /* activations, planned with the device alignment below */
    uint32_t alignment;                     /* every arena and weight offset is a multiple of it */
    const struct ae_gpu_runtime *runtime;   /* &ae_gpu_runtime: a program reaches the device layer only
                                             * through its model's description, so that a program built
                                             * for the CPU only (no description) links none of it */
};

/* ---- Devices ---------------------------------------------------------------------------------------- */

struct ae_gpu_device {
    uint32_t index;                         /* what --device vulkan:N names */
    char name[256];
    const char *kind;                       /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint64_t memory_bytes;                  /* the largest device-local heap */
    uint64_t free_bytes;                    /* of it, free now (the memory budget where known) */
    bool usable;                            /* has what the kernels need */
    char why_not[160];                      /* when not usable: what is missing */
};

#define AE_GPU_MAX_DEVICES 16

/* Lists the Vulkan devices (up to AE_GPU_MAX_DEVICES). Where there is no loader or no driver, *n is 0
 * and why says so (never an error). AETHER_GPU_MEMORY=BYTES caps every device's memory (for tests of
 * the choice). */
void ae_gpu_devices(struct ae_gpu_device *out, uint32_t *n, char *why, size_t why_size);

/* ---- Running a model -------------------------------------------------------------------------------- */

struct ae_gpu_params {
    uint32_t device;                        /* index from ae_gpu_devices */
    int32_t n_ctx;                          /* KV cache rows */
    uint32_t kv_type;                       /* AE_TYPE_F16 or AE_TYPE_F32 */
    int32_t n_layer, n_head_kv, head_dim_k, head_dim_v, n_vocab, t_max;
    const uint8_t *const *weights;          /* each slot's bytes on the host (ae_state.weights), uploaded once */
    ae_pool *pool;                          /* threads that prepare the upload (NULL: one) */
};

/* Bytes a model needs on the device: weights, KV cache, arena and the small host buffers. */
uint64_t ae_gpu_bytes_needed(const struct ae_gpu_model *m, const struct ae_gpu_params *p);

typedef struct ae_gpu ae_gpu;

/* Opens the device, uploads the weights, creates the pipelines and records the steps. */
ae_gpu *ae_gpu_create(const struct ae_gpu_model *m, const struct ae_gpu_params *p, ae_error *err);

/* One step of T tokens (1..t_max) at positions P..P+T-1: the prefill graph (prefill true) or the
 * decode graph (T = 1). Writes the last token's n_vocab logits. */
int ae_gpu_step(ae_gpu *g, bool prefill, const int32_t *tokens, int32_t T, int32_t P, float *logits, ae_error *err);

/* The device's name, and start-up times in milliseconds (for --timings). */
const char *ae_gpu_name(const ae_gpu *g);
/* Which graphs run: "portable kernels" or the needs of the faster ones ("cooperative matrices"). */
void ae_gpu_describe(const ae_gpu *g, char *buf, size_t size);
void ae_gpu_startup_ms(const ae_gpu *g, double *device_ms, double *upload_ms, double *pipelines_ms);

void ae_gpu_destroy(ae_gpu *g);

/* The functions above, for programs (struct ae_gpu_model.runtime). */
struct ae_gpu_runtime {
    void (*devices)(struct ae_gpu_device *out, uint32_t *n, char *why, size_t why_size);
    uint64_t (*bytes_needed)(const struct ae_gpu_model *m, const struct ae_gpu_params *p);
    ae_gpu *(*create)(const struct ae_gpu_model *m, const struct ae_gpu_params *p, ae_error *err);
    int (*step)(ae_gpu *g, bool prefill, const int32_t *tokens, int32_t T, int32_t P, float *logits, ae_error *err);
    const char *(*name)(const ae_gpu *g);
    void (*describe)(const ae_gpu *g, char *buf, size_t size);
    void (*startup_ms)(const ae_gpu *g, double *device_ms, double *upload_ms, double *pipelines_ms);
    void (*destroy)(ae_gpu *g);
};

extern const struct ae_gpu_runtime ae_gpu_runtime;

#endif
