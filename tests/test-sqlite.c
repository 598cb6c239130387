/*
 * tests/test-sqlite.c - the SQLite driver, end to end through the public API
 * (include/qreg.h) against real database files in a fresh temporary
 * directory: value and declared types, NULLs, row and byte caps, one
 * statement per query, read-only enforcement, a missing file, and every way a
 * running statement is stopped (cancel, timeout, prune, close) - each ending
 * with connections opened == closed and the process's open file descriptors
 * back to their count before the test; and the driver's options
 * (busy_timeout_ms, cache_size_kib, journal_mode) reaching each connection.
 *
 * Owns the temporary directory (created by the group setup, removed by the
 * group teardown) and, in each test, the registries it opens.
 */
#include <dirent.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qreg.h"
#include "support/test_util.h"

/* Bounds that only catch hangs; no test asserts on timing. */
#define HANG_MS 20000u

/* A statement that never ends on its own: only an interrupt stops it. */
#define ENDLESS_SQL                                                                                \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "                               \
  "SELECT count(*) FROM c"

static char temp_dir[256];
static char fixture_url[300]; /* sqlite:<temp_dir>/fixture.db */

/* --- helpers ------------------------------------------------------------- */

static void sleep_ms(unsigned ms) {
  struct timespec delay = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&delay, NULL);
}

/* Opens a registry on url with the given config tweaks applied. */
static qreg_t *open_registry(const char *url, bool allow_writes, size_t max_result_bytes,
                             unsigned max_connections) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.allow_writes = allow_writes;
  if (max_result_bytes != 0)
    config.max_result_bytes = max_result_bytes;
  if (max_connections != 0)
    config.max_connections = max_connections;
  qreg_t *reg = NULL;
  int rc = qreg_open(&config, &reg);
  if (rc != 0)
    fail_msg("qreg_open(%s): %s: %s", url, qreg_strerror(rc), qreg_last_error());
  return reg;
}

static qreg_id_t submit(qreg_t *reg, const char *sql, const qreg_options_t *options) {
  qreg_id_t id;
  int rc = qreg_execute(reg, sql, options, &id);
  if (rc != 0)
    fail_msg("qreg_execute(%s): %s: %s", sql, qreg_strerror(rc), qreg_last_error());
  return id;
}

/* Waits until the query settles and returns its snapshot. */
static qreg_snapshot_t *finish(qreg_t *reg, const qreg_id_t *id) {
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id->str, HANG_MS, &status), 0);
  assert_true(qreg_status_is_terminal(status));
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &snap), 0);
  assert_int_equal(snap->status, status);
  return snap;
}

/* Submits, waits, returns the snapshot. */
static qreg_snapshot_t *run(qreg_t *reg, const char *sql, const qreg_options_t *options) {
  qreg_id_t id = submit(reg, sql, options);
  return finish(reg, &id);
}

/* Runs sql and checks that it succeeded. */
static void run_ok(qreg_t *reg, const char *sql, const qreg_options_t *options) {
  qreg_snapshot_t *snap = run(reg, sql, options);
  if (snap->status != QREG_SUCCEEDED)
    fail_msg("%s: %s: %s (%s)", sql, qreg_status_name(snap->status), snap->error.message,
             snap->error.code);
  qreg_snapshot_free(snap);
}

/* Closes the registry and checks every connection opened was closed. */
static void close_registry(qreg_t *reg) {
  assert_int_equal(qreg_close(reg), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_idle, 0);
  assert_int_equal(stats.connections_opening, 0);
  qreg_destroy(reg);
}

static qreg_options_t writable_options(void) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.allow_writes = true;
  return options;
}

static void url_for(char *buf, size_t size, const char *file) {
  snprintf(buf, size, "sqlite:%s/%s", temp_dir, file);
}

/* Waits until the query is running (it needs a connection first). */
static void wait_running(qreg_t *reg, const qreg_id_t *id) {
  for (unsigned waited = 0; waited < HANG_MS; waited += 5) {
    qreg_snapshot_t *snap = NULL;
    assert_int_equal(qreg_snapshot(reg, id->str, &snap), 0);
    qreg_status_t status = snap->status;
    qreg_snapshot_free(snap);
    if (status == QREG_RUNNING)
      return;
    assert_int_equal(status, QREG_PENDING);
    sleep_ms(5);
  }
  fail_msg("query never started");
}

/* Waits until every connection opened so far has been closed - not pooled:
   a connection whose statement was stopped is closed, and its close runs on
   a worker after the stop has settled. Fails after HANG_MS. */
/* Waits until every connection is closed. A query stopped by the prune
   timer (not by a call that waits) is released a moment after it vanished,
   so in_use is polled too, not asserted at once. */
static void wait_all_closed(qreg_t *reg) {
  for (unsigned waited = 0;; waited += 5) {
    qreg_stats_t stats = QREG_STATS_INIT;
    assert_int_equal(qreg_stats(reg, &stats), 0);
    assert_int_equal(stats.connections_idle, 0);
    if (stats.connections_in_use == 0 && stats.connections_opened == stats.connections_closed)
      return;
    assert_true(waited < HANG_MS);
    sleep_ms(5);
  }
}

/* --- fixture ------------------------------------------------------------- */

static int remove_tree(const char *path) {
  DIR *dir = opendir(path);
  if (dir == NULL)
    return -1;
  struct dirent *entry;
  char child[600];
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
    unlink(child);
  }
  closedir(dir);
  return rmdir(path);
}

/* Creates fixture.db: a table of every storage class and declared types, and
   a table of 100 rows of 100-byte text. */
static int group_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(temp_dir, sizeof temp_dir, "%s/qreg-test-sqlite-XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(temp_dir) == NULL)
    return -1;
  url_for(fixture_url, sizeof fixture_url, "fixture.db");

  qreg_t *reg = open_registry(fixture_url, true, 0, 0);
  qreg_options_t options = writable_options();
  run_ok(reg,
         "CREATE TABLE kinds (i INTEGER, f REAL, s TEXT, b BLOB, d "
         "NUMERIC(10,2), v VARCHAR(20), u)",
         &options);
  run_ok(reg,
         "INSERT INTO kinds VALUES (42, 2.5, 'héllo', x'00ff10', 3.25, "
         "'short', NULL), (-9007199254740993, -0.125, '', x'', NULL, NULL, "
         "'untyped')",
         &options);
  run_ok(reg,
         "CREATE TABLE big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
         "SELECT x + 1 FROM c WHERE x < 100) SELECT x, printf('%0100d', x) AS "
         "pad FROM c",
         &options);
  close_registry(reg);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  return remove_tree(temp_dir);
}

/* --- tests --------------------------------------------------------------- */

static void test_values_and_types(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  qreg_snapshot_t *snap = run(reg,
                              "SELECT i, f, s, b, d, v, u, i + 1 AS expr FROM kinds ORDER BY "
                              "rowid",
                              NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_int_equal(snap->row_count, 2);
  assert_false(snap->truncated);
  assert_string_equal(snap->backend_id, "sqlite-1");

  static const char *const names[] = {"i", "f", "s", "b", "d", "v", "u", "expr"};
  static const char *const types[] = {"INTEGER",       "REAL",        "TEXT", "BLOB",
                                      "NUMERIC(10,2)", "VARCHAR(20)", "",     ""};
  assert_int_equal(snap->column_count, 8);
  for (size_t i = 0; i < 8; i++) {
    assert_string_equal(snap->columns[i].name, names[i]);
    assert_string_equal(snap->columns[i].type_name, types[i]);
  }

  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 2);
  assert_int_equal(page->total_rows, 2);
  assert_false(page->has_more);
  const qreg_value_t *row = page->values;
  assert_int_equal(row[0].type, QREG_TYPE_INT);
  assert_int_equal(row[0].v.i, 42);
  assert_int_equal(row[1].type, QREG_TYPE_FLOAT);
  assert_true(row[1].v.f == 2.5);
  assert_int_equal(row[2].type, QREG_TYPE_TEXT);
  assert_int_equal(row[2].v.s.len, strlen("héllo"));
  assert_string_equal(row[2].v.s.ptr, "héllo");
  assert_int_equal(row[3].type, QREG_TYPE_BYTES);
  assert_int_equal(row[3].v.s.len, 3);
  assert_memory_equal(row[3].v.s.ptr, "\x00\xff\x10", 3);
  assert_int_equal(row[4].type, QREG_TYPE_FLOAT); /* NUMERIC affinity */
  assert_true(row[4].v.f == 3.25);
  assert_int_equal(row[5].type, QREG_TYPE_TEXT);
  assert_string_equal(row[5].v.s.ptr, "short");
  assert_int_equal(row[6].type, QREG_TYPE_NULL);
  assert_int_equal(row[7].type, QREG_TYPE_INT);
  assert_int_equal(row[7].v.i, 43);

  row = page->values + page->column_count;
  assert_int_equal(row[0].type, QREG_TYPE_INT);
  assert_true(row[0].v.i == INT64_C(-9007199254740993)); /* not a double */
  assert_true(row[1].v.f == -0.125);
  assert_int_equal(row[2].type, QREG_TYPE_TEXT);
  assert_int_equal(row[2].v.s.len, 0);
  assert_int_equal(row[3].type, QREG_TYPE_BYTES);
  assert_int_equal(row[3].v.s.len, 0);
  assert_int_equal(row[4].type, QREG_TYPE_NULL);
  assert_int_equal(row[5].type, QREG_TYPE_NULL);
  assert_int_equal(row[6].type, QREG_TYPE_TEXT);
  assert_string_equal(row[6].v.s.ptr, "untyped");
  qreg_page_free(page);
  qreg_snapshot_free(snap);
  close_registry(reg);
}

static void test_nulls_and_expressions(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  qreg_snapshot_t *snap = run(reg, "SELECT NULL AS n, NULL + 1, CAST(NULL AS TEXT), 1.0 / 4", NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_int_equal(snap->column_count, 4);
  assert_string_equal(snap->columns[0].name, "n");
  assert_string_equal(snap->columns[1].name, "NULL + 1");
  assert_string_equal(snap->columns[0].type_name, "");
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(page->values[i].type, QREG_TYPE_NULL);
  assert_int_equal(page->values[3].type, QREG_TYPE_FLOAT);
  assert_true(page->values[3].v.f == 0.25);
  qreg_page_free(page);
  qreg_snapshot_free(snap);

  /* Text that is not UTF-8 stays text, each bad byte U+FFFD (issue 13). */
  snap = run(reg, "SELECT CAST(x'ff00fe41' AS TEXT)", NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->values[0].type, QREG_TYPE_TEXT);
  assert_int_equal(page->values[0].v.s.len, 8);
  assert_memory_equal(page->values[0].v.s.ptr,
                      "\xef\xbf\xbd\0\xef\xbf\xbd"
                      "A",
                      8);
  qreg_page_free(page);
  qreg_snapshot_free(snap);

  /* JSON: what the JSON functions return and columns declared JSON. */
  snap =
      run(reg, "SELECT json('[1.50]'), json_object('a', 1), json_extract('[\"s\"]', '$[0]')", NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->values[0].type, QREG_TYPE_JSON);
  assert_string_equal(page->values[0].v.s.ptr, "[1.50]");
  assert_int_equal(page->values[1].type, QREG_TYPE_JSON);
  assert_string_equal(page->values[1].v.s.ptr, "{\"a\":1}");
  assert_int_equal(page->values[2].type, QREG_TYPE_TEXT);
  qreg_page_free(page);
  qreg_snapshot_free(snap);
  close_registry(reg);
}

static void test_max_rows_truncates(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_rows = 7;
  qreg_snapshot_t *snap = run(reg, "SELECT x FROM big ORDER BY x", &options);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_true(snap->truncated);
  assert_int_equal(snap->row_count, 7);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 7);
  assert_int_equal(page->total_rows, 7);
  assert_true(page->truncated);
  assert_int_equal(page->values[6].v.i, 7);
  qreg_page_free(page);
  qreg_snapshot_free(snap);

  /* An endless statement ends too once the cap is reached. */
  options.max_rows = 3;
  snap = run(reg,
             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
             "SELECT x FROM c",
             &options);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_true(snap->truncated);
  assert_int_equal(snap->row_count, 3);
  qreg_snapshot_free(snap);

  /* Exactly max_rows rows is not a cut. */
  options.max_rows = 100;
  snap = run(reg, "SELECT x FROM big", &options);
  assert_int_equal(snap->row_count, 100);
  assert_false(snap->truncated);
  qreg_snapshot_free(snap);
  close_registry(reg);
}

static void test_byte_budget_truncates(void **state) {
  (void)state;
  /* 100 rows of 100-byte text cannot fit in 4 KiB. */
  qreg_t *reg = open_registry(fixture_url, false, 4096, 0);
  qreg_snapshot_t *snap = run(reg, "SELECT x, pad FROM big ORDER BY x", NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_true(snap->truncated);
  assert_true(snap->row_count > 0);
  assert_true(snap->row_count < 100);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, snap->row_count);
  assert_int_equal(page->values[1].v.s.len, 100);
  qreg_page_free(page);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_true(stats.result_bytes <= 4096);
  qreg_snapshot_free(snap);
  close_registry(reg);
}

static void assert_failed_with(qreg_t *reg, const char *sql, const char *type, const char *code,
                               const char *message_part) {
  qreg_snapshot_t *snap = run(reg, sql, NULL);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_true(snap->has_error);
  assert_string_equal(snap->error.type, type);
  assert_string_equal(snap->error.code, code);
  if (strstr(snap->error.message, message_part) == NULL)
    fail_msg("%s: message \"%s\" lacks \"%s\"", sql, snap->error.message, message_part);
  qreg_snapshot_free(snap);
}

static void test_one_statement_only(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  assert_failed_with(reg, "SELECT 1; SELECT 2", "database", "QREG_MULTIPLE_STATEMENTS",
                     "only one statement per query: found more after offset 9");
  /* A second statement that does not parse is still a second statement. */
  assert_failed_with(reg, "SELECT 1;\nnot sql at all", "database", "QREG_MULTIPLE_STATEMENTS",
                     "offset 9");
  assert_failed_with(reg, "-- nothing here\n/* nor here */ ;", "database", "QREG_EMPTY_STATEMENT",
                     "no statement");
  assert_failed_with(reg, "SELEC 1", "database", "SQLITE_ERROR", "syntax error");
  assert_failed_with(reg, "SELECT * FROM no_such_table", "database", "SQLITE_ERROR",
                     "no such table");

  /* Trailing semicolons and comments are not a second statement. */
  qreg_snapshot_t *snap = run(reg, ";SELECT 1; -- done\n; /* end */", NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  assert_int_equal(snap->row_count, 1);
  qreg_snapshot_free(snap);
  close_registry(reg);
}

static void test_read_only(void **state) {
  (void)state;
  char url[300];
  url_for(url, sizeof url, "writes.db");

  /* A read-only registry cannot even create its file. */
  qreg_t *reg = open_registry(url, false, 0, 0);
  qreg_snapshot_t *snap = run(reg, "CREATE TABLE w (x)", NULL);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_string_equal(snap->error.type, "connection");
  qreg_snapshot_free(snap);
  qreg_options_t options = writable_options();
  qreg_id_t id;
  assert_int_equal(qreg_execute(reg, "CREATE TABLE w (x)", &options, &id), QREG_EINVAL);
  close_registry(reg);

  /* A writable registry: only queries that ask may write. */
  reg = open_registry(url, true, 0, 1);
  run_ok(reg, "CREATE TABLE w (x)", &options);
  run_ok(reg, "INSERT INTO w VALUES (1)", &options);
  assert_failed_with(reg, "INSERT INTO w VALUES (2)", "database", "QREG_READ_ONLY", "read-only");
  /* A read-only query cannot switch query_only off (and so cannot leave the
     pooled connection writable for the next read-only query). */
  assert_failed_with(reg, "PRAGMA query_only = 0", "database", "QREG_READ_ONLY",
                     "PRAGMA query_only");
  assert_failed_with(reg, "DELETE FROM w", "database", "QREG_READ_ONLY", "read-only");
  close_registry(reg);

  /* The rows are there, and a read-only registry cannot change them. */
  reg = open_registry(url, false, 0, 0);
  snap = run(reg, "SELECT count(*) FROM w", NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->values[0].v.i, 1);
  qreg_page_free(page);
  qreg_snapshot_free(snap);
  assert_failed_with(reg, "DROP TABLE w", "database", "QREG_READ_ONLY", "read-only");
  close_registry(reg);
}

static void test_transaction_left_open_is_not_pooled(void **state) {
  (void)state;
  char url[300];
  url_for(url, sizeof url, "txn.db");
  qreg_t *reg = open_registry(url, true, 0, 1);
  qreg_options_t options = writable_options();
  run_ok(reg, "CREATE TABLE t (x)", &options);
  run_ok(reg, "BEGIN", &options);
  run_ok(reg, "INSERT INTO t VALUES (1)", &options);
  /* The connection that ran BEGIN was closed (rolled back) instead of being
     pooled, so the insert ran in autocommit mode on a fresh connection and
     stays; that connection was clean and is reused. */
  qreg_snapshot_t *snap = run(reg, "SELECT count(*) FROM t", NULL);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->values[0].v.i, 1);
  qreg_page_free(page);
  assert_string_equal(snap->backend_id, "sqlite-2");
  qreg_snapshot_free(snap);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 2);
  close_registry(reg);
}

static void test_bad_urls_and_missing_file(void **state) {
  (void)state;
  qreg_config_t config;
  qreg_config_init(&config);
  qreg_t *reg = NULL;
  static const char *const bad[] = {"sqlite:", "sqlite://", "sqlite::memory:"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    config.db_url = bad[i];
    assert_int_equal(qreg_open(&config, &reg), QREG_EURL);
    assert_true(strlen(qreg_last_error()) > 0);
  }

  char url[400], path[300];
  url_for(url, sizeof url, "missing.db");
  snprintf(path, sizeof path, "%s/missing.db", temp_dir);
  reg = open_registry(url, false, 0, 0);
  qreg_snapshot_t *snap = run(reg, "SELECT 1", NULL);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_string_equal(snap->error.type, "connection");
  assert_string_equal(snap->error.code, "SQLITE_CANTOPEN");
  assert_non_null(strstr(snap->error.message, path));
  assert_non_null(strstr(snap->error.message, "No such file or directory"));
  qreg_snapshot_free(snap);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connect_failures, 1);
  assert_int_equal(stats.connections_opened, 0);
  close_registry(reg);
  assert_int_equal(access(path, F_OK), -1); /* not created */

  /* A file that is not a database fails the same way. */
  char not_db[300];
  snprintf(not_db, sizeof not_db, "%s/not-a-db.txt", temp_dir);
  FILE *file = fopen(not_db, "w");
  assert_non_null(file);
  fputs("this is plainly not an SQLite database, it is just some text\n", file);
  fclose(file);
  snprintf(url, sizeof url, "sqlite://%s", not_db);
  reg = open_registry(url, false, 0, 0);
  snap = run(reg, "SELECT 1", NULL);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_string_equal(snap->error.type, "connection");
  assert_string_equal(snap->error.code, "SQLITE_NOTADB");
  assert_non_null(strstr(snap->error.message, not_db));
  qreg_snapshot_free(snap);
  close_registry(reg);
}

static void test_cancel_stops_the_statement(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  qreg_id_t id = submit(reg, ENDLESS_SQL, NULL);
  wait_running(reg, &id);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  /* Settled: the statement stopped; its connection is closed, not pooled. */
  wait_all_closed(reg);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 1);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  assert_int_equal(snap->status, QREG_CANCELED);
  assert_string_equal(snap->error.type, "canceled");
  qreg_snapshot_free(snap);

  /* A cancel that lands at once - on a pooled connection the statement
     starts at once too, so the cancel races with preparing and the first
     step, where SQLite forgets an interrupt - stops it too. A driver that
     lost it would hang here (the ctest timeout catches that). */
  for (int i = 0; i < 20; i++) {
    run_ok(reg, "SELECT 1", NULL); /* leaves a pooled connection */
    id = submit(reg, ENDLESS_SQL, NULL);
    assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
    assert_int_equal(status, QREG_CANCELED);
  }
  /* The registry still runs queries afterwards. */
  run_ok(reg, "SELECT 1", NULL);
  close_registry(reg);
}

static void test_timeout_stops_the_statement(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = 100;
  qreg_snapshot_t *snap = run(reg, ENDLESS_SQL, &options);
  assert_int_equal(snap->status, QREG_TIMEOUT);
  assert_true(snap->has_error);
  qreg_snapshot_free(snap);
  wait_all_closed(reg);
  close_registry(reg);
}

static void test_prune_stops_a_running_statement(void **state) {
  (void)state;
  qreg_t *reg = open_registry(fixture_url, false, 0, 0);
  qreg_options_t options;
  qreg_options_init(&options);
  options.ttl_ms = 50;
  qreg_id_t id = submit(reg, ENDLESS_SQL, &options);
  /* Either the prune timer or this call removes it; both stop it first. */
  qreg_snapshot_t *snap = NULL;
  unsigned waited = 0;
  while (qreg_snapshot(reg, id.str, &snap) == 0) {
    qreg_snapshot_free(snap);
    snap = NULL;
    assert_true(waited < HANG_MS);
    sleep_ms(20);
    waited += 20;
    assert_true(qreg_prune_expired(reg) >= 0);
  }
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), QREG_ENOTFOUND);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_pruned, 1);
  wait_all_closed(reg);
  close_registry(reg);
}

static void test_close_with_pending_running_finished(void **state) {
  (void)state;
  size_t fds_before = test_count_open_fds();
  qreg_t *reg = open_registry(fixture_url, false, 0, 2);
  qreg_id_t done = submit(reg, "SELECT x FROM big", NULL);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, done.str, HANG_MS, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  qreg_id_t running[2], pending[3];
  for (size_t i = 0; i < 2; i++)
    running[i] = submit(reg, ENDLESS_SQL, NULL);
  for (size_t i = 0; i < 3; i++)
    pending[i] = submit(reg, "SELECT 1", NULL);
  for (size_t i = 0; i < 2; i++)
    wait_running(reg, &running[i]);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, pending[0].str, &snap), 0);
  assert_int_equal(snap->status, QREG_PENDING);
  qreg_snapshot_free(snap);

  close_registry(reg); /* checks opened == closed */
  assert_int_equal(test_count_open_fds(), fds_before);
}

static void test_no_descriptor_leaks(void **state) {
  (void)state;
  size_t fds_before = test_count_open_fds();
  char url[300];
  url_for(url, sizeof url, "fds.db");
  qreg_t *reg = open_registry(url, true, 0, 4);
  qreg_options_t options = writable_options();
  run_ok(reg, "CREATE TABLE t (x)", &options);
  /* Several connections at once, ended every way. */
  qreg_id_t ids[8];
  for (size_t i = 0; i < 8; i++)
    ids[i] = submit(reg, i % 2 ? ENDLESS_SQL : "SELECT count(*) FROM t", NULL);
  /* The endless ones are canceled first: left running, they would starve
     the others of CPU under valgrind (which runs one thread at a time). */
  for (size_t i = 1; i < 8; i += 2)
    assert_int_equal(qreg_cancel(reg, ids[i].str, NULL), 0);
  for (size_t i = 0; i < 8; i += 2) {
    qreg_status_t status;
    assert_int_equal(qreg_wait(reg, ids[i].str, HANG_MS, &status), 0);
  }
  assert_true(test_count_open_fds() >= fds_before);
  close_registry(reg);
  assert_int_equal(test_count_open_fds(), fds_before);
}

/* Opens a registry on url with driver options. */
static qreg_t *open_with_options(const char *url, bool allow_writes, const char *const *options,
                                 size_t count) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.allow_writes = allow_writes;
  config.driver_options = options;
  config.driver_option_count = count;
  qreg_t *reg = NULL;
  int rc = qreg_open(&config, &reg);
  if (rc != 0)
    fail_msg("qreg_open(%s): %s: %s", url, qreg_strerror(rc), qreg_last_error());
  return reg;
}

/* The text or integer of a one-value query, as text. */
static void assert_value(qreg_t *reg, const char *sql, const char *expected) {
  qreg_snapshot_t *snap = run(reg, sql, NULL);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  char text[64];
  if (page->values[0].type == QREG_TYPE_INT)
    snprintf(text, sizeof text, "%lld", (long long)page->values[0].v.i);
  else
    snprintf(text, sizeof text, "%s", page->values[0].v.s.ptr);
  assert_string_equal(text, expected);
  qreg_page_free(page);
  qreg_snapshot_free(snap);
}

/* The driver's options (README, "--db URL") reach each connection: from
   the URL, and from driver_options, which win. */
static void test_options(void **state) {
  (void)state;
  char url[400];
  url_for(url, sizeof url, "options.db?cache_size_kib=512");
  qreg_t *reg = open_with_options(url, true, NULL, 0);
  assert_value(reg, "PRAGMA cache_size", "-512");
  assert_value(reg, "PRAGMA journal_mode", "wal"); /* the default */
  close_registry(reg);

  const char *options[] = {"cache_size_kib=64", "journal_mode=delete"};
  reg = open_with_options(url, true, options, 2);
  assert_value(reg, "PRAGMA cache_size", "-64");
  assert_value(reg, "PRAGMA journal_mode", "delete");
  close_registry(reg);

  /* busy_timeout_ms: with the file locked by another connection, a reader
     gives up after it (SQLITE_BUSY) rather than the default 5 s. */
  char path[300];
  snprintf(path, sizeof path, "%s/options.db", temp_dir);
  sqlite3 *locker = NULL;
  assert_int_equal(sqlite3_open(path, &locker), SQLITE_OK);
  assert_int_equal(sqlite3_exec(locker, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
  url_for(url, sizeof url, "options.db?busy_timeout_ms=100");
  reg = open_with_options(url, false, NULL, 0);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  qreg_snapshot_t *snap = run(reg, "SELECT count(*) FROM sqlite_schema", NULL);
  clock_gettime(CLOCK_MONOTONIC, &end);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_non_null(strstr(snap->error.code, "SQLITE_BUSY"));
  qreg_snapshot_free(snap);
  long elapsed_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
  if (elapsed_ms >= 5000)
    fail_msg("gave up after %ld ms: busy_timeout_ms=100 was not applied", elapsed_ms);
  close_registry(reg);
  sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(locker);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_and_types),
      cmocka_unit_test(test_nulls_and_expressions),
      cmocka_unit_test(test_max_rows_truncates),
      cmocka_unit_test(test_byte_budget_truncates),
      cmocka_unit_test(test_one_statement_only),
      cmocka_unit_test(test_read_only),
      cmocka_unit_test(test_transaction_left_open_is_not_pooled),
      cmocka_unit_test(test_bad_urls_and_missing_file),
      cmocka_unit_test(test_cancel_stops_the_statement),
      cmocka_unit_test(test_timeout_stops_the_statement),
      cmocka_unit_test(test_prune_stops_a_running_statement),
      cmocka_unit_test(test_close_with_pending_running_finished),
      cmocka_unit_test(test_no_descriptor_leaks),
      cmocka_unit_test(test_options),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
