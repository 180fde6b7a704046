/* Tests of the tokenizers (runtime/text/tokenizer.c, tok_*.c) and 'aetherc tokenize'.
 *
 * The main rows run llama.cpp's tokenizer test vectors (tokenizer/ggml-vocab-*.gguf.inp/.out, the
 * Hugging Face tokenizers' output) against every vocabulary that has them, and against model files
 * that carry the same vocabulary. Then the prompt tokens of every model in reference/ (llama.cpp's
 * llama_tokenize with add_special and parse_special), detokenize(tokenize(s)) == s where the
 * tokenizer promises it, hand-made rows for special tokens, BOS/EOS and llama.cpp's detokenizing
 * rules, the Unicode tables, errors for broken tokenizer metadata, and the command line.
 */
#include "ae_gguf.h"
#include "gguf_write.h"
#include "ae_tokenizer.h"
#include "commands.h"
#include "test_util.h"
#include "tok_internal.h"
#include "tok_unicode.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Helpers --------------------------------------------------------------------------------------- */

static ae_tokenizer *load_tokenizer(const char *rel, ae_gguf **g)
{
    ae_error err;
    ae_tokenizer *t = NULL;
    const char *path = test_shared_path(rel);
    ck_assert_msg(ae_gguf_open(g, path, &err) == 0, "%s", err.msg);
    ck_assert_msg(ae_tokenizer_load(&t, *g, &err) == 0, "%s", err.msg);
    return t;
}

/* Tokenizes s into a malloc'd array; the count goes to *n. */
static int32_t *tokenize(const ae_tokenizer *t, const char *s, size_t len, bool add_special, bool parse_special,
                         size_t *n)
{
    ae_error err;
    size_t cap = len * 2 + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    ck_assert(ids != NULL);
    ck_assert_msg(ae_tokenize(t, s, len, add_special, parse_special, ids, cap, n, &err) == 0, "%s", err.msg);
    return ids;
}

/* Detokenizes into a static buffer (NUL-terminated); the length goes to *n. */
static const char *detokenize(const ae_tokenizer *t, const int32_t *ids, size_t count, bool remove_special,
                              bool unparse_special, size_t *n)
{
    static char buf[1 << 16];
    ae_error err;
    ck_assert_msg(ae_detokenize(t, ids, count, remove_special, unparse_special, buf, sizeof buf - 1, n, &err) == 0,
                  "%s", err.msg);
    buf[*n] = 0;
    return buf;
}

/* The test strings of a .inp file, split on "\n__ggml_vocab_test__\n" (the text is modified). */
static size_t split_inputs(char *text, char **strs, size_t max)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n = 0;
    for (char *s = text, *e; (e = strstr(s, sep)) != NULL; s = e + sizeof sep - 1) {
        ck_assert(n < max);
        *e = 0;
        strs[n++] = s;
    }
    return n;
}

/* Whether llama.cpp's space clean-up would change s (detokenizing cannot give s back then). */
static bool cleanup_changes(const char *s)
{
    static const char *const pats[] = {" ?", " !", " .", " ,", " '"};
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
        if (strstr(s, pats[i]))
            return true;
    return false;
}

/* ---- llama.cpp's test vectors ------------------------------------------------------------------------ */

struct vocab_row {
    const char *gguf;    /* the file whose tokenizer is tested */
    const char *vectors; /* the .inp/.out pair, without the extension */
    const char *pre;     /* the pre-tokenizer the file selects */
    bool round_trip;     /* detokenize(tokenize(s)) == s is promised */
};

static const struct vocab_row vocab_rows[] = {
    {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-llama-spm.gguf", "default", true},
    {"tokenizer/ggml-vocab-phi-3.gguf", "tokenizer/ggml-vocab-phi-3.gguf", "default", true},
    {"tokenizer/ggml-vocab-gpt-2.gguf", "tokenizer/ggml-vocab-gpt-2.gguf", "gpt-2", true},
    {"tokenizer/ggml-vocab-deepseek-coder.gguf", "tokenizer/ggml-vocab-deepseek-coder.gguf", "deepseek-coder", true},
    {"tokenizer/ggml-vocab-deepseek-llm.gguf", "tokenizer/ggml-vocab-deepseek-llm.gguf", "deepseek-llm", true},
    {"tokenizer/ggml-vocab-falcon.gguf", "tokenizer/ggml-vocab-falcon.gguf", "falcon", true},
    {"tokenizer/ggml-vocab-mpt.gguf", "tokenizer/ggml-vocab-mpt.gguf", "mpt", true},
    {"tokenizer/ggml-vocab-refact.gguf", "tokenizer/ggml-vocab-refact.gguf", "refact", true},
    {"tokenizer/ggml-vocab-starcoder.gguf", "tokenizer/ggml-vocab-starcoder.gguf", "starcoder", true},
    /* WordPiece lower-cases, drops accents and spaces: no round trip */
    {"tokenizer/ggml-vocab-bert-bge.gguf", "tokenizer/ggml-vocab-bert-bge.gguf", "default", false},
    /* model files that embed the same vocabularies */
    {"models/llama-2-tiny-random.gguf", "tokenizer/ggml-vocab-llama-spm.gguf", "default", true},
    {"models/synthetic/tiny-qwen2-f32.gguf", "tokenizer/ggml-vocab-gpt-2.gguf", "gpt-2", true},
};

#define N_VOCAB_ROWS ((int)(sizeof vocab_rows / sizeof vocab_rows[0]))

START_TEST(test_vectors)
{
    const struct vocab_row *row = &vocab_rows[_i];
    ae_gguf *g;
    ae_tokenizer *t = load_tokenizer(row->gguf, &g);
    ck_assert_str_eq(ae_tokenizer_pre(t), row->pre);

    char path[4096];
    size_t n_inp, n_out;
    snprintf(path, sizeof path, "%s.inp", test_shared_path(row->vectors));
    char *inp = test_read_file(path, &n_inp);
    snprintf(path, sizeof path, "%s.out", test_shared_path(row->vectors));
    char *out = test_read_file(path, &n_out);
    inp = realloc(inp, n_inp + 1);
    out = realloc(out, n_out + 1);
    inp[n_inp] = 0;
    out[n_out] = 0;

    char *strs[256];
    size_t n_strs = split_inputs(inp, strs, 256);
    ck_assert_uint_eq(n_strs, 46);
    char *line = out;
    size_t n_round_trip = 0;
    for (size_t i = 0; i < n_strs; i++) {
        char *eol = strchr(line, '\n');
        ck_assert_msg(eol != NULL, "%s.out: line %zu is missing", row->vectors, i + 1);
        *eol = 0;
        size_t n;
        int32_t *ids = tokenize(t, strs[i], strlen(strs[i]), false, false, &n);
        char *p = line;
        for (size_t k = 0; k < n; k++) {
            char *end;
            long want = strtol(p, &end, 10);
            ck_assert_msg(end != p, "%s: string %zu: %zu tokens, expected fewer (token %zu is %d)", row->gguf, i, n,
                          k, ids[k]);
            ck_assert_msg(want == ids[k], "%s: string %zu: token %zu is %d, expected %ld", row->gguf, i, k, ids[k],
                          want);
            p = end;
        }
        while (*p == ' ')
            p++;
        ck_assert_msg(*p == 0, "%s: string %zu: %zu tokens, expected more: '%s' left", row->gguf, i, n, p);

        if (row->round_trip && !(t->clean_spaces && cleanup_changes(strs[i]))) {
            size_t len;
            const char *back = detokenize(t, ids, n, false, false, &len);
            ck_assert_msg(len == strlen(strs[i]) && memcmp(back, strs[i], len) == 0,
                          "%s: string %zu: detokenized to '%s', expected '%s'", row->gguf, i, back, strs[i]);
            n_round_trip++;
        }
        free(ids);
        line = eol + 1;
    }
    if (row->round_trip)
        ck_assert_msg(n_round_trip >= 44, "%s: only %zu strings checked for the round trip", row->gguf, n_round_trip);
    free(inp);
    free(out);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
}
END_TEST

/* ---- llama.cpp's prompt tokens for every reference model -------------------------------------------- */

/* The JSON string value after "key": (simple escapes only; the prompts are plain ASCII). */
static void json_string(const char *json, const char *key, char *dst, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    ck_assert_msg(p != NULL, "no \"%s\" in the JSON", key);
    p = strchr(p + strlen(pat), '"');
    ck_assert(p != NULL);
    size_t n = 0;
    for (p++; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        ck_assert(n + 1 < cap);
        dst[n++] = c;
    }
    dst[n] = 0;
}

/* The integers of the JSON array after "key":. */
static size_t json_ints(const char *json, const char *key, int32_t *dst, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    ck_assert_msg(p != NULL, "no \"%s\" in the JSON", key);
    p = strchr(p, '[');
    ck_assert(p != NULL);
    size_t n = 0;
    for (p++; *p && *p != ']';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        ck_assert(n < cap);
        dst[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

START_TEST(test_reference_prompts)
{
    const char *ref = test_shared_path("reference");
    char ref_dir[4096];
    snprintf(ref_dir, sizeof ref_dir, "%s", ref);
    DIR *d = opendir(ref_dir);
    ck_assert_msg(d != NULL, "cannot open %s", ref_dir);
    size_t n_models = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char json_path[8192], model[4096];
        struct stat st;
        snprintf(json_path, sizeof json_path, "%s/%s/prompt1.kvf16.json", ref_dir, e->d_name);
        if (e->d_name[0] == '.' || stat(json_path, &st) != 0)
            continue; /* dequant/, and models llama.cpp could not load */
        snprintf(model, sizeof model, "models/%s.gguf", e->d_name);
        if (stat(test_shared_path(model), &st) != 0)
            snprintf(model, sizeof model, "models/synthetic/%s.gguf", e->d_name);
        ae_gguf *g;
        ae_tokenizer *t = load_tokenizer(model, &g);
        for (int p = 1; p <= 3; p++) {
            snprintf(json_path, sizeof json_path, "%s/%s/prompt%d.kvf16.json", ref_dir, e->d_name, p);
            size_t size;
            char *json = test_read_file(json_path, &size);
            json = realloc(json, size + 1);
            json[size] = 0;
            char prompt[1024];
            int32_t want[256];
            json_string(json, "prompt", prompt, sizeof prompt);
            size_t n_want = json_ints(json, "prompt_tokens", want, 256), n;
            int32_t *ids = tokenize(t, prompt, strlen(prompt), true, true, &n);
            ck_assert_msg(n == n_want, "%s prompt%d: %zu tokens, expected %zu", e->d_name, p, n, n_want);
            for (size_t k = 0; k < n; k++)
                ck_assert_msg(ids[k] == want[k], "%s prompt%d: token %zu is %d, expected %d", e->d_name, p, k, ids[k],
                              want[k]);
            free(ids);
            free(json);
        }
        ae_tokenizer_free(t);
        ae_gguf_close(g);
        n_models++;
    }
    closedir(d);
    ck_assert_msg(n_models >= 29, "only %zu reference models found in %s", n_models, ref_dir);
}
END_TEST

/* ---- Special tokens, BOS/EOS, pieces ------------------------------------------------------------------- */

struct special_row {
    const char *gguf;
    const char *text;
    bool add_special, parse_special;
    const char *pieces[8]; /* the expected tokens' vocabulary texts, NULL-terminated */
};

static const struct special_row special_rows[] = {
    /* SentencePiece: a leading space at the start and after a special token */
    {"tokenizer/ggml-vocab-llama-spm.gguf", "Hello", true, true, {"<s>", "\xE2\x96\x81Hello"}},
    {"tokenizer/ggml-vocab-llama-spm.gguf", "Hello", false, true, {"\xE2\x96\x81Hello"}},
    {"tokenizer/ggml-vocab-llama-spm.gguf", "<s>Hello</s>", false, true, {"<s>", "\xE2\x96\x81Hello", "</s>"}},
    {"tokenizer/ggml-vocab-llama-spm.gguf", "<s>", false, false, {"\xE2\x96\x81<", "s", ">"}},
    /* byte fallback for a character the vocabulary lacks */
    {"models/stories260K.gguf", "\xF0\x9F\xA6\x99", false, false,
     {"\xE2\x96\x81", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"}},
    /* phi-3 strips the whitespace after its special tokens (RSTRIP) */
    {"tokenizer/ggml-vocab-phi-3.gguf", "<|user|>\nHi", false, true, {"<|user|>", "\xE2\x96\x81Hi"}},
    /* GPT-2: no BOS; <|endoftext|> only with parse_special */
    {"tokenizer/ggml-vocab-gpt-2.gguf", "Hi<|endoftext|>", true, true, {"Hi", "<|endoftext|>"}},
    {"tokenizer/ggml-vocab-gpt-2.gguf", "<|endoftext|>", false, false, {"<", "|", "end", "of", "text", "|", ">"}},
    /* DeepSeek: BOS from add_bos_token; USER_DEFINED tokens are cut out even without parse_special */
    {"tokenizer/ggml-vocab-deepseek-coder.gguf", "a", true, false, {"<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81"
                                                                    "sentence\xEF\xBD\x9C>", "a"}},
    {"tokenizer/ggml-vocab-deepseek-llm.gguf", "s\xC3\xB8t", false, false, {"s", "\xC3\xB8", "t"}},
    /* WordPiece: [CLS] ... [SEP] */
    {"tokenizer/ggml-vocab-bert-bge.gguf", "Hello", true, false, {"[CLS]", "\xE2\x96\x81hello", "[SEP]"}},
};

START_TEST(test_special)
{
    const struct special_row *row = &special_rows[_i];
    ae_gguf *g;
    ae_tokenizer *t = load_tokenizer(row->gguf, &g);
    size_t n, n_want = 0;
    int32_t *ids = tokenize(t, row->text, strlen(row->text), row->add_special, row->parse_special, &n);
    while (row->pieces[n_want])
        n_want++;
    ck_assert_msg(n == n_want, "%s '%s': %zu tokens, expected %zu", row->gguf, row->text, n, n_want);
    for (size_t k = 0; k < n; k++) {
        size_t len;
        const char *s = ae_token_text(t, ids[k], &len);
        ck_assert_msg(len == strlen(row->pieces[k]) && memcmp(s, row->pieces[k], len) == 0,
                      "%s '%s': token %zu is '%.*s', expected '%s'", row->gguf, row->text, k, (int)len, s,
                      row->pieces[k]);
    }
    free(ids);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
}
END_TEST

struct detok_row {
    const char *gguf;
    int32_t ids[8];
    size_t n;
    bool remove_special, unparse_special;
    const char *text;
};

static const struct detok_row detok_rows[] = {
    /* SentencePiece: the leading space goes, unless a BOS was removed before it */
    {"models/stories260K.gguf", {403, 407, 261, 378}, 4, false, false, "Once upon a time"},
    {"models/stories260K.gguf", {1, 403, 407, 261, 378}, 5, false, false, " Once upon a time"},
    {"models/stories260K.gguf", {1, 403, 407, 261, 378}, 5, true, false, " Once upon a time"},
    {"models/stories260K.gguf", {1, 403, 407, 261, 378, 2}, 6, false, true, "<s> Once upon a time</s>"},
    {"models/stories260K.gguf", {3 + 0xE2, 3 + 0x82, 3 + 0xAC}, 3, false, false, "\xE2\x82\xAC"},
    /* GPT-2: bytes back through the unicode map, then llama.cpp's clean-up of " ," and " 's" */
    {"tokenizer/ggml-vocab-gpt-2.gguf", {15496, 837, 995, 705, 82}, 5, false, false, "Hello, world's"},
    {"tokenizer/ggml-vocab-gpt-2.gguf", {50256}, 1, false, false, ""},
    {"tokenizer/ggml-vocab-gpt-2.gguf", {50256}, 1, false, true, "<|endoftext|>"},
};

START_TEST(test_detokenize)
{
    const struct detok_row *row = &detok_rows[_i];
    ae_gguf *g;
    ae_tokenizer *t = load_tokenizer(row->gguf, &g);
    size_t n;
    const char *s = detokenize(t, row->ids, row->n, row->remove_special, row->unparse_special, &n);
    ck_assert_msg(n == strlen(row->text) && memcmp(s, row->text, n) == 0, "%s row %d: '%s', expected '%s'", row->gguf,
                  _i, s, row->text);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
}
END_TEST

START_TEST(test_api_edges)
{
    ae_gguf *g;
    ae_tokenizer *t = load_tokenizer("models/stories260K.gguf", &g);
    ae_error err;
    int32_t ids[2];
    size_t n = 0;
    /* too small an output: the count needed comes back */
    ck_assert_int_eq(ae_tokenize(t, "Once upon a time", 16, true, true, ids, 2, &n, &err), -1);
    ck_assert_uint_eq(n, 5);
    ck_assert_ptr_nonnull(strstr(err.msg, "needs 5 tokens"));
    ck_assert_int_eq(ids[0], 1);
    /* the empty text: only BOS */
    ck_assert_int_eq(ae_tokenize(t, "", 0, true, true, ids, 2, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    /* detokenize: out-of-range ids and short buffers are errors */
    char buf[4];
    int32_t bad[] = {403, 9999};
    ck_assert_int_eq(ae_detokenize(t, bad, 2, false, false, buf, sizeof buf, &n, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "9999"));
    int32_t long_ids[] = {403, 407};
    ck_assert_int_eq(ae_detokenize(t, long_ids, 2, false, false, buf, sizeof buf, &n, &err), -1);
    ck_assert_uint_eq(n, 9); /* "Once upon": the leading space of " Once" is dropped */
    /* text that is empty (BOS prints as nothing) needs no buffer at all (found by fuzzing under UBSan) */
    int32_t bos[] = {1};
    ck_assert_int_eq(ae_detokenize(t, bos, 1, false, false, NULL, 0, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    /* pieces */
    size_t len;
    const char *p = ae_token_to_piece(t, 403, false, 0, &len);
    ck_assert(len == 5 && !memcmp(p, " Once", 5));
    p = ae_token_to_piece(t, 403, false, 1, &len);
    ck_assert(len == 4 && !memcmp(p, "Once", 4));
    ae_token_to_piece(t, 1, false, 0, &len);
    ck_assert_uint_eq(len, 0);
    p = ae_token_to_piece(t, 1, true, 0, &len);
    ck_assert(len == 3 && !memcmp(p, "<s>", 3));
    ck_assert_ptr_null(ae_token_to_piece(t, -1, true, 0, &len));
    /* accessors */
    ck_assert_int_eq(ae_tokenizer_kind(t), AE_TOKENIZER_SPM);
    ck_assert_uint_eq(ae_tokenizer_n_vocab(t), 512);
    ck_assert_int_eq(ae_tokenizer_bos(t), 1);
    ck_assert_int_eq(ae_tokenizer_eos(t), 2);
    ck_assert_int_eq(ae_tokenizer_unk(t), 0);
    ck_assert_int_eq(ae_tokenizer_nl(t), 13); /* <0x0A> */
    ck_assert(ae_tokenizer_add_bos(t) && !ae_tokenizer_add_eos(t));
    ck_assert(ae_tokenizer_is_eog(t, 2) && !ae_tokenizer_is_eog(t, 1));
    ck_assert_int_eq(ae_token_find(t, "\xE2\x96\x81Once", 7), 403);
    ck_assert_int_eq(ae_token_find(t, "no such token", 13), AE_TOKEN_NULL);
    ae_tokenizer_free(t);
    ae_gguf_close(g);

    t = load_tokenizer("tokenizer/ggml-vocab-gpt-2.gguf", &g);
    ck_assert_int_eq(ae_tokenizer_kind(t), AE_TOKENIZER_BPE);
    ck_assert(!ae_tokenizer_add_bos(t));
    ck_assert_int_eq(ae_tokenizer_eot(t), 50256);
    ck_assert(ae_tokenizer_is_eog(t, 50256));
    ck_assert_int_eq(ae_tokenizer_nl(t), 198); /* "Ċ" */
    ae_tokenizer_free(t);
    ae_gguf_close(g);

    /* vocabularies without test vectors still load */
    t = load_tokenizer("tokenizer/ggml-vocab-baichuan.gguf", &g);
    ck_assert_int_eq(ae_tokenizer_kind(t), AE_TOKENIZER_SPM);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
    t = load_tokenizer("tokenizer/ggml-vocab-gpt-neox.gguf", &g);
    ck_assert_str_eq(ae_tokenizer_pre(t), "default");
    ae_tokenizer_free(t);
    ae_gguf_close(g);
}
END_TEST

/* ---- Unicode tables and the byte map ----------------------------------------------------------------- */

static const struct {
    uint32_t cp;
    uint16_t flags;
} flag_rows[] = {
    {'A', AE_UCD_LETTER},
    {'5', AE_UCD_NUMBER},
    {'!', AE_UCD_PUNCT},
    {'$', AE_UCD_SYMBOL},
    {' ', AE_UCD_SEPARATOR | AE_UCD_WHITESPACE},
    {'\n', AE_UCD_CONTROL | AE_UCD_WHITESPACE},
    {0x1C, AE_UCD_CONTROL},
    {0x85, AE_UCD_CONTROL | AE_UCD_WHITESPACE},
    {0x3000, AE_UCD_SEPARATOR | AE_UCD_WHITESPACE},
    {0x0301, AE_UCD_MARK},
    {0x0436, AE_UCD_LETTER},
    {0x4E00, AE_UCD_LETTER},
    {0x2163, AE_UCD_NUMBER},
    {0x1F999, AE_UCD_SYMBOL},
    {0x200D, AE_UCD_CONTROL},
    {0x0378, AE_UCD_UNDEFINED},
    {0x20000, AE_UCD_LETTER},
    {0x10FFFF, AE_UCD_UNDEFINED},
    {0x110000, AE_UCD_UNDEFINED},
};

START_TEST(test_unicode)
{
    for (size_t i = 0; i < sizeof flag_rows / sizeof flag_rows[0]; i++)
        ck_assert_msg(ae_ucd_flags(flag_rows[i].cp) == flag_rows[i].flags, "U+%04X: flags 0x%x, expected 0x%x",
                      flag_rows[i].cp, ae_ucd_flags(flag_rows[i].cp), flag_rows[i].flags);
    ck_assert_uint_eq(ae_ucd_lower('A'), 'a');
    ck_assert_uint_eq(ae_ucd_lower('a'), 'a');
    ck_assert_uint_eq(ae_ucd_lower(0x0416), 0x0436);
    ck_assert_uint_eq(ae_ucd_lower(0x1E9E), 0xDF);
    ck_assert_uint_eq(ae_ucd_nfd_first_of(0xE9), 'e');
    ck_assert_uint_eq(ae_ucd_nfd_first_of(0x1EED), 'u');
    ck_assert_uint_eq(ae_ucd_nfd_first_of(0xAC00), 0x1100);
    ck_assert_uint_eq(ae_ucd_nfd_first_of('a'), 'a');

    static const struct {
        const char *s;
        size_t n;
        uint32_t cp;
        size_t used;
    } utf8_rows[] = {
        {"a", 1, 'a', 1},
        {"\xC3\xA9", 2, 0xE9, 2},
        {"\xE2\x96\x81", 3, 0x2581, 3},
        {"\xF0\x9F\xA6\x99", 4, 0x1F999, 4},
        {"\x80", 1, 0xFFFD, 1},          /* stray continuation byte */
        {"\xE2\x96", 2, 0xFFFD, 1},      /* truncated */
        {"\xC3(", 2, 0xFFFD, 1},         /* bad continuation */
        {"\xF4\x90\x80\x80", 4, 0xFFFD, 1}, /* past U+10FFFF */
        {"\xFF", 1, 0xFFFD, 1},
    };
    for (size_t i = 0; i < sizeof utf8_rows / sizeof utf8_rows[0]; i++) {
        size_t used;
        uint32_t cp = ae_tok_utf8_decode((const uint8_t *)utf8_rows[i].s, utf8_rows[i].n, &used);
        ck_assert_msg(cp == utf8_rows[i].cp && used == utf8_rows[i].used, "utf8 row %zu: U+%04X/%zu", i, cp, used);
    }
    for (int b = 0; b < 256; b++)
        ck_assert_int_eq(ae_tok_cp_to_byte(ae_tok_byte_to_cp((uint8_t)b)), b);
    ck_assert_uint_eq(ae_tok_byte_to_cp(' '), 0x120);  /* "Ġ" */
    ck_assert_uint_eq(ae_tok_byte_to_cp('\n'), 0x10A); /* "Ċ" */
    ck_assert_uint_eq(ae_tok_byte_to_cp(0xAD), 0x143);
    ck_assert_int_eq(ae_tok_cp_to_byte(0x144), -1);
}
END_TEST

/* The pre-tokenizer splits, as word lengths in codepoints. The first rows are made by hand; the rest
 * come from tests/unit/gen_pretok_rows.py 7 6, which applies llama.cpp's regex lists with Python's regex
 * engine (they cover the split sets that have no vocabulary here: Llama 3, Qwen2, DeepSeek V3, ...). */
static const struct {
    enum ae_tok_split split;
    const char *text;
    const char *words;
} split_rows[] = {
    {AE_TOK_SPLIT_GPT2, "Hello world", "5 6"},
    {AE_TOK_SPLIT_GPT2, "it's  3 cats!!\n", "2 2 1 2 5 2 1"},
    {AE_TOK_SPLIT_LLAMA3, "I'M 12345 ok\r\n\n  x", "1 2 1 3 2 3 3 1 2"},
    {AE_TOK_SPLIT_QWEN2, "a 123", "1 1 1 1 1"},
    {AE_TOK_SPLIT_DEFAULT, "a,b 1234 $$", "1 1 1 1 3 1 1 2"},
    {AE_TOK_SPLIT_STARCODER, "x12 y", "1 1 1 2"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "Hi \xE4\xBD\xA0\xE5\xA5\xBD 42  ", "2 1 2 1 2 2"},
    {AE_TOK_SPLIT_CHAMELEON, "<sentinel:3>IMGIMGABZ  a", "1 8 1 1 1 9 2 1"}, /* later regexes cut earlier matches */
    {AE_TOK_SPLIT_DEFAULT, "9;\314\201c9\341\203\220Y)\357\274\241", "1 1 1 1 1 2 1 1"},
    {AE_TOK_SPLIT_DEFAULT, "\316\261E c", "2 2"},
    {AE_TOK_SPLIT_DEFAULT, "[1dX\344\270\200\\Z\355\236\243bm", "1 1 3 1 4"},
    {AE_TOK_SPLIT_DEFAULT, "\330\214\357\274\241Z\357\274\201\357\274\241;cVb\351\276\245Yr[0", "1 2 1 1 1 6 1 1"},
    {AE_TOK_SPLIT_DEFAULT, "a\343\202\242v\352\260\200\340\265\254'0\357\274\217\343\202\242\342\234\205S+", "4 1 1 1 1 1 1 1 1"},
    {AE_TOK_SPLIT_DEFAULT, "\345\267\245\341\232\2000\355\236\243Z", "1 1 1 2"},
    {AE_TOK_SPLIT_GPT2, "R\302\255\340\265\254\341\202\240]'llm\302\265\357\274\241~(e ", "1 1 1 1 2 5 2 1 1"},
    {AE_TOK_SPLIT_GPT2, "\177'REDa\357\274\201e", "2 4 1 1"},
    {AE_TOK_SPLIT_GPT2, "\302\273\"\342\200\212|T\343\200\2029a\341\276\276[ IMGIMGABCZ", "2 1 1 1 1 1 2 1 11"},
    {AE_TOK_SPLIT_GPT2, "9\302\253[a\341\237\213 IMGIMGAZ\351\276\245\343\202\242", "1 2 1 1 11"},
    {AE_TOK_SPLIT_GPT2, "\"\001$\342\200\246\302\255\357\274\217~1X", "7 1 1"},
    {AE_TOK_SPLIT_GPT2, "\303\227\177\341\236\2230Z\342\200\250\356\200\200V", "2 1 1 1 1 1 1"},
    {AE_TOK_SPLIT_LLAMA3, "\357\274\201\340\265\254|t\342\200\200.\341\237\213#Z\303\200%\011\357\274\214 ", "1 1 2 1 3 2 1 1 1 1"},
    {AE_TOK_SPLIT_LLAMA3, "Zv    TX\342\200\257 ;:\302\255a", "2 3 3 1 4 1"},
    {AE_TOK_SPLIT_LLAMA3, "|<\345\267\245SZ^", "2 3 1"},
    {AE_TOK_SPLIT_LLAMA3, "S\302\205@&\340\265\254-l9b\0159l", "1 1 2 1 2 1 1 1 1 1"},
    {AE_TOK_SPLIT_LLAMA3, "lX\302\277\357\275\232'\012tb1[\341\202\240*\357\274\214\355\236\243", "2 2 2 2 1 2 2 1"},
    {AE_TOK_SPLIT_LLAMA3, "c\342\205\243\341\276\276\340\245\244\314\210\340\245\251\342\200\257X~", "1 1 1 2 1 2 1"},
    {AE_TOK_SPLIT_QWEN2, "\352\260\200:;<:0\302\241\360\237\232\200<ZS1e`", "1 4 1 3 2 1 1 1"},
    {AE_TOK_SPLIT_QWEN2, "9\"\342\200\230X0a", "1 2 1 1 1"},
    {AE_TOK_SPLIT_QWEN2, "9\341\203\220Z)\343\200\20109e\343\200\201,9\360\237\232\200 ", "1 2 2 1 1 1 2 1 1 1"},
    {AE_TOK_SPLIT_QWEN2, "\342\200\235)\303\227b \302\277\302\265\303\267\302\241", "3 1 2 1 2"},
    {AE_TOK_SPLIT_QWEN2, "b00\343\200\200\"\342\200\257\012\303\267", "1 1 1 1 1 2 1"},
    {AE_TOK_SPLIT_QWEN2, "\342\204\252ZR\325\226(1", "4 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "0IMGIMGABCDEZ\325\226e\342\200\215X\177\011\342\204\252) &", "1 12 1 1 1 1 1 1 1 1 2"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "\341\202\240\346\210\221'RE\307\205d\360\237\232\200m", "1 1 1 2 1 1 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "123456IMGIMGABCDEZtd<\342\200\257Mr\342\204\252\302\273&\342\200\2501", "6 14 1 3 1 1 1 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "\015\012S\303\277\011", "1 1 1 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "\001\342\200\235#|\342\200\206$)", "1 1 2 3"},
    {AE_TOK_SPLIT_DEEPSEEK_LLM, "V0M\303\277T", "1 1 1 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_CODER, "R\302\241\333\224\357\274\214a\303\267\314\210#\342\200\215", "1 3 1 2 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_CODER, "\341\236\266a/ 's\341\232\200", "1 1 1 2 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_CODER, "\303\267\015_\015\012\360\237\232\200Dc", "1 1 1 1 1 1 2"},
    {AE_TOK_SPLIT_DEEPSEEK_CODER, "\303\200<\342\201\237b\342\200\206 \011c19", "1 1 2 2 2 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK_CODER, "\302\265\314\2101\357\274\214\342\200\246\303\227\341\236\200$ \345\267\245\345\267\245XZ", "1 1 1 1 1 1 1 1 1 2 2"},
    {AE_TOK_SPLIT_DEEPSEEK_CODER, "\342\200\206\314\2010\320\226", "2 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK3_LLM, "_tE1 E", "3 1 2"},
    {AE_TOK_SPLIT_DEEPSEEK3_LLM, "\307\205dIMGIMGAZ\357\275\232L\011\346\203\263[", "12 1 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK3_LLM, "Z\342\200\257%\303\251\341\236\266\357\274\241", "1 1 1 3"},
    {AE_TOK_SPLIT_DEEPSEEK3_LLM, "[\307\205X\341\202\2409\320\226\342\204\246Y`'ll'\343\200\202", "1 3 1 3 2 2 2"},
    {AE_TOK_SPLIT_DEEPSEEK3_LLM, "'ll9\0120", "3 1 1 1"},
    {AE_TOK_SPLIT_DEEPSEEK3_LLM, "\340\245\244\342\200\206a\351\276\245ZL\340\265\254\342\204\252\325\226\351\276\245\302\241", "1 2 1 2 1 2 1 1"},
    {AE_TOK_SPLIT_FALCON, "\352\260\200Y Ss", "2 3"},
    {AE_TOK_SPLIT_FALCON, "  Z\316\261}", "1 3 1"},
    {AE_TOK_SPLIT_FALCON, "1IMGIMGABCDEZ0{L\357\274\214\316\261\343\200\202\341\276\276r\001s", "1 12 1 1 1 1 1 1 2 1 1"},
    {AE_TOK_SPLIT_FALCON, "\342\204\246\341\202\240\303\267\316\261 \177\321\211\011\352\260\200r|", "2 1 1 2 1 1 2 1"},
    {AE_TOK_SPLIT_FALCON, "@b:{m9", "1 1 2 1 1"},
    {AE_TOK_SPLIT_FALCON, "d]9E\341\237\213E 'sb'll \342\200\200\342\200\215\341\236\266)", "1 1 1 1 1 1 1 1 2 1 2 1 1 2 1"},
    {AE_TOK_SPLIT_STARCODER, " Z\302\265V\343\200\200Y", "4 1 1"},
    {AE_TOK_SPLIT_STARCODER, "\302\277 \341\236\223m \302\205^\341\276\276=!", "1 3 1 1 1 1 2"},
    {AE_TOK_SPLIT_STARCODER, "T&MX\342\200\203)Y!\344\270\200\303\251", "1 1 2 1 1 1 1 2"},
    {AE_TOK_SPLIT_STARCODER, "\302\205Y.d\342\204\252\333\224R\341\276\27609123456", "1 1 1 2 1 2 1 1 1 1 1 1 1 1"},
    {AE_TOK_SPLIT_STARCODER, "0b\012'a'RE'", "1 1 1 1 1 1 2 1"},
    {AE_TOK_SPLIT_STARCODER, "IMGIMGABCZX\\\340\245\251\011=9\341\203\220", "11 1 1 1 1 1 1"},
    {AE_TOK_SPLIT_BLOOM, "\343\202\242\302\273\356\200\200LcSY\342\205\243'\\9\015", "11 1"},
    {AE_TOK_SPLIT_BLOOM, "\360\237\232\200c\011b", "2 1 1"},
    {AE_TOK_SPLIT_BLOOM, "V1\012b~c!\344\270\200@\015\333\224Xb", "2 1 3 1 2 2 2"},
    {AE_TOK_SPLIT_BLOOM, "\302\240d9 \012c'rV\330\214v\325\226", "1 2 2 4 1 2"},
    {AE_TOK_SPLIT_BLOOM, "r|\307\205\331\243\015'#", "1 1 2 1 2"},
    {AE_TOK_SPLIT_BLOOM, "  XY", "1 3"},
    {AE_TOK_SPLIT_VIKING, "\344\270\200S\341\276\276\303\227D|1\341\236\200\314\201^\341\236\200\302\273", "5 1 1 5"},
    {AE_TOK_SPLIT_VIKING, ":\316\261v\342\205\243vM\"T\302\205\342\200\212\360\237\232\200Z", "3 1 4 2 2"},
    {AE_TOK_SPLIT_VIKING, "#XXX9\330\214\342\200\257 ^ ", "4 1 2 2 1"},
    {AE_TOK_SPLIT_VIKING, "b\341\236\223-\316\261", "4"},
    {AE_TOK_SPLIT_VIKING, "t\342\200\230D\001Rb\303\251s \015|a\012)", "8 3 1 2"},
    {AE_TOK_SPLIT_VIKING, "\345\267\245lD9Vv&'a", "3 1 5"},
    {AE_TOK_SPLIT_CHAMELEON, "-b\303\227S\307\205\314\210r \316\261", "1 1 1 2 1 1 2"},
    {AE_TOK_SPLIT_CHAMELEON, "X\012c0", "1 1 1 1"},
    {AE_TOK_SPLIT_CHAMELEON, "\357\275\232a:ZeE\360\237\246\231lb\357\274\241", "2 1 3 1 3"},
    {AE_TOK_SPLIT_CHAMELEON, "<sentinel:12> \341\236\200\342\200\200 's\342\200\246/IMGIMGAZL\342\200\203\302\2739", "1 8 1 1 1 1 2 2 1 1 1 1 8 1 1 1 1"},
    {AE_TOK_SPLIT_CHAMELEON, "\342\200\206\340\245\244\342\200\2151b\342\200\200\341\276\276\330\214", "1 1 1 1 1 1 1 1"},
    {AE_TOK_SPLIT_CHAMELEON, "\342\200\250\356\200\200\316\261Z\320\226<sentinel:12>\316\261\343\201\202Y\302\262", "1 1 3 1 8 1 1 1 1 3 1"},
};

START_TEST(test_pretokenize)
{
    for (size_t r = 0; r < sizeof split_rows / sizeof split_rows[0]; r++) {
        const char *s = split_rows[r].text;
        size_t len = strlen(s), n = 0, words[256], scratch[256], n_words;
        uint32_t cp[256];
        uint16_t fl[256];
        ck_assert(len < 256);
        for (size_t off = 0, used; off < len; off += used, n++) {
            cp[n] = ae_tok_utf8_decode((const uint8_t *)s + off, len - off, &used);
            fl[n] = ae_ucd_flags(cp[n]);
        }
        ae_tok_pretokenize(split_rows[r].split, cp, fl, n, words, scratch, &n_words);
        char got[1024] = "";
        for (size_t i = 0, k = 0; i < n_words; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? " %zu" : "%zu", words[i]);
        ck_assert_msg(!strcmp(got, split_rows[r].words), "split row %zu: words %s, expected %s", r, got,
                      split_rows[r].words);
    }
}
END_TEST

/* ---- Broken tokenizer metadata --------------------------------------------------------------------- */

enum meta_kind { META_NONE, META_SPM, META_BPE };

struct meta_row {
    enum meta_kind kind;
    const char *model; /* tokenizer.ggml.model (NULL: absent) */
    const char *pre;   /* tokenizer.ggml.pre (NULL: absent) */
    bool merges;
    bool scores_short;
    bool tokens_wrong_type;
    const char *error; /* expected in the message (NULL: loads) */
};

static const struct meta_row meta_rows[] = {
    {META_NONE, NULL, NULL, false, false, false, "no tokenizer in the file"},
    {META_SPM, "t5x", NULL, false, false, false, "unknown tokenizer model 't5x'"},
    {META_SPM, "no_vocab", NULL, false, false, false, "has no vocabulary"},
    {META_SPM, "t5", NULL, false, false, false, "tokenizer model 't5' is not supported yet"},
    {META_BPE, "gpt2", "no-such-pre", true, false, false, "unknown pre-tokenizer type 'no-such-pre'"},
    {META_BPE, "gpt2", "tekken", true, false, false, "'tekken' is not supported"},
    {META_BPE, "gpt2", "llama-bpe", false, false, false, "tokenizer.ggml.merges' is missing"},
    {META_SPM, "llama", NULL, false, true, false, "expected 4 scores"},
    {META_SPM, "llama", NULL, false, false, true, "tokenizer.ggml.tokens': wrong element type"},
    {META_SPM, "llama", NULL, false, false, false, NULL},
    {META_BPE, "gpt2", "qwen2", true, false, false, NULL},
};

/* A vocabulary-only GGUF in memory (malloc'd bytes in *data). */
static ae_gguf *meta_gguf(const struct meta_row *row, char **data)
{
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_gguf_writer_add_str(w, "general.architecture", "llama");
    if (row->model)
        ae_gguf_writer_add_str(w, "tokenizer.ggml.model", row->model);
    if (row->pre)
        ae_gguf_writer_add_str(w, "tokenizer.ggml.pre", row->pre);
    if (row->kind != META_NONE) {
        static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a"};
        static const char *const bpe_tokens[] = {"a", "b", "ab", "<|endoftext|>"};
        if (row->tokens_wrong_type) {
            int32_t v[4] = {0};
            ae_gguf_writer_add_arr(w, "tokenizer.ggml.tokens", AE_GGUF_I32, 4, v);
        } else {
            ae_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", 4, row->kind == META_SPM ? spm_tokens : bpe_tokens);
        }
        float scores[4] = {0, 0, 0, -1};
        ae_gguf_writer_add_arr(w, "tokenizer.ggml.scores", AE_GGUF_F32, row->scores_short ? 3 : 4, scores);
        if (row->merges) {
            static const char *const merges[] = {"a b"};
            ae_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", 1, merges);
        }
    }
    size_t size = 0;
    FILE *f = open_memstream(data, &size);
    ae_error err;
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_gguf_writer_destroy(w);
    ae_gguf *g;
    ck_assert_msg(ae_gguf_open_memory(&g, *data, size, "meta.gguf", &err) == 0, "%s", err.msg);
    return g;
}

START_TEST(test_bad_metadata)
{
    const struct meta_row *row = &meta_rows[_i];
    char *data = NULL;
    ae_gguf *g = meta_gguf(row, &data);
    ae_tokenizer *t = NULL;
    ae_error err;
    int rc = ae_tokenizer_load(&t, g, &err);
    if (row->error) {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err.msg, row->error) && strstr(err.msg, "meta.gguf"), "message '%s' lacks '%s'", err.msg,
                      row->error);
    } else {
        ck_assert_msg(rc == 0, "%s", err.msg);
        size_t n;
        int32_t *ids = tokenize(t, "ab", 2, false, false, &n);
        if (row->kind == META_BPE) { /* "a" + "b" merge into "ab" */
            ck_assert_uint_eq(n, 1);
            ck_assert_int_eq(ids[0], 2);
        }
        free(ids);
        ae_tokenizer_free(t);
    }
    ae_gguf_close(g);
    free(data);
}
END_TEST

/* ---- Hostile vocabularies ------------------------------------------------------------------------ */

/* Vocabularies and texts that made tokenizing quadratic or worse (found while fuzzing,
 * tests/fuzz/fuzz_tokenizer*.c). A row with long_token gets one extra token of that many bytes (U+2581,
 * then 'a's); the text is text_repeat copies of text; the result must be expect_n tokens, the first
 * first_id and the rest rest_id, well inside the test's time limit (the old code took minutes). */
struct hostile_row {
    const char *what;
    const char *model;
    const char *pre;             /* tokenizer.ggml.pre (NULL: absent); gpt2 rows get an empty merge list */
    const char *const tokens[4]; /* NULL-terminated */
    size_t long_token;
    const char *text;
    size_t text_repeat;
    size_t expect_n;
    int32_t first_id, rest_id;
};

static const struct hostile_row hostile_rows[] = {
    /* WordPiece tried every length up to the longest token at every position, hashing each candidate
     * anew: cubic in the word's length, minutes for this word. */
    {"wordpiece long word, long token", "bert", NULL, {"\xE2\x96\x81" "a", "a", NULL}, 20000, "a", 8000, 8000, 0, 1},
    /* Llama 3's \p{N}{1,3} and Qwen2's \p{N} scanned the whole run of digits at every position */
    {"qwen2 long number", "gpt2", "qwen2", {"1", NULL}, 0, "1", 1000000, 1000000, 0, 0},
    {"llama3 long number", "gpt2", "llama3", {"111", NULL}, 0, "1", 999999, 333333, 0, 0},
    {"deepseek-v3 long number", "gpt2", "deepseek-v3", {"1", NULL}, 0, "1", 999999, 999999, 0, 0},
};

START_TEST(test_hostile)
{
    const struct hostile_row *row = &hostile_rows[_i];
    const char *tokens[8];
    size_t n_tokens = 0;
    for (; row->tokens[n_tokens]; n_tokens++)
        tokens[n_tokens] = row->tokens[n_tokens];
    char *long_token = NULL;
    if (row->long_token) {
        long_token = malloc(row->long_token + 1);
        ck_assert(long_token != NULL);
        memcpy(long_token, "\xE2\x96\x81", 3);
        memset(long_token + 3, 'a', row->long_token - 3);
        long_token[row->long_token] = 0;
        tokens[n_tokens++] = long_token;
    }
    ae_gguf_writer *w = ae_gguf_writer_create();
    ae_gguf_writer_add_str(w, "tokenizer.ggml.model", row->model);
    if (row->pre)
        ae_gguf_writer_add_str(w, "tokenizer.ggml.pre", row->pre);
    ae_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", n_tokens, tokens);
    if (!strcmp(row->model, "gpt2"))
        ae_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", 0, NULL);
    char *data = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&data, &size);
    ae_error err;
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_gguf_writer_destroy(w);
    free(long_token);
    ae_gguf *g;
    ck_assert_msg(ae_gguf_open_memory(&g, data, size, "hostile.gguf", &err) == 0, "%s", err.msg);
    ae_tokenizer *t = NULL;
    ck_assert_msg(ae_tokenizer_load(&t, g, &err) == 0, "%s: %s", row->what, err.msg);
    size_t tl = strlen(row->text), len = tl * row->text_repeat;
    char *text = malloc(len + 1);
    ck_assert(text != NULL);
    for (size_t i = 0; i < row->text_repeat; i++)
        memcpy(text + i * tl, row->text, tl);
    size_t n;
    int32_t *ids = tokenize(t, text, len, false, false, &n);
    ck_assert_msg(n == row->expect_n, "%s: %zu tokens, expected %zu", row->what, n, row->expect_n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ids[i], i ? row->rest_id : row->first_id);
    free(ids);
    free(text);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
    free(data);
}
END_TEST

/* Texts that took time quadratic in their length with a real vocabulary; each must tokenize well inside
 * the test's time limit and detokenize back to itself. */
static const struct slow_row {
    const char *what;
    const char *vocab;
    const char *unit;   /* repeated repeat times, then tail */
    size_t repeat;
    const char *tail;
} slow_rows[] = {
    /* DeepSeek LLM's \s+$ was tried at every position of a whitespace run that does not end the piece */
    {"deepseek-llm spaces before a control character", "tokenizer/ggml-vocab-deepseek-llm.gguf", " ", 1000000, "\x01"},
};

START_TEST(test_slow_text)
{
    const struct slow_row *row = &slow_rows[_i];
    ae_gguf *g;
    ae_tokenizer *t = load_tokenizer(row->vocab, &g);
    size_t ul = strlen(row->unit), tl = strlen(row->tail), len = ul * row->repeat + tl;
    char *text = malloc(len);
    ck_assert(text != NULL);
    for (size_t i = 0; i < row->repeat; i++)
        memcpy(text + i * ul, row->unit, ul);
    memcpy(text + len - tl, row->tail, tl);
    size_t n;
    int32_t *ids = tokenize(t, text, len, false, false, &n);
    char *back = malloc(len + 1);
    ck_assert(back != NULL);
    size_t got = 0;
    ae_error err;
    ck_assert_msg(ae_detokenize(t, ids, n, false, false, back, len + 1, &got, &err) == 0, "%s", err.msg);
    ck_assert_msg(got == len && memcmp(back, text, len) == 0, "%s: the text does not come back", row->what);
    free(back);
    free(ids);
    free(text);
    ae_tokenizer_free(t);
    ae_gguf_close(g);
}
END_TEST

/* ---- aetherc tokenize -------------------------------------------------------------------------------- */

struct cmd_row {
    const char *args[6]; /* after "tokenize"; "@" stands for stories260K.gguf */
    int status;
    const char *out;     /* expected stdout (NULL: not checked) */
    const char *err;     /* expected in stderr (NULL: not checked) */
};

static const struct cmd_row cmd_rows[] = {
    {{"@", "Once upon a time", "--ids"}, 0, "[1, 403, 407, 261, 378]\n", NULL},
    {{"--ids", "--no-bos", "@", "Once"}, 0, "[403]\n", NULL},
    {{"@", "Once upon"}, 0, "     1 -> '<s>'\n   403 -> ' Once'\n   407 -> ' upon'\n", NULL},
    {{"@", "<s>", "--ids", "--no-bos"}, 0, "[1]\n", NULL},
    {{"@", "<s>", "--ids", "--no-bos", "--no-parse-special"}, 0, "[410, 504, 419, 505]\n", NULL}, /* "▁", "<", "s", ">" */
    {{"@", "--ids", "--", "-x"}, 0, NULL, NULL},
    {{"@"}, 2, "", "expected MODEL and TEXT"},
    {{"@", "a", "b"}, 2, "", "unexpected argument 'b'"},
    {{"@", "a", "--bogus"}, 2, "", "unknown flag '--bogus'"},
    {{"/no/such/model.gguf", "a"}, 1, "", "/no/such/model.gguf"},
    {{"--help"}, 0, NULL, NULL},
};

/* Runs cmd_tokenize with stdout and stderr sent to files; returns its status. */
static int run_cmd(const struct cmd_row *row, char *out, size_t out_cap, char *errbuf, size_t err_cap)
{
    char *argv[8] = {"tokenize"};
    int argc = 1;
    char model[4096];
    snprintf(model, sizeof model, "%s", test_shared_path("models/stories260K.gguf"));
    for (int i = 0; i < 6 && row->args[i]; i++)
        argv[argc++] = !strcmp(row->args[i], "@") ? model : (char *)row->args[i];
    char out_path[] = "/tmp/check_tokenizer_out_XXXXXX", err_path[] = "/tmp/check_tokenizer_err_XXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path);
    ck_assert(fo >= 0 && fe >= 0);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fo, 1);
    dup2(fe, 2);
    int status = cmd_tokenize(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    ssize_t n = pread(fo, out, out_cap - 1, 0);
    out[n > 0 ? n : 0] = 0;
    n = pread(fe, errbuf, err_cap - 1, 0);
    errbuf[n > 0 ? n : 0] = 0;
    close(fo);
    close(fe);
    unlink(out_path);
    unlink(err_path);
    return status;
}

START_TEST(test_cmd)
{
    const struct cmd_row *row = &cmd_rows[_i];
    char out[4096], err[4096];
    int status = run_cmd(row, out, sizeof out, err, sizeof err);
    ck_assert_msg(status == row->status, "row %d: status %d, expected %d (stderr: %s)", _i, status, row->status, err);
    if (row->out)
        ck_assert_msg(!strcmp(out, row->out), "row %d: stdout '%s', expected '%s'", _i, out, row->out);
    if (row->err)
        ck_assert_msg(strstr(err, row->err) != NULL, "row %d: stderr '%s' lacks '%s'", _i, err, row->err);
    if (row->status == 2)
        ck_assert_ptr_nonnull(strstr(err, "usage: aetherc tokenize"));
}
END_TEST

/* A model file without tokenizer keys, and one with an unknown pre-tokenizer, through the command. */
START_TEST(test_cmd_bad_models)
{
    static const struct meta_row rows[] = {
        {META_NONE, NULL, NULL, false, false, false, "no tokenizer in the file"},
        {META_BPE, "gpt2", "no-such-pre", true, false, false, "unknown pre-tokenizer type 'no-such-pre'"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *data = NULL;
        ae_gguf *g = meta_gguf(&rows[i], &data);
        char path[] = "/tmp/check_tokenizer_model_XXXXXX";
        int fd = mkstemp(path);
        ck_assert(fd >= 0);
        ck_assert(write(fd, g->base, g->size) == (ssize_t)g->size);
        close(fd);
        ae_gguf_close(g);
        free(data);
        struct cmd_row row = {{path, "text"}, 1, "", rows[i].error};
        char out[4096], err[4096];
        int status = run_cmd(&row, out, sizeof out, err, sizeof err);
        unlink(path);
        ck_assert_msg(status == 1 && strstr(err, rows[i].error) && !strncmp(err, "aetherc: ", 9),
                      "status %d, stderr '%s'", status, err);
    }
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_vectors, 0, N_VOCAB_ROWS);
    tcase_add_test(tc, test_reference_prompts);
    suite_add_tcase(s, tc);
    tc = tcase_create("rules");
    tcase_add_loop_test(tc, test_special, 0, (int)(sizeof special_rows / sizeof special_rows[0]));
    tcase_add_loop_test(tc, test_detokenize, 0, (int)(sizeof detok_rows / sizeof detok_rows[0]));
    tcase_add_test(tc, test_api_edges);
    tcase_add_test(tc, test_unicode);
    tcase_add_test(tc, test_pretokenize);
    tcase_add_loop_test(tc, test_bad_metadata, 0, (int)(sizeof meta_rows / sizeof meta_rows[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_hostile, 0, (int)(sizeof hostile_rows / sizeof hostile_rows[0]));
    tcase_add_loop_test(tc, test_slow_text, 0, (int)(sizeof slow_rows / sizeof slow_rows[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("command");
    tcase_add_loop_test(tc, test_cmd, 0, (int)(sizeof cmd_rows / sizeof cmd_rows[0]));
    tcase_add_test(tc, test_cmd_bad_models);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tokenizer_suite());
}
