/*
 * src/http/answer.c - how `qreg serve` answers: the headers every response
 * carries, queuing a response, JSON bodies and problem+json errors (RFC
 * 9457) with the error types of the MCP tools. Main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http_internal.h"

#define RETRY_AFTER_SECONDS 1

uint64_t http_now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

void http_response_headers(http_request_t *req, struct MHD_Response *response,
                           const char *content_type) {
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  if (req->server->draining || req->close_after)
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
}

enum MHD_Result http_queue(http_request_t *req, unsigned status, struct MHD_Response *response) {
  enum MHD_Result rc = MHD_queue_response(req->connection, status, response);
  MHD_destroy_response(response);
  req->status = status;
  req->answered = true;
  return rc;
}

enum MHD_Result http_answer(http_request_t *req, unsigned status, const char *content_type,
                            char *body, size_t len, const char *extra_name,
                            const char *extra_value) {
  struct MHD_Response *response = MHD_create_response_from_buffer(
      len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!response) {
    free(body);
    return MHD_NO;
  }
  http_response_headers(req, response, content_type);
  if (extra_name)
    MHD_add_response_header(response, extra_name, extra_value);
  return http_queue(req, status, response);
}

enum MHD_Result http_answer_json(http_request_t *req, unsigned status, http_buf_t *out) {
  size_t len = 0;
  char *body = http_buf_take(out, &len);
  if (!body)
    return MHD_NO; /* out of memory: the connection closes */
  return http_answer(req, status, "application/json", body, len, NULL, NULL);
}

/* The title of each error type (the MCP tools' names, and the HTTP ones). */
static const char *problem_title(const char *type) {
  static const struct {
    const char *type;
    const char *title;
  } TITLES[] = {
      {"invalid_argument", "Invalid argument"},
      {"not_found", "Not found"},
      {"too_many_queries", "Too many queries"},
      {"sql_too_large", "SQL too large"},
      {"closed", "The registry is closing"},
      {"not_ready", "The query has not finished"},
      {"no_result", "The query has no result"},
      {"out_of_range", "Offset out of range"},
      {"internal", "Internal error"},
      {"unauthorized", "Unauthorized"},
      {"request_too_large", "Request body too large"},
      {"too_many_waits", "Too many waits in flight"},
      {"too_many_connections", "Too many connections"},
      {"not_implemented", "Not implemented"},
      {"method_not_allowed", "Method not allowed"},
      {"not_acceptable", "Not acceptable"},
      {"shutting_down", "The server is shutting down"},
      {"not_ready_database", "The database does not answer"},
      {"forbidden", "Forbidden"},
  };
  for (size_t i = 0; i < sizeof TITLES / sizeof TITLES[0]; i++)
    if (strcmp(TITLES[i].type, type) == 0)
      return TITLES[i].title;
  return type;
}

/* An application/problem+json answer (RFC 9457). type is one of the error
   types of the MCP tools (or an HTTP one); it is the "type" URI's last part
   and the "error_type" member. */
enum MHD_Result http_answer_problem(http_request_t *req, unsigned status, const char *type,
                                    const char *detail) {
  http_buf_t out = {0};
  http_buf_puts(&out, "{\"type\":");
  char uri[96];
  snprintf(uri, sizeof uri, "urn:qreg:error:%s", type);
  http_buf_json_string(&out, uri);
  http_buf_puts(&out, ",\"title\":");
  http_buf_json_string(&out, problem_title(type));
  http_buf_printf(&out, ",\"status\":%u,\"detail\":", status);
  http_buf_json_string(&out, detail);
  http_buf_puts(&out, ",\"error_type\":");
  http_buf_json_string(&out, type);
  http_buf_puts(&out, "}");
  size_t len = 0;
  char *body = http_buf_take(&out, &len);
  if (!body)
    return MHD_NO;
  const char *extra_name = NULL;
  const char *extra_value = NULL;
  char retry[16];
  if (status == MHD_HTTP_TOO_MANY_REQUESTS || status == MHD_HTTP_SERVICE_UNAVAILABLE) {
    snprintf(retry, sizeof retry, "%d", RETRY_AFTER_SECONDS);
    extra_name = MHD_HTTP_HEADER_RETRY_AFTER;
    extra_value = retry;
  } else if (status == MHD_HTTP_UNAUTHORIZED) {
    extra_name = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
    extra_value = "Bearer realm=\"qreg\"";
  } else if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
    extra_name = MHD_HTTP_HEADER_ALLOW;
    extra_value = detail;
  }
  return http_answer(req, status, "application/problem+json", body, len, extra_name, extra_value);
}
