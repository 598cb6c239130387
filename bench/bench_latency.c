/*
 * bench/bench_latency.c - figure 1: the latency of one `SELECT 1` through qreg
 * in-process (qreg_execute -> qreg_wait -> qreg_fetch -> qreg_page_free, on
 * a warm pooled connection) against the database used directly on one open
 * connection:
 *
 *   1a  PostgreSQL: raw libpq PQexec + PQgetvalue + PQclear
 *   1b  SQLite:     raw sqlite3_prepare_v2 + sqlite3_step + sqlite3_finalize
 *
 * The two sides alternate query by query (which one goes first alternates
 * too), so both see the same machine at the same moment. A round's value is
 * the median of its queries' latencies, in microseconds.
 *
 * Owns, while it runs: one registry per database and the raw connection
 * beside it.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SELECT_ONE "SELECT 1"

/* One query through qreg, end to end; microseconds. */
static double qreg_select_one_us(qreg_t *reg) {
  uint64_t t0 = bench_now_ns();
  qreg_id_t id = bench_execute(reg, SELECT_ONE, NULL);
  bench_wait_succeeded(reg, &id, SELECT_ONE);
  qreg_page_t *page = NULL;
  int rc = qreg_fetch(reg, id.str, 0, 0, &page);
  if (rc != 0 || page->row_count != 1 || page->values[0].type != QREG_TYPE_INT ||
      page->values[0].v.i != 1)
    bench_die("qreg_fetch of SELECT 1: %s", rc ? qreg_last_error() : "not one row holding 1");
  qreg_page_free(page);
  return (double)(bench_now_ns() - t0) / 1e3;
}

static double raw_pg_select_one_us(PGconn *conn) {
  uint64_t t0 = bench_now_ns();
  PGresult *res = PQexec(conn, SELECT_ONE);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
      strcmp(PQgetvalue(res, 0, 0), "1") != 0)
    bench_die("libpq SELECT 1: %s", PQerrorMessage(conn));
  PQclear(res);
  return (double)(bench_now_ns() - t0) / 1e3;
}

static double raw_sqlite_select_one_us(sqlite3 *db) {
  uint64_t t0 = bench_now_ns();
  sqlite3_stmt *stmt = NULL;
  if (sqlite3_prepare_v2(db, SELECT_ONE, -1, &stmt, NULL) != SQLITE_OK ||
      sqlite3_step(stmt) != SQLITE_ROW || sqlite3_column_int64(stmt, 0) != 1)
    bench_die("sqlite SELECT 1: %s", sqlite3_errmsg(db));
  if (sqlite3_step(stmt) != SQLITE_DONE)
    bench_die("sqlite SELECT 1: more than one row");
  sqlite3_finalize(stmt);
  return (double)(bench_now_ns() - t0) / 1e3;
}

typedef double (*raw_query_fn)(void *handle);

static double raw_pg(void *handle) {
  return raw_pg_select_one_us(handle);
}
static double raw_sqlite(void *handle) {
  return raw_sqlite_select_one_us(handle);
}

/* Rounds of `count` queries on each side, alternating. */
static void measure(const bench_context_t *ctx, bench_figure_t *figure, qreg_t *reg,
                    raw_query_fn raw, void *handle, unsigned long count) {
  bench_series_t qreg_samples = {0}, raw_samples = {0};
  /* Warm both: pool connection opened, caches filled, code paged in. */
  for (unsigned i = 0; i < 200; i++) {
    qreg_select_one_us(reg);
    raw(handle);
  }
  for (unsigned round = 0; round < ctx->rounds; round++) {
    bench_series_clear(&qreg_samples);
    bench_series_clear(&raw_samples);
    for (unsigned long i = 0; i < count; i++) {
      if ((i + round) % 2 == 0) {
        bench_series_add(&qreg_samples, qreg_select_one_us(reg));
        bench_series_add(&raw_samples, raw(handle));
      } else {
        bench_series_add(&raw_samples, raw(handle));
        bench_series_add(&qreg_samples, qreg_select_one_us(reg));
      }
    }
    bench_figure_round(figure, bench_series_median(&qreg_samples),
                       bench_series_median(&raw_samples));
  }
  bench_series_free(&qreg_samples);
  bench_series_free(&raw_samples);
  bench_figure_note(figure,
                    "%lu queries per side per round, alternating; a round's value is "
                    "the median latency.",
                    count);
}

void bench_latency(const bench_context_t *ctx) {
  bench_figure_t *pg =
      bench_figure_new("1a", "latency of SELECT 1, PostgreSQL", "us/query",
                       "raw libpq PQexec on one open connection", BENCH_GOAL_RATIO_AT_MOST, 1.10);
  if (ctx->pg_conninfo == NULL) {
    bench_figure_skip(pg, "skipped: no PostgreSQL server");
  } else {
    qreg_config_t config;
    bench_config(&config, ctx->pg_conninfo, 1);
    qreg_t *reg = bench_open(&config);
    PGconn *conn = bench_pg_connect(ctx, "qreg_bench_raw");
    measure(ctx, pg, reg, raw_pg, conn, bench_scaled(ctx, 2000, 50));
    PQfinish(conn);
    bench_close(reg);
  }

  bench_figure_t *lite =
      bench_figure_new("1b", "latency of SELECT 1, SQLite", "us/query",
                       "raw sqlite3_prepare_v2/step/finalize on one open connection",
                       BENCH_GOAL_RATIO_AT_MOST, 1.10);
  char url[600];
  snprintf(url, sizeof url, "sqlite:%s", ctx->sqlite_path);
  qreg_config_t config;
  bench_config(&config, url, 1);
  qreg_t *reg = bench_open(&config);
  sqlite3 *db = NULL;
  /* Opened as the driver opens its connections: read-only, no mutex. */
  if (sqlite3_open_v2(ctx->sqlite_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK)
    bench_die("sqlite open %s: %s", ctx->sqlite_path, db ? sqlite3_errmsg(db) : "out of memory");
  measure(ctx, lite, reg, raw_sqlite, db, bench_scaled(ctx, 5000, 100));
  sqlite3_close(db);
  bench_close(reg);
}
