# mk/install.mk — goipc used from outside the repository (issue 15):
# `make install` (Makefile, mk/capi.mk), the wheel (mk/python.mk) and the
# Rust crate as a path dependency (bindings/rust/build.rs), tested together.
#
#   make test-install  tests/install/test_install.py: installs into a
#                      temporary prefix and builds a C program against it
#                      with pkg-config (shared and static); installs the
#                      wheel into a fresh venv of another Python version
#                      (and the wheel with the C extension into one of the
#                      same version);
#                      builds a throwaway cargo project with only a path
#                      dependency; runs the three against the installed
#                      `goipc pong` with build/lib moved away; uninstalls.

INSTALL_TEST_LIB_AWAY := $(BUILD)/lib.moved-by-test-install

.PHONY: test-install

test-install: build lib lib-static wheel $(VENV)/.stamp ## install into a temp prefix, C via pkg-config, the wheel in another Python, a cargo path dependency: each run without build/lib
	@$(REQUIRE_DEB) test-install pkg-config:pkg-config
	@# A run killed while build/lib was moved away left it there.
	@if [ -d $(INSTALL_TEST_LIB_AWAY) ] && [ ! -e $(BUILD)/lib ]; then mv $(INSTALL_TEST_LIB_AWAY) $(BUILD)/lib; fi
	cd tests/install && CARGO=$(CARGO) PYTHONDONTWRITEBYTECODE=1 \
	  timeout 900 $(call PYTEST,install,-s -rw test_install.py)

TEST_TARGETS += test-install
