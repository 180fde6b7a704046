/* Codepoint classes and UTF-8 for the tokenizers (see tok_unicode.h).
 *
 * Lookups are binary searches over the generated range tables, so the tables stay small and
 * read-only: nothing is built at start-up and nothing is shared mutable state.
 */
#include "tok_unicode.h"

uint16_t ae_ucd_flags(uint32_t cp)
{
    if (cp > AE_UCD_MAX_CODEPOINT)
        return AE_UCD_UNDEFINED;
    size_t lo = 0, hi = ae_ucd_flag_range_count; /* the answer is the last range with start <= cp */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ae_ucd_flag_ranges[mid].start <= cp)
            lo = mid;
        else
            hi = mid;
    }
    uint16_t flags = ae_ucd_flag_ranges[lo].flags;
    for (size_t i = 0; i < ae_ucd_white_space_count; i++) {
        if (cp < ae_ucd_white_space[i].first)
            break;
        if (cp <= ae_ucd_white_space[i].last)
            return flags | AE_UCD_WHITESPACE;
    }
    return flags;
}

uint32_t ae_ucd_lower(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    size_t lo = 0, hi = ae_ucd_lowercase_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ae_ucd_lowercase[mid].from < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < ae_ucd_lowercase_count && ae_ucd_lowercase[lo].from == cp) ? ae_ucd_lowercase[lo].to : cp;
}

uint32_t ae_ucd_nfd_first_of(uint32_t cp)
{
    size_t lo = 0, hi = ae_ucd_nfd_first_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ae_ucd_nfd_first[mid].last < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ae_ucd_nfd_first_count && ae_ucd_nfd_first[lo].first <= cp)
        return ae_ucd_nfd_first[lo].value;
    return cp;
}

size_t ae_tok_utf8_len(uint8_t lead)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

static int is_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

uint32_t ae_tok_utf8_decode(const uint8_t *s, size_t n, size_t *used)
{
    uint8_t b = s[0];
    *used = 1;
    if (!(b & 0x80))
        return b;
    if (!(b & 0x40))
        return AE_UCD_REPLACEMENT;
    if (!(b & 0x20)) {
        if (n < 2 || !is_cont(s[1]))
            return AE_UCD_REPLACEMENT;
        *used = 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (!(b & 0x10)) {
        if (n < 3 || !is_cont(s[1]) || !is_cont(s[2]))
            return AE_UCD_REPLACEMENT;
        *used = 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if (!(b & 0x08)) {
        if (n < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3]))
            return AE_UCD_REPLACEMENT;
        uint32_t cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (cp > AE_UCD_MAX_CODEPOINT)
            return AE_UCD_REPLACEMENT;
        *used = 4;
        return cp;
    }
    return AE_UCD_REPLACEMENT;
}

size_t ae_tok_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}
