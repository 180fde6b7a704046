/* aetherc: the driver. The first argument picks a subcommand (each lives in compiler/driver/cmd_<name>.c;
 * synth in compiler/synth/); anything else that is a flag or names a file is the compiler proper. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ae_error.h"
#include "ae_version.h"
#include "commands.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *syntax, *summary;
} commands[] = {
    {"run", cmd_run, "run MODEL [PROGRAM FLAGS]\n  run --interp MODEL --tokens IDS [-n N]",
     "compile in memory with libtcc and run at once;\n                                           "
     "or run the reference interpreter"},
    {"inspect", cmd_inspect, "inspect FILE [--tensors] [--json]", "what is in a GGUF file"},
    {"plan", cmd_plan, "plan MODEL", "the activation memory plan"},
    {"tokenize", cmd_tokenize, "tokenize MODEL TEXT [--ids]", "tokens of a text, as llama.cpp makes them"},
    {"synth", cmd_synth, "synth --arch llama ... -o OUT.gguf", "a random-weight model of any shape"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: aetherc MODEL.gguf -o PROGRAM [flags]    compile a model into a program\n"
               "       aetherc MODEL.gguf [--dump-ir=...]       run the passes and report what they did\n"
               "       aetherc COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *nl = strchr(commands[i].syntax, '\n');
        int first = nl ? (int)(nl - commands[i].syntax) : (int)strlen(commands[i].syntax);
        fprintf(f, "  %-40.*s %s\n", first, commands[i].syntax, commands[i].summary);
        if (nl)
            fprintf(f, "%s\n", nl + 1);
    }
    fprintf(f, "\n'aetherc MODEL.gguf --help' lists the compiler's flags, 'aetherc COMMAND --help' a command's;\n"
               "'aetherc --version' says which build this is.\n");
}

static void version(void)
{
    printf("aetherc %s\n", ae_version());
    ae_version_print_runtime(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *first = argv[1];
    if (!strcmp(first, "--help") || !strcmp(first, "-h") || !strcmp(first, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(first, "--version")) {
        version();
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(first, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    /* A flag or a file starts the compiler proper: aetherc [flags] MODEL [flags]. A name that looks
     * like a path is taken as one too, so that a missing model is reported as a missing file. */
    struct stat st;
    if (first[0] == '-' || stat(first, &st) == 0 || strchr(first, '.') || strchr(first, '/'))
        return cmd_compile(argc, argv);
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++)
        names[i] = commands[i].name;
    const char *near = ae_closest_name(first, names, N_COMMANDS);
    fprintf(stderr, "aetherc: unknown command '%s', and no file of that name%s%s%s (aetherc --help lists the commands)\n",
            first, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    return 2;
}
