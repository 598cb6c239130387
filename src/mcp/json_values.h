/*
 * src/mcp/json_values.h - the JSON forms of registry objects (json_values.c),
 * shared by the tools and the tasks of the MCP server.
 *
 * Every function returns a new JSON value that belongs to the caller.
 */
#ifndef QREG_MCP_JSON_VALUES_H
#define QREG_MCP_JSON_VALUES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mcp/jsonrpc.h"
#include "qreg.h"

/* A JSON string of len bytes of text; bytes that are not UTF-8 become U+FFFD. */
json_t *mcp_json_text(const char *s, size_t len);

/* One result value as qreg_value_json() writes it (docs/values.md): a raw
   JSON fragment (jsonrpc.h, MCP_RAW_JSON_MARK) that only mcp_out_json()
   and the functions built on it may serialize. */
json_t *mcp_json_value(const qreg_value_t *v);

/* [{name, type}, ...] */
json_t *mcp_json_columns(const qreg_column_t *columns, size_t count);

/* null, or {type, message, code, detail, hint} of the snapshot's error. */
json_t *mcp_json_error(const qreg_snapshot_t *s);

/* Sets "truncated_by" (the reason's name, or null when the result is
   whole) and "truncation_hint" (null, or a sentence saying what to do about
   the cut: raise max_rows, select fewer columns, forget_query...) in obj.
   rows: the rows kept; max_result_bytes: the query's cap (0: unknown). */
void mcp_json_set_truncation(json_t *obj, qreg_truncation_t by, uint64_t rows,
                             uint64_t max_result_bytes);

/* A snapshot as get_query_status shows it (full) or list_queries lists it
   (the SQL cut to a prefix). */
json_t *mcp_json_snapshot(const qreg_snapshot_t *s, bool full);

#endif /* QREG_MCP_JSON_VALUES_H */
