/*
 * tests/test-pg-catalog.c - catalog operations on a real PostgreSQL server
 * (tests/support/pg_fixture): schemas; tables and views with comments and
 * row estimates (NULL before ANALYZE); describe with types, defaults,
 * identity columns, comments and single / composite primary keys; the
 * default schema is the one the search_path finds; samples; column
 * statistics (booleans included, min/max in the type's own order, as
 * text); statistics of several columns by kind (mean, quartiles, true /
 * false counts, top values, date ranges); random samples of a column
 * subset; indexes and foreign keys; column search; the MCP exploration
 * tools (describe_table, analyze_table_statistics) on the same data; and
 * names written to inject SQL (quotes, backslashes, semicolons, comments)
 * that only ever name things. Every registry ends with no session of ours
 * left on the server.
 *
 * Owns, in each test, the registry it opens; the fixture owns the server
 * and the schema this file creates on it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcp/protocol.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

#define APP "qreg_t_catalog"
#define ODD_TABLE "odd \"name\"; DROP TABLE cat.items; --"
#define ODD_COLUMN "col'); DROP TABLE cat.items; --"

static const char *const FIXTURE_SQL[] = {
    "CREATE SCHEMA cat",
    "CREATE TABLE cat.items (id integer PRIMARY KEY, name text NOT NULL DEFAULT 'none', "
    "price numeric(6,2) DEFAULT 1.5, flag boolean, doc json)",
    "COMMENT ON TABLE cat.items IS 'things we sell'",
    "COMMENT ON COLUMN cat.items.name IS 'display name'",
    "INSERT INTO cat.items VALUES (1, 'apple', 0.5, true, '{}'), (2, 'pear', 2.25, false, NULL), "
    "(3, 'fig', NULL, NULL, NULL), (10, 'kiwi', 0.5, true, NULL)",
    "ANALYZE cat.items",
    "CREATE VIEW cat.cheap AS SELECT id, name FROM cat.items WHERE price < 2",
    "CREATE TABLE cat.pair (k1 integer, k2 text, v text, PRIMARY KEY (k1, k2))",
    "CREATE TABLE cat.\"odd \"\"name\"\"; DROP TABLE cat.items; --\" "
    "(a integer PRIMARY KEY, \"col'); DROP TABLE cat.items; --\" text)",
    "INSERT INTO cat.\"odd \"\"name\"\"; DROP TABLE cat.items; --\" VALUES (1, 'x'), (2, 'y'), "
    "(3, 'x')",
    "CREATE TABLE public.pubt (x bigint GENERATED ALWAYS AS IDENTITY, y text)",
    "CREATE TABLE cat.orders (id integer PRIMARY KEY, item integer NOT NULL REFERENCES cat.items, "
    "paid boolean, placed date, note text, k1 integer, k2 text, "
    "CONSTRAINT orders_pair FOREIGN KEY (k1, k2) REFERENCES cat.pair (k1, k2))",
    "CREATE INDEX orders_placed ON cat.orders (placed, item)",
    "CREATE UNIQUE INDEX orders_note ON cat.orders (lower(note))",
    "INSERT INTO cat.orders (id, item, paid, placed, note) VALUES "
    "(1, 1, true, '2024-01-05', 'a'), (2, 1, false, '2024-02-10', 'b'), "
    "(3, 2, true, '2024-03-15', NULL), (4, 10, NULL, '2023-12-31', 'a b')",
    "CREATE SCHEMA \"evil'schema\\\"",
    "CREATE TABLE \"evil'schema\\\".t (x integer)",
};

static int group_setup(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof FIXTURE_SQL / sizeof FIXTURE_SQL[0]; i++) {
    if (pg_admin_exec(pg_admin(), "%s", FIXTURE_SQL[i]) != 0)
      return -1;
  }
  return 0;
}

/* --- helpers (test_catalog_run/rows are in support/test_util.c) ------------------- */

/* The cell as text: "NULL", digits, "t"/"f", or the text itself. */
static const char *text_of(const qreg_page_t *page, uint64_t row, size_t column) {
  static char buf[4][64];
  static unsigned next;
  assert_true(row < page->row_count && column < page->column_count);
  const qreg_value_t *v = &page->values[row * page->column_count + column];
  char *out = buf[next++ % 4];
  switch (v->type) {
  case QREG_TYPE_NULL:
    return "NULL";
  case QREG_TYPE_INT:
    snprintf(out, 64, "%lld", (long long)v->v.i);
    return out;
  case QREG_TYPE_BOOL:
    return v->v.b ? "t" : "f";
  case QREG_TYPE_FLOAT:
    snprintf(out, 64, "%g", v->v.f);
    return out;
  default:
    return v->v.s.ptr;
  }
}

/* The first width columns of each row, as text, row-major. */
static void assert_rows_n(const qreg_page_t *page, uint64_t rows, size_t width,
                          const char *const *cells) {
  if (page->row_count != rows)
    fail_msg("%llu rows, expected %llu", (unsigned long long)page->row_count,
             (unsigned long long)rows);
  assert_true(width <= page->column_count);
  for (uint64_t r = 0; r < rows; r++) {
    for (size_t c = 0; c < width; c++) {
      const char *got = text_of(page, r, c), *want = cells[r * width + c];
      if (strcmp(got, want) != 0)
        fail_msg("row %llu column %zu: %s, expected %s", (unsigned long long)r, c, got, want);
    }
  }
}

static void assert_rows(const qreg_page_t *page, uint64_t rows, const char *const *cells) {
  assert_rows_n(page, rows, page->column_count, cells);
}

/* Whether some row has text in column. */
static bool has_row(const qreg_page_t *page, size_t column, const char *text) {
  for (uint64_t r = 0; r < page->row_count; r++) {
    if (strcmp(text_of(page, r, column), text) == 0)
      return true;
  }
  return false;
}

static const char *const TABLES_COLUMNS[] = {"schema",  "name",         "type",
                                             "comment", "row_estimate", NULL};
static const char *const DESCRIBE_COLUMNS[] = {
    "ordinal", "name", "type", "nullable", "default_value", "comment", "primary_key", "kind", NULL};
static const char *const STATS_COLUMNS[] = {
    "row_count", "null_count", "distinct_count", "min_value",   "max_value",  "mean",        "p25",
    "p50",       "p75",        "true_count",     "false_count", "top_values", "column_name", NULL};
static const char *const INDEX_COLUMNS[] = {"index_name", "columns", "is_unique", "is_primary",
                                            NULL};
static const char *const FOREIGN_KEY_COLUMNS[] = {
    "name", "columns", "referenced_schema", "referenced_table", "referenced_columns", NULL};
static const char *const SEARCH_COLUMNS[] = {"schema", "table_name", "column_name", "type", NULL};

/* --- tests ------------------------------------------------------------------------ */

static void schemas_and_tables(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(NULL, APP, 2, false);
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SCHEMAS);
  static const char *const schema_columns[] = {"schema_name", NULL};
  qreg_page_t *page = test_catalog_rows(reg, &request, schema_columns);
  assert_true(has_row(page, 0, "cat"));
  assert_true(has_row(page, 0, "public"));
  assert_true(has_row(page, 0, "evil'schema\\"));
  assert_false(has_row(page, 0, "pg_catalog"));
  assert_false(has_row(page, 0, "information_schema"));
  assert_false(has_row(page, 0, "pg_toast"));
  qreg_page_free(page);

  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  request.schema = "cat";
  page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
  assert_rows(page, 5,
              (const char *const[]){
                  "cat", "cheap",   "view",  "NULL",           "NULL",
                  "cat", "items",   "table", "things we sell", "4",
                  "cat", ODD_TABLE, "table", "NULL",           "NULL", /* never analyzed */
                  "cat", "orders",  "table", "NULL",           "NULL",
                  "cat", "pair",    "table", "NULL",           "NULL",
              });
  qreg_page_free(page);

  /* Every user schema; never the system's. */
  request.schema = NULL;
  page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
  assert_true(has_row(page, 1, "pubt"));
  assert_true(has_row(page, 0, "evil'schema\\"));
  assert_false(has_row(page, 0, "pg_catalog"));
  assert_false(has_row(page, 1, "pg_class"));
  qreg_page_free(page);

  /* A quote and a backslash in a schema name are the name's own. */
  request.schema = "evil'schema\\";
  page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
  assert_rows(page, 1, (const char *const[]){"evil'schema\\", "t", "table", "NULL", "NULL"});
  qreg_page_free(page);
  static const char *const hostile[] = {"cat' OR 'x'='x", "cat\\' OR true --", "x'; --"};
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    request.schema = hostile[i];
    page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
    if (page->row_count != 0)
      fail_msg("schema %s: %llu tables", hostile[i], (unsigned long long)page->row_count);
    qreg_page_free(page);
  }
  pg_test_close_checked(reg, APP);
}

static void describe(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(NULL, APP, 2, false);
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
  request.schema = "cat";
  request.table = "items";
  qreg_page_t *page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  static const char *const kinds[] = {"number", "text", "number", "boolean", "other"};
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(text_of(page, i, 7), kinds[i]);
  assert_rows_n(page, 5, 7,
                (const char *const[]){
                    "1", "id",    "integer",      "f", "NULL",         "NULL",         "t",
                    "2", "name",  "text",         "f", "'none'::text", "display name", "f",
                    "3", "price", "numeric(6,2)", "t", "1.5",          "NULL",         "f",
                    "4", "flag",  "boolean",      "t", "NULL",         "NULL",         "f",
                    "5", "doc",   "json",         "t", "NULL",         "NULL",         "f",
                });
  qreg_page_free(page);

  request.table = "pair";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 3, 7,
                (const char *const[]){
                    "1", "k1", "integer", "f", "NULL", "NULL", "t",
                    "2", "k2", "text",    "f", "NULL", "NULL", "t",
                    "3", "v",  "text",    "t", "NULL", "NULL", "f",
                });
  qreg_page_free(page);

  request.table = ODD_TABLE;
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 2, 7,
                (const char *const[]){"1", "a", "integer", "f", "NULL", "NULL", "t", "2",
                                      ODD_COLUMN, "text", "t", "NULL", "NULL", "f"});
  qreg_page_free(page);

  /* No schema: what the search_path finds. public.pubt is found; cat.items
     is not (cat is not on the path). */
  request.schema = NULL;
  request.table = "pubt";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 2, 7,
                (const char *const[]){"1", "x", "bigint", "f", "generated always as identity",
                                      "NULL", "f", "2", "y", "text", "t", "NULL", "NULL", "f"});
  qreg_page_free(page);
  request.table = "items";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_int_equal(page->row_count, 0);
  qreg_page_free(page);
  pg_test_close_checked(reg, APP);
}

static void sample_stats_search(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(NULL, APP, 2, false);
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.schema = "cat";
  request.table = "items";
  request.limit = 3;
  static const char *const item_columns[] = {"id", "name", "price", "flag", "doc", NULL};
  qreg_page_t *page = test_catalog_rows(reg, &request, item_columns);
  assert_int_equal(page->row_count, 3);
  qreg_page_free(page);
  request.table = ODD_TABLE;
  request.limit = 0;
  static const char *const odd_columns[] = {"a", ODD_COLUMN, NULL};
  page = test_catalog_rows(reg, &request, odd_columns);
  assert_int_equal(page->row_count, 3);
  qreg_page_free(page);

  /* Statistics: min and max in the type's order (10 > 2 as integers),
     booleans too (they have no min()), as text. */
  qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
  request.schema = "cat";
  request.table = "items";
  static const struct {
    const char *column;
    const char *cells[5];
  } stats[] = {
      {"id", {"4", "0", "4", "1", "10"}},
      {"price", {"4", "1", "2", "0.50", "2.25"}},
      {"flag", {"4", "1", "2", "false", "true"}},
      {"name", {"4", "0", "4", "apple", "pear"}},
  };
  for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
    request.column = stats[i].column;
    page = test_catalog_rows(reg, &request, STATS_COLUMNS);
    assert_rows_n(page, 1, 5, stats[i].cells);
    qreg_page_free(page);
  }
  request.table = ODD_TABLE;
  request.column = ODD_COLUMN;
  page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows_n(page, 1, 5, (const char *const[]){"3", "0", "2", "x", "y"});
  qreg_page_free(page);

  /* Several columns, each with the statistics of its kind, a row each in
     the order asked. price: 0.50, 2.25, NULL, 0.50 (mean 1.08333; quartiles
     by percentile_disc 0.50, 0.50, 2.25); name: four distinct; flag: true,
     false, NULL, true; doc (json, "other": compared as text). */
  request.table = "items";
  request.column = NULL;
  static const char *const stats_columns[] = {"price", "name", "flag", "doc"};
  static const char *const item_kinds[] = {"number", "text", "boolean", "other"};
  request.columns = stats_columns;
  request.column_kinds = item_kinds;
  request.column_count = 4;
  page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows(page, 4,
              (const char *const[]){
                  "4",
                  "1",
                  "2",
                  "0.50",
                  "2.25",
                  "1.08333",
                  "0.50",
                  "0.50",
                  "2.25",
                  "NULL",
                  "NULL",
                  "NULL",
                  "price",
                  "4",
                  "0",
                  "4",
                  "apple",
                  "pear",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "[{\"value\" : \"apple\", \"count\" : 1}, {\"value\" : \"fig\", \"count\" : 1}, "
                  "{\"value\" : \"kiwi\", \"count\" : 1}, {\"value\" : \"pear\", \"count\" : 1}]",
                  "name",
                  "4",
                  "1",
                  "2",
                  "false",
                  "true",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "2",
                  "1",
                  "NULL",
                  "flag",
                  "4",
                  "3",
                  "1",
                  "{}",
                  "{}",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "NULL",
                  "doc"});
  qreg_page_free(page);
  request.table = "orders";
  static const char *const order_columns[] = {"placed", "item"};
  static const char *const order_kinds[] = {"date", "number"};
  request.columns = order_columns;
  request.column_kinds = order_kinds;
  request.column_count = 2;
  page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows(page, 2,
              (const char *const[]){"4",      "0",    "4",    "2023-12-31", "2024-03-15", "NULL",
                                    "NULL",   "NULL", "NULL", "NULL",       "NULL",       "NULL",
                                    "placed", "4",    "0",    "3",          "1",          "10",
                                    "3.5",    "1",    "1",    "2",          "NULL",       "NULL",
                                    "NULL",   "item"});
  qreg_page_free(page);
  request.columns = NULL;
  request.column_kinds = NULL;
  request.column_count = 0;

  /* A sample of a column subset, in random order: only those columns, the
     table's rows. */
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.schema = "cat";
  request.table = "items";
  static const char *const sample_columns[] = {"name", "id"};
  request.columns = sample_columns;
  request.column_count = 2;
  request.random = true;
  static const char *const sample_names[] = {"name", "id", NULL};
  page = test_catalog_rows(reg, &request, sample_names);
  assert_int_equal(page->row_count, 4);
  for (const char *name = "apple"; name; name = NULL)
    assert_true(has_row(page, 0, name));
  assert_true(has_row(page, 1, "10"));
  qreg_page_free(page);

  /* Indexes: the primary key first, then by name; expressions as written. */
  qreg_catalog_init(&request, QREG_CATALOG_INDEXES);
  request.schema = "cat";
  request.table = "orders";
  page = test_catalog_rows(reg, &request, INDEX_COLUMNS);
  assert_rows(page, 3,
              (const char *const[]){"orders_pkey", "id", "t", "t", "orders_note", "lower(note)",
                                    "t", "f", "orders_placed", "placed, item", "f", "f"});
  qreg_page_free(page);
  qreg_catalog_init(&request, QREG_CATALOG_FOREIGN_KEYS);
  request.schema = "cat";
  request.table = "orders";
  page = test_catalog_rows(reg, &request, FOREIGN_KEY_COLUMNS);
  assert_rows(page, 2,
              (const char *const[]){"orders_item_fkey", "item", "cat", "items", "id", "orders_pair",
                                    "k1, k2", "cat", "pair", "k1, k2"});
  qreg_page_free(page);

  qreg_catalog_init(&request, QREG_CATALOG_SEARCH_COLUMNS);
  request.schema = "cat";
  request.pattern = "NAME";
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_rows(
      page, 2,
      (const char *const[]){"cat", "cheap", "name", "text", "cat", "items", "name", "text"});
  qreg_page_free(page);
  request.schema = NULL;
  request.pattern = "_"; /* a plain substring: no column has one */
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_int_equal(page->row_count, 0);
  qreg_page_free(page);
  request.pattern = "'); drop";
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_rows(page, 1, (const char *const[]){"cat", ODD_TABLE, ODD_COLUMN, "text"});
  qreg_page_free(page);
  pg_test_close_checked(reg, APP);
}

/* One tools/call through the MCP handler (2026-07-28, stateless): the
   structuredContent of its result, which must not be an error. */
static json_t *mcp_tool(mcp_server_t *server, const char *tool, const char *arguments) {
  char *line = NULL;
  assert_true(asprintf(&line,
                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                       "\"name\":\"%s\",\"arguments\":%s,\"_meta\":{\"io.modelcontextprotocol/"
                       "protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/"
                       "clientCapabilities\":{}}}}",
                       tool, arguments) > 0);
  size_t len = 0;
  char *reply = mcp_server_handle_message(server, line, strlen(line), &len);
  free(line);
  assert_non_null(reply);
  json_t *msg = json_loadb(reply, len, 0, NULL);
  free(reply);
  json_t *result = json_object_get(msg, "result");
  if (!json_is_false(json_object_get(result, "isError")))
    fail_msg("%s: %s", tool, json_dumps(msg, 0));
  json_t *structured = json_incref(json_object_get(result, "structuredContent"));
  json_decref(msg);
  return structured;
}

/* The exploration tools of `qreg mcp` on PostgreSQL: describe_table with
   kinds, primary key, indexes and foreign keys, and the statistics of each
   kind, on the known data of the fixture. */
static void mcp_exploration_tools(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(NULL, APP, 2, false);
  mcp_settings_t settings = {.max_message_bytes = 1 << 20,
                             .max_response_bytes = 1 << 20,
                             .poll_interval_ms = 100,
                             .ttl_ms = 60000,
                             .timeout_ms = 60000};
  mcp_server_t *server = NULL;
  assert_int_equal(mcp_server_new(reg, &settings, &server), 0);
  json_t *got = mcp_tool(server, "describe_table", "{\"schema\":\"cat\",\"table\":\"orders\"}");
  json_t *want = json_loads(
      "{\"primary_key\":[\"id\"],\"indexes\":["
      "{\"name\":\"orders_pkey\",\"columns\":[\"id\"],\"unique\":true,\"primary\":true},"
      "{\"name\":\"orders_note\",\"columns\":[\"lower(note)\"],\"unique\":true,\"primary\":false},"
      "{\"name\":\"orders_placed\",\"columns\":[\"placed\",\"item\"],\"unique\":false,"
      "\"primary\":false}],\"foreign_keys\":["
      "{\"name\":\"orders_item_fkey\",\"columns\":[\"item\"],\"referenced_schema\":\"cat\","
      "\"referenced_table\":\"items\",\"referenced_columns\":[\"id\"]},"
      "{\"name\":\"orders_pair\",\"columns\":[\"k1\",\"k2\"],\"referenced_schema\":\"cat\","
      "\"referenced_table\":\"pair\",\"referenced_columns\":[\"k1\",\"k2\"]}]}",
      0, NULL);
  const char *key;
  json_t *value;
  json_object_foreach(want, key, value) {
    if (!json_equal(value, json_object_get(got, key)))
      fail_msg("describe_table %s: %s", key, json_dumps(json_object_get(got, key), 0));
  }
  json_t *kinds = json_array();
  size_t i;
  json_t *column;
  json_array_foreach(json_object_get(got, "columns"), i, column)
      json_array_append(kinds, json_object_get(column, "kind"));
  json_t *want_kinds = json_loads(
      "[\"number\",\"number\",\"boolean\",\"date\",\"text\",\"number\",\"text\"]", 0, NULL);
  assert_true(json_equal(kinds, want_kinds));
  json_decref(want_kinds);
  json_decref(kinds);
  json_decref(want);
  json_decref(got);

  got = mcp_tool(server, "analyze_table_statistics",
                 "{\"schema\":\"cat\",\"table\":\"orders\",\"columns\":[\"paid\",\"item\",\"note\","
                 "\"placed\"]}");
  want = json_loads(
      "{\"row_count\":4,\"columns\":["
      "{\"name\":\"paid\",\"type\":\"boolean\",\"kind\":\"boolean\",\"count\":3,\"null_count\":1,"
      "\"distinct_count\":2,\"min\":\"false\",\"max\":\"true\",\"true_count\":2,\"false_count\":1},"
      "{\"name\":\"item\",\"type\":\"integer\",\"kind\":\"number\",\"count\":4,\"null_count\":0,"
      "\"distinct_count\":3,\"min\":\"1\",\"max\":\"10\",\"mean\":3.5,\"p25\":\"1\",\"p50\":\"1\","
      "\"p75\":\"2\"},"
      "{\"name\":\"note\",\"type\":\"text\",\"kind\":\"text\",\"count\":3,\"null_count\":1,"
      "\"distinct_count\":3,\"min\":\"a\",\"max\":\"b\",\"top_values\":[{\"value\":\"a\",\"count\":"
      "1},"
      "{\"value\":\"a b\",\"count\":1},{\"value\":\"b\",\"count\":1}]},"
      "{\"name\":\"placed\",\"type\":\"date\",\"kind\":\"date\",\"count\":4,\"null_count\":0,"
      "\"distinct_count\":4,\"min\":\"2023-12-31\",\"max\":\"2024-03-15\"}]}",
      0, NULL);
  json_object_foreach(want, key, value) {
    if (!json_equal(value, json_object_get(got, key)))
      fail_msg("analyze_table_statistics %s: %s", key, json_dumps(json_object_get(got, key), 0));
  }
  json_decref(want);
  json_decref(got);
  mcp_server_free(server); /* nothing parked: every call was answered */
  pg_test_close_checked(reg, APP);
}

static void injection_attempts_only_name_things(void **state) {
  (void)state;
  static const char *const attempts[] = {
      "items' UNION SELECT 1,2,3,4,5,6,7 --",
      "items\"; DROP TABLE cat.items; --",
      "items; DROP TABLE cat.items",
      "items\\'; DROP TABLE cat.items; --",
      "x' OR 'a'='a",
  };
  /* Writes allowed for the registry, so only the quoting stands in the way
     (catalog queries are read-only too). */
  qreg_t *reg = pg_test_open(NULL, APP, 2, true);
  for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
    qreg_catalog_request_t request;
    qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
    request.schema = "cat";
    request.table = attempts[i];
    qreg_page_t *page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
    if (page->row_count != 0)
      fail_msg("describe %s: %llu rows", attempts[i], (unsigned long long)page->row_count);
    qreg_page_free(page);

    qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
    request.schema = "cat";
    request.table = attempts[i];
    qreg_snapshot_t *snap = test_catalog_run(reg, &request);
    if (snap->status != QREG_FAILED || strcmp(snap->error.code, "42P01") != 0)
      fail_msg("sample %s: %s %s %s", attempts[i], qreg_status_name(snap->status), snap->error.code,
               snap->error.message);
    qreg_snapshot_free(snap);

    qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
    request.schema = "cat";
    request.table = "items";
    request.column = attempts[i];
    snap = test_catalog_run(reg, &request);
    if (snap->status != QREG_FAILED || strcmp(snap->error.code, "42703") != 0)
      fail_msg("column %s: %s %s %s", attempts[i], qreg_status_name(snap->status), snap->error.code,
               snap->error.message);
    qreg_snapshot_free(snap);
  }
  assert_int_equal(pg_admin_int(pg_admin(), "SELECT count(*) FROM cat.items"), 4);

  /* A name longer than the server keeps (63 bytes) would be cut to another
     name: refused before anything runs. */
  char long_name[70];
  memset(long_name, 'i', 64);
  long_name[64] = '\0';
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.table = long_name;
  qreg_id_t id;
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);
  assert_non_null(strstr(qreg_last_error(), "63"));

  char *quoted = NULL;
  assert_int_equal(qreg_quote_identifier(reg, "a\"b", &quoted), 0);
  assert_string_equal(quoted, "\"a\"\"b\"");
  free(quoted);
  assert_string_equal(qreg_driver_name(reg), "postgres");
  pg_test_close_checked(reg, APP);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(schemas_and_tables),
      cmocka_unit_test(describe),
      cmocka_unit_test(sample_stats_search),
      cmocka_unit_test(mcp_exploration_tools),
      cmocka_unit_test(injection_attempts_only_name_things),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
