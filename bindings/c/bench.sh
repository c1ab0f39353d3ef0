#!/usr/bin/env bash
# bench.sh GOIPC_BIN C_BIN_DIR N [ROUNDS] — `make bench-c`: in one run, the
# C->Go round trip over goipc (build/c/ping against `goipc pong`) and the
# same ping/pong between two C processes over a Unix stream socket, 64 B
# each (plus a call, goipc_call, against the send+recv round trip, and for
# information the typed Ping/Pong helpers with a 64 B payload). The three alternate for ROUNDS rounds (default 3), so that a
# burst of load on a shared machine hits all of them alike; the summary
# compares the medians of their p50s. Like the socket baseline's blocking
# I/O, the goipc runs wait without a timeout (--timeout-ms -1).
set -euo pipefail
goipc=$1 cbin=$2 n=${3:-200000} rounds=${4:-3}
dir=$(mktemp -d /tmp/goipc-bench-c.XXXXXX)
pong_pid=
cleanup() { [ -n "$pong_pid" ] && kill "$pong_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

sock=$dir/pong.sock
"$goipc" pong --listen "$sock" > "$dir/pong.out" 2>&1 &
pong_pid=$!
# Wait for the ready line (polling for readiness, not a fixed sleep).
for _ in $(seq 1 500); do
    grep -q 'listening on' "$dir/pong.out" 2>/dev/null && break
    kill -0 "$pong_pid" 2>/dev/null || { echo "goipc pong exited"; cat "$dir/pong.out"; exit 1; }
    sleep 0.01
done
grep -q 'listening on' "$dir/pong.out" || { echo "goipc pong not ready"; exit 1; }

p50() { sed -n 's/^p50_ns=\([0-9]*\).*/\1/p' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for r in $(seq 1 "$rounds"); do
    echo "== round $r/$rounds: goipc, C ping (libgoipc.so) -> Go pong, 64 B, n=$n =="
    "$cbin/ping" --dial "$sock" -n "$n" --size 64 --warmup 10000 --timeout-ms -1 | tee "$dir/goipc.$r"
    echo "== round $r/$rounds: goipc call, C ping --call (goipc_call: one call into Go per round trip) -> Go pong, 64 B =="
    "$cbin/ping" --dial "$sock" -n "$n" --size 64 --warmup 10000 --timeout-ms -1 --call | tee "$dir/call.$r"
    echo "== round $r/$rounds: goipc typed, C ping --typed (goipc_send_ping/goipc_recv_pong) -> Go pong, 64 B payload =="
    "$cbin/ping" --dial "$sock" -n "$n" --size 64 --warmup 10000 --timeout-ms -1 --typed | tee "$dir/typed.$r"
    echo "== round $r/$rounds: baseline, C ping -> C pong over a Unix stream socket, 64 B =="
    "$cbin/unix_pingpong" -n "$n" --size 64 --warmup 10000 | tee "$dir/unix.$r"
    echo
done
g=$(for r in $(seq 1 "$rounds"); do p50 "$dir/goipc.$r"; done | median)
t=$(for r in $(seq 1 "$rounds"); do p50 "$dir/typed.$r"; done | median)
u=$(for r in $(seq 1 "$rounds"); do p50 "$dir/unix.$r"; done | median)
k=$(for r in $(seq 1 "$rounds"); do p50 "$dir/call.$r"; done | median)
awk -v g="$g" -v t="$t" -v u="$u" -v k="$k" -v r="$rounds" 'BEGIN {
    printf "p50 round trip, 64 B, median of %d rounds: goipc C->Go %.2f us (typed Ping/Pong %.2f us), unix socket C<->C %.2f us: goipc is %.1fx lower (target >= 10x)\n", r, g/1e3, t/1e3, u/1e3, u/g
    printf "p50 call, 64 B: goipc_call %.2f us = %.2fx the send+recv round trip (target <= 1.1x)\n", k/1e3, k/g }'
