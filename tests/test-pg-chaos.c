/*
 * tests/test-pg-chaos.c - the stress test against a real PostgreSQL server
 * that misbehaves: worker threads make random calls (execute of short,
 * long, failing and truncated SQL with random timeouts, TTLs and row caps;
 * cancel, cancel_async, wait, watch, snapshot, fetch, list, prune, stats,
 * and now and then closing the registry under the others and opening a new
 * one) while a killer thread terminates random backends of ours
 * (pg_terminate_backend, by the pid a snapshot gave or by
 * application_name), and the server is restarted once
 * (pg_ctl restart -m immediate) part way through.
 *
 * At the end: every registry's connections opened == closed and no driver
 * contract violation; every qreg_watch callback made exactly once (every
 * watched query settled exactly once); pg_stat_activity shows no session
 * of ours; the process's open descriptors are back to their count before
 * the first registry opened.
 *
 * Scale, from the environment:
 *   QREG_CHAOS_SEED     the seed (printed; replays the run as far as
 *                       threads and the server allow)
 *   QREG_CHAOS_OPS      operations in all (default 100000)
 *   QREG_CHAOS_SECONDS  stop after this long even if operations are left
 *                       (default 75, 50 in sanitizer builds; 0: no limit)
 *   QREG_CHAOS_VERBOSE  print each registry's state as it is closed
 * The full run: QREG_CHAOS_OPS=100000 QREG_CHAOS_SECONDS=0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define CHAOS_APP "qreg_t_chaos"
#define CHAOS_THREADS 4
#define CHAOS_IDS 128 /* shared ring of recent ids */
#define CHAOS_PIDS 32 /* shared ring of backend pids seen in snapshots */
#define CHAOS_DEFAULT_SEED 0xc4a05eedu
#define CHAOS_DEFAULT_OPS 100000u
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHAOS_DEFAULT_SECONDS 50u
#else
#define CHAOS_DEFAULT_SECONDS 75u
#endif
#define CHAOS_RESTART_AT 0.4 /* the restart, at this fraction of the run */
#define CHAOS_RESTART_BY 0.6 /* workers wait here until it has happened */

/* One registry and the calls in flight on it. A reopen swaps in a new one
   and closes the old one while calls are still being made on it; the old
   one is destroyed once none is. */
typedef struct slot {
  qreg_t *reg;
  unsigned users; /* under chaos.slot_lock */
} slot_t;

/* One watch: how many times its callback came (must end at 1). */
typedef struct watch_mark {
  atomic_uint calls;
  atomic_int last_rc;
} watch_mark_t;

static struct {
  uint64_t max_ops;
  unsigned max_seconds;
  atomic_uint_fast64_t ops; /* started, all threads */
  atomic_bool stop;
  atomic_bool restarted; /* the server restart is done */

  pthread_mutex_t slot_lock;
  pthread_cond_t slot_idle;
  slot_t *current;
  atomic_bool reopening;

  pthread_mutex_t ids_lock;
  qreg_id_t ids[CHAOS_IDS];
  unsigned id_count;

  atomic_long pids[CHAOS_PIDS];
  atomic_uint pid_count;

  watch_mark_t *marks; /* max_ops of them: at most one watch per op */
  atomic_uint_fast64_t watch_count;
  atomic_uint_fast64_t settled_by_status[QREG_STATUS_COUNT];

  /* Totals of the registries closed so far (main thread or the reopening
     worker, under slot_lock). */
  uint64_t registries, opened, closed, connect_failures, violations;
  char failure[512];       /* the first thing that went wrong, under slot_lock */
  char connect_error[256]; /* the first connection error a snapshot showed */
} chaos;

typedef struct worker {
  unsigned index;
  uint64_t seed;
  uint64_t calls, by_code[16];
  uint64_t reopens;
} worker_t;

static void chaos_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void chaos_fail(const char *fmt, ...) {
  pthread_mutex_lock(&chaos.slot_lock);
  if (chaos.failure[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(chaos.failure, sizeof chaos.failure, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_unlock(&chaos.slot_lock);
  atomic_store(&chaos.stop, true);
}

static unsigned pick(uint64_t *seed, unsigned n) {
  return (unsigned)(test_rand(seed) % n);
}

static uint64_t env_u64(const char *name, uint64_t fallback) {
  const char *text = getenv(name);
  return text != NULL && text[0] != '\0' ? strtoull(text, NULL, 0) : fallback;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- registries ---------------------------------------------------------- */

static qreg_t *chaos_open(void) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = pg_fixture_reader_conninfo(); /* read-only: an ordinary role */
  config.application_name = CHAOS_APP;
  config.max_connections = 8;
  config.max_records = 300;
  config.max_result_bytes = (size_t)4 << 20;
  config.default_ttl_ms = 1500;
  config.default_timeout_ms = 5000;
  config.default_max_rows = 500;
  config.idle_timeout_ms = 200;
  qreg_t *reg = NULL;
  int rc = qreg_open(&config, &reg);
  if (rc != 0) {
    chaos_fail("qreg_open: %s (%s)", qreg_strerror(rc), qreg_last_error());
    return NULL;
  }
  return reg;
}

static slot_t *slot_acquire(void) {
  pthread_mutex_lock(&chaos.slot_lock);
  slot_t *s = chaos.current;
  if (s != NULL)
    s->users++;
  pthread_mutex_unlock(&chaos.slot_lock);
  return s;
}

static void slot_release(slot_t *s) {
  pthread_mutex_lock(&chaos.slot_lock);
  if (--s->users == 0)
    pthread_cond_broadcast(&chaos.slot_idle);
  pthread_mutex_unlock(&chaos.slot_lock);
}

/* Closes the registry of slot s while calls may still be made on it (they
   get QREG_ECLOSED) and checks its final counters. */
static void slot_close(slot_t *s) {
  if (getenv("QREG_CHAOS_VERBOSE") != NULL) {
    qreg_stats_t now = QREG_STATS_INIT;
    qreg_stats(s->reg, &now);
    fprintf(stderr,
            "closing: pending %" PRIu64 " running %" PRIu64 " succeeded %" PRIu64 " failed %" PRIu64
            " canceled %" PRIu64 " timeout %" PRIu64 "; opened %" PRIu64
            " busy %u idle %u opening %u\n",
            now.records_by_status[0], now.records_by_status[1], now.records_by_status[2],
            now.records_by_status[3], now.records_by_status[4], now.records_by_status[5],
            now.connections_opened, now.connections_in_use, now.connections_idle,
            now.connections_opening);
  }
  int rc = qreg_close(s->reg);
  if (rc != 0)
    chaos_fail("qreg_close: %s (%s)", qreg_strerror(rc), qreg_last_error());
  qreg_stats_t st = QREG_STATS_INIT;
  rc = qreg_stats(s->reg, &st);
  if (rc != 0)
    chaos_fail("qreg_stats after close: %s", qreg_strerror(rc));
  if (st.connections_opened != st.connections_closed)
    chaos_fail("after close: opened %" PRIu64 " != closed %" PRIu64, st.connections_opened,
               st.connections_closed);
  if (st.connections_in_use || st.connections_idle || st.connections_opening)
    chaos_fail("after close: %u in use, %u idle, %u opening", st.connections_in_use,
               st.connections_idle, st.connections_opening);
  if (st.watches != 0)
    chaos_fail("after close: %" PRIu64 " watches never called", st.watches);
  if (st.driver_violations != 0)
    chaos_fail("after close: %" PRIu64 " driver contract violations", st.driver_violations);
  pthread_mutex_lock(&chaos.slot_lock);
  chaos.registries++;
  chaos.opened += st.connections_opened;
  chaos.closed += st.connections_closed;
  chaos.connect_failures += st.connect_failures;
  chaos.violations += st.driver_violations;
  pthread_mutex_unlock(&chaos.slot_lock);
}

/* Destroys the closed registry of a slot no longer current, once no call
   is being made on it. */
static void slot_destroy(slot_t *s) {
  pthread_mutex_lock(&chaos.slot_lock);
  while (s->users > 0)
    pthread_cond_wait(&chaos.slot_idle, &chaos.slot_lock);
  pthread_mutex_unlock(&chaos.slot_lock);
  qreg_destroy(s->reg);
  free(s);
}

/* Closes the current registry under the other threads' calls, then makes
   a new one current and destroys the old one. */
static void reopen(worker_t *w) {
  bool expected = false;
  if (!atomic_compare_exchange_strong(&chaos.reopening, &expected, true))
    return; /* one at a time */
  pthread_mutex_lock(&chaos.slot_lock);
  slot_t *old = chaos.current;
  pthread_mutex_unlock(&chaos.slot_lock);
  slot_close(old);
  slot_t *fresh = calloc(1, sizeof *fresh);
  if (fresh == NULL || (fresh->reg = chaos_open()) == NULL) {
    free(fresh);
    chaos_fail("cannot open a new registry");
    atomic_store(&chaos.reopening, false);
    return; /* the old one stays current, closed: the run ends */
  }
  pthread_mutex_lock(&chaos.slot_lock);
  chaos.current = fresh;
  pthread_mutex_unlock(&chaos.slot_lock);
  slot_destroy(old);
  w->reopens++;
  atomic_store(&chaos.reopening, false);
}

/* --- what the workers do ------------------------------------------------- */

static void remember_id(const qreg_id_t *id) {
  pthread_mutex_lock(&chaos.ids_lock);
  chaos.ids[chaos.id_count++ % CHAOS_IDS] = *id;
  pthread_mutex_unlock(&chaos.ids_lock);
}

/* A recent id, or sometimes one that never existed. */
static qreg_id_t some_id(worker_t *w) {
  qreg_id_t id = {.str = "123e4567-e89b-42d3-a456-426614174000"};
  pthread_mutex_lock(&chaos.ids_lock);
  if (chaos.id_count > 0 && pick(&w->seed, 20) != 0) {
    unsigned held = chaos.id_count < CHAOS_IDS ? chaos.id_count : CHAOS_IDS;
    id = chaos.ids[(chaos.id_count - 1 - pick(&w->seed, held)) % CHAOS_IDS];
  }
  pthread_mutex_unlock(&chaos.ids_lock);
  return id;
}

static void on_settled(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  (void)reg;
  watch_mark_t *mark = arg;
  unsigned calls = atomic_fetch_add(&mark->calls, 1) + 1;
  atomic_store(&mark->last_rc, rc);
  if (calls > 1)
    chaos_fail("watch of %s called %u times", id->str, calls);
  if (rc == 0 && !qreg_status_is_terminal(status))
    chaos_fail("watch of %s called with status %s", id->str, qreg_status_name(status));
  if (rc != 0 && rc != QREG_ECLOSED)
    chaos_fail("watch of %s called with %s", id->str, qreg_strerror(rc));
  atomic_fetch_add(&chaos.settled_by_status[status], 1);
}

static int watch(qreg_t *reg, const qreg_id_t *id) {
  uint64_t n = atomic_fetch_add(&chaos.watch_count, 1);
  if (n >= chaos.max_ops) { /* never: one watch per op at most */
    atomic_fetch_sub(&chaos.watch_count, 1);
    return 0;
  }
  int rc = qreg_watch(reg, id->str, on_settled, &chaos.marks[n]);
  if (rc != 0)
    atomic_store(&chaos.marks[n].calls, UINT_MAX); /* no callback due */
  return rc;
}

/* SQL and options of one random query. */
static void random_query(worker_t *w, char *sql, size_t size, qreg_options_t *o) {
  qreg_options_init(o);
  unsigned kind = pick(&w->seed, 40);
  if (kind < 14) {
    snprintf(sql, size, "SELECT n, md5(n::text), n * 1.5 FROM generate_series(1, %u) n",
             1 + pick(&w->seed, 200));
  } else if (kind < 22) {
    snprintf(sql, size, "SELECT %u AS short", pick(&w->seed, 1000));
  } else if (kind < 25) {
    snprintf(sql, size, "SELECT pg_sleep(%u / 1000.0), 'long'", 5 + pick(&w->seed, 300));
  } else if (kind < 27) {
    snprintf(sql, size, "SELECT pg_sleep(%u / 1000.0), 'timed'", 100 + pick(&w->seed, 400));
    o->timeout_ms = 10 + pick(&w->seed, 200);
  } else if (kind < 29) {
    snprintf(sql, size, "SELECT 1 / (n - %u) FROM generate_series(1, 10) n",
             1 + pick(&w->seed, 10));
  } else if (kind < 31) {
    snprintf(sql, size, "SELECT * FROM missing_table_%u", pick(&w->seed, 10));
  } else if (kind < 33) {
    snprintf(sql, size, "SELEC %u", pick(&w->seed, 10));
  } else if (kind < 36) {
    snprintf(sql, size, "SELECT n, repeat('x', %u) FROM generate_series(1, 3000) n",
             1 + pick(&w->seed, 300));
    o->max_rows = 1 + pick(&w->seed, 100);
  } else if (kind < 38) {
    snprintf(sql, size, "CREATE TABLE chaos_%u (x int)", pick(&w->seed, 10)); /* read-only */
  } else {
    snprintf(sql, size, "SELECT pg_sleep(60)");
    o->timeout_ms = 50 + pick(&w->seed, 500);
  }
  if (pick(&w->seed, 8) == 0)
    o->ttl_ms = 5 + pick(&w->seed, 300);
  if (o->timeout_ms == 0 && pick(&w->seed, 10) == 0)
    o->timeout_ms = 5 + pick(&w->seed, 200);
}

static void remember_pid(const char *backend_id) {
  char *end = NULL;
  long pid = strtol(backend_id, &end, 10);
  if (backend_id[0] == '\0' || *end != '\0' || pid <= 0)
    return;
  unsigned i = atomic_fetch_add(&chaos.pid_count, 1);
  atomic_store(&chaos.pids[i % CHAOS_PIDS], pid);
}

/* One random call on reg; returns its code (counts become 0). *op_out names
   the call for code_allowed(). */
enum {
  OP_EXECUTE,
  OP_CANCEL,
  OP_CANCEL_ASYNC,
  OP_WAIT,
  OP_WATCH,
  OP_SNAPSHOT,
  OP_FETCH,
  OP_LIST,
  OP_PRUNE,
  OP_STATS,
  OP_REOPEN
};

static int random_call(worker_t *w, qreg_t *reg, int *op_out) {
  unsigned roll = pick(&w->seed, 1000);
  int op = roll < 150   ? OP_EXECUTE
           : roll < 180 ? OP_CANCEL
           : roll < 200 ? OP_CANCEL_ASYNC
           : roll < 280 ? OP_WAIT
           : roll < 320 ? OP_WATCH
           : roll < 570 ? OP_SNAPSHOT
           : roll < 770 ? OP_FETCH
           : roll < 860 ? OP_LIST
           : roll < 900 ? OP_PRUNE
                        : OP_STATS;
  if (op == OP_STATS && pick(&w->seed, 1500) == 0)
    op = OP_REOPEN; /* about one op in 15000 */
  *op_out = op;
  int rc = 0;
  switch (op) {
  case OP_EXECUTE: {
    char sql[200];
    qreg_options_t options;
    random_query(w, sql, sizeof sql, &options);
    qreg_id_t id;
    rc = qreg_execute(reg, sql, &options, &id);
    if (rc == 0) {
      remember_id(&id);
      int wrc = watch(reg, &id);
      if (wrc != 0 && wrc != QREG_ECLOSED && wrc != QREG_ENOTFOUND)
        chaos_fail("qreg_watch after execute: %s", qreg_strerror(wrc));
    }
    break;
  }
  case OP_CANCEL: {
    qreg_id_t id = some_id(w);
    qreg_status_t status = QREG_PENDING;
    rc = qreg_cancel(reg, id.str, &status);
    if (rc == 0 && !qreg_status_is_terminal(status))
      chaos_fail("qreg_cancel returned 0 with status %s", qreg_status_name(status));
    break;
  }
  case OP_CANCEL_ASYNC: {
    qreg_id_t id = some_id(w);
    rc = qreg_cancel_async(reg, id.str, NULL);
    break;
  }
  case OP_WAIT: {
    qreg_id_t id = some_id(w);
    qreg_status_t status = QREG_PENDING;
    rc = qreg_wait(reg, id.str, pick(&w->seed, 50), &status);
    if (rc == 0 && !qreg_status_is_terminal(status))
      chaos_fail("qreg_wait returned 0 with status %s", qreg_status_name(status));
    break;
  }
  case OP_WATCH: {
    qreg_id_t id = some_id(w);
    rc = watch(reg, &id);
    break;
  }
  case OP_SNAPSHOT: {
    qreg_id_t id = some_id(w);
    qreg_snapshot_t *s = NULL;
    rc = qreg_snapshot(reg, id.str, &s);
    if (rc == 0) {
      if (s->status == QREG_RUNNING)
        remember_pid(s->backend_id);
      if (s->status == QREG_FAILED && strcmp(s->error.type, "connection") == 0) {
        pthread_mutex_lock(&chaos.slot_lock);
        if (chaos.connect_error[0] == '\0')
          snprintf(chaos.connect_error, sizeof chaos.connect_error, "%s", s->error.message);
        pthread_mutex_unlock(&chaos.slot_lock);
      }
      if (qreg_status_is_terminal(s->status) && s->finished_ms == 0)
        chaos_fail("terminal snapshot without finished_ms");
      if (s->status == QREG_SUCCEEDED && s->has_error)
        chaos_fail("succeeded snapshot with an error: %s", s->error.message);
      if ((s->status == QREG_FAILED || s->status == QREG_CANCELED || s->status == QREG_TIMEOUT) &&
          !s->has_error)
        chaos_fail("%s snapshot without an error", qreg_status_name(s->status));
    }
    qreg_snapshot_free(s);
    break;
  }
  case OP_FETCH: {
    qreg_id_t id = some_id(w);
    qreg_page_t *page = NULL;
    rc = qreg_fetch(reg, id.str, pick(&w->seed, 4) == 0 ? pick(&w->seed, 300) : 0,
                    pick(&w->seed, 50), &page);
    if (rc == 0 && page->offset + page->row_count > page->total_rows)
      chaos_fail("page past its total");
    qreg_page_free(page);
    break;
  }
  case OP_LIST: {
    qreg_list_filter_t filter = {.status_mask = pick(&w->seed, 2) ? 0 : 1u << pick(&w->seed, 6),
                                 .newest_first = pick(&w->seed, 2),
                                 .limit = pick(&w->seed, 30)};
    qreg_list_t *list = NULL;
    rc = qreg_list(reg, &filter, &list);
    qreg_list_free(list);
    break;
  }
  case OP_PRUNE:
    rc = qreg_prune_expired(reg);
    if (rc > 0)
      rc = 0;
    break;
  case OP_STATS: {
    qreg_stats_t st = QREG_STATS_INIT;
    rc = qreg_stats(reg, &st);
    if (rc == 0 && st.connections_closed > st.connections_opened)
      chaos_fail("stats: closed %" PRIu64 " > opened %" PRIu64, st.connections_closed,
                 st.connections_opened);
    break;
  }
  default:
    break; /* OP_REOPEN: made by the caller, without a registry held */
  }
  return rc;
}

static bool code_allowed(int op, int rc) {
  if (rc == 0 || rc == QREG_ECLOSED)
    return true;
  switch (op) {
  case OP_EXECUTE:
    return rc == QREG_EFULL;
  case OP_CANCEL:
  case OP_CANCEL_ASYNC:
  case OP_WATCH:
  case OP_SNAPSHOT:
    return rc == QREG_ENOTFOUND;
  case OP_WAIT:
    return rc == QREG_ENOTFOUND || rc == QREG_ETIMEDOUT;
  case OP_FETCH:
    return rc == QREG_ENOTFOUND || rc == QREG_ENOTREADY || rc == QREG_ENORESULT ||
           rc == QREG_ERANGE;
  default:
    return false;
  }
}

static bool out_of_time(double started) {
  return chaos.max_seconds != 0 && now_s() - started >= chaos.max_seconds;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  double started = now_s();
  while (!atomic_load(&chaos.stop) && !out_of_time(started)) {
    uint64_t n = atomic_fetch_add(&chaos.ops, 1);
    if (n >= chaos.max_ops)
      break;
    /* However fast the calls, the restart comes with ops left after it. */
    while (n >= chaos.max_ops * CHAOS_RESTART_BY && !atomic_load(&chaos.restarted) &&
           !atomic_load(&chaos.stop))
      test_sleep_ms(5);
    slot_t *s = slot_acquire();
    int op;
    int rc = random_call(w, s->reg, &op);
    slot_release(s);
    if (op == OP_REOPEN)
      reopen(w);
    w->calls++;
    if (rc <= 0 && -rc < 16)
      w->by_code[-rc]++;
    if (!code_allowed(op, rc))
      chaos_fail("op %d returned %s (%s)", op, qreg_strerror(rc), qreg_last_error());
    /* A pause between calls, as a client makes: four threads calling
       without one would starve the loop and the server on two cores,
       and the queries would only ever be canceled or time out. */
    test_sleep_ms(pick(&w->seed, 3));
  }
  return NULL;
}

/* --- the killer ------------------------------------------------------------ */

typedef struct killer {
  uint64_t seed;
  uint64_t kills;    /* backends the server said it terminated */
  uint64_t attempts; /* rounds that reached the server */
} killer_t;

static void *killer_main(void *arg) {
  killer_t *k = arg;
  pg_admin_t *admin = NULL;
  while (!atomic_load(&chaos.stop)) {
    test_sleep_ms(20 + pick(&k->seed, 250));
    if (admin == NULL && (admin = pg_admin_open()) == NULL)
      continue; /* the server is restarting */
    long long n;
    unsigned pids = atomic_load(&chaos.pid_count);
    if (pids > 0 && pick(&k->seed, 2) == 0) {
      long pid = atomic_load(&chaos.pids[pick(&k->seed, pids < CHAOS_PIDS ? pids : CHAOS_PIDS)]);
      /* Only a session of ours: a pid seen earlier may be anyone's now. */
      n = pg_admin_int(admin,
                       "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                       "FROM pg_stat_activity WHERE pid = %ld AND application_name = '" CHAOS_APP
                       "'",
                       pid);
    } else {
      n = pg_admin_int(admin,
                       "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM "
                       "(SELECT pid FROM pg_stat_activity WHERE application_name = '" CHAOS_APP
                       "' ORDER BY random() LIMIT %u) s",
                       1 + pick(&k->seed, 2));
    }
    if (n < 0) {
      pg_admin_close(admin); /* the server went away under it */
      admin = NULL;
      continue;
    }
    k->attempts++;
    k->kills += (uint64_t)n;
  }
  pg_admin_close(admin);
  return NULL;
}

/* --- the run -------------------------------------------------------------- */

/* What each open descriptor is, for the message when they differ. */
static void print_open_fds(const char *when) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL)
    return;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.')
      continue;
    char path[300], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    print_message("  %s: fd %s -> %s\n", when, entry->d_name, target);
  }
  closedir(dir);
}

static void chaos_run(void **state) {
  (void)state;
  uint64_t seed = env_u64("QREG_CHAOS_SEED", CHAOS_DEFAULT_SEED);
  chaos.max_ops = env_u64("QREG_CHAOS_OPS", CHAOS_DEFAULT_OPS);
  chaos.max_seconds = (unsigned)env_u64("QREG_CHAOS_SECONDS", CHAOS_DEFAULT_SECONDS);
  print_message("chaos seed 0x%" PRIx64 " (QREG_CHAOS_SEED replays), %" PRIu64
                " ops, %u s at most (QREG_CHAOS_OPS, QREG_CHAOS_SECONDS)\n",
                seed, chaos.max_ops, chaos.max_seconds);
  assert_true(chaos.max_ops > 0);
  chaos.marks = calloc(chaos.max_ops, sizeof *chaos.marks);
  assert_non_null(chaos.marks);
  pthread_mutex_init(&chaos.slot_lock, NULL);
  pthread_cond_init(&chaos.slot_idle, NULL);
  pthread_mutex_init(&chaos.ids_lock, NULL);

  /* The baseline: the fixture's admin connection is open, nothing of ours,
     and a first registry has come and gone - libuv keeps a pipe of its own
     for the life of the process from the first loop on. */
  qreg_t *first = chaos_open();
  assert_non_null(first);
  qreg_id_t id = test_execute(first, "SELECT 1", NULL);
  assert_int_equal(test_wait(first, &id), QREG_SUCCEEDED);
  assert_int_equal(qreg_close(first), 0);
  qreg_destroy(first);
  assert_int_equal(pg_admin_wait_sessions(pg_admin(), CHAOS_APP, NULL, 0, PG_GONE_MS), 0);
  size_t fds_before = test_count_open_fds();
  if (getenv("QREG_CHAOS_FDS") != NULL)
    print_open_fds("before");

  chaos.current = calloc(1, sizeof *chaos.current);
  assert_non_null(chaos.current);
  chaos.current->reg = chaos_open();
  assert_non_null(chaos.current->reg);

  worker_t workers[CHAOS_THREADS];
  pthread_t tids[CHAOS_THREADS];
  for (unsigned i = 0; i < CHAOS_THREADS; i++) {
    workers[i] = (worker_t){.index = i, .seed = seed * 31 + i + 1};
    assert_int_equal(pthread_create(&tids[i], NULL, worker_main, &workers[i]), 0);
  }
  killer_t killer = {.seed = seed * 31 + 1000};
  pthread_t killer_tid;
  assert_int_equal(pthread_create(&killer_tid, NULL, killer_main, &killer), 0);

  /* The restart, once the run is CHAOS_RESTART_AT through (by ops or by
     time, whichever comes first). */
  double started = now_s();
  unsigned restarts = 0;
  double restart_at_s = 0;
  uint64_t restart_at_ops = 0;
  while (!atomic_load(&chaos.stop)) {
    double elapsed = now_s() - started;
    uint64_t ops = atomic_load(&chaos.ops);
    if (ops >= chaos.max_ops || out_of_time(started))
      break;
    double progress = (double)ops / (double)chaos.max_ops;
    if (chaos.max_seconds != 0 && elapsed / chaos.max_seconds > progress)
      progress = elapsed / chaos.max_seconds;
    if (restarts == 0 && progress >= CHAOS_RESTART_AT) {
      restart_at_s = elapsed;
      restart_at_ops = ops;
      if (pg_fixture_server_restart() != 0)
        chaos_fail("pg_ctl restart -m immediate failed");
      restarts++;
      atomic_store(&chaos.restarted, true);
    }
    test_sleep_ms(20);
  }
  for (unsigned i = 0; i < CHAOS_THREADS; i++)
    pthread_join(tids[i], NULL);
  atomic_store(&chaos.stop, true);
  pthread_join(killer_tid, NULL);
  double elapsed = now_s() - started;

  slot_t *last = chaos.current;
  slot_close(last);
  chaos.current = NULL;
  slot_destroy(last);
  if (chaos.failure[0] != '\0')
    fail_msg("seed 0x%" PRIx64 ": %s", seed, chaos.failure);

  /* Every watch registered was called exactly once. */
  uint64_t watches = atomic_load(&chaos.watch_count), watched = 0;
  for (uint64_t i = 0; i < watches; i++) {
    unsigned calls = atomic_load(&chaos.marks[i].calls);
    if (calls == UINT_MAX)
      continue; /* qreg_watch refused it */
    watched++;
    if (calls != 1)
      fail_msg("seed 0x%" PRIx64 ": watch %" PRIu64 " called %u times", seed, i, calls);
  }

  /* Nothing of ours on the server, no descriptor left open. */
  int left = pg_admin_wait_sessions(pg_admin(), CHAOS_APP, NULL, 0, PG_GONE_MS);
  size_t fds_after = test_count_open_fds();
  if (fds_after != fds_before || getenv("QREG_CHAOS_FDS") != NULL)
    print_open_fds("after");

  uint64_t calls = 0, reopens = 0, by_code[16] = {0};
  for (unsigned i = 0; i < CHAOS_THREADS; i++) {
    calls += workers[i].calls;
    reopens += workers[i].reopens;
    for (int c = 0; c < 16; c++)
      by_code[c] += workers[i].by_code[c];
  }
  print_message("chaos: %" PRIu64 " ops in %.1f s (%.0f/s); restart %u (at %.1f s, op %" PRIu64
                "); %" PRIu64 " backends killed in %" PRIu64 " rounds\n",
                calls, elapsed, (double)calls / elapsed, restarts, restart_at_s, restart_at_ops,
                killer.kills, killer.attempts);
  print_message("chaos: %" PRIu64 " registries (%" PRIu64 " reopens); connections opened %" PRIu64
                ", closed %" PRIu64 ", %" PRIu64 " connect failures; %" PRIu64
                " driver violations\n",
                chaos.registries, reopens, chaos.opened, chaos.closed, chaos.connect_failures,
                chaos.violations);
  if (chaos.connect_error[0] != '\0')
    print_message("chaos: first connection error seen: %s\n", chaos.connect_error);
  print_message("chaos: %" PRIu64 " watched queries settled once each: succeeded %" PRIu64
                ", failed %" PRIu64 ", canceled %" PRIu64 ", timeout %" PRIu64 "\n",
                watched, (uint64_t)atomic_load(&chaos.settled_by_status[QREG_SUCCEEDED]),
                (uint64_t)atomic_load(&chaos.settled_by_status[QREG_FAILED]),
                (uint64_t)atomic_load(&chaos.settled_by_status[QREG_CANCELED]),
                (uint64_t)atomic_load(&chaos.settled_by_status[QREG_TIMEOUT]));
  print_message("chaos: codes ok %" PRIu64 ", not found %" PRIu64 ", closed %" PRIu64
                ", full %" PRIu64 ", not ready %" PRIu64 ", no result %" PRIu64
                ", timed out %" PRIu64 "; open descriptors %zu before, %zu after; %d sessions "
                "of ours left\n",
                by_code[0], by_code[-QREG_ENOTFOUND], by_code[-QREG_ECLOSED], by_code[-QREG_EFULL],
                by_code[-QREG_ENOTREADY], by_code[-QREG_ENORESULT], by_code[-QREG_ETIMEDOUT],
                fds_before, fds_after, left);

  if (left != 0)
    fail_msg("seed 0x%" PRIx64 ": %d session(s) of " CHAOS_APP " left on the server", seed, left);
  assert_int_equal(chaos.opened, chaos.closed);
  assert_int_equal(chaos.violations, 0);
  assert_int_equal(fds_after, fds_before);
  assert_int_equal(restarts, 1);
  /* The run did what it is for. */
  assert_true(killer.kills > 0);
  assert_true(watched > 0);
  assert_true(atomic_load(&chaos.settled_by_status[QREG_SUCCEEDED]) > 0);
  assert_true(chaos.opened > 0);
  if (chaos.max_seconds == 0)
    assert_true(calls >= chaos.max_ops);

  free(chaos.marks);
  pthread_mutex_destroy(&chaos.ids_lock);
  pthread_cond_destroy(&chaos.slot_idle);
  pthread_mutex_destroy(&chaos.slot_lock);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {cmocka_unit_test(chaos_run)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
