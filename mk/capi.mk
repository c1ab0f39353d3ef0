# mk/capi.mk — the C ABI (issue 3): libgoipc.so, its header and pkg-config
# file, the C examples, the C tests (ASan + UBSan) and the C benchmark.
#
# Outputs, all under build/:
#   build/lib/libgoipc.so            go build -buildmode=c-shared ./capi
#   build/include/goipc.h            copy of include/goipc.h (where the .pc points)
#   build/lib/pkgconfig/goipc.pc     relocatable: paths are relative to the .pc
#   build/c/                         C examples and tests
#   build/bin/goipc-bench-peer-c     the C peer of `goipc bench --peers c`

CAPI_LIB      := $(BUILD)/lib/libgoipc.so
CAPI_HEADER   := $(BUILD)/include/goipc.h
CAPI_PC       := $(BUILD)/lib/pkgconfig/goipc.pc
CAPI_VERSION  := 0.1.0
CAPI_SRCS     := $(shell find goipc capi -name '*.go' -not -name '*_test.go' 2>/dev/null) \
                 $(wildcard capi/*.c capi/*.h capi/*.map) include/goipc.h go.mod go.sum
CAPI_LDFLAGS  := -linkmode=external -extldflags '-Wl,--version-script=$(CURDIR)/capi/libgoipc.map -Wl,-soname,libgoipc.so'

# The C examples are built with pkg-config, like a user's program.
SYSTEM_DEPS   += pkg-config:pkg-config
CBUILD        := $(BUILD)/c
CC            ?= cc
# Warnings are errors everywhere in C; the tests also run under sanitizers.
C_WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
C_STD         := -std=c11 -D_GNU_SOURCE
C_LINK        := -L$(BUILD)/lib -lgoipc -Wl,-rpath,$(abspath $(BUILD)/lib) -lpthread -lm
C_SAN         := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
C_EXAMPLES    := $(CBUILD)/ping $(CBUILD)/pong $(CBUILD)/unix_pingpong
# The C peer of `goipc bench --peers c` (bench/peers.go looks for it here).
C_BENCH_PEER  := $(BIN)/goipc-bench-peer-c
C_TESTS_SRC   := $(wildcard bindings/c/tests/*.c)
C_TEST_BIN    := $(CBUILD)/tests/test_capi
# A C test that only links the header into C99 and C++ translation units.
C_HDR_CHECKS  := $(CBUILD)/tests/header_c99.o $(CBUILD)/tests/header_cxx.o

.PHONY: lib c-examples c-bench-peer test-c bench-c check-symbols

build: lib c-examples c-bench-peer

lib: $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC) ## build the C library: build/lib/libgoipc.so, build/include/goipc.h, build/lib/pkgconfig/goipc.pc

$(CAPI_LIB): $(CAPI_SRCS)
	@mkdir -p $(@D)
	$(GO) build -buildmode=c-shared -ldflags="$(CAPI_LDFLAGS)" -o $@ ./capi
	@rm -f $(BUILD)/lib/libgoipc.h   # cgo's generated header: internal names only; goipc.h is the API

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

c-examples: $(C_EXAMPLES) ## build the C examples (build/c/ping, pong, unix_pingpong)

$(CBUILD)/ping $(CBUILD)/pong: $(CBUILD)/%: bindings/c/%.c bindings/c/latency.h $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC)
	@$(REQUIRE_DEB) "the C examples" pkg-config:pkg-config
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --cflags goipc) \
	  -o $@ $< $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --libs goipc) -lpthread -lm

c-bench-peer: $(C_BENCH_PEER) ## build the C peer of `goipc bench --peers c` (build/bin/goipc-bench-peer-c)

# Linked like ping/pong: pkg-config's absolute -Wl,-rpath to build/lib.
$(C_BENCH_PEER): bindings/c/bench_peer.c $(CAPI_LIB) $(CAPI_HEADER) $(CAPI_PC)
	@$(REQUIRE_DEB) "the C bench peer" pkg-config:pkg-config
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --cflags goipc) \
	  -o $@ $< $$(PKG_CONFIG_PATH=$(abspath $(BUILD)/lib/pkgconfig) pkg-config --libs goipc) -lpthread

$(CBUILD)/unix_pingpong: bindings/c/unix_pingpong.c bindings/c/latency.h
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O2 -g $(C_WARN) -o $@ $< -lm

$(C_TEST_BIN): $(C_TESTS_SRC) $(wildcard bindings/c/tests/*.h) $(CAPI_LIB) include/goipc.h
	@mkdir -p $(@D)
	$(CC) $(C_STD) -O1 -g $(C_WARN) $(C_SAN) -Iinclude -o $@ $(C_TESTS_SRC) $(C_LINK)

$(CBUILD)/tests/header_c99.o: include/goipc.h
	@mkdir -p $(@D)
	echo '#include "goipc.h"' | $(CC) -std=c99 -pedantic $(C_WARN) -Iinclude -x c -c -o $@ -

$(CBUILD)/tests/header_cxx.o: include/goipc.h
	@mkdir -p $(@D)
	echo '#include "goipc.h"' | $(CXX) -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -x c++ -c -o $@ -

check-symbols: $(CAPI_LIB) ## check that libgoipc.so exports exactly the functions of include/goipc.h
	@bindings/c/tests/check_symbols.sh $(CAPI_LIB) include/goipc.h

test-c: lib $(BIN)/goipc $(C_TEST_BIN) $(C_HDR_CHECKS) c-examples check-symbols ## C tests of libgoipc.so under ASan+UBSan, header checks, exported symbols
	$(GO) test -count=1 ./capi/
	GOIPC_BIN=$(abspath $(BIN)/goipc) GOIPC_C_BIN=$(abspath $(CBUILD)) \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  timeout 170 $(C_TEST_BIN)

bench-c: lib $(BIN)/goipc c-examples ## C->Go 64 B round trips (goipc) next to a C Unix-socket ping/pong, same run (N=, ROUNDS=)
	@bindings/c/bench.sh $(abspath $(BIN)/goipc) $(abspath $(CBUILD)) $${N:-200000} $${ROUNDS:-3}

TEST_TARGETS += test-c
