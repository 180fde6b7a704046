/* What this build of Aether is: its version, the commit it was built from, the C compiler and target
 * that built the runtime library, and the kernel levels it carries. `aetherc --version` and every
 * program's --version print these, so that a bug report says exactly what ran.
 */
#ifndef AE_VERSION_H
#define AE_VERSION_H

#include <stdio.h>

/* "0.1.0 (commit 73572c0a1b2c)"; the commit ends in "-modified" when the tree had uncommitted changes,
 * and is "unknown" outside a git checkout. */
const char *ae_version(void);

/* Two lines: the runtime library (version, commit, the compiler and target that built it) and the
 * kernels (the instruction-set levels it carries and the one this CPU runs). */
void ae_version_print_runtime(FILE *f);

#endif
