# mk/capi.mk — the C ABI (issue 3): libgoipc.so, libgoipc.a, their header
# and pkg-config file, their installation, the C examples, the C tests
# (ASan + UBSan) and the C benchmark.
#
# Outputs, all under build/:
#   build/lib/libgoipc.so            go build -buildmode=c-shared ./capi (soname libgoipc.so.1)
#   build/lib/libgoipc.so.1          -> libgoipc.so, what programs linked in the tree load
#   build/lib/libgoipc.a             go build -buildmode=c-archive ./capi, partially linked
#                                    so that only the goipc_* functions stay global
#   build/include/goipc.h            copy of include/goipc.h (where the .pc points)
#   build/lib/pkgconfig/goipc.pc     relocatable: paths are relative to the .pc
#   build/c/                         C examples and tests; build/c/ping and build/c/pong
#                                    are the ping-pong example (examples/ping-pong/c),
#                                    build/c/epoll_ping the event-loop one (examples/event-loop/c)
#   build/bin/goipc-ping-c           build/c/ping again, under the name bench/peers.go
#                                    looks for (the C peer of `goipc bench --peers c`)
#
# make install-lib (part of `make install`, Makefile) copies the library into
# $(DESTDIR)$(PREFIX): lib/libgoipc.so.1.0.0 with the links libgoipc.so.1
# (soname) and libgoipc.so (link time), lib/libgoipc.a, include/goipc.h and
# lib/pkgconfig/goipc.pc with the prefix's absolute paths and no rpath.

# CAPI_LIB and CAPI_HEADER (build/lib/libgoipc.so, build/include/goipc.h)
# are set in the Makefile, for every mk/ file.
CAPI_PC       := $(BUILD)/lib/pkgconfig/goipc.pc
CAPI_VERSION  := 0.1.0
# The soname's number is the ABI version (GOIPC_ABI_VERSION of goipc.h): it
# changes only on an incompatible change. The installed file adds minor and
# patch numbers: libgoipc.so.1.0.0.
CAPI_SOVERSION := 1
CAPI_SONAME   := libgoipc.so.$(CAPI_SOVERSION)
CAPI_REALNAME := $(CAPI_SONAME).0.0
CAPI_STATIC   := $(BUILD)/lib/libgoipc.a
CAPI_SRCS     := $(shell find goipc capi -name '*.go' -not -name '*_test.go' 2>/dev/null) \
                 $(wildcard capi/*.c capi/*.h capi/*.map) include/goipc.h go.mod go.sum
CAPI_LDFLAGS  := -linkmode=external -extldflags '-Wl,--version-script=$(CURDIR)/capi/libgoipc.map -Wl,-soname,$(CAPI_SONAME)'

# The C examples are built with pkg-config, like a user's program.
SYSTEM_DEPS   += pkg-config:pkg-config
CBUILD        := $(BUILD)/c
CC            ?= cc
# Warnings are errors everywhere in C; the tests also run under sanitizers.
C_WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
C_STD         := -std=c11 -D_GNU_SOURCE
C_LINK        := -L$(BUILD)/lib -lgoipc -Wl,-rpath,$(abspath $(BUILD)/lib) -lpthread -lm
C_SAN         := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
C_EXAMPLES    := $(CBUILD)/ping $(CBUILD)/pong $(CBUILD)/epoll_ping
# The ping-pong example, the C peer of `goipc bench --peers c` (bench/peers.go
# looks for it here).
C_BENCH_PEER  := $(BIN)/goipc-ping-c
C_TESTS_SRC   := $(wildcard bindings/c/tests/*.c)
C_TEST_BIN    := $(CBUILD)/tests/test_capi
# A C test that only links the header into C99 and C++ translation units.
C_HDR_CHECKS  := $(CBUILD)/tests/header_c99.o $(CBUILD)/tests/header_cxx.o

.PHONY: lib lib-static install-lib uninstall-lib c-examples c-bench-peer test-c bench-c check-symbols

build: lib c-examples c-bench-peer

lib: $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC) ## build the C library: build/lib/libgoipc.so, build/include/goipc.h, build/lib/pkgconfig/goipc.pc

$(CAPI_LIB): $(CAPI_SRCS)
	@mkdir -p $(@D)
	$(GO) build -buildmode=c-shared -ldflags="$(CAPI_LDFLAGS)" -o $@ ./capi
	@rm -f $(BUILD)/lib/libgoipc.h   # cgo's generated header: internal names only; goipc.h is the API
	@ln -sf libgoipc.so $(BUILD)/lib/$(CAPI_SONAME)   # the name programs linked against it look for

lib-static: $(CAPI_STATIC) $(CAPI_HEADER) $(CAPI_PC) ## build the static C library build/lib/libgoipc.a (exports only goipc_*)

# The archive go builds holds the Go runtime's C glue (x_cgo_*, crosscall2,
# the capi_* internal exports) as global symbols that could clash with a
# program's own. `ld -r -d` links it into one object (allocating common
# symbols), objcopy makes everything but goipc_* local, and that object is
# the archive. netgo/osusergo: no cgo resolver, so a fully static program
# links without glibc's NSS warnings (goipc only uses Unix sockets).
$(CAPI_STATIC): $(CAPI_SRCS)
	@mkdir -p $(BUILD)/capi-archive
	$(GO) build -tags netgo,osusergo -buildmode=c-archive -o $(BUILD)/capi-archive/go.a ./capi
	ld -r -d --whole-archive $(BUILD)/capi-archive/go.a -o $(BUILD)/capi-archive/goipc-all.o
	objcopy --wildcard --keep-global-symbol='goipc_*' $(BUILD)/capi-archive/goipc-all.o $(BUILD)/capi-archive/goipc.o
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $(BUILD)/capi-archive/goipc.o

$(CAPI_HEADER): include/goipc.h
	@mkdir -p $(@D)
	cp $< $@

$(CAPI_PC): mk/capi.mk
	@mkdir -p $(@D)
	@printf '%s\n' \
	  'prefix=$${pcfiledir}/../..' \
	  'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' \
	  '' \
	  'Name: goipc' \
	  'Description: goipc shared-memory IPC between processes on one Linux host (C ABI)' \
	  'Version: $(CAPI_VERSION)' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -lgoipc' \
	  'Libs.private: -lpthread' > $@
	@echo "wrote $@"

c-examples: $(C_EXAMPLES) ## build the C examples (build/c/ping, pong: examples/ping-pong/c; build/c/epoll_ping: examples/event-loop/c)

$(CBUILD)/ping $(CBUILD)/pong: $(CBUILD)/%: examples/ping-pong/c/%.c $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC)
	@$(REQUIRE_DEB) "the C examples" pkg-config:pkg-config
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --cflags goipc) \
	  -o $@ $< $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --libs goipc) -lpthread -lm

$(CBUILD)/epoll_ping: examples/event-loop/c/epoll_ping.c examples/event-loop/c/epoll_mux.h $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC)
	@$(REQUIRE_DEB) "the C examples" pkg-config:pkg-config
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --cflags goipc) \
	  -o $@ $< $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --libs goipc)

c-bench-peer: $(C_BENCH_PEER) ## build the C ping-pong example, the C peer of `goipc bench --peers c` (build/bin/goipc-ping-c)

# A copy of build/c/ping (its runpath is pkg-config's absolute build/lib).
$(C_BENCH_PEER): $(CBUILD)/ping
	@mkdir -p $(@D)
	cp $< $@

$(C_TEST_BIN): $(C_TESTS_SRC) $(wildcard bindings/c/tests/*.h) examples/event-loop/c/epoll_mux.h $(CAPI_LIB) include/goipc.h
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O1 -g $(C_WARN) $(C_SAN) -Iinclude -o $@ $(C_TESTS_SRC) $(C_LINK)

$(CBUILD)/tests/header_c99.o: include/goipc.h
	@mkdir -p $(@D)
	echo '#include "goipc.h"' | $(CC) -std=c99 -pedantic $(C_WARN) -Iinclude -x c -c -o $@ -

$(CBUILD)/tests/header_cxx.o: include/goipc.h
	@mkdir -p $(@D)
	echo '#include "goipc.h"' | $(CXX) -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -x c++ -c -o $@ -

check-symbols: $(CAPI_LIB) $(CAPI_STATIC) ## check that libgoipc.so and libgoipc.a export exactly the functions of include/goipc.h
	@bindings/c/tests/check_symbols.sh $(CAPI_LIB) include/goipc.h
	@bindings/c/tests/check_symbols.sh $(CAPI_STATIC) include/goipc.h
	@soname=$$(objdump -p $(CAPI_LIB) | awk '$$1 == "SONAME" {print $$2}'); \
	  if [ "$$soname" != "$(CAPI_SONAME)" ]; then echo "check-symbols: $(CAPI_LIB) has soname '$$soname', want $(CAPI_SONAME)"; exit 1; fi; \
	  echo "check-symbols: $(CAPI_LIB) has soname $(CAPI_SONAME)"

# ---- Installation (make install / make uninstall, Makefile) ----------------

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The files install-lib writes, relative to $(DESTDIR); uninstall-lib removes them.
CAPI_INSTALLED := $(LIBDIR)/$(CAPI_REALNAME) $(LIBDIR)/$(CAPI_SONAME) $(LIBDIR)/libgoipc.so \
                  $(LIBDIR)/libgoipc.a $(INCLUDEDIR)/goipc.h $(PKGCONFIGDIR)/goipc.pc

install-lib: $(CAPI_LIB) $(CAPI_STATIC) ## install the C library, header and pkg-config file into $(DESTDIR)$(PREFIX)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(CAPI_LIB) $(DESTDIR)$(LIBDIR)/$(CAPI_REALNAME)
	ln -sfn $(CAPI_REALNAME) $(DESTDIR)$(LIBDIR)/$(CAPI_SONAME)
	ln -sfn $(CAPI_SONAME) $(DESTDIR)$(LIBDIR)/libgoipc.so
	install -m 0644 $(CAPI_STATIC) $(DESTDIR)$(LIBDIR)/libgoipc.a
	install -m 0644 include/goipc.h $(DESTDIR)$(INCLUDEDIR)/goipc.h
	@printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'libdir=$(LIBDIR)' \
	  'includedir=$(INCLUDEDIR)' \
	  '' \
	  'Name: goipc' \
	  'Description: goipc shared-memory IPC between processes on one Linux host (C ABI)' \
	  'Version: $(CAPI_VERSION)' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -lgoipc' \
	  'Libs.private: -lpthread' > $(DESTDIR)$(PKGCONFIGDIR)/goipc.pc
	@echo "wrote $(DESTDIR)$(PKGCONFIGDIR)/goipc.pc"
	@$(call ldconfig-after-install)

uninstall-lib: ## remove what install-lib installed from $(DESTDIR)$(PREFIX)
	rm -f $(addprefix $(DESTDIR),$(CAPI_INSTALLED))
	@$(call ldconfig-after-install)

# The dynamic loader finds a library in /usr/local/lib through ld.so's cache:
# refresh it when installing for real (no DESTDIR) as root.
define ldconfig-after-install
if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then \
  echo "ldconfig (refresh the dynamic loader's cache)"; ldconfig; \
elif [ -z "$(DESTDIR)" ]; then \
  echo "note: run 'sudo ldconfig' if $(LIBDIR) is in /etc/ld.so.conf, else point LD_LIBRARY_PATH or an rpath at it"; fi
endef

test-c: lib $(BIN)/goipc $(C_TEST_BIN) $(C_HDR_CHECKS) c-examples check-symbols ## C tests of libgoipc.so under ASan+UBSan, header checks, exported symbols
	$(GO) test -count=1 ./capi/
	GOIPC_BIN=$(abspath $(BIN)/goipc) GOIPC_C_BIN=$(abspath $(CBUILD)) \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  timeout 170 $(C_TEST_BIN)

bench-c: lib $(BIN)/goipc c-examples ## C->Go 64 B round trips (goipc) next to a C Unix-socket ping/pong, same run (N=, ROUNDS=)
	@bindings/c/bench.sh $(abspath $(BIN)/goipc) $(abspath $(CBUILD)) $${N:-200000} $${ROUNDS:-3}

TEST_TARGETS += test-c
