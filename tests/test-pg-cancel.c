/*
 * tests/test-pg-cancel.c - stopping statements on a real PostgreSQL server
 * (tests/support/pg_fixture). Cancel of SELECT pg_sleep(60): the record is
 * canceled and the backend no longer runs the statement within a second;
 * then the same for timeout, prune and close with 50 such statements running
 * and 50 more pending. The bound of a second is invariant 4 of DESIGN.md (a
 * correctness bound checked by polling the server, not a benchmark). Also:
 * a cancel that races the statement's start, and a cancel request that
 * cannot reach the server (the registry talks to it through a proxy that
 * stops accepting): the query still ends, canceled with the reason, and the
 * abandoned backend goes away.
 *
 * Owns, in each test, the registry it opens, and the proxy with its threads
 * and sockets; the fixture owns the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#define SLEEP_SQL "SELECT pg_sleep(60)"
#define SLEEP_PART "pg_sleep(60)"
#define RUNNING 50
#define PENDING 50
/* The timeout (and TTL) of a crowd: long enough for RUNNING connections to
   open - each checks its role first (postgres_guard.c) - and start their
   statement on a loaded machine before it expires. */
#define CROWD_DEADLINE_MS 8000

/* One cancel, checked against the server. */
static void cancel_sleep(void **state) {
  (void)state;
  const char *app = "qreg_t_cancel1";
  qreg_t *reg = pg_test_open(NULL, app, 2, false);
  qreg_id_t id = test_execute(reg, SLEEP_SQL, NULL);
  pg_test_wait_active(app, SLEEP_PART, 1);
  long pid = pg_test_backend_pid(reg, &id);

  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  assert_int_equal(test_status(reg, &id), QREG_CANCELED);
  assert_true(pg_admin_wait_backend_stopped(pg_admin(), pid, SLEEP_PART, pg_stopped_ms()));
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  assert_true(s->has_error);
  assert_string_equal(s->error.type, "canceled");
  qreg_snapshot_free(s);

  /* A second cancel changes nothing. */
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* Submits RUNNING statements that start and PENDING that wait behind them,
   all with the given timeout and TTL; returns once the server runs RUNNING. */
static void submit_crowd(qreg_t *reg, const char *app, qreg_id_t *ids, uint64_t timeout_ms,
                         uint64_t ttl_ms) {
  for (int i = 0; i < RUNNING + PENDING; i++)
    ids[i] = test_execute_opts(reg, SLEEP_SQL, timeout_ms, ttl_ms, 0);
  pg_test_wait_active(app, SLEEP_PART, RUNNING);
  for (int i = RUNNING; i < RUNNING + PENDING; i++)
    assert_int_equal(test_status(reg, &ids[i]), QREG_PENDING);
}

static void timeout_crowd(void **state) {
  (void)state;
  const char *app = "qreg_t_timeout50";
  qreg_t *reg = pg_test_open(NULL, app, RUNNING, false);
  qreg_id_t ids[RUNNING + PENDING];
  submit_crowd(reg, app, ids, CROWD_DEADLINE_MS, 0);
  for (int i = 0; i < RUNNING + PENDING; i++)
    assert_int_equal(test_wait(reg, &ids[i]), QREG_TIMEOUT);
  pg_test_assert_no_active(app);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_by_status[QREG_TIMEOUT], RUNNING + PENDING);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_idle, 0); /* timed-out connections are closed */
  pg_test_close_checked(reg, app);
}

static void prune_crowd(void **state) {
  (void)state;
  const char *app = "qreg_t_prune50";
  qreg_t *reg = pg_test_open(NULL, app, RUNNING, false);
  qreg_id_t ids[RUNNING + PENDING];
  submit_crowd(reg, app, ids, 0, CROWD_DEADLINE_MS);
  for (int i = 0; i < RUNNING + PENDING; i++)
    test_wait_pruned(reg, &ids[i]);
  pg_test_assert_no_active(app);
  pg_test_wait_released(reg);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records, 0);
  assert_int_equal(stats.records_pruned, RUNNING + PENDING);
  pg_test_close_checked(reg, app);
}

static void close_crowd(void **state) {
  (void)state;
  const char *app = "qreg_t_close50";
  qreg_t *reg = pg_test_open(NULL, app, RUNNING, false);
  qreg_id_t ids[RUNNING + PENDING];
  submit_crowd(reg, app, ids, 0, 0);
  pg_test_close_checked(reg, app); /* nothing active within a second, then nothing */
}

/* Cancels racing with completions: every record ends exactly once, either
   canceled or succeeded, and nothing is left running. */
static void cancel_races_completion(void **state) {
  (void)state;
  const char *app = "qreg_t_cancelrace";
  qreg_t *reg = pg_test_open(NULL, app, 8, false);
  enum {
    N = 40
  };
  qreg_id_t ids[N];
  for (int i = 0; i < N; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_sleep(%d.0 / 1000)", i % 8);
    ids[i] = test_execute(reg, sql, NULL);
  }
  for (int i = 0; i < N; i += 2) {
    qreg_status_t status;
    assert_int_equal(qreg_cancel(reg, ids[i].str, &status), 0);
    assert_true(status == QREG_CANCELED || status == QREG_SUCCEEDED);
  }
  for (int i = 0; i < N; i++) {
    qreg_status_t status = test_wait(reg, &ids[i]);
    assert_true(status == QREG_CANCELED || status == QREG_SUCCEEDED);
    if (i % 2 == 1)
      assert_int_equal(status, QREG_SUCCEEDED);
  }
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* Cancel at once, before the backend may even have read the statement: a
   cancel the server ignores is repeated, so every one ends canceled. */
static void cancel_right_away(void **state) {
  (void)state;
  const char *app = "qreg_t_cancelnow";
  qreg_t *reg = pg_test_open(NULL, app, 4, false);
  for (int i = 0; i < 20; i++) {
    qreg_id_t warm = test_execute(reg, "SELECT 1", NULL); /* a pooled connection */
    assert_int_equal(test_wait(reg, &warm), QREG_SUCCEEDED);
    qreg_id_t id = test_execute(reg, SLEEP_SQL, NULL);
    qreg_status_t status;
    assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
    assert_int_equal(status, QREG_CANCELED);
  }
  pg_test_assert_no_active(app);
  pg_test_close_checked(reg, app);
}

/* --- a TCP proxy in front of the server --------------------------------- */

enum {
  PROXY_MAX_LINKS = 8
};

typedef struct proxy {
  int listen_fd; /* closed by proxy_refuse() */
  int port;
  atomic_bool refusing;
  pthread_t acceptor;
  pthread_mutex_t lock;
  pthread_t pumps[PROXY_MAX_LINKS]; /* joined by proxy_free() */
  int pump_fds[PROXY_MAX_LINKS][2];
  int link_count;
} proxy_t;

typedef struct pump_arg {
  int a, b;
} pump_arg_t;

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pg_fixture_port())};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* Copies bytes both ways until either side closes. */
static void *pump(void *arg) {
  proxy_t *proxy = arg;
  pthread_mutex_lock(&proxy->lock);
  int index = proxy->link_count - 1;
  int a = proxy->pump_fds[index][0], b = proxy->pump_fds[index][1];
  pthread_mutex_unlock(&proxy->lock);
  char buf[16384];
  for (;;) {
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    if (poll(p, 2, -1) < 0)
      break;
    int from = (p[0].revents != 0) ? a : b, to = from == a ? b : a;
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0 || write(to, buf, (size_t)n) != n)
      break;
  }
  shutdown(a, SHUT_RDWR);
  shutdown(b, SHUT_RDWR);
  return NULL;
}

static void *accept_links(void *arg) {
  proxy_t *proxy = arg;
  while (!atomic_load(&proxy->refusing)) {
    struct pollfd p = {.fd = proxy->listen_fd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0)
      continue;
    int client = accept(proxy->listen_fd, NULL, NULL);
    if (client < 0)
      continue;
    int server = connect_server();
    pthread_mutex_lock(&proxy->lock);
    bool room = server >= 0 && proxy->link_count < PROXY_MAX_LINKS;
    if (room) {
      proxy->pump_fds[proxy->link_count][0] = client;
      proxy->pump_fds[proxy->link_count][1] = server;
      proxy->link_count++;
      if (pthread_create(&proxy->pumps[proxy->link_count - 1], NULL, pump, proxy) != 0)
        proxy->link_count--, room = false;
    }
    pthread_mutex_unlock(&proxy->lock);
    if (!room) {
      close(client);
      if (server >= 0)
        close(server);
    }
  }
  return NULL;
}

static void proxy_start(proxy_t *proxy) {
  memset(proxy, 0, sizeof *proxy);
  pthread_mutex_init(&proxy->lock, NULL);
  proxy->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(proxy->listen_fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  assert_int_equal(bind(proxy->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
  assert_int_equal(listen(proxy->listen_fd, 16), 0);
  assert_int_equal(getsockname(proxy->listen_fd, (struct sockaddr *)&addr, &len), 0);
  proxy->port = ntohs(addr.sin_port);
  assert_int_equal(pthread_create(&proxy->acceptor, NULL, accept_links, proxy), 0);
}

/* From now on connecting to the proxy is refused; links already made go on. */
static void proxy_refuse(proxy_t *proxy) {
  atomic_store(&proxy->refusing, true);
  pthread_join(proxy->acceptor, NULL);
  close(proxy->listen_fd);
}

/* Waits for every link to end (the registry closed its side). */
static void proxy_free(proxy_t *proxy) {
  for (int i = 0; i < proxy->link_count; i++) {
    pthread_join(proxy->pumps[i], NULL);
    close(proxy->pump_fds[i][0]);
    close(proxy->pump_fds[i][1]);
  }
  pthread_mutex_destroy(&proxy->lock);
}

/* The cancel request cannot reach the server: the query still ends -
   canceled, with the reason - its connection is abandoned and closed, and
   the backend, whose client is gone, stops soon after. */
static void cancel_request_fails(void **state) {
  (void)state;
  const char *app = "qreg_t_cancelfail";
  proxy_t proxy;
  proxy_start(&proxy);
  char url[200];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=postgres user=qreg_reader", proxy.port);
  qreg_t *reg = pg_test_open(url, app, 1, false);
  qreg_id_t id = test_execute(reg, SLEEP_SQL, NULL);
  pg_test_wait_active(app, SLEEP_PART, 1);
  long pid = pg_test_backend_pid(reg, &id);
  proxy_refuse(&proxy);

  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  qreg_snapshot_t *s = pg_test_snapshot(reg, &id);
  char message[512];
  snprintf(message, sizeof message, "%s: %s", s->error.type, s->error.message);
  qreg_snapshot_free(s);
  print_message("  %s\n", message);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_idle, 0);

  /* The server notices the client went away (client_connection_check_interval). */
  assert_int_equal(pg_admin_wait_pid_gone(pg_admin(), pid, PG_GONE_MS), 0);
  pg_test_close_checked(reg, app);
  proxy_free(&proxy);
  /* Checked last, so that a failure here leaves nothing behind. */
  if (strstr(message, "cancel request failed") == NULL)
    fail_msg("the record does not say why the cancel did not reach the server: \"%s\"", message);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cancel_sleep),
      cmocka_unit_test(timeout_crowd),
      cmocka_unit_test(prune_crowd),
      cmocka_unit_test(close_crowd),
      cmocka_unit_test(cancel_races_completion),
      cmocka_unit_test(cancel_right_away),
      cmocka_unit_test(cancel_request_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
