/*
 * tests/support/test_util.h - helpers the core's cmocka tests share: opening
 * a registry on the scripted driver, running and waiting for queries with a
 * bound that only catches hangs, and the closing check every test ends with
 * (qreg_close, then opened == closed through qreg_stats and through the
 * scripted driver's own counters, no contract violation, qreg_destroy).
 *
 * Include after <cmocka.h> and its prerequisites. Owns nothing: every helper
 * returns what it creates to the caller.
 */
#ifndef QREG_TESTS_TEST_UTIL_H
#define QREG_TESTS_TEST_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

#include "qreg.h"
#include "support/scripted_driver.h"

/* Bound on any wait in a test: long enough never to fire on a slow or
   sanitized machine, short enough that a hang fails instead of stalling. */
#define TEST_BOUND_MS 20000u

/* Registers the scripted driver (once per process) and resets its records. */
void test_driver_setup(void);

/* Defaults with db_url "script:". */
void test_config(qreg_config_t *config);

/* test_driver_setup(), then qreg_open(config or the defaults); fails the test
   if it does not open. */
qreg_t *test_open(const qreg_config_t *config);

/* qreg_execute that must succeed; returns the id. */
qreg_id_t test_execute(qreg_t *reg, const char *sql, const qreg_options_t *options);
/* The same with per-query timeout_ms / ttl_ms / max_rows (0 = default). */
qreg_id_t test_execute_opts(qreg_t *reg, const char *sql, uint64_t timeout_ms, uint64_t ttl_ms,
                            uint64_t max_rows);

/* qreg_wait (bounded) that must return 0; returns the terminal status. */
qreg_status_t test_wait(qreg_t *reg, const qreg_id_t *id);

/* The record's status through a snapshot (fails if it has none). */
qreg_status_t test_status(qreg_t *reg, const qreg_id_t *id);

/* Polls (1 ms) until the record has the status; fails after TEST_BOUND_MS. */
void test_wait_status(qreg_t *reg, const qreg_id_t *id, qreg_status_t status);

/* Polls until the record is gone (QREG_ENOTFOUND), calling
   qreg_prune_expired each time; returns the sum of what it returned. */
int test_wait_pruned(qreg_t *reg, const qreg_id_t *id);

/* Polls until the scripted driver's counter (read by the getter) reaches at
   least value; fails after TEST_BOUND_MS. */
typedef uint64_t (*test_counter_fn)(const scripted_counters_t *c);
void test_wait_counter(test_counter_fn counter, uint64_t value, const char *what);
uint64_t test_counter_executes(const scripted_counters_t *c);
uint64_t test_counter_closed(const scripted_counters_t *c);
uint64_t test_counter_opened(const scripted_counters_t *c);
uint64_t test_counter_completions(const scripted_counters_t *c);

/* Forced interleavings, instead of sleeping and hoping another thread got
   there first. Each polls (1 ms) and fails the test after TEST_BOUND_MS. */
/* Until at least count jobs wait at the scripted driver's gate. */
void test_wait_gate(unsigned gate, unsigned count);
/* Until at least count threads are blocked in qreg_wait, qreg_cancel,
   qreg_prune_expired or qreg_close on reg (qreg__registry_blocked_callers);
   returns the number seen. */
unsigned test_wait_blocked_callers(qreg_t *reg, unsigned count);

/* Until the cancel of the job tagged tag has reached the driver. */
void test_wait_cancel_reached(unsigned tag);

/* A thread that opens a scripted gate once something has happened, so the
   main thread can make a call that blocks until then (qreg_cancel,
   qreg_close). It opens the gate once the cancel of the job tagged tag has
   reached the driver or, when closing is set, once the registry refuses
   calls because qreg_close has begun. It never fails the test itself
   (cmocka asserts belong to the main thread): after TEST_BOUND_MS it opens
   the gate anyway, so nothing hangs, and test_gate_opener_join fails the
   test. */
typedef struct test_gate_opener {
  unsigned gate;
  unsigned tag;    /* unless closing is set */
  qreg_t *closing; /* else: the registry whose close is awaited */
  pthread_t thread;
  atomic_bool seen; /* the condition held when the gate opened */
} test_gate_opener_t;
void test_gate_opener_start(test_gate_opener_t *opener);
void test_gate_opener_join(test_gate_opener_t *opener);

/* Fails the test with the driver's message if it saw a contract violation. */
void test_assert_no_violation(void);

/* Checks the registry's and the driver's connection counters agree that
   nothing is in use right now (all released), without closing. */
void test_assert_all_released(qreg_t *reg);

/* After qreg_close returned: qreg_stats opened == closed, nothing in use,
   idle or opening; the driver's opened == closed, nothing live or busy, every
   execute completed exactly once, no violation; both agree. */
void test_check_after_close(qreg_t *reg);

/* qreg_close (must return 0), then: qreg_stats opened == closed, nothing in
   use, idle or opening; the driver's opened == closed, nothing live or busy,
   every execute completed exactly once, no violation; qreg_destroy. */
void test_close_checked(qreg_t *reg);

/* Runs the catalog request to its end (bounded); returns its snapshot,
   whatever its status. */
qreg_snapshot_t *test_catalog_run(qreg_t *reg, const qreg_catalog_request_t *request);

/* Runs the request, which must succeed with exactly these column names
   (NULL-terminated); returns all its rows. */
qreg_page_t *test_catalog_rows(qreg_t *reg, const qreg_catalog_request_t *request,
                               const char *const *columns);

void test_sleep_ms(unsigned ms);

/* A small deterministic generator (xorshift64*) for stress and races. */
uint64_t test_rand(uint64_t *state);

/* Descriptors this process has open now (entries of /proc/self/fd). */
size_t test_count_open_fds(void);

#endif /* QREG_TESTS_TEST_UTIL_H */
