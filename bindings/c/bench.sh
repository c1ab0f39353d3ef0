#!/usr/bin/env bash
# bench.sh GOIPC_BIN C_BIN_DIR N — `make bench-c`: in one run, the C->Go
# round trip over goipc (build/c/ping against `goipc pong`) and the same
# ping/pong between two C processes over a Unix stream socket, 64 B each
# (plus, for information, the typed Ping/Pong helpers with a 64 B payload).
# Prints the p50s and the raw goipc : Unix socket ratio.
set -euo pipefail
goipc=$1 cbin=$2 n=${3:-200000}
dir=$(mktemp -d /tmp/goipc-bench-c.XXXXXX)
pong_pid=
cleanup() { [ -n "$pong_pid" ] && kill "$pong_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

sock=$dir/pong.sock
"$goipc" pong --listen "$sock" > "$dir/pong.out" &
pong_pid=$!
# Wait for the ready line (not a fixed sleep).
for _ in $(seq 1 500); do
    grep -q 'listening on' "$dir/pong.out" 2>/dev/null && break
    kill -0 "$pong_pid" 2>/dev/null || { echo "goipc pong exited"; exit 1; }
    sleep 0.01
done
grep -q 'listening on' "$dir/pong.out" || { echo "goipc pong not ready"; exit 1; }

echo "== goipc: C ping (libgoipc.so) -> Go pong, 64 B, n=$n =="
"$cbin/ping" --dial "$sock" -n "$n" --size 64 --warmup 10000 | tee "$dir/goipc.txt"
echo
echo "== goipc typed: C ping --typed (goipc_send_ping/goipc_recv_pong) -> Go pong, 64 B payload, n=$n =="
"$cbin/ping" --dial "$sock" -n "$n" --size 64 --warmup 10000 --typed | tee "$dir/typed.txt"
echo
echo "== baseline: C ping -> C pong over a Unix stream socket, 64 B, n=$n =="
"$cbin/unix_pingpong" -n "$n" --size 64 --warmup 10000 | tee "$dir/unix.txt"
echo
g=$(sed -n 's/^p50_ns=\([0-9]*\).*/\1/p' "$dir/goipc.txt")
t=$(sed -n 's/^p50_ns=\([0-9]*\).*/\1/p' "$dir/typed.txt")
u=$(sed -n 's/^p50_ns=\([0-9]*\).*/\1/p' "$dir/unix.txt")
awk -v g="$g" -v t="$t" -v u="$u" 'BEGIN {
    printf "p50 round trip, 64 B: goipc C->Go %.2f us (typed Ping/Pong %.2f us), unix socket C<->C %.2f us: goipc is %.1fx lower (target >= 10x)\n", g/1e3, t/1e3, u/1e3, u/g }'
