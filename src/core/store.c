/*
 * src/core/store.c - the record store: id map, ordered lists, deadline heap.
 * See store.h. All callers hold the registry lock.
 */
#include "core/store.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

enum {
  STORE_INITIAL_SLOTS = 64,
  STORE_INITIAL_HEAP = 64
};

static size_t id_hash(const qreg__uuid_t *id) {
  /* The id is random already: its first bytes are as good as any hash. */
  uint64_t h;
  memcpy(&h, id->bytes, sizeof h);
  return (size_t)h;
}

int store_init(store_t *store) {
  memset(store, 0, sizeof *store);
  store->slots = calloc(STORE_INITIAL_SLOTS,
                        sizeof *store->slots); // NOLINT(bugprone-sizeof-expression): pointers
  store->heap = malloc(STORE_INITIAL_HEAP *
                       sizeof *store->heap); // NOLINT(bugprone-sizeof-expression): pointers
  if (store->slots == NULL || store->heap == NULL) {
    free(store->slots);
    free(store->heap);
    /* Empty again: qreg_open's cleanup calls store_destroy() on it. */
    memset(store, 0, sizeof *store);
    return QREG_ENOMEM;
  }
  store->slot_mask = STORE_INITIAL_SLOTS - 1;
  store->heap_cap = STORE_INITIAL_HEAP;
  return 0;
}

void store_destroy(store_t *store) {
  assert(store->count == 0);
  free(store->slots);
  free(store->heap);
  memset(store, 0, sizeof *store);
}

/* --- id map ------------------------------------------------------------- */

static void map_insert_slot(record_t **slots, size_t mask, record_t *record) {
  size_t i = id_hash(&record->id) & mask;
  while (slots[i] != NULL)
    i = (i + 1) & mask;
  slots[i] = record;
}

static int map_grow(store_t *store) {
  size_t capacity = (store->slot_mask + 1) * 2;
  record_t **slots =
      calloc(capacity, sizeof *slots); // NOLINT(bugprone-sizeof-expression): pointers
  if (slots == NULL)
    return QREG_ENOMEM;
  for (size_t i = 0; i <= store->slot_mask; i++) {
    if (store->slots[i] != NULL)
      map_insert_slot(slots, capacity - 1, store->slots[i]);
  }
  free(store->slots);
  store->slots = slots;
  store->slot_mask = capacity - 1;
  return 0;
}

record_t *store_find(const store_t *store, const qreg__uuid_t *id) {
  size_t i = id_hash(id) & store->slot_mask;
  for (record_t *r; (r = store->slots[i]) != NULL; i = (i + 1) & store->slot_mask) {
    if (memcmp(r->id.bytes, id->bytes, sizeof id->bytes) == 0)
      return r;
  }
  return NULL;
}

/* Linear-probing deletion by backward shift: no tombstones, so lookups
   stay short however many records come and go. */
static void map_delete(store_t *store, const record_t *record) {
  size_t mask = store->slot_mask;
  size_t i = id_hash(&record->id) & mask;
  while (store->slots[i] != record)
    i = (i + 1) & mask;
  size_t hole = i;
  for (size_t j = (hole + 1) & mask; store->slots[j] != NULL; j = (j + 1) & mask) {
    size_t home = id_hash(&store->slots[j]->id) & mask;
    /* Move slots[j] into the hole unless its home lies cyclically in
       (hole, j]. */
    bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!stays) {
      store->slots[hole] = store->slots[j];
      hole = j;
    }
  }
  store->slots[hole] = NULL;
}

/* --- lists -------------------------------------------------------------- */

static void all_append(record_list_t *list, record_t *r) {
  r->all_next = NULL;
  r->all_prev = list->tail;
  if (list->tail)
    list->tail->all_next = r;
  else
    list->head = r;
  list->tail = r;
  list->count++;
}

static void all_unlink(record_list_t *list, record_t *r) {
  if (r->all_prev)
    r->all_prev->all_next = r->all_next;
  else
    list->head = r->all_next;
  if (r->all_next)
    r->all_next->all_prev = r->all_prev;
  else
    list->tail = r->all_prev;
  r->all_prev = r->all_next = NULL;
  list->count--;
}

static record_list_t *queue_list(store_t *store, record_queue_t queue) {
  return queue == RECORD_QUEUE_PENDING ? &store->pending : &store->finished;
}

void store_queue_push(store_t *store, record_t *r, record_queue_t queue) {
  assert(r->queue == RECORD_QUEUE_NONE && queue != RECORD_QUEUE_NONE && !r->in_inbox);
  record_list_t *list = queue_list(store, queue);
  r->queue_next = NULL;
  r->queue_prev = list->tail;
  if (list->tail)
    list->tail->queue_next = r;
  else
    list->head = r;
  list->tail = r;
  list->count++;
  r->queue = queue;
}

void store_queue_unlink(store_t *store, record_t *r) {
  if (r->queue == RECORD_QUEUE_NONE)
    return;
  record_list_t *list = queue_list(store, r->queue);
  if (r->queue_prev)
    r->queue_prev->queue_next = r->queue_next;
  else
    list->head = r->queue_next;
  if (r->queue_next)
    r->queue_next->queue_prev = r->queue_prev;
  else
    list->tail = r->queue_prev;
  r->queue_prev = r->queue_next = NULL;
  r->queue = RECORD_QUEUE_NONE;
  list->count--;
}

/* --- deadline heap ------------------------------------------------------ */

static void heap_set(store_t *store, size_t i, record_t *r) {
  store->heap[i] = r;
  r->heap_index = (uint32_t)i; /* max_records keeps it below 2^32 */
}

static void heap_sift_up(store_t *store, size_t i) {
  record_t *r = store->heap[i];
  uint64_t due = store_record_due(r);
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (store_record_due(store->heap[parent]) <= due)
      break;
    heap_set(store, i, store->heap[parent]);
    i = parent;
  }
  heap_set(store, i, r);
}

static void heap_sift_down(store_t *store, size_t i) {
  record_t *r = store->heap[i];
  uint64_t due = store_record_due(r);
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= store->heap_count)
      break;
    uint64_t child_due = store_record_due(store->heap[child]);
    if (child + 1 < store->heap_count) {
      uint64_t right_due = store_record_due(store->heap[child + 1]);
      if (right_due < child_due) {
        child++;
        child_due = right_due;
      }
    }
    if (due <= child_due)
      break;
    heap_set(store, i, store->heap[child]);
    i = child;
  }
  heap_set(store, i, r);
}

static void heap_remove(store_t *store, record_t *r) {
  size_t i = r->heap_index;
  if (r->heap_index == RECORD_NOT_IN_HEAP)
    return;
  r->heap_index = RECORD_NOT_IN_HEAP;
  record_t *last = store->heap[--store->heap_count];
  if (last == r)
    return;
  heap_set(store, i, last);
  heap_sift_down(store, i);
  heap_sift_up(store, last->heap_index);
}

uint64_t store_record_due(const record_t *r) {
  uint64_t due = r->updated_mono + r->ttl_ms;
  if (due < r->updated_mono)
    due = UINT64_MAX;
  if (!qreg_status_is_terminal(r->status) && r->deadline_mono < due)
    due = r->deadline_mono;
  return due;
}

void store_reschedule(store_t *store, record_t *r) {
  assert(r->heap_index != RECORD_NOT_IN_HEAP);
  heap_sift_up(store, r->heap_index);
  heap_sift_down(store, r->heap_index);
}

uint64_t store_next_due(const store_t *store) {
  return store->heap_count ? store_record_due(store->heap[0]) : UINT64_MAX;
}

record_t *store_heap_top(const store_t *store) {
  return store->heap_count ? store->heap[0] : NULL;
}

/* --- the whole record --------------------------------------------------- */

int store_add(store_t *store, record_t *r) {
  if ((store->count + 1) * 4 > (store->slot_mask + 1) * 3 && map_grow(store) != 0)
    return QREG_ENOMEM;
  if (store->heap_count == store->heap_cap) {
    record_t **heap =
        realloc(store->heap,
                store->heap_cap * 2 * sizeof *heap); // NOLINT(bugprone-sizeof-expression): pointers
    if (heap == NULL)
      return QREG_ENOMEM;
    store->heap = heap;
    store->heap_cap *= 2;
  }
  map_insert_slot(store->slots, store->slot_mask, r);
  store->count++;
  all_append(&store->all, r);
  store->count_by_status[r->status]++;
  heap_set(store, store->heap_count++, r);
  heap_sift_up(store, r->heap_index);
  r->in_store = true;
  return 0;
}

void store_remove(store_t *store, record_t *r) {
  assert(r->in_store);
  map_delete(store, r);
  store->count--;
  all_unlink(&store->all, r);
  store_queue_unlink(store, r);
  heap_remove(store, r);
  store->count_by_status[r->status]--;
  r->in_store = false;
}

void store_set_status(store_t *store, record_t *r, qreg_status_t status) {
  if (r->in_store) {
    store->count_by_status[r->status]--;
    store->count_by_status[status]++;
  }
  r->status = status;
}
