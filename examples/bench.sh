#!/bin/sh
# make bench: Llama-3.2-1B-shaped models (dim 2048, 16 layers, 32/8 heads, ffn 8192, 32k vocab, tied
# embeddings) made by aetherc synth in each type of TYPES (default q4_0 q8_0 q4_k_m q6_k f16 bf16;
# q4_k_m is llama-quantize's Q4_K_M mix), compiled, and timed on a 512-token prompt and 128 generated
# tokens; with BENCH_7B=1 also a Llama-2-7B-shaped Q4_0 (dim 4096, 32 layers, 32 heads, ffn 11008,
# untied). The same run measures this machine's memory read bandwidth (examples/membw.c: THREADS
# threads reading a buffer the size of the model's weights, each its own slice, with the widest loads
# the CPU has, with and without software prefetch, and as 64-bit words; the best pass of all), once
# before and once after each model, and takes the better of the two, so that a neighbour's burst during
# one measurement does not halve the roofline. Each side's share of the generation roofline is its
# tokens/s over bandwidth / the bytes a token reads. With LLAMA_BENCH=path/to/llama-bench, llama.cpp runs
# the same files in the same command and the table gives our speed over its. The table is Markdown,
# ready for the README.
# make bench-arm runs the same table on an aarch64 board: AETHERC_FLAGS go to every compile, MEMBW_CC
# builds the bandwidth meter (default: cc -march=native, for this machine), RUN (examples/board_run.sh)
# starts every program there, BENCH_DIR is where the files go here.
# A mixture of experts of the same active size joins the table (MOE=0 leaves it out): Mixtral-shaped,
# the same attention, 8 experts of width 4096 per layer and 2 of them per token, 1.0B active of 3.4B
# parameters, Q4_0.
#
# usage: bench.sh AETHERC SHARED_DIR
# environment: THREADS (default: all cores), TYPES, BENCH_7B, MOE, LLAMA_BENCH, LLAMA_REPS (default 3),
#              AETHER_ISA (caps our kernels: scalar, avx2, avx512, amx)
set -eu
aetherc=$1
vocab=$2/models/llama-2-tiny-random.gguf   # a 32000-token SentencePiece vocabulary
dir=${BENCH_DIR:-$(dirname "$aetherc")/bench}
threads=${THREADS:-$(${RUN:-} nproc)}
types=${TYPES:-"q4_0 q8_0 q4_k_m q6_k f16 bf16"}
[ -f "$vocab" ] || { echo "bench: $vocab (the vocabulary to copy) is missing" >&2; exit 1; }
mkdir -p "$dir"
here=$(dirname "$0")
${MEMBW_CC:-cc -march=native} -O2 -pthread -o "$dir/membw" "$here/membw.c"

# A fixed 512-token prompt: BOS, then ids spread over the vocabulary.
prompt=$(awk 'BEGIN { printf "1"; for (i = 1; i < 512; i++) printf ",%d", 100 + (i * 7919) % 31000 }')

field() { sed -n "s/^$1: .*, \([0-9.]*\) tokens\/s).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "-" }'; }
share() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.0f%%", 100 * a / b; else printf "-" }'; }

# llama-bench's avg_ts for the row with n_prompt $2 and n_gen $3 of its CSV ($1).
llama_ts() {
    printf '%s\n' "$1" | awk -F, -v p="$2" -v g="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); col[h] = i } next }
        { np = $col["n_prompt"]; ng = $col["n_gen"]; gsub(/"/, "", np); gsub(/"/, "", ng)
          if (np == p && ng == g) { v = $col["avg_ts"]; gsub(/"/, "", v); printf "%.1f", v } }'
}

# Bytes a decode step reads: every tensor but an untied token_embd (only its rows are read), and of the
# experts' tensors ($2 of every $3 experts: the ones a token chose).
token_bytes() {
    "$aetherc" inspect "$1" --tensors 2>/dev/null | awk -v used="${2:-1}" -v experts="${3:-1}" '
        $1 ~ /\.weight$|\.bias$/ && NF >= 5 { b[$1] = $NF; total += $1 ~ /_exps\.weight$/ ? $NF * used / experts : $NF }
        END { if ("output.weight" in b) total -= b["token_embd.weight"]; print total }'
}

cpuinfo=$(${RUN:-} cat /proc/cpuinfo)
cpu=$(printf '%s\n' "$cpuinfo" | sed -n 's/^model name[[:space:]]*: //p' | head -n 1)
family=$(printf '%s\n' "$cpuinfo" | sed -n 's/^cpu family[[:space:]]*: //p' | head -n 1)
model_id=$(printf '%s\n' "$cpuinfo" | sed -n 's/^model[[:space:]]*: //p' | head -n 1)
flags=$(printf '%s\n' "$cpuinfo" | sed -n 's/^flags[[:space:]]*: //p' | head -n 1)
isa=avx2
case " $flags " in *" avx512_vnni "*) isa=avx512 ;; esac
case " $flags " in *" amx_int8 "*) isa="$isa, AMX" ;; esac
# aarch64: no model name; the implementer and part numbers, and the NEON level from the features
if [ -z "$flags" ]; then
    family=$(printf '%s\n' "$cpuinfo" | sed -n 's/^CPU implementer[[:space:]]*: //p' | head -n 1)
    model_id=$(printf '%s\n' "$cpuinfo" | sed -n 's/^CPU part[[:space:]]*: //p' | head -n 1)
    flags=$(printf '%s\n' "$cpuinfo" | sed -n 's/^Features[[:space:]]*: //p' | head -n 1)
    isa=neon
    case " $flags " in *" asimddp "*) isa=dotprod ;; esac
    case " $flags " in *" i8mm "*) isa=i8mm ;; esac
fi
echo "CPU: $cpu (family $family, model $model_id; $isa), $threads threads; our kernels capped at ${AETHER_ISA:-the best}"
# The 1-minute load average before the run: on cores that other processes share, both sides' numbers
# (llama.cpp's spinning threads most) say more about the neighbours than about the kernels.
load_start=$(${RUN:-} cat /proc/loadavg 2>/dev/null | cut -d' ' -f1)
echo
echo "| model | weights MiB | read GB/s | roofline tg t/s | pp512 t/s | llama.cpp pp512 | pp ratio | tg128 t/s | llama.cpp tg128 | tg ratio | tg % of roofline (ours / llama.cpp) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"

run_one() { # name, experts used, experts, synth flags...
    name=$1 used=$2 experts=$3
    shift 3
    model=$dir/$name.gguf
    [ -f "$model" ] || "$aetherc" synth "$@" --vocab-from "$vocab" --seed 1 -o "$model" >/dev/null 2>&1
    # shellcheck disable=SC2086
    "$aetherc" "$model" -o "$dir/$name" --weights=external ${AETHERC_FLAGS:-} >/dev/null 2>&1
    log=$dir/$name.log
    wbytes=$(stat -c %s "$dir/$name.weights")
    bw_before=$(${RUN:-} "$dir/membw" "$wbytes" "$threads" 2>/dev/null)
    ${RUN:-} "$dir/$name" --tokens "$prompt" -n 128 --temp 0 --ignore-eos --timings -t "$threads" --ctx 1024 \
        >/dev/null 2>"$log"
    pp=$(field prompt < "$log")
    tg=$(field generation < "$log")
    lpp="" ltg=""
    if [ -n "${LLAMA_BENCH:-}" ]; then
        csv=$(${RUN:-} "$LLAMA_BENCH" -m "$model" -p 512 -n 128 -t "$threads" -r "${LLAMA_REPS:-3}" -o csv 2>/dev/null || true)
        lpp=$(llama_ts "$csv" 512 0)
        ltg=$(llama_ts "$csv" 0 128)
    fi
    bw_after=$(${RUN:-} "$dir/membw" "$wbytes" "$threads" 2>/dev/null)
    bw=$(awk -v a="$bw_before" -v b="$bw_after" 'BEGIN { print (a + 0 > b + 0 ? a : b) }')
    tbytes=$(token_bytes "$model" "$used" "$experts")
    roof=$(awk -v bw="$bw" -v b="$tbytes" 'BEGIN { printf "%.1f", bw * 1e9 / b }')
    printf '| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$name" $((wbytes / 1048576)) "$bw" "$roof" \
        "$pp" "${lpp:--}" "$(ratio "$pp" "$lpp")" "$tg" "${ltg:--}" "$(ratio "$tg" "$ltg")" "$(share "$tg" "$roof")" \
        "$(share "$ltg" "$roof")"
}

for t in $types; do
    run_one "llama1b-$t" 1 1 --arch llama --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --type "$t" --tied \
        --ctx 4096
done
if [ "${MOE:-1}" != 0 ]; then
    run_one moe8x-q4_0 2 8 --arch mixtral --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 4096 --experts 8 \
        --experts-used 2 --type q4_0 --tied --ctx 4096
fi
if [ "${BENCH_7B:-0}" = 1 ]; then
    run_one llama7b-q4_0 1 1 --arch llama --dim 4096 --layers 32 --heads 32 --ffn 11008 --type q4_0 --ctx 4096
fi
echo
echo "Prompt 512 tokens, 128 generated, greedy, EOS ignored, --ctx 1024; llama-bench -p 512 -n 128 -r ${LLAMA_REPS:-3}."
echo "Roofline: the read bandwidth of $threads threads over a buffer the size of the weights (the better of a measurement before and one after the model), divided by the bytes a token reads."
echo "Load average (1 min) before the run: ${load_start:-?}$(awk -v a="${load_start:-0}" -v n="$(${RUN:-} nproc)" \
    'BEGIN { if (a + 0 > n / 2) printf "; other processes shared the cores: rerun on an idle machine" }')."
