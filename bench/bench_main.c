/*
 * bench/bench_main.c - qreg_bench, the benchmark program: reads its options,
 * starts a private PostgreSQL server (the tests' fixture,
 * tests/support/pg_fixture.c), makes a small SQLite database, runs every
 * benchmark of bench/ (figures 1-8c of docs/performance.md), then prints one
 * table and writes the JSON file.
 *
 *   qreg_bench [--rounds N] [--scale F] [--json FILE] [--only 1,4,7]
 *              [--qreg PATH]
 *
 * bench/run.sh builds it in Release and runs it; run it directly to repeat
 * one figure. It never fails because of a number: exit 0 whatever the
 * figures say, 1 when a benchmark could not be set up.
 *
 * Owns: the temporary directory of the SQLite database (removed at exit) and,
 * through the fixture, the PostgreSQL server (stopped at exit).
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "support/pg_fixture.h"

static char temp_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void remove_temp_dir(void) {
  if (temp_dir[0] != '\0')
    nftw(temp_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A database file with one small table: qreg opens SQLite read-only, so the
   file must exist and be a database. */
static void make_sqlite_database(char *path, size_t size) {
  snprintf(temp_dir, sizeof temp_dir, "/tmp/qreg-bench-XXXXXX");
  if (mkdtemp(temp_dir) == NULL)
    bench_die("mkdtemp: %s", strerror(errno));
  atexit(remove_temp_dir);
  snprintf(path, size, "%s/bench.db", temp_dir);
  sqlite3 *db = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK ||
      sqlite3_exec(db, "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1);", NULL, NULL, NULL) !=
          SQLITE_OK)
    bench_die("cannot create %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
  sqlite3_close(db);
}

static void usage(FILE *out) {
  fputs("Usage: qreg_bench [--rounds N] [--scale F] [--json FILE] [--only LIST] [--qreg PATH]\n"
        "\n"
        "Runs qreg's benchmarks, each beside its baseline, and prints one table.\n"
        "  --rounds N    repetitions of each measurement (default 5)\n"
        "  --scale F     multiply the counts of the issue by F (default 1; 0.1 for a\n"
        "                quick look - the table says so)\n"
        "  --json FILE   also write the figures there (default: results.json beside\n"
        "                this program)\n"
        "  --only LIST   run only these figures, e.g. 1,4,7\n"
        "  --qreg PATH   the qreg program, for the MCP figures (8a-8c); without\n"
        "                it, figure 8 is skipped\n",
        out);
}

typedef struct benchmark {
  int number;
  bool needs_postgres;
  void (*run)(const bench_context_t *ctx);
} benchmark_t;

static const benchmark_t benchmarks[] = {
    {1, false, bench_latency}, {2, true, bench_throughput}, {3, true, bench_concurrency},
    {4, true, bench_cancel},   {5, true, bench_snapshot},   {6, false, bench_memory},
    {7, true, bench_prune},    {8, false, bench_mcp},       {9, false, bench_fetch},
};
#define BENCHMARK_COUNT (sizeof benchmarks / sizeof benchmarks[0])

static bool selected(const char *only, int number) {
  if (only == NULL)
    return true;
  char copy[128];
  snprintf(copy, sizeof copy, "%s", only);
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    if (atoi(tok) == number)
      return true;
  }
  return false;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
    if (strcmp(argv[2], "memory") == 0)
      return bench_memory_child(argc - 2, argv + 2);
    if (strcmp(argv[2], "mcp-echo") == 0)
      return bench_mcp_echo_child(argc - 2, argv + 2);
    bench_die("unknown child %s", argv[2]);
  }

  bench_context_t ctx = {.rounds = 5, .scale = 1.0};
  const char *json_path = NULL; /* default: results.json beside this program */
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (value == NULL) {
      usage(stderr);
      return 2;
    }
    if (strcmp(arg, "--rounds") == 0)
      ctx.rounds = (unsigned)strtoul(value, NULL, 10);
    else if (strcmp(arg, "--scale") == 0)
      ctx.scale = strtod(value, NULL);
    else if (strcmp(arg, "--json") == 0)
      json_path = value;
    else if (strcmp(arg, "--only") == 0)
      only = value;
    else if (strcmp(arg, "--qreg") == 0)
      ctx.qreg_program = value;
    else {
      usage(stderr);
      return 2;
    }
    i++;
  }
  if (ctx.rounds < 1 || ctx.rounds > 100 || !(ctx.scale > 0 && ctx.scale <= 10)) {
    fprintf(stderr, "qreg_bench: --rounds must be 1..100 and --scale in (0, 10]\n");
    return 2;
  }

  static char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    bench_die("readlink /proc/self/exe: %s", strerror(errno));
  self[n] = '\0';
  ctx.self_path = self;

  static char default_json[PATH_MAX + 16];
  if (json_path == NULL) {
    snprintf(default_json, sizeof default_json, "%s", self);
    char *slash = strrchr(default_json, '/');
    snprintf(slash ? slash + 1 : default_json,
             sizeof default_json - (size_t)(slash ? slash + 1 - default_json : 0), "results.json");
    json_path = default_json;
  }

  uint64_t start = bench_now_ns();
  static char sqlite_path[128];
  make_sqlite_database(sqlite_path, sizeof sqlite_path);
  ctx.sqlite_path = sqlite_path;

  /* Every figure but the MCP one and the fetch one (SQLite) uses the server,
     at least in part. */
  bool want_postgres = false;
  for (size_t i = 0; i < BENCHMARK_COUNT; i++)
    want_postgres = want_postgres || (benchmarks[i].number != 8 && benchmarks[i].number != 9 &&
                                      selected(only, benchmarks[i].number));
  if (want_postgres) {
    bench_progress("starting a private PostgreSQL server (tests/support/pg_fixture.c)");
    int rc = pg_fixture_start();
    if (rc == 0)
      ctx.pg_conninfo = pg_fixture_reader_conninfo(); /* read-only registries refuse a superuser */
    else
      bench_progress("no PostgreSQL server (%s): its figures are skipped",
                     rc == PG_FIXTURE_SKIP ? "binaries not installed" : "it failed to start");
  }

  for (size_t i = 0; i < BENCHMARK_COUNT; i++) {
    const benchmark_t *b = &benchmarks[i];
    if (!selected(only, b->number))
      continue;
    if (b->needs_postgres && ctx.pg_conninfo == NULL) {
      char id[8];
      snprintf(id, sizeof id, "%d", b->number);
      bench_figure_skip(bench_figure_new(id, "(needs PostgreSQL)", "", "", BENCH_GOAL_NONE, 0),
                        "skipped: no PostgreSQL server");
      continue;
    }
    bench_progress("figure %d", b->number);
    b->run(&ctx);
  }

  bench_report(&ctx, json_path, bench_seconds_since(start));
  pg_fixture_shutdown();
  return 0;
}
