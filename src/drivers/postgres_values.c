/*
 * src/drivers/postgres_values.c - PostgreSQL text-format fields -> qreg
 * values, and the built-in type names (see postgres_values.h).
 * Owns nothing beyond the scratch buffers of one call.
 */
#include "drivers/postgres_values.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
  OID_TIMESTAMP = 1114,
  OID_TIMESTAMPTZ = 1184,
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

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes bytea output ("\x0a1b..." hex, or the old escape format) into out
   (at least len bytes). Returns the decoded length, or -1 if malformed. */
static long decode_bytea(const char *text, size_t len, unsigned char *out) {
  size_t n = 0;
  if (len >= 2 && text[0] == '\\' && text[1] == 'x') {
    if ((len - 2) % 2 != 0)
      return -1;
    for (size_t i = 2; i < len; i += 2) {
      int hi = hex_digit(text[i]), lo = hex_digit(text[i + 1]);
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

/* "2024-01-02 03:04:05.6+00" -> "2024-01-02T03:04:05.6+00" (DateStyle ISO
   prints a space there; ISO 8601 wants the T). Infinity, BC dates and the
   like pass through unchanged. */
static int put_timestamp(qreg_result_t *result, const char *text, size_t len) {
  char local[64];
  if (len < 11 || len >= sizeof local || text[4] != '-' || text[7] != '-' || text[10] != ' ')
    return put_text(result, text, len);
  memcpy(local, text, len);
  local[10] = 'T';
  local[len] = '\0';
  return put_text(result, local, len);
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
  case OID_TIMESTAMP:
  case OID_TIMESTAMPTZ:
    return put_timestamp(result, text, len);
  default:
    return put_text(result, text, len);
  }
}
