/* The weights pack: finding, validating and mapping it (the format is in ae_program.h).
 *
 * A program maps its own executable read-only and uses the packed weights where they lie, so start-up
 * costs a page-table walk, not a copy; the kernel pages weights in as the first step touches them.
 */
#include "ae_program.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FNV_OFFSET 0xcbf29ce484222325u
#define FNV_PRIME 0x100000001b3u

void ae_checksum_init(struct ae_checksum *c)
{
    c->h = FNV_OFFSET;
    c->n_tail = 0;
}

void ae_checksum_update(struct ae_checksum *c, const void *data, uint64_t size)
{
    const uint8_t *p = data;
    uint64_t i = 0;
    while (c->n_tail > 0 && c->n_tail < 8 && i < size)
        c->tail[c->n_tail++] = p[i++];
    if (c->n_tail == 8) {
        uint64_t w;
        memcpy(&w, c->tail, 8);
        c->h = (c->h ^ w) * FNV_PRIME;
        c->n_tail = 0;
    }
    for (; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        c->h = (c->h ^ w) * FNV_PRIME;
    }
    while (i < size)
        c->tail[c->n_tail++] = p[i++];
}

uint64_t ae_checksum_final(const struct ae_checksum *c)
{
    uint64_t h = c->h;
    for (unsigned i = 0; i < c->n_tail; i++)
        h = (h ^ c->tail[i]) * FNV_PRIME;
    return h;
}

uint64_t ae_pack_checksum(const void *data, uint64_t size)
{
    struct ae_checksum c;
    ae_checksum_init(&c);
    ae_checksum_update(&c, data, size);
    return ae_checksum_final(&c);
}

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
    const uint8_t *b = bytes;
    *p = (struct ae_pack){
        .base = b,
        .size = size,
        .meta = b + h.meta_offset,
        .meta_size = h.meta_size,
        .weights = b + h.weights_offset,
        .weights_size = h.weights_size,
        .weights_checksum = h.weights_checksum,
    };
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

static int write_memory(void *ctx, FILE *f, ae_error *err)
{
    const struct ae_pack_memory *m = ctx;
    return put(f, m->data, m->size, err);
}

struct ae_pack_weights ae_pack_weights_in_memory(const struct ae_pack_memory *m)
{
    return (struct ae_pack_weights){m->size, ae_pack_checksum(m->data, m->size), write_memory, (void *)m};
}

int ae_pack_write(FILE *f, const void *meta, uint64_t meta_size, const struct ae_pack_weights *w, ae_error *err)
{
    struct ae_pack_header h = {.version = AE_PACK_VERSION, .header_size = sizeof h};
    memcpy(h.magic, AE_PACK_MAGIC, 8);
    h.meta_offset = sizeof h;
    h.meta_size = meta_size;
    h.weights_offset = (sizeof h + meta_size + AE_PACK_ALIGN - 1) / AE_PACK_ALIGN * AE_PACK_ALIGN;
    h.weights_size = w->size;
    h.weights_checksum = w->checksum;
    long start = ftell(f);
    if (put(f, &h, sizeof h, err) < 0 || put(f, meta, meta_size, err) < 0 ||
        pad_to(f, sizeof h + meta_size, AE_PACK_ALIGN, err) < 0 || w->write(w->ctx, f, err) < 0)
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
