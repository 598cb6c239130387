/*
 * src/core/util.c - error codes and messages, clocks, UUIDv4 ids, UTF-8
 * checks, status names and option defaults: the small, stateless parts of the
 * public API. The only state is each thread's last error message.
 */
#include "core/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local char last_error[512];

const char *qreg_version(void) {
  return QREG_VERSION_STRING;
}

unsigned qreg_version_number(void) {
  return QREG_VERSION_HEX;
}

const char *qreg_strerror(int code) {
  switch (code) {
  case QREG_OK:
    return "success";
  case QREG_EINVAL:
    return "invalid argument";
  case QREG_ENOMEM:
    return "out of memory";
  case QREG_ENOTFOUND:
    return "no such query";
  case QREG_ECLOSED:
    return "registry closed";
  case QREG_EFULL:
    return "too many queries";
  case QREG_ETOOBIG:
    return "sql too large";
  case QREG_ENOTREADY:
    return "query not finished";
  case QREG_ENORESULT:
    return "query has no result";
  case QREG_ERANGE:
    return "offset out of range";
  case QREG_ETIMEDOUT:
    return "timed out";
  case QREG_EURL:
    return "database url not understood";
  case QREG_EDRIVER:
    return "driver error";
  case QREG_ESYS:
    return "system error";
  default:
    return "unknown error";
  }
}

const char *qreg_last_error(void) {
  return last_error;
}

void qreg__clear_error(void) {
  last_error[0] = '\0';
}

int qreg__set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return 0;
}

int64_t qreg__wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t qreg__mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void qreg_format_time(int64_t ms, char *buf, size_t size) {
  if (buf == NULL || size == 0)
    return;
  if (ms <= 0) {
    buf[0] = '\0';
    return;
  }
  time_t seconds = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int qreg__uuid_random(qreg__uuid_t *out) {
  size_t got = 0;
  while (got < sizeof out->bytes) {
    ssize_t n = getrandom(out->bytes + got, sizeof out->bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return qreg__fail(QREG_ESYS, "getrandom: %s", strerror(errno));
    }
    got += (size_t)n;
  }
  out->bytes[6] = (uint8_t)((out->bytes[6] & 0x0f) | 0x40); /* version 4 */
  out->bytes[8] = (uint8_t)((out->bytes[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  return 0;
}

void qreg__uuid_format(const qreg__uuid_t *uuid, qreg_id_t *out) {
  static const char hex[] = "0123456789abcdef";
  char *p = out->str;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    *p++ = hex[uuid->bytes[i] >> 4];
    *p++ = hex[uuid->bytes[i] & 15];
  }
  *p = '\0';
}

int qreg__hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool qreg__uuid_parse(const char *text, qreg__uuid_t *out) {
  if (text == NULL || strnlen(text, QREG_ID_LEN + 1) != QREG_ID_LEN)
    return false;
  int byte = 0;
  for (int i = 0; i < QREG_ID_LEN;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-')
        return false;
      i++;
      continue;
    }
    int hi = qreg__hex_value(text[i]), lo = qreg__hex_value(text[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out->bytes[byte++] = (uint8_t)(hi << 4 | lo);
    i += 2;
  }
  return true;
}

size_t qreg__utf8_invalid_at(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned min, cp;
    if ((c & 0xe0) == 0xc0) {
      need = 1, min = 0x80, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      need = 2, min = 0x800, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      need = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (len - i <= need)
      return i;
    for (size_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return i;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return i;
    i += need + 1;
  }
  return len;
}

bool qreg__is_blank(const char *text, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v')
      return false;
  }
  return true;
}

char *qreg__strdup(const char *text) {
  return text ? strdup(text) : NULL;
}

static bool text_reserve(qreg__text_t *t, size_t more) {
  if (t->failed)
    return false;
  if (t->s != NULL && t->len + more + 1 <= t->cap)
    return true;
  size_t cap = (t->len + more + 1) * 2;
  char *grown = realloc(t->s, cap);
  if (grown == NULL) {
    free(t->s);
    t->s = NULL;
    t->failed = true;
    return false;
  }
  t->s = grown;
  t->cap = cap;
  return true;
}

void qreg__text_put(qreg__text_t *t, const char *bytes, size_t len) {
  if (!text_reserve(t, len))
    return;
  memcpy(t->s + t->len, bytes, len);
  t->len += len;
  t->s[t->len] = '\0';
}

void qreg__text_puts(qreg__text_t *t, const char *s) {
  qreg__text_put(t, s, strlen(s));
}

void qreg__text_printf(qreg__text_t *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !text_reserve(t, (size_t)n))
    return;
  va_start(ap, fmt);
  (void)vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

char *qreg__percent_decode(const char *text, size_t len) {
  char *out = malloc(len + 1);
  if (out == NULL)
    return NULL;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    int hi = 0, lo = 0;
    if (text[i] == '%' && i + 2 < len && (hi = qreg__hex_value(text[i + 1])) >= 0 &&
        (lo = qreg__hex_value(text[i + 2])) >= 0 && (hi | lo) != 0) {
      out[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[n++] = text[i];
    }
  }
  out[n] = '\0';
  return out;
}

static const char *const status_names[QREG_STATUS_COUNT] = {"pending", "running",  "succeeded",
                                                            "failed",  "canceled", "timeout"};

const char *qreg_status_name(qreg_status_t status) {
  if ((unsigned)status >= QREG_STATUS_COUNT)
    return "unknown";
  return status_names[status];
}

int qreg_status_parse(const char *name, qreg_status_t *out) {
  qreg__clear_error();
  for (int i = 0; name != NULL && i < QREG_STATUS_COUNT; i++) {
    if (strcmp(name, status_names[i]) == 0) {
      if (out)
        *out = (qreg_status_t)i;
      return 0;
    }
  }
  return qreg__fail(QREG_EINVAL, "status: expected pending, running, succeeded, failed, "
                                 "canceled or timeout");
}

static const char *const truncation_names[QREG_TRUNCATION_COUNT] = {
    "none", "max_rows", "max_result_bytes", "registry_budget", "value_too_large", "driver"};

const char *qreg_truncation_name(qreg_truncation_t reason) {
  if ((unsigned)reason >= QREG_TRUNCATION_COUNT)
    return "unknown";
  return truncation_names[reason];
}

bool qreg_status_is_terminal(qreg_status_t status) {
  return status >= QREG_SUCCEEDED && status < QREG_STATUS_COUNT;
}

void qreg_config_init(qreg_config_t *config) {
  if (config == NULL)
    return;
  memset(config, 0, sizeof *config);
  config->struct_size = sizeof *config;
  config->max_connections = 8;
  config->max_records = 10000;
  config->max_result_bytes = (size_t)256 << 20;
  config->max_sql_bytes = (size_t)1 << 20;
  config->default_timeout_ms = 60ull * 60 * 1000;
  config->default_ttl_ms = 60ull * 60 * 1000;
  config->default_max_rows = 10000;
  config->idle_timeout_ms = 60ull * 1000;
  config->allow_writes = false;
  config->application_name = "qreg";
}

void qreg_options_init(qreg_options_t *options) {
  if (options != NULL) {
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
  }
}
