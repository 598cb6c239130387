/*
 * tests/test-pg-restart.c - the server stopped under the registry
 * (pg_ctl stop -m immediate) and started again: queries running at the stop
 * fail with a clear error, queries pending then fail or run but never hang,
 * queries after the restart succeed, and no dead connection from the pool is
 * ever handed to a query.
 *
 * Owns, in each test, the registry it opens; the fixture owns the server,
 * which each test leaves running.
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

/* A query that failed because the server went away says so clearly: the
   server's own 57P01 ("terminating connection due to ...") or a connection
   error with libpq's message. */
static void assert_failed_clearly(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = pg_test_snapshot(reg, id);
  char seen[1024];
  snprintf(seen, sizeof seen, "status %s, type \"%s\", code \"%s\", message \"%s\"",
           qreg_status_name(s->status), s->error.type, s->error.code, s->error.message);
  bool clear = s->status == QREG_FAILED && s->error.message[0] != '\0' &&
               (strcmp(s->error.code, "57P01") == 0 || strcmp(s->error.type, "connection") == 0);
  qreg_snapshot_free(s);
  if (!clear)
    fail_msg("query %s: expected a clear failure, got %s", id->str, seen);
  print_message("  failed clearly: %s\n", seen);
}

static void run_ok(qreg_t *reg, int count) {
  for (int i = 0; i < count; i++) {
    qreg_id_t id = test_execute(reg, "SELECT 'after restart'", NULL);
    assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  }
}

/* Pooled connections die with the server; after the restart every query
   still succeeds: the dead ones are noticed and closed, never used. */
static void idle_pool_across_restart(void **state) {
  (void)state;
  const char *app = "qreg_t_restart_idle";
  qreg_t *reg = pg_test_open(NULL, app, 4, false);
  qreg_id_t warm[4];
  for (int i = 0; i < 4; i++)
    warm[i] = test_execute(reg, "SELECT pg_sleep(0.2)", NULL);
  for (int i = 0; i < 4; i++)
    assert_int_equal(test_wait(reg, &warm[i]), QREG_SUCCEEDED);
  qreg_stats_t before = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &before), 0);
  assert_true(before.connections_idle >= 2);

  assert_int_equal(pg_fixture_server_stop(), 0);
  assert_int_equal(pg_fixture_server_start(), 0);

  run_ok(reg, 8);
  qreg_stats_t after = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &after), 0);
  assert_true(after.connections_closed >= before.connections_idle);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* Queries running and pending when the server stops. */
static void running_and_pending_across_restart(void **state) {
  (void)state;
  const char *app = "qreg_t_restart_busy";
  qreg_t *reg = pg_test_open(NULL, app, 3, false);
  qreg_id_t running[3], pending[3];
  for (int i = 0; i < 3; i++)
    running[i] = test_execute(reg, "SELECT pg_sleep(60)", NULL);
  for (int i = 0; i < 3; i++)
    pending[i] = test_execute(reg, "SELECT 42", NULL);
  pg_test_wait_active(app, "pg_sleep(60)", 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(test_status(reg, &pending[i]), QREG_PENDING);

  assert_int_equal(pg_fixture_server_stop(), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(test_wait(reg, &running[i]), QREG_FAILED);
    assert_failed_clearly(reg, &running[i]);
  }
  /* Pending ones find no server: each connect failure fails one of them. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(test_wait(reg, &pending[i]), QREG_FAILED);
    assert_failed_clearly(reg, &pending[i]);
  }
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_idle, 0);

  assert_int_equal(pg_fixture_server_start(), 0);
  run_ok(reg, 6);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(idle_pool_across_restart),
      cmocka_unit_test(running_and_pending_across_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
