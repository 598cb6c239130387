/*
 * tests/support/pg_fixture.c - a private PostgreSQL server per test process
 * (see pg_fixture.h).
 *
 * Owns, for the life of the test process:
 *  - fixture.dir: a mkdtemp() directory holding data/ (the cluster),
 *    sock/ (the unix socket), server.log and commands.log;
 *  - the server started in it with pg_ctl;
 *  - the guardian: a child process forked before the server starts. It
 *    blocks reading a close-on-exec pipe whose only writer is the test
 *    process, so it wakes up when the test process ends in any way (even
 *    SIGKILL or an ASan abort that skips atexit), then stops the server
 *    (immediate) and removes the directory. pg_fixture_shutdown() just closes
 *    the pipe and waits for the guardian: one cleanup path for every ending.
 *  - the shared admin connection of the main thread.
 * The pg_test_* helpers own nothing: the registries they open belong to the
 * calling test.
 *
 * PostgreSQL refuses to run as root, and CI runs as root: then every server
 * program (initdb, pg_ctl) runs in a forked child that drops to the
 * "postgres" user (or "nobody"), and the directory is chowned to it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/pg_fixture.h"
#include "support/test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_APP "qreg_fixture_admin"
#define SUPERUSER "qreg_test"

struct pg_admin {
  PGconn *conn; /* owned; PQfinish in pg_admin_close */
};

static struct {
  int started; /* 0 not yet, 1 running, <0 the failed result */
  char bindir[512];
  char dir[256]; /* the temporary root; removed by the guardian */
  char data[300];
  char sock[300];
  char server_log[300];
  char command_log[300];
  int port;
  char conninfo[256];
  char reader_conninfo[256];
  uid_t run_uid; /* the server user when we are root */
  gid_t run_gid;
  bool drop_privileges;
  pid_t guardian;  /* 0 when none */
  int guardian_fd; /* write end of the guardian pipe; -1 when closed */
  pg_admin_t *shared_admin;
} fixture = {.guardian_fd = -1};

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- finding PostgreSQL ------------------------------------------------- */

static bool bindir_usable(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/initdb", dir);
  if (access(path, X_OK) != 0)
    return false;
  snprintf(path, sizeof path, "%s/pg_ctl", dir);
  return access(path, X_OK) == 0;
}

/* QREG_PG_BINDIR, then pg_config --bindir, then the newest
   /usr/lib/postgresql/N/bin. */
static bool find_bindir(void) {
  const char *env = getenv("QREG_PG_BINDIR");
  if (env != NULL && bindir_usable(env)) {
    snprintf(fixture.bindir, sizeof fixture.bindir, "%s", env);
    return true;
  }
  FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
  if (p != NULL) {
    char line[512] = "";
    bool got = fgets(line, sizeof line, p) != NULL;
    pclose(p);
    line[strcspn(line, "\r\n")] = '\0';
    if (got && bindir_usable(line)) {
      snprintf(fixture.bindir, sizeof fixture.bindir, "%s", line);
      return true;
    }
  }
  glob_t g;
  bool found = false;
  if (glob("/usr/lib/postgresql/*/bin", 0, NULL, &g) == 0) {
    long best = -1;
    for (size_t i = 0; i < g.gl_pathc; i++) {
      long version = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
      if (version > best && bindir_usable(g.gl_pathv[i])) {
        best = version;
        snprintf(fixture.bindir, sizeof fixture.bindir, "%s", g.gl_pathv[i]);
        found = true;
      }
    }
    globfree(&g);
  }
  return found;
}

/* --- processes ---------------------------------------------------------- */

static void become_server_user(void) {
  if (!fixture.drop_privileges)
    return;
  if (setgroups(0, NULL) != 0 || setgid(fixture.run_gid) != 0 || setuid(fixture.run_uid) != 0) {
    perror("pg_fixture: dropping privileges");
    _exit(126);
  }
}

/* Runs argv (argv[0] is a path) as the server user with output appended to
   commands.log; 0 when it exits with status 0. */
static int run_command(char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(fixture.command_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
      dup2(null_fd, STDIN_FILENO);
      close(null_fd);
    }
    become_server_user();
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void dump_file(const char *path, const char *what) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  fprintf(stderr, "---- %s (%s) ----\n", what, path);
  char line[1024];
  while (fgets(line, sizeof line, f) != NULL)
    fputs(line, stderr);
  fprintf(stderr, "---- end of %s ----\n", what);
  fclose(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static int pg_ctl_stop_immediate(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/pg_ctl", fixture.bindir);
  char *argv[] = {path, "stop", "-D", fixture.data, "-m", "immediate", "-w", "-t", "30", NULL};
  return run_command(argv);
}

/* The guardian's whole life: wait for the test process to end, then clean. */
static void guardian_main(int read_fd) {
  /* Out of the test's process group and deaf to its signals: a ^C or a
     ctest timeout that kills the group must not kill the cleanup too. */
  setsid();
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int null_fd = open("/dev/null", O_RDWR);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    close(null_fd);
  }
  char byte;
  while (read(read_fd, &byte, 1) != 0) {
    if (errno != EINTR && errno != EAGAIN)
      break;
  }
  pg_ctl_stop_immediate();
  nftw(fixture.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  _exit(0);
}

static int start_guardian(void) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return -1;
  fflush(NULL); /* nothing buffered may be written twice */
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[1]);
    guardian_main(fds[0]);
  }
  close(fds[0]);
  fixture.guardian = pid;
  fixture.guardian_fd = fds[1];
  return 0;
}

/* --- the server --------------------------------------------------------- */

int pg_fixture_unused_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
      getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

static int make_directories(void) {
  snprintf(fixture.dir, sizeof fixture.dir, "/tmp/qreg-pg-XXXXXX");
  if (mkdtemp(fixture.dir) == NULL) {
    perror("pg_fixture: mkdtemp");
    return -1;
  }
  snprintf(fixture.data, sizeof fixture.data, "%s/data", fixture.dir);
  snprintf(fixture.sock, sizeof fixture.sock, "%s/sock", fixture.dir);
  snprintf(fixture.server_log, sizeof fixture.server_log, "%s/server.log", fixture.dir);
  snprintf(fixture.command_log, sizeof fixture.command_log, "%s/commands.log", fixture.dir);
  if (mkdir(fixture.sock, 0700) != 0) {
    perror("pg_fixture: mkdir");
    return -1;
  }
  if (fixture.drop_privileges && (chown(fixture.dir, fixture.run_uid, fixture.run_gid) != 0 ||
                                  chown(fixture.sock, fixture.run_uid, fixture.run_gid) != 0)) {
    perror("pg_fixture: chown");
    return -1;
  }
  return 0;
}

static int run_initdb(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/initdb", fixture.bindir);
  char *argv[] = {path,      "-D",        fixture.data, "-A",   "trust",      "-U",
                  SUPERUSER, "--no-sync", "-E",         "UTF8", "--locale=C", "--no-instructions",
                  NULL};
  if (run_command(argv) != 0) {
    fprintf(stderr, "pg_fixture: initdb failed\n");
    dump_file(fixture.command_log, "commands.log");
    return -1;
  }
  /* Password authentication for the one role that tests it, over TCP; trust
     for everything else. First match wins, so qreg_pw's line comes first. */
  char hba[400];
  snprintf(hba, sizeof hba, "%s/pg_hba.conf", fixture.data);
  FILE *f = fopen(hba, "w");
  if (f == NULL) {
    perror("pg_fixture: pg_hba.conf");
    return -1;
  }
  fprintf(f, "local all all trust\n"
             "host all " PG_FIXTURE_PASSWORD_USER " 127.0.0.1/32 scram-sha-256\n"
             "host all all 127.0.0.1/32 trust\n"
             "host all all ::1/128 trust\n");
  fclose(f);
  return 0;
}

/* pg_ctl start, or restart -m immediate (every backend killed at once). */
static int pg_ctl_start_mode(bool restart) {
  char path[600], options[800], timeout[] = "60";
  snprintf(path, sizeof path, "%s/pg_ctl", fixture.bindir);
  snprintf(options, sizeof options,
           "-F -p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
           "-c max_connections=300 -c shared_buffers=32MB -c full_page_writes=off "
           "-c synchronous_commit=off",
           fixture.port, fixture.sock);
  char *start_argv[] = {
      path, "start", "-w", "-t", timeout, "-D", fixture.data, "-l", fixture.server_log,
      "-o", options, NULL};
  char *restart_argv[] = {path, "restart",    "-m", "immediate",        "-w", "-t",    timeout,
                          "-D", fixture.data, "-l", fixture.server_log, "-o", options, NULL};
  return run_command(restart ? restart_argv : start_argv);
}

static int pg_ctl_start(void) {
  return pg_ctl_start_mode(false);
}

static int start_server_on_some_port(void) {
  /* The free port may be taken between the probe and the server's bind
     (other tests run beside us): try a few. */
  for (int attempt = 0; attempt < 5; attempt++) {
    fixture.port = pg_fixture_unused_port();
    if (fixture.port <= 0)
      continue;
    if (pg_ctl_start() == 0)
      return 0;
  }
  fprintf(stderr, "pg_fixture: pg_ctl start failed\n");
  dump_file(fixture.command_log, "commands.log");
  dump_file(fixture.server_log, "server.log");
  return -1;
}

static int setup_roles(void) {
  pg_admin_t *admin = pg_admin();
  if (admin == NULL)
    return -1;
  if (pg_admin_exec(admin, "CREATE ROLE " PG_FIXTURE_PASSWORD_USER
                           " LOGIN PASSWORD '" PG_FIXTURE_PASSWORD "'") != 0 ||
      pg_admin_exec(admin, "CREATE ROLE " PG_FIXTURE_READER_USER " LOGIN") != 0)
    return -1;
  return pg_admin_exec(admin, "GRANT pg_read_all_data TO " PG_FIXTURE_READER_USER);
}

static int start_once(void) {
  if (!find_bindir()) {
    fprintf(stderr, "pg_fixture: no PostgreSQL server binaries (initdb, pg_ctl) found\n");
    return PG_FIXTURE_SKIP;
  }
  if (geteuid() == 0) {
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
      pw = getpwnam("nobody");
    if (pw == NULL) {
      fprintf(stderr, "pg_fixture: running as root and no user to run the server as\n");
      return -1;
    }
    fixture.run_uid = pw->pw_uid;
    fixture.run_gid = pw->pw_gid;
    fixture.drop_privileges = true;
  }
  if (make_directories() != 0)
    return -1;
  /* From here on the guardian removes the directory whatever happens. */
  if (start_guardian() != 0) {
    perror("pg_fixture: guardian");
    nftw(fixture.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return -1;
  }
  atexit(pg_fixture_shutdown);
  if (run_initdb() != 0 || start_server_on_some_port() != 0)
    return -1;
  snprintf(fixture.conninfo, sizeof fixture.conninfo,
           "host=127.0.0.1 port=%d dbname=postgres user=" SUPERUSER, fixture.port);
  snprintf(fixture.reader_conninfo, sizeof fixture.reader_conninfo,
           "host=127.0.0.1 port=%d dbname=postgres user=" PG_FIXTURE_READER_USER, fixture.port);
  if (setup_roles() != 0)
    return -1;
  return 0;
}

int pg_fixture_start(void) {
  if (fixture.started == 0) {
    int rc = start_once();
    fixture.started = rc == 0 ? 1 : (rc > 0 ? -rc : -1);
  }
  if (fixture.started == 1)
    return 0;
  return fixture.started == -PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : -1;
}

void pg_fixture_shutdown(void) {
  if (fixture.shared_admin != NULL) {
    pg_admin_close(fixture.shared_admin);
    fixture.shared_admin = NULL;
  }
  if (fixture.guardian_fd >= 0) {
    close(fixture.guardian_fd);
    fixture.guardian_fd = -1;
  }
  if (fixture.guardian > 0) {
    while (waitpid(fixture.guardian, NULL, 0) < 0 && errno == EINTR) {
    }
    fixture.guardian = 0;
  }
}

const char *pg_fixture_conninfo(void) {
  return fixture.conninfo;
}
const char *pg_fixture_reader_conninfo(void) {
  return fixture.reader_conninfo;
}
const char *pg_fixture_bindir(void) {
  return fixture.bindir;
}
int pg_fixture_port(void) {
  return fixture.port;
}
const char *pg_fixture_socket_dir(void) {
  return fixture.sock;
}

int pg_fixture_server_stop(void) {
  if (fixture.shared_admin != NULL) {
    pg_admin_close(fixture.shared_admin);
    fixture.shared_admin = NULL;
  }
  if (pg_ctl_stop_immediate() != 0) {
    fprintf(stderr, "pg_fixture: pg_ctl stop failed\n");
    dump_file(fixture.command_log, "commands.log");
    return -1;
  }
  return 0;
}

int pg_fixture_server_start(void) {
  if (pg_ctl_start() != 0) {
    fprintf(stderr, "pg_fixture: pg_ctl start (restart) failed\n");
    dump_file(fixture.server_log, "server.log");
    return -1;
  }
  return 0;
}

int pg_fixture_server_restart(void) {
  if (fixture.shared_admin != NULL) {
    pg_admin_close(fixture.shared_admin);
    fixture.shared_admin = NULL;
  }
  if (pg_ctl_start_mode(true) != 0) {
    fprintf(stderr, "pg_fixture: pg_ctl restart -m immediate failed\n");
    dump_file(fixture.command_log, "commands.log");
    dump_file(fixture.server_log, "server.log");
    return -1;
  }
  return 0;
}

/* --- admin connections -------------------------------------------------- */

pg_admin_t *pg_admin_open(void) {
  char conninfo[600];
  snprintf(conninfo, sizeof conninfo,
           "host=%s port=%d dbname=postgres user=" SUPERUSER " application_name=" ADMIN_APP,
           fixture.sock, fixture.port);
  PGconn *conn = PQconnectdb(conninfo);
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "pg_fixture: admin connection: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
  }
  pg_admin_t *admin = calloc(1, sizeof *admin);
  if (admin == NULL) {
    PQfinish(conn);
    return NULL;
  }
  admin->conn = conn;
  return admin;
}

void pg_admin_close(pg_admin_t *admin) {
  if (admin == NULL)
    return;
  PQfinish(admin->conn);
  free(admin);
}

pg_admin_t *pg_admin(void) {
  if (fixture.shared_admin != NULL && PQstatus(fixture.shared_admin->conn) != CONNECTION_OK) {
    pg_admin_close(fixture.shared_admin);
    fixture.shared_admin = NULL;
  }
  if (fixture.shared_admin == NULL)
    fixture.shared_admin = pg_admin_open();
  return fixture.shared_admin;
}

/* Runs sql with text parameters; the caller PQclear()s. NULL on failure,
   with the error on stderr. */
static PGresult *admin_run(pg_admin_t *admin, const char *sql, int nparams,
                           const char *const *params) {
  if (admin == NULL)
    return NULL;
  PGresult *res = PQexecParams(admin->conn, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    fprintf(stderr, "pg_fixture: `%s` failed: %s", sql, PQerrorMessage(admin->conn));
    PQclear(res);
    return NULL;
  }
  return res;
}

static long long result_int(PGresult *res) {
  long long value = -1;
  if (res != NULL && PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
    value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return value;
}

int pg_admin_exec(pg_admin_t *admin, const char *fmt, ...) {
  char *sql;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&sql, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  PGresult *res = admin_run(admin, sql, 0, NULL);
  free(sql);
  PQclear(res);
  return res != NULL ? 0 : -1;
}

long long pg_admin_int(pg_admin_t *admin, const char *fmt, ...) {
  char *sql;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&sql, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  long long value = result_int(admin_run(admin, sql, 0, NULL));
  free(sql);
  return value;
}

int pg_admin_sessions(pg_admin_t *admin, const char *app, const char *state) {
  const char *params[] = {app, state};
  return (int)result_int(admin_run(admin,
                                   "SELECT count(*) FROM pg_stat_activity "
                                   "WHERE application_name = $1 "
                                   "AND ($2::text IS NULL OR state = $2)",
                                   2, params));
}

int pg_admin_wait_sessions(pg_admin_t *admin, const char *app, const char *state, int expected,
                           unsigned timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    int n = pg_admin_sessions(admin, app, state);
    if (n == expected || now_ms() >= deadline)
      return n;
    sleep_ms(10);
  }
}

int pg_admin_backend_active(pg_admin_t *admin, long pid, const char *query_part) {
  char pid_text[32];
  snprintf(pid_text, sizeof pid_text, "%ld", pid);
  const char *params[] = {pid_text, query_part};
  long long n = result_int(admin_run(admin,
                                     "SELECT count(*) FROM pg_stat_activity "
                                     "WHERE pid = $1::int AND state = 'active' "
                                     "AND ($2::text IS NULL OR strpos(query, $2) > 0)",
                                     2, params));
  return n < 0 ? -1 : n > 0;
}

bool pg_admin_wait_backend_stopped(pg_admin_t *admin, long pid, const char *query_part,
                                   unsigned timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    if (pg_admin_backend_active(admin, pid, query_part) == 0)
      return true;
    if (now_ms() >= deadline)
      return false;
    sleep_ms(10);
  }
}

int pg_admin_wait_pid_gone(pg_admin_t *admin, long pid, unsigned timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    if (pg_admin_int(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = %ld", pid) == 0)
      return 0;
    if (now_ms() >= deadline)
      return -1;
    sleep_ms(10);
  }
}

/* --- registries on the fixture ------------------------------------------ */

qreg_t *pg_test_open_config(qreg_config_t *config) {
  if (config->db_url == NULL)
    config->db_url = config->allow_writes ? pg_fixture_conninfo() : pg_fixture_reader_conninfo();
  qreg_t *reg = NULL;
  int rc = qreg_open(config, &reg);
  if (rc != 0)
    fail_msg("qreg_open(%s): %s (%s)", config->db_url, qreg_strerror(rc), qreg_last_error());
  assert_non_null(reg);
  return reg;
}

qreg_t *pg_test_open(const char *url, const char *app, unsigned max_connections,
                     bool allow_writes) {
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  if (app != NULL)
    config.application_name = app;
  if (max_connections != 0)
    config.max_connections = max_connections;
  config.allow_writes = allow_writes;
  return pg_test_open_config(&config);
}

void pg_test_close_checked(qreg_t *reg, const char *app) {
  assert_int_equal(qreg_close(reg), 0);
  pg_test_assert_no_active(app);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, stats.connections_closed);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_idle, 0);
  assert_int_equal(stats.connections_opening, 0);
  qreg_destroy(reg);
  int left = pg_admin_wait_sessions(pg_admin(), app, NULL, 0, PG_GONE_MS);
  if (left != 0)
    fail_msg("%d session(s) of %s still on the server after qreg_close", left, app);
}

void pg_test_wait_released(qreg_t *reg) {
  long long deadline = now_ms() + TEST_BOUND_MS;
  for (;;) {
    qreg_stats_t stats = QREG_STATS_INIT;
    assert_int_equal(qreg_stats(reg, &stats), 0);
    if (stats.connections_in_use == 0)
      return;
    if (now_ms() > deadline)
      fail_msg("%u connection(s) still in use", stats.connections_in_use);
    sleep_ms(5);
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PG_FIXTURE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PG_FIXTURE_SANITIZED 1
#endif
#endif

unsigned pg_stopped_ms(void) {
#ifdef PG_FIXTURE_SANITIZED
  return PG_STOPPED_SANITIZED_MS;
#else
  const char *preload = getenv("LD_PRELOAD");
  if (preload != NULL && strstr(preload, "vgpreload") != NULL)
    return PG_STOPPED_VALGRIND_MS;
  return PG_STOPPED_MS;
#endif
}

void pg_test_assert_no_active(const char *app) {
  int active = pg_admin_wait_sessions(pg_admin(), app, "active", 0, pg_stopped_ms());
  if (active != 0)
    fail_msg("%d session(s) of %s still active on the server", active, app);
}

void pg_test_wait_active(const char *app, const char *query_part, int count) {
  long long deadline = now_ms() + TEST_BOUND_MS;
  for (;;) {
    long long n =
        pg_admin_int(pg_admin(),
                     "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                     "AND state = 'active' AND strpos(query, '%s') > 0",
                     app, query_part);
    if (n == count)
      return;
    if (now_ms() > deadline)
      fail_msg("%lld session(s) of %s running \"%s\", expected %d", n, app, query_part, count);
    sleep_ms(5);
  }
}

qreg_snapshot_t *pg_test_snapshot(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *snapshot = NULL;
  int rc = qreg_snapshot(reg, id->str, &snapshot);
  if (rc != 0)
    fail_msg("qreg_snapshot(%s): %s (%s)", id->str, qreg_strerror(rc), qreg_last_error());
  return snapshot;
}

long pg_test_backend_pid(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *snapshot = pg_test_snapshot(reg, id);
  char *end = NULL;
  long pid = strtol(snapshot->backend_id, &end, 10);
  bool numeric = snapshot->backend_id[0] != '\0' && *end == '\0' && pid > 0;
  if (!numeric) {
    char copy[64];
    snprintf(copy, sizeof copy, "%s", snapshot->backend_id);
    qreg_snapshot_free(snapshot);
    fail_msg("query %s: backend id \"%s\" is not a pid", id->str, copy);
  }
  qreg_snapshot_free(snapshot);
  return pid;
}

void pg_test_assert_failed(qreg_t *reg, const qreg_id_t *id, const char *code,
                           const char *message_part) {
  qreg_snapshot_t *s = pg_test_snapshot(reg, id);
  char seen[1200];
  snprintf(seen, sizeof seen, "status %s, error type \"%s\" code \"%s\" message \"%s\"",
           qreg_status_name(s->status), s->error.type, s->error.code, s->error.message);
  bool ok = s->status == QREG_FAILED && s->has_error && s->error.message[0] != '\0' &&
            (code == NULL || strcmp(s->error.code, code) == 0) &&
            (message_part == NULL || strstr(s->error.message, message_part) != NULL);
  qreg_snapshot_free(s);
  if (!ok)
    fail_msg("query %s: expected failed (code %s, message with \"%s\"), got %s", id->str,
             code ? code : "any", message_part ? message_part : "", seen);
}

void pg_test_assert_not_in_snapshot(qreg_t *reg, const qreg_id_t *id, const char *text) {
  qreg_snapshot_t *s = pg_test_snapshot(reg, id);
  const char *fields[] = {s->error.type,   s->error.message, s->error.code,
                          s->error.detail, s->error.hint,    s->backend_id};
  bool found = false;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    found = found || strstr(fields[i], text) != NULL;
  for (size_t i = 0; i < s->column_count; i++)
    found = found || strstr(s->columns[i].name, text) != NULL;
  qreg_snapshot_free(s);
  if (found)
    fail_msg("query %s: \"%s\" appears in its snapshot", id->str, text);
}
