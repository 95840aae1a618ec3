# SPDX-License-Identifier: LGPL-2.1-or-later
# Entry points.  The real build is meson + ninja; this file only sequences it.
#   make            build (build/)
#   make demo       build, then create a pool and a volume, put a filesystem on it
#   make check      the whole test suite: normal build, ASan+UBSan build, short fuzz runs
#   make check-long long soaks (crash loops, longer fuzzing)
#   make bench      fio benchmarks against berth and its peers (bench/)
SHELL := /bin/bash
JOBS ?= 2
FUZZ_SECONDS ?= 20

.PHONY: all deps build build-asan build-fuzz check check-long demo bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
	@ninja -C build

build-asan: deps
	@[ -f build-asan/build.ninja ] && meson setup --reconfigure build-asan >/dev/null || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug >/dev/null
	@ninja -C build-asan

build-fuzz: deps
	@[ -f build-fuzz/build.ninja ] && meson setup --reconfigure build-fuzz >/dev/null || CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	@ninja -C build-fuzz

check: build build-asan build-fuzz
	@tests/run-tests.sh -j $(JOBS) --fuzz-seconds $(FUZZ_SECONDS) build build-asan build-fuzz

check-long: build build-asan build-fuzz
	@BERTH_LONG=1 tests/run-tests.sh -j $(JOBS) --fuzz-seconds 600 build build-asan build-fuzz

demo: build
	@scripts/demo.sh
	@scripts/demo-vm.sh

bench: build
	@bench/run.sh

clean:
	rm -rf build build-asan build-fuzz
