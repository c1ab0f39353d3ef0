# mk/bench.mk — `goipc bench` (issue 8): every IPC mechanism side by side.
#
#   make bench-ipc     the default suite (64 B, every mechanism, 5 runs per
#                      point), printed and written to build/bench/results.*
#   make test-bench    the bench package's tests (two processes per
#                      mechanism, payloads verified; JSON; strace counts;
#                      the HTML report rendered in headless chromium)
#   make bench-peers   build the cross-language peers of `goipc bench
#                      --peers`, the ping-pong examples (examples/ping-pong):
#                      C (build/bin/goipc-ping-c), Python
#                      (examples/ping-pong/python/ping.py, run with
#                      build/venv's python) and Rust
#                      (bindings/rust/target/release/examples/ping_pong)
#   make bench-langs   the default suite plus the C, Python, Rust and Go
#                      peers' rows (64 B): build/bench/langs.*
#   make test-bench-peers  each peer over goipc and unix against the Go
#                      consumer: the JSON has both rows per language with
#                      sane percentiles; a corrupted echo makes every peer
#                      fail with an {"error"} line (correctness, not speed)
#   make bench-floor   a 64 B round trip from the bare ring in C up to goipc
#                      ping/pong, and each side of goipc against a C end,
#                      rows interleaved (docs/PERFORMANCE.md 32-33)
#   make bench-server  goipc pong as a server (issue 11): idle connections,
#                      slowloris, N producers, CPU hogs, park-at-once, each
#                      against a Unix-socket echo server in the same run:
#                      build/bench/server.{txt,json} (about 2 minutes)
#
# bench-ipc (and `make bench`) never needs the peers.
# BENCH_SERVER_FLAGS adds flags to bench-server, e.g. '--idle 2000 --load-time 5s'.
# BENCH_FLAGS adds flags, e.g. make bench-ipc BENCH_FLAGS='--sizes 64,1K,64K,1M'

BENCH_OUT  := $(BUILD)/bench
# make bench-floor's programs (test-bench runs one short round of it)
FLOOR_RING := $(BIN)/goipc-floor-ring
FLOOR_PEER := $(BIN)/goipc-floor-peer
FLOOR_TEST := $(BENCH_OUT)/goipc.test
BENCH_SRCS := $(shell find bench -name '*.go' -not -name '*_test.go' 2>/dev/null)
BENCH_FLAGS ?=

BENCH_SERVER_FLAGS ?=

.PHONY: bench-ipc bench-server test-bench chromium bench-peers bench-rust-peer bench-langs test-bench-peers

# The CLI embeds the bench package: rebuild it when the package changes.
$(BIN)/goipc: $(BENCH_SRCS)

bench-ipc: $(BIN)/goipc ## goipc bench, default suite: table on stdout, build/bench/results.json and results.html
	@mkdir -p $(BENCH_OUT)
	$(BIN)/goipc bench $(BENCH_FLAGS) --json $(BENCH_OUT)/results.json --html $(BENCH_OUT)/results.html | tee $(BENCH_OUT)/results.txt

# The table is printed as it is written; the exit status is goipc's (1 only
# when something could not be measured, never because the machine is slow).
bench-server: $(BIN)/goipc ## goipc pong as a server vs a Unix-socket echo server: idle conns, slowloris, N producers, CPU hogs (~2 min): build/bench/server.*
	@mkdir -p $(BENCH_OUT)
	@echo "bench-server: load average $$(cut -d' ' -f1-3 /proc/loadavg) on $$(nproc) cores before the run"
	set -o pipefail; $(BIN)/goipc bench-server $(BENCH_SERVER_FLAGS) --json $(BENCH_OUT)/server.json | tee $(BENCH_OUT)/server.txt

# `make bench` runs the IPC comparison too (before the core's go test -bench).
bench: bench-ipc

# strace counts system calls per message; chromium (with a font) renders the
# HTML report. test-bench installs them (mk/require-debian-packages.sh).
BENCH_DEBS := strace:strace chromium:/usr/bin/chromium \
              fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
SYSTEM_DEPS += $(BENCH_DEBS)

chromium: ## install Debian's chromium (used by the bench HTML render test) unless present
	@$(REQUIRE_DEB) chromium chromium:/usr/bin/chromium fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

test-bench: $(BIN)/goipc $(FLOOR_RING) $(FLOOR_PEER) $(FLOOR_TEST) ## bench: each mechanism two-process with payload checks, JSON schema, strace counts, HTML in headless chromium
	@$(REQUIRE_DEB) test-bench $(BENCH_DEBS)
	$(GO) vet ./bench/ ./cmd/goipc/
	@out=$$(gofmt -l bench cmd/goipc/bench.go cmd/goipc/benchserver.go); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) test -count=1 -timeout 10m ./bench/
	@mkdir -p $(BENCH_OUT)
	$(BIN)/goipc bench --quick -q --mechanisms pipe,goipc --peers go \
	  --json $(BENCH_OUT)/smoke.json --html $(BENCH_OUT)/smoke.html > $(BENCH_OUT)/smoke.txt
	@echo "test-bench: CLI smoke run ok ($(BENCH_OUT)/smoke.txt)"
	@# run.sh fails when a row prints no p50, or ring.c a reply that differs
	@out=$$(bench/floor/run.sh $(FLOOR_RING) $(FLOOR_PEER) $(FLOOR_TEST) $(BIN)/goipc 1 2000) || { echo "$$out"; exit 1; }; \
	  echo "test-bench: bench-floor smoke run ok (1 round of 2000 round trips per row)"

TEST_TARGETS += test-bench

# ---- The floor: from the bare ring in C up to goipc (PERFORMANCE.md 32-33) ----

$(FLOOR_RING): bench/floor/ring.c
	@mkdir -p $(BIN)
	$(CC) -O2 -Wall -Wextra -pthread -o $@ $<

# A C end of a two-process round trip on goipc's rings (libgoipc connects).
$(FLOOR_PEER): bench/floor/peer.c $(CAPI_LIB) $(CAPI_HEADER)
	@mkdir -p $(BIN)
	$(CC) -O2 $(C_STD) $(C_WARN) -I$(BUILD)/include -o $@ $< $(C_LINK)

$(FLOOR_TEST): $(shell find goipc -name '*.go' 2>/dev/null) go.mod
	@mkdir -p $(BENCH_OUT)
	$(GO) test -c -o $@ ./goipc/

.PHONY: bench-floor
bench-floor: $(BIN)/goipc $(FLOOR_RING) $(FLOOR_PEER) $(FLOOR_TEST) ## a 64 B round trip from the bare ring in C up to goipc ping/pong, and each side of goipc against a C end (bench/floor/peer.c), interleaved (ROUNDS=8, N=300000; TACHYON_BENCH_INTER=path adds Tachyon's row)
	bench/floor/run.sh $(FLOOR_RING) $(FLOOR_PEER) $(FLOOR_TEST) $(BIN)/goipc $(or $(ROUNDS),8) $(or $(N),300000)

# ---- Cross-language peers (`goipc bench --peers`, docs/BENCHMARKS.md) ------

BENCH_PEER_LANGS := c,python,rust
BENCH_CARGO      ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)

# C: c-bench-peer (mk/capi.mk). Python: a script of the source tree that
# imports the binding from bindings/python/src, so it needs the venv (for
# flatbuffers) and libgoipc.so, no pip install. Rust: the crate's example.
# The Python peer runs the binding from the source tree, which finds
# goipc._speedups only in build/lib (python-speedups): without it the
# peer's rows measure ctypes calls, about 2x slower per round trip than
# what `pip install` gives (5.0 against 1.6-2.5 µs p50 against goipc pong
# on the 2-vCPU VM; docs/BENCHMARKS.md, the twelfth session's anchors).
bench-peers: lib c-bench-peer $(VENV)/.stamp python-speedups bench-rust-peer ## build the C, Python (with goipc._speedups) and Rust peers of `goipc bench --peers`
	@echo "bench-peers: built the $(BENCH_PEER_LANGS) peers"

# Cargo decides what to rebuild. The target dir is pinned to the one
# bench/peers.go looks in, whatever CARGO_TARGET_DIR says.
bench-rust-peer: lib
	GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) CARGO_TARGET_DIR=$(abspath bindings/rust/target) \
	  $(BENCH_CARGO) build --locked --release --manifest-path bindings/rust/Cargo.toml --features tokio --example ping_pong

bench-langs: $(BIN)/goipc bench-peers ## the default suite (64 B) plus the C, Python, Rust and Go peers' rows: build/bench/langs.*
	@mkdir -p $(BENCH_OUT)
	set -o pipefail; $(BIN)/goipc bench --sizes 64 --peers $(BENCH_PEER_LANGS),go $(BENCH_FLAGS) \
	  --json $(BENCH_OUT)/langs.json --html $(BENCH_OUT)/langs.html | tee $(BENCH_OUT)/langs.txt

# Checks the JSON of a peers run (argv: the file, the languages) or, with
# argv "corrupt", runs each peer command (the rest of argv, one per
# argument) against a unix echo that flips a byte: each must exit non-zero
# with an {"error"} line that names the mismatch.
define BENCH_PEERS_CHECK
import json, os, socket, subprocess, sys, tempfile, threading

def check_json(path, langs):
    rows = json.load(open(path))["results"]
    for lang in langs:
        for mech in ("goipc", "unix-stream"):
            got = [r for r in rows if r["mode"] == "peer-" + lang and r["mechanism"] == mech]
            assert len(got) == 1, "%s %s: %d rows, want 1" % (lang, mech, len(got))
            r = got[0]
            assert not r.get("error"), "%s %s: %s" % (lang, mech, r["error"])
            ps = [r[k] for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns")]
            assert 0 < ps[0] and ps == sorted(ps), "%s %s: percentiles %s" % (lang, mech, ps)
            assert ps[0] < 100000000, "%s %s: p50 %d ns is not a round trip" % (lang, mech, ps[0])
            assert r["size"] == 64 and r["workload"] == "pingpong" and r["iters_per_run"] > 0, r
            print("test-bench-peers: %-6s %-11s p50 %6d ns  p99 %7d ns  (%d round trips)"
                  % (lang, mech, ps[0], ps[2], r["iters_per_run"]))

def corrupt(cmds):
    for cmd in cmds:
        with tempfile.TemporaryDirectory(prefix="goipc-corrupt-") as d:
            corrupt_one(cmd, os.path.join(d, "bad.sock"))

def corrupt_one(cmd, path):
    """A Unix-socket echo server at path flips byte 20 of the first
    message; cmd must exit non-zero naming the byte."""
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    def serve():
        c, _ = ls.accept()
        n = 0
        while True:
            b = c.recv(64 - n)
            if not b:
                break
            buf = bytearray(b)
            if n + len(b) > 20:
                buf[20 - n] ^= 0xFF  # byte 20 of the first message
            n += len(b)
            c.sendall(buf)
            if n >= 64:
                break
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = subprocess.run(cmd.split() + ["--transport", "unix", "--path", path, "--size", "64",
                                      "--iters", "10", "--warmup", "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
    out = p.stdout.decode()
    assert p.returncode != 0, "%s: exit 0 on a corrupted reply: %s" % (cmd, out)
    line = json.loads(out.strip().splitlines()[-1])
    assert "differs" in line.get("error", "") and "byte 20" in line["error"], "%s: %s" % (cmd, out)
    print("test-bench-peers: %s rejects a corrupted reply: %s" % (os.path.basename(cmd.split()[-1]), line["error"]))
    ls.close()

if sys.argv[1] == "corrupt":
    corrupt(sys.argv[2:])
else:
    check_json(sys.argv[1], sys.argv[2].split(","))
endef
export BENCH_PEERS_CHECK

test-bench-peers: $(BIN)/goipc bench-peers ## each language's bench peer over goipc and unix against the Go consumer (correctness, not speed)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/goipc bench --quick -q --mechanisms goipc:default --workloads pingpong --sizes 64 --peers $(BENCH_PEER_LANGS) \
	  --json $(BENCH_OUT)/peers-smoke.json > $(BENCH_OUT)/peers-smoke.txt
	@$(PY) -c "$$BENCH_PEERS_CHECK" $(BENCH_OUT)/peers-smoke.json $(BENCH_PEER_LANGS)
	@$(PY) -c "$$BENCH_PEERS_CHECK" corrupt $(BIN)/goipc-ping-c \
	  "$(PY) examples/ping-pong/python/ping.py" bindings/rust/target/release/examples/ping_pong
	@echo "test-bench-peers: ok ($(BENCH_OUT)/peers-smoke.txt)"

TEST_TARGETS += test-bench-peers
