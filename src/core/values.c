/*
 * src/core/values.c - the one encoder of result values (qreg_value_json,
 * qreg_value_text): every output of qreg (qreg query --json and its table,
 * MCP, HTTP) writes a value through here, so the same value reads the same
 * everywhere. docs/values.md is the table of what each type becomes.
 *
 * The rules, once: what a JSON client cannot hold exactly is a string
 * (integers outside +-(2^53 - 1), non-finite floats); floats are the
 * shortest text that reads back as the same double, always with a fraction
 * or an exponent; bytes are base64; JSON from the database is embedded as
 * written (only its insignificant white space dropped, so it stays on one
 * line), never re-parsed into doubles, and is written in the one wrapper
 * {"$unembedded_json":{"reason":...,"text":...}} when it is not valid JSON
 * or cannot be embedded safely; text that is not UTF-8 gets U+FFFD for each
 * bad byte.
 *
 * Owns nothing: it writes into the caller's buffer, snprintf-style.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Nesting of embedded JSON beyond which it is written as a string: deeper
   documents break common parsers (Python's json stops near 1000, jansson
   at 2048), and one value must never make a whole response unreadable. */
#define VALUES_MAX_JSON_DEPTH 512
/* The one key of the object that stands for JSON text that could not be
   embedded: {"$unembedded_json":{"reason":"...","text":"..."}}. A valid
   document with this key at its top level is wrapped too, so an object
   with this key is always the wrapper (docs/values.md). */
#define VALUES_UNEMBEDDED_KEY "$unembedded_json"
/* Integers a JSON client reading numbers as doubles holds exactly. */
#define VALUES_MAX_SAFE_INTEGER INT64_C(9007199254740991)

/* Output into the caller's buffer: writes what fits, counts everything. */
typedef struct writer {
  char *buf;
  size_t size;
  size_t len; /* bytes the whole encoding takes so far */
} writer_t;

static void put(writer_t *w, const char *bytes, size_t n) {
  if (n == 0) /* bytes may be NULL then (an empty value) */
    return;
  if (w->len < w->size) {
    size_t room = w->size - w->len;
    memcpy(w->buf + w->len, bytes, n < room ? n : room);
  }
  w->len += n;
}

static void put_str(writer_t *w, const char *text) {
  put(w, text, strlen(text));
}

/* NUL-terminates the buffer (cutting when it is too small) and returns the
   length of the whole encoding. */
static size_t finish(writer_t *w) {
  if (w->size > 0)
    w->buf[w->len < w->size ? w->len : w->size - 1] = '\0';
  return w->len;
}

/* --- numbers -------------------------------------------------------------------- */

/* The shortest "%.*g" text that reads back as value. 15 significant digits
   always round-trip a normal double's shortest form when it has at most 15,
   so normal doubles need at most three tries; subnormals carry fewer
   digits ("5e-324") and are searched from one. */
static void shortest_double(double value, char *buf, size_t size) {
  int precision = fabs(value) < DBL_MIN && value != 0 ? 1 : 15;
  for (; precision < 17; precision++) {
    snprintf(buf, size, "%.*g", precision, value);
    if (strtod(buf, NULL) == value)
      return;
  }
  snprintf(buf, size, "%.17g", value);
}

/* A finite double as a JSON number with a fraction or an exponent, so that
   it never reads back as an integer: "3.0", "-0.0", "0.1", "1e+300". */
static void put_double(writer_t *w, double value) {
  char number[40];
  shortest_double(value, number, sizeof number);
  put_str(w, number);
  if (!strpbrk(number, ".e"))
    put(w, ".0", 2);
}

/* JSON has no NaN or infinities: their names, as strings. */
static const char *non_finite_name(double value) {
  if (isnan(value))
    return "NaN";
  return value > 0 ? "Infinity" : "-Infinity";
}

/* --- text ------------------------------------------------------------------------ */

/* Text with each byte that does not start a valid UTF-8 sequence replaced by
   U+FFFD; as a JSON string (quoted and escaped) or as it is. */
static void put_text(writer_t *w, const char *text, size_t len, bool json) {
  static const char hex[] = "0123456789abcdef";
  if (json)
    put(w, "\"", 1);
  size_t i = 0;
  while (i < len) {
    size_t valid = i + qreg__utf8_invalid_at(text + i, len - i);
    if (!json) {
      put(w, text + i, valid - i);
    } else {
      size_t run = i;
      for (size_t k = i; k < valid; k++) {
        unsigned char c = (unsigned char)text[k];
        if (c >= 0x20 && c != '"' && c != '\\')
          continue;
        put(w, text + run, k - run);
        run = k + 1;
        char escape[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], '\0'};
        switch (c) {
        case '"':
          put(w, "\\\"", 2);
          break;
        case '\\':
          put(w, "\\\\", 2);
          break;
        case '\b':
          put(w, "\\b", 2);
          break;
        case '\f':
          put(w, "\\f", 2);
          break;
        case '\n':
          put(w, "\\n", 2);
          break;
        case '\r':
          put(w, "\\r", 2);
          break;
        case '\t':
          put(w, "\\t", 2);
          break;
        default:
          put(w, escape, 6);
          break;
        }
      }
      put(w, text + run, valid - run);
    }
    if (valid == len)
      break;
    put(w, "\xef\xbf\xbd", 3);
    i = valid + 1;
  }
  if (json)
    put(w, "\"", 1);
}

/* Bytes as standard base64 with padding. */
static void put_base64(writer_t *w, const unsigned char *bytes, size_t len) {
  /* Index 64 is the padding. */
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  for (size_t i = 0; i < len; i += 3) {
    uint32_t group = (uint32_t)bytes[i] << 16;
    if (i + 1 < len)
      group |= (uint32_t)bytes[i + 1] << 8;
    if (i + 2 < len)
      group |= bytes[i + 2];
    char quad[4] = {alphabet[(group >> 18) & 63], alphabet[(group >> 12) & 63],
                    alphabet[i + 1 < len ? (group >> 6) & 63 : 64],
                    alphabet[i + 2 < len ? group & 63 : 64]};
    put(w, quad, sizeof quad);
  }
}

/* --- embedded JSON ---------------------------------------------------------------- */

/* A JSON reader over text[0, len) that copies every token it reads to w and
   drops the white space between them. */
typedef struct json_reader {
  const char *text;
  size_t len;
  size_t pos;
  writer_t *w;
  /* Why the text cannot be embedded: the first reason found, or NULL for
     "invalid_json" (not JSON, or JSON with a syntax error). */
  const char *reason;
} json_reader_t;

static void skip_space(json_reader_t *r) {
  while (r->pos < r->len && (r->text[r->pos] == ' ' || r->text[r->pos] == '\t' ||
                             r->text[r->pos] == '\n' || r->text[r->pos] == '\r'))
    r->pos++;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The code unit of "\uXXXX" at text[pos] (pos at the backslash), or -1. */
static long unicode_escape(const json_reader_t *r, size_t pos) {
  if (pos + 6 > r->len || r->text[pos] != '\\' || r->text[pos + 1] != 'u')
    return -1;
  long unit = 0;
  for (size_t k = pos + 2; k < pos + 6; k++) {
    int digit = hex_value(r->text[k]);
    if (digit < 0)
      return -1;
    unit = unit * 16 + digit;
  }
  return unit;
}

/* A string token: valid UTF-8, no raw control characters, valid escapes,
   and no unpaired surrogate escape (a code point no UTF-8 can carry, which
   strict parsers refuse). */
static bool read_string(json_reader_t *r) {
  size_t start = r->pos++; /* the opening quote */
  for (;;) {
    if (r->pos >= r->len)
      return false;
    unsigned char c = (unsigned char)r->text[r->pos];
    if (c == '"')
      break;
    if (c < 0x20)
      return false;
    if (c >= 0x80) {
      /* One multi-byte sequence: its length by the lead byte, then checked. */
      size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      if (r->len - r->pos < n || qreg__utf8_invalid_at(r->text + r->pos, n) != n) {
        r->reason = "invalid_utf8";
        return false;
      }
      r->pos += n;
      continue;
    }
    if (c != '\\') {
      r->pos++;
      continue;
    }
    if (r->pos + 1 >= r->len)
      return false;
    char e = r->text[r->pos + 1];
    if (e == 'u') {
      long unit = unicode_escape(r, r->pos);
      if (unit < 0)
        return false;
      if (unit >= 0xdc00 && unit <= 0xdfff) {
        r->reason = "unpaired_surrogate";
        return false;
      }
      if (unit >= 0xd800 && unit <= 0xdbff) {
        long low = unicode_escape(r, r->pos + 6);
        if (low < 0xdc00 || low > 0xdfff) {
          r->reason = "unpaired_surrogate";
          return false;
        }
        r->pos += 6;
      }
      r->pos += 6;
    } else if (strchr("\"\\/bfnrt", e) && e != '\0') {
      r->pos += 2;
    } else {
      return false;
    }
  }
  r->pos++; /* the closing quote */
  put(r->w, r->text + start, r->pos - start);
  return true;
}

static bool is_digit(const json_reader_t *r) {
  return r->pos < r->len && r->text[r->pos] >= '0' && r->text[r->pos] <= '9';
}

/* A number token exactly as RFC 8259 writes it; copied digit for digit. */
static bool read_number(json_reader_t *r) {
  size_t start = r->pos;
  if (r->text[r->pos] == '-')
    r->pos++;
  if (!is_digit(r))
    return false;
  if (r->text[r->pos] == '0') {
    r->pos++;
  } else {
    while (is_digit(r))
      r->pos++;
  }
  if (r->pos < r->len && r->text[r->pos] == '.') {
    r->pos++;
    if (!is_digit(r))
      return false;
    while (is_digit(r))
      r->pos++;
  }
  if (r->pos < r->len && (r->text[r->pos] == 'e' || r->text[r->pos] == 'E')) {
    r->pos++;
    if (r->pos < r->len && (r->text[r->pos] == '+' || r->text[r->pos] == '-'))
      r->pos++;
    if (!is_digit(r))
      return false;
    while (is_digit(r))
      r->pos++;
  }
  put(r->w, r->text + start, r->pos - start);
  return true;
}

static bool read_literal(json_reader_t *r, const char *word) {
  size_t n = strlen(word);
  if (r->len - r->pos < n || memcmp(r->text + r->pos, word, n) != 0)
    return false;
  put(r->w, word, n);
  r->pos += n;
  return true;
}

/* A scalar token at r->pos (after white space). */
static bool read_scalar(json_reader_t *r) {
  switch (r->text[r->pos]) {
  case '"':
    return read_string(r);
  case 't':
    return read_literal(r, "true");
  case 'f':
    return read_literal(r, "false");
  case 'n':
    return read_literal(r, "null");
  default:
    return read_number(r);
  }
}

/* Whether the string token text[start, end) (quotes included, already
   validated) spells VALUES_UNEMBEDDED_KEY, escapes decoded: "\u0024..."
   is the same key to a JSON client. */
static bool is_unembedded_key(const char *text, size_t start, size_t end) {
  const char *name = VALUES_UNEMBEDDED_KEY;
  size_t matched = 0;
  for (size_t k = start + 1; k + 1 < end;) {
    long c = (unsigned char)text[k];
    size_t step = 1;
    if (c == '\\') {
      char e = text[k + 1];
      step = 2;
      if (e == 'u') {
        json_reader_t escape = {.text = text, .len = end, .pos = 0, .w = NULL, .reason = NULL};
        c = unicode_escape(&escape, k);
        step = 6;
      } else {
        c = e == 'b'   ? '\b'
            : e == 'f' ? '\f'
            : e == 'n' ? '\n'
            : e == 'r' ? '\r'
            : e == 't' ? '\t'
                       : e;
      }
    }
    if (name[matched] == '\0' || c != (unsigned char)name[matched])
      return false;
    matched++;
    k += step;
  }
  return name[matched] == '\0';
}

/* A member's key and its colon; a top-level key that is the wrapper's
   makes the document one to wrap (see VALUES_UNEMBEDDED_KEY). */
static bool read_key(json_reader_t *r, size_t depth) {
  skip_space(r);
  size_t start = r->pos;
  if (r->pos >= r->len || r->text[r->pos] != '"' || !read_string(r))
    return false;
  if (depth == 1 && is_unembedded_key(r->text, start, r->pos)) {
    r->reason = "reserved_key";
    return false;
  }
  skip_space(r);
  if (r->pos >= r->len || r->text[r->pos] != ':')
    return false;
  put(r->w, ":", 1);
  r->pos++;
  return true;
}

/*
 * The whole text as one JSON value, iteratively (a stack of open containers,
 * '[' or '{'), so that depth costs no C stack. false when it is not exactly
 * one valid JSON value or nests deeper than VALUES_MAX_JSON_DEPTH.
 */
static bool read_document(json_reader_t *r) {
  char open[VALUES_MAX_JSON_DEPTH];
  size_t depth = 0;
  for (;;) {
    /* A value is expected here. */
    skip_space(r);
    if (r->pos >= r->len)
      return false;
    char c = r->text[r->pos];
    if (c == '[' || c == '{') {
      if (depth == VALUES_MAX_JSON_DEPTH) {
        r->reason = "too_deep";
        return false;
      }
      open[depth++] = c;
      put(r->w, &c, 1);
      r->pos++;
      skip_space(r);
      char close = c == '[' ? ']' : '}';
      if (r->pos < r->len && r->text[r->pos] == close) {
        put(r->w, &close, 1);
        r->pos++;
        depth--;
      } else if (c == '{') {
        /* The first key. */
        if (!read_key(r, depth))
          return false;
        continue;
      } else {
        continue;
      }
    } else if (!read_scalar(r)) {
      return false;
    }
    /* After a value: a comma and the next member, or closing brackets. */
    for (;;) {
      skip_space(r);
      if (depth == 0)
        return r->pos == r->len;
      if (r->pos >= r->len)
        return false;
      char next = r->text[r->pos];
      char close = open[depth - 1] == '[' ? ']' : '}';
      if (next == close) {
        put(r->w, &close, 1);
        r->pos++;
        depth--;
        continue;
      }
      if (next != ',')
        return false;
      put(r->w, ",", 1);
      r->pos++;
      if (open[depth - 1] == '{' && !read_key(r, depth))
        return false;
      break;
    }
  }
}

/* JSON text from the database, embedded when it is valid and safe; when it
   is not, what was written is taken back and the text is written in the
   wrapper {"$unembedded_json":{"reason":"...","text":"..."}} (json), or as
   it is (the plain form of a table cell). */
static void put_json(writer_t *w, const char *text, size_t len, bool json) {
  size_t mark = w->len;
  json_reader_t reader = {.text = text, .len = len, .pos = 0, .w = w, .reason = NULL};
  if (read_document(&reader))
    return;
  w->len = mark;
  if (!json) {
    put_text(w, text, len, false);
    return;
  }
  put_str(w, "{\"" VALUES_UNEMBEDDED_KEY "\":{\"reason\":\"");
  put_str(w, reader.reason ? reader.reason : "invalid_json");
  put_str(w, "\",\"text\":");
  put_text(w, text, len, true);
  put_str(w, "}}");
}

/* --- the encoder ------------------------------------------------------------------- */

/* The two forms differ only in strings: json quotes and escapes them, the
   plain text form writes their content as it is (and NULL as nothing). */
// NOLINTNEXTLINE(readability-non-const-parameter): written through the writer
static size_t encode(const qreg_value_t *value, char *buf, size_t size, bool json) {
  writer_t w = {.buf = buf, .size = buf ? size : 0, .len = 0};
  char number[32];
  switch (value ? value->type : QREG_TYPE_NULL) {
  case QREG_TYPE_INT: {
    int64_t i = value->v.i;
    bool quoted = json && (i > VALUES_MAX_SAFE_INTEGER || i < -VALUES_MAX_SAFE_INTEGER);
    snprintf(number, sizeof number, quoted ? "\"%" PRId64 "\"" : "%" PRId64, i);
    put_str(&w, number);
    break;
  }
  case QREG_TYPE_FLOAT:
    if (isfinite(value->v.f)) {
      put_double(&w, value->v.f);
    } else {
      if (json)
        put(&w, "\"", 1);
      put_str(&w, non_finite_name(value->v.f));
      if (json)
        put(&w, "\"", 1);
    }
    break;
  case QREG_TYPE_BOOL:
    put_str(&w, value->v.b ? "true" : "false");
    break;
  case QREG_TYPE_TEXT:
    put_text(&w, value->v.s.ptr, value->v.s.len, json);
    break;
  case QREG_TYPE_BYTES:
    if (json)
      put(&w, "\"", 1);
    put_base64(&w, (const unsigned char *)value->v.s.ptr, value->v.s.len);
    if (json)
      put(&w, "\"", 1);
    break;
  case QREG_TYPE_JSON:
    put_json(&w, value->v.s.ptr, value->v.s.len, json);
    break;
  case QREG_TYPE_NULL:
  default:
    if (json)
      put_str(&w, "null");
    break;
  }
  return finish(&w);
}

size_t qreg_value_json(const qreg_value_t *value, char *buf, size_t size) {
  return encode(value, buf, size, true);
}

size_t qreg_value_text(const qreg_value_t *value, char *buf, size_t size) {
  return encode(value, buf, size, false);
}
