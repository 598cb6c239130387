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

/* The quoted and literal forms of the request's names, NULL when absent. */
typedef struct names {
  char *schema_literal, *schema_ident;
  char *table_literal, *table_ident;
  char *column_ident;
  char *pattern_literal;
  bool failed; /* ENOMEM */
} names_t;

static char *quoted(const char *s, char *(*quote)(const char *), bool *failed) {
  if (s == NULL)
    return NULL;
  char *out = quote(s);
  *failed = *failed || out == NULL;
  return out;
}

static void names_make(names_t *n, const qreg_catalog_request_t *r) {
  memset(n, 0, sizeof *n);
  n->schema_literal = quoted(r->schema, sqlite_literal, &n->failed);
  n->schema_ident = quoted(r->schema, qreg_driver_quote_double, &n->failed);
  n->table_literal = quoted(r->table, sqlite_literal, &n->failed);
  n->table_ident = quoted(r->table, qreg_driver_quote_double, &n->failed);
  n->column_ident = quoted(r->column, qreg_driver_quote_double, &n->failed);
  n->pattern_literal = quoted(r->pattern, sqlite_literal, &n->failed);
}

static void names_free(names_t *n) {
  free(n->schema_literal);
  free(n->schema_ident);
  free(n->table_literal);
  free(n->table_ident);
  free(n->column_ident);
  free(n->pattern_literal);
}

/* User tables and views of pragma_table_list (alias l), not SQLite's own. */
#define USER_TABLES                                                                                \
  "l.type IN ('table', 'view', 'virtual') AND l.name NOT LIKE 'sqlite\\_%%' ESCAPE '\\'"

/* "schema"."table", or "table" alone: the FROM of SAMPLE and COLUMN_STATS. */
static int table_ref(const names_t *n, char **out) {
  return asprintf(out, "%s%s%s", n->schema_ident ? n->schema_ident : "", n->schema_ident ? "." : "",
                  n->table_ident);
}

int qreg__sqlite_catalog_sql(const qreg_catalog_request_t *request, char **sql_out,
                             char **message) {
  *sql_out = NULL;
  *message = NULL;
  names_t n;
  names_make(&n, request);
  unsigned long long limit = request->limit ? (unsigned long long)request->limit : DEFAULT_LIMIT;
  char *from = NULL;
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
    if (table_ref(&n, &from) >= 0)
      rc = asprintf(sql_out, "SELECT * FROM %s LIMIT %llu", from, limit);
  } else if (request->op == QREG_CATALOG_COLUMN_STATS) {
    if (table_ref(&n, &from) >= 0)
      rc = asprintf(sql_out,
                    "SELECT count(*) AS row_count, count(*) - count(t.%s) AS null_count, "
                    "count(DISTINCT t.%s) AS distinct_count, "
                    "CAST(min(t.%s) AS TEXT) AS min_value, CAST(max(t.%s) AS TEXT) AS max_value "
                    "FROM %s AS t",
                    n.column_ident, n.column_ident, n.column_ident, n.column_ident, from);
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
    names_free(&n);
    *message = strdup("sqlite: no such catalog operation");
    return QREG_EINVAL;
  }
  free(from);
  names_free(&n);
  if (rc < 0) {
    *sql_out = NULL;
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  return 0;
}
