#!/bin/sh
# The demo: what Aether does today with the default model (the trained stories260K llama).
# usage: demo.sh AETHERC SHARED_DIR
set -eu
aetherc=$1
model=$2/models/stories260K.gguf
[ -f "$model" ] || { echo "demo: the default model $model is missing" >&2; exit 1; }
echo "== aetherc inspect $model"
"$aetherc" inspect "$model"
