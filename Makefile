# Zenith C - top-level build.  GNU make.
#
#   make            build the runtime library, the examples and the tests into build/
#   make run        install missing packages, build, run the three-function chain
#   make test       install missing packages, build with -Werror, run every test
#                   (unit, end-to-end, and the end-to-end suite under ASan+UBSan and TSan)
#   make install    PREFIX=/usr/local DESTDIR= : library, header, pkg-config file
#   make bench      side-by-side benchmark against the seed's Go chain
#
# SAN=asan or SAN=tsan builds a sanitizer variant into build-asan/ or build-tsan/.

SHELL := /bin/bash
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
SAN ?=

ifeq ($(SAN),)
BUILD ?= build
SANFLAGS :=
else ifeq ($(SAN),asan)
BUILD ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(SAN),tsan)
BUILD ?= build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
$(error SAN must be empty, asan or tsan)
endif

PKGS := libmicrohttpd jansson libcurl sqlite3 libpq
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl, libsqlite3 and libpq are not linked: the runtime loads each with
# dlopen when first needed (runtime/src/outbound/curl.c, runtime/src/store/),
# so only their headers are needed to build, and a function that makes no
# calls or keeps no state never loads them.
#
# libmicrohttpd is linked from the static archive Debian's libmicrohttpd-dev
# ships, with runtime/notls/notls.c standing in for the GnuTLS the shared
# library would load at every start (the runtime never serves TLS): exec
# to first answer about 4 -> 2 ms, 2.4 MiB less resident memory
# (BENCHMARKS.md).  Without the archive, the shared library.  jansson stays
# shared: a function may link another library that uses it, and two
# copies in one process would not share their hash seed.
DEP_LIBDIR := $(shell pkg-config --variable=libdir libmicrohttpd 2>/dev/null)
MHD_A := $(wildcard $(DEP_LIBDIR)/libmicrohttpd.a)
NOTLS_OBJ := $(if $(MHD_A),$(BUILD)/obj/runtime/notls/notls.o)
DEP_LIBS := $(if $(MHD_A),$(MHD_A) $(NOTLS_OBJ),-lmicrohttpd) \
	$(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson) -lm
# shared, as an installed zenith-c links (the fuzz harnesses use these)
DEP_LIBS_SHARED := $(shell pkg-config --libs libmicrohttpd jansson 2>/dev/null || echo -lmicrohttpd -ljansson) -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
# Hardening: the same flags the buildpack uses.
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
ifneq ($(SAN),)
HARDEN := -fstack-protector-strong -fPIE
endif
OPT ?= -O2 -g
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) $(SANFLAGS) -pthread \
	-Iruntime/include $(DEP_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -pie -Wl,-z,relro,-z,now $(SANFLAGS) -pthread $(LDFLAGS)

# runtime/src/<layer>/*.c; each layer's header includes the layers below
# it (README "Layout").
RUNTIME_LAYERS := core store http outbound events app
RUNTIME_SRC := $(foreach l,$(RUNTIME_LAYERS),$(wildcard runtime/src/$(l)/*.c))
RUNTIME_OBJ := $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/lib/libzenithc.a

EXAMPLES := audit-logger balance-manager transaction-processor
EXAMPLE_BINS := $(EXAMPLES:%=$(BUILD)/bin/%)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all lib examples tests run test test-unit test-e2e \
	install uninstall clean deps deps-pg format format-check bench

all: lib examples tests

lib: $(LIB)
examples: $(EXAMPLE_BINS)
tests: $(UNIT_BINS)

# -MMD -MP: the compiler writes each object's header dependencies to a .d
# file beside it, so editing any header rebuilds exactly what includes it.
DEPFLAGS = -MMD -MP

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) $(DEPFLAGS) -c -o $@ $<

$(LIB): $(RUNTIME_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

# Each example is its handler file(s) compiled to objects (with their .d
# files, so editing a header rebuilds the example) and linked with the
# runtime; main() comes from the library's main.o.
example_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard examples/$(1)/*.c))
.SECONDEXPANSION:
$(BUILD)/bin/%: $$(call example_objs,%) $(LIB) $(NOTLS_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -o $@ $(filter %.o,$(filter-out $(NOTLS_OBJ),$^)) $(LDFLAGS_ALL) $(LIB) $(DEP_LIBS)

# Unit tests: tests/unit/test_<x>.c; example handler tests link the
# example's handler objects too (tests/unit/test_example_<name>.c).
$(BUILD)/obj/tests/unit/%.o: CFLAGS_ALL += -Itests/unit -Iruntime/src

$(BUILD)/tests/test_example_%: $(BUILD)/obj/tests/unit/test_example_%.o $$(call example_objs,%) $(LIB) $(NOTLS_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -o $@ $(filter %.o,$(filter-out $(NOTLS_OBJ),$^)) $(LDFLAGS_ALL) $(LIB) $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(LIB) $(NOTLS_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -o $@ $< $(LDFLAGS_ALL) $(LIB) $(DEP_LIBS) $(CHECK_LIBS)

# keep the objects (make would delete them as intermediates)
.PRECIOUS: $(BUILD)/obj/%.o

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

deps:
	@scripts/install-deps.sh

# the tests and make run-postgres also need a PostgreSQL 15 server
deps-pg:
	@scripts/install-deps.sh --postgres

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-chain.sh

test: deps-pg
	@scripts/test.sh

test-unit: deps-pg all
	@scripts/run-unit.sh $(BUILD)

test-e2e: deps-pg all otlp-deps
	@python3 tests/e2e/run.py --build $(BUILD)

# The tracing tests' OTLP receiver decodes with OpenTelemetry's own code:
# @opentelemetry/otlp-transformer, pinned by tests/otlp/package-lock.json.
OTLP_DECODER := tests/otlp/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js
.PHONY: otlp-deps
otlp-deps: $(OTLP_DECODER)
$(OTLP_DECODER): tests/otlp/package-lock.json tests/otlp/package.json
	@echo "  NPM     tests/otlp (npm ci)"
	@cd tests/otlp && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libzenithc.a
	install -m 644 runtime/include/zenith.h $(DESTDIR)$(PREFIX)/include/zenith.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^#define ZC_VERSION "\(.*\)"/\1/p' runtime/include/zenith.h)|g' \
		runtime/zenith-c.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/zenith-c.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libzenithc.a $(DESTDIR)$(PREFIX)/include/zenith.h \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/zenith-c.pc

bench: deps-pg
	@$(MAKE) --no-print-directory all
	@bench/bench.sh

FORMAT_FILES = runtime/include/*.h runtime/src/*.h runtime/src/*/*.[ch] examples/*/*.[ch] tests/unit/*.[ch]

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build build-asan build-tsan

# What tracing costs: the chain traced at ratio 1.0 against tracing off, in
# the same run (bench/tracing_cost.sh; REPEAT, DURATION, CONNS).
.PHONY: bench-tracing
bench-tracing: deps otlp-deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/tracing_cost.sh

# --- benchmark smoke (owned by bench/; see bench/README.md) ----------------
# A 2-second, ours-only run of bench/bench.sh so the harness cannot rot;
# fails if a server died or a request erred.  `make test` may call it.
.PHONY: bench-smoke
bench-smoke: deps
	@$(MAKE) --no-print-directory all
	@BENCH_SMOKE=1 bench/bench.sh

# ---------------------------------------------------------------------------
# Container images (issue 4): the zenith/c-function buildpack, its build and
# run images, and their tests; no Docker engine needed (docs/buildpack.md).
#
#   make image FN=<folder>  OCI archive build/images/<folder name>.oci.tar of
#                           a function folder; BP_*=... settings pass through
#   make test-buildpack     the buildpack's contract tests, no containers
#   make test-image         installs its packages, builds the example and
#                           starter images, runs them as containers on
#                           127.0.0.1; ends with "image: N passed, N failed"
#   make deps-image         only the Debian packages the three above use

.PHONY: image test-buildpack test-image deps-image

deps-image:
	@buildpack/images/install-deps.sh

image: deps-image
	@test -n "$(FN)" || { echo "usage: make image FN=<function folder>, e.g. FN=examples/audit-logger" >&2; exit 2; }
	@buildpack/lifecycle/image.sh "$(FN)"

test-buildpack: deps-image
	@python3 tests/buildpack/run.py

test-image: deps-image
	@tests/image/run.sh

# ---------------------------------------------------------------------------
# The Knative func language pack and the Zenith operator path (issue 15):
#
#   make test-pack         the pack against func's rules, both templates
#                          created, built (Makefile and buildpack), tested
#                          and invoked as func would, the README's first
#                          three commands, the Function resources and the
#                          Tasks in deploy/operator/ against the operator;
#                          ends with "pack: N passed, N failed"
#   make test-pack-image   the README's container steps (root, podman)

.PHONY: test-pack test-pack-image

test-pack: deps lib
	@python3 tests/pack/run.py --build $(BUILD)

test-pack-image: deps-image lib
	@python3 tests/pack/run.py --build $(BUILD) --image

# ---------------------------------------------------------------------------
# CloudEvents (issue 5): the event-driven chain on loopback, each function's
# K_SINK pointing straight at the next (docs/events.md).
#
#   make run-events   build, run transaction-processor -> balance-manager ->
#                     audit-logger as events, send one sample transaction

.PHONY: run-events

run-events: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-events.sh

# The chain on a private PostgreSQL with two balance-manager replicas behind
# a round-robin proxy (docs/operations.md, "State").
.PHONY: run-postgres
run-postgres: deps-pg
	@$(MAKE) --no-print-directory all
	@scripts/run-postgres.sh

# ---------------------------------------------------------------------------
# Fuzzing (issue 6): libFuzzer harnesses in fuzz/, built with clang from
# Debian with -fsanitize=fuzzer,address,undefined; the runtime's sources are
# compiled into each harness (not the gcc archive).  fuzz/README.md has the
# harnesses, the input layouts and the figures.
#
#   make fuzz               run each harness for FUZZ_SECONDS (60) on its
#                           corpus; prints executions, cov and ft per harness;
#                           a crash is copied to fuzz/regressions/<harness>/
#   make test-fuzz-regress  replay fuzz/corpus and fuzz/regressions through
#                           each harness once, no fuzzing (seconds)
#   make fuzz-deps          install clang and libclang-rt-14-dev if missing
#   make clean-fuzz         remove build-fuzz/ (binaries, working corpora)

.PHONY: fuzz fuzz-build fuzz-deps test-fuzz-regress clean-fuzz

FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_HARNESSES := dispatch json trace service_url cloudevents
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined -pthread \
	-Wall -Wextra -Iruntime/include -Iruntime/src $(DEP_CFLAGS)
FUZZ_RT_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,\
	$(filter-out runtime/src/app/main.c,$(RUNTIME_SRC)))
FUZZ_BINS := $(FUZZ_HARNESSES:%=$(FUZZ_BUILD)/fuzz_%)

fuzz-deps: deps
	@missing=; for p in clang libclang-rt-14-dev; do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "fuzz: installing$$missing"; \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(FUZZ_BUILD)/obj/%.o: %.c | fuzz-deps
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_dispatch: $(FUZZ_BUILD)/obj/examples/balance-manager/balance-manager.o

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_RT_OBJ)
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS_SHARED) -ldl

# keep the objects (make would delete them as intermediates)
.PRECIOUS: $(FUZZ_BUILD)/obj/%.o

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@fuzz/run.sh fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

test-fuzz-regress: fuzz-build
	@fuzz/run.sh regress $(FUZZ_BUILD) $(FUZZ_HARNESSES)

clean-fuzz:
	rm -rf $(FUZZ_BUILD)
