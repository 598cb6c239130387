/*
 * bench/bench_snapshot.c - figure 5: the control plane under load.
 * qreg_snapshot calls per second from 2 threads, each asking for random ids
 * among 1,000 live queries: `SELECT pg_sleep(3600)` on a registry with a pool
 * of 50 PostgreSQL connections, so 50 run on the server and 950 wait in
 * pending - real queries on a real server, not a scripted driver. (The
 * fixture's server allows 300 connections; 50 keeps the run light.)
 *
 * Baseline, in alternate seconds: the least a thread-safe snapshot by text id
 * must do - under one mutex shared by both threads, find the record by its
 * 36-character id in an open-addressing hash table, copy it into one
 * malloc'd block of the size qreg's snapshot of it has; unlock; free. Same 2
 * threads, same ids, same random order.
 *
 * Owns, while it runs: the registry, the baseline's table, the 2 threads of
 * each measurement.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define POOL 50
#define THREADS 2
#define SLEEP_SQL "SELECT pg_sleep(3600)"

/* --- the baseline: a minimal record store ------------------------------------ */

typedef struct mini_record {
  char id[QREG_ID_LEN + 1];
  char sql[64];
  char backend_id[24];
  int status;
  int64_t created_ms, started_ms, finished_ms, updated_ms;
  size_t snapshot_bytes; /* what qreg's snapshot of the same record weighs */
} mini_record_t;

typedef struct mini_store {
  pthread_mutex_t lock;
  mini_record_t *records; /* owned */
  mini_record_t **slots;  /* owned; open addressing, power of two */
  size_t mask;
} mini_store_t;

static uint64_t text_hash(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < QREG_ID_LEN; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

static void mini_store_init(mini_store_t *store, const qreg_id_t *ids, size_t count,
                            size_t snapshot_bytes) {
  pthread_mutex_init(&store->lock, NULL);
  size_t slots = 16;
  while (slots < count * 2)
    slots *= 2;
  store->mask = slots - 1;
  store->records = calloc(count, sizeof *store->records);
  store->slots = calloc(slots, sizeof *store->slots);
  if (store->records == NULL || store->slots == NULL)
    bench_die("out of memory");
  for (size_t i = 0; i < count; i++) {
    mini_record_t *r = &store->records[i];
    memcpy(r->id, ids[i].str, sizeof r->id);
    snprintf(r->sql, sizeof r->sql, "%s", SLEEP_SQL);
    snprintf(r->backend_id, sizeof r->backend_id, "%zu", 10000 + i);
    r->status = QREG_RUNNING;
    r->snapshot_bytes = snapshot_bytes;
    size_t at = text_hash(r->id) & store->mask;
    while (store->slots[at] != NULL)
      at = (at + 1) & store->mask;
    store->slots[at] = r;
  }
}

static void mini_store_free(mini_store_t *store) {
  pthread_mutex_destroy(&store->lock);
  free(store->records);
  free(store->slots);
}

/* The baseline's snapshot: lookup + copy into one block, under the lock. */
static void *mini_snapshot(mini_store_t *store, const char *id) {
  pthread_mutex_lock(&store->lock);
  size_t at = text_hash(id) & store->mask;
  mini_record_t *r;
  while ((r = store->slots[at]) != NULL && memcmp(r->id, id, QREG_ID_LEN) != 0)
    at = (at + 1) & store->mask;
  char *block = NULL;
  if (r != NULL && (block = malloc(r->snapshot_bytes)) != NULL) {
    size_t n = sizeof *r < r->snapshot_bytes ? sizeof *r : r->snapshot_bytes;
    memcpy(block, r, n);
  }
  pthread_mutex_unlock(&store->lock);
  return block;
}

/* --- the measurement ------------------------------------------------------------ */

typedef struct snapshot_run {
  qreg_t *reg;         /* qreg's side, or NULL for the baseline */
  mini_store_t *store; /* the baseline's side */
  const qreg_id_t *ids;
  size_t id_count;
  double seconds; /* how long each thread calls */
  atomic_ulong calls;
  pthread_barrier_t start;
} snapshot_run_t;

typedef struct snapshot_thread {
  pthread_t thread;
  snapshot_run_t *run;
  uint64_t seed;
} snapshot_thread_t;

static void *snapshot_thread_main(void *arg) {
  snapshot_thread_t *t = arg;
  snapshot_run_t *run = t->run;
  uint64_t rng = t->seed;
  unsigned long calls = 0;
  pthread_barrier_wait(&run->start);
  uint64_t end = bench_now_ns() + (uint64_t)(run->seconds * 1e9);
  do {
    /* The clock is read every 256 calls: it is not free either. */
    for (int i = 0; i < 256; i++) {
      const char *id = run->ids[bench_rand(&rng) % run->id_count].str;
      if (run->reg != NULL) {
        qreg_snapshot_t *s = NULL;
        if (qreg_snapshot(run->reg, id, &s) != 0)
          bench_die("qreg_snapshot: %s", qreg_last_error());
        qreg_snapshot_free(s);
      } else {
        void *block = mini_snapshot(run->store, id);
        if (block == NULL)
          bench_die("baseline snapshot: not found");
        free(block);
      }
    }
    calls += 256;
  } while (bench_now_ns() < end);
  atomic_fetch_add(&run->calls, calls);
  return NULL;
}

/* Calls per second over all threads. */
static double snapshot_rate(qreg_t *reg, mini_store_t *store, const qreg_id_t *ids, size_t count,
                            double seconds) {
  snapshot_run_t run = {
      .reg = reg, .store = store, .ids = ids, .id_count = count, .seconds = seconds};
  atomic_init(&run.calls, 0);
  pthread_barrier_init(&run.start, NULL, THREADS + 1);
  snapshot_thread_t threads[THREADS];
  for (unsigned i = 0; i < THREADS; i++) {
    threads[i].run = &run;
    threads[i].seed = 0x1234567u + i * 7919u;
    if (pthread_create(&threads[i].thread, NULL, snapshot_thread_main, &threads[i]) != 0)
      bench_die("pthread_create failed");
  }
  pthread_barrier_wait(&run.start);
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < THREADS; i++)
    pthread_join(threads[i].thread, NULL);
  double elapsed = bench_seconds_since(t0);
  pthread_barrier_destroy(&run.start);
  return (double)atomic_load(&run.calls) / elapsed;
}

/* The size of qreg's snapshot block for this record, as snapshot_new_locked
   lays it out: the struct (rounded to 16) then its strings. */
static size_t qreg_snapshot_bytes(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = NULL;
  if (qreg_snapshot(reg, id->str, &s) != 0)
    bench_die("qreg_snapshot: %s", qreg_last_error());
  size_t bytes = ((sizeof *s + 15) & ~(size_t)15) + strlen(s->sql) + 1 + strlen(s->backend_id) + 1 +
                 strlen(s->error.type) + 1 + strlen(s->error.message) + 1 + strlen(s->error.code) +
                 1 + strlen(s->error.detail) + 1 + strlen(s->error.hint) + 1;
  qreg_snapshot_free(s);
  return bytes;
}

void bench_snapshot(const bench_context_t *ctx) {
  unsigned long count = bench_scaled(ctx, 1000, POOL);
  char title[96], n[32];
  snprintf(title, sizeof title, "qreg_snapshot calls, 2 threads, %s live",
           bench_count_text(count, n, sizeof n));
  bench_figure_t *figure = bench_figure_new(
      "5", title, "calls/s", "2 threads: mutex + hash lookup by text id + copy to a malloc'd block",
      BENCH_GOAL_VALUE_AT_LEAST, 1000000);
  double seconds = ctx->scale < 1 ? 0.3 : 1.0;

  qreg_config_t config;
  bench_config(&config, ctx->pg_conninfo, POOL);
  config.max_records = count + 100;
  qreg_t *reg = bench_open(&config);
  qreg_id_t *ids = calloc(count, sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");
  for (unsigned long i = 0; i < count; i++)
    ids[i] = bench_execute(reg, SLEEP_SQL, NULL);
  if (!bench_wait_in_use(reg, POOL, 30000))
    bench_die("the pool never had %d queries running", POOL);
  qreg_stats_t stats = QREG_STATS_INIT;
  qreg_stats(reg, &stats);

  mini_store_t store;
  mini_store_init(&store, ids, count, qreg_snapshot_bytes(reg, &ids[0]));
  for (unsigned round = 0; round < ctx->rounds; round++) {
    double q, b;
    if (round % 2 == 0) {
      q = snapshot_rate(reg, NULL, ids, count, seconds);
      b = snapshot_rate(NULL, &store, ids, count, seconds);
    } else {
      b = snapshot_rate(NULL, &store, ids, count, seconds);
      q = snapshot_rate(reg, NULL, ids, count, seconds);
    }
    bench_figure_round(figure, q, b);
  }
  bench_figure_note(figure,
                    "%lu queries live (%llu running on the server, %llu pending); %.1f s per "
                    "side per round.",
                    count, (unsigned long long)stats.records_by_status[QREG_RUNNING],
                    (unsigned long long)stats.records_by_status[QREG_PENDING], seconds);
  mini_store_free(&store);
  free(ids);
  bench_close(reg);
}
