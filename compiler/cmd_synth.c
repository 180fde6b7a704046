/* Placeholder for 'aetherc synth' while it is being written. */
#include <stdio.h>

#include "commands.h"

int cmd_synth(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "aetherc: 'synth' is not available yet\n");
    return 1;
}
