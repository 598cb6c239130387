/*
 * tests/test-pg-encoding.c - PostgreSQL values as every output writes them
 * (docs/values.md), on a real server (tests/support/pg_fixture): for each
 * type family, the exact JSON that qreg_value_json() writes for the value
 * the driver fetched, and the same row through MCP (fetch_query_result's
 * response line) and through the program, `qreg query --json` (QREG_BIN,
 * set by ctest). Times are RFC 3339 / ISO
 * 8601 (Z offsets, expanded years for BC and after 9999, ISO 8601
 * intervals) whatever the role's own DateStyle, TimeZone or IntervalStyle.
 *
 * Owns, in each test, the registry it opens; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "mcp/protocol.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

#define APP "qreg_t_encoding"

/* One expression and the JSON it must become. */
typedef struct expectation {
  const char *sql;
  const char *json;
} expectation_t;

/* SELECT e1, e2, ... ; returns the statement (malloc'd). */
static char *select_of(const expectation_t *cases, size_t count) {
  size_t cap = 64;
  for (size_t i = 0; i < count; i++)
    cap += strlen(cases[i].sql) + 2;
  char *sql = malloc(cap);
  assert_non_null(sql);
  strcpy(sql, "SELECT ");
  for (size_t i = 0; i < count; i++) {
    if (i > 0)
      strcat(sql, ", ");
    strcat(sql, cases[i].sql);
  }
  return sql;
}

/* The row as qreg query --json prints it: "[j1,j2,...]". */
static char *row_of(const expectation_t *cases, size_t count) {
  size_t cap = 4;
  for (size_t i = 0; i < count; i++)
    cap += strlen(cases[i].json) + 1;
  char *row = malloc(cap);
  assert_non_null(row);
  strcpy(row, "[");
  for (size_t i = 0; i < count; i++) {
    if (i > 0)
      strcat(row, ",");
    strcat(row, cases[i].json);
  }
  strcat(row, "]");
  return row;
}

/* One MCP request (2026-07-28, stateless) through the server's handler;
   returns the response line as a string (malloc'd). */
static char *mcp_call(mcp_server_t *server, const char *tool, const char *arguments) {
  char *line = NULL;
  int n = asprintf(&line,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"%s\",\"arguments\":%s,\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":"
                   "\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
                   tool, arguments);
  assert_true(n > 0);
  size_t reply_len = 0;
  char *reply = mcp_server_handle_message(server, line, strlen(line), &reply_len);
  assert_non_null(reply);
  free(line);
  char *text = malloc(reply_len + 1); /* the line is not NUL-terminated */
  assert_non_null(text);
  memcpy(text, reply, reply_len);
  text[reply_len] = '\0';
  free(reply);
  return text;
}

/* The same row through MCP (execute_query, then fetch_query_result), read
   byte for byte from the response line. */
static void check_mcp(qreg_t *reg, const char *sql, const char *row) {
  mcp_settings_t settings = {
      .max_message_bytes = 1 << 20,
      .max_response_bytes = 1 << 20,
      .poll_interval_ms = 100,
      .ttl_ms = 60000,
      .timeout_ms = 60000,
  };
  mcp_server_t *server = NULL;
  assert_int_equal(mcp_server_new(reg, &settings, &server), 0);
  json_t *args = json_pack("{s:s}", "sql", sql);
  char *args_text = json_dumps(args, JSON_COMPACT);
  json_decref(args);
  char *reply = mcp_call(server, "execute_query", args_text);
  free(args_text);
  const char *at = strstr(reply, "\"query_id\":\"");
  assert_non_null(at);
  qreg_id_t id;
  memcpy(id.str, at + strlen("\"query_id\":\""), QREG_ID_LEN);
  id.str[QREG_ID_LEN] = '\0';
  free(reply);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  char fetch_args[128];
  snprintf(fetch_args, sizeof fetch_args, "{\"query_id\":\"%s\"}", id.str);
  reply = mcp_call(server, "fetch_query_result", fetch_args);
  const char *structured = strstr(reply, "\"structuredContent\":");
  assert_non_null(structured);
  const char *rows = strstr(structured, "\"rows\":[");
  assert_non_null(rows);
  rows += strlen("\"rows\":[");
  if (strncmp(rows, row, strlen(row)) != 0 || strncmp(rows + strlen(row), "],", 2) != 0)
    fail_msg("MCP: got %.*s, want %s", (int)strlen(row) + 8, rows, row);
  free(reply);
  mcp_server_free(server);
}

/* Each value through the library's encoder, and the row through MCP. */
static void check_encoder(const expectation_t *cases, size_t count) {
  char *sql = select_of(cases, count);
  qreg_t *reg = pg_test_open(NULL, APP, 2, false);
  qreg_id_t id = test_execute(reg, sql, NULL);
  qreg_status_t status = test_wait(reg, &id);
  if (status != QREG_SUCCEEDED) {
    qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
    fail_msg("%s: %s", sql, snap->error.message);
  }
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  assert_int_equal(page->column_count, count);
  for (size_t i = 0; i < count; i++) {
    char json[512];
    size_t len = qreg_value_json(&page->values[i], json, sizeof json);
    assert_true(len < sizeof json);
    if (strcmp(json, cases[i].json) != 0)
      fail_msg("%s: got %s, want %s", cases[i].sql, json, cases[i].json);
  }
  qreg_page_free(page);
  char *row = row_of(cases, count);
  check_mcp(reg, sql, row);
  free(row);
  pg_test_close_checked(reg, APP);
  free(sql);
}

/* The same row through qreg query --json. */
static void check_cli(const expectation_t *cases, size_t count) {
  const char *bin = getenv("QREG_BIN");
  if (!bin)
    fail_msg("QREG_BIN is not set (ctest sets it to the qreg program)");
  char *sql = select_of(cases, count);
  char script[] = "/tmp/qreg-pg-encoding-XXXXXX";
  int fd = mkstemp(script);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fputs(sql, f);
  fclose(f);
  char command[1024];
  snprintf(command, sizeof command, "'%s' query --db '%s' --json - < %s", bin,
           pg_fixture_conninfo(), script);
  FILE *p = popen(command, "r");
  assert_non_null(p);
  static char out[65536];
  size_t len = fread(out, 1, sizeof out - 1, p);
  out[len] = '\0';
  assert_int_equal(pclose(p), 0);
  unlink(script);
  const char *start = strstr(out, "\"rows\":[\n");
  assert_non_null(start);
  start += strlen("\"rows\":[\n");
  const char *end = strchr(start, '\n');
  assert_non_null(end);
  char *row = row_of(cases, count);
  if (strncmp(start, row, (size_t)(end - start)) != 0 || strlen(row) != (size_t)(end - start))
    fail_msg("qreg query --json: got %.*s, want %s", (int)(end - start), start, row);
  free(row);
  free(sql);
}

static void check(const expectation_t *cases, size_t count) {
  check_encoder(cases, count);
  check_cli(cases, count);
}

#define CHECK(cases) check(cases, sizeof cases / sizeof cases[0])

static void integers(void **state) {
  (void)state;
  static const expectation_t cases[] = {
      {"1::int2", "1"},
      {"(-2147483648)::int4", "-2147483648"},
      {"9007199254740991::int8", "9007199254740991"},
      {"(-9007199254740991)::int8", "-9007199254740991"},
      {"9007199254740992::int8", "\"9007199254740992\""},
      {"9223372036854775807::int8", "\"9223372036854775807\""},
      {"(-9223372036854775808)::int8", "\"-9223372036854775808\""},
  };
  CHECK(cases);
}

static void floats_and_numeric(void **state) {
  (void)state;
  static const expectation_t cases[] = {
      {"3::float8", "3.0"},
      {"'-0'::float8", "-0.0"},
      {"0.1::float8", "0.1"},
      {"0.1::float4", "0.1"},
      {"'4.9406564584124654e-324'::float8", "5e-324"},
      {"'1.7976931348623157e308'::float8", "1.7976931348623157e+308"},
      {"'NaN'::float8", "\"NaN\""},
      {"'Infinity'::float4", "\"Infinity\""},
      {"'-Infinity'::float8", "\"-Infinity\""},
      {"123.4500::numeric", "\"123.4500\""},
      {"12345678901234567890.123456789::numeric", "\"12345678901234567890.123456789\""},
      {"'NaN'::numeric", "\"NaN\""},
  };
  CHECK(cases);
}

static void text_bytes_bool(void **state) {
  (void)state;
  static const expectation_t cases[] = {
      {"'h\xc3\xa9llo \"q\"'::text", "\"h\xc3\xa9llo \\\"q\\\"\""},
      {"'c'::char(3)", "\"c  \""},
      {"E'a\\nb'::varchar", "\"a\\nb\""},
      {"'\\x00ff'::bytea", "\"AP8=\""},
      {"''::bytea", "\"\""},
      {"true", "true"},
      {"NULL::int", "null"},
      {"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""},
      {"ARRAY[1, NULL]", "\"{1,NULL}\""},
      {"int4range(1, 10)", "\"[1,10)\""},
  };
  CHECK(cases);
}

/* json exactly as stored (digits, duplicate keys, escapes); jsonb as the
   server prints it; nothing re-parsed into doubles. */
static void json(void **state) {
  (void)state;
  static const expectation_t cases[] = {
      {"'{\"n\":12345678901234567890}'::jsonb", "{\"n\":12345678901234567890}"},
      {"'[1e400]'::json", "[1e400]"},
      {"'3.14159265358979323846264338327950288'::jsonb", "3.14159265358979323846264338327950288"},
      {"'{\"a\":1,\"a\":2}'::json", "{\"a\":1,\"a\":2}"},
      {"'{\"z\":\"a\\u0000b\"}'::json", "{\"z\":\"a\\u0000b\"}"},
      {"'{\"b\": 2, \"a\": [1, 2]}'::jsonb", "{\"a\":[1,2],\"b\":2}"},
      /* What cannot be embedded is in the one wrapper, with the reason. */
      {"'\"\\ud800\"'::json", "{\"$unembedded_json\":{\"reason\":\"unpaired_surrogate\","
                              "\"text\":\"\\\"\\\\ud800\\\"\"}}"},
  };
  CHECK(cases);
}

static void times(void **state) {
  (void)state;
  static const expectation_t cases[] = {
      {"'2024-07-01 10:00+02'::timestamptz", "\"2024-07-01T08:00:00Z\""},
      {"'2024-07-01 10:00:00.123456+00'::timestamptz", "\"2024-07-01T10:00:00.123456Z\""},
      {"'2024-07-01 10:00'::timestamp", "\"2024-07-01T10:00:00\""},
      {"'2024-07-01'::date", "\"2024-07-01\""},
      {"'0044-03-15 12:00 BC'::timestamptz", "\"-000043-03-15T12:00:00Z\""},
      {"'0001-01-01 BC'::date", "\"0000-01-01\""},
      {"'0044-03-15 BC'::date", "\"-000043-03-15\""},
      {"'10000-01-01'::timestamp", "\"+010000-01-01T00:00:00\""},
      {"'10000-01-01 00:00+00'::timestamptz", "\"+010000-01-01T00:00:00Z\""},
      {"'infinity'::timestamptz", "\"infinity\""},
      {"'-infinity'::date", "\"-infinity\""},
      {"'03:04:05.5'::time", "\"03:04:05.5\""},
      {"'10:00+02'::timetz", "\"10:00:00+02:00\""},
      {"'10:00+05:30'::timetz", "\"10:00:00+05:30\""},
      {"'10:00+00'::timetz", "\"10:00:00Z\""},
      {"'1 day 2 hours'::interval", "\"P1DT2H\""},
      {"'1 year -3 mons 4 days 00:00:01.5'::interval", "\"P9M4DT1.5S\""},
      {"'-1 minute'::interval", "\"PT-1M\""},
      {"'0'::interval", "\"PT0S\""},
  };
  CHECK(cases);
}

/* The session settings are the connection's own: a role that asks for
   other styles changes nothing. */
static void times_whatever_the_role_says(void **state) {
  (void)state;
  pg_admin_t *admin = pg_admin();
  assert_int_equal(pg_admin_exec(admin, "ALTER ROLE qreg_test SET IntervalStyle = 'postgres'"), 0);
  assert_int_equal(pg_admin_exec(admin, "ALTER ROLE qreg_test SET DateStyle = 'SQL, DMY'"), 0);
  assert_int_equal(pg_admin_exec(admin, "ALTER ROLE qreg_test SET TimeZone = 'Asia/Kolkata'"), 0);
  static const expectation_t cases[] = {
      {"'2024-07-01 10:00+02'::timestamptz", "\"2024-07-01T08:00:00Z\""},
      {"'1 day 2 hours'::interval", "\"P1DT2H\""},
      {"'2024-07-01'::date", "\"2024-07-01\""},
  };
  check_encoder(cases, sizeof cases / sizeof cases[0]);
  assert_int_equal(pg_admin_exec(admin, "ALTER ROLE qreg_test RESET ALL"), 0);
}

/* Column type names on a registry's very first query, for built-in types
   outside the driver's own table too (multiranges, catalog row types), and
   for a table's row type. */
static void type_names_on_the_first_query(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(NULL, APP, 1, false);
  qreg_id_t id = test_execute(reg,
                              "SELECT int4multirange(int4range(1, 3)) AS a, c AS b, "
                              "'1'::xid8 AS c, pg_current_snapshot() AS d, "
                              "'english'::regconfig AS e, '(1,2)'::point AS f "
                              "FROM pg_catalog.pg_class c LIMIT 1",
                              NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
  static const char *const types[] = {"int4multirange", "pg_class",  "xid8",
                                      "pg_snapshot",    "regconfig", "point"};
  assert_int_equal(snap->column_count, 6);
  for (size_t i = 0; i < 6; i++)
    assert_string_equal(snap->columns[i].type_name, types[i]);
  qreg_snapshot_free(snap);
  pg_test_close_checked(reg, APP);

  /* A table's row type is not loaded ahead (there can be many): it is
     looked up after the statement, before the query completes. */
  pg_admin_t *admin = pg_admin();
  assert_int_equal(pg_admin_exec(admin, "CREATE TABLE qreg_row_type (a int)"), 0);
  assert_int_equal(pg_admin_exec(admin, "INSERT INTO qreg_row_type VALUES (1), (2)"), 0);
  reg = pg_test_open(NULL, APP, 1, false);
  id = test_execute(reg, "SELECT t, 1 AS n FROM qreg_row_type t", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  snap = pg_test_snapshot(reg, &id);
  assert_int_equal(snap->column_count, 2);
  assert_string_equal(snap->columns[0].type_name, "qreg_row_type");
  assert_string_equal(snap->columns[1].type_name, "integer");
  assert_int_equal(snap->row_count, 2);
  qreg_snapshot_free(snap);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_string_equal(page->columns[0].type_name, "qreg_row_type");
  assert_string_equal(page->columns[0].name, "t");
  qreg_page_free(page);
  pg_test_close_checked(reg, APP);
  assert_int_equal(pg_admin_exec(admin, "DROP TABLE qreg_row_type"), 0);
}

/* A SQL_ASCII database holds any bytes: the query succeeds (the server
   would refuse to send 0xFF to a UTF8 client, 22021) and each byte that is
   not UTF-8 reads U+FFFD, while valid UTF-8 text is kept. */
static void sql_ascii_database(void **state) {
  (void)state;
  pg_admin_t *admin = pg_admin();
  assert_int_equal(pg_admin_exec(admin, "CREATE DATABASE qreg_ascii ENCODING 'SQL_ASCII' "
                                        "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"),
                   0);
  char url[512];
  snprintf(url, sizeof url, "%s dbname=qreg_ascii", pg_fixture_conninfo());
  qreg_t *reg = pg_test_open(url, APP, 2, false);
  qreg_id_t id = test_execute(reg, "SELECT E'a\\xffb'::text, 'caf\xc3\xa9'::text", NULL);
  qreg_status_t status = test_wait(reg, &id);
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
  if (status != QREG_SUCCEEDED)
    fail_msg("%s", snap->error.message);
  qreg_snapshot_free(snap);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  char json[64];
  qreg_value_json(&page->values[0], json, sizeof json);
  assert_string_equal(json, "\"a\xef\xbf\xbd"
                            "b\"");
  qreg_value_json(&page->values[1], json, sizeof json);
  assert_string_equal(json, "\"caf\xc3\xa9\"");
  qreg_page_free(page);
  pg_test_close_checked(reg, APP);
  assert_int_equal(pg_admin_exec(admin, "DROP DATABASE qreg_ascii"), 0);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(integers),
      cmocka_unit_test(floats_and_numeric),
      cmocka_unit_test(text_bytes_bool),
      cmocka_unit_test(json),
      cmocka_unit_test(times),
      cmocka_unit_test(times_whatever_the_role_says),
      cmocka_unit_test(type_names_on_the_first_query),
      cmocka_unit_test(sql_ascii_database),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
