/*
 * src/drivers/postgres_guard.c - the PostgreSQL driver's read-only policy
 * (postgres.h lists the driver's files; docs/security.md is the user's
 * view of it).
 *
 * READ ONLY stops a transaction from writing tables; it does not stop a
 * role from running a program (COPY ... TO PROGRAM), writing or reading
 * server files, creating replication slots, signalling other sessions,
 * reading past row-level security, or writing through a connection of its
 * own (dblink). Those come from the role, so a read-only registry checks
 * the role of every connection it opens, once, as the last step of the
 * non-blocking connect (postgres_connect.c), and refuses the connection
 * when the role - or any role it is a member of, directly or through
 * others, since a query can SET ROLE to any of them - has one of them:
 *
 *   superuser, REPLICATION, BYPASSRLS;
 *   membership in pg_execute_server_program, pg_write_server_files,
 *   pg_read_server_files, pg_signal_backend, pg_checkpoint;
 *   EXECUTE on a server-side function that is superuser-only unless
 *   granted (pg_reload_conf, pg_read_file, lo_export, ...);
 *   EXECUTE on the functions of the dblink extension.
 *
 * The option allow_privileged_role=true lets such a role in; the registry
 * then no longer claims to be read-only (qreg_read_only()).
 *
 * The same check says whether the role can use a foreign server
 * (postgres_fdw keeps its connections for the session, which no reset
 * closes): such connections are never pooled.
 *
 * After every job the session is reset (DISCARD ALL, the session defaults)
 * and checked (qreg__pg_clean_check_sql): a connection is pooled only when
 * all of that succeeded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/postgres.h"

/* Server-side functions a superuser may grant to others, each of which
   acts outside the transaction's result (reloads the configuration,
   reads or writes server files, switches WAL, resets statistics,
   manipulates replication origins). Names that a server version does not
   have are skipped (to_regprocedure gives NULL). */
#define ADMIN_FUNCTIONS                                                                            \
  "'pg_catalog.pg_reload_conf()', 'pg_catalog.pg_rotate_logfile()', "                              \
  "'pg_catalog.pg_promote(boolean,integer)', 'pg_catalog.pg_switch_wal()', "                       \
  "'pg_catalog.pg_create_restore_point(text)', 'pg_catalog.pg_backup_start(text,boolean)', "       \
  "'pg_catalog.pg_start_backup(text,boolean,boolean)', 'pg_catalog.pg_wal_replay_pause()', "       \
  "'pg_catalog.pg_wal_replay_resume()', 'pg_catalog.pg_stat_reset()', "                            \
  "'pg_catalog.pg_stat_reset_shared(text)', "                                                      \
  "'pg_catalog.pg_stat_reset_single_table_counters(oid)', "                                        \
  "'pg_catalog.pg_stat_reset_single_function_counters(oid)', "                                     \
  "'pg_catalog.pg_stat_reset_slru(text)', 'pg_catalog.pg_stat_reset_replication_slot(text)', "     \
  "'pg_catalog.lo_import(text)', 'pg_catalog.lo_import(text,oid)', "                               \
  "'pg_catalog.lo_export(oid,text)', 'pg_catalog.pg_read_file(text)', "                            \
  "'pg_catalog.pg_read_binary_file(text)', 'pg_catalog.pg_ls_dir(text)', "                         \
  "'pg_catalog.pg_log_backend_memory_contexts(integer)', "                                         \
  "'pg_catalog.pg_replication_origin_create(text)', "                                              \
  "'pg_catalog.pg_replication_origin_drop(text)', "                                                \
  "'pg_catalog.pg_replication_origin_session_setup(text)', "                                       \
  "'pg_catalog.pg_replication_origin_advance(text,pg_lsn)'"

/* Predefined roles whose members can act outside a READ ONLY transaction. */
#define PRIVILEGED_ROLES                                                                           \
  "'pg_execute_server_program', 'pg_write_server_files', 'pg_read_server_files', "                 \
  "'pg_signal_backend', 'pg_checkpoint'"

/* One row: the most serious finding as a sentence (NULL: none), and
   whether the role may use a foreign server. m: every role the session's
   role is a member of, itself included (a superuser is a member of all). */
#define ROLE_CHECK_SQL                                                                             \
  "WITH m AS (SELECT r.oid, r.rolname, r.rolsuper, r.rolreplication, r.rolbypassrls, "             \
  "r.rolname = session_user AS own FROM pg_catalog.pg_roles r "                                    \
  "WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')), "                                 \
  "found AS ("                                                                                     \
  "SELECT 1 AS rank, m.rolname, m.own, 'is a superuser' AS what FROM m WHERE m.rolsuper "          \
  "UNION ALL SELECT 2, m.rolname, m.own, 'has the REPLICATION attribute' FROM m "                  \
  "WHERE m.rolreplication "                                                                        \
  "UNION ALL SELECT 3, m.rolname, m.own, 'has the BYPASSRLS attribute' FROM m "                    \
  "WHERE m.rolbypassrls "                                                                          \
  "UNION ALL SELECT 4, m.rolname, true, 'is a member of ' || m.rolname FROM m "                    \
  "WHERE m.rolname IN (" PRIVILEGED_ROLES ") "                                                     \
  "UNION ALL SELECT 5, m.rolname, m.own, 'may execute ' || f.oid::pg_catalog.regprocedure "        \
  "FROM m, (SELECT pg_catalog.to_regprocedure(n) AS oid "                                          \
  "FROM pg_catalog.unnest(ARRAY[" ADMIN_FUNCTIONS "]) AS n) f "                                    \
  "WHERE f.oid IS NOT NULL AND pg_catalog.has_function_privilege(m.oid, f.oid, 'EXECUTE') "        \
  "UNION ALL SELECT 6, m.rolname, m.own, 'may use the dblink extension (' || "                     \
  "p.oid::pg_catalog.regprocedure || '), whose connections write outside the transaction' "        \
  "FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_depend d "                                    \
  "ON d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = e.oid "       \
  "AND d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.deptype = 'e' "                 \
  "JOIN pg_catalog.pg_proc p ON p.oid = d.objid, m "                                               \
  "WHERE e.extname = 'dblink' AND pg_catalog.has_function_privilege(m.oid, p.oid, 'EXECUTE')) "    \
  "SELECT (SELECT CASE WHEN own THEN pg_catalog.format('the role \"%s\" %s', session_user, what) " \
  "ELSE pg_catalog.format('the role \"%s\" is a member of \"%s\", which %s', session_user, "       \
  "rolname, what) END FROM found ORDER BY rank, NOT own, rolname LIMIT 1), "                       \
  "EXISTS (SELECT 1 FROM m, pg_catalog.pg_foreign_server s "                                       \
  "WHERE pg_catalog.has_server_privilege(m.oid, s.oid, 'USAGE'))"

const char *qreg__pg_role_check_sql(void) {
  return ROLE_CHECK_SQL;
}

static const char REFUSAL_TAIL[] =
    ": a read-only registry refuses such a role, since READ ONLY does not stop it from "
    "changing things outside its result (docs/security.md). Connect as a read-only role, or "
    "set the option allow_privileged_role=true to accept the risk (qreg then no longer claims "
    "to be read-only).";

const char *qreg__pg_role_hint(void) {
  return "create a read-only role: CREATE ROLE qreg_reader LOGIN PASSWORD '...'; "
         "GRANT pg_read_all_data TO qreg_reader; (before PostgreSQL 14: GRANT SELECT ON ALL "
         "TABLES IN SCHEMA ... TO qreg_reader)";
}

char *qreg__pg_role_refusal(const PGresult *res, bool *foreign_out, bool *failed_out) {
  *foreign_out = false;
  *failed_out = false;
  if (PQntuples(res) != 1 || PQnfields(res) != 2) {
    *failed_out = true;
    return NULL;
  }
  *foreign_out = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
  if (PQgetisnull(res, 0, 0))
    return NULL;
  char *message = NULL;
  if (asprintf(&message, "%s%s", PQgetvalue(res, 0, 0), REFUSAL_TAIL) < 0) {
    *failed_out = true;
    return NULL;
  }
  return message;
}

/* After DISCARD ALL and the session defaults: true when the session runs
   as its login role again (DISCARD ALL resets SET ROLE; a false here closes
   the connection instead of pooling it). DISCARD ALL also removes prepared
   statements, cursors, LISTEN, advisory locks and temporary objects, and
   tests/test-pg-hostile.c proves each by its effect on the next query; the
   check does not look at them again: querying pg_locks, pg_cursors and
   pg_prepared_statements after every query made a short query two to three
   times slower (pg_locks takes every lock-manager partition lock). */
const char *qreg__pg_clean_check_sql(void) {
  return "SELECT current_user = session_user";
}

bool qreg__pg_read_only_enforced(void *state_arg) {
  const pg_state_t *state = state_arg;
  return state->check_role;
}
