/*
 * src/drivers/snowflake/snowflake_values.c - the SQL API's cells as qreg
 * values. Every cell of a "jsonv2" result is a JSON string (or null), whose
 * form depends on the column's rowType "type", as Snowflake documents:
 *
 *   FIXED          decimal digits with the scale applied ("12.50"): an
 *                  integer when the scale is 0 and it fits in 64 bits,
 *                  else the exact text
 *   REAL           a float ("1.5", "NaN", "inf", "-inf")
 *   TEXT           the text
 *   BOOLEAN        "true" / "false" (also "1" / "0")
 *   DATE           days since 1970-01-01 ("19000")     -> "2022-01-08"
 *   TIME           seconds since midnight, 9 decimals  -> "10:00:00.5"
 *   TIMESTAMP_NTZ  seconds since the epoch, wall clock -> "2024-07-01T10:00:00"
 *   TIMESTAMP_LTZ  seconds since the epoch, an instant -> "2024-07-01T10:00:00Z"
 *   TIMESTAMP_TZ   seconds since the epoch (UTC) and, after a space, the
 *                  offset in minutes plus 1440 ("1719828000.000000000 1560")
 *                                                     -> "2024-07-01T12:00:00+02:00"
 *   VARIANT, OBJECT, ARRAY, MAP, VECTOR   JSON text, embedded
 *   BINARY         hex                                 -> bytes
 *
 * Years before 1 or after 9999 are written as ISO 8601 expanded years
 * ("+010000-01-01", "-000043-03-15"), as the PostgreSQL driver does;
 * fractions of a second lose their trailing zeros. A cell that does not
 * decode as its type says is stored as the text sent. Pure; owns nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "drivers/snowflake/snowflake.h"

sf_kind_t qreg__sf_kind(const char *type_name) {
  static const struct {
    const char *name;
    sf_kind_t kind;
  } kinds[] = {
      {"fixed", SF_KIND_FIXED},
      {"real", SF_KIND_REAL},
      {"text", SF_KIND_TEXT},
      {"boolean", SF_KIND_BOOLEAN},
      {"date", SF_KIND_DATE},
      {"time", SF_KIND_TIME},
      {"timestamp_ntz", SF_KIND_TIMESTAMP_NTZ},
      {"timestamp_ltz", SF_KIND_TIMESTAMP_LTZ},
      {"timestamp_tz", SF_KIND_TIMESTAMP_TZ},
      {"variant", SF_KIND_JSON},
      {"object", SF_KIND_JSON},
      {"array", SF_KIND_JSON},
      {"map", SF_KIND_JSON},
      {"vector", SF_KIND_JSON},
      {"binary", SF_KIND_BINARY},
  };
  for (size_t i = 0; type_name != NULL && i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strcasecmp(type_name, kinds[i].name) == 0)
      return kinds[i].kind;
  }
  return SF_KIND_TEXT;
}

/* Seconds with up to 9 decimals ("-1.500000000") as whole seconds and
   nanoseconds, floored (-1.5 -> -2 s + 500000000 ns). Reads text[0, len)
   up to a space or the end; *used is how much it read. */
static bool parse_seconds(const char *text, size_t len, int64_t *seconds, int64_t *nanos,
                          size_t *used) {
  size_t i = 0;
  bool negative = false;
  if (i < len && (text[i] == '-' || text[i] == '+'))
    negative = text[i++] == '-';
  int64_t whole = 0;
  size_t digits = 0;
  while (i < len && text[i] >= '0' && text[i] <= '9') {
    if (whole > (INT64_MAX - 9) / 10)
      return false;
    whole = whole * 10 + (text[i++] - '0');
    digits++;
  }
  int64_t frac = 0;
  size_t frac_digits = 0;
  if (i < len && text[i] == '.') {
    i++;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
      if (frac_digits < 9) {
        frac = frac * 10 + (text[i] - '0');
        frac_digits++;
      }
      i++;
      digits++;
    }
  }
  if (digits == 0)
    return false;
  for (; frac_digits < 9; frac_digits++)
    frac *= 10;
  if (negative && frac > 0) {
    whole = -whole - 1;
    frac = 1000000000 - frac;
  } else if (negative) {
    whole = -whole;
  }
  *seconds = whole;
  *nanos = frac;
  *used = i;
  return true;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The civil date of days since 1970-01-01 (proleptic Gregorian). */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day) {
  days += 719468;
  int64_t era = floor_div(days, 146097);
  int64_t doe = days - era * 146097;                                   /* [0, 146096] */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
  *day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  *month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2);
}

static size_t put_date(char *out, size_t size, int64_t days) {
  int64_t year;
  unsigned month, day;
  civil_from_days(days, &year, &month, &day);
  if (year >= 0 && year <= 9999)
    return (size_t)snprintf(out, size, "%04" PRId64 "-%02u-%02u", year, month, day);
  return (size_t)snprintf(out, size, "%c%06" PRId64 "-%02u-%02u", year < 0 ? '-' : '+',
                          year < 0 ? -year : year, month, day);
}

/* "HH:MM:SS[.fraction]" of seconds since midnight (0 <= s < 86400). */
static size_t put_clock(char *out, size_t size, int64_t seconds, int64_t nanos) {
  size_t n = (size_t)snprintf(out, size, "%02d:%02d:%02d", (int)(seconds / 3600),
                              (int)(seconds / 60 % 60), (int)(seconds % 60));
  if (nanos > 0 && n < size) {
    char frac[24];
    snprintf(frac, sizeof frac, ".%09" PRId64, nanos);
    size_t flen = strlen(frac);
    while (flen > 0 && frac[flen - 1] == '0')
      frac[--flen] = '\0';
    n += (size_t)snprintf(out + n, size - n, "%s", frac);
  }
  return n;
}

static size_t put_timestamp(char *out, size_t size, int64_t seconds, int64_t nanos) {
  int64_t days = floor_div(seconds, 86400);
  int64_t rest = seconds - days * 86400;
  size_t n = put_date(out, size, days);
  if (n + 1 < size) {
    out[n++] = 'T';
    n += put_clock(out + n, size - n, rest, nanos);
  }
  return n;
}

static size_t put_offset(char *out, size_t size, int64_t minutes) {
  if (minutes == 0)
    return (size_t)snprintf(out, size, "Z");
  int64_t m = minutes < 0 ? -minutes : minutes;
  return (size_t)snprintf(out, size, "%c%02d:%02d", minutes < 0 ? '-' : '+', (int)(m / 60),
                          (int)(m % 60));
}

bool qreg__sf_format_datetime(sf_kind_t kind, const char *text, size_t len, char *out,
                              size_t size) {
  int64_t seconds = 0, nanos = 0;
  size_t used = 0;
  if (!parse_seconds(text, len, &seconds, &nanos, &used))
    return false;
  /* Beyond +-10^13 seconds (year 300000) is not a time Snowflake holds. */
  if (seconds > 10000000000000 || seconds < -10000000000000)
    return false;
  switch (kind) {
  case SF_KIND_DATE:
    if (used != len || nanos != 0)
      return false;
    put_date(out, size, seconds);
    return true;
  case SF_KIND_TIME:
    if (used != len || seconds < 0 || seconds >= 86400)
      return false;
    put_clock(out, size, seconds, nanos);
    return true;
  case SF_KIND_TIMESTAMP_NTZ:
  case SF_KIND_TIMESTAMP_LTZ: {
    if (used != len)
      return false;
    size_t n = put_timestamp(out, size, seconds, nanos);
    if (kind == SF_KIND_TIMESTAMP_LTZ && n < size)
      put_offset(out + n, size - n, 0);
    return true;
  }
  case SF_KIND_TIMESTAMP_TZ: {
    int64_t offset = 0;
    if (used < len) {
      if (text[used] != ' ')
        return false;
      int64_t encoded = 0, unused = 0;
      size_t used2 = 0;
      if (!parse_seconds(text + used + 1, len - used - 1, &encoded, &unused, &used2) ||
          used2 != len - used - 1 || unused != 0 || encoded < 0 || encoded > 2880)
        return false;
      offset = encoded - 1440;
    }
    size_t n = put_timestamp(out, size, seconds + offset * 60, nanos);
    if (n < size)
      put_offset(out + n, size - n, offset);
    return true;
  }
  default:
    return false;
  }
}

static int put_fixed(qreg_result_t *result, int64_t scale, const char *text, size_t len) {
  if (scale == 0 && len > 0 && len < 24) {
    char buf[24];
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    long long value = strtoll(buf, &end, 10);
    if (errno == 0 && end == buf + len && (buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
      return qreg_result_put_int(result, (int64_t)value);
  }
  return qreg_result_put_text(result, text, len);
}

static int put_real(qreg_result_t *result, const char *text, size_t len) {
  char buf[64];
  if (len == 0 || len >= sizeof buf)
    return qreg_result_put_text(result, text, len);
  memcpy(buf, text, len);
  buf[len] = '\0';
  char *end = NULL;
  double value = strtod(buf, &end);
  if (end != buf + len)
    return qreg_result_put_text(result, text, len);
  return qreg_result_put_float(result, value);
}

static int put_binary(qreg_result_t *result, const char *text, size_t len) {
  if (len % 2 != 0)
    return qreg_result_put_text(result, text, len);
  unsigned char *bytes = malloc(len / 2 + 1);
  if (bytes == NULL)
    return QREG_ENOMEM;
  for (size_t i = 0; i < len; i += 2) {
    int hi = qreg__hex_value(text[i]), lo = qreg__hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) {
      free(bytes);
      return qreg_result_put_text(result, text, len);
    }
    bytes[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  int rc = qreg_result_put_bytes(result, bytes, len / 2);
  free(bytes);
  return rc;
}

int qreg__sf_put_value(qreg_result_t *result, sf_kind_t kind, int64_t scale, const char *text,
                       size_t len, bool is_null) {
  if (is_null)
    return qreg_result_put_null(result);
  char buf[64];
  switch (kind) {
  case SF_KIND_FIXED:
    return put_fixed(result, scale, text, len);
  case SF_KIND_REAL:
    return put_real(result, text, len);
  case SF_KIND_BOOLEAN:
    if ((len == 4 && strncasecmp(text, "true", 4) == 0) || (len == 1 && text[0] == '1'))
      return qreg_result_put_bool(result, true);
    if ((len == 5 && strncasecmp(text, "false", 5) == 0) || (len == 1 && text[0] == '0'))
      return qreg_result_put_bool(result, false);
    return qreg_result_put_text(result, text, len);
  case SF_KIND_DATE:
  case SF_KIND_TIME:
  case SF_KIND_TIMESTAMP_NTZ:
  case SF_KIND_TIMESTAMP_LTZ:
  case SF_KIND_TIMESTAMP_TZ:
    if (qreg__sf_format_datetime(kind, text, len, buf, sizeof buf))
      return qreg_result_put_text(result, buf, strlen(buf));
    return qreg_result_put_text(result, text, len);
  case SF_KIND_JSON:
    return qreg_result_put_json(result, text, len);
  case SF_KIND_BINARY:
    return put_binary(result, text, len);
  case SF_KIND_TEXT:
  default:
    return qreg_result_put_text(result, text, len);
  }
}
