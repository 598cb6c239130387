/*
 * bench/bench_util.c - the shared parts of bench.h: clocks, series, the
 * figures table and its report (the printed table and the JSON file), the
 * registry and libpq helpers, and child processes.
 *
 * Owns the figures table (figures[], filled by the benchmarks on the main
 * thread, printed once at the end of the run).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FIGURES 24
/* A child that has said nothing for this long is hung: the run stops. */
#define CHILD_BOUND_MS 300000

static bench_figure_t figures[MAX_FIGURES];
static size_t figure_count;

/* --- counts, clocks ------------------------------------------------------------ */

unsigned long bench_scaled(const bench_context_t *ctx, unsigned long full, unsigned long minimum) {
  double scaled = (double)full * ctx->scale;
  unsigned long n = scaled < 1.0 ? 0 : (unsigned long)(scaled + 0.5);
  return n < minimum ? minimum : n;
}

const char *bench_count_text(unsigned long count, char *buf, size_t size) {
  char digits[32];
  snprintf(digits, sizeof digits, "%lu", count);
  size_t len = strlen(digits), n = 0;
  for (size_t i = 0; i < len && n + 2 < size; i++) {
    if (i > 0 && (len - i) % 3 == 0)
      buf[n++] = ',';
    buf[n++] = digits[i];
  }
  buf[n] = '\0';
  return buf;
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_seconds_since(uint64_t start_ns) {
  return (double)(bench_now_ns() - start_ns) / 1e9;
}

void bench_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

uint64_t bench_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    bench_die("cannot open /proc/self/statm: %s", strerror(errno));
  unsigned long long size = 0, resident = 0;
  int got = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  if (got != 2)
    bench_die("cannot read /proc/self/statm");
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t bench_rand(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9e3779b97f4a7c15u;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1du;
}

/* --- series --------------------------------------------------------------------- */

void bench_series_add(bench_series_t *series, double value) {
  if (series->count == series->cap) {
    size_t cap = series->cap ? series->cap * 2 : 16;
    double *grown = realloc(series->values, cap * sizeof *grown);
    if (grown == NULL)
      bench_die("out of memory");
    series->values = grown;
    series->cap = cap;
  }
  series->values[series->count++] = value;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_series_median(const bench_series_t *series) {
  if (series->count == 0)
    return NAN;
  double *sorted = malloc(series->count * sizeof *sorted);
  if (sorted == NULL)
    bench_die("out of memory");
  memcpy(sorted, series->values, series->count * sizeof *sorted);
  qsort(sorted, series->count, sizeof *sorted, compare_doubles);
  size_t mid = series->count / 2;
  double median = series->count % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  free(sorted);
  return median;
}

double bench_series_min(const bench_series_t *series) {
  double v = series->count ? series->values[0] : NAN;
  for (size_t i = 1; i < series->count; i++)
    v = series->values[i] < v ? series->values[i] : v;
  return v;
}

double bench_series_max(const bench_series_t *series) {
  double v = series->count ? series->values[0] : NAN;
  for (size_t i = 1; i < series->count; i++)
    v = series->values[i] > v ? series->values[i] : v;
  return v;
}

void bench_series_clear(bench_series_t *series) {
  series->count = 0;
}

void bench_series_free(bench_series_t *series) {
  free(series->values);
  *series = (bench_series_t){0};
}

/* --- figures --------------------------------------------------------------------- */

bench_figure_t *bench_figure_new(const char *id, const char *title, const char *unit,
                                 const char *baseline, bench_goal_kind_t goal_kind, double goal) {
  if (figure_count == MAX_FIGURES)
    bench_die("too many figures");
  bench_figure_t *f = &figures[figure_count++];
  memset(f, 0, sizeof *f);
  snprintf(f->id, sizeof f->id, "%s", id);
  snprintf(f->title, sizeof f->title, "%s", title);
  snprintf(f->unit, sizeof f->unit, "%s", unit);
  snprintf(f->baseline, sizeof f->baseline, "%s", baseline);
  f->goal_kind = goal_kind;
  f->goal = goal;
  return f;
}

void bench_figure_round(bench_figure_t *figure, double qreg, double baseline) {
  bench_series_add(&figure->qreg, qreg);
  bench_series_add(&figure->base, baseline);
  bench_series_add(&figure->ratio, baseline != 0 ? qreg / baseline : NAN);
}

static void note_append(bench_figure_t *figure, const char *fmt, va_list ap) {
  size_t used = strlen(figure->note);
  if (used > 0 && used + 1 < sizeof figure->note)
    figure->note[used++] = ' ';
  if (used < sizeof figure->note)
    vsnprintf(figure->note + used, sizeof figure->note - used, fmt, ap);
}

void bench_figure_note(bench_figure_t *figure, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  note_append(figure, fmt, ap);
  va_end(ap);
}

void bench_figure_skip(bench_figure_t *figure, const char *fmt, ...) {
  figure->skipped = true;
  figure->note[0] = '\0';
  va_list ap;
  va_start(ap, fmt);
  note_append(figure, fmt, ap);
  va_end(ap);
}

/* --- the report -------------------------------------------------------------------- */

/* Three significant digits, thousands grouped for big values: 0.0123,
   4.56, 789, 12,345. */
static void format_number(double v, char *buf, size_t size) {
  if (isnan(v)) {
    snprintf(buf, size, "-");
    return;
  }
  double a = fabs(v);
  if (a >= 1e6) {
    snprintf(buf, size, "%.3gM", v / 1e6);
  } else if (a >= 1000) {
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", a);
    size_t len = strlen(digits), n = 0;
    char out[48];
    if (v < 0)
      out[n++] = '-';
    for (size_t i = 0; i < len; i++) {
      if (i > 0 && (len - i) % 3 == 0)
        out[n++] = ',';
      out[n++] = digits[i];
    }
    out[n] = '\0';
    snprintf(buf, size, "%s", out);
  } else if (a >= 100) {
    snprintf(buf, size, "%.0f", v);
  } else if (a >= 10) {
    snprintf(buf, size, "%.1f", v);
  } else if (a >= 1) {
    snprintf(buf, size, "%.2f", v);
  } else {
    snprintf(buf, size, "%.3g", v);
  }
}

/* "median [min..max]" of a series. */
static void format_spread(const bench_series_t *s, char *buf, size_t size) {
  char med[32], lo[32], hi[32];
  format_number(bench_series_median(s), med, sizeof med);
  format_number(bench_series_min(s), lo, sizeof lo);
  format_number(bench_series_max(s), hi, sizeof hi);
  if (s->count == 0)
    snprintf(buf, size, "-");
  else if (s->count == 1)
    snprintf(buf, size, "%s", med);
  else
    snprintf(buf, size, "%s [%s..%s]", med, lo, hi);
}

static void format_goal(const bench_figure_t *f, char *buf, size_t size) {
  char g[32];
  format_number(f->goal, g, sizeof g);
  switch (f->goal_kind) {
  case BENCH_GOAL_RATIO_AT_MOST:
    snprintf(buf, size, "ratio <= %s", g);
    break;
  case BENCH_GOAL_RATIO_AT_LEAST:
    snprintf(buf, size, "ratio >= %s", g);
    break;
  case BENCH_GOAL_VALUE_AT_MOST:
    snprintf(buf, size, "<= %s", g);
    break;
  case BENCH_GOAL_VALUE_AT_LEAST:
    snprintf(buf, size, ">= %s", g);
    break;
  case BENCH_GOAL_NONE:
    snprintf(buf, size, "-");
    break;
  }
}

/* "met", "missed", or "" when there is no goal or no data. */
static const char *goal_verdict(const bench_figure_t *f) {
  if (f->skipped || f->qreg.count == 0)
    return "";
  double value = bench_series_median(&f->qreg), ratio = bench_series_median(&f->ratio);
  switch (f->goal_kind) {
  case BENCH_GOAL_RATIO_AT_MOST:
    return ratio <= f->goal ? "met" : "MISSED";
  case BENCH_GOAL_RATIO_AT_LEAST:
    return ratio >= f->goal ? "met" : "MISSED";
  case BENCH_GOAL_VALUE_AT_MOST:
    return value <= f->goal ? "met" : "MISSED";
  case BENCH_GOAL_VALUE_AT_LEAST:
    return value >= f->goal ? "met" : "MISSED";
  case BENCH_GOAL_NONE:
    return "";
  }
  return "";
}

/* The CPU's model name from /proc/cpuinfo. */
static void cpu_model(char *buf, size_t size) {
  snprintf(buf, size, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  char line[256];
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "model name", 10) == 0) {
      const char *colon = strchr(line, ':');
      if (colon != NULL) {
        colon++;
        while (*colon == ' ' || *colon == '\t')
          colon++;
        snprintf(buf, size, "%s", colon);
        buf[strcspn(buf, "\n")] = '\0';
      }
      break;
    }
  }
  fclose(f);
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static void json_number(FILE *out, double v) {
  if (isnan(v) || isinf(v))
    fputs("null", out);
  else
    fprintf(out, "%.6g", v);
}

static void json_series(FILE *out, const char *name, const bench_series_t *s) {
  fprintf(out, "      \"%s\": {\"median\": ", name);
  json_number(out, bench_series_median(s));
  fputs(", \"min\": ", out);
  json_number(out, bench_series_min(s));
  fputs(", \"max\": ", out);
  json_number(out, bench_series_max(s));
  fputs(", \"rounds\": [", out);
  for (size_t i = 0; i < s->count; i++) {
    if (i > 0)
      fputs(", ", out);
    json_number(out, s->values[i]);
  }
  fputs("]}", out);
}

static void write_json(const char *path, const bench_context_t *ctx, const char *cpu, long cpus,
                       const char *kernel, const char *started, double run_seconds) {
  FILE *out = fopen(path, "w");
  if (out == NULL) {
    fprintf(stderr, "qreg_bench: cannot write %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(out, "{\n  \"qreg_version\": \"%s\",\n  \"started\": \"%s\",\n", QREG_VERSION_STRING,
          started);
  fprintf(out, "  \"run_seconds\": %.1f,\n  \"rounds\": %u,\n  \"scale\": %g,\n", run_seconds,
          ctx->rounds, ctx->scale);
  fputs("  \"machine\": {\"nproc\": ", out);
  fprintf(out, "%ld, \"cpu\": ", cpus);
  json_string(out, cpu);
  fputs(", \"kernel\": ", out);
  json_string(out, kernel);
  fprintf(out, ", \"memory_bytes\": %llu},\n",
          (unsigned long long)sysconf(_SC_PHYS_PAGES) * (unsigned long long)sysconf(_SC_PAGESIZE));
  fputs("  \"figures\": [\n", out);
  for (size_t i = 0; i < figure_count; i++) {
    const bench_figure_t *f = &figures[i];
    char goal[48];
    format_goal(f, goal, sizeof goal);
    fputs("    {\"id\": ", out);
    json_string(out, f->id);
    fputs(", \"title\": ", out);
    json_string(out, f->title);
    fputs(", \"unit\": ", out);
    json_string(out, f->unit);
    fputs(", \"baseline_what\": ", out);
    json_string(out, f->baseline);
    fputs(",\n", out);
    json_series(out, "qreg", &f->qreg);
    fputs(",\n", out);
    json_series(out, "baseline", &f->base);
    fputs(",\n", out);
    json_series(out, "ratio", &f->ratio);
    fputs(",\n      \"goal\": ", out);
    json_string(out, goal);
    const char *verdict = goal_verdict(f);
    fprintf(out, ", \"goal_met\": %s, \"skipped\": %s, \"note\": ",
            verdict[0] == '\0'            ? "null"
            : strcmp(verdict, "met") == 0 ? "true"
                                          : "false",
            f->skipped ? "true" : "false");
    json_string(out, f->note);
    fprintf(out, "}%s\n", i + 1 < figure_count ? "," : "");
  }
  fputs("  ]\n}\n", out);
  fclose(out);
}

void bench_report(const bench_context_t *ctx, const char *json_path, double run_seconds) {
  char cpu[128], started[32];
  cpu_model(cpu, sizeof cpu);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  struct utsname uts;
  char kernel[160] = "unknown";
  if (uname(&uts) == 0)
    snprintf(kernel, sizeof kernel, "%s %s", uts.sysname, uts.release);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);

  printf("\nqreg %s benchmarks - %s, %ld CPUs (%s), %s\n", QREG_VERSION_STRING, started, cpus, cpu,
         kernel);
  printf("%u rounds per figure; values are medians of the rounds [min..max]; ratio = qreg / "
         "baseline, per round.\n",
         ctx->rounds);
  if (ctx->scale != 1.0)
    printf("SCALED: counts are %g x those of the issue (titles give the counts run); the goals "
           "were set for the full counts.\n",
           ctx->scale);
  printf("\n");
  printf("%-4s %-50s %-11s %-27s %-27s %-22s %-13s %s\n", "fig", "what (through qreg)", "unit",
         "qreg", "baseline", "ratio", "goal", "");
  for (size_t i = 0; i < figure_count; i++) {
    const bench_figure_t *f = &figures[i];
    char q[128], b[128], r[128], goal[48];
    format_goal(f, goal, sizeof goal);
    if (f->skipped) {
      printf("%-4s %-50s %-11s %s\n", f->id, f->title, f->unit, f->note);
      continue;
    }
    format_spread(&f->qreg, q, sizeof q);
    format_spread(&f->base, b, sizeof b);
    format_spread(&f->ratio, r, sizeof r);
    printf("%-4s %-50s %-11s %-27s %-27s %-22s %-13s %s\n", f->id, f->title, f->unit, q, b, r, goal,
           goal_verdict(f));
  }
  printf("\nBaselines and notes:\n");
  for (size_t i = 0; i < figure_count; i++) {
    const bench_figure_t *f = &figures[i];
    if (f->skipped)
      continue;
    printf("  %-3s baseline: %s.%s%s\n", f->id, f->baseline, f->note[0] ? " " : "", f->note);
  }
  printf("\nWhole run: %.0f s.\n", run_seconds);
  if (json_path != NULL) {
    write_json(json_path, ctx, cpu, cpus, kernel, started, run_seconds);
    printf("JSON: %s\n", json_path);
  }
  fflush(stdout);
}

/* --- failures, progress ------------------------------------------------------------ */

void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("qreg_bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

void bench_progress(const char *fmt, ...) {
  static uint64_t start;
  if (start == 0)
    start = bench_now_ns();
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%6.1f s] ", bench_seconds_since(start));
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* --- registries --------------------------------------------------------------------- */

void bench_config(qreg_config_t *config, const char *db_url, unsigned max_connections) {
  qreg_config_init(config);
  config->db_url = db_url;
  config->max_connections = max_connections;
  config->application_name = "qreg_bench";
}

qreg_t *bench_open(const qreg_config_t *config) {
  qreg_t *reg = NULL;
  int rc = qreg_open(config, &reg);
  if (rc != 0)
    bench_die("qreg_open(%s): %s (%s)", config->db_url, qreg_strerror(rc), qreg_last_error());
  return reg;
}

void bench_close(qreg_t *reg) {
  int rc = qreg_close(reg);
  if (rc != 0)
    bench_die("qreg_close: %s (%s)", qreg_strerror(rc), qreg_last_error());
  qreg_destroy(reg);
}

qreg_id_t bench_execute(qreg_t *reg, const char *sql, const qreg_options_t *options) {
  qreg_id_t id;
  int rc = qreg_execute(reg, sql, options, &id);
  if (rc != 0)
    bench_die("qreg_execute(%s): %s (%s)", sql, qreg_strerror(rc), qreg_last_error());
  return id;
}

qreg_status_t bench_wait(qreg_t *reg, const qreg_id_t *id) {
  qreg_status_t status;
  int rc = qreg_wait(reg, id->str, UINT64_MAX, &status);
  if (rc != 0)
    bench_die("qreg_wait(%s): %s (%s)", id->str, qreg_strerror(rc), qreg_last_error());
  return status;
}

/* The error of a query that should have succeeded, for bench_die. */
static void __attribute__((noreturn))
die_failed(qreg_t *reg, const qreg_id_t *id, const char *sql) {
  qreg_snapshot_t *s = NULL;
  if (qreg_snapshot(reg, id->str, &s) == 0) {
    bench_die("query `%s` ended %s: %s %s: %s", sql, qreg_status_name(s->status), s->error.type,
              s->error.code, s->error.message);
  }
  bench_die("query `%s` did not succeed", sql);
}

void bench_wait_succeeded(qreg_t *reg, const qreg_id_t *id, const char *sql) {
  if (bench_wait(reg, id) != QREG_SUCCEEDED)
    die_failed(reg, id, sql);
}

bool bench_wait_in_use(qreg_t *reg, unsigned count, unsigned timeout_ms) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    qreg_stats_t stats = QREG_STATS_INIT;
    if (qreg_stats(reg, &stats) == 0 && stats.connections_in_use >= count)
      return true;
    if (bench_now_ns() > deadline)
      return false;
    bench_sleep_ms(2);
  }
}

void bench_warm_pool(qreg_t *reg, const char *sql, unsigned count) {
  qreg_id_t *ids = calloc(count, sizeof *ids);
  if (ids == NULL)
    bench_die("out of memory");
  for (unsigned i = 0; i < count; i++)
    ids[i] = bench_execute(reg, sql, NULL);
  for (unsigned i = 0; i < count; i++)
    bench_wait_succeeded(reg, &ids[i], sql);
  free(ids);
}

void bench_fill_pg_pool(qreg_t *reg, unsigned count) {
  for (int attempt = 0; attempt < 5; attempt++) {
    bench_warm_pool(reg, "SELECT pg_sleep(0.3)", count);
    qreg_stats_t stats = QREG_STATS_INIT;
    if (qreg_stats(reg, &stats) == 0 && stats.connections_idle >= count)
      return;
  }
  bench_die("the pool never held %u idle connections", count);
}

/* --- libpq ---------------------------------------------------------------------------- */

PGconn *bench_pg_connect(const bench_context_t *ctx, const char *app) {
  char conninfo[512];
  snprintf(conninfo, sizeof conninfo, "%s application_name=%s", ctx->pg_conninfo, app);
  PGconn *conn = PQconnectdb(conninfo);
  if (PQstatus(conn) != CONNECTION_OK)
    bench_die("libpq connect: %s", PQerrorMessage(conn));
  return conn;
}

void bench_pg_exec(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    bench_die("libpq `%s`: %s", sql, PQerrorMessage(conn));
  PQclear(res);
}

/* --- child processes -------------------------------------------------------------------- */

void bench_child_print(const char *name, double value) {
  printf("value %s %.17g\n", name, value);
  fflush(stdout);
}

static void parse_child_line(char *line, bench_child_values_t *out) {
  char name[48];
  double value;
  if (sscanf(line, "value %47s %lf", name, &value) != 2 ||
      out->count == sizeof out->values / sizeof out->values[0])
    return;
  snprintf(out->names[out->count], sizeof out->names[0], "%s", name);
  out->values[out->count++] = value;
}

void bench_child_run(const bench_context_t *ctx, const char *const *args,
                     bench_child_values_t *out) {
  memset(out, 0, sizeof *out);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    bench_die("pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    const char *argv[24];
    size_t n = 0;
    argv[n++] = ctx->self_path;
    argv[n++] = "--child";
    for (size_t i = 0; args[i] != NULL && n + 1 < sizeof argv / sizeof argv[0]; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(ctx->self_path, (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  size_t used = 0;
  for (;;) {
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    int ready = poll(&p, 1, CHILD_BOUND_MS);
    if (ready == 0) {
      kill(pid, SIGKILL);
      bench_die("child `%s` hung", args[0]);
    }
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      bench_die("poll: %s", strerror(errno));
    }
    ssize_t got = read(fds[0], buf + used, sizeof buf - 1 - used);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    used += (size_t)got;
    buf[used] = '\0';
    char *newline;
    while ((newline = strchr(buf, '\n')) != NULL) {
      *newline = '\0';
      parse_child_line(buf, out);
      size_t rest = used - (size_t)(newline + 1 - buf);
      memmove(buf, newline + 1, rest);
      used = rest;
      buf[used] = '\0';
    }
    if (used == sizeof buf - 1)
      used = 0; /* a line this long is not ours */
  }
  close(fds[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    bench_die("child `%s` failed (status %d)", args[0], status);
}

double bench_child_value(const bench_child_values_t *values, const char *name) {
  for (size_t i = 0; i < values->count; i++) {
    if (strcmp(values->names[i], name) == 0)
      return values->values[i];
  }
  bench_die("a child did not report %s", name);
}
