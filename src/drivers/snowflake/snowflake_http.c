/*
 * src/drivers/snowflake/snowflake_http.c - HTTP for the Snowflake driver:
 * libcurl's multi interface driven by the registry's loop, so that the
 * loop never blocks on the network (invariant 6).
 *
 * One sf_http_t per driver connection: one CURLM, whose connection cache
 * keeps the HTTPS connection alive from one request to the next (a
 * statement's submit, its status polls, its partitions, the next
 * statement). curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION:
 * one qreg_poll per socket, attached to the socket with curl_multi_assign)
 * and when to call it back (CURLMOPT_TIMERFUNCTION: one qreg_timer); each
 * event goes to curl_multi_socket_action, then finished transfers are
 * reported. Host names are resolved by curl's threaded resolver, TLS runs
 * non-blocking; certificates are verified (peer and host name).
 *
 * Owns, per sf_http_t: the CURLM, every request in flight (CURL easy
 * handle, headers, bodies), the watches and the timer. Loop thread only.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "drivers/snowflake/snowflake.h"

/* A response larger than this is cut and reported as an error: a
   partition is tens of megabytes at most. */
#define MAX_RESPONSE_BYTES ((size_t)1 << 30)
#define CONNECT_TIMEOUT_MS 15000L

typedef struct sf_watch {
  sf_http_t *http;
  curl_socket_t fd;
  qreg_poll_t *poll;
  struct sf_watch *next;
} sf_watch_t;

struct sf_http {
  qreg_loop_t *loop;
  CURLM *multi;
  qreg_timer_t *timer;    /* curl's timeout, while it wants one */
  sf_watch_t *watches;    /* every socket curl asked us to watch */
  sf_request_t *requests; /* in flight */
  bool closing;           /* freeing: ignore curl's callbacks */
  /* A request's callback may end the job, and the core may then close the
     connection, and so free this, before the callback returns: while
     dispatching, the free is done but for the struct itself, which the
     dispatcher frees on its way out. */
  unsigned dispatching;
  bool free_pending;
};

static void dispatch_begin(sf_http_t *http) {
  http->dispatching++;
}

/* false when http was freed meanwhile (and is now gone). */
static bool dispatch_end(sf_http_t *http) {
  if (--http->dispatching == 0 && http->free_pending) {
    free(http);
    return false;
  }
  return true;
}

static void check_done(sf_http_t *http);

/* --- sockets and the timer -------------------------------------------- */

static void on_poll(qreg_poll_t *poll, int status, int events, void *arg) {
  sf_watch_t *watch = arg;
  sf_http_t *http = watch->http;
  (void)poll;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  else
    flags = ((events & QREG_POLL_READ) ? CURL_CSELECT_IN : 0) |
            ((events & QREG_POLL_WRITE) ? CURL_CSELECT_OUT : 0);
  int running = 0;
  dispatch_begin(http);
  /* May remove and free this watch (CURL_POLL_REMOVE): not used after. */
  curl_multi_socket_action(http->multi, watch->fd, flags, &running);
  check_done(http);
  dispatch_end(http);
}

static void watch_remove(sf_http_t *http, sf_watch_t *watch) {
  for (sf_watch_t **p = &http->watches; *p != NULL; p = &(*p)->next) {
    if (*p == watch) {
      *p = watch->next;
      break;
    }
  }
  if (watch->poll != NULL)
    qreg_poll_close(watch->poll);
  free(watch);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  sf_http_t *http = userp;
  sf_watch_t *watch = socketp;
  (void)easy;
  if (http->closing)
    return 0;
  if (what == CURL_POLL_REMOVE) {
    if (watch != NULL) {
      curl_multi_assign(http->multi, fd, NULL);
      watch_remove(http, watch);
    }
    return 0;
  }
  int events =
      ((what & CURL_POLL_IN) ? QREG_POLL_READ : 0) | ((what & CURL_POLL_OUT) ? QREG_POLL_WRITE : 0);
  if (watch == NULL) {
    watch = calloc(1, sizeof *watch);
    if (watch == NULL)
      return -1;
    watch->http = http;
    watch->fd = fd;
    if (qreg_poll_start(http->loop, fd, events, on_poll, watch, &watch->poll) != 0) {
      free(watch);
      return -1;
    }
    watch->next = http->watches;
    http->watches = watch;
    curl_multi_assign(http->multi, fd, watch);
    return 0;
  }
  return qreg_poll_update(watch->poll, events) == 0 ? 0 : -1;
}

static void on_timer(qreg_timer_t *timer, void *arg) {
  sf_http_t *http = arg;
  qreg_timer_close(timer);
  http->timer = NULL;
  int running = 0;
  dispatch_begin(http);
  curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(http);
  dispatch_end(http);
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp) {
  sf_http_t *http = userp;
  (void)multi;
  if (http->closing)
    return 0;
  if (http->timer != NULL) {
    qreg_timer_close(http->timer);
    http->timer = NULL;
  }
  if (timeout_ms < 0)
    return 0;
  return qreg_timer_start(http->loop, (uint64_t)timeout_ms, on_timer, http, &http->timer) == 0 ? 0
                                                                                               : -1;
}

/* --- requests ----------------------------------------------------------- */

static void request_free(sf_request_t *request) {
  if (request->easy != NULL)
    curl_easy_cleanup(request->easy);
  curl_slist_free_all(request->headers);
  free(request->post_body);
  free(request->body);
  free(request);
}

static void request_unlink(sf_request_t *request) {
  sf_http_t *http = request->http;
  for (sf_request_t **p = &http->requests; *p != NULL; p = &(*p)->next) {
    if (*p == request) {
      *p = request->next;
      break;
    }
  }
  curl_multi_remove_handle(http->multi, request->easy);
}

/* A body that is still gzip (a server that compresses without saying so
   in Content-Encoding, which curl would have decoded): inflated here. Left
   as it is when it does not inflate (the caller then reports it malformed). */
static void gunzip_body(sf_request_t *request) {
  if (request->body_len < 2 || (unsigned char)request->body[0] != 0x1f ||
      (unsigned char)request->body[1] != 0x8b)
    return;
  size_t cap = request->body_len * 4 + 1024, len = 0;
  char *out = malloc(cap);
  z_stream z = {0};
  if (out == NULL || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    free(out);
    return;
  }
  z.next_in = (Bytef *)request->body;
  z.avail_in = (uInt)request->body_len;
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (cap - len < 2) {
      char *grown = cap < MAX_RESPONSE_BYTES ? realloc(out, cap * 2) : NULL;
      if (grown == NULL)
        break;
      out = grown;
      cap *= 2;
    }
    z.next_out = (Bytef *)(out + len);
    z.avail_out = (uInt)(cap - len - 1);
    rc = inflate(&z, Z_NO_FLUSH);
    len = (size_t)((char *)z.next_out - out);
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    free(out);
    return;
  }
  out[len] = '\0';
  free(request->body);
  request->body = out;
  request->body_len = len;
  request->body_cap = cap;
}

static void check_done(sf_http_t *http) {
  CURLMsg *msg;
  int left = 0;
  while (!http->free_pending && (msg = curl_multi_info_read(http->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    sf_request_t *request = NULL;
    CURLcode result = msg->data.result;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&request);
    if (request == NULL)
      continue;
    request_unlink(request);
    request->curl_code = (int)result;
    if (result != CURLE_OK && request->error[0] == '\0')
      snprintf(request->error, sizeof request->error, "%s", curl_easy_strerror(result));
    curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &request->status);
    if (request->body == NULL)
      request->body = calloc(1, 1);
    else
      gunzip_body(request);
    request->done(request, request->arg);
    request_free(request);
  }
}

static size_t on_body(char *data, size_t size, size_t count, void *userp) {
  sf_request_t *request = userp;
  size_t n = size * count;
  if (request->body_len + n > MAX_RESPONSE_BYTES) {
    request->too_big = true;
    return 0; /* curl fails the transfer (CURLE_WRITE_ERROR) */
  }
  if (request->body == NULL || request->body_len + n + 1 > request->body_cap) {
    size_t cap = request->body_cap ? request->body_cap : 16384;
    while (cap < request->body_len + n + 1)
      cap *= 2;
    char *grown = realloc(request->body, cap);
    if (grown == NULL)
      return 0;
    request->body = grown;
    request->body_cap = cap;
  }
  memcpy(request->body + request->body_len, data, n);
  request->body_len += n;
  request->body[request->body_len] = '\0';
  return n;
}

static size_t on_read(char *buffer, size_t size, size_t count, void *userp) {
  sf_request_t *request = userp;
  size_t n = size * count, left = request->post_len - request->post_sent;
  if (n > left)
    n = left;
  memcpy(buffer, request->post_body + request->post_sent, n);
  request->post_sent += n;
  return n;
}

static int on_seek(void *userp, curl_off_t offset, int origin) {
  sf_request_t *request = userp;
  if (origin != SEEK_SET || offset != 0 || request->post_sent > 0)
    return CURL_SEEKFUNC_FAIL; /* a resend: the driver retries it itself */
  return CURL_SEEKFUNC_OK;
}

/* Retry-After: delay-seconds (the HTTP-date form is ignored: our own
   backoff applies then). */
static size_t on_header(char *data, size_t size, size_t count, void *userp) {
  sf_request_t *request = userp;
  size_t n = size * count;
  static const char name[] = "retry-after:";
  if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
    const char *p = data + sizeof name - 1, *end = data + n;
    while (p < end && (*p == ' ' || *p == '\t'))
      p++;
    int64_t seconds = 0;
    bool digits = false;
    while (p < end && isdigit((unsigned char)*p) && seconds < 86400) {
      seconds = seconds * 10 + (*p++ - '0');
      digits = true;
    }
    if (digits)
      request->retry_after_ms = seconds * 1000;
  }
  return n;
}

sf_request_t *qreg__sf_http_start(sf_http_t *http, const char *url, const char *const *headers,
                                  const char *post_body, uint64_t stall_ms, sf_request_cb done,
                                  void *arg) {
  sf_request_t *request = calloc(1, sizeof *request);
  if (request == NULL)
    return NULL;
  request->http = http;
  request->done = done;
  request->arg = arg;
  request->retry_after_ms = -1;
  CURL *easy = request->easy = curl_easy_init();
  bool ok = easy != NULL;
  for (size_t i = 0; ok && headers[i] != NULL; i++) {
    struct curl_slist *list = curl_slist_append(request->headers, headers[i]);
    ok = list != NULL;
    if (ok)
      request->headers = list;
  }
  if (ok && post_body != NULL) {
    ok = (request->post_body = strdup(post_body)) != NULL;
    request->post_len = strlen(post_body);
  }
  if (!ok) {
    request_free(request);
    return NULL;
  }
  long stall_s = (long)((stall_ms + 999) / 1000);
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, request);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request->error);
  /* Every encoding curl decodes (gzip for the partitions after the first). */
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  /* A stalled server (no byte for stall_ms) fails the request, which is
     then retried: never a request that waits for ever. */
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 60L);
  if (request->post_body != NULL) {
    /* The body through a read callback rather than POSTFIELDS, so that a
       rewind is ours to refuse: curl silently sends a request again when a
       reused connection turns out dead, and a statement sent again without
       retry=true could run twice. Refused, the transfer fails, and the
       driver resubmits it the idempotent way. */
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, request);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(easy, CURLOPT_SEEKDATA, request);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->post_len);
  }
  request->next = http->requests;
  http->requests = request;
  if (curl_multi_add_handle(http->multi, easy) != CURLM_OK) {
    http->requests = request->next;
    request_free(request);
    return NULL;
  }
  return request;
}

void qreg__sf_http_abort(sf_request_t *request) {
  if (request == NULL)
    return;
  request_unlink(request);
  request_free(request);
}

bool qreg__sf_http_retryable(int curl_code, bool *maybe_received) {
  *maybe_received = false;
  switch ((CURLcode)curl_code) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
    return true; /* nothing was sent */
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_SEND_FAIL_REWIND:
    *maybe_received = true;
    return true;
  default:
    return false;
  }
}

/* --- the multi handle --------------------------------------------------- */

static void global_init_once(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

sf_http_t *qreg__sf_http_new(qreg_loop_t *loop) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, global_init_once);
  sf_http_t *http = calloc(1, sizeof *http);
  if (http == NULL)
    return NULL;
  http->loop = loop;
  http->multi = curl_multi_init();
  if (http->multi == NULL) {
    free(http);
    return NULL;
  }
  curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
  curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
  return http;
}

void qreg__sf_http_free(sf_http_t *http) {
  if (http == NULL)
    return;
  while (http->requests != NULL) {
    sf_request_t *request = http->requests;
    http->requests = request->next;
    curl_multi_remove_handle(http->multi, request->easy);
    request_free(request);
  }
  /* Stop watching before curl closes its sockets (qreg_poll_close must
     come first), then let curl close them without telling us. */
  http->closing = true;
  while (http->watches != NULL)
    watch_remove(http, http->watches);
  if (http->timer != NULL)
    qreg_timer_close(http->timer);
  curl_multi_cleanup(http->multi);
  http->multi = NULL;
  if (http->dispatching > 0)
    http->free_pending = true; /* the dispatcher frees it */
  else
    free(http);
}
