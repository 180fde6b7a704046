/* A model on a Vulkan device: ae_gpu_create, ae_gpu_step (ae_gpu.h).
 *
 * Start-up makes every buffer once: the weights (uploaded once, through a staging buffer), the KV cache
 * (every layer's K then V, each at an aligned offset), the activation arena, and four small host-visible
 * buffers (the step's T and P, the token ids, the prefill's indirect workgroup counts, the logits read
 * back). It creates one pipeline per kernel through a pipeline cache kept on disk, and records the
 * prefill and decode steps as two command buffers that every step replays. A step writes T, P and the
 * tokens, submits, waits, and copies out the one row of logits.
 *
 * The pipeline cache lives in $XDG_CACHE_HOME/aether (or ~/.cache/aether), one file per set of kernels
 * and device, so a second start creates its pipelines from the driver's cache; AETHER_PIPELINE_CACHE=0
 * turns it off. AETHER_GPU_PROFILE=1 times every dispatch with timestamps and prints, at the end, the
 * device time of each step kind and of each kernel (a dispatch's time runs from the end of the one
 * before it, so overlapping dispatches share theirs).
 */
#include "gpu_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ae_kernels.h"
#include "ae_types.h"

#define KV_ALIGN 256

struct ae_gpu {
    struct gpu_ctx c;
    const struct ae_gpu_model *m;
    struct ae_gpu_params p;
    struct gpu_buffer weights, arena, kv, step, tokens, indirect, logits;
    VkDeviceAddress *kv_k, *kv_v;
    VkPipeline *pipes;
    const struct ae_gpu_graph *graph[2]; /* decode, prefill: the variants this device runs */
    VkCommandBuffer cb[2];          /* decode, prefill */
    double device_ms, upload_ms, pipelines_ms;
    VkQueryPool timestamps[2];      /* AETHER_GPU_PROFILE: per step kind, one per dispatch and one before */
    double *kernel_ns;              /* per kernel: device time summed over the steps */
    double step_ns[2];
    uint32_t steps[2];
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t round_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

/* Bytes of one layer's K (or V) cache, aligned. */
static uint64_t kv_layer_bytes(const struct ae_gpu_params *p, int32_t head_dim)
{
    const uint64_t elt = p->kv_type == AE_TYPE_F32 ? 4 : 2;
    return round_up((uint64_t)p->n_ctx * (uint64_t)p->n_head_kv * (uint64_t)head_dim * elt, KV_ALIGN);
}

uint64_t ae_gpu_bytes_needed(const struct ae_gpu_model *m, const struct ae_gpu_params *p)
{
    const uint64_t kv = (kv_layer_bytes(p, p->head_dim_k) + kv_layer_bytes(p, p->head_dim_v)) * (uint64_t)p->n_layer;
    const uint64_t small = 4 * (uint64_t)p->t_max + 16 + 12 * (uint64_t)(m->prefill[0].n_dispatch + m->prefill[1].n_dispatch) +
                           4 * (uint64_t)p->n_vocab;
    return round_up(m->weights_bytes, 4096) + kv + round_up(m->arena_bytes, 4096) + small;
}

/* ---- The pipeline cache on disk ---------------------------------------------------------------------- */

/* The cache file for these kernels on this device, in path; false when there is none to use. */
static bool cache_path(const struct ae_gpu *g, char *path, size_t size)
{
    const char *off = getenv("AETHER_PIPELINE_CACHE");
    if (off && !strcmp(off, "0"))
        return false;
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *s = g->c.name; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    for (uint32_t i = 0; i < g->m->n_kernels; i++)
        for (uint32_t w = 0; w < g->m->kernels[i].n_words; w++)
            h = (h ^ g->m->kernels[i].code[w]) * 0x100000001b3ull;
    h = (h ^ g->p.kv_type) * 0x100000001b3ull;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[512];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/aether", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/aether", home);
    else
        return false;
    snprintf(path, size, "%s/vk-%016" PRIx64 ".cache", dir, h);
    return true;
}

static void *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    void *data = NULL;
    long n;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n)) &&
        fread(data, 1, (size_t)n, f) == (size_t)n)
        *size = (size_t)n;
    else {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

/* Writes the cache's data beside path (made atomically: a temporary file renamed over it). */
static void cache_save(struct ae_gpu *g, VkPipelineCache cache, const char *path)
{
    size_t size = 0;
    if (vk.GetPipelineCacheData(g->c.dev, cache, &size, NULL) != VK_SUCCESS || size == 0)
        return;
    void *data = malloc(size);
    if (!data || vk.GetPipelineCacheData(g->c.dev, cache, &size, data) != VK_SUCCESS) {
        free(data);
        return;
    }
    char dir[1200], tmp[1300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        char *parent = strrchr(dir, '/');
        if (parent) { /* .../.cache, then .../.cache/aether */
            *parent = 0;
            mkdir(dir, 0700);
            *parent = '/';
        }
        mkdir(dir, 0700);
    }
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (f) {
        bool ok = fwrite(data, 1, size, f) == size;
        ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path) != 0)
            unlink(tmp);
    }
    free(data);
}

static int make_pipelines(struct ae_gpu *g, ae_error *err)
{
    char path[1100];
    bool use_file = cache_path(g, path, sizeof path);
    size_t size = 0;
    void *data = use_file ? read_whole(path, &size) : NULL;
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = size,
                                    .pInitialData = data};
    VkPipelineCache cache = VK_NULL_HANDLE;
    if (vk.CreatePipelineCache(g->c.dev, &ci, NULL, &cache) != VK_SUCCESS) {
        ci.initialDataSize = 0; /* a cache file the driver refuses is ignored */
        ci.pInitialData = NULL;
        if (vk.CreatePipelineCache(g->c.dev, &ci, NULL, &cache) != VK_SUCCESS)
            cache = VK_NULL_HANDLE;
    }
    free(data);
    const uint32_t nk = g->m->n_kernels;
    g->pipes = calloc(nk ? nk : 1, sizeof *g->pipes);
    bool *use = calloc(nk ? nk : 1, sizeof *use);
    int rc = g->pipes && use ? 0 : ae_fail(err, "out of memory");
    for (int s = 0; s < 2 && rc == 0; s++)
        for (uint32_t i = 0; i < g->graph[s]->n_dispatch; i++)
            use[g->graph[s]->dispatch[i].kernel] = true;
    if (rc == 0)
        rc = gpu_pipelines_create(&g->c, g->m->kernels, nk, use, g->p.kv_type == AE_TYPE_F32, cache, g->p.pool, g->pipes,
                                  err);
    free(use);
    if (rc == 0 && cache && use_file && size == 0)
        cache_save(g, cache, path);
    if (cache)
        vk.DestroyPipelineCache(g->c.dev, cache, NULL);
    return rc;
}

/* ---- Start-up ---------------------------------------------------------------------------------------- */

/* Rows r0..r1 of one weight written as GGUF rows into the staging buffer: copied, or unpacked from the
 * interleaved groups of 16 rows (docs/kernels.md). Task i does rows r0 + i * per_task onwards, a whole
 * number of groups, through its thread's scratch of 16 rows, so that the staging memory (often
 * write-combined) is written in long runs. */
struct upload_job {
    const struct ae_gpu_weight *w;
    const uint8_t *src;            /* the weight's host bytes */
    uint8_t *dst;                  /* where row r0 goes */
    int64_t n, r0, r1, per_task;   /* rows of row_bytes: the weight's rows, or its bytes in the rows layout */
    uint64_t row_bytes;
    uint8_t *scratch;              /* 16 rows per thread */
};

static void upload_task(void *ctx, int64_t task, int thread)
{
    const struct upload_job *j = ctx;
    const int64_t a = j->r0 + task * j->per_task, b = a + j->per_task < j->r1 ? a + j->per_task : j->r1;
    uint8_t *out = j->dst + (uint64_t)(a - j->r0) * j->row_bytes;
    if (j->w->layout == AE_LAYOUT_ROWS) {
        memcpy(out, j->src + (uint64_t)a * j->row_bytes, (size_t)((uint64_t)(b - a) * j->row_bytes));
        return;
    }
    const struct ae_type_info *ti = ae_type_info(j->w->type);
    const uint64_t gbytes = ae_layout_group_bytes(j->w->type, (enum ae_layout)j->w->layout, j->w->k);
    const int64_t nb = j->w->k / ti->block_size;
    const uint64_t block_group = gbytes / (uint64_t)nb;
    uint8_t *rows = j->scratch + (uint64_t)thread * 16 * j->row_bytes, blocks[16 * 256];
    for (int64_t r = a; r < b; r += 16) {
        const int64_t n = b - r < 16 ? b - r : 16;
        const uint8_t *group = j->src + (uint64_t)(r / 16) * gbytes;
        for (int64_t blk = 0; blk < nb; blk++) {
            ae_x16_unpack_group(j->w->type, group + (uint64_t)blk * block_group, blocks);
            for (int64_t i = 0; i < n; i++)
                memcpy(rows + (uint64_t)i * j->row_bytes + (uint64_t)blk * ti->block_bytes, blocks + i * ti->block_bytes,
                       ti->block_bytes);
        }
        memcpy(out + (uint64_t)(r - a) * j->row_bytes, rows, (size_t)((uint64_t)n * j->row_bytes));
    }
}

/* The rows of an upload: an interleaved weight's rows, or a weight in the rows layout as host_bytes rows
 * of one byte (it is copied as it is). Fails for a layout that cannot be unpacked. */
static int upload_rows(const struct ae_gpu_weight *w, int64_t *n, uint64_t *row_bytes, ae_error *err)
{
    *n = (int64_t)w->host_bytes;
    *row_bytes = 1;
    if (w->layout == AE_LAYOUT_ROWS)
        return 0;
    const struct ae_type_info *ti = ae_type_info(w->type);
    if (!ti || ae_layout_rows_per_group((enum ae_layout)w->layout) != 16 || ti->block_bytes > 256 || w->n <= 0 ||
        w->k < ti->block_size || ae_type_row_bytes(w->type, (uint64_t)w->k, row_bytes, err) < 0 ||
        ae_layout_group_bytes(w->type, (enum ae_layout)w->layout, w->k) == 0)
        return ae_fail(err, "a weight of type %s in layout %s cannot be unpacked for the device", ae_type_name(w->type),
                       ae_layout_name((enum ae_layout)w->layout));
    *n = w->n;
    return 0;
}

/* Copies every weight to its place in the device's weights buffer through one staging buffer, a chunk of
 * rows at a time, the pool's threads preparing each chunk (unpacking interleaved host copies to GGUF
 * rows on the way). */
static int upload_weights(struct ae_gpu *g, ae_error *err)
{
    const struct ae_gpu_model *m = g->m;
    uint64_t max_row = 0;
    for (uint32_t i = 0; i < m->n_weights; i++) {
        int64_t n;
        uint64_t row_bytes;
        if (upload_rows(&m->weights[i], &n, &row_bytes, err) < 0)
            return -1;
        if (row_bytes > max_row)
            max_row = row_bytes;
    }
    /* room for 16 rows of any weight, else the smaller of the weights and GPU_STAGING_BYTES */
    uint64_t staging = m->weights_bytes < GPU_STAGING_BYTES ? m->weights_bytes : GPU_STAGING_BYTES;
    if (staging < 16 * max_row)
        staging = 16 * max_row;
    const int threads = ae_pool_threads(g->p.pool);
    struct gpu_buffer st = {0};
    uint8_t *scratch = malloc((size_t)(16 * max_row * (uint64_t)threads) + 1);
    int rc = scratch ? gpu_buffer_create(&g->c, &st, staging, GPU_MEM_HOST, err)
                     : ae_fail(err, "out of memory for the weights' upload");
    for (uint32_t i = 0; i < m->n_weights && rc == 0; i++) {
        const struct ae_gpu_weight *w = &m->weights[i];
        struct upload_job j = {.w = w, .src = g->p.weights[w->slot], .dst = st.map, .scratch = scratch};
        upload_rows(w, &j.n, &j.row_bytes, err);
        const int64_t chunk = (int64_t)(staging / j.row_bytes) / 16 * 16;
        for (j.r0 = 0; j.r0 < j.n && rc == 0; j.r0 += chunk) {
            j.r1 = j.n - j.r0 < chunk ? j.n : j.r0 + chunk;
            /* about four tasks a thread, whole groups of 16 rows, none for a small chunk */
            const int64_t groups = (j.r1 - j.r0 + 15) / 16;
            const int64_t tasks = (j.r1 - j.r0) * (int64_t)j.row_bytes < (1 << 20) ? 1 : 4 * threads;
            j.per_task = 16 * ((groups + tasks - 1) / tasks);
            ae_pool_run(g->p.pool, upload_task, &j, (j.r1 - j.r0 + j.per_task - 1) / j.per_task);
            rc = gpu_copy(&g->c, &st, 0, &g->weights, w->offset + (uint64_t)j.r0 * j.row_bytes,
                          (uint64_t)(j.r1 - j.r0) * j.row_bytes, err);
        }
    }
    gpu_buffer_destroy(&g->c, &st);
    free(scratch);
    return rc;
}

/* Every dispatch names a kernel that exists and a reference the spaces hold. */
static int check_graph(const struct ae_gpu_model *m, const struct ae_gpu_graph *gr, const char *what, ae_error *err)
{
    for (uint32_t i = 0; i < gr->n_dispatch; i++)
        if (gr->dispatch[i].kernel >= m->n_kernels)
            return ae_fail(err, "the %s step's dispatch %" PRIu32 " names kernel %" PRIu32 " of %" PRIu32, what, i,
                           gr->dispatch[i].kernel, m->n_kernels);
    if (gr->logits_offset > m->arena_bytes)
        return ae_fail(err, "the %s step's logits lie outside the arena", what);
    return 0;
}

static int record(struct ae_gpu *g, int which, ae_error *err)
{
    const struct ae_gpu_graph *gr = g->graph[which];
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = g->c.pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkResult r = vk.AllocateCommandBuffers(g->c.dev, &ai, &g->cb[which]);
    if (r != VK_SUCCESS)
        return ae_fail(err, "vkAllocateCommandBuffers: %s", vk_result_name(r));
    struct gpu_spaces s = {.kv_k = g->kv_k, .kv_v = g->kv_v, .n_layer = g->p.n_layer};
    s.base[AE_GPU_STEP] = g->step.addr;
    s.base[AE_GPU_TOKENS] = g->tokens.addr;
    s.base[AE_GPU_WEIGHTS] = g->weights.addr;
    s.base[AE_GPU_ARENA] = g->arena.addr;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vk.BeginCommandBuffer(g->cb[which], &bi);
    if (g->kernel_ns && g->c.timestamp_period > 0) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = gr->n_dispatch + 1};
        if ((r = vk.CreateQueryPool(g->c.dev, &qi, NULL, &g->timestamps[which])) != VK_SUCCESS)
            return ae_fail(err, "vkCreateQueryPool: %s", vk_result_name(r));
    }
    if (gpu_record(&g->c, g->cb[which], g->pipes, gr->dispatch, gr->n_dispatch, &s, which ? &g->indirect : NULL, 1,
                   g->timestamps[which], err) < 0)
        return ae_fail_prefix(err, "recording the %s step", which ? "prefill" : "decode");
    VkMemoryBarrier to_copy = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
    vk.CmdPipelineBarrier(g->cb[which], VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &to_copy, 0,
                          NULL, 0, NULL);
    VkBufferCopy region = {.srcOffset = gr->logits_offset, .dstOffset = 0, .size = 4 * (uint64_t)g->p.n_vocab};
    vk.CmdCopyBuffer(g->cb[which], g->arena.buf, g->logits.buf, 1, &region);
    VkMemoryBarrier to_host = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vk.CmdPipelineBarrier(g->cb[which], VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, NULL, 0,
                          NULL);
    if ((r = vk.EndCommandBuffer(g->cb[which])) != VK_SUCCESS)
        return ae_fail(err, "vkEndCommandBuffer: %s", vk_result_name(r));
    return 0;
}

/* The variant of a step that the device runs: the faster one where it has all it needs. */
static const struct ae_gpu_graph *pick(const struct ae_gpu_graph g[2], uint32_t has)
{
    return g[1].n_dispatch > 0 && (g[1].needs & has) == g[1].needs ? &g[1] : &g[0];
}

ae_gpu *ae_gpu_create(const struct ae_gpu_model *m, const struct ae_gpu_params *p, ae_error *err)
{
    for (int v = 0; v < 2; v++)
        if (check_graph(m, &m->prefill[v], "prefill", err) < 0 || check_graph(m, &m->decode[v], "decode", err) < 0)
            return NULL;
    if (p->n_vocab <= 0 || p->t_max <= 0 || p->n_ctx <= 0 || p->n_layer < 0 ||
        (p->kv_type != AE_TYPE_F16 && p->kv_type != AE_TYPE_F32)) {
        ae_fail(err, "the GPU run's parameters are inconsistent");
        return NULL;
    }
    struct ae_gpu *g = calloc(1, sizeof *g);
    if (!g) {
        ae_fail(err, "out of memory");
        return NULL;
    }
    g->m = m;
    g->p = *p;
    double t0 = now_ms();
    if (gpu_ctx_open(&g->c, p->device, err) < 0) {
        free(g);
        return NULL;
    }
    g->graph[0] = pick(m->decode, gpu_ctx_has(&g->c));
    g->graph[1] = pick(m->prefill, gpu_ctx_has(&g->c));
    const char *prof = getenv("AETHER_GPU_PROFILE");
    if (prof && *prof && strcmp(prof, "0") != 0)
        g->kernel_ns = calloc(m->n_kernels ? m->n_kernels : 1, sizeof *g->kernel_ns);
    const uint64_t k_layer = kv_layer_bytes(p, p->head_dim_k), v_layer = kv_layer_bytes(p, p->head_dim_v);
    const size_t n_layer = p->n_layer > 0 ? (size_t)p->n_layer : 1;
    g->kv_k = calloc(n_layer, sizeof *g->kv_k);
    g->kv_v = calloc(n_layer, sizeof *g->kv_v);
    if (!g->kv_k || !g->kv_v) {
        ae_fail(err, "out of memory");
        goto fail;
    }
    if (gpu_buffer_create(&g->c, &g->weights, m->weights_bytes, GPU_MEM_DEVICE, err) < 0 ||
        gpu_buffer_create(&g->c, &g->arena, m->arena_bytes, GPU_MEM_DEVICE, err) < 0 ||
        gpu_buffer_create(&g->c, &g->kv, (k_layer + v_layer) * (uint64_t)p->n_layer, GPU_MEM_DEVICE, err) < 0 ||
        gpu_buffer_create(&g->c, &g->step, sizeof(struct ae_gpu_step), GPU_MEM_HOST, err) < 0 ||
        gpu_buffer_create(&g->c, &g->tokens, 4 * (uint64_t)p->t_max, GPU_MEM_HOST, err) < 0 ||
        gpu_buffer_create(&g->c, &g->indirect, sizeof(VkDispatchIndirectCommand) * (g->graph[1]->n_dispatch + 1),
                          GPU_MEM_HOST, err) < 0 ||
        gpu_buffer_create(&g->c, &g->logits, 4 * (uint64_t)p->n_vocab, GPU_MEM_READBACK, err) < 0)
        goto fail;
    for (int32_t l = 0; l < p->n_layer; l++) {
        g->kv_k[l] = g->kv.addr + (uint64_t)l * (k_layer + v_layer);
        g->kv_v[l] = g->kv_k[l] + k_layer;
    }
    g->device_ms = now_ms() - t0;
    t0 = now_ms();
    if (upload_weights(g, err) < 0)
        goto fail;
    g->upload_ms = now_ms() - t0;
    t0 = now_ms();
    if (make_pipelines(g, err) < 0)
        goto fail;
    g->pipelines_ms = now_ms() - t0;
    if (record(g, 0, err) < 0 || record(g, 1, err) < 0)
        goto fail;
    return g;
fail:
    ae_fail_prefix(err, "Vulkan device %" PRIu32 " (%s)", p->device, g->c.name[0] ? g->c.name : "?");
    ae_gpu_destroy(g);
    return NULL;
}

/* ---- Steps ------------------------------------------------------------------------------------------- */

/* Adds the last step's dispatch times to the profile. */
static void profile_add(struct ae_gpu *g, int which)
{
    const struct ae_gpu_graph *gr = g->graph[which];
    uint64_t *t = malloc((gr->n_dispatch + 1) * sizeof *t);
    if (t && vk.GetQueryPoolResults(g->c.dev, g->timestamps[which], 0, gr->n_dispatch + 1, (gr->n_dispatch + 1) * sizeof *t,
                                    t, sizeof *t, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS) {
        for (uint32_t i = 0; i < gr->n_dispatch; i++)
            g->kernel_ns[gr->dispatch[i].kernel] += (double)(t[i + 1] - t[i]) * g->c.timestamp_period;
        g->step_ns[which] += (double)(t[gr->n_dispatch] - t[0]) * g->c.timestamp_period;
        g->steps[which]++;
    }
    free(t);
}

/* Prints the profile to stderr, kernels by device time. */
static void profile_print(const struct ae_gpu *g)
{
    static const char *const kind[2] = {"decode", "prefill"};
    for (int w = 0; w < 2; w++)
        if (g->steps[w])
            fprintf(stderr, "profile: %s: %" PRIu32 " steps, %.3f ms of device time each (%" PRIu32 " dispatches)\n", kind[w],
                    g->steps[w], g->step_ns[w] / 1e6 / g->steps[w], g->graph[w]->n_dispatch);
    double total = 0;
    for (uint32_t k = 0; k < g->m->n_kernels; k++)
        total += g->kernel_ns[k];
    for (;;) {
        uint32_t best = UINT32_MAX;
        for (uint32_t k = 0; k < g->m->n_kernels; k++)
            if (g->kernel_ns[k] > 0 && (best == UINT32_MAX || g->kernel_ns[k] > g->kernel_ns[best]))
                best = k;
        if (best == UINT32_MAX)
            break;
        fprintf(stderr, "profile: %-28s %10.3f ms %5.1f%%\n", g->m->kernels[best].name, g->kernel_ns[best] / 1e6,
                100.0 * g->kernel_ns[best] / total);
        g->kernel_ns[best] = 0;
    }
}

int ae_gpu_step(ae_gpu *g, bool prefill, const int32_t *tokens, int32_t T, int32_t P, float *logits, ae_error *err)
{
    if (T < 1 || T > g->p.t_max || (!prefill && T != 1) || P < 0 || T > g->p.n_ctx - P)
        return ae_fail(err, "a step of %" PRId32 " tokens at position %" PRId32 " does not fit (at most %" PRId32
                       " tokens, a context of %" PRId32 ")", T, P, prefill ? g->p.t_max : 1, g->p.n_ctx);
    for (int32_t i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= g->p.n_vocab)
            return ae_fail(err, "token id %" PRId32 " is outside the vocabulary (0..%" PRId32 ")", tokens[i], g->p.n_vocab - 1);
    const struct ae_gpu_step st = {T, P, g->p.n_ctx, g->p.kv_type == AE_TYPE_F32};
    memcpy(g->step.map, &st, sizeof st);
    memcpy(g->tokens.map, tokens, (size_t)T * sizeof *tokens);
    if (prefill)
        gpu_indirect_fill(g->graph[1]->dispatch, g->graph[1]->n_dispatch, T, g->indirect.map);
    if (gpu_submit_wait(&g->c, g->cb[prefill], err) < 0)
        return -1;
    memcpy(logits, g->logits.map, 4 * (size_t)g->p.n_vocab);
    if (g->timestamps[prefill])
        profile_add(g, prefill);
    return 0;
}

const char *ae_gpu_name(const ae_gpu *g) { return g->c.name; }

void ae_gpu_describe(const ae_gpu *g, char *buf, size_t size)
{
    const uint32_t needs = g->graph[0]->needs | g->graph[1]->needs;
    snprintf(buf, size, "%s", needs & AE_GPU_NEED_COOPMAT_NV ? "cooperative matrices" : "portable kernels");
}

void ae_gpu_startup_ms(const ae_gpu *g, double *device_ms, double *upload_ms, double *pipelines_ms)
{
    *device_ms = g->device_ms;
    *upload_ms = g->upload_ms;
    *pipelines_ms = g->pipelines_ms;
}

void ae_gpu_destroy(ae_gpu *g)
{
    if (!g)
        return;
    if (g->kernel_ns && (g->steps[0] || g->steps[1]))
        profile_print(g);
    if (g->c.dev) {
        vk.QueueWaitIdle(g->c.queue);
        for (int w = 0; w < 2; w++)
            if (g->timestamps[w])
                vk.DestroyQueryPool(g->c.dev, g->timestamps[w], NULL);
        if (g->pipes)
            gpu_pipelines_destroy(&g->c, g->pipes, g->m->n_kernels);
        struct gpu_buffer *bufs[] = {&g->weights, &g->arena, &g->kv, &g->step, &g->tokens, &g->indirect, &g->logits};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i]->buf)
                gpu_buffer_destroy(&g->c, bufs[i]);
    }
    gpu_ctx_close(&g->c);
    free(g->pipes);
    free(g->kernel_ns);
    free(g->kv_k);
    free(g->kv_v);
    free(g);
}

const struct ae_gpu_runtime ae_gpu_runtime = {
    .devices = ae_gpu_devices,
    .bytes_needed = ae_gpu_bytes_needed,
    .create = ae_gpu_create,
    .step = ae_gpu_step,
    .name = ae_gpu_name,
    .describe = ae_gpu_describe,
    .startup_ms = ae_gpu_startup_ms,
    .destroy = ae_gpu_destroy,
};
