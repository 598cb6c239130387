#!/usr/bin/env bash
# scripts/check-run-stdout.sh - checks that `make run` keeps its stdout for the
# MCP stream: an MCP host that starts `make run` reads every stdout line as
# JSON-RPC, so one line of apt, npm, cmake, the compiler or make itself there
# breaks the session. Sends `initialize` on stdin, closes it, and fails unless
# every stdout line is a JSON object and the answer to the request is among
# them. The database is a fresh default one under a temporary XDG_DATA_HOME.
# Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

request='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"check-run-stdout","version":"1"}}}'
# stderr (the build, the server's log) is kept for a failure's report only.
if ! printf '%s\n' "$request" |
     XDG_DATA_HOME="$tmp/data" make run >"$tmp/stdout" 2>"$tmp/stderr"; then
  echo "check-run-stdout: make run failed; its stderr:" >&2
  tail -30 "$tmp/stderr" >&2
  exit 1
fi

# Each line must parse as JSON, and one must be the response to id 1.
check_js='
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
if (lines[lines.length - 1] === "") lines.pop();
let answered = false, bad = 0;
for (const line of lines) {
  let message;
  try { message = JSON.parse(line); } catch (e) { message = null; }
  if (message === null || typeof message !== "object") {
    console.error("not JSON-RPC: " + JSON.stringify(line.slice(0, 200)));
    bad++;
  } else if (message.id === 1 && message.result) {
    answered = true;
  }
}
if (!answered) console.error("no response to the initialize request (id 1)");
process.exit(bad === 0 && answered ? 0 : 1);
'
if command -v node >/dev/null 2>&1; then
  node -e "$check_js" "$tmp/stdout" || {
    echo "check-run-stdout: FAILED: make run wrote something other than JSON-RPC on stdout" >&2
    exit 1
  }
else
  # Without Node.js (make deps installs it): at least every line is an object.
  if grep -qv '^{' "$tmp/stdout" || ! grep -q '"id":1' "$tmp/stdout"; then
    echo "check-run-stdout: FAILED: stdout of make run:" >&2
    head -20 "$tmp/stdout" >&2
    exit 1
  fi
fi
echo "check-run-stdout: make run wrote $(wc -l <"$tmp/stdout") line(s) on stdout, all JSON-RPC"
