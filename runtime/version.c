/* The build's identity (ae_version.h). ae_build_info.h is written by the Makefile: the version, the
 * git commit and the compiler's target triple, rewritten only when one of them changes. */
#include "ae_version.h"

#include "ae_build_info.h"
#include "ae_kernels.h"

#if defined(__clang__)
#define AE_CC "clang " __clang_version__
#elif defined(__GNUC__)
#define AE_CC "gcc " __VERSION__
#elif defined(__TINYC__)
#define AE_CC "tcc"
#else
#define AE_CC "an unknown C compiler"
#endif

const char *ae_version(void) { return AE_VERSION " (commit " AE_GIT_COMMIT ")"; }

void ae_version_print_runtime(FILE *f)
{
    fprintf(f, "runtime: libaether_rt %s, built with %s for %s\n", ae_version(), AE_CC, AE_TARGET);
    fprintf(f, "kernels:");
    for (int i = 0; i < AE_ISA_COUNT; i++)
        fprintf(f, "%s %s", i ? "," : "", ae_isa_name((enum ae_isa)i));
    fprintf(f, "; this CPU runs %s\n", ae_isa_name(ae_cpu_isa()));
}
