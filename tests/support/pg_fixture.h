/*
 * tests/support/pg_fixture.h - a private PostgreSQL server for one test
 * process, and the blocking admin helpers the test-pg-* tests use to look at
 * the server's own view of our sessions (pg_stat_activity).
 *
 * The fixture owns: a temporary directory (data, socket and log), the server
 * started in it, a guardian process that stops the server and removes the
 * directory when the test process ends - however it ends (normal exit, failed
 * assertion, crash, SIGKILL) - and one shared admin connection. Nothing here
 * depends on a server that is already running.
 *
 * The server listens on 127.0.0.1 on a free port and on a socket in the
 * private directory. Roles: qreg_test (superuser, trust), qreg_reader
 * (pg_read_all_data, trust: what a read-only registry accepts) and qreg_pw
 * (password PG_FIXTURE_PASSWORD, scram-sha-256 over TCP only), for the
 * wrong-password test.
 *
 * Everything here is for the test's main thread unless it says otherwise;
 * a thread that samples the server opens its own pg_admin_t. The pg_test_*
 * helpers at the end open and close registries on the fixture and check the
 * server's view for cmocka tests (they fail the running test).
 */
#ifndef QREG_TESTS_PG_FIXTURE_H
#define QREG_TESTS_PG_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "qreg.h"

/* Exit code a test returns when no PostgreSQL binaries exist (ctest SKIP). */
#define PG_FIXTURE_SKIP 77

/* An ordinary role that reads everything (pg_read_all_data) and nothing
   more: what a read-only registry accepts (docs/security.md). */
#define PG_FIXTURE_READER_USER "qreg_reader"

/* The password role, for the authentication tests. */
#define PG_FIXTURE_PASSWORD_USER "qreg_pw"
#define PG_FIXTURE_PASSWORD "qreg-fixture-s3cret"

/*
 * Starts the server (once per process: later calls return the first
 * result). 0 on success; PG_FIXTURE_SKIP when no PostgreSQL binaries are
 * installed; -1 on any other failure (the reason and the server log are
 * written to stderr). Registers the shutdown with atexit().
 */
int pg_fixture_start(void);

/* Stops the server and removes its directory now (atexit does it too).
   Idempotent. */
void pg_fixture_shutdown(void);

/* libpq conninfo of the running server, as qreg_test over TCP:
   "host=127.0.0.1 port=N dbname=postgres user=qreg_test". */
const char *pg_fixture_conninfo(void);
int pg_fixture_port(void);
/* The same as PG_FIXTURE_READER_USER: the URL of a read-only registry
   (the superuser's is refused unless allow_privileged_role=true). */
const char *pg_fixture_reader_conninfo(void);
/* The directory of the PostgreSQL programs the fixture runs (initdb,
   pg_ctl, and psql for the tests that compare with it). */
const char *pg_fixture_bindir(void);
/* The private directory holding the server's unix socket. */
const char *pg_fixture_socket_dir(void);

/* A port on 127.0.0.1 nobody listens on (bound then released). */
int pg_fixture_unused_port(void);

/* Stops the server at once (pg_ctl stop -m immediate: backends are killed
   with their queries running). 0 or -1. */
int pg_fixture_server_stop(void);
/* Starts it again on the same port and directory; waits until it accepts
   connections. 0 or -1. */
int pg_fixture_server_start(void);
/* pg_ctl restart -m immediate: every backend killed with its query, the
   server started again on the same port; waits until it accepts
   connections. Main thread (it drops the shared admin connection). 0 or
   -1. */
int pg_fixture_server_restart(void);

/* --- admin connections (blocking libpq) ------------------------------- */

typedef struct pg_admin pg_admin_t;

/* Opens a new admin connection (application_name "qreg_fixture_admin");
   NULL on failure (reason on stderr). Any thread; the caller owns it. */
pg_admin_t *pg_admin_open(void);
void pg_admin_close(pg_admin_t *admin);

/* The shared admin connection of the main thread, opened on first use and
   reopened if the server restarted. */
pg_admin_t *pg_admin(void);

/* Runs SQL (printf-style); 0, or -1 with the error on stderr. */
int pg_admin_exec(pg_admin_t *admin, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs SQL whose first row's first column is an integer; returns it, or
   -1 on error / no row / NULL. */
long long pg_admin_int(pg_admin_t *admin, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sessions in pg_stat_activity whose application_name is app, in the given
   state ("active", "idle", ...) or any state when state is NULL; -1 on
   error. */
int pg_admin_sessions(pg_admin_t *admin, const char *app, const char *state);

/* Polls pg_admin_sessions() every 10 ms until it returns expected or
   timeout_ms passed; returns the last count seen. */
int pg_admin_wait_sessions(pg_admin_t *admin, const char *app, const char *state, int expected,
                           unsigned timeout_ms);

/* 1 when backend pid is active running a statement that contains
   query_part (NULL: any statement), 0 when not (or gone), -1 on error. */
int pg_admin_backend_active(pg_admin_t *admin, long pid, const char *query_part);

/* Polls pg_admin_backend_active() until it answers 0 or timeout_ms passed;
   returns true when the backend stopped running it in time. */
bool pg_admin_wait_backend_stopped(pg_admin_t *admin, long pid, const char *query_part,
                                   unsigned timeout_ms);

/* Polls until backend pid is no longer in pg_stat_activity; 0 when gone
   within timeout_ms, -1 otherwise. */
int pg_admin_wait_pid_gone(pg_admin_t *admin, long pid, unsigned timeout_ms);

/* --- registries on the fixture (for cmocka tests; they fail the test) --- */

/* Bounds on waits for the server's view. A backend must have stopped running
   a cancelled statement within PG_STOPPED_MS (DESIGN.md invariant 4); a
   closed session may take a little longer to leave pg_stat_activity. The
   invariant's 1 s is for a plain build: under ASan or TSan (which slow qreg
   and libpq several times over) the bound is PG_STOPPED_SANITIZED_MS, under
   valgrind PG_STOPPED_VALGRIND_MS (pg_stopped_ms() picks). */
#define PG_STOPPED_MS 1000u
#define PG_STOPPED_SANITIZED_MS 5000u
#define PG_STOPPED_VALGRIND_MS 10000u
#define PG_GONE_MS 10000u

/* Opens a registry on url (NULL: the fixture's conninfo, the reader's for
   a read-only registry) with the given
   application_name (NULL: the default) and max_connections (0: default). */
qreg_t *pg_test_open(const char *url, const char *app, unsigned max_connections, bool allow_writes);

/* The same from a prepared config (db_url NULL: as above). */
qreg_t *pg_test_open_config(qreg_config_t *config);

/* qreg_close, then: no session of app active on the server within
   PG_STOPPED_MS; qreg_stats opened == closed and nothing in use, idle or
   opening; qreg_destroy; no session of app at all on the server within
   PG_GONE_MS. */
void pg_test_close_checked(qreg_t *reg, const char *app);

/* Waits (bounded) until the registry has no connection in use: records
   pruned by the loop's timer leave the store before the driver has drained
   their connections. */
void pg_test_wait_released(qreg_t *reg);

/* The bound of invariant 4 for this build (see PG_STOPPED_MS). */
unsigned pg_stopped_ms(void);

/* No session of app is active on the server (polled up to pg_stopped_ms()). */
void pg_test_assert_no_active(const char *app);

/* Waits (bounded) until count sessions of app are active running a
   statement containing query_part. */
void pg_test_wait_active(const char *app, const char *query_part, int count);

/* A snapshot that must exist; the caller frees it. */
qreg_snapshot_t *pg_test_snapshot(qreg_t *reg, const qreg_id_t *id);

/* The backend pid of a started query (from its snapshot). */
long pg_test_backend_pid(qreg_t *reg, const qreg_id_t *id);

/* Asserts that the query failed with this SQLSTATE (code) and that its
   message contains message_part (either may be NULL: not checked). */
void pg_test_assert_failed(qreg_t *reg, const qreg_id_t *id, const char *code,
                           const char *message_part);

/* Asserts that text appears nowhere in the query's snapshot (SQL aside) -
   error message, detail, hint, code, columns, backend id. */
void pg_test_assert_not_in_snapshot(qreg_t *reg, const qreg_id_t *id, const char *text);

#endif /* QREG_TESTS_PG_FIXTURE_H */
