# goipc — the front door. `make help` lists the targets.
#
# Sub-makefiles in mk/ add their own targets and append to TEST_TARGETS,
# so that each area (C ABI, FlatBuffers, bindings, bench) owns one file.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= go
BUILD   := build
BIN     := $(BUILD)/bin
VENV    := $(BUILD)/venv
PY      := $(VENV)/bin/python
# The C library and its header (mk/capi.mk builds them). Set here, before
# mk/*.mk are read in name order, so that any of them can depend on them.
CAPI_LIB    := $(BUILD)/lib/libgoipc.so
CAPI_HEADER := $(BUILD)/include/goipc.h
# CI (CI=true) gets a short fuzz; developers can raise it: make test FUZZTIME=2m
FUZZTIME ?= 10s

TEST_TARGETS := test-go model-check
# Installs the Debian packages a target needs (root or passwordless sudo),
# announcing each, or fails naming the command: mk/require-debian-packages.sh.
REQUIRE_DEB := mk/require-debian-packages.sh
# Every Debian package some target needs, as PACKAGE:PROBE (make deps-system).
SYSTEM_DEPS := spin:spin
GO_PKGS := ./...
# The core and the CLI; other Go packages are tested by their own mk/ targets.
CORE_PKGS := ./goipc/ ./goipc/internal/... ./internal/... ./cmd/...

-include mk/*.mk

.PHONY: help build test bench lint clean venv test-go fuzz deps-system model-check install uninstall

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

build: $(BIN)/goipc ## build the CLI (build/bin/goipc) and everything else
	@true

$(BIN)/goipc: $(shell find goipc cmd -name '*.go' 2>/dev/null) go.mod
	@mkdir -p $(BIN)
	$(GO) build -o $@ ./cmd/goipc

# make install PREFIX=/usr/local (the default) DESTDIR=/staging: the CLI
# here, the C library, header and pkg-config file in mk/capi.mk (install-lib).
BINDIR ?= $(PREFIX)/bin

install: $(BIN)/goipc install-lib ## install the CLI, libgoipc.so.1 + libgoipc.a, goipc.h and goipc.pc into $(DESTDIR)$(PREFIX) (default /usr/local)
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BIN)/goipc $(DESTDIR)$(BINDIR)/goipc

uninstall: uninstall-lib ## remove what make install installed (same PREFIX and DESTDIR)
	rm -f $(DESTDIR)$(BINDIR)/goipc

venv: $(VENV)/.stamp ## create the Python venv used by tests and tools (build/venv)

$(VENV)/.stamp: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# Each group runs in its own make, one after the other, whatever the others
# did, its output kept in build/test-logs/<group>.log; the end recalls the
# lines that name failures in each failed group's log (a CI page may show
# only the tail), then one line names every group as passed or failed. The
# exit status is non-zero if any failed.
#
# Each group also gets a TMPDIR of its own (under $TMPDIR, else /tmp),
# which must be empty when the group ends: a test that leaves a socket, a
# log or a build behind in the temporary directory fails its group (then
# the directory is removed). It has /tmp's mode, 1777: some tests run a
# child as user nobody, which must reach the directory its socket is in.
TEST_LOGS := $(BUILD)/test-logs
# $(call PYTEST,NAME,ARGS) runs build/venv's pytest with ARGS, its
# temporary directories in one of their own: short, under TMPDIR (for the
# Unix socket paths inside), cleared by pytest when it starts and removed
# when the suite passes (a failed suite's stay for a look).
PYTEST = $(abspath $(PY)) -m pytest -q -p no:cacheprovider --basetemp=$${TMPDIR:-/tmp}/goipc-pytest-$(1) $(2) \
  && rm -rf $${TMPDIR:-/tmp}/goipc-pytest-$(1)

test: ## run every test group (what CI runs), not stopping at a failure; failures recalled and one summary line at the end
	@passed=(); failed=(); mkdir -p $(TEST_LOGS); \
	for t in $(TEST_TARGETS); do \
	  echo; echo "==== make $$t"; start=$$SECONDS; \
	  tmp=$$(mktemp -d --tmpdir goipc-test.XXXXXX); chmod 1777 "$$tmp"; \
	  TMPDIR="$$tmp" $(MAKE) --no-print-directory $$t 2>&1 | tee $(TEST_LOGS)/$$t.log; \
	  status=$${PIPESTATUS[0]}; \
	  left=$$(cd "$$tmp" && find . -mindepth 1 -maxdepth 3 | sort | head -n 20); rm -rf "$$tmp"; \
	  if [ -n "$$left" ]; then status=1; \
	    echo "FAIL: make $$t left these behind in its TMPDIR: "$$left | tee -a $(TEST_LOGS)/$$t.log; fi; \
	  if [ $$status -eq 0 ]; then passed+=($$t); verdict=passed; \
	  else failed+=($$t); verdict=FAILED; fi; \
	  echo "==== make $$t: $$verdict ($$((SECONDS - start)) s)"; \
	done; \
	for t in $${failed[@]}; do \
	  echo; echo "==== what failed in make $$t (whole output: $(TEST_LOGS)/$$t.log)"; \
	  grep -E -- 'FAIL|[Ff]ailed|[Ee]rror|panic:|\*\*\*' $(TEST_LOGS)/$$t.log | grep -v -E ' PASS |^ok ' | tail -n 25; \
	done; \
	echo; \
	echo "make test: $${#passed[@]} groups passed: $${passed[*]:-none}; $${#failed[@]} failed: $${failed[*]:-none}"; \
	[ $${#failed[@]} -eq 0 ]

test-go: ## Go unit, two-process, race and fuzz tests of the core
	$(GO) vet $(GO_PKGS)
	$(GO) test -count=1 -timeout 20m $(CORE_PKGS)
	$(GO) test -count=1 -race -timeout 20m -short ./goipc/ ./cmd/goipc/
	$(MAKE) fuzz

fuzz: ## run each Go fuzz target for FUZZTIME (default 10s; mk/go-fuzz.sh: a failure that is only Go 1.26's own end-of-fuzztime deadline is not a finding)
	GO=$(GO) mk/go-fuzz.sh ./goipc/ FuzzFrameReader $(FUZZTIME)
	GO=$(GO) mk/go-fuzz.sh ./goipc/ FuzzCallReplies $(FUZZTIME)
	GO=$(GO) mk/go-fuzz.sh ./internal/statread/ FuzzParseControl $(FUZZTIME)

deps-system: ## install every Debian package the targets need (each target also installs its own when it can)
	@$(REQUIRE_DEB) deps-system $(SYSTEM_DEPS)

MODEL := docs/model/ring.pml docs/model/notify.pml docs/model/poller.pml
model-check: ## model-check the wakeup protocol (futex and doorbell waits, freed space held back), the pollable descriptor and the ring poller's registration with spin; every seeded bug must be caught
	@$(REQUIRE_DEB) model-check spin:spin
	@rm -rf $(BUILD)/model && mkdir -p $(BUILD)/model && cp $(MODEL) $(BUILD)/model/
	@cd $(BUILD)/model && spin -a ring.pml >/dev/null && cc -O2 -DNOCLAIM -o pan pan.c && ./pan > safety.txt && \
	  grep -q "errors: 0" safety.txt && echo "model-check: no deadlock or lost wakeup (safety)"
	@cd $(BUILD)/model && cc -O2 -o pan pan.c && ./pan -a > liveness.txt && \
	  grep -q "errors: 0" liveness.txt && echo "model-check: every message delivered (liveness, LTL 'done')"
	@cd $(BUILD)/model && for bug in LOAD_BEFORE_PUBLISH ARM_AFTER_CHECK HOLD_BACK_WHEN_EMPTY REARM_WITHOUT_CHECK; do \
	  spin -D$$bug -a ring.pml >/dev/null && cc -O2 -DNOCLAIM -o pan pan.c && ./pan > seeded-$$bug.txt; \
	  grep -q "invalid end state" seeded-$$bug.txt || { echo "model-check: seeded bug $$bug NOT found"; exit 1; }; \
	  echo "model-check: the seeded bug $$bug is found (a side asleep forever)"; done
	@cd $(BUILD)/model && spin -a notify.pml >/dev/null && cc -O2 -DNOCLAIM -o pan pan.c && ./pan > notify-safety.txt && \
	  grep -q "errors: 0" notify-safety.txt && echo "model-check: the pollable descriptor wakes its loop for every message and for the end (notify.pml)"
	@cd $(BUILD)/model && spin -DNO_RECHECK_AFTER_RESET -a notify.pml >/dev/null && cc -O2 -DNOCLAIM -o pan pan.c && ./pan > seeded-NO_RECHECK_AFTER_RESET.txt; \
	  grep -q "invalid end state" seeded-NO_RECHECK_AFTER_RESET.txt || { echo "model-check: seeded bug NO_RECHECK_AFTER_RESET NOT found"; exit 1; }; \
	  echo "model-check: the seeded bug NO_RECHECK_AFTER_RESET is found (the loop waits forever)"
	@cd $(BUILD)/model && spin -a poller.pml >/dev/null && cc -w -O2 -DNOCLAIM -o pan pan.c && ./pan > poller-safety.txt && \
	  grep -q "errors: 0" poller-safety.txt && echo "model-check: a call registered with the ring poller is always looked at again (poller.pml)"
	@cd $(BUILD)/model && for bug in STOP_OUTSIDE_LOCK NO_LIST_BEFORE_ARM REMOVE_SKIPS_PENDING; do \
	  spin -D$$bug -a poller.pml >/dev/null && cc -w -O2 -DNOCLAIM -o pan pan.c && ./pan > seeded-$$bug.txt; \
	  grep -Eq "invalid end state|assertion violated" seeded-$$bug.txt || { echo "model-check: seeded bug $$bug NOT found"; exit 1; }; \
	  echo "model-check: the seeded bug $$bug is found (poller.pml)"; done

bench: build ## benchmarks: `goipc bench` (every IPC mechanism) then go test -bench for the core vs a Unix socket
	$(GO) test -run '^$$' -bench . -benchtime 1s ./goipc/

lint: ## go vet and gofmt check
	$(GO) vet $(GO_PKGS)
	@out=$$(gofmt -l goipc cmd capi examples internal bench interop_tests 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean: ## remove build outputs
	rm -rf $(BUILD)
