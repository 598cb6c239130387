/*
 * tests/test-ids.c - invariant 7, "unguessable ids": every query id is a
 * canonical UUIDv4 drawn from the OS random source.
 *
 *  - execute_ids_are_uuid_v4: 4,000 ids from qreg_execute are canonical
 *    (36 characters, lowercase hex, hyphens at 8/13/18/23), version nibble
 *    4 and variant bits 10xx, all distinct, each the id of its record; and
 *    the OS source gave at least 16 bytes per id while they were made.
 *  - million_ids_unique_and_balanced: 1,000,000 ids from the function the
 *    core draws them with (qreg__uuid_random): all canonical, all distinct,
 *    and each of the 122 random bits set in 49 % to 51 % of them.
 *  - ids_differ_across_fork: ids made in a parent and in its child right
 *    after fork() share nothing.
 *  - os_source_failure_fails_execute: when the OS source fails, qreg_execute
 *    fails with QREG_ESYS and creates nothing; an interrupted call is retried.
 *
 * How "from the OS random source" is observed: this program defines
 * getrandom(), which the core's call binds to (the program's definition wins
 * over libc's); it counts calls and bytes, can fail on demand, and asks the
 * kernel itself (syscall(SYS_getrandom)). If the core switches to another OS
 * interface (getentropy, /dev/urandom), the byte count fails and this
 * interposition must follow it.
 *
 * How each test fails when the invariant breaks: a fixed or mis-set
 * version/variant nibble fails the format checks; a generator with a short
 * period or a small seed repeats within a million (uniqueness); a stuck or
 * biased bit leaves the 49-51 % band (a fair bit is within 50 % +- 0.05 %
 * - one standard deviation - over a million ids, so the band is 20
 * standard deviations wide and never fails by chance); a userspace PRNG
 * seeded once (before or at fork) hands the child the parent's sequence;
 * ids that do not come from getrandom fail the byte count; a silent
 * fallback to a weak source when the OS fails returns an id instead of
 * QREG_ESYS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "support/test_util.h"

/* --- the OS source, observed ------------------------------------------------ */

static atomic_ullong random_calls; /* getrandom() calls */
static atomic_ullong random_bytes; /* bytes it returned */
static atomic_uint fail_next;      /* calls left to fail with fail_errno */
static atomic_int fail_errno;

/* The program's getrandom(): counts, fails on demand, else the kernel's. */
ssize_t getrandom(void *buf, size_t len, unsigned flags) {
  atomic_fetch_add(&random_calls, 1);
  unsigned left = atomic_load(&fail_next);
  while (left > 0 && !atomic_compare_exchange_weak(&fail_next, &left, left - 1)) {
  }
  if (left > 0) {
    errno = atomic_load(&fail_errno);
    return -1;
  }
  long n = syscall(SYS_getrandom, buf, len, flags);
  if (n > 0)
    atomic_fetch_add(&random_bytes, (unsigned long long)n);
  return (ssize_t)n;
}

static void fail_random(unsigned count, int error) {
  atomic_store(&fail_errno, error);
  atomic_store(&fail_next, count);
}

/* --- checks ------------------------------------------------------------------ */

/* Fails the test unless text is a canonical lowercase UUIDv4 (RFC 4122). */
static void check_canonical(const char *text, const char *where) {
  size_t len = strnlen(text, QREG_ID_LEN + 2);
  if (len != QREG_ID_LEN)
    fail_msg("%s: id \"%s\" has %zu characters", where, text, len);
  for (int i = 0; i < QREG_ID_LEN; i++) {
    char c = text[i];
    bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
    bool ok = hyphen ? c == '-' : (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok)
      fail_msg("%s: id \"%s\" is not canonical at %d", where, text, i);
  }
  if (text[14] != '4')
    fail_msg("%s: id \"%s\": version %c, expected 4", where, text, text[14]);
  if (strchr("89ab", text[19]) == NULL)
    fail_msg("%s: id \"%s\": variant %c, expected 10xx (8, 9, a or b)", where, text, text[19]);
}

static int compare_bytes(const void *a, const void *b) {
  return memcmp(a, b, sizeof(qreg__uuid_t));
}

/* Sorts ids and fails the test at the first repeated one. */
static void check_distinct(qreg__uuid_t *ids, size_t count, const char *where) {
  qsort(ids, count, sizeof *ids, compare_bytes);
  for (size_t i = 1; i < count; i++) {
    if (memcmp(&ids[i - 1], &ids[i], sizeof *ids) == 0) {
      qreg_id_t text;
      qreg__uuid_format(&ids[i], &text);
      fail_msg("%s: id %s appears twice among %zu", where, text.str, count);
    }
  }
}

static qreg__uuid_t parse_id(const qreg_id_t *id) {
  qreg__uuid_t uuid;
  assert_true(qreg__uuid_parse(id->str, &uuid));
  return uuid;
}

/* --- tests ------------------------------------------------------------------- */

#define EXECUTE_IDS 4000

static void execute_ids_are_uuid_v4(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.max_records = EXECUTE_IDS + 10;
  qreg_t *reg = test_open(&config);
  qreg__uuid_t *ids = calloc(EXECUTE_IDS, sizeof *ids);
  assert_non_null(ids);
  unsigned long long calls = atomic_load(&random_calls), bytes = atomic_load(&random_bytes);
  for (size_t i = 0; i < EXECUTE_IDS; i++) {
    qreg_id_t id = test_execute(reg, "rows=1", NULL);
    check_canonical(id.str, "qreg_execute");
    ids[i] = parse_id(&id);
    if (i % 100 == 0) { /* the id names its own record */
      qreg_snapshot_t *s = NULL;
      assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
      assert_string_equal(s->id.str, id.str);
      qreg_snapshot_free(s);
    }
  }
  calls = atomic_load(&random_calls) - calls;
  bytes = atomic_load(&random_bytes) - bytes;
  print_message("%d executes: %llu getrandom calls, %llu bytes\n", EXECUTE_IDS, calls, bytes);
  if (bytes < 16ull * EXECUTE_IDS)
    fail_msg("%d ids took %llu bytes from getrandom, expected at least 16 each", EXECUTE_IDS,
             bytes);
  check_distinct(ids, EXECUTE_IDS, "qreg_execute");
  free(ids);
  test_close_checked(reg);
}

#define MILLION 1000000u

static void million_ids_unique_and_balanced(void **state) {
  (void)state;
  qreg__uuid_t *ids = malloc(MILLION * sizeof *ids);
  assert_non_null(ids);
  static uint32_t ones[128];
  memset(ones, 0, sizeof ones);
  unsigned long long bytes = atomic_load(&random_bytes);
  for (size_t i = 0; i < MILLION; i++) {
    assert_int_equal(qreg__uuid_random(&ids[i]), 0);
    qreg_id_t text;
    qreg__uuid_format(&ids[i], &text);
    check_canonical(text.str, "qreg__uuid_random");
    for (int bit = 0; bit < 128; bit++)
      ones[bit] += (ids[i].bytes[bit / 8] >> (7 - bit % 8)) & 1u;
  }
  bytes = atomic_load(&random_bytes) - bytes;
  if (bytes < 16ull * MILLION)
    fail_msg("a million ids took %llu bytes from getrandom, expected at least 16 each", bytes);

  /* Bits 48-51 are the version (0100), bits 64-65 the variant (10). */
  uint32_t low = MILLION / 100 * 49, high = MILLION / 100 * 51;
  uint32_t lowest = MILLION, highest = 0;
  for (int bit = 0; bit < 128; bit++) {
    if (bit >= 48 && bit <= 51) {
      uint32_t expected = bit == 49 ? MILLION : 0;
      if (ones[bit] != expected)
        fail_msg("version bit %d set in %" PRIu32 " ids, expected %" PRIu32, bit, ones[bit],
                 expected);
    } else if (bit == 64 || bit == 65) {
      uint32_t expected = bit == 64 ? MILLION : 0;
      if (ones[bit] != expected)
        fail_msg("variant bit %d set in %" PRIu32 " ids, expected %" PRIu32, bit, ones[bit],
                 expected);
    } else {
      if (ones[bit] < low || ones[bit] > high)
        fail_msg("random bit %d set in %" PRIu32 " of %u ids: outside 49-51 %%", bit, ones[bit],
                 MILLION);
      lowest = ones[bit] < lowest ? ones[bit] : lowest;
      highest = ones[bit] > highest ? ones[bit] : highest;
    }
  }
  print_message("a million ids: each random bit set in %" PRIu32 " to %" PRIu32 " of them\n",
                lowest, highest);
  check_distinct(ids, MILLION, "qreg__uuid_random");
  free(ids);
}

#define FORK_IDS 64

static void ids_differ_across_fork(void **state) {
  (void)state;
  /* Ids made before the fork: a generator seeded lazily is seeded now. */
  qreg__uuid_t before[FORK_IDS];
  for (int i = 0; i < FORK_IDS; i++)
    assert_int_equal(qreg__uuid_random(&before[i]), 0);

  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    /* The child: ids right away, then how many getrandom calls made them. */
    close(fds[0]);
    qreg__uuid_t ids[FORK_IDS];
    unsigned long long calls = atomic_load(&random_calls);
    int ok = 1;
    for (int i = 0; i < FORK_IDS; i++)
      ok &= qreg__uuid_random(&ids[i]) == 0;
    calls = atomic_load(&random_calls) - calls;
    ssize_t written = ok ? write(fds[1], ids, sizeof ids) : -1;
    written += write(fds[1], &calls, sizeof calls);
    _exit(written == (ssize_t)(sizeof ids + sizeof calls) ? 0 : 1);
  }
  close(fds[1]);
  qreg__uuid_t ids[2 * FORK_IDS];
  for (int i = 0; i < FORK_IDS; i++)
    assert_int_equal(qreg__uuid_random(&ids[i]), 0);
  size_t got = 0;
  char *into = (char *)&ids[FORK_IDS];
  while (got < FORK_IDS * sizeof(qreg__uuid_t)) {
    ssize_t n = read(fds[0], into + got, FORK_IDS * sizeof(qreg__uuid_t) - got);
    assert_true(n > 0);
    got += (size_t)n;
  }
  unsigned long long child_calls = 0;
  assert_int_equal(read(fds[0], &child_calls, sizeof child_calls), sizeof child_calls);
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  print_message("fork: the child made %d ids with %llu getrandom calls\n", FORK_IDS, child_calls);
  for (int i = 0; i < 2 * FORK_IDS; i++) {
    qreg_id_t text;
    qreg__uuid_format(&ids[i], &text);
    check_canonical(text.str, i < FORK_IDS ? "parent" : "child");
  }
  /* No id of the child is one of the parent's, before or after the fork. */
  qreg__uuid_t all[3 * FORK_IDS];
  memcpy(all, ids, sizeof ids);
  memcpy(all + 2 * FORK_IDS, before, sizeof before);
  check_distinct(all, 3 * FORK_IDS, "parent and child");
  if (child_calls == 0)
    fail_msg("the child made its ids without calling getrandom");
}

static void os_source_failure_fails_execute(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_stats_t stats = QREG_STATS_INIT;

  fail_random(1, EIO);
  qreg_id_t id;
  int rc = qreg_execute(reg, "rows=1", NULL, &id);
  if (atomic_exchange(&fail_next, 0) != 0)
    fail_msg("qreg_execute made an id (%s: \"%s\") without calling getrandom", qreg_strerror(rc),
             id.str);
  if (rc != QREG_ESYS)
    fail_msg("with the OS random source failing, qreg_execute returned %s (id \"%s\"), expected "
             "QREG_ESYS",
             qreg_strerror(rc), id.str);
  print_message("OS source failing: %s\n", qreg_last_error());
  assert_true(qreg_last_error()[0] != '\0');
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 0);

  /* An interrupted call is retried, not taken for a failure. */
  fail_random(1, EINTR);
  unsigned long long calls = atomic_load(&random_calls);
  id = test_execute(reg, "rows=1", NULL);
  assert_int_equal(atomic_exchange(&fail_next, 0), 0);
  check_canonical(id.str, "after EINTR");
  assert_true(atomic_load(&random_calls) - calls >= 2);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 1);
  test_close_checked(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* First, while the process has one thread: fork() is simplest then. */
      cmocka_unit_test(ids_differ_across_fork),
      cmocka_unit_test(execute_ids_are_uuid_v4),
      cmocka_unit_test(os_source_failure_fails_execute),
      cmocka_unit_test(million_ids_unique_and_balanced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
