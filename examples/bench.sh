#!/bin/sh
# make bench: Llama-3.2-1B-shaped models (dim 2048, 16 layers, 32/8 heads, ffn 8192, 32k vocab, tied
# embeddings) made by aetherc synth in Q4_0, Q8_0 and F16, compiled, and timed on a 512-token prompt and
# 128 generated tokens. With LLAMA_BENCH=path/to/llama-bench, llama.cpp runs the same files in the same
# command and the table gives our speed over its. AETHERC_FLAGS (e.g. --target aarch64-linux-gnu) go to
# every compile, RUN (e.g. examples/board_run.sh) starts every program and llama-bench, and BENCH_DIR
# says where the models and programs go: make bench-arm runs the same table on a board that way.
# usage: bench.sh AETHERC SHARED_DIR
set -eu
aetherc=$1
vocab=$2/models/llama-2-tiny-random.gguf   # a 32000-token SentencePiece vocabulary
dir=${BENCH_DIR:-$(dirname "$aetherc")/bench}
threads=${THREADS:-$(${RUN:-} nproc)}
types=${TYPES:-"q4_0 q8_0 f16"}
[ -f "$vocab" ] || { echo "bench: $vocab (the vocabulary to copy) is missing" >&2; exit 1; }
mkdir -p "$dir"

# A fixed 512-token prompt: BOS, then ids spread over the vocabulary.
prompt=$(awk 'BEGIN { printf "1"; for (i = 1; i < 512; i++) printf ",%d", 100 + (i * 7919) % 31000 }')

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
field() { sed -n "s/^$1: .*, \([0-9.]*\) tokens\/s).*/\1/p"; }

printf '%-6s %10s %10s %10s %12s %12s %10s' type "pp512 t/s" "tg128 t/s" "RSS MiB" "gcc build s" "program KiB" "weights MiB"
[ -n "${LLAMA_BENCH:-}" ] && printf ' %12s %12s %8s %8s' "llama pp512" "llama tg128" "pp ratio" "tg ratio"
printf '\n'
for t in $types; do
    model=$dir/llama1b-$t.gguf
    [ -f "$model" ] || "$aetherc" synth --arch llama --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 \
        --type "$t" --tied --ctx 4096 --vocab-from "$vocab" --seed 1 -o "$model" 2>/dev/null
    t0=$(now)
    # shellcheck disable=SC2086
    "$aetherc" "$model" -o "$dir/llama1b-$t" --weights=external ${AETHERC_FLAGS:-}
    t1=$(now)
    log=$dir/llama1b-$t.log
    ${RUN:-} "$dir/llama1b-$t" --tokens "$prompt" -n 128 --temp 0 --ignore-eos --timings -t "$threads" --ctx 1024 \
        >/dev/null 2>"$log"
    pp=$(field prompt < "$log")
    tg=$(field generation < "$log")
    rss=$(sed -n 's/.*peak RSS: \([0-9.]*\) MiB.*/\1/p' "$log")
    size=$(($(stat -c %s "$dir/llama1b-$t") / 1024))
    wsize=$(($(stat -c %s "$dir/llama1b-$t.weights") / 1048576))
    printf '%-6s %10s %10s %10s %12s %12s %10s' "$t" "$pp" "$tg" "$rss" "$(secs "$t0" "$t1")" "$size" "$wsize"
    if [ -n "${LLAMA_BENCH:-}" ]; then
        csv=$(${RUN:-} "$LLAMA_BENCH" -m "$model" -p 512 -n 128 -t "$threads" -r "${LLAMA_REPS:-3}" -o csv 2>/dev/null)
        lpp=$(printf '%s\n' "$csv" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /avg_ts/) c = i }
                                               NR > 1 && $0 ~ /,512,0,|"512","0"/ { gsub(/"/, "", $c); print $c }')
        ltg=$(printf '%s\n' "$csv" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /avg_ts/) c = i }
                                               NR > 1 && $0 ~ /,0,128,|"0","128"/ { gsub(/"/, "", $c); print $c }')
        printf ' %12s %12s %8s %8s' "$lpp" "$ltg" "$(awk -v a="$pp" -v b="$lpp" 'BEGIN { if (b > 0) printf "%.2f", a / b }')" \
            "$(awk -v a="$tg" -v b="$ltg" 'BEGIN { if (b > 0) printf "%.2f", a / b }')"
    fi
    printf '\n'
done
# The compile time of the same model with libtcc, for comparison with gcc's (libtcc builds for this
# machine only).
[ -z "${AETHERC_FLAGS:-}" ] || { echo "threads: $threads; prompt 512 tokens, 128 generated, greedy, EOS ignored; --ctx 1024"; exit 0; }
t0=$(now)
"$aetherc" "$dir/llama1b-q4_0.gguf" -o "$dir/llama1b-q4_0-tcc" --cc tcc --weights=external 2>/dev/null || true
t1=$(now)
echo "q4_0 with --cc tcc: built in $(secs "$t0" "$t1") s (the gcc column above includes packing the weights too)"
echo "threads: $threads; prompt 512 tokens, 128 generated, greedy, EOS ignored; --ctx 1024"
