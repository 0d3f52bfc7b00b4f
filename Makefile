# jetsource: the two set-up commands are `make demo` and `make test`.
# Every target installs missing dependencies first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
# ccache (installed by scripts/install-deps.sh) makes a rebuild of unchanged sources a cache hit,
# also from another checkout of the tree: paths are hashed relative to the checkout.
CCACHE := $(shell command -v ccache 2>/dev/null)
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
CMAKE_FLAGS ?= $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
CTEST_FLAGS ?= --output-on-failure

.PHONY: deps configure build test test-asan test-tsan test-fuzz fuzz demo demo-bank bench format clean

deps:
	@./scripts/install-deps.sh

# Release-ish build in build/: `configure` only writes the build files, `build` builds everything
# (library, tools, tests, benchmarks); binaries in build/bin/.
configure: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJETSOURCE_WERROR=ON $(CMAKE_FLAGS) >/dev/null

build: configure
	cmake --build build -j $(JOBS)

# The fuzz targets briefly (clang, build-fuzz: docs/fuzzing.md), the whole suite under ASan/UBSan,
# then the concurrent parts under TSan.
test: deps test-fuzz test-asan test-tsan

# Each fuzz target for FUZZ_TEST_SECONDS (and over its corpus and past crashes); `make fuzz`
# runs them for FUZZ_SECONDS each, by hand.
FUZZ_TEST_SECONDS ?= 20
FUZZ_SECONDS ?= 600
test-fuzz: deps
	./scripts/fuzz.sh --seconds $(FUZZ_TEST_SECONDS)

fuzz: deps
	./scripts/fuzz.sh --seconds $(FUZZ_SECONDS)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DJETSOURCE_WERROR=ON \
	  -DJETSOURCE_SANITIZE=address -DJETSOURCE_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest $(CTEST_FLAGS)

test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJETSOURCE_WERROR=ON \
	  -DJETSOURCE_SANITIZE=thread -DJETSOURCE_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build build-tsan -j $(JOBS) --target jetsource_concurrent_tests  # only what -L concurrent runs
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ctest -L concurrent $(CTEST_FLAGS)

# The order-system sample on an embedded nats-server it starts itself; starts clean each time
# (its data lives in .order-system/demo). It builds only the sample and what it links (not the
# tests or benchmarks: `make build` does). Then the reactors (scripts/demo-reactors.sh): three
# `react` members, one killed mid-way, stock sold = units sold at the end. The bank write-side
# tour is `make demo-bank`.
demo: configure
	cmake --build build -j $(JOBS) --target order-system
	./build/bin/order-system demo
	./scripts/demo-reactors.sh build/bin/order-system

demo-bank: build
	./build/bin/jetsource-demo

# The benchmarks' own dependencies first (valgrind, PostgreSQL for peer-postgres), then the build.
bench:
	@./scripts/install-deps.sh bench
	$(MAKE) build
	./scripts/run-bench.sh

format:
	find internal framework projections domain-samples tests bench -name '*.hpp' -o -name '*.cpp' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan build-fuzz
