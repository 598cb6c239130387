/*
 * tests/test-prune.c - time-to-live and pruning on the scripted driver: a
 * finished record is removed once its TTL passes (by the loop's timer or by
 * qreg_prune_expired) and its id then answers QREG_ENOTFOUND; a running query
 * whose TTL passes is stopped, its connection released only after the
 * driver's operation returned, and removed; the TTL counts from the record's
 * last change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "support/test_util.h"

/* Every call on a pruned id answers QREG_ENOTFOUND. */
static void check_gone(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &s), QREG_ENOTFOUND);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id->str, 0, 0, &page), QREG_ENOTFOUND);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id->str, 0, &status), QREG_ENOTFOUND);
  assert_int_equal(qreg_cancel(reg, id->str, &status), QREG_ENOTFOUND);
  qreg_list_t *list = NULL;
  assert_int_equal(qreg_list(reg, NULL, &list), 0);
  for (size_t i = 0; i < list->count; i++)
    assert_string_not_equal(list->items[i]->id.str, id->str);
  qreg_list_free(list);
}

static void prune_finished_query(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute_opts(reg, "rows=2;tag=1", 0, 400, 0); /* room for valgrind */
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  test_wait_pruned(reg, &id);
  check_gone(reg, &id);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_pruned, 1);
  assert_int_equal(stats.records, 0);
  assert_int_equal(stats.result_bytes, 0); /* its result went with it */
  /* Pruning a finished record leaves its (pooled) connection alone. */
  assert_int_equal(stats.connections_idle, 1);
  test_assert_all_released(reg);
  test_close_checked(reg);
}

/* The loop's timer prunes without anyone calling qreg_prune_expired. */
static void prune_timer_runs_by_itself(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.default_ttl_ms = 40;
  qreg_t *reg = test_open(&config);
  qreg_id_t id = test_execute(reg, "rows=1", NULL);
  test_wait(reg, &id);
  for (unsigned waited = 0;; waited++) {
    qreg_snapshot_t *s = NULL;
    int rc = qreg_snapshot(reg, id.str, &s);
    if (rc == QREG_ENOTFOUND)
      break;
    assert_int_equal(rc, 0);
    qreg_snapshot_free(s);
    if (waited > TEST_BOUND_MS)
      fail_msg("the prune timer never removed the record");
    test_sleep_ms(1);
  }
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_pruned, 1);
  test_close_checked(reg);
}

/*
 * A running query whose TTL passes: stopped, connection released after the
 * operation returned, removed. Calls qreg_prune_expired in a tight loop; if
 * that call is the one that pruned (the loop's timer may get there first),
 * it must have returned only after the job completed in the driver.
 */
static void prune_running(const char *sql, int outcome) {
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute_opts(reg, sql, 0, 100, 0);
  test_wait_status(reg, &id, QREG_RUNNING);
  bool by_call = false;
  uint64_t deadline_ns = scripted_now_ns() + (uint64_t)TEST_BOUND_MS * 1000000u;
  for (;;) {
    int pruned = qreg_prune_expired(reg);
    assert_true(pruned >= 0);
    if (pruned > 0) {
      uint64_t returned_ns = scripted_now_ns();
      scripted_tag_info_t info;
      assert_true(scripted_tag_info_get(1, &info));
      if (info.completions != 1)
        fail_msg("qreg_prune_expired returned before the pruned job completed");
      assert_true(info.op_end_ns != 0 && info.op_end_ns <= returned_ns);
      by_call = true;
      break;
    }
    qreg_snapshot_t *s = NULL;
    int rc = qreg_snapshot(reg, id.str, &s);
    if (rc == QREG_ENOTFOUND)
      break;
    assert_int_equal(rc, 0);
    qreg_snapshot_free(s);
    if (scripted_now_ns() > deadline_ns)
      fail_msg("the running query was never pruned");
  }
  check_gone(reg, &id);
  /* Whoever pruned it, the job ends in the driver and its connection is
     closed after that. */
  test_wait_counter(test_counter_completions, 1, "completions");
  test_wait_counter(test_counter_closed, 1, "closed");
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(1, &info));
  assert_int_equal(info.outcome, outcome);
  assert_true(info.close_ns >= info.op_end_ns);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_pruned, 1);
  test_close_checked(reg);
  print_message("pruned %s by %s\n", sql, by_call ? "qreg_prune_expired" : "the timer");
}

static void prune_running_query(void **state) {
  (void)state;
  prune_running("hang;tag=1", QREG_JOB_CANCELED);
}

/* A slow driver operation in flight during prune: the job ignores the
   cancel and runs 500 ms; the connection is closed only after. */
static void prune_running_slow_operation(void **state) {
  (void)state;
  prune_running("sleep=500;ignore_cancel;tag=1", QREG_JOB_OK);
}

/* expires_ms = updated_ms + ttl, and updated_ms follows the last change. */
static void ttl_counts_from_last_change(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute_opts(reg, "rows=1;sleep=50", 0, 60000, 0);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_int_equal(s->expires_ms, s->updated_ms + 60000);
  qreg_snapshot_free(s);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_true(s->updated_ms >= s->finished_ms);
  assert_int_equal(s->expires_ms, s->updated_ms + 60000);
  qreg_snapshot_free(s);
  assert_int_equal(qreg_prune_expired(reg), 0);
  assert_int_equal(test_status(reg, &id), QREG_SUCCEEDED);
  test_close_checked(reg);
}

/* Pruning removes only the expired: a record with a long TTL stays. */
static void prune_only_expired(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t short_lived = test_execute_opts(reg, "rows=1", 0, 400, 0);
  qreg_id_t long_lived = test_execute_opts(reg, "rows=1", 0, 600000, 0);
  test_wait(reg, &short_lived);
  test_wait(reg, &long_lived);
  test_wait_pruned(reg, &short_lived);
  assert_int_equal(test_status(reg, &long_lived), QREG_SUCCEEDED);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 1);
  test_close_checked(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prune_finished_query),        cmocka_unit_test(prune_timer_runs_by_itself),
      cmocka_unit_test(prune_running_query),         cmocka_unit_test(prune_running_slow_operation),
      cmocka_unit_test(ttl_counts_from_last_change), cmocka_unit_test(prune_only_expired),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
