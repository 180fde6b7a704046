/* The non-linear and ternary weight types (IQ4_NL, IQ4_XS, TQ1_0, TQ2_0) for the matmul's kernel sets.
 * Internal to the runtime library.
 *
 * They follow the canonical order of docs/kernels.md: IQ4_NL (with Q8_0 activations) is a 32-value
 * block type whose quants are table values; IQ4_XS, TQ1_0 and TQ2_0 (with Q8_K activations) are
 * super-block types with an exact integer sum per super-block, IQ4_XS with scales and no mins, the
 * ternary types with scale 1. The scalar reference (matmul.c) reads the values through the unpackers
 * below, exactly as ggml's reference dequantizers read them; the AVX2 row dots give its bytes.
 */
#ifndef AE_MATMUL_IQ_H
#define AE_MATMUL_IQ_H

#include <stdint.h>

/* The 32 table values of an IQ4_NL block and its scale. */
void ae_iq4_nl_unpack(const void *block, int8_t q[32], float *d);

/* The 256 table values of an IQ4_XS block, the 8 scales of its groups of 32 (ls - 32), its scale. */
void ae_iq4_xs_unpack(const void *block, int8_t q[256], int sc[8], float *d);

/* The 256 ternary digits of a TQ1_0 block, each 0, 1 or 2, in element order. */
void ae_tq1_0_unpack(const void *block, uint8_t t[256]);

/* The same for TQ2_0. */
void ae_tq2_0_unpack(const void *block, uint8_t t[256]);

/* Row dots in the canonical order with AVX2; only on x86-64 and only to be called when the CPU has
 * AVX2. x is the activation row (struct ae_block_q8a blocks for IQ4_NL, struct ae_block_q8_k otherwise). */
void ae_dot_iq4_nl_avx2(int64_t k, const void *w, const void *x, float *out);
void ae_dot_iq4_xs_avx2(int64_t k, const void *w, const void *x, float *out);
void ae_dot_tq1_0_avx2(int64_t k, const void *w, const void *x, float *out);
void ae_dot_tq2_0_avx2(int64_t k, const void *w, const void *x, float *out);

#endif
