/*
 * tests/fuzz/fuzz_url.c - libFuzzer target for database URL parsing and
 * redaction: every built-in driver's matches() and redact_url() on arbitrary
 * text, and the PostgreSQL driver's create() (URL or conninfo -> libpq
 * settings, options, application_name) with no connection made.
 *
 * The property beyond "no crash, no leak": a password is never in what is
 * printed. Each input is also tried with a marker password placed where
 * every form keeps one (URI userinfo, ?password=, password= in a conninfo,
 * a dbname that is itself a URI); neither the redacted URL nor create()'s
 * error message may contain the marker.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS] (builds every target).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/driver.h"
#include "qreg.h"

#define MARKER "Zq7pW0rdMarker"

typedef struct {
  const char *url;
  bool secret_placed; /* MARKER is a password in url */
} fuzz_case_t;

static void check_output(const fuzz_case_t *c, const char *what, const char *text) {
  /* The forms are PostgreSQL's: "sqlite:f.db password=x" is a file name. */
  const qreg_driver_t *owner = qreg_driver_find(c->url);
  bool postgres = owner != NULL && strcmp(owner->name, "postgres") == 0;
  if (c->secret_placed && postgres && text != NULL && strstr(text, MARKER) != NULL) {
    fprintf(stderr, "fuzz_url: %s shows the password\n  url: %s\n  out: %s\n", what, c->url, text);
    abort();
  }
}

static void try_driver(const qreg_driver_t *driver, void *arg) {
  const fuzz_case_t *c = arg;
  if (driver->matches != NULL)
    (void)driver->matches(c->url);
  /* Redaction is the job of the driver the URL resolves to (as for
     qreg_redacted_url); another driver's redact_url may not know the form. */
  if (driver == qreg_driver_find(c->url) && driver->redact_url != NULL) {
    char *redacted = driver->redact_url(c->url);
    check_output(c, "redact_url", redacted);
    if (redacted != NULL) {
      /* Redacting a redacted URL changes nothing more that matters: it
         must not fail or grow a secret back. */
      char *again = driver->redact_url(redacted);
      check_output(c, "redact_url twice", again);
      free(again);
    }
    free(redacted);
  }
  /* create() parses without connecting for PostgreSQL; SQLite's create
     opens files, which a fuzzer must not do. */
  if (strcmp(driver->name, "postgres") == 0) {
    qreg_driver_config_t config = {
        .url = c->url,
        .application_name = "qreg",
        .max_connections = 1,
    };
    void *state = NULL;
    char *message = NULL;
    if (driver->create(&config, &state, &message) == 0)
      driver->destroy(state);
    check_output(c, "create's message", message);
    free(message);
  }
}

static void run_case(const char *url, bool secret_placed) {
  fuzz_case_t c = {.url = url, .secret_placed = secret_placed};
  qreg_driver_foreach(try_driver, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0;
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0'; /* a URL is a C string: it ends at the first NUL */
  run_case(text, false);

  /* The same text around a password in each place a password goes. The
     text never goes inside the userinfo (it could end the password early
     and make the marker a host name). */
  static const char *const forms[] = {
      "postgresql://user:" MARKER "@%s",
      "postgres://user:" MARKER "@host/db?%s",
      "postgresql://user@host/db?%s&password=" MARKER,
      "postgresql://user@host/db?password=" MARKER "&%s",
      "host=h password=" MARKER " %s",
      "%s password=" MARKER,
      "dbname=postgresql://u:" MARKER "@h/d %s",
  };
  if (strstr(text, MARKER) != NULL) { /* the fuzzer learns the marker */
    free(text);
    return 0;
  }
  size_t cap = strlen(text) + 128;
  char *url = malloc(cap);
  if (url != NULL) {
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
      snprintf(url, cap, forms[i], text);
      run_case(url, true);
    }
  }
  free(url);
  free(text);
  return 0;
}
