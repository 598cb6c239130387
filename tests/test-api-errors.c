/*
 * tests/test-api-errors.c - what bad input gets, through the public API on
 * the scripted driver: every argument the issue lists (NULL, empty or blank
 * SQL, a NUL byte, invalid UTF-8, SQL over the size limit, unknown or
 * malformed ids, offsets past the end, zero or absurd configuration and
 * option values, unknown URL schemes, a driver that cannot be set up, NULL
 * handles and out-pointers) returns its documented code with a message, and
 * creates nothing: no record, no connection, no driver call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "support/test_util.h"

/* Fails unless the last call's message is non-empty and mentions needle. */
static void expect_message(const char *needle) {
  const char *message = qreg_last_error();
  assert_non_null(message);
  if (message[0] == '\0')
    fail_msg("no message from qreg_last_error()");
  if (needle != NULL && strstr(message, needle) == NULL)
    fail_msg("message '%s' does not mention '%s'", message, needle);
}

/* --- qreg_open ------------------------------------------------------------- */

typedef void (*config_breaker)(qreg_config_t *c);

static void no_url(qreg_config_t *c) {
  c->db_url = NULL;
}
static void empty_url(qreg_config_t *c) {
  c->db_url = "";
}
static void blank_url(qreg_config_t *c) {
  c->db_url = "  \t";
}
static void zero_connections(qreg_config_t *c) {
  c->max_connections = 0;
}
static void many_connections(qreg_config_t *c) {
  c->max_connections = 10001;
}
static void zero_records(qreg_config_t *c) {
  c->max_records = 0;
}
static void absurd_records(qreg_config_t *c) {
  c->max_records = SIZE_MAX;
}
static void zero_result_bytes(qreg_config_t *c) {
  c->max_result_bytes = 0;
}
static void zero_sql_bytes(qreg_config_t *c) {
  c->max_sql_bytes = 0;
}
static void absurd_sql_bytes(qreg_config_t *c) {
  c->max_sql_bytes = SIZE_MAX;
}
static void zero_timeout(qreg_config_t *c) {
  c->default_timeout_ms = 0;
}
static void absurd_timeout(qreg_config_t *c) {
  c->default_timeout_ms = UINT64_MAX;
}
static void zero_ttl(qreg_config_t *c) {
  c->default_ttl_ms = 0;
}
static void absurd_ttl(qreg_config_t *c) {
  c->default_ttl_ms = UINT64_MAX;
}
static void zero_max_rows(qreg_config_t *c) {
  c->default_max_rows = 0;
}
static void absurd_max_rows(qreg_config_t *c) {
  c->default_max_rows = UINT64_MAX;
}
static void zero_idle_timeout(qreg_config_t *c) {
  c->idle_timeout_ms = 0;
}
static void absurd_idle_timeout(qreg_config_t *c) {
  c->idle_timeout_ms = UINT64_MAX;
}

static void open_rejects_bad_config(void **state) {
  (void)state;
  test_driver_setup();
  static const struct {
    config_breaker breaker;
    const char *field;
  } cases[] = {
      {no_url, "db_url"},
      {empty_url, "db_url"},
      {blank_url, "db_url"},
      {zero_connections, "max_connections"},
      {many_connections, "max_connections"},
      {zero_records, "max_records"},
      {absurd_records, "max_records"},
      {zero_result_bytes, "max_result_bytes"},
      {zero_sql_bytes, "max_sql_bytes"},
      {absurd_sql_bytes, "max_sql_bytes"},
      {zero_timeout, "default_timeout_ms"},
      {absurd_timeout, "default_timeout_ms"},
      {zero_ttl, "default_ttl_ms"},
      {absurd_ttl, "default_ttl_ms"},
      {zero_max_rows, "default_max_rows"},
      {absurd_max_rows, "default_max_rows"},
      {zero_idle_timeout, "idle_timeout_ms"},
      {absurd_idle_timeout, "idle_timeout_ms"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_config_t config;
    test_config(&config);
    cases[i].breaker(&config);
    qreg_t *reg = (qreg_t *)&config; /* must be overwritten with NULL */
    int rc = qreg_open(&config, &reg);
    if (rc != QREG_EINVAL)
      fail_msg("bad %s: qreg_open returned %s, expected invalid argument", cases[i].field,
               qreg_strerror(rc));
    assert_null(reg);
    expect_message(cases[i].field);
  }
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.connect_attempts, 0);
}

static void open_rejects_bad_url_and_arguments(void **state) {
  (void)state;
  test_driver_setup();
  qreg_config_t config;
  test_config(&config);
  qreg_t *reg = NULL;
  assert_int_equal(qreg_open(NULL, &reg), QREG_EINVAL);
  expect_message(NULL);
  assert_int_equal(qreg_open(&config, NULL), QREG_EINVAL);

  static const char *const unknown[] = {"mysql://localhost/x", "nothing", "script", "http://x"};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    config.db_url = unknown[i];
    int rc = qreg_open(&config, &reg);
    if (rc != QREG_EURL)
      fail_msg("db_url '%s': %s, expected %s", unknown[i], qreg_strerror(rc),
               qreg_strerror(QREG_EURL));
    assert_null(reg);
    expect_message("db_url");
  }

  config.db_url = "script:fail-create";
  assert_int_equal(qreg_open(&config, &reg), QREG_EDRIVER);
  assert_null(reg);
  expect_message("refused");
}

/* --- qreg_execute ------------------------------------------------------------ */

/* Checks that a refused execute created nothing. */
static void expect_nothing_created(qreg_t *reg) {
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 0);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.connect_attempts, 0);
  assert_int_equal(c.executes, 0);
}

static void execute_rejects_bad_sql(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id;
  static const struct {
    const char *sql;
    const char *why;
  } bad[] = {
      {"", "empty"},
      {"   ", "blank"},
      {" \t\r\n ", "white space"},
      {"rows=1 \xff", "invalid byte 0xff"},
      {"rows=1 \xc3", "truncated sequence"},
      {"rows=1 \xc0\xaf", "overlong encoding"},
      {"rows=1 \xe0\x80\xaf", "overlong three bytes"},
      {"rows=1 \xed\xa0\x80", "UTF-16 surrogate"},
      {"rows=1 \xf4\x90\x80\x80", "past U+10FFFF"},
      {"\x80rows=1", "lone continuation byte"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = qreg_execute(reg, bad[i].sql, NULL, &id);
    if (rc != QREG_EINVAL)
      fail_msg("%s: qreg_execute returned %s", bad[i].why, qreg_strerror(rc));
    expect_message("sql");
    rc = qreg_execute_n(reg, bad[i].sql, strlen(bad[i].sql), NULL, &id);
    if (rc != QREG_EINVAL)
      fail_msg("%s: qreg_execute_n returned %s", bad[i].why, qreg_strerror(rc));
  }
  assert_int_equal(qreg_execute(reg, NULL, NULL, &id), QREG_EINVAL);
  expect_message("sql");
  assert_int_equal(qreg_execute_n(reg, NULL, 4, NULL, &id), QREG_EINVAL);

  /* A NUL byte inside a string of known length. */
  static const char with_nul[] = "rows=1\0;rows=2";
  assert_int_equal(qreg_execute_n(reg, with_nul, sizeof with_nul - 1, NULL, &id), QREG_EINVAL);
  expect_message("NUL");
  assert_int_equal(qreg_execute_n(reg, "rows=1", 0, NULL, &id), QREG_EINVAL);
  expect_nothing_created(reg);

  /* Valid multi-byte UTF-8 is accepted, and the SQL comes back intact. */
  const char *utf8 = "rows=1 -- caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82";
  id = test_execute(reg, utf8, NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_string_equal(s->sql, utf8);
  qreg_snapshot_free(s);
  /* A successful call leaves no message behind. */
  assert_string_equal(qreg_last_error(), "");
  test_close_checked(reg);
}

static void execute_rejects_bad_arguments_and_options(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id;
  assert_int_equal(qreg_execute(NULL, "rows=1", NULL, &id), QREG_EINVAL);
  expect_message(NULL);
  assert_int_equal(qreg_execute(reg, "rows=1", NULL, NULL), QREG_EINVAL);
  assert_int_equal(qreg_execute_n(NULL, "rows=1", 6, NULL, &id), QREG_EINVAL);

  static const struct {
    qreg_options_t options;
    const char *field;
  } bad[] = {
      {{.struct_size = sizeof(qreg_options_t), .timeout_ms = UINT64_MAX}, "timeout_ms"},
      {{.struct_size = sizeof(qreg_options_t), .ttl_ms = UINT64_MAX}, "ttl_ms"},
      {{.struct_size = sizeof(qreg_options_t), .max_rows = UINT64_MAX}, "max_rows"},
      {{.struct_size = sizeof(qreg_options_t), .allow_writes = true}, "allow_writes"},
      {{.struct_size = 0}, "struct_size"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = qreg_execute(reg, "rows=1", &bad[i].options, &id);
    if (rc != QREG_EINVAL)
      fail_msg("bad %s: %s", bad[i].field, qreg_strerror(rc));
    expect_message(bad[i].field);
  }
  expect_nothing_created(reg);
  test_close_checked(reg);
}

/* --- ids, pages, lists ------------------------------------------------------- */

static void bad_and_unknown_ids(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t real = test_execute(reg, "rows=2", NULL);
  assert_int_equal(test_wait(reg, &real), QREG_SUCCEEDED);
  char longer[64];
  snprintf(longer, sizeof longer, "%s0", real.str);
  char shorter[64];
  snprintf(shorter, sizeof shorter, "%.35s", real.str);
  char no_dashes[64];
  snprintf(no_dashes, sizeof no_dashes, "%s", real.str);
  no_dashes[8] = '0';
  const char *malformed[] = {"",
                             "x",
                             "not-a-uuid",
                             shorter,
                             longer,
                             no_dashes,
                             "zzzzzzzz-zzzz-4zzz-8zzz-zzzzzzzzzzzz",
                             "12345678-1234-4234-8234-12345678901g",
                             " 2345678-1234-4234-8234-123456789012"};
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    const char *id = malformed[i];
    qreg_snapshot_t *s = NULL;
    qreg_page_t *page = NULL;
    qreg_status_t status;
    if (qreg_snapshot(reg, id, &s) != QREG_EINVAL)
      fail_msg("snapshot of malformed id '%s' not refused as invalid", id);
    expect_message("id");
    assert_int_equal(qreg_fetch(reg, id, 0, 0, &page), QREG_EINVAL);
    assert_int_equal(qreg_wait(reg, id, 0, &status), QREG_EINVAL);
    assert_int_equal(qreg_cancel(reg, id, &status), QREG_EINVAL);
  }
  qreg_snapshot_t *s = NULL;
  qreg_page_t *page = NULL;
  qreg_status_t status;
  assert_int_equal(qreg_snapshot(reg, NULL, &s), QREG_EINVAL);
  assert_int_equal(qreg_fetch(reg, NULL, 0, 0, &page), QREG_EINVAL);
  assert_int_equal(qreg_wait(reg, NULL, 0, &status), QREG_EINVAL);
  assert_int_equal(qreg_cancel(reg, NULL, &status), QREG_EINVAL);

  const char *unknown = "123e4567-e89b-42d3-a456-426614174000";
  assert_int_equal(qreg_snapshot(reg, unknown, &s), QREG_ENOTFOUND);
  expect_message(NULL);
  assert_null(s);
  assert_int_equal(qreg_fetch(reg, unknown, 0, 0, &page), QREG_ENOTFOUND);
  assert_int_equal(qreg_wait(reg, unknown, 0, &status), QREG_ENOTFOUND);
  assert_int_equal(qreg_cancel(reg, unknown, &status), QREG_ENOTFOUND);

  /* NULL out-pointers. */
  assert_int_equal(qreg_snapshot(reg, real.str, NULL), QREG_EINVAL);
  assert_int_equal(qreg_fetch(reg, real.str, 0, 0, NULL), QREG_EINVAL);
  assert_int_equal(qreg_list(reg, NULL, NULL), QREG_EINVAL);
  assert_int_equal(qreg_stats(reg, NULL), QREG_EINVAL);

  /* Offsets past the end. */
  assert_int_equal(qreg_fetch(reg, real.str, 3, 0, &page), QREG_ERANGE);
  expect_message("offset");
  assert_null(page);
  assert_int_equal(qreg_fetch(reg, real.str, UINT64_MAX, 1, &page), QREG_ERANGE);
  assert_int_equal(qreg_fetch(reg, real.str, 1, UINT64_MAX, &page), 0);
  assert_int_equal(page->row_count, 1);
  qreg_page_free(page);
  test_close_checked(reg);
}

static void list_rejects_bad_filters(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_list_t *list = NULL;
  static const char *const cursors[] = {"abc", "q", "q12x", "-1", "q-1"};
  for (size_t i = 0; i < sizeof cursors / sizeof cursors[0]; i++) {
    qreg_list_filter_t filter = {.cursor = cursors[i]};
    if (qreg_list(reg, &filter, &list) != QREG_EINVAL)
      fail_msg("cursor '%s' not refused", cursors[i]);
    expect_message("cursor");
    assert_null(list);
  }
  qreg_list_filter_t bits = {.status_mask = 1u << QREG_STATUS_COUNT};
  assert_int_equal(qreg_list(reg, &bits, &list), QREG_EINVAL);
  expect_message("status");
  assert_int_equal(qreg_list(NULL, NULL, &list), QREG_EINVAL);
  test_close_checked(reg);
}

/* --- NULL handles and the small helpers ------------------------------------------ */

static void null_registry(void **state) {
  (void)state;
  qreg_snapshot_t *s = NULL;
  qreg_page_t *page = NULL;
  qreg_list_t *list = NULL;
  qreg_status_t status;
  qreg_stats_t stats = QREG_STATS_INIT;
  const char *id = "123e4567-e89b-42d3-a456-426614174000";
  assert_int_equal(qreg_snapshot(NULL, id, &s), QREG_EINVAL);
  assert_int_equal(qreg_fetch(NULL, id, 0, 0, &page), QREG_EINVAL);
  assert_int_equal(qreg_list(NULL, NULL, &list), QREG_EINVAL);
  assert_int_equal(qreg_wait(NULL, id, 0, &status), QREG_EINVAL);
  assert_int_equal(qreg_cancel(NULL, id, &status), QREG_EINVAL);
  assert_int_equal(qreg_prune_expired(NULL), QREG_EINVAL);
  assert_int_equal(qreg_stats(NULL, &stats), QREG_EINVAL);
  assert_int_equal(qreg_close(NULL), QREG_EINVAL);
  qreg_destroy(NULL);
  qreg_snapshot_free(NULL);
  qreg_page_free(NULL);
  qreg_list_free(NULL);
}

static void names_and_codes(void **state) {
  (void)state;
  for (int code = QREG_ESYS; code <= QREG_OK; code++) {
    const char *name = qreg_strerror(code);
    assert_non_null(name);
    assert_string_not_equal(name, qreg_strerror(12345));
  }
  assert_non_null(qreg_strerror(-999));
  for (int s = 0; s < QREG_STATUS_COUNT; s++) {
    qreg_status_t parsed;
    assert_int_equal(qreg_status_parse(qreg_status_name((qreg_status_t)s), &parsed), 0);
    assert_int_equal(parsed, s);
    assert_int_equal(qreg_status_is_terminal((qreg_status_t)s), s >= QREG_SUCCEEDED);
  }
  qreg_status_t parsed;
  assert_int_equal(qreg_status_parse("bogus", &parsed), QREG_EINVAL);
  expect_message(NULL);
  assert_int_equal(qreg_status_parse("", &parsed), QREG_EINVAL);
  assert_int_equal(qreg_status_parse(NULL, &parsed), QREG_EINVAL);
  assert_non_null(qreg_status_name((qreg_status_t)99));
  assert_false(qreg_status_is_terminal((qreg_status_t)99));

  char buf[32];
  qreg_format_time(0, buf, sizeof buf);
  assert_string_equal(buf, "");
  qreg_format_time(1795808516123, buf, sizeof buf);
  assert_string_equal(buf, "2026-11-27T19:41:56.123Z");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(open_rejects_bad_config),
      cmocka_unit_test(open_rejects_bad_url_and_arguments),
      cmocka_unit_test(execute_rejects_bad_sql),
      cmocka_unit_test(execute_rejects_bad_arguments_and_options),
      cmocka_unit_test(bad_and_unknown_ids),
      cmocka_unit_test(list_rejects_bad_filters),
      cmocka_unit_test(null_registry),
      cmocka_unit_test(names_and_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
