#!/usr/bin/env bash
# bench/http/run.sh - the HTTP figures of docs/performance.md ("HTTP (`qreg
# serve`)"): `qreg serve` under a real load generator (wrk), each figure
# beside a baseline run in the same rounds:
#
#   1  GET /v1/statements/{id} of a finished query, wrk -t2 -c64: requests/s,
#      latency p50/p99; beside it GET /healthz (the HTTP server's ceiling)
#      and the same status read over stdio MCP (bench/http/mcp_stdio.mjs:
#      get_query_status, 64 in flight); hey -c64 on the status as a second
#      load generator's view
#   2  10,000 long-polls held on one running statement: threads, RSS, the
#      qreg_http_waits gauge, beside the same server idle; then a cancel and
#      every answer counted (bench/http/longpolls.mjs)
#   3  POST /mcp tools/call get_query_status (bench/http/mcp.lua), beside
#      the stdio figure of 1; "not measured" while the server has no /mcp
#   4  CSV streaming of a large PostgreSQL result, beside psql --csv of the
#      same query on the same private server (started here, stopped at the end)
#
#   bench/http/run.sh                      everything (about 4-5 minutes on 2 CPUs)
#   bench/http/run.sh --only 1,3           some figures only
#   bench/http/run.sh --rounds 5           repetitions per figure (default 3)
#   bench/http/run.sh --duration 5         seconds per wrk run (default 10)
#   bench/http/run.sh --polls 2000         long-polls held in figure 2 (default 10000)
#   bench/http/run.sh --rows 500000        rows of the figure 4 result (default 1000000)
#
# Builds the qreg program in Release in build-release/ (the directory `make
# install` uses; BENCH_HTTP_BUILD_DIR to move it). Needs wrk, hey, curl, jq,
# node, and for figure 4 psql and PostgreSQL's server binaries; prints the
# apt-get command for what is missing. Prints one table (medians of the
# rounds, [min..max]) and writes every round to BUILD_DIR/bench-http.json.
# Exits non-zero only when something could not be built or set up, or a
# check of correctness fails (an error answer, a lost long-poll, CSV bytes
# that differ from psql's) - never because of a figure.
#
# Owns: a temporary directory (SQLite file, logs, the PostgreSQL cluster),
# every server it starts (qreg serve, qreg mcp, postgres), all stopped on
# exit however it exits.
set -euo pipefail
cd "$(dirname "$0")/../.."

only=1,2,3,4
rounds=3
duration=10
polls=10000
rows=1000000
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --polls) polls=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/http/run.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }

# --- what it needs ---------------------------------------------------------------------------
pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
missing=()
for tool in wrk hey curl jq node cmake; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if wants 4; then
  command -v psql >/dev/null || missing+=(postgresql-client)
  [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ] || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  # Debian names the packages as the tools, but for cmake's and nodejs'.
  packages=$(printf '%s\n' "${missing[@]}" | sed 's/^node$/nodejs/' | tr '\n' ' ')
  echo "bench/http/run.sh: missing: ${missing[*]}" >&2
  echo "  install with: apt-get install -y ${packages% }" >&2
  exit 1
fi
# One descriptor per long-poll in the client and in the server (qreg serve
# raises its own soft limit to the hard one).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if wants 2 && [ "$(ulimit -n)" -lt $((polls + 1000)) ]; then
  echo "bench/http/run.sh: ulimit -n is $(ulimit -n) and cannot be raised: too few for --polls $polls" >&2
  exit 1
fi

# --- build ---------------------------------------------------------------------------------
build_dir=${BENCH_HTTP_BUILD_DIR:-build-release}
echo "== building qreg (Release) in $build_dir" >&2
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DQREG_SANITIZE= -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build_dir" -j "${JOBS:-2}" --target qreg >&2
qreg=$build_dir/qreg

# --- servers ---------------------------------------------------------------------------------
work=$(mktemp -d /tmp/qreg-bench-http-XXXXXX)
serve_pid=
pg_dir=
pg_user=
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$pg_dir" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts `qreg serve --listen 127.0.0.1:0 ARGS` (its log in $work/serve.log);
# sets serve_pid and base (http://127.0.0.1:PORT).
start_serve() {
  "$qreg" serve --listen 127.0.0.1:0 "$@" 2>"$work/serve.log" &
  serve_pid=$!
  local port=
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/serve.log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "bench/http/run.sh: qreg serve did not start:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  base=http://127.0.0.1:$port
}
stop_serve() {
  kill -TERM "$serve_pid"
  local rc=0
  wait "$serve_pid" || rc=$?
  serve_pid=
  if [ "$rc" -ne 0 ]; then
    echo "bench/http/run.sh: qreg serve exited $rc after SIGTERM:" >&2
    tail -20 "$work/serve.log" >&2
    exit 1
  fi
}
# POST /v1/statements; prints the answer (JSON).
submit() {
  curl -sf "$base/v1/statements" -H 'Content-Type: application/json' -d "$1"
}
# Prints the JSON line a wrk script or a Node helper ends with.
json_line() { sed -n 's/^JSON //p' | tail -1; }
# Checks a wrk/stdio run saw no error at all.
check_no_errors() {
  local what=$1 line=$2
  local errors
  errors=$(jq '[to_entries[] | select(.key | startswith("errors")) | .value] | add' <<<"$line")
  if [ "$errors" != 0 ]; then
    echo "bench/http/run.sh: $what: $errors errors: $line" >&2
    exit 1
  fi
}

# Every measured value goes to $work/values: "FIGURE SIDE ROUND NAME VALUE".
values=$work/values
: >"$values"
record() { echo "$1 $2 $3 $4 $5" >>"$values"; }

sqlite_db=sqlite:$work/bench.db
"$qreg" query --db "$sqlite_db" --allow-writes 'CREATE TABLE t (x INTEGER)' >/dev/null
printf '\n== machine: %s CPUs, load average %s; commit %s\n' "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(git log -1 --format='%h %s' | cut -c1-80)" >&2

# --- figures 1 and 3: status reads --------------------------------------------------------
mcp_http=no
if wants 1 || wants 3; then
  start_serve --db "$sqlite_db"
  status_id=$(submit '{"sql":"SELECT 1","wait_seconds":10}' | jq -r 'select(.status == "succeeded") | .id')
  [ -n "$status_id" ] || { echo "bench/http/run.sh: SELECT 1 did not succeed" >&2; exit 1; }
  if wants 3; then
    # /mcp answers this stateless call once the MCP transport is in the server.
    probe=$(curl -s -o "$work/mcp-probe.json" -w '%{http_code} %{content_type}' "$base/mcp" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d "$(jq -cn --arg id "$status_id" '{jsonrpc:"2.0",id:1,method:"tools/call",params:{name:"get_query_status",arguments:{query_id:$id},_meta:{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}')" || true)
    if [[ $probe == "200 application/json"* ]] &&
       jq -e '.result.structuredContent.status == "succeeded" and (.result.isError | not)' "$work/mcp-probe.json" >/dev/null; then
      mcp_http=yes
    else
      echo "== figure 3: POST /mcp answers '$probe', not a tool result: not measured (/mcp not merged yet)" >&2
    fi
  fi
  for round in $(seq "$rounds"); do
    echo "== figures 1/3, round $round of $rounds" >&2
    # Which side goes first alternates with the round.
    sides=(status healthz stdio)
    [ "$mcp_http" = yes ] && sides+=(mcp)
    if [ $((round % 2)) -eq 0 ]; then sides=($(printf '%s\n' "${sides[@]}" | tac)); fi
    for side in "${sides[@]}"; do
      case $side in
        status) line=$(wrk -t2 -c64 -d"${duration}s" -s bench/http/report.lua "$base/v1/statements/$status_id" | json_line) ;;
        healthz) line=$(wrk -t2 -c64 -d"${duration}s" -s bench/http/report.lua "$base/healthz" | json_line) ;;
        mcp) line=$(wrk -t2 -c64 -d"${duration}s" -s bench/http/mcp.lua "$base/mcp" -- "$status_id" | json_line) ;;
        stdio) line=$(node bench/http/mcp_stdio.mjs --qreg "$qreg" --db "$sqlite_db" --in-flight 64 --seconds "$duration" | json_line) ;;
      esac
      check_no_errors "figure 1/3 $side" "$line"
      for name in requests_per_s p50_ms p99_ms; do
        record 1 "$side" "$round" "$name" "$(jq ".$name" <<<"$line")"
      done
    done
    if wants 1; then
      # hey: another client's view of the same status read (5 s, 64 workers).
      hey -z 5s -c 64 "$base/v1/statements/$status_id" >"$work/hey.txt"
      if grep -qE '^\s+\[[^2][0-9][0-9]\]' "$work/hey.txt" || grep -q '^Error distribution' "$work/hey.txt"; then
        echo "bench/http/run.sh: hey saw errors:" >&2; cat "$work/hey.txt" >&2; exit 1
      fi
      record 1 hey "$round" requests_per_s "$(awk '/Requests\/sec:/ {print $2}' "$work/hey.txt")"
      record 1 hey "$round" p50_ms "$(awk '/ 50% in / {print $3 * 1000}' "$work/hey.txt")"
      record 1 hey "$round" p99_ms "$(awk '/ 99% in / {print $3 * 1000}' "$work/hey.txt")"
    fi
  done
  stop_serve
fi

# --- figure 2: long-polls held -------------------------------------------------------------
long_sql='WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000000000) SELECT count(*) FROM c'
if wants 2; then
  for round in $(seq "$rounds"); do
    echo "== figure 2, round $round of $rounds: $polls long-polls" >&2
    # A fresh server each round: its high-water mark is this round's.
    start_serve --db "$sqlite_db" --max-clients $((polls + 1000)) --max-waits $((polls * 2))
    long_id=$(submit "$(jq -cn --arg sql "$long_sql" '{sql:$sql, wait_seconds:0}')" | jq -r .id)
    line=$(node bench/http/longpolls.mjs --url "$base" --pid "$serve_pid" --id "$long_id" \
      --count "$polls" --wait 30 | json_line)
    echo "$line" >"$work/longpolls-$round.json"
    if [ "$(jq -c '.metrics_failure' <<<"$line")" != null ]; then
      echo "bench/http/run.sh: figure 2: /metrics did not answer with the gauge: $(jq -c .metrics_failure <<<"$line")" >&2
      exit 1
    fi
    if [ "$(jq '.by_statement_status.canceled // 0' <<<"$line")" != "$polls" ]; then
      echo "bench/http/run.sh: figure 2: not every long-poll came back canceled: $line" >&2
      exit 1
    fi
    for phase in idle held answered closed; do
      record 2 "$phase" "$round" threads "$(jq ".$phase.threads" <<<"$line")"
      record 2 "$phase" "$round" rss_mib "$(jq ".$phase.rss_kib / 1024" <<<"$line")"
      record 2 "$phase" "$round" hwm_mib "$(jq ".$phase.hwm_kib / 1024" <<<"$line")"
      record 2 "$phase" "$round" waits "$(jq ".$phase.waits // 0" <<<"$line")"
      record 2 "$phase" "$round" fds "$(jq ".$phase.fds" <<<"$line")"
    done
    record 2 held "$round" close_s "$(jq '.closed_after_ms / 1000' <<<"$line")"
    record 2 held "$round" ramp_s "$(jq '.held_after_ms / 1000' <<<"$line")"
    record 2 held "$round" answer_s "$(jq '.all_returned_ms_after_cancel / 1000' <<<"$line")"
    record 2 held "$round" ramp_main_cpu_s "$(jq '(.held.main_cpu_ms - .idle.main_cpu_ms) / 1000' <<<"$line")"
    record 2 held "$round" answer_main_cpu_s "$(jq '(.answered.main_cpu_ms - .held.main_cpu_ms) / 1000' <<<"$line")"
    stop_serve
  done
fi

# --- figure 4: CSV streaming, PostgreSQL -----------------------------------------------------
# Runs PostgreSQL's programs as its own user when we are root (initdb refuses root).
as_pg() {
  if [ -n "$pg_user" ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
if wants 4; then
  echo "== figure 4: a private PostgreSQL server ($pg_bin)" >&2
  pg_dir=$(mktemp -d /tmp/qreg-bench-pg-XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then
    pg_user=postgres
    id postgres >/dev/null 2>&1 || pg_user=nobody
    chown "$pg_user" "$pg_dir"
  fi
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U bench -A trust --no-sync >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; exit 1; }
  pg_port=$(free_port)
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null ||
    { cat "$pg_dir/server.log" >&2; exit 1; }
  # qreg refuses a superuser on a read-only registry (docs/security.md): both
  # sides connect as the same read-only role.
  psql -X -q "postgresql://bench@127.0.0.1:$pg_port/postgres" \
    -c 'CREATE ROLE reader LOGIN; GRANT pg_read_all_data TO reader' >/dev/null
  pg_url="postgresql://reader@127.0.0.1:$pg_port/postgres"
  csv_sql="SELECT g, md5(g::text), g*0.5 FROM generate_series(1,$rows) g"
  start_serve --db "$pg_url"
  # Once, to files: the bytes of both must be the same rows.
  psql -X -q "$pg_url" --csv -c "$csv_sql" >"$work/psql.csv"
  for round in $(seq "$rounds"); do
    echo "== figure 4, round $round of $rounds: $rows rows" >&2
    sides=(psql qreg)
    [ $((round % 2)) -eq 0 ] && sides=(qreg psql)
    for side in "${sides[@]}"; do
      if [ "$side" = psql ]; then
        t0=$(date +%s.%N)
        psql -X -q "$pg_url" --csv -c "$csv_sql" >/dev/null
        t1=$(date +%s.%N)
        bytes=$(stat -c %s "$work/psql.csv")
        record 4 psql "$round" mb_per_s "$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)"
        record 4 psql "$round" seconds "$(echo "$t1 - $t0" | bc -l)"
        continue
      fi
      # End to end: submit and wait for the query, then stream its result.
      t0=$(date +%s.%N)
      answer=$(submit "$(jq -cn --arg sql "$csv_sql" --argjson rows "$rows" '{sql:$sql, wait_seconds:60, max_rows:$rows}')")
      csv_id=$(jq -r .id <<<"$answer")
      if [ "$(jq -r '.status + " " + (.truncated | tostring) + " " + (.row_count | tostring)' <<<"$answer")" != "succeeded false $rows" ]; then
        echo "bench/http/run.sh: figure 4: the query did not keep all $rows rows: $(jq -c 'del(.result)' <<<"$answer")" >&2
        exit 1
      fi
      read -r bytes stream_s < <(curl -sf -H 'Accept: text/csv' -o "$work/qreg.csv" \
        -w '%{size_download} %{time_total}\n' "$base/v1/statements/$csv_id/result")
      t1=$(date +%s.%N)
      record 4 qreg_e2e "$round" mb_per_s "$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)"
      record 4 qreg_e2e "$round" seconds "$(echo "$t1 - $t0" | bc -l)"
      # The same bytes as psql's, CRLF line ends aside (docs/http.md: RFC 4180).
      if ! cmp -s <(tr -d '\r' <"$work/qreg.csv") "$work/psql.csv"; then
        echo "bench/http/run.sh: figure 4: qreg's CSV differs from psql --csv (CR removed):" >&2
        cmp <(tr -d '\r' <"$work/qreg.csv") "$work/psql.csv" >&2 || true
        exit 1
      fi
      record 4 qreg_bytes "$round" bytes "$bytes"
      # The stream alone, of the result now held (a second read).
      read -r bytes stream_s < <(curl -sf -H 'Accept: text/csv' -o /dev/null \
        -w '%{size_download} %{time_total}\n' "$base/v1/statements/$csv_id/result")
      record 4 qreg_stream "$round" mb_per_s "$(echo "$bytes / $stream_s / 1000000" | bc -l)"
      record 4 qreg_stream "$round" seconds "$stream_s"
    done
  done
  record 4 psql 0 bytes "$(stat -c %s "$work/psql.csv")"
  record 4 psql 0 sha256 "$(sha256sum <"$work/psql.csv" | cut -c1-16)"
  record 4 qreg_bytes 0 sha256_lf "$(tr -d '\r' <"$work/qreg.csv" | sha256sum | cut -c1-16)"
  stop_serve
fi

# --- the table -------------------------------------------------------------------------------
# median [min..max] of one series: figure side name
stat_of() {
  awk -v f="$1" -v s="$2" -v n="$3" '$1 == f && $2 == s && $4 == n && $3 != 0 {print $5}' "$values" |
    sort -g | awk '{v[NR] = $1} END {
      if (NR == 0) { printf "-"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s [%s..%s]", shown(m), shown(v[1]), shown(v[NR]) }
    function shown(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.3g", x) }'
}
median_of() {
  awk -v f="$1" -v s="$2" -v n="$3" '$1 == f && $2 == s && $4 == n && $3 != 0 {print $5}' "$values" |
    sort -g | awk '{v[NR] = $1} END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {
  local a b
  a=$(median_of "$1" "$2" "$3")
  b=$(median_of "$1" "$4" "$3")
  if [ -n "$a" ] && [ -n "$b" ]; then awk -v a="$a" -v b="$b" 'BEGIN { if (b) printf "%.3g", a / b; else printf "-" }'; else printf -- "-"; fi
}
row() { printf '%-4s %-50s %-24s %-30s %s\n' "$@"; }

echo
echo "qreg serve benchmarks: $(nproc) CPUs, $rounds rounds; median [min..max] of the rounds; ratio = median / baseline median"
row fig "what" "qreg serve" "baseline" ratio
if wants 1; then
  for name in requests_per_s p50_ms p99_ms; do
    row 1 "GET /v1/statements/{id}, wrk -c64: $name" "$(stat_of 1 status $name)" "stdio $(stat_of 1 stdio $name)" "$(ratio 1 status $name stdio)"
    row 1 "  vs GET /healthz (the HTTP ceiling): $name" "$(stat_of 1 status $name)" "$(stat_of 1 healthz $name)" "$(ratio 1 status $name healthz)"
    row 1 "  the status, hey -c64 (5 s): $name" "$(stat_of 1 hey $name)" "-" "-"
  done
fi
if wants 2; then
  for name in threads rss_mib hwm_mib waits fds; do
    row 2 "$polls long-polls held: $name" "$(stat_of 2 held $name)" "idle $(stat_of 2 idle $name)" "$(ratio 2 held $name idle)"
  done
  row 2 "  time to hold them all (s)" "$(stat_of 2 held ramp_s)" "-" "-"
  row 2 "  cancel to the last answer (s)" "$(stat_of 2 held answer_s)" "-" "-"
  row 2 "  HTTP thread CPU to take them (s)" "$(stat_of 2 held ramp_main_cpu_s)" "-" "-"
  row 2 "  HTTP thread CPU for the $polls answers (s)" "$(stat_of 2 held answer_main_cpu_s)" "-" "-"
  for name in rss_mib fds; do
    row 2 "  answered, connections kept alive: $name" "$(stat_of 2 answered $name)" "idle $(stat_of 2 idle $name)" "$(ratio 2 answered $name idle)"
  done
  row 2 "  client closed them: time until the server has (s)" "$(stat_of 2 held close_s)" "-" "-"
  for name in rss_mib fds threads; do
    row 2 "  closed: $name" "$(stat_of 2 closed $name)" "idle $(stat_of 2 idle $name)" "$(ratio 2 closed $name idle)"
  done
  echo "     every round: $polls of $polls long-polls answered 200, statement canceled"
fi
if wants 3; then
  if [ "$mcp_http" = yes ]; then
    for name in requests_per_s p50_ms p99_ms; do
      row 3 "POST /mcp get_query_status, wrk -c64: $name" "$(stat_of 1 mcp $name)" "stdio $(stat_of 1 stdio $name)" "$(ratio 1 mcp $name stdio)"
    done
  else
    row 3 "POST /mcp get_query_status, wrk -c64" "not measured: /mcp not merged yet" "stdio $(stat_of 1 stdio requests_per_s)" "-"
  fi
fi
if wants 4; then
  row 4 "CSV of $rows rows, submit + wait + stream: MB/s" "$(stat_of 4 qreg_e2e mb_per_s)" "psql $(stat_of 4 psql mb_per_s)" "$(ratio 4 qreg_e2e mb_per_s psql)"
  row 4 "  the stream alone, result held: MB/s" "$(stat_of 4 qreg_stream mb_per_s)" "psql $(stat_of 4 psql mb_per_s)" "$(ratio 4 qreg_stream mb_per_s psql)"
  row 4 "  seconds, end to end" "$(stat_of 4 qreg_e2e seconds)" "psql $(stat_of 4 psql seconds)" "$(ratio 4 qreg_e2e seconds psql)"
  once() { awk -v s="$1" -v n="$2" '$1 == 4 && $2 == s && $4 == n {print $5; exit}' "$values"; }
  echo "     bytes: psql $(once psql bytes), qreg $(once qreg_bytes bytes) (CRLF line ends); sha256 of psql's $(once psql sha256)..., of qreg's with CR removed $(once qreg_bytes sha256_lf)..."
fi
mkdir -p "$build_dir"
jq -R 'split(" ") | {figure: .[0], side: .[1], round: (.[2] | tonumber), name: .[3], value: (.[4] | tonumber? // .)}' \
  "$values" | jq -s . >"$build_dir/bench-http.json"
echo "(every round: $build_dir/bench-http.json)"
