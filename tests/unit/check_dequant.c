/* Tests of dequantization (runtime/format/dequant.c): bit-exact against llama.cpp.
 *
 * The main rows compare two tensors per weight type of the synthetic tiny-llama models with the f32
 * files ggml itself produced (reference/dequant/), value for value and bit for bit. Around them:
 * the fp16 and bf16 conversions over every half value and every rounding tie, hand-built Q4_0 and
 * Q8_0 blocks with known values, the errors for unsupported types and partial blocks, and a sweep that
 * dequantizes every tensor of every shared model and looks for NaN or Inf.
 */
#include "ae_gguf.h"
#include "ae_quant_blocks.h"
#include "ae_types.h"
#include "test_util.h"

#include <dirent.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ck_assert records its location on every call, which costs a system call; checks inside loops over
 * millions of values use this instead, which only acts when it fails. */
#define EXPECT(cond, ...)                                                                                  \
    do {                                                                                                   \
        if (!(cond))                                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                                     \
    } while (0)

static bool half_is_nan(uint16_t h)
{
    return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0;
}

/* ---- llama.cpp's dequantized tensors ----------------------------------------------------------- */

struct ref_row {
    const char *model;  /* in models/synthetic */
    const char *tensor;
    uint32_t type;      /* the tensor's type in that file */
    int64_t ne0, ne1;
};

static const struct ref_row ref_rows[] = {
    {"tiny-llama-f16.gguf", "blk.0.attn_q.weight", AE_TYPE_F16, 256, 256},
    {"tiny-llama-f16.gguf", "blk.0.ffn_down.weight", AE_TYPE_F16, 768, 256},
    {"tiny-llama-bf16.gguf", "blk.0.attn_q.weight", AE_TYPE_BF16, 256, 256},
    {"tiny-llama-bf16.gguf", "blk.0.ffn_down.weight", AE_TYPE_BF16, 768, 256},
    {"tiny-llama-q8_0.gguf", "blk.0.attn_q.weight", AE_TYPE_Q8_0, 256, 256},
    {"tiny-llama-q8_0.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q8_0, 768, 256},
    {"tiny-llama-q4_0.gguf", "blk.0.attn_q.weight", AE_TYPE_Q4_0, 256, 256},
    {"tiny-llama-q4_0.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q4_0, 768, 256},
    {"tiny-llama-q4_1.gguf", "blk.0.attn_q.weight", AE_TYPE_Q4_1, 256, 256},
    {"tiny-llama-q4_1.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q4_1, 768, 256},
    {"tiny-llama-q5_0.gguf", "blk.0.attn_q.weight", AE_TYPE_Q5_0, 256, 256},
    {"tiny-llama-q5_0.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q5_0, 768, 256},
    {"tiny-llama-q5_1.gguf", "blk.0.attn_q.weight", AE_TYPE_Q5_1, 256, 256},
    {"tiny-llama-q5_1.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q5_1, 768, 256},
    {"tiny-llama-q2_k.gguf", "blk.0.attn_q.weight", AE_TYPE_Q2_K, 256, 256},
    {"tiny-llama-q2_k.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q2_K, 768, 256},
    {"tiny-llama-q3_k.gguf", "blk.0.attn_q.weight", AE_TYPE_Q3_K, 256, 256},
    {"tiny-llama-q3_k.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q3_K, 768, 256},
    {"tiny-llama-q4_k.gguf", "blk.0.attn_q.weight", AE_TYPE_Q4_K, 256, 256},
    {"tiny-llama-q4_k.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q4_K, 768, 256},
    {"tiny-llama-q5_k.gguf", "blk.0.attn_q.weight", AE_TYPE_Q5_K, 256, 256},
    {"tiny-llama-q5_k.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q5_K, 768, 256},
    {"tiny-llama-q6_k.gguf", "blk.0.attn_q.weight", AE_TYPE_Q6_K, 256, 256},
    {"tiny-llama-q6_k.gguf", "blk.0.ffn_down.weight", AE_TYPE_Q6_K, 768, 256},
    {"tiny-llama-iq4_nl.gguf", "blk.0.attn_q.weight", AE_TYPE_IQ4_NL, 256, 256},
    {"tiny-llama-iq4_nl.gguf", "blk.0.ffn_down.weight", AE_TYPE_IQ4_NL, 768, 256},
    {"tiny-llama-iq4_xs.gguf", "blk.0.attn_q.weight", AE_TYPE_IQ4_XS, 256, 256},
    {"tiny-llama-iq4_xs.gguf", "blk.0.ffn_down.weight", AE_TYPE_IQ4_XS, 768, 256},
    {"tiny-llama-tq1_0.gguf", "blk.0.attn_q.weight", AE_TYPE_TQ1_0, 256, 256},
    {"tiny-llama-tq1_0.gguf", "blk.0.ffn_down.weight", AE_TYPE_TQ1_0, 768, 256},
    {"tiny-llama-tq2_0.gguf", "blk.0.attn_q.weight", AE_TYPE_TQ2_0, 256, 256},
    {"tiny-llama-tq2_0.gguf", "blk.0.ffn_down.weight", AE_TYPE_TQ2_0, 768, 256},
};
#define N_REF_ROWS ((int)(sizeof ref_rows / sizeof ref_rows[0]))
_Static_assert(sizeof ref_rows / sizeof ref_rows[0] == 32, "one row per file of reference/dequant/index.json");

START_TEST(test_reference_tensor)
{
    const struct ref_row *r = &ref_rows[_i];
    char rel[256];
    ae_error err = {{0}};
    ae_gguf *g = NULL;

    snprintf(rel, sizeof rel, "models/synthetic/%s", r->model);
    ck_assert_msg(ae_gguf_open(&g, test_shared_path(rel), &err) == 0, "%s", err.msg);
    const struct ae_gguf_tensor *t = ae_gguf_find_tensor(g, r->tensor);
    ck_assert_msg(t != NULL, "%s: no tensor %s", r->model, r->tensor);
    ck_assert_msg(t->type == r->type, "%s %s: type %s, expected %s", r->model, r->tensor, ae_type_name(t->type),
                  ae_type_name(r->type));
    ck_assert_msg(t->ne[0] == r->ne0 && t->ne[1] == r->ne1, "%s %s: shape [%" PRId64 ", %" PRId64 "]", r->model,
                  r->tensor, t->ne[0], t->ne[1]);

    /* "<model stem>.<tensor>.f32" */
    size_t stem = strlen(r->model) - strlen(".gguf");
    snprintf(rel, sizeof rel, "reference/dequant/%.*s.%s.f32", (int)stem, r->model, r->tensor);
    size_t ref_size;
    float *ref = test_read_file(test_shared_path(rel), &ref_size);
    ck_assert_msg(ref_size == (size_t)(r->ne0 * r->ne1) * sizeof(float), "%s: %zu bytes", rel, ref_size);

    uint64_t row_bytes;
    ck_assert_msg(ae_type_row_bytes(t->type, (uint64_t)r->ne0, &row_bytes, &err) == 0, "%s", err.msg);
    float *out = malloc(ref_size);
    ck_assert(out != NULL);
    for (int64_t row = 0; row < r->ne1; row++) {
        const uint8_t *src = (const uint8_t *)t->data + row * row_bytes;
        ck_assert_msg(ae_dequantize_row(t->type, src, out + row * r->ne0, r->ne0, &err) == 0, "%s row %" PRId64 ": %s",
                      r->tensor, row, err.msg);
    }

    if (memcmp(out, ref, ref_size) != 0) {
        int64_t n = r->ne0 * r->ne1, first = -1, n_diff = 0;
        double max_diff = 0;
        for (int64_t i = 0; i < n; i++) {
            if (bits_of(out[i]) == bits_of(ref[i]))
                continue;
            if (first < 0)
                first = i;
            n_diff++;
            double diff = fabs((double)out[i] - (double)ref[i]);
            if (diff > max_diff || isnan(diff))
                max_diff = diff;
        }
        ck_abort_msg("%s %s (%s): %" PRId64 " of %" PRId64 " values differ; first at index %" PRId64
                     " (row %" PRId64 ", column %" PRId64 "): got %.9g (0x%08" PRIx32 "), llama.cpp %.9g (0x%08" PRIx32
                     "); max abs diff %.9g",
                     r->model, r->tensor, ae_type_name(t->type), n_diff, n, first, first / r->ne0, first % r->ne0,
                     (double)out[first], bits_of(out[first]), (double)ref[first], bits_of(ref[first]), max_diff);
    }
    free(out);
    free(ref);
    ae_gguf_close(g);
}
END_TEST

/* ---- fp16 -------------------------------------------------------------------------------------- */

/* The value of a half computed from its fields with libm, independent of the converter. */
static float half_value(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float mag = exp == 0 ? ldexpf((float)man, -24) : ldexpf((float)(man | 0x400), exp - 25);
    return (h & 0x8000) ? -mag : mag;
}

START_TEST(test_fp16_all_values)
{
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = ae_fp16_to_fp32(h);
        uint16_t back = ae_fp32_to_fp16(f);
        if (half_is_nan(h)) {
            EXPECT(isnan(f), "half 0x%04x widened to %g, not NaN", i, (double)f);
            EXPECT((bits_of(f) >> 31) == (i >> 15), "half 0x%04x: NaN sign lost", i);
            EXPECT(half_is_nan(back) && (back & 0x8000) == (h & 0x8000),
                          "half NaN 0x%04x came back as 0x%04x", i, back);
            continue;
        }
        EXPECT(back == h, "half 0x%04x -> %g -> 0x%04x", i, (double)f, back);
        if ((h & 0x7c00) == 0x7c00)
            EXPECT(isinf(f) && (signbit(f) != 0) == ((h & 0x8000) != 0), "half 0x%04x is not inf", i);
        else
            EXPECT(bits_of(f) == bits_of(half_value(h)), "half 0x%04x widened to %.9g (0x%08" PRIx32 "), not %.9g",
                          i, (double)f, bits_of(f), (double)half_value(h));
    }
}
END_TEST

struct f32_to_16_row {
    uint32_t f32;     /* input bits */
    uint16_t expect;  /* fp16 or bf16 bits */
};

START_TEST(test_fp16_known_values)
{
    static const struct f32_to_16_row rows[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000},                        /* +-0 */
        {0x3f800000, 0x3c00}, {0xbf800000, 0xbc00},                        /* +-1 */
        {0x3f801000, 0x3c00}, /* 1 + 2^-11: tie, to even 1.0 */
        {0x3f803000, 0x3c02}, /* 1 + 3*2^-11: tie, to even 1 + 2^-9 */
        {0x3f801001, 0x3c01}, {0x3f800fff, 0x3c00},                        /* just above / below the tie */
        {0x477fe000, 0x7bff}, /* 65504, the largest half */
        {0x477fefff, 0x7bff}, {0x477ff000, 0x7c00}, /* 65520 ties to inf (65504 is odd) */
        {0x7f7fffff, 0x7c00}, {0x7f800000, 0x7c00}, {0xff800000, 0xfc00}, /* FLT_MAX, +-inf */
        {0x7fc00000, 0x7e00}, {0xffc00001, 0xfe00}, {0x7f800001, 0x7e00}, /* NaNs: quiet, sign kept */
        {0x38800000, 0x0400}, /* 2^-14, smallest normal */
        {0x387fc000, 0x03ff}, /* largest subnormal */
        {0x387fe000, 0x0400}, /* tie between it and 2^-14: to even */
        {0x33800000, 0x0001}, {0xb3800000, 0x8001},                        /* +-2^-24, smallest subnormal */
        {0x33000000, 0x0000}, {0xb3000000, 0x8000}, /* 2^-25: tie, to even 0 */
        {0x33000001, 0x0001},                        /* just above it */
        {0x33c00000, 0x0002}, /* 3 * 2^-25: tie between 1 and 2, to even */
        {0x34200000, 0x0002}, /* 5 * 2^-25: tie between 2 and 3, to even */
        {0x38000000, 0x0200}, /* 2^-15 */
        {0x2edbe6ff, 0x0000}, /* 1e-10 */
        {0x40490fdb, 0x4248}, /* pi */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint16_t got = ae_fp32_to_fp16(float_of(rows[i].f32));
        ck_assert_msg(got == rows[i].expect, "fp32 0x%08" PRIx32 " -> fp16 0x%04x, expected 0x%04x", rows[i].f32, got,
                      rows[i].expect);
    }
    /* subnormals widen exactly */
    ck_assert_uint_eq(bits_of(ae_fp16_to_fp32(0x0001)), 0x33800000);
    ck_assert_uint_eq(bits_of(ae_fp16_to_fp32(0x8001)), 0xb3800000);
    ck_assert_uint_eq(bits_of(ae_fp16_to_fp32(0x03ff)), 0x387fc000);
    ck_assert_uint_eq(bits_of(ae_fp16_to_fp32(0x0200)), 0x38000000);
    ck_assert_uint_eq(bits_of(ae_fp16_to_fp32(0x0155)), bits_of(ldexpf(0x155, -24)));
}
END_TEST

/* Every tie between two adjacent finite halves rounds to the even one; a float one ulp off the tie
 * rounds to the nearer one. Covers normals, subnormals and the carries between binades. */
START_TEST(test_fp16_rounding_ties)
{
    for (uint32_t lo = 0; lo < 0x7bff; lo++) {
        for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
            uint16_t a = (uint16_t)(lo | sign), b = (uint16_t)((lo + 1) | sign);
            float mid = (ae_fp16_to_fp32(a) + ae_fp16_to_fp32(b)) / 2; /* exact: 11 bits + 1 fit in 24 */
            uint16_t even = (lo & 1) ? b : a;
            float toward_a = nextafterf(mid, ae_fp16_to_fp32(a)), toward_b = nextafterf(mid, ae_fp16_to_fp32(b));
            EXPECT(ae_fp32_to_fp16(mid) == even, "tie %.9g between 0x%04x and 0x%04x gave 0x%04x", (double)mid,
                          a, b, ae_fp32_to_fp16(mid));
            EXPECT(ae_fp32_to_fp16(toward_a) == a, "%.9g gave 0x%04x, expected 0x%04x", (double)toward_a,
                          ae_fp32_to_fp16(toward_a), a);
            EXPECT(ae_fp32_to_fp16(toward_b) == b, "%.9g gave 0x%04x, expected 0x%04x", (double)toward_b,
                          ae_fp32_to_fp16(toward_b), b);
        }
    }
}
END_TEST

#ifdef __FLT16_MAX__
/* Where the compiler has _Float16, its conversion (IEEE, round to nearest even) is a second oracle
 * over a sweep of float bit patterns. */
START_TEST(test_fp16_against_float16)
{
    for (uint64_t u = 0; u <= UINT32_MAX; u += 4099) {
        float f = float_of((uint32_t)u);
        _Float16 h16 = (_Float16)f;
        uint16_t want;
        memcpy(&want, &h16, sizeof want);
        uint16_t got = ae_fp32_to_fp16(f);
        if (isnan(f))
            EXPECT(half_is_nan(got), "NaN 0x%08" PRIx32 " gave 0x%04x", (uint32_t)u, got);
        else
            EXPECT(got == want, "fp32 0x%08" PRIx32 " -> 0x%04x, _Float16 gives 0x%04x", (uint32_t)u, got, want);
    }
}
END_TEST
#endif

/* ---- bf16 -------------------------------------------------------------------------------------- */

START_TEST(test_bf16)
{
    for (uint32_t i = 0; i < 65536; i++) {
        float f = ae_bf16_to_fp32((uint16_t)i);
        EXPECT(bits_of(f) == i << 16, "bf16 0x%04x widened to 0x%08" PRIx32, i, bits_of(f));
        uint16_t back = ae_fp32_to_bf16(f);
        if (isnan(f))
            EXPECT(back == (i | 0x40), "bf16 NaN 0x%04x came back as 0x%04x", i, back);
        else
            EXPECT(back == i, "bf16 0x%04x came back as 0x%04x", i, back);
    }
    /* ties between adjacent finite values, subnormals included: the low 16 bits are exactly 0x8000 */
    for (uint32_t lo = 0; lo < 0x7f80; lo++) {
        for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
            uint32_t mid = (lo | sign) << 16 | 0x8000;
            uint16_t even = (uint16_t)(((lo & 1) ? lo + 1 : lo) | sign);
            EXPECT(ae_fp32_to_bf16(float_of(mid)) == even, "tie 0x%08" PRIx32 " gave 0x%04x", mid,
                          ae_fp32_to_bf16(float_of(mid)));
            EXPECT(ae_fp32_to_bf16(float_of(mid - 1)) == (lo | sign), "0x%08" PRIx32 " below a tie", mid - 1);
            EXPECT(ae_fp32_to_bf16(float_of(mid + 1)) == ((lo + 1) | sign), "0x%08" PRIx32 " above a tie", mid + 1);
        }
    }
    static const struct f32_to_16_row rows[] = {
        {0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81},
        {0x7f7fffff, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80}, {0x7f800001, 0x7fc0}, {0xff812345, 0xffc1},
        {0x00010000, 0x0001}, {0x00008000, 0x0000}, {0x00018000, 0x0002}, {0x80008001, 0x8001},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint16_t got = ae_fp32_to_bf16(float_of(rows[i].f32));
        ck_assert_msg(got == rows[i].expect, "fp32 0x%08" PRIx32 " -> bf16 0x%04x, expected 0x%04x", rows[i].f32, got,
                      rows[i].expect);
    }
}
END_TEST

/* ---- hand-built blocks ------------------------------------------------------------------------- */

START_TEST(test_q4_0_block)
{
    struct ae_block_q4_0 blocks[2];
    blocks[0].d = 0x3800; /* 0.5 */
    blocks[1].d = 0xc000; /* -2.0 */
    for (int j = 0; j < 16; j++) {
        blocks[0].qs[j] = (uint8_t)(j | (15 - j) << 4);
        blocks[1].qs[j] = (uint8_t)(8 | j << 4);
    }
    float out[64];
    ae_error err = {{0}};
    ck_assert_msg(ae_dequantize_row(AE_TYPE_Q4_0, blocks, out, 64, &err) == 0, "%s", err.msg);
    for (int j = 0; j < 16; j++) {
        ck_assert_float_eq(out[j], (j - 8) * 0.5f);
        ck_assert_float_eq(out[j + 16], (7 - j) * 0.5f);
        ck_assert_float_eq(out[32 + j], 0.0f);
        ck_assert_float_eq(out[48 + j], (j - 8) * -2.0f);
    }
    /* the same bytes one byte off alignment give the same values */
    uint8_t raw[1 + sizeof blocks];
    memcpy(raw + 1, blocks, sizeof blocks);
    float out2[64];
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_Q4_0, raw + 1, out2, 64, &err), 0);
    ck_assert_mem_eq(out, out2, sizeof out);
}
END_TEST

START_TEST(test_q8_0_block)
{
    struct ae_block_q8_0 b;
    b.d = 0x3400; /* 0.25 */
    for (int j = 0; j < 32; j++)
        b.qs[j] = (int8_t)(j * 8 - 128);
    float out[32];
    ae_error err = {{0}};
    ck_assert_msg(ae_dequantize_row(AE_TYPE_Q8_0, &b, out, 32, &err) == 0, "%s", err.msg);
    for (int j = 0; j < 32; j++)
        ck_assert_float_eq(out[j], (float)(j * 8 - 128) * 0.25f);
    ck_assert_float_eq(out[0], -32.0f);
    ck_assert_float_eq(out[31], 30.0f);
}
END_TEST

/* Q8_K has no file to compare with: its scale is an f32 and x = d * q. */
START_TEST(test_q8_k_block)
{
    struct ae_block_q8_k b;
    memset(&b, 0, sizeof b);
    b.d = 0.5f;
    for (int j = 0; j < 256; j++)
        b.qs[j] = (int8_t)(j - 128);
    float out[256];
    ae_error err = {{0}};
    ck_assert_msg(ae_dequantize_row(AE_TYPE_Q8_K, &b, out, 256, &err) == 0, "%s", err.msg);
    for (int j = 0; j < 256; j++)
        EXPECT(out[j] == (float)(j - 128) * 0.5f, "q8_k value %d is %g", j, (double)out[j]);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------ */

START_TEST(test_unsupported_types)
{
    uint8_t block[512] = {0};
    float out[256];
    ae_error err = {{0}};

    out[0] = 42.0f;
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_IQ2_XXS, block, out, 256, &err), -1);
    ck_assert_str_eq(err.msg, "type iq2_xxs is not supported yet");
    ck_assert_float_eq(out[0], 42.0f);
    ck_assert(!ae_type_can_dequantize(AE_TYPE_IQ2_XXS));

    static const uint32_t supported[] = {AE_TYPE_F32,  AE_TYPE_F16,  AE_TYPE_BF16, AE_TYPE_Q4_0, AE_TYPE_Q4_1,
                                         AE_TYPE_Q5_0, AE_TYPE_Q5_1, AE_TYPE_Q8_0, AE_TYPE_Q2_K, AE_TYPE_Q3_K,
                                         AE_TYPE_Q4_K, AE_TYPE_Q5_K, AE_TYPE_Q6_K, AE_TYPE_Q8_K,
                                         AE_TYPE_IQ4_NL, AE_TYPE_IQ4_XS, AE_TYPE_TQ1_0, AE_TYPE_TQ2_0};
    for (uint32_t type = 0; type < AE_TYPE_ID_LIMIT + 2; type++) {
        const struct ae_type_info *info = ae_type_info(type);
        bool want = false;
        for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++)
            want = want || supported[i] == type;
        ck_assert_msg(ae_type_can_dequantize(type) == want, "type %" PRIu32 " (%s)", type, ae_type_name(type));
        if (want)
            continue;
        int64_t n = info ? (int64_t)info->block_size : 32;
        ck_assert_int_eq(ae_dequantize_row(type, block, out, n, &err), -1);
        if (info) {
            char expect[64];
            snprintf(expect, sizeof expect, "type %s is not supported yet", info->name);
            ck_assert_str_eq(err.msg, expect);
        } else {
            ck_assert_msg(strstr(err.msg, "unknown") != NULL, "type %" PRIu32 ": %s", type, err.msg);
        }
    }
}
END_TEST

START_TEST(test_partial_block)
{
    uint8_t block[512] = {0};
    float out[512];
    ae_error err = {{0}};

    out[0] = 42.0f;
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_Q4_0, block, out, 33, &err), -1);
    ck_assert_msg(strstr(err.msg, "33") && strstr(err.msg, "q4_0") && strstr(err.msg, "block size 32"), "%s",
                  err.msg);
    ck_assert_float_eq(out[0], 42.0f);
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_Q6_K, block, out, 128, &err), -1);
    ck_assert_msg(strstr(err.msg, "q6_k") && strstr(err.msg, "256"), "%s", err.msg);
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_Q8_0, block, out, -32, &err), -1);
    /* zero elements is an empty row, not an error; F32 takes any count */
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_Q4_K, NULL, NULL, 0, &err), 0);
    ck_assert_int_eq(ae_dequantize_row(AE_TYPE_F32, block, out, 7, &err), 0);
}
END_TEST

/* ---- every tensor of every shared model -------------------------------------------------------- */

/* The one shared file the reader rejects: GGUF v2 with Q8_0 rows of 172 values. */
#define REJECTED_MODEL "tinyllamas-stories-260k-q8_0.gguf"

/* Dequantizes every tensor of a supported type in one file; returns how many. */
static int sweep_model(const char *path, const char *file)
{
    ae_gguf *g = NULL;
    ae_error err = {{0}};
    if (strcmp(file, REJECTED_MODEL) == 0) {
        ck_assert_msg(ae_gguf_open(&g, path, &err) == -1, "%s: expected the reader to reject it", path);
        return 0;
    }
    ck_assert_msg(ae_gguf_open(&g, path, &err) == 0, "%s", err.msg);
    int done = 0;
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const struct ae_gguf_tensor *t = &g->tensors[k];
        if (!ae_type_can_dequantize(t->type))
            continue;
        int64_t ne0 = t->ne[0], rows = (int64_t)(t->n_elements / (uint64_t)ne0);
        uint64_t row_bytes;
        ck_assert_msg(ae_type_row_bytes(t->type, (uint64_t)ne0, &row_bytes, &err) == 0, "%s %s: %s", file, t->name,
                      err.msg);
        float *row = malloc((size_t)ne0 * sizeof *row);
        ck_assert(row != NULL);
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *src = (const uint8_t *)t->data + (uint64_t)r * row_bytes;
            if (ae_dequantize_row(t->type, src, row, ne0, &err) != 0) {
                ae_fail_prefix(&err, "%s: tensor %s row %" PRId64, file, t->name, r);
                ck_abort_msg("%s", err.msg);
            }
            for (int64_t i = 0; i < ne0; i++)
                EXPECT(isfinite(row[i]), "%s: tensor %s (%s) row %" PRId64 " column %" PRId64 " is %g", file,
                              t->name, ae_type_name(t->type), r, i, (double)row[i]);
        }
        free(row);
        done++;
    }
    ae_gguf_close(g);
    return done;
}

/* Sweeps every .gguf in a shared folder; returns the number of files. */
static int sweep_folder(const char *rel, int *tensors)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_shared_path(rel));
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open the shared models folder %s", dir);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        *tensors += sweep_model(path, e->d_name);
        files++;
    }
    closedir(d);
    return files;
}

START_TEST(test_all_models)
{
    int tensors = 0;
    int files = sweep_folder("models", &tensors);
    ck_assert_msg(files >= 5, "only %d models in the shared models folder", files);
    files = sweep_folder("models/synthetic", &tensors);
    ck_assert_msg(files >= 25, "only %d synthetic models", files);
    ck_assert_int_gt(tensors, 500);
}
END_TEST

static Suite *dequant_suite(void)
{
    Suite *s = suite_create("dequant");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_reference_tensor, 0, N_REF_ROWS);
    suite_add_tcase(s, tc);

    tc = tcase_create("half");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fp16_all_values);
    tcase_add_test(tc, test_fp16_known_values);
    tcase_add_test(tc, test_fp16_rounding_ties);
#ifdef __FLT16_MAX__
    tcase_add_test(tc, test_fp16_against_float16);
#endif
    tcase_add_test(tc, test_bf16);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocks");
    tcase_add_test(tc, test_q4_0_block);
    tcase_add_test(tc, test_q8_0_block);
    tcase_add_test(tc, test_q8_k_block);
    tcase_add_test(tc, test_unsupported_types);
    tcase_add_test(tc, test_partial_block);
    suite_add_tcase(s, tc);

    tc = tcase_create("models");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_all_models);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(dequant_suite());
}
