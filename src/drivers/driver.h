/*
 * src/drivers/driver.h - the driver vtable: the only way the registry core
 * talks to a database. The core never includes a database header; a driver
 * never includes uv.h (it gets the loop's facilities from core/loop.h) and
 * never calls back into a front end.
 *
 * The contract, which every driver and the core rely on:
 *
 *  1. Threads. Every vtable function except create/destroy is called on the
 *     registry's loop thread, and every completion a driver reports
 *     (qreg_conn_request_done, qreg_job_complete, the close callback) is made
 *     on the loop thread. Blocking calls go to qreg_loop_work().
 *  2. Exactly once. connect() reports exactly once through
 *     qreg_conn_request_done(); execute() reports exactly once through
 *     qreg_job_complete(); close() reports exactly once through its callback.
 *     A completion may be reported from inside the call itself (a failure
 *     found at once): the core never holds its lock while calling a driver.
 *  3. Busy. Between execute() and its qreg_job_complete() the connection is
 *     busy: the core will not execute, close or pool it. The driver reports
 *     completion only when nothing is in flight on the connection any more -
 *     the worker has returned, libpq is idle - so the core may release it at
 *     once. Asking to stop (cancel) is not stopping; completion is.
 *  4. Cancel. cancel() asks the in-flight execute() to stop, on the server too,
 *     and returns at once; it is idempotent and a no-op after completion was
 *     reported. The execute still completes exactly once (with
 *     QREG_JOB_CANCELED, or OK/ERROR if it won the race). If the server-side
 *     cancel fails, the driver still ends the job (and marks the connection
 *     not reusable): never a job that never completes.
 *  5. Close. close() is only called on a connection with nothing in flight.
 *     It releases everything the connection holds.
 */
#ifndef QREG_DRIVERS_DRIVER_H
#define QREG_DRIVERS_DRIVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/result.h"

/* Each driver defines its own struct qreg_driver_conn; the core only holds
   pointers to it. */
typedef struct qreg_driver_conn qreg_driver_conn_t;

/* An error a driver reports. Strings are heap copies owned by the holder
   (the job or the connect request); NULL when absent. */
typedef struct qreg_driver_error {
  char *type;    /* "database", "connection", "canceled", "limit", ... */
  char *code;    /* SQLSTATE, or the SQLite result code name */
  char *message;
  char *detail;
  char *hint;
} qreg_driver_error_t;

/* Replaces the error's type, code (may be NULL) and message (printf-style).
   Never fails: on ENOMEM the strings stay NULL and the core reports a generic
   message. */
void qreg_driver_error_set(qreg_driver_error_t *error, const char *type,
                           const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void qreg_driver_error_set_detail(qreg_driver_error_t *error, const char *detail);
void qreg_driver_error_set_hint(qreg_driver_error_t *error, const char *hint);
void qreg_driver_error_clear(qreg_driver_error_t *error);

/* What a driver is given when the registry opens. Strings live as long as the
   driver state. */
typedef struct qreg_driver_config {
  const char *url;              /* the registry's db_url, as given */
  bool allow_writes;            /* registry-wide: writes may be allowed per query */
  const char *application_name; /* "qreg" unless configured */
  unsigned max_connections;
  qreg_loop_t *loop;
} qreg_driver_config_t;

/* A request to open one connection. The core owns it; the driver reads
   nothing from it and reports once through qreg_conn_request_done(). */
typedef struct qreg_conn_request qreg_conn_request_t;

/* Reports the outcome of connect(): conn on success, or NULL with error filled
   (the driver has already freed everything the failed attempt held). */
void qreg_conn_request_done(qreg_conn_request_t *request,
                            qreg_driver_conn_t *conn,
                            const qreg_driver_error_t *error);

/* One statement to run on one connection. */
typedef enum qreg_job_outcome {
  QREG_JOB_OK = 0,       /* ran to the end (result possibly truncated) */
  QREG_JOB_ERROR = 1,    /* the database or the driver failed: error filled */
  QREG_JOB_CANCELED = 2, /* stopped because cancel() asked */
} qreg_job_outcome_t;

typedef struct qreg_job {
  /* In: set by the core before execute(); the driver only reads them. */
  const char *sql;      /* NUL-terminated, valid UTF-8, no NUL inside */
  size_t sql_len;
  bool read_only;       /* the statement must not be able to write */
  uint64_t timeout_ms;  /* time left before the core times the query out
                           (0 = none): a server-side backstop may use it */
  qreg_result_t *result;/* where columns and rows go */

  /* Out: set by the driver before qreg_job_complete(). */
  qreg_driver_error_t error; /* for QREG_JOB_ERROR (and a failed cancel) */
  bool conn_reusable;        /* the connection is clean and may be pooled:
                                only after a clean QREG_JOB_OK */

  void *core; /* private to the core */
} qreg_job_t;

/* Reports the job's end. Loop thread, exactly once per execute(), only when
   nothing is in flight on the connection any more. */
void qreg_job_complete(qreg_job_t *job, qreg_job_outcome_t outcome);

typedef struct qreg_driver {
  const char *name; /* "sqlite", "postgres" */

  /* Whether this driver serves the URL (by its scheme or form). */
  bool (*matches)(const char *url);

  /* Sets up per-registry driver state; parses and checks the URL. Called on
     the qreg_open() caller's thread, before the loop runs. On failure returns
     a negative QREG_E* code and a malloc'd message in *message (no password
     in it). */
  int (*create)(const qreg_driver_config_t *config, void **state_out,
                char **message);

  /* Frees the state. Called after every connection of it has been closed and
     the loop has stopped. */
  void (*destroy)(void *state);

  /* Starts opening a connection; reports through qreg_conn_request_done(). */
  void (*connect)(void *state, qreg_conn_request_t *request);

  /* Whether an idle pooled connection can still be used (cheap, no I/O that
     blocks). NULL means always. */
  bool (*alive)(qreg_driver_conn_t *conn);

  /* The database's own id for this connection's session: PostgreSQL backend
     pid, SQLite connection serial. Valid while the connection is open. */
  const char *(*backend_id)(qreg_driver_conn_t *conn);

  /* Starts running job->sql on conn; reports through qreg_job_complete(). */
  void (*execute)(qreg_driver_conn_t *conn, qreg_job_t *job);

  /* Asks the job running on conn to stop (see the contract above). */
  void (*cancel)(qreg_driver_conn_t *conn, qreg_job_t *job);

  /* Closes a connection with nothing in flight; calls closed(arg) once, on the
     loop thread, when everything it held is released. */
  void (*close)(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg);
} qreg_driver_t;

/* The drivers qreg is built with. */
extern const qreg_driver_t qreg_driver_sqlite;
extern const qreg_driver_t qreg_driver_postgres;

/*
 * Adds a driver (tests add the scripted one). Drivers added later are tried
 * first. Not thread-safe: call before any qreg_open(). Returns 0 or
 * QREG_ENOMEM.
 */
int qreg_driver_register(const qreg_driver_t *driver);

/* The driver that serves url, or NULL. */
const qreg_driver_t *qreg_driver_find(const char *url);

#endif /* QREG_DRIVERS_DRIVER_H */
