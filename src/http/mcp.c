/*
 * src/http/mcp.c - MCP over Streamable HTTP at /mcp: the same message
 * handler as stdio (src/mcp/protocol.h), its tools and tasks, for many
 * clients at once.
 *
 *  - POST /mcp carries one JSON-RPC message. A request answered at once
 *    gets 200 application/json. A request that must wait for a query (its
 *    handler parked it) is answered on an SSE stream (200 text/event-stream,
 *    the response as one `message` event) when the client accepts one, else
 *    its connection is suspended and resumed with the JSON. Notifications
 *    and responses get 202.
 *  - Revisions 2025-06-18 and 2025-11-25 have sessions: an initialize
 *    without Mcp-Session-Id starts one and the answer carries its id (128
 *    random bits); every later request names it (400 without, 404 for one
 *    unknown or ended). GET opens the session's stream (the server sends
 *    no requests of its own: only keep-alive comments); DELETE ends it.
 *  - Revision 2026-07-28 is stateless: a request that names it in
 *    params._meta needs no session. Its MCP-Protocol-Version and Mcp-Method
 *    headers, when sent, must agree with the body (400).
 *
 * Waiting costs no thread: a parked call is resumed by its query's watch,
 * whose waker writes to the server's ready pipe; http_mcp_run() (main
 * thread) then runs it and hands its answer to the request that waits
 * (mcp_call_t.transport). A request whose client went away first is
 * forgotten by the call (transport NULL) and the answer is dropped.
 *
 * Owns: the sessions and the stateless session. Borrows the MCP server
 * (serve.c makes and frees it). Main thread only, but the waker.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "http/headers.h"
#include "http/http_internal.h"
#include "mcp/protocol.h"

#define SESSION_ID_BYTES 16
#define SESSION_ID_LEN (SESSION_ID_BYTES * 2)
/* A session unused this long (and with no request in flight) is ended. */
#define SESSION_IDLE_MS ((uint64_t)60 * 60 * 1000)
#define SESSION_SWEEP_MS ((uint64_t)60 * 1000)
/* A comment on every SSE stream (GET, and POST answers still waiting) this
   often: a client gone is noticed (a suspended connection is not read). */
#define KEEPALIVE_MS ((uint64_t)15 * 1000)
/* Ready calls answered per turn of the loop before the sockets again. */
#define READY_BATCH 256

typedef struct http_mcp_session {
  char id[SESSION_ID_LEN + 1];
  mcp_session_t proto;
  uint64_t last_used_ms;
  size_t busy;             /* requests of it in flight: it is freed only at 0 */
  bool ended;              /* DELETE, or idle: out of the table */
  http_request_t *streams; /* its GET streams (request.session_next) */
  struct http_mcp_session *next;
} http_mcp_session_t;

struct http_mcp {
  mcp_server_t *mcp;       /* borrowed */
  mcp_session_t stateless; /* never initialized: 2026-07-28 requests */
  http_mcp_session_t *sessions;
  size_t session_count;
  size_t max_sessions;
  size_t streams;      /* GET streams open */
  http_request_t *sse; /* every request with an SSE stream (GET and POST): kept alive */
  size_t waiting;      /* requests whose call is parked */
  uint64_t next_keepalive_ms;
  uint64_t next_sweep_ms;
};

/* --- small helpers ---------------------------------------------------------------------- */

static const char *header(http_request_t *req, const char *name) {
  return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

/* A JSON-RPC error as the whole answer (id null: the request was not read). */
static enum MHD_Result answer_rpc_error(http_request_t *req, unsigned status, int code,
                                        const char *message) {
  json_t *error = mcp_jsonrpc_error(NULL, code, message, NULL);
  size_t len = 0;
  char *line = error ? mcp_jsonrpc_dump_line(error, &len) : NULL;
  json_decref(error);
  if (!line)
    return MHD_NO;
  const char *extra = status == MHD_HTTP_SERVICE_UNAVAILABLE ? MHD_HTTP_HEADER_RETRY_AFTER
                      : status == MHD_HTTP_UNAUTHORIZED      ? MHD_HTTP_HEADER_WWW_AUTHENTICATE
                                                             : NULL;
  const char *value = status == MHD_HTTP_SERVICE_UNAVAILABLE ? "1" : "Bearer realm=\"qreg\"";
  return http_answer(req, status, "application/json", line, len, extra, extra ? value : NULL);
}

static enum MHD_Result answer_reply(http_request_t *req, char *reply, size_t len,
                                    const char *session_id) {
  if (!reply) /* a notification, a response, or a request the client cancelled */
    return http_answer(req, MHD_HTTP_ACCEPTED, "application/json", NULL, 0, NULL, NULL);
  return http_answer(req, MHD_HTTP_OK, "application/json", reply, len,
                     session_id ? "Mcp-Session-Id" : NULL, session_id);
}

/* --- sessions --------------------------------------------------------------------------- */

static void session_free(http_mcp_session_t *session) {
  free(session);
}

static void session_end_streams(http_mcp_t *m, http_mcp_session_t *session) {
  for (http_request_t *req = session->streams; req; req = req->session_next) {
    if (req->sse)
      http_sse_close(req->sse);
  }
  (void)m;
}

/* Takes session out of the table; freed now, or by its last request. */
static void session_end(http_mcp_t *m, http_mcp_session_t *session) {
  for (http_mcp_session_t **p = &m->sessions; *p; p = &(*p)->next) {
    if (*p == session) {
      *p = session->next;
      m->session_count--;
      break;
    }
  }
  session->ended = true;
  session->next = NULL;
  session_end_streams(m, session);
  if (session->busy == 0)
    session_free(session);
}

static void sweep_idle(http_mcp_t *m, uint64_t now) {
  http_mcp_session_t *next;
  for (http_mcp_session_t *s = m->sessions; s; s = next) {
    next = s->next;
    if (s->busy == 0 && now - s->last_used_ms >= SESSION_IDLE_MS)
      session_end(m, s);
  }
}

static http_mcp_session_t *session_find(http_mcp_t *m, const char *id) {
  if (strlen(id) != SESSION_ID_LEN)
    return NULL;
  for (http_mcp_session_t *s = m->sessions; s; s = s->next) {
    /* The id is a capability: compared in time independent of where it differs. */
    unsigned char diff = 0;
    for (size_t i = 0; i < SESSION_ID_LEN; i++)
      diff |= (unsigned char)(s->id[i] ^ id[i]);
    if (diff == 0)
      return s;
  }
  return NULL;
}

/* A new session, not yet in the table (initialize must succeed first). */
static http_mcp_session_t *session_new(http_mcp_t *m) {
  unsigned char bytes[SESSION_ID_BYTES];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return NULL;
    got += (size_t)n;
  }
  http_mcp_session_t *session = calloc(1, sizeof *session);
  if (!session)
    return NULL;
  static const char HEX[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof bytes; i++) {
    session->id[2 * i] = HEX[bytes[i] >> 4];
    session->id[2 * i + 1] = HEX[bytes[i] & 15];
  }
  mcp_server_session_init(m->mcp, &session->proto);
  session->last_used_ms = http_now_ms();
  return session;
}

static void bind_session(http_request_t *req, http_mcp_session_t *session) {
  req->mcp_session = session;
  session->busy++;
  session->last_used_ms = http_now_ms();
}

/* A stream for req, listed for the keep-alive comments. */
static struct MHD_Response *open_sse(http_mcp_t *m, http_request_t *req) {
  struct MHD_Response *response = NULL;
  req->sse = http_sse_new(req, &response);
  if (!req->sse)
    return NULL;
  req->sse_prev = NULL;
  req->sse_next = m->sse;
  if (m->sse)
    m->sse->sse_prev = req;
  m->sse = req;
  return response;
}

/* --- the waker (registry loop thread) ------------------------------------------------------ */

static void wake(void *ctx) {
  http_server_t *server = ctx;
  ssize_t n;
  do {
    n = write(server->ready_pipe[1], "m", 1);
  } while (n < 0 && errno == EINTR);
}

int http_mcp_new(http_server_t *server, mcp_server_t *mcp, size_t max_sessions) {
  http_mcp_t *m = calloc(1, sizeof *m);
  if (!m)
    return -1;
  m->mcp = mcp;
  m->max_sessions = max_sessions;
  mcp_server_session_init(mcp, &m->stateless);
  m->next_keepalive_ms = http_now_ms() + KEEPALIVE_MS;
  m->next_sweep_ms = http_now_ms() + SESSION_SWEEP_MS;
  mcp_server_set_waker(mcp, wake, server);
  server->mcp = m;
  return 0;
}

void http_mcp_free(http_server_t *server) {
  http_mcp_t *m = server->mcp;
  if (!m)
    return;
  while (m->sessions)
    session_end(m, m->sessions);
  free(m);
  server->mcp = NULL;
}

/* --- answering a parked call ---------------------------------------------------------------- */

/* The call req waited for has its answer (reply may be NULL: cancelled). */
static void deliver(http_mcp_t *m, http_request_t *req, char *reply, size_t len) {
  req->mcp_call = NULL;
  m->waiting--;
  if (req->sse) {
    if (reply)
      http_sse_message(req->sse, reply, len);
    http_sse_close(req->sse);
    free(reply);
    return;
  }
  /* A suspended JSON answer: resumed, libmicrohttpd calls the handler,
     which answers with it (http_mcp_answer_waited). */
  free(req->mcp_reply);
  req->mcp_reply = reply;
  req->mcp_reply_len = len;
  MHD_resume_connection(req->connection);
}

static void finish(http_mcp_t *m, mcp_call_t *call) {
  size_t len = 0;
  void *done = NULL;
  char *reply = mcp_server_run_for(m->mcp, call, &len, &done);
  if (done)
    deliver(m, done, reply, len);
  else
    free(reply); /* parked again (NULL), or nobody waits any more */
}

int64_t http_mcp_run(http_server_t *server, bool everything) {
  http_mcp_t *m = server->mcp;
  if (!m)
    return -1;
  size_t n = 0;
  mcp_call_t *call;
  while ((everything || n < READY_BATCH) && (call = mcp_server_next_ready(m->mcp))) {
    finish(m, call);
    n++;
  }
  while ((call = mcp_server_next_expired(m->mcp)))
    finish(m, call);
  uint64_t now = http_now_ms();
  if (now >= m->next_keepalive_ms) {
    /* Also what makes a suspended stream write, so a client gone is seen. */
    for (http_request_t *req = m->sse; req; req = req->sse_next)
      http_sse_push(req->sse, ": keep-alive\n\n", 14);
    m->next_keepalive_ms = now + KEEPALIVE_MS;
  }
  if (now >= m->next_sweep_ms) {
    sweep_idle(m, now);
    m->next_sweep_ms = now + SESSION_SWEEP_MS;
  }
  if (n >= READY_BATCH)
    return 0; /* more may be ready */
  int64_t next = (int64_t)(m->next_keepalive_ms - now);
  int deadline = mcp_server_next_deadline(m->mcp);
  if (deadline >= 0 && deadline < next)
    next = deadline;
  return next;
}

enum MHD_Result http_mcp_answer_waited(http_request_t *req) {
  char *reply = req->mcp_reply;
  req->mcp_reply = NULL;
  return answer_reply(req, reply, req->mcp_reply_len, NULL);
}

void http_mcp_request_done(http_request_t *req) {
  http_mcp_t *m = req->server->mcp;
  if (!m)
    return;
  if (req->mcp_call) {
    /* The client left first: the call keeps its query's watch and is
       answered to nobody. */
    req->mcp_call->transport = NULL;
    req->mcp_call = NULL;
    m->waiting--;
  }
  free(req->mcp_reply);
  req->mcp_reply = NULL;
  http_mcp_session_t *session = req->mcp_session;
  if (session) {
    for (http_request_t **p = &session->streams; *p; p = &(*p)->session_next) {
      if (*p == req) {
        *p = req->session_next;
        m->streams--;
        break;
      }
    }
    req->mcp_session = NULL;
    if (--session->busy == 0 && session->ended)
      session_free(session);
  }
  if (req->sse) {
    if (req->sse_prev)
      req->sse_prev->sse_next = req->sse_next;
    else
      m->sse = req->sse_next;
    if (req->sse_next)
      req->sse_next->sse_prev = req->sse_prev;
    http_sse_release(req->sse);
    req->sse = NULL;
  }
}

void http_mcp_drain(http_server_t *server) {
  http_mcp_t *m = server->mcp;
  if (!m)
    return;
  for (http_mcp_session_t *s = m->sessions; s; s = s->next)
    session_end_streams(m, s);
  mcp_server_expire_waits(m->mcp);
  (void)http_mcp_run(server, true);
}

void http_mcp_counts(const http_server_t *server, size_t *sessions, size_t *streams,
                     size_t *parked) {
  const http_mcp_t *m = server->mcp;
  *sessions = m ? m->session_count : 0;
  *streams = m ? m->streams : 0;
  *parked = m ? m->waiting : 0;
}

/* --- POST: one message ---------------------------------------------------------------------- */

/* What the transport needs to know of a message before the handler sees it. */
typedef struct peeked {
  bool initialize;
  bool request;
  const char *method;  /* NULL when none */
  const char *version; /* params._meta's protocol revision, or NULL */
  json_t *root;        /* owned */
} peeked_t;

static void peek(const char *body, size_t len, peeked_t *p) {
  memset(p, 0, sizeof *p);
  p->root = json_loadb(body, len, 0, NULL);
  if (!json_is_object(p->root))
    return;
  p->method = json_string_value(json_object_get(p->root, "method"));
  p->request = p->method && json_object_get(p->root, "id");
  p->initialize = p->request && strcmp(p->method, "initialize") == 0;
  json_t *meta = json_object_get(json_object_get(p->root, "params"), "_meta");
  p->version = json_string_value(json_object_get(meta, "io.modelcontextprotocol/protocolVersion"));
}

/* MCP-Protocol-Version values taken. 2025-03-26 is not served, but its
   clients (and the official conformance suite's) send it on requests of a
   session that negotiated a later revision: the session's revision rules. */
static bool known_version(const char *v) {
  return strcmp(v, MCP_VERSION_2026_07_28) == 0 || strcmp(v, MCP_VERSION_2025_11_25) == 0 ||
         strcmp(v, MCP_VERSION_2025_06_18) == 0 || strcmp(v, "2025-03-26") == 0;
}

/* The headers that must agree with the body. NULL: fine. */
static const char *check_headers(http_request_t *req, const peeked_t *p, char *why, size_t size) {
  const char *version = header(req, "MCP-Protocol-Version");
  const char *method = header(req, "Mcp-Method");
  if (version && !known_version(version)) {
    snprintf(why, size,
             "Bad Request: MCP-Protocol-Version %.40s is not served (2026-07-28, 2025-11-25, "
             "2025-06-18)",
             version);
    return why;
  }
  if (version && p->version && strcmp(version, p->version) != 0) {
    snprintf(why, size,
             "Bad Request: the MCP-Protocol-Version header (%.40s) and params._meta (%.40s) "
             "disagree",
             version, p->version);
    return why;
  }
  if (method && p->root && (!p->method || strcmp(method, p->method) != 0)) {
    snprintf(why, size, "Bad Request: the Mcp-Method header (%.60s) and the body's method disagree",
             method);
    return why;
  }
  return NULL;
}

static enum MHD_Result post_message(http_request_t *req) {
  http_mcp_t *m = req->server->mcp;
  if (!http_lists_media(header(req, MHD_HTTP_HEADER_CONTENT_TYPE), "application/json", false))
    return answer_rpc_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, MCP_INVALID_REQUEST,
                            "Unsupported Media Type: send the message as application/json");
  const char *accept = header(req, MHD_HTTP_HEADER_ACCEPT);
  bool json_ok = !accept || http_lists_media(accept, "application/json", true);
  bool sse_ok = accept && http_lists_media(accept, "text/event-stream", false);
  if (!json_ok && !sse_ok)
    return answer_rpc_error(req, MHD_HTTP_NOT_ACCEPTABLE, MCP_INVALID_REQUEST,
                            "Not Acceptable: accept application/json and text/event-stream");

  const char *body = req->body.data ? req->body.data : "";
  size_t body_len = req->body.len;
  const char *sid = header(req, "Mcp-Session-Id");
  http_mcp_session_t *session = NULL;
  if (sid) {
    session = session_find(m, sid);
    if (!session)
      return answer_rpc_error(req, MHD_HTTP_NOT_FOUND, MCP_INVALID_REQUEST,
                              "Session not found: it ended or never existed; initialize again");
  }
  peeked_t p;
  bool must_peek = !session || header(req, "Mcp-Method") || header(req, "MCP-Protocol-Version");
  if (must_peek)
    peek(body, body_len, &p);
  else
    memset(&p, 0, sizeof p);
  char why[256];
  const char *bad = must_peek ? check_headers(req, &p, why, sizeof why) : NULL;
  bool initialize = p.initialize && !session;
  bool legacy_without_session =
      !session && !initialize && p.request && !p.version && strcmp(p.method, "ping") != 0;
  json_decref(p.root);
  if (bad)
    return answer_rpc_error(req, MHD_HTTP_BAD_REQUEST, MCP_INVALID_REQUEST, bad);
  if (legacy_without_session)
    return answer_rpc_error(
        req, MHD_HTTP_BAD_REQUEST, MCP_INVALID_REQUEST,
        "Bad Request: no Mcp-Session-Id. Send initialize first (protocol 2025-11-25 or "
        "2025-06-18) and then its Mcp-Session-Id, or name protocol 2026-07-28 in every "
        "request's params._meta");

  http_mcp_session_t *fresh = NULL;
  if (initialize) {
    if (m->session_count >= m->max_sessions)
      sweep_idle(m, http_now_ms());
    if (m->session_count >= m->max_sessions)
      return answer_rpc_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, MCP_INTERNAL_ERROR,
                              "Too many sessions: end one (DELETE /mcp) or retry later");
    fresh = session_new(m);
    if (!fresh)
      return MHD_NO;
  }
  if (session)
    bind_session(req, session);
  mcp_session_t *proto = fresh ? &fresh->proto : session ? &session->proto : &m->stateless;
  char *reply = NULL;
  size_t len = 0;
  mcp_call_t *call = mcp_server_receive_in(m->mcp, proto, body, body_len, &reply, &len);
  if (fresh) {
    char negotiated[16];
    mcp_server_session_version(m->mcp, &fresh->proto, negotiated);
    if (!negotiated[0]) { /* initialize refused: no session */
      session_free(fresh);
      fresh = NULL;
    } else {
      fresh->next = m->sessions;
      m->sessions = fresh;
      m->session_count++;
    }
  }
  if (!call)
    return answer_reply(req, reply, len, fresh ? fresh->id : NULL);
  call->transport = req;
  void *done = NULL;
  reply = mcp_server_run_for(m->mcp, call, &len, &done);
  if (done)
    return answer_reply(req, reply, len, NULL);
  /* Parked: answered when its query settles (http_mcp_run). */
  req->mcp_call = call;
  m->waiting++;
  if (sse_ok) {
    struct MHD_Response *response = open_sse(m, req);
    if (!response)
      return MHD_NO; /* the call is forgotten in http_mcp_request_done */
    return http_queue(req, MHD_HTTP_OK, response);
  }
  req->wait = WAIT_MCP;
  MHD_suspend_connection(req->connection);
  return MHD_YES;
}

/* --- GET: a session's stream; DELETE: its end ------------------------------------------------ */

static http_mcp_session_t *named_session(http_request_t *req, enum MHD_Result *answered) {
  const char *sid = header(req, "Mcp-Session-Id");
  if (!sid) {
    *answered = answer_rpc_error(req, MHD_HTTP_BAD_REQUEST, MCP_INVALID_REQUEST,
                                 "Bad Request: the Mcp-Session-Id header is required");
    return NULL;
  }
  http_mcp_session_t *session = session_find(req->server->mcp, sid);
  if (!session)
    *answered = answer_rpc_error(req, MHD_HTTP_NOT_FOUND, MCP_INVALID_REQUEST,
                                 "Session not found: it ended or never existed");
  return session;
}

static enum MHD_Result open_stream(http_request_t *req) {
  if (!http_lists_media(header(req, MHD_HTTP_HEADER_ACCEPT), "text/event-stream", false))
    return answer_rpc_error(req, MHD_HTTP_NOT_ACCEPTABLE, MCP_INVALID_REQUEST,
                            "Not Acceptable: GET /mcp opens a stream: accept text/event-stream");
  enum MHD_Result answered = MHD_NO;
  http_mcp_session_t *session = named_session(req, &answered);
  if (!session)
    return answered;
  struct MHD_Response *response = open_sse(req->server->mcp, req);
  if (!response)
    return MHD_NO;
  bind_session(req, session);
  req->session_next = session->streams;
  session->streams = req;
  req->server->mcp->streams++;
  /* Sent at once with the headers, so the client knows the stream is open. */
  http_sse_push(req->sse, ": qreg session stream\n\n", 23);
  if (req->server->draining)
    http_sse_close(req->sse);
  return http_queue(req, MHD_HTTP_OK, response);
}

static enum MHD_Result end_session(http_request_t *req) {
  enum MHD_Result answered = MHD_NO;
  http_mcp_session_t *session = named_session(req, &answered);
  if (!session)
    return answered;
  session_end(req->server->mcp, session);
  return http_answer(req, MHD_HTTP_NO_CONTENT, "application/json", NULL, 0, NULL, NULL);
}

enum MHD_Result http_mcp_handle(http_request_t *req) {
  if (!req->server->mcp)
    return http_answer_problem(req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
  if (strcmp(req->method, "POST") == 0)
    return post_message(req);
  if (strcmp(req->method, "GET") == 0)
    return open_stream(req);
  if (strcmp(req->method, "DELETE") == 0)
    return end_session(req);
  return http_answer(req, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", NULL, 0,
                     MHD_HTTP_HEADER_ALLOW, "GET, POST, DELETE");
}
