/*
 * tests/test-pg-pool.c - the connection pool against a real PostgreSQL
 * server (tests/support/pg_fixture): 200 queries submitted at once with
 * max_connections 10 never make more than 10 sessions exist (a thread samples
 * pg_stat_activity the whole time), all 200 finish with their own result,
 * and they start in the order they were submitted; idle sessions are closed
 * after the idle timeout.
 *
 * Owns, in each test, the registry it opens and the sampling thread with its
 * own admin connection; the fixture owns the server.
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

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define QUERIES 200
#define MAX_CONNECTIONS 10

typedef struct sampler {
  const char *app;
  atomic_bool stop;
  int max_seen; /* written by the thread, read after join */
  unsigned samples;
  bool failed;
} sampler_t;

static void *sample_sessions(void *arg) {
  sampler_t *sampler = arg;
  pg_admin_t *admin = pg_admin_open();
  if (admin == NULL) {
    sampler->failed = true;
    return NULL;
  }
  while (!atomic_load(&sampler->stop)) {
    int n = pg_admin_sessions(admin, sampler->app, NULL);
    if (n < 0) {
      sampler->failed = true;
      break;
    }
    if (n > sampler->max_seen)
      sampler->max_seen = n;
    sampler->samples++;
    test_sleep_ms(1);
  }
  pg_admin_close(admin);
  return NULL;
}

static void two_hundred_queries_ten_connections(void **state) {
  (void)state;
  const char *app = "qreg_t_pool";
  qreg_t *reg = pg_test_open(NULL, app, MAX_CONNECTIONS, false);
  sampler_t sampler = {.app = app};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, sample_sessions, &sampler), 0);

  static qreg_id_t ids[QUERIES];
  for (int i = 0; i < QUERIES; i++) {
    char sql[80];
    snprintf(sql, sizeof sql, "SELECT %d AS n, pg_sleep(0.01)::text AS slept", i);
    ids[i] = test_execute(reg, sql, NULL);
  }
  int64_t previous_start = 0;
  for (int i = 0; i < QUERIES; i++) {
    assert_int_equal(test_wait(reg, &ids[i]), QREG_SUCCEEDED);
    qreg_snapshot_t *s = pg_test_snapshot(reg, &ids[i]);
    /* FIFO: a query never starts before one submitted earlier. */
    assert_true(s->started_ms >= previous_start);
    previous_start = s->started_ms;
    qreg_snapshot_free(s);
    qreg_page_t *page = NULL;
    assert_int_equal(qreg_fetch(reg, ids[i].str, 0, 0, &page), 0);
    assert_int_equal(page->row_count, 1);
    assert_int_equal(page->values[0].v.i, i);
    qreg_page_free(page);
  }

  atomic_store(&sampler.stop, true);
  pthread_join(thread, NULL);
  assert_false(sampler.failed);
  print_message("  largest number of sessions seen: %d (%u samples)\n", sampler.max_seen,
                sampler.samples);
  assert_true(sampler.samples > 0);
  assert_true(sampler.max_seen >= 1);
  assert_true(sampler.max_seen <= MAX_CONNECTIONS);

  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.connections_opened <= MAX_CONNECTIONS);
  assert_int_equal(stats.connections_closed, 0); /* all clean: all pooled */
  assert_int_equal(stats.records_by_status[QREG_SUCCEEDED], QUERIES);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* Pooled sessions idle for longer than idle_timeout_ms are closed. */
static void idle_timeout_closes(void **state) {
  (void)state;
  const char *app = "qreg_t_idle";
  qreg_config_t config;
  qreg_config_init(&config);
  config.application_name = app;
  config.max_connections = 3;
  config.idle_timeout_ms = 200;
  qreg_t *reg = pg_test_open_config(&config);
  qreg_id_t ids[3];
  for (int i = 0; i < 3; i++)
    ids[i] = test_execute(reg, "SELECT pg_sleep(0.1)", NULL);
  for (int i = 0; i < 3; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_SUCCEEDED);
  assert_int_equal(pg_admin_wait_sessions(pg_admin(), app, NULL, 0, PG_GONE_MS), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 0);
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  /* And the registry opens new ones when needed. */
  qreg_id_t id = test_execute(reg, "SELECT 1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(two_hundred_queries_ten_connections),
      cmocka_unit_test(idle_timeout_closes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
