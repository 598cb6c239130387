#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer target for the MCP message handler
# (clang, -fsanitize=fuzzer,address,undefined) into build-fuzz/ and runs it
# for SECONDS (default 60) on the seed corpus tests/fuzz/corpus/. New inputs
# go to build-fuzz/corpus/, never into the committed seeds; crashes to
# build-fuzz/. Prints the number of executions. Exit status non-zero on a
# crash, a sanitizer report or a leak.
#
#   tests/fuzz/run.sh            # 60 s
#   tests/fuzz/run.sh 300        # 5 min
#   FUZZ_JOBS=2 tests/fuzz/run.sh 60
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
OUT=${FUZZ_BUILD_DIR:-build-fuzz}
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT/obj" "$OUT/corpus"

DEPS="libuv sqlite3 libpq jansson"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinclude -Isrc $(pkg-config --cflags $DEPS)"
SANITIZE="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
# Everything but the program's entry points (src/cli, src/mcp/server.c).
SOURCES=$(ls src/core/*.c src/drivers/*.c src/mcp/*.c | grep -v '^src/mcp/server.c$')
objects=()
for src in $SOURCES; do
  obj="$OUT/obj/$(echo "$src" | tr / _).o"
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src include -name '*.h' -newer "$obj" | head -1)" ]; then
    $CC $CFLAGS $SANITIZE -c "$src" -o "$obj"
  fi
  objects+=("$obj")
done
$CC $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  tests/fuzz/fuzz_mcp_message.c "${objects[@]}" -o "$OUT/fuzz_mcp_message" \
  $(pkg-config --libs $DEPS) -lpthread -lm

echo "fuzz_mcp_message: running for ${SECONDS_TO_RUN}s"
set +e
"$OUT/fuzz_mcp_message" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=30 \
  -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/" ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} \
  "$OUT/corpus" tests/fuzz/corpus 2> "$OUT/fuzz.log"
status=$?
set -e
grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY" "$OUT/fuzz.log" || true
if [ $status -ne 0 ]; then
  tail -60 "$OUT/fuzz.log"
  echo "fuzz_mcp_message: FAILED (status $status); log in $OUT/fuzz.log"
fi
exit $status
