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
 * SQLite has no comments on tables or columns and no row estimate that a
 * query can read without failing where ANALYZE never ran: those are NULL.
 * A column's kind comes from its declared type by SQLite's own affinity
 * words (BOOL, DATE/TIME, INT, CHAR/CLOB/TEXT, REAL/FLOA/DOUB/NUM/DEC).
 * Percentiles are nearest-rank (percentile_disc): the first value whose
 * rank reaches p of the non-NULL values. Schemas are main, temp and attached
 * databases; without one, TABLES and SEARCH_COLUMNS cover them all and
 * DESCRIBE, SAMPLE and COLUMN_STATS take the first that has the table
 * (temp, main, then attached: SQLite's own search order).
 */
#include "drivers/sqlite_catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qreg.h"

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

/* The kind of a declared type (an expression over column c.type). */
#define COLUMN_KIND                                                                                \
  "CASE WHEN instr(upper(c.type), 'BOOL') THEN 'boolean' "                                         \
  "WHEN instr(upper(c.type), 'DATE') OR instr(upper(c.type), 'TIME') THEN 'date' "                 \
  "WHEN instr(upper(c.type), 'INT') THEN 'number' "                                                \
  "WHEN instr(upper(c.type), 'CHAR') OR instr(upper(c.type), 'CLOB') "                             \
  "OR instr(upper(c.type), 'TEXT') THEN 'text' "                                                   \
  "WHEN instr(upper(c.type), 'REAL') OR instr(upper(c.type), 'FLOA') "                             \
  "OR instr(upper(c.type), 'DOUB') OR instr(upper(c.type), 'NUM') "                                \
  "OR instr(upper(c.type), 'DEC') THEN 'number' ELSE 'other' END"

/* The nearest-rank value at num/den of column col's non-NULL values, as
   text, appended to out. */
static void percentile(FILE *out, const char *from, const char *col, int num, int den) {
  fprintf(out,
          "(SELECT CAST(p.v AS TEXT) FROM (SELECT u.%s AS v, "
          "row_number() OVER (ORDER BY u.%s) AS rn, count(*) OVER () AS n "
          "FROM %s AS u WHERE u.%s IS NOT NULL) AS p WHERE p.rn = (p.n * %d + %d) / %d)",
          col, col, from, col, num, den - 1, den);
}

/* COLUMN_STATS: one SELECT per column, joined by UNION ALL. */
static char *column_stats_sql(const qreg_catalog_names_t *n) {
  char *sql = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&sql, &size);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n->column_count; i++) {
    const char *col = n->column_idents[i], *kind = n->column_kinds[i];
    bool number = strcmp(kind, QREG_COLUMN_KIND_NUMBER) == 0;
    if (i > 0)
      fputs(" UNION ALL ", out);
    fprintf(out,
            "SELECT count(*) AS row_count, count(*) - count(t.%s) AS null_count, "
            "count(DISTINCT t.%s) AS distinct_count, "
            "CAST(min(t.%s) AS TEXT) AS min_value, CAST(max(t.%s) AS TEXT) AS max_value, ",
            col, col, col, col);
    if (number) {
      fprintf(out, "avg(t.%s) AS mean, ", col);
      percentile(out, n->from, col, 1, 4);
      fputs(" AS p25, ", out);
      percentile(out, n->from, col, 1, 2);
      fputs(" AS p50, ", out);
      percentile(out, n->from, col, 3, 4);
      fputs(" AS p75, ", out);
    } else {
      fputs("NULL AS mean, NULL AS p25, NULL AS p50, NULL AS p75, ", out);
    }
    if (strcmp(kind, QREG_COLUMN_KIND_BOOLEAN) == 0)
      fprintf(out,
              "sum(CASE WHEN t.%s THEN 1 ELSE 0 END) AS true_count, "
              "sum(CASE WHEN NOT t.%s THEN 1 ELSE 0 END) AS false_count, ",
              col, col);
    else
      fputs("NULL AS true_count, NULL AS false_count, ", out);
    if (strcmp(kind, QREG_COLUMN_KIND_TEXT) == 0)
      fprintf(out,
              "(SELECT json_group_array(json_object('value', k.v, 'count', k.c)) FROM "
              "(SELECT u.%s AS v, count(*) AS c FROM %s AS u WHERE u.%s IS NOT NULL "
              "GROUP BY u.%s ORDER BY c DESC, v LIMIT 5) AS k) AS top_values, ",
              col, n->from, col, col);
    else
      fputs("NULL AS top_values, ", out);
    fprintf(out, "%s AS column_name FROM %s AS t", n->column_literals[i], n->from);
  }
  if (fclose(out) != 0) {
    free(sql);
    return NULL;
  }
  return sql;
}

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
                  "NULL AS comment, c.pk > 0 AS primary_key, " COLUMN_KIND " AS kind "
                  "FROM pragma_table_xinfo(%s%s%s) AS c WHERE c.hidden <> 1 ORDER BY c.cid",
                  n.table_literal, n.schema_literal ? ", " : "",
                  n.schema_literal ? n.schema_literal : "");
  } else if (request->op == QREG_CATALOG_SAMPLE) {
    bool all = request->columns == NULL || request->column_count == 0;
    *sql_out = qreg_catalog_sample_sql(&n, all, request->random ? "random()" : NULL, limit);
    rc = *sql_out ? 0 : -1;
  } else if (request->op == QREG_CATALOG_COLUMN_STATS) {
    *sql_out = column_stats_sql(&n);
    rc = *sql_out ? 0 : -1;
  } else if (request->op == QREG_CATALOG_INDEXES) {
    /* pragma_index_info of each index, in key order; an expression's
       column has no name. */
    rc = asprintf(sql_out,
                  "SELECT il.name AS index_name, "
                  "(SELECT group_concat(coalesce(ii.name, '(expression)'), ', ') FROM "
                  "(SELECT name FROM pragma_index_info(il.name%s%s) ORDER BY seqno) AS ii) "
                  "AS columns, il.\"unique\" = 1 AS is_unique, il.origin = 'pk' AS is_primary "
                  "FROM pragma_index_list(%s%s%s) AS il ORDER BY il.origin <> 'pk', il.name",
                  n.schema_literal ? ", " : "", n.schema_literal ? n.schema_literal : "",
                  n.table_literal, n.schema_literal ? ", " : "",
                  n.schema_literal ? n.schema_literal : "");
  } else if (request->op == QREG_CATALOG_FOREIGN_KEYS) {
    rc = asprintf(sql_out,
                  "SELECT 'fk' || f.id AS name, group_concat(f.\"from\", ', ') AS columns, "
                  "NULL AS referenced_schema, f.\"table\" AS referenced_table, "
                  "group_concat(f.\"to\", ', ') AS referenced_columns "
                  "FROM (SELECT * FROM pragma_foreign_key_list(%s%s%s) ORDER BY id, seq) AS f "
                  "GROUP BY f.id ORDER BY f.id",
                  n.table_literal, n.schema_literal ? ", " : "",
                  n.schema_literal ? n.schema_literal : "");
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
