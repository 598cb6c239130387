/*
 * tests/test-pg-values.c - PostgreSQL values as qreg values, on a real server
 * (tests/support/pg_fixture): every mapped type round trips (int2/4/8,
 * float4/8, numeric exact as text, bool, text/varchar/char/name, json/jsonb
 * as JSON, bytea as bytes, date/time/timestamp(tz) in ISO 8601, uuid, arrays,
 * intervals, NULL), column type names come from the server (built in,
 * domains, enums, types created while the registry runs), and errors carry
 * SQLSTATE, message, detail and hint.
 *
 * Owns, in each test, the registry it opens and the types it creates through
 * the admin connection; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

typedef struct fetched {
  qreg_snapshot_t *snapshot;
  qreg_page_t *page;
} fetched_t;

/* Runs sql (must succeed) and fetches every row. */
static fetched_t run_fetch(qreg_t *reg, const char *sql) {
  qreg_id_t id = test_execute(reg, sql, NULL);
  qreg_status_t status = test_wait(reg, &id);
  fetched_t f = {pg_test_snapshot(reg, &id), NULL};
  if (status != QREG_SUCCEEDED)
    fail_msg("%s: %s (%s)", sql, qreg_status_name(status), f.snapshot->error.message);
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &f.page), 0);
  return f;
}

static void fetched_free(fetched_t *f) {
  qreg_snapshot_free(f->snapshot);
  qreg_page_free(f->page);
}

static const qreg_value_t *cell(const fetched_t *f, uint64_t row, size_t col) {
  assert_true(row < f->page->row_count && col < f->page->column_count);
  return &f->page->values[row * f->page->column_count + col];
}

static void assert_text(const qreg_value_t *v, qreg_type_t type, const char *expected) {
  assert_int_equal(v->type, type);
  assert_int_equal(v->v.s.len, strlen(expected));
  assert_memory_equal(v->v.s.ptr, expected, strlen(expected));
}

static void scalar_types(void **state) {
  (void)state;
  const char *app = "qreg_t_values";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  fetched_t f = run_fetch(
      reg, "SELECT 1::int2 AS a, '-2147483648'::int4 AS b, 9223372036854775807::int8 AS c, "
           "1.5::float4 AS d, 0.1::float8 AS e, 123.4500::numeric AS f, true AS g, false AS h, "
           "'héllo ✓'::text AS i, 'v'::varchar(5) AS j, 'c'::char(3) AS k, 'n'::name AS l, "
           "'{\"a\": [1, 2]}'::json AS m, '{\"b\": 2, \"a\": 1}'::jsonb AS n, "
           "'\\x00ff10'::bytea AS o, '2024-01-02'::date AS p, '03:04:05.5'::time AS q, "
           "'2024-01-02 03:04:05.123'::timestamp AS r, "
           "'2024-01-02 03:04:05+02'::timestamptz AS s, "
           "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS t, ARRAY[1, 2, NULL] AS u, "
           "'1 day 02:00'::interval AS v, NULL::int AS w, NULL::text AS x, "
           "'NaN'::float8 AS y, '-Infinity'::float8 AS z, 1e300::float8 * 10 AS big, "
           "12345678901234567890.123456789::numeric AS huge");
  const struct {
    const char *name, *type;
  } columns[] = {{"a", "smallint"},
                 {"b", "integer"},
                 {"c", "bigint"},
                 {"d", "real"},
                 {"e", "double precision"},
                 {"f", "numeric"},
                 {"g", "boolean"},
                 {"h", "boolean"},
                 {"i", "text"},
                 {"j", "character varying"},
                 {"k", "character"},
                 {"l", "name"},
                 {"m", "json"},
                 {"n", "jsonb"},
                 {"o", "bytea"},
                 {"p", "date"},
                 {"q", "time without time zone"},
                 {"r", "timestamp without time zone"},
                 {"s", "timestamp with time zone"},
                 {"t", "uuid"},
                 {"u", "integer[]"},
                 {"v", "interval"},
                 {"w", "integer"},
                 {"x", "text"},
                 {"y", "double precision"},
                 {"z", "double precision"},
                 {"big", "double precision"},
                 {"huge", "numeric"}};
  size_t n = sizeof columns / sizeof columns[0];
  assert_int_equal(f.snapshot->column_count, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(f.snapshot->columns[i].name, columns[i].name);
    assert_string_equal(f.snapshot->columns[i].type_name, columns[i].type);
  }
  assert_int_equal(cell(&f, 0, 0)->type, QREG_TYPE_INT);
  assert_int_equal(cell(&f, 0, 0)->v.i, 1);
  assert_int_equal(cell(&f, 0, 1)->v.i, INT32_MIN);
  assert_int_equal(cell(&f, 0, 2)->v.i, INT64_MAX);
  assert_int_equal(cell(&f, 0, 3)->type, QREG_TYPE_FLOAT);
  assert_true(cell(&f, 0, 3)->v.f == 1.5);
  assert_true(cell(&f, 0, 4)->v.f == 0.1); /* exact round trip */
  assert_text(cell(&f, 0, 5), QREG_TYPE_TEXT, "123.4500");
  assert_int_equal(cell(&f, 0, 6)->type, QREG_TYPE_BOOL);
  assert_true(cell(&f, 0, 6)->v.b);
  assert_false(cell(&f, 0, 7)->v.b);
  assert_text(cell(&f, 0, 8), QREG_TYPE_TEXT, "héllo ✓");
  assert_text(cell(&f, 0, 9), QREG_TYPE_TEXT, "v");
  assert_text(cell(&f, 0, 10), QREG_TYPE_TEXT, "c  ");
  assert_text(cell(&f, 0, 11), QREG_TYPE_TEXT, "n");
  assert_text(cell(&f, 0, 12), QREG_TYPE_JSON, "{\"a\": [1, 2]}");
  assert_text(cell(&f, 0, 13), QREG_TYPE_JSON, "{\"a\": 1, \"b\": 2}");
  assert_int_equal(cell(&f, 0, 14)->type, QREG_TYPE_BYTES);
  assert_int_equal(cell(&f, 0, 14)->v.s.len, 3);
  assert_memory_equal(cell(&f, 0, 14)->v.s.ptr, "\x00\xff\x10", 3);
  assert_text(cell(&f, 0, 15), QREG_TYPE_TEXT, "2024-01-02");
  assert_text(cell(&f, 0, 16), QREG_TYPE_TEXT, "03:04:05.5");
  assert_text(cell(&f, 0, 17), QREG_TYPE_TEXT, "2024-01-02T03:04:05.123");
  assert_text(cell(&f, 0, 18), QREG_TYPE_TEXT, "2024-01-02T01:04:05Z"); /* in UTC */
  assert_text(cell(&f, 0, 19), QREG_TYPE_TEXT, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  assert_text(cell(&f, 0, 20), QREG_TYPE_TEXT, "{1,2,NULL}");
  assert_text(cell(&f, 0, 21), QREG_TYPE_TEXT, "P1DT2H"); /* IntervalStyle iso_8601 */
  assert_int_equal(cell(&f, 0, 22)->type, QREG_TYPE_NULL);
  assert_int_equal(cell(&f, 0, 23)->type, QREG_TYPE_NULL);
  assert_int_equal(cell(&f, 0, 24)->type, QREG_TYPE_FLOAT);
  assert_true(isnan(cell(&f, 0, 24)->v.f));
  assert_true(isinf(cell(&f, 0, 25)->v.f) && cell(&f, 0, 25)->v.f < 0);
  assert_true(cell(&f, 0, 26)->v.f == 1e301);
  assert_text(cell(&f, 0, 27), QREG_TYPE_TEXT, "12345678901234567890.123456789");
  fetched_free(&f);

  /* Empty values are not NULL. */
  f = run_fetch(reg, "SELECT ''::text, ''::bytea, '[]'::json");
  assert_text(cell(&f, 0, 0), QREG_TYPE_TEXT, "");
  assert_int_equal(cell(&f, 0, 1)->type, QREG_TYPE_BYTES);
  assert_int_equal(cell(&f, 0, 1)->v.s.len, 0);
  assert_text(cell(&f, 0, 2), QREG_TYPE_JSON, "[]");
  fetched_free(&f);

  /* A statement without rows has no columns and no rows. */
  f = run_fetch(reg, "SELECT WHERE false");
  assert_int_equal(f.snapshot->row_count, 0);
  assert_int_equal(f.page->row_count, 0);
  fetched_free(&f);
  pg_test_close_checked(reg, app);
}

/* Types the server was created with, types created before the registry
   opened, and one created while it runs: each column shows the server's
   name for its type. */
static void server_type_names(void **state) {
  (void)state;
  const char *app = "qreg_t_typenames";
  assert_int_equal(pg_admin_exec(pg_admin(), "CREATE TYPE qreg_mood AS ENUM ('happy', 'sad')"), 0);
  assert_int_equal(pg_admin_exec(pg_admin(), "CREATE DOMAIN qreg_posint AS int CHECK (VALUE > 0)"),
                   0);
  qreg_t *reg = pg_test_open(NULL, app, 1, false);
  fetched_t f = run_fetch(reg, "SELECT 'happy'::qreg_mood AS m, ARRAY['sad'::qreg_mood] AS ms, "
                               "int4range(1, 5) AS r, 'pg_class'::regclass::oid AS o, "
                               "'(1,2)'::point AS p, 'pg_class'::regclass AS rc, "
                               "'{\"a\":1}'::jsonb -> 'a' AS j");
  const char *types[] = {"qreg_mood", "qreg_mood[]", "int4range", "oid",
                         "point",     "regclass",    "jsonb"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    assert_string_equal(f.snapshot->columns[i].type_name, types[i]);
  assert_text(cell(&f, 0, 0), QREG_TYPE_TEXT, "happy");
  assert_text(cell(&f, 0, 1), QREG_TYPE_TEXT, "{sad}");
  assert_text(cell(&f, 0, 2), QREG_TYPE_TEXT, "[1,5)");
  assert_text(cell(&f, 0, 5), QREG_TYPE_TEXT, "pg_class");
  assert_text(cell(&f, 0, 6), QREG_TYPE_JSON, "1");
  fetched_free(&f);

  /* A type created after the registry loaded its names: looked up on first
     sight, named from then on. */
  assert_int_equal(pg_admin_exec(pg_admin(), "CREATE TYPE qreg_late AS ENUM ('x')"), 0);
  f = run_fetch(reg, "SELECT 'x'::qreg_late AS l");
  assert_text(cell(&f, 0, 0), QREG_TYPE_TEXT, "x");
  fetched_free(&f);
  f = run_fetch(reg, "SELECT 'x'::qreg_late AS l");
  assert_string_equal(f.snapshot->columns[0].type_name, "qreg_late");
  fetched_free(&f);
  pg_test_close_checked(reg, app);
}

static void error_fields(void **state) {
  (void)state;
  const char *app = "qreg_t_errors";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t id = test_execute(reg, "SELECT * FROM qreg_no_such_table", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, "42P01", "relation \"qreg_no_such_table\" does not exist");

  id = test_execute(reg,
                    "DO $$BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', "
                    "HINT = 'the hint', ERRCODE = 'P0001'; END$$",
                    NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_true(s->has_error);
  assert_string_equal(s->error.type, "database");
  assert_string_equal(s->error.code, "P0001");
  assert_string_equal(s->error.message, "boom");
  assert_string_equal(s->error.detail, "the detail");
  assert_string_equal(s->error.hint, "the hint");
  qreg_snapshot_free(s);

  /* COPY to the client is refused cleanly (the connection is abandoned). */
  id = test_execute(reg, "COPY (SELECT 1) TO STDOUT", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, "0A000", "COPY");

  /* A statement with nothing in it. */
  id = test_execute(reg, "-- only a comment", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scalar_types),
      cmocka_unit_test(server_type_names),
      cmocka_unit_test(error_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
