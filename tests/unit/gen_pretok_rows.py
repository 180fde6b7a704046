#!/usr/bin/env python3
"""Generates the pre-tokenizer rows of tests/unit/check_tokenizer.c with a real regex engine.

llama.cpp splits BPE text with a list of regexes per tokenizer.ggml.pre (src/llama-vocab.cpp);
runtime/text/tok_pretok.c re-implements those lists as hand matchers. This script applies the same
regexes with Python's `regex` module the way llama.cpp applies them (each regex cuts every piece
left by the previous one into its matches and the gaps between them) to random strings drawn from
a pool of letters, digits, punctuation, whitespace, CJK, emoji and combining marks, and prints C
rows {split set, text, word lengths in codepoints}. Two llama.cpp quirks are reproduced: regexes
with literal non-ASCII ranges (its std::wregex path) see non-ASCII whitespace as U+000B, and its
category-collapsed \\p{S} leaves out '~'.

    python3 tests/unit/gen_pretok_rows.py [SEED] [ROWS_PER_SET]
"""
import random
import sys

import regex

WS_NON_ASCII = "\u0085\u00a0\u1680\u2000\u2003\u2006\u200a\u2028\u2029\u202f\u205f\u3000"

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

# DeepSeek LLM's cased-letter class, as codepoint ranges (the same table as tok_pretok.c).
DS_LETTERS = [
    (0x0041, 0x005A), (0x0061, 0x007A), (0x00B5, 0x00B5), (0x00C0, 0x00D6), (0x00D8, 0x00F6),
    (0x00F8, 0x01BA), (0x01BC, 0x01BF), (0x01C4, 0x0293), (0x0295, 0x02AF), (0x0370, 0x0373),
    (0x0376, 0x0377), (0x037B, 0x037D), (0x037F, 0x037F), (0x0386, 0x0386), (0x0388, 0x038A),
    (0x038C, 0x038C), (0x038E, 0x03A1), (0x03A3, 0x03F5), (0x03F7, 0x0481), (0x048A, 0x052F),
    (0x0531, 0x0556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107),
    (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
    (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F),
    (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F),
    (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943),
]


def char_class(ranges):
    return "".join("\\U%08X-\\U%08X" % r for r in ranges)


DS_PUNCT = char_class([(0x21, 0x2F), (0x3A, 0x7E), (0xFF01, 0xFF0F), (0xFF1A, 0xFF5E), (0x2018, 0x201F),
                       (0x3000, 0x3002)])
DS_CJK = char_class([(0x4E00, 0x9FA5), (0x0800, 0x4E00), (0xAC00, 0xD7FF)])
DS3_CJK = char_class([(0x4E00, 0x9FA5), (0x3040, 0x309F), (0x30A0, 0x30FF)])
BLOOM = r" ?[^(\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+"
DS3_MAIN = (r"(?V1)[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}[\p{S}--~]]?[\p{L}\p{M}]+|"
            r" ?[\p{P}[\p{S}--~]]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

WIDE, UNI = True, False  # whether the regex ran on llama.cpp's whitespace-mapped text

SETS = [
    ("DEFAULT", [(r"[\p{P}\$\+<=>\^~\|]+", UNI), (GPT2, UNI), (r"\p{N}+", UNI), (r"[0-9][0-9][0-9]", WIDE)]),
    ("GPT2", [(GPT2, UNI)]),
    ("LLAMA3", [(LLAMA3, UNI)]),
    ("QWEN2", [(QWEN2, UNI)]),
    ("DEEPSEEK_LLM", [(r"[\r\n]", WIDE), (r"\s?[" + char_class(DS_LETTERS) + r"]+", WIDE),
                      (r"\s?[" + DS_PUNCT + r"]+", WIDE), (r"\s+$", WIDE), (r"[" + DS_CJK + r"]+", WIDE),
                      (r"\p{N}+", UNI)]),
    ("DEEPSEEK_CODER", [(r"[\r\n]", WIDE), (r"\s?\p{L}+", UNI), (r"\s?\p{P}+", UNI), (r"[" + DS_CJK + r"]+", WIDE),
                        (r"\p{N}", UNI)]),
    ("DEEPSEEK3_LLM", [(r"\p{N}{1,3}", UNI), (r"[" + DS3_CJK + r"]+", WIDE), (DS3_MAIN, UNI)]),
    ("FALCON", [(r"[\p{P}\$\+<=>\^~\|`]+", UNI), (GPT2, UNI), (r"[0-9][0-9][0-9]", WIDE)]),
    ("STARCODER", [(r"\p{N}", UNI), (GPT2, UNI)]),
    ("BLOOM", [(BLOOM, WIDE)]),
    ("VIKING", [(BLOOM, WIDE), (r"\p{N}", UNI)]),
    ("CHAMELEON", [(r"<sentinel:[0-9]+>", WIDE), (r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", WIDE),
                   (r"([\t\n]|    |  )", WIDE), (r"\p{N}", UNI), (r"[\p{P}!-/:-@\[-`{-~]", UNI), (GPT2, UNI)]),
]

POOL = (list("abcXYZ019 ") * 4 + list("   \t\n\r'sStTrReEvVmMlLdD") * 2 + list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~")
        + list("\u00e9\u00c0\u00b5\u00ff\u00d7\u00f7\u00a1\u00bf\u00ab\u00bb\u00ad\u01c5\u03b1\u2126\u1fbe\u212a"
               "\u0449\u0416\u0556\u10a0\u10d0\u6211\u60f3\u5de5\u4e00\u9fa5\uac00\ud7a3\u3042\u30a2\uff01\uff0f"
               "\uff21\uff5a\uff5e\u2026\u2018\u201d\u3002\uff0c\u3001\u0964\u06d4\u060c\U0001f999\U0001f680"
               "\u2705\u200d\ufe0f\u0301\u0308\u1780\u17b6\u1793\u17cb\u0663\u0969\u0d6c\u00b2\u2163\x01\x7f"
               "\ue000")
        + list(WS_NON_ASCII)
        + ["<sentinel:12>", "IMGIMGABCZ", "IMGIMGABCDEZ", "IMGIMGAZ", "    ", "  ", "'ll", "'RE", " 's", "123456",
           "\r\n", " \n "])


def wide_text(s):
    return "".join("\x0b" if c in WS_NON_ASCII else c for c in s)


def split(s, regexes):
    pieces = [(0, len(s))]
    for pattern, wide in regexes:
        text = wide_text(s) if wide else s
        rx = regex.compile(pattern)
        out = []
        for a, b in pieces:
            prev = a
            for m in rx.finditer(text[a:b]):
                if a + m.start() > prev:
                    out.append((prev, a + m.start()))
                out.append((a + m.start(), a + m.end()))
                prev = a + m.end()
            if prev < b:
                out.append((prev, b))
        pieces = out
    return [b - a for a, b in pieces]


def c_string(s):
    out = ""
    for b in s.encode("utf-8"):
        if chr(b) in "\\\"":
            out += "\\" + chr(b)
        elif 0x20 <= b < 0x7F and chr(b) != "?":  # '?' escaped: no trigraphs
            out += chr(b)
        else:
            out += "\\%03o" % b
    return '"' + out + '"'


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    per_set = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    rng = random.Random(seed)
    for name, regexes in SETS:
        for _ in range(per_set):
            s = "".join(rng.choice(POOL) for _ in range(rng.randint(4, 14)))
            words = " ".join(str(n) for n in split(s, regexes))
            print('    {AE_TOK_SPLIT_%s, %s, "%s"},' % (name, c_string(s), words))


if __name__ == "__main__":
    main()
