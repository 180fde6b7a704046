/* NEON kernels for aarch64: none yet, so every aarch64 level uses the scalar kernels. */
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
