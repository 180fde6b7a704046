/* Pipelines and the recording of a step (gpu_internal.h).
 *
 * Every kernel has the same interface, so one pipeline layout serves them all: 128 bytes of push
 * constants, eight buffer addresses then sixteen 32-bit constants, and no descriptor sets. Recording
 * resolves each reference to an address once; the command buffer then holds everything but the step's
 * tokens and T and P, which the kernels read from buffers. A barrier before each dispatch that waits
 * (AE_GPU_WAIT) makes the earlier writes visible to it; one at the start orders what the host wrote (the
 * step, the tokens, the indirect counts) before every dispatch.
 */
#include "gpu_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* One pipeline creation: kernel task of the job, its VkResult kept for the caller. */
struct pipeline_job {
    struct gpu_ctx *c;
    const struct ae_gpu_kernel *k;
    const bool *use;
    const VkSpecializationInfo *spec;
    VkPipelineCache cache;
    VkPipeline *out;
    VkResult *result;
    const char **step;              /* the call that failed */
};

static void pipeline_task(void *ctx, int64_t task, int thread)
{
    const struct pipeline_job *j = ctx;
    const uint32_t i = (uint32_t)task;
    (void)thread;
    j->result[i] = VK_SUCCESS;
    if (j->use && !j->use[i])
        return;
    VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = (size_t)j->k[i].n_words * 4, .pCode = j->k[i].code};
    VkShaderModule mod;
    j->step[i] = "vkCreateShaderModule";
    if ((j->result[i] = vk.CreateShaderModule(j->c->dev, &mci, NULL, &mod)) != VK_SUCCESS)
        return;
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main", .pSpecializationInfo = j->spec},
        .layout = j->c->layout,
    };
    j->step[i] = "vkCreateComputePipelines";
    j->result[i] = vk.CreateComputePipelines(j->c->dev, j->cache, 1, &pci, NULL, &j->out[i]);
    vk.DestroyShaderModule(j->c->dev, mod, NULL);
}

int gpu_pipelines_create(struct gpu_ctx *c, const struct ae_gpu_kernel *k, uint32_t n, const bool *use, uint32_t kv_f32,
                         VkPipelineCache cache, ae_pool *pool, VkPipeline *out, ae_error *err)
{
    memset(out, 0, n * sizeof *out);
    const VkSpecializationMapEntry entry = {.constantID = 0, .offset = 0, .size = sizeof(uint32_t)};
    const VkSpecializationInfo spec = {.mapEntryCount = 1, .pMapEntries = &entry, .dataSize = sizeof kv_f32, .pData = &kv_f32};
    VkResult *result = calloc(n ? n : 1, sizeof *result);
    const char **step = calloc(n ? n : 1, sizeof *step);
    if (!result || !step) {
        free(result);
        free(step);
        return ae_fail(err, "out of memory");
    }
    struct pipeline_job j = {.c = c, .k = k, .use = use, .spec = &spec, .cache = cache, .out = out, .result = result,
                             .step = step};
    ae_pool_run(pool, pipeline_task, &j, n);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        if (result[i] != VK_SUCCESS) {
            gpu_pipelines_destroy(c, out, n);
            rc = ae_fail(err, "kernel %s: %s on %s: %s", k[i].name, step[i], c->name, vk_result_name(result[i]));
        }
    free(result);
    free(step);
    return rc;
}

void gpu_pipelines_destroy(struct gpu_ctx *c, VkPipeline *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (p[i])
            vk.DestroyPipeline(c->dev, p[i], NULL);
}

uint32_t gpu_groups(const struct ae_gpu_dispatch *d, int i, int32_t T)
{
    if (d->per_t[i] == 0)
        return d->groups[i];
    return d->groups[i] * (uint32_t)(((int64_t)T + d->per_t[i] - 1) / d->per_t[i]);
}

void gpu_indirect_fill(const struct ae_gpu_dispatch *d, uint32_t n, int32_t T, VkDispatchIndirectCommand *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (VkDispatchIndirectCommand){gpu_groups(&d[i], 0, T), gpu_groups(&d[i], 1, T), gpu_groups(&d[i], 2, T)};
}

/* The address a reference names, or 0 (fails) when its space or layer does not exist. */
static int resolve(const struct gpu_spaces *s, const struct ae_gpu_ref *r, VkDeviceAddress *out, ae_error *err)
{
    VkDeviceAddress base = 0;
    if (r->space == AE_GPU_NONE) {
        *out = 0;
        return 0;
    }
    if (r->space >= AE_GPU_SPACE_COUNT)
        return ae_fail(err, "a dispatch refers to buffer space %" PRIu32 ", which does not exist", r->space);
    if (r->space == AE_GPU_KV_K || r->space == AE_GPU_KV_V) {
        if (r->layer < 0 || r->layer >= s->n_layer)
            return ae_fail(err, "a dispatch refers to the KV cache of layer %" PRId32 " of %" PRId32, r->layer, s->n_layer);
        base = (r->space == AE_GPU_KV_K ? s->kv_k : s->kv_v)[r->layer];
    } else
        base = s->base[r->space];
    if (!base)
        return ae_fail(err, "a dispatch refers to buffer space %" PRIu32 ", which this run has no buffer for", r->space);
    *out = base + r->offset;
    return 0;
}

int gpu_record(struct gpu_ctx *c, VkCommandBuffer cb, const VkPipeline *pipes, const struct ae_gpu_dispatch *d,
               uint32_t n, const struct gpu_spaces *s, const struct gpu_buffer *indirect, int32_t t, VkQueryPool timestamps,
               ae_error *err)
{
    if (timestamps) {
        vk.CmdResetQueryPool(cb, timestamps, 0, n + 1);
        vk.CmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, timestamps, 0);
    }
    VkMemoryBarrier host_to_shader = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_HOST_WRITE_BIT,
                                      .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_INDIRECT_COMMAND_READ_BIT};
    vk.CmdPipelineBarrier(cb, VK_PIPELINE_STAGE_HOST_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_DRAW_INDIRECT_BIT,
                          0, 1, &host_to_shader, 0, NULL, 0, NULL);
    VkMemoryBarrier between = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    for (uint32_t i = 0; i < n; i++) {
        uint8_t push[AE_GPU_PUSH_BYTES];
        for (int j = 0; j < AE_GPU_MAX_REFS; j++) {
            VkDeviceAddress a = 0;
            if (resolve(s, &d[i].ref[j], &a, err) < 0)
                return ae_fail_prefix(err, "dispatch %" PRIu32, i);
            memcpy(push + 8 * j, &a, 8);
        }
        memcpy(push + 8 * AE_GPU_MAX_REFS, d[i].k, sizeof d[i].k);
        if (!pipes[d[i].kernel])
            return ae_fail(err, "dispatch %" PRIu32 ": its kernel has no pipeline", i);
        if (i > 0 && (d[i].flags & AE_GPU_WAIT))
            vk.CmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &between,
                                  0, NULL, 0, NULL);
        vk.CmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipes[d[i].kernel]);
        vk.CmdPushConstants(cb, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, AE_GPU_PUSH_BYTES, push);
        if (indirect)
            vk.CmdDispatchIndirect(cb, indirect->buf, (VkDeviceSize)i * sizeof(VkDispatchIndirectCommand));
        else
            vk.CmdDispatch(cb, gpu_groups(&d[i], 0, t), gpu_groups(&d[i], 1, t), gpu_groups(&d[i], 2, t));
        if (timestamps)
            vk.CmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, timestamps, i + 1);
    }
    return 0;
}
