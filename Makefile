# Makefile - the commands a user types; CMake does the building.
#
#   make run       install missing packages, build, and start the main job: the
#                  MCP server on stdio (`qreg mcp`) on the embedded SQLite
#                  default database (DB=URL serves another one). Everything
#                  before the server (apt, npm, cmake, the compiler) writes to
#                  stderr: an MCP host reads stdout as JSON-RPC.
#   make demo      build, create build/demo.db and run a query on it with
#                  `qreg query`
#   make test      install missing packages, build, run every test (ctest)
#   make asan      the tests in build-asan/ with ASan + UBSan
#   make tsan      the tests in build-tsan/ with TSan
#   make valgrind  the tests of build/ under valgrind (ctest -T memcheck)
#   make fuzz      the libFuzzer targets (MCP messages, URLs, values, HTTP headers), FUZZ_SECONDS each
#   make bench     the benchmarks of docs/performance.md, in Release
#   make bench-http  the HTTP benchmarks of `qreg serve` (wrk; bench/http/run.sh)
#   make install   build in Release (build-release/) and install the header,
#                  libqreg.so.0, libqreg.a, qreg.pc and the qreg program under
#                  PREFIX (default /usr/local), staged under DESTDIR if set
#   make format-check  clang-format --dry-run over every C file: fails if one
#                  differs from .clang-format (`make format` rewrites them)
#   make tidy      clang-tidy (.clang-tidy) on src/: fails on any warning
#   make deps      only install missing packages (or print the command to)
#   make clean     remove every build directory (bench/run.sh's too)
#
# Each build directory is configured by CMake on every call (cheap) so that new
# source files and newly installed npm packages are always picked up.
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
JOBS ?= 2
BUILD_TYPE ?= Debug
TEST_TIMEOUT ?= 120
# valgrind slows a test down 20-50 times; the per-test hang guard grows to match.
VALGRIND_TEST_TIMEOUT ?= 900
# gcc's TSan works on Debian 12; `rm -rf build-tsan; make tsan TSAN_CC=clang` switches (the
# compiler is chosen when build-tsan/ is first configured).
TSAN_CC ?= gcc

DEMO_SQL ?= SELECT c.name AS city, c.country, count(o.id) AS orders, \
  round(sum(o.amount), 2) AS revenue, max(o.created_at) AS last_order \
  FROM cities c LEFT JOIN orders o ON o.city_id = c.id \
  GROUP BY c.id ORDER BY revenue DESC NULLS LAST

E2E_DIR := tests/e2e
# The MCP conformance suite and the Node.js 22 it runs on (tests/conformance/run.sh).
CONFORMANCE_DIR := tests/conformance
# The console page's browser test (playwright-core driving Debian's chromium).
CONSOLE_DIR := tests/console

# $(call configure_and_build,DIR,EXTRA CMAKE ARGS[,ENVIRONMENT])
define configure_and_build
	$(3) cmake -S . -B $(1) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(2) >/dev/null
	cmake --build $(1) -j $(JOBS)
endef

PREFIX ?= /usr/local
DESTDIR ?=
# The version .clang-format and .clang-tidy are written for (Debian 12).
CLANG_FORMAT ?= clang-format-14
CLANG_TIDY ?= clang-tidy-14
# Every C file of the project (node_modules of the e2e tests excluded); found
# when a target uses them, not on every make.
FORMAT_SOURCES = $(sort $(shell find src include tests bench examples tools \
  -name node_modules -prune -o -type f -name '*.[ch]' -print 2>/dev/null) $(wildcard *.c *.h))
TIDY_SOURCES = $(sort $(shell find src -type f -name '*.c'))

.PHONY: all build run demo test asan tsan valgrind fuzz bench bench-http deps e2e-deps conformance-deps clean \
        install format format-check tidy
FUZZ_SECONDS ?= 60

all: build

deps:
	@bash scripts/install-deps.sh

# $(call npm_ci,DIR): npm ci in DIR (pinned by its package-lock.json) when
# node_modules is missing or older than the lock; nothing without a lock.
define npm_ci
	@if [ -f $(1)/package-lock.json ] && { [ ! -d $(1)/node_modules ] || \
	    [ $(1)/package-lock.json -nt $(1)/node_modules ]; }; then \
	  echo "npm ci in $(1)" >&2; \
	  (cd $(1) && npm ci --no-audit --no-fund >&2) && \
	  mkdir -p $(1)/node_modules && touch $(1)/node_modules; \
	fi
endef

# npm packages of the end-to-end tests and of the console's browser test.
e2e-deps: deps
	$(call npm_ci,$(E2E_DIR))
	$(call npm_ci,$(CONSOLE_DIR))

# npm packages of the MCP conformance suite (and its Node.js 22).
conformance-deps: deps
	$(call npm_ci,$(CONFORMANCE_DIR))

build: deps e2e-deps conformance-deps
	$(call configure_and_build,build,-DQREG_SANITIZE= -DQREG_TEST_TIMEOUT=$(TEST_TIMEOUT))

# stdout is the MCP stream from the first byte: the build runs in a sub-make
# whose output (make's own command lines included) goes to stderr and which
# reads nothing of stdin (the client's first messages wait for the server),
# and the server's command line is not echoed. One thing this Makefile cannot
# silence: `make -C DIR run` prints "make: Entering directory" on stdout
# before reading it; a host that must use -C adds --no-print-directory.
run:
	@$(MAKE) build </dev/null >&2
	@exec build/qreg mcp $(if $(DB),--db '$(DB)')

demo: build
	build/qreg query --db sqlite:build/demo.db '$(DEMO_SQL)'

test: build
	ctest --test-dir build --output-on-failure

asan: deps e2e-deps conformance-deps
	$(call configure_and_build,build-asan,-DQREG_SANITIZE=address -DQREG_TEST_TIMEOUT=$(TEST_TIMEOUT))
	ctest --test-dir build-asan --output-on-failure

tsan: deps e2e-deps conformance-deps
	$(call configure_and_build,build-tsan,-DQREG_SANITIZE=thread -DQREG_TEST_TIMEOUT=$(TEST_TIMEOUT),CC=$(TSAN_CC))
	ctest --test-dir build-tsan --output-on-failure

# Node and shell scripts are not run under valgrind: the e2e and script labels
# are left out, and so are the heavy tests (the allocation-failure sweeps and
# the PostgreSQL chaos run, a minute or more each natively; ASan and TSan run
# them). A valgrind error or a definite/indirect leak makes the test
# exit 1, so ctest fails; the valgrind logs of the failed runs are printed.
valgrind: deps e2e-deps conformance-deps
	$(call configure_and_build,build,-DQREG_SANITIZE= -DQREG_TEST_TIMEOUT=$(VALGRIND_TEST_TIMEOUT))
	@rm -f build/Testing/Temporary/MemoryChecker.*.log
	@ctest --test-dir build -T memcheck -LE 'e2e|script|heavy' --output-on-failure || { \
	  for log in build/Testing/Temporary/MemoryChecker.*.log; do \
	    if grep -qE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]' "$$log"; then \
	      echo "=== $$log"; cat "$$log"; \
	    fi; \
	  done; exit 1; }

fuzz: deps
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# Release build in build-bench/, its own PostgreSQL, every figure beside its
# baseline; BENCH_ARGS="--scale 0.1" for a quick look.
bench: deps
	bash bench/run.sh $(BENCH_ARGS)

# qreg serve under wrk beside its baselines (stdio MCP, /healthz, psql);
# BENCH_HTTP_ARGS="--only 1 --rounds 1" for a quick look. Not part of CI.
bench-http:
	bash bench/http/run.sh $(BENCH_HTTP_ARGS)

# A Release build of its own (no tests), configured for PREFIX so that the
# library directory follows the platform's rules (lib/, or Debian's multiarch
# lib/x86_64-linux-gnu/ under /usr); `cmake --install` honours DESTDIR.
install: BUILD_TYPE = Release
install: deps
	$(call configure_and_build,build-release,-DQREG_SANITIZE= -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX='$(PREFIX)')
	DESTDIR='$(DESTDIR)' cmake --install build-release --prefix '$(PREFIX)'

format-check:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "$(CLANG_FORMAT) is missing: make deps" >&2; exit 1; }
	@differ=0; for file in $(FORMAT_SOURCES); do \
	  $(CLANG_FORMAT) --dry-run -Werror "$$file" 2>/dev/null || { echo "$$file"; differ=$$((differ + 1)); }; \
	done; \
	if [ $$differ -ne 0 ]; then \
	  echo "format-check: $$differ of $(words $(FORMAT_SOURCES)) files differ from .clang-format" \
	       "($(CLANG_FORMAT) --dry-run FILE shows how; make format rewrites them)" >&2; \
	  exit 1; \
	fi; \
	echo "format-check: $(words $(FORMAT_SOURCES)) files follow .clang-format"

format:
	$(CLANG_FORMAT) -i $(FORMAT_SOURCES)

# clang-tidy reads the compile commands of build/ (configured, not built).
tidy: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DQREG_SANITIZE= -DQREG_TEST_TIMEOUT=$(TEST_TIMEOUT) >/dev/null
	$(CLANG_TIDY) -p build --quiet --warnings-as-errors='*' $(TIDY_SOURCES)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-bench build-release
