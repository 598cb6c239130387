/*
 * bench/bench_throughput.c - figure 2: queries per second when 20,000
 * `SELECT 1` are submitted at once to a registry with a pool of 16
 * PostgreSQL connections (all executes first, then a qreg_wait on each),
 * against raw libpq: 16 threads, each with its own open connection, running
 * 1/16 of the queries with PQexec.
 *
 * Both sides start warm: the registry's 16 connections are opened by a
 * first batch before the clock starts, and the raw threads connect before
 * their start barrier. Each round opens a fresh registry; which side goes
 * first alternates by round.
 *
 * Owns, while it runs: the registry of the round, the raw threads and their
 * connections.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define POOL 16
#define SELECT_ONE "SELECT 1"

static double qreg_round(const bench_context_t *ctx, unsigned long count) {
  qreg_config_t config;
  bench_config(&config, ctx->pg_conninfo, POOL);
  config.max_records = count + 1000;
  qreg_t *reg = bench_open(&config);
  bench_fill_pg_pool(reg, POOL);
  qreg_id_t *ids = malloc(count * sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");
  memset(ids, 0, count * sizeof *ids); /* touched before the clock starts */

  uint64_t t0 = bench_now_ns();
  for (unsigned long i = 0; i < count; i++)
    ids[i] = bench_execute(reg, SELECT_ONE, NULL);
  for (unsigned long i = 0; i < count; i++)
    bench_wait_succeeded(reg, &ids[i], SELECT_ONE);
  double seconds = bench_seconds_since(t0);

  free(ids);
  bench_close(reg);
  return (double)count / seconds;
}

typedef struct raw_worker {
  pthread_t thread;
  PGconn *conn;          /* owned by the round; opened before the barrier */
  unsigned long queries; /* this thread's share */
  pthread_barrier_t *start;
} raw_worker_t;

static void *raw_worker_main(void *arg) {
  raw_worker_t *w = arg;
  pthread_barrier_wait(w->start);
  for (unsigned long i = 0; i < w->queries; i++) {
    PGresult *res = PQexec(w->conn, SELECT_ONE);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      bench_die("libpq SELECT 1: %s", PQerrorMessage(w->conn));
    PQclear(res);
  }
  return NULL;
}

static double raw_round(const bench_context_t *ctx, unsigned long count) {
  raw_worker_t workers[POOL];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, POOL + 1);
  for (unsigned i = 0; i < POOL; i++) {
    workers[i].conn = bench_pg_connect(ctx, "qreg_bench_raw");
    workers[i].queries = count / POOL + (i < count % POOL);
    workers[i].start = &start;
    if (pthread_create(&workers[i].thread, NULL, raw_worker_main, &workers[i]) != 0)
      bench_die("pthread_create failed");
  }
  pthread_barrier_wait(&start);
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < POOL; i++)
    pthread_join(workers[i].thread, NULL);
  double seconds = bench_seconds_since(t0);
  for (unsigned i = 0; i < POOL; i++)
    PQfinish(workers[i].conn);
  pthread_barrier_destroy(&start);
  return (double)count / seconds;
}

void bench_throughput(const bench_context_t *ctx) {
  unsigned long count = bench_scaled(ctx, 20000, 160);
  char title[96], n[32];
  snprintf(title, sizeof title, "throughput, %s SELECT 1 at once, pool 16",
           bench_count_text(count, n, sizeof n));
  bench_figure_t *figure =
      bench_figure_new("2", title, "queries/s", "raw libpq, 16 threads with one connection each",
                       BENCH_GOAL_RATIO_AT_LEAST, 0.8);
  for (unsigned round = 0; round < ctx->rounds; round++) {
    double q, r;
    if (round % 2 == 0) {
      q = qreg_round(ctx, count);
      r = raw_round(ctx, count);
    } else {
      r = raw_round(ctx, count);
      q = qreg_round(ctx, count);
    }
    bench_figure_round(figure, q, r);
  }
  bench_figure_note(figure, "%lu queries per round and side; warm pool/connections.", count);
}
