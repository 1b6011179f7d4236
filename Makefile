# keel — thin wrapper over CMake and ctest; the build itself lives in CMakeLists.txt.
#   make run            install what is missing, build Release, run keeld (ARGS=... passed on)
#   make test           install what is missing, build with -Werror, run every test
#   make test-sanitize  the tests under ASan+UBSan in build-asan/ (Debug)
#   make test-tsan      the threaded tests (test_xcore, keeld under load) under ThreadSanitizer
#   make sim SEEDS=100000 [STEPS=2000] [NODES=3|5] [FIRST=1]
#                       the deterministic simulation over many seeds (Release, JOBS at a time)
#   make bench          engine_bench, then perf/compare.sh (keel, etcd and ZooKeeper, ~20 min)
#   make tidy | format | clean
JOBS  := $(shell nproc)
BUILD := build
ASAN  := build-asan
TSAN  := build-tsan
ARGS  ?=

.PHONY: run test test-sanitize test-tsan tidy format bench clean deps release sim

deps:
	@bash tools/install-deps.sh

release: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

run: release
	$(BUILD)/bin/keeld --data-dir ./data $(ARGS)

test: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DKEEL_WERROR=ON
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure

test-sanitize: deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=ON -DKEEL_WERROR=ON \
		-DKEEL_BENCH_LMDB=OFF
	cmake --build $(ASAN) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN) --output-on-failure

# TSan runs where threads meet: test_xcore (KEEL_OPS shortens its stress loops; TSan is ~10x
# slower), then keeld itself under a cross-core load with snapshots and a SIGTERM drain.
test-tsan: deps
	cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_TSAN=ON -DKEEL_WERROR=ON \
		-DKEEL_BENCH_LMDB=OFF
	cmake --build $(TSAN) -j $(JOBS) --target test_xcore keeld keelctl keelbench
	KEEL_OPS=200000 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --test-dir $(TSAN) --output-on-failure -R '^test_xcore$$'
	bash tests/tsan/keeld_tsan.sh $(TSAN)

# The long mode of tests/sim (ctest runs 2,000 seeds): a failing seed prints its replay line.
SEEDS ?= 10000
FIRST ?= 1
sim: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS) --target keel_sim
	$(BUILD)/tests/keel_sim --seeds $(SEEDS) --first-seed $(FIRST) --jobs $(JOBS) --keep-going \
		$(if $(STEPS),--steps $(STEPS)) $(if $(NODES),--nodes $(NODES))

tidy:
	@bash tools/tidy.sh

format:
	git ls-files -z '*.c' '*.h' | grep -zv '_gen\.h$$' | xargs -0 -r clang-format -i

bench: release
	@[ -x $(BUILD)/bin/engine_bench ] || \
		{ echo "bench: $(BUILD)/bin/engine_bench was not built" >&2; exit 1; }
	$(BUILD)/bin/engine_bench
	bash perf/compare.sh --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN) $(TSAN)
