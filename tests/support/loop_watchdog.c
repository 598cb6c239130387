/*
 * tests/support/loop_watchdog.c - the loop-lag watchdog and the driver
 * wrapper that puts it on a registry's loop (see loop_watchdog.h).
 *
 * Owns the wrapped descriptors (a static table, for the process) and one
 * watchdog: its timer and clocks belong to the loop thread; the counters
 * the test thread reads are atomics; the start work and the schedstat
 * descriptor live from the wrapper's create() to its destroy().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/loop_watchdog.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/test_util.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define LOOP_WATCHDOG_HAVE_VALGRIND_H 1
#endif
#endif

#define WRAP_SLOTS 4
#define SCHEME_MAX 32

/* --- the watchdog ------------------------------------------------------- */

static struct {
  /* Set by create() before the loop runs; read by the loop thread after
     (qreg_loop_work orders them). */
  qreg_loop_t *loop;
  qreg_work_t start_work;
  int schedstat_fd; /* -1: unreadable; opened on the loop thread */

  /* Loop thread only. */
  qreg_timer_t *timer;
  uint64_t due_ns;          /* when the armed timer should fire */
  uint64_t cpu_wait_at_arm; /* the loop thread's run-queue delay then */

  /* Shared. */
  atomic_bool active; /* a watched registry is open */
  atomic_bool thread_known;
  pthread_t loop_thread; /* written once before thread_known is set */
  _Atomic uint64_t ticks, max_lag_ns, max_raw_lag_ns;
  _Atomic uint64_t max_lag_due_ns; /* when the worst tick was due */
  _Atomic uint64_t reset_ns;       /* when the measurement began */
  atomic_bool cpu_wait_known;
  atomic_bool timer_failed;
  int slot; /* the wrapper that created it */
} watchdog = {.schedstat_fd = -1};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The loop thread's total run-queue delay (ns), or 0 when unknown. The
   second field of schedstat: "time spent waiting on a runqueue". */
static uint64_t cpu_wait_ns(void) {
  if (watchdog.schedstat_fd < 0)
    return 0;
  char text[128];
  ssize_t n = pread(watchdog.schedstat_fd, text, sizeof text - 1, 0);
  if (n <= 0)
    return 0;
  text[n] = '\0';
  unsigned long long running = 0, waiting = 0;
  if (sscanf(text, "%llu %llu", &running, &waiting) != 2)
    return 0;
  return waiting;
}

/* Raises *max to value; true if it did. */
static bool raise_max(_Atomic uint64_t *max, uint64_t value) {
  uint64_t seen = atomic_load(max);
  while (value > seen) {
    if (atomic_compare_exchange_weak(max, &seen, value))
      return true;
  }
  return false;
}

static void watchdog_tick(qreg_timer_t *timer, void *arg);

/* Arms the next tick. Loop thread. */
static void watchdog_arm(uint64_t now, uint64_t cpu_wait) {
  watchdog.due_ns = now + (uint64_t)LOOP_WATCHDOG_PERIOD_MS * 1000000u;
  watchdog.cpu_wait_at_arm = cpu_wait;
  if (qreg_timer_start(watchdog.loop, LOOP_WATCHDOG_PERIOD_MS, watchdog_tick, NULL,
                       &watchdog.timer) != 0) {
    watchdog.timer = NULL;
    atomic_store(&watchdog.timer_failed, true);
  }
}

/* Loop thread: how late this tick is, then the next one. */
static void watchdog_tick(qreg_timer_t *timer, void *arg) {
  (void)arg;
  uint64_t now = now_ns();
  uint64_t cpu_wait = cpu_wait_ns();
  qreg_timer_close(timer); /* fired: free it */
  watchdog.timer = NULL;
  uint64_t raw = now > watchdog.due_ns ? now - watchdog.due_ns : 0;
  uint64_t waited = cpu_wait > watchdog.cpu_wait_at_arm ? cpu_wait - watchdog.cpu_wait_at_arm : 0;
  raise_max(&watchdog.max_raw_lag_ns, raw);
  if (raise_max(&watchdog.max_lag_ns, raw > waited ? raw - waited : 0))
    atomic_store(&watchdog.max_lag_due_ns, watchdog.due_ns);
  atomic_fetch_add(&watchdog.ticks, 1);
  watchdog_arm(now, cpu_wait);
}

static void watchdog_start_work(qreg_work_t *work) {
  (void)work; /* nothing on the worker: the point is the done() on the loop */
}

/* Loop thread: learns the thread, opens its schedstat, arms the first tick. */
static void watchdog_start_done(qreg_work_t *work) {
  (void)work;
  watchdog.loop_thread = pthread_self();
  atomic_store(&watchdog.thread_known, true);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)gettid());
  watchdog.schedstat_fd = open(path, O_RDONLY | O_CLOEXEC);
  atomic_store(&watchdog.cpu_wait_known, watchdog.schedstat_fd >= 0);
  watchdog_arm(now_ns(), cpu_wait_ns());
}

bool loop_watchdog_on_loop_thread(void) {
  return atomic_load(&watchdog.thread_known) && pthread_equal(watchdog.loop_thread, pthread_self());
}

/* Waits until ticks reaches target; fails the test when a tick is more
   than LOOP_WATCHDOG_STALL_MS apart from the previous one. */
static void wait_ticks(uint64_t target, const char *why) {
  if (!atomic_load(&watchdog.active))
    fail_msg("loop watchdog: no watched registry is open");
  uint64_t seen = atomic_load(&watchdog.ticks);
  uint64_t deadline = now_ns() + (uint64_t)LOOP_WATCHDOG_STALL_MS * 1000000u;
  while (seen < target) {
    if (atomic_load(&watchdog.timer_failed))
      fail_msg("loop watchdog: its timer could not be re-armed");
    if (now_ns() > deadline)
      fail_msg("loop watchdog: no tick for %u ms (%s): the loop thread is blocked right now: "
               "invariant 6",
               LOOP_WATCHDOG_STALL_MS, why);
    test_sleep_ms(1);
    uint64_t now_seen = atomic_load(&watchdog.ticks);
    if (now_seen != seen) {
      seen = now_seen;
      deadline = now_ns() + (uint64_t)LOOP_WATCHDOG_STALL_MS * 1000000u;
    }
  }
}

void loop_watchdog_reset(void) {
  wait_ticks(1, "waiting for the first tick");
  wait_ticks(atomic_load(&watchdog.ticks) + 1, "reset");
  atomic_store(&watchdog.ticks, 0);
  atomic_store(&watchdog.max_lag_ns, 0);
  atomic_store(&watchdog.max_raw_lag_ns, 0);
  atomic_store(&watchdog.max_lag_due_ns, 0);
  atomic_store(&watchdog.reset_ns, now_ns());
}

void loop_watchdog_report(loop_watchdog_report_t *out) {
  /* The next tick may already be running; the one after it was armed
     after this call. */
  wait_ticks(atomic_load(&watchdog.ticks) + 2, "report");
  out->ticks = atomic_load(&watchdog.ticks);
  out->max_lag_ms = atomic_load(&watchdog.max_lag_ns) / 1000000u;
  out->max_raw_lag_ms = atomic_load(&watchdog.max_raw_lag_ns) / 1000000u;
  uint64_t due = atomic_load(&watchdog.max_lag_due_ns), reset = atomic_load(&watchdog.reset_ns);
  out->max_lag_after_ms = out->max_lag_ms > 0 && due > reset ? (due - reset) / 1000000u : 0;
  out->cpu_wait_known = atomic_load(&watchdog.cpu_wait_known);
}

static bool under_valgrind(void) {
#ifdef LOOP_WATCHDOG_HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND)
    return true;
#endif
  const char *preload = getenv("LD_PRELOAD");
  return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

uint64_t loop_watchdog_lag_bound_ms(void) {
  return under_valgrind() ? LOOP_WATCHDOG_VALGRIND_LAG_BOUND_MS : LOOP_WATCHDOG_LAG_BOUND_MS;
}

void loop_watchdog_assert_responsive(const char *what, uint64_t min_ticks) {
  loop_watchdog_report_t report;
  loop_watchdog_report(&report);
  uint64_t bound = loop_watchdog_lag_bound_ms();
  print_message("%s: max loop lag %" PRIu64 " ms (%" PRIu64 " ms counting CPU waits%s) at +%" PRIu64
                " ms, %" PRIu64 " ticks, bound %" PRIu64 " ms%s\n",
                what, report.max_lag_ms, report.max_raw_lag_ms,
                report.cpu_wait_known ? "" : "; schedstat unreadable", report.max_lag_after_ms,
                report.ticks, bound, under_valgrind() ? " (valgrind)" : "");
  if (report.max_lag_ms >= bound)
    fail_msg("%s: the loop thread was blocked for %" PRIu64 " ms (bound %" PRIu64
             " ms): invariant 6",
             what, report.max_lag_ms, bound);
  if (report.ticks < min_ticks)
    fail_msg("%s: the watchdog ticked %" PRIu64 " times, expected at least %" PRIu64, what,
             report.ticks, min_ticks);
}

/* --- the wrapping driver -------------------------------------------------- */

typedef struct wrap_slot {
  qreg_driver_t driver; /* the copy that is registered */
  const qreg_driver_t *inner;
  char scheme[SCHEME_MAX];
  const char *schemes[2];
} wrap_slot_t;

static wrap_slot_t slots[WRAP_SLOTS];
static int slot_count;

/* The slot whose scheme prefixes url ("<scheme>:"), or -1. */
static int slot_of(const char *url) {
  for (int i = 0; i < slot_count; i++) {
    size_t len = strlen(slots[i].scheme);
    if (strncmp(url, slots[i].scheme, len) == 0 && url[len] == ':')
      return i;
  }
  return -1;
}

/* matches() has no argument saying which descriptor it belongs to: one
   function per slot. */
#define SLOT_MATCHES(n)                                                                            \
  static bool slot##n##_matches(const char *url) {                                                 \
    return slot_of(url) == (n);                                                                    \
  }
SLOT_MATCHES(0)
SLOT_MATCHES(1)
SLOT_MATCHES(2)
SLOT_MATCHES(3)
static bool (*const slot_matchers[WRAP_SLOTS])(const char *url) = {slot0_matches, slot1_matches,
                                                                   slot2_matches, slot3_matches};

static int wrapped_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  int slot = slot_of(config->url);
  if (slot < 0) {
    *message = strdup("loop watchdog: no wrapped driver for this URL");
    return QREG_EDRIVER;
  }
  if (atomic_load(&watchdog.active)) {
    *message = strdup("loop watchdog: one watched registry at a time (did a test fail "
                      "before closing the last one?)");
    return QREG_EDRIVER;
  }
  /* The real driver sees its own URL; it points into the registry's copy,
     which outlives the driver state as config->url itself does. */
  qreg_driver_config_t inner_config = *config;
  inner_config.url = config->url + strlen(slots[slot].scheme) + 1;
  int rc = slots[slot].inner->create(&inner_config, state_out, message);
  if (rc != 0)
    return rc;
  watchdog.loop = config->loop;
  watchdog.slot = slot;
  watchdog.timer = NULL;
  watchdog.schedstat_fd = -1;
  atomic_store(&watchdog.thread_known, false);
  atomic_store(&watchdog.ticks, 0);
  atomic_store(&watchdog.max_lag_ns, 0);
  atomic_store(&watchdog.max_raw_lag_ns, 0);
  atomic_store(&watchdog.max_lag_due_ns, 0);
  atomic_store(&watchdog.reset_ns, now_ns());
  atomic_store(&watchdog.timer_failed, false);
  atomic_store(&watchdog.active, true);
  /* create() runs before the loop does, on the opening thread: timers may
     only be started on the loop thread, so the start goes there as the
     done() of an empty work. */
  if (qreg_loop_work(config->loop, &watchdog.start_work, watchdog_start_work,
                     watchdog_start_done) != 0) {
    atomic_store(&watchdog.active, false);
    slots[slot].inner->destroy(*state_out);
    *state_out = NULL;
    *message = strdup("loop watchdog: cannot reach the loop thread");
    return QREG_EDRIVER;
  }
  return 0;
}

/* After the loop stopped (it closed the timer): the real destroy. */
static void wrapped_destroy(void *state) {
  slots[watchdog.slot].inner->destroy(state);
  if (watchdog.schedstat_fd >= 0)
    close(watchdog.schedstat_fd);
  watchdog.schedstat_fd = -1;
  atomic_store(&watchdog.active, false);
}

const qreg_driver_t *loop_watchdog_wrap(const qreg_driver_t *inner, const char *scheme,
                                        loop_watchdog_execute_fn execute) {
  assert_true(slot_count < WRAP_SLOTS);
  assert_true(strlen(scheme) < SCHEME_MAX);
  wrap_slot_t *slot = &slots[slot_count];
  /* The whole descriptor is copied, so whatever the real driver declares
     (options, limits, catalog, redaction) stays as it is. */
  slot->driver = *inner;
  slot->inner = inner;
  snprintf(slot->scheme, sizeof slot->scheme, "%s", scheme);
  slot->schemes[0] = slot->scheme;
  slot->schemes[1] = NULL;
  slot->driver.name = slot->scheme;
  slot->driver.schemes = slot->schemes;
  slot->driver.matches = slot_matchers[slot_count];
  slot->driver.create = wrapped_create;
  slot->driver.destroy = wrapped_destroy;
  if (execute != NULL)
    slot->driver.execute = execute;
  slot_count++;
  assert_int_equal(qreg_driver_register(&slot->driver), 0);
  return &slot->driver;
}
