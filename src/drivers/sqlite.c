/*
 * src/drivers/sqlite.c - the embedded SQLite driver (qreg_driver_sqlite).
 *
 * Owns, per registry, the database path and a connection serial counter
 * (struct sqlite_state) and, per connection, one sqlite3 handle (struct
 * qreg_driver_conn). Every SQLite call that can touch the disk - opening,
 * preparing, stepping, closing (a WAL checkpoint) - runs on a worker through
 * qreg_loop_work(); the loop thread only starts work, reads its outcome in the
 * done callback and calls sqlite3_interrupt(), which SQLite allows from any
 * thread while the connection is open.
 *
 * URLs:
 *   sqlite:PATH     PATH is a file name, relative to the process's working
 *                   directory when not absolute.
 *   sqlite://PATH   the same; the two slashes are dropped, so
 *                   sqlite:///var/db/x.db names /var/db/x.db.
 *   sqlite:PATH?busy_timeout_ms=100&cache_size_kib=8192
 *                   options (sqlite_options below), also settable through
 *                   the registry's driver_options, which win.
 * The scheme is case-insensitive. PATH ends at the first '?': a path with a
 * '?' in it cannot be named (rename the file or link to it). PATH is
 * otherwise taken as written (no percent-decoding) and handed to SQLite as a
 * plain file name: "file:" URIs are not interpreted (their query parameters
 * could undo the read-only open).
 * ":memory:" (and an empty path, which SQLite would turn into a private
 * temporary database) is refused when the registry opens: every connection
 * would get its own empty database, gone when the idle pool closes it.
 *
 * Missing files: create() does not touch the disk. Connections are lazy, like
 * every qreg driver's, so a database file that is missing (or not a database)
 * surfaces as a failed query with error type "connection" and a message that
 * names the path and the reason ("cannot open database file '/x/y.db': No such
 * file or directory ..."); the file may also appear after the registry opened.
 *
 * Read-only: a registry without allow_writes opens every connection with
 * SQLITE_OPEN_READONLY. A writable registry opens them read-write (creating
 * the file) in WAL mode and sets PRAGMA query_only before each job, from
 * job->read_only; it is set before every job, not cached, because a statement
 * may itself change query_only.
 *
 * One statement per job: the SQL after the first statement must hold nothing
 * but white space, comments and semicolons.
 *
 * Locks: a statement waits up to busy_timeout_ms (5 s) for another
 * connection's lock, through our own busy handler rather than
 * sqlite3_busy_timeout(), so that a cancel also ends the wait.
 *
 * The catalog (catalog_sql, quote_identifier) is in sqlite_catalog.c.
 *
 * Cancel: cancel() sets the connection's cancel flag and calls
 * sqlite3_interrupt(). An interrupt that lands before stepping starts is
 * forgotten by SQLite, so the worker also checks the flag before preparing,
 * between rows, in a progress handler (every 1000 VM steps) and in the busy
 * handler (so a statement waiting for another process's lock stops at once).
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/util.h"
#include "drivers/driver.h"
#include "drivers/sqlite_catalog.h"
#include "drivers/sqlite_guard.h"

/* VM instructions between two looks at the cancel flag. */
#define SQLITE_DRIVER_PROGRESS_STEPS 1000

/* Per-registry state. Created by create() on the qreg_open() caller's thread,
   read by every connection, freed by destroy() after they are all closed. */
typedef struct sqlite_state {
  char *path;        /* owned: the file name given to SQLite */
  bool allow_writes; /* from the registry config */
  /* From the options (URL, then config), checked by create(). */
  unsigned busy_timeout_ms;     /* how long a statement waits for a lock */
  unsigned cache_size_kib;      /* page cache per connection */
  char journal_mode[16];        /* writable registries: one of journal_modes */
  qreg_loop_t *loop;            /* borrowed from the registry */
  _Atomic uint64_t next_serial; /* backend ids "sqlite-<serial>", from 1 */
} sqlite_state_t;

/* What the worker of an execute() decided, read by its done callback. */
typedef struct sqlite_job_end {
  qreg_job_outcome_t outcome;
  bool reusable;
} sqlite_job_end_t;

/*
 * One connection. At most one operation (connect, execute or close) is in
 * flight on it at a time - the core's contract - so one qreg_work_t serves
 * them all in turn.
 */
struct qreg_driver_conn {
  sqlite_state_t *state; /* borrowed */
  /* The handle. Opened by the connect worker, then used only by the worker of
     the job in flight (or by sqlite3_interrupt() from the loop thread while a
     job is in flight); closed by the close worker. */
  sqlite3 *db;
  bool writable;                     /* opened read-write */
  char backend_id[32];               /* "sqlite-<serial>" once connected */
  qreg_work_t work;                  /* the operation in flight */
  qreg_conn_request_t *request;      /* connect: owned by the core */
  qreg_driver_error_t connect_error; /* connect: filled by the worker */
  qreg_job_t *job;                   /* execute: in flight from execute()
                                            until its done callback (loop) */
  atomic_bool cancel_requested;      /* set by cancel(), read by the worker */
  sqlite_guard_t guard;              /* the read-only authorizer's state
                                        (sqlite_guard.h); the job's worker */
  sqlite_job_end_t job_end;          /* written by the worker, read in done */
  void (*closed)(void *arg);         /* close: the core's callback */
  void *closed_arg;
};

#define CONN_OF(work_ptr)                                                                          \
  ((qreg_driver_conn_t *)((char *)(work_ptr)-offsetof(qreg_driver_conn_t, work)))

/* --- result code names ------------------------------------------------- */

typedef struct code_name {
  int code;
  const char *name;
} code_name_t;

/* Extended codes users are likely to act on, then every primary code. */
static const code_name_t code_names[] = {
    {SQLITE_CONSTRAINT_CHECK, "SQLITE_CONSTRAINT_CHECK"},
    {SQLITE_CONSTRAINT_FOREIGNKEY, "SQLITE_CONSTRAINT_FOREIGNKEY"},
    {SQLITE_CONSTRAINT_NOTNULL, "SQLITE_CONSTRAINT_NOTNULL"},
    {SQLITE_CONSTRAINT_PRIMARYKEY, "SQLITE_CONSTRAINT_PRIMARYKEY"},
    {SQLITE_CONSTRAINT_UNIQUE, "SQLITE_CONSTRAINT_UNIQUE"},
    {SQLITE_CONSTRAINT_TRIGGER, "SQLITE_CONSTRAINT_TRIGGER"},
    {SQLITE_CONSTRAINT_DATATYPE, "SQLITE_CONSTRAINT_DATATYPE"},
    {SQLITE_READONLY_DBMOVED, "SQLITE_READONLY_DBMOVED"},
    {SQLITE_READONLY_DIRECTORY, "SQLITE_READONLY_DIRECTORY"},
    {SQLITE_READONLY_CANTINIT, "SQLITE_READONLY_CANTINIT"},
    {SQLITE_READONLY_RECOVERY, "SQLITE_READONLY_RECOVERY"},
    {SQLITE_BUSY_RECOVERY, "SQLITE_BUSY_RECOVERY"},
    {SQLITE_BUSY_SNAPSHOT, "SQLITE_BUSY_SNAPSHOT"},
    {SQLITE_BUSY_TIMEOUT, "SQLITE_BUSY_TIMEOUT"},
    {SQLITE_CANTOPEN_ISDIR, "SQLITE_CANTOPEN_ISDIR"},
    {SQLITE_CANTOPEN_FULLPATH, "SQLITE_CANTOPEN_FULLPATH"},
    {SQLITE_ERROR_MISSING_COLLSEQ, "SQLITE_ERROR_MISSING_COLLSEQ"},
    {SQLITE_OK, "SQLITE_OK"},
    {SQLITE_ERROR, "SQLITE_ERROR"},
    {SQLITE_INTERNAL, "SQLITE_INTERNAL"},
    {SQLITE_PERM, "SQLITE_PERM"},
    {SQLITE_ABORT, "SQLITE_ABORT"},
    {SQLITE_BUSY, "SQLITE_BUSY"},
    {SQLITE_LOCKED, "SQLITE_LOCKED"},
    {SQLITE_NOMEM, "SQLITE_NOMEM"},
    {SQLITE_READONLY, "SQLITE_READONLY"},
    {SQLITE_INTERRUPT, "SQLITE_INTERRUPT"},
    {SQLITE_IOERR, "SQLITE_IOERR"},
    {SQLITE_CORRUPT, "SQLITE_CORRUPT"},
    {SQLITE_NOTFOUND, "SQLITE_NOTFOUND"},
    {SQLITE_FULL, "SQLITE_FULL"},
    {SQLITE_CANTOPEN, "SQLITE_CANTOPEN"},
    {SQLITE_PROTOCOL, "SQLITE_PROTOCOL"},
    {SQLITE_EMPTY, "SQLITE_EMPTY"},
    {SQLITE_SCHEMA, "SQLITE_SCHEMA"},
    {SQLITE_TOOBIG, "SQLITE_TOOBIG"},
    {SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT"},
    {SQLITE_MISMATCH, "SQLITE_MISMATCH"},
    {SQLITE_MISUSE, "SQLITE_MISUSE"},
    {SQLITE_NOLFS, "SQLITE_NOLFS"},
    {SQLITE_AUTH, "SQLITE_AUTH"},
    {SQLITE_FORMAT, "SQLITE_FORMAT"},
    {SQLITE_RANGE, "SQLITE_RANGE"},
    {SQLITE_NOTADB, "SQLITE_NOTADB"},
    {SQLITE_NOTICE, "SQLITE_NOTICE"},
    {SQLITE_WARNING, "SQLITE_WARNING"},
};

/* The name of an (extended) result code: the extended name when it is in the
   table, else the name of its primary code. Never NULL. */
static const char *result_code_name(int code) {
  size_t count = sizeof code_names / sizeof code_names[0];
  for (size_t i = 0; i < count; i++) {
    if (code_names[i].code == code)
      return code_names[i].name;
  }
  for (size_t i = 0; i < count; i++) {
    if (code_names[i].code == (code & 0xff))
      return code_names[i].name;
  }
  return "SQLITE_ERROR";
}

/* Fills error from the connection's last failure: type "database", code the
   result code name, message sqlite3_errmsg(), and where in the SQL it failed
   when SQLite knows (its offset counts from the text last prepared, which
   starts at base in the job's SQL). Worker thread. */
static void error_from_db(qreg_driver_error_t *error, sqlite3 *db, size_t base) {
  qreg_driver_error_set(error, "database", result_code_name(sqlite3_extended_errcode(db)), "%s",
                        sqlite3_errmsg(db));
  int offset = sqlite3_error_offset(db);
  if (offset >= 0) {
    char detail[64];
    snprintf(detail, sizeof detail, "at byte offset %zu of the SQL", base + (size_t)offset);
    qreg_driver_error_set_detail(error, detail);
  }
}

/* --- create / destroy ---------------------------------------------------- */

/* The options a user may set (sqlite:PATH?name=value or driver_options). */
static const qreg_driver_option_t sqlite_options[] = {
    {.name = "busy_timeout_ms",
     .type = QREG_OPTION_DURATION,
     .default_value = "5000",
     .doc = "how long a statement waits for another connection's lock before SQLITE_BUSY"},
    {.name = "cache_size_kib",
     .type = QREG_OPTION_INT,
     .default_value = "2000",
     .doc = "page cache of each connection, in KiB"},
    {.name = "journal_mode",
     .type = QREG_OPTION_TEXT,
     .default_value = "wal",
     .doc = "journal of a registry that allows writes: wal, delete, truncate or persist"},
    {.name = NULL},
};

/* The journal modes journal_mode accepts (not off or memory: a crash could
   then corrupt the file). */
static const char *const journal_modes[] = {"wal", "delete", "truncate", "persist"};

static const char *const sqlite_schemes[] = {"sqlite", NULL};

/* Where PATH starts in "sqlite:PATH" / "sqlite://PATH" (the scheme in any
   case), or NULL when url is not an sqlite URL. */
static const char *url_path(const char *url) {
  if (strncasecmp(url, "sqlite:", 7) != 0)
    return NULL;
  const char *path = url + 7;
  return strncmp(path, "//", 2) == 0 ? path + 2 : path;
}

/* Nothing in an SQLite URL is secret. */
static char *sqlite_redact_url(const char *url) {
  return strdup(url);
}

/* Sets *message to a copy of text (NULL on ENOMEM) and returns code. */
static int create_fail(char **message, int code, const char *text) {
  *message = strdup(text);
  return code;
}

/* Reads the options into state; 0 or a QREG_E* code with *message. */
static int apply_options(sqlite_state_t *state, const char *query,
                         const qreg_driver_config_t *config, char **message) {
  qreg_driver_settings_t settings;
  int rc = qreg_driver_settings_init(&settings, &qreg_driver_sqlite);
  if (rc != 0)
    *message = strdup("sqlite: out of memory");
  if (rc == 0)
    rc = qreg_driver_settings_from_query(&settings, query, false, message);
  if (rc == 0)
    rc = qreg_driver_settings_from_config(&settings, config, message);
  if (rc == 0) {
    uint64_t busy = 0, cache = 0;
    (void)qreg_driver_parse_uint(qreg_driver_settings_get(&settings, "busy_timeout_ms"), &busy);
    (void)qreg_driver_parse_uint(qreg_driver_settings_get(&settings, "cache_size_kib"), &cache);
    state->busy_timeout_ms = (unsigned)busy;
    state->cache_size_kib = (unsigned)cache;
    const char *mode = qreg_driver_settings_get(&settings, "journal_mode");
    rc = QREG_EINVAL;
    for (size_t i = 0; i < sizeof journal_modes / sizeof journal_modes[0]; i++) {
      if (strcasecmp(mode, journal_modes[i]) == 0) {
        snprintf(state->journal_mode, sizeof state->journal_mode, "%s", journal_modes[i]);
        rc = 0;
      }
    }
    if (rc != 0)
      create_fail(message, rc, "sqlite: journal_mode: expected wal, delete, truncate or persist");
  }
  qreg_driver_settings_free(&settings);
  return rc;
}

/* Parses "sqlite:PATH[?options]" / "sqlite://PATH[?options]". Does not touch
   the disk (see the file header). Caller's thread. */
static int sqlite_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  *state_out = NULL;
  *message = NULL;
  const char *path = url_path(config->url);
  if (path == NULL)
    return create_fail(message, QREG_EURL, "sqlite: URL must start with \"sqlite:\"");
  size_t path_len = strcspn(path, "?");
  const char *query = path[path_len] == '?' ? path + path_len + 1 : NULL;
  if (path_len == 0)
    return create_fail(message, QREG_EURL,
                       "sqlite: URL has an empty path (expected sqlite:PATH, "
                       "e.g. sqlite:/var/lib/app.db)");
  if (path_len == 8 && strncmp(path, ":memory:", 8) == 0)
    return create_fail(message, QREG_EURL,
                       "sqlite: \":memory:\" is not supported: every "
                       "connection would get its own empty database; give a "
                       "file path");

  sqlite_state_t *state = calloc(1, sizeof *state);
  if (state == NULL || (state->path = strndup(path, path_len)) == NULL) {
    free(state);
    return create_fail(message, QREG_ENOMEM, "sqlite: out of memory");
  }
  int rc = apply_options(state, query, config, message);
  if (rc != 0) {
    free(state->path);
    free(state);
    return rc;
  }
  state->allow_writes = config->allow_writes;
  state->loop = config->loop;
  atomic_init(&state->next_serial, 1);
  *state_out = state;
  return 0;
}

static void sqlite_destroy(void *state_ptr) {
  sqlite_state_t *state = state_ptr;
  if (state == NULL)
    return;
  free(state->path);
  free(state);
}

/* --- hooks SQLite calls on the worker ------------------------------------ */

/* Progress handler: a non-zero answer makes the running statement fail with
   SQLITE_INTERRUPT. Catches a cancel whose sqlite3_interrupt() landed before
   stepping began (SQLite clears the interrupt when no statement is active). */
static int on_progress(void *arg) {
  qreg_driver_conn_t *conn = arg;
  return atomic_load(&conn->cancel_requested) ? 1 : 0;
}

/* Busy handler: waits for another connection's lock like
   sqlite3_busy_timeout() would, but gives up at once when cancel was asked,
   so a cancel never waits out the busy timeout. count is the number of
   earlier calls for this lock. */
static int on_busy(void *arg, int count) {
  qreg_driver_conn_t *conn = arg;
  if (atomic_load(&conn->cancel_requested))
    return 0;
  /* 1 ms steps at first (locks are usually short), then 10 ms. */
  long waited_ms = count < 10 ? count : 10 + (long)(count - 10) * 10;
  if (waited_ms >= (long)conn->state->busy_timeout_ms)
    return 0;
  struct timespec delay = {0, (count < 10 ? 1 : 10) * 1000000L};
  while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
  }
  return 1;
}

/* --- connect ------------------------------------------------------------- */

/* Opens and sets up conn->db; on failure fills conn->connect_error and leaves
   conn->db NULL. Worker thread. */
static void connect_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work);
  const sqlite_state_t *state = conn->state;
  /* NOMUTEX: one thread at a time uses the handle (the core never runs two
     operations on a connection at once); sqlite3_interrupt() needs no mutex. */
  int flags = SQLITE_OPEN_NOMUTEX |
              (conn->writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(state->path, &db, flags, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(db, 1);
    /* Read-only holds inside SQLite: the allow-list (sqlite_guard.c) for
       every read-only job, no writes to the schema or shadow tables even
       through a trusted-looking view, no extension loading. */
    (void)sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    (void)sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    (void)sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    sqlite3_set_authorizer(db, qreg__sqlite_authorize, &conn->guard);
    sqlite3_busy_handler(db, on_busy, conn);
    sqlite3_progress_handler(db, SQLITE_DRIVER_PROGRESS_STEPS, on_progress, conn);
    /* WAL (the default journal_mode) lets readers run beside the writer.
       Not fatal when it cannot be set (a file system without shared
       memory): the database still works. journal_mode is one of a fixed
       list and the cache size a number, both checked by create(). */
    char pragma[64];
    if (conn->writable) {
      snprintf(pragma, sizeof pragma, "PRAGMA journal_mode=%s", state->journal_mode);
      (void)sqlite3_exec(db, pragma, NULL, NULL, NULL);
    }
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%u", state->cache_size_kib);
    (void)sqlite3_exec(db, pragma, NULL, NULL, NULL);
    /* Opening does not read the file: read the schema now, so a file that is
       not a database fails the connect, not the first query on it. */
    rc = sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK) {
    conn->db = db;
    return;
  }

  int code = db ? sqlite3_extended_errcode(db) : rc;
  const char *reason = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int system_errno = db ? sqlite3_system_errno(db) : 0;
  if ((code & 0xff) == SQLITE_CANTOPEN && system_errno != 0) {
    /* "unable to open database file" alone does not say why. */
    qreg_driver_error_set(&conn->connect_error, "connection", result_code_name(code),
                          "cannot open database file '%s': %s%s", state->path,
                          strerror(system_errno),
                          conn->writable ? ""
                                         : "; the registry is read-only, so "
                                           "the file is not created");
  } else {
    qreg_driver_error_set(&conn->connect_error, "connection", result_code_name(code),
                          "cannot open database file '%s': %s", state->path, reason);
  }
  sqlite3_close_v2(db); /* NULL is a no-op */
}

/* Reports the connect outcome. Loop thread. */
static void connect_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work);
  qreg_conn_request_t *request = conn->request;
  conn->request = NULL;
  if (conn->db != NULL) {
    uint64_t serial = atomic_fetch_add(&conn->state->next_serial, 1);
    snprintf(conn->backend_id, sizeof conn->backend_id, "sqlite-%llu", (unsigned long long)serial);
    qreg_conn_request_done(request, conn, NULL);
    return;
  }
  /* Free the attempt before reporting: the core may connect again from
     inside qreg_conn_request_done(). */
  qreg_driver_error_t error = conn->connect_error;
  free(conn);
  qreg_conn_request_done(request, NULL, &error);
  qreg_driver_error_clear(&error);
}

static void sqlite_connect(void *state_ptr, qreg_conn_request_t *request) {
  sqlite_state_t *state = state_ptr;
  qreg_driver_conn_t *conn = calloc(1, sizeof *conn);
  if (conn == NULL) {
    qreg_driver_error_t error = {0};
    qreg_driver_error_set(&error, "connection", NULL, "sqlite: out of memory opening '%s'",
                          state->path);
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
    return;
  }
  conn->state = state;
  conn->writable = state->allow_writes;
  conn->request = request;
  atomic_init(&conn->cancel_requested, false);
  if (qreg_loop_work(state->loop, &conn->work, connect_work, connect_done) != 0) {
    free(conn);
    qreg_driver_error_t error = {0};
    qreg_driver_error_set(&error, "connection", NULL, "sqlite: the registry is closing");
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
  }
}

static bool sqlite_alive(qreg_driver_conn_t *conn) {
  (void)conn;
  return true; /* a file handle does not go stale like a socket */
}

/* --- execute ------------------------------------------------------------- */

/* Prepares the first statement of sql[0, len) that is not empty (empty ones
   are lone semicolons; comments are white space to SQLite). *stmt is NULL when
   there is none. *tail points after what was consumed, or on failure at the
   start of the statement that failed. Worker thread. */
static int prepare_next(sqlite3 *db, const char *sql, const char *end, sqlite3_stmt **stmt,
                        const char **tail) {
  *stmt = NULL;
  *tail = sql;
  while (*tail < end) {
    const char *next = NULL;
    int rc = sqlite3_prepare_v3(db, *tail, (int)(end - *tail), 0, stmt, &next);
    if (rc != SQLITE_OK)
      return rc;
    if (next == NULL || next <= *tail) { /* nothing consumed: stop */
      if (*stmt == NULL)
        *tail = end;
      break;
    }
    *tail = next;
    if (*stmt != NULL)
      break;
  }
  return SQLITE_OK;
}

/* SQLite's subtype for JSON text (ext/json: JSON_SUBTYPE). */
#define SQLITE_JSON_SUBTYPE 74 /* 'J' */

/* Whether the text in the column is JSON: a JSON function's value, or a
   column declared JSON. */
static bool is_json(sqlite3_stmt *stmt, int column) {
  if (sqlite3_value_subtype(sqlite3_column_value(stmt, column)) == SQLITE_JSON_SUBTYPE)
    return true;
  const char *declared = sqlite3_column_decltype(stmt, column);
  return declared != NULL && sqlite3_stricmp(declared, "JSON") == 0;
}

/* Stores one cell. Returns a qreg_result_put_* code. Worker thread. */
static int put_cell(qreg_result_t *result, sqlite3_stmt *stmt, int column) {
  switch (sqlite3_column_type(stmt, column)) {
  case SQLITE_INTEGER:
    return qreg_result_put_int(result, sqlite3_column_int64(stmt, column));
  case SQLITE_FLOAT:
    return qreg_result_put_float(result, sqlite3_column_double(stmt, column));
  case SQLITE_TEXT: {
    const char *text = (const char *)sqlite3_column_text(stmt, column);
    size_t len = (size_t)sqlite3_column_bytes(stmt, column);
    if (text == NULL) /* out of memory converting */
      return QREG_ENOMEM;
    /* SQLite stores whatever bytes it is given as TEXT: the result store
       replaces what is not UTF-8 with U+FFFD. JSON is what json(),
       json_object() and the like return (subtype 'J') and what a column
       declared JSON holds; the encoder embeds it when it is valid. */
    if (is_json(stmt, column))
      return qreg_result_put_json(result, text, len);
    return qreg_result_put_text(result, text, len);
  }
  case SQLITE_BLOB: {
    const void *blob = sqlite3_column_blob(stmt, column);
    size_t len = (size_t)sqlite3_column_bytes(stmt, column);
    return qreg_result_put_bytes(result, blob ? blob : "", blob ? len : 0);
  }
  default:
    return qreg_result_put_null(result);
  }
}

/* Fills the job's error for a result store failure. */
static void error_from_result(qreg_driver_error_t *error, int code) {
  qreg_driver_error_set(error, "internal", NULL, "storing the result failed: %s",
                        qreg_strerror(code));
}

/* Whether the worker should stop because cancel() asked. */
static bool cancel_asked(qreg_driver_conn_t *conn) {
  return atomic_load(&conn->cancel_requested);
}

/* Runs the job's statement, storing columns and rows; returns the outcome.
   Worker thread. */
static qreg_job_outcome_t run_statement(qreg_driver_conn_t *conn, qreg_job_t *job) {
  sqlite3 *db = conn->db;
  conn->guard.on = false; /* the driver's own statements pass */
  if (cancel_asked(conn))
    return QREG_JOB_CANCELED;
  if (job->sql_len >= INT_MAX) {
    qreg_driver_error_set(&job->error, "database", "SQLITE_TOOBIG",
                          "the SQL is too long for SQLite");
    return QREG_JOB_ERROR;
  }
  if (conn->writable) {
    int rc = sqlite3_exec(db, job->read_only ? "PRAGMA query_only = 1" : "PRAGMA query_only = 0",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      if (cancel_asked(conn))
        return QREG_JOB_CANCELED;
      error_from_db(&job->error, db, 0);
      return QREG_JOB_ERROR;
    }
  }

  const char *end = job->sql + job->sql_len;
  sqlite3_stmt *stmt = NULL;
  const char *tail = NULL;
  conn->guard.on = job->read_only;
  conn->guard.denied[0] = '\0';
  conn->guard.read_pragma = false;
  int rc = prepare_next(db, job->sql, end, &stmt, &tail);
  if (rc != SQLITE_OK) {
    conn->guard.on = false;
    if (cancel_asked(conn))
      return QREG_JOB_CANCELED;
    if ((rc & 0xff) == SQLITE_AUTH && conn->guard.denied[0] != '\0') {
      qreg_driver_error_set(&job->error, "database", "QREG_READ_ONLY",
                            "read-only: %s is not allowed in a read-only query",
                            conn->guard.denied);
      qreg_driver_error_set_hint(&job->error, "qreg allows reads only: SELECT, WITH, and the "
                                              "PRAGMAs that only read");
      return QREG_JOB_ERROR;
    }
    error_from_db(&job->error, db, (size_t)(tail - job->sql));
    return QREG_JOB_ERROR;
  }
  if (stmt != NULL && job->read_only && !conn->guard.read_pragma && !sqlite3_stmt_readonly(stmt)) {
    /* What the authorizer has no action code for (VACUUM INTO writes a
       copy of the database anywhere). */
    conn->guard.on = false;
    sqlite3_finalize(stmt);
    qreg_driver_error_set(&job->error, "database", "QREG_READ_ONLY",
                          "read-only: this statement could write, and the query is read-only");
    return QREG_JOB_ERROR;
  }
  if (stmt == NULL) {
    qreg_driver_error_set(&job->error, "database", "QREG_EMPTY_STATEMENT",
                          "the SQL holds no statement (only comments or "
                          "semicolons)");
    return QREG_JOB_ERROR;
  }
  size_t first_end = (size_t)(tail - job->sql);
  sqlite3_stmt *more = NULL;
  const char *rest_tail = NULL;
  /* A tail that fails to prepare still holds something: a second statement
     with a syntax error is a second statement. */
  bool more_found = prepare_next(db, tail, end, &more, &rest_tail) != SQLITE_OK || more != NULL;
  /* Checked once, when prepared: what SQLite prepares again while stepping
     (after a schema change) is the same statement. */
  conn->guard.on = false;
  if (more_found) {
    sqlite3_finalize(more);
    sqlite3_finalize(stmt);
    qreg_driver_error_set(&job->error, "database", "QREG_MULTIPLE_STATEMENTS",
                          "only one statement per query: found more after "
                          "offset %zu",
                          first_end);
    return QREG_JOB_ERROR;
  }

  qreg_job_outcome_t outcome = QREG_JOB_OK;
  int columns = sqlite3_column_count(stmt);
  int put = qreg_result_set_columns(job->result, (size_t)columns);
  for (int i = 0; put == 0 && i < columns; i++) {
    const char *name = sqlite3_column_name(stmt, i);
    const char *type = sqlite3_column_decltype(stmt, i);
    if (name == NULL) { /* only on out of memory */
      put = QREG_ENOMEM;
      break;
    }
    put = qreg_result_set_column(job->result, (size_t)i, name, type ? type : "");
  }
  if (put != 0) {
    error_from_result(&job->error, put);
    sqlite3_finalize(stmt);
    return QREG_JOB_ERROR;
  }

  for (;;) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
      break;
    if (rc != SQLITE_ROW) {
      if (cancel_asked(conn)) {
        outcome = QREG_JOB_CANCELED;
      } else {
        error_from_db(&job->error, db, 0);
        outcome = QREG_JOB_ERROR;
      }
      break;
    }
    if (cancel_asked(conn)) {
      outcome = QREG_JOB_CANCELED;
      break;
    }
    put = qreg_result_row_begin(job->result);
    for (int i = 0; put == 0 && i < columns; i++)
      put = put_cell(job->result, stmt, i);
    if (put == 0)
      put = qreg_result_row_end(job->result);
    if (put == QREG_RESULT_FULL)
      break; /* the store marked the result truncated; the rest is not read */
    if (put != 0) {
      error_from_result(&job->error, put);
      outcome = QREG_JOB_ERROR;
      break;
    }
  }
  sqlite3_finalize(stmt);
  return outcome;
}

/* Runs the job. Worker thread. */
static void execute_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work);
  qreg_job_outcome_t outcome = run_statement(conn, conn->job);
  /* A transaction left open (BEGIN without COMMIT) or a cancel (whose
     interrupt may still be pending inside SQLite) makes the handle unfit for
     another query: the core then closes it, which rolls back. */
  conn->job_end.outcome = outcome;
  conn->job_end.reusable =
      outcome == QREG_JOB_OK && !cancel_asked(conn) && sqlite3_get_autocommit(conn->db) != 0;
}

/* Reports the job's end: the worker has returned, so nothing is in flight
   on the connection any more (driver.h, contract 3). Loop thread. */
static void execute_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work);
  qreg_job_t *job = conn->job;
  conn->job = NULL; /* from here cancel() is a no-op */
  job->conn_reusable = conn->job_end.reusable;
  /* Last: the core may execute again on, or close, this connection from
     inside qreg_job_complete(). */
  qreg_job_complete(job, conn->job_end.outcome);
}

static void sqlite_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  conn->job = job;
  qreg_job_set_backend_id(job, conn->backend_id);
  job->conn_reusable = false;
  atomic_store(&conn->cancel_requested, false);
  if (qreg_loop_work(conn->state->loop, &conn->work, execute_work, execute_done) != 0) {
    conn->job = NULL;
    qreg_driver_error_set(&job->error, "internal", NULL, "sqlite: the registry is closing");
    qreg_job_complete(job, QREG_JOB_ERROR);
  }
}

/* Asks the job in flight to stop. Loop thread. The handle is open: the core
   closes a connection only after its job completed, and completion (which
   clears conn->job) also runs on the loop thread. */
static void sqlite_cancel(qreg_driver_conn_t *conn, qreg_job_t *job) {
  if (conn->job == NULL || conn->job != job)
    return; /* already reported, or not this connection's job */
  atomic_store(&conn->cancel_requested, true);
  sqlite3_interrupt(conn->db);
}

/* --- close --------------------------------------------------------------- */

/* Closes the handle (may checkpoint the WAL: disk I/O). Worker thread, or
   the loop thread when the loop no longer takes work. */
static void close_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work);
  /* Every statement was finalized by its job, so this closes for real. */
  sqlite3_close_v2(conn->db);
  conn->db = NULL;
}

/* Frees the connection and tells the core. Loop thread. */
static void close_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work);
  void (*closed)(void *) = conn->closed;
  void *arg = conn->closed_arg;
  free(conn);
  closed(arg);
}

static void sqlite_close(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg) {
  conn->closed = closed;
  conn->closed_arg = arg;
  if (qreg_loop_work(conn->state->loop, &conn->work, close_work, close_done) != 0) {
    /* The loop no longer runs work (shutting down). Closing here blocks the
       loop for one close, which is better than leaking the handle. */
    close_work(&conn->work);
    close_done(&conn->work);
  }
}

const qreg_driver_t qreg_driver_sqlite = {
    .name = "sqlite",
    .schemes = sqlite_schemes,
    .url_forms = "sqlite:PATH",
    .matches = NULL,
    .redact_url = sqlite_redact_url,
    .options = sqlite_options,
    .limits = {0, 0}, /* SQLite has no practical limit on names */
    .create = sqlite_create,
    .destroy = sqlite_destroy,
    .connect = sqlite_connect,
    .alive = sqlite_alive,
    .execute = sqlite_execute,
    .cancel = sqlite_cancel,
    .close = sqlite_close,
    .catalog_sql = qreg__sqlite_catalog_sql,
    .quote_identifier = qreg_driver_quote_double,
};
