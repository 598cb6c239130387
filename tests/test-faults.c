/*
 * tests/test-faults.c - every failure path releases the connection, once:
 * connect failure, failure to start, failure mid-rows, failure at finish,
 * failure inside execute(), a script the driver does not understand; then
 * the fault matrix, which makes each call point of the scripted driver
 * (connect, start, row, finish, cancel, close) fail, stall or finish late in
 * turn and checks the query's outcome and the closing invariants each time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "support/test_util.h"

/* Runs sql to its end and checks it failed with an error of type `type`
   whose message contains `needle`, and that the connection it used (if any)
   was released and then closed rather than pooled. */
static void expect_failure(qreg_t *reg, const char *sql, const char *type, const char *needle) {
  qreg_id_t id = test_execute(reg, sql, NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_true(s->has_error);
  assert_string_equal(s->error.type, type);
  if (strstr(s->error.message, needle) == NULL)
    fail_msg("error message '%s' lacks '%s'", s->error.message, needle);
  assert_int_equal(s->row_count, 0);
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), QREG_ENORESULT);
  test_assert_all_released(reg);
}

static void released_on_connect_failure(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  scripted_fault_set(SCRIPTED_CONNECT, SCRIPTED_FAULT_FAIL, 1, 1, 0);
  expect_failure(reg, "rows=1", "connection", "refused");
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connect_failures, 1);
  assert_int_equal(stats.connections_opened, 0);
  /* The next query connects anew. */
  qreg_id_t id = test_execute(reg, "rows=1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.connect_attempts, 2);
  assert_int_equal(c.executes, 1);
  test_close_checked(reg);
}

/* A connect failure fails the oldest pending query only; the next pending
   query triggers a new connect and runs. */
static void connect_failure_fails_oldest_pending_only(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  scripted_fault_set(SCRIPTED_CONNECT, SCRIPTED_FAULT_FAIL, 1, 1, 0);
  qreg_id_t first = test_execute(reg, "rows=1;tag=1", NULL);
  qreg_id_t second = test_execute(reg, "rows=1;tag=2", NULL);
  assert_int_equal(test_wait(reg, &first), QREG_FAILED);
  assert_int_equal(test_wait(reg, &second), QREG_SUCCEEDED);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(1, &info));
  assert_int_equal(info.executes, 0);
  test_close_checked(reg);
}

static void released_on_start_failure(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  expect_failure(reg, "rows=3;fail=start;tag=1", "database", "start");
  /* A failed job's connection is closed, never pooled. */
  test_wait_counter(test_counter_closed, 1, "closed");
  test_close_checked(reg);
}

static void released_on_failure_mid_rows(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  expect_failure(reg, "rows=5;fail=row:3;tag=1", "database", "row 3");
  test_wait_counter(test_counter_closed, 1, "closed");
  test_close_checked(reg);
}

static void released_on_failure_at_finish(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  expect_failure(reg, "rows=5;fail=finish", "database", "finish");
  test_wait_counter(test_counter_closed, 1, "closed");
  test_close_checked(reg);
}

/* A failure the driver reports from inside execute() itself. */
static void released_on_failure_inside_execute(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  expect_failure(reg, "fail=now", "database", "at once");
  expect_failure(reg, "SELECT 1", "database", "unknown script word");
  test_close_checked(reg);
}

/* The Nth call at a point: the 4th row overall is the first row of the
   second query, so the first succeeds and the second fails. */
static void nth_call_fails(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  scripted_fault_set(SCRIPTED_ROW, SCRIPTED_FAULT_FAIL, 4, 1, 0);
  qreg_id_t first = test_execute(reg, "rows=3", NULL);
  assert_int_equal(test_wait(reg, &first), QREG_SUCCEEDED);
  qreg_id_t second = test_execute(reg, "rows=3", NULL);
  assert_int_equal(test_wait(reg, &second), QREG_FAILED);
  qreg_id_t third = test_execute(reg, "rows=3", NULL);
  assert_int_equal(test_wait(reg, &third), QREG_SUCCEEDED);
  test_close_checked(reg);
}

/* Runs one query under one injected fault and checks its outcome. */
static void run_fault_case(scripted_point_t point, scripted_fault_t fault) {
  char label[64];
  snprintf(label, sizeof label, "%s/%s", scripted_point_name(point), scripted_fault_name(fault));
  qreg_t *reg = test_open(NULL);
  scripted_fault_set(point, fault, 1, 1, 40);

  qreg_status_t expected;
  qreg_status_t status;
  qreg_id_t id;
  if (point == SCRIPTED_CANCEL) {
    /* A cancellable sleep, long enough to be canceled while in flight and
       short enough that an ignored cancel ends by itself. */
    id = test_execute(reg, "sleep=300;rows=2;tag=1", NULL);
    test_wait_status(reg, &id, QREG_RUNNING);
    test_wait_counter(test_counter_executes, 1, "executes");
    assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
    expected = QREG_CANCELED;
    /* cancel returned: the job has completed, so its operation ended. */
    scripted_tag_info_t info;
    assert_true(scripted_tag_info_get(1, &info));
    if (info.completions != 1)
      fail_msg("%s: cancel returned before the job completed", label);
    assert_true(info.op_end_ns != 0 && info.op_end_ns <= scripted_now_ns());
  } else {
    id = test_execute(reg, "rows=3;tag=1", NULL);
    status = test_wait(reg, &id);
    bool fails = fault == SCRIPTED_FAULT_FAIL && point != SCRIPTED_CLOSE;
    expected = fails ? QREG_FAILED : QREG_SUCCEEDED;
  }
  if (status != expected)
    fail_msg("%s: status %s, expected %s", label, qreg_status_name(status),
             qreg_status_name(expected));
  assert_int_equal(test_status(reg, &id), expected);
  test_assert_all_released(reg);
  test_close_checked(reg);

  scripted_counters_t c;
  scripted_counters_get(&c);
  if (c.calls[point] == 0)
    fail_msg("%s: the call point was never reached", label);
  if (point == SCRIPTED_CLOSE && fault == SCRIPTED_FAULT_FAIL)
    assert_int_equal(c.close_failures, 1);
}

static void fault_matrix(void **state) {
  (void)state;
  for (int point = 0; point < SCRIPTED_POINT_COUNT; point++)
    for (int fault = SCRIPTED_FAULT_FAIL; fault < SCRIPTED_FAULT_COUNT; fault++)
      run_fault_case((scripted_point_t)point, (scripted_fault_t)fault);
}

/* Every connect fails: each query fails with the driver's message, none
   waits for ever, and nothing is left open. */
static void every_connect_fails(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 2;
  qreg_t *reg = test_open(&config);
  scripted_fault_set(SCRIPTED_CONNECT, SCRIPTED_FAULT_FAIL, 1, 0, 0);
  qreg_id_t ids[6];
  for (int i = 0; i < 6; i++)
    ids[i] = test_execute(reg, "rows=1", NULL);
  for (int i = 0; i < 6; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_FAILED);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connect_failures, 6);
  test_close_checked(reg);
}

/* A slow close (a worker operation) does not leak: qreg_close waits for it. */
static void slow_close_is_waited_for(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  scripted_fault_set(SCRIPTED_CLOSE, SCRIPTED_FAULT_STALL, 1, 0, 150);
  for (int i = 0; i < 3; i++) {
    qreg_id_t id = test_execute(reg, "rows=1;not_reusable", NULL);
    assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  }
  test_close_checked(reg); /* checks closed == opened right as it returns */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(released_on_connect_failure),
      cmocka_unit_test(connect_failure_fails_oldest_pending_only),
      cmocka_unit_test(released_on_start_failure),
      cmocka_unit_test(released_on_failure_mid_rows),
      cmocka_unit_test(released_on_failure_at_finish),
      cmocka_unit_test(released_on_failure_inside_execute),
      cmocka_unit_test(nth_call_fails),
      cmocka_unit_test(fault_matrix),
      cmocka_unit_test(every_connect_fails),
      cmocka_unit_test(slow_close_is_waited_for),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
