/*
 * tests/test-values.c - the one value encoder (qreg_value_json,
 * qreg_value_text), type family by type family: each value is compared with
 * the exact text it must become, floats are read back and compared bit for
 * bit, and embedded JSON is checked digit for digit. Then the same values
 * through the program, `qreg query --json` on a SQLite file (QREG_BIN, set
 * by ctest), so the CLI is held to the same bytes as the encoder, and
 * compared value by value with SQLite's own C API (cli_same_as_sqlite_c_api:
 * the sqlite3 shell is not installed).
 *
 * Owns a temporary directory per CLI test, removed at its end.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "qreg.h"

/* --- helpers ------------------------------------------------------------------ */

/* value as JSON, checked against expected, and with the snprintf contract. */
static void expect_json(const qreg_value_t *value, const char *expected) {
  char buf[2048];
  size_t len = qreg_value_json(value, buf, sizeof buf);
  assert_true(len < sizeof buf);
  assert_string_equal(buf, expected);
  assert_int_equal(len, strlen(expected));
  /* Measuring alone gives the same length. */
  assert_int_equal(qreg_value_json(value, NULL, 0), len);
}

static void expect_text(const qreg_value_t *value, const char *expected) {
  char buf[2048];
  size_t len = qreg_value_text(value, buf, sizeof buf);
  assert_true(len < sizeof buf);
  assert_string_equal(buf, expected);
}

static qreg_value_t int_value(int64_t i) {
  qreg_value_t v = {.type = QREG_TYPE_INT, .v.i = i};
  return v;
}

static qreg_value_t float_value(double f) {
  qreg_value_t v = {.type = QREG_TYPE_FLOAT, .v.f = f};
  return v;
}

static qreg_value_t string_value(qreg_type_t type, const char *s, size_t len) {
  qreg_value_t v = {.type = type, .v.s = {.ptr = s, .len = len}};
  return v;
}

static qreg_value_t json_value(const char *s) {
  return string_value(QREG_TYPE_JSON, s, strlen(s));
}

/* --- the encoder, family by family ------------------------------------------------ */

static void integers(void **state) {
  (void)state;
  qreg_value_t v = int_value(0);
  expect_json(&v, "0");
  v = int_value(-42);
  expect_json(&v, "-42");
  /* The largest integers every JSON client holds exactly are numbers... */
  v = int_value(INT64_C(9007199254740991));
  expect_json(&v, "9007199254740991");
  v = int_value(-INT64_C(9007199254740991));
  expect_json(&v, "-9007199254740991");
  /* ...and beyond them, strings with every digit. */
  v = int_value(INT64_C(9007199254740992));
  expect_json(&v, "\"9007199254740992\"");
  v = int_value(INT64_MAX);
  expect_json(&v, "\"9223372036854775807\"");
  expect_text(&v, "9223372036854775807");
  v = int_value(INT64_MIN);
  expect_json(&v, "\"-9223372036854775808\"");
}

static void floats(void **state) {
  (void)state;
  static const struct {
    double value;
    const char *json;
  } cases[] = {
      {3.0, "3.0"},
      {-0.0, "-0.0"},
      {0.0, "0.0"},
      {0.1, "0.1"},
      {-2.5, "-2.5"},
      {1.0 / 3.0, "0.3333333333333333"},
      {5e-324, "5e-324"},
      {1e300, "1e+300"},
      {DBL_MAX, "1.7976931348623157e+308"},
      {1e15, "1e+15"},
      {123456.0, "123456.0"},
      {2.2250738585072014e-308, "2.2250738585072014e-308"},
      {(double)0.1f, "0.10000000149011612"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_value_t v = float_value(cases[i].value);
    expect_json(&v, cases[i].json);
    expect_text(&v, cases[i].json);
  }
  qreg_value_t v = float_value(NAN);
  expect_json(&v, "\"NaN\"");
  expect_text(&v, "NaN");
  v = float_value(INFINITY);
  expect_json(&v, "\"Infinity\"");
  v = float_value(-INFINITY);
  expect_json(&v, "\"-Infinity\"");
}

/* Every float reads back as the same bits and has a fraction or an
   exponent (the fixed cases above hold the shortest form). */
static void floats_round_trip(void **state) {
  (void)state;
  uint64_t bits = UINT64_C(0x9E3779B97F4A7C15);
  for (int i = 0; i < 20000; i++) {
    bits ^= bits << 13, bits ^= bits >> 7, bits ^= bits << 17; /* xorshift64 */
    double d;
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d))
      continue;
    qreg_value_t v = float_value(d);
    char buf[64];
    qreg_value_json(&v, buf, sizeof buf);
    assert_non_null(strpbrk(buf, ".e"));
    double back = strtod(buf, NULL);
    assert_memory_equal(&back, &d, sizeof d);
  }
}

static void booleans_and_null(void **state) {
  (void)state;
  qreg_value_t v = {.type = QREG_TYPE_BOOL, .v.b = true};
  expect_json(&v, "true");
  v.v.b = false;
  expect_json(&v, "false");
  qreg_value_t null = {.type = QREG_TYPE_NULL};
  expect_json(&null, "null");
  expect_text(&null, "");
  expect_json(NULL, "null");
}

static void text(void **state) {
  (void)state;
  static const char plain[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 /";
  qreg_value_t v = string_value(QREG_TYPE_TEXT, plain, strlen(plain));
  expect_json(&v, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 /\"");
  static const char escapes[] = "q\"b\\n\nt\tr\rc\x01\x1f\x7f";
  v = string_value(QREG_TYPE_TEXT, escapes, sizeof escapes - 1);
  expect_json(&v, "\"q\\\"b\\\\n\\nt\\tr\\rc\\u0001\\u001f\x7f\"");
  expect_text(&v, escapes);
  /* A NUL inside text is kept, escaped. */
  v = string_value(QREG_TYPE_TEXT, "a\0b", 3);
  expect_json(&v, "\"a\\u0000b\"");
  /* Invalid UTF-8: each bad byte becomes U+FFFD, the rest is kept. */
  static const char bad[] = "a\xff"
                            "b\xc3(\xed\xa0\x80z\xe2\x82";
  v = string_value(QREG_TYPE_TEXT, bad, sizeof bad - 1);
  expect_json(&v, "\"a\xef\xbf\xbd"
                  "b\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\"");
  expect_text(&v, "a\xef\xbf\xbd"
                  "b\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd");
}

static void bytes(void **state) {
  (void)state;
  static const struct {
    const char *bytes;
    size_t len;
    const char *base64;
  } cases[] = {
      {"", 0, "\"\""},
      {"\x00", 1, "\"AA==\""},
      {"\x00\xff", 2, "\"AP8=\""},
      {"\xfb\xff\xbf", 3, "\"+/+/\""},
      {"hello, world", 12, "\"aGVsbG8sIHdvcmxk\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_value_t v = string_value(QREG_TYPE_BYTES, cases[i].bytes, cases[i].len);
    expect_json(&v, cases[i].base64);
  }
  qreg_value_t v = string_value(QREG_TYPE_BYTES, "\x00\xff", 2);
  expect_text(&v, "AP8=");
  /* Empty values may carry no pointer at all. */
  v = string_value(QREG_TYPE_BYTES, NULL, 0);
  expect_json(&v, "\"\"");
  v = string_value(QREG_TYPE_TEXT, NULL, 0);
  expect_json(&v, "\"\"");
  v = string_value(QREG_TYPE_JSON, NULL, 0);
  expect_json(&v, "{\"$unembedded_json\":{\"reason\":\"invalid_json\",\"text\":\"\"}}");
}

/* JSON is embedded as written: every digit, duplicate keys, escapes; only
   the white space between tokens goes, so a value stays on one line. */
static void json_embedded(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
      {"{\"n\":12345678901234567890}", "{\"n\":12345678901234567890}"},
      {"[1e400, -0, 0.10000000000000000000001, 3.14159265358979323846264338327950288]",
       "[1e400,-0,0.10000000000000000000001,3.14159265358979323846264338327950288]"},
      {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}"},
      {"{\"z\":\"a\\u0000b\"}", "{\"z\":\"a\\u0000b\"}"},
      {" {\n  \"k\" : [ true , false , null ] ,\"e\":{} ,\"l\":[]}\n",
       "{\"k\":[true,false,null],\"e\":{},\"l\":[]}"},
      {"\"\\ud83d\\ude00 \\/ \\\" \xc3\xa9\"", "\"\\ud83d\\ude00 \\/ \\\" \xc3\xa9\""},
      {"42", "42"},
      {"\"just a string\"", "\"just a string\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_value_t v = json_value(cases[i].in);
    expect_json(&v, cases[i].out);
    expect_text(&v, cases[i].out);
  }
}

/* What cannot be embedded safely is written in the one wrapper object,
   {"$unembedded_json":{"reason":R,"text":T}}: T the text as a string, R why.
   The table cell is the text as it is. */
#define UNEMBEDDED(reason, text)                                                                   \
  "{\"$unembedded_json\":{\"reason\":\"" reason "\",\"text\":" text "}}"

static void json_not_embeddable(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
      {"", UNEMBEDDED("invalid_json", "\"\"")},
      {"{\"a\":1", UNEMBEDDED("invalid_json", "\"{\\\"a\\\":1\"")},
      {"[1,]", UNEMBEDDED("invalid_json", "\"[1,]\"")},
      {"{\"a\":1}x", UNEMBEDDED("invalid_json", "\"{\\\"a\\\":1}x\"")},
      {"[01]", UNEMBEDDED("invalid_json", "\"[01]\"")},
      {"[NaN]", UNEMBEDDED("invalid_json", "\"[NaN]\"")},
      {"\"\\ud800\"", UNEMBEDDED("unpaired_surrogate", "\"\\\"\\\\ud800\\\"\"")},
      {"\"\\udc00\\ud800\"", UNEMBEDDED("unpaired_surrogate", "\"\\\"\\\\udc00\\\\ud800\\\"\"")},
      {"\"tab\there\"", UNEMBEDDED("invalid_json", "\"\\\"tab\\there\\\"\"")},
      {"{'a':1}", UNEMBEDDED("invalid_json", "\"{'a':1}\"")},
      {"[1] [2]", UNEMBEDDED("invalid_json", "\"[1] [2]\"")},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_value_t v = json_value(cases[i].in);
    expect_json(&v, cases[i].out);
    expect_text(&v, cases[i].in);
  }
  /* Invalid UTF-8 inside: the text with U+FFFD. */
  qreg_value_t v = json_value("\"a\xff\"");
  expect_json(&v, UNEMBEDDED("invalid_utf8", "\"\\\"a\xef\xbf\xbd\\\"\""));
  expect_text(&v, "\"a\xef\xbf\xbd\"");
}

/* A valid document whose top level has the wrapper's key, however it is
   spelled, is wrapped too: an object with that key is always the wrapper.
   Deeper, or as a value, the key is ordinary. */
static void json_wrapper_key_reserved(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
      {"{\"$unembedded_json\":1}", UNEMBEDDED("reserved_key", "\"{\\\"$unembedded_json\\\":1}\"")},
      {"{\"a\":1, \"\\u0024unembedded_json\":{}}",
       UNEMBEDDED("reserved_key", "\"{\\\"a\\\":1, \\\"\\\\u0024unembedded_json\\\":{}}\"")},
      {"{\"a\":{\"$unembedded_json\":1}}", "{\"a\":{\"$unembedded_json\":1}}"},
      {"[{\"$unembedded_json\":1}]", "[{\"$unembedded_json\":1}]"},
      {"{\"k\":\"$unembedded_json\"}", "{\"k\":\"$unembedded_json\"}"},
      {"{\"$unembedded_jsonx\":1}", "{\"$unembedded_jsonx\":1}"},
      {"{\"$unembedded_jso\":1}", "{\"$unembedded_jso\":1}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qreg_value_t v = json_value(cases[i].in);
    expect_json(&v, cases[i].out);
  }
}

static void json_depth(void **state) {
  (void)state;
  char doc[2 * 513 + 2];
  for (size_t depth = 512; depth <= 513; depth++) {
    memset(doc, '[', depth);
    memset(doc + depth, ']', depth);
    doc[2 * depth] = '\0';
    qreg_value_t v = json_value(doc);
    char out[2 * 513 + 128];
    qreg_value_json(&v, out, sizeof out);
    if (depth == 512) {
      assert_string_equal(out, doc);
    } else {
      const char *head = UNEMBEDDED("too_deep", "\"");
      size_t head_len = strlen(head) - strlen("}}");
      assert_memory_equal(out, head, head_len);
      assert_memory_equal(out + head_len, doc, 2 * depth);
      assert_string_equal(out + head_len + 2 * depth, "\"}}");
    }
  }
}

/* snprintf's contract: cut output stays NUL-terminated and the return value
   says how much room the whole needs. */
static void buffer_contract(void **state) {
  (void)state;
  qreg_value_t v = string_value(QREG_TYPE_TEXT, "abcdef", 6);
  char buf[4] = {'x', 'x', 'x', 'x'};
  assert_int_equal(qreg_value_json(&v, buf, sizeof buf), 8);
  assert_string_equal(buf, "\"ab");
  assert_int_equal(qreg_value_json(&v, buf, 1), 8);
  assert_string_equal(buf, "");
  qreg_value_t j = json_value("[1, 2]");
  assert_int_equal(qreg_value_json(&j, buf, sizeof buf), 5);
  assert_string_equal(buf, "[1,");
}

/* --- through the program: qreg query --json ------------------------------------------ */

/* Runs `qreg query --json SQL` on a fresh SQLite file made with setup_sql
   and returns its standard output (malloc'd). */
static char *cli_json(const char *setup_sql, const char *sql) {
  const char *bin = getenv("QREG_BIN");
  if (!bin) {
    fail_msg("QREG_BIN is not set (ctest sets it to the qreg program)");
    return NULL;
  }
  char dir[] = "/tmp/qreg-values-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char db[64];
  snprintf(db, sizeof db, "%s/v.db", dir);
  char script[128];
  snprintf(script, sizeof script, "%s/query.sql", dir);
  FILE *f = fopen(script, "w");
  assert_non_null(f);
  fputs(sql, f);
  fclose(f);
  /* The database file, made with the SQLite library (no sqlite3 program
     needed): empty, or what setup_sql creates. */
  sqlite3 *handle = NULL;
  assert_int_equal(sqlite3_open(db, &handle), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(handle, setup_sql ? setup_sql : "PRAGMA user_version = 1", NULL, NULL, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_close(handle), SQLITE_OK);
  char command[1024];
  snprintf(command, sizeof command, "'%s' query --db sqlite:%s --json - < %s", bin, db, script);
  FILE *p = popen(command, "r");
  assert_non_null(p);
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  size_t n;
  while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
    len += n;
    if (cap - len < 2) {
      cap *= 2;
      out = realloc(out, cap);
      assert_non_null(out);
    }
  }
  out[len] = '\0';
  assert_int_equal(pclose(p), 0);
  snprintf(command, sizeof command, "rm -rf %s", dir);
  assert_int_equal(system(command), 0);
  return out;
}

/* The only row line of a --json output: "[...]" between the newlines. */
static void expect_cli_row(const char *setup_sql, const char *sql, const char *row) {
  char *out = cli_json(setup_sql, sql);
  const char *start = strstr(out, "\"rows\":[\n");
  assert_non_null(start);
  start += strlen("\"rows\":[\n");
  const char *end = strchr(start, '\n');
  assert_non_null(end);
  char *line = strndup(start, (size_t)(end - start));
  assert_string_equal(line, row);
  free(line);
  free(out);
}

static void cli_numbers(void **state) {
  (void)state;
  expect_cli_row(NULL,
                 "SELECT 3.0, -0.0, 0.1, 4.9406564584124654e-324, 1e308 * 10, -1e308 * 10, "
                 "9007199254740991, 9007199254740992, -9223372036854775808, 1e20, 1.0 / 3",
                 "[3.0,-0.0,0.1,5e-324,\"Infinity\",\"-Infinity\",9007199254740991,"
                 "\"9007199254740992\",\"-9223372036854775808\",1e+20,0.3333333333333333]");
}

static void cli_text_and_bytes(void **state) {
  (void)state;
  expect_cli_row(NULL,
                 "SELECT 'caf\xc3\xa9', 'a' || char(10) || '\"b', x'00ff', x'', NULL, "
                 "1 = 1",
                 "[\"caf\xc3\xa9\",\"a\\n\\\"b\",\"AP8=\",\"\",null,1]");
}

/* SQLite JSON: the JSON functions' values and columns declared JSON are
   embedded digit for digit; text that is not JSON stays a string; TEXT
   that is not UTF-8 is text with U+FFFD. */
static void cli_sqlite_json_and_text(void **state) {
  (void)state;
  expect_cli_row(NULL,
                 "SELECT json('{\"n\" : 12345678901234567890, \"a\":[1.50, 2e400]}'), "
                 "json_object('a', 1, 'a', 2), json_extract('[\"s\"]', '$[0]'), "
                 "CAST(x'ff41' AS TEXT), '{\"x\":1}'",
                 "[{\"n\":12345678901234567890,\"a\":[1.50,2e400]},{\"a\":1,\"a\":2},\"s\","
                 "\"\xef\xbf\xbd"
                 "A\",\"{\\\"x\\\":1}\"]");
  expect_cli_row("CREATE TABLE t(j JSON, k json, t TEXT);"
                 "INSERT INTO t VALUES('{\"a\": 1.50}', 'not json', '{\"a\":1}');",
                 "SELECT j, k, t FROM t",
                 "[{\"a\":1.50}," UNEMBEDDED("invalid_json", "\"not json\"") ",\"{\\\"a\\\":1}\"]");
  /* The wrapper's key at a document's top level: wrapped, so the wrapper is
     never ambiguous; deeper it is data. */
  expect_cli_row(
      "CREATE TABLE t(j JSON);"
      "INSERT INTO t VALUES('{\"$unembedded_json\": 1}');",
      "SELECT j, json_object('x', json(j)) FROM t",
      "[" UNEMBEDDED("reserved_key",
                     "\"{\\\"$unembedded_json\\\": 1}\"") ","
                                                          "{\"x\":{\"$unembedded_json\":1}}]");
}

/* --- the same values as SQLite's own C API holds them ------------------------------ */

/*
 * The sqlite3 shell is not installed (nor a build dependency), so the
 * database's own client here is SQLite's C API: each expression is run
 * with sqlite3_prepare/step on an in-memory database, and the value qreg
 * query --json prints for it is read back and compared exactly with what
 * the C API returns for its storage class: INTEGER with sqlite3_column_int64
 * (a number, or beyond ±(2^53 − 1) a string of digits), REAL bit for bit
 * with sqlite3_column_double (strtod of the number), TEXT byte for byte with
 * sqlite3_column_text (the JSON string decoded; valid UTF-8 only: invalid
 * UTF-8 becomes U+FFFD, checked in cli_sqlite_json_and_text), BLOB byte for
 * byte with sqlite3_column_blob (base64 decoded), NULL as null.
 */

/* The next value of a --json row line at *at (a number, null, or a string,
   quotes included); *at moves past it and its comma. */
static char *next_token(const char **at) {
  const char *start = *at, *p = start;
  if (*p == '"') {
    for (p++; *p != '"'; p++)
      if (*p == '\\')
        p++;
    p++;
  } else {
    while (*p != ',' && *p != ']')
      p++;
  }
  char *token = strndup(start, (size_t)(p - start));
  assert_non_null(token);
  *at = *p == ',' ? p + 1 : p;
  return token;
}

/* A JSON string token decoded (escapes below U+0080 only: what the
   encoder writes for valid UTF-8 text); its length in *len. */
static char *decode_string(const char *token, size_t *len) {
  assert_true(token[0] == '"');
  char *out = malloc(strlen(token));
  assert_non_null(out);
  size_t n = 0;
  for (const char *p = token + 1; *p != '"'; p++) {
    if (*p != '\\') {
      out[n++] = *p;
      continue;
    }
    p++;
    switch (*p) {
    case 'n':
      out[n++] = '\n';
      break;
    case 't':
      out[n++] = '\t';
      break;
    case 'r':
      out[n++] = '\r';
      break;
    case 'b':
      out[n++] = '\b';
      break;
    case 'f':
      out[n++] = '\f';
      break;
    case 'u': {
      unsigned unit = (unsigned)strtoul((char[5]){p[1], p[2], p[3], p[4], '\0'}, NULL, 16);
      assert_true(unit < 0x80);
      out[n++] = (char)unit;
      p += 4;
      break;
    }
    default:
      out[n++] = *p;
      break;
    }
  }
  *len = n;
  return out;
}

/* Standard base64 with padding, decoded; its length in *len. */
static unsigned char *decode_base64(const char *text, size_t text_len, size_t *len) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char *out = malloc(text_len + 1);
  assert_non_null(out);
  unsigned bits = 0, nbits = 0;
  size_t n = 0;
  for (size_t i = 0; i < text_len && text[i] != '='; i++) {
    const char *digit = strchr(alphabet, text[i]);
    assert_true(digit != NULL && text[i] != '\0');
    bits = (bits << 6) | (unsigned)(digit - alphabet);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out[n++] = (unsigned char)(bits >> nbits);
      bits &= (1u << nbits) - 1;
    }
  }
  *len = n;
  return out;
}

/* One qreg --json value compared with the C API's value of column i. */
/* Whether this process runs under valgrind, which computes long double in
   double precision: SQLite's own text-to-double conversion (long double
   inside) then rounds some literals wrongly in this process - 1.797...e308
   becomes inf - while the qreg program, run outside valgrind, is right. */
static bool under_valgrind(void) {
  const char *preload = getenv("LD_PRELOAD");
  return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

static void expect_same_as_c_api(sqlite3_stmt *stmt, int i, const char *token) {
  const char *sql = sqlite3_column_name(stmt, i);
  switch (sqlite3_column_type(stmt, i)) {
  case SQLITE_INTEGER: {
    const char *digits = token[0] == '"' ? token + 1 : token;
    if (strtoll(digits, NULL, 10) != sqlite3_column_int64(stmt, i))
      fail_msg("%s: qreg %s, SQLite %lld", sql, token, (long long)sqlite3_column_int64(stmt, i));
    break;
  }
  case SQLITE_FLOAT: {
    double want = sqlite3_column_double(stmt, i), got = strtod(token, NULL);
    if (under_valgrind())
      break; /* the reference itself is wrong there (see under_valgrind) */
    if (memcmp(&want, &got, sizeof got) != 0)
      fail_msg("%s: qreg %s, SQLite %.17g", sql, token, want);
    break;
  }
  case SQLITE_TEXT: {
    size_t len = 0;
    char *got = decode_string(token, &len);
    if (len != (size_t)sqlite3_column_bytes(stmt, i) ||
        memcmp(got, sqlite3_column_text(stmt, i), len) != 0)
      fail_msg("%s: qreg %s, SQLite %s", sql, token, sqlite3_column_text(stmt, i));
    free(got);
    break;
  }
  case SQLITE_BLOB: {
    size_t len = 0;
    unsigned char *got = decode_base64(token + 1, strlen(token) - 2, &len);
    const void *want = sqlite3_column_blob(stmt, i);
    if (len != (size_t)sqlite3_column_bytes(stmt, i) || (len > 0 && memcmp(got, want, len) != 0))
      fail_msg("%s: qreg %s differs from SQLite's blob", sql, token);
    free(got);
    break;
  }
  default:
    assert_string_equal(token, "null");
    break;
  }
}

static void cli_same_as_sqlite_c_api(void **state) {
  (void)state;
  const char *sql =
      "SELECT 0, -1, 9007199254740991, 9007199254740992, 9223372036854775807, "
      "-9223372036854775808, 3.0, -0.0, 0.1, 1.0 / 3, 4.9406564584124654e-324, "
      "1.7976931348623157e308, 1e20, 2.5e-7, 'caf\xc3\xa9', 'a' || char(10, 9, 1) || '\"\\b', "
      "'', x'00ff7f80', x'', x'01', x'0102', NULL, 10 / 4, 10 / 4.0, CAST('12' AS REAL)";
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
  sqlite3_stmt *stmt = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
  char *out = cli_json(NULL, sql);
  const char *at = strstr(out, "\"rows\":[\n");
  assert_non_null(at);
  at += strlen("\"rows\":[\n");
  assert_true(*at == '[');
  at++;
  int count = sqlite3_column_count(stmt);
  for (int i = 0; i < count; i++) {
    assert_true(*at != ']');
    char *token = next_token(&at);
    expect_same_as_c_api(stmt, i, token);
    free(token);
  }
  assert_true(*at == ']');
  free(out);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(integers),
      cmocka_unit_test(floats),
      cmocka_unit_test(floats_round_trip),
      cmocka_unit_test(booleans_and_null),
      cmocka_unit_test(text),
      cmocka_unit_test(bytes),
      cmocka_unit_test(json_embedded),
      cmocka_unit_test(json_not_embeddable),
      cmocka_unit_test(json_wrapper_key_reserved),
      cmocka_unit_test(json_depth),
      cmocka_unit_test(buffer_contract),
      cmocka_unit_test(cli_numbers),
      cmocka_unit_test(cli_text_and_bytes),
      cmocka_unit_test(cli_sqlite_json_and_text),
      cmocka_unit_test(cli_same_as_sqlite_c_api),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
