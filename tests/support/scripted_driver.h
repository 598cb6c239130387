/*
 * tests/support/scripted_driver.h - a scripted, fault-injecting driver for the
 * core's tests (URL scheme "script:"), in the spirit of SQLite's I/O-error
 * injection: every place where a real driver can fail, stall or finish late
 * can be made to, on command, and the driver itself checks that the core
 * keeps the driver contract (src/drivers/driver.h).
 *
 * A test registers it once with qreg_driver_register(&scripted_driver) (the
 * test_util helpers do) and opens a registry on "script:" (any text after the
 * colon; "script:fail-create" makes create() fail with QREG_EDRIVER).
 *
 * The SQL of each query is its script: words separated by ';' or white space,
 * "--" starts a comment that runs to the end of the line.
 *
 *   tag=N           names the job in the driver's records (0..SCRIPTED_MAX_TAGS-1)
 *   rows=N          rows produced (default 1)
 *   cols=N          columns (default 1, at most 64): c0 int = row index,
 *                   c1.. text "r<row>c<col>" padded with 'x' to width
 *   width=N         bytes of each text value (for byte budgets)
 *   sleep=MS        the statement takes MS on the worker before its rows
 *                   (a slow driver operation in flight); a cancel ends it early
 *   start_sleep=MS / row_sleep=MS / finish_sleep=MS   stalls at those points
 *   hang            sleeps until canceled (a safety cap records a violation)
 *   ignore_cancel   cancel is noted but the job runs to its natural end
 *                   (finishing late), and reports that natural outcome
 *   fail=now        execute() fails at once, inside the call
 *   fail=start      the worker fails before any row
 *   fail=row:K      the worker fails producing row K (1-based)
 *   fail=finish     the worker fails after the last row
 *   cancel_fail     the server-side cancel fails (on a worker): the driver then
 *                   drops the job (ERROR, connection not reusable)
 *   cancel_sleep=MS the cancel takes MS on a worker before it reaches the job
 *   gate=G          before anything else the statement waits, on its worker,
 *                   until the test opens gate G (scripted_gate_open): a job in
 *                   flight for exactly as long as the test needs, so a test
 *                   forces an interleaving instead of sleeping and hoping. A
 *                   cancel does not end the wait: it is noted and takes effect
 *                   at the next point where the job checks (ignore_cancel
 *                   still applies); a gate never opened ends after the hang
 *                   cap, as a violation
 *   finish_gate=G   the same wait after the rows, before the job ends: a
 *                   job that holds its result, still running, while the test
 *                   looks (result memory)
 *   not_reusable    a clean OK still says the connection may not be pooled
 *
 * An unknown word fails the job at once with a "database" error naming it.
 *
 * Global faults (connect and close have no script): scripted_fault_set()
 * makes calls number [nth, nth + count) from now at a call point fail, stall
 * or finish late. What each means at each point:
 *
 *   point    FAIL                          STALL (ms)           LATE (ms)
 *   CONNECT  connect reports an error      connect takes ms     = STALL
 *   START    job fails before rows         cancellable sleep    uncancellable sleep
 *   ROW      job fails at that row         cancellable sleep    uncancellable sleep
 *   FINISH   job fails after its rows      cancellable sleep    uncancellable sleep
 *   CANCEL   as cancel_fail                as cancel_sleep      cancel ignored
 *   CLOSE    close "fails" (still frees,   close takes ms       = STALL
 *            counted in close_failures)
 *
 * Checks (each breach is a violation: counted, the first message kept, and
 * test_close_checked() fails the test with it): a vtable call or a completion
 * off the loop thread; execute on a busy, closing or closed connection;
 * close on a connection with a job or a worker operation in flight, or twice;
 * a completion reported twice; destroy with connections still live; a hang
 * nobody canceled.
 *
 * Counters are process-wide atomics; scripted_reset() zeroes them (call it
 * before opening a registry, never while one is open).
 */
#ifndef QREG_TESTS_SCRIPTED_DRIVER_H
#define QREG_TESTS_SCRIPTED_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"

#define SCRIPTED_MAX_TAGS 4096
#define SCRIPTED_MAX_GATES 16
#define SCRIPTED_MAX_START_ORDER 65536

extern const qreg_driver_t scripted_driver;

typedef enum scripted_point {
  SCRIPTED_CONNECT = 0,
  SCRIPTED_START,
  SCRIPTED_ROW,
  SCRIPTED_FINISH,
  SCRIPTED_CANCEL,
  SCRIPTED_CLOSE,
  SCRIPTED_POINT_COUNT
} scripted_point_t;

typedef enum scripted_fault {
  SCRIPTED_FAULT_NONE = 0,
  SCRIPTED_FAULT_FAIL,
  SCRIPTED_FAULT_STALL,
  SCRIPTED_FAULT_LATE,
  SCRIPTED_FAULT_COUNT
} scripted_fault_t;

/* "connect", "start", "row", "finish", "cancel", "close". */
const char *scripted_point_name(scripted_point_t point);
/* "none", "fail", "stall", "late". */
const char *scripted_fault_name(scripted_fault_t fault);

/* Zeroes counters, records and violations and clears every fault. */
void scripted_reset(void);

/*
 * Makes calls nth .. nth + count - 1 (1-based, counted from now) at point get
 * fault, with ms for STALL and LATE. count 0 means every call from the nth on.
 * Replaces the point's previous rule; SCRIPTED_FAULT_NONE clears it.
 */
void scripted_fault_set(scripted_point_t point, scripted_fault_t fault, unsigned nth,
                        unsigned count, unsigned ms);

/* alive() answers !dead for idle pooled connections. */
void scripted_set_idle_dead(bool dead);

typedef struct scripted_counters {
  uint64_t calls[SCRIPTED_POINT_COUNT]; /* calls seen at each point */
  uint64_t connect_attempts;            /* connect() calls */
  uint64_t connect_failures;            /* reported failed */
  uint64_t opened;                      /* reported connected */
  uint64_t closed;                      /* close callbacks made */
  uint64_t close_failures;              /* closes made to "fail" (still released) */
  uint64_t live_now;                    /* connect() called .. close callback made */
  uint64_t live_max;                    /* the most live at once */
  uint64_t open_now;                    /* connected and not yet closed */
  uint64_t busy_now;                    /* execute() .. completion reported */
  uint64_t busy_max;
  uint64_t executes;     /* execute() calls */
  uint64_t completions;  /* completions reported */
  uint64_t outcomes[3];  /* by qreg_job_outcome_t */
  uint64_t cancels;      /* cancel() calls that reached a running job */
  uint64_t cancels_noop; /* cancel() calls with nothing to cancel */
  uint64_t violations;
} scripted_counters_t;

void scripted_counters_get(scripted_counters_t *out);

/* The first violation's message ("" when none). Valid until scripted_reset. */
const char *scripted_violation_message(void);

/* What the driver saw of the job(s) tagged tag (the last one when several). */
typedef struct scripted_tag_info {
  unsigned executes;    /* execute() calls with this tag */
  unsigned completions; /* completions reported for it */
  int outcome;          /* last reported qreg_job_outcome_t, -1 none */
  unsigned conn_serial; /* the connection it ran on */
  uint64_t start_seq;   /* 1-based position in the start order, 0 never */
  uint64_t cancel_ns;   /* first cancel() that reached it */
  uint64_t op_end_ns;   /* when its last worker operation returned */
  uint64_t complete_ns; /* when its completion was reported */
  uint64_t close_ns;    /* when close() was called on its connection after it */
} scripted_tag_info_t;

/* Copies the tag's record; false if tag is out of range. */
bool scripted_tag_info_get(unsigned tag, scripted_tag_info_t *out);

/* Copies up to max tags in the order their jobs were started; returns how
   many jobs started in all (may exceed max). */
size_t scripted_start_order(unsigned *tags, size_t max);

/* Gates (the script word gate=G, G < SCRIPTED_MAX_GATES). All start closed,
   and scripted_reset() closes them. Opening lets every job waiting at the
   gate go on, and later ones pass at once; closing holds the next arrivals
   again. Any thread. */
void scripted_gate_open(unsigned gate);
void scripted_gate_close(unsigned gate);
/* Jobs (and connects) waiting at the gate right now. */
unsigned scripted_gate_waiting(unsigned gate);
/* Makes every connect() from now on wait at gate (on its worker, before it
   reports) - a connect in flight for as long as the test needs; a gate of
   SCRIPTED_MAX_GATES or more stops it. scripted_reset() stops it too. */
void scripted_set_connect_gate(unsigned gate);

/* The driver's monotonic clock, nanoseconds (to compare with its records). */
uint64_t scripted_now_ns(void);

#endif /* QREG_TESTS_SCRIPTED_DRIVER_H */
