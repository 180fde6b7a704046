#!/bin/sh
# make size: what a program is made of. Compiles MODEL with its weights in a file beside the program (so
# the program is code and tables only), keeps gcc's link map, and prints the program's size and the
# bytes each object of the link adds: the kernels, the tokenizers' tables, the command line, the model's
# own generated code, libc's start-up (and all of libc in a --static build).
# The CPU-only build (--backend cpu) unless BACKEND says otherwise.
# usage: size.sh AETHERC MODEL [TARGET] [STATIC] [BACKEND]
set -eu
aetherc=$1
model=$2
target=${3:-}
static=${4:-}
backend=${5:-cpu}
dir=$(dirname "$aetherc")/size
[ -f "$model" ] || { echo "size: $model is missing" >&2; exit 1; }
mkdir -p "$dir"
set -- --weights=external --emit-c "$dir" --backend "$backend"
[ -n "$target" ] && set -- "$@" --target "$target"
[ -n "$static" ] && set -- "$@" --static
"$aetherc" "$model" -o "$dir/model_run" "$@" >/dev/null
bytes=$(stat -c %s "$dir/model_run")
echo "$(basename "$model") for ${target:-this machine}${static:+, static}, --backend $backend: $bytes bytes ($((bytes / 1024)) KiB)" \
     "without weights; $(file -b "$dir/model_run" | cut -d, -f1-2)"
echo
python3 "$(dirname "$0")/size_map.py" "$dir/model_run.map" "$bytes"
