#!/usr/bin/env bash
# tests/check-exports.sh - checks that a built libqreg.so exports exactly the
# functions include/qreg.h declares: no internal symbol leaks out of the shared
# library (the ABI would then be whatever the sources happen to contain), and
# no declared function is missing (a program calling it would not load).
#
#   tests/check-exports.sh LIBRARY [HEADER] [CC]
#
# LIBRARY is the .so (build/libqreg.so.0 or an installed one); HEADER defaults
# to include/qreg.h beside this script; CC (default cc) strips the header's
# comments and preprocessor lines, so that only real declarations are read.
# Exit 0 when the two lists match, 1 with both differences listed when they do
# not, 77 (ctest: skipped) when nm is not installed.
set -euo pipefail

library=${1:?usage: check-exports.sh LIBRARY [HEADER] [CC]}
header=${2:-$(dirname "$0")/../include/qreg.h}
cc=${3:-cc}

if ! command -v nm >/dev/null 2>&1; then
  echo "check-exports: SKIPPED: nm is not installed (binutils)" >&2
  exit 77
fi
[ -e "$library" ] || { echo "check-exports: no such library: $library" >&2; exit 1; }
[ -e "$header" ] || { echo "check-exports: no such header: $header" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declared: every "qreg_name(" of the preprocessed header. A callback type
# "(*qreg_watch_cb)(" does not match (a ")" follows the name), nor does a name
# only mentioned in a comment (the preprocessor removed those).
"$cc" -E -P -x c "$header" |
  grep -oE '\bqreg_[A-Za-z0-9_]+[[:space:]]*\(' |
  sed -E 's/[[:space:]]*\($//' | sort -u >"$tmp/declared"
if [ ! -s "$tmp/declared" ]; then
  echo "check-exports: found no function declared in $header" >&2
  exit 1
fi

# Exported: every defined dynamic symbol but the few the toolchain defines in
# any shared library.
nm -D --defined-only "$library" | awk '{print $NF}' |
  grep -vxE '_init|_fini|_edata|_end|__bss_start' | sort -u >"$tmp/exported"

extra=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
status=0
if [ -n "$extra" ]; then
  echo "check-exports: $library exports symbols include/qreg.h does not declare" \
       "(make them static, or leave them hidden):" >&2
  echo "$extra" | sed 's/^/  /' >&2
  status=1
fi
if [ -n "$missing" ]; then
  echo "check-exports: functions declared in $header but not exported by $library" \
       "(not defined, or not declared inside its visibility push):" >&2
  echo "$missing" | sed 's/^/  /' >&2
  status=1
fi
if [ $status -eq 0 ]; then
  echo "check-exports: $library exports exactly the $(wc -l <"$tmp/declared") functions of $header"
fi
exit $status
