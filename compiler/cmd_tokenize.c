/* Placeholder for 'aetherc tokenize' while it is being written. */
#include <stdio.h>

#include "commands.h"

int cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "aetherc: 'tokenize' is not available yet\n");
    return 1;
}
