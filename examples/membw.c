/* membw: this machine's memory read bandwidth, for make bench's roofline (examples/bench.sh).
 *
 * usage: membw BYTES THREADS
 * Fills a buffer of BYTES, then has THREADS threads (pinned to nothing, as the programs under test are)
 * each read their own contiguous slice of it, the way a decode step reads the weights: every byte once
 * per pass, THREADS slices at once. The reads are done three ways, each for at least MIN_PASSES passes
 * and SECONDS seconds: the widest loads the compiler may use here (AVX-512 or AVX2 with -march=native,
 * NEON on aarch64, 64-bit words elsewhere), the same loads with software prefetch a few KiB ahead (as
 * the matmul kernels do), and plain 64-bit words. Prints the best pass of all in GB/s (10^9 bytes per
 * second): the most the hardware gave a reader like the kernels, which a neighbour's burst can lower but
 * not raise (so the passes go on for a while, to catch a quiet moment). A model's generation roofline is
 * that rate divided by the bytes a token reads.
 *
 * Build it for the machine it runs on (cc -O2 -march=native -pthread); a build without -march (a cross
 * compiler's) falls back to SSE2/NEON or 64-bit words, which read more slowly on some machines.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#define MIN_PASSES 4
#define SECONDS 1.0 /* per way, at least */
#define PREFETCH_AHEAD 4096 /* bytes: as far ahead as the kernels' prefetches reach */

enum way { WIDE, WIDE_PREFETCH, WORDS, WAYS };
static const char *const way_names[WAYS] = {"wide", "wide+prefetch", "words"};

struct slice {
    const uint8_t *p;
    size_t n;              /* bytes, a multiple of 256 */
    uint64_t sum;          /* keeps the reads from being optimized away */
    pthread_barrier_t *go; /* every thread starts each pass together */
    const volatile int *way; /* the way of the next pass; WAYS: stop */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads n bytes at p with the widest loads, four independent accumulators, 256 bytes a step. */
static uint64_t read_wide(const uint8_t *p, size_t n, int prefetch)
{
#if defined(__AVX512F__)
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 256) {
        if (prefetch) {
            _mm_prefetch((const char *)p + i + PREFETCH_AHEAD, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + PREFETCH_AHEAD + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + PREFETCH_AHEAD + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + PREFETCH_AHEAD + 192, _MM_HINT_T0);
        }
        a = _mm512_xor_si512(a, _mm512_load_si512(p + i));
        b = _mm512_xor_si512(b, _mm512_load_si512(p + i + 64));
        c = _mm512_xor_si512(c, _mm512_load_si512(p + i + 128));
        d = _mm512_xor_si512(d, _mm512_load_si512(p + i + 192));
    }
    const __m512i s = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
    uint64_t out[8];
    _mm512_storeu_si512(out, s);
#elif defined(__AVX2__)
    __m256i a[8];
    for (int j = 0; j < 8; j++)
        a[j] = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 256) {
        if (prefetch)
            for (int j = 0; j < 4; j++)
                _mm_prefetch((const char *)p + i + PREFETCH_AHEAD + 64 * j, _MM_HINT_T0);
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_xor_si256(a[j], _mm256_load_si256((const __m256i *)(p + i + 32 * j)));
    }
    for (int j = 1; j < 8; j++)
        a[0] = _mm256_xor_si256(a[0], a[j]);
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a[0]);
#elif defined(__SSE2__)
    __m128i a[16];
    for (int j = 0; j < 16; j++)
        a[j] = _mm_setzero_si128();
    for (size_t i = 0; i < n; i += 256) {
        if (prefetch)
            for (int j = 0; j < 4; j++)
                _mm_prefetch((const char *)p + i + PREFETCH_AHEAD + 64 * j, _MM_HINT_T0);
        for (int j = 0; j < 16; j++)
            a[j] = _mm_xor_si128(a[j], _mm_load_si128((const __m128i *)(p + i + 16 * j)));
    }
    for (int j = 1; j < 16; j++)
        a[0] = _mm_xor_si128(a[0], a[j]);
    uint64_t out[2];
    _mm_storeu_si128((__m128i *)out, a[0]);
#elif defined(__ARM_NEON)
    uint64x2_t a[16];
    for (int j = 0; j < 16; j++)
        a[j] = vdupq_n_u64(0);
    for (size_t i = 0; i < n; i += 256) {
        if (prefetch)
            for (int j = 0; j < 4; j++)
                __builtin_prefetch(p + i + PREFETCH_AHEAD + 64 * j);
        for (int j = 0; j < 16; j++)
            a[j] = veorq_u64(a[j], vld1q_u64((const uint64_t *)(p + i + 16 * j)));
    }
    for (int j = 1; j < 16; j++)
        a[0] = veorq_u64(a[0], a[j]);
    uint64_t out[2];
    vst1q_u64(out, a[0]);
#else
    uint64_t out[1] = {0};
    for (size_t i = 0; i < n; i += 64) {
        if (prefetch)
            __builtin_prefetch(p + i + PREFETCH_AHEAD);
        uint64_t w[8];
        memcpy(w, p + i, sizeof w);
        for (int j = 0; j < 8; j++)
            out[0] ^= w[j];
    }
#endif
    uint64_t sum = 0;
    for (size_t j = 0; j < sizeof out / sizeof out[0]; j++)
        sum ^= out[j];
    return sum;
}

/* Reads n bytes at p as 64-bit words, eight independent sums. */
static uint64_t read_words(const uint8_t *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t a[8] = {0};
    for (size_t i = 0; i + 8 <= n / 8; i += 8)
        for (int j = 0; j < 8; j++)
            a[j] += w[i + j];
    uint64_t sum = 0;
    for (int j = 0; j < 8; j++)
        sum += a[j];
    return sum;
}

static void *reader(void *arg)
{
    struct slice *s = arg;
    for (;;) {
        pthread_barrier_wait(s->go);
        const int way = *s->way;
        if (way == WAYS)
            return NULL;
        s->sum += way == WORDS ? read_words(s->p, s->n) : read_wide(s->p, s->n, way == WIDE_PREFETCH);
        pthread_barrier_wait(s->go);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: membw BYTES THREADS\n");
        return 2;
    }
    const int threads = atoi(argv[2]);
    const size_t bytes = strtoull(argv[1], NULL, 10) / 256 * 256;
    if (threads < 1 || threads > 256 || bytes < 256 * (size_t)threads) {
        fprintf(stderr, "membw: bad size or thread count\n");
        return 2;
    }
    /* the prefetches of the last slice reach past its end: they stay inside the allocation */
    uint64_t *buf = aligned_alloc(64, bytes + PREFETCH_AHEAD + 256);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    for (size_t i = 0; i < (bytes + PREFETCH_AHEAD + 256) / 8; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    struct slice *sl = calloc((size_t)threads, sizeof *sl);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    const size_t per = bytes / (size_t)threads / 256 * 256;
    volatile int current = 0;
    for (int t = 0; t < threads; t++) {
        sl[t] = (struct slice){(const uint8_t *)buf + (size_t)t * per, per, 0, &go, &current};
        pthread_create(&tid[t], NULL, reader, &sl[t]);
    }
    double best = 0, best_of[WAYS] = {0};
    for (int way = 0; way < WAYS; way++) {
        const double start = now();
        for (int pass = 0; pass < MIN_PASSES || now() - start < SECONDS; pass++) {
            current = way;
            pthread_barrier_wait(&go);
            const double t0 = now();
            pthread_barrier_wait(&go);
            const double gbs = (double)(per * (size_t)threads) / (now() - t0) / 1e9;
            best_of[way] = gbs > best_of[way] ? gbs : best_of[way];
            best = gbs > best ? gbs : best;
        }
    }
    current = WAYS;
    pthread_barrier_wait(&go);
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        sum ^= sl[t].sum;
    }
    printf("%.1f\n", best);
    fprintf(stderr, "membw: %zu bytes, %d threads:", bytes, threads);
    for (int way = 0; way < WAYS; way++)
        fprintf(stderr, " %s %.1f GB/s%s", way_names[way], best_of[way], way + 1 < WAYS ? "," : "");
    fprintf(stderr, " (checksum %llx)\n", (unsigned long long)sum);
    free(tid);
    free(sl);
    free(buf);
    return 0;
}
