#!/usr/bin/env bash
# bench/run.sh - the one command that measures qreg: builds the benchmarks in
# Release (-O2) in build-bench/ (bench/CMakeLists.txt, which builds the root
# project's library in build-bench/qreg-release/), builds the qreg program for
# the MCP figure if it builds, then runs bench/qreg_bench: it starts its own
# PostgreSQL server (the tests' fixture), runs every figure beside its
# baseline, prints one table and writes build-bench/results.json.
#
#   bench/run.sh                 the full run (about 4-6 minutes on 2 CPUs)
#   bench/run.sh --scale 0.1     counts divided by 10, for a quick look
#   bench/run.sh --only 1,7      some figures only
#   bench/run.sh --rounds 3      fewer repetitions
#
# Arguments go to qreg_bench (qreg_bench --help lists them). Exits non-zero
# only when something could not be built or set up - never because of a
# figure. Owns build-bench/ (BENCH_BUILD_DIR to move it).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BENCH_BUILD_DIR:-build-bench}
jobs=${JOBS:-2}

echo "== building the benchmarks (Release) in $build_dir" >&2
cmake -S bench -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs" >&2

qreg_program=()
if cmake --build "$build_dir/qreg-release" -j "$jobs" --target qreg >"$build_dir/qreg-program.log" 2>&1; then
  qreg_program=(--qreg "$build_dir/qreg-release/qreg")
else
  echo "== the qreg program does not build (see $build_dir/qreg-program.log): the MCP figure is skipped" >&2
fi

exec "$build_dir/qreg_bench" --json "$build_dir/results.json" "${qreg_program[@]}" "$@"
