# mk/python.mk — the Python binding (issue 5): bindings/python, a ctypes
# binding of build/lib/libgoipc.so. See docs/PYTHON.md.
#
# test-python installs the package into build/venv the way a user does
# (`pip install ./bindings/python`, which bundles build/lib/libgoipc.so),
# then runs its pytest suite against the installed copy, with the Go
# consumer build/bin/goipc.

PY_PKG := bindings/python

.PHONY: test-python bench-python

test-python: lib build $(VENV)/.stamp ## Python binding: pip install into build/venv, then its pytest suite (with the Go consumer)
	$(PY) -m pip install --quiet --force-reinstall --no-deps ./$(PY_PKG)
	cd $(PY_PKG) && GOIPC_BIN=$(abspath $(BIN)/goipc) PYTHONDONTWRITEBYTECODE=1 \
	  timeout 600 $(abspath $(PY)) -m pytest -q -p no:cacheprovider tests

bench-python: lib build $(VENV)/.stamp ## Python->Go 64 B round trips next to a Python socketpair ping/pong, same run (N=, ROUNDS=)
	PYTHONPATH=$(PY_PKG)/src GOIPC_BIN=$(abspath $(BIN)/goipc) \
	  $(PY) -m goipc.bench -n $${N:-20000} --rounds $${ROUNDS:-5} --size 64

TEST_TARGETS += test-python
