/*
 * src/drivers/postgres.c - the PostgreSQL driver: the driver.h contract on
 * libpq, driven non-blocking on the registry's loop thread. This file holds
 * the descriptor (qreg_driver_postgres), the socket watch, running a job,
 * cancel and close; postgres.h lists the driver's other files (connecting,
 * the URL and its options, the catalog, values).
 *
 * Owns, per registry (pg_state_t, made in postgres_url.c): the parsed
 * settings (connect timeout, passwords to keep out of messages, host names
 * to resolve, the statement_timeout backstop) and the cache of type names.
 * Per connection (struct qreg_driver_conn): the PGconn, the socket watch on
 * it, the connect timer, the job running on it and the cancel request in
 * flight. Everything runs on the loop thread except two blocking calls that
 * run on a worker (qreg_loop_work): getaddrinfo() for host names before
 * libpq connects (libpq would resolve them on the loop), and PQcancel(),
 * which touches only the cancel fields.
 *
 * Connecting: see postgres_connect.c.
 *
 * How one query runs. execute() writes one pipeline (libpq pipeline mode: a
 * single write, one Sync, no round trip between the parts):
 *
 *     BEGIN READ ONLY  (or BEGIN when writes are allowed)
 *     SELECT set_config('statement_timeout', ..., true)
 *                                        the backstop behind the core's timeout
 *                                        (options statement_timeout_backstop,
 *                                        statement_timeout_margin_ms)
 *     <the user's statement>             extended protocol: exactly one statement,
 *                                        so "COMMIT; DROP TABLE x" is refused
 *     ROLLBACK  (or COMMIT)
 *     DISCARD ALL, SESSION_SQL           the reset
 *     the clean-session check            postgres_guard.c
 *     Sync
 *     [type-name lookup, Sync]           appended only when a column's type is
 *                                        neither built in nor cached
 *
 * and reads the results back as they come, the user's rows in single-row mode
 * straight into the result store. Why a pooled connection is clean: the
 * statement runs inside our transaction. A READ ONLY one is rolled back,
 * which undoes every SET and drops cursors WITH HOLD and LISTEN (they exist
 * only once committed); it cannot create temporary objects or advance
 * sequences; what it can leave behind - prepared statements and session
 * advisory locks - DISCARD ALL removes, as it removes anything a committed
 * transaction left; the session defaults are then set again, and a check
 * confirms the session runs as its login role. A connection is handed back for reuse only
 * when all of that succeeded, the transaction status is idle and nothing
 * else happened (no error, no truncation, no cancel, no LOAD, no foreign
 * server the role could use); otherwise the core closes it. READ ONLY alone
 * does not hold against a privileged role: a read-only registry checks the
 * role when it connects (postgres_guard.c).
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
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "drivers/driver.h"
#include "drivers/postgres.h"
#include "drivers/postgres_values.h"

/* A cancel request that reaches the backend before it has read the
   statement is ignored by the server: while the statement still runs, the
   request is repeated this often, this many times, before the connection
   is abandoned instead. */
#define CANCEL_RETRY_MS 500u
#define CANCEL_ATTEMPTS 10u

static void on_io(qreg_poll_t *watch, int status, int events, void *arg);

/* ------------------------------------------------------------------------
 * The socket watch
 * ---------------------------------------------------------------------- */

void qreg__pg_watch_drop(qreg_driver_conn_t *conn) {
  if (conn->watch != NULL) {
    qreg_poll_close(conn->watch);
    conn->watch = NULL;
  }
  conn->watch_fd = -1;
  conn->watch_events = 0;
}

int qreg__pg_watch_set(qreg_driver_conn_t *conn, int events) {
  int fd = PQsocket(conn->pg);
  if (conn->watch != NULL && conn->watch_fd != fd)
    qreg__pg_watch_drop(conn);
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
    qreg__pg_watch_drop(conn);
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

/* Records the job's error, verbatim; the first one wins (the server's reason for
   dying comes before libpq's "server closed the connection"). */
static void job_error(qreg_driver_conn_t *conn, const char *type, const char *code,
                      const char *message, const char *detail, const char *hint) {
  qreg_driver_error_t *error = &conn->job->error;
  if (error->type != NULL || error->message != NULL)
    return;
  /* The server's words as it sent them. Masking the password inside them
     would let a query that quotes its guesses in an error ("SELECT
     'guess'::int") learn which guess was masked (docs/security.md). */
  qreg_driver_error_set(error, type, code, "%s", message ? message : "unknown error");
  qreg_driver_error_set_detail(error, detail);
  qreg_driver_error_set_hint(error, hint);
}

/* Keeps libpq's message from the moment the connection failed. */
static void job_note_lost_message(qreg_driver_conn_t *conn) {
  if (conn->lost_message == NULL)
    conn->lost_message = qreg__pg_one_line(PQerrorMessage(conn->pg));
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
  char *message = qreg__pg_one_line(raw && *raw ? raw : PQerrorMessage(conn->pg));
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
  qreg__pg_watch_set(conn, 0);
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
    char *reason = qreg__pg_one_line_message(conn->state, conn->cancel_error);
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
  if (qreg__pg_watch_set(conn, rc == 1 ? QREG_POLL_READ | QREG_POLL_WRITE : QREG_POLL_READ) != 0) {
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
  uint64_t margin = conn->state->statement_timeout_margin_ms;
  if (conn->state->statement_timeout_backstop && timeout > 0 &&
      timeout <= (uint64_t)INT_MAX - margin)
    snprintf(buf, size, "SELECT pg_catalog.set_config('statement_timeout', '%" PRIu64 "', true)",
             timeout + margin);
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
     prepared statements (PREPARE) and session advisory locks; SETs are
     undone by the rollback, cursors WITH HOLD and LISTEN exist only once
     committed, temporary objects cannot be made read-only. A committed
     transaction can leave anything. Either way: DISCARD ALL (allowed here:
     our transaction has ended, and it is the first command of the next
     implicit transaction), which also resets our session defaults, so they
     are set again; then a check that the session is clean
     (postgres_guard.c): the connection is pooled only if it says so. */
  if (sent)
    sent = job_send_cleanup(conn, "DISCARD ALL") &&
           job_send_cleanup(conn, qreg__pg_session_sql(conn)) &&
           job_send(conn, STEP_CHECK, qreg__pg_clean_check_sql(), 0, NULL);
  if (sent)
    conn->cleanup_left++; /* the check counts as done once it says clean */
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
    if (qreg__pg_cached_type_name(conn->state, oid) != NULL)
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
   names are known when built in or cached (the prefetch, an earlier
   lookup); an unknown one (a table's row type) is looked up right after the
   statement, in the same pipeline, and set before the query completes. */
static void job_columns(qreg_driver_conn_t *conn, const PGresult *res) {
  int count = PQnfields(res);
  conn->column_count = 0;
  if (count > 0 &&
      (conn->column_types = calloc((size_t)count, sizeof *conn->column_types)) == NULL) {
    job_stop_storing(conn, QREG_ENOMEM);
    return;
  }
  conn->column_count = count;
  int rc = qreg_result_set_columns(conn->job->result, (size_t)count);
  bool unknown = false;
  for (int i = 0; rc == 0 && i < count; i++) {
    Oid oid = conn->column_types[i] = PQftype(res, i);
    const char *type = qreg__pg_cached_type_name(conn->state, oid);
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

/* The type names the lookup after the statement just learned, given to
   the columns that showed "" (the query has not completed yet, so its
   result still belongs to this job). */
static void job_late_column_types(qreg_driver_conn_t *conn) {
  qreg_result_t *result = conn->job->result;
  for (int i = 0; i < conn->column_count; i++) {
    const char *type = qreg__pg_cached_type_name(conn->state, conn->column_types[i]);
    const char *shown = qreg_result_column_type(result, (size_t)i);
    if (type != NULL && shown != NULL && shown[0] == '\0')
      (void)qreg_result_set_column_type(result, (size_t)i, type); /* "" stays on ENOMEM */
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
      qreg__pg_learn_types(conn->state, res);
      job_late_column_types(conn);
    } else if (step == STEP_CLEANUP && status == PGRES_TUPLES_OK) {
      conn->cleanup_left--;
    } else if (step == STEP_CHECK && status == PGRES_TUPLES_OK) {
      if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        conn->cleanup_left--;
      else
        conn->unclean = true;
    }
    break;
  case PGRES_COMMAND_OK:
  case PGRES_EMPTY_QUERY:
    if (step == STEP_USER)
      conn->user_done = true;
    /* A library loaded by LOAD stays in the session (its code may have
       changed anything): no reset undoes it, so the connection is closed. */
    if (step == STEP_USER && strncmp(PQcmdStatus(res), "LOAD", 4) == 0)
      conn->unclean = true;
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
              "COPY to or from the client is not supported: run a query that returns rows", NULL,
              NULL);
    job_mark_failed(conn);
    job_abandon(conn);
    break;
  default: /* PGRES_FATAL_ERROR and anything unexpected */
    if (step == STEP_USER)
      conn->user_done = true;
    if ((step == STEP_USER && conn->truncated) || step == STEP_TYPES ||
        ((step == STEP_CLEANUP || step == STEP_CHECK) && conn->essential_done)) {
      /* Most likely our own cancel of the rest; or type names stay
         unknown; or the session is not clean. */
      conn->unclean = true;
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
  /* libpq closes its socket in whichever call finds the connection dead
     (PQconsumeInput, PQflush): the watch goes now, before the loop can give
     that fd number to a new connection - not when the job ends, which may
     wait seconds for a cancel request in flight. A watch left on a closed
     fd makes every connect that gets the number fail ("file exists"). */
  if (job != NULL)
    watch_check_socket(conn);
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
    reusable = idle && !conn->unclean && !conn->never_pool && !conn->failed && !conn->truncated &&
               !conn->cancel_requested && !conn->cancel_sent && conn->cleanup_left == 0 &&
               PQstatus(conn->pg) == CONNECTION_OK && PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
  }
  /* A reusable connection keeps its read watch while idle (on_io() notices
     a server that ends the backend); any other is about to be closed. */
  if (!reusable || qreg__pg_watch_set(conn, QREG_POLL_READ) != 0) {
    reusable = false;
    qreg__pg_watch_set(conn, 0);
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
  /* The loop polls its own duplicate of the socket (qreg_poll_start): once
     libpq has closed its socket the duplicate may still report the dead
     connection. Whoever saw libpq close it has dealt with that; stop. */
  if (PQsocket(conn->pg) != conn->watch_fd) {
    qreg__pg_watch_drop(conn);
    return;
  }
  /* An error from the poller (EPOLLERR, reported as UV_EBADF) stops the
     watch inside libuv: note it, so the next qreg__pg_watch_set() starts it again
     while libpq reads what is left and finds the error itself. */
  if (status < 0)
    conn->watch_events = 0;
  if (conn->request != NULL) {
    qreg__pg_connect_io(conn, status, events);
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
  qreg__pg_watch_set(conn, 0);
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
  qreg__pg_watch_drop(conn);
  PQfinish(conn->pg);
  job_reset(conn);
  free(conn->refusal);
  free(conn);
  closed(arg);
}

/* ------------------------------------------------------------------------
 * The descriptor
 * ---------------------------------------------------------------------- */

static const char *const pg_schemes[] = {"postgres", "postgresql", NULL};

const qreg_driver_t qreg_driver_postgres = {
    .name = "postgres",
    .schemes = pg_schemes,
    .url_forms = "postgres://USER@HOST/DB, postgresql://... or a libpq conninfo "
                 "\"host=... dbname=...\"",
    .matches = qreg__pg_matches,
    .redact_url = qreg__pg_redact_url,
    .options = qreg__pg_options,
    /* NAMEDATALEN - 1: the server cuts longer names (an application_name cut
       short would hide our sessions from a pg_stat_activity filter; a table
       name cut short would name another table). */
    .limits = {.identifier_bytes = 63, .application_name_bytes = 63},
    .create = qreg__pg_create,
    .destroy = qreg__pg_destroy,
    .connect = qreg__pg_connect,
    .alive = pg_alive,
    .execute = pg_execute,
    .cancel = pg_cancel,
    .close = pg_close,
    .read_only_enforced = qreg__pg_read_only_enforced,
    .catalog_sql = qreg__pg_catalog_sql,
    .quote_identifier = qreg_driver_quote_double,
};
