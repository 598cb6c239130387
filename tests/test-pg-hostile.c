/*
 * tests/test-pg-hostile.c - the PostgreSQL half of the hostile-statement
 * catalogue (the SQLite half is tests/test-sqlite-guard.c): statements an
 * attacker would send through a read-only registry, each refused with a
 * clear error or proven harmless by its effect, on a real server
 * (tests/support/pg_fixture). docs/security.md says what is blocked.
 *
 * The catalogue runs as an ordinary role (the fixture's qreg_reader:
 * pg_read_all_data) on a registry with one connection, so the probe that
 * follows each statement runs on the same pooled session when it was kept.
 * After every statement the test checks, by effect: no file written, no
 * row, no sequence value, no large object, no replication slot, no new
 * role or membership, both victim sessions (the superuser's and another
 * ordinary role's, opened with libpq) still alive and no notification
 * reached them, and the next query sees the session exactly as before (the
 * probe: settings, prepared statements, cursors, LISTEN, advisory locks,
 * temporary relations, the current role). The statements that only leave
 * session state also run as the superuser with allow_privileged_role=true:
 * the pool's reset holds for it too.
 *
 * Also: a superuser, a member of a superuser role, a role with
 * REPLICATION, BYPASSRLS, a (transitive) member of the server-file and
 * signalling roles, a role granted pg_reload_conf, and a role that can use
 * dblink are refused at connect with the privilege named and the way to
 * make a read-only role (also through qreg query and MCP); with
 * allow_privileged_role=true the superuser works and qreg_read_only(),
 * MCP's readOnlyHint and its instructions stop claiming read-only; LOAD closes
 * the session; a role that can use a foreign server is never pooled; the
 * documented REVOKE stops a role from terminating its own other sessions.
 *
 * Owns, in each test, the registries it opens and the victim sessions; the
 * roles, tables and databases it creates live as long as the fixture's
 * server (the process).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcp/protocol.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

#define APP "qreg_t_hostile"
#define OTHER_ROLE "qreg_hostile_other"

/* The state the next query sees, as one text. */
#define PROBE_SQL                                                                                  \
  "SELECT concat_ws('|', current_setting('search_path'), current_setting('work_mem'), "            \
  "current_setting('default_transaction_read_only'), current_setting('DateStyle'), "               \
  "current_user, session_user, "                                                                   \
  "(SELECT count(*) FROM pg_prepared_statements), "                                                \
  "(SELECT count(*) FROM pg_cursors WHERE name <> ''), "                                           \
  "(SELECT count(*) FROM pg_listening_channels()), "                                               \
  "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), "       \
  "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()))"

/* Expected: refused with this SQLSTATE (or one of these, space-separated),
   or (NULL) harmless whatever it returns - the effect checks decide. */
typedef struct hostile {
  const char *sql; /* may hold %s: the file prefix, or %d: a victim pid */
  const char *code;
  bool state_only; /* only session state: also run as the opted-in superuser */
} hostile_t;

static char file_prefix[64]; /* /tmp/qreg-hostile-PID */
static PGconn *victim_super, *victim_other;
static int victim_super_pid, victim_other_pid;

static const hostile_t catalogue[] = {
    /* Files and programs on the server. */
    {"COPY (SELECT 1) TO '%s-copy'", "42501", false},
    {"COPY (SELECT 1) TO PROGRAM 'touch %s-program'", "42501", false},
    {"COPY hostile_t FROM '/etc/hostname'", "42501", false},
    {"COPY hostile_t FROM PROGRAM 'touch %s-from-program'", "42501", false},
    {"SELECT pg_read_file('/etc/hostname')", "42501", false},
    {"SELECT pg_ls_dir('.')", "42501", false},
    {"SELECT lo_import('/etc/hostname')", "42501", false},
    {"SELECT lo_export(lo_create(0), '%s-lo')", "42501", false},
    {"SELECT lo_create(0)", NULL, false},
    {"LOAD 'auto_explain'", "42501", false},
    /* Other sessions. */
    {"SELECT pg_terminate_backend(%d)", "42501", false},
    {"SELECT pg_cancel_backend(%d)", "42501", false},
    /* Replication, the server's configuration and statistics. */
    {"SELECT pg_create_physical_replication_slot('qreg_hostile')", "42501", false},
    {"SELECT pg_create_logical_replication_slot('qreg_hostile', 'test_decoding')", "42501", false},
    {"SELECT pg_reload_conf()", "42501", false},
    {"SELECT pg_switch_wal()", "42501", false},
    {"SELECT pg_stat_reset()", "42501", false},
    {"SELECT pg_promote()", "42501", false},
    {"CHECKPOINT", "42501", false},
    {"ALTER SYSTEM SET work_mem = '1MB'", "25001", false},
    {"VACUUM hostile_t", "25001", false},
    {"DISCARD ALL", "25001", false},
    /* Writes, direct and through dynamic SQL. */
    {"INSERT INTO hostile_t VALUES (2)", "42501 25006", false},
    {"CREATE TABLE hostile_new (x int)", "42501 25006", false},
    {"CREATE TEMP TABLE hostile_tmp (x int)", "42501 25006", false},
    {"SELECT nextval('hostile_seq')", "42501 25006", false},
    {"DO $$BEGIN EXECUTE 'INSERT INTO hostile_t VALUES (3)'; END$$", "42501 25006", false},
    {"SELECT query_to_xml('INSERT INTO hostile_t VALUES (4) RETURNING x', true, true, '')",
     "0A000 25006", false},
    {"CREATE EXTENSION dblink", "42501 25006", false},
    {"CREATE ROLE qreg_hostile_new LOGIN SUPERUSER", "42501 25006", false},
    {"GRANT pg_signal_backend TO qreg_reader", "42501 25006", false},
    {"SELECT * FROM hostile_t FOR UPDATE", "42501 25006", false},
    {"LOCK TABLE hostile_t IN ACCESS EXCLUSIVE MODE", "42501 25006", false},
    {"COPY hostile_t TO STDOUT", "0A000", false},
    /* Becoming someone else. */
    {"SET SESSION AUTHORIZATION qreg_test", "42501", false},
    {"SELECT set_config('role', 'qreg_test', false)", "42501", false},
    {"SET ROLE qreg_test", "42501", false},
    /* Session state for the next query. */
    {"SET search_path = hostile", NULL, true},
    {"SELECT set_config('work_mem', '64kB', false)", NULL, true},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", NULL, true},
    {"SET default_transaction_read_only = off", NULL, true},
    {"SELECT set_config('DateStyle', 'German', false)", NULL, true},
    {"PREPARE hostile_p AS SELECT 1", NULL, true},
    {"SELECT pg_advisory_lock(4242)", NULL, true},
    {"DO $$BEGIN PERFORM pg_advisory_lock(4243); END$$", NULL, true},
    {"LISTEN hostile", NULL, true},
    {"NOTIFY hostile_victim, 'x'", NULL, true},
    {"SELECT pg_notify('hostile_victim', 'y')", NULL, true},
    {"DECLARE hostile_c CURSOR WITH HOLD FOR SELECT 1", NULL, true},
    {"COMMIT", NULL, true},
};
#define CATALOGUE_SIZE (sizeof catalogue / sizeof catalogue[0])

static bool file_exists(const char *suffix) {
  char path[128];
  snprintf(path, sizeof path, "%s-%s", file_prefix, suffix);
  return access(path, F_OK) == 0;
}

static PGconn *victim_open(const char *user, int *pid_out) {
  char conninfo[300];
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=postgres user=%s application_name=qreg_t_victim",
           pg_fixture_port(), user);
  PGconn *conn = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(conn), CONNECTION_OK);
  PGresult *res = PQexec(conn, "LISTEN hostile_victim");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  *pid_out = PQbackendPID(conn);
  return conn;
}

/* The victim still answers, and was told nothing. */
static void victim_check(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, "SELECT 1");
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    fail_msg("after `%s` a victim session is gone: %s", sql, PQerrorMessage(conn));
  PQclear(res);
  PQconsumeInput(conn);
  PGnotify *note = PQnotifies(conn);
  if (note != NULL) {
    PQfreemem(note);
    fail_msg("after `%s` a victim session received a notification", sql);
  }
}

/* Runs sql, waits; returns the settled query's id. */
static qreg_id_t run(qreg_t *reg, const char *sql) {
  qreg_id_t id = test_execute(reg, sql, NULL);
  test_wait(reg, &id);
  return id;
}

/* The probe's text (malloc'd). */
static char *probe(qreg_t *reg) {
  qreg_id_t id = run(reg, PROBE_SQL);
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
  if (snap->status != QREG_SUCCEEDED)
    fail_msg("probe: %s: %s", qreg_status_name(snap->status), snap->error.message);
  qreg_snapshot_free(snap);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  char *text = strndup(page->values[0].v.s.ptr, page->values[0].v.s.len);
  qreg_page_free(page);
  return text;
}

/* Everything a statement of the catalogue must not have changed. */
static void assert_no_effect(const char *sql) {
  static const char *const files[] = {"copy", "program", "from-program", "lo"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    if (file_exists(files[i]))
      fail_msg("`%s` wrote a file (%s-%s)", sql, file_prefix, files[i]);
  }
  pg_admin_t *admin = pg_admin();
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM hostile_t"), 1);
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM pg_class WHERE relname IN "
                                       "('hostile_new', 'hostile_tmp')"),
                   0);
  assert_int_equal(pg_admin_int(admin, "SELECT is_called::int FROM hostile_seq"), 0);
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM pg_largeobject_metadata"), 0);
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM pg_replication_slots"), 0);
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE "
                                       "'qreg_hostile_new%%'"),
                   0);
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM pg_auth_members WHERE member = "
                                       "'qreg_reader'::regrole"),
                   1); /* pg_read_all_data only */
  assert_int_equal(pg_admin_int(admin, "SELECT count(*) FROM pg_extension WHERE extname = "
                                       "'dblink'"),
                   0);
  /* No advisory lock outlived the query: another session takes it. */
  assert_int_equal(pg_admin_int(admin, "SELECT (pg_try_advisory_lock(4242) AND "
                                       "pg_try_advisory_lock(4243))::int"),
                   1);
  assert_int_equal(pg_admin_exec(admin, "SELECT pg_advisory_unlock_all()"), 0);
  victim_check(victim_super, sql);
  victim_check(victim_other, sql);
}

/* Runs the catalogue (or its state-only part) on reg, whose next query
   must see what `baseline` saw. */
static void run_catalogue(qreg_t *reg, bool state_only, const char *who) {
  char *baseline = probe(reg);
  unsigned refused = 0, harmless = 0;
  for (size_t i = 0; i < CATALOGUE_SIZE; i++) {
    const hostile_t *h = &catalogue[i];
    if (state_only && !h->state_only)
      continue;
    char sql[512];
    if (strstr(h->sql, "%s") != NULL)
      snprintf(sql, sizeof sql, h->sql, file_prefix);
    else if (strstr(h->sql, "pg_cancel_backend") != NULL)
      snprintf(sql, sizeof sql, h->sql, victim_other_pid);
    else if (strstr(h->sql, "%d") != NULL)
      snprintf(sql, sizeof sql, h->sql, victim_super_pid);
    else
      snprintf(sql, sizeof sql, "%s", h->sql);
    qreg_id_t id = run(reg, sql);
    qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
    if (h->code != NULL) {
      if (snap->status != QREG_FAILED || strlen(snap->error.code) != 5 ||
          strstr(h->code, snap->error.code) == NULL)
        fail_msg("%s: `%s` should be refused with %s, got %s %s: %s", who, sql, h->code,
                 qreg_status_name(snap->status), snap->error.code, snap->error.message);
      assert_true(snap->error.message[0] != '\0');
      refused++;
    } else {
      harmless++;
    }
    qreg_snapshot_free(snap);
    assert_no_effect(sql);
    char *now = probe(reg);
    if (strcmp(now, baseline) != 0)
      fail_msg("%s: after `%s` the next query sees %s instead of %s", who, sql, now, baseline);
    free(now);
  }
  print_message("%s: %u statements refused, %u proven harmless\n", who, refused, harmless);
  free(baseline);
}

static void ordinary_role_catalogue(void **state) {
  (void)state;
  assert_true(CATALOGUE_SIZE >= 30);
  qreg_t *reg = pg_test_open(pg_fixture_reader_conninfo(), APP, 1, false);
  assert_true(qreg_read_only(reg));
  run_catalogue(reg, false, "qreg_reader");
  /* The other ordinary role's sessions are out of reach too. */
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", victim_other_pid);
  qreg_id_t id = run(reg, sql);
  pg_test_assert_failed(reg, &id, "42501", NULL);
  assert_no_effect(sql);
  pg_test_close_checked(reg, APP);
}

/* The opted-in superuser's session is reset like any other. */
static void superuser_state_catalogue(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url, "%s allow_privileged_role=true", pg_fixture_conninfo());
  qreg_t *reg = pg_test_open(url, APP, 1, false);
  assert_false(qreg_read_only(reg));
  run_catalogue(reg, true, "superuser, allow_privileged_role");
  pg_test_close_checked(reg, APP);
}

/* Opens a read-only registry as user (on dbname) and expects its first
   query to be refused at connect, the message naming what. */
static void assert_refused_role(const char *user, const char *dbname, const char *what) {
  char url[300];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=%s user=%s", pg_fixture_port(), dbname,
           user);
  qreg_t *reg = pg_test_open(url, APP, 1, false);
  assert_true(qreg_read_only(reg));
  char sql[200];
  snprintf(sql, sizeof sql, "COPY (SELECT 1) TO PROGRAM 'touch %s-program'", file_prefix);
  qreg_id_t id = run(reg, sql);
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
  assert_int_equal(snap->status, QREG_FAILED);
  assert_string_equal(snap->error.type, "connection");
  if (strstr(snap->error.message, what) == NULL ||
      strstr(snap->error.message, "allow_privileged_role=true") == NULL)
    fail_msg("%s: the refusal does not name `%s`: %s", user, what, snap->error.message);
  assert_non_null(strstr(snap->error.hint, "CREATE ROLE qreg_reader LOGIN"));
  assert_non_null(strstr(snap->error.hint, "GRANT pg_read_all_data TO qreg_reader"));
  qreg_snapshot_free(snap);
  assert_false(file_exists("program"));
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_opened, 0);
  pg_test_close_checked(reg, APP);
}

static void privileged_roles_refused(void **state) {
  (void)state;
  pg_admin_t *admin = pg_admin();
  static const char *const setup[] = {
      "CREATE ROLE qreg_hostile_repl LOGIN REPLICATION",
      "CREATE ROLE qreg_hostile_bypass LOGIN BYPASSRLS",
      "CREATE ROLE qreg_hostile_signal LOGIN IN ROLE pg_signal_backend",
      "CREATE ROLE qreg_hostile_middle NOLOGIN IN ROLE pg_execute_server_program",
      "CREATE ROLE qreg_hostile_program LOGIN IN ROLE qreg_hostile_middle",
      "CREATE ROLE qreg_hostile_writer LOGIN IN ROLE pg_write_server_files",
      "CREATE ROLE qreg_hostile_reader LOGIN IN ROLE pg_read_server_files",
      "CREATE ROLE qreg_hostile_reload LOGIN",
      "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO qreg_hostile_reload",
      "CREATE ROLE qreg_hostile_noinherit LOGIN NOINHERIT IN ROLE qreg_test",
  };
  for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++)
    assert_int_equal(pg_admin_exec(admin, "%s", setup[i]), 0);
  assert_refused_role("qreg_test", "postgres", "the role \"qreg_test\" is a superuser");
  assert_refused_role("qreg_hostile_noinherit", "postgres",
                      "is a member of \"qreg_test\", which is a superuser");
  assert_refused_role("qreg_hostile_repl", "postgres", "REPLICATION");
  assert_refused_role("qreg_hostile_bypass", "postgres", "BYPASSRLS");
  assert_refused_role("qreg_hostile_signal", "postgres", "member of pg_signal_backend");
  assert_refused_role("qreg_hostile_program", "postgres", "member of pg_execute_server_program");
  assert_refused_role("qreg_hostile_writer", "postgres", "member of pg_write_server_files");
  assert_refused_role("qreg_hostile_reader", "postgres", "member of pg_read_server_files");
  assert_refused_role("qreg_hostile_reload", "postgres", "may execute pg_reload_conf()");
  /* The refusal reaches qreg query's user, on stderr, with the hint. */
  const char *bin = getenv("QREG_BIN");
  if (bin != NULL) {
    char command[600];
    snprintf(command, sizeof command, "'%s' query --db '%s' 'SELECT 1' 2>&1", bin,
             pg_fixture_conninfo());
    FILE *p = popen(command, "r");
    assert_non_null(p);
    static char out[8192];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    assert_int_not_equal(pclose(p), 0);
    assert_non_null(strstr(out, "is a superuser"));
    assert_non_null(strstr(out, "allow_privileged_role=true"));
    assert_non_null(strstr(out, "CREATE ROLE qreg_reader"));
  }
}

/* dblink writes through its own connection: a role that can call it is
   refused (where the extension is installed). */
static void dblink_refused(void **state) {
  (void)state;
  pg_admin_t *admin = pg_admin();
  if (pg_admin_int(admin, "SELECT count(*) FROM pg_available_extensions WHERE name = 'dblink'") !=
      1) {
    print_message("dblink is not installed: skipped\n");
    return;
  }
  assert_int_equal(pg_admin_exec(admin, "CREATE DATABASE qreg_hostile_dblink"), 0);
  char conninfo[300];
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=qreg_hostile_dblink user=qreg_test", pg_fixture_port());
  PGconn *conn = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(conn), CONNECTION_OK);
  PGresult *res = PQexec(conn, "CREATE EXTENSION dblink");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  PQfinish(conn);
  assert_refused_role("qreg_reader", "qreg_hostile_dblink", "may use the dblink extension");
}

/* postgres_fdw keeps its connections for the session: a role that can use
   a foreign server is accepted, but its sessions are never pooled. */
static void foreign_server_never_pooled(void **state) {
  (void)state;
  pg_admin_t *admin = pg_admin();
  if (pg_admin_int(admin, "SELECT count(*) FROM pg_available_extensions WHERE name = "
                          "'postgres_fdw'") != 1) {
    print_message("postgres_fdw is not installed: skipped\n");
    return;
  }
  assert_int_equal(pg_admin_exec(admin, "CREATE DATABASE qreg_hostile_fdw"), 0);
  char conninfo[300];
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=qreg_hostile_fdw user=qreg_test", pg_fixture_port());
  PGconn *conn = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(conn), CONNECTION_OK);
  static const char *const setup[] = {
      "CREATE EXTENSION postgres_fdw",
      "CREATE SERVER qreg_hostile_remote FOREIGN DATA WRAPPER postgres_fdw",
      "GRANT USAGE ON FOREIGN SERVER qreg_hostile_remote TO qreg_reader",
  };
  for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
    PGresult *res = PQexec(conn, setup[i]);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
  }
  PQfinish(conn);
  char url[300];
  snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=qreg_hostile_fdw user=qreg_reader",
           pg_fixture_port());
  qreg_t *reg = pg_test_open(url, APP, 1, false);
  assert_true(qreg_read_only(reg));
  qreg_id_t first = run(reg, "SELECT 1");
  long first_pid = pg_test_backend_pid(reg, &first);
  qreg_id_t second = run(reg, "SELECT 2");
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &second);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  qreg_snapshot_free(snap);
  assert_true(pg_test_backend_pid(reg, &second) != first_pid);
  pg_test_close_checked(reg, APP);
}

/* One MCP request (2026-07-28, stateless) and its response line. */
static char *mcp_request(mcp_server_t *server, const char *method, const char *params) {
  char *line = NULL;
  int n = asprintf(&line,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":{%s%s\"_meta\":{"
                   "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
                   "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
                   method, params, params[0] ? "," : "");
  assert_true(n > 0);
  size_t reply_len = 0;
  char *reply = mcp_server_handle_message(server, line, strlen(line), &reply_len);
  free(line);
  assert_non_null(reply);
  /* The line is not NUL-terminated: copied by length (strndup may look one
     byte further). */
  char *text = malloc(reply_len + 1);
  assert_non_null(text);
  memcpy(text, reply, reply_len);
  text[reply_len] = '\0';
  free(reply);
  return text;
}

/* Through MCP, a superuser on a read-only registry gets the refusal as the
   query's error; the server still claims read-only (and enforces it). */
static void mcp_refusal(void **state) {
  (void)state;
  qreg_t *reg = pg_test_open(pg_fixture_conninfo(), APP, 1, false);
  assert_true(qreg_read_only(reg));
  mcp_settings_t settings = {.max_message_bytes = 1 << 20, .max_response_bytes = 1 << 20};
  mcp_server_t *server = NULL;
  assert_int_equal(mcp_server_new(reg, &settings, &server), 0);
  char *discover = mcp_request(server, "server/discover", "");
  assert_non_null(strstr(discover, "Queries are read-only"));
  free(discover);
  char *reply = mcp_request(server, "tools/call",
                            "\"name\":\"execute_query\",\"arguments\":{\"sql\":\"SELECT 1\"}");
  const char *at = strstr(reply, "\"query_id\":\"");
  assert_non_null(at);
  qreg_id_t id;
  memcpy(id.str, at + strlen("\"query_id\":\""), QREG_ID_LEN);
  id.str[QREG_ID_LEN] = '\0';
  free(reply);
  assert_int_equal(test_wait(reg, &id), QREG_FAILED);
  char params[128];
  snprintf(params, sizeof params,
           "\"name\":\"get_query_status\",\"arguments\":{\"query_id\":\"%s\"}", id.str);
  reply = mcp_request(server, "tools/call", params);
  if (strstr(reply, "is a superuser") == NULL || strstr(reply, "allow_privileged_role") == NULL ||
      strstr(reply, "CREATE ROLE qreg_reader") == NULL)
    fail_msg("get_query_status as a superuser: %s", reply);
  free(reply);
  mcp_server_free(server);
  pg_test_close_checked(reg, APP);
}

/* With the opt-in the superuser works, and nothing claims read-only. */
static void superuser_opt_in(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url, "%s allow_privileged_role=true", pg_fixture_conninfo());
  qreg_t *reg = pg_test_open(url, APP, 1, false);
  assert_false(qreg_read_only(reg));
  qreg_id_t id = run(reg, "SELECT 1");
  qreg_snapshot_t *snap = pg_test_snapshot(reg, &id);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  qreg_snapshot_free(snap);
  long first_pid = pg_test_backend_pid(reg, &id);

  mcp_settings_t settings = {.max_message_bytes = 1 << 20, .max_response_bytes = 1 << 20};
  mcp_server_t *server = NULL;
  assert_int_equal(mcp_server_new(reg, &settings, &server), 0);
  json_t *execute = json_array_get(server->tools, 0);
  assert_string_equal(json_string_value(json_object_get(execute, "name")), "execute_query");
  json_t *annotations = json_object_get(execute, "annotations");
  assert_true(json_is_false(json_object_get(annotations, "readOnlyHint")));
  assert_true(json_is_true(json_object_get(annotations, "destructiveHint")));
  char *discover = mcp_request(server, "server/discover", "");
  assert_null(strstr(discover, "Queries are read-only"));
  assert_non_null(strstr(discover, "privileged"));
  free(discover);
  mcp_server_free(server);

  /* LOAD leaves a library in the session: the next query gets another. */
  id = run(reg, "LOAD 'auto_explain'");
  snap = pg_test_snapshot(reg, &id);
  assert_int_equal(snap->status, QREG_SUCCEEDED);
  qreg_snapshot_free(snap);
  long load_pid = pg_test_backend_pid(reg, &id);
  assert_int_equal(load_pid, first_pid); /* pooled until then */
  id = run(reg, "SELECT 2");
  assert_true(pg_test_backend_pid(reg, &id) != load_pid);
  assert_int_equal(pg_admin_wait_pid_gone(pg_admin(), load_pid, PG_GONE_MS), 0);
  pg_test_close_checked(reg, APP);

  /* The ordinary role's registry claims read-only, and MCP says so. */
  reg = pg_test_open(pg_fixture_reader_conninfo(), APP, 1, false);
  assert_true(qreg_read_only(reg));
  assert_int_equal(mcp_server_new(reg, &settings, &server), 0);
  annotations = json_object_get(json_array_get(server->tools, 0), "annotations");
  assert_true(json_is_true(json_object_get(annotations, "readOnlyHint")));
  mcp_server_free(server);
  pg_test_close_checked(reg, APP);
}

/* An ordinary role may signal sessions of its own role; PostgreSQL has no
   per-session switch for that. docs/security.md says to revoke EXECUTE on
   the two functions from PUBLIC: then the victim survives. */
static void own_role_sessions_after_revoke(void **state) {
  (void)state;
  pg_admin_t *admin = pg_admin();
  assert_int_equal(pg_admin_exec(admin, "REVOKE EXECUTE ON FUNCTION "
                                        "pg_terminate_backend(integer, bigint), "
                                        "pg_cancel_backend(integer) FROM PUBLIC"),
                   0);
  int pid = 0;
  PGconn *same = victim_open("qreg_reader", &pid);
  qreg_t *reg = pg_test_open(pg_fixture_reader_conninfo(), APP, 1, false);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
  qreg_id_t id = run(reg, sql);
  pg_test_assert_failed(reg, &id, "42501", NULL);
  snprintf(sql, sizeof sql, "SELECT pg_cancel_backend(%d)", pid);
  id = run(reg, sql);
  pg_test_assert_failed(reg, &id, "42501", NULL);
  victim_check(same, sql);
  pg_test_close_checked(reg, APP);
  PQfinish(same);
  assert_int_equal(pg_admin_exec(admin, "GRANT EXECUTE ON FUNCTION "
                                        "pg_terminate_backend(integer, bigint), "
                                        "pg_cancel_backend(integer) TO PUBLIC"),
                   0);
}

int main(void) {
  int rc = pg_fixture_start();
  if (rc != 0)
    return rc == PG_FIXTURE_SKIP ? PG_FIXTURE_SKIP : 1;
  snprintf(file_prefix, sizeof file_prefix, "/tmp/qreg-hostile-%ld", (long)getpid());
  pg_admin_t *admin = pg_admin();
  if (pg_admin_exec(admin, "CREATE TABLE hostile_t (x int)") != 0 ||
      pg_admin_exec(admin, "INSERT INTO hostile_t VALUES (1)") != 0 ||
      pg_admin_exec(admin, "CREATE SEQUENCE hostile_seq") != 0 ||
      pg_admin_exec(admin, "CREATE SCHEMA hostile") != 0 ||
      pg_admin_exec(admin, "CREATE ROLE " OTHER_ROLE " LOGIN") != 0)
    return 1;
  victim_super = victim_open("qreg_test", &victim_super_pid);
  victim_other = victim_open(OTHER_ROLE, &victim_other_pid);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ordinary_role_catalogue),
      cmocka_unit_test(superuser_state_catalogue),
      cmocka_unit_test(privileged_roles_refused),
      cmocka_unit_test(dblink_refused),
      cmocka_unit_test(mcp_refusal),
      cmocka_unit_test(superuser_opt_in),
      cmocka_unit_test(own_role_sessions_after_revoke),
      cmocka_unit_test(foreign_server_never_pooled),
  };
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  PQfinish(victim_super);
  PQfinish(victim_other);
  static const char *const files[] = {"copy", "program", "from-program", "lo"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s-%s", file_prefix, files[i]);
    unlink(path);
  }
  return rc;
}
