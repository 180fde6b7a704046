/* Software prefetch of the weights for the x86-64 x16 kernels (matmul_avx2.c, matmul_avx512.c).
 *
 * A decode step reads every weight byte once, so its speed is the number of cache lines in flight per
 * core, and the hardware prefetcher alone leaves too few. Each kernel asks for every line of the group
 * block PREFETCH_BLOCKS blocks ahead, into L2 (T1 hint). On a quiet Sapphire Rapids host, 2 threads:
 * AVX-512 1B Q4_0 decode 31 -> 37 tokens/s against one line asked per block, 7B Q4_0 4.5 -> 5.9, Q8_0
 * 19 -> 23, Q4_K_M 27 -> 30; capped at AVX2, Q4_0 19 -> 24-27, Q8_0 13-15 -> 16-17, Q4_K_M 19-20 -> 21-24
 * (distances of 1-16 blocks and 2-8 KiB, T0 and T1, were tried). _mm_prefetch is SSE, part of every
 * x86-64, so this needs no target attribute.
 */
#ifndef AE_PREFETCH_X86_H
#define AE_PREFETCH_X86_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define PREFETCH_BLOCKS 16

static inline __attribute__((always_inline)) void prefetch_block(const uint8_t *block, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)block + o, _MM_HINT_T1);
}

#endif
