# mk/examples.mk — examples/<scenario>/<language> (examples/README.md): one
# program per scenario per language, each run against the Go consumer of its
# scenario by `make test-examples` (tests/examples/test_examples.py).
#
#   build/examples/<scenario>-go     go build ./examples/<scenario>/go
#   build/examples/<scenario>-c      the C producers, with pkg-config like any
#                                    program (ping-pong's is build/bin/goipc-ping-c,
#                                    mk/capi.mk, also the bench's C peer)
#   bindings/rust/target/release/examples/{ping_pong,many_producers,zero_copy}
#                                    the crate's examples (bindings/rust/Cargo.toml)
#   examples/<scenario>/python/*.py  run with build/venv's python

EXAMPLE_SCENARIOS := ping-pong many-producers zero-copy
EXAMPLE_OUT       := $(BUILD)/examples
EXAMPLE_GO        := $(EXAMPLE_SCENARIOS:%=$(EXAMPLE_OUT)/%-go)
EXAMPLE_C         := $(EXAMPLE_OUT)/many-producers-c $(EXAMPLE_OUT)/zero-copy-c
EXAMPLE_GO_SRCS   := $(shell find goipc -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum

.PHONY: examples examples-rust test-examples

examples: $(EXAMPLE_GO) $(EXAMPLE_C) $(C_BENCH_PEER) $(CBUILD)/pong examples-rust $(VENV)/.stamp ## build every program of examples/ (examples/README.md)

$(EXAMPLE_OUT)/%-go: examples/%/go/main.go $(EXAMPLE_GO_SRCS)
	@mkdir -p $(@D)
	$(GO) build -o $@ ./examples/$*/go

$(EXAMPLE_OUT)/%-c: examples/%/c/producer.c $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC)
	@$(REQUIRE_DEB) "the C examples" pkg-config:pkg-config
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --cflags goipc) \
	  -o $@ $< $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --libs goipc)

# Cargo decides what to rebuild. The target dir is pinned to the one
# bench/peers.go looks in (ping_pong is the bench's Rust peer). Every build
# of ping_pong (here, mk/bench.mk, mk/interop.mk) has the tokio feature, for
# its --tokio mode: whichever ran last leaves the binary the others use.
examples-rust: lib
	GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) CARGO_TARGET_DIR=$(abspath bindings/rust/target) \
	  $(CARGO) build --locked --release --manifest-path bindings/rust/Cargo.toml --features tokio \
	  --example ping_pong --example many_producers --example zero_copy

test-examples: examples ## run every example against its scenario's Go side (and the Go clients against the other servers): ping-pong, many producers, zero copy, request/response, event loops
	cd tests/examples && PYTHONDONTWRITEBYTECODE=1 timeout 600 $(call PYTEST,examples,test_examples.py)

# The request/response and event-loop scenarios: every language has both
# sides (a client and a server), each run against the Go one.
#   build/examples/{request-response,event-loop}-go
#   build/examples/request-response-c-{client,server}
#   build/c/epoll_ping                the C event-loop client (mk/capi.mk; the C
#                                     tests run it too)
#   bindings/rust/target/release/examples/{request_response,request_response_server,
#                                     event_loop,tokio_pong} (the last two: --features tokio)
EXAMPLE_CALLS_LOOPS_GO := $(EXAMPLE_OUT)/request-response-go $(EXAMPLE_OUT)/event-loop-go
EXAMPLE_CALLS_LOOPS_C  := $(EXAMPLE_OUT)/request-response-c-client $(EXAMPLE_OUT)/request-response-c-server

.PHONY: examples-rust-calls-loops

examples: $(EXAMPLE_CALLS_LOOPS_GO) $(EXAMPLE_CALLS_LOOPS_C) $(CBUILD)/epoll_ping examples-rust-calls-loops

$(EXAMPLE_OUT)/request-response-c-%: examples/request-response/c/%.c $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC)
	@$(REQUIRE_DEB) "the C examples" pkg-config:pkg-config
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --cflags goipc) \
	  -o $@ $< $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --libs goipc) -lpthread

examples-rust-calls-loops: lib
	GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) CARGO_TARGET_DIR=$(abspath bindings/rust/target) \
	  $(CARGO) build --locked --release --manifest-path bindings/rust/Cargo.toml --features tokio \
	  --example request_response --example request_response_server --example event_loop --example tokio_pong

TEST_TARGETS += test-examples
