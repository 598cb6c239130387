/*
 * tests/fuzz/fuzz_values.c - libFuzzer target for the one value encoder
 * (qreg_value_json, qreg_value_text in src/core/values.c), which writes
 * every value any database hands qreg to every output.
 *
 * The first input byte picks the type, the rest is the payload (8 bytes of
 * an integer or a double's bits, or the bytes of text, bytes or JSON).
 * Checked for every value, beyond "no crash":
 *  - snprintf semantics: every buffer size gives a NUL-terminated prefix of
 *    the whole encoding and returns the whole length;
 *  - the JSON output is one JSON value on one line that jansson reads
 *    (numbers jansson cannot hold, such as 1e400 or 2^64 embedded from a
 *    JSON column, are the one accepted refusal);
 *  - integers and finite floats read back exactly (bit for bit, -0.0
 *    included), big integers as their digits; text that is plain ASCII
 *    reads back byte for byte;
 *  - the text output is the JSON output's string when that is a string,
 *    the JSON output itself for numbers and booleans, "" for null (JSON
 *    values aside: their cell is their JSON text).
 *
 * Build and run: tests/fuzz/run.sh [SECONDS] (builds every target).
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qreg.h"

static void fail(const char *what, const char *out) {
  fprintf(stderr, "fuzz_values: %s\n  output: %s\n", what, out ? out : "(none)");
  abort();
}

typedef size_t (*encode_fn)(const qreg_value_t *value, char *buf, size_t size);

/* The whole encoding (malloc'd) after checking every buffer size near the
   edges and a few inside against it. */
static char *encode_checked(encode_fn encode, const qreg_value_t *v) {
  size_t len = encode(v, NULL, 0);
  char *full = malloc(len + 1);
  if (full == NULL)
    return NULL;
  if (encode(v, full, len + 1) != len || full[len] != '\0' || strlen(full) > len)
    fail("length differs between calls", full);
  size_t sizes[] = {1, 2, 3, len / 2, len, len + 1};
  char *buf = malloc(len + 2);
  if (buf == NULL) {
    free(full);
    return NULL;
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    if (n == 0 || n > len + 1)
      continue;
    memset(buf, 'X', len + 2);
    if (encode(v, buf, n) != len)
      fail("a short buffer changes the returned length", full);
    if (buf[n - 1] != '\0' || memcmp(buf, full, n - 1) != 0 || buf[n] != 'X')
      fail("a short buffer is not a NUL-terminated prefix", full);
  }
  free(buf);
  return full;
}

static bool ascii_only(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80)
      return false;
  return true;
}

static void check_value(const qreg_value_t *v) {
  char *json = encode_checked(qreg_value_json, v);
  char *text = encode_checked(qreg_value_text, v);
  if (json == NULL || text == NULL) {
    free(json);
    free(text);
    return;
  }
  size_t json_len = strlen(json);
  if (memchr(json, '\n', json_len) != NULL)
    fail("a newline in the JSON output", json);

  json_error_t error;
  json_t *parsed = json_loadb(json, json_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
  if (parsed == NULL) {
    /* jansson holds integers in int64 and reals in double; an embedded JSON
       column may carry bigger numbers, digit for digit. */
    if (v->type == QREG_TYPE_JSON && json_error_code(&error) == json_error_numeric_overflow) {
      free(json);
      free(text);
      return;
    }
    fail(error.text, json);
  }

  switch (v->type) {
  case QREG_TYPE_NULL:
    if (!json_is_null(parsed) || text[0] != '\0')
      fail("null", json);
    break;
  case QREG_TYPE_BOOL:
    if (json_is_true(parsed) != v->v.b || !json_is_boolean(parsed) || strcmp(text, json) != 0)
      fail("boolean", json);
    break;
  case QREG_TYPE_INT: {
    const int64_t safe = ((int64_t)1 << 53) - 1;
    if (v->v.i >= -safe && v->v.i <= safe) {
      if (!json_is_integer(parsed) || json_integer_value(parsed) != v->v.i)
        fail("integer does not read back", json);
    } else {
      char digits[32];
      snprintf(digits, sizeof digits, "%" PRId64, v->v.i);
      if (!json_is_string(parsed) || strcmp(json_string_value(parsed), digits) != 0)
        fail("big integer is not its digits", json);
    }
    break;
  }
  case QREG_TYPE_FLOAT:
    if (isfinite(v->v.f)) {
      if (!json_is_real(parsed))
        fail("finite float is not a JSON number with a fraction or exponent", json);
      double back = json_real_value(parsed);
      if (memcmp(&back, &v->v.f, sizeof back) != 0)
        fail("float does not read back bit for bit", json);
    } else if (!json_is_string(parsed)) {
      fail("non-finite float is not a string", json);
    }
    break;
  case QREG_TYPE_TEXT:
    if (!json_is_string(parsed))
      fail("text is not a string", json);
    if (ascii_only(v->v.s.ptr, v->v.s.len) &&
        (json_string_length(parsed) != v->v.s.len ||
         memcmp(json_string_value(parsed), v->v.s.ptr, v->v.s.len) != 0))
      fail("ASCII text does not read back", json);
    break;
  case QREG_TYPE_BYTES:
    if (!json_is_string(parsed) || json_string_length(parsed) != (v->v.s.len + 2) / 3 * 4)
      fail("bytes are not padded base64", json);
    break;
  case QREG_TYPE_JSON:
    break;
  }

  /* The text cell is the JSON string's content, or the JSON itself (a JSON
     value's cell is its JSON text, a string included). */
  if (v->type == QREG_TYPE_JSON) {
    /* embedded as written, or the wrapper: checked by the parse above */
  } else if (json_is_string(parsed)) {
    const char *s = json_string_value(parsed);
    size_t n = json_string_length(parsed);
    if (memchr(s, '\0', n) == NULL && strcmp(text, s) != 0)
      fail("text output differs from the JSON string", json);
  } else if (json_is_number(parsed) || json_is_boolean(parsed)) {
    if (strcmp(text, json) != 0)
      fail("text output differs from the JSON number", json);
  }
  json_decref(parsed);
  free(json);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > 65536)
    return 0;
  qreg_value_t v = {.type = (qreg_type_t)(data[0] % 7)};
  const uint8_t *payload = data + 1;
  size_t n = size - 1;
  uint64_t bits = 0;
  memcpy(&bits, payload, n < sizeof bits ? n : sizeof bits);
  /* Text and JSON are NUL-terminated (the type's contract), bytes are not:
     the copy is exactly that long, so an overread is ASan's to see. */
  bool terminated = v.type != QREG_TYPE_BYTES;
  char *copy = malloc(n + terminated + (n == 0));
  if (copy == NULL)
    return 0;
  memcpy(copy, payload, n);
  if (terminated)
    copy[n] = '\0';
  switch (v.type) {
  case QREG_TYPE_NULL:
    break;
  case QREG_TYPE_INT:
    memcpy(&v.v.i, &bits, sizeof v.v.i);
    break;
  case QREG_TYPE_FLOAT:
    memcpy(&v.v.f, &bits, sizeof v.v.f);
    break;
  case QREG_TYPE_BOOL:
    v.v.b = (bits & 1) != 0;
    break;
  case QREG_TYPE_TEXT:
  case QREG_TYPE_BYTES:
  case QREG_TYPE_JSON:
    v.v.s.ptr = copy;
    v.v.s.len = n;
    break;
  }
  check_value(&v);
  free(copy);
  return 0;
}
