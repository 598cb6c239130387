#!/usr/bin/env bash
# scripts/check-install.sh - checks qreg as a user outside the tree gets it:
#   1. `make install PREFIX=<tmp>` (a Release build in build-release/) puts the
#      header, libqreg.so.0, libqreg.a, qreg.pc and the qreg program there;
#   2. `make install DESTDIR=<tmp> PREFIX=/opt/...` stages the same files
#      under DESTDIR and writes nothing to the real PREFIX;
#   3. the installed libqreg.so exports exactly include/qreg.h's functions
#      (tests/check-exports.sh) and has SONAME libqreg.so.0;
#   4. examples/, copied out of the tree, builds with examples/Makefile, which
#      knows qreg only through `pkg-config --cflags --libs qreg libuv`, and
#      also links statically against libqreg.a;
#   5. watch_uv runs against the installed library (LD_LIBRARY_PATH) on a
#      SQLite file the installed qreg program made, and prints what it should.
# Used by .ci/run. Leaves nothing behind but build-release/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tmp=$(mktemp -d)
staged_prefix=/opt/qreg-check-install-$$
trap 'rm -rf "$tmp" "$staged_prefix"' EXIT

fail() {
  echo "check-install: FAILED: $*" >&2
  exit 1
}
step() { echo "--- check-install: $*"; }

# --- 1. make install PREFIX=... ----------------------------------------------
prefix=$tmp/prefix
step "make install PREFIX=$prefix"
make install PREFIX="$prefix" >"$tmp/install.log" 2>&1 || {
  tail -30 "$tmp/install.log" >&2
  fail "make install PREFIX=$prefix"
}
pc_file=$(find "$prefix" -name qreg.pc -path '*/pkgconfig/*' | head -1)
[ -n "$pc_file" ] || fail "no qreg.pc installed under $prefix"
pc_dir=$(dirname "$pc_file")
libdir=$(dirname "$pc_dir")
for file in include/qreg.h bin/qreg; do
  [ -f "$prefix/$file" ] || fail "$prefix/$file was not installed"
done
for file in libqreg.so.0.1.0 libqreg.so.0 libqreg.so libqreg.a; do
  [ -e "$libdir/$file" ] || fail "$libdir/$file was not installed"
done
[ -L "$libdir/libqreg.so.0" ] || fail "$libdir/libqreg.so.0 is not a symbolic link"
echo "installed: $(cd "$prefix" && find . -type f -o -type l | sort | tr '\n' ' ')"

# --- 2. DESTDIR staging --------------------------------------------------------
stage=$tmp/stage
step "make install DESTDIR=$stage PREFIX=$staged_prefix"
[ ! -e "$staged_prefix" ] || fail "$staged_prefix exists already"
make install PREFIX="$staged_prefix" DESTDIR="$stage" >"$tmp/stage.log" 2>&1 || {
  tail -30 "$tmp/stage.log" >&2
  fail "make install DESTDIR=$stage"
}
[ ! -e "$staged_prefix" ] || fail "DESTDIR ignored: files were written to $staged_prefix"
for file in include/qreg.h bin/qreg; do
  [ -f "$stage$staged_prefix/$file" ] || fail "$file not staged under $stage$staged_prefix"
done
[ -n "$(find "$stage$staged_prefix" -name libqreg.so.0)" ] || fail "libqreg.so.0 not staged"
[ -n "$(find "$stage$staged_prefix" -name qreg.pc)" ] || fail "qreg.pc not staged"

# --- 3. the installed library's symbols and SONAME -------------------------------
step "nm -D $libdir/libqreg.so.0"
bash "$root/tests/check-exports.sh" "$libdir/libqreg.so.0" "$prefix/include/qreg.h" ||
  fail "the installed libqreg.so.0 exports other symbols than include/qreg.h declares"
soname=$(readelf -d "$libdir/libqreg.so.0.1.0" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p')
[ "$soname" = "libqreg.so.0" ] || fail "SONAME is '$soname', not libqreg.so.0"
echo "SONAME $soname"

# --- 4. examples/ out of the tree, through pkg-config only ----------------------
export PKG_CONFIG_PATH=$pc_dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
version=$(pkg-config --modversion qreg)
echo "pkg-config: qreg $version: $(pkg-config --cflags --libs qreg)"
examples=$tmp/examples
cp -r "$root/examples" "$examples"
rm -f "$examples/watch_uv" # a copy of a local build would prove nothing
step "make -C $examples (pkg-config --cflags --libs qreg libuv)"
make -C "$examples" >"$tmp/examples.log" 2>&1 || {
  cat "$tmp/examples.log" >&2
  fail "examples/ does not build against the installed qreg"
}
step "watch_uv linked statically against libqreg.a"
# qreg alone is static; its dependencies (qreg.pc's Requires.private) are the
# shared libraries of their own .pc files. (Not `pkg-config --static --libs
# qreg`: Debian's libpq.pc then asks for libpgcommon.a and libpgport.a, which
# libpq-dev does not ship.)
requires=$(pkg-config --print-requires-private qreg)
# shellcheck disable=SC2046,SC2086 # pkg-config's words are meant to split
cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2 \
  $(pkg-config --cflags qreg libuv) "$examples/watch_uv.c" -o "$examples/watch_uv_static" \
  "$libdir/libqreg.a" $(pkg-config --libs $requires) -lpthread -lm ||
  fail "watch_uv does not link against $libdir/libqreg.a"

# --- 5. run it, on the installed library, on a SQLite file ------------------------
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ldd "$examples/watch_uv" >"$tmp/ldd" # (grep -q in a pipe: SIGPIPE under pipefail)
grep -q "libqreg.so.0 => $libdir/libqreg.so.0" "$tmp/ldd" ||
  fail "watch_uv does not load $libdir/libqreg.so.0: $(grep qreg "$tmp/ldd")"
ldd "$examples/watch_uv_static" >"$tmp/ldd"
if grep -q libqreg "$tmp/ldd"; then fail "watch_uv_static loads libqreg.so"; fi

db=$tmp/check.db
step "the installed qreg program makes $db"
for sql in "CREATE TABLE fruit (name TEXT, price REAL)" \
           "INSERT INTO fruit VALUES ('apple', 1.5), ('pear', 2.25), ('fig', 4)"; do
  "$prefix/bin/qreg" query --db "sqlite:$db" --allow-writes "$sql" >/dev/null ||
    fail "$prefix/bin/qreg query: $sql"
done

# Every line a check expects must be in the output (queries settle in any order).
expect() {
  local output=$1 pattern=$2
  grep -qE -- "$pattern" "$output" || {
    echo "--- output of watch_uv:" >&2
    cat "$output" >&2
    fail "watch_uv printed no line matching: $pattern"
  }
}

for program in watch_uv watch_uv_static; do
  step "$program sqlite:$db"
  out=$tmp/$program.out
  timeout 60 "$examples/$program" "sqlite:$db" \
    "SELECT name, price FROM fruit ORDER BY price" \
    "SELECT count(*) AS fruits FROM fruit" \
    "SELECT * FROM no_such_table" >"$out" 2>&1 || {
    status=$?
    cat "$out" >&2
    fail "$program exited with status $status"
  }
  cat "$out"
  expect "$out" "^qreg $version \\(built against $version\\)$"
  expect "$out" "^query 1: succeeded in [0-9]+ ms: SELECT name, price FROM fruit"
  expect "$out" "^  apple 1.5$"
  expect "$out" "^  fig 4.0$"
  expect "$out" "^query 2: succeeded in [0-9]+ ms: "
  expect "$out" "^  3$"
  expect "$out" "^query 3: failed in [0-9]+ ms: "
  expect "$out" "^  error: database: no such table: no_such_table$"
  expect "$out" "^3 of 3 queries settled; registry closed \\(connections opened ([0-9]+), closed \\1\\)$"
done

step "watch_uv with no argument (its own temporary SQLite file)"
out=$tmp/default.out
timeout 60 "$examples/watch_uv" >"$out" 2>&1 || {
  status=$?
  cat "$out" >&2
  fail "watch_uv (no argument) exited with status $status"
}
expect "$out" "^4 of 4 queries settled; registry closed \\(connections opened ([0-9]+), closed \\1\\)$"

echo "check-install: OK: installed under a prefix and a DESTDIR, exports only the API," \
     "SONAME libqreg.so.0, examples/ built with pkg-config and ran"
