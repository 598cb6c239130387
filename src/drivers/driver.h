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
 *     A completion may be reported from inside the call that started it (a
 *     failure found at once): the core only queues it there and handles it
 *     after the driver call has returned, so no driver is ever re-entered
 *     and no core state changes under a driver's feet. A second completion
 *     of the same job is caught (the job lives in its connection until the
 *     connection closes) and reported as a driver bug, not a use-after-free.
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
#include "qreg.h"

/* Each driver defines its own struct qreg_driver_conn; the core only holds
   pointers to it. */
typedef struct qreg_driver_conn qreg_driver_conn_t;

/* An error a driver reports. Strings are heap copies owned by the holder
   (the job or the connect request); NULL when absent. */
typedef struct qreg_driver_error {
  char *type; /* "database", "connection", "canceled", "limit", ... */
  char *code; /* SQLSTATE, or the SQLite result code name */
  char *message;
  char *detail;
  char *hint;
} qreg_driver_error_t;

/* Replaces the error's type, code (may be NULL) and message (printf-style).
   Never fails: on ENOMEM the strings stay NULL and the core reports a generic
   message. */
void qreg_driver_error_set(qreg_driver_error_t *error, const char *type, const char *code,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void qreg_driver_error_set_detail(qreg_driver_error_t *error, const char *detail);
void qreg_driver_error_set_hint(qreg_driver_error_t *error, const char *hint);
void qreg_driver_error_clear(qreg_driver_error_t *error);

/* A request to open one connection. The core owns it; the driver reads
   nothing from it and reports once through qreg_conn_request_done(). */
typedef struct qreg_conn_request qreg_conn_request_t;

/* Reports the outcome of connect(): conn on success, or NULL with error filled
   (the driver has already freed everything the failed attempt held). */
void qreg_conn_request_done(qreg_conn_request_t *request, qreg_driver_conn_t *conn,
                            const qreg_driver_error_t *error);

/* One statement to run on one connection. */
typedef enum qreg_job_outcome {
  QREG_JOB_OK = 0,       /* ran to the end (result possibly truncated) */
  QREG_JOB_ERROR = 1,    /* the database or the driver failed: error filled;
                            an error of type "timeout" (the server's own
                            statement timeout fired) makes the query's
                            status timeout */
  QREG_JOB_CANCELED = 2, /* stopped because cancel() asked */
} qreg_job_outcome_t;

typedef struct qreg_job {
  /* In: set by the core before execute(); the driver only reads them. */
  const char *sql; /* NUL-terminated, valid UTF-8, no NUL inside */
  size_t sql_len;
  bool read_only;        /* the statement must not be able to write */
  uint64_t timeout_ms;   /* time left before the core times the query out
                           (0 = none): a server-side backstop may use it */
  qreg_result_t *result; /* where columns and rows go */

  /* Out: set by the driver before qreg_job_complete(). */
  qreg_driver_error_t error; /* for QREG_JOB_ERROR (and a failed cancel) */
  bool conn_reusable;        /* the connection is clean and may be pooled:
                                only after a clean QREG_JOB_OK */

  void *core; /* private to the core */
} qreg_job_t;

/* Reports the job's end. Loop thread, exactly once per execute(), only when
   nothing is in flight on the connection any more. */
void qreg_job_complete(qreg_job_t *job, qreg_job_outcome_t outcome);

/* Sets the database's own id for the statement the job runs (PostgreSQL
   backend pid, SQLite connection serial, a Snowflake query id): at most
   QREG_BACKEND_ID_MAX bytes (longer is cut), shown in snapshots from then
   on. Loop thread, between execute() and qreg_job_complete(); may be called
   again when the id changes (a resubmitted statement). */
void qreg_job_set_backend_id(qreg_job_t *job, const char *backend_id);

/* --- the descriptor ------------------------------------------------------ */

/* The kind of value an option takes (for validation and --help). */
typedef enum qreg_driver_option_type {
  QREG_OPTION_TEXT = 0,
  QREG_OPTION_INT = 1,      /* a non-negative decimal integer, at most INT_MAX */
  QREG_OPTION_BOOL = 2,     /* true/false, on/off, yes/no, 1/0 */
  QREG_OPTION_DURATION = 3, /* milliseconds, a decimal integer, at most INT_MAX */
} qreg_driver_option_type_t;

/* One option a driver understands, from URL query parameters
   ("?application_name=x") or from qreg_config_t.driver_options
   ("application_name=x"). A driver's list ends with an entry whose name is
   NULL. */
typedef struct qreg_driver_option {
  const char *name;
  const char *default_value; /* as text; NULL: none */
  const char *doc;           /* one line, for --help and docs */
  qreg_driver_option_type_t type;
  bool secret; /* never shown (redacted like a password) */
} qreg_driver_option_t;

/* What a database allows; 0 means no limit. */
typedef struct qreg_driver_limits {
  size_t identifier_bytes;       /* longest identifier (PostgreSQL: 63) */
  size_t application_name_bytes; /* longest application_name accepted */
} qreg_driver_limits_t;

/* What a driver is given when the registry opens. Strings live as long as the
   driver state. */
typedef struct qreg_driver_config {
  const char *url;              /* the registry's db_url, as given */
  bool allow_writes;            /* registry-wide: writes may be allowed per query */
  const char *application_name; /* "qreg" unless configured */
  unsigned max_connections;
  qreg_loop_t *loop;
  /* "name=value" options from the registry's config, already checked by
     qreg_driver_resolve() to be among the descriptor's options, with values
     of the option's type. URL options are the driver's to parse; a config
     option overrides the same option in the URL. */
  const char *const *options;
  size_t option_count;
} qreg_driver_config_t;

/* The catalog request of the public API (include/qreg.h). */
struct qreg_catalog_request;

typedef struct qreg_driver {
  const char *name;           /* "sqlite", "postgres" */
  const char *const *schemes; /* URL schemes, NULL-terminated, lower
                                       case: "sqlite" serves "sqlite:..." and
                                       "SQLite://..." */
  const char *url_forms;      /* for errors and --help:
                                       "sqlite:PATH" */
  /* Whether this driver serves a URL with no scheme at all (a libpq
     conninfo string "host=... dbname=..."). NULL: only its schemes. */
  bool (*matches)(const char *url);
  /* A malloc'd copy of url fit to print: passwords and secret options
     replaced by "***". NULL on ENOMEM. Never fails on a malformed URL: what
     cannot be parsed is cut, not shown. Any thread. */
  char *(*redact_url)(const char *url);
  const qreg_driver_option_t *options; /* ends with {NULL} */
  qreg_driver_limits_t limits;

  /* Sets up per-registry driver state; parses and checks the URL and the
     options. Called on the qreg_open() caller's thread, before the loop runs.
     On failure returns a negative QREG_E* code and a malloc'd message in
     *message (no password in it). */
  int (*create)(const qreg_driver_config_t *config, void **state_out, char **message);

  /* Frees the state. Called after every connection of it has been closed and
     the loop has stopped. */
  void (*destroy)(void *state);

  /* Starts opening a connection; reports through qreg_conn_request_done(). */
  void (*connect)(void *state, qreg_conn_request_t *request);

  /* Whether an idle pooled connection can still be used (cheap, no I/O that
     blocks). NULL means always. */
  bool (*alive)(qreg_driver_conn_t *conn);

  /* Starts running job->sql on conn; reports through qreg_job_complete(). */
  void (*execute)(qreg_driver_conn_t *conn, qreg_job_t *job);

  /* Asks the job running on conn to stop (see the contract above). */
  void (*cancel)(qreg_driver_conn_t *conn, qreg_job_t *job);

  /* Closes a connection with nothing in flight; calls closed(arg) once, on the
     loop thread, when everything it held is released. */
  void (*close)(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg);

  /* Whether a registry opened without allow_writes keeps every query from
     changing anything outside its result (docs/security.md): the
     driver's read-only policy holds, no option switched it off. Called
     once, by qreg_open() after create(). NULL: always. */
  bool (*read_only_enforced)(void *state);

  /* Catalog operations. catalog_sql writes the read-only SQL that answers
     request into *sql_out (malloc'd): names quoted as identifiers or
     embedded as escaped literals, never pasted. The core has checked the
     request (op known, the names the op needs present, valid UTF-8, within
     limits.identifier_bytes). Returns 0, or QREG_EINVAL / QREG_ENOMEM with a
     malloc'd *message (an op this database has no answer for). Any thread,
     concurrently with anything, even qreg_close(): it gets no driver state,
     only the request (the SQL asks the database for what the session
     knows, such as its current schema). NULL: no catalog. */
  int (*catalog_sql)(const struct qreg_catalog_request *request, char **sql_out, char **message);
  /* name quoted as an identifier, malloc'd; NULL on ENOMEM. Any thread. */
  char *(*quote_identifier)(const char *name);
} qreg_driver_t;

/* The drivers qreg is built with, in the order they are tried. */
extern const qreg_driver_t qreg_driver_sqlite;
extern const qreg_driver_t qreg_driver_postgres;
extern const qreg_driver_t qreg_driver_snowflake;

/*
 * Adds a driver (tests add the scripted one). Drivers added later are tried
 * first. Not thread-safe: call before any qreg_open(). Returns 0,
 * QREG_EINVAL when the descriptor lacks a required member (name, schemes or
 * matches, url_forms, redact_url, options, create ... close) or QREG_ENOMEM.
 */
int qreg_driver_register(const qreg_driver_t *driver);

/* The driver that serves url, or NULL. A URL that starts with a scheme
   ("name:" or "name://", name = a letter, then letters, digits, '+', '-',
   '.') goes to the driver that lists that scheme (case-insensitive), and to
   none if no driver does; a URL with no scheme goes to the first driver
   whose matches() accepts it. Registered drivers are tried before the
   built-in ones. */
const qreg_driver_t *qreg_driver_find(const char *url);

/*
 * Finds the driver for config->db_url and checks what the core checks for
 * it: that every config->driver_options entry is "name=value" with a name of
 * the descriptor's options and a value of its type, and that
 * application_name fits the driver's limit. 0 and *driver_out; or QREG_EURL
 * / QREG_EINVAL with a malloc'd *message listing what is accepted (the URL
 * forms of every driver, the option names) and never the URL itself, nor an
 * option's value.
 */
int qreg_driver_resolve(const struct qreg_config *config, const qreg_driver_t **driver_out,
                        char **message);

/* Calls fn for each known driver (registered ones first). For --help. */
void qreg_driver_foreach(void (*fn)(const qreg_driver_t *driver, void *arg), void *arg);

/* --- shared pieces for drivers ------------------------------------------ */

/* The option of driver named name[0, len), or NULL. */
const qreg_driver_option_t *qreg_driver_option_find(const qreg_driver_t *driver, const char *name,
                                                    size_t len);

/* Whether value is a valid value for option (by its type). */
bool qreg_driver_option_valid(const qreg_driver_option_t *option, const char *value);

/* Parses a QREG_OPTION_BOOL value; false if it is not one. */
bool qreg_driver_parse_bool(const char *value, bool *out);
/* Parses a QREG_OPTION_INT / DURATION value (decimal, at most INT_MAX);
   false if it is not one. */
bool qreg_driver_parse_uint(const char *value, uint64_t *out);

/* The options a driver was given, each resolved once: the URL's, then the
   config's on top (the config wins). Use: init, from_query and/or set (the
   URL's), from_config, then get; free in every case. */
typedef struct qreg_driver_settings {
  const qreg_driver_t *driver;
  char **values; /* owned: values[i] for driver->options[i], NULL when not
                    given (then the option's default applies) */
} qreg_driver_settings_t;

/* 0 or QREG_ENOMEM. */
int qreg_driver_settings_init(qreg_driver_settings_t *settings, const qreg_driver_t *driver);
/* Reads a URL query (the text after '?': "name=value" pairs separated by
   '&', percent-decoded; NULL for none). A parameter that is not one of the
   driver's options is refused unless unknown_ok (it is then left to the
   caller, e.g. libpq); a value not of its option's type is refused. 0, or
   QREG_EURL / QREG_ENOMEM with a malloc'd *message naming the parameter,
   never its value. */
int qreg_driver_settings_from_query(qreg_driver_settings_t *settings, const char *query,
                                    bool unknown_ok, char **message);
/* Sets one option from the URL (a driver that parses its URL itself). 0;
   1 when name is not an option; QREG_EURL (bad value) or QREG_ENOMEM with
   a malloc'd *message. */
int qreg_driver_settings_set(qreg_driver_settings_t *settings, const char *name, const char *value,
                             char **message);
/* Reads config->options (checked by qreg_driver_resolve()); they replace
   what the URL said. 0, or QREG_EINVAL / QREG_ENOMEM with *message. */
int qreg_driver_settings_from_config(qreg_driver_settings_t *settings,
                                     const qreg_driver_config_t *config, char **message);
/* The option's value: given, else its default, else NULL. */
const char *qreg_driver_settings_get(const qreg_driver_settings_t *settings, const char *name);
/* Whether the option was given (in the URL or the config). */
bool qreg_driver_settings_given(const qreg_driver_settings_t *settings, const char *name);
void qreg_driver_settings_free(qreg_driver_settings_t *settings);

/* One "name=value" parameter of a URL query. */
typedef struct qreg_url_param {
  const char *start, *end; /* its raw text in the query, without '&' */
  char *name, *value;      /* percent-decoded, malloc'd; value "" without '=' */
} qreg_url_param_t;

/* Reads the parameter at *cursor (in a query "a=1&b=2") and moves *cursor
   past it and its '&'. Empty parameters are skipped. Returns 1 with *param
   filled (free with qreg_url_param_clear), 0 at the end, QREG_ENOMEM. */
int qreg_url_param_next(const char **cursor, qreg_url_param_t *param);
void qreg_url_param_clear(qreg_url_param_t *param);

/* s quoted as an SQL identifier: "s" with every '"' doubled. malloc'd, NULL
   on ENOMEM. The form SQLite and PostgreSQL share. */
char *qreg_driver_quote_double(const char *s);

/* A catalog request's names, each quoted once the way its SQL needs it:
   as identifiers ("s"."t") and as literals of the driver's dialect. NULL
   where the request has no such name; failed after an allocation failed. */
typedef struct qreg_catalog_names {
  char *schema_literal, *schema_ident;
  char *table_literal, *table_ident;
  char *column_ident;
  char *pattern_literal;
  char *from; /* "schema"."table", or "table" alone, when a table is named */
  /* The columns a SAMPLE or COLUMN_STATS names: request->columns, or
     request->column alone; each as an identifier and a literal, with its
     kind ("" when the request gives none: only the statistics every type
     has, in the type's own order). */
  size_t column_count;
  char **column_idents, **column_literals;
  const char **column_kinds;
  bool failed;
} qreg_catalog_names_t;

/* SAMPLE's SQL, the same in every dialect that has `t.*`, aliases and
   LIMIT: the named columns (all when all_columns), in random order when
   random_call is the dialect's random function ("random()"), else in the
   order the database gives. malloc'd; NULL on ENOMEM. */
char *qreg_catalog_sample_sql(const qreg_catalog_names_t *names, bool all_columns,
                              const char *random_call, unsigned long long limit);

/* Fills names from the request, literal() making the dialect's literals. */
void qreg_catalog_names_make(qreg_catalog_names_t *names,
                             const struct qreg_catalog_request *request,
                             char *(*literal)(const char *s));
void qreg_catalog_names_free(qreg_catalog_names_t *names);

/* s between two quote characters with every quote doubled, and every
   backslash too when double_backslash, after prefix: the one routine behind
   identifiers ("a""b"), SQL literals ('a''b') and PostgreSQL's E'' literals
   (E'a''b\\\\c'). malloc'd, NULL on ENOMEM. */
char *qreg_driver_quote(const char *s, const char *prefix, char quote, bool double_backslash);

#endif /* QREG_DRIVERS_DRIVER_H */
