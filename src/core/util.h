/*
 * src/core/util.h - small pieces the core shares: the thread-local error
 * message behind qreg_last_error(), clocks, query ids, text checks.
 * Owns nothing but the calling thread's error buffer.
 */
#ifndef QREG_CORE_UTIL_H
#define QREG_CORE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qreg.h"

/* Records a detailed message for qreg_last_error() and gives code, so a
   failure reads `return qreg__fail(QREG_EINVAL, "sql: empty");`. A macro
   over a non-variadic inline function, so that the value returned is visible
   where it is used (to static analysis too, which does not follow variadic
   calls: a failure path is never taken for a success). */
int qreg__set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int qreg__with_code(int code, int recorded) {
  (void)recorded;
  return code;
}
#define qreg__fail(code, ...) qreg__with_code((code), qreg__set_error(__VA_ARGS__))
/* The value of a hexadecimal digit, -1 for any other character. */
int qreg__hex_value(char c);

/* Clears the thread's message: called on entry to each public function. */
void qreg__clear_error(void);

/* Wall clock, milliseconds since the Unix epoch (for what users read). */
int64_t qreg__wall_ms(void);
/* Monotonic clock, milliseconds (for deadlines). */
uint64_t qreg__mono_ms(void);

/* A query id: 16 random bytes laid out as a UUIDv4. */
typedef struct qreg__uuid {
  uint8_t bytes[16];
} qreg__uuid_t;

/* Fills *out from the OS random source (getrandom). 0 or QREG_ESYS. */
int qreg__uuid_random(qreg__uuid_t *out);
void qreg__uuid_format(const qreg__uuid_t *uuid, qreg_id_t *out);
/* Parses the 36-character form (either case). false if malformed. */
bool qreg__uuid_parse(const char *text, qreg__uuid_t *out);

/* Offset of the first invalid UTF-8 sequence in text[0, len), or len if the
   whole text is valid (no overlongs, no surrogates, nothing past U+10FFFF). */
size_t qreg__utf8_invalid_at(const char *text, size_t len);
/* Whether text holds nothing but ASCII white space. */
bool qreg__is_blank(const char *text, size_t len);

/* strdup that accepts NULL (returns NULL for NULL). */
char *qreg__strdup(const char *text);

/* A growing string, always terminated. On out of memory it is freed, s
   stays NULL and failed is set: the caller checks once at the end. */
typedef struct qreg__text {
  char *s; /* owned */
  size_t len, cap;
  bool failed;
} qreg__text_t;

void qreg__text_put(qreg__text_t *t, const char *bytes, size_t len);
void qreg__text_puts(qreg__text_t *t, const char *s);
__attribute__((format(printf, 2, 3))) void qreg__text_printf(qreg__text_t *t, const char *fmt, ...);

/* text[0, len) with %XX decoded, malloc'd ('+' stays '+', as libpq reads it;
   "%00" and malformed escapes stay as they are, so no NUL is made). NULL when
   out of memory. */
char *qreg__percent_decode(const char *text, size_t len);

#endif /* QREG_CORE_UTIL_H */
