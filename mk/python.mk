# mk/python.mk — the Python binding (issue 5): bindings/python, a ctypes
# binding of build/lib/libgoipc.so. See docs/PYTHON.md.
#
# make wheel writes build/dist/goipc-VERSION-py3-none-PLATFORM.whl, which
# bundles build/lib/libgoipc.so: pip installs it into any CPython 3 venv on
# a compatible Linux, with no environment variable and no repository. The
# library is not a Python extension (ctypes loads it), hence py3-none. It
# also writes build/dist/speedups/goipc-VERSION-cpXY-cpXY-PLATFORM.whl:
# the same plus the C extension goipc._speedups, for build/venv's CPython
# version only.
# auditwheel (build/venv) checks which glibc symbol versions the library
# needs and retags the wheel manylinux_2_X; if it cannot, the wheel stays
# linux_x86_64 (installable here and on machines like it) and the log says why.
#
# test-python installs the package into build/venv the way a user does
# (`pip install ./bindings/python`, which bundles build/lib/libgoipc.so
# and compiles goipc._speedups), then runs its pytest suite against the
# installed copy, with the Go consumer build/bin/goipc: once with the
# extension (a test checks that it is there and bound) and once with
# GOIPC_PYTHON_SPEEDUPS=0 (ctypes for every call), so that both paths
# pass every test.
#
# python-speedups compiles goipc._speedups for build/venv's Python into
# build/lib, next to libgoipc.so, where the binding run from the source
# tree (PYTHONPATH=bindings/python/src: the benchmarks, the demo, the
# interop matrix) finds it.

PY_PKG := bindings/python
PY_DIST := $(BUILD)/dist

.PHONY: test-python bench-python bench-python-aio bench-python-stream wheel python-speedups

# The venv Python's header directory and extension suffix (asked when a
# recipe runs: the venv may not exist when make reads this file).
PY_INCLUDE_DIR = $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PY_EXT_SUFFIX = $$($(PY) -c 'import importlib.machinery as m; print(m.EXTENSION_SUFFIXES[0])')

# Warnings are shown, not fatal: the demo depends on this, and another
# compiler or Python's headers may warn where this one (GCC 12, Python
# 3.11: no warning with -Wall -Wextra) does not.
python-speedups: $(VENV)/.stamp ## compile the Python binding's optional C extension (goipc._speedups) into build/lib for the source tree
	@$(REQUIRE_DEB) python-speedups python3-dev:$(PY_INCLUDE_DIR)/Python.h
	@mkdir -p $(BUILD)/lib
	$(CC) -O2 -g -Wall -Wextra -shared -fPIC -I$(PY_INCLUDE_DIR) \
	  -o $(BUILD)/lib/_speedups$(PY_EXT_SUFFIX) $(PY_PKG)/src/goipc/_speedups.c

test-python: lib build $(VENV)/.stamp ## Python binding: pip install into build/venv, then its pytest suite (with the Go consumer), with and without goipc._speedups
	@$(REQUIRE_DEB) test-python python3-dev:$(PY_INCLUDE_DIR)/Python.h
	$(PY) -m pip install --quiet --force-reinstall --no-deps ./$(PY_PKG)
	cd $(PY_PKG) && GOIPC_BIN=$(abspath $(BIN)/goipc) PYTHONDONTWRITEBYTECODE=1 GOIPC_EXPECT_SPEEDUPS=1 \
	  timeout 600 $(call PYTEST,python,tests)
	cd $(PY_PKG) && GOIPC_BIN=$(abspath $(BIN)/goipc) PYTHONDONTWRITEBYTECODE=1 GOIPC_PYTHON_SPEEDUPS=0 \
	  timeout 600 $(call PYTEST,python,tests)

bench-python: lib build python-speedups ## Python->Go 64 B round trips next to a Python socketpair ping/pong, same run (N=, ROUNDS=)
	PYTHONPATH=$(PY_PKG)/src GOIPC_BIN=$(abspath $(BIN)/goipc) \
	  $(PY) -m goipc.bench -n $${N:-20000} --rounds $${ROUNDS:-5} --size 64

# repair-wheel RAW_DIR OUT_DIR: auditwheel retags the one wheel in RAW_DIR
# manylinux into OUT_DIR, or it is copied as it is (the log says why).
define repair-wheel
	@raw=$$(ls $(1)/goipc-*.whl); \
	if PATH=$(abspath $(VENV)/bin):$$PATH $(VENV)/bin/auditwheel repair -w $(2) "$$raw" > $(2)/auditwheel.log 2>&1; then \
	  echo "wheel: auditwheel confirmed the manylinux tag (log: $(2)/auditwheel.log)"; \
	else \
	  echo "wheel: auditwheel could not confirm a manylinux tag; keeping the linux wheel (log: $(2)/auditwheel.log):"; \
	  tail -n 3 $(2)/auditwheel.log; cp "$$raw" $(2)/; \
	fi; \
	echo "wrote $$(ls $(2)/goipc-*.whl)"
endef

wheel: lib $(VENV)/.stamp ## Python wheels with libgoipc.so inside: build/dist/ for any CPython 3 (py3-none), build/dist/speedups/ with the C extension for build/venv's CPython
	@rm -rf $(PY_DIST)/raw $(PY_DIST)/speedups-raw $(PY_DIST)/speedups && rm -f $(PY_DIST)/goipc-*.whl
	@mkdir -p $(PY_DIST)/raw $(PY_DIST)/speedups-raw $(PY_DIST)/speedups
	GOIPC_PYTHON_SPEEDUPS=0 $(PY) -m pip wheel --quiet --no-deps -w $(PY_DIST)/raw ./$(PY_PKG)
	$(call repair-wheel,$(PY_DIST)/raw,$(PY_DIST))
	@$(REQUIRE_DEB) wheel python3-dev:$(PY_INCLUDE_DIR)/Python.h
	$(PY) -m pip wheel --quiet --no-deps -w $(PY_DIST)/speedups-raw ./$(PY_PKG)
	$(call repair-wheel,$(PY_DIST)/speedups-raw,$(PY_DIST)/speedups)

bench-python-aio: lib build python-speedups ## goipc.aio vs the blocking binding vs asyncio Unix streams: one connection p50, then 1000 connections' throughput and threads (N=, ROUNDS=, CONNS=)
	PYTHONPATH=$(PY_PKG)/src GOIPC_BIN=$(abspath $(BIN)/goipc) \
	  $(PY) -m goipc.aio_bench -n $${N:-20000} --rounds $${ROUNDS:-3} --conns $${CONNS:-1000}

bench-python-stream: lib $(EXAMPLE_OUT)/many-producers-go python-speedups ## Python->Go stream of 64 B messages: Conn.send vs Conn.send_batch, same run (N=, ROUNDS=, BATCH=)
	PYTHONPATH=$(PY_PKG)/src $(PY) -m goipc.stream_bench --consumer $(abspath $(EXAMPLE_OUT)/many-producers-go) \
	  -n $${N:-200000} --rounds $${ROUNDS:-3} --batch $${BATCH:-64}

TEST_TARGETS += test-python
