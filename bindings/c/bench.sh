#!/usr/bin/env bash
# bench.sh GOIPC_BIN C_BIN_DIR N [ROUNDS] — `make bench-c`: in one run, the
# C->Go round trip over goipc (the ping-pong example's C ping, build/c/ping,
# against `goipc pong`) and the same ping/pong between two C processes over
# a Unix stream socket (build/c/ping --transport unix against build/c/pong
# --transport unix), 64 B each; plus a call (ping --call, goipc_call)
# against the send+recv round trip, and for information the typed
# Ping/Pong helpers with a 64 B payload (ping --typed). They alternate for
# ROUNDS rounds (default 3), so that a burst of load on a shared machine
# hits all of them alike; the summary compares the medians of their p50s,
# read from each run's JSON line. Like the socket baseline's blocking I/O,
# the goipc runs wait without a timeout (ping's default, --timeout-ms -1).
set -euo pipefail
goipc=$1 cbin=$2 n=${3:-200000} rounds=${4:-3}
dir=$(mktemp -d /tmp/goipc-bench-c.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# Starts a consumer in the background and waits for its ready line
# (polling for readiness, not a fixed sleep).
start() {
    local out=$1; shift
    "$@" > "$out" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 500); do
        grep -q 'listening on' "$out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { echo "$1 exited"; cat "$out"; exit 1; }
        sleep 0.01
    done
    echo "$1 not ready"; cat "$out"; exit 1
}
start "$dir/pong.out" "$goipc" pong --listen "$dir/pong.sock"
start "$dir/cpong.out" "$cbin/pong" --transport unix --listen "$dir/unix.sock"

p50() { sed -n 's/.*"p50_ns":\([0-9]*\).*/\1/p' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ping() { "$cbin/ping" --iters "$n" --size 64 --warmup 10000 "$@"; }
for r in $(seq 1 "$rounds"); do
    echo "== round $r/$rounds: goipc, C ping (libgoipc.so) -> Go pong, 64 B, n=$n =="
    ping --path "$dir/pong.sock" | tee "$dir/goipc.$r"
    echo "== round $r/$rounds: goipc call, C ping --call (goipc_call: one call into Go per round trip) -> Go pong, 64 B =="
    ping --path "$dir/pong.sock" --call | tee "$dir/call.$r"
    echo "== round $r/$rounds: goipc typed, C ping --typed (goipc_send_ping/goipc_recv_pong) -> Go pong, 64 B payload =="
    ping --path "$dir/pong.sock" --typed | tee "$dir/typed.$r"
    echo "== round $r/$rounds: baseline, C ping -> C pong over a Unix stream socket, 64 B =="
    ping --transport unix --path "$dir/unix.sock" | tee "$dir/unix.$r"
    echo
done
g=$(for r in $(seq 1 "$rounds"); do p50 "$dir/goipc.$r"; done | median)
t=$(for r in $(seq 1 "$rounds"); do p50 "$dir/typed.$r"; done | median)
u=$(for r in $(seq 1 "$rounds"); do p50 "$dir/unix.$r"; done | median)
k=$(for r in $(seq 1 "$rounds"); do p50 "$dir/call.$r"; done | median)
awk -v g="$g" -v t="$t" -v u="$u" -v k="$k" -v r="$rounds" 'BEGIN {
    printf "p50 round trip, 64 B, median of %d rounds: goipc C->Go %.2f us (typed Ping/Pong %.2f us), unix socket C<->C %.2f us: goipc is %.1fx lower (target >= 10x)\n", r, g/1e3, t/1e3, u/1e3, u/g
    printf "p50 call, 64 B: goipc_call %.2f us = %.2fx the send+recv round trip (target <= 1.1x)\n", k/1e3, k/g }'
