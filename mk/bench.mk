# mk/bench.mk — `goipc bench` (issue 8): every IPC mechanism side by side.
#
#   make bench-ipc     the default suite (64 B, every mechanism, 5 runs per
#                      point), printed and written to build/bench/results.*
#   make test-bench    the bench package's tests (two processes per
#                      mechanism, payloads verified; JSON; strace counts;
#                      the HTML report rendered in headless chromium)
#
# BENCH_FLAGS adds flags, e.g. make bench-ipc BENCH_FLAGS='--sizes 64,1K,64K,1M'

BENCH_OUT  := $(BUILD)/bench
BENCH_SRCS := $(shell find bench -name '*.go' -not -name '*_test.go' 2>/dev/null)
BENCH_FLAGS ?=

.PHONY: bench-ipc test-bench chromium

# The CLI embeds the bench package: rebuild it when the package changes.
$(BIN)/goipc: $(BENCH_SRCS)

bench-ipc: $(BIN)/goipc ## goipc bench, default suite: table on stdout, build/bench/results.json and results.html
	@mkdir -p $(BENCH_OUT)
	$(BIN)/goipc bench $(BENCH_FLAGS) --json $(BENCH_OUT)/results.json --html $(BENCH_OUT)/results.html | tee $(BENCH_OUT)/results.txt

# `make bench` runs the IPC comparison too (before the core's go test -bench).
bench: bench-ipc

chromium: ## install Debian's chromium (used by the bench HTML render test) unless present
	.ci/install-chromium

test-bench: $(BIN)/goipc ## bench: each mechanism two-process with payload checks, JSON schema, strace counts, HTML in headless chromium
	@if [ "$${CI:-}" = "true" ]; then .ci/install-chromium; \
	 else .ci/install-chromium || echo "test-bench: chromium could not be installed; the HTML render test will skip (it fails in CI)"; fi
	$(GO) vet ./bench/ ./cmd/goipc/
	@out=$$(gofmt -l bench cmd/goipc/bench.go); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) test -count=1 -timeout 10m ./bench/
	@mkdir -p $(BENCH_OUT)
	$(BIN)/goipc bench --quick -q --mechanisms pipe,goipc --peers go \
	  --json $(BENCH_OUT)/smoke.json --html $(BENCH_OUT)/smoke.html > $(BENCH_OUT)/smoke.txt
	@echo "test-bench: CLI smoke run ok ($(BENCH_OUT)/smoke.txt)"

TEST_TARGETS += test-bench
