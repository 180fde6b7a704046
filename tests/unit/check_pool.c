/* Tests of the kernels' thread pool (runtime/kernels/pool.c).
 *
 * Every task of a run executes exactly once with a thread index in range, for any number of threads
 * and tasks; runs back to back reuse the same workers; a run from inside a task stays inline; runs
 * from two outside threads at once both complete; bad thread counts are refused with a message. The
 * determinism of real kernels across thread counts is tested in check_kernels.
 */
#include "ae_pool.h"
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define EXPECT(cond, ...)                                                                                  \
    do {                                                                                                   \
        if (!(cond))                                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                                     \
    } while (0)

enum { MAX_TASKS = 5000 };

struct count_ctx {
    atomic_int runs[MAX_TASKS];
    atomic_int bad_thread;
    atomic_int by_thread[8];
    int n_threads;
};

static void count_task(void *vctx, int64_t task, int thread)
{
    struct count_ctx *c = vctx;
    atomic_fetch_add(&c->runs[task], 1);
    if (thread < 0 || thread >= c->n_threads)
        atomic_fetch_add(&c->bad_thread, 1);
    else if (thread < 8)
        atomic_fetch_add(&c->by_thread[thread], 1);
}

static void check_counts(struct count_ctx *c, int64_t n_tasks, int expect)
{
    for (int64_t t = 0; t < n_tasks; t++)
        EXPECT(atomic_load(&c->runs[t]) == expect, "task %lld ran %d times, expected %d", (long long)t,
               atomic_load(&c->runs[t]), expect);
    for (int64_t t = n_tasks; t < MAX_TASKS; t++)
        EXPECT(atomic_load(&c->runs[t]) == 0, "task %lld of %lld ran", (long long)t, (long long)n_tasks);
    ck_assert_int_eq(atomic_load(&c->bad_thread), 0);
}

START_TEST(test_every_task_once)
{
    static const int threads[] = {1, 2, 3, 4, 7};
    static const int64_t tasks[] = {0, 1, 2, 3, 5, 64, 1000, MAX_TASKS};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        ae_error err = {{0}};
        ae_pool *pool = ae_pool_create(threads[i], &err);
        ck_assert_msg(pool != NULL, "%s", err.msg);
        ck_assert_int_eq(ae_pool_threads(pool), threads[i]);
        for (size_t j = 0; j < sizeof tasks / sizeof tasks[0]; j++) {
            struct count_ctx *c = calloc(1, sizeof *c);
            ck_assert(c != NULL);
            c->n_threads = threads[i];
            ae_pool_run(pool, count_task, c, tasks[j]);
            check_counts(c, tasks[j], 1);
            free(c);
        }
        ae_pool_destroy(pool);
    }
}
END_TEST

/* One thread, or no pool: the tasks run inline, in order, on thread 0. */
struct order_ctx {
    int64_t seen[16];
    int n;
    int threads_nonzero;
};

static void order_task(void *vctx, int64_t task, int thread)
{
    struct order_ctx *c = vctx;
    c->seen[c->n++] = task;
    c->threads_nonzero += thread != 0;
}

START_TEST(test_inline)
{
    ae_pool *one = ae_pool_create(1, NULL);
    ck_assert(one != NULL);
    ae_pool *pools[2] = {NULL, one};
    for (int p = 0; p < 2; p++) {
        struct order_ctx c = {{0}, 0, 0};
        ae_pool_run(pools[p], order_task, &c, 10);
        ck_assert_int_eq(c.n, 10);
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(c.seen[i], i);
        ck_assert_int_eq(c.threads_nonzero, 0);
    }
    ck_assert_int_eq(ae_pool_threads(NULL), 1);
    ae_pool_destroy(one);
    ae_pool_destroy(NULL);
}
END_TEST

/* Many short runs in a row: the workers' hand-off between generations. */
static void add_task(void *vctx, int64_t task, int thread)
{
    (void)thread;
    atomic_fetch_add((atomic_llong *)vctx, task + 1);
}

START_TEST(test_many_runs)
{
    ae_pool *pool = ae_pool_create(4, NULL);
    ck_assert(pool != NULL);
    atomic_llong sum = 0;
    long long expect = 0;
    for (int r = 0; r < 3000; r++) {
        const int64_t n = r % 9;
        ae_pool_run(pool, add_task, &sum, n);
        expect += n * (n + 1) / 2;
        EXPECT(atomic_load(&sum) == expect, "run %d: sum %lld, expected %lld", r, (long long)atomic_load(&sum),
               expect);
    }
    ae_pool_destroy(pool);
}
END_TEST

/* A task that starts a run on its own pool: the inner run executes inline on the same thread. */
struct nested_ctx {
    ae_pool *pool;
    atomic_int inner_runs;
    atomic_int wrong_thread;
};

struct inner_ctx {
    struct nested_ctx *outer;
    int thread;
};

static void inner_task(void *vctx, int64_t task, int thread)
{
    (void)task;
    struct inner_ctx *c = vctx;
    atomic_fetch_add(&c->outer->inner_runs, 1);
    if (thread != c->thread)
        atomic_fetch_add(&c->outer->wrong_thread, 1);
}

static void outer_task(void *vctx, int64_t task, int thread)
{
    (void)task;
    struct nested_ctx *c = vctx;
    struct inner_ctx inner = {c, thread};
    ae_pool_run(c->pool, inner_task, &inner, 5);
}

START_TEST(test_nested_run)
{
    struct nested_ctx c = {.pool = ae_pool_create(3, NULL)};
    ck_assert(c.pool != NULL);
    ae_pool_run(c.pool, outer_task, &c, 20);
    ck_assert_int_eq(atomic_load(&c.inner_runs), 100);
    ck_assert_int_eq(atomic_load(&c.wrong_thread), 0);
    ae_pool_destroy(c.pool);
}
END_TEST

/* Two outside threads share one pool: their runs take turns and both complete. */
struct outside_ctx {
    ae_pool *pool;
    atomic_llong sum;
};

static void *outside_main(void *arg)
{
    struct outside_ctx *c = arg;
    for (int r = 0; r < 300; r++)
        ae_pool_run(c->pool, add_task, &c->sum, 10);
    return NULL;
}

START_TEST(test_two_callers)
{
    ae_pool *pool = ae_pool_create(3, NULL);
    ck_assert(pool != NULL);
    struct outside_ctx a = {pool, 0}, b = {pool, 0};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, outside_main, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, outside_main, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(atomic_load(&a.sum), 300 * 55);
    ck_assert_int_eq(atomic_load(&b.sum), 300 * 55);
    ae_pool_destroy(pool);
}
END_TEST

/* Per-task outputs do not depend on the thread count (each task computes its own values in order). */
struct sum_ctx {
    const float *x;
    float *out;
    int64_t per_task;
};

static void sum_task(void *vctx, int64_t task, int thread)
{
    (void)thread;
    const struct sum_ctx *c = vctx;
    float s = 0.0f;
    for (int64_t i = 0; i < c->per_task; i++)
        s += c->x[task * c->per_task + i] * (float)(i % 7 + 1);
    c->out[task] = s;
}

START_TEST(test_deterministic_outputs)
{
    enum { TASKS = 97, PER = 211 };
    float *x = malloc(TASKS * PER * sizeof(float));
    float out1[TASKS], outn[TASKS];
    ck_assert(x != NULL);
    for (int i = 0; i < TASKS * PER; i++)
        x[i] = (float)((i * 7919) % 1000) / 997.0f - 0.5f;
    struct sum_ctx c = {x, out1, PER};
    ae_pool_run(NULL, sum_task, &c, TASKS);
    for (int threads = 2; threads <= 4; threads++) {
        ae_pool *pool = ae_pool_create(threads, NULL);
        ck_assert(pool != NULL);
        memset(outn, 0, sizeof outn);
        c.out = outn;
        ae_pool_run(pool, sum_task, &c, TASKS);
        ck_assert_msg(memcmp(out1, outn, sizeof out1) == 0, "%d threads differ from one", threads);
        ae_pool_destroy(pool);
    }
    free(x);
}
END_TEST

START_TEST(test_bad_counts)
{
    ae_error err = {{0}};
    ck_assert(ae_pool_create(0, &err) == NULL);
    ck_assert_msg(strstr(err.msg, "0 threads") != NULL, "%s", err.msg);
    ck_assert(ae_pool_create(AE_POOL_MAX_THREADS + 1, &err) == NULL);
    ck_assert_msg(strstr(err.msg, "expected 1 to") != NULL, "%s", err.msg);
    ck_assert(ae_pool_create(-3, NULL) == NULL);
}
END_TEST

/* Pools come and go; a pool that never ran stops cleanly. */
START_TEST(test_create_destroy)
{
    for (int i = 0; i < 50; i++) {
        ae_pool *pool = ae_pool_create(1 + i % 4, NULL);
        ck_assert(pool != NULL);
        if (i % 2) {
            atomic_llong sum = 0;
            ae_pool_run(pool, add_task, &sum, 4);
            ck_assert_int_eq(atomic_load(&sum), 10);
        }
        ae_pool_destroy(pool);
    }
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_task_once);
    tcase_add_test(tc, test_inline);
    tcase_add_test(tc, test_many_runs);
    tcase_add_test(tc, test_nested_run);
    tcase_add_test(tc, test_two_callers);
    tcase_add_test(tc, test_deterministic_outputs);
    tcase_add_test(tc, test_bad_counts);
    tcase_add_test(tc, test_create_destroy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(pool_suite());
}
