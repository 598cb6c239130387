/*
 * tests/test-snowflake-sql.c - the Snowflake driver's read-only check
 * (src/drivers/snowflake/snowflake_sql.c): which statements count as
 * queries by their first keyword, after white space, comments and opening
 * parentheses. Pure function, no server.
 *
 * How it fails: a statement that writes (or calls a procedure) passing as a
 * query, or a query refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "drivers/snowflake/snowflake.h"

static bool is_query(const char *sql) {
  return qreg__sf_sql_is_query(sql, strlen(sql));
}

static void queries(void **state) {
  (void)state;
  static const char *const accepted[] = {
      "SELECT 1",
      "select * from t",
      "  \n\tSELECT 1",
      "(SELECT 1) UNION (SELECT 2)",
      "((select 1))",
      "-- a comment\nSELECT 1",
      "// a comment\nSELECT 1",
      "/* block */ SELECT 1",
      "/* multi\nline */ -- and\n ( /* more */ SELECT 1)",
      "SHOW TABLES",
      "show schemas in database db",
      "DESCRIBE TABLE t",
      "DESC TABLE t",
      "EXPLAIN USING TEXT SELECT 1",
      "WITH a AS (SELECT 1) SELECT * FROM a",
      "with recursive r (n) as (select 1 union all select n + 1 from r where n < 3) select * "
      "from r",
      "WITH a AS (SELECT ')' AS x), b AS (SELECT \"a)\" FROM a) SELECT * FROM b",
      "WITH \"weird name\" AS (SELECT 'it''s' , 'back\\'slash') (SELECT 1)",
      "WITH a AS (SELECT $$ ) INSERT $$) SELECT 1",
      "WITH a AS (SELECT 1 /* ) */) -- )\n SELECT 1",
      "CALL SYSTEM$WAIT(10)",
      "call system$wait ( 2 , 'SECONDS' ) ;",
      "/* sleep */ CALL SYSTEM$WAIT(1, 'minutes') -- done",
  };
  for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
    if (!is_query(accepted[i]))
      fail_msg("refused a query: %s", accepted[i]);
  }
}

static void not_queries(void **state) {
  (void)state;
  static const char *const refused[] = {
      "",
      "   ",
      "-- only a comment",
      "/* unterminated SELECT 1",
      "INSERT INTO t VALUES (1)",
      "UPDATE t SET a = 1",
      "DELETE FROM t",
      "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
      "DROP TABLE t",
      "CREATE TABLE t (a INT)",
      "ALTER USER u SET RSA_PUBLIC_KEY = 'x'",
      "GRANT ROLE r TO USER u",
      "COPY INTO @stage FROM t",
      "CALL my_procedure()",
      "CALL SYSTEM$WAIT(1); DROP TABLE t",
      "CALL SYSTEM$WAIT(1) UNION SELECT 1",
      "CALL SYSTEM$WAIT((SELECT 1))",
      "CALL SYSTEM$WAIT(1, 'SECONDS', 3)",
      "CALL SYSTEM$WAIT(1, 'SEC'' OR 1')",
      "CALL SYSTEM$WAIT(-1)",
      "CALL SYSTEM$WAIT()",
      "CALL SYSTEM$WAIT(1",
      "CALL SYSTEM$WAIT_FOR(1)",
      "CALL \"SYSTEM$WAIT\"(1)",
      "CALL SYSTEM$CANCEL_ALL_QUERIES(1)",
      "EXECUTE IMMEDIATE 'DROP TABLE t'",
      "PUT file:///tmp/x @stage",
      "USE ROLE accountadmin",
      "TRUNCATE TABLE t",
      "UNDROP TABLE t",
      "BEGIN",
      "SELECTX 1",
      "(INSERT INTO t VALUES (1))",
      "-- SELECT\nDROP TABLE t",
      "/* SELECT */ DROP TABLE t",
      "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
      "WITH a AS (SELECT 1) DELETE FROM t",
      "WITH p AS PROCEDURE () RETURNS INT LANGUAGE SQL AS 'BEGIN DROP TABLE t; RETURN 1; END' "
      "CALL p()",
      "WITH a AS (SELECT 1",
      "WITH a AS (SELECT ')') ",
      "WITH a (SELECT 1) SELECT 1",
      "WITH a AS (SELECT 'unterminated) SELECT 1",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    if (is_query(refused[i]))
      fail_msg("accepted a statement that is not a query: %s", refused[i]);
  }
}

/* The length is honoured: what follows it is not read. */
static void length_bounds(void **state) {
  (void)state;
  const char *sql = "SELECT 1";
  assert_false(qreg__sf_sql_is_query(sql, 3));
  assert_true(qreg__sf_sql_is_query("SHOW TABLESxxxx", 4));
  assert_false(qreg__sf_sql_is_query("/* x */ SELECT", 6));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(queries),
      cmocka_unit_test(not_queries),
      cmocka_unit_test(length_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
