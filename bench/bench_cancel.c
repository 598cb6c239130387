/*
 * bench/bench_cancel.c - figure 4: cancelling a running
 * `SELECT pg_sleep(60)`.
 *
 *   4a  time from the call of qreg_cancel to its return (the record is
 *       terminal and its connection released - closed, as after any cancel);
 *   4b  time from the same call until the backend is no longer active in
 *       pg_stat_activity, as seen by a separate admin connection polling
 *       without pause.
 *
 * Baseline, alternating sample by sample: raw libpq on one open connection
 * (PQsendQuery of the same statement, then PQgetCancel + PQcancel + draining
 * PQgetResult until NULL), timed the same two ways. Each sample starts only
 * once the backend is seen running the statement. A round's value is the
 * median of its samples, in milliseconds.
 *
 * Owns, while it runs: one registry, one raw connection, one admin
 * connection (the fixture's pg_admin_open()).
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "support/pg_fixture.h"

#define SLEEP_SQL "SELECT pg_sleep(60)"
#define SLEEP_PART "pg_sleep(60)"
#define BOUND_MS 20000u

typedef struct cancel_sample {
  double returned_ms; /* the cancel call returned */
  double stopped_ms;  /* the backend no longer active */
} cancel_sample_t;

/* Polls until the backend runs the statement; stops the run if it never
   does within the bound. */
static void wait_active(pg_admin_t *admin, long pid) {
  uint64_t deadline = bench_now_ns() + (uint64_t)BOUND_MS * 1000000u;
  while (pg_admin_backend_active(admin, pid, SLEEP_PART) != 1) {
    if (bench_now_ns() > deadline)
      bench_die("backend %ld never ran %s", pid, SLEEP_SQL);
    bench_sleep_ms(1);
  }
}

/* Milliseconds from t0 until the backend is not active any more (polled
   back to back). */
static double wait_stopped_ms(pg_admin_t *admin, long pid, uint64_t t0) {
  uint64_t deadline = t0 + (uint64_t)BOUND_MS * 1000000u;
  for (;;) {
    int active = pg_admin_backend_active(admin, pid, SLEEP_PART);
    uint64_t now = bench_now_ns();
    if (active == 0)
      return (double)(now - t0) / 1e6;
    if (active < 0 || now > deadline)
      bench_die("backend %ld still runs %s after cancel", pid, SLEEP_SQL);
  }
}

static cancel_sample_t qreg_sample(qreg_t *reg, pg_admin_t *admin) {
  qreg_id_t id = bench_execute(reg, SLEEP_SQL, NULL);
  long pid = 0;
  uint64_t deadline = bench_now_ns() + (uint64_t)BOUND_MS * 1000000u;
  while (pid <= 0) {
    qreg_snapshot_t *s = NULL;
    if (qreg_snapshot(reg, id.str, &s) != 0)
      bench_die("qreg_snapshot: %s", qreg_last_error());
    if (s->status == QREG_RUNNING)
      pid = strtol(s->backend_id, NULL, 10);
    else if (s->status != QREG_PENDING)
      bench_die("%s ended %s before it was canceled: %s", SLEEP_SQL, qreg_status_name(s->status),
                s->error.message);
    qreg_snapshot_free(s);
    if (pid <= 0) {
      if (bench_now_ns() > deadline)
        bench_die("%s never started", SLEEP_SQL);
      bench_sleep_ms(1);
    }
  }
  wait_active(admin, pid);

  cancel_sample_t sample;
  qreg_status_t status;
  uint64_t t0 = bench_now_ns();
  int rc = qreg_cancel(reg, id.str, &status);
  sample.returned_ms = (double)(bench_now_ns() - t0) / 1e6;
  if (rc != 0 || status != QREG_CANCELED)
    bench_die("qreg_cancel: %s, status %s", rc ? qreg_last_error() : "ok",
              qreg_status_name(status));
  sample.stopped_ms = wait_stopped_ms(admin, pid, t0);
  return sample;
}

static cancel_sample_t raw_sample(PGconn *conn, pg_admin_t *admin) {
  if (PQsendQuery(conn, SLEEP_SQL) != 1)
    bench_die("libpq PQsendQuery: %s", PQerrorMessage(conn));
  long pid = PQbackendPID(conn);
  wait_active(admin, pid);

  cancel_sample_t sample;
  char error[256];
  uint64_t t0 = bench_now_ns();
  PGcancel *cancel = PQgetCancel(conn);
  if (cancel == NULL || PQcancel(cancel, error, sizeof error) != 1)
    bench_die("libpq PQcancel: %s", cancel ? error : "PQgetCancel failed");
  PQfreeCancel(cancel);
  PGresult *res;
  while ((res = PQgetResult(conn)) != NULL)
    PQclear(res);
  sample.returned_ms = (double)(bench_now_ns() - t0) / 1e6;
  sample.stopped_ms = wait_stopped_ms(admin, pid, t0);
  return sample;
}

void bench_cancel(const bench_context_t *ctx) {
  bench_figure_t *returned = bench_figure_new(
      "4a", "cancel pg_sleep(60): qreg_cancel returns", "ms",
      "raw libpq PQcancel + drain until PQgetResult is NULL", BENCH_GOAL_VALUE_AT_MOST, 5);
  bench_figure_t *stopped =
      bench_figure_new("4b", "cancel pg_sleep(60): backend not active", "ms",
                       "raw libpq PQcancel, the same backend check", BENCH_GOAL_VALUE_AT_MOST, 50);
  unsigned long samples = bench_scaled(ctx, 10, 3);

  qreg_config_t config;
  bench_config(&config, ctx->pg_conninfo, 2);
  qreg_t *reg = bench_open(&config);
  PGconn *conn = bench_pg_connect(ctx, "qreg_bench_raw");
  pg_admin_t *admin = pg_admin_open();
  if (admin == NULL)
    bench_die("no admin connection to the fixture");

  bench_series_t q_ret = {0}, q_stop = {0}, r_ret = {0}, r_stop = {0};
  for (unsigned round = 0; round < ctx->rounds; round++) {
    bench_series_clear(&q_ret);
    bench_series_clear(&q_stop);
    bench_series_clear(&r_ret);
    bench_series_clear(&r_stop);
    for (unsigned long i = 0; i < samples; i++) {
      cancel_sample_t q, r;
      if ((i + round) % 2 == 0) {
        q = qreg_sample(reg, admin);
        r = raw_sample(conn, admin);
      } else {
        r = raw_sample(conn, admin);
        q = qreg_sample(reg, admin);
      }
      bench_series_add(&q_ret, q.returned_ms);
      bench_series_add(&q_stop, q.stopped_ms);
      bench_series_add(&r_ret, r.returned_ms);
      bench_series_add(&r_stop, r.stopped_ms);
    }
    bench_figure_round(returned, bench_series_median(&q_ret), bench_series_median(&r_ret));
    bench_figure_round(stopped, bench_series_median(&q_stop), bench_series_median(&r_stop));
  }
  bench_figure_note(returned,
                    "%lu cancels per side per round, alternating; a round's value "
                    "is the median.",
                    samples);
  bench_figure_note(stopped, "Polled back to back on an admin connection (one poll takes "
                             "~0.1-0.3 ms, which bounds the resolution).");
  bench_series_free(&q_ret);
  bench_series_free(&q_stop);
  bench_series_free(&r_ret);
  bench_series_free(&r_stop);
  pg_admin_close(admin);
  PQfinish(conn);
  bench_close(reg);
}
