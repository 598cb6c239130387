/*
 * src/drivers/postgres.c - the PostgreSQL driver: the driver.h contract on
 * libpq, driven non-blocking on the registry's loop thread.
 *
 * Owns, per registry (pg_state_t): the parsed settings (connect timeout,
 * passwords to keep out of messages, host names to resolve) and the cache of
 * type names. Per connection (struct qreg_driver_conn): the PGconn, the
 * socket watch on it, the connect timer, the job running on it and the
 * cancel request in flight. Everything runs on the loop thread except two
 * blocking calls that run on a worker (qreg_loop_work): getaddrinfo() for
 * host names before libpq connects (libpq would resolve them on the loop),
 * and PQcancel(), which touches only the cancel fields.
 *
 * Connecting: PQconnectStartParams (the URL or conninfo expanded, PG*
 * variables honoured, application_name and client_encoding UTF8 on top) and
 * PQconnectPoll driven by the socket watch, under our own timer (libpq's
 * connect_timeout is not honoured by non-blocking connects). Then one query
 * sets the session defaults (SESSION_SQL: DateStyle ISO, TimeZone UTC, hex
 * bytea, exact floats, and on PostgreSQL 14+ client_connection_check_interval
 * so a backend notices an abandoned connection), and the first connection
 * of a registry loads the names of user and extension types (the result
 * store needs a column's type name before its first row).
 *
 * How one query runs. execute() writes one pipeline (libpq pipeline mode: a
 * single write, one Sync, no round trip between the parts):
 *
 *     BEGIN READ ONLY  (or BEGIN when writes are allowed)
 *     SELECT set_config('statement_timeout', ..., true)
 *                                        the backstop behind the core's timeout
 *     <the user's statement>             extended protocol: exactly one statement,
 *                                        so "COMMIT; DROP TABLE x" is refused
 *     ROLLBACK  (or COMMIT)
 *     read-only: DEALLOCATE ALL, SELECT pg_advisory_unlock_all()
 *     writes:    DISCARD ALL, SESSION_SQL
 *     Sync
 *     [type-name lookup, Sync]           appended only when a column's type is
 *                                        neither built in nor cached
 *
 * and reads the results back as they come, the user's rows in single-row mode
 * straight into the result store. Why a pooled connection is clean: the
 * statement runs inside our transaction. A READ ONLY one is rolled back,
 * which undoes every SET (the session defaults stay) and drops cursors WITH
 * HOLD and LISTEN (they exist only once committed); it cannot create
 * temporary objects or advance sequences; what it can leave behind -
 * prepared statements and session advisory locks - the two cleanup commands
 * remove. A committed transaction can leave anything: DISCARD ALL resets the
 * session, and the session defaults are set again. A connection is handed
 * back for reuse only when all of that succeeded, the transaction status is
 * idle and nothing else happened (no error, no truncation, no cancel);
 * otherwise the core closes it. READ ONLY guards against accidental writes;
 * it is not a security boundary (use a read-only role for that).
 *
 * Idle. A pooled connection keeps its read watch armed (no watch changes
 * per query): an idle connection has nothing to say, so a readable one
 * means the server ended the backend; it is marked and alive() says no.
 *
 * Stopping. When the result store is full (max_rows or the byte budget) or
 * the core asks to cancel, a cancel request goes to the server with PQcancel
 * on a worker while the loop keeps reading; the job completes once the
 * statement has ended (its error or its last row arrived; for a write job,
 * the COMMIT's answer too) and the worker has returned. The rest of the
 * pipeline is not read: such a connection is always closed. A cancel that
 * reaches the backend before it has read the statement is ignored by the
 * server, so while the statement runs the request is repeated. If the
 * cancel request fails, or the server goes away, the connection is abandoned
 * instead: the watch stops, the job completes, and the core closes the
 * connection (never reused). When the server goes away, the job's error is
 * the server's own last word when it sent one (57P01 "terminating connection
 * due to administrator command", or the WARNING an immediate shutdown
 * sends), else libpq's first message.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/util.h"
#include "drivers/driver.h"
#include "drivers/postgres_values.h"

/* libpq's connect_timeout is not honoured by PQconnectPoll: we time the
   connect ourselves, with the URL's connect_timeout when it has one. */
#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
/* statement_timeout is a backstop behind the core's own timeout, which should
   win: give the server this much longer. */
#define STATEMENT_TIMEOUT_MARGIN_MS 1000u
/* BEGIN, SETUP, USER, END, CLEANUP x 2, SYNC, TYPES, SYNC. */
#define MAX_STEPS 9
/* A cancel request that reaches the backend before it has read the
   statement is ignored by the server: while the statement still runs, the
   request is repeated this often, this many times, before the connection
   is abandoned instead. */
#define CANCEL_RETRY_MS 500u
#define CANCEL_ATTEMPTS 10u

/* A type name learned from the server. */
typedef struct type_name {
  Oid oid;
  char *name; /* owned */
} type_name_t;

typedef struct pg_state {
  qreg_loop_t *loop;
  const char *url;              /* the registry's; lives as long as the state */
  const char *application_name; /* the registry's */
  char *secrets[2];             /* owned: the URL's password and PGPASSWORD,
                                   removed from every message we pass on */
  uint64_t connect_timeout_ms;  /* 0: none */
  char *lookup_hosts;           /* owned: host names to resolve on a worker
                                   before libpq connects (it would resolve
                                   them on the loop, blocking); NULL: none */
  char *lookup_ports;           /* owned: the port list that goes with them */
  type_name_t *types;           /* owned, sorted by oid; loop thread only */
  size_t type_count, type_cap;
  bool types_loading, types_loaded; /* the prefetch of user type names */
} pg_state_t;

/* What one pipeline entry is, so each result is read in context. */
typedef enum step {
  STEP_BEGIN,
  STEP_SETUP,
  STEP_USER,
  STEP_END,
  STEP_CLEANUP,
  STEP_SYNC,
  STEP_TYPES,
} step_t;

struct qreg_driver_conn {
  pg_state_t *state;   /* the driver's; outlives every connection */
  PGconn *pg;          /* owned: PQfinish in close() or when connecting fails */
  qreg_poll_t *watch; /* owned: on watch_fd; closed before PQfinish and as soon
                          as libpq drops the socket */
  int watch_fd;
  int watch_events;
  char backend_id[24]; /* the backend pid, once connected */

  /* Connecting (request != NULL until it is reported). */
  qreg_conn_request_t *request;
  qreg_timer_t *connect_timer; /* owned while connecting */
  struct pg_lookup *lookup;    /* the host name lookup in flight; owned by
                                  its worker, which frees it when done */
  bool configuring;            /* connected, setting the session defaults */
  bool setup_ok;               /* the session defaults' query returned its row */
  bool prefetching;            /* connected, loading type names first */

  /* Idle (no job): the read watch stays armed; anything readable means the
     server spoke unasked (it ended the backend): never hand it out again. */
  bool idle_readable;

  /* The job (job != NULL from execute() until qreg_job_complete()). */
  qreg_job_t *job;
  step_t steps[MAX_STEPS];
  unsigned step_count;
  unsigned step_next;      /* the step whose results are being read */
  unsigned first_sync;     /* index of the Sync that ends our transaction */
  unsigned cleanup_left;   /* cleanup steps that have not succeeded yet */
  int column_count;        /* -1 until the statement described its rows */
  Oid *column_types;       /* owned, column_count entries */
  bool storing;            /* rows still go into the result */
  bool truncated;          /* the store said FULL: rows were cut */
  bool failed;             /* the statement or our transaction failed */
  bool essential_done;     /* our transaction ended: its ROLLBACK or COMMIT
                              (or the first Sync) came back */
  bool user_done;          /* the statement's results ended (or failed) */
  bool unclean;            /* something happened that forbids reuse */
  bool broken;             /* abandoned: stop reading, complete, never reuse */
  bool cancel_requested;   /* the core asked to cancel */
  bool cancel_sent;        /* a server-side cancel was started (once per job) */
  bool cancel_failed;
  char *lost_message;      /* owned: libpq's first words when the connection
                              died (later calls pile more text on it) */
  char farewell_code[6];   /* a class-57 notice from the server (immediate
                              shutdown says why only as a WARNING) */
  char farewell_message[256];

  /* The cancel request in flight (cancel_in_flight): the worker owns
     cancel, cancel_ok and cancel_error until cancel_done() runs. */
  bool cancel_in_flight;
  unsigned cancel_attempts;
  qreg_timer_t *cancel_retry;  /* owned: the next attempt, while one is due */
  qreg_work_t cancel_work;
  PGcancel *cancel;
  int cancel_ok;
  char cancel_error[256];
};

static void on_io(qreg_poll_t *watch, int status, int events, void *arg);

/* A growing comma-separated list. */
typedef struct list_text {
  char *text;
  size_t len, cap;
  bool failed; /* ENOMEM */
} list_text_t;

/* A host name lookup on a worker, for one connect. */
typedef struct pg_lookup {
  qreg_work_t work;
  qreg_driver_conn_t *conn; /* waiting for the answer; NULL once it gave up */
  const char *hosts;        /* the state's (it outlives every work) */
  const char *ports;
  list_text_t host, hostaddr, port; /* the answer: one entry per address */
  unsigned entries;
  char error[400];
} pg_lookup_t;


/* ------------------------------------------------------------------------
 * Messages: one line, no password
 * ---------------------------------------------------------------------- */

static bool is_word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Replaces every occurrence of secret in *text with "********". Short
   secrets are replaced only as whole words, so a one-letter password does
   not shred the message. */
static void scrub_secret(char **text, const char *secret) {
  size_t secret_len = secret ? strlen(secret) : 0;
  if (*text == NULL || secret_len == 0)
    return;
  static const char mask[] = "********";
  size_t mask_len = sizeof mask - 1;
  const char *src = *text;
  size_t len = strlen(src);
  size_t cap = len + 1 + (len / secret_len + 1) * mask_len;
  char *out = malloc(cap);
  if (out == NULL)
    return; /* keep the text; scrub() below drops it instead */
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    bool match = strncmp(src + i, secret, secret_len) == 0;
    if (match && secret_len < 4) {
      bool left_ok = i == 0 || !is_word_char(src[i - 1]);
      bool right_ok = i + secret_len >= len || !is_word_char(src[i + secret_len]);
      match = left_ok && right_ok;
    }
    if (match) {
      memcpy(out + n, mask, mask_len);
      n += mask_len;
      i += secret_len;
    } else {
      out[n++] = src[i++];
    }
  }
  out[n] = '\0';
  free(*text);
  *text = out;
}

/* A heap copy of text with the state's secrets removed; NULL for NULL. */
static char *scrubbed_copy(const pg_state_t *state, const char *text) {
  if (text == NULL)
    return NULL;
  char *copy = strdup(text);
  for (size_t i = 0; copy != NULL && i < sizeof state->secrets / sizeof state->secrets[0]; i++) {
    char *before = copy;
    scrub_secret(&copy, state->secrets[i]);
    if (copy == before && state->secrets[i] != NULL && strstr(copy, state->secrets[i]) != NULL) {
      /* Could not scrub (ENOMEM): say nothing rather than leak it. */
      free(copy);
      copy = strdup("(message withheld: it contained the password)");
    }
  }
  return copy;
}

/* libpq's multi-line messages ("...failed: FATAL:  password authentication
   failed\n\tIs the server running...\n") as one line, secrets removed. */
static char *one_line_message(const pg_state_t *state, const char *raw) {
  char *text = scrubbed_copy(state, raw != NULL && raw[0] != '\0' ? raw : "unknown error");
  if (text == NULL)
    return NULL;
  size_t n = 0;
  bool space = false;
  for (const char *p = text; *p != '\0'; p++) {
    if (isspace((unsigned char)*p)) {
      space = true;
      continue;
    }
    if (space && n > 0)
      text[n++] = ' ';
    space = false;
    text[n++] = *p;
  }
  text[n] = '\0';
  return text;
}

/* ------------------------------------------------------------------------
 * Type names: built in, or learned from the server once per registry
 * ---------------------------------------------------------------------- */

static const char *cached_type_name(const pg_state_t *state, Oid oid) {
  const char *builtin = qreg__pg_builtin_type_name(oid);
  if (builtin != NULL)
    return builtin;
  size_t lo = 0, hi = state->type_count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (state->types[mid].oid == oid)
      return state->types[mid].name;
    if (state->types[mid].oid < oid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static void cache_type_name(pg_state_t *state, Oid oid, const char *name) {
  if (cached_type_name(state, oid) != NULL)
    return;
  if (state->type_count == state->type_cap) {
    size_t cap = state->type_cap ? state->type_cap * 2 : 16;
    type_name_t *grown = realloc(state->types, cap * sizeof *grown);
    if (grown == NULL)
      return; /* the column shows "" instead */
    state->types = grown;
    state->type_cap = cap;
  }
  char *copy = strdup(name);
  if (copy == NULL)
    return;
  size_t at = state->type_count;
  while (at > 0 && state->types[at - 1].oid > oid)
    at--;
  memmove(state->types + at + 1, state->types + at, (state->type_count - at) * sizeof *state->types);
  state->types[at] = (type_name_t){oid, copy};
  state->type_count++;
}

/* Caches the (oid, name) rows of a type-name query. */
static void learn_types(pg_state_t *state, const PGresult *res) {
  for (int row = 0; row < PQntuples(res); row++) {
    if (PQgetisnull(res, row, 0) || PQgetisnull(res, row, 1))
      continue;
    Oid oid = (Oid)strtoul(PQgetvalue(res, row, 0), NULL, 10);
    cache_type_name(state, oid, PQgetvalue(res, row, 1));
  }
}

/* ------------------------------------------------------------------------
 * The socket watch
 * ---------------------------------------------------------------------- */

static void watch_drop(qreg_driver_conn_t *conn) {
  if (conn->watch != NULL) {
    qreg_poll_close(conn->watch);
    conn->watch = NULL;
  }
  conn->watch_fd = -1;
  conn->watch_events = 0;
}

/* Watches PQsocket() for events (0 pauses). A watch on a socket libpq has
   closed or replaced is dropped first. 0 or a negative code. */
static int watch_set(qreg_driver_conn_t *conn, int events) {
  int fd = PQsocket(conn->pg);
  if (conn->watch != NULL && conn->watch_fd != fd)
    watch_drop(conn);
  if (fd < 0)
    return events == 0 ? 0 : QREG_EINVAL;
  if (conn->watch == NULL) {
    if (events == 0)
      return 0;
    int rc = qreg_poll_start(conn->state->loop, fd, events, on_io, conn, &conn->watch);
    if (rc != 0) {
      conn->watch = NULL;
      return rc;
    }
    conn->watch_fd = fd;
    conn->watch_events = events;
    return 0;
  }
  if (events != conn->watch_events) {
    int rc = qreg_poll_update(conn->watch, events);
    if (rc != 0)
      return rc;
    conn->watch_events = events;
  }
  return 0;
}

/* libpq closes its socket when it sees the connection die: the watch must go
   before that fd number is reused. */
static void watch_check_socket(qreg_driver_conn_t *conn) {
  if (conn->watch != NULL && PQsocket(conn->pg) != conn->watch_fd)
    watch_drop(conn);
}

/* libpq prints notices to stderr by default; library code never prints.
   Kept: a notice of class 57 (operator intervention), the server's only
   word before an immediate shutdown closes the connection. */
static void on_notice(void *arg, const PGresult *res) {
  qreg_driver_conn_t *conn = arg;
  const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  if (code != NULL && message != NULL && strncmp(code, "57", 2) == 0) {
    snprintf(conn->farewell_code, sizeof conn->farewell_code, "%s", code);
    snprintf(conn->farewell_message, sizeof conn->farewell_message, "%s", message);
  }
}

/* ------------------------------------------------------------------------
 * Connecting
 * ---------------------------------------------------------------------- */

/* Reports a failed connect and frees everything the attempt held. reason
   NULL means libpq's own message. Tail call: conn is gone afterwards. */
static void connect_fail(qreg_driver_conn_t *conn, const char *reason) {
  char *message = NULL;
  if (reason != NULL)
    message = scrubbed_copy(conn->state, reason);
  else
    message = one_line_message(conn->state, conn->pg ? PQerrorMessage(conn->pg) : NULL);
  if (conn->prefetching) /* the next connection tries again */
    conn->state->types_loading = false;
  if (conn->lookup != NULL) /* its worker still runs; it frees itself */
    conn->lookup->conn = NULL;
  qreg_driver_error_t error = {0};
  qreg_driver_error_set(&error, "connection", NULL, "%s",
                        message ? message : "could not connect to the server");
  free(message);
  watch_drop(conn);
  if (conn->connect_timer != NULL)
    qreg_timer_close(conn->connect_timer);
  PQfinish(conn->pg);
  qreg_conn_request_t *request = conn->request;
  free(conn);
  qreg_conn_request_done(request, NULL, &error);
  qreg_driver_error_clear(&error);
}

static void connect_timed_out(qreg_timer_t *timer, void *arg) {
  qreg_driver_conn_t *conn = arg;
  (void)timer;
  char reason[512];
  const char *host = conn->pg ? PQhost(conn->pg) : conn->state->lookup_hosts;
  const char *port = conn->pg ? PQport(conn->pg) : conn->state->lookup_ports;
  snprintf(reason, sizeof reason, "timed out after %" PRIu64 " ms connecting to %s%s%s%s%s",
           conn->state->connect_timeout_ms, host && *host ? "\"" : "", host && *host ? host : "the server",
           host && *host ? "\"" : "", port && *port ? " port " : "", port && *port ? port : "");
  connect_fail(conn, reason);
}

/* Waits for what PQconnectPoll() asked for. The socket may change between
   polls (another address, another host), so the watch is made afresh. */
static void connect_wait(qreg_driver_conn_t *conn, PostgresPollingStatusType want) {
  watch_drop(conn);
  int rc = watch_set(conn, want == PGRES_POLLING_READING ? QREG_POLL_READ : QREG_POLL_WRITE);
  if (rc != 0)
    connect_fail(conn, PQsocket(conn->pg) < 0 ? NULL : "cannot watch the connection's socket");
}

/* The names of every type an extension or a user created (enums, domains,
   ranges, extension types; not the row types of tables), loaded once per
   registry by its first connection: the result store needs a column's type
   name before the first row, so it must be known before the query runs. */
#define TYPE_PREFETCH_SQL                                                                  \
  "SELECT t.oid::pg_catalog.int8, pg_catalog.format_type(t.oid, NULL) "                   \
  "FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem "         \
  "WHERE t.oid >= 10000 AND t.typtype <> 'c' AND (e.oid IS NULL OR e.typtype <> 'c') "    \
  "LIMIT 10000"

/* The session's defaults, set once per connection and again after every
   DISCARD ALL (a write job's cleanup, which resets them): values come out
   the same way on every server (postgres_values.c reads ISO dates, UTC, hex
   bytea, exact floats) and, on PostgreSQL 14+, a backend running a long
   statement notices within a second that its client went away (an abandoned
   connection). A read-only job cannot change them for good: its transaction
   is rolled back, and a rolled-back SET is undone. Session-level SETs rather
   than startup options: an option the server does not know (the check
   interval before 14) fails the connect, and ours would replace the user's
   own options (URL, PGOPTIONS, service file). */
#define SESSION_SQL                                                                         \
  "SELECT pg_catalog.set_config('DateStyle', 'ISO', false), "                               \
  "pg_catalog.set_config('TimeZone', 'UTC', false), "                                       \
  "pg_catalog.set_config('bytea_output', 'hex', false), "                                   \
  "pg_catalog.set_config('extra_float_digits', '3', false)"

static const char *session_sql(const qreg_driver_conn_t *conn) {
  if (PQserverVersion(conn->pg) >= 140000)
    return SESSION_SQL ", pg_catalog.set_config('client_connection_check_interval', '1000', false)";
  return SESSION_SQL;
}

/* Hands the open connection to the core. */
static void connect_report(qreg_driver_conn_t *conn) {
  qreg_timer_close(conn->connect_timer);
  conn->connect_timer = NULL;
  /* From now on the socket is fixed, and the read watch stays armed while
     the connection is idle (see idle_readable). */
  if (watch_set(conn, QREG_POLL_READ) != 0) {
    connect_fail(conn, "cannot watch the connection's socket");
    return;
  }
  qreg_conn_request_t *request = conn->request;
  conn->request = NULL;
  qreg_conn_request_done(request, conn, NULL);
}

/* Sends the connect-time query libpq holds and waits for its answer; false
   if that failed. */
static bool setup_flush(qreg_driver_conn_t *conn) {
  int rc = PQflush(conn->pg);
  return rc >= 0 &&
         watch_set(conn, rc == 1 ? QREG_POLL_READ | QREG_POLL_WRITE : QREG_POLL_READ) == 0;
}

static void setup_end(qreg_driver_conn_t *conn, bool ok);

/* The first connection of a registry loads the type names; false if there
   is nothing to load (or it cannot be sent: the next connection tries). */
static bool prefetch_start(qreg_driver_conn_t *conn) {
  pg_state_t *state = conn->state;
  if (state->types_loaded || state->types_loading ||
      PQsendQueryParams(conn->pg, TYPE_PREFETCH_SQL, 0, NULL, NULL, NULL, NULL, 0) != 1)
    return false;
  state->types_loading = true;
  conn->prefetching = true;
  if (!setup_flush(conn))
    setup_end(conn, false);
  return true;
}

/* The connect-time query (session defaults, then the type names) is over.
   The session defaults must be in place; the type names may fail (their
   columns then show "" until an execute looks them up). */
static void setup_end(qreg_driver_conn_t *conn, bool ok) {
  bool idle = PQstatus(conn->pg) == CONNECTION_OK && PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
  if (conn->configuring) {
    conn->configuring = false;
    if (!ok || !idle) {
      connect_fail(conn, NULL);
      return;
    }
    if (!prefetch_start(conn))
      connect_report(conn);
    return;
  }
  conn->prefetching = false;
  conn->state->types_loading = false;
  if (!idle) {
    connect_fail(conn, NULL);
    return;
  }
  conn->state->types_loaded = true; /* even if the query failed: no retry per connect */
  connect_report(conn);
}

static void setup_io(qreg_driver_conn_t *conn, int status, int events) {
  PGconn *pg = conn->pg;
  if (((events & QREG_POLL_WRITE) || status < 0) && !setup_flush(conn)) {
    setup_end(conn, false);
    return;
  }
  if (((events & QREG_POLL_READ) || status < 0) && !PQconsumeInput(pg)) {
    setup_end(conn, false);
    return;
  }
  while (!PQisBusy(pg)) {
    PGresult *res = PQgetResult(pg);
    if (res == NULL) {
      setup_end(conn, conn->setup_ok);
      return;
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
      if (conn->prefetching)
        learn_types(conn->state, res);
      else
        conn->setup_ok = true;
    }
    PQclear(res);
  }
}

static void connect_succeeded(qreg_driver_conn_t *conn) {
  if (PQsetnonblocking(conn->pg, 1) != 0 ||
      PQsendQueryParams(conn->pg, session_sql(conn), 0, NULL, NULL, NULL, NULL, 0) != 1) {
    connect_fail(conn, NULL);
    return;
  }
  snprintf(conn->backend_id, sizeof conn->backend_id, "%d", PQbackendPID(conn->pg));
  conn->configuring = true;
  conn->setup_ok = false;
  if (!setup_flush(conn))
    setup_end(conn, false);
}

static void connect_poll(qreg_driver_conn_t *conn) {
  PostgresPollingStatusType st = PQconnectPoll(conn->pg);
  switch (st) {
  case PGRES_POLLING_OK:
    connect_succeeded(conn);
    return;
  case PGRES_POLLING_READING:
  case PGRES_POLLING_WRITING:
    connect_wait(conn, st);
    return;
  default:
    connect_fail(conn, NULL);
    return;
  }
}

/* Starts libpq's connect; host, hostaddr and port (each may be NULL) are
   the resolved lists that override the URL's. */
static void connect_start(qreg_driver_conn_t *conn, const char *host, const char *hostaddr,
                          const char *port) {
  pg_state_t *state = conn->state;
  /* dbname is expanded (URL or conninfo; PG* variables fill the gaps); the
     keywords after it override what it says. */
  const char *keywords[7], *values[7];
  int n = 0;
  keywords[n] = "dbname", values[n++] = state->url;
  if (host != NULL)
    keywords[n] = "host", values[n++] = host;
  if (hostaddr != NULL)
    keywords[n] = "hostaddr", values[n++] = hostaddr;
  if (port != NULL)
    keywords[n] = "port", values[n++] = port;
  if (state->application_name != NULL && state->application_name[0] != '\0')
    keywords[n] = "application_name", values[n++] = state->application_name;
  keywords[n] = "client_encoding", values[n++] = "UTF8";
  keywords[n] = NULL, values[n] = NULL;
  conn->pg = PQconnectStartParams(keywords, values, 1);
  if (conn->pg == NULL) {
    connect_fail(conn, "out of memory");
    return;
  }
  PQsetNoticeReceiver(conn->pg, on_notice, conn);
  if (PQstatus(conn->pg) == CONNECTION_BAD) {
    connect_fail(conn, NULL);
    return;
  }
  /* As if PQconnectPoll() had said "writing": wait until the socket is
     writable, then poll. */
  connect_wait(conn, PGRES_POLLING_WRITING);
}

/* --- host names, resolved on a worker --------------------------------- */

/* A host list entry libpq would look up: not empty, not a socket directory
   ("/..." or "@..."), not an IP address. */
static bool host_needs_lookup(const char *entry, size_t len) {
  char text[INET6_ADDRSTRLEN + 8];
  if (len == 0 || entry[0] == '/' || entry[0] == '@')
    return false;
  if (len >= sizeof text)
    return true; /* too long for an address */
  unsigned char addr[sizeof(struct in6_addr)];
  memcpy(text, entry, len);
  text[len] = '\0';
  return inet_pton(AF_INET, text, addr) != 1 && inet_pton(AF_INET6, text, addr) != 1;
}

static bool hosts_need_lookup(const char *hosts) {
  for (const char *p = hosts;;) {
    size_t len = strcspn(p, ",");
    if (host_needs_lookup(p, len))
      return true;
    if (p[len] == '\0')
      return false;
    p += len + 1;
  }
}

/* Appends item (len bytes), after a comma unless first. */
static void list_add(list_text_t *list, bool first, const char *item, size_t len) {
  size_t need = list->len + len + 2;
  if (list->failed)
    return;
  if (need > list->cap) {
    size_t cap = need * 2;
    char *grown = realloc(list->text, cap);
    if (grown == NULL) {
      list->failed = true;
      return;
    }
    list->text = grown;
    list->cap = cap;
  }
  if (!first)
    list->text[list->len++] = ',';
  memcpy(list->text + list->len, item, len);
  list->len += len;
  list->text[list->len] = '\0';
}

/* One entry of the answer: a host name (kept for TLS verification and
   messages), the address to use ("" for libpq's own handling of socket
   directories and IP literals) and its port ("" for the default). */
static void lookup_add(pg_lookup_t *lookup, const char *host, size_t host_len, const char *addr,
                       const char *port, size_t port_len) {
  bool first = lookup->entries == 0;
  list_add(&lookup->host, first, host, host_len);
  list_add(&lookup->hostaddr, first, addr, strlen(addr));
  list_add(&lookup->port, first, port, port_len);
  lookup->entries++;
}

/* Worker thread: getaddrinfo() for every name in the host list. */
static void lookup_run(qreg_work_t *work) {
  pg_lookup_t *lookup = (pg_lookup_t *)work;
  size_t host_count = 1, port_count = lookup->ports ? 1 : 0;
  for (const char *p = lookup->hosts; *p; p++)
    host_count += *p == ',';
  for (const char *p = lookup->ports; p && *p; p++)
    port_count += *p == ',';
  const char *host = lookup->hosts, *port = lookup->ports ? lookup->ports : "";
  for (size_t i = 0; i < host_count; i++) {
    size_t host_len = strcspn(host, ","), port_len = strcspn(port, ",");
    if (!host_needs_lookup(host, host_len)) {
      lookup_add(lookup, host, host_len, "", port, port_len);
    } else {
      char name[256];
      snprintf(name, sizeof name, "%.*s", (int)(host_len < 255 ? host_len : 255), host);
      struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
      struct addrinfo *found = NULL;
      int rc = getaddrinfo(name, NULL, &hints, &found);
      if (rc != 0) {
        snprintf(lookup->error, sizeof lookup->error,
                 "could not translate host name \"%.255s\" to address: %.80s", name,
                 gai_strerror(rc));
      }
      for (struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next) {
        char addr[INET6_ADDRSTRLEN];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0,
                        NI_NUMERICHOST) == 0)
          lookup_add(lookup, host, host_len, addr, port, port_len);
      }
      freeaddrinfo(found);
    }
    host += host_len + (host[host_len] == ',');
    if (port_count > 1)
      port += port_len + (port[port_len] == ',');
  }
}

static void lookup_done(qreg_work_t *work) {
  pg_lookup_t *lookup = (pg_lookup_t *)work;
  qreg_driver_conn_t *conn = lookup->conn;
  if (conn != NULL) {
    conn->lookup = NULL;
    if (lookup->host.failed || lookup->hostaddr.failed || lookup->port.failed)
      connect_fail(conn, "out of memory");
    else if (lookup->entries == 0)
      connect_fail(conn, lookup->error[0] ? lookup->error : "no address for the host");
    else
      connect_start(conn, lookup->host.text, lookup->hostaddr.text, lookup->port.text);
  }
  free(lookup->host.text);
  free(lookup->hostaddr.text);
  free(lookup->port.text);
  free(lookup);
}

static void pg_connect(void *state_arg, qreg_conn_request_t *request) {
  pg_state_t *state = state_arg;
  qreg_driver_conn_t *conn = calloc(1, sizeof *conn);
  if (conn == NULL) {
    qreg_driver_error_t error = {0};
    qreg_driver_error_set(&error, "connection", NULL, "out of memory");
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
    return;
  }
  conn->state = state;
  conn->request = request;
  conn->watch_fd = -1;
  conn->column_count = -1;
  if (state->connect_timeout_ms > 0 &&
      qreg_timer_start(state->loop, state->connect_timeout_ms, connect_timed_out, conn,
                       &conn->connect_timer) != 0) {
    conn->connect_timer = NULL;
    connect_fail(conn, "cannot start the connect timer");
    return;
  }
  if (state->lookup_hosts == NULL) {
    connect_start(conn, NULL, NULL, NULL);
    return;
  }
  pg_lookup_t *lookup = calloc(1, sizeof *lookup);
  if (lookup == NULL) {
    connect_fail(conn, "out of memory");
    return;
  }
  lookup->conn = conn;
  lookup->hosts = state->lookup_hosts;
  lookup->ports = state->lookup_ports;
  conn->lookup = lookup;
  if (qreg_loop_work(state->loop, &lookup->work, lookup_run, lookup_done) != 0) {
    conn->lookup = NULL;
    free(lookup);
    connect_fail(conn, "the registry is shutting down");
  }
}

/* ------------------------------------------------------------------------
 * Running a job
 * ---------------------------------------------------------------------- */

static void job_reset(qreg_driver_conn_t *conn) {
  free(conn->column_types);
  conn->column_types = NULL;
  conn->column_count = -1;
  conn->step_count = conn->step_next = conn->first_sync = 0;
  conn->storing = conn->truncated = conn->failed = conn->essential_done = false;
  conn->user_done = conn->unclean = conn->broken = false;
  conn->cleanup_left = 0;
  conn->cancel_requested = conn->cancel_sent = conn->cancel_failed = false;
  conn->cancel_attempts = 0;
  if (conn->cancel_retry != NULL) {
    qreg_timer_close(conn->cancel_retry);
    conn->cancel_retry = NULL;
  }
  free(conn->lost_message);
  conn->lost_message = NULL;
  conn->farewell_code[0] = conn->farewell_message[0] = '\0';
}

/* Records the job's error; the first one wins (the server's reason for
   dying comes before libpq's "server closed the connection"). */
static void job_error(qreg_driver_conn_t *conn, const char *type, const char *code,
                      const char *message, const char *detail, const char *hint) {
  qreg_driver_error_t *error = &conn->job->error;
  if (error->type != NULL || error->message != NULL)
    return;
  char *clean_message = scrubbed_copy(conn->state, message);
  char *clean_detail = scrubbed_copy(conn->state, detail);
  char *clean_hint = scrubbed_copy(conn->state, hint);
  qreg_driver_error_set(error, type, code, "%s", clean_message ? clean_message : "unknown error");
  qreg_driver_error_set_detail(error, clean_detail);
  qreg_driver_error_set_hint(error, clean_hint);
  free(clean_message);
  free(clean_detail);
  free(clean_hint);
}

/* Keeps libpq's message from the moment the connection failed. */
static void job_note_lost_message(qreg_driver_conn_t *conn) {
  if (conn->lost_message == NULL)
    conn->lost_message = one_line_message(conn->state, PQerrorMessage(conn->pg));
}

/* The job's error when the connection died. */
static void job_lost_error(qreg_driver_conn_t *conn) {
  if (conn->farewell_code[0] != '\0') {
    job_error(conn, "database", conn->farewell_code, conn->farewell_message, NULL, NULL);
    return;
  }
  job_note_lost_message(conn);
  job_error(conn, "connection", NULL,
            conn->lost_message ? conn->lost_message : "the connection to the server was lost", NULL,
            NULL);
}

/* The job's error from an error result. */
static void job_error_from_result(qreg_driver_conn_t *conn, const PGresult *res) {
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  if (primary != NULL) {
    job_error(conn, "database", PQresultErrorField(res, PG_DIAG_SQLSTATE), primary,
              PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
              PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    return;
  }
  /* Made up by libpq: no SQLSTATE. When the connection died, the server's
     farewell notice or libpq's first words say more than this result,
     which accumulates every complaint since. */
  if (PQstatus(conn->pg) == CONNECTION_BAD) {
    job_lost_error(conn);
    return;
  }
  const char *raw = PQresultErrorMessage(res);
  char *message = one_line_message(conn->state, raw && *raw ? raw : PQerrorMessage(conn->pg));
  job_error(conn, "database", NULL, message ? message : "unknown error", NULL, NULL);
  free(message);
}

/* Whether a failure at this point fails the job: until our transaction has
   ended, it does (the statement did not run, or did not commit); after it,
   it only forbids reuse. */
static void job_mark_failed(qreg_driver_conn_t *conn) {
  conn->unclean = true;
  if (!conn->essential_done && !conn->truncated)
    conn->failed = true;
}

/* Gives up on the connection: nothing more is read from it; the job
   completes as soon as no worker holds it, and the core closes it. */
static void job_abandon(qreg_driver_conn_t *conn) {
  conn->broken = true;
  conn->unclean = true;
  watch_check_socket(conn);
  watch_set(conn, 0);
}

/* The connection died (or libpq failed): libpq's message unless the
   server already said why. */
static void job_lost(qreg_driver_conn_t *conn) {
  if (!conn->essential_done && !conn->truncated)
    job_lost_error(conn);
  job_mark_failed(conn);
  job_abandon(conn);
}

static void cancel_run(qreg_work_t *work);
static void cancel_done(qreg_work_t *work);

/* A cancel that cannot be delivered (or does not work) must not leave the
   job running for ever: abandon the connection and end the job. When the
   core asked for the cancel, the reason is the job's message. */
static void cancel_give_up(qreg_driver_conn_t *conn, const char *reason) {
  conn->cancel_failed = true;
  if (conn->cancel_requested) {
    qreg_driver_error_clear(&conn->job->error);
    char message[400];
    snprintf(message, sizeof message,
             "the cancel request failed (%s); the connection was abandoned", reason);
    job_error(conn, "canceled", NULL, message, NULL, NULL);
  }
  if (conn->step_next < conn->step_count)
    job_abandon(conn);
}

/* Sends one cancel request from a worker (PQcancel blocks). */
static void cancel_issue(qreg_driver_conn_t *conn) {
  conn->cancel_attempts++;
  conn->cancel = PQgetCancel(conn->pg);
  if (conn->cancel == NULL) {
    cancel_give_up(conn, "could not prepare it");
    return;
  }
  conn->cancel_ok = 0;
  conn->cancel_error[0] = '\0';
  conn->cancel_in_flight = true;
  if (qreg_loop_work(conn->state->loop, &conn->cancel_work, cancel_run, cancel_done) != 0) {
    conn->cancel_in_flight = false;
    PQfreeCancel(conn->cancel);
    conn->cancel = NULL;
    cancel_give_up(conn, "the registry is shutting down");
  }
}

/* Asks the server to stop the statement. */
static void job_send_cancel(qreg_driver_conn_t *conn) {
  if (conn->cancel_sent || conn->broken || conn->user_done)
    return; /* sent already, nothing to stop, or the statement is over */
  conn->cancel_sent = true;
  conn->unclean = true;
  cancel_issue(conn);
}

/* Worker thread: the blocking part. Touches only the cancel fields. */
static void cancel_run(qreg_work_t *work) {
  qreg_driver_conn_t *conn =
      (qreg_driver_conn_t *)((char *)work - offsetof(qreg_driver_conn_t, cancel_work));
  conn->cancel_ok = PQcancel(conn->cancel, conn->cancel_error, sizeof conn->cancel_error);
}

static void job_settle(qreg_driver_conn_t *conn);

static void cancel_retry_due(qreg_timer_t *timer, void *arg) {
  qreg_driver_conn_t *conn = arg;
  qreg_timer_close(timer);
  conn->cancel_retry = NULL;
  if (!conn->user_done && !conn->broken && !conn->cancel_in_flight) {
    if (conn->cancel_attempts >= CANCEL_ATTEMPTS)
      cancel_give_up(conn, "the server did not stop the statement");
    else
      cancel_issue(conn);
  }
  job_settle(conn);
}

static void cancel_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn =
      (qreg_driver_conn_t *)((char *)work - offsetof(qreg_driver_conn_t, cancel_work));
  conn->cancel_in_flight = false;
  PQfreeCancel(conn->cancel);
  conn->cancel = NULL;
  if (!conn->cancel_ok) {
    char *reason = one_line_message(conn->state, conn->cancel_error);
    cancel_give_up(conn, reason ? reason : "unknown error");
    free(reason);
  } else if (!conn->user_done && !conn->broken &&
             qreg_timer_start(conn->state->loop, CANCEL_RETRY_MS, cancel_retry_due, conn,
                              &conn->cancel_retry) != 0) {
    conn->cancel_retry = NULL; /* no retry then: the first request has to do */
  }
  job_settle(conn);
}

/* Stops storing rows: FULL (truncated) or a store error. The rest of the
   result is cancelled on the server and drained. */
static void job_stop_storing(qreg_driver_conn_t *conn, int rc) {
  conn->storing = false;
  conn->unclean = true;
  if (rc == QREG_RESULT_FULL) {
    conn->truncated = true;
  } else {
    char message[160];
    snprintf(message, sizeof message, "storing the result failed: %s", qreg_strerror(rc));
    job_error(conn, "internal", NULL, message, NULL, NULL);
    job_mark_failed(conn);
  }
  job_send_cancel(conn);
}

/* Sends what libpq has buffered; watches for writability while some is
   left. */
static void job_flush(qreg_driver_conn_t *conn) {
  int rc = PQflush(conn->pg);
  if (rc < 0) {
    job_note_lost_message(conn);
    job_lost(conn);
    return;
  }
  if (watch_set(conn, rc == 1 ? QREG_POLL_READ | QREG_POLL_WRITE : QREG_POLL_READ) != 0) {
    job_error(conn, "internal", NULL, "cannot watch the connection's socket", NULL, NULL);
    job_mark_failed(conn);
    job_abandon(conn);
  }
}

static bool job_send(qreg_driver_conn_t *conn, step_t step, const char *sql, int nparams,
                     const char *const *params) {
  if (PQsendQueryParams(conn->pg, sql, nparams, NULL, params, NULL, NULL, 0) != 1)
    return false;
  conn->steps[conn->step_count++] = step;
  return true;
}

static bool job_sync(qreg_driver_conn_t *conn) {
  if (PQpipelineSync(conn->pg) != 1)
    return false;
  conn->steps[conn->step_count++] = STEP_SYNC;
  return true;
}

/* The statement_timeout backstop, local to our transaction. A SELECT even
   without a timeout: it takes the transaction's snapshot, after which the
   statement can no longer turn a READ ONLY transaction read-write ("SET
   TRANSACTION READ WRITE" fails). */
static void setup_sql(const qreg_driver_conn_t *conn, char *buf, size_t size) {
  uint64_t timeout = conn->job->timeout_ms;
  if (timeout > 0 && timeout <= (uint64_t)INT_MAX - STATEMENT_TIMEOUT_MARGIN_MS)
    snprintf(buf, size, "SELECT pg_catalog.set_config('statement_timeout', '%" PRIu64 "', true)",
             timeout + STATEMENT_TIMEOUT_MARGIN_MS);
  else
    snprintf(buf, size, "SELECT NULL");
}

static bool job_send_cleanup(qreg_driver_conn_t *conn, const char *sql) {
  if (!job_send(conn, STEP_CLEANUP, sql, 0, NULL))
    return false;
  conn->cleanup_left++;
  return true;
}

static void pg_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  job_reset(conn);
  conn->job = job;
  conn->storing = true;
  qreg_job_set_backend_id(job, conn->backend_id);
  char setup[128];
  setup_sql(conn, setup, sizeof setup);
  bool sent = PQenterPipelineMode(conn->pg) == 1 &&
              job_send(conn, STEP_BEGIN, job->read_only ? "BEGIN READ ONLY" : "BEGIN", 0, NULL) &&
              job_send(conn, STEP_SETUP, setup, 0, NULL) &&
              job_send(conn, STEP_USER, job->sql, 0, NULL) &&
              job_send(conn, STEP_END, job->read_only ? "ROLLBACK" : "COMMIT", 0, NULL);
  /* The cleanup rides in the same Sync group, right after our transaction
     ended (it is skipped, and the connection not reused, if anything before
     it failed). What can outlive a rolled-back READ ONLY transaction:
     prepared statements (PREPARE) and session advisory locks. SETs are
     undone by the rollback, cursors WITH HOLD and LISTEN exist only once
     committed, temporary objects and sequence values cannot be made in a
     read-only transaction. A committed one can leave anything: DISCARD ALL
     (allowed here: the COMMIT ended the block, and it is the first command
     of the next implicit transaction), which also resets our session
     defaults, so they are set again. */
  if (sent && job->read_only)
    sent = job_send_cleanup(conn, "DEALLOCATE ALL") &&
           job_send_cleanup(conn, "SELECT pg_catalog.pg_advisory_unlock_all()");
  else if (sent)
    sent = job_send_cleanup(conn, "DISCARD ALL") && job_send_cleanup(conn, session_sql(conn));
  if (sent) {
    conn->first_sync = conn->step_count;
    sent = job_sync(conn);
  }
  if (!sent)
    job_lost(conn);
  else
    job_flush(conn);
  job_settle(conn);
}

/* Appends the lookup of type names we do not know yet. */
static void job_lookup_types(qreg_driver_conn_t *conn) {
  size_t cap = (size_t)conn->column_count * 11 + 3, n = 0;
  char *array = malloc(cap);
  if (array == NULL)
    return;
  array[n++] = '{';
  for (int i = 0; i < conn->column_count; i++) {
    Oid oid = conn->column_types[i];
    if (cached_type_name(conn->state, oid) != NULL)
      continue;
    n += (size_t)snprintf(array + n, cap - n, "%s%u", n > 1 ? "," : "", oid);
  }
  array[n++] = '}';
  array[n] = '\0';
  if (n > 2 && conn->step_count + 2 <= MAX_STEPS) {
    const char *params[] = {array};
    bool sent = job_send(conn, STEP_TYPES,
                         "SELECT t.oid::pg_catalog.int8, pg_catalog.format_type(t.oid, NULL) "
                         "FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS t(oid)",
                         1, params) &&
                job_sync(conn);
    if (!sent) {
      free(array);
      job_lost(conn);
      return;
    }
    job_flush(conn);
  }
  free(array);
}

/* The statement's row description arrived: set up the columns. Their type
   names must be known now (the store fixes columns at the first row): built
   in, or cached from the prefetch or an earlier lookup; an unknown one shows
   "" this time and is looked up for the next query. */
static void job_columns(qreg_driver_conn_t *conn, const PGresult *res) {
  int count = PQnfields(res);
  conn->column_count = 0;
  if (count > 0 && (conn->column_types = calloc((size_t)count, sizeof *conn->column_types)) == NULL) {
    job_stop_storing(conn, QREG_ENOMEM);
    return;
  }
  conn->column_count = count;
  int rc = qreg_result_set_columns(conn->job->result, (size_t)count);
  bool unknown = false;
  for (int i = 0; rc == 0 && i < count; i++) {
    Oid oid = conn->column_types[i] = PQftype(res, i);
    const char *type = cached_type_name(conn->state, oid);
    unknown = unknown || type == NULL;
    rc = qreg_result_set_column(conn->job->result, (size_t)i, PQfname(res, i), type ? type : "");
  }
  if (rc < 0) {
    job_stop_storing(conn, rc);
    return;
  }
  if (unknown)
    job_lookup_types(conn);
}

static void job_store_rows(qreg_driver_conn_t *conn, const PGresult *res) {
  if (conn->column_count < 0)
    job_columns(conn, res);
  qreg_result_t *result = conn->job->result;
  int rows = PQntuples(res), columns = PQnfields(res);
  for (int row = 0; row < rows && conn->storing; row++) {
    int rc = qreg_result_row_begin(result);
    for (int col = 0; rc == 0 && col < columns; col++)
      rc = qreg__pg_put_value(result, PQftype(res, col), PQgetvalue(res, row, col),
                              (size_t)PQgetlength(res, row, col), PQgetisnull(res, row, col));
    if (rc == 0)
      rc = qreg_result_row_end(result);
    if (rc != 0)
      job_stop_storing(conn, rc);
  }
}

/* One result of the current step. */
static void job_result(qreg_driver_conn_t *conn, step_t step, PGresult *res) {
  ExecStatusType status = PQresultStatus(res);
  switch (status) {
  case PGRES_SINGLE_TUPLE:
  case PGRES_TUPLES_OK:
    if (step == STEP_USER) {
      job_store_rows(conn, res);
      if (status == PGRES_TUPLES_OK)
        conn->user_done = true;
    } else if (step == STEP_TYPES) {
      learn_types(conn->state, res);
    } else if (step == STEP_CLEANUP && status == PGRES_TUPLES_OK) {
      conn->cleanup_left--;
    }
    break;
  case PGRES_COMMAND_OK:
  case PGRES_EMPTY_QUERY:
    if (step == STEP_USER)
      conn->user_done = true;
    if (step == STEP_END)
      conn->essential_done = true; /* a failure after it only forbids reuse */
    if (step == STEP_CLEANUP)
      conn->cleanup_left--;
    break;
  case PGRES_PIPELINE_ABORTED:
    conn->unclean = true; /* an earlier error explains it */
    break;
  case PGRES_COPY_IN:
  case PGRES_COPY_OUT:
  case PGRES_COPY_BOTH:
    /* A COPY would hold the connection in a copy state we do not speak. */
    job_error(conn, "database", "0A000",
              "COPY to or from the client is not supported: run a query that returns rows",
              NULL, NULL);
    job_mark_failed(conn);
    job_abandon(conn);
    break;
  default: /* PGRES_FATAL_ERROR and anything unexpected */
    if (step == STEP_USER)
      conn->user_done = true;
    if (step == STEP_USER && conn->truncated) {
      conn->unclean = true; /* most likely our own cancel of the rest */
    } else if (step == STEP_TYPES || (step == STEP_CLEANUP && conn->essential_done)) {
      conn->unclean = true; /* names stay unknown; or the session is not clean */
    } else {
      if (!conn->essential_done)
        job_error_from_result(conn, res);
      job_mark_failed(conn);
    }
    break;
  }
  PQclear(res);
}

/* Reads every result libpq can give without waiting. */
static void job_read(qreg_driver_conn_t *conn) {
  PGconn *pg = conn->pg;
  unsigned bad_reads = 0; /* once the connection is bad, libpq runs dry fast */
  while (!conn->broken && conn->step_next < conn->step_count) {
    if (PQstatus(pg) == CONNECTION_BAD) {
      /* The server's own last words (57P01 "terminating connection due to
         administrator command") may still sit in libpq's buffer: take them
         before giving up. */
      job_note_lost_message(conn);
      watch_check_socket(conn);
      PGresult *res = bad_reads++ < 64 ? PQgetResult(pg) : NULL;
      if (res == NULL) {
        job_lost(conn);
        return;
      }
      if (PQresultStatus(res) == PGRES_FATAL_ERROR && !conn->essential_done)
        job_error_from_result(conn, res);
      PQclear(res);
      continue;
    }
    if (PQisBusy(pg))
      return; /* wait for more input */
    step_t step = conn->steps[conn->step_next];
    PGresult *res = PQgetResult(pg);
    if (step == STEP_SYNC) {
      if (res == NULL && PQstatus(pg) == CONNECTION_BAD) {
        job_lost(conn);
        return;
      }
      if (res == NULL) {
        job_error(conn, "internal", NULL, "libpq ended a pipeline without its sync", NULL, NULL);
        job_mark_failed(conn);
        job_abandon(conn);
        return;
      }
      if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
        if (conn->step_next == conn->first_sync)
          conn->essential_done = true;
        conn->step_next++;
        PQclear(res);
      } else {
        job_result(conn, step, res); /* an error reported at the sync */
      }
      continue;
    }
    if (res != NULL) {
      job_result(conn, step, res);
      continue;
    }
    /* NULL: this step's results are over. */
    if (step == STEP_USER)
      conn->user_done = true;
    conn->step_next++;
    if (conn->step_next < conn->step_count && conn->steps[conn->step_next] == STEP_USER) {
      /* Single-row mode must be chosen now, before PQisBusy() parses the
         statement's first rows; it fails harmlessly if the pipeline was
         aborted. */
      PQsetSingleRowMode(pg);
    }
  }
}

/* Completes the job if it is over: every result read (or the connection
   abandoned) and no worker holding the connection. Every entry point ends
   with it, as its last action: qreg_job_complete() may close and free the
   connection before it returns. */
static void job_settle(qreg_driver_conn_t *conn) {
  qreg_job_t *job = conn->job;
  if (job == NULL || conn->cancel_in_flight)
    return;
  /* A cancelled or truncated job's connection is closed, never reused: once
     the statement has ended (its error - 57014 after our cancel - or its
     last row has arrived) and no cancel request is in flight, the rest of
     the pipeline is not worth waiting for. A write job still waits for its
     COMMIT's answer, so the job's outcome is the server's. */
  if (!conn->broken && (conn->cancel_requested || conn->truncated) && conn->user_done &&
      (job->read_only || conn->essential_done))
    job_abandon(conn);
  if (!conn->broken && conn->step_next < conn->step_count)
    return;

  bool reusable = false;
  if (!conn->broken) {
    bool idle = PQexitPipelineMode(conn->pg) == 1;
    reusable = idle && !conn->unclean && !conn->failed && !conn->truncated &&
               !conn->cancel_requested && !conn->cancel_sent && conn->cleanup_left == 0 &&
               PQstatus(conn->pg) == CONNECTION_OK &&
               PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
  }
  /* A reusable connection keeps its read watch while idle (on_io() notices
     a server that ends the backend); any other is about to be closed. */
  if (!reusable || watch_set(conn, QREG_POLL_READ) != 0) {
    reusable = false;
    watch_set(conn, 0);
  }

  qreg_job_outcome_t outcome;
  if (conn->cancel_requested && !(conn->essential_done && !conn->failed)) {
    outcome = QREG_JOB_CANCELED;
    if (!conn->cancel_failed) /* the core says why; a failed cancel says more */
      qreg_driver_error_clear(&job->error);
  } else if (conn->failed) {
    outcome = QREG_JOB_ERROR;
    if (job->error.message == NULL)
      job_error(conn, "internal", NULL, "the query failed", NULL, NULL);
  } else {
    outcome = QREG_JOB_OK;
    qreg_driver_error_clear(&job->error);
  }
  job->conn_reusable = reusable;
  conn->job = NULL;
  job_reset(conn);
  qreg_job_complete(job, outcome);
}

static void job_io(qreg_driver_conn_t *conn, int status, int events) {
  if (conn->broken)
    return;
  if ((events & QREG_POLL_WRITE) || status < 0) {
    job_flush(conn);
    if (conn->broken)
      return;
  }
  if ((events & QREG_POLL_READ) || status < 0) {
    if (!PQconsumeInput(conn->pg)) {
      job_note_lost_message(conn);
      if (PQstatus(conn->pg) != CONNECTION_BAD) {
        job_lost(conn);
        return;
      }
    }
  }
  job_read(conn);
}

static void on_io(qreg_poll_t *watch, int status, int events, void *arg) {
  qreg_driver_conn_t *conn = arg;
  (void)watch;
  /* An error from the poller (EPOLLERR, reported as UV_EBADF) stops the
     watch inside libuv: note it, so the next watch_set() starts it again
     while libpq reads what is left and finds the error itself. */
  if (status < 0)
    conn->watch_events = 0;
  if (conn->request != NULL) {
    if (conn->configuring || conn->prefetching)
      setup_io(conn, status, events);
    else
      connect_poll(conn);
    return;
  }
  if (conn->job != NULL) {
    job_io(conn, status, events);
    job_settle(conn);
    return;
  }
  /* Idle: the server spoke unasked - EOF or a FATAL message after it ended
     the backend, most likely. Stop watching (the socket would stay
     readable) and let alive() say no; the core then closes it. */
  conn->idle_readable = true;
  watch_set(conn, 0);
}

static void pg_cancel(qreg_driver_conn_t *conn, qreg_job_t *job) {
  if (conn->job == NULL || conn->job != job || conn->cancel_requested)
    return;
  conn->cancel_requested = true;
  job_send_cancel(conn);
  job_settle(conn);
}

/* ------------------------------------------------------------------------
 * Pool support, closing
 * ---------------------------------------------------------------------- */

static bool pg_alive(qreg_driver_conn_t *conn) {
  if (conn->idle_readable || PQstatus(conn->pg) != CONNECTION_OK ||
      PQtransactionStatus(conn->pg) != PQTRANS_IDLE)
    return false;
  /* An idle connection has nothing to say. Anything readable - EOF after
     the server went away, a FATAL message, anything unasked for - means it
     is not to be handed out. The idle watch notices that too, but its event
     may still wait in the loop's queue. */
  struct pollfd p = {.fd = PQsocket(conn->pg), .events = POLLIN};
  return p.fd >= 0 && poll(&p, 1, 0) == 0;
}


static void pg_close(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg) {
  /* PQfinish sends Terminate on a non-blocking socket and closes it: it does
     not wait on the network. */
  watch_drop(conn);
  PQfinish(conn->pg);
  job_reset(conn);
  free(conn);
  closed(arg);
}

/* ------------------------------------------------------------------------
 * Registry set-up
 * ---------------------------------------------------------------------- */

/* Whether url names this driver: postgres:// or postgresql://, or a libpq
   conninfo ("host=... dbname=..."), which has '=' and no scheme of its own. */
static bool pg_matches(const char *url) {
  if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
    return true;
  const char *p = url;
  while (*p == ' ' || *p == '\t' || *p == '\n')
    p++;
  if (isalpha((unsigned char)*p)) {
    const char *q = p;
    while (isalnum((unsigned char)*q) || *q == '+' || *q == '.' || *q == '-')
      q++;
    if (*q == ':')
      return false; /* "sqlite:...", "script:..." */
  }
  return strchr(url, '=') != NULL;
}

/* libpq's parse errors quote pieces of the string, which may be the
   password. Quoted pieces that are not a connection keyword (or a single
   character) are hidden - except in "invalid connection option", which
   quotes the unknown keyword. */
static char *safe_parse_error(const char *raw) {
  size_t len = strlen(raw);
  char *out = malloc(len * 2 + 32);
  if (out == NULL)
    return NULL;
  bool keep_all = strncmp(raw, "invalid connection option", 25) == 0;
  PQconninfoOption *defaults = keep_all ? NULL : PQconndefaults();
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    if (raw[i] != '"') {
      out[n++] = raw[i] == '\n' ? ' ' : raw[i];
      i++;
      continue;
    }
    const char *end = strchr(raw + i + 1, '"');
    if (end == NULL) {
      out[n++] = raw[i++];
      continue;
    }
    size_t piece = (size_t)(end - (raw + i + 1));
    bool keep = keep_all || piece <= 1;
    for (PQconninfoOption *o = defaults; !keep && o != NULL && o->keyword != NULL; o++)
      keep = strlen(o->keyword) == piece && strncmp(o->keyword, raw + i + 1, piece) == 0;
    if (keep) {
      memcpy(out + n, raw + i, piece + 2);
      n += piece + 2;
    } else {
      memcpy(out + n, "\"(hidden)\"", 10);
      n += 10;
    }
    i += piece + 2;
  }
  while (n > 0 && isspace((unsigned char)out[n - 1]))
    n--;
  out[n] = '\0';
  PQconninfoFree(defaults);
  return out;
}

static void pg_destroy(void *state_arg) {
  pg_state_t *state = state_arg;
  if (state == NULL)
    return;
  for (size_t i = 0; i < state->type_count; i++)
    free(state->types[i].name);
  free(state->types);
  for (size_t i = 0; i < sizeof state->secrets / sizeof state->secrets[0]; i++)
    free(state->secrets[i]);
  free(state->lookup_hosts);
  free(state->lookup_ports);
  free(state);
}

static int pg_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  *state_out = NULL;
  *message = NULL;
  char *parse_error = NULL;
  PQconninfoOption *options = PQconninfoParse(config->url, &parse_error);
  if (options == NULL) {
    if (parse_error == NULL) {
      *message = strdup("out of memory");
      return QREG_ENOMEM;
    }
    char *safe = safe_parse_error(parse_error);
    PQfreemem(parse_error);
    if (safe != NULL && asprintf(message, "invalid connection string: %s", safe) < 0)
      *message = NULL;
    free(safe);
    return QREG_EURL;
  }
  pg_state_t *state = calloc(1, sizeof *state);
  if (state == NULL) {
    PQconninfoFree(options);
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  state->loop = config->loop;
  state->url = config->url;
  state->application_name = config->application_name;
  state->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  const char *timeout = getenv("PGCONNECT_TIMEOUT");
  const char *host = getenv("PGHOST"), *hostaddr = getenv("PGHOSTADDR");
  const char *port = getenv("PGPORT");
  bool ok = true;
  for (PQconninfoOption *o = options; o->keyword != NULL; o++) {
    if (o->val == NULL || o->val[0] == '\0')
      continue;
    if (strcmp(o->keyword, "password") == 0)
      ok = ok && (state->secrets[0] = strdup(o->val)) != NULL;
    else if (strcmp(o->keyword, "connect_timeout") == 0)
      timeout = o->val;
    else if (strcmp(o->keyword, "host") == 0)
      host = o->val;
    else if (strcmp(o->keyword, "hostaddr") == 0)
      hostaddr = o->val;
    else if (strcmp(o->keyword, "port") == 0)
      port = o->val;
  }
  /* Names libpq would resolve with a blocking getaddrinfo() on the loop are
     resolved on a worker instead (not when hostaddr is given: then libpq
     does not look anything up). A host coming from a service file is the
     one case left to libpq. */
  if (host != NULL && host[0] != '\0' && (hostaddr == NULL || hostaddr[0] == '\0') &&
      hosts_need_lookup(host)) {
    ok = ok && (state->lookup_hosts = strdup(host)) != NULL;
    if (port != NULL && port[0] != '\0')
      ok = ok && (state->lookup_ports = strdup(port)) != NULL;
  }
  const char *env_password = getenv("PGPASSWORD");
  if (env_password != NULL && env_password[0] != '\0')
    ok = ok && (state->secrets[1] = strdup(env_password)) != NULL;
  if (timeout != NULL && timeout[0] != '\0') {
    /* As libpq reads it: seconds, 0 or less is "no limit", at least 2. */
    long seconds = strtol(timeout, NULL, 10);
    state->connect_timeout_ms = seconds <= 0 ? 0 : (uint64_t)(seconds < 2 ? 2 : seconds) * 1000;
  }
  PQconninfoFree(options);
  if (!ok) {
    pg_destroy(state);
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  *state_out = state;
  return 0;
}

const qreg_driver_t qreg_driver_postgres = {
    .name = "postgres",
    .matches = pg_matches,
    .create = pg_create,
    .destroy = pg_destroy,
    .connect = pg_connect,
    .alive = pg_alive,
    .execute = pg_execute,
    .cancel = pg_cancel,
    .close = pg_close,
};
