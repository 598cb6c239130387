/*
 * src/core/registry.c - the public API of qreg.h on the callers' threads:
 * opening and closing a registry, submitting, snapshots, pages, lists,
 * waiting (blocking, or qreg_watch without a thread), cancelling, pruning
 * and statistics. The loop thread's side - the pool, the driver's
 * completions, settling - is src/core/lifecycle.c; the state both share and
 * its rules are in src/core/registry_internal.h.
 *
 * Public calls hold the registry's lock only to read or change records;
 * copies that take long (a page of a result, the snapshots of a list) are
 * made outside it, on records held by a reference: a result is frozen once
 * its record has settled.
 *
 * Waiting: reg->settled_cond is broadcast whenever a record settles, a
 * connection closes, or the registry changes state; blocked callers (wait,
 * cancel, prune, close) re-check their condition.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/registry.h"
#include "core/registry_internal.h"

/* Limits on configuration values: above these a value is a mistake. */
#define MAX_CONNECTIONS_LIMIT 10000u
#define MAX_RECORDS_LIMIT ((size_t)100000000)
#define MAX_SQL_BYTES_LIMIT ((size_t)1 << 30)
#define MAX_DURATION_MS (366ull * 24 * 60 * 60 * 1000) /* a year and a day */
#define MAX_ROWS_LIMIT ((uint64_t)UINT32_MAX)          /* rows stored per query */
#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 100000

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

/* Calls that wait for the loop would wait for ever on its own thread (a
   watch callback): refused instead. */
static int refuse_on_loop(qreg_t *reg, const char *what) {
  if (reg->loop != NULL && qreg_loop_on_thread(reg->loop))
    return qreg__fail(QREG_EINVAL,
                      "%s: called from a qreg_watch callback (the registry's loop thread), "
                      "where waiting would never end",
                      what);
  return 0;
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
#define OPTIONS_SIZE_V1 offsetof(qreg_options_t, max_result_bytes)
#define STATS_SIZE_V1 offsetof(qreg_stats_t, watches)

/* The per-query result cap of a query whose options do not set one. */
static size_t default_result_bytes(const qreg_t *reg) {
  size_t quarter = reg->config.max_result_bytes / 4;
  return quarter > reg->budget.share ? quarter : reg->budget.share;
}

size_t qreg_default_result_bytes(qreg_t *reg) {
  qreg__clear_error();
  if (reg == NULL || atomic_load(&reg->refusing)) {
    qreg__fail(reg == NULL ? QREG_EINVAL : QREG_ECLOSED,
               reg == NULL ? "registry: NULL" : "the registry is closed");
    return 0;
  }
  return default_result_bytes(reg);
}

/* A result is "read" when a page reached its last row: such results go
   first, so that what a client still wants to read stays longest. */
static bool evictable(const record_t *r, bool read_only) {
  const qreg_result_t *res = record_result(r);
  /* refs > 1: someone copies a page of it right now, without the lock. */
  return res != NULL && !qreg_result_evicted(res) && r->refs == 1 && (!read_only || r->fetched_all);
}

/*
 * The budget's reclaim (result.h): frees the rows of settled results until
 * need bytes are back - first results read to their end, oldest first, then
 * the oldest - and returns the bytes freed (0: nothing left to free). Called
 * by a result's writer (a worker, or the loop thread inside a driver call),
 * which holds no lock; it takes the registry's.
 */
static size_t registry_reclaim(void *arg, size_t need) {
  qreg_t *reg = arg;
  size_t freed = 0;
  pthread_mutex_lock(&reg->lock);
  for (int pass = 0; pass < 2 && freed < need; pass++) {
    for (record_t *r = reg->store.finished.head; r != NULL && freed < need; r = r->queue_next) {
      if (!evictable(r, pass == 0))
        continue;
      size_t bytes = qreg_result_evict(record_result(r));
      if (bytes > 0) {
        freed += bytes;
        reg->results_evicted++;
      }
    }
  }
  pthread_mutex_unlock(&reg->lock);
  return freed;
}

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
  reg->application_name = strdup(config->application_name ? config->application_name : "qreg");
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
  qreg_budget_init(&reg->budget, config->max_result_bytes, config->max_connections);
  reg->budget.reclaim = registry_reclaim;
  reg->budget.reclaim_arg = reg;
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
  reg->read_only = !reg->config.allow_writes && (driver->read_only_enforced == NULL ||
                                                 driver->read_only_enforced(reg->driver_state));
  rc = qreg_loop_start(reg->loop, lifecycle_run, reg);
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
  int rc = refuse_on_loop(reg, "qreg_close");
  if (rc != 0)
    return rc;
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

  /* Every running job ends, every connection closes, every watch is
     called; then the loop stops. */
  pthread_mutex_lock(&reg->lock);
  while (!reg->shutdown_done)
    registry_wait(reg, NULL);
  registry_unlock(reg);
  qreg_loop_stop(reg->loop); /* runs what is queued, closes the timer, joins */

  pthread_mutex_lock(&reg->lock);
  assert(conns_total(reg) == 0 && reg->opened == reg->closed);
  assert(reg->fire_head == NULL && reg->watch_count == 0);
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
  if (reg == NULL || refuse_on_loop(reg, "qreg_destroy") != 0)
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
    return qreg__fail(QREG_EINVAL, "sql: contains a NUL byte at offset %zu", (size_t)(nul - sql));
  if (qreg__is_blank(sql, len))
    return qreg__fail(QREG_EINVAL, "sql: empty");
  size_t bad = qreg__utf8_invalid_at(sql, len);
  if (bad != len)
    return qreg__fail(QREG_EINVAL, "sql: invalid UTF-8 at offset %zu", bad);
  return 0;
}

/* The options' max_result_bytes, or 0 when the caller's struct predates it. */
static size_t option_result_bytes(const qreg_options_t *o) {
  if (o == NULL || o->struct_size < offsetof(qreg_options_t, max_result_bytes) + sizeof(size_t))
    return 0;
  return o->max_result_bytes;
}

static int check_options(const qreg_t *reg, const qreg_options_t *o) {
  int rc;
  if (o == NULL)
    return 0;
  if (o->struct_size < OPTIONS_SIZE_V1)
    return qreg__fail(QREG_EINVAL, "options: struct_size not set (start from qreg_options_init)");
  size_t max_bytes = option_result_bytes(o);
  if (max_bytes > reg->config.max_result_bytes)
    return qreg__fail(QREG_EINVAL,
                      "max_result_bytes: %zu is more than the registry holds for all results "
                      "(its max_result_bytes, %zu)",
                      max_bytes, reg->config.max_result_bytes);
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
  uint64_t timeout =
      options && options->timeout_ms ? options->timeout_ms : reg->config.default_timeout_ms;
  r->ttl_ms = options && options->ttl_ms ? options->ttl_ms : reg->config.default_ttl_ms;
  r->max_rows =
      (uint32_t)(options && options->max_rows ? options->max_rows : reg->config.default_max_rows);
  size_t max_bytes = option_result_bytes(options);
  r->max_bytes = record_pack_bytes(max_bytes ? max_bytes : default_result_bytes(reg));
  r->allow_writes = options && options->allow_writes;
  r->status = QREG_PENDING;
  r->heap_index = RECORD_NOT_IN_HEAP;
  r->refs = 1; /* the store's */
  r->updated_mono = qreg__mono_ms();
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

static void snapshot_fill(const record_t *r, int64_t wall_offset, qreg_snapshot_t *s, packer_t *p) {
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
  const char *backend = pack(p, record_backend_id(r));
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
  s->truncated_by = qreg_result_truncated_by(res);
  s->result_evicted = qreg_result_evicted(res);
  s->result_bytes = qreg_result_bytes(res);
  s->max_result_bytes = record_max_bytes(r);
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
  else if ((rc = find_locked(reg, id, &r)) == 0 &&
           (*out = snapshot_new_locked(r, reg->wall_offset_ms)) == NULL)
    rc = qreg__fail(QREG_ENOMEM, "out of memory");
  registry_unlock(reg);
  return rc;
}

void qreg_snapshot_free(qreg_snapshot_t *snapshot) {
  free(snapshot);
}

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
    } else if (qreg_result_evicted(record_result(r))) {
      rc = qreg__fail(QREG_ENORESULT,
                      "query %s succeeded, but its result (%" PRIu64
                      " rows) was evicted under memory pressure: run it again (forget results "
                      "you no longer need to keep others)",
                      id, qreg_result_row_count(record_result(r)));
    } else {
      uint64_t total = qreg_result_row_count(record_result(r));
      if (offset > total) {
        rc = qreg__fail(QREG_ERANGE, "offset %" PRIu64 " is past the end (%" PRIu64 " rows)",
                        offset, total);
      } else {
        uint64_t count = total - offset;
        if (limit != 0 && limit < count)
          count = limit;
        /* A settled result is frozen: copy it without the lock, holding the
           record so that a prune meanwhile cannot free it. */
        r->refs++;
        registry_unlock(reg);
        rc = qreg_result_copy_page(record_result(r), offset, count, out);
        pthread_mutex_lock(&reg->lock);
        if (rc == 0 && offset + count == total)
          r->fetched_all = true;
        record_unref(r);
        if (rc != 0)
          rc = qreg__fail(rc, "cannot copy the page: %s", qreg_strerror(rc));
      }
    }
  }
  registry_unlock(reg);
  return rc;
}

void qreg_page_free(qreg_page_t *page) {
  free(page);
}

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
    qreg_snapshot_free(list->items[i]); /* NULL after a failed list */
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
  /* One block: the list, the item pointers, then the cursor text. The
     item slots first hold the chosen records (each with a reference), then
     their snapshots: only choosing is done under the lock for the whole
     list; each snapshot takes it on its own, so completions go on. */
  qreg_list_t *list = malloc(sizeof *list + cap * sizeof(qreg_snapshot_t *) + 24);
  if (list == NULL) {
    registry_unlock(reg);
    return qreg__fail(QREG_ENOMEM, "out of memory");
  }
  list->items = (qreg_snapshot_t **)(void *)(list + 1);
  list->count = 0;
  list->next_cursor = NULL;
  char *cursor_text = (char *)(list->items + cap);
  record_t **chosen = (record_t **)(void *)list->items;
  record_t *r = f.newest_first ? reg->store.all.tail : reg->store.all.head;
  /* Skip to the cursor: records at or before it were returned already. */
  while (has_cursor && r != NULL && (f.newest_first ? r->seq >= after : r->seq <= after))
    r = f.newest_first ? r->all_prev : r->all_next;
  for (; r != NULL; r = f.newest_first ? r->all_prev : r->all_next) {
    if (f.status_mask && !(f.status_mask & (1u << r->status)))
      continue;
    r->refs++;
    chosen[list->count++] = r;
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
  bool failed = false;
  for (size_t i = 0; i < list->count; i++) {
    r = chosen[i];
    pthread_mutex_lock(&reg->lock);
    qreg_snapshot_t *s = failed ? NULL : snapshot_new_locked(r, reg->wall_offset_ms);
    record_unref(r);
    pthread_mutex_unlock(&reg->lock);
    failed = failed || s == NULL;
    list->items[i] = s;
  }
  if (failed) {
    qreg_list_free(list);
    return qreg__fail(QREG_ENOMEM, "out of memory");
  }
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
  if (timeout_ms != 0 && (rc = refuse_on_loop(reg, "qreg_wait")) != 0) {
    registry_unlock(reg);
    return rc;
  }
  record_t *r;
  if ((rc = find_locked(reg, id, &r)) == 0) {
    uint64_t now = qreg__mono_ms();
    uint64_t deadline =
        timeout_ms == UINT64_MAX || now + timeout_ms < now ? UINT64_MAX : now + timeout_ms;
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

int qreg_cancel_async(qreg_t *reg, const char *id, qreg_status_t *status_out) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  bool wake = false;
  if ((rc = find_locked(reg, id, &r)) == 0) {
    record_stop_locked(reg, r, QREG_CANCELED, "canceled", "canceled by the client");
    wake = r->in_inbox;
    if (status_out)
      *status_out = r->status;
  }
  registry_unlock(reg);
  if (wake)
    qreg_loop_wake(reg->loop);
  return rc;
}

int qreg_watch(qreg_t *reg, const char *id, qreg_watch_cb cb, void *arg) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  watch_t *w = NULL;
  if (cb == NULL)
    rc = qreg__fail(QREG_EINVAL, "callback: NULL");
  else if ((rc = find_locked(reg, id, &r)) == 0 && (w = calloc(1, sizeof *w)) == NULL)
    rc = qreg__fail(QREG_ENOMEM, "out of memory");
  if (rc == 0) {
    w->cb = cb;
    w->arg = arg;
    qreg__uuid_format(&r->id, &w->id);
    record_add_watch_locked(reg, r, w);
  }
  registry_unlock(reg); /* wakes the loop if the watch is due already */
  return rc;
}

int qreg_cancel(qreg_t *reg, const char *id, qreg_status_t *status_out) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  if ((rc = refuse_on_loop(reg, "qreg_cancel")) != 0) {
    registry_unlock(reg);
    return rc;
  }
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

int qreg_forget(qreg_t *reg, const char *id) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  record_t *r;
  bool wake = false;
  if ((rc = find_locked(reg, id, &r)) == 0) {
    /* As a TTL prune does: a query still going is stopped (its job keeps a
       reference until it settles, and whoever waits for it holds one),
       then it leaves the store. A result being copied by qreg_fetch is
       freed when the copy drops its reference. */
    record_stop_locked(reg, r, QREG_CANCELED, "canceled", "canceled: the query was forgotten");
    wake = r->in_inbox;
    record_drop_locked(reg, r);
    reg->forgotten++;
  }
  registry_unlock(reg);
  if (wake)
    qreg_loop_wake(reg->loop);
  return rc;
}

int qreg_prune_expired(qreg_t *reg) {
  int rc = lock_open(reg);
  if (rc != 0)
    return rc;
  if ((rc = refuse_on_loop(reg, "qreg_prune_expired")) != 0) {
    registry_unlock(reg);
    return rc;
  }
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
  out->result_bytes = atomic_load(&reg->budget.used);
  out->watches = reg->watch_count;
  out->driver_violations = reg->driver_violations;
  out->records_forgotten = reg->forgotten;
  out->results_evicted = reg->results_evicted;
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

bool qreg__registry_read_only(const qreg_t *reg) {
  return reg->read_only;
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
