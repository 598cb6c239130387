/*
 * src/drivers/postgres.h - what the files of the PostgreSQL driver share:
 * the per-registry state, the connection, and the functions one file calls
 * in another. Only src/drivers/postgres*.c include it.
 *
 *   postgres.c          the descriptor, the socket watch, running a job,
 *                       cancel, close
 *   postgres_connect.c  opening a connection: host names resolved on a
 *                       worker, libpq's non-blocking connect, the session
 *                       defaults, the cache of type names
 *   postgres_url.c      the URL or conninfo: qreg's options, what goes to
 *                       libpq, redaction, connect messages without
 *                       passwords (server errors pass verbatim); the
 *                       per-registry state (create, destroy)
 *   postgres_guard.c    the read-only policy: the role check at connect,
 *                       the clean-session check after each job
 *   postgres_catalog.c  the catalog SQL (pg_catalog)
 *   postgres_values.c   text-format values as qreg values
 */
#ifndef QREG_DRIVERS_POSTGRES_H
#define QREG_DRIVERS_POSTGRES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "drivers/driver.h"

/* libpq's connect_timeout is not honoured by PQconnectPoll: we time the
   connect ourselves (connect_timeout, libpq's meaning: seconds). */
#define PG_DEFAULT_CONNECT_TIMEOUT_MS 10000u
/* BEGIN, SETUP, USER, END, CLEANUP x 2, CHECK, SYNC, TYPES, SYNC. */
#define MAX_STEPS 10

/* A type name learned from the server. */
typedef struct type_name {
  Oid oid;
  char *name; /* owned */
} type_name_t;

/* Per registry. Made by create() on the qreg_open() caller's thread; then
   read by the loop thread (and the settings by workers), except the type
   cache, which only the loop thread touches. */
typedef struct pg_state {
  qreg_loop_t *loop;
  char *url;                            /* owned: what libpq expands: the registry's
                                   URL or conninfo without qreg's own options */
  char *application_name;               /* owned: the option, else the URL's, else
                                   the registry's */
  char *password;                       /* owned: the password option; NULL: libpq
                                   finds it (URL, PGPASSWORD, .pgpass) */
  char *secrets[3];                     /* owned: the URL's password, PGPASSWORD and
                                   the password option, removed from what
                                   libpq says while connecting (never
                                   from the server's error text) */
  uint64_t connect_timeout_ms;          /* 0: none */
  bool statement_timeout_backstop;      /* set statement_timeout per query */
  bool check_role;                      /* a read-only registry without
                                   allow_privileged_role: each connection
                                   checks its role (postgres_guard.c) */
  uint64_t statement_timeout_margin_ms; /* added to the core's timeout */
  char *session_sql_14;                 /* owned: the session defaults on PostgreSQL
                                   14+ (with the connection check interval) */
  char *lookup_hosts;                   /* owned: host names to resolve on a worker
                                   before libpq connects (it would resolve
                                   them on the loop, blocking); NULL: none */
  char *lookup_ports;                   /* owned: the port list that goes with them */
  type_name_t *types;                   /* owned, sorted by oid; loop thread only */
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
  STEP_CHECK, /* the clean-session check: one boolean row */
  STEP_SYNC,
  STEP_TYPES,
} step_t;

struct qreg_driver_conn {
  pg_state_t *state;  /* the driver's; outlives every connection */
  PGconn *pg;         /* owned: PQfinish in close() or when connecting fails */
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
  bool checking_role;          /* connected, checking the role (check_role) */
  bool role_checked;           /* the role check's row arrived */
  char *refusal;               /* owned: why the role is refused; NULL: it is not */
  char check_error[300];       /* the server's error for the role check */
  bool never_pool;             /* the role can use a foreign server, whose
                                  connections no reset closes: close this
                                  connection after each job */

  /* Idle (no job): the read watch stays armed; anything readable means the
     server spoke unasked (it ended the backend): never hand it out again. */
  bool idle_readable;

  /* The job (job != NULL from execute() until qreg_job_complete()). */
  qreg_job_t *job;
  step_t steps[MAX_STEPS];
  unsigned step_count;
  unsigned step_next;    /* the step whose results are being read */
  unsigned first_sync;   /* index of the Sync that ends our transaction */
  unsigned cleanup_left; /* cleanup steps that have not succeeded yet */
  int column_count;      /* -1 until the statement described its rows */
  Oid *column_types;     /* owned, column_count entries */
  bool storing;          /* rows still go into the result */
  bool truncated;        /* the store said FULL: rows were cut */
  bool failed;           /* the statement or our transaction failed */
  bool essential_done;   /* our transaction ended: its ROLLBACK or COMMIT
                              (or the first Sync) came back */
  bool user_done;        /* the statement's results ended (or failed) */
  bool unclean;          /* something happened that forbids reuse */
  bool broken;           /* abandoned: stop reading, complete, never reuse */
  bool cancel_requested; /* the core asked to cancel */
  bool cancel_sent;      /* a server-side cancel was started (once per job) */
  bool cancel_failed;
  char *lost_message;    /* owned: libpq's first words when the connection
                              died (later calls pile more text on it) */
  char farewell_code[6]; /* a class-57 notice from the server (immediate
                              shutdown says why only as a WARNING) */
  char farewell_message[256];

  /* The cancel request in flight (cancel_in_flight): the worker owns
     cancel, cancel_ok and cancel_error until cancel_done() runs. */
  bool cancel_in_flight;
  unsigned cancel_attempts;
  qreg_timer_t *cancel_retry; /* owned: the next attempt, while one is due */
  qreg_work_t cancel_work;
  PGcancel *cancel;
  int cancel_ok;
  char cancel_error[256];
};

/* --- postgres.c ------------------------------------------------------------ */

/* Watches PQsocket() for events (0 pauses). A watch on a socket libpq has
   closed or replaced is dropped first. 0 or a negative code. */
int qreg__pg_watch_set(qreg_driver_conn_t *conn, int events);
void qreg__pg_watch_drop(qreg_driver_conn_t *conn);

/* --- postgres_connect.c ---------------------------------------------------- */

/* driver.h connect(). */
void qreg__pg_connect(void *state, qreg_conn_request_t *request);
/* The socket is ready while the connection is being opened (request set). */
void qreg__pg_connect_io(qreg_driver_conn_t *conn, int status, int events);
/* The session defaults of a PostgreSQL 14+ server, with
   client_connection_check_interval (0: left alone); malloc'd, NULL on
   ENOMEM. */
char *qreg__pg_session_sql_14(uint64_t check_interval_ms);
/* The session defaults, set on each new connection and after DISCARD ALL. */
const char *qreg__pg_session_sql(const qreg_driver_conn_t *conn);
/* Whether a host list ("a,b,/tmp") names a host that must be looked up
   (not a socket directory, not an IP address). */
bool qreg__pg_hosts_need_lookup(const char *hosts);
/* A type's name: built in, or cached; NULL when unknown. */
const char *qreg__pg_cached_type_name(const pg_state_t *state, Oid oid);
/* Caches the (oid, name) rows of a type-name query. */
void qreg__pg_learn_types(pg_state_t *state, const PGresult *res);

/* --- postgres_url.c -------------------------------------------------------- */

extern const qreg_driver_option_t qreg__pg_options[];
/* driver.h matches(), create(), destroy(), redact_url(). */
bool qreg__pg_matches(const char *url);
int qreg__pg_create(const qreg_driver_config_t *config, void **state_out, char **message);
void qreg__pg_destroy(void *state);
char *qreg__pg_redact_url(const char *url);
/* A heap copy of text with the state's secrets removed; NULL for NULL. */
char *qreg__pg_scrubbed_copy(const pg_state_t *state, const char *text);
/* libpq's multi-line messages as one line, secrets removed: only for what
   libpq says while connecting or cancelling, built from the conninfo, which
   no query can put words into. */
char *qreg__pg_one_line_message(const pg_state_t *state, const char *raw);
/* The same, verbatim: for everything said once the connection is up. */
char *qreg__pg_one_line(const char *raw);

/* --- postgres_guard.c ------------------------------------------------------ */

/* The role check: one row (the most serious finding as a sentence or
   NULL, whether the role may use a foreign server). */
const char *qreg__pg_role_check_sql(void);
/* Reads the role check's row: a malloc'd refusal message, or NULL when the
   role is accepted (or on failure: *failed_out). */
char *qreg__pg_role_refusal(const PGresult *res, bool *foreign_out, bool *failed_out);
/* How to make a role qreg accepts, for the refusal's hint. */
const char *qreg__pg_role_hint(void);
/* The clean-session check after the reset: one boolean row. */
const char *qreg__pg_clean_check_sql(void);
/* driver.h read_only_enforced(). */
bool qreg__pg_read_only_enforced(void *state);

/* --- postgres_catalog.c ---------------------------------------------------- */

/* driver.h catalog_sql(). */
int qreg__pg_catalog_sql(const qreg_catalog_request_t *request, char **sql_out, char **message);

#endif /* QREG_DRIVERS_POSTGRES_H */
