/* Tokenizers built from GGUF metadata: SentencePiece ("llama"), GPT-2 byte-level BPE ("gpt2") and
 * WordPiece ("bert"), giving the token ids llama.cpp gives.
 *
 * ae_tokenizer_load reads the tokenizer.ggml.* keys (model, pre, tokens, scores, token_type,
 * merges, special token ids, add_bos/add_eos/add_space_prefix) and copies what it needs, so the
 * GGUF handle may be closed afterwards. Tokenizing follows llama.cpp's llama_tokenize:
 *   - special tokens (CONTROL, USER_DEFINED and UNKNOWN types) are cut out of the text as whole
 *     strings first, longest first; CONTROL and UNKNOWN ones only when parse_special is true,
 *     USER_DEFINED ones always;
 *   - each remaining piece of text goes through the model's algorithm: SentencePiece bigram merges by
 *     score with byte fallback and a leading space, BPE pre-tokenizer splits (chosen by
 *     tokenizer.ggml.pre) and merges by rank, or WordPiece greedy longest match;
 *   - with add_special, BOS (and EOS, SEP) are added as the vocabulary says.
 * Detokenizing maps pieces back to bytes (U+2581 to space, <0xXX> byte tokens, the GPT-2
 * unicode-to-byte map) and applies llama.cpp's leading-space and clean-up rules.
 *
 * A loaded tokenizer is read-only: any number of threads may use it at once. Tokenizing allocates
 * scratch memory per call; token-to-piece and detokenizing never allocate.
 */
#ifndef AE_TOKENIZER_H
#define AE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae_error.h"
#include "ae_gguf.h"

/* "No token": a special id the vocabulary does not have. */
#define AE_TOKEN_NULL (-1)

enum ae_tokenizer_kind {
    AE_TOKENIZER_SPM, /* tokenizer.ggml.model "llama" */
    AE_TOKENIZER_BPE, /* "gpt2" */
    AE_TOKENIZER_WPM, /* "bert" */
};
#define AE_TOKENIZER_KIND_COUNT 3

/* The kind a tokenizer.ggml.model name stands for, or -1 for a name that is none of the three. */
int ae_tokenizer_kind_of(struct ae_str model);

/* One kind's encoder. A generated program names only its model's (ae_model.tokenizer), so that it links
 * no other: BPE's pre-tokenizer brings 50 KiB of Unicode tables that a SentencePiece model never reads. */
struct ae_tokenizer_algo;
extern const struct ae_tokenizer_algo ae_tokenizer_spm, ae_tokenizer_bpe, ae_tokenizer_wpm;

/* Token attributes (llama.cpp's llama_token_attr bits), from tokenizer.ggml.token_type. */
enum ae_token_attr {
    AE_TOKEN_ATTR_UNDEFINED = 0,
    AE_TOKEN_ATTR_UNKNOWN = 1 << 0,
    AE_TOKEN_ATTR_UNUSED = 1 << 1,
    AE_TOKEN_ATTR_NORMAL = 1 << 2,
    AE_TOKEN_ATTR_CONTROL = 1 << 3,
    AE_TOKEN_ATTR_USER_DEFINED = 1 << 4,
    AE_TOKEN_ATTR_BYTE = 1 << 5,
    AE_TOKEN_ATTR_NORMALIZED = 1 << 6,
    AE_TOKEN_ATTR_LSTRIP = 1 << 7, /* whitespace before the token is dropped when it is cut out */
    AE_TOKEN_ATTR_RSTRIP = 1 << 8, /* whitespace after it is dropped */
    AE_TOKEN_ATTR_SINGLE_WORD = 1 << 9,
};

typedef struct ae_tokenizer ae_tokenizer;

/* Builds the tokenizer of a GGUF file. On failure *out is untouched and err names the key and what
 * is wrong: no tokenizer in the file, an unknown tokenizer model or pre-tokenizer type, a key of the
 * wrong type, arrays of different lengths, a merge or special id that does not fit. */
int ae_tokenizer_load(ae_tokenizer **out, const ae_gguf *g, ae_error *err);

/* ae_tokenizer_load with one kind's encoder only (NULL: none); a file of another kind fails, naming
 * both. */
int ae_tokenizer_load_algo(ae_tokenizer **out, const ae_gguf *g, const struct ae_tokenizer_algo *algo,
                           ae_error *err);

void ae_tokenizer_free(ae_tokenizer *t);

/* Tokenizes len bytes of text (UTF-8, at most 256 MiB). Invalid UTF-8 is handled as llama.cpp handles it: BPE and
 * WordPiece read each bad byte as U+FFFD; SentencePiece cuts characters by their lead byte and falls
 * back to byte tokens. add_special: add BOS/EOS/SEP as the vocabulary asks. parse_special: cut CONTROL tokens such as
 * "<s>" out of the text. On success returns 0 and stores the count in *n_out. When cap is too small
 * returns -1, stores the count needed in *n_out and says so in err (out holds the first cap ids). */
int ae_tokenize(const ae_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t *out, size_t cap, size_t *n_out, ae_error *err);

/* The bytes a token stands for, as llama_token_to_piece gives them: U+2581 becomes a space, a byte
 * token its byte, a GPT-2 piece its raw bytes. CONTROL and UNKNOWN tokens give their text when
 * special is true and nothing otherwise. Up to lstrip leading spaces are skipped. Returns a pointer
 * into the tokenizer (valid until ae_tokenizer_free, not NUL-terminated) and the length in *len, or
 * NULL when id is out of range. Never allocates. */
const char *ae_token_to_piece(const ae_tokenizer *t, int32_t id, bool special, size_t lstrip, size_t *len);

/* Text of a whole sequence, as llama_detokenize gives it. remove_special: drop a leading BOS and a
 * trailing EOS when the vocabulary adds them. unparse_special: render CONTROL/UNKNOWN tokens as
 * their text. SentencePiece's leading space (the one tokenizing added) is removed unless a removed
 * BOS came first; BPE/WordPiece vocabularies with clean-up on get llama.cpp's space clean-up.
 * On success returns 0 and the length in *n_out (no NUL is written). When cap is too small or an id
 * is out of range returns -1 with err set; for a short buffer *n_out holds the length needed.
 * Never allocates. */
int ae_detokenize(const ae_tokenizer *t, const int32_t *ids, size_t n, bool remove_special, bool unparse_special,
                  char *out, size_t cap, size_t *n_out, ae_error *err);

/* ---- Accessors -------------------------------------------------------------------------------- */

enum ae_tokenizer_kind ae_tokenizer_kind(const ae_tokenizer *t);
const char *ae_tokenizer_pre(const ae_tokenizer *t);   /* the pre-tokenizer in use, e.g. "llama3" */
uint32_t ae_tokenizer_n_vocab(const ae_tokenizer *t);

/* Special ids; AE_TOKEN_NULL when the vocabulary has none. */
int32_t ae_tokenizer_bos(const ae_tokenizer *t);
int32_t ae_tokenizer_eos(const ae_tokenizer *t);
int32_t ae_tokenizer_eot(const ae_tokenizer *t);
int32_t ae_tokenizer_unk(const ae_tokenizer *t);
int32_t ae_tokenizer_sep(const ae_tokenizer *t);
int32_t ae_tokenizer_pad(const ae_tokenizer *t);
int32_t ae_tokenizer_nl(const ae_tokenizer *t);
bool ae_tokenizer_add_bos(const ae_tokenizer *t);
bool ae_tokenizer_add_eos(const ae_tokenizer *t);

/* Whether a token ends generation (EOS, EOT, EOM and the end-of-turn tokens llama.cpp recognizes). */
bool ae_tokenizer_is_eog(const ae_tokenizer *t, int32_t id);

/* A token's vocabulary text (not NUL-terminated; length in *len), attributes and score; NULL / 0
 * when id is out of range. */
const char *ae_token_text(const ae_tokenizer *t, int32_t id, size_t *len);
uint32_t ae_token_attr(const ae_tokenizer *t, int32_t id);
float ae_token_score(const ae_tokenizer *t, int32_t id);

/* The id of a token whose text is exactly s[0..len), or AE_TOKEN_NULL. */
int32_t ae_token_find(const ae_tokenizer *t, const char *s, size_t len);

#endif
