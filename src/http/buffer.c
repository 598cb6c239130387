/*
 * src/http/buffer.c - the growing output buffer of `qreg serve` and the
 * writers of values into it: JSON through qreg_value_json(), text through
 * qreg_value_text(), CSV fields (RFC 4180) around the text form. The
 * library's encoder is the only place a value becomes bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

static bool reserve(http_buf_t *buf, size_t extra) {
  if (buf->failed)
    return false;
  if (buf->len + extra + 1 <= buf->cap)
    return true;
  size_t cap = buf->cap ? buf->cap : 256;
  while (cap < buf->len + extra + 1) {
    if (cap > SIZE_MAX / 2) {
      buf->failed = true;
      return false;
    }
    cap *= 2;
  }
  char *data = realloc(buf->data, cap);
  if (!data) {
    buf->failed = true;
    return false;
  }
  buf->data = data;
  buf->cap = cap;
  return true;
}

void http_buf_append(http_buf_t *buf, const char *data, size_t len) {
  if (!reserve(buf, len))
    return;
  memcpy(buf->data + buf->len, data, len);
  buf->len += len;
  buf->data[buf->len] = '\0';
}

void http_buf_puts(http_buf_t *buf, const char *text) {
  http_buf_append(buf, text, strlen(text));
}

void http_buf_printf(http_buf_t *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && reserve(buf, (size_t)n)) {
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, again);
    buf->len += (size_t)n;
  }
  va_end(again);
}

typedef size_t (*encoder_fn)(const qreg_value_t *, char *, size_t);

/* Asks the encoder for the length first, then writes in place. */
static void encode(http_buf_t *buf, const qreg_value_t *value, encoder_fn encoder) {
  size_t n = encoder(value, NULL, 0);
  if (!reserve(buf, n))
    return;
  encoder(value, buf->data + buf->len, n + 1);
  buf->len += n;
}

void http_buf_value_json(http_buf_t *buf, const qreg_value_t *value) {
  encode(buf, value, qreg_value_json);
}

void http_buf_value_text(http_buf_t *buf, const qreg_value_t *value) {
  encode(buf, value, qreg_value_text);
}

void http_buf_json_string(http_buf_t *buf, const char *text) {
  if (!text) {
    http_buf_puts(buf, "null");
    return;
  }
  qreg_value_t value = {.type = QREG_TYPE_TEXT};
  value.v.s.ptr = text;
  value.v.s.len = strlen(text);
  http_buf_value_json(buf, &value);
}

void http_buf_value_csv(http_buf_t *buf, const qreg_value_t *value) {
  if (value->type == QREG_TYPE_NULL)
    return;
  size_t start = buf->len;
  http_buf_value_text(buf, value);
  if (buf->failed)
    return;
  size_t len = buf->len - start;
  const char *field = buf->data + start;
  bool quote = len == 0 && value->type == QREG_TYPE_TEXT;
  size_t quotes = 0;
  for (size_t i = 0; i < len; i++) {
    char c = field[i];
    if (c == '"')
      quotes++;
    if (c == '"' || c == ',' || c == '\r' || c == '\n')
      quote = true;
  }
  if (!quote)
    return;
  /* Rewrite in place, from the end: "text" with each quote doubled. */
  if (!reserve(buf, quotes + 2))
    return;
  char *data = buf->data + start;
  size_t out = len + quotes + 2;
  data[out - 1] = '"';
  size_t w = out - 1;
  for (size_t r = len; r-- > 0;) {
    data[--w] = data[r];
    if (data[r] == '"')
      data[--w] = '"';
  }
  data[0] = '"';
  buf->len = start + out;
  buf->data[buf->len] = '\0';
}

void http_buf_json_time(http_buf_t *buf, int64_t ms) {
  if (ms == 0) {
    http_buf_puts(buf, "null");
    return;
  }
  char text[40];
  qreg_format_time(ms, text, sizeof text);
  http_buf_printf(buf, "\"%s\"", text);
}

char *http_buf_take(http_buf_t *buf, size_t *len) {
  if (buf->failed) {
    http_buf_free(buf);
    return NULL;
  }
  if (!buf->data && !reserve(buf, 0))
    return NULL;
  if (!buf->data)
    return NULL;
  buf->data[buf->len] = '\0';
  char *data = buf->data;
  *len = buf->len;
  buf->data = NULL;
  buf->len = buf->cap = 0;
  return data;
}

void http_buf_free(http_buf_t *buf) {
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
  buf->failed = false;
}
