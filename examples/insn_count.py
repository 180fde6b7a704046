#!/usr/bin/env python3
"""Counts the instructions one decode step of an aarch64 program executes, at each kernel level, under
qemu-user, and the functions they are spent in.

qemu logs each translated block's instructions once (-d in_asm) and each execution of a block (-d exec,
with nochain so that no execution goes unlogged); the count is the sum over executions of the block's
length. One decode step is the difference between generating 2 tokens and 1 after a 1-token prompt, on
one thread (no pool spinning), less the start-up check of randomly chosen weight chunks (BLAKE2b), which
differs between the two runs. Build the program with -g to see function names.

usage: insn_count.py PROGRAM [LEVEL...]   (default levels: scalar neon dotprod i8mm)
"""
import os
import shutil
import subprocess
import sys
from collections import Counter


def run(prog, level, n):
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not qemu:
        sys.exit("insn_count: no qemu-aarch64-static or qemu-aarch64 on PATH")
    # the aarch64 loader and libc of Debian's multiarch libc6:arm64, or else the cross toolchain's copy
    prefix = [] if os.path.exists("/lib/ld-linux-aarch64.so.1") else ["-L", "/usr/aarch64-linux-gnu"]
    cmd = [qemu] + prefix + ["-d", "in_asm,exec,nochain", "-D", "/dev/stderr", prog,
           "--tokens", "1", "-n", str(n), "-t", "1", "--temp", "0", "--ignore-eos", "--print-ids"]
    env = dict(os.environ, AETHER_ISA=level)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         errors="replace")
    length = {}  # block start -> instructions
    start = None
    total = 0
    by_fn = Counter()
    for line in p.stderr:
        if line.startswith("Trace "):
            fields = line.split()
            pc = int(line.split("/")[1], 16)
            k = length.get(pc, 0)
            total += k
            by_fn[fields[-1] if not fields[-1].endswith("]") else "?"] += k
        elif line.startswith("0x"):
            if start is None:
                start = int(line.split(":")[0], 16)
                length[start] = 0
            length[start] += 1
        else:
            start = None
    if p.wait() != 0:
        sys.exit(f"insn_count: {prog} failed at AETHER_ISA={level}")
    return total, by_fn


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    prog = sys.argv[1]
    levels = sys.argv[2:] or ["scalar", "neon", "dotprod", "i8mm"]
    for level in levels:
        _, f1 = run(prog, level, 1)
        _, f2 = run(prog, level, 2)
        diff = Counter(f2)
        diff.subtract(f1)
        # The program checks a few randomly chosen chunks of its weights' hash at start-up: not the step's.
        for fn in list(diff):
            if fn.startswith(("blake2b", "crypto_generichash", "ae_hash")):
                del diff[fn]
        step = sum(diff.values())
        print(f"{level}: {step} instructions in one decode step")
        for fn, k in diff.most_common(6):
            print(f"    {k:>10} {100.0 * k / step:5.1f}%  {fn}")


if __name__ == "__main__":
    main()
