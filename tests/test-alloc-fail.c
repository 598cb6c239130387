/*
 * tests/test-alloc-fail.c - out of memory at every allocation qreg makes.
 *
 * This program is linked against a copy of libqreg.a in which every call to
 * an allocating C library function (malloc, calloc, realloc, strdup,
 * strndup, asprintf, vasprintf, open_memstream) is renamed to one of the
 * qreg_failing_* functions below (objcopy --redefine-sym; see
 * CMakeLists.txt). Only qreg's own objects are rewritten: libuv, libpq,
 * SQLite, cmocka and the tests' support code (the scripted driver, the
 * PostgreSQL fixture) allocate as usual.
 *
 * Each scenario - open, execute (rows, an error, a cancel, a timeout, a
 * catalog query, a short TTL and a prune), wait, watch, snapshot, fetch,
 * list, stats, close - runs once to count the allocations it makes, then
 * once for every N from 1 to that count with the Nth allocation failing.
 * Every run must end clean: each call returns 0 or a documented error
 * (QREG_ENOMEM among them), nothing hangs, every watch is called exactly
 * once, a query that says it succeeded has all its rows (or says
 * truncated), qreg_close returns 0 with opened == closed and no driver
 * contract violation, and (PostgreSQL) the server shows no session of ours.
 * Leaks are LeakSanitizer's to find (make asan) or valgrind's.
 *
 * Threads make the allocation order vary a little from run to run: the
 * count is that of one run, and a sweep index past the end of a run simply
 * fails nothing. The summary says how many runs actually had a failure
 * injected.
 *
 * Run without arguments: the scripted driver and SQLite (ctest
 * test-alloc-fail). With "pg": PostgreSQL on a private server
 * (test-pg-alloc-fail). QREG_ALLOC_FAIL_ONLY=N runs only sweep index N, to
 * replay one failure (QREG_ALLOC_FAIL_TRACE=1 also prints where that
 * allocation is made).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

/* --- the failing allocator ------------------------------------------------ */

/* armed: count qreg's allocations; fail_at: the one to fail (0: none). */
static atomic_bool alloc_armed;
static atomic_long alloc_count;
static atomic_long alloc_fail_at;
static atomic_long alloc_failures; /* failures injected in this run */
static bool alloc_trace;           /* QREG_ALLOC_FAIL_TRACE: print where */

static bool alloc_should_fail(void) {
  if (!atomic_load(&alloc_armed))
    return false;
  long n = atomic_fetch_add(&alloc_count, 1) + 1;
  if (n != atomic_load(&alloc_fail_at))
    return false;
  atomic_fetch_add(&alloc_failures, 1);
  if (alloc_trace) {
    void *frames[16];
    int depth = backtrace(frames, 16);
    fprintf(stderr, "allocation %ld fails here:\n", n);
    backtrace_symbols_fd(frames, depth, 2);
  }
  errno = ENOMEM;
  return true;
}

/* The replacements, called by qreg's objects only (renamed symbols). */
void *qreg_failing_malloc(size_t size);
void *qreg_failing_calloc(size_t count, size_t size);
void *qreg_failing_realloc(void *ptr, size_t size);
char *qreg_failing_strdup(const char *text);
char *qreg_failing_strndup(const char *text, size_t max);
int qreg_failing_vasprintf(char **out, const char *fmt, va_list ap);
int qreg_failing_asprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
FILE *qreg_failing_open_memstream(char **buf, size_t *size);

void *qreg_failing_malloc(size_t size) {
  return alloc_should_fail() ? NULL : malloc(size);
}

void *qreg_failing_calloc(size_t count, size_t size) {
  return alloc_should_fail() ? NULL : calloc(count, size);
}

void *qreg_failing_realloc(void *ptr, size_t size) {
  return alloc_should_fail() ? NULL : realloc(ptr, size);
}

char *qreg_failing_strdup(const char *text) {
  return alloc_should_fail() ? NULL : strdup(text);
}

char *qreg_failing_strndup(const char *text, size_t max) {
  return alloc_should_fail() ? NULL : strndup(text, max);
}

int qreg_failing_vasprintf(char **out, const char *fmt, va_list ap) {
  if (alloc_should_fail()) {
    *out = NULL; /* as glibc leaves it undefined: make a misuse visible */
    return -1;
  }
  return vasprintf(out, fmt, ap);
}

int qreg_failing_asprintf(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = qreg_failing_vasprintf(out, fmt, ap);
  va_end(ap);
  return rc;
}

FILE *qreg_failing_open_memstream(char **buf, size_t *size) {
  return alloc_should_fail() ? NULL : open_memstream(buf, size);
}

static void alloc_arm(long fail_at) {
  atomic_store(&alloc_count, 0);
  atomic_store(&alloc_failures, 0);
  atomic_store(&alloc_fail_at, fail_at);
  atomic_store(&alloc_armed, true);
}

static long alloc_disarm(void) {
  atomic_store(&alloc_armed, false);
  return atomic_load(&alloc_count);
}

/* --- one run of a scenario ------------------------------------------------- */

/* What a scenario runs: its database and SQL. */
typedef struct scenario {
  const char *name;
  const char *url;
  const char *app;      /* PostgreSQL: our application_name; else NULL */
  const char *rows_sql; /* exactly rows_expected rows */
  uint64_t rows_expected;
  const char *big_sql;       /* BIG_ROWS rows of some 200 bytes: the result
                          grows chunk by chunk */
  const char *error_sql;     /* fails in the database */
  const char *endless_sql;   /* runs until stopped */
  const char *catalog_table; /* a table to describe */
} scenario_t;

/* The first thing that went wrong in a run. */
typedef struct run {
  const scenario_t *scenario;
  long index; /* sweep index, 0 for the counting run */
  char failure[512];
  atomic_int watch_calls;
  int watches;
} run_t;

static void run_fail(run_t *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_fail(run_t *run, const char *fmt, ...) {
  if (run->failure[0] != '\0')
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(run->failure, sizeof run->failure, fmt, ap);
  va_end(ap);
}

/* A call's code must be 0 or one of the allowed ones (ENOMEM always is). */
static bool code_ok(run_t *run, const char *what, int rc, int also1, int also2) {
  if (rc >= 0 || rc == QREG_ENOMEM || rc == also1 || rc == also2)
    return rc >= 0;
  run_fail(run, "%s returned %s (%s)", what, qreg_strerror(rc), qreg_last_error());
  return false;
}

static void count_watch(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  (void)reg;
  (void)id;
  (void)rc;
  (void)status;
  run_t *run = arg;
  atomic_fetch_add(&run->watch_calls, 1);
}

#define BIG_ROWS 300

/* Bound on waits: a query that does not settle by then is a hang. */
#define RUN_WAIT_MS 10000u

/* A query with a TTL this short may be pruned by the loop's timer at any
   moment once it has settled: QREG_ENOTFOUND is then a right answer. */
#define RUN_BRIEF_TTL_MS 1

static bool is_brief(const qreg_options_t *options) {
  return options != NULL && options->ttl_ms == RUN_BRIEF_TTL_MS;
}

/* Executes sql (options may be NULL); false when the call failed cleanly. */
static bool run_execute(run_t *run, qreg_t *reg, const char *sql, const qreg_options_t *options,
                        qreg_id_t *id) {
  int rc = qreg_execute(reg, sql, options, id);
  if (!code_ok(run, "qreg_execute", rc, 0, 0))
    return false;
  rc = qreg_watch(reg, id->str, count_watch, run);
  if (code_ok(run, "qreg_watch", rc, is_brief(options) ? QREG_ENOTFOUND : 0, 0))
    run->watches++;
  return true;
}

/* Waits (bounded) for the query to settle; returns its status. */
static qreg_status_t run_wait_gone_ok(run_t *run, qreg_t *reg, const qreg_id_t *id, bool gone_ok) {
  qreg_status_t status = QREG_PENDING;
  int rc = qreg_wait(reg, id->str, RUN_WAIT_MS, &status);
  if (rc == QREG_ENOTFOUND && gone_ok)
    return QREG_SUCCEEDED; /* pruned: whatever it was, it settled */
  if (rc == QREG_ETIMEDOUT)
    run_fail(run, "query %s still %s after %u ms: a hang", id->str, qreg_status_name(status),
             RUN_WAIT_MS);
  else if (rc != 0)
    run_fail(run, "qreg_wait returned %s (%s)", qreg_strerror(rc), qreg_last_error());
  else if (!qreg_status_is_terminal(status))
    run_fail(run, "qreg_wait returned 0 with status %s", qreg_status_name(status));
  return status;
}

static qreg_status_t run_wait(run_t *run, qreg_t *reg, const qreg_id_t *id) {
  return run_wait_gone_ok(run, reg, id, false);
}

/* A snapshot must agree with the status the query settled with. */
static void run_snapshot(run_t *run, qreg_t *reg, const qreg_id_t *id, qreg_status_t status,
                         uint64_t rows_expected) {
  qreg_snapshot_t *s = NULL;
  if (!code_ok(run, "qreg_snapshot", qreg_snapshot(reg, id->str, &s), 0, 0))
    return;
  if (s->status != status)
    run_fail(run, "snapshot status %s, settled %s", qreg_status_name(s->status),
             qreg_status_name(status));
  if (s->status == QREG_SUCCEEDED && rows_expected != UINT64_MAX && s->row_count != rows_expected &&
      !s->truncated)
    run_fail(run, "succeeded with %" PRIu64 " of %" PRIu64 " rows and not truncated", s->row_count,
             rows_expected);
  if (s->status == QREG_SUCCEEDED && s->has_error)
    run_fail(run, "succeeded with an error: %s", s->error.message);
  qreg_snapshot_free(s);
}

/* Fetches the whole result and a page of it. */
static void run_fetch(run_t *run, qreg_t *reg, const qreg_id_t *id, qreg_status_t status) {
  qreg_page_t *page = NULL;
  int rc = qreg_fetch(reg, id->str, 0, 0, &page);
  if (status != QREG_SUCCEEDED) {
    if (rc != QREG_ENORESULT)
      run_fail(run, "fetch of a %s query returned %s", qreg_status_name(status), qreg_strerror(rc));
  } else if (code_ok(run, "qreg_fetch", rc, 0, 0)) {
    if (page->offset + page->row_count != page->total_rows)
      run_fail(run, "fetch of everything returned rows [%" PRIu64 ", %" PRIu64 ") of %" PRIu64,
               page->offset, page->offset + page->row_count, page->total_rows);
  }
  qreg_page_free(page);
  page = NULL;
  if (status == QREG_SUCCEEDED)
    code_ok(run, "qreg_fetch (page)", qreg_fetch(reg, id->str, 1, 2, &page), QREG_ERANGE, 0);
  qreg_page_free(page);
}

static void run_list(run_t *run, qreg_t *reg) {
  qreg_list_t *list = NULL;
  qreg_list_filter_t filter = {.limit = 3};
  if (code_ok(run, "qreg_list", qreg_list(reg, &filter, &list), 0, 0) && list->next_cursor) {
    filter.cursor = list->next_cursor;
    qreg_list_t *more = NULL;
    code_ok(run, "qreg_list (cursor)", qreg_list(reg, &filter, &more), 0, 0);
    qreg_list_free(more);
  }
  qreg_list_free(list);
}

/* Runs sql to its end and looks at it every way. Without a failure
   injected (the counting run) a query with rows must succeed with all of
   them: the scenario does what it says. */
static void run_query(run_t *run, qreg_t *reg, const char *sql, uint64_t rows_expected) {
  qreg_id_t id;
  if (!run_execute(run, reg, sql, NULL, &id))
    return;
  qreg_status_t status = run_wait(run, reg, &id);
  if (run->index == 0 && rows_expected != UINT64_MAX) {
    qreg_snapshot_t *s = NULL;
    if (qreg_snapshot(reg, id.str, &s) == 0 &&
        (s->status != QREG_SUCCEEDED || s->row_count != rows_expected || s->truncated))
      run_fail(run, "%s: %s with %" PRIu64 " rows%s (%s), expected %" PRIu64 " rows", sql,
               qreg_status_name(s->status), s->row_count, s->truncated ? ", truncated" : "",
               s->error.message ? s->error.message : "", rows_expected);
    qreg_snapshot_free(s);
  }
  run_snapshot(run, reg, &id, status, rows_expected);
  run_fetch(run, reg, &id, status);
}

static void run_scenario(run_t *run) {
  const scenario_t *sc = run->scenario;
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = sc->url;
  config.max_connections = 2;
  config.idle_timeout_ms = 50;
  if (sc->app != NULL)
    config.application_name = sc->app;
  qreg_t *reg = NULL;
  if (!code_ok(run, "qreg_open", qreg_open(&config, &reg), 0, 0))
    return;

  /* Rows, an error, a result looked at every way. */
  run_query(run, reg, sc->rows_sql, sc->rows_expected);
  run_query(run, reg, sc->big_sql, BIG_ROWS);
  run_query(run, reg, sc->error_sql, UINT64_MAX);
  run_list(run, reg);

  /* A running query canceled, one timed out. */
  qreg_id_t endless;
  if (run_execute(run, reg, sc->endless_sql, NULL, &endless)) {
    test_sleep_ms(20);
    qreg_status_t status = QREG_PENDING;
    if (code_ok(run, "qreg_cancel", qreg_cancel(reg, endless.str, &status), 0, 0) &&
        !qreg_status_is_terminal(status))
      run_fail(run, "qreg_cancel returned 0 with status %s", qreg_status_name(status));
    run_snapshot(run, reg, &endless, status, UINT64_MAX);
  }
  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = 30;
  qreg_id_t timed;
  if (run_execute(run, reg, sc->endless_sql, &options, &timed))
    run_wait(run, reg, &timed);

  /* A catalog query. */
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
  request.table = sc->catalog_table;
  qreg_id_t described;
  if (sc->catalog_table != NULL &&
      code_ok(run, "qreg_catalog", qreg_catalog(reg, &request, NULL, &described), 0, 0)) {
    qreg_status_t status = run_wait(run, reg, &described);
    run_fetch(run, reg, &described, status);
  }

  /* A short TTL, then a prune; a query left running for close. */
  options.timeout_ms = 0;
  options.ttl_ms = RUN_BRIEF_TTL_MS;
  qreg_id_t brief;
  if (run_execute(run, reg, sc->rows_sql, &options, &brief)) {
    run_wait_gone_ok(run, reg, &brief, true);
    test_sleep_ms(2);
    int rc = qreg_prune_expired(reg);
    code_ok(run, "qreg_prune_expired", rc, 0, 0);
  }
  qreg_id_t left_running;
  run_execute(run, reg, sc->endless_sql, NULL, &left_running);

  qreg_stats_t stats = QREG_STATS_INIT;
  code_ok(run, "qreg_stats", qreg_stats(reg, &stats), 0, 0);
  int rc = qreg_close(reg);
  if (rc != 0)
    run_fail(run, "qreg_close returned %s (%s)", qreg_strerror(rc), qreg_last_error());
  stats = (qreg_stats_t)QREG_STATS_INIT;
  if (qreg_stats(reg, &stats) != 0) {
    run_fail(run, "qreg_stats after close failed");
  } else {
    if (stats.connections_opened != stats.connections_closed)
      run_fail(run, "after close: opened %" PRIu64 " != closed %" PRIu64, stats.connections_opened,
               stats.connections_closed);
    if (stats.connections_in_use || stats.connections_idle || stats.connections_opening)
      run_fail(run, "after close: %u in use, %u idle, %u opening", stats.connections_in_use,
               stats.connections_idle, stats.connections_opening);
    if (stats.driver_violations != 0)
      run_fail(run, "after close: %" PRIu64 " driver violations", stats.driver_violations);
    if (stats.watches != 0)
      run_fail(run, "after close: %" PRIu64 " watches never called", stats.watches);
  }
  qreg_destroy(reg);
  if (atomic_load(&run->watch_calls) != run->watches)
    run_fail(run, "%d watches registered, %d callbacks made", run->watches,
             atomic_load(&run->watch_calls));
}

/* After a run, unarmed: what the outside world says. */
static void check_outside(run_t *run) {
  const scenario_t *sc = run->scenario;
  if (sc->app != NULL) {
    int left = pg_admin_wait_sessions(pg_admin(), sc->app, NULL, 0, PG_GONE_MS);
    if (left != 0)
      run_fail(run, "%d session(s) of %s left on the server", left, sc->app);
  }
  if (strncmp(sc->url, "script:", 7) == 0) {
    scripted_counters_t c;
    scripted_counters_get(&c);
    if (c.violations != 0)
      run_fail(run, "scripted driver: %s", scripted_violation_message());
    if (c.opened != c.closed)
      run_fail(run, "scripted driver: opened %" PRIu64 " != closed %" PRIu64, c.opened, c.closed);
  }
}

static long one_run(const scenario_t *sc, long index, long fail_at, char *failure, size_t size) {
  if (strncmp(sc->url, "script:", 7) == 0)
    test_driver_setup(); /* resets the driver's counters */
  run_t run = {.scenario = sc, .index = index};
  alloc_arm(fail_at);
  run_scenario(&run);
  long count = alloc_disarm();
  check_outside(&run);
  snprintf(failure, size, "%s", run.failure);
  return count;
}

/* Counts the scenario's allocations, then fails each in turn. */
static void sweep(const scenario_t *sc) {
  char failure[512];
  long count = one_run(sc, 0, 0, failure, sizeof failure);
  if (failure[0] != '\0')
    fail_msg("%s, no failure injected: %s", sc->name, failure);
  assert_true(count > 0);
  long first = 1, last = count;
  const char *only = getenv("QREG_ALLOC_FAIL_ONLY");
  if (only != NULL && only[0] != '\0') {
    first = last = strtol(only, NULL, 10);
    alloc_trace = getenv("QREG_ALLOC_FAIL_TRACE") != NULL;
  }
  long injected = 0;
  for (long n = first; n <= last; n++) {
    one_run(sc, n, n, failure, sizeof failure);
    if (atomic_load(&alloc_failures) > 0)
      injected++;
    if (failure[0] != '\0')
      fail_msg("%s, allocation %ld of %ld failing (QREG_ALLOC_FAIL_ONLY=%ld replays): %s", sc->name,
               n, count, n, failure);
  }
  print_message("%s: %ld allocations counted; swept %ld..%ld, a failure injected in %ld runs\n",
                sc->name, count, first, last, injected);
  assert_true(injected > 0);
}

/* --- scenarios ------------------------------------------------------------ */

static void scripted(void **state) {
  (void)state;
  scenario_t sc = {
      .name = "scripted",
      .url = "script:",
      .rows_sql = "rows=7;cols=3",
      .rows_expected = 7,
      .big_sql = "rows=300;cols=2;width=200",
      .error_sql = "rows=4;fail=row:2",
      .endless_sql = "hang",
  };
  sweep(&sc);
}

static void sqlite(void **state) {
  (void)state;
  char dir[] = "/tmp/qreg-alloc-fail-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64], url[80];
  snprintf(path, sizeof path, "%s/alloc.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.allow_writes = true;
  qreg_t *setup = NULL;
  assert_int_equal(qreg_open(&config, &setup), 0);
  qreg_options_t writes;
  qreg_options_init(&writes);
  writes.allow_writes = true;
  const char *statements[] = {
      "CREATE TABLE t (x INTEGER PRIMARY KEY, name TEXT, data BLOB)",
      "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
      "WHERE x < 9) SELECT x, 'name ' || x, randomblob(x) FROM c",
  };
  for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
    qreg_id_t id = test_execute(setup, statements[i], &writes);
    assert_int_equal(test_wait(setup, &id), QREG_SUCCEEDED);
  }
  assert_int_equal(qreg_close(setup), 0);
  qreg_destroy(setup);

  scenario_t sc = {
      .name = "sqlite",
      .url = url,
      .rows_sql = "SELECT x, name, data, x * 1.5, NULL FROM t",
      .rows_expected = 9,
      .big_sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) "
                 "SELECT x, printf('%0200d', x) FROM c",
      .error_sql = "SELECT * FROM missing_table",
      .endless_sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                     "SELECT count(*) FROM c",
      .catalog_table = "t",
  };
  sweep(&sc);

  unlink(path);
  char side[80];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
  rmdir(dir);
}

static void postgres(void **state) {
  (void)state;
  assert_int_equal(pg_admin_exec(pg_admin(), "CREATE TABLE IF NOT EXISTS alloc_t "
                                             "(x int PRIMARY KEY, name text, data bytea, "
                                             "doc jsonb, at timestamptz)"),
                   0);
  assert_int_equal(pg_admin_exec(pg_admin(), "INSERT INTO alloc_t SELECT x, 'name ' || x, "
                                             "decode(md5(x::text), 'hex'), "
                                             "jsonb_build_object('x', x), now() "
                                             "FROM generate_series(1, 9) x "
                                             "ON CONFLICT DO NOTHING"),
                   0);
  scenario_t sc = {
      .name = "postgres",
      .url = pg_fixture_reader_conninfo(), /* read-only: an ordinary role */
      .app = "qreg_t_alloc_fail",
      .rows_sql = "SELECT x, name, data, doc, at, x * 1.5 AS f, NULL AS n FROM alloc_t",
      .rows_expected = 9,
      .big_sql = "SELECT n, repeat('x', 200) FROM generate_series(1, 300) n",
      .error_sql = "SELECT 1 / (x - 5) FROM alloc_t",
      .endless_sql = "SELECT pg_sleep(30)",
      .catalog_table = "alloc_t",
  };
  sweep(&sc);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "pg") == 0) {
    int rc = pg_fixture_start();
    if (rc != 0)
      return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(postgres)};
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scripted),
      cmocka_unit_test(sqlite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
