/*
 * tests/test-cancel.c - qreg_cancel on the scripted driver: a running query
 * is stopped and its connection released (then closed, never pooled) before
 * cancel returns; a pending query is dequeued without touching a connection;
 * a finished one is left as it is; cancel racing completion ends in exactly
 * one terminal status and one release; a slow driver operation in flight
 * (an ignored cancel, a slow or failing server-side cancel) is waited for.
 *
 * Races are forced, not slept for: a job held at a scripted-driver gate is
 * in flight for exactly as long as the test needs, a connect held at a gate
 * is still in progress, and qreg__registry_blocked_callers() says a waiter
 * or a canceller is blocked. Each such test asserts from the driver's
 * records that the interleaving it claims really happened (the cancel
 * reached the job before its operation returned, the connect had not
 * finished, the waiter was blocked), so it fails if it did not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/test_util.h"

/* Starts sql (tagged tag) and waits until the driver is running it. */
static qreg_id_t start_running(qreg_t *reg, const char *sql) {
  scripted_counters_t before;
  scripted_counters_get(&before);
  qreg_id_t id = test_execute(reg, sql, NULL);
  test_wait_status(reg, &id, QREG_RUNNING);
  test_wait_counter(test_counter_executes, before.executes + 1, "executes");
  return id;
}

/* Cancels and checks that, when cancel returns, the job had completed in
   the driver (its operation returned) and nothing is in use. */
static void cancel_and_check_settled(qreg_t *reg, const qreg_id_t *id, unsigned tag, int outcome) {
  qreg_status_t status = QREG_PENDING;
  assert_int_equal(qreg_cancel(reg, id->str, &status), 0);
  uint64_t returned_ns = scripted_now_ns();
  assert_int_equal(status, QREG_CANCELED);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(tag, &info));
  if (info.completions != 1)
    fail_msg("cancel returned with %u completion(s) of the job", info.completions);
  assert_int_equal(info.outcome, outcome);
  assert_true(info.op_end_ns != 0);
  assert_true(info.op_end_ns <= returned_ns);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_in_use, 0);
  test_assert_no_violation();
}

/* After the registry closed: the canceled job's connection was closed (not
   pooled and reused), and only after the job's operation had returned. */
static void check_closed_after_op(unsigned tag) {
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(tag, &info));
  if (info.close_ns == 0)
    fail_msg("tag %u: its connection was never closed after it (pooled?)", tag);
  assert_true(info.close_ns >= info.op_end_ns);
}

static void released_on_cancel(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = start_running(reg, "hang;tag=1");
  cancel_and_check_settled(reg, &id, 1, QREG_JOB_CANCELED);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_int_equal(s->status, QREG_CANCELED);
  assert_true(s->has_error);
  assert_string_equal(s->error.type, "canceled");
  assert_true(s->finished_ms >= s->started_ms);
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), QREG_ENORESULT);
  /* A canceled query's connection is closed, never pooled. */
  test_wait_counter(test_counter_closed, 1, "closed");
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 0);
  test_close_checked(reg);
  check_closed_after_op(1);
}

/* A pending query is dequeued: no connect, no execute, no cancel, no close
   happens because of it. */
static void cancel_pending_touches_no_connection(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  qreg_id_t running = start_running(reg, "hang;tag=1");
  qreg_id_t pending = test_execute(reg, "rows=1;tag=2", NULL);
  assert_int_equal(test_status(reg, &pending), QREG_PENDING);

  scripted_counters_t before, after;
  scripted_counters_get(&before);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, pending.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  scripted_counters_get(&after);
  assert_int_equal(after.connect_attempts, before.connect_attempts);
  assert_int_equal(after.executes, before.executes);
  assert_int_equal(after.cancels + after.cancels_noop, before.cancels + before.cancels_noop);
  assert_int_equal(after.closed, before.closed);
  assert_int_equal(test_status(reg, &running), QREG_RUNNING);

  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, pending.str, &s), 0);
  assert_int_equal(s->started_ms, 0);
  assert_string_equal(s->backend_id, "");
  qreg_snapshot_free(s);

  cancel_and_check_settled(reg, &running, 1, QREG_JOB_CANCELED);
  test_close_checked(reg);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(2, &info));
  assert_int_equal(info.executes, 0); /* never started, even at close */
}

static uint64_t connect_attempts(const scripted_counters_t *c) {
  return c->connect_attempts;
}

/* A query pending while its connection is still being opened is canceled
   without waiting for the connect; the connection opened later is pooled.
   The connect waits at gate 1 until the cancel has returned. */
static void cancel_pending_during_connect(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  scripted_set_connect_gate(1);
  qreg_id_t id = test_execute(reg, "rows=1;tag=1", NULL);
  test_wait_counter(connect_attempts, 1, "connect attempts");
  test_wait_gate(1, 1); /* the connect is in flight, and stays so */
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.opened, 0);                 /* canceled without waiting for the connect */
  assert_int_equal(scripted_gate_waiting(1), 1); /* it was still connecting */
  scripted_gate_open(1);
  test_wait_counter(test_counter_opened, 1, "opened");
  test_close_checked(reg);
  scripted_counters_get(&c);
  assert_int_equal(c.executes, 0);
}

/* Canceling a finished query changes nothing and returns its status. */
static void cancel_finished_changes_nothing(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=2", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_status_t status = QREG_PENDING;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_int_equal(s->status, QREG_SUCCEEDED);
  assert_false(s->has_error);
  assert_int_equal(s->row_count, 2);
  qreg_snapshot_free(s);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.cancels, 0);
  /* The second cancel of a canceled query also answers canceled. */
  qreg_id_t hang = start_running(reg, "hang;tag=2");
  cancel_and_check_settled(reg, &hang, 2, QREG_JOB_CANCELED);
  assert_int_equal(qreg_cancel(reg, hang.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  test_close_checked(reg);
}

/* Cancel racing completion, many times, with the cancel landing before,
   during and after the driver's completion: exactly one terminal status,
   consistent everywhere, one completion, one release; a canceled job's
   connection is never reused. max_connections 1, so a wrongly pooled
   connection would be reused by the very next query.

   Three landings in four rounds are forced, and checked to have happened:
   on a pending query (the only connection is held by a job at gate 1), on
   a job in flight (held at gate 2 until the cancel has reached it), after
   completion (waited for first). The fourth round is left to the scheduler
   - a spin of random length - to explore the windows in between. */
#define RACE_ROUNDS 300

typedef enum landing {
  LAND_PENDING,
  LAND_IN_FLIGHT,
  LAND_AFTER_COMPLETION,
  LAND_FREE,
  LAND_COUNT
} landing_t;

typedef struct race_round {
  qreg_status_t status;
} race_round_t;

/* A cancel made from another thread, so the main thread can open a gate
   while it is blocked. */
typedef struct cancel_call {
  qreg_t *reg;
  qreg_id_t id;
  int rc;
  qreg_status_t status;
} cancel_call_t;

static void *cancel_call_main(void *arg) {
  cancel_call_t *call = arg;
  call->rc = qreg_cancel(call->reg, call->id.str, &call->status);
  return NULL;
}

/* Runs round i's query and cancels it where landing says; returns the
   status cancel answered. */
static qreg_status_t cancel_landing(qreg_t *reg, unsigned i, landing_t landing, uint64_t *seed,
                                    qreg_id_t *id_out) {
  char sql[64];
  qreg_status_t status = QREG_PENDING;
  if (landing == LAND_PENDING) {
    qreg_id_t blocker = test_execute(reg, "rows=1;gate=1", NULL);
    test_wait_gate(1, 1); /* the only connection is busy at the gate */
    snprintf(sql, sizeof sql, "rows=1;tag=%u", i);
    *id_out = test_execute(reg, sql, NULL);
    assert_int_equal(test_status(reg, id_out), QREG_PENDING);
    assert_int_equal(qreg_cancel(reg, id_out->str, &status), 0);
    scripted_gate_open(1);
    assert_int_equal(test_wait(reg, &blocker), QREG_SUCCEEDED);
    scripted_gate_close(1);
    return status;
  }
  if (landing == LAND_IN_FLIGHT) {
    snprintf(sql, sizeof sql, "rows=1;tag=%u;gate=2", i);
    *id_out = test_execute(reg, sql, NULL);
    test_wait_gate(2, 1);
    cancel_call_t call = {.reg = reg, .id = *id_out, .status = QREG_PENDING};
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, cancel_call_main, &call), 0);
    test_gate_opener_t opener = {.gate = 2, .tag = i};
    test_gate_opener_start(&opener); /* opens once the cancel reached the job */
    pthread_join(tid, NULL);
    test_gate_opener_join(&opener);
    scripted_gate_close(2);
    assert_int_equal(call.rc, 0);
    return call.status;
  }
  snprintf(sql, sizeof sql, "rows=1;tag=%u", i);
  *id_out = test_execute(reg, sql, NULL);
  if (landing == LAND_AFTER_COMPLETION) {
    assert_int_equal(test_wait(reg, id_out), QREG_SUCCEEDED);
  } else {
    /* Spin a little, a different amount each round, so the cancel lands
       anywhere from "still pending" to "long finished". */
    unsigned spin = (unsigned)(test_rand(seed) % 4000);
    for (volatile unsigned s = 0; s < spin * 10; s++) {
    }
    if (test_rand(seed) % 8 == 0)
      test_sleep_ms(1);
  }
  assert_int_equal(qreg_cancel(reg, id_out->str, &status), 0);
  return status;
}

/* Checks that round i's cancel landed where it was forced to. */
static void check_landing(unsigned i, landing_t landing, qreg_status_t status,
                          const scripted_tag_info_t *info) {
  switch (landing) {
  case LAND_PENDING:
    if (info->executes != 0 || status != QREG_CANCELED)
      fail_msg("round %u: a cancel of a pending query let it run (%u executes, %s)", i,
               info->executes, qreg_status_name(status));
    break;
  case LAND_IN_FLIGHT:
    /* The cancel reached the job before its operation returned. */
    if (info->cancel_ns == 0 || info->op_end_ns == 0 || info->cancel_ns > info->op_end_ns)
      fail_msg("round %u: the cancel did not reach the job in flight", i);
    assert_int_equal(status, QREG_CANCELED);
    assert_int_equal(info->outcome, QREG_JOB_CANCELED);
    break;
  case LAND_AFTER_COMPLETION:
    assert_int_equal(status, QREG_SUCCEEDED);
    assert_int_equal(info->cancel_ns, 0);
    break;
  default:
    break;
  }
}

static void cancel_races_completion(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  uint64_t seed = 0x5eed0001;
  race_round_t rounds[RACE_ROUNDS];
  unsigned seen[QREG_STATUS_COUNT] = {0};
  unsigned free_pending = 0, free_in_flight = 0, free_after = 0;
  for (unsigned i = 0; i < RACE_ROUNDS; i++) {
    landing_t landing = (landing_t)(i % LAND_COUNT);
    qreg_id_t id;
    qreg_status_t status = cancel_landing(reg, i, landing, &seed, &id);
    if (status != QREG_SUCCEEDED && status != QREG_CANCELED)
      fail_msg("round %u (seed 0x5eed0001): status %s", i, qreg_status_name(status));
    rounds[i].status = status;
    seen[status]++;
    assert_int_equal(test_status(reg, &id), status);
    qreg_status_t waited = QREG_PENDING;
    assert_int_equal(qreg_wait(reg, id.str, 0, &waited), 0);
    assert_int_equal(waited, status);

    scripted_tag_info_t info;
    assert_true(scripted_tag_info_get(i, &info));
    assert_true(info.executes <= 1);
    /* Settled: the job (if it ran) completed once before cancel returned. */
    assert_int_equal(info.completions, info.executes);
    if (info.executes == 0)
      assert_int_equal(status, QREG_CANCELED);
    check_landing(i, landing, status, &info);
    if (landing == LAND_FREE) {
      if (info.executes == 0)
        free_pending++;
      else if (info.cancel_ns != 0)
        free_in_flight++;
      else
        free_after++;
    }
    qreg_page_t *page = NULL;
    int rc = qreg_fetch(reg, id.str, 0, 0, &page);
    if (status == QREG_SUCCEEDED) {
      assert_int_equal(rc, 0);
      assert_int_equal(page->total_rows, 1);
      qreg_page_free(page);
    } else {
      assert_int_equal(rc, QREG_ENORESULT);
    }
    qreg_stats_t stats = QREG_STATS_INIT;
    assert_int_equal(qreg_stats(reg, &stats), 0);
    assert_int_equal(stats.connections_in_use, 0);
    test_assert_no_violation();
  }
  test_close_checked(reg);

  /* A job decided by cancel released its connection by closing it: no later
     job ran on that connection. */
  for (unsigned i = 0; i < RACE_ROUNDS; i++) {
    scripted_tag_info_t info;
    assert_true(scripted_tag_info_get(i, &info));
    if (rounds[i].status != QREG_CANCELED || info.executes == 0)
      continue;
    for (unsigned j = i + 1; j < RACE_ROUNDS; j++) {
      scripted_tag_info_t later;
      assert_true(scripted_tag_info_get(j, &later));
      if (later.executes && later.conn_serial == info.conn_serial)
        fail_msg("round %u was canceled but its connection %u ran round %u", i, info.conn_serial,
                 j);
    }
    check_closed_after_op(i);
  }
  print_message("cancel race: %u succeeded, %u canceled; unforced rounds landed %u pending, "
                "%u in flight, %u after completion\n",
                seen[QREG_SUCCEEDED], seen[QREG_CANCELED], free_pending, free_in_flight,
                free_after);
}

/* A cancel and a wait from two threads at once see the same status. */
typedef struct race_thread {
  qreg_t *reg;
  qreg_id_t id;
  bool cancel; /* else wait */
  int rc;
  qreg_status_t status;
  atomic_bool returned;
} race_thread_t;

static void *race_thread_main(void *arg) {
  race_thread_t *t = arg;
  t->status = QREG_PENDING;
  t->rc = t->cancel ? qreg_cancel(t->reg, t->id.str, &t->status)
                    : qreg_wait(t->reg, t->id.str, TEST_BOUND_MS, &t->status);
  atomic_store(&t->returned, true);
  return NULL;
}

/* The order the three threads of a round meet the job in. The first three
   are forced with the job held at gate 1 and the threads counted blocked;
   the last lets the scheduler pick. */
typedef enum race_order {
  ORDER_WAIT_THEN_CANCELS,   /* waiter blocked, then both cancels reach the job */
  ORDER_CANCELS_THEN_WAIT,   /* both cancellers blocked, then the waiter */
  ORDER_WAIT_THEN_COMPLETES, /* waiter blocked, the job completes, then cancels */
  ORDER_FREE,                /* all three started together on a fast job */
  ORDER_COUNT
} race_order_t;

static void race_thread_start(race_thread_t *t, pthread_t *tid) {
  atomic_store(&t->returned, false);
  assert_int_equal(pthread_create(tid, NULL, race_thread_main, t), 0);
}

static void cancel_and_wait_from_threads(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  uint64_t seed = 0x5eed0002;
  for (unsigned i = 0; i < 100; i++) {
    race_order_t order = (race_order_t)(i % ORDER_COUNT);
    char sql[64];
    if (order == ORDER_FREE)
      snprintf(sql, sizeof sql, "rows=2;tag=%u%s", i, i % 3 == 0 ? ";sleep=1" : "");
    else
      snprintf(sql, sizeof sql, "rows=2;tag=%u;gate=1", i);
    race_thread_t threads[3]; /* 0 and 2 cancel, 1 waits */
    qreg_id_t id = test_execute(reg, sql, NULL);
    for (int t = 0; t < 3; t++)
      threads[t] = (race_thread_t){.reg = reg, .id = id, .cancel = t != 1};
    pthread_t tids[3];
    scripted_tag_info_t info;
    switch (order) {
    case ORDER_WAIT_THEN_CANCELS:
      test_wait_gate(1, 1);
      race_thread_start(&threads[1], &tids[1]);
      assert_int_equal(test_wait_blocked_callers(reg, 1), 1);
      race_thread_start(&threads[0], &tids[0]);
      race_thread_start(&threads[2], &tids[2]);
      /* All three blocked while the job is held in flight, and the cancel
         has reached it: the waiter met the cancel, not the completion. */
      assert_int_equal(test_wait_blocked_callers(reg, 3), 3);
      test_wait_cancel_reached(i);
      assert_true(scripted_tag_info_get(i, &info));
      assert_true(info.cancel_ns != 0 && info.completions == 0);
      scripted_gate_open(1);
      break;
    case ORDER_CANCELS_THEN_WAIT:
      test_wait_gate(1, 1);
      race_thread_start(&threads[0], &tids[0]);
      race_thread_start(&threads[2], &tids[2]);
      assert_int_equal(test_wait_blocked_callers(reg, 2), 2);
      test_wait_cancel_reached(i);
      race_thread_start(&threads[1], &tids[1]);
      assert_int_equal(test_wait_blocked_callers(reg, 3), 3);
      assert_true(scripted_tag_info_get(i, &info));
      assert_true(info.cancel_ns != 0 && info.completions == 0);
      scripted_gate_open(1);
      break;
    case ORDER_WAIT_THEN_COMPLETES:
      test_wait_gate(1, 1);
      race_thread_start(&threads[1], &tids[1]);
      assert_int_equal(test_wait_blocked_callers(reg, 1), 1);
      scripted_gate_open(1);
      pthread_join(tids[1], NULL);
      /* The job completed on its own while the waiter was blocked; only
         then do the cancels come. */
      assert_true(scripted_tag_info_get(i, &info));
      assert_true(info.completions == 1 && info.cancel_ns == 0);
      race_thread_start(&threads[0], &tids[0]);
      race_thread_start(&threads[2], &tids[2]);
      break;
    default:
      for (int t = 0; t < 3; t++) {
        race_thread_start(&threads[t], &tids[t]);
        if (test_rand(&seed) % 2)
          test_sleep_ms(0);
      }
      break;
    }
    for (int t = 0; t < 3; t++)
      if (order != ORDER_WAIT_THEN_COMPLETES || t != 1)
        pthread_join(tids[t], NULL);
    scripted_gate_close(1);
    for (int t = 0; t < 3; t++) {
      assert_int_equal(threads[t].rc, 0);
      assert_true(threads[t].status == QREG_SUCCEEDED || threads[t].status == QREG_CANCELED);
      assert_int_equal(threads[t].status, threads[0].status);
    }
    if (order == ORDER_WAIT_THEN_CANCELS || order == ORDER_CANCELS_THEN_WAIT)
      assert_int_equal(threads[0].status, QREG_CANCELED);
    else if (order == ORDER_WAIT_THEN_COMPLETES)
      assert_int_equal(threads[0].status, QREG_SUCCEEDED);
    assert_true(scripted_tag_info_get(i, &info));
    assert_int_equal(info.completions, info.executes);
  }
  test_close_checked(reg);
}

/* A slow driver operation in flight during cancel: the job ignores the
   cancel and goes on until gate 1 opens, which happens only once the cancel
   has reached it; cancel returns only after it returned, and the connection
   is closed after that. */
static void slow_operation_during_cancel(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = start_running(reg, "gate=1;ignore_cancel;tag=1");
  test_gate_opener_t opener = {.gate = 1, .tag = 1};
  test_gate_opener_start(&opener);
  cancel_and_check_settled(reg, &id, 1, QREG_JOB_OK);
  test_gate_opener_join(&opener);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(1, &info));
  assert_true(info.cancel_ns != 0 && info.cancel_ns <= info.op_end_ns); /* in flight */
  /* The driver said OK, but the query was decided by cancel. */
  assert_int_equal(test_status(reg, &id), QREG_CANCELED);
  test_wait_counter(test_counter_closed, 1, "closed");
  test_close_checked(reg);
  check_closed_after_op(1);
}

/* A slow server-side cancel (a worker operation of its own) is in flight
   too: the job completes only after it, and cancel returns after that. */
static void slow_server_cancel(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = start_running(reg, "hang;cancel_sleep=200;tag=1");
  cancel_and_check_settled(reg, &id, 1, QREG_JOB_CANCELED);
  test_close_checked(reg);
  check_closed_after_op(1);
}

/* A failing server-side cancel still ends the job and releases the
   connection (closed, since the driver dropped it). */
static void failing_server_cancel(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = start_running(reg, "hang;cancel_fail;cancel_sleep=50;tag=1");
  cancel_and_check_settled(reg, &id, 1, QREG_JOB_ERROR);
  assert_int_equal(test_status(reg, &id), QREG_CANCELED);
  test_close_checked(reg);
  check_closed_after_op(1);
}

/* Several threads cancel the same running query: all return canceled, and
   the driver is asked to stop the job once. */
static void concurrent_cancels(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = start_running(reg, "hang;tag=1");
  race_thread_t threads[4];
  pthread_t tids[4];
  for (int t = 0; t < 4; t++) {
    threads[t] = (race_thread_t){.reg = reg, .id = id, .cancel = true};
    assert_int_equal(pthread_create(&tids[t], NULL, race_thread_main, &threads[t]), 0);
  }
  for (int t = 0; t < 4; t++) {
    pthread_join(tids[t], NULL);
    assert_int_equal(threads[t].rc, 0);
    assert_int_equal(threads[t].status, QREG_CANCELED);
  }
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.cancels, 1);
  test_close_checked(reg);
}

/* A caller blocked in qreg_wait returns when another thread cancels. */
static void wait_returns_on_cancel(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = start_running(reg, "hang;tag=1");
  race_thread_t waiter = {.reg = reg, .id = id, .cancel = false};
  pthread_t tid;
  race_thread_start(&waiter, &tid);
  /* The waiter is blocked (the query hangs until canceled) when the cancel
     comes. */
  assert_int_equal(test_wait_blocked_callers(reg, 1), 1);
  assert_false(atomic_load(&waiter.returned));
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  pthread_join(tid, NULL);
  assert_int_equal(waiter.rc, 0);
  assert_int_equal(waiter.status, QREG_CANCELED);
  test_close_checked(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(released_on_cancel),
      cmocka_unit_test(cancel_pending_touches_no_connection),
      cmocka_unit_test(cancel_pending_during_connect),
      cmocka_unit_test(cancel_finished_changes_nothing),
      cmocka_unit_test(cancel_races_completion),
      cmocka_unit_test(cancel_and_wait_from_threads),
      cmocka_unit_test(slow_operation_during_cancel),
      cmocka_unit_test(slow_server_cancel),
      cmocka_unit_test(failing_server_cancel),
      cmocka_unit_test(concurrent_cancels),
      cmocka_unit_test(wait_returns_on_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
