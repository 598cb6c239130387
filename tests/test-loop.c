/*
 * tests/test-loop.c - the registry's loop (src/core/loop.h, loop_internal.h)
 * on its own: work runs on a worker and its done() on the loop thread, each
 * exactly once, from many submitting threads at once; the pool grows past
 * blocked workers but never past its maximum; wake-ups coalesce but are never
 * lost; timers fire once and not after being closed; a watch on a pipe
 * reports readiness and can be paused; stop with work in flight still runs
 * every done() exactly once and closes what was left open.
 *
 * Waits are bounded only to catch hangs; nothing asserts on timing.
 */
/* cmocka.h needs these first; its own block keeps clang-format from sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/loop_internal.h"
#include "qreg.h"

#define BOUND_MS 20000u

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls cond every millisecond; fails the test after BOUND_MS. */
#define WAIT_UNTIL(cond)                                                                           \
  do {                                                                                             \
    uint64_t wait_start_ = qreg_loop_now_ms();                                                     \
    while (!(cond)) {                                                                              \
      if (qreg_loop_now_ms() - wait_start_ > BOUND_MS)                                             \
        fail_msg("timed out waiting for %s", #cond);                                               \
      sleep_ms(1);                                                                                 \
    }                                                                                              \
  } while (0)

/* --- running a function on the loop thread -------------------------------- */

/* The done() of a work that does nothing runs on the loop thread: the way a
   test gets there to start timers and watches. */
typedef struct loop_call {
  qreg_work_t work; /* first: done() gets the work back */
  void (*fn)(void *arg);
  void *arg;
  _Atomic bool ran;
} loop_call_t;

static void loop_call_work(qreg_work_t *work) {
  (void)work;
}

static void loop_call_done(qreg_work_t *work) {
  loop_call_t *call = (loop_call_t *)work;
  call->fn(call->arg);
  atomic_store(&call->ran, true);
}

/* Runs fn(arg) on the loop thread and returns once it has. */
static void on_loop(qreg_loop_t *loop, void (*fn)(void *arg), void *arg) {
  loop_call_t call = {.fn = fn, .arg = arg};
  assert_int_equal(qreg_loop_work(loop, &call.work, loop_call_work, loop_call_done), 0);
  WAIT_UNTIL(atomic_load(&call.ran));
}

static void nothing(void *arg) {
  (void)arg;
}

static qreg_loop_t *start_loop(unsigned workers, void (*wake_cb)(void *), void *arg) {
  qreg_loop_t *loop = NULL;
  assert_int_equal(qreg_loop_create(workers, &loop), 0);
  assert_non_null(loop);
  assert_int_equal(qreg_loop_start(loop, wake_cb, arg), 0);
  return loop;
}

/* --- work ------------------------------------------------------------------- */

typedef struct counted_work {
  qreg_work_t work;
  qreg_loop_t *loop;
  _Atomic bool *gate;   /* if set, work waits until it opens */
  _Atomic int *running; /* if set: concurrency tracking */
  _Atomic int *max_running;
  unsigned sleep_ms;
  _Atomic int work_runs;
  _Atomic int done_runs;
  _Atomic bool work_on_loop_thread;  /* must stay false */
  _Atomic bool done_off_loop_thread; /* must stay false */
  _Atomic bool done_before_work;     /* must stay false */
} counted_work_t;

static _Atomic int total_done;

static void counted_work_fn(qreg_work_t *work) {
  counted_work_t *w = (counted_work_t *)work;
  if (qreg_loop_on_thread(w->loop))
    atomic_store(&w->work_on_loop_thread, true);
  int now = 0;
  if (w->running != NULL) {
    now = atomic_fetch_add(w->running, 1) + 1;
    int max = atomic_load(w->max_running);
    while (now > max && !atomic_compare_exchange_weak(w->max_running, &max, now))
      ;
  }
  if (w->gate != NULL) {
    uint64_t start = qreg_loop_now_ms();
    while (!atomic_load(w->gate) && qreg_loop_now_ms() - start < BOUND_MS)
      sleep_ms(1);
  }
  if (w->sleep_ms > 0)
    sleep_ms(w->sleep_ms);
  if (w->running != NULL)
    atomic_fetch_sub(w->running, 1);
  atomic_fetch_add(&w->work_runs, 1);
}

static void counted_done_fn(qreg_work_t *work) {
  counted_work_t *w = (counted_work_t *)work;
  if (!qreg_loop_on_thread(w->loop))
    atomic_store(&w->done_off_loop_thread, true);
  if (atomic_load(&w->work_runs) != 1)
    atomic_store(&w->done_before_work, true);
  atomic_fetch_add(&w->done_runs, 1);
  atomic_fetch_add(&total_done, 1);
}

static void assert_ran_once(counted_work_t *works, size_t count) {
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(atomic_load(&works[i].work_runs), 1);
    assert_int_equal(atomic_load(&works[i].done_runs), 1);
    assert_false(atomic_load(&works[i].work_on_loop_thread));
    assert_false(atomic_load(&works[i].done_off_loop_thread));
    assert_false(atomic_load(&works[i].done_before_work));
  }
}

enum {
  SUBMITTERS = 4,
  WORKS_PER_SUBMITTER = 500
};
#define TOTAL_WORKS ((size_t)SUBMITTERS * WORKS_PER_SUBMITTER)
/* A delay that never passes during a test. */
#define HOUR_MS ((uint64_t)3600 * 1000)

typedef struct submitter {
  qreg_loop_t *loop;
  counted_work_t *works;
  _Atomic int failures;
} submitter_t;

static void *submit_all(void *arg) {
  submitter_t *s = arg;
  for (size_t i = 0; i < WORKS_PER_SUBMITTER; i++) {
    s->works[i].loop = s->loop;
    s->works[i].sleep_ms = i % 100 == 0 ? 1 : 0;
    if (qreg_loop_work(s->loop, &s->works[i].work, counted_work_fn, counted_done_fn) != 0)
      atomic_fetch_add(&s->failures, 1);
  }
  return NULL;
}

/* Several threads queue many works at once: each work runs once on a worker,
   each done() once on the loop thread, after its work. */
static void work_from_many_threads(void **state) {
  (void)state;
  atomic_store(&total_done, 0);
  qreg_loop_t *loop = start_loop(4, NULL, NULL);
  assert_false(qreg_loop_on_thread(loop));
  counted_work_t *works = calloc(TOTAL_WORKS, sizeof *works);
  assert_non_null(works);
  submitter_t submitters[SUBMITTERS];
  pthread_t threads[SUBMITTERS];
  for (int i = 0; i < SUBMITTERS; i++) {
    submitters[i] = (submitter_t){.loop = loop, .works = works + (size_t)i * WORKS_PER_SUBMITTER};
    assert_int_equal(pthread_create(&threads[i], NULL, submit_all, &submitters[i]), 0);
  }
  for (int i = 0; i < SUBMITTERS; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(atomic_load(&submitters[i].failures), 0);
  }
  WAIT_UNTIL((size_t)atomic_load(&total_done) == TOTAL_WORKS);
  qreg_loop_stop(loop);
  assert_ran_once(works, TOTAL_WORKS);
  assert_int_equal(atomic_load(&total_done), TOTAL_WORKS);
  qreg_loop_destroy(loop);
  free(works);
}

/* Works blocked on workers do not hold up a new one while the pool may still
   grow; and the pool never runs more works at once than its maximum. */
static void pool_grows_up_to_its_maximum(void **state) {
  (void)state;
  atomic_store(&total_done, 0);
  qreg_loop_t *loop = start_loop(4, NULL, NULL);
  _Atomic bool gate = false;
  _Atomic int running = 0, max_running = 0;
  counted_work_t blocked[3] = {0};
  for (int i = 0; i < 3; i++) {
    blocked[i] = (counted_work_t){.loop = loop, .gate = &gate};
    assert_int_equal(qreg_loop_work(loop, &blocked[i].work, counted_work_fn, counted_done_fn), 0);
  }
  counted_work_t quick = {.loop = loop};
  assert_int_equal(qreg_loop_work(loop, &quick.work, counted_work_fn, counted_done_fn), 0);
  /* Three workers are stuck behind the gate: a fourth must run this one. */
  WAIT_UNTIL(atomic_load(&quick.done_runs) == 1);
  assert_int_equal(atomic_load(&total_done), 1);
  atomic_store(&gate, true);
  WAIT_UNTIL(atomic_load(&total_done) == 4);
  assert_ran_once(blocked, 3);
  qreg_loop_stop(loop);
  qreg_loop_destroy(loop);

  /* With at most 2 workers, 12 slow works never run more than 2 at a time. */
  atomic_store(&total_done, 0);
  loop = start_loop(2, NULL, NULL);
  counted_work_t slow[12] = {0};
  for (int i = 0; i < 12; i++) {
    slow[i] = (counted_work_t){
        .loop = loop, .sleep_ms = 3, .running = &running, .max_running = &max_running};
    assert_int_equal(qreg_loop_work(loop, &slow[i].work, counted_work_fn, counted_done_fn), 0);
  }
  WAIT_UNTIL(atomic_load(&total_done) == 12);
  assert_true(atomic_load(&max_running) >= 1);
  assert_true(atomic_load(&max_running) <= 2);
  assert_ran_once(slow, 12);
  qreg_loop_stop(loop);
  qreg_loop_destroy(loop);
}

/* --- wake-ups ------------------------------------------------------------- */

typedef struct wake_state {
  _Atomic int calls;
  qreg_loop_t *_Atomic loop; /* set after create, read by the wake callback */
  _Atomic bool off_thread;   /* must stay false */
} wake_state_t;

static void count_wake(void *arg) {
  wake_state_t *w = arg;
  if (!qreg_loop_on_thread(atomic_load(&w->loop)))
    atomic_store(&w->off_thread, true);
  atomic_fetch_add(&w->calls, 1);
}

static void *wake_many(void *arg) {
  qreg_loop_t *loop = arg;
  for (int i = 0; i < 1000; i++)
    qreg_loop_wake(loop);
  return NULL;
}

/* Wakes from many threads coalesce (at most one call per wake) and are never
   lost (a wake after the last call brings another). */
static void wakes_coalesce_and_are_not_lost(void **state) {
  (void)state;
  wake_state_t wake = {0};
  qreg_loop_t *loop = NULL;
  assert_int_equal(qreg_loop_create(2, &loop), 0);
  atomic_store(&wake.loop, loop);
  assert_int_equal(qreg_loop_start(loop, count_wake, &wake), 0);
  assert_int_equal(qreg_loop_start(loop, count_wake, &wake), QREG_EINVAL); /* twice */
  pthread_t threads[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, wake_many, loop), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(threads[i], NULL);
  WAIT_UNTIL(atomic_load(&wake.calls) >= 1);
  for (int round = 0; round < 20; round++) {
    int before = atomic_load(&wake.calls);
    qreg_loop_wake(loop);
    WAIT_UNTIL(atomic_load(&wake.calls) > before);
  }
  qreg_loop_stop(loop);
  qreg_loop_wake(loop); /* after stop: nothing happens */
  assert_true(atomic_load(&wake.calls) <= 4 * 1000 + 20);
  assert_false(atomic_load(&wake.off_thread));
  qreg_loop_destroy(loop);
}

/* --- timers ------------------------------------------------------------------ */

enum {
  T_LATE,
  T_SOON,
  T_ZERO,
  T_CLOSED,
  T_SELF_CLOSING,
  T_LEFT_OPEN,
  T_COUNT
};

typedef struct timer_test {
  qreg_loop_t *loop;
  qreg_timer_t *timers[T_COUNT]; /* loop thread only */
  _Atomic int fired[T_COUNT];
  _Atomic int closed_had_fired_when_late_fired; /* -1 until T_LATE fires */
  _Atomic bool off_thread;
} timer_test_t;

typedef struct timer_arg {
  timer_test_t *test;
  int which;
} timer_arg_t;

static timer_arg_t timer_args[T_COUNT];

static void timer_fired(qreg_timer_t *timer, void *arg) {
  timer_arg_t *a = arg;
  timer_test_t *t = a->test;
  if (!qreg_loop_on_thread(t->loop) || timer != t->timers[a->which])
    atomic_store(&t->off_thread, true);
  atomic_fetch_add(&t->fired[a->which], 1);
  if (a->which == T_LATE)
    atomic_store(&t->closed_had_fired_when_late_fired, atomic_load(&t->fired[T_CLOSED]));
  if (a->which == T_SELF_CLOSING) {
    qreg_timer_close(timer); /* a callback may close its own timer */
    t->timers[T_SELF_CLOSING] = NULL;
  }
}

static void start_timers(void *arg) {
  timer_test_t *t = arg;
  static const uint64_t delays[T_COUNT] = {40, 2, 0, 5, 10, HOUR_MS};
  for (int i = 0; i < T_COUNT; i++) {
    timer_args[i] = (timer_arg_t){t, i};
    assert_int_equal(
        qreg_timer_start(t->loop, delays[i], timer_fired, &timer_args[i], &t->timers[i]), 0);
  }
  /* Closed before it could fire; T_LATE fires later, so it would have by then. */
  qreg_timer_close(t->timers[T_CLOSED]);
  t->timers[T_CLOSED] = NULL;
}

static void close_fired_timers(void *arg) {
  timer_test_t *t = arg;
  for (int i = T_LATE; i <= T_ZERO; i++) {
    qreg_timer_close(t->timers[i]); /* after firing: frees it */
    t->timers[i] = NULL;
  }
  /* T_LEFT_OPEN stays open: stop closes and frees it. */
}

/* Timers fire once each, on the loop thread; a closed one never fires; one
   may close itself in its callback; one left open is closed by stop. */
static void timers_fire_once(void **state) {
  (void)state;
  timer_test_t t = {0};
  atomic_store(&t.closed_had_fired_when_late_fired, -1);
  t.loop = start_loop(2, NULL, NULL);
  on_loop(t.loop, start_timers, &t);
  WAIT_UNTIL(atomic_load(&t.fired[T_LATE]) == 1 && atomic_load(&t.fired[T_SOON]) == 1 &&
             atomic_load(&t.fired[T_ZERO]) == 1 && atomic_load(&t.fired[T_SELF_CLOSING]) == 1);
  on_loop(t.loop, close_fired_timers, &t);
  assert_int_equal(atomic_load(&t.closed_had_fired_when_late_fired), 0);
  assert_int_equal(atomic_load(&t.fired[T_CLOSED]), 0);
  assert_int_equal(atomic_load(&t.fired[T_LEFT_OPEN]), 0);
  assert_false(atomic_load(&t.off_thread));
  qreg_loop_stop(t.loop); /* closes T_LEFT_OPEN: ASan/valgrind see no leak */
  for (int i = 0; i < T_COUNT; i++)
    assert_int_equal(atomic_load(&t.fired[i]), i == T_CLOSED || i == T_LEFT_OPEN ? 0 : 1);
  qreg_loop_destroy(t.loop);
}

/* --- watches ------------------------------------------------------------------ */

typedef struct watch_test {
  qreg_loop_t *loop;
  int fds[2];
  qreg_poll_t *reader; /* loop thread only */
  qreg_poll_t *writer;
  _Atomic int reads;
  _Atomic int writable;
  _Atomic bool bad; /* a callback saw something wrong */
  _Atomic int start_rc;
} watch_test_t;

static void on_readable(qreg_poll_t *watch, int status, int events, void *arg) {
  watch_test_t *w = arg;
  char byte;
  if (!qreg_loop_on_thread(w->loop) || watch != w->reader || status != 0 ||
      events != QREG_POLL_READ || read(w->fds[0], &byte, 1) != 1)
    atomic_store(&w->bad, true);
  if (atomic_fetch_add(&w->reads, 1) + 1 == 2) {
    qreg_poll_close(watch); /* cb never runs again */
    w->reader = NULL;
  }
}

static void on_writable(qreg_poll_t *watch, int status, int events, void *arg) {
  watch_test_t *w = arg;
  if (watch != w->writer || status != 0 || events != QREG_POLL_WRITE)
    atomic_store(&w->bad, true);
  /* A pipe stays writable: without the pause this would run on every
     iteration of the loop. */
  if (qreg_poll_update(watch, 0) != 0)
    atomic_store(&w->bad, true);
  atomic_fetch_add(&w->writable, 1);
}

static void start_watches(void *arg) {
  watch_test_t *w = arg;
  int rc = qreg_poll_start(w->loop, w->fds[0], QREG_POLL_READ, on_readable, w, &w->reader);
  if (rc == 0)
    rc = qreg_poll_start(w->loop, w->fds[1], QREG_POLL_WRITE, on_writable, w, &w->writer);
  atomic_store(&w->start_rc, rc);
}

static void resume_writer(void *arg) {
  watch_test_t *w = arg;
  if (qreg_poll_update(w->writer, QREG_POLL_WRITE) != 0)
    atomic_store(&w->bad, true);
}

static void close_writer(void *arg) {
  watch_test_t *w = arg;
  qreg_poll_close(w->writer);
  w->writer = NULL;
}

static void bad_watch_arguments(void *arg) {
  watch_test_t *w = arg;
  qreg_poll_t *watch = (qreg_poll_t *)&watch; /* must be reset to NULL */
  int rc = qreg_poll_start(w->loop, -1, QREG_POLL_READ, on_readable, w, &watch);
  if (rc != QREG_EINVAL || watch != NULL)
    atomic_store(&w->bad, true);
  if (qreg_poll_start(w->loop, w->fds[0], 8, on_readable, w, &watch) != QREG_EINVAL)
    atomic_store(&w->bad, true);
}

/* A watch on a pipe reports readability once per byte written (the callback
   reads it), stops after close; a paused writable watch stays quiet until
   resumed. */
static void watch_reports_pipe_readiness(void **state) {
  (void)state;
  watch_test_t w = {0};
  assert_int_equal(pipe(w.fds), 0);
  w.loop = start_loop(2, NULL, NULL);
  on_loop(w.loop, start_watches, &w);
  assert_int_equal(atomic_load(&w.start_rc), 0);
  on_loop(w.loop, bad_watch_arguments, &w);

  WAIT_UNTIL(atomic_load(&w.writable) == 1);
  assert_int_equal(write(w.fds[1], "a", 1), 1);
  WAIT_UNTIL(atomic_load(&w.reads) == 1);
  assert_int_equal(write(w.fds[1], "b", 1), 1);
  WAIT_UNTIL(atomic_load(&w.reads) == 2); /* now closed */
  assert_int_equal(write(w.fds[1], "c", 1), 1);
  /* Two round trips through the loop: several iterations with the pipe both
     readable (closed watch) and writable (paused watch). */
  on_loop(w.loop, nothing, NULL);
  on_loop(w.loop, nothing, NULL);
  assert_int_equal(atomic_load(&w.reads), 2);
  assert_int_equal(atomic_load(&w.writable), 1);

  on_loop(w.loop, resume_writer, &w);
  WAIT_UNTIL(atomic_load(&w.writable) == 2);
  on_loop(w.loop, close_writer, &w);
  assert_false(atomic_load(&w.bad));
  qreg_loop_stop(w.loop);
  qreg_loop_destroy(w.loop);
  close(w.fds[0]);
  close(w.fds[1]);
}

/* --- stop ---------------------------------------------------------------------- */

typedef struct stop_test {
  qreg_loop_t *loop;
  _Atomic int requeue_refused; /* done() callbacks that got QREG_ECLOSED */
  _Atomic int requeue_other;
  qreg_work_t requeue_work[64];
  qreg_timer_t *timer; /* left open: stop closes it */
  _Atomic bool timer_fired;
} stop_test_t;

static stop_test_t *stop_test;

/* done() that also tries to queue more work: refused once stop began. */
static void done_and_requeue(qreg_work_t *work) {
  counted_done_fn(work);
  int i = atomic_load(&stop_test->requeue_refused) + atomic_load(&stop_test->requeue_other);
  int rc = qreg_loop_work(stop_test->loop, &stop_test->requeue_work[i % 64], counted_work_fn,
                          counted_done_fn);
  if (rc == QREG_ECLOSED)
    atomic_fetch_add(&stop_test->requeue_refused, 1);
  else
    atomic_fetch_add(&stop_test->requeue_other, 1);
}

static void *stop_loop(void *arg) {
  qreg_loop_stop(arg);
  return NULL;
}

static void must_not_fire(qreg_timer_t *timer, void *arg) {
  (void)timer;
  atomic_store((_Atomic bool *)arg, true);
}

static void start_long_timer(void *arg) {
  stop_test_t *s = arg;
  assert_int_equal(qreg_timer_start(s->loop, HOUR_MS, must_not_fire, &s->timer_fired, &s->timer),
                   0);
}

/* Stop while works are queued and running: every done() still runs exactly
   once, new work is refused from the moment stop begins, and a timer left
   open is closed. */
static void stop_runs_every_done(void **state) {
  (void)state;
  enum {
    QUEUED = 40,
    EXTRA_MAX = 1000
  };
  atomic_store(&total_done, 0);
  stop_test_t s = {0};
  stop_test = &s;
  s.loop = start_loop(3, NULL, NULL);
  on_loop(s.loop, start_long_timer, &s);
  _Atomic bool gate = false;
  counted_work_t *works = calloc(QUEUED + EXTRA_MAX, sizeof *works);
  assert_non_null(works);
  for (int i = 0; i < QUEUED; i++) {
    works[i] = (counted_work_t){.loop = s.loop, .gate = &gate};
    assert_int_equal(qreg_loop_work(s.loop, &works[i].work, counted_work_fn, done_and_requeue), 0);
  }
  pthread_t stopper;
  assert_int_equal(pthread_create(&stopper, NULL, stop_loop, s.loop), 0);
  /* Works queued until stop begins must complete too; then QREG_ECLOSED. */
  int queued = QUEUED;
  for (;;) {
    assert_true(queued < QUEUED + EXTRA_MAX);
    works[queued] = (counted_work_t){.loop = s.loop, .gate = &gate};
    int rc = qreg_loop_work(s.loop, &works[queued].work, counted_work_fn, counted_done_fn);
    if (rc == QREG_ECLOSED)
      break;
    assert_int_equal(rc, 0);
    queued++;
    sleep_ms(1);
  }
  atomic_store(&gate, true); /* the works finish while stop waits */
  pthread_join(stopper, NULL);
  assert_int_equal(atomic_load(&total_done), queued);
  assert_ran_once(works, (size_t)queued);
  assert_int_equal(atomic_load(&s.requeue_refused), QUEUED);
  assert_int_equal(atomic_load(&s.requeue_other), 0);
  assert_false(atomic_load(&s.timer_fired));
  qreg_loop_stop(s.loop); /* a second stop does nothing */
  qreg_loop_destroy(s.loop);
  free(works);
}

/* A loop stopped without ever being started still runs queued work and its
   done() (on the stopping thread); one never used is simply freed. */
static void stop_without_start(void **state) {
  (void)state;
  atomic_store(&total_done, 0);
  qreg_loop_t *loop = NULL;
  assert_int_equal(qreg_loop_create(2, &loop), 0);
  counted_work_t works[5] = {0};
  for (int i = 0; i < 5; i++) {
    works[i].loop = loop;
    assert_int_equal(qreg_loop_work(loop, &works[i].work, counted_work_fn, counted_done_fn), 0);
  }
  qreg_loop_stop(loop);
  assert_ran_once(works, 5);
  assert_int_equal(qreg_loop_start(loop, NULL, NULL), QREG_EINVAL);
  qreg_loop_destroy(loop);

  assert_int_equal(qreg_loop_create(1, &loop), 0);
  qreg_loop_destroy(loop); /* destroy alone stops */
  qreg_loop_destroy(NULL);

  assert_int_equal(qreg_loop_create(0, &loop), QREG_EINVAL);
  assert_null(loop);
  assert_int_equal(qreg_loop_create(1, NULL), QREG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(work_from_many_threads),
      cmocka_unit_test(pool_grows_up_to_its_maximum),
      cmocka_unit_test(wakes_coalesce_and_are_not_lost),
      cmocka_unit_test(timers_fire_once),
      cmocka_unit_test(watch_reports_pipe_readiness),
      cmocka_unit_test(stop_runs_every_done),
      cmocka_unit_test(stop_without_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
