/* aetherc: the driver. The first argument picks a subcommand; each lives in compiler/cmd_<name>.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"inspect", cmd_inspect, "inspect FILE [--tensors] [--json]     what is in a GGUF file"},
    {"synth", cmd_synth, "synth --arch llama ... -o out.gguf      a random-weight model of any shape"},
    {"run", cmd_run, "run --interp MODEL --tokens IDS [-n N]     run a model in the reference interpreter"},
    {"plan", cmd_plan, "plan MODEL                              the activation memory plan"},
    {"tokenize", cmd_tokenize, "tokenize MODEL TEXT [--ids]            tokens of a text, as llama.cpp makes them"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: aetherc MODEL.gguf [--dump-ir=...] [-O0] ...   compile a model (aetherc MODEL --help)\n"
               "       aetherc COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].summary);
    fprintf(f, "\n'aetherc COMMAND --help' describes a command's flags.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    /* A flag or a path starts the compiler proper: aetherc [flags] MODEL.gguf [flags]. */
    if (argv[1][0] == '-' || strchr(argv[1], '.') || strchr(argv[1], '/'))
        return cmd_compile(argc, argv);
    fprintf(stderr, "aetherc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
