/*
 * tests/test-pg-loop-lag.c - invariant 6, "the loop never blocks", on
 * PostgreSQL: the loop-lag watchdog (tests/support/loop_watchdog.h) on the
 * registry's own loop thread must stay under LOOP_WATCHDOG_LAG_BOUND_MS
 * while connects go to a server that accepts and never answers, while name
 * resolution takes 1.5 s, and while long statements run, time out and are
 * canceled. The positive control that proves the watchdog can fail is in
 * test-loop-lag.c (blocking_execute_is_caught).
 *
 * How each test fails when the invariant breaks:
 *  - silent_server_connects: a connect that waited for the server on the
 *    loop (PQconnectdb, or PQconnectPoll on a blocking socket) holds the
 *    loop for the whole 2 s connect timeout: lag >= 1 s. The test checks
 *    the connects really reached the silent server (it accepted them).
 *  - slow_name_resolution: getaddrinfo is interposed in this program (the
 *    executable's definition wins over libc's for libpq too, which calls it
 *    through the PLT): for SLOW_HOST it sleeps 1.5 s, then resolves
 *    127.0.0.1. A lookup on the loop thread - the driver's own, or libpq's
 *    inside PQconnectStart when the driver stops resolving on a worker -
 *    shows as >= 1.5 s of lag, and is also counted directly. The test
 *    checks the slow lookup was called at all, or it would prove nothing.
 *  - long_statements: a statement read with a blocking PQexec/PQgetResult
 *    on the loop holds it for the statement's length (1.5 s, or 1 s until
 *    the timeout), and a blocking PQcancel for the cancel's round trip.
 *
 * Every test also asserts the watchdog ticked through the scenario, so a
 * watchdog that never started cannot pass. Waits are bounded only to catch
 * hangs; the one timing assertion is the lag bound the invariant asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/loop_watchdog.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

/* --- slow name resolution ------------------------------------------------- */

#define SLOW_HOST "slow.qreg.test"
#define SLOW_LOOKUP_MS 1500u

typedef int (*getaddrinfo_fn)(const char *node, const char *service, const struct addrinfo *hints,
                              struct addrinfo **res);

static _Atomic(getaddrinfo_fn) real_getaddrinfo;
static atomic_uint slow_lookups;         /* calls for SLOW_HOST */
static atomic_uint slow_lookups_on_loop; /* of them, on the watched loop thread */

/* Interposes libc's getaddrinfo for the whole program (see the header):
   SLOW_HOST takes SLOW_LOOKUP_MS and resolves to 127.0.0.1; every other
   name goes straight to the next definition (libc's, or a sanitizer's
   interceptor in front of it). */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  getaddrinfo_fn real = atomic_load(&real_getaddrinfo);
  if (real == NULL) {
    real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (real == NULL)
      return EAI_SYSTEM;
    atomic_store(&real_getaddrinfo, real);
  }
  if (node != NULL && strcmp(node, SLOW_HOST) == 0) {
    atomic_fetch_add(&slow_lookups, 1);
    if (loop_watchdog_on_loop_thread())
      atomic_fetch_add(&slow_lookups_on_loop, 1);
    test_sleep_ms(SLOW_LOOKUP_MS);
    node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}

/* --- a server that accepts and never answers ------------------------------ */

#define SILENT_MAX_CLIENTS 32

typedef struct silent_server {
  int listen_fd;
  int port;
  atomic_bool stop;
  atomic_uint accepted;
  int clients[SILENT_MAX_CLIENTS]; /* held open, never written; accept thread */
  pthread_t thread;
} silent_server_t;

static void *silent_server_main(void *arg) {
  silent_server_t *server = arg;
  unsigned held = 0;
  while (!atomic_load(&server->stop)) {
    struct pollfd pfd = {.fd = server->listen_fd, .events = POLLIN};
    if (poll(&pfd, 1, 20) <= 0)
      continue;
    int fd = accept(server->listen_fd, NULL, NULL);
    if (fd < 0)
      continue;
    if (held < SILENT_MAX_CLIENTS)
      server->clients[held++] = fd;
    else
      close(fd);
    atomic_fetch_add(&server->accepted, 1);
  }
  for (unsigned i = 0; i < held; i++)
    close(server->clients[i]);
  return NULL;
}

static void silent_server_start(silent_server_t *server) {
  memset(server, 0, sizeof *server);
  server->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(server->listen_fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  assert_int_equal(bind(server->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
  assert_int_equal(listen(server->listen_fd, 16), 0);
  assert_int_equal(getsockname(server->listen_fd, (struct sockaddr *)&addr, &len), 0);
  server->port = ntohs(addr.sin_port);
  assert_int_equal(pthread_create(&server->thread, NULL, silent_server_main, server), 0);
}

static void silent_server_stop(silent_server_t *server) {
  atomic_store(&server->stop, true);
  pthread_join(server->thread, NULL);
  close(server->listen_fd);
}

/* --- tests --------------------------------------------------------------- */

static qreg_t *open_watched(const char *conninfo, const char *app, unsigned max_connections) {
  char url[512];
  snprintf(url, sizeof url, "watched-postgres:%s", conninfo);
  qreg_t *reg = pg_test_open(url, app, max_connections, false);
  loop_watchdog_reset();
  return reg;
}

static int64_t created_to_finished_ms(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = pg_test_snapshot(reg, id);
  int64_t ms = s->finished_ms - s->created_ms;
  qreg_snapshot_free(s);
  return ms;
}

/* Three connects to a server that accepts and never answers: each times out
   after 2 s and its query fails. */
static void silent_server_connects(void **state) {
  (void)state;
  silent_server_t server;
  silent_server_start(&server);
  char conninfo[200];
  snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d connect_timeout=2 user=x dbname=y",
           server.port);
  qreg_t *reg = open_watched(conninfo, "qreg_t_lag_silent", 3);
  qreg_id_t ids[3];
  for (int i = 0; i < 3; i++)
    ids[i] = test_execute(reg, "SELECT 1", NULL);
  for (int i = 0; i < 3; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_FAILED);
  unsigned accepted = atomic_load(&server.accepted);
  print_message("silent server: %u connection(s) accepted and never answered\n", accepted);
  loop_watchdog_assert_responsive("postgres: connects to a silent server", 50);
  if (accepted == 0)
    fail_msg("no connect reached the silent server: the test proved nothing");
  for (int i = 0; i < 3; i++)
    pg_test_assert_failed(reg, &ids[i], NULL, "timed out");
  pg_test_close_checked(reg, "qreg_t_lag_silent");
  silent_server_stop(&server);
}

/* Name resolution of the host takes 1.5 s per connection; the queries
   succeed once it is done. */
static void slow_name_resolution(void **state) {
  (void)state;
  atomic_store(&slow_lookups, 0);
  atomic_store(&slow_lookups_on_loop, 0);
  char conninfo[200];
  snprintf(conninfo, sizeof conninfo,
           "host=" SLOW_HOST " port=%d dbname=postgres user=qreg_reader connect_timeout=10",
           pg_fixture_port());
  qreg_t *reg = open_watched(conninfo, "qreg_t_lag_lookup", 2);
  qreg_id_t ids[2] = {test_execute(reg, "SELECT 1", NULL), test_execute(reg, "SELECT 2", NULL)};
  for (int i = 0; i < 2; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_SUCCEEDED);
  unsigned lookups = atomic_load(&slow_lookups);
  print_message("slow lookups: %u (%u on the loop thread)\n", lookups,
                atomic_load(&slow_lookups_on_loop));
  if (lookups == 0)
    fail_msg("getaddrinfo(\"" SLOW_HOST "\") was never called: the interposition failed and "
             "the test proved nothing");
  /* The slow lookup was on the queries' path. */
  assert_true(created_to_finished_ms(reg, &ids[0]) >= SLOW_LOOKUP_MS - 100);
  loop_watchdog_assert_responsive("postgres: 1.5 s name resolution", 40);
  if (atomic_load(&slow_lookups_on_loop) != 0)
    fail_msg("%u name lookup(s) ran on the loop thread: invariant 6",
             atomic_load(&slow_lookups_on_loop));
  pg_test_close_checked(reg, "qreg_t_lag_lookup");
}

/* pg_sleep statements: one of 1.5 s succeeds, one times out after 1 s, one
   is canceled after that. */
static void long_statements(void **state) {
  (void)state;
  const char *app = "qreg_t_lag_sleep";
  qreg_t *reg = open_watched(pg_fixture_reader_conninfo(), app, 3);
  qreg_id_t ok = test_execute(reg, "SELECT pg_sleep(1.5)", NULL);
  qreg_id_t timed = test_execute_opts(reg, "SELECT pg_sleep(30)", 1000, 0, 0);
  qreg_id_t endless = test_execute(reg, "SELECT pg_sleep(30)", NULL);
  pg_test_wait_active(app, "pg_sleep", 3);
  assert_int_equal(test_wait(reg, &timed), QREG_TIMEOUT);
  assert_int_equal(test_wait(reg, &ok), QREG_SUCCEEDED);
  assert_true(created_to_finished_ms(reg, &ok) >= 1400);
  assert_int_equal(test_status(reg, &endless), QREG_RUNNING);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, endless.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  loop_watchdog_assert_responsive("postgres: pg_sleep, a timeout, a cancel", 40);
  pg_test_close_checked(reg, app);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  loop_watchdog_wrap(&qreg_driver_postgres, "watched-postgres", NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(silent_server_connects),
      cmocka_unit_test(slow_name_resolution),
      cmocka_unit_test(long_statements),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
