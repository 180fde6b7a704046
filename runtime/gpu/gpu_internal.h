/* The device layer's pieces, shared by its files and by the kernel tests.
 *
 * gpu_device.c: the instance, the list of devices, one opened device (struct gpu_ctx) with its queue,
 * memory types, buffers and transfers. gpu_exec.c: pipelines (one layout for every kernel: 128 bytes of
 * push constants, no descriptors; buffers are reached by device address), recording a list of
 * dispatches into a command buffer, and running it. gpu_model.c: ae_gpu_create and ae_gpu_step on top
 * of both.
 */
#ifndef AE_GPU_INTERNAL_H
#define AE_GPU_INTERNAL_H

#include "ae_gpu.h"
#include "vk_api.h"

struct gpu_ctx {
    VkInstance inst;
    VkPhysicalDevice pd;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool pool;
    VkCommandBuffer cmd;            /* for one-off work: transfers */
    VkFence fence;
    VkPipelineLayout layout;        /* push constants only */
    uint32_t mem_device;            /* memory type for the big buffers */
    uint32_t mem_host;              /* host-visible, coherent: staging and the step's inputs */
    uint32_t mem_readback;          /* host-visible, coherent, cached where there is one */
    uint32_t subgroup_size;
    bool coopmat_nv;                /* VK_NV_cooperative_matrix with 16x16x16 f16 -> f32 */
    float timestamp_period;         /* nanoseconds per timestamp tick; 0 without timestamps */
    char name[256];
    uint64_t max_alloc;             /* maxMemoryAllocationSize */
};

struct gpu_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceAddress addr;
    uint64_t size;
    void *map;                      /* host-visible buffers: mapped for their life */
};

enum gpu_mem { GPU_MEM_DEVICE, GPU_MEM_HOST, GPU_MEM_READBACK };

/* The largest staging buffer a transfer uses. */
#define GPU_STAGING_BYTES (64u << 20)

/* Creates an instance with every physical device, or fails saying why (no loader, no driver). */
int gpu_instance_create(VkInstance *inst, ae_error *err);

/* Opens device index (as ae_gpu_devices numbers them); fails naming what the device lacks. */
int gpu_ctx_open(struct gpu_ctx *c, uint32_t index, ae_error *err);
void gpu_ctx_close(struct gpu_ctx *c);

int gpu_buffer_create(struct gpu_ctx *c, struct gpu_buffer *b, uint64_t size, enum gpu_mem mem, ae_error *err);
void gpu_buffer_destroy(struct gpu_ctx *c, struct gpu_buffer *b);

/* Copies between host memory and a buffer at an offset, through a staging buffer when the buffer is
 * not mapped. */
int gpu_upload(struct gpu_ctx *c, struct gpu_buffer *dst, uint64_t offset, const void *src, uint64_t size,
               ae_error *err);
int gpu_download(struct gpu_ctx *c, struct gpu_buffer *src, uint64_t offset, void *dst, uint64_t size, ae_error *err);

/* Copies size bytes from src at src_offset to dst at dst_offset on the device, and waits. */
int gpu_copy(struct gpu_ctx *c, const struct gpu_buffer *src, uint64_t src_offset, struct gpu_buffer *dst,
             uint64_t dst_offset, uint64_t size, ae_error *err);

/* Submits cb and waits for it. */
int gpu_submit_wait(struct gpu_ctx *c, VkCommandBuffer cb, ae_error *err);

/* ---- gpu_exec.c ---------------------------------------------------------------------------------- */

/* The enum ae_gpu_need bits the opened device has. */
uint32_t gpu_ctx_has(const struct gpu_ctx *c);

/* One pipeline per kernel whose bit is set in use (NULL: all), specialized with constant 0 = kv_f32,
 * through cache (may be VK_NULL_HANDLE; the driver synchronizes it), created by the pool's threads at once
 * (pool may be NULL); the others stay VK_NULL_HANDLE. */
int gpu_pipelines_create(struct gpu_ctx *c, const struct ae_gpu_kernel *k, uint32_t n, const bool *use, uint32_t kv_f32,
                         VkPipelineCache cache, ae_pool *pool, VkPipeline *out, ae_error *err);
void gpu_pipelines_destroy(struct gpu_ctx *c, VkPipeline *p, uint32_t n);

/* Where each space starts on the device; the KV spaces per layer. */
struct gpu_spaces {
    VkDeviceAddress base[AE_GPU_SPACE_COUNT];
    const VkDeviceAddress *kv_k, *kv_v;   /* n_layer addresses each */
    int32_t n_layer;
};

/* Records the dispatches into cb (begun by the caller), a barrier before each that waits. With timestamps
 * (a query pool of n + 1, or VK_NULL_HANDLE) it writes one before the first dispatch and one after each
 * (for AETHER_GPU_PROFILE). With indirect set,
 * dispatch i reads its workgroup counts from indirect at byte 12 * i (gpu_indirect_fill writes them);
 * otherwise the counts are those of T = t. Fails for a reference outside the spaces. */
int gpu_record(struct gpu_ctx *c, VkCommandBuffer cb, const VkPipeline *pipes, const struct ae_gpu_dispatch *d,
               uint32_t n, const struct gpu_spaces *s, const struct gpu_buffer *indirect, int32_t t, VkQueryPool timestamps,
               ae_error *err);

/* The workgroup counts of every dispatch for T tokens, as VkDispatchIndirectCommand. */
void gpu_indirect_fill(const struct ae_gpu_dispatch *d, uint32_t n, int32_t T, VkDispatchIndirectCommand *out);

/* Workgroups along axis i of d for T tokens. */
uint32_t gpu_groups(const struct ae_gpu_dispatch *d, int i, int32_t T);

#endif
