/*
 * tests/test-pg-secrets.c - the server's error text comes back as the
 * server sent it (docs/security.md), on a real server
 * (tests/support/pg_fixture): a query that quotes guesses of the password
 * in an error learns nothing from what comes back, since nothing in the
 * message, detail or hint is masked. The password reaches the driver in
 * the URL, as the password option or as PGPASSWORD; each way the error for
 * the right guess and for a wrong one differ only in the guess.
 *
 * Owns, in each test, the registry it opens; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define APP "qreg_t_secrets"
#define WRONG_GUESS "qreg-fixture-s3cres"

/* Opens a registry as the fixture's password role on url with driver
   options. */
static qreg_t *open_with(const char *url, const char *const *options, size_t count) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.application_name = APP;
  config.driver_options = options;
  config.driver_option_count = count;
  return pg_test_open_config(&config);
}

/* Runs sql_format with guess in it, which must fail, and returns its error
   with every occurrence of guess replaced by "<GUESS>" in *message,
   *detail and *hint (the caller frees them). */
static void guess_error(qreg_t *reg, const char *guess, const char *sql_format, char **message,
                        char **detail, char **hint) {
  char sql[200];
  snprintf(sql, sizeof sql, sql_format, guess);
  qreg_id_t id = test_execute(reg, sql, NULL);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
  assert_string_equal(snap->error.type, "database");
  assert_string_equal(snap->error.code, "22P02");
  /* The guess is there, verbatim: nothing was masked. */
  assert_true(strstr(snap->error.message, guess) != NULL ||
              strstr(snap->error.detail, guess) != NULL);
  const char *parts[] = {snap->error.message, snap->error.detail, snap->error.hint};
  char **outs[] = {message, detail, hint};
  for (size_t i = 0; i < 3; i++) {
    assert_null(strstr(parts[i], "***"));
    size_t guess_len = strlen(guess), n = 0;
    char *out = malloc(strlen(parts[i]) * 2 + 16);
    assert_non_null(out);
    for (const char *p = parts[i]; *p != '\0';) {
      if (strncmp(p, guess, guess_len) == 0) {
        memcpy(out + n, "<GUESS>", 7);
        n += 7;
        p += guess_len;
      } else {
        out[n++] = *p++;
      }
    }
    out[n] = '\0';
    *outs[i] = out;
  }
  qreg_snapshot_free(snap);
}

/* The errors of the right guess and of a wrong one are the same text but
   for the guess, in the message (integer) and in the detail (json). */
static void assert_guess_unconfirmed(qreg_t *reg) {
  static const char *const sqls[] = {"SELECT '%s'::int", "SELECT '\"%s'::json"};
  for (size_t t = 0; t < sizeof sqls / sizeof sqls[0]; t++) {
    char *right[3], *wrong[3];
    guess_error(reg, PG_FIXTURE_PASSWORD, sqls[t], &right[0], &right[1], &right[2]);
    guess_error(reg, WRONG_GUESS, sqls[t], &wrong[0], &wrong[1], &wrong[2]);
    for (size_t i = 0; i < 3; i++) {
      if (strcmp(right[i], wrong[i]) != 0)
        fail_msg("%s: right guess \"%s\", wrong guess \"%s\"", sqls[t], right[i], wrong[i]);
      free(right[i]);
      free(wrong[i]);
    }
  }
}

/* The password in the URL. */
static void password_in_url(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url,
           "postgresql://" PG_FIXTURE_PASSWORD_USER ":" PG_FIXTURE_PASSWORD
           "@127.0.0.1:%d/postgres",
           pg_fixture_port());
  qreg_t *reg = open_with(url, NULL, 0);
  assert_guess_unconfirmed(reg);
  char *shown = NULL;
  assert_int_equal(qreg_redacted_url(reg, &shown), 0);
  assert_null(strstr(shown, PG_FIXTURE_PASSWORD));
  free(shown);
  pg_test_close_checked(reg, APP);
}

/* The password as the driver option, with a conninfo. */
static void password_option(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=postgres user=" PG_FIXTURE_PASSWORD_USER,
           pg_fixture_port());
  const char *options[] = {"password=" PG_FIXTURE_PASSWORD};
  qreg_t *reg = open_with(url, options, 1);
  assert_guess_unconfirmed(reg);
  pg_test_close_checked(reg, APP);
}

/* The password in PGPASSWORD. */
static void password_in_environment(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=postgres user=" PG_FIXTURE_PASSWORD_USER,
           pg_fixture_port());
  assert_int_equal(setenv("PGPASSWORD", PG_FIXTURE_PASSWORD, 1), 0);
  qreg_t *reg = open_with(url, NULL, 0);
  assert_guess_unconfirmed(reg);
  pg_test_close_checked(reg, APP);
  assert_int_equal(unsetenv("PGPASSWORD"), 0);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(password_in_url),
      cmocka_unit_test(password_option),
      cmocka_unit_test(password_in_environment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
