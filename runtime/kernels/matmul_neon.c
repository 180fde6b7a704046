/* NEON kernels for aarch64 (levels neon, dotprod, i8mm): none for the canonical order of docs/kernels.md
 * yet, so every aarch64 level runs the scalar kernels. */
#include "ae_kernels.h"

const struct ae_kernel_set *ae_kernels_neon(void)
{
    return NULL;
}

const struct ae_kernel_set *ae_kernels_dotprod(void)
{
    return NULL;
}

const struct ae_kernel_set *ae_kernels_i8mm(void)
{
    return NULL;
}
