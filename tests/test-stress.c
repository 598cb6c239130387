/*
 * tests/test-stress.c - four threads call everything at random for a few
 * seconds, then the registry closes at a random moment while they are still
 * calling. Every call must answer a documented code (and only QREG_ECLOSED
 * once close has returned); afterwards opened == closed.
 *
 * It runs twice. Against the scripted driver: scripts mixing rows, sleeps,
 * hangs, ignored, slow and failing cancels, failures at every point,
 * byte-heavy results; injected connect failures and slow closes; short TTLs,
 * timeouts, an idle timeout and a small max_records so pruning, timing out,
 * pooling and eviction all happen; the driver must see no contract
 * violation. Against a real SQLite file: fast and endless statements,
 * errors, refused writes and large results under the same calls; the
 * process's open descriptors must return to their count before the registry
 * opened.
 *
 * The seed is fixed (QREG_STRESS_SEED in the environment overrides it) and
 * printed, so a failing run can be replayed as far as threads allow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/test_util.h"

#define STRESS_THREADS 4
#define STRESS_IDS 64         /* shared ring of recent ids */
#define STRESS_MIN_MS 1500    /* close no earlier than this ... */
#define STRESS_MAX_MS 3000    /* ... and no later */
#define STRESS_AFTER_CLOSE 30 /* calls each thread makes after close */
#define STRESS_DEFAULT_SEED 0x51e55eedu

struct worker;

/* Writes the SQL and options of one random query. */
typedef void (*make_query_fn)(struct worker *w, char *sql, size_t size, qreg_options_t *options);

typedef struct shared {
  qreg_t *reg;
  make_query_fn make_query;
  bool scripted;      /* the scripted driver: faults may be injected */
  atomic_bool closed; /* set once qreg_close has returned */
  pthread_mutex_t ids_lock;
  qreg_id_t ids[STRESS_IDS]; /* recent ids of every thread, under ids_lock */
  unsigned id_count;
} shared_t;

typedef struct worker {
  shared_t *shared;
  unsigned index;
  uint64_t seed;               /* this thread's generator state */
  uint64_t calls, by_code[16]; /* by -code, for the summary */
  char failure[256];           /* the first thing that went wrong */
} worker_t;

static void worker_fail(worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void worker_fail(worker_t *w, const char *fmt, ...) {
  if (w->failure[0] != '\0')
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->failure, sizeof w->failure, fmt, ap);
  va_end(ap);
}

static unsigned pick(worker_t *w, unsigned n) {
  return (unsigned)(test_rand(&w->seed) % n);
}

static void remember(shared_t *s, const qreg_id_t *id) {
  pthread_mutex_lock(&s->ids_lock);
  s->ids[s->id_count++ % STRESS_IDS] = *id;
  pthread_mutex_unlock(&s->ids_lock);
}

/* A recent id of any thread, or sometimes one that never existed. */
static qreg_id_t some_id(worker_t *w) {
  qreg_id_t id = {.str = "123e4567-e89b-42d3-a456-426614174000"};
  shared_t *s = w->shared;
  pthread_mutex_lock(&s->ids_lock);
  if (s->id_count > 0 && pick(w, 10) != 0) {
    unsigned held = s->id_count < STRESS_IDS ? s->id_count : STRESS_IDS;
    id = s->ids[pick(w, held)];
  }
  pthread_mutex_unlock(&s->ids_lock);
  return id;
}

/* Options every kind of query may get: short TTLs (pruning while running),
   small row caps (truncation), short timeouts (on top of any it has). */
static void random_options(worker_t *w, qreg_options_t *options) {
  if (pick(w, 3) == 0)
    options->ttl_ms = 10 + pick(w, 300);
  if (pick(w, 4) == 0)
    options->max_rows = 1 + pick(w, 10);
  if (options->timeout_ms == 0 && pick(w, 5) == 0)
    options->timeout_ms = 1 + pick(w, 100);
}

/* A script and options for one query. Hangs always get a timeout. */
static void scripted_query(worker_t *w, char *sql, size_t size, qreg_options_t *options) {
  qreg_options_init(options);
  unsigned tag = w->index * 1000 + pick(w, 1000);
  switch (pick(w, 14)) {
  case 0:
    snprintf(sql, size, "rows=%u;cols=%u", pick(w, 50), 1 + pick(w, 4));
    break;
  case 1:
    snprintf(sql, size, "rows=%u;sleep=%u", pick(w, 20), pick(w, 50));
    break;
  case 2:
    snprintf(sql, size, "hang");
    options->timeout_ms = 20 + pick(w, 300);
    break;
  case 3:
    snprintf(sql, size, "sleep=%u;ignore_cancel;rows=2", pick(w, 80));
    break;
  case 4:
    snprintf(sql, size, "hang;cancel_sleep=%u", pick(w, 30));
    options->timeout_ms = 20 + pick(w, 200);
    break;
  case 5:
    snprintf(sql, size, "hang;cancel_fail");
    options->timeout_ms = 20 + pick(w, 200);
    break;
  case 6:
    snprintf(sql, size, "rows=3;fail=start");
    break;
  case 7:
    snprintf(sql, size, "rows=8;fail=row:%u;row_sleep=1", 1 + pick(w, 8));
    break;
  case 8:
    snprintf(sql, size, "rows=4;fail=finish;finish_sleep=%u", pick(w, 10));
    break;
  case 9:
    snprintf(sql, size, "fail=now");
    break;
  case 10:
    snprintf(sql, size, "rows=%u;cols=3;width=200", 50 + pick(w, 200));
    break;
  case 11:
    snprintf(sql, size, "rows=1;not_reusable");
    break;
  case 12:
    snprintf(sql, size, "rows=5;start_sleep=%u;row_sleep=1", pick(w, 20));
    break;
  default:
    snprintf(sql, size, "bogus words");
    break;
  }
  size_t len = strlen(sql);
  snprintf(sql + len, size - len, ";tag=%u", tag);
  random_options(w, options);
}

/* SQL for the real SQLite run, on table t(x) of STRESS_SQLITE_ROWS rows.
   Endless statements always get a timeout. */
#define STRESS_SQLITE_ROWS 2000
#define ENDLESS_SQL                                                                                \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

static void sqlite_query(worker_t *w, char *sql, size_t size, qreg_options_t *options) {
  qreg_options_init(options);
  switch (pick(w, 10)) {
  case 0:
  case 1:
    snprintf(sql, size, "SELECT x, x * 2.5, 'row ' || x FROM t WHERE x < %u", pick(w, 400));
    break;
  case 2:
    snprintf(sql, size, "SELECT x, randomblob(%u) FROM t LIMIT %u", 1 + pick(w, 400), pick(w, 300));
    break;
  case 3:
    snprintf(sql, size, "%s", ENDLESS_SQL);
    options->timeout_ms = 20 + pick(w, 300);
    break;
  case 4:
    snprintf(sql, size, "SELECT count(*) FROM t a, t b WHERE a.x < %u", 50 + pick(w, 400));
    break;
  case 5:
    snprintf(sql, size, "SELEC %u", pick(w, 9));
    break;
  case 6:
    snprintf(sql, size, "SELECT 1; SELECT %u", pick(w, 9));
    break;
  case 7:
    snprintf(sql, size, "INSERT INTO t VALUES (%u)", pick(w, 9));
    break;
  case 8:
    snprintf(sql, size, "SELECT * FROM missing_%u", pick(w, 9));
    break;
  default:
    snprintf(sql, size, "SELECT %u", pick(w, 1000));
    break;
  }
  random_options(w, options);
}

/* One random call; returns its code (counts of pruning become 0). */
static int random_call(worker_t *w, int *op_out) {
  qreg_t *reg = w->shared->reg;
  int op = (int)pick(w, 12);
  *op_out = op;
  int rc = 0;
  switch (op) {
  case 0:
  case 1:
  case 2: {
    char sql[160];
    qreg_options_t options;
    w->shared->make_query(w, sql, sizeof sql, &options);
    qreg_id_t id;
    rc = qreg_execute(reg, sql, &options, &id);
    if (rc == 0)
      remember(w->shared, &id);
    break;
  }
  case 3: {
    qreg_id_t id = some_id(w);
    qreg_status_t status = QREG_PENDING;
    rc = qreg_cancel(reg, id.str, &status);
    if (rc == 0 && !qreg_status_is_terminal(status))
      worker_fail(w, "cancel returned 0 with status %s", qreg_status_name(status));
    break;
  }
  case 4: {
    qreg_id_t id = some_id(w);
    qreg_status_t status = QREG_PENDING;
    rc = qreg_wait(reg, id.str, pick(w, 30), &status);
    if (rc == 0 && !qreg_status_is_terminal(status))
      worker_fail(w, "wait returned 0 with status %s", qreg_status_name(status));
    break;
  }
  case 5:
  case 6: {
    qreg_id_t id = some_id(w);
    qreg_snapshot_t *s = NULL;
    rc = qreg_snapshot(reg, id.str, &s);
    if (rc == 0) {
      if (qreg_status_is_terminal(s->status) && s->finished_ms == 0)
        worker_fail(w, "terminal snapshot without finished_ms");
      if (s->status == QREG_SUCCEEDED && s->has_error)
        worker_fail(w, "succeeded snapshot with an error");
      if ((s->status == QREG_FAILED || s->status == QREG_CANCELED || s->status == QREG_TIMEOUT) &&
          !s->has_error)
        worker_fail(w, "%s snapshot without an error", qreg_status_name(s->status));
      if (strcmp(s->id.str, id.str) != 0)
        worker_fail(w, "snapshot of %s has id %s", id.str, s->id.str);
    }
    qreg_snapshot_free(s);
    break;
  }
  case 7:
  case 8: {
    qreg_id_t id = some_id(w);
    qreg_page_t *page = NULL;
    rc = qreg_fetch(reg, id.str, pick(w, 4) == 0 ? pick(w, 300) : 0, pick(w, 20), &page);
    if (rc == 0 && page->offset + page->row_count > page->total_rows)
      worker_fail(w, "page past its total");
    qreg_page_free(page);
    break;
  }
  case 9: {
    qreg_list_filter_t filter = {.status_mask = pick(w, 2) ? 0 : 1u << pick(w, 6),
                                 .newest_first = pick(w, 2),
                                 .limit = pick(w, 20)};
    qreg_list_t *list = NULL;
    rc = qreg_list(reg, &filter, &list);
    qreg_list_free(list);
    break;
  }
  case 10:
    rc = qreg_prune_expired(reg);
    if (rc > 0)
      rc = 0;
    break;
  default: {
    qreg_stats_t stats = QREG_STATS_INIT;
    rc = qreg_stats(reg, &stats);
    if (rc == 0 && !atomic_load(&w->shared->closed)) {
      /* Counters are taken under one lock: they must add up. */
      if (stats.connections_closed > stats.connections_opened)
        worker_fail(w, "stats: closed %" PRIu64 " > opened %" PRIu64, stats.connections_closed,
                    stats.connections_opened);
    }
    /* And the occasional injected fault. */
    if (w->shared->scripted && pick(w, 20) == 0)
      scripted_fault_set(SCRIPTED_CONNECT, SCRIPTED_FAULT_FAIL, 1 + pick(w, 3), 1, 0);
    break;
  }
  }
  return rc;
}

static bool code_allowed(int op, int rc) {
  if (rc == 0 || rc == QREG_ECLOSED)
    return true;
  switch (op) {
  case 0:
  case 1:
  case 2:
    return rc == QREG_EFULL;
  case 3:
    return rc == QREG_ENOTFOUND;
  case 4:
    return rc == QREG_ENOTFOUND || rc == QREG_ETIMEDOUT;
  case 5:
  case 6:
    return rc == QREG_ENOTFOUND;
  case 7:
  case 8:
    return rc == QREG_ENOTFOUND || rc == QREG_ENOTREADY || rc == QREG_ENORESULT ||
           rc == QREG_ERANGE;
  default:
    return false;
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  unsigned after_close = 0;
  while (after_close < STRESS_AFTER_CLOSE && w->failure[0] == '\0') {
    bool was_closed = atomic_load(&w->shared->closed);
    int op;
    int rc = random_call(w, &op);
    w->calls++;
    if (rc <= 0 && -rc < 16)
      w->by_code[-rc]++;
    if (!code_allowed(op, rc))
      worker_fail(w, "op %d returned %s (%s)", op, qreg_strerror(rc), qreg_last_error());
    /* qreg_stats (op 11) keeps working after close; nothing else does. */
    if (was_closed && op != 11 && rc != QREG_ECLOSED)
      worker_fail(w, "op %d after close returned %s, expected %s", op, qreg_strerror(rc),
                  qreg_strerror(QREG_ECLOSED));
    if (was_closed)
      after_close++;
  }
  return NULL;
}

static uint64_t stress_seed(void) {
  uint64_t seed = STRESS_DEFAULT_SEED;
  const char *env = getenv("QREG_STRESS_SEED");
  if (env != NULL && env[0] != '\0')
    seed = strtoull(env, NULL, 0);
  print_message("stress seed 0x%" PRIx64 " (set QREG_STRESS_SEED to replay)\n", seed);
  return seed;
}

/* What both runs share: small limits so that every path is taken. */
static void stress_config(qreg_config_t *config, const char *url) {
  test_config(config);
  config->db_url = url;
  config->max_connections = 4;
  config->max_records = 150;
  config->max_result_bytes = (size_t)256 * 1024;
  config->default_ttl_ms = 400;
  config->default_timeout_ms = 2000;
  config->default_max_rows = 100;
  config->idle_timeout_ms = 40;
}

/* Runs the threads against reg, closes it at a random moment, joins them and
   checks what every call answered and that opened == closed. */
static void run_stress(qreg_t *reg, uint64_t seed, make_query_fn make_query, bool scripted) {
  shared_t shared = {.reg = reg, .make_query = make_query, .scripted = scripted};
  pthread_mutex_init(&shared.ids_lock, NULL);
  worker_t workers[STRESS_THREADS];
  pthread_t tids[STRESS_THREADS];
  for (unsigned i = 0; i < STRESS_THREADS; i++) {
    workers[i] = (worker_t){.shared = &shared, .index = i, .seed = seed * 31 + i + 1};
    assert_int_equal(pthread_create(&tids[i], NULL, worker_main, &workers[i]), 0);
  }
  uint64_t main_state = seed;
  unsigned close_at =
      STRESS_MIN_MS + (unsigned)(test_rand(&main_state) % (STRESS_MAX_MS - STRESS_MIN_MS));
  test_sleep_ms(close_at);
  qreg_stats_t before = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &before), 0);
  int rc = qreg_close(reg);
  atomic_store(&shared.closed, true);
  for (unsigned i = 0; i < STRESS_THREADS; i++)
    pthread_join(tids[i], NULL);
  pthread_mutex_destroy(&shared.ids_lock);
  if (rc != 0)
    fail_msg("seed 0x%" PRIx64 ": qreg_close returned %s", seed, qreg_strerror(rc));

  uint64_t calls = 0;
  for (unsigned i = 0; i < STRESS_THREADS; i++) {
    if (workers[i].failure[0] != '\0')
      fail_msg("seed 0x%" PRIx64 ", thread %u: %s", seed, i, workers[i].failure);
    calls += workers[i].calls;
  }
  qreg_stats_t after = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &after), 0);
  if (after.connections_opened != after.connections_closed)
    fail_msg("seed 0x%" PRIx64 ": after close, opened %" PRIu64 " != closed %" PRIu64, seed,
             after.connections_opened, after.connections_closed);
  print_message("stress: closed at %u ms; %" PRIu64 " calls; %" PRIu64
                " connections opened; %" PRIu64 " pruned, %" PRIu64 " evicted\n",
                close_at, calls, after.connections_opened, after.records_pruned,
                after.records_evicted);
  assert_true(after.connections_opened > 0);
}

static void stress_scripted(void **state) {
  (void)state;
  uint64_t seed = stress_seed();
  qreg_config_t config;
  stress_config(&config, "script:");
  qreg_t *reg = test_open(&config);
  scripted_fault_set(SCRIPTED_CLOSE, SCRIPTED_FAULT_STALL, 1, 0, 3);
  run_stress(reg, seed, scripted_query, true);
  scripted_counters_t c;
  scripted_counters_get(&c);
  if (c.violations != 0)
    fail_msg("seed 0x%" PRIx64 ": driver contract violation: %s", seed,
             scripted_violation_message());
  test_check_after_close(reg);
  print_message("stress (scripted): %" PRIu64 " executes, %" PRIu64
                " connect failures, max %" PRIu64 " live; outcomes ok %" PRIu64 " error %" PRIu64
                " canceled %" PRIu64 "\n",
                c.executes, c.connect_failures, c.live_max, c.outcomes[QREG_JOB_OK],
                c.outcomes[QREG_JOB_ERROR], c.outcomes[QREG_JOB_CANCELED]);
  assert_true(c.live_max <= config.max_connections);
  /* The run did exercise the paths it is meant to. */
  assert_true(c.executes > 0);
  assert_true(c.cancels > 0);
  qreg_destroy(reg);
}

/* The same against a real SQLite file: afterwards every descriptor the
   registry opened (database files, WAL, the loop's own) is closed. */
static void stress_sqlite(void **state) {
  (void)state;
  uint64_t seed = stress_seed();
  char dir[] = "/tmp/qreg-stress-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64], url[80];
  snprintf(path, sizeof path, "%s/stress.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);

  /* The table, written through qreg itself by a writable registry. */
  qreg_config_t config;
  stress_config(&config, url);
  config.allow_writes = true;
  qreg_t *setup = NULL;
  assert_int_equal(qreg_open(&config, &setup), 0);
  qreg_options_t writes;
  qreg_options_init(&writes);
  writes.allow_writes = true;
  const char *statements[] = {
      "CREATE TABLE t (x INTEGER)",
      "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
      "WHERE x < 2000) SELECT x FROM c",
  };
  for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
    qreg_id_t id;
    qreg_status_t status;
    assert_int_equal(qreg_execute(setup, statements[i], &writes, &id), 0);
    assert_int_equal(qreg_wait(setup, id.str, 30000, &status), 0);
    assert_int_equal(status, QREG_SUCCEEDED);
  }
  assert_int_equal(qreg_close(setup), 0);
  qreg_destroy(setup);

  size_t fds_before = test_count_open_fds();
  stress_config(&config, url); /* read-only, as a user's would be */
  qreg_t *reg = NULL;
  assert_int_equal(qreg_open(&config, &reg), 0);
  run_stress(reg, seed, sqlite_query, false);
  qreg_destroy(reg);
  size_t fds_after = test_count_open_fds();
  print_message("stress (sqlite): open descriptors %zu before, %zu after\n", fds_before, fds_after);
  assert_int_equal(fds_after, fds_before);

  unlink(path);
  char side[80];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stress_scripted),
      cmocka_unit_test(stress_sqlite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
