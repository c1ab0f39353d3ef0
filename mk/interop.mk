# mk/interop.mk — the interop matrix and the demo (issue 7). See
# docs/INTEROP.md and docs/DEMO.md.
#
#   make interop   every producer/consumer pair across C, Python, Rust and Go,
#                  every scenario (interop_tests/run.py); part of `make test`
#   make demo      the README's first command: builds everything, starts a Go
#                  consumer, pings it from Go, C, Python and Rust (the
#                  ping-pong examples), prints one table next to each
#                  language's Unix-socket round trip
#
# The producers of the pingpong and calls scenarios, and of the demo, are
# the ping-pong examples (examples/ping-pong/<lang>, mk/examples.mk and
# mk/capi.mk); the event-loop producers python-asyncio and rust-tokio are
# ping.py --asyncio and ping_pong --tokio (built with the tokio feature). The peers (one program per language,
# interop_tests/peers/<lang>: the test-only scenarios and the consumers) are
# built into build/interop/. Python's are scripts run with build/venv's
# python; they import the binding from bindings/python/src. If a Rust
# program cannot be built (say the Rust binding does not compile), the build
# goes on and the driver fails that language's tests with "binding not
# built" and the log.
#
# INTEROP_FLAGS passes flags to the driver, e.g. make interop INTEROP_FLAGS='-k python'.
# DEMO_N sets the demo's round trips per language and round (default 20000, 3 rounds).

INTEROP_OUT      := $(BUILD)/interop
INTEROP_GO_PEER  := $(INTEROP_OUT)/go-peer
INTEROP_C_PEER   := $(INTEROP_OUT)/c-peer
INTEROP_CARGO    ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
INTEROP_FLAGS    ?=
DEMO_N           ?= 20000
INTEROP_GO_SRCS  := $(shell find interop_tests/peers/go goipc -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum
INTEROP_C_FLAGS  := -std=c11 -D_GNU_SOURCE -O2 -g -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes

.PHONY: interop demo interop-peers interop-rust-peer interop-pings interop-rust-ping interop-deps

interop-deps: ## check the tools the interop matrix and the demo need (go, cc, python3, cargo)
	@missing=; for t in $(GO) $(CC) python3 $(INTEROP_CARGO); do \
	  command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "interop: missing tools:$$missing (install Go, a C compiler, Python 3 with venv, and Rust/cargo)" >&2; exit 1; fi

interop-peers: interop-deps build lib $(VENV)/.stamp python-speedups $(INTEROP_GO_PEER) $(INTEROP_C_PEER) interop-rust-peer interop-pings ## build the interop peers (build/interop/) and the ping-pong examples they run with

# The ping-pong examples: the pingpong and calls producers and the demo's.
interop-pings: $(EXAMPLE_OUT)/ping-pong-go $(CBUILD)/ping $(CBUILD)/pong interop-rust-ping ## build the ping-pong examples the interop matrix and the demo run (examples/ping-pong)

$(INTEROP_GO_PEER): $(INTEROP_GO_SRCS)
	@mkdir -p $(@D)
	$(GO) build -o $@ ./interop_tests/peers/go

$(INTEROP_C_PEER): interop_tests/peers/c/peer.c include/goipc.h $(CAPI_LIB)
	@mkdir -p $(@D)
	$(CC) $(INTEROP_C_FLAGS) -Iinclude -o $@ $< -L$(BUILD)/lib -lgoipc -Wl,-rpath,$(abspath $(BUILD)/lib) -lpthread -lm

# Cargo decides what to rebuild; a failure leaves no peer behind (and its log).
interop-rust-peer: lib
	@mkdir -p $(INTEROP_OUT)
	@rm -f $(INTEROP_OUT)/rust-peer
	@echo "cargo build --release --locked (interop_tests/peers/rust)"
	@if GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) CARGO_TARGET_DIR=$(abspath $(BUILD)/cargo-interop) \
	    $(INTEROP_CARGO) build --release --locked --manifest-path interop_tests/peers/rust/Cargo.toml \
	    > $(INTEROP_OUT)/rust-build.log 2>&1; then \
	  cp $(BUILD)/cargo-interop/release/peer $(INTEROP_OUT)/rust-peer; \
	else \
	  echo "interop: the Rust peer did not build; its tests will fail (log: $(INTEROP_OUT)/rust-build.log):" >&2; \
	  tail -n 15 $(INTEROP_OUT)/rust-build.log >&2; \
	fi

# The Rust ping (the crate's example ping_pong) where bench/peers.go and
# the tests look; a failure leaves it missing (and its log).
interop-rust-ping: lib
	@mkdir -p $(INTEROP_OUT)
	@rm -f bindings/rust/target/release/examples/ping_pong
	@echo "cargo build --release --locked --features tokio --example ping_pong (bindings/rust)"
	@if ! GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) CARGO_TARGET_DIR=$(abspath bindings/rust/target) \
	    $(INTEROP_CARGO) build --release --locked --manifest-path bindings/rust/Cargo.toml --features tokio --example ping_pong \
	    > $(INTEROP_OUT)/rust-ping-build.log 2>&1; then \
	  echo "interop: the Rust ping did not build; its tests will fail (log: $(INTEROP_OUT)/rust-ping-build.log):" >&2; \
	  tail -n 15 $(INTEROP_OUT)/rust-ping-build.log >&2; \
	fi

interop: interop-peers ## the interop matrix: every producer/consumer pair (C, Python, Rust, Go) x every scenario, one line per test
	PYTHONDONTWRITEBYTECODE=1 $(PY) interop_tests/run.py $(INTEROP_FLAGS)

demo: interop-peers ## build everything, start a Go consumer, ping it from Go, C, Python and Rust (examples/ping-pong): p50/p99, msgs/s, next to a Unix socket
	@PYTHONDONTWRITEBYTECODE=1 $(PY) interop_tests/demo.py -n $(DEMO_N)

TEST_TARGETS += interop
