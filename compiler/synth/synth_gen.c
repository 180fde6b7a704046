/* Random tensor data for 'aetherc synth' (see synth.h): normal quantile tables, the per-type block
 * generators and the threaded row loop.
 *
 * A quantized value is scale * (q - center). q is looked up from a 256-entry table indexed by a random
 * byte: the table holds a normal distribution discretized onto the type's levels and truncated where
 * its 256 quantiles end, symmetric about the center, so values have mean exactly 0 before the scales.
 * The scale is d (fp16, random within 0.75..1.25 of a unit chosen for the target std) times, for the
 * K-quants, a random integer sub-scale; where a type has a min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) it is
 * set to cancel the center, so each group stays centred on zero. With q, r = d / unit and s independent,
 * E[x^2] = unit^2 E[r^2] E[s^2] Var(q), which fixes unit for a target std.
 *
 * Quants that live in one bit field (Q4_0, Q4_1, Q8_0, Q2_K, Q4_K) are independent and identically
 * distributed, so they are packed in byte order; quants split over two fields (Q5_0, Q5_1, Q3_K, Q5_K,
 * Q6_K) are placed element by element so that both halves of each element come from the same draw.
 * The non-linear types (IQ4_NL, IQ4_XS) draw table indices: each quantile goes to the table value
 * nearest it, and d gets a random sign because the table is not symmetric. The ternary types (TQ1_0,
 * TQ2_0) draw digits 0..2 about the center 1, packed as ggml's quantizer packs them.
 */
#include "synth.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ae_quant_blocks.h"
#include "ae_types.h"

#define Z_COUNT 65536 /* normal quantiles for float types: 16 random bits per value */
#define Q_COUNT 256   /* quant table entries: 8 random bits per quant */
#define R_LO 0.75     /* d = unit * r, r uniform in [R_LO, R_LO + R_SPAN) */
#define R_SPAN 0.5
#define MIN_RATIO 1.25 /* dmin = d * center * MIN_RATIO, so the 4/6-bit mins differ from the scales */

/* How one quantized type's quants and scales are drawn. */
struct quant_spec {
    uint32_t type;
    int q_lo, q_hi;     /* the quants drawn, symmetric about center */
    double center;      /* the quant that dequantizes to zero (a type's min cancels it where there is one) */
    int sub_lo, sub_hi; /* K-quant sub-scale magnitudes; 1, 1 for one scale per block */
    bool sub_signed;    /* sub-scales get a random sign (Q3_K, Q6_K: signed fields) */
    bool d_signed;      /* d gets a random sign (Q4_0, Q5_0: ggml's quantizer makes both signs) */
    bool table;         /* the quant indexes AE_IQ4_VALUES (IQ4_NL, IQ4_XS); center is then a value */
};

/* Q3_K's quant is the signed value (low 2 bits) - (high bit ? 0 : 4), drawn in -3..3. */
static const struct quant_spec quant_specs[] = {
    {AE_TYPE_Q4_0, 1, 15, 8.0, 1, 1, false, true, false},
    {AE_TYPE_Q4_1, 0, 15, 7.5, 1, 1, false, false, false},
    {AE_TYPE_Q5_0, 1, 31, 16.0, 1, 1, false, true, false},
    {AE_TYPE_Q5_1, 0, 31, 15.5, 1, 1, false, false, false},
    {AE_TYPE_Q8_0, -127, 127, 0.0, 1, 1, false, false, false},
    {AE_TYPE_Q2_K, 0, 3, 1.5, 8, 15, false, false, false},
    {AE_TYPE_Q3_K, -3, 3, 0.0, 8, 31, true, false, false},
    {AE_TYPE_Q4_K, 0, 15, 7.5, 32, 63, false, false, false},
    {AE_TYPE_Q5_K, 0, 31, 15.5, 32, 63, false, false, false},
    {AE_TYPE_Q6_K, 1, 63, 32.0, 32, 127, true, false, false},
    {AE_TYPE_IQ4_NL, 0, 15, 0.0, 1, 1, false, true, true},
    {AE_TYPE_IQ4_XS, 0, 15, 0.0, 8, 31, true, true, true},
    {AE_TYPE_TQ1_0, 0, 2, 1.0, 1, 1, false, false, false},
    {AE_TYPE_TQ2_0, 0, 2, 1.0, 1, 1, false, false, false},
};

static const int8_t iq4_values[16] = AE_IQ4_VALUES;
#define N_QUANT_SPECS (sizeof quant_specs / sizeof quant_specs[0])

struct quant_table {
    int16_t q[Q_COUNT]; /* the quant for each random byte */
    double unit;        /* d's mean magnitude for std 1 */
};

struct synth_tables {
    float z[Z_COUNT]; /* normal quantiles (k + 0.5) / Z_COUNT, rescaled to variance exactly 1 */
    struct quant_table quant[N_QUANT_SPECS];
};

/* ---- random numbers ------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void synth_rng_seed(struct synth_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t synth_rng_next(struct synth_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t synth_tensor_seed(uint64_t seed, const char *name)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = a ^ h;
    return splitmix64(&x);
}

/* Uniform in [0, 1). */
static inline double rng_unit(struct synth_rng *r) { return (double)(synth_rng_next(r) >> 11) * 0x1p-53; }

/* Uniform integer in [lo, hi]. */
static inline int rng_int(struct synth_rng *r, int lo, int hi)
{
    return lo + (int)(((synth_rng_next(r) >> 32) * (uint64_t)(hi - lo + 1)) >> 32);
}

static inline bool rng_bit(struct synth_rng *r) { return synth_rng_next(r) >> 63; }

/* ---- tables -------------------------------------------------------------------------------------- */

static double normal_cdf(double x) { return 0.5 * erfc(-x / M_SQRT2); }

/* The quantile of p >= 0.5 by Newton's method from x0 <= the root: the cdf is concave there, so the
 * iterates rise monotonically to the root. */
static double normal_quantile_from(double p, double x0)
{
    double x = x0;
    for (int i = 0; i < 100; i++) {
        double step = (p - normal_cdf(x)) / (exp(-0.5 * x * x) / sqrt(2 * M_PI));
        x += step;
        if (fabs(step) < 1e-13)
            break;
    }
    return x;
}

/* The n quantiles (k + 0.5) / n of N(0, 1), exactly antisymmetric. */
static void normal_quantiles(double *z, int n)
{
    double x = 0;
    for (int k = n / 2; k < n; k++) {
        x = normal_quantile_from((k + 0.5) / n, x);
        z[k] = x;
        z[n - 1 - k] = -x;
    }
}

/* The table index whose value is nearest v. */
static int nearest_level(double v)
{
    int best = 0;
    for (int i = 1; i < 16; i++)
        if (fabs(iq4_values[i] - v) < fabs(iq4_values[best] - v))
            best = i;
    return best;
}

static void quant_table_init(struct quant_table *qt, const struct quant_spec *sp, const double *z)
{
    double half = sp->table ? 113.0 : fmin(sp->center - sp->q_lo, sp->q_hi - sp->center);
    double sigma = (half + 0.49) / z[Q_COUNT - 1];
    double var = 0;
    for (int k = 0; k < Q_COUNT; k++) {
        long q = sp->table ? nearest_level(sigma * z[k]) : lround(sp->center + sigma * z[k]);
        q = q < sp->q_lo ? sp->q_lo : q > sp->q_hi ? sp->q_hi : q;
        qt->q[k] = (int16_t)q;
        double v = sp->table ? iq4_values[q] : (double)q - sp->center;
        var += v * v;
    }
    var /= Q_COUNT;
    double s2 = 0; /* E[s^2] of the sub-scale magnitude */
    for (int s = sp->sub_lo; s <= sp->sub_hi; s++)
        s2 += (double)s * s;
    s2 /= sp->sub_hi - sp->sub_lo + 1;
    double r2 = R_LO * R_LO + R_LO * R_SPAN + R_SPAN * R_SPAN / 3; /* E[r^2] */
    qt->unit = 1.0 / sqrt(var * s2 * r2);
}

struct synth_tables *synth_tables_create(void)
{
    struct synth_tables *t = malloc(sizeof *t);
    double *z = malloc(Z_COUNT * sizeof *z);
    if (!t || !z) {
        free(t);
        free(z);
        return NULL;
    }
    normal_quantiles(z, Z_COUNT);
    double var = 0;
    for (int k = 0; k < Z_COUNT; k++)
        var += z[k] * z[k];
    double norm = 1.0 / sqrt(var / Z_COUNT);
    for (int k = 0; k < Z_COUNT; k++)
        t->z[k] = (float)(z[k] * norm);
    normal_quantiles(z, Q_COUNT);
    for (size_t i = 0; i < N_QUANT_SPECS; i++)
        quant_table_init(&t->quant[i], &quant_specs[i], z);
    free(z);
    return t;
}

void synth_tables_destroy(struct synth_tables *t) { free(t); }

static int quant_spec_index(uint32_t type)
{
    for (size_t i = 0; i < N_QUANT_SPECS; i++)
        if (quant_specs[i].type == type)
            return (int)i;
    return -1;
}

bool synth_type_supported(uint32_t type)
{
    return type == AE_TYPE_F32 || type == AE_TYPE_F16 || type == AE_TYPE_BF16 || quant_spec_index(type) >= 0;
}

const char *synth_type_list(void)
{
    return "f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs tq1_0 tq2_0";
}

/* ---- blocks -------------------------------------------------------------------------------------- */

/* What a block generator needs: the quant table, the spec, and d's mean magnitude for this tensor. */
struct gen {
    const int16_t *q;
    const struct quant_spec *sp;
    double unit;
};

/* fp16 of v; a nonzero v never becomes zero (it keeps the smallest subnormal of its sign). */
static uint16_t half_of(double v)
{
    uint16_t h = ae_fp32_to_fp16((float)v);
    if (v != 0 && !(h & 0x7FFF))
        h |= 1;
    return h;
}

static void draw_quants(const struct gen *g, struct synth_rng *r, int16_t *q, int n)
{
    for (int i = 0; i < n; i += 8) {
        uint64_t x = synth_rng_next(r);
        for (int j = 0; j < 8; j++)
            q[i + j] = g->q[(x >> (8 * j)) & 0xFF];
    }
}

/* d for one block, rounded to fp16. */
static uint16_t draw_d(const struct gen *g, struct synth_rng *r)
{
    double d = g->unit * (R_LO + R_SPAN * rng_unit(r));
    if (g->sp->d_signed && rng_bit(r))
        d = -d;
    return half_of(d);
}

/* A sub-scale: magnitude in [sub_lo, sub_hi], signed where the spec says. */
static int draw_sub(const struct gen *g, struct synth_rng *r)
{
    int s = rng_int(r, g->sp->sub_lo, g->sp->sub_hi);
    return g->sp->sub_signed && rng_bit(r) ? -s : s;
}

/* dmin for a block with scale d, and the min (0..max) that cancels the center of a group with
 * sub-scale s: dmin * m ~ d * s * center, exactly so on average. */
static uint16_t min_scale(const struct gen *g, uint16_t d)
{
    return half_of(ae_fp16_to_fp32(d) * g->sp->center * MIN_RATIO);
}

static uint8_t group_min(const struct gen *g, struct synth_rng *r, uint16_t d, uint16_t dmin, int s, int max)
{
    double m = ae_fp16_to_fp32(d) * s * g->sp->center / ae_fp16_to_fp32(dmin);
    long k = (long)floor(m + rng_unit(r)); /* rounded up or down at random: unbiased, so groups average 0 */
    return (uint8_t)(k < 0 ? 0 : k > max ? max : k);
}

/* 5-bit quants of a 32-value block: low nibbles as Q4_0, 5th bits in the little-endian uint32 qh. */
static void pack_q5(const int16_t *q, uint8_t *qs, uint8_t *qh)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(h >> (8 * k));
}

/* Q4_K/Q5_K scales: 8 6-bit scales and 8 6-bit mins in 12 bytes. Groups 0-3 keep theirs in the low 6
 * bits of bytes 0-3 (scales) and 4-7 (mins); groups 4-7 keep their low 4 bits in bytes 8-11 (scale low
 * nibble, min high nibble) and their top 2 bits in the top bits of bytes 0-3 (scales) and 4-7 (mins). */
static void pack_k4_scales(const uint8_t *sc, const uint8_t *m, uint8_t *out)
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        out[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        out[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
}

static void gen_q4_0(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q4_0 b;
    int16_t q[AE_QK];
    b.d = draw_d(g, r);
    draw_quants(g, r, q, AE_QK);
    for (int j = 0; j < AE_QK / 2; j++)
        b.qs[j] = (uint8_t)(q[j] | q[j + AE_QK / 2] << 4);
    memcpy(out, &b, sizeof b);
}

static void gen_q4_1(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q4_1 b;
    int16_t q[AE_QK];
    b.d = draw_d(g, r);
    b.m = half_of(-ae_fp16_to_fp32(b.d) * g->sp->center);
    draw_quants(g, r, q, AE_QK);
    for (int j = 0; j < AE_QK / 2; j++)
        b.qs[j] = (uint8_t)(q[j] | q[j + AE_QK / 2] << 4);
    memcpy(out, &b, sizeof b);
}

static void gen_q5_0(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q5_0 b;
    int16_t q[AE_QK];
    b.d = draw_d(g, r);
    draw_quants(g, r, q, AE_QK);
    pack_q5(q, b.qs, b.qh);
    memcpy(out, &b, sizeof b);
}

static void gen_q5_1(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q5_1 b;
    int16_t q[AE_QK];
    b.d = draw_d(g, r);
    b.m = half_of(-ae_fp16_to_fp32(b.d) * g->sp->center);
    draw_quants(g, r, q, AE_QK);
    pack_q5(q, b.qs, b.qh);
    memcpy(out, &b, sizeof b);
}

static void gen_q8_0(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q8_0 b;
    int16_t q[AE_QK];
    b.d = draw_d(g, r);
    draw_quants(g, r, q, AE_QK);
    for (int j = 0; j < AE_QK; j++)
        b.qs[j] = (int8_t)q[j];
    memcpy(out, &b, sizeof b);
}

static void gen_q2_k(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q2_k b;
    int16_t q[AE_QK_K];
    b.d = draw_d(g, r);
    b.dmin = min_scale(g, b.d);
    for (int j = 0; j < AE_QK_K / 16; j++) {
        int s = draw_sub(g, r);
        b.scales[j] = (uint8_t)(s | group_min(g, r, b.d, b.dmin, s, 15) << 4);
    }
    draw_quants(g, r, q, AE_QK_K);
    for (int j = 0; j < AE_QK_K / 4; j++)
        b.qs[j] = (uint8_t)(q[4 * j] | q[4 * j + 1] << 2 | q[4 * j + 2] << 4 | q[4 * j + 3] << 6);
    memcpy(out, &b, sizeof b);
}

/* Q3_K: element e has its low 2 bits in qs[32 * (e / 128) + e % 32] at bit 2 * (e % 128 / 32) and its
 * high bit in hmask[e % 32] at bit e / 32; the quant is low - 4 when the high bit is clear. The 16
 * 6-bit scales (stored + 32) have their low nibbles in bytes 0-7 (groups 0-7 low, 8-15 high nibble) and
 * their top 2 bits in bytes 8-11: group j in byte 8 + j % 4 at bit 2 * (j / 4). */
static void gen_q3_k(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q3_k b;
    int16_t q[AE_QK_K];
    memset(&b, 0, sizeof b);
    b.d = draw_d(g, r);
    for (int j = 0; j < AE_QK_K / 16; j++) {
        int l = draw_sub(g, r) + 32;
        if (j < 8)
            b.scales[j] |= (uint8_t)(l & 0xF);
        else
            b.scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
        b.scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    draw_quants(g, r, q, AE_QK_K);
    for (int e = 0; e < AE_QK_K; e++) {
        b.qs[32 * (e / 128) + e % 32] |= (uint8_t)((q[e] & 3) << (2 * (e % 128 / 32)));
        if (q[e] >= 0)
            b.hmask[e % 32] |= (uint8_t)(1 << (e / 32));
    }
    memcpy(out, &b, sizeof b);
}

/* The 8 scales and mins of a Q4_K/Q5_K block. */
static void draw_k4_scales(const struct gen *g, struct synth_rng *r, uint16_t d, uint16_t dmin, uint8_t *out)
{
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        int s = draw_sub(g, r);
        sc[j] = (uint8_t)s;
        m[j] = group_min(g, r, d, dmin, s, 63);
    }
    pack_k4_scales(sc, m, out);
}

static void gen_q4_k(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q4_k b;
    int16_t q[AE_QK_K];
    b.d = draw_d(g, r);
    b.dmin = min_scale(g, b.d);
    draw_k4_scales(g, r, b.d, b.dmin, b.scales);
    draw_quants(g, r, q, AE_QK_K);
    for (int j = 0; j < AE_QK_K / 2; j++)
        b.qs[j] = (uint8_t)(q[2 * j] | q[2 * j + 1] << 4);
    memcpy(out, &b, sizeof b);
}

/* Q5_K: element e = 64 t + p has its low nibble in qs[32 t + p % 32] (low nibble for p < 32, high for
 * p >= 32) and its 5th bit in qh[p % 32] at bit 2 t + p / 32. */
static void gen_q5_k(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q5_k b;
    int16_t q[AE_QK_K];
    memset(&b, 0, sizeof b);
    b.d = draw_d(g, r);
    b.dmin = min_scale(g, b.d);
    draw_k4_scales(g, r, b.d, b.dmin, b.scales);
    draw_quants(g, r, q, AE_QK_K);
    for (int e = 0; e < AE_QK_K; e++) {
        int t = e / 64, p = e % 64;
        b.qs[32 * t + p % 32] |= (uint8_t)((q[e] & 0xF) << (4 * (p / 32)));
        b.qh[p % 32] |= (uint8_t)(((q[e] >> 4) & 1) << (2 * t + p / 32));
    }
    memcpy(out, &b, sizeof b);
}

/* Q6_K: element e = 128 h + 32 k + l has its low nibble in ql[64 h + l + 32 (k & 1)] (low nibble for
 * k < 2, high for k >= 2) and its top 2 bits in qh[32 h + l] at bit 2 k. */
static void gen_q6_k(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_q6_k b;
    int16_t q[AE_QK_K];
    memset(&b, 0, sizeof b);
    b.d = draw_d(g, r);
    for (int j = 0; j < AE_QK_K / 16; j++)
        b.scales[j] = (int8_t)draw_sub(g, r);
    draw_quants(g, r, q, AE_QK_K);
    for (int e = 0; e < AE_QK_K; e++) {
        int h = e / 128, k = e % 128 / 32, l = e % 32;
        b.ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((q[e] & 0xF) << (4 * (k >> 1)));
        b.qh[32 * h + l] |= (uint8_t)((q[e] >> 4) << (2 * k));
    }
    memcpy(out, &b, sizeof b);
}

static void gen_iq4_nl(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_iq4_nl b;
    int16_t q[AE_QK];
    b.d = draw_d(g, r);
    draw_quants(g, r, q, AE_QK);
    for (int j = 0; j < AE_QK / 2; j++)
        b.qs[j] = (uint8_t)(q[j] | q[j + AE_QK / 2] << 4);
    memcpy(out, &b, sizeof b);
}

/* IQ4_XS: group j's 6-bit scale (stored + 32) has its low nibble in scales_l[j / 2] (low nibble for
 * even j) and its top 2 bits in scales_h at bit 2 j; its 32 indices are nibbles as in IQ4_NL. */
static void gen_iq4_xs(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_iq4_xs b;
    int16_t q[AE_QK_K];
    memset(&b, 0, sizeof b);
    b.d = draw_d(g, r);
    for (int j = 0; j < AE_QK_K / 32; j++) {
        int l = draw_sub(g, r) + 32;
        b.scales_l[j / 2] |= (uint8_t)((l & 0xF) << (4 * (j % 2)));
        b.scales_h |= (uint16_t)((l >> 4) << (2 * j));
    }
    draw_quants(g, r, q, AE_QK_K);
    for (int j = 0; j < AE_QK_K / 32; j++)
        for (int i = 0; i < 16; i++)
            b.qs[16 * j + i] = (uint8_t)(q[32 * j + i] | q[32 * j + i + 16] << 4);
    memcpy(out, &b, sizeof b);
}

/* TQ2_0: element 128 h + 32 l + m in qs[32 h + m] at bit 2 l. */
static void gen_tq2_0(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_tq2_0 b;
    int16_t q[AE_QK_K];
    memset(&b, 0, sizeof b);
    b.d = draw_d(g, r);
    draw_quants(g, r, q, AE_QK_K);
    for (int e = 0; e < AE_QK_K; e++)
        b.qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * (e % 128 / 32)));
    memcpy(out, &b, sizeof b);
}

/* Five digits (the first most significant) as ggml packs them: ceil(value * 256 / 243). */
static uint8_t pack_trits(const int16_t *t, int n, int stride)
{
    unsigned v = 0;
    for (int i = 0; i < 5; i++)
        v = v * 3 + (i < n ? (unsigned)t[i * stride] : 0);
    return (uint8_t)((v * 256 + 242) / 243);
}

/* TQ1_0: bytes 0-31 hold elements m + 32 n (n < 5), bytes 32-47 elements 160 + m + 16 n, and the 4 qh
 * bytes elements 240 + j + 4 n (n < 4, the fifth digit 0). */
static void gen_tq1_0(const struct gen *g, struct synth_rng *r, uint8_t *out)
{
    struct ae_block_tq1_0 b;
    int16_t q[AE_QK_K];
    b.d = draw_d(g, r);
    draw_quants(g, r, q, AE_QK_K);
    for (int m = 0; m < 32; m++)
        b.qs[m] = pack_trits(q + m, 5, 32);
    for (int m = 0; m < 16; m++)
        b.qs[32 + m] = pack_trits(q + 160 + m, 5, 16);
    for (int j = 0; j < 4; j++)
        b.qh[j] = pack_trits(q + 240 + j, 4, 4);
    memcpy(out, &b, sizeof b);
}

typedef void (*block_fn)(const struct gen *g, struct synth_rng *r, uint8_t *out);

static block_fn block_fn_of(uint32_t type)
{
    switch (type) {
    case AE_TYPE_Q4_0: return gen_q4_0;
    case AE_TYPE_Q4_1: return gen_q4_1;
    case AE_TYPE_Q5_0: return gen_q5_0;
    case AE_TYPE_Q5_1: return gen_q5_1;
    case AE_TYPE_Q8_0: return gen_q8_0;
    case AE_TYPE_Q2_K: return gen_q2_k;
    case AE_TYPE_Q3_K: return gen_q3_k;
    case AE_TYPE_Q4_K: return gen_q4_k;
    case AE_TYPE_Q5_K: return gen_q5_k;
    case AE_TYPE_Q6_K: return gen_q6_k;
    case AE_TYPE_IQ4_NL: return gen_iq4_nl;
    case AE_TYPE_IQ4_XS: return gen_iq4_xs;
    case AE_TYPE_TQ1_0: return gen_tq1_0;
    case AE_TYPE_TQ2_0: return gen_tq2_0;
    default: return NULL;
    }
}

/* ---- rows and threads ---------------------------------------------------------------------------- */

struct fill_job {
    const struct synth_tables *t;
    uint32_t type;
    struct synth_dist dist;
    uint64_t seed;
    int64_t ne0;
    uint64_t row_bytes;
    uint8_t *dst;             /* row 0 */
    int64_t row_begin, row_end;
};

/* A float value depends only on its 16-bit quantile index, so f16 and bf16 rows look their values up
 * in a table converted once per job (tab16; NULL when it could not be allocated: then each value is
 * converted as it is drawn, to the same bytes). */
static void fill_float_row(const struct fill_job *jb, const uint16_t *tab16, struct synth_rng *r, uint8_t *out)
{
    const float *z = jb->t->z;
    for (int64_t i = 0; i < jb->ne0; i += 4) {
        uint64_t x = synth_rng_next(r);
        int n = jb->ne0 - i < 4 ? (int)(jb->ne0 - i) : 4;
        for (int j = 0; j < n; j++) {
            unsigned k = (x >> (16 * j)) & 0xFFFF;
            float v = jb->dist.mean + jb->dist.std * z[k];
            if (jb->type == AE_TYPE_F32) {
                memcpy(out + 4 * (i + j), &v, 4);
                continue;
            }
            uint16_t h = tab16 ? tab16[k] : jb->type == AE_TYPE_F16 ? ae_fp32_to_fp16(v) : ae_fp32_to_bf16(v);
            memcpy(out + 2 * (i + j), &h, 2);
        }
    }
}

static uint16_t *half_table_create(const struct fill_job *jb)
{
    if (jb->type == AE_TYPE_F32)
        return NULL;
    uint16_t *tab = malloc(Z_COUNT * sizeof *tab);
    for (unsigned k = 0; tab && k < Z_COUNT; k++) {
        float v = jb->dist.mean + jb->dist.std * jb->t->z[k];
        tab[k] = jb->type == AE_TYPE_F16 ? ae_fp32_to_fp16(v) : ae_fp32_to_bf16(v);
    }
    return tab;
}

static void fill_rows(const struct fill_job *jb)
{
    int qi = quant_spec_index(jb->type);
    block_fn fn = block_fn_of(jb->type);
    struct gen g = {0};
    uint32_t bb = 0;
    if (qi >= 0) {
        g.q = jb->t->quant[qi].q;
        g.sp = &quant_specs[qi];
        g.unit = jb->t->quant[qi].unit * jb->dist.std;
        bb = ae_type_info(jb->type)->block_bytes;
    }
    int64_t nb = qi >= 0 ? jb->ne0 / (int64_t)ae_type_info(jb->type)->block_size : 0;
    uint16_t *tab16 = qi < 0 ? half_table_create(jb) : NULL;
    for (int64_t row = jb->row_begin; row < jb->row_end; row++) {
        struct synth_rng r;
        synth_rng_seed(&r, jb->seed ^ (uint64_t)row * 0xD1B54A32D192ED03ull);
        uint8_t *out = jb->dst + (uint64_t)row * jb->row_bytes;
        if (qi < 0) {
            fill_float_row(jb, tab16, &r, out);
            continue;
        }
        for (int64_t i = 0; i < nb; i++)
            fn(&g, &r, out + (uint64_t)i * bb);
    }
    free(tab16);
}

static void *fill_thread(void *arg)
{
    fill_rows(arg);
    return NULL;
}

#define MAX_THREADS 64
#define MIN_BYTES_PER_THREAD (1u << 20)

void synth_fill_tensor(const struct synth_tables *t, uint32_t type, struct synth_dist dist, uint64_t tensor_seed,
                       int64_t ne0, int64_t n_rows, void *dst, int n_threads)
{
    const struct ae_type_info *ti = ae_type_info(type);
    assert(ti && synth_type_supported(type));
    assert(ne0 > 0 && n_rows >= 0 && ne0 % ti->block_size == 0);
    assert(quant_spec_index(type) < 0 || dist.mean == 0);
    struct fill_job base = {t, type, dist, tensor_seed, ne0, (uint64_t)ne0 / ti->block_size * ti->block_bytes,
                            dst, 0, n_rows};
    uint64_t total = base.row_bytes * (uint64_t)n_rows;
    int64_t n = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    if ((uint64_t)n > total / MIN_BYTES_PER_THREAD)
        n = (int64_t)(total / MIN_BYTES_PER_THREAD);
    if (n > n_rows)
        n = n_rows;
    if (n <= 1) {
        fill_rows(&base);
        return;
    }
    struct fill_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS];
    for (int64_t i = 0; i < n; i++) {
        jobs[i] = base;
        jobs[i].row_begin = n_rows * i / n;
        jobs[i].row_end = n_rows * (i + 1) / n;
        started[i] = i > 0 && pthread_create(&tids[i], NULL, fill_thread, &jobs[i]) == 0;
    }
    /* Job 0, and any job whose thread did not start, run here: the bytes are the same either way. */
    for (int64_t i = 0; i < n; i++)
        if (!started[i])
            fill_rows(&jobs[i]);
    for (int64_t i = 1; i < n; i++)
        if (started[i])
            pthread_join(tids[i], NULL);
}
