/* The block layouts of ggml's quantized types, byte for byte as GGUF files store them.
 *
 * A quantized row is a sequence of blocks; each block packs block_size values (32, or 256 for the
 * K-quants) as small integers with one or more fp16 scales. The dequantizer, the CPU kernels and the
 * synthetic-model writer all read or write these structs, so their layout is pinned here once and
 * checked against the type table (ggml_types.def) at compile time. Scales marked "fp16" are IEEE half
 * bit patterns (ae_fp16_to_fp32). Blocks inside a tensor are only 2-byte aligned (4 for Q8_K), so
 * readers that may see other alignments copy a block out with memcpy before using its fields.
 *
 * The value each block encodes (x = element, q = its quant, d/m = scales):
 *   Q4_0  x = d * (q - 8)            Q4_1  x = d * q + m          (q 4 bits)
 *   Q5_0  x = d * (q - 16)           Q5_1  x = d * q + m          (q 5 bits: 4 in qs, 1 in qh)
 *   Q8_0  x = d * q                  Q8_1  x = d * q, s = d * sum(q)
 *   Q2_K  x = (d * sc) * q - dmin * m              16 groups of 16, q 2 bits, sc/m 4 bits
 *   Q3_K  x = (d * (sc - 32)) * (q - 4)            16 groups of 16, q 3 bits, sc 6 bits
 *   Q4_K  x = (d * sc) * q - dmin * m              8 groups of 32, q 4 bits, sc/m 6 bits
 *   Q5_K  x = (d * sc) * q - dmin * m              8 groups of 32, q 5 bits, sc/m 6 bits
 *   Q6_K  x = (d * sc) * (q - 32)                  16 groups of 16, q 6 bits, sc 8 bits signed
 *   Q8_K  x = d * q                                d is f32; bsums are for dot products
 *   IQ4_NL x = d * kv[q]                           q 4 bits, kv the 16-entry non-linear table below
 *   IQ4_XS x = (d * (sc - 32)) * kv[q]              8 groups of 32, sc 6 bits, kv as in IQ4_NL
 *   TQ1_0 x = d * (t - 1)                          t a trit (0, 1, 2); 5 trits a byte (4 in qh)
 *   TQ2_0 x = d * (q - 1)                          q 2 bits (0, 1, 2)
 */
#ifndef AE_QUANT_BLOCKS_H
#define AE_QUANT_BLOCKS_H

#include <stdint.h>

/* AE_BLOCK_SIZE_<TYPE> (values per block) and AE_BLOCK_BYTES_<TYPE> for every row of the type table. */
enum {
#define X(NAME, ID, STR, BS, BB) AE_BLOCK_SIZE_##NAME = BS, AE_BLOCK_BYTES_##NAME = BB,
#include "ggml_types.def"
#undef X
};

#define AE_QK 32   /* values per block of the 32-value types */
#define AE_QK_K 256 /* values per super-block of the K-quants */
#define AE_K_SCALE_BYTES 12 /* packed 6-bit scales and mins of Q3_K, Q4_K, Q5_K */

struct ae_block_q4_0 {
    uint16_t d;               /* fp16 scale */
    uint8_t qs[AE_QK / 2];    /* element j in the low nibble of qs[j], element j+16 in the high */
};

struct ae_block_q4_1 {
    uint16_t d;               /* fp16 scale */
    uint16_t m;               /* fp16 minimum */
    uint8_t qs[AE_QK / 2];    /* nibbles as in Q4_0 */
};

struct ae_block_q5_0 {
    uint16_t d;               /* fp16 scale */
    uint8_t qh[4];            /* 5th bits: bit j of the little-endian uint32 belongs to element j */
    uint8_t qs[AE_QK / 2];    /* low 4 bits, nibbles as in Q4_0 */
};

struct ae_block_q5_1 {
    uint16_t d;               /* fp16 scale */
    uint16_t m;               /* fp16 minimum */
    uint8_t qh[4];            /* 5th bits as in Q5_0 */
    uint8_t qs[AE_QK / 2];    /* low 4 bits as in Q5_0 */
};

struct ae_block_q8_0 {
    uint16_t d;               /* fp16 scale */
    int8_t qs[AE_QK];
};

struct ae_block_q8_1 {
    uint16_t d;               /* fp16 scale */
    uint16_t s;               /* fp16 d * sum(qs) */
    int8_t qs[AE_QK];
};

struct ae_block_q2_k {
    uint8_t scales[AE_QK_K / 16]; /* per group of 16: scale in the low nibble, min in the high */
    uint8_t qs[AE_QK_K / 4];      /* 2-bit quants; see the dequantizer for the order */
    uint16_t d;                   /* fp16 super-block scale of the scales */
    uint16_t dmin;                /* fp16 super-block scale of the mins */
};

struct ae_block_q3_k {
    uint8_t hmask[AE_QK_K / 8];       /* 3rd bits of the quants */
    uint8_t qs[AE_QK_K / 4];          /* low 2 bits of the quants */
    uint8_t scales[AE_K_SCALE_BYTES]; /* 16 6-bit scales, offset by 32 */
    uint16_t d;                       /* fp16 super-block scale */
};

struct ae_block_q4_k {
    uint16_t d;                       /* fp16 super-block scale of the scales */
    uint16_t dmin;                    /* fp16 super-block scale of the mins */
    uint8_t scales[AE_K_SCALE_BYTES]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[AE_QK_K / 2];          /* 4-bit quants */
};

struct ae_block_q5_k {
    uint16_t d;                       /* fp16 super-block scale of the scales */
    uint16_t dmin;                    /* fp16 super-block scale of the mins */
    uint8_t scales[AE_K_SCALE_BYTES]; /* as in Q4_K */
    uint8_t qh[AE_QK_K / 8];          /* 5th bits of the quants */
    uint8_t qs[AE_QK_K / 2];          /* low 4 bits of the quants */
};

struct ae_block_q6_k {
    uint8_t ql[AE_QK_K / 2];          /* low 4 bits of the quants */
    uint8_t qh[AE_QK_K / 4];          /* high 2 bits of the quants */
    int8_t scales[AE_QK_K / 16];      /* signed 8-bit scale per group of 16 */
    uint16_t d;                       /* fp16 super-block scale */
};

/* IQ4_NL and IQ4_XS map each 4-bit index through this table (ggml's kvalues_iq4nl). */
#define AE_IQ4_VALUES {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

struct ae_block_iq4_nl {
    uint16_t d;               /* fp16 scale */
    uint8_t qs[AE_QK / 2];    /* table indices, nibbles as in Q4_0 */
};

struct ae_block_iq4_xs {
    uint16_t d;                       /* fp16 super-block scale */
    uint16_t scales_h;                /* top 2 bits of group g's scale in bits 2g, 2g+1 */
    uint8_t scales_l[AE_QK_K / 64];   /* low 4 bits: group g in the low (g even) or high nibble of [g/2] */
    uint8_t qs[AE_QK_K / 2];          /* table indices: group g's 16 bytes at 16g, nibbles as in Q4_0 */
};

/* Trit t of a byte b that packs up to five: the top trit of (b * 3^t mod 256) read as (x * 3) >> 8. */
struct ae_block_tq1_0 {
    uint8_t qs[(AE_QK_K - 4 * AE_QK_K / 64) / 5]; /* 48 bytes, 5 trits each: bytes 0-31 give elements
                                                    * 32t + m (t < 5, m < 32), bytes 32-47 give
                                                    * 160 + 16t + m (m < 16) */
    uint8_t qh[AE_QK_K / 64];                     /* 4 bytes, 4 trits each: element 240 + 4t + j */
    uint16_t d;                                   /* fp16 scale */
};

struct ae_block_tq2_0 {
    uint8_t qs[AE_QK_K / 4]; /* byte 32h + m holds elements 128h + 32l + m in bit pair l (l < 4) */
    uint16_t d;              /* fp16 scale */
};

struct ae_block_q8_k {
    float d;                          /* f32 scale (not fp16) */
    int8_t qs[AE_QK_K];
    int16_t bsums[AE_QK_K / 16];      /* sum of each group of 16 quants */
};

/* ---- The matmul's own activation block --------------------------------------------------------- */

/* A Q8_0 (or Q8_1) activation block as the kernels read it (docs/kernels.md): the quants and scale of
 * ggml's quantize_row_q8_0 / q8_1, d widened to f32 (the value of the fp16 scale, exactly), and one more
 * word: for Q8_0 the negated integer sum of the quants (which lets a kernel use unsigned weights
 * u = q + bias and add bias * neg_sum back exactly), for Q8_1 the value of its fp16 s. 40 bytes, 8-byte
 * aligned. */
struct ae_block_q8a {
    int8_t qs[AE_QK];
    float d;             /* the fp16 scale's value */
    union {
        int32_t neg_sum; /* Q8_0: -sum(qs) */
        float s;         /* Q8_1: the value of fp16(d * sum(qs)), d before its fp16 rounding */
    };
};

/* ---- x16: 16 weight rows interleaved (docs/kernels.md) ------------------------------------------- */

/* Rows per group, and bytes per chunk: 4 quant bytes of each of the 16 rows. */
#define AE_X16_ROWS 16
#define AE_X16_CHUNK 64

struct ae_x16_q4_0 {
    uint16_t d[16];
    uint8_t qs[4][16][4];  /* chunk j, row r: the row's qs[4j..4j+3] */
};

struct ae_x16_q4_1 {
    uint16_t d[16];
    uint16_t m[16];
    uint8_t qs[4][16][4];
};

struct ae_x16_q5_0 {
    uint16_t d[16];
    uint32_t qh[16];       /* per row: byte j bit i = fifth bit of value 4j+i, bit 4+i of value 16+4j+i */
    uint8_t qs[4][16][4];
};

struct ae_x16_q5_1 {
    uint16_t d[16];
    uint16_t m[16];
    uint32_t qh[16];
    uint8_t qs[4][16][4];
};

struct ae_x16_q8_0 {
    uint16_t d[16];
    int8_t qs[8][16][4];   /* chunk j, row r: the row's qs[4j..4j+3] */
};

struct ae_x16_q2_k {
    uint16_t d[16];
    uint16_t dmin[16];
    uint8_t scales[16][16];               /* group g of each row: scale in the low nibble, min in the high */
    uint8_t qs[16][16][4];                /* chunk c, row r: the row's qs[4c..4c+3] */
};

struct ae_x16_q3_k {
    uint16_t d[16];
    uint8_t scales[AE_K_SCALE_BYTES][16]; /* byte j of each row's packed scales */
    uint8_t hmask[8][16][4];              /* chunk c: the row's hmask[4c..4c+3] */
    uint8_t qs[16][16][4];                /* chunk c: the row's qs[4c..4c+3] */
};

struct ae_x16_q4_k {
    uint16_t d[16];
    uint16_t dmin[16];
    uint8_t scales[AE_K_SCALE_BYTES][16]; /* byte j of each row's packed scales */
    uint8_t qs[32][16][4];                /* chunk c, row r: the row's qs[4c..4c+3] */
};

struct ae_x16_q5_k {
    uint16_t d[16];
    uint16_t dmin[16];
    uint8_t scales[AE_K_SCALE_BYTES][16];
    uint8_t qh[8][16][4];                 /* chunk c: the row's qh[4c..4c+3] */
    uint8_t qs[32][16][4];
};

struct ae_x16_q6_k {
    uint16_t d[16];
    int8_t scales[16][16];                /* group g of each row */
    uint8_t ql[32][16][4];                /* chunk c: the row's ql[4c..4c+3] */
    uint8_t qh[16][16][4];                /* chunk c: the row's qh[4c..4c+3] */
};

_Static_assert(sizeof(struct ae_block_q8a) == 40, "q8a block layout");
_Static_assert(sizeof(struct ae_x16_q4_0) == 16 * AE_BLOCK_BYTES_Q4_0, "x16 q4_0 layout");
_Static_assert(sizeof(struct ae_x16_q4_1) == 16 * AE_BLOCK_BYTES_Q4_1, "x16 q4_1 layout");
_Static_assert(sizeof(struct ae_x16_q5_0) == 16 * AE_BLOCK_BYTES_Q5_0, "x16 q5_0 layout");
_Static_assert(sizeof(struct ae_x16_q5_1) == 16 * AE_BLOCK_BYTES_Q5_1, "x16 q5_1 layout");
_Static_assert(sizeof(struct ae_x16_q8_0) == 16 * AE_BLOCK_BYTES_Q8_0, "x16 q8_0 layout");
_Static_assert(sizeof(struct ae_x16_q2_k) == 16 * AE_BLOCK_BYTES_Q2_K, "x16 q2_k layout");
_Static_assert(sizeof(struct ae_x16_q3_k) == 16 * AE_BLOCK_BYTES_Q3_K, "x16 q3_k layout");
_Static_assert(sizeof(struct ae_x16_q4_k) == 16 * AE_BLOCK_BYTES_Q4_K, "x16 q4_k layout");
_Static_assert(sizeof(struct ae_x16_q5_k) == 16 * AE_BLOCK_BYTES_Q5_K, "x16 q5_k layout");
_Static_assert(sizeof(struct ae_x16_q6_k) == 16 * AE_BLOCK_BYTES_Q6_K, "x16 q6_k layout");

_Static_assert(sizeof(struct ae_block_q4_0) == AE_BLOCK_BYTES_Q4_0, "q4_0 block layout");
_Static_assert(sizeof(struct ae_block_q4_1) == AE_BLOCK_BYTES_Q4_1, "q4_1 block layout");
_Static_assert(sizeof(struct ae_block_q5_0) == AE_BLOCK_BYTES_Q5_0, "q5_0 block layout");
_Static_assert(sizeof(struct ae_block_q5_1) == AE_BLOCK_BYTES_Q5_1, "q5_1 block layout");
_Static_assert(sizeof(struct ae_block_q8_0) == AE_BLOCK_BYTES_Q8_0, "q8_0 block layout");
_Static_assert(sizeof(struct ae_block_q8_1) == AE_BLOCK_BYTES_Q8_1, "q8_1 block layout");
_Static_assert(sizeof(struct ae_block_q2_k) == AE_BLOCK_BYTES_Q2_K, "q2_k block layout");
_Static_assert(sizeof(struct ae_block_q3_k) == AE_BLOCK_BYTES_Q3_K, "q3_k block layout");
_Static_assert(sizeof(struct ae_block_q4_k) == AE_BLOCK_BYTES_Q4_K, "q4_k block layout");
_Static_assert(sizeof(struct ae_block_q5_k) == AE_BLOCK_BYTES_Q5_K, "q5_k block layout");
_Static_assert(sizeof(struct ae_block_q6_k) == AE_BLOCK_BYTES_Q6_K, "q6_k block layout");
_Static_assert(sizeof(struct ae_block_q8_k) == AE_BLOCK_BYTES_Q8_K, "q8_k block layout");
_Static_assert(sizeof(struct ae_block_iq4_nl) == AE_BLOCK_BYTES_IQ4_NL, "iq4_nl block layout");
_Static_assert(sizeof(struct ae_block_iq4_xs) == AE_BLOCK_BYTES_IQ4_XS, "iq4_xs block layout");
_Static_assert(sizeof(struct ae_block_tq1_0) == AE_BLOCK_BYTES_TQ1_0, "tq1_0 block layout");
_Static_assert(sizeof(struct ae_block_tq2_0) == AE_BLOCK_BYTES_TQ2_0, "tq2_0 block layout");

_Static_assert(AE_BLOCK_SIZE_Q4_0 == AE_QK && AE_BLOCK_SIZE_Q4_1 == AE_QK && AE_BLOCK_SIZE_Q5_0 == AE_QK &&
                   AE_BLOCK_SIZE_Q5_1 == AE_QK && AE_BLOCK_SIZE_Q8_0 == AE_QK && AE_BLOCK_SIZE_Q8_1 == AE_QK,
               "32-value block types");
_Static_assert(AE_BLOCK_SIZE_Q2_K == AE_QK_K && AE_BLOCK_SIZE_Q3_K == AE_QK_K && AE_BLOCK_SIZE_Q4_K == AE_QK_K &&
                   AE_BLOCK_SIZE_Q5_K == AE_QK_K && AE_BLOCK_SIZE_Q6_K == AE_QK_K && AE_BLOCK_SIZE_Q8_K == AE_QK_K,
               "K-quant super-blocks");

#endif
