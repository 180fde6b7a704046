/* The sampler chain: each stage against its definition, the draw against the softmax by chi-square.
 *
 * Statistical tests use fixed seeds, so they are deterministic; their thresholds are the chi-square
 * quantiles at p = 0.001, which a correct sampler passes for all but one seed in a thousand, and a
 * wrong one (a stage missing, off by one, or a biased draw) fails by orders of magnitude.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ae_sampler.h"
#include "test_util.h"

#define N_DRAWS 20000

/* ---- Helpers -------------------------------------------------------------------------------------- */

static ae_sampler *make_sampler(const struct ae_sampler_params *p, int32_t n_vocab)
{
    ae_error err = { { 0 } };
    ae_sampler *s = ae_sampler_create(p, n_vocab, &err);
    ck_assert_msg(s != NULL, "ae_sampler_create failed: %s", err.msg);
    return s;
}

/* Parameters with every filter off: a plain draw at temperature 1. */
static struct ae_sampler_params plain_params(uint64_t seed)
{
    struct ae_sampler_params p;
    ae_sampler_params_init(&p);
    p.seed = seed;
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static int32_t sample_ok(ae_sampler *s, const float *logits)
{
    ae_error err = { { 0 } };
    int32_t t = ae_sampler_sample(s, logits, &err);
    ck_assert_msg(t >= 0, "ae_sampler_sample failed: %s", err.msg);
    return t;
}

/* Draws N_DRAWS tokens into counts (n entries). */
static void draw_counts(ae_sampler *s, const float *logits, int n, long *counts)
{
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int i = 0; i < N_DRAWS; i++) {
        int32_t t = sample_ok(s, logits);
        ck_assert_int_lt(t, n);
        counts[t]++;
    }
}

/* softmax(logits / temp) into p. */
static void softmax(const float *logits, int n, double temp, double *p)
{
    double max = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] > max)
            max = logits[i];
    for (int i = 0; i < n; i++) {
        p[i] = isinf(logits[i]) ? 0.0 : exp((logits[i] - max) / temp);
        sum += p[i];
    }
    for (int i = 0; i < n; i++)
        p[i] /= sum;
}

/* Chi-square of counts against probabilities p; tokens with p = 0 must have no draws, and cells
 * expected to get fewer than 5 draws are pooled into one, as the test requires. Returns the
 * statistic and its degrees of freedom. */
static double chi_square(const long *counts, const double *p, int n, int *dof)
{
    double chi = 0, pooled_e = 0;
    long total = 0, pooled_c = 0;
    int cells = 0;
    for (int i = 0; i < n; i++)
        total += counts[i];
    for (int i = 0; i < n; i++) {
        if (p[i] == 0.0) {
            ck_assert_msg(counts[i] == 0, "token %d has probability 0 but was drawn %ld times", i, counts[i]);
            continue;
        }
        double e = p[i] * (double)total;
        if (e < 5.0) {
            pooled_e += e;
            pooled_c += counts[i];
            continue;
        }
        chi += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
        cells++;
    }
    if (pooled_e > 0) {
        chi += ((double)pooled_c - pooled_e) * ((double)pooled_c - pooled_e) / pooled_e;
        cells++;
    }
    *dof = cells - 1;
    return chi;
}

/* Chi-square quantile at 0.999 for dof 1..10. */
static double chi_crit(int dof)
{
    static const double q[] = { 0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59 };
    ck_assert(dof >= 1 && dof <= 10);
    return q[dof];
}

static void assert_fits(const long *counts, const double *p, int n, const char *what)
{
    int dof;
    double chi = chi_square(counts, p, n, &dof);
    if (dof < 1)
        return;
    ck_assert_msg(chi < chi_crit(dof), "%s: chi-square %.2f with %d degrees of freedom exceeds %.2f",
                  what, chi, dof, chi_crit(dof));
}

/* Logits whose softmax is exactly probs (up to rounding). */
static void logits_from_probs(const double *probs, int n, float *logits)
{
    for (int i = 0; i < n; i++)
        logits[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
}

/* ---- PRNG ----------------------------------------------------------------------------------------- */

START_TEST(test_rng_reference)
{
    /* xoshiro256** seeded by splitmix64, values from an independent implementation. */
    static const struct { uint64_t seed; uint64_t out[4]; } rows[] = {
        { 0, { 0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull, 0x1a5f849d4933e6e0ull, 0x6aa594f1262d2d2cull } },
        { 42, { 0x15780b2e0c2ec716ull, 0x6104d9866d113a7eull, 0xae17533239e499a1ull, 0xecb8ad4703b360a1ull } },
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct ae_rng rng;
        ae_rng_seed(&rng, rows[r].seed);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(ae_rng_next(&rng) == rows[r].out[i], "seed %llu output %d",
                          (unsigned long long)rows[r].seed, i);
    }
    struct ae_rng rng;
    ae_rng_seed(&rng, 7);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = ae_rng_uniform(&rng);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
    }
    ck_assert_msg(fabs(sum / 100000 - 0.5) < 0.005, "uniform mean %f", sum / 100000);
}
END_TEST

/* ---- Parameters ----------------------------------------------------------------------------------- */

START_TEST(test_defaults)
{
    struct ae_sampler_params p;
    memset(&p, 0x55, sizeof p);
    ae_sampler_params_init(&p);
    ck_assert(p.seed == AE_SAMPLER_SEED_RANDOM);
    ck_assert_float_eq(p.temp, 0.8f);
    ck_assert_int_eq(p.top_k, 40);
    ck_assert_float_eq(p.top_p, 0.95f);
    ck_assert_float_eq(p.min_p, 0.05f);
    ck_assert_int_eq(p.min_keep, 0);
    ck_assert_int_eq(p.repeat_last_n, 64);
    ck_assert_float_eq(p.repeat_penalty, 1.0f);
    ck_assert_float_eq(p.freq_penalty, 0.0f);
    ck_assert_float_eq(p.presence_penalty, 0.0f);
    ck_assert_ptr_null(p.logit_bias);
    ck_assert_int_eq(p.n_logit_bias, 0);

    /* A random seed is resolved at creation, and two of them differ. */
    ae_sampler *a = make_sampler(&p, 10), *b = make_sampler(&p, 10);
    ck_assert(ae_sampler_seed(a) != AE_SAMPLER_SEED_RANDOM);
    ck_assert(ae_sampler_seed(a) != ae_sampler_seed(b));
    ae_sampler_destroy(a);
    ae_sampler_destroy(b);
}
END_TEST

START_TEST(test_bad_params)
{
    static const struct ae_logit_bias bad_token[] = { { 10, 1.0f } };
    static const struct ae_logit_bias bad_bias[] = { { 3, NAN } };
    struct {
        const char *what;
        int32_t n_vocab;
        struct ae_sampler_params p;
        const char *expect; /* in the message */
    } rows[5];
    for (int i = 0; i < 5; i++) {
        rows[i].p = plain_params(1);
        rows[i].n_vocab = 10;
    }
    rows[0].what = "empty vocabulary";
    rows[0].n_vocab = 0;
    rows[0].expect = "vocabulary size";
    rows[1].what = "NaN temperature";
    rows[1].p.temp = NAN;
    rows[1].expect = "NaN";
    rows[2].what = "negative window";
    rows[2].p.repeat_last_n = -1;
    rows[2].expect = "repeat_last_n";
    rows[3].what = "bias outside the vocabulary";
    rows[3].p.logit_bias = bad_token;
    rows[3].p.n_logit_bias = 1;
    rows[3].expect = "token 10";
    rows[4].what = "NaN bias";
    rows[4].p.logit_bias = bad_bias;
    rows[4].p.n_logit_bias = 1;
    rows[4].expect = "token 3";
    for (int i = 0; i < 5; i++) {
        ae_error err = { { 0 } };
        ae_sampler *s = ae_sampler_create(&rows[i].p, rows[i].n_vocab, &err);
        ck_assert_msg(s == NULL, "%s: accepted", rows[i].what);
        ck_assert_msg(strstr(err.msg, rows[i].expect) != NULL, "%s: message '%s' lacks '%s'", rows[i].what,
                      err.msg, rows[i].expect);
    }

    struct ae_sampler_params p = plain_params(1);
    ae_sampler *s = make_sampler(&p, 10);
    ae_error err = { { 0 } };
    ck_assert_int_eq(ae_sampler_accept(s, 10, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "token 10"));
    ck_assert_int_eq(ae_sampler_accept(s, -1, &err), -1);
    ae_sampler_destroy(s);
}
END_TEST

/* ---- Greedy --------------------------------------------------------------------------------------- */

START_TEST(test_greedy)
{
    struct ae_sampler_params p = plain_params(3);
    p.temp = 0.0f;
    static const struct { float l[6]; int32_t expect; } rows[] = {
        { { 0.1f, 0.5f, 0.3f, -1.0f, 0.2f, 0.0f }, 1 },
        { { 2.0f, 1.0f, 2.0f, 0.0f, 2.0f, 0.0f }, 0 },          /* tie: lowest id */
        { { -5.0f, -3.0f, -4.0f, -3.0f, -9.0f, -8.0f }, 1 },    /* tie among negatives */
        { { NAN, 1.0f, NAN, 3.0f, 2.0f, 0.0f }, 3 },            /* NaN never wins */
        { { -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 0.0f }, 5 },
    };
    ae_sampler *s = make_sampler(&p, 6);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(sample_ok(s, rows[r].l), rows[r].expect);
    ae_sampler_destroy(s);

    /* Negative temperature is greedy too. */
    p.temp = -1.0f;
    s = make_sampler(&p, 6);
    ck_assert_int_eq(sample_ok(s, rows[0].l), 1);
    ae_sampler_destroy(s);
}
END_TEST

START_TEST(test_top_k_one_is_greedy)
{
    enum { N = 1000 };
    static float logits[N];
    struct ae_rng rng;
    ae_rng_seed(&rng, 11);
    struct ae_sampler_params pk;
    ae_sampler_params_init(&pk);
    pk.seed = 5;
    pk.top_k = 1;
    pk.temp = 1.5f;
    struct ae_sampler_params pg = pk;
    pg.temp = 0.0f;
    ae_sampler *k1 = make_sampler(&pk, N), *g = make_sampler(&pg, N);
    for (int step = 0; step < 200; step++) {
        for (int i = 0; i < N; i++)
            logits[i] = (float)(ae_rng_uniform(&rng) * 8.0 - 4.0);
        if (step % 10 == 0)
            logits[step] = logits[step + 1] = 9.0f; /* a tie at the top */
        ck_assert_int_eq(sample_ok(k1, logits), sample_ok(g, logits));
    }
    ae_sampler_destroy(k1);
    ae_sampler_destroy(g);
}
END_TEST

/* ---- The draw ------------------------------------------------------------------------------------- */

START_TEST(test_draw_matches_softmax)
{
    static const float logits[8] = { 1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f, -0.5f, 0.25f };
    double p[8];
    long counts[8];
    softmax(logits, 8, 1.0, p);
    struct ae_sampler_params par = plain_params(1234);
    ae_sampler *s = make_sampler(&par, 8);
    draw_counts(s, logits, 8, counts);
    assert_fits(counts, p, 8, "plain draw");
    ae_sampler_destroy(s);

    /* A biased draw is caught: the same counts against a flat distribution fail. */
    double flat[8];
    for (int i = 0; i < 8; i++)
        flat[i] = 1.0 / 8;
    int dof;
    ck_assert(chi_square(counts, flat, 8, &dof) > 10 * chi_crit(dof));
}
END_TEST

START_TEST(test_top_k)
{
    static const float logits[8] = { 1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f, -0.5f, 0.25f };
    struct ae_sampler_params par = plain_params(99);
    par.top_k = 3; /* keeps tokens 2, 5, 0 */
    float kept[8];
    for (int i = 0; i < 8; i++)
        kept[i] = (i == 2 || i == 5 || i == 0) ? logits[i] : -INFINITY;
    double p[8];
    long counts[8];
    softmax(kept, 8, 1.0, p);
    ae_sampler *s = make_sampler(&par, 8);
    draw_counts(s, logits, 8, counts);
    assert_fits(counts, p, 8, "top-k 3");
    ae_sampler_destroy(s);
}
END_TEST

START_TEST(test_top_p)
{
    /* Probabilities 0.5, 0.2, 0.15, 0.1, 0.05 (shuffled ids): the smallest set with mass >= p. */
    static const double probs[5] = { 0.1, 0.5, 0.05, 0.2, 0.15 };
    static const struct { float top_p; int keep; } rows[] = {
        { 0.3f, 1 }, { 0.49f, 1 }, { 0.6f, 2 }, { 0.69f, 2 }, { 0.8f, 3 }, { 0.9f, 4 }, { 0.99f, 5 }, { 1.0f, 5 },
    };
    static const int order[5] = { 1, 3, 4, 0, 2 }; /* ids by falling probability */
    float logits[5];
    logits_from_probs(probs, 5, logits);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct ae_sampler_params par = plain_params(100 + r);
        par.top_p = rows[r].top_p;
        double p[5] = { 0 }, mass = 0;
        for (int k = 0; k < rows[r].keep; k++)
            mass += probs[order[k]];
        for (int k = 0; k < rows[r].keep; k++)
            p[order[k]] = probs[order[k]] / mass;
        long counts[5];
        ae_sampler *s = make_sampler(&par, 5);
        draw_counts(s, logits, 5, counts);
        for (int k = 0; k < rows[r].keep; k++)
            ck_assert_msg(counts[order[k]] > 0, "top_p %g: token %d kept but never drawn", (double)rows[r].top_p,
                          order[k]);
        assert_fits(counts, p, 5, "top-p");
        ae_sampler_destroy(s);
    }

    /* min_keep overrides a small p. */
    struct ae_sampler_params par = plain_params(7);
    par.top_p = 0.1f;
    par.min_keep = 3;
    double p[5] = { 0 };
    for (int k = 0; k < 3; k++)
        p[order[k]] = probs[order[k]] / 0.85;
    long counts[5];
    ae_sampler *s = make_sampler(&par, 5);
    draw_counts(s, logits, 5, counts);
    assert_fits(counts, p, 5, "top-p with min_keep 3");
    ae_sampler_destroy(s);
}
END_TEST

START_TEST(test_min_p)
{
    /* p_max = 0.4: min_p 0.12 keeps p >= 0.048, i.e. 0.4, 0.3, 0.2, 0.06 but not 0.04. */
    static const double probs[5] = { 0.06, 0.4, 0.04, 0.3, 0.2 };
    static const struct { float min_p; double cut; } rows[] = {
        { 0.12f, 0.048 }, { 0.6f, 0.24 }, { 0.9f, 0.36 }, { 0.01f, 0.004 },
    };
    float logits[5];
    logits_from_probs(probs, 5, logits);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct ae_sampler_params par = plain_params(200 + r);
        par.min_p = rows[r].min_p;
        double p[5], mass = 0;
        for (int i = 0; i < 5; i++)
            mass += probs[i] >= rows[r].cut ? probs[i] : 0;
        for (int i = 0; i < 5; i++)
            p[i] = probs[i] >= rows[r].cut ? probs[i] / mass : 0;
        long counts[5];
        ae_sampler *s = make_sampler(&par, 5);
        draw_counts(s, logits, 5, counts);
        assert_fits(counts, p, 5, "min-p");
        ae_sampler_destroy(s);
    }
}
END_TEST

/* Entropy in nats of the empirical distribution. */
static double entropy(const long *counts, int n)
{
    long total = 0;
    for (int i = 0; i < n; i++)
        total += counts[i];
    double h = 0;
    for (int i = 0; i < n; i++)
        if (counts[i] > 0) {
            double q = (double)counts[i] / (double)total;
            h -= q * log(q);
        }
    return h;
}

START_TEST(test_temperature)
{
    static const float logits[8] = { 1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f, -0.5f, 0.25f };
    static const float temps[] = { 0.25f, 0.5f, 1.0f, 2.0f, 4.0f };
    double last_h = 0;
    for (size_t r = 0; r < sizeof temps / sizeof temps[0]; r++) {
        struct ae_sampler_params par = plain_params(300 + r);
        par.temp = temps[r];
        double p[8], h_exact = 0;
        long counts[8];
        softmax(logits, 8, temps[r], p);
        for (int i = 0; i < 8; i++)
            h_exact -= p[i] > 0 ? p[i] * log(p[i]) : 0;
        ae_sampler *s = make_sampler(&par, 8);
        draw_counts(s, logits, 8, counts);
        assert_fits(counts, p, 8, "temperature");
        double h = entropy(counts, 8);
        ck_assert_msg(fabs(h - h_exact) < 0.03, "temp %g: entropy %f, expected %f", (double)temps[r], h, h_exact);
        ck_assert_msg(r == 0 || h > last_h + 0.05, "temp %g: entropy %f does not exceed %f at the lower temp",
                      (double)temps[r], h, last_h);
        last_h = h;
        ae_sampler_destroy(s);
    }
}
END_TEST

/* The default chain (top-k 40, top-p 0.95, min-p 0.05, temp 0.8) over a larger vocabulary, against
 * the same chain computed here in doubles. */
START_TEST(test_default_chain)
{
    enum { N = 200 };
    float logits[N];
    struct ae_rng rng;
    ae_rng_seed(&rng, 77);
    for (int i = 0; i < N; i++)
        logits[i] = (float)(ae_rng_uniform(&rng) * 6.0);
    /* Expected: the 40 largest, then top-p over their softmax, then min-p, then softmax at 0.8. */
    int ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = i;
    for (int i = 0; i < N; i++) /* selection sort by falling logit, ids break ties */
        for (int j = i + 1; j < N; j++)
            if (logits[ids[j]] > logits[ids[i]] || (logits[ids[j]] == logits[ids[i]] && ids[j] < ids[i])) {
                int t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
            }
    int keep = 40;
    double sum = 0, cum = 0;
    for (int k = 0; k < keep; k++)
        sum += exp((double)logits[ids[k]] - logits[ids[0]]);
    for (int k = 0; k < keep; k++) {
        cum += exp((double)logits[ids[k]] - logits[ids[0]]);
        if (cum >= (double)0.95f * sum) {
            keep = k + 1;
            break;
        }
    }
    int kept_min_p = 1;
    while (kept_min_p < keep && logits[ids[kept_min_p]] >= logits[ids[0]] + logf(0.05f))
        kept_min_p++;
    keep = kept_min_p;
    ck_assert_int_gt(keep, 3); /* the filters leave a real choice */
    float kept[N];
    for (int i = 0; i < N; i++)
        kept[i] = -INFINITY;
    for (int k = 0; k < keep; k++)
        kept[ids[k]] = logits[ids[k]];
    double p[N];
    softmax(kept, N, 0.8, p);

    struct ae_sampler_params par;
    ae_sampler_params_init(&par);
    par.seed = 2024;
    ae_sampler *s = make_sampler(&par, N);
    long counts[N];
    draw_counts(s, logits, N, counts);
    /* Pool the kept tokens into at most 10 cells by falling probability to keep expected counts large. */
    long pooled_c[10] = { 0 };
    double pooled_p[10] = { 0 };
    for (int k = 0; k < keep; k++) {
        int cell = k * 10 / keep;
        pooled_c[cell] += counts[ids[k]];
        pooled_p[cell] += p[ids[k]];
    }
    long outside = 0;
    for (int k = keep; k < N; k++)
        outside += counts[ids[k]];
    ck_assert_msg(outside == 0, "%ld draws outside the %d tokens the filters keep", outside, keep);
    assert_fits(pooled_c, pooled_p, keep < 10 ? keep : 10, "default chain");
    ae_sampler_destroy(s);
}
END_TEST

/* ---- Bias and penalties --------------------------------------------------------------------------- */

START_TEST(test_logit_bias)
{
    static const float logits[6] = { 3.0f, 1.0f, 2.5f, 0.0f, -1.0f, 2.9f };
    static const struct ae_logit_bias bias[] = { { 0, -INFINITY }, { 3, 2.0f }, { 3, 0.5f }, { 5, -INFINITY } };
    struct ae_sampler_params par = plain_params(8);
    par.temp = 2.0f;
    par.logit_bias = bias;
    par.n_logit_bias = 4;
    ae_sampler *s = make_sampler(&par, 6);

    float adj[6];
    ae_sampler_adjust(s, logits, adj);
    static const float expect[6] = { -INFINITY, 1.0f, 2.5f, 2.5f, -1.0f, -INFINITY };
    for (int i = 0; i < 6; i++)
        ck_assert_msg(adj[i] == expect[i], "token %d: %g, expected %g", i, (double)adj[i], (double)expect[i]);

    long counts[6];
    draw_counts(s, logits, 6, counts);
    ck_assert_int_eq(counts[0], 0);
    ck_assert_int_eq(counts[5], 0);
    double p[6];
    softmax(expect, 6, 2.0, p);
    assert_fits(counts, p, 6, "logit bias");
    ae_sampler_destroy(s);

    /* Greedy skips banned tokens; banning everything is an error, not a token. */
    par.temp = 0.0f;
    s = make_sampler(&par, 6);
    ck_assert_int_eq(sample_ok(s, logits), 2);
    static const float dead[6] = { -INFINITY, NAN, -INFINITY, -INFINITY, -INFINITY, 1.0f };
    ae_error err = { { 0 } };
    ck_assert_int_eq(ae_sampler_sample(s, dead, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "-inf"));
    ae_sampler_destroy(s);
    par.temp = 1.0f;
    s = make_sampler(&par, 6);
    ck_assert_int_eq(ae_sampler_sample(s, dead, &err), -1);
    ae_sampler_destroy(s);
}
END_TEST

START_TEST(test_penalties)
{
    enum { N = 12 };
    float logits[N], adj[N];
    for (int i = 0; i < N; i++)
        logits[i] = (float)(i % 4) - 1.0f; /* -1, 0, 1, 2, -1, ... */
    struct ae_sampler_params par = plain_params(9);
    par.repeat_last_n = 3;
    par.repeat_penalty = 2.0f;
    par.freq_penalty = 0.5f;
    par.presence_penalty = 0.25f;
    ae_sampler *s = make_sampler(&par, N);
    ae_error err = { { 0 } };

    /* Rows: token accepted, then the expected logit of every token in the window (count c):
     * l > 0: l / 2 - 0.5 c - 0.25;  l <= 0: l * 2 - 0.5 c - 0.25; every other token unchanged. */
    static const struct { int32_t accept; int32_t window[3]; int32_t count[3]; } rows[] = {
        { 3, { 3, -1, -1 }, { 1, 0, 0 } },
        { 4, { 3, 4, -1 }, { 1, 1, 0 } },
        { 3, { 3, 4, -1 }, { 2, 1, 0 } },     /* window 3 4 3 */
        { 5, { 4, 3, 5 }, { 1, 1, 1 } },      /* the first 3 falls out: window 4 3 5 */
        { 9, { 3, 5, 9 }, { 1, 1, 1 } },      /* window 3 5 9 */
        { 9, { 5, 9, -1 }, { 1, 2, 0 } },     /* window 5 9 9 */
        { 9, { 9, -1, -1 }, { 3, 0, 0 } },    /* window 9 9 9 */
    };
    ae_sampler_adjust(s, logits, adj);
    ck_assert_mem_eq(adj, logits, sizeof logits); /* empty window */
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        ck_assert_int_eq(ae_sampler_accept(s, rows[r].accept, &err), 0);
        ae_sampler_adjust(s, logits, adj);
        for (int t = 0; t < N; t++) {
            float expect = logits[t];
            for (int w = 0; w < 3; w++) {
                if (rows[r].window[w] != t)
                    continue;
                float l = logits[t];
                expect = (l <= 0 ? l * 2.0f : l / 2.0f) - (0.5f * (float)rows[r].count[w] + 0.25f);
            }
            ck_assert_msg(adj[t] == expect, "after accepting row %zu: token %d is %g, expected %g", r, t,
                          (double)adj[t], (double)expect);
        }
    }

    /* Reset empties the window. */
    ae_sampler_reset(s);
    ae_sampler_adjust(s, logits, adj);
    ck_assert_mem_eq(adj, logits, sizeof logits);
    ae_sampler_destroy(s);

    /* A repeat penalty alone, and the penalty steering greedy away from a repeat. */
    par = plain_params(9);
    par.temp = 0.0f;
    par.repeat_penalty = 1.5f;
    s = make_sampler(&par, N);
    float two[N];
    for (int i = 0; i < N; i++)
        two[i] = 0.0f;
    two[6] = 3.0f;
    two[7] = 2.5f;
    ck_assert_int_eq(sample_ok(s, two), 6);
    ck_assert_int_eq(ae_sampler_accept(s, 6, &err), 0);
    ck_assert_int_eq(sample_ok(s, two), 7); /* 3 / 1.5 = 2 < 2.5 */
    ae_sampler_destroy(s);

    /* Window 0 disables the penalties. */
    par.repeat_last_n = 0;
    s = make_sampler(&par, N);
    ck_assert_int_eq(ae_sampler_accept(s, 6, &err), 0);
    ck_assert_int_eq(sample_ok(s, two), 6);
    ae_sampler_destroy(s);
}
END_TEST

/* ---- Seeds ---------------------------------------------------------------------------------------- */

static void run_sequence(ae_sampler *s, const float *logits, int n, int32_t *out)
{
    for (int i = 0; i < n; i++)
        out[i] = sample_ok(s, logits);
}

START_TEST(test_seeds)
{
    enum { N = 500, STEPS = 200 };
    float logits[N];
    struct ae_rng rng;
    ae_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++)
        logits[i] = (float)(ae_rng_uniform(&rng) * 4.0);
    struct ae_sampler_params par;
    ae_sampler_params_init(&par);
    par.top_k = 0;
    par.min_p = 0.0f;
    int32_t a[STEPS], b[STEPS], c[STEPS], d[STEPS];

    par.seed = 1;
    ae_sampler *s1 = make_sampler(&par, N);
    ae_sampler *s1b = make_sampler(&par, N);
    par.seed = 2;
    ae_sampler *s2 = make_sampler(&par, N);
    run_sequence(s1, logits, STEPS, a);
    run_sequence(s1b, logits, STEPS, b);
    run_sequence(s2, logits, STEPS, c);
    ck_assert_mem_eq(a, b, sizeof a);
    int same = 0;
    for (int i = 0; i < STEPS; i++)
        same += a[i] == c[i];
    ck_assert_msg(same < STEPS / 4, "seeds 1 and 2 agree on %d of %d draws", same, STEPS);

    /* Reset replays the sequence. */
    ae_sampler_reset(s1);
    run_sequence(s1, logits, STEPS, d);
    ck_assert_mem_eq(a, d, sizeof a);

    /* A pinned sequence: the same tokens on every platform. */
    static const int32_t pinned[8] = { 255, 379, 261, 233, 120, 109, 268, 361 };
    ck_assert_msg(memcmp(a, pinned, sizeof pinned) == 0,
                  "seed 1 gives %d %d %d %d %d %d %d %d", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
    ae_sampler_destroy(s1);
    ae_sampler_destroy(s1b);
    ae_sampler_destroy(s2);
}
END_TEST

/* The whole chain against an independent implementation of it (sort all candidates by falling logit
 * and rising id, cut, draw with the same PRNG), over vocabularies large enough to take the partial
 * sorts' every path: top-k by heap and by quickselect, top-p growing its sorted run. */
START_TEST(test_reference_sequences)
{
    static const struct {
        int32_t n_vocab;
        uint64_t logit_seed;
        double scale;       /* logits uniform in [0, scale) */
        int32_t top_k;
        float top_p, min_p, temp;
        uint64_t seed;
        int32_t expect[8];
    } rows[] = {
        { 500, 5, 4.0, 0, 0.95f, 0.0f, 0.8f, 1, { 255, 379, 261, 233, 120, 109, 268, 361 } },
        { 5000, 6, 4.0, 0, 0.95f, 0.0f, 0.8f, 3, { 4432, 347, 3866, 1677, 302, 1358, 4610, 2376 } },
        { 5000, 6, 4.0, 1000, 1.0f, 0.05f, 0.8f, 4, { 4079, 2819, 2994, 785, 4024, 3547, 4813, 2749 } },
        { 5000, 6, 8.0, 3000, 0.9f, 0.0f, 1.3f, 5, { 2900, 4032, 2799, 1802, 3814, 1516, 1576, 728 } },
    };
    static float logits[5000];
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct ae_rng rng;
        ae_rng_seed(&rng, rows[r].logit_seed);
        for (int32_t i = 0; i < rows[r].n_vocab; i++)
            logits[i] = (float)(ae_rng_uniform(&rng) * rows[r].scale);
        struct ae_sampler_params par;
        ae_sampler_params_init(&par);
        par.seed = rows[r].seed;
        par.top_k = rows[r].top_k;
        par.top_p = rows[r].top_p;
        par.min_p = rows[r].min_p;
        par.temp = rows[r].temp;
        ae_sampler *s = make_sampler(&par, rows[r].n_vocab);
        for (int i = 0; i < 8; i++) {
            int32_t t = sample_ok(s, logits);
            ck_assert_msg(t == rows[r].expect[i], "row %zu draw %d: token %d, expected %d", r, i, t,
                          rows[r].expect[i]);
        }
        ae_sampler_destroy(s);
    }
}
END_TEST

/* ---- Suite ---------------------------------------------------------------------------------------- */

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rng_reference);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_top_k_one_is_greedy);
    tcase_add_test(tc, test_draw_matches_softmax);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_min_p);
    tcase_add_test(tc, test_temperature);
    tcase_add_test(tc, test_default_chain);
    tcase_add_test(tc, test_logit_bias);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_seeds);
    tcase_add_test(tc, test_reference_sequences);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(sampler_suite());
}
