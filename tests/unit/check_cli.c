/* The command lines a user runs first, as a table: each row is a shell command, the exit status it must
 * give, a pattern its output (stdout and stderr together) must match, and one it must not.
 *
 * The rows run in a fresh folder holding a copy of stories260K (m.gguf, and mymodel: a name without a
 * dot), a link to it, a program compiled from it once with gcc (p, shared by most rows), a prompt file,
 * and models whose settings are impossible (made here with the GGUF writer). $A is aetherc, $MODEL the
 * shared original, $ROOT the repository. Patterns are fnmatch patterns matched anywhere in the output
 * ('*' spans lines). What each group of rows shows is said above it; the programs' numerical results are
 * check_e2e's.
 */
#include <fnmatch.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf_write.h"
#include "test_util.h"

static const struct cli_row {
    const char *cmd;
    int status;
    const char *says;     /* must match (fnmatch, anywhere) */
    const char *not_says; /* must not match; NULL: no such pattern */
} rows[] = {
    /* An output that is the model, through any name, or an existing file that is not a program, is refused
     * before any work, and the model is left as it was. */
    {"$A m.gguf -o m.gguf", 1, "aetherc: -o m.gguf: that is the model itself (m.gguf)", NULL},
    {"$A m.gguf -o link.gguf", 1, "-o link.gguf: that is the model itself", NULL},
    {"$A link.gguf -o ./m.gguf; cmp m.gguf \"$MODEL\" && echo intact", 0, "*that is the model itself*intact", NULL},
    {"$A m.gguf -o notes.txt; cat notes.txt", 0, "-o notes.txt: the file exists and is not a program*my notes",
     NULL},
    {"$A m.gguf -o p2 --weights=external --cc tcc && $A m.gguf -o p2 --weights=external --cc tcc", 0,
     "wrote p2 *in p2.weights", NULL},
    {"echo x > p3.weights; $A m.gguf -o p3 --weights=external", 1, "p3.weights: the file exists and is not a weights",
     NULL},
    /* Output paths that cannot be written: one line, before any work, naming the folder. */
    {"$A m.gguf -o /nonexistent/dir/p", 1, "aetherc: -o /nonexistent/dir/p: the folder /nonexistent/dir does not exist",
     "ld: "},
    {"test $($A m.gguf -o /proc/p --cc tcc 2>&1 | wc -l) -eq 1 && echo one line", 0, "one line", NULL},
    {"$A m.gguf -o /proc/p --cc tcc", 1, "-o /proc/p: cannot write in the folder /proc", "tcc*"},
    {"$A m.gguf -o p4 --emit-c /nonexistent/dir", 1, "--emit-c /nonexistent/dir: the folder /nonexistent does not",
     NULL},
    {"$A m.gguf -o .", 1, "-o .: that is a folder", NULL},
    {"$A synth --arch llama --dim 64 --layers 1 --heads 2 --ffn 64 --type f32 --vocab-from m.gguf -o link.gguf", 1,
     "aetherc: -o link.gguf: that is the model itself (m.gguf)", NULL},
    {"$A run --interp m.gguf --tokens 1 --dump-logits m.gguf", 1, "--dump-logits m.gguf: that is the model itself",
     NULL},
    /* A path that exists is a model, whatever its name; a word that is neither gets the nearest command. */
    {"$A mymodel -o p5 --cc tcc", 0, "aetherc: wrote p5 (", NULL},
    {"$A rnu m.gguf", 2, "unknown command 'rnu', and no file of that name; did you mean 'run'?", NULL},
    /* The prompt from a file or from standard input (-p -). */
    {"printf 'Once upon a time\\n' > prompt.txt; ./p -f prompt.txt -n 8 --temp 0", 0, ", there was a little girl",
     NULL},
    {"printf 'Once upon a time\\n' | ./p -p - -n 8 --temp 0", 0, ", there was a little girl", NULL},
    {"./p -f missing.txt", 2, "p: -f missing.txt: cannot read the prompt file: No such file", NULL},
    {"./p -p x -f prompt.txt", 2, "-p and -f: give the prompt one way", NULL},
    /* llama.cpp's everyday flags: the same command line runs; an unknown flag gets one line and the closest
     * flag, not the usage. */
    {"./p -c 128 -s 7 -r Lily -e --no-display-prompt --color --log-disable -b 2 --mlock -ngl 0 --temp 0 -n 40 "
     "-p 'Once upon\\x20a time'", 0, ", there was a little girl named", "*Lily*"},
    {"./p --ctx-size 64 --seed 1 --reverse-prompt x --n-gpu-layers 99 -n 1 -p hi", 0,
     "p: -ngl 99: every layer runs on one device (--device auto)", NULL},
    {"./p -p 'a\\nb' -n 0 --dump-logits e1 && ./p -p \"$(printf 'a\\nb')\" -n 0 --dump-logits e2 && "
     "./p --no-escape -p 'a\\nb' -n 0 --dump-logits e3 && cmp e1 e2 && echo same; cmp -s e1 e3 || echo differs", 0,
     "same*differs", NULL},
    {"echo /exit | ./p -cnv --chat-template chatml -n 4", 0, "> ", NULL},
    {"./p --temperature 0.5", 2, "p: unknown flag '--temperature'; did you mean '--temp'?", "*usage*"},
    {"./p --frobnicate", 2, "unknown flag '--frobnicate' (--help lists the flags)", NULL},
    {"$A m.gguf --tmax 8", 2, "aetherc: unknown flag '--tmax'; did you mean '--t-max'?", NULL},
    {"$A -m m.gguf -o p6 --cc tcc", 0, "aetherc: wrote p6 (", NULL},
    /* The context: what aetherc is told is the program's default, which its --ctx lowers or raises up to
     * the training context; likewise the KV cache type. */
    {"$A m.gguf -o p7 --ctx 64 --kv f32 --cc tcc && ./p7 --info", 0,
     "*context: 64 tokens by default, --ctx from 1 to 2048; KV cache f32 by default*for a context of 64 tokens, f32*",
     NULL},
    {"./p7 --ctx 1024 --kv f16 --info", 0, "for a context of 1024 tokens, f16", NULL},
    {"./p7 --ctx 4096", 2, "--ctx: this program runs contexts from 1 to 2048 tokens (the model's training context)",
     NULL},
    {"$A m.gguf --ctx 4096", 1, "a context of 4096 tokens is longer than the model's training context (2048", NULL},
    /* The weights: checked cheaply at every start (a changed byte in a sampled chunk is found), fully by
     * --verify; --help says what is and is not checked; --info gives the hash. */
    {"./p --help", 0, "*table of chunk*hashes (BLAKE2b)*sampled chunks*--verify hashes every chunk*", NULL},
    {"./p --info", 0, "weights: 1171200 bytes (1.12 MiB) in 48 tensors, BLAKE2b-256 ", NULL},
    /* --info names the kernel level per weight type and layout (this F32 model: rows only). */
    {"AETHER_ISA=scalar ./p --info", 0, "*kernels: scalar (this CPU: *); f32: rows scalar\n", NULL},
    {"cp p pt && printf 'X' | dd of=pt bs=1 seek=$(($(stat -c %s pt) - 5000)) conv=notrunc 2>/dev/null && "
     "./pt -p hi -n 1", 1, "pt: the weights pack (*) does not belong to this program or was changed*does not match its "
     "hash", NULL},
    {"./pt --verify", 1, "weights MISMATCH*chunk 1 of the weights (bytes 1048576 to 1171199) does not match", NULL},
    {"./p --verify", 0, "weights OK: 1171200 bytes in 2 chunks, BLAKE2b-256 ", NULL},
    /* aetherc run: bad program flags before the compile; the weights in place, no pack. */
    {"$A run m.gguf -p hi --temprature 0", 2, "aetherc: run: unknown flag '--temprature'; did you mean '--temp'?",
     "*compiling*"},
    {"$A run m.gguf --info", 0, "weights pack: none; the weights are used in place from m.gguf", NULL},
    {"$A run m.gguf --verify", 0, "nothing to verify: the weights are used in place from m.gguf", NULL},
    /* A closing line for a compile, a progress bar on a terminal (only there), and the text ends with a
     * newline before --timings. */
    {"script -qec '$A m.gguf -o p9 --cc tcc' /dev/null", 0, "*hashing the weights [*100%*writing the weights [*100%*"
     "aetherc: wrote p9 (", NULL},
    {"$A m.gguf -o p8 --cc tcc", 0, "aetherc: wrote p8 (*) with 1.12 MiB of weights appended, BLAKE2b-256 *, in *s",
     "hashing"},
    {"./p -p 'Once upon a time' -n 4 --temp 0 --timings 2>/dev/null | od -c | tail -2", 0, "*\\n*", NULL},
    /* --profile: the steps' time per op kind; AETHER_ISA caps the kernels, and a wrong level is refused. */
    {"./p -p 'Once upon a time' -n 4 --temp 0 --profile", 0,
     "*profile, prefill: 1 steps, * tokens*matmul f32 rows*profile, decode: 3 steps, 3 tokens*attention*"
     "(between the steps)*", NULL},
    {"AETHER_ISA=scalar ./p -p 'Once upon a time' -n 8 --temp 0", 0, ", there was a little girl", NULL},
    {"AETHER_ISA=avx9 ./p -p hi -n 1", 2, "p: AETHER_ISA=avx9 is no instruction-set level of this machine", NULL},
    /* --version on both. */
    {"$A --version", 0, "aetherc 0.1.0 (commit *)*runtime: libaether_rt 0.1.0*kernels: scalar*this CPU runs *", NULL},
    {"./p --version", 0, "p: llama (llama), compiled by aetherc 0.1.0 (commit *) with gcc -O2*kernels: *", NULL},
    /* Impossible settings: inspect shows the file and warns; compiling refuses; both name the byte. */
    {"$A inspect bad-block_count.gguf", 0,
     "*warning: bad-block_count.gguf: byte * metadata key 'llama.block_count' is 0, expected 1..*", NULL},
    {"$A bad-block_count.gguf -o x", 1, "aetherc: bad-block_count.gguf: byte * metadata key 'llama.block_count' is 0",
     NULL},
    {"$A inspect bad-head_count_kv.gguf", 0, "warning: *: byte *'llama.attention.head_count_kv' is 0", NULL},
    {"$A inspect bad-context_length.gguf", 0, "warning: *: byte *'llama.context_length' is 0", NULL},
    {"$A inspect bad-eps.gguf", 0, "warning: *: byte *'llama.attention.layer_norm_rms_epsilon' is nan", NULL},
    /* The fuzz harnesses stop at the first sanitizer report. */
    {"make --no-print-directory -C \"$ROOT\" -n -B build/fuzz/fuzz_tokenizer", 0, "*-fno-sanitize-recover=all*", NULL},
};
#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

static char dir[64];
static char out[1 << 16];

static int run_in_dir(const char *cmd)
{
    char line[8192];
    snprintf(line, sizeof line, "cd %s && (%s) 2>&1", dir, cmd);
    FILE *p = popen(line, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool matches(const char *pattern)
{
    char glob[1024];
    snprintf(glob, sizeof glob, "*%s*", pattern);
    return fnmatch(glob, out, 0) == 0;
}

START_TEST(test_cli_row)
{
    const struct cli_row *r = &rows[_i];
    int status = run_in_dir(r->cmd);
    ck_assert_msg(status == r->status, "%s: exit %d, expected %d:\n%s", r->cmd, status, r->status, out);
    ck_assert_msg(matches(r->says), "%s: the output lacks '%s':\n%s", r->cmd, r->says, out);
    ck_assert_msg(!r->not_says || !matches(r->not_says), "%s: the output has '%s':\n%s", r->cmd, r->not_says, out);
}
END_TEST

/* Outside a test: a failure says what and exits. */
static void need(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "check_cli: %s\n%s\n", what, out);
        exit(1);
    }
}

/* stories260K with one setting made impossible: a u32 key set to 0, or the epsilon NaN. */
static void write_bad_model(const char *model, const char *key, const char *name)
{
    ae_error err = {{0}};
    ae_gguf *f;
    need(ae_gguf_open(&f, model, &err) == 0, err.msg);
    ae_gguf_writer *w = ae_gguf_writer_create();
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char k[256];
        snprintf(k, sizeof k, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.ptr);
        if (!strcmp(k, key) && f->kv[i].value.type == AE_GGUF_F32)
            ae_gguf_writer_add_f32(w, k, NAN);
        else if (!strcmp(k, key))
            ae_gguf_writer_add_u32(w, k, 0);
        else
            ae_gguf_writer_add_value(w, k, &f->kv[i].value);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct ae_gguf_tensor *t = &f->tensors[i];
        need(ae_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err) == 0, err.msg);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    need(ae_gguf_writer_write_file(w, path, NULL, NULL, &err) == 0, err.msg);
    ae_gguf_writer_destroy(w);
    ae_gguf_close(f);
}

/* The folder every row runs in, made once: the rows share the compiled program and run in order. */
static void make_dir(void)
{
    const char *aetherc = getenv("AE_AETHERC"), *shared = getenv("AE_SHARED");
    need(aetherc && *aetherc && shared && *shared, "AE_AETHERC or AE_SHARED is not set: run the tests through make check");
    char model[4096], root[4096];
    snprintf(model, sizeof model, "%s/models/stories260K.gguf", shared);
    need(access(model, R_OK) == 0, "the shared model models/stories260K.gguf is missing");
    need(getcwd(root, sizeof root) != NULL, "getcwd failed");
    setenv("A", aetherc, 1);
    setenv("MODEL", model, 1);
    setenv("ROOT", root, 1);
    snprintf(dir, sizeof dir, "/tmp/aether-cli-XXXXXX");
    need(mkdtemp(dir) != NULL, "cannot make a temporary folder");
    need(run_in_dir("cp \"$MODEL\" m.gguf && cp m.gguf mymodel && ln -s m.gguf link.gguf && "
                    "echo 'my notes' > notes.txt && $A m.gguf -o p") == 0, "setting up failed");
    static const struct {
        const char *key, *name;
    } bad[] = {{"llama.block_count", "bad-block_count.gguf"}, {"llama.attention.head_count_kv", "bad-head_count_kv.gguf"},
               {"llama.context_length", "bad-context_length.gguf"},
               {"llama.attention.layer_norm_rms_epsilon", "bad-eps.gguf"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        write_bad_model(model, bad[i].key, bad[i].name);
}

int main(void)
{
    make_dir();
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("rows");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_cli_row, 0, N_ROWS);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    test_remove_dir(dir);
    return rc;
}
