/*
 * watch_uv.c - qreg used from a program's own libuv loop, with no thread
 * waiting for a query: a copy-and-adapt example.
 *
 *   watch_uv [DB_URL [SQL...]]
 *
 * Opens a registry on DB_URL (default: a new, empty SQLite file in /tmp),
 * submits the SQL statements (default: four small ones, one of which fails)
 * and registers a qreg_watch() callback for each. The callback runs on
 * qreg's own loop thread, so it does the least it can: it queues the query
 * and wakes this program's loop with uv_async_send(). On this program's loop,
 * on_settled() then reads each settled query (qreg_snapshot, qreg_fetch) and
 * prints it; when every query is done it closes the registry and the loop
 * ends. Exits 0 when every query was reported, 1 otherwise.
 *
 * Build against an installed qreg:
 *   cc watch_uv.c $(pkg-config --cflags --libs qreg libuv) -o watch_uv
 */
#include <qreg.h>
#include <uv.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRINTED_ROWS 10 /* rows printed per result; the rest are counted */

typedef struct app app_t;

/* One submitted statement. Owned by main() (the array lives until exit); rc
   and status are written by the watch callback on qreg's loop thread and read
   on this program's loop only after the query has passed through app->lock. */
typedef struct query {
  app_t *app;
  unsigned number; /* 1, 2, ... in submission order */
  const char *sql;
  qreg_id_t id;
  int rc; /* of the watch: 0, or QREG_ECLOSED when the registry closed first */
  qreg_status_t status;
  struct query *next_settled; /* link in app->settled_head, under app->lock */
} query_t;

struct app {
  uv_loop_t loop;          /* this program's loop: qreg never runs on it */
  uv_async_t settled_wake; /* woken by watch callbacks, runs on_settled() */
  /* The queue of settled queries, from qreg's loop thread to this loop: the
     watch callback pushes, on_settled() takes the whole list. A mutex held
     for a few instructions, so the callback never blocks qreg's loop. */
  uv_mutex_t lock;
  query_t *settled_head;
  query_t **settled_tail;
  qreg_t *reg;
  size_t query_count;
  size_t done; /* queries reported (or never watched); this loop only */
  int errors;  /* calls that failed; this loop only */
};

/* The qreg_watch() callback. On qreg's loop thread, never under the
   registry's lock, exactly once per successful qreg_watch(). It may make any
   non-blocking call, but every other query waits while it runs: it only
   records the outcome, queues the query and wakes this program's loop. */
static void on_watch(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  query_t *query = arg;
  app_t *app = query->app;
  (void)reg;
  (void)id;
  query->rc = rc;
  query->status = status;
  query->next_settled = NULL;
  uv_mutex_lock(&app->lock);
  *app->settled_tail = query;
  app->settled_tail = &query->next_settled;
  uv_mutex_unlock(&app->lock);
  /* Thread-safe; several sends before the loop wakes make one call. */
  uv_async_send(&app->settled_wake);
}

/* Prints "CALL: ERROR: DETAIL". The detail (qreg_last_error) is copied
   first: it holds only until the next qreg_* call on this thread. */
static void print_failure(FILE *out, const char *call, int rc) {
  char detail[512];
  snprintf(detail, sizeof detail, "%s", qreg_last_error());
  fprintf(out, "%s: %s%s%s\n", call, qreg_strerror(rc), detail[0] ? ": " : "", detail);
}

/* One value as qreg writes it everywhere (qreg_value_text: the library's
   one encoder, docs/values.md), into a small buffer, grown when it is cut. */
static void print_value(const qreg_value_t *value) {
  char small[64];
  size_t len = qreg_value_text(value, small, sizeof small);
  if (len < sizeof small) {
    fputs(small, stdout);
    return;
  }
  char *big = malloc(len + 1);
  if (big == NULL)
    return;
  qreg_value_text(value, big, len + 1);
  fputs(big, stdout);
  free(big);
}

/* Prints the first rows of a succeeded query. */
static void print_rows(app_t *app, const query_t *query) {
  qreg_page_t *page = NULL;
  int rc = qreg_fetch(app->reg, query->id.str, 0, PRINTED_ROWS, &page);
  if (rc < 0) {
    print_failure(stdout, "  qreg_fetch", rc);
    app->errors++;
    return;
  }
  printf(" ");
  for (size_t c = 0; c < page->column_count; c++)
    printf(" %s", page->columns[c].name);
  printf("\n");
  for (uint64_t r = 0; r < page->row_count; r++) {
    printf(" ");
    for (size_t c = 0; c < page->column_count; c++) {
      printf(" ");
      print_value(&page->values[r * page->column_count + c]);
    }
    printf("\n");
  }
  if (page->has_more)
    printf("  ... %" PRIu64 " rows in all\n", page->total_rows);
  qreg_page_free(page);
}

/* Prints one settled query: its status, then its rows or its error. */
static void report(app_t *app, const query_t *query) {
  printf("query %u: %s", query->number, qreg_status_name(query->status));
  if (query->rc == QREG_ECLOSED)
    printf(" (the registry closed first)");
  qreg_snapshot_t *snapshot = NULL;
  int rc = qreg_snapshot(app->reg, query->id.str, &snapshot);
  if (rc == QREG_ENOTFOUND) { /* pruned (its TTL passed) before we looked */
    printf(", no longer held\n");
    return;
  }
  if (rc < 0) {
    printf("\n");
    print_failure(stdout, "  qreg_snapshot", rc);
    app->errors++;
    return;
  }
  printf(" in %" PRId64 " ms: %s\n", snapshot->elapsed_ms, snapshot->sql);
  if (snapshot->has_error)
    printf("  error: %s: %s\n", snapshot->error.type, snapshot->error.message);
  else if (snapshot->status == QREG_SUCCEEDED)
    print_rows(app, query);
  qreg_snapshot_free(snapshot);
}

/* Called once every query is done: closes the registry and this loop's last
   handle, so uv_run() returns. qreg_close() waits for qreg's own loop to stop;
   that is fine here, on this loop's last pass, and never allowed inside a
   watch callback. */
static void finish(app_t *app) {
  qreg_stats_t stats = QREG_STATS_INIT;
  int rc = qreg_close(app->reg);
  if (rc < 0) {
    print_failure(stderr, "qreg_close", rc);
    app->errors++;
  }
  if (qreg_stats(app->reg, &stats) == 0)
    printf("%zu of %zu queries settled; registry closed (connections opened %" PRIu64
           ", closed %" PRIu64 ")\n",
           app->done, app->query_count, stats.connections_opened, stats.connections_closed);
  qreg_destroy(app->reg);
  app->reg = NULL;
  uv_close((uv_handle_t *)&app->settled_wake, NULL);
}

/* The uv_async_t callback, on this program's loop: reports every query queued
   since the last call. */
static void on_settled(uv_async_t *handle) {
  app_t *app = handle->data;
  uv_mutex_lock(&app->lock);
  query_t *query = app->settled_head;
  app->settled_head = NULL;
  app->settled_tail = &app->settled_head;
  uv_mutex_unlock(&app->lock);

  for (; query != NULL; query = query->next_settled) {
    report(app, query);
    app->done++;
  }
  if (app->done == app->query_count && app->reg != NULL)
    finish(app);
}

static const char *const default_sql[] = {
    "SELECT sqlite_version() AS version",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
    "SELECT i, i * i AS square FROM n",
    "SELECT count(*) AS tables FROM sqlite_schema WHERE type = 'table'",
    "SELECT * FROM no_such_table",
};

int main(int argc, char **argv) {
  char temp_path[] = "/tmp/qreg-watch-uv-XXXXXX";
  char temp_url[sizeof temp_path + 16];
  const char *url = argc > 1 ? argv[1] : NULL;
  if (url == NULL) {
    int fd = mkstemp(temp_path); /* an empty file is an empty SQLite database */
    if (fd < 0) {
      perror("mkstemp");
      return 1;
    }
    close(fd);
    snprintf(temp_url, sizeof temp_url, "sqlite:%s", temp_path);
    url = temp_url;
  }
  const char *const *sql = argc > 2 ? (const char *const *)argv + 2 : default_sql;
  size_t query_count = argc > 2 ? (size_t)argc - 2 : sizeof default_sql / sizeof *default_sql;

  printf("qreg %s (built against %s)\n", qreg_version(), QREG_VERSION_STRING);

  app_t app = {.query_count = query_count};
  app.settled_tail = &app.settled_head;
  query_t *queries = calloc(query_count, sizeof *queries);
  if (queries == NULL || uv_loop_init(&app.loop) != 0 || uv_mutex_init(&app.lock) != 0) {
    fprintf(stderr, "watch_uv: out of memory\n");
    return 1;
  }
  uv_async_init(&app.loop, &app.settled_wake, on_settled);
  app.settled_wake.data = &app;

  /* struct_size is set by qreg_config_init(): a program built against this
     header keeps working with a later library whose config has grown. */
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  int rc = qreg_open(&config, &app.reg);
  if (rc < 0) {
    print_failure(stderr, "qreg_open", rc);
    app.errors++;
    app.done = app.query_count; /* nothing will be submitted */
    uv_close((uv_handle_t *)&app.settled_wake, NULL);
  }

  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = 30000;
  for (size_t i = 0; app.reg != NULL && i < query_count; i++) {
    query_t *query = &queries[i];
    query->app = &app;
    query->number = (unsigned)i + 1;
    query->sql = sql[i];
    rc = qreg_execute(app.reg, query->sql, &options, &query->id);
    if (rc == 0)
      rc = qreg_watch(app.reg, query->id.str, on_watch, query);
    if (rc < 0) { /* then on_watch will never be called for it */
      printf("query %u: ", query->number);
      print_failure(stdout, "not submitted", rc);
      app.errors++;
      app.done++;
    }
  }
  if (app.reg != NULL && app.done == app.query_count) /* nothing to wait for */
    finish(&app);

  uv_run(&app.loop, UV_RUN_DEFAULT);

  uv_loop_close(&app.loop);
  uv_mutex_destroy(&app.lock);
  free(queries);
  if (url == temp_url)
    unlink(temp_path);
  return app.errors == 0 ? 0 : 1;
}
