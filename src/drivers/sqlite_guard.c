/*
 * src/drivers/sqlite_guard.c - the allow-list of read-only SQLite queries
 * (see sqlite_guard.h for what it allows and denies, and why).
 */
#include "drivers/sqlite_guard.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* PRAGMAs that read the schema of a named object: allowed with their
   argument (PRAGMA table_info(t), pragma_table_xinfo('t')). */
static const char *const naming_pragmas[] = {
    "table_info",  "table_xinfo",      "table_list",        "index_list", "index_info",
    "index_xinfo", "foreign_key_list", "foreign_key_check", NULL,
};

/* PRAGMAs that read a value: allowed only without one (a value sets it).
   Left out on purpose, for what they do even without a value:
   wal_checkpoint (writes), optimize (runs ANALYZE), incremental_vacuum,
   shrink_memory. */
static const char *const reading_pragmas[] = {
    "database_list",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
    "schema_version",
    "user_version",
    "application_id",
    "data_version",
    "page_count",
    "page_size",
    "freelist_count",
    "encoding",
    "integrity_check",
    "quick_check",
    "cache_size",
    "journal_mode",
    "busy_timeout",
    "query_only",
    "foreign_keys",
    "synchronous",
    "temp_store",
    "auto_vacuum",
    "locking_mode",
    "mmap_size",
    "max_page_count",
    "recursive_triggers",
    "secure_delete",
    "automatic_index",
    "soft_heap_limit",
    "hard_heap_limit",
    "threads",
    "wal_autocheckpoint",
    "journal_size_limit",
    "trusted_schema",
    NULL,
};

static bool listed(const char *const *list, const char *name) {
  for (size_t i = 0; name != NULL && list[i] != NULL; i++)
    if (strcasecmp(list[i], name) == 0)
      return true;
  return false;
}

static bool schema_table(const char *name) {
  return name != NULL &&
         (strcasecmp(name, "sqlite_master") == 0 || strcasecmp(name, "sqlite_temp_master") == 0);
}

static const char *action_name(int action) {
  switch (action) {
  case SQLITE_ATTACH:
    return "ATTACH";
  case SQLITE_DETACH:
    return "DETACH";
  case SQLITE_TRANSACTION:
    return "a transaction (BEGIN, COMMIT, ROLLBACK)";
  case SQLITE_SAVEPOINT:
    return "SAVEPOINT";
  case SQLITE_INSERT:
    return "INSERT";
  case SQLITE_UPDATE:
    return "UPDATE";
  case SQLITE_DELETE:
    return "DELETE";
  case SQLITE_ANALYZE:
    return "ANALYZE";
  case SQLITE_REINDEX:
    return "REINDEX";
  case SQLITE_ALTER_TABLE:
    return "ALTER TABLE";
  case SQLITE_CREATE_TEMP_TABLE:
  case SQLITE_CREATE_TEMP_VIEW:
  case SQLITE_CREATE_TEMP_TRIGGER:
  case SQLITE_CREATE_TEMP_INDEX:
    return "creating a temporary object";
  case SQLITE_CREATE_TABLE:
  case SQLITE_CREATE_VIEW:
  case SQLITE_CREATE_TRIGGER:
  case SQLITE_CREATE_INDEX:
  case SQLITE_CREATE_VTABLE:
    return "CREATE";
  case SQLITE_DROP_TABLE:
  case SQLITE_DROP_VIEW:
  case SQLITE_DROP_TRIGGER:
  case SQLITE_DROP_INDEX:
  case SQLITE_DROP_TEMP_TABLE:
  case SQLITE_DROP_TEMP_VIEW:
  case SQLITE_DROP_TEMP_TRIGGER:
  case SQLITE_DROP_TEMP_INDEX:
  case SQLITE_DROP_VTABLE:
    return "DROP";
  default:
    return "this statement";
  }
}

int qreg__sqlite_authorize(void *arg, int action, const char *arg1, const char *arg2,
                           const char *database, const char *trigger) {
  (void)database;
  (void)trigger;
  sqlite_guard_t *guard = arg;
  if (!guard->on)
    return SQLITE_OK; /* the driver's own statements, or a writable job */
  switch (action) {
  case SQLITE_SELECT:
  case SQLITE_READ:
  case SQLITE_FUNCTION:
  case SQLITE_RECURSIVE:
    return SQLITE_OK;
  case SQLITE_UPDATE:
    /* SQLite reads its schema (again, after another connection changed it)
       as an UPDATE of sqlite_master during the prepare; a real write of it
       is refused by sqlite3_stmt_readonly() and defensive mode. */
    if (schema_table(arg1))
      return SQLITE_OK;
    snprintf(guard->denied, sizeof guard->denied, "UPDATE");
    return SQLITE_DENY;
  case SQLITE_PRAGMA:
    if (listed(naming_pragmas, arg1) || (arg2 == NULL && listed(reading_pragmas, arg1))) {
      guard->read_pragma = true;
      return SQLITE_OK;
    }
    snprintf(guard->denied, sizeof guard->denied, "PRAGMA %.40s%s", arg1 ? arg1 : "",
             arg2 != NULL ? " with a value" : "");
    return SQLITE_DENY;
  case SQLITE_INSERT:
  case SQLITE_DELETE:
    /* A write of a schema table is the inside of a CREATE or a DROP (and
       the first thing SQLite asks about one): say so. */
    if (arg1 != NULL && strcasecmp(arg1, "sqlite_temp_master") == 0)
      snprintf(guard->denied, sizeof guard->denied, "creating or dropping a temporary object");
    else if (schema_table(arg1))
      snprintf(guard->denied, sizeof guard->denied, "changing the schema (CREATE, DROP)");
    else
      snprintf(guard->denied, sizeof guard->denied, "%s", action_name(action));
    return SQLITE_DENY;
  default:
    snprintf(guard->denied, sizeof guard->denied, "%s", action_name(action));
    return SQLITE_DENY;
  }
}
