/* The sampler chain (see ae_sampler.h): bias, penalties, then greedy or top-k/top-p/min-p/temp/draw.
 *
 * The semantics are llama.cpp's (src/llama-sampling.cpp and common/sampling.cpp), restated here:
 *   bias       l[t] += bias[t]
 *   penalties  for each token t seen c > 0 times in the window:
 *                l[t] = l[t] <= 0 ? l[t] * repeat : l[t] / repeat;  l[t] -= c * freq + presence
 *   greedy     argmax l (lowest id on ties)
 *   top-k      keep the k largest logits
 *   top-p      keep the shortest prefix (by falling logit) whose softmax mass reaches p
 *   min-p      keep the tokens with p_t >= min_p * p_max, i.e. l_t >= l_max + log(min_p)
 *   temp       l /= temp
 *   draw       t with probability softmax(l)[t], from one uniform number in [0, 1)
 * Candidates are ordered by falling logit and then rising id, a total order, so a seed gives the
 * same token whatever sort the C library has. Tokens at -inf are dropped before the draw, so a
 * token banned by its bias is never sampled.
 */
#include "ae_sampler.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct sampler_cand {
    int32_t id;
    float logit;
};

struct ae_sampler {
    struct ae_sampler_params p;   /* p.logit_bias points at bias below */
    int32_t n_vocab;
    uint64_t seed;                /* resolved: never AE_SAMPLER_SEED_RANDOM */
    struct ae_rng rng;
    float *logits;                /* (n_vocab) working copy of one step's logits */
    struct sampler_cand *cand;    /* (n_vocab) candidates left by the filters */
    double *prob;                 /* (n_vocab) unnormalized probabilities of cand */
    int32_t *count;               /* (n_vocab) occurrences of each token in the window */
    int32_t *window;              /* (repeat_last_n) ring of accepted tokens */
    int32_t win_len;              /* tokens in the ring */
    int32_t win_head;             /* slot of the oldest token */
    struct ae_logit_bias *bias;   /* (n_logit_bias) copy of the caller's biases */
};

/* ---- PRNG: splitmix64 to seed, xoshiro256** to draw ---------------------------------------------- */

static uint64_t rng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void ae_rng_seed(struct ae_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
}

uint64_t ae_rng_next(struct ae_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

double ae_rng_uniform(struct ae_rng *r)
{
    return (double)(ae_rng_next(r) >> 11) * 0x1.0p-53;
}

/* A seed from the system's entropy, or from the clock when that is unavailable. */
static uint64_t sampler_pick_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32;
        seed = rng_splitmix64(&x);
    }
    if (seed == AE_SAMPLER_SEED_RANDOM)
        seed = 0;
    return seed;
}

/* ---- Creation ------------------------------------------------------------------------------------- */

void ae_sampler_params_init(struct ae_sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->seed = AE_SAMPLER_SEED_RANDOM;
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->min_keep = 0;
    p->repeat_last_n = 64;
    p->repeat_penalty = 1.0f;
    p->freq_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
}

/* Checks the parameters that have no meaning outside a range; the rest follow llama.cpp (e.g.
 * top_p <= 0 keeps one token, min_p >= 1 keeps the tokens tied with the maximum). */
static int sampler_check_params(const struct ae_sampler_params *p, int32_t n_vocab, ae_error *err)
{
    if (n_vocab <= 0)
        return ae_fail(err, "sampler: vocabulary size must be positive, got %d", (int)n_vocab);
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p))
        return ae_fail(err, "sampler: temp %g, top_p %g, min_p %g: expected numbers, found NaN",
                       (double)p->temp, (double)p->top_p, (double)p->min_p);
    if (p->min_keep < 0)
        return ae_fail(err, "sampler: min_keep must be >= 0, got %d", (int)p->min_keep);
    if (p->repeat_last_n < 0)
        return ae_fail(err, "sampler: repeat_last_n must be >= 0 (0 disables the penalties), got %d",
                       (int)p->repeat_last_n);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f)
        return ae_fail(err, "sampler: repeat_penalty must be a finite number > 0 (1 disables it), got %g",
                       (double)p->repeat_penalty);
    if (!isfinite(p->freq_penalty) || !isfinite(p->presence_penalty))
        return ae_fail(err, "sampler: frequency penalty %g and presence penalty %g must be finite",
                       (double)p->freq_penalty, (double)p->presence_penalty);
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return ae_fail(err, "sampler: %d logit biases given without an array", (int)p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const struct ae_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return ae_fail(err, "sampler: logit bias %d names token %d, outside the vocabulary [0, %d)",
                           (int)i, (int)b->token, (int)n_vocab);
        if (isnan(b->bias) || b->bias == INFINITY)
            return ae_fail(err, "sampler: logit bias %d for token %d is %g: expected a finite number or -inf",
                           (int)i, (int)b->token, (double)b->bias);
    }
    return 0;
}

ae_sampler *ae_sampler_create(const struct ae_sampler_params *p, int32_t n_vocab, ae_error *err)
{
    if (sampler_check_params(p, n_vocab, err) != 0)
        return NULL;

    ae_sampler *s = calloc(1, sizeof *s);
    if (!s)
        goto fail_alloc;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->logits = malloc((size_t)n_vocab * sizeof *s->logits);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    s->window = malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof *s->window);
    s->bias = malloc((size_t)(p->n_logit_bias > 0 ? p->n_logit_bias : 1) * sizeof *s->bias);
    if (!s->logits || !s->cand || !s->prob || !s->count || !s->window || !s->bias)
        goto fail_arrays;
    if (p->n_logit_bias > 0)
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    s->p.logit_bias = s->bias;
    s->seed = p->seed == AE_SAMPLER_SEED_RANDOM ? sampler_pick_seed() : p->seed;
    ae_sampler_reset(s);
    return s;

fail_arrays:
    ae_sampler_destroy(s);
fail_alloc:
    ae_fail(err, "sampler: out of memory for a vocabulary of %d tokens", (int)n_vocab);
    return NULL;
}

void ae_sampler_destroy(ae_sampler *s)
{
    if (!s)
        return;
    free(s->logits);
    free(s->cand);
    free(s->prob);
    free(s->count);
    free(s->window);
    free(s->bias);
    free(s);
}

void ae_sampler_reset(ae_sampler *s)
{
    memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
    s->win_len = 0;
    s->win_head = 0;
    ae_rng_seed(&s->rng, s->seed);
}

uint64_t ae_sampler_seed(const ae_sampler *s)
{
    return s->seed;
}

int ae_sampler_accept(ae_sampler *s, int32_t token, ae_error *err)
{
    if (token < 0 || token >= s->n_vocab)
        return ae_fail(err, "sampler: accepted token %d is outside the vocabulary [0, %d)",
                       (int)token, (int)s->n_vocab);
    const int32_t cap = s->p.repeat_last_n;
    if (cap == 0)
        return 0;
    if (s->win_len == cap) {
        s->count[s->window[s->win_head]]--;
        s->window[s->win_head] = token;
        s->win_head = (s->win_head + 1) % cap;
    } else {
        s->window[(s->win_head + s->win_len) % cap] = token;
        s->win_len++;
    }
    s->count[token]++;
    return 0;
}

/* ---- The chain ------------------------------------------------------------------------------------ */

/* Whether a ranks before b: larger logit, then smaller id. */
static int cand_before(const struct sampler_cand *a, const struct sampler_cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_compare(const void *pa, const void *pb)
{
    const struct sampler_cand *a = pa, *b = pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

static void cand_swap(struct sampler_cand *a, struct sampler_cand *b)
{
    struct sampler_cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges n candidates so that the k best (0 < k <= n) come first, in no particular order:
 * quickselect with a median-of-three pivot, O(n) on average. */
static void cand_select(struct sampler_cand *c, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (cand_before(&c[mid], &c[lo]))
            cand_swap(&c[mid], &c[lo]);
        if (cand_before(&c[hi], &c[lo]))
            cand_swap(&c[hi], &c[lo]);
        if (cand_before(&c[hi], &c[mid]))
            cand_swap(&c[hi], &c[mid]);
        const struct sampler_cand pivot = c[mid];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot))
                i++;
            while (cand_before(&pivot, &c[j]))
                j--;
            if (i <= j)
                cand_swap(&c[i++], &c[j--]);
        }
        /* [lo, j] rank before the pivot or are it, [i, hi] after it or are it */
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

/* Restores the heap property below slot i of a heap of n whose root ranks last. */
static void cand_heap_sift(struct sampler_cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cand_before(&h[worst], &h[l]))
            worst = l;
        if (r < n && cand_before(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        cand_swap(&h[i], &h[worst]);
        i = worst;
    }
}

/* The same as cand_select for small k: a heap of the k best so far, whose root is the one a better
 * candidate replaces. One comparison for most of the n. */
static void cand_select_heap(struct sampler_cand *c, int32_t n, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        cand_heap_sift(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            cand_swap(&c[0], &c[i]);
            cand_heap_sift(c, k, 0);
        }
    }
}

/* Moves the k best of n candidates to the front, in order. */
static void cand_top_k(struct sampler_cand *c, int32_t n, int32_t k)
{
    if (k < n) {
        if (k <= 512)
            cand_select_heap(c, n, k);
        else
            cand_select(c, n, k);
    }
    qsort(c, (size_t)k, sizeof *c, cand_compare);
}

static float cand_max_logit(const struct sampler_cand *c, int32_t n)
{
    float max = c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > max)
            max = c[i].logit;
    return max;
}

/* Top-p over n candidates: the shortest run, by falling logit, whose share of the softmax mass of
 * all n reaches p (and holds at least min_keep), cut at limit when min-p will cut there anyway.
 * Only that run is sorted: the best 256, then the next best up to 2048, ... until the mass is
 * reached. Returns its length; the kept candidates are sorted. */
static int32_t sampler_top_p(struct sampler_cand *c, int32_t n, bool *sorted, float p, int32_t min_keep,
                             int32_t limit)
{
    const double max = cand_max_logit(c, n);
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)c[i].logit - max);
    const double target = (double)p * sum;
    int32_t done = 0; /* c[0, done) are the best, sorted, and their mass is in cum */
    int32_t m = *sorted || limit <= 256 ? limit : 256;
    double cum = 0.0;
    for (;;) {
        if (!*sorted)
            cand_top_k(c + done, n - done, m - done);
        for (int32_t i = done; i < m; i++) {
            cum += exp((double)c[i].logit - max);
            if (cum >= target && i + 1 >= min_keep) {
                *sorted = true;
                return i + 1;
            }
        }
        if (m == limit) {
            *sorted = true;
            return limit;
        }
        done = m;
        m = m > limit / 8 ? limit : m * 8;
    }
}

/* How many of n candidates min-p keeps (all n when it is off or they are sorted already). */
static int32_t sampler_min_p_count(const struct sampler_cand *c, int32_t n, bool sorted,
                                   const struct ae_sampler_params *p)
{
    if (sorted || p->min_p <= 0.0f)
        return n;
    const float min_logit = cand_max_logit(c, n) + logf(p->min_p);
    int32_t pass = 0;
    for (int32_t i = 0; i < n; i++)
        pass += c[i].logit >= min_logit;
    if (pass < p->min_keep)
        pass = p->min_keep;
    return pass < 1 ? 1 : pass > n ? n : pass;
}

/* Min-p: the candidates with l >= l_max + log(p), at least min_keep (by falling logit) and at least
 * one. Unsorted candidates are filtered in place when enough pass; otherwise they are sorted. */
static int32_t sampler_min_p(struct sampler_cand *c, int32_t n, bool sorted, float p, int32_t min_keep)
{
    if (!sorted) {
        const float min_logit = cand_max_logit(c, n) + logf(p);
        int32_t pass = 0;
        for (int32_t i = 0; i < n; i++)
            pass += c[i].logit >= min_logit;
        if (pass >= 1 && pass >= min_keep) {
            int32_t k = 0;
            for (int32_t i = 0; i < n; i++)
                if (c[i].logit >= min_logit)
                    c[k++] = c[i];
            return k;
        }
        qsort(c, (size_t)n, sizeof *c, cand_compare);
    }
    const float min_logit = c[0].logit + logf(p);
    int32_t i = 1;
    while (i < n && !(c[i].logit < min_logit && i >= min_keep))
        i++;
    return i;
}

/* Bias and penalties, in place on l (n_vocab); then NaN becomes -inf and +inf the largest float, so
 * that the softmax stays finite. */
static void sampler_adjust(const ae_sampler *s, float *l)
{
    const struct ae_sampler_params *p = &s->p;
    for (int32_t i = 0; i < p->n_logit_bias; i++)
        l[p->logit_bias[i].token] += p->logit_bias[i].bias;
    if (p->repeat_last_n > 0 && s->win_len > 0 &&
        (p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f)) {
        for (int32_t t = 0; t < s->n_vocab; t++) {
            const int32_t c = s->count[t];
            if (c == 0)
                continue;
            if (l[t] <= 0.0f)
                l[t] *= p->repeat_penalty;
            else
                l[t] /= p->repeat_penalty;
            l[t] -= (float)c * p->freq_penalty + p->presence_penalty;
        }
    }
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (isnan(l[i]))
            l[i] = -INFINITY;
        else if (l[i] == INFINITY)
            l[i] = FLT_MAX;
    }
}

void ae_sampler_adjust(const ae_sampler *s, const float *logits, float *out)
{
    if (out != logits)
        memmove(out, logits, (size_t)s->n_vocab * sizeof *out);
    sampler_adjust(s, out);
}

static int32_t sampler_greedy(const ae_sampler *s)
{
    int32_t best = -1;
    float best_l = -INFINITY;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (s->logits[i] > best_l) {
            best = i;
            best_l = s->logits[i];
        }
    }
    return best;
}

int32_t ae_sampler_sample(ae_sampler *s, const float *logits, ae_error *err)
{
    const struct ae_sampler_params *p = &s->p;
    memcpy(s->logits, logits, (size_t)s->n_vocab * sizeof *s->logits);
    sampler_adjust(s, s->logits);

    if (p->temp <= 0.0f) {
        int32_t t = sampler_greedy(s);
        if (t < 0)
            ae_fail(err, "sampler: all %d logits are -inf or NaN after bias and penalties", (int)s->n_vocab);
        return t;
    }

    struct sampler_cand *c = s->cand;
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (s->logits[i] > -INFINITY) {
            c[n].id = i;
            c[n].logit = s->logits[i];
            n++;
        }
    }
    if (n == 0) {
        ae_fail(err, "sampler: all %d logits are -inf or NaN after bias and penalties", (int)s->n_vocab);
        return -1;
    }

    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        cand_top_k(c, n, p->top_k);
        n = p->top_k;
        sorted = true;
    }
    if (p->top_p < 1.0f)
        n = sampler_top_p(c, n, &sorted, p->top_p, p->min_keep, sampler_min_p_count(c, n, sorted, p));
    if (p->min_p > 0.0f)
        n = sampler_min_p(c, n, sorted, p->min_p, p->min_keep);

    float max_l = c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > max_l)
            max_l = c[i].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        s->prob[i] = exp(((double)c[i].logit - (double)max_l) / (double)p->temp);
        sum += s->prob[i];
    }
    const double target = ae_rng_uniform(&s->rng) * sum;
    double cum = 0.0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (s->prob[i] <= 0.0)
            continue;
        cum += s->prob[i];
        last = i;
        if (cum > target)
            return c[i].id;
    }
    return c[last].id; /* rounding left target at the very top of the mass */
}
