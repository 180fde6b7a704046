/* WordPiece (BERT) as llama.cpp runs it: normalize, split into words, greedy longest match.
 *
 * Each codepoint is replaced by the first codepoint of its canonical decomposition (which drops the
 * accents of precomposed letters) and lower-cased; whitespace ends a word; NUL, U+FFFD and control
 * characters are dropped; punctuation, ASCII symbols and CJK ideographs become words of their own.
 * Each word, prefixed with U+2581 (the converted vocabulary marks word starts that way, and
 * continuation pieces have no "##"), is cut greedily into the longest tokens from the left; a word
 * that cannot be cut completely becomes the unknown token. The candidates at one position are hashed
 * in one forward pass, so a word costs O(length * longest token), not that times the token length again:
 * a vocabulary with one very long token must not make long words take minutes.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "tok_unicode.h"

static int is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* The id of the token w[0..n) whose FNV-1a hash (ae_tok_hash from the seed) is h, or AE_TOKEN_NULL. */
static int32_t lookup_hashed(const ae_tokenizer *t, const char *w, size_t n, uint32_t h)
{
    for (uint32_t i = h & t->vocab.mask;; i = (i + 1) & t->vocab.mask) {
        uint32_t slot = t->vocab.slot[i];
        if (slot == 0)
            return AE_TOKEN_NULL;
        if (t->vocab.hash[i] != h)
            continue;
        size_t len;
        const char *s = ae_tok_text_of(t, (int32_t)(slot - 1), &len);
        if (len == n && memcmp(s, w, n) == 0)
            return (int32_t)(slot - 1);
    }
}

/* Cuts one word (w[0..n), starting with U+2581) into tokens. hash has room for min(n, max_token_len) + 1
 * entries: hash[k] is the hash of the k bytes at the current position. */
static void wpm_word(const ae_tokenizer *t, const char *w, size_t n, uint32_t *hash, struct ae_tok_ids *o)
{
    size_t first = o->n;
    for (size_t i = 0; i < n;) {
        size_t m = n - i < t->max_token_len ? n - i : t->max_token_len;
        uint32_t h = AE_TOK_FNV_SEED;
        for (size_t k = 1; k <= m; k++)
            hash[k] = h = ae_tok_hash(h, w + i + k - 1, 1);
        int32_t id = AE_TOKEN_NULL;
        size_t k = m;
        for (; k > 0; k--) {
            id = lookup_hashed(t, w + i, k, hash[k]);
            if (id != AE_TOKEN_NULL)
                break;
        }
        if (id == AE_TOKEN_NULL) {
            o->n = first; /* the word cannot be cut: none of its pieces count */
            break;
        }
        ae_tok_ids_push(o, id);
        i += k;
    }
    if (o->n == first && t->unk != AE_TOKEN_NULL)
        ae_tok_ids_push(o, t->unk);
}

int ae_tok_wpm_encode(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o)
{
    /* the word buffer: U+2581 plus at most 4 bytes per input byte (U+FFFD from one byte is dropped) */
    char *w = malloc(len * 4 + 8);
    size_t n_hash = (len * 4 + 8 < t->max_token_len ? len * 4 + 8 : t->max_token_len) + 1;
    uint32_t *hash = malloc(n_hash * sizeof *hash);
    if (!w || !hash) {
        free(w);
        free(hash);
        return -1;
    }
    static const char mark[3] = {'\xE2', '\x96', '\x81'};
    size_t wn = 0;
    for (size_t off = 0; off < len;) {
        size_t used;
        uint32_t c = ae_tok_utf8_decode((const uint8_t *)text + off, len - off, &used);
        off += used;
        c = ae_ucd_nfd_first_of(c);
        uint16_t f = ae_ucd_flags(c);
        if (f & AE_UCD_WHITESPACE) {
            if (wn)
                wpm_word(t, w, wn, hash, o);
            wn = 0;
            continue;
        }
        if (c == 0 || c == AE_UCD_REPLACEMENT || (f & AE_UCD_CONTROL))
            continue;
        uint8_t s[4];
        size_t sn = ae_tok_utf8_encode(ae_ucd_lower(c), s);
        bool alone = (f & AE_UCD_PUNCT) || (c < 0x7F && (f & AE_UCD_SYMBOL)) || is_chinese(c);
        if (alone && wn) {
            wpm_word(t, w, wn, hash, o);
            wn = 0;
        }
        if (wn == 0) {
            memcpy(w, mark, 3);
            wn = 3;
        }
        memcpy(w + wn, s, sn);
        wn += sn;
        if (alone) {
            wpm_word(t, w, wn, hash, o);
            wn = 0;
        }
    }
    if (wn)
        wpm_word(t, w, wn, hash, o);
    free(w);
    free(hash);
    return o->ok ? 0 : -1;
}

const struct ae_tokenizer_algo ae_tokenizer_wpm = {AE_TOKENIZER_WPM, ae_tok_wpm_encode};
