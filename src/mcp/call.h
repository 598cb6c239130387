/*
 * src/mcp/call.h - one MCP request being handled (mcp_call_t) and what its
 * handler may do with it: fail it, tie a query to it (so that
 * notifications/cancelled stops the query), read its params, and park it
 * until a query settles (mcp_call_park, mcp_call_await[_for]). Also the
 * server's state that calls share (mcp_server_t) and the queue of parked
 * calls a transport drains (mcp_server_next_ready, mcp_server_next_expired).
 *
 * Below the message handler (protocol.c), which makes and runs calls, and the
 * tools and tasks (tools.c, tasks.c), which handle them: both call down into
 * call.c, neither is called by it.
 *
 * Waiting without a thread: a parked call holds a qreg_watch() on its query;
 * the watch callback, on the registry's loop thread, only puts the call on
 * the ready list (under mcp_server_t.ready_mutex) and tells the transport
 * (the waker). N waiting requests cost N small structs, not N threads.
 */
#ifndef QREG_MCP_CALL_H
#define QREG_MCP_CALL_H

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
  size_t max_message_bytes;   /* longest message read (named in the error for longer ones) */
  size_t max_response_bytes;  /* one response's JSON at most (pages stop early) */
  uint64_t poll_interval_ms;  /* suggested to task pollers at least (grows with the query's age) */
  uint64_t wait_ms;           /* execute_query and fetch_query_result wait this long by default
                                for the query to settle (wait_seconds); 0: they answer at once */
  uint64_t task_window_ms;    /* a task-augmented execute_query waits this long before answering:
                                a query settled by then is answered complete (2026-07-28) or
                                as a completed task (2025-11-25); 0: at once */
  uint64_t ttl_ms;            /* registry default TTL: also the longest task ttl */
  uint64_t timeout_ms;        /* registry default per-query timeout */
  bool allow_writes;          /* execute_query asks for writable queries */
  const char *disabled_tools; /* borrowed: tool names, comma-separated, that tools/list leaves
                                 out and tools/call refuses; NULL: none */
} mcp_settings_t;

/* One database the server serves: a registry and what differs per source.
   Everything borrowed: the caller opens, closes and frees it. */
typedef struct mcp_source {
  const char *name;        /* as tools take it in `source` */
  const char *description; /* may be NULL */
  qreg_t *reg;
  bool allow_writes;          /* execute_query asks for writable queries */
  uint64_t timeout_ms;        /* the registry's default per-query timeout */
  const char *disabled_tools; /* comma-separated; these tools refuse this source. NULL: none */
} mcp_source_t;

/* Sources one server serves at most. */
#define MCP_MAX_SOURCES 64

typedef struct mcp_tasks mcp_tasks_t;
typedef struct mcp_server mcp_server_t;

/*
 * One client's legacy session: the revision its initialize negotiated.
 * stdio has one (mcp_server_t.session); `qreg serve` one per Mcp-Session-Id
 * plus one that is never initialized, for stateless (2026-07-28) requests.
 * serial tells sessions apart in notifications/cancelled (a request id is
 * only unique within its session). version is under mcp_server_t.mutex.
 */
typedef struct mcp_session {
  uint64_t serial;
  char version[16]; /* "" until initialize */
} mcp_session_t;
typedef struct mcp_call mcp_call_t;

/* Told, on the registry's loop thread, that the ready list went from empty
   to not empty: it must only wake the thread that calls
   mcp_server_next_ready() (a pipe write), never block or call the server. */
typedef void (*mcp_wake_fn)(void *ctx);
/* Receives a line for the log (standard error): the handler itself never prints. */
typedef void (*mcp_log_fn)(void *ctx, const char *message);

/* What a parked call does once its query has settled: called by
   mcp_server_run() (never on the loop thread) with rc 0 and the terminal
   status, or rc < 0 (QREG_ECLOSED: the registry is closing, status is what
   the query ended with; QREG_ENOTFOUND: pruned meanwhile). Returns the result
   as a method handler does: a result, or NULL after mcp_call_fail (or after
   parking the call again). */
typedef json_t *(*mcp_resume_fn)(mcp_call_t *call, const char *query_id, int rc,
                                 qreg_status_t status);

/*
 * One request being handled. Created by mcp_server_receive() on the reader
 * thread and freed by mcp_server_run() once answered; a parked call is kept
 * by the server (its watch holds it) until it is ready and run again.
 */
struct mcp_call {
  mcp_server_t *server;    /* borrowed */
  uint64_t session;        /* serial of the session it came on */
  void *transport;         /* the transport's, for its own use (`qreg serve`: the HTTP request
                              waiting for the answer); the protocol never reads it */
  qreg_t *reg;             /* borrowed: the source this call works on (tools.c binds it) */
  size_t source;           /* its index in server->sources */
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
  /* Under server->mutex: */
  struct mcp_call *next; /* in server->inflight */
  bool cancelled;        /* notifications/cancelled named this request */
  bool has_query;        /* a query runs on this request's behalf */
  qreg_id_t query;
  /* A tool that runs several catalog queries in turn keeps what the earlier
     ones gave here between its passes (tools.c). Owned; the thread running
     the call only. */
  json_t *tool_state;
  /* The wait (mcp_call_park). resume and awaited are set by the thread
     running the call before the watch exists; the rest under
     server->ready_mutex, written by the watch callback. When resume runs,
     awaited_rc and awaited_status hold what the watch said. */
  mcp_resume_fn resume; /* non-NULL from parking until the resume runs */
  qreg_id_t awaited;
  bool armed;   /* mcp_server_run() is done with it: the callback may queue it */
  bool settled; /* the watch was called */
  /* A wait with a deadline (mcp_call_await_for): deadline_ms is the
     monotonic time it ends; while armed and not settled the call is on
     server->timed. When the deadline passes first, the reader takes the call
     (mcp_server_next_expired), runs resume with QREG_ETIMEDOUT and answers:
     the call is then `answered` and kept, silent, until its watch is called
     (a watch cannot be withdrawn), then freed. */
  uint64_t deadline_ms;
  bool timed;    /* on server->timed */
  bool expired;  /* taken off server->timed by its deadline */
  bool answered; /* the reader answered it at its deadline; only the reader reads it */
  struct mcp_call *timed_prev, *timed_next;
  int awaited_rc;
  qreg_status_t awaited_status;
  struct mcp_call *ready_next; /* in server->ready */
};

struct mcp_server {
  qreg_t *reg;                           /* borrowed: the first source's registry */
  mcp_source_t sources[MCP_MAX_SOURCES]; /* borrowed names and registries */
  size_t source_count;
  mcp_settings_t settings;
  bool read_only;     /* every source's registry promises read-only (qreg_read_only at
                         start): what the instructions and execute_query's hints claim */
  bool any_writes;    /* some source allows writes */
  json_t *tools;      /* owned: every tool definition (tools.c), built once */
  mcp_tasks_t *tasks; /* owned: task store (tasks.c) */
  mcp_log_fn log;     /* NULL: silent */
  void *log_ctx;
  mcp_wake_fn wake; /* NULL: nobody to tell (mcp_server_handle_message waits on ready_cond) */
  void *wake_ctx;
  pthread_mutex_t mutex;       /* guards the sessions' versions, inflight, the calls' shared
                                  fields and next_session */
  mcp_session_t session;       /* the one session of mcp_server_receive() (stdio) */
  uint64_t next_session;       /* serial of the next mcp_server_session_init() */
  mcp_call_t *inflight;        /* requests received and not answered yet (parked ones included) */
  pthread_mutex_t ready_mutex; /* guards what follows and the calls' wait fields */
  pthread_cond_t ready_cond;   /* a call became ready */
  mcp_call_t *ready_head;      /* parked calls whose query settled, oldest first */
  mcp_call_t *ready_tail;
  size_t parked;          /* calls parked: watch registered, not yet ready */
  mcp_call_t *timed;      /* parked calls with a deadline, not settled, not expired, */
  mcp_call_t *timed_tail; /* earliest deadline first */
};

/* Parked calls at most (each a few hundred bytes and one watch); a request
   that would park beyond this gets -32603 "server overloaded". */
#define MCP_PARKED_MAX 100000

/* The oldest parked call whose query has settled, taken off the ready list,
   or NULL: give it to mcp_server_run(). */
mcp_call_t *mcp_server_next_ready(mcp_server_t *server);
/* Calls parked and not yet ready. */
size_t mcp_server_parked(mcp_server_t *server);
/* Milliseconds until the earliest deadline of a parked call (0 when one has
   passed), or -1 when no parked call has one: the reader's poll timeout. */
int mcp_server_next_deadline(mcp_server_t *server);
/* A parked call whose deadline has passed before its query settled, taken
   off the timed list, or NULL: give it to mcp_server_run(), which answers it
   as its wait's end (and keeps it until its watch is called). */
mcp_call_t *mcp_server_next_expired(mcp_server_t *server);
/* Every parked call with a deadline reaches it now (a server shutting
   down answers its waits at once): mcp_server_next_expired() gives them. */
void mcp_server_expire_waits(mcp_server_t *server);

/* --- for the method handlers (tools.c, tasks.c) ------------------------------------------ */

/* Makes the call answer with a JSON-RPC error (data stolen, may be NULL). */
__attribute__((format(printf, 4, 5))) void mcp_call_fail(mcp_call_t *call, int code, json_t *data,
                                                         const char *fmt, ...);
/* Records that query_id runs for this call, so that notifications/cancelled
   stops it. false: the call was already cancelled (the caller cancels it). */
bool mcp_call_attach_query(mcp_call_t *call, const char *query_id);
void mcp_call_detach_query(mcp_call_t *call);

/*
 * Parks the call until query_id settles, then mcp_server_run() calls
 * resume(call, query_id, rc, status) and answers with what it returns. The
 * handler must return NULL right after, and touch the call no more: from
 * then on the watch owns it. If the watch cannot be set (the query is gone,
 * the registry closing) resume still runs, at once, with that rc. Returns
 * false, having failed the call with -32603 "server overloaded", when
 * MCP_PARKED_MAX calls are parked already (no watch is set then).
 */
bool mcp_call_park(mcp_call_t *call, const char *query_id, mcp_resume_fn resume);
/* resume(...) at once when the query has settled already (or is gone),
   without a trip through the loop thread; otherwise mcp_call_park() and
   NULL. Returns what a method handler returns. */
json_t *mcp_call_await(mcp_call_t *call, const char *query_id, mcp_resume_fn resume);
/* The same with a deadline: when the query has not settled within
   timeout_ms, resume runs with rc QREG_ETIMEDOUT (status: the query's status
   then, pending or running), on the reader, and must answer without parking
   again. timeout_ms 0 checks once and never parks. */
json_t *mcp_call_await_for(mcp_call_t *call, const char *query_id, uint64_t timeout_ms,
                           mcp_resume_fn resume);

/* "params" member of the request, or NULL. */
json_t *mcp_call_param(const mcp_call_t *call, const char *name);
/* true when the legacy session negotiated a revision that has tasks. */
bool mcp_call_has_legacy_tasks(const mcp_call_t *call);

/* --- between call.c and protocol.c (src/mcp only) ---------------------------------------- */

/* Monotonic milliseconds. */
uint64_t mcp_monotonic_ms(void);
/* Frees a call that is answered or dropped (its message, state and error). */
void mcp_call_free(mcp_call_t *call);
/* Takes the call out of the in-flight table; true if it was cancelled. */
bool mcp_call_unregister(mcp_call_t *call);
/* Whether notifications/cancelled named it. */
bool mcp_call_cancelled(mcp_call_t *call);
/* After the handler parked it and returned: hands the call to its watch.
   false when the watch has been called already (the caller goes on). */
bool mcp_call_arm(mcp_call_t *call);
/* Takes call off the ready list if it is there; under ready_mutex. */
bool mcp_ready_remove_locked(mcp_server_t *server, mcp_call_t *call);
/* Takes call off the list of timed waits; under ready_mutex. */
void mcp_timed_unlink_locked(mcp_server_t *server, mcp_call_t *call);

#endif /* QREG_MCP_CALL_H */
