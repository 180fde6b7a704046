/* Loading libvulkan at run time (vk_api.h). */
#include "vk_api.h"

#include <dlfcn.h>
#include <stdlib.h>

struct vk_api vk;

int vk_api_load(ae_error *err)
{
    if (vk.lib)
        return 0;
    const char *name = getenv("AE_VULKAN_LIBRARY");
    if (!name || !*name)
        name = "libvulkan.so.1";
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return ae_fail(err, "no Vulkan loader (%s): %s", name, dlerror());
    PFN_vkGetInstanceProcAddr gipa = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
    if (!gipa) {
        dlclose(lib);
        return ae_fail(err, "%s has no vkGetInstanceProcAddr: not a Vulkan loader", name);
    }
    vk.GetInstanceProcAddr = gipa;
#define AE_VK_LOAD_GLOBAL(fn) vk.fn = (PFN_vk##fn)gipa(NULL, "vk" #fn);
    AE_VK_GLOBAL_FUNCS(AE_VK_LOAD_GLOBAL)
#undef AE_VK_LOAD_GLOBAL
    if (!vk.CreateInstance) {
        dlclose(lib);
        return ae_fail(err, "%s gives no vkCreateInstance", name);
    }
    vk.lib = lib;
    return 0;
}

int vk_api_load_instance(VkInstance inst, ae_error *err)
{
#define AE_VK_LOAD_INSTANCE(fn)                                                            \
    if (!(vk.fn = (PFN_vk##fn)vk.GetInstanceProcAddr(inst, "vk" #fn)))                     \
        return ae_fail(err, "the Vulkan loader has no vk" #fn " (Vulkan 1.1 or later needed)");
    AE_VK_INSTANCE_FUNCS(AE_VK_LOAD_INSTANCE)
#undef AE_VK_LOAD_INSTANCE
    return 0;
}

int vk_api_load_device(VkDevice dev, ae_error *err)
{
#define AE_VK_LOAD_DEVICE(fn)                                                              \
    if (!(vk.fn = (PFN_vk##fn)vk.GetDeviceProcAddr(dev, "vk" #fn)))                        \
        return ae_fail(err, "the Vulkan device has no vk" #fn " (Vulkan 1.2 or later needed)");
    AE_VK_DEVICE_FUNCS(AE_VK_LOAD_DEVICE)
#undef AE_VK_LOAD_DEVICE
    return 0;
}

const char *vk_result_name(VkResult r)
{
    static const struct {
        VkResult r;
        const char *name;
    } names[] = {
#define AE_VK_RESULT(name) {name, #name},
    AE_VK_RESULT(VK_SUCCESS)
    AE_VK_RESULT(VK_NOT_READY)
    AE_VK_RESULT(VK_TIMEOUT)
    AE_VK_RESULT(VK_INCOMPLETE)
    AE_VK_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY)
    AE_VK_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    AE_VK_RESULT(VK_ERROR_INITIALIZATION_FAILED)
    AE_VK_RESULT(VK_ERROR_DEVICE_LOST)
    AE_VK_RESULT(VK_ERROR_MEMORY_MAP_FAILED)
    AE_VK_RESULT(VK_ERROR_LAYER_NOT_PRESENT)
    AE_VK_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT)
    AE_VK_RESULT(VK_ERROR_FEATURE_NOT_PRESENT)
    AE_VK_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER)
    AE_VK_RESULT(VK_ERROR_TOO_MANY_OBJECTS)
    AE_VK_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED)
    AE_VK_RESULT(VK_ERROR_UNKNOWN)
    AE_VK_RESULT(VK_ERROR_INVALID_SHADER_NV)
#undef AE_VK_RESULT
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].r == r)
            return names[i].name;
    return "VkResult error";
}
