/*
 * bench/bench_memory.c - figure 6: what qreg holds in memory. Each
 * measurement runs in a fresh child process (this program with --child
 * memory ...), reading its resident set (/proc/self/statm) before and after,
 * so no other benchmark's heap blurs it; qreg and baseline children
 * alternate round by round.
 *
 *   6a  resident bytes per finished record with a one-row result: 100,000
 *       `SELECT 1` through a SQLite registry (pool 4), all kept
 *       (max_records 200,000). Baseline: a minimal store of the same
 *       100,000 records (one struct with id, status, times, ttl; the SQL;
 *       a one-cell result; an open-addressing hash table of pointers).
 *   6b  bytes the registry holds (qreg_stats.result_bytes) per raw value
 *       byte for a 1,000,000-row, 5-column PostgreSQL result (int8, int8,
 *       text, float8, bool). Raw value bytes: 8 per integer or float, 1
 *       per boolean, the length of each text - counted from the rows
 *       qreg_fetch gives back. Baseline: those raw bytes (ratio = value).
 *   6c  resident growth for holding that result, per raw value byte.
 *       Baseline: raw libpq PQexec holding the same result as one PGresult.
 *
 * Owns, in the child: the registry or the raw connection of the measurement.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define RESULT_SQL_FORMAT                                                                          \
  "SELECT g AS id, g * 2 AS twice, 'row-' || g AS label, g / 7.0::float8 AS ratio, "               \
  "g %% 2 = 0 AS even FROM generate_series(1::int8, %lu::int8) AS g"

/* --- children ------------------------------------------------------------------- */

/* 6a, qreg: argv = records-qreg SQLITE_PATH COUNT. */
static int child_records_qreg(const char *sqlite_path, unsigned long count) {
  char url[600];
  snprintf(url, sizeof url, "sqlite:%s", sqlite_path);
  qreg_config_t config;
  bench_config(&config, url, 4);
  config.max_records = count * 2;
  qreg_t *reg = bench_open(&config);
  qreg_id_t *ids = malloc(count * sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");
  memset(ids, 0, count * sizeof *ids); /* resident before the first reading */
  bench_warm_pool(reg, "SELECT 1", 1000);

  uint64_t before = bench_rss_bytes();
  for (unsigned long i = 0; i < count; i++)
    ids[i] = bench_execute(reg, "SELECT 1", NULL);
  for (unsigned long i = 0; i < count; i++)
    bench_wait_succeeded(reg, &ids[i], "SELECT 1");
  uint64_t after = bench_rss_bytes();

  qreg_stats_t stats = QREG_STATS_INIT;
  qreg_stats(reg, &stats);
  bench_child_print("bytes_per_record", (double)(after - before) / (double)count);
  bench_child_print("result_bytes_per_record", (double)stats.result_bytes / (double)stats.records);
  /* No close: the process ends here, and tearing down 100,000 records is
     not what is measured. */
  _exit(0);
}

/* 6a, baseline: argv = records-mini COUNT. */
typedef struct mini_result {
  uint32_t columns, rows;
  char column_name[8];
  qreg_value_t value;
} mini_result_t;

typedef struct mini_record {
  uint8_t id[16];
  int32_t status;
  int64_t created_ms, started_ms, finished_ms, updated_ms;
  uint64_t ttl_ms;
  char *sql;             /* owned */
  mini_result_t *result; /* owned */
} mini_record_t;

static int child_records_mini(unsigned long count) {
  size_t slots = 16;
  while (slots < count * 2)
    slots *= 2;
  uint64_t before = bench_rss_bytes();
  mini_record_t **table = calloc(slots, sizeof *table);
  if (table == NULL)
    bench_die("out of memory");
  uint64_t rng = 42;
  for (unsigned long i = 0; i < count; i++) {
    mini_record_t *r = calloc(1, sizeof *r);
    mini_result_t *res = calloc(1, sizeof *res);
    char *sql = strdup("SELECT 1");
    if (r == NULL || res == NULL || sql == NULL)
      bench_die("out of memory");
    uint64_t a = bench_rand(&rng), b = bench_rand(&rng);
    memcpy(r->id, &a, 8);
    memcpy(r->id + 8, &b, 8);
    r->status = QREG_SUCCEEDED;
    r->created_ms = r->started_ms = r->finished_ms = r->updated_ms = (int64_t)i;
    r->ttl_ms = 3600000;
    r->sql = sql;
    res->columns = res->rows = 1;
    memcpy(res->column_name, "1", 2);
    res->value.type = QREG_TYPE_INT;
    res->value.v.i = 1;
    r->result = res;
    size_t at = a & (slots - 1);
    while (table[at] != NULL)
      at = (at + 1) & (slots - 1);
    table[at] = r;
  }
  uint64_t after = bench_rss_bytes();
  bench_child_print("bytes_per_record", (double)(after - before) / (double)count);
  _exit(0);
}

/* Raw value bytes of a typed value (see the file comment). */
static size_t raw_value_bytes(const qreg_value_t *v) {
  switch (v->type) {
  case QREG_TYPE_INT:
  case QREG_TYPE_FLOAT:
    return 8;
  case QREG_TYPE_BOOL:
    return 1;
  case QREG_TYPE_TEXT:
  case QREG_TYPE_BYTES:
  case QREG_TYPE_JSON:
    return v->v.s.len;
  case QREG_TYPE_NULL:
    return 0;
  }
  return 0;
}

/* 6b/6c, qreg: argv = result-qreg CONNINFO ROWS. */
static int child_result_qreg(const char *conninfo, unsigned long rows) {
  qreg_config_t config;
  bench_config(&config, conninfo, 1);
  config.max_result_bytes = (size_t)4 << 30;
  qreg_t *reg = bench_open(&config);
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_rows = rows;
  char sql[400];
  /* The same query on 1,000 rows first: connection, type names, code. */
  snprintf(sql, sizeof sql, RESULT_SQL_FORMAT, 1000ul);
  qreg_id_t warm = bench_execute(reg, sql, &options);
  bench_wait_succeeded(reg, &warm, sql);
  qreg_stats_t stats = QREG_STATS_INIT;
  qreg_stats(reg, &stats);
  size_t warm_bytes = stats.result_bytes;

  snprintf(sql, sizeof sql, RESULT_SQL_FORMAT, rows);
  uint64_t before = bench_rss_bytes();
  qreg_id_t id = bench_execute(reg, sql, &options);
  bench_wait_succeeded(reg, &id, sql);
  uint64_t after = bench_rss_bytes();
  qreg_stats(reg, &stats);
  double held = (double)(stats.result_bytes - warm_bytes);

  /* Count the raw bytes from what qreg gives back, page by page. */
  double raw = 0;
  uint64_t total = 0;
  for (uint64_t offset = 0;;) {
    qreg_page_t *page = NULL;
    if (qreg_fetch(reg, id.str, offset, 65536, &page) != 0)
      bench_die("qreg_fetch: %s", qreg_last_error());
    for (uint64_t i = 0; i < page->row_count * page->column_count; i++)
      raw += (double)raw_value_bytes(&page->values[i]);
    total = page->total_rows;
    offset += page->row_count;
    bool more = page->has_more;
    qreg_page_free(page);
    if (!more)
      break;
  }
  if (total != rows)
    bench_die("the result has %llu rows, not %lu", (unsigned long long)total, rows);
  bench_child_print("raw_bytes", raw);
  bench_child_print("held_bytes", held);
  bench_child_print("held_per_raw", held / raw);
  bench_child_print("rss_per_raw", (double)(after - before) / raw);
  _exit(0);
}

/* 6c, baseline: argv = result-libpq CONNINFO ROWS. */
static int child_result_libpq(const char *conninfo, unsigned long rows) {
  PGconn *conn = PQconnectdb(conninfo);
  if (PQstatus(conn) != CONNECTION_OK)
    bench_die("libpq connect: %s", PQerrorMessage(conn));
  char sql[400];
  snprintf(sql, sizeof sql, RESULT_SQL_FORMAT, 1000ul);
  bench_pg_exec(conn, sql);
  snprintf(sql, sizeof sql, RESULT_SQL_FORMAT, rows);
  uint64_t before = bench_rss_bytes();
  PGresult *res = PQexec(conn, sql);
  uint64_t after = bench_rss_bytes();
  if (PQresultStatus(res) != PGRES_TUPLES_OK || (unsigned long)PQntuples(res) != rows)
    bench_die("libpq: %s", PQerrorMessage(conn));
  /* The same raw bytes, from the text the server sent: 8 per int8 and
     float8, 1 per bool, the text's length. */
  double raw = 0;
  int columns = PQnfields(res);
  for (int row = 0; row < PQntuples(res); row++) {
    for (int col = 0; col < columns; col++) {
      Oid type = PQftype(res, col);
      raw += type == 20 || type == 701 ? 8 : type == 16 ? 1 : PQgetlength(res, row, col);
    }
  }
  bench_child_print("raw_bytes", raw);
  bench_child_print("rss_per_raw", (double)(after - before) / raw);
  _exit(0);
}

int bench_memory_child(int argc, char **argv) {
  /* argv[0] is "memory". */
  if (argc == 4 && strcmp(argv[1], "records-qreg") == 0)
    return child_records_qreg(argv[2], strtoul(argv[3], NULL, 10));
  if (argc == 3 && strcmp(argv[1], "records-mini") == 0)
    return child_records_mini(strtoul(argv[2], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "result-qreg") == 0)
    return child_result_qreg(argv[2], strtoul(argv[3], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "result-libpq") == 0)
    return child_result_libpq(argv[2], strtoul(argv[3], NULL, 10));
  bench_die("memory child: bad arguments");
}

/* --- the parent ---------------------------------------------------------------------- */

void bench_memory(const bench_context_t *ctx) {
  unsigned long count = bench_scaled(ctx, 100000, 1000);
  unsigned long rows = bench_scaled(ctx, 1000000, 10000);
  char title[3][96], n[32];
  snprintf(title[0], sizeof title[0], "RSS per finished record, %s one-row results",
           bench_count_text(count, n, sizeof n));
  bench_count_text(rows, n, sizeof n);
  snprintf(title[1], sizeof title[1], "bytes held per raw byte, %s x 5 result", n);
  snprintf(title[2], sizeof title[2], "RSS growth per raw byte, %s x 5 result", n);
  bench_figure_t *records = bench_figure_new(
      "6a", title[0], "bytes", "a minimal store: struct + SQL + one-cell result + hash slot",
      BENCH_GOAL_VALUE_AT_MOST, 400);
  bench_figure_t *held =
      bench_figure_new("6b", title[1], "bytes/byte",
                       "the raw value bytes (8 per int/float, 1 per bool, text length)",
                       BENCH_GOAL_VALUE_AT_MOST, 1.5);
  bench_figure_t *resident = bench_figure_new(
      "6c", title[2], "bytes/byte", "raw libpq PQexec holding the same result (one PGresult)",
      BENCH_GOAL_VALUE_AT_MOST, 1.5);

  char count_text[32];
  snprintf(count_text, sizeof count_text, "%lu", count);
  bench_child_values_t q, b;
  for (unsigned round = 0; round < ctx->rounds; round++) {
    const char *qreg_args[] = {"memory", "records-qreg", ctx->sqlite_path, count_text, NULL};
    const char *mini_args[] = {"memory", "records-mini", count_text, NULL};
    if (round % 2 == 0) {
      bench_child_run(ctx, qreg_args, &q);
      bench_child_run(ctx, mini_args, &b);
    } else {
      bench_child_run(ctx, mini_args, &b);
      bench_child_run(ctx, qreg_args, &q);
    }
    bench_figure_round(records, bench_child_value(&q, "bytes_per_record"),
                       bench_child_value(&b, "bytes_per_record"));
  }
  bench_figure_note(records,
                    "%lu records per child process; SQLite registry, pool 4; "
                    "qreg_stats.result_bytes per record: %.0f.",
                    count, bench_child_value(&q, "result_bytes_per_record"));

  if (ctx->pg_conninfo == NULL) {
    bench_figure_skip(held, "skipped: no PostgreSQL server");
    bench_figure_skip(resident, "skipped: no PostgreSQL server");
    return;
  }
  char rows_text[32];
  snprintf(rows_text, sizeof rows_text, "%lu", rows);
  double raw = 0;
  for (unsigned round = 0; round < ctx->rounds; round++) {
    const char *qreg_args[] = {"memory", "result-qreg", ctx->pg_conninfo, rows_text, NULL};
    const char *libpq_args[] = {"memory", "result-libpq", ctx->pg_conninfo, rows_text, NULL};
    if (round % 2 == 0) {
      bench_child_run(ctx, qreg_args, &q);
      bench_child_run(ctx, libpq_args, &b);
    } else {
      bench_child_run(ctx, libpq_args, &b);
      bench_child_run(ctx, qreg_args, &q);
    }
    raw = bench_child_value(&q, "raw_bytes");
    bench_figure_round(held, bench_child_value(&q, "held_per_raw"), 1.0);
    bench_figure_round(resident, bench_child_value(&q, "rss_per_raw"),
                       bench_child_value(&b, "rss_per_raw"));
  }
  bench_figure_note(held,
                    "%lu rows of int8, int8, text, float8, bool = %.1f MB of raw values; "
                    "held = qreg_stats.result_bytes.",
                    rows, raw / 1e6);
  bench_figure_note(resident, "Child process RSS after the query minus before it.");
}
