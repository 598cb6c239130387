/*
 * tests/test-cli-secrets.c - the program never prints a password it was
 * given (docs/security.md): `qreg`, `qreg query` and `qreg mcp` (QREG_BIN,
 * set by ctest) are run with URLs and conninfos carrying one - well formed,
 * malformed, unreachable, in a mistyped option or where a command was
 * expected - and everything they write (stdout and stderr) must lack it.
 * No database is needed: every URL fails or points at a closed port.
 *
 * Owns nothing beyond each run's pipe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SECRET "Pw5ecret"

/* Runs the shell words args after the program, stdin empty, and returns
   all it wrote (malloc'd). */
static char *run_qreg(const char *args) {
  const char *bin = getenv("QREG_BIN");
  if (!bin) {
    fail_msg("QREG_BIN is not set (ctest sets it to the qreg program)");
    return NULL;
  }
  char command[2048];
  snprintf(command, sizeof command, "'%s' %s </dev/null 2>&1", bin, args);
  FILE *p = popen(command, "r"); // NOLINT(cert-env33-c): run as a user would, by the shell
  assert_non_null(p);
  size_t cap = 65536, len = 0, n;
  char *out = malloc(cap);
  assert_non_null(out);
  while (len + 1 < cap && (n = fread(out + len, 1, cap - len - 1, p)) > 0)
    len += n;
  out[len] = '\0';
  (void)pclose(p);
  return out;
}

static void password_never_printed(void **state) {
  (void)state;
  static const char *const runs[] = {
      /* where a command or an option was expected */
      "'postgres://app:" SECRET "@db/app'",
      "'--db=postgres://app:" SECRET "@db/app'",
      "query '--dbx=postgres://app:" SECRET "@db/app' 'SELECT 1'",
      "query --dbx 'host=db password=" SECRET "' 'SELECT 1'",
      "mcp 'postgres://app:" SECRET "@db/app'",
      "mcp '--dbx=host=db password=" SECRET "'",
      /* URLs and conninfos qreg or libpq cannot read */
      "query --db 'host=db password='\\''" SECRET "' 'SELECT 1'",
      "query --db 'host=db password=" SECRET " bogus=1' 'SELECT 1'",
      "query --db 'postgresql://app:" SECRET "@[::1/app' 'SELECT 1'",
      "query --db 'postgresql://app:" SECRET "@db/app?x=%zz' 'SELECT 1'",
      "query --db 'postgres:/app:" SECRET "@db/app' 'SELECT 1'",
      "query --db 'nosuch://app:" SECRET "@db/app' 'SELECT 1'",
      "mcp --db 'host=db password='\\''" SECRET "'",
      "mcp --db 'postgresql://app:" SECRET "@[::1/app'",
      "mcp --db 'nosuch://app:" SECRET "@db/app'",
      /* servers that are not there: the connection error, and the line
         `qreg mcp` prints when it starts */
      "query --db 'postgresql://app:" SECRET "@127.0.0.1:1/app' 'SELECT 1'",
      "query --db 'host=127.0.0.1 port=1 password=" SECRET "' 'SELECT 1'",
      "mcp --db 'postgresql://app:pa " SECRET "@127.0.0.1:1/app'",
      "mcp --db 'postgresql://app:p@" SECRET "@127.0.0.1:1/app'",
      "mcp --db 'postgresql://127.0.0.1:1/app?password=" SECRET "'",
      "mcp --db 'postgresql://app:" SECRET "/app'",
      "mcp --db 'host=127.0.0.1 port=1 password = '\\''x " SECRET "'\\'''",
  };
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    char *out = run_qreg(runs[i]);
    if (out[0] == '\0')
      fail_msg("qreg %s: printed nothing", runs[i]);
    if (strstr(out, SECRET) != NULL)
      fail_msg("qreg %s: printed the password:\n%s", runs[i], out);
    free(out);
  }
  /* QREG_DB, the way to keep the URL off the command line, likewise. */
  assert_int_equal(setenv("QREG_DB", "postgresql://app:" SECRET "@127.0.0.1:1/app", 1), 0);
  char *out = run_qreg("mcp");
  assert_non_null(strstr(out, "postgresql://app:***@127.0.0.1:1/app"));
  assert_null(strstr(out, SECRET));
  free(out);
  assert_int_equal(unsetenv("QREG_DB"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(password_never_printed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
