# mk/rust.mk — the Rust binding (issue 6): the crate in bindings/rust
# (docs/RUST.md). Cargo's target dir is bindings/rust/target (ignored).
#
# The crate's build.rs links build/lib/libgoipc.so (GOIPC_LIBRARY_DIR says
# where; without it, a dependent program gets the static library, see
# docs/RUST.md) and its Go-peer tests and benchmark run build/bin/goipc
# (GOIPC_BIN), so both targets depend on `lib` and `build`.

CARGO      ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
RUST_DIR   := bindings/rust
RUST_ENV    = GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) GOIPC_BIN=$(abspath $(BIN)/goipc)
RUST_CARGO  = $(RUST_ENV) $(CARGO)
RUST_MANIFEST := --manifest-path $(RUST_DIR)/Cargo.toml

.PHONY: test-rust bench-rust bench-rust-tokio

test-rust: lib build ## Rust binding: cargo test with the tokio feature (API, header vs declarations, Go peer, SIGKILL, AsyncConn, examples), cargo doc, clippy -D warnings, rustfmt check
	$(RUST_CARGO) test --locked $(RUST_MANIFEST) --features tokio
	RUSTDOCFLAGS='-D warnings' $(RUST_CARGO) doc --no-deps --locked --quiet $(RUST_MANIFEST) --features tokio
	@if $(RUST_CARGO) clippy --version >/dev/null 2>&1; then \
	  echo "$(RUST_CARGO) clippy --locked $(RUST_MANIFEST) --all-targets --features tokio -- -D warnings"; \
	  $(RUST_CARGO) clippy --locked $(RUST_MANIFEST) --all-targets --features tokio -- -D warnings && \
	  $(RUST_CARGO) clippy --locked $(RUST_MANIFEST) --lib -- -D warnings; \
	else \
	  echo "test-rust: WARNING: cargo clippy is not installed here; lint NOT run" >&2; \
	fi
	@if $(RUST_CARGO) fmt --version >/dev/null 2>&1; then \
	  echo "$(RUST_CARGO) fmt $(RUST_MANIFEST) --check"; \
	  $(RUST_CARGO) fmt $(RUST_MANIFEST) --check; \
	else \
	  echo "test-rust: WARNING: rustfmt is not installed here; format check NOT run" >&2; \
	fi

bench-rust: lib build ## Rust->Go 64 B round trips over goipc (Ping/Pong and raw) next to a Rust UnixStream ping/pong, same run (N=200000)
	$(RUST_CARGO) run --locked $(RUST_MANIFEST) --release --quiet --example bench -- --goipc $(abspath $(BIN)/goipc) -n $${N:-200000}

bench-rust-tokio: lib build ## Rust: one tokio AsyncConn vs one blocking Conn to goipc pong, 64 B round trips and calls, same run (N=100000)
	$(RUST_CARGO) run --locked $(RUST_MANIFEST) --release --quiet --features tokio --example tokio_bench -- --goipc $(abspath $(BIN)/goipc) -n $${N:-100000}

TEST_TARGETS += test-rust
