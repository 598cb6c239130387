/*
 * src/core/result.c - the result store (core/result.h): column metadata and
 * rows of one query, packed compactly, with max_rows and the registry's byte
 * budget applied while a driver writes.
 *
 * Owns: the column block, the arena chunks holding the rows and the row
 * index. Borrows: the registry's budget (qreg_budget_t, result.h), to which
 * it charges every byte it holds and gives them all back when freed or reset.
 *
 * Layout. Most results are tiny (one row, a column or two), and a finished
 * record keeps its result for its whole life, so a small result is ONE
 * allocation: the struct is followed by an inline tail holding the first
 * chunk's header and INLINE_DATA bytes, shared by the first rows (from the
 * front) and the column block (from the back, while it fits). What does not
 * fit goes to the heap: the column block as a whole, rows into further chunks.
 * The writer-only state is a few 32-bit fields; where the growth of an array
 * can be derived from a count (the row index, a heap column block) it is not
 * stored.
 *
 * Rows are packed one after another into a list of chunks, the inline one
 * first; a row never straddles two chunks. Heap chunks start small and double
 * up to CHUNK_MAX; a row larger than that gets a chunk of its own size. Nothing
 * already written is ever moved, except the row being written when it
 * outgrows its chunk. Each cell is one tag byte and a payload:
 *
 *   null, false, true   tag only
 *   int                 zigzag varint (small magnitudes take 1-2 bytes)
 *   float               8 bytes, host order (never leaves the process)
 *   text, bytes, json   varint length + the bytes (no NUL; pages add it)
 *
 * Chunk sizes and offsets are 32-bit: a row of 4 GiB or more is refused with
 * QREG_ENOMEM (no driver produces one: SQLite and PostgreSQL cap a value at
 * 1 GB).
 *
 * The column block is: uint32 count | uint32 offset[count] | strings
 * "name\0type\0", each offset relative to the block (0: never named). A column
 * named again appends its new string; the old one stays as dead bytes (rare,
 * and it keeps the block append-only).
 *
 * The row index keeps the position of one row in ROW_INDEX_STRIDE; a page
 * starts from the nearest indexed row and skips forward cell by cell.
 *
 * Accounting. `footprint` is what the result holds now: the one allocation
 * (struct + inline tail), the heap column block's capacity, every heap chunk
 * (header + capacity) and the index capacity. `charged` is what is charged to
 * the budget. Metadata is charged when it is set; row bytes when a row ends,
 * if the budget has room, else the row is dropped (and everything allocated
 * for it freed). qreg_result_bytes() reports `charged`, and free/reset give
 * back exactly `charged`. "Room" is three limits (result.h, qreg_budget_t):
 * the query's own max_bytes, what can be lent beyond its share, and the
 * registry's limit - for which settled results are evicted (the reclaim
 * callback) before a row is refused. Each cut records why (truncated_by),
 * and a single cell larger than the result could ever hold is refused as
 * value_too_large without trying. An evicted result keeps its struct, its
 * column block and its counts; its chunks and index are freed.
 *
 * Threads: one writer at a time (see result.h); readers only read, so several
 * may copy pages at once once the result is frozen.
 */
#include "core/result.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define ROW_INDEX_STRIDE 32u
/* Data bytes of the first heap chunk, and of the largest chunk the arena
   grows to by doubling (a bigger row gets a chunk of its own size). */
#define CHUNK_MIN 32u
#define CHUNK_MAX 65536u
/* Data bytes of the inline chunk. With the struct (88 bytes) and the chunk
   header this makes a 120-byte allocation: a 128-byte malloc chunk, which
   holds a `SELECT 1` entirely (column block 11 bytes, row 2). */
#define INLINE_DATA 16u
/* Smallest heap column block. */
#define COLUMNS_MIN 64u

enum cell_tag {
  TAG_NULL = 0,
  TAG_INT = 1,
  TAG_FLOAT = 2,
  TAG_FALSE = 3,
  TAG_TRUE = 4,
  TAG_TEXT = 5,
  TAG_BYTES = 6,
  TAG_JSON = 7,
};

typedef struct chunk {
  /* The next chunk, owned through the result's list. While a chunk is the
     row-being-written's own chunk it is not in the list yet, and this points
     back at the chunk it will follow (see arena_reserve). */
  struct chunk *next;
  uint32_t size; /* capacity of data */
  uint32_t used; /* bytes of stored rows (+ the row being written, if last) */
  unsigned char data[];
} chunk_t;

/* Where a row starts. */
typedef struct row_pos {
  const chunk_t *chunk;
  uint32_t offset;
} row_pos_t;

struct qreg_result {
  qreg_budget_t *budget; /* borrowed from the registry; may be NULL */
  size_t charged;        /* bytes charged to budget->used */
  uint64_t row_count;
  unsigned char *columns; /* the column block (see above): in the inline tail
                             (columns_inline) or owned on the heap; NULL until
                             set_columns with count > 0 */
  row_pos_t *index;       /* owned: index[k] is where row (k + 1) * STRIDE
                             starts (row 0 starts at the inline chunk's offset 0);
                             capacity index_capacity(row_count / STRIDE) */

  /* Writer state. */
  size_t max_bytes; /* the query's own cap on `charged` */
  uint64_t max_rows;
  size_t footprint;      /* bytes held (see the accounting note above) */
  chunk_t *last;         /* the chunk rows are appended to (the inline one first) */
  uint32_t columns_used; /* bytes of the column block in use */
  uint32_t row_start;    /* the row being written occupies last->data[row_start, used) */
  uint32_t row_cells;
  unsigned columns_set : 1; /* set_columns was called */
  unsigned columns_inline : 1;
  unsigned truncated_by : 3; /* qreg_truncation_t; NONE: not cut */
  unsigned in_row : 1;
  unsigned row_over_budget : 1; /* a cell did not fit the budget: the row will be dropped */
  unsigned row_cut_by : 3;      /* why (qreg_truncation_t), once row_over_budget */
  unsigned row_own_chunk : 1;   /* last was allocated for this row (freed if it is dropped) */
  unsigned running : 1;         /* not settled: may hold its share of the budget */
  unsigned evicted : 1;         /* its rows were freed (qreg_result_evict) */

  /* The inline chunk: a chunk_t and INLINE_DATA bytes (result_alloc_size). */
  _Alignas(chunk_t) unsigned char tail[];
};

_Static_assert(offsetof(struct qreg_result, tail) % _Alignof(chunk_t) == 0,
               "the inline chunk must be aligned");

static size_t result_alloc_size(void) {
  return offsetof(struct qreg_result, tail) + sizeof(chunk_t) + INLINE_DATA;
}

/* The first chunk, inside the result's own allocation. */
static chunk_t *inline_chunk(const qreg_result_t *r) {
  return (chunk_t *)(void *)r->tail; /* the struct is const, not the rows */
}

/* --- budget ------------------------------------------------------------------ */

void qreg_budget_init(qreg_budget_t *budget, size_t limit, unsigned slots) {
  atomic_init(&budget->used, 0);
  atomic_init(&budget->lent, 0);
  budget->limit = limit;
  budget->share = slots > 0 ? limit / 2 / slots : 0;
  budget->pool = limit - budget->share * slots;
  budget->reclaim = NULL;
  budget->reclaim_arg = NULL;
}

/* Bytes of `charged` that a result holds beyond its share (charged to
   budget->lent): none once settled. */
static size_t lent_part(const qreg_result_t *r, size_t charged) {
  if (r->budget == NULL || !r->running || charged <= r->budget->share)
    return 0;
  return charged - r->budget->share;
}

/* The most the result could ever hold: a value larger than this never fits. */
static size_t max_storable(const qreg_result_t *r) {
  size_t most = r->max_bytes;
  if (r->budget != NULL) {
    size_t reach = r->running ? r->budget->share + r->budget->pool : r->budget->limit;
    if (reach < most)
      most = reach;
  }
  return most;
}

/* Moves `charged` to `to` whatever the limits: for metadata, which a
   result cannot do without, and for giving bytes back. */
static void charge_to(qreg_result_t *r, size_t to) {
  if (r->budget != NULL) {
    size_t lent_before = lent_part(r, r->charged), lent_after = lent_part(r, to);
    if (to > r->charged)
      atomic_fetch_add(&r->budget->used, to - r->charged);
    else if (to < r->charged)
      atomic_fetch_sub(&r->budget->used, r->charged - to);
    if (lent_after > lent_before)
      atomic_fetch_add(&r->budget->lent, lent_after - lent_before);
    else if (lent_after < lent_before)
      atomic_fetch_sub(&r->budget->lent, lent_before - lent_after);
  }
  r->charged = to;
}

static void charge_sync(qreg_result_t *r) {
  charge_to(r, r->footprint);
}

/* Adds extra to *counter if it stays at most limit, atomically. */
static bool counter_add(_Atomic size_t *counter, size_t extra, size_t limit) {
  size_t now = atomic_load(counter);
  do {
    if (extra > limit || now > limit - extra)
      return false;
  } while (!atomic_compare_exchange_weak(counter, &now, now + extra));
  return true;
}

/* Whether the budget's `used` can take extra more bytes, freeing settled
   results (reclaim) when it is full. With take, they are charged. */
static bool used_room(qreg_budget_t *b, size_t extra, bool take) {
  for (;;) {
    if (take ? counter_add(&b->used, extra, b->limit)
             : extra <= b->limit && atomic_load(&b->used) <= b->limit - extra)
      return true;
    size_t used = atomic_load(&b->used);
    size_t need = used + extra > b->limit ? used + extra - b->limit : 1;
    if (b->reclaim == NULL || b->reclaim(b->reclaim_arg, need) == 0)
      return false;
  }
}

/*
 * Whether the result may hold `to` (> charged) bytes: within its own cap,
 * what it holds beyond its share within what can be lent, and room in the
 * registry's budget (settled results are evicted to make it). With take the
 * bytes are charged (all or nothing); without, it only checks (and may
 * evict). Returns QREG_TRUNCATED_NONE, or why it may not.
 */
static qreg_truncation_t budget_grow(qreg_result_t *r, size_t to, bool take) {
  if (to > r->max_bytes)
    return QREG_TRUNCATED_MAX_RESULT_BYTES;
  qreg_budget_t *b = r->budget;
  if (b == NULL) {
    if (take)
      r->charged = to;
    return QREG_TRUNCATED_NONE;
  }
  if (to <= r->charged) {
    if (take)
      charge_to(r, to);
    return QREG_TRUNCATED_NONE;
  }
  size_t extra = to - r->charged;
  size_t lent_extra = lent_part(r, to) - lent_part(r, r->charged);
  if (lent_extra > 0) {
    if (take ? !counter_add(&b->lent, lent_extra, b->pool)
             : lent_extra > b->pool || atomic_load(&b->lent) > b->pool - lent_extra)
      return QREG_TRUNCATED_REGISTRY_BUDGET;
  }
  if (!used_room(b, extra, take)) {
    if (take && lent_extra > 0)
      atomic_fetch_sub(&b->lent, lent_extra);
    return QREG_TRUNCATED_REGISTRY_BUDGET;
  }
  if (take)
    r->charged = to;
  return QREG_TRUNCATED_NONE;
}

/* Charges footprint - charged (>= 0) if the budget allows, atomically
   against the other results of the registry; else says why not. */
static qreg_truncation_t charge_rows(qreg_result_t *r) {
  if (r->footprint <= r->charged) {
    charge_sync(r);
    return QREG_TRUNCATED_NONE;
  }
  return budget_grow(r, r->footprint, true);
}

/* --- encoding ------------------------------------------------------------- */

static size_t varint_size(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    size++;
  }
  return size;
}

static unsigned char *varint_put(unsigned char *p, uint64_t value) {
  while (value >= 0x80) {
    *p++ = (unsigned char)(value | 0x80);
    value >>= 7;
  }
  *p++ = (unsigned char)value;
  return p;
}

static const unsigned char *varint_get(const unsigned char *p, uint64_t *value) {
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    unsigned char byte = *p++;
    v |= (uint64_t)(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0)
      break;
  }
  *value = v;
  return p;
}

/* Zigzag: small magnitudes of either sign become small unsigned numbers. */
static uint64_t zigzag_encode(int64_t value) {
  uint64_t u = (uint64_t)value;
  return (u << 1) ^ (0 - (u >> 63));
}

static int64_t zigzag_decode(uint64_t u) {
  uint64_t v = (u >> 1) ^ (0 - (u & 1));
  int64_t value;
  memcpy(&value, &v, sizeof value); /* two's complement without overflow */
  return value;
}

/* --- column block ------------------------------------------------------------ */

static uint32_t load_u32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v); /* the inline block is not aligned */
  return v;
}

static void store_u32(unsigned char *p, uint32_t v) {
  memcpy(p, &v, sizeof v);
}

static size_t columns_count(const qreg_result_t *r) {
  return r->columns != NULL ? load_u32(r->columns) : 0;
}

/* Column i's "name\0type\0", or NULL if it was never named (i < count). */
static const char *column_string(const qreg_result_t *r, size_t i) {
  uint32_t offset = load_u32(r->columns + 4 + 4 * i);
  return offset != 0 ? (const char *)r->columns + offset : NULL;
}

/* Capacity of a heap column block holding `used` bytes: derived from `used`
   (which only grows) so that it need not be stored. */
static size_t columns_heap_capacity(size_t used) {
  size_t capacity = COLUMNS_MIN;
  while (capacity < used)
    capacity *= 2;
  return capacity;
}

/* Grows a heap column block to hold size bytes. false on ENOMEM. */
static bool columns_heap_grow(qreg_result_t *r, size_t size) {
  size_t old_capacity = columns_heap_capacity(r->columns_used);
  size_t capacity = columns_heap_capacity(size);
  if (capacity > old_capacity) {
    unsigned char *block = realloc(r->columns, capacity);
    if (block == NULL)
      return false;
    r->columns = block;
    r->footprint += capacity - old_capacity;
  }
  return true;
}

/*
 * Makes the column block `size` bytes long (>= columns_used; the first
 * columns_used bytes are kept) and returns where its new bytes start. Inline
 * while it fits: the block sits at the end of the inline data, just after the
 * inline chunk's (shrunk) capacity; only called before any row is stored, when
 * the inline chunk is empty. NULL on ENOMEM (nothing changed).
 */
static unsigned char *columns_grow(qreg_result_t *r, size_t size) {
  chunk_t *head = inline_chunk(r);
  size_t old_used = r->columns_used;
  assert(head->used == 0 && r->last == head && size >= old_used);
  assert(old_used == 0 || r->columns != NULL);
  if (size > UINT32_MAX)
    return NULL;
  if ((r->columns == NULL || r->columns_inline) && size <= INLINE_DATA) {
    unsigned char *block = head->data + INLINE_DATA - size;
    if (old_used > 0)
      memmove(block, r->columns, old_used); /* offsets are relative: still valid */
    r->columns = block;
    r->columns_inline = 1;
    head->size = (uint32_t)(INLINE_DATA - size);
  } else if (r->columns == NULL || r->columns_inline) {
    size_t capacity = columns_heap_capacity(size);
    unsigned char *block = malloc(capacity);
    if (block == NULL)
      return NULL;
    if (old_used > 0)
      memcpy(block, r->columns, old_used);
    r->columns = block;
    r->columns_inline = 0;
    head->size = INLINE_DATA;
    r->footprint += capacity;
  } else if (!columns_heap_grow(r, size)) {
    return NULL;
  }
  r->columns_used = (uint32_t)size;
  return r->columns + old_used;
}

/* The same once rows are stored (qreg_result_set_column_type): an inline
   block moves to the heap, leaving its inline bytes unused. */
static unsigned char *columns_grow_late(qreg_result_t *r, size_t size) {
  size_t old_used = r->columns_used;
  assert(r->columns != NULL && size >= old_used);
  if (size > UINT32_MAX)
    return NULL;
  if (r->columns_inline) {
    size_t capacity = columns_heap_capacity(size);
    unsigned char *block = malloc(capacity);
    if (block == NULL)
      return NULL;
    memcpy(block, r->columns, old_used);
    r->columns = block;
    r->columns_inline = 0;
    r->footprint += capacity;
  } else if (!columns_heap_grow(r, size)) {
    return NULL;
  }
  r->columns_used = (uint32_t)size;
  return r->columns + old_used;
}

/* Frees a heap column block (the caller settles the footprint). */
static void columns_release(qreg_result_t *r) {
  if (r->columns != NULL && !r->columns_inline)
    free(r->columns);
  r->columns = NULL;
}

/* --- writing: arena ------------------------------------------------------------ */

/* The row being written will not be stored, for this reason. */
static void row_over(qreg_result_t *r, qreg_truncation_t why) {
  r->row_over_budget = 1;
  if (r->row_cut_by == QREG_TRUNCATED_NONE)
    r->row_cut_by = why;
}

static size_t chunk_alloc_size(size_t data_size) {
  return sizeof(chunk_t) + data_size;
}

/*
 * Makes room for `size` more bytes of the current row in last. The row moves
 * to a new chunk when last is full (its partial bytes are copied; last keeps
 * its stored rows), or its own chunk grows when the row is alone in it.
 * Returns 0 with room made, 0 with row_over_budget set when the growth would
 * not fit the budget (nothing allocated), or QREG_ENOMEM.
 *
 * A chunk allocated for the row is linked into the list only when the row is
 * stored (row_end): until then its `next` points back at the chunk it will
 * follow, so growing it (realloc) or dropping it needs no walk of the list,
 * and readers and result_clear never meet a half-written row.
 */
static int arena_reserve(qreg_result_t *r, size_t size) {
  chunk_t *last = r->last;
  if (last->size - last->used >= size)
    return 0;
  size_t row_len = last->used - r->row_start;
  if (size > UINT32_MAX - row_len)
    return QREG_ENOMEM; /* a row of 4 GiB (see the layout note) */
  size_t need = row_len + size;

  if (r->row_own_chunk) {
    /* Alone in its chunk: grow it by doubling (amortised for huge rows; the
       slack is used by the rows that follow). */
    size_t new_size = (size_t)last->size * 2 > need ? (size_t)last->size * 2 : need;
    if (new_size > UINT32_MAX)
      new_size = UINT32_MAX;
    qreg_truncation_t cut = budget_grow(r, r->footprint + (new_size - last->size), false);
    if (cut != QREG_TRUNCATED_NONE && new_size > need) {
      new_size = need; /* near a limit: no slack, only what the row needs */
      cut = budget_grow(r, r->footprint + (new_size - last->size), false);
    }
    if (cut != QREG_TRUNCATED_NONE) {
      row_over(r, cut);
      return 0;
    }
    size_t growth = new_size - last->size;
    chunk_t *grown = realloc(last, chunk_alloc_size(new_size));
    if (grown == NULL)
      return QREG_ENOMEM;
    grown->size = (uint32_t)new_size; /* grown->next still points back */
    r->last = grown;
    r->footprint += growth;
    return 0;
  }

  size_t next_size = (size_t)last->size * 2;
  if (next_size < CHUNK_MIN)
    next_size = CHUNK_MIN;
  if (next_size > CHUNK_MAX)
    next_size = CHUNK_MAX;
  if (next_size < need)
    next_size = need;
  qreg_truncation_t cut = budget_grow(r, r->footprint + chunk_alloc_size(next_size), false);
  if (cut != QREG_TRUNCATED_NONE && next_size > need) {
    next_size = need; /* near a limit: a chunk just for this row */
    cut = budget_grow(r, r->footprint + chunk_alloc_size(next_size), false);
  }
  if (cut != QREG_TRUNCATED_NONE) {
    row_over(r, cut);
    return 0;
  }
  chunk_t *chunk = malloc(chunk_alloc_size(next_size));
  if (chunk == NULL)
    return QREG_ENOMEM;
  chunk->next = last; /* back link until the row is stored */
  chunk->size = (uint32_t)next_size;
  chunk->used = (uint32_t)row_len;
  if (row_len > 0) {
    memcpy(chunk->data, last->data + r->row_start, row_len);
    last->used = r->row_start; /* the partial row's old bytes are abandoned */
  }
  r->last = chunk;
  r->row_start = 0;
  r->row_own_chunk = 1;
  r->footprint += chunk_alloc_size(next_size);
  return 0;
}

/* Forgets the row being written, freeing a chunk allocated for it. */
static void row_drop(qreg_result_t *r) {
  if (r->row_own_chunk) {
    chunk_t *own = r->last;
    r->last = own->next;
    r->footprint -= chunk_alloc_size(own->size);
    free(own);
  } else {
    r->last->used = r->row_start;
  }
  r->in_row = 0;
  r->row_own_chunk = 0;
  r->row_over_budget = 0;
  r->row_cut_by = QREG_TRUNCATED_NONE;
}

/*
 * Starts a cell of `size` bytes in the current row. On 0, *out is where to
 * write it, or NULL when the row is over budget (the cell is counted but not
 * stored: row_end drops the row). QREG_EINVAL outside a row or past the last
 * column, QREG_ENOMEM: nothing changes.
 */
static int cell_begin(qreg_result_t *r, size_t size, unsigned char **out) {
  *out = NULL;
  if (r == NULL || !r->in_row || r->row_cells >= columns_count(r))
    return QREG_EINVAL;
  /* A value that alone is more than the result may ever hold: the row can
     never be stored, whatever is freed meanwhile. */
  if (!r->row_over_budget && size > max_storable(r))
    row_over(r, QREG_TRUNCATED_VALUE_TOO_LARGE);
  if (!r->row_over_budget) {
    int rc = arena_reserve(r, size);
    if (rc != 0)
      return rc;
  }
  r->row_cells++;
  if (r->row_over_budget)
    return 0;
  *out = r->last->data + r->last->used;
  r->last->used += (uint32_t)size;
  return 0;
}

/* --- writing: the protocol ------------------------------------------------ */

/* Sets the result to the empty state, holding only its own allocation (the
   caller has freed everything else and settles the charge). */
static void result_init_empty(qreg_result_t *r) {
  chunk_t *head = inline_chunk(r);
  head->next = NULL;
  head->size = INLINE_DATA;
  head->used = 0;
  r->last = head;
  r->row_count = 0;
  r->columns = NULL;
  r->index = NULL;
  r->columns_used = 0;
  r->row_start = 0;
  r->row_cells = 0;
  r->columns_set = 0;
  r->columns_inline = 0;
  r->truncated_by = QREG_TRUNCATED_NONE;
  r->in_row = 0;
  r->row_over_budget = 0;
  r->row_cut_by = QREG_TRUNCATED_NONE;
  r->row_own_chunk = 0;
  r->evicted = 0;
  r->footprint = result_alloc_size();
}

qreg_result_t *qreg_result_new(uint64_t max_rows, qreg_budget_t *budget, size_t max_bytes) {
  qreg_result_t *r = malloc(result_alloc_size());
  if (r == NULL)
    return NULL;
  r->budget = budget;
  r->max_bytes = max_bytes;
  r->max_rows = max_rows;
  r->charged = 0;
  r->running = 1;
  result_init_empty(r);
  charge_sync(r);
  return r;
}

/* Frees everything the result holds beyond its own allocation and returns it
   to the empty state; the caller gives the bytes back. */
static void result_clear(qreg_result_t *r) {
  if (r->in_row)
    row_drop(r); /* its own chunk is not in the list */
  chunk_t *chunk = inline_chunk(r)->next;
  while (chunk != NULL) {
    chunk_t *next = chunk->next;
    free(chunk);
    chunk = next;
  }
  columns_release(r);
  free(r->index);
  result_init_empty(r);
}

void qreg_result_free(qreg_result_t *result) {
  if (result == NULL)
    return;
  result_clear(result);
  result->footprint = 0;
  charge_sync(result);
  free(result);
}

void qreg_result_settle(qreg_result_t *result) {
  if (result == NULL || !result->running)
    return;
  size_t lent = lent_part(result, result->charged);
  if (lent > 0)
    atomic_fetch_sub(&result->budget->lent, lent);
  result->running = 0;
}

size_t qreg_result_evict(qreg_result_t *result) {
  if (result == NULL || result->running || result->in_row || result->evicted)
    return 0;
  size_t before = result->charged;
  chunk_t *head = inline_chunk(result);
  for (chunk_t *chunk = head->next; chunk != NULL;) {
    chunk_t *next = chunk->next;
    free(chunk);
    chunk = next;
  }
  head->next = NULL;
  result->last = head;
  free(result->index);
  result->index = NULL;
  /* What is left: the one allocation and the column block. */
  result->footprint = result_alloc_size();
  if (result->columns != NULL && !result->columns_inline)
    result->footprint += columns_heap_capacity(result->columns_used);
  result->evicted = 1;
  charge_sync(result);
  return before - result->charged;
}

bool qreg_result_evicted(const qreg_result_t *result) {
  return result != NULL && result->evicted;
}

void qreg_result_reset(qreg_result_t *result) {
  if (result == NULL)
    return;
  result_clear(result);
  charge_sync(result);
}

int qreg_result_set_columns(qreg_result_t *result, size_t count) {
  if (result == NULL || result->columns_set)
    return QREG_EINVAL;
  if (count > (UINT32_MAX - 4) / 4)
    return QREG_ENOMEM;
  if (count > 0) {
    unsigned char *block = columns_grow(result, 4 + 4 * count);
    if (block == NULL)
      return QREG_ENOMEM;
    store_u32(block, (uint32_t)count);
    memset(block + 4, 0, 4 * count); /* every column unnamed */
  }
  result->columns_set = 1;
  charge_sync(result);
  return 0;
}

/* U+FFFD, which replaces each byte of text that does not start a valid
   UTF-8 sequence. */
static const char replacement_character[] = "\xef\xbf\xbd";

/* Length of text once each invalid byte is replaced (2 bytes more each). */
static size_t repaired_length(const char *text, size_t len) {
  size_t out = 0;
  size_t i = 0;
  while (i < len) {
    size_t valid = qreg__utf8_invalid_at(text + i, len - i);
    out += valid;
    if (i + valid == len)
      break;
    out += sizeof replacement_character - 1;
    i += valid + 1;
  }
  return out;
}

/* Copies text to out with each invalid byte replaced (repaired_length bytes). */
static void copy_repaired(unsigned char *out, const char *text, size_t len) {
  size_t i = 0;
  while (i < len) {
    size_t valid = qreg__utf8_invalid_at(text + i, len - i);
    memcpy(out, text + i, valid);
    out += valid;
    if (i + valid == len)
      break;
    memcpy(out, replacement_character, sizeof replacement_character - 1);
    out += sizeof replacement_character - 1;
    i += valid + 1;
  }
}

/* Bytes of a column's "name\0type\0" string. */
static size_t column_size(const char *column) {
  size_t name_len = strlen(column);
  return name_len + 1 + strlen(column + name_len + 1) + 1;
}

int qreg_result_set_column(qreg_result_t *result, size_t index, const char *name,
                           const char *type_name) {
  /* Columns are fixed once a row has begun: rows are read against them. */
  if (result == NULL || !result->columns_set || result->in_row || result->row_count > 0 ||
      index >= columns_count(result) || name == NULL)
    return QREG_EINVAL;
  if (type_name == NULL)
    type_name = "";
  /* Names are UTF-8 whatever the database sent, like text values. */
  size_t name_in = strlen(name);
  size_t type_in = strlen(type_name);
  size_t name_len = repaired_length(name, name_in);
  size_t type_len = repaired_length(type_name, type_in);
  size_t offset = result->columns_used;
  if (name_len > UINT32_MAX / 2 || type_len > UINT32_MAX / 2)
    return QREG_ENOMEM; /* the block's offsets are 32-bit */
  size_t size = name_len + type_len + 2;
  if (size > UINT32_MAX - offset)
    return QREG_ENOMEM;
  unsigned char *column = columns_grow(result, offset + size);
  if (column == NULL)
    return QREG_ENOMEM;
  copy_repaired(column, name, name_in);
  column[name_len] = '\0';
  copy_repaired(column + name_len + 1, type_name, type_in);
  column[name_len + 1 + type_len] = '\0';
  store_u32(result->columns + 4 + 4 * index, (uint32_t)offset);
  charge_sync(result);
  return 0;
}

int qreg_result_set_column_type(qreg_result_t *result, size_t index, const char *type_name) {
  if (result == NULL || !result->columns_set || index >= columns_count(result) || type_name == NULL)
    return QREG_EINVAL;
  const char *column = column_string(result, index);
  size_t name_len = column != NULL ? strlen(column) : 0;
  size_t type_in = strlen(type_name);
  size_t type_len = repaired_length(type_name, type_in);
  if (name_len > UINT32_MAX / 2 || type_len > UINT32_MAX / 2)
    return QREG_ENOMEM;
  size_t offset = result->columns_used;
  size_t size = name_len + type_len + 2;
  if (size > UINT32_MAX - offset)
    return QREG_ENOMEM;
  /* The old string stays where it is (unused): the name is copied from it
     after the block has moved, by offset. */
  uint32_t old_offset = load_u32(result->columns + 4 + 4 * index);
  unsigned char *added = columns_grow_late(result, offset + size);
  if (added == NULL)
    return QREG_ENOMEM;
  if (old_offset != 0)
    memcpy(added, result->columns + old_offset, name_len);
  added[name_len] = '\0';
  copy_repaired(added + name_len + 1, type_name, type_in);
  added[name_len + 1 + type_len] = '\0';
  store_u32(result->columns + 4 + 4 * index, (uint32_t)offset);
  charge_sync(result);
  return 0;
}

int qreg_result_row_begin(qreg_result_t *result) {
  if (result == NULL || !result->columns_set || result->in_row)
    return QREG_EINVAL;
  /* Once cut, nothing more is stored: a result never has a gap. */
  if (result->truncated_by != QREG_TRUNCATED_NONE)
    return QREG_RESULT_FULL;
  if (result->row_count >= result->max_rows) {
    result->truncated_by = QREG_TRUNCATED_MAX_ROWS;
    return QREG_RESULT_FULL;
  }
  result->in_row = 1;
  result->row_cells = 0;
  result->row_over_budget = 0;
  result->row_cut_by = QREG_TRUNCATED_NONE;
  result->row_own_chunk = 0;
  result->row_start = result->last->used;
  return 0;
}

int qreg_result_put_null(qreg_result_t *result) {
  unsigned char *p;
  int rc = cell_begin(result, 1, &p);
  if (p != NULL)
    p[0] = TAG_NULL;
  return rc;
}

int qreg_result_put_int(qreg_result_t *result, int64_t value) {
  uint64_t u = zigzag_encode(value);
  unsigned char *p;
  int rc = cell_begin(result, 1 + varint_size(u), &p);
  if (p != NULL) {
    p[0] = TAG_INT;
    varint_put(p + 1, u);
  }
  return rc;
}

int qreg_result_put_float(qreg_result_t *result, double value) {
  unsigned char *p;
  int rc = cell_begin(result, 1 + sizeof value, &p);
  if (p != NULL) {
    p[0] = TAG_FLOAT;
    memcpy(p + 1, &value, sizeof value);
  }
  return rc;
}

int qreg_result_put_bool(qreg_result_t *result, bool value) {
  unsigned char *p;
  int rc = cell_begin(result, 1, &p);
  if (p != NULL)
    p[0] = value ? TAG_TRUE : TAG_FALSE;
  return rc;
}

/* Text, bytes and JSON: tag, varint length, the bytes. Text and JSON are
   stored as UTF-8 whatever a driver hands over: each byte that does not
   start a valid sequence becomes U+FFFD, here, once for every driver. */
static int put_string(qreg_result_t *result, enum cell_tag tag, const void *bytes, size_t len) {
  if (bytes == NULL && len > 0)
    return QREG_EINVAL;
  if (len > SIZE_MAX / 8)
    return QREG_ENOMEM;
  bool repair = tag != TAG_BYTES && len > 0 && qreg__utf8_invalid_at(bytes, len) != len;
  size_t stored = repair ? repaired_length(bytes, len) : len;
  unsigned char *p;
  int rc = cell_begin(result, 1 + varint_size(stored) + stored, &p);
  if (p != NULL) {
    p[0] = (unsigned char)tag;
    p = varint_put(p + 1, stored);
    if (repair)
      copy_repaired(p, bytes, len);
    else if (len > 0)
      memcpy(p, bytes, len);
  }
  return rc;
}

int qreg_result_put_text(qreg_result_t *result, const char *text, size_t len) {
  return put_string(result, TAG_TEXT, text, len);
}

int qreg_result_put_bytes(qreg_result_t *result, const void *bytes, size_t len) {
  return put_string(result, TAG_BYTES, bytes, len);
}

int qreg_result_put_json(qreg_result_t *result, const char *json, size_t len) {
  return put_string(result, TAG_JSON, json, len);
}

/* Capacity of the row index holding `slots` entries: 0, then 4, 8, 16...
   Derived, not stored: the index only grows while rows are stored, and the
   one row_end that grows it and then fails the budget truncates the result,
   so no row_end ever grows it twice for the same slot. */
static size_t index_capacity(size_t slots) {
  if (slots == 0)
    return 0;
  size_t capacity = 4;
  while (capacity < slots)
    capacity *= 2;
  return capacity;
}

int qreg_result_row_end(qreg_result_t *result) {
  if (result == NULL || !result->in_row)
    return QREG_EINVAL;
  if (result->row_cells != columns_count(result)) {
    row_drop(result); /* a row with missing cells would misalign every read */
    return QREG_EINVAL;
  }
  if (result->row_over_budget) {
    result->truncated_by = result->row_cut_by;
    row_drop(result);
    return QREG_RESULT_FULL;
  }
  uint64_t row = result->row_count;
  bool indexed = row > 0 && row % ROW_INDEX_STRIDE == 0 && result->columns != NULL;
  size_t slot = indexed ? (size_t)(row / ROW_INDEX_STRIDE - 1) : 0;
  size_t capacity = index_capacity(slot); /* slots in use: slot */
  if (indexed && slot >= capacity) {
    size_t new_capacity = index_capacity(slot + 1);
    if (new_capacity > SIZE_MAX / sizeof(row_pos_t)) {
      row_drop(result);
      return QREG_ENOMEM;
    }
    row_pos_t *index = realloc(result->index, new_capacity * sizeof *index);
    if (index == NULL) {
      row_drop(result);
      return QREG_ENOMEM;
    }
    result->footprint += (new_capacity - capacity) * sizeof *index;
    result->index = index;
  }
  qreg_truncation_t cut = charge_rows(result);
  if (cut != QREG_TRUNCATED_NONE) {
    row_drop(result);
    result->truncated_by = cut;
    return QREG_RESULT_FULL;
  }
  chunk_t *last = result->last;
  if (result->row_own_chunk) { /* link it in after the chunk it points back at */
    chunk_t *prev = last->next;
    prev->next = last;
    last->next = NULL;
  }
  if (indexed)
    result->index[slot] = (row_pos_t){last, result->row_start};
  result->row_count++;
  result->in_row = 0;
  result->row_own_chunk = 0;
  return 0;
}

void qreg_result_mark_truncated(qreg_result_t *result, qreg_truncation_t reason) {
  if (result != NULL && result->truncated_by == QREG_TRUNCATED_NONE)
    result->truncated_by = reason != QREG_TRUNCATED_NONE && reason < QREG_TRUNCATION_COUNT
                               ? reason
                               : QREG_TRUNCATED_DRIVER;
}

/* --- reading ---------------------------------------------------------------- */

size_t qreg_result_column_count(const qreg_result_t *result) {
  return result != NULL ? columns_count(result) : 0;
}

/* "" for a column that was never named; NULL out of range. */
const char *qreg_result_column_name(const qreg_result_t *result, size_t index) {
  if (result == NULL || index >= columns_count(result))
    return NULL;
  const char *column = column_string(result, index);
  return column != NULL ? column : "";
}

const char *qreg_result_column_type(const qreg_result_t *result, size_t index) {
  if (result == NULL || index >= columns_count(result))
    return NULL;
  const char *column = column_string(result, index);
  return column != NULL ? column + strlen(column) + 1 : "";
}

uint64_t qreg_result_row_count(const qreg_result_t *result) {
  return result != NULL ? result->row_count : 0;
}

bool qreg_result_truncated(const qreg_result_t *result) {
  return result != NULL && result->truncated_by != QREG_TRUNCATED_NONE;
}

qreg_truncation_t qreg_result_truncated_by(const qreg_result_t *result) {
  return result != NULL ? (qreg_truncation_t)result->truncated_by : QREG_TRUNCATED_NONE;
}

size_t qreg_result_bytes(const qreg_result_t *result) {
  return result != NULL ? result->charged : 0;
}

/* A read position in the arena. */
typedef struct cursor {
  const chunk_t *chunk;
  size_t offset;
} cursor_t;

/* Moves past the end of a chunk's rows to the next chunk: rows never
   straddle chunks. Call at the start of each row. */
static void cursor_row_start(cursor_t *c) {
  while (c->chunk != NULL && c->offset >= c->chunk->used) {
    c->chunk = c->chunk->next;
    c->offset = 0;
  }
}

/* Decodes the cell at c and moves past it. value->v.s.ptr points into the
   arena (not NUL-terminated). */
static void cursor_read_cell(cursor_t *c, qreg_value_t *value) {
  assert(c->chunk != NULL); /* only ever asked for stored rows */
  const unsigned char *start = c->chunk->data + c->offset;
  const unsigned char *p = start;
  uint64_t u;
  memset(value, 0, sizeof *value);
  switch ((enum cell_tag) * p++) {
  case TAG_NULL:
    value->type = QREG_TYPE_NULL;
    break;
  case TAG_INT:
    p = varint_get(p, &u);
    value->type = QREG_TYPE_INT;
    value->v.i = zigzag_decode(u);
    break;
  case TAG_FLOAT:
    value->type = QREG_TYPE_FLOAT;
    memcpy(&value->v.f, p, sizeof value->v.f);
    p += sizeof value->v.f;
    break;
  case TAG_FALSE:
  case TAG_TRUE:
    value->type = QREG_TYPE_BOOL;
    value->v.b = start[0] == TAG_TRUE;
    break;
  case TAG_TEXT:
  case TAG_BYTES:
  case TAG_JSON:
    value->type = start[0] == TAG_TEXT    ? QREG_TYPE_TEXT
                  : start[0] == TAG_BYTES ? QREG_TYPE_BYTES
                                          : QREG_TYPE_JSON;
    p = varint_get(p, &u);
    value->v.s.ptr = (const char *)p;
    value->v.s.len = (size_t)u;
    p += u;
    break;
  }
  c->offset += (size_t)(p - start);
}

/* Positions c at the start of row `row` (< row_count, columns > 0). */
static void cursor_seek(const qreg_result_t *r, uint64_t row, cursor_t *c) {
  uint64_t slot = row / ROW_INDEX_STRIDE;
  if (slot == 0) {
    c->chunk = inline_chunk(r);
    c->offset = 0;
  } else {
    c->chunk = r->index[slot - 1].chunk;
    c->offset = r->index[slot - 1].offset;
  }
  qreg_value_t skipped;
  size_t columns = columns_count(r);
  for (uint64_t skip = row % ROW_INDEX_STRIDE; skip > 0; skip--) {
    cursor_row_start(c);
    for (size_t i = 0; i < columns; i++)
      cursor_read_cell(c, &skipped);
  }
}

static bool value_has_bytes(qreg_type_t type) {
  return type == QREG_TYPE_TEXT || type == QREG_TYPE_BYTES || type == QREG_TYPE_JSON;
}

/* a += b, false on overflow. */
static bool size_add(size_t *a, size_t b) {
  if (b > SIZE_MAX - *a)
    return false;
  *a += b;
  return true;
}

/*
 * The page is one malloc block, so that qreg_page_free() is free(page):
 *
 *   qreg_page_t | qreg_column_t[column_count] | qreg_value_t[rows * columns]
 *   | bytes: column names and types, then every string value, each followed
 *     by a NUL (bytes values too, harmlessly)
 *
 * Every part before the bytes has a size that is a multiple of its alignment
 * (all three structs hold 8-byte members), so each part is aligned.
 */
int qreg_result_copy_page(const qreg_result_t *result, uint64_t offset, uint64_t count,
                          qreg_page_t **out) {
  if (out != NULL)
    *out = NULL;
  if (result == NULL || out == NULL)
    return QREG_EINVAL;
  if (result->evicted)
    return QREG_ENORESULT;
  if (offset > result->row_count || count > result->row_count - offset)
    return QREG_ERANGE;
  size_t columns = columns_count(result);
  if (count > SIZE_MAX / sizeof(qreg_value_t) / (columns ? columns : 1))
    return QREG_ENOMEM;
  size_t cells = (size_t)count * columns;

  /* Pass 1: the size of the bytes part. */
  size_t text_bytes = 0;
  for (size_t i = 0; i < columns; i++) {
    const char *column = column_string(result, i);
    if (column != NULL && !size_add(&text_bytes, column_size(column)))
      return QREG_ENOMEM;
  }
  cursor_t cursor = {0};
  if (cells > 0) {
    cursor_seek(result, offset, &cursor);
    for (uint64_t row = 0; row < count; row++) {
      cursor_row_start(&cursor);
      for (size_t i = 0; i < columns; i++) {
        qreg_value_t value;
        cursor_read_cell(&cursor, &value);
        if (value_has_bytes(value.type) && !size_add(&text_bytes, value.v.s.len + 1))
          return QREG_ENOMEM;
      }
    }
  }
  size_t header = sizeof(qreg_page_t);
  size_t columns_size = columns * sizeof(qreg_column_t);
  size_t values_size = cells * sizeof(qreg_value_t);
  size_t total = header;
  if (!size_add(&total, columns_size) || !size_add(&total, values_size) ||
      !size_add(&total, text_bytes + 1)) /* +1: "" for unnamed columns */
    return QREG_ENOMEM;
  unsigned char *block = malloc(total);
  if (block == NULL)
    return QREG_ENOMEM;

  /* Pass 2: fill. */
  qreg_page_t *page = (qreg_page_t *)block;
  qreg_column_t *page_columns = (qreg_column_t *)(block + header);
  qreg_value_t *values = (qreg_value_t *)(block + header + columns_size);
  char *text = (char *)(block + header + columns_size + values_size);
  char *empty = text++;
  *empty = '\0';
  for (size_t i = 0; i < columns; i++) {
    const char *column = column_string(result, i);
    if (column == NULL) {
      page_columns[i] = (qreg_column_t){empty, empty};
      continue;
    }
    size_t size = column_size(column);
    memcpy(text, column, size);
    page_columns[i].name = text;
    page_columns[i].type_name = text + strlen(text) + 1;
    text += size;
  }
  if (cells > 0) {
    cursor_seek(result, offset, &cursor);
    for (size_t cell = 0; cell < cells; cell++) {
      if (cell % columns == 0)
        cursor_row_start(&cursor);
      qreg_value_t *value = &values[cell];
      cursor_read_cell(&cursor, value);
      if (value_has_bytes(value->type)) {
        size_t len = value->v.s.len;
        if (len > 0)
          memcpy(text, value->v.s.ptr, len);
        text[len] = '\0';
        value->v.s.ptr = text;
        text += len + 1;
      }
    }
  }
  page->column_count = columns;
  page->columns = columns > 0 ? page_columns : NULL;
  page->offset = offset;
  page->row_count = count;
  page->total_rows = result->row_count;
  page->has_more = offset + count < result->row_count;
  page->truncated = result->truncated_by != QREG_TRUNCATED_NONE;
  page->truncated_by = (qreg_truncation_t)result->truncated_by;
  page->values = cells > 0 ? values : NULL;
  *out = page;
  return 0;
}
