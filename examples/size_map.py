#!/usr/bin/env python3
"""Reads a GNU ld link map (-Wl,-Map=FILE) and prints the bytes each input object adds to the program's
loaded sections: code (.text), read-only data (.rodata, .eh_frame, ...) and data (.data, .data.rel.ro, ...;
.bss takes no file space and is left out), largest first, then the totals by group.

usage: size_map.py MAP PROGRAM_BYTES
"""
import os
import re
import sys
from collections import defaultdict

# Groups of objects, by where they come from; the first pattern that matches a file's path names it.
GROUPS = [
    (r"libaether_rt\.a\((matmul|ops|quantize|pool|cpu|moe|layout|attention|profile)[a-z0-9_]*\.o\)", "kernels (and --profile's timers)"),
    (r"libaether_rt\.a\((tok_|tokenizer|chat\.o|sampler|utf8)", "text: tokenizers, chat templates, sampler"),
    (r"libaether_rt\.a\((program|chat_loop|device)", "program: command line, main loop"),
    (r"libaether_rt\.a\(serve", "server (--serve)"),
    (r"libaether_rt\.a\((gpu_|vk_)", "Vulkan runtime (devices, upload, dispatch)"),
    (r"libaether_rt\.a\((gguf|pack|types|dequant|error|hash)", "format: GGUF reader, weights pack and hash"),
    (r"libaether_rt\.a", "runtime: other"),
    (r"libsodium\.a", "libsodium (BLAKE2b for the weights' hash)"),
    (r"/cc[^/]*\.o$", "the model's generated code"),
    (r"libc\.a|libm\.a|libpthread\.a|libm-|libmvec", "libc and libm (static)"),
    (r"crt|libc_nonshared|libgcc", "C start-up and libgcc"),
    (r"dynamic linking", "dynamic linking: symbols, relocations, PLT"),
]



# Output sections that are not loaded (debug information, comments): not part of the program's size.
UNLOADED = (".debug", ".comment", ".stab", ".gnu.attributes", ".note.GNU-stack", ".gnu_debuglink", ".symtab",
            ".strtab", ".shstrtab")
# Sections the linker makes for dynamic linking; the map puts them under the first object.
DYNAMIC = (".interp", ".dynsym", ".dynstr", ".gnu.hash", ".hash", ".gnu.version", ".rela", ".dynamic", ".got",
           ".plt", ".note")


def kind(section):
    if section.startswith(".text") or section in (".init", ".fini", ".plt", ".plt.got", ".plt.sec", ".iplt"):
        return "code"
    if section.startswith((".rodata", ".eh_frame", ".gcc_except_table", ".note", ".interp", ".gnu.hash",
                           ".dynsym", ".dynstr", ".gnu.version", ".rela", ".hash")):
        return "rodata"
    if section.startswith(".bss") or section.startswith(".tbss") or section == "COMMON":
        return None
    return "data"


def group_of(path):
    for pattern, name in GROUPS:
        if re.search(pattern, path):
            return name
    return "other"


def short(path):
    if group_of(path) == "the model's generated code":
        return "(the model's generated code)"
    m = re.search(r"([^/]+\.a)\(([^)]+)\)$", path)
    return f"{m.group(1)}({m.group(2)})" if m else os.path.basename(path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("Linker script and memory map"))
    sizes = defaultdict(lambda: defaultdict(int))
    pending = None
    entry = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
    cont = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
    output = ""
    for line in lines[start:]:
        top = re.match(r"^(\.\S+)", line)
        if top:
            output = top.group(1)
            continue
        if output.startswith(UNLOADED):
            continue
        m = entry.match(line)
        if m:
            section, addr, size, path = m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)
        elif pending and cont.match(line):
            m = cont.match(line)
            section, addr, size, path = pending, int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        else:
            pending = line[1:] if re.match(r"^ \S+$", line) else None
            continue
        pending = None
        k = kind(section)
        if addr == 0 or size == 0 or k is None or path.startswith("load address") or section == "*fill*":
            continue
        if section.startswith(DYNAMIC):
            path = "(dynamic linking: symbols, relocations, PLT)"
        sizes[path][k] += size
    total = int(sys.argv[2])
    rows = sorted(sizes.items(), key=lambda kv: -sum(kv[1].values()))
    print(f"{'object':<44} {'code':>8} {'rodata':>8} {'data':>8} {'total':>8}")
    groups = defaultdict(int)
    counted = 0
    for path, k in rows:
        t = sum(k.values())
        counted += t
        groups[group_of(path)] += t
        if t >= 1024:
            print(f"{short(path):<44} {k['code']:>8} {k['rodata']:>8} {k['data']:>8} {t:>8}")
    print(f"(objects under 1 KiB: {sum(1 for _, k in rows if sum(k.values()) < 1024)})")
    print()
    print(f"{'group':<72} {'bytes':>8} {'KiB':>8}")
    for name, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"{name:<72} {t:>8} {t / 1024:>8.1f}")
    print(f"{'ELF headers, alignment (aarch64: the data segment starts on a 64 KiB page)':<72} {total - counted:>8} "
          f"{(total - counted) / 1024:>8.1f}")
    print(f"{'program without weights':<72} {total:>8} {total / 1024:>8.1f}")


if __name__ == "__main__":
    main()
