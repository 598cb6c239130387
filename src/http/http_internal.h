/*
 * src/http/http_internal.h - what the parts of `qreg serve` share: the
 * server (one per process), one request's state, the output buffer, the
 * token check and the metrics. Knows include/qreg.h and libmicrohttpd;
 * mcp.c also the MCP message handler (src/mcp/protocol.h).
 *
 * Threads. Every function here runs on the server's main thread (the one
 * that polls libmicrohttpd's epoll descriptor and calls MHD_run()), except
 * http_on_settled(), the qreg_watch() callback, and the MCP server's waker,
 * which run on the registry's loop thread and touch only what
 * http_server_t.ready_mutex guards (and the ready pipe).
 */
#ifndef QREG_HTTP_HTTP_INTERNAL_H
#define QREG_HTTP_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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
  ROUTE_CONSOLE,
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
  ROUTE_MCP,
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
typedef struct http_mcp http_mcp_t;

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
  bool draining;               /* SIGTERM: answer what is in flight, take no more */
  bool loopback;               /* listening on a loopback address: a Host header must name one */
  const char *allowed_origins; /* borrowed: --allow-origin, comma-separated; NULL: none */

  /* MCP over Streamable HTTP (mcp.c); NULL until set up. */
  http_mcp_t *mcp;

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

#define LOG_PATH_MAX 160

typedef enum wait_kind {
  WAIT_NONE = 0,
  WAIT_SUBMIT,
  WAIT_STATUS,
  WAIT_CANCEL,
  WAIT_READY,
  WAIT_MCP, /* an MCP call parked (mcp.c): answered as JSON when it is resumed */
} wait_kind_t;

struct http_request {
  http_server_t *server;
  http_route_t route;
  char method[8];
  char path[LOG_PATH_MAX + 1]; /* for the log: printable, cut */
  char peer[64];
  struct MHD_Connection *connection; /* borrowed: libmicrohttpd's, for resuming */
  struct timespec started;
  unsigned status; /* of the response queued, 0 before */
  bool answered;
  bool close_after; /* the answer closes the connection (over --max-clients) */

  /* The body of a POST (main thread). */
  http_buf_t body;
  bool body_too_large;

  /* The wait (see the top of the file). */
  wait_kind_t wait;
  qreg_id_t id;
  uint64_t deadline_ms;
  size_t heap_index; /* SIZE_MAX: not in the heap */
  uint64_t page_limit;
  /* MCP (mcp.c): the call this request waits for (parked), its answer
     once it came while the connection was suspended, the SSE stream it
     answers on, its session. Main thread. */
  struct mcp_call *mcp_call;
  char *mcp_reply; /* owned */
  size_t mcp_reply_len;
  struct http_sse *sse;
  struct http_mcp_session *mcp_session;
  struct http_request *session_next;        /* in mcp_session's GET streams */
  struct http_request *sse_prev, *sse_next; /* every request answering on an SSE stream */
  /* Under server->ready_mutex: */
  int refs;
  bool suspended;
  bool queued;
  bool settled;
  int settled_rc;
  http_request_t *ready_next;
};

/* The MHD callbacks (routes.c). */
enum MHD_Result http_handle(void *cls, struct MHD_Connection *connection, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **request_cls);
void http_completed(void *cls, struct MHD_Connection *connection, void **request_cls,
                    enum MHD_RequestTerminationCode code);
void http_connection_notify(void *cls, struct MHD_Connection *connection, void **socket_cls,
                            enum MHD_ConnectionNotificationCode code);

/* Answers (answer.c). The common headers (content type, no-store, nosniff,
   Connection: close when draining) on a response of the caller's. */
void http_response_headers(http_request_t *req, struct MHD_Response *response,
                           const char *content_type);
/* Queues response (and drops the caller's reference to it). */
enum MHD_Result http_queue(http_request_t *req, unsigned status, struct MHD_Response *response);
/* Queues body (malloc'd, taken) with the common headers and one more. */
enum MHD_Result http_answer(http_request_t *req, unsigned status, const char *content_type,
                            char *body, size_t len, const char *extra_name,
                            const char *extra_value);
/* out's bytes (taken) as application/json. */
enum MHD_Result http_answer_json(http_request_t *req, unsigned status, http_buf_t *out);
/* An application/problem+json answer (RFC 9457) of an MCP tool error type. */
enum MHD_Result http_answer_problem(http_request_t *req, unsigned status, const char *type,
                                    const char *detail);
/* Whether the Host and Origin headers are ones this server answers (DNS
   rebinding, cross-site requests): detail says why not. */
bool http_origin_allowed(http_request_t *req, char *detail, size_t detail_size);

/* GET / (console.c): queues the console page with its security headers
   (200). MHD_NO when out of memory. */
enum MHD_Result http_serve_console(http_request_t *req);

/* --- Server-Sent Events (sse.c) ------------------------------------------------------- */

typedef struct http_sse http_sse_t;

/* A stream for req's connection, and the response that sends it: an
   endless body that libmicrohttpd reads as events are pushed (the
   connection is suspended while nothing is queued). The stream lives until
   both the request (http_sse_release) and the response let go. */
http_sse_t *http_sse_new(http_request_t *req, struct MHD_Response **response);
/* Queues bytes (one or more whole events) to send. */
void http_sse_push(http_sse_t *sse, const char *bytes, size_t len);
/* One event: "event: message", the JSON on one data line. */
void http_sse_message(http_sse_t *sse, const char *json, size_t len);
/* Ends the body once what is queued is sent. */
void http_sse_close(http_sse_t *sse);
/* The request is done with it (its connection may be gone). */
void http_sse_release(http_sse_t *sse);

/* --- MCP over Streamable HTTP (mcp.c) ------------------------------------------------- */

typedef struct mcp_server mcp_server_t;

/* Serves `mcp` at /mcp (borrowed; the caller frees it after http_mcp_free).
   max_sessions: legacy sessions held at most. */
int http_mcp_new(http_server_t *server, mcp_server_t *mcp, size_t max_sessions);
void http_mcp_free(http_server_t *server);
/* ROUTE_MCP: POST (a message), GET (a session's stream), DELETE (ends a session). */
enum MHD_Result http_mcp_handle(http_request_t *req);
/* Main thread: answers the parked calls that are ready (a batch of them, or
   everything) or past their deadline, and keeps streams alive. Returns the
   milliseconds until it next has something to do, or -1. */
int64_t http_mcp_run(http_server_t *server, bool everything);
/* The answer of a JSON wait (WAIT_MCP), once resumed. */
enum MHD_Result http_mcp_answer_waited(http_request_t *req);
/* The request ends (completed or closed): forget it. */
void http_mcp_request_done(http_request_t *req);
/* Drain: ends every GET stream (they would hold the drain to its end) and
   answers every wait with a deadline at once (execute_query, fetch with
   wait_seconds: the query as it is, as a long-poll is answered). */
void http_mcp_drain(http_server_t *server);
/* For /metrics. */
void http_mcp_counts(const http_server_t *server, size_t *sessions, size_t *streams,
                     size_t *parked);

/* Main thread: resumes every request the watch callbacks queued. */
void http_resume_ready(http_server_t *server);
/* Main thread: resumes the waits whose deadline has passed (all of them
   when everything is true); returns the milliseconds to the next deadline,
   or -1 when none is held. */
int64_t http_expire_waits(http_server_t *server, bool everything);

/* The console page (src/http/console.html), embedded at build time (CMake
   generates its definition). */
extern const char qreg_http_console[];
extern const size_t qreg_http_console_len;

/* The Prometheus text of /metrics (metrics.c). NULL when out of memory. */
char *http_metrics_render(http_server_t *server, size_t *len);

/* Monotonic milliseconds (answer.c). */
uint64_t http_now_ms(void);

#endif /* QREG_HTTP_HTTP_INTERNAL_H */
