/*
 * tests/support/loop_watchdog.h - a loop-lag watchdog, the test of DESIGN.md
 * invariant 6 ("the loop never blocks"): a timer on a registry's own loop
 * thread that re-arms itself every LOOP_WATCHDOG_PERIOD_MS and measures how
 * late it fires. While the loop thread is stuck in a blocking call (a
 * connect, a name lookup, a statement), no timer fires; when it comes back,
 * the watchdog sees the whole stall as lateness.
 *
 * How it gets onto the loop without touching src/core: a test wraps a real
 * driver (sqlite, postgres, the scripted one) with loop_watchdog_wrap(),
 * which registers a copy of its descriptor under a scheme of its own. The
 * copy's create() calls the real create() with the URL after "<scheme>:"
 * and, through qreg_loop_work() (the only loop call allowed off the loop
 * thread), starts the timer on config->loop; every other vtable entry is
 * the real driver's, and the driver state is the real one.
 *
 * What counts as lag: the time the timer fired after it was due, less the
 * time the loop thread spent waiting for a CPU meanwhile (its run-queue
 * delay, from /proc/self/task/TID/schedstat). A thread blocked in a system
 * call or a sleep is not waiting for a CPU, and a thread computing is
 * running, so both stay counted; what is taken out is only the load of
 * other processes on a shared machine. Where schedstat is unreadable the
 * raw lateness counts.
 *
 * One watched registry at a time per process. Owns: the wrapped
 * descriptors (static, for the process) and the watchdog of the open
 * watched registry (its timer belongs to the loop, which closes it at stop).
 */
#ifndef QREG_TESTS_LOOP_WATCHDOG_H
#define QREG_TESTS_LOOP_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/driver.h"

#define LOOP_WATCHDOG_PERIOD_MS 10u

/*
 * The bound a healthy loop stays under, in milliseconds. Generous on
 * purpose: it detects multi-second blocking, not jitter. Every blocking
 * scenario of the tests lasts 1 s or more (a silent server held for its 2 s
 * connect timeout, a 1.5 s name lookup, statements of 1 s and more), so a
 * loop blocked by any of them shows at least 1000 ms - four times the bound.
 * A loop that only does non-blocking work shows timer granularity (1 ms)
 * plus its own short callbacks, a few ms even under TSan; waiting for a CPU
 * on a loaded 2-core machine is not counted (see above). 250 ms leaves room
 * for page faults, sanitizer bookkeeping and a slow allocator, and is still
 * a quarter of the shortest block it must catch.
 */
#define LOOP_WATCHDOG_LAG_BOUND_MS 250u
/* Under valgrind, which runs one thread at a time and stalls every thread
   while it translates new code (seen: 190 ms when SQLite first runs), the
   bound is 750 ms: still under the shortest block to catch (1 s). */
#define LOOP_WATCHDOG_VALGRIND_LAG_BOUND_MS 750u

/* The bound in effect: one of the two above. */
uint64_t loop_watchdog_lag_bound_ms(void);

/* A loop that has not ticked for this long is blocked right now: the
   waits below fail at once rather than wait for the loop to come back
   (a loop stuck for good would never report its lag). */
#define LOOP_WATCHDOG_STALL_MS 5000u

/* An execute() to put in the wrapped descriptor instead of the real one
   (the positive control's deliberately blocking execute). */
typedef void (*loop_watchdog_execute_fn)(qreg_driver_conn_t *conn, qreg_job_t *job);

/*
 * Registers (qreg_driver_register) a copy of inner serving
 * "<scheme>:<inner's URL>", whose create() also starts the watchdog. Only
 * name, schemes, matches, create and destroy are replaced, and execute
 * when execute is not NULL. Call before any qreg_open(); at most 4 per
 * process; scheme at most 31 bytes. Fails the test on error.
 */
const qreg_driver_t *loop_watchdog_wrap(const qreg_driver_t *inner, const char *scheme,
                                        loop_watchdog_execute_fn execute);

typedef struct loop_watchdog_report {
  uint64_t ticks;            /* timer callbacks since the last reset */
  uint64_t max_lag_ms;       /* the latest it fired, less waiting for a CPU */
  uint64_t max_raw_lag_ms;   /* the latest it fired, all counted */
  uint64_t max_lag_after_ms; /* when the worst tick was due, after the reset */
  bool cpu_wait_known;       /* schedstat was readable (else lag == raw lag) */
} loop_watchdog_report_t;

/* Waits (bounded) until the watchdog of the open watched registry has
   ticked, then starts a new measurement. Fails the test if it does not
   tick within LOOP_WATCHDOG_STALL_MS (a loop blocked that long) or no
   watched registry is open. */
void loop_watchdog_reset(void);

/* Waits for a tick armed after this call, so a stall still under way is
   measured to its end, then reports since the last reset. Fails the test
   if no tick comes within LOOP_WATCHDOG_STALL_MS. */
void loop_watchdog_report(loop_watchdog_report_t *out);

/* Prints the report for what, then fails the test unless the lag stayed
   under loop_watchdog_lag_bound_ms() and the watchdog ticked at least
   min_ticks times. */
void loop_watchdog_assert_responsive(const char *what, uint64_t min_ticks);

/* Whether the calling thread is the watched registry's loop thread (known
   once the watchdog has ticked). */
bool loop_watchdog_on_loop_thread(void);

#endif /* QREG_TESTS_LOOP_WATCHDOG_H */
