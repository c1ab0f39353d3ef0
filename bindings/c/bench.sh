#!/usr/bin/env bash
# bench.sh GOIPC_BIN C_BIN_DIR N — `make bench-c`: in one run, the C->Go
# round trip over goipc (build/c/ping against `goipc pong`) and the same
# ping/pong between two C processes over a Unix stream socket, 64 B each.
# Prints both p50s and their ratio.
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
echo "== baseline: C ping -> C pong over a Unix stream socket, 64 B, n=$n =="
"$cbin/unix_pingpong" -n "$n" --size 64 --warmup 10000 | tee "$dir/unix.txt"
echo
g=$(sed -n 's/^p50_ns=\([0-9]*\).*/\1/p' "$dir/goipc.txt")
u=$(sed -n 's/^p50_ns=\([0-9]*\).*/\1/p' "$dir/unix.txt")
awk -v g="$g" -v u="$u" 'BEGIN {
    printf "p50 round trip, 64 B: goipc C->Go %.2f us, unix socket C<->C %.2f us: goipc is %.1fx lower (target >= 10x)\n", g/1e3, u/1e3, u/g }'
