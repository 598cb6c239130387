/*
 * tests/test-pg-connect.c - how the postgres driver reaches the server and
 * how it says it could not: the URL forms (postgres://, postgresql://, a
 * libpq conninfo, the PG* environment variables), application_name (default
 * "qreg", configurable), and the failures - wrong port, wrong password,
 * unknown database, a server that never answers (connect timeout), a
 * malformed connection string - each with a clear message that never shows
 * the password.
 *
 * Owns, in each test, the registry it opens and the environment variables
 * it sets (unset before it returns); the fixture owns the server.
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
#include <unistd.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define WRONG_PASSWORD "Wr0ng-s3cret-Pw"

/* Runs one query on a fresh registry for url; returns its terminal status
   and leaves the registry to the caller in *reg_out. */
static qreg_status_t run_one(const char *url, const char *app, const char *sql, qreg_t **reg_out,
                             qreg_id_t *id_out) {
  qreg_t *reg = pg_test_open(url, app, 2, false);
  *id_out = test_execute(reg, sql, NULL);
  *reg_out = reg;
  return test_wait(reg, id_out);
}

/* The value of the query's single cell, as text. */
static void assert_single_text(qreg_t *reg, const qreg_id_t *id, const char *expected) {
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id->str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  assert_int_equal(page->values[0].type, QREG_TYPE_TEXT);
  assert_string_equal(page->values[0].v.s.ptr, expected);
  qreg_page_free(page);
}

static void url_forms(void **state) {
  (void)state;
  char urls[3][200];
  snprintf(urls[0], sizeof urls[0], "postgres://qreg_reader@127.0.0.1:%d/postgres",
           pg_fixture_port());
  snprintf(urls[1], sizeof urls[1],
           "postgresql://qreg_reader@127.0.0.1:%d/postgres?sslmode=disable", pg_fixture_port());
  snprintf(urls[2], sizeof urls[2], "host=%s port=%d dbname=postgres user=qreg_reader",
           pg_fixture_socket_dir(), pg_fixture_port());
  for (int i = 0; i < 3; i++) {
    qreg_t *reg;
    qreg_id_t id;
    assert_int_equal(run_one(urls[i], "qreg_t_forms", "SELECT current_user::text", &reg, &id),
                     QREG_SUCCEEDED);
    assert_single_text(reg, &id, "qreg_reader");
    pg_test_close_checked(reg, "qreg_t_forms");
  }
}

/* Host names are resolved off the loop (on a worker) before libpq
   connects: "localhost" works, an unknown name fails clearly. */
static void host_names(void **state) {
  (void)state;
  char url[200];
  snprintf(url, sizeof url, "postgresql://qreg_reader@localhost:%d/postgres", pg_fixture_port());
  qreg_t *reg;
  qreg_id_t id;
  assert_int_equal(run_one(url, "qreg_t_names", "SELECT 'resolved'::text", &reg, &id),
                   QREG_SUCCEEDED);
  assert_single_text(reg, &id, "resolved");
  pg_test_close_checked(reg, "qreg_t_names");

  snprintf(url, sizeof url, "host=qreg-no-such-host.invalid port=%d connect_timeout=5 user=x",
           pg_fixture_port());
  assert_int_equal(run_one(url, "qreg_t_names", "SELECT 1", &reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, NULL, "qreg-no-such-host.invalid");
  pg_test_close_checked(reg, "qreg_t_names");
}

/* An empty URL is all defaults: the PG* variables say where to go. */
static void environment_variables(void **state) {
  (void)state;
  char port[16];
  snprintf(port, sizeof port, "%d", pg_fixture_port());
  setenv("PGHOST", "127.0.0.1", 1);
  setenv("PGPORT", port, 1);
  setenv("PGUSER", "qreg_reader", 1);
  setenv("PGDATABASE", "template1", 1);
  qreg_t *reg;
  qreg_id_t id;
  qreg_status_t status =
      run_one("postgresql://", "qreg_t_env", "SELECT current_database()::text", &reg, &id);
  unsetenv("PGHOST");
  unsetenv("PGPORT");
  unsetenv("PGUSER");
  unsetenv("PGDATABASE");
  assert_int_equal(status, QREG_SUCCEEDED);
  assert_single_text(reg, &id, "template1");
  pg_test_close_checked(reg, "qreg_t_env");
}

/* Our sessions carry application_name: "qreg" unless configured; the
   driver option beats the URL, which beats the registry's. */
static void application_name(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(NULL, NULL, 2, false);
  qreg_id_t id = test_execute(reg, "SELECT current_setting('application_name')", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  assert_single_text(reg, &id, "qreg");
  assert_int_equal(pg_admin_sessions(pg_admin(), "qreg", NULL), 1);
  pg_test_close_checked(reg, "qreg");

  /* Configured. */
  reg = pg_test_open(NULL, "qreg_t_named", 2, false);
  id = test_execute(reg, "SELECT current_setting('application_name')", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  assert_single_text(reg, &id, "qreg_t_named");
  pg_test_close_checked(reg, "qreg_t_named");

  /* The URL's is more specific than the registry's (a program's default,
     such as qreg mcp's "qreg-mcp"): it wins. */
  char url[200];
  snprintf(url, sizeof url, "%s application_name=qreg_t_from_url", pg_fixture_reader_conninfo());
  reg = pg_test_open(url, "qreg_t_named", 2, false);
  id = test_execute(reg, "SELECT current_setting('application_name')", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  assert_single_text(reg, &id, "qreg_t_from_url");
  pg_test_close_checked(reg, "qreg_t_from_url");

  /* The application_name driver option wins over both. */
  const char *options[] = {"application_name=qreg_t_option"};
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.application_name = "qreg_t_named";
  config.driver_options = options;
  config.driver_option_count = 1;
  reg = pg_test_open_config(&config);
  id = test_execute(reg, "SELECT current_setting('application_name')", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  assert_single_text(reg, &id, "qreg_t_option");
  pg_test_close_checked(reg, "qreg_t_option");
}

static void wrong_port(void **state) {
  (void)state;
  char url[200];
  int port = pg_fixture_unused_port();
  snprintf(url, sizeof url, "postgresql://qreg_test:%s@127.0.0.1:%d/postgres", WRONG_PASSWORD,
           port);
  qreg_t *reg;
  qreg_id_t id;
  assert_int_equal(run_one(url, "qreg_t_port", "SELECT 1", &reg, &id), QREG_FAILED);
  char port_text[32];
  snprintf(port_text, sizeof port_text, "port %d", port);
  pg_test_assert_failed(reg, &id, NULL, port_text);
  pg_test_assert_failed(reg, &id, NULL, "Connection refused");
  pg_test_assert_not_in_snapshot(reg, &id, WRONG_PASSWORD);
  pg_test_close_checked(reg, "qreg_t_port");
}

static void wrong_password(void **state) {
  (void)state;
  char url[200];
  snprintf(url, sizeof url, "postgresql://" PG_FIXTURE_PASSWORD_USER ":%s@127.0.0.1:%d/postgres",
           WRONG_PASSWORD, pg_fixture_port());
  qreg_t *reg;
  qreg_id_t id;
  assert_int_equal(run_one(url, "qreg_t_pw", "SELECT 1", &reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, NULL, "password authentication failed");
  pg_test_assert_not_in_snapshot(reg, &id, WRONG_PASSWORD);
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_string_equal(s->error.type, "connection");
  print_message("  wrong password: %s\n", s->error.message);
  qreg_snapshot_free(s);
  pg_test_close_checked(reg, "qreg_t_pw");

  /* The right one works: the failure was the password. */
  snprintf(url, sizeof url,
           "postgresql://" PG_FIXTURE_PASSWORD_USER ":" PG_FIXTURE_PASSWORD
           "@127.0.0.1:%d/postgres",
           pg_fixture_port());
  assert_int_equal(run_one(url, "qreg_t_pw", "SELECT current_user::text", &reg, &id),
                   QREG_SUCCEEDED);
  assert_single_text(reg, &id, PG_FIXTURE_PASSWORD_USER);
  pg_test_close_checked(reg, "qreg_t_pw");
}

static void unknown_database(void **state) {
  (void)state;
  char url[200];
  snprintf(url, sizeof url,
           "host=127.0.0.1 port=%d dbname=qreg_no_such_db user=qreg_test "
           "password=%s",
           pg_fixture_port(), WRONG_PASSWORD);
  qreg_t *reg;
  qreg_id_t id;
  assert_int_equal(run_one(url, "qreg_t_nodb", "SELECT 1", &reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, NULL, "database \"qreg_no_such_db\" does not exist");
  pg_test_assert_not_in_snapshot(reg, &id, WRONG_PASSWORD);
  pg_test_close_checked(reg, "qreg_t_nodb");
}

/* A server that accepts the TCP connection and never answers: the connect
   times out (connect_timeout from the URL; libpq's own is not honoured by
   non-blocking connects) and the query fails. */
static void connect_timeout(void **state) {
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
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d connect_timeout=2 user=x dbname=y",
           ntohs(addr.sin_port));
  qreg_t *reg;
  qreg_id_t id;
  assert_int_equal(run_one(url, "qreg_t_ctimeout", "SELECT 1", &reg, &id), QREG_FAILED);
  pg_test_assert_failed(reg, &id, NULL, "timed out");
  pg_test_close_checked(reg, "qreg_t_ctimeout");
  close(fd);
}

/* A connection string libpq cannot parse is refused by qreg_open, and the
   message hides the password even when libpq would quote it. */
static void malformed_urls(void **state) {
  (void)state;
  const char *urls[] = {
      "host=127.0.0.1 password=" WRONG_PASSWORD " port",
      "postgresql://user:" WRONG_PASSWORD "%zz@127.0.0.1/db",
      "host=127.0.0.1 password='" WRONG_PASSWORD,
      "host=127.0.0.1 nosuchoption=1 password=" WRONG_PASSWORD,
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    qreg_config_t config;
    qreg_config_init(&config);
    config.db_url = urls[i];
    qreg_t *reg = NULL;
    int rc = qreg_open(&config, &reg);
    assert_int_equal(rc, QREG_EURL);
    assert_null(reg);
    const char *message = qreg_last_error();
    print_message("  %s\n", message);
    assert_true(message[0] != '\0');
    assert_null(strstr(message, WRONG_PASSWORD));
    assert_null(strstr(message, "s3cret"));
  }
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(url_forms),
      cmocka_unit_test(host_names),
      cmocka_unit_test(environment_variables),
      cmocka_unit_test(application_name),
      cmocka_unit_test(wrong_port),
      cmocka_unit_test(wrong_password),
      cmocka_unit_test(unknown_database),
      cmocka_unit_test(connect_timeout),
      cmocka_unit_test(malformed_urls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
