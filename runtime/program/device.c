/* Where the model runs: --device, the choice under auto, and each step on the chosen device.
 *
 * auto takes a Vulkan GPU whose free memory holds the model (weights, KV cache for the run's context,
 * activations), preferring discrete over integrated over virtual devices; devices that are themselves
 * CPU implementations (lavapipe, SwiftShader) are left to an explicit --device vulkan, since the CPU
 * kernels are faster on the same cores. Without a usable GPU it takes the CPU. Either way it prints one
 * line on stderr saying which device and why. --device vulkan[:N] insists: where there is no such
 * device, or it lacks what the kernels need, or its memory is too small, the program stops with a
 * message (exit 1). A program built with aetherc --backend cpu, or for a model with steps the Vulkan
 * backend has no kernels for (a mixture of experts), has no GPU half and always runs on the CPU; --device
 * vulkan and --info give the reason aetherc kept (ae_model.cpu_only).
 *
 * On a GPU, prompt chunks run the prefill steps (whatever their length, even 1) and generated tokens
 * the decode step: the prompt's logits then do not depend on how the prompt was split into chunks.
 */
#include "program_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int ae_prog_parse_device(struct prog_opts *o, const char *v, ae_error *err)
{
    o->device_index = -1;
    if (!strcmp(v, "auto"))
        o->device = PROG_DEVICE_AUTO;
    else if (!strcmp(v, "cpu"))
        o->device = PROG_DEVICE_CPU;
    else if (!strcmp(v, "vulkan"))
        o->device = PROG_DEVICE_VULKAN;
    else if (!strncmp(v, "vulkan:", 7) && v[7] >= '0' && v[7] <= '9') {
        char *end;
        long n = strtol(v + 7, &end, 10);
        if (*end || n >= AE_GPU_MAX_DEVICES)
            return ae_fail(err, "--device: expected auto, cpu, vulkan or vulkan:N (N below %d), found '%s'",
                           AE_GPU_MAX_DEVICES, v);
        o->device = PROG_DEVICE_VULKAN;
        o->device_index = (int32_t)n;
    } else
        return ae_fail(err, "--device: expected auto, cpu, vulkan or vulkan:N, found '%s'", v);
    return 0;
}

/* "3.83 GiB" or "1.2 MiB". */
struct size_text {
    char s[32];
};

static struct size_text human(uint64_t b)
{
    struct size_text t;
    if (b >= (1ull << 30))
        snprintf(t.s, sizeof t.s, "%.2f GiB", (double)b / (double)(1ull << 30));
    else
        snprintf(t.s, sizeof t.s, "%.1f MiB", (double)b / (double)(1ull << 20));
    return t;
}

static struct ae_gpu_params gpu_params(const struct ae_model *m, int32_t n_ctx, uint32_t kv_type, uint32_t device,
                                       const uint8_t *const *weights)
{
    return (struct ae_gpu_params){
        .device = device, .n_ctx = n_ctx, .kv_type = kv_type, .n_layer = m->n_layer, .n_head_kv = m->n_head_kv,
        .head_dim_k = m->head_dim_k, .head_dim_v = m->head_dim_v, .n_vocab = m->n_vocab, .t_max = m->t_max,
        .weights = weights,
    };
}

/* Preference under auto: discrete, integrated, virtual, other; CPU devices never. */
static int kind_rank(const char *kind)
{
    static const char *const order[] = {"discrete", "integrated", "virtual", "other"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(kind, order[i]))
            return i;
    return 99;
}

/* The device to use under auto, or -1 with the reason in why. */
static int choose_auto(const struct ae_gpu_device *d, uint32_t n, uint64_t need, char *why, size_t size)
{
    int best = -1;
    snprintf(why, size, "no Vulkan GPU");
    for (uint32_t i = 0; i < n; i++) {
        if (!d[i].usable) {
            snprintf(why, size, "Vulkan %" PRIu32 ", %s: %s", d[i].index, d[i].name, d[i].why_not);
            continue;
        }
        if (d[i].free_bytes < need) {
            snprintf(why, size, "Vulkan %" PRIu32 ", %s: %s needed, %s free", d[i].index, d[i].name, human(need).s,
                     human(d[i].free_bytes).s);
            continue;
        }
        if (kind_rank(d[i].kind) == 99) {
            snprintf(why, size, "Vulkan %" PRIu32 ", %s, runs on the CPU itself", d[i].index, d[i].name);
            continue;
        }
        if (best < 0 || kind_rank(d[i].kind) < kind_rank(d[best].kind))
            best = (int)i;
    }
    return best;
}

/* Why the program has no GPU half (a model made in a test may not say). */
static const char *cpu_only_reason(const struct ae_model *m)
{
    return m->cpu_only && *m->cpu_only ? m->cpu_only : "it has no Vulkan half";
}

int ae_prog_device_start(struct prog *p, ae_error *err)
{
    const struct ae_model *m = p->m;
    const struct prog_opts *o = p->o;
    if (o->device == PROG_DEVICE_CPU)
        return 0;
    if (!m->gpu) {
        if (o->device == PROG_DEVICE_VULKAN)
            return ae_fail(err, "--device vulkan: this program runs on the CPU only: %s", cpu_only_reason(m));
        return 0;
    }
    if (o->serve.on) { /* the server's batched step runs on the CPU kernels */
        if (o->device == PROG_DEVICE_VULKAN)
            return ae_fail(err, "--device vulkan: --serve runs on the CPU (the Vulkan backend has no batched step yet)");
        fprintf(stderr, "%s: device: CPU (--serve runs on the CPU)\n", o->prog);
        return 0;
    }
    struct ae_gpu_params gp = gpu_params(m, p->st.n_ctx, p->st.kv_type, 0, p->st.weights);
    gp.pool = p->st.pool;
    const uint64_t need = m->gpu->runtime->bytes_needed(m->gpu, &gp);
    struct ae_gpu_device dev[AE_GPU_MAX_DEVICES];
    uint32_t n = 0;
    char why[512];
    m->gpu->runtime->devices(dev, &n, why, sizeof why);
    int use = -1;
    if (o->device == PROG_DEVICE_AUTO) {
        if (n > 0)
            use = choose_auto(dev, n, need, why, sizeof why);
        if (use < 0) {
            fprintf(stderr, "%s: device: CPU (%s)\n", o->prog, why);
            return 0;
        }
    } else {
        if (n == 0)
            return ae_fail(err, "--device vulkan: %s", why);
        if (o->device_index >= 0) {
            if ((uint32_t)o->device_index >= n)
                return ae_fail(err, "--device vulkan:%" PRId32 ": there are %" PRIu32 " Vulkan devices (0..%" PRIu32 ")",
                               o->device_index, n, n - 1);
            use = o->device_index;
        } else /* the first usable one, GPUs before CPU devices */
            for (uint32_t i = 0; i < n; i++)
                if (dev[i].usable && (use < 0 || kind_rank(dev[i].kind) < kind_rank(dev[use].kind)))
                    use = (int)i;
        if (use < 0)
            return ae_fail(err, "--device vulkan: no device can run the kernels (Vulkan 0, %s: %s)", dev[0].name,
                           dev[0].why_not);
        if (!dev[use].usable)
            return ae_fail(err, "--device vulkan:%d: %s %s", use, dev[use].name, dev[use].why_not);
        if (dev[use].free_bytes < need)
            return ae_fail(err, "--device vulkan:%d: %s has %s free, the model needs %s (a smaller --ctx needs less)", use,
                           dev[use].name, human(dev[use].free_bytes).s, human(need).s);
    }
    gp.device = (uint32_t)use;
    ae_error gerr = {{0}};
    p->gpu = m->gpu->runtime->create(m->gpu, &gp, &gerr);
    if (!p->gpu) {
        if (o->device == PROG_DEVICE_VULKAN)
            return ae_fail(err, "--device vulkan: %s", gerr.msg);
        fprintf(stderr, "%s: device: CPU (Vulkan %d, %s, failed: %s)\n", o->prog, use, dev[use].name, gerr.msg);
        return 0;
    }
    char how[96];
    m->gpu->runtime->describe(p->gpu, how, sizeof how);
    fprintf(stderr, "%s: device: Vulkan %d, %s (%s; %s): %s needed, %s free\n", o->prog, use, dev[use].name, dev[use].kind,
            how, human(need).s, human(dev[use].free_bytes).s);
    return 0;
}

int ae_prog_forward(struct prog *p, const int32_t *ids, int32_t n, int32_t pos, bool prompt, ae_error *err)
{
    if (p->gpu)
        return p->m->gpu->runtime->step(p->gpu, prompt, ids, n, pos, p->logits, err);
    return p->m->forward(&p->st, ids, n, pos, p->logits, err);
}

void ae_prog_device_info(const struct prog_opts *o, const struct ae_model *m, int32_t n_ctx)
{
    if (!m->gpu) {
        printf("devices: the CPU only (%s)\n", cpu_only_reason(m));
        return;
    }
    struct ae_gpu_params gp = gpu_params(m, n_ctx, o->kv_type, 0, NULL);
    const uint64_t need = m->gpu->runtime->bytes_needed(m->gpu, &gp);
    printf("Vulkan: %" PRIu32 " kernels; %" PRIu32 " prefill and %" PRIu32 " decode dispatches; on a device: %" PRIu64
           " bytes (%s) with the KV cache above\n", m->gpu->n_kernels, m->gpu->prefill[0].n_dispatch,
           m->gpu->decode[0].n_dispatch, need, human(need).s);
    struct ae_gpu_device dev[AE_GPU_MAX_DEVICES];
    uint32_t n = 0;
    char why[512];
    m->gpu->runtime->devices(dev, &n, why, sizeof why);
    if (n == 0)
        printf("Vulkan devices: none (%s)\n", why);
    for (uint32_t i = 0; i < n; i++)
        printf("Vulkan %" PRIu32 ": %s (%s), %s, %s free%s%s\n", dev[i].index, dev[i].name, dev[i].kind,
               human(dev[i].memory_bytes).s, human(dev[i].free_bytes).s, dev[i].usable ? "" : "; unusable: ", dev[i].why_not);
}
