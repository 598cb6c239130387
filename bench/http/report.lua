-- bench/http/report.lua - wrk's end-of-run report as one JSON line
-- ("JSON {...}") that bench/http/run.sh reads: requests/s, latency p50/p99
-- in ms, and every kind of error wrk counts (a non-2xx/3xx status is
-- errors_status). Used alone for plain GETs (wrk -s bench/http/report.lua
-- URL), loaded by the other scripts of this folder for the rest.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'JSON {"requests":%d,"seconds":%.3f,"requests_per_s":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
