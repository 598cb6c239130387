/*
 * src/mcp/jsonrpc.c - JSON-RPC 2.0 framing for the MCP server: line
 * splitting with a size cap, parsing and validation of one message, building
 * and serializing responses. See jsonrpc.h for what each piece owns.
 */
#include "mcp/jsonrpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- messages --------------------------------------------------------------------- */

void mcp_rpc_error_set(mcp_rpc_error_t *err, int code, json_t *id, const char *fmt, ...) {
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->id = id ? json_incref(id) : NULL;
  err->data = NULL;
}

void mcp_rpc_error_clear(mcp_rpc_error_t *err) {
  json_decref(err->id);
  json_decref(err->data);
  err->id = NULL;
  err->data = NULL;
}

void mcp_message_clear(mcp_message_t *msg) {
  json_decref(msg->root);
  memset(msg, 0, sizeof *msg);
}

/* True when arrays/objects in the text nest deeper than limit. Looks only at
   brackets outside strings; whether the text is JSON at all is the parser's
   business. Runs before the parser so that no recursive code ever sees a
   deep tree. */
static bool nesting_exceeds(const char *data, size_t len, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    char c = data[i];
    if (in_string) {
      if (c == '\\')
        i++; /* the escaped character cannot end the string */
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit)
        return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return false;
}

/* An id MCP accepts: a string or an integer (never null, never fractional). */
static bool valid_id(const json_t *id) {
  return json_is_string(id) || json_is_integer(id);
}

int mcp_message_parse(const char *data, size_t len, mcp_message_t *msg, mcp_rpc_error_t *err) {
  memset(msg, 0, sizeof *msg);
  memset(err, 0, sizeof *err);
  if (nesting_exceeds(data, len, MCP_MAX_JSON_DEPTH)) {
    mcp_rpc_error_set(err, MCP_INVALID_REQUEST, NULL,
                      "Invalid Request: JSON nested deeper than %d levels", MCP_MAX_JSON_DEPTH);
    return err->code;
  }
  json_error_t jerr;
  /* JSON_ALLOW_NUL: "\u0000" is valid JSON; the tools refuse it where it
     matters (SQL) with a clear message instead of a parse error. Duplicate
     keys are refused: two readers of one message must never disagree. */
  json_t *root =
      json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    mcp_rpc_error_set(err, MCP_PARSE_ERROR, NULL, "Parse error: %s%s (line %d, column %d)",
                      json_error_code(&jerr) == json_error_invalid_utf8 ? "invalid UTF-8: " : "",
                      jerr.text, jerr.line, jerr.column);
    return err->code;
  }
  if (json_is_array(root)) {
    json_decref(root);
    mcp_rpc_error_set(err, MCP_INVALID_REQUEST, NULL,
                      "Invalid Request: JSON-RPC batches are not supported by MCP; send one "
                      "message per line");
    return err->code;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    mcp_rpc_error_set(err, MCP_INVALID_REQUEST, NULL,
                      "Invalid Request: a JSON-RPC message must be an object");
    return err->code;
  }
  json_t *id = json_object_get(root, "id");
  json_t *usable_id = valid_id(id) ? id : NULL;
  const char *fail = NULL;
  json_t *version = json_object_get(root, "jsonrpc");
  json_t *method = json_object_get(root, "method");
  json_t *params = json_object_get(root, "params");
  if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0) {
    fail = "\"jsonrpc\" must be \"2.0\"";
  } else if (id && !valid_id(id)) {
    fail = "\"id\" must be a string or an integer";
  } else if (method) {
    if (!json_is_string(method))
      fail = "\"method\" must be a string";
    else if (json_object_get(root, "result") || json_object_get(root, "error"))
      fail = "a request carries no \"result\" or \"error\"";
  } else if (!id || (!json_object_get(root, "result") && !json_object_get(root, "error"))) {
    fail = "\"method\" is missing"; /* neither a request nor a response */
  }
  if (fail) {
    mcp_rpc_error_set(err, MCP_INVALID_REQUEST, usable_id, "Invalid Request: %s", fail);
    json_decref(root);
    return err->code;
  }
  if (method && params && !json_is_object(params)) {
    mcp_rpc_error_set(err, MCP_INVALID_PARAMS, usable_id,
                      "Invalid params: \"params\" must be an object");
    json_decref(root);
    return err->code;
  }
  msg->root = root;
  msg->id = id;
  msg->params = params;
  if (!method) {
    msg->kind = MCP_MESSAGE_RESPONSE;
  } else {
    msg->method = json_string_value(method);
    msg->kind = id ? MCP_MESSAGE_REQUEST : MCP_MESSAGE_NOTIFICATION;
  }
  return 0;
}

/* --- responses -------------------------------------------------------------------- */

json_t *mcp_jsonrpc_result(json_t *id, json_t *result) {
  json_t *msg = json_object();
  json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  json_object_set(msg, "id", id);
  json_object_set_new(msg, "result", result ? result : json_object());
  return msg;
}

json_t *mcp_jsonrpc_error(json_t *id, int code, const char *message, json_t *data) {
  json_t *error = json_object();
  json_object_set_new(error, "code", json_integer(code));
  json_object_set_new(error, "message", json_string(message));
  if (data)
    json_object_set_new(error, "data", data);
  json_t *msg = json_object();
  json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  json_object_set(msg, "id", id ? id : json_null());
  json_object_set_new(msg, "error", error);
  return msg;
}

size_t mcp_json_size(const json_t *value) {
  mcp_out_t out = {0};
  out.counting = true;
  mcp_out_json(&out, value);
  return out.len;
}

/* --- one-pass output ---------------------------------------------------------------- */

void mcp_out_init(mcp_out_t *out, size_t cap) {
  out->data = malloc(cap ? cap : 1);
  out->len = 0;
  out->cap = out->data ? (cap ? cap : 1) : 0;
  out->failed = out->data == NULL;
  out->counting = false;
}

void mcp_out_append(mcp_out_t *out, const char *bytes, size_t n) {
  if (out->failed)
    return;
  if (out->counting) {
    out->len += n;
    return;
  }
  if (out->len + n > out->cap) {
    size_t cap = out->cap * 2;
    while (cap < out->len + n)
      cap *= 2;
    char *data = realloc(out->data, cap);
    if (!data) {
      out->failed = true;
      return;
    }
    out->data = data;
    out->cap = cap;
  }
  memcpy(out->data + out->len, bytes, n);
  out->len += n;
}

static int out_callback(const char *buffer, size_t size, void *data) {
  mcp_out_t *out = data;
  mcp_out_append(out, buffer, size);
  return out->failed ? -1 : 0;
}

void mcp_out_json(mcp_out_t *out, const json_t *value) {
  if (out->failed)
    return;
  switch (json_typeof(value)) {
  case JSON_OBJECT: {
    const char *key;
    json_t *member;
    bool first = true;
    mcp_out_append(out, "{", 1);
    json_object_foreach((json_t *)value, key, member) {
      if (!first)
        mcp_out_append(out, ",", 1);
      first = false;
      mcp_out_json_string(out, key, strlen(key));
      mcp_out_append(out, ":", 1);
      mcp_out_json(out, member);
    }
    mcp_out_append(out, "}", 1);
    break;
  }
  case JSON_ARRAY: {
    mcp_out_append(out, "[", 1);
    for (size_t i = 0; i < json_array_size(value); i++) {
      if (i > 0)
        mcp_out_append(out, ",", 1);
      mcp_out_json(out, json_array_get(value, i));
    }
    mcp_out_append(out, "]", 1);
    break;
  }
  case JSON_STRING: {
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    if (len > 0 && text[0] == MCP_RAW_JSON_MARK)
      mcp_out_append(out, text + 1, len - 1);
    else
      mcp_out_json_string(out, text, len);
    break;
  }
  default:
    /* Numbers and literals: jansson's own text for them. */
    if (json_dump_callback(value, out_callback, out, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
      out->failed = true;
    break;
  }
}

char *mcp_out_take(mcp_out_t *out, size_t *len) {
  if (out->failed) {
    free(out->data);
    out->data = NULL;
    *len = 0;
    return NULL;
  }
  *len = out->len;
  char *data = out->data;
  out->data = NULL;
  return data;
}

/* Start size of the output buffer: most responses fit in one go. */
#define LINE_START_BYTES 2048

char *mcp_jsonrpc_dump_line(const json_t *msg, size_t *len) {
  /* Compact output escapes every control character inside strings, so the
     line holds no newline but the one that ends it. */
  mcp_out_t out;
  mcp_out_init(&out, LINE_START_BYTES);
  mcp_out_json(&out, msg);
  mcp_out_append(&out, "\n", 1);
  return mcp_out_take(&out, len);
}

void mcp_out_json_string(mcp_out_t *out, const char *s, size_t len) {
  mcp_out_append(out, "\"", 1);
  size_t run = 0; /* bytes copied as they are, from s + run_start */
  size_t run_start = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      run++;
      continue;
    }
    mcp_out_append(out, s + run_start, run);
    char escape[8];
    size_t n = 2;
    escape[0] = '\\';
    switch (c) {
    case '"':
      escape[1] = '"';
      break;
    case '\\':
      escape[1] = '\\';
      break;
    case '\b':
      escape[1] = 'b';
      break;
    case '\f':
      escape[1] = 'f';
      break;
    case '\n':
      escape[1] = 'n';
      break;
    case '\r':
      escape[1] = 'r';
      break;
    case '\t':
      escape[1] = 't';
      break;
    default:
      n = (size_t)snprintf(escape, sizeof escape, "\\u%04X", c); /* as jansson: upper case */
      break;
    }
    mcp_out_append(out, escape, n);
    run_start = i + 1;
    run = 0;
  }
  mcp_out_append(out, s + run_start, run);
  mcp_out_append(out, "\"", 1);
}

void mcp_out_result_head(mcp_out_t *out, const json_t *id) {
  /* The members in mcp_jsonrpc_result's order. */
  static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
  static const char result[] = ",\"result\":";
  mcp_out_append(out, head, sizeof head - 1);
  mcp_out_json(out, id);
  mcp_out_append(out, result, sizeof result - 1);
}

/* --- lines ------------------------------------------------------------------------ */

void mcp_line_buffer_init(mcp_line_buffer_t *buf, size_t max_line) {
  memset(buf, 0, sizeof *buf);
  buf->max_line = max_line;
}

void mcp_line_buffer_free(mcp_line_buffer_t *buf) {
  free(buf->data);
  memset(buf, 0, sizeof *buf);
}

static void deliver(const char *line, size_t len, const mcp_line_sink_t *sink) {
  if (len > 0 && line[len - 1] == '\r')
    len--;
  sink->line(sink->ctx, line, len);
}

/* Appends to the unfinished line, or switches to discarding it. */
static int append(mcp_line_buffer_t *buf, const char *bytes, size_t n) {
  if (buf->discarding) {
    buf->discarded += n;
    return 0;
  }
  if (buf->len + n > buf->max_line) {
    buf->discarding = true;
    buf->discarded = buf->len + n;
    buf->len = 0;
    return 0;
  }
  if (buf->len + n > buf->cap) {
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < buf->len + n)
      cap *= 2;
    if (cap > buf->max_line)
      cap = buf->max_line;
    char *data = realloc(buf->data, cap);
    if (!data) {
      buf->discarding = true;
      buf->discarded = buf->len + n;
      buf->len = 0;
      return -1;
    }
    buf->data = data;
    buf->cap = cap;
  }
  memcpy(buf->data + buf->len, bytes, n);
  buf->len += n;
  return 0;
}

int mcp_line_buffer_feed(mcp_line_buffer_t *buf, const char *bytes, size_t n,
                         const mcp_line_sink_t *sink) {
  int rc = 0;
  while (n > 0) {
    const char *newline = memchr(bytes, '\n', n);
    size_t part = newline ? (size_t)(newline - bytes) : n;
    if (newline && !buf->discarding && buf->len == 0) {
      /* The whole line is in this chunk: no copy. */
      if (part <= buf->max_line)
        deliver(bytes, part, sink);
      else
        sink->oversized(sink->ctx, part);
    } else {
      if (append(buf, bytes, part) < 0)
        rc = -1;
      if (newline) {
        if (buf->discarding)
          sink->oversized(sink->ctx, buf->discarded);
        else
          deliver(buf->data, buf->len, sink);
        buf->discarding = false;
        buf->discarded = 0;
        buf->len = 0;
      }
    }
    if (!newline)
      break;
    bytes += part + 1;
    n -= part + 1;
  }
  return rc;
}

void mcp_line_buffer_finish(mcp_line_buffer_t *buf, const mcp_line_sink_t *sink) {
  if (buf->discarding)
    sink->oversized(sink->ctx, buf->discarded);
  else if (buf->len > 0)
    deliver(buf->data, buf->len, sink);
  buf->discarding = false;
  buf->discarded = 0;
  buf->len = 0;
}
