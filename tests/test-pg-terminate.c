/*
 * tests/test-pg-terminate.c - a session killed under the registry
 * (pg_terminate_backend) on a real PostgreSQL server: the query running on it
 * fails with SQLSTATE 57P01, the queries on other sessions are unaffected,
 * the pool recovers, and an idle pooled session killed while it waited is
 * never handed to a query.
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

/* Kills backend pid and waits until the server no longer lists it. */
static void terminate_backend(long pid) {
  assert_int_equal(pg_admin_int(pg_admin(), "SELECT pg_terminate_backend(%ld)::int", pid), 1);
  assert_int_equal(pg_admin_wait_pid_gone(pg_admin(), pid, TEST_BOUND_MS), 0);
}

static void terminate_running(void **state) {
  (void)state;
  const char *app = "qreg_t_terminate";
  qreg_t *reg = pg_test_open(NULL, app, 4, false);
  qreg_id_t victim = test_execute(reg, "SELECT pg_sleep(60)", NULL);
  qreg_id_t others[3];
  for (int i = 0; i < 3; i++)
    others[i] = test_execute(reg, "SELECT pg_sleep(0.5), 'other'", NULL);
  pg_test_wait_active(app, "pg_sleep", 4);

  terminate_backend(pg_test_backend_pid(reg, &victim));
  assert_int_equal(test_wait(reg, &victim), QREG_FAILED);
  pg_test_assert_failed(reg, &victim, "57P01", "terminating connection");

  for (int i = 0; i < 3; i++) {
    assert_int_equal(test_wait(reg, &others[i]), QREG_SUCCEEDED);
    qreg_snapshot_t *s = pg_test_snapshot(reg, &others[i]);
    assert_int_equal(s->row_count, 1);
    qreg_snapshot_free(s);
  }

  /* The pool recovers: more queries than connections, all succeed. */
  qreg_id_t after[12];
  for (int i = 0; i < 12; i++)
    after[i] = test_execute(reg, "SELECT 1", NULL);
  for (int i = 0; i < 12; i++)
    assert_int_equal(test_wait(reg, &after[i]), QREG_SUCCEEDED);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.connections_closed >= 1); /* the dead one */
  assert_true(stats.connections_opened - stats.connections_closed <= 4);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* An idle pooled session killed while waiting is detected and replaced:
   the next query runs on a new session and succeeds. */
static void terminate_idle_pooled(void **state) {
  (void)state;
  const char *app = "qreg_t_terminate_idle";
  qreg_t *reg = pg_test_open(NULL, app, 1, false);
  qreg_id_t first = test_execute(reg, "SELECT 1", NULL);
  assert_int_equal(test_wait(reg, &first), QREG_SUCCEEDED);
  long pid = pg_test_backend_pid(reg, &first);
  terminate_backend(pid);
  test_sleep_ms(100); /* the backend's socket closes as its process exits */

  for (int i = 0; i < 5; i++) {
    qreg_id_t id = test_execute(reg, "SELECT 2", NULL);
    assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
    assert_true(pg_test_backend_pid(reg, &id) != pid);
  }
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 2);
  assert_int_equal(stats.connections_closed, 1);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(terminate_running),
      cmocka_unit_test(terminate_idle_pooled),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
