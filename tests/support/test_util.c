/*
 * tests/support/test_util.c - the helpers of test_util.h. Owns only the
 * process-wide "scripted driver registered" flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_util.h"

#include "core/registry.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static bool driver_registered;

void test_sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static uint64_t now_ms(void) {
  return scripted_now_ns() / 1000000u;
}

uint64_t test_rand(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9e3779b97f4a7c15u;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1du;
}

void test_driver_setup(void) {
  if (!driver_registered) {
    assert_int_equal(qreg_driver_register(&scripted_driver), 0);
    driver_registered = true;
  }
  scripted_reset();
}

void test_config(qreg_config_t *config) {
  qreg_config_init(config);
  config->db_url = "script:";
}

qreg_t *test_open(const qreg_config_t *config) {
  test_driver_setup();
  qreg_config_t defaults;
  if (config == NULL) {
    test_config(&defaults);
    config = &defaults;
  }
  qreg_t *reg = NULL;
  int rc = qreg_open(config, &reg);
  if (rc != 0)
    fail_msg("qreg_open: %s (%s)", qreg_strerror(rc), qreg_last_error());
  assert_non_null(reg);
  return reg;
}

qreg_id_t test_execute(qreg_t *reg, const char *sql, const qreg_options_t *options) {
  qreg_id_t id;
  int rc = qreg_execute(reg, sql, options, &id);
  if (rc != 0)
    fail_msg("qreg_execute(\"%s\"): %s (%s)", sql, qreg_strerror(rc), qreg_last_error());
  assert_int_equal(strlen(id.str), QREG_ID_LEN);
  return id;
}

qreg_id_t test_execute_opts(qreg_t *reg, const char *sql, uint64_t timeout_ms, uint64_t ttl_ms,
                            uint64_t max_rows) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = timeout_ms;
  options.ttl_ms = ttl_ms;
  options.max_rows = max_rows;
  return test_execute(reg, sql, &options);
}

qreg_status_t test_wait(qreg_t *reg, const qreg_id_t *id) {
  qreg_status_t status = QREG_PENDING;
  int rc = qreg_wait(reg, id->str, TEST_BOUND_MS, &status);
  if (rc != 0)
    fail_msg("qreg_wait(%s): %s (%s), status %s", id->str, qreg_strerror(rc), qreg_last_error(),
             qreg_status_name(status));
  assert_true(qreg_status_is_terminal(status));
  return status;
}

qreg_status_t test_status(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *snapshot = NULL;
  int rc = qreg_snapshot(reg, id->str, &snapshot);
  if (rc != 0)
    fail_msg("qreg_snapshot(%s): %s (%s)", id->str, qreg_strerror(rc), qreg_last_error());
  qreg_status_t status = snapshot->status;
  qreg_snapshot_free(snapshot);
  return status;
}

void test_wait_status(qreg_t *reg, const qreg_id_t *id, qreg_status_t status) {
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  qreg_status_t seen;
  while ((seen = test_status(reg, id)) != status) {
    if (now_ms() > deadline)
      fail_msg("query %s: still %s after %u ms, expected %s", id->str, qreg_status_name(seen),
               TEST_BOUND_MS, qreg_status_name(status));
    test_sleep_ms(1);
  }
}

int test_wait_pruned(qreg_t *reg, const qreg_id_t *id) {
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  int pruned = 0;
  for (;;) {
    int rc = qreg_prune_expired(reg);
    assert_true(rc >= 0);
    pruned += rc;
    qreg_snapshot_t *snapshot = NULL;
    rc = qreg_snapshot(reg, id->str, &snapshot);
    if (rc == QREG_ENOTFOUND)
      return pruned;
    assert_int_equal(rc, 0);
    qreg_snapshot_free(snapshot);
    if (now_ms() > deadline)
      fail_msg("query %s: not pruned after %u ms", id->str, TEST_BOUND_MS);
    test_sleep_ms(2);
  }
}

uint64_t test_counter_executes(const scripted_counters_t *c) {
  return c->executes;
}
uint64_t test_counter_closed(const scripted_counters_t *c) {
  return c->closed;
}
uint64_t test_counter_opened(const scripted_counters_t *c) {
  return c->opened;
}
uint64_t test_counter_completions(const scripted_counters_t *c) {
  return c->completions;
}

void test_wait_counter(test_counter_fn counter, uint64_t value, const char *what) {
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  for (;;) {
    scripted_counters_t c;
    scripted_counters_get(&c);
    uint64_t seen = counter(&c);
    if (seen >= value)
      return;
    if (now_ms() > deadline)
      fail_msg("driver %s: %" PRIu64 " after %u ms, expected at least %" PRIu64, what, seen,
               TEST_BOUND_MS, value);
    test_sleep_ms(1);
  }
}

void test_wait_gate(unsigned gate, unsigned count) {
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  for (;;) {
    unsigned seen = scripted_gate_waiting(gate);
    if (seen >= count)
      return;
    if (now_ms() > deadline)
      fail_msg("gate %u: %u job(s) waiting after %u ms, expected at least %u", gate, seen,
               TEST_BOUND_MS, count);
    test_sleep_ms(1);
  }
}

unsigned test_wait_blocked_callers(qreg_t *reg, unsigned count) {
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  for (;;) {
    unsigned seen = qreg__registry_blocked_callers(reg);
    if (seen >= count)
      return seen;
    if (now_ms() > deadline)
      fail_msg("%u thread(s) blocked in the registry after %u ms, expected at least %u", seen,
               TEST_BOUND_MS, count);
    test_sleep_ms(1);
  }
}

static bool cancel_reached(unsigned tag) {
  scripted_tag_info_t info;
  return scripted_tag_info_get(tag, &info) && info.cancel_ns != 0;
}

void test_wait_cancel_reached(unsigned tag) {
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  while (!cancel_reached(tag)) {
    if (now_ms() > deadline)
      fail_msg("the cancel of tag %u did not reach the driver in %u ms", tag, TEST_BOUND_MS);
    test_sleep_ms(1);
  }
}

/* Whether qreg_close has begun: from then on every call but qreg_stats
   answers QREG_ECLOSED. qreg_list creates nothing and needs no id. */
static bool registry_closing(qreg_t *reg) {
  qreg_list_filter_t filter = {.limit = 1};
  qreg_list_t *list = NULL;
  int rc = qreg_list(reg, &filter, &list);
  qreg_list_free(list);
  return rc == QREG_ECLOSED;
}

static bool gate_condition_holds(test_gate_opener_t *opener) {
  if (opener->closing != NULL)
    return registry_closing(opener->closing);
  return cancel_reached(opener->tag);
}

static void *gate_opener_main(void *arg) {
  test_gate_opener_t *opener = arg;
  uint64_t deadline = now_ms() + TEST_BOUND_MS;
  while (!gate_condition_holds(opener) && now_ms() <= deadline)
    test_sleep_ms(1);
  atomic_store(&opener->seen, gate_condition_holds(opener));
  scripted_gate_open(opener->gate);
  return NULL;
}

void test_gate_opener_start(test_gate_opener_t *opener) {
  atomic_store(&opener->seen, false);
  assert_int_equal(pthread_create(&opener->thread, NULL, gate_opener_main, opener), 0);
}

void test_gate_opener_join(test_gate_opener_t *opener) {
  pthread_join(opener->thread, NULL);
  if (!atomic_load(&opener->seen)) {
    if (opener->closing != NULL)
      fail_msg("gate %u: qreg_close never began", opener->gate);
    fail_msg("gate %u: the cancel of tag %u never reached the driver", opener->gate, opener->tag);
  }
}

void test_assert_no_violation(void) {
  scripted_counters_t c;
  scripted_counters_get(&c);
  if (c.violations != 0)
    fail_msg("scripted driver saw %" PRIu64 " contract violation(s); first: %s", c.violations,
             scripted_violation_message());
}

void test_assert_all_released(qreg_t *reg) {
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_in_use, 0);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.busy_now, 0);
  assert_int_equal(c.executes, c.completions);
  test_assert_no_violation();
}

void test_close_checked(qreg_t *reg) {
  int rc = qreg_close(reg);
  if (rc != 0)
    fail_msg("qreg_close: %s (%s)", qreg_strerror(rc), qreg_last_error());
  test_check_after_close(reg);
  qreg_destroy(reg);
}

void test_check_after_close(qreg_t *reg) {
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  scripted_counters_t c;
  scripted_counters_get(&c);
  test_assert_no_violation();
  if (stats.connections_opened != stats.connections_closed)
    fail_msg("qreg_stats after close: opened %" PRIu64 " != closed %" PRIu64,
             stats.connections_opened, stats.connections_closed);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_idle, 0);
  assert_int_equal(stats.connections_opening, 0);
  if (c.opened != c.closed)
    fail_msg("driver after close: opened %" PRIu64 " != closed %" PRIu64, c.opened, c.closed);
  assert_int_equal(c.live_now, 0);
  assert_int_equal(c.open_now, 0);
  assert_int_equal(c.busy_now, 0);
  if (c.executes != c.completions)
    fail_msg("driver after close: %" PRIu64 " executes but %" PRIu64 " completions", c.executes,
             c.completions);
  /* The registry and the driver agree on what happened. */
  assert_int_equal(stats.connections_opened, c.opened);
  assert_int_equal(stats.connect_failures, c.connect_failures);
}

size_t test_count_open_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  assert_non_null(dir);
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] != '.')
      count++;
  }
  closedir(dir);
  return count - 1; /* the directory stream's own descriptor */
}

qreg_snapshot_t *test_catalog_run(qreg_t *reg, const qreg_catalog_request_t *request) {
  qreg_id_t id;
  int rc = qreg_catalog(reg, request, NULL, &id);
  if (rc != 0)
    fail_msg("qreg_catalog(%s): %s: %s", qreg_catalog_op_name(request->op), qreg_strerror(rc),
             qreg_last_error());
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id.str, TEST_BOUND_MS, &status), 0);
  qreg_snapshot_t *snap = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &snap), 0);
  return snap;
}

qreg_page_t *test_catalog_rows(qreg_t *reg, const qreg_catalog_request_t *request,
                               const char *const *columns) {
  qreg_snapshot_t *snap = test_catalog_run(reg, request);
  if (snap->status != QREG_SUCCEEDED)
    fail_msg("%s: %s: %s", qreg_catalog_op_name(request->op), qreg_status_name(snap->status),
             snap->error.message);
  size_t count = 0;
  while (columns[count] != NULL)
    count++;
  assert_int_equal(snap->column_count, count);
  for (size_t i = 0; i < count; i++)
    assert_string_equal(snap->columns[i].name, columns[i]);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, snap->id.str, 0, 0, &page), 0);
  qreg_snapshot_free(snap);
  return page;
}
