/*
 * src/drivers/postgres_values.h - PostgreSQL values as qreg values: how the
 * postgres driver turns one text-format field into a typed result value, and
 * the names of the built-in types it knows without asking the server.
 * Owns nothing; pure functions used by postgres.c on the loop thread.
 */
#ifndef QREG_DRIVERS_POSTGRES_VALUES_H
#define QREG_DRIVERS_POSTGRES_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/result.h"

/* PostgreSQL type OIDs are unsigned 32-bit (libpq's Oid). */
typedef unsigned int qreg__pg_oid_t;

/* format_type(oid, NULL) of a built-in type ("integer", "text",
   "timestamp with time zone", "integer[]", ...), or NULL when the OID is not
   in the built-in table (extension and user types: the driver asks the
   server). Built-in OIDs are fixed across PostgreSQL versions. */
const char *qreg__pg_builtin_type_name(qreg__pg_oid_t oid);

/*
 * Writes one field of a row into result (between row_begin and row_end):
 * NULL -> null; int2/int4/int8 -> int; float4/float8 -> float; bool -> bool;
 * json/jsonb -> json; bytea -> bytes (hex or escape output decoded);
 * timestamp/timestamptz -> ISO 8601 text with a 'T' between date and time;
 * everything else (numeric, text, date, time, uuid, arrays, ...) -> text,
 * exactly as the server printed it. Text that is not valid UTF-8 (possible
 * with a SQL_ASCII database) has each invalid byte replaced by U+FFFD.
 * Returns what the qreg_result_put_* call returned (0, QREG_RESULT_FULL or
 * a negative QREG_E* code).
 */
int qreg__pg_put_value(qreg_result_t *result, qreg__pg_oid_t oid, const char *text, size_t len,
                       bool is_null);

#endif /* QREG_DRIVERS_POSTGRES_VALUES_H */
