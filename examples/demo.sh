#!/bin/sh
# The demo: compile the default model (the trained stories260K llama) into a standalone program, run it,
# then run the same model at once in memory through libtcc.
# usage: demo.sh AETHERC SHARED_DIR
set -eu
aetherc=$1
model=$2/models/stories260K.gguf
out=$(dirname "$aetherc")/demo
[ -f "$model" ] || { echo "demo: the default model $model is missing (the shared models folder goes beside the repository)" >&2; exit 1; }
mkdir -p "$out"

echo "== aetherc $model -o $out/stories260K"
"$aetherc" "$model" -o "$out/stories260K"
ls -l "$out/stories260K"

echo
echo "== $out/stories260K -p 'Once upon a time' -n 64 --temp 0 --timings"
"$out/stories260K" -p "Once upon a time" -n 64 --temp 0 --timings
echo

echo
echo "== aetherc run $model -p 'The little dog' -n 48 --temp 0.8 --seed 42   (libtcc, in memory)"
"$aetherc" run "$model" -p "The little dog" -n 48 --temp 0.8 --seed 42
echo
