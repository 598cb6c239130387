/*
 * src/http/routes.c - the routes of `qreg serve`: the statement API
 * (/v1/statements...), /healthz, /readyz, /metrics, /v1/openapi.json, the
 * console at / (its page and headers in console.c); bearer
 * authentication, request bodies and their limit, problem+json errors
 * (RFC 9457, the error types of the MCP tools), the log line of each request,
 * and waiting for a query without a thread.
 *
 * Waiting. A request that must wait for a query (a submit or a status with
 * wait_seconds, a cancel, /readyz) registers qreg_watch(), suspends its
 * connection (MHD_suspend_connection) and goes on a min-heap by deadline;
 * its handler returns and the main thread serves others. The watch callback
 * (http_on_settled, registry loop thread) only queues the request on the
 * ready list and writes a byte to the ready pipe; the main thread then
 * resumes it (http_resume_ready), or the deadline does (http_expire_waits),
 * whichever comes first. Resuming happens only on the main thread, after
 * the handler that suspended has returned, so a connection is never resumed
 * before it is suspended. libmicrohttpd then calls the handler again, which
 * answers from a fresh snapshot. N waiting clients are N small structs.
 *
 * A request's memory: its own reference (dropped when libmicrohttpd reports
 * it completed) and one for its watch while the watch may still be called
 * (dropped by the callback, or by the main thread when it takes the request
 * off the ready list). refs, suspended, queued, settled are under
 * server->ready_mutex; everything else is the main thread's.
 *
 * Streams. GET /v1/statements/{id}/result with Accept: text/csv or
 * application/x-ndjson answers with a chunked body produced page by page
 * (qreg_fetch of STREAM_PAGE_ROWS rows) as libmicrohttpd asks for more: at
 * most one page and one output block are in memory per stream.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http/headers.h"
#include "http/http.h"
#include "http/http_internal.h"

#define DEFAULT_PAGE_ROWS 1000
#define MAX_PAGE_ROWS 10000
#define DEFAULT_LIST_LIMIT 100
#define MAX_LIST_LIMIT 1000
#define STREAM_PAGE_ROWS 1000
#define STREAM_BLOCK_BYTES ((size_t)64 * 1024)
#define CANCEL_WAIT_MS 30000
#define READY_WAIT_MS 5000

/* --- the heap of waits, by deadline (main thread) ------------------------------------ */

static void heap_swap(http_server_t *server, size_t a, size_t b) {
  http_request_t *t = server->heap[a];
  server->heap[a] = server->heap[b];
  server->heap[b] = t;
  server->heap[a]->heap_index = a;
  server->heap[b]->heap_index = b;
}

static void heap_up(http_server_t *server, size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (server->heap[parent]->deadline_ms <= server->heap[i]->deadline_ms)
      break;
    heap_swap(server, i, parent);
    i = parent;
  }
}

static void heap_down(http_server_t *server, size_t i) {
  for (;;) {
    size_t left = 2 * i + 1, right = left + 1, least = i;
    if (left < server->heap_len &&
        server->heap[left]->deadline_ms < server->heap[least]->deadline_ms)
      least = left;
    if (right < server->heap_len &&
        server->heap[right]->deadline_ms < server->heap[least]->deadline_ms)
      least = right;
    if (least == i)
      return;
    heap_swap(server, i, least);
    i = least;
  }
}

static bool heap_push(http_server_t *server, http_request_t *req) {
  if (server->heap_len == server->heap_cap) {
    size_t cap = server->heap_cap ? server->heap_cap * 2 : 64;
    http_request_t **heap = realloc(server->heap, cap * sizeof(http_request_t *));
    if (!heap)
      return false;
    server->heap = heap;
    server->heap_cap = cap;
  }
  req->heap_index = server->heap_len;
  server->heap[server->heap_len++] = req;
  heap_up(server, req->heap_index);
  return true;
}

static void heap_remove(http_server_t *server, http_request_t *req) {
  size_t i = req->heap_index;
  if (i == SIZE_MAX)
    return;
  req->heap_index = SIZE_MAX;
  server->heap_len--;
  if (i == server->heap_len)
    return;
  server->heap[i] = server->heap[server->heap_len];
  server->heap[i]->heap_index = i;
  heap_down(server, i);
  heap_up(server, i);
}

/* --- request lifetime ---------------------------------------------------------------- */

static void request_free(http_request_t *req) {
  http_buf_free(&req->body);
  free(req);
}

/* Drops one reference; the caller holds ready_mutex. true: free it now. */
static bool request_unref_locked(http_request_t *req) {
  return --req->refs == 0;
}

/* The watch callback: registry loop thread. Never blocks: a lock held for a
   few instructions and a write to a non-blocking pipe. */
static void http_on_settled(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status,
                            void *arg) {
  (void)reg;
  (void)id;
  (void)status;
  http_request_t *req = arg;
  http_server_t *server = req->server;
  bool wake = false;
  bool release = false;
  pthread_mutex_lock(&server->ready_mutex);
  req->settled = true;
  req->settled_rc = rc;
  if (req->suspended && !req->queued) {
    /* The ready list takes over the watch's reference. */
    req->queued = true;
    req->ready_next = NULL;
    wake = server->ready_head == NULL;
    if (server->ready_tail)
      server->ready_tail->ready_next = req;
    else
      server->ready_head = req;
    server->ready_tail = req;
  } else {
    release = request_unref_locked(req);
  }
  pthread_mutex_unlock(&server->ready_mutex);
  if (release)
    request_free(req);
  if (wake) {
    ssize_t n;
    do {
      n = write(server->ready_pipe[1], "r", 1);
    } while (n < 0 && errno == EINTR);
  }
}

/* Main thread: resumes req if it is still suspended. */
static void resume(http_server_t *server, http_request_t *req) {
  pthread_mutex_lock(&server->ready_mutex);
  bool was_suspended = req->suspended;
  req->suspended = false;
  pthread_mutex_unlock(&server->ready_mutex);
  if (!was_suspended)
    return;
  heap_remove(server, req);
  MHD_resume_connection(req->connection);
}

void http_resume_ready(http_server_t *server) {
  pthread_mutex_lock(&server->ready_mutex);
  http_request_t *list = server->ready_head;
  server->ready_head = server->ready_tail = NULL;
  pthread_mutex_unlock(&server->ready_mutex);
  while (list) {
    http_request_t *req = list;
    list = req->ready_next;
    resume(server, req);
    pthread_mutex_lock(&server->ready_mutex);
    req->queued = false;
    bool release = request_unref_locked(req); /* the watch's, taken over by the list */
    pthread_mutex_unlock(&server->ready_mutex);
    if (release)
      request_free(req);
  }
}

int64_t http_expire_waits(http_server_t *server, bool everything) {
  uint64_t now = http_now_ms();
  while (server->heap_len > 0) {
    http_request_t *first = server->heap[0];
    if (!everything && first->deadline_ms > now)
      return (int64_t)(first->deadline_ms - now);
    resume(server, first); /* takes it off the heap */
  }
  return -1;
}

/* --- answers ----------------------------------------------------------------------------- */

/* A registry error code as a problem: its MCP error type and HTTP status.
   detail is copied by the caller from qreg_last_error() right after the call. */
static enum MHD_Result answer_registry_error(http_request_t *req, int code, const char *what,
                                             const char *detail) {
  unsigned status;
  const char *type;
  switch (code) {
  case QREG_ENOTFOUND:
    status = MHD_HTTP_NOT_FOUND;
    type = "not_found";
    break;
  case QREG_EINVAL:
    status = MHD_HTTP_BAD_REQUEST;
    type = "invalid_argument";
    break;
  case QREG_EFULL:
    status = MHD_HTTP_TOO_MANY_REQUESTS;
    type = "too_many_queries";
    break;
  case QREG_ETOOBIG:
    status = MHD_HTTP_CONTENT_TOO_LARGE;
    type = "sql_too_large";
    break;
  case QREG_ECLOSED:
    status = MHD_HTTP_SERVICE_UNAVAILABLE;
    type = "closed";
    break;
  case QREG_ENOTREADY:
    status = MHD_HTTP_CONFLICT;
    type = "not_ready";
    break;
  case QREG_ENORESULT:
    status = MHD_HTTP_CONFLICT;
    type = "no_result";
    break;
  case QREG_ERANGE:
    status = MHD_HTTP_BAD_REQUEST;
    type = "out_of_range";
    break;
  default:
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    type = "internal";
    break;
  }
  char message[768];
  snprintf(message, sizeof message, "%s: %s", what,
           detail && detail[0] ? detail : qreg_strerror(code));
  return http_answer_problem(req, status, type, message);
}

/* --- JSON forms ------------------------------------------------------------------------ */

static void write_columns(http_buf_t *out, const qreg_column_t *columns, size_t count) {
  http_buf_puts(out, "[");
  for (size_t i = 0; i < count; i++) {
    http_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
    http_buf_json_string(out, columns[i].name);
    http_buf_puts(out, ",\"type\":");
    http_buf_json_string(out, columns[i].type_name);
    http_buf_puts(out, "}");
  }
  http_buf_puts(out, "]");
}

/* The members of a statement (no braces): the snapshot and its links. */
static void write_statement_members(http_buf_t *out, const qreg_snapshot_t *s) {
  http_buf_printf(out, "\"id\":\"%s\",\"status\":\"%s\",\"sql\":", s->id.str,
                  qreg_status_name(s->status));
  http_buf_json_string(out, s->sql);
  http_buf_puts(out, ",\"created_at\":");
  http_buf_json_time(out, s->created_ms);
  http_buf_puts(out, ",\"started_at\":");
  http_buf_json_time(out, s->started_ms);
  http_buf_puts(out, ",\"finished_at\":");
  http_buf_json_time(out, s->finished_ms);
  http_buf_puts(out, ",\"updated_at\":");
  http_buf_json_time(out, s->updated_ms);
  http_buf_puts(out, ",\"expires_at\":");
  http_buf_json_time(out, s->expires_ms);
  http_buf_printf(out, ",\"elapsed_ms\":%lld,\"row_count\":%llu,\"truncated\":%s,",
                  (long long)s->elapsed_ms, (unsigned long long)s->row_count,
                  s->truncated ? "true" : "false");
  http_buf_puts(out, "\"truncated_by\":");
  http_buf_json_string(out, s->truncated ? qreg_truncation_name(s->truncated_by) : NULL);
  http_buf_printf(out, ",\"result_evicted\":%s,\"columns\":", s->result_evicted ? "true" : "false");
  write_columns(out, s->columns, s->column_count);
  http_buf_puts(out, ",\"backend_id\":");
  http_buf_json_string(out, s->backend_id[0] ? s->backend_id : NULL);
  http_buf_puts(out, ",\"error\":");
  if (!s->has_error) {
    http_buf_puts(out, "null");
  } else {
    http_buf_puts(out, "{\"type\":");
    http_buf_json_string(out, s->error.type[0] ? s->error.type : "internal");
    http_buf_puts(out, ",\"message\":");
    http_buf_json_string(out, s->error.message);
    const char *names[3] = {"code", "detail", "hint"};
    const char *values[3] = {s->error.code, s->error.detail, s->error.hint};
    for (int i = 0; i < 3; i++) {
      if (values[i][0]) {
        http_buf_printf(out, ",\"%s\":", names[i]);
        http_buf_json_string(out, values[i]);
      }
    }
    http_buf_puts(out, "}");
  }
  http_buf_printf(out,
                  ",\"links\":{\"self\":\"/v1/statements/%s\",\"result\":\"/v1/statements/%s/"
                  "result\",\"cancel\":\"/v1/statements/%s/cancel\"}",
                  s->id.str, s->id.str, s->id.str);
}

/* {"columns":..,"rows":..,...} of a page. */
static void write_page(http_buf_t *out, const qreg_page_t *page) {
  http_buf_puts(out, "{\"columns\":");
  write_columns(out, page->columns, page->column_count);
  http_buf_puts(out, ",\"rows\":[");
  for (uint64_t r = 0; r < page->row_count; r++) {
    http_buf_puts(out, r ? ",[" : "[");
    for (size_t c = 0; c < page->column_count; c++) {
      if (c)
        http_buf_puts(out, ",");
      http_buf_value_json(out, &page->values[r * page->column_count + c]);
    }
    http_buf_puts(out, "]");
  }
  http_buf_printf(out,
                  "],\"offset\":%llu,\"row_count\":%llu,\"total_rows\":%llu,\"has_more\":%s,"
                  "\"truncated\":%s,\"next_offset\":",
                  (unsigned long long)page->offset, (unsigned long long)page->row_count,
                  (unsigned long long)page->total_rows, page->has_more ? "true" : "false",
                  page->truncated ? "true" : "false");
  if (page->has_more)
    http_buf_printf(out, "%llu}", (unsigned long long)page->offset + page->row_count);
  else
    http_buf_puts(out, "null}");
}

/* 200/202 with the statement, and the first page when it succeeded and
   with_page is set. */
static enum MHD_Result answer_statement(http_request_t *req, const char *id, bool with_page,
                                        bool accepted_if_running) {
  qreg_snapshot_t *snap = NULL;
  int rc = qreg_snapshot(req->server->reg, id, &snap);
  if (rc < 0)
    return answer_registry_error(req, rc, "statement", qreg_last_error());
  bool terminal = qreg_status_is_terminal(snap->status);
  http_buf_t out = {0};
  http_buf_puts(&out, "{");
  write_statement_members(&out, snap);
  if (with_page && snap->status == QREG_SUCCEEDED) {
    qreg_page_t *page = NULL;
    if (qreg_fetch(req->server->reg, id, 0, req->page_limit, &page) == 0) {
      http_buf_puts(&out, ",\"result\":");
      write_page(&out, page);
      qreg_page_free(page);
    }
  }
  http_buf_puts(&out, "}");
  qreg_snapshot_free(snap);
  unsigned status = !terminal && accepted_if_running ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK;
  return http_answer_json(req, status, &out);
}

/* --- waiting -------------------------------------------------------------------------------- */

/* The answer due when a wait ends (resumed, or settled at once). */
static enum MHD_Result answer_after_wait(http_request_t *req) {
  switch (req->wait) {
  case WAIT_SUBMIT:
    return answer_statement(req, req->id.str, true, true);
  case WAIT_CANCEL:
  case WAIT_STATUS:
    return answer_statement(req, req->id.str, false, false);
  case WAIT_READY: {
    qreg_snapshot_t *snap = NULL;
    int rc = qreg_snapshot(req->server->reg, req->id.str, &snap);
    bool ready = rc == 0 && snap->status == QREG_SUCCEEDED;
    char detail[512];
    if (rc < 0)
      snprintf(detail, sizeof detail, "the check query: %s", qreg_strerror(rc));
    else if (!qreg_status_is_terminal(snap->status))
      snprintf(detail, sizeof detail, "the check query did not finish within %d s",
               READY_WAIT_MS / 1000);
    else
      snprintf(detail, sizeof detail, "the check query %s: %s", qreg_status_name(snap->status),
               snap->has_error ? snap->error.message : "");
    if (rc == 0) {
      if (!ready)
        (void)qreg_cancel_async(req->server->reg, req->id.str, NULL);
      qreg_snapshot_free(snap);
    }
    if (!ready)
      return http_answer_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready_database", detail);
    http_buf_t out = {0};
    http_buf_puts(&out, "{\"status\":\"ready\",\"driver\":");
    http_buf_json_string(&out, qreg_driver_name(req->server->reg));
    http_buf_puts(&out, "}");
    return http_answer_json(req, MHD_HTTP_OK, &out);
  }
  case WAIT_MCP:
    return http_mcp_answer_waited(req);
  case WAIT_NONE:
    break;
  }
  return http_answer_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "no wait");
}

/* Waits up to wait_ms for query id to settle, then answers as kind says.
   Answers at once when it has settled already, wait_ms is 0 or the watch
   cannot be set. */
static enum MHD_Result wait_then_answer(http_request_t *req, const char *id, wait_kind_t kind,
                                        uint64_t wait_ms) {
  http_server_t *server = req->server;
  req->wait = kind;
  snprintf(req->id.str, sizeof req->id.str, "%s", id);
  qreg_status_t status;
  int rc = qreg_wait(server->reg, id, 0, &status);
  if (rc != QREG_ETIMEDOUT || wait_ms == 0 || server->draining)
    return answer_after_wait(req);
  if (server->heap_len >= server->limits.max_waits) {
    char detail[160];
    snprintf(detail, sizeof detail, "%zu waits are held, the most this server takes (--max-waits)",
             server->heap_len);
    return http_answer_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "too_many_waits", detail);
  }
  req->deadline_ms = http_now_ms() + wait_ms;
  if (!heap_push(server, req))
    return MHD_NO;
  pthread_mutex_lock(&server->ready_mutex);
  req->suspended = true;
  req->refs++; /* the watch's */
  pthread_mutex_unlock(&server->ready_mutex);
  rc = qreg_watch(server->reg, id, http_on_settled, req);
  if (rc < 0) {
    pthread_mutex_lock(&server->ready_mutex);
    req->suspended = false;
    req->refs--;
    pthread_mutex_unlock(&server->ready_mutex);
    heap_remove(server, req);
    return answer_after_wait(req);
  }
  /* The callback may already have queued it: the main thread resumes it only
     after this handler has returned, so the suspend comes first. */
  MHD_suspend_connection(req->connection);
  return MHD_YES;
}

/* --- parameters ------------------------------------------------------------------------- */

/* Seconds as a decimal number from 0 to max_ms/1000 (a query argument). */
static bool parse_wait_text(const char *text, uint64_t max_ms, uint64_t *out_ms) {
  if (!text || !*text)
    return false;
  for (const char *p = text; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != '.')
      return false;
  char *end = NULL;
  errno = 0;
  double seconds = strtod(text, &end);
  if (errno || *end || !isfinite(seconds) || seconds < 0 || seconds * 1000 > (double)max_ms)
    return false;
  *out_ms = (uint64_t)llround(seconds * 1000);
  return true;
}

static bool parse_count_text(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
  if (!text || !*text || strlen(text) > 19)
    return false;
  uint64_t value = 0;
  for (const char *p = text; *p; p++) {
    if (!isdigit((unsigned char)*p))
      return false;
    value = value * 10 + (uint64_t)(*p - '0');
  }
  if (value < min || value > max)
    return false;
  *out = value;
  return true;
}

static const char *query_arg(http_request_t *req, const char *name) {
  return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, name);
}

/* Seconds in a JSON body: a number above 0 (or from 0 when zero_ok) and at
   most max_ms. */
static bool json_seconds(json_t *value, bool zero_ok, uint64_t max_ms, uint64_t *out_ms) {
  if (!json_is_number(value))
    return false;
  double seconds = json_number_value(value);
  if (!isfinite(seconds) || seconds < 0 || (!zero_ok && seconds == 0) ||
      seconds * 1000 > (double)max_ms)
    return false;
  *out_ms = (uint64_t)llround(seconds * 1000);
  if (!zero_ok && *out_ms == 0)
    *out_ms = 1;
  return true;
}

#define YEAR_MS (UINT64_C(31536000) * 1000)

/* --- the statement API -------------------------------------------------------------------- */

static enum MHD_Result submit_statement(http_request_t *req) {
  http_server_t *server = req->server;
  json_error_t error;
  json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                            JSON_REJECT_DUPLICATES, &error);
  if (!body || !json_is_object(body)) {
    char detail[256];
    snprintf(detail, sizeof detail, "the body must be a JSON object: %s",
             body ? "not an object" : error.text);
    json_decref(body);
    return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument", detail);
  }
  qreg_options_t options;
  qreg_options_init(&options);
  uint64_t wait_ms = server->limits.default_submit_wait;
  const char *key;
  json_t *value;
  const char *bad = NULL;
  char detail[256] = "";
  json_object_foreach(body, key, value) {
    if (strcmp(key, "sql") == 0) {
      if (!json_is_string(value))
        bad = "sql: expected a string (one SQL statement)";
    } else if (strcmp(key, "timeout_seconds") == 0) {
      if (!json_seconds(value, false, YEAR_MS, &options.timeout_ms))
        bad = "timeout_seconds: expected a number above 0 and at most a year";
    } else if (strcmp(key, "ttl_seconds") == 0) {
      if (!json_seconds(value, false, YEAR_MS, &options.ttl_ms))
        bad = "ttl_seconds: expected a number above 0 and at most a year";
    } else if (strcmp(key, "max_rows") == 0) {
      if (!json_is_integer(value) || json_integer_value(value) < 1 ||
          json_integer_value(value) > 1000000000)
        bad = "max_rows: expected a whole number from 1 to 1000000000";
      else
        options.max_rows = (uint64_t)json_integer_value(value);
    } else if (strcmp(key, "max_result_bytes") == 0) {
      /* The registry refuses more than its budget, with the figure. */
      if (!json_is_integer(value) || json_integer_value(value) < 1)
        bad = "max_result_bytes: expected a whole number above 0";
      else
        options.max_result_bytes = (size_t)json_integer_value(value);
    } else if (strcmp(key, "wait_seconds") == 0) {
      if (!json_seconds(value, true, server->limits.max_wait_ms, &wait_ms)) {
        snprintf(detail, sizeof detail, "wait_seconds: expected a number from 0 to %llu",
                 (unsigned long long)(server->limits.max_wait_ms / 1000));
        bad = detail;
      }
    } else {
      snprintf(detail, sizeof detail,
               "unknown member '%.64s' (the body takes sql, timeout_seconds, max_rows, "
               "max_result_bytes, ttl_seconds, wait_seconds)",
               key);
      bad = detail;
    }
    if (bad)
      break;
  }
  json_t *sql = json_object_get(body, "sql");
  if (!bad && !sql)
    bad = "sql: required (one SQL statement)";
  if (bad) {
    enum MHD_Result rc = http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument", bad);
    json_decref(body);
    return rc;
  }
  qreg_id_t id;
  int rc =
      qreg_execute_n(server->reg, json_string_value(sql), json_string_length(sql), &options, &id);
  json_decref(body);
  if (rc < 0)
    return answer_registry_error(req, rc, "sql", qreg_last_error());
  req->page_limit = DEFAULT_PAGE_ROWS;
  return wait_then_answer(req, id.str, WAIT_SUBMIT, wait_ms);
}

static enum MHD_Result get_statement(http_request_t *req, const char *id) {
  uint64_t wait_ms = 0;
  const char *wait = query_arg(req, "wait_seconds");
  if (wait && !parse_wait_text(wait, req->server->limits.max_wait_ms, &wait_ms)) {
    char detail[128];
    snprintf(detail, sizeof detail, "wait_seconds: expected a number from 0 to %llu",
             (unsigned long long)(req->server->limits.max_wait_ms / 1000));
    return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument", detail);
  }
  qreg_snapshot_t *snap = NULL;
  int rc = qreg_snapshot(req->server->reg, id, &snap);
  if (rc < 0)
    return answer_registry_error(req, rc, "statement", qreg_last_error());
  qreg_snapshot_free(snap);
  return wait_then_answer(req, id, WAIT_STATUS, wait_ms);
}

static enum MHD_Result cancel_statement(http_request_t *req, const char *id) {
  int rc = qreg_cancel_async(req->server->reg, id, NULL);
  if (rc < 0)
    return answer_registry_error(req, rc, "cancel", qreg_last_error());
  return wait_then_answer(req, id, WAIT_CANCEL, CANCEL_WAIT_MS);
}

/* Frees the record and its result now (qreg_forget); a statement still
   running is canceled first. 204; 404 for an unknown or forgotten id. */
static enum MHD_Result delete_statement(http_request_t *req, const char *id) {
  int rc = qreg_forget(req->server->reg, id);
  if (rc < 0)
    return answer_registry_error(req, rc, "delete", qreg_last_error());
  struct MHD_Response *response = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (response == NULL)
    return MHD_NO;
  enum MHD_Result ret = MHD_queue_response(req->connection, MHD_HTTP_NO_CONTENT, response);
  MHD_destroy_response(response);
  return ret;
}

static enum MHD_Result list_statements(http_request_t *req) {
  qreg_list_filter_t filter = {0};
  uint64_t limit = DEFAULT_LIST_LIMIT;
  const char *text = query_arg(req, "limit");
  if (text && !parse_count_text(text, 1, MAX_LIST_LIMIT, &limit))
    return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument",
                               "limit: expected a whole number from 1 to 1000");
  filter.limit = (size_t)limit;
  filter.cursor = query_arg(req, "cursor");
  const char *statuses = query_arg(req, "status");
  if (statuses) {
    char names[128];
    if (strlen(statuses) >= sizeof names)
      return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument",
                                 "status: expected status names separated by commas");
    snprintf(names, sizeof names, "%s", statuses);
    char *save = NULL;
    for (char *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
      qreg_status_t status;
      if (qreg_status_parse(name, &status) < 0)
        return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument",
                                   "status: expected pending, running, succeeded, failed, canceled "
                                   "or timeout (several separated by commas)");
      filter.status_mask |= 1u << status;
    }
  }
  const char *order = query_arg(req, "order");
  if (order && strcmp(order, "newest") != 0 && strcmp(order, "oldest") != 0)
    return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument",
                               "order: expected newest or oldest");
  filter.newest_first = order && strcmp(order, "newest") == 0;
  qreg_list_t *list = NULL;
  int rc = qreg_list(req->server->reg, &filter, &list);
  if (rc < 0)
    return answer_registry_error(req, rc, "list", qreg_last_error());
  http_buf_t out = {0};
  http_buf_puts(&out, "{\"statements\":[");
  for (size_t i = 0; i < list->count; i++) {
    http_buf_puts(&out, i ? ",{" : "{");
    write_statement_members(&out, list->items[i]);
    http_buf_puts(&out, "}");
  }
  http_buf_puts(&out, "],\"next_cursor\":");
  http_buf_json_string(&out, list->next_cursor);
  http_buf_puts(&out, "}");
  qreg_list_free(list);
  return http_answer_json(req, MHD_HTTP_OK, &out);
}

/* --- result streams ------------------------------------------------------------------------ */

typedef enum stream_format {
  FORMAT_JSON = 0,
  FORMAT_CSV,
  FORMAT_NDJSON,
} stream_format_t;

typedef struct result_stream {
  http_server_t *server; /* borrowed */
  qreg_id_t id;
  stream_format_t format;
  qreg_page_t *page; /* owned: the page being written, NULL between pages */
  uint64_t next_offset;
  bool finished; /* the last page has been written to out */
  http_buf_t out;
  size_t out_pos;
} result_stream_t;

static void stream_write_page(result_stream_t *stream) {
  const qreg_page_t *page = stream->page;
  http_buf_t *out = &stream->out;
  if (!page) {
    stream->finished = true;
    return;
  }
  for (uint64_t r = 0; r < page->row_count; r++) {
    const qreg_value_t *row = &page->values[r * page->column_count];
    if (stream->format == FORMAT_CSV) {
      for (size_t c = 0; c < page->column_count; c++) {
        if (c)
          http_buf_puts(out, ",");
        http_buf_value_csv(out, &row[c]);
      }
      http_buf_puts(out, "\r\n");
    } else {
      http_buf_puts(out, "[");
      for (size_t c = 0; c < page->column_count; c++) {
        if (c)
          http_buf_puts(out, ",");
        http_buf_value_json(out, &row[c]);
      }
      http_buf_puts(out, "]\n");
    }
  }
  stream->next_offset = page->offset + page->row_count;
  stream->finished = !page->has_more;
  qreg_page_free(stream->page);
  stream->page = NULL;
}

static void stream_write_header(result_stream_t *stream) {
  const qreg_page_t *page = stream->page;
  http_buf_t *out = &stream->out;
  if (stream->format == FORMAT_CSV) {
    for (size_t c = 0; c < page->column_count; c++) {
      qreg_value_t name = {.type = QREG_TYPE_TEXT};
      name.v.s.ptr = page->columns[c].name;
      name.v.s.len = strlen(page->columns[c].name);
      if (c)
        http_buf_puts(out, ",");
      http_buf_value_csv(out, &name);
    }
    http_buf_puts(out, "\r\n");
  } else {
    http_buf_puts(out, "{\"columns\":");
    write_columns(out, page->columns, page->column_count);
    http_buf_printf(out, ",\"total_rows\":%llu,\"truncated\":%s}\n",
                    (unsigned long long)page->total_rows, page->truncated ? "true" : "false");
  }
}

/* libmicrohttpd asks for up to max bytes of the body (main thread). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  result_stream_t *stream = cls;
  while (stream->out_pos == stream->out.len) {
    stream->out.len = 0;
    stream->out_pos = 0;
    if (stream->finished)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (!stream->page && qreg_fetch(stream->server->reg, stream->id.str, stream->next_offset,
                                    STREAM_PAGE_ROWS, &stream->page) < 0)
      return MHD_CONTENT_READER_END_WITH_ERROR; /* pruned or closing: the client sees a cut */
    stream_write_page(stream);
    if (stream->out.failed)
      return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  size_t n = stream->out.len - stream->out_pos;
  if (n > max)
    n = max;
  memcpy(buf, stream->out.data + stream->out_pos, n);
  stream->out_pos += n;
  stream->server->metrics.streamed_bytes += n;
  return (ssize_t)n;
}

static void stream_free(void *cls) {
  result_stream_t *stream = cls;
  qreg_page_free(stream->page);
  http_buf_free(&stream->out);
  free(stream);
}

/* The format the client asked for: ?format= wins, then Accept. false: none
   of ours is acceptable. */
static bool choose_format(http_request_t *req, stream_format_t *out) {
  const char *format = query_arg(req, "format");
  if (format) {
    if (strcmp(format, "json") == 0)
      *out = FORMAT_JSON;
    else if (strcmp(format, "csv") == 0)
      *out = FORMAT_CSV;
    else if (strcmp(format, "ndjson") == 0)
      *out = FORMAT_NDJSON;
    else
      return false;
    return true;
  }
  const char *accept =
      MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  *out = FORMAT_JSON;
  if (!accept || !*accept)
    return true;
  if (strcasestr(accept, "text/csv"))
    *out = FORMAT_CSV;
  else if (strcasestr(accept, "application/x-ndjson"))
    *out = FORMAT_NDJSON;
  else if (!strcasestr(accept, "application/json") && !strcasestr(accept, "*/*") &&
           !strcasestr(accept, "application/*"))
    return false;
  return true;
}

static enum MHD_Result get_result(http_request_t *req, const char *id) {
  stream_format_t format;
  if (!choose_format(req, &format))
    return http_answer_problem(
        req, MHD_HTTP_NOT_ACCEPTABLE, "not_acceptable",
        "results come as application/json, text/csv or application/x-ndjson");
  uint64_t offset = 0;
  uint64_t limit = DEFAULT_PAGE_ROWS;
  const char *text = query_arg(req, "offset");
  if (text && !parse_count_text(text, 0, UINT64_MAX / 2, &offset))
    return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument",
                               "offset: expected a whole number from 0");
  text = query_arg(req, "limit");
  if (text && !parse_count_text(text, 1, MAX_PAGE_ROWS, &limit))
    return http_answer_problem(req, MHD_HTTP_BAD_REQUEST, "invalid_argument",
                               "limit: expected a whole number from 1 to 10000");
  qreg_page_t *page = NULL;
  uint64_t first_rows = format == FORMAT_JSON ? limit : STREAM_PAGE_ROWS;
  int rc = qreg_fetch(req->server->reg, id, offset, first_rows, &page);
  if (rc < 0) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", qreg_last_error());
    if (rc == QREG_ENORESULT) {
      /* Say why: the query's own error. */
      qreg_snapshot_t *snap = NULL;
      if (qreg_snapshot(req->server->reg, id, &snap) == 0) {
        snprintf(detail, sizeof detail, "the statement %s%s%s", qreg_status_name(snap->status),
                 snap->has_error ? ": " : "", snap->has_error ? snap->error.message : "");
        qreg_snapshot_free(snap);
      }
    }
    return answer_registry_error(req, rc, "result", detail);
  }
  if (format == FORMAT_JSON) {
    http_buf_t out = {0};
    write_page(&out, page);
    qreg_page_free(page);
    return http_answer_json(req, MHD_HTTP_OK, &out);
  }
  result_stream_t *stream = calloc(1, sizeof *stream);
  if (!stream) {
    qreg_page_free(page);
    return MHD_NO;
  }
  stream->server = req->server;
  snprintf(stream->id.str, sizeof stream->id.str, "%s", id);
  stream->format = format;
  stream->page = page;
  stream_write_header(stream);
  struct MHD_Response *response = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES, stream_read, stream, stream_free);
  if (!response) {
    stream_free(stream);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          format == FORMAT_CSV ? "text/csv; charset=utf-8; header=present"
                                               : "application/x-ndjson");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  if (req->server->draining)
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result result = MHD_queue_response(req->connection, MHD_HTTP_OK, response);
  MHD_destroy_response(response);
  req->status = MHD_HTTP_OK;
  req->answered = true;
  return result;
}

/* --- operations routes ----------------------------------------------------------------------- */

static enum MHD_Result check_ready(http_request_t *req) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = READY_WAIT_MS;
  options.ttl_ms = 10000; /* checks do not pile up in the registry */
  qreg_id_t id;
  int rc = qreg_execute(req->server->reg, "SELECT 1", &options, &id);
  if (rc < 0)
    return answer_registry_error(req, rc, "the check query", qreg_last_error());
  return wait_then_answer(req, id.str, WAIT_READY, READY_WAIT_MS);
}

static enum MHD_Result serve_metrics(http_request_t *req) {
  size_t len = 0;
  char *body = http_metrics_render(req->server, &len);
  if (!body)
    return MHD_NO;
  return http_answer(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL,
                     NULL);
}

static enum MHD_Result serve_openapi(http_request_t *req) {
  struct MHD_Response *response = MHD_create_response_from_buffer(
      req->server->openapi_len, (void *)req->server->openapi, MHD_RESPMEM_PERSISTENT);
  if (!response)
    return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (req->server->draining)
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result rc = MHD_queue_response(req->connection, MHD_HTTP_OK, response);
  MHD_destroy_response(response);
  req->status = MHD_HTTP_OK;
  req->answered = true;
  return rc;
}

/* --- Host and Origin ---------------------------------------------------------------------- */

bool http_origin_allowed(http_request_t *req, char *detail, size_t detail_size) {
  return http_origin_check(
      MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
      MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN),
      req->server->loopback, req->server->allowed_origins, detail, detail_size);
}

/* --- routing ------------------------------------------------------------------------------- */

/* A route and what it needs, from the method and the path. *id points into
   url (36 characters) for the routes of one statement. */
typedef struct route_match {
  http_route_t route;
  const char *allowed; /* the methods of the path when the method does not fit */
  bool public;         /* served without a token */
  bool has_body;       /* the request body is read (POST) */
  char id[QREG_ID_LEN + 1];
} route_match_t;

static bool looks_like_id(const char *text, size_t len) {
  if (len != QREG_ID_LEN)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !isxdigit((unsigned char)c))
      return false;
  }
  return true;
}

static void match_route(const char *method, const char *url, route_match_t *m) {
  memset(m, 0, sizeof *m);
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  bool post = strcmp(method, "POST") == 0;
  m->has_body = post;
  if (strcmp(url, "/") == 0) {
    m->public = true; /* the page holds no data; its API calls carry the token */
    m->route = get ? ROUTE_CONSOLE : ROUTE_NONE;
    m->allowed = get ? NULL : "GET, HEAD";
  } else if (strcmp(url, "/healthz") == 0) {
    m->public = true;
    m->route = get ? ROUTE_HEALTHZ : ROUTE_NONE;
    m->allowed = get ? NULL : "GET, HEAD";
  } else if (strcmp(url, "/readyz") == 0) {
    m->public = true;
    m->route = get ? ROUTE_READYZ : ROUTE_NONE;
    m->allowed = get ? NULL : "GET, HEAD";
  } else if (strcmp(url, "/metrics") == 0) {
    m->route = get ? ROUTE_METRICS : ROUTE_NONE;
    m->allowed = get ? NULL : "GET, HEAD";
  } else if (strcmp(url, "/v1/openapi.json") == 0) {
    m->public = true;
    m->route = get ? ROUTE_OPENAPI : ROUTE_NONE;
    m->allowed = get ? NULL : "GET, HEAD";
  } else if (strcmp(url, "/mcp") == 0) {
    bool del = strcmp(method, "DELETE") == 0;
    bool get_only = strcmp(method, "GET") == 0;
    m->route = post || get_only || del ? ROUTE_MCP : ROUTE_NONE;
    m->allowed = m->route ? NULL : "GET, POST, DELETE";
  } else if (strcmp(url, "/v1/statements") == 0) {
    m->route = post ? ROUTE_STATEMENTS_SUBMIT : get ? ROUTE_STATEMENTS_LIST : ROUTE_NONE;
    m->allowed = post || get ? NULL : "GET, HEAD, POST";
  } else if (strncmp(url, "/v1/statements/", 15) == 0) {
    const char *id = url + 15;
    size_t id_len = strcspn(id, "/");
    const char *rest = id + id_len;
    if (!looks_like_id(id, id_len))
      return; /* ROUTE_NONE, nothing allowed: 404 */
    memcpy(m->id, id, id_len);
    m->id[id_len] = '\0';
    bool del = strcmp(method, "DELETE") == 0;
    if (*rest == '\0') {
      m->route = get ? ROUTE_STATEMENT_GET : del ? ROUTE_STATEMENT_DELETE : ROUTE_NONE;
      m->allowed = get || del ? NULL : "GET, HEAD, DELETE";
    } else if (strcmp(rest, "/result") == 0) {
      m->route = get ? ROUTE_STATEMENT_RESULT : ROUTE_NONE;
      m->allowed = get ? NULL : "GET, HEAD";
    } else if (strcmp(rest, "/cancel") == 0) {
      m->route = post ? ROUTE_STATEMENT_CANCEL : ROUTE_NONE;
      m->allowed = post ? NULL : "POST";
    }
  }
}

static enum MHD_Result dispatch(http_request_t *req, const route_match_t *m) {
  switch (m->route) {
  case ROUTE_CONSOLE:
    return http_serve_console(req);
  case ROUTE_HEALTHZ: {
    http_buf_t out = {0};
    http_buf_puts(&out, "{\"status\":\"ok\"}");
    return http_answer_json(req, MHD_HTTP_OK, &out);
  }
  case ROUTE_READYZ:
    return check_ready(req);
  case ROUTE_METRICS:
    return serve_metrics(req);
  case ROUTE_OPENAPI:
    return serve_openapi(req);
  case ROUTE_STATEMENTS_SUBMIT:
    return submit_statement(req);
  case ROUTE_STATEMENTS_LIST:
    return list_statements(req);
  case ROUTE_STATEMENT_GET:
    return get_statement(req, m->id);
  case ROUTE_STATEMENT_RESULT:
    return get_result(req, m->id);
  case ROUTE_STATEMENT_CANCEL:
    return cancel_statement(req, m->id);
  case ROUTE_STATEMENT_DELETE:
    return delete_statement(req, m->id);
  case ROUTE_MCP:
    return http_mcp_handle(req);
  case ROUTE_NONE:
  case ROUTE_COUNT:
    break;
  }
  if (m->allowed)
    return http_answer_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", m->allowed);
  return http_answer_problem(req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
}

/* The request line's path as the log shows it: printable ASCII, cut. */
static void loggable_path(const char *url, char *out, size_t size) {
  size_t n = 0;
  for (; url[n] && n + 1 < size; n++) {
    unsigned char c = (unsigned char)url[n];
    out[n] = (char)(c > ' ' && c < 0x7f ? c : (unsigned char)'?');
  }
  out[n] = '\0';
}

static void peer_address(struct MHD_Connection *connection, char *out, size_t size) {
  snprintf(out, size, "-");
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!info || !info->client_addr)
    return;
  const struct sockaddr *addr = info->client_addr;
  if (addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, out,
              (socklen_t)size);
  else if (addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, out,
              (socklen_t)size);
}

enum MHD_Result http_handle(void *cls, struct MHD_Connection *connection, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **request_cls) {
  (void)version;
  http_server_t *server = cls;
  http_request_t *req = *request_cls;
  route_match_t m;
  match_route(method, url, &m);
  if (!req) {
    /* First call: the headers only. */
    req = calloc(1, sizeof *req);
    if (!req)
      return MHD_NO;
    req->server = server;
    req->connection = connection;
    req->refs = 1; /* dropped in http_completed */
    req->heap_index = SIZE_MAX;
    req->route = m.route;
    snprintf(req->method, sizeof req->method, "%.7s", method);
    loggable_path(url, req->path, sizeof req->path);
    peer_address(connection, req->peer, sizeof req->peer);
    clock_gettime(CLOCK_MONOTONIC, &req->started);
    *request_cls = req;
    server->requests_in_flight++;
    if (server->draining)
      return http_answer_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down",
                                 "the server is shutting down: try another instance");
    uint64_t open_connections =
        server->metrics.connections_accepted - server->metrics.connections_closed;
    if (open_connections > server->limits.max_clients) {
      req->close_after = true;
      char detail[128];
      snprintf(detail, sizeof detail,
               "%u connections are open, the most this server takes "
               "(--max-clients)",
               server->limits.max_clients);
      return http_answer_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "too_many_connections", detail);
    }
    char why[256];
    if (!http_origin_allowed(req, why, sizeof why))
      return http_answer_problem(req, MHD_HTTP_FORBIDDEN, "forbidden", why);
    if (server->tokens->count > 0 && !m.public &&
        !http_tokens_check(server->tokens,
                           MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION))) {
      server->metrics.unauthorized++;
      return http_answer_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                 "a valid bearer token is required (Authorization: Bearer TOKEN)");
    }
    if (m.has_body) {
      const char *length =
          MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      uint64_t declared = 0;
      if (length && parse_count_text(length, 0, UINT64_MAX / 2, &declared) &&
          declared > server->limits.max_body_bytes) {
        char detail[128];
        snprintf(detail, sizeof detail, "the body may have at most %zu bytes (--max-body-bytes)",
                 server->limits.max_body_bytes);
        return http_answer_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "request_too_large", detail);
      }
    }
    /* Answered from the next call, once the whole request is in: a response
       queued while libmicrohttpd may still expect a body makes it close the
       connection afterwards, so every request would cost a new one. */
    return MHD_YES;
  }
  if (req->answered) {
    *upload_data_size = 0; /* a body after an early answer is dropped */
    return MHD_YES;
  }
  if (req->wait != WAIT_NONE) /* resumed: the query settled or the deadline passed */
    return answer_after_wait(req);
  if (*upload_data_size > 0) {
    if (!req->body_too_large && req->body.len + *upload_data_size <= server->limits.max_body_bytes)
      http_buf_append(&req->body, upload_data, *upload_data_size);
    else
      req->body_too_large = true;
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (req->body_too_large) {
    char detail[128];
    snprintf(detail, sizeof detail, "the body may have at most %zu bytes (--max-body-bytes)",
             server->limits.max_body_bytes);
    return http_answer_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "request_too_large", detail);
  }
  if (req->body.failed)
    return MHD_NO;
  return dispatch(req, &m);
}

void http_completed(void *cls, struct MHD_Connection *connection, void **request_cls,
                    enum MHD_RequestTerminationCode code) {
  (void)connection;
  http_server_t *server = cls;
  http_request_t *req = *request_cls;
  if (!req)
    return;
  *request_cls = NULL;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double seconds = (double)(now.tv_sec - req->started.tv_sec) +
                   (double)(now.tv_nsec - req->started.tv_nsec) / 1e9;
  unsigned status = code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? req->status : 0;
  http_metrics_observe(&server->metrics, req->route, status, seconds);
  static const char *const ENDINGS[] = {
      [MHD_REQUEST_TERMINATED_COMPLETED_OK] = "",
      [MHD_REQUEST_TERMINATED_WITH_ERROR] = " (closed: error)",
      [MHD_REQUEST_TERMINATED_TIMEOUT_REACHED] = " (closed: timeout)",
      [MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN] = " (closed: shutdown)",
      [MHD_REQUEST_TERMINATED_READ_ERROR] = " (closed: read error)",
      [MHD_REQUEST_TERMINATED_CLIENT_ABORT] = " (closed by the client)",
  };
  const char *ending = (unsigned)code < sizeof ENDINGS / sizeof ENDINGS[0] && ENDINGS[code]
                           ? ENDINGS[code]
                           : " (closed)";
  /* Never a header or the query string: only what cannot hold a secret. */
  fprintf(stderr, "qreg serve: %s \"%s %s\" %u %.1fms%s\n", req->peer, req->method, req->path,
          req->status, seconds * 1000, ending);
  server->requests_in_flight--;
  heap_remove(server, req); /* only ever there while suspended; for safety */
  http_mcp_request_done(req);
  pthread_mutex_lock(&server->ready_mutex);
  bool release = request_unref_locked(req);
  pthread_mutex_unlock(&server->ready_mutex);
  if (release)
    request_free(req);
}

void http_connection_notify(void *cls, struct MHD_Connection *connection, void **socket_cls,
                            enum MHD_ConnectionNotificationCode code) {
  (void)connection;
  (void)socket_cls;
  http_server_t *server = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    server->metrics.connections_accepted++;
  else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
    server->metrics.connections_closed++;
}
