/*
 * tests/test-pg-memory.c - fair result memory on a real PostgreSQL server
 * (tests/support/pg_fixture):
 *  - the proof of issue 9: with the registry's budget scaled down to
 *    64 MiB, queries of about 400 MB each run first and are cut with the
 *    reason named (their own cap, or what the registry could lend), settled
 *    results are evicted as needed, and then a 5,000-row query returns all
 *    5,000 rows, not truncated; the figures are printed;
 *  - with the default budget, a 1 GB query, then the same 5,000 rows;
 *  - two large queries at once each keep at least their share;
 *  - SELECT repeat('z', 2000000) with a 1 MiB cap: succeeded, 0 rows,
 *    truncated_by value_too_large - and a value under the cap is whole;
 *  - qreg_forget gives the bytes back at once.
 *
 * Owns, in each test, the registry it opens; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define MIB ((size_t)1 << 20)
/* 400,000 rows of about 1 KB: ~400 MB if nothing cut it. */
#define HUGE_SQL "SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 400000) g"

static qreg_t *open_budget(const char *app, size_t budget, unsigned max_connections) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.application_name = app;
  config.max_result_bytes = budget;
  config.max_connections = max_connections;
  config.default_max_rows = UINT32_MAX; /* only bytes cut */
  return pg_test_open_config(&config);
}

static qreg_id_t submit(qreg_t *reg, const char *sql, size_t max_result_bytes) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_result_bytes = max_result_bytes;
  return test_execute(reg, sql, &options);
}

static qreg_id_t run(qreg_t *reg, const char *sql, size_t max_result_bytes) {
  qreg_id_t id = submit(reg, sql, max_result_bytes);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  return id;
}

/* Succeeded and cut for this reason (rows: exact, or UINT64_MAX for any). */
static qreg_snapshot_t *expect_cut(qreg_t *reg, const qreg_id_t *id, qreg_truncation_t by,
                                   uint64_t rows) {
  qreg_snapshot_t *s = pg_test_snapshot(reg, id);
  assert_int_equal(s->status, QREG_SUCCEEDED);
  assert_false(s->has_error);
  if (s->truncated_by != by)
    fail_msg("truncated_by %s, expected %s", qreg_truncation_name(s->truncated_by),
             qreg_truncation_name(by));
  assert_int_equal(s->truncated, by != QREG_TRUNCATED_NONE);
  if (rows != UINT64_MAX)
    assert_int_equal(s->row_count, rows);
  return s;
}

static uint64_t result_bytes(qreg_t *reg, uint64_t *evicted) {
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  if (evicted)
    *evicted = stats.results_evicted;
  return stats.result_bytes;
}

static void small_query_after_huge_ones(void **state) {
  (void)state;
  const char *app = "qreg_t_memory";
  qreg_t *reg = open_budget(app, 64 * MIB, 8); /* share 4 MiB, 32 MiB lent, cap 16 MiB */
  uint64_t before = result_bytes(reg, NULL);
  qreg_id_t big[5];
  big[0] = run(reg, HUGE_SQL, 0);
  qreg_snapshot_free(expect_cut(reg, &big[0], QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX));
  big[1] = run(reg, HUGE_SQL, 64 * MIB); /* asks for it all: gets share + lent */
  qreg_snapshot_t *s = expect_cut(reg, &big[1], QREG_TRUNCATED_REGISTRY_BUDGET, UINT64_MAX);
  assert_true(s->result_bytes > 32 * MIB && s->result_bytes <= 36 * MIB);
  qreg_snapshot_free(s);
  uint64_t huge_rows = 0;
  for (int i = 2; i < 5; i++) {
    big[i] = run(reg, HUGE_SQL, 0);
    s = expect_cut(reg, &big[i], QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
    huge_rows = s->row_count;
    qreg_snapshot_free(s);
  }
  uint64_t evicted = 0;
  uint64_t full = result_bytes(reg, &evicted);
  assert_true(full <= 64 * MIB);
  assert_true(evicted >= 1);

  qreg_id_t small = run(
      reg, "SELECT g, md5(g::text) AS h, repeat('y', 100) AS pad FROM generate_series(1, 5000) g",
      0);
  qreg_snapshot_free(expect_cut(reg, &small, QREG_TRUNCATED_NONE, 5000));
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, small.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 5000);
  assert_int_equal(page->values[4999 * 3].v.i, 5000);
  qreg_page_free(page);
  uint64_t after = result_bytes(reg, &evicted);
  assert_true(after <= 64 * MIB);
  print_message("PostgreSQL, budget 64 MiB: result_bytes before %llu; after 5 queries of ~400 MB "
                "(each cut: %llu rows at the 16 MiB default cap) %llu, %llu results evicted; "
                "after the 5,000-row query %llu; its rows: 5000 of 5000, truncated_by none\n",
                (unsigned long long)before, (unsigned long long)huge_rows, (unsigned long long)full,
                (unsigned long long)evicted, (unsigned long long)after);
  pg_test_close_checked(reg, app);
}

/* The same with the defaults (256 MiB, 8 connections): a 1 GB query, then
   5,000 rows. */
static void default_budget_after_1gb(void **state) {
  (void)state;
  const char *app = "qreg_t_memory_1gb";
  qreg_config_t defaults;
  qreg_config_init(&defaults);
  qreg_t *reg = open_budget(app, defaults.max_result_bytes, defaults.max_connections);
  qreg_id_t huge =
      run(reg, "SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 1000000) g", 0);
  qreg_snapshot_t *s = expect_cut(reg, &huge, QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  assert_int_equal(s->max_result_bytes, 64 * MIB); /* a quarter of 256 MiB */
  uint64_t huge_rows = s->row_count;
  qreg_snapshot_free(s);
  uint64_t held = result_bytes(reg, NULL);
  qreg_id_t small = run(
      reg, "SELECT g, md5(g::text) AS h, repeat('y', 100) AS pad FROM generate_series(1, 5000) g",
      0);
  qreg_snapshot_free(expect_cut(reg, &small, QREG_TRUNCATED_NONE, 5000));
  print_message("PostgreSQL, default budget 256 MiB: the 1 GB query kept %llu rows (%llu bytes, "
                "max_result_bytes); then 5000 of 5000 rows, result_bytes %llu\n",
                (unsigned long long)huge_rows, (unsigned long long)held,
                (unsigned long long)result_bytes(reg, NULL));
  pg_test_close_checked(reg, app);
}

static void two_large_queries_share(void **state) {
  (void)state;
  const char *app = "qreg_t_memory_two";
  qreg_t *reg = open_budget(app, 16 * MIB, 2); /* share 4 MiB each, 8 MiB lent */
  qreg_id_t a = submit(reg, HUGE_SQL, 16 * MIB);
  qreg_id_t b = submit(reg, HUGE_SQL, 16 * MIB);
  assert_int_equal(test_wait(reg, &a), QREG_SUCCEEDED);
  assert_int_equal(test_wait(reg, &b), QREG_SUCCEEDED);
  qreg_snapshot_t *sa = expect_cut(reg, &a, QREG_TRUNCATED_REGISTRY_BUDGET, UINT64_MAX);
  qreg_snapshot_t *sb = expect_cut(reg, &b, QREG_TRUNCATED_REGISTRY_BUDGET, UINT64_MAX);
  print_message("two at once: %llu and %llu bytes (share 4 MiB, 8 MiB lent)\n",
                (unsigned long long)sa->result_bytes, (unsigned long long)sb->result_bytes);
  assert_true(sa->result_bytes >= 4 * MIB - 70 * 1024);
  assert_true(sb->result_bytes >= 4 * MIB - 70 * 1024);
  assert_true(sa->result_bytes + sb->result_bytes <= 16 * MIB);
  qreg_snapshot_free(sa);
  qreg_snapshot_free(sb);
  pg_test_close_checked(reg, app);
}

static void value_too_large(void **state) {
  (void)state;
  const char *app = "qreg_t_memory_value";
  qreg_t *reg = open_budget(app, 64 * MIB, 2);
  qreg_id_t id = run(reg, "SELECT repeat('z', 2000000) AS z", MIB);
  qreg_snapshot_t *s = expect_cut(reg, &id, QREG_TRUNCATED_VALUE_TOO_LARGE, 0);
  assert_int_equal(s->column_count, 1);
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 0);
  assert_int_equal(page->truncated_by, QREG_TRUNCATED_VALUE_TOO_LARGE);
  qreg_page_free(page);

  /* Rows before it are kept. */
  id = run(reg, "SELECT n, repeat('z', n) FROM unnest(ARRAY[10, 2000000, 20]) n", MIB);
  qreg_snapshot_free(expect_cut(reg, &id, QREG_TRUNCATED_VALUE_TOO_LARGE, 1));

  id = run(reg, "SELECT repeat('z', 500000) AS z", MIB);
  qreg_snapshot_free(expect_cut(reg, &id, QREG_TRUNCATED_NONE, 1));
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->values[0].v.s.len, 500000);
  qreg_page_free(page);
  pg_test_close_checked(reg, app);
}

static void forget_gives_bytes_back(void **state) {
  (void)state;
  const char *app = "qreg_t_memory_forget";
  qreg_t *reg = open_budget(app, 64 * MIB, 2);
  uint64_t baseline = result_bytes(reg, NULL);
  qreg_id_t id = run(reg, HUGE_SQL, 0);
  assert_true(result_bytes(reg, NULL) > baseline + 15 * MIB);
  assert_int_equal(qreg_forget(reg, id.str), 0);
  assert_int_equal(result_bytes(reg, NULL), baseline);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), QREG_ENOTFOUND);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(small_query_after_huge_ones), cmocka_unit_test(default_budget_after_1gb),
      cmocka_unit_test(two_large_queries_share),     cmocka_unit_test(value_too_large),
      cmocka_unit_test(forget_gives_bytes_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
