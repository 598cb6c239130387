/*
 * tests/test-pg-options.c - the postgres driver's options (README, "--db
 * URL") on a real server (tests/support/pg_fixture), each seen from the
 * server's side: the statement_timeout backstop (on, off, its margin), the
 * connection check interval, the password option (replacing the URL's,
 * never shown), connect_timeout (replacing the URL's); qreg's own options
 * written in a URI or a conninfo are taken out before libpq reads it; a
 * registry's driver_options win over the URL.
 *
 * Owns, in each test, the registry it opens and the socket standing in for
 * a silent server; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define APP "qreg_t_options"
#define WRONG_PASSWORD "Wr0ng-0ption-Pw"

/* The statement_timeout our query ran under, in ms (0: none). */
#define TIMEOUT_SQL                                                                                \
  "SELECT (extract(epoch FROM current_setting('statement_timeout')::interval) * 1000)::int8"

/* Opens a registry on url (NULL: the fixture's) with driver options. */
static qreg_t *open_with(const char *url, const char *const *options, size_t count) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.application_name = APP;
  config.driver_options = options;
  config.driver_option_count = count;
  return pg_test_open_config(&config);
}

/* Runs sql with the given timeout (0: the default) and returns its single
   value's page; the query must succeed. */
static qreg_page_t *run_value(qreg_t *reg, const char *sql, uint64_t timeout_ms) {
  qreg_id_t id = test_execute_opts(reg, sql, timeout_ms, 0, 0);
  qreg_status_t status = test_wait(reg, &id);
  if (status != QREG_SUCCEEDED) {
    qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
    fail_msg("%s: %s: %s", sql, qreg_status_name(status), snap->error.message);
  }
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  return page;
}

static int64_t run_int(qreg_t *reg, const char *sql, uint64_t timeout_ms) {
  qreg_page_t *page = run_value(reg, sql, timeout_ms);
  assert_int_equal(page->values[0].type, QREG_TYPE_INT);
  int64_t value = page->values[0].v.i;
  qreg_page_free(page);
  return value;
}

static void assert_text(qreg_t *reg, const char *sql, const char *expected) {
  qreg_page_t *page = run_value(reg, sql, 0);
  assert_int_equal(page->values[0].type, QREG_TYPE_TEXT);
  assert_string_equal(page->values[0].v.s.ptr, expected);
  qreg_page_free(page);
}

/* client_connection_check_interval exists from PostgreSQL 14 on; the
   driver leaves older servers alone. */
static void assert_check_interval(qreg_t *reg, const char *expected) {
  if (pg_admin_int(pg_admin(), "SELECT current_setting('server_version_num')::int") < 140000)
    return;
  assert_text(reg, "SELECT current_setting('client_connection_check_interval')", expected);
}

static void assert_between(int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high)
    fail_msg("%lld not in [%lld, %lld]", (long long)value, (long long)low, (long long)high);
}

/* --- tests ---------------------------------------------------------------------- */

static void statement_timeout_backstop(void **state) {
  (void)state;
  /* Default: on, 1 s after the query's own timeout (what is left of it). */
  qreg_t *reg = open_with(NULL, NULL, 0);
  assert_between(run_int(reg, TIMEOUT_SQL, 60000), 60000, 61000);
  pg_test_close_checked(reg, APP);

  const char *margin[] = {"statement_timeout_margin_ms=20000"};
  reg = open_with(NULL, margin, 1);
  assert_between(run_int(reg, TIMEOUT_SQL, 60000), 79000, 80000);
  pg_test_close_checked(reg, APP);

  const char *off[] = {"statement_timeout_backstop=off"};
  reg = open_with(NULL, off, 1);
  assert_int_equal(run_int(reg, TIMEOUT_SQL, 60000), 0);
  pg_test_close_checked(reg, APP);
}

/* qreg's own options in the URL never reach libpq (which would refuse
   them); the registry's driver_options win over them. */
static void own_options_in_the_url(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url,
           "postgresql://qreg_reader@127.0.0.1:%d/postgres?statement_timeout_backstop=off"
           "&connect_timeout=5&connection_check_interval_ms=250",
           pg_fixture_port());
  qreg_t *reg = open_with(url, NULL, 0);
  assert_int_equal(run_int(reg, TIMEOUT_SQL, 60000), 0);
  assert_check_interval(reg, "250ms");
  pg_test_close_checked(reg, APP);

  const char *on[] = {"statement_timeout_backstop=on", "connection_check_interval_ms=0"};
  reg = open_with(url, on, 2);
  assert_between(run_int(reg, TIMEOUT_SQL, 60000), 60000, 61000);
  /* 0: the server's own setting, which is 0. */
  assert_check_interval(reg, "0");
  pg_test_close_checked(reg, APP);

  snprintf(url, sizeof url,
           "host=127.0.0.1 statement_timeout_margin_ms = '30000' port=%d user=qreg_reader "
           "dbname=postgres",
           pg_fixture_port());
  reg = open_with(url, NULL, 0);
  assert_between(run_int(reg, TIMEOUT_SQL, 60000), 89000, 90000);
  /* The default check interval on PostgreSQL 14+. */
  assert_check_interval(reg, "1s");
  pg_test_close_checked(reg, APP);
}

/* The password option replaces the URL's; a wrong one is never shown. */
static void password_option(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url,
           "postgresql://" PG_FIXTURE_PASSWORD_USER ":" WRONG_PASSWORD "@127.0.0.1:%d/postgres",
           pg_fixture_port());
  const char *right[] = {"password=" PG_FIXTURE_PASSWORD};
  qreg_t *reg = open_with(url, right, 1);
  assert_text(reg, "SELECT current_user::text", PG_FIXTURE_PASSWORD_USER);
  char *shown = NULL;
  assert_int_equal(qreg_redacted_url(reg, &shown), 0);
  assert_null(strstr(shown, WRONG_PASSWORD));
  assert_null(strstr(shown, PG_FIXTURE_PASSWORD));
  free(shown);
  pg_test_close_checked(reg, APP);

  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=postgres user=" PG_FIXTURE_PASSWORD_USER,
           pg_fixture_port());
  const char *wrong[] = {"password=" WRONG_PASSWORD};
  reg = open_with(url, wrong, 1);
  qreg_id_t id = test_execute(reg, "SELECT 1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, NULL, "password authentication failed");
  pg_test_assert_not_in_snapshot(reg, &id, WRONG_PASSWORD);
  pg_test_close_checked(reg, APP);
}

/* connect_timeout from the options replaces the URL's: a server that
   accepts and never answers is given up after 2 s, not 60. */
static void connect_timeout_option(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  assert_int_equal(listen(fd, 8), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  char url[200];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d connect_timeout=60 user=x dbname=y",
           ntohs(addr.sin_port));
  const char *options[] = {"connect_timeout=2"};
  qreg_t *reg = open_with(url, options, 1);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  qreg_id_t id = test_execute(reg, "SELECT 1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  clock_gettime(CLOCK_MONOTONIC, &end);
  pg_test_assert_failed(reg, &id, NULL, "timed out after 2000 ms");
  assert_true(end.tv_sec - start.tv_sec < 30);
  pg_test_close_checked(reg, APP);
  close(fd);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(statement_timeout_backstop),
      cmocka_unit_test(own_options_in_the_url),
      cmocka_unit_test(password_option),
      cmocka_unit_test(connect_timeout_option),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
