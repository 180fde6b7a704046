/* GPT-2 byte-level BPE: pre-tokenize, map bytes to printable codepoints, merge by rank.
 *
 * As llama.cpp's llm_tokenizer_bpe_session: the text is split into words (tok_pretok.c), each
 * word's UTF-8 bytes are mapped through GPT-2's byte-to-unicode table, and the word's characters
 * are merged pairwise, always the adjacent pair with the lowest merge rank first (the leftmost
 * on ties), until no adjacent pair has a merge. Each resulting symbol is looked up in the
 * vocabulary; a symbol that is not a token falls back to its single bytes, each kept only if it
 * is a token itself.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "tok_unicode.h"

uint32_t ae_tok_byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    /* the other 68 bytes, in order, become U+0100.. */
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67; /* 0xAD */
}

int ae_tok_cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 0x100 || cp > 0x100 + 67)
        return -1;
    uint32_t i = cp - 0x100;
    if (i <= 0x20)
        return (int)i;
    if (i < 67)
        return (int)(0x7F + (i - 33));
    return 0xAD;
}

struct symbol {
    uint32_t off, len; /* bytes of the encoded word */
    int32_t prev, next;
};

struct bpe_work {
    struct symbol *sym;
    struct ae_tok_bigram *heap;
    size_t n_heap;
};

static void add_bigram(const ae_tokenizer *t, const char *w, struct bpe_work *k, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const struct symbol *l = &k->sym[left], *r = &k->sym[right];
    int32_t rank = ae_tok_merge_rank(t, w + l->off, l->len, w + r->off, r->len);
    if (rank < 0)
        return;
    ae_tok_heap_push(k->heap, &k->n_heap, (struct ae_tok_bigram){-(float)rank, left, right, l->len + r->len});
}

/* Merges one encoded word w[0..n) and appends its ids. */
static void bpe_word(const ae_tokenizer *t, const char *w, size_t n, struct bpe_work *k, struct ae_tok_ids *o)
{
    int32_t n_sym = 0;
    if (t->ignore_merges && ae_tok_lookup(t, w, n) != AE_TOKEN_NULL) {
        k->sym[0] = (struct symbol){0, (uint32_t)n, -1, -1};
        n_sym = 1;
    } else {
        for (size_t off = 0; off < n;) {
            size_t len = ae_tok_utf8_len((uint8_t)w[off]);
            if (len > n - off)
                len = n - off;
            k->sym[n_sym] = (struct symbol){(uint32_t)off, (uint32_t)len, n_sym - 1, -1};
            off += len;
            k->sym[n_sym].next = off == n ? -1 : n_sym + 1;
            n_sym++;
        }
    }
    k->n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++)
        add_bigram(t, w, k, i - 1, i);
    while (k->n_heap > 0) {
        struct ae_tok_bigram b = ae_tok_heap_pop(k->heap, &k->n_heap);
        struct symbol *l = &k->sym[b.left], *r = &k->sym[b.right];
        /* stale: one side was merged away or has grown since the pair was queued */
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            k->sym[r->next].prev = b.left;
        add_bigram(t, w, k, l->prev, b.left);
        add_bigram(t, w, k, b.left, l->next);
    }
    for (int32_t i = 0; i != -1 && n_sym > 0; i = k->sym[i].next) {
        const struct symbol *s = &k->sym[i];
        int32_t id = ae_tok_lookup(t, w + s->off, s->len);
        if (id != AE_TOKEN_NULL) {
            ae_tok_ids_push(o, id);
            continue;
        }
        for (uint32_t j = 0; j < s->len; j++) {
            int32_t b = ae_tok_lookup(t, w + s->off + j, 1);
            if (b != AE_TOKEN_NULL)
                ae_tok_ids_push(o, b);
        }
    }
}

int ae_tok_bpe_encode(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o)
{
    if (len == 0)
        return 0;
    uint32_t *cp = malloc(len * sizeof *cp); /* codepoints <= bytes */
    uint16_t *fl = malloc(len * sizeof *fl);
    size_t *words = malloc(len * sizeof *words);
    size_t *scratch = malloc(len * sizeof *scratch);
    char *enc = NULL;
    struct bpe_work k = {NULL, NULL, 0};
    int rc = -1;
    if (!cp || !fl || !words || !scratch)
        goto out;

    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t used;
        cp[n] = ae_tok_utf8_decode((const uint8_t *)text + off, len - off, &used);
        fl[n] = ae_ucd_flags(cp[n]);
        off += used;
    }
    size_t n_words;
    ae_tok_pretokenize(t->split, cp, fl, n, words, scratch, &n_words);

    /* a codepoint is at most 4 UTF-8 bytes, each mapped to one character of at most 2 bytes */
    size_t max_word = 0;
    for (size_t w = 0; w < n_words; w++)
        if (words[w] > max_word)
            max_word = words[w];
    enc = malloc(max_word * 8);
    k.sym = malloc(max_word * 4 * sizeof *k.sym);
    k.heap = malloc(max_word * 4 * 3 * sizeof *k.heap); /* n - 1 pairs, then at most 2 per merge */
    if (!enc || !k.sym || !k.heap)
        goto out;

    size_t start = 0;
    for (size_t w = 0; w < n_words; w++) {
        size_t elen = 0;
        for (size_t i = start; i < start + words[w]; i++) {
            uint8_t raw[4];
            size_t nr = ae_tok_utf8_encode(cp[i], raw);
            for (size_t b = 0; b < nr; b++) {
                uint8_t e[4];
                size_t ne = ae_tok_utf8_encode(ae_tok_byte_to_cp(raw[b]), e);
                memcpy(enc + elen, e, ne);
                elen += ne;
            }
        }
        bpe_word(t, enc, elen, &k, o);
        start += words[w];
    }
    rc = o->ok ? 0 : -1;
out:
    free(cp);
    free(fl);
    free(words);
    free(scratch);
    free(enc);
    free(k.sym);
    free(k.heap);
    return rc;
}

const struct ae_tokenizer_algo ae_tokenizer_bpe = {AE_TOKENIZER_BPE, ae_tok_bpe_encode};
