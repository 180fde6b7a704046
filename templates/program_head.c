/* The start of every generated program: what the emitted forward step and the model description use.
 * aetherc copies this text into each generated C file, then appends the model's own code. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ae_error.h"
#include "ae_gpu.h"
#include "ae_kernels.h"
#include "ae_profile.h"
#include "ae_program.h"
#include "ae_tokenizer.h"
#include "ae_types.h"

/* Scalar forms of the elementwise ops, for the loops of fused elementwise groups. They compute what
 * the IR defines (docs/ir.md), as ggml does. */
static inline float ew_silu(float x) { return x / (1.0f + expf(-x)); }

static inline float ew_gelu(float x)
{
    float y;
    ae_gelu(&x, &y, 1);
    return y;
}

static inline float ew_softcap(float x, float cap) { return tanhf(x * (1.0f / cap)) * cap; }

/* Stops the step when a kernel refuses its arguments; the kernel has said why in err, and the forward
 * function's one exit for failures (its label fail) names the step. A shared exit keeps each call's
 * check to a test and a jump. */
#define AE_CHECK(call, what)                                                                       \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            failed = what;                                                                         \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
