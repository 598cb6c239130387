/*
 * src/http/sse.c - Server-Sent Events bodies for MCP over Streamable HTTP:
 * a response whose body is whatever has been pushed so far, sent as
 * libmicrohttpd asks for it, and which ends only when closed.
 *
 * No thread waits for an event and nothing spins: when libmicrohttpd asks
 * for bytes and none are queued, the reader suspends the connection and
 * returns 0 (the pattern microhttpd.h gives for "no data yet"); a push
 * resumes it. Main thread only: pushes come from handlers and from
 * http_mcp_run(), reads from MHD_run(), both on the thread that polls.
 *
 * Owns: the bytes queued. Shared by the request (until http_sse_release:
 * after that its connection may be gone and is never resumed) and the
 * response (until libmicrohttpd frees it); freed when both let go.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

struct http_sse {
  struct MHD_Connection *connection; /* borrowed while the request holds the stream */
  http_buf_t queued;                 /* bytes not sent yet, from sent on */
  size_t sent;
  bool closed;    /* no more pushes: the body ends once the queue is sent */
  bool suspended; /* the reader suspended the connection */
  int refs;       /* the request's and the response's */
};

static void sse_unref(http_sse_t *sse) {
  if (--sse->refs > 0)
    return;
  http_buf_free(&sse->queued);
  free(sse);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  http_sse_t *sse = cls;
  size_t left = sse->queued.len - sse->sent;
  if (left > 0) {
    size_t n = left < max ? left : max;
    memcpy(buf, sse->queued.data + sse->sent, n);
    sse->sent += n;
    if (sse->sent == sse->queued.len)
      sse->sent = sse->queued.len = 0; /* the buffer is reused */
    return (ssize_t)n;
  }
  if (sse->closed || !sse->connection)
    return MHD_CONTENT_READER_END_OF_STREAM;
  sse->suspended = true;
  MHD_suspend_connection(sse->connection);
  return 0;
}

static void sse_free_response(void *cls) {
  sse_unref(cls);
}

http_sse_t *http_sse_new(http_request_t *req, struct MHD_Response **response) {
  http_sse_t *sse = calloc(1, sizeof *sse);
  if (!sse)
    return NULL;
  sse->connection = req->connection;
  sse->refs = 2;
  *response =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, sse, sse_free_response);
  if (!*response) {
    free(sse);
    return NULL;
  }
  http_response_headers(req, *response, "text/event-stream");
  return sse;
}

static void wake(http_sse_t *sse) {
  if (sse->suspended && sse->connection) {
    sse->suspended = false;
    MHD_resume_connection(sse->connection);
  }
}

void http_sse_push(http_sse_t *sse, const char *bytes, size_t len) {
  if (sse->closed)
    return;
  http_buf_append(&sse->queued, bytes, len);
  if (sse->queued.failed) {
    /* Out of memory: the body ends here rather than with a torn event. */
    sse->queued.failed = false;
    sse->queued.len = sse->sent;
    sse->closed = true;
  }
  wake(sse);
}

void http_sse_message(http_sse_t *sse, const char *json, size_t len) {
  while (len > 0 && (json[len - 1] == '\n' || json[len - 1] == '\r'))
    len--;
  http_buf_t event = {0};
  http_buf_puts(&event, "event: message\ndata: ");
  http_buf_append(&event, json, len);
  http_buf_puts(&event, "\n\n");
  if (!event.failed)
    http_sse_push(sse, event.data, event.len);
  else
    http_sse_close(sse);
  http_buf_free(&event);
}

void http_sse_close(http_sse_t *sse) {
  sse->closed = true;
  wake(sse);
}

void http_sse_release(http_sse_t *sse) {
  /* The connection is being closed (completed, or torn down): never
     resumed again. */
  sse->closed = true;
  sse->suspended = false;
  sse->connection = NULL;
  sse_unref(sse);
}
