/*
 * tests/test-close.c - qreg_close and qreg_destroy on the scripted driver:
 * closing with pending, running and finished queries stops them all and
 * closes every connection before it returns (opened == closed the moment it
 * returns, through qreg_stats and through the driver); slow driver operations
 * in flight (an ignored cancel, a slow cancel, a slow close, a slow connect)
 * are waited for; blocked callers return; calls after close, and calls
 * racing with it from other threads, get QREG_ECLOSED and never crash.
 *
 * Interleavings are forced, not slept for: an operation "in flight during
 * close" is held at a scripted-driver gate that opens only once close has
 * reached it (its cancel arrived, or the registry refuses calls), and callers
 * "blocked when close comes" are counted blocked with
 * qreg__registry_blocked_callers() first. Each test asserts that the
 * interleaving happened, so it fails if it did not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/test_util.h"

static uint64_t connect_attempts(const scripted_counters_t *c) {
  return c->connect_attempts;
}

static void expect_job(unsigned tag, unsigned executes, int outcome) {
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(tag, &info));
  if (info.executes != executes || info.completions != executes)
    fail_msg("tag %u: %u executes, %u completions, expected %u of each", tag, info.executes,
             info.completions, executes);
  if (executes > 0) {
    assert_int_equal(info.outcome, outcome);
    assert_true(info.close_ns != 0 && info.close_ns >= info.op_end_ns);
  }
}

/* Closing with a finished, two running and two pending queries. */
static void close_with_pending_running_finished(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 2;
  qreg_t *reg = test_open(&config);
  qreg_id_t finished = test_execute(reg, "rows=2;tag=1", NULL);
  assert_int_equal(test_wait(reg, &finished), QREG_SUCCEEDED);
  qreg_id_t running[2] = {test_execute(reg, "hang;tag=2", NULL),
                          test_execute(reg, "hang;tag=3", NULL)};
  test_wait_status(reg, &running[0], QREG_RUNNING);
  test_wait_status(reg, &running[1], QREG_RUNNING);
  test_wait_counter(test_counter_executes, 3, "executes");
  qreg_id_t pending[2] = {test_execute(reg, "rows=1;tag=4", NULL),
                          test_execute(reg, "rows=1;tag=5", NULL)};
  assert_int_equal(test_status(reg, &pending[0]), QREG_PENDING);

  assert_int_equal(qreg_close(reg), 0);
  test_check_after_close(reg);
  expect_job(2, 1, QREG_JOB_CANCELED);
  expect_job(3, 1, QREG_JOB_CANCELED);
  expect_job(4, 0, 0);
  expect_job(5, 0, 0);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.cancels, 2);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, finished.str, &s), QREG_ECLOSED);
  qreg_destroy(reg);
}

/* A slow operation in flight: the job ignores the cancel and goes on until
   gate 1 opens, once close's cancel has reached it; qreg_close returns only
   after it returned and its connection closed. */
static void slow_operation_during_close(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "gate=1;ignore_cancel;tag=1", NULL);
  test_wait_status(reg, &id, QREG_RUNNING);
  test_wait_counter(test_counter_executes, 1, "executes");
  test_gate_opener_t opener = {.gate = 1, .tag = 1};
  test_gate_opener_start(&opener);
  assert_int_equal(qreg_close(reg), 0);
  uint64_t returned_ns = scripted_now_ns();
  test_gate_opener_join(&opener);
  test_check_after_close(reg);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(1, &info));
  assert_true(info.op_end_ns != 0 && info.op_end_ns <= returned_ns);
  assert_true(info.cancel_ns != 0 && info.cancel_ns <= info.op_end_ns); /* in flight */
  expect_job(1, 1, QREG_JOB_OK);
  qreg_destroy(reg);
}

/* A slow server-side cancel and a slow close on every connection. */
static void slow_cancel_and_close_during_close(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 3;
  qreg_t *reg = test_open(&config);
  scripted_fault_set(SCRIPTED_CLOSE, SCRIPTED_FAULT_STALL, 1, 0, 150);
  qreg_id_t a = test_execute(reg, "hang;cancel_sleep=150;tag=1", NULL);
  qreg_id_t b = test_execute(reg, "hang;cancel_fail;cancel_sleep=50;tag=2", NULL);
  qreg_id_t c = test_execute(reg, "gate=1;ignore_cancel;tag=3", NULL);
  test_wait_status(reg, &a, QREG_RUNNING);
  test_wait_status(reg, &b, QREG_RUNNING);
  test_wait_status(reg, &c, QREG_RUNNING);
  test_wait_counter(test_counter_executes, 3, "executes");
  test_gate_opener_t opener = {.gate = 1, .tag = 3}; /* once close's cancel reached it */
  test_gate_opener_start(&opener);
  assert_int_equal(qreg_close(reg), 0);
  test_gate_opener_join(&opener);
  test_check_after_close(reg);
  expect_job(1, 1, QREG_JOB_CANCELED);
  expect_job(2, 1, QREG_JOB_ERROR);
  expect_job(3, 1, QREG_JOB_OK);
  qreg_destroy(reg);
}

/* A connect in flight when close starts: close waits for it and closes the
   connection it produced. The connect waits at gate 1, which opens only
   once close has begun. */
static void connect_in_flight_during_close(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  scripted_set_connect_gate(1);
  qreg_id_t id = test_execute(reg, "rows=1;tag=1", NULL);
  test_wait_counter(connect_attempts, 1, "connect attempts");
  test_wait_gate(1, 1);
  test_gate_opener_t opener = {.gate = 1, .closing = reg};
  test_gate_opener_start(&opener);
  assert_int_equal(qreg_close(reg), 0);
  test_gate_opener_join(&opener); /* close began while the connect was held */
  test_check_after_close(reg);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.opened, 1);
  assert_int_equal(c.closed, 1);
  expect_job(1, 0, 0);
  (void)id;
  qreg_destroy(reg);
}

/* Idle pooled connections are closed by qreg_close. */
static void close_closes_idle_connections(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 3;
  qreg_t *reg = test_open(&config);
  qreg_id_t ids[3];
  for (int i = 0; i < 3; i++)
    ids[i] = test_execute(reg, "rows=1;sleep=50", NULL);
  for (int i = 0; i < 3; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_SUCCEEDED);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.connections_idle >= 1);
  assert_int_equal(stats.connections_idle, stats.connections_opened - stats.connections_closed);
  test_close_checked(reg);
}

/* After close every call but qreg_stats answers QREG_ECLOSED, with a
   message; a second close too. */
static void calls_after_close(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=1", NULL);
  test_wait(reg, &id);
  assert_int_equal(qreg_close(reg), 0);
  test_check_after_close(reg);

  qreg_id_t new_id;
  assert_int_equal(qreg_execute(reg, "rows=1", NULL, &new_id), QREG_ECLOSED);
  assert_true(strlen(qreg_last_error()) > 0);
  assert_int_equal(qreg_execute_n(reg, "rows=1", 6, NULL, &new_id), QREG_ECLOSED);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), QREG_ECLOSED);
  assert_null(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), QREG_ECLOSED);
  assert_null(page);
  qreg_list_t *list = NULL;
  assert_int_equal(qreg_list(reg, NULL, &list), QREG_ECLOSED);
  assert_null(list);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, 0, &status), QREG_ECLOSED);
  assert_int_equal(qreg_cancel(reg, id.str, &status), QREG_ECLOSED);
  assert_int_equal(qreg_prune_expired(reg), QREG_ECLOSED);
  assert_int_equal(qreg_close(reg), QREG_ECLOSED);
  assert_true(strlen(qreg_last_error()) > 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 1);
  assert_int_equal(stats.connections_closed, 1);
  qreg_destroy(reg);
}

/* Callers blocked in qreg_wait and qreg_cancel return when the registry
   closes. */
typedef struct blocked_call {
  qreg_t *reg;
  qreg_id_t id;
  bool cancel;
  int rc;
  qreg_status_t status;
  atomic_bool returned;
} blocked_call_t;

static void *blocked_call_main(void *arg) {
  blocked_call_t *b = arg;
  b->status = QREG_PENDING;
  b->rc = b->cancel ? qreg_cancel(b->reg, b->id.str, &b->status)
                    : qreg_wait(b->reg, b->id.str, UINT64_MAX, &b->status);
  atomic_store(&b->returned, true);
  return NULL;
}

/* The waiter's query hangs until canceled and the canceller's ignores the
   cancel until gate 1 opens, so neither caller can return before close
   comes: the test counts both blocked, then closes; the gate opens once
   close has canceled the hanging query (close is under way). */
static void blocked_callers_return_on_close(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t hang = test_execute(reg, "hang;tag=1", NULL);
  qreg_id_t slow = test_execute(reg, "gate=1;ignore_cancel;tag=2", NULL);
  test_wait_status(reg, &hang, QREG_RUNNING);
  test_wait_status(reg, &slow, QREG_RUNNING);
  blocked_call_t calls[2] = {{.reg = reg, .id = hang, .cancel = false},
                             {.reg = reg, .id = slow, .cancel = true}};
  pthread_t tids[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&tids[i], NULL, blocked_call_main, &calls[i]), 0);
  assert_int_equal(test_wait_blocked_callers(reg, 2), 2);
  test_wait_cancel_reached(2);
  for (int i = 0; i < 2; i++)
    assert_false(atomic_load(&calls[i].returned));
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(1, &info));
  assert_int_equal(info.cancel_ns, 0); /* only close will cancel the hang */
  test_gate_opener_t opener = {.gate = 1, .tag = 1};
  test_gate_opener_start(&opener);
  assert_int_equal(qreg_close(reg), 0);
  test_gate_opener_join(&opener);
  for (int i = 0; i < 2; i++) {
    pthread_join(tids[i], NULL);
    if (calls[i].rc == 0)
      assert_int_equal(calls[i].status, QREG_CANCELED);
    else
      assert_int_equal(calls[i].rc, QREG_ECLOSED);
  }
  test_check_after_close(reg);
  qreg_destroy(reg);
}

/* Threads calling everything while the registry closes: each call answers
   a documented code, calls begun after close returned answer QREG_ECLOSED,
   and nothing crashes. */
typedef struct racer {
  qreg_t *reg;
  atomic_bool *closed;        /* set once qreg_close has returned */
  _Atomic uint64_t *close_ns; /* when qreg_close was called, 0 before */
  uint64_t seed;
  _Atomic unsigned calls; /* read by the main thread while it runs */
  unsigned eclosed;
  unsigned overlapping; /* calls begun before close was called, ended after */
  int bad_rc;           /* first unexpected code, 0 if none */
  int bad_op;
} racer_t;

static void *racer_main(void *arg) {
  racer_t *r = arg;
  qreg_id_t last = {.str = "00000000-0000-4000-8000-000000000000"};
  unsigned after_close = 0;
  while (after_close < 50) {
    bool was_closed = atomic_load(r->closed);
    uint64_t began_ns = scripted_now_ns();
    int op = (int)(test_rand(&r->seed) % 7);
    int rc = 0;
    switch (op) {
    case 0: {
      qreg_id_t id;
      rc = qreg_execute(r->reg, test_rand(&r->seed) % 2 ? "hang" : "rows=2;sleep=2", NULL, &id);
      if (rc == 0)
        last = id;
      break;
    }
    case 1: {
      qreg_snapshot_t *s = NULL;
      rc = qreg_snapshot(r->reg, last.str, &s);
      qreg_snapshot_free(s);
      break;
    }
    case 2: {
      qreg_page_t *page = NULL;
      rc = qreg_fetch(r->reg, last.str, 0, 0, &page);
      qreg_page_free(page);
      break;
    }
    case 3: {
      qreg_list_t *list = NULL;
      rc = qreg_list(r->reg, NULL, &list);
      qreg_list_free(list);
      break;
    }
    case 4:
      rc = qreg_wait(r->reg, last.str, 5, NULL);
      break;
    case 5:
      rc = qreg_cancel(r->reg, last.str, NULL);
      break;
    default:
      rc = qreg_prune_expired(r->reg);
      if (rc > 0)
        rc = 0;
      break;
    }
    uint64_t ended_ns = scripted_now_ns();
    uint64_t close_ns = atomic_load(r->close_ns);
    if (close_ns != 0 && began_ns < close_ns && close_ns < ended_ns)
      r->overlapping++;
    atomic_fetch_add(&r->calls, 1);
    if (rc == QREG_ECLOSED)
      r->eclosed++;
    bool allowed = rc == 0 || rc == QREG_ECLOSED || rc == QREG_ENOTFOUND || rc == QREG_ENOTREADY ||
                   rc == QREG_ENORESULT || rc == QREG_ETIMEDOUT;
    if (was_closed && rc != QREG_ECLOSED)
      allowed = false;
    if (!allowed && r->bad_rc == 0) {
      r->bad_rc = rc;
      r->bad_op = op;
    }
    if (was_closed)
      after_close++;
  }
  return NULL;
}

/* Before close, the racers must be running: each has made calls_before
   calls (more each round), and one more caller is provably blocked in
   qreg_wait on a hanging query - a call that cannot end before close does.
   After close, the calls that began before it and ended after it are
   counted: the blocked one always, and the racers' across the rounds. */
static void calls_racing_close(void **state) {
  (void)state;
  unsigned racers_overlapping = 0;
  for (unsigned round = 0; round < 5; round++) {
    qreg_config_t config;
    test_config(&config);
    config.max_connections = 3;
    qreg_t *reg = test_open(&config);
    atomic_bool closed = false;
    _Atomic uint64_t close_ns = 0;
    qreg_id_t hang = test_execute(reg, "hang;tag=1", NULL);
    test_wait_status(reg, &hang, QREG_RUNNING);
    blocked_call_t blocked = {.reg = reg, .id = hang, .cancel = false};
    pthread_t blocked_tid;
    assert_int_equal(pthread_create(&blocked_tid, NULL, blocked_call_main, &blocked), 0);
    assert_int_equal(test_wait_blocked_callers(reg, 1), 1); /* before any racer runs */

    racer_t racers[4];
    pthread_t tids[4];
    for (int i = 0; i < 4; i++) {
      racers[i] = (racer_t){.reg = reg,
                            .closed = &closed,
                            .close_ns = &close_ns,
                            .seed = 0xc105e000u + round * 8 + (unsigned)i};
      assert_int_equal(pthread_create(&tids[i], NULL, racer_main, &racers[i]), 0);
    }
    unsigned calls_before = 20 + round * 10;
    uint64_t deadline = scripted_now_ns() / 1000000u + TEST_BOUND_MS;
    for (int i = 0; i < 4; i++) {
      while (atomic_load(&racers[i].calls) < calls_before) {
        if (scripted_now_ns() / 1000000u > deadline)
          fail_msg("round %u racer %d: %u calls in %u ms", round, i, atomic_load(&racers[i].calls),
                   TEST_BOUND_MS);
        test_sleep_ms(1);
      }
    }
    assert_false(atomic_load(&blocked.returned));
    atomic_store(&close_ns, scripted_now_ns());
    assert_int_equal(qreg_close(reg), 0);
    atomic_store(&closed, true);
    for (int i = 0; i < 4; i++) {
      pthread_join(tids[i], NULL);
      if (racers[i].bad_rc != 0)
        fail_msg("round %u racer %d (seed 0x%llx): op %d returned %s", round, i,
                 (unsigned long long)(0xc105e000u + round * 8 + (unsigned)i), racers[i].bad_op,
                 qreg_strerror(racers[i].bad_rc));
      assert_true(racers[i].eclosed >= 50);
      racers_overlapping += racers[i].overlapping;
    }
    pthread_join(blocked_tid, NULL);
    if (blocked.rc == 0)
      assert_int_equal(blocked.status, QREG_CANCELED);
    else
      assert_int_equal(blocked.rc, QREG_ECLOSED);
    test_check_after_close(reg);
    qreg_destroy(reg);
  }
  print_message("calls racing close: %u racer calls were under way when close was called\n",
                racers_overlapping);
  /* Four threads calling without pause are inside a call nearly all the
     time: five closes all falling between calls would mean they were not
     running at all. */
  assert_true(racers_overlapping >= 1);
}

/* qreg_destroy without qreg_close closes first: nothing left open. */
static void destroy_closes_first(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "hang;tag=1", NULL);
  test_wait_status(reg, &id, QREG_RUNNING);
  test_wait_counter(test_counter_executes, 1, "executes");
  qreg_destroy(reg);
  scripted_counters_t c;
  scripted_counters_get(&c);
  test_assert_no_violation();
  assert_int_equal(c.opened, c.closed);
  assert_int_equal(c.live_now, 0);
  assert_int_equal(c.executes, c.completions);
  expect_job(1, 1, QREG_JOB_CANCELED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(close_with_pending_running_finished),
      cmocka_unit_test(slow_operation_during_close),
      cmocka_unit_test(slow_cancel_and_close_during_close),
      cmocka_unit_test(connect_in_flight_during_close),
      cmocka_unit_test(close_closes_idle_connections),
      cmocka_unit_test(calls_after_close),
      cmocka_unit_test(blocked_callers_return_on_close),
      cmocka_unit_test(calls_racing_close),
      cmocka_unit_test(destroy_closes_first),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
