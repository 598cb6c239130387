/*
 * tests/test-limits.c - the bounds of DESIGN.md invariant 5 on the scripted
 * driver: never more than max_connections connections (the driver counts
 * opening + open + closing), pending queries started in FIFO order, rows cut
 * at max_rows and bytes at max_result_bytes (truncated, row_count = rows
 * stored), max_records with eviction of the oldest finished record and
 * QREG_EFULL when none has finished, and max_sql_bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/test_util.h"

static void max_connections_bound(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 3;
  qreg_t *reg = test_open(&config);
  /* Slow connects and closes widen the window in which a careless pool
     would open a fourth. */
  scripted_fault_set(SCRIPTED_CONNECT, SCRIPTED_FAULT_STALL, 1, 0, 10);
  qreg_id_t ids[12];
  for (unsigned i = 0; i < 12; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "sleep=20;rows=1;tag=%u%s", i, i % 3 == 0 ? ";not_reusable" : "");
    ids[i] = test_execute(reg, sql, NULL);
  }
  for (unsigned i = 0; i < 12; i++) {
    qreg_stats_t stats = QREG_STATS_INIT;
    assert_int_equal(qreg_stats(reg, &stats), 0);
    assert_true(stats.connections_in_use + stats.connections_idle + stats.connections_opening <= 3);
    assert_int_equal(test_wait(reg, &ids[i]), QREG_SUCCEEDED);
  }
  scripted_counters_t c;
  scripted_counters_get(&c);
  if (c.live_max > 3)
    fail_msg("%llu connections live at once, max_connections is 3", (unsigned long long)c.live_max);
  assert_true(c.busy_max <= 3);
  test_close_checked(reg);
}

/* Checks the driver started jobs tagged 0..count-1 in that order. */
static void expect_fifo(unsigned count) {
  unsigned order[64];
  assert_true(count <= 64);
  assert_int_equal(scripted_start_order(order, 64), count);
  for (unsigned i = 0; i < count; i++)
    if (order[i] != i)
      fail_msg("start %u was tag %u, expected %u (FIFO)", i, order[i], i);
}

static void fifo_start_order(unsigned max_connections, unsigned count) {
  qreg_config_t config;
  test_config(&config);
  config.max_connections = max_connections;
  qreg_t *reg = test_open(&config);
  /* Hold the connections while the queue builds up. */
  scripted_fault_set(SCRIPTED_CONNECT, SCRIPTED_FAULT_STALL, 1, 0, 30);
  qreg_id_t ids[64];
  for (unsigned i = 0; i < count; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "sleep=%u;rows=1;tag=%u", (i * 7) % 5, i);
    ids[i] = test_execute(reg, sql, NULL);
  }
  for (unsigned i = 0; i < count; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_SUCCEEDED);
  expect_fifo(count);
  test_close_checked(reg);
}

static void fifo_one_connection(void **state) {
  (void)state;
  fifo_start_order(1, 10);
}

static void fifo_three_connections(void **state) {
  (void)state;
  fifo_start_order(3, 30);
}

static void check_truncated(qreg_t *reg, const qreg_id_t *id, uint64_t rows, bool truncated) {
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &s), 0);
  assert_int_equal(s->status, QREG_SUCCEEDED);
  assert_int_equal(s->row_count, rows);
  assert_int_equal(s->truncated, truncated);
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id->str, 0, 0, &page), 0);
  assert_int_equal(page->total_rows, rows);
  assert_int_equal(page->row_count, rows);
  assert_int_equal(page->truncated, truncated);
  qreg_page_free(page);
}

static void max_rows_truncation(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.default_max_rows = 4;
  qreg_t *reg = test_open(&config);
  qreg_id_t cut = test_execute_opts(reg, "rows=10;cols=2", 0, 0, 3);
  qreg_id_t exact = test_execute_opts(reg, "rows=3;cols=2", 0, 0, 3);
  qreg_id_t by_default = test_execute(reg, "rows=10", NULL);
  qreg_id_t under_default = test_execute(reg, "rows=4", NULL);
  test_wait(reg, &cut);
  test_wait(reg, &exact);
  test_wait(reg, &by_default);
  test_wait(reg, &under_default);
  check_truncated(reg, &cut, 3, true);
  check_truncated(reg, &exact, 3, false);
  check_truncated(reg, &by_default, 4, true);
  check_truncated(reg, &under_default, 4, false);
  test_close_checked(reg);
}

static uint64_t snapshot_rows(qreg_t *reg, const qreg_id_t *id, bool *truncated) {
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &s), 0);
  assert_int_equal(s->status, QREG_SUCCEEDED);
  uint64_t rows = s->row_count;
  *truncated = s->truncated;
  qreg_snapshot_free(s);
  return rows;
}

/* The byte budget is shared by every result of the registry and given back
   when a record goes. */
static void byte_budget(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_result_bytes = 8192;
  qreg_t *reg = test_open(&config);
  qreg_id_t first = test_execute_opts(reg, "rows=1000;cols=2;width=100", 0, 400, 0);
  assert_int_equal(test_wait(reg, &first), QREG_SUCCEEDED);
  bool truncated = false;
  uint64_t rows = snapshot_rows(reg, &first, &truncated);
  assert_true(truncated);
  assert_true(rows < 1000);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, first.str, 0, 0, &page), 0);
  assert_int_equal(page->total_rows, rows);
  assert_true(page->truncated);
  qreg_page_free(page);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.result_bytes > 0);
  assert_true(stats.result_bytes <= 8192);
  uint64_t first_bytes = stats.result_bytes;

  qreg_id_t second = test_execute(reg, "rows=1000;cols=2;width=100", NULL);
  assert_int_equal(test_wait(reg, &second), QREG_SUCCEEDED);
  uint64_t second_rows = snapshot_rows(reg, &second, &truncated);
  assert_true(truncated);
  assert_true(second_rows < 1000);
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.result_bytes <= 8192);

  /* The first record goes (TTL 100 ms): its bytes come back. */
  test_wait_pruned(reg, &first);
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.result_bytes <= 8192 - first_bytes);
  qreg_id_t third = test_execute(reg, "rows=1000;cols=2;width=100", NULL);
  assert_int_equal(test_wait(reg, &third), QREG_SUCCEEDED);
  uint64_t third_rows = snapshot_rows(reg, &third, &truncated);
  assert_true(third_rows > 0);
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.result_bytes <= 8192);
  test_close_checked(reg);
}

/* max_records: the oldest *finished* record (by finish time, not creation)
   is evicted to make room. */
static void max_records_evicts_oldest_finished(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_records = 3;
  qreg_t *reg = test_open(&config);
  qreg_id_t created_first = test_execute(reg, "hang;tag=1", NULL);
  qreg_id_t finished_first = test_execute(reg, "rows=1", NULL);
  assert_int_equal(test_wait(reg, &finished_first), QREG_SUCCEEDED);
  qreg_id_t finished_second = test_execute(reg, "rows=1", NULL);
  assert_int_equal(test_wait(reg, &finished_second), QREG_SUCCEEDED);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, created_first.str, &status), 0);

  qreg_id_t fourth = test_execute(reg, "rows=1", NULL);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, finished_first.str, &s), QREG_ENOTFOUND);
  assert_int_equal(test_status(reg, &created_first), QREG_CANCELED);
  assert_int_equal(test_status(reg, &finished_second), QREG_SUCCEEDED);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 3);
  assert_int_equal(stats.records_evicted, 1);
  assert_int_equal(test_wait(reg, &fourth), QREG_SUCCEEDED);
  test_close_checked(reg);
}

/* max_records with nothing finished: QREG_EFULL, a clear message, nothing
   created; room again once one finishes. */
static void max_records_full(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_records = 2;
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  qreg_id_t running = test_execute(reg, "hang;tag=1", NULL);
  qreg_id_t pending = test_execute(reg, "hang;tag=2", NULL);
  qreg_id_t refused;
  assert_int_equal(qreg_execute(reg, "rows=1", NULL, &refused), QREG_EFULL);
  assert_non_null(strstr(qreg_last_error(), "too many"));
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 2);
  assert_int_equal(stats.records_evicted, 0);

  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, pending.str, &status), 0);
  qreg_id_t accepted = test_execute(reg, "rows=1", NULL);
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_evicted, 1);
  assert_int_equal(qreg_cancel(reg, running.str, &status), 0);
  assert_int_equal(test_wait(reg, &accepted), QREG_SUCCEEDED);
  test_close_checked(reg);
}

/* A script padded with spaces to exactly n bytes. */
static char *padded_script(size_t n) {
  char *sql = malloc(n + 1);
  assert_non_null(sql);
  memset(sql, ' ', n);
  memcpy(sql, "rows=1", 6);
  sql[n] = '\0';
  return sql;
}

static void max_sql_bytes(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_sql_bytes = 16;
  qreg_t *reg = test_open(&config);
  char *sql = padded_script(16);
  qreg_id_t id = test_execute(reg, sql, NULL);
  free(sql);
  sql = padded_script(17);
  assert_int_equal(qreg_execute(reg, sql, NULL, &id), QREG_ETOOBIG);
  assert_true(strlen(qreg_last_error()) > 0);
  assert_int_equal(qreg_execute_n(reg, sql, 17, NULL, &id), QREG_ETOOBIG);
  free(sql);
  test_close_checked(reg);

  /* The default is 1 MiB. */
  reg = test_open(NULL);
  sql = padded_script((size_t)1 << 20);
  id = test_execute(reg, sql, NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  free(sql);
  sql = padded_script(((size_t)1 << 20) + 1);
  assert_int_equal(qreg_execute(reg, sql, NULL, &id), QREG_ETOOBIG);
  free(sql);
  test_close_checked(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(max_connections_bound),
      cmocka_unit_test(fifo_one_connection),
      cmocka_unit_test(fifo_three_connections),
      cmocka_unit_test(max_rows_truncation),
      cmocka_unit_test(byte_budget),
      cmocka_unit_test(max_records_evicts_oldest_finished),
      cmocka_unit_test(max_records_full),
      cmocka_unit_test(max_sql_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
