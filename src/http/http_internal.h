/*
 * src/http/http_internal.h - what the parts of `qreg serve` share: the
 * server (one per process), one request's state, the output buffer, the
 * token check and the metrics. Knows only include/qreg.h and libmicrohttpd.
 *
 * Threads. Every function here runs on the server's main thread (the one
 * that polls libmicrohttpd's epoll descriptor and calls MHD_run()), except
 * http_on_settled(), the qreg_watch() callback, which runs on the registry's
 * loop thread and touches only what http_server_t.ready_mutex guards.
 */
#ifndef QREG_HTTP_HTTP_INTERNAL_H
#define QREG_HTTP_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qreg.h"

/* --- the output buffer (buffer.c) -------------------------------------------------- */

/* A growing byte buffer. On out of memory it stops growing and sets failed:
   the caller checks once at the end. */
typedef struct http_buf {
  char *data; /* owned, NUL-terminated when not failed */
  size_t len;
  size_t cap;
  bool failed;
} http_buf_t;

void http_buf_append(http_buf_t *buf, const char *data, size_t len);
void http_buf_puts(http_buf_t *buf, const char *text);
__attribute__((format(printf, 2, 3))) void http_buf_printf(http_buf_t *buf, const char *fmt, ...);
/* A JSON string of text (the library's encoder: escapes, U+FFFD). NULL: null. */
void http_buf_json_string(http_buf_t *buf, const char *text);
/* One result value as JSON / as plain text, through qreg_value_json/_text. */
void http_buf_value_json(http_buf_t *buf, const qreg_value_t *value);
void http_buf_value_text(http_buf_t *buf, const qreg_value_t *value);
/* One value as a CSV field (RFC 4180): quoted when it holds a comma, a
   quote, CR or LF, or is empty text (so that "" differs from NULL, which
   is an empty unquoted field, as psql --csv writes them). */
void http_buf_value_csv(http_buf_t *buf, const qreg_value_t *value);
/* An RFC 3339 time, or null for 0. */
void http_buf_json_time(http_buf_t *buf, int64_t ms);
/* Hands the bytes over (*len set); the buffer is empty afterwards. NULL if failed. */
char *http_buf_take(http_buf_t *buf, size_t *len);
void http_buf_free(http_buf_t *buf);

/* --- bearer tokens (auth.c) -------------------------------------------------------- */

#define HTTP_TOKEN_DIGEST_LEN 32 /* SHA-256 */

typedef struct http_tokens {
  size_t count;
  unsigned char (*digests)[HTTP_TOKEN_DIGEST_LEN]; /* owned */
} http_tokens_t;

/* Reads a token file: refused unless it is a regular file of mode 0600 (or
   stricter) that holds at least one token. One token per line (16 to 4096
   printable characters) or its hash as sha256:<64 hex>; blank lines and lines
   starting with '#' are skipped. On failure returns -1 with a message in err
   that never shows a token. */
int http_tokens_load(const char *path, http_tokens_t *out, char *err, size_t err_size);
void http_tokens_free(http_tokens_t *tokens);
/* Whether the Authorization header value holds "Bearer <a known token>".
   Compares the token's SHA-256 with every digest, in time independent of
   where (or whether) they differ. */
bool http_tokens_check(const http_tokens_t *tokens, const char *authorization);

/* --- metrics (metrics.c) ------------------------------------------------------------ */

/* Routes, as the metrics and the log name them. */
typedef enum http_route {
  ROUTE_NONE = 0, /* no route matched */
  ROUTE_HEALTHZ,
  ROUTE_READYZ,
  ROUTE_METRICS,
  ROUTE_OPENAPI,
  ROUTE_STATEMENTS_SUBMIT,
  ROUTE_STATEMENTS_LIST,
  ROUTE_STATEMENT_GET,
  ROUTE_STATEMENT_RESULT,
  ROUTE_STATEMENT_CANCEL,
  ROUTE_STATEMENT_DELETE,
  ROUTE_COUNT
} http_route_t;

const char *http_route_name(http_route_t route);

#define HTTP_LATENCY_BUCKETS 14

typedef struct http_metrics {
  uint64_t requests[ROUTE_COUNT];
  uint64_t responses_by_class[6]; /* 1xx..5xx at 1..5; 0 for connections closed unanswered */
  uint64_t latency_buckets[ROUTE_COUNT][HTTP_LATENCY_BUCKETS]; /* cumulative at render */
  double latency_sum[ROUTE_COUNT];
  uint64_t streamed_bytes; /* CSV / NDJSON bodies */
  uint64_t connections_accepted;
  uint64_t connections_closed;
  uint64_t unauthorized;
} http_metrics_t;

void http_metrics_observe(http_metrics_t *metrics, http_route_t route, unsigned status,
                          double seconds);

/* --- the server ----------------------------------------------------------------------- */

typedef struct http_request http_request_t;

typedef struct http_limits {
  size_t max_body_bytes;        /* a request body larger is refused (413) */
  unsigned max_clients;         /* connections at once */
  unsigned idle_timeout_s;      /* a connection silent this long is closed */
  size_t max_waits;             /* long-polls held at once (more: 503) */
  uint64_t max_wait_ms;         /* the longest wait_seconds */
  uint64_t default_submit_wait; /* POST /v1/statements without wait_seconds */
} http_limits_t;

typedef struct http_server {
  qreg_t *reg;                 /* borrowed: serve.c opens, closes and destroys it */
  struct MHD_Daemon *daemon;   /* owned by serve.c */
  const http_tokens_t *tokens; /* borrowed; count 0: no authentication */
  http_limits_t limits;
  const char *openapi; /* the OpenAPI document (static) */
  size_t openapi_len;
  bool draining; /* SIGTERM: answer what is in flight, take no more */

  /* Waits held (long-polls, cancels, readiness checks), in a min-heap by
     deadline. Main thread only. */
  http_request_t **heap;
  size_t heap_len;
  size_t heap_cap;
  size_t requests_in_flight; /* begun, not yet completed */

  /* The watch callbacks' side: requests whose query settled while they
     were suspended, and the pipe that wakes the main thread. */
  pthread_mutex_t ready_mutex;
  http_request_t *ready_head;
  http_request_t *ready_tail;
  int ready_pipe[2]; /* owned by serve.c; the write end is non-blocking */

  http_metrics_t metrics;
} http_server_t;

/* The MHD callbacks (routes.c). */
enum MHD_Result http_handle(void *cls, struct MHD_Connection *connection, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **request_cls);
void http_completed(void *cls, struct MHD_Connection *connection, void **request_cls,
                    enum MHD_RequestTerminationCode code);
void http_connection_notify(void *cls, struct MHD_Connection *connection, void **socket_cls,
                            enum MHD_ConnectionNotificationCode code);

/* Main thread: resumes every request the watch callbacks queued. */
void http_resume_ready(http_server_t *server);
/* Main thread: resumes the waits whose deadline has passed (all of them
   when everything is true); returns the milliseconds to the next deadline,
   or -1 when none is held. */
int64_t http_expire_waits(http_server_t *server, bool everything);
/* Waits held now. */
size_t http_waits_held(const http_server_t *server);

/* The Prometheus text of /metrics (metrics.c). NULL when out of memory. */
char *http_metrics_render(http_server_t *server, size_t *len);

/* Monotonic milliseconds. */
uint64_t http_now_ms(void);

#endif /* QREG_HTTP_HTTP_INTERNAL_H */
