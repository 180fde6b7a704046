/* The Vulkan kernels, each against the CPU kernels or a double-precision reference, on the first usable
 * Vulkan device (lavapipe in CI: mesa-vulkan-drivers, a Vulkan 1.3 device on the CPU).
 *
 * Each test compiles its kernel from shaders/ the way aetherc does (spirv_source, spirv_compile), makes
 * the buffers of one step (the step's T and P, token ids, weights, arena, KV cache) on the device,
 * records one dispatch as a program would and compares what comes back. Weights are random blocks of
 * each type with sane scales, so every bit of every layout is exercised. A machine without a usable
 * Vulkan device fails these tests: they do not skip.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_kernels.h"
#include "ae_types.h"
#include "gpu_internal.h"
#include "spirv.h"
#include "test_util.h"

/* ---- A device with the buffers of one step ------------------------------------------------------------ */

#define FX_BYTES (4u << 20)

static struct fixture {
    bool open;
    struct gpu_ctx c;
    struct gpu_buffer step, tokens, weights, arena, kv;
    VkDeviceAddress kv_k[2], kv_v[2];
    struct gpu_spaces s;
} fx;

static void fx_open(void)
{
    if (fx.open)
        return;
    struct ae_gpu_device dev[AE_GPU_MAX_DEVICES];
    uint32_t n;
    char why[256];
    ae_gpu_devices(dev, &n, why, sizeof why);
    ck_assert_msg(n > 0, "no Vulkan device: %s (install mesa-vulkan-drivers)", why);
    uint32_t use = n;
    for (uint32_t i = 0; i < n && use == n; i++)
        if (dev[i].usable)
            use = i;
    ck_assert_msg(use < n, "no usable Vulkan device: %s %s", dev[0].name, dev[0].why_not);
    ae_error err = {{0}};
    ck_assert_msg(gpu_ctx_open(&fx.c, use, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_buffer_create(&fx.c, &fx.step, 16, GPU_MEM_HOST, &err) == 0 &&
                  gpu_buffer_create(&fx.c, &fx.tokens, 4096, GPU_MEM_HOST, &err) == 0 &&
                  gpu_buffer_create(&fx.c, &fx.weights, FX_BYTES, GPU_MEM_DEVICE, &err) == 0 &&
                  gpu_buffer_create(&fx.c, &fx.arena, FX_BYTES, GPU_MEM_DEVICE, &err) == 0 &&
                  gpu_buffer_create(&fx.c, &fx.kv, FX_BYTES, GPU_MEM_DEVICE, &err) == 0, "%s", err.msg);
    fx.s.base[AE_GPU_STEP] = fx.step.addr;
    fx.s.base[AE_GPU_TOKENS] = fx.tokens.addr;
    fx.s.base[AE_GPU_WEIGHTS] = fx.weights.addr;
    fx.s.base[AE_GPU_ARENA] = fx.arena.addr;
    for (int l = 0; l < 2; l++) {
        fx.kv_k[l] = fx.kv.addr + (uint64_t)l * FX_BYTES / 4;
        fx.kv_v[l] = fx.kv.addr + (uint64_t)(l + 2) * FX_BYTES / 4;
    }
    fx.s.kv_k = fx.kv_k;
    fx.s.kv_v = fx.kv_v;
    fx.s.n_layer = 2;
    fx.open = true;
}

static void fx_put(struct gpu_buffer *b, uint64_t off, const void *data, uint64_t size)
{
    ae_error err = {{0}};
    ck_assert_msg(gpu_upload(&fx.c, b, off, data, size, &err) == 0, "%s", err.msg);
}

static void fx_get(struct gpu_buffer *b, uint64_t off, void *data, uint64_t size)
{
    ae_error err = {{0}};
    ck_assert_msg(gpu_download(&fx.c, b, off, data, size, &err) == 0, "%s", err.msg);
}

/* Compiles kernel with defines, runs dispatch d at step (T, P) and waits. */
static void fx_run(const char *kernel, const char *defines, struct ae_gpu_dispatch d, int32_t T, int32_t P, bool kv_f32)
{
    ae_error err = {{0}};
    char *text = spirv_source(kernel, defines, &err);
    ck_assert_msg(text, "%s", err.msg);
    uint32_t *words;
    size_t n_words;
    ck_assert_msg(spirv_compile(text, kernel, &words, &n_words, &err) == 0, "%s", err.msg);
    free(text);
    struct ae_gpu_kernel k = {kernel, words, (uint32_t)n_words, 0};
    VkPipeline pipe;
    ck_assert_msg(gpu_pipelines_create(&fx.c, &k, 1, NULL, kv_f32, VK_NULL_HANDLE, NULL, &pipe, &err) == 0, "%s", err.msg);
    struct ae_gpu_step st = {T, P, 64, kv_f32};
    fx_put(&fx.step, 0, &st, sizeof st);
    d.kernel = 0;
    d.ref[0] = (struct ae_gpu_ref){AE_GPU_STEP, 0, 0};
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vk.BeginCommandBuffer(fx.c.cmd, &bi);
    ck_assert_msg(gpu_record(&fx.c, fx.c.cmd, &pipe, &d, 1, &fx.s, NULL, T, VK_NULL_HANDLE, &err) == 0, "%s", err.msg);
    vk.EndCommandBuffer(fx.c.cmd);
    ck_assert_msg(gpu_submit_wait(&fx.c, fx.c.cmd, &err) == 0, "%s", err.msg);
    gpu_pipelines_destroy(&fx.c, &pipe, 1);
    free(words);
}

static struct ae_gpu_ref arena(uint64_t off) { return (struct ae_gpu_ref){AE_GPU_ARENA, 0, off}; }
static struct ae_gpu_ref weights(uint64_t off) { return (struct ae_gpu_ref){AE_GPU_WEIGHTS, 0, off}; }

/* ---- Random data --------------------------------------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rnd_float(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() % 1000000) / 1e6f; }

static void put_half(uint8_t *p, float v)
{
    uint16_t h = ae_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* The half-precision scale fields of a block of each type: their byte offsets, -1 ended. */
static const int *half_fields(uint32_t type)
{
    static const int q_d[] = {0, -1}, q_dm[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1}, q6k[] = {208, -1};
    static const int tq1[] = {52, -1}, tq2[] = {64, -1};
    switch (type) {
    case AE_TYPE_Q4_0: case AE_TYPE_Q5_0: case AE_TYPE_Q8_0: case AE_TYPE_IQ4_NL: case AE_TYPE_IQ4_XS: return q_d;
    case AE_TYPE_TQ1_0: return tq1;
    case AE_TYPE_TQ2_0: return tq2;
    case AE_TYPE_Q4_1: case AE_TYPE_Q5_1: case AE_TYPE_Q4_K: case AE_TYPE_Q5_K: return q_dm;
    case AE_TYPE_Q2_K: return q2k;
    case AE_TYPE_Q3_K: return q3k;
    case AE_TYPE_Q6_K: return q6k;
    default: return NULL;
    }
}

/* rows x n values of a type, random but finite: bytes at random, scales set to small halves. */
static uint8_t *random_rows(uint32_t type, int64_t rows, int64_t n, uint64_t *row_bytes)
{
    const struct ae_type_info *t = ae_type_info(type);
    ck_assert(t && n % t->block_size == 0);
    *row_bytes = (uint64_t)(n / t->block_size) * t->block_bytes;
    uint8_t *w = malloc(*row_bytes * (uint64_t)rows);
    ck_assert(w);
    if (type == AE_TYPE_F32 || type == AE_TYPE_F16 || type == AE_TYPE_BF16) {
        for (int64_t i = 0; i < rows * n; i++) {
            float v = rnd_float(-1.0f, 1.0f);
            if (type == AE_TYPE_F32)
                memcpy(w + 4 * i, &v, 4);
            else {
                uint16_t h = type == AE_TYPE_F16 ? ae_fp32_to_fp16(v) : ae_fp32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return w;
    }
    for (uint64_t i = 0; i < *row_bytes * (uint64_t)rows; i++)
        w[i] = (uint8_t)rnd();
    const int *f = half_fields(type);
    ck_assert_msg(f, "no scale fields for %s", t->name);
    for (int64_t b = 0; b < rows * n / t->block_size; b++)
        for (int j = 0; f[j] >= 0; j++)
            put_half(w + (uint64_t)b * t->block_bytes + f[j], rnd_float(0.001f, 0.05f) * (rnd() & 1 ? 1.0f : -1.0f));
    return w;
}

static void random_floats(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rnd_float(lo, hi);
}

/* "WTYPE <id>" for a type. */
static const char *wtype_define(uint32_t type)
{
    static char buf[32];
    snprintf(buf, sizeof buf, "WTYPE %" PRIu32 "\n", type);
    return buf;
}

/* Every weight type the CPU path supports, with the row length the tests use. */
static const struct {
    uint32_t type;
    int64_t n;
} weight_types[] = {
    {AE_TYPE_F32, 172}, {AE_TYPE_F16, 172}, {AE_TYPE_BF16, 172}, {AE_TYPE_Q4_0, 256}, {AE_TYPE_Q4_1, 256},
    {AE_TYPE_Q5_0, 256}, {AE_TYPE_Q5_1, 256}, {AE_TYPE_Q8_0, 256}, {AE_TYPE_Q2_K, 512}, {AE_TYPE_Q3_K, 512},
    {AE_TYPE_Q4_K, 512}, {AE_TYPE_Q5_K, 512}, {AE_TYPE_Q6_K, 512}, {AE_TYPE_IQ4_NL, 256}, {AE_TYPE_IQ4_XS, 512},
    {AE_TYPE_TQ1_0, 512}, {AE_TYPE_TQ2_0, 512},
};
#define N_WEIGHT_TYPES ((int)(sizeof weight_types / sizeof weight_types[0]))

/* ---- Tests --------------------------------------------------------------------------------------------- */

/* get_rows dequantizes rows exactly as the CPU does (up to a contracted multiply-add: 1 ulp). */
START_TEST(test_get_rows_every_type)
{
    fx_open();
    const uint32_t type = weight_types[_i].type;
    const int64_t n = weight_types[_i].n, vocab = 5;
    uint64_t row_bytes;
    uint8_t *w = random_rows(type, vocab, n, &row_bytes);
    fx_put(&fx.weights, 256, w, row_bytes * vocab);
    const int32_t ids[4] = {3, 0, 4, 7};
    fx_put(&fx.tokens, 0, ids, sizeof ids);
    struct ae_gpu_dispatch d = {.groups = {(uint32_t)(n / 8 + 63) / 64, 1, 1}, .per_t = {0, 1, 0}};
    d.ref[1] = (struct ae_gpu_ref){AE_GPU_TOKENS, 0, 0};
    d.ref[2] = weights(256);
    d.ref[3] = arena(0);
    d.k[0] = (uint32_t)n;
    d.k[1] = (uint32_t)vocab;
    fx_run("get_rows.comp", wtype_define(type), d, 4, 0, false);
    float *got = malloc(4 * n * sizeof *got), *want = malloc(n * sizeof *want);
    fx_get(&fx.arena, 0, got, 4 * n * sizeof *got);
    ae_error err = {{0}};
    for (int r = 0; r < 4; r++) {
        if (ids[r] >= vocab) {
            for (int64_t i = 0; i < n; i++)
                ck_assert_msg(got[r * n + i] == 0.0f, "%s: an id outside the vocabulary gives zeros", ae_type_name(type));
            continue;
        }
        ck_assert_msg(ae_dequantize_row(type, w + ids[r] * row_bytes, want, n, &err) == 0, "%s", err.msg);
        for (int64_t i = 0; i < n; i++) {
            const float g = got[r * n + i], e = want[i];
            ck_assert_msg(fabsf(g - e) <= 2e-7f * fabsf(e) + 1e-12f, "%s row %d value %" PRId64 ": %.9g, CPU %.9g",
                          ae_type_name(type), ids[r], i, (double)g, (double)e);
        }
    }
    free(got);
    free(want);
    free(w);
}
END_TEST

/* The generic decode matvec against a double-precision product of the dequantized weights. */
START_TEST(test_matvec_every_type)
{
    fx_open();
    const uint32_t type = weight_types[_i].type;
    const int64_t K = weight_types[_i].n * 2, N = 37;
    uint64_t row_bytes;
    uint8_t *w = random_rows(type, N, K, &row_bytes);
    float *x = malloc(K * sizeof *x), *y = malloc(N * sizeof *y), *row = malloc(K * sizeof *row);
    random_floats(x, K, -1.0f, 1.0f);
    fx_put(&fx.weights, 0, w, row_bytes * N);
    fx_put(&fx.arena, 0, x, K * sizeof *x);
    struct ae_gpu_dispatch d = {.groups = {(uint32_t)(N + 7) / 8, 1, 1}};
    d.ref[1] = arena(0);
    d.ref[2] = weights(0);
    d.ref[3] = arena(65536);
    d.k[0] = (uint32_t)N;
    d.k[1] = (uint32_t)K;
    fx_run("matvec.comp", wtype_define(type), d, 1, 0, false);
    fx_get(&fx.arena, 65536, y, N * sizeof *y);
    ae_error err = {{0}};
    for (int64_t r = 0; r < N; r++) {
        ck_assert_msg(ae_dequantize_row(type, w + r * row_bytes, row, K, &err) == 0, "%s", err.msg);
        double want = 0, mag = 0;
        for (int64_t i = 0; i < K; i++) {
            want += (double)row[i] * x[i];
            mag += fabs((double)row[i] * x[i]);
        }
        ck_assert_msg(fabs(y[r] - want) <= 1e-5 * mag + 1e-6, "%s row %" PRId64 ": %.7g, want %.7g", ae_type_name(type), r,
                      (double)y[r], want);
    }
    free(w);
    free(x);
    free(y);
    free(row);
}
END_TEST


/* The prefill matmul against a double-precision product, and each row's result the same bits whether the
 * step has 70 rows or 1. */
START_TEST(test_matmul_every_type)
{
    fx_open();
    const uint32_t type = weight_types[_i].type;
    const int64_t K = weight_types[_i].n, N = 70, M = 67;
    uint64_t row_bytes;
    uint8_t *w = random_rows(type, N, K, &row_bytes);
    float *x = malloc(M * K * sizeof *x), *y = malloc(M * N * sizeof *y), *y1 = malloc(N * sizeof *y1);
    float *row = malloc(K * sizeof *row);
    random_floats(x, M * K, -1.0f, 1.0f);
    fx_put(&fx.weights, 0, w, row_bytes * N);
    fx_put(&fx.arena, 0, x, M * K * sizeof *x);
    struct ae_gpu_dispatch d = {.groups = {(uint32_t)(N + 63) / 64, 1, 1}, .per_t = {0, 64, 0}};
    d.ref[1] = arena(0);
    d.ref[2] = weights(0);
    d.ref[3] = arena(1 << 20);
    d.k[0] = (uint32_t)N;
    d.k[1] = (uint32_t)K;
    d.k[2] = 1;
    d.k[3] = 1;
    fx_run("matmul.comp", wtype_define(type), d, (int32_t)M, 0, false);
    fx_get(&fx.arena, 1 << 20, y, M * N * sizeof *y);
    fx_run("matmul.comp", wtype_define(type), d, 1, 0, false);
    fx_get(&fx.arena, 1 << 20, y1, N * sizeof *y1);
    ck_assert_msg(memcmp(y, y1, N * sizeof *y) == 0, "%s: row 0 differs between a step of %d rows and of 1",
                  ae_type_name(type), (int)M);
    ae_error err = {{0}};
    for (int64_t n = 0; n < N; n++) {
        ck_assert_msg(ae_dequantize_row(type, w + n * row_bytes, row, K, &err) == 0, "%s", err.msg);
        for (int64_t m = 0; m < M; m++) {
            double want = 0, mag = 0;
            for (int64_t i = 0; i < K; i++) {
                want += (double)row[i] * x[m * K + i];
                mag += fabs((double)row[i] * x[m * K + i]);
            }
            ck_assert_msg(fabs(y[m * N + n] - want) <= 1e-5 * mag + 1e-6, "%s [%" PRId64 ", %" PRId64 "]: %.7g, want %.7g",
                          ae_type_name(type), m, n, (double)y[m * N + n], want);
        }
    }
    free(w);
    free(x);
    free(y);
    free(y1);
    free(row);
}
END_TEST

static void assert_close(const char *what, const float *got, const float *want, int64_t n, double rel, double abs_tol)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= rel * fabs((double)want[i]) + abs_tol, "%s [%" PRId64 "]: %.7g, CPU %.7g",
                      what, i, (double)got[i], (double)want[i]);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* rms_norm with a weight and a residual added by its epilogue (rms_norm_mul's three sources), against
 * ae_rms_norm. */
START_TEST(test_rms_norm)
{
    fx_open();
    enum { R = 3, D = 300 };
    float x[R * D], w[D], res[R * D], y[R * D], want[R * D];
    random_floats(x, R * D, -2, 2);
    random_floats(w, D, 0.5f, 1.5f);
    random_floats(res, R * D, -1, 1);
    fx_put(&fx.arena, 0, x, sizeof x);
    fx_put(&fx.arena, 8192, w, sizeof w);
    fx_put(&fx.arena, 16384, res, sizeof res);
    struct ae_gpu_dispatch d = {.groups = {R, 1, 1}};
    d.ref[1] = arena(0);
    d.ref[2] = arena(8192);
    d.ref[3] = arena(32768);
    d.ref[4] = arena(16384);
    d.k[0] = D;
    d.k[3] = bits(1e-5f);
    fx_run("rms_norm.comp", "EPILOGUE(v, r, c, n) v = v + ew_operand(4, r, c, n);", d, 1, 0, false);
    fx_get(&fx.arena, 32768, y, sizeof y);
    ae_rms_norm(x, w, want, R, D, 1e-5f);
    for (int i = 0; i < R * D; i++)
        want[i] += res[i];
    assert_close("rms_norm", y, want, R * D, 1e-5, 1e-6);
}
END_TEST

START_TEST(test_softmax)
{
    fx_open();
    enum { R = 2, D = 1000 };
    float x[R * D], y[R * D], want[R * D];
    random_floats(x, R * D, -8, 8);
    fx_put(&fx.arena, 0, x, sizeof x);
    struct ae_gpu_dispatch d = {.groups = {R, 1, 1}};
    d.ref[1] = arena(0);
    d.ref[3] = arena(16384);
    d.k[0] = D;
    d.k[3] = bits(0.5f);
    fx_run("softmax.comp", "", d, 1, 0, false);
    fx_get(&fx.arena, 16384, y, sizeof y);
    for (int i = 0; i < R * D; i++)
        want[i] = x[i] * 0.5f;
    ae_softmax(want, want, R, D);
    assert_close("softmax", y, want, R * D, 1e-5, 1e-9);
}
END_TEST

/* rope, normal and neox, rotating part of each head, with frequency factors, attention factor and a
 * large position, against ae_rope. */
START_TEST(test_rope)
{
    fx_open();
    enum { T = 3, H = 4, HD = 40, NROT = 32 };
    const int32_t P = 3000;
    float x[T * H * HD], ff[NROT / 2], y[T * H * HD], want[T * H * HD];
    random_floats(x, T * H * HD, -1, 1);
    random_floats(ff, NROT / 2, 1, 4);
    fx_put(&fx.arena, 0, x, sizeof x);
    fx_put(&fx.arena, 4096, ff, sizeof ff);
    for (int neox = 0; neox < 2; neox++) {
        const float base = 10000.0f, fscale = 0.5f, attn = neox ? 0.75f : 1.0f;
        struct ae_gpu_dispatch d = {.groups = {H, 1, 1}, .per_t = {0, 1, 0}};
        d.ref[1] = arena(0);
        d.ref[2] = arena(8192);
        d.ref[3] = neox ? arena(4096) : (struct ae_gpu_ref){0};
        d.k[1] = HD;
        d.k[2] = NROT;
        d.k[3] = (uint32_t)neox;
        d.k[4] = bits(powf(base, -2.0f / NROT));
        d.k[5] = bits(fscale);
        d.k[6] = bits(attn);
        fx_run("rope.comp", "", d, T, P, false);
        fx_get(&fx.arena, 8192, y, sizeof y);
        struct ae_rope_params rp = {NROT, neox, base, fscale, neox ? ff : NULL};
        ae_error err = {{0}};
        ck_assert(ae_rope(x, want, T, H, HD, P, &rp, &err) == 0);
        for (int t = 0; t < T * H; t++)
            for (int i = 0; i < NROT; i++)
                want[t * HD + i] *= attn;
        assert_close(neox ? "rope neox" : "rope", y, want, T * H * HD, 1e-4, 1e-4);
    }
}
END_TEST

/* kv_store then attention, against ae_kv_store and ae_attention on the same caches: f16 and f32 caches,
 * grouped heads, a sliding window, a softcap. */
START_TEST(test_attention)
{
    fx_open();
    enum { T = 5, P = 70, H = 4, HKV = 2, DK = 48, DV = 40, CTX = 128 };
    static const struct {
        bool f32;
        float scale, softcap;
        uint32_t window;
    } cases[] = {{false, 0.15f, 0, 0}, {true, 0.15f, 0, 0}, {false, 1.0f, 20.0f, 0}, {false, 0.15f, 0, 33}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bool f32 = cases[c].f32;
        const size_t elt = f32 ? 4 : 2;
        float *k_all = malloc((size_t)(P + T) * HKV * DK * 4), *v_all = malloc((size_t)(P + T) * HKV * DV * 4);
        float q[T * H * DK], out[T * H * DV], want[T * H * DV];
        random_floats(k_all, (P + T) * HKV * DK, -1, 1);
        random_floats(v_all, (P + T) * HKV * DV, -1, 1);
        random_floats(q, T * H * DK, -1, 1);
        uint8_t *kc = calloc(CTX * HKV * DK, elt), *vc = calloc(CTX * HKV * DV, elt);
        ae_error err = {{0}};
        const uint32_t kv_type = f32 ? AE_TYPE_F32 : AE_TYPE_F16;
        ck_assert(ae_kv_store(kv_type, kc, CTX, HKV * DK, 0, k_all, P, &err) == 0);
        ck_assert(ae_kv_store(kv_type, vc, CTX, HKV * DV, 0, v_all, P, &err) == 0);
        fx_put(&fx.kv, 0, kc, (size_t)CTX * HKV * DK * elt);
        fx_put(&fx.kv, FX_BYTES / 2, vc, (size_t)CTX * HKV * DV * elt);
        /* This step's rows, stored by the kernel. */
        fx_put(&fx.arena, 0, k_all + P * HKV * DK, (size_t)T * HKV * DK * 4);
        fx_put(&fx.arena, 65536, v_all + P * HKV * DV, (size_t)T * HKV * DV * 4);
        fx_put(&fx.arena, 131072, q, sizeof q);
        for (int kv = 0; kv < 2; kv++) {
            struct ae_gpu_dispatch st = {.groups = {1, 1, 1}, .per_t = {0, 1, 0}};
            st.ref[1] = arena(kv ? 65536 : 0);
            st.ref[2] = (struct ae_gpu_ref){kv ? AE_GPU_KV_V : AE_GPU_KV_K, 0, 0};
            st.k[0] = kv ? HKV * DV : HKV * DK;
            fx_run("kv_store.comp", "", st, T, P, f32);
        }
        struct ae_gpu_dispatch d = {.groups = {H, 1, 1}, .per_t = {0, 1, 0}};
        d.ref[1] = arena(131072);
        d.ref[2] = (struct ae_gpu_ref){AE_GPU_KV_K, 0, 0};
        d.ref[3] = (struct ae_gpu_ref){AE_GPU_KV_V, 0, 0};
        d.ref[4] = arena(196608);
        d.k[0] = H;
        d.k[1] = HKV;
        d.k[2] = DK;
        d.k[3] = DV;
        d.k[4] = bits(cases[c].scale);
        d.k[5] = bits(cases[c].softcap);
        d.k[6] = cases[c].window;
        fx_run("attention.comp", "", d, T, P, f32);
        fx_get(&fx.arena, 196608, out, sizeof out);
        /* The cache rows the kernel stored, as ae_kv_store stores them. */
        uint8_t *got_k = malloc((size_t)CTX * HKV * DK * elt);
        fx_get(&fx.kv, 0, got_k, (size_t)CTX * HKV * DK * elt);
        ck_assert(ae_kv_store(kv_type, kc, CTX, HKV * DK, P, k_all + P * HKV * DK, T, &err) == 0);
        ck_assert(ae_kv_store(kv_type, vc, CTX, HKV * DV, P, v_all + P * HKV * DV, T, &err) == 0);
        ck_assert_msg(memcmp(got_k, kc, (size_t)(P + T) * HKV * DK * elt) == 0, "kv_store: the K rows differ from the CPU's");
        struct ae_attn_params ap = {.n_tokens = T, .pos0 = P, .n_ctx = CTX, .n_head = H, .n_head_kv = HKV, .head_dim_k = DK,
                                    .head_dim_v = DV, .kv_type = kv_type, .scale = cases[c].scale,
                                    .softcap = cases[c].softcap, .window = cases[c].window};
        void *scratch = malloc(ae_attention_scratch_size(&ap, 1));
        ck_assert_msg(ae_attention(&ap, q, kc, vc, want, scratch, NULL, &err) == 0, "%s", err.msg);
        char what[64];
        snprintf(what, sizeof what, "attention case %zu", c);
        assert_close(what, out, want, T * H * DV, 2e-3, 2e-3);
        free(scratch);
        free(got_k);
        free(kc);
        free(vc);
        free(k_all);
        free(v_all);
    }
}
END_TEST

/* A fused elementwise group: silu, times a full operand, plus a broadcast row, scaled, gelu, softcap. */
START_TEST(test_ew_steps)
{
    fx_open();
    enum { R = 3, D = 300 };
    float x[R * D], a[R * D], b[D], y[R * D], want[R * D];
    random_floats(x, R * D, -3, 3);
    random_floats(a, R * D, -2, 2);
    random_floats(b, D, -1, 1);
    fx_put(&fx.arena, 0, x, sizeof x);
    fx_put(&fx.arena, 8192, a, sizeof a);
    fx_put(&fx.arena, 16384, b, sizeof b);
    struct ae_gpu_dispatch d = {.groups = {(D + 255) / 256, R, 1}};
    d.ref[1] = arena(0);
    d.ref[2] = arena(32768);
    d.ref[3] = arena(8192);
    d.ref[4] = arena(16384);
    d.k[0] = D;
    fx_run("ew.comp",
           "EPILOGUE(v, r, c, n) v = ew_silu(v); v = v * ew_operand(3, r, c, n); v = v + ew_row_operand(4, c); "
           "v = v * 0.5; v = ew_gelu(v); v = ew_softcap(v, 3.0);", d, 1, 0, false);
    fx_get(&fx.arena, 32768, y, sizeof y);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < D; c++) {
            float v = x[r * D + c];
            ae_silu(&v, &v, 1);
            v = v * a[r * D + c];
            v = v + b[c];
            v = v * 0.5f;
            ae_gelu(&v, &v, 1);
            ae_softcap(&v, &v, 1, 3.0f);
            want[r * D + c] = v;
        }
    assert_close("ew", y, want, R * D, 2e-3, 1e-5);
}
END_TEST

/* copy: a slice along the last axis, and the last row of a T-row value. */
START_TEST(test_copy)
{
    fx_open();
    enum { T = 6, D = 40 };
    float x[T * D], y[T * 16];
    random_floats(x, T * D, -1, 1);
    fx_put(&fx.arena, 0, x, sizeof x);
    /* slice [:, 10:26] */
    struct ae_gpu_dispatch d = {.groups = {1, 1, 1}, .per_t = {0, 1, 0}};
    d.ref[1] = arena(0 + 10 * 4);
    d.ref[2] = arena(8192);
    d.k[0] = 1;
    d.k[1] = 1;
    d.k[2] = 1;
    d.k[3] = 16;
    d.k[4] = D;
    d.k[7] = 1;
    d.k[8] = 16;
    d.k[11] = 1;
    fx_run("copy.comp", "", d, T, 0, false);
    fx_get(&fx.arena, 8192, y, sizeof y);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < 16; i++)
            ck_assert(y[t * 16 + i] == x[t * D + 10 + i]);
    /* last row */
    struct ae_gpu_dispatch l = {.groups = {1, 1, 1}};
    l.ref[1] = arena(0);
    l.ref[2] = arena(16384);
    l.k[0] = 1;
    l.k[1] = 1;
    l.k[2] = 1;
    l.k[3] = D;
    l.k[7] = 1;
    l.k[11] = 1;
    l.k[12] = 1;
    l.k[13] = D;
    fx_run("copy.comp", "", l, T, 0, false);
    fx_get(&fx.arena, 16384, y, D * sizeof *y);
    ck_assert(memcmp(y, x + (T - 1) * D, D * sizeof *y) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gpu");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_get_rows_every_type, 0, N_WEIGHT_TYPES);
    tcase_add_loop_test(tc, test_matvec_every_type, 0, N_WEIGHT_TYPES);
    tcase_add_loop_test(tc, test_matmul_every_type, 0, N_WEIGHT_TYPES);
    tcase_add_test(tc, test_rms_norm);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_ew_steps);
    tcase_add_test(tc, test_copy);
    suite_add_tcase(s, tc);
    /* One process for every test: opening a Vulkan device and starting the shader compiler cost more than
     * most tests, and the device stays open between them. */
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int rc = srunner_ntests_failed(sr) == 0 ? 0 : 1;
    srunner_free(sr);
    if (fx.open) {
        gpu_buffer_destroy(&fx.c, &fx.step);
        gpu_buffer_destroy(&fx.c, &fx.tokens);
        gpu_buffer_destroy(&fx.c, &fx.weights);
        gpu_buffer_destroy(&fx.c, &fx.arena);
        gpu_buffer_destroy(&fx.c, &fx.kv);
        gpu_ctx_close(&fx.c);
    }
    return rc;
}
