/*
 * src/core/lifecycle.c - a query's life on the loop thread: the connection
 * pool, starting queries, deadlines, the driver's completions, settling
 * records and making qreg_watch() callbacks.
 *
 * Everything on the loop thread goes through lifecycle_run(): under the lock
 * it handles the completions drivers have queued, the inbox (jobs to cancel),
 * due deadlines and idle connections, starts what can start and collects
 * the driver calls that follow (batch_t); then it unlocks, makes the watch
 * callbacks that became due and the driver calls, and goes round again while
 * any of them queued more. A driver that completes from inside one of those
 * calls only queues the completion (conn_t.event): no driver is re-entered
 * and no core state changes under a driver's feet.
 *
 * A connection is released (pooled or closed) only when its job's
 * completion is handled, i.e. after the driver has said nothing is in flight
 * on it (invariant 2). A record settles - terminal, its connection back in
 * the pool or closed - in record_settle_locked() alone.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/registry_internal.h"

/* Driver calls decided under the lock, made after it is released. */
typedef struct batch {
  conn_t *head, *tail;
} batch_t;

unsigned conns_total(const qreg_t *reg) {
  return reg->conns_opening + reg->conns_idle + reg->conns_busy + reg->conns_closing;
}

void registry_unlock(qreg_t *reg) {
  bool wake = reg->wake_pending && reg->waiters > 0;
  reg->wake_pending = false;
  /* A watch that became due on a caller's thread (a pending query
     canceled) is called on the loop thread: wake it. */
  bool wake_loop = reg->fire_head != NULL;
  pthread_mutex_unlock(&reg->lock);
  if (wake)
    pthread_cond_broadcast(&reg->settled_cond);
  if (wake_loop && !qreg_loop_on_thread(reg->loop))
    qreg_loop_wake(reg->loop);
}

static void batch_add(batch_t *batch, conn_t *c, conn_action_t action) {
  assert(c->action == ACTION_NONE);
  c->action = action;
  c->action_next = NULL;
  if (batch->tail)
    batch->tail->action_next = c;
  else
    batch->head = c;
  batch->tail = c;
}

/* --- records --------------------------------------------------------------- */

void record_unref(record_t *r) {
  assert(r->refs > 0);
  if (--r->refs > 0)
    return;
  assert(!r->in_store && r->conn == NULL && r->watches == NULL);
  if (r->backend_on_heap)
    free(r->backend.heap);
  qreg_result_free(record_result(r));
  qreg_driver_error_t *error = record_error(r);
  if (error) {
    qreg_driver_error_clear(error);
    free(error);
  }
  free(r);
}

void record_drop_locked(qreg_t *reg, record_t *r) {
  store_remove(&reg->store, r);
  record_unref(r);
}

/* The record's error, created if needed (never for a succeeded record). A
   failed allocation leaves a record without message rather than failing the
   state change. */
static qreg_driver_error_t *record_error_slot(record_t *r) {
  assert(r->status != QREG_SUCCEEDED);
  if (r->outcome.error == NULL)
    r->outcome.error = calloc(1, sizeof *r->outcome.error);
  return r->outcome.error;
}

static void record_set_error(record_t *r, const char *type, const char *message) {
  qreg_driver_error_t *error = record_error_slot(r);
  if (error != NULL)
    qreg_driver_error_set(error, type, NULL, "%s", message);
}

/* Moves the driver's error into the record (from is left empty). */
static void record_take_error(record_t *r, qreg_driver_error_t *from, const char *fallback_type) {
  qreg_driver_error_t *error = record_error_slot(r);
  if (error == NULL) {
    qreg_driver_error_clear(from);
    return;
  }
  qreg_driver_error_clear(error);
  *error = *from;
  memset(from, 0, sizeof *from);
  if (error->type == NULL)
    error->type = qreg__strdup(fallback_type);
  if (error->message == NULL)
    error->message = qreg__strdup("unknown error (no message from the driver)");
}

/* A stop decided by the core (cancel, timeout, prune, close) keeps its own
   message; what the driver met while stopping (a cancel request that could
   not reach the server) is appended, so the record says why. */
static void record_add_reason(record_t *r, const char *reason) {
  qreg_driver_error_t *error = record_error(r);
  if (error == NULL || error->message == NULL)
    return;
  char *joined = NULL;
  if (asprintf(&joined, "%s (%s)", error->message, reason) < 0)
    return;
  free(error->message);
  error->message = joined;
}

static void fire_push_locked(qreg_t *reg, watch_t *w) {
  w->next = NULL;
  if (reg->fire_tail)
    reg->fire_tail->next = w;
  else
    reg->fire_head = w;
  reg->fire_tail = w;
}

/* The one place a record settles: terminal, and holding no connection.
   Waiters may return; its watches become due. */
static void record_settle_locked(qreg_t *reg, record_t *r) {
  assert(qreg_status_is_terminal(r->status) && r->conn == NULL && !r->settled && !r->in_inbox);
  r->settled = true;
  if (r->in_store) {
    store_queue_push(&reg->store, r, RECORD_QUEUE_FINISHED);
    store_reschedule(&reg->store, r);
  }
  reg->wake_pending = true;
  while (r->watches != NULL) {
    watch_t *w = r->watches;
    r->watches = w->next;
    w->status = r->status;
    fire_push_locked(reg, w);
  }
}

void record_add_watch_locked(qreg_t *reg, record_t *r, watch_t *w) {
  reg->watch_count++;
  if (r->settled) {
    w->status = r->status;
    fire_push_locked(reg, w);
    return;
  }
  w->next = r->watches;
  r->watches = w;
}

/* Gives the record a terminal status unless it has one (first event wins).
   Returns whether this call decided it. */
static bool record_decide_locked(qreg_t *reg, record_t *r, qreg_status_t status) {
  if (qreg_status_is_terminal(r->status))
    return false;
  store_set_status(&reg->store, r, status);
  r->updated_mono = qreg__mono_ms();
  r->finished_mono = r->updated_mono;
  if (r->in_store)
    store_reschedule(&reg->store, r);
  return true;
}

/* Ends a record that never got to run (pending, or failed to start). */
static void record_fail_unstarted_locked(qreg_t *reg, record_t *r, const qreg_driver_error_t *from,
                                         const char *type, const char *message) {
  if (r->queue == RECORD_QUEUE_PENDING)
    store_queue_unlink(&reg->store, r);
  record_decide_locked(reg, r, QREG_FAILED);
  qreg_driver_error_t *mine = record_error_slot(r);
  if (mine != NULL) {
    qreg_driver_error_clear(mine);
    mine->type = qreg__strdup(from && from->type ? from->type : type);
    mine->code = qreg__strdup(from ? from->code : NULL);
    mine->message = qreg__strdup(from && from->message ? from->message : message);
    mine->detail = qreg__strdup(from ? from->detail : NULL);
    mine->hint = qreg__strdup(from ? from->hint : NULL);
  }
  record_settle_locked(reg, r);
}

void record_stop_locked(qreg_t *reg, record_t *r, qreg_status_t status, const char *type,
                        const char *message) {
  if (!record_decide_locked(reg, r, status))
    return;
  record_set_error(r, type, message);
  if (r->queue == RECORD_QUEUE_PENDING) {
    store_queue_unlink(&reg->store, r);
    record_settle_locked(reg, r);
    return;
  }
  if (!r->in_inbox) {
    r->in_inbox = true;
    r->refs++;
    assert(r->queue == RECORD_QUEUE_NONE); /* running: inbox_next is free */
    r->inbox_next = reg->inbox;
    reg->inbox = r;
  }
}

/* --- deadlines --------------------------------------------------------------- */

static void hold_add(record_hold_t *held, record_t *r) {
  if (held->count == held->cap) {
    record_t **grown = realloc(
        held->items, (held->cap * 2 + 8) *
                         sizeof *grown); // NOLINT(bugprone-sizeof-expression): an array of pointers
    if (grown == NULL)
      return; /* the caller just does not wait for this one */
    held->items = grown;
    held->cap = held->cap * 2 + 8;
  }
  held->items[held->count++] = r;
  r->refs++;
}

int process_deadlines_locked(qreg_t *reg, uint64_t now, record_hold_t *held) {
  int pruned = 0;
  record_t *r;
  while ((r = store_heap_top(&reg->store)) != NULL && store_next_due(&reg->store) <= now) {
    if (!qreg_status_is_terminal(r->status) && r->deadline_mono <= now) {
      char message[96];
      snprintf(message, sizeof message, "query timed out: not finished within %" PRIu64 " ms",
               r->deadline_mono - r->created_mono);
      record_stop_locked(reg, r, QREG_TIMEOUT, "timeout", message);
      continue;
    }
    uint64_t expiry = r->updated_mono + r->ttl_ms;
    if (expiry >= r->updated_mono && expiry <= now) {
      record_stop_locked(reg, r, QREG_CANCELED, "canceled",
                         "canceled: the query's time-to-live passed before it finished");
      if (held != NULL && !r->settled)
        hold_add(held, r); /* the caller waits for it past its removal */
      record_drop_locked(reg, r);
      reg->pruned++;
      pruned++;
      continue;
    }
    store_reschedule(&reg->store, r); /* key was stale: recompute */
  }
  return pruned;
}

/* --- the pool ------------------------------------------------------------------ */

static void idle_push(qreg_t *reg, conn_t *c) {
  c->state = CONN_IDLE;
  c->idle_since = qreg__mono_ms();
  c->idle_next = NULL;
  c->idle_prev = reg->idle_tail;
  if (reg->idle_tail)
    reg->idle_tail->idle_next = c;
  else
    reg->idle_head = c;
  reg->idle_tail = c;
  reg->conns_idle++;
}

static void idle_unlink(qreg_t *reg, conn_t *c) {
  if (c->idle_prev)
    c->idle_prev->idle_next = c->idle_next;
  else
    reg->idle_head = c->idle_next;
  if (c->idle_next)
    c->idle_next->idle_prev = c->idle_prev;
  else
    reg->idle_tail = c->idle_prev;
  c->idle_prev = c->idle_next = NULL;
  reg->conns_idle--;
}

/* settles: the record that settles once the close is done (its reference
   passes to the connection), or NULL. */
static void conn_begin_close_locked(qreg_t *reg, conn_t *c, record_t *settles, batch_t *batch) {
  c->state = CONN_CLOSING;
  c->record = settles;
  reg->conns_closing++;
  batch_add(batch, c, ACTION_CLOSE);
}

static void close_idle_expired_locked(qreg_t *reg, uint64_t now, batch_t *batch) {
  while (
      reg->idle_head != NULL &&
      (reg->state != REG_OPEN || reg->idle_head->idle_since + reg->config.idle_timeout_ms <= now)) {
    conn_t *c = reg->idle_head;
    idle_unlink(reg, c);
    conn_begin_close_locked(reg, c, NULL, batch);
  }
}

/* Lends c to the oldest pending record and asks the driver to run it. */
static void start_record_locked(qreg_t *reg, record_t *r, conn_t *c, batch_t *batch) {
  store_queue_unlink(&reg->store, r);
  qreg_result_t *result = qreg_result_new(r->max_rows, &reg->budget, record_max_bytes(r));
  if (result == NULL) {
    record_fail_unstarted_locked(reg, r, NULL, "internal", "out of memory starting the query");
    idle_push(reg, c);
    return;
  }
  uint64_t now = qreg__mono_ms();
  qreg_job_t *job = &c->job;
  memset(job, 0, sizeof *job);
  job->sql = r->sql;
  job->sql_len = strlen(r->sql);
  job->read_only = !r->allow_writes;
  job->timeout_ms = r->deadline_mono == UINT64_MAX ? 0
                    : r->deadline_mono > now       ? r->deadline_mono - now
                                                   : 1;
  job->result = result;
  r->conn = c;
  r->refs++; /* the running job's reference, dropped when it settles */
  c->record = r;
  c->cancel_sent = false;
  c->job_running = true;
  c->state = CONN_BUSY;
  reg->conns_busy++;
  store_set_status(&reg->store, r, QREG_RUNNING);
  r->updated_mono = now;
  r->started_mono = now;
  store_reschedule(&reg->store, r);
  batch_add(batch, c, ACTION_EXECUTE);
}

/* Starts what can start: pooled connections go to pending records in FIFO
   order, and new connections are opened up to max_connections. */
static void dispatch_locked(qreg_t *reg, batch_t *batch) {
  if (reg->state != REG_OPEN)
    return;
  while (reg->store.pending.head != NULL && reg->idle_tail != NULL) {
    conn_t *c = reg->idle_tail; /* the warmest */
    idle_unlink(reg, c);
    /* alive() is a cheap check that never calls back into the core. */
    if (reg->driver->alive && !reg->driver->alive(c->driver_conn)) {
      conn_begin_close_locked(reg, c, NULL, batch);
      continue;
    }
    start_record_locked(reg, reg->store.pending.head, c, batch);
  }
  size_t wanted = reg->store.pending.count;
  while (wanted > reg->conns_opening && conns_total(reg) < reg->config.max_connections) {
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
      /* Retried at the next run - but with no connection in flight no
         completion will make one, and the query would wait for ever: it
         fails instead. */
      if (conns_total(reg) == 0 && reg->store.pending.head != NULL)
        record_fail_unstarted_locked(reg, reg->store.pending.head, NULL, "internal",
                                     "out of memory opening a connection");
      break;
    }
    c->reg = reg;
    c->request.conn = c;
    c->state = CONN_OPENING;
    reg->conns_opening++;
    batch_add(batch, c, ACTION_CONNECT);
  }
}

/* --- the timer --------------------------------------------------------------- */

static void timer_fired(qreg_timer_t *timer, void *arg);

/* Points the one timer at the next deadline. Loop thread, lock held. */
static void rearm_timer_locked(qreg_t *reg) {
  uint64_t due = reg->state == REG_OPEN ? store_next_due(&reg->store) : UINT64_MAX;
  if (reg->idle_head != NULL && reg->state == REG_OPEN) {
    uint64_t idle_due = reg->idle_head->idle_since + reg->config.idle_timeout_ms;
    if (idle_due < due)
      due = idle_due;
  }
  /* A timer due no later than needed stays: if it fires early, the run it
     makes finds nothing due and re-arms for the real deadline. Re-arming on
     every change would cost a timer stop and start per query. */
  if (reg->timer != NULL && reg->timer_due <= due && reg->state == REG_OPEN)
    return;
  if (reg->timer != NULL) {
    qreg_timer_close(reg->timer);
    reg->timer = NULL;
    reg->timer_due = UINT64_MAX;
  }
  if (due == UINT64_MAX)
    return;
  uint64_t now = qreg__mono_ms();
  if (qreg_timer_start(reg->loop, due > now ? due - now : 0, timer_fired, reg, &reg->timer) == 0) {
    reg->timer_due = due;
  } else {
    /* Out of memory. Retried at the next run - which, with nothing else
       going on, only this timer would have made: a running query would
       never time out. The loop is woken to run again at once. */
    reg->timer = NULL;
    qreg_loop_wake(reg->loop);
  }
}

static void timer_fired(qreg_timer_t *timer, void *arg) {
  qreg_t *reg = arg;
  if (reg->timer == timer) { /* loop thread only: no lock needed */
    qreg_timer_close(timer);
    reg->timer = NULL;
    reg->timer_due = UINT64_MAX;
  }
  lifecycle_run(reg);
}

/* --- driver completions: queued, then handled ------------------------------- */

/* A driver broke the contract (a second completion, a completion of
   something not asked for): counted (qreg_stats), never acted on. */
static void driver_violation(qreg_t *reg) {
  pthread_mutex_lock(&reg->lock);
  reg->driver_violations++;
  pthread_mutex_unlock(&reg->lock);
}

static void event_push(qreg_t *reg, conn_t *c, conn_event_t event) {
  c->event = event;
  c->event_next = NULL;
  if (reg->events_tail)
    reg->events_tail->event_next = c;
  else
    reg->events_head = c;
  reg->events_tail = c;
  lifecycle_run(reg); /* a no-op when called from inside a driver call */
}

void qreg_conn_request_done(qreg_conn_request_t *request, qreg_driver_conn_t *driver_conn,
                            const qreg_driver_error_t *error) {
  conn_t *c = request->conn;
  if (c->state != CONN_OPENING || c->event != EVENT_NONE || c->driver_conn != NULL) {
    driver_violation(c->reg);
    return;
  }
  if (driver_conn == NULL && error != NULL) {
    c->connect_error.type = qreg__strdup(error->type);
    c->connect_error.code = qreg__strdup(error->code);
    c->connect_error.message = qreg__strdup(error->message);
    c->connect_error.detail = qreg__strdup(error->detail);
    c->connect_error.hint = qreg__strdup(error->hint);
  }
  c->driver_conn = driver_conn;
  event_push(c->reg, c, driver_conn ? EVENT_CONNECTED : EVENT_CONNECT_FAILED);
}

void qreg_job_complete(qreg_job_t *job, qreg_job_outcome_t outcome) {
  conn_t *c = (conn_t *)(void *)((char *)job - offsetof(conn_t, job));
  if (c->state != CONN_BUSY || !c->job_running || c->event != EVENT_NONE) {
    driver_violation(c->reg);
    return;
  }
  c->job_running = false;
  c->outcome = outcome;
  event_push(c->reg, c, EVENT_JOB_DONE);
}

void qreg_job_set_backend_id(qreg_job_t *job, const char *backend_id) {
  conn_t *c = (conn_t *)(void *)((char *)job - offsetof(conn_t, job));
  qreg_t *reg = c->reg;
  if (!c->job_running) {
    driver_violation(reg);
    return;
  }
  size_t len = backend_id ? strnlen(backend_id, QREG_BACKEND_ID_MAX) : 0;
  record_t *r = c->record;
  char *heap = NULL;
  if (len >= sizeof r->backend.text && (heap = strndup(backend_id, len)) == NULL)
    len = 0; /* out of memory: no id rather than none at all of the query */
  pthread_mutex_lock(&reg->lock);
  char *old = r->backend_on_heap ? r->backend.heap : NULL;
  r->backend_on_heap = heap != NULL;
  if (heap != NULL) {
    r->backend.heap = heap;
  } else {
    memcpy(r->backend.text, backend_id ? backend_id : "", len);
    r->backend.text[len] = '\0';
  }
  pthread_mutex_unlock(&reg->lock);
  free(old);
}

static void conn_closed(void *arg) {
  conn_t *c = arg;
  if (c->state != CONN_CLOSING || c->event != EVENT_NONE) {
    driver_violation(c->reg);
    return;
  }
  event_push(c->reg, c, EVENT_CLOSED);
}

/* The job on c ended: take its outcome into the record (unless something
   else decided it first), then release the connection, here and only here. */
static void handle_job_done_locked(qreg_t *reg, conn_t *c, batch_t *batch) {
  record_t *r = c->record;
  qreg_job_t *job = &c->job;
  bool decided_here = false;
  /* The driver is done with the result: what it borrowed beyond its share
     goes back to the pool for the queries still running. */
  qreg_result_settle(job->result);
  switch (c->outcome) {
  case QREG_JOB_OK:
    if ((decided_here = record_decide_locked(reg, r, QREG_SUCCEEDED))) {
      r->outcome.result = job->result;
      job->result = NULL;
    }
    break;
  case QREG_JOB_ERROR: {
    /* The server's own timeout (a backstop such as Snowflake's) is a timeout. */
    bool timed_out = job->error.type != NULL && strcmp(job->error.type, "timeout") == 0;
    if ((decided_here = record_decide_locked(reg, r, timed_out ? QREG_TIMEOUT : QREG_FAILED)))
      record_take_error(r, &job->error, "database");
    break;
  }
  case QREG_JOB_CANCELED:
    if ((decided_here = record_decide_locked(reg, r, QREG_CANCELED)))
      record_take_error(r, &job->error, "canceled");
    break;
  }
  if (!decided_here && c->outcome != QREG_JOB_OK && job->error.message != NULL)
    record_add_reason(r, job->error.message);
  bool reusable = decided_here && c->outcome == QREG_JOB_OK && job->conn_reusable &&
                  !c->cancel_sent && reg->state == REG_OPEN;
  qreg_result_free(job->result);
  qreg_driver_error_clear(&job->error);
  memset(job, 0, sizeof *job);
  r->conn = NULL;
  reg->conns_busy--;
  if (reusable) {
    c->record = NULL;
    idle_push(reg, c);
    record_settle_locked(reg, r);
    record_unref(r); /* the job's reference */
  } else {
    /* Settles when the close is done, so that whoever waits on it finds the
       connection gone, not going. */
    conn_begin_close_locked(reg, c, r, batch);
  }
}

static void handle_event_locked(qreg_t *reg, conn_t *c, batch_t *batch) {
  conn_event_t event = c->event;
  c->event = EVENT_NONE;
  switch (event) {
  case EVENT_CONNECTED:
    reg->conns_opening--;
    reg->opened++;
    if (reg->state != REG_OPEN)
      conn_begin_close_locked(reg, c, NULL, batch);
    else if (reg->store.pending.head != NULL)
      /* Fresh from connect(): no alive() check, that is for pooled ones. */
      start_record_locked(reg, reg->store.pending.head, c, batch);
    else
      idle_push(reg, c);
    break;
  case EVENT_CONNECT_FAILED:
    reg->conns_opening--;
    reg->connect_failures++;
    /* The oldest waiting query learns why; the next one tries again. */
    if (reg->store.pending.head != NULL)
      record_fail_unstarted_locked(reg, reg->store.pending.head, &c->connect_error, "connection",
                                   "could not connect");
    qreg_driver_error_clear(&c->connect_error);
    free(c);
    break;
  case EVENT_JOB_DONE:
    handle_job_done_locked(reg, c, batch);
    break;
  case EVENT_CLOSED:
    reg->conns_closing--;
    reg->closed++;
    reg->wake_pending = true;
    if (c->record != NULL) {
      record_t *r = c->record;
      record_settle_locked(reg, r);
      record_unref(r); /* the job's reference, which the close held */
    }
    free(c);
    break;
  case EVENT_NONE:
    break;
  }
}

/* --- the run ------------------------------------------------------------------ */

/* Makes the driver calls decided under the lock. No lock held. */
static void batch_run_all(qreg_t *reg, batch_t *batch) {
  for (conn_t *c = batch->head; c != NULL;) {
    conn_t *next = c->action_next;
    conn_action_t action = c->action;
    c->action = ACTION_NONE;
    c->action_next = NULL;
    /* Completions inside these calls are only queued: c stays valid. */
    switch (action) {
    case ACTION_CONNECT:
      reg->driver->connect(reg->driver_state, &c->request);
      break;
    case ACTION_EXECUTE:
      reg->driver->execute(c->driver_conn, &c->job);
      break;
    case ACTION_CANCEL:
      reg->driver->cancel(c->driver_conn, &c->job);
      break;
    case ACTION_CLOSE:
      reg->driver->close(c->driver_conn, conn_closed, c);
      break;
    case ACTION_NONE:
      break;
    }
    c = next;
  }
}

/* Calls the watches that became due. No lock held. */
static void fire_all(qreg_t *reg, watch_t *w, int rc) {
  while (w != NULL) {
    watch_t *next = w->next;
    w->cb(reg, &w->id, rc, w->status, w->arg);
    free(w);
    w = next;
  }
}

void lifecycle_run(void *arg) {
  qreg_t *reg = arg;
  if (reg->running)
    return; /* inside a driver call or a watch: the outer run goes round */
  reg->running = true;
  bool again;
  do {
    batch_t batch = {0};
    pthread_mutex_lock(&reg->lock);
    uint64_t now = qreg__mono_ms();
    process_deadlines_locked(reg, now, NULL);
    close_idle_expired_locked(reg, now, &batch);
    for (record_t *r = reg->inbox, *next; r != NULL; r = next) {
      next = r->inbox_next;
      r->in_inbox = false;
      r->inbox_next = NULL;
      conn_t *c = r->conn;
      if (c != NULL && c->state == CONN_BUSY && c->job_running && !c->cancel_sent) {
        c->cancel_sent = true;
        batch_add(&batch, c, ACTION_CANCEL);
      }
      record_unref(r); /* the inbox's reference; the job still holds one if running */
    }
    reg->inbox = NULL;
    while (reg->events_head != NULL) {
      conn_t *c = reg->events_head;
      reg->events_head = c->event_next;
      if (reg->events_head == NULL)
        reg->events_tail = NULL;
      handle_event_locked(reg, c, &batch);
    }
    dispatch_locked(reg, &batch);
    rearm_timer_locked(reg);
    watch_t *fire = reg->fire_head;
    reg->fire_head = reg->fire_tail = NULL;
    int fire_rc = reg->state == REG_OPEN ? 0 : QREG_ECLOSED;
    for (watch_t *w = fire; w != NULL; w = w->next)
      reg->watch_count--;
    if (reg->state == REG_CLOSING && !reg->shutdown_done && conns_total(reg) == 0 &&
        batch.head == NULL && fire == NULL) {
      reg->shutdown_done = true;
      reg->wake_pending = true;
    }
    bool had_calls = batch.head != NULL;
    registry_unlock(reg);
    fire_all(reg, fire, fire_rc);
    batch_run_all(reg, &batch);
    /* Round again if a callback or a driver call may have queued something
       (a completion, a watch, a cancel), and to settle the close. */
    again = fire != NULL || had_calls || reg->events_head != NULL;
  } while (again);
  reg->running = false;
}
