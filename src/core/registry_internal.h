/*
 * src/core/registry_internal.h - the registry's own state, shared by the two
 * halves of the registry and by nobody else:
 *
 *   src/core/lifecycle.c  the loop thread: driver completions, the pool,
 *                         starting queries, deadlines, settling records and
 *                         making watch callbacks (the one lifecycle path)
 *   src/core/registry.c   opening and closing, and the public calls that run
 *                         on the callers' threads
 *
 * Threads and ownership
 *  - One lock (reg->lock) protects every record, the store, the inbox, the
 *    fire list and every counter. Public calls take it briefly; they never
 *    call a driver and never copy a whole result or list under it.
 *  - The loop thread is the only thread that calls the driver, and it never
 *    holds the lock while doing so. Connections (conn_t) are the loop
 *    thread's alone, from connect() to the driver's close callback.
 *  - Driver completions never run core logic inside the driver's own call:
 *    they are queued on the connection (conn_t.event) and handled by
 *    lifecycle_run() once the driver call has returned.
 */
#ifndef QREG_CORE_REGISTRY_INTERNAL_H
#define QREG_CORE_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/loop_internal.h"
#include "core/store.h"
#include "core/util.h"
#include "drivers/driver.h"

typedef enum registry_state {
  REG_OPEN,
  REG_CLOSING,
  REG_CLOSED
} registry_state_t;

typedef enum conn_state {
  CONN_OPENING,
  CONN_IDLE,
  CONN_BUSY,
  CONN_CLOSING
} conn_state_t;

/* A driver call decided under the lock, made after it is released. */
typedef enum conn_action {
  ACTION_NONE,
  ACTION_CONNECT,
  ACTION_EXECUTE,
  ACTION_CANCEL,
  ACTION_CLOSE
} conn_action_t;

/* A driver completion waiting to be handled (at most one per connection:
   the core asks one thing of a connection at a time). */
typedef enum conn_event {
  EVENT_NONE,
  EVENT_CONNECTED,
  EVENT_CONNECT_FAILED,
  EVENT_JOB_DONE,
  EVENT_CLOSED
} conn_event_t;

struct qreg_conn_request {
  struct conn *conn;
};

/*
 * One connection. Created by the loop thread when a pending query needs one,
 * touched only by the loop thread, freed when the driver's close callback has
 * been handled. Two pointers tie it to a record: conn->record and
 * record->conn, both set while the connection runs the record's job; after a
 * stopped job the record stays on conn->record (holding the job's reference)
 * until the close is done, since it settles only then.
 */
typedef struct conn {
  qreg_t *reg;
  struct qreg_conn_request request;
  qreg_driver_conn_t *driver_conn; /* the driver's; set when opened */
  conn_state_t state;
  record_t *record;    /* BUSY: the record it runs; CLOSING: the record that
                        settles when the close is done (or NULL) */
  qreg_job_t job;      /* the statement it runs; lives as long as the
                        connection, so a second completion is caught */
  bool job_running;    /* between execute() and qreg_job_complete() */
  bool cancel_sent;    /* the driver's cancel() was asked for this job */
  uint64_t idle_since; /* IDLE: monotonic ms */
  struct conn *idle_prev, *idle_next;

  conn_action_t action; /* batch membership */
  struct conn *action_next;

  conn_event_t event;                /* queued completion */
  qreg_job_outcome_t outcome;        /* EVENT_JOB_DONE */
  qreg_driver_error_t connect_error; /* EVENT_CONNECT_FAILED (owned) */
  struct conn *event_next;
} conn_t;

/* A qreg_watch() registration: on its record's watch list until the record
   settles, then on the registry's fire list until its callback is made. */
typedef struct watch {
  qreg_watch_cb cb;
  void *arg;
  qreg_id_t id;
  qreg_status_t status; /* the record's, when it settled */
  struct watch *next;
} watch_t;

struct qreg {
  pthread_mutex_t lock;
  pthread_cond_t settled_cond; /* CLOCK_MONOTONIC */
  registry_state_t state;
  _Atomic bool refusing; /* state != REG_OPEN, readable without the lock */
  bool shutdown_done;    /* closing: no connection, no watch left */

  /* Configuration, immutable after qreg_open (strings owned). */
  qreg_config_t config;
  char *db_url;
  char *application_name;
  char **driver_options;

  const qreg_driver_t *driver;
  void *driver_state; /* the driver's; destroyed in qreg_close */
  bool read_only;     /* no query can change anything: !allow_writes and the
                         driver's policy holds (qreg_read_only) */
  qreg_loop_t *loop;  /* owned; its thread runs lifecycle_run */

  store_t store;
  uint64_t next_seq;
  record_t *inbox;                /* records whose running job must be canceled */
  watch_t *fire_head, *fire_tail; /* settled: callbacks to make */
  uint64_t watch_count;           /* registered, not yet called */

  /* Loop thread only (no lock): completions queued by drivers, and whether
     lifecycle_run is on the stack (a completion inside a driver call is
     only queued). */
  conn_t *events_head, *events_tail;
  bool running;

  /* Connections by state, and the idle pool (most recently used at tail).
     Written on the loop thread under the lock; read by qreg_stats. */
  unsigned conns_opening, conns_idle, conns_busy, conns_closing;
  conn_t *idle_head, *idle_tail;

  /* The single deadline timer (loop thread only). */
  qreg_timer_t *timer;
  uint64_t timer_due; /* monotonic ms it fires at; UINT64_MAX none */

  qreg_budget_t budget; /* every result's bytes, shared fairly (result.h);
                           reclaim is registry_reclaim (registry.c) */

  /* Threads blocked on settled_cond, and whether something they may wait
     for happened under the lock: the broadcast is made after unlocking, and
     only when someone waits. */
  unsigned waiters;
  bool wake_pending;

  /* Counters for qreg_stats. */
  uint64_t opened, closed, connect_failures, pruned, evicted, driver_violations;
  uint64_t forgotten, results_evicted;

  int64_t wall_offset_ms; /* wall clock minus monotonic clock at qreg_open */
};

/* --- lifecycle.c: the loop thread's side --------------------------------- */

/* The loop's wake-up callback, and the one place loop-thread work happens:
   the inbox, deadlines, queued completions, starts, watch callbacks. */
void lifecycle_run(void *arg);

/* Every unlock goes through here: it wakes blocked callers if something
   they wait for happened, and the loop if a watch is due. */
void registry_unlock(qreg_t *reg);

/* Stops a record that has not ended (first terminal event wins): a pending
   one settles at once, a running one is decided now and its job is asked to
   stop through the inbox. Any thread, lock held. */
void record_stop_locked(qreg_t *reg, record_t *r, qreg_status_t status, const char *type,
                        const char *message);

/* Drops a reference; the last one frees the record. Lock held. */
void record_unref(record_t *r);

/* Removes a record from the store and drops the store's reference. */
void record_drop_locked(qreg_t *reg, record_t *r);

/* Records a caller holds a reference to while it waits for them. */
typedef struct record_hold {
  record_t **items;
  size_t count, cap;
} record_hold_t;

/* Handles every record whose time has come: timeouts, then TTL expiry.
   Returns the number pruned; running ones pruned are added to held (if not
   NULL) with a reference. Any thread, lock held. */
int process_deadlines_locked(qreg_t *reg, uint64_t now, record_hold_t *held);

/* Adds a watch for r: on r's list, or due at once if r has settled. */
void record_add_watch_locked(qreg_t *reg, record_t *r, watch_t *w);

unsigned conns_total(const qreg_t *reg);

#endif /* QREG_CORE_REGISTRY_INTERNAL_H */
