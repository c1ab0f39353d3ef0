# mk/python.mk — the Python binding (issue 5): bindings/python, a ctypes
# binding of build/lib/libgoipc.so. See docs/PYTHON.md.
#
# make wheel writes build/dist/goipc-VERSION-py3-none-PLATFORM.whl, which
# bundles build/lib/libgoipc.so: pip installs it into any CPython 3 venv on
# a compatible Linux, with no environment variable and no repository. The
# library is not a Python extension (ctypes loads it), hence py3-none.
# auditwheel (build/venv) checks which glibc symbol versions the library
# needs and retags the wheel manylinux_2_X; if it cannot, the wheel stays
# linux_x86_64 (installable here and on machines like it) and the log says why.
#
# test-python installs the package into build/venv the way a user does
# (`pip install ./bindings/python`, which bundles build/lib/libgoipc.so),
# then runs its pytest suite against the installed copy, with the Go
# consumer build/bin/goipc.

PY_PKG := bindings/python
PY_DIST := $(BUILD)/dist

.PHONY: test-python bench-python bench-python-aio bench-python-stream wheel

test-python: lib build $(VENV)/.stamp ## Python binding: pip install into build/venv, then its pytest suite (with the Go consumer)
	$(PY) -m pip install --quiet --force-reinstall --no-deps ./$(PY_PKG)
	cd $(PY_PKG) && GOIPC_BIN=$(abspath $(BIN)/goipc) PYTHONDONTWRITEBYTECODE=1 \
	  timeout 600 $(abspath $(PY)) -m pytest -q -p no:cacheprovider tests

bench-python: lib build $(VENV)/.stamp ## Python->Go 64 B round trips next to a Python socketpair ping/pong, same run (N=, ROUNDS=)
	PYTHONPATH=$(PY_PKG)/src GOIPC_BIN=$(abspath $(BIN)/goipc) \
	  $(PY) -m goipc.bench -n $${N:-20000} --rounds $${ROUNDS:-5} --size 64

wheel: lib $(VENV)/.stamp ## Python wheel with libgoipc.so inside, for any CPython 3 (py3-none-manylinux_2_X): build/dist/
	@rm -rf $(PY_DIST)/raw && mkdir -p $(PY_DIST)/raw && rm -f $(PY_DIST)/goipc-*.whl
	$(PY) -m pip wheel --quiet --no-deps -w $(PY_DIST)/raw ./$(PY_PKG)
	@raw=$$(ls $(PY_DIST)/raw/goipc-*.whl); \
	if PATH=$(abspath $(VENV)/bin):$$PATH $(VENV)/bin/auditwheel repair -w $(PY_DIST) "$$raw" > $(PY_DIST)/auditwheel.log 2>&1; then \
	  echo "wheel: auditwheel confirmed the manylinux tag (log: $(PY_DIST)/auditwheel.log)"; \
	else \
	  echo "wheel: auditwheel could not confirm a manylinux tag; keeping the linux wheel (log: $(PY_DIST)/auditwheel.log):"; \
	  tail -n 3 $(PY_DIST)/auditwheel.log; cp "$$raw" $(PY_DIST)/; \
	fi; \
	echo "wrote $$(ls $(PY_DIST)/goipc-*.whl)"

bench-python-aio: lib build $(VENV)/.stamp ## goipc.aio vs the blocking binding vs asyncio Unix streams: one connection p50, then 1000 connections' throughput and threads (N=, ROUNDS=, CONNS=)
	PYTHONPATH=$(PY_PKG)/src GOIPC_BIN=$(abspath $(BIN)/goipc) \
	  $(PY) -m goipc.aio_bench -n $${N:-20000} --rounds $${ROUNDS:-3} --conns $${CONNS:-1000}

bench-python-stream: lib $(EXAMPLE_OUT)/many-producers-go $(VENV)/.stamp ## Python->Go stream of 64 B messages: Conn.send vs Conn.send_batch, same run (N=, ROUNDS=, BATCH=)
	PYTHONPATH=$(PY_PKG)/src $(PY) -m goipc.stream_bench --consumer $(abspath $(EXAMPLE_OUT)/many-producers-go) \
	  -n $${N:-200000} --rounds $${ROUNDS:-3} --batch $${BATCH:-64}

TEST_TARGETS += test-python
