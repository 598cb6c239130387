/*
 * tests/test-sqlite-guard.c - read-only on SQLite holds against hostile SQL:
 * a catalogue of statements a steered model might send, each refused with a
 * clear error (QREG_READ_ONLY, naming what was refused) and proven harmless by
 * its effect on the next query of the same pooled connection (one
 * connection): no file written, no temp object shadowing a table, no
 * attached database, no changed setting. And what must still work: reads,
 * recursive CTEs, the PRAGMAs that only read, the catalog.
 *
 * How it fails: a statement that runs (status succeeded) or fails for
 * another reason than the guard, a file that appears, or a later query that
 * sees the state a refused one tried to leave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "qreg.h"

static char dir[64];
static char db_path[128];

static int make_database(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/qreg-guard-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(db_path, sizeof db_path, "%s/app.db", dir);
  sqlite3 *db = NULL;
  if (sqlite3_open(db_path, &db) != SQLITE_OK ||
      sqlite3_exec(db,
                   "PRAGMA journal_mode=wal; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);"
                   "CREATE INDEX t_name ON t(name); INSERT INTO t(name) VALUES ('real'), ('rows');",
                   NULL, NULL, NULL) != SQLITE_OK)
    return -1;
  sqlite3_close(db);
  return 0;
}

static int remove_database(void **state) {
  (void)state;
  char command[160];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  return system(command) == 0 ? 0 : -1;
}

static qreg_t *open_registry(bool allow_writes) {
  char url[160];
  snprintf(url, sizeof url, "sqlite:%s", db_path);
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.max_connections = 1; /* every query on the same pooled connection */
  config.allow_writes = allow_writes;
  qreg_t *reg = NULL;
  if (qreg_open(&config, &reg) != 0)
    fail_msg("qreg_open: %s", qreg_last_error());
  return reg;
}

static qreg_snapshot_t *run(qreg_t *reg, const char *sql) {
  qreg_id_t id;
  if (qreg_execute(reg, sql, NULL, &id) != 0)
    fail_msg("qreg_execute(%s): %s", sql, qreg_last_error());
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, 30000, &status), 0);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  return snap;
}

/* The one value of a one-row query, as text. */
static void expect_one(qreg_t *reg, const char *sql, const char *expected) {
  qreg_snapshot_t *snap = run(reg, sql);
  if (snap->status != QREG_SUCCEEDED)
    fail_msg("%s: %s: %s", sql, qreg_status_name(snap->status), snap->error.message);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  char text[64];
  const qreg_value_t *v = &page->values[0];
  if (v->type == QREG_TYPE_INT)
    snprintf(text, sizeof text, "%lld", (long long)v->v.i);
  else if (v->type == QREG_TYPE_TEXT)
    snprintf(text, sizeof text, "%s", v->v.s.ptr);
  else
    snprintf(text, sizeof text, "(type %d)", (int)v->type);
  if (strcmp(text, expected) != 0)
    fail_msg("%s: got %s, expected %s", sql, text, expected);
  qreg_page_free(page);
  qreg_snapshot_free(snap);
}

static void expect_refused(qreg_t *reg, const char *sql, const char *names) {
  qreg_snapshot_t *snap = run(reg, sql);
  if (snap->status != QREG_FAILED)
    fail_msg("%s: %s, expected a refusal", sql, qreg_status_name(snap->status));
  if (strcmp(snap->error.code, "QREG_READ_ONLY") != 0 || strstr(snap->error.message, names) == NULL)
    fail_msg("%s: refused as %s \"%s\", expected QREG_READ_ONLY naming \"%s\"", sql,
             snap->error.code, snap->error.message, names);
  qreg_snapshot_free(snap);
}

/* The hostile catalogue, run on a registry; then its effects checked. */
static void hostile_statements_are_refused(qreg_t *reg, bool writable) {
  char sql[300], copy[200];
  snprintf(copy, sizeof copy, "%s/copy.db", dir);
  snprintf(sql, sizeof sql, "VACUUM INTO '%s'", copy);
  expect_refused(reg, sql, "could write");
  snprintf(sql, sizeof sql, "ATTACH DATABASE '%s/other.db' AS other", dir);
  expect_refused(reg, sql, "ATTACH");
  expect_refused(reg, "DETACH DATABASE main", "DETACH");
  expect_refused(reg, "CREATE TEMP VIEW t AS SELECT 'shadow' AS name", "temporary");
  expect_refused(reg, "CREATE TEMP TABLE big(x)", "temporary");
  expect_refused(reg, "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", "temporary");
  expect_refused(reg, "CREATE TABLE u(x)", "CREATE");
  expect_refused(reg, "CREATE INDEX i ON t(name)", "CREATE");
  expect_refused(reg, "DROP TABLE t", "DROP");
  expect_refused(reg, "INSERT INTO t(name) VALUES ('x')", "INSERT");
  expect_refused(reg, "UPDATE t SET name = 'x'", "UPDATE");
  expect_refused(reg, "DELETE FROM t", "DELETE");
  expect_refused(reg, "BEGIN", "transaction");
  expect_refused(reg, "SAVEPOINT s", "SAVEPOINT");
  expect_refused(reg, "ANALYZE", "ANALYZE");
  expect_refused(reg, "REINDEX t_name", "REINDEX");
  expect_refused(reg, "PRAGMA case_sensitive_like = 1", "PRAGMA case_sensitive_like");
  expect_refused(reg, "PRAGMA hard_heap_limit = 1", "PRAGMA hard_heap_limit");
  expect_refused(reg, "PRAGMA busy_timeout = 600000", "PRAGMA busy_timeout");
  expect_refused(reg, "PRAGMA query_only = 0", "PRAGMA query_only");
  expect_refused(reg, "PRAGMA temp_store = memory", "PRAGMA temp_store");
  expect_refused(reg, "PRAGMA journal_mode = delete", "PRAGMA journal_mode");
  expect_refused(reg, "PRAGMA writable_schema = 1", "PRAGMA writable_schema");
  expect_refused(reg, "PRAGMA user_version = 7", "PRAGMA user_version");
  expect_refused(reg, "PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint");
  expect_refused(reg, "PRAGMA optimize", "PRAGMA optimize");

  /* Extensions cannot be loaded at all (refused by SQLite itself). */
  qreg_snapshot_t *snap = run(reg, "SELECT load_extension('/nonexistent/evil.so')");
  assert_int_equal(snap->status, QREG_FAILED);
  qreg_snapshot_free(snap);

  /* No effect reached the next query on the same connection, or the disk. */
  struct stat st;
  assert_int_not_equal(stat(copy, &st), 0);
  expect_one(reg, "SELECT name FROM t ORDER BY id LIMIT 1", "real"); /* no shadow view */
  expect_one(reg, "SELECT count(*) FROM t", "2");
  expect_one(reg, "SELECT 'a' LIKE 'A'", "1"); /* case_sensitive_like still off */
  expect_one(reg, "SELECT count(*) FROM pragma_database_list", "1"); /* nothing attached */
  expect_one(reg, "PRAGMA user_version", "0");
  /* A writable registry's read-only query runs with query_only on (a
     read-only registry's connections are opened read-only instead). */
  expect_one(reg, "PRAGMA query_only", writable ? "1" : "0");
}

static void read_only_registry(void **state) {
  (void)state;
  qreg_t *reg = open_registry(false);
  hostile_statements_are_refused(reg, false);
  qreg_close(reg);
  qreg_destroy(reg);
}

/* A writable registry runs read-only queries unless they ask: the same
   guard holds for them, and a query that asks may write. */
static void writable_registry(void **state) {
  (void)state;
  qreg_t *reg = open_registry(true);
  hostile_statements_are_refused(reg, true);
  qreg_options_t options;
  qreg_options_init(&options);
  options.allow_writes = true;
  qreg_id_t id;
  assert_int_equal(qreg_execute(reg, "CREATE TEMP TABLE scratch(x)", &options, &id), 0);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, 30000, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  qreg_close(reg);
  qreg_destroy(reg);
}

/* What a reader needs still works under the guard. */
static void reads_still_work(void **state) {
  (void)state;
  qreg_t *reg = open_registry(false);
  expect_one(reg,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
             "SELECT sum(i) FROM n",
             "5050");
  expect_one(reg, "SELECT count(*) FROM pragma_table_info('t')", "2");
  expect_one(reg, "SELECT count(*) FROM pragma_table_list WHERE name = 't'", "1");
  expect_one(reg, "PRAGMA journal_mode", "wal");
  expect_one(reg, "SELECT json_extract('{\"a\":[1,2]}', '$.a[1]')", "2");
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
  request.table = "t";
  qreg_id_t id;
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), 0);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, 30000, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  qreg_close(reg);
  qreg_destroy(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(read_only_registry),
      cmocka_unit_test(writable_registry),
      cmocka_unit_test(reads_still_work),
  };
  return cmocka_run_group_tests(tests, make_database, remove_database);
}
