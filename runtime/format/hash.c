/* The weights' hash (ae_program.h): BLAKE2b-256 per chunk, in parallel, and a root over the chunk hashes.
 *
 * BLAKE2b is libsodium's (crypto_generichash_blake2b), linked statically into aetherc and every program,
 * so a program still needs nothing but libc at run time. Hashing chunks independently lets every core
 * work at once (a 2 GB model is hashed in about the time one core takes for 2 GB / cores), and lets a
 * program check a few chunks at start-up against the table in its pack, whose own hash is built in.
 */
#include "ae_program.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libsodium's BLAKE2b objects need two helpers from its core, sodium_memzero and sodium_misuse. The
 * core's object also holds sodium_init, which links every algorithm libsodium has (ed25519, argon2,
 * chacha20, ...: 160 KiB of an x86-64 program, 90 KiB of an aarch64 one), so the runtime defines the two
 * helpers itself and does the two steps of sodium_init that BLAKE2b needs: find the CPU's features, then
 * pick the fastest compression function for them. A program links libsodium's BLAKE2b and nothing more. */
int _crypto_generichash_blake2b_pick_best_implementation(void); /* libsodium's; not in its headers */

void sodium_memzero(void *const p, const size_t n)
{
    explicit_bzero(p, n);
}

/* libsodium calls it for arguments out of range; the hash's are constants. */
void sodium_misuse(void)
{
    abort();
}

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

/* Without it the portable compression function runs, which gives the same hashes, more slowly. */
static void sodium_setup(void)
{
    _sodium_runtime_get_cpu_features();
    _crypto_generichash_blake2b_pick_best_implementation();
}

uint64_t ae_hash_n_chunks(uint64_t size, uint64_t chunk_size)
{
    return size == 0 ? 0 : (size - 1) / chunk_size + 1;
}

static void update_state(void *state, const void *p, uint64_t n)
{
    crypto_generichash_blake2b_update(state, p, n);
}

void ae_hash_chunk(const struct ae_hash_source *src, uint64_t chunk_size, uint64_t index, uint8_t out[AE_HASH_BYTES])
{
    pthread_once(&sodium_once, sodium_setup);
    uint64_t off = index * chunk_size;
    uint64_t n = src->size - off < chunk_size ? src->size - off : chunk_size;
    crypto_generichash_blake2b_state st;
    crypto_generichash_blake2b_init(&st, NULL, 0, AE_HASH_BYTES);
    if (src->data)
        update_state(&st, src->data + off, n);
    else
        src->read(src->ctx, off, n, update_state, &st);
    crypto_generichash_blake2b_final(&st, out, AE_HASH_BYTES);
}

void ae_hash_root(uint64_t size, uint64_t chunk_size, const uint8_t (*chunks)[AE_HASH_BYTES], uint64_t n_chunks,
                  uint8_t out[AE_HASH_BYTES])
{
    pthread_once(&sodium_once, sodium_setup);
    uint8_t head[32] = "aether-weights-1"; /* then the two sizes, little-endian */
    for (int i = 0; i < 8; i++) {
        head[16 + i] = (uint8_t)(size >> (8 * i));
        head[24 + i] = (uint8_t)(chunk_size >> (8 * i));
    }
    crypto_generichash_blake2b_state st;
    crypto_generichash_blake2b_init(&st, NULL, 0, AE_HASH_BYTES);
    crypto_generichash_blake2b_update(&st, head, sizeof head);
    update_state(&st, chunks, n_chunks * AE_HASH_BYTES);
    crypto_generichash_blake2b_final(&st, out, AE_HASH_BYTES);
}

void ae_hash_hex(const uint8_t h[AE_HASH_BYTES], char out[2 * AE_HASH_BYTES + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < AE_HASH_BYTES; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * AE_HASH_BYTES] = 0;
}

/* ---- Every chunk, in parallel ---------------------------------------------------------------------- */

struct hash_job {
    const struct ae_hash_source *src;
    uint64_t chunk_size, n_chunks;
    uint8_t (*out)[AE_HASH_BYTES];
    atomic_uint_fast64_t next, done;
};

static void *hash_worker(void *arg)
{
    struct hash_job *j = arg;
    for (;;) {
        uint64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_chunks)
            return NULL;
        ae_hash_chunk(j->src, j->chunk_size, i, j->out[i]);
        atomic_fetch_add(&j->done, 1);
    }
}

int ae_hash_default_threads(void)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

void ae_hash_chunks(const struct ae_hash_source *src, uint64_t chunk_size, uint8_t (*out)[AE_HASH_BYTES],
                    int n_threads, const struct ae_progress *progress)
{
    struct hash_job j = {.src = src, .chunk_size = chunk_size, .n_chunks = ae_hash_n_chunks(src->size, chunk_size),
                         .out = out};
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    if (n_threads < 1)
        n_threads = 1;
    if ((uint64_t)n_threads > j.n_chunks)
        n_threads = j.n_chunks ? (int)j.n_chunks : 1;
    pthread_t tid[64];
    int started = 0;
    for (; started < n_threads - 1 && started < 64; started++)
        if (pthread_create(&tid[started], NULL, hash_worker, &j) != 0)
            break; /* fewer threads: slower, not wrong */
    /* This thread hashes too, and reports progress between its chunks. */
    for (;;) {
        uint64_t i = atomic_fetch_add(&j.next, 1);
        if (i >= j.n_chunks)
            break;
        ae_hash_chunk(src, chunk_size, i, out[i]);
        atomic_fetch_add(&j.done, 1);
        if (progress && progress->update)
            progress->update(progress->ctx, atomic_load(&j.done) * chunk_size, src->size);
    }
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (progress && progress->update)
        progress->update(progress->ctx, src->size, src->size);
}
