/*
 * tests/test-drivers.c - the driver boundary (src/drivers/driver.h): how a
 * URL finds its driver, what the core checks of driver options and limits,
 * URL redaction, and the proof that a new database needs no change outside
 * its driver: a driver defined in this file ("toy") is registered at run
 * time, and a registry on its URL runs a query and a catalog operation
 * through the public API and answers the MCP catalog tools - with no line
 * of src/core, src/cli or src/mcp knowing it.
 *
 * Nothing here connects to a database: registries open lazily, and the
 * toy driver's "database" is this file.
 *
 * Owns, in each test, the registries it opens; the toy driver's counters
 * live for the process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/driver.h"
#include "mcp/protocol.h"
#include "qreg.h"

/* --- the toy driver: one file's worth of a new database ------------------ */

/*
 * URL toy:NAME[?greeting=TEXT&token=SECRET]. Statements: "greet" answers
 * one row (greeting); "CATALOG <op>" (what its catalog_sql writes) answers
 * rows shaped like qreg.h documents for the op. Each statement gets a
 * 40-odd-byte backend id of its own, like a Snowflake query id.
 */
typedef struct toy_state {
  qreg_loop_t *loop;
  char *greeting;
} toy_state_t;

struct qreg_driver_conn {
  toy_state_t *state;
  qreg_work_t work;
  qreg_conn_request_t *request;
  qreg_job_t *job;
  qreg_job_outcome_t outcome;
};

static _Atomic unsigned toy_statements; /* backend ids toy-statement-<n>-... */
static _Atomic unsigned toy_open;       /* connections open now */

static const char *const toy_schemes[] = {"toy", NULL};
static const qreg_driver_option_t toy_options[] = {
    {.name = "greeting",
     .type = QREG_OPTION_TEXT,
     .default_value = "hello",
     .doc = "what greet answers"},
    {.name = "token", .type = QREG_OPTION_TEXT, .doc = "an access token", .secret = true},
    {.name = NULL},
};

static const qreg_driver_t toy_driver;

/* The URL with the token's value as "***". */
static char *toy_redact_url(const char *url) {
  const char *query = strchr(url, '?');
  if (query == NULL)
    return strdup(url);
  size_t cap = strlen(url) + 8, n = (size_t)(query - url) + 1;
  char *out = malloc(cap);
  if (out == NULL)
    return NULL;
  memcpy(out, url, n);
  bool first = true;
  for (const char *cursor = query + 1; cursor != NULL;) {
    qreg_url_param_t param;
    if (qreg_url_param_next(&cursor, &param) <= 0)
      break;
    const qreg_driver_option_t *option =
        qreg_driver_option_find(&toy_driver, param.name, strlen(param.name));
    n += (size_t)snprintf(
        out + n, cap - n, "%s%s%.*s", first ? "" : "&", option && option->secret ? param.name : "",
        option && option->secret ? 0 : (int)(param.end - param.start), param.start);
    if (option && option->secret)
      n += (size_t)snprintf(out + n, cap - n, "=***");
    first = false;
    qreg_url_param_clear(&param);
  }
  return out;
}

static int toy_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  *message = NULL;
  const char *query = strchr(config->url, '?');
  qreg_driver_settings_t settings;
  int rc = qreg_driver_settings_init(&settings, &toy_driver);
  if (rc == 0)
    rc = qreg_driver_settings_from_query(&settings, query ? query + 1 : NULL, false, message);
  if (rc == 0)
    rc = qreg_driver_settings_from_config(&settings, config, message);
  toy_state_t *state = rc == 0 ? calloc(1, sizeof *state) : NULL;
  if (state != NULL) {
    state->loop = config->loop;
    state->greeting = strdup(qreg_driver_settings_get(&settings, "greeting"));
  }
  qreg_driver_settings_free(&settings);
  if (rc != 0)
    return rc;
  if (state == NULL || state->greeting == NULL) {
    free(state);
    return QREG_ENOMEM;
  }
  *state_out = state;
  return 0;
}

static void toy_destroy(void *state_arg) {
  toy_state_t *state = state_arg;
  free(state->greeting);
  free(state);
}

static void toy_nothing(qreg_work_t *work) {
  (void)work;
}

static void toy_connected(qreg_work_t *work) {
  qreg_driver_conn_t *conn =
      (qreg_driver_conn_t *)((char *)work - offsetof(qreg_driver_conn_t, work));
  atomic_fetch_add(&toy_open, 1);
  qreg_conn_request_done(conn->request, conn, NULL);
}

static void toy_connect(void *state, qreg_conn_request_t *request) {
  qreg_driver_conn_t *conn = calloc(1, sizeof *conn);
  qreg_driver_error_t error = {0};
  if (conn == NULL) {
    qreg_driver_error_set(&error, "connection", NULL, "toy: out of memory");
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
    return;
  }
  conn->state = state;
  conn->request = request;
  if (qreg_loop_work(conn->state->loop, &conn->work, toy_nothing, toy_connected) != 0) {
    free(conn);
    qreg_driver_error_set(&error, "connection", NULL, "toy: closing");
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
  }
}

/* Sets the columns of the result, then rows of texts (NULL: SQL NULL). */
static int toy_rows(qreg_result_t *result, size_t columns, const char *const *names, size_t rows,
                    const char *const *cells) {
  int rc = qreg_result_set_columns(result, columns);
  for (size_t i = 0; rc == 0 && i < columns; i++)
    rc = qreg_result_set_column(result, i, names[i], "text");
  for (size_t r = 0; rc == 0 && r < rows; r++) {
    rc = qreg_result_row_begin(result);
    for (size_t i = 0; rc == 0 && i < columns; i++) {
      const char *cell = cells[r * columns + i];
      rc = cell ? qreg_result_put_text(result, cell, strlen(cell)) : qreg_result_put_null(result);
    }
    if (rc == 0)
      rc = qreg_result_row_end(result);
  }
  return rc;
}

/* Worker: answers the statement. */
static void toy_run(qreg_work_t *work) {
  qreg_driver_conn_t *conn =
      (qreg_driver_conn_t *)((char *)work - offsetof(qreg_driver_conn_t, work));
  qreg_job_t *job = conn->job;
  static const char *const tables_names[] = {"schema", "name", "type", "comment", "row_estimate"};
  static const char *const tables_rows[] = {"main", "toys", "table", "the toy box", "42"};
  static const char *const describe_names[] = {"ordinal",       "name",    "type",       "nullable",
                                               "default_value", "comment", "primary_key"};
  static const char *const describe_rows[] = {"1", "id",    "int",  "0", NULL,  NULL,      "1",
                                              "2", "label", "text", "1", "'x'", "a label", "0"};
  int rc;
  if (strcmp(job->sql, "greet") == 0) {
    static const char *const names[] = {"greeting"};
    const char *row[] = {conn->state->greeting};
    rc = toy_rows(job->result, 1, names, 1, row);
  } else if (strcmp(job->sql, "CATALOG tables") == 0) {
    rc = toy_rows(job->result, 5, tables_names, 1, tables_rows);
  } else if (strcmp(job->sql, "CATALOG describe") == 0) {
    rc = toy_rows(job->result, 7, describe_names, 2, describe_rows);
  } else {
    qreg_driver_error_set(&job->error, "database", "TOY", "toy: no such statement");
    conn->outcome = QREG_JOB_ERROR;
    return;
  }
  conn->outcome = rc < 0 ? QREG_JOB_ERROR : QREG_JOB_OK;
  if (rc < 0)
    qreg_driver_error_set(&job->error, "internal", NULL, "toy: cannot store the rows");
}

static void toy_ran(qreg_work_t *work) {
  qreg_driver_conn_t *conn =
      (qreg_driver_conn_t *)((char *)work - offsetof(qreg_driver_conn_t, work));
  qreg_job_t *job = conn->job;
  conn->job = NULL;
  job->conn_reusable = conn->outcome == QREG_JOB_OK;
  qreg_job_complete(job, conn->outcome);
}

static void toy_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  char backend_id[QREG_BACKEND_ID_MAX + 1];
  snprintf(backend_id, sizeof backend_id, "toy-statement-%u-0123456789abcdef01234567",
           atomic_fetch_add(&toy_statements, 1) + 1);
  qreg_job_set_backend_id(job, backend_id);
  conn->job = job;
  if (qreg_loop_work(conn->state->loop, &conn->work, toy_run, toy_ran) != 0) {
    conn->job = NULL;
    qreg_driver_error_set(&job->error, "internal", NULL, "toy: closing");
    qreg_job_complete(job, QREG_JOB_ERROR);
  }
}

static void toy_cancel(qreg_driver_conn_t *conn, qreg_job_t *job) {
  (void)conn, (void)job; /* a statement takes no time: it ends on its own */
}

static void toy_close(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg) {
  atomic_fetch_sub(&toy_open, 1);
  free(conn);
  closed(arg);
}

/* The catalog of a toy database: the op's name is the statement; names
   from the request never reach the SQL. */
static int toy_catalog_sql(const qreg_catalog_request_t *request, char **sql_out, char **message) {
  if (request->op != QREG_CATALOG_TABLES && request->op != QREG_CATALOG_DESCRIBE) {
    *message = strdup("toy: only tables and describe");
    return QREG_EINVAL;
  }
  return asprintf(sql_out, "CATALOG %s", qreg_catalog_op_name(request->op)) < 0 ? QREG_ENOMEM : 0;
}

static char *toy_quote_identifier(const char *name) {
  char *out = NULL;
  return asprintf(&out, "[%s]", name) < 0 ? NULL : out;
}

static const qreg_driver_t toy_driver = {
    .name = "toy",
    .schemes = toy_schemes,
    .url_forms = "toy:NAME",
    .redact_url = toy_redact_url,
    .options = toy_options,
    .limits = {.identifier_bytes = 16},
    .create = toy_create,
    .destroy = toy_destroy,
    .connect = toy_connect,
    .execute = toy_execute,
    .cancel = toy_cancel,
    .close = toy_close,
    .catalog_sql = toy_catalog_sql,
    .quote_identifier = toy_quote_identifier,
};

/* --- helpers ---------------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  return qreg_driver_register(&toy_driver);
}

/* qreg_open with url and options; returns its code, *reg set on success. */
static int open_with(const char *url, const char *app, const char *const *options,
                     size_t option_count, qreg_t **reg) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.application_name = app;
  config.driver_options = options;
  config.driver_option_count = option_count;
  *reg = NULL;
  return qreg_open(&config, reg);
}

static qreg_t *open_ok(const char *url, const char *const *options, size_t option_count) {
  qreg_t *reg = NULL;
  int rc = open_with(url, NULL, options, option_count, &reg);
  if (rc != 0)
    fail_msg("qreg_open(%s): %s: %s", url, qreg_strerror(rc), qreg_last_error());
  return reg;
}

static void close_ok(qreg_t *reg) {
  assert_int_equal(qreg_close(reg), 0);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  qreg_destroy(reg);
}

static void assert_contains(const char *text, const char *part) {
  if (strstr(text, part) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void assert_lacks(const char *text, const char *part) {
  if (strstr(text, part) != NULL)
    fail_msg("\"%s\" shows \"%s\"", text, part);
}

/* qreg_open must fail with code, its message naming every part in want
   (NULL-terminated) and showing none in hidden. */
static void expect_open_error(const char *url, const char *app, const char *const *options,
                              size_t option_count, int code, const char *const *want,
                              const char *const *hidden) {
  qreg_t *reg = NULL;
  int rc = open_with(url, app, options, option_count, &reg);
  if (rc != code)
    fail_msg("qreg_open(%s): %s (%s), expected %s", url, qreg_strerror(rc), qreg_last_error(),
             qreg_strerror(code));
  assert_null(reg);
  const char *message = qreg_last_error();
  for (size_t i = 0; want && want[i]; i++)
    assert_contains(message, want[i]);
  for (size_t i = 0; hidden && hidden[i]; i++)
    assert_lacks(message, hidden[i]);
}

/* --- finding the driver ------------------------------------------------------ */

static void add_name(const qreg_driver_t *driver, void *arg) {
  char *names = arg;
  strcat(names, driver->name);
  strcat(names, " ");
}

static void url_finds_driver_by_scheme_then_matches(void **state) {
  (void)state;
  static const struct {
    const char *url;
    const char *driver; /* NULL: none */
  } cases[] = {
      {"sqlite:/tmp/x.db", "sqlite"},
      {"SQLite:/tmp/x.db", "sqlite"},
      {"sqlite:///tmp/x.db", "sqlite"},
      {"postgres://u@h/db", "postgres"},
      {"PostgreSQL://u@h/db", "postgres"},
      {"host=h dbname=d", "postgres"},
      {"hostaddr=::1 dbname=d", "postgres"}, /* a ':' after '=' is no scheme */
      {"toy:box", "toy"},
      {"TOY:box", "toy"},
      {"snowflake://u@acct/db", "snowflake"},
      {"SnowFlake://u@acct", "snowflake"},
      {"mysql://u@h/db", NULL},
      {"user:pass@host", NULL}, /* scheme "user": nobody's */
      {"nothing", NULL},
      {"", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const qreg_driver_t *driver = qreg_driver_find(cases[i].url);
    const char *name = driver ? driver->name : NULL;
    if ((name == NULL) != (cases[i].driver == NULL) ||
        (name != NULL && strcmp(name, cases[i].driver) != 0))
      fail_msg("%s: driver %s, expected %s", cases[i].url, name ? name : "none",
               cases[i].driver ? cases[i].driver : "none");
  }
  char names[128] = "";
  qreg_driver_foreach(add_name, names);
  assert_string_equal(names, "toy sqlite postgres snowflake ");
}

static void unknown_url_lists_every_driver(void **state) {
  (void)state;
  static const char *const want[] = {"db_url",   "sqlite:PATH", "postgres://", "snowflake://",
                                     "conninfo", "toy:NAME",    NULL};
  static const char *const hidden[] = {"hunter2", "mysql", NULL};
  expect_open_error("mysql://alice:hunter2@db/x", NULL, NULL, 0, QREG_EURL, want, hidden);
  static const char *const hidden_bare[] = {"hunter2", NULL};
  expect_open_error("hunter2", NULL, NULL, 0, QREG_EURL, want, hidden_bare);
}

/* --- options ----------------------------------------------------------------- */

static void driver_options_are_checked(void **state) {
  (void)state;
  const char *unknown[] = {"busy_timeout_ms=10", "nosuch=1"};
  static const char *const want_unknown[] = {"driver_options[1]", "\"nosuch\"", "sqlite",
                                             "busy_timeout_ms, cache_size_kib, journal_mode", NULL};
  expect_open_error("sqlite:/tmp/qreg-x.db", NULL, unknown, 2, QREG_EINVAL, want_unknown, NULL);

  /* Not name=value: maybe a password pasted in the wrong place. */
  const char *bare[] = {"hunter2"};
  static const char *const want_bare[] = {"name=value", "busy_timeout_ms", NULL};
  static const char *const hidden[] = {"hunter2", NULL};
  expect_open_error("sqlite:/tmp/qreg-x.db", NULL, bare, 1, QREG_EINVAL, want_bare, hidden);

  const char *bad_value[] = {"busy_timeout_ms=hunter2"};
  static const char *const want_value[] = {"busy_timeout_ms", "milliseconds", NULL};
  expect_open_error("sqlite:/tmp/qreg-x.db", NULL, bad_value, 1, QREG_EINVAL, want_value, hidden);

  const char *bad_bool[] = {"statement_timeout_backstop=maybe"};
  static const char *const want_bool[] = {"statement_timeout_backstop", "true or false", NULL};
  expect_open_error("postgres://u@h/db", NULL, bad_bool, 1, QREG_EINVAL, want_bool, NULL);

  const char *pg_unknown[] = {"busy_timeout_ms=1"};
  static const char *const want_pg[] = {
      "postgres", "application_name", "connect_timeout", "password", "statement_timeout_margin_ms",
      NULL};
  expect_open_error("postgres://u@h/db", NULL, pg_unknown, 1, QREG_EINVAL, want_pg, NULL);

  /* Good ones open (lazily: nothing connects). */
  const char *sqlite_good[] = {"busy_timeout_ms=10", "cache_size_kib=512", "journal_mode=DELETE"};
  close_ok(open_ok("sqlite:/tmp/qreg-x.db", sqlite_good, 3));
  const char *pg_good[] = {"application_name=x",
                           "connect_timeout=3",
                           "password=p",
                           "statement_timeout_backstop=off",
                           "statement_timeout_margin_ms=5",
                           "connection_check_interval_ms=0"};
  close_ok(open_ok("postgres://u@h/db", pg_good, 6));
}

static void url_options_are_checked(void **state) {
  (void)state;
  static const char *const hidden[] = {"hunter2", NULL};
  static const char *const want_unknown[] = {"\"nosuch\"", "busy_timeout_ms", NULL};
  expect_open_error("sqlite:/tmp/qreg-x.db?nosuch=1", NULL, NULL, 0, QREG_EURL, want_unknown, NULL);
  static const char *const want_value[] = {"cache_size_kib", NULL};
  expect_open_error("sqlite:/tmp/qreg-x.db?cache_size_kib=hunter2", NULL, NULL, 0, QREG_EURL,
                    want_value, hidden);
  qreg_t *reg = NULL;
  assert_int_equal(open_with("sqlite:/tmp/qreg-x.db?journal_mode=off", NULL, NULL, 0, &reg),
                   QREG_EINVAL);
  assert_contains(qreg_last_error(), "journal_mode");
  /* The path ends at '?'; the options after it are the driver's. */
  close_ok(open_ok("sqlite:/tmp/qreg-x.db?busy_timeout_ms=50&journal_mode=wal", NULL, 0));

  static const char *const want_pg[] = {"statement_timeout_margin_ms", NULL};
  expect_open_error("postgres://u:hunter2@h/db?statement_timeout_margin_ms=hunter2", NULL, NULL, 0,
                    QREG_EURL, want_pg, hidden);
  static const char *const want_conninfo[] = {"statement_timeout_backstop", NULL};
  expect_open_error("host=h password=hunter2 statement_timeout_backstop=hunter2", NULL, NULL, 0,
                    QREG_EURL, want_conninfo, hidden);
  /* libpq's own parameters stay libpq's: an unknown one is its error
     (which hides what it quotes: it might be the password). */
  static const char *const want_libpq[] = {"invalid URI query parameter", NULL};
  expect_open_error("postgres://u:hunter2@h/db?nosuch=1", NULL, NULL, 0, QREG_EURL, want_libpq,
                    hidden);
  /* qreg's own ones are taken out before libpq reads the URL. */
  close_ok(open_ok("postgres://u@h/db?sslmode=disable&statement_timeout_margin_ms=5"
                   "&connection_check_interval_ms=250",
                   NULL, 0));
  close_ok(open_ok("host=h statement_timeout_backstop=off dbname=d", NULL, 0));
  /* The toy driver's options come through the same helpers. */
  expect_open_error("toy:box?colour=red", NULL, NULL, 0, QREG_EURL,
                    (const char *const[]){"colour", "greeting, token", NULL}, NULL);
}

static void application_name_limit_is_the_drivers(void **state) {
  (void)state;
  char app64[65], app63[64], url[160];
  memset(app64, 'a', 64);
  app64[64] = '\0';
  memset(app63, 'a', 63);
  app63[63] = '\0';
  static const char *const want[] = {"application_name", "63", "postgres", NULL};
  expect_open_error("postgres://u@h/db", app64, NULL, 0, QREG_EINVAL, want, NULL);
  qreg_t *reg = NULL;
  assert_int_equal(open_with("postgres://u@h/db", app63, NULL, 0, &reg), 0);
  close_ok(reg);

  char option[96];
  snprintf(option, sizeof option, "application_name=%s", app64);
  const char *options[] = {option};
  expect_open_error("postgres://u@h/db", NULL, options, 1, QREG_EINVAL, want, NULL);
  snprintf(url, sizeof url, "postgres://u@h/db?application_name=%s", app64);
  static const char *const want_url[] = {"application_name", "63", NULL};
  expect_open_error(url, NULL, NULL, 0, QREG_EURL, want_url, NULL);

  /* SQLite names no limit: the core applies none. */
  char long_app[300];
  memset(long_app, 'b', sizeof long_app - 1);
  long_app[sizeof long_app - 1] = '\0';
  assert_int_equal(open_with("sqlite:/tmp/qreg-x.db", long_app, NULL, 0, &reg), 0);
  close_ok(reg);
}

/* --- redaction ----------------------------------------------------------------- */

static void passwords_are_redacted(void **state) {
  (void)state;
  static const struct {
    const char *url, *shown;
  } cases[] = {
      {"postgres://alice:hunter2@db.example:5432/app", "postgres://alice:***@db.example:5432/app"},
      {"postgresql://alice:hun%40ter2@db/app?sslmode=require&password=hunter2&application_name=x",
       "postgresql://alice:***@db/app?sslmode=require&password=***&application_name=x"},
      {"postgres://alice:p?hunter2@db/app", "postgres://alice:***@db/app"},
      {"postgres://db/app?sslpassword=hunter2", "postgres://db/app?sslpassword=***"},
      {"postgres://db/app", "postgres://db/app"},
      {"host=db password=hunter2 user=alice", "host=db password=*** user=alice"},
      {"host=db password = 'hun ter\\' 2' user=alice", "host=db password=*** user=alice"},
      {"host=db dbname='postgres://alice:hunter2@db/x'", "host=db dbname=***"},
      {"sqlite:/var/lib/app.db?busy_timeout_ms=5", "sqlite:/var/lib/app.db?busy_timeout_ms=5"},
      {"toy:box?greeting=hi&token=hunter2", "toy:box?greeting=hi&token=***"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_t *reg = open_ok(cases[i].url, NULL, 0);
    char *shown = NULL;
    assert_int_equal(qreg_redacted_url(reg, &shown), 0);
    if (strcmp(shown, cases[i].shown) != 0)
      fail_msg("%s: shown as %s, expected %s", cases[i].url, shown, cases[i].shown);
    free(shown);
    close_ok(reg);
  }
  /* What cannot be parsed is cut, not shown (the registry refuses such a
     URL; the driver's redaction must still be safe for a log line). */
  static const char *const malformed[] = {
      "host=db password='hunter2",
      "host=db password",
      "host=db hunter2",
      "host=db password='hunter2' user='alice",
      "host=db password=\\'hunter2 dbname='x",
      "host=db user=alice password = 'hun ter2\\",
      "host=db password=hunter2 bogus",
      "host=db password=hunter2 =x",
      "host=db user= password=hunter2", /* libpq: user is "password=hunter2" */
  };
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    char *shown = qreg_driver_postgres.redact_url(malformed[i]);
    assert_non_null(shown);
    assert_lacks(shown, "hunter2");
    assert_lacks(shown, "ter2");
    assert_contains(shown, "host=db");
    free(shown);
  }
  /* URIs libpq refuses, or reads otherwise than their writer meant: the
     password is hidden all the same. */
  static const struct {
    const char *url, *shown;
  } bad_uris[] = {
      {"postgresql://app:pa ss@host/db", "postgresql://app:***@host/db"},
      {"postgresql://app:hunter2@[::1/db", "postgresql://app:***@[::1/db"},
      {"postgresql://app:hunter2@host/db?x=%zz", "postgresql://app:***@host/db?x=%zz"},
      {"postgresql://app:hunter2@host/db?password", "postgresql://app:***@host/db?password=***"},
      {"postgresql://app:hun@ter2@host/db", "postgresql://***@host/db"},
      {"postgresql://app:hun/ter2@host/db", "postgresql://***@host/db"},
      {"POSTGRES://app:hunter2@host:port/db", "POSTGRES://app:***@host:***/db"},
      {"postgresql://host/db?password=hunter2&password=hunter2",
       "postgresql://host/db?password=***&password=***"},
      {"postgresql://host/db?password=hun@ter2", "postgresql://***"},
      /* found by tests/fuzz/fuzz_url.c */
      {"postgresql://u@host/db?x=postgresql://u:p@h/d&password=hunter2", "postgresql://***"},
      {"postgresql://app:pw@h/d password=hunter2", "postgresql://app:***@h/d ***"},
      {"postgres://u@h password=hunter2", "postgres://u@h ***"},
      {"postgresql://h/d?sslmode=disable password=hunter2", "postgresql://h/d?sslmode=disable ***"},
      {"postgresql://app:hunter2/db", "postgresql://app:***/db"},
      {"postgresql://app:hunter2", "postgresql://app:***"},
      {"postgresql://h1:5432,app:hunter2,[::1]:5433/db?x=1",
       "postgresql://h1:5432,app:***,[::1]:5433/db?x=1"},
      {"postgresql://app:hunter2@h1:,h2/db", "postgresql://app:***@h1:,h2/db"},
  };
  for (size_t i = 0; i < sizeof bad_uris / sizeof bad_uris[0]; i++) {
    char *shown = qreg_driver_postgres.redact_url(bad_uris[i].url);
    assert_non_null(shown);
    if (strcmp(shown, bad_uris[i].shown) != 0)
      fail_msg("%s: shown as %s, expected %s", bad_uris[i].url, shown, bad_uris[i].shown);
    free(shown);
  }
  /* A password given as an option is never in the URL, and hidden from
     the registry's messages. */
  const char *options[] = {"password=hunter2"};
  qreg_t *reg = open_ok("postgres://alice@127.0.0.1:1/app", options, 1);
  char *shown = NULL;
  assert_int_equal(qreg_redacted_url(reg, &shown), 0);
  assert_string_equal(shown, "postgres://alice@127.0.0.1:1/app");
  free(shown);
  close_ok(reg);
}

/* --- a driver registered by this program ---------------------------------------- */

/* Sends one MCP message (2026-07-28, stateless) and returns the result's
   structuredContent (a new reference) or fails the test. */
static json_t *mcp_tool(mcp_server_t *server, const char *tool, const char *arguments) {
  char line[1024];
  snprintf(line, sizeof line,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
           "\"arguments\":%s,\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
           "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"test-drivers\",\"version\":\"1\"},"
           "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
           tool, arguments);
  size_t reply_len = 0;
  char *reply = mcp_server_handle_message(server, line, strlen(line), &reply_len);
  assert_non_null(reply);
  json_error_t error;
  json_t *message = json_loadb(reply, reply_len, 0, &error);
  if (message == NULL)
    fail_msg("%s: not JSON: %s", tool, reply);
  json_t *result = json_object_get(message, "result");
  if (result == NULL || json_is_true(json_object_get(result, "isError")))
    fail_msg("%s: %s", tool, reply);
  json_t *structured = json_incref(json_object_get(result, "structuredContent"));
  assert_non_null(structured);
  json_decref(message);
  free(reply);
  return structured;
}

static void registered_driver_serves_the_whole_stack(void **state) {
  (void)state;
  const char *options[] = {"greeting=bonjour"};
  qreg_t *reg = open_ok("toy:box?greeting=hi&token=hunter2", options, 1);
  assert_string_equal(qreg_driver_name(reg), "toy");

  /* A query: the config's greeting won over the URL's; the statement's
     own backend id, longer than a connection id, is in the snapshot. */
  qreg_id_t id;
  qreg_status_t status;
  assert_int_equal(qreg_execute(reg, "greet", NULL, &id), 0);
  assert_int_equal(qreg_wait(reg, id.str, 20000, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  assert_true(strncmp(snap->backend_id, "toy-statement-", 14) == 0);
  assert_true(strlen(snap->backend_id) > 36);
  char first_backend_id[QREG_BACKEND_ID_MAX + 1];
  snprintf(first_backend_id, sizeof first_backend_id, "%s", snap->backend_id);
  qreg_snapshot_free(snap);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  assert_string_equal(page->values[0].v.s.ptr, "bonjour");
  qreg_page_free(page);

  /* A catalog operation through the public API: the driver's SQL, run as a
     query of its own (listed, with a backend id of its own). */
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  request.schema = "main'; --";
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), 0);
  assert_int_equal(qreg_wait(reg, id.str, 20000, &status), 0);
  assert_int_equal(status, QREG_SUCCEEDED);
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  assert_string_equal(snap->sql, "CATALOG tables");
  assert_int_equal(snap->column_count, 5);
  assert_string_equal(snap->columns[4].name, "row_estimate");
  assert_string_not_equal(snap->backend_id, first_backend_id);
  qreg_snapshot_free(snap);
  qreg_list_t *list = NULL;
  assert_int_equal(qreg_list(reg, NULL, &list), 0);
  assert_int_equal(list->count, 2);
  qreg_list_free(list);
  /* An op the driver does not offer; a name past its identifier limit. */
  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.table = "toys";
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);
  assert_contains(qreg_last_error(), "only tables and describe");
  qreg_catalog_init(&request, QREG_CATALOG_DESCRIBE);
  request.table = "a_name_of_17bytes";
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_EINVAL);
  assert_contains(qreg_last_error(), "16 bytes");
  char *quoted = NULL;
  assert_int_equal(qreg_quote_identifier(reg, "toys", &quoted), 0);
  assert_string_equal(quoted, "[toys]");
  free(quoted);
  char *shown = NULL;
  assert_int_equal(qreg_redacted_url(reg, &shown), 0);
  assert_string_equal(shown, "toy:box?greeting=hi&token=***");
  free(shown);

  /* The MCP catalog tools, unchanged, describe the toy database. */
  mcp_settings_t settings = {
      .max_message_bytes = 1 << 20,
      .max_response_bytes = 1 << 20,
      .poll_interval_ms = 100,
      .ttl_ms = 60000,
      .timeout_ms = 60000,
      .allow_writes = false,
  };
  mcp_server_t *server = NULL;
  assert_int_equal(mcp_server_new(reg, &settings, &server), 0);
  json_t *tables = mcp_tool(server, "list_tables", "{}");
  assert_string_equal(json_string_value(json_object_get(tables, "database")), "toy");
  json_t *table = json_array_get(json_object_get(tables, "tables"), 0);
  assert_string_equal(json_string_value(json_object_get(table, "name")), "toys");
  assert_string_equal(json_string_value(json_object_get(table, "comment")), "the toy box");
  json_decref(tables);
  json_t *described = mcp_tool(server, "describe_table", "{\"table\":\"toys\"}");
  json_t *columns = json_object_get(described, "columns");
  assert_int_equal(json_array_size(columns), 2);
  json_t *id_column = json_array_get(columns, 0), *label = json_array_get(columns, 1);
  assert_string_equal(json_string_value(json_object_get(id_column, "name")), "id");
  assert_true(json_is_true(json_object_get(id_column, "primary_key")));
  assert_false(json_is_true(json_object_get(id_column, "nullable")));
  assert_string_equal(json_string_value(json_object_get(label, "default")), "'x'");
  assert_string_equal(json_string_value(json_object_get(label, "comment")), "a label");
  json_decref(described);
  mcp_server_free(server);

  close_ok(reg);
  assert_int_equal(atomic_load(&toy_open), 0);
}

static void calls_after_close_say_closed(void **state) {
  (void)state;
  qreg_t *reg = open_ok("toy:box", NULL, 0);
  assert_int_equal(qreg_close(reg), 0);
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  qreg_id_t id;
  assert_int_equal(qreg_catalog(reg, &request, NULL, &id), QREG_ECLOSED);
  char *text = NULL;
  assert_int_equal(qreg_quote_identifier(reg, "x", &text), QREG_ECLOSED);
  assert_int_equal(qreg_redacted_url(reg, &text), QREG_ECLOSED);
  assert_null(text);
  assert_null(qreg_driver_name(reg));
  assert_contains(qreg_last_error(), "closed");
  qreg_destroy(reg);
  assert_null(qreg_driver_name(NULL));
  assert_int_equal(qreg_redacted_url(NULL, &text), QREG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(url_finds_driver_by_scheme_then_matches),
      cmocka_unit_test(unknown_url_lists_every_driver),
      cmocka_unit_test(driver_options_are_checked),
      cmocka_unit_test(url_options_are_checked),
      cmocka_unit_test(application_name_limit_is_the_drivers),
      cmocka_unit_test(passwords_are_redacted),
      cmocka_unit_test(registered_driver_serves_the_whole_stack),
      cmocka_unit_test(calls_after_close_say_closed),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
