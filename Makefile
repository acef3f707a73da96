# weft — the one build. `make` builds the libraries; `make check` runs the
# tests (plain, then ASan+UBSan); `make check-tsan` runs the threaded tests
# under ThreadSanitizer; `make bench` runs the benchmark report (into
# $(O)/bench-results; `make bench-publish` copies it to bench/results/);
# `make docs` generates the API reference into $(O)/docs.
# Each goal installs only the Debian packages it needs (scripts/deps.sh
# lib|examples|test|bench|docs|cross, once per step: build/.deps-STEP).
#
# O=DIR puts every output under DIR instead of build/ (parallel work trees).
# T=name runs one test suite (tests/test_<name>.c); BENCH=name one benchmark.

CC      ?= cc
O       ?= build
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
DESTDIR ?=
WERROR  ?= -Werror

# The version, in one place: `make check-version` fails when the header
# macros (include/weft/common.h), weft_version() or weft.pc disagree.
# ABI policy (README): SOMAJOR changes with every incompatible ABI change.
VERSION := 0.1.0
SOMAJOR := 0
VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
VERSION_MINOR := $(word 2,$(subst ., ,$(VERSION)))
VERSION_PATCH := $(word 3,$(subst ., ,$(VERSION)))

WARN    := -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-missing-field-initializers
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Iinclude -I. $(WARN)
OPT     ?= -O2 -g
DEP_LIBS := -lev -lcares -lpthread -lm

LIB_DIRS := core timers promises io
LIB_SRCS := $(sort $(wildcard $(addsuffix /*.c,$(LIB_DIRS))))
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_NAMES := $(patsubst tests/test_%.c,%,$(TEST_SRCS))
TEST_SUPPORT := $(sort $(wildcard tests/support/*.c))
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCH_SUPPORT := $(sort $(wildcard bench/support/*.c))
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
HEADERS := $(wildcard include/*.h include/weft/*.h)

# Suites run under ThreadSanitizer: all of them (the pool, every _threadsafe
# path and the servers' threads included); the runner forks per test.
TSAN_TESTS ?= $(TEST_NAMES)

# One stamp per dependency step (scripts/deps.sh STEP): lib for the
# library, examples for what examples/ link, test for make check, bench
# for the benchmarks' peers.
DEPS_STEPS := lib examples test bench docs cross
$(foreach s,$(DEPS_STEPS),$(eval DEPS_$(s) := build/.deps-$(s)))
# the old name (one step for everything): the library's step now
DEPS_STAMP := $(DEPS_lib)

# ---- variants: $(O) plain, $(O)/asan, $(O)/tsan -------------------------
define variant
$(1)_DIR    := $(2)
$(1)_CFLAGS := $(BASE_CFLAGS) $(3)
$(1)_LDFLAGS := $(4)
$(1)_OBJS   := $$(patsubst %.c,$(2)/obj/%.o,$$(LIB_SRCS))
$(2)/obj/%.o: %.c $$(HEADERS) $$(wildcard */*internal.h core/list.h) | $(DEPS_lib)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_CFLAGS) -c $$< -o $$@
$(2)/libweft.a: $$($(1)_OBJS)
	@rm -f $$@
	ar rcs $$@ $$^
endef

SAN_ASAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_TSAN := -fsanitize=thread -fno-omit-frame-pointer

$(eval $(call variant,PLAIN,$(O),$(OPT),))
# WEFT_DEBUG turns on WEFT__ASSERT (core/debug_internal.h) in the sanitizer builds.
$(eval $(call variant,ASAN,$(O)/asan,-O1 -g $(SAN_ASAN) -DWEFT_DEBUG,$(SAN_ASAN)))
$(eval $(call variant,TSAN,$(O)/tsan,-O1 -g $(SAN_TSAN) -DWEFT_TSAN -DWEFT_DEBUG,$(SAN_TSAN)))

.PHONY: all lib check check-plain check-asan check-tsan test bench examples \
        benches install uninstall clean format compile_commands deps tidy fuzz check-layers check-format \
        check-headers check-examples check-version check-docs check-guide docs bench-publish $(addprefix deps-,$(DEPS_STEPS))

all: lib
lib: $(O)/libweft.a $(O)/libweft.so

build/.deps-%: scripts/deps.sh
	@mkdir -p $(@D)
	@scripts/deps.sh $*
	@touch $@
deps: deps-lib
$(addprefix deps-,$(DEPS_STEPS)): deps-%: build/.deps-%

$(O)/libweft.so: $(PLAIN_OBJS)
	$(CC) -shared -Wl,-soname,libweft.so.$(SOMAJOR) -o $(O)/libweft.so.$(VERSION) $^ $(DEP_LIBS)
	ln -sf libweft.so.$(VERSION) $(O)/libweft.so.$(SOMAJOR)
	ln -sf libweft.so.$(SOMAJOR) $@

# ---- tests ----------------------------------------------------------------
# Each suite links the static library; Criterion runs its tests in parallel
# worker processes, each with its own timeout.
define test_variant
$(2)/tests/test_%: tests/test_%.c $(2)/libweft.a $$(TEST_SUPPORT) tests/support/*.h | $(DEPS_test)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_CFLAGS) -Itests -o $$@ $$< $$(TEST_SUPPORT) $(2)/libweft.a $$($(1)_LDFLAGS) -lcriterion $(DEP_LIBS)
endef
$(eval $(call test_variant,PLAIN,$(O)))
$(eval $(call test_variant,ASAN,$(O)/asan))

# ThreadSanitizer cannot run Criterion (its arena setup aborts), so the same
# sources are built against tests/support/plainrun.h, a small fork-per-test
# runner with the same Test()/cr_assert* surface.
$(O)/tsan/tests/test_%: tests/test_%.c $(O)/tsan/libweft.a $(TEST_SUPPORT) tests/support/*.h | $(DEPS_test)
	@mkdir -p $(@D)
	$(CC) $(TSAN_CFLAGS) -DWEFT_PLAINRUN -Itests -o $@ $< $(TEST_SUPPORT) $(O)/tsan/libweft.a $(TSAN_LDFLAGS) $(DEP_LIBS)

RUN_NAMES := $(if $(T),$(T),$(TEST_NAMES))
ASAN_ENV := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# Without T: also the header test (C++11..23 and strict C11 users), the
# examples' command lines, the version check, the install test and the
# API reference's coverage (check-docs).
check: check-plain check-asan check-layers $(if $(T),,check-headers check-examples check-version check-docs check-guide)
	@echo "make check: all suites passed (plain and ASan+UBSan), calls only go down the layers"

check-headers: $(O)/libweft.a | $(DEPS_test)
	@O=$(O) scripts/test-headers.sh

# Every example in $(O)/examples: --help (usage on stdout, exit 0), a bad
# flag (usage on stderr, exit 2); scripts/test-examples.sh.
check-examples: examples | $(DEPS_test)
	@O=$(O) scripts/test-examples.sh

check-plain: $(addprefix $(O)/tests/test_,$(RUN_NAMES)) lib
	@scripts/run-tests.sh "plain" $(addprefix $(O)/tests/test_,$(RUN_NAMES))
	@$(if $(T),true,O=$(O) CC=$(CC) scripts/test-install.sh)

check-asan: $(addprefix $(O)/asan/tests/test_,$(RUN_NAMES))
	@env $(ASAN_ENV) scripts/run-tests.sh "asan+ubsan" $^

check-tsan: $(addprefix $(O)/tsan/tests/test_,$(if $(T),$(T),$(TSAN_TESTS)))
	@env $(TSAN_ENV) scripts/run-tests.sh "tsan" $^

test: check-plain

# The aarch64 context switch run, not only assembled: tests/aarch64's
# standalone test over promises/fiber_switch.c, built statically with the
# cross compiler and run under qemu-aarch64 (scripts/deps.sh cross).
# Not part of make check (it needs the cross packages).
AARCH64_CC ?= aarch64-linux-gnu-gcc
QEMU_AARCH64 ?= qemu-aarch64
AARCH64_SRCS := tests/aarch64/switch_test.c promises/fiber_switch.c promises/fiber_stack.c
$(O)/aarch64/switch_test: $(AARCH64_SRCS) promises/fiber_internal.h | $(DEPS_cross)
	@mkdir -p $(@D)
	$(AARCH64_CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -static -Iinclude -I. -o $@ $(AARCH64_SRCS) -lm
check-aarch64: $(O)/aarch64/switch_test
	timeout 60 $(QEMU_AARCH64) $<
.PHONY: check-aarch64

# Calls only go down the layers of DESIGN.md (the table is in the script).
check-layers: $(PLAIN_OBJS)
	@scripts/check-layers.sh $(O)/obj

# ---- benchmarks and examples --------------------------------------------
BENCH_BINS := $(patsubst bench/%.c,$(O)/bench/%,$(BENCH_SRCS))
EXAMPLE_BINS := $(patsubst examples/%.c,$(O)/examples/%,$(EXAMPLE_SRCS))
BENCH_LIBS := $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)

$(O)/bench/%: bench/%.c $(O)/libweft.a $(BENCH_SUPPORT) bench/support/*.h | $(DEPS_bench)
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iinclude -Ibench -o $@ $< $(BENCH_SUPPORT) $(O)/libweft.a $(BENCH_LIBS) $(DEP_LIBS)

$(O)/examples/%: examples/%.c examples/args.h $(O)/libweft.a | $(DEPS_examples)
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iinclude -o $@ $< $(EXAMPLE_SRCS_$*) $(O)/libweft.a $(DEP_LIBS) $(EXAMPLE_LIBS_$*)

# Extra sources (examples/NAME/*.c) and libraries per example; test suites
# that run an example need it built.
EXAMPLE_SRCS_httpd := $(wildcard examples/httpd/*.c)
EXAMPLE_LIBS_httpd := -lhttp_parser
EXAMPLE_LIBS_tree_sum := -lz
$(O)/examples/httpd: $(EXAMPLE_SRCS_httpd) examples/httpd/httpd.h
$(O)/tests/test_httpd $(O)/tsan/tests/test_httpd: $(O)/examples/httpd
# The ASan suite runs an ASan+UBSan server (found first, next to its tests).
$(O)/asan/tests/test_httpd: $(O)/asan/examples/httpd
$(O)/bench/bench_httpd: $(O)/examples/httpd $(O)/examples/wload
$(O)/asan/examples/httpd: examples/httpd.c $(EXAMPLE_SRCS_httpd) examples/httpd/httpd.h $(O)/asan/libweft.a | $(DEPS_examples)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -o $@ $< $(EXAMPLE_SRCS_httpd) $(O)/asan/libweft.a $(ASAN_LDFLAGS) $(DEP_LIBS) $(EXAMPLE_LIBS_httpd)

# kvd: examples/kvd.c plus examples/kvd/*.c; its suite (with an ASan+UBSan
# server for the ASan run) and its benchmark start the server binary.
EXAMPLE_SRCS_kvd := $(wildcard examples/kvd/*.c)
$(O)/examples/kvd: $(EXAMPLE_SRCS_kvd) examples/kvd/kvd.h
$(O)/tests/test_kvd $(O)/bench/bench_kvd: $(O)/examples/kvd
$(O)/bench/bench_kvd: $(O)/examples/wload
$(O)/asan/tests/test_kvd: $(O)/asan/examples/kvd
$(O)/asan/examples/kvd: examples/kvd.c $(EXAMPLE_SRCS_kvd) examples/kvd/kvd.h $(O)/asan/libweft.a | $(DEPS_examples)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -o $@ $< $(EXAMPLE_SRCS_kvd) $(O)/asan/libweft.a $(ASAN_LDFLAGS) $(DEP_LIBS)
# --loops N is threaded: the TSan suite runs a TSan server.
$(O)/tsan/tests/test_kvd: $(O)/tsan/examples/kvd
$(O)/tsan/examples/kvd: examples/kvd.c $(EXAMPLE_SRCS_kvd) examples/kvd/kvd.h $(O)/tsan/libweft.a | $(DEPS_examples)
	@mkdir -p $(@D)
	$(CC) $(TSAN_CFLAGS) -o $@ $< $(EXAMPLE_SRCS_kvd) $(O)/tsan/libweft.a $(TSAN_LDFLAGS) $(DEP_LIBS)

# wload: examples/wload.c plus examples/wload/*.c; its suite runs the
# binary (ASan+UBSan and TSan builds for those runs: it is threaded).
EXAMPLE_SRCS_wload := $(wildcard examples/wload/*.c)
$(O)/examples/wload: $(EXAMPLE_SRCS_wload) examples/wload/wload.h
$(O)/tests/test_wload: $(O)/examples/wload
$(O)/asan/tests/test_wload: $(O)/asan/examples/wload
$(O)/tsan/tests/test_wload: $(O)/tsan/examples/wload
$(O)/asan/examples/wload: examples/wload.c $(EXAMPLE_SRCS_wload) examples/wload/wload.h $(O)/asan/libweft.a | $(DEPS_examples)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -o $@ $< $(EXAMPLE_SRCS_wload) $(O)/asan/libweft.a $(ASAN_LDFLAGS) $(DEP_LIBS)
$(O)/tsan/examples/wload: examples/wload.c $(EXAMPLE_SRCS_wload) examples/wload/wload.h $(O)/tsan/libweft.a | $(DEPS_examples)
	@mkdir -p $(@D)
	$(CC) $(TSAN_CFLAGS) -o $@ $< $(EXAMPLE_SRCS_wload) $(O)/tsan/libweft.a $(TSAN_LDFLAGS) $(DEP_LIBS)

benches: $(BENCH_BINS)
examples: $(EXAMPLE_BINS)

# Results go to $(O)/bench-results (latest.jsonl, REPORT.md, charts); the
# committed report in bench/results/ changes only with `make bench-publish`.
bench: benches
	@O=$(O) scripts/bench.sh $(BENCH)

bench-publish:
	@O=$(O) scripts/bench-publish.sh

# Fuzzers and differential testers (scripts/fuzz-*.sh), each bounded by
# FUZZ_SECONDS; they build what they run through this Makefile.
fuzz: lib | $(DEPS_test)
	@O=$(O) scripts/fuzz.sh

# ---- install --------------------------------------------------------------
# scripts/install.sh: headers, both libraries, weft.pc, the CMake package
# (LIBDIR/cmake/weft), a manifest for uninstall; ldconfig as root when
# DESTDIR is empty (else it prints what to do).
INSTALL_ENV = O=$(O) PREFIX=$(PREFIX) LIBDIR=$(LIBDIR) INCDIR=$(INCDIR) DESTDIR=$(DESTDIR) \
              VERSION=$(VERSION) SOMAJOR=$(SOMAJOR) VERSION_MAJOR=$(VERSION_MAJOR) \
              VERSION_MINOR=$(VERSION_MINOR)
install: lib
	@$(INSTALL_ENV) scripts/install.sh install

uninstall:
	@$(INSTALL_ENV) scripts/install.sh uninstall

# The version in one place: header macros and weft_version() (from them)
# must match VERSION; weft.pc and the CMake files are generated from it.
check-version: lib
	@O=$(O) CC=$(CC) VERSION=$(VERSION) scripts/check-version.sh

# ---- API reference --------------------------------------------------------
# doxygen (docs/Doxyfile) on include/ into $(O)/docs: html/index.html (one
# page per header under Files), man/man3 (one page per header), xml/.
# check-docs: every exported function documented and in the reference.
docs: | $(DEPS_docs)
	@rm -rf $(O)/docs && mkdir -p $(O)/docs
	@WEFT_VERSION=$(VERSION) WEFT_DOCS_OUT=$(O)/docs doxygen docs/Doxyfile
	@echo "docs: $(O)/docs/html/index.html, man pages in $(O)/docs/man (man -l $(O)/docs/man/man3/loop.h.3)"
check-docs: docs lib
	@O=$(O) scripts/check-docs.sh
# check-guide: every weft name the docs mention exists, the guide's code
# excerpts are word for word in the examples, every link leads somewhere.
check-guide:
	@scripts/check-guide.sh

# ---- tooling --------------------------------------------------------------
FORMAT_FILES := $(sort $(LIB_SRCS) $(HEADERS) $(wildcard */*.h */*/*.h) $(TEST_SRCS) \
                $(TEST_SUPPORT) $(BENCH_SRCS) $(BENCH_SUPPORT) $(EXAMPLE_SRCS) \
                $(wildcard examples/*/*.c))
format:
	clang-format -i $(FORMAT_FILES)
# CI runs this: every file already as `make format` would leave it.
check-format: | $(DEPS_test)
	@clang-format --dry-run -Werror $(FORMAT_FILES)
	@echo "check-format: $(words $(FORMAT_FILES)) files formatted"

compile_commands:
	$(MAKE) clean && bear -- $(MAKE) lib

clean:
	rm -rf $(O)/obj $(O)/asan $(O)/tsan $(O)/tests $(O)/bench $(O)/examples $(O)/libweft.*

# tests/test_examples_fibers.c runs the fiber-style examples (every
# variant runs the plain build's programs); bench/fibers/run.sh, which
# scripts/bench.sh runs for BENCH=fibers, serves echo with both echoes.
FIBER_EXAMPLES := echo_fibers tree_sum run_many prodcons_fibers workers_fibers counter_fibers get_fibers
$(O)/tests/test_examples_fibers $(O)/asan/tests/test_examples_fibers $(O)/tsan/tests/test_examples_fibers: \
  $(addprefix $(O)/examples/,$(FIBER_EXAMPLES))
GUIDE_EXAMPLES := first_callbacks first_futures first_fibers models_map models_prodcons models_fetch
$(O)/tests/test_examples_guide $(O)/asan/tests/test_examples_guide $(O)/tsan/tests/test_examples_guide: \
  $(addprefix $(O)/examples/,$(GUIDE_EXAMPLES))
$(O)/bench/bench_fibers: $(O)/examples/echo $(O)/examples/echo_fibers
# tests/test_examples_scale.c runs httpd and kvd with --handoff.
$(O)/tests/test_examples_scale $(O)/asan/tests/test_examples_scale $(O)/tsan/tests/test_examples_scale: \
  $(O)/examples/httpd $(O)/examples/kvd
# tests/test_examples_prefork.c runs examples/prefork.
$(O)/tests/test_examples_prefork $(O)/asan/tests/test_examples_prefork $(O)/tsan/tests/test_examples_prefork: \
  $(O)/examples/prefork
