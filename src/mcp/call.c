/*
 * src/mcp/call.c - one MCP request being handled and its wait (see
 * call.h): failing it, the query tied to it, its params, and parking it on a
 * qreg_watch() until its query settles, with or without a deadline. The
 * watch callback (on_settled, the registry's loop thread) only moves the
 * call to the ready list and wakes the transport.
 */
#include "mcp/call.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool mcp_call_has_legacy_tasks(const mcp_call_t *call) {
  return !call->modern && strcmp(call->version, MCP_VERSION_2025_11_25) == 0;
}

/* --- calls -------------------------------------------------------------------------------- */

void mcp_call_fail(mcp_call_t *call, int code, json_t *data, const char *fmt, ...) {
  char message[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  free(call->error_message);
  json_decref(call->error_data);
  call->error_code = code;
  call->error_message = strdup(message);
  call->error_data = data;
}

json_t *mcp_call_param(const mcp_call_t *call, const char *name) {
  return json_object_get(call->msg.params, name);
}

bool mcp_call_attach_query(mcp_call_t *call, const char *query_id) {
  mcp_server_t *server = call->server;
  pthread_mutex_lock(&server->mutex);
  bool ok = !call->cancelled;
  if (ok) {
    call->has_query = true;
    snprintf(call->query.str, sizeof call->query.str, "%s", query_id);
  }
  pthread_mutex_unlock(&server->mutex);
  return ok;
}

void mcp_call_detach_query(mcp_call_t *call) {
  pthread_mutex_lock(&call->server->mutex);
  call->has_query = false;
  pthread_mutex_unlock(&call->server->mutex);
}

bool mcp_call_cancelled(mcp_call_t *call) {
  pthread_mutex_lock(&call->server->mutex);
  bool cancelled = call->cancelled;
  pthread_mutex_unlock(&call->server->mutex);
  return cancelled;
}

/* --- parked calls ----------------------------------------------------------------------- */

uint64_t mcp_monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* Takes call off server->timed if it is there. Under ready_mutex. */
void mcp_timed_unlink_locked(mcp_server_t *server, mcp_call_t *call) {
  if (!call->timed)
    return;
  if (call->timed_prev)
    call->timed_prev->timed_next = call->timed_next;
  else
    server->timed = call->timed_next;
  if (call->timed_next)
    call->timed_next->timed_prev = call->timed_prev;
  else
    server->timed_tail = call->timed_prev;
  call->timed_prev = call->timed_next = NULL;
  call->timed = false;
}

/* Puts call on server->timed, kept in deadline order. Deadlines are mostly
   now + the same wait, so the place is found from the tail, in a step or
   two. Under ready_mutex. */
static void timed_insert_locked(mcp_server_t *server, mcp_call_t *call) {
  mcp_call_t *after = server->timed_tail;
  while (after && after->deadline_ms > call->deadline_ms)
    after = after->timed_prev;
  call->timed = true;
  call->timed_prev = after;
  call->timed_next = after ? after->timed_next : server->timed;
  if (call->timed_next)
    call->timed_next->timed_prev = call;
  else
    server->timed_tail = call;
  if (after)
    after->timed_next = call;
  else
    server->timed = call;
}

/* The watch callback, on the registry's loop thread: records what the watch
   says and, once mcp_server_run() has let go of the call (armed), queues it
   and wakes the transport. Nothing else: no output, no registry call, no
   wait - every other query's progress waits for this function. */
static void on_settled(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status, void *arg) {
  (void)reg;
  (void)id;
  mcp_call_t *call = arg;
  mcp_server_t *server = call->server;
  bool wake = false;
  pthread_mutex_lock(&server->ready_mutex);
  call->settled = true;
  call->awaited_rc = rc;
  call->awaited_status = status;
  /* Not armed yet: mcp_server_run() is still returning from the handler
     that parked it, and resumes the call itself when it sees settled. */
  if (call->armed) {
    assert(server->parked > 0);
    server->parked--;
    mcp_timed_unlink_locked(server, call);
    call->ready_next = NULL;
    wake = server->ready_head == NULL;
    if (server->ready_tail)
      server->ready_tail->ready_next = call;
    else
      server->ready_head = call;
    server->ready_tail = call;
    pthread_cond_broadcast(&server->ready_cond);
  }
  /* Read under the lock: once it is released, a thread woken above may
     answer the call and free the server before this function returns. */
  mcp_wake_fn wake_fn = wake ? server->wake : NULL;
  void *wake_ctx = server->wake_ctx;
  pthread_mutex_unlock(&server->ready_mutex);
  if (wake_fn)
    wake_fn(wake_ctx);
}

bool mcp_call_park(mcp_call_t *call, const char *query_id, mcp_resume_fn resume) {
  mcp_server_t *server = call->server;
  pthread_mutex_lock(&server->ready_mutex);
  bool full = server->parked >= MCP_PARKED_MAX;
  pthread_mutex_unlock(&server->ready_mutex);
  if (full) {
    mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL,
                  "Internal error: server overloaded (%d requests waiting); retry later",
                  MCP_PARKED_MAX);
    return false;
  }
  assert(!call->resume);
  call->resume = resume;
  snprintf(call->awaited.str, sizeof call->awaited.str, "%s", query_id);
  call->armed = false;
  call->settled = false;
  int rc = qreg_watch(call->reg, query_id, on_settled, call);
  if (rc < 0) {
    /* No watch, so no callback: settled now, with why. mcp_server_run()
       resumes it at once. */
    pthread_mutex_lock(&server->ready_mutex);
    call->settled = true;
    call->awaited_rc = rc;
    call->awaited_status = QREG_PENDING;
    pthread_mutex_unlock(&server->ready_mutex);
  }
  return true;
}

json_t *mcp_call_await(mcp_call_t *call, const char *query_id, mcp_resume_fn resume) {
  /* A query that has settled already (the common tasks/result, after
     tasks/get said completed) is answered here, without a trip through the
     loop thread. */
  qreg_status_t status = QREG_PENDING;
  int rc = qreg_wait(call->reg, query_id, 0, &status);
  if (rc != QREG_ETIMEDOUT)
    return resume(call, query_id, rc, status);
  (void)mcp_call_park(call, query_id, resume);
  return NULL;
}

json_t *mcp_call_await_for(mcp_call_t *call, const char *query_id, uint64_t timeout_ms,
                           mcp_resume_fn resume) {
  qreg_status_t status = QREG_PENDING;
  int rc = qreg_wait(call->reg, query_id, 0, &status);
  if (rc != QREG_ETIMEDOUT || timeout_ms == 0) {
    if (rc == QREG_ETIMEDOUT) {
      qreg_snapshot_t *snap = NULL;
      if (qreg_snapshot(call->reg, query_id, &snap) == 0)
        status = snap->status;
      qreg_snapshot_free(snap);
    }
    return resume(call, query_id, rc, status);
  }
  call->deadline_ms = mcp_monotonic_ms() + timeout_ms;
  (void)mcp_call_park(call, query_id, resume);
  return NULL;
}

/* After the handler returned: hands a parked call over to its watch.
   Returns false when the watch has been called already - the caller resumes
   the call itself, as nothing else will. */
bool mcp_call_arm(mcp_call_t *call) {
  mcp_server_t *server = call->server;
  pthread_mutex_lock(&server->ready_mutex);
  bool parked = !call->settled;
  if (parked) {
    call->armed = true;
    server->parked++;
    if (call->deadline_ms)
      timed_insert_locked(server, call);
  }
  pthread_mutex_unlock(&server->ready_mutex);
  return parked;
}

/* Takes call off the ready list; false if it is not there (yet). */
bool mcp_ready_remove_locked(mcp_server_t *server, mcp_call_t *call) {
  mcp_call_t *prev = NULL;
  for (mcp_call_t *c = server->ready_head; c; prev = c, c = c->ready_next) {
    if (c != call)
      continue;
    if (prev)
      prev->ready_next = c->ready_next;
    else
      server->ready_head = c->ready_next;
    if (server->ready_tail == c)
      server->ready_tail = prev;
    c->ready_next = NULL;
    return true;
  }
  return false;
}

mcp_call_t *mcp_server_next_ready(mcp_server_t *server) {
  pthread_mutex_lock(&server->ready_mutex);
  mcp_call_t *call = server->ready_head;
  if (call)
    (void)mcp_ready_remove_locked(server, call);
  pthread_mutex_unlock(&server->ready_mutex);
  return call;
}

size_t mcp_server_parked(mcp_server_t *server) {
  pthread_mutex_lock(&server->ready_mutex);
  size_t parked = server->parked;
  pthread_mutex_unlock(&server->ready_mutex);
  return parked;
}

int mcp_server_next_deadline(mcp_server_t *server) {
  pthread_mutex_lock(&server->ready_mutex);
  uint64_t earliest = server->timed ? server->timed->deadline_ms : UINT64_MAX;
  pthread_mutex_unlock(&server->ready_mutex);
  if (earliest == UINT64_MAX)
    return -1;
  uint64_t now = mcp_monotonic_ms();
  if (earliest <= now)
    return 0;
  uint64_t left = earliest - now;
  return left > INT32_MAX ? INT32_MAX : (int)left;
}

mcp_call_t *mcp_server_next_expired(mcp_server_t *server) {
  uint64_t now = mcp_monotonic_ms();
  pthread_mutex_lock(&server->ready_mutex);
  mcp_call_t *found = server->timed && server->timed->deadline_ms <= now ? server->timed : NULL;
  if (found) {
    mcp_timed_unlink_locked(server, found);
    found->expired = true;
  }
  pthread_mutex_unlock(&server->ready_mutex);
  return found;
}

void mcp_server_expire_waits(mcp_server_t *server) {
  pthread_mutex_lock(&server->ready_mutex);
  for (mcp_call_t *call = server->timed; call; call = call->timed_next)
    call->deadline_ms = 0; /* the order (earliest first) holds */
  pthread_mutex_unlock(&server->ready_mutex);
}

void mcp_call_free(mcp_call_t *call) {
  mcp_message_clear(&call->msg);
  json_decref(call->tool_state);
  free(call->error_message);
  json_decref(call->error_data);
  free(call);
}

/* Takes the call out of the in-flight table; true if it was cancelled. */
bool mcp_call_unregister(mcp_call_t *call) {
  mcp_server_t *server = call->server;
  pthread_mutex_lock(&server->mutex);
  for (mcp_call_t **p = &server->inflight; *p; p = &(*p)->next) {
    if (*p == call) {
      *p = call->next;
      break;
    }
  }
  bool cancelled = call->cancelled;
  pthread_mutex_unlock(&server->mutex);
  return cancelled;
}
