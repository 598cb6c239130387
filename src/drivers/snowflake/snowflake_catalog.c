/*
 * src/drivers/snowflake/snowflake_catalog.c - the SQL that answers each
 * catalog request (qreg.h, qreg_catalog_op_t) on Snowflake. Owns nothing.
 *
 * Schemas, tables, views and columns come from the current database's
 * INFORMATION_SCHEMA (SCHEMATA, TABLES, COLUMNS): unlike SHOW, whose
 * output columns cannot be renamed in one statement, it gives the columns
 * every driver's catalog answers with. SAMPLE reads the table with
 * Snowflake's SAMPLE (N ROWS), statistics use APPROX_COUNT_DISTINCT (a
 * HyperLogLog estimate: exact counts of distinct values on a large table
 * are what an agent should not start by accident).
 *
 * The names in a request come from a model and are hostile: each is an
 * identifier ("..." with every '"' doubled) or a string literal ('...' with
 * every quote AND every backslash doubled: Snowflake reads backslash
 * escapes in literals). Output columns are quoted lower-case aliases, as
 * the other drivers name them (unquoted, Snowflake would upper-case them).
 * Without a schema, DESCRIBE, SAMPLE and COLUMN_STATS take the session's
 * current schema (the URL's), the others every schema of the database but
 * INFORMATION_SCHEMA.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/snowflake/snowflake.h"

#define DEFAULT_LIMIT 100
/* SAMPLE (N ROWS) takes at most a million rows. */
#define MAX_SAMPLE 1000000ULL

static char *sf_literal(const char *s) {
  return qreg_driver_quote(s, "", '\'', true);
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
  char *out = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&out, fmt, ap) < 0)
    out = NULL;
  va_end(ap);
  return out;
}

int qreg__sf_catalog_sql(const qreg_catalog_request_t *request, char **sql_out, char **message) {
  *sql_out = NULL;
  *message = NULL;
  qreg_catalog_names_t n;
  qreg_catalog_names_make(&n, request, sf_literal);
  unsigned long long limit = request->limit ? (unsigned long long)request->limit : DEFAULT_LIMIT;
  char *schema_filter = NULL, *table_schema = NULL;
  if (!n.failed) {
    schema_filter = n.schema_literal ? format("TABLE_SCHEMA = %s", n.schema_literal)
                                     : format("TABLE_SCHEMA <> 'INFORMATION_SCHEMA'");
    table_schema = n.schema_literal ? format("TABLE_SCHEMA = %s", n.schema_literal)
                                    : format("TABLE_SCHEMA = CURRENT_SCHEMA()");
  }
  char *sql = NULL;
  bool known = true, missing = false;
  if (schema_filter != NULL && table_schema != NULL) {
    switch (request->op) {
    case QREG_CATALOG_SCHEMAS:
      sql = format("SELECT SCHEMA_NAME AS \"schema_name\" FROM INFORMATION_SCHEMA.SCHEMATA "
                   "WHERE %s%s ORDER BY 1",
                   n.schema_literal ? "SCHEMA_NAME = " : "SCHEMA_NAME <> 'INFORMATION_SCHEMA'",
                   n.schema_literal ? n.schema_literal : "");
      break;
    case QREG_CATALOG_TABLES:
      sql = format("SELECT TABLE_SCHEMA AS \"schema\", TABLE_NAME AS \"name\", "
                   "CASE TABLE_TYPE WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' "
                   "ELSE LOWER(TABLE_TYPE) END AS \"type\", COMMENT AS \"comment\", "
                   "ROW_COUNT AS \"row_estimate\" FROM INFORMATION_SCHEMA.TABLES "
                   "WHERE %s ORDER BY 1, 2",
                   schema_filter);
      break;
    case QREG_CATALOG_DESCRIBE:
      missing = n.table_literal == NULL;
      if (!missing)
        sql = format("SELECT ORDINAL_POSITION AS \"ordinal\", COLUMN_NAME AS \"name\", "
                     "DATA_TYPE AS \"type\", IS_NULLABLE = 'YES' AS \"nullable\", "
                     "COLUMN_DEFAULT AS \"default_value\", COMMENT AS \"comment\", "
                     "NULL::BOOLEAN AS \"primary_key\" FROM INFORMATION_SCHEMA.COLUMNS "
                     "WHERE TABLE_NAME = %s AND %s ORDER BY ORDINAL_POSITION",
                     n.table_literal, table_schema);
      break;
    case QREG_CATALOG_SAMPLE:
      missing = n.from == NULL;
      if (!missing)
        sql = format("SELECT * FROM %s SAMPLE (%llu ROWS)", n.from,
                     limit < MAX_SAMPLE ? limit : MAX_SAMPLE);
      break;
    case QREG_CATALOG_COLUMN_STATS:
      missing = n.from == NULL || n.column_ident == NULL;
      if (!missing)
        sql = format("SELECT COUNT(*) AS \"row_count\", COUNT(*) - COUNT(t.%s) AS \"null_count\", "
                     "APPROX_COUNT_DISTINCT(t.%s) AS \"distinct_count\", "
                     "MIN(t.%s)::VARCHAR AS \"min_value\", MAX(t.%s)::VARCHAR AS \"max_value\" "
                     "FROM %s AS t",
                     n.column_ident, n.column_ident, n.column_ident, n.column_ident, n.from);
      break;
    case QREG_CATALOG_SEARCH_COLUMNS:
      missing = n.pattern_literal == NULL;
      if (!missing)
        sql = format("SELECT TABLE_SCHEMA AS \"schema\", TABLE_NAME AS \"table_name\", "
                     "COLUMN_NAME AS \"column_name\", DATA_TYPE AS \"type\" "
                     "FROM INFORMATION_SCHEMA.COLUMNS WHERE %s "
                     "AND CONTAINS(LOWER(COLUMN_NAME), LOWER(%s)) "
                     "ORDER BY 1, 2, ORDINAL_POSITION LIMIT %llu",
                     schema_filter, n.pattern_literal, limit);
      break;
    default:
      known = false;
      break;
    }
  }
  free(schema_filter);
  free(table_schema);
  qreg_catalog_names_free(&n);
  if (!known || missing) {
    *message = strdup(!known ? "snowflake: no such catalog operation"
                             : "snowflake: a name this operation needs is missing");
    return QREG_EINVAL;
  }
  if (sql == NULL) {
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  *sql_out = sql;
  return 0;
}
