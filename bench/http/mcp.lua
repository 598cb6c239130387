-- bench/http/mcp.lua - MCP over Streamable HTTP: every request is a
-- stateless tools/call get_query_status of protocol 2026-07-28 (no
-- session, no initialize), the query id given after `--`:
--
--   wrk -t2 -c64 -d10s -s bench/http/mcp.lua http://127.0.0.1:PORT/mcp -- QUERY_ID
--
-- The body is the one bench/http/mcp_stdio.mjs writes on stdio, so the two
-- figures read the same tool with the same request. A JSON-RPC error comes
-- back as 200 too: run.sh checks one answer with curl before the run.
dofile("bench/http/report.lua")

function init(args)
  local query_id = args[1] or error("mcp.lua: the query id goes after --")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_query_status",' ..
    '"arguments":{"query_id":"' .. query_id .. '"},"_meta":{' ..
    '"io.modelcontextprotocol/protocolVersion":"2026-07-28",' ..
    '"io.modelcontextprotocol/clientCapabilities":{}}}}'
end
