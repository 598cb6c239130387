/*
 * src/http/metrics.c - GET /metrics of `qreg serve` in the Prometheus text
 * format (version 0.0.4): the registry's counters (qreg_stats: queries by
 * status, connections, result bytes), the server's own (requests and their
 * latency by route, waits held, bytes streamed). Main thread only: the
 * counters are written and read there, so they need no lock.
 */
#include <stdio.h>
#include <stdlib.h>

#include "http/http_internal.h"

static const double LATENCY_BOUNDS[HTTP_LATENCY_BUCKETS] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static const char *const ROUTE_NAMES[ROUTE_COUNT] = {
    [ROUTE_NONE] = "none",
    [ROUTE_CONSOLE] = "console",
    [ROUTE_HEALTHZ] = "healthz",
    [ROUTE_READYZ] = "readyz",
    [ROUTE_METRICS] = "metrics",
    [ROUTE_OPENAPI] = "openapi",
    [ROUTE_STATEMENTS_SUBMIT] = "statements_submit",
    [ROUTE_STATEMENTS_LIST] = "statements_list",
    [ROUTE_STATEMENT_GET] = "statement_get",
    [ROUTE_STATEMENT_RESULT] = "statement_result",
    [ROUTE_STATEMENT_CANCEL] = "statement_cancel",
    [ROUTE_STATEMENT_DELETE] = "statement_delete",
    [ROUTE_MCP] = "mcp",
};

const char *http_route_name(http_route_t route) {
  return route < ROUTE_COUNT ? ROUTE_NAMES[route] : "none";
}

void http_metrics_observe(http_metrics_t *metrics, http_route_t route, unsigned status,
                          double seconds) {
  if (route >= ROUTE_COUNT)
    route = ROUTE_NONE;
  metrics->requests[route]++;
  unsigned cls = status / 100;
  metrics->responses_by_class[cls >= 1 && cls <= 5 ? cls : 0]++;
  for (size_t i = 0; i < HTTP_LATENCY_BUCKETS; i++) {
    if (seconds <= LATENCY_BOUNDS[i]) {
      metrics->latency_buckets[route][i]++;
      break;
    }
  }
  metrics->latency_sum[route] += seconds;
}

char *http_metrics_render(http_server_t *server, size_t *len) {
  http_buf_t out = {0};
  qreg_stats_t stats = QREG_STATS_INIT;
  bool have_stats = qreg_stats(server->reg, &stats) == 0;
  if (have_stats) {
    http_buf_puts(&out, "# HELP qreg_queries Queries held by the registry, by status.\n"
                        "# TYPE qreg_queries gauge\n");
    for (int s = 0; s < QREG_STATUS_COUNT; s++)
      http_buf_printf(&out, "qreg_queries{status=\"%s\"} %llu\n",
                      qreg_status_name((qreg_status_t)s),
                      (unsigned long long)stats.records_by_status[s]);
    http_buf_printf(
        &out,
        "# HELP qreg_queries_pruned_total Queries removed at the end of their TTL.\n"
        "# TYPE qreg_queries_pruned_total counter\n"
        "qreg_queries_pruned_total %llu\n"
        "# HELP qreg_queries_evicted_total Finished queries evicted to make room.\n"
        "# TYPE qreg_queries_evicted_total counter\n"
        "qreg_queries_evicted_total %llu\n"
        "# HELP qreg_connections_opened_total Database connections opened.\n"
        "# TYPE qreg_connections_opened_total counter\n"
        "qreg_connections_opened_total %llu\n"
        "# HELP qreg_connections_closed_total Database connections closed.\n"
        "# TYPE qreg_connections_closed_total counter\n"
        "qreg_connections_closed_total %llu\n"
        "# HELP qreg_connect_failures_total Connection attempts that failed.\n"
        "# TYPE qreg_connect_failures_total counter\n"
        "qreg_connect_failures_total %llu\n"
        "# HELP qreg_connections Database connections now, by state.\n"
        "# TYPE qreg_connections gauge\n"
        "qreg_connections{state=\"in_use\"} %u\n"
        "qreg_connections{state=\"idle\"} %u\n"
        "qreg_connections{state=\"opening\"} %u\n"
        "# HELP qreg_result_bytes Bytes of results held by the registry.\n"
        "# TYPE qreg_result_bytes gauge\n"
        "qreg_result_bytes %llu\n",
        (unsigned long long)stats.records_pruned, (unsigned long long)stats.records_evicted,
        (unsigned long long)stats.connections_opened, (unsigned long long)stats.connections_closed,
        (unsigned long long)stats.connect_failures, stats.connections_in_use,
        stats.connections_idle, stats.connections_opening, (unsigned long long)stats.result_bytes);
  }
  const http_metrics_t *m = &server->metrics;
  http_buf_printf(&out,
                  "# HELP qreg_http_waits Long-polls and other waits held now (no thread each).\n"
                  "# TYPE qreg_http_waits gauge\n"
                  "qreg_http_waits %zu\n"
                  "# HELP qreg_http_requests_in_flight Requests begun and not yet completed.\n"
                  "# TYPE qreg_http_requests_in_flight gauge\n"
                  "qreg_http_requests_in_flight %zu\n"
                  "# HELP qreg_http_connections_accepted_total HTTP connections accepted.\n"
                  "# TYPE qreg_http_connections_accepted_total counter\n"
                  "qreg_http_connections_accepted_total %llu\n"
                  "# HELP qreg_http_connections_closed_total HTTP connections closed.\n"
                  "# TYPE qreg_http_connections_closed_total counter\n"
                  "qreg_http_connections_closed_total %llu\n"
                  "# HELP qreg_http_streamed_bytes_total Bytes of CSV and NDJSON results sent.\n"
                  "# TYPE qreg_http_streamed_bytes_total counter\n"
                  "qreg_http_streamed_bytes_total %llu\n"
                  "# HELP qreg_http_unauthorized_total Requests refused for want of a token.\n"
                  "# TYPE qreg_http_unauthorized_total counter\n"
                  "qreg_http_unauthorized_total %llu\n",
                  server->heap_len, server->requests_in_flight,
                  (unsigned long long)m->connections_accepted,
                  (unsigned long long)m->connections_closed, (unsigned long long)m->streamed_bytes,
                  (unsigned long long)m->unauthorized);
  size_t sessions = 0;
  size_t streams = 0;
  size_t parked = 0;
  http_mcp_counts(server, &sessions, &streams, &parked);
  http_buf_printf(&out,
                  "# HELP qreg_mcp_sessions MCP sessions (Mcp-Session-Id) held now.\n"
                  "# TYPE qreg_mcp_sessions gauge\n"
                  "qreg_mcp_sessions %zu\n"
                  "# HELP qreg_mcp_streams MCP session streams (GET /mcp) open now.\n"
                  "# TYPE qreg_mcp_streams gauge\n"
                  "qreg_mcp_streams %zu\n"
                  "# HELP qreg_mcp_waits MCP requests waiting for a query now (no thread each).\n"
                  "# TYPE qreg_mcp_waits gauge\n"
                  "qreg_mcp_waits %zu\n",
                  sessions, streams, parked);
  http_buf_puts(&out, "# HELP qreg_http_responses_total Responses by status class.\n"
                      "# TYPE qreg_http_responses_total counter\n");
  static const char *const CLASSES[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int c = 0; c < 6; c++)
    http_buf_printf(&out, "qreg_http_responses_total{class=\"%s\"} %llu\n", CLASSES[c],
                    (unsigned long long)m->responses_by_class[c]);
  http_buf_puts(&out, "# HELP qreg_http_request_duration_seconds Time from a request's headers "
                      "to its last byte, by route.\n"
                      "# TYPE qreg_http_request_duration_seconds histogram\n");
  for (int r = 0; r < ROUTE_COUNT; r++) {
    const char *name = http_route_name((http_route_t)r);
    uint64_t cumulative = 0;
    for (int b = 0; b < HTTP_LATENCY_BUCKETS; b++) {
      cumulative += m->latency_buckets[r][b];
      http_buf_printf(&out,
                      "qreg_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                      name, LATENCY_BOUNDS[b], (unsigned long long)cumulative);
    }
    http_buf_printf(&out,
                    "qreg_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                    "qreg_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                    "qreg_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                    name, (unsigned long long)m->requests[r], name, m->latency_sum[r], name,
                    (unsigned long long)m->requests[r]);
  }
  return http_buf_take(&out, len);
}
