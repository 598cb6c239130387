/*
 * tests/test-pg-truncate.c - results cut by max_rows or by the registry's
 * byte budget on a real PostgreSQL server (tests/support/pg_fixture): the
 * record says truncated with the rows that fit, the rest of the statement is
 * cancelled on the server (no session of ours left active), and the
 * connection is closed rather than pooled. A result that exactly fits is not
 * truncated and its connection is pooled.
 *
 * Owns, in each test, the registry it opens; the fixture owns the server.
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

/* Far more rows than anyone would drain: only a cancel ends it quickly. The
   set-returning function is in the select list, where the server streams
   its rows (in FROM it would compute them all before sending the first). */
#define HUGE_SQL "SELECT generate_series(1, 1000000000) AS g"

static void max_rows_cuts_and_cancels(void **state) {
  (void)state;
  const char *app = "qreg_t_truncate";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t id = test_execute_opts(reg, HUGE_SQL, 0, 0, 100);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  long pid = pg_test_backend_pid(reg, &id);

  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_true(s->truncated);
  assert_int_equal(s->row_count, 100);
  assert_false(s->has_error);
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 100);
  assert_true(page->truncated);
  for (uint64_t i = 0; i < 100; i++)
    assert_int_equal(page->values[i].v.i, (int64_t)i + 1);
  qreg_page_free(page);

  /* Stopped on the server, and the session closed, not pooled. */
  assert_true(pg_admin_wait_backend_stopped(pg_admin(), pid, "generate_series", pg_stopped_ms()));
  pg_test_assert_no_active(app);
  assert_int_equal(pg_admin_wait_pid_gone(pg_admin(), pid, PG_GONE_MS), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 0);
  assert_int_equal(stats.connections_opened, 1);
  assert_int_equal(stats.connections_closed, 1);
  pg_test_close_checked(reg, app);
}

static void byte_budget_cuts(void **state) {
  (void)state;
  const char *app = "qreg_t_budget";
  qreg_config_t config;
  qreg_config_init(&config);
  config.application_name = app;
  config.max_result_bytes = 64 * 1024;
  qreg_t *reg = pg_test_open_config(&config);
  qreg_id_t id =
      test_execute(reg, "SELECT generate_series(1, 1000000000) AS g, repeat('x', 1000)", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_true(s->truncated);
  assert_true(s->row_count > 0 && s->row_count < 100);
  qreg_snapshot_free(s);
  pg_test_assert_no_active(app);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 0);
  pg_test_close_checked(reg, app);
}

static void exact_fit_is_not_truncated(void **state) {
  (void)state;
  const char *app = "qreg_t_exact";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t id = test_execute_opts(reg, "SELECT g FROM generate_series(1, 100) g", 0, 0, 100);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_false(s->truncated);
  assert_int_equal(s->row_count, 100);
  qreg_snapshot_free(s);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 1);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(max_rows_cuts_and_cancels),
      cmocka_unit_test(byte_budget_cuts),
      cmocka_unit_test(exact_fit_is_not_truncated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
