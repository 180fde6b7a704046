/* The kernels' thread pool (ae_pool.h): n - 1 pthreads that wait for runs.
 *
 * A run publishes (fn, ctx, n_tasks), bumps a generation counter (release) and wakes the workers; every
 * thread, the caller included, then takes task indices from one atomic counter until they run out, and
 * each worker counts itself out of `busy` (acquire-release), so the caller sees every task's writes when
 * busy reaches 0. A decode step is a few hundred short runs in a row, so waiting threads first spin for
 * a while before they sleep on a condition variable (1B Q4_0 decode on 2 idle cores: 39-42 tokens/s with
 * sleeping alone, 51-55 with spinning). The spin budget adapts (spin_outcome): when another process
 * takes the cores, spinning only steals time from the thread being waited for (5 tokens/s with a fixed
 * budget and one busy process beside), so the budget falls to nothing and the pool sleeps at once.
 * Nothing is allocated after creation.
 * Results do not depend on which thread took which task, because kernels never split one output value
 * across tasks.
 */
#include "ae_pool.h"

#include <assert.h>
#include <pthread.h>
#include <sched.h>
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
    atomic_uint_fast64_t generation; /* bumped by each run; written under lock */
    atomic_bool stop;
    atomic_int busy;            /* workers that have not finished the current generation */
    atomic_int spins;           /* the spin budget, 0..POOL_SPINS */
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

/* How long a waiting thread may spin before it sleeps, at most. The budget adapts: a spin that ends in
 * sleep halves it (another process has the CPU we wait for, and spinning would only take time from
 * it), a spin that sees its event grows it back. */
#define POOL_SPINS 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    sched_yield();
#endif
}

/* Records how a spin ended: seen (the event came) or not (the thread goes to sleep). */
static void spin_outcome(ae_pool *pool, bool seen)
{
    int s = atomic_load_explicit(&pool->spins, memory_order_relaxed);
    int next = seen ? (s + s / 8 + 16 < POOL_SPINS ? s + s / 8 + 16 : POOL_SPINS) : s / 2;
    if (next != s)
        atomic_store_explicit(&pool->spins, next, memory_order_relaxed);
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

    for (;;) {
        uint64_t gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        const int budget = atomic_load_explicit(&pool->spins, memory_order_relaxed);
        for (int spin = 0; gen == seen && spin < budget && !atomic_load_explicit(&pool->stop, memory_order_relaxed);
             spin++) {
            cpu_relax();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (budget > 0)
            spin_outcome(pool, gen != seen);
        if (gen == seen) {
            pthread_mutex_lock(&pool->lock);
            while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
                   !atomic_load_explicit(&pool->stop, memory_order_relaxed))
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (gen == seen) /* woken to stop */
            break;
        seen = gen;

        pool_take_tasks(pool, w->index);

        if (atomic_fetch_sub_explicit(&pool->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

/* Stops and joins the first n_started workers. */
static void pool_stop_workers(ae_pool *pool, int n_started)
{
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->stop, true, memory_order_relaxed);
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
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->busy, 0);
    atomic_init(&pool->spins, POOL_SPINS);
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
    atomic_store_explicit(&pool->busy, pool->n_threads - 1, memory_order_relaxed);
    pool->in_run = true;
    pool->runner = pthread_self();
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    pool_take_tasks(pool, 0);

    const int budget = atomic_load_explicit(&pool->spins, memory_order_relaxed);
    int spin = 0;
    while (atomic_load_explicit(&pool->busy, memory_order_acquire) > 0 && spin < budget) {
        cpu_relax();
        spin++;
    }
    if (budget > 0)
        spin_outcome(pool, spin < budget);
    pthread_mutex_lock(&pool->lock);
    while (atomic_load_explicit(&pool->busy, memory_order_acquire) > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pool->fn = NULL;
    pool->ctx = NULL;
    pool->in_run = false;
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->run_lock);
}
