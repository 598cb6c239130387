/*
 * src/mcp/tasks.h - MCP tasks over the registry: the 2025-11-25 tasks
 * utility (task-augmented tools/call, tasks/get, tasks/result, tasks/list,
 * tasks/cancel) and the 2026-07-28 io.modelcontextprotocol/tasks extension
 * (resultType "task", tasks/get carrying the result, tasks/update,
 * tasks/cancel).
 *
 * A task is one execute_query: its id is the query id, so get_query_status
 * and fetch_query_result work on it too, and its state is the query's, read
 * from the registry on every request. The store (mcp_tasks_t) only keeps
 * what the registry does not: which queries are tasks, their ttl, their
 * creation order (tasks/list cursors) and whether tasks/cancel marked them
 * cancelled (a cancelled task stays cancelled, whatever the query did).
 *
 * Registry status -> task status: pending, running -> working; succeeded ->
 * completed; canceled -> cancelled; failed, timeout -> failed (2025-11-25,
 * whose tool results with isError fail the task) or completed with an
 * isError result (2026-07-28, where "failed" is reserved for JSON-RPC errors).
 */
#ifndef QREG_MCP_TASKS_H
#define QREG_MCP_TASKS_H

#include <jansson.h>

#include "mcp/call.h"

mcp_tasks_t *mcp_tasks_new(void);
void mcp_tasks_free(mcp_tasks_t *tasks);

/* A task-augmented tools/call: submits the query and returns the
   CreateTaskResult of the call's protocol revision, or NULL after
   mcp_call_fail. task_params is the 2025-11-25 "task" member (may be NULL). */
json_t *mcp_tasks_create(mcp_call_t *call, json_t *arguments, json_t *task_params);

/* The tasks/ methods; each returns its result or NULL after mcp_call_fail. */
json_t *mcp_tasks_get(mcp_call_t *call);
json_t *mcp_tasks_result(mcp_call_t *call); /* 2025-11-25: blocks until the task is over */
json_t *mcp_tasks_list(mcp_call_t *call);   /* 2025-11-25 */
json_t *mcp_tasks_cancel(mcp_call_t *call);
json_t *mcp_tasks_update(mcp_call_t *call); /* 2026-07-28: nothing to update, acknowledged */

#endif /* QREG_MCP_TASKS_H */
