/* A small fixed-size thread pool for the CPU kernels.
 *
 * A generated program creates one pool at start-up and hands it to every kernel call. A run hands out
 * task indices 0..n_tasks-1 to the pool's threads (the caller is thread 0 and works too) and returns when
 * every task has finished. Which thread runs which task varies from run to run, so kernels make each
 * task compute its own outputs from start to end: the results are then the same bytes for any thread
 * count. A run allocates nothing; a pool of one thread (or a NULL pool) runs the tasks inline, in order.
 */
#ifndef AE_POOL_H
#define AE_POOL_H

#include <stdint.h>

#include "ae_error.h"

typedef struct ae_pool ae_pool;

/* One task: task is in 0..n_tasks-1; thread is in 0..ae_pool_threads()-1 and names the thread that runs
 * it, so that a kernel can give each thread its own slice of scratch memory. */
typedef void (*ae_pool_fn)(void *ctx, int64_t task, int thread);

/* The most threads a pool may have. */
#define AE_POOL_MAX_THREADS 256

/* Starts n_threads - 1 worker threads (1 <= n_threads <= AE_POOL_MAX_THREADS). Returns NULL with err
 * set when n_threads is out of range or a thread cannot be started. */
ae_pool *ae_pool_create(int n_threads, ae_error *err);

/* Stops and joins the workers. NULL is allowed. Must not be called while a run is in progress. */
void ae_pool_destroy(ae_pool *pool);

/* The number of threads, the caller included; 1 for NULL. */
int ae_pool_threads(const ae_pool *pool);

/* Runs fn(ctx, i, thread) for every i in 0..n_tasks-1 and returns when all have returned. A run started
 * from inside a task of the same pool is executed inline by that task's thread (with its thread index);
 * runs from two outside threads at once are executed one after the other. */
void ae_pool_run(ae_pool *pool, ae_pool_fn fn, void *ctx, int64_t n_tasks);

#endif
