/* Placeholder for 'aetherc run' while it is being written. */
#include <stdio.h>

#include "commands.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "aetherc: 'run' is not available yet\n");
    return 1;
}
