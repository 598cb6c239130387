/*
 * src/core/loop_internal.h - the part of the loop only the registry core
 * uses: creating the loop, starting and stopping its thread, waking it.
 * Drivers see core/loop.h alone.
 *
 * Life of a loop (each step once, in this order, by the registry):
 *
 *   qreg_loop_create()   libuv loop + an empty worker pool; no thread yet
 *   qreg_loop_start()    the loop thread starts; wake_cb runs on it after
 *                        every qreg_loop_wake()
 *   qreg_loop_stop()     queued work finishes (every done() runs), open
 *                        watches and timers are closed, the loop thread and
 *                        the workers are joined
 *   qreg_loop_destroy()  frees everything (stops first if that was skipped)
 */
#ifndef QREG_CORE_LOOP_INTERNAL_H
#define QREG_CORE_LOOP_INTERNAL_H

#include <stdbool.h>

#include "core/loop.h"

/*
 * Creates a loop whose worker pool grows on demand up to worker_threads_max
 * threads (at least 1). Returns 0, QREG_EINVAL, QREG_ENOMEM or QREG_ESYS.
 * Work may be queued before qreg_loop_start(); its done() waits for the loop.
 */
int qreg_loop_create(unsigned worker_threads_max, qreg_loop_t **out);

/*
 * Starts the loop thread. wake_cb (may be NULL) runs on the loop thread after
 * qreg_loop_wake(); several wakes before it runs give one call, as uv_async.
 * Returns 0, QREG_EINVAL (already started or stopped) or QREG_ESYS.
 */
int qreg_loop_start(qreg_loop_t *loop, void (*wake_cb)(void *arg), void *arg);

/* Makes wake_cb run soon on the loop thread. Any thread; a no-op once the
   loop has finished stopping. */
void qreg_loop_wake(qreg_loop_t *loop);

/* Whether the calling thread is this loop's thread (for asserts). */
bool qreg_loop_on_thread(const qreg_loop_t *loop);

/*
 * Stops the loop. Any thread except the loop thread. From the moment it is
 * called qreg_loop_work() refuses new work (QREG_ECLOSED); work already queued
 * or running still completes and its done() still runs exactly once on the
 * loop thread, while timers, watches and wake-ups keep working. Once no work
 * is left, every watch and timer still open is closed and freed (pointers the
 * owners hold become invalid), the loop thread ends and is joined, then the
 * workers are. A loop that was never started is run to the same end on the
 * calling thread. A second call does nothing.
 */
void qreg_loop_stop(qreg_loop_t *loop);

/* Frees the loop (stopping it first if needed). NULL is fine. */
void qreg_loop_destroy(qreg_loop_t *loop);

#endif /* QREG_CORE_LOOP_INTERNAL_H */
