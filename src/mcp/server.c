/*
 * src/mcp/server.c - `qreg mcp`: the MCP server process on stdio. Parses the
 * options (command line over environment), opens the registry, and runs the
 * message handler of protocol.c on newline-delimited JSON-RPC from standard
 * input, answering on standard output; logs go to standard error only.
 *
 * Threads: two of ours, whatever the number of requests, plus the
 * registry's (its loop thread and its workers, at most max_connections + 4).
 *  - main: the reader, and the only thread that runs requests and writes
 *    standard output. One poll() loop over standard input, the ready pipe
 *    and the signal pipe. Each line goes to mcp_server_receive() in order
 *    (so notifications/cancelled and initialize take effect at once) and
 *    each request is run at once: no request blocks. One that must wait for
 *    a query (tasks/result, tasks/cancel, cancel_query, list_tables,
 *    describe_table) is parked by protocol.c on a qreg_watch(); the watch
 *    callback, on the registry's loop thread, queues it and writes a byte to
 *    the ready pipe (wake_ready: never blocks), and this loop runs it again
 *    and answers. 10,000 waiting requests are 10,000 small structs.
 *  - the signal thread: takes SIGINT, SIGTERM and SIGHUP with sigwait() and
 *    wakes the reader through a pipe. These signals (and SIGPIPE, so that a
 *    closed stdout is an EPIPE, not a death) are blocked in every thread
 *    before any starts; no code runs in a signal handler.
 *
 * Each response is written whole, one line, by the one thread that writes.
 *
 * Shutdown (end of input, or a signal): after end of input the requests in
 * flight get DRAIN_MS to be answered; then qreg_close() cancels every query,
 * releases every connection and calls every watch (QREG_ECLOSED), so every
 * parked request comes back ready and is answered (an error for a wait the
 * close cut short) before the final registry counters are logged as
 * "qreg: closed: connections opened=N closed=N ..." and the process exits 0.
 *
 * Owns: the registry (opened, closed, destroyed here), the message handler,
 * the signal thread, the signal and ready pipes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h" /* the program's number syntax and refusals, shared with qreg query */
#include "mcp/config.h"
#include "mcp/mcp.h"
#include "mcp/protocol.h"
#include "mcp/tools.h" /* TOOLS_MAX_WAIT_S */

#define READ_CHUNK 65536
/* Ready calls run per pass of the loop before standard input is looked at
   again: 10,000 waits ending at once do not hold up a cancel behind them. */
#define READY_BATCH 256
#define DEFAULT_MAX_MESSAGE_BYTES ((size_t)16 << 20)
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)1 << 20)
#define MIN_RESPONSE_BYTES ((size_t)4096)
/* The shortest pollInterval suggested to task pollers (it grows with the
   query's age, tasks.c). */
#define POLL_INTERVAL_MS 100
/* execute_query waits this long for the query by default (--wait). */
#define DEFAULT_WAIT_MS 5000
/* A task-augmented execute_query waits this long before answering: a query
   done by then needs no poll at all. */
#define TASK_WINDOW_MS 1000
#define STOP_SIGNAL SIGUSR1
/* At end of input, requests already read get this long to be answered
   (`printf '...' | qreg mcp` works) before the registry is closed under
   whatever still waits. */
#define DRAIN_MS 2000

/* --- options ------------------------------------------------------------------------ */

typedef struct mcp_options {
  char *db_url;             /* owned */
  bool db_is_default;       /* no --db and no QREG_DB */
  uint64_t max_connections; /* 0: registry default */
  uint64_t timeout_ms;
  uint64_t ttl_ms;
  uint64_t max_rows;
  uint64_t max_records; /* 0: registry default */
  bool allow_writes;
  uint64_t max_message_bytes;
  uint64_t max_response_bytes;
  char *disabled_tools;  /* owned: --disable-tools / QREG_DISABLE_TOOLS, comma-separated */
  char *config_path;     /* owned: --config / QREG_CONFIG */
  bool allow_writes_set; /* --allow-writes or QREG_ALLOW_WRITES given */
  uint64_t wait_ms;      /* wait_set: --wait S, else DEFAULT_WAIT_MS */
  bool wait_set;
  bool help;
} mcp_options_t;

static void usage(FILE *out) {
  qreg_config_t defaults;
  qreg_config_init(&defaults);
  fprintf(out,
          "Usage: qreg mcp [--db URL | --config PATH] [OPTIONS]\n"
          "\n"
          "Serves a qreg registry to an MCP client (Claude Desktop, Claude Code, agents built\n"
          "on the MCP SDKs) over stdio: newline-delimited JSON-RPC 2.0 on standard input and\n"
          "output, logs on standard error. Protocol revisions 2025-06-18 and 2025-11-25\n"
          "(initialize handshake, tasks) and 2026-07-28 (stateless, tasks extension).\n"
          "Tools: execute_query, get_query_status, fetch_query_result, cancel_query,\n"
          "list_queries, forget_query; to explore: list_schemas, list_tables,\n"
          "describe_table, search_columns, sample_table_data, analyze_table_statistics.\n"
          "\n"
          "Options (each also from the environment variable shown; the command line wins):\n"
          "  --db URL                  QREG_DB      the database (forms below). Default:\n"
          "                            sqlite:$XDG_DATA_HOME/qreg/qreg.db\n"
          "                            (~/.local/share/qreg/qreg.db), created empty if missing\n"
          "  --config PATH             QREG_CONFIG  a YAML file naming several databases\n"
          "                            (sources) and their settings; instead of --db. The\n"
          "                            options below (and their variables) override it\n"
          "  --max-connections N       QREG_MAX_CONNECTIONS  database connections at once (%u)\n"
          "  --timeout S               QREG_TIMEOUT  default query timeout in seconds (%llu)\n"
          "  --ttl S                   QREG_TTL      keep finished queries S seconds (%llu)\n"
          "  --wait S                  QREG_WAIT     execute_query and fetch_query_result wait\n"
          "                            up to S seconds for the query to finish and answer\n"
          "                            with its rows; 0: at once (%d)\n"
          "  --max-rows N              QREG_MAX_ROWS rows kept per result (%llu)\n"
          "  --max-records N           QREG_MAX_RECORDS  queries (and tasks) kept at once;\n"
          "                            the oldest finished one makes room (%zu)\n"
          "  --allow-writes            QREG_ALLOW_WRITES=1  allow statements that write\n"
          "                            (default: every query is read-only)\n"
          "  --disable-tools A,B       QREG_DISABLE_TOOLS  switch tools off (names as listed\n"
          "                            above): tools/list leaves them out\n"
          "  --max-message-bytes N     QREG_MAX_MESSAGE_BYTES  longest request line (%zu)\n"
          "  --max-response-bytes N    QREG_MAX_RESPONSE_BYTES  largest page or list response;\n"
          "                            longer ones stop early and say where to go on (%zu)\n"
          "  -h, --help                show this help\n"
          "\n"
          "Ends on end of input, SIGINT or SIGTERM: every query is canceled and every\n"
          "connection closed first; exit status 0. Exit status 1: the registry could not be\n"
          "opened; 2: bad usage.\n"
          "\n"
          "Register with Claude Code:  claude mcp add qreg -- qreg mcp --db sqlite:/path/app.db\n",
          defaults.max_connections, (unsigned long long)(defaults.default_timeout_ms / 1000),
          (unsigned long long)(defaults.default_ttl_ms / 1000), DEFAULT_WAIT_MS / 1000,
          (unsigned long long)defaults.default_max_rows, defaults.max_records,
          DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RESPONSE_BYTES);
  fputs("\nDatabase URLs, and each database's options:\n", out);
  fputs(qreg_drivers_help(), out);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("qreg mcp: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\nTry 'qreg mcp --help'.\n", stderr);
  return 2;
}

static bool parse_bool(const char *text, bool *out) {
  if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on"))
    *out = true;
  else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no") ||
           !strcmp(text, "off") || !*text)
    *out = false;
  else
    return false;
  return true;
}

/* One option that takes a value: its flag, environment variable and parser. */
typedef enum value_kind {
  VALUE_URL,
  VALUE_TOOLS, /* tool names, comma-separated, each one of the tools */
  VALUE_COUNT,
  VALUE_SECONDS,
  VALUE_WAIT /* seconds, 0 allowed, at most TOOLS_MAX_WAIT_S */
} value_kind_t;

typedef struct value_option {
  const char *flag;
  const char *env;
  value_kind_t kind;
  size_t offset; /* of the uint64_t (or char *) in mcp_options_t */
  uint64_t min;
  uint64_t max;
} value_option_t;

static const value_option_t VALUE_OPTIONS[] = {
    {"--db", "QREG_DB", VALUE_URL, offsetof(mcp_options_t, db_url), 0, 0},
    {"--config", "QREG_CONFIG", VALUE_URL, offsetof(mcp_options_t, config_path), 0, 0},
    {"--max-connections", "QREG_MAX_CONNECTIONS", VALUE_COUNT,
     offsetof(mcp_options_t, max_connections), 1, 10000},
    {"--timeout", "QREG_TIMEOUT", VALUE_SECONDS, offsetof(mcp_options_t, timeout_ms), 0, 0},
    {"--ttl", "QREG_TTL", VALUE_SECONDS, offsetof(mcp_options_t, ttl_ms), 0, 0},
    {"--wait", "QREG_WAIT", VALUE_WAIT, offsetof(mcp_options_t, wait_ms), 0, 0},
    {"--disable-tools", "QREG_DISABLE_TOOLS", VALUE_TOOLS, offsetof(mcp_options_t, disabled_tools),
     0, 0},
    {"--max-rows", "QREG_MAX_ROWS", VALUE_COUNT, offsetof(mcp_options_t, max_rows), 1,
     UINT64_C(1000000000)},
    {"--max-records", "QREG_MAX_RECORDS", VALUE_COUNT, offsetof(mcp_options_t, max_records), 1,
     UINT64_C(10000000)},
    {"--max-message-bytes", "QREG_MAX_MESSAGE_BYTES", VALUE_COUNT,
     offsetof(mcp_options_t, max_message_bytes), 1024, (uint64_t)1 << 30},
    {"--max-response-bytes", "QREG_MAX_RESPONSE_BYTES", VALUE_COUNT,
     offsetof(mcp_options_t, max_response_bytes), MIN_RESPONSE_BYTES, (uint64_t)1 << 30},
};
#define VALUE_OPTION_COUNT (sizeof VALUE_OPTIONS / sizeof VALUE_OPTIONS[0])

/* Stores value for option; returns 0 or prints and returns 2. `from` names
   where it came from, for the message. */
static int set_value(mcp_options_t *options, const value_option_t *o, const char *value,
                     const char *from) {
  char *base = (char *)options + o->offset;
  if (o->kind == VALUE_URL) {
    if (!*value)
      return usage_error("%s: the URL is empty", from);
    char **url = (char **)(void *)base;
    free(*url);
    *url = strdup(value);
    return *url ? 0 : usage_error("out of memory");
  }
  if (o->kind == VALUE_TOOLS) {
    /* Each name must be a tool: a typo would leave on what was meant off. */
    const char *p = value;
    while (*p) {
      const char *end = strchr(p, ',');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
      if (len == 0 || len >= sizeof name || !mcp_tools_known(name))
        return usage_error("%s: '%.*s' is not a tool (tools: execute_query, get_query_status, "
                           "fetch_query_result, cancel_query, list_queries, list_schemas, "
                           "list_tables, describe_table, search_columns, sample_table_data, "
                           "analyze_table_statistics)",
                           from, (int)(len < 64 ? len : 64), p);
      p += len + (end ? 1 : 0);
    }
    char **list = (char **)(void *)base;
    free(*list);
    *list = strdup(value);
    return *list ? 0 : usage_error("out of memory");
  }
  uint64_t parsed;
  if (o->kind == VALUE_WAIT) {
    if (strcmp(value, "0") != 0 &&
        (!qreg_cli_parse_seconds(value, &parsed) || parsed > (uint64_t)TOOLS_MAX_WAIT_S * 1000))
      return usage_error("%s: expected seconds from 0 to %d (5, 0.5), not '%s'", from,
                         TOOLS_MAX_WAIT_S, value);
    if (strcmp(value, "0") == 0)
      parsed = 0;
    options->wait_set = true;
  } else if (o->kind == VALUE_SECONDS) {
    if (!qreg_cli_parse_seconds(value, &parsed))
      return usage_error("%s: expected seconds above 0 and at most a year (30, 0.5), not '%s'",
                         from, value);
  } else if (!qreg_cli_parse_count(value, &parsed) || parsed < o->min || parsed > o->max) {
    return usage_error("%s: expected a whole number from %llu to %llu, not '%s'", from,
                       (unsigned long long)o->min, (unsigned long long)o->max, value);
  }
  memcpy(base, &parsed, sizeof parsed);
  return 0;
}

static int parse_options(int argc, char **argv, mcp_options_t *options) {
  memset(options, 0, sizeof *options);
  /* The environment first, so that the command line overrides it. */
  for (size_t i = 0; i < VALUE_OPTION_COUNT; i++) {
    const char *value = getenv(VALUE_OPTIONS[i].env);
    if (value && *value) {
      int rc = set_value(options, &VALUE_OPTIONS[i], value, VALUE_OPTIONS[i].env);
      if (rc)
        return rc;
    }
  }
  const char *writes = getenv("QREG_ALLOW_WRITES");
  if (writes && !parse_bool(writes, &options->allow_writes))
    return usage_error("QREG_ALLOW_WRITES: expected 1, true, yes, 0, false or no, not '%s'",
                       writes);
  options->allow_writes_set = writes != NULL && *writes;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      options->help = true;
      continue;
    }
    if (!strcmp(arg, "--allow-writes")) {
      options->allow_writes = true;
      options->allow_writes_set = true;
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
    int rc = set_value(options, match, value, match->flag);
    if (rc)
      return rc;
  }
  return 0;
}

/* The default database, sqlite:$XDG_DATA_HOME/qreg/qreg.db. Read-only
   connections need the file to exist, and an empty file is an empty SQLite
   database: it is created (with its directory) so the server starts and
   list_tables answers [] rather than every query failing. An explicit --db
   is never created: a typo there should fail loudly. */
static int default_database(mcp_options_t *options) {
  const char *data_home = getenv("XDG_DATA_HOME");
  const char *home = getenv("HOME");
  char dir[PATH_MAX];
  if (data_home && data_home[0] == '/')
    snprintf(dir, sizeof dir, "%s/qreg", data_home);
  else if (home && home[0] == '/')
    snprintf(dir, sizeof dir, "%s/.local/share/qreg", home);
  else
    snprintf(dir, sizeof dir, ".");
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/qreg.db", dir);
  /* mkdir -p, each level 0700: the data of one user. */
  for (char *p = dir + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      (void)mkdir(dir, 0700);
      *p = '/';
    }
  }
  (void)mkdir(dir, 0700);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    close(fd);
    fprintf(stderr, "qreg mcp: created an empty database %s\n", path);
  } else if (errno != EEXIST) {
    fprintf(stderr, "qreg mcp: cannot create %s: %s\n", path, strerror(errno));
  }
  size_t size = strlen(path) + 8;
  options->db_url = malloc(size);
  if (!options->db_url)
    return -1;
  snprintf(options->db_url, size, "sqlite:%s", path);
  options->db_is_default = true;
  return 0;
}

/* --- the process ------------------------------------------------------------------------ */

typedef struct runtime {
  qreg_t *regs[MCP_MAX_SOURCES]; /* owned: one registry per source */
  size_t reg_count;
  mcp_server_t *server; /* owned */
  const char *db_url;   /* borrowed from the options */

  bool output_broken; /* stdout is gone; main thread only */

  pthread_t signal_thread;
  bool signal_started;
  int wake[2];                 /* owned: the signal thread writes, the reader polls */
  _Atomic int signal_received; /* the first shutdown signal, 0 before */
  int ready[2]; /* owned, both ends non-blocking: watch callbacks write, the reader polls */

  mcp_line_buffer_t lines; /* owned, reader only */
} runtime_t;

static void log_line(void *ctx, const char *message) {
  (void)ctx;
  fprintf(stderr, "qreg mcp: %s\n", message);
}

/* Main thread only. */
static void write_output(runtime_t *rt, const char *line, size_t len) {
  while (!rt->output_broken && len > 0) {
    ssize_t n = write(STDOUT_FILENO, line, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      rt->output_broken = true;
      fprintf(stderr, "qreg mcp: standard output is closed (%s); responses are dropped\n",
              n < 0 ? strerror(errno) : "no progress");
      break;
    }
    line += n;
    len -= (size_t)n;
  }
}

static void send_reply(runtime_t *rt, char *reply, size_t len) {
  if (reply) {
    write_output(rt, reply, len);
    free(reply);
  }
}

/* --- parked requests --------------------------------------------------------------------- */

/* The server's waker: a parked call became ready. Called on the registry's
   loop thread (from a watch callback), so it must not block: the pipe is
   non-blocking, and a full pipe already says what this byte would. */
static void wake_ready(void *ctx) {
  runtime_t *rt = ctx;
  ssize_t n;
  do {
    n = write(rt->ready[1], "r", 1);
  } while (n < 0 && errno == EINTR);
}

/* Empties the ready pipe (before the ready list is looked at, so that a
   wake written after this is never lost). */
static void drain_ready_pipe(runtime_t *rt) {
  char bytes[256];
  while (read(rt->ready[0], bytes, sizeof bytes) > 0) {
  }
}

/* Answers up to max ready calls; true if more are ready. */
static bool run_ready(runtime_t *rt, size_t max) {
  for (size_t i = 0; i < max; i++) {
    mcp_call_t *call = mcp_server_next_ready(rt->server);
    if (!call)
      return false;
    size_t len = 0;
    char *reply = mcp_server_run(rt->server, call, &len);
    send_reply(rt, reply, len);
  }
  return true;
}

/* Answers every parked call whose wait reached its deadline first
   (execute_query's wait_seconds): the answer says the query still runs. */
static void run_expired(runtime_t *rt) {
  mcp_call_t *call;
  while ((call = mcp_server_next_expired(rt->server)) != NULL) {
    size_t len = 0;
    char *reply = mcp_server_run(rt->server, call, &len);
    send_reply(rt, reply, len);
  }
}

/* The poll timeout: the nearest deadline of a wait, -1 for none, 0 when
   more ready calls are queued. */
static int poll_timeout(runtime_t *rt, bool more_ready) {
  return more_ready ? 0 : mcp_server_next_deadline(rt->server);
}

/* --- signals --------------------------------------------------------------------------------- */

static void shutdown_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
  sigaddset(set, STOP_SIGNAL);
}

static void *signal_main(void *arg) {
  runtime_t *rt = arg;
  sigset_t set;
  shutdown_signals(&set);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
      continue;
    if (sig == STOP_SIGNAL)
      return NULL;
    if (atomic_load(&rt->signal_received)) {
      fprintf(stderr, "qreg mcp: second signal %d: exiting at once\n", sig);
      _exit(1);
    }
    atomic_store(&rt->signal_received, sig);
    ssize_t n;
    do {
      n = write(rt->wake[1], "x", 1);
    } while (n < 0 && errno == EINTR);
  }
}

/* --- the reader ------------------------------------------------------------------------------ */

static void on_line(void *ctx, const char *line, size_t len) {
  runtime_t *rt = ctx;
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
    i++;
  if (i == len)
    return; /* blank lines are not messages */
  char *reply = NULL;
  size_t reply_len = 0;
  mcp_call_t *call = mcp_server_receive(rt->server, line, len, &reply, &reply_len);
  send_reply(rt, reply, reply_len);
  if (!call)
    return;
  /* Run here and now: it never blocks (a wait parks the call instead). */
  reply = mcp_server_run(rt->server, call, &reply_len);
  send_reply(rt, reply, reply_len);
}

static void on_oversized(void *ctx, size_t size) {
  runtime_t *rt = ctx;
  fprintf(stderr, "qreg mcp: dropped a message of %zu bytes or more\n", size);
  size_t len = 0;
  char *reply = mcp_server_oversized_reply(rt->server, size, &len);
  send_reply(rt, reply, len);
}

/* Reads standard input until its end (returns true) or a shutdown signal. */
static bool read_input(runtime_t *rt) {
  mcp_line_sink_t sink = {.line = on_line, .oversized = on_oversized, .ctx = rt};
  char *chunk = malloc(READ_CHUNK);
  bool end_of_input = false;
  if (!chunk)
    return false;
  bool more_ready = false;
  for (;;) {
    struct pollfd fds[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                            {.fd = rt->wake[0], .events = POLLIN},
                            {.fd = rt->ready[0], .events = POLLIN}};
    int ready = poll(fds, 3, poll_timeout(rt, more_ready));
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "qreg mcp: poll: %s\n", strerror(errno));
      break;
    }
    run_expired(rt);
    if (fds[1].revents) {
      fprintf(stderr, "qreg mcp: signal %d: shutting down\n", atomic_load(&rt->signal_received));
      break;
    }
    if (fds[2].revents)
      drain_ready_pipe(rt);
    if (fds[2].revents || more_ready)
      more_ready = run_ready(rt, READY_BATCH);
    if (!fds[0].revents)
      continue;
    ssize_t n = read(STDIN_FILENO, chunk, READ_CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0) {
      mcp_line_buffer_finish(&rt->lines, &sink);
      fprintf(stderr, "qreg mcp: end of input: shutting down\n");
      end_of_input = true;
      break;
    }
    (void)mcp_line_buffer_feed(&rt->lines, chunk, (size_t)n, &sink);
  }
  free(chunk);
  return end_of_input;
}

/* Gives the requests in flight up to DRAIN_MS to be answered (parked ones
   come back as their queries settle); a signal cuts it short. */
static void drain(runtime_t *rt) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (!mcp_server_idle(rt->server)) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long waited_ms =
        (long)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (waited_ms >= DRAIN_MS)
      break;
    struct pollfd fds[2] = {{.fd = rt->wake[0], .events = POLLIN},
                            {.fd = rt->ready[0], .events = POLLIN}};
    int timeout = (int)(DRAIN_MS - waited_ms);
    int deadline = mcp_server_next_deadline(rt->server);
    if (deadline >= 0 && deadline < timeout)
      timeout = deadline;
    int ready = poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR)
      break;
    run_expired(rt);
    if (ready > 0 && fds[0].revents)
      break;
    if (ready > 0 && fds[1].revents) {
      drain_ready_pipe(rt);
      while (run_ready(rt, READY_BATCH)) {
      }
    }
  }
}

/* --- final report ------------------------------------------------------------------------------ */

/* Descriptors this process has open on files and sockets (what database
   connections hold), from /proc/self/fd; -1 when that cannot be read.
   Pipes and anonymous inodes are left out: libuv keeps a pipe of its own
   for the whole process once a first loop has run. Counted before the
   registry opens and after it is destroyed, the difference is what the
   registry's connections left open: it must be 0. */
static long open_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    return -1;
  long count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.' || strtol(entry->d_name, NULL, 10) == dirfd(dir))
      continue;
    char link[sizeof "/proc/self/fd/" + sizeof entry->d_name];
    char target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%s", entry->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    count += strncmp(target, "pipe:", 5) != 0 && strncmp(target, "anon_inode:", 11) != 0;
  }
  closedir(dir);
  return count;
}

/* The closing line: what the registry opened and closed (counters taken
   after qreg_close, before qreg_destroy) and the descriptors left open. */
static void report_final_stats(const qreg_stats_t *stats, long fds_before, long fds_after) {
  char fds[48] = "";
  if (fds_before >= 0 && fds_after >= 0)
    snprintf(fds, sizeof fds, " leaked_fds=%ld", fds_after - fds_before);
  fprintf(stderr, "qreg: closed: connections opened=%llu closed=%llu connect_failures=%llu%s\n",
          (unsigned long long)stats->connections_opened,
          (unsigned long long)stats->connections_closed,
          (unsigned long long)stats->connect_failures, fds);
}

/* --- main ------------------------------------------------------------------------------------- */

/* A setting of one source: the command line or the environment, else the
   source's own line in the config file, else the file's defaults, else 0
   (the built-in default). */
static uint64_t layered(uint64_t option, uint64_t source, uint64_t defaults) {
  return option ? option : source ? source : defaults;
}

/* Opens the registry of source i (its settings layered as above) into
   rt->regs[i] and describes it in *out. 0, or 1 after saying why. */
static int open_source(runtime_t *rt, size_t i, const mcp_options_t *options,
                       const mcp_config_t *file, const mcp_source_config_t *src,
                       mcp_source_t *out) {
  static const mcp_source_config_t none = {.allow_writes = -1};
  const mcp_source_config_t *defaults = file ? &file->defaults : &none;
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = src->url;
  uint64_t value;
  if ((value =
           layered(options->max_connections, src->max_connections, defaults->max_connections)) != 0)
    config.max_connections = (unsigned)value;
  if ((value = layered(options->timeout_ms, src->timeout_ms, defaults->timeout_ms)) != 0)
    config.default_timeout_ms = value;
  if ((value = layered(options->ttl_ms, src->ttl_ms, defaults->ttl_ms)) != 0)
    config.default_ttl_ms = value;
  if ((value = layered(options->max_rows, src->max_rows, defaults->max_rows)) != 0)
    config.default_max_rows = value;
  if ((value = layered(options->max_records, src->max_records, defaults->max_records)) != 0)
    config.max_records = (size_t)value;
  config.allow_writes = options->allow_writes_set ? options->allow_writes
                        : src->allow_writes >= 0  ? src->allow_writes == 1
                                                  : defaults->allow_writes == 1;
  config.application_name = "qreg-mcp";
  /* Driver options: the defaults', the source's, and the password last. */
  const char *driver_options[130];
  size_t n = 0;
  for (size_t k = 0; k < defaults->option_count && n < 64; k++)
    driver_options[n++] = defaults->options[k];
  for (size_t k = 0; k < src->option_count && n < 128; k++)
    driver_options[n++] = src->options[k];
  char *password = NULL;
  if (src->password) {
    size_t size = strlen(src->password) + sizeof "password=";
    password = malloc(size);
    if (password) {
      snprintf(password, size, "password=%s", src->password);
      driver_options[n++] = password;
    }
  }
  config.driver_options = n ? driver_options : NULL;
  config.driver_option_count = n;
  int rc = qreg_open(&config, &rt->regs[i]);
  if (password) {
    memset(password, 0, strlen(password));
    free(password);
  }
  if (rc < 0) {
    /* Not the URL: it may hold a password (the message never does). */
    fprintf(stderr, "qreg mcp: cannot open the registry%s%s: %s\n", src->name ? " of source " : "",
            src->name ? src->name : "",
            qreg_last_error()[0] ? qreg_last_error() : qreg_strerror(rc));
    return 1;
  }
  rt->reg_count = i + 1;
  *out = (mcp_source_t){
      .name = src->name ? src->name : "default",
      .description = src->description,
      .reg = rt->regs[i],
      .allow_writes = config.allow_writes,
      .timeout_ms = config.default_timeout_ms,
      .disabled_tools = src->disabled_tools,
  };
  char *shown = NULL; /* passwords as "***" */
  (void)qreg_redacted_url(rt->regs[i], &shown);
  fprintf(stderr, "qreg mcp: serving %s%s%s (%s, up to %u connections) on stdio\n",
          src->name ? src->name : "", src->name ? ": " : "", shown ? shown : "the database",
          config.allow_writes           ? "writes allowed"
          : qreg_read_only(rt->regs[i]) ? "read-only"
                                        : "read-only transactions, privileged role allowed",
          config.max_connections);
  free(shown);
  return 0;
}

/* Closes and destroys every registry opened; the sum of their final
   counters into *stats. */
static void close_registries(runtime_t *rt, qreg_stats_t *total) {
  for (size_t i = 0; i < rt->reg_count; i++)
    (void)qreg_close(rt->regs[i]);
  if (rt->server) {
    while (run_ready(rt, SIZE_MAX)) {
    }
  }
  for (size_t i = 0; i < rt->reg_count; i++) {
    qreg_stats_t stats = QREG_STATS_INIT;
    (void)qreg_stats(rt->regs[i], &stats); /* the final counters, until destroy */
    total->connections_opened += stats.connections_opened;
    total->connections_closed += stats.connections_closed;
    total->connect_failures += stats.connect_failures;
  }
}

static void destroy_registries(runtime_t *rt) {
  for (size_t i = 0; i < rt->reg_count; i++)
    qreg_destroy(rt->regs[i]);
  rt->reg_count = 0;
}

static int run(runtime_t *rt, const mcp_options_t *options, const mcp_config_t *file) {
  long fds_before = open_fds();
  mcp_source_t sources[MCP_MAX_SOURCES];
  size_t count = file ? file->source_count : 1;
  const mcp_source_config_t *first = file ? &file->sources[0] : NULL;
  mcp_source_config_t single = {.url = options->db_url, .allow_writes = -1};
  for (size_t i = 0; i < count; i++) {
    if (open_source(rt, i, options, file, file ? &file->sources[i] : &single, &sources[i]) != 0) {
      qreg_stats_t ignored = QREG_STATS_INIT;
      close_registries(rt, &ignored);
      destroy_registries(rt);
      return 1;
    }
  }
  (void)first;
  uint64_t wait_ms = options->wait_set        ? options->wait_ms
                     : file && file->wait_set ? file->wait_ms
                                              : DEFAULT_WAIT_MS;
  uint64_t max_message = layered(options->max_message_bytes, file ? file->max_message_bytes : 0,
                                 DEFAULT_MAX_MESSAGE_BYTES);
  uint64_t max_response = layered(options->max_response_bytes, file ? file->max_response_bytes : 0,
                                  DEFAULT_MAX_RESPONSE_BYTES);
  qreg_config_t defaults;
  qreg_config_init(&defaults);
  mcp_settings_t settings = {
      .max_message_bytes = (size_t)max_message,
      .max_response_bytes = (size_t)max_response,
      .poll_interval_ms = POLL_INTERVAL_MS,
      .wait_ms = wait_ms,
      .task_window_ms = TASK_WINDOW_MS,
      .disabled_tools = options->disabled_tools ? options->disabled_tools
                        : file                  ? file->defaults.disabled_tools
                                                : NULL,
      .ttl_ms = layered(options->ttl_ms, file ? file->defaults.ttl_ms : 0, defaults.default_ttl_ms),
      .timeout_ms = sources[0].timeout_ms,
      .allow_writes = sources[0].allow_writes,
  };
  if (mcp_server_new_sources(sources, count, &settings, &rt->server) < 0) {
    fprintf(stderr, "qreg mcp: out of memory\n");
    qreg_stats_t ignored = QREG_STATS_INIT;
    close_registries(rt, &ignored);
    destroy_registries(rt);
    return 1;
  }
  mcp_server_set_waker(rt->server, wake_ready, rt);
  mcp_server_set_logger(rt->server, log_line, rt);
  mcp_line_buffer_init(&rt->lines, settings.max_message_bytes);

  if (read_input(rt))
    drain(rt);

  /* Stop every query and release every connection. Every watch is called
     before qreg_close() returns, so every parked request is ready now: each
     gets its answer (an error where the close cut its wait short). */
  qreg_stats_t stats = QREG_STATS_INIT;
  close_registries(rt, &stats);
  size_t stranded = mcp_server_parked(rt->server);
  if (stranded)
    fprintf(stderr, "qreg mcp: %zu requests still parked after the close\n", stranded);
  mcp_line_buffer_free(&rt->lines);
  mcp_server_free(rt->server);
  destroy_registries(rt);
  report_final_stats(&stats, fds_before, open_fds());
  return 0;
}

int qreg_mcp_main(int argc, char **argv) {
  mcp_options_t options;
  int rc = parse_options(argc, argv, &options);
  if (rc) {
    free(options.db_url);
    free(options.disabled_tools);
    return rc;
  }
  if (options.help) {
    usage(stdout);
    free(options.db_url);
    free(options.disabled_tools);
    return 0;
  }
  mcp_config_t file;
  bool have_file = options.config_path != NULL;
  if (have_file) {
    char error[768];
    if (options.db_url) {
      rc = usage_error("--db and --config: one or the other (a config file names its "
                       "databases under sources)");
      free(options.db_url);
      free(options.disabled_tools);
      free(options.config_path);
      return rc;
    }
    if (mcp_config_load(options.config_path, mcp_tools_known, &file, error, sizeof error) != 0) {
      fprintf(stderr, "qreg mcp: %s\n", error);
      free(options.disabled_tools);
      free(options.config_path);
      return 2;
    }
  }
  if (!have_file && !options.db_url && default_database(&options) < 0) {
    fprintf(stderr, "qreg mcp: out of memory\n");
    free(options.disabled_tools);
    return 1;
  }

  /* Block the shutdown signals (taken by the signal thread) and SIGPIPE (a
     closed stdout becomes EPIPE) before any thread exists, the registry's
     included, so every thread inherits the mask. */
  sigset_t blocked;
  shutdown_signals(&blocked);
  sigaddset(&blocked, SIGPIPE);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &blocked, &previous);

  runtime_t *rt = calloc(1, sizeof *rt);
  if (!rt || pipe2(rt->wake, O_CLOEXEC) != 0) {
    fprintf(stderr, "qreg mcp: cannot set up: %s\n", strerror(errno));
    free(rt);
    free(options.db_url);
    free(options.disabled_tools);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return 1;
  }
  if (pipe2(rt->ready, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "qreg mcp: cannot set up: %s\n", strerror(errno));
    close(rt->wake[0]);
    close(rt->wake[1]);
    free(rt);
    free(options.db_url);
    free(options.disabled_tools);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return 1;
  }
  rt->db_url = options.db_url;
  rt->signal_started = pthread_create(&rt->signal_thread, NULL, signal_main, rt) == 0;

  rc = run(rt, &options, have_file ? &file : NULL);

  if (rt->signal_started) {
    pthread_kill(rt->signal_thread, STOP_SIGNAL);
    pthread_join(rt->signal_thread, NULL);
  }
  close(rt->wake[0]);
  close(rt->wake[1]);
  close(rt->ready[0]);
  close(rt->ready[1]);
  free(rt);
  free(options.db_url);
  free(options.disabled_tools);
  free(options.config_path);
  if (have_file)
    mcp_config_free(&file);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  return rc;
}
