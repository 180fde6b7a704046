#!/bin/sh
# make loadtest: a model served on loopback (PROGRAM --serve) under CLIENTS concurrent streaming clients
# for SECONDS (tests/serve/loadtest.mjs), after a single-stream run of the same kind for the baseline.
# With LLAMA_SERVER=path/to/llama-server, llama.cpp's server gets the same load, with the same slots,
# context per slot, threads and model, in the same command.
# usage: loadtest.sh AETHERC SHARED_DIR
# settings (environment): LOADTEST_MODEL (a GGUF file; default stories260K), LOADTEST_SECONDS (600),
# LOADTEST_CLIENTS (64), LOADTEST_PARALLEL (16), LOADTEST_CTX (context per slot, 256),
# LOADTEST_MAX_TOKENS (64), THREADS (nproc), LOADTEST_BASE_SECONDS (the single-stream run: a tenth of
# LOADTEST_SECONDS, from 5 to 60), LLAMA_SERVER_ARGS (more flags for llama-server, e.g. --poll 0).
# LOADTEST_SWEEP="1 4 16" instead measures the batching speed-up: for each N, a server with --parallel N
# under N clients for LOADTEST_BASE_SECONDS, and the aggregate tokens/s over the first N's.
set -eu
aetherc=$1
model=${LOADTEST_MODEL:-$2/models/stories260K.gguf}
seconds=${LOADTEST_SECONDS:-600}
clients=${LOADTEST_CLIENTS:-64}
parallel=${LOADTEST_PARALLEL:-16}
ctx=${LOADTEST_CTX:-256}
max_tokens=${LOADTEST_MAX_TOKENS:-64}
threads=${THREADS:-$(nproc)}
base=${LOADTEST_BASE_SECONDS:-$(( seconds / 10 < 60 ? (seconds / 10 > 5 ? seconds / 10 : 5) : 60 ))}
dir=$(dirname "$aetherc")/loadtest
client=$(dirname "$0")/../tests/serve/loadtest.mjs
[ -f "$model" ] || { echo "loadtest: $model is missing" >&2; exit 1; }
command -v node >/dev/null || { echo "loadtest: node is missing (apt-get install nodejs)" >&2; exit 1; }
mkdir -p "$dir"
"$aetherc" "$model" -o "$dir/model" --ctx "$ctx" >/dev/null

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

wait_ready() { # url pid
    i=0
    until curl -sf "$1/health" >/dev/null 2>&1; do
        kill -0 "$2" 2>/dev/null || { echo "loadtest: the server exited" >&2; exit 1; }
        i=$((i + 1)); [ $i -lt 600 ] || { echo "loadtest: the server did not start" >&2; exit 1; }
        sleep 0.1
    done
}

run_load() { # name url pid
    node "$client" --url "$2" --clients 1 --seconds "$base" --max-tokens "$max_tokens" --label "$1 single" \
        --json "$dir/$1-single.json"
    node "$client" --url "$2" --clients "$clients" --seconds "$seconds" --max-tokens "$max_tokens" --pid "$3" \
        --label "$1 x$clients" --json "$dir/$1-load.json"
}

if [ -n "${LOADTEST_SWEEP:-}" ]; then
    for n in $LOADTEST_SWEEP; do
        for server in aether ${LLAMA_SERVER:+llama}; do
            port=$(free_port)
            if [ $server = aether ]; then
                "$dir/model" --serve --port "$port" --parallel "$n" --ctx "$ctx" -t "$threads" 2>"$dir/sweep.log" &
            else
                "$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$port" -np "$n" -c $((ctx * n)) -t "$threads" \
                    -tb "$threads" ${LLAMA_SERVER_ARGS:-} 2>"$dir/sweep.log" >/dev/null &
            fi
            pid=$!
            wait_ready "http://127.0.0.1:$port" $pid
            node "$client" --url "http://127.0.0.1:$port" --clients "$n" --seconds "$base" --max-tokens "$max_tokens" \
                --label "$server --parallel $n" --json "$dir/sweep-$server-$n.json" >/dev/null
            kill -TERM $pid
            wait $pid || true
        done
    done
    node -e '
const fs = require("fs"), dir = process.argv[1], ns = process.argv[2].split(" ").filter(Boolean);
const servers = ["aether", "llama"].filter((s) => fs.existsSync(`${dir}/sweep-${s}-${ns[0]}.json`));
console.log(`| slots and clients | ${servers.map((s) => `${s} tokens/s | ${s} speed-up | ${s} per token p50 ms`).join(" | ")} |`);
console.log(`|---|${servers.map(() => "---|---|---").join("|")}|`);
const first = {};
for (const n of ns) {
    const cells = servers.map((s) => {
        const j = JSON.parse(fs.readFileSync(`${dir}/sweep-${s}-${n}.json`));
        first[s] ??= j.tokens_per_s;
        return `${j.tokens_per_s} | ${(j.tokens_per_s / first[s]).toFixed(2)} | ${j.token_latency_ms.p50}`;
    });
    console.log(`| ${n} | ${cells.join(" | ")} |`);
}' "$dir" "$LOADTEST_SWEEP"
    exit 0
fi

port=$(free_port)
"$dir/model" --serve --port "$port" --parallel "$parallel" --queue 1024 --ctx "$ctx" -t "$threads" \
    2>"$dir/aether-server.log" &
pid=$!
wait_ready "http://127.0.0.1:$port" $pid
run_load aether "http://127.0.0.1:$port" $pid
kill -TERM $pid
wait $pid || { echo "loadtest: the server did not exit cleanly after SIGTERM" >&2; exit 1; }

if [ -n "${LLAMA_SERVER:-}" ]; then
    port=$(free_port)
    "$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$port" -np "$parallel" -c $((ctx * parallel)) \
        -t "$threads" -tb "$threads" ${LLAMA_SERVER_ARGS:-} 2>"$dir/llama-server.log" >/dev/null &
    pid=$!
    wait_ready "http://127.0.0.1:$port" $pid
    run_load llama "http://127.0.0.1:$port" $pid
    kill -TERM $pid
    wait $pid || true
fi

# The table: throughput under load over a single stream, latencies, memory.
node -e '
const fs = require("fs"), dir = process.argv[1], names = process.argv.slice(2);
console.log("| server | requests | errors | tokens/s single | tokens/s loaded | speed-up | TTFT p50/p99 ms | per token p50/p99 ms | RSS start/warm/end MiB |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const n of names) {
    if (!fs.existsSync(`${dir}/${n}-load.json`)) continue;
    const s = JSON.parse(fs.readFileSync(`${dir}/${n}-single.json`)), l = JSON.parse(fs.readFileSync(`${dir}/${n}-load.json`));
    const mib = (k) => k === null ? "?" : (k / 1024).toFixed(1);
    console.log(`| ${n} | ${l.requests} | ${l.errors} | ${s.tokens_per_s} | ${l.tokens_per_s} | ${(l.tokens_per_s / s.tokens_per_s).toFixed(2)} | ` +
                `${l.ttft_ms.p50}/${l.ttft_ms.p99} | ${l.token_latency_ms.p50}/${l.token_latency_ms.p99} | ` +
                `${mib(l.rss_kib.start)}/${mib(l.rss_kib.warm)}/${mib(l.rss_kib.end)} |`);
}' "$dir" aether llama
