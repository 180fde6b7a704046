/* Weight layouts: the arrangements of a weight's bytes that the matmul kernels read (docs/kernels.md).
 *
 * `rows` is the GGUF tensor as stored. `x16` interleaves 16 rows: each group block (struct ae_x16_<type>
 * in ae_quant_blocks.h) holds one block column of 16 rows, its fields one after another, each field a
 * run of the GGUF block's bytes re-arranged in units: a 2-byte scale of each row side by side, a byte of
 * each row side by side, or 4 bytes of each row side by side (a chunk). That one rule, a table of fields
 * per type, gives both directions: packing (done by aetherc at compile time, never when a program
 * loads) and unpacking (the scalar reference kernels, dequantization of packed weights, tests). Q5_0 and
 * Q5_1 also re-order the bits of their fifth-bit word first, so that each chunk's fifth bits sit in one
 * byte.
 */
#include "ae_kernels.h"
#include "ae_quant_blocks.h"

#include <inttypes.h>
#include <string.h>

struct x16_field {
    uint16_t src;   /* byte offset in the GGUF block */
    uint16_t bytes; /* bytes of one row in this field */
    uint16_t unit;  /* bytes of a row kept together: 1, 2 or 4 */
};

struct x16_format {
    uint16_t group_bytes;    /* sizeof(struct ae_x16_<type>) */
    uint8_t q5_bits;         /* the fifth-bit word at byte 2 (Q5_0) or 4 (Q5_1) is re-ordered: its offset, or 0 */
    uint8_t n_fields;
    struct x16_field fields[5];
};

/* Offsets within the GGUF blocks: see ae_quant_blocks.h. */
static const struct x16_format x16_formats[AE_TYPE_ID_LIMIT] = {
    [AE_TYPE_Q4_0] = {sizeof(struct ae_x16_q4_0), 0, 2, {{0, 2, 2}, {2, 16, 4}}},
    [AE_TYPE_Q4_1] = {sizeof(struct ae_x16_q4_1), 0, 3, {{0, 2, 2}, {2, 2, 2}, {4, 16, 4}}},
    [AE_TYPE_Q5_0] = {sizeof(struct ae_x16_q5_0), 2, 3, {{0, 2, 2}, {2, 4, 4}, {6, 16, 4}}},
    [AE_TYPE_Q5_1] = {sizeof(struct ae_x16_q5_1), 4, 4, {{0, 2, 2}, {2, 2, 2}, {4, 4, 4}, {8, 16, 4}}},
    [AE_TYPE_Q8_0] = {sizeof(struct ae_x16_q8_0), 0, 2, {{0, 2, 2}, {2, 32, 4}}},
    [AE_TYPE_Q2_K] = {sizeof(struct ae_x16_q2_k), 0, 4, {{80, 2, 2}, {82, 2, 2}, {0, 16, 1}, {16, 64, 4}}},
    [AE_TYPE_Q3_K] = {sizeof(struct ae_x16_q3_k), 0, 4, {{108, 2, 2}, {96, 12, 1}, {0, 32, 4}, {32, 64, 4}}},
    [AE_TYPE_Q4_K] = {sizeof(struct ae_x16_q4_k), 0, 4, {{0, 2, 2}, {2, 2, 2}, {4, 12, 1}, {16, 128, 4}}},
    [AE_TYPE_Q5_K] = {sizeof(struct ae_x16_q5_k), 0, 5, {{0, 2, 2}, {2, 2, 2}, {4, 12, 1}, {16, 32, 4}, {48, 128, 4}}},
    [AE_TYPE_Q6_K] = {sizeof(struct ae_x16_q6_k), 0, 4, {{208, 2, 2}, {192, 16, 1}, {0, 128, 4}, {128, 64, 4}}},
};

static const char *const layout_names[AE_LAYOUT_COUNT] = {
    [AE_LAYOUT_ROWS] = "rows",
    [AE_LAYOUT_X16] = "x16",
};

const char *ae_layout_name(enum ae_layout layout)
{
    return (unsigned)layout < AE_LAYOUT_COUNT ? layout_names[layout] : "unknown";
}

int ae_layout_from_name(const char *name)
{
    for (int i = 0; name && i < AE_LAYOUT_COUNT; i++)
        if (strcmp(name, layout_names[i]) == 0)
            return i;
    return -1;
}

bool ae_layout_supports(uint32_t type, enum ae_layout layout)
{
    if (!ae_matmul_supports(type))
        return false;
    switch (layout) {
    case AE_LAYOUT_ROWS:
        return true;
    case AE_LAYOUT_X16:
        return x16_formats[type].group_bytes != 0;
    }
    return false;
}

uint64_t ae_layout_group_bytes(uint32_t type, enum ae_layout layout, int64_t K)
{
    if (!ae_layout_supports(type, layout) || K < 0)
        return 0;
    const struct ae_type_info *t = ae_type_info(type);
    if (K % t->block_size != 0)
        return 0;
    const uint64_t blocks = (uint64_t)K / t->block_size;
    const uint64_t per_block = layout == AE_LAYOUT_X16 ? x16_formats[type].group_bytes : t->block_bytes;
    if (blocks > UINT64_MAX / per_block)
        return 0;
    return blocks * per_block;
}

int64_t ae_layout_rows_per_group(enum ae_layout layout)
{
    return layout == AE_LAYOUT_X16 ? AE_X16_ROWS : 1;
}

uint64_t ae_layout_bytes(uint32_t type, enum ae_layout layout, int64_t N, int64_t K)
{
    const uint64_t group = ae_layout_group_bytes(type, layout, K);
    if (N < 0 || (group == 0 && K > 0) || !ae_layout_supports(type, layout))
        return 0;
    const int64_t per = ae_layout_rows_per_group(layout);
    const uint64_t groups = (uint64_t)((N + per - 1) / per);
    if (group && groups > UINT64_MAX / group)
        return 0;
    return groups * group;
}

/* The Q5 fifth-bit word: GGUF order (bit v for value v) <-> chunk order (byte j: bits i for value 4j+i,
 * bits 4+i for value 16+4j+i). */
static uint32_t q5_bits_to_chunks(uint32_t h)
{
    uint32_t o = 0;
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++) {
            o |= ((h >> (4 * j + i)) & 1u) << (8 * j + i);
            o |= ((h >> (16 + 4 * j + i)) & 1u) << (8 * j + 4 + i);
        }
    return o;
}

static uint32_t q5_bits_from_chunks(uint32_t o)
{
    uint32_t h = 0;
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++) {
            h |= ((o >> (8 * j + i)) & 1u) << (4 * j + i);
            h |= ((o >> (8 * j + 4 + i)) & 1u) << (16 + 4 * j + i);
        }
    return h;
}

/* Copies between the GGUF blocks of 16 rows (blk[r], NULL for a padding row, read as zeros) and one
 * group block, in the direction pack says. */
static void x16_move(uint32_t type, uint8_t *group, uint8_t *const blk[AE_X16_ROWS], bool pack)
{
    const struct x16_format *f = &x16_formats[type];
    uint8_t *g = group;
    for (int i = 0; i < f->n_fields; i++) {
        const struct x16_field fl = f->fields[i];
        for (int u = 0; u < fl.bytes / fl.unit; u++)
            for (int r = 0; r < AE_X16_ROWS; r++, g += fl.unit) {
                uint8_t *b = blk[r] ? blk[r] + fl.src + u * fl.unit : NULL;
                if (!pack)
                    memcpy(b, g, fl.unit);
                else if (b)
                    memcpy(g, b, fl.unit);
                else
                    memset(g, 0, fl.unit);
            }
    }
}

int ae_layout_pack(uint32_t type, enum ae_layout layout, const void *rows, int64_t N, int64_t K, void *dst,
                   ae_error *err)
{
    if (!ae_layout_supports(type, layout))
        return ae_fail(err, "layout %s does not hold %s weights", ae_layout_name(layout), ae_type_name(type));
    const uint64_t total = ae_layout_bytes(type, layout, N, K);
    if (total == 0 && N > 0 && K > 0)
        return ae_fail(err, "layout %s: a %" PRId64 " x %" PRId64 " %s weight has no size (K not a multiple of "
                            "the block, or too large)", ae_layout_name(layout), N, K, ae_type_name(type));
    uint64_t row_bytes = 0;
    if (ae_type_row_bytes(type, (uint64_t)K, &row_bytes, err) != 0)
        return -1;
    if (layout == AE_LAYOUT_ROWS) {
        memcpy(dst, rows, (size_t)total);
        return 0;
    }
    const struct ae_type_info *t = ae_type_info(type);
    const int64_t nb = K / t->block_size;
    const uint64_t gbytes = ae_layout_group_bytes(type, layout, K);
    const struct x16_format *f = &x16_formats[type];
    uint8_t tmp[AE_X16_ROWS][AE_BLOCK_BYTES_Q6_K];
    for (int64_t g = 0; g * AE_X16_ROWS < N; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk[AE_X16_ROWS];
            for (int r = 0; r < AE_X16_ROWS; r++) {
                const int64_t row = g * AE_X16_ROWS + r;
                blk[r] = NULL;
                if (row >= N)
                    continue;
                memcpy(tmp[r], (const uint8_t *)rows + (uint64_t)row * row_bytes + (uint64_t)b * t->block_bytes,
                       t->block_bytes);
                if (f->q5_bits) {
                    uint32_t h;
                    memcpy(&h, tmp[r] + f->q5_bits, 4);
                    h = q5_bits_to_chunks(h);
                    memcpy(tmp[r] + f->q5_bits, &h, 4);
                }
                blk[r] = tmp[r];
            }
            x16_move(type, (uint8_t *)dst + (uint64_t)g * gbytes + (uint64_t)b * f->group_bytes, blk, true);
        }
    return 0;
}

void ae_x16_unpack_group(uint32_t type, const void *group_block, void *blocks)
{
    const struct x16_format *f = &x16_formats[type];
    const uint32_t bytes = ae_type_info(type)->block_bytes;
    uint8_t *blk[AE_X16_ROWS];
    for (int r = 0; r < AE_X16_ROWS; r++)
        blk[r] = (uint8_t *)blocks + r * bytes;
    x16_move(type, (uint8_t *)group_block, blk, false);
    for (int r = 0; f->q5_bits && r < AE_X16_ROWS; r++) {
        uint32_t h;
        memcpy(&h, blk[r] + f->q5_bits, 4);
        h = q5_bits_from_chunks(h);
        memcpy(blk[r] + f->q5_bits, &h, 4);
    }
}

int ae_layout_unpack_row(uint32_t type, enum ae_layout layout, const void *packed, int64_t K, int64_t row, void *dst,
                         ae_error *err)
{
    if (!ae_layout_supports(type, layout))
        return ae_fail(err, "layout %s does not hold %s weights", ae_layout_name(layout), ae_type_name(type));
    uint64_t row_bytes = 0;
    if (K < 0 || row < 0 || ae_type_row_bytes(type, (uint64_t)K, &row_bytes, err) != 0)
        return -1;
    if (layout == AE_LAYOUT_ROWS) {
        memcpy(dst, (const uint8_t *)packed + (uint64_t)row * row_bytes, (size_t)row_bytes);
        return 0;
    }
    const struct ae_type_info *t = ae_type_info(type);
    const uint64_t gbytes = ae_layout_group_bytes(type, layout, K);
    const uint8_t *group = (const uint8_t *)packed + (uint64_t)(row / AE_X16_ROWS) * gbytes;
    uint8_t blocks[AE_X16_ROWS * AE_BLOCK_BYTES_Q6_K];
    for (int64_t b = 0; b < K / t->block_size; b++) {
        ae_x16_unpack_group(type, group + (uint64_t)b * x16_formats[type].group_bytes, blocks);
        memcpy((uint8_t *)dst + (uint64_t)b * t->block_bytes, blocks + (row % AE_X16_ROWS) * t->block_bytes,
               t->block_bytes);
    }
    return 0;
}

int ae_layout_get_row(uint32_t type, enum ae_layout layout, const void *w, int64_t K, int64_t row, float *out,
                      ae_error *err)
{
    uint64_t row_bytes = 0;
    if (K < 0 || row < 0 || ae_type_row_bytes(type, (uint64_t)K, &row_bytes, err) != 0)
        return ae_fail(err, "get row: bad row %" PRId64 " or length %" PRId64 " for %s", row, K, ae_type_name(type));
    if (layout == AE_LAYOUT_ROWS)
        return ae_dequantize_row(type, (const uint8_t *)w + (uint64_t)row * row_bytes, out, K, err);
    if (!ae_layout_supports(type, layout))
        return ae_fail(err, "layout %s does not hold %s weights", ae_layout_name(layout), ae_type_name(type));
    const struct ae_type_info *t = ae_type_info(type);
    const uint64_t gbytes = ae_layout_group_bytes(type, layout, K);
    const uint8_t *group = (const uint8_t *)w + (uint64_t)(row / AE_X16_ROWS) * gbytes;
    uint8_t blocks[AE_X16_ROWS * AE_BLOCK_BYTES_Q6_K];
    for (int64_t b = 0; b < K / t->block_size; b++) {
        ae_x16_unpack_group(type, group + (uint64_t)b * x16_formats[type].group_bytes, blocks);
        if (ae_dequantize_row(type, blocks + (row % AE_X16_ROWS) * t->block_bytes, out + b * t->block_size,
                              t->block_size, err) != 0)
            return -1;
    }
    return 0;
}
