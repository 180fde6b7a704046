/* The aetherc subcommands. Each lives in its own compiler/driver/cmd_<name>.c (synth: compiler/synth/) and returns the process's
 * exit status: 0 on success, 1 on bad input (after printing "aetherc: <message>" to stderr), 2 on a
 * usage error. */
#ifndef AE_COMMANDS_H
#define AE_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_plan(int argc, char **argv);
/* 'aetherc [flags] MODEL.gguf [flags]': the compiler proper; argv[0] is "aetherc", flags and the model
 * path follow in any order. */
int cmd_compile(int argc, char **argv);

#endif
