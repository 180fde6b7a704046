#!/bin/sh
# make bench: Llama-3.2-1B-shaped models (dim 2048, 16 layers, 32/8 heads, ffn 8192, 32k vocab, tied
# embeddings) made by aetherc synth in Q4_0, Q8_0 and F16, and a mixture of experts with the same active
# size (Mixtral-shaped: the same attention, 8 experts of width 4096 per layer, 2 of them per token: 1.0B
# active of 3.4B parameters) in Q4_0, compiled, and timed on a 512-token prompt and 128 generated tokens.
# With LLAMA_BENCH=path/to/llama-bench, llama.cpp runs the same files in the same command and the table
# gives our speed over its. MOE=0 leaves the mixture of experts out.
# usage: bench.sh AETHERC SHARED_DIR
set -eu
aetherc=$1
vocab=$2/models/llama-2-tiny-random.gguf   # a 32000-token SentencePiece vocabulary
dir=$(dirname "$aetherc")/bench
threads=${THREADS:-$(nproc)}
types=${TYPES:-"q4_0 q8_0 f16"}
[ -f "$vocab" ] || { echo "bench: $vocab (the vocabulary to copy) is missing" >&2; exit 1; }
mkdir -p "$dir"

# A fixed 512-token prompt: BOS, then ids spread over the vocabulary.
prompt=$(awk 'BEGIN { printf "1"; for (i = 1; i < 512; i++) printf ",%d", 100 + (i * 7919) % 31000 }')

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
field() { sed -n "s/^$1: .*, \([0-9.]*\) tokens\/s).*/\1/p"; }

printf '%-9s %10s %10s %10s %12s %12s %10s' model "pp512 t/s" "tg128 t/s" "RSS MiB" "gcc build s" "program KiB" "weights MiB"
[ -n "${LLAMA_BENCH:-}" ] && printf ' %12s %12s %8s %8s' "llama pp512" "llama tg128" "pp ratio" "tg ratio"
printf '\n'
# One row: synth the model (once), compile it, time it, and time llama.cpp on the same file.
bench_one() { # NAME SYNTH_FLAGS...
    name=$1
    shift
    model=$dir/$name.gguf
    [ -f "$model" ] || "$aetherc" synth "$@" --tied --ctx 4096 --vocab-from "$vocab" --seed 1 -o "$model" 2>/dev/null
    t0=$(now)
    "$aetherc" "$model" -o "$dir/$name" --weights=external
    t1=$(now)
    log=$dir/$name.log
    "$dir/$name" --tokens "$prompt" -n 128 --temp 0 --ignore-eos --timings -t "$threads" --ctx 1024 \
        >/dev/null 2>"$log"
    pp=$(field prompt < "$log")
    tg=$(field generation < "$log")
    rss=$(sed -n 's/.*peak RSS: \([0-9.]*\) MiB.*/\1/p' "$log")
    size=$(($(stat -c %s "$dir/$name") / 1024))
    wsize=$(($(stat -c %s "$dir/$name.weights") / 1048576))
    printf '%-9s %10s %10s %10s %12s %12s %10s' "$name" "$pp" "$tg" "$rss" "$(secs "$t0" "$t1")" "$size" "$wsize"
    if [ -n "${LLAMA_BENCH:-}" ]; then
        csv=$("$LLAMA_BENCH" -m "$model" -p 512 -n 128 -t "$threads" -r "${LLAMA_REPS:-3}" -o csv 2>/dev/null)
        lpp=$(printf '%s\n' "$csv" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /avg_ts/) c = i }
                                               NR > 1 && $0 ~ /,512,0,|"512","0"/ { gsub(/"/, "", $c); print $c }')
        ltg=$(printf '%s\n' "$csv" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /avg_ts/) c = i }
                                               NR > 1 && $0 ~ /,0,128,|"0","128"/ { gsub(/"/, "", $c); print $c }')
        printf ' %12s %12s %8s %8s' "$lpp" "$ltg" "$(awk -v a="$pp" -v b="$lpp" 'BEGIN { if (b > 0) printf "%.2f", a / b }')" \
            "$(awk -v a="$tg" -v b="$ltg" 'BEGIN { if (b > 0) printf "%.2f", a / b }')"
    fi
    printf '\n'
}

shape="--dim 2048 --layers 16 --heads 32 --kv-heads 8"
for t in $types; do
    # shellcheck disable=SC2086
    bench_one "llama1b-$t" --arch llama $shape --ffn 8192 --type "$t"
done
if [ "${MOE:-1}" != 0 ]; then
    # shellcheck disable=SC2086
    bench_one moe8x-q4_0 --arch mixtral $shape --ffn 4096 --experts 8 --experts-used 2 --type q4_0
fi
# The compile time of the same model with libtcc, for comparison with gcc's.
t0=$(now)
"$aetherc" "$dir/llama1b-q4_0.gguf" -o "$dir/llama1b-q4_0-tcc" --cc tcc --weights=external 2>/dev/null || true
t1=$(now)
echo "q4_0 with --cc tcc: built in $(secs "$t0" "$t1") s (the gcc column above includes packing the weights too)"
echo "threads: $threads; prompt 512 tokens, 128 generated, greedy, EOS ignored; --ctx 1024"
