/* Token sampling: the chain that turns one step's logits into the next token.
 *
 * The order is llama.cpp's common sampler chain: logit bias; repetition, frequency and presence
 * penalties over the last repeat_last_n accepted tokens; then greedy (argmax) when temp <= 0, or
 * else top-k, top-p, min-p, temperature and a seeded draw from the softmax of what is left.
 *
 * The draw uses the sampler's own PRNG (xoshiro256** seeded through splitmix64), so one seed gives
 * the same tokens on every platform and with every C library. A sampler allocates all its memory at
 * creation (scratch sized by the vocabulary) and never in ae_sampler_sample or ae_sampler_accept.
 */
#ifndef AE_SAMPLER_H
#define AE_SAMPLER_H

#include <stdint.h>

#include "ae_error.h"

/* A seed that asks for one picked at creation from the system's entropy (llama.cpp's default). */
#define AE_SAMPLER_SEED_RANDOM UINT64_MAX

/* A bias added to one token's logit before anything else; -INFINITY bans the token. */
struct ae_logit_bias {
    int32_t token;
    float bias;
};

struct ae_sampler_params {
    uint64_t seed;            /* AE_SAMPLER_SEED_RANDOM: pick one (see ae_sampler_seed) */
    float temp;               /* 0.8; <= 0 selects greedy */
    int32_t top_k;            /* 40; <= 0 disables */
    float top_p;              /* 0.95; >= 1 disables */
    float min_p;              /* 0.05; <= 0 disables */
    int32_t min_keep;         /* 0: top-p and min-p keep at least this many tokens (and always one) */
    int32_t repeat_last_n;    /* 64: window of accepted tokens the penalties look at; 0 disables */
    float repeat_penalty;     /* 1.0 (off): positive logits are divided by it, negative multiplied */
    float freq_penalty;       /* 0.0: subtracted once per occurrence in the window */
    float presence_penalty;   /* 0.0: subtracted once when the token occurs in the window */
    const struct ae_logit_bias *logit_bias; /* n_logit_bias entries, copied at creation */
    int32_t n_logit_bias;
};

typedef struct ae_sampler ae_sampler;

/* Fills p with llama.cpp's defaults: seed random, temp 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * min_keep 0, repeat_last_n 64, repeat_penalty 1.0, freq and presence 0, no logit bias. */
void ae_sampler_params_init(struct ae_sampler_params *p);

/* Creates a sampler for a vocabulary of n_vocab tokens. Returns NULL with err set when n_vocab is
 * not positive, a parameter is NaN or out of range, or a logit bias names a token outside the
 * vocabulary. */
ae_sampler *ae_sampler_create(const struct ae_sampler_params *p, int32_t n_vocab, ae_error *err);

void ae_sampler_destroy(ae_sampler *s);

/* Picks the next token from n_vocab logits (not modified). Does not accept it: call
 * ae_sampler_accept for every token fed to the model, prompt tokens included, so that the
 * penalties see it. NaN logits count as -inf. Greedy ties go to the lowest token id. Returns -1
 * with err set when every logit is -inf or NaN after bias and penalties. */
int32_t ae_sampler_sample(ae_sampler *s, const float *logits, ae_error *err);

/* The logits the filters see: n_vocab logits with bias and penalties applied, NaN as -inf and +inf as
 * FLT_MAX, written to out (which may be logits). For showing probabilities, and for tests. */
void ae_sampler_adjust(const ae_sampler *s, const float *logits, float *out);

/* Adds a token to the penalty window (the oldest falls out after repeat_last_n). Returns -1 with
 * err set when the token is outside the vocabulary. */
int ae_sampler_accept(ae_sampler *s, int32_t token, ae_error *err);

/* Empties the penalty window and restarts the PRNG from the seed, so the next draws repeat the
 * first ones. */
void ae_sampler_reset(ae_sampler *s);

/* The seed in use: the one given, or the one picked for AE_SAMPLER_SEED_RANDOM (print it so that a
 * run can be repeated). */
uint64_t ae_sampler_seed(const ae_sampler *s);

/* ---- The PRNG, public for tests and for other seeded choices -------------------------------------- */

/* xoshiro256** state; seed it with ae_rng_seed, never all zero. */
struct ae_rng {
    uint64_t s[4];
};

/* Expands a 64-bit seed into a full state through splitmix64. */
void ae_rng_seed(struct ae_rng *r, uint64_t seed);

/* The next 64 random bits. */
uint64_t ae_rng_next(struct ae_rng *r);

/* A uniform double in [0, 1) with 53 random bits. */
double ae_rng_uniform(struct ae_rng *r);

#endif
