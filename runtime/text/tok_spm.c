/* SentencePiece (BPE model) as llama.cpp runs it: bigram merges by score over UTF-8 characters.
 *
 * The text arrives with spaces already escaped to U+2581 (and the leading space added by the
 * caller). It is cut into UTF-8 characters; every adjacent pair whose concatenation is a token is
 * queued with that token's score, and the best pair (highest score, leftmost on ties) is merged
 * repeatedly, re-queuing the new neighbours, until the queue is empty. Every merged symbol is a
 * token by construction; a single character that is not one falls back to its bytes as <0xXX>
 * tokens (the unknown token if the vocabulary has no byte tokens).
 */
#include <stdlib.h>

#include "tok_internal.h"
#include "tok_unicode.h"

struct symbol {
    uint32_t off, len;
    int32_t prev, next;
};

static void add_bigram(const ae_tokenizer *t, const char *text, const struct symbol *sym, struct ae_tok_bigram *heap,
                       size_t *n_heap, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    uint32_t size = sym[left].len + sym[right].len;
    int32_t id = ae_tok_lookup(t, text + sym[left].off, size);
    if (id == AE_TOKEN_NULL)
        return;
    ae_tok_heap_push(heap, n_heap, (struct ae_tok_bigram){t->score[id], left, right, size});
}

int ae_tok_spm_encode(const ae_tokenizer *t, const char *text, size_t len, struct ae_tok_ids *o)
{
    if (len == 0)
        return 0;
    struct symbol *sym = malloc(len * sizeof *sym);
    struct ae_tok_bigram *heap = malloc(len * 3 * sizeof *heap); /* n - 1 pairs, then at most 2 per merge */
    if (!sym || !heap) {
        free(sym);
        free(heap);
        return -1;
    }
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = ae_tok_utf8_len((uint8_t)text[off]);
        if (n > len - off)
            n = len - off;
        sym[n_sym] = (struct symbol){(uint32_t)off, (uint32_t)n, n_sym - 1, -1};
        off += n;
        sym[n_sym].next = off == len ? -1 : n_sym + 1;
        n_sym++;
    }
    size_t n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++)
        add_bigram(t, text, sym, heap, &n_heap, i - 1, i);
    while (n_heap > 0) {
        struct ae_tok_bigram b = ae_tok_heap_pop(heap, &n_heap);
        struct symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size)
            continue; /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = b.left;
        add_bigram(t, text, sym, heap, &n_heap, l->prev, b.left);
        add_bigram(t, text, sym, heap, &n_heap, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = ae_tok_lookup(t, text + sym[i].off, sym[i].len);
        if (id != AE_TOKEN_NULL) {
            ae_tok_ids_push(o, id);
            continue;
        }
        for (uint32_t j = 0; j < sym[i].len; j++) {
            int32_t b = t->byte_token[(uint8_t)text[sym[i].off + j]];
            if (b == AE_TOKEN_NULL)
                b = t->unk;
            if (b != AE_TOKEN_NULL)
                ae_tok_ids_push(o, b);
        }
    }
    free(sym);
    free(heap);
    return o->ok ? 0 : -1;
}

const struct ae_tokenizer_algo ae_tokenizer_spm = {AE_TOKENIZER_SPM, ae_tok_spm_encode};
