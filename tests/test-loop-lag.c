/*
 * tests/test-loop-lag.c - invariant 6, "the loop never blocks", on SQLite and
 * the scripted driver: a loop-lag watchdog (tests/support/loop_watchdog.h) on
 * the registry's own loop thread must stay under LOOP_WATCHDOG_LAG_BOUND_MS
 * while long statements run, time out and are canceled - and it must see a
 * blocking call that a driver puts on the loop on purpose.
 *
 * How each test fails when the invariant breaks:
 *  - sqlite_long_statements: if SQLite stepping ran on the loop thread, the
 *    loop would be stuck inside the endless statement, and no tick would
 *    come for LOOP_WATCHDOG_STALL_MS (the check made while it runs fails);
 *    a statement that held the loop for a while and let go would show as
 *    lag. The 20 quick queries run beside it also need the loop to settle.
 *  - scripted_worker_sleeps: the same 1 s operations run on workers; a core
 *    or driver that waited for them on the loop shows the 1 s as lag.
 *  - blocking_execute_is_caught, the positive control: a wrapped scripted
 *    driver whose execute() sleeps 1 s on the loop thread; the test asserts
 *    the watchdog DID see at least 800 ms. Without it the other tests could
 *    pass with a watchdog that never measures anything; with it, a watchdog
 *    that cannot fail fails here.
 *
 * Every test also asserts the watchdog ticked through the scenario, so a
 * watchdog that never started cannot pass. Waits are bounded only to catch
 * hangs; the one timing assertion is the lag bound the invariant asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/loop_watchdog.h"
#include "support/test_util.h"

/* A statement that never ends on its own: only an interrupt stops it. */
#define ENDLESS_SQL                                                                                \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

/* How long the positive control blocks the loop, and what it must see. */
#define BLOCK_MS 1000u
#define BLOCK_SEEN_MS 800u

static char temp_dir[256];
static char db_path[300];

/* The positive control's execute: a deliberate breach of invariant 6. */
static atomic_bool blocked_on_loop_thread;
static atomic_uint blocking_executes;

static void blocking_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  atomic_store(&blocked_on_loop_thread, loop_watchdog_on_loop_thread());
  atomic_fetch_add(&blocking_executes, 1);
  test_sleep_ms(BLOCK_MS); /* on the loop thread, on purpose */
  scripted_driver.execute(conn, job);
}

static qreg_t *open_watched(const char *url, unsigned max_connections, bool allow_writes) {
  test_driver_setup(); /* resets the scripted driver's records */
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.max_connections = max_connections;
  config.allow_writes = allow_writes;
  qreg_t *reg = NULL;
  int rc = qreg_open(&config, &reg);
  if (rc != 0)
    fail_msg("qreg_open(%s): %s (%s)", url, qreg_strerror(rc), qreg_last_error());
  loop_watchdog_reset();
  return reg;
}

static qreg_snapshot_t *snapshot_of(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &s), 0);
  return s;
}

/* Two endless SQLite statements run: one times out after 1.2 s, the other
   is canceled after that; 20 quick queries run and settle beside them. */
static void sqlite_long_statements(void **state) {
  (void)state;
  char url[sizeof db_path + 32];
  snprintf(url, sizeof url, "watched-sqlite:sqlite:%s", db_path);
  qreg_t *reg = open_watched(url, 3, true);

  qreg_id_t timed = test_execute_opts(reg, ENDLESS_SQL, 1200, 0, 0);
  qreg_id_t endless = test_execute(reg, ENDLESS_SQL, NULL);
  test_wait_status(reg, &timed, QREG_RUNNING);
  /* While the first statement runs, the loop must still tick: a loop stuck
     inside the statement fails here, after LOOP_WATCHDOG_STALL_MS. */
  loop_watchdog_assert_responsive("sqlite: an endless statement started", 0);
  test_wait_status(reg, &endless, QREG_RUNNING);
  for (int i = 0; i < 20; i++) {
    qreg_id_t quick = test_execute(reg, "SELECT 1", NULL);
    assert_int_equal(test_wait(reg, &quick), QREG_SUCCEEDED);
  }
  assert_int_equal(test_wait(reg, &timed), QREG_TIMEOUT);
  assert_int_equal(test_status(reg, &endless), QREG_RUNNING);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, endless.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);

  /* Both statements were running (checked above) and lived at least as
     long as the timeout counted from submission: the window the watchdog
     watched was long. */
  const qreg_id_t *both[2] = {&timed, &endless};
  for (int i = 0; i < 2; i++) {
    qreg_snapshot_t *s = snapshot_of(reg, both[i]);
    int64_t lived = s->finished_ms - s->created_ms;
    bool started = s->started_ms != 0;
    qreg_snapshot_free(s);
    if (!started || lived < 1100)
      fail_msg("statement %d lived %" PRId64 " ms (started: %d), expected at least 1100", i, lived,
               started);
  }

  loop_watchdog_assert_responsive("sqlite: endless statements, a timeout, a cancel", 25);
  assert_int_equal(qreg_close(reg), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  qreg_destroy(reg);
}

/* The control beside the positive one: the same registry shape, but the
   slow part (1 s per job) runs on the driver's workers as it should. */
static void scripted_worker_sleeps(void **state) {
  (void)state;
  qreg_t *reg = open_watched("watched-script:script:", 3, false);
  qreg_id_t slow[2] = {test_execute(reg, "sleep=1000;tag=1", NULL),
                       test_execute(reg, "sleep=1000;tag=2", NULL)};
  qreg_id_t hang = test_execute(reg, "hang;tag=3", NULL);
  for (int i = 0; i < 2; i++)
    assert_int_equal(test_wait(reg, &slow[i]), QREG_SUCCEEDED);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, hang.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  loop_watchdog_assert_responsive("scripted: 1 s operations on workers", 25);
  test_close_checked(reg);
}

/* The positive control: an execute() that sleeps 1 s on the loop thread
   must show as at least 800 ms of lag. */
static void blocking_execute_is_caught(void **state) {
  (void)state;
  atomic_store(&blocked_on_loop_thread, false);
  atomic_store(&blocking_executes, 0);
  qreg_t *reg = open_watched("blocking-script:script:", 1, false);
  qreg_id_t id = test_execute(reg, "rows=1;tag=1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  loop_watchdog_report_t report;
  loop_watchdog_report(&report);
  print_message("blocking execute: max loop lag %" PRIu64 " ms (%" PRIu64
                " ms counting CPU waits), %" PRIu64 " ticks\n",
                report.max_lag_ms, report.max_raw_lag_ms, report.ticks);
  assert_int_equal(atomic_load(&blocking_executes), 1);
  if (!atomic_load(&blocked_on_loop_thread))
    fail_msg("the blocking execute() did not run on the watched loop thread");
  if (report.max_lag_ms < BLOCK_SEEN_MS)
    fail_msg("the watchdog saw %" PRIu64 " ms of lag while execute() blocked the loop for %u ms: "
             "it cannot catch a blocked loop",
             report.max_lag_ms, BLOCK_MS);
  /* The bound the other tests apply would have caught it. */
  assert_true(report.max_lag_ms >= loop_watchdog_lag_bound_ms());
  test_close_checked(reg);
}

static int group_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(temp_dir, sizeof temp_dir, "%s/qreg-test-loop-lag-XXXXXX",
           base && *base ? base : "/tmp");
  if (mkdtemp(temp_dir) == NULL)
    return -1;
  snprintf(db_path, sizeof db_path, "%s/lag.db", temp_dir);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    char path[320];
    snprintf(path, sizeof path, "%s%s", db_path, suffixes[i]);
    unlink(path);
  }
  return rmdir(temp_dir);
}

int main(void) {
  test_driver_setup();
  loop_watchdog_wrap(&qreg_driver_sqlite, "watched-sqlite", NULL);
  loop_watchdog_wrap(&scripted_driver, "watched-script", NULL);
  loop_watchdog_wrap(&scripted_driver, "blocking-script", blocking_execute);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sqlite_long_statements),
      cmocka_unit_test(scripted_worker_sleeps),
      cmocka_unit_test(blocking_execute_is_caught),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
