/* 'aetherc plan MODEL [--t-max N] [--ctx N] [compiler flags]': the activation memory plan as a table.
 *
 * The plan is the one the compiler makes (the whole pass pipeline, memplan last), so this command is
 * 'aetherc MODEL --print-plan' under its own name: one row per buffer (its node, size, offset, first
 * and last step), then the peak against the naive sum of all intermediates and the largest live set,
 * then the layout the layout pass chose for each weight ("x16-q4_0", "rows-q6_k"; docs/kernels.md) and
 * the merged matrix it is part of, if any ("qkv#0 rows 64..96 of 128").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

int cmd_plan(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: aetherc plan MODEL [--t-max N] [--ctx N] [compiler flags]\n"
                   "\n"
                   "Prints the activation memory plan of MODEL after the passes: one row per buffer (node,\n"
                   "size, offset, first and last step), the planned peak, the naive sum of all intermediates\n"
                   "and the largest set of buffers live at one step; then the layout each weight is stored\n"
                   "in (x16-TYPE: 16 rows interleaved for the SIMD kernels; rows-TYPE: as the GGUF has it)\n"
                   "and the merged matrix it is stored in with the other matrices that multiply the same\n"
                   "input (qkv#3 rows 2048..2560 of 3072: rows 2048..2560 of merged matrix 3, a layer's Q,\n"
                   "K and V; --no-merge keeps every matrix apart).\n"
                   "\n"
                   "  --t-max N   plan for steps of up to N tokens (default 512)\n"
                   "  --ctx N     the default context (the plan holds for every context the program allows)\n"
                   "  -O0, --disable-pass=NAME, ... as for 'aetherc MODEL' (aetherc --help)\n");
            return 0;
        }
    char **args = malloc(((size_t)argc + 2) * sizeof *args);
    if (!args) {
        fprintf(stderr, "aetherc: out of memory\n");
        return 1;
    }
    args[0] = "aetherc";
    args[1] = "--print-plan";
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    args[argc + 1] = NULL;
    int rc = cmd_compile(argc + 1, args);
    free(args);
    return rc;
}
