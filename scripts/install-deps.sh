#!/usr/bin/env bash
# scripts/install-deps.sh - makes sure every Debian package qreg needs to build,
# test and check itself is installed. As root it installs the missing ones with
# apt-get; otherwise it prints the exact command to run and exits 1. Prints
# nothing when everything is there. Used by `make deps` (and so by `make run`,
# `make test`) and by .ci/run.
set -euo pipefail

# package -> why
#   build-essential, cmake, pkg-config   the build
#   libuv1-dev libsqlite3-dev libpq-dev  the library (loop, SQLite, PostgreSQL)
#   libjansson-dev                       the qreg program, the Snowflake driver (JSON)
#   libcurl4-openssl-dev libssl-dev      the Snowflake driver (HTTPS, key-pair JWT)
#   zlib1g-dev                           the Snowflake driver (gzip partitions)
#   libmicrohttpd-dev                    qreg serve: the HTTP server library (no
#                                        hand-written HTTP parser; suspend/resume
#                                        lets a long-poll wait without a thread);
#                                        libssl-dev's libcrypto gives SHA-256 and
#                                        the constant-time compare of its tokens
#   libyaml-dev                          qreg mcp --config (the YAML config file)
#   libcmocka-dev                        the C tests
#   postgresql                           initdb/pg_ctl for the test-pg-* tests
#   valgrind                             make valgrind
#   clang libclang-rt-14-dev             clang sanitizers and fuzzing
#   clang-format-14 clang-tidy-14        make format-check, make tidy (the
#                                        version .clang-format/.clang-tidy use)
#   nodejs npm                           the MCP end-to-end tests (tests/e2e)
#   chromium                             the console page's test in a real headless
#                                        browser (tests/console; playwright-core
#                                        drives it, so npm downloads no browser)
packages=(build-essential cmake pkg-config libuv1-dev libsqlite3-dev libpq-dev
          libjansson-dev libcurl4-openssl-dev libssl-dev zlib1g-dev libmicrohttpd-dev
          libyaml-dev libcmocka-dev postgresql valgrind clang libclang-rt-14-dev
          clang-format-14 clang-tidy-14 nodejs npm chromium)

# Whether a package is needed: installed packages are not, and neither are
# nodejs/npm when the commands exist (a Node.js installed another way ships its
# own npm, and Debian's npm package would conflict with it).
is_missing() {
  local package=$1
  case "$package" in
    nodejs) command -v node >/dev/null 2>&1 && return 1 ;;
    npm) command -v npm >/dev/null 2>&1 && return 1 ;;
  esac
  local status
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" != "install ok installed" ]
}

missing=()
for package in "${packages[@]}"; do
  if is_missing "$package"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "qreg needs these Debian packages: ${missing[*]}" >&2
  echo "Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "Installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Everything on stderr: `make run` keeps its stdout for the MCP stream.
apt-get update -qq >&2
apt-get install -y -qq "${missing[@]}" >&2
