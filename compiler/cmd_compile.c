/* Placeholder for 'aetherc compile' while it is being written. */
#include <stdio.h>

#include "commands.h"

int cmd_compile(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "aetherc: 'compile' is not available yet\n");
    return 1;
}
