#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer targets (clang,
# -fsanitize=fuzzer,address,undefined) into build-fuzz/ and runs each for
# SECONDS (default 60) on its seed corpus:
#   mcp_message  the MCP message handler          seeds tests/fuzz/corpus/
#   url          database URL parsing, redaction  seeds tests/fuzz/corpus-url/
#   values       the one value encoder            seeds tests/fuzz/corpus-values/
#   headers      Host/Origin, media-type lists    seeds tests/fuzz/corpus-headers/
# New inputs go to build-fuzz/corpus-<target>/, never into the committed
# seeds; crashes to build-fuzz/. Prints each target's number of executions.
# Exit status non-zero on a crash, a sanitizer report or a leak.
#
#   tests/fuzz/run.sh                          # every target, 60 s each
#   tests/fuzz/run.sh 300                      # 5 min each
#   FUZZ_TARGETS=mcp_message tests/fuzz/run.sh 3600
#   FUZZ_JOBS=2 tests/fuzz/run.sh 60
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
OUT=${FUZZ_BUILD_DIR:-build-fuzz}
CC=${FUZZ_CC:-clang}
TARGETS=${FUZZ_TARGETS:-mcp_message url values headers}
mkdir -p "$OUT/obj"

DEPS="libuv sqlite3 libpq jansson libcurl libcrypto zlib"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinclude -Isrc $(pkg-config --cflags $DEPS)"
SANITIZE="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
# Everything but the program's entry points and option parsing (src/cli,
# src/mcp/server.c, and src/mcp/config.c: --config, with libyaml).
# From src/http only the pure header parsers (the rest needs libmicrohttpd).
SOURCES=$( (find src/core src/drivers src/mcp -name '*.c'; echo src/http/headers.c) |
  grep -v -e '^src/mcp/server.c$' -e '^src/mcp/config.c$' | sort)
objects=()
for src in $SOURCES; do
  obj="$OUT/obj/$(echo "$src" | tr / _).o"
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src include -name '*.h' -newer "$obj" | head -1)" ]; then
    $CC $CFLAGS $SANITIZE -c "$src" -o "$obj"
  fi
  objects+=("$obj")
done

status=0
for target in $TARGETS; do
  corpus=tests/fuzz/corpus
  [ "$target" = mcp_message ] || corpus=tests/fuzz/corpus-$target
  $CC $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    "tests/fuzz/fuzz_$target.c" "${objects[@]}" -o "$OUT/fuzz_$target" \
    $(pkg-config --libs $DEPS) -lpthread -lm
  mkdir -p "$OUT/corpus-$target"
  echo "fuzz_$target: running for ${SECONDS_TO_RUN}s"
  set +e
  "$OUT/fuzz_$target" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/fuzz_$target-" \
    ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} \
    "$OUT/corpus-$target" "$corpus" 2> "$OUT/fuzz_$target.log"
  rc=$?
  set -e
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY" "$OUT/fuzz_$target.log" || true
  if [ $rc -ne 0 ]; then
    tail -60 "$OUT/fuzz_$target.log"
    echo "fuzz_$target: FAILED (status $rc); log in $OUT/fuzz_$target.log"
    status=$rc
  fi
done
exit $status
