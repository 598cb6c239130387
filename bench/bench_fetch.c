/*
 * bench/bench_fetch.c - figure 9: does a big qreg_fetch slow the other
 * queries down? Completions per second of a stream of `SELECT 1` on SQLite
 * (pool 2, all submitted at once, then a wait on each) while another thread
 * copies a 10,000-row, 4-column result with qreg_fetch in a loop, against
 * the same stream with that thread idle.
 *
 * A page is copied outside the registry's lock (the result is frozen once
 * its query has settled), so the fetcher competes for a CPU, not for the
 * lock every completion takes; the ratio shows what is left of that. On a
 * 2-CPU machine the fetcher's own CPU use is part of the price: the note
 * gives how many pages it copied meanwhile.
 *
 * Owns, while it runs: the registry of the round and the fetcher thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define POOL 2
#define SELECT_ONE "SELECT 1"
#define BIG_SQL                                                                                    \
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "               \
  "SELECT i, i * 2.5 AS f, 'row ' || i AS t, i % 2 = 0 AS b FROM n"

typedef struct fetcher {
  pthread_t thread;
  qreg_t *reg;
  qreg_id_t big;
  atomic_bool stop;
  unsigned long pages;
} fetcher_t;

static void *fetcher_main(void *arg) {
  fetcher_t *f = arg;
  while (!atomic_load(&f->stop)) {
    qreg_page_t *page = NULL;
    if (qreg_fetch(f->reg, f->big.str, 0, 10000, &page) != 0)
      bench_die("qreg_fetch of the 10,000-row result: %s", qreg_last_error());
    if (page->row_count != 10000)
      bench_die("the big result has %llu rows, not 10,000", (unsigned long long)page->row_count);
    qreg_page_free(page);
    f->pages++;
  }
  return NULL;
}

/* Completions per second of count SELECT 1, with the fetcher running or
   not; *pages is what it copied meanwhile. */
static double stream_round(const bench_context_t *ctx, unsigned long count, bool fetching,
                           unsigned long *pages) {
  char url[256];
  snprintf(url, sizeof url, "sqlite:%s", ctx->sqlite_path);
  qreg_config_t config;
  bench_config(&config, url, POOL);
  config.max_records = count + 100;
  qreg_t *reg = bench_open(&config);
  bench_warm_pool(reg, SELECT_ONE, POOL);
  qreg_options_t options;
  qreg_options_init(&options);
  options.max_rows = 10000;
  fetcher_t f = {.reg = reg};
  f.big = bench_execute(reg, BIG_SQL, &options);
  bench_wait_succeeded(reg, &f.big, BIG_SQL);
  if (fetching && pthread_create(&f.thread, NULL, fetcher_main, &f) != 0)
    bench_die("pthread_create failed");
  qreg_id_t *ids = calloc(count, sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");

  uint64_t t0 = bench_now_ns();
  for (unsigned long i = 0; i < count; i++)
    ids[i] = bench_execute(reg, SELECT_ONE, NULL);
  for (unsigned long i = 0; i < count; i++)
    bench_wait_succeeded(reg, &ids[i], SELECT_ONE);
  double seconds = bench_seconds_since(t0);

  if (fetching) {
    atomic_store(&f.stop, true);
    pthread_join(f.thread, NULL);
  }
  *pages = f.pages;
  free(ids);
  bench_close(reg);
  return (double)count / seconds;
}

void bench_fetch(const bench_context_t *ctx) {
  unsigned long count = bench_scaled(ctx, 5000, 200);
  char title[96], n[32];
  snprintf(title, sizeof title, "completions/s, %s SELECT 1, a 10,000-row fetch looping",
           bench_count_text(count, n, sizeof n));
  bench_figure_t *figure =
      bench_figure_new("9", title, "queries/s", "the same stream, no fetcher (SQLite, pool 2)",
                       BENCH_GOAL_RATIO_AT_LEAST, 0.8);
  unsigned long pages_total = 0;
  for (unsigned round = 0; round < ctx->rounds; round++) {
    unsigned long pages = 0, none = 0;
    double with, without;
    if (round % 2 == 0) {
      with = stream_round(ctx, count, true, &pages);
      without = stream_round(ctx, count, false, &none);
    } else {
      without = stream_round(ctx, count, false, &none);
      with = stream_round(ctx, count, true, &pages);
    }
    pages_total += pages;
    bench_figure_round(figure, with, without);
  }
  bench_figure_note(figure,
                    "%lu queries per round and side; the fetcher copied %lu pages of 10,000 "
                    "rows x 4 columns in all.",
                    count, pages_total);
}
