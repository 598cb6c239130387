// tests/e2e/client-v2.test.mjs - qreg's MCP server driven by the official
// TypeScript SDK 2.x client (@modelcontextprotocol/client) in its modern
// mode: protocol 2026-07-28, stateless, found through server/discover; and by
// @modelcontextprotocol/ext-tasks for the io.modelcontextprotocol/tasks
// extension. ext-tasks needs a raw request path for 2026-07-28 task traffic
// (its README: rawDispatch + v2RequestFraming); rawDispatch() below sends
// those requests over the SDK's own transport and routes their responses
// back, so everything still goes through the one server. Every test runs over
// both transports: stdio (`qreg mcp`) and Streamable HTTP (`qreg serve`, /mcp).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
// The 2.x client needs Node.js 20 or later (its package.json says so); Debian
// 12's own nodejs is 18. There the tests below are skipped, saying why, rather
// than failing on an import: the 1.x SDK and raw tests still run.
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const SKIP = NODE_MAJOR < 20
  ? `@modelcontextprotocol/client 2.x needs Node.js >= 20; this is ${process.version}`
  : false;
let Client, StdioClientTransport, StreamableHTTPClientTransport, createTaskSessionFromClient;
if (!SKIP) {
  ({ Client, StreamableHTTPClientTransport } = await import('@modelcontextprotocol/client'));
  ({ StdioClientTransport } = await import('@modelcontextprotocol/client/stdio'));
  ({ createTaskSessionFromClient } = await import('@modelcontextprotocol/ext-tasks/client'));
}
import {
  ITEM_ROWS, MEDIUM_SQL, MEDIUM_ROWS, LONG_SQL, TERMINAL, makeDatabase, until, finalStats,
  packageVersion, sanitizerReport, transports, connectClient,
} from './lib.mjs';
import { TOOL_NAMES } from './lib.mjs';

const CLIENT_VERSION = packageVersion('@modelcontextprotocol/client');
const EXT_TASKS_VERSION = packageVersion('@modelcontextprotocol/ext-tasks');
const CLIENT_INFO = { name: 'qreg-e2e-client-v2', version: CLIENT_VERSION };

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

// A raw request path over the client's transport, for ext-tasks: requests
// get string ids of their own; their responses are taken off the transport
// before the SDK (which would not know those ids) sees them.
function rawDispatcher(transport) {
  const pending = new Map();
  let next = 0;
  const sdkOnMessage = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if (typeof message.id === 'string' && pending.has(message.id) && !('method' in message)) {
      const resolve = pending.get(message.id);
      pending.delete(message.id);
      resolve(message);
      return;
    }
    sdkOnMessage?.(message, extra);
  };
  return async (request) => {
    const id = `qreg-e2e-raw-${++next}`;
    const reply = new Promise((resolve) => pending.set(id, resolve));
    await transport.send({ ...request, jsonrpc: '2.0', id });
    const message = await reply;
    return message.error ? { kind: 'error', error: message.error } : { kind: 'result', result: message.result };
  };
}

const structured = (result) => {
  assert.equal(result.isError ?? false, false, JSON.stringify(result));
  return result.structuredContent;
};

for (const t of transports({ StdioClientTransport, StreamableHTTPClientTransport })) describe(t.name, () => {
  async function connect(versionNegotiation) {
    const link = await t.open(['--db', db.url]);
    const client = new Client(CLIENT_INFO, versionNegotiation ? { versionNegotiation } : {});
    await connectClient(client, link);
    return {
      client,
      transport: link.transport,
      async close() {
        const stderr = await link.close(client);
        assert.equal(sanitizerReport(stderr), null);
        return finalStats(stderr);
      },
    };
  }

  test(`client ${CLIENT_VERSION}: 2026-07-28 (pinned) discover, tools, queries`, { skip: SKIP }, async () => {
    const s = await connect({ mode: { pin: '2026-07-28' } });
    const { client } = s;
    try {
      assert.equal(client.getProtocolEra(), 'modern');
      assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
      const discover = client.getDiscoverResult();
      assert.ok(discover.supportedVersions.includes('2026-07-28'));
      assert.deepEqual(discover.capabilities.extensions, { 'io.modelcontextprotocol/tasks': {} });
      assert.equal(client.getServerVersion()?.name ?? discover._meta['io.modelcontextprotocol/serverInfo'].name, 'qreg');

      const { tools } = await client.listTools();
      assert.equal(tools.length, TOOL_NAMES.length);
      assert.equal(tools[0].name, 'execute_query');
      assert.equal(tools[0].execution, undefined, 'no taskSupport in 2026-07-28');

      const tables = structured(await client.callTool({ name: 'list_tables', arguments: {} }));
      assert.deepEqual(tables.tables.map((t) => t.name), ['cheap', 'items']);

      // One call for a fast query: its rows come back with it.
      const one = structured(await client.callTool({ name: 'execute_query', arguments: { sql: 'SELECT 1 AS one, \'a\' AS two' } }));
      assert.equal(one.status, 'succeeded');
      assert.deepEqual(one.rows, [[1, 'a']]);
      assert.equal(one.has_more, false);
      // A slow one comes back running, with its query_id, after wait_seconds.
      const slow = structured(await client.callTool({ name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0.3 } }));
      assert.equal(slow.status, 'running');
      assert.match(slow.query_id, /^[0-9a-f-]{36}$/);
      assert.match(slow.next_step, /fetch_query_result/);
      structured(await client.callTool({ name: 'cancel_query', arguments: { query_id: slow.query_id } }));

      const q = structured(await client.callTool({ name: 'execute_query', arguments: { sql: 'SELECT id, name FROM items ORDER BY id', wait_seconds: 0 } }));
      const done = await until(async () => {
        const st = structured(await client.callTool({ name: 'get_query_status', arguments: { query_id: q.query_id } }));
        return TERMINAL.has(st.status) ? st : null;
      }, 60000, 'query');
      assert.equal(done.status, 'succeeded');
      assert.equal(done.row_count, ITEM_ROWS);
      const page = structured(await client.callTool({ name: 'fetch_query_result', arguments: { query_id: q.query_id, offset: 2490, limit: 100 } }));
      assert.equal(page.row_count, 10);
      assert.equal(page.has_more, false);
      assert.deepEqual(page.rows.at(-1), [ITEM_ROWS, `item ${ITEM_ROWS}`]);

      const long = structured(await client.callTool({ name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0 } }));
      const canceled = structured(await client.callTool({ name: 'cancel_query', arguments: { query_id: long.query_id } }));
      assert.equal(canceled.status, 'canceled');
      const listed = structured(await client.callTool({ name: 'list_queries', arguments: {} }));
      assert.equal(listed.queries[0].query_id, long.query_id);
      assert.equal(listed.queries[0].status, 'canceled');
      assert.ok(listed.queries.some((x) => x.query_id === q.query_id && x.status === 'succeeded'));
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });

  test(`client ${CLIENT_VERSION}: auto negotiation picks 2026-07-28; legacy mode gets 2025-11-25`, { skip: SKIP }, async () => {
    const auto = await connect({ mode: 'auto' });
    try {
      assert.equal(auto.client.getProtocolEra(), 'modern');
      assert.equal(auto.client.getNegotiatedProtocolVersion(), '2026-07-28');
      assert.equal((await auto.client.listTools()).tools.length, TOOL_NAMES.length);
    } finally {
      await auto.close();
    }
    const legacy = await connect(null);
    try {
      assert.equal(legacy.client.getProtocolEra(), 'legacy');
      assert.equal(legacy.client.getNegotiatedProtocolVersion(), '2025-11-25');
      const { tools } = await legacy.client.listTools();
      assert.equal(tools[0].execution.taskSupport, 'optional');
    } finally {
      await legacy.close();
    }
  });

  test(`client ${CLIENT_VERSION} + ext-tasks ${EXT_TASKS_VERSION}: execute_query under the tasks extension`, { skip: SKIP }, async () => {
    const s = await connect({ mode: { pin: '2026-07-28' } });
    const { client, transport } = s;
    const session = createTaskSessionFromClient(client, {
      endpointId: 'qreg-e2e',
      rawDispatch: rawDispatcher(transport),
      v2RequestFraming: {
        protocolVersion: '2026-07-28',
        clientInfo: CLIENT_INFO,
        clientCapabilities: {},
      },
    });
    try {
      // Completes: the task's result is execute_query's result with the first page.
      // A query that settles within the window is answered complete: no task,
      // no poll. SELECT 1 (with a window long enough for any machine).
      const fast = await session.callTool('execute_query', { sql: 'SELECT 1 AS one', wait_seconds: 30 });
      assert.equal(fast.kind, 'immediate');
      const fastOutcome = (await fast.settle()).outcome;
      assert.equal(fastOutcome.result.structuredContent.status, 'succeeded');
      assert.deepEqual(fastOutcome.result.structuredContent.rows, [[1]]);

      // wait_seconds 0: a task at once, whatever the query.
      const execution = await session.callTool('execute_query', { sql: MEDIUM_SQL, wait_seconds: 0 });
      assert.equal(execution.kind, 'task');
      const taskId = execution.handle.taskId;
      const { outcome } = await execution.settle();
      assert.equal(outcome.status, 'completed', JSON.stringify(outcome));
      const result = outcome.result;
      assert.equal(result.isError, false);
      assert.equal(result.structuredContent.query_id, taskId);
      assert.equal(result.structuredContent.status, 'succeeded');
      assert.equal(result.structuredContent.total_rows, MEDIUM_ROWS);
      assert.equal(result.structuredContent.rows[0][0], 1000);
      const view = await session.task(taskId).snapshot();
      assert.equal(view.status, 'completed');
      assert.ok(view.ttl > 0);

      // Cancelled: tasks/cancel stops the query.
      const long = await session.callTool('execute_query', { sql: LONG_SQL, wait_seconds: 0.2 });
      assert.equal(long.kind, 'task');
      const longId = long.handle.taskId;
      assert.equal((await session.task(longId).snapshot()).status, 'working');
      await long.cancel();
      const cancelled = await long.result();
      assert.equal(cancelled.status, 'cancelled');
      const st = structured(await client.callTool({ name: 'get_query_status', arguments: { query_id: longId } }));
      assert.equal(st.status, 'canceled');

      // An SQL error is a completed task whose result has isError (the
      // extension keeps "failed" for JSON-RPC errors).
      const bad = await session.callTool('execute_query', { sql: 'SELECT * FROM nope', wait_seconds: 0 });
      const badOutcome = (await bad.settle()).outcome;
      assert.equal(badOutcome.status, 'completed');
      assert.equal(badOutcome.result.isError, true);
      assert.match(badOutcome.result.structuredContent.error.message, /no such table/);

      // Other tools stay immediate.
      const immediate = await session.callTool('list_tables', {});
      assert.equal(immediate.kind, 'immediate');
      const listed = (await immediate.settle()).outcome;
      assert.equal(listed.result.structuredContent.database, 'sqlite');
    } finally {
      await session.close();
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });
});
