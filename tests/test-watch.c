/*
 * tests/test-watch.c - asynchronous completion: qreg_watch() calls back
 * exactly once when a query settles, on the loop thread, never under the
 * lock, never inside qreg_watch() itself, also when cancel, timeout, prune
 * and close race with completion; and qreg_cancel_async() returns at once.
 * Also: a driver that completes a job twice is caught and counted, not
 * obeyed.
 *
 * How these fail: a watch called twice or never makes a count differ; one
 * called before the connection is released sees connections_in_use > 0 (in
 * the chain, where one query runs at a time) or a running status; one called under the lock deadlocks on qreg_snapshot
 * inside it (the hang guard); one called inside qreg_watch() runs on the
 * caller's thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/scripted_driver.h"
#include "support/test_util.h"

/* What one watch saw. */
typedef struct seen {
  atomic_int calls;
  int rc;
  qreg_status_t status;
  pthread_t thread;
  int snapshot_rc; /* qreg_snapshot inside the callback */
  qreg_status_t snapshot_status;
  int wait_rc; /* qreg_wait with a timeout inside: refused */
  qreg_id_t id;
} seen_t;

static void on_settled(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  seen_t *s = arg;
  s->rc = rc;
  s->status = status;
  s->thread = pthread_self();
  s->id = *id;
  qreg_snapshot_t *snap = NULL;
  s->snapshot_rc = qreg_snapshot(reg, id->str, &snap);
  s->snapshot_status = snap ? snap->status : QREG_PENDING;
  qreg_snapshot_free(snap);
  s->wait_rc = qreg_wait(reg, id->str, 1000, NULL);
  atomic_fetch_add(&s->calls, 1);
}

static void wait_calls(seen_t *seen, size_t n, int want) {
  for (int spins = 0; spins < 20000; spins++) {
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
      done += atomic_load(&seen[i].calls) >= want;
    if (done == n)
      return;
    test_sleep_ms(1);
  }
  fail_msg("watch callbacks did not all arrive");
}

static void watch_reports_each_ending_once(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  qreg_t *reg = test_open(&config);
  static const struct {
    const char *sql;
    qreg_status_t status;
  } cases[] = {
      {"rows=3 sleep=20", QREG_SUCCEEDED},
      {"fail=start", QREG_FAILED},
      {"fail=now", QREG_FAILED},
      {"hang", QREG_CANCELED},
      {"hang", QREG_TIMEOUT},
  };
  enum {
    N = sizeof cases / sizeof cases[0]
  };
  seen_t seen[N];
  memset(seen, 0, sizeof seen);
  qreg_id_t ids[N];
  for (size_t i = 0; i < N; i++) {
    ids[i] = cases[i].status == QREG_TIMEOUT ? test_execute_opts(reg, cases[i].sql, 100, 0, 0)
                                             : test_execute(reg, cases[i].sql, NULL);
    assert_int_equal(qreg_watch(reg, ids[i].str, on_settled, &seen[i]), 0);
  }
  qreg_status_t status;
  assert_int_equal(qreg_cancel_async(reg, ids[3].str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  wait_calls(seen, N, 1);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(seen[i].rc, 0);
    assert_int_equal(seen[i].status, cases[i].status);
    assert_string_equal(seen[i].id.str, ids[i].str);
    assert_false(pthread_equal(seen[i].thread, pthread_self()));
    /* Settled means settled: the snapshot agrees, and a blocking wait is
       refused on the loop thread rather than hanging it. */
    assert_int_equal(seen[i].snapshot_rc, 0);
    assert_int_equal(seen[i].snapshot_status, cases[i].status);
    assert_int_equal(seen[i].wait_rc, QREG_EINVAL);
  }
  /* A query settled long ago is reported too, on the loop thread. */
  seen_t late;
  memset(&late, 0, sizeof late);
  assert_int_equal(qreg_watch(reg, ids[0].str, on_settled, &late), 0);
  wait_calls(&late, 1, 1);
  assert_int_equal(late.status, QREG_SUCCEEDED);
  assert_false(pthread_equal(late.thread, pthread_self()));
  test_sleep_ms(20);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(atomic_load(&seen[i].calls), 1);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.watches, 0);
  test_close_checked(reg);
}

static void watch_refuses_what_it_cannot_keep(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  qreg_t *reg = test_open(&config);
  seen_t s;
  memset(&s, 0, sizeof s);
  assert_int_equal(qreg_watch(reg, "123e4567-e89b-42d3-a456-426614174000", on_settled, &s),
                   QREG_ENOTFOUND);
  assert_int_equal(qreg_watch(reg, "nonsense", on_settled, &s), QREG_EINVAL);
  qreg_id_t id = test_execute(reg, "rows=1", NULL);
  assert_int_equal(qreg_watch(reg, id.str, NULL, &s), QREG_EINVAL);
  assert_int_equal(qreg_watch(NULL, id.str, on_settled, &s), QREG_EINVAL);
  test_wait(reg, &id);
  assert_int_equal(qreg_close(reg), 0);
  test_check_after_close(reg);
  assert_int_equal(qreg_watch(reg, id.str, on_settled, &s), QREG_ECLOSED);
  assert_int_equal(qreg_cancel_async(reg, id.str, NULL), QREG_ECLOSED);
  qreg_destroy(reg);
  assert_int_equal(atomic_load(&s.calls), 0);
}

/* Every watch on queries that are pending, running or finished when the
   registry closes is called before qreg_close() returns, once, with
   QREG_ECLOSED for those that settle because of the close. */
static void close_calls_every_watch(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 2;
  qreg_t *reg = test_open(&config);
  enum {
    N = 40
  };
  seen_t *seen = calloc(N, sizeof *seen);
  assert_non_null(seen);
  qreg_id_t done = test_execute(reg, "rows=1", NULL);
  test_wait(reg, &done);
  for (size_t i = 0; i < N; i++) {
    qreg_id_t id = test_execute(reg, i == 0 ? "rows=1" : "hang", NULL);
    if (i == 0)
      test_wait(reg, &id);
    assert_int_equal(qreg_watch(reg, id.str, on_settled, &seen[i]), 0);
  }
  test_close_checked(reg);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&seen[i].calls), 1);
    if (i == 0)
      continue; /* settled before the close: reported as it ended */
    assert_int_equal(seen[i].rc, QREG_ECLOSED);
    assert_int_equal(seen[i].status, QREG_CANCELED);
    /* Inside the callback the registry was already refusing calls. */
    assert_int_equal(seen[i].snapshot_rc, QREG_ECLOSED);
  }
  free(seen);
}

/* Many queries, each watched once, while cancels, timeouts, prunes and
   completions race: every watch is called exactly once, after its
   connection was released. */
static void watch_exactly_once_under_races(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 4;
  qreg_t *reg = test_open(&config);
  enum {
    N = 400
  };
  seen_t *seen = calloc(N, sizeof *seen);
  qreg_id_t *ids = calloc(N, sizeof *ids);
  assert_non_null(seen);
  assert_non_null(ids);
  uint64_t rng = 42;
  for (size_t i = 0; i < N; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "rows=%u sleep=%u", (unsigned)(test_rand(&rng) % 5),
             (unsigned)(test_rand(&rng) % 6));
    uint64_t timeout = test_rand(&rng) % 4 == 0 ? 1 + test_rand(&rng) % 4 : 0;
    uint64_t ttl = test_rand(&rng) % 6 == 0 ? 1 + test_rand(&rng) % 5 : 0;
    ids[i] = test_execute_opts(reg, sql, timeout, ttl, 0);
    if (qreg_watch(reg, ids[i].str, on_settled, &seen[i]) != 0)
      atomic_store(&seen[i].calls, 1); /* pruned already: never called */
    if (test_rand(&rng) % 5 == 0)
      (void)qreg_cancel_async(reg, ids[i].str, NULL);
    if (test_rand(&rng) % 7 == 0)
      (void)qreg_prune_expired(reg);
  }
  wait_calls(seen, N, 1);
  test_sleep_ms(20);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&seen[i].calls), 1);
    if (seen[i].thread != 0) {
      assert_int_equal(seen[i].rc, 0);
      assert_true(qreg_status_is_terminal(seen[i].status));
    }
  }
  test_close_checked(reg);
  free(seen);
  free(ids);
}

/* A watch callback may submit and watch again: a chain of queries driven
   only by callbacks, no thread waiting. */
typedef struct chain {
  atomic_int left;
  atomic_int done;
  atomic_int busy_seen; /* callbacks that saw a connection still in use */
} chain_t;

static void chain_next(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  (void)id;
  chain_t *c = arg;
  qreg_stats_t stats = QREG_STATS_INIT;
  if (qreg_stats(reg, &stats) != 0 || stats.connections_in_use != 0)
    atomic_fetch_add(&c->busy_seen, 1);
  if (rc != 0 || status != QREG_SUCCEEDED || atomic_fetch_sub(&c->left, 1) <= 1) {
    atomic_store(&c->done, 1);
    return;
  }
  qreg_id_t next;
  if (qreg_execute(reg, "rows=2", NULL, &next) != 0 ||
      qreg_watch(reg, next.str, chain_next, c) != 0)
    atomic_store(&c->done, 1);
}

static void callbacks_may_submit_and_watch(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  qreg_t *reg = test_open(&config);
  chain_t chain = {50, 0, 0};
  qreg_id_t first = test_execute(reg, "rows=2", NULL);
  assert_int_equal(qreg_watch(reg, first.str, chain_next, &chain), 0);
  for (int spins = 0; spins < 20000 && !atomic_load(&chain.done); spins++)
    test_sleep_ms(1);
  assert_int_equal(atomic_load(&chain.done), 1);
  assert_int_equal(atomic_load(&chain.left), 0);
  assert_int_equal(atomic_load(&chain.busy_seen), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  qreg_stats(reg, &stats);
  assert_int_equal(stats.records_by_status[QREG_SUCCEEDED], 50);
  test_close_checked(reg);
}

/* --- a driver that completes twice ------------------------------------------- */

struct qreg_driver_conn {
  int unused;
};

static struct qreg_driver_conn twice_conn;

static int twice_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  (void)config;
  (void)message;
  *state_out = &twice_conn;
  return 0;
}
static void twice_destroy(void *state) {
  (void)state;
}
static void twice_connect(void *state, qreg_conn_request_t *request) {
  (void)state;
  qreg_conn_request_done(request, &twice_conn, NULL);
}
static void twice_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  (void)conn;
  job->conn_reusable = true;
  qreg_job_complete(job, QREG_JOB_OK);
  qreg_job_complete(job, QREG_JOB_ERROR); /* the bug */
}
static void twice_cancel(qreg_driver_conn_t *conn, qreg_job_t *job) {
  (void)conn;
  (void)job;
}
static void twice_close(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg) {
  (void)conn;
  closed(arg);
  closed(arg); /* the bug again */
}
static bool twice_matches(const char *url) {
  return strncmp(url, "twice:", 6) == 0;
}
static char *twice_redact(const char *url) {
  return strdup(url);
}

static const char *const twice_schemes[] = {"twice", NULL};
static const qreg_driver_option_t twice_options[] = {{.name = NULL}};
static const qreg_driver_t twice_driver = {
    .name = "twice",
    .schemes = twice_schemes,
    .url_forms = "twice:",
    .matches = twice_matches,
    .redact_url = twice_redact,
    .options = twice_options,
    .create = twice_create,
    .destroy = twice_destroy,
    .connect = twice_connect,
    .execute = twice_execute,
    .cancel = twice_cancel,
    .close = twice_close,
};

static void second_completion_is_caught(void **state) {
  (void)state;
  assert_int_equal(qreg_driver_register(&twice_driver), 0);
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = "twice:";
  qreg_t *reg = NULL;
  assert_int_equal(qreg_open(&config, &reg), 0);
  qreg_id_t id;
  assert_int_equal(qreg_execute(reg, "SELECT 1", NULL, &id), 0);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, 10000, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED); /* the first completion counts */
  assert_int_equal(qreg_close(reg), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.driver_violations, 2); /* one job, one close */
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  qreg_destroy(reg);
}

int main(void) {
  test_driver_setup();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(watch_reports_each_ending_once),
      cmocka_unit_test(watch_refuses_what_it_cannot_keep),
      cmocka_unit_test(close_calls_every_watch),
      cmocka_unit_test(watch_exactly_once_under_races),
      cmocka_unit_test(callbacks_may_submit_and_watch),
      cmocka_unit_test(second_completion_is_caught),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
