/*
 * src/drivers/snowflake/snowflake.c - the Snowflake driver: the driver.h
 * contract on Snowflake's SQL API v2 (HTTPS + JSON), run on the registry's
 * loop through snowflake_http.c. This file holds the descriptor
 * (qreg_driver_snowflake), connections and a statement's life; snowflake.h
 * lists the driver's other files.
 *
 * A connection is an HTTP session: one curl multi handle whose connection
 * cache keeps HTTPS alive between statements. Connecting opens nothing
 * (the first request does); max_connections still bounds statements
 * running at once.
 *
 * A statement's life:
 *
 *   submit   POST /api/v2/statements?requestId=R&async=true  {statement, timeout,
 *            database, schema, warehouse, role, parameters: MULTI_STATEMENT_COUNT 1}
 *            202 + statementHandle (the backend id) -> poll; 200 -> results
 *   poll     GET /api/v2/statements/H every 25 ms at first, then twice as long
 *            each time up to poll_max_ms (1 s): the API has no push, so a
 *            statement is seen to finish up to that late
 *   results  resultSetMetaData.rowType -> columns; data -> rows; the other
 *            partitions GET ...?partition=N in order (gzip, decoded by curl),
 *            until the store is full (max_rows or bytes): the rest is not
 *            fetched and the result says truncated
 *   retries  429, 503, 504 and transfers cut or stalled are retried after an
 *            exponential backoff with jitter, at least Retry-After; a submit
 *            is retried with the same requestId and retry=true, so the server
 *            never runs it twice
 *   cancel   POST /api/v2/statements/H/cancel, then keep polling until the
 *            server reports the statement ended (422 "canceled", or 200/408
 *            if it won the race): only then does the job complete. Timeout,
 *            prune and close go through cancel() too. A cancel during a
 *            submit waits for its handle; during a retry's backoff after a
 *            cut transfer (the server may have the statement) the submit is
 *            sent again at once (same requestId) to learn the handle. If the
 *            server never reports the end within cancel_wait_ms, the job
 *            completes anyway, the connection is dropped, and the error says so.
 *   errors   422 -> failed with Snowflake's code, SQLSTATE and message;
 *            408 -> timeout (the server-side backstop fired); 401/403 -> a
 *            connection error naming the cause (never the token or key);
 *            anything malformed -> a clear error, after a cancel if a
 *            statement may still run.
 *
 * Read-only: the API has no read-only transaction; a read-only job whose
 * statement is not a query is refused before anything is sent
 * (snowflake_sql.c).
 *
 * Owns, per connection: the sf_http_t, the job's requests (through it),
 * its timers, its column kinds. Everything runs on the loop thread.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "drivers/snowflake/snowflake.h"

#define POLL_FIRST_MS 25u
#define BACKOFF_BASE_MS 100u
#define BACKOFF_CAP_MS 4000u

typedef enum step {
  STEP_NONE = 0,
  STEP_SUBMIT,
  STEP_POLL,
  STEP_FETCH,
} step_t;

typedef struct sf_column {
  sf_kind_t kind;
  int64_t scale;
} sf_column_t;

struct qreg_driver_conn {
  sf_state_t *state; /* the driver's; outlives every connection */
  sf_http_t *http;   /* owned: freed by close() */
  bool broken;       /* never hand it out again */
  uint64_t rng;      /* jitter */

  /* The job (job != NULL from execute() until qreg_job_complete()). */
  qreg_job_t *job;
  step_t step;                  /* what request/timer is for */
  sf_request_t *request;        /* the submit, poll or fetch in flight */
  qreg_timer_t *timer;          /* the next step, while one is due */
  sf_request_t *cancel_request; /* the cancel in flight */
  qreg_timer_t *cancel_timer;   /* the next cancel attempt */
  char request_id[QREG_ID_LEN + 1];
  char handle[QREG_BACKEND_ID_MAX + 1]; /* "" until the server gave one */
  unsigned attempts;                    /* failed tries of the current step */
  unsigned cancel_attempts;
  uint64_t poll_ms;
  bool submitted;        /* a submit was sent: the next says retry=true */
  bool maybe_received;   /* a submit may be on the server, handle unknown */
  bool ended;            /* the server reported the statement ended */
  bool cancel_requested; /* the core asked */
  bool cancel_acked;     /* the server answered a cancel */
  bool cancel_failed;    /* gave up waiting for the end */
  uint64_t cancel_deadline;
  bool ending; /* outcome decided: completes when no request is left */
  qreg_job_outcome_t outcome;
  sf_column_t *columns; /* owned */
  size_t column_count;
  size_t partition_count, partition_next;
};

static void step_submit(qreg_driver_conn_t *conn);
static void step_poll(qreg_driver_conn_t *conn);
static void step_fetch(qreg_driver_conn_t *conn);
static void send_cancel(qreg_driver_conn_t *conn);
static void job_settle(qreg_driver_conn_t *conn);

/* ------------------------------------------------------------------------
 * Small pieces
 * ---------------------------------------------------------------------- */

static uint64_t next_random(qreg_driver_conn_t *conn) {
  uint64_t x = conn->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  conn->rng = x;
  return x;
}

static void job_error(qreg_driver_conn_t *conn, const char *type, const char *code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static void job_error(qreg_driver_conn_t *conn, const char *type, const char *code, const char *fmt,
                      ...) {
  char *text = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&text, fmt, ap) < 0)
    text = NULL;
  va_end(ap);
  qreg_driver_error_set(&conn->job->error, type, code, "%s", text ? text : "out of memory");
  free(text);
}

/* The "message" of a JSON error body, else a short view of the body. */
static char *server_message(const sf_request_t *request) {
  json_t *root = json_loadb(request->body, request->body_len, 0, NULL);
  const char *message = json_string_value(json_object_get(root, "message"));
  char *out = NULL;
  if (message != NULL) {
    out = strdup(message);
  } else {
    size_t n = request->body_len < 200 ? request->body_len : 200;
    out = strndup(request->body ? request->body : "", n);
    for (char *p = out; p != NULL && *p != '\0'; p++) {
      if ((unsigned char)*p < 0x20)
        *p = ' ';
    }
  }
  json_decref(root);
  return out;
}

static bool handle_valid(const char *handle) {
  size_t len = strlen(handle);
  if (len == 0 || len > QREG_BACKEND_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = handle[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
          c == '_'))
      return false;
  }
  return true;
}

static void timer_stop(qreg_timer_t **timer) {
  if (*timer != NULL) {
    qreg_timer_close(*timer);
    *timer = NULL;
  }
}

/* Starts a request of the job's step; NULL when it could not start (the
   job's error is set). */
static sf_request_t *start_request(qreg_driver_conn_t *conn, const char *url, const char *body,
                                   sf_request_cb done) {
  char *authorization = NULL;
  const char *token_type = NULL;
  if (qreg__sf_auth_headers(conn->state, &authorization, &token_type) != 0) {
    job_error(conn, "connection", NULL, "snowflake: could not sign the JWT with the private key");
    return NULL;
  }
  const char *headers[] = {authorization,
                           token_type,
                           conn->state->user_agent,
                           "Accept: application/json",
                           "Content-Type: application/json",
                           NULL};
  sf_request_t *request = qreg__sf_http_start(conn->http, url, headers, body,
                                              conn->state->request_timeout_ms, done, conn);
  memset(authorization, 0, strlen(authorization));
  free(authorization);
  if (request == NULL)
    job_error(conn, "internal", NULL, "snowflake: could not start an HTTP request");
  return request;
}

/* ------------------------------------------------------------------------
 * Ending a job
 * ---------------------------------------------------------------------- */

static void job_reset(qreg_driver_conn_t *conn) {
  free(conn->columns);
  conn->columns = NULL;
  conn->column_count = 0;
  conn->job = NULL;
}

/* Decides the job's outcome (the first decision wins) and stops what it
   still does; completes once no request is in flight. A statement that may
   still run on the server is cancelled first. */
static void job_end(qreg_driver_conn_t *conn, qreg_job_outcome_t outcome) {
  if (!conn->ending) {
    conn->ending = true;
    conn->outcome = outcome;
  }
  timer_stop(&conn->timer);
  qreg__sf_http_abort(conn->request);
  conn->request = NULL;
  if (!conn->ended && conn->handle[0] != '\0' && !conn->cancel_acked &&
      conn->cancel_request == NULL && !conn->cancel_failed) {
    /* Never leave it running: one last cancel, whose answer we wait for. */
    timer_stop(&conn->cancel_timer);
    conn->cancel_attempts = conn->state->max_retries; /* no retries now */
    send_cancel(conn);
  }
  job_settle(conn);
}

static void job_settle(qreg_driver_conn_t *conn) {
  if (conn->job == NULL || !conn->ending || conn->cancel_request != NULL)
    return;
  timer_stop(&conn->cancel_timer);
  qreg_job_t *job = conn->job;
  qreg_job_outcome_t outcome = conn->outcome;
  if (outcome == QREG_JOB_CANCELED && !conn->cancel_failed)
    qreg_driver_error_clear(&job->error);
  if (outcome == QREG_JOB_OK)
    qreg_driver_error_clear(&job->error);
  if (outcome != QREG_JOB_OK || !conn->ended)
    conn->broken = conn->broken || conn->cancel_failed;
  job->conn_reusable = outcome == QREG_JOB_OK && !conn->broken;
  job_reset(conn);
  qreg_job_complete(job, outcome);
}

static void job_fail(qreg_driver_conn_t *conn) {
  job_end(conn, QREG_JOB_ERROR);
}

/* ------------------------------------------------------------------------
 * Timers and retries
 * ---------------------------------------------------------------------- */

static void on_step_timer(qreg_timer_t *timer, void *arg) {
  qreg_driver_conn_t *conn = arg;
  qreg_timer_close(timer);
  conn->timer = NULL;
  switch (conn->step) {
  case STEP_SUBMIT:
    step_submit(conn);
    break;
  case STEP_POLL:
    step_poll(conn);
    break;
  case STEP_FETCH:
    step_fetch(conn);
    break;
  case STEP_NONE:
    break;
  }
}

static void schedule(qreg_driver_conn_t *conn, step_t step, uint64_t delay_ms) {
  timer_stop(&conn->timer);
  conn->step = step;
  if (qreg_timer_start(conn->state->loop, delay_ms, on_step_timer, conn, &conn->timer) != 0) {
    conn->timer = NULL;
    job_error(conn, "internal", NULL, "snowflake: could not start a timer");
    job_fail(conn);
  }
}

static uint64_t backoff_ms(qreg_driver_conn_t *conn, unsigned attempt, int64_t retry_after_ms) {
  unsigned shift = attempt > 10 ? 10 : attempt;
  uint64_t ceiling = (uint64_t)BACKOFF_BASE_MS << shift;
  if (ceiling > BACKOFF_CAP_MS)
    ceiling = BACKOFF_CAP_MS;
  uint64_t delay = ceiling / 2 + next_random(conn) % (ceiling / 2 + 1); /* jitter */
  if (retry_after_ms >= 0)
    delay = (uint64_t)retry_after_ms + delay / 4;
  return delay;
}

/* The current step failed in a way worth another try (429, 503, 504, a
   transfer cut): again after a backoff, or the job fails. */
static void retry_step(qreg_driver_conn_t *conn, const sf_request_t *request, const char *why) {
  if (conn->step == STEP_SUBMIT && conn->cancel_requested && !conn->maybe_received) {
    /* Nothing reached the server: nothing to cancel there. */
    job_end(conn, QREG_JOB_CANCELED);
    return;
  }
  if (++conn->attempts > conn->state->max_retries) {
    job_error(conn, "connection", NULL, "snowflake: %s; gave up after %u attempts", why,
              conn->attempts);
    job_fail(conn);
    return;
  }
  uint64_t delay = backoff_ms(conn, conn->attempts, request ? request->retry_after_ms : -1);
  if (conn->step == STEP_SUBMIT && conn->cancel_requested)
    delay = 0; /* learn the handle now, to cancel it */
  schedule(conn, conn->step, delay);
}

/* ------------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------- */

/* Stores the rows of one "data" array. 0 when every row was stored, 1
   when the store is full (stop), negative on a malformed partition or
   ENOMEM (the job's error is set). */
static int store_rows(qreg_driver_conn_t *conn, json_t *data) {
  if (!json_is_array(data)) {
    job_error(conn, "internal", NULL, "snowflake: malformed result: \"data\" is not an array");
    return QREG_EINVAL;
  }
  qreg_result_t *result = conn->job->result;
  size_t rows = json_array_size(data);
  for (size_t r = 0; r < rows; r++) {
    json_t *row = json_array_get(data, r);
    if (!json_is_array(row) || json_array_size(row) != conn->column_count) {
      job_error(conn, "internal", NULL,
                "snowflake: malformed result: a row has %zu cells for %zu columns",
                json_array_size(row), conn->column_count);
      return QREG_EINVAL;
    }
    int rc = qreg_result_row_begin(result);
    for (size_t c = 0; rc == 0 && c < conn->column_count; c++) {
      json_t *cell = json_array_get(row, c);
      const sf_column_t *col = &conn->columns[c];
      if (json_is_null(cell)) {
        rc = qreg_result_put_null(result);
      } else if (json_is_string(cell)) {
        rc = qreg__sf_put_value(result, col->kind, col->scale, json_string_value(cell),
                                json_string_length(cell), false);
      } else {
        /* Not the documented form (every cell a string): take its JSON. */
        char *text = json_dumps(cell, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = text == NULL
                 ? QREG_ENOMEM
                 : qreg__sf_put_value(result, col->kind, col->scale, text, strlen(text), false);
        free(text);
      }
    }
    if (rc == 0)
      rc = qreg_result_row_end(result);
    if (rc == QREG_RESULT_FULL)
      return 1;
    if (rc < 0) {
      job_error(conn, "internal", NULL, "snowflake: storing the result failed: %s",
                qreg_strerror(rc));
      return rc;
    }
  }
  return 0;
}

/* The columns of resultSetMetaData.rowType. false when malformed. */
static bool set_columns(qreg_driver_conn_t *conn, json_t *meta) {
  json_t *row_type = json_object_get(meta, "rowType");
  if (!json_is_array(row_type)) {
    job_error(conn, "internal", NULL, "snowflake: malformed result: no resultSetMetaData.rowType");
    return false;
  }
  size_t count = json_array_size(row_type);
  conn->columns = count ? calloc(count, sizeof *conn->columns) : NULL;
  if (count > 0 && conn->columns == NULL) {
    job_error(conn, "internal", NULL, "out of memory");
    return false;
  }
  conn->column_count = count;
  qreg_result_t *result = conn->job->result;
  int rc = qreg_result_set_columns(result, count);
  for (size_t i = 0; rc == 0 && i < count; i++) {
    json_t *column = json_array_get(row_type, i);
    const char *name = json_string_value(json_object_get(column, "name"));
    const char *type = json_string_value(json_object_get(column, "type"));
    if (name == NULL || type == NULL) {
      job_error(conn, "internal", NULL,
                "snowflake: malformed result: a column of rowType has no name or type");
      return false;
    }
    conn->columns[i].kind = qreg__sf_kind(type);
    conn->columns[i].scale = json_integer_value(json_object_get(column, "scale"));
    char shown[64];
    size_t n = 0;
    for (; type[n] != '\0' && n + 1 < sizeof shown; n++)
      shown[n] = (char)((type[n] >= 'a' && type[n] <= 'z') ? type[n] - 32 : type[n]);
    shown[n] = '\0';
    rc = qreg_result_set_column(result, i, name, shown);
  }
  if (rc != 0) {
    job_error(conn, "internal", NULL, "snowflake: storing the columns failed: %s",
              qreg_strerror(rc));
    return false;
  }
  return true;
}

/* A 200 with the first partition: columns, rows, then the other
   partitions in order. */
static void take_result_set(qreg_driver_conn_t *conn, json_t *root) {
  json_t *meta = json_object_get(root, "resultSetMetaData");
  if (!json_is_object(meta) || !set_columns(conn, meta)) {
    if (conn->job->error.message == NULL)
      job_error(conn, "internal", NULL, "snowflake: malformed result: no resultSetMetaData");
    job_fail(conn);
    return;
  }
  json_t *partitions = json_object_get(meta, "partitionInfo");
  conn->partition_count = json_is_array(partitions) ? json_array_size(partitions) : 1;
  if (conn->partition_count == 0)
    conn->partition_count = 1;
  conn->partition_next = 1;
  json_t *data = json_object_get(root, "data");
  int rc = data == NULL ? 0 : store_rows(conn, data);
  if (rc < 0) {
    job_fail(conn);
  } else if (rc == 1 || conn->partition_next >= conn->partition_count) {
    job_end(conn, QREG_JOB_OK); /* full: the other partitions stay unread */
  } else {
    conn->attempts = 0;
    step_fetch(conn);
  }
}

/* ------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------- */

static void take_handle(qreg_driver_conn_t *conn, json_t *root) {
  const char *handle = json_string_value(json_object_get(root, "statementHandle"));
  if (handle != NULL && handle_valid(handle) && strcmp(handle, conn->handle) != 0) {
    snprintf(conn->handle, sizeof conn->handle, "%s", handle);
    qreg_job_set_backend_id(conn->job, handle);
  }
}

/* A failed transfer: retried when worth it, else the job fails. */
static void transfer_failed(qreg_driver_conn_t *conn, sf_request_t *request) {
  bool maybe_received = false;
  if (request->too_big) {
    job_error(conn, "internal", NULL, "snowflake: a response was larger than 1 GiB");
    job_fail(conn);
    return;
  }
  if (qreg__sf_http_retryable(request->curl_code, &maybe_received)) {
    if (conn->step == STEP_SUBMIT && maybe_received)
      conn->maybe_received = true;
    retry_step(conn, request, request->error);
    return;
  }
  job_error(conn, "connection", NULL, "snowflake: %s", request->error);
  job_fail(conn);
}

/* What a status of submit or poll means (QueryStatus, ResultSet or
   QueryFailureStatus). */
static void statement_response(qreg_driver_conn_t *conn, sf_request_t *request) {
  long status = request->status;
  if (status == 429 || status == 503 || status == 504) {
    if (conn->step == STEP_SUBMIT && status == 504)
      conn->maybe_received = true; /* a gateway may have passed it on */
    char why[64];
    snprintf(why, sizeof why, "the server answered HTTP %ld", status);
    retry_step(conn, request, why);
    return;
  }
  json_t *root = NULL;
  if (status == 200 || status == 202 || status == 422 || status == 408) {
    root = json_loadb(request->body, request->body_len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(root)) {
      json_decref(root);
      job_error(conn, "internal", NULL,
                "snowflake: malformed response to a statement (HTTP %ld): not a JSON object",
                status);
      job_fail(conn);
      return;
    }
    take_handle(conn, root);
  }
  conn->attempts = 0;
  if (status == 202) {
    conn->maybe_received = false;
    if (conn->handle[0] == '\0') {
      json_decref(root);
      job_error(conn, "internal", NULL,
                "snowflake: malformed response: a running statement without statementHandle");
      job_fail(conn);
      return;
    }
    if (conn->cancel_requested)
      send_cancel(conn);
    uint64_t delay = conn->poll_ms;
    conn->poll_ms =
        conn->poll_ms * 2 > conn->state->poll_max_ms ? conn->state->poll_max_ms : conn->poll_ms * 2;
    if (conn->cancel_requested && qreg_loop_now_ms() > conn->cancel_deadline) {
      conn->cancel_failed = true;
      job_error(conn, "canceled", NULL,
                "snowflake: the server did not report statement %s ended within %" PRIu64
                " ms of the cancel",
                conn->handle, conn->state->cancel_wait_ms);
      json_decref(root);
      job_end(conn, QREG_JOB_CANCELED);
      return;
    }
    json_decref(root);
    schedule(conn, STEP_POLL, delay);
    return;
  }
  if (status == 200 || status == 422 || status == 408 || status == 404)
    conn->ended = true;
  conn->maybe_received = false;
  if (conn->cancel_requested && (status == 200 || status == 422 || status == 408)) {
    json_decref(root);
    job_end(conn, QREG_JOB_CANCELED);
    return;
  }
  if (status == 200) {
    take_result_set(conn, root);
  } else if (status == 422) {
    const char *code = json_string_value(json_object_get(root, "code"));
    const char *sql_state = json_string_value(json_object_get(root, "sqlState"));
    const char *message = json_string_value(json_object_get(root, "message"));
    qreg_driver_error_set(&conn->job->error, "database", code, "%s",
                          message ? message : "the statement failed");
    if (sql_state != NULL) {
      char detail[64];
      snprintf(detail, sizeof detail, "SQLSTATE %.8s", sql_state);
      qreg_driver_error_set_detail(&conn->job->error, detail);
    }
    job_fail(conn);
  } else if (status == 408) {
    const char *message = json_string_value(json_object_get(root, "message"));
    job_error(conn, "timeout", json_string_value(json_object_get(root, "code")),
              "snowflake: the statement ran past its timeout and the server cancelled it%s%s",
              message ? ": " : "", message ? message : "");
    job_fail(conn);
  } else {
    char *message = server_message(request);
    if (status == 401 || status == 403) {
      conn->broken = true;
      job_error(conn, "connection", NULL, "snowflake: the server refused the %s (HTTP %ld%s): %s",
                conn->state->authenticator == SF_AUTH_JWT ? "key-pair JWT" : "token", status,
                status == 401 ? ", not authenticated" : ", forbidden",
                message && message[0] ? message : "no reason given");
    } else if (status == 404 && conn->step == STEP_POLL) {
      job_error(conn, "internal", NULL, "snowflake: the server does not know statement %s: %s",
                conn->handle, message ? message : "");
    } else {
      job_error(conn, status >= 500 ? "connection" : "internal", NULL,
                "snowflake: unexpected HTTP %ld: %s", status, message ? message : "");
    }
    free(message);
    job_fail(conn);
  }
  json_decref(root);
}

/* ------------------------------------------------------------------------
 * Steps
 * ---------------------------------------------------------------------- */

static void on_statement_done(sf_request_t *request, void *arg) {
  qreg_driver_conn_t *conn = arg;
  conn->request = NULL;
  if (conn->ending)
    return;
  if (request->curl_code != 0)
    transfer_failed(conn, request);
  else
    statement_response(conn, request);
}

static char *submit_body(qreg_driver_conn_t *conn) {
  const sf_state_t *s = conn->state;
  const qreg_job_t *job = conn->job;
  json_t *body = json_object();
  json_t *parameters = json_object();
  json_object_set_new(body, "statement", json_stringn(job->sql, job->sql_len));
  uint64_t timeout_s = s->timeout_s;
  if (job->timeout_ms > 0) {
    uint64_t derived = (job->timeout_ms + 999) / 1000 + 1;
    if (timeout_s == 0 || derived < timeout_s)
      timeout_s = derived;
  }
  if (timeout_s > 0)
    json_object_set_new(body, "timeout", json_integer((json_int_t)timeout_s));
  if (s->database)
    json_object_set_new(body, "database", json_string(s->database));
  if (s->schema)
    json_object_set_new(body, "schema", json_string(s->schema));
  if (s->warehouse)
    json_object_set_new(body, "warehouse", json_string(s->warehouse));
  if (s->role)
    json_object_set_new(body, "role", json_string(s->role));
  json_object_set_new(parameters, "MULTI_STATEMENT_COUNT", json_string("1"));
  if (s->query_tag)
    json_object_set_new(parameters, "QUERY_TAG", json_string(s->query_tag));
  json_object_set_new(body, "parameters", parameters);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  return text;
}

static void step_submit(qreg_driver_conn_t *conn) {
  conn->step = STEP_SUBMIT;
  char *url = NULL, *body = submit_body(conn);
  if (asprintf(&url, "%s/api/v2/statements?requestId=%s&async=true%s", conn->state->endpoint,
               conn->request_id, conn->submitted ? "&retry=true" : "") < 0)
    url = NULL;
  if (url != NULL && body != NULL)
    conn->request = start_request(conn, url, body, on_statement_done);
  else
    job_error(conn, "internal", NULL, "out of memory");
  free(url);
  free(body);
  if (conn->request == NULL) {
    job_fail(conn);
    return;
  }
  conn->submitted = true;
}

static void step_poll(qreg_driver_conn_t *conn) {
  conn->step = STEP_POLL;
  char *url = NULL;
  if (asprintf(&url, "%s/api/v2/statements/%s", conn->state->endpoint, conn->handle) < 0)
    url = NULL;
  conn->request = url ? start_request(conn, url, NULL, on_statement_done) : NULL;
  free(url);
  if (conn->request == NULL)
    job_fail(conn);
}

static void on_fetch_done(sf_request_t *request, void *arg) {
  qreg_driver_conn_t *conn = arg;
  conn->request = NULL;
  if (conn->ending)
    return;
  if (request->curl_code != 0) {
    transfer_failed(conn, request);
    return;
  }
  if (request->status == 429 || request->status == 503 || request->status == 504) {
    char why[64];
    snprintf(why, sizeof why, "the server answered HTTP %ld", request->status);
    retry_step(conn, request, why);
    return;
  }
  if (request->status != 200) {
    char *message = server_message(request);
    job_error(conn, request->status == 401 || request->status == 403 ? "connection" : "internal",
              NULL, "snowflake: fetching partition %zu failed with HTTP %ld: %s",
              conn->partition_next, request->status, message ? message : "");
    free(message);
    job_fail(conn);
    return;
  }
  json_t *root = json_loadb(request->body, request->body_len, JSON_ALLOW_NUL, NULL);
  json_t *data = json_is_object(root) ? json_object_get(root, "data") : root;
  int rc = data != NULL ? store_rows(conn, data) : QREG_EINVAL;
  if (data == NULL)
    job_error(conn, "internal", NULL, "snowflake: malformed partition %zu: no \"data\"",
              conn->partition_next);
  json_decref(root);
  conn->attempts = 0;
  if (rc < 0)
    job_fail(conn);
  else if (rc == 1 || ++conn->partition_next >= conn->partition_count)
    job_end(conn, QREG_JOB_OK);
  else
    step_fetch(conn);
}

static void step_fetch(qreg_driver_conn_t *conn) {
  conn->step = STEP_FETCH;
  if (conn->cancel_requested) {
    job_end(conn, QREG_JOB_CANCELED); /* it ended on the server already */
    return;
  }
  char *url = NULL;
  if (asprintf(&url, "%s/api/v2/statements/%s?partition=%zu", conn->state->endpoint, conn->handle,
               conn->partition_next) < 0)
    url = NULL;
  conn->request = url ? start_request(conn, url, NULL, on_fetch_done) : NULL;
  free(url);
  if (conn->request == NULL)
    job_fail(conn);
}

/* ------------------------------------------------------------------------
 * Cancel
 * ---------------------------------------------------------------------- */

static void on_cancel_timer(qreg_timer_t *timer, void *arg) {
  qreg_driver_conn_t *conn = arg;
  qreg_timer_close(timer);
  conn->cancel_timer = NULL;
  send_cancel(conn);
  job_settle(conn);
}

static void on_cancel_done(sf_request_t *request, void *arg) {
  qreg_driver_conn_t *conn = arg;
  conn->cancel_request = NULL;
  bool maybe_received = false;
  bool retry = request->curl_code != 0
                   ? qreg__sf_http_retryable(request->curl_code, &maybe_received)
                   : request->status == 429 || request->status == 503 || request->status == 504;
  if (request->curl_code == 0 && !retry) {
    /* 200: cancelled; 422 or 404: it had ended, or is unknown. */
    conn->cancel_acked = true;
    if (request->status == 401 || request->status == 403)
      conn->broken = true;
  } else if (retry && !conn->ending && ++conn->cancel_attempts <= conn->state->max_retries) {
    uint64_t delay = backoff_ms(conn, conn->cancel_attempts, request->retry_after_ms);
    if (qreg_timer_start(conn->state->loop, delay, on_cancel_timer, conn, &conn->cancel_timer) != 0)
      conn->cancel_timer = NULL;
  }
  job_settle(conn);
}

static void send_cancel(qreg_driver_conn_t *conn) {
  if (conn->cancel_request != NULL || conn->cancel_timer != NULL || conn->cancel_acked ||
      conn->handle[0] == '\0')
    return;
  char *url = NULL;
  if (asprintf(&url, "%s/api/v2/statements/%s/cancel", conn->state->endpoint, conn->handle) < 0)
    url = NULL;
  /* The job's error slot is not touched for a cancel that cannot start:
     polling still tells when the statement ends. */
  qreg_driver_error_t saved = conn->job->error;
  memset(&conn->job->error, 0, sizeof conn->job->error);
  conn->cancel_request = url ? start_request(conn, url, "", on_cancel_done) : NULL;
  qreg_driver_error_clear(&conn->job->error);
  conn->job->error = saved;
  free(url);
}

static void sf_cancel(qreg_driver_conn_t *conn, qreg_job_t *job) {
  if (conn->job == NULL || conn->job != job || conn->cancel_requested || conn->ending)
    return;
  conn->cancel_requested = true;
  conn->cancel_deadline = qreg_loop_now_ms() + conn->state->cancel_wait_ms;
  switch (conn->step) {
  case STEP_SUBMIT:
    if (conn->request != NULL)
      return; /* its answer says whether there is a statement to cancel */
    if (!conn->maybe_received) {
      job_end(conn, QREG_JOB_CANCELED); /* nothing reached the server */
      return;
    }
    schedule(conn, STEP_SUBMIT, 0); /* the same requestId: learn the handle */
    return;
  case STEP_POLL:
    send_cancel(conn);
    conn->poll_ms = POLL_FIRST_MS;
    if (conn->timer != NULL)
      schedule(conn, STEP_POLL, POLL_FIRST_MS);
    return;
  case STEP_FETCH:
  case STEP_NONE:
    job_end(conn, QREG_JOB_CANCELED); /* the statement has ended */
    return;
  }
}

/* ------------------------------------------------------------------------
 * The job, connections
 * ---------------------------------------------------------------------- */

static void sf_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  conn->job = job;
  conn->step = STEP_NONE;
  conn->request = NULL;
  conn->timer = NULL;
  conn->cancel_request = NULL;
  conn->cancel_timer = NULL;
  conn->handle[0] = '\0';
  conn->attempts = conn->cancel_attempts = 0;
  conn->poll_ms = POLL_FIRST_MS;
  conn->submitted = conn->maybe_received = conn->ended = false;
  conn->cancel_requested = conn->cancel_acked = conn->cancel_failed = false;
  conn->ending = false;
  conn->outcome = QREG_JOB_OK;
  conn->partition_count = conn->partition_next = 0;
  if (job->read_only && !qreg__sf_sql_is_query(job->sql, job->sql_len)) {
    qreg_driver_error_set(&job->error, "database", "QREG_READ_ONLY",
                          "read-only: only queries run on Snowflake here (SELECT, WITH ... "
                          "SELECT, SHOW, DESCRIBE, EXPLAIN)");
    qreg_driver_error_set_hint(&job->error,
                               "the role's grants are the real boundary: docs/snowflake.md");
    conn->ended = true;
    job_end(conn, QREG_JOB_ERROR);
    return;
  }
  qreg__uuid_t uuid;
  qreg_id_t id;
  if (qreg__uuid_random(&uuid) != 0) {
    qreg_driver_error_set(&job->error, "internal", NULL, "snowflake: no random requestId");
    conn->ended = true;
    job_end(conn, QREG_JOB_ERROR);
    return;
  }
  qreg__uuid_format(&uuid, &id);
  memcpy(conn->request_id, id.str, sizeof conn->request_id);
  step_submit(conn);
}

static void sf_connect(void *state_arg, qreg_conn_request_t *request) {
  sf_state_t *state = state_arg;
  qreg_driver_conn_t *conn = calloc(1, sizeof *conn);
  qreg__uuid_t seed;
  if (conn != NULL)
    conn->http = qreg__sf_http_new(state->loop);
  if (conn == NULL || conn->http == NULL || qreg__uuid_random(&seed) != 0) {
    if (conn != NULL)
      qreg__sf_http_free(conn->http);
    free(conn);
    qreg_driver_error_t error = {0};
    qreg_driver_error_set(&error, "connection", NULL, "snowflake: could not set up HTTP");
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
    return;
  }
  conn->state = state;
  memcpy(&conn->rng, seed.bytes, sizeof conn->rng);
  conn->rng |= 1;
  qreg_conn_request_done(request, conn, NULL);
}

static bool sf_alive(qreg_driver_conn_t *conn) {
  return !conn->broken;
}

static void sf_close(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg) {
  timer_stop(&conn->timer);
  timer_stop(&conn->cancel_timer);
  qreg__sf_http_free(conn->http);
  free(conn->columns);
  free(conn);
  closed(arg);
}

/* "s" with every '"' doubled: Snowflake's quoted identifiers. */
static char *sf_quote_identifier(const char *name) {
  return qreg_driver_quote_double(name);
}

static const char *const sf_schemes[] = {"snowflake", NULL};

const qreg_driver_t qreg_driver_snowflake = {
    .name = "snowflake",
    .schemes = sf_schemes,
    .url_forms = "snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=W&role=R",
    .matches = NULL,
    .redact_url = qreg__sf_redact_url,
    .options = qreg__sf_options,
    .limits = {.identifier_bytes = 255, .application_name_bytes = 0},
    .create = qreg__sf_create,
    .destroy = qreg__sf_destroy,
    .connect = sf_connect,
    .alive = sf_alive,
    .execute = sf_execute,
    .cancel = sf_cancel,
    .close = sf_close,
    .catalog_sql = qreg__sf_catalog_sql,
    .quote_identifier = sf_quote_identifier,
};
