/* The Vulkan entry points the device layer uses, loaded at run time.
 *
 * A program must start where no Vulkan exists, so nothing links libvulkan: vk_api_load opens
 * libvulkan.so.1 with dlopen and fills one table of function pointers, first the global and instance
 * functions through vkGetInstanceProcAddr, then the device functions through vkGetDeviceProcAddr. The
 * X-macro lists below are the only place a function is named; the rest of runtime/gpu calls them as
 * vk.CreateBuffer(...) and so on.
 */
#ifndef AE_VK_API_H
#define AE_VK_API_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <stdbool.h>

#include "ae_error.h"

/* Functions taken before an instance exists. */
#define AE_VK_GLOBAL_FUNCS(X) \
    X(CreateInstance)         \
    X(EnumerateInstanceVersion)

/* Functions of an instance (and of its physical devices). */
#define AE_VK_INSTANCE_FUNCS(X)            \
    X(DestroyInstance)                     \
    X(EnumeratePhysicalDevices)            \
    X(GetPhysicalDeviceProperties)         \
    X(GetPhysicalDeviceProperties2)        \
    X(GetPhysicalDeviceFeatures2)          \
    X(GetPhysicalDeviceMemoryProperties)   \
    X(GetPhysicalDeviceMemoryProperties2)  \
    X(GetPhysicalDeviceQueueFamilyProperties) \
    X(EnumerateDeviceExtensionProperties)  \
    X(CreateDevice)                        \
    X(GetDeviceProcAddr)

/* Functions of a device. */
#define AE_VK_DEVICE_FUNCS(X)          \
    X(DestroyDevice)                   \
    X(GetDeviceQueue)                  \
    X(CreateBuffer)                    \
    X(DestroyBuffer)                   \
    X(GetBufferMemoryRequirements)     \
    X(AllocateMemory)                  \
    X(FreeMemory)                      \
    X(BindBufferMemory)                \
    X(MapMemory)                       \
    X(UnmapMemory)                     \
    X(GetBufferDeviceAddress)          \
    X(CreateShaderModule)              \
    X(DestroyShaderModule)             \
    X(CreatePipelineLayout)            \
    X(DestroyPipelineLayout)           \
    X(CreatePipelineCache)             \
    X(GetPipelineCacheData)            \
    X(DestroyPipelineCache)            \
    X(CreateComputePipelines)          \
    X(DestroyPipeline)                 \
    X(CreateCommandPool)               \
    X(DestroyCommandPool)              \
    X(AllocateCommandBuffers)          \
    X(BeginCommandBuffer)              \
    X(EndCommandBuffer)                \
    X(CmdBindPipeline)                 \
    X(CmdPushConstants)                \
    X(CmdDispatch)                     \
    X(CmdDispatchIndirect)             \
    X(CmdPipelineBarrier)              \
    X(CmdCopyBuffer)                   \
    X(CmdFillBuffer)                   \
    X(CmdWriteTimestamp)               \
    X(CmdResetQueryPool)               \
    X(CreateQueryPool)                 \
    X(DestroyQueryPool)                \
    X(GetQueryPoolResults)             \
    X(QueueSubmit)                     \
    X(QueueWaitIdle)                   \
    X(CreateFence)                     \
    X(DestroyFence)                    \
    X(WaitForFences)                   \
    X(ResetFences)

struct vk_api {
    void *lib;                                      /* the dlopen handle */
    PFN_vkGetInstanceProcAddr GetInstanceProcAddr;
#define AE_VK_FIELD(name) PFN_vk##name name;
    AE_VK_GLOBAL_FUNCS(AE_VK_FIELD)
    AE_VK_INSTANCE_FUNCS(AE_VK_FIELD)
    AE_VK_DEVICE_FUNCS(AE_VK_FIELD)
#undef AE_VK_FIELD
};

/* The process's table (one loader per process). */
extern struct vk_api vk;

/* Opens the loader and takes the global functions. Idempotent. Fails, saying why, where there is no
 * libvulkan.so.1 (AE_VULKAN_LIBRARY names another file, for tests). */
int vk_api_load(ae_error *err);

/* Takes the instance functions of inst, then (vk_api_load_device) the device functions of dev. */
int vk_api_load_instance(VkInstance inst, ae_error *err);
int vk_api_load_device(VkDevice dev, ae_error *err);

/* "VK_ERROR_OUT_OF_DEVICE_MEMORY" and so on, for messages. */
const char *vk_result_name(VkResult r);

#endif
