/* Vulkan devices: the instance, the list of devices with what each lacks, one opened device with its
 * queue and memory types, buffers, and copies to and from them (gpu_internal.h).
 *
 * What a device must have for the kernels: Vulkan 1.2, buffer device addresses (every kernel reaches
 * its buffers through addresses in push constants, so there are no descriptor sets at all), 8- and
 * 16-bit storage and arithmetic types, 64-bit integers (the addresses), and subgroup arithmetic and
 * shuffles in compute shaders. VK_NV_cooperative_matrix, where the device has it with 16x16x16
 * f16 x f16 + f32 shapes, is turned on for the prefill matmul's tensor-core path.
 */
#include "gpu_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_types.h"

/* ---- The instance ------------------------------------------------------------------------------------ */

int gpu_instance_create(VkInstance *inst, ae_error *err)
{
    if (vk_api_load(err) < 0)
        return -1;
    uint32_t version = VK_API_VERSION_1_0;
    if (vk.EnumerateInstanceVersion)
        vk.EnumerateInstanceVersion(&version);
    if (version < VK_API_VERSION_1_2)
        return ae_fail(err, "the Vulkan loader is version %u.%u; 1.2 or later is needed", VK_API_VERSION_MAJOR(version),
                       VK_API_VERSION_MINOR(version));
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "aether",
        .pEngineName = "aether",
        .apiVersion = version < VK_API_VERSION_1_3 ? version : VK_API_VERSION_1_3,
    };
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = vk.CreateInstance(&ci, NULL, inst);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return ae_fail(err, "no Vulkan driver (the loader found no ICD)");
    if (r != VK_SUCCESS)
        return ae_fail(err, "vkCreateInstance: %s", vk_result_name(r));
    if (vk_api_load_instance(*inst, err) < 0) {
        PFN_vkDestroyInstance destroy = (PFN_vkDestroyInstance)vk.GetInstanceProcAddr(*inst, "vkDestroyInstance");
        if (destroy)
            destroy(*inst, NULL);
        return -1;
    }
    return 0;
}

/* ---- What a device has ------------------------------------------------------------------------------- */

struct gpu_caps {
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceSubgroupProperties subgroup;
    VkPhysicalDeviceMaintenance3Properties maint3;
    VkPhysicalDeviceFeatures2 f;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    bool has_budget, has_coopmat_nv;
    uint32_t queue_family;          /* UINT32_MAX: none with compute */
};

static bool has_extension(const VkExtensionProperties *e, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].extensionName, name))
            return true;
    return false;
}

static void caps_query(VkPhysicalDevice pd, struct gpu_caps *c)
{
    memset(c, 0, sizeof *c);
    c->maint3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES;
    c->subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    c->subgroup.pNext = &c->maint3;
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &c->subgroup};
    vk.GetPhysicalDeviceProperties(pd, &c->props);
    if (c->props.apiVersion >= VK_API_VERSION_1_1)
        vk.GetPhysicalDeviceProperties2(pd, &p2);
    c->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    c->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    c->f11.pNext = &c->f12;
    c->f.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    c->f.pNext = &c->f11;
    if (c->props.apiVersion >= VK_API_VERSION_1_2)
        vk.GetPhysicalDeviceFeatures2(pd, &c->f);

    uint32_t n_ext = 0;
    vk.EnumerateDeviceExtensionProperties(pd, NULL, &n_ext, NULL);
    VkExtensionProperties *ext = calloc(n_ext ? n_ext : 1, sizeof *ext);
    if (ext && vk.EnumerateDeviceExtensionProperties(pd, NULL, &n_ext, ext) >= 0) {
        c->has_budget = has_extension(ext, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
        c->has_coopmat_nv = has_extension(ext, n_ext, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    }
    free(ext);

    c->queue_family = UINT32_MAX;
    uint32_t n_q = 0;
    vk.GetPhysicalDeviceQueueFamilyProperties(pd, &n_q, NULL);
    VkQueueFamilyProperties *q = calloc(n_q ? n_q : 1, sizeof *q);
    if (q) {
        vk.GetPhysicalDeviceQueueFamilyProperties(pd, &n_q, q);
        for (uint32_t i = 0; i < n_q && c->queue_family == UINT32_MAX; i++)
            if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
                c->queue_family = i;
    }
    free(q);
}

/* What the device lacks for the kernels, or "" when it has everything. */
static void caps_missing(const struct gpu_caps *c, char *why, size_t size)
{
    const VkSubgroupFeatureFlags ops =
        VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    const char *miss = NULL;
    if (c->props.apiVersion < VK_API_VERSION_1_2)
        miss = "Vulkan 1.2";
    else if (c->queue_family == UINT32_MAX)
        miss = "a compute queue";
    else if (!c->f12.bufferDeviceAddress)
        miss = "buffer device addresses";
    else if (!c->f12.storageBuffer8BitAccess || !c->f11.storageBuffer16BitAccess)
        miss = "8- and 16-bit storage";
    else if (!c->f12.shaderInt8 || !c->f12.shaderFloat16 || !c->f.features.shaderInt16 || !c->f.features.shaderInt64)
        miss = "8-, 16- and 64-bit shader types";
    else if (!(c->subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) || (c->subgroup.supportedOperations & ops) != ops)
        miss = "subgroup arithmetic and shuffles in compute shaders";
    else if (c->props.limits.maxPushConstantsSize < AE_GPU_PUSH_BYTES)
        miss = "128 bytes of push constants";
    else if (c->props.limits.maxComputeWorkGroupInvocations < 256 || c->props.limits.maxComputeSharedMemorySize < 16384)
        miss = "workgroups of 256 invocations and 16 KiB of shared memory";
    snprintf(why, size, "%s%s", miss ? "it lacks " : "", miss ? miss : "");
}

static const char *kind_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    case VK_PHYSICAL_DEVICE_TYPE_OTHER:
    case VK_PHYSICAL_DEVICE_TYPE_MAX_ENUM: break;
    }
    return "other";
}

/* AETHER_GPU_MEMORY, or UINT64_MAX when unset. */
static uint64_t memory_cap(void)
{
    const char *s = getenv("AETHER_GPU_MEMORY");
    if (!s || !*s)
        return UINT64_MAX;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end ? UINT64_MAX : (uint64_t)v;
}

/* The largest device-local heap, and what is free of it. */
static void device_memory(VkPhysicalDevice pd, const struct gpu_caps *c, uint64_t *total, uint64_t *free_bytes)
{
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                            .pNext = c->has_budget ? &budget : NULL};
    vk.GetPhysicalDeviceMemoryProperties2(pd, &mp);
    *total = *free_bytes = 0;
    for (uint32_t h = 0; h < mp.memoryProperties.memoryHeapCount; h++) {
        const VkMemoryHeap *heap = &mp.memoryProperties.memoryHeaps[h];
        if (!(heap->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) || heap->size <= *total)
            continue;
        *total = heap->size;
        *free_bytes = heap->size;
        if (c->has_budget && budget.heapBudget[h] > 0)
            *free_bytes = budget.heapBudget[h] > budget.heapUsage[h] ? budget.heapBudget[h] - budget.heapUsage[h] : 0;
    }
    uint64_t cap = memory_cap();
    if (*total > cap)
        *total = cap;
    if (*free_bytes > cap)
        *free_bytes = cap;
}

void ae_gpu_devices(struct ae_gpu_device *out, uint32_t *n, char *why, size_t why_size)
{
    ae_error err = {{0}};
    VkInstance inst;
    *n = 0;
    if (why_size)
        why[0] = 0;
    if (gpu_instance_create(&inst, &err) < 0) {
        snprintf(why, why_size, "%s", err.msg);
        return;
    }
    uint32_t count = AE_GPU_MAX_DEVICES;
    VkPhysicalDevice pd[AE_GPU_MAX_DEVICES];
    VkResult r = vk.EnumeratePhysicalDevices(inst, &count, pd);
    if (r < 0) {
        snprintf(why, why_size, "vkEnumeratePhysicalDevices: %s", vk_result_name(r));
        count = 0;
    } else if (count == 0)
        snprintf(why, why_size, "the Vulkan driver reports no device");
    for (uint32_t i = 0; i < count; i++) {
        struct gpu_caps c;
        caps_query(pd[i], &c);
        struct ae_gpu_device *d = &out[i];
        memset(d, 0, sizeof *d);
        d->index = i;
        snprintf(d->name, sizeof d->name, "%s", c.props.deviceName);
        d->kind = kind_name(c.props.deviceType);
        device_memory(pd[i], &c, &d->memory_bytes, &d->free_bytes);
        caps_missing(&c, d->why_not, sizeof d->why_not);
        d->usable = d->why_not[0] == 0;
    }
    *n = count;
    vk.DestroyInstance(inst, NULL);
}

/* ---- Opening a device -------------------------------------------------------------------------------- */

/* A memory type with all of want (preferring also prefer), or UINT32_MAX. */
static uint32_t memory_type(const VkPhysicalDeviceMemoryProperties *mp, VkMemoryPropertyFlags want,
                            VkMemoryPropertyFlags prefer)
{
    uint32_t found = UINT32_MAX;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((f & want) != want)
            continue;
        if ((f & prefer) == prefer)
            return i;
        if (found == UINT32_MAX)
            found = i;
    }
    return found;
}

/* Whether VK_NV_cooperative_matrix offers 16x16x16 f16 x f16 + f32 at subgroup scope. */
static bool coopmat_shape_ok(VkPhysicalDevice pd, VkInstance inst)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)vk.GetInstanceProcAddr(
            inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    if (!get)
        return false;
    uint32_t n = 0;
    if (get(pd, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkCooperativeMatrixPropertiesNV *p = calloc(n, sizeof *p);
    if (!p)
        return false;
    for (uint32_t i = 0; i < n; i++)
        p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    bool ok = false;
    if (get(pd, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !ok; i++)
            ok = p[i].MSize == 16 && p[i].NSize == 16 && p[i].KSize == 16 && p[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                 p[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV && p[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                 p[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV && p[i].scope == VK_SCOPE_SUBGROUP_NV;
    free(p);
    return ok;
}

int gpu_ctx_open(struct gpu_ctx *c, uint32_t index, ae_error *err)
{
    memset(c, 0, sizeof *c);
    if (gpu_instance_create(&c->inst, err) < 0)
        return -1;
    uint32_t count = AE_GPU_MAX_DEVICES;
    VkPhysicalDevice pd[AE_GPU_MAX_DEVICES];
    VkResult r = vk.EnumeratePhysicalDevices(c->inst, &count, pd);
    if (r < 0 || index >= count) {
        gpu_ctx_close(c);
        return ae_fail(err, "there is no Vulkan device %" PRIu32 " (%" PRIu32 " found)", index, r < 0 ? 0 : count);
    }
    c->pd = pd[index];
    struct gpu_caps caps;
    caps_query(c->pd, &caps);
    char why[160];
    caps_missing(&caps, why, sizeof why);
    snprintf(c->name, sizeof c->name, "%s", caps.props.deviceName);
    if (why[0]) {
        gpu_ctx_close(c);
        return ae_fail(err, "Vulkan device %" PRIu32 " (%s) cannot run the kernels: %s", index, c->name, why);
    }
    c->queue_family = caps.queue_family;
    c->subgroup_size = caps.subgroup.subgroupSize;
    c->max_alloc = caps.maint3.maxMemoryAllocationSize;
    c->coopmat_nv = caps.has_coopmat_nv && coopmat_shape_ok(c->pd, c->inst) && !getenv("AETHER_GPU_NO_COOPMAT");
    c->timestamp_period = caps.props.limits.timestampComputeAndGraphics ? caps.props.limits.timestampPeriod : 0.0f;

    /* Turn on exactly the features the kernels use. */
    VkPhysicalDeviceCooperativeMatrixFeaturesNV coop = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                        .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .pNext = c->coopmat_nv ? &coop : NULL,
        .bufferDeviceAddress = VK_TRUE,
        .storageBuffer8BitAccess = VK_TRUE,
        .shaderInt8 = VK_TRUE,
        .shaderFloat16 = VK_TRUE,
    };
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12,
                                            .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    f.features.shaderInt16 = VK_TRUE;
    f.features.shaderInt64 = VK_TRUE;
    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->queue_family,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    const char *exts[2];
    uint32_t n_exts = 0;
    if (c->coopmat_nv)
        exts[n_exts++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    if (caps.has_budget)
        exts[n_exts++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci, .enabledExtensionCount = n_exts, .ppEnabledExtensionNames = exts};
    if ((r = vk.CreateDevice(c->pd, &dci, NULL, &c->dev)) != VK_SUCCESS) {
        gpu_ctx_close(c);
        return ae_fail(err, "vkCreateDevice (%s): %s", c->name, vk_result_name(r));
    }
    if (vk_api_load_device(c->dev, err) < 0) {
        gpu_ctx_close(c);
        return -1;
    }
    vk.GetDeviceQueue(c->dev, c->queue_family, 0, &c->queue);

    VkPhysicalDeviceMemoryProperties mp;
    vk.GetPhysicalDeviceMemoryProperties(c->pd, &mp);
    const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    c->mem_device = memory_type(&mp, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    c->mem_host = memory_type(&mp, host, 0);
    c->mem_readback = memory_type(&mp, host, VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (c->mem_device == UINT32_MAX || c->mem_host == UINT32_MAX) {
        gpu_ctx_close(c);
        return ae_fail(err, "Vulkan device %s has no device-local or no host-visible coherent memory", c->name);
    }

    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = c->queue_family};
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = AE_GPU_PUSH_BYTES};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pcr};
    if ((r = vk.CreateCommandPool(c->dev, &pci, NULL, &c->pool)) != VK_SUCCESS ||
        (cai.commandPool = c->pool, r = vk.AllocateCommandBuffers(c->dev, &cai, &c->cmd)) != VK_SUCCESS ||
        (r = vk.CreateFence(c->dev, &fci, NULL, &c->fence)) != VK_SUCCESS ||
        (r = vk.CreatePipelineLayout(c->dev, &lci, NULL, &c->layout)) != VK_SUCCESS) {
        gpu_ctx_close(c);
        return ae_fail(err, "setting up Vulkan device %s: %s", c->name, vk_result_name(r));
    }
    return 0;
}

uint32_t gpu_ctx_has(const struct gpu_ctx *c)
{
    return c->coopmat_nv ? AE_GPU_NEED_COOPMAT_NV : 0u;
}

void gpu_ctx_close(struct gpu_ctx *c)
{
    if (c->dev) {
        vk.QueueWaitIdle(c->queue);
        if (c->layout)
            vk.DestroyPipelineLayout(c->dev, c->layout, NULL);
        if (c->fence)
            vk.DestroyFence(c->dev, c->fence, NULL);
        if (c->pool)
            vk.DestroyCommandPool(c->dev, c->pool, NULL);
        vk.DestroyDevice(c->dev, NULL);
    }
    if (c->inst)
        vk.DestroyInstance(c->inst, NULL);
    memset(c, 0, sizeof *c);
}

/* ---- Buffers ----------------------------------------------------------------------------------------- */

int gpu_buffer_create(struct gpu_ctx *c, struct gpu_buffer *b, uint64_t size, enum gpu_mem mem, ae_error *err)
{
    memset(b, 0, sizeof *b);
    if (size == 0)
        size = 16;
    uint32_t type = mem == GPU_MEM_DEVICE ? c->mem_device : mem == GPU_MEM_HOST ? c->mem_host : c->mem_readback;
    if (c->max_alloc && size > c->max_alloc)
        return ae_fail(err, "a buffer of %" PRIu64 " bytes is larger than %s allows in one allocation (%" PRIu64 ")", size,
                       c->name, c->max_alloc);
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vk.CreateBuffer(c->dev, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS)
        return ae_fail(err, "vkCreateBuffer of %" PRIu64 " bytes: %s", size, vk_result_name(r));
    VkMemoryRequirements req;
    vk.GetBufferMemoryRequirements(c->dev, b->buf, &req);
    if (!(req.memoryTypeBits & (1u << type))) {
        gpu_buffer_destroy(c, b);
        return ae_fail(err, "%s cannot place a storage buffer in the memory it needs", c->name);
    }
    VkMemoryAllocateFlagsInfo flags = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                       .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &flags,
                                .allocationSize = req.size, .memoryTypeIndex = type};
    if ((r = vk.AllocateMemory(c->dev, &mai, NULL, &b->mem)) != VK_SUCCESS) {
        gpu_buffer_destroy(c, b);
        return ae_fail(err, "cannot allocate %" PRIu64 " bytes (%.1f MiB) on %s: %s", size, (double)size / 1048576.0, c->name,
                       vk_result_name(r));
    }
    if ((r = vk.BindBufferMemory(c->dev, b->buf, b->mem, 0)) != VK_SUCCESS) {
        gpu_buffer_destroy(c, b);
        return ae_fail(err, "vkBindBufferMemory: %s", vk_result_name(r));
    }
    if (mem != GPU_MEM_DEVICE && (r = vk.MapMemory(c->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map)) != VK_SUCCESS) {
        gpu_buffer_destroy(c, b);
        return ae_fail(err, "vkMapMemory: %s", vk_result_name(r));
    }
    VkBufferDeviceAddressInfo ai = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO, .buffer = b->buf};
    b->addr = vk.GetBufferDeviceAddress(c->dev, &ai);
    b->size = size;
    return 0;
}

void gpu_buffer_destroy(struct gpu_ctx *c, struct gpu_buffer *b)
{
    if (b->map)
        vk.UnmapMemory(c->dev, b->mem);
    if (b->buf)
        vk.DestroyBuffer(c->dev, b->buf, NULL);
    if (b->mem)
        vk.FreeMemory(c->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

int gpu_submit_wait(struct gpu_ctx *c, VkCommandBuffer cb, ae_error *err)
{
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    VkResult r = vk.ResetFences(c->dev, 1, &c->fence);
    if (r == VK_SUCCESS)
        r = vk.QueueSubmit(c->queue, 1, &si, c->fence);
    if (r == VK_SUCCESS)
        r = vk.WaitForFences(c->dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
    return r == VK_SUCCESS ? 0 : ae_fail(err, "running on %s: %s", c->name, vk_result_name(r));
}

/* ---- Transfers --------------------------------------------------------------------------------------- */


int gpu_copy(struct gpu_ctx *c, const struct gpu_buffer *src, uint64_t src_offset, struct gpu_buffer *dst,
             uint64_t dst_offset, uint64_t size, ae_error *err)
{
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkBufferCopy region = {.srcOffset = src_offset, .dstOffset = dst_offset, .size = size};
    vk.BeginCommandBuffer(c->cmd, &bi);
    vk.CmdCopyBuffer(c->cmd, src->buf, dst->buf, 1, &region);
    vk.EndCommandBuffer(c->cmd);
    return gpu_submit_wait(c, c->cmd, err);
}

/* Copies size bytes between a mapped staging buffer and dst/src, chunk by chunk. */
static int copy_through_staging(struct gpu_ctx *c, struct gpu_buffer *dev, uint64_t offset, void *host, uint64_t size,
                                bool to_device, ae_error *err)
{
    struct gpu_buffer st;
    uint64_t chunk = size < GPU_STAGING_BYTES ? size : GPU_STAGING_BYTES;
    if (gpu_buffer_create(c, &st, chunk, to_device ? GPU_MEM_HOST : GPU_MEM_READBACK, err) < 0)
        return -1;
    int rc = 0;
    for (uint64_t done = 0; done < size && rc == 0; done += chunk) {
        uint64_t n = size - done < chunk ? size - done : chunk;
        if (to_device) {
            memcpy(st.map, (const uint8_t *)host + done, n);
            rc = gpu_copy(c, &st, 0, dev, offset + done, n, err);
        } else if ((rc = gpu_copy(c, dev, offset + done, &st, 0, n, err)) == 0)
            memcpy((uint8_t *)host + done, st.map, n);
    }
    gpu_buffer_destroy(c, &st);
    return rc;
}

int gpu_upload(struct gpu_ctx *c, struct gpu_buffer *dst, uint64_t offset, const void *src, uint64_t size, ae_error *err)
{
    if (offset > dst->size || size > dst->size - offset)
        return ae_fail(err, "an upload of %" PRIu64 " bytes at %" PRIu64 " runs past a buffer of %" PRIu64, size, offset,
                       dst->size);
    if (size == 0)
        return 0;
    if (dst->map) {
        memcpy((uint8_t *)dst->map + offset, src, size);
        return 0;
    }
    return copy_through_staging(c, dst, offset, (void *)(uintptr_t)src, size, true, err);
}

int gpu_download(struct gpu_ctx *c, struct gpu_buffer *src, uint64_t offset, void *dst, uint64_t size, ae_error *err)
{
    if (offset > src->size || size > src->size - offset)
        return ae_fail(err, "a download of %" PRIu64 " bytes at %" PRIu64 " runs past a buffer of %" PRIu64, size, offset,
                       src->size);
    if (size == 0)
        return 0;
    if (src->map) {
        memcpy(dst, (const uint8_t *)src->map + offset, size);
        return 0;
    }
    return copy_through_staging(c, src, offset, dst, size, false, err);
}
