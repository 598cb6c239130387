/*
 * tests/test-timeout.c - per-query timeouts and qreg_wait's own timeout on
 * the scripted driver: a timed-out running query is stopped in the driver
 * and its connection released (closed) only after the driver's operation
 * returned; the timeout counts from submission, so it covers waiting in
 * pending; a timeout racing completion gives exactly one terminal status;
 * qreg_wait gives up with QREG_ETIMEDOUT while the query goes on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "support/test_util.h"

/* Waits for a query that must time out, and checks that when qreg_wait
   returned, the driver had completed the job (its operation returned). */
static void wait_timed_out(qreg_t *reg, const qreg_id_t *id, unsigned tag) {
  assert_int_equal(test_wait(reg, id), QREG_TIMEOUT);
  uint64_t returned_ns = scripted_now_ns();
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(tag, &info));
  if (info.executes == 1) {
    if (info.completions != 1)
      fail_msg("qreg_wait returned before the timed-out job completed");
    assert_true(info.op_end_ns != 0 && info.op_end_ns <= returned_ns);
  }
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &s), 0);
  assert_int_equal(s->status, QREG_TIMEOUT);
  assert_true(s->has_error);
  assert_string_equal(s->error.type, "timeout");
  assert_true(s->finished_ms >= s->created_ms);
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id->str, 0, 0, &page), QREG_ENORESULT);
  test_assert_no_violation();
}

static void check_closed_after_op(unsigned tag) {
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(tag, &info));
  if (info.close_ns == 0)
    fail_msg("tag %u: its connection was never closed after it (pooled?)", tag);
  assert_true(info.close_ns >= info.op_end_ns);
}

/* Opens a registry and runs `script` (with ";tag=N" appended) in it under
   growing timeouts until one times out while the job runs in the driver: on
   a loaded machine (valgrind) a short timeout can expire before the job
   started, which is correct but not what these tests are about; each retry
   gets a new registry (test_open resets the scripted driver's counters),
   so nothing of a failed attempt is counted.
   Returns the registry; *tag is the run that counted, *closed_before the
   closed-connection count before it. */
static qreg_t *time_out_while_running(const char *script, uint64_t timeout_ms, unsigned *tag,
                                      uint64_t *closed_before) {
  for (*tag = 1; *tag <= 5; (*tag)++, timeout_ms *= 4) {
    qreg_t *reg = test_open(NULL);
    scripted_counters_t c;
    scripted_counters_get(&c);
    *closed_before = c.closed;
    char sql[128];
    snprintf(sql, sizeof sql, "%s;tag=%u", script, *tag);
    qreg_id_t id = test_execute_opts(reg, sql, timeout_ms, 0, 0);
    wait_timed_out(reg, &id, *tag);
    scripted_tag_info_t info;
    assert_true(scripted_tag_info_get(*tag, &info));
    if (info.executes == 1)
      return reg;
    print_message("a timeout of %llu ms expired before the job ran; retrying longer\n",
                  (unsigned long long)timeout_ms);
    test_close_checked(reg);
  }
  fail_msg("no timeout expired while its job was running");
  return NULL;
}

static void released_on_timeout(void **state) {
  (void)state;
  unsigned tag = 0;
  uint64_t closed_before = 0;
  qreg_t *reg = time_out_while_running("hang", 100, &tag, &closed_before);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.cancels, 1); /* stopped in the driver, not abandoned */
  test_wait_counter(test_counter_closed, closed_before + 1, "closed");
  test_assert_all_released(reg);
  test_close_checked(reg);
  check_closed_after_op(tag);
}

/* The driver's operation takes 400 ms more after the timeout asks it to
   stop: the connection is released only after it returned. */
static void slow_operation_during_timeout(void **state) {
  (void)state;
  unsigned tag = 0;
  uint64_t closed_before = 0;
  qreg_t *reg = time_out_while_running("sleep=400;ignore_cancel", 50, &tag, &closed_before);
  /* The driver said OK, but the query was decided by the timeout: its
     connection is closed, not pooled. */
  test_wait_counter(test_counter_closed, closed_before + 1, "closed");
  test_close_checked(reg);
  check_closed_after_op(tag);
}

/* The timeout counts from submission: a query stuck in pending times out
   there, without ever touching a connection. */
static void timeout_covers_pending(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  qreg_id_t running = test_execute(reg, "hang;tag=1", NULL);
  test_wait_status(reg, &running, QREG_RUNNING);
  qreg_id_t pending = test_execute_opts(reg, "rows=1;tag=2", 100, 0, 0);
  wait_timed_out(reg, &pending, 2);
  assert_int_equal(test_status(reg, &running), QREG_RUNNING);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, running.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  test_close_checked(reg);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(2, &info));
  assert_int_equal(info.executes, 0);
}

static void finishes_before_timeout(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute_opts(reg, "rows=2;sleep=10", 10000, 0, 0);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  test_close_checked(reg);
}

static void default_timeout_from_config(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.default_timeout_ms = 80;
  qreg_t *reg = test_open(&config);
  qreg_id_t id = test_execute(reg, "hang;tag=1", NULL);
  wait_timed_out(reg, &id, 1);
  test_close_checked(reg);
}

/* qreg_wait's own timeout: QREG_ETIMEDOUT, the current status, and the
   query goes on; 0 checks without blocking. */
static void wait_times_out_query_goes_on(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "hang;tag=1", NULL);
  test_wait_status(reg, &id, QREG_RUNNING);
  qreg_status_t status = QREG_SUCCEEDED;
  assert_int_equal(qreg_wait(reg, id.str, 30, &status), QREG_ETIMEDOUT);
  assert_int_equal(status, QREG_RUNNING);
  assert_true(strlen(qreg_last_error()) > 0);
  assert_int_equal(qreg_wait(reg, id.str, 0, &status), QREG_ETIMEDOUT);
  assert_int_equal(qreg_wait(reg, id.str, 0, NULL), QREG_ETIMEDOUT);
  assert_int_equal(test_status(reg, &id), QREG_RUNNING);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.cancels, 0);
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(qreg_wait(reg, id.str, 0, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  test_close_checked(reg);
}

/* A timeout racing the driver's completion: exactly one terminal status,
   consistent with what the snapshot says; one completion; a connection is
   pooled only when the query succeeded. */
static void timeout_races_completion(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  unsigned seen[QREG_STATUS_COUNT] = {0};
  for (unsigned i = 0; i < 120; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "rows=1;sleep=%u;tag=%u", i % 4, i);
    qreg_id_t id = test_execute_opts(reg, sql, 1 + i % 3, 0, 0);
    qreg_status_t status = test_wait(reg, &id);
    if (status != QREG_SUCCEEDED && status != QREG_TIMEOUT)
      fail_msg("round %u: status %s", i, qreg_status_name(status));
    seen[status]++;
    assert_int_equal(test_status(reg, &id), status);
    scripted_tag_info_t info;
    assert_true(scripted_tag_info_get(i, &info));
    assert_int_equal(info.completions, info.executes);
    test_assert_all_released(reg);
  }
  test_close_checked(reg);
  print_message("timeout race: %u succeeded, %u timed out\n", seen[QREG_SUCCEEDED],
                seen[QREG_TIMEOUT]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(released_on_timeout),
      cmocka_unit_test(slow_operation_during_timeout),
      cmocka_unit_test(timeout_covers_pending),
      cmocka_unit_test(finishes_before_timeout),
      cmocka_unit_test(default_timeout_from_config),
      cmocka_unit_test(wait_times_out_query_goes_on),
      cmocka_unit_test(timeout_races_completion),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
