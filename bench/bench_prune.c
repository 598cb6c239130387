/*
 * bench/bench_prune.c - figure 7: the time qreg_prune_expired() takes to
 * remove 10,000 expired records from a registry holding 1,000,000.
 *
 * Setting up 1,000,000 records fast, with real queries: the registry has one
 * PostgreSQL connection, busy with `SELECT pg_sleep(3600)`; 1,000,000
 * `SELECT 1` are submitted behind it (pending) and cancelled, which makes
 * them finished records (status canceled) without touching a connection. They
 * keep the default TTL of an hour. Each round then adds 10,000 more the same
 * way, with a per-query ttl_ms chosen so that every one of them expires
 * within the same millisecond, T.
 *
 * The registry's own timer would prune them at T on its loop thread before
 * our call could. So just before T the benchmark occupies the loop thread on
 * purpose: it watches (qreg_watch) one more record, cancels it, and the
 * watch callback - which runs on the loop thread - sleeps on a condition
 * variable (taking no CPU from the prune) until the benchmark's
 * qreg_prune_expired, made after T, has returned. (A callback
 * must not block in real use: every other query waits for it; that is
 * exactly what is wanted here.) A round counts only if it removed exactly
 * 10,000 (otherwise it is repeated, and the note says how often that
 * happened).
 *
 * Baseline, round by round: the least such a prune must do - a binary
 * min-heap of (expiry, record) over the same number of records and an
 * open-addressing hash of them by id; pop the 10,000 expired, delete each
 * from the hash (backward shift), free it and its SQL.
 *
 * QREG_BENCH_DEBUG=1 in the environment prints each attempt's timing (when
 * the records were added, when the list held the lock, what the prune found).
 *
 * Owns, while it runs: the registry, the baseline's heap and hash.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BLOCKER_SQL "SELECT pg_sleep(3600)"
#define FILL_SQL "SELECT 1"
#define MAX_ATTEMPTS 5

static uint64_t mono_ms(void) {
  return bench_now_ns() / 1000000u;
}

/* --- the baseline -------------------------------------------------------------- */

typedef struct mini_record {
  uint64_t id;
  uint64_t expires_ms;
  int status;
  char *sql;        /* owned */
  char padding[64]; /* times, ttl, result pointer... of a real record */
} mini_record_t;

typedef struct mini_store {
  mini_record_t **heap; /* owned array; min-heap on expires_ms */
  size_t heap_count, heap_cap;
  mini_record_t **slots; /* owned array; open addressing on id */
  size_t mask;
  uint64_t next_id;
} mini_store_t;

static void heap_push(mini_store_t *s, mini_record_t *r) {
  size_t i = s->heap_count++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (s->heap[parent]->expires_ms <= r->expires_ms)
      break;
    s->heap[i] = s->heap[parent];
    i = parent;
  }
  s->heap[i] = r;
}

static mini_record_t *heap_pop(mini_store_t *s) {
  mini_record_t *top = s->heap[0];
  mini_record_t *last = s->heap[--s->heap_count];
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= s->heap_count)
      break;
    if (child + 1 < s->heap_count && s->heap[child + 1]->expires_ms < s->heap[child]->expires_ms)
      child++;
    if (last->expires_ms <= s->heap[child]->expires_ms)
      break;
    s->heap[i] = s->heap[child];
    i = child;
  }
  if (s->heap_count > 0)
    s->heap[i] = last;
  return top;
}

static size_t id_slot(const mini_store_t *s, uint64_t id) {
  return (size_t)((id * 0x9e3779b97f4a7c15u) >> 20) & s->mask;
}

static void mini_add(mini_store_t *s, uint64_t expires_ms) {
  mini_record_t *r = calloc(1, sizeof *r);
  if (r == NULL || (r->sql = strdup(FILL_SQL)) == NULL)
    bench_die("out of memory");
  r->id = ++s->next_id;
  r->expires_ms = expires_ms;
  size_t at = id_slot(s, r->id);
  while (s->slots[at] != NULL)
    at = (at + 1) & s->mask;
  s->slots[at] = r;
  heap_push(s, r);
}

static void mini_delete(mini_store_t *s, const mini_record_t *r) {
  size_t hole = id_slot(s, r->id);
  while (s->slots[hole] != r)
    hole = (hole + 1) & s->mask;
  for (size_t j = (hole + 1) & s->mask; s->slots[j] != NULL; j = (j + 1) & s->mask) {
    size_t home = id_slot(s, s->slots[j]->id);
    bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!stays) {
      s->slots[hole] = s->slots[j];
      hole = j;
    }
  }
  s->slots[hole] = NULL;
}

/* count records expiring an hour from now, a few per millisecond as they
   would be in a registry filled at ~200 queries/ms. */
static void mini_init(mini_store_t *s, size_t capacity, size_t count) {
  uint64_t far_ms = mono_ms() + 3600000;
  memset(s, 0, sizeof *s);
  size_t slots = 16;
  while (slots < capacity * 2)
    slots *= 2;
  s->mask = slots - 1;
  s->slots = calloc(slots, sizeof *s->slots);
  s->heap_cap = capacity;
  s->heap = malloc(capacity * sizeof *s->heap);
  if (s->slots == NULL || s->heap == NULL)
    bench_die("out of memory");
  for (size_t i = 0; i < count; i++)
    mini_add(s, far_ms + i / 200); /* distinct keys, in creation order, as qreg's */
}

/* Removes every record expired at now; returns how many. */
static size_t mini_prune(mini_store_t *s, uint64_t now) {
  size_t removed = 0;
  while (s->heap_count > 0 && s->heap[0]->expires_ms <= now) {
    mini_record_t *r = heap_pop(s);
    mini_delete(s, r);
    free(r->sql);
    free(r);
    removed++;
  }
  return removed;
}

static void mini_free(mini_store_t *s) {
  mini_prune(s, UINT64_MAX);
  free(s->heap);
  free(s->slots);
}

/* --- qreg ------------------------------------------------------------------------ */

/* Splits this thread's CPUs: the first for the caller, the last for the
   registry. false when fewer than two are usable. */
static bool pin_apart(cpu_set_t *original, cpu_set_t *registry_cpu, cpu_set_t *caller_cpu) {
  if (sched_getaffinity(0, sizeof *original, original) != 0 || CPU_COUNT(original) < 2)
    return false;
  int first = -1, last = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (CPU_ISSET(cpu, original)) {
      first = first < 0 ? cpu : first;
      last = cpu;
    }
  }
  CPU_ZERO(registry_cpu);
  CPU_SET(last, registry_cpu);
  CPU_ZERO(caller_cpu);
  CPU_SET(first, caller_cpu);
  return true;
}

/* Submits a pending query behind the busy connection and cancels it: a
   finished record whose TTL counts from now. */
static void add_finished(qreg_t *reg, const qreg_options_t *options) {
  qreg_id_t id = bench_execute(reg, FILL_SQL, options);
  qreg_status_t status;
  if (qreg_cancel(reg, id.str, &status) != 0 || status != QREG_CANCELED)
    bench_die("qreg_cancel of a pending query: %s", qreg_last_error());
}

/* The loop thread, held on purpose by a watch callback (see the top). It
   sleeps on a condition rather than spin: a spinning loop thread would take
   a CPU from the prune being measured. */
static pthread_mutex_t hold_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static bool loop_held, loop_release;

static void hold_loop(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  (void)reg;
  (void)id;
  (void)rc;
  (void)status;
  (void)arg;
  pthread_mutex_lock(&hold_mutex);
  loop_held = true;
  pthread_cond_broadcast(&hold_cond);
  while (!loop_release)
    pthread_cond_wait(&hold_cond, &hold_mutex);
  pthread_mutex_unlock(&hold_mutex);
}

/* Occupies the loop thread until hold_loop_end(). */
static void hold_loop_start(qreg_t *reg) {
  pthread_mutex_lock(&hold_mutex);
  loop_held = false;
  loop_release = false;
  pthread_mutex_unlock(&hold_mutex);
  qreg_id_t id = bench_execute(reg, FILL_SQL, NULL); /* pending behind the blocker */
  if (qreg_watch(reg, id.str, hold_loop, NULL) != 0)
    bench_die("qreg_watch: %s", qreg_last_error());
  if (qreg_cancel_async(reg, id.str, NULL) != 0)
    bench_die("qreg_cancel_async: %s", qreg_last_error());
  pthread_mutex_lock(&hold_mutex);
  while (!loop_held)
    pthread_cond_wait(&hold_cond, &hold_mutex);
  pthread_mutex_unlock(&hold_mutex);
}

static void hold_loop_end(void) {
  pthread_mutex_lock(&hold_mutex);
  loop_release = true;
  pthread_cond_broadcast(&hold_cond);
  pthread_mutex_unlock(&hold_mutex);
}

/* One measured prune of `expiring` records; -1 when the loop thread's timer
   got to some of them first. */
static double qreg_prune_round(qreg_t *reg, unsigned long expiring) {
  uint64_t margin = 5;
  /* Far enough ahead to submit them all (~5 us each) before T - margin. */
  uint64_t expiry = mono_ms() + margin + 200 + expiring / 100;
  qreg_options_t options;
  qreg_options_init(&options);
  for (unsigned long i = 0; i < expiring; i++) {
    uint64_t now = mono_ms();
    options.ttl_ms = expiry > now ? expiry - now : 1;
    add_finished(reg, &options);
  }
  uint64_t added = mono_ms();
  while (mono_ms() + margin < expiry)
    bench_sleep_ms(1);
  uint64_t hold_start = mono_ms();
  hold_loop_start(reg); /* the loop's timer cannot run until released */
  uint64_t hold_end = mono_ms();
  while (mono_ms() < expiry + 2) {
  }
  uint64_t t0 = bench_now_ns();
  int pruned = qreg_prune_expired(reg);
  double ms = (double)(bench_now_ns() - t0) / 1e6;
  hold_loop_end();
  if (pruned < 0)
    bench_die("qreg_prune_expired: %s", qreg_last_error());
  if (getenv("QREG_BENCH_DEBUG"))
    fprintf(stderr, "prune: T=%llu added at %lld, loop held %lld..%lld, pruned %d in %.3f ms\n",
            (unsigned long long)expiry, (long long)(added - expiry),
            (long long)(hold_start - expiry), (long long)(hold_end - expiry), pruned, ms);
  if ((unsigned long)pruned == expiring)
    return ms;
  /* Whatever the loop's timer left (expiring at T + 1) goes now, so the
     next attempt starts from the same store. */
  bench_sleep_ms(10);
  qreg_prune_expired(reg);
  return -1;
}

void bench_prune(const bench_context_t *ctx) {
  unsigned long total = bench_scaled(ctx, 1000000, 10000);
  unsigned long expiring = bench_scaled(ctx, 10000, 100);
  char title[96], n1[32], n2[32];
  snprintf(title, sizeof title, "prune %s expired among %s",
           bench_count_text(expiring, n1, sizeof n1), bench_count_text(total, n2, sizeof n2));
  bench_figure_t *figure =
      bench_figure_new("7", title, "ms", "min-heap pop + hash delete + free, same counts",
                       BENCH_GOAL_VALUE_AT_MOST, 10);

  /* The registry's threads inherit the CPU set of the thread that opens it:
     open it pinned to one CPU, then move to another, so that when the list
     releases the lock the loop thread, woken on its own CPU, cannot preempt
     this thread before it takes the lock again. */
  cpu_set_t original, registry_cpu, caller_cpu;
  bool pinned = pin_apart(&original, &registry_cpu, &caller_cpu);
  if (pinned)
    sched_setaffinity(0, sizeof registry_cpu, &registry_cpu);
  qreg_config_t config;
  bench_config(&config, ctx->pg_conninfo, 1);
  config.max_records = total + expiring + 1000; /* + the records that held the loop */
  qreg_t *reg = bench_open(&config);
  if (pinned)
    sched_setaffinity(0, sizeof caller_cpu, &caller_cpu);
  bench_execute(reg, BLOCKER_SQL, NULL); /* holds the only connection */
  if (!bench_wait_in_use(reg, 1, 30000))
    bench_die("%s never started", BLOCKER_SQL);

  uint64_t t0 = bench_now_ns();
  for (unsigned long i = 0; i < total; i++)
    add_finished(reg, NULL);
  double fill_seconds = bench_seconds_since(t0);

  mini_store_t mini;
  mini_init(&mini, total + expiring + 16, total);

  unsigned repeats = 0;
  for (unsigned round = 0; round < ctx->rounds; round++) {
    double q = -1;
    for (int attempt = 0; attempt < MAX_ATTEMPTS && q < 0; attempt++) {
      q = qreg_prune_round(reg, expiring);
      repeats += q < 0;
    }
    if (q < 0) {
      bench_figure_note(figure, "Round %u dropped: the registry's timer pruned first %d times.",
                        round + 1, MAX_ATTEMPTS);
      continue;
    }

    uint64_t now = mono_ms();
    for (unsigned long i = 0; i < expiring; i++)
      mini_add(&mini, now);
    uint64_t b0 = bench_now_ns();
    size_t removed = mini_prune(&mini, now);
    double b = (double)(bench_now_ns() - b0) / 1e6;
    if (removed != expiring)
      bench_die("baseline pruned %zu, not %lu", removed, expiring);
    bench_figure_round(figure, q, b);
  }
  qreg_stats_t stats = QREG_STATS_INIT;
  qreg_stats(reg, &stats);
  bench_figure_note(
      figure,
      "%lu finished records held (%llu in the registry after the rounds); filling "
      "took %.1f s; a watch callback held the loop thread across T; the registry's threads "
      "run on one CPU, the caller on the other; %u round(s) repeated because the "
      "registry's timer pruned first.",
      total, (unsigned long long)stats.records, fill_seconds, repeats);
  if (!pinned)
    bench_figure_note(figure, "(Fewer than 2 CPUs usable: the threads were not pinned apart.)");
  mini_free(&mini);
  bench_close(reg);
  if (pinned)
    sched_setaffinity(0, sizeof original, &original);
}
