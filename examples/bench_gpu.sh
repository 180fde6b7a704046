#!/bin/sh
# make bench-gpu: the Vulkan backend on this machine's GPU. Three models made by aetherc synth (random
# weights, 32k vocabulary): Llama-3.2-1B shapes in Q4_0 and F16 (dim 2048, 16 layers, 32/8 heads, ffn
# 8192, tied embeddings) and Llama-2-7B-like shapes in Q4_0 (dim 4096, 32 layers, 32/8 heads, ffn
# 14336). Each is compiled, then run on the first Vulkan device as llama-bench measures: a 512-token
# prompt, and 128 tokens generated after a 1-token prompt (greedy, EOS ignored), each twice, the first
# with an empty pipeline cache. The table gives prompt and generation speed (the better of two runs),
# their ratios to llama.cpp's numbers on an H100 from
# ../shared/GPU.md (llama.cpp b4747+1, llama-bench pp512/tg128, not run here), the time from exec to the
# first generated token for a 1-token prompt, pipeline creation with a cold and a warm cache, the largest
# difference between the Vulkan and the CPU logits of a 32-token prompt, and the program's size without
# its weights, built with and without the GPU half.
# usage: bench_gpu.sh AETHERC VOCAB.gguf [DIR]     (MODELS="1b-q4_0 7b-q4_0 1b-f16" picks some)
set -eu
aetherc=$1
vocab=$2
dir=${3:-$(dirname "$aetherc")/bench-gpu}
models=${MODELS:-"1b-q4_0 7b-q4_0 1b-f16"}
[ -f "$vocab" ] || { echo "bench-gpu: $vocab (the vocabulary to copy) is missing" >&2; exit 1; }
mkdir -p "$dir"

prompt=$(awk 'BEGIN { printf "1"; for (i = 1; i < 512; i++) printf ",%d", 100 + (i * 7919) % 31000 }')
short=$(awk 'BEGIN { printf "1"; for (i = 1; i < 32; i++) printf ",%d", 100 + (i * 7919) % 31000 }')

field() { sed -n "s/^$1: .*, \([0-9.]*\) tokens\/s).*/\1/p" "$2"; }
# tokens/s of the 128 decode steps of a -n 129 run (its 129th token is sampled, never fed back)
decode_rate() { sed -n 's/^generation: [0-9]* tokens in \([0-9.]*\) ms.*/\1/p' "$1" | awk '{ printf "%.2f", 128000 / $1 }'; }
pipe_ms() { sed -n 's/.*pipelines \([0-9.]*\) ms.*/\1/p' "$1"; }
ttft() { sed -n 's/^time to first token: \([0-9.]*\) ms.*/\1/p' "$1"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }

# llama.cpp on the H100 (../shared/GPU.md): Vulkan pp512, tg128, CUDA pp512, tg128.
ref() {
    case $1 in
    1b-q4_0) echo "28057 374 31130 569" ;;
    7b-q4_0) echo "5833 162 9951 223" ;;
    1b-f16) echo "18645 352 50656 507" ;;
    esac
}

printf '%-8s %8s %8s %13s %13s %9s %13s %10s %9s %13s\n' model "pp512" "tg128" "pp/llama V,C" "tg/llama V,C" \
    "ttft ms" "pipes cold/warm" "max dlogit" "GiB/s tg" "KiB all/cpu"
for m in $models; do
    case $m in
    1b-*) shape="--dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --tied" ;;
    7b-*) shape="--dim 4096 --layers 32 --heads 32 --kv-heads 8 --ffn 14336" ;;
    *) echo "bench-gpu: unknown model $m" >&2; exit 2 ;;
    esac
    type=${m#*-}
    model=$dir/llama$m.gguf
    prog=$dir/llama$m
    # shellcheck disable=SC2086
    [ -f "$model" ] || "$aetherc" synth --arch llama $shape --type "$type" --ctx 4096 --vocab-from "$vocab" --seed 1 \
        -o "$model" >/dev/null 2>&1
    "$aetherc" "$model" -o "$prog" --weights=external >/dev/null
    cpu_kib=-
    if [ "${m#1b}" != "$m" ]; then # the size of a program without the GPU half (the 1B ones are enough)
        "$aetherc" "$model" -o "$prog-cpu" --weights=external --backend cpu >/dev/null
        cpu_kib=$(($(stat -c %s "$prog-cpu") / 1024))
    fi
    rm -rf "$dir/cache-$m"
    for run in 1 2; do
        XDG_CACHE_HOME=$dir/cache-$m "$prog" --device vulkan --tokens "$prompt" -n 1 --temp 0 --timings --ctx 1024 \
            >/dev/null 2>"$dir/$m.pp$run.log" || { cat "$dir/$m.pp$run.log" >&2; exit 1; }
        XDG_CACHE_HOME=$dir/cache-$m "$prog" --device vulkan --tokens 1 -n 129 --temp 0 --ignore-eos --timings --ctx 1024 \
            >/dev/null 2>"$dir/$m.tg$run.log" || { cat "$dir/$m.tg$run.log" >&2; exit 1; }
    done
    pp=$(best "$(field prompt "$dir/$m.pp1.log")" "$(field prompt "$dir/$m.pp2.log")")
    tg=$(best "$(decode_rate "$dir/$m.tg1.log")" "$(decode_rate "$dir/$m.tg2.log")")
    XDG_CACHE_HOME=$dir/cache-$m "$prog" --device vulkan --tokens 1 -n 1 --temp 0 --timings --ctx 1024 >/dev/null \
        2>"$dir/$m.ttft.log"
    XDG_CACHE_HOME=$dir/cache-$m "$prog" --device vulkan --tokens "$short" -n 0 --dump-logits "$dir/$m.vk.logits" \
        --ctx 1024 2>/dev/null
    "$prog" --device cpu --tokens "$short" -n 0 --dump-logits "$dir/$m.cpu.logits" --ctx 1024 2>/dev/null
    dlogit=$(python3 -c "import array,sys
a=array.array('f'); a.frombytes(open(sys.argv[1],'rb').read())
b=array.array('f'); b.frombytes(open(sys.argv[2],'rb').read())
print('%.4f' % max(abs(x - y) for x, y in zip(a, b)))" "$dir/$m.vk.logits" "$dir/$m.cpu.logits")
    set -- $(ref "$m")
    wbytes=$(stat -c %s "$prog.weights")
    gbs=$(awk -v w="$wbytes" -v t="$tg" 'BEGIN { printf "%.0f", w * t / 1073741824 }')
    printf '%-8s %8s %8s %6s,%6s %6s,%6s %9s %6s/%6s %10s %9s %6s/%6s\n' "$m" "$pp" "$tg" "$(ratio "$pp" "$1")" \
        "$(ratio "$pp" "$3")" "$(ratio "$tg" "$2")" "$(ratio "$tg" "$4")" "$(ttft "$dir/$m.ttft.log")" \
        "$(pipe_ms "$dir/$m.pp1.log")" "$(pipe_ms "$dir/$m.pp2.log")" "$dlogit" "$gbs" \
        $(($(stat -c %s "$prog") / 1024)) "$cpu_kib"
done
sed -n 's/^[^:]*: device: //p' "$dir/$(echo "$models" | cut -d' ' -f1).pp1.log" | head -n 1
echo "pp512: a 512-token prompt; tg128: 128 decode steps after a 1-token prompt, greedy, EOS ignored, --ctx 1024;"
echo "ratios: over llama.cpp's Vulkan and CUDA numbers in GPU.md (llama-bench on the same GPU, not run here);"
echo "GiB/s tg: the weights read per second while generating; max dlogit: Vulkan vs CPU, 32-token prompt"
