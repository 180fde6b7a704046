/* The kernels' thread pool (ae_pool.h): n - 1 pthreads that sleep on a condition variable between runs.
 *
 * A run publishes (fn, ctx, n_tasks) under the pool's mutex, bumps a generation counter and wakes the
 * workers; every thread, the caller included, then takes task indices from one atomic counter until
 * they run out, and the last worker to finish wakes the caller. Nothing is allocated after creation.
 * The mutex hand-offs at the start and the end of a run order every task's writes before the caller
 * returns. Results do not depend on which thread took which task, because kernels never split one
 * output value across tasks.
 */
#include "ae_pool.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct pool_worker {
    ae_pool *pool;
    pthread_t thread;
    int index; /* 1..n_threads-1; the caller of a run is thread 0 */
};

struct ae_pool {
    int n_threads;
    pthread_mutex_t run_lock;   /* held for a whole run: serializes runs from outside threads */
    pthread_mutex_t lock;       /* guards everything below except next_task */
    pthread_cond_t wake;        /* workers wait here for a new generation or stop */
    pthread_cond_t done;        /* the caller waits here for busy to reach 0 */
    uint64_t generation;
    bool stop;
    int busy;                   /* workers that have not finished the current generation */
    ae_pool_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_int_fast64_t next_task;
    bool in_run;                /* a run is in progress ... */
    pthread_t runner;           /* ... started by this thread, which works as thread 0 */
    struct pool_worker *workers; /* n_threads - 1 */
};

/* The index of the calling thread in the pool while it runs one of the pool's tasks, or -1, so that a
 * run started from inside a task stays inline. (Found by thread id rather than thread-local storage,
 * which programs linked by libtcc cannot use.) */
static int pool_self(ae_pool *pool)
{
    const pthread_t self = pthread_self();
    for (int i = 0; i < pool->n_threads - 1; i++)
        if (pthread_equal(self, pool->workers[i].thread))
            return pool->workers[i].index;
    pthread_mutex_lock(&pool->lock);
    const int index = pool->in_run && pthread_equal(self, pool->runner) ? 0 : -1;
    pthread_mutex_unlock(&pool->lock);
    return index;
}

static void pool_take_tasks(ae_pool *pool, int thread)
{
    for (;;) {
        const int64_t t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (t >= pool->n_tasks)
            break;
        pool->fn(pool->ctx, t, thread);
    }
}

static void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    ae_pool *pool = w->pool;
    uint64_t seen = 0;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);

        pool_take_tasks(pool, w->index);

        pthread_mutex_lock(&pool->lock);
        if (--pool->busy == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Stops and joins the first n_started workers. */
static void pool_stop_workers(ae_pool *pool, int n_started)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < n_started; i++)
        pthread_join(pool->workers[i].thread, NULL);
}

ae_pool *ae_pool_create(int n_threads, ae_error *err)
{
    if (n_threads < 1 || n_threads > AE_POOL_MAX_THREADS) {
        ae_fail(err, "thread pool: %d threads requested, expected 1 to %d", n_threads, AE_POOL_MAX_THREADS);
        return NULL;
    }
    ae_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        ae_fail(err, "thread pool: out of memory");
        return NULL;
    }
    pool->n_threads = n_threads;
    atomic_init(&pool->next_task, 0);
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (n_threads == 1)
        return pool;

    pool->workers = calloc((size_t)(n_threads - 1), sizeof *pool->workers);
    if (!pool->workers) {
        ae_fail(err, "thread pool: out of memory");
        goto fail_sync;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        struct pool_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i + 1;
        int rc = pthread_create(&w->thread, NULL, pool_worker_main, w);
        if (rc != 0) {
            ae_fail(err, "thread pool: cannot start thread %d of %d: %s", i + 1, n_threads, strerror(rc));
            pool_stop_workers(pool, i);
            goto fail_workers;
        }
    }
    return pool;

fail_workers:
    free(pool->workers);
fail_sync:
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool);
    return NULL;
}

void ae_pool_destroy(ae_pool *pool)
{
    if (!pool)
        return;
    if (pool->n_threads > 1) {
        pool_stop_workers(pool, pool->n_threads - 1);
        free(pool->workers);
    }
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool);
}

int ae_pool_threads(const ae_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

void ae_pool_run(ae_pool *pool, ae_pool_fn fn, void *ctx, int64_t n_tasks)
{
    assert(fn != NULL);
    if (n_tasks <= 0)
        return;
    const int self = pool && pool->n_threads > 1 ? pool_self(pool) : -1;
    if (!pool || pool->n_threads == 1 || n_tasks == 1 || self >= 0) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(ctx, t, self >= 0 ? self : 0);
        return;
    }

    pthread_mutex_lock(&pool->run_lock);
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    pool->busy = pool->n_threads - 1;
    pool->in_run = true;
    pool->runner = pthread_self();
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    pool_take_tasks(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->busy > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pool->fn = NULL;
    pool->ctx = NULL;
    pool->in_run = false;
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->run_lock);
}
