/*
 * bench/bench_mcp.c - figure 8: `qreg mcp`.
 *
 * 8a, MCP round trips. One client keeps 32
 * `tools/call get_query_status` requests in flight to `qreg mcp --db
 * sqlite:...` over its stdin/stdout (newline-delimited JSON-RPC, protocol
 * 2025-06-18 after the initialize handshake), all asking about one finished
 * query; the figure is responses per second.
 *
 * Baseline, in alternate rounds: the same client, the same requests, against
 * an echo server (this program as `--child mcp-echo`) that reads each line,
 * takes its id and writes back a canned response as long as qreg's - the
 * floor set by the pipes, the line framing and two processes on the machine.
 *
 * 8b, 8c, waits held over MCP tasks: `qreg mcp --max-connections 2` on
 * SQLite gets 10,000 task-augmented execute_query calls (2025-11-25 tasks)
 * of a statement that runs for minutes - two run, the others wait for a
 * connection - then one tasks/result per task, and a ping after them: once
 * the ping is answered, the server has read every tasks/result (it reads in
 * order) and holds them all. Then its thread count (8b) and resident size
 * (8c) are read from /proc/PID/status. Baseline: the same process idle,
 * after the handshake, before the first task. A fresh server per round,
 * stopped with SIGTERM (which answers every wait with an error).
 *
 * If `qreg mcp` does not answer the handshake or the first tool call (the
 * MCP server is not built yet), the figures say "skipped: MCP server not
 * available" and why.
 *
 * Owns, while it runs: the server child process and its two pipes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define IN_FLIGHT 32
#define HANDSHAKE_BOUND_MS 10000
#define RESPONSE_BOUND_MS 10000
/* Figure 8b, 8c: waits held (the 10,000), task creations in flight
   while they are made, the most threads the issue allows. */
#define WAITS 10000
#define CREATE_IN_FLIGHT 256
#define WAITS_THREAD_GOAL 16
/* Runs for minutes on SQLite: every wait outlasts the measurement. */
#define WAITS_SQL                                                                                  \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000000) "          \
  "SELECT count(*) FROM c"

typedef struct mcp_peer {
  pid_t pid;
  int to_fd;   /* owned: the server's stdin */
  int from_fd; /* owned: the server's stdout */
  char buf[1 << 16];
  size_t used;
} mcp_peer_t;

static bool peer_start(mcp_peer_t *peer, const char *const *argv) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
    bench_die("pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0)
      dup2(null_fd, STDERR_FILENO); /* the server's logs are not ours to print */
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  peer->pid = pid;
  peer->to_fd = in[1];
  peer->from_fd = out[0];
  peer->used = 0;
  return true;
}

static void peer_stop(mcp_peer_t *peer) {
  close(peer->to_fd);
  close(peer->from_fd);
  /* EOF on stdin ends a well-behaved server; one that is not gets killed. */
  for (int i = 0; i < 200; i++) {
    if (waitpid(peer->pid, NULL, WNOHANG) == peer->pid)
      return;
    bench_sleep_ms(10);
  }
  kill(peer->pid, SIGKILL);
  waitpid(peer->pid, NULL, 0);
}

static bool write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

/* Reads one line (without its newline) into line; false on EOF, error or
   timeout. */
static bool peer_read_line(mcp_peer_t *peer, char *line, size_t size, int timeout_ms) {
  for (;;) {
    char *newline = memchr(peer->buf, '\n', peer->used);
    if (newline != NULL) {
      size_t len = (size_t)(newline - peer->buf);
      size_t copy = len < size - 1 ? len : size - 1;
      memcpy(line, peer->buf, copy);
      line[copy] = '\0';
      peer->used -= len + 1;
      memmove(peer->buf, newline + 1, peer->used);
      return true;
    }
    if (peer->used == sizeof peer->buf)
      peer->used = 0; /* a line longer than the buffer: dropped */
    struct pollfd p = {.fd = peer->from_fd, .events = POLLIN};
    int ready = poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready <= 0)
      return false;
    ssize_t n = read(peer->from_fd, peer->buf + peer->used, sizeof peer->buf - peer->used);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    peer->used += (size_t)n;
  }
}

/* Sends one request and reads lines until the response with that id;
   false (reason set) if none comes. */
static bool call(mcp_peer_t *peer, int id, const char *method, const char *params, char *response,
                 size_t size, char *reason, size_t reason_size) {
  char request[1024];
  int n = snprintf(request, sizeof request,
                   "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}\n", id, method,
                   params);
  if (!write_all(peer->to_fd, request, (size_t)n)) {
    snprintf(reason, reason_size, "the server closed its input");
    return false;
  }
  char want[32];
  snprintf(want, sizeof want, "\"id\":%d", id);
  for (;;) {
    if (!peer_read_line(peer, response, size, HANDSHAKE_BOUND_MS)) {
      snprintf(reason, reason_size, "no answer to %s", method);
      return false;
    }
    if (strstr(response, want) != NULL)
      return true; /* notifications and log lines are skipped */
  }
}

static bool is_error_response(const char *line) {
  return strstr(line, "\"error\":{") != NULL || strstr(line, "\"error\": {") != NULL ||
         strstr(line, "\"isError\":true") != NULL || strstr(line, "\"isError\": true") != NULL;
}

/* Responses per second with IN_FLIGHT requests outstanding, for `seconds`. */
static double round_trips(mcp_peer_t *peer, const char *request_format, const char *query_id,
                          double seconds) {
  char request[512];
  char line[1 << 14];
  long next_id = 1000, in_flight = 0, done = 0;
  uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
  bool sending = true;
  while (sending || in_flight > 0) {
    while (sending && in_flight < IN_FLIGHT) {
      int n = snprintf(request, sizeof request, request_format, next_id++, query_id);
      if (!write_all(peer->to_fd, request, (size_t)n))
        bench_die("the MCP server closed its input");
      in_flight++;
    }
    if (!peer_read_line(peer, line, sizeof line, RESPONSE_BOUND_MS))
      bench_die("the MCP server stopped answering (%ld in flight)", in_flight);
    if (strstr(line, "\"id\":") == NULL)
      continue; /* not a response */
    if (is_error_response(line))
      bench_die("get_query_status failed: %.300s", line);
    in_flight--;
    done++;
    if (sending && (done & 63) == 0 && bench_now_ns() >= end)
      sending = false;
  }
  return (double)done / bench_seconds_since(t0);
}

#define STATUS_REQUEST                                                                             \
  "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":"                \
  "\"get_query_status\",\"arguments\":{\"query_id\":\"%s\"}}}\n"

/* Starts `qreg mcp`, does the handshake and one execute_query; fills the
   query id and the length of a get_query_status response. */
static bool qreg_server_start(const bench_context_t *ctx, mcp_peer_t *peer, char *query_id,
                              size_t *response_len, char *reason, size_t reason_size) {
  if (ctx->qreg_program == NULL || access(ctx->qreg_program, X_OK) != 0) {
    snprintf(reason, reason_size, "the qreg program was not built");
    return false;
  }
  char url[600];
  snprintf(url, sizeof url, "sqlite:%s", ctx->sqlite_path);
  const char *argv[] = {ctx->qreg_program, "mcp", "--db", url, NULL};
  peer_start(peer, argv);
  static char line[1 << 14];
  if (!call(peer, 1, "initialize",
            "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
            "\"clientInfo\":{\"name\":\"qreg-bench\",\"version\":\"1\"}}",
            line, sizeof line, reason, reason_size))
    return false;
  if (is_error_response(line)) {
    snprintf(reason, reason_size, "initialize failed: %.200s", line);
    return false;
  }
  const char *initialized = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
  write_all(peer->to_fd, initialized, strlen(initialized));
  if (!call(peer, 2, "tools/call",
            "{\"name\":\"execute_query\",\"arguments\":{\"sql\":\"SELECT 1\"}}", line, sizeof line,
            reason, reason_size))
    return false;
  const char *at = strstr(line, "\"query_id\"");
  if (is_error_response(line) || at == NULL || (at = strchr(at + 10, '"')) == NULL ||
      strlen(at + 1) < QREG_ID_LEN) {
    snprintf(reason, reason_size, "execute_query failed: %.200s", line);
    return false;
  }
  memcpy(query_id, at + 1, QREG_ID_LEN);
  query_id[QREG_ID_LEN] = '\0';
  char params[256];
  snprintf(params, sizeof params,
           "{\"name\":\"get_query_status\",\"arguments\":{\"query_id\":\"%s\"}}", query_id);
  if (!call(peer, 3, "tools/call", params, line, sizeof line, reason, reason_size))
    return false;
  if (is_error_response(line)) {
    snprintf(reason, reason_size, "get_query_status failed: %.200s", line);
    return false;
  }
  *response_len = strlen(line);
  return true;
}

/* Figure 8a. */
static void bench_mcp_round_trips(const bench_context_t *ctx) {
  bench_figure_t *figure =
      bench_figure_new("8a", "MCP get_query_status, 32 in flight, stdio", "requests/s",
                       "echo server: same client, pipes, canned response of the same length",
                       BENCH_GOAL_VALUE_AT_LEAST, 20000);
  mcp_peer_t *server = malloc(sizeof *server), *echo = malloc(sizeof *echo);
  if (server == NULL || echo == NULL)
    bench_die("out of memory");
  char query_id[QREG_ID_LEN + 1], reason[300];
  size_t response_len = 0;
  if (!qreg_server_start(ctx, server, query_id, &response_len, reason, sizeof reason)) {
    if (ctx->qreg_program != NULL && access(ctx->qreg_program, X_OK) == 0)
      peer_stop(server);
    bench_figure_skip(figure, "skipped: MCP server not available (%s)", reason);
    free(server);
    free(echo);
    return;
  }
  char length_text[32];
  snprintf(length_text, sizeof length_text, "%zu", response_len);
  const char *echo_argv[] = {ctx->self_path, "--child", "mcp-echo", length_text, NULL};
  peer_start(echo, echo_argv);

  double seconds = ctx->scale < 1 ? 0.3 : 1.0;
  /* Warm both sides (allocator, caches, the server's threads) uncounted. */
  round_trips(server, STATUS_REQUEST, query_id, 0.2);
  round_trips(echo, STATUS_REQUEST, query_id, 0.2);
  for (unsigned round = 0; round < ctx->rounds; round++) {
    double q, b;
    if (round % 2 == 0) {
      q = round_trips(server, STATUS_REQUEST, query_id, seconds);
      b = round_trips(echo, STATUS_REQUEST, query_id, seconds);
    } else {
      b = round_trips(echo, STATUS_REQUEST, query_id, seconds);
      q = round_trips(server, STATUS_REQUEST, query_id, seconds);
    }
    bench_figure_round(figure, q, b);
  }
  bench_figure_note(figure,
                    "%.1f s per side per round; one get_query_status response is %zu "
                    "bytes.",
                    seconds, response_len);
  peer_stop(server);
  peer_stop(echo);
  free(server);
  free(echo);
}

/* --- figures 8b, 8c: waits held -------------------------------------------------- */

/* Threads and resident bytes of a process, from /proc/PID/status. */
typedef struct process_figures {
  double threads;
  double rss_bytes;
} process_figures_t;

static process_figures_t process_figures(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    bench_die("cannot read %s: %s", path, strerror(errno));
  process_figures_t figures = {-1, -1};
  char line[256];
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "Threads:", 8) == 0)
      figures.threads = strtod(line + 8, NULL);
    else if (strncmp(line, "VmRSS:", 6) == 0)
      figures.rss_bytes = strtod(line + 6, NULL) * 1024; /* "VmRSS:  27000 kB" */
  }
  fclose(f);
  if (figures.threads < 0 || figures.rss_bytes < 0)
    bench_die("%s: no Threads or VmRSS line", path);
  return figures;
}

/* Reads lines until the response with this id; false on EOF or timeout. */
static bool wait_for_id(mcp_peer_t *peer, long id, char *line, size_t size) {
  char want[32];
  snprintf(want, sizeof want, "\"id\":%ld,", id);
  for (;;) {
    if (!peer_read_line(peer, line, size, RESPONSE_BOUND_MS * 3))
      return false;
    if (strstr(line, want) != NULL)
      return true;
  }
}

/* Stops a server holding waits: SIGTERM, then its answers (an error per
   wait) read to the end so that it is never blocked writing them. */
static void peer_terminate(mcp_peer_t *peer) {
  kill(peer->pid, SIGTERM);
  close(peer->to_fd);
  static char sink[1 << 16];
  uint64_t start = bench_now_ns();
  struct pollfd p = {.fd = peer->from_fd, .events = POLLIN};
  while (bench_seconds_since(start) < 30 && poll(&p, 1, 1000) >= 0) {
    ssize_t n = read(peer->from_fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
      break;
  }
  close(peer->from_fd);
  int status = 0;
  if (waitpid(peer->pid, &status, WNOHANG) != peer->pid) {
    for (int i = 0; i < 500 && waitpid(peer->pid, &status, WNOHANG) != peer->pid; i++)
      bench_sleep_ms(10);
    if (kill(peer->pid, 0) == 0) {
      kill(peer->pid, SIGKILL);
      waitpid(peer->pid, NULL, 0);
    }
  }
}

/* One round: a fresh server, waits tasks/result held. Fills idle (after the
   handshake), tasks (the tasks made, no wait yet) and held (every wait
   held); false with reason when the server cannot be driven. */
static bool waits_round(const bench_context_t *ctx, mcp_peer_t *peer, unsigned long waits,
                        process_figures_t *idle, process_figures_t *tasks, process_figures_t *held,
                        char *reason, size_t reason_size) {
  if (ctx->qreg_program == NULL || access(ctx->qreg_program, X_OK) != 0) {
    snprintf(reason, reason_size, "the qreg program was not built");
    return false;
  }
  char url[600], records[32];
  snprintf(url, sizeof url, "sqlite:%s", ctx->sqlite_path);
  snprintf(records, sizeof records, "%lu", waits + 100);
  const char *argv[] = {ctx->qreg_program, "mcp",   "--db", url, "--max-connections", "2",
                        "--max-records",   records, NULL};
  peer_start(peer, argv);
  static char line[1 << 14];
  if (!call(peer, 1, "initialize",
            "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
            "\"clientInfo\":{\"name\":\"qreg-bench\",\"version\":\"1\"}}",
            line, sizeof line, reason, reason_size))
    return false;
  if (is_error_response(line) || strstr(line, "\"tasks\"") == NULL) {
    snprintf(reason, reason_size, "initialize (2025-11-25, tasks) failed: %.200s", line);
    return false;
  }
  const char *initialized = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
  write_all(peer->to_fd, initialized, strlen(initialized));
  *idle = process_figures(peer->pid);

  /* The tasks, CREATE_IN_FLIGHT at a time; their ids kept in order. */
  qreg_id_t *ids = calloc(waits, sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");
  char request[1024];
  unsigned long sent = 0, received = 0;
  while (received < waits) {
    while (sent < waits && sent - received < CREATE_IN_FLIGHT) {
      int n =
          snprintf(request, sizeof request,
                   "{\"jsonrpc\":\"2.0\",\"id\":%lu,\"method\":\"tools/call\",\"params\":{"
                   "\"name\":\"execute_query\",\"arguments\":{\"sql\":\"%s\",\"wait_seconds\":0},"
                   "\"task\":{}}}\n",
                   1000 + sent, WAITS_SQL);
      if (!write_all(peer->to_fd, request, (size_t)n))
        bench_die("the MCP server closed its input");
      sent++;
    }
    if (!peer_read_line(peer, line, sizeof line, RESPONSE_BOUND_MS))
      bench_die("the MCP server stopped answering task creations (%lu of %lu)", received, waits);
    const char *id = strstr(line, "\"id\":");
    const char *task = strstr(line, "\"taskId\":\"");
    if (id == NULL)
      continue;
    unsigned long index = strtoul(id + 5, NULL, 10) - 1000;
    if (is_error_response(line) || task == NULL || index >= waits ||
        strlen(task + 10) < QREG_ID_LEN) {
      snprintf(reason, reason_size, "a task-augmented execute_query failed: %.200s", line);
      free(ids);
      return false;
    }
    memcpy(ids[index].str, task + 10, QREG_ID_LEN);
    ids[index].str[QREG_ID_LEN] = '\0';
    received++;
  }
  *tasks = process_figures(peer->pid);

  /* One tasks/result per task, then a ping: the server reads in order, so
     its answer means every wait is held. */
  for (unsigned long i = 0; i < waits; i++) {
    int n = snprintf(request, sizeof request,
                     "{\"jsonrpc\":\"2.0\",\"id\":%lu,\"method\":\"tasks/result\",\"params\":{"
                     "\"taskId\":\"%s\"}}\n",
                     1000 + waits + i, ids[i].str);
    if (!write_all(peer->to_fd, request, (size_t)n))
      bench_die("the MCP server closed its input");
  }
  free(ids);
  long ping_id = 999;
  int n = snprintf(request, sizeof request,
                   "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"ping\"}\n", ping_id);
  write_all(peer->to_fd, request, (size_t)n);
  if (!wait_for_id(peer, ping_id, line, sizeof line)) {
    snprintf(reason, reason_size, "no answer to the ping after %lu tasks/result", waits);
    return false;
  }
  *held = process_figures(peer->pid);
  return true;
}

static void bench_mcp_waits(const bench_context_t *ctx) {
  unsigned long waits = bench_scaled(ctx, WAITS, 100);
  char count[32], title[96];
  bench_count_text(waits, count, sizeof count);
  snprintf(title, sizeof title, "%s waits held over MCP tasks: threads", count);
  bench_figure_t *threads =
      bench_figure_new("8b", title, "threads", "the same process idle, no waits",
                       BENCH_GOAL_VALUE_AT_MOST, WAITS_THREAD_GOAL);
  snprintf(title, sizeof title, "%s waits held over MCP tasks: RSS", count);
  bench_figure_t *rss =
      bench_figure_new("8c", title, "MiB", "the same process idle, no waits", BENCH_GOAL_NONE, 0);
  mcp_peer_t *server = malloc(sizeof *server);
  if (server == NULL)
    bench_die("out of memory");
  bench_series_t per_wait = {0}, per_task = {0};
  char reason[300];
  for (unsigned round = 0; round < ctx->rounds; round++) {
    process_figures_t idle, tasks, held;
    bool ok = waits_round(ctx, server, waits, &idle, &tasks, &held, reason, sizeof reason);
    if (ctx->qreg_program != NULL && access(ctx->qreg_program, X_OK) == 0)
      peer_terminate(server);
    if (!ok) {
      bench_figure_skip(threads, "skipped: MCP server not available (%s)", reason);
      bench_figure_skip(rss, "skipped: MCP server not available (%s)", reason);
      free(server);
      bench_series_free(&per_wait);
      bench_series_free(&per_task);
      return;
    }
    bench_figure_round(threads, held.threads, idle.threads);
    bench_figure_round(rss, held.rss_bytes / (1 << 20), idle.rss_bytes / (1 << 20));
    bench_series_add(&per_task, (tasks.rss_bytes - idle.rss_bytes) / (double)waits);
    bench_series_add(&per_wait, (held.rss_bytes - tasks.rss_bytes) / (double)waits);
  }
  bench_figure_note(threads,
                    "qreg mcp --max-connections 2 on SQLite: 2 tasks run, the others wait for a "
                    "connection; one tasks/result per task; threads = Threads of "
                    "/proc/PID/status once a ping after the last tasks/result is answered.");
  bench_figure_note(rss,
                    "Of the growth over idle, the tasks themselves (registry records, task "
                    "store) take %.0f B each and each held tasks/result %.0f B (medians).",
                    bench_series_median(&per_task), bench_series_median(&per_wait));
  bench_series_free(&per_wait);
  bench_series_free(&per_task);
  free(server);
}

void bench_mcp(const bench_context_t *ctx) {
  bench_mcp_round_trips(ctx);
  bench_mcp_waits(ctx);
}

/* The echo server: argv = mcp-echo RESPONSE_LENGTH. */
int bench_mcp_echo_child(int argc, char **argv) {
  size_t length = argc >= 2 ? strtoul(argv[1], NULL, 10) : 200;
  static mcp_peer_t in;
  in.from_fd = STDIN_FILENO;
  static char line[1 << 14], response[1 << 14];
  while (peer_read_line(&in, line, sizeof line, -1)) {
    const char *id = strstr(line, "\"id\":");
    if (id == NULL)
      continue;
    long number = strtol(id + 5, NULL, 10);
    int n =
        snprintf(response, sizeof response,
                 "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"content\":[],\"pad\":\"", number);
    size_t len = (size_t)n;
    while (len + 4 < length && len + 4 < sizeof response)
      response[len++] = 'x';
    memcpy(response + len, "\"}}\n", 4);
    len += 4;
    if (!write_all(STDOUT_FILENO, response, len))
      return 0;
  }
  return 0;
}
