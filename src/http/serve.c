/*
 * src/http/serve.c - `qreg serve`: the HTTP server process. Parses the
 * options, reads the token file, binds the listening socket (loopback only
 * without tokens), opens the registry, and runs one loop that drives
 * libmicrohttpd, the waits' deadlines, the watch callbacks' wake-ups and
 * the shutdown signals; then drains and closes.
 *
 * Threads: one of ours, whatever the number of clients, plus the registry's
 * (its loop thread and its workers, at most max_connections + 4).
 *  - main: poll() over libmicrohttpd's epoll descriptor (every client
 *    socket is in it), the ready pipe (written by watch callbacks on the
 *    registry's loop thread) and a signalfd (SIGINT, SIGTERM); then
 *    MHD_run(), which reads requests and calls the handlers of routes.c.
 *    libmicrohttpd runs in "external polling" mode: it starts no thread.
 *    Every handler, every resume and every deadline runs here, so a
 *    connection is resumed only after the handler that suspended it has
 *    returned.
 *  SIGINT, SIGTERM (taken by the signalfd) and SIGPIPE are blocked in every
 *  thread before any starts.
 *
 * Drain (SIGTERM or SIGINT): stop accepting (the listening socket is taken
 * back from libmicrohttpd and closed), answer every held wait at once with
 * the statement as it is, give the responses in flight (streams) up to
 * --drain-timeout to finish, then close the registry (it cancels what
 * still runs and releases every connection; a stream still going ends
 * with a cut body), stop libmicrohttpd (closing what is left) and exit 0.
 * A second signal skips the rest of the drain.
 *
 * Owns: the registry, the daemon, the tokens, the pipes and the signalfd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/args.h"
#include "http/http.h"
#include "http/http_internal.h"
#include "mcp/protocol.h"
#include "mcp/tools.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_MAX_BODY_BYTES ((uint64_t)1 << 20)
#define DEFAULT_MAX_CLIENTS 1024
#define DEFAULT_IDLE_TIMEOUT_S 60
#define DEFAULT_MAX_WAITS 10000
#define DEFAULT_MAX_WAIT_S 60
#define DEFAULT_SUBMIT_WAIT_MS 10000
#define DEFAULT_DRAIN_MS 10000
#define DRAIN_TURN_MS 50
/* After the close, answers it gave are sent for at most this long. */
#define FINAL_FLUSH_MS 1000
#define DEFAULT_MAX_SESSIONS 1024
/* MCP at /mcp: as `qreg mcp` on stdio (src/mcp/server.c). */
#define MCP_MAX_RESPONSE_BYTES ((size_t)1 << 20)
#define MCP_POLL_INTERVAL_MS 100
#define MCP_WAIT_MS 5000
#define MCP_TASK_WINDOW_MS 1000
/* Connections libmicrohttpd takes beyond --max-clients, only to answer them
   503 too_many_connections and close; past those, new connections wait in
   the kernel's backlog until one closes. */
#define CONNECTION_RESERVE 64
#define MHD_MEMORY_PER_CONNECTION (64 * 1024) /* request line and headers at most */

typedef struct serve_options {
  const char *db_url;
  const char *listen;
  const char *token_file;
  uint64_t max_connections; /* 0: registry default */
  uint64_t timeout_ms;
  uint64_t ttl_ms;
  uint64_t max_rows;
  uint64_t max_records;
  uint64_t max_result_bytes;
  bool allow_writes;
  uint64_t max_body_bytes;
  uint64_t max_clients;
  uint64_t idle_timeout_ms;
  uint64_t max_waits;
  uint64_t max_wait_ms;
  uint64_t drain_ms;
  const char *allow_origin;
  uint64_t max_sessions;
  const char *disabled_tools;
  uint64_t max_response_bytes;
  bool help;
} serve_options_t;

static void usage(FILE *out) {
  qreg_config_t defaults;
  qreg_config_init(&defaults);
  fprintf(out,
          "Usage: qreg serve --db URL [--listen HOST:PORT] [--token-file FILE] [OPTIONS]\n"
          "\n"
          "Serves a qreg registry over HTTP: the statement API (/v1/statements: submit with\n"
          "a wait, long-poll, paged JSON and streamed CSV/NDJSON results, cancel, list),\n"
          "MCP over Streamable HTTP (/mcp: the tools of `qreg mcp`), a console for a\n"
          "browser at /, /healthz, /readyz, /metrics (Prometheus) and /v1/openapi.json.\n"
          "docs/http.md describes every route.\n"
          "\n"
          "Options:\n"
          "  --db URL                the database (forms below); required\n"
          "  --listen HOST:PORT      where to listen (%s; port 0 picks a free one,\n"
          "                          printed on standard error); [::1]:PORT for IPv6\n"
          "  --token-file FILE       bearer tokens, one a line or sha256:<hex>; the file must\n"
          "                          have mode 0600. Without it only a loopback address\n"
          "                          may be used\n"
          "  --max-connections N     database connections at once (%u)\n"
          "  --timeout S             default query timeout in seconds (%llu)\n"
          "  --ttl S                 keep finished queries S seconds (%llu)\n"
          "  --max-rows N            rows kept per result (%llu)\n"
          "  --max-records N         queries kept at once (%zu)\n"
          "  --max-result-bytes N    bytes of results held in memory by all queries (%zu);\n"
          "                          one query keeps a quarter by default (max_result_bytes)\n"
          "  --allow-writes          allow statements that write (default: read-only)\n"
          "  --max-body-bytes N      largest request body (%llu); more: 413\n"
          "  --max-clients N         HTTP connections at once (%d)\n"
          "  --idle-timeout S        close a connection silent this long, headers\n"
          "                          included (%d)\n"
          "  --max-waits N           long-polls held at once (%d); more: 503\n"
          "  --max-wait S            the longest wait_seconds (%d)\n"
          "  --drain-timeout S       on SIGTERM, how long responses in flight may take\n"
          "                          before the rest is canceled (%d)\n"
          "  --allow-origin LIST     browser origins (scheme://host[:port], comma-separated)\n"
          "                          whose pages may call this server besides its own\n"
          "  --max-sessions N        MCP sessions (Mcp-Session-Id) held at once (%d)\n"
          "  --disable-tools LIST    MCP tools, comma-separated, /mcp does not offer\n"
          "                          (also QREG_DISABLE_TOOLS)\n"
          "  --max-response-bytes N  one MCP response's JSON at most (%zu); pages stop\n"
          "                          early to fit\n"
          "  -h, --help              show this help\n"
          "\n"
          "Exit status 0 after SIGTERM or SIGINT (drained); 1: could not start; 2: bad usage.\n",
          DEFAULT_LISTEN, defaults.max_connections,
          (unsigned long long)(defaults.default_timeout_ms / 1000),
          (unsigned long long)(defaults.default_ttl_ms / 1000),
          (unsigned long long)defaults.default_max_rows, defaults.max_records,
          defaults.max_result_bytes, (unsigned long long)DEFAULT_MAX_BODY_BYTES,
          DEFAULT_MAX_CLIENTS, DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_WAITS, DEFAULT_MAX_WAIT_S,
          DEFAULT_DRAIN_MS / 1000, DEFAULT_MAX_SESSIONS, MCP_MAX_RESPONSE_BYTES);
  fputs("\nDatabase URLs, and each database's options:\n", out);
  fputs(qreg_drivers_help(), out);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("qreg serve: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\nTry 'qreg serve --help'.\n", stderr);
  return 2;
}

typedef enum value_kind {
  VALUE_TEXT,
  VALUE_COUNT,
  VALUE_SECONDS
} value_kind_t;

typedef struct value_option {
  const char *flag;
  value_kind_t kind;
  size_t offset;
  uint64_t min;
  uint64_t max;
} value_option_t;

static const value_option_t VALUE_OPTIONS[] = {
    {"--db", VALUE_TEXT, offsetof(serve_options_t, db_url), 0, 0},
    {"--listen", VALUE_TEXT, offsetof(serve_options_t, listen), 0, 0},
    {"--token-file", VALUE_TEXT, offsetof(serve_options_t, token_file), 0, 0},
    {"--max-connections", VALUE_COUNT, offsetof(serve_options_t, max_connections), 1, 10000},
    {"--timeout", VALUE_SECONDS, offsetof(serve_options_t, timeout_ms), 0, 0},
    {"--ttl", VALUE_SECONDS, offsetof(serve_options_t, ttl_ms), 0, 0},
    {"--max-rows", VALUE_COUNT, offsetof(serve_options_t, max_rows), 1, UINT64_C(1000000000)},
    {"--max-records", VALUE_COUNT, offsetof(serve_options_t, max_records), 1, UINT64_C(10000000)},
    {"--max-result-bytes", VALUE_COUNT, offsetof(serve_options_t, max_result_bytes), 1 << 20,
     UINT64_C(1) << 40},
    {"--max-body-bytes", VALUE_COUNT, offsetof(serve_options_t, max_body_bytes), 1024,
     (uint64_t)1 << 30},
    {"--max-clients", VALUE_COUNT, offsetof(serve_options_t, max_clients), 1, 1000000},
    {"--idle-timeout", VALUE_SECONDS, offsetof(serve_options_t, idle_timeout_ms), 0, 0},
    {"--max-waits", VALUE_COUNT, offsetof(serve_options_t, max_waits), 1, 10000000},
    {"--max-wait", VALUE_SECONDS, offsetof(serve_options_t, max_wait_ms), 0, 0},
    {"--drain-timeout", VALUE_SECONDS, offsetof(serve_options_t, drain_ms), 0, 0},
    {"--allow-origin", VALUE_TEXT, offsetof(serve_options_t, allow_origin), 0, 0},
    {"--max-sessions", VALUE_COUNT, offsetof(serve_options_t, max_sessions), 1, 1000000},
    {"--disable-tools", VALUE_TEXT, offsetof(serve_options_t, disabled_tools), 0, 0},
    {"--max-response-bytes", VALUE_COUNT, offsetof(serve_options_t, max_response_bytes), 4096,
     (uint64_t)1 << 30},
};
#define VALUE_OPTION_COUNT (sizeof VALUE_OPTIONS / sizeof VALUE_OPTIONS[0])

static int set_value(serve_options_t *options, const value_option_t *o, const char *value) {
  char *base = (char *)options + o->offset;
  if (o->kind == VALUE_TEXT) {
    if (!*value)
      return usage_error("%s: empty", o->flag);
    memcpy(base, &value, sizeof value);
    return 0;
  }
  uint64_t parsed;
  if (o->kind == VALUE_SECONDS) {
    if (!qreg_cli_parse_seconds(value, &parsed))
      return usage_error("%s: expected seconds above 0 and at most a year (30, 0.5), not '%s'",
                         o->flag, value);
  } else if (!qreg_cli_parse_count(value, &parsed) || parsed < o->min || parsed > o->max) {
    return usage_error("%s: expected a whole number from %llu to %llu, not '%s'", o->flag,
                       (unsigned long long)o->min, (unsigned long long)o->max, value);
  }
  memcpy(base, &parsed, sizeof parsed);
  return 0;
}

static int parse_options(int argc, char **argv, serve_options_t *options) {
  memset(options, 0, sizeof *options);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      options->help = true;
      continue;
    }
    if (!strcmp(arg, "--allow-writes")) {
      options->allow_writes = true;
      continue;
    }
    const char *value = NULL;
    int k = qreg_cli_match_option(argc, argv, &i, VALUE_OPTIONS, VALUE_OPTION_COUNT,
                                  sizeof VALUE_OPTIONS[0], &value);
    if (k == QREG_CLI_NEEDS_VALUE)
      return usage_error("%s needs a value", arg);
    const value_option_t *match = k >= 0 ? &VALUE_OPTIONS[k] : NULL;
    if (!match) {
      char shown[64];
      return usage_error("unknown argument '%s'",
                         qreg_cli_shown_argument(arg, shown, sizeof shown));
    }
    int rc = set_value(options, match, value);
    if (rc)
      return rc;
  }
  return 0;
}

/* --- the listening socket ----------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *addr) {
  if (addr->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
      return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
      return in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

/* Binds HOST:PORT ([v6]:PORT); -1 after printing why. *family set. */
static int open_listener(const char *listen_text, bool need_loopback, int *family, bool *loopback) {
  char host[256];
  const char *port;
  if (listen_text[0] == '[') {
    const char *close = strchr(listen_text, ']');
    if (!close || close[1] != ':' || (size_t)(close - listen_text - 1) >= sizeof host) {
      fprintf(stderr, "qreg serve: --listen: expected [IPV6]:PORT, not '%s'\n", listen_text);
      return -1;
    }
    memcpy(host, listen_text + 1, (size_t)(close - listen_text - 1));
    host[close - listen_text - 1] = '\0';
    port = close + 2;
  } else {
    const char *colon = strrchr(listen_text, ':');
    if (!colon || (size_t)(colon - listen_text) >= sizeof host || colon == listen_text) {
      fprintf(stderr, "qreg serve: --listen: expected HOST:PORT, not '%s'\n", listen_text);
      return -1;
    }
    memcpy(host, listen_text, (size_t)(colon - listen_text));
    host[colon - listen_text] = '\0';
    port = colon + 1;
  }
  uint64_t port_number;
  if (!qreg_cli_parse_count(port, &port_number) || port_number > 65535) {
    fprintf(stderr, "qreg serve: --listen: the port must be a number from 0 to 65535\n");
    return -1;
  }
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *found = NULL;
  int gai = getaddrinfo(host, port, &hints, &found);
  if (gai != 0) {
    fprintf(stderr, "qreg serve: --listen: cannot resolve '%s': %s\n", host, gai_strerror(gai));
    return -1;
  }
  if (need_loopback && !is_loopback(found->ai_addr)) {
    fprintf(stderr,
            "qreg serve: --listen %s is not a loopback address, and no --token-file is given:\n"
            "  without tokens anyone who can reach the port could run queries. Give\n"
            "  --token-file FILE (mode 0600), or listen on 127.0.0.1 or [::1].\n",
            listen_text);
    freeaddrinfo(found);
    return -1;
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int on = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
    fprintf(stderr, "qreg serve: cannot listen on %s: %s\n", listen_text, strerror(errno));
    if (fd >= 0)
      close(fd);
    freeaddrinfo(found);
    return -1;
  }
  *family = found->ai_family;
  freeaddrinfo(found);
  struct sockaddr_storage bound = {0};
  socklen_t bound_len = sizeof bound;
  char shown[NI_MAXHOST] = "?";
  char bound_port[NI_MAXSERV] = "?";
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) == 0)
    (void)getnameinfo((struct sockaddr *)&bound, bound_len, shown, sizeof shown, bound_port,
                      sizeof bound_port, NI_NUMERICHOST | NI_NUMERICSERV);
  bool v6 = bound.ss_family == AF_INET6;
  *loopback = is_loopback((const struct sockaddr *)&bound);
  fprintf(stderr, "qreg serve: listening on http://%s%s%s:%s\n", v6 ? "[" : "", shown,
          v6 ? "]" : "", bound_port);
  return fd;
}

/* --- the loop ------------------------------------------------------------------------------ */

static void empty_pipe(int fd) {
  char bytes[256];
  while (read(fd, bytes, sizeof bytes) > 0) {
  }
}

/* Waits for the next event and handles it. Returns the signal taken, or 0. */
static int run_once(http_server_t *server, int epoll_fd, int signal_fd, int64_t cap_ms) {
  int64_t timeout = http_expire_waits(server, false);
  int64_t mcp_next = http_mcp_run(server, false);
  if (mcp_next >= 0 && (timeout < 0 || mcp_next < timeout))
    timeout = mcp_next;
  MHD_UNSIGNED_LONG_LONG mhd_timeout = 0;
  if (MHD_get_timeout(server->daemon, &mhd_timeout) == MHD_YES &&
      (timeout < 0 || (int64_t)mhd_timeout < timeout))
    timeout = (int64_t)mhd_timeout;
  if (cap_ms >= 0 && (timeout < 0 || cap_ms < timeout))
    timeout = cap_ms;
  if (timeout > 60000)
    timeout = 60000;
  struct pollfd fds[3] = {{.fd = epoll_fd, .events = POLLIN},
                          {.fd = server->ready_pipe[0], .events = POLLIN},
                          {.fd = signal_fd, .events = POLLIN}};
  int ready = poll(fds, 3, (int)timeout);
  int signal_taken = 0;
  if (ready > 0 && fds[2].revents) {
    struct signalfd_siginfo info;
    if (read(signal_fd, &info, sizeof info) == (ssize_t)sizeof info)
      signal_taken = (int)info.ssi_signo;
  }
  if (ready > 0 && fds[1].revents) {
    empty_pipe(server->ready_pipe[0]);
    http_resume_ready(server);
  }
  (void)http_expire_waits(server, false);
  /* MCP waits whose deadline the poll slept to: answered (resumed) now, so
     this MHD_run() sends them. */
  (void)http_mcp_run(server, false);
  MHD_run(server->daemon);
  return signal_taken;
}

static int64_t elapsed_since(uint64_t start_ms) {
  return (int64_t)(http_now_ms() - start_ms);
}

static void drain(http_server_t *server, int epoll_fd, int signal_fd, uint64_t drain_ms) {
  server->draining = true;
  /* MCP session streams would hold the drain to its end: they end now;
     MCP waits are answered as the long-polls are. */
  http_mcp_drain(server);
  /* Held waits answer now, with the statement as it is. */
  (void)http_expire_waits(server, true);
  MHD_run(server->daemon);
  int listener = MHD_quiesce_daemon(server->daemon);
  if (listener >= 0)
    close(listener);
  uint64_t start = http_now_ms();
  while (server->requests_in_flight > 0 && elapsed_since(start) < (int64_t)drain_ms) {
    /* Short turns: a resumed connection is picked up by the next MHD_run()
       even when its wake-up was taken by an earlier one. */
    int64_t left = (int64_t)drain_ms - elapsed_since(start);
    if (run_once(server, epoll_fd, signal_fd, left < DRAIN_TURN_MS ? left : DRAIN_TURN_MS)) {
      fprintf(stderr, "qreg serve: second signal: closing at once\n");
      break;
    }
    (void)http_expire_waits(server, true);
  }
  if (server->requests_in_flight > 0)
    fprintf(stderr, "qreg serve: %zu responses still in flight after the drain: closing them\n",
            server->requests_in_flight);
}

static int serve(const serve_options_t *options, const http_tokens_t *tokens, int listener,
                 int family, bool loopback, int signal_fd) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = options->db_url;
  if (options->max_connections)
    config.max_connections = (unsigned)options->max_connections;
  if (options->timeout_ms)
    config.default_timeout_ms = options->timeout_ms;
  if (options->ttl_ms)
    config.default_ttl_ms = options->ttl_ms;
  if (options->max_rows)
    config.default_max_rows = options->max_rows;
  if (options->max_records)
    config.max_records = (size_t)options->max_records;
  if (options->max_result_bytes)
    config.max_result_bytes = (size_t)options->max_result_bytes;
  config.allow_writes = options->allow_writes;
  config.application_name = "qreg-serve";

  http_server_t *server = calloc(1, sizeof *server);
  if (!server) {
    fprintf(stderr, "qreg serve: out of memory\n");
    return 1;
  }
  server->tokens = tokens;
  server->loopback = loopback;
  server->allowed_origins = options->allow_origin;
  server->openapi = qreg_http_openapi;
  server->openapi_len = qreg_http_openapi_len;
  server->limits = (http_limits_t){
      .max_body_bytes = options->max_body_bytes ? options->max_body_bytes : DEFAULT_MAX_BODY_BYTES,
      .max_clients = options->max_clients ? (unsigned)options->max_clients : DEFAULT_MAX_CLIENTS,
      .idle_timeout_s = options->idle_timeout_ms
                            ? (unsigned)((options->idle_timeout_ms + 999) / 1000)
                            : DEFAULT_IDLE_TIMEOUT_S,
      .max_waits = options->max_waits ? options->max_waits : DEFAULT_MAX_WAITS,
      .max_wait_ms =
          options->max_wait_ms ? options->max_wait_ms : (uint64_t)DEFAULT_MAX_WAIT_S * 1000,
      .default_submit_wait = DEFAULT_SUBMIT_WAIT_MS,
  };
  if (server->limits.default_submit_wait > server->limits.max_wait_ms)
    server->limits.default_submit_wait = server->limits.max_wait_ms;
  pthread_mutex_init(&server->ready_mutex, NULL);
  mcp_server_t *mcp = NULL;
  int rc = 1;
  if (pipe2(server->ready_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "qreg serve: cannot set up: %s\n", strerror(errno));
    close(listener);
    pthread_mutex_destroy(&server->ready_mutex);
    free(server);
    return 1;
  }
  if (qreg_open(&config, &server->reg) < 0) {
    /* Not the URL: it may hold a password (the message never does). */
    fprintf(stderr, "qreg serve: cannot open the registry: %s\n", qreg_last_error());
    close(listener);
    goto out;
  }
  mcp_settings_t mcp_settings = {
      .max_message_bytes = server->limits.max_body_bytes,
      .max_response_bytes = options->max_response_bytes ? (size_t)options->max_response_bytes
                                                        : MCP_MAX_RESPONSE_BYTES,
      .poll_interval_ms = MCP_POLL_INTERVAL_MS,
      .wait_ms = MCP_WAIT_MS,
      .task_window_ms = MCP_TASK_WINDOW_MS,
      .ttl_ms = config.default_ttl_ms,
      .timeout_ms = config.default_timeout_ms,
      .allow_writes = config.allow_writes,
      .disabled_tools = options->disabled_tools,
  };
  if (mcp_server_new(server->reg, &mcp_settings, &mcp) < 0 ||
      http_mcp_new(server, mcp,
                   options->max_sessions ? options->max_sessions : DEFAULT_MAX_SESSIONS) < 0) {
    fprintf(stderr, "qreg serve: out of memory\n");
    close(listener);
    qreg_close(server->reg);
    goto out;
  }
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (family == AF_INET6)
    flags |= MHD_USE_IPv6;
  server->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, http_handle, server, MHD_OPTION_LISTEN_SOCKET, listener,
      MHD_OPTION_CONNECTION_LIMIT, server->limits.max_clients + CONNECTION_RESERVE,
      MHD_OPTION_CONNECTION_TIMEOUT, server->limits.idle_timeout_s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_MEMORY_PER_CONNECTION,
      MHD_OPTION_NOTIFY_COMPLETED, http_completed, server, MHD_OPTION_NOTIFY_CONNECTION,
      http_connection_notify, server, MHD_OPTION_END);
  if (!server->daemon) {
    fprintf(stderr, "qreg serve: libmicrohttpd did not start\n");
    close(listener);
    qreg_close(server->reg);
    goto out;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  int epoll_fd = info ? info->epoll_fd : -1;
  if (epoll_fd < 0) {
    fprintf(stderr, "qreg serve: libmicrohttpd has no epoll descriptor\n");
    MHD_stop_daemon(server->daemon);
    qreg_close(server->reg);
    goto out;
  }
  char *shown = NULL;
  (void)qreg_redacted_url(server->reg, &shown);
  fprintf(stderr, "qreg serve: serving %s (%s, up to %u connections), %s\n",
          shown ? shown : "the database", config.allow_writes ? "writes allowed" : "read-only",
          config.max_connections,
          tokens->count ? "bearer tokens required" : "no tokens: loopback only");
  free(shown);

  int signal_taken = 0;
  while (!signal_taken)
    signal_taken = run_once(server, epoll_fd, signal_fd, -1);
  fprintf(stderr, "qreg serve: signal %d: draining (up to %llu ms)\n", signal_taken,
          (unsigned long long)(options->drain_ms ? options->drain_ms : DEFAULT_DRAIN_MS));
  drain(server, epoll_fd, signal_fd, options->drain_ms ? options->drain_ms : DEFAULT_DRAIN_MS);

  /* Cancel what still runs and release every connection; every watch is
     called before qreg_close() returns, so every wait is on the ready list. */
  (void)qreg_close(server->reg);
  http_resume_ready(server);
  (void)http_mcp_run(server, true);
  (void)http_expire_waits(server, true);
  /* What the close answered (waits it cut short) gets a moment to be sent. */
  uint64_t flush_start = http_now_ms();
  while (server->requests_in_flight > 0 && elapsed_since(flush_start) < FINAL_FLUSH_MS)
    (void)run_once(server, epoll_fd, signal_fd, DRAIN_TURN_MS);
  /* Every connection is resumed: stopping the daemon closes what is left
     (a stream cut by the close ends without its last chunk). */
  MHD_stop_daemon(server->daemon);
  http_resume_ready(server);
  (void)http_mcp_run(server, true);
  qreg_stats_t stats = QREG_STATS_INIT;
  (void)qreg_stats(server->reg, &stats);
  fprintf(stderr, "qreg: closed: connections opened=%llu closed=%llu connect_failures=%llu\n",
          (unsigned long long)stats.connections_opened,
          (unsigned long long)stats.connections_closed, (unsigned long long)stats.connect_failures);
  rc = 0;
out:
  http_mcp_free(server);
  if (mcp) {
    size_t stranded = mcp_server_parked(mcp);
    if (stranded)
      fprintf(stderr, "qreg serve: %zu MCP requests still parked after the close\n", stranded);
    mcp_server_free(mcp);
  }
  qreg_destroy(server->reg);
  close(server->ready_pipe[0]);
  close(server->ready_pipe[1]);
  pthread_mutex_destroy(&server->ready_mutex);
  free(server->heap);
  free(server);
  return rc;
}

/* Many clients each hold a socket: the soft limit of descriptors goes up to
   the hard one (1024 is a common soft default). */
static void raise_descriptor_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int qreg_http_main(int argc, char **argv) {
  serve_options_t options;
  int rc = parse_options(argc, argv, &options);
  if (rc)
    return rc;
  if (options.help) {
    usage(stdout);
    return 0;
  }
  if (!options.db_url)
    return usage_error("--db URL is required");
  if (!options.disabled_tools) {
    const char *env = getenv("QREG_DISABLE_TOOLS");
    options.disabled_tools = env && *env ? env : NULL;
  }
  char bad_tool[72];
  if (options.disabled_tools &&
      !mcp_tools_known_list(options.disabled_tools, bad_tool, sizeof bad_tool))
    return usage_error("--disable-tools: '%s' is not a tool (tools: " MCP_TOOL_NAMES ")", bad_tool);
  http_tokens_t tokens = {0};
  if (options.token_file) {
    char err[256];
    if (http_tokens_load(options.token_file, &tokens, err, sizeof err) < 0) {
      fprintf(stderr, "qreg serve: --token-file %s: %s\n", options.token_file, err);
      return 1;
    }
  }
  int family = AF_INET;
  bool loopback = false;
  int listener = open_listener(options.listen ? options.listen : DEFAULT_LISTEN, tokens.count == 0,
                               &family, &loopback);
  if (listener < 0) {
    http_tokens_free(&tokens);
    return 1;
  }
  raise_descriptor_limit();
  /* Blocked in every thread before any starts (the registry's included):
     the shutdown signals are read from the signalfd; SIGPIPE never kills. */
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGPIPE);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &blocked, &previous);
  sigset_t taken;
  sigemptyset(&taken);
  sigaddset(&taken, SIGINT);
  sigaddset(&taken, SIGTERM);
  int signal_fd = signalfd(-1, &taken, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) {
    fprintf(stderr, "qreg serve: signalfd: %s\n", strerror(errno));
    close(listener);
    http_tokens_free(&tokens);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return 1;
  }
  rc = serve(&options, &tokens, listener, family, loopback, signal_fd);
  close(signal_fd);
  http_tokens_free(&tokens);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  return rc;
}
