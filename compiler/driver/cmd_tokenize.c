/* 'aetherc tokenize MODEL TEXT': the tokens of a text, printed the way llama.cpp's llama-tokenize
 * prints them, so the two can be diffed.
 *
 * By default one line per token, "%6d -> 'piece'" (the piece with special tokens rendered); with
 * --ids a Python-style list "[1, 2, 3]". BOS/EOS are added as the model's vocabulary says unless
 * --no-bos is given, and special tokens written in the text ("<s>", "<|im_end|>") are recognized
 * unless --no-parse-special is given.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_gguf.h"
#include "ae_tokenizer.h"
#include "commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: aetherc tokenize MODEL TEXT [--ids] [--no-bos] [--no-parse-special]\n"
               "\n"
               "  MODEL               a GGUF file with a tokenizer (tokenizer.ggml.* keys)\n"
               "  TEXT                the text to tokenize (after '--' it may start with '-')\n"
               "  --ids               print only the ids, as a list: [1, 2, 3]\n"
               "  --no-bos            add no BOS/EOS tokens, whatever the vocabulary asks\n"
               "  --no-parse-special  treat special-token text such as \"<s>\" as plain text\n");
}

int cmd_tokenize(int argc, char **argv)
{
    const char *positional[2];
    int n_pos = 0;
    bool ids_only = false, add_special = true, parse_special = true, flags_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!flags_done && a[0] == '-' && a[1] != 0) {
            if (!strcmp(a, "--")) {
                flags_done = true;
            } else if (!strcmp(a, "--ids")) {
                ids_only = true;
            } else if (!strcmp(a, "--no-bos")) {
                add_special = false;
            } else if (!strcmp(a, "--no-parse-special")) {
                parse_special = false;
            } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                usage(stdout);
                return 0;
            } else {
                fprintf(stderr, "aetherc: tokenize: unknown flag '%s'\n", a);
                usage(stderr);
                return 2;
            }
            continue;
        }
        if (n_pos == 2) {
            fprintf(stderr, "aetherc: tokenize: unexpected argument '%s' (quote the text as one argument)\n", a);
            usage(stderr);
            return 2;
        }
        positional[n_pos++] = a;
    }
    if (n_pos < 2) {
        fprintf(stderr, "aetherc: tokenize: expected MODEL and TEXT\n");
        usage(stderr);
        return 2;
    }

    ae_error err;
    ae_gguf *g = NULL;
    ae_tokenizer *t = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (ae_gguf_open(&g, positional[0], &err) < 0 || ae_tokenizer_load(&t, g, &err) < 0) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        goto done;
    }
    const char *text = positional[1];
    size_t len = strlen(text), n = 0;
    size_t cap = len + 8; /* usually enough; a second call gets the exact count */
    for (int attempt = 0;; attempt++) {
        free(ids);
        ids = malloc(cap * sizeof *ids);
        if (!ids) {
            fprintf(stderr, "aetherc: out of memory\n");
            goto done;
        }
        if (ae_tokenize(t, text, len, add_special, parse_special, ids, cap, &n, &err) == 0)
            break;
        if (n <= cap || attempt > 0) {
            fprintf(stderr, "aetherc: %s\n", err.msg);
            goto done;
        }
        cap = n;
    }
    if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t plen;
            const char *p = ae_token_to_piece(t, ids[i], true, 0, &plen);
            printf("%6d -> '", ids[i]);
            fwrite(p, 1, plen, stdout);
            printf("'\n");
        }
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(ids);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
    return rc;
}
