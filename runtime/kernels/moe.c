/* The mixture-of-experts kernels: routing (top-k, weights), the experts' matmul, and the weighted sum.
 *
 * ae_matmul_id is where a MoE model's speed comes from: it reads only the rows of the experts that the
 * step's tokens chose. It converts the activations once (as ae_matmul does), sorts the (token, slot)
 * pairs by expert, gathers each expert's converted rows into one block, and runs one pool job whose
 * tasks each own a range of one expert's weight rows and multiply them by all of that expert's rows with
 * the level's block kernel for the weights' layout (rows, or x16 when every expert is a whole number of
 * groups: prefill's many tokens per expert then share each unpacked weight block). The results
 * are written in expert order and then put back in (token, slot) order. Each output is computed by one
 * task with the same row kernels as ae_matmul, so it is the same bytes as ae_matmul of that row by that
 * expert, for any thread count and any routing.
 *
 * The routing kernels compute what the IR's topk, moe_weights and moe_sum define (docs/ir.md), which is
 * what ggml computes: an exchange sort for the top k, weights normalized by a double sum, and products
 * summed in slot order.
 */
#include "ae_kernels.h"

#include <inttypes.h>
#include <string.h>

void ae_moe_topk(const float *x, int64_t R, int64_t E, int32_t k, int32_t *ids, int32_t *work)
{
    for (int64_t r = 0; r < R; r++) {
        const float *v = x + r * E;
        for (int64_t j = 0; j < E; j++)
            work[j] = (int32_t)j;
        for (int64_t j = 0; j < k; j++)
            for (int64_t m = j + 1; m < E; m++)
                if (v[work[j]] < v[work[m]]) {
                    const int32_t t = work[j];
                    work[j] = work[m];
                    work[m] = t;
                }
        memcpy(ids + r * k, work, (size_t)k * sizeof *ids);
    }
}

void ae_moe_weights(const float *probs, const int32_t *ids, int64_t R, int64_t E, int64_t k, bool norm, float scale,
                    float *w)
{
    for (int64_t r = 0; r < R; r++) {
        const float *p = probs + r * E;
        float *wr = w + r * k;
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            wr[j] = p[ids[r * k + j]];
            sum += (double)wr[j];
        }
        const float s = (float)sum;
        for (int64_t j = 0; j < k; j++) {
            if (norm)
                wr[j] = wr[j] / s;
            wr[j] = wr[j] * scale;
        }
    }
}

void ae_moe_sum(const float *x, const float *w, int64_t R, int64_t k, int64_t D, float *y)
{
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * k * D, *wr = w + r * k;
        float *yr = y + r * D;
        for (int64_t d = 0; d < D; d++) {
            const float p0 = wr[0] * xr[d];
            yr[d] = p0;
        }
        for (int64_t j = 1; j < k; j++)
            for (int64_t d = 0; d < D; d++) {
                const float p = wr[j] * xr[j * D + d];
                yr[d] = yr[d] + p;
            }
    }
}

/* ---- The experts' matmul -------------------------------------------------------------------------- */

/* Activation rows per pass of a block kernel (as ae_matmul), the multiple of rows a task takes (a whole
 * number of x16 groups), and the most weight bytes a task takes of one expert. */
#define TILE_COLS 64
#define TILE_ROWS 16
#define TASK_BYTES (512u * 1024u)

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* The scratch layout: converted rows, gathered rows, outputs in expert order, then the tables. */
struct id_layout {
    size_t xq, xg, yt, count, order, task; /* offsets */
    size_t total;
    size_t x_row;                          /* bytes of one converted activation row */
};

static bool id_layout(uint32_t type, int64_t E, int64_t N, int64_t K, int64_t R, int64_t k, bool x_per_slot,
                      struct id_layout *l)
{
    uint64_t x_row;
    const uint32_t vt = ae_matmul_vec_type(type);
    if (vt == AE_TYPE_ID_LIMIT || E < 1 || N < 0 || K < 0 || R < 0 || k < 1)
        return false;
    if (type == AE_TYPE_F32)
        x_row = (uint64_t)K * sizeof(float);
    else if ((x_row = ae_matmul_act_row_bytes(type, K)) == 0 && K > 0)
        return false;
    const double slots = (double)R * (double)k, rows = x_per_slot ? slots : (double)R;
    if ((double)x_row * (slots + rows) + slots * (double)N * 4.0 + ((double)E + 1) * 16.0 + slots * 8.0 > 1e15)
        return false;
    size_t at = 0;
    l->x_row = (size_t)x_row;
    l->xq = at;
    at += type == AE_TYPE_F32 ? 0 : align64((size_t)x_row * (size_t)rows);
    l->xg = at;
    at += align64((size_t)x_row * (size_t)slots);
    l->yt = at;
    at += align64((size_t)slots * (size_t)N * sizeof(float));
    l->count = at; /* E + 1 offsets into the expert-ordered rows */
    at += align64((size_t)(E + 1) * sizeof(int64_t));
    l->task = at; /* E + 1 offsets into the task list */
    at += align64((size_t)(E + 1) * sizeof(int64_t));
    l->order = at; /* for each expert-ordered row, its (token, slot) index */
    at += align64((size_t)slots * sizeof(int64_t));
    l->total = at;
    return true;
}

size_t ae_matmul_id_scratch_size(uint32_t type, int64_t E, int64_t N, int64_t K, int64_t R, int64_t k, bool x_per_slot)
{
    struct id_layout l;
    return id_layout(type, E, N, K, R, k, x_per_slot, &l) ? l.total : 0;
}

struct id_job {
    ae_gemm_fn gemm;
    const uint8_t *W;
    size_t expert_bytes;     /* one expert's matrix in the layout */
    size_t w_stride;         /* bytes of one group of rows (one row in the rows layout) */
    int64_t group;           /* rows per group */
    size_t x_row;
    int64_t N, K, E;
    const uint8_t *xg;       /* gathered converted rows, expert by expert */
    float *yt;               /* outputs in the same order */
    const int64_t *first;    /* first[e]: expert e's first gathered row; first[E]: the total */
    const int64_t *task0;    /* task0[e]: expert e's first task; task0[E]: the task count */
    int64_t rows_per_task;
};

static void id_task(void *vctx, int64_t task, int thread)
{
    (void)thread;
    const struct id_job *job = vctx;
    int64_t e = 0;
    while (job->task0[e + 1] <= task)
        e++;
    const int64_t n0 = (task - job->task0[e]) * job->rows_per_task;
    const int64_t n1 = n0 + job->rows_per_task < job->N ? n0 + job->rows_per_task : job->N;
    const int64_t m0 = job->first[e], m1 = job->first[e + 1];
    const uint8_t *W = job->W + (size_t)e * job->expert_bytes + (size_t)(n0 / job->group) * job->w_stride;
    for (int64_t m = m0; m < m1; m += TILE_COLS) {
        const int64_t mc = m1 - m < TILE_COLS ? m1 - m : TILE_COLS;
        job->gemm(job->K, W, job->w_stride, n1 - n0, job->xg + (size_t)m * job->x_row, job->x_row, mc,
                  job->yt + m * job->N + n0, job->N);
    }
}

int ae_matmul_id(uint32_t type, enum ae_layout layout, const void *W, int64_t E, int64_t N, int64_t K, const float *X,
                 bool x_per_slot, const int32_t *ids, int64_t R, int64_t k, float *Y, void *scratch, ae_pool *pool,
                 ae_error *err)
{
    struct id_layout l;
    if (!ae_matmul_supports(type) || !ae_layout_supports(type, layout))
        return ae_fail(err, "matmul_id: weight type %s (%" PRIu32 ") is not supported in layout %s", ae_type_name(type),
                       type, ae_layout_name(layout));
    const ae_gemm_fn gemm = ae_kernel_gemm(type, layout);
    if (!gemm)
        return ae_fail(err, "matmul_id: no kernels for %s weights were given (ae_kernels_use)", ae_type_name(type));
    if (!id_layout(type, E, N, K, R, k, x_per_slot, &l))
        return ae_fail(err, "matmul_id: bad sizes (experts %" PRId64 ", N %" PRId64 ", K %" PRId64 ", rows %" PRId64
                       ", k %" PRId64 ") for type %s", E, N, K, R, k, ae_type_name(type));
    const int64_t slots = R * k;
    if (slots == 0 || N == 0)
        return 0;
    if (!W || !X || !ids || !Y || !scratch)
        return ae_fail(err, "matmul_id: NULL weights, activations, ids, output or scratch");
    if ((uintptr_t)scratch % 64 != 0)
        return ae_fail(err, "matmul_id: scratch at %p is not 64-byte aligned", scratch);
    for (int64_t s = 0; s < slots; s++)
        if (ids[s] < 0 || ids[s] >= E)
            return ae_fail(err, "matmul_id: token %" PRId64 " slot %" PRId64 " chose expert %" PRId32 ", outside 0..%" PRId64,
                           s / k, s % k, ids[s], E - 1);

    uint8_t *base = scratch;
    const uint8_t *xq = (const uint8_t *)X;
    if (type != AE_TYPE_F32) {
        if (ae_matmul_quantize(type, X, K, x_per_slot ? slots : R, base + l.xq, pool, err) != 0)
            return -1;
        xq = base + l.xq;
    }
    /* Sort the (token, slot) pairs by expert (stable: in token order within an expert). */
    int64_t *first = (int64_t *)(base + l.count), *task0 = (int64_t *)(base + l.task);
    int64_t *order = (int64_t *)(base + l.order);
    memset(first, 0, (size_t)(E + 1) * sizeof *first);
    for (int64_t s = 0; s < slots; s++)
        first[ids[s] + 1]++;
    for (int64_t e = 0; e < E; e++)
        first[e + 1] += first[e];
    for (int64_t e = 0; e <= E; e++)
        task0[e] = first[e]; /* a running position while placing */
    for (int64_t s = 0; s < slots; s++)
        order[task0[ids[s]]++] = s;
    uint8_t *xg = base + l.xg;
    for (int64_t m = 0; m < slots; m++) {
        const int64_t src = x_per_slot ? order[m] : order[m] / k;
        memcpy(xg + (size_t)m * l.x_row, xq + (size_t)src * l.x_row, l.x_row);
    }

    /* Tasks: each active expert's N rows in chunks, about four tasks per thread over the whole job, and
     * no chunk larger than TASK_BYTES of weights (they stay in cache while the expert's rows pass). */
    const uint64_t w_stride = ae_layout_group_bytes(type, layout, K);
    const int64_t group = ae_layout_rows_per_group(layout);
    int64_t active = 0;
    for (int64_t e = 0; e < E; e++)
        active += first[e + 1] > first[e];
    const int threads = ae_pool_threads(pool);
    int64_t rows_per_task = N;
    if (threads > 1 && (double)N * (double)K * (double)slots >= 32768.0) {
        const int64_t want = (int64_t)threads * 4;
        rows_per_task = (N * active + want - 1) / want;
    }
    if (w_stride > 0 && (uint64_t)rows_per_task / (uint64_t)group * w_stride > TASK_BYTES) {
        const int64_t cap = (int64_t)(TASK_BYTES / w_stride) * group;
        rows_per_task = cap > group ? cap : group;
    }
    rows_per_task = (rows_per_task + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS;
    if (rows_per_task > N)
        rows_per_task = N;
    const int64_t per_expert = (N + rows_per_task - 1) / rows_per_task;
    task0[0] = 0;
    for (int64_t e = 0; e < E; e++)
        task0[e + 1] = task0[e] + (first[e + 1] > first[e] ? per_expert : 0);

    struct id_job job = {
        .gemm = gemm,
        .W = W,
        .expert_bytes = (size_t)ae_layout_bytes(type, layout, N, K),
        .w_stride = (size_t)w_stride,
        .group = group,
        .x_row = l.x_row,
        .N = N,
        .K = K,
        .E = E,
        .xg = xg,
        .yt = (float *)(base + l.yt),
        .first = first,
        .task0 = task0,
        .rows_per_task = rows_per_task,
    };
    if (K == 0)
        memset(job.yt, 0, (size_t)(slots * N) * sizeof(float));
    else
        ae_pool_run(pool, id_task, &job, task0[E]);
    for (int64_t m = 0; m < slots; m++)
        memcpy(Y + order[m] * N, job.yt + m * N, (size_t)N * sizeof *Y);
    return 0;
}
