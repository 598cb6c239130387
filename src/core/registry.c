/*
 * src/core/registry.c - the query registry: the public API of qreg.h, the
 * state machine of DESIGN.md section 3, the connection pool, and the glue
 * between the loop thread and the driver.
 *
 * Threads and ownership
 *  - One lock (reg->lock) protects every record, every connection object and
 *    every counter. Public functions run on the caller's thread and only
 *    touch state under the lock; they never call a driver.
 *  - The loop thread is the only thread that calls the driver. It never holds
 *    the lock while doing so: under the lock it decides what to do and
 *    collects the driver calls in a batch (batch_t); then it unlocks and makes
 *    them. A driver may therefore complete a job from inside a call.
 *  - A connection (conn_t) is owned by the registry from the moment connect()
 *    is asked for until the driver's close callback. While it is BUSY it is
 *    lent to exactly one record; it is released (pooled or closed) only in
 *    qreg_job_complete(), i.e. after the driver has said nothing is in flight
 *    on it (invariant 2). No other path releases a busy connection.
 *  - A record's status is decided by the first terminal event under the lock
 *    (completion, cancel, timeout, prune, close); the connection of a record
 *    decided by anything but its own completion is closed, never pooled.
 *
 * A record settles - terminal, and its connection back in the pool or
 * closed (not closing) - in qreg_job_complete() or, when the connection is
 * closed, in conn_closed().
 *
 * Waiting: reg->settled_cond is broadcast whenever a record settles, a
 * connection closes, or the registry changes state; blocked callers (wait,
 * cancel, prune, close) re-check their condition.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop_internal.h"
#include "core/registry.h"
#include "core/store.h"
#include "core/util.h"
#include "drivers/driver.h"

/* Limits on configuration values: above these a value is a mistake. */
#define MAX_CONNECTIONS_LIMIT 10000u
#define MAX_RECORDS_LIMIT ((size_t)100000000)
#define MAX_SQL_BYTES_LIMIT ((size_t)1 << 30)
#define MAX_DURATION_MS (366ull * 24 * 60 * 60 * 1000) /* a year and a day */
#define MAX_ROWS_LIMIT ((uint64_t)UINT32_MAX) /* rows stored per query */
#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 100000

typedef enum registry_state { REG_OPEN, REG_CLOSING, REG_CLOSED } registry_state_t;

typedef enum conn_state { CONN_OPENING, CONN_IDLE, CONN_BUSY, CONN_CLOSING } conn_state_t;

typedef enum conn_action {
  ACTION_NONE,
  ACTION_CONNECT,
  ACTION_EXECUTE,
  ACTION_CANCEL,
  ACTION_CLOSE
} conn_action_t;

struct qreg_conn_request {
  struct conn *conn;
};

typedef struct conn {
  qreg_t *reg;
  struct qreg_conn_request request;
  qreg_driver_conn_t *driver_conn; /* the driver's; set when opened */
  conn_state_t state;
  record_t *record;                /* BUSY: the record it is lent to */
  qreg_job_t *job;                 /* BUSY: the job running on it (owned) */
  record_t *settles;               /* CLOSING: the record that settles when
                                      the close is done (holds its ref) */
  bool cancel_sent;                /* driver cancel() already asked */
  uint64_t idle_since;             /* IDLE: monotonic ms */
  struct conn *idle_prev, *idle_next;
  conn_action_t action;            /* batch membership (loop thread) */
  struct conn *action_next;
} conn_t;

/* Driver calls decided under the lock, made after it is released. */
typedef struct batch {
  conn_t *head, *tail;
} batch_t;

struct qreg {
  pthread_mutex_t lock;
  pthread_cond_t settled_cond; /* CLOCK_MONOTONIC */
  registry_state_t state;
  _Atomic bool refusing;       /* state != REG_OPEN, readable without the lock:
                                  calls after close say so before they
                                  look at their arguments */
  bool shutdown_done;          /* closing: no connection, timers freed */

  /* Configuration, immutable after qreg_open (strings owned). */
  qreg_config_t config;
  char *db_url;
  char *application_name;
  char **driver_options;       /* config.driver_options, copied */

  const qreg_driver_t *driver;
  void *driver_state;          /* the driver's; destroyed in qreg_close */
  qreg_loop_t *loop;           /* owned; the loop thread runs loop_tick */

  store_t store;
  uint64_t next_seq;
  record_t *inbox;             /* records whose driver op must be canceled */

  /* Connections by state, and the idle pool (most recently used at tail). */
  unsigned conns_opening, conns_idle, conns_busy, conns_closing;
  conn_t *idle_head, *idle_tail;

  /* The single deadline timer (loop thread only). */
  qreg_timer_t *timer;
  uint64_t timer_due;          /* monotonic ms it fires at; UINT64_MAX none */

  _Atomic size_t result_bytes; /* charged by results, see result.h */

  /* Threads blocked on settled_cond, and whether something they may wait
     for happened under the lock: the broadcast is made after unlocking, and
     only when someone waits, so a woken thread does not block at once on
     the lock its waker still holds. */
  unsigned waiters;
  bool wake_pending;

  /* Counters for qreg_stats. */
  uint64_t opened, closed, connect_failures, pruned, evicted;

  int64_t wall_offset_ms; /* wall clock minus monotonic clock at qreg_open */
};

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

/* Every unlock goes through here: it wakes the waiters, if any, once the lock
   is free. */
static void registry_unlock(qreg_t *reg) {
  bool wake = reg->wake_pending && reg->waiters > 0;
  reg->wake_pending = false;
  pthread_mutex_unlock(&reg->lock);
  if (wake)
    pthread_cond_broadcast(&reg->settled_cond);
}

/* Waits on settled_cond (lock held), counted so wakers know to broadcast.
   deadline is a CLOCK_MONOTONIC time, or NULL for none. */
static void registry_wait(qreg_t *reg, const struct timespec *deadline) {
  reg->waiters++;
  if (deadline)
    pthread_cond_timedwait(&reg->settled_cond, &reg->lock, deadline);
  else
    pthread_cond_wait(&reg->settled_cond, &reg->lock);
  reg->waiters--;
}

static unsigned conns_total(const qreg_t *reg) {
  return reg->conns_opening + reg->conns_idle + reg->conns_busy + reg->conns_closing;
}

static void batch_add(batch_t *batch, conn_t *conn, conn_action_t action) {
  assert(conn->action == ACTION_NONE);
  conn->action = action;
  conn->action_next = NULL;
  if (batch->tail)
    batch->tail->action_next = conn;
  else
    batch->head = conn;
  batch->tail = conn;
}

static void record_unref(record_t *r) {
  assert(r->refs > 0);
  if (--r->refs > 0)
    return;
  assert(!r->in_store && r->conn == NULL);
  free(r->backend_id);
  qreg_result_free(record_result(r));
  qreg_driver_error_t *error = record_error(r);
  if (error) {
    qreg_driver_error_clear(error);
    free(error);
  }
  free(r);
}

/* Sets the record's error (replacing any); a failed allocation leaves a
   record without message rather than failing the state change. */
/* The record's error, created if needed (never for a succeeded record). */
static qreg_driver_error_t *record_error_slot(record_t *r) {
  assert(r->status != QREG_SUCCEEDED);
  if (r->outcome.error == NULL)
    r->outcome.error = calloc(1, sizeof *r->outcome.error);
  return r->outcome.error;
}

static void record_set_error(record_t *r, const char *type, const char *code,
                             const char *message) {
  qreg_driver_error_t *error = record_error_slot(r);
  if (error != NULL)
    qreg_driver_error_set(error, type, code, "%s", message);
}

/* Takes the driver's error into the record. */
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

static void record_touch(record_t *r) {
  r->updated_mono = qreg__mono_ms();
}

/* Marks the record settled: terminal and holding no connection. */
static void record_settle_locked(qreg_t *reg, record_t *r) {
  assert(qreg_status_is_terminal(r->status) && r->conn == NULL);
  r->settled = true;
  if (r->in_store) {
    store_queue_push(&reg->store, r, RECORD_QUEUE_FINISHED);
    store_reschedule(&reg->store, r);
  }
  reg->wake_pending = true;
}

/* Gives the record a terminal status unless it has one (first event wins).
   Returns whether this call decided it. */
static bool record_decide_locked(qreg_t *reg, record_t *r, qreg_status_t status) {
  if (qreg_status_is_terminal(r->status))
    return false;
  store_set_status(&reg->store, r, status);
  record_touch(r);
  r->finished_mono = r->updated_mono;
  if (r->in_store)
    store_reschedule(&reg->store, r);
  return true;
}

/*
 * Stops a record that has not ended: a pending one is dequeued and settles
 * at once (no connection was ever touched); a running one is decided now and
 * its driver operation is asked to stop through the inbox - it settles when
 * the driver reports the job ended. Any thread, lock held.
 */
static void record_stop_locked(qreg_t *reg, record_t *r, qreg_status_t status,
                               const char *type, const char *message) {
  if (!record_decide_locked(reg, r, status))
    return;
  record_set_error(r, type, NULL, message);
  if (r->queue == RECORD_QUEUE_PENDING) {
    store_queue_unlink(&reg->store, r);
    record_settle_locked(reg, r);
    return;
  }
  if (!r->in_inbox) {
    r->in_inbox = true;
    r->refs++;
    r->inbox_next = reg->inbox;
    reg->inbox = r;
  }
}

/* Removes a record from the store; frees it if nobody else holds it. */
static void record_drop_locked(qreg_t *reg, record_t *r) {
  store_remove(&reg->store, r);
  record_unref(r);
}

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

static void conn_begin_close_locked(qreg_t *reg, conn_t *c, batch_t *batch) {
  c->state = CONN_CLOSING;
  reg->conns_closing++;
  batch_add(batch, c, ACTION_CLOSE);
}

/* ---------------------------------------------------------------------------
 * Loop thread: starting queries, deadlines, the pool
 * ------------------------------------------------------------------------- */

/* Lends conn to the oldest pending record. Loop thread, lock held. */
static void start_record_locked(qreg_t *reg, record_t *r, conn_t *c, batch_t *batch) {
  store_queue_unlink(&reg->store, r);
  qreg_job_t *job = calloc(1, sizeof *job);
  qreg_result_t *result =
      job ? qreg_result_new(r->max_rows, &reg->result_bytes, reg->config.max_result_bytes)
          : NULL;
  if (result == NULL) {
    free(job);
    record_decide_locked(reg, r, QREG_FAILED);
    record_set_error(r, "internal", NULL, "out of memory starting the query");
    record_settle_locked(reg, r);
    idle_push(reg, c);
    return;
  }
  uint64_t now = qreg__mono_ms();
  job->sql = r->sql;
  job->sql_len = strlen(r->sql);
  job->read_only = !r->allow_writes;
  job->timeout_ms = r->deadline_mono == UINT64_MAX ? 0
                    : r->deadline_mono > now       ? r->deadline_mono - now
                                                   : 1;
  job->result = result;
  job->core = r;
  r->conn = c;
  c->job = job;
  r->refs++; /* the running job's reference, dropped when it completes */
  c->record = r;
  c->cancel_sent = false;
  c->state = CONN_BUSY;
  reg->conns_busy++;
  store_set_status(&reg->store, r, QREG_RUNNING);
  record_touch(r);
  r->started_mono = r->updated_mono;
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
      conn_begin_close_locked(reg, c, batch);
      continue;
    }
    start_record_locked(reg, reg->store.pending.head, c, batch);
  }
  size_t wanted = reg->store.pending.count;
  while (wanted > reg->conns_opening && conns_total(reg) < reg->config.max_connections) {
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
      break; /* retried at the next tick */
    c->reg = reg;
    c->request.conn = c;
    c->state = CONN_OPENING;
    reg->conns_opening++;
    batch_add(batch, c, ACTION_CONNECT);
  }
}

/* Records a caller holds a reference to while it waits for them. */
typedef struct record_hold {
  record_t **items;
  size_t count, cap;
} record_hold_t;

/* Handles every record whose time has come: timeouts, then TTL expiry.
   Returns the number of records pruned; running ones pruned are added to
   held (if not NULL) with a reference. Any thread (the API's prune runs it
   too); only the inbox carries work to the driver. */
static int process_deadlines_locked(qreg_t *reg, uint64_t now, record_hold_t *held) {
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
      if (held != NULL && !r->settled) {
        /* The caller waits for it to settle: hold it past its removal. */
        record_t **grown = held->count == held->cap
                               ? realloc(held->items, (held->cap * 2 + 8) * sizeof *grown)
                               : held->items;
        if (grown != NULL) {
          if (held->count == held->cap)
            held->cap = held->cap * 2 + 8;
          held->items = grown;
          held->items[held->count++] = r;
          r->refs++;
        }
      }
      record_drop_locked(reg, r);
      reg->pruned++;
      pruned++;
      continue;
    }
    store_reschedule(&reg->store, r); /* key was stale: recompute */
  }
  return pruned;
}

static void close_idle_expired_locked(qreg_t *reg, uint64_t now, batch_t *batch) {
  while (reg->idle_head != NULL &&
         (reg->state != REG_OPEN || reg->idle_head->idle_since + reg->config.idle_timeout_ms <= now)) {
    conn_t *c = reg->idle_head;
    idle_unlink(reg, c);
    conn_begin_close_locked(reg, c, batch);
  }
}

static void timer_fired(qreg_timer_t *timer, void *arg);

/* Points the one timer at the next deadline. Loop thread, lock held. */
static void rearm_timer_locked(qreg_t *reg) {
  uint64_t due = reg->state == REG_OPEN ? store_next_due(&reg->store) : UINT64_MAX;
  if (reg->idle_head != NULL && reg->state == REG_OPEN) {
    uint64_t idle_due = reg->idle_head->idle_since + reg->config.idle_timeout_ms;
    if (idle_due < due)
      due = idle_due;
  }
  /* A timer due no later than needed stays: if it fires early, the tick it
     runs finds nothing due and re-arms for the real deadline. Re-arming on
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
  if (qreg_timer_start(reg->loop, due > now ? due - now : 0, timer_fired, reg, &reg->timer) == 0)
    reg->timer_due = due;
  else
    reg->timer = NULL; /* retried at the next tick */
}

/* The end of every loop-thread step: start what can start, re-arm the timer,
   and, when closing, finish once no connection is left. */
static void loop_step_finish_locked(qreg_t *reg, batch_t *batch) {
  dispatch_locked(reg, batch);
  rearm_timer_locked(reg);
  if (reg->state == REG_CLOSING && !reg->shutdown_done && conns_total(reg) == 0 &&
      batch->head == NULL) {
    reg->shutdown_done = true;
    reg->wake_pending = true;
  }
}

static void conn_closed(void *arg);

/* Makes the driver calls decided under the lock. Loop thread, no lock. */
static void batch_run_all(qreg_t *reg, batch_t *batch) {
  conn_t *c = batch->head;
  batch->head = batch->tail = NULL;
  while (c != NULL) {
    conn_t *next = c->action_next;
    conn_action_t action = c->action;
    c->action = ACTION_NONE;
    c->action_next = NULL;
    /* After this call c may be gone (a close may complete inside it). */
    switch (action) {
    case ACTION_CONNECT:
      reg->driver->connect(reg->driver_state, &c->request);
      break;
    case ACTION_EXECUTE:
      reg->driver->execute(c->driver_conn, c->job);
      break;
    case ACTION_CANCEL:
      reg->driver->cancel(c->driver_conn, c->job);
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

/* One pass of the loop: the inbox, deadlines, the pool, new starts. Runs on
   every wake-up and every timer expiry. */
static void loop_tick(void *arg) {
  qreg_t *reg = arg;
  batch_t batch = {0};
  pthread_mutex_lock(&reg->lock);
  uint64_t now = qreg__mono_ms();
  process_deadlines_locked(reg, now, NULL);
  close_idle_expired_locked(reg, now, &batch);
  record_t *r = reg->inbox;
  reg->inbox = NULL;
  while (r != NULL) {
    record_t *next = r->inbox_next;
    r->in_inbox = false;
    r->inbox_next = NULL;
    conn_t *c = r->conn;
    if (c != NULL && c->state == CONN_BUSY && !c->cancel_sent) {
      c->cancel_sent = true;
      batch_add(&batch, c, ACTION_CANCEL);
    }
    record_unref(r); /* the inbox's reference; the job still holds one if running */
    r = next;
  }
  loop_step_finish_locked(reg, &batch);
  registry_unlock(reg);
  batch_run_all(reg, &batch);
}

static void timer_fired(qreg_timer_t *timer, void *arg) {
  qreg_t *reg = arg;
  pthread_mutex_lock(&reg->lock);
  if (reg->timer == timer) {
    qreg_timer_close(timer);
    reg->timer = NULL;
    reg->timer_due = UINT64_MAX;
  }
  registry_unlock(reg);
  loop_tick(reg);
}

/* ---------------------------------------------------------------------------
 * Driver completions (loop thread)
 * ------------------------------------------------------------------------- */

void qreg_conn_request_done(qreg_conn_request_t *request, qreg_driver_conn_t *driver_conn,
                            const qreg_driver_error_t *error) {
  conn_t *c = request->conn;
  qreg_t *reg = c->reg;
  batch_t batch = {0};
  pthread_mutex_lock(&reg->lock);
  assert(c->state == CONN_OPENING);
  reg->conns_opening--;
  if (driver_conn != NULL) {
    reg->opened++;
    c->driver_conn = driver_conn;
    if (reg->state != REG_OPEN)
      conn_begin_close_locked(reg, c, &batch);
    else if (reg->store.pending.head != NULL)
      /* Fresh from connect(): no alive() check, that is for pooled ones. */
      start_record_locked(reg, reg->store.pending.head, c, &batch);
    else
      idle_push(reg, c);
  } else {
    reg->connect_failures++;
    free(c);
    /* The oldest waiting query learns why; the next one tries again. */
    record_t *r = reg->store.pending.head;
    if (r != NULL) {
      store_queue_unlink(&reg->store, r);
      record_decide_locked(reg, r, QREG_FAILED);
      qreg_driver_error_t *mine = record_error_slot(r);
      if (mine != NULL) {
        qreg_driver_error_clear(mine);
        mine->type = qreg__strdup(error && error->type ? error->type : "connection");
        mine->code = qreg__strdup(error ? error->code : NULL);
        mine->message =
            qreg__strdup(error && error->message ? error->message : "could not connect");
        mine->detail = qreg__strdup(error ? error->detail : NULL);
        mine->hint = qreg__strdup(error ? error->hint : NULL);
      }
      record_settle_locked(reg, r);
    }
    reg->wake_pending = true;
  }
  loop_step_finish_locked(reg, &batch);
  registry_unlock(reg);
  batch_run_all(reg, &batch);
}

void qreg_job_set_backend_id(qreg_job_t *job, const char *backend_id) {
  record_t *r = job->core;
  qreg_t *reg = r->conn->reg;
  char *copy = backend_id ? strndup(backend_id, QREG_BACKEND_ID_MAX) : NULL;
  pthread_mutex_lock(&reg->lock);
  char *old = r->backend_id;
  r->backend_id = copy;
  pthread_mutex_unlock(&reg->lock);
  free(old);
}

void qreg_job_complete(qreg_job_t *job, qreg_job_outcome_t outcome) {
  record_t *r = job->core;
  conn_t *c = r->conn;
  qreg_t *reg = c->reg;
  batch_t batch = {0};
  pthread_mutex_lock(&reg->lock);
  assert(c->state == CONN_BUSY && c->record == r && c->job == job);
  bool decided_here = false;
  switch (outcome) {
  case QREG_JOB_OK:
    if ((decided_here = record_decide_locked(reg, r, QREG_SUCCEEDED))) {
      r->outcome.result = job->result;
      job->result = NULL;
    }
    break;
  case QREG_JOB_ERROR:
    if ((decided_here = record_decide_locked(reg, r, QREG_FAILED)))
      record_take_error(r, &job->error, "database");
    break;
  case QREG_JOB_CANCELED:
    if ((decided_here = record_decide_locked(reg, r, QREG_CANCELED)))
      record_take_error(r, &job->error, "canceled");
    break;
  }
  if (!decided_here && outcome != QREG_JOB_OK && job->error.message != NULL)
    record_add_reason(r, job->error.message);
  bool reusable = decided_here && outcome == QREG_JOB_OK && job->conn_reusable &&
                  !c->cancel_sent && reg->state == REG_OPEN;
  /* The driver has said nothing is in flight: the connection is released
     here and only here. */
  r->conn = NULL;
  c->record = NULL;
  c->job = NULL;
  reg->conns_busy--;
  qreg_result_free(job->result);
  qreg_driver_error_clear(&job->error);
  free(job);
  if (reusable) {
    idle_push(reg, c);
    record_settle_locked(reg, r);
    record_unref(r); /* the job's reference */
  } else {
    /* The record settles when the close is done, so that whoever waits on
       it finds the connection gone, not going; the job's reference passes
       to the connection. */
    c->settles = r;
    conn_begin_close_locked(reg, c, &batch);
  }
  loop_step_finish_locked(reg, &batch);
  registry_unlock(reg);
  batch_run_all(reg, &batch);
}

static void conn_closed(void *arg) {
  conn_t *c = arg;
  qreg_t *reg = c->reg;
  batch_t batch = {0};
  pthread_mutex_lock(&reg->lock);
  assert(c->state == CONN_CLOSING);
  reg->conns_closing--;
  reg->closed++;
  if (c->settles != NULL) {
    record_settle_locked(reg, c->settles);
    record_unref(c->settles);
  }
  free(c);
  reg->wake_pending = true;
  loop_step_finish_locked(reg, &batch);
  registry_unlock(reg);
  batch_run_all(reg, &batch);
}

/* ---------------------------------------------------------------------------
 * Opening and closing the registry
 * ------------------------------------------------------------------------- */

static int check_range(const char *name, uint64_t value, uint64_t min, uint64_t max) {
  if (value < min || value > max)
    return qreg__fail(QREG_EINVAL, "%s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]",
                      name, value, min, max);
  return 0;
}

static int check_config(const qreg_config_t *c) {
  int rc;
  if (c->db_url == NULL || qreg__is_blank(c->db_url, strlen(c->db_url)))
    return qreg__fail(QREG_EINVAL, "db_url: required");
  if ((rc = check_range("max_connections", c->max_connections, 1, MAX_CONNECTIONS_LIMIT)) ||
      (rc = check_range("max_records", c->max_records, 1, MAX_RECORDS_LIMIT)) ||
      (rc = check_range("max_result_bytes", c->max_result_bytes, 1, SIZE_MAX / 2)) ||
      (rc = check_range("max_sql_bytes", c->max_sql_bytes, 1, MAX_SQL_BYTES_LIMIT)) ||
      (rc = check_range("default_timeout_ms", c->default_timeout_ms, 1, MAX_DURATION_MS)) ||
      (rc = check_range("default_ttl_ms", c->default_ttl_ms, 1, MAX_DURATION_MS)) ||
      (rc = check_range("default_max_rows", c->default_max_rows, 1, MAX_ROWS_LIMIT)) ||
      (rc = check_range("idle_timeout_ms", c->idle_timeout_ms, 1, MAX_DURATION_MS)))
    return rc;
  return 0;
}

static void registry_free(qreg_t *reg) {
  if (reg->loop)
    qreg_loop_destroy(reg->loop);
  store_destroy(&reg->store);
  pthread_cond_destroy(&reg->settled_cond);
  pthread_mutex_destroy(&reg->lock);
  free(reg->db_url);
  free(reg->application_name);
  for (size_t i = 0; reg->driver_options && i < reg->config.driver_option_count; i++)
    free(reg->driver_options[i]);
  free(reg->driver_options);
  free(reg);
}

/* The first published layouts end here: a struct_size below is a caller
   that did not use the *_init() function. */
#define CONFIG_SIZE_V1 offsetof(qreg_config_t, driver_options)
#define OPTIONS_SIZE_V1 sizeof(qreg_options_t)
#define STATS_SIZE_V1 offsetof(qreg_stats_t, watches)

int qreg_open(const qreg_config_t *caller_config, qreg_t **out) {
  qreg__clear_error();
  if (out == NULL || caller_config == NULL)
    return qreg__fail(QREG_EINVAL, "qreg_open: config and out are required");
  *out = NULL;
  if (caller_config->struct_size < CONFIG_SIZE_V1)
    return qreg__fail(QREG_EINVAL, "config: struct_size not set (start from qreg_config_init)");
  /* A shorter (older) struct: the fields it lacks keep their defaults. */
  qreg_config_t full;
  qreg_config_init(&full);
  memcpy(&full, caller_config,
         caller_config->struct_size < sizeof full ? caller_config->struct_size : sizeof full);
  full.struct_size = sizeof full;
  const qreg_config_t *config = &full;
  int rc = check_config(config);
  if (rc != 0)
    return rc;
  const qreg_driver_t *driver = NULL;
  char *resolve_message = NULL;
  rc = qreg_driver_resolve(config, &driver, &resolve_message);
  if (rc != 0) {
    qreg__fail(rc, "%s", resolve_message ? resolve_message : "out of memory");
    free(resolve_message);
    return rc;
  }

  qreg_t *reg = calloc(1, sizeof *reg);
  if (reg == NULL)
    return qreg__fail(QREG_ENOMEM, "out of memory");
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_mutex_init(&reg->lock, NULL);
  pthread_cond_init(&reg->settled_cond, &attr);
  pthread_condattr_destroy(&attr);
  reg->config = *config;
  reg->db_url = strdup(config->db_url);
  reg->application_name =
      strdup(config->application_name ? config->application_name : "qreg");
  reg->config.db_url = reg->db_url;
  reg->config.application_name = reg->application_name;
  size_t option_count = config->driver_options ? config->driver_option_count : 0;
  reg->config.driver_option_count = 0;
  reg->config.driver_options = NULL;
  if (option_count > 0 &&
      (reg->driver_options = calloc(option_count, sizeof *reg->driver_options)) != NULL) {
    reg->config.driver_option_count = option_count;
    reg->config.driver_options = (const char *const *)reg->driver_options;
    for (size_t i = 0; i < option_count; i++)
      if ((reg->driver_options[i] = strdup(config->driver_options[i])) == NULL)
        reg->config.driver_option_count = 0; /* reported as ENOMEM below */
  }
  bool options_ok = reg->config.driver_option_count == option_count;
  reg->driver = driver;
  reg->timer_due = UINT64_MAX;
  reg->wall_offset_ms = qreg__wall_ms() - (int64_t)qreg__mono_ms();
  if (reg->db_url == NULL || reg->application_name == NULL || !options_ok ||
      store_init(&reg->store) != 0) {
    reg->config.driver_option_count = option_count;
    registry_free(reg);
    return qreg__fail(QREG_ENOMEM, "out of memory");
  }

  /* Enough workers that a blocking cancel or close never queues behind
     max_connections long statements. */
  rc = qreg_loop_create(config->max_connections + 4, &reg->loop);
  if (rc != 0) {
    reg->loop = NULL;
    registry_free(reg);
    return qreg__fail(rc, "cannot create the event loop");
  }
  qreg_driver_config_t driver_config = {
      .url = reg->db_url,
      .allow_writes = config->allow_writes,
      .application_name = reg->application_name,
      .max_connections = config->max_connections,
      .loop = reg->loop,
      .options = reg->config.driver_options,
      .option_count = reg->config.driver_option_count,
  };
  char *message = NULL;
  rc = driver->create(&driver_config, &reg->driver_state, &message);
  if (rc != 0) {
    qreg__fail(rc < 0 ? rc : QREG_EDRIVER, "%s: %s", driver->name,
               message ? message : "cannot set up the driver");
    free(message);
    registry_free(reg);
    return rc < 0 ? rc : QREG_EDRIVER;
  }
  free(message);
  rc = qreg_loop_start(reg->loop, loop_tick, reg);
  if (rc != 0) {
    driver->destroy(reg->driver_state);
    registry_free(reg);
    return qreg__fail(QREG_ESYS, "cannot start the loop thread");
  }
  *out = reg;
  return 0;
}

int qreg_close(qreg_t *reg) {
  qreg__clear_error();
  if (reg == NULL)
    return qreg__fail(QREG_EINVAL, "registry: NULL");
  pthread_mutex_lock(&reg->lock);
  if (reg->state != REG_OPEN) {
    registry_unlock(reg);
    return qreg__fail(QREG_ECLOSED, "the registry is already closed");
  }
  reg->state = REG_CLOSING;
  atomic_store(&reg->refusing, true);
  for (record_t *r = reg->store.all.head; r != NULL; r = r->all_next)
    record_stop_locked(reg, r, QREG_CANCELED, "canceled", "canceled: the registry is closing");
  reg->wake_pending = true;
  registry_unlock(reg);
  qreg_loop_wake(reg->loop);

  /* Every running job ends, every connection closes; then the loop stops. */
  pthread_mutex_lock(&reg->lock);
  while (!reg->shutdown_done)
    registry_wait(reg, NULL);
  registry_unlock(reg);
  qreg_loop_stop(reg->loop); /* runs what is queued, closes the timer, joins */

  pthread_mutex_lock(&reg->lock);
  assert(conns_total(reg) == 0 && reg->opened == reg->closed);
  /* References the inbox still holds: records settled before the loop got
     to them. */
  while (reg->inbox != NULL) {
    record_t *r = reg->inbox;
    reg->inbox = r->inbox_next;
    r->in_inbox = false;
    record_unref(r);
  }
  while (reg->store.all.head != NULL)
    record_drop_locked(reg, reg->store.all.head);
  reg->state = REG_CLOSED;
  reg->wake_pending = true;
  registry_unlock(reg);
  reg->driver->destroy(reg->driver_state);
  reg->driver_state = NULL;
  return 0;
}

void qreg_destroy(qreg_t *reg) {
  if (reg == NULL)
    return;
  if (reg->state == REG_OPEN)
    qreg_close(reg);
  registry_free(reg);
}

/* ---------------------------------------------------------------------------
 * Public calls
 * ------------------------------------------------------------------------- */

/* Locks the registry if it is open; otherwise fails with QREG_ECLOSED. */
static int lock_open(qreg_t *reg) {
  qreg__clear_error();
  if (reg == NULL)
    return qreg__fail(QREG_EINVAL, "registry: NULL");
  pthread_mutex_lock(&reg->lock);
  if (reg->state != REG_OPEN) {
    registry_unlock(reg);
    return qreg__fail(QREG_ECLOSED, "the registry is closed");
  }
  return 0;
}

/* Finds a record by its text id: QREG_EINVAL if malformed, QREG_ENOTFOUND. */
static int find_locked(qreg_t *reg, const char *id, record_t **out) {
  qreg__uuid_t uuid;
  if (id == NULL)
    return qreg__fail(QREG_EINVAL, "query id: NULL");
  if (!qreg__uuid_parse(id, &uuid))
    return qreg__fail(QREG_EINVAL, "query id: malformed (expected a UUID like "
                                   "123e4567-e89b-42d3-a456-426614174000)");
  *out = store_find(&reg->store, &uuid);
  if (*out == NULL)
    return qreg__fail(QREG_ENOTFOUND, "query %.36s: not found (never existed, or pruned)", id);
  return 0;
}

static int check_sql(const qreg_t *reg, const char *sql, size_t len) {
  if (sql == NULL)
    return qreg__fail(QREG_EINVAL, "sql: NULL");
  if (len > reg->config.max_sql_bytes)
    return qreg__fail(QREG_ETOOBIG, "sql: %zu bytes is more than the limit of %zu", len,
                      reg->config.max_sql_bytes);
  const char *nul = memchr(sql, '\0', len);
  if (nul != NULL)
    return qreg__fail(QREG_EINVAL, "sql: contains a NUL byte at offset %zu",
                      (size_t)(nul - sql));
  if (qreg__is_blank(sql, len))
    return qreg__fail(QREG_EINVAL, "sql: empty");
  size_t bad = qreg__utf8_invalid_at(sql, len);
  if (bad != len)
    return qreg__fail(QREG_EINVAL, "sql: invalid UTF-8 at offset %zu", bad);
  return 0;
}

static int check_options(const qreg_t *reg, const qreg_options_t *o) {
  int rc;
  if (o == NULL)
    return 0;
  if (o->struct_size < OPTIONS_SIZE_V1)
    return qreg__fail(QREG_EINVAL, "options: struct_size not set (start from qreg_options_init)");
  if ((o->timeout_ms && (rc = check_range("timeout_ms", o->timeout_ms, 1, MAX_DURATION_MS))) ||
      (o->ttl_ms && (rc = check_range("ttl_ms", o->ttl_ms, 1, MAX_DURATION_MS))) ||
      (o->max_rows && (rc = check_range("max_rows", o->max_rows, 1, MAX_ROWS_LIMIT))))
    return rc;
  if (o->allow_writes && !reg->config.allow_writes)
    return qreg__fail(QREG_EINVAL,
                      "allow_writes: this registry is read-only (open it with allow_writes)");
  return 0;
}

int qreg_execute_n(qreg_t *reg, const char *sql, size_t sql_len, const qreg_options_t *options,
                   qreg_id_t *id_out) {
  qreg__clear_error();
  if (reg == NULL || id_out == NULL)
    return qreg__fail(QREG_EINVAL, "registry and id_out are required");
  id_out->str[0] = '\0';
  if (atomic_load(&reg->refusing))
    return qreg__fail(QREG_ECLOSED, "the registry is closed");
  /* Checks that need no lock come first: the config is immutable. */
  int rc = check_sql(reg, sql, sql_len);
  if (rc == 0)
    rc = check_options(reg, options);
  if (rc != 0)
    return rc;

  record_t *r = calloc(1, sizeof *r + sql_len + 1);
  if (r == NULL)
    return qreg__fail(QREG_ENOMEM, "out of memory");
  memcpy(r->sql, sql, sql_len);
  r->sql[sql_len] = '\0';
  if ((rc = qreg__uuid_random(&r->id)) != 0) {
    free(r);
    return rc;
  }
  uint64_t timeout = options && options->timeout_ms ? options->timeout_ms
                                                    : reg->config.default_timeout_ms;
  r->ttl_ms = options && options->ttl_ms ? options->ttl_ms : reg->config.default_ttl_ms;
  r->max_rows = (uint32_t)(options && options->max_rows ? options->max_rows
                                                         : reg->config.default_max_rows);
  r->allow_writes = options && options->allow_writes;
  r->status = QREG_PENDING;
  r->heap_index = RECORD_NOT_IN_HEAP;
  r->refs = 1; /* the store's */
  record_touch(r);
  r->created_mono = r->updated_mono;
  r->deadline_mono = r->updated_mono + timeout;

  if ((rc = lock_open(reg)) != 0) {
    free(r);
    return rc;
  }
  if (reg->store.count >= reg->config.max_records) {
    record_t *oldest = reg->store.finished.head;
    if (oldest == NULL) {
      registry_unlock(reg);
      free(r);
      return qreg__fail(QREG_EFULL,
                        "too many queries: %zu records are held and none has finished "
                        "(max_records)",
                        reg->config.max_records);
    }
    record_drop_locked(reg, oldest);
    reg->evicted++;
  }
  r->seq = ++reg->next_seq;
  if (store_add(&reg->store, r) != 0) {
    registry_unlock(reg);
    free(r);
    return qreg__fail(QREG_ENOMEM, "out of memory");
  }
  store_queue_push(&reg->store, r, RECORD_QUEUE_PENDING);
  qreg__uuid_format(&r->id, id_out);
  registry_unlock(reg);
  qreg_loop_wake(reg->loop);
  return 0;
}

int qreg_execute(qreg_t *reg, const char *sql, const qreg_options_t *options, qreg_id_t *id_out) {
  qreg__clear_error();
  if (reg == NULL)
    return qreg__fail(QREG_EINVAL, "registry: NULL");
  if (sql == NULL)
    return qreg_execute_n(reg, NULL, 0, options, id_out);
  /* Measure no further than the limit: an over-long string is refused
     without being read to its end. */
  size_t len = strnlen(sql, reg->config.max_sql_bytes + 1);
  return qreg_execute_n(reg, sql, len, options, id_out);
}

/* --- snapshots ------------------------------------------------------------ */

/* Lays strings out after a struct in one allocation: a first pass with
   base == NULL measures, a second copies. */
typedef struct packer {
  char *base;
  size_t used;
} packer_t;

static const char *pack(packer_t *p, const char *s) {
  if (s == NULL)
    s = "";
  size_t n = strlen(s) + 1;
  const char *at = p->base ? memcpy(p->base + p->used, s, n) : NULL;
  p->used += n;
  return at;
}

static void snapshot_fill(const record_t *r, int64_t wall_offset, qreg_snapshot_t *s,
                          packer_t *p) {
  const qreg_result_t *res = record_result(r);
  size_t ncols = res ? qreg_result_column_count(res) : 0;
  qreg_column_t *cols = NULL;
  if (p->base) {
    memset(s, 0, sizeof *s);
    cols = (qreg_column_t *)(void *)(p->base + p->used);
  }
  p->used += ncols * sizeof(qreg_column_t);
  for (size_t i = 0; i < ncols; i++) {
    const char *name = pack(p, qreg_result_column_name(res, i));
    const char *type = pack(p, qreg_result_column_type(res, i));
    if (cols) {
      cols[i].name = name;
      cols[i].type_name = type;
    }
  }
  const qreg_driver_error_t *e = record_error(r);
  const char *sql = pack(p, r->sql);
  const char *backend = pack(p, r->backend_id);
  const char *etype = pack(p, e ? e->type : NULL);
  const char *emsg = pack(p, e ? e->message : NULL);
  const char *ecode = pack(p, e ? e->code : NULL);
  const char *edetail = pack(p, e ? e->detail : NULL);
  const char *ehint = pack(p, e ? e->hint : NULL);
  if (!p->base)
    return;
  qreg__uuid_format(&r->id, &s->id);
  s->sql = sql;
  s->status = r->status;
#define WALL(mono) ((mono) ? (int64_t)(mono) + wall_offset : 0)
  s->created_ms = WALL(r->created_mono);
  s->started_ms = WALL(r->started_mono);
  s->finished_ms = WALL(r->finished_mono);
  s->updated_ms = WALL(r->updated_mono);
  s->expires_ms = WALL(r->updated_mono + r->ttl_ms);
#undef WALL
  uint64_t from = r->started_mono ? r->started_mono : r->created_mono;
  uint64_t to = r->finished_mono ? r->finished_mono : qreg__mono_ms();
  s->elapsed_ms = to > from ? (int64_t)(to - from) : 0;
  s->row_count = res ? qreg_result_row_count(res) : 0;
  s->truncated = res ? qreg_result_truncated(res) : false;
  s->has_error = e != NULL && e->message != NULL;
  s->error = (qreg_error_t){etype, emsg, ecode, edetail, ehint};
  s->column_count = ncols;
  s->columns = cols;
  s->backend_id = backend;
}

/* Columns are pointers: keep them aligned after the struct. */
#define SNAPSHOT_HEADER ((sizeof(qreg_snapshot_t) + 15) & ~(size_t)15)

static qreg_snapshot_t *snapshot_new_locked(const record_t *r, int64_t wall_offset) {
  packer_t p = {NULL, SNAPSHOT_HEADER};
  snapshot_fill(r, 0, NULL, &p);
  char *block = malloc(p.used);
  if (block == NULL)
    return NULL;
  qreg_snapshot_t *s = (qreg_snapshot_t *)(void *)block;
  p = (packer_t){block, SNAPSHOT_HEADER};
  snapshot_fill(r, wall_offset, s, &p);
  return s;
}

int qreg_snapshot(qreg_t *reg, const char *id, qreg_snapshot_t **out) {
  if (out)
    *out = NULL;
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  if (out == NULL)
    rc = qreg__fail(QREG_EINVAL, "out: NULL");
  else if ((rc = find_locked(reg, id, &r)) == 0 && (*out = snapshot_new_locked(r, reg->wall_offset_ms)) == NULL)
    rc = qreg__fail(QREG_ENOMEM, "out of memory");
  registry_unlock(reg);
  return rc;
}

void qreg_snapshot_free(qreg_snapshot_t *snapshot) { free(snapshot); }

/* --- results -------------------------------------------------------------- */

int qreg_fetch(qreg_t *reg, const char *id, uint64_t offset, uint64_t limit, qreg_page_t **out) {
  if (out)
    *out = NULL;
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  if (out == NULL) {
    rc = qreg__fail(QREG_EINVAL, "out: NULL");
  } else if ((rc = find_locked(reg, id, &r)) == 0) {
    if (!qreg_status_is_terminal(r->status)) {
      rc = qreg__fail(QREG_ENOTREADY, "query %s is %s: its result is not ready", id,
                      qreg_status_name(r->status));
    } else if (record_result(r) == NULL) {
      rc = qreg__fail(QREG_ENORESULT, "query %s %s: it has no result", id,
                      qreg_status_name(r->status));
    } else {
      uint64_t total = qreg_result_row_count(record_result(r));
      if (offset > total) {
        rc = qreg__fail(QREG_ERANGE, "offset %" PRIu64 " is past the end (%" PRIu64 " rows)",
                        offset, total);
      } else {
        uint64_t count = total - offset;
        if (limit != 0 && limit < count)
          count = limit;
        rc = qreg_result_copy_page(record_result(r), offset, count, out);
        if (rc != 0)
          rc = qreg__fail(rc, "cannot copy the page: %s", qreg_strerror(rc));
      }
    }
  }
  registry_unlock(reg);
  return rc;
}

void qreg_page_free(qreg_page_t *page) { free(page); }

/* --- listing -------------------------------------------------------------- */

static int parse_cursor(const char *cursor, uint64_t *seq) {
  char *end = NULL;
  if (cursor[0] != 'q' || cursor[1] < '0' || cursor[1] > '9')
    return qreg__fail(QREG_EINVAL, "cursor: malformed (use next_cursor from a previous list)");
  errno = 0;
  unsigned long long v = strtoull(cursor + 1, &end, 10);
  if (errno != 0 || *end != '\0')
    return qreg__fail(QREG_EINVAL, "cursor: malformed (use next_cursor from a previous list)");
  *seq = v;
  return 0;
}

void qreg_list_free(qreg_list_t *list) {
  if (list == NULL)
    return;
  for (size_t i = 0; i < list->count; i++)
    qreg_snapshot_free(list->items[i]);
  free(list);
}

int qreg_list(qreg_t *reg, const qreg_list_filter_t *filter, qreg_list_t **out) {
  if (out)
    *out = NULL;
  qreg__clear_error();
  if (reg != NULL && atomic_load(&reg->refusing))
    return qreg__fail(QREG_ECLOSED, "the registry is closed");
  if (out == NULL)
    return qreg__fail(QREG_EINVAL, "out: NULL");
  qreg_list_filter_t f = {0};
  if (filter)
    f = *filter;
  if (f.limit == 0)
    f.limit = LIST_DEFAULT_LIMIT;
  if (f.limit > LIST_MAX_LIMIT)
    return qreg__fail(QREG_EINVAL, "limit: at most %d", LIST_MAX_LIMIT);
  if (f.status_mask >= (1u << QREG_STATUS_COUNT))
    return qreg__fail(QREG_EINVAL, "status_mask: unknown status bits");
  uint64_t after = 0;
  bool has_cursor = f.cursor != NULL && f.cursor[0] != '\0';
  int rc;
  if (has_cursor && (rc = parse_cursor(f.cursor, &after)) != 0)
    return rc;
  if ((rc = lock_open(reg)) != 0)
    return rc;

  size_t cap = f.limit < reg->store.count ? f.limit : reg->store.count;
  /* One block: the list, the item pointers, then the cursor text. */
  qreg_list_t *list = malloc(sizeof *list + cap * sizeof(qreg_snapshot_t *) + 24);
  if (list == NULL) {
    registry_unlock(reg);
    return qreg__fail(QREG_ENOMEM, "out of memory");
  }
  list->items = (qreg_snapshot_t **)(void *)(list + 1);
  list->count = 0;
  list->next_cursor = NULL;
  char *cursor_text = (char *)(list->items + cap);
  record_t *r = f.newest_first ? reg->store.all.tail : reg->store.all.head;
  /* Skip to the cursor: records at or before it were returned already. */
  while (has_cursor && r != NULL && (f.newest_first ? r->seq >= after : r->seq <= after))
    r = f.newest_first ? r->all_prev : r->all_next;
  for (; r != NULL; r = f.newest_first ? r->all_prev : r->all_next) {
    if (f.status_mask && !(f.status_mask & (1u << r->status)))
      continue;
    qreg_snapshot_t *s = snapshot_new_locked(r, reg->wall_offset_ms);
    if (s == NULL) {
      registry_unlock(reg);
      qreg_list_free(list);
      return qreg__fail(QREG_ENOMEM, "out of memory");
    }
    list->items[list->count++] = s;
    snprintf(cursor_text, 24, "q%" PRIu64, r->seq);
    if (list->count == f.limit) {
      /* Look ahead for one more match to know whether a cursor is due. */
      record_t *n = f.newest_first ? r->all_prev : r->all_next;
      while (n != NULL && f.status_mask && !(f.status_mask & (1u << n->status)))
        n = f.newest_first ? n->all_prev : n->all_next;
      if (n != NULL)
        list->next_cursor = cursor_text;
      break;
    }
  }
  registry_unlock(reg);
  *out = list;
  return 0;
}

/* --- waiting, cancelling, pruning ------------------------------------------ */

/* Waits on the registry's condition until the record settles or the
   deadline (monotonic ms, UINT64_MAX for none) passes. Lock held. */
static bool wait_settled_locked(qreg_t *reg, record_t *r, uint64_t deadline) {
  while (!r->settled) {
    if (deadline == UINT64_MAX) {
      registry_wait(reg, NULL);
      continue;
    }
    uint64_t now = qreg__mono_ms();
    if (now >= deadline)
      return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t left = deadline - now;
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    registry_wait(reg, &ts);
  }
  return true;
}

int qreg_wait(qreg_t *reg, const char *id, uint64_t timeout_ms, qreg_status_t *status_out) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  if ((rc = find_locked(reg, id, &r)) == 0) {
    uint64_t now = qreg__mono_ms();
    uint64_t deadline = timeout_ms == UINT64_MAX || now + timeout_ms < now ? UINT64_MAX
                                                                          : now + timeout_ms;
    r->refs++;
    if (!wait_settled_locked(reg, r, deadline))
      rc = qreg__fail(QREG_ETIMEDOUT, "query %s is still %s", id, qreg_status_name(r->status));
    if (status_out)
      *status_out = r->status;
    record_unref(r);
  }
  registry_unlock(reg);
  return rc;
}

int qreg_cancel(qreg_t *reg, const char *id, qreg_status_t *status_out) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  if ((rc = find_locked(reg, id, &r)) == 0) {
    record_stop_locked(reg, r, QREG_CANCELED, "canceled", "canceled by the client");
    bool wake = r->in_inbox;
    r->refs++;
    registry_unlock(reg);
    if (wake)
      qreg_loop_wake(reg->loop);
    pthread_mutex_lock(&reg->lock);
    wait_settled_locked(reg, r, UINT64_MAX);
    if (status_out)
      *status_out = r->status;
    record_unref(r);
  }
  registry_unlock(reg);
  return rc;
}

int qreg_prune_expired(qreg_t *reg) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_hold_t held = {0};
  int pruned = process_deadlines_locked(reg, qreg__mono_ms(), &held);
  bool wake = reg->inbox != NULL;
  registry_unlock(reg);
  if (wake)
    qreg_loop_wake(reg->loop);
  /* A running query pruned just now is being stopped: return once its
     connection is released, as qreg_cancel does. */
  pthread_mutex_lock(&reg->lock);
  for (size_t i = 0; i < held.count; i++) {
    wait_settled_locked(reg, held.items[i], UINT64_MAX);
    record_unref(held.items[i]);
  }
  registry_unlock(reg);
  free(held.items);
  return pruned;
}

int qreg_stats(qreg_t *reg, qreg_stats_t *out) {
  qreg__clear_error();
  if (reg == NULL || out == NULL)
    return qreg__fail(QREG_EINVAL, "registry and out are required");
  if (out->struct_size < STATS_SIZE_V1)
    return qreg__fail(QREG_EINVAL, "stats: struct_size not set (use QREG_STATS_INIT)");
  size_t caller_size = out->struct_size < sizeof *out ? out->struct_size : sizeof *out;
  qreg_stats_t full = QREG_STATS_INIT;
  qreg_stats_t *caller_out = out;
  out = &full;
  pthread_mutex_lock(&reg->lock);
  out->connections_opened = reg->opened;
  out->connections_closed = reg->closed;
  out->connect_failures = reg->connect_failures;
  out->connections_in_use = reg->conns_busy;
  out->connections_idle = reg->conns_idle;
  out->connections_opening = reg->conns_opening;
  memcpy(out->records_by_status, reg->store.count_by_status, sizeof out->records_by_status);
  out->records = reg->store.count;
  out->records_pruned = reg->pruned;
  out->records_evicted = reg->evicted;
  out->result_bytes = atomic_load(&reg->result_bytes);
  registry_unlock(reg);
  memcpy(caller_out, &full, caller_size);
  caller_out->struct_size = caller_size;
  return 0;
}

const qreg_driver_t *qreg__registry_driver(qreg_t *reg, void **state_out) {
  if (state_out)
    *state_out = reg->driver_state;
  return reg->driver;
}

int qreg__registry_db_url(qreg_t *reg, const char **url_out) {
  qreg__clear_error();
  if (reg == NULL)
    return qreg__fail(QREG_EINVAL, "registry: NULL");
  if (atomic_load(&reg->refusing))
    return qreg__fail(QREG_ECLOSED, "the registry is closed");
  *url_out = reg->db_url;
  return 0;
}

unsigned qreg__registry_blocked_callers(qreg_t *reg) {
  pthread_mutex_lock(&reg->lock);
  unsigned n = reg->waiters;
  pthread_mutex_unlock(&reg->lock);
  return n;
}
