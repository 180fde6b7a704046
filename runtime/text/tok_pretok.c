/* The BPE pre-tokenizer: llama.cpp's regex splits, written as small hand matchers.
 *
 * llama.cpp splits text with a list of regexes per tokenizer.ggml.pre. Each regex in turn cuts
 * every piece left by the previous one: its matches and the text between matches (the gaps) all
 * become pieces. Each matcher below returns the length of the match its regex finds at a position
 * (0: none), with the regex's semantics: alternatives tried in order, quantifiers greedy, lookahead
 * and `$` bounded by the end of the piece being cut.
 *
 * Character classes follow what llama.cpp actually matches:
 *   - \p{L}, \p{N}, \p{P}, \p{M} and \s are Unicode general categories and the White_Space
 *     property (its category-collapsing std::regex path and its hand-written GPT-2/Llama 3 paths
 *     agree on these); \p{S} additionally leaves out '~', which the collapsed path misses;
 *   - in regexes with literal non-ASCII ranges (std::wregex path), a non-ASCII whitespace codepoint
 *     was replaced by U+000B before matching, so it is \s but never a member of such a range.
 */
#include <stdbool.h>

#include "tok_internal.h"
#include "tok_unicode.h"

typedef size_t (*match_fn)(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end);

#define L_ AE_UCD_LETTER
#define N_ AE_UCD_NUMBER
#define P_ AE_UCD_PUNCT
#define M_ AE_UCD_MARK
#define S_ AE_UCD_SYMBOL
#define WS_ AE_UCD_WHITESPACE

static bool is_ws(uint16_t f)
{
    return (f & WS_) != 0;
}

/* [^\s\p{L}\p{N}] */
static bool is_other(uint16_t f)
{
    return !(f & (WS_ | L_ | N_));
}

static bool is_nl(uint32_t c)
{
    return c == '\r' || c == '\n';
}

static size_t run_mask(const uint16_t *fl, size_t pos, size_t end, uint16_t mask)
{
    size_t e = pos;
    while (e < end && (fl[e] & mask))
        e++;
    return e - pos;
}

/* The same, stopping after max codepoints: a matcher that takes at most max of a run must not scan all of
 * it, or a long run is cut in time quadratic in its length. */
static size_t run_mask_max(const uint16_t *fl, size_t pos, size_t end, uint16_t mask, size_t max)
{
    size_t e = pos;
    while (e < end && e - pos < max && (fl[e] & mask))
        e++;
    return e - pos;
}

static size_t run_other(const uint16_t *fl, size_t pos, size_t end)
{
    size_t e = pos;
    while (e < end && is_other(fl[e]))
        e++;
    return e - pos;
}

/* The codepoint a std::wregex saw: non-ASCII whitespace had become U+000B. */
static uint32_t wide(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    return (cp[i] > 0x7F && is_ws(fl[i])) ? 0x0B : cp[i];
}

struct cp_range {
    uint32_t lo, hi;
};

static bool in_ranges(uint32_t c, const struct cp_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi)
            return true;
    return false;
}

#define IN(c, table) in_ranges((c), (table), sizeof(table) / sizeof((table)[0]))

/* 's|'t|'re|'ve|'m|'ll|'d, with the letters folded to lower case when fold is true. */
static size_t match_contraction(const uint32_t *cp, size_t pos, size_t end, bool fold)
{
    if (cp[pos] != '\'' || pos + 1 >= end)
        return 0;
    uint32_t a = cp[pos + 1];
    if (fold && a >= 'A' && a <= 'Z')
        a += 32;
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (pos + 2 >= end)
        return 0;
    uint32_t b = cp[pos + 2];
    if (fold && b >= 'A' && b <= 'Z')
        b += 32;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s*[\r\n]+|\s+(?!\S)|\s+ at a whitespace codepoint (the tail of the Llama 3 family). */
static size_t match_ws_tail(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end, bool plain_ws)
{
    size_t k = run_mask(fl, pos, end, WS_);
    if (k == 0)
        return 0;
    size_t last_nl = 0;
    for (size_t i = pos; i < pos + k; i++)
        if (is_nl(cp[i]))
            last_nl = i + 1;
    if (last_nl)
        return last_nl - pos;
    if (pos + k == end)
        return k;
    if (k > 1)
        return k - 1;
    return plain_ws ? 1 : 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static size_t m_gpt2(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    size_t n = match_contraction(cp, pos, end, false);
    if (n)
        return n;
    size_t q = pos + (cp[pos] == ' ');
    if (q < end) {
        size_t sp = q - pos;
        if (fl[q] & L_)
            return sp + run_mask(fl, q, end, L_);
        if (fl[q] & N_)
            return sp + run_mask(fl, q, end, N_);
        if (is_other(fl[q]))
            return sp + run_other(fl, q, end);
    }
    size_t k = run_mask(fl, pos, end, WS_);
    if (k == 0)
        return 0;
    if (pos + k == end)
        return k;
    return k - 1;
}

/* Llama 3 (max_digits 3) and Qwen2 (1):
 * (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t match_llama3(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end, size_t max_digits)
{
    size_t n = match_contraction(cp, pos, end, true);
    if (n)
        return n;
    if (fl[pos] & L_)
        return run_mask(fl, pos, end, L_);
    if (!is_nl(cp[pos]) && !(fl[pos] & N_) && pos + 1 < end && (fl[pos + 1] & L_))
        return 1 + run_mask(fl, pos + 1, end, L_);
    if (fl[pos] & N_)
        return run_mask_max(fl, pos, end, N_, max_digits);
    size_t q = pos + (cp[pos] == ' ');
    if (q < end && is_other(fl[q])) {
        size_t e = q + run_other(fl, q, end);
        while (e < end && is_nl(cp[e]))
            e++;
        return e - pos;
    }
    return match_ws_tail(cp, fl, pos, end, true);
}

static size_t m_llama3(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_llama3(cp, fl, pos, end, 3);
}

static size_t m_qwen2(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_llama3(cp, fl, pos, end, 1);
}

/* [\r\n] */
static size_t m_newline(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)fl;
    (void)end;
    return is_nl(cp[pos]) ? 1 : 0;
}

/* \p{N} and \p{N}+ */
static size_t m_digit(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)cp;
    (void)end;
    return (fl[pos] & N_) ? 1 : 0;
}

static size_t m_digits(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)cp;
    return run_mask(fl, pos, end, N_);
}

/* \p{N}{1,3} */
static size_t m_digits3(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)cp;
    return run_mask_max(fl, pos, end, N_, 3);
}

/* [0-9][0-9][0-9] */
static size_t m_ascii_digits3(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)fl;
    if (end - pos < 3)
        return 0;
    for (size_t i = pos; i < pos + 3; i++)
        if (cp[i] < '0' || cp[i] > '9')
            return 0;
    return 3;
}

/* \s?X+ for a class X that holds no whitespace. */
typedef bool (*class_fn)(const uint32_t *cp, const uint16_t *fl, size_t i);

static size_t match_ws_opt_run(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end, class_fn in)
{
    size_t q = pos;
    if (is_ws(fl[pos]) && pos + 1 < end && in(cp, fl, pos + 1))
        q = pos + 1;
    else if (!in(cp, fl, pos))
        return 0;
    while (q < end && in(cp, fl, q))
        q++;
    return q - pos;
}

/* DeepSeek LLM's cased-letter class (A-Za-zµÀ-ÖØ-öø-ƺ...) */
static const struct cp_range ds_letters[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6},
    {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293}, {0x0295, 0x02AF}, {0x0370, 0x0373},
    {0x0376, 0x0377}, {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
    {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481}, {0x048A, 0x052F},
    {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F},
    {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* [!-/:-~！-／：-～‘-‟　-。] */
static const struct cp_range ds_punct[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
};

/* [一-龥ࠀ-一가-퟿] */
static const struct cp_range ds_cjk[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

/* [一-龥぀-ゟ゠-ヿ] */
static const struct cp_range ds3_cjk[] = {{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}};

static bool in_ds_letters(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    return IN(wide(cp, fl, i), ds_letters);
}

static bool in_ds_punct(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    return IN(wide(cp, fl, i), ds_punct);
}

static bool in_letter(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    (void)cp;
    return (fl[i] & L_) != 0;
}

static bool in_punct(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    (void)cp;
    return (fl[i] & P_) != 0;
}

/* \s?[A-Za-zµÀ-ÖØ-öø-ƺ...]+ */
static size_t m_ds_letters(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_ws_opt_run(cp, fl, pos, end, in_ds_letters);
}

/* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
static size_t m_ds_punct(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_ws_opt_run(cp, fl, pos, end, in_ds_punct);
}

/* \s+$. split_once never calls it: the regex matches at most once in a piece, on its trailing whitespace,
 * which split_once finds directly (trying every position of a long whitespace run would be quadratic). */
static size_t m_ws_at_end(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)cp;
    size_t k = run_mask(fl, pos, end, WS_);
    return (k && pos + k == end) ? k : 0;
}

/* [一-龥ࠀ-一가-퟿]+ */
static size_t m_ds_cjk(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    size_t e = pos;
    while (e < end && IN(wide(cp, fl, e), ds_cjk))
        e++;
    return e - pos;
}

/* [一-龥぀-ゟ゠-ヿ]+ */
static size_t m_ds3_cjk(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    size_t e = pos;
    while (e < end && IN(wide(cp, fl, e), ds3_cjk))
        e++;
    return e - pos;
}

/* \s?\p{L}+ */
static size_t m_ws_letters(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_ws_opt_run(cp, fl, pos, end, in_letter);
}

/* \s?\p{P}+ */
static size_t m_ws_punct(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_ws_opt_run(cp, fl, pos, end, in_punct);
}

/* [\p{P}\$\+<=>\^~\|]+ (and with ` for Falcon) */
static size_t match_punct_run(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end, bool backtick)
{
    size_t e = pos;
    while (e < end) {
        uint32_t c = cp[e];
        bool in = (fl[e] & P_) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
                  c == '~' || c == '|' || (backtick && c == '`');
        if (!in)
            break;
        e++;
    }
    return e - pos;
}

static size_t m_punct_run(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_punct_run(cp, fl, pos, end, false);
}

static size_t m_punct_run_falcon(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    return match_punct_run(cp, fl, pos, end, true);
}

/*  ?[^(\s|.,!?…。，、।۔،)]+ */
static bool in_bloom_word(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    static const uint32_t stop[] = {'(', '|', '.', ',', '!', '?', ')', 0x2026, 0x3002, 0xFF0C, 0x3001,
                                    0x0964, 0x06D4, 0x060C};
    if (is_ws(fl[i]))
        return false;
    uint32_t c = wide(cp, fl, i);
    for (size_t k = 0; k < sizeof stop / sizeof stop[0]; k++)
        if (c == stop[k])
            return false;
    return true;
}

static size_t m_bloom(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    size_t q = pos;
    if (cp[pos] == ' ' && pos + 1 < end && in_bloom_word(cp, fl, pos + 1))
        q = pos + 1;
    else if (!in_bloom_word(cp, fl, pos))
        return 0;
    while (q < end && in_bloom_word(cp, fl, q))
        q++;
    return q - pos;
}

/* DeepSeek V3, third regex:
 * [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 *  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static bool is_ascii_punct(uint32_t c)
{
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
}

static bool is_ascii_alpha(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_p_or_s(const uint32_t *cp, const uint16_t *fl, size_t i)
{
    return (fl[i] & P_) || ((fl[i] & S_) && cp[i] != '~');
}

static size_t m_ds3_main(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    if (is_ascii_punct(cp[pos]) && pos + 1 < end && is_ascii_alpha(cp[pos + 1])) {
        size_t e = pos + 1;
        while (e < end && is_ascii_alpha(cp[e]))
            e++;
        return e - pos;
    }
    if (!is_nl(cp[pos]) && !(fl[pos] & L_) && !is_p_or_s(cp, fl, pos) && pos + 1 < end &&
        (fl[pos + 1] & (L_ | M_)))
        return 1 + run_mask(fl, pos + 1, end, L_ | M_);
    if (fl[pos] & (L_ | M_))
        return run_mask(fl, pos, end, L_ | M_);
    size_t q = pos + (cp[pos] == ' ');
    if (q < end && is_p_or_s(cp, fl, q)) {
        size_t e = q;
        while (e < end && is_p_or_s(cp, fl, e))
            e++;
        while (e < end && is_nl(cp[e]))
            e++;
        return e - pos;
    }
    return match_ws_tail(cp, fl, pos, end, true);
}

/* Chameleon: <sentinel:[0-9]+> */
static bool has_ascii(const uint32_t *cp, size_t pos, size_t end, const char *s)
{
    for (; *s; s++, pos++)
        if (pos >= end || cp[pos] != (uint8_t)*s)
            return false;
    return true;
}

static size_t m_cham_sentinel(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)fl;
    if (!has_ascii(cp, pos, end, "<sentinel:"))
        return 0;
    size_t e = pos + 10, d = e;
    while (e < end && cp[e] >= '0' && cp[e] <= '9')
        e++;
    if (e == d || e >= end || cp[e] != '>')
        return 0;
    return e + 1 - pos;
}

/* (IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z */
static size_t m_cham_image(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)fl;
    if (!has_ascii(cp, pos, end, "IMGIMG"))
        return 0;
    size_t e = pos + 6, n = 0;
    while (e < end && n < 4 && cp[e] >= 'A' && cp[e] <= 'I')
        e++, n++;
    if (n == 0 || e >= end || cp[e] != 'Z')
        return 0;
    return e + 1 - pos;
}

/* ([\t\n]|    |  ) */
static size_t m_cham_space(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)fl;
    if (cp[pos] == '\t' || cp[pos] == '\n')
        return 1;
    if (has_ascii(cp, pos, end, "    "))
        return 4;
    if (has_ascii(cp, pos, end, "  "))
        return 2;
    return 0;
}

/* [\p{P}!-/:-@\[-`{-~] */
static size_t m_cham_punct(const uint32_t *cp, const uint16_t *fl, size_t pos, size_t end)
{
    (void)end;
    return ((fl[pos] & P_) || is_ascii_punct(cp[pos])) ? 1 : 0;
}

#define MAX_REGEXES 6

static const match_fn split_sets[AE_TOK_SPLIT_COUNT][MAX_REGEXES] = {
    [AE_TOK_SPLIT_DEFAULT] = {m_punct_run, m_gpt2, m_digits, m_ascii_digits3},
    [AE_TOK_SPLIT_GPT2] = {m_gpt2},
    [AE_TOK_SPLIT_LLAMA3] = {m_llama3},
    [AE_TOK_SPLIT_QWEN2] = {m_qwen2},
    [AE_TOK_SPLIT_DEEPSEEK_LLM] = {m_newline, m_ds_letters, m_ds_punct, m_ws_at_end, m_ds_cjk, m_digits},
    [AE_TOK_SPLIT_DEEPSEEK_CODER] = {m_newline, m_ws_letters, m_ws_punct, m_ds_cjk, m_digit},
    [AE_TOK_SPLIT_DEEPSEEK3_LLM] = {m_digits3, m_ds3_cjk, m_ds3_main},
    [AE_TOK_SPLIT_FALCON] = {m_punct_run_falcon, m_gpt2, m_ascii_digits3},
    [AE_TOK_SPLIT_STARCODER] = {m_digit, m_gpt2},
    [AE_TOK_SPLIT_BLOOM] = {m_bloom},
    [AE_TOK_SPLIT_VIKING] = {m_bloom, m_digit},
    [AE_TOK_SPLIT_CHAMELEON] = {m_cham_sentinel, m_cham_image, m_cham_space, m_digit, m_cham_punct, m_gpt2},
};

/* Cuts each piece of in[0..n_in) with one regex into out; returns the new piece count. */
static size_t split_once(match_fn match, const uint32_t *cp, const uint16_t *fl, const size_t *in, size_t n_in,
                         size_t *out)
{
    size_t n_out = 0, start = 0;
    for (size_t w = 0; w < n_in; w++) {
        size_t end = start + in[w], gap = start, pos = start;
        if (match == m_ws_at_end) {
            size_t t = end;
            while (t > start && is_ws(fl[t - 1]))
                t--;
            if (t > start)
                out[n_out++] = t - start;
            if (t < end)
                out[n_out++] = end - t;
            start = end;
            continue;
        }
        while (pos < end) {
            size_t m = match(cp, fl, pos, end);
            if (m == 0) {
                pos++;
                continue;
            }
            if (pos > gap)
                out[n_out++] = pos - gap;
            out[n_out++] = m;
            pos += m;
            gap = pos;
        }
        if (end > gap)
            out[n_out++] = end - gap;
        start = end;
    }
    return n_out;
}

void ae_tok_pretokenize(enum ae_tok_split split, const uint32_t *cp, const uint16_t *fl, size_t n,
                        size_t *words, size_t *scratch, size_t *n_words)
{
    if (n == 0) {
        *n_words = 0;
        return;
    }
    size_t *cur = words, *next = scratch, count = 1;
    cur[0] = n;
    for (size_t r = 0; r < MAX_REGEXES && split_sets[split][r]; r++) {
        count = split_once(split_sets[split][r], cp, fl, cur, count, next);
        size_t *tmp = cur;
        cur = next;
        next = tmp;
    }
    if (cur != words)
        for (size_t i = 0; i < count; i++)
            words[i] = cur[i];
    *n_words = count;
}
