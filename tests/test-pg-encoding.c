/*
 * tests/test-pg-encoding.c - PostgreSQL values as every output writes them
 * (docs/values.md), on a real server (tests/support/pg_fixture): for each
 * type family, the exact JSON that qreg_value_json() writes for the value
 * the driver fetched, and the same row through MCP (fetch_query_result's
 * response line) and through the program, `qreg query --json` (QREG_BIN,
 * set by ctest). Times are RFC 3339 / ISO
 * 8601 (Z offsets, expanded years for BC and after 9999, ISO 8601
 * intervals) whatever the role's own DateStyle, TimeZone or IntervalStyle.
 * same_as_psql compares qreg's text of each value with psql's, the server's
 * own client, family by family (how, at psql_compare_t).
 *
 * Owns, in each test, the registry it opens; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
           pg_fixture_reader_conninfo(), script);
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
      /* The wrapper's key at the top level: wrapped too; deeper, data. */
      {"'{\"$unembedded_json\": 1}'::jsonb", "{\"$unembedded_json\":{\"reason\":\"reserved_key\","
                                             "\"text\":\"{\\\"$unembedded_json\\\": 1}\"}}"},
      {"'{\"a\": {\"$unembedded_json\": 1}}'::jsonb", "{\"a\":{\"$unembedded_json\":1}}"},
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
  snprintf(url, sizeof url, "%s dbname=qreg_ascii", pg_fixture_reader_conninfo());
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

/* --- the same values as psql shows them ------------------------------------------- */

/*
 * How a psql value and qreg's text of it (qreg_value_text, the table cell;
 * its JSON differs only by quoting) are compared. psql runs with the session
 * settings qreg pins (PGOPTIONS: DateStyle ISO, TimeZone UTC, IntervalStyle
 * iso_8601, bytea_output hex, extra_float_digits 3), so its text is the
 * server's canonical text for each family:
 *  - SAME: byte for byte: integers, numeric, money, text, char, name, uuid,
 *    network types, bit strings, dates, times, intervals, arrays, ranges,
 *    geometric types, NULL (both empty).
 *  - FLOAT: both read back (strtod) as the same double; qreg always has a
 *    fraction or an exponent ("3.0" for psql's "3").
 *  - BOOL: psql's "t"/"f" is qreg's "true"/"false".
 *  - BYTES: psql's "\x" hex and qreg's base64 decode to the same bytes.
 *  - JSON: the same tokens: psql's text with the white space between tokens
 *    dropped (qreg drops it so a value stays on one line).
 *  - TIMESTAMP: RFC 3339 of psql's text: the space between date and time is
 *    "T", a "+00" offset is "Z".
 * Not compared here, because qreg deliberately writes them otherwise (see
 * the times test above): BC and after-9999 years (ISO 8601 expanded years)
 * and timetz offsets (±HH:MM).
 */
typedef enum {
  SAME,
  FLOAT,
  BOOL,
  BYTES,
  JSON,
  TIMESTAMP
} psql_compare_t;

typedef struct psql_case {
  const char *sql;
  psql_compare_t compare;
} psql_case_t;

/* Each value of one row as psql -At prints it: NUL-separated fields
   (--field-separator-zero), the row ending with a newline. */
static char **psql_row(const char *sql, size_t count, char **buffer) {
  char script[] = "/tmp/qreg-pg-psql-XXXXXX";
  int fd = mkstemp(script);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fputs(sql, f);
  fclose(f);
  char command[2048];
  snprintf(command, sizeof command,
           "PGOPTIONS='-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 "
           "-c bytea_output=hex -c extra_float_digits=3' '%s/psql' -X -q -At -z "
           "-v ON_ERROR_STOP=1 -d '%s' -f %s",
           pg_fixture_bindir(), pg_fixture_conninfo(), script);
  FILE *p = popen(command, "r");
  assert_non_null(p);
  static char out[65536];
  size_t len = fread(out, 1, sizeof out - 1, p);
  assert_int_equal(pclose(p), 0);
  unlink(script);
  assert_true(len > 0 && out[len - 1] == '\n');
  out[len - 1] = '\0';
  char **fields = calloc(count, sizeof *fields);
  assert_non_null(fields);
  size_t at = 0;
  for (size_t i = 0; i < count; i++) {
    assert_true(at < len);
    fields[i] = out + at;
    at += strlen(out + at) + 1;
  }
  assert_int_equal(at, len);
  *buffer = out;
  return fields;
}

static int hex_digit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int base64_digit(char c) {
  const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *at = c ? strchr(alphabet, c) : NULL;
  return at ? (int)(at - alphabet) : -1;
}

/* psql's "\x00ff" and qreg's "AP8=" hold the same bytes. */
static bool same_bytes(const char *hex, const char *base64) {
  if (strncmp(hex, "\\x", 2) != 0)
    return false;
  hex += 2;
  unsigned char from_hex[256], from_base64[256];
  size_t hex_len = 0, base64_len = 0;
  for (; hex[0] && hex[1] && hex_len < sizeof from_hex; hex += 2)
    from_hex[hex_len++] = (unsigned char)(hex_digit(hex[0]) * 16 + hex_digit(hex[1]));
  unsigned bits = 0, nbits = 0;
  for (; *base64 && *base64 != '=' && base64_len < sizeof from_base64; base64++) {
    int d = base64_digit(*base64);
    if (d < 0)
      return false;
    bits = (bits << 6) | (unsigned)d;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      from_base64[base64_len++] = (unsigned char)(bits >> nbits);
      bits &= (1u << nbits) - 1;
    }
  }
  return hex_len == base64_len && memcmp(from_hex, from_base64, hex_len) == 0;
}

/* JSON text without the white space between tokens. */
static void json_without_space(const char *in, char *out, size_t size) {
  bool in_string = false;
  size_t n = 0;
  for (; *in && n + 1 < size; in++) {
    if (in_string) {
      if (*in == '\\' && in[1]) {
        out[n++] = *in++;
      } else if (*in == '"') {
        in_string = false;
      }
    } else if (*in == ' ' || *in == '\n' || *in == '\t' || *in == '\r') {
      continue;
    } else if (*in == '"') {
      in_string = true;
    }
    out[n++] = *in;
  }
  out[n] = '\0';
}

static bool psql_same(psql_compare_t compare, const char *psql, const char *qreg) {
  char expected[512];
  switch (compare) {
  case FLOAT:
    return strtod(psql, NULL) == strtod(qreg, NULL) && strpbrk(qreg, ".e") != NULL;
  case BOOL:
    return strcmp(qreg, strcmp(psql, "t") == 0 ? "true" : "false") == 0;
  case BYTES:
    return same_bytes(psql, qreg);
  case JSON:
    json_without_space(psql, expected, sizeof expected);
    return strcmp(expected, qreg) == 0;
  case TIMESTAMP: {
    snprintf(expected, sizeof expected, "%s", psql);
    char *space = strchr(expected, ' ');
    if (space)
      *space = 'T';
    size_t len = strlen(expected);
    if (len > 3 && strcmp(expected + len - 3, "+00") == 0)
      strcpy(expected + len - 3, "Z");
    return strcmp(expected, qreg) == 0;
  }
  case SAME:
  default:
    return strcmp(psql, qreg) == 0;
  }
}

/* One row of expressions through psql and through qreg, compared value by
   value as each case says. */
static void check_psql(const psql_case_t *cases, size_t count) {
  expectation_t *as_sql = calloc(count, sizeof *as_sql);
  assert_non_null(as_sql);
  for (size_t i = 0; i < count; i++)
    as_sql[i].sql = cases[i].sql;
  char *sql = select_of(as_sql, count);
  free(as_sql);
  char *buffer = NULL;
  char **psql = psql_row(sql, count, &buffer);
  qreg_t *reg = pg_test_open(NULL, APP, 1, false);
  qreg_id_t id = test_execute(reg, sql, NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->column_count, count);
  for (size_t i = 0; i < count; i++) {
    char text[512];
    assert_true(qreg_value_text(&page->values[i], text, sizeof text) < sizeof text);
    if (!psql_same(cases[i].compare, psql[i], text))
      fail_msg("%s: psql %s, qreg %s", cases[i].sql, psql[i], text);
  }
  qreg_page_free(page);
  pg_test_close_checked(reg, APP);
  free(psql);
  free(sql);
}

static void same_as_psql(void **state) {
  (void)state;
  static const psql_case_t cases[] = {
      {"1::int2", SAME},
      {"(-2147483648)::int4", SAME},
      {"9223372036854775807::int8", SAME},
      {"(-9223372036854775808)::int8", SAME},
      {"123.4500::numeric", SAME},
      {"12345678901234567890.123456789::numeric", SAME},
      {"'NaN'::numeric", SAME},
      {"1.5::money", SAME},
      {"3::float8", FLOAT},
      {"0.1::float8", FLOAT},
      {"0.1::float4", FLOAT},
      {"'4.9406564584124654e-324'::float8", FLOAT},
      {"'1.7976931348623157e308'::float8", FLOAT},
      {"'-0'::float8", FLOAT},
      {"true", BOOL},
      {"false", BOOL},
      {"'h\xc3\xa9llo \"q\"'::text", SAME},
      {"'c'::char(3)", SAME},
      {"'n'::name", SAME},
      {"'\\x00ff7f80'::bytea", BYTES},
      {"'\\x'::bytea", BYTES},
      {"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", SAME},
      {"'192.168.0.1'::inet", SAME},
      {"'10.0.0.0/8'::cidr", SAME},
      {"'08:00:2b:01:02:03'::macaddr", SAME},
      {"B'1010'", SAME},
      {"'2024-07-01'::date", SAME},
      {"'03:04:05.5'::time", SAME},
      {"'1 day 2 hours'::interval", SAME},
      {"'1 year -3 mons 4 days 00:00:01.5'::interval", SAME},
      {"ARRAY[1, NULL]", SAME},
      {"ARRAY['a b', 'c']", SAME},
      {"int4range(1, 10)", SAME},
      {"'(1,2)'::point", SAME},
      {"'a fat cat'::tsvector", SAME},
      {"NULL::int", SAME},
      {"'{\"n\": 12345678901234567890, \"a\": [1.50, \"x y\"]}'::json", JSON},
      {"'{\"b\": 2, \"a\": [1, 2]}'::jsonb", JSON},
      {"'3.14159265358979323846264338327950288'::jsonb", JSON},
      {"'2024-07-01 10:00'::timestamp", TIMESTAMP},
      {"'2024-07-01 10:00:00.123456+02'::timestamptz", TIMESTAMP},
  };
  check_psql(cases, sizeof cases / sizeof cases[0]);
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
      cmocka_unit_test(same_as_psql),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
