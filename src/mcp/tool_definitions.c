/*
 * src/mcp/tool_definitions.c - what tools/list says of each tool: its
 * title and description (written for a model), its input and output JSON
 * schemas and its annotations. The handlers are tools.c; these definitions
 * are built once per server (mcp_tools_definitions) and copied per list.
 *
 * Owns nothing: every JSON value returned belongs to the caller.
 */
#include <stdbool.h>
#include <stddef.h>

#include "mcp/tools.h"

/* Schema pieces shared by several tools. */
static json_t *schema_status(void) {
  return json_pack("{s:s, s:[ssssss]}", "type", "string", "enum", "pending", "running", "succeeded",
                   "failed", "canceled", "timeout");
}
static json_t *schema_columns(void) {
  return json_pack("{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}, s:[ss]}}", "type", "array", "items", "type",
                   "object", "properties", "name", "type", "string", "type", "type", "string",
                   "required", "name", "type");
}
static json_t *schema_error(void) {
  return json_pack("{s:[ss], s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:s}", "type",
                   "object", "null", "properties", "type", "type", "string", "message", "type",
                   "string", "code", "type", "string", "detail", "type", "string", "hint", "type",
                   "string", "description",
                   "null, or why the query did not succeed: type (database, connection, "
                   "canceled, timeout, limit, internal), message, and code (the database's own "
                   "error code, such as an SQLSTATE)");
}
/* Why a stored result was cut, and what to do about it. */
static json_t *schema_truncated_by(void) {
  return json_pack("{s:[ss], s:[sssssn], s:s}", "type", "string", "null", "enum", "max_rows",
                   "max_result_bytes", "registry_budget", "value_too_large", "driver",
                   "description",
                   "null when the result is whole; else why it was cut: max_rows (row limit), "
                   "max_result_bytes (this query's memory cap), registry_budget (the server's "
                   "result memory was taken by other queries), value_too_large (one value is "
                   "larger than the query may store: that row and the rest were not kept).");
}
static json_t *schema_truncation_hint(void) {
  return json_pack("{s:[ss], s:s}", "type", "string", "null", "description",
                   "null, or what to do about the cut, in one sentence (raise max_rows, "
                   "select fewer columns or add a LIMIT, free results with forget_query...).");
}
static json_t *schema_time(void) {
  return json_pack("{s:[ss]}", "type", "string", "null");
}
static json_t *schema_query_id(void) {
  return json_pack("{s:s, s:s}", "type", "string", "description",
                   "The id execute_query returned (a UUID).");
}
/* The members every page of rows carries (fetch_query_result, task results). */
static void schema_add_page(json_t *properties) {
  json_object_set_new(properties, "columns", schema_columns());
  json_object_set_new(properties, "rows",
                      json_pack("{s:s, s:{s:s}, s:s}", "type", "array", "items", "type", "array",
                                "description",
                                "Rows of this page, each an array in column order. Integers "
                                "beyond +-(2^53-1) and numeric values are strings of their "
                                "digits (the column type says which); floats always have a "
                                "fraction or exponent, non-finite ones are \"NaN\", "
                                "\"Infinity\", \"-Infinity\"; bytes are base64 strings; JSON "
                                "columns are embedded JSON; times are ISO 8601 strings."));
  json_object_set_new(properties, "offset", json_pack("{s:s}", "type", "integer"));
  json_object_set_new(
      properties, "row_count",
      json_pack("{s:s, s:s}", "type", "integer", "description", "Rows in this page."));
  json_object_set_new(properties, "total_rows",
                      json_pack("{s:s, s:s}", "type", "integer", "description",
                                "Rows stored for the whole result."));
  json_object_set_new(properties, "has_more", json_pack("{s:s}", "type", "boolean"));
  json_object_set_new(properties, "next_offset",
                      json_pack("{s:[ss], s:s}", "type", "integer", "null", "description",
                                "Offset to fetch next, null when there is no more. A page may "
                                "stop before limit rows to stay within the response size limit."));
  json_object_set_new(properties, "truncated",
                      json_pack("{s:s, s:s}", "type", "boolean", "description",
                                "The stored result itself was cut (truncated_by says why): "
                                "rows past total_rows were not kept."));
  json_object_set_new(properties, "truncated_by", schema_truncated_by());
  json_object_set_new(properties, "truncation_hint", schema_truncation_hint());
}

static json_t *object_schema(json_t *properties, const char *const *required) {
  json_t *schema = json_pack("{s:s, s:o}", "type", "object", "properties", properties);
  if (required) {
    json_t *list = json_array();
    for (const char *const *r = required; *r; r++)
      json_array_append_new(list, json_string(*r));
    json_object_set_new(schema, "required", list);
  }
  return schema;
}

static json_t *input_schema(json_t *properties, const char *const *required) {
  json_t *schema = object_schema(properties, required);
  json_object_set_new(schema, "additionalProperties", json_false());
  return schema;
}

/* Behaviour hints for clients (annotations): only hints, but a client may ask
   its user before a tool that is not read-only. */
typedef struct tool_hints {
  bool read_only;
  bool destructive;
  bool idempotent;
} tool_hints_t;

static json_t *define(const char *name, const char *title, const char *description, json_t *input,
                      json_t *output, tool_hints_t hints) {
  json_t *tool =
      json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:s, s:b, s:b, s:b, s:b}}", "name", name, "title",
                title, "description", description, "inputSchema", input, "outputSchema", output,
                "annotations", "title", title, "readOnlyHint", hints.read_only, "destructiveHint",
                hints.destructive, "idempotentHint", hints.idempotent, "openWorldHint", 0);
  if (mcp_tools_task_capable(name))
    json_object_set_new(tool, "execution", json_pack("{s:s}", "taskSupport", "optional"));
  return tool;
}

json_t *mcp_tools_definitions(bool allow_writes, bool read_only) {
  const tool_hints_t reader = {.read_only = true, .idempotent = true};
  static const char *const sql_required[] = {"sql", NULL};
  static const char *const id_required[] = {"query_id", NULL};
  static const char *const table_required[] = {"table", NULL};
  static const char *const execute_out_required[] = {"query_id", "status", NULL};
  static const char *const page_out_required[] = {
      "query_id", "columns",     "rows",      "offset",       "row_count",       "total_rows",
      "has_more", "next_offset", "truncated", "truncated_by", "truncation_hint", NULL};
  static const char *const status_out_required[] = {
      "query_id",  "sql",          "status",  "created_at", "elapsed_ms", "row_count",
      "truncated", "truncated_by", "columns", "error",      NULL};
  static const char *const cancel_out_required[] = {"query_id", "canceled", "status", NULL};
  static const char *const forget_out_required[] = {"query_id", "forgotten", "status",
                                                    "freed_bytes", NULL};
  static const char *const list_out_required[] = {"queries", "next_cursor", NULL};
  static const char *const tables_out_required[] = {"database", "tables", "truncated", NULL};
  static const char *const describe_out_required[] = {"schema", "table", "columns", NULL};
  json_t *tools = json_array();

  /* list_sources (only with several sources: mcp_tools_add_sources) */
  json_t *sources_out =
      json_pack("{s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:[ss]}, s:{s:s}, s:{s:[ss]}, s:{s:s}, s:{s:s}, "
                "s:{s:s, s:{s:s}}}}}}",
                "sources", "type", "array", "items", "type", "object", "properties", "name", "type",
                "string", "description", "type", "string", "null", "database", "type", "string",
                "url", "type", "string", "null", "read_only", "type", "boolean", "default", "type",
                "boolean", "disabled_tools", "type", "array", "items", "type", "string");
  static const char *const sources_out_required[] = {"sources", NULL};
  json_array_append_new(
      tools, define("list_sources", "List the databases",
                    "List the databases (sources) this server serves: name (what every tool's "
                    "source argument takes), description, kind of database (the SQL dialect), "
                    "URL without secrets, whether it is read-only, which is the default and "
                    "which tools are switched off for it. Call it first, then pass source.",
                    input_schema(json_object(), NULL),
                    object_schema(sources_out, sources_out_required), reader));

  /* execute_query */
  json_t *in = json_pack(
      "{s:{s:s, s:i, s:s}, s:{s:s, s:i, s:i, s:s}, s:{s:s, s:i, s:s}, s:{s:s, s:i, s:s}, "
      "s:{s:s, s:i, s:s}}",
      "sql", "type", "string", "minLength", 1, "description",
      allow_writes ? "Exactly one SQL statement, in the dialect of the database (list_tables says "
                     "which). Writes are allowed."
      : read_only  ? "Exactly one SQL statement, in the dialect of the database (list_tables says "
                     "which). Read-only: a statement that would change anything is refused."
                   : "Exactly one SQL statement, in the dialect of the database (list_tables says "
                     "which). Runs in a read-only transaction, but the role is privileged: avoid "
                     "statements with side effects.",
      "wait_seconds", "type", "number", "minimum", 0, "maximum", TOOLS_MAX_WAIT_S, "description",
      "How long to wait for the query to finish before answering. Default: the server's "
      "--wait (5 s). Leave it out: a fast query then comes back finished, with its rows, in "
      "this one call. 0 returns at once with the query_id.",
      "timeout_seconds", "type", "number", "exclusiveMinimum", 0, "description",
      "Give up after this many seconds (counted from submission); default: the server's "
      "--timeout.",
      "max_rows", "type", "integer", "minimum", 1, "description",
      "Keep at most this many rows; a longer result is kept cut and marked truncated. "
      "Default: the server's --max-rows.",
      "max_result_bytes", "type", "integer", "minimum", 1, "description",
      "Bytes the stored result may take in the server's memory; a larger result is kept cut "
      "(truncated_by max_result_bytes). Default: a quarter of the server's result memory; at "
      "most all of it.");
  json_t *out = json_pack(
      "{s:o, s:o, s:{s:s}, s:o, s:{s:s, s:s}}", "query_id", schema_query_id(), "status",
      schema_status(), "elapsed_ms", "type", "integer", "error", schema_error(), "next_step",
      "type", "string", "description",
      "What to do next, when there is something to do: the query is still running (fetch its "
      "rows later with fetch_query_result and wait_seconds), it failed or timed out, or its "
      "stored result was cut.");
  schema_add_page(out);
  json_array_append_new(
      tools,
      define("execute_query", "Run SQL",
             "Run one SQL statement and, in the same call, get its result: the call waits up "
             "to wait_seconds (default 5 s) for the query to finish, then answers with its "
             "status and the first page of rows (columns, rows, total_rows, has_more, "
             "next_offset; up to 100 rows and within the response size limit). Use "
             "fetch_query_result with next_offset for more rows. A query still running after "
             "the wait keeps running in the background: the answer has its query_id and "
             "status running; fetch_query_result (with wait_seconds) gives its rows once it "
             "is done, cancel_query stops it. A failed query comes back with isError and its "
             "error. Learn the tables first with list_tables, describe_table, "
             "search_columns and sample_table_data rather than guessing names.",
             input_schema(in, sql_required), object_schema(out, execute_out_required),
             (tool_hints_t){.read_only = read_only, .destructive = !read_only}));

  /* get_query_status */
  in = json_pack("{s:o, s:{s:s, s:i, s:i, s:s}}", "query_id", schema_query_id(), "wait_seconds",
                 "type", "number", "minimum", 0, "maximum", TOOLS_MAX_WAIT_S, "description",
                 "Wait up to this many seconds for the query to finish before answering. "
                 "Default 0: the status now.");
  out = json_pack("{s:o, s:{s:s}, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:s}, s:{s:s}, s:{s:s}, s:o, "
                  "s:{s:[ss], s:s}, s:o, s:o, s:o, s:{s:s, s:s}}",
                  "query_id", schema_query_id(), "sql", "type", "string", "status", schema_status(),
                  "created_at", schema_time(), "started_at", schema_time(), "finished_at",
                  schema_time(), "updated_at", schema_time(), "expires_at", schema_time(),
                  "elapsed_ms", "type", "integer", "row_count", "type", "integer", "truncated",
                  "type", "boolean", "columns", schema_columns(), "backend_id", "type", "string",
                  "null", "description",
                  "The database's own id for the statement (a backend process id, a "
                  "connection serial, a query id: whatever the database names it by).",
                  "error", schema_error(), "truncated_by", schema_truncated_by(), "truncation_hint",
                  schema_truncation_hint(), "result_evicted", "type", "boolean", "description",
                  "true when the query succeeded but its rows were freed under memory pressure: "
                  "fetch_query_result then fails; run the query again.");
  json_array_append_new(
      tools,
      define("get_query_status", "Query status",
             "Current state of a query: status (pending, running, succeeded, failed, canceled, "
             "timeout), times (RFC 3339, UTC), elapsed_ms, row_count, columns, truncated and "
             "truncated_by with a hint when the stored result was cut, and the error (type, "
             "message, the database's error code) when it did not succeed. Finished queries are "
             "kept until expires_at (or forget_query), then forgotten. To wait for a query's "
             "rows, call fetch_query_result with wait_seconds instead: one call.",
             input_schema(in, id_required), object_schema(out, status_out_required), reader));

  /* fetch_query_result */
  in = json_pack("{s:o, s:{s:s, s:i, s:s}, s:{s:s, s:i, s:i, s:s}, s:{s:s, s:i, s:i, s:s}}",
                 "query_id", schema_query_id(), "offset", "type", "integer", "minimum", 0,
                 "description",
                 "First row to return (0-based); use next_offset of the previous page. Default 0.",
                 "limit", "type", "integer", "minimum", 1, "maximum", TOOLS_MAX_PAGE_ROWS,
                 "description", "Rows to return at most. Default 100.", "wait_seconds", "type",
                 "number", "minimum", 0, "maximum", TOOLS_MAX_WAIT_S, "description",
                 "While the query still runs, wait up to this many seconds for it to finish. "
                 "Default: the server's --wait (5 s); 0 answers not_ready at once.");
  out = json_pack("{s:o, s:{s:s}}", "query_id", schema_query_id(), "next_step", "type", "string");
  schema_add_page(out);
  json_array_append_new(
      tools, define("fetch_query_result", "Fetch result rows",
                    "Read a page of rows of a query: rows [offset, offset + row_count), with "
                    "has_more and next_offset telling where to continue. A page stops early "
                    "rather than exceed the server's response size limit. On a query still "
                    "running it first waits up to wait_seconds for it to finish (not_ready if "
                    "it has not); on a failed query it gives the query's error.",
                    input_schema(in, id_required), object_schema(out, page_out_required), reader));

  /* cancel_query */
  in = json_pack("{s:o}", "query_id", schema_query_id());
  out = json_pack("{s:o, s:{s:s, s:s}, s:o}", "query_id", schema_query_id(), "canceled", "type",
                  "boolean", "description",
                  "true when this call stopped the query; false when it had already finished",
                  "status", schema_status());
  json_array_append_new(
      tools, define("cancel_query", "Cancel a query",
                    "Stop a pending or running query; it is stopped in the database and its "
                    "connection released before this returns. A query that already finished is "
                    "left as it is (canceled: false) and its status returned.",
                    input_schema(in, id_required), object_schema(out, cancel_out_required),
                    (tool_hints_t){.idempotent = true}));

  /* list_queries */
  json_t *status_filter = schema_status();
  json_object_set_new(status_filter, "description",
                      json_string("Only queries in this status (default: all)."));
  in = json_pack("{s:o, s:{s:s, s:s}, s:{s:s, s:i, s:i, s:s}}", "status", status_filter, "cursor",
                 "type", "string", "description",
                 "next_cursor of the previous call, to continue the list.", "limit", "type",
                 "integer", "minimum", 1, "maximum", TOOLS_MAX_LIST_LIMIT, "description",
                 "Queries per page at most. Default 20.");
  out = json_pack("{s:{s:s, s:{s:s, s:{s:o, s:o, s:{s:s}, s:o, s:o, s:{s:s}, s:{s:s}, s:{s:s}, "
                  "s:o, s:o}}}, s:{s:[ss]}}",
                  "queries", "type", "array", "items", "type", "object", "properties", "query_id",
                  schema_query_id(), "status", schema_status(), "sql", "type", "string",
                  "created_at", schema_time(), "finished_at", schema_time(), "elapsed_ms", "type",
                  "integer", "row_count", "type", "integer", "truncated", "type", "boolean",
                  "error", schema_error(), "truncated_by", schema_truncated_by(), "next_cursor",
                  "type", "string", "null");
  json_array_append_new(
      tools, define("list_queries", "List queries",
                    "List the queries this server knows, newest first, with status, SQL (cut to "
                    "200 bytes), times, row_count and error. Pages: pass next_cursor back as "
                    "cursor until it is null.",
                    input_schema(in, NULL), object_schema(out, list_out_required), reader));

  /* forget_query */
  in = json_pack("{s:o}", "query_id", schema_query_id());
  out = json_pack(
      "{s:o, s:{s:s, s:s}, s:{s:[ss], s:s}, s:{s:s, s:s}}", "query_id", schema_query_id(),
      "forgotten", "type", "boolean", "description",
      "true when this call forgot the query; false when it was unknown (already forgotten or "
      "expired): forgetting twice is harmless",
      "status", "type", "string", "null", "description",
      "The status it had (a pending or running query is canceled first); null when unknown.",
      "freed_bytes", "type", "integer", "description", "Bytes of stored result freed.");
  json_array_append_new(
      tools, define("forget_query", "Forget a query and free its result",
                    "Forget a query now: its stored result is freed from the server's memory and "
                    "its query_id stops working. A pending or running query is canceled first. "
                    "Results share the server's memory, so forget large results you are done "
                    "with; under memory pressure the server evicts finished results itself, read "
                    "ones first.",
                    input_schema(in, id_required), object_schema(out, forget_out_required),
                    (tool_hints_t){.destructive = true, .idempotent = true}));

  /* list_schemas */
  out = json_pack("{s:{s:s, s:s}, s:{s:s, s:{s:s}}, s:{s:s}}", "database", "type", "string",
                  "description", "The database's kind (its driver's name): the SQL dialect.",
                  "schemas", "type", "array", "items", "type", "string", "truncated", "type",
                  "boolean");
  static const char *const schemas_out_required[] = {"database", "schemas", "truncated", NULL};
  json_array_append_new(
      tools,
      define("list_schemas", "List schemas",
             "List the database's schemas (namespaces of tables; SQLite: main and attached "
             "databases), without the system's own. Pass one to list_tables to narrow it.",
             input_schema(json_object(), NULL), object_schema(out, schemas_out_required), reader));

  /* list_tables */
  in = json_pack("{s:{s:s, s:s}}", "schema", "type", "string", "description",
                 "Only this schema, as list_tables names them. Default: every user schema.");
  out = json_pack("{s:{s:s, s:s}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:[ss]}, "
                  "s:{s:[ss], s:s}}}}, s:{s:s}}",
                  "database", "type", "string", "description",
                  "The database's kind (its driver's name): the SQL dialect to write.", "tables",
                  "type", "array", "items", "type", "object", "properties", "schema", "type",
                  "string", "name", "type", "string", "type", "type", "string", "comment", "type",
                  "string", "null", "row_estimate", "type", "integer", "null", "description",
                  "The database's own estimate (null when it keeps none); count(*) for the "
                  "exact number.",
                  "truncated", "type", "boolean");
  json_array_append_new(
      tools, define("list_tables", "List tables",
                    "Start here. List the tables and views of the database (schema, name, type, "
                    "comment, estimated row count where the database keeps one) and say which "
                    "kind of database it is, i.e. which SQL dialect to write. Then "
                    "describe_table for a table's columns, keys and indexes.",
                    input_schema(in, NULL), object_schema(out, tables_out_required), reader));

  /* describe_table */
  in = json_pack("{s:{s:s, s:i, s:s}, s:{s:s, s:s}}", "table", "type", "string", "minLength", 1,
                 "description", "A table or view name, as list_tables gives it.", "schema", "type",
                 "string", "description",
                 "Its schema (default: the one the database finds for the bare name).");
  json_t *string_list =
      json_pack("{s:[ss], s:{s:s}}", "type", "array", "null", "items", "type", "string");
  out = json_pack(
      "{s:{s:[ss]}, s:{s:s}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:[sssss]}, "
      "s:{s:s}, s:{}, s:{s:s}, s:{s:[ss]}}}}, s:{s:s, s:{s:s}}, "
      "s:{s:[ss], s:{s:s, s:{s:{s:s}, s:O, s:{s:s}, s:{s:s}}}}, "
      "s:{s:[ss], s:{s:s, s:{s:{s:s}, s:O, s:{s:[ss]}, s:{s:s}, s:O}}}}",
      "schema", "type", "string", "null", "table", "type", "string", "columns", "type", "array",
      "items", "type", "object", "properties", "ordinal", "type", "integer", "name", "type",
      "string", "type", "type", "string", "kind", "type", "string", "enum", "number", "text",
      "boolean", "date", "other", "nullable", "type", "boolean", "default", "primary_key", "type",
      "boolean", "comment", "type", "string", "null", "primary_key", "type", "array", "items",
      "type", "string", "indexes", "type", "array", "null", "items", "type", "object", "properties",
      "name", "type", "string", "columns", string_list, "unique", "type", "boolean", "primary",
      "type", "boolean", "foreign_keys", "type", "array", "null", "items", "type", "object",
      "properties", "name", "type", "string", "columns", string_list, "referenced_schema", "type",
      "string", "null", "referenced_table", "type", "string", "referenced_columns", string_list);
  json_decref(string_list);
  json_array_append_new(
      tools,
      define("describe_table", "Describe a table",
             "The columns of a table or view, in order: ordinal, name, declared type, kind "
             "(number, text, boolean, date, other), nullable, default expression, whether it "
             "is part of the primary key, and its comment; then the primary key, the indexes "
             "and the foreign keys (which tables it joins to, on which columns) - null where "
             "the database has none to show.",
             input_schema(in, table_required), object_schema(out, describe_out_required), reader));

  /* search_columns */
  in = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:i, s:i, s:s}}", "pattern", "type",
                 "string", "description",
                 "Part of a column name, any case; a plain substring (_ and % are themselves).",
                 "schema", "type", "string", "description", "Only this schema (default: all).",
                 "limit", "type", "integer", "minimum", 1, "maximum", 10000, "description",
                 "Matches at most. Default 100.");
  out =
      json_pack("{s:{s:s}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}}, "
                "s:{s:s}}",
                "pattern", "type", "string", "columns", "type", "array", "items", "type", "object",
                "properties", "schema", "type", "string", "table", "type", "string", "column",
                "type", "string", "type", "type", "string", "truncated", "type", "boolean");
  static const char *const pattern_required[] = {"pattern", NULL};
  static const char *const search_out_required[] = {"pattern", "columns", "truncated", NULL};
  json_array_append_new(
      tools,
      define("search_columns", "Find columns by name",
             "Find the columns whose name contains pattern (any case) in every table and "
             "view: schema, table, column, type. Use it to find where a value lives "
             "(search 'email', 'customer', 'date') instead of guessing table names.",
             input_schema(in, pattern_required), object_schema(out, search_out_required), reader));

  /* sample_table_data */
  in = json_pack("{s:{s:s, s:i, s:s}, s:{s:s, s:s}, s:{s:s, s:{s:s}, s:i, s:s}, "
                 "s:{s:s, s:i, s:i, s:s}, s:{s:s, s:s}}",
                 "table", "type", "string", "minLength", 1, "description",
                 "A table or view name, as list_tables gives it.", "schema", "type", "string",
                 "description", "Its schema (default: the one the database finds).", "columns",
                 "type", "array", "items", "type", "string", "minItems", 1, "description",
                 "Only these columns (default: all).", "limit", "type", "integer", "minimum", 1,
                 "maximum", 100, "description", "Rows at most. Default 10.", "random", "type",
                 "boolean", "description",
                 "A random sample (default true); false: the first rows the database gives.");
  out = json_pack("{s:{s:[ss]}, s:{s:s}, s:o, s:{s:s, s:{s:s}}, s:{s:s}, s:{s:s, s:s}}", "schema",
                  "type", "string", "null", "table", "type", "string", "columns", schema_columns(),
                  "rows", "type", "array", "items", "type", "array", "random", "type", "boolean",
                  "truncated", "type", "boolean", "description",
                  "Rows were left out to stay within the response size limit.");
  static const char *const sample_out_required[] = {"table", "columns", "rows", "truncated", NULL};
  json_array_append_new(
      tools,
      define("sample_table_data", "Sample rows of a table",
             "A few real rows of a table or view (random by default), to see what its "
             "values look like - formats, codes, typical text - before writing SQL. "
             "Values are written as execute_query writes them.",
             input_schema(in, table_required), object_schema(out, sample_out_required), reader));

  /* analyze_table_statistics */
  in = json_pack("{s:{s:s, s:i, s:s}, s:{s:s, s:s}, s:{s:s, s:{s:s}, s:i, s:s}}", "table", "type",
                 "string", "minLength", 1, "description",
                 "A table or view name, as list_tables gives it.", "schema", "type", "string",
                 "description", "Its schema (default: the one the database finds).", "columns",
                 "type", "array", "items", "type", "string", "minItems", 1, "description",
                 "Only these columns (default: all). Each reads the whole table: name the ones "
                 "you need on a big table.");
  out = json_pack(
      "{s:{s:[ss]}, s:{s:s}, s:{s:[ss]}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:[ss]}, s:{s:s}, "
      "s:{s:s}, s:{s:s}, s:{s:s}, s:{}, s:{}, s:{s:[ss], s:s}, s:{}, s:{}, s:{}, s:{s:s}, "
      "s:{s:s}, s:{s:s, s:{s:s, s:{s:{}, s:{s:s}}}}}}}, s:{s:s}}",
      "schema", "type", "string", "null", "table", "type", "string", "row_count", "type", "integer",
      "null", "columns", "type", "array", "items", "type", "object", "properties", "name", "type",
      "string", "type", "type", "string", "null", "kind", "type", "string", "count", "type",
      "integer", "null_count", "type", "integer", "distinct_count", "type", "integer", "min", "max",
      "mean", "type", "number", "string", "description",
      "A number; \"NaN\" or \"Infinity\" where the values make one", "p25", "p50", "p75",
      "true_count", "type", "integer", "false_count", "type", "integer", "top_values", "type",
      "array", "items", "type", "object", "properties", "value", "count", "type", "integer",
      "truncated", "type", "boolean");
  static const char *const stats_out_required[] = {"table", "row_count", "columns", "truncated",
                                                   NULL};
  json_array_append_new(
      tools,
      define("analyze_table_statistics", "Column statistics",
             "Profile a table's columns by their kind: for every column count (values that "
             "are not NULL), null_count and distinct_count; min and max (for dates: the date "
             "range); for "
             "numbers the mean and the quartiles p25, p50 (median), p75; for text the most "
             "frequent values (top_values, up to 5 with counts); for booleans true_count and "
             "false_count. Use it to learn ranges and common values before filtering.",
             input_schema(in, table_required), object_schema(out, stats_out_required), reader));
  return tools;
}
