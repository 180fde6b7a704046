#!/bin/sh
# Runs a command on the board named by BOARD (user@host, reachable with ssh and scp) and passes its
# output and exit status back: make bench-arm starts every program this way. Each argument that names a
# file here (the program, a model for llama-bench) is copied to BOARD_DIR on the board first, with
# PROGRAM.weights beside a program, unless the board has a file of that name and size already; the
# command runs with those copies. BOARD_SSH and BOARD_SCP replace ssh and scp.
# usage: board_run.sh COMMAND [ARG...]
set -eu
: "${BOARD:?set BOARD=user@host: an aarch64 machine reachable with ssh}"
dir=${BOARD_DIR:-aether-bench}
ssh=${BOARD_SSH:-ssh}
scp=${BOARD_SCP:-scp}

# Copies a local file to the board unless the same name and size are there already.
put() {
    remote=$($ssh "$BOARD" "stat -c %s '$dir/$(basename "$1")' 2>/dev/null || echo none")
    [ "$remote" = "$(stat -c %s "$1")" ] || $scp -q "$1" "$BOARD:$dir/"
}

quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

$ssh "$BOARD" "mkdir -p '$dir'"
cmd=""
for arg; do
    if [ -f "$arg" ]; then
        put "$arg"
        [ -f "$arg.weights" ] && put "$arg.weights"
        arg=$dir/$(basename "$arg")
    fi
    cmd="$cmd $(quote "$arg")"
done
exec $ssh "$BOARD" "$cmd"
