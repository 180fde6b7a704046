/* The row dots of the non-linear and ternary weight types (IQ4_NL, IQ4_XS, TQ1_0, TQ2_0), for the
 * kernel sets of matmul.c and matmul_avx2.c. Internal to the runtime library.
 *
 * They follow the canonical order of matmul.c: IQ4_NL (with Q8_0 activations) is a 32-value block
 * type whose quants are table values; IQ4_XS, TQ1_0 and TQ2_0 (with Q8_K activations) are K-quant
 * style super-blocks with an exact integer sum per super-block, IQ4_XS with scales and no mins, the
 * ternary types with scale 1. Values are unpacked as ggml's reference dequantizers read them.
 */
#ifndef AE_MATMUL_IQ_H
#define AE_MATMUL_IQ_H

#include <stdint.h>

void ae_dot_iq4_nl_scalar(int64_t k, const void *w, const void *x, float *out);
void ae_dot_iq4_xs_scalar(int64_t k, const void *w, const void *x, float *out);
void ae_dot_tq1_0_scalar(int64_t k, const void *w, const void *x, float *out);
void ae_dot_tq2_0_scalar(int64_t k, const void *w, const void *x, float *out);

/* The same, bit for bit, with AVX2; only on x86-64 and only to be called when the CPU has AVX2. */
void ae_dot_iq4_nl_avx2(int64_t k, const void *w, const void *x, float *out);
void ae_dot_iq4_xs_avx2(int64_t k, const void *w, const void *x, float *out);
void ae_dot_tq1_0_avx2(int64_t k, const void *w, const void *x, float *out);
void ae_dot_tq2_0_avx2(int64_t k, const void *w, const void *x, float *out);

/* The 256 ternary digits of a TQ1_0 block, each 0, 1 or 2, in element order. */
void ae_tq1_0_unpack(const void *block, uint8_t t[256]);

#endif
