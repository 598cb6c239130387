/*
 * src/mcp/protocol.c - the MCP message handler (see protocol.h): which
 * protocol revision serves each request, the initialize handshake, the
 * per-request _meta of 2026-07-28, method dispatch to tools.c and tasks.c,
 * the in-flight table behind notifications/cancelled, and the parked calls:
 * requests waiting for a query through qreg_watch(), resumed when it settles.
 *
 * Eras. A request whose params._meta names io.modelcontextprotocol/
 * protocolVersion is served statelessly by that revision (2026-07-28, the
 * only modern one), whatever came before. Any other request is served by the
 * revision the initialize handshake negotiated (2025-11-25 or 2025-06-18);
 * before initialize, only ping is answered. Both eras may share one process.
 */
#include "mcp/protocol.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp/tasks.h"
#include "mcp/tools.h"

#define META_PROTOCOL_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CLIENT_CAPABILITIES "io.modelcontextprotocol/clientCapabilities"
#define META_SERVER_INFO "io.modelcontextprotocol/serverInfo"

/* Room kept for the response envelope around a result. */
#define ENVELOPE_BYTES 128
/* A result may always take at least this much, whatever the settings say. */
#define MIN_BUDGET_BYTES 1024
/* Caching hint for tools/list and server/discover: the tools of a process never change. */
#define CACHE_TTL_MS 3600000

#define INSTRUCTIONS_START                                                                         \
  "qreg runs SQL against a database for you. To learn the data, use the exploration tools "        \
  "first, rather than guessing names: list_tables (tables and views, and the SQL dialect), "       \
  "describe_table (columns, keys, indexes), search_columns (find a column by name), "              \
  "sample_table_data (a few real rows) and analyze_table_statistics (counts, ranges, "             \
  "common values). Then run SQL with execute_query: one call runs it and, if it finishes "         \
  "within wait_seconds (default 5 s), returns its rows. A query still running after that "         \
  "comes back with its query_id: call fetch_query_result with wait_seconds to get its rows "       \
  "when it is done, or cancel_query to stop it. Follow next_offset while has_more is true "        \
  "for more rows. Free a result you are done with using forget_query (results share the "          \
  "server's memory). "

/* What the instructions say about writes: only what every source's registry
   enforces (qreg_read_only); and a word on sources when there are several. */
static json_t *instructions(const mcp_server_t *server) {
  const char *writes = server->read_only ? INSTRUCTIONS_START
                           "Queries are read-only: a statement that would change anything "
                           "is refused."
                       : server->any_writes ? INSTRUCTIONS_START
                           "Writes are allowed: a statement can change the database."
                                            : INSTRUCTIONS_START
                           "Queries run in read-only transactions, but the database role is "
                           "privileged: they are not guaranteed to change nothing, so do not "
                           "run statements with side effects.";
  if (server->source_count < 2)
    return json_string(writes);
  return json_pack("s+", writes,
                   " This server serves several databases (sources): call list_sources first, "
                   "and pass source to every tool (default: the first source).");
}

int mcp_server_new(qreg_t *reg, const mcp_settings_t *settings, mcp_server_t **out) {
  mcp_source_t source = {.name = "default",
                         .reg = reg,
                         .allow_writes = settings->allow_writes,
                         .timeout_ms = settings->timeout_ms};
  return mcp_server_new_sources(&source, 1, settings, out);
}

int mcp_server_new_sources(const mcp_source_t *sources, size_t count,
                           const mcp_settings_t *settings, mcp_server_t **out) {
  if (count == 0 || count > MCP_MAX_SOURCES)
    return QREG_EINVAL;
  mcp_server_t *server = calloc(1, sizeof *server);
  if (!server)
    return QREG_ENOMEM;
  memcpy(server->sources, sources, count * sizeof *sources);
  server->source_count = count;
  server->reg = sources[0].reg;
  server->settings = *settings;
  bool any_writes = false, read_only = true;
  for (size_t i = 0; i < count; i++) {
    any_writes = any_writes || sources[i].allow_writes;
    read_only = read_only && !sources[i].allow_writes && qreg_read_only(sources[i].reg);
  }
  server->any_writes = any_writes;
  server->read_only = read_only;
  server->tools = mcp_tools_definitions(any_writes, read_only);
  mcp_tools_drop_disabled(server->tools, settings->disabled_tools);
  mcp_tools_add_sources(server);
  server->tasks = mcp_tasks_new();
  if (!server->tools || !server->tasks) {
    json_decref(server->tools);
    mcp_tasks_free(server->tasks);
    free(server);
    return QREG_ENOMEM;
  }
  pthread_mutex_init(&server->mutex, NULL);
  pthread_mutex_init(&server->ready_mutex, NULL);
  pthread_cond_init(&server->ready_cond, NULL);
  *out = server;
  return 0;
}

void mcp_server_set_waker(mcp_server_t *server, mcp_wake_fn fn, void *ctx) {
  server->wake = fn;
  server->wake_ctx = ctx;
}

void mcp_server_set_logger(mcp_server_t *server, mcp_log_fn fn, void *ctx) {
  server->log = fn;
  server->log_ctx = ctx;
}

void mcp_server_free(mcp_server_t *server) {
  if (!server)
    return;
  json_decref(server->tools);
  mcp_tasks_free(server->tasks);
  /* Calls answered at their deadline whose watch has been called since:
     nothing is due for them any more. */
  mcp_call_t *call;
  while ((call = mcp_server_next_ready(server)) != NULL) {
    assert(call->answered);
    mcp_call_free(call);
  }
  /* A parked call belongs to its watch, which qreg_close() calls: freeing
     the server under one would leave the callback a dangling pointer. */
  assert(server->parked == 0 && server->ready_head == NULL);
  pthread_cond_destroy(&server->ready_cond);
  pthread_mutex_destroy(&server->ready_mutex);
  pthread_mutex_destroy(&server->mutex);
  free(server);
}

__attribute__((format(printf, 2, 3))) static void logf_(mcp_server_t *server, const char *fmt,
                                                        ...) {
  if (!server->log)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  server->log(server->log_ctx, line);
}

/* --- revisions and capabilities ---------------------------------------------------------- */

static bool legacy_version(const char *version) {
  return strcmp(version, MCP_VERSION_2025_11_25) == 0 ||
         strcmp(version, MCP_VERSION_2025_06_18) == 0;
}

static json_t *supported_versions(void) {
  return json_pack("[sss]", MCP_VERSION_2026_07_28, MCP_VERSION_2025_11_25, MCP_VERSION_2025_06_18);
}

static json_t *server_info(void) {
  return json_pack("{s:s, s:s, s:s}", "name", MCP_SERVER_NAME, "title",
                   "qreg: asynchronous SQL query registry", "version", QREG_VERSION_STRING);
}

static json_t *capabilities(bool modern, const char *version) {
  json_t *caps = json_pack("{s:{s:b}}", "tools", "listChanged", 0);
  if (modern)
    json_object_set_new(caps, "extensions", json_pack("{s:{}}", MCP_TASKS_EXTENSION));
  else if (strcmp(version, MCP_VERSION_2025_11_25) == 0)
    json_object_set_new(
        caps, "tasks",
        json_pack("{s:{}, s:{}, s:{s:{s:{}}}}", "list", "cancel", "requests", "tools", "call"));
  return caps;
}

/* --- replies -------------------------------------------------------------------------------- */

static char *dump_reply(json_t *msg, size_t *len) {
  char *line = mcp_jsonrpc_dump_line(msg, len);
  json_decref(msg);
  return line;
}

/* The text of a tool result's only content item, when the result has
   structuredContent too and that item is exactly {"type":"text","text":...}:
   by tools.h's contract, that text is the compact serialization of
   structuredContent. NULL otherwise. */
static json_t *structured_text(const json_t *result) {
  if (!json_is_object(json_object_get(result, "structuredContent")))
    return NULL;
  json_t *content = json_object_get(result, "content");
  json_t *item = json_array_get(content, 0);
  json_t *text = json_object_get(item, "text");
  if (json_array_size(content) != 1 || json_object_size(item) != 2 || !json_is_string(text))
    return NULL;
  const char *key = json_object_iter_key(json_object_iter(item));
  if (strcmp(key, "type") != 0 || !json_is_string(json_object_get(item, "type")))
    return NULL;
  return text;
}

/* A tool result's line written in parts: the text of its content item is
   escaped once, in one pass, and structuredContent is that same text
   unescaped, copied rather than serialized a second time. Most of the work
   of a response, halved. The same bytes as the tree's dump. */
static char *tool_result_line(const json_t *id, const json_t *result, const json_t *text,
                              size_t *len) {
  const char *raw = json_string_value(text);
  size_t raw_len = json_string_length(text);
  mcp_out_t out;
  mcp_out_init(&out, raw_len * 2 + 512);
  mcp_out_result_head(&out, id);
  mcp_out_append(&out, "{", 1);
  const char *key;
  json_t *value;
  bool first = true;
  json_object_foreach((json_t *)result, key, value) {
    if (!first)
      mcp_out_append(&out, ",", 1);
    first = false;
    mcp_out_json_string(&out, key, strlen(key));
    mcp_out_append(&out, ":", 1);
    if (strcmp(key, "structuredContent") == 0) {
      mcp_out_append(&out, raw, raw_len);
    } else if (strcmp(key, "content") == 0) {
      json_t *type = json_object_get(json_array_get(value, 0), "type");
      mcp_out_append(&out, "[{\"type\":", 9);
      mcp_out_json_string(&out, json_string_value(type), json_string_length(type));
      mcp_out_append(&out, ",\"text\":", 8);
      mcp_out_json_string(&out, raw, raw_len);
      mcp_out_append(&out, "}]", 2);
    } else {
      mcp_out_json(&out, value);
    }
  }
  mcp_out_append(&out, "}}\n", 3);
  return mcp_out_take(&out, len);
}

/* The response line for a result (stolen). */
static char *result_reply(json_t *id, json_t *result, size_t *len) {
  json_t *text = structured_text(result);
  char *line = text ? tool_result_line(id, result, text, len) : NULL;
  if (!line)
    return dump_reply(mcp_jsonrpc_result(id, result), len);
#ifndef NDEBUG
  /* Debug builds (the tests, the fuzzer) check both the contract of tools.h
     and this writer: the bytes must be the tree's. */
  size_t expected_len = 0;
  char *expected = dump_reply(mcp_jsonrpc_result(id, json_incref(result)), &expected_len);
  assert(!expected || (expected_len == *len && memcmp(expected, line, *len) == 0));
  free(expected);
#endif
  json_decref(result);
  return line;
}

static char *error_reply(json_t *id, int code, const char *message, json_t *data, size_t *len) {
  return dump_reply(mcp_jsonrpc_error(id, code, message, data), len);
}

char *mcp_server_oversized_reply(mcp_server_t *server, size_t size, size_t *reply_len) {
  char message[256];
  snprintf(message, sizeof message,
           "Invalid Request: a message of %zu bytes or more exceeds the limit of %zu bytes "
           "(qreg mcp --max-message-bytes)",
           size, server->settings.max_message_bytes);
  return error_reply(NULL, MCP_INVALID_REQUEST, message, NULL, reply_len);
}

/* Adds what every 2026-07-28 result carries: resultType and serverInfo. */
static void decorate_modern(json_t *result, const char *result_type) {
  if (!json_object_get(result, "resultType"))
    json_object_set_new(result, "resultType", json_string(result_type ? result_type : "complete"));
  json_t *meta = json_object_get(result, "_meta");
  if (!json_is_object(meta)) {
    meta = json_object();
    json_object_set_new(result, "_meta", meta);
  }
  json_object_set_new(meta, META_SERVER_INFO, server_info());
}

/* --- receiving ------------------------------------------------------------------------------ */

static char *handle_initialize(mcp_server_t *server, mcp_session_t *session,
                               const mcp_message_t *msg, size_t *len) {
  json_t *requested = json_object_get(msg->params, "protocolVersion");
  if (!json_is_string(requested))
    return error_reply(msg->id, MCP_INVALID_PARAMS,
                       "Invalid params: initialize needs protocolVersion (a string)", NULL, len);
  json_t *caps = json_object_get(msg->params, "capabilities");
  if (caps && !json_is_object(caps))
    return error_reply(msg->id, MCP_INVALID_PARAMS,
                       "Invalid params: capabilities must be an object", NULL, len);
  /* The requested revision if we speak it, else our latest legacy one: the
     client decides whether it can live with that. */
  const char *version = legacy_version(json_string_value(requested)) ? json_string_value(requested)
                                                                     : MCP_VERSION_2025_11_25;
  pthread_mutex_lock(&server->mutex);
  char previous[sizeof session->version];
  memcpy(previous, session->version, sizeof previous);
  if (!previous[0])
    snprintf(session->version, sizeof session->version, "%s", version);
  pthread_mutex_unlock(&server->mutex);
  if (previous[0]) {
    char message[160];
    snprintf(message, sizeof message,
             "Invalid Request: already initialized (protocol %s); one initialize per session",
             previous);
    return error_reply(msg->id, MCP_INVALID_REQUEST, message, NULL, len);
  }
  json_t *client = json_object_get(json_object_get(msg->params, "clientInfo"), "name");
  logf_(server, "initialize: protocol %s (client asked %.40s), client %.80s", version,
        json_string_value(requested), json_is_string(client) ? json_string_value(client) : "?");
  json_t *result = json_pack("{s:s, s:o, s:o, s:o}", "protocolVersion", version, "capabilities",
                             capabilities(false, version), "serverInfo", server_info(),
                             "instructions", instructions(server));
  return dump_reply(mcp_jsonrpc_result(msg->id, result), len);
}

static void handle_notification(mcp_server_t *server, const mcp_session_t *session,
                                const mcp_message_t *msg) {
  if (strcmp(msg->method, "notifications/cancelled") != 0)
    return; /* notifications/initialized and others need nothing from us */
  json_t *request_id = json_object_get(msg->params, "requestId");
  if (!request_id)
    return;
  qreg_id_t query;
  qreg_t *reg = NULL;
  bool found = false;
  bool has_query = false;
  pthread_mutex_lock(&server->mutex);
  for (mcp_call_t **p = &server->inflight; *p; p = &(*p)->next) {
    mcp_call_t *call = *p;
    if (call->session == session->serial && json_equal(call->msg.id, request_id)) {
      found = true;
      call->cancelled = true;
      has_query = call->has_query;
      query = call->query;
      reg = call->reg;
      /* Out of the table at once: no answer is due any more, and a parked
         call is kept only until its watch is called (no watch can be
         withdrawn), then freed without a word. */
      *p = call->next;
      call->next = NULL;
      break;
    }
  }
  pthread_mutex_unlock(&server->mutex);
  json_t *reason = json_object_get(msg->params, "reason");
  if (found)
    logf_(server, "request cancelled by the client%s%.200s%s", json_is_string(reason) ? " (" : "",
          json_is_string(reason) ? json_string_value(reason) : "",
          json_is_string(reason) ? ")" : "");
  /* Asked, not waited for: the reader never waits on a database. */
  if (has_query)
    (void)qreg_cancel_async(reg, query.str, NULL);
}

/* Reads the 2026-07-28 request metadata into the call; returns an error line
   when it is malformed or names a revision we do not serve. */
static char *read_modern_meta(mcp_call_t *call, json_t *meta, json_t *version, size_t *len) {
  json_t *id = call->msg.id;
  if (!json_is_string(version))
    return error_reply(id, MCP_INVALID_PARAMS,
                       "Invalid params: _meta." META_PROTOCOL_VERSION " must be a string", NULL,
                       len);
  if (strcmp(json_string_value(version), MCP_VERSION_2026_07_28) != 0) {
    json_t *data = json_pack("{s:o, s:O}", "supported", supported_versions(), "requested", version);
    return error_reply(id, MCP_UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data,
                       len);
  }
  json_t *caps = json_object_get(meta, META_CLIENT_CAPABILITIES);
  if (!json_is_object(caps))
    return error_reply(id, MCP_INVALID_PARAMS,
                       "Invalid params: _meta." META_CLIENT_CAPABILITIES
                       " (an object) is required with protocol 2026-07-28",
                       NULL, len);
  call->modern = true;
  snprintf(call->version, sizeof call->version, "%s", MCP_VERSION_2026_07_28);
  json_t *extension = json_object_get(json_object_get(caps, "extensions"), MCP_TASKS_EXTENSION);
  call->client_tasks = json_is_object(extension);
  return NULL;
}

mcp_call_t *mcp_server_receive(mcp_server_t *server, const char *data, size_t len, char **reply,
                               size_t *reply_len) {
  return mcp_server_receive_in(server, &server->session, data, len, reply, reply_len);
}

void mcp_server_session_init(mcp_server_t *server, mcp_session_t *session) {
  pthread_mutex_lock(&server->mutex);
  session->serial = ++server->next_session;
  session->version[0] = '\0';
  pthread_mutex_unlock(&server->mutex);
}

void mcp_server_session_version(mcp_server_t *server, const mcp_session_t *session, char out[16]) {
  pthread_mutex_lock(&server->mutex);
  memcpy(out, session->version, sizeof session->version);
  pthread_mutex_unlock(&server->mutex);
}

mcp_call_t *mcp_server_receive_in(mcp_server_t *server, mcp_session_t *session, const char *data,
                                  size_t len, char **reply, size_t *reply_len) {
  *reply = NULL;
  *reply_len = 0;
  mcp_message_t msg;
  mcp_rpc_error_t err;
  if (mcp_message_parse(data, len, &msg, &err) != 0) {
    logf_(server, "bad message (%d): %s", err.code, err.message);
    *reply = error_reply(err.id, err.code, err.message, err.data, reply_len);
    err.data = NULL;
    mcp_rpc_error_clear(&err);
    return NULL;
  }
  if (msg.kind == MCP_MESSAGE_RESPONSE) {
    /* We send no requests, so no response can be ours. */
    mcp_message_clear(&msg);
    return NULL;
  }
  if (msg.kind == MCP_MESSAGE_NOTIFICATION) {
    handle_notification(server, session, &msg);
    mcp_message_clear(&msg);
    return NULL;
  }
  if (strcmp(msg.method, "initialize") == 0) {
    *reply = handle_initialize(server, session, &msg, reply_len);
    mcp_message_clear(&msg);
    return NULL;
  }
  mcp_call_t *call = calloc(1, sizeof *call);
  if (!call) {
    *reply =
        error_reply(msg.id, MCP_INTERNAL_ERROR, "Internal error: out of memory", NULL, reply_len);
    mcp_message_clear(&msg);
    return NULL;
  }
  call->server = server;
  call->session = session->serial;
  call->reg = server->sources[0].reg;
  call->msg = msg;
  json_t *meta = json_object_get(msg.params, "_meta");
  json_t *version = json_object_get(meta, META_PROTOCOL_VERSION);
  if (meta && !json_is_object(meta)) {
    *reply = error_reply(msg.id, MCP_INVALID_PARAMS, "Invalid params: _meta must be an object",
                         NULL, reply_len);
  } else if (version) {
    *reply = read_modern_meta(call, meta, version, reply_len);
  } else {
    pthread_mutex_lock(&server->mutex);
    snprintf(call->version, sizeof call->version, "%s", session->version);
    pthread_mutex_unlock(&server->mutex);
    if (strcmp(msg.method, "ping") == 0) {
      *reply = dump_reply(mcp_jsonrpc_result(msg.id, json_object()), reply_len);
    } else if (!call->version[0] && strcmp(msg.method, "server/discover") != 0) {
      json_t *supported = json_pack("{s:o}", "supported", supported_versions());
      *reply = error_reply(msg.id, MCP_INVALID_PARAMS,
                           "Invalid params: not initialized. Send initialize first (protocol "
                           "2025-11-25 or 2025-06-18), or name the protocol in every request's "
                           "params._meta[\"" META_PROTOCOL_VERSION "\"] (2026-07-28)",
                           supported, reply_len);
    }
  }
  if (*reply) {
    mcp_call_free(call);
    return NULL;
  }
  size_t id_size = mcp_json_size(msg.id);
  size_t overhead = id_size + ENVELOPE_BYTES;
  call->budget = server->settings.max_response_bytes > overhead + MIN_BUDGET_BYTES
                     ? server->settings.max_response_bytes - overhead
                     : MIN_BUDGET_BYTES;
  pthread_mutex_lock(&server->mutex);
  call->next = server->inflight;
  server->inflight = call;
  pthread_mutex_unlock(&server->mutex);
  return call;
}

/* --- running -------------------------------------------------------------------------------- */

static json_t *method_tools_call(mcp_call_t *call) {
  json_t *name = mcp_call_param(call, "name");
  json_t *arguments = mcp_call_param(call, "arguments");
  if (!json_is_string(name)) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Invalid params: name (a string) is required");
    return NULL;
  }
  if (arguments && !json_is_null(arguments) && !json_is_object(arguments)) {
    mcp_call_fail(call, MCP_INVALID_PARAMS, NULL, "Invalid params: arguments must be an object");
    return NULL;
  }
  if (json_is_null(arguments))
    arguments = NULL;
  const char *tool = json_string_value(name);
  json_t *task = mcp_call_param(call, "task");
  if (task && json_is_null(task))
    task = NULL;
  if (mcp_call_has_legacy_tasks(call) && task) {
    if (!mcp_tools_task_capable(tool)) {
      mcp_call_fail(call, MCP_METHOD_NOT_FOUND, NULL,
                    "Method not found: tool '%.100s' cannot run as a task (only execute_query "
                    "can)",
                    tool);
      return NULL;
    }
    return mcp_tasks_create(call, arguments, task);
  }
  /* 2026-07-28: the server decides. A client that declared the tasks
     extension gets execute_query as a task, since a query may run long. */
  if (call->modern && call->client_tasks && mcp_tools_task_capable(tool))
    return mcp_tasks_create(call, arguments, NULL);
  return mcp_tools_call(call, tool, arguments);
}

static bool require_tasks(mcp_call_t *call, bool legacy_allowed) {
  if (call->modern) {
    if (call->client_tasks)
      return true;
    json_t *data =
        json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions", MCP_TASKS_EXTENSION);
    mcp_call_fail(call, MCP_MISSING_CLIENT_CAPABILITY, data,
                  "Missing required client capability: extensions." MCP_TASKS_EXTENSION);
    return false;
  }
  if (legacy_allowed && mcp_call_has_legacy_tasks(call))
    return true;
  mcp_call_fail(call, MCP_METHOD_NOT_FOUND, NULL, "Method not found: %s (not in protocol %s)",
                call->msg.method, call->version);
  return false;
}

static json_t *dispatch(mcp_call_t *call) {
  const char *method = call->msg.method;
  if (strcmp(method, "tools/list") == 0) {
    json_t *cursor = mcp_call_param(call, "cursor");
    if (cursor && !json_is_null(cursor)) {
      mcp_call_fail(call, MCP_INVALID_PARAMS, NULL,
                    "Invalid params: invalid cursor (every tool fits on one page)");
      return NULL;
    }
    json_t *result = mcp_tools_list(call);
    if (call->modern) {
      json_object_set_new(result, "ttlMs", json_integer(CACHE_TTL_MS));
      json_object_set_new(result, "cacheScope", json_string("public"));
    }
    return result;
  }
  if (strcmp(method, "tools/call") == 0)
    return method_tools_call(call);
  if (strcmp(method, "server/discover") == 0)
    return json_pack("{s:o, s:o, s:o, s:i, s:s}", "supportedVersions", supported_versions(),
                     "capabilities", capabilities(true, MCP_VERSION_2026_07_28), "instructions",
                     instructions(call->server), "ttlMs", CACHE_TTL_MS, "cacheScope", "public");
  if (strcmp(method, "tasks/get") == 0)
    return require_tasks(call, true) ? mcp_tasks_get(call) : NULL;
  if (strcmp(method, "tasks/cancel") == 0)
    return require_tasks(call, true) ? mcp_tasks_cancel(call) : NULL;
  if (strcmp(method, "tasks/result") == 0 || strcmp(method, "tasks/list") == 0) {
    if (call->modern) {
      mcp_call_fail(call, MCP_METHOD_NOT_FOUND, NULL,
                    "Method not found: %s (removed from the tasks extension of 2026-07-28; "
                    "poll tasks/get)",
                    method);
      return NULL;
    }
    if (!require_tasks(call, true))
      return NULL;
    return method[6] == 'r' ? mcp_tasks_result(call) : mcp_tasks_list(call);
  }
  if (strcmp(method, "tasks/update") == 0)
    return require_tasks(call, false) ? mcp_tasks_update(call) : NULL;
  if (strcmp(method, "ping") == 0) {
    mcp_call_fail(call, MCP_METHOD_NOT_FOUND, NULL,
                  "Method not found: ping (removed in protocol 2026-07-28)");
    return NULL;
  }
  mcp_call_fail(call, MCP_METHOD_NOT_FOUND, NULL, "Method not found: %.200s", method);
  return NULL;
}

/* Runs the call - its method, or its resume function when it comes back
   from a wait - and answers it, unless it parks: then *parked is set and the
   call is no longer the caller's. */
static char *run_call(mcp_call_t *call, size_t *reply_len, bool *parked, void **finished) {
  *reply_len = 0;
  *parked = false;
  *finished = NULL;
  if (call->answered) {
    /* Answered at its deadline; now its watch has been called too. */
    mcp_call_free(call);
    return NULL;
  }
  json_t *result = NULL;
  bool skip = false;
  bool expired = call->expired;
  for (;;) {
    mcp_resume_fn resume = call->resume;
    if (!resume) {
      result = dispatch(call);
    } else {
      call->resume = NULL;
      if (mcp_call_cancelled(call))
        skip = true; /* the client gave up on it while it waited */
      else if (expired)
        result = resume(call, call->awaited.str, QREG_ETIMEDOUT, QREG_RUNNING);
      else
        result = resume(call, call->awaited.str, call->awaited_rc, call->awaited_status);
    }
    if (skip || !call->resume)
      break;
    if (expired) {
      /* A wait that ended at its deadline answers; it cannot wait again
         while its first watch is still out. */
      call->resume = NULL;
      json_decref(result);
      result = NULL;
      mcp_call_fail(call, MCP_INTERNAL_ERROR, NULL, "Internal error: a wait was parked twice");
      break;
    }
    /* The handler parked the call. */
    json_decref(result);
    result = NULL;
    if (mcp_call_arm(call)) {
      *parked = true;
      return NULL;
    }
    /* Its query settled while the handler was still returning: go on here. */
  }
  bool cancelled = mcp_call_unregister(call) || skip;
  char *line = NULL;
  if (cancelled) {
    /* The client gave up on it: no response is due. */
    json_decref(result);
  } else if (result) {
    if (call->modern || strcmp(call->msg.method, "server/discover") == 0)
      decorate_modern(result, call->result_type);
    line = result_reply(call->msg.id, result, reply_len);
  } else {
    json_t *data = call->error_data;
    call->error_data = NULL;
    line =
        error_reply(call->msg.id, call->error_code ? call->error_code : MCP_INTERNAL_ERROR,
                    call->error_message ? call->error_message : "Internal error", data, reply_len);
  }
  *finished = call->transport;
  if (expired)
    call->answered = true; /* kept for its watch, which frees it (above) */
  else
    mcp_call_free(call);
  return line;
}

char *mcp_server_run(mcp_server_t *server, mcp_call_t *call, size_t *reply_len) {
  void *finished;
  return mcp_server_run_for(server, call, reply_len, &finished);
}

char *mcp_server_run_for(mcp_server_t *server, mcp_call_t *call, size_t *reply_len,
                         void **finished) {
  (void)server;
  bool parked;
  return run_call(call, reply_len, &parked, finished);
}

bool mcp_server_idle(mcp_server_t *server) {
  pthread_mutex_lock(&server->mutex);
  bool idle = server->inflight == NULL;
  pthread_mutex_unlock(&server->mutex);
  return idle;
}

char *mcp_server_handle_message(mcp_server_t *server, const char *data, size_t len,
                                size_t *reply_len) {
  char *reply = NULL;
  mcp_call_t *call = mcp_server_receive(server, data, len, &reply, reply_len);
  bool parked = call != NULL;
  while (parked) {
    void *finished;
    reply = run_call(call, reply_len, &parked, &finished);
    if (!parked)
      break;
    /* Wait for this call's watch or its deadline, then take it off the
       ready (or timed) list. */
    pthread_mutex_lock(&server->ready_mutex);
    while (!mcp_ready_remove_locked(server, call)) {
      if (call->timed) {
        uint64_t now = mcp_monotonic_ms();
        if (call->deadline_ms <= now) {
          mcp_timed_unlink_locked(server, call);
          call->expired = true;
          break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t left = call->deadline_ms - now;
        until.tv_sec += (time_t)(left / 1000);
        until.tv_nsec += (long)(left % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
          until.tv_sec++;
          until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&server->ready_cond, &server->ready_mutex, &until);
      } else {
        pthread_cond_wait(&server->ready_cond, &server->ready_mutex);
      }
    }
    pthread_mutex_unlock(&server->ready_mutex);
  }
  return reply;
}
