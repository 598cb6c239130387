/*
 * tests/test-pg-lifecycle.c - every scenario of the core, repeated against a
 * real PostgreSQL server (tests/support/pg_fixture): completion, connection
 * reuse, start failure (syntax error), failure in the middle of the rows,
 * connect failure, cancel of a pending and of a running query, prune of a
 * finished and of a running query, timeout, and close with queries pending,
 * running and finished. The server's own view is the ground truth: after each
 * scenario no session of ours is active, and after qreg_close there is none
 * at all (pg_stat_activity filtered by application_name).
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

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define SLEEP_SQL "SELECT pg_sleep(60)"

/* A finished query: rows, columns with the server's type names, the backend
   pid as its id; the connection goes back to the pool and the next query
   runs on the same session. */
static void completion_and_reuse(void **state) {
  (void)state;
  const char *app = "qreg_t_complete";
  qreg_t *reg = pg_test_open(NULL, app, 4, false);
  qreg_id_t id = test_execute(reg, "SELECT g, g * 2 AS twice FROM generate_series(1, 5) g", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);

  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_int_equal(s->row_count, 5);
  assert_false(s->truncated);
  assert_false(s->has_error);
  assert_int_equal(s->column_count, 2);
  assert_string_equal(s->columns[0].name, "g");
  assert_string_equal(s->columns[0].type_name, "integer");
  assert_string_equal(s->columns[1].name, "twice");
  qreg_snapshot_free(s);

  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 5);
  for (uint64_t row = 0; row < 5; row++) {
    assert_int_equal(page->values[row * 2].type, QREG_TYPE_INT);
    assert_int_equal(page->values[row * 2].v.i, (int64_t)row + 1);
    assert_int_equal(page->values[row * 2 + 1].v.i, 2 * ((int64_t)row + 1));
  }
  qreg_page_free(page);

  /* The backend id is a live session of ours, idle in the pool. */
  long pid = pg_test_backend_pid(reg, &id);
  assert_int_equal(pg_admin_int(pg_admin(),
                                "SELECT count(*) FROM pg_stat_activity WHERE pid = %ld "
                                "AND application_name = '%s' AND state = 'idle'",
                                pid, app),
                   1);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 1);
  assert_int_equal(stats.connections_idle, 1);

  qreg_id_t again = test_execute(reg, "SELECT 'again'", NULL);
  assert_int_equal(test_wait(reg, &again), QREG_SUCCEEDED);
  assert_int_equal(pg_test_backend_pid(reg, &again), pid);
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 1);

  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* A statement the server refuses to start: failed with its SQLSTATE; the
   connection is not reused, and the next query still runs. */
static void start_failure(void **state) {
  (void)state;
  const char *app = "qreg_t_startfail";
  qreg_t *reg = pg_test_open(NULL, app, 4, false);
  qreg_id_t id = test_execute(reg, "SELEC 1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, "42601", "syntax error");
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_string_equal(s->error.type, "database");
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), QREG_ENORESULT);

  long failed_pid = pg_test_backend_pid(reg, &id);
  qreg_id_t next = test_execute(reg, "SELECT 1", NULL);
  assert_int_equal(test_wait(reg, &next), QREG_SUCCEEDED);
  assert_true(pg_test_backend_pid(reg, &next) != failed_pid); /* closed, not pooled */
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 2);
  assert_int_equal(stats.connections_closed, 1);

  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* A statement that fails after sending rows: failed, no result kept. */
static void failure_mid_rows(void **state) {
  (void)state;
  const char *app = "qreg_t_midrows";
  qreg_t *reg = pg_test_open(NULL, app, 4, false);
  qreg_id_t id = test_execute(reg, "SELECT 1/(g-5) AS x FROM generate_series(1, 10) g", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, "22012", "division by zero");
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), QREG_ENORESULT);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* Nothing listens on the port: the query fails with a connection error. */
static void connect_failure(void **state) {
  (void)state;
  char url[200];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=postgres user=qreg_test",
           pg_fixture_unused_port());
  qreg_t *reg = pg_test_open(url, "qreg_t_connfail", 2, false);
  qreg_id_t id = test_execute(reg, "SELECT 1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, NULL, "127.0.0.1");
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_string_equal(s->error.type, "connection");
  qreg_snapshot_free(s);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 0);
  assert_true(stats.connect_failures >= 1);
  pg_test_close_checked(reg, "qreg_t_connfail");
}

/* Cancel of a pending query touches no connection; cancel of the running
   one stops it on the server. */
static void cancel_pending_and_running(void **state) {
  (void)state;
  const char *app = "qreg_t_cancel";
  qreg_t *reg = pg_test_open(NULL, app, 1, false);
  qreg_id_t running = test_execute(reg, SLEEP_SQL, NULL);
  qreg_id_t pending = test_execute(reg, "SELECT 2", NULL);
  pg_test_wait_active(app, "pg_sleep(60)", 1);
  assert_int_equal(test_status(reg, &pending), QREG_PENDING);

  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, pending.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  assert_int_equal(test_status(reg, &running), QREG_RUNNING);

  long pid = pg_test_backend_pid(reg, &running);
  assert_int_equal(qreg_cancel(reg, running.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  assert_true(pg_admin_wait_backend_stopped(pg_admin(), pid, "pg_sleep(60)", pg_stopped_ms()));
  pg_test_assert_no_active(app);

  /* A canceled query's connection is closed, never pooled. */
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 0);
  qreg_id_t after = test_execute(reg, "SELECT 3", NULL);
  assert_int_equal(test_wait(reg, &after), QREG_SUCCEEDED);
  assert_true(pg_test_backend_pid(reg, &after) != pid);
  pg_test_close_checked(reg, app);
}

/* A finished query's record is pruned after its TTL; its connection stays
   pooled. */
static void prune_finished(void **state) {
  (void)state;
  const char *app = "qreg_t_prunefin";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  /* Warm the pool first: the TTL counts from the last change, and a
     connect slower than the TTL (a loaded machine, a sanitizer build)
     would prune the query while it is still pending. */
  qreg_id_t warm = test_execute(reg, "SELECT 0", NULL);
  assert_int_equal(test_wait(reg, &warm), QREG_SUCCEEDED);
  qreg_id_t id = test_execute_opts(reg, "SELECT 1", 0, 50, 0);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  test_wait_pruned(reg, &id); /* by our call or by the loop's own timer */
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 1);
  assert_int_equal(pg_admin_sessions(pg_admin(), app, "idle"), 1);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* A running query whose TTL passes is stopped on the server and removed. */
static void prune_running(void **state) {
  (void)state;
  const char *app = "qreg_t_prunerun";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t id = test_execute_opts(reg, SLEEP_SQL, 0, 1500, 0);
  pg_test_wait_active(app, "pg_sleep(60)", 1);
  long pid = pg_test_backend_pid(reg, &id);
  test_wait_pruned(reg, &id); /* by our call or by the loop's own timer */
  assert_true(pg_admin_wait_backend_stopped(pg_admin(), pid, "pg_sleep(60)", pg_stopped_ms()));
  pg_test_assert_no_active(app);
  pg_test_wait_released(reg);
  pg_test_close_checked(reg, app);
}

/* A running query past its timeout: status timeout, stopped on the server. */
static void timeout_running(void **state) {
  (void)state;
  const char *app = "qreg_t_timeout";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t id = test_execute_opts(reg, SLEEP_SQL, 300, 0, 0);
  assert_int_equal(test_wait(reg, &id), QREG_TIMEOUT);
  long pid = pg_test_backend_pid(reg, &id);
  assert_true(pg_admin_wait_backend_stopped(pg_admin(), pid, "pg_sleep(60)", pg_stopped_ms()));
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* qreg_close with queries finished, running and pending: every running
   statement stops, every session goes away. */
static void close_with_everything(void **state) {
  (void)state;
  const char *app = "qreg_t_close";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t finished = test_execute(reg, "SELECT 'done'", NULL);
  assert_int_equal(test_wait(reg, &finished), QREG_SUCCEEDED);
  test_execute(reg, SLEEP_SQL, NULL);
  test_execute(reg, SLEEP_SQL, NULL);
  qreg_id_t pending = test_execute(reg, "SELECT 'never'", NULL);
  test_execute(reg, "SELECT 'never either'", NULL);
  pg_test_wait_active(app, "pg_sleep(60)", 2);
  assert_int_equal(test_status(reg, &pending), QREG_PENDING);
  pg_test_close_checked(reg, app); /* also: none active, none at all */
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(completion_and_reuse),
      cmocka_unit_test(start_failure),
      cmocka_unit_test(failure_mid_rows),
      cmocka_unit_test(connect_failure),
      cmocka_unit_test(cancel_pending_and_running),
      cmocka_unit_test(prune_finished),
      cmocka_unit_test(prune_running),
      cmocka_unit_test(timeout_running),
      cmocka_unit_test(close_with_everything),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
