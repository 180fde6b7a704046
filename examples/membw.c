/* membw: this machine's memory read bandwidth, for make bench's roofline (examples/bench.sh).
 *
 * usage: membw BYTES THREADS
 * Fills a buffer of BYTES, then has THREADS threads (pinned to nothing, as the programs under test are)
 * each read their own contiguous slice of it, again and again, the way a decode step reads the weights:
 * every byte once per pass. Prints the best pass's rate in GB/s (10^9 bytes per second). A model's
 * generation roofline is that rate divided by the bytes a token reads.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASSES 8

struct slice {
    const uint64_t *p;
    size_t n;              /* uint64 words */
    uint64_t sum;          /* keeps the reads from being optimized away */
    pthread_barrier_t *go; /* every thread starts each pass together */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *reader(void *arg)
{
    struct slice *s = arg;
    uint64_t a[8] = {0};
    for (int pass = 0; pass < PASSES; pass++) {
        pthread_barrier_wait(s->go);
        for (size_t i = 0; i + 8 <= s->n; i += 8)
            for (int j = 0; j < 8; j++)
                a[j] += s->p[i + j];
        pthread_barrier_wait(s->go);
    }
    for (int j = 0; j < 8; j++)
        s->sum += a[j];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: membw BYTES THREADS\n");
        return 2;
    }
    const size_t bytes = strtoull(argv[1], NULL, 10) / 64 * 64;
    const int threads = atoi(argv[2]);
    if (bytes < 64 * (size_t)(threads > 0 ? threads : 1) || threads < 1 || threads > 256) {
        fprintf(stderr, "membw: bad size or thread count\n");
        return 2;
    }
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    for (size_t i = 0; i < bytes / 8; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    struct slice *sl = calloc((size_t)threads, sizeof *sl);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    const size_t words = bytes / 8, per = words / (size_t)threads / 8 * 8;
    for (int t = 0; t < threads; t++) {
        sl[t] = (struct slice){buf + (size_t)t * per, per, 0, &go};
        pthread_create(&tid[t], NULL, reader, &sl[t]);
    }
    double best = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        pthread_barrier_wait(&go);
        const double t0 = now();
        pthread_barrier_wait(&go);
        const double gbs = (double)(per * 8 * (size_t)threads) / (now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        sum += sl[t].sum;
    }
    printf("%.1f\n", best);
    fprintf(stderr, "membw: %zu bytes, %d threads, checksum %llx\n", bytes, threads, (unsigned long long)sum);
    free(tid);
    free(sl);
    free(buf);
    return 0;
}
