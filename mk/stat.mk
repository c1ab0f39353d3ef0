# mk/stat.mk — introspection (issue 17): `goipc stat` and the counters.
# See docs/STAT.md.
#
# The Go tests of goipc stat (internal/statread, cmd/goipc) run in test-go.
# test-stat adds the one that needs the other languages' producers: one
# `goipc pong`, a Go, a C (build/c/ping) and a Python (python -m goipc.ping)
# producer, all listed by `goipc stat --json` with their pids and counts.

.PHONY: test-stat

test-stat: lib c-examples $(VENV)/.stamp ## goipc stat --json against a Go, a C and a Python producer of one goipc pong
	GOIPC_STAT_PEERS=1 GOIPC_C_BIN=$(abspath $(CBUILD)) GOIPC_PYTHON=$(abspath $(PY)) \
	  GOIPC_PYTHONPATH=$(abspath bindings/python/src) GOIPC_LIBRARY_DIR=$(abspath $(BUILD)/lib) \
	  $(GO) test -count=1 -v -run '^TestStatListsGoCAndPythonProducers$$' ./cmd/goipc/

TEST_TARGETS += test-stat
