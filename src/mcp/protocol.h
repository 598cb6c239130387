/*
 * src/mcp/protocol.h - the MCP message handler: protocol revisions, the
 * legacy session (initialize), per-request metadata (2026-07-28), method
 * dispatch and the table of requests in flight. Transport-free: server.c
 * feeds it lines from stdin and writes what it returns; the fuzzer
 * (tests/fuzz/) calls mcp_server_handle_message() directly.
 *
 * Threads: mcp_server_receive() runs on one thread (the reader) in message
 * order; mcp_server_run() runs on any number of handler threads at once.
 * Everything shared between them is under mcp_server_t.mutex.
 *
 * Owns: the tool definitions, the task store, the in-flight table. Borrows
 * the registry (the caller opens, closes and destroys it).
 */
#ifndef QREG_MCP_PROTOCOL_H
#define QREG_MCP_PROTOCOL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/jsonrpc.h"
#include "qreg.h"

/* Protocol revisions served. The first is stateless (per-request _meta); the
   others use the initialize handshake. */
#define MCP_VERSION_2026_07_28 "2026-07-28"
#define MCP_VERSION_2025_11_25 "2025-11-25"
#define MCP_VERSION_2025_06_18 "2025-06-18"

#define MCP_SERVER_NAME "qreg"
#define MCP_TASKS_EXTENSION "io.modelcontextprotocol/tasks"

typedef struct mcp_settings {
  size_t max_message_bytes;  /* longest message read (named in the error for longer ones) */
  size_t max_response_bytes; /* one response's JSON at most (pages stop early) */
  uint64_t poll_interval_ms; /* suggested to task pollers */
  uint64_t ttl_ms;           /* registry default TTL: also the longest task ttl */
  uint64_t timeout_ms;       /* registry default per-query timeout */
  bool allow_writes;         /* execute_query asks for writable queries */
} mcp_settings_t;

typedef struct mcp_tasks mcp_tasks_t;
typedef struct mcp_server mcp_server_t;

/* Asks that a query be canceled without blocking the caller (the reader
   thread must not wait on a database). */
typedef void (*mcp_cancel_fn)(void *ctx, const char *query_id);
/* Receives a line for the log (standard error): the handler itself never prints. */
typedef void (*mcp_log_fn)(void *ctx, const char *message);

/*
 * One request being handled. Created by mcp_server_receive() on the reader
 * thread, handed to one handler thread, freed by mcp_server_run().
 */
typedef struct mcp_call {
  mcp_server_t *server;    /* borrowed */
  mcp_message_t msg;       /* owned: the request */
  bool modern;             /* served statelessly (2026-07-28 _meta) */
  char version[16];        /* the protocol revision serving this request */
  bool client_tasks;       /* modern: the request declared the tasks extension */
  size_t budget;           /* bytes the result object may take */
  const char *result_type; /* modern results: "complete" unless set to "task" */
  /* A JSON-RPC error instead of a result (mcp_call_fail). */
  int error_code;
  char *error_message; /* owned */
  json_t *error_data;  /* owned */
  struct mcp_call *queue_next; /* the transport's queue of calls to run (server.c), under its lock */
  /* Under server->mutex: */
  struct mcp_call *next; /* in server->inflight */
  bool cancelled;        /* notifications/cancelled named this request */
  bool has_query;        /* a query runs on this request's behalf */
  qreg_id_t query;
} mcp_call_t;

struct mcp_server {
  qreg_t *reg; /* borrowed: opened, closed, destroyed by the caller */
  mcp_settings_t settings;
  json_t *tools;              /* owned: every tool definition (tools.c), built once */
  mcp_tasks_t *tasks;         /* owned: task store (tasks.c) */
  mcp_cancel_fn cancel_query; /* NULL: cancel inline with qreg_cancel */
  void *cancel_ctx;
  mcp_log_fn log; /* NULL: silent */
  void *log_ctx;
  pthread_mutex_t mutex;    /* guards session_version, inflight and the calls' shared fields */
  char session_version[16]; /* legacy era: negotiated by initialize, "" before */
  mcp_call_t *inflight;     /* requests received and not answered yet */
};

int mcp_server_new(qreg_t *reg, const mcp_settings_t *settings, mcp_server_t **out);
void mcp_server_set_canceller(mcp_server_t *server, mcp_cancel_fn fn, void *ctx);
void mcp_server_set_logger(mcp_server_t *server, mcp_log_fn fn, void *ctx);
/* Every call must have been run (or dropped) first. */
void mcp_server_free(mcp_server_t *server);

/*
 * Reader thread: takes one line. Either answers at once (parse errors,
 * initialize, ping; *reply set, malloc'd line) or returns a call to hand to
 * mcp_server_run() on a handler thread, or neither (notifications).
 */
mcp_call_t *mcp_server_receive(mcp_server_t *server, const char *data, size_t len, char **reply,
                               size_t *reply_len);
/* Handler thread: handles the call and frees it. Returns the response line
   (malloc'd) or NULL when none is due (the client cancelled the request). */
char *mcp_server_run(mcp_server_t *server, mcp_call_t *call, size_t *reply_len);
/* true when running the call only reads the registry and never waits
   (tools/call get_query_status): the reader thread may run it itself,
   without the hand-off to a handler thread and back. */
bool mcp_call_is_quick(const mcp_call_t *call);
/* Answers a call that will not be run (the server is overloaded) and frees it. */
char *mcp_server_refuse(mcp_server_t *server, mcp_call_t *call, const char *why, size_t *reply_len);
/* The error line for an input line dropped for its size. */
char *mcp_server_oversized_reply(mcp_server_t *server, size_t size, size_t *reply_len);

/* true when no request is in flight (received and not yet answered). */
bool mcp_server_idle(mcp_server_t *server);

/* receive + run on the calling thread: one message in, its response (or
   NULL) out. For tests and the fuzzer. */
char *mcp_server_handle_message(mcp_server_t *server, const char *data, size_t len,
                                size_t *reply_len);

/* --- for the method handlers (tools.c, tasks.c) ------------------------------------ */

/* Makes the call answer with a JSON-RPC error (data stolen, may be NULL). */
__attribute__((format(printf, 4, 5))) void mcp_call_fail(mcp_call_t *call, int code, json_t *data,
                                                         const char *fmt, ...);
/* Records that query_id runs for this call, so that notifications/cancelled
   stops it. false: the call was already cancelled (the caller cancels it). */
bool mcp_call_attach_query(mcp_call_t *call, const char *query_id);
void mcp_call_detach_query(mcp_call_t *call);
bool mcp_call_cancelled(mcp_call_t *call);
/* Waits until the query is terminal (0, status in *status), the call is
   cancelled (1) or the registry fails (negative QREG_E*). */
int mcp_call_wait(mcp_call_t *call, const char *query_id, qreg_status_t *status);

/* "params" member of the request, or NULL. */
json_t *mcp_call_param(const mcp_call_t *call, const char *name);
/* true when the legacy session negotiated a revision that has tasks. */
bool mcp_call_has_legacy_tasks(const mcp_call_t *call);

#endif /* QREG_MCP_PROTOCOL_H */
