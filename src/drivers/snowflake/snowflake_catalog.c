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
/* A column's kind (qreg.h, QREG_COLUMN_KIND_*) from its DATA_TYPE (inside a format: %%). */
#define KIND_OF_DATA_TYPE                                                                          \
  "CASE WHEN DATA_TYPE IN ('NUMBER', 'FLOAT') THEN 'number' WHEN DATA_TYPE = 'TEXT' THEN 'text' "  \
  "WHEN DATA_TYPE = 'BOOLEAN' THEN 'boolean' "                                                     \
  "WHEN DATA_TYPE IN ('DATE', 'TIME') OR DATA_TYPE LIKE 'TIMESTAMP%%' THEN 'date' "                \
  "ELSE 'other' END"
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

/* The named columns ("*" when all), comma-separated identifiers. */
static char *column_list(const qreg_catalog_names_t *n, bool all) {
  if (all)
    return strdup("*");
  char *out = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&out, &size);
  if (f == NULL)
    return NULL;
  for (size_t i = 0; i < n->column_count; i++)
    fprintf(f, "%s%s", i ? ", " : "", n->column_idents[i]);
  if (fclose(f) != 0) {
    free(out);
    return NULL;
  }
  return out;
}

/* One column's statistics (qreg.h, QREG_CATALOG_COLUMN_STATS): one row,
   the statistics its kind has, NULL for the others. */
static void column_stats_one(FILE *out, const qreg_catalog_names_t *n, size_t i) {
  const char *col = n->column_idents[i], *kind = n->column_kinds[i], *from = n->from;
  bool number = strcmp(kind, QREG_COLUMN_KIND_NUMBER) == 0;
  bool boolean = strcmp(kind, QREG_COLUMN_KIND_BOOLEAN) == 0;
  bool text = strcmp(kind, QREG_COLUMN_KIND_TEXT) == 0;
  /* min/max in the type's own order; "other" types (VARIANT, ...) as text. */
  bool ordered = strcmp(kind, QREG_COLUMN_KIND_OTHER) != 0;
  fprintf(out,
          "SELECT COUNT(*) AS \"row_count\", COUNT(*) - COUNT(t.%s) AS \"null_count\", "
          "APPROX_COUNT_DISTINCT(t.%s) AS \"distinct_count\", "
          "MIN(t.%s%s)::VARCHAR AS \"min_value\", MAX(t.%s%s)::VARCHAR AS \"max_value\", ",
          col, col, col, ordered ? "" : "::VARCHAR", col, ordered ? "" : "::VARCHAR");
  if (number)
    fprintf(out,
            "AVG(t.%s)::FLOAT AS \"mean\", "
            "(PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY t.%s))::VARCHAR AS \"p25\", "
            "(PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY t.%s))::VARCHAR AS \"p50\", "
            "(PERCENTILE_DISC(0.75) WITHIN GROUP (ORDER BY t.%s))::VARCHAR AS \"p75\", ",
            col, col, col, col);
  else
    fputs("NULL::FLOAT AS \"mean\", NULL::VARCHAR AS \"p25\", NULL::VARCHAR AS \"p50\", "
          "NULL::VARCHAR AS \"p75\", ",
          out);
  if (boolean)
    fprintf(out, "COUNT_IF(t.%s) AS \"true_count\", COUNT_IF(NOT t.%s) AS \"false_count\", ", col,
            col);
  else
    fputs("NULL::NUMBER AS \"true_count\", NULL::NUMBER AS \"false_count\", ", out);
  if (text)
    fprintf(out,
            "(SELECT ARRAY_AGG(OBJECT_CONSTRUCT('value', k.v, 'count', k.c)) "
            "WITHIN GROUP (ORDER BY k.c DESC, k.v) FROM (SELECT u.%s AS v, COUNT(*) AS c "
            "FROM %s AS u WHERE u.%s IS NOT NULL GROUP BY u.%s ORDER BY c DESC, v LIMIT 5) "
            "AS k)::VARCHAR AS \"top_values\", ",
            col, from, col, col);
  else
    fputs("NULL::VARCHAR AS \"top_values\", ", out);
  fprintf(out, "%s AS \"column_name\" FROM %s AS t", n->column_literals[i], from);
}

/* COLUMN_STATS: a row per column, in request order. */
static char *column_stats_sql(const qreg_catalog_names_t *n) {
  char *sql = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&sql, &size);
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < n->column_count; i++) {
    fputs(i ? " UNION ALL (" : "(", out);
    column_stats_one(out, n, i);
    fputs(")", out);
  }
  if (fclose(out) != 0) {
    free(sql);
    return NULL;
  }
  return sql;
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
  bool known = true, missing = false, unsupported = false;
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
                     "NULL::BOOLEAN AS \"primary_key\", " KIND_OF_DATA_TYPE " AS \"kind\" "
                     "FROM INFORMATION_SCHEMA.COLUMNS "
                     "WHERE TABLE_NAME = %s AND %s ORDER BY ORDINAL_POSITION",
                     n.table_literal, table_schema);
      break;
    case QREG_CATALOG_SAMPLE:
      missing = n.from == NULL;
      if (!missing && request->random) {
        char *columns = column_list(&n, request->columns == NULL || request->column_count == 0);
        sql = columns ? format("SELECT %s FROM %s SAMPLE (%llu ROWS)", columns, n.from,
                               limit < MAX_SAMPLE ? limit : MAX_SAMPLE)
                      : NULL;
        free(columns);
      } else if (!missing) {
        sql = qreg_catalog_sample_sql(&n, request->columns == NULL || request->column_count == 0,
                                      NULL, limit);
      }
      break;
    case QREG_CATALOG_COLUMN_STATS:
      missing = n.from == NULL || n.column_count == 0;
      if (!missing)
        sql = column_stats_sql(&n);
      break;
    case QREG_CATALOG_INDEXES:
    case QREG_CATALOG_FOREIGN_KEYS:
      /* Snowflake's tables have no indexes, and its foreign keys (not
         enforced) are read with SHOW IMPORTED KEYS, whose columns cannot be
         renamed in one statement: not offered (describe_table says null). */
      unsupported = true;
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
  if (!known || missing || unsupported) {
    *message = strdup(!known        ? "snowflake: no such catalog operation"
                      : unsupported ? "snowflake: no indexes or foreign keys to list"
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
