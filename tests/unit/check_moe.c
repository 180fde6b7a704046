/* Tests of the mixture-of-experts kernels (runtime/kernels/moe.c).
 *
 * ae_matmul_id runs the real 3-D expert tensors of the tiny-mixtral files (F32, Q8_0, Q4_0, and the
 * Q5_0 / Q4_K / Q6_K experts of the Q4_K_M mix) with random routings: every output must be the bytes
 * ae_matmul gives for that activation row and the chosen expert's matrix, whatever the routing, the
 * weights' layout (rows, or x16 where the type has it), the instruction-set level and the thread count. The routing kernels are checked against their
 * definitions (docs/ir.md), ties included.
 */
#include "ae_gguf.h"
#include "ae_kernels.h"
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPECT(cond, ...)                                                                                  \
    do {                                                                                                   \
        if (!(cond))                                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                                     \
    } while (0)

static uint64_t rng_state;

static uint32_t rng_next(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static float rng_normal(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += (float)rng_next() / 2147483648.0f - 1.0f;
    return s * 0.8660254f;
}

static void *xmalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    ck_assert_msg(p != NULL, "out of memory (%zu bytes)", n);
    return p;
}

/* ---- ae_matmul_id against ae_matmul ---------------------------------------------------------------- */

static const struct id_row {
    const char *model, *tensor;
    uint32_t type;
} id_rows[] = {
    {"tiny-mixtral-f32", "blk.0.ffn_up_exps.weight", AE_TYPE_F32},
    {"tiny-mixtral-q8_0", "blk.1.ffn_gate_exps.weight", AE_TYPE_Q8_0},
    {"tiny-mixtral-q4_0", "blk.0.ffn_down_exps.weight", AE_TYPE_Q4_0},
    {"tiny-mixtral-q4_k_m", "blk.0.ffn_up_exps.weight", AE_TYPE_Q5_0},
    {"tiny-mixtral-q4_k_m", "blk.0.ffn_down_exps.weight", AE_TYPE_Q4_K},
    {"tiny-mixtral-q4_k_m", "blk.1.ffn_down_exps.weight", AE_TYPE_Q6_K},
};

/* Y of ae_matmul_id with a pool of n_threads at level isa. */
static float *run_id(uint32_t type, enum ae_layout layout, const void *W, int64_t E, int64_t N, int64_t K,
                     const float *X, bool per_slot, const int32_t *ids, int64_t R, int64_t k, enum ae_isa isa,
                     int n_threads)
{
    ae_error err = {{0}};
    ae_pool *pool = ae_pool_create(n_threads, &err);
    ck_assert_msg(pool != NULL, "%s", err.msg);
    size_t bytes = ae_matmul_id_scratch_size(type, E, N, K, R, k, per_slot);
    ck_assert_uint_gt(bytes, 0);
    void *scratch = xmalloc(bytes);
    float *Y = xmalloc((size_t)(R * k * N) * sizeof *Y);
    memset(Y, 0xff, (size_t)(R * k * N) * sizeof *Y);
    ae_cpu_set_max_isa(isa);
    int rc = ae_matmul_id(type, layout, W, E, N, K, X, per_slot, ids, R, k, Y, scratch, pool, &err);
    ae_cpu_set_max_isa((enum ae_isa)(AE_ISA_COUNT - 1));
    ck_assert_msg(rc == 0, "%s", err.msg);
    free(scratch);
    ae_pool_destroy(pool);
    return Y;
}

START_TEST(test_matmul_id)
{
    const struct id_row *row = &id_rows[_i];
    char rel[256];
    ae_error err = {{0}};
    ae_gguf *g;
    snprintf(rel, sizeof rel, "models/synthetic/%s.gguf", row->model);
    ck_assert_msg(ae_gguf_open(&g, test_shared_path(rel), &err) == 0, "%s", err.msg);
    const struct ae_gguf_tensor *t = ae_gguf_find_tensor(g, row->tensor);
    ck_assert_msg(t && t->type == row->type && t->n_dims == 3, "%s: %s is not a 3-D %s tensor", row->model, row->tensor,
                  ae_type_name(row->type));
    const int64_t K = t->ne[0], N = t->ne[1], E = t->ne[2];
    void *W = xmalloc(t->n_bytes);
    memcpy(W, t->data, t->n_bytes);
    const size_t expert_bytes = t->n_bytes / (size_t)E;
    /* the same experts interleaved, E * N rows at once (N is whole groups) */
    void *Wx = NULL;
    if (ae_layout_supports(row->type, AE_LAYOUT_X16)) {
        ck_assert_int_eq(N % ae_layout_rows_per_group(AE_LAYOUT_X16), 0);
        Wx = xmalloc(ae_layout_bytes(row->type, AE_LAYOUT_X16, E * N, K));
        ck_assert_msg(ae_layout_pack(row->type, AE_LAYOUT_X16, W, E * N, K, Wx, &err) == 0, "%s", err.msg);
    }
    ae_gguf_close(g);

    static const int64_t Rs[] = {1, 3, 17};
    for (size_t ri = 0; ri < sizeof Rs / sizeof Rs[0]; ri++) {
        for (int per_slot = 0; per_slot <= 1; per_slot++) {
            const int64_t R = Rs[ri], k = 2, nx = per_slot ? R * k : R;
            rng_state = 1234 + (uint64_t)(ri * 2 + (size_t)per_slot);
            float *X = xmalloc((size_t)(nx * K) * sizeof *X);
            for (int64_t i = 0; i < nx * K; i++)
                X[i] = rng_normal();
            int32_t ids[17 * 2];
            for (int64_t r = 0; r < R; r++) {
                ids[r * k] = (int32_t)(rng_next() % (uint32_t)E);
                ids[r * k + 1] = (int32_t)((ids[r * k] + 1 + rng_next() % (uint32_t)(E - 1)) % E);
            }
            float *Y = run_id(row->type, AE_LAYOUT_ROWS, W, E, N, K, X, per_slot, ids, R, k, AE_ISA_SCALAR, 1);
            /* each (row, slot) by itself through ae_matmul */
            float *y1 = xmalloc((size_t)N * sizeof *y1);
            void *scr = xmalloc(ae_matmul_scratch_size(row->type, K, 1) + 64);
            for (int64_t s = 0; s < R * k; s++) {
                const float *x = X + (per_slot ? s : s / k) * K;
                const uint8_t *We = (const uint8_t *)W + (size_t)ids[s] * expert_bytes;
                ck_assert_msg(ae_matmul(row->type, AE_LAYOUT_ROWS, We, N, K, x, 1, y1, scr, NULL, &err) == 0, "%s",
                              err.msg);
                for (int64_t n = 0; n < N; n++)
                    EXPECT(memcmp(&y1[n], &Y[s * N + n], sizeof(float)) == 0,
                           "%s %s R=%" PRId64 " per_slot=%d: slot %" PRId64 " (expert %" PRId32 ") row %" PRId64
                           ": %.9g, ae_matmul %.9g", row->model, row->tensor, R, per_slot, s, ids[s], n,
                           (double)Y[s * N + n], (double)y1[n]);
            }
            for (int layout = AE_LAYOUT_ROWS; layout <= (Wx ? AE_LAYOUT_X16 : AE_LAYOUT_ROWS); layout++)
                for (int isa = AE_ISA_SCALAR; isa <= (int)ae_cpu_host_isa(); isa++)
                    for (int threads = 1; threads <= 4; threads += 3) {
                        float *Yt = run_id(row->type, (enum ae_layout)layout, layout ? Wx : W, E, N, K, X, per_slot,
                                           ids, R, k, (enum ae_isa)isa, threads);
                        EXPECT(memcmp(Yt, Y, (size_t)(R * k * N) * sizeof *Y) == 0, "%s %s R=%" PRId64 ": %s %s with "
                               "%d threads differs from the scalar path", row->model, row->tensor, R,
                               ae_layout_name((enum ae_layout)layout), ae_isa_name((enum ae_isa)isa), threads);
                        free(Yt);
                    }
            free(scr);
            free(y1);
            free(Y);
            free(X);
        }
    }
    free(Wx);
    free(W);
}
END_TEST

START_TEST(test_matmul_id_errors)
{
    float W[2 * 3 * 32] = {0}, X[2 * 32] = {0}, Y[2 * 2 * 3];
    int32_t ids[4] = {0, 1, 1, 2};
    ae_error err = {{0}};
    size_t bytes = ae_matmul_id_scratch_size(AE_TYPE_F32, 2, 3, 32, 2, 2, false);
    void *scratch = xmalloc(bytes);
    ck_assert_int_eq(ae_matmul_id(AE_TYPE_F32, AE_LAYOUT_ROWS, W, 2, 3, 32, X, false, ids, 2, 2, Y, scratch, NULL, &err),
                     -1);
    ck_assert_msg(strstr(err.msg, "token 1 slot 1") && strstr(err.msg, "expert 2") && strstr(err.msg, "0..1"), "%s",
                  err.msg);
    ids[3] = 0;
    ck_assert_msg(ae_matmul_id(AE_TYPE_F32, AE_LAYOUT_ROWS, W, 2, 3, 32, X, false, ids, 2, 2, Y, scratch, NULL, &err) == 0,
                  "%s",
                  err.msg);
    ck_assert_int_eq(ae_matmul_id(AE_TYPE_IQ2_XXS, AE_LAYOUT_ROWS, W, 2, 3, 256, X, false, ids, 2, 2, Y, scratch, NULL,
                                  &err), -1);
    ck_assert_msg(strstr(err.msg, "iq2_xxs"), "%s", err.msg);
    ck_assert_uint_eq(ae_matmul_id_scratch_size(AE_TYPE_Q4_0, 2, 3, 33, 2, 2, false), 0);
    ck_assert_uint_eq(ae_matmul_id_scratch_size(AE_TYPE_Q4_0, 0, 3, 32, 2, 2, false), 0);
    free(scratch);
}
END_TEST

/* ---- Routing ------------------------------------------------------------------------------------- */

static const struct topk_row {
    float x[6];
    int32_t k;
    int32_t want[3];
} topk_rows[] = {
    {{0.1f, 0.5f, 0.2f, 0.9f, 0.3f, 0.0f}, 3, {3, 1, 4}},
    {{1, 1, 1, 1, 1, 1}, 2, {0, 1}},           /* all equal: nothing moves */
    {{0.0f, 2.0f, 2.0f, 1.0f, 0.0f, 0.0f}, 2, {1, 2}}, /* a tie keeps the earlier one first */
    {{-1, -2, -3, -4, -5, -6}, 1, {0}},
    {{0.0f, 0.0f, 3.0f, 0.0f, 3.0f, 5.0f}, 3, {5, 4, 2}}, /* the exchange sort's order for a tie after a swap */
};

START_TEST(test_topk)
{
    const struct topk_row *t = &topk_rows[_i];
    int32_t ids[3], work[6];
    ae_moe_topk(t->x, 1, 6, t->k, ids, work);
    for (int j = 0; j < t->k; j++)
        ck_assert_msg(ids[j] == t->want[j], "row %d: ids[%d] = %" PRId32 ", expected %" PRId32, _i, j, ids[j], t->want[j]);
}
END_TEST

START_TEST(test_weights_and_sum)
{
    const float probs[2 * 4] = {0.1f, 0.2f, 0.3f, 0.4f, 0.7f, 0.1f, 0.1f, 0.1f};
    const int32_t ids[2 * 2] = {3, 2, 0, 1};
    float w[4];
    ae_moe_weights(probs, ids, 2, 4, 2, false, 1.5f, w);
    ck_assert_float_eq(w[0], 0.4f * 1.5f);
    ck_assert_float_eq(w[3], 0.1f * 1.5f);
    ae_moe_weights(probs, ids, 2, 4, 2, true, 1.0f, w);
    ck_assert_float_eq(w[0], 0.4f / (float)((double)0.4f + (double)0.3f));
    ck_assert_float_eq(w[2], 0.7f / (float)((double)0.7f + (double)0.1f));
    ck_assert_float_eq_tol(w[2] + w[3], 1.0f, 1e-7f);

    const float x[2 * 3 * 2] = {1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6};
    const float ws[2 * 3] = {0.5f, 0.25f, 2.0f, 1.0f, 0.0f, -1.0f};
    float y[4];
    ae_moe_sum(x, ws, 2, 3, 2, y);
    ck_assert_float_eq(y[0], 0.5f * 1 + 0.25f * 3 + 2.0f * 5);
    ck_assert_float_eq(y[1], 0.5f * 2 + 0.25f * 4 + 2.0f * 6);
    ck_assert_float_eq(y[2], -1.0f + 0.0f + 5.0f);
    ck_assert_float_eq(y[3], -2.0f + 0.0f + 6.0f);
}
END_TEST

static Suite *moe_suite(void)
{
    Suite *s = suite_create("moe");
    TCase *tc = tcase_create("matmul_id");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_matmul_id, 0, (int)(sizeof id_rows / sizeof id_rows[0]));
    tcase_add_test(tc, test_matmul_id_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("routing");
    tcase_add_loop_test(tc, test_topk, 0, (int)(sizeof topk_rows / sizeof topk_rows[0]));
    tcase_add_test(tc, test_weights_and_sum);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    ae_kernels_use(ae_kernels_all);
    return test_run_suite(moe_suite());
}
