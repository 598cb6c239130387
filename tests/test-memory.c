/*
 * tests/test-memory.c - fair result memory (qreg.h, "Result memory"), on the
 * scripted driver and on SQLite:
 *  - each cut says why (truncated_by): max_rows, the query's own
 *    max_result_bytes (default a quarter of the budget), and a value larger
 *    than the query may ever store (never "succeeded, 0 rows, no reason"),
 *    on the scripted driver and on SQLite (zeroblob, printf);
 *  - options: max_result_bytes above the registry's budget is refused, an
 *    options struct from before the field gets the default;
 *  - the proof: after results far larger than the budget, a 5,000-row query
 *    stores all its rows, settled results being evicted to make room;
 *  - the share: while two running queries hold every byte they could
 *    borrow, a third still stores its share in full;
 *  - eviction order: results read to their end first, then the oldest; an
 *    evicted record keeps its status and counts and says so, and fetching
 *    it fails with a message that says why;
 *  - `qreg query` prints the reason (--json "truncated_by", the table's
 *    "(truncated: REASON)");
 *  - qreg_forget: record and bytes gone at once (result_bytes back to its
 *    baseline), a running or pending query canceled and forgotten, whoever
 *    waited for it answered cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/test_util.h"

#define MIB ((size_t)1 << 20)
/* Far more than any budget here: a result the store must cut. */
#define HUGE_ROWS "rows=1000000;cols=2;width=1000"

static qreg_snapshot_t *snap(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = NULL;
  int rc = qreg_snapshot(reg, id->str, &s);
  if (rc != 0)
    fail_msg("qreg_snapshot: %s: %s", qreg_strerror(rc), qreg_last_error());
  return s;
}

static qreg_stats_t stats_of(qreg_t *reg) {
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  return stats;
}

static qreg_id_t run_bytes(qreg_t *reg, const char *sql, size_t max_result_bytes) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_result_bytes = max_result_bytes;
  qreg_id_t id = test_execute(reg, sql, &options);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  return id;
}

/* The record succeeded, cut for this reason, with this many rows (or any
   number when rows is UINT64_MAX); a page says the same. */
static void expect_cut(qreg_t *reg, const qreg_id_t *id, qreg_truncation_t by, uint64_t rows) {
  qreg_snapshot_t *s = snap(reg, id);
  assert_int_equal(s->status, QREG_SUCCEEDED);
  if (s->truncated_by != by)
    fail_msg("truncated_by %s, expected %s", qreg_truncation_name(s->truncated_by),
             qreg_truncation_name(by));
  assert_int_equal(s->truncated, by != QREG_TRUNCATED_NONE);
  assert_false(s->has_error);
  if (rows != UINT64_MAX)
    assert_int_equal(s->row_count, rows);
  assert_true(s->result_bytes <= s->max_result_bytes);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id->str, 0, 1, &page), 0);
  assert_int_equal(page->truncated_by, by);
  assert_int_equal(page->truncated, by != QREG_TRUNCATED_NONE);
  assert_int_equal(page->total_rows, s->row_count);
  qreg_page_free(page);
  qreg_snapshot_free(s);
}

static void reasons_have_names(void **state) {
  (void)state;
  const char *names[] = {
      "none", "max_rows", "max_result_bytes", "registry_budget", "value_too_large", "driver"};
  for (int i = 0; i < QREG_TRUNCATION_COUNT; i++)
    assert_string_equal(qreg_truncation_name((qreg_truncation_t)i), names[i]);
  assert_string_equal(qreg_truncation_name((qreg_truncation_t)QREG_TRUNCATION_COUNT), "unknown");
  assert_string_equal(qreg_truncation_name((qreg_truncation_t)-1), "unknown");
}

/* Each cut names its reason; an uncut result says none. */
static void each_cut_says_why(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_result_bytes = 8 * MIB; /* 8 connections: share 512 KiB, default cap 2 MiB */
  qreg_t *reg = test_open(&config);
  assert_int_equal(qreg_default_result_bytes(reg), 2 * MIB);

  qreg_id_t whole = test_execute(reg, "rows=3", NULL);
  assert_int_equal(test_wait(reg, &whole), QREG_SUCCEEDED);
  expect_cut(reg, &whole, QREG_TRUNCATED_NONE, 3);

  qreg_id_t rows = test_execute_opts(reg, "rows=10", 0, 0, 5);
  assert_int_equal(test_wait(reg, &rows), QREG_SUCCEEDED);
  expect_cut(reg, &rows, QREG_TRUNCATED_MAX_ROWS, 5);

  /* The default cap: a quarter of the budget. */
  qreg_id_t by_default = run_bytes(reg, HUGE_ROWS, 0);
  expect_cut(reg, &by_default, QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  qreg_snapshot_t *s = snap(reg, &by_default);
  assert_int_equal(s->max_result_bytes, 2 * MIB);
  assert_true(s->result_bytes > MIB && s->result_bytes <= 2 * MIB);
  assert_true(s->row_count > 1000 && s->row_count < 2200);
  qreg_snapshot_free(s);

  /* A cap of its own. */
  qreg_id_t capped = run_bytes(reg, HUGE_ROWS, 64 * 1024);
  expect_cut(reg, &capped, QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  s = snap(reg, &capped);
  assert_int_equal(s->max_result_bytes, 64 * 1024);
  assert_true(s->row_count > 10 && s->row_count <= 64);
  qreg_snapshot_free(s);

  /* One value of 3 MB, more than the 2 MiB the query may hold: no row, and
     the reason - not "succeeded, 0 rows" and nothing else. Rows before it
     are kept: a cap of 1 MiB on values of 600 KB stores one row. */
  qreg_id_t too_large = run_bytes(reg, "rows=3;cols=2;width=3000000", 0);
  expect_cut(reg, &too_large, QREG_TRUNCATED_VALUE_TOO_LARGE, 0);
  qreg_id_t one_fits = run_bytes(reg, "rows=3;cols=2;width=600000", MIB);
  expect_cut(reg, &one_fits, QREG_TRUNCATED_MAX_RESULT_BYTES, 1);
  /* A row that fits the cap is stored even when its chunk's usual doubling
     would not (3 values of 300 KB under 1 MiB). */
  qreg_id_t snug = run_bytes(reg, "rows=2;cols=4;width=300000", MIB);
  expect_cut(reg, &snug, QREG_TRUNCATED_MAX_RESULT_BYTES, 1);
  qreg_id_t value_over_cap = run_bytes(reg, "rows=3;cols=2;width=600000", 512 * 1024);
  expect_cut(reg, &value_over_cap, QREG_TRUNCATED_VALUE_TOO_LARGE, 0);
  test_close_checked(reg);
}

static void options_are_checked(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_result_bytes = 8 * MIB;
  qreg_t *reg = test_open(&config);
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_result_bytes = 8 * MIB + 1;
  qreg_id_t id;
  assert_int_equal(qreg_execute(reg, "rows=1", &options, &id), QREG_EINVAL);
  assert_non_null(strstr(qreg_last_error(), "max_result_bytes"));
  options.max_result_bytes = 8 * MIB; /* the whole budget is allowed */
  assert_int_equal(qreg_execute(reg, "rows=1", &options, &id), 0);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);

  /* A program built before the field: its struct ends before it, and its
     (garbage) value is never read. */
  options.struct_size = offsetof(qreg_options_t, max_result_bytes);
  options.max_result_bytes = SIZE_MAX;
  assert_int_equal(qreg_execute(reg, "rows=1", &options, &id), 0);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(s->max_result_bytes, 2 * MIB);
  qreg_snapshot_free(s);
  test_close_checked(reg);
}

/* The proof of issue 9: results far larger than the budget come first, and
   still a 5,000-row query returns all its rows. */
static void small_query_after_huge_ones(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_result_bytes = 64 * MIB;   /* share 4 MiB, lent 32 MiB, default cap 16 MiB */
  config.default_max_rows = UINT32_MAX; /* only bytes cut */
  qreg_t *reg = test_open(&config);
  uint64_t before = stats_of(reg).result_bytes;

  /* 1 GB each by the script: cut at the default cap, then at the most a
     query may borrow (it asked for the whole budget). */
  qreg_id_t big[5];
  big[0] = run_bytes(reg, HUGE_ROWS, 0);
  expect_cut(reg, &big[0], QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  big[1] = run_bytes(reg, HUGE_ROWS, 64 * MIB);
  expect_cut(reg, &big[1], QREG_TRUNCATED_REGISTRY_BUDGET, UINT64_MAX);
  qreg_snapshot_t *s = snap(reg, &big[1]);
  assert_true(s->result_bytes > 32 * MIB && s->result_bytes <= 36 * MIB);
  qreg_snapshot_free(s);
  for (int i = 2; i < 5; i++) {
    big[i] = run_bytes(reg, HUGE_ROWS, 0);
    expect_cut(reg, &big[i], QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  }
  qreg_stats_t stats = stats_of(reg);
  uint64_t full = stats.result_bytes;
  assert_true(full <= 64 * MIB);
  assert_true(stats.results_evicted >= 1); /* 16 + 36 + 3 * 16 MiB did not all fit */

  qreg_id_t small = test_execute(reg, "rows=5000;cols=3;width=200", NULL);
  assert_int_equal(test_wait(reg, &small), QREG_SUCCEEDED);
  expect_cut(reg, &small, QREG_TRUNCATED_NONE, 5000);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, small.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 5000);
  assert_int_equal(page->values[4999 * 3].v.i, 4999);
  qreg_page_free(page);
  stats = stats_of(reg);
  assert_true(stats.result_bytes <= 64 * MIB);
  print_message("budget 64 MiB: result_bytes before %llu, after 5 huge results %llu (%llu "
                "evicted), after the 5,000-row query %llu; its rows: 5000 of 5000\n",
                (unsigned long long)before, (unsigned long long)full,
                (unsigned long long)stats.results_evicted, (unsigned long long)stats.result_bytes);

  /* Evicted ones say so, and keep what they were. */
  unsigned evicted = 0;
  for (int i = 0; i < 5; i++) {
    s = snap(reg, &big[i]);
    assert_int_equal(s->status, QREG_SUCCEEDED);
    assert_true(s->row_count > 0);
    assert_true(s->truncated);
    evicted += s->result_evicted;
    qreg_snapshot_free(s);
  }
  assert_int_equal(evicted, stats.results_evicted);
  test_close_checked(reg);
}

/* While two running queries hold all they may borrow, a third still stores
   its whole share. */
static void share_is_kept_for_a_new_query(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_result_bytes = 12 * MIB;
  config.max_connections = 3; /* share 2 MiB each, 6 MiB lent */
  config.default_max_rows = UINT32_MAX;
  qreg_t *reg = test_open(&config);
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_result_bytes = 12 * MIB;
  /* Both start together (gate 0), write until cut, and stay running with
     their results (gate 1). */
  qreg_id_t a = test_execute(reg, "gate=0;finish_gate=1;" HUGE_ROWS, &options);
  qreg_id_t b = test_execute(reg, "gate=0;finish_gate=1;" HUGE_ROWS, &options);
  test_wait_gate(0, 2);
  scripted_gate_open(0);
  test_wait_gate(1, 2);
  qreg_stats_t stats = stats_of(reg);
  assert_true(stats.result_bytes > 9 * MIB && stats.result_bytes <= 10 * MIB);

  /* ~1.7 MB: within the share, which nobody could borrow. */
  qreg_id_t c = test_execute(reg, "rows=15000;cols=2;width=100", NULL);
  assert_int_equal(test_wait(reg, &c), QREG_SUCCEEDED);
  expect_cut(reg, &c, QREG_TRUNCATED_NONE, 15000);
  assert_true(stats_of(reg).result_bytes <= 12 * MIB);

  scripted_gate_open(1);
  assert_int_equal(test_wait(reg, &a), QREG_SUCCEEDED);
  assert_int_equal(test_wait(reg, &b), QREG_SUCCEEDED);
  /* Each got at least its share; together no more than shares + lent. */
  qreg_snapshot_t *sa = snap(reg, &a), *sb = snap(reg, &b);
  print_message("two at once: %llu and %llu bytes (share 2 MiB, 6 MiB lent)\n",
                (unsigned long long)sa->result_bytes, (unsigned long long)sb->result_bytes);
  assert_int_equal(sa->truncated_by, QREG_TRUNCATED_REGISTRY_BUDGET);
  assert_int_equal(sb->truncated_by, QREG_TRUNCATED_REGISTRY_BUDGET);
  assert_true(sa->result_bytes >= 2 * MIB - 70 * 1024);
  assert_true(sb->result_bytes >= 2 * MIB - 70 * 1024);
  assert_true(sa->result_bytes + sb->result_bytes <= 10 * MIB);
  qreg_snapshot_free(sa);
  qreg_snapshot_free(sb);
  test_close_checked(reg);
}

/* Results read to their end go first, then the oldest. */
static void eviction_order(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_result_bytes = 8 * MIB;
  config.max_connections = 2; /* share 2 MiB, 4 MiB lent: 6 MiB for one query */
  qreg_t *reg = test_open(&config);
  qreg_id_t q1 = run_bytes(reg, HUGE_ROWS, 3 * MIB);
  qreg_id_t q2 = run_bytes(reg, HUGE_ROWS, 3 * MIB);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, q2.str, 0, 0, &page), 0); /* read to its end */
  qreg_page_free(page);
  assert_int_equal(stats_of(reg).results_evicted, 0);

  qreg_id_t q3 = run_bytes(reg, HUGE_ROWS, 3 * MIB);
  expect_cut(reg, &q3, QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  qreg_snapshot_t *s1 = snap(reg, &q1), *s2 = snap(reg, &q2);
  assert_false(s1->result_evicted); /* older, but not read */
  assert_true(s2->result_evicted);
  assert_int_equal(s2->status, QREG_SUCCEEDED);
  assert_true(s2->row_count > 0);
  assert_true(s2->result_bytes < 4096); /* its columns and counts stay */
  assert_int_equal(qreg_fetch(reg, q2.str, 0, 0, &page), QREG_ENORESULT);
  assert_non_null(strstr(qreg_last_error(), "evicted under memory pressure"));
  assert_null(page);
  qreg_snapshot_free(s1);
  qreg_snapshot_free(s2);

  qreg_id_t q4 = run_bytes(reg, HUGE_ROWS, 3 * MIB);
  expect_cut(reg, &q4, QREG_TRUNCATED_MAX_RESULT_BYTES, UINT64_MAX);
  qreg_snapshot_t *s3 = snap(reg, &q3);
  s1 = snap(reg, &q1);
  assert_true(s1->result_evicted); /* then the oldest */
  assert_false(s3->result_evicted);
  qreg_snapshot_free(s1);
  qreg_snapshot_free(s3);
  qreg_stats_t stats = stats_of(reg);
  assert_int_equal(stats.results_evicted, 2);
  assert_true(stats.result_bytes <= 8 * MIB);
  test_close_checked(reg);
}

typedef struct waiter {
  qreg_t *reg;
  qreg_id_t id;
  int rc;
  qreg_status_t status;
} waiter_t;

static void *wait_thread(void *arg) {
  waiter_t *w = arg;
  w->rc = qreg_wait(w->reg, w->id.str, TEST_BOUND_MS, &w->status);
  return NULL;
}

typedef struct watched {
  atomic_int calls;
  int rc;
  qreg_status_t status;
} watched_t;

static void watch_cb(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  (void)reg;
  (void)id;
  watched_t *w = arg;
  w->rc = rc;
  w->status = status;
  atomic_fetch_add(&w->calls, 1);
}

static void forget_frees_at_once(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_connections = 1;
  qreg_t *reg = test_open(&config);
  uint64_t baseline = stats_of(reg).result_bytes;

  qreg_id_t done = test_execute(reg, "rows=2000;cols=2;width=100", NULL);
  assert_int_equal(test_wait(reg, &done), QREG_SUCCEEDED);
  assert_true(stats_of(reg).result_bytes > baseline + 200000);
  assert_int_equal(qreg_forget(reg, done.str), 0);
  qreg_stats_t stats = stats_of(reg);
  assert_int_equal(stats.result_bytes, baseline);
  assert_int_equal(stats.records, 0);
  assert_int_equal(stats.records_forgotten, 1);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, done.str, &s), QREG_ENOTFOUND);
  assert_int_equal(qreg_forget(reg, done.str), QREG_ENOTFOUND); /* once only */
  assert_int_equal(qreg_wait(reg, done.str, 0, NULL), QREG_ENOTFOUND);
  assert_int_equal(qreg_forget(reg, "not-an-id"), QREG_EINVAL);
  assert_int_equal(qreg_forget(NULL, done.str), QREG_EINVAL);

  /* Running (held at gate 2), with a blocked waiter and a watch; a pending
     one behind it (one connection). */
  qreg_id_t running = test_execute(reg, "gate=2;rows=2000;cols=2;width=100", NULL);
  qreg_id_t pending = test_execute(reg, "rows=5", NULL);
  test_wait_gate(2, 1);
  waiter_t w = {.reg = reg, .id = running, .rc = 1};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, wait_thread, &w), 0);
  test_wait_blocked_callers(reg, 1);
  watched_t watched = {0};
  assert_int_equal(qreg_watch(reg, running.str, watch_cb, &watched), 0);

  assert_int_equal(qreg_forget(reg, pending.str), 0);
  assert_int_equal(qreg_forget(reg, running.str), 0);
  assert_int_equal(qreg_snapshot(reg, running.str, &s), QREG_ENOTFOUND);
  assert_int_equal(qreg_snapshot(reg, pending.str, &s), QREG_ENOTFOUND);
  scripted_gate_open(2);
  pthread_join(thread, NULL);
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.status, QREG_CANCELED);
  for (unsigned waited = 0; atomic_load(&watched.calls) == 0 && waited < TEST_BOUND_MS; waited++)
    test_sleep_ms(1);
  assert_int_equal(atomic_load(&watched.calls), 1);
  assert_int_equal(watched.rc, 0);
  assert_int_equal(watched.status, QREG_CANCELED);

  /* Once the database stopped it, its bytes are back too. */
  test_assert_all_released(reg);
  stats = stats_of(reg);
  assert_int_equal(stats.result_bytes, baseline);
  assert_int_equal(stats.records, 0);
  assert_int_equal(stats.records_forgotten, 3);
  test_close_checked(reg);
}

/* Runs `qreg query --db url ARGS` and reads its standard output. */
static void run_cli(const char *bin, const char *url, const char *args, char *out, size_t size) {
  char command[1024];
  snprintf(command, sizeof command, "'%s' query --db '%s' %s", bin, url, args);
  FILE *pipe = popen(command, "r");
  assert_non_null(pipe);
  size_t len = fread(out, 1, size - 1, pipe);
  out[len] = '\0';
  assert_int_equal(pclose(pipe), 0);
}

/* SQLite: a value larger than the query may store, as a blob and as text;
   and how `qreg query` shows a cut. */
static void sqlite_value_too_large(void **state) {
  (void)state;
  char dir[] = "/tmp/qreg-memory-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64], url[80];
  snprintf(path, sizeof path, "%s/m.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);

  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  qreg_t *reg = NULL;
  assert_int_equal(qreg_open(&config, &reg), 0);
  const char *sqls[] = {"SELECT zeroblob(2000000)", "SELECT printf('%.*c', 2000000, 'z')",
                        "SELECT 1 UNION ALL SELECT printf('%.*c', 2000000, 'z')"};
  const uint64_t rows[] = {0, 0, 1};
  for (int i = 0; i < 3; i++) {
    qreg_id_t id = run_bytes(reg, sqls[i], MIB);
    expect_cut(reg, &id, QREG_TRUNCATED_VALUE_TOO_LARGE, rows[i]);
  }
  /* Below the cap it is stored whole. */
  qreg_id_t fits =
      run_bytes(reg, "SELECT length(printf('%.*c', 2000000, 'z')), zeroblob(500000)", MIB);
  expect_cut(reg, &fits, QREG_TRUNCATED_NONE, 1);
  assert_int_equal(qreg_close(reg), 0);
  qreg_destroy(reg);

  /* qreg query says it too, in JSON and under its table. */
  const char *bin = getenv("QREG_BIN");
  if (bin != NULL) {
    char output[4096];
    run_cli(bin, url, "--json --max-result-bytes 1000000 'SELECT zeroblob(2000000) AS z'", output,
            sizeof output);
    assert_non_null(strstr(output, "\"row_count\":0,\"truncated\":true,"
                                   "\"truncated_by\":\"value_too_large\"}"));
    run_cli(bin, url, "--json 'SELECT 1 AS one'", output, sizeof output);
    assert_non_null(strstr(output, "\"truncated\":false,\"truncated_by\":null}"));
    run_cli(bin, url, "--max-rows 1 'SELECT 1 UNION ALL SELECT 2'", output, sizeof output);
    assert_non_null(strstr(output, "(1 row)\n(truncated: max_rows)\n"));
  }
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reasons_have_names),
      cmocka_unit_test(each_cut_says_why),
      cmocka_unit_test(options_are_checked),
      cmocka_unit_test(small_query_after_huge_ones),
      cmocka_unit_test(share_is_kept_for_a_new_query),
      cmocka_unit_test(eviction_order),
      cmocka_unit_test(forget_frees_at_once),
      cmocka_unit_test(sqlite_value_too_large),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
