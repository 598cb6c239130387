/*
 * src/core/store.h - the record store of one registry: the record type, the
 * id -> record map, the creation-ordered list, the pending FIFO, the
 * finished list (eviction order) and the deadline heap (timeouts and TTLs).
 *
 * Locking: everything here is protected by the registry lock; none of these
 * functions takes a lock. Ownership: the store owns one reference to each
 * record it holds (see record_t.refs); store_remove() drops it.
 */
#ifndef QREG_CORE_STORE_H
#define QREG_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "drivers/driver.h"

struct conn;
struct watch;

/* Which of the two intrusive queues a record is on (never both). */
typedef enum record_queue {
  RECORD_QUEUE_NONE,
  RECORD_QUEUE_PENDING,
  RECORD_QUEUE_FINISHED
} record_queue_t;

typedef struct record {
  qreg__uuid_t id;
  uint64_t seq;   /* creation order, for listing and cursors */
  uint8_t status; /* qreg_status_t, in a byte: records are many */

  /* Terminal and no longer holding a connection: waiters may return. A
     record is decided (terminal status) possibly before it is settled: its
     connection is released only when the driver reports the job ended. */
  bool settled;
  bool in_store; /* findable by id; false once pruned, evicted or closed */
  bool in_inbox; /* queued for the loop thread (holds a reference) */
  bool allow_writes;
  bool backend_on_heap;
  uint8_t queue;      /* record_queue_t, in a byte: records are many */
  bool fetched_all;   /* a qreg_fetch page reached its last row: evicted
                        before results not read to the end */
  uint32_t max_bytes; /* the query's result byte cap, packed (record_max_bytes) */
  unsigned refs;      /* store + running job + inbox + blocked callers
                         (and a qreg_fetch copying its result) */

  /* Monotonic milliseconds (qreg__mono_ms), 0 for an event that has not
     happened. Users see wall-clock times: these plus the registry's
     wall-clock offset, taken once at qreg_open (one clock per record, not
     two, and no time going backwards in a snapshot). */
  uint64_t created_mono, started_mono, finished_mono, updated_mono;
  uint64_t deadline_mono; /* the timeout; the timeout itself is
                              deadline_mono - created_mono */
  uint64_t ttl_ms;
  uint32_t heap_index; /* RECORD_NOT_IN_HEAP when not in the heap */
  uint32_t max_rows;   /* rows to store (the API caps it at 2^32 - 1) */

  /* While running: the connection it runs on (which holds the job).
     Touched on the loop thread only. */
  struct conn *conn;
  /* qreg_watch() registrations waiting for the record to settle. */
  struct watch *watches;

  /* What it ended with (owned): the result when status is succeeded, the
     error for any other terminal status (NULL before). Never both, so they
     share the place: read them through record_result()/record_error(). */
  union {
    qreg_result_t *result;
    qreg_driver_error_t *error;
  } outcome;
  /* The driver's id for the statement, at most QREG_BACKEND_ID_MAX bytes:
     kept in the record when it fits (the usual "sqlite-12", a pid), else
     on the heap (backend_on_heap; owned). Read it with record_backend_id(). */
  union {
    char text[16];
    char *heap;
  } backend;

  struct record *all_prev, *all_next; /* creation order */
  struct record *queue_prev;
  /* The next record of its queue (pending FIFO or finished list); or, while
     it is in the registry's inbox - running, so on no queue - the next
     record of the inbox. One place for both: a record leaves the inbox
     before it can settle onto the finished list (lifecycle.c drains the
     inbox before it handles completions, in the same hold of the lock). */
  union {
    struct record *queue_next;
    struct record *inbox_next;
  };
  char sql[]; /* the statement, NUL-terminated: allocated with the
                              record, one block per record */
} record_t;

#define RECORD_NOT_IN_HEAP UINT32_MAX

static inline const char *record_backend_id(const record_t *r) {
  return r->backend_on_heap ? r->backend.heap : r->backend.text;
}

/* The result byte cap in 32 bits (the record stays 168 bytes): exact below
   2 GiB; above, in KiB (top bit set), rounded up. */
#define RECORD_BYTES_KIB 0x80000000u
static inline uint32_t record_pack_bytes(size_t bytes) {
  if (bytes < RECORD_BYTES_KIB)
    return (uint32_t)bytes;
  size_t kib = bytes / 1024 + (bytes % 1024 != 0);
  return RECORD_BYTES_KIB | (uint32_t)(kib < RECORD_BYTES_KIB ? kib : RECORD_BYTES_KIB - 1);
}
static inline size_t record_max_bytes(const record_t *r) {
  return (r->max_bytes & RECORD_BYTES_KIB) ? (size_t)(r->max_bytes & ~RECORD_BYTES_KIB) * 1024
                                           : r->max_bytes;
}

static inline qreg_result_t *record_result(const record_t *r) {
  return r->status == QREG_SUCCEEDED ? r->outcome.result : NULL;
}

static inline qreg_driver_error_t *record_error(const record_t *r) {
  return r->status == QREG_SUCCEEDED ? NULL : r->outcome.error;
}

typedef struct record_list {
  record_t *head, *tail;
  size_t count;
} record_list_t;

typedef struct store {
  record_t **slots;       /* open addressing by id, linear probing */
  size_t slot_mask;       /* capacity - 1 (power of two) */
  size_t count;           /* records held */
  record_list_t all;      /* by creation */
  record_list_t pending;  /* FIFO */
  record_list_t finished; /* settled records by settle time: evict from head */
  record_t **heap;        /* min-heap on store_record_due() */
  size_t heap_count, heap_cap;
  uint64_t count_by_status[QREG_STATUS_COUNT];
} store_t;

int store_init(store_t *store);
void store_destroy(store_t *store); /* the store must be empty */

/* Adds a record (in_store, counted, heaped; the caller set refs for it).
   0 or QREG_ENOMEM. */
int store_add(store_t *store, record_t *record);
record_t *store_find(const store_t *store, const qreg__uuid_t *id);
/* Takes the record out of map, lists and heap; does not drop its ref. */
void store_remove(store_t *store, record_t *record);

void store_set_status(store_t *store, record_t *record, qreg_status_t status);

void store_queue_push(store_t *store, record_t *record, record_queue_t queue);
void store_queue_unlink(store_t *store, record_t *record);

/* The next moment the record needs attention: its timeout while it has not
   ended, its TTL expiry in any case, whichever comes first. */
uint64_t store_record_due(const record_t *record);

/* Moves the record in the heap after its status, deadline or TTL changed.
   Every such change is followed by this call before any other heap
   operation, so the heap order always matches store_record_due(). */
void store_reschedule(store_t *store, record_t *record);
/* Earliest heap key, or UINT64_MAX. */
uint64_t store_next_due(const store_t *store);
record_t *store_heap_top(const store_t *store);

#endif /* QREG_CORE_STORE_H */
