/* Tests of the CPU kernels (runtime/kernels/): matmul for every weight type, the activation
 * quantizers, the ops and attention.
 *
 * Matmul rows run real weights of the synthetic tiny-llama models (attn_q [256, 256] and ffn_down
 * [768, 256] of each type), plus slices of them with an odd number of blocks and tails, against a
 * double-precision reference computed from the dequantized weights (ae_dequantize_row) and the same
 * converted activations. The error is measured against sum_k |w_k x_k|, which does not depend on
 * cancellation; the bound of each type is in the table. The AVX2 and AVX-512 paths must give the
 * scalar path's bytes exactly (row dots and block kernels alike, every tile shape), and 1, 2, 3 and 4
 * threads must give the same bytes. The ops are checked against straightforward double formulas;
 * attention also against a poisoned cache (NaN in every row it must not read).
 */
#include "ae_gguf.h"
#include "ae_kernels.h"
#include "ae_quant_blocks.h"
#include "ae_types.h"
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ck_assert records its location on every call; checks inside loops use this, which only acts on
 * failure. */
#define EXPECT(cond, ...)                                                                                  \
    do {                                                                                                   \
        if (!(cond))                                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                                     \
    } while (0)

/* ---- deterministic inputs ------------------------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
}

/* Uniform in [-1, 1). */
static float rng_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(rng_state >> 40) / (double)(1ULL << 23) - 1.0);
}

/* Roughly normal with unit variance: a sum of four uniforms. */
static float rng_normal(void)
{
    return (rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform()) * 0.8660254f;
}

static void *xmalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    ck_assert_msg(p != NULL, "out of memory (%zu bytes)", n);
    return p;
}

static bool host_has_avx2(void)
{
    return ae_cpu_host_isa() >= AE_ISA_AVX2;
}

/* ---- matmul against the double reference ---------------------------------------------------------- */

struct mm_row {
    const char *type_name; /* tiny-llama-<type>.gguf */
    uint32_t type;
    double tol;            /* max |y - ref| / sum |w x| */
};

/* The bounds: the integer dots are exact, so the error is float rounding of the block terms and sums
 * (about 1e-7 of sum |w x|), except for Q4_1/Q5_1, whose block term m * s uses s = d * sum(q) stored
 * as fp16 (ggml's Q8_1): up to 2^-11 of |m| sum |x| per block. */
static const struct mm_row mm_rows[] = {
    {"f32", AE_TYPE_F32, 2e-6},   {"f16", AE_TYPE_F16, 2e-6},   {"bf16", AE_TYPE_BF16, 2e-6},
    {"q4_0", AE_TYPE_Q4_0, 2e-6}, {"q4_1", AE_TYPE_Q4_1, 2e-3}, {"q5_0", AE_TYPE_Q5_0, 2e-6},
    {"q5_1", AE_TYPE_Q5_1, 2e-3}, {"q8_0", AE_TYPE_Q8_0, 2e-6}, {"q2_k", AE_TYPE_Q2_K, 2e-6},
    {"q3_k", AE_TYPE_Q3_K, 2e-6}, {"q4_k", AE_TYPE_Q4_K, 2e-6}, {"q5_k", AE_TYPE_Q5_K, 2e-6},
    {"q6_k", AE_TYPE_Q6_K, 2e-6}, {"iq4_nl", AE_TYPE_IQ4_NL, 2e-6}, {"iq4_xs", AE_TYPE_IQ4_XS, 2e-6},
    {"tq1_0", AE_TYPE_TQ1_0, 2e-6}, {"tq2_0", AE_TYPE_TQ2_0, 2e-6},
};
#define N_MM_ROWS ((int)(sizeof mm_rows / sizeof mm_rows[0]))

/* A weight matrix owned by the test: N rows of K values of type. */
struct matrix {
    uint32_t type;
    int64_t N, K;
    size_t row_bytes;
    uint8_t *data;
};

static size_t type_row_bytes(uint32_t type, int64_t k)
{
    uint64_t n;
    ae_error err;
    ck_assert_msg(ae_type_row_bytes(type, (uint64_t)k, &n, &err) == 0, "%s", err.msg);
    return (size_t)n;
}

/* Copies the first K values (whole blocks) of the first N rows of a model tensor. */
static struct matrix matrix_from_model(const char *type_name, const char *tensor, uint32_t type, int64_t N, int64_t K)
{
    char rel[256];
    ae_error err = {{0}};
    ae_gguf *g = NULL;
    snprintf(rel, sizeof rel, "models/synthetic/tiny-llama-%s.gguf", type_name);
    ck_assert_msg(ae_gguf_open(&g, test_shared_path(rel), &err) == 0, "%s", err.msg);
    const struct ae_gguf_tensor *t = ae_gguf_find_tensor(g, tensor);
    ck_assert_msg(t != NULL, "%s: no tensor %s", rel, tensor);
    ck_assert_msg(t->type == type, "%s %s: type %s, expected %s", rel, tensor, ae_type_name(t->type),
                  ae_type_name(type));
    ck_assert_msg(N <= t->ne[1] && K <= t->ne[0], "%s %s: [%" PRId64 ", %" PRId64 "] is smaller than the test needs", rel,
                  tensor, t->ne[0], t->ne[1]);

    struct matrix m = {.type = type, .N = N, .K = K, .row_bytes = type_row_bytes(type, K)};
    const size_t src_row = type_row_bytes(type, t->ne[0]);
    m.data = xmalloc(m.row_bytes * (size_t)N);
    for (int64_t n = 0; n < N; n++)
        memcpy(m.data + (size_t)n * m.row_bytes, (const uint8_t *)t->data + (size_t)n * src_row, m.row_bytes);
    ae_gguf_close(g);
    return m;
}

/* The activations as the kernels see them, back in f32: X converted to the vec type and widened. */
static float *converted_activations(uint32_t type, const float *X, int64_t K, int64_t M)
{
    const uint32_t vt = ae_matmul_vec_type(type);
    float *out = xmalloc((size_t)(K * M) * sizeof(float));
    void *tmp = xmalloc(ae_matmul_act_row_bytes(type, K) + 64);
    ae_error err = {{0}};
    for (int64_t m = 0; m < M; m++) {
        const float *x = X + m * K;
        float *o = out + m * K;
        switch (vt) {
        case AE_TYPE_F32:
            memcpy(o, x, (size_t)K * sizeof(float));
            break;
        case AE_TYPE_F16:
            ae_convert_row_f16(x, tmp, K);
            for (int64_t i = 0; i < K; i++)
                o[i] = ae_fp16_to_fp32(((uint16_t *)tmp)[i]);
            break;
        case AE_TYPE_BF16:
            ae_convert_row_bf16(x, tmp, K);
            for (int64_t i = 0; i < K; i++)
                o[i] = ae_bf16_to_fp32(((uint16_t *)tmp)[i]);
            break;
        case AE_TYPE_Q8_0:
        case AE_TYPE_Q8_1: {
            if (vt == AE_TYPE_Q8_0)
                ae_quantize_row_q8_0(x, tmp, K);
            else
                ae_quantize_row_q8_1(x, tmp, K);
            const struct ae_block_q8a *b = tmp;
            for (int64_t i = 0; i < K; i++)
                o[i] = b[i / AE_QK].d * b[i / AE_QK].qs[i % AE_QK];
            break;
        }
        case AE_TYPE_Q8_K:
            ae_quantize_row_q8_k(x, tmp, K);
            ck_assert_msg(ae_dequantize_row(AE_TYPE_Q8_K, tmp, o, K, &err) == 0, "%s", err.msg);
            break;
        default:
            ck_abort_msg("no vec type %" PRIu32, vt);
        }
    }
    free(tmp);
    return out;
}

/* The weight in a layout: packed into a new buffer (64-byte aligned). */
static uint8_t *packed_weights(const struct matrix *w, enum ae_layout layout)
{
    ae_error err = {{0}};
    const uint64_t bytes = ae_layout_bytes(w->type, layout, w->N, w->K);
    ck_assert_msg(bytes > 0, "%s in layout %s: no size", ae_type_name(w->type), ae_layout_name(layout));
    uint8_t *p = aligned_alloc(64, (size_t)(bytes + 63) / 64 * 64);
    ck_assert(p != NULL);
    ck_assert_msg(ae_layout_pack(w->type, layout, w->data, w->N, w->K, p, &err) == 0, "%s", err.msg);
    return p;
}

/* Runs ae_matmul on the weight in a layout at the given level with a pool of n_threads into a new
 * buffer. */
static float *run_matmul_layout(const struct matrix *w, enum ae_layout layout, const float *X, int64_t M,
                                enum ae_isa isa, int n_threads)
{
    ae_error err = {{0}};
    ae_pool *pool = ae_pool_create(n_threads, &err);
    ck_assert_msg(pool != NULL, "%s", err.msg);
    const size_t scratch_bytes = ae_matmul_scratch_size(w->type, w->K, M);
    void *scratch = scratch_bytes ? xmalloc(scratch_bytes) : NULL;
    float *Y = xmalloc((size_t)(M * w->N) * sizeof(float));
    memset(Y, 0xff, (size_t)(M * w->N) * sizeof(float)); /* NaN: every output must be written */
    uint8_t *W = layout == AE_LAYOUT_ROWS ? w->data : packed_weights(w, layout);
    ae_cpu_set_max_isa(isa);
    const int rc = ae_matmul(w->type, layout, W, w->N, w->K, X, M, Y, scratch, pool, &err);
    ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
    ck_assert_msg(rc == 0, "matmul %s: %s", ae_type_name(w->type), err.msg);
    if (W != w->data)
        free(W);
    free(scratch);
    ae_pool_destroy(pool);
    return Y;
}

static float *run_matmul(const struct matrix *w, const float *X, int64_t M, enum ae_isa isa, int n_threads)
{
    return run_matmul_layout(w, AE_LAYOUT_ROWS, X, M, isa, n_threads);
}

/* Checks one matrix with M activation rows: the scalar rows kernel against a double reference, then
 * every layout at every level and several thread counts against it, bit for bit. */
static void check_matmul(const struct matrix *w, int64_t M, double tol, uint64_t seed, const char *what)
{
    rng_seed(seed);
    float *X = xmalloc((size_t)(M * w->K) * sizeof(float));
    for (int64_t i = 0; i < M * w->K; i++)
        X[i] = rng_normal();

    /* reference: dequantized weights times the converted activations, in double */
    float *Wf = xmalloc((size_t)(w->N * w->K) * sizeof(float));
    ae_error err = {{0}};
    for (int64_t n = 0; n < w->N; n++)
        ck_assert_msg(ae_dequantize_row(w->type, w->data + (size_t)n * w->row_bytes, Wf + n * w->K, w->K, &err) == 0,
                      "%s", err.msg);
    float *Xc = converted_activations(w->type, X, w->K, M);

    float *Ys = run_matmul(w, X, M, AE_ISA_SCALAR, 1);
    double worst = 0.0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < w->N; n++) {
            double ref = 0.0, mag = 0.0;
            for (int64_t k = 0; k < w->K; k++) {
                const double p = (double)Wf[n * w->K + k] * (double)Xc[m * w->K + k];
                ref += p;
                mag += fabs(p);
            }
            const double y = Ys[m * w->N + n];
            EXPECT(isfinite(y), "%s M=%" PRId64 ": y[%" PRId64 "][%" PRId64 "] = %g", what, M, m, n, y);
            const double e = fabs(y - ref) / (mag > 0 ? mag : 1.0);
            worst = e > worst ? e : worst;
            EXPECT(e <= tol, "%s M=%" PRId64 ": y[%" PRId64 "][%" PRId64 "] = %.9g, reference %.9g, error %.3g of sum|wx| %.4g > %.3g",
                   what, M, m, n, y, ref, e, mag, tol);
        }

    const size_t bytes = (size_t)(M * w->N) * sizeof(float);
    for (int layout = 0; layout < AE_LAYOUT_COUNT; layout++) {
        if (!ae_layout_supports(w->type, (enum ae_layout)layout))
            continue;
        for (int isa = layout == AE_LAYOUT_ROWS ? AE_ISA_AVX2 : AE_ISA_SCALAR; isa <= (int)ae_cpu_host_isa(); isa++) {
            float *Ya = run_matmul_layout(w, (enum ae_layout)layout, X, M, (enum ae_isa)isa, 1);
            for (int64_t i = 0; i < M * w->N; i++)
                EXPECT(memcmp(&Ya[i], &Ys[i], sizeof(float)) == 0,
                       "%s M=%" PRId64 ": %s %s y[%" PRId64 "] = %.9g, scalar rows %.9g", what, M,
                       ae_layout_name((enum ae_layout)layout), ae_isa_name((enum ae_isa)isa), i, Ya[i], Ys[i]);
            free(Ya);
        }
        const enum ae_isa best = ae_cpu_host_isa();
        for (int threads = 2; threads <= 4; threads++) {
            float *Yt = run_matmul_layout(w, (enum ae_layout)layout, X, M, best, threads);
            EXPECT(memcmp(Yt, Ys, bytes) == 0, "%s M=%" PRId64 ": %s, %d threads differ from one", what, M,
                   ae_layout_name((enum ae_layout)layout), threads);
            free(Yt);
        }
    }
    if (getenv("AE_KERNELS_VERBOSE"))
        fprintf(stderr, "%-40s M=%-3" PRId64 " worst error %.3g of sum|wx|\n", what, M, worst);
    free(Ys);
    free(Xc);
    free(Wf);
    free(X);
}

START_TEST(test_matmul_model)
{
    const struct mm_row *r = &mm_rows[_i];
    static const struct {
        const char *tensor;
        int64_t N, K;
    } shapes[] = {
        {"blk.0.attn_q.weight", 256, 256},
        {"blk.0.ffn_down.weight", 256, 768},
    };
    static const int64_t Ms[] = {1, 3, 17};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct matrix w = matrix_from_model(r->type_name, shapes[s].tensor, r->type, shapes[s].N, shapes[s].K);
        for (size_t j = 0; j < sizeof Ms / sizeof Ms[0]; j++) {
            char what[128];
            snprintf(what, sizeof what, "%s %s", r->type_name, shapes[s].tensor);
            check_matmul(&w, Ms[j], r->tol, 1000 + (uint64_t)(s * 10 + j), what);
        }
        free(w.data);
    }
}
END_TEST

/* Odd shapes: N = 37 (not a multiple of any split; two x16 groups and a padded third), an odd number
 * of blocks, and for F32/F16/BF16 a K with a tail shorter than the 16 lanes. */
START_TEST(test_matmul_odd_shapes)
{
    const struct mm_row *r = &mm_rows[_i];
    const int64_t bs = ae_type_info(r->type)->block_size;
    int64_t K;
    const char *tensor;
    if (bs == 1) {
        K = 45;
        tensor = "blk.0.attn_q.weight";
    } else if (bs == AE_QK) {
        K = 3 * AE_QK;
        tensor = "blk.0.attn_q.weight";
    } else {
        K = 3 * AE_QK_K;
        tensor = "blk.0.ffn_down.weight";
    }
    struct matrix w = matrix_from_model(r->type_name, tensor, r->type, 37, K);
    static const int64_t Ms[] = {1, 3, 17};
    for (size_t j = 0; j < sizeof Ms / sizeof Ms[0]; j++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s [%" PRId64 ", 37]", r->type_name, tensor, K);
        check_matmul(&w, Ms[j], r->tol, 2000 + j, what);
    }
    /* one block */
    struct matrix w1 = matrix_from_model(r->type_name, tensor, r->type, 5, bs == 1 ? 7 : bs);
    check_matmul(&w1, 2, r->tol, 3000, "one block");
    free(w1.data);
    free(w.data);
}
END_TEST

/* Q8_0 weights with scale 1 and activations whose largest value is 127 (scale 1): every product is an
 * integer, so the result is exact, on every path. */
START_TEST(test_matmul_exact_q8_0)
{
    enum { N = 3, K = 64, M = 2 };
    struct ae_block_q8_0 W[N][K / AE_QK];
    float X[M][K];
    double expect[M][N] = {{0}};
    for (int n = 0; n < N; n++)
        for (int b = 0; b < K / AE_QK; b++) {
            W[n][b].d = 0x3c00; /* 1.0 */
            for (int j = 0; j < AE_QK; j++)
                W[n][b].qs[j] = (int8_t)((n * 37 + b * 11 + j * 5) % 255 - 127);
        }
    W[1][1].qs[3] = -128; /* the format allows it; the sign trick of the AVX2 path must too */
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++)
            X[m][k] = (k % AE_QK == 0) ? 127.0f : (float)((m * 13 + k * 7) % 101 - 50);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++)
                expect[m][n] += (double)W[n][k / AE_QK].qs[k % AE_QK] * X[m][k];

    for (int isa = 0; isa <= (int)ae_cpu_host_isa(); isa++) {
        float Y[M][N];
        unsigned char scratch[M * (K / AE_QK) * sizeof(struct ae_block_q8a)] __attribute__((aligned(64)));
        ck_assert_uint_eq(ae_matmul_scratch_size(AE_TYPE_Q8_0, K, M), sizeof scratch);
        for (int layout = 0; layout < AE_LAYOUT_COUNT; layout++) {
            ae_error err = {{0}};
            uint8_t packed[AE_X16_ROWS * sizeof W / N] __attribute__((aligned(64)));
            ck_assert_uint_le(ae_layout_bytes(AE_TYPE_Q8_0, (enum ae_layout)layout, N, K), sizeof packed);
            ck_assert_msg(ae_layout_pack(AE_TYPE_Q8_0, (enum ae_layout)layout, W, N, K, packed, &err) == 0, "%s",
                          err.msg);
            ae_cpu_set_max_isa((enum ae_isa)isa);
            ck_assert_msg(ae_matmul(AE_TYPE_Q8_0, (enum ae_layout)layout, packed, N, K, &X[0][0], M, &Y[0][0], scratch,
                                    NULL, &err) == 0,
                          "%s", err.msg);
            ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++)
                    ck_assert_msg(Y[m][n] == (float)expect[m][n], "%s %s: y[%d][%d] = %.9g, expected %.9g",
                                  ae_layout_name((enum ae_layout)layout), ae_isa_name((enum ae_isa)isa), m, n, Y[m][n],
                                  expect[m][n]);
        }
    }
}
END_TEST

/* Random weight rows: random bytes with valid fp16 scales (small, positive) where the block has them.
 * Quants span their whole range, Q8_0's including -128, which the library's quantizer never writes but
 * a file may hold. */
static void random_weights(uint32_t type, uint8_t *w, int64_t n_rows, int64_t k)
{
    const struct ae_type_info *t = ae_type_info(type);
    const size_t bytes = (size_t)(n_rows * (k / t->block_size)) * t->block_bytes;
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)(rng_uniform() * 256.0f);
    /* the fp16 fields: d (and m/dmin) of each block */
    static const struct {
        uint32_t type;
        uint16_t at[2];
        int n;
    } scales[] = {
        {AE_TYPE_Q4_0, {0}, 1}, {AE_TYPE_Q4_1, {0, 2}, 2}, {AE_TYPE_Q5_0, {0}, 1},   {AE_TYPE_Q5_1, {0, 2}, 2},
        {AE_TYPE_Q8_0, {0}, 1}, {AE_TYPE_Q2_K, {80, 82}, 2}, {AE_TYPE_Q3_K, {108}, 1}, {AE_TYPE_Q4_K, {0, 2}, 2},
        {AE_TYPE_Q5_K, {0, 2}, 2}, {AE_TYPE_Q6_K, {208}, 1},
    };
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++)
        if (scales[s].type == type)
            for (size_t b = 0; b < bytes / t->block_bytes; b++)
                for (int j = 0; j < scales[s].n; j++) {
                    const uint16_t d = ae_fp32_to_fp16(0.001f + 0.02f * rng_uniform());
                    memcpy(w + b * t->block_bytes + scales[s].at[j], &d, 2);
                }
    if (type == AE_TYPE_F16 || type == AE_TYPE_BF16 || type == AE_TYPE_F32)
        for (int64_t i = 0; i < n_rows * k; i++) {
            const float v = rng_normal();
            if (type == AE_TYPE_F32)
                memcpy(w + 4 * i, &v, 4);
            else {
                const uint16_t h = type == AE_TYPE_F16 ? ae_fp32_to_fp16(v) : ae_fp32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
}

/* Every level's block kernel of every type and layout against the scalar rows kernel, output by output,
 * for every tile shape and remainder (row counts around the x16 groups, activation row counts around
 * the register tiles and AMX's 16-row tiles), an odd
 * and an even number of blocks (float types: rows that end in a part shorter than 16), and extreme
 * activations; outputs outside the block stay untouched. */
START_TEST(test_matmul_gemm_tiles)
{
    static const uint32_t types[] = {AE_TYPE_Q4_0, AE_TYPE_Q4_1, AE_TYPE_Q5_0, AE_TYPE_Q5_1, AE_TYPE_Q8_0,
                                     AE_TYPE_Q2_K, AE_TYPE_Q3_K, AE_TYPE_Q4_K, AE_TYPE_Q5_K, AE_TYPE_Q6_K,
                                     AE_TYPE_F32,  AE_TYPE_F16,  AE_TYPE_BF16};
    static const int rows[] = {1, 2, 3, 5, 8, 9, 15, 16, 17, 31, 32, 33, 37};
    static const int cols[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 35};
    enum { MAX_R = 37, MAX_C = 35, STRIDE = 41 };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (int nblocks = 1; nblocks <= 2; nblocks++) {
            const uint32_t type = types[t];
            const int64_t bs = ae_type_info(type)->block_size;
            const int64_t k = bs == 1 ? (nblocks == 1 ? 45 : 96) : bs * (nblocks == 1 ? 3 : 2);
            const size_t w_row = type_row_bytes(type, k);
            const size_t x_row = type == AE_TYPE_F32 ? (size_t)k * 4 : ae_matmul_act_row_bytes(type, k);
            rng_seed(77 + t * 2 + (uint64_t)nblocks);
            uint8_t *w = xmalloc(MAX_R * w_row);
            uint8_t *x = aligned_alloc(64, (MAX_C * x_row + 63) / 64 * 64);
            float *xf = xmalloc((size_t)(MAX_C * k) * sizeof(float));
            random_weights(type, w, MAX_R, k);
            for (int c = 0; c < MAX_C; c++)
                for (int64_t i = 0; i < k; i++) /* row 2: every block holds -127 and 127 */
                    xf[c * k + i] = c == 2 ? (i % 2 ? 127.0f : -127.0f) : rng_normal();
            ae_error err = {{0}};
            ae_cpu_set_max_isa(AE_ISA_SCALAR);
            if (type == AE_TYPE_F32)
                memcpy(x, xf, (size_t)(MAX_C * k) * sizeof(float));
            else
                ck_assert_msg(ae_matmul_quantize(type, xf, k, MAX_C, x, NULL, &err) == 0, "%s", err.msg);
            ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
            float expect[MAX_C][MAX_R];
            const struct ae_type_kernels *tk = ae_kernels_of(type);
            tk->level[AE_ISA_SCALAR]->gemm[AE_LAYOUT_ROWS](k, w, w_row, MAX_R, x, x_row, MAX_C, &expect[0][0], MAX_R);
            for (int layout = 0; layout < AE_LAYOUT_COUNT; layout++) {
                if (!ae_layout_supports(type, (enum ae_layout)layout))
                    continue;
                const struct matrix m = {.type = type, .N = MAX_R, .K = k, .row_bytes = w_row, .data = w};
                uint8_t *pw = packed_weights(&m, (enum ae_layout)layout);
                const size_t stride = (size_t)ae_layout_group_bytes(type, (enum ae_layout)layout, k);
                for (int level = 0; level < AE_ISA_COUNT; level++) {
                    const struct ae_gemm_level *lv = tk->level[level];
                    if ((int)ae_cpu_host_isa() < level || !lv || !lv->gemm[layout])
                        continue;
                    const ae_gemm_fn gemm = lv->gemm[layout];
                    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                        for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
                            const int R = rows[ri], C = cols[ci];
                            float y[MAX_C * STRIDE];
                            memset(y, 0xff, sizeof y);
                            gemm(k, pw, stride, R, x, x_row, C, y, STRIDE);
                            for (int c = 0; c < MAX_C; c++)
                                for (int r = 0; r < STRIDE; r++) {
                                    const float v = y[c * STRIDE + r];
                                    if (c < C && r < R)
                                        EXPECT(memcmp(&v, &expect[c][r], sizeof v) == 0,
                                               "%s %s %s k=%" PRId64 " %dx%d: y[%d][%d] = %.9g, scalar %.9g",
                                               lv->name, ae_layout_name((enum ae_layout)layout),
                                               ae_type_name(type), k, R, C, c, r, v, expect[c][r]);
                                    else
                                        EXPECT(isnan(v), "%s %s %s %dx%d wrote y[%d][%d]", lv->name,
                                               ae_layout_name((enum ae_layout)layout), ae_type_name(type), R, C, c, r);
                                }
                        }
                }
                free(pw);
            }
            free(xf);
            free(x);
            free(w);
        }
}
END_TEST

/* The float kernels' panels (many activation rows): K longer than one panel with a tail shorter than 16
 * (1100), and a K whose row of f32 activations leaves room for fewer than the most activation rows per
 * pass, with a last panel of 8 values (8200); 37 weight rows (a last panel of 1) by 61 activation rows
 * (passes of 48 or 30, tiles of 6 with remainders). Every level against the scalar kernel, bit for bit.
 * About 0.3 s. */
START_TEST(test_matmul_float_panels)
{
    static const uint32_t types[] = {AE_TYPE_F32, AE_TYPE_F16, AE_TYPE_BF16};
    static const int64_t ks[] = {1100, 8200};
    enum { R = 37, C = 61 };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const uint32_t type = types[t];
            const int64_t k = ks[ki];
            const size_t w_row = type_row_bytes(type, k);
            const size_t x_row = (size_t)k * 4;
            rng_seed(500 + t * 2 + ki);
            uint8_t *w = xmalloc(R * w_row);
            float *xf = xmalloc((size_t)(C * k) * sizeof(float));
            float *x = xmalloc((size_t)(C * k) * sizeof(float));
            random_weights(type, w, R, k);
            for (int64_t i = 0; i < C * k; i++)
                xf[i] = rng_normal();
            ae_error err = {{0}};
            if (type == AE_TYPE_F32)
                memcpy(x, xf, (size_t)(C * k) * sizeof(float));
            else
                ck_assert_msg(ae_matmul_quantize(type, xf, k, C, x, NULL, &err) == 0, "%s", err.msg);
            float *expect = xmalloc(R * C * sizeof(float)), *y = xmalloc(R * C * sizeof(float));
            const struct ae_type_kernels *tk = ae_kernels_of(type);
            tk->level[AE_ISA_SCALAR]->gemm[AE_LAYOUT_ROWS](k, w, w_row, R, x, x_row, C, expect, R);
            for (int level = 1; level < AE_ISA_COUNT; level++) {
                const struct ae_gemm_level *lv = tk->level[level];
                if ((int)ae_cpu_host_isa() < level || !lv || !lv->gemm[AE_LAYOUT_ROWS])
                    continue;
                lv->gemm[AE_LAYOUT_ROWS](k, w, w_row, R, x, x_row, C, y, R);
                for (int i = 0; i < R * C; i++)
                    EXPECT(memcmp(&y[i], &expect[i], sizeof y[i]) == 0, "%s %s k=%" PRId64 ": y[%d][%d] = %.9g, scalar %.9g",
                           lv->name, ae_type_name(type), k, i / R, i % R, y[i], expect[i]);
            }
            free(y);
            free(expect);
            free(x);
            free(xf);
            free(w);
        }
}
END_TEST

/* Packing into x16 and back gives the GGUF rows; the padding rows of the last group are zeros; a row read
 * from the packed weights (get_rows of a tied embedding) is the dequantized GGUF row. */
START_TEST(test_layout_pack)
{
    static const uint32_t types[] = {AE_TYPE_Q4_0, AE_TYPE_Q4_1, AE_TYPE_Q5_0, AE_TYPE_Q5_1, AE_TYPE_Q8_0,
                                     AE_TYPE_Q2_K, AE_TYPE_Q3_K, AE_TYPE_Q4_K, AE_TYPE_Q5_K, AE_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const uint32_t type = types[t];
        const int64_t k = 2 * ae_type_info(type)->block_size, n = 19;
        const size_t row = type_row_bytes(type, k);
        rng_seed(300 + t);
        uint8_t *w = xmalloc((size_t)n * row);
        random_weights(type, w, n, k);
        const uint64_t bytes = ae_layout_bytes(type, AE_LAYOUT_X16, n, k);
        ck_assert_uint_eq(bytes, 2 * 16 * row); /* 19 rows: two groups */
        ck_assert_uint_eq(ae_layout_group_bytes(type, AE_LAYOUT_X16, k), 16 * row);
        uint8_t *p = xmalloc((size_t)bytes);
        ae_error err = {{0}};
        ck_assert_msg(ae_layout_pack(type, AE_LAYOUT_X16, w, n, k, p, &err) == 0, "%s", err.msg);
        uint8_t *back = xmalloc(row);
        float got[2 * AE_QK_K], want[2 * AE_QK_K];
        for (int64_t r = 0; r < 32; r++) {
            ck_assert_msg(ae_layout_unpack_row(type, AE_LAYOUT_X16, p, k, r, back, &err) == 0, "%s", err.msg);
            if (r < n) {
                ck_assert_msg(memcmp(back, w + (size_t)r * row, row) == 0, "%s row %" PRId64, ae_type_name(type), r);
                ck_assert_msg(ae_layout_get_row(type, AE_LAYOUT_X16, p, k, r, got, &err) == 0, "%s", err.msg);
                ck_assert_msg(ae_dequantize_row(type, w + (size_t)r * row, want, k, &err) == 0, "%s", err.msg);
                ck_assert_msg(memcmp(got, want, (size_t)k * sizeof got[0]) == 0, "%s get_row %" PRId64,
                              ae_type_name(type), r);
            } else
                for (size_t i = 0; i < row; i++)
                    ck_assert_msg(back[i] == 0, "%s padding row %" PRId64 " byte %zu", ae_type_name(type), r, i);
        }
        free(back);
        free(p);
        free(w);
    }
    ae_error err = {{0}};
    ck_assert(!ae_layout_supports(AE_TYPE_IQ4_XS, AE_LAYOUT_X16));
    ck_assert(ae_layout_supports(AE_TYPE_IQ4_XS, AE_LAYOUT_ROWS));
    ck_assert_int_eq(ae_layout_pack(AE_TYPE_IQ4_XS, AE_LAYOUT_X16, NULL, 1, 256, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "x16") && strstr(err.msg, "iq4_xs"), "%s", err.msg);
    ck_assert_str_eq(ae_layout_name(AE_LAYOUT_X16), "x16");
    ck_assert_int_eq(ae_layout_from_name("rows"), AE_LAYOUT_ROWS);
    ck_assert_int_eq(ae_layout_from_name("x8"), -1);
}
END_TEST

/* One converted input serves two weights (the Q/K/V pattern) and gives ae_matmul's bytes. */
START_TEST(test_matmul_prequantized)
{
    struct matrix w = matrix_from_model("q4_k", "blk.0.attn_q.weight", AE_TYPE_Q4_K, 64, 256);
    enum { M = 3 };
    float X[M * 256];
    rng_seed(7);
    for (int i = 0; i < M * 256; i++)
        X[i] = rng_normal();
    ae_error err = {{0}};
    void *xq = xmalloc(ae_matmul_scratch_size(AE_TYPE_Q4_K, 256, M));
    ck_assert_msg(ae_matmul_quantize(AE_TYPE_Q4_K, X, 256, M, xq, NULL, &err) == 0, "%s", err.msg);
    float Y1[M * 64], Y2[M * 64];
    ck_assert_msg(ae_matmul_prequantized(AE_TYPE_Q4_K, AE_LAYOUT_ROWS, w.data, 64, 256, xq, M, Y1, NULL, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(ae_matmul_prequantized(AE_TYPE_Q4_K, AE_LAYOUT_ROWS, w.data, 64, 256, xq, M, Y2, NULL, &err) == 0,
                  "%s", err.msg);
    float *Y = run_matmul(&w, X, M, ae_cpu_host_isa(), 1);
    ck_assert(memcmp(Y1, Y, sizeof Y1) == 0);
    ck_assert(memcmp(Y2, Y, sizeof Y2) == 0);
    free(Y);
    free(xq);
    free(w.data);
}
END_TEST

/* A multi-part matmul (the merged Q/K/V of a Q4_K_M file: Q4_K and Q6_K parts, x16 and rows, row counts
 * that split x16 groups) gives every part ae_matmul's bytes for any thread count, one input converted. */
START_TEST(test_matmul_parts)
{
    struct matrix w[3] = {
        matrix_from_model("q4_k", "blk.0.attn_q.weight", AE_TYPE_Q4_K, 48, 256),
        matrix_from_model("q6_k", "blk.0.attn_q.weight", AE_TYPE_Q6_K, 20, 256),
        matrix_from_model("q4_k", "blk.0.ffn_up.weight", AE_TYPE_Q4_K, 33, 256),
    };
    const enum ae_layout layouts[3] = {AE_LAYOUT_X16, AE_LAYOUT_ROWS, AE_LAYOUT_X16};
    enum { M = 5 };
    float X[M * 256];
    rng_seed(11);
    for (int i = 0; i < M * 256; i++)
        X[i] = rng_normal();
    ae_error err = {{0}};
    void *scratch = xmalloc(ae_matmul_scratch_size(AE_TYPE_Q4_K, 256, M));
    for (int64_t m = 1; m <= M; m += M - 1)
        for (int threads = 1; threads <= 3; threads++) {
            ae_pool *pool = ae_pool_create(threads, &err);
            ck_assert_msg(pool != NULL, "%s", err.msg);
            struct ae_matmul_part parts[3];
            uint8_t *packed[3];
            for (int p = 0; p < 3; p++) {
                packed[p] = layouts[p] == AE_LAYOUT_ROWS ? w[p].data : packed_weights(&w[p], layouts[p]);
                parts[p] = (struct ae_matmul_part){w[p].type, layouts[p], packed[p], w[p].N,
                                                   xmalloc((size_t)(m * w[p].N) * sizeof(float))};
                memset(parts[p].Y, 0xff, (size_t)(m * w[p].N) * sizeof(float));
            }
            ck_assert_msg(ae_matmul_parts(parts, 3, 256, X, m, scratch, pool, &err) == 0, "%s", err.msg);
            for (int p = 0; p < 3; p++) {
                float *Y = run_matmul(&w[p], X, m, ae_cpu_host_isa(), 1);
                ck_assert_msg(memcmp(parts[p].Y, Y, (size_t)(m * w[p].N) * sizeof(float)) == 0,
                              "part %d, M=%" PRId64 ", %d threads", p, m, threads);
                free(Y);
                free(parts[p].Y);
                if (packed[p] != w[p].data)
                    free(packed[p]);
            }
            ae_pool_destroy(pool);
        }
    /* parts whose activations differ cannot share them */
    struct matrix q4_0 = matrix_from_model("q4_0", "blk.0.attn_q.weight", AE_TYPE_Q4_0, 16, 256);
    float y0[16], y1[48];
    const struct ae_matmul_part mixed[2] = {{AE_TYPE_Q4_K, AE_LAYOUT_ROWS, w[0].data, 48, y1},
                                            {AE_TYPE_Q4_0, AE_LAYOUT_ROWS, q4_0.data, 16, y0}};
    ck_assert_int_eq(ae_matmul_parts(mixed, 2, 256, X, 1, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "part 1") && strstr(err.msg, "q8_0") && strstr(err.msg, "q8_k"), "%s", err.msg);
    ck_assert_int_eq(ae_matmul_parts(mixed, 0, 256, X, 1, scratch, NULL, &err), -1);
    free(q4_0.data);
    free(scratch);
    for (int p = 0; p < 3; p++)
        free(w[p].data);
}
END_TEST

START_TEST(test_matmul_errors)
{
    ae_error err = {{0}};
    float x[256] = {0}, y[4];
    uint8_t w[1024] __attribute__((aligned(64))) = {0};
    uint8_t scratch[1024] __attribute__((aligned(64)));

    ck_assert_int_eq(ae_matmul(AE_TYPE_IQ2_XXS, AE_LAYOUT_ROWS, w, 1, 256, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "iq2_xxs") && strstr(err.msg, "not supported"), "%s", err.msg);
    ck_assert_int_eq(ae_matmul(AE_TYPE_Q8_1, AE_LAYOUT_ROWS, w, 1, 32, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "q8_1"), "%s", err.msg);
    ck_assert_int_eq(ae_matmul(999, AE_LAYOUT_ROWS, w, 1, 32, x, 1, y, scratch, NULL, &err), -1);

    ck_assert_int_eq(ae_matmul(AE_TYPE_Q4_0, AE_LAYOUT_ROWS, w, 1, 48, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "K=48") && strstr(err.msg, "multiple"), "%s", err.msg);
    ck_assert_int_eq(ae_matmul(AE_TYPE_Q4_K, AE_LAYOUT_ROWS, w, 1, 128, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "256"), "%s", err.msg);
    ck_assert_int_eq(ae_matmul(AE_TYPE_Q4_0, AE_LAYOUT_ROWS, w, -1, 32, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_int_eq(ae_matmul(AE_TYPE_Q4_0, AE_LAYOUT_ROWS, w + 1, 1, 32, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "aligned"), "%s", err.msg);
    ck_assert_int_eq(ae_matmul(AE_TYPE_Q4_0, AE_LAYOUT_ROWS, w, 1, 32, x, 1, y, NULL, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "scratch"), "%s", err.msg);

    ck_assert_int_eq(ae_matmul(AE_TYPE_IQ4_XS, AE_LAYOUT_X16, w, 1, 256, x, 1, y, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "iq4_xs") && strstr(err.msg, "x16"), "%s", err.msg);
    ck_assert(!ae_matmul_supports(AE_TYPE_Q8_K));
    ck_assert_uint_eq(ae_matmul_vec_type(AE_TYPE_Q5_1), AE_TYPE_Q8_1);
    ck_assert_uint_eq(ae_matmul_vec_type(AE_TYPE_Q3_K), AE_TYPE_Q8_K);
    ck_assert_uint_eq(ae_matmul_vec_type(AE_TYPE_Q5_0), AE_TYPE_Q8_0);
    ck_assert_uint_eq(ae_matmul_vec_type(AE_TYPE_BF16), AE_TYPE_BF16);
    ck_assert_uint_eq(ae_matmul_vec_type(AE_TYPE_IQ2_XXS), AE_TYPE_ID_LIMIT);
    ck_assert_uint_eq(ae_matmul_scratch_size(AE_TYPE_F32, 256, 4), 0);
    ck_assert_uint_eq(ae_matmul_scratch_size(AE_TYPE_Q4_K, 512, 3), 3 * 2 * sizeof(struct ae_block_q8_k));

    /* K = 0: empty sums */
    y[0] = y[1] = 1.0f;
    ck_assert_int_eq(ae_matmul(AE_TYPE_F16, AE_LAYOUT_ROWS, w, 2, 0, x, 1, y, NULL, NULL, &err), 0);
    ck_assert(y[0] == 0.0f && y[1] == 0.0f);
}
END_TEST

START_TEST(test_cpu_isa)
{
    const enum ae_isa host = ae_cpu_host_isa();
#if defined(__x86_64__)
    ck_assert_int_eq(host >= AE_ISA_AVX2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                              __builtin_cpu_supports("f16c"));
    ck_assert_int_eq(host >= AE_ISA_AVX512, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                                __builtin_cpu_supports("avx512vl") &&
                                                __builtin_cpu_supports("avx512vnni"));
    if (host >= AE_ISA_AMX) /* (the OS's permission is the rest of the test) */
        ck_assert(__builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-int8"));
#elif defined(__aarch64__)
    ck_assert_int_ge(host, AE_ISA_NEON); /* Advanced SIMD is part of every ARMv8-A CPU Linux runs on */
#else
    ck_assert_int_eq(host, AE_ISA_SCALAR);
#endif
    ae_cpu_set_max_isa(AE_ISA_SCALAR);
    ck_assert_int_eq(ae_cpu_isa(), AE_ISA_SCALAR);
    ck_assert(ae_kernels_of(AE_TYPE_Q4_0) == &ae_kernels_q4_0);
    ck_assert(ae_kernel_gemm(AE_TYPE_Q4_0, AE_LAYOUT_X16) == ae_kernels_q4_0.level[AE_ISA_SCALAR]->gemm[AE_LAYOUT_X16]);
    ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q4_0, AE_LAYOUT_X16), "scalar");
#if defined(__x86_64__)
    ae_cpu_set_max_isa(AE_ISA_AVX2);
    ck_assert_int_eq(ae_cpu_isa(), host < AE_ISA_AVX2 ? host : AE_ISA_AVX2);
    if (host >= AE_ISA_AVX2) {
        ck_assert(ae_kernel_gemm(AE_TYPE_Q4_0, AE_LAYOUT_X16) == ae_kernels_q4_0.level[AE_ISA_AVX2]->gemm[AE_LAYOUT_X16]);
        ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q4_0, AE_LAYOUT_ROWS), "avx2");
    }
    ae_cpu_set_max_isa(AE_ISA_AVX512);
    ck_assert_int_eq(ae_cpu_isa(), host < AE_ISA_AVX512 ? host : AE_ISA_AVX512);
    if (host >= AE_ISA_AVX512) {
        ck_assert(ae_kernel_gemm(AE_TYPE_Q8_0, AE_LAYOUT_X16) == ae_kernels_q8_0.level[AE_ISA_AVX512]->gemm[AE_LAYOUT_X16]);
        /* a type without an AVX-512 kernel of its own falls back to the AVX2 one */
        ck_assert(ae_kernels_q6_k.level[AE_ISA_AVX512]->gemm[AE_LAYOUT_ROWS] == NULL);
        ck_assert(ae_kernel_gemm(AE_TYPE_Q6_K, AE_LAYOUT_ROWS) == ae_kernels_q6_k.level[AE_ISA_AVX2]->gemm[AE_LAYOUT_ROWS]);
    }
    ck_assert(ae_kernels_iq4_xs.level[AE_ISA_AVX512] == NULL && ae_kernels_iq4_xs.level[AE_ISA_AMX] == NULL);
    ck_assert_str_eq(ae_isa_name(AE_ISA_AVX2), "avx2");
    ck_assert_str_eq(ae_isa_name(AE_ISA_AVX512), "avx512");
    ck_assert_int_eq(ae_isa_from_name("AVX512"), AE_ISA_AVX512);
    ck_assert_int_eq(ae_isa_from_name("neon"), -1);
    ck_assert_str_eq(ae_isa_name(AE_ISA_AMX), "amx");
#elif defined(__aarch64__)
    ck_assert(ae_kernels_iq4_nl.level[AE_ISA_NEON] == NULL); /* IQ4_NL has the scalar kernel only */
    ck_assert(ae_kernels_q4_k.level[AE_ISA_I8MM]->gemm[AE_LAYOUT_X16] == NULL);
    ck_assert_str_eq(ae_isa_name(AE_ISA_DOTPROD), "dotprod");
    ck_assert_int_eq(ae_isa_from_name("I8MM"), AE_ISA_I8MM);
    ck_assert_int_eq(ae_isa_from_name("avx2"), -1);
#endif
    ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT + 5)); /* clamped to the top level */
    ck_assert_int_eq(ae_cpu_isa(), host);
    if (host >= AE_ISA_AMX) {
        ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q4_0, AE_LAYOUT_X16), "amx");
        ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q6_K, AE_LAYOUT_X16), "amx");
        ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q2_K, AE_LAYOUT_X16), "amx");
        ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q3_K, AE_LAYOUT_X16), "amx");
        ck_assert_str_eq(ae_kernel_gemm_level(AE_TYPE_Q4_1, AE_LAYOUT_X16), "avx512");
    }
    ck_assert(ae_kernel_gemm(AE_TYPE_IQ2_XS, AE_LAYOUT_ROWS) == NULL);
    ck_assert(ae_kernel_gemm_level(AE_TYPE_IQ4_XS, AE_LAYOUT_X16) == NULL);
    ck_assert_int_eq(ae_isa_from_name("SCALAR"), AE_ISA_SCALAR);
    ck_assert_int_eq(ae_isa_from_name("avx9"), -1);

    /* AETHER_ISA caps the level by name; a name that is no level of this machine is an error. */
    ae_error err = {{0}};
    ck_assert_int_eq(setenv("AETHER_ISA", "scalar", 1), 0);
    ck_assert_int_eq(ae_cpu_cap_from_env(&err), 0);
    ck_assert_int_eq(ae_cpu_isa(), AE_ISA_SCALAR);
    ck_assert_int_eq(setenv("AETHER_ISA", "avx9", 1), 0);
    ck_assert_int_eq(ae_cpu_cap_from_env(&err), -1);
    ck_assert_msg(strstr(err.msg, "AETHER_ISA=avx9 is no instruction-set level of this machine; it takes scalar, "),
                  "%s", err.msg);
    ck_assert_int_eq(unsetenv("AETHER_ISA"), 0);
    ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
    ck_assert_int_eq(ae_cpu_cap_from_env(&err), 0); /* unset: no change */
    ck_assert_int_eq(ae_cpu_isa(), host);
}
END_TEST

/* ---- activation quantizers ------------------------------------------------------------------------ */

START_TEST(test_quantize_q8_0)
{
    float x[2 * AE_QK] = {0};
    /* amax 127 gives d = 1, so q = roundf(x): ties go away from zero */
    const float vals[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -126.6f, 3.0f};
    const int8_t want[] = {127, 3, -3, 1, -1, 1, -127, 3};
    memcpy(x, vals, sizeof vals);
    struct ae_block_q8a y[2];
    ae_quantize_row_q8_0(x, y, 2 * AE_QK);
    ck_assert(y[0].d == 1.0f);
    ck_assert_int_eq(y[0].neg_sum, -(127 + 3 - 3 + 1 - 1 + 1 - 127 + 3));
    for (size_t j = 0; j < sizeof want; j++)
        ck_assert_msg(y[0].qs[j] == want[j], "q[%zu] = %d, expected %d", j, y[0].qs[j], want[j]);
    for (int j = sizeof want; j < AE_QK; j++)
        ck_assert_int_eq(y[0].qs[j], 0);
    /* an all-zero block: d = 0, q = 0 */
    ck_assert(y[1].d == 0.0f && y[1].neg_sum == 0);
    for (int j = 0; j < AE_QK; j++)
        ck_assert_int_eq(y[1].qs[j], 0);

    /* random rows: |x - d q| <= d / 2 (plus the fp16 rounding of d) */
    rng_seed(11);
    float r[4 * AE_QK], back[4 * AE_QK];
    for (int i = 0; i < 4 * AE_QK; i++)
        r[i] = rng_normal() * 3.0f;
    struct ae_block_q8a q[4];
    ae_quantize_row_q8_0(r, q, 4 * AE_QK);
    for (int i = 0; i < 4 * AE_QK; i++)
        back[i] = q[i / AE_QK].d * q[i / AE_QK].qs[i % AE_QK];
    for (int i = 0; i < 4 * AE_QK; i++) {
        const float d = q[i / AE_QK].d;
        EXPECT(ae_fp16_to_fp32(ae_fp32_to_fp16(d)) == d, "q8_0 block %d: d %g is not an fp16 value", i / AE_QK, d);
        EXPECT(fabsf(back[i] - r[i]) <= 0.5f * d + 127.0f * d * 1e-3f, "q8_0 value %d: %g back as %g", i, r[i], back[i]);
    }

    /* every level gives the scalar bytes: random rows, ties at every half, zeros, extremes */
    enum { NB = 64 };
    float *z = xmalloc(NB * AE_QK * sizeof(float));
    for (int i = 0; i < NB * AE_QK; i++) {
        const int b = i / AE_QK;
        z[i] = b % 4 == 0 ? rng_normal() * 1e3f : b % 4 == 1 ? (float)(i % 255 - 127) * 0.5f
             : b % 4 == 2 ? (i % AE_QK == 5 ? 0.0f : -0.0f) : rng_normal() * 1e-30f;
        if (b == 1 && i % AE_QK == 0)
            z[i] = 127.0f; /* amax 127: d = 1, q = roundf(x) on the halves */
    }
    struct ae_block_q8a want_q[NB], got_q[NB];
    ae_cpu_set_max_isa(AE_ISA_SCALAR);
    ae_quantize_row_q8_0(z, want_q, NB * AE_QK);
    for (int isa = AE_ISA_AVX2; isa <= (int)ae_cpu_host_isa(); isa++) {
        ae_cpu_set_max_isa((enum ae_isa)isa);
        ae_quantize_row_q8_0(z, got_q, NB * AE_QK);
        for (int b = 0; b < NB; b++)
            EXPECT(memcmp(&got_q[b], &want_q[b], sizeof got_q[b]) == 0, "%s q8_0 block %d differs from scalar",
                   ae_isa_name((enum ae_isa)isa), b);
    }
    ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
    free(z);
}
END_TEST

START_TEST(test_quantize_q8_1)
{
    float x[AE_QK] = {127.0f, 2.5f, -2.5f, 0.5f, 10.0f};
    struct ae_block_q8a y;
    ae_quantize_row_q8_1(x, &y, AE_QK);
    ck_assert(y.d == 1.0f);
    ck_assert_int_eq(y.qs[0], 127);
    ck_assert_int_eq(y.qs[1], 3);
    ck_assert_int_eq(y.qs[2], -3);
    ck_assert_int_eq(y.qs[3], 1);
    ck_assert_int_eq(y.qs[4], 10);
    ck_assert(y.s == 138.0f); /* d * sum(q) = 127 + 3 - 3 + 1 + 10, an fp16 value */

    rng_seed(12);
    for (int i = 0; i < AE_QK; i++)
        x[i] = rng_normal();
    ae_quantize_row_q8_1(x, &y, AE_QK);
    int sum = 0;
    for (int i = 0; i < AE_QK; i++)
        sum += y.qs[i];
    ck_assert(y.s == ae_fp16_to_fp32(ae_fp32_to_fp16((float)sum * y.d)));
}
END_TEST

START_TEST(test_quantize_q8_k)
{
    float x[2 * AE_QK_K] = {0};
    struct ae_block_q8_k y[3];
    /* the largest magnitude is -127: iscale = 1, q = nearest-even(x), d = 1 */
    x[0] = -127.0f;
    x[1] = 2.5f;  /* ties to even: 2 */
    x[2] = 3.5f;  /* 4 */
    x[3] = -2.5f; /* -2 */
    x[17] = 100.2f;
    /* second block: the largest is +127, iscale = -1, so q = -x and d = -1 */
    x[AE_QK_K] = 127.0f;
    x[AE_QK_K + 1] = 2.5f;
    ae_quantize_row_q8_k(x, y, 2 * AE_QK_K);
    ck_assert(y[0].d == 1.0f);
    ck_assert_int_eq(y[0].qs[0], -127);
    ck_assert_int_eq(y[0].qs[1], 2);
    ck_assert_int_eq(y[0].qs[2], 4);
    ck_assert_int_eq(y[0].qs[3], -2);
    ck_assert_int_eq(y[0].qs[17], 100);
    ck_assert_int_eq(y[0].bsums[0], -127 + 2 + 4 - 2);
    ck_assert_int_eq(y[0].bsums[1], 100);
    ck_assert(y[1].d == -1.0f);
    ck_assert_int_eq(y[1].qs[0], -127);
    ck_assert_int_eq(y[1].qs[1], -2);

    /* all zero: d = 0, everything 0 */
    memset(&y[2], 0x55, sizeof y[2]);
    float z[AE_QK_K] = {0};
    ae_quantize_row_q8_k(z, &y[2], AE_QK_K);
    ck_assert(y[2].d == 0.0f);
    for (int j = 0; j < AE_QK_K; j++)
        ck_assert_int_eq(y[2].qs[j], 0);
    for (int j = 0; j < AE_QK_K / 16; j++)
        ck_assert_int_eq(y[2].bsums[j], 0);

    /* random rows: bsums are the group sums, |x - d q| <= |d| / 2 */
    rng_seed(13);
    float r[AE_QK_K];
    for (int i = 0; i < AE_QK_K; i++)
        r[i] = rng_normal();
    ae_quantize_row_q8_k(r, &y[0], AE_QK_K);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += y[0].qs[16 * g + j];
        ck_assert_int_eq(y[0].bsums[g], s);
    }
    for (int i = 0; i < AE_QK_K; i++)
        EXPECT(fabsf(y[0].d * y[0].qs[i] - r[i]) <= 0.5001f * fabsf(y[0].d), "q8_k value %d: %g", i, r[i]);
}
END_TEST

START_TEST(test_convert_f16_bf16)
{
    const float x[] = {1.0f, -2.5f, 65504.0f, 1e-8f, 3.14159265f, 70000.0f, -0.0f, 1.0009765625f, 1.00048828125f};
    const int n = sizeof x / sizeof x[0];
    uint16_t h[16], b[16];
    ae_convert_row_f16(x, h, n);
    ae_convert_row_bf16(x, b, n);
    for (int i = 0; i < n; i++) {
        ck_assert_uint_eq(h[i], ae_fp32_to_fp16(x[i]));
        ck_assert_uint_eq(b[i], ae_fp32_to_bf16(x[i]));
    }
    if (host_has_avx2()) { /* the AVX2 conversion rounds the same way, tail included */
        float many[37];
        uint16_t s[37], a[37];
        rng_seed(14);
        for (int i = 0; i < 37; i++)
            many[i] = rng_normal() * (i % 3 ? 1.0f : 30000.0f);
        ae_cpu_set_max_isa(AE_ISA_SCALAR);
        ae_convert_row_f16_fast(many, s, 37);
        ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
        ae_convert_row_f16_fast(many, a, 37);
        ck_assert(memcmp(s, a, sizeof s) == 0);
    }
    /* the matmul's activations: the rounded values as f32, at every level (ties, subnormals, overflow,
     * -0, NaN quieted as ae_fp32_to_bf16 does, and a tail past the SIMD width) */
    float many[43];
    for (int i = 0; i < 43; i++)
        many[i] = i < n ? x[i] : rng_normal() * (i % 3 ? 1.0f : 30000.0f);
    uint32_t nan_bits = 0x7f800001u, tie_bits = 0x3f808000u; /* a signalling NaN; 1 + 2^-8 + 2^-16, a bf16 tie */
    memcpy(&many[n], &nan_bits, 4);
    memcpy(&many[n + 1], &tie_bits, 4);
    many[n + 2] = 3.0e-6f; /* an fp16 subnormal */
    for (int isa = 0; isa <= (int)ae_cpu_host_isa(); isa++) {
        float rh[43], rb[43];
        ae_cpu_set_max_isa((enum ae_isa)isa);
        ae_round_row_f16(many, rh, 43);
        ae_round_row_bf16(many, rb, 43);
        ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
        for (int i = 0; i < 43; i++) {
            const float wh = ae_fp16_to_fp32(ae_fp32_to_fp16(many[i])), wb = ae_bf16_to_fp32(ae_fp32_to_bf16(many[i]));
            EXPECT(i == n ? isnan(rh[i]) : memcmp(&rh[i], &wh, 4) == 0, "%s: f16 rounding of %.9g gave %.9g, not %.9g",
                   ae_isa_name((enum ae_isa)isa), many[i], rh[i], wh);
            EXPECT(memcmp(&rb[i], &wb, 4) == 0, "%s: bf16 rounding of %.9g gave %.9g, not %.9g",
                   ae_isa_name((enum ae_isa)isa), many[i], rb[i], wb);
        }
    }
}
END_TEST

/* ---- ops ------------------------------------------------------------------------------------------ */

/* |got - want| <= tol * scale, per value. */
static void expect_close(const float *got, const double *want, int64_t n, double tol, double scale, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        EXPECT(fabs(got[i] - want[i]) <= tol * scale, "%s[%" PRId64 "] = %.9g, expected %.9g (tolerance %.3g)", what, i,
               got[i], want[i], tol * scale);
}

START_TEST(test_rms_norm)
{
    enum { R = 3, N = 96 };
    float x[R * N], w[N], y[R * N];
    double want[R * N];
    rng_seed(20);
    for (int i = 0; i < R * N; i++)
        x[i] = rng_normal() * (float)(1 + i / N * 10);
    for (int i = 0; i < N; i++)
        w[i] = 1.0f + 0.1f * rng_normal();
    const float eps = 1e-5f;
    for (int r = 0; r < R; r++) {
        double ss = 0;
        for (int i = 0; i < N; i++)
            ss += (double)x[r * N + i] * x[r * N + i];
        const double s = 1.0 / sqrt(ss / N + eps);
        for (int i = 0; i < N; i++)
            want[r * N + i] = x[r * N + i] * s * w[i];
    }
    ae_rms_norm(x, w, y, R, N, eps);
    expect_close(y, want, R * N, 1e-6, 4.0, "rms_norm");
    /* without weight, in place */
    for (int r = 0; r < R; r++)
        for (int i = 0; i < N; i++)
            want[r * N + i] /= w[i];
    ae_rms_norm(x, NULL, x, R, N, eps);
    expect_close(x, want, R * N, 1e-6, 4.0, "rms_norm in place");
}
END_TEST

START_TEST(test_softmax)
{
    enum { R = 2, N = 77 };
    float x[R * N], y[R * N];
    double want[R * N];
    rng_seed(21);
    for (int i = 0; i < R * N; i++)
        x[i] = rng_normal() * 5.0f + (i < N ? 0.0f : 300.0f); /* the second row tests the max shift */
    x[5] = -INFINITY; /* a masked value */
    for (int r = 0; r < R; r++) {
        double max = -INFINITY, sum = 0;
        for (int i = 0; i < N; i++)
            max = x[r * N + i] > max ? x[r * N + i] : max;
        for (int i = 0; i < N; i++)
            sum += exp(x[r * N + i] - max);
        for (int i = 0; i < N; i++)
            want[r * N + i] = exp(x[r * N + i] - max) / sum;
    }
    ae_softmax(x, y, R, N);
    expect_close(y, want, R * N, 1e-6, 1.0, "softmax");
    ck_assert(y[5] == 0.0f);
    ae_softmax(x, x, R, N);
    ck_assert(memcmp(x, y, sizeof y) == 0);
}
END_TEST

START_TEST(test_activations)
{
    enum { N = 400 };
    float x[N], y[N];
    double want[N];
    for (int i = 0; i < N; i++)
        x[i] = -12.0f + 24.0f * (float)i / N + 0.0123f;

    ae_silu(x, y, N);
    for (int i = 0; i < N; i++)
        want[i] = x[i] / (1.0 + exp(-(double)x[i]));
    expect_close(y, want, N, 1e-6, 12.0, "silu");

    const double c = sqrt(2.0 / M_PI);
    for (int i = 0; i < N; i++) {
        const double v = x[i];
        want[i] = 0.5 * v * (1.0 + tanh(c * v * (1.0 + 0.044715 * v * v)));
    }
    ae_gelu_f32(x, y, N);
    expect_close(y, want, N, 1e-6, 12.0, "gelu_f32");

    /* ggml's GELU: fp16 input, fp16 output, identity and zero beyond +-10 */
    ae_gelu(x, y, N);
    for (int i = 0; i < N; i++) {
        double g;
        if (x[i] <= -10.0f) {
            g = 0.0;
        } else if (x[i] >= 10.0f) {
            g = x[i];
        } else {
            const double h = ae_fp16_to_fp32(ae_fp32_to_fp16(x[i]));
            g = 0.5 * h * (1.0 + tanh(c * h * (1.0 + 0.044715 * h * h)));
        }
        /* one fp16 rounding of the result: half an ulp of 2^-11 relative, plus the f32 formula */
        EXPECT(fabs(y[i] - g) <= fabs(g) * (1.0 / 2048.0) + 1e-7, "gelu(%g) = %.9g, expected %.9g", x[i], y[i], g);
        const uint16_t h16 = ae_fp32_to_fp16(y[i]);
        EXPECT(x[i] >= 10.0f || ae_fp16_to_fp32(h16) == y[i], "gelu(%g) = %.9g is not an fp16 value", x[i], y[i]);
    }

    const float cap = 30.0f;
    float big[N];
    for (int i = 0; i < N; i++)
        big[i] = x[i] * 10.0f;
    ae_softcap(big, y, N, cap);
    for (int i = 0; i < N; i++)
        want[i] = cap * tanh(big[i] / cap);
    expect_close(y, want, N, 1e-6, 30.0, "softcap");
}
END_TEST

/* The rope reference: angles as ggml builds them (float, theta *= theta_scale per pair), the rotation
 * in double. */
static void rope_reference(const float *x, double *y, int64_t T, int64_t H, int64_t hd, int64_t pos0,
                           const struct ae_rope_params *p, bool closed_form)
{
    const float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_rot);
    /* YaRN: a ramp over the correction dims mixes unscaled angles in; cos and sin get a scale m */
    const struct ae_rope_yarn *yn = p->yarn;
    double lo = 0, hi = 0, m = yn ? yn->attn_factor : 1.0;
    if (yn && yn->ext_factor != 0) {
        const double k = p->n_rot / (2 * log(p->freq_base));
        lo = fmax(0, floor(k * log(yn->n_ctx_orig / (yn->beta_fast * 2 * M_PI))));
        hi = fmin(p->n_rot - 1, ceil(k * log(yn->n_ctx_orig / (yn->beta_slow * 2 * M_PI))));
        m *= 1 + 0.1 * log(1 / p->freq_scale);
    }
    for (int64_t t = 0; t < T; t++) {
        float theta = (float)(pos0 + t);
        double ang[AE_ROPE_MAX_ROT / 2];
        for (int i = 0; i < p->n_rot / 2; i++) {
            const double ff = p->freq_factors ? p->freq_factors[i] : 1.0;
            double extrap;
            if (closed_form)
                extrap = (double)(pos0 + t) * pow(p->freq_base, -2.0 * i / p->n_rot) / ff;
            else
                extrap = (double)(theta / (float)ff);
            ang[i] = (double)p->freq_scale * extrap;
            if (yn && yn->ext_factor != 0) {
                const double ramp = (1 - fmin(1, fmax(0, (i - lo) / fmax(0.001, hi - lo)))) * yn->ext_factor;
                if (closed_form) {
                    ang[i] = ang[i] * (1 - ramp) + extrap * ramp;
                } else { /* the mix in float, as ggml's */
                    const float fe = (float)extrap, fr = (float)ramp, fi = p->freq_scale * fe;
                    const float a = fi * (1 - fr), b = fe * fr;
                    ang[i] = (double)(a + b);
                }
            }
            theta *= theta_scale;
        }
        for (int64_t h = 0; h < H; h++) {
            const float *xr = x + (t * H + h) * hd;
            double *yr = y + (t * H + h) * hd;
            for (int64_t i = 0; i < hd; i++)
                yr[i] = xr[i];
            for (int i = 0; i < p->n_rot / 2; i++) {
                const int a = p->neox ? i : 2 * i, b = p->neox ? i + p->n_rot / 2 : 2 * i + 1;
                yr[a] = (xr[a] * cos(ang[i]) - xr[b] * sin(ang[i])) * m;
                yr[b] = (xr[a] * sin(ang[i]) + xr[b] * cos(ang[i])) * m;
            }
        }
    }
}

START_TEST(test_rope)
{
    enum { T = 3, H = 4, HD = 32 };
    static const float factors[HD / 2] = {1.0f, 1.0f, 2.0f, 4.0f, 8.0f, 1.5f, 1.0f, 3.0f,
                                          1.0f, 1.0f, 2.0f, 4.0f, 8.0f, 1.5f, 1.0f, 3.0f};
    /* deepseek2's YaRN: factor 4, context 512, attn_factor 1 / (1 + 0.1 ln 4) */
    static const struct ae_rope_yarn yarn = {1.0f, 0.8782471f, 512, 32.0f, 1.0f};
    const struct {
        struct ae_rope_params p;
        int64_t pos0;
    } cases[] = {
        {{32, false, 10000.0f, 1.0f, NULL, NULL}, 0},   {{32, true, 10000.0f, 1.0f, NULL, NULL}, 5},
        {{16, false, 10000.0f, 1.0f, NULL, NULL}, 7},   {{16, true, 1000000.0f, 1.0f, NULL, NULL}, 40},
        {{32, true, 500000.0f, 0.25f, factors, NULL}, 90}, {{32, false, 10000.0f, 1.0f, NULL, NULL}, 400},
        {{16, false, 10000.0f, 0.25f, NULL, &yarn}, 300}, {{32, true, 10000.0f, 0.25f, factors, &yarn}, 1000},
    };
    float x[T * H * HD], y[T * H * HD];
    double want[T * H * HD];
    rng_seed(30);
    for (int i = 0; i < T * H * HD; i++)
        x[i] = rng_normal();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct ae_rope_params *p = &cases[c].p;
        char what[64];
        snprintf(what, sizeof what, "rope case %zu", c);
        ae_error err = {{0}};
        ck_assert_msg(ae_rope(x, y, T, H, HD, cases[c].pos0, p, &err) == 0, "%s", err.msg);
        rope_reference(x, want, T, H, HD, cases[c].pos0, p, false);
        expect_close(y, want, T * H * HD, 1e-6, 4.0, what);
        /* against the closed form the float angle drifts by about pos * n_rot * 2^-24 radians */
        rope_reference(x, want, T, H, HD, cases[c].pos0, p, true);
        expect_close(y, want, T * H * HD, 1e-4 + 4e-8 * (double)(cases[c].pos0 + T) * p->n_rot, 4.0, what);
        /* in place gives the same bytes */
        float z[T * H * HD];
        memcpy(z, x, sizeof z);
        ck_assert(ae_rope(z, z, T, H, HD, cases[c].pos0, p, &err) == 0);
        ck_assert(memcmp(z, y, sizeof z) == 0);
    }
    /* position 0 is the identity */
    ck_assert(ae_rope(x, y, 1, H, HD, 0, &cases[0].p, NULL) == 0);
    ck_assert(memcmp(x, y, H * HD * sizeof(float)) == 0);

    ae_error err = {{0}};
    struct ae_rope_params bad = {31, false, 10000.0f, 1.0f, NULL, NULL};
    ck_assert_int_eq(ae_rope(x, y, T, H, HD, 0, &bad, &err), -1);
    ck_assert_msg(strstr(err.msg, "n_rot 31"), "%s", err.msg);
    bad.n_rot = 64;
    ck_assert_int_eq(ae_rope(x, y, T, H, HD, 0, &bad, &err), -1);
    ck_assert_int_eq(ae_rope(x, y, T, H, HD, 0, NULL, &err), -1);
}
END_TEST

/* ---- attention ------------------------------------------------------------------------------------ */

struct attn_case {
    const char *name;
    int64_t T, P, n_ctx;
    int32_t n_head, n_head_kv, hdk, hdv;
    uint32_t kv_type;
    float softcap;
    int64_t window;
};

static const struct attn_case attn_cases[] = {
    {"decode f16", 1, 9, 16, 4, 4, 32, 32, AE_TYPE_F16, 0.0f, 0},
    {"prefill f16 gqa", 5, 3, 12, 8, 2, 32, 32, AE_TYPE_F16, 0.0f, 0},
    {"prefill f32 gqa", 5, 3, 12, 8, 2, 32, 32, AE_TYPE_F32, 0.0f, 0},
    {"first token", 1, 0, 4, 2, 1, 16, 16, AE_TYPE_F32, 0.0f, 0},
    {"softcap f16", 4, 6, 12, 4, 2, 32, 32, AE_TYPE_F16, 50.0f, 0},
    {"window f32", 6, 5, 16, 4, 1, 32, 16, AE_TYPE_F32, 0.0f, 4},
    {"window softcap f16 hd 64/48", 3, 20, 24, 6, 3, 64, 48, AE_TYPE_F16, 20.0f, 7},
    /* several token tiles and key blocks, a head size with a part shorter than 16, a window across blocks */
    {"long prefill f16 gqa hd 72", 37, 20, 64, 8, 2, 72, 72, AE_TYPE_F16, 0.0f, 0},
    {"long window f32 hd 32/40", 40, 30, 80, 4, 2, 32, 40, AE_TYPE_F32, 0.0f, 19},
};
#define N_ATTN_CASES ((int)(sizeof attn_cases / sizeof attn_cases[0]))

static float cache_value(const void *cache, uint32_t type, size_t i)
{
    return type == AE_TYPE_F16 ? ae_fp16_to_fp32(((const uint16_t *)cache)[i]) : ((const float *)cache)[i];
}

static float *run_attention(const struct ae_attn_params *p, const float *q, const void *k, const void *v,
                            enum ae_isa isa, int n_threads)
{
    ae_error err = {{0}};
    ae_pool *pool = ae_pool_create(n_threads, &err);
    ck_assert_msg(pool != NULL, "%s", err.msg);
    void *scratch = xmalloc(ae_attention_scratch_size(p, n_threads));
    const size_t n_out = (size_t)(p->n_tokens * p->n_head * p->head_dim_v);
    float *out = xmalloc(n_out * sizeof(float));
    memset(out, 0xff, n_out * sizeof(float));
    ae_cpu_set_max_isa(isa);
    const int rc = ae_attention(p, q, k, v, out, scratch, pool, &err);
    ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
    ck_assert_msg(rc == 0, "%s", err.msg);
    free(scratch);
    ae_pool_destroy(pool);
    return out;
}

START_TEST(test_attention)
{
    const struct attn_case *c = &attn_cases[_i];
    const struct ae_attn_params p = {
        .n_tokens = c->T, .pos0 = c->P, .n_ctx = c->n_ctx, .n_head = c->n_head, .n_head_kv = c->n_head_kv,
        .head_dim_k = c->hdk, .head_dim_v = c->hdv, .kv_type = c->kv_type,
        .scale = 1.0f / sqrtf((float)c->hdk), .softcap = c->softcap, .window = c->window,
    };
    const int64_t krow = (int64_t)c->n_head_kv * c->hdk, vrow = (int64_t)c->n_head_kv * c->hdv;
    const size_t elt = c->kv_type == AE_TYPE_F16 ? 2 : 4;
    void *K = xmalloc((size_t)(c->n_ctx * krow) * elt);
    void *V = xmalloc((size_t)(c->n_ctx * vrow) * elt);
    /* every row starts as NaN: rows the queries must not read stay so */
    memset(K, 0xff, (size_t)(c->n_ctx * krow) * elt);
    memset(V, 0xff, (size_t)(c->n_ctx * vrow) * elt);

    rng_seed(40 + (uint64_t)_i);
    const int64_t rows = c->P + c->T;
    float *kin = xmalloc((size_t)(rows * krow) * sizeof(float));
    float *vin = xmalloc((size_t)(rows * vrow) * sizeof(float));
    float *q = xmalloc((size_t)(c->T * c->n_head * c->hdk) * sizeof(float));
    for (int64_t i = 0; i < rows * krow; i++)
        kin[i] = rng_normal() * 2.0f;
    for (int64_t i = 0; i < rows * vrow; i++)
        vin[i] = rng_normal();
    for (int64_t i = 0; i < c->T * c->n_head * c->hdk; i++)
        q[i] = rng_normal() * 2.0f;

    /* store the past, then this step's rows, as a program does; rows before a window stay NaN where
     * no query of this step can see them */
    ae_error err = {{0}};
    const int64_t first_seen = c->window > 0 && c->P - c->window + 1 > 0 ? c->P - c->window + 1 : 0;
    ck_assert_msg(ae_kv_store(c->kv_type, K, c->n_ctx, krow, first_seen, kin + first_seen * krow, c->P - first_seen,
                              &err) == 0, "%s", err.msg);
    ck_assert(ae_kv_store(c->kv_type, V, c->n_ctx, vrow, first_seen, vin + first_seen * vrow, c->P - first_seen, &err) == 0);
    ck_assert(ae_kv_store(c->kv_type, K, c->n_ctx, krow, c->P, kin + c->P * krow, c->T, &err) == 0);
    ck_assert(ae_kv_store(c->kv_type, V, c->n_ctx, vrow, c->P, vin + c->P * vrow, c->T, &err) == 0);

    float *out = run_attention(&p, q, K, V, AE_ISA_SCALAR, 1);

    /* the reference, in double, from the stored cache values; with an F16 cache q is rounded to fp16 */
    double *s = xmalloc((size_t)rows * sizeof(double));
    const int group = c->n_head / c->n_head_kv;
    for (int64_t t = 0; t < c->T; t++)
        for (int h = 0; h < c->n_head; h++) {
            const int g = h / group;
            const int64_t pos = c->P + t;
            const int64_t lo = c->window > 0 && pos - c->window + 1 > 0 ? pos - c->window + 1 : 0;
            double max = -INFINITY, sum = 0.0;
            for (int64_t j = lo; j <= pos; j++) {
                double d = 0.0;
                for (int i = 0; i < c->hdk; i++) {
                    float qi = q[(t * c->n_head + h) * c->hdk + i];
                    if (c->kv_type == AE_TYPE_F16)
                        qi = ae_fp16_to_fp32(ae_fp32_to_fp16(qi));
                    d += (double)qi * cache_value(K, c->kv_type, (size_t)(j * krow + g * c->hdk + i));
                }
                d *= p.scale;
                if (c->softcap > 0)
                    d = c->softcap * tanh(d / c->softcap);
                s[j] = d;
                max = d > max ? d : max;
            }
            for (int64_t j = lo; j <= pos; j++)
                sum += exp(s[j] - max);
            double vmax = 0.0;
            for (int i = 0; i < c->hdv; i++) {
                double o = 0.0;
                for (int64_t j = lo; j <= pos; j++) {
                    const double vv = cache_value(V, c->kv_type, (size_t)(j * vrow + g * c->hdv + i));
                    o += exp(s[j] - max) / sum * vv;
                    vmax = fabs(vv) > vmax ? fabs(vv) : vmax;
                }
                const float got = out[(t * c->n_head + h) * c->hdv + i];
                /* float rounding of the scores, the exp approximation (about 2 ulp) and the sums */
                const double tol = 4e-6 * (vmax > 1 ? vmax : 1.0);
                EXPECT(isfinite(got) && fabs(got - o) <= tol, "%s: out[t=%" PRId64 "][h=%d][%d] = %.9g, expected %.9g",
                       c->name, t, h, i, got, o);
            }
        }

    const size_t bytes = (size_t)(c->T * c->n_head * c->hdv) * sizeof(float);
    for (int isa = AE_ISA_AVX2; isa <= (int)ae_cpu_host_isa(); isa++) {
        float *oa = run_attention(&p, q, K, V, (enum ae_isa)isa, 1);
        ck_assert_msg(memcmp(oa, out, bytes) == 0, "%s: %s differs from scalar", c->name, ae_isa_name((enum ae_isa)isa));
        free(oa);
    }
    for (int threads = 2; threads <= 3; threads++) {
        float *ot = run_attention(&p, q, K, V, ae_cpu_host_isa(), threads);
        ck_assert_msg(memcmp(ot, out, bytes) == 0, "%s: %d threads differ from one", c->name, threads);
        free(ot);
    }
    free(s);
    free(out);
    free(q);
    free(vin);
    free(kin);
    free(V);
    free(K);
}
END_TEST

START_TEST(test_attention_errors)
{
    struct ae_attn_params p = {
        .n_tokens = 2, .pos0 = 3, .n_ctx = 4, .n_head = 4, .n_head_kv = 2,
        .head_dim_k = 8, .head_dim_v = 8, .kv_type = AE_TYPE_F16, .scale = 1.0f,
    };
    float q[64] = {0}, out[64];
    uint16_t cache[64] = {0};
    uint8_t scratch[4096] __attribute__((aligned(64)));
    ae_error err = {{0}};
    ck_assert_int_eq(ae_attention(&p, q, cache, cache, out, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "3..4") && strstr(err.msg, "4 rows"), "%s", err.msg);
    p.n_ctx = 8;
    p.n_head_kv = 3;
    ck_assert_int_eq(ae_attention(&p, q, cache, cache, out, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "kv heads"), "%s", err.msg);
    p.n_head_kv = 2;
    p.kv_type = AE_TYPE_Q8_0;
    ck_assert_int_eq(ae_attention(&p, q, cache, cache, out, scratch, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "q8_0"), "%s", err.msg);
    ck_assert_uint_eq(ae_attention_scratch_size(&p, 1), 0);
    p.kv_type = AE_TYPE_F32;
    /* a slice: 16 transposed K rows and 16 V rows (8 values each), then 16 tokens x 2 query heads of
     * q (8), o (8), m and l, rounded up to 64 bytes */
    ck_assert_uint_eq(ae_attention_scratch_size(&p, 2), 2 * (((16 * 8 + 16 * 8 + 32 * 18) * 4 + 63) / 64 * 64));

    ck_assert_int_eq(ae_kv_store(AE_TYPE_F16, cache, 4, 8, 3, q, 2, &err), -1);
    ck_assert_msg(strstr(err.msg, "3..4"), "%s", err.msg);
    ck_assert_int_eq(ae_kv_store(AE_TYPE_BF16, cache, 4, 8, 0, q, 1, &err), -1);
    /* F16 stores round to nearest even */
    const float vals[4] = {1.0f, 1.00048828125f, 1.000732421875f, -70000.0f};
    ck_assert_int_eq(ae_kv_store(AE_TYPE_F16, cache, 8, 4, 2, vals, 1, &err), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(cache[8 + i], ae_fp32_to_fp16(vals[i]));
    ck_assert_uint_eq(cache[9], 0x3c00);
    ck_assert_uint_eq(cache[10], 0x3c01);
    ck_assert_uint_eq(cache[11], 0xfc00);
}
END_TEST

/* A program gives only its own types' kernel tables: a matmul of another type fails, naming it, and
 * works once its table is given. (The suite's other cases give every table first.) */
START_TEST(test_kernel_tables)
{
    float w[32], x[32], y[1], want = 0;
    for (int i = 0; i < 32; i++) {
        w[i] = (float)(i % 5) - 2.0f;
        x[i] = (float)(i % 3);
    }
    ae_error err = {{0}};
    ck_assert(ae_kernels_of(AE_TYPE_F32) == NULL && ae_kernel_gemm(AE_TYPE_F32, AE_LAYOUT_ROWS) == NULL);
    ck_assert_int_eq(ae_matmul(AE_TYPE_F32, AE_LAYOUT_ROWS, w, 1, 32, x, 1, y, NULL, NULL, &err), -1);
    ck_assert_str_eq(err.msg, "matmul: no kernels for f32 weights were given (ae_kernels_use)");
    ae_kernels_use((const struct ae_type_kernels *const[]){&ae_kernels_f32, NULL});
    ck_assert(ae_kernels_of(AE_TYPE_F32) == &ae_kernels_f32 && ae_kernels_of(AE_TYPE_Q4_0) == NULL);
    ck_assert_int_eq(ae_matmul(AE_TYPE_F32, AE_LAYOUT_ROWS, w, 1, 32, x, 1, y, NULL, NULL, &err), 0);
    for (int i = 0; i < 32; i++)
        want += w[i] * x[i]; /* small integers: exact in any order */
    ck_assert_float_eq(y[0], want);
}
END_TEST

static void give_every_table(void)
{
    ae_kernels_use(ae_kernels_all);
}

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("tables"); /* first: before any case has given the tables */
    tcase_add_test(tc, test_kernel_tables);
    suite_add_tcase(s, tc);

    tc = tcase_create("matmul");
    tcase_add_checked_fixture(tc, give_every_table, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_matmul_model, 0, N_MM_ROWS);
    tcase_add_loop_test(tc, test_matmul_odd_shapes, 0, N_MM_ROWS);
    tcase_add_test(tc, test_matmul_exact_q8_0);
    tcase_add_test(tc, test_matmul_gemm_tiles);
    tcase_add_test(tc, test_matmul_float_panels);
    tcase_add_test(tc, test_layout_pack);
    tcase_add_test(tc, test_matmul_prequantized);
    tcase_add_test(tc, test_matmul_parts);
    tcase_add_test(tc, test_matmul_errors);
    tcase_add_test(tc, test_cpu_isa);
    suite_add_tcase(s, tc);

    tc = tcase_create("quantize");
    tcase_add_checked_fixture(tc, give_every_table, NULL);
    tcase_add_test(tc, test_quantize_q8_0);
    tcase_add_test(tc, test_quantize_q8_1);
    tcase_add_test(tc, test_quantize_q8_k);
    tcase_add_test(tc, test_convert_f16_bf16);
    suite_add_tcase(s, tc);

    tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, give_every_table, NULL);
    tcase_add_test(tc, test_rms_norm);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_rope);
    tcase_add_loop_test(tc, test_attention, 0, N_ATTN_CASES);
    tcase_add_test(tc, test_attention_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(kernels_suite());
}
