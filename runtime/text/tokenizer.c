/* The tokenizer: built from a GGUF file's tokenizer.ggml.* keys, driving the per-model encoders.
 *
 * Loading follows llama.cpp's llama_vocab::load: the model type picks defaults (special ids,
 * add_bos, the SentencePiece space prefix, the BPE clean-up), tokenizer.ggml.pre picks the BPE
 * pre-tokenizer, keys in the file override the defaults, and a few tokens are recognized by their
 * text (end-of-turn, fill-in-the-middle) and marked CONTROL as llama.cpp marks them. Everything
 * that decoding needs per token (the piece bytes) is computed here once, so the token loop only
 * copies bytes.
 *
 * Tokenizing cuts special tokens out of the text first (llama.cpp's tokenizer_st_partition), then
 * hands each plain piece to tok_spm.c, tok_bpe.c or tok_wpm.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "tok_unicode.h"

/* ---- Small pieces shared by the encoders ---------------------------------------------------------- */

uint32_t ae_tok_hash(uint32_t h, const void *s, size_t n)
{
    const uint8_t *p = s;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

void ae_tok_ids_push(struct ae_tok_ids *o, int32_t id)
{
    if (!o->ok)
        return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            o->ok = false;
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
}

static int map_init(struct ae_tok_map *m, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    m->mask = (uint32_t)(cap - 1);
    m->hash = calloc(cap, sizeof *m->hash);
    m->slot = calloc(cap, sizeof *m->slot);
    return (m->hash && m->slot) ? 0 : -1;
}

static void map_free(struct ae_tok_map *m)
{
    free(m->hash);
    free(m->slot);
}

static bool token_is(const ae_tokenizer *t, int32_t id, const void *s, size_t n)
{
    size_t len;
    const char *p = ae_tok_text_of(t, id, &len);
    return len == n && memcmp(p, s, n) == 0;
}

int32_t ae_tok_lookup(const ae_tokenizer *t, const void *s, size_t n)
{
    uint32_t h = ae_tok_hash(AE_TOK_FNV_SEED, s, n);
    for (uint32_t i = h & t->vocab.mask;; i = (i + 1) & t->vocab.mask) {
        uint32_t slot = t->vocab.slot[i];
        if (slot == 0)
            return AE_TOKEN_NULL;
        if (t->vocab.hash[i] == h && token_is(t, (int32_t)(slot - 1), s, n))
            return (int32_t)(slot - 1);
    }
}

/* Adds token id to the vocabulary map; a repeated text now maps to id (the last one wins). */
static void vocab_insert(ae_tokenizer *t, int32_t id)
{
    size_t n;
    const char *s = ae_tok_text_of(t, id, &n);
    uint32_t h = ae_tok_hash(AE_TOK_FNV_SEED, s, n);
    uint32_t i = h & t->vocab.mask;
    for (; t->vocab.slot[i]; i = (i + 1) & t->vocab.mask)
        if (t->vocab.hash[i] == h && token_is(t, (int32_t)(t->vocab.slot[i] - 1), s, n))
            break;
    t->vocab.hash[i] = h;
    t->vocab.slot[i] = (uint32_t)id + 1;
}

static bool merge_is(const ae_tokenizer *t, uint32_t m, const char *l, size_t ln, const char *r, size_t rn)
{
    const char *s = t->merge_text + t->merge_off[m];
    size_t n = (size_t)(t->merge_off[m + 1] - t->merge_off[m]);
    return t->merge_split[m] == ln && n == ln + 1 + rn && memcmp(s, l, ln) == 0 && memcmp(s + ln + 1, r, rn) == 0;
}

int32_t ae_tok_merge_rank(const ae_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn)
{
    if (t->n_merges == 0)
        return -1;
    uint32_t h = ae_tok_hash(ae_tok_hash(ae_tok_hash(AE_TOK_FNV_SEED, l, ln), " ", 1), r, rn);
    for (uint32_t i = h & t->merges.mask;; i = (i + 1) & t->merges.mask) {
        uint32_t slot = t->merges.slot[i];
        if (slot == 0)
            return -1;
        if (t->merges.hash[i] == h && merge_is(t, slot - 1, l, ln, r, rn))
            return (int32_t)(slot - 1);
    }
}

/* ---- Loading --------------------------------------------------------------------------------------- */

enum {
    TYPE_UNDEFINED = 0,
    TYPE_NORMAL = 1,
    TYPE_UNKNOWN = 2,
    TYPE_CONTROL = 3,
    TYPE_USER_DEFINED = 4,
    TYPE_UNUSED = 5,
    TYPE_BYTE = 6,
};

static uint32_t attr_of_type(int64_t type)
{
    switch (type) {
    case TYPE_NORMAL: return AE_TOKEN_ATTR_NORMAL;
    case TYPE_UNKNOWN: return AE_TOKEN_ATTR_UNKNOWN;
    case TYPE_CONTROL: return AE_TOKEN_ATTR_CONTROL;
    case TYPE_USER_DEFINED: return AE_TOKEN_ATTR_USER_DEFINED;
    case TYPE_UNUSED: return AE_TOKEN_ATTR_UNUSED;
    case TYPE_BYTE: return AE_TOKEN_ATTR_BYTE;
    default: return AE_TOKEN_ATTR_UNDEFINED;
    }
}

/* tokenizer.ggml.pre values: the split set and the flags llama.cpp sets with them. */
struct pre_type {
    const char *name;
    enum ae_tok_split split;
    bool no_clean_spaces;
    bool ignore_merges_add_bos; /* the Llama 3 family */
    bool add_bos;
    bool no_bos;                /* ChatGLM: no BOS token */
};

static const struct pre_type pre_types[] = {
    {"default", AE_TOK_SPLIT_DEFAULT, false, false, false, false},
    {"llama3", AE_TOK_SPLIT_LLAMA3, false, true, true, false},
    {"llama-v3", AE_TOK_SPLIT_LLAMA3, false, true, true, false},
    {"llama-bpe", AE_TOK_SPLIT_LLAMA3, false, true, true, false},
    {"falcon3", AE_TOK_SPLIT_LLAMA3, false, true, true, false},
    {"deepseek-llm", AE_TOK_SPLIT_DEEPSEEK_LLM, true, false, false, false},
    {"deepseek-coder", AE_TOK_SPLIT_DEEPSEEK_CODER, true, false, false, false},
    {"deepseek-v3", AE_TOK_SPLIT_DEEPSEEK3_LLM, true, false, false, false},
    {"falcon", AE_TOK_SPLIT_FALCON, false, false, false, false},
    {"mpt", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"starcoder", AE_TOK_SPLIT_STARCODER, false, false, false, false},
    {"gpt-2", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"phi-2", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"jina-es", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"jina-de", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"gigachat", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"jina-v1-en", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"jina-v2-es", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"jina-v2-de", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"jina-v2-code", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"roberta-bpe", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"refact", AE_TOK_SPLIT_STARCODER, false, false, false, false},
    {"command-r", AE_TOK_SPLIT_STARCODER, true, false, false, false},
    {"qwen2", AE_TOK_SPLIT_QWEN2, true, false, false, false},
    {"deepseek-r1-qwen", AE_TOK_SPLIT_QWEN2, true, false, false, false},
    {"stablelm2", AE_TOK_SPLIT_QWEN2, false, false, false, false},
    {"olmo", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"dbrx", AE_TOK_SPLIT_LLAMA3, false, false, false, false},
    {"smaug-bpe", AE_TOK_SPLIT_LLAMA3, false, false, false, false},
    {"poro-chat", AE_TOK_SPLIT_BLOOM, true, false, false, false},
    {"chatglm-bpe", AE_TOK_SPLIT_LLAMA3, false, false, false, true},
    {"glm4", AE_TOK_SPLIT_LLAMA3, false, false, false, true},
    {"viking", AE_TOK_SPLIT_VIKING, true, false, false, false},
    {"jais", AE_TOK_SPLIT_GPT2, false, false, false, false},
    {"smollm", AE_TOK_SPLIT_STARCODER, true, false, false, false},
    {"codeshell", AE_TOK_SPLIT_STARCODER, false, false, false, false},
    {"bloom", AE_TOK_SPLIT_BLOOM, false, false, false, false},
    {"gpt3-finnish", AE_TOK_SPLIT_BLOOM, false, false, false, false},
    {"exaone", AE_TOK_SPLIT_STARCODER, false, false, false, false},
    {"chameleon", AE_TOK_SPLIT_CHAMELEON, true, false, true, false},
    {"minerva-7b", AE_TOK_SPLIT_STARCODER, false, false, false, false},
    {"megrez", AE_TOK_SPLIT_QWEN2, false, false, false, false},
};

/* Known to llama.cpp but needing regex features the hand matchers do not have. */
static const char *const pre_unsupported[] = {"tekken", "gpt-4o", "superbpe", "trillion", "bailingmoe", "seed-coder",
                                              "kimi-k2", "hunyuan", "llama4", "minimax-m2", "grok-2"};

/* Copies a GGUF string into a NUL-terminated buffer for messages and names. */
static void copy_str(char *dst, size_t cap, struct ae_str s)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
}

static int set_pre(ae_tokenizer *t, const ae_gguf *g, bool has_pre, struct ae_str pre, ae_error *err)
{
    t->clean_spaces = true;
    t->add_space_prefix = false;
    if (!has_pre) {
        /* llama.cpp warns and uses the default split */
        t->split = AE_TOK_SPLIT_DEFAULT;
        snprintf(t->pre, sizeof t->pre, "default");
        return 0;
    }
    char name[48];
    copy_str(name, sizeof name, pre);
    for (size_t i = 0; i < sizeof pre_types / sizeof pre_types[0]; i++) {
        const struct pre_type *p = &pre_types[i];
        if (!ae_str_eq(pre, p->name))
            continue;
        t->split = p->split;
        if (p->no_clean_spaces)
            t->clean_spaces = false;
        if (p->ignore_merges_add_bos)
            t->ignore_merges = true;
        if (p->add_bos)
            t->add_bos = true;
        if (p->no_bos)
            t->bos = AE_TOKEN_NULL;
        snprintf(t->pre, sizeof t->pre, "%s", p->name);
        return 0;
    }
    for (size_t i = 0; i < sizeof pre_unsupported / sizeof pre_unsupported[0]; i++)
        if (ae_str_eq(pre, pre_unsupported[i]))
            return ae_fail(err, "%s: key 'tokenizer.ggml.pre': pre-tokenizer '%s' is not supported yet", g->path, name);
    return ae_fail(err, "%s: key 'tokenizer.ggml.pre': unknown pre-tokenizer type '%s'", g->path, name);
}

/* Reads an optional bool key into *v. */
static int get_bool(const ae_gguf *g, const char *key, bool *v, ae_error *err)
{
    bool b;
    int rc = ae_gguf_get_bool(g, key, &b, err);
    if (rc > 0)
        *v = b;
    return rc < 0 ? -1 : 0;
}

/* An optional special id key: taken when it is a valid id, ignored (as llama.cpp does) otherwise. */
static int get_special(const ae_tokenizer *t, const ae_gguf *g, const char *key, int32_t *id, ae_error *err)
{
    int64_t v;
    int rc = ae_gguf_get_i64(g, key, &v, err);
    if (rc < 0)
        return -1;
    if (rc > 0 && v >= 0 && v < (int64_t)t->n_vocab)
        *id = (int32_t)v;
    return 0;
}

static int32_t find_text(const ae_tokenizer *t, const char *s)
{
    return ae_tok_lookup(t, s, strlen(s));
}

/* The first token of names[] that the vocabulary has (AE_TOKEN_NULL if none); marks it CONTROL. */
static int32_t detect(ae_tokenizer *t, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = find_text(t, names[i]);
        if (id != AE_TOKEN_NULL) {
            t->attr[id] |= AE_TOKEN_ATTR_CONTROL;
            return id;
        }
    }
    return AE_TOKEN_NULL;
}

#define DETECT(t, id, ...)                                                         \
    do {                                                                           \
        static const char *const names_[] = {__VA_ARGS__};                         \
        if ((id) == AE_TOKEN_NULL)                                                 \
            (id) = detect((t), names_, sizeof names_ / sizeof names_[0]);          \
    } while (0)

static void eog_add(ae_tokenizer *t, int32_t id)
{
    if (id == AE_TOKEN_NULL)
        return;
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return;
    uint32_t i = t->n_eog++;
    for (; i > 0 && t->eog[i - 1] > id; i--)
        t->eog[i] = t->eog[i - 1];
    t->eog[i] = id;
}

/* End-of-turn and fill-in-the-middle tokens found by their text, and the end-of-generation set. */
static int mark_special_texts(ae_tokenizer *t)
{
    DETECT(t, t->eot, "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>",
           "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>");
    DETECT(t, t->eom, "<|eom_id|>");
    DETECT(t, t->fim_pre, "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
           "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>", "\xE2\x96\x81<PRE>");
    DETECT(t, t->fim_suf, "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
           "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", "<SUF>", "\xE2\x96\x81<SUF>");
    DETECT(t, t->fim_mid, "<|fim_middle|>", "<fim-middle>", "<fim_middle>",
           "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>", "\xE2\x96\x81<MID>");
    DETECT(t, t->fim_pad, "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>");
    DETECT(t, t->fim_rep, "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>");
    DETECT(t, t->fim_sep, "<|file_sep|>");

    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>"};
    const size_t n_eog_texts = sizeof eog_texts / sizeof eog_texts[0];
    t->eog = malloc((n_eog_texts + 6) * sizeof *t->eog);
    if (!t->eog)
        return -1;
    eog_add(t, t->fim_pad);
    eog_add(t, t->fim_rep);
    eog_add(t, t->fim_sep);
    for (size_t i = 0; i < n_eog_texts; i++) {
        int32_t id = find_text(t, eog_texts[i]);
        if (id != AE_TOKEN_NULL) {
            t->attr[id] |= AE_TOKEN_ATTR_CONTROL;
            eog_add(t, id);
        }
    }
    eog_add(t, t->eos);
    eog_add(t, t->eot);
    eog_add(t, t->eom);
    return 0;
}

struct special_key {
    uint64_t len;
    int32_t id;
};

static int special_before(const void *a, const void *b)
{
    const struct special_key *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first (ids ascending among equals). */
static int build_special(ae_tokenizer *t)
{
    const uint32_t mask = AE_TOKEN_ATTR_CONTROL | AE_TOKEN_ATTR_USER_DEFINED | AE_TOKEN_ATTR_UNKNOWN;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        n += (t->attr[i] & mask) != 0;
    struct special_key *keys = malloc((n ? n : 1) * sizeof *keys);
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return -1;
    }
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & mask)
            keys[t->n_special++] = (struct special_key){t->text_off[i + 1] - t->text_off[i], (int32_t)i};
    qsort(keys, t->n_special, sizeof *keys, special_before);
    for (uint32_t i = 0; i < t->n_special; i++)
        t->special[i] = keys[i].id;
    free(keys);
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xXX>" token, or -1. */
static int byte_of_text(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

/* Writes token id's piece (special = true) to dst (when dst is not NULL); returns its length. */
static size_t piece_of(const ae_tokenizer *t, int32_t id, char *dst)
{
    size_t n, out = 0;
    const char *s = ae_tok_text_of(t, id, &n);
    uint32_t a = t->attr[id];
#define EMIT(p, k)                          \
    do {                                    \
        if (dst)                            \
            memcpy(dst + out, (p), (k));    \
        out += (k);                         \
    } while (0)
    if (a & (AE_TOKEN_ATTR_UNKNOWN | AE_TOKEN_ATTR_CONTROL | AE_TOKEN_ATTR_USER_DEFINED)) {
        EMIT(s, n);
    } else if (a & AE_TOKEN_ATTR_NORMAL) {
        if (t->kind == AE_TOKENIZER_BPE) {
            /* GPT-2 unicode-to-byte map; a codepoint outside it is shown as llama.cpp shows it */
            for (size_t off = 0; off < n;) {
                size_t used;
                uint32_t cp = ae_tok_utf8_decode((const uint8_t *)s + off, n - off, &used);
                int b = ae_tok_cp_to_byte(cp);
                if (b >= 0) {
                    char c = (char)b;
                    EMIT(&c, 1);
                } else {
                    uint8_t u[4];
                    size_t nu = ae_tok_utf8_encode(cp, u);
                    char hex[48];
                    int k = snprintf(hex, sizeof hex, "[UNK_BYTE_0x");
                    for (size_t j = 0; j < nu; j++)
                        k += snprintf(hex + k, sizeof hex - (size_t)k, "%02x", u[j]);
                    EMIT(hex, (size_t)k);
                    EMIT(s, n);
                    EMIT("]", 1);
                }
                off += used;
            }
        } else {
            for (size_t i = 0; i < n;) {
                if (n - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                    EMIT(" ", 1);
                    i += 3;
                } else {
                    EMIT(s + i, 1);
                    i++;
                }
            }
        }
    } else if (a & AE_TOKEN_ATTR_BYTE) {
        int b = byte_of_text(s, n);
        if (b >= 0) {
            char c = (char)b;
            EMIT(&c, 1);
        }
    }
#undef EMIT
    return out;
}

static int build_pieces(ae_tokenizer *t)
{
    t->piece_off = malloc(((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
    if (!t->piece_off)
        return -1;
    uint64_t total = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        t->piece_off[i] = total;
        total += piece_of(t, (int32_t)i, NULL);
    }
    t->piece_off[t->n_vocab] = total;
    t->piece = malloc(total ? total : 1);
    if (!t->piece)
        return -1;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        piece_of(t, (int32_t)i, t->piece + t->piece_off[i]);
    return 0;
}

static void set_attr_by_text(ae_tokenizer *t, const char *s, uint32_t attr, bool on)
{
    int32_t id = find_text(t, s);
    if (id == AE_TOKEN_NULL)
        return;
    t->attr[id] = on ? (t->attr[id] | attr) : (t->attr[id] & ~attr);
}

/* Per-model strip attributes llama.cpp sets by model name or pre-tokenizer. */
static void set_strip_attrs(ae_tokenizer *t, const ae_gguf *g)
{
    struct ae_str name = {0};
    ae_error ignored;
    char lower[256] = "";
    if (ae_gguf_get_str(g, "general.name", &name, &ignored) > 0) {
        copy_str(lower, sizeof lower, name);
        for (char *c = lower; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
    }
    if (strstr(t->pre, "jina-v2-de") || strstr(t->pre, "jina-v2-es") || strstr(t->pre, "jina-v2-code")) {
        set_attr_by_text(t, "<mask>", AE_TOKEN_ATTR_LSTRIP, true);
    } else if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
        for (uint32_t i = 0; i < t->n_special; i++)
            t->attr[t->special[i]] |= AE_TOKEN_ATTR_RSTRIP;
        set_attr_by_text(t, "</s>", AE_TOKEN_ATTR_RSTRIP, true);
        set_attr_by_text(t, "<unk>", AE_TOKEN_ATTR_RSTRIP, false);
        set_attr_by_text(t, "<s>", AE_TOKEN_ATTR_RSTRIP, false);
        set_attr_by_text(t, "<|endoftext|>", AE_TOKEN_ATTR_RSTRIP, false);
    }
}

/* Reads tokens, scores and types into the tokenizer's own arrays. */
static int load_vocab(ae_tokenizer *t, const ae_gguf *g, ae_error *err)
{
    const struct ae_gguf_array *tokens = NULL, *scores = NULL, *types = NULL;
    int rc = ae_gguf_get_arr(g, "tokenizer.ggml.tokens", AE_GGUF_STRING, &tokens, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return ae_fail(err, "%s: key 'tokenizer.ggml.tokens' is missing: the file has no vocabulary", g->path);
    if (tokens->n == 0 || tokens->n > INT32_MAX - 1)
        return ae_fail(err, "%s: key 'tokenizer.ggml.tokens': expected 1..%d tokens, found %" PRIu64, g->path,
                       INT32_MAX - 1, tokens->n);
    t->n_vocab = (uint32_t)tokens->n;
    if ((rc = ae_gguf_get_arr(g, "tokenizer.ggml.scores", AE_GGUF_TYPE_COUNT, &scores, err)) < 0)
        return -1;
    if (rc > 0 && scores->type != AE_GGUF_F32 && scores->type != AE_GGUF_I32)
        return ae_fail(err, "%s: key 'tokenizer.ggml.scores': expected an array of f32 or i32, found an array of %s",
                       g->path, ae_gguf_type_name(scores->type));
    if (rc > 0 && scores->n < tokens->n)
        return ae_fail(err, "%s: key 'tokenizer.ggml.scores': expected %u scores (one per token), found %" PRIu64,
                       g->path, t->n_vocab, scores->n);
    if ((rc = ae_gguf_get_arr(g, "tokenizer.ggml.token_type", AE_GGUF_I32, &types, err)) < 0)
        return -1;
    if (rc > 0 && types->n < tokens->n)
        return ae_fail(err, "%s: key 'tokenizer.ggml.token_type': expected %u types (one per token), found %" PRIu64,
                       g->path, t->n_vocab, types->n);

    uint64_t total = 0;
    char empty[32];
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint64_t n = ae_gguf_arr_str(tokens, i).len;
        total += n ? n : (uint64_t)snprintf(empty, sizeof empty, "[EMPTY_%u]", i);
    }
    t->text = malloc(total ? total : 1);
    t->text_off = malloc(((size_t)t->n_vocab + 1) * sizeof *t->text_off);
    t->score = malloc(t->n_vocab * sizeof *t->score);
    t->attr = malloc(t->n_vocab * sizeof *t->attr);
    if (!t->text || !t->text_off || !t->score || !t->attr || map_init(&t->vocab, t->n_vocab) < 0)
        return ae_fail(err, "%s: out of memory for %u tokens", g->path, t->n_vocab);
    uint64_t off = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        struct ae_str s = ae_gguf_arr_str(tokens, i);
        t->text_off[i] = off;
        if (s.len) {
            memcpy(t->text + off, s.ptr, s.len);
            off += s.len;
        } else { /* llama.cpp names empty tokens so that they stay distinct */
            int k = snprintf(empty, sizeof empty, "[EMPTY_%u]", i);
            memcpy(t->text + off, empty, (size_t)k);
            off += (uint64_t)k;
        }
        if (off - t->text_off[i] > t->max_token_len)
            t->max_token_len = (uint32_t)(off - t->text_off[i]);
        t->score[i] = !scores ? 0.0f
                      : scores->type == AE_GGUF_F32 ? (float)ae_gguf_arr_float(scores, i)
                                                    : (float)ae_gguf_arr_int(scores, i);
        t->attr[i] = types ? attr_of_type(ae_gguf_arr_int(types, i)) : AE_TOKEN_ATTR_NORMAL;
    }
    t->text_off[t->n_vocab] = off;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        vocab_insert(t, (int32_t)i);
    return 0;
}

static int load_merges(ae_tokenizer *t, const ae_gguf *g, ae_error *err)
{
    const struct ae_gguf_array *merges = NULL;
    int rc = ae_gguf_get_arr(g, "tokenizer.ggml.merges", AE_GGUF_STRING, &merges, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return ae_fail(err, "%s: key 'tokenizer.ggml.merges' is missing: a gpt2 (BPE) tokenizer needs its merges",
                       g->path);
    if (merges->n > INT32_MAX - 1)
        return ae_fail(err, "%s: key 'tokenizer.ggml.merges': expected at most %d merges, found %" PRIu64, g->path,
                       INT32_MAX - 1, merges->n);
    t->n_merges = (uint32_t)merges->n;
    uint64_t total = 0;
    for (uint32_t i = 0; i < t->n_merges; i++)
        total += ae_gguf_arr_str(merges, i).len;
    t->merge_text = malloc(total ? total : 1);
    t->merge_off = malloc(((size_t)t->n_merges + 1) * sizeof *t->merge_off);
    t->merge_split = malloc((t->n_merges ? t->n_merges : 1) * sizeof *t->merge_split);
    if (!t->merge_text || !t->merge_off || !t->merge_split || map_init(&t->merges, t->n_merges) < 0)
        return ae_fail(err, "%s: out of memory for %u merges", g->path, t->n_merges);
    uint64_t off = 0;
    for (uint32_t i = 0; i < t->n_merges; i++) {
        struct ae_str s = ae_gguf_arr_str(merges, i);
        t->merge_off[i] = off;
        memcpy(t->merge_text + off, s.ptr, s.len);
        off += s.len;
        /* "left right", split at the first space after the first byte, as llama.cpp splits */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            t->merge_split[i] = UINT32_MAX; /* never matches a pair */
            continue;
        }
        t->merge_split[i] = (uint32_t)(sp - s.ptr);
        uint32_t h = ae_tok_hash(AE_TOK_FNV_SEED, s.ptr, s.len);
        uint32_t k = h & t->merges.mask;
        bool seen = false;
        for (; t->merges.slot[k]; k = (k + 1) & t->merges.mask) {
            uint32_t m = t->merges.slot[k] - 1;
            if (t->merges.hash[k] == h && t->merge_split[m] == t->merge_split[i] &&
                t->merge_off[m + 1] - t->merge_off[m] == s.len &&
                memcmp(t->merge_text + t->merge_off[m], s.ptr, s.len) == 0) {
                seen = true; /* the first rank of a repeated pair stays */
                break;
            }
        }
        if (!seen) {
            t->merges.hash[k] = h;
            t->merges.slot[k] = i + 1;
        }
    }
    t->merge_off[t->n_merges] = off;
    return 0;
}

static int load_specials(ae_tokenizer *t, const ae_gguf *g, ae_error *err)
{
    /* defaults past the vocabulary are dropped */
    int32_t *defaults[] = {&t->bos, &t->eos, &t->unk, &t->sep, &t->pad, &t->mask};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (*defaults[i] >= (int32_t)t->n_vocab)
            *defaults[i] = AE_TOKEN_NULL;
    const struct {
        const char *key;
        int32_t *id;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", &t->bos},
        {"tokenizer.ggml.eos_token_id", &t->eos},
        {"tokenizer.ggml.eot_token_id", &t->eot},
        {"tokenizer.ggml.eom_token_id", &t->eom},
        {"tokenizer.ggml.unknown_token_id", &t->unk},
        {"tokenizer.ggml.seperator_token_id", &t->sep},
        {"tokenizer.ggml.padding_token_id", &t->pad},
        {"tokenizer.ggml.mask_token_id", &t->mask},
        {"tokenizer.ggml.fim_pre_token_id", &t->fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", &t->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &t->fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", &t->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &t->fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", &t->fim_sep},
        {"tokenizer.ggml.prefix_token_id", &t->fim_pre},
        {"tokenizer.ggml.suffix_token_id", &t->fim_suf},
        {"tokenizer.ggml.middle_token_id", &t->fim_mid},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (get_special(t, g, keys[i].key, keys[i].id, err) < 0)
            return -1;
    /* WordPiece files name their [CLS] (the BOS llama.cpp adds) with its own key */
    if (t->kind == AE_TOKENIZER_WPM && !ae_gguf_find_kv(g, "tokenizer.ggml.bos_token_id") &&
        get_special(t, g, "tokenizer.ggml.cls_token_id", &t->bos, err) < 0)
        return -1;
    if (get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err) < 0 ||
        get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err) < 0)
        return -1;
    return 0;
}

int ae_tokenizer_kind_of(struct ae_str model)
{
    return ae_str_eq(model, "llama") ? AE_TOKENIZER_SPM
           : ae_str_eq(model, "gpt2") ? AE_TOKENIZER_BPE
           : ae_str_eq(model, "bert") ? AE_TOKENIZER_WPM
                                      : -1;
}

/* Builds the tokenizer with algos[kind] as the encoder of each kind (NULL: none). */
static int load(ae_tokenizer **out, const ae_gguf *g, const struct ae_tokenizer_algo *const algos[AE_TOKENIZER_KIND_COUNT],
                ae_error *err)
{
    struct ae_str model, pre = {0};
    int rc = ae_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return ae_fail(err, "%s: no tokenizer in the file: key 'tokenizer.ggml.model' is missing", g->path);
    int has_pre = ae_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
    if (has_pre < 0)
        return -1;

    ae_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return ae_fail(err, "%s: out of memory for the tokenizer", g->path);
    t->eot = t->eom = t->nl = t->mask = AE_TOKEN_NULL;
    t->fim_pre = t->fim_suf = t->fim_mid = t->fim_pad = t->fim_rep = t->fim_sep = AE_TOKEN_NULL;
    copy_str(t->model, sizeof t->model, model);

    const int kind = ae_tokenizer_kind_of(model);
    if (kind == AE_TOKENIZER_SPM) {
        t->kind = AE_TOKENIZER_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0, t->sep = t->pad = AE_TOKEN_NULL;
        t->add_space_prefix = true;
        t->add_bos = true;
        snprintf(t->pre, sizeof t->pre, "default");
    } else if (kind == AE_TOKENIZER_BPE) {
        t->kind = AE_TOKENIZER_BPE;
        t->bos = 11, t->eos = 11, t->unk = t->sep = t->pad = AE_TOKEN_NULL;
        if (set_pre(t, g, has_pre > 0, pre, err) < 0)
            goto fail;
    } else if (kind == AE_TOKENIZER_WPM) {
        t->kind = AE_TOKENIZER_WPM;
        t->bos = 101, t->eos = AE_TOKEN_NULL, t->unk = 100, t->sep = 102, t->pad = 0, t->mask = 103;
        t->add_bos = true;
        t->add_sep = true;
        t->clean_spaces = true;
        snprintf(t->pre, sizeof t->pre, "default");
    } else if (ae_str_eq(model, "no_vocab") || ae_str_eq(model, "none")) {
        ae_fail(err, "%s: key 'tokenizer.ggml.model': the model has no vocabulary ('%s')", g->path, t->model);
        goto fail;
    } else if (ae_str_eq(model, "t5") || ae_str_eq(model, "rwkv") || ae_str_eq(model, "plamo2")) {
        ae_fail(err, "%s: key 'tokenizer.ggml.model': tokenizer model '%s' is not supported yet (llama, gpt2 and "
                "bert are)", g->path, t->model);
        goto fail;
    } else {
        ae_fail(err, "%s: key 'tokenizer.ggml.model': unknown tokenizer model '%s': expected llama, gpt2 or bert",
                g->path, t->model);
        goto fail;
    }
    t->algo = algos[t->kind];
    if (!t->algo) {
        ae_fail(err, "%s: key 'tokenizer.ggml.model': this program was built for another tokenizer than '%s'",
                g->path, t->model);
        goto fail;
    }
    if (get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err) < 0)
        goto fail;
    if (load_vocab(t, g, err) < 0)
        goto fail;
    if (t->kind == AE_TOKENIZER_BPE && load_merges(t, g, err) < 0)
        goto fail;

    for (int b = 0; b < 256; b++) {
        char hex[8], one = (char)b;
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_token[b] = find_text(t, hex);
        if (t->byte_token[b] == AE_TOKEN_NULL)
            t->byte_token[b] = ae_tok_lookup(t, &one, 1);
    }
    if (load_specials(t, g, err) < 0)
        goto fail;

    /* the newline token, as llama.cpp finds it */
    if (t->kind == AE_TOKENIZER_SPM) {
        t->nl = t->byte_token['\n'] != AE_TOKEN_NULL ? t->byte_token['\n'] : t->pad;
    } else if (t->kind == AE_TOKENIZER_BPE) {
        struct ae_tok_ids ids = {NULL, 0, 0, true};
        if (t->algo->encode(t, "\n", 1, &ids) < 0) {
            free(ids.v);
            ae_fail(err, "%s: out of memory", g->path);
            goto fail;
        }
        t->nl = ids.n ? ids.v[0] : t->pad;
        free(ids.v);
    } else {
        t->nl = t->pad;
    }

    if (mark_special_texts(t) < 0 || build_special(t) < 0 || build_pieces(t) < 0) {
        ae_fail(err, "%s: out of memory for the tokenizer tables", g->path);
        goto fail;
    }
    set_strip_attrs(t, g);
    *out = t;
    return 0;
fail:
    ae_tokenizer_free(t);
    return -1;
}

int ae_tokenizer_load(ae_tokenizer **out, const ae_gguf *g, ae_error *err)
{
    static const struct ae_tokenizer_algo *const all[AE_TOKENIZER_KIND_COUNT] = {
        [AE_TOKENIZER_SPM] = &ae_tokenizer_spm, [AE_TOKENIZER_BPE] = &ae_tokenizer_bpe,
        [AE_TOKENIZER_WPM] = &ae_tokenizer_wpm};
    return load(out, g, all, err);
}

int ae_tokenizer_load_algo(ae_tokenizer **out, const ae_gguf *g, const struct ae_tokenizer_algo *algo,
                           ae_error *err)
{
    const struct ae_tokenizer_algo *one[AE_TOKENIZER_KIND_COUNT] = {0};
    if (algo)
        one[algo->kind] = algo;
    return load(out, g, one, err);
}

void ae_tokenizer_free(ae_tokenizer *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->text_off);
    free(t->score);
    free(t->attr);
    map_free(&t->vocab);
    free(t->merge_text);
    free(t->merge_off);
    free(t->merge_split);
    map_free(&t->merges);
    free(t->piece);
    free(t->piece_off);
    free(t->special);
    free(t->eog);
    free(t);
}

/* ---- Tokenizing ------------------------------------------------------------------------------------ */

/* The longest text one ae_tokenize call takes (256 MiB). */
#define AE_TOK_MAX_TEXT (1u << 28)

/* A piece of the text: plain text [off, off + len), or a special token. */
struct fragment {
    int32_t token; /* AE_TOKEN_NULL for text */
    size_t off, len;
};

struct fragments {
    struct fragment *v;
    size_t n, cap;
    bool ok;
};

static void frag_push(struct fragments *f, struct fragment x)
{
    if (!f->ok)
        return;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct fragment *v = realloc(f->v, cap * sizeof *v);
        if (!v) {
            f->ok = false;
            return;
        }
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = x;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Cuts the special tokens out of the text fragments, one token after another, longest first. */
static int partition(const ae_tokenizer *t, const char *text, struct fragments *cur, bool parse_special)
{
    struct fragments next = {NULL, 0, 0, true};
    for (uint32_t s = 0; s < t->n_special; s++) {
        int32_t id = t->special[s];
        uint32_t a = t->attr[id];
        if (!parse_special && (a & (AE_TOKEN_ATTR_CONTROL | AE_TOKEN_ATTR_UNKNOWN)))
            continue;
        size_t tn;
        const char *tt = ae_tok_text_of(t, id, &tn);
        bool any = false;
        for (size_t i = 0; i < cur->n && !any; i++)
            any = cur->v[i].token == AE_TOKEN_NULL && cur->v[i].len >= tn &&
                  memmem(text + cur->v[i].off, cur->v[i].len, tt, tn) != NULL;
        if (!any)
            continue;
        next.n = 0;
        for (size_t i = 0; i < cur->n; i++) {
            struct fragment f = cur->v[i];
            if (f.token != AE_TOKEN_NULL) {
                frag_push(&next, f);
                continue;
            }
            size_t base = f.off, blen = f.len;
            while (blen > 0) {
                const char *m = memmem(text + base, blen, tt, tn);
                if (!m) {
                    frag_push(&next, (struct fragment){AE_TOKEN_NULL, base, blen});
                    break;
                }
                size_t mo = (size_t)(m - text);
                size_t left = mo - base;
                if (a & AE_TOKEN_ATTR_LSTRIP)
                    while (left > 0 && is_space(text[base + left - 1]))
                        left--;
                if (left > 0)
                    frag_push(&next, (struct fragment){AE_TOKEN_NULL, base, left});
                frag_push(&next, (struct fragment){id, 0, 0});
                size_t roff = mo + tn, rlen = base + blen - roff;
                if (a & AE_TOKEN_ATTR_RSTRIP)
                    while (rlen > 0 && is_space(text[roff]))
                        roff++, rlen--;
                base = roff;
                blen = rlen;
            }
        }
        if (!next.ok)
            break;
        struct fragments tmp = *cur;
        *cur = next;
        next = tmp;
    }
    free(next.v);
    return (cur->ok && next.ok) ? 0 : -1;
}

/* SentencePiece text: an optional leading space, then every space escaped to U+2581. */
static int spm_fragment(const ae_tokenizer *t, const char *s, size_t n, bool prefix, struct ae_tok_ids *o)
{
    size_t cap = (n + 1) * 3;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    size_t k = 0;
    if (prefix) {
        memcpy(buf, "\xE2\x96\x81", 3);
        k = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(buf + k, "\xE2\x96\x81", 3);
            k += 3;
        } else {
            buf[k++] = s[i];
        }
    }
    int rc = t->algo->encode(t, buf, k, o);
    free(buf);
    return rc;
}

int ae_tokenize(const ae_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t *out, size_t cap, size_t *n_out, ae_error *err)
{
    struct fragments frags = {NULL, 0, 0, true};
    struct ae_tok_ids ids = {NULL, 0, 0, true};
    int rc = -1;
    if (len > AE_TOK_MAX_TEXT) /* the encoders index bytes and symbols with 32 bits */
        return ae_fail(err, "tokenize: a text of %zu bytes is longer than the %u bytes one call takes", len,
                       AE_TOK_MAX_TEXT);
    if (len > 0) {
        frag_push(&frags, (struct fragment){AE_TOKEN_NULL, 0, len});
        if (partition(t, text, &frags, parse_special) < 0)
            goto oom;
    }
    bool bos = add_special && t->add_bos, eos = add_special && t->add_eos;
    if (t->kind == AE_TOKENIZER_WPM) { /* [CLS] ... [SEP] */
        bos = add_special;
        eos = false;
    }
    if (bos && t->bos == AE_TOKEN_NULL) {
        ae_fail(err, "tokenize: the vocabulary asks for a BOS token but has none");
        goto done;
    }
    if (eos && t->eos == AE_TOKEN_NULL) {
        ae_fail(err, "tokenize: the vocabulary asks for an EOS token but has none");
        goto done;
    }
    if (bos)
        ae_tok_ids_push(&ids, t->bos);
    bool prev_special = true; /* SentencePiece: text at the start or after a special gets a space */
    for (size_t i = 0; i < frags.n; i++) {
        const struct fragment *f = &frags.v[i];
        if (f->token != AE_TOKEN_NULL) {
            ae_tok_ids_push(&ids, f->token);
            prev_special = true;
            continue;
        }
        int r = t->kind == AE_TOKENIZER_SPM
                    ? spm_fragment(t, text + f->off, f->len, t->add_space_prefix && prev_special, &ids)
                    : t->algo->encode(t, text + f->off, f->len, &ids);
        if (r < 0)
            goto oom;
        prev_special = false;
    }
    if (eos)
        ae_tok_ids_push(&ids, t->eos);
    if (add_special && t->kind == AE_TOKENIZER_WPM) {
        if (t->sep == AE_TOKEN_NULL) {
            ae_fail(err, "tokenize: the vocabulary asks for a SEP token but has none");
            goto done;
        }
        ae_tok_ids_push(&ids, t->sep);
    }
    if (!ids.ok)
        goto oom;
    *n_out = ids.n;
    if (ids.n > cap) {
        if (cap)
            memcpy(out, ids.v, cap * sizeof *out);
        ae_fail(err, "tokenize: the text needs %zu tokens, but there is room for %zu", ids.n, cap);
        goto done;
    }
    if (ids.n)
        memcpy(out, ids.v, ids.n * sizeof *out);
    rc = 0;
    goto done;
oom:
    ae_fail(err, "tokenize: out of memory for a text of %zu bytes", len);
done:
    free(frags.v);
    free(ids.v);
    return rc;
}

/* ---- Pieces and detokenizing ------------------------------------------------------------------------ */

const char *ae_token_to_piece(const ae_tokenizer *t, int32_t id, bool special, size_t lstrip, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    const char *p = t->piece + t->piece_off[id];
    size_t n = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
    if (!special && (t->attr[id] & (AE_TOKEN_ATTR_UNKNOWN | AE_TOKEN_ATTR_CONTROL)))
        n = 0;
    for (size_t i = 0; i < lstrip && n && *p == ' '; i++)
        p++, n--;
    *len = n;
    return p;
}

/* llama.cpp's clean_up_tokenization_spaces on s[0..n); returns the new length. */
static size_t clean_spaces(char *s, size_t n)
{
    /* " ?", " !", " .", " ," lose the space */
    size_t k = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            k--;
        s[k++] = x;
    }
    /* " ' " loses both spaces */
    n = k;
    k = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            k--;
            s[++i] = 0;
        }
        s[k++] = x;
    }
    /* " 's", " 'm", " 're", " 've" lose the space */
    n = k;
    k = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm')
                k--;
            else if (i + 2 < n && ((x1 == 'r' && s[i + 2] == 'e') || (x1 == 'v' && s[i + 2] == 'e')))
                k--;
        }
        s[k++] = x;
    }
    return k;
}

int ae_detokenize(const ae_tokenizer *t, const int32_t *ids, size_t n, bool remove_special, bool unparse_special,
                  char *out, size_t cap, size_t *n_out, ae_error *err)
{
    bool remove_space = t->add_space_prefix;
    if (remove_special && t->add_bos && n > 0 && ids[0] == t->bos) {
        remove_space = false;
        ids++, n--;
    }
    if (remove_special && t->add_eos && n > 0 && ids[n - 1] == t->eos)
        n--;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab)
            return ae_fail(err, "detokenize: token %zu: id %" PRId32 " is not in the vocabulary (0..%u)", i, ids[i],
                           t->n_vocab - 1);
        size_t len;
        ae_token_to_piece(t, ids[i], unparse_special, (remove_space && i == 0) ? 1 : 0, &len);
        total += len;
    }
    *n_out = total;
    if (total > cap)
        return ae_fail(err, "detokenize: the text needs %zu bytes, but there is room for %zu", total, cap);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = ae_token_to_piece(t, ids[i], unparse_special, (remove_space && i == 0) ? 1 : 0, &len);
        if (len) /* out may be NULL when the text is empty */
            memcpy(out + k, p, len);
        k += len;
    }
    if (t->clean_spaces)
        k = clean_spaces(out, k);
    *n_out = k;
    return 0;
}

/* ---- Accessors ---------------------------------------------------------------------------------------- */

enum ae_tokenizer_kind ae_tokenizer_kind(const ae_tokenizer *t) { return t->kind; }
const char *ae_tokenizer_pre(const ae_tokenizer *t) { return t->pre; }
uint32_t ae_tokenizer_n_vocab(const ae_tokenizer *t) { return t->n_vocab; }
int32_t ae_tokenizer_bos(const ae_tokenizer *t) { return t->bos; }
int32_t ae_tokenizer_eos(const ae_tokenizer *t) { return t->eos; }
int32_t ae_tokenizer_eot(const ae_tokenizer *t) { return t->eot; }
int32_t ae_tokenizer_unk(const ae_tokenizer *t) { return t->unk; }
int32_t ae_tokenizer_sep(const ae_tokenizer *t) { return t->sep; }
int32_t ae_tokenizer_pad(const ae_tokenizer *t) { return t->pad; }
int32_t ae_tokenizer_nl(const ae_tokenizer *t) { return t->nl; }
bool ae_tokenizer_add_bos(const ae_tokenizer *t) { return t->add_bos; }
bool ae_tokenizer_add_eos(const ae_tokenizer *t) { return t->add_eos; }

bool ae_tokenizer_is_eog(const ae_tokenizer *t, int32_t id)
{
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return true;
    return false;
}

const char *ae_token_text(const ae_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    return ae_tok_text_of(t, id, len);
}

uint32_t ae_token_attr(const ae_tokenizer *t, int32_t id)
{
    return (id < 0 || (uint32_t)id >= t->n_vocab) ? 0 : t->attr[id];
}

float ae_token_score(const ae_tokenizer *t, int32_t id)
{
    return (id < 0 || (uint32_t)id >= t->n_vocab) ? 0.0f : t->score[id];
}

int32_t ae_token_find(const ae_tokenizer *t, const char *s, size_t len)
{
    return ae_tok_lookup(t, s, len);
}

/* ---- The merge heap shared by SentencePiece and BPE ---------------------------------------------- */

static bool bigram_before(const struct ae_tok_bigram *a, const struct ae_tok_bigram *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

void ae_tok_heap_push(struct ae_tok_bigram *h, size_t *n, struct ae_tok_bigram b)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = b;
}

struct ae_tok_bigram ae_tok_heap_pop(struct ae_tok_bigram *h, size_t *n)
{
    struct ae_tok_bigram top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && bigram_before(&h[c + 1], &h[c]))
            c++;
        if (!bigram_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}
