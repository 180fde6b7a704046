/* The weights pack: finding, validating, checking and writing it (the format is in ae_program.h).
 *
 * A program maps its own executable read-only and uses the packed weights where they lie, so start-up
 * costs a page-table walk, not a copy; the kernel pages weights in as the first step touches them. The
 * check at every start hashes the chunk table and a few chunks, a few milliseconds whatever the size;
 * --verify hashes everything.
 */
#include "ae_program.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ae_pack_parse(struct ae_pack *p, const void *bytes, uint64_t size, const char *name, ae_error *err)
{
    struct ae_pack_header h;
    if (size < sizeof h)
        return ae_fail(err, "%s: the weights pack is %" PRIu64 " bytes, too short for its header", name, size);
    memcpy(&h, bytes, sizeof h);
    if (memcmp(h.magic, AE_PACK_MAGIC, 8) != 0)
        return ae_fail(err, "%s: byte 0: not an Aether weights pack (bad magic)", name);
    if (h.version != AE_PACK_VERSION || h.header_size != sizeof h)
        return ae_fail(err, "%s: byte 8: weights pack version %" PRIu32 " (header %" PRIu32 " bytes), expected "
                       "version %d (%zu bytes): the program and its weights come from different aetherc builds",
                       name, h.version, h.header_size, AE_PACK_VERSION, sizeof h);
    if (h.meta_offset > size || h.meta_size > size - h.meta_offset)
        return ae_fail(err, "%s: the pack's metadata (%" PRIu64 " bytes at %" PRIu64 ") ends past its end (%" PRIu64
                       " bytes)", name, h.meta_size, h.meta_offset, size);
    if (h.weights_offset % AE_PACK_ALIGN != 0 || h.weights_offset > size || h.weights_size > size - h.weights_offset)
        return ae_fail(err, "%s: the pack's weights (%" PRIu64 " bytes at %" PRIu64 ") are misaligned or end past "
                       "its end (%" PRIu64 " bytes)", name, h.weights_size, h.weights_offset, size);
    if (h.chunk_size == 0 || h.chunk_size > (1u << 30))
        return ae_fail(err, "%s: the pack's chunk size is %" PRIu64 ", expected 1 to 2^30", name, h.chunk_size);
    uint64_t n_chunks = ae_hash_n_chunks(h.weights_size, h.chunk_size);
    if (h.hashes_offset > size || n_chunks > (size - h.hashes_offset) / AE_HASH_BYTES)
        return ae_fail(err, "%s: the pack's table of %" PRIu64 " chunk hashes (at %" PRIu64 ") ends past its end "
                       "(%" PRIu64 " bytes)", name, n_chunks, h.hashes_offset, size);
    const uint8_t *b = bytes;
    *p = (struct ae_pack){
        .base = b,
        .size = size,
        .meta = b + h.meta_offset,
        .meta_size = h.meta_size,
        .hashes = (const uint8_t (*)[AE_HASH_BYTES])(b + h.hashes_offset),
        .chunk_size = h.chunk_size,
        .n_chunks = n_chunks,
        .weights = b + h.weights_offset,
        .weights_size = h.weights_size,
    };
    memcpy(p->weights_hash, h.weights_hash, AE_HASH_BYTES);
    return 0;
}

int ae_pack_open_file(struct ae_pack *p, const char *path, ae_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ae_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct ae_pack_header)) {
        close(fd);
        return ae_fail(err, "%s: no weights pack in this file (it is too short)", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return ae_fail(err, "%s: cannot map: %s", path, strerror(e));
    const uint8_t *b = map;
    uint64_t off = 0, len = size;
    if (memcmp(b, AE_PACK_MAGIC, 8) != 0) {
        struct ae_pack_trailer t;
        memcpy(&t, b + size - sizeof t, sizeof t);
        if (memcmp(t.magic, AE_PACK_MAGIC, 8) != 0 || t.pack_offset % AE_PACK_ALIGN != 0 ||
            t.pack_offset > size - sizeof t || t.pack_size > size - sizeof t - t.pack_offset) {
            munmap(map, size);
            return ae_fail(err, "%s: no weights pack in this file: neither at its start nor named by a trailer at "
                           "its end", path);
        }
        off = t.pack_offset;
        len = t.pack_size;
    }
    if (ae_pack_parse(p, b + off, len, path, err) < 0) {
        munmap(map, size);
        return -1;
    }
    p->map = map;
    p->map_size = size;
    return 0;
}

void ae_pack_close(struct ae_pack *p)
{
    if (p->map)
        munmap(p->map, p->map_size);
    memset(p, 0, sizeof *p);
}

/* ---- Checking ---------------------------------------------------------------------------------------- */

/* The sizes, and the chunk table against the hash the program carries. */
static int pack_check_table(const struct ae_pack *p, uint64_t size, const uint8_t expect[AE_HASH_BYTES],
                            ae_error *err)
{
    char want[2 * AE_HASH_BYTES + 1], got[2 * AE_HASH_BYTES + 1];
    if (p->weights_size != size)
        return ae_fail(err, "the pack holds %" PRIu64 " bytes of weights, the program was built for %" PRIu64,
                       p->weights_size, size);
    uint8_t root[AE_HASH_BYTES];
    ae_hash_root(p->weights_size, p->chunk_size, p->hashes, p->n_chunks, root);
    if (memcmp(root, expect, AE_HASH_BYTES) != 0) {
        ae_hash_hex(expect, want);
        ae_hash_hex(root, got);
        return ae_fail(err, "the pack's weights hash to %s, the program was built for %s", got, want);
    }
    return 0;
}

static int pack_check_chunk(const struct ae_pack *p, uint64_t i, const uint8_t h[AE_HASH_BYTES], ae_error *err)
{
    if (memcmp(h, p->hashes[i], AE_HASH_BYTES) == 0)
        return 0;
    uint64_t end = (i + 1) * p->chunk_size < p->weights_size ? (i + 1) * p->chunk_size : p->weights_size;
    return ae_fail(err, "chunk %" PRIu64 " of the weights (bytes %" PRIu64 " to %" PRIu64 ") does not match its hash",
                   i, i * p->chunk_size, end - 1);
}

int ae_pack_check(const struct ae_pack *p, uint64_t size, const uint8_t expect[AE_HASH_BYTES], ae_error *err)
{
    if (pack_check_table(p, size, expect, err) < 0)
        return -1;
    if (p->n_chunks == 0)
        return 0;
    struct ae_hash_source src = {.size = p->weights_size, .data = p->weights};
    uint64_t x = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    for (int s = 0; s < AE_PACK_SAMPLES; s++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t i = s == 0 ? 0 : s == 1 ? p->n_chunks - 1 : x % p->n_chunks;
        uint8_t h[AE_HASH_BYTES];
        ae_hash_chunk(&src, p->chunk_size, i, h);
        if (pack_check_chunk(p, i, h, err) < 0)
            return -1;
    }
    return 0;
}

int ae_pack_verify(const struct ae_pack *p, uint64_t size, const uint8_t expect[AE_HASH_BYTES], int n_threads,
                   ae_error *err)
{
    if (pack_check_table(p, size, expect, err) < 0)
        return -1;
    uint8_t (*h)[AE_HASH_BYTES] = malloc((p->n_chunks ? p->n_chunks : 1) * AE_HASH_BYTES);
    if (!h)
        return ae_fail(err, "out of memory for %" PRIu64 " chunk hashes", p->n_chunks);
    struct ae_hash_source src = {.size = p->weights_size, .data = p->weights};
    ae_hash_chunks(&src, p->chunk_size, h, n_threads, NULL);
    int rc = 0;
    for (uint64_t i = 0; i < p->n_chunks && rc == 0; i++)
        rc = pack_check_chunk(p, i, h[i], err);
    free(h);
    return rc;
}

/* ---- Writing ----------------------------------------------------------------------------------------- */

static int put(FILE *f, const void *p, uint64_t n, ae_error *err)
{
    if (n && fwrite(p, 1, n, f) != n)
        return ae_fail(err, "writing the weights pack: %s", strerror(errno));
    return 0;
}

static int pad_to(FILE *f, uint64_t at, uint64_t align, ae_error *err)
{
    static const uint8_t zeros[AE_PACK_ALIGN];
    return put(f, zeros, (align - at % align) % align, err);
}

int ae_pack_write(FILE *f, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w, ae_error *err)
{
    uint64_t n_chunks = ae_hash_n_chunks(w->size, w->chunk_size);
    struct ae_pack_header h = {.version = AE_PACK_VERSION, .header_size = sizeof h};
    memcpy(h.magic, AE_PACK_MAGIC, 8);
    h.meta_offset = sizeof h;
    h.meta_size = meta_size;
    h.hashes_offset = (sizeof h + meta_size + 63) / 64 * 64;
    h.chunk_size = w->chunk_size;
    h.weights_offset = (h.hashes_offset + n_chunks * AE_HASH_BYTES + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN;
    h.weights_size = w->size;
    memcpy(h.weights_hash, w->hash, AE_HASH_BYTES);
    long start = ftell(f);
    if (put(f, &h, sizeof h, err) < 0 || put(f, meta, meta_size, err) < 0 ||
        pad_to(f, sizeof h + meta_size, 64, err) < 0 || put(f, w->chunk_hashes, n_chunks * AE_HASH_BYTES, err) < 0 ||
        pad_to(f, h.hashes_offset + n_chunks * AE_HASH_BYTES, AE_PACK_ALIGN, err) < 0 || w->write(w->ctx, f, err) < 0)
        return -1;
    if (start >= 0 && ftell(f) >= 0 && (uint64_t)(ftell(f) - start) != h.weights_offset + w->size)
        return ae_fail(err, "writing the weights pack: %" PRIu64 " bytes of weights announced, %" PRIu64 " written",
                       w->size, (uint64_t)(ftell(f) - start) - h.weights_offset);
    return 0;
}

int ae_pack_append(const char *path, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w,
                   ae_error *err)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return ae_fail(err, "%s: cannot open to append the weights: %s", path, strerror(errno));
    int rc = -1;
    if (fseeko(f, 0, SEEK_END) != 0) {
        ae_fail(err, "%s: cannot seek: %s", path, strerror(errno));
        goto close;
    }
    uint64_t end = (uint64_t)ftello(f);
    if (pad_to(f, end, AE_PACK_ALIGN, err) < 0)
        goto close;
    struct ae_pack_trailer t = {.pack_offset = (end + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN};
    memcpy(t.magic, AE_PACK_MAGIC, 8);
    if (ae_pack_write(f, meta, meta_size, w, err) < 0)
        goto close;
    t.pack_size = (uint64_t)ftello(f) - t.pack_offset;
    if (put(f, &t, sizeof t, err) < 0)
        goto close;
    rc = 0;
close:
    if (fclose(f) != 0 && rc == 0)
        rc = ae_fail(err, "%s: %s", path, strerror(errno));
    return rc;
}

/* ---- Weights held in memory -------------------------------------------------------------------------- */

static int write_memory(void *ctx, FILE *f, ae_error *err)
{
    const struct ae_pack_memory *m = ctx;
    return put(f, m->data, m->size, err);
}

int ae_pack_memory_init(struct ae_pack_memory *m, const void *data, uint64_t size, struct ae_pack_weights *w,
                        ae_error *err)
{
    uint64_t n = ae_hash_n_chunks(size, AE_PACK_CHUNK);
    *m = (struct ae_pack_memory){data, size, malloc((n ? n : 1) * AE_HASH_BYTES)};
    if (!m->hashes)
        return ae_fail(err, "out of memory for %" PRIu64 " chunk hashes", n);
    struct ae_hash_source src = {.size = size, .data = data};
    ae_hash_chunks(&src, AE_PACK_CHUNK, m->hashes, 1, NULL);
    *w = (struct ae_pack_weights){.size = size, .chunk_size = AE_PACK_CHUNK,
                                  .chunk_hashes = (const uint8_t (*)[AE_HASH_BYTES])m->hashes,
                                  .write = write_memory, .ctx = m};
    ae_hash_root(size, AE_PACK_CHUNK, w->chunk_hashes, n, w->hash);
    return 0;
}

void ae_pack_memory_free(struct ae_pack_memory *m)
{
    free(m->hashes);
    m->hashes = NULL;
}
