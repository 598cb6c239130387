/*
 * tests/support/scripted_driver.c - the scripted, fault-injecting test driver
 * (see scripted_driver.h for the script language, the faults and the checks).
 *
 * Owns, per registry, a scripted_state (the loop it borrows, the loop thread
 * it learned, how many of its connections are live) and, per connection, a
 * qreg_driver_conn with at most one job. Process-wide, it owns the counters,
 * the fault rules, the per-tag records and the first violation message, which
 * tests read after (or while) a registry runs.
 *
 * Like a real driver it only uses core/loop.h: every operation (connect, the
 * statement, a slow cancel, close) runs on a worker through qreg_loop_work()
 * and every completion is reported from a done callback, on the loop thread.
 * A job's completion waits for every worker operation on its connection (the
 * statement and a slow cancel), because the contract lets the core release
 * the connection the moment completion is reported.
 */
#include "support/scripted_driver.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A hang that nobody cancels ends after this and counts as a violation, so a
   broken core fails the test instead of hanging it. */
#define SCRIPTED_HANG_CAP_MS 30000u
#define SCRIPTED_MAX_COLS 64u
#define SCRIPTED_NO_TAG ((unsigned)-1)
#define SCRIPTED_NO_GATE ((unsigned)-1)

/* --- process-wide records -------------------------------------------------- */

typedef struct fault_rule {
  scripted_fault_t fault;
  unsigned ms;
  uint64_t first, last; /* call numbers it applies to, inclusive */
} fault_rule_t;

/* Counters: atomics, written from the loop thread and workers, read by tests. */
static struct {
  _Atomic uint64_t connect_attempts, connect_failures, opened, closed, close_failures, live_now,
      live_max, open_now, busy_now, busy_max, executes, completions, outcomes[3], cancels,
      cancels_noop, violations;
} counters;

/* Everything else process-wide, under records_lock. */
static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t point_calls[SCRIPTED_POINT_COUNT];
static fault_rule_t fault_rules[SCRIPTED_POINT_COUNT];
static scripted_tag_info_t tag_infos[SCRIPTED_MAX_TAGS];
static unsigned start_order[SCRIPTED_MAX_START_ORDER];
static size_t start_count;
static char violation_text[512];
static atomic_bool idle_dead;
/* Gates, under records_lock; gate_cond is broadcast when one opens. */
static bool gate_open[SCRIPTED_MAX_GATES];
static unsigned gate_waiting[SCRIPTED_MAX_GATES];
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static _Atomic unsigned connect_gate = SCRIPTED_MAX_GATES; /* none */
static _Atomic unsigned next_serial;

uint64_t scripted_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void counter_add(_Atomic uint64_t *counter, int64_t delta) {
  atomic_fetch_add(counter, (uint64_t)delta);
}

/* Adds one to *now and raises *max to it if needed. */
static void counter_up_with_max(_Atomic uint64_t *now, _Atomic uint64_t *max) {
  uint64_t value = atomic_fetch_add(now, 1) + 1;
  uint64_t seen = atomic_load(max);
  while (value > seen && !atomic_compare_exchange_weak(max, &seen, value)) {
  }
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...) {
  if (atomic_fetch_add(&counters.violations, 1) != 0)
    return; /* the first one explains; the count says how many followed */
  pthread_mutex_lock(&records_lock);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(violation_text, sizeof violation_text, fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&records_lock);
}

const char *scripted_violation_message(void) {
  return violation_text;
}

const char *scripted_point_name(scripted_point_t point) {
  static const char *const names[] = {"connect", "start", "row", "finish", "cancel", "close"};
  return (unsigned)point < SCRIPTED_POINT_COUNT ? names[point] : "?";
}

const char *scripted_fault_name(scripted_fault_t fault) {
  static const char *const names[] = {"none", "fail", "stall", "late"};
  return (unsigned)fault < SCRIPTED_FAULT_COUNT ? names[fault] : "?";
}

void scripted_reset(void) {
  pthread_mutex_lock(&records_lock);
  memset(point_calls, 0, sizeof point_calls);
  memset(fault_rules, 0, sizeof fault_rules);
  for (size_t i = 0; i < SCRIPTED_MAX_TAGS; i++)
    tag_infos[i] = (scripted_tag_info_t){.outcome = -1};
  start_count = 0;
  violation_text[0] = '\0';
  memset(gate_open, 0, sizeof gate_open);
  memset(gate_waiting, 0, sizeof gate_waiting);
  pthread_mutex_unlock(&records_lock);
  _Atomic uint64_t *all[] = {
      &counters.connect_attempts, &counters.connect_failures, &counters.opened,
      &counters.closed,           &counters.close_failures,   &counters.live_now,
      &counters.live_max,         &counters.open_now,         &counters.busy_now,
      &counters.busy_max,         &counters.executes,         &counters.completions,
      &counters.outcomes[0],      &counters.outcomes[1],      &counters.outcomes[2],
      &counters.cancels,          &counters.cancels_noop,     &counters.violations};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    atomic_store(all[i], 0);
  atomic_store(&idle_dead, false);
  atomic_store(&connect_gate, SCRIPTED_MAX_GATES);
}

void scripted_fault_set(scripted_point_t point, scripted_fault_t fault, unsigned nth,
                        unsigned count, unsigned ms) {
  if ((unsigned)point >= SCRIPTED_POINT_COUNT)
    return;
  pthread_mutex_lock(&records_lock);
  fault_rule_t *rule = &fault_rules[point];
  rule->fault = fault;
  rule->ms = ms;
  rule->first = point_calls[point] + (nth == 0 ? 1 : nth);
  rule->last = count == 0 ? UINT64_MAX : rule->first + count - 1;
  pthread_mutex_unlock(&records_lock);
}

void scripted_set_idle_dead(bool dead) {
  atomic_store(&idle_dead, dead);
}

/* Counts a call at point and returns the fault that applies to it. */
static scripted_fault_t fault_take(scripted_point_t point, unsigned *ms) {
  pthread_mutex_lock(&records_lock);
  uint64_t call = ++point_calls[point];
  const fault_rule_t *rule = &fault_rules[point];
  scripted_fault_t fault = SCRIPTED_FAULT_NONE;
  if (rule->fault != SCRIPTED_FAULT_NONE && call >= rule->first && call <= rule->last) {
    fault = rule->fault;
    *ms = rule->ms;
  }
  pthread_mutex_unlock(&records_lock);
  return fault;
}

static void gate_set(unsigned gate, bool open) {
  if (gate >= SCRIPTED_MAX_GATES)
    return;
  pthread_mutex_lock(&records_lock);
  gate_open[gate] = open;
  pthread_mutex_unlock(&records_lock);
  if (open)
    pthread_cond_broadcast(&gate_cond);
}

void scripted_gate_open(unsigned gate) {
  gate_set(gate, true);
}

void scripted_gate_close(unsigned gate) {
  gate_set(gate, false);
}

void scripted_set_connect_gate(unsigned gate) {
  atomic_store(&connect_gate, gate < SCRIPTED_MAX_GATES ? gate : SCRIPTED_MAX_GATES);
}

unsigned scripted_gate_waiting(unsigned gate) {
  if (gate >= SCRIPTED_MAX_GATES)
    return 0;
  pthread_mutex_lock(&records_lock);
  unsigned waiting = gate_waiting[gate];
  pthread_mutex_unlock(&records_lock);
  return waiting;
}

void scripted_counters_get(scripted_counters_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&records_lock);
  memcpy(out->calls, point_calls, sizeof out->calls);
  pthread_mutex_unlock(&records_lock);
  out->connect_attempts = atomic_load(&counters.connect_attempts);
  out->connect_failures = atomic_load(&counters.connect_failures);
  out->opened = atomic_load(&counters.opened);
  out->closed = atomic_load(&counters.closed);
  out->close_failures = atomic_load(&counters.close_failures);
  out->live_now = atomic_load(&counters.live_now);
  out->live_max = atomic_load(&counters.live_max);
  out->open_now = atomic_load(&counters.open_now);
  out->busy_now = atomic_load(&counters.busy_now);
  out->busy_max = atomic_load(&counters.busy_max);
  out->executes = atomic_load(&counters.executes);
  out->completions = atomic_load(&counters.completions);
  for (int i = 0; i < 3; i++)
    out->outcomes[i] = atomic_load(&counters.outcomes[i]);
  out->cancels = atomic_load(&counters.cancels);
  out->cancels_noop = atomic_load(&counters.cancels_noop);
  out->violations = atomic_load(&counters.violations);
}

bool scripted_tag_info_get(unsigned tag, scripted_tag_info_t *out) {
  if (tag >= SCRIPTED_MAX_TAGS)
    return false;
  pthread_mutex_lock(&records_lock);
  *out = tag_infos[tag];
  pthread_mutex_unlock(&records_lock);
  return true;
}

size_t scripted_start_order(unsigned *tags, size_t max) {
  pthread_mutex_lock(&records_lock);
  size_t count = start_count;
  size_t stored = count < SCRIPTED_MAX_START_ORDER ? count : SCRIPTED_MAX_START_ORDER;
  for (size_t i = 0; i < stored && i < max; i++)
    tags[i] = start_order[i];
  pthread_mutex_unlock(&records_lock);
  return count;
}

/* Applies update to the tag's record under the lock (no-op for untagged). */
#define TAG_UPDATE(tag, statement)                                                                 \
  do {                                                                                             \
    if ((tag) < SCRIPTED_MAX_TAGS) {                                                               \
      pthread_mutex_lock(&records_lock);                                                           \
      scripted_tag_info_t *info = &tag_infos[(tag)];                                               \
      statement;                                                                                   \
      pthread_mutex_unlock(&records_lock);                                                         \
    }                                                                                              \
  } while (0)

/* --- scripts --------------------------------------------------------------- */

typedef enum script_fail {
  SCRIPT_FAIL_NONE,
  SCRIPT_FAIL_NOW,
  SCRIPT_FAIL_START,
  SCRIPT_FAIL_ROW,
  SCRIPT_FAIL_FINISH
} script_fail_t;

typedef struct script {
  unsigned tag;
  uint64_t rows;
  unsigned cols;
  size_t width;
  unsigned sleep_ms, start_sleep_ms, row_sleep_ms, finish_sleep_ms;
  unsigned cancel_sleep_ms;
  unsigned gate;        /* SCRIPTED_NO_GATE: none */
  unsigned finish_gate; /* the same, after the rows */
  bool hang, ignore_cancel, cancel_fail, not_reusable;
  script_fail_t fail;
  uint64_t fail_row; /* 1-based */
} script_t;

static bool parse_number(const char *text, size_t len, uint64_t max, uint64_t *out) {
  if (len == 0 || len > 19)
    return false;
  uint64_t value = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9')
      return false;
    value = value * 10 + (uint64_t)(text[i] - '0');
  }
  if (value > max)
    return false;
  *out = value;
  return true;
}

/* Parses one word; false if it is not part of the language. */
static bool parse_word(script_t *s, const char *word, size_t len) {
  const char *eq = memchr(word, '=', len);
  size_t key_len = eq ? (size_t)(eq - word) : len;
  const char *value = eq ? eq + 1 : NULL;
  size_t value_len = eq ? len - key_len - 1 : 0;
  uint64_t n = 0;
#define KEY_IS(name) (key_len == strlen(name) && memcmp(word, name, key_len) == 0)
#define NUMBER(max) (value != NULL && parse_number(value, value_len, (max), &n))
  if (value == NULL) {
    if (KEY_IS("hang"))
      s->hang = true;
    else if (KEY_IS("ignore_cancel"))
      s->ignore_cancel = true;
    else if (KEY_IS("cancel_fail"))
      s->cancel_fail = true;
    else if (KEY_IS("not_reusable"))
      s->not_reusable = true;
    else
      return false;
    return true;
  }
  if (KEY_IS("tag") && NUMBER(SCRIPTED_MAX_TAGS - 1))
    s->tag = (unsigned)n;
  else if (KEY_IS("rows") && NUMBER(UINT64_MAX / 2))
    s->rows = n;
  else if (KEY_IS("cols") && NUMBER(SCRIPTED_MAX_COLS) && n > 0)
    s->cols = (unsigned)n;
  else if (KEY_IS("width") && NUMBER(1u << 24))
    s->width = (size_t)n;
  else if (KEY_IS("sleep") && NUMBER(600000))
    s->sleep_ms = (unsigned)n;
  else if (KEY_IS("start_sleep") && NUMBER(600000))
    s->start_sleep_ms = (unsigned)n;
  else if (KEY_IS("row_sleep") && NUMBER(600000))
    s->row_sleep_ms = (unsigned)n;
  else if (KEY_IS("finish_sleep") && NUMBER(600000))
    s->finish_sleep_ms = (unsigned)n;
  else if (KEY_IS("cancel_sleep") && NUMBER(600000))
    s->cancel_sleep_ms = (unsigned)n;
  else if (KEY_IS("gate") && NUMBER(SCRIPTED_MAX_GATES - 1))
    s->gate = (unsigned)n;
  else if (KEY_IS("finish_gate") && NUMBER(SCRIPTED_MAX_GATES - 1))
    s->finish_gate = (unsigned)n;
  else if (KEY_IS("fail")) {
    if (value_len == 3 && memcmp(value, "now", 3) == 0)
      s->fail = SCRIPT_FAIL_NOW;
    else if (value_len == 5 && memcmp(value, "start", 5) == 0)
      s->fail = SCRIPT_FAIL_START;
    else if (value_len == 6 && memcmp(value, "finish", 6) == 0)
      s->fail = SCRIPT_FAIL_FINISH;
    else if (value_len > 4 && memcmp(value, "row:", 4) == 0 &&
             parse_number(value + 4, value_len - 4, UINT64_MAX / 2, &n) && n > 0) {
      s->fail = SCRIPT_FAIL_ROW;
      s->fail_row = n;
    } else
      return false;
  } else
    return false;
  return true;
#undef KEY_IS
#undef NUMBER
}

/* Parses the whole SQL; on failure fills error and returns false. */
static bool script_parse(script_t *s, const char *sql, size_t len, qreg_driver_error_t *error) {
  *s = (script_t){.tag = SCRIPTED_NO_TAG,
                  .rows = 1,
                  .cols = 1,
                  .gate = SCRIPTED_NO_GATE,
                  .finish_gate = SCRIPTED_NO_GATE};
  size_t i = 0;
  while (i < len) {
    char c = sql[i];
    if (c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      i++;
      continue;
    }
    if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
      while (i < len && sql[i] != '\n')
        i++;
      continue;
    }
    size_t start = i;
    while (i < len && sql[i] != ';' && sql[i] != ' ' && sql[i] != '\t' && sql[i] != '\n' &&
           sql[i] != '\r')
      i++;
    if (!parse_word(s, sql + start, i - start)) {
      qreg_driver_error_set(error, "database", "SCRIPT", "scripted: unknown script word '%.*s'",
                            (int)(i - start), sql + start);
      return false;
    }
  }
  return true;
}

/* --- connections ----------------------------------------------------------- */

typedef struct scripted_state {
  qreg_loop_t *loop; /* borrowed from the registry */
  /* The loop thread, learned at the first vtable call (connect); loop thread
     only after that. */
  pthread_t loop_thread;
  bool loop_thread_known;
  unsigned live; /* loop thread: connect() .. close callback */
} scripted_state_t;

/* The job on a connection. Loop-thread fields are only touched there; the
   worker owns the "worker" fields while exec_running, and hands them over
   through the done callback. */
typedef struct scripted_exec {
  qreg_job_t *job;     /* loop: execute() .. completion reported */
  script_t script;     /* loop writes in execute, then read-only */
  bool exec_running;   /* loop: the statement's work is queued or running */
  bool cancel_running; /* loop: a slow cancel's work is queued or running */
  bool cancel_seen;    /* loop: cancel() already reached this job */
  /* worker: */
  qreg_job_outcome_t outcome;
  bool reusable;
  qreg_driver_error_t error;
} scripted_exec_t;

struct qreg_driver_conn {
  scripted_state_t *state; /* borrowed */
  unsigned serial;
  char backend_id[32];
  bool open;                       /* loop: connected, close() not yet called */
  bool closing;                    /* loop: close() called */
  unsigned last_tag;               /* loop: the tag of the last job run here */
  _Atomic uint64_t last_op_end_ns; /* when a worker operation last returned */

  /* Each operation has its own work struct: a slow cancel runs beside the
     statement. */
  qreg_work_t connect_work, exec_work, cancel_work, close_work;

  /* connect */
  qreg_conn_request_t *request;   /* owned by the core */
  scripted_fault_t connect_fault; /* loop writes, worker reads */
  unsigned connect_ms;
  unsigned connect_gate;             /* loop writes, worker reads; SCRIPTED_MAX_GATES: none */
  qreg_driver_error_t connect_error; /* worker fills on failure */

  scripted_exec_t exec;

  /* cancel: the slow cancel's fault, set on the loop before it is queued */
  scripted_fault_t cancel_fault;
  unsigned cancel_ms;

  /* Between the loop (cancel) and the workers, under mutex. */
  pthread_mutex_t mutex;
  pthread_cond_t cond;   /* CLOCK_MONOTONIC; signalled when a flag is set */
  bool cancel_requested; /* the job should stop */
  bool force_end;        /* a cancel failed: the connection is dropped */

  /* close */
  scripted_fault_t close_fault;
  unsigned close_ms;
  void (*closed)(void *arg);
  void *closed_arg;
  bool close_deferred; /* loop: close() came while busy (a violation) */
};

#define CONN_OF(work_ptr, member)                                                                  \
  ((qreg_driver_conn_t *)((char *)(work_ptr)-offsetof(qreg_driver_conn_t, member)))

/* Checks that the caller is on the registry's loop thread. */
static void check_loop_thread(scripted_state_t *state, const char *what) {
  if (!state->loop_thread_known) {
    state->loop_thread = pthread_self();
    state->loop_thread_known = true;
  } else if (!pthread_equal(state->loop_thread, pthread_self())) {
    violation("%s called off the loop thread", what);
  }
}

static void sleep_plain(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Whether the job on conn should stop now. Worker thread. */
static bool job_should_stop(qreg_driver_conn_t *conn) {
  pthread_mutex_lock(&conn->mutex);
  bool stop = conn->force_end || (conn->cancel_requested && !conn->exec.script.ignore_cancel);
  pthread_mutex_unlock(&conn->mutex);
  return stop;
}

/* Sleeps ms on a worker; a cancel (unless ignored) or a dropped connection
   wakes it when cancellable. Returns true if it was cut short. */
static bool sleep_cancellable(qreg_driver_conn_t *conn, unsigned ms, bool cancellable) {
  if (!cancellable) {
    sleep_plain(ms);
    return false;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += ms / 1000;
  deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  bool cut = false;
  pthread_mutex_lock(&conn->mutex);
  for (;;) {
    if (conn->force_end || (conn->cancel_requested && !conn->exec.script.ignore_cancel)) {
      cut = true;
      break;
    }
    if (pthread_cond_timedwait(&conn->cond, &conn->mutex, &deadline) == ETIMEDOUT)
      break;
  }
  pthread_mutex_unlock(&conn->mutex);
  return cut;
}

/* Stalls at a call point as its fault and the script say. Returns true if
   the job must end because of a FAIL there. */
static bool stall_at(qreg_driver_conn_t *conn, scripted_point_t point, unsigned script_ms) {
  unsigned ms = 0;
  scripted_fault_t fault = fault_take(point, &ms);
  if (fault == SCRIPTED_FAULT_FAIL)
    return true;
  if (fault == SCRIPTED_FAULT_STALL)
    sleep_cancellable(conn, ms, true);
  else if (fault == SCRIPTED_FAULT_LATE)
    sleep_cancellable(conn, ms, false);
  if (script_ms > 0)
    sleep_cancellable(conn, script_ms, true);
  return false;
}

static scripted_state_t *state_of(qreg_driver_conn_t *conn) {
  return conn->state;
}

static qreg_driver_conn_t *conn_new(scripted_state_t *state) {
  qreg_driver_conn_t *conn = calloc(1, sizeof *conn);
  if (conn == NULL)
    return NULL;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (pthread_cond_init(&conn->cond, &attr) != 0) {
    pthread_condattr_destroy(&attr);
    free(conn);
    return NULL;
  }
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&conn->mutex, NULL);
  conn->state = state;
  conn->last_tag = SCRIPTED_NO_TAG;
  return conn;
}

static void conn_free(qreg_driver_conn_t *conn) {
  qreg_driver_error_clear(&conn->connect_error);
  qreg_driver_error_clear(&conn->exec.error);
  pthread_cond_destroy(&conn->cond);
  pthread_mutex_destroy(&conn->mutex);
  free(conn);
}

/* The connection stops being live: counted before the core hears of it, so
   counters are final when qreg_close() returns. Loop thread. */
static void conn_unlive(qreg_driver_conn_t *conn) {
  conn->state->live--;
  counter_add(&counters.live_now, -1);
}

/* --- vtable: create / destroy --------------------------------------------- */

static const char *const scripted_schemes[] = {"script", NULL};

/* No options: the script is the whole story. */
static const qreg_driver_option_t scripted_options[] = {{.name = NULL}};

static char *scripted_redact_url(const char *url) {
  return strdup(url);
}

/* A catalog request becomes a script producing as many columns as the
   operation documents (qreg.h), in rows of the scripted form; the names
   play no part (and are never pasted into the script). */
static int scripted_catalog_sql(const qreg_catalog_request_t *request, char **sql_out,
                                char **message) {
  static const unsigned columns[QREG_CATALOG_OP_COUNT] = {1, 5, 8, 3, 13, 4, 4, 5};
  if ((unsigned)request->op >= QREG_CATALOG_OP_COUNT) {
    *message = strdup("scripted: no such catalog operation");
    return QREG_EINVAL;
  }
  uint64_t rows = request->op == QREG_CATALOG_COLUMN_STATS ? 1 : 2;
  if ((request->op == QREG_CATALOG_SAMPLE || request->op == QREG_CATALOG_SEARCH_COLUMNS) &&
      request->limit != 0 && request->limit < rows)
    rows = request->limit;
  if (asprintf(sql_out, "-- catalog %s\nrows=%" PRIu64 " cols=%u",
               qreg_catalog_op_name(request->op), rows, columns[request->op]) < 0) {
    *sql_out = NULL;
    return QREG_ENOMEM;
  }
  return 0;
}

static int scripted_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  if (strcmp(config->url + 7, "fail-create") == 0) {
    *message = strdup("scripted: create refused as the URL asks");
    return QREG_EDRIVER;
  }
  scripted_state_t *state = calloc(1, sizeof *state);
  if (state == NULL)
    return QREG_ENOMEM;
  state->loop = config->loop;
  *state_out = state;
  return 0;
}

static void scripted_destroy(void *opaque) {
  scripted_state_t *state = opaque;
  if (state->live != 0)
    violation("destroy with %u connection(s) still live", state->live);
  free(state);
}

/* --- vtable: connect ------------------------------------------------------- */

static void gate_pass(unsigned gate, unsigned tag);

static void connect_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, connect_work);
  if (conn->connect_gate < SCRIPTED_MAX_GATES)
    gate_pass(conn->connect_gate, SCRIPTED_NO_TAG);
  if (conn->connect_fault == SCRIPTED_FAULT_STALL || conn->connect_fault == SCRIPTED_FAULT_LATE)
    sleep_plain(conn->connect_ms);
  if (conn->connect_fault == SCRIPTED_FAULT_FAIL)
    qreg_driver_error_set(&conn->connect_error, "connection", "CONNECT",
                          "scripted: connection refused (injected)");
  atomic_store(&conn->last_op_end_ns, scripted_now_ns());
}

static void connect_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, connect_work);
  check_loop_thread(state_of(conn), "connect completion");
  qreg_conn_request_t *request = conn->request;
  conn->request = NULL;
  if (conn->connect_fault == SCRIPTED_FAULT_FAIL) {
    qreg_driver_error_t error = conn->connect_error;
    memset(&conn->connect_error, 0, sizeof conn->connect_error);
    conn_unlive(conn);
    counter_add(&counters.connect_failures, 1);
    conn_free(conn);
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
    return;
  }
  conn->serial = atomic_fetch_add(&next_serial, 1) + 1;
  snprintf(conn->backend_id, sizeof conn->backend_id, "script-%u", conn->serial);
  conn->open = true;
  counter_add(&counters.opened, 1);
  counter_add(&counters.open_now, 1);
  qreg_conn_request_done(request, conn, NULL);
}

static void scripted_connect(void *opaque, qreg_conn_request_t *request) {
  scripted_state_t *state = opaque;
  check_loop_thread(state, "connect()");
  counter_add(&counters.connect_attempts, 1);
  state->live++;
  counter_up_with_max(&counters.live_now, &counters.live_max);
  unsigned ms = 0;
  scripted_fault_t fault = fault_take(SCRIPTED_CONNECT, &ms);
  qreg_driver_conn_t *conn = conn_new(state);
  if (conn == NULL) {
    state->live--;
    counter_add(&counters.live_now, -1);
    counter_add(&counters.connect_failures, 1);
    qreg_driver_error_t error = {0};
    qreg_driver_error_set(&error, "connection", NULL, "scripted: out of memory");
    qreg_conn_request_done(request, NULL, &error);
    qreg_driver_error_clear(&error);
    return;
  }
  conn->request = request;
  conn->connect_fault = fault;
  conn->connect_ms = ms;
  conn->connect_gate = atomic_load(&connect_gate);
  if (qreg_loop_work(state->loop, &conn->connect_work, connect_work, connect_done) != 0) {
    /* The loop is stopping: fail at once, still on the loop thread. */
    conn->connect_fault = SCRIPTED_FAULT_FAIL;
    qreg_driver_error_set(&conn->connect_error, "connection", NULL, "scripted: loop is stopping");
    connect_done(&conn->connect_work);
  }
}

static bool scripted_alive(qreg_driver_conn_t *conn) {
  check_loop_thread(state_of(conn), "alive()");
  if (!conn->open || conn->closing)
    violation("alive() on a connection that is not open (serial %u)", conn->serial);
  return !atomic_load(&idle_dead);
}

/* --- vtable: execute ------------------------------------------------------- */

/* Writes row index i into the result. 0, QREG_RESULT_FULL or an error. */
static int write_row(qreg_result_t *result, const script_t *s, uint64_t i, char *buffer,
                     size_t buffer_size) {
  int rc = qreg_result_row_begin(result);
  if (rc != 0)
    return rc;
  if ((rc = qreg_result_put_int(result, (int64_t)i)) != 0)
    return rc;
  for (unsigned c = 1; c < s->cols; c++) {
    int len = snprintf(buffer, buffer_size, "r%" PRIu64 "c%u", i, c);
    size_t text_len = (size_t)len;
    if (s->width > text_len) {
      memset(buffer + text_len, 'x', s->width - text_len);
      text_len = s->width;
    }
    buffer[text_len] = '\0';
    if ((rc = qreg_result_put_text(result, buffer, text_len)) != 0)
      return rc;
  }
  return qreg_result_row_end(result);
}

/* Ends the worker's part of the job: outcome and, for errors, the message. */
static void exec_end(qreg_driver_conn_t *conn, qreg_job_outcome_t outcome) {
  conn->exec.outcome = outcome;
  conn->exec.reusable = outcome == QREG_JOB_OK && !conn->exec.script.not_reusable;
}

static void exec_end_stopped(qreg_driver_conn_t *conn) {
  pthread_mutex_lock(&conn->mutex);
  bool dropped = conn->force_end;
  pthread_mutex_unlock(&conn->mutex);
  if (dropped) {
    qreg_driver_error_set(&conn->exec.error, "connection", "CANCEL",
                          "scripted: cancel failed, connection dropped");
    exec_end(conn, QREG_JOB_ERROR);
  } else {
    qreg_driver_error_set(&conn->exec.error, "canceled", NULL, "scripted: canceled");
    exec_end(conn, QREG_JOB_CANCELED);
  }
}

static void exec_fail(qreg_driver_conn_t *conn, const char *where) {
  qreg_driver_error_set(&conn->exec.error, "database", "INJECTED", "scripted: failed at %s", where);
  exec_end(conn, QREG_JOB_ERROR);
}

/* How the statement's steps went. */
typedef enum step {
  STEP_ON,      /* go on */
  STEP_FAILED,  /* failed: the error is set */
  STEP_STOPPED, /* a cancel (or a dropped connection) stopped it */
} step_t;

/* Sets the columns and writes the rows, with the row call point before
   each. Worker thread. */
static step_t exec_rows(qreg_driver_conn_t *conn, qreg_result_t *result) {
  const script_t *s = &conn->exec.script;
  if (result == NULL)
    return STEP_ON;
  if (qreg_result_set_columns(result, s->cols) != 0) {
    exec_fail(conn, "columns (out of memory)");
    return STEP_FAILED;
  }
  for (unsigned c = 0; c < s->cols; c++) {
    char name[16];
    snprintf(name, sizeof name, "c%u", c);
    if (qreg_result_set_column(result, c, name, c == 0 ? "int" : "text") != 0) {
      exec_fail(conn, "columns (out of memory)");
      return STEP_FAILED;
    }
  }
  size_t buffer_size = s->width + 48;
  char *buffer = malloc(buffer_size);
  if (buffer == NULL) {
    exec_fail(conn, "rows (out of memory)");
    return STEP_FAILED;
  }
  step_t step = STEP_ON;
  for (uint64_t i = 0; i < s->rows && step == STEP_ON; i++) {
    if (stall_at(conn, SCRIPTED_ROW, s->row_sleep_ms) ||
        (s->fail == SCRIPT_FAIL_ROW && s->fail_row == i + 1)) {
      char where[48];
      snprintf(where, sizeof where, "row %" PRIu64, i + 1);
      exec_fail(conn, where);
      step = STEP_FAILED;
    } else if (job_should_stop(conn)) {
      step = STEP_STOPPED;
    } else {
      int rc = write_row(result, s, i, buffer, buffer_size);
      if (rc == QREG_RESULT_FULL)
        break; /* the result says stop: truncated, not an error */
      if (rc != 0) {
        exec_fail(conn, "rows (the result refused a value)");
        step = STEP_FAILED;
      }
    }
  }
  free(buffer);
  return step;
}

/* Waits until the test opens the gate (at most the hang cap). Worker
   thread. gate_cond runs on CLOCK_REALTIME (its static initializer): a
   clock step can only shorten or stretch the cap, never the test. */
static void gate_pass(unsigned gate, unsigned tag) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += SCRIPTED_HANG_CAP_MS / 1000;
  pthread_mutex_lock(&records_lock);
  gate_waiting[gate]++;
  while (!gate_open[gate]) {
    if (pthread_cond_timedwait(&gate_cond, &records_lock, &deadline) == ETIMEDOUT) {
      pthread_mutex_unlock(&records_lock);
      violation("gate %u (tag %u) was never opened", gate, tag);
      pthread_mutex_lock(&records_lock);
      break;
    }
  }
  gate_waiting[gate]--;
  pthread_mutex_unlock(&records_lock);
}

/* The statement, on a worker: the gate, start, the main sleep, rows,
   finish. */
static void exec_run(qreg_driver_conn_t *conn) {
  const script_t *s = &conn->exec.script;
  if (s->gate != SCRIPTED_NO_GATE)
    gate_pass(s->gate, s->tag);
  if (stall_at(conn, SCRIPTED_START, s->start_sleep_ms) || s->fail == SCRIPT_FAIL_START) {
    exec_fail(conn, "start");
    return;
  }
  if (s->hang) {
    if (!sleep_cancellable(conn, SCRIPTED_HANG_CAP_MS, true))
      violation("a hang (tag %u) was never canceled", s->tag);
  } else if (s->sleep_ms > 0) {
    sleep_cancellable(conn, s->sleep_ms, !s->ignore_cancel);
  }
  step_t step = job_should_stop(conn) ? STEP_STOPPED : exec_rows(conn, conn->exec.job->result);
  if (step == STEP_ON && s->finish_gate != SCRIPTED_NO_GATE)
    gate_pass(s->finish_gate, s->tag);
  if (step == STEP_ON) {
    if (stall_at(conn, SCRIPTED_FINISH, s->finish_sleep_ms) || s->fail == SCRIPT_FAIL_FINISH) {
      exec_fail(conn, "finish");
      step = STEP_FAILED;
    } else if (job_should_stop(conn)) {
      step = STEP_STOPPED;
    }
  }
  if (step == STEP_STOPPED)
    exec_end_stopped(conn);
  else if (step == STEP_ON)
    exec_end(conn, QREG_JOB_OK);
}

static void exec_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, exec_work);
  exec_run(conn);
  uint64_t now = scripted_now_ns();
  atomic_store(&conn->last_op_end_ns, now);
  TAG_UPDATE(conn->exec.script.tag, {
    if (now > info->op_end_ns)
      info->op_end_ns = now;
  });
}

static void close_start(qreg_driver_conn_t *conn);

/* Reports the job's completion once every worker operation on the
   connection has returned. Loop thread. */
static void exec_maybe_complete(qreg_driver_conn_t *conn) {
  if (conn->exec.exec_running || conn->exec.cancel_running)
    return;
  qreg_job_t *job = conn->exec.job;
  if (job == NULL) {
    violation("a job on connection %u completed twice", conn->serial);
    return;
  }
  conn->exec.job = NULL;
  qreg_job_outcome_t outcome = conn->exec.outcome;
  qreg_driver_error_clear(&job->error);
  job->error = conn->exec.error;
  memset(&conn->exec.error, 0, sizeof conn->exec.error);
  job->conn_reusable = conn->exec.reusable;
  uint64_t now = scripted_now_ns();
  TAG_UPDATE(conn->exec.script.tag, {
    info->completions++;
    info->outcome = (int)outcome;
    info->complete_ns = now;
  });
  counter_add(&counters.outcomes[outcome], 1);
  counter_add(&counters.busy_now, -1);
  counter_add(&counters.completions, 1);
  /* Last: the core may release (even close) the connection inside; unless
     a close was deferred (then the conn stays until close_start). */
  bool deferred = conn->close_deferred;
  qreg_job_complete(job, outcome);
  if (deferred)
    close_start(conn);
}

static void exec_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, exec_work);
  check_loop_thread(state_of(conn), "execute completion");
  conn->exec.exec_running = false;
  exec_maybe_complete(conn);
}

/* Completes a job at once, inside execute() (allowed by the contract). */
static void exec_complete_now(qreg_job_t *job, const char *type, const char *message) {
  qreg_driver_error_set(&job->error, type, "INJECTED", "%s", message);
  job->conn_reusable = false;
  counter_add(&counters.outcomes[QREG_JOB_ERROR], 1);
  counter_add(&counters.completions, 1);
  qreg_job_complete(job, QREG_JOB_ERROR);
}

static void scripted_execute(qreg_driver_conn_t *conn, qreg_job_t *job) {
  check_loop_thread(state_of(conn), "execute()");
  counter_add(&counters.executes, 1);
  if (!conn->open || conn->closing) {
    violation("execute() on a connection that is %s (serial %u)",
              conn->closing ? "closing" : "not open", conn->serial);
    exec_complete_now(job, "internal", "scripted: execute on a closed connection");
    return;
  }
  if (conn->exec.job != NULL || conn->exec.exec_running || conn->exec.cancel_running) {
    violation("execute() on a busy connection (serial %u)", conn->serial);
    exec_complete_now(job, "internal", "scripted: execute on a busy connection");
    return;
  }

  script_t script;
  qreg_driver_error_t parse_error = {0};
  bool parsed = script_parse(&script, job->sql, job->sql_len, &parse_error);
  unsigned tag = parsed ? script.tag : SCRIPTED_NO_TAG;
  pthread_mutex_lock(&records_lock);
  if (start_count < SCRIPTED_MAX_START_ORDER)
    start_order[start_count] = tag;
  uint64_t seq = ++start_count;
  pthread_mutex_unlock(&records_lock);
  conn->last_tag = tag;
  qreg_job_set_backend_id(job, conn->backend_id);
  TAG_UPDATE(tag, {
    info->executes++;
    info->start_seq = seq;
    info->conn_serial = conn->serial;
    info->op_end_ns = 0;
    info->close_ns = 0;
  });
  if (!parsed) {
    qreg_driver_error_clear(&job->error);
    job->error = parse_error;
    job->conn_reusable = true; /* nothing ran: the connection is clean */
    counter_add(&counters.outcomes[QREG_JOB_ERROR], 1);
    counter_add(&counters.completions, 1);
    qreg_job_complete(job, QREG_JOB_ERROR);
    return;
  }
  if (script.fail == SCRIPT_FAIL_NOW) {
    TAG_UPDATE(tag, {
      info->completions++;
      info->outcome = QREG_JOB_ERROR;
      info->complete_ns = scripted_now_ns();
    });
    exec_complete_now(job, "database", "scripted: failed at once (fail=now)");
    return;
  }

  conn->exec = (scripted_exec_t){.job = job, .script = script, .exec_running = true};
  pthread_mutex_lock(&conn->mutex);
  conn->cancel_requested = false;
  conn->force_end = false;
  pthread_mutex_unlock(&conn->mutex);
  counter_up_with_max(&counters.busy_now, &counters.busy_max);
  if (qreg_loop_work(state_of(conn)->loop, &conn->exec_work, exec_work, exec_done) != 0) {
    /* The loop is stopping: nothing ran, report at once. */
    conn->exec.exec_running = false;
    qreg_driver_error_set(&conn->exec.error, "internal", NULL, "scripted: loop is stopping");
    exec_end(conn, QREG_JOB_ERROR);
    exec_maybe_complete(conn);
  }
}

/* --- vtable: cancel -------------------------------------------------------- */

/* Sets the flag the worker watches. Any thread. */
static void conn_signal(qreg_driver_conn_t *conn, bool dropped) {
  pthread_mutex_lock(&conn->mutex);
  if (dropped)
    conn->force_end = true;
  else
    conn->cancel_requested = true;
  pthread_cond_broadcast(&conn->cond);
  pthread_mutex_unlock(&conn->mutex);
}

/* A slow or failing cancel, on a worker (like PQcancel). */
static void cancel_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, cancel_work);
  sleep_plain(conn->cancel_ms);
  conn_signal(conn, conn->cancel_fault == SCRIPTED_FAULT_FAIL);
  uint64_t now = scripted_now_ns();
  atomic_store(&conn->last_op_end_ns, now);
  TAG_UPDATE(conn->exec.script.tag, {
    if (now > info->op_end_ns)
      info->op_end_ns = now;
  });
}

static void cancel_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, cancel_work);
  check_loop_thread(state_of(conn), "cancel completion");
  conn->exec.cancel_running = false;
  exec_maybe_complete(conn);
}

static void scripted_cancel(qreg_driver_conn_t *conn, qreg_job_t *job) {
  check_loop_thread(state_of(conn), "cancel()");
  if (conn->exec.job == NULL || conn->exec.job != job) {
    counter_add(&counters.cancels_noop, 1); /* after completion: a no-op */
    return;
  }
  if (conn->exec.cancel_seen) {
    counter_add(&counters.cancels_noop, 1); /* idempotent */
    return;
  }
  conn->exec.cancel_seen = true;
  counter_add(&counters.cancels, 1);
  uint64_t now = scripted_now_ns();
  TAG_UPDATE(conn->exec.script.tag, info->cancel_ns = now);

  unsigned ms = 0;
  scripted_fault_t fault = fault_take(SCRIPTED_CANCEL, &ms);
  if (fault == SCRIPTED_FAULT_NONE && conn->exec.script.cancel_fail)
    fault = SCRIPTED_FAULT_FAIL;
  if (fault == SCRIPTED_FAULT_NONE && conn->exec.script.cancel_sleep_ms > 0) {
    fault = SCRIPTED_FAULT_STALL;
    ms = conn->exec.script.cancel_sleep_ms;
  }
  if (fault == SCRIPTED_FAULT_LATE)
    return; /* the cancel never reaches the job: it finishes late */
  if (fault == SCRIPTED_FAULT_NONE) {
    conn_signal(conn, false);
    return;
  }
  conn->cancel_fault = fault;
  conn->cancel_ms = ms;
  conn->exec.cancel_running = true;
  if (qreg_loop_work(state_of(conn)->loop, &conn->cancel_work, cancel_work, cancel_done) != 0) {
    conn->exec.cancel_running = false;
    conn_signal(conn, fault == SCRIPTED_FAULT_FAIL);
  }
}

/* --- vtable: close --------------------------------------------------------- */

static void close_work(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, close_work);
  if (conn->close_fault == SCRIPTED_FAULT_STALL || conn->close_fault == SCRIPTED_FAULT_LATE)
    sleep_plain(conn->close_ms);
}

static void close_done(qreg_work_t *work) {
  qreg_driver_conn_t *conn = CONN_OF(work, close_work);
  check_loop_thread(state_of(conn), "close completion");
  void (*closed)(void *arg) = conn->closed;
  void *arg = conn->closed_arg;
  if (conn->close_fault == SCRIPTED_FAULT_FAIL)
    counter_add(&counters.close_failures, 1);
  conn_unlive(conn);
  counter_add(&counters.open_now, -1);
  counter_add(&counters.closed, 1);
  conn_free(conn);
  closed(arg);
}

/* Runs the close on a worker; close_done reports it. Loop thread. */
static void close_start(qreg_driver_conn_t *conn) {
  unsigned ms = 0;
  conn->close_fault = fault_take(SCRIPTED_CLOSE, &ms);
  conn->close_ms = ms;
  if (qreg_loop_work(state_of(conn)->loop, &conn->close_work, close_work, close_done) != 0)
    close_done(&conn->close_work); /* on the loop thread all the same */
}

static void scripted_close(qreg_driver_conn_t *conn, void (*closed)(void *arg), void *arg) {
  check_loop_thread(state_of(conn), "close()");
  if (conn->closing || !conn->open) {
    violation("close() called twice on connection %u", conn->serial);
    return; /* the first close reports; a second callback would be wrong */
  }
  bool busy = conn->exec.job != NULL || conn->exec.exec_running || conn->exec.cancel_running;
  if (busy)
    violation("close() on connection %u with an operation in flight (tag %u)", conn->serial,
              conn->last_tag);
  uint64_t now = scripted_now_ns();
  if (now < atomic_load(&conn->last_op_end_ns))
    violation("close() on connection %u before its last operation returned", conn->serial);
  unsigned serial = conn->serial;
  TAG_UPDATE(conn->last_tag, {
    if (info->conn_serial == serial && info->close_ns == 0)
      info->close_ns = now;
  });
  conn->closing = true;
  conn->open = false;
  conn->closed = closed;
  conn->closed_arg = arg;
  /* A close while busy is the bug this driver exists to catch: it is
     recorded above, and the close itself waits for the job to complete so
     the worker never runs on freed memory and the test fails with the
     message instead of crashing. */
  if (busy)
    conn->close_deferred = true;
  else
    close_start(conn);
}

const qreg_driver_t scripted_driver = {
    .name = "scripted",
    .schemes = scripted_schemes,
    .url_forms = "script:ANYTHING",
    .matches = NULL,
    .redact_url = scripted_redact_url,
    .options = scripted_options,
    .limits = {0, 0},
    .catalog_sql = scripted_catalog_sql,
    .quote_identifier = qreg_driver_quote_double,
    .create = scripted_create,
    .destroy = scripted_destroy,
    .connect = scripted_connect,
    .alive = scripted_alive,
    .execute = scripted_execute,
    .cancel = scripted_cancel,
    .close = scripted_close,
};
