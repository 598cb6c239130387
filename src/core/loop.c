/*
 * src/core/loop.c - one registry's event loop (libuv, on its own thread) and
 * its pool of worker threads; implements core/loop.h and core/loop_internal.h.
 *
 * Owns: the uv loop and its three async handles, the loop thread, the worker
 * threads, and every watch and timer until it is closed. It does not own the
 * qreg_work_t structs (their callers do) nor the fds it watches.
 *
 * Why our own pool and not uv_queue_work(): libuv's pool is process-global
 * and has 4 threads by default. Long SQLite statements of every registry in
 * the process would occupy all of them, and a cancel or close queued behind
 * them would wait for a statement to end - the very statement it is meant to
 * stop. Our pool belongs to one registry and grows up to max_connections + a
 * few, so blocking work never queues behind all the running statements.
 *
 * Threads and locks:
 *  - `lock` guards the work queue, the done queue, the counters and the flags
 *    other threads read (stopping, asyncs_closed, workers_exit).
 *  - uv_async_send() on the loop's handles is only called with `lock` held
 *    and only while !asyncs_closed, and the loop thread closes them only after
 *    setting asyncs_closed under `lock`: so no thread can touch an async
 *    handle that is being closed.
 *  - Watches, timers, the handle list and stop_seen belong to the loop thread.
 */
#include "core/loop_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "qreg.h"

/* Links every open watch and timer, so that stop can close what its owners
   left open. Loop thread only. */
typedef struct loop_handle {
  struct loop_handle *prev;
  struct loop_handle *next;
  uv_handle_t *handle; /* the uv handle of the watch or timer holding this */
} loop_handle_t;

struct qreg_poll {
  uv_poll_t poll; /* first: uv_close's callback frees through handle->data */
  int fd;         /* owned: a duplicate of the caller's descriptor, polled */
  loop_handle_t link;
  qreg_loop_t *loop;
  qreg_poll_cb cb;
  void *arg;
};

struct qreg_timer {
  uv_timer_t timer;
  loop_handle_t link;
  qreg_loop_t *loop;
  qreg_timer_cb cb;
  void *arg;
};

struct qreg_loop {
  uv_loop_t uv;          /* owned; run by the loop thread from start to stop */
  uv_async_t wake_async; /* owned; sent by qreg_loop_wake() (under lock) */
  uv_async_t done_async; /* owned; sent by workers when work completes (under lock) */
  uv_async_t stop_async; /* owned; sent once by qreg_loop_stop() (under lock) */

  /* Set by start before the thread exists, read only by the loop thread. */
  void (*wake_cb)(void *arg);
  void *wake_arg;

  /* Touched only by the thread calling create/start/stop/destroy. */
  pthread_t thread;
  bool thread_started;
  bool stop_called;
  bool stop_finished;

  /* Loop thread only. */
  bool stop_seen;         /* stop_async delivered: finish once work is done */
  loop_handle_t *handles; /* open watches and timers (not yet closing) */

  pthread_mutex_t lock;
  pthread_cond_t work_cond; /* workers wait here for work or workers_exit */
  /* Everything below is guarded by lock. */
  qreg_work_t *queue_head; /* FIFO of work not yet taken by a worker */
  qreg_work_t *queue_tail;
  size_t queued;
  qreg_work_t *done_head; /* FIFO of work whose done() is due, in completion order */
  qreg_work_t *done_tail;
  size_t outstanding; /* queued + running + done() not yet run */
  pthread_t *threads; /* owned array [threads_max]; [0, thread_count) are
                               running workers, joined by stop */
  unsigned threads_max;
  unsigned thread_count;
  unsigned idle_count; /* workers waiting on work_cond */
  bool stopping;       /* stop was called: new work is refused */
  bool asyncs_closed;  /* the async handles are closed: send nothing */
  bool workers_exit;   /* workers return once the queue is empty */
};

/* Which loop, if any, the current thread runs. Thread-local, so that
   qreg_loop_on_thread() reads nothing another thread writes. */
static _Thread_local const qreg_loop_t *loop_of_this_thread;

/* Maps a libuv error to ours. */
static int error_from_uv(int uv_error) {
  switch (uv_error) {
  case 0:
    return 0;
  case UV_ENOMEM:
    return QREG_ENOMEM;
  case UV_EINVAL:
  case UV_EBADF:
  case UV_EEXIST:
  case UV_ENOTSOCK:
  case UV_EPERM:
    return QREG_EINVAL;
  default:
    return QREG_ESYS;
  }
}

/* Starts a thread with every signal blocked: signals are for the program's
   own threads, never for the library's. */
static int spawn_thread(pthread_t *thread, void *(*thread_main)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(thread, NULL, thread_main, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc == 0 ? 0 : QREG_ESYS;
}

/* --- worker pool ---------------------------------------------------------- */

static void *worker_main(void *arg) {
  qreg_loop_t *loop = arg;
  pthread_mutex_lock(&loop->lock);
  for (;;) {
    while (loop->queue_head == NULL && !loop->workers_exit) {
      loop->idle_count++;
      pthread_cond_wait(&loop->work_cond, &loop->lock);
      loop->idle_count--;
    }
    qreg_work_t *work = loop->queue_head;
    if (work == NULL)
      break; /* workers_exit and nothing left */
    loop->queue_head = work->next;
    if (loop->queue_head == NULL)
      loop->queue_tail = NULL;
    loop->queued--;
    work->next = NULL;
    pthread_mutex_unlock(&loop->lock);

    work->work(work);

    pthread_mutex_lock(&loop->lock);
    bool was_empty = loop->done_head == NULL;
    if (was_empty)
      loop->done_head = work;
    else
      loop->done_tail->next = work;
    loop->done_tail = work;
    /* outstanding > 0 (this work), so the loop has not closed its asyncs. A
       non-empty done queue means a send is already on its way. */
    assert(!loop->asyncs_closed);
    if (was_empty)
      uv_async_send(&loop->done_async);
  }
  pthread_mutex_unlock(&loop->lock);
  return NULL;
}

int qreg_loop_work(qreg_loop_t *loop, qreg_work_t *work, qreg_work_fn fn, qreg_work_fn done) {
  if (loop == NULL || work == NULL || fn == NULL)
    return QREG_EINVAL;
  pthread_mutex_lock(&loop->lock);
  if (loop->stopping) {
    pthread_mutex_unlock(&loop->lock);
    return QREG_ECLOSED;
  }
  /* A new thread when the waiting workers are fewer than the works waiting
     for one (this one included). Created under the lock: at most threads_max
     times in the loop's life, and it keeps thread_count exact for stop. */
  if (loop->queued + 1 > loop->idle_count && loop->thread_count < loop->threads_max) {
    if (spawn_thread(&loop->threads[loop->thread_count], worker_main, loop) == 0) {
      loop->thread_count++;
    } else if (loop->thread_count == 0) {
      pthread_mutex_unlock(&loop->lock);
      return QREG_ESYS; /* no worker would ever run it */
    }
  }
  work->work = fn;
  work->done = done;
  work->next = NULL;
  if (loop->queue_tail == NULL)
    loop->queue_head = work;
  else
    loop->queue_tail->next = work;
  loop->queue_tail = work;
  loop->queued++;
  loop->outstanding++;
  pthread_cond_signal(&loop->work_cond);
  pthread_mutex_unlock(&loop->lock);
  return 0;
}

/* --- the loop thread -------------------------------------------------------- */

static void handle_link(qreg_loop_t *loop, loop_handle_t *link, uv_handle_t *handle) {
  link->handle = handle;
  link->prev = NULL;
  link->next = loop->handles;
  if (loop->handles != NULL)
    loop->handles->prev = link;
  loop->handles = link;
}

static void free_on_close(uv_handle_t *handle) {
  if (handle->type == UV_POLL)
    close(((qreg_poll_t *)handle->data)->fd);
  free(handle->data);
}

/* Unlinks and closes a watch's or timer's handle; the struct is freed by the
   close callback, once libuv no longer refers to it. */
static void handle_close(qreg_loop_t *loop, loop_handle_t *link) {
  if (link->prev != NULL)
    link->prev->next = link->next;
  else
    loop->handles = link->next;
  if (link->next != NULL)
    link->next->prev = link->prev;
  link->prev = link->next = NULL;
  uv_close(link->handle, free_on_close);
}

/* Ends the loop once stop was asked and no work is left: closes every handle,
   after which uv_run() returns. Loop thread. */
static void finish_if_stopped(qreg_loop_t *loop) {
  if (!loop->stop_seen)
    return;
  pthread_mutex_lock(&loop->lock);
  bool idle = loop->outstanding == 0;
  if (idle)
    loop->asyncs_closed = true;
  pthread_mutex_unlock(&loop->lock);
  if (!idle)
    return; /* the last done() will bring us back here */
  while (loop->handles != NULL)
    handle_close(loop, loop->handles);
  uv_close((uv_handle_t *)&loop->wake_async, NULL);
  uv_close((uv_handle_t *)&loop->done_async, NULL);
  uv_close((uv_handle_t *)&loop->stop_async, NULL);
}

/* Runs done() of every completed work, in completion order. */
static void on_done_async(uv_async_t *async) {
  qreg_loop_t *loop = async->data;
  pthread_mutex_lock(&loop->lock);
  qreg_work_t *work = loop->done_head;
  loop->done_head = loop->done_tail = NULL;
  pthread_mutex_unlock(&loop->lock);
  size_t ran = 0;
  while (work != NULL) {
    qreg_work_t *next = work->next; /* done() may free or requeue work */
    work->next = NULL;
    if (work->done != NULL)
      work->done(work);
    ran++;
    work = next;
  }
  pthread_mutex_lock(&loop->lock);
  loop->outstanding -= ran;
  pthread_mutex_unlock(&loop->lock);
  finish_if_stopped(loop);
}

static void on_wake_async(uv_async_t *async) {
  qreg_loop_t *loop = async->data;
  if (loop->wake_cb != NULL)
    loop->wake_cb(loop->wake_arg);
}

static void on_stop_async(uv_async_t *async) {
  qreg_loop_t *loop = async->data;
  loop->stop_seen = true;
  finish_if_stopped(loop);
}

static void *loop_thread_main(void *arg) {
  qreg_loop_t *loop = arg;
  /* Saved and restored for the never-started case, where a caller's thread
     runs this (and might itself be another loop's thread). */
  const qreg_loop_t *previous = loop_of_this_thread;
  loop_of_this_thread = loop;
  /* Returns once finish_if_stopped() closed every handle. */
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  loop_of_this_thread = previous;
  return NULL;
}

bool qreg_loop_on_thread(const qreg_loop_t *loop) {
  return loop != NULL && loop_of_this_thread == loop;
}

uint64_t qreg_loop_now_ms(void) {
  return uv_hrtime() / 1000000u;
}

/* --- life cycle ------------------------------------------------------------- */

/* Closes the async handles that were initialised and the uv loop; for a loop
   whose thread never ran. */
static void loop_close_unstarted(qreg_loop_t *loop, int asyncs) {
  uv_async_t *all[] = {&loop->wake_async, &loop->done_async, &loop->stop_async};
  for (int i = 0; i < asyncs; i++)
    uv_close((uv_handle_t *)all[i], NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT); /* runs the close callbacks */
  int rc = uv_loop_close(&loop->uv);
  assert(rc == 0);
  (void)rc;
}

int qreg_loop_create(unsigned worker_threads_max, qreg_loop_t **out) {
  if (out == NULL)
    return QREG_EINVAL;
  *out = NULL;
  if (worker_threads_max == 0)
    return QREG_EINVAL;
  qreg_loop_t *loop = calloc(1, sizeof *loop);
  if (loop == NULL)
    return QREG_ENOMEM;
  loop->threads = calloc(worker_threads_max, sizeof *loop->threads);
  if (loop->threads == NULL) {
    free(loop);
    return QREG_ENOMEM;
  }
  loop->threads_max = worker_threads_max;
  int rc = error_from_uv(uv_loop_init(&loop->uv));
  if (rc != 0) {
    free(loop->threads);
    free(loop);
    return rc;
  }
  uv_async_t *asyncs[] = {&loop->wake_async, &loop->done_async, &loop->stop_async};
  uv_async_cb callbacks[] = {on_wake_async, on_done_async, on_stop_async};
  for (int i = 0; i < 3; i++) {
    rc = error_from_uv(uv_async_init(&loop->uv, asyncs[i], callbacks[i]));
    if (rc != 0) {
      loop_close_unstarted(loop, i);
      free(loop->threads);
      free(loop);
      return rc;
    }
    asyncs[i]->data = loop;
  }
  pthread_mutex_init(&loop->lock, NULL);
  pthread_cond_init(&loop->work_cond, NULL);
  *out = loop;
  return 0;
}

int qreg_loop_start(qreg_loop_t *loop, void (*wake_cb)(void *arg), void *arg) {
  if (loop == NULL || loop->thread_started || loop->stop_called)
    return QREG_EINVAL;
  loop->wake_cb = wake_cb;
  loop->wake_arg = arg;
  /* pthread_create orders these writes before everything the thread does. */
  int rc = spawn_thread(&loop->thread, loop_thread_main, loop);
  if (rc != 0)
    return rc;
  loop->thread_started = true;
  return 0;
}

void qreg_loop_wake(qreg_loop_t *loop) {
  if (loop == NULL)
    return;
  pthread_mutex_lock(&loop->lock);
  if (!loop->asyncs_closed)
    uv_async_send(&loop->wake_async);
  pthread_mutex_unlock(&loop->lock);
}

void qreg_loop_stop(qreg_loop_t *loop) {
  assert(!qreg_loop_on_thread(loop)); /* it would join itself */
  if (loop == NULL || qreg_loop_on_thread(loop) || loop->stop_called)
    return;
  loop->stop_called = true;
  pthread_mutex_lock(&loop->lock);
  loop->stopping = true;
  uv_async_send(&loop->stop_async);
  pthread_mutex_unlock(&loop->lock);

  if (loop->thread_started) {
    pthread_join(loop->thread, NULL);
  } else {
    /* Never started: this thread plays the loop thread, so queued work
       still gets its done(). */
    loop_thread_main(loop);
  }

  pthread_mutex_lock(&loop->lock);
  assert(loop->outstanding == 0 && loop->queue_head == NULL);
  loop->workers_exit = true;
  pthread_cond_broadcast(&loop->work_cond);
  unsigned count = loop->thread_count; /* stopping: no more are spawned */
  pthread_mutex_unlock(&loop->lock);
  for (unsigned i = 0; i < count; i++)
    pthread_join(loop->threads[i], NULL);
  loop->stop_finished = true;
}

void qreg_loop_destroy(qreg_loop_t *loop) {
  if (loop == NULL)
    return;
  if (!loop->stop_finished)
    qreg_loop_stop(loop);
  int rc = uv_loop_close(&loop->uv);
  assert(rc == 0); /* every handle was closed by stop */
  (void)rc;
  pthread_cond_destroy(&loop->work_cond);
  pthread_mutex_destroy(&loop->lock);
  free(loop->threads);
  free(loop);
}

/* --- watches ---------------------------------------------------------------- */

static int events_to_uv(int events) {
  return ((events & QREG_POLL_READ) ? UV_READABLE : 0) |
         ((events & QREG_POLL_WRITE) ? UV_WRITABLE : 0);
}

static void on_poll(uv_poll_t *poll, int status, int uv_events) {
  qreg_poll_t *watch = poll->data;
  int events = ((uv_events & UV_READABLE) ? QREG_POLL_READ : 0) |
               ((uv_events & UV_WRITABLE) ? QREG_POLL_WRITE : 0);
  watch->cb(watch, status, events, watch->arg);
}

int qreg_poll_start(qreg_loop_t *loop, int fd, int events, qreg_poll_cb cb, void *arg,
                    qreg_poll_t **out) {
  if (out != NULL)
    *out = NULL;
  if (loop == NULL || cb == NULL || out == NULL || fd < 0 ||
      (events & ~(QREG_POLL_READ | QREG_POLL_WRITE)) != 0)
    return QREG_EINVAL;
  assert(qreg_loop_on_thread(loop));
  qreg_poll_t *watch = calloc(1, sizeof *watch);
  if (watch == NULL)
    return QREG_ENOMEM;
  /* The loop polls its own duplicate of fd. A library may close its socket
     before its owner can stop the watch (libpq does when the server goes
     away), and another thread may get the same number at once (a cancel
     request's socket): epoll would then be told about a descriptor that is
     no longer the watched one. The duplicate keeps the socket, and its
     number, until the watch is closed. */
  watch->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (watch->fd < 0) {
    int err = errno;
    free(watch);
    return err == EBADF ? QREG_EINVAL : QREG_ESYS; /* EMFILE, ENFILE */
  }
  /* libuv puts the descriptor in non-blocking mode here; every fd a driver
     watches (libpq's socket) already is. */
  int rc = uv_poll_init(&loop->uv, &watch->poll, watch->fd);
  if (rc != 0) {
    close(watch->fd);
    free(watch); /* never became a handle the loop knows */
    return error_from_uv(rc);
  }
  watch->poll.data = watch;
  watch->loop = loop;
  watch->cb = cb;
  watch->arg = arg;
  handle_link(loop, &watch->link, (uv_handle_t *)&watch->poll);
  if (events != 0 && (rc = uv_poll_start(&watch->poll, events_to_uv(events), on_poll)) != 0) {
    handle_close(loop, &watch->link);
    return error_from_uv(rc);
  }
  *out = watch;
  return 0;
}

int qreg_poll_update(qreg_poll_t *watch, int events) {
  if (watch == NULL || (events & ~(QREG_POLL_READ | QREG_POLL_WRITE)) != 0)
    return QREG_EINVAL;
  assert(qreg_loop_on_thread(watch->loop));
  int rc = events == 0 ? uv_poll_stop(&watch->poll)
                       : uv_poll_start(&watch->poll, events_to_uv(events), on_poll);
  return error_from_uv(rc);
}

void qreg_poll_close(qreg_poll_t *watch) {
  if (watch == NULL)
    return;
  assert(qreg_loop_on_thread(watch->loop));
  handle_close(watch->loop, &watch->link);
}

/* --- timers ----------------------------------------------------------------- */

static void on_timer(uv_timer_t *handle) {
  qreg_timer_t *timer = handle->data;
  /* cb may close this timer: the close only frees it on a later iteration. */
  timer->cb(timer, timer->arg);
}

int qreg_timer_start(qreg_loop_t *loop, uint64_t timeout_ms, qreg_timer_cb cb, void *arg,
                     qreg_timer_t **out) {
  if (out != NULL)
    *out = NULL;
  if (loop == NULL || cb == NULL || out == NULL)
    return QREG_EINVAL;
  assert(qreg_loop_on_thread(loop));
  qreg_timer_t *timer = calloc(1, sizeof *timer);
  if (timer == NULL)
    return QREG_ENOMEM;
  int rc = uv_timer_init(&loop->uv, &timer->timer);
  if (rc != 0) {
    free(timer);
    return error_from_uv(rc);
  }
  timer->timer.data = timer;
  timer->loop = loop;
  timer->cb = cb;
  timer->arg = arg;
  handle_link(loop, &timer->link, (uv_handle_t *)&timer->timer);
  if ((rc = uv_timer_start(&timer->timer, on_timer, timeout_ms, 0)) != 0) {
    handle_close(loop, &timer->link);
    return error_from_uv(rc);
  }
  *out = timer;
  return 0;
}

void qreg_timer_close(qreg_timer_t *timer) {
  if (timer == NULL)
    return;
  assert(qreg_loop_on_thread(timer->loop));
  handle_close(timer->loop, &timer->link);
}
