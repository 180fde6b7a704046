/* What the tokenizer's files share: the vocabulary tables and the per-algorithm encoders.
 *
 * Internal to the runtime library. tokenizer.c loads the vocabulary and owns the public API;
 * tok_spm.c, tok_bpe.c (with the pre-tokenizer splits of tok_pretok.c) and tok_wpm.c each turn one
 * piece of plain text (special tokens already cut out) into ids.
 */
#ifndef AE_TOK_INTERNAL_H
#define AE_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae_tokenizer.h"

/* The pre-tokenizer split sets (llama.cpp's regex lists), chosen by tokenizer.ggml.pre. */
enum ae_tok_split {
    AE_TOK_SPLIT_DEFAULT,        /* punctuation runs, GPT-2, numbers, 3-digit groups */
    AE_TOK_SPLIT_GPT2,           /* GPT-2's regex */
    AE_TOK_SPLIT_LLAMA3,         /* Llama 3: letters with one leading mark, 1-3 digits, newlines */
    AE_TOK_SPLIT_QWEN2,          /* as Llama 3 with single digits */
    AE_TOK_SPLIT_DEEPSEEK_LLM,
    AE_TOK_SPLIT_DEEPSEEK_CODER,
    AE_TOK_SPLIT_DEEPSEEK3_LLM,
    AE_TOK_SPLIT_FALCON,
    AE_TOK_SPLIT_STARCODER,      /* single digits, then GPT-2 */
    AE_TOK_SPLIT_BLOOM,          /* words with an optional leading space */
    AE_TOK_SPLIT_VIKING,         /* bloom's words, then single digits */
    AE_TOK_SPLIT_CHAMELEON,
    AE_TOK_SPLIT_COUNT
};

/* text -> id: open addressing over FNV-1a hashes; slots hold id + 1 (0 = empty). */
struct ae_tok_map {
    uint32_t mask;   /* capacity - 1, capacity a power of two */
    uint32_t *hash;
    uint32_t *slot;
};

struct ae_tok_ids;

/* A kind's encoder of one piece of plain text (ae_tokenizer.h). */
struct ae_tokenizer_algo {
    enum ae_tokenizer_kind kind;
    int (*encode)(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o);
};

struct ae_tokenizer {
    enum ae_tokenizer_kind kind;
    const struct ae_tokenizer_algo *algo; /* the kind's encoder */
    enum ae_tok_split split;
    char model[16];
    char pre[48];

    uint32_t n_vocab;
    char *text;              /* every token's text, back to back */
    uint64_t *text_off;      /* (n_vocab + 1): token i is text[text_off[i] .. text_off[i+1]) */
    float *score;            /* (n_vocab) */
    uint32_t *attr;          /* (n_vocab) enum ae_token_attr bits */
    struct ae_tok_map vocab; /* token text -> id (the last id wins for a repeated text) */
    uint32_t max_token_len;  /* bytes */

    uint32_t n_merges;
    char *merge_text;        /* every merge "left right", back to back */
    uint64_t *merge_off;     /* (n_merges + 1) */
    uint32_t *merge_split;   /* (n_merges) length of the left part */
    struct ae_tok_map merges; /* "left right" -> rank (the first rank wins for a repeated pair) */

    char *piece;             /* token_to_piece(special = true) of every token, back to back */
    uint64_t *piece_off;     /* (n_vocab + 1) */

    int32_t *special;        /* CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    uint32_t n_special;
    int32_t *eog;            /* end-of-generation ids, ascending */
    uint32_t n_eog;

    int32_t byte_token[256]; /* SentencePiece byte fallback: id of <0xXX> (or the 1-byte token) */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;

    bool add_bos, add_eos, add_sep;
    bool add_space_prefix;   /* SentencePiece: prefix a space to text that follows BOS/a special */
    bool clean_spaces;       /* detokenize: llama.cpp's clean_up_tokenization_spaces */
    bool ignore_merges;      /* BPE: a pre-token that is a whole token is taken as is */
};

/* A growable id list (tokenize's output). ok turns false when memory runs out. */
struct ae_tok_ids {
    int32_t *v;
    size_t n, cap;
    bool ok;
};

void ae_tok_ids_push(struct ae_tok_ids *o, int32_t id);

/* FNV-1a, continuing from h (start with AE_TOK_FNV_SEED). */
#define AE_TOK_FNV_SEED 2166136261u
uint32_t ae_tok_hash(uint32_t h, const void *s, size_t n);

/* The id of the token with text s[0..n), or AE_TOKEN_NULL. */
int32_t ae_tok_lookup(const ae_tokenizer *t, const void *s, size_t n);

/* The rank of the merge (left, right), or -1. */
int32_t ae_tok_merge_rank(const ae_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn);

static inline const char *ae_tok_text_of(const ae_tokenizer *t, int32_t id, size_t *len)
{
    *len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->text + t->text_off[id];
}

/* GPT-2's byte-to-unicode map: the codepoint that stands for byte b, and back (-1: none). */
uint32_t ae_tok_byte_to_cp(uint8_t b);
int ae_tok_cp_to_byte(uint32_t cp);

/* Encoders for one piece of plain text; each appends ids to o. They return -1 only when memory runs
 * out. */
int ae_tok_spm_encode(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o);
int ae_tok_bpe_encode(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o);
int ae_tok_wpm_encode(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o);

/* The pre-tokenizer: splits the codepoints cp[0..n) (with their ae_ucd_flags in fl) into words and
 * stores each word's length in codepoints in words[0..*n_words). words and scratch must each have
 * room for n entries (a split never makes more words than codepoints). */
void ae_tok_pretokenize(enum ae_tok_split split, const uint32_t *cp, const uint16_t *fl, size_t n,
                        size_t *words, size_t *scratch, size_t *n_words);

/* A candidate merge of two adjacent symbols, for SentencePiece (priority = the merged piece's score) and
 * BPE (priority = minus the merge's rank, exact for ranks below 2^24). The heap pops the highest
 * priority first, the leftmost among equals. size is the merged length, to recognize stale entries. */
struct ae_tok_bigram {
    float priority;
    int32_t left, right;
    uint32_t size;
};

/* The heap: h holds *n entries; push needs room for one more. */
void ae_tok_heap_push(struct ae_tok_bigram *h, size_t *n, struct ae_tok_bigram b);
struct ae_tok_bigram ae_tok_heap_pop(struct ae_tok_bigram *h, size_t *n);

#endif
