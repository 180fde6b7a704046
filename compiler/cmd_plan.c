/* Placeholder for 'aetherc plan' while it is being written. */
#include <stdio.h>

#include "commands.h"

int cmd_plan(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "aetherc: 'plan' is not available yet\n");
    return 1;
}
