/*
 * tools/make_demo_db.c - creates the demo SQLite database that `make run` and
 * the README query: a `cities` table (a dozen rows, names in their own
 * scripts) and an `orders` table (50,000 rows, deterministic pseudo-random
 * data) big enough for aggregate queries that take a visible moment.
 *
 * Usage: qreg_make_demo_db PATH. The database is written to PATH.tmp and
 * renamed over PATH at the end, so PATH is either the old file or a complete
 * new one, never half written. Owns nothing beyond main's lifetime.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEMO_ORDER_COUNT 50000

typedef struct demo_city {
  const char *name;
  const char *country;
  int64_t population;
  double area_km2;
} demo_city_t;

static const demo_city_t demo_cities[] = {
    {"Tokyo", "Japan", 14094034, 2194.07},
    {"東京都 (Tokyo-to)", "日本", 14094034, 2194.07},
    {"Osaka", "Japan", 2752412, 225.21},
    {"São Paulo", "Brazil", 11451999, 1521.11},
    {"Lagos", "Nigeria", 15388000, 1171.28},
    {"Zürich", "Switzerland", 423193, 87.88},
    {"Reykjavík", "Iceland", 139875, 273.0},
    {"Montréal", "Canada", 1762949, 431.5},
    {"Kraków", "Poland", 804237, 326.8},
    {"Cairo", "Egypt", 10025657, 3085.12},
    {"Lima", "Peru", 10004141, 2672.3},
    {"Atlantis", NULL, 0, 0.0}, /* a row with a NULL, to show how NULL prints */
};
#define DEMO_CITY_COUNT (sizeof demo_cities / sizeof demo_cities[0])

static const char *const demo_customers[] = {"acme",  "globex", "initech", "umbrella",
                                             "hooli", "stark",  "wayne",   "tyrell"};
#define DEMO_CUSTOMER_COUNT (sizeof demo_customers / sizeof demo_customers[0])

static const char *const demo_statuses[] = {"new", "paid", "shipped", "delivered", "returned"};
#define DEMO_STATUS_COUNT (sizeof demo_statuses / sizeof demo_statuses[0])

static const char demo_schema[] = "CREATE TABLE cities ("
                                  "  id INTEGER PRIMARY KEY,"
                                  "  name TEXT NOT NULL,"
                                  "  country TEXT,"
                                  "  population INTEGER NOT NULL,"
                                  "  area_km2 REAL NOT NULL"
                                  ");"
                                  "CREATE TABLE orders ("
                                  "  id INTEGER PRIMARY KEY,"
                                  "  city_id INTEGER NOT NULL REFERENCES cities(id),"
                                  "  customer TEXT NOT NULL,"
                                  "  status TEXT NOT NULL,"
                                  "  quantity INTEGER NOT NULL,"
                                  "  amount REAL NOT NULL,"
                                  "  created_at TEXT NOT NULL,"
                                  "  receipt BLOB"
                                  ");"
                                  "CREATE INDEX orders_city ON orders(city_id);";

/* xorshift64*: the same rows on every machine, without libc's rand(). */
static uint64_t demo_random_next(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * UINT64_C(2685821657736338717);
}

/* Prints the database's message for a failed step and returns 1. */
static int demo_fail(sqlite3 *db, const char *what) {
  fprintf(stderr, "qreg_make_demo_db: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
  return 1;
}

static int demo_insert_cities(sqlite3 *db) {
  sqlite3_stmt *stmt = NULL;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO cities(id, name, country, population, area_km2)"
                         " VALUES (?, ?, ?, ?, ?)",
                         -1, &stmt, NULL) != SQLITE_OK)
    return demo_fail(db, "prepare cities");
  int rc = 0;
  for (size_t i = 0; i < DEMO_CITY_COUNT && rc == 0; i++) {
    const demo_city_t *city = &demo_cities[i];
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)i + 1);
    sqlite3_bind_text(stmt, 2, city->name, -1, SQLITE_STATIC);
    if (city->country)
      sqlite3_bind_text(stmt, 3, city->country, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(stmt, 3);
    sqlite3_bind_int64(stmt, 4, city->population);
    sqlite3_bind_double(stmt, 5, city->area_km2);
    if (sqlite3_step(stmt) != SQLITE_DONE)
      rc = demo_fail(db, "insert city");
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  return rc;
}

static int demo_insert_orders(sqlite3 *db) {
  sqlite3_stmt *stmt = NULL;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO orders(id, city_id, customer, status, quantity,"
                         " amount, created_at, receipt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         -1, &stmt, NULL) != SQLITE_OK)
    return demo_fail(db, "prepare orders");
  uint64_t state = UINT64_C(0x9e3779b97f4a7c15);
  int rc = 0;
  for (int64_t id = 1; id <= DEMO_ORDER_COUNT && rc == 0; id++) {
    uint64_t r = demo_random_next(&state);
    /* Cities 1..DEMO_CITY_COUNT-1: Atlantis never orders anything. */
    int64_t city_id = (int64_t)(r % (DEMO_CITY_COUNT - 1)) + 1;
    const char *customer = demo_customers[(r >> 8) % DEMO_CUSTOMER_COUNT];
    const char *status = demo_statuses[(r >> 16) % DEMO_STATUS_COUNT];
    int64_t quantity = (int64_t)((r >> 24) % 20) + 1;
    double amount = (double)((r >> 32) % 100000) / 100.0;
    char created_at[32];
    /* One order every 10 minutes or so from 2026-01-01 on. */
    int64_t minutes = id * 10;
    snprintf(created_at, sizeof created_at, "2026-%02d-%02dT%02d:%02d:00Z",
             (int)(minutes / (INT64_C(60) * 24 * 28)) % 12 + 1,
             (int)(minutes / (INT64_C(60) * 24)) % 28 + 1, (int)(minutes / 60) % 24,
             (int)(minutes % 60));
    unsigned char receipt[8];
    for (size_t i = 0; i < sizeof receipt; i++)
      receipt[i] = (unsigned char)(r >> (8 * i));

    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_int64(stmt, 2, city_id);
    sqlite3_bind_text(stmt, 3, customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, quantity);
    sqlite3_bind_double(stmt, 6, amount);
    sqlite3_bind_text(stmt, 7, created_at, -1, SQLITE_TRANSIENT);
    if (id % 7 == 0) /* some orders have no receipt yet */
      sqlite3_bind_null(stmt, 8);
    else
      sqlite3_bind_blob(stmt, 8, receipt, (int)sizeof receipt, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_DONE)
      rc = demo_fail(db, "insert order");
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  return rc;
}

static int demo_build(const char *path) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    int rc = demo_fail(db, path);
    sqlite3_close(db);
    return rc;
  }
  int rc = 0;
  if (sqlite3_exec(db, "PRAGMA journal_mode=DELETE; BEGIN;", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(db, demo_schema, NULL, NULL, NULL) != SQLITE_OK)
    rc = demo_fail(db, "schema");
  if (rc == 0)
    rc = demo_insert_cities(db);
  if (rc == 0)
    rc = demo_insert_orders(db);
  if (rc == 0 && sqlite3_exec(db, "COMMIT; ANALYZE;", NULL, NULL, NULL) != SQLITE_OK)
    rc = demo_fail(db, "commit");
  if (sqlite3_close(db) != SQLITE_OK && rc == 0)
    rc = demo_fail(db, "close");
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '\0') {
    fprintf(stderr, "usage: qreg_make_demo_db PATH\n");
    return 2;
  }
  const char *path = argv[1];
  size_t tmp_size = strlen(path) + sizeof ".tmp";
  char *tmp_path = malloc(tmp_size);
  if (!tmp_path) {
    fprintf(stderr, "qreg_make_demo_db: out of memory\n");
    return 1;
  }
  snprintf(tmp_path, tmp_size, "%s.tmp", path);
  (void)unlink(tmp_path); /* a leftover of an interrupted run */

  int rc = demo_build(tmp_path);
  if (rc == 0 && rename(tmp_path, path) != 0) {
    perror("qreg_make_demo_db: rename");
    rc = 1;
  }
  if (rc != 0)
    (void)unlink(tmp_path);
  free(tmp_path);
  return rc;
}
