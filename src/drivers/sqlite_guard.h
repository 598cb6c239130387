/*
 * src/drivers/sqlite_guard.h - read-only as SQLite enforces it: an authorizer
 * with an allow-list, installed on every connection of the sqlite driver and
 * switched on while a read-only job's statement is prepared.
 *
 * What it allows: reading tables and views, functions, recursive CTEs, and
 * the PRAGMAs that only read (table_info, index_list, ... and value pragmas
 * such as user_version without a value). What it denies, with the denied
 * action named in the error: ATTACH and DETACH, every CREATE/DROP/ALTER (temp
 * objects included), INSERT/UPDATE/DELETE, transactions and savepoints,
 * ANALYZE, REINDEX, and every PRAGMA that sets something (busy_timeout,
 * query_only, case_sensitive_like, hard_heap_limit, ...): none of these may
 * leave state behind for the next query on a pooled connection, or touch
 * anything outside the query's own result. A statement that SQLite itself
 * says is not read-only (sqlite3_stmt_readonly: VACUUM INTO, ...) is refused
 * by the driver after preparing it.
 */
#ifndef QREG_DRIVERS_SQLITE_GUARD_H
#define QREG_DRIVERS_SQLITE_GUARD_H

#include <stdbool.h>

/* One per connection; touched only by the worker running the connection's
   job. */
typedef struct sqlite_guard {
  bool on;          /* check what is prepared now (a read-only job) */
  char denied[80];  /* what was refused last, "" when nothing */
  bool read_pragma; /* an allowed PRAGMA without a value was prepared:
                       SQLite calls some of those (journal_mode) not
                       read-only, though without a value they only read */
} sqlite_guard_t;

/* The sqlite3_set_authorizer() callback; arg is a sqlite_guard_t. */
int qreg__sqlite_authorize(void *arg, int action, const char *arg1, const char *arg2,
                           const char *database, const char *trigger);

#endif /* QREG_DRIVERS_SQLITE_GUARD_H */
