/*
 * src/drivers/postgres_connect.c - opening a PostgreSQL connection without
 * blocking the loop (postgres.h lists the driver's files).
 *
 * Owns, per connection while it opens: the connect timer and the host name
 * lookup in flight; per registry: the cache of type names (loop thread).
 *
 * Connecting: host names are resolved on a worker (getaddrinfo blocks; libpq
 * would call it on the loop), then PQconnectStartParams (the URL or conninfo
 * expanded, PG* variables honoured, application_name, the password option
 * and client_encoding UTF8 on top) and PQconnectPoll driven by the socket
 * watch, under our own timer (libpq's connect_timeout is not honoured by
 * non-blocking connects). Then one query sets the session defaults
 * (DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601, hex bytea, exact floats, and on PostgreSQL
 * 14+ client_connection_check_interval so a backend notices an abandoned
 * connection), a read-only registry checks the role and refuses one that
 * READ ONLY cannot hold (postgres_guard.c; the refusal is the connect's
 * error, so the query waiting for the connection fails with it), and the
 * first connection of a registry loads the names of
 * user and extension types (the result store needs a column's type name
 * before its first row).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "drivers/postgres.h"
#include "drivers/postgres_values.h"

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
 * Type names: built in, or learned from the server once per registry
 * ---------------------------------------------------------------------- */

const char *qreg__pg_cached_type_name(const pg_state_t *state, Oid oid) {
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
  if (qreg__pg_cached_type_name(state, oid) != NULL)
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
  memmove(state->types + at + 1, state->types + at,
          (state->type_count - at) * sizeof *state->types);
  state->types[at] = (type_name_t){oid, copy};
  state->type_count++;
}

/* Caches the (oid, name) rows of a type-name query. */
void qreg__pg_learn_types(pg_state_t *state, const PGresult *res) {
  for (int row = 0; row < PQntuples(res); row++) {
    if (PQgetisnull(res, row, 0) || PQgetisnull(res, row, 1))
      continue;
    Oid oid = (Oid)strtoul(PQgetvalue(res, row, 0), NULL, 10);
    cache_type_name(state, oid, PQgetvalue(res, row, 1));
  }
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
   NULL means libpq's own message; hint may be NULL. Tail call: conn is gone
   afterwards. */
static void connect_fail_hint(qreg_driver_conn_t *conn, const char *reason, const char *hint) {
  char *message = NULL;
  if (reason != NULL)
    message = qreg__pg_scrubbed_copy(conn->state, reason);
  else
    message = qreg__pg_one_line_message(conn->state, conn->pg ? PQerrorMessage(conn->pg) : NULL);
  if (conn->prefetching) /* the next connection tries again */
    conn->state->types_loading = false;
  if (conn->lookup != NULL) /* its worker still runs; it frees itself */
    conn->lookup->conn = NULL;
  qreg_driver_error_t error = {0};
  qreg_driver_error_set(&error, "connection", NULL, "%s",
                        message ? message : "could not connect to the server");
  qreg_driver_error_set_hint(&error, hint);
  free(message);
  free(conn->refusal);
  qreg__pg_watch_drop(conn);
  if (conn->connect_timer != NULL)
    qreg_timer_close(conn->connect_timer);
  PQfinish(conn->pg);
  qreg_conn_request_t *request = conn->request;
  free(conn);
  qreg_conn_request_done(request, NULL, &error);
  qreg_driver_error_clear(&error);
}

static void connect_fail(qreg_driver_conn_t *conn, const char *reason) {
  connect_fail_hint(conn, reason, NULL);
}

static void connect_timed_out(qreg_timer_t *timer, void *arg) {
  qreg_driver_conn_t *conn = arg;
  (void)timer;
  char reason[512];
  const char *host = conn->pg ? PQhost(conn->pg) : conn->state->lookup_hosts;
  const char *port = conn->pg ? PQport(conn->pg) : conn->state->lookup_ports;
  snprintf(reason, sizeof reason, "timed out after %" PRIu64 " ms connecting to %s%s%s%s%s",
           conn->state->connect_timeout_ms, host && *host ? "\"" : "",
           host && *host ? host : "the server", host && *host ? "\"" : "",
           port && *port ? " port " : "", port && *port ? port : "");
  connect_fail(conn, reason);
}

/* Waits for what PQconnectPoll() asked for. The socket may change between
   polls (another address, another host), so the watch is made afresh. */
static void connect_wait(qreg_driver_conn_t *conn, PostgresPollingStatusType want) {
  qreg__pg_watch_drop(conn);
  int rc =
      qreg__pg_watch_set(conn, want == PGRES_POLLING_READING ? QREG_POLL_READ : QREG_POLL_WRITE);
  if (rc != 0)
    connect_fail(conn, PQsocket(conn->pg) < 0 ? NULL : "cannot watch the connection's socket");
}

/* The names of every built-in type outside postgres_values.c's table
   (multiranges, the system catalogs' row types, ...: a few hundred) and of
   every type an extension or a user created (enums, domains, ranges,
   extension types; not the row types of tables, which can be many), loaded
   once per registry by its first connection: the result store needs a
   column's type name before the first row, so it must be known before the
   query runs. */
#define TYPE_PREFETCH_SQL                                                                          \
  "SELECT t.oid::pg_catalog.int8, pg_catalog.format_type(t.oid, NULL) "                            \
  "FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem "                 \
  "WHERE t.oid < 10000 OR (t.typtype <> 'c' AND (e.oid IS NULL OR e.typtype <> 'c')) "             \
  "LIMIT 20000"

/* The session's defaults, set once per connection and again after every
   DISCARD ALL (a write job's cleanup, which resets them): values come out
   the same way on every server (postgres_values.c reads ISO dates, UTC, hex
   bytea, exact floats, ISO 8601 intervals) and, on PostgreSQL 14+, a backend running a long
   statement notices within connection_check_interval_ms (1 s) that its
   client went away (an abandoned connection). A read-only job cannot change them for good: its transaction
   is rolled back, and a rolled-back SET is undone. Session-level SETs rather
   than startup options: an option the server does not know (the check
   interval before 14) fails the connect, and ours would replace the user's
   own options (URL, PGOPTIONS, service file). A SQL_ASCII database holds
   any bytes and the server refuses to send those that are not UTF-8 to a
   UTF8 client (22021): such a session reads SQL_ASCII, raw, and the result
   store replaces what is not UTF-8 with U+FFFD. */
#define SESSION_SQL                                                                                \
  "SELECT pg_catalog.set_config('DateStyle', 'ISO', false), "                                      \
  "pg_catalog.set_config('TimeZone', 'UTC', false), "                                              \
  "pg_catalog.set_config('bytea_output', 'hex', false), "                                          \
  "pg_catalog.set_config('extra_float_digits', '3', false), "                                      \
  "pg_catalog.set_config('IntervalStyle', 'iso_8601', false), "                                    \
  "pg_catalog.set_config('client_encoding', "                                                      \
  "CASE pg_catalog.current_setting('server_encoding') WHEN 'SQL_ASCII' THEN 'SQL_ASCII' "          \
  "ELSE 'UTF8' END, false)"

char *qreg__pg_session_sql_14(uint64_t check_interval_ms) {
  char *sql = NULL;
  if (check_interval_ms == 0)
    return strdup(SESSION_SQL);
  if (asprintf(&sql,
               SESSION_SQL ", pg_catalog.set_config('client_connection_check_interval', "
                           "'%" PRIu64 "', false)",
               check_interval_ms) < 0)
    return NULL;
  return sql;
}

const char *qreg__pg_session_sql(const qreg_driver_conn_t *conn) {
  return PQserverVersion(conn->pg) >= 140000 ? conn->state->session_sql_14 : SESSION_SQL;
}

/* Hands the open connection to the core. */
static void connect_report(qreg_driver_conn_t *conn) {
  qreg_timer_close(conn->connect_timer);
  conn->connect_timer = NULL;
  /* From now on the socket is fixed, and the read watch stays armed while
     the connection is idle (see idle_readable). */
  if (qreg__pg_watch_set(conn, QREG_POLL_READ) != 0) {
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
         qreg__pg_watch_set(conn, rc == 1 ? QREG_POLL_READ | QREG_POLL_WRITE : QREG_POLL_READ) == 0;
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

/* A read-only registry checks the role (postgres_guard.c) before the
   connection is used; false if there is nothing to check. */
static bool role_check_start(qreg_driver_conn_t *conn) {
  if (!conn->state->check_role)
    return false;
  conn->checking_role = true;
  conn->role_checked = false;
  if (PQsendQueryParams(conn->pg, qreg__pg_role_check_sql(), 0, NULL, NULL, NULL, NULL, 0) != 1 ||
      !setup_flush(conn))
    setup_end(conn, false);
  return true;
}

/* The role check's row. */
static void role_check_row(qreg_driver_conn_t *conn, const PGresult *res) {
  bool failed = false;
  free(conn->refusal);
  conn->refusal = qreg__pg_role_refusal(res, &conn->never_pool, &failed);
  conn->role_checked = !failed;
}

/* The connect-time queries (session defaults, the role check, then the
   type names) are over. The session defaults and the role check must
   succeed; the type names may fail (their columns then show "" until an
   execute looks them up). */
static void setup_end(qreg_driver_conn_t *conn, bool ok) {
  bool idle = PQstatus(conn->pg) == CONNECTION_OK && PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
  if (conn->configuring) {
    conn->configuring = false;
    if (!ok || !idle) {
      connect_fail(conn, NULL);
      return;
    }
    if (!role_check_start(conn) && !prefetch_start(conn))
      connect_report(conn);
    return;
  }
  if (conn->checking_role) {
    conn->checking_role = false;
    if (!idle || PQstatus(conn->pg) != CONNECTION_OK) {
      connect_fail(conn, NULL);
      return;
    }
    if (!ok || !conn->role_checked) {
      /* Refusing is the safe answer when the check cannot say. */
      connect_fail_hint(conn,
                        conn->check_error[0] != '\0'
                            ? conn->check_error
                            : "the read-only registry could not check the role's privileges",
                        NULL);
      return;
    }
    if (conn->refusal != NULL) {
      connect_fail_hint(conn, conn->refusal, qreg__pg_role_hint());
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
        qreg__pg_learn_types(conn->state, res);
      else if (conn->checking_role)
        role_check_row(conn, res);
      else
        conn->setup_ok = true;
    } else if (conn->checking_role && PQresultStatus(res) == PGRES_FATAL_ERROR) {
      const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
      snprintf(conn->check_error, sizeof conn->check_error,
               "the read-only registry could not check the role's privileges: %s",
               primary ? primary : "unknown error");
    }
    PQclear(res);
  }
}

static void connect_succeeded(qreg_driver_conn_t *conn) {
  if (PQsetnonblocking(conn->pg, 1) != 0 ||
      PQsendQueryParams(conn->pg, qreg__pg_session_sql(conn), 0, NULL, NULL, NULL, NULL, 0) != 1) {
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
  const char *keywords[8], *values[8];
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
  if (state->password != NULL)
    keywords[n] = "password", values[n++] = state->password;
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

bool qreg__pg_hosts_need_lookup(const char *hosts) {
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
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST) ==
            0)
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

void qreg__pg_connect(void *state_arg, qreg_conn_request_t *request) {
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

void qreg__pg_connect_io(qreg_driver_conn_t *conn, int status, int events) {
  if (conn->configuring || conn->checking_role || conn->prefetching)
    setup_io(conn, status, events);
  else
    connect_poll(conn);
}
