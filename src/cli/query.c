/*
 * src/cli/query.c - `qreg query`: runs one SQL statement through a registry
 * opened for it (execute, wait, fetch every page, close) and prints the result
 * with output.c. Ctrl-C cancels the query in the database and exits 130.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked in every thread before the
 * registry starts its own, and one thread of ours takes them with sigwait().
 * No code runs in a signal handler and no registry thread is ever interrupted.
 *
 * Owns, all on the main thread: the registry (opened and destroyed here), the
 * signal thread (started and joined here), the fetched pages, the SQL read
 * from standard input.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"

/* Rows per qreg_fetch call: large enough to be cheap, small enough that a page
   is never a burden of its own. */
#define QUERY_PAGE_ROWS 1000
/* --timeout is refused above a year: a longer one is a typo. */
/* Sent by the main thread to tell the signal thread to finish. */
#define QUERY_STOP_SIGNAL SIGUSR1

typedef struct query_args {
  const char *db_url;        /* borrowed from argv */
  const char *sql;           /* borrowed from argv; "-" means standard input */
  uint64_t timeout_ms;       /* 0: registry default */
  uint64_t max_rows;         /* 0: registry default */
  uint64_t max_result_bytes; /* 0: the registry's whole budget */
  bool allow_writes;
  bool json;
  bool help;
} query_args_t;

/* --- the command line ---------------------------------------------------------- */

void qreg_cli_query_usage(FILE *out) {
  qreg_config_t defaults;
  qreg_config_init(&defaults);
  fprintf(out,
          "Usage: qreg query --db URL [OPTIONS] SQL\n"
          "\n"
          "Runs one SQL statement through a qreg registry and prints its result as an\n"
          "aligned table (or JSON with --json).\n"
          "\n"
          "Options:\n"
          "  --db URL         the database (required), one of the forms below\n"
          "  --timeout S      give up after S seconds (a whole number, or with up to\n"
          "                   three decimals: 0.5); default %llu\n"
          "  --max-rows N     keep at most N rows (default %llu); a longer result is\n"
          "                   cut and marked \"(truncated: max_rows)\"\n"
          "  --max-result-bytes N  keep at most N bytes of result in memory (default\n"
          "                   %llu); a larger result is cut and marked\n"
          "                   \"(truncated: max_result_bytes)\"\n"
          "  --allow-writes   allow a statement that writes (default: read-only)\n"
          "  --json           print {\"columns\":[{\"name\",\"type\"}],\"rows\":[[...]],\n"
          "                   \"row_count\":N,\"truncated\":BOOL,\"truncated_by\":REASON};\n"
          "                   REASON null or max_rows, max_result_bytes, value_too_large\n"
          "                   (docs/mcp.md); values as in docs/values.md (big\n"
          "                   integers as strings, bytes base64)\n"
          "  -h, --help       show this help\n"
          "\n"
          "SQL is exactly one statement; \"-\" reads it from standard input. Options may\n"
          "come before or after it; after \"--\" nothing is an option.\n"
          "\n"
          "Ctrl-C cancels the query (it is stopped in the database, its connection\n"
          "closed) and exits 130; a second Ctrl-C exits at once.\n"
          "\n"
          "Exit status: 0 the query succeeded; 1 it failed, timed out or was canceled\n"
          "(the error goes to standard error as \"error: TYPE CODE: MESSAGE\");\n"
          "2 bad usage or input; 128+N stopped by signal N.\n"
          "\n"
          "Example:\n"
          "  qreg query --db sqlite:build/demo.db \"SELECT name, population FROM cities\"\n",
          (unsigned long long)(defaults.default_timeout_ms / 1000),
          (unsigned long long)defaults.default_max_rows,
          (unsigned long long)defaults.max_result_bytes);
  fputs("\nDatabase URLs, and each database's options:\n", out);
  fputs(qreg_drivers_help(), out);
}

/* Prints "qreg query: MESSAGE" and a pointer to the help; returns 2. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("qreg query: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\nTry 'qreg query --help'.\n", stderr);
  return QREG_CLI_EXIT_USAGE;
}

/* Matches "--name VALUE" and "--name=VALUE"; *index moves past what it used.
   Returns 1 with *value set, 0 if argv[*index] is another option, -1 (after
   printing) if the value is missing. */
static int option_value(int argc, char **argv, int *index, const char *name, const char **value) {
  const char *arg = argv[*index];
  size_t name_len = strlen(name);
  if (strncmp(arg, name, name_len) != 0)
    return 0;
  if (arg[name_len] == '=') {
    *value = arg + name_len + 1;
    return 1;
  }
  if (arg[name_len] != '\0')
    return 0;
  if (*index + 1 >= argc) {
    usage_error("%s needs a value", name);
    return -1;
  }
  *index += 1;
  *value = argv[*index];
  return 1;
}

/* Parses argv (argv[0] is "query"). Returns 0 or an exit status (printed). */
static int parse_args(int argc, char **argv, query_args_t *args) {
  memset(args, 0, sizeof *args);
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = NULL;
    int found;
    if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
      if (args->sql)
        return usage_error("%s", "expected one SQL statement, got more arguments (quote the SQL)");
      args->sql = arg;
    } else if (strcmp(arg, "--") == 0) {
      options_done = true;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      args->help = true;
    } else if (strcmp(arg, "--json") == 0) {
      args->json = true;
    } else if (strcmp(arg, "--allow-writes") == 0) {
      args->allow_writes = true;
    } else if ((found = option_value(argc, argv, &i, "--db", &value)) != 0) {
      if (found < 0)
        return QREG_CLI_EXIT_USAGE;
      if (value[0] == '\0')
        return usage_error("%s", "--db: the URL is empty");
      args->db_url = value;
    } else if ((found = option_value(argc, argv, &i, "--timeout", &value)) != 0) {
      if (found < 0)
        return QREG_CLI_EXIT_USAGE;
      if (!qreg_cli_parse_seconds(value, &args->timeout_ms))
        return usage_error("--timeout: expected seconds above 0 and at most a year, with up to "
                           "three decimals (30, 0.5), not '%s'",
                           value);
    } else if ((found = option_value(argc, argv, &i, "--max-rows", &value)) != 0) {
      if (found < 0)
        return QREG_CLI_EXIT_USAGE;
      if (!qreg_cli_parse_count(value, &args->max_rows) || args->max_rows == 0)
        return usage_error("--max-rows: expected a whole number above 0, not '%s'", value);
    } else if ((found = option_value(argc, argv, &i, "--max-result-bytes", &value)) != 0) {
      if (found < 0)
        return QREG_CLI_EXIT_USAGE;
      if (!qreg_cli_parse_count(value, &args->max_result_bytes) || args->max_result_bytes == 0 ||
          args->max_result_bytes > SIZE_MAX / 2)
        return usage_error("--max-result-bytes: expected a whole number above 0, not '%s'", value);
    } else {
      char shown[64];
      return usage_error("unknown option '%s'", qreg_cli_shown_argument(arg, shown, sizeof shown));
    }
  }
  if (args->help)
    return 0;
  if (!args->db_url)
    return usage_error("%s", "--db URL is required");
  if (!args->sql)
    return usage_error("%s", "no SQL statement given");
  return 0;
}

/* Reads all of standard input, at most limit bytes (more is cut, so that the
   registry refuses the SQL as too long rather than us reading for ever).
   Returns a NUL-terminated buffer the caller frees, or NULL (printed). */
static char *read_stdin(size_t limit, size_t *len_out) {
  size_t cap = 4096;
  size_t len = 0;
  char *data = malloc(cap);
  if (!data)
    goto out_of_memory;
  for (;;) {
    if (len + 1 >= cap) {
      if (cap > limit) /* one byte past the limit is already "too long" */
        break;
      char *bigger = realloc(data, cap * 2);
      if (!bigger)
        goto out_of_memory;
      data = bigger;
      cap *= 2;
    }
    size_t got = fread(data + len, 1, cap - 1 - len, stdin);
    len += got;
    if (got == 0) {
      if (ferror(stdin)) {
        fprintf(stderr, "qreg query: reading SQL from standard input: %s\n", strerror(errno));
        free(data);
        return NULL;
      }
      break;
    }
  }
  data[len] = '\0';
  *len_out = len;
  return data;

out_of_memory:
  free(data);
  fputs("qreg query: out of memory\n", stderr);
  return NULL;
}

/* --- signals ------------------------------------------------------------------- */

typedef struct query_signals {
  sigset_t set;     /* the signals that cancel: written before the thread starts */
  pthread_t thread; /* started by query_signals_start, joined by query_signals_stop */
  bool started;
  pthread_mutex_t mutex; /* guards the fields below, between main and the thread */
  qreg_t *reg;           /* borrowed from main once the registry is open */
  bool have_query;       /* id names the submitted query */
  qreg_id_t id;
  int signal; /* the first signal taken, 0 while none */
} query_signals_t;

/*
 * The signal thread: waits for the first cancelling signal, cancels the query
 * if one has been submitted (qreg_cancel may be called from any thread), then
 * waits for main's stop request. After the first signal this thread unblocks
 * the cancelling signals, so a second Ctrl-C takes its default action and
 * ends the process even if the cancel were stuck.
 */
static void *query_signal_thread(void *arg) {
  query_signals_t *signals = arg;
  sigset_t first = signals->set;
  sigaddset(&first, QUERY_STOP_SIGNAL);
  int signo = 0;
  while (sigwait(&first, &signo) != 0) {
  }
  if (signo == QUERY_STOP_SIGNAL)
    return NULL;

  pthread_mutex_lock(&signals->mutex);
  signals->signal = signo;
  qreg_t *reg = signals->reg;
  bool have_query = signals->have_query;
  qreg_id_t id = signals->id;
  pthread_mutex_unlock(&signals->mutex);

  const int cancelling[] = {SIGINT, SIGTERM, SIGHUP};
  for (size_t i = 0; i < sizeof cancelling / sizeof cancelling[0]; i++)
    signal(cancelling[i], SIG_DFL);
  pthread_sigmask(SIG_UNBLOCK, &signals->set, NULL);
  if (have_query)
    (void)qreg_cancel(reg, id.str, NULL);

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, QUERY_STOP_SIGNAL);
  do {
    signo = 0;
  } while (sigwait(&stop, &signo) != 0 || signo != QUERY_STOP_SIGNAL);
  return NULL;
}

/*
 * Blocks the cancelling signals (and the stop signal) in the calling thread,
 * before the registry creates any thread so that all of them inherit the mask,
 * and starts the signal thread. The signals are taken even when the process
 * was started ignoring them (as a shell starts a background job): an
 * interrupted script still wants its queries stopped and its connections
 * closed, not cut off. Returns 0 or -1 (printed).
 */
static int query_signals_start(query_signals_t *signals) {
  memset(signals, 0, sizeof *signals);
  pthread_mutex_init(&signals->mutex, NULL);
  sigemptyset(&signals->set);
  sigaddset(&signals->set, SIGINT);
  sigaddset(&signals->set, SIGTERM);
  sigaddset(&signals->set, SIGHUP);
  sigset_t block = signals->set;
  sigaddset(&block, QUERY_STOP_SIGNAL);
  pthread_sigmask(SIG_BLOCK, &block, NULL);
  int rc = pthread_create(&signals->thread, NULL, query_signal_thread, signals);
  if (rc != 0) {
    fprintf(stderr, "qreg query: cannot start a thread: %s\n", strerror(rc));
    return -1;
  }
  signals->started = true;
  return 0;
}

/* Stops and joins the signal thread (it may be finishing a cancel first).
   The signals stay blocked in this thread: the process exits right after, and
   a Ctrl-C pending now must not end it before main returns its status. */
static void query_signals_stop(query_signals_t *signals) {
  if (signals->started) {
    pthread_kill(signals->thread, QUERY_STOP_SIGNAL);
    pthread_join(signals->thread, NULL);
    signals->started = false;
  }
  pthread_mutex_destroy(&signals->mutex);
}

/* The signal taken so far, 0 if none. */
static int query_signals_taken(query_signals_t *signals) {
  pthread_mutex_lock(&signals->mutex);
  int signo = signals->signal;
  pthread_mutex_unlock(&signals->mutex);
  return signo;
}

/* --- running the query ----------------------------------------------------------- */

/* Prints a failed qreg_* call and returns the exit status it deserves: bad
   input is a usage error, anything else a failure. */
static int api_error(const char *what, int code) {
  const char *detail = qreg_last_error();
  fprintf(stderr, "qreg query: %s: %s%s%s\n", what, qreg_strerror(code), detail[0] ? ": " : "",
          detail);
  if (code == QREG_EINVAL || code == QREG_EURL || code == QREG_ETOOBIG)
    return QREG_CLI_EXIT_USAGE;
  return QREG_CLI_EXIT_FAILED;
}

/* Prints why a finished query did not succeed: "error: TYPE CODE: MESSAGE". */
static void print_query_error(const qreg_snapshot_t *snapshot) {
  if (!snapshot->has_error) {
    fprintf(stderr, "error: query %s\n", qreg_status_name(snapshot->status));
    return;
  }
  const qreg_error_t *error = &snapshot->error;
  fprintf(stderr, "error: %s%s%s: %s\n", error->type[0] ? error->type : "query",
          error->code[0] ? " " : "", error->code, error->message);
  if (error->detail[0])
    fprintf(stderr, "detail: %s\n", error->detail);
  if (error->hint[0])
    fprintf(stderr, "hint: %s\n", error->hint);
}

typedef struct query_pages {
  qreg_page_t **items; /* owned, each freed with qreg_page_free */
  size_t count;
  size_t cap;
} query_pages_t;

static void query_pages_free(query_pages_t *pages) {
  for (size_t i = 0; i < pages->count; i++)
    qreg_page_free(pages->items[i]);
  free(pages->items);
  memset(pages, 0, sizeof *pages);
}

/* Fetches every page of a succeeded query. Returns 0, an exit status
   (printed), or 128 + a signal taken meanwhile. */
static int fetch_all(qreg_t *reg, const char *id, query_signals_t *signals, query_pages_t *pages) {
  uint64_t offset = 0;
  for (;;) {
    int signo = query_signals_taken(signals);
    if (signo)
      return QREG_CLI_EXIT_SIGNAL_BASE + signo;
    qreg_page_t *page = NULL;
    int rc = qreg_fetch(reg, id, offset, QUERY_PAGE_ROWS, &page);
    if (rc == QREG_ENORESULT && offset == 0)
      return 0; /* no result set: pages stays empty */
    if (rc < 0)
      return api_error("fetching the result", rc);
    if (pages->count == pages->cap) {
      size_t cap = pages->cap ? pages->cap * 2 : 8;
      qreg_page_t **items =
          realloc(pages->items,
                  cap * sizeof *items); // NOLINT(bugprone-sizeof-expression): an array of pointers
      if (!items) {
        qreg_page_free(page);
        fputs("qreg query: out of memory\n", stderr);
        return QREG_CLI_EXIT_FAILED;
      }
      pages->items = items;
      pages->cap = cap;
    }
    pages->items[pages->count++] = page;
    offset += page->row_count;
    if (!page->has_more || page->row_count == 0)
      return 0;
  }
}

/* Prints the result; returns an exit status. */
static int print_result(const query_args_t *args, const query_pages_t *pages) {
  int rc = args->json ? qreg_cli_print_json(stdout, pages->items, pages->count)
                      : qreg_cli_print_table(stdout, pages->items, pages->count);
  if (rc != 0) {
    fputs("qreg query: out of memory\n", stderr);
    return QREG_CLI_EXIT_FAILED;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    /* A reader that went away (`| head`) is no news to anyone. */
    if (errno != EPIPE)
      fprintf(stderr, "qreg query: writing the result: %s\n", strerror(errno));
    return QREG_CLI_EXIT_FAILED;
  }
  return QREG_CLI_EXIT_OK;
}

/* Submits, waits, fetches and prints, with the registry open. Returns the
   exit status. */
static int run_query(qreg_t *reg, const query_args_t *args, const char *sql, size_t sql_len,
                     query_signals_t *signals) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = args->timeout_ms;
  options.max_rows = args->max_rows;
  options.allow_writes = args->allow_writes;
  /* One statement: it may have the registry's whole budget. */
  options.max_result_bytes = (size_t)args->max_result_bytes;
  if (options.max_result_bytes == 0) {
    qreg_config_t defaults;
    qreg_config_init(&defaults);
    options.max_result_bytes = defaults.max_result_bytes;
  }

  qreg_id_t id;
  int rc = qreg_execute_n(reg, sql, sql_len, &options, &id);
  if (rc < 0)
    return api_error("cannot run the query", rc);

  /* From here a signal cancels this query: the signal thread does it if the
     signal comes later, we do it if it came already. */
  pthread_mutex_lock(&signals->mutex);
  signals->id = id;
  signals->have_query = true;
  int signo = signals->signal;
  pthread_mutex_unlock(&signals->mutex);
  if (signo)
    (void)qreg_cancel(reg, id.str, NULL);

  qreg_status_t status;
  rc = qreg_wait(reg, id.str, UINT64_MAX, &status);
  if (rc < 0)
    return api_error("waiting for the query", rc);
  signo = query_signals_taken(signals);
  if (signo) {
    fputs("qreg query: canceled\n", stderr);
    return QREG_CLI_EXIT_SIGNAL_BASE + signo;
  }

  if (status != QREG_SUCCEEDED) {
    qreg_snapshot_t *snapshot = NULL;
    rc = qreg_snapshot(reg, id.str, &snapshot);
    if (rc < 0)
      return api_error("reading the query's state", rc);
    print_query_error(snapshot);
    qreg_snapshot_free(snapshot);
    return QREG_CLI_EXIT_FAILED;
  }

  query_pages_t pages = {0};
  int exit_status = fetch_all(reg, id.str, signals, &pages);
  if (exit_status == 0)
    exit_status = print_result(args, &pages);
  query_pages_free(&pages);
  return exit_status;
}

int qreg_cli_query_main(int argc, char **argv) {
  query_args_t args;
  int exit_status = parse_args(argc, argv, &args);
  if (exit_status != 0)
    return exit_status;
  if (args.help) {
    qreg_cli_query_usage(stdout);
    return QREG_CLI_EXIT_OK;
  }

  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = args.db_url;
  config.max_connections = 1; /* one statement */
  if (args.max_result_bytes > config.max_result_bytes)
    config.max_result_bytes = (size_t)args.max_result_bytes;
  config.allow_writes = args.allow_writes;

  assert(args.sql); /* parse_args insists on it */
  const char *sql = args.sql;
  size_t sql_len = strlen(sql);
  char *stdin_sql = NULL; /* owned: SQL read from standard input */
  if (strcmp(sql, "-") == 0) {
    stdin_sql = read_stdin(config.max_sql_bytes, &sql_len);
    if (!stdin_sql)
      return QREG_CLI_EXIT_FAILED;
    sql = stdin_sql;
  }

  /* A reader that closes the pipe must not kill us before the registry is
     closed: write errors are handled where the result is printed. */
  signal(SIGPIPE, SIG_IGN);
  query_signals_t signals;
  if (query_signals_start(&signals) != 0) {
    query_signals_stop(&signals);
    free(stdin_sql);
    return QREG_CLI_EXIT_FAILED;
  }

  qreg_t *reg = NULL;
  int rc = qreg_open(&config, &reg);
  if (rc < 0) {
    exit_status = api_error("cannot open the registry", rc);
  } else {
    pthread_mutex_lock(&signals.mutex);
    signals.reg = reg;
    pthread_mutex_unlock(&signals.mutex);
    exit_status = run_query(reg, &args, sql, sql_len, &signals);
  }

  /* The signal thread lives on through qreg_close, so a second Ctrl-C still
     ends a close that would not; it may be inside qreg_cancel (which may race
     with qreg_close), and is joined before qreg_destroy, which races nothing. */
  if (reg)
    (void)qreg_close(reg);
  query_signals_stop(&signals);
  if (reg)
    qreg_destroy(reg);
  free(stdin_sql);
  return exit_status;
}
