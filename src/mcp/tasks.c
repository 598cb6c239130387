/*
 * src/mcp/tasks.c - MCP tasks mapped onto registry queries (see tasks.h).
 *
 * Owns the task store: a list of task_t in creation order, indexed by id in
 * a hash table (10,000 tasks must not cost 10,000 steps per lookup), under
 * mcp_tasks_t.mutex. The lock is never held across a registry call: entries
 * are copied out, the registry consulted, and the store updated after.
 * Entries whose query the registry has forgotten (TTL, eviction) are dropped
 * when met, and swept when the list grows.
 *
 * tasks/result and tasks/cancel wait for the query to settle without a
 * thread: they park the call (mcp_call_await) and answer from a resume
 * function when the query's watch fires.
 */
#include "mcp/tasks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/tools.h"

/* Tasks per tasks/list page. */
#define TASKS_PAGE 50
/* A requested ttl below this is raised to it: a task that vanishes before
   the client's first poll helps no one. */
#define TASKS_MIN_TTL_MS UINT64_C(1000)
/* The store is swept of forgotten queries when it reaches this size, then
   when it doubles. */
#define TASKS_SWEEP_AT 1024
/* Room kept in a tasks/get response for the task's own members. */
#define TASKS_ENVELOPE_BYTES 1024
/* The longest pollInterval suggested, however old the query. */
#define TASKS_MAX_POLL_MS UINT64_C(5000)
/* Buckets of the id index at first; doubled when tasks outnumber them. */
#define TASKS_INDEX_MIN 256

typedef struct task {
  struct task *next; /* creation order */
  struct task *prev;
  struct task *hash_next; /* the index bucket's chain */
  uint64_t seq;           /* creation order, from 1: tasks/list cursors */
  uint64_t ttl_ms;        /* as told to the client */
  size_t source;          /* the index of the query's source (server->sources) */
  uint64_t session;       /* the session it was made on: tasks/list shows a session its own */
  qreg_t *reg;            /* borrowed: that source's registry */
  qreg_id_t id;           /* the query's id, also the taskId */
  bool cancelled;         /* tasks/cancel accepted it: final */
} task_t;

struct mcp_tasks {
  pthread_mutex_t mutex; /* guards everything below */
  task_t *head;          /* owned, oldest first */
  task_t *tail;
  size_t count;
  size_t sweep_at;
  uint64_t next_seq;
  task_t **buckets;    /* owned array (the tasks are the list's): the id index */
  size_t bucket_count; /* a power of two, or 0 before the first task */
};

mcp_tasks_t *mcp_tasks_new(void) {
  mcp_tasks_t *tasks = calloc(1, sizeof *tasks);
  if (!tasks)
    return NULL;
  pthread_mutex_init(&tasks->mutex, NULL);
  tasks->sweep_at = TASKS_SWEEP_AT;
  tasks->next_seq = 1;
  return tasks;
}

void mcp_tasks_free(mcp_tasks_t *tasks) {
  if (!tasks)
    return;
  for (task_t *t = tasks->head; t;) {
    task_t *next = t->next;
    free(t);
    t = next;
  }
  free(tasks->buckets);
  pthread_mutex_destroy(&tasks->mutex);
  free(tasks);
}

/* --- the store ----------------------------------------------------------------------- */

/* FNV-1a of the id text. */
static size_t id_hash(const char *id) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * UINT64_C(1099511628211);
  return (size_t)(h ^ (h >> 32));
}

static task_t **bucket_locked(mcp_tasks_t *tasks, const char *id) {
  return &tasks->buckets[id_hash(id) & (tasks->bucket_count - 1)];
}

static task_t *find_locked(mcp_tasks_t *tasks, const char *id) {
  if (tasks->bucket_count == 0)
    return NULL;
  for (task_t *t = *bucket_locked(tasks, id); t; t = t->hash_next)
    if (strcmp(t->id.str, id) == 0)
      return t;
  return NULL;
}

/* Doubles the index when the tasks outnumber its buckets, relinking every
   task of the list; true if it did. Out of memory it keeps the buckets it
   has: longer chains, still right (store_add fails if there are none). */
static bool index_grow_locked(mcp_tasks_t *tasks) {
  if (tasks->count < tasks->bucket_count)
    return false;
  size_t count = tasks->bucket_count ? tasks->bucket_count * 2 : TASKS_INDEX_MIN;
  task_t **buckets = calloc(count, sizeof(task_t *));
  if (!buckets)
    return false;
  free(tasks->buckets);
  tasks->buckets = buckets;
  tasks->bucket_count = count;
  for (task_t *t = tasks->head; t; t = t->next) {
    task_t **bucket = bucket_locked(tasks, t->id.str);
    t->hash_next = *bucket;
    *bucket = t;
  }
  return true;
}

/* Unlinks t from the creation list (not from the index). */
static void list_unlink_locked(mcp_tasks_t *tasks, task_t *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    tasks->head = t->next;
  if (t->next)
    t->next->prev = t->prev;
  else
    tasks->tail = t->prev;
  tasks->count--;
}

static bool store_find(mcp_tasks_t *tasks, const char *id, task_t *copy) {
  pthread_mutex_lock(&tasks->mutex);
  task_t *t = find_locked(tasks, id);
  if (t) {
    *copy = *t;
    copy->next = copy->prev = copy->hash_next = NULL;
  }
  pthread_mutex_unlock(&tasks->mutex);
  return t != NULL;
}

static void store_remove(mcp_tasks_t *tasks, const char *id) {
  pthread_mutex_lock(&tasks->mutex);
  task_t *t = find_locked(tasks, id);
  if (t) {
    task_t **link = bucket_locked(tasks, id);
    while (*link != t)
      link = &(*link)->hash_next;
    *link = t->hash_next;
    list_unlink_locked(tasks, t);
    free(t);
  }
  pthread_mutex_unlock(&tasks->mutex);
}

/* Marks the task cancelled; false if it was already. */
static bool store_mark_cancelled(mcp_tasks_t *tasks, const char *id) {
  pthread_mutex_lock(&tasks->mutex);
  task_t *t = find_locked(tasks, id);
  bool changed = t && !t->cancelled;
  if (t)
    t->cancelled = true;
  pthread_mutex_unlock(&tasks->mutex);
  return changed;
}

/* Drops every task whose query its registry no longer has. */
static void store_sweep(mcp_tasks_t *tasks) {
  typedef struct entry {
    qreg_t *reg;
    qreg_id_t id;
  } entry_t;
  pthread_mutex_lock(&tasks->mutex);
  size_t count = tasks->count;
  entry_t *entries = calloc(count ? count : 1, sizeof(entry_t));
  size_t n = 0;
  for (task_t *t = tasks->head; t && entries; t = t->next) {
    entries[n].reg = t->reg;
    entries[n++].id = t->id;
  }
  pthread_mutex_unlock(&tasks->mutex);
  for (size_t i = 0; i < n; i++) {
    if (qreg_wait(entries[i].reg, entries[i].id.str, 0, NULL) == QREG_ENOTFOUND)
      store_remove(tasks, entries[i].id.str);
  }
  free(entries);
  pthread_mutex_lock(&tasks->mutex);
  tasks->sweep_at = tasks->count * 2 > TASKS_SWEEP_AT ? tasks->count * 2 : TASKS_SWEEP_AT;
  pthread_mutex_unlock(&tasks->mutex);
}

/* Adds the call's query (on the call's source) as a task. */
static int store_add(mcp_tasks_t *tasks, const mcp_call_t *call, const qreg_id_t *id,
                     uint64_t ttl_ms) {
  pthread_mutex_lock(&tasks->mutex);
  bool sweep = tasks->count >= tasks->sweep_at;
  pthread_mutex_unlock(&tasks->mutex);
  if (sweep)
    store_sweep(tasks);
  task_t *t = calloc(1, sizeof *t);
  if (!t)
    return -1;
  t->id = *id;
  t->source = call->source;
  t->session = call->session;
  t->reg = call->reg;
  t->ttl_ms = ttl_ms;
  pthread_mutex_lock(&tasks->mutex);
  t->seq = tasks->next_seq++;
  t->prev = tasks->tail;
  if (tasks->tail)
    tasks->tail->next = t;
  else
    tasks->head = t;
  tasks->tail = t;
  tasks->count++;
  bool linked = index_grow_locked(tasks); /* a rebuild links t too */
  if (!linked && tasks->bucket_count == 0) {
    list_unlink_locked(tasks, t); /* no index at all: out of memory */
    pthread_mutex_unlock(&tasks->mutex);
    free(t);
    return -1;
  }
  if (!linked) {
    task_t **bucket = bucket_locked(tasks, id->str);
    t->hash_next = *bucket;
    *bucket = t;
  }
  pthread_mutex_unlock(&tasks->mutex);
  return 0;
}

/* --- task objects -------------------------------------------------------------------- */

static bool task_terminal(const task_t *t, const qreg_snapshot_t *s) {
  return t->cancelled || qreg_status_is_terminal(s->status);
}

static const char *task_status(const mcp_call_t *call, const task_t *t, const qreg_snapshot_t *s) {
  if (t->cancelled)
    return "cancelled";
  switch (s->status) {
  case QREG_PENDING:
  case QREG_RUNNING:
    return "working";
  case QREG_SUCCEEDED:
    return "completed";
  case QREG_CANCELED:
    return "cancelled";
  case QREG_FAILED:
  case QREG_TIMEOUT:
  default:
    return call->modern ? "completed" : "failed";
  }
}

static json_t *status_message(const task_t *t, const qreg_snapshot_t *s) {
  char text[768];
  if (t->cancelled) {
    snprintf(text, sizeof text, "The task was cancelled (tasks/cancel); the query ended %s.",
             qreg_status_name(s->status));
  } else if (s->status == QREG_PENDING) {
    snprintf(text, sizeof text, "The query is waiting for a database connection.");
  } else if (s->status == QREG_RUNNING) {
    snprintf(text, sizeof text, "The query has been running for %" PRId64 " ms.", s->elapsed_ms);
  } else if (s->status == QREG_SUCCEEDED) {
    snprintf(text, sizeof text, "The query succeeded in %" PRId64 " ms with %" PRIu64 " rows%s.",
             s->elapsed_ms, s->row_count, s->truncated ? " (truncated)" : "");
  } else if (s->has_error) {
    snprintf(text, sizeof text, "The query ended %s: %s%s%.500s", qreg_status_name(s->status),
             s->error.code, s->error.code[0] ? ": " : "", s->error.message);
  } else {
    snprintf(text, sizeof text, "The query ended %s.", qreg_status_name(s->status));
  }
  return mcp_json_text(text, strlen(text));
}

static json_t *time_value(int64_t ms) {
  char buf[40];
  qreg_format_time(ms, buf, sizeof buf);
  return json_string(buf);
}

/* How long a client should wait before it asks again. Nothing tells how
   long a query will run but how long it has run: a quarter of its age, so
   that a poller never sleeps more than a quarter past the query's end, kept
   within [settings.poll_interval_ms, TASKS_MAX_POLL_MS]. A young query is
   asked about again soon; a query an hour old, every few seconds. */
static uint64_t poll_interval_ms(const mcp_call_t *call, const qreg_snapshot_t *s) {
  uint64_t least = call->server->settings.poll_interval_ms;
  uint64_t age = s->elapsed_ms > 0 ? (uint64_t)s->elapsed_ms : 0;
  uint64_t interval = age / 4;
  if (interval > TASKS_MAX_POLL_MS)
    interval = TASKS_MAX_POLL_MS;
  return interval > least ? interval : least;
}

/* The Task object of the call's revision (2025-11-25: ttl, pollInterval;
   2026-07-28: ttlMs, pollIntervalMs). */
static json_t *task_json(const mcp_call_t *call, const task_t *t, const qreg_snapshot_t *s) {
  const char *status = task_status(call, t, s);
  json_t *task =
      json_pack("{s:s, s:s, s:o, s:o, s:o}", "taskId", t->id.str, "status", status, "statusMessage",
                status_message(t, s), "createdAt", time_value(s->created_ms), "lastUpdatedAt",
                time_value(s->updated_ms ? s->updated_ms : s->created_ms));
  json_object_set_new(task, call->modern ? "ttlMs" : "ttl", json_integer((json_int_t)t->ttl_ms));
  if (!task_terminal(t, s))
    json_object_set_new(task, call->modern ? "pollIntervalMs" : "pollInterval",
                        json_integer((json_int_t)poll_interval_ms(call, s)));
  return task;
}

/* The params.taskId of a tasks/ request; fails the call when absent. */
static const char *param_task_id(mcp_call_t *call) {
  json_t *id = mcp_call_param(call, "taskId");
  if (!json_is_string(id)) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Invalid params: taskId (a string) is required");
    return NULL;
  }
  return json_string_value(id);
}

/* Finds the task and a snapshot of its query, or fails the call with
   -32602 (unknown or expired task). */
static bool load(mcp_call_t *call, const char *id, task_t *task, qreg_snapshot_t **snap) {
  if (!store_find(call->server->tasks, id, task)) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Failed to retrieve task: Task not found");
    return false;
  }
  /* The call works on the task's source from here on. */
  call->source = task->source;
  call->reg = task->reg;
  int rc = qreg_snapshot(call->reg, id, snap);
  if (rc == QREG_ENOTFOUND) {
    store_remove(call->server->tasks, id);
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Failed to retrieve task: Task has expired");
    return false;
  }
  if (rc < 0) {
    mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL, "Failed to retrieve task: %s", qreg_strerror(rc));
    return false;
  }
  return true;
}

/* The task named by the request's taskId, and a fresh snapshot of its query:
   what tasks/get, tasks/result, tasks/cancel and tasks/update all start with.
   false (the error already answered) if the id is missing or unknown. */
static bool load_from_params(mcp_call_t *call, const char **id, task_t *task,
                             qreg_snapshot_t **snap) {
  *snap = NULL;
  *id = param_task_id(call);
  return *id != NULL && load(call, *id, task, snap);
}

/* --- creation ------------------------------------------------------------------------- */

/* A task-augmented execute_query, after its window: a query that settled in
   it is answered complete (2026-07-28) or as a completed task (2025-11-25);
   one still running becomes (or stays) a working task. */
static json_t *tasks_create_resume(mcp_call_t *call, const char *query_id, int rc,
                                   qreg_status_t status) {
  qreg_id_t id;
  snprintf(id.str, sizeof id.str, "%s", query_id);
  if (call->modern) {
    if (rc != QREG_ETIMEDOUT && (rc < 0 || qreg_status_is_terminal(status)))
      return mcp_tools_query_outcome(call, id.str, call->budget);
    if (store_add(call->server->tasks, call, &id, call->server->settings.ttl_ms) < 0) {
      (void)qreg_cancel_async(call->reg, id.str, NULL);
      mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL, "Internal error: out of memory");
      return NULL;
    }
  }
  task_t task;
  qreg_snapshot_t *snap = NULL;
  if (!load(call, id.str, &task, &snap))
    return NULL;
  json_t *result = task_json(call, &task, snap);
  qreg_snapshot_free(snap);
  if (call->modern) {
    call->result_type = "task";
    return result;
  }
  char note[256];
  snprintf(note, sizeof note,
           "The query runs as task %s. Its result (status, error, first rows) comes with the "
           "task; get_query_status and fetch_query_result also take this id as query_id.",
           id.str);
  return json_pack("{s:o, s:{s:s}}", "task", result, "_meta",
                   "io.modelcontextprotocol/model-immediate-response", note);
}

json_t *mcp_tasks_create(mcp_call_t *call, json_t *arguments, json_t *task_params) {
  const mcp_settings_t *settings = &call->server->settings;
  uint64_t ttl_ms = settings->ttl_ms;
  json_t *requested = json_object_get(task_params, "ttl");
  if (task_params && !json_is_object(task_params)) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Invalid params: task must be an object");
    return NULL;
  }
  if (requested && !json_is_null(requested)) {
    if (!json_is_number(requested) || json_number_value(requested) < 0) {
      mcp_call_fail(call, MCP_INVALID_PARAMS, NULL,
                    "Invalid params: task.ttl must be a number of milliseconds");
      return NULL;
    }
    /* The receiver may override the ttl: kept within [1 s, --ttl]. */
    double want = json_number_value(requested);
    ttl_ms = want >= (double)settings->ttl_ms ? settings->ttl_ms : (uint64_t)want;
    if (ttl_ms < TASKS_MIN_TTL_MS)
      ttl_ms = TASKS_MIN_TTL_MS;
  }
  json_t *args = arguments ? json_copy(arguments) : json_object();
  qreg_id_t id;
  json_t *tool_error = NULL;
  uint64_t window_ms = settings->task_window_ms;
  int rc = mcp_tools_bind_source(call, args, "execute_query", &tool_error);
  if (rc == 0)
    rc = mcp_tools_submit_query(call, args, ttl_ms, &id, &window_ms, &tool_error);
  json_decref(args);
  if (rc < 0) {
    /* A task-augmented request expects a CreateTaskResult or an error. */
    json_t *text =
        json_object_get(json_array_get(json_object_get(tool_error, "content"), 0), "text");
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Invalid params: %s",
                  json_is_string(text) ? json_string_value(text) : "invalid arguments");
    json_decref(tool_error);
    return NULL;
  }
  /* 2025-11-25: the client asked for a task, so it gets one, made now (a
     tasks/list during the window shows it). 2026-07-28: the server decides,
     so the task is made only if the query outlives the window. */
  if (!call->modern && store_add(call->server->tasks, call, &id, ttl_ms) < 0) {
    (void)qreg_cancel_async(call->reg, id.str, NULL);
    mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL, "Internal error: out of memory");
    return NULL;
  }
  /* The window: parked, not on a thread. A query that settles within it
     spares the client a poll (and the SDK helpers their first sleep). */
  return mcp_call_await_for(call, id.str, window_ms, tasks_create_resume);
}

/* --- the tasks/ methods -------------------------------------------------------------------- */

json_t *mcp_tasks_get(mcp_call_t *call) {
  const char *id;
  task_t task;
  qreg_snapshot_t *snap;
  if (!load_from_params(call, &id, &task, &snap))
    return NULL;
  json_t *result = task_json(call, &task, snap);
  const char *status = task_status(call, &task, snap);
  qreg_snapshot_free(snap);
  if (call->modern && strcmp(status, "completed") == 0) {
    /* 2026-07-28: a completed task carries its result (a CallToolResult,
       itself with resultType). */
    size_t budget = call->budget > (size_t)TASKS_ENVELOPE_BYTES * 2
                        ? call->budget - TASKS_ENVELOPE_BYTES
                        : TASKS_ENVELOPE_BYTES;
    json_t *outcome = mcp_tools_query_outcome(call, id, budget);
    if (!outcome) {
      json_decref(result);
      return NULL;
    }
    json_object_set_new(outcome, "resultType", json_string("complete"));
    json_object_set_new(result, "result", outcome);
  }
  return result;
}

/* tasks/result, once the task's query has settled (or at once for a task
   cancelled already): the tool result, with the related-task _meta. */
static json_t *tasks_result_resume(mcp_call_t *call, const char *id, int rc, qreg_status_t status) {
  (void)status;
  if (rc < 0) {
    mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL, "Internal error: %s", qreg_strerror(rc));
    return NULL;
  }
  task_t task;
  json_t *result = mcp_tools_query_outcome(call, id, call->budget);
  if (!result)
    return NULL;
  /* Cancelled by tasks/cancel after the query had finished otherwise: the
     task stays cancelled, and its result says so. */
  if (store_find(call->server->tasks, id, &task) && task.cancelled) {
    json_t *content = json_object_get(result, "content");
    json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text",
                                             "The task was cancelled by tasks/cancel."));
    json_object_set_new(result, "isError", json_true());
  }
  json_object_set_new(result, "_meta",
                      json_pack("{s:{s:s}}", "io.modelcontextprotocol/related-task", "taskId", id));
  return result;
}

json_t *mcp_tasks_result(mcp_call_t *call) {
  const char *id;
  task_t task;
  qreg_snapshot_t *snap;
  if (!load_from_params(call, &id, &task, &snap))
    return NULL;
  qreg_snapshot_free(snap);
  if (task.cancelled)
    return tasks_result_resume(call, id, 0, QREG_CANCELED);
  /* Parked until the query settles: no thread waits for it. */
  return mcp_call_await(call, id, tasks_result_resume);
}

json_t *mcp_tasks_list(mcp_call_t *call) {
  uint64_t after = 0;
  json_t *cursor = mcp_call_param(call, "cursor");
  if (cursor && !json_is_null(cursor)) {
    const char *text = json_string_value(cursor);
    char *end = NULL;
    unsigned long long value = text && text[0] == 't' ? strtoull(text + 1, &end, 10) : 0;
    if (!text || text[0] != 't' || !end || *end != '\0' || end == text + 1) {
      mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Invalid params: invalid cursor");
      return NULL;
    }
    after = value;
  }
  mcp_tasks_t *tasks = call->server->tasks;
  /* Copy one page (and one more, to know whether there is more) out of the store. */
  task_t page[TASKS_PAGE + 1];
  size_t n = 0;
  pthread_mutex_lock(&tasks->mutex);
  for (task_t *t = tasks->head; t && n < TASKS_PAGE + 1; t = t->next)
    if (t->seq > after && t->session == call->session)
      page[n++] = *t;
  pthread_mutex_unlock(&tasks->mutex);
  json_t *list = json_array();
  json_t *result = json_pack("{s:o}", "tasks", list);
  uint64_t last = after;
  bool more = false;
  for (size_t i = 0; i < n; i++) {
    if (i == TASKS_PAGE) {
      more = true;
      break;
    }
    qreg_snapshot_t *snap = NULL;
    if (qreg_snapshot(page[i].reg, page[i].id.str, &snap) < 0) {
      store_remove(tasks, page[i].id.str);
      last = page[i].seq;
      continue;
    }
    json_array_append_new(list, task_json(call, &page[i], snap));
    qreg_snapshot_free(snap);
    if (mcp_json_size(result) + 64 > call->budget && json_array_size(list) > 1) {
      json_array_remove(list, json_array_size(list) - 1);
      more = true;
      break;
    }
    last = page[i].seq;
  }
  if (more) {
    char next[32];
    snprintf(next, sizeof next, "t%" PRIu64, last);
    json_object_set_new(result, "nextCursor", json_string(next));
  }
  return result;
}

/* tasks/cancel's answer, once the query is stopped and its connection
   released (or at once when there was nothing to stop). */
static json_t *tasks_cancel_resume(mcp_call_t *call, const char *id, int rc, qreg_status_t status) {
  (void)rc; /* whatever the wait ended with, the task is cancelled; load says if it is gone */
  (void)status;
  if (call->modern)
    return json_object(); /* an acknowledgement */
  task_t task;
  qreg_snapshot_t *snap;
  if (!load(call, id, &task, &snap))
    return NULL;
  json_t *result = task_json(call, &task, snap);
  qreg_snapshot_free(snap);
  return result;
}

json_t *mcp_tasks_cancel(mcp_call_t *call) {
  const char *id;
  task_t task;
  qreg_snapshot_t *snap;
  if (!load_from_params(call, &id, &task, &snap))
    return NULL;
  bool terminal = task_terminal(&task, snap);
  if (terminal && !call->modern) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL,
                  "Cannot cancel task: already in terminal status '%s'",
                  task_status(call, &task, snap));
    qreg_snapshot_free(snap);
    return NULL;
  }
  qreg_snapshot_free(snap);
  if (terminal)
    return tasks_cancel_resume(call, id, 0, QREG_CANCELED);
  /* The task is cancelled from now on, whatever the query does; the answer
     waits (parked, not on a thread) until the query is stopped in the
     database and its connection released. */
  (void)qreg_cancel_async(call->reg, id, NULL); /* load() bound the task's source */
  store_mark_cancelled(call->server->tasks, id);
  return mcp_call_await(call, id, tasks_cancel_resume);
}

json_t *mcp_tasks_update(mcp_call_t *call) {
  const char *id;
  task_t task;
  qreg_snapshot_t *snap;
  if (!load_from_params(call, &id, &task, &snap))
    return NULL;
  qreg_snapshot_free(snap);
  json_t *responses = mcp_call_param(call, "inputResponses");
  if (responses && !json_is_object(responses)) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL,
                  "Invalid params: inputResponses must be an object");
    return NULL;
  }
  /* execute_query never asks for input: responses to no outstanding request
     are ignored, as the extension says. */
  return json_object();
}
