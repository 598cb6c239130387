/*
 * src/mcp/jsonrpc.h - JSON-RPC 2.0 as MCP uses it on stdio: newline-delimited
 * messages, each one JSON object. This file splits a byte stream into lines
 * (with a size cap), parses and validates one message, and builds and
 * serializes responses (whole, or in parts into an mcp_out_t). It knows
 * nothing of MCP methods.
 *
 * Owns: the line buffer (mcp_line_buffer_t.data), each parsed message's
 * JSON tree (mcp_message_t.root) and each output buffer (mcp_out_t.data). Not thread-safe by itself: each object has
 * one user at a time.
 */
#ifndef QREG_MCP_JSONRPC_H
#define QREG_MCP_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* JSON-RPC 2.0 error codes, and the codes MCP 2026-07-28 defines. */
#define MCP_PARSE_ERROR (-32700)
#define MCP_INVALID_REQUEST (-32600)
#define MCP_METHOD_NOT_FOUND (-32601)
#define MCP_INVALID_PARAMS (-32602)
#define MCP_INTERNAL_ERROR (-32603)
#define MCP_MISSING_CLIENT_CAPABILITY (-32021)
#define MCP_UNSUPPORTED_PROTOCOL_VERSION (-32022)

/* Arrays and objects nested deeper than this are refused before parsing: no
   MCP message needs more, and a deep tree costs stack in every consumer. */
#define MCP_MAX_JSON_DEPTH 64

typedef enum mcp_message_kind {
  MCP_MESSAGE_REQUEST,      /* method and id */
  MCP_MESSAGE_NOTIFICATION, /* method, no id */
  MCP_MESSAGE_RESPONSE,     /* result or error and id: we never send requests */
} mcp_message_kind_t;

/* One parsed, validated message. */
typedef struct mcp_message {
  json_t *root; /* owned: the whole message */
  mcp_message_kind_t kind;
  json_t *id;         /* borrowed from root: string or integer; NULL for notifications */
  const char *method; /* borrowed from root; NULL for responses */
  json_t *params;     /* borrowed from root: an object, or NULL when absent */
} mcp_message_t;

/* Why a message could not be accepted: the error response to send. */
typedef struct mcp_rpc_error {
  int code;
  char message[512];
  json_t *id;   /* owned reference: the request's id when it could be read, else NULL */
  json_t *data; /* owned: optional error data */
} mcp_rpc_error_t;

/*
 * Parses one message of len bytes (not NUL-terminated, may contain anything).
 * On success returns 0 and fills *msg (free with mcp_message_clear). On failure
 * returns the JSON-RPC error code and fills *err (free with mcp_rpc_error_clear):
 * -32700 for bytes that are not JSON (invalid UTF-8 included), -32600 for JSON
 * that is not a valid request/notification/response or is nested deeper than
 * MCP_MAX_JSON_DEPTH, -32602 for params that are not an object.
 */
int mcp_message_parse(const char *data, size_t len, mcp_message_t *msg, mcp_rpc_error_t *err);
void mcp_message_clear(mcp_message_t *msg);
void mcp_rpc_error_clear(mcp_rpc_error_t *err);

/* Sets err (code, formatted message, id reference, data stolen). */
__attribute__((format(printf, 4, 5))) void mcp_rpc_error_set(mcp_rpc_error_t *err, int code,
                                                             json_t *id, const char *fmt, ...);

/* {"jsonrpc":"2.0","id":id,"result":result}. Borrows id, steals result. */
json_t *mcp_jsonrpc_result(json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id|null,"error":{code,message[,data]}}. Borrows id, steals data. */
json_t *mcp_jsonrpc_error(json_t *id, int code, const char *message, json_t *data);

/* Serializes msg as one compact line ending in '\n' (malloc'd, *len excludes
   nothing: it counts the newline). NULL when out of memory. */
char *mcp_jsonrpc_dump_line(const json_t *msg, size_t *len);

/* A growing byte buffer for building one serialization in a single pass
   (json_dumpb needs two: one to size, one to write). */
typedef struct mcp_out {
  char *data; /* owned */
  size_t len;
  size_t cap;
  bool failed;   /* out of memory: data is to be dropped */
  bool counting; /* only counts the bytes (len); data stays NULL */
} mcp_out_t;

/* A raw JSON fragment in a tree: a string whose first byte is this one,
   followed by JSON text that mcp_out_json() writes as it is (a result value
   from qreg_value_json(), which no jansson value could hold exactly). 0xFF
   never occurs in UTF-8, so no string jansson made or read starts with it;
   such a node is made with json_stringn_nocheck() and must never reach
   jansson's own serializer (json_dumps), which would refuse it. */
#define MCP_RAW_JSON_MARK '\xff'

void mcp_out_init(mcp_out_t *out, size_t cap);
void mcp_out_append(mcp_out_t *out, const char *bytes, size_t n);
/* Appends value in compact form: the bytes json_dumps(JSON_COMPACT) writes,
   but raw fragments (MCP_RAW_JSON_MARK) written as the text they carry. */
void mcp_out_json(mcp_out_t *out, const json_t *value);
/* Appends len bytes of UTF-8 text as a JSON string, escaped exactly as
   jansson's compact output escapes it, so that a line written in parts is
   the same bytes as the tree's dump. */
void mcp_out_json_string(mcp_out_t *out, const char *s, size_t len);
/* Appends {"jsonrpc":"2.0","id":id,"result": - the start of the line that
   mcp_jsonrpc_result + mcp_jsonrpc_dump_line write; the caller appends the
   result and "}\n". */
void mcp_out_result_head(mcp_out_t *out, const json_t *id);
/* Gives up the buffer to the caller (NULL after a failure, which frees it). */
char *mcp_out_take(mcp_out_t *out, size_t *len);

/* Bytes mcp_out_json() writes for value. */
size_t mcp_json_size(const json_t *value);

/* Reads lines out of a byte stream. A line longer than max_line bytes is
   skipped whole (up to its newline) and reported once, with its length. */
typedef struct mcp_line_buffer {
  char *data; /* owned: bytes of the current, unfinished line */
  size_t len;
  size_t cap;
  size_t max_line;
  bool discarding;  /* inside an over-long line */
  size_t discarded; /* bytes of it seen so far */
} mcp_line_buffer_t;

typedef struct mcp_line_sink {
  /* A complete line without its '\n' (and without a trailing '\r'). */
  void (*line)(void *ctx, const char *line, size_t len);
  /* A line of `size` bytes (at least) that was dropped for its length. */
  void (*oversized)(void *ctx, size_t size);
  void *ctx;
} mcp_line_sink_t;

void mcp_line_buffer_init(mcp_line_buffer_t *buf, size_t max_line);
void mcp_line_buffer_free(mcp_line_buffer_t *buf);
/* Feeds n bytes; calls the sink for every line they complete. Returns 0, or
   -1 when out of memory (the current line is then dropped as oversized). */
int mcp_line_buffer_feed(mcp_line_buffer_t *buf, const char *bytes, size_t n,
                         const mcp_line_sink_t *sink);
/* End of input: a last line without a newline is delivered too. */
void mcp_line_buffer_finish(mcp_line_buffer_t *buf, const mcp_line_sink_t *sink);

#endif /* QREG_MCP_JSONRPC_H */
