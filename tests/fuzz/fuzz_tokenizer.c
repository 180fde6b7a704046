/* libFuzzer harness for the tokenizer loader and the tokenizers, on hostile vocabularies and text.
 *
 * An input is two bytes giving the text's length L (little-endian, clamped to what is there), then a
 * GGUF file, then L bytes of text at the end. The seeds (tests/fuzz/seeds_tokenizer) are small
 * vocabulary-only files cut from real vocabularies of every tokenizer model, so mutations reach the
 * loader with token arrays of odd lengths, empty or long strings, broken merges, ids out of range,
 * unknown token types and invalid UTF-8 in tokens. A GGUF file the reader rejects ends the run; a
 * vocabulary the loader rejects must say so naming the file. A tokenizer that loads tokenizes the
 * text with and without special parsing; every id must be in the vocabulary; the result is
 * detokenized in all four modes (with an exact buffer and one byte short) and every token's piece and
 * text are read. Both parts are copied into buffers of their exact size so that AddressSanitizer
 * sees any read past either end.
 *
 *   make fuzz FUZZ_SECONDS=600
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_gguf.h"
#include "ae_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz_tokenizer: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Keeps reads from being optimized away. */
static volatile uint64_t sink;

static void touch(const char *p, size_t n)
{
    if (n)
        sink += (uint8_t)p[0] + (uint8_t)p[n - 1];
}

/* Detokenizes ids in one mode: the length query, a buffer one byte short, then the exact buffer. */
static void detokenize_mode(const ae_tokenizer *t, const int32_t *ids, size_t n, bool remove, bool unparse)
{
    ae_error err;
    size_t need = 0;
    int rc = ae_detokenize(t, ids, n, remove, unparse, NULL, 0, &need, &err);
    if (rc == 0) {
        CHECK(need == 0);
        return;
    }
    CHECK(need > 0);
    char *out = malloc(need);
    CHECK(out != NULL);
    size_t got = 0;
    CHECK(ae_detokenize(t, ids, n, remove, unparse, out, need - 1, &got, &err) < 0);
    CHECK(got == need);
    CHECK(ae_detokenize(t, ids, n, remove, unparse, out, need, &got, &err) == 0);
    CHECK(got <= need); /* the clean-up may shorten it */
    touch(out, got);
    free(out);
}

static void tokenize_text(const ae_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special)
{
    ae_error err;
    size_t n = 0;
    int rc = ae_tokenize(t, text, len, add_special, parse_special, NULL, 0, &n, &err);
    if (rc < 0 && n == 0)
        return; /* a vocabulary without the BOS/EOS/SEP it asks for */
    if (rc == 0) {
        CHECK(n == 0);
        return;
    }
    int32_t *ids = malloc(n * sizeof *ids);
    CHECK(ids != NULL);
    size_t n2 = 0;
    CHECK(ae_tokenize(t, text, len, add_special, parse_special, ids, n, &n2, &err) == 0);
    CHECK(n2 == n);
    uint32_t n_vocab = ae_tokenizer_n_vocab(t);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] >= 0 && (uint32_t)ids[i] < n_vocab);
    if (n > 1) { /* a short buffer gets the first ids and the count needed */
        int32_t *part = malloc((n - 1) * sizeof *part);
        CHECK(part != NULL);
        CHECK(ae_tokenize(t, text, len, add_special, parse_special, part, n - 1, &n2, &err) < 0);
        CHECK(n2 == n && memcmp(part, ids, (n - 1) * sizeof *part) == 0);
        free(part);
    }
    for (int mode = 0; mode < 4; mode++)
        detokenize_mode(t, ids, n, mode & 1, mode & 2);
    free(ids);
}

static void walk_vocab(const ae_tokenizer *t)
{
    uint32_t n_vocab = ae_tokenizer_n_vocab(t);
    CHECK(n_vocab > 0);
    int32_t specials[] = {ae_tokenizer_bos(t), ae_tokenizer_eos(t), ae_tokenizer_eot(t), ae_tokenizer_unk(t),
                          ae_tokenizer_sep(t), ae_tokenizer_pad(t), ae_tokenizer_nl(t)};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        CHECK(specials[i] == AE_TOKEN_NULL || (specials[i] >= 0 && (uint32_t)specials[i] < n_vocab));
    for (uint32_t i = 0; i < n_vocab; i++) {
        size_t len = 0;
        const char *s = ae_token_text(t, (int32_t)i, &len);
        CHECK(s != NULL && len > 0);
        touch(s, len);
        CHECK(ae_token_find(t, s, len) != AE_TOKEN_NULL);
        for (size_t lstrip = 0; lstrip < 2; lstrip++) {
            const char *p = ae_token_to_piece(t, (int32_t)i, lstrip == 0, lstrip, &len);
            CHECK(p != NULL);
            touch(p, len);
        }
        float score = ae_token_score(t, (int32_t)i); /* any float, NaN included: read its bits */
        uint32_t bits;
        memcpy(&bits, &score, sizeof bits);
        sink += ae_token_attr(t, (int32_t)i) + bits;
        sink += ae_tokenizer_is_eog(t, (int32_t)i);
    }
    size_t len = 1;
    CHECK(ae_token_to_piece(t, -1, true, 0, &len) == NULL && len == 0);
    CHECK(ae_token_to_piece(t, (int32_t)n_vocab, true, 0, &len) == NULL);
    int32_t bad = (int32_t)n_vocab;
    ae_error err;
    char out[4];
    size_t got;
    CHECK(ae_detokenize(t, &bad, 1, false, true, out, sizeof out, &got, &err) < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t text_len = (size_t)data[0] | (size_t)data[1] << 8;
    if (text_len > size - 2)
        text_len = size - 2;
    size_t gguf_len = size - 2 - text_len;
    uint8_t *gguf = malloc(gguf_len ? gguf_len : 1);
    char *text = malloc(text_len ? text_len : 1);
    CHECK(gguf != NULL && text != NULL);
    memcpy(gguf, data + 2, gguf_len);
    memcpy(text, data + 2 + gguf_len, text_len);

    ae_gguf *g = NULL;
    ae_tokenizer *t = NULL;
    ae_error err;
    if (ae_gguf_open_memory(&g, gguf, gguf_len, "fuzz.gguf", &err) < 0)
        goto done;
    err.msg[0] = 0;
    if (ae_tokenizer_load(&t, g, &err) < 0) {
        CHECK(t == NULL);
        CHECK(strncmp(err.msg, "fuzz.gguf", 9) == 0);
        goto done;
    }
    ae_gguf_close(g); /* the tokenizer keeps its own copies */
    g = NULL;
    walk_vocab(t);
    tokenize_text(t, text, text_len, true, true);
    tokenize_text(t, text, text_len, false, false);
done:
    ae_tokenizer_free(t);
    ae_gguf_close(g);
    free(gguf);
    free(text);
    return 0;
}
