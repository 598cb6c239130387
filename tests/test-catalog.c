/*
 * tests/test-catalog.c - catalog operations (qreg_catalog and friends,
 * include/qreg.h) through the public API: every operation on a real SQLite
 * file with tables, a view, single and composite primary keys, defaults and
 * hostile names; column kinds; statistics of several columns by kind
 * checked against figures computed by hand; random samples of a column
 * subset; indexes and foreign keys (composite ones in key order); names that try to inject SQL (quotes, semicolons,
 * comments) only ever name things; the request's checks; a catalog query
 * is a query like any other (listed, cancellable - on the scripted driver);
 * QREG_ECLOSED after close. PostgreSQL's catalog: test-pg-catalog.c.
 *
 * Owns the temporary directory with the database (group setup and
 * teardown) and, in each test, the registries it opens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qreg.h"
#include "support/test_util.h"

static char temp_dir[256];
static char db_path[300];
static char db_url[310];

/* A table whose name and column name are SQL that would do harm if pasted. */
#define ODD_TABLE "odd \"name\"; DROP TABLE items; --"
#define ODD_COLUMN "col'); DROP TABLE items; --"

static const char *const FIXTURE_SQL =
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'none', "
    "unit_price REAL DEFAULT 1.5, data BLOB);"
    "INSERT INTO items VALUES (1, 'apple', 0.5, x'00'), (2, 'pear', 2.25, NULL), "
    "(3, 'fig', NULL, NULL), (4, 'kiwi', 0.5, NULL), (5, 'plum', 9.75, NULL);"
    "CREATE VIEW cheap AS SELECT id, name FROM items WHERE unit_price < 2;"
    "CREATE TABLE pair (k1 INTEGER, k2 TEXT, v TEXT, PRIMARY KEY (k1, k2));"
    "CREATE TABLE \"odd \"\"name\"\"; DROP TABLE items; --\" "
    "(a INTEGER PRIMARY KEY, \"col'); DROP TABLE items; --\" TEXT);"
    "INSERT INTO \"odd \"\"name\"\"; DROP TABLE items; --\" VALUES (1, 'x'), (2, 'y'), (3, 'x');"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, item INTEGER NOT NULL REFERENCES items (id), "
    "paid BOOLEAN, placed DATE, note TEXT, FOREIGN KEY (item, note) REFERENCES pair (k1, k2));"
    "CREATE INDEX orders_placed ON orders (placed, item);"
    "CREATE UNIQUE INDEX orders_note ON orders (note);"
    "INSERT INTO orders VALUES (1, 1, 1, '2024-01-05', 'a'), (2, 1, 0, '2024-02-10', 'b'), "
    "(3, 2, 1, '2024-03-15', NULL), (4, 5, NULL, '2023-12-31', 'a b');";

static int group_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(temp_dir, sizeof temp_dir, "%s/qreg-test-catalog-XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(temp_dir) == NULL)
    return -1;
  snprintf(db_path, sizeof db_path, "%s/catalog.db", temp_dir);
  snprintf(db_url, sizeof db_url, "sqlite:%s", db_path);
  sqlite3 *db = NULL;
  char *error = NULL;
  if (sqlite3_open(db_path, &db) != SQLITE_OK ||
      sqlite3_exec(db, FIXTURE_SQL, NULL, NULL, &error) != SQLITE_OK) {
    fprintf(stderr, "fixture: %s\n", error ? error : sqlite3_errmsg(db));
    sqlite3_free(error);
    sqlite3_close(db);
    return -1;
  }
  sqlite3_close(db);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    char path[320];
    snprintf(path, sizeof path, "%s%s", db_path, suffixes[i]);
    unlink(path);
  }
  return rmdir(temp_dir);
}

/* --- helpers ------------------------------------------------------------------ */

static qreg_t *open_sqlite(void) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = db_url;
  qreg_t *reg = NULL;
  int rc = qreg_open(&config, &reg);
  if (rc != 0)
    fail_msg("qreg_open: %s: %s", qreg_strerror(rc), qreg_last_error());
  return reg;
}

static void close_checked(qreg_t *reg) {
  assert_int_equal(qreg_close(reg), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  qreg_destroy(reg);
}

static const qreg_value_t *cell(const qreg_page_t *page, uint64_t row, size_t column) {
  assert_true(row < page->row_count && column < page->column_count);
  return &page->values[row * page->column_count + column];
}

/* The cell as text ("NULL" for NULL, digits for an integer). */
static const char *text_of(const qreg_page_t *page, uint64_t row, size_t column) {
  static char buf[4][64];
  static unsigned next;
  const qreg_value_t *v = cell(page, row, column);
  char *out = buf[next++ % 4];
  if (v->type == QREG_TYPE_NULL)
    return "NULL";
  if (v->type == QREG_TYPE_INT) {
    snprintf(out, 64, "%lld", (long long)v->v.i);
    return out;
  }
  if (v->type == QREG_TYPE_BOOL)
    return v->v.b ? "1" : "0";
  if (v->type == QREG_TYPE_FLOAT) {
    snprintf(out, 64, "%g", v->v.f);
    return out;
  }
  if (v->type != QREG_TYPE_TEXT && v->type != QREG_TYPE_JSON)
    fail_msg("row %llu column %zu: type %d", (unsigned long long)row, column, (int)v->type);
  return v->v.s.ptr;
}

/* Asserts the first width columns of the page's rows, as text, row-major
   (width cells a row). */
static void assert_rows_n(const qreg_page_t *page, uint64_t rows, size_t width,
                          const char *const *cells) {
  if (page->row_count != rows)
    fail_msg("%llu rows, expected %llu", (unsigned long long)page->row_count,
             (unsigned long long)rows);
  assert_true(width <= page->column_count);
  for (uint64_t r = 0; r < rows; r++) {
    for (size_t c = 0; c < width; c++) {
      const char *got = text_of(page, r, c), *want = cells[r * width + c];
      if (strcmp(got, want) != 0)
        fail_msg("row %llu column %zu: %s, expected %s", (unsigned long long)r, c, got, want);
    }
  }
}

/* Asserts every column of the page's rows. */
static void assert_rows(const qreg_page_t *page, uint64_t rows, const char *const *cells) {
  assert_rows_n(page, rows, page->column_count, cells);
}

static const char *const TABLES_COLUMNS[] = {"schema",  "name",         "type",
                                             "comment", "row_estimate", NULL};
static const char *const DESCRIBE_COLUMNS[] = {
    "ordinal", "name", "type", "nullable", "default_value", "comment", "primary_key", "kind", NULL};
static const char *const STATS_COLUMNS[] = {
    "row_count", "null_count", "distinct_count", "min_value",   "max_value",  "mean",        "p25",
    "p50",       "p75",        "true_count",     "false_count", "top_values", "column_name", NULL};
static const char *const INDEX_COLUMNS[] = {"index_name", "columns", "is_unique", "is_primary",
                                            NULL};
static const char *const FOREIGN_KEY_COLUMNS[] = {
    "name", "columns", "referenced_schema", "referenced_table", "referenced_columns", NULL};
static const char *const SEARCH_COLUMNS[] = {"schema", "table_name", "column_name", "type", NULL};

/* --- each operation ------------------------------------------------------------ */

static void schemas_and_tables(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SCHEMAS);
  static const char *const schema_columns[] = {"schema_name", NULL};
  qreg_page_t *page = test_catalog_rows(reg, &request, schema_columns);
  assert_rows(page, 1, (const char *const[]){"main"});
  qreg_page_free(page);

  static const char *const all[] = {
      "main", "cheap", "view",    "NULL",  "NULL",  "main", "items", "table",  "NULL",
      "NULL", "main",  ODD_TABLE, "table", "NULL",  "NULL", "main",  "orders", "table",
      "NULL", "NULL",  "main",    "pair",  "table", "NULL", "NULL",
  };
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
  assert_rows(page, 5, all);
  qreg_page_free(page);
  request.schema = "main";
  page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
  assert_rows(page, 5, all);
  qreg_page_free(page);
  /* Hostile schemas are names of schemas that do not exist. */
  static const char *const hostile[] = {"nosuch", "main' OR '1'='1", "main'; --", "\"main\""};
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    request.schema = hostile[i];
    page = test_catalog_rows(reg, &request, TABLES_COLUMNS);
    if (page->row_count != 0)
      fail_msg("schema %s: %llu tables", hostile[i], (unsigned long long)page->row_count);
    qreg_page_free(page);
  }
  close_checked(reg);
}

static void describe(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
  request.table = "items";
  /* SQLite's pragma says an INTEGER PRIMARY KEY may be NULL (notnull 0). */
  static const char *const items[] = {
      "1", "id",     "INTEGER", "1",    "NULL", "NULL",       "1",    "2", "name", "TEXT",
      "0", "'none'", "NULL",    "0",    "3",    "unit_price", "REAL", "1", "1.5",  "NULL",
      "0", "4",      "data",    "BLOB", "1",    "NULL",       "NULL", "0",
  };
  qreg_page_t *page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 4, 7, items);
  /* The kind of each column, from its declared type. */
  assert_string_equal(text_of(page, 0, 7), "number");
  assert_string_equal(text_of(page, 1, 7), "text");
  assert_string_equal(text_of(page, 2, 7), "number");
  assert_string_equal(text_of(page, 3, 7), "other");
  qreg_page_free(page);
  request.schema = "main";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 4, 7, items);
  qreg_page_free(page);
  request.table = "orders";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_int_equal(page->row_count, 5);
  static const char *const order_kinds[] = {"number", "number", "boolean", "date", "text"};
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(text_of(page, i, 7), order_kinds[i]);
  qreg_page_free(page);

  request.schema = NULL;
  request.table = "pair";
  static const char *const pair[] = {
      "1",    "k1",   "INTEGER", "1", "NULL", "NULL", "1", "2",    "k2",   "TEXT", "1",
      "NULL", "NULL", "1",       "3", "v",    "TEXT", "1", "NULL", "NULL", "0",
  };
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 3, 7, pair);
  qreg_page_free(page);

  request.table = "cheap";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_int_equal(page->row_count, 2);
  assert_string_equal(text_of(page, 1, 1), "name");
  qreg_page_free(page);

  request.table = ODD_TABLE;
  static const char *const odd[] = {
      "1", "a",        "INTEGER", "1", "NULL", "NULL", "1",
      "2", ODD_COLUMN, "TEXT",    "1", "NULL", "NULL", "0",
  };
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_rows_n(page, 2, 7, odd);
  qreg_page_free(page);

  /* Not there (or elsewhere): no rows, not an error. */
  request.table = "items";
  request.schema = "temp";
  page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
  assert_int_equal(page->row_count, 0);
  qreg_page_free(page);
  close_checked(reg);
}

static void sample_rows(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.table = "items";
  request.limit = 2;
  static const char *const columns[] = {"id", "name", "unit_price", "data", NULL};
  qreg_page_t *page = test_catalog_rows(reg, &request, columns);
  assert_int_equal(page->row_count, 2);
  qreg_page_free(page);
  request.limit = 0; /* 100 */
  request.schema = "main";
  page = test_catalog_rows(reg, &request, columns);
  assert_int_equal(page->row_count, 5);
  qreg_page_free(page);

  request.schema = NULL;
  request.table = ODD_TABLE;
  static const char *const odd_columns[] = {"a", ODD_COLUMN, NULL};
  page = test_catalog_rows(reg, &request, odd_columns);
  assert_int_equal(page->row_count, 3);
  qreg_page_free(page);
  close_checked(reg);
}

static void column_stats(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
  request.table = "items";
  request.column = "unit_price";
  qreg_page_t *page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows(page, 1,
              (const char *const[]){"5", "1", "3", "0.5", "9.75", "NULL", "NULL", "NULL", "NULL",
                                    "NULL", "NULL", "NULL", "unit_price"});
  qreg_page_free(page);

  request.table = ODD_TABLE;
  request.column = ODD_COLUMN;
  page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows_n(page, 1, 5, (const char *const[]){"3", "0", "2", "x", "y"});
  qreg_page_free(page);

  /* Several columns at once, each with the statistics of its kind: a row
     per column, in the order asked. Known data: unit_price is 0.5, 2.25,
     NULL, 0.5, 9.75 (mean 3.25; nearest-rank quartiles 0.5, 0.5, 2.25). */
  request.table = "items";
  request.column = NULL;
  static const char *const item_columns[] = {"unit_price", "name"};
  static const char *const item_kinds[] = {"number", "text"};
  request.columns = item_columns;
  request.column_kinds = item_kinds;
  request.column_count = 2;
  page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows(
      page, 2,
      (const char *const[]){"5",
                            "1",
                            "3",
                            "0.5",
                            "9.75",
                            "3.25",
                            "0.5",
                            "0.5",
                            "2.25",
                            "NULL",
                            "NULL",
                            "NULL",
                            "unit_price",
                            "5",
                            "0",
                            "5",
                            "apple",
                            "plum",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "[{\"value\":\"apple\",\"count\":1},{\"value\":\"fig\",\"count\":1},"
                            "{\"value\":\"kiwi\",\"count\":1},{\"value\":\"pear\",\"count\":1},"
                            "{\"value\":\"plum\",\"count\":1}]",
                            "name"});
  qreg_page_free(page);
  /* orders: paid 1, 0, 1, NULL; placed from 2023-12-31 to 2024-03-15; item
     1, 1, 2, 5 (quartiles 1, 1, 2); note a, b, NULL, 'a b'. */
  request.table = "orders";
  static const char *const order_columns[] = {"paid", "placed", "item", "note"};
  static const char *const order_kinds[] = {"boolean", "date", "number", "text"};
  request.columns = order_columns;
  request.column_kinds = order_kinds;
  request.column_count = 4;
  page = test_catalog_rows(reg, &request, STATS_COLUMNS);
  assert_rows(
      page, 4,
      (const char *const[]){"4",
                            "1",
                            "2",
                            "0",
                            "1",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "2",
                            "1",
                            "NULL",
                            "paid",
                            "4",
                            "0",
                            "4",
                            "2023-12-31",
                            "2024-03-15",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "placed",
                            "4",
                            "0",
                            "3",
                            "1",
                            "5",
                            "2.25",
                            "1",
                            "1",
                            "2",
                            "NULL",
                            "NULL",
                            "NULL",
                            "item",
                            "4",
                            "1",
                            "3",
                            "a",
                            "b",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "NULL",
                            "[{\"value\":\"a\",\"count\":1},{\"value\":\"a b\",\"count\":1},"
                            "{\"value\":\"b\",\"count\":1}]",
                            "note"});
  qreg_page_free(page);
  /* A bad kind is refused before any SQL. */
  static const char *const bad_kinds[] = {"boolean", "date", "nonsense", "text"};
  request.column_kinds = bad_kinds;
  qreg_id_t id;
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);
  request.columns = NULL;
  request.column_kinds = NULL;
  request.column_count = 0;

  /* A column that does not exist is an error - never statistics of the
     name read as a string (SQLite's fallback for a bare "name"). */
  request.table = "items";
  request.column = "nosuch";
  qreg_snapshot_t *snap = test_catalog_run(reg, &request);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_non_null(strstr(snap->error.message, "nosuch"));
  qreg_snapshot_free(snap);
  close_checked(reg);
}

/* A column subset, and a random sample: the rows are the table's rows
   (every id once), only the columns asked for, at most limit. */
static void sample_subset_and_random(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.table = "items";
  static const char *const wanted[] = {"name", "id"};
  request.columns = wanted;
  request.column_count = 2;
  request.random = true;
  static const char *const columns[] = {"name", "id", NULL};
  bool seen[6] = {false};
  for (int round = 0; round < 3; round++) {
    qreg_page_t *page = test_catalog_rows(reg, &request, columns);
    assert_int_equal(page->row_count, 5);
    for (uint64_t r = 0; r < page->row_count; r++) {
      long id = strtol(text_of(page, r, 1), NULL, 10);
      assert_true(id >= 1 && id <= 5);
      seen[id] = true;
    }
    qreg_page_free(page);
  }
  for (int id = 1; id <= 5; id++)
    assert_true(seen[id]);
  request.limit = 2;
  qreg_page_t *page = test_catalog_rows(reg, &request, columns);
  assert_int_equal(page->row_count, 2);
  qreg_page_free(page);
  /* A column that does not exist fails the query, naming it. */
  static const char *const missing[] = {"nosuch"};
  request.columns = missing;
  request.column_count = 1;
  qreg_snapshot_t *snap = test_catalog_run(reg, &request);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_non_null(strstr(snap->error.message, "nosuch"));
  qreg_snapshot_free(snap);
  close_checked(reg);
}

/* Indexes (the primary key's first, then by name) and foreign keys, with
   composite ones in key order. */
static void indexes_and_foreign_keys(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_INDEXES);
  request.table = "orders";
  qreg_page_t *page = test_catalog_rows(reg, &request, INDEX_COLUMNS);
  assert_rows(page, 2,
              (const char *const[]){"orders_note", "note", "1", "0", "orders_placed",
                                    "placed, item", "0", "0"});
  qreg_page_free(page);
  request.table = "pair";
  request.schema = "main";
  page = test_catalog_rows(reg, &request, INDEX_COLUMNS);
  assert_rows(page, 1, (const char *const[]){"sqlite_autoindex_pair_1", "k1, k2", "1", "1"});
  qreg_page_free(page);

  qreg_catalog_init(&request, QREG_CATALOG_FOREIGN_KEYS);
  request.table = "orders";
  page = test_catalog_rows(reg, &request, FOREIGN_KEY_COLUMNS);
  assert_rows(page, 2,
              (const char *const[]){"fk0", "item, note", "NULL", "pair", "k1, k2", "fk1", "item",
                                    "NULL", "items", "id"});
  qreg_page_free(page);
  request.table = "items";
  page = test_catalog_rows(reg, &request, FOREIGN_KEY_COLUMNS);
  assert_int_equal(page->row_count, 0);
  qreg_page_free(page);
  close_checked(reg);
}

static void search_columns(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SEARCH_COLUMNS);
  request.pattern = "NAME"; /* any case */
  qreg_page_t *page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_rows(
      page, 2,
      (const char *const[]){"main", "cheap", "name", "TEXT", "main", "items", "name", "TEXT"});
  qreg_page_free(page);
  /* A plain substring: '_' and '%' are themselves, not LIKE wildcards. */
  request.pattern = "_";
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_rows(page, 1, (const char *const[]){"main", "items", "unit_price", "REAL"});
  qreg_page_free(page);
  request.pattern = "%";
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_int_equal(page->row_count, 0);
  qreg_page_free(page);
  request.pattern = "'); DROP";
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_rows(page, 1, (const char *const[]){"main", ODD_TABLE, ODD_COLUMN, "TEXT"});
  qreg_page_free(page);
  request.pattern = "";
  request.limit = 3;
  page = test_catalog_rows(reg, &request, SEARCH_COLUMNS);
  assert_int_equal(page->row_count, 3);
  qreg_page_free(page);
  close_checked(reg);
}

/* --- hostile names ---------------------------------------------------------------- */

/* Names written to break out of a literal or an identifier: each names a
   table that does not exist, and nothing else happens. */
static void injection_attempts_only_name_things(void **state) {
  (void)state;
  static const char *const attempts[] = {
      "items' UNION SELECT 1,2,3,4,5,6,7 --",
      "items\"; DROP TABLE items; --",
      "items; DROP TABLE items",
      "items') --",
      "items\" --",
      "x' OR '1'='1",
      "items\\",
  };
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = db_url;
  config.allow_writes = true; /* so only the quoting stands in the way */
  qreg_t *reg = NULL;
  assert_int_equal(qreg_open(&config, &reg), 0);
  for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
    qreg_catalog_request_t request;
    qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
    request.table = attempts[i];
    qreg_page_t *page = test_catalog_rows(reg, &request, DESCRIBE_COLUMNS);
    if (page->row_count != 0)
      fail_msg("describe %s: %llu rows", attempts[i], (unsigned long long)page->row_count);
    qreg_page_free(page);

    qreg_catalog_op_t reading[] = {QREG_CATALOG_SAMPLE, QREG_CATALOG_COLUMN_STATS};
    for (size_t op = 0; op < 2; op++) {
      qreg_catalog_init(&request, reading[op]);
      request.table = attempts[i];
      request.column = "id";
      qreg_snapshot_t *snap = test_catalog_run(reg, &request);
      if (snap->status != QREG_FAILED || strstr(snap->error.message, "no such table") == NULL)
        fail_msg("%s %s: %s %s", qreg_catalog_op_name(reading[op]), attempts[i],
                 qreg_status_name(snap->status), snap->error.message);
      qreg_snapshot_free(snap);
    }
    /* The same names as columns of a real table. */
    qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
    request.table = "items";
    request.column = attempts[i];
    qreg_snapshot_t *snap = test_catalog_run(reg, &request);
    if (snap->status != QREG_FAILED || strstr(snap->error.message, "no such column") == NULL)
      fail_msg("column %s: %s %s", attempts[i], qreg_status_name(snap->status),
               snap->error.message);
    qreg_snapshot_free(snap);
  }
  /* items is still there, whole. */
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.table = "items";
  static const char *const columns[] = {"id", "name", "unit_price", "data", NULL};
  qreg_page_t *page = test_catalog_rows(reg, &request, columns);
  assert_int_equal(page->row_count, 5);
  qreg_page_free(page);
  close_checked(reg);
}

static void quote_identifier(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  char *quoted = NULL;
  assert_int_equal(qreg_quote_identifier(reg, "a\"b", &quoted), 0);
  assert_string_equal(quoted, "\"a\"\"b\"");
  free(quoted);
  assert_int_equal(qreg_quote_identifier(reg, "", &quoted), QREG_EINVAL);
  assert_int_equal(qreg_quote_identifier(reg, NULL, &quoted), QREG_EINVAL);
  /* Quoted by the registry, the name runs as a name. */
  assert_int_equal(qreg_quote_identifier(reg, ODD_TABLE, &quoted), 0);
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", quoted);
  free(quoted);
  qreg_id_t id;
  qreg_status_t status;
  assert_int_equal(qreg_execute(reg, sql, NULL, &id), 0);
  assert_int_equal(qreg_wait(reg, id.str, TEST_BOUND_MS, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  assert_string_equal(qreg_driver_name(reg), "sqlite");
  close_checked(reg);
}

/* --- the request and the registry ------------------------------------------------ */

static void requests_are_checked(void **state) {
  (void)state;
  qreg_t *reg = open_sqlite();
  qreg_id_t id;
  qreg_catalog_request_t request;
  static const char *const names[] = {"schemas",      "tables",         "describe", "sample",
                                      "column_stats", "search_columns", "indexes",  "foreign_keys"};
  for (int op = 0; op < QREG_CATALOG_OP_COUNT; op++)
    assert_string_equal(qreg_catalog_op_name((qreg_catalog_op_t)op), names[op]);
  assert_null(qreg_catalog_op_name(QREG_CATALOG_OP_COUNT));
  assert_null(qreg_catalog_op_name((qreg_catalog_op_t)-1));

  assert_int_equal(qreg_catalog(reg, NULL, NULL, &id), QREG_EINVAL);
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  assert_int_equal(qreg_catalog(reg, &request, NULL, NULL), QREG_EINVAL);
  request.struct_size = 0;
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);
  assert_non_null(strstr(qreg_last_error(), "struct_size"));
  qreg_catalog_init(&request, (qreg_catalog_op_t)42);
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);

  static const struct {
    qreg_catalog_op_t op;
    const char *table, *column, *pattern, *schema;
    const char *why;
  } bad[] = {
      {QREG_CATALOG_DESCRIBE, NULL, NULL, NULL, NULL, "table"},
      {QREG_CATALOG_SAMPLE, "", NULL, NULL, NULL, "table"},
      {QREG_CATALOG_COLUMN_STATS, "items", NULL, NULL, NULL, "column"},
      {QREG_CATALOG_SEARCH_COLUMNS, NULL, NULL, NULL, NULL, "pattern"},
      {QREG_CATALOG_TABLES, NULL, NULL, NULL, "", "schema"},
      {QREG_CATALOG_DESCRIBE, "it\xffms", NULL, NULL, NULL, "UTF-8"},
      {QREG_CATALOG_SEARCH_COLUMNS, NULL, NULL, "\xc3", NULL, "UTF-8"},
      {QREG_CATALOG_INDEXES, NULL, NULL, NULL, NULL, "table"},
      {QREG_CATALOG_FOREIGN_KEYS, NULL, NULL, NULL, NULL, "table"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    qreg_catalog_init(&request, bad[i].op);
    request.table = bad[i].table;
    request.column = bad[i].column;
    request.pattern = bad[i].pattern;
    request.schema = bad[i].schema;
    assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);
    if (strstr(qreg_last_error(), bad[i].why) == NULL)
      fail_msg("case %zu: \"%s\" does not say %s", i, qreg_last_error(), bad[i].why);
  }
  /* Read-only, always. */
  qreg_options_t options;
  qreg_options_init(&options);
  options.allow_writes = true;
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  assert_int_equal(qreg_catalog(reg, &request, &options, &id), QREG_EINVAL);
  assert_non_null(strstr(qreg_last_error(), "read-only"));
  /* Nothing refused was recorded. */
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 0);

  /* Options apply as to any query: max_rows cuts a sample. */
  qreg_options_init(&options);
  options.max_rows = 2;
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.table = "items";
  assert_int_equal(qreg_catalog(reg, &request, &options, &id), 0);
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, TEST_BOUND_MS, &status), 0);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  assert_int_equal(snap->row_count, 2);
  assert_true(snap->truncated);
  qreg_snapshot_free(snap);

  assert_int_equal(qreg_close(reg), 0);
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_ECLOSED);
  char *text = NULL;
  assert_int_equal(qreg_quote_identifier(reg, "x", &text), QREG_ECLOSED);
  assert_int_equal(qreg_redacted_url(reg, &text), QREG_ECLOSED);
  assert_null(qreg_driver_name(reg));
  qreg_destroy(reg);
}

/* A catalog query is a query: listed, and stopped by qreg_cancel (the
   scripted driver holds it at its start until canceled). */
static void catalog_queries_are_listed_and_cancellable(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  scripted_fault_set(SCRIPTED_START, SCRIPTED_FAULT_STALL, 1, 1, 60000);
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  qreg_id_t id;
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), 0);
  test_wait_status(reg, &id, QREG_RUNNING);
  qreg_list_t *list = NULL;
  assert_int_equal(qreg_list(reg, NULL, &list), 0);
  assert_int_equal(list->count, 1);
  assert_string_equal(list->items[0]->id.str, id.str);
  assert_non_null(strstr(list->items[0]->sql, "catalog tables"));
  qreg_list_free(list);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);

  /* Unstalled, the same request succeeds with the documented columns. */
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), 0);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  assert_int_equal(snap->column_count, 5);
  qreg_snapshot_free(snap);
  test_close_checked(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(schemas_and_tables),
      cmocka_unit_test(describe),
      cmocka_unit_test(sample_rows),
      cmocka_unit_test(column_stats),
      cmocka_unit_test(sample_subset_and_random),
      cmocka_unit_test(indexes_and_foreign_keys),
      cmocka_unit_test(search_columns),
      cmocka_unit_test(injection_attempts_only_name_things),
      cmocka_unit_test(quote_identifier),
      cmocka_unit_test(requests_are_checked),
      cmocka_unit_test(catalog_queries_are_listed_and_cancellable),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
