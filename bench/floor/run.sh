#!/usr/bin/env bash
# bench/floor/run.sh: where a 64 B round trip's time goes, from the bare
# ring in C up to goipc between two processes, rows interleaved round by
# round (the order reversed every other round), medians of the rounds'
# p50s at the end. make bench-floor runs it (ROUNDS=, N=); docs/
# PERFORMANCE.md sections 32 and 33 have runs and what they show.
#
#   c-ring         bench/floor/ring.c: goipc's layout in C, two threads
#   go-ring        the same in Go (BenchmarkRawRingPingPong seqcst+warm)
#   go-ring+locks  plus the four locked instructions of a goipc call
#   goipc-1proc    goipc, two goroutines in one process
#                  (BenchmarkPingPongGoroutines/procs=2)
#   c-2proc        bench/floor/peer.c at both ends: goipc's rings driven
#                  in C between two processes (checks and wakeups, no
#                  locks), connected by libgoipc
#   c/goipc        peer.c's ping against goipc pong: goipc's answering side
#   goipc/c        goipc ping --raw against peer.c's pong: goipc's asking side
#   goipc-2proc    goipc ping --raw against goipc pong
#   tachyon        Tachyon's bench_inter, when TACHYON_BENCH_INTER names
#                  it (../shared/anchors builds it)
#
# Usage: run.sh RING_BINARY PEER_BINARY GOIPC_TEST_BINARY GOIPC_CLI [ROUNDS [N]]
set -euo pipefail
ring=$1 peer=$2 gotest=$3 cli=$4 rounds=${5:-8} n=${6:-300000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gobench() { # gobench PATTERN: the p50 of one go test -bench run
	"$gotest" -test.run '^$' -test.bench "$1" -test.benchtime "${n}x" 2>&1 |
		awk '/^Benchmark/ { for (i = 2; i < NF; i++) if ($(i + 1) == "p50-ns") print $i }'
}

# goping SOCK: goipc ping --raw's p50 in ns ("round trip: min 546ns  p50
# 748ns  p99 1.498µs ...")
goping() {
	"$cli" ping --raw --dial "$1" -n "$n" 2>&1 | awk '{
		for (i = 1; i < NF; i++) if ($i == "p50") {
			v = $(i + 1); scale = 1
			if (sub(/ms$/, "", v)) scale = 1000000
			else if (sub(/µs$/, "", v)) scale = 1000
			else sub(/ns$/, "", v)
			print v * scale; exit
		}
	}'
}

# pair PONG_KIND PING_KIND: one two-process row, each end goipc or c (peer.c)
pair() {
	local sock=$tmp/pong.sock pid
	rm -f "$sock"
	if [[ $1 == goipc ]]; then
		"$cli" pong --listen "$sock" >/dev/null 2>&1 &
	else
		"$peer" pong "$sock" &
	fi
	pid=$!
	for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
	local p50
	if [[ $2 == goipc ]]; then
		p50=$(goping "$sock")
	else
		p50=$("$peer" ping "$sock" "$n" | awk '{ print $3 }')
	fi
	echo "$p50"
	# goipc pong runs until told to stop; peer.c's ends when the ping hangs
	# up, unless the ping never connected
	[[ $1 == goipc || -z $p50 ]] && kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

row() {
	case $1 in
	c-ring) "$ring" 1 "$n" | awk '{ print $4 }' ;;
	go-ring) gobench 'RawRingPingPong/stride=72/seqcst\+warm$' ;;
	go-ring+locks) gobench 'RawRingPingPong/stride=72/seqcst\+warm\+locks$' ;;
	goipc-1proc) gobench 'PingPongGoroutines/procs=2$' ;;
	c-2proc) pair c c ;;
	c/goipc) pair goipc c ;;
	goipc/c) pair c goipc ;;
	goipc-2proc) pair goipc goipc ;;
	tachyon) "$TACHYON_BENCH_INTER" --iterations "$n" 2>/dev/null | awk '/^p50/ { print $2 + 0 }' ;;
	esac
}

rows=(c-ring go-ring go-ring+locks goipc-1proc c-2proc c/goipc goipc/c goipc-2proc)
[[ -n ${TACHYON_BENCH_INTER:-} ]] && rows+=(tachyon)
echo "bench-floor: $rounds rounds of $n round trips per row; load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
for ((r = 1; r <= rounds; r++)); do
	order=("${rows[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#rows[@]} - 1; i >= 0; i--)); do order+=("${rows[i]}"); done
	fi
	line="round $r:"
	for x in "${order[@]}"; do
		v=$(row "$x")
		[[ -n $v ]] || { echo "bench-floor: $x printed no p50" >&2; exit 1; }
		echo "$x $v" >>"$tmp/p50"
		line+=" $x $v"
	done
	echo "$line"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %10s %10s %10s\n' row "p50 median" min max
for x in "${rows[@]}"; do
	awk -v row="$x" '$1 == row { print $2 }' "$tmp/p50" | sort -n |
		awk -v row="$x" '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%-14s %7.0f ns %7.0f ns %7.0f ns\n", row, m, v[1], v[NR] }'
done
