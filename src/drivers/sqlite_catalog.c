/*
 * src/drivers/sqlite_catalog.c - the SQL that answers each catalog request
 * (qreg.h, qreg_catalog_op_t) on SQLite, from its table-valued pragmas:
 * pragma_database_list, pragma_table_list, pragma_table_xinfo. Owns nothing.
 *
 * The names in a request come from a model and are hostile: each is either
 * an SQL string literal ('...' with every quote doubled) or a quoted
 * identifier ("..." with every double quote doubled); NUL bytes and invalid
 * UTF-8 were refused by the core. A column is always referred to through a
 * table alias (t."name"): SQLite reads an unqualified "name" that matches no
 * column as a string literal, which would make statistics of a constant.
 *
 * SQLite has no comments on tables or columns and no row estimate without
 * ANALYZE: those columns are NULL. Schemas are main, temp and attached
 * databases; without one, TABLES and SEARCH_COLUMNS cover them all and
 * DESCRIBE, SAMPLE and COLUMN_STATS take the first that has the table
 * (temp, main, then attached: SQLite's own search order).
 */
#include "drivers/sqlite_catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/driver.h"

/* The limit of SAMPLE and SEARCH_COLUMNS when the request says 0. */
#define DEFAULT_LIMIT 100

/* s as a string literal: 'a''b'. malloc'd; NULL on ENOMEM. */
static char *sqlite_literal(const char *s) {
  return qreg_driver_quote(s, "", '\'', false);
}

/* User tables and views of pragma_table_list (alias l), not SQLite's own. */
#define USER_TABLES                                                                                \
  "l.type IN ('table', 'view', 'virtual') AND l.name NOT LIKE 'sqlite\\_%%' ESCAPE '\\'"

int qreg__sqlite_catalog_sql(const qreg_catalog_request_t *request, char **sql_out,
                             char **message) {
  *sql_out = NULL;
  *message = NULL;
  qreg_catalog_names_t n;
  qreg_catalog_names_make(&n, request, sqlite_literal);
  unsigned long long limit = request->limit ? (unsigned long long)request->limit : DEFAULT_LIMIT;
  int rc = -1;
  if (n.failed) {
    rc = -1;
  } else if (request->op == QREG_CATALOG_SCHEMAS) {
    rc = asprintf(sql_out, "SELECT name AS schema_name FROM pragma_database_list ORDER BY seq");
  } else if (request->op == QREG_CATALOG_TABLES) {
    rc = asprintf(sql_out,
                  "SELECT l.schema AS schema, l.name AS name, "
                  "CASE l.type WHEN 'virtual' THEN 'virtual table' ELSE l.type END AS type, "
                  "NULL AS comment, NULL AS row_estimate "
                  "FROM pragma_table_list AS l WHERE " USER_TABLES "%s%s "
                  "ORDER BY l.schema = 'main' DESC, l.schema, l.name",
                  n.schema_literal ? " AND l.schema = " : "",
                  n.schema_literal ? n.schema_literal : "");
  } else if (request->op == QREG_CATALOG_DESCRIBE) {
    /* hidden: 0 a column, 1 hidden (virtual tables), 2/3 generated. */
    rc = asprintf(sql_out,
                  "SELECT c.cid + 1 AS ordinal, c.name AS name, c.type AS type, "
                  "c.\"notnull\" = 0 AS nullable, c.dflt_value AS default_value, "
                  "NULL AS comment, c.pk > 0 AS primary_key "
                  "FROM pragma_table_xinfo(%s%s%s) AS c WHERE c.hidden <> 1 ORDER BY c.cid",
                  n.table_literal, n.schema_literal ? ", " : "",
                  n.schema_literal ? n.schema_literal : "");
  } else if (request->op == QREG_CATALOG_SAMPLE) {
    rc = asprintf(sql_out, "SELECT * FROM %s LIMIT %llu", n.from, limit);
  } else if (request->op == QREG_CATALOG_COLUMN_STATS) {
    rc = asprintf(sql_out,
                  "SELECT count(*) AS row_count, count(*) - count(t.%s) AS null_count, "
                  "count(DISTINCT t.%s) AS distinct_count, "
                  "CAST(min(t.%s) AS TEXT) AS min_value, CAST(max(t.%s) AS TEXT) AS max_value "
                  "FROM %s AS t",
                  n.column_ident, n.column_ident, n.column_ident, n.column_ident, n.from);
  } else if (request->op == QREG_CATALOG_SEARCH_COLUMNS) {
    rc = asprintf(sql_out,
                  "SELECT l.schema AS schema, l.name AS table_name, c.name AS column_name, "
                  "c.type AS type "
                  "FROM pragma_table_list AS l JOIN pragma_table_xinfo(l.name, l.schema) AS c "
                  "WHERE " USER_TABLES " AND c.hidden <> 1 "
                  "AND instr(lower(c.name), lower(%s)) > 0%s%s "
                  "ORDER BY l.schema = 'main' DESC, l.schema, l.name, c.cid LIMIT %llu",
                  n.pattern_literal, n.schema_literal ? " AND l.schema = " : "",
                  n.schema_literal ? n.schema_literal : "", limit);
  } else {
    qreg_catalog_names_free(&n);
    *message = strdup("sqlite: no such catalog operation");
    return QREG_EINVAL;
  }
  qreg_catalog_names_free(&n);
  if (rc < 0) {
    *sql_out = NULL;
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  return 0;
}
