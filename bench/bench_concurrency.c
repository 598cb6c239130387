/*
 * bench/bench_concurrency.c - figure 3: wall time of 1,000
 * `SELECT pg_sleep(0.2)` submitted at once to a registry with a pool of 50,
 * against the ideal: ceil(1000 / 50) waves of 0.2 s. The registry is warmed
 * first (its 50 connections opened), so the figure is what queueing,
 * dispatch and completion cost, not connecting.
 *
 * Owns, while it runs: one registry.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define POOL 50
#define SLEEP_SQL "SELECT pg_sleep(0.2)"
#define SLEEP_SECONDS 0.2

void bench_concurrency(const bench_context_t *ctx) {
  unsigned long count = bench_scaled(ctx, 1000, POOL);
  char title[96], n[32];
  snprintf(title, sizeof title, "wall time, %s x pg_sleep(0.2), pool 50",
           bench_count_text(count, n, sizeof n));
  bench_figure_t *figure = bench_figure_new("3", title, "s", "ideal: ceil(n / 50) x 0.2 s",
                                            BENCH_GOAL_RATIO_AT_MOST, 1.05);
  double ideal = ceil((double)count / POOL) * SLEEP_SECONDS;

  qreg_config_t config;
  bench_config(&config, ctx->pg_conninfo, POOL);
  config.max_records = count * 2 + 1000;
  qreg_t *reg = bench_open(&config);
  bench_fill_pg_pool(reg, POOL);
  qreg_stats_t stats = QREG_STATS_INIT;
  qreg_stats(reg, &stats);
  qreg_id_t *ids = calloc(count, sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");

  for (unsigned round = 0; round < ctx->rounds; round++) {
    uint64_t t0 = bench_now_ns();
    for (unsigned long i = 0; i < count; i++)
      ids[i] = bench_execute(reg, SLEEP_SQL, NULL);
    for (unsigned long i = 0; i < count; i++)
      bench_wait_succeeded(reg, &ids[i], SLEEP_SQL);
    bench_figure_round(figure, bench_seconds_since(t0), ideal);
  }
  bench_figure_note(figure, "%lu queries per round; pool warmed first (%u idle connections).",
                    count, stats.connections_idle);
  free(ids);
  bench_close(reg);
}
