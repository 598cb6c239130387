/*
 * src/drivers/driver.c - the list of drivers and the error record they fill.
 * Owns the list of drivers registered at run time (tests add the scripted
 * one); it lives for the process.
 */
#include "drivers/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const qreg_driver_t **registered;
static size_t registered_count;

int qreg_driver_register(const qreg_driver_t *driver) {
  const qreg_driver_t **grown =
      realloc(registered, (registered_count + 1) * sizeof *registered);
  if (grown == NULL)
    return QREG_ENOMEM;
  registered = grown;
  registered[registered_count++] = driver;
  return 0;
}

const qreg_driver_t *qreg_driver_find(const char *url) {
  for (size_t i = registered_count; i-- > 0;) {
    if (registered[i]->matches(url))
      return registered[i];
  }
  static const qreg_driver_t *const builtin[] = {&qreg_driver_sqlite,
                                                 &qreg_driver_postgres};
  for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
    if (builtin[i]->matches(url))
      return builtin[i];
  }
  return NULL;
}

static void replace(char **slot, char *value) {
  free(*slot);
  *slot = value;
}

void qreg_driver_error_set(qreg_driver_error_t *error, const char *type,
                           const char *code, const char *fmt, ...) {
  char *message = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&message, fmt, ap) < 0)
    message = NULL;
  va_end(ap);
  replace(&error->type, type ? strdup(type) : NULL);
  replace(&error->code, code ? strdup(code) : NULL);
  replace(&error->message, message);
}

void qreg_driver_error_set_detail(qreg_driver_error_t *error, const char *detail) {
  replace(&error->detail, detail ? strdup(detail) : NULL);
}

void qreg_driver_error_set_hint(qreg_driver_error_t *error, const char *hint) {
  replace(&error->hint, hint ? strdup(hint) : NULL);
}

void qreg_driver_error_clear(qreg_driver_error_t *error) {
  replace(&error->type, NULL);
  replace(&error->code, NULL);
  replace(&error->message, NULL);
  replace(&error->detail, NULL);
  replace(&error->hint, NULL);
}
