/* aetherc: the driver. The first argument picks a subcommand; each lives in compiler/driver/cmd_<name>.c (synth: compiler/synth/). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *syntax, *summary;
} commands[] = {
    {"run", cmd_run, "run MODEL [-p TEXT] [-n N] [flags]", "compile in memory with libtcc and run at once"},
    {"run", cmd_run, "run --interp MODEL --tokens IDS [-n N]", "run in the reference interpreter"},
    {"inspect", cmd_inspect, "inspect FILE [--tensors] [--json]", "what is in a GGUF file"},
    {"plan", cmd_plan, "plan MODEL", "the activation memory plan"},
    {"tokenize", cmd_tokenize, "tokenize MODEL TEXT [--ids]", "tokens of a text, as llama.cpp makes them"},
    {"synth", cmd_synth, "synth --arch llama ... -o OUT.gguf", "a random-weight model of any shape"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: aetherc MODEL.gguf -o PROGRAM [flags]    compile a model into a program\n"
               "       aetherc MODEL.gguf [--dump-ir=...]       run the passes and report what they did\n"
               "       aetherc COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-40s %s\n", commands[i].syntax, commands[i].summary);
    fprintf(f, "\n'aetherc MODEL.gguf --help' lists the compiler's flags, 'aetherc COMMAND --help' a command's.\n");
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
