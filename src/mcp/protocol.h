/*
 * src/mcp/protocol.h - the MCP message handler: protocol revisions, the
 * legacy session (initialize), per-request metadata (2026-07-28), method
 * dispatch and the table of requests in flight. Transport-free: server.c
 * feeds it lines from stdin and writes what it returns; the fuzzer
 * (tests/fuzz/) calls mcp_server_handle_message() directly.
 *
 * The request being handled and the parked calls are in mcp/call.h.
 *
 * Waiting without a thread. A request that must wait for a query
 * (tasks/result, tasks/cancel, cancel_query, the catalog tools) never blocks:
 * its handler parks the call (mcp_call_await, mcp_call_park) with a
 * qreg_watch() on the query and a resume function, and returns. The watch
 * callback, on the registry's loop thread, only puts the call on the ready
 * list and tells the transport (mcp_server_set_waker); the transport takes it
 * back (mcp_server_next_ready) and runs it again with mcp_server_run(), which
 * calls the resume function and answers. So N waiting requests cost N small
 * structs, not N threads.
 *
 * Threads: mcp_server_receive() runs in message order on one thread (the
 * reader); mcp_server_run() may run on any thread (server.c runs every call
 * on its reader). The in-flight table and the calls' shared flags are under
 * mcp_server_t.mutex; the ready list and every parked call's wait fields are
 * under mcp_server_t.ready_mutex, the only lock a watch callback takes.
 *
 * Owns: the tool definitions, the task store, the in-flight table, the
 * parked calls. Borrows the registry (the caller opens, closes and destroys
 * it; qreg_close() calls every watch, so every parked call comes back ready
 * before it returns).
 */
#ifndef QREG_MCP_PROTOCOL_H
#define QREG_MCP_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

#include "mcp/call.h"

int mcp_server_new(qreg_t *reg, const mcp_settings_t *settings, mcp_server_t **out);
/* A server of several sources (1 to MCP_MAX_SOURCES, names unique): with
   more than one, every tool takes `source` (an enum of their names; default:
   the first) and list_sources describes them. */
int mcp_server_new_sources(const mcp_source_t *sources, size_t count,
                           const mcp_settings_t *settings, mcp_server_t **out);
void mcp_server_set_logger(mcp_server_t *server, mcp_log_fn fn, void *ctx);
void mcp_server_set_waker(mcp_server_t *server, mcp_wake_fn fn, void *ctx);
/* Every call must have been answered or dropped first: after qreg_close(),
   run every ready call (mcp_server_parked() is then 0). */
void mcp_server_free(mcp_server_t *server);

/*
 * Reader thread: takes one line. Either answers at once (parse errors,
 * initialize, ping; *reply set, malloc'd line) or returns a call to hand to
 * mcp_server_run(), or neither (notifications).
 */
mcp_call_t *mcp_server_receive(mcp_server_t *server, const char *data, size_t len, char **reply,
                               size_t *reply_len);
/* The same on a session of the transport's (`qreg serve`: one per
   Mcp-Session-Id); session must outlive the call of receive only. */
mcp_call_t *mcp_server_receive_in(mcp_server_t *server, mcp_session_t *session, const char *data,
                                  size_t len, char **reply, size_t *reply_len);
/* A new, uninitialized session with a serial of its own. */
void mcp_server_session_init(mcp_server_t *server, mcp_session_t *session);
/* Its negotiated revision ("" before initialize) into out. */
void mcp_server_session_version(mcp_server_t *server, const mcp_session_t *session, char out[16]);

/* Handles the call (or resumes a ready one) and frees it. Returns the
   response line (malloc'd), or NULL when none is due now: the client
   cancelled the request, or the call is parked (then its query's watch
   brings it back through mcp_server_next_ready()). Never blocks. */
char *mcp_server_run(mcp_server_t *server, mcp_call_t *call, size_t *reply_len);
/* mcp_server_run(), telling the transport which request this run finished:
   *finished is the call's transport pointer when the request got its
   answer (the line returned) or will never get one (the client cancelled
   it: NULL returned), and NULL when the call parked or had been answered
   before (at its deadline: this run only frees it). */
char *mcp_server_run_for(mcp_server_t *server, mcp_call_t *call, size_t *reply_len,
                         void **finished);
/* The error line for an input line dropped for its size. */
char *mcp_server_oversized_reply(mcp_server_t *server, size_t size, size_t *reply_len);

/* true when no request is in flight (received and not yet answered, parked
   ones included; a parked request the client cancelled no longer counts). */
bool mcp_server_idle(mcp_server_t *server);

/* receive + run on the calling thread: one message in, its response (or
   NULL) out; a call that parks is waited for here, on ready_cond. For tests
   and the fuzzer, not for a server: it blocks the calling thread. */
char *mcp_server_handle_message(mcp_server_t *server, const char *data, size_t len,
                                size_t *reply_len);

#endif /* QREG_MCP_PROTOCOL_H */
