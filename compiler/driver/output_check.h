/* Checks on the files aetherc is about to write, made before any work so that a mistake costs nothing:
 * an output must not be the model itself (the same file, through any link), an existing output must
 * be the kind of file aetherc writes there (it overwrites programs and weights packs, never a model or
 * anything else), and its folder must exist and take a new file. Each failure is one line naming the
 * flag, the path and what is wrong.
 */
#ifndef AE_OUTPUT_CHECK_H
#define AE_OUTPUT_CHECK_H

#include "ae_error.h"

enum output_kind {
    OUTPUT_PROGRAM,   /* an executable: an existing file must be an ELF file (or empty) */
    OUTPUT_WEIGHTS,   /* a weights pack: an existing file must start with AE_PACK_MAGIC (or be empty) */
    OUTPUT_ANY,       /* a file aetherc makes whatever was there (a GGUF from synth, generated C) */
};

/* flag names the option in messages ("-o"); input is the file that must not be overwritten (may be
 * NULL). Returns 0, or -1 with err set. */
int output_check(const char *flag, const char *path, enum output_kind kind, const char *input, ae_error *err);

/* The same for a folder that aetherc creates when it is missing (--emit-c DIR, --dump-dir DIR): it must
 * be a folder that takes new files, or one that can be made. */
int output_check_dir(const char *flag, const char *dir, ae_error *err);

#endif
