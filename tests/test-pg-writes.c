/*
 * tests/test-pg-writes.c - read-only by default (the hostile statements are
 * tests/test-pg-hostile.c's catalogue), writes when allowed, one
 * statement per query, and a pooled session that carries nothing from its
 * previous query, on a real PostgreSQL server (tests/support/pg_fixture).
 *
 * Refused when writes are not allowed: CREATE TABLE, INSERT, "COMMIT; DROP
 * TABLE ..." (two statements: refused even when writes are allowed), and
 * "SET default_transaction_read_only = off" followed by a write. Session
 * state a query leaves behind - settings, prepared statements, advisory
 * locks, temporary tables - is gone before the session runs the next query.
 *
 * Owns, in each test, the registry it opens and the tables it creates
 * through the admin connection; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

/* 25006: cannot execute ... in a read-only transaction. */
#define READ_ONLY_SQLSTATE "25006"

static qreg_id_t run(qreg_t *reg, const char *sql, bool allow_writes) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.allow_writes = allow_writes;
  qreg_id_t id = test_execute(reg, sql, &options);
  test_wait(reg, &id);
  return id;
}

static void assert_succeeded(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = pg_test_snapshot(reg, id);
  if (s->status != QREG_SUCCEEDED) {
    char seen[600];
    snprintf(seen, sizeof seen, "%s: %s", qreg_status_name(s->status), s->error.message);
    qreg_snapshot_free(s);
    fail_msg("query %s: expected succeeded, got %s", id->str, seen);
  }
  qreg_snapshot_free(s);
}

/* The single text cell of a succeeded query. */
static void assert_text_result(qreg_t *reg, const qreg_id_t *id, const char *expected) {
  assert_succeeded(reg, id);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id->str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  assert_int_equal(page->values[0].type, QREG_TYPE_TEXT);
  assert_string_equal(page->values[0].v.s.ptr, expected);
  qreg_page_free(page);
}

static long long rows_in(const char *table) {
  return pg_admin_int(pg_admin(), "SELECT count(*) FROM %s", table);
}

static void writes_refused_by_default(void **state) {
  (void)state;
  const char *app = "qreg_t_readonly";
  assert_int_equal(pg_admin_exec(pg_admin(), "CREATE TABLE ro_t (x int)"), 0);
  qreg_t *reg = pg_test_open(NULL, app, 2, false);

  qreg_id_t id = run(reg, "CREATE TABLE ro_new (x int)", false);
  pg_test_assert_failed(reg, &id, READ_ONLY_SQLSTATE, "read-only transaction");
  assert_int_equal(pg_admin_int(pg_admin(), "SELECT count(*) FROM pg_class WHERE relname = "
                                            "'ro_new'"),
                   0);

  id = run(reg, "INSERT INTO ro_t VALUES (1)", false);
  pg_test_assert_failed(reg, &id, READ_ONLY_SQLSTATE, "read-only transaction");
  assert_int_equal(rows_in("ro_t"), 0);

  /* Two statements are refused by the extended protocol before either runs. */
  id = run(reg, "COMMIT; DROP TABLE ro_t", false);
  pg_test_assert_failed(reg, &id, "42601", "multiple commands");
  assert_int_equal(pg_admin_int(pg_admin(), "SELECT count(*) FROM pg_class WHERE relname = "
                                            "'ro_t'"),
                   1);

  /* Turning the session's default off changes nothing: each query opens
     its own READ ONLY transaction, and the setting does not survive. */
  id = run(reg, "SET default_transaction_read_only = off", false);
  assert_succeeded(reg, &id);
  id = run(reg, "INSERT INTO ro_t VALUES (2)", false);
  pg_test_assert_failed(reg, &id, READ_ONLY_SQLSTATE, "read-only transaction");
  id = run(reg, "SET TRANSACTION READ WRITE", false);
  pg_test_assert_failed(reg, &id, NULL, NULL);
  assert_int_equal(rows_in("ro_t"), 0);

  /* A function with a side effect is refused too. */
  id = run(reg, "SELECT nextval('ro_seq')", false);
  pg_test_assert_failed(reg, &id, NULL, NULL);

  /* Asking for writes on a read-only registry does not make them possible. */
  qreg_options_t options;
  qreg_options_init(&options);
  options.allow_writes = true;
  qreg_id_t refused;
  int rc = qreg_execute(reg, "INSERT INTO ro_t VALUES (3)", &options, &refused);
  if (rc == 0) {
    test_wait(reg, &refused);
    pg_test_assert_failed(reg, &refused, NULL, NULL);
  } else {
    assert_true(rc < 0);
  }
  assert_int_equal(rows_in("ro_t"), 0);

  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
  assert_int_equal(pg_admin_exec(pg_admin(), "DROP TABLE ro_t"), 0);
}

static void writes_when_allowed(void **state) {
  (void)state;
  const char *app = "qreg_t_writes";
  qreg_t *reg = pg_test_open(NULL, app, 2, true);

  qreg_id_t id = run(reg, "CREATE TABLE w_t (x int PRIMARY KEY)", true);
  assert_succeeded(reg, &id);
  id = run(reg, "INSERT INTO w_t VALUES (1), (2)", true);
  assert_succeeded(reg, &id);
  assert_int_equal(rows_in("w_t"), 2); /* committed: visible to others */

  id = run(reg, "INSERT INTO w_t VALUES (3) RETURNING x", true);
  assert_succeeded(reg, &id);
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_int_equal(s->row_count, 1);
  qreg_snapshot_free(s);

  /* Without the per-query option the registry still reads only. */
  id = run(reg, "INSERT INTO w_t VALUES (4)", false);
  pg_test_assert_failed(reg, &id, READ_ONLY_SQLSTATE, NULL);

  /* Still one statement per query. */
  id = run(reg, "COMMIT; DROP TABLE w_t", true);
  pg_test_assert_failed(reg, &id, "42601", NULL);

  /* A failing write commits nothing. */
  id = run(reg, "INSERT INTO w_t VALUES (5), (1)", true);
  pg_test_assert_failed(reg, &id, "23505", NULL);
  assert_int_equal(rows_in("w_t"), 3);

  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
  assert_int_equal(pg_admin_exec(pg_admin(), "DROP TABLE w_t"), 0);
}

/* With one connection every query runs on the same session: what a query
   leaves in it must be gone when the next one starts. */
static void pooled_session_is_clean(void **state) {
  (void)state;
  const char *app = "qreg_t_clean";
  qreg_t *reg = pg_test_open(NULL, app, 1, true);
  qreg_id_t first = run(reg, "SELECT 1", false);
  long pid = pg_test_backend_pid(reg, &first);

  /* A session-level SET, committed because writes are allowed. */
  qreg_id_t id = run(reg, "SET work_mem = '77MB'", true);
  assert_succeeded(reg, &id);
  id = run(reg, "SELECT current_setting('work_mem')", false);
  assert_text_result(reg, &id, "4MB");
  assert_int_equal(pg_test_backend_pid(reg, &id), pid);

  /* set_config(..., false) in a read-only query. */
  id = run(reg, "SELECT set_config('search_path', 'nowhere', false)", false);
  assert_succeeded(reg, &id);
  id = run(reg, "SELECT current_setting('search_path')", false);
  assert_text_result(reg, &id, "\"$user\", public");
  assert_int_equal(pg_test_backend_pid(reg, &id), pid);

  /* A prepared statement. */
  qreg_id_t made = run(reg, "PREPARE qreg_p AS SELECT 1", false);
  assert_succeeded(reg, &made);
  id = run(reg, "EXECUTE qreg_p", false);
  pg_test_assert_failed(reg, &id, "26000", NULL);
  assert_int_equal(pg_test_backend_pid(reg, &id), pg_test_backend_pid(reg, &made));

  /* A session advisory lock (a plain SELECT takes it). */
  id = run(reg, "SELECT pg_advisory_lock(4242)::text", false);
  assert_succeeded(reg, &id);
  assert_int_equal(pg_admin_int(pg_admin(), "SELECT count(*) FROM pg_locks WHERE locktype = "
                                            "'advisory' AND objid = 4242"),
                   0);

  /* A temporary table, committed. */
  made = run(reg, "CREATE TEMP TABLE qreg_tmp AS SELECT 1 AS x", true);
  assert_succeeded(reg, &made);
  id = run(reg, "SELECT count(*) FROM qreg_tmp", false);
  pg_test_assert_failed(reg, &id, "42P01", NULL);
  assert_int_equal(pg_test_backend_pid(reg, &id), pg_test_backend_pid(reg, &made));

  /* The application name itself. */
  made = run(reg, "SET application_name = 'someone_else'", true);
  assert_succeeded(reg, &made);
  id = run(reg, "SELECT current_setting('application_name')", false);
  assert_text_result(reg, &id, app);
  assert_int_equal(pg_test_backend_pid(reg, &id), pg_test_backend_pid(reg, &made));

  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  if (pg_admin_exec(pg_admin(), "CREATE SEQUENCE ro_seq") != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(writes_refused_by_default),
      cmocka_unit_test(writes_when_allowed),
      cmocka_unit_test(pooled_session_is_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
