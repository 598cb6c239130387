/*
 * bench/bench.h - what the benchmarks of bench/ share: the run's context,
 * clocks, series of measurements, the figures table (one row per figure:
 * qreg, its baseline, their ratio, the goal), the child processes some
 * figures run in, and small helpers to open registries and raw connections.
 *
 * Every benchmark measures qreg and its baseline in the same run, round by
 * round (interleaved where it can be), and records one value per round for
 * each; the report gives the median and the spread (min..max) of the rounds
 * and of the per-round ratios. Nothing here ever judges a number by failing:
 * a goal missed is printed, not asserted.
 *
 * Ownership: bench_util.c owns the figures table (until the process ends);
 * each benchmark owns whatever it opens and closes it before returning.
 * A setup failure (a database that does not answer, a query that fails)
 * makes the run stop with a message (bench_die): its figures would be wrong.
 */
#ifndef QREG_BENCH_BENCH_H
#define QREG_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "qreg.h"

/* What every benchmark gets. */
typedef struct bench_context {
  unsigned rounds;          /* repetitions of each measurement */
  double scale;             /* multiplies the counts (1.0 = as written) */
  const char *pg_conninfo;  /* the fixture's server; NULL when there is none */
  const char *sqlite_path;  /* a small database file made for the run */
  const char *self_path;    /* this program, for child processes */
  const char *qreg_program; /* the qreg program (MCP benchmark); may be NULL */
} bench_context_t;

/* A count of the issue scaled by ctx->scale, at least minimum. */
unsigned long bench_scaled(const bench_context_t *ctx, unsigned long full, unsigned long minimum);
/* "20,000": a count for a title (titles say the counts actually run). */
const char *bench_count_text(unsigned long count, char *buf, size_t size);

/* --- the benchmarks (one file each) ----------------------------------------- */

void bench_latency(const bench_context_t *ctx);     /* 1a, 1b */
void bench_throughput(const bench_context_t *ctx);  /* 2 */
void bench_concurrency(const bench_context_t *ctx); /* 3 */
void bench_cancel(const bench_context_t *ctx);      /* 4a, 4b */
void bench_snapshot(const bench_context_t *ctx);    /* 5 */
void bench_memory(const bench_context_t *ctx);      /* 6a, 6b, 6c */
void bench_prune(const bench_context_t *ctx);       /* 7 */
void bench_mcp(const bench_context_t *ctx);         /* 8a, 8b, 8c */
void bench_fetch(const bench_context_t *ctx);       /* 9 */

/* Child processes (bench_child_run): each prints "value NAME NUMBER" lines. */
int bench_memory_child(int argc, char **argv);
int bench_mcp_echo_child(int argc, char **argv);

/* --- clocks ------------------------------------------------------------------ */

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */
double bench_seconds_since(uint64_t start_ns);
void bench_sleep_ms(unsigned ms);
/* Resident set size of this process in bytes (/proc/self/statm). */
uint64_t bench_rss_bytes(void);
/* A small fast generator (xorshift64*) for picking ids. */
uint64_t bench_rand(uint64_t *state);

/* --- series ------------------------------------------------------------------ */

typedef struct bench_series {
  double *values; /* owned */
  size_t count, cap;
} bench_series_t;

void bench_series_add(bench_series_t *series, double value);
double bench_series_median(const bench_series_t *series);
double bench_series_min(const bench_series_t *series);
double bench_series_max(const bench_series_t *series);
void bench_series_clear(bench_series_t *series);
void bench_series_free(bench_series_t *series);

/* --- figures ------------------------------------------------------------------ */

typedef enum bench_goal_kind {
  BENCH_GOAL_NONE,
  BENCH_GOAL_RATIO_AT_MOST,  /* median ratio qreg / baseline <= goal */
  BENCH_GOAL_RATIO_AT_LEAST, /* median ratio >= goal */
  BENCH_GOAL_VALUE_AT_MOST,  /* median qreg value <= goal */
  BENCH_GOAL_VALUE_AT_LEAST, /* median qreg value >= goal */
} bench_goal_kind_t;

typedef struct bench_figure {
  char id[8];         /* "1a" */
  char title[96];     /* what is measured, through qreg */
  char unit[24];      /* of the values */
  char baseline[128]; /* what the baseline is */
  bench_goal_kind_t goal_kind;
  double goal;
  bench_series_t qreg;  /* one value per round */
  bench_series_t base;  /* the baseline of the same round */
  bench_series_t ratio; /* qreg / base, per round */
  bool skipped;
  char note[768]; /* scale-downs, how it was measured, why skipped */
} bench_figure_t;

/* Adds a row to the report (kept in the order added). */
bench_figure_t *bench_figure_new(const char *id, const char *title, const char *unit,
                                 const char *baseline, bench_goal_kind_t goal_kind, double goal);
/* One round: qreg's value and its baseline's. */
void bench_figure_round(bench_figure_t *figure, double qreg, double baseline);
/* Appends a sentence to the figure's note. */
void bench_figure_note(bench_figure_t *figure, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Marks the figure skipped, with the reason as its note. */
void bench_figure_skip(bench_figure_t *figure, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the table (stdout) and writes the JSON file; the run's facts go
   into both. */
void bench_report(const bench_context_t *ctx, const char *json_path, double run_seconds);

/* --- failures, progress ---------------------------------------------------------- */

/* Prints "qreg_bench: MESSAGE" to stderr and exits 1: a benchmark whose setup
   failed would only print wrong figures. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A line on stderr telling how far the run is. */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- registries and raw connections ------------------------------------------------ */

/* qreg_config_init() plus db_url, max_connections and application_name
   "qreg_bench"; the caller changes more fields and calls bench_open(). */
void bench_config(qreg_config_t *config, const char *db_url, unsigned max_connections);
qreg_t *bench_open(const qreg_config_t *config);
/* qreg_close (which must succeed) then qreg_destroy. */
void bench_close(qreg_t *reg);

/* qreg_execute that must succeed. */
qreg_id_t bench_execute(qreg_t *reg, const char *sql, const qreg_options_t *options);
/* qreg_wait for ever; returns the terminal status. */
qreg_status_t bench_wait(qreg_t *reg, const qreg_id_t *id);
/* bench_wait, and stops the run with the query's error unless it succeeded. */
void bench_wait_succeeded(qreg_t *reg, const qreg_id_t *id, const char *sql);
/* Waits (bounded by timeout_ms) until the registry has this many connections
   in use; false if it never did. */
bool bench_wait_in_use(qreg_t *reg, unsigned count, unsigned timeout_ms);
/* Runs count copies of sql at once and waits for them (warms code, caches
   and some pooled connections). */
void bench_warm_pool(qreg_t *reg, const char *sql, unsigned count);
/* PostgreSQL: makes the pool hold count idle connections before a
   measurement (count pg_sleeps at once, long enough for every connection
   to open, repeated until they all did). */
void bench_fill_pg_pool(qreg_t *reg, unsigned count);

/* A blocking libpq connection to the fixture (application_name app). */
PGconn *bench_pg_connect(const bench_context_t *ctx, const char *app);
/* PQexec that must return tuples or a command status; the result is
   cleared. */
void bench_pg_exec(PGconn *conn, const char *sql);

/* --- child processes ---------------------------------------------------------------- */

/* Values a child printed ("value NAME NUMBER" lines). */
typedef struct bench_child_values {
  size_t count;
  char names[16][48];
  double values[16];
} bench_child_values_t;

/* Runs this program as `self --child ARGS...` (a fresh process, so that its
   memory figures start clean), waits (bounded) and collects its values.
   Exits the run if the child fails. */
void bench_child_run(const bench_context_t *ctx, const char *const *args,
                     bench_child_values_t *out);
/* The value called name; exits the run if the child did not print it. */
double bench_child_value(const bench_child_values_t *values, const char *name);
/* What a child prints. */
void bench_child_print(const char *name, double value);

#endif /* QREG_BENCH_BENCH_H */
