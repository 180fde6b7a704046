/* Random-weight tensor data for 'aetherc synth': valid ggml blocks of any supported type, written
 * directly without a quantizer, whose dequantized values have a chosen mean and standard deviation.
 *
 * Each quant is drawn from a discretized normal distribution over the type's levels, symmetric about
 * the level that dequantizes to zero, and each block's scale fields (fp16 d and dmin, the 4-, 6- or
 * 8-bit sub-scales and mins of the K-quants) are random within fixed ranges and normalized so that the
 * values' standard deviation is the one asked for. Float types get normal values directly.
 *
 * Every row has its own generator, seeded from the tensor's seed and the row index, so a tensor's bytes
 * depend only on (model seed, tensor name, type, shape, distribution): not on the order in which
 * tensors are written, nor on how many threads generate them.
 */
#ifndef AE_SYNTH_H
#define AE_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

/* xoshiro256** state. */
struct synth_rng {
    uint64_t s[4];
};

/* Seeds the state from one 64-bit value (expanded with splitmix64, never all zero). */
void synth_rng_seed(struct synth_rng *r, uint64_t seed);
uint64_t synth_rng_next(struct synth_rng *r);

/* A tensor's seed: splitmix64 mixing of the model seed and the FNV-1a hash of the tensor's name. */
uint64_t synth_tensor_seed(uint64_t seed, const char *name);

/* Whether synth writes this ggml type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k. */
bool synth_type_supported(uint32_t type);

/* The supported type names separated by spaces, for messages. */
const char *synth_type_list(void);

/* Normal quantile tables and per-type quant tables: built once, then read-only (shared by threads). */
struct synth_tables;

/* NULL when out of memory. */
struct synth_tables *synth_tables_create(void);
void synth_tables_destroy(struct synth_tables *t);

/* The values of one tensor: N(mean, std). Quantized types take mean 0 only. */
struct synth_dist {
    float mean;
    float std;
};

/* Writes a whole tensor of n_rows rows of ne0 values (ne0 a multiple of the type's block size, type
 * supported: both asserted) into dst, using up to n_threads threads. The bytes do not depend on
 * n_threads. */
void synth_fill_tensor(const struct synth_tables *t, uint32_t type, struct synth_dist dist, uint64_t tensor_seed,
                       int64_t ne0, int64_t n_rows, void *dst, int n_threads);

#endif
