/*
 * src/mcp/tools.c - the eight tools of `qreg mcp`: argument checking,
 * handlers, and the JSON forms of snapshots and result pages. Their
 * definitions (schemas and descriptions) are tool_definitions.c.
 *
 * Every tool answers with a CallToolResult: structuredContent (matching the
 * tool's outputSchema) plus the same JSON as text for clients that only show
 * text. Mistakes a model can correct (bad arguments, unknown query ids, SQL
 * errors) are results with isError and a JSON error object as text, never
 * protocol errors. A result never exceeds the call's byte budget: pages and
 * lists stop early and say where to continue.
 *
 * Owns nothing across calls; each handler frees what it takes from the registry.
 */
#include "mcp/tools.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows a page holds when the caller does not say (fetch and task results);
   the limits are in tools.h, shared with the definitions. */
#define TOOLS_DEFAULT_PAGE_ROWS 100
#define TOOLS_DEFAULT_LIST_LIMIT 20
/* Catalog queries (list_tables, describe_table) are short-lived bookkeeping:
   they give up sooner and are pruned sooner than user queries. */
#define TOOLS_CATALOG_TIMEOUT_MS UINT64_C(30000)
#define TOOLS_CATALOG_TTL_MS UINT64_C(60000)
#define TOOLS_CATALOG_MAX_ROWS 10000
/* timeout_seconds above a year is a typo, not a wish. */
#define TOOLS_MAX_TIMEOUT_S 31536000.0

/* --- results ---------------------------------------------------------------------- */

/* A successful CallToolResult: structured (stolen) plus the same JSON as
   text. The text is exactly the compact serialization of structuredContent
   (tools.h): protocol.c writes it in place of a second serialization. So
   nothing may change structured once it is here. The text comes from one
   pass into a buffer and is taken without a second UTF-8 check: jansson
   wrote it from strings it had checked already. */
static json_t *ok_result(json_t *structured) {
  mcp_out_t out;
  mcp_out_init(&out, 1024);
  mcp_out_json(&out, structured);
  size_t len = 0;
  char *text = mcp_out_take(&out, &len);
  if (!text) {
    /* Out of memory: an empty answer, still true to the contract. */
    json_decref(structured);
    structured = json_object();
  }
  json_t *item = json_object();
  json_object_set_new_nocheck(item, "type", json_string_nocheck("text"));
  json_object_set_new_nocheck(item, "text",
                              text ? json_stringn_nocheck(text, len) : json_string_nocheck("{}"));
  free(text);
  json_t *content = json_array();
  json_array_append_new(content, item);
  json_t *result = json_object();
  json_object_set_new_nocheck(result, "content", content);
  json_object_set_new_nocheck(result, "structuredContent", structured);
  json_object_set_new_nocheck(result, "isError", json_false());
  return result;
}

json_t *mcp_tools_error_result(const char *type, const char *code, const char *message) {
  json_t *error =
      json_pack("{s:s, s:o}", "type", type, "message", mcp_json_text(message, strlen(message)));
  if (code && code[0])
    json_object_set_new(error, "code", mcp_json_text(code, strlen(code)));
  json_t *wrapper = json_pack("{s:o}", "error", error);
  char *text = json_dumps(wrapper, JSON_COMPACT);
  json_decref(wrapper);
  json_t *result = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                             text ? text : message, "isError", 1);
  free(text);
  return result;
}

__attribute__((format(printf, 1, 2))) static json_t *invalid_argument(const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  return mcp_tools_error_result("invalid_argument", NULL, message);
}

/* The error type a tool result gives for a registry error code. */
static const char *registry_error_type(int code) {
  const char *type;
  switch (code) {
  case QREG_ENOTFOUND:
    type = "not_found";
    break;
  case QREG_EINVAL:
    type = "invalid_argument";
    break;
  case QREG_EFULL:
    type = "too_many_queries";
    break;
  case QREG_ETOOBIG:
    type = "sql_too_large";
    break;
  case QREG_ECLOSED:
    type = "closed";
    break;
  case QREG_ENOTREADY:
    type = "not_ready";
    break;
  case QREG_ERANGE:
    type = "out_of_range";
    break;
  default:
    type = "internal";
    break;
  }
  return type;
}

/* A registry failure as a tool error. The message is copied at once:
   qreg_last_error() lasts only until the next qreg call on this thread. */
static json_t *registry_error(int code, const char *what) {
  const char *detail = qreg_last_error();
  char message[768];
  snprintf(message, sizeof message, "%s: %s", what, detail[0] ? detail : qreg_strerror(code));
  return mcp_tools_error_result(registry_error_type(code), NULL, message);
}

/* The same for a code a watch reported (a wait that ended on close or on a
   pruned query): this thread's qreg_last_error() is about something else. */
static json_t *wait_error(int code, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, qreg_strerror(code));
  return mcp_tools_error_result(registry_error_type(code), NULL, message);
}

/* Builds ok_result(structured) after trimming structured[key] (an array)
   from its end until the result fits budget; sets "truncated" when it trims.
   Used where a shorter answer is still right (catalog lists). */
static json_t *ok_result_trimmed(json_t *structured, const char *key, size_t budget) {
  json_t *array = json_object_get(structured, key);
  json_t *result = ok_result(json_incref(structured));
  while (mcp_json_size(result) > budget && json_array_size(array) > 0) {
    size_t size = mcp_json_size(result);
    size_t n = json_array_size(array);
    size_t keep = (size_t)((double)n * (double)budget / (double)size * 0.9);
    if (keep >= n)
      keep = n - 1;
    while (json_array_size(array) > keep)
      json_array_remove(array, json_array_size(array) - 1);
    json_object_set_new(structured, "truncated", json_true());
    json_decref(result);
    result = ok_result(json_incref(structured));
  }
  json_decref(structured);
  return result;
}

/*
 * Puts as many rows of page as fit into structured (stolen) and returns the
 * result: "rows", "row_count", "has_more", "next_offset", and why the stored
 * result was cut ("truncated_by", "truncation_hint"; max_result_bytes is the
 * query's cap, for the hint). The estimate from
 * row sizes is checked against the real size and shrunk until it fits.
 */
static json_t *page_result(json_t *structured, const qreg_page_t *page, size_t budget,
                           uint64_t max_result_bytes) {
  size_t total = (size_t)page->row_count;
  json_t *all_rows = json_array();
  size_t *sizes = calloc(total ? total : 1, sizeof *sizes);
  for (size_t r = 0; r < total; r++) {
    json_t *row = json_array();
    for (size_t c = 0; c < page->column_count; c++)
      json_array_append_new(row, mcp_json_value(&page->values[r * page->column_count + c]));
    if (sizes)
      sizes[r] = mcp_json_size(row) + 1;
    json_array_append_new(all_rows, row);
  }
  json_object_set_new(structured, "offset", json_integer((json_int_t)page->offset));
  json_object_set_new(structured, "total_rows", json_integer((json_int_t)page->total_rows));
  json_object_set_new(structured, "truncated", json_boolean(page->truncated));
  mcp_json_set_truncation(structured, page->truncated_by, page->total_rows, max_result_bytes);
  /* The rows appear twice (structuredContent and its text, where every quote
     is escaped): start from what that estimate allows. */
  size_t base = mcp_json_size(structured) * 2 + 256;
  size_t n = 0;
  size_t used = base;
  while (n < total && sizes && used + sizes[n] * 2 + sizes[n] / 4 <= budget) {
    used += sizes[n] * 2 + sizes[n] / 4;
    n++;
  }
  if (!sizes)
    n = total;
  json_t *result = NULL;
  for (;;) {
    json_t *rows = json_array();
    for (size_t r = 0; r < n; r++)
      json_array_append(rows, json_array_get(all_rows, r));
    bool has_more = n < total || page->has_more;
    json_object_set_new(structured, "rows", rows);
    json_object_set_new(structured, "row_count", json_integer((json_int_t)n));
    json_object_set_new(structured, "has_more", json_boolean(has_more));
    json_object_set_new(structured, "next_offset",
                        has_more ? json_integer((json_int_t)page->offset + (json_int_t)n)
                                 : json_null());
    result = ok_result(json_incref(structured));
    size_t size = mcp_json_size(result);
    if (size <= budget || n == 0)
      break;
    json_decref(result);
    size_t shrunk = (size_t)((double)n * (double)budget / (double)size * 0.95);
    n = shrunk < n ? shrunk : n - 1;
  }
  if (n == 0 && total > 0) {
    json_decref(result);
    char message[256];
    snprintf(message, sizeof message,
             "the row at offset %llu alone is larger than the response limit of %zu bytes "
             "(qreg mcp --max-response-bytes)",
             (unsigned long long)page->offset, budget);
    result = mcp_tools_error_result("row_too_large", NULL, message);
  }
  free(sizes);
  json_decref(all_rows);
  json_decref(structured);
  return result;
}

/* A succeeded query whose rows were evicted under memory pressure. */
static json_t *evicted_error(const qreg_snapshot_t *snap) {
  char message[512];
  snprintf(message, sizeof message,
           "query %s succeeded with %llu rows, but its result was evicted under memory pressure "
           "(other queries needed the memory): run the query again, and free results you no "
           "longer need with forget_query",
           snap->id.str, (unsigned long long)snap->row_count);
  return mcp_tools_error_result("result_evicted", NULL, message);
}

/* --- arguments -------------------------------------------------------------------- */

/* NULL if every member of args is one of names; else the first that is not. */
static const char *unknown_argument(json_t *args, const char *const *names) {
  const char *key;
  json_t *value;
  json_object_foreach(args, key, value) {
    bool known = false;
    for (const char *const *n = names; *n; n++)
      if (strcmp(key, *n) == 0)
        known = true;
    if (!known)
      return key;
  }
  return NULL;
}

/* Looks up a string argument without NUL bytes. 1 found, 0 absent, -1 wrong
   type (*error set). */
static int arg_string(json_t *args, const char *name, const char **out, size_t *len,
                      json_t **error) {
  json_t *value = json_object_get(args, name);
  if (!value || json_is_null(value))
    return 0;
  if (!json_is_string(value)) {
    *error = invalid_argument("%s: expected a string", name);
    return -1;
  }
  *out = json_string_value(value);
  *len = json_string_length(value);
  return 1;
}

/* A whole number in [min, max]. 1 found, 0 absent, -1 invalid (*error set). */
static int arg_count(json_t *args, const char *name, uint64_t min, uint64_t max, uint64_t *out,
                     json_t **error) {
  json_t *value = json_object_get(args, name);
  if (!value || json_is_null(value))
    return 0;
  double number;
  if (json_is_integer(value))
    number = (double)json_integer_value(value);
  else if (json_is_real(value) && json_real_value(value) == floor(json_real_value(value)))
    number = json_real_value(value);
  else
    number = -1;
  if (number < (double)min || number > (double)max) {
    *error = invalid_argument("%s: expected a whole number from %llu to %llu", name,
                              (unsigned long long)min, (unsigned long long)max);
    return -1;
  }
  *out = json_is_integer(value) ? (uint64_t)json_integer_value(value) : (uint64_t)number;
  return 1;
}

/* The query_id argument: required, the id of a query. */
static bool arg_query_id(json_t *args, const char **id, json_t **error) {
  size_t len = 0;
  int found = arg_string(args, "query_id", id, &len, error);
  if (found < 0)
    return false;
  if (found == 0) {
    *error = invalid_argument("query_id: required (the id execute_query returned)");
    return false;
  }
  if (len != QREG_ID_LEN || strlen(*id) != len) {
    *error = mcp_tools_error_result("not_found", NULL,
                                    "query_id: not a query id (ids are 36-character UUIDs "
                                    "returned by execute_query)");
    return false;
  }
  return true;
}

/* --- execute_query ----------------------------------------------------------------- */

/* A wait_seconds argument: absent (*wait_ms unchanged), or seconds from 0
   to TOOLS_MAX_WAIT_S. -1 with *error set when invalid. */
static int arg_wait(json_t *args, uint64_t *wait_ms, json_t **error) {
  json_t *value = json_object_get(args, "wait_seconds");
  if (!value || json_is_null(value))
    return 0;
  double seconds = json_number_value(value);
  if (!json_is_number(value) || !(seconds >= 0) || seconds > TOOLS_MAX_WAIT_S) {
    *error = invalid_argument("wait_seconds: expected a number from 0 to %d (0: answer at once; "
                              "to wait longer, call fetch_query_result with wait_seconds again)",
                              TOOLS_MAX_WAIT_S);
    return -1;
  }
  *wait_ms = (uint64_t)ceil(seconds * 1000.0);
  return 1;
}

int mcp_tools_submit_query(mcp_call_t *call, json_t *args, uint64_t ttl_ms, qreg_id_t *id,
                           uint64_t *wait_ms, json_t **tool_error) {
  static const char *const names[] = {"sql",          "timeout_seconds",  "max_rows",
                                      "wait_seconds", "max_result_bytes", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown) {
    *tool_error = invalid_argument("unknown argument '%s' (execute_query takes sql, "
                                   "wait_seconds, timeout_seconds, max_rows, max_result_bytes)",
                                   unknown);
    return -1;
  }
  const char *sql = NULL;
  size_t sql_len = 0;
  int found = arg_string(args, "sql", &sql, &sql_len, tool_error);
  if (found < 0)
    return -1;
  if (found == 0) {
    *tool_error = invalid_argument("sql: required (one SQL statement)");
    return -1;
  }
  qreg_options_t options;
  qreg_options_init(&options);
  json_t *timeout = json_object_get(args, "timeout_seconds");
  if (timeout && !json_is_null(timeout)) {
    double seconds = json_number_value(timeout);
    if (!json_is_number(timeout) || !(seconds > 0) || seconds > TOOLS_MAX_TIMEOUT_S) {
      *tool_error = invalid_argument("timeout_seconds: expected a number above 0 and at "
                                     "most a year");
      return -1;
    }
    options.timeout_ms = (uint64_t)ceil(seconds * 1000.0);
  }
  if (arg_count(args, "max_rows", 1, UINT64_C(1000000000), &options.max_rows, tool_error) < 0)
    return -1;
  uint64_t max_result_bytes = 0;
  if (arg_count(args, "max_result_bytes", 1, INT64_MAX, &max_result_bytes, tool_error) < 0)
    return -1;
  options.max_result_bytes = (size_t)max_result_bytes;
  if (wait_ms && arg_wait(args, wait_ms, tool_error) < 0)
    return -1;
  options.ttl_ms = ttl_ms;
  options.allow_writes = call->server->sources[call->source].allow_writes;
  int rc = qreg_execute_n(call->reg, sql, sql_len, &options, id);
  if (rc < 0) {
    *tool_error = registry_error(rc, "execute_query");
    return -1;
  }
  return 0;
}

/* What a model should do next with a query that is still running after a
   wait, or whose stored result was cut. */
static void add_next_step(json_t *structured, const qreg_snapshot_t *snap) {
  char text[512];
  if (!qreg_status_is_terminal(snap->status)) {
    snprintf(text, sizeof text,
             "The query is still %s after %lld ms. Call fetch_query_result with this query_id "
             "and wait_seconds (up to %d) to get its rows as soon as it finishes; "
             "cancel_query stops it.",
             qreg_status_name(snap->status), (long long)snap->elapsed_ms, TOOLS_MAX_WAIT_S);
  } else if (snap->status == QREG_FAILED) {
    snprintf(text, sizeof text,
             "The query failed (see error). Fix the SQL and run it again: list_tables, "
             "describe_table and search_columns show the real table and column names, and "
             "the database's dialect.");
  } else if (snap->status == QREG_TIMEOUT) {
    snprintf(text, sizeof text,
             "The query ran out of time. Run it again with a larger timeout_seconds, or make "
             "it cheaper (a WHERE on an indexed column, a LIMIT, an aggregate).");
  } else if (snap->status == QREG_SUCCEEDED && snap->truncated) {
    snprintf(text, sizeof text,
             "The stored result was cut at %llu rows (the max_rows cap or the server's result "
             "memory): rows after that were not kept. To see them, run the query again with a "
             "larger max_rows, fewer columns, an aggregate, or a LIMIT/OFFSET or WHERE that "
             "selects the part you need.",
             (unsigned long long)snap->row_count);
  } else {
    return;
  }
  json_object_set_new(structured, "next_step", json_string(text));
}

/* execute_query's wait, over: the outcome when the query has settled, its
   status and query_id (and what to do next) when it is still running. */
static json_t *execute_query_resume(mcp_call_t *call, const char *query_id, int rc,
                                    qreg_status_t status) {
  (void)status;
  mcp_call_detach_query(call); /* answered now: the query is the client's */
  if (rc < 0 && rc != QREG_ETIMEDOUT && rc != QREG_ECLOSED)
    return wait_error(rc, "execute_query");
  json_t *result = mcp_tools_query_outcome(call, query_id, call->budget);
  if (!result) {
    /* Not a protocol error for a plain tool call: the query is gone. */
    free(call->error_message);
    call->error_message = NULL;
    call->error_code = 0;
    return mcp_tools_error_result("not_found", NULL,
                                  "execute_query: the query was forgotten before it could be "
                                  "read (the server is closing or the query expired)");
  }
  return result;
}

static json_t *tool_execute_query(mcp_call_t *call, json_t *args) {
  qreg_id_t id;
  json_t *error = NULL;
  uint64_t wait_ms = call->server->settings.wait_ms;
  if (mcp_tools_submit_query(call, args, 0, &id, &wait_ms, &error) < 0)
    return error;
  /* While the call waits, notifications/cancelled for it stops the query
     too: nobody is left to read it. */
  if (wait_ms > 0 && !mcp_call_attach_query(call, id.str)) {
    (void)qreg_cancel_async(call->reg, id.str, NULL);
    return mcp_tools_error_result("canceled", NULL, "request cancelled by the client");
  }
  /* Parked, not on a thread: the reader answers when the query settles or
     when wait_ms has passed, whichever comes first. */
  return mcp_call_await_for(call, id.str, wait_ms, execute_query_resume);
}

json_t *mcp_tools_query_outcome(mcp_call_t *call, const char *query_id, size_t budget) {
  qreg_snapshot_t *snap = NULL;
  int rc = qreg_snapshot(call->reg, query_id, &snap);
  if (rc == QREG_ENOTFOUND) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL,
                  "Failed to retrieve task: task not found (it expired or never existed)");
    return NULL;
  }
  if (rc < 0) {
    /* Not the caller's mistake: the registry is closing (end of input, a
       signal) or out of memory. */
    mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL, "Internal error: %s", qreg_strerror(rc));
    return NULL;
  }
  json_t *structured =
      json_pack("{s:s, s:s, s:I}", "query_id", snap->id.str, "status",
                qreg_status_name(snap->status), "elapsed_ms", (json_int_t)snap->elapsed_ms);
  add_next_step(structured, snap);
  json_t *result;
  if (snap->status == QREG_SUCCEEDED) {
    json_object_set_new(structured, "columns", mcp_json_columns(snap->columns, snap->column_count));
    qreg_page_t *page = NULL;
    rc = qreg_fetch(call->reg, query_id, 0, TOOLS_DEFAULT_PAGE_ROWS, &page);
    if (rc == 0) {
      result = page_result(structured, page, budget, snap->max_result_bytes);
      qreg_page_free(page);
    } else if (snap->result_evicted) {
      json_decref(structured);
      result = evicted_error(snap);
    } else {
      json_decref(structured);
      result = registry_error(rc, "reading the result");
    }
  } else if (qreg_status_is_terminal(snap->status)) {
    json_object_set_new(structured, "error", mcp_json_error(snap));
    result = ok_result(structured);
    json_object_set_new(result, "isError", json_true());
  } else {
    result = ok_result(structured);
  }
  qreg_snapshot_free(snap);
  return result;
}

/* The arguments of a tool that takes a query id and nothing else: NULL with
   *id set, or the error result to return. */
static json_t *only_query_id(json_t *args, const char *tool, const char **id) {
  static const char *const names[] = {"query_id", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (%s takes query_id)", unknown, tool);
  json_t *error = NULL;
  if (!arg_query_id(args, id, &error))
    return error;
  return NULL;
}

/* --- get_query_status, cancel_query, fetch_query_result, list_queries ------------------ */

static json_t *query_status_resume(mcp_call_t *call, const char *id, int rc, qreg_status_t status) {
  (void)status; /* the snapshot says what there is to say of the query now */
  qreg_snapshot_t *snap = NULL;
  rc = qreg_snapshot(call->reg, id, &snap);
  if (rc < 0)
    return registry_error(rc, "get_query_status");
  json_t *result = ok_result(mcp_json_snapshot(snap, true));
  qreg_snapshot_free(snap);
  return result;
}

static json_t *tool_get_query_status(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"query_id", "wait_seconds", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (get_query_status takes query_id, "
                            "wait_seconds)",
                            unknown);
  const char *id = NULL;
  json_t *error = NULL;
  uint64_t wait_ms = 0;
  if (!arg_query_id(args, &id, &error) || arg_wait(args, &wait_ms, &error) < 0)
    return error;
  qreg_snapshot_t *snap = NULL;
  int rc = qreg_snapshot(call->reg, id, &snap);
  if (rc < 0)
    return registry_error(rc, "get_query_status");
  bool settled = qreg_status_is_terminal(snap->status);
  qreg_snapshot_free(snap);
  if (settled || wait_ms == 0)
    return query_status_resume(call, id, 0, QREG_PENDING);
  return mcp_call_await_for(call, id, wait_ms, query_status_resume);
}

static json_t *cancel_query_answer(const char *id, bool canceled, qreg_status_t status) {
  return ok_result(json_pack("{s:s, s:b, s:s}", "query_id", id, "canceled", canceled, "status",
                             qreg_status_name(status)));
}

/* cancel_query, once the query this call stopped has settled: status is its
   final one (canceled, or what a completion that won the race made it). */
static json_t *cancel_query_resume(mcp_call_t *call, const char *id, int rc, qreg_status_t status) {
  (void)call;
  if (rc < 0 && rc != QREG_ECLOSED)
    return wait_error(rc, "cancel_query"); /* pruned before it settled: no status left */
  return cancel_query_answer(id, status == QREG_CANCELED, status);
}

static json_t *tool_cancel_query(mcp_call_t *call, json_t *args) {
  const char *id = NULL;
  json_t *error = only_query_id(args, "cancel_query", &id);
  if (error)
    return error;
  qreg_snapshot_t *snap = NULL;
  int rc = qreg_snapshot(call->reg, id, &snap);
  if (rc < 0)
    return registry_error(rc, "cancel_query");
  qreg_status_t status = snap->status;
  bool was_terminal = qreg_status_is_terminal(status);
  qreg_snapshot_free(snap);
  if (was_terminal)
    return cancel_query_answer(id, false, status);
  rc = qreg_cancel_async(call->reg, id, &status);
  if (rc < 0)
    return registry_error(rc, "cancel_query");
  /* The answer promises the query stopped and its connection released: it
     waits for that parked, not on a thread. */
  return mcp_call_await(call, id, cancel_query_resume);
}

/* fetch_query_result's wait, over (or none was needed): the call's
   arguments were checked the first time; read them again. */
static json_t *fetch_query_result_resume(mcp_call_t *call, const char *id, int rc,
                                         qreg_status_t status) {
  (void)rc; /* qreg_fetch() says what there is to say of the query now */
  (void)status;
  json_t *args = mcp_call_param(call, "arguments");
  uint64_t offset = 0;
  uint64_t limit = TOOLS_DEFAULT_PAGE_ROWS;
  json_t *error = NULL;
  if (arg_count(args, "offset", 0, INT64_MAX, &offset, &error) < 0 ||
      arg_count(args, "limit", 1, TOOLS_MAX_PAGE_ROWS, &limit, &error) < 0)
    return error;
  qreg_page_t *page = NULL;
  rc = qreg_fetch(call->reg, id, offset, limit, &page);
  if (rc == QREG_ENORESULT || rc == QREG_ENOTREADY) {
    /* Say why there is nothing to fetch, with the query's own error. */
    qreg_snapshot_t *snap = NULL;
    if (qreg_snapshot(call->reg, id, &snap) < 0)
      return registry_error(rc, "fetch_query_result");
    char message[1024];
    json_t *result;
    if (rc == QREG_ENOTREADY) {
      snprintf(message, sizeof message,
               "query %s is still %s after %lld ms: no result yet. Call fetch_query_result "
               "again with wait_seconds (up to %d) to wait for it, or cancel_query to stop it",
               id, qreg_status_name(snap->status), (long long)snap->elapsed_ms, TOOLS_MAX_WAIT_S);
      result = mcp_tools_error_result("not_ready", NULL, message);
    } else if (snap->result_evicted) {
      result = evicted_error(snap);
    } else if (snap->has_error) {
      snprintf(message, sizeof message, "query %s ended %s: %s", id, qreg_status_name(snap->status),
               snap->error.message);
      result = mcp_tools_error_result(snap->error.type[0] ? snap->error.type : "no_result",
                                      snap->error.code, message);
    } else {
      snprintf(message, sizeof message, "query %s ended %s without a result", id,
               qreg_status_name(snap->status));
      result = mcp_tools_error_result("no_result", NULL, message);
    }
    qreg_snapshot_free(snap);
    return result;
  }
  if (rc < 0)
    return registry_error(rc, "fetch_query_result");
  json_t *structured = json_pack("{s:s, s:o}", "query_id", id, "columns",
                                 mcp_json_columns(page->columns, page->column_count));
  /* The query's cap, for the hint of a result cut by it; and what to do
     next once the last page of a cut result is read. */
  uint64_t max_result_bytes = 0;
  if (page->truncated) {
    qreg_snapshot_t *snap = NULL;
    if (qreg_snapshot(call->reg, id, &snap) == 0) {
      max_result_bytes = snap->max_result_bytes;
      if (offset + page->row_count >= page->total_rows)
        add_next_step(structured, snap);
    }
    qreg_snapshot_free(snap);
  }
  json_t *result = page_result(structured, page, call->budget, max_result_bytes);
  qreg_page_free(page);
  return result;
}

/* forget_query: idempotent - an id already forgotten (or pruned) answers
   forgotten: false, not an error. */
static json_t *tool_forget_query(mcp_call_t *call, json_t *args) {
  const char *id = NULL;
  json_t *error = only_query_id(args, "forget_query", &id);
  if (error)
    return error;
  qreg_snapshot_t *snap = NULL;
  int rc = qreg_snapshot(call->reg, id, &snap);
  if (rc == QREG_ENOTFOUND)
    return ok_result(json_pack("{s:s, s:b, s:n, s:I}", "query_id", id, "forgotten", 0, "status",
                               "freed_bytes", (json_int_t)0));
  if (rc < 0)
    return registry_error(rc, "forget_query");
  qreg_status_t status = snap->status;
  uint64_t bytes = snap->result_bytes;
  qreg_snapshot_free(snap);
  rc = qreg_forget(call->reg, id);
  if (rc == QREG_ENOTFOUND) /* forgotten meanwhile (pruned, another call) */
    return ok_result(json_pack("{s:s, s:b, s:n, s:I}", "query_id", id, "forgotten", 0, "status",
                               "freed_bytes", (json_int_t)0));
  if (rc < 0)
    return registry_error(rc, "forget_query");
  return ok_result(json_pack("{s:s, s:b, s:s, s:I}", "query_id", id, "forgotten", 1, "status",
                             qreg_status_name(status), "freed_bytes", (json_int_t)bytes));
}

static json_t *tool_fetch_query_result(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"query_id", "offset", "limit", "wait_seconds", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (fetch_query_result takes query_id, offset, "
                            "limit, wait_seconds)",
                            unknown);
  const char *id;
  json_t *error = NULL;
  if (!arg_query_id(args, &id, &error))
    return error;
  uint64_t offset = 0;
  uint64_t limit = TOOLS_DEFAULT_PAGE_ROWS;
  uint64_t wait_ms = call->server->settings.wait_ms;
  if (arg_count(args, "offset", 0, INT64_MAX, &offset, &error) < 0 ||
      arg_count(args, "limit", 1, TOOLS_MAX_PAGE_ROWS, &limit, &error) < 0 ||
      arg_wait(args, &wait_ms, &error) < 0)
    return error;
  /* An unknown id is answered at once (the wait would say the same). */
  return mcp_call_await_for(call, id, wait_ms, fetch_query_result_resume);
}

static json_t *tool_list_queries(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"status", "cursor", "limit", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (list_queries takes status, cursor, limit)",
                            unknown);
  json_t *error = NULL;
  qreg_list_filter_t filter = {.newest_first = true, .limit = TOOLS_DEFAULT_LIST_LIMIT};
  const char *status_name;
  size_t len;
  int found = arg_string(args, "status", &status_name, &len, &error);
  if (found < 0)
    return error;
  if (found > 0) {
    qreg_status_t status;
    if (qreg_status_parse(status_name, &status) < 0)
      return invalid_argument("status: expected pending, running, succeeded, failed, canceled "
                              "or timeout");
    filter.status_mask = 1u << status;
  }
  found = arg_string(args, "cursor", &filter.cursor, &len, &error);
  if (found < 0)
    return error;
  uint64_t limit = TOOLS_DEFAULT_LIST_LIMIT;
  if (arg_count(args, "limit", 1, TOOLS_MAX_LIST_LIMIT, &limit, &error) < 0)
    return error;
  filter.limit = (size_t)limit;
  /* A shorter page is asked for again until the answer fits: the registry's
     cursor then points right after what was shown. */
  for (;;) {
    qreg_list_t *list = NULL;
    int rc = qreg_list(call->reg, &filter, &list);
    if (rc < 0)
      return registry_error(rc, "list_queries");
    json_t *queries = json_array();
    for (size_t i = 0; i < list->count; i++)
      json_array_append_new(queries, mcp_json_snapshot(list->items[i], false));
    json_t *structured =
        json_pack("{s:o, s:o}", "queries", queries, "next_cursor",
                  list->next_cursor ? json_string(list->next_cursor) : json_null());
    qreg_list_free(list);
    json_t *result = ok_result(structured);
    size_t size = mcp_json_size(result);
    if (size <= call->budget || filter.limit <= 1)
      return result;
    json_decref(result);
    filter.limit /= 2;
  }
}

/* --- catalog: the exploration tools ----------------------------------------------- */

/* A catalog tool's call, back from its wait: the tool runs again from the
   top, and this time run_catalog() finds its query settled. */
static json_t *catalog_resume(mcp_call_t *call, const char *query_id, int rc,
                              qreg_status_t status) {
  (void)query_id; /* run_catalog() reads them from the call */
  (void)rc;
  (void)status;
  json_t *arguments = mcp_call_param(call, "arguments");
  return mcp_tools_call(call, json_string_value(mcp_call_param(call, "name")),
                        json_is_object(arguments) ? arguments : NULL);
}

/* Runs a catalog request through the registry on behalf of the call (so
   notifications/cancelled stops it): the driver writes the SQL, the names
   are its to quote. Returns the whole result, or NULL with *error set. In
   two passes, and no thread waits between them: the first submits the
   request, parks the call and returns NULL with *error NULL (the tool then
   returns NULL: no answer yet); when the query settles the tool runs again
   from the top (catalog_resume) and the second pass returns the result. */
static qreg_page_t *run_catalog(mcp_call_t *call, const qreg_catalog_request_t *request,
                                const char *tool, json_t **error) {
  qreg_t *reg = call->reg;
  qreg_id_t id;
  int rc;
  *error = NULL;
  if (!call->has_query) {
    qreg_options_t options;
    qreg_options_init(&options);
    uint64_t timeout_ms = call->server->sources[call->source].timeout_ms;
    options.timeout_ms =
        timeout_ms && timeout_ms < TOOLS_CATALOG_TIMEOUT_MS ? timeout_ms : TOOLS_CATALOG_TIMEOUT_MS;
    options.ttl_ms = TOOLS_CATALOG_TTL_MS;
    options.max_rows = TOOLS_CATALOG_MAX_ROWS;
    rc = qreg_catalog(reg, request, &options, &id);
    if (rc < 0) {
      *error =
          rc == QREG_EINVAL ? invalid_argument("%s", qreg_last_error()) : registry_error(rc, tool);
      return NULL;
    }
    if (!mcp_call_attach_query(call, id.str)) {
      (void)qreg_cancel_async(reg, id.str, NULL);
      *error = mcp_tools_error_result("canceled", NULL, "request cancelled by the client");
    } else if (!mcp_call_park(call, id.str, catalog_resume)) {
      /* Refused (too many waits): the call answers with that error. */
      mcp_call_detach_query(call);
      (void)qreg_cancel_async(reg, id.str, NULL);
    }
    return NULL;
  }
  /* Second pass: the query has settled; the watch said how. */
  id = call->query;
  rc = call->awaited_rc;
  qreg_status_t status = call->awaited_status;
  mcp_call_detach_query(call);
  if (rc != 0) {
    *error = wait_error(rc, tool);
    return NULL;
  }
  if (status != QREG_SUCCEEDED) {
    qreg_snapshot_t *snap = NULL;
    char message[1024];
    if (qreg_snapshot(reg, id.str, &snap) == 0 && snap->has_error) {
      snprintf(message, sizeof message, "%s: the catalog query ended %s: %s", tool,
               qreg_status_name(status), snap->error.message);
      *error = mcp_tools_error_result(snap->error.type[0] ? snap->error.type : "database",
                                      snap->error.code, message);
    } else {
      snprintf(message, sizeof message, "%s: the catalog query ended %s", tool,
               qreg_status_name(status));
      *error = mcp_tools_error_result(qreg_status_name(status), NULL, message);
    }
    qreg_snapshot_free(snap);
    return NULL;
  }
  qreg_page_t *page = NULL;
  rc = qreg_fetch(reg, id.str, 0, 0, &page);
  if (rc < 0) {
    *error = registry_error(rc, tool);
    return NULL;
  }
  return page;
}

/* The index of the page's column named name, or SIZE_MAX: a catalog's
   columns are read by name, so a driver that has fewer (an older or a
   smaller one) gives nulls, never a read past the row. */
static size_t page_column(const qreg_page_t *page, const char *name) {
  for (size_t c = 0; c < page->column_count; c++)
    if (strcmp(page->columns[c].name, name) == 0)
      return c;
  return SIZE_MAX;
}

static const qreg_value_t *cell(const qreg_page_t *page, size_t row, const char *name) {
  size_t column = page_column(page, name);
  return column == SIZE_MAX ? NULL : &page->values[row * page->column_count + column];
}

/* A catalog value as a plain JSON value the tool can read back (null when
   the column is missing): names, types and counts are text, integers,
   booleans; anything else is written by the one encoder. */
static json_t *cell_json(const qreg_page_t *page, size_t row, const char *name) {
  const qreg_value_t *v = cell(page, row, name);
  switch (v ? v->type : QREG_TYPE_NULL) {
  case QREG_TYPE_NULL:
    return json_null();
  case QREG_TYPE_TEXT:
    return mcp_json_text(v->v.s.ptr, v->v.s.len);
  case QREG_TYPE_BOOL:
    return json_boolean(v->v.b);
  case QREG_TYPE_INT:
    if (v->v.i <= INT64_C(9007199254740991) && v->v.i >= -INT64_C(9007199254740991))
      return json_integer((json_int_t)v->v.i);
    return mcp_json_value(v);
  case QREG_TYPE_FLOAT:
    if (isfinite(v->v.f))
      return json_real(v->v.f);
    return mcp_json_value(v);
  default:
    return mcp_json_value(v);
  }
}

static bool cell_true(const qreg_page_t *page, size_t row, const char *name) {
  const qreg_value_t *v = cell(page, row, name);
  switch (v ? v->type : QREG_TYPE_NULL) {
  case QREG_TYPE_INT:
    return v->v.i != 0;
  case QREG_TYPE_BOOL:
    return v->v.b;
  case QREG_TYPE_TEXT:
    return v->v.s.len > 0 && (v->v.s.ptr[0] == 't' || v->v.s.ptr[0] == 'Y' ||
                              v->v.s.ptr[0] == 'y' || v->v.s.ptr[0] == '1');
  default:
    return false;
  }
}

/* A text cell's string, or NULL (NULL value, other type, missing column). */
static const char *cell_text(const qreg_page_t *page, size_t row, const char *name) {
  const qreg_value_t *v = cell(page, row, name);
  return v && (v->type == QREG_TYPE_TEXT || v->type == QREG_TYPE_JSON) ? v->v.s.ptr : NULL;
}

/* A ", "-separated list cell as an array of strings (null for NULL). */
static json_t *cell_list(const qreg_page_t *page, size_t row, const char *name) {
  const char *text = cell_text(page, row, name);
  if (!text)
    return json_null();
  json_t *list = json_array();
  while (*text) {
    const char *end = strstr(text, ", ");
    size_t len = end ? (size_t)(end - text) : strlen(text);
    json_array_append_new(list, mcp_json_text(text, len));
    text += len + (end ? 2 : 0);
  }
  return list;
}

/* A catalog name argument: absent (NULL), or a string without NUL bytes.
   -1 with *error set otherwise. */
static int arg_name(json_t *args, const char *key, const char **out, json_t **error) {
  size_t len = 0;
  int found = arg_string(args, key, out, &len, error);
  if (found < 0)
    return -1;
  if (found > 0 && strlen(*out) != len) {
    *error = invalid_argument("%s: contains a NUL byte", key);
    return -1;
  }
  return found;
}

/* The table argument (required) and schema (optional) of a table tool. */
static bool arg_table(json_t *args, qreg_catalog_request_t *request, json_t **error) {
  int found = arg_name(args, "table", &request->table, error);
  if (found < 0)
    return false;
  if (found == 0 || request->table[0] == '\0') {
    *error = invalid_argument("table: required (a table or view name as list_tables gives it)");
    return false;
  }
  return arg_name(args, "schema", &request->schema, error) >= 0;
}

/* An optional array of column names (at most QREG_CATALOG_MAX_COLUMNS),
   borrowed from args into names (which has room for that many). Returns the
   count, 0 when absent, -1 with *error set. */
static int arg_columns(json_t *args, const char **names, json_t **error) {
  json_t *list = json_object_get(args, "columns");
  if (!list || json_is_null(list))
    return 0;
  if (!json_is_array(list) || json_array_size(list) == 0 ||
      json_array_size(list) > QREG_CATALOG_MAX_COLUMNS) {
    *error = invalid_argument("columns: expected an array of 1 to %d column names "
                              "(describe_table lists them)",
                              QREG_CATALOG_MAX_COLUMNS);
    return -1;
  }
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    if (!json_is_string(item) || json_string_length(item) == 0 ||
        strlen(json_string_value(item)) != json_string_length(item)) {
      *error = invalid_argument("columns[%zu]: expected a column name", i);
      return -1;
    }
    names[i] = json_string_value(item);
  }
  return (int)json_array_size(list);
}

/* "not_found" for a table that does not exist. */
static json_t *no_such_table(const qreg_catalog_request_t *request) {
  char message[640];
  snprintf(message, sizeof message,
           "no table or view named '%.200s'%s%.200s%s. Call list_tables (or search_columns) to "
           "see the names there are.",
           request->table, request->schema ? " in schema '" : "",
           request->schema ? request->schema : "", request->schema ? "'" : "");
  return mcp_tools_error_result("not_found", NULL, message);
}

/* The call's state (tool_state), made on first use. */
static json_t *tool_state(mcp_call_t *call) {
  if (!call->tool_state)
    call->tool_state = json_object();
  return call->tool_state;
}

static json_t *tool_list_schemas(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (list_schemas takes none)", unknown);
  json_t *error = NULL;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SCHEMAS);
  qreg_page_t *page = run_catalog(call, &request, "list_schemas", &error);
  if (!page)
    return error;
  json_t *schemas = json_array();
  for (size_t r = 0; r < page->row_count; r++)
    json_array_append_new(schemas, cell_json(page, r, "schema_name"));
  qreg_page_free(page);
  const char *driver = qreg_driver_name(call->reg);
  json_t *structured = json_pack("{s:s, s:o, s:b}", "database", driver ? driver : "unknown",
                                 "schemas", schemas, "truncated", 0);
  return ok_result_trimmed(structured, "schemas", call->budget);
}

static json_t *tool_list_tables(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"schema", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (list_tables takes schema)", unknown);
  json_t *error = NULL;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  if (arg_name(args, "schema", &request.schema, &error) < 0)
    return error;
  qreg_page_t *page = run_catalog(call, &request, "list_tables", &error);
  if (!page)
    return error;
  json_t *tables = json_array();
  for (size_t r = 0; r < page->row_count; r++)
    json_array_append_new(
        tables, json_pack("{s:o, s:o, s:o, s:o, s:o}", "schema", cell_json(page, r, "schema"),
                          "name", cell_json(page, r, "name"), "type", cell_json(page, r, "type"),
                          "comment", cell_json(page, r, "comment"), "row_estimate",
                          cell_json(page, r, "row_estimate")));
  const char *driver = qreg_driver_name(call->reg);
  json_t *structured = json_pack("{s:s, s:o, s:b}", "database", driver ? driver : "unknown",
                                 "tables", tables, "truncated", page->truncated);
  qreg_page_free(page);
  return ok_result_trimmed(structured, "tables", call->budget);
}

/* describe_table's first step: the columns, kept in the call's state as
   JSON. NULL when done (state has "columns"), else what the tool returns
   (an error, or NULL parked with *parked set). */
static json_t *describe_columns(mcp_call_t *call, const qreg_catalog_request_t *table,
                                const char *tool, bool *parked) {
  json_t *state = tool_state(call);
  *parked = false;
  if (json_object_get(state, "columns"))
    return NULL;
  qreg_catalog_request_t request = *table;
  request.op = QREG_CATALOG_DESCRIBE;
  json_t *error = NULL;
  qreg_page_t *page = run_catalog(call, &request, tool, &error);
  if (!page) {
    *parked = error == NULL;
    return error;
  }
  if (page->row_count == 0) {
    qreg_page_free(page);
    return no_such_table(table);
  }
  json_t *columns = json_array();
  json_t *primary_key = json_array();
  for (size_t r = 0; r < page->row_count; r++) {
    json_array_append_new(
        columns,
        json_pack("{s:o, s:o, s:o, s:o, s:b, s:o, s:b, s:o}", "ordinal",
                  cell_json(page, r, "ordinal"), "name", cell_json(page, r, "name"), "type",
                  cell_json(page, r, "type"), "kind",
                  cell(page, r, "kind") ? cell_json(page, r, "kind") : json_string("other"),
                  "nullable", cell_true(page, r, "nullable"), "default",
                  cell_json(page, r, "default_value"), "primary_key",
                  cell_true(page, r, "primary_key"), "comment", cell_json(page, r, "comment")));
    if (cell_true(page, r, "primary_key"))
      json_array_append_new(primary_key, cell_json(page, r, "name"));
  }
  qreg_page_free(page);
  json_object_set_new(state, "columns", columns);
  json_object_set_new(state, "primary_key", primary_key);
  return NULL;
}

/* An optional step (indexes, foreign keys): its rows made into JSON by
   row_json under state[key], or null there when the database has no such
   catalog or its query failed. Returns true when done, false when parked. */
static bool optional_step(mcp_call_t *call, const qreg_catalog_request_t *table,
                          qreg_catalog_op_t op, const char *key,
                          json_t *(*row_json)(const qreg_page_t *page, size_t row)) {
  json_t *state = tool_state(call);
  if (json_object_get(state, key))
    return true;
  qreg_catalog_request_t request = *table;
  request.op = op;
  json_t *error = NULL;
  qreg_page_t *page = run_catalog(call, &request, "describe_table", &error);
  if (!page && !error)
    return false;
  json_decref(error); /* not offered or failed: said as null */
  json_t *rows = page ? json_array() : json_null();
  for (size_t r = 0; page && r < page->row_count; r++)
    json_array_append_new(rows, row_json(page, r));
  qreg_page_free(page);
  json_object_set_new(state, key, rows);
  return true;
}

static json_t *index_json(const qreg_page_t *page, size_t r) {
  return json_pack("{s:o, s:o, s:b, s:b}", "name", cell_json(page, r, "index_name"), "columns",
                   cell_list(page, r, "columns"), "unique", cell_true(page, r, "is_unique"),
                   "primary", cell_true(page, r, "is_primary"));
}

static json_t *foreign_key_json(const qreg_page_t *page, size_t r) {
  return json_pack("{s:o, s:o, s:o, s:o, s:o}", "name", cell_json(page, r, "name"), "columns",
                   cell_list(page, r, "columns"), "referenced_schema",
                   cell_json(page, r, "referenced_schema"), "referenced_table",
                   cell_json(page, r, "referenced_table"), "referenced_columns",
                   cell_list(page, r, "referenced_columns"));
}

/* The table's name as the result gives it back. */
static json_t *table_names(const qreg_catalog_request_t *request) {
  return json_pack("{s:o, s:o}", "schema",
                   request->schema ? mcp_json_text(request->schema, strlen(request->schema))
                                   : json_null(),
                   "table", mcp_json_text(request->table, strlen(request->table)));
}

/* describe_table: three catalog queries in turn (columns; indexes and
   foreign keys where the database has them), each parked, none on a thread. */
static json_t *tool_describe_table(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"table", "schema", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (describe_table takes table, schema)", unknown);
  json_t *error = NULL;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
  if (!arg_table(args, &request, &error))
    return error;
  bool parked;
  json_t *result = describe_columns(call, &request, "describe_table", &parked);
  if (result || parked)
    return result;
  if (!optional_step(call, &request, QREG_CATALOG_INDEXES, "indexes", index_json) ||
      !optional_step(call, &request, QREG_CATALOG_FOREIGN_KEYS, "foreign_keys", foreign_key_json))
    return NULL;
  /* Without a schema argument the database picked one by its search order;
     null says so rather than guess which. */
  json_t *structured = table_names(&request);
  json_t *state = call->tool_state;
  json_object_set(structured, "columns", json_object_get(state, "columns"));
  json_object_set(structured, "primary_key", json_object_get(state, "primary_key"));
  json_object_set(structured, "indexes", json_object_get(state, "indexes"));
  json_object_set(structured, "foreign_keys", json_object_get(state, "foreign_keys"));
  return ok_result(structured);
}

/* Rows sample_table_data gives by default and at most. */
#define TOOLS_SAMPLE_ROWS 10
#define TOOLS_SAMPLE_MAX_ROWS 100

static json_t *tool_sample_table_data(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"table", "schema", "columns", "limit", "random", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (sample_table_data takes table, schema, "
                            "columns, limit, random)",
                            unknown);
  json_t *error = NULL;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  const char *columns[QREG_CATALOG_MAX_COLUMNS] = {NULL};
  int count = 0;
  uint64_t limit = TOOLS_SAMPLE_ROWS;
  if (!arg_table(args, &request, &error) || (count = arg_columns(args, columns, &error)) < 0 ||
      arg_count(args, "limit", 1, TOOLS_SAMPLE_MAX_ROWS, &limit, &error) < 0)
    return error;
  json_t *random = json_object_get(args, "random");
  if (random && !json_is_null(random) && !json_is_boolean(random))
    return invalid_argument("random: expected true or false");
  request.random = !random || json_is_null(random) || json_is_true(random);
  request.columns = count ? columns : NULL;
  request.column_count = (size_t)count;
  request.limit = limit;
  qreg_page_t *page = run_catalog(call, &request, "sample_table_data", &error);
  if (!page)
    return error;
  json_t *rows = json_array();
  for (size_t r = 0; r < page->row_count; r++) {
    json_t *row = json_array();
    for (size_t c = 0; c < page->column_count; c++)
      json_array_append_new(row, mcp_json_value(&page->values[r * page->column_count + c]));
    json_array_append_new(rows, row);
  }
  json_t *structured = table_names(&request);
  json_object_set_new(structured, "columns", mcp_json_columns(page->columns, page->column_count));
  json_object_set_new(structured, "rows", rows);
  json_object_set_new(structured, "random", json_boolean(request.random));
  json_object_set_new(structured, "truncated", json_false());
  qreg_page_free(page);
  return ok_result_trimmed(structured, "rows", call->budget);
}

static json_t *tool_search_columns(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"pattern", "schema", "limit", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (search_columns takes pattern, schema, limit)",
                            unknown);
  json_t *error = NULL;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SEARCH_COLUMNS);
  int found = arg_name(args, "pattern", &request.pattern, &error);
  if (found < 0)
    return error;
  if (found == 0)
    return invalid_argument("pattern: required (part of a column name, any case)");
  uint64_t limit = 100;
  if (arg_name(args, "schema", &request.schema, &error) < 0 ||
      arg_count(args, "limit", 1, TOOLS_CATALOG_MAX_ROWS, &limit, &error) < 0)
    return error;
  request.limit = limit + 1; /* one more says whether there are more */
  qreg_page_t *page = run_catalog(call, &request, "search_columns", &error);
  if (!page)
    return error;
  json_t *matches = json_array();
  for (size_t r = 0; r < page->row_count && r < limit; r++)
    json_array_append_new(
        matches, json_pack("{s:o, s:o, s:o, s:o}", "schema", cell_json(page, r, "schema"), "table",
                           cell_json(page, r, "table_name"), "column",
                           cell_json(page, r, "column_name"), "type", cell_json(page, r, "type")));
  json_t *structured = json_pack("{s:s, s:o, s:b}", "pattern", request.pattern, "columns", matches,
                                 "truncated", page->row_count > limit || page->truncated);
  qreg_page_free(page);
  return ok_result_trimmed(structured, "columns", call->budget);
}

/* A statistics value: a number where the text is one (mean is a float
   already), else the text. */
static json_t *stat_value(const qreg_page_t *page, size_t row, const char *name) {
  return cell_json(page, row, name);
}

/* analyze_table_statistics: describe (for each column's kind), then one
   statistics query over the chosen columns. */
static json_t *tool_analyze_table_statistics(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {"table", "schema", "columns", NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (analyze_table_statistics takes table, schema, "
                            "columns)",
                            unknown);
  json_t *error = NULL;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
  const char *wanted[QREG_CATALOG_MAX_COLUMNS] = {NULL};
  int wanted_count = 0;
  if (!arg_table(args, &request, &error) || (wanted_count = arg_columns(args, wanted, &error)) < 0)
    return error;
  bool parked;
  json_t *result = describe_columns(call, &request, "analyze_table_statistics", &parked);
  if (result || parked)
    return result;
  /* The columns to analyze, with their kinds, from the description. */
  json_t *described = json_object_get(call->tool_state, "columns");
  const char *columns[QREG_CATALOG_MAX_COLUMNS] = {NULL};
  const char *kinds[QREG_CATALOG_MAX_COLUMNS] = {NULL};
  json_t *types[QREG_CATALOG_MAX_COLUMNS] = {NULL};
  size_t count = 0;
  size_t i;
  json_t *column;
  if (wanted_count > 0) {
    for (int w = 0; w < wanted_count; w++) {
      bool found = false;
      json_array_foreach(described, i, column) {
        const char *name = json_string_value(json_object_get(column, "name"));
        if (!found && name && wanted[w] && strcmp(name, wanted[w]) == 0) {
          found = true;
          columns[count] = wanted[w];
          kinds[count] = json_string_value(json_object_get(column, "kind"));
          types[count++] = json_object_get(column, "type");
        }
      }
      if (!found)
        return invalid_argument("columns: '%.200s' is not a column of %.200s (describe_table "
                                "lists them)",
                                wanted[w], request.table);
    }
  } else {
    json_array_foreach(described, i, column) {
      if (count == QREG_CATALOG_MAX_COLUMNS)
        break;
      columns[count] = json_string_value(json_object_get(column, "name"));
      kinds[count] = json_string_value(json_object_get(column, "kind"));
      types[count++] = json_object_get(column, "type");
    }
  }
  for (size_t k = 0; k < count; k++)
    if (!kinds[k])
      kinds[k] = QREG_COLUMN_KIND_OTHER;
  request.columns = columns;
  request.column_kinds = kinds;
  request.column_count = count;
  qreg_page_t *page = run_catalog(call, &request, "analyze_table_statistics", &error);
  if (!page)
    return error;
  json_t *stats = json_array();
  json_t *row_count = json_null();
  for (size_t r = 0; r < page->row_count && r < count; r++) {
    json_t *entry = json_pack("{s:s, s:O, s:s, s:o, s:o}", "name", columns[r], "type",
                              types[r] ? types[r] : json_null(), "kind", kinds[r], "null_count",
                              stat_value(page, r, "null_count"), "distinct_count",
                              stat_value(page, r, "distinct_count"));
    if (r == 0) {
      json_decref(row_count);
      row_count = stat_value(page, r, "row_count");
    }
    json_t *rows = json_object_get(entry, "null_count");
    if (json_is_integer(row_count) && json_is_integer(rows))
      json_object_set_new(entry, "count",
                          json_integer(json_integer_value(row_count) - json_integer_value(rows)));
    static const char *const optional[] = {"min_value", "max_value", "mean",       "p25",
                                           "p50",       "p75",       "true_count", "false_count"};
    static const char *const shown[] = {"min", "max", "mean",       "p25",
                                        "p50", "p75", "true_count", "false_count"};
    for (size_t k = 0; k < sizeof optional / sizeof optional[0]; k++) {
      json_t *value = stat_value(page, r, optional[k]);
      if (json_is_null(value))
        json_decref(value);
      else
        json_object_set_new(entry, shown[k], value);
    }
    const char *top = cell_text(page, r, "top_values");
    json_t *parsed = top ? json_loads(top, JSON_DECODE_ANY, NULL) : NULL;
    if (json_is_array(parsed))
      json_object_set_new(entry, "top_values", parsed);
    else
      json_decref(parsed);
    json_array_append_new(stats, entry);
  }
  qreg_page_free(page);
  json_t *structured = table_names(&request);
  json_object_set_new(structured, "row_count", row_count);
  json_object_set_new(structured, "columns", stats);
  json_object_set_new(structured, "truncated", json_false());
  return ok_result_trimmed(structured, "columns", call->budget);
}

/* --- definitions -------------------------------------------------------------------- */

typedef json_t *(*tool_handler_t)(mcp_call_t *call, json_t *args);

typedef struct tool_entry {
  const char *name;
  tool_handler_t handler;
  bool task_capable;
} tool_entry_t;

static json_t *tool_list_sources(mcp_call_t *call, json_t *args);

static const tool_entry_t TOOL_TABLE[] = {
    {"list_sources", tool_list_sources, false},
    {"execute_query", tool_execute_query, true},
    {"get_query_status", tool_get_query_status, false},
    {"fetch_query_result", tool_fetch_query_result, false},
    {"cancel_query", tool_cancel_query, false},
    {"list_queries", tool_list_queries, false},
    {"forget_query", tool_forget_query, false},
    {"list_schemas", tool_list_schemas, false},
    {"list_tables", tool_list_tables, false},
    {"describe_table", tool_describe_table, false},
    {"search_columns", tool_search_columns, false},
    {"sample_table_data", tool_sample_table_data, false},
    {"analyze_table_statistics", tool_analyze_table_statistics, false},
};
#define TOOL_COUNT (sizeof TOOL_TABLE / sizeof TOOL_TABLE[0])

static const tool_entry_t *find_tool(const char *name) {
  for (size_t i = 0; i < TOOL_COUNT; i++)
    if (strcmp(TOOL_TABLE[i].name, name) == 0)
      return &TOOL_TABLE[i];
  return NULL;
}

bool mcp_tools_task_capable(const char *name) {
  const tool_entry_t *tool = find_tool(name);
  return tool && tool->task_capable;
}

/* --- dispatch -------------------------------------------------------------------------- */

json_t *mcp_tools_list(mcp_call_t *call) {
  json_t *tools = json_deep_copy(call->server->tools);
  /* execution.taskSupport exists only in 2025-11-25 (the tasks utility);
     2026-07-28 servers decide per call under the tasks extension. */
  if (!mcp_call_has_legacy_tasks(call)) {
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool) json_object_del(tool, "execution");
  }
  return json_pack("{s:o}", "tools", tools);
}

/* true when the server lists the tool (it exists and was not switched off). */
static bool tool_listed(const mcp_server_t *server, const char *name) {
  size_t i;
  json_t *tool;
  json_array_foreach(server->tools, i, tool) {
    if (strcmp(json_string_value(json_object_get(tool, "name")), name) == 0)
      return true;
  }
  return false;
}

int mcp_tools_drop_disabled(json_t *tools, const char *disabled) {
  if (!disabled)
    return 0;
  int dropped = 0;
  const char *p = disabled;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    for (size_t i = 0; i < json_array_size(tools); i++) {
      const char *name = json_string_value(json_object_get(json_array_get(tools, i), "name"));
      if (strlen(name) == len && strncmp(name, p, len) == 0) {
        json_array_remove(tools, i);
        dropped++;
        break;
      }
    }
    p += len + (end ? 1 : 0);
  }
  return dropped;
}

void mcp_tools_add_sources(mcp_server_t *server) {
  if (!server->tools)
    return;
  if (server->source_count < 2) {
    /* One database: no source to choose, so no list_sources either. */
    for (size_t i = 0; i < json_array_size(server->tools); i++) {
      json_t *name = json_object_get(json_array_get(server->tools, i), "name");
      if (strcmp(json_string_value(name), "list_sources") == 0)
        json_array_remove(server->tools, i);
    }
    return;
  }
  json_t *names = json_array();
  for (size_t i = 0; i < server->source_count; i++)
    json_array_append_new(names, json_string(server->sources[i].name));
  char description[256];
  snprintf(description, sizeof description,
           "Which database (list_sources describes them). Default: %s.", server->sources[0].name);
  size_t i;
  json_t *tool;
  json_array_foreach(server->tools, i, tool) {
    json_t *properties = json_object_get(json_object_get(tool, "inputSchema"), "properties");
    if (strcmp(json_string_value(json_object_get(tool, "name")), "list_sources") != 0)
      json_object_set_new(properties, "source",
                          json_pack("{s:s, s:O, s:s}", "type", "string", "enum", names,
                                    "description", description));
  }
  json_decref(names);
}

bool mcp_tools_known(const char *name) {
  return find_tool(name) != NULL;
}

bool mcp_tools_known_list(const char *list, char *bad, size_t bad_size) {
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
    if (len == 0 || len >= sizeof name || !mcp_tools_known(name)) {
      snprintf(bad, bad_size, "%.*s", (int)(len < 64 ? len : 64), p);
      return false;
    }
    p += len + (end ? 1 : 0);
  }
  return true;
}

/* true when the comma-separated list names the tool. */
static bool list_names(const char *list, const char *name) {
  size_t len = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == len && strncmp(p, name, len) == 0)
      return true;
    p += n + (end ? 1 : 0);
  }
  return false;
}

int mcp_tools_bind_source(mcp_call_t *call, json_t *args, const char *tool, json_t **error) {
  mcp_server_t *server = call->server;
  json_t *source = json_object_get(args, "source");
  call->source = 0;
  if (source && !json_is_null(source)) {
    bool found = false;
    for (size_t i = 0; json_is_string(source) && i < server->source_count && !found; i++) {
      if (strcmp(server->sources[i].name, json_string_value(source)) == 0) {
        call->source = i;
        found = true;
      }
    }
    if (!found) {
      char names[512] = "";
      for (size_t i = 0; i < server->source_count; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", server->sources[i].name);
      }
      *error = invalid_argument("source: not one of this server's sources (%s; list_sources "
                                "describes them)",
                                names);
      return -1;
    }
  } else if (server->source_count > 1) {
    /* A query id names its source: the registry that has it. */
    json_t *id = json_object_get(args, "query_id");
    for (size_t i = 0; json_is_string(id) && i < server->source_count; i++) {
      if (qreg_wait(server->sources[i].reg, json_string_value(id), 0, NULL) != QREG_ENOTFOUND &&
          strlen(json_string_value(id)) == QREG_ID_LEN) {
        call->source = i;
        break;
      }
    }
  }
  call->reg = server->sources[call->source].reg;
  if (list_names(server->sources[call->source].disabled_tools, tool)) {
    *error = mcp_tools_error_result("invalid_argument", NULL,
                                    "this tool is switched off for this "
                                    "source (list_sources says which "
                                    "are on)");
    return -1;
  }
  (void)json_object_del(args, "source");
  return 0;
}

json_t *mcp_tools_call(mcp_call_t *call, const char *name, json_t *arguments) {
  const tool_entry_t *tool = find_tool(name);
  if (!tool || !tool_listed(call->server, name)) {
    char listed[512] = "";
    size_t i;
    json_t *entry;
    json_array_foreach(call->server->tools, i, entry) {
      size_t used = strlen(listed);
      snprintf(listed + used, sizeof listed - used, "%s%s", i ? ", " : "",
               json_string_value(json_object_get(entry, "name")));
    }
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Unknown tool '%.100s'%s (tools: %s)", name,
                  tool ? " (switched off on this server)" : "", listed);
    return NULL;
  }
  /* The handler sees the arguments without `source`, which picks the
     registry it works on (call->reg). */
  json_t *args = arguments ? json_copy(arguments) : json_object();
  json_t *error = NULL;
  json_t *result =
      mcp_tools_bind_source(call, args, name, &error) < 0 ? error : tool->handler(call, args);
  json_decref(args);
  return result;
}

/* list_sources: what each source is. */
static json_t *tool_list_sources(mcp_call_t *call, json_t *args) {
  static const char *const names[] = {NULL};
  const char *unknown = unknown_argument(args, names);
  if (unknown)
    return invalid_argument("unknown argument '%s' (list_sources takes none)", unknown);
  mcp_server_t *server = call->server;
  json_t *sources = json_array();
  for (size_t i = 0; i < server->source_count; i++) {
    const mcp_source_t *source = &server->sources[i];
    const char *driver = qreg_driver_name(source->reg);
    char *url = NULL;
    (void)qreg_redacted_url(source->reg, &url);
    json_t *disabled = json_array();
    for (const char *p = source->disabled_tools; p && *p;) {
      const char *end = strchr(p, ',');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      json_array_append_new(disabled, json_stringn(p, n));
      p += n + (end ? 1 : 0);
    }
    json_array_append_new(
        sources,
        json_pack("{s:s, s:o, s:s, s:o, s:b, s:b, s:o}", "name", source->name, "description",
                  source->description ? json_string(source->description) : json_null(), "database",
                  driver ? driver : "unknown", "url", url ? json_string(url) : json_null(),
                  "read_only", !source->allow_writes, "default", i == 0, "disabled_tools",
                  disabled));
    free(url);
  }
  return ok_result(json_pack("{s:o}", "sources", sources));
}
