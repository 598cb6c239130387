/*
 * src/drivers/postgres_catalog.c - the SQL that answers each catalog request
 * (qreg.h, qreg_catalog_op_t) on PostgreSQL, from pg_catalog (postgres.h
 * lists the driver's files). Owns nothing.
 *
 * The names in a request come from a model and are hostile: each is either
 * an E'' string literal (backslashes and quotes doubled, so its meaning does
 * not depend on standard_conforming_strings) compared with a catalog column,
 * or a quoted identifier ("..." with every double quote doubled) for SAMPLE
 * and COLUMN_STATS, which read the table itself. NUL bytes, invalid UTF-8 and
 * names longer than 63 bytes (which the server would cut to another name)
 * were refused by the core. Functions are schema-qualified (pg_catalog.) so
 * a user's search_path cannot put its own in their place.
 *
 * Schemas: without one, SCHEMAS, TABLES and SEARCH_COLUMNS cover every user
 * schema (not pg_catalog, information_schema, pg_toast or temporary ones);
 * DESCRIBE, SAMPLE and COLUMN_STATS take the relation an unqualified name
 * finds (the search_path: pg_table_is_visible). Relations are tables,
 * partitioned tables (not their partitions), views, materialized views and
 * foreign tables. Comments are obj_description / col_description;
 * row_estimate is reltuples, NULL when the table was never analyzed (-1).
 * A column's kind is its type's category (pg_type.typcategory: N number,
 * S text, B boolean, D date/time); statistics of an "other" column compare
 * its text, since some types (json, xml, point) have no equality or order.
 * Percentiles are percentile_disc; SAMPLE's random rows are ORDER BY
 * random(), which works on views too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/postgres.h"
#include "qreg.h"

/* The limit of SAMPLE and SEARCH_COLUMNS when the request says 0. */
#define DEFAULT_LIMIT 100

/* The relations the catalog shows (c is pg_class), and how it names their
   kind. */
#define USER_RELATIONS "c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition"
#define RELATION_TYPE                                                                              \
  "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' "                        \
  "WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END"
/* Schemas that hold the system, not the user's data (n is pg_namespace).
   User schemas cannot start with pg_: the server reserves the prefix. */
#define USER_SCHEMAS "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"

/* s as an E'' literal: E'a''b\\c', whose meaning does not depend on
   standard_conforming_strings. malloc'd; NULL on ENOMEM. */
static char *pg_literal(const char *s) {
  return qreg_driver_quote(s, "E", '\'', true);
}

/* The quoted and literal forms of the request's names, NULL when absent. */
typedef struct names {
  qreg_catalog_names_t q; /* the request's names, quoted */
  char *schema_filter;    /* "n.nspname = E'x'" or USER_SCHEMAS */
  char *table_filter;     /* DESCRIBE: the relation by name, in its schema or
                          the one the search_path finds */
} names_t;

static char *format(bool *failed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *format(bool *failed, const char *fmt, ...) {
  char *out = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&out, fmt, ap) < 0)
    out = NULL;
  va_end(ap);
  *failed = *failed || out == NULL;
  return out;
}

static void names_make(names_t *n, const qreg_catalog_request_t *r) {
  memset(n, 0, sizeof *n);
  qreg_catalog_names_make(&n->q, r, pg_literal);
  if (n->q.failed)
    return;
  n->schema_filter = n->q.schema_literal
                         ? format(&n->q.failed, "n.nspname = %s", n->q.schema_literal)
                         : format(&n->q.failed, "%s", USER_SCHEMAS);
  if (n->q.table_literal != NULL)
    n->table_filter =
        n->q.schema_literal
            ? format(&n->q.failed, "c.relname = %s AND n.nspname = %s", n->q.table_literal,
                     n->q.schema_literal)
            : format(&n->q.failed, "c.relname = %s AND pg_catalog.pg_table_is_visible(c.oid)",
                     n->q.table_literal);
}

static void names_free(names_t *n) {
  qreg_catalog_names_free(&n->q);
  free(n->schema_filter);
  free(n->table_filter);
}

static char *schemas_sql(const names_t *n) {
  bool failed = false;
  return format(&failed,
                "SELECT n.nspname AS schema_name FROM pg_catalog.pg_namespace n WHERE %s "
                "ORDER BY 1",
                n->schema_filter);
}

static char *tables_sql(const names_t *n) {
  bool failed = false;
  return format(&failed,
                "SELECT n.nspname AS schema, c.relname AS name, " RELATION_TYPE " AS type, "
                "pg_catalog.obj_description(c.oid, 'pg_class') AS comment, "
                "CASE WHEN c.relkind IN ('r', 'm') AND c.reltuples >= 0 "
                "THEN c.reltuples::pg_catalog.int8 END AS row_estimate "
                "FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE " USER_RELATIONS " AND %s ORDER BY 1, 2",
                n->schema_filter);
}

static char *describe_sql(const names_t *n) {
  bool failed = false;
  return format(
      &failed,
      "SELECT a.attnum::pg_catalog.int4 AS ordinal, a.attname AS name, "
      "pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable, "
      "CASE a.attidentity WHEN 'a' THEN 'generated always as identity' "
      "WHEN 'd' THEN 'generated by default as identity' "
      "ELSE pg_catalog.pg_get_expr(d.adbin, d.adrelid) END AS default_value, "
      "pg_catalog.col_description(c.oid, a.attnum) AS comment, "
      "COALESCE(a.attnum = ANY (pk.indkey::pg_catalog.int2[]), false) AS primary_key, "
      "CASE (SELECT ty.typcategory FROM pg_catalog.pg_type ty WHERE ty.oid = a.atttypid) "
      "WHEN 'N' THEN 'number' WHEN 'S' THEN 'text' WHEN 'B' THEN 'boolean' "
      "WHEN 'D' THEN 'date' ELSE 'other' END AS kind "
      "FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
      "AND NOT a.attisdropped "
      "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
      "LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary "
      "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND %s ORDER BY a.attnum",
      n->table_filter);
}

/* One column's statistics: a SELECT of one row. min and max in the column
   type's own order (not text order), as text: ORDER BY works for every type
   with a btree order, booleans included, which have no min(); an "other"
   column is compared as text. false when out of memory. */
static bool column_stats_one(FILE *out, const names_t *n, size_t i) {
  const char *col = n->q.column_idents[i], *kind = n->q.column_kinds[i], *from = n->q.from;
  bool other = strcmp(kind, QREG_COLUMN_KIND_OTHER) == 0;
  char *value = NULL;
  if (asprintf(&value, other ? "t.%s::pg_catalog.text" : "t.%s", col) < 0)
    return false;
  fprintf(out,
          "SELECT s.row_count, s.null_count, s.distinct_count, "
          "(SELECT %s::pg_catalog.text FROM %s AS t WHERE t.%s IS NOT NULL "
          "ORDER BY %s ASC LIMIT 1) AS min_value, "
          "(SELECT %s::pg_catalog.text FROM %s AS t WHERE t.%s IS NOT NULL "
          "ORDER BY %s DESC LIMIT 1) AS max_value, ",
          value, from, col, value, value, from, col, value);
  if (strcmp(kind, QREG_COLUMN_KIND_NUMBER) == 0)
    fprintf(out,
            "(SELECT pg_catalog.avg(t.%s)::pg_catalog.float8 FROM %s AS t) AS mean, "
            "(SELECT (pg_catalog.percentile_disc(ARRAY[0.25, 0.5, 0.75]::pg_catalog.float8[]) "
            "WITHIN GROUP (ORDER BY t.%s))::pg_catalog.text[] FROM %s AS t) AS pct, ",
            col, from, col, from);
  else
    fputs("NULL::pg_catalog.float8 AS mean, NULL::pg_catalog.text[] AS pct, ", out);
  if (strcmp(kind, QREG_COLUMN_KIND_BOOLEAN) == 0)
    fprintf(out,
            "(SELECT pg_catalog.count(*) FROM %s AS t WHERE t.%s) AS true_count, "
            "(SELECT pg_catalog.count(*) FROM %s AS t WHERE NOT t.%s) AS false_count, ",
            from, col, from, col);
  else
    fputs("NULL::pg_catalog.int8 AS true_count, NULL::pg_catalog.int8 AS false_count, ", out);
  if (strcmp(kind, QREG_COLUMN_KIND_TEXT) == 0)
    fprintf(out,
            "(SELECT pg_catalog.json_agg(pg_catalog.json_build_object('value', k.v, "
            "'count', k.c) ORDER BY k.c DESC, k.v)::pg_catalog.text FROM "
            "(SELECT t.%s AS v, pg_catalog.count(*) AS c FROM %s AS t WHERE t.%s IS NOT NULL "
            "GROUP BY t.%s ORDER BY c DESC, v LIMIT 5) AS k) AS top_values, ",
            col, from, col, col);
  else
    fputs("NULL::pg_catalog.text AS top_values, ", out);
  fprintf(out,
          "%s::pg_catalog.text AS column_name "
          "FROM (SELECT pg_catalog.count(*) AS row_count, "
          "pg_catalog.count(*) - pg_catalog.count(t.%s) AS null_count, "
          "pg_catalog.count(DISTINCT %s) AS distinct_count FROM %s AS t) AS s",
          n->q.column_literals[i], col, value, from);
  free(value);
  return true;
}

/* COLUMN_STATS: a row per column (UNION ALL, in request order), with the
   percentiles taken apart. */
static char *column_stats_sql(const names_t *n) {
  char *sql = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&sql, &size);
  if (!out)
    return NULL;
  fputs("SELECT x.row_count, x.null_count, x.distinct_count, x.min_value, x.max_value, "
        "x.mean, x.pct[1] AS p25, x.pct[2] AS p50, x.pct[3] AS p75, x.true_count, "
        "x.false_count, x.top_values, x.column_name FROM (",
        out);
  bool ok = true;
  for (size_t i = 0; i < n->q.column_count && ok; i++) {
    fprintf(out, "%s(", i ? " UNION ALL " : "");
    ok = column_stats_one(out, n, i);
    fputs(")", out);
  }
  fputs(") AS x", out);
  if (fclose(out) != 0 || !ok) {
    free(sql);
    return NULL;
  }
  return sql;
}

static char *indexes_sql(const names_t *n) {
  bool failed = false;
  return format(&failed,
                "SELECT i.relname AS index_name, "
                "(SELECT pg_catalog.string_agg(pg_catalog.pg_get_indexdef(x.indexrelid, k.n, "
                "true), ', ' ORDER BY k.n) FROM pg_catalog.generate_series(1, "
                "x.indnkeyatts::pg_catalog.int4) AS k(n)) AS columns, "
                "x.indisunique AS is_unique, x.indisprimary AS is_primary "
                "FROM pg_catalog.pg_index x "
                "JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_catalog.pg_class c ON c.oid = x.indrelid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE %s ORDER BY NOT x.indisprimary, i.relname",
                n->table_filter);
}

static char *foreign_keys_sql(const names_t *n) {
  bool failed = false;
  return format(
      &failed,
      "SELECT con.conname AS name, "
      "(SELECT pg_catalog.string_agg(a.attname::pg_catalog.text, ', ' ORDER BY k.i) "
      "FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, i) "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) "
      "AS columns, rn.nspname AS referenced_schema, rc.relname AS referenced_table, "
      "(SELECT pg_catalog.string_agg(a.attname::pg_catalog.text, ', ' ORDER BY k.i) "
      "FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, i) "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) "
      "AS referenced_columns "
      "FROM pg_catalog.pg_constraint con "
      "JOIN pg_catalog.pg_class c ON c.oid = con.conrelid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid "
      "JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace "
      "WHERE con.contype = 'f' AND %s ORDER BY con.conname",
      n->table_filter);
}

static char *search_columns_sql(const names_t *n, unsigned long long limit) {
  bool failed = false;
  return format(&failed,
                "SELECT n.nspname AS schema, c.relname AS table_name, a.attname AS column_name, "
                "pg_catalog.format_type(a.atttypid, a.atttypmod) AS type "
                "FROM pg_catalog.pg_attribute a "
                "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE " USER_RELATIONS " AND a.attnum > 0 AND NOT a.attisdropped AND %s "
                "AND pg_catalog.strpos(pg_catalog.lower(a.attname::pg_catalog.text), "
                "pg_catalog.lower(%s)) > 0 "
                "ORDER BY 1, 2, a.attnum LIMIT %llu",
                n->schema_filter, n->q.pattern_literal, limit);
}

int qreg__pg_catalog_sql(const qreg_catalog_request_t *request, char **sql_out, char **message) {
  *sql_out = NULL;
  *message = NULL;
  names_t n;
  names_make(&n, request);
  unsigned long long limit = request->limit ? (unsigned long long)request->limit : DEFAULT_LIMIT;
  char *sql = NULL;
  bool known = true, missing = false;
  if (!n.q.failed) {
    switch (request->op) {
    case QREG_CATALOG_SCHEMAS:
      sql = schemas_sql(&n);
      break;
    case QREG_CATALOG_TABLES:
      sql = tables_sql(&n);
      break;
    case QREG_CATALOG_DESCRIBE:
      missing = n.table_filter == NULL;
      sql = missing ? NULL : describe_sql(&n);
      break;
    case QREG_CATALOG_SAMPLE:
      missing = n.q.from == NULL;
      sql = missing
                ? NULL
                : qreg_catalog_sample_sql(&n.q,
                                          request->columns == NULL || request->column_count == 0,
                                          request->random ? "pg_catalog.random()" : NULL, limit);
      break;
    case QREG_CATALOG_COLUMN_STATS:
      missing = n.q.from == NULL || n.q.column_count == 0;
      sql = missing ? NULL : column_stats_sql(&n);
      break;
    case QREG_CATALOG_INDEXES:
      missing = n.table_filter == NULL;
      sql = missing ? NULL : indexes_sql(&n);
      break;
    case QREG_CATALOG_FOREIGN_KEYS:
      missing = n.table_filter == NULL;
      sql = missing ? NULL : foreign_keys_sql(&n);
      break;
    case QREG_CATALOG_SEARCH_COLUMNS:
      missing = n.q.pattern_literal == NULL;
      sql = missing ? NULL : search_columns_sql(&n, limit);
      break;
    default:
      known = false;
      break;
    }
  }
  names_free(&n);
  if (!known || missing) {
    *message = strdup(!known ? "postgres: no such catalog operation"
                             : "postgres: a name this operation needs is missing");
    return QREG_EINVAL;
  }
  if (sql == NULL) {
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  *sql_out = sql;
  return 0;
}
