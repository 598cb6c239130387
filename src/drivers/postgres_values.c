/*
 * src/drivers/postgres_values.c - PostgreSQL text-format fields -> qreg
 * values, and the built-in type names (see postgres_values.h).
 * Owns nothing beyond the scratch buffers of one call.
 */
#include "drivers/postgres_values.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Built-in type OIDs (pg_type.dat; stable across server versions). */
enum {
  OID_BOOL = 16,
  OID_BYTEA = 17,
  OID_INT8 = 20,
  OID_INT2 = 21,
  OID_INT4 = 23,
  OID_JSON = 114,
  OID_FLOAT4 = 700,
  OID_FLOAT8 = 701,
  OID_DATE = 1082,
  OID_TIMESTAMP = 1114,
  OID_TIMESTAMPTZ = 1184,
  OID_TIMETZ = 1266,
  OID_JSONB = 3802,
};

/* What format_type(oid, NULL) says for the types a query most often
   returns; anything else is looked up on the server once and cached. */
static const struct {
  qreg__pg_oid_t oid;
  const char *name;
} builtin_types[] = {
    {16, "boolean"},
    {17, "bytea"},
    {18, "\"char\""},
    {19, "name"},
    {20, "bigint"},
    {21, "smallint"},
    {23, "integer"},
    {24, "regproc"},
    {25, "text"},
    {26, "oid"},
    {27, "tid"},
    {28, "xid"},
    {29, "cid"},
    {114, "json"},
    {142, "xml"},
    {143, "xml[]"},
    {199, "json[]"},
    {600, "point"},
    {601, "lseg"},
    {602, "path"},
    {603, "box"},
    {604, "polygon"},
    {628, "line"},
    {650, "cidr"},
    {651, "cidr[]"},
    {700, "real"},
    {701, "double precision"},
    {705, "unknown"},
    {718, "circle"},
    {774, "macaddr8"},
    {790, "money"},
    {829, "macaddr"},
    {869, "inet"},
    {1000, "boolean[]"},
    {1001, "bytea[]"},
    {1005, "smallint[]"},
    {1007, "integer[]"},
    {1009, "text[]"},
    {1014, "character[]"},
    {1015, "character varying[]"},
    {1016, "bigint[]"},
    {1021, "real[]"},
    {1022, "double precision[]"},
    {1028, "oid[]"},
    {1040, "macaddr[]"},
    {1041, "inet[]"},
    {1042, "character"},
    {1043, "character varying"},
    {1082, "date"},
    {1083, "time without time zone"},
    {1114, "timestamp without time zone"},
    {1115, "timestamp without time zone[]"},
    {1182, "date[]"},
    {1183, "time without time zone[]"},
    {1184, "timestamp with time zone"},
    {1185, "timestamp with time zone[]"},
    {1186, "interval"},
    {1187, "interval[]"},
    {1231, "numeric[]"},
    {1266, "time with time zone"},
    {1270, "time with time zone[]"},
    {1560, "bit"},
    {1562, "bit varying"},
    {1700, "numeric"},
    {2205, "regclass"},
    {2206, "regtype"},
    {2249, "record"},
    {2278, "void"},
    {2287, "record[]"},
    {2950, "uuid"},
    {2951, "uuid[]"},
    {3220, "pg_lsn"},
    {3614, "tsvector"},
    {3615, "tsquery"},
    {3802, "jsonb"},
    {3807, "jsonb[]"},
    {3904, "int4range"},
    {3906, "numrange"},
    {3908, "tsrange"},
    {3910, "tstzrange"},
    {3912, "daterange"},
    {3926, "int8range"},
    {4072, "jsonpath"},
    {4089, "regnamespace"},
    {4096, "regrole"},
};

const char *qreg__pg_builtin_type_name(qreg__pg_oid_t oid) {
  size_t lo = 0, hi = sizeof builtin_types / sizeof builtin_types[0];
  while (lo < hi) { /* the table is sorted by OID */
    size_t mid = lo + (hi - lo) / 2;
    if (builtin_types[mid].oid == oid)
      return builtin_types[mid].name;
    if (builtin_types[mid].oid < oid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* Decodes bytea output ("\x0a1b..." hex, or the old escape format) into out
   (at least len bytes). Returns the decoded length, or -1 if malformed. */
static long decode_bytea(const char *text, size_t len, unsigned char *out) {
  size_t n = 0;
  if (len >= 2 && text[0] == '\\' && text[1] == 'x') {
    if ((len - 2) % 2 != 0)
      return -1;
    for (size_t i = 2; i < len; i += 2) {
      int hi = qreg__hex_value(text[i]), lo = qreg__hex_value(text[i + 1]);
      if (hi < 0 || lo < 0)
        return -1;
      out[n++] = (unsigned char)(hi << 4 | lo);
    }
    return (long)n;
  }
  for (size_t i = 0; i < len;) {
    if (text[i] != '\\') {
      out[n++] = (unsigned char)text[i++];
    } else if (i + 1 < len && text[i + 1] == '\\') {
      out[n++] = '\\';
      i += 2;
    } else if (i + 3 < len && text[i + 1] >= '0' && text[i + 1] <= '3' && text[i + 2] >= '0' &&
               text[i + 2] <= '7' && text[i + 3] >= '0' && text[i + 3] <= '7') {
      out[n++] = (unsigned char)((text[i + 1] - '0') << 6 | (text[i + 2] - '0') << 3 |
                                 (text[i + 3] - '0'));
      i += 4;
    } else {
      return -1;
    }
  }
  return (long)n;
}

/* Text as the server sent it: the result store repairs what is not UTF-8
   (U+FFFD), for every driver alike. */
static int put_text(qreg_result_t *result, const char *text, size_t len) {
  return qreg_result_put_text(result, text, len);
}

/* The kinds of date and time values whose text put_datetime rewrites. */
typedef enum datetime_kind {
  DATETIME_DATE,        /* "2024-01-02" */
  DATETIME_TIMESTAMP,   /* "2024-01-02 03:04:05.6" */
  DATETIME_TIMESTAMPTZ, /* "2024-01-02 03:04:05.6+00" */
  DATETIME_TIMETZ,      /* "03:04:05.6+02" */
} datetime_kind_t;

/* Appends the UTC offset that ends text[0, len) (DateStyle ISO: "+HH",
   "+HH:MM" or "+HH:MM:SS") to out in RFC 3339 form: "Z" for zero,
   "+HH:MM" otherwise; an offset with seconds (only in zones before 1900)
   is kept as it is. Returns the bytes of text before the offset, or 0 when
   text does not end in one. */
static size_t put_offset(const char *text, size_t len, char *out, size_t *out_len) {
  size_t sign = len;
  while (sign > 0 && text[sign - 1] != '+' && text[sign - 1] != '-')
    sign--;
  if (sign == 0)
    return 0;
  sign--;
  const char *offset = text + sign;
  size_t n = len - sign;
  bool hours = n >= 3 && isdigit((unsigned char)offset[1]) && isdigit((unsigned char)offset[2]);
  if (!hours || (n != 3 && n != 6 && n != 9))
    return 0;
  if ((n == 3 && memcmp(offset + 1, "00", 2) == 0) ||
      (n == 6 && memcmp(offset + 1, "00:00", 5) == 0)) {
    out[(*out_len)++] = 'Z';
  } else {
    memcpy(out + *out_len, offset, n);
    *out_len += n;
    if (n == 3) { /* "+05" -> "+05:00" */
      out[(*out_len)++] = ':';
      out[(*out_len)++] = '0';
      out[(*out_len)++] = '0';
    }
  }
  return sign;
}

/*
 * Date and time values (DateStyle ISO, TimeZone UTC) in ISO 8601 / RFC 3339:
 * "2024-01-02 03:04:05.6+00" -> "2024-01-02T03:04:05.6Z". Years outside
 * 0000-9999 (after 9999, or BC: PostgreSQL's "0044-03-15 BC" is the
 * astronomical year -43) take ISO 8601's expanded form with a sign and six
 * digits, as JavaScript's Date reads it: "-000043-03-15",
 * "+010000-01-01T00:00:00". "infinity" and "-infinity" pass unchanged, and
 * so does anything not in the expected shape.
 */
static int put_datetime(qreg_result_t *result, datetime_kind_t kind, const char *text, size_t len) {
  char out[96];
  size_t out_len = 0;
  if (len < 8 || len >= 64)
    return put_text(result, text, len);
  if (kind == DATETIME_TIMETZ) {
    char offset[16];
    size_t offset_len = 0;
    size_t time_len = put_offset(text, len, offset, &offset_len);
    if (time_len == 0)
      return put_text(result, text, len);
    memcpy(out, text, time_len);
    memcpy(out + time_len, offset, offset_len);
    return put_text(result, out, time_len + offset_len);
  }
  bool bc = len > 3 && memcmp(text + len - 3, " BC", 3) == 0;
  if (bc)
    len -= 3;
  size_t digits = 0;
  long year = 0;
  while (digits < len && isdigit((unsigned char)text[digits]) && digits < 7)
    year = year * 10 + (text[digits++] - '0');
  /* "-MM-DD" follows the year; then, for timestamps, " HH:MM:SS". */
  if (digits < 4 || len < digits + 6 || text[digits] != '-' || text[digits + 3] != '-')
    return put_text(result, text, bc ? len + 3 : len);
  long astronomical = bc ? 1 - year : year;
  if (astronomical >= 0 && astronomical <= 9999)
    out_len = (size_t)snprintf(out, sizeof out, "%04ld", astronomical);
  else
    out_len = (size_t)snprintf(out, sizeof out, "%+07ld", astronomical);
  const char *rest = text + digits;
  size_t rest_len = len - digits;
  size_t body_len = rest_len;
  char offset[16];
  size_t offset_len = 0;
  if (kind == DATETIME_TIMESTAMPTZ) {
    body_len = put_offset(rest, rest_len, offset, &offset_len);
    if (body_len <= 6)
      return put_text(result, text, bc ? len + 3 : len);
  }
  memcpy(out + out_len, rest, body_len);
  if (kind != DATETIME_DATE && body_len > 6 && out[out_len + 6] == ' ')
    out[out_len + 6] = 'T';
  out_len += body_len;
  memcpy(out + out_len, offset, offset_len);
  out_len += offset_len;
  return put_text(result, out, out_len);
}

static int put_bytea(qreg_result_t *result, const char *text, size_t len) {
  unsigned char *bytes = malloc(len > 0 ? len : 1);
  if (bytes == NULL)
    return QREG_ENOMEM;
  long n = decode_bytea(text, len, bytes);
  int rc = n >= 0 ? qreg_result_put_bytes(result, bytes, (size_t)n)
                  : put_text(result, text, len); /* not bytea output after all */
  free(bytes);
  return rc;
}

int qreg__pg_put_value(qreg_result_t *result, qreg__pg_oid_t oid, const char *text, size_t len,
                       bool is_null) {
  if (is_null)
    return qreg_result_put_null(result);
  switch (oid) {
  case OID_INT2:
  case OID_INT4:
  case OID_INT8: {
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end != text + len || len == 0)
      return put_text(result, text, len);
    return qreg_result_put_int(result, (int64_t)value);
  }
  case OID_FLOAT4:
  case OID_FLOAT8: {
    /* extra_float_digits = 3 makes the text exact; "NaN", "Infinity" and
       "-Infinity" parse to the matching doubles. */
    char *end;
    double value = strtod(text, &end);
    if (end != text + len || len == 0)
      return put_text(result, text, len);
    return qreg_result_put_float(result, value);
  }
  case OID_BOOL:
    return qreg_result_put_bool(result, len > 0 && text[0] == 't');
  case OID_JSON:
  case OID_JSONB:
    return qreg_result_put_json(result, text, len);
  case OID_BYTEA:
    return put_bytea(result, text, len);
  case OID_DATE:
    return put_datetime(result, DATETIME_DATE, text, len);
  case OID_TIMESTAMP:
    return put_datetime(result, DATETIME_TIMESTAMP, text, len);
  case OID_TIMESTAMPTZ:
    return put_datetime(result, DATETIME_TIMESTAMPTZ, text, len);
  case OID_TIMETZ:
    return put_datetime(result, DATETIME_TIMETZ, text, len);
  default:
    return put_text(result, text, len);
  }
}
