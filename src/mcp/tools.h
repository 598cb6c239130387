/*
 * src/mcp/tools.h - the MCP tools of qreg: the queries (execute_query,
 * get_query_status, fetch_query_result, cancel_query, list_queries,
 * forget_query) and the exploration tools (list_schemas, list_tables,
 * describe_table, search_columns, sample_table_data,
 * analyze_table_statistics): their definitions (schemas written for a
 * model), their handlers, and the JSON forms of registry objects (snapshots,
 * pages) that tasks.c shares.
 *
 * Owns nothing beyond each call: every JSON value returned belongs to the caller.
 */
#ifndef QREG_MCP_TOOLS_H
#define QREG_MCP_TOOLS_H

#include <jansson.h>

#include "mcp/call.h"
#include "mcp/json_values.h"

/* Rows a fetch_query_result page and queries a list_queries page hold at
   most (the handlers enforce them, the schemas state them). */
#define TOOLS_MAX_PAGE_ROWS 10000
#define TOOLS_MAX_LIST_LIMIT 100
/* The longest wait_seconds a tool call accepts: well within the request
   timeout of the MCP SDKs (60 s). */
#define TOOLS_MAX_WAIT_S 50

/* Every tool definition, in the order tools/list gives them
   (tool_definitions.c). execute_query's hints (readOnlyHint,
   destructiveHint) claim read-only only when read_only (qreg_read_only:
   the registry enforces it); allow_writes changes its description. */
json_t *mcp_tools_definitions(bool allow_writes, bool read_only);

/* Removes from tools (mcp_tools_definitions) each one named in disabled
   (comma-separated; NULL: none); returns how many it removed. */
int mcp_tools_drop_disabled(json_t *tools, const char *disabled);
/* true when name is one of the tools. */
bool mcp_tools_known(const char *name);
/* Whether every name of a comma-separated list is a tool (a typo would leave
   on what was meant off); when not, the first that is not, cut, in bad. */
bool mcp_tools_known_list(const char *list, char *bad, size_t bad_size);
/* For error messages: the tools a list may name. */
#define MCP_TOOL_NAMES                                                                             \
  "execute_query, get_query_status, fetch_query_result, cancel_query, list_queries, "              \
  "forget_query, list_schemas, list_tables, describe_table, search_columns, sample_table_data, "   \
  "analyze_table_statistics"
/* With several sources: adds `source` (an enum of their names) to every
   tool's inputSchema; with one, drops list_sources. */
void mcp_tools_add_sources(mcp_server_t *server);
/*
 * Binds the call to the source args names (`source`, or the one holding
 * args' query_id, or the first) - call->source and call->reg - and removes
 * `source` from args. -1 with *error (an isError result) for an unknown
 * source or a tool switched off for it.
 */
int mcp_tools_bind_source(mcp_call_t *call, json_t *args, const char *tool, json_t **error);

/* tools/list: {tools: [...]} shaped for the call's protocol revision. */
json_t *mcp_tools_list(mcp_call_t *call);

/* tools/call without a task: a CallToolResult, or NULL after mcp_call_fail.
   Every CallToolResult made here that has structuredContent has as
   content[0].text exactly its compact serialization (json_dumps with
   JSON_COMPACT), and its structuredContent is never changed afterwards:
   protocol.c writes that text as the structuredContent of the response
   instead of serializing the value a second time. */
json_t *mcp_tools_call(mcp_call_t *call, const char *name, json_t *arguments);

/* true when the named tool can run as a task (execute_query). */
bool mcp_tools_task_capable(const char *name);

/*
 * Validates execute_query's arguments and submits the query. ttl_ms 0 means
 * the registry default. *wait_ms (may be NULL) is set to wait_seconds when
 * the arguments give it, and left alone otherwise. Returns 0 with *id set;
 * otherwise returns -1 and *tool_error is the isError CallToolResult to give
 * back.
 */
int mcp_tools_submit_query(mcp_call_t *call, json_t *args, uint64_t ttl_ms, qreg_id_t *id,
                           uint64_t *wait_ms, json_t **tool_error);

/*
 * What execute_query reports for a query once it is over: its final status,
 * error and the first page of its rows (within budget bytes); isError unless
 * it succeeded. Used for task results. NULL after mcp_call_fail (unknown id).
 */
json_t *mcp_tools_query_outcome(mcp_call_t *call, const char *query_id, size_t budget);

/* A CallToolResult with isError and the error as JSON text. */
json_t *mcp_tools_error_result(const char *type, const char *code, const char *message);

#endif /* QREG_MCP_TOOLS_H */
