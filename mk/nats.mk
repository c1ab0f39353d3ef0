# mk/nats.mk — goipc over NATS (issue 16). See docs/NATS.md.
#
#   make build       also builds build/bin/nats-server from the pinned module
#                    (go.mod's tool directive: github.com/nats-io/nats-server/v2)
#   make test-nats   the bridge's Go tests (a 3-node cluster with a node killed,
#                    SIGKILLed consumers, loss/duplicate injection, backpressure,
#                    queue groups), with -race, then the interop matrix over NATS
#                    (C, Python, Rust and Go producers against the Go consumers);
#                    part of `make test`
#   make demo-nats   Python and C producers pinging a Go consumer through a
#                    3-node NATS cluster, next to the same producers over shared memory
#   make bench-nats  goipc over NATS against plain nats.go, same server, same run
#
# Servers only ever listen on 127.0.0.1, on free ports.

NATS_SERVER := $(BIN)/nats-server
# The Go tests and the Python drivers run this binary (natstest falls back
# to building one when it is missing).
export GOIPC_NATS_SERVER := $(abspath $(NATS_SERVER))
NATS_FLAGS ?=
NATS_DEMO_N ?= 5000

.PHONY: test-nats demo-nats bench-nats nats-server

build: $(NATS_SERVER)

nats-server: $(NATS_SERVER) ## build build/bin/nats-server from the version pinned in go.mod

$(NATS_SERVER): go.mod go.sum
	@mkdir -p $(@D)
	$(GO) build -o $@ github.com/nats-io/nats-server/v2

test-nats: $(NATS_SERVER) interop-peers ## goipc over NATS: bridge tests (cluster node kill, SIGKILL, loss/duplicates, backpressure, queue groups, -race) and the interop matrix over NATS
	$(GO) test -count=1 -timeout 10m ./goipc/natsbridge/...
	$(GO) test -count=1 -race -timeout 10m ./goipc/natsbridge/
	PYTHONDONTWRITEBYTECODE=1 $(PY) interop_tests/nats_run.py $(NATS_FLAGS)

demo-nats: $(NATS_SERVER) interop-peers ## Python and C producers ping a Go consumer through a 3-node NATS cluster: latencies next to shared memory
	@PYTHONDONTWRITEBYTECODE=1 $(PY) interop_tests/demo_nats.py -n $(NATS_DEMO_N)

bench-nats: $(NATS_SERVER) ## goipc over NATS vs plain nats.go (round trip and call vs request/reply, 1 KiB publish/subscribe), same server, same run
	$(GO) test -count=1 -run '^$$' -bench 'RoundTrip|OneWay' -benchtime 2s ./goipc/natsbridge/
	$(GO) test -count=1 -run '^$$' -bench NodeKill -benchtime 3x ./goipc/natsbridge/

TEST_TARGETS += test-nats
