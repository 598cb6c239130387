/*
 * src/mcp/json_values.c - the JSON forms of what the registry returns, as
 * every MCP tool and task writes them: text (UTF-8, U+FFFD for what is not),
 * result values (as the library's encoder writes them, docs/values.md),
 * times (RFC 3339), columns, errors and snapshots.
 *
 * Owns nothing: every JSON value returned belongs to the caller.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/json_values.h"

/* SQL shown per query in list_queries: enough to recognise it. */
#define LIST_SQL_BYTES 200

/* A JSON string of text from the database. JSON text must be UTF-8, and a
   database can hold anything: invalid bytes become U+FFFD (the library's
   encoder repairs them, as for values) rather than making the whole answer
   fail. */
json_t *mcp_json_text(const char *s, size_t len) {
  json_t *value = json_stringn(s, len);
  if (value)
    return value;
  qreg_value_t text = {.type = QREG_TYPE_TEXT, .v.s = {.ptr = s, .len = len}};
  size_t clean_len = qreg_value_text(&text, NULL, 0);
  char *clean = clean_len < SIZE_MAX ? malloc(clean_len + 1) : NULL;
  if (!clean)
    return json_null();
  qreg_value_text(&text, clean, clean_len + 1);
  value = json_stringn(clean, clean_len);
  free(clean);
  return value ? value : json_null();
}

/* One result value: the library's encoder writes it (qreg_value_json), and
   the tree carries that text as a raw fragment that mcp_out_json() writes
   as it is, so MCP writes every value exactly as the CLI does, and JSON
   from the database is never re-parsed into doubles. */
json_t *mcp_json_value(const qreg_value_t *v) {
  char small[64];
  small[0] = MCP_RAW_JSON_MARK;
  size_t len = qreg_value_json(v, small + 1, sizeof small - 1);
  if (len < sizeof small - 1)
    return json_stringn_nocheck(small, len + 1);
  char *big = len < SIZE_MAX - 2 ? malloc(len + 2) : NULL;
  if (!big)
    return json_null();
  big[0] = MCP_RAW_JSON_MARK;
  qreg_value_json(v, big + 1, len + 1);
  json_t *value = json_stringn_nocheck(big, len + 1);
  free(big);
  return value ? value : json_null();
}

/* RFC 3339 time, or null when the event has not happened. */
static json_t *time_json(int64_t ms) {
  if (ms == 0)
    return json_null();
  char buf[40];
  qreg_format_time(ms, buf, sizeof buf);
  return json_string(buf);
}

json_t *mcp_json_columns(const qreg_column_t *columns, size_t count) {
  json_t *array = json_array();
  for (size_t i = 0; i < count; i++)
    json_array_append_new(
        array,
        json_pack("{s:o, s:o}", "name", mcp_json_text(columns[i].name, strlen(columns[i].name)),
                  "type", mcp_json_text(columns[i].type_name, strlen(columns[i].type_name))));
  return array;
}

json_t *mcp_json_error(const qreg_snapshot_t *s) {
  if (!s->has_error)
    return json_null();
  const qreg_error_t *e = &s->error;
  json_t *error = json_pack("{s:s, s:o}", "type", e->type[0] ? e->type : "internal", "message",
                            mcp_json_text(e->message, strlen(e->message)));
  if (e->code[0])
    json_object_set_new(error, "code", mcp_json_text(e->code, strlen(e->code)));
  if (e->detail[0])
    json_object_set_new(error, "detail", mcp_json_text(e->detail, strlen(e->detail)));
  if (e->hint[0])
    json_object_set_new(error, "hint", mcp_json_text(e->hint, strlen(e->hint)));
  return error;
}

/* The longest prefix of s of at most max bytes that ends on a character boundary. */
static size_t utf8_prefix(const char *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  size_t cut = max;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
    cut--;
  return cut;
}

void mcp_json_set_truncation(json_t *obj, qreg_truncation_t by, uint64_t rows,
                             uint64_t max_result_bytes) {
  if (by == QREG_TRUNCATED_NONE) {
    json_object_set_new(obj, "truncated_by", json_null());
    json_object_set_new(obj, "truncation_hint", json_null());
    return;
  }
  char cap[64] = "";
  if (max_result_bytes > 0)
    snprintf(cap, sizeof cap, " = %llu bytes", (unsigned long long)max_result_bytes);
  unsigned long long kept = (unsigned long long)rows;
  char hint[512];
  switch (by) {
  case QREG_TRUNCATED_MAX_ROWS:
    snprintf(hint, sizeof hint,
             "Only the first %llu rows were kept (max_rows). To get more, raise max_rows in "
             "execute_query, or narrow the query (WHERE, LIMIT, GROUP BY) to the rows you need.",
             kept);
    break;
  case QREG_TRUNCATED_MAX_RESULT_BYTES:
    snprintf(hint, sizeof hint,
             "The result reached this query's memory cap (max_result_bytes%s) after %llu rows. "
             "Select fewer or narrower columns, add a LIMIT, or raise max_result_bytes in "
             "execute_query.",
             cap, kept);
    break;
  case QREG_TRUNCATED_REGISTRY_BUDGET:
    snprintf(hint, sizeof hint,
             "The server's result memory was taken by other queries after %llu rows. Free results "
             "you no longer need with forget_query, select fewer columns or add a LIMIT, then "
             "run the query again.",
             kept);
    break;
  case QREG_TRUNCATED_VALUE_TOO_LARGE:
    snprintf(hint, sizeof hint,
             "Row %llu holds a single value larger than this query may store "
             "(max_result_bytes%s): that row and the rest were not kept. Select a part of the "
             "value instead (substr(col, 1, 10000), length(col)), or raise max_result_bytes in "
             "execute_query.",
             kept + 1, cap);
    break;
  default:
    snprintf(hint, sizeof hint,
             "The database driver cut the result after %llu rows; narrow the query (WHERE, "
             "LIMIT) to get the rows you need.",
             kept);
    break;
  }
  json_object_set_new(obj, "truncated_by", json_string(qreg_truncation_name(by)));
  json_object_set_new(obj, "truncation_hint", json_string(hint));
}

/* A snapshot as get_query_status shows it (full) or list_queries lists it. */
json_t *mcp_json_snapshot(const qreg_snapshot_t *s, bool full) {
  json_t *obj = json_object();
  json_object_set_new(obj, "query_id", json_string(s->id.str));
  json_object_set_new(obj, "status", json_string(qreg_status_name(s->status)));
  size_t sql_len = strlen(s->sql);
  if (full) {
    json_object_set_new(obj, "sql", mcp_json_text(s->sql, sql_len));
  } else {
    size_t cut = utf8_prefix(s->sql, sql_len, LIST_SQL_BYTES);
    json_t *sql = mcp_json_text(s->sql, cut);
    if (cut < sql_len) {
      char *shown = malloc(cut + 4);
      if (shown) {
        memcpy(shown, s->sql, cut);
        memcpy(shown + cut, "\xE2\x80\xA6", 3); // NOLINT(bugprone-not-null-terminated-result): "…"
        json_decref(sql);
        sql = mcp_json_text(shown, cut + 3);
        free(shown);
      }
    }
    json_object_set_new(obj, "sql", sql);
  }
  json_object_set_new(obj, "created_at", time_json(s->created_ms));
  if (full) {
    json_object_set_new(obj, "started_at", time_json(s->started_ms));
  }
  json_object_set_new(obj, "finished_at", time_json(s->finished_ms));
  if (full) {
    json_object_set_new(obj, "updated_at", time_json(s->updated_ms));
    json_object_set_new(obj, "expires_at", time_json(s->expires_ms));
  }
  json_object_set_new(obj, "elapsed_ms", json_integer(s->elapsed_ms));
  json_object_set_new(obj, "row_count", json_integer((json_int_t)s->row_count));
  json_object_set_new(obj, "truncated", json_boolean(s->truncated));
  if (full) {
    mcp_json_set_truncation(obj, s->truncated_by, s->row_count, s->max_result_bytes);
    json_object_set_new(obj, "result_evicted", json_boolean(s->result_evicted));
  } else {
    json_object_set_new(obj, "truncated_by",
                        s->truncated_by == QREG_TRUNCATED_NONE
                            ? json_null()
                            : json_string(qreg_truncation_name(s->truncated_by)));
  }
  if (full) {
    json_object_set_new(obj, "columns", mcp_json_columns(s->columns, s->column_count));
    json_object_set_new(obj, "backend_id",
                        s->backend_id[0] ? json_string(s->backend_id) : json_null());
  }
  json_object_set_new(obj, "error", mcp_json_error(s));
  return obj;
}
