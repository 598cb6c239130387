/*
 * src/core/loop.h - the loop facilities a registry lends its driver.
 *
 * Each registry owns one qreg_loop_t: a libuv loop running on its own thread,
 * plus a pool of worker threads for blocking calls (SQLite stepping, PQcancel,
 * opening files). Drivers never include uv.h; they get exactly these three
 * things, in the spirit of hiredis's adapters:
 *
 *   - qreg_loop_work():  run a blocking function on a worker, then a callback
 *                        on the loop thread;
 *   - qreg_poll_*():    be told on the loop thread when a socket is readable
 *                        or writable;
 *   - qreg_timer_*():    be called back on the loop thread after a delay.
 *
 * Thread rules: every function here except qreg_loop_work() must be called on
 * the loop thread; qreg_loop_work() may be called from any thread. Every
 * callback runs on the loop thread.
 */
#ifndef QREG_CORE_LOOP_H
#define QREG_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct qreg_loop qreg_loop_t;

/* A unit of blocking work. The caller owns the struct (usually embedded in its
   own object) and must keep it alive until done() has been called. */
typedef struct qreg_work qreg_work_t;
typedef void (*qreg_work_fn)(qreg_work_t *work);
struct qreg_work {
  qreg_work_fn work; /* runs on a worker thread */
  qreg_work_fn done; /* then runs on the loop thread, exactly once */
  qreg_work_t *next; /* private to the loop */
};

/*
 * Queues work->work to run on a worker thread; work->done follows on the loop
 * thread. Any thread. The pool has enough threads that a blocking call queued
 * here (a cancel, a close) never waits behind max_connections long-running
 * statements. Returns 0; QREG_ECLOSED once the loop has been told to stop,
 * QREG_ESYS if no worker thread could be started, QREG_EINVAL for NULL
 * arguments (in each case neither function will run).
 */
int qreg_loop_work(qreg_loop_t *loop, qreg_work_t *work, qreg_work_fn fn, qreg_work_fn done);

/* Milliseconds of a monotonic clock, for measuring intervals. Any thread. */
uint64_t qreg_loop_now_ms(void);

/* --- socket readiness --------------------------------------------------- */

enum {
  QREG_POLL_READ = 1,
  QREG_POLL_WRITE = 2
};

typedef struct qreg_poll qreg_poll_t;
/* status is 0 or a negative errno-style code from the poller; events is the
   subset of QREG_POLL_* that is ready. A negative status means the poller
   has already stopped this watch (libuv does so on an epoll error): nothing
   more will be reported until qreg_poll_update() re-arms it, so treat the
   socket as broken - a driver that keeps waiting would wait for ever. The
   watch must still be closed with qreg_poll_close(). */
typedef void (*qreg_poll_cb)(qreg_poll_t *watch, int status, int events, void *arg);

/* Starts watching fd for events (QREG_POLL_* bits). Loop thread. */
int qreg_poll_start(qreg_loop_t *loop, int fd, int events, qreg_poll_cb cb, void *arg,
                    qreg_poll_t **out);
/* Changes the events watched; 0 pauses. Loop thread. */
int qreg_poll_update(qreg_poll_t *watch, int events);
/* Stops watching: cb is never called again; the watch is freed by the loop
   later. The fd itself is not closed (it belongs to the caller). Call it
   before the fd is closed. Loop thread. */
void qreg_poll_close(qreg_poll_t *watch);

/* --- timers ------------------------------------------------------------- */

typedef struct qreg_timer qreg_timer_t;
typedef void (*qreg_timer_cb)(qreg_timer_t *timer, void *arg);

/* Calls cb(arg) once, timeout_ms from now, on the loop thread. */
int qreg_timer_start(qreg_loop_t *loop, uint64_t timeout_ms, qreg_timer_cb cb, void *arg,
                     qreg_timer_t **out);
/* Cancels (if it has not fired) and frees the timer; cb will not run after
   this. Also call it after the timer fired, to free it. Loop thread. */
void qreg_timer_close(qreg_timer_t *timer);

#endif /* QREG_CORE_LOOP_H */
