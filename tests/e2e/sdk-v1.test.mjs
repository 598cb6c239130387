// tests/e2e/sdk-v1.test.mjs - qreg's MCP server driven by the official
// TypeScript SDK 1.x client (@modelcontextprotocol/sdk, pinned in
// package-lock.json): the 2025-11-25 initialize handshake, the tools, and the
// SDK's experimental tasks client (tasks/get, tasks/result, tasks/list,
// tasks/cancel). Every test checks the answers, not only that something came
// back. Every test runs over both transports: stdio (`qreg mcp`) and
// Streamable HTTP (`qreg serve`, /mcp).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import {
  ITEM_ROWS, MEDIUM_SQL, MEDIUM_ROWS, LONG_SQL, TERMINAL, makeDatabase, until, finalStats, packageVersion,
  sanitizerReport, transports, connectClient,
} from './lib.mjs';
import { TOOL_NAMES } from './lib.mjs';

const SDK_VERSION = packageVersion('@modelcontextprotocol/sdk');

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

for (const t of transports({ StdioClientTransport, StreamableHTTPClientTransport })) describe(t.name, () => {
  async function connect(extraArgs = []) {
    const link = await t.open(['--db', db.url, ...extraArgs]);
    const client = new Client({ name: 'qreg-e2e-sdk-v1', version: SDK_VERSION });
    await connectClient(client, link);
    return {
      client,
      stderr: link.stderr,
      async close() {
        const stderr = await link.close(client);
        assert.equal(sanitizerReport(stderr), null);
        return finalStats(stderr);
      },
    };
  }

  const structured = (result) => {
    assert.equal(result.isError, false, JSON.stringify(result));
    assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent);
    return result.structuredContent;
  };
  const toolError = (result) => {
    assert.equal(result.isError, true, JSON.stringify(result));
    return JSON.parse(result.content[0].text).error;
  };

  async function waitTerminal(client, queryId) {
    return until(async () => {
      const s = structured(await client.callTool({ name: 'get_query_status', arguments: { query_id: queryId } }));
      return TERMINAL.has(s.status) ? s : null;
    }, 60000, `query ${queryId}`);
  }

  test(`sdk ${SDK_VERSION}: handshake and tools/list`, async () => {
    const s = await connect();
    try {
      assert.equal(s.client.getServerVersion().name, 'qreg');
      const caps = s.client.getServerCapabilities();
      assert.ok(caps.tools);
      assert.ok(caps.tasks.requests.tools.call, 'tasks.requests.tools.call');
      assert.ok(caps.tasks.list && caps.tasks.cancel);
      assert.match(s.client.getInstructions(), /execute_query/);
      const { tools } = await s.client.listTools();
      assert.deepEqual(tools.map((t) => t.name), TOOL_NAMES);
      for (const tool of tools) {
        assert.equal(tool.inputSchema.type, 'object', tool.name);
        assert.equal(tool.outputSchema.type, 'object', tool.name);
        assert.ok(tool.description.length > 40, tool.name);
      }
      assert.deepEqual(tools[0].inputSchema.required, ['sql']);
      assert.equal(tools[0].execution.taskSupport, 'optional');
      assert.equal(tools[0].annotations.readOnlyHint, true);
      assert.equal(tools.filter((t) => t.execution).length, 1);
      const again = await s.client.listTools();
      assert.deepEqual(again, { tools }, 'deterministic order and content');
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });

  test(`sdk ${SDK_VERSION}: catalog, queries, paging, cancel, list`, async () => {
    const s = await connect();
    const { client } = s;
    try {
      const tables = structured(await client.callTool({ name: 'list_tables', arguments: {} }));
      assert.equal(tables.database, 'sqlite');
      assert.deepEqual(tables.tables.map((t) => [t.schema, t.name, t.type]),
        [['main', 'cheap', 'view'], ['main', 'items', 'table']]);
      const described = structured(await client.callTool({ name: 'describe_table', arguments: { table: 'items' } }));
      assert.deepEqual(described.columns.map((c) => [c.name, c.type, c.nullable, c.primary_key]), [
        ['id', 'INTEGER', true, true], ['name', 'TEXT', false, false],
        ['price', 'REAL', true, false], ['data', 'BLOB', true, false],
      ]);
      assert.equal(described.columns[2].default, '1.5');
      assert.equal(toolError(await client.callTool({ name: 'describe_table', arguments: { table: 'nope' } })).type, 'not_found');

      // A query that takes a while and returns many rows: poll, then page.
      const started = structured(await client.callTool({ name: 'execute_query', arguments: { sql: MEDIUM_SQL, wait_seconds: 0 } }));
      assert.match(started.query_id, /^[0-9a-f-]{36}$/);
      assert.ok(['pending', 'running'].includes(started.status), started.status);
      const done = await waitTerminal(client, started.query_id);
      assert.equal(done.status, 'succeeded');
      assert.equal(done.row_count, MEDIUM_ROWS);
      assert.equal(done.sql, MEDIUM_SQL);
      assert.deepEqual(done.columns.map((c) => c.name), ['x']);
      assert.equal(done.error, null);
      const values = [];
      let offset = 0;
      for (;;) {
        const page = structured(await client.callTool({
          name: 'fetch_query_result', arguments: { query_id: started.query_id, offset, limit: 700 },
        }));
        assert.equal(page.offset, offset);
        assert.equal(page.total_rows, MEDIUM_ROWS);
        assert.equal(page.rows.length, page.row_count);
        values.push(...page.rows.map((r) => r[0]));
        if (!page.has_more) { assert.equal(page.next_offset, null); break; }
        assert.equal(page.next_offset, offset + page.row_count);
        offset = page.next_offset;
      }
      assert.deepEqual(values, Array.from({ length: MEDIUM_ROWS }, (_, i) => (i + 1) * 1000));

      // Typed values: integers, text, floats, bytes as base64.
      const items = structured(await client.callTool({
        name: 'execute_query', arguments: { sql: 'SELECT id, name, price, data FROM items ORDER BY id' },
      }));
      assert.equal((await waitTerminal(client, items.query_id)).row_count, ITEM_ROWS);
      const first = structured(await client.callTool({
        name: 'fetch_query_result', arguments: { query_id: items.query_id, limit: 2 },
      }));
      assert.deepEqual(first.rows, [[1, 'item 1', 0.5, 'AP8='], [2, 'item 2', 1, 'AP8=']]);

      // Cancel a long one: stopped in the database, status canceled.
      const long = structured(await client.callTool({ name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0 } }));
      const canceled = structured(await client.callTool({ name: 'cancel_query', arguments: { query_id: long.query_id } }));
      assert.deepEqual(canceled, { query_id: long.query_id, canceled: true, status: 'canceled' });
      const after = structured(await client.callTool({ name: 'get_query_status', arguments: { query_id: long.query_id } }));
      assert.equal(after.status, 'canceled');
      assert.equal(after.error.type, 'canceled');
      const again = structured(await client.callTool({ name: 'cancel_query', arguments: { query_id: long.query_id } }));
      assert.equal(again.canceled, false);
      assert.match(toolError(await client.callTool({
        name: 'fetch_query_result', arguments: { query_id: long.query_id },
      })).message, /canceled/);

      // SQL errors and refused writes come back as query errors, not protocol errors.
      const bad = structured(await client.callTool({ name: 'execute_query', arguments: { sql: 'SELECT * FROM nope', wait_seconds: 0 } }));
      const failed = await waitTerminal(client, bad.query_id);
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error.type, 'database');
      assert.match(failed.error.message, /no such table: nope/);
      assert.match(failed.error.code, /^SQLITE_/);
      const write = structured(await client.callTool({ name: 'execute_query', arguments: { sql: 'DELETE FROM items', wait_seconds: 0 } }));
      assert.equal((await waitTerminal(client, write.query_id)).status, 'failed');

      // List: newest first, filters by status, pages with a cursor.
      const all = structured(await client.callTool({ name: 'list_queries', arguments: {} }));
      const ids = all.queries.map((q) => q.query_id);
      for (const id of [started.query_id, items.query_id, long.query_id, bad.query_id, write.query_id])
        assert.ok(ids.includes(id), id);
      assert.ok(ids.indexOf(write.query_id) < ids.indexOf(started.query_id), 'newest first');
      const onlyCanceled = structured(await client.callTool({ name: 'list_queries', arguments: { status: 'canceled' } }));
      assert.deepEqual(onlyCanceled.queries.map((q) => q.query_id), [long.query_id]);
      const page1 = structured(await client.callTool({ name: 'list_queries', arguments: { limit: 2 } }));
      assert.equal(page1.queries.length, 2);
      assert.equal(typeof page1.next_cursor, 'string');
      const page2 = structured(await client.callTool({ name: 'list_queries', arguments: { limit: 2, cursor: page1.next_cursor } }));
      assert.deepEqual(page2.queries.map((q) => q.query_id), ids.slice(2, 4));

      // Mistakes a model can correct are tool errors.
      assert.equal(toolError(await client.callTool({ name: 'get_query_status', arguments: { query_id: '00000000-0000-4000-8000-000000000000' } })).type, 'not_found');
      assert.equal(toolError(await client.callTool({ name: 'execute_query', arguments: { query: 'SELECT 1' } })).type, 'invalid_argument');
      assert.equal(toolError(await client.callTool({ name: 'fetch_query_result', arguments: { query_id: items.query_id, limit: 0 } })).type, 'invalid_argument');
    } finally {
      const stats = await s.close();
      assert.ok(stats.opened > 0);
      assert.equal(stats.opened, stats.closed);
      // `qreg serve` does not count descriptors (null); `qreg mcp` does.
      if (t.name === 'stdio' || stats.leakedFds !== null) assert.equal(stats.leakedFds, 0);
    }
  });

  // The one-call path: a fast query is one tool call, answered with its rows;
  // a slow one comes back running, with its query_id, after wait_seconds. The
  // SDK validates every structuredContent against the tool's outputSchema
  // (listTools first gives it the schemas).
  test(`sdk ${SDK_VERSION}: one tool call for a fast query, a query_id for a slow one`, async () => {
    const s = await connect();
    const { client } = s;
    let calls = 0;
    const call = (name, args) => { calls++; return client.callTool({ name, arguments: args }); };
    try {
      await client.listTools();
      const one = structured(await call('execute_query', { sql: 'SELECT 1 AS one' }));
      assert.equal(calls, 1);
      assert.equal(one.status, 'succeeded');
      assert.deepEqual(one.columns.map((c) => c.name), ['one']);
      assert.deepEqual(one.rows, [[1]]);
      assert.equal(one.has_more, false);
      assert.equal(one.next_offset, null);
      assert.equal(one.next_step, undefined);

      // The first page is bounded (100 rows); next_offset says where to go on.
      const items = structured(await call('execute_query', { sql: 'SELECT id FROM items ORDER BY id' }));
      assert.equal(items.status, 'succeeded');
      assert.equal(items.total_rows, ITEM_ROWS);
      assert.equal(items.rows.length, 100);
      assert.deepEqual(items.rows.slice(0, 3), [[1], [2], [3]]);
      assert.equal(items.has_more, true);
      assert.equal(items.next_offset, 100);
      const next = structured(await call('fetch_query_result', { query_id: items.query_id, offset: items.next_offset, limit: 2 }));
      assert.deepEqual(next.rows, [[101], [102]]);

      // A cut result says why and what to change.
      const cut = structured(await call('execute_query', { sql: 'SELECT id FROM items', max_rows: 10 }));
      assert.equal(cut.truncated, true);
      assert.equal(cut.total_rows, 10);
      assert.match(cut.next_step, /max_rows/);

      // A failing query: isError in the same call, with the error and what to do.
      const bad = await call('execute_query', { sql: 'SELECT nope FROM items' });
      assert.equal(bad.isError, true);
      assert.equal(bad.structuredContent.status, 'failed');
      assert.match(bad.structuredContent.error.message, /no such column/);
      assert.match(bad.structuredContent.next_step, /describe_table/);

      // Slow: running after wait_seconds, with its query_id and the next step.
      const before = Date.now();
      const slow = structured(await call('execute_query', { sql: LONG_SQL, wait_seconds: 0.3 }));
      assert.ok(Date.now() - before < 30000, 'answered after its wait, not at the query\'s end');
      assert.equal(slow.status, 'running');
      assert.match(slow.query_id, /^[0-9a-f-]{36}$/);
      assert.match(slow.next_step, /fetch_query_result/);
      assert.equal(slow.rows, undefined);
      const notYet = toolError(await call('fetch_query_result', { query_id: slow.query_id, wait_seconds: 0.2 }));
      assert.equal(notYet.type, 'not_ready');
      assert.match(notYet.message, /wait_seconds/);
      const stillRunning = structured(await call('get_query_status', { query_id: slow.query_id, wait_seconds: 0.1 }));
      assert.equal(stillRunning.status, 'running');
      structured(await call('cancel_query', { query_id: slow.query_id }));

      // A query that outlives execute_query's wait: fetch_query_result waits
      // for it and answers with the rows - the second and last call.
      const medium = structured(await call('execute_query', { sql: MEDIUM_SQL, wait_seconds: 0 }));
      assert.ok(['pending', 'running'].includes(medium.status), medium.status);
      const rows = structured(await call('fetch_query_result', { query_id: medium.query_id, wait_seconds: 50, limit: 3 }));
      assert.deepEqual(rows.rows, [[1000], [2000], [3000]]);
      assert.equal(rows.total_rows, MEDIUM_ROWS);

      assert.equal(toolError(await call('execute_query', { sql: 'SELECT 1', wait_seconds: -1 })).type, 'invalid_argument');
      assert.equal(toolError(await call('execute_query', { sql: 'SELECT 1', wait_seconds: 51 })).type, 'invalid_argument');
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });

  // Tasks: a query that settles within the window is a completed task at
  // creation (no poll, so the SDK helper never sleeps); a running one gets a
  // pollInterval that grows with its age.
  test(`sdk ${SDK_VERSION}: a fast task is completed at creation; pollInterval follows the query's age`, async () => {
    const s = await connect();
    const tasks = s.client.experimental.tasks;
    try {
      await s.client.listTools();
      const messages = [];
      for await (const message of tasks.callToolStream(
        { name: 'execute_query', arguments: { sql: 'SELECT 1 AS one', wait_seconds: 30 } }, CallToolResultSchema, { task: {} })) {
        messages.push(message);
      }
      assert.equal(messages[0].type, 'taskCreated');
      assert.equal(messages[0].task.status, 'completed');
      assert.equal(messages[0].task.pollInterval, undefined);
      assert.deepEqual(messages.at(-1).result.structuredContent.rows, [[1]]);

      const stream = tasks.callToolStream({ name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0.4 } }, CallToolResultSchema, { task: {} });
      const created = (await stream.next()).value;
      await stream.return();
      assert.equal(created.task.status, 'working');
      assert.ok(created.task.pollInterval >= 100 && created.task.pollInterval <= 5000, String(created.task.pollInterval));
      await new Promise((r) => setTimeout(r, 1500));
      const later = await tasks.getTask(created.task.taskId);
      assert.ok(later.pollInterval > created.task.pollInterval, `${later.pollInterval} after ${created.task.pollInterval}`);
      await tasks.cancelTask(created.task.taskId);
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });

  test(`sdk ${SDK_VERSION}: a page stops at --max-response-bytes and says where to go on`,
    { skip: t.unsupported(['--max-response-bytes']) }, async () => {
    const s = await connect(['--max-response-bytes', '8192']);
    const { client } = s;
    try {
      const q = structured(await client.callTool({ name: 'execute_query', arguments: { sql: 'SELECT id, name, data FROM items ORDER BY id' } }));
      await waitTerminal(client, q.query_id);
      const ids = [];
      let offset = 0;
      let pages = 0;
      for (;;) {
        const result = await client.callTool({ name: 'fetch_query_result', arguments: { query_id: q.query_id, offset, limit: 10000 } });
        assert.ok(JSON.stringify(result).length <= 8192, 'response within the limit');
        const page = structured(result);
        assert.ok(page.row_count > 0);
        ids.push(...page.rows.map((r) => r[0]));
        pages++;
        if (!page.has_more) break;
        offset = page.next_offset;
      }
      assert.ok(pages > 5, `${pages} pages`);
      assert.deepEqual(ids, Array.from({ length: ITEM_ROWS }, (_, i) => i + 1));
    } finally {
      await s.close();
    }
  });

  test(`sdk ${SDK_VERSION}: execute_query as a task (experimental tasks client)`, async () => {
    const s = await connect();
    const { client } = s;
    const tasks = client.experimental.tasks;
    try {
      await client.listTools(); // learns execute_query's taskSupport

      // A task that completes: created, polled, result is the tool's result.
      const messages = [];
      for await (const message of tasks.callToolStream(
        { name: 'execute_query', arguments: { sql: MEDIUM_SQL, wait_seconds: 0 } }, CallToolResultSchema, { task: { ttl: 120000 } })) {
        messages.push(message);
      }
      const created = messages[0];
      assert.equal(created.type, 'taskCreated');
      assert.equal(created.task.status, 'working');
      assert.equal(created.task.ttl, 120000);
      assert.ok(created.task.pollInterval > 0);
      const last = messages.at(-1);
      assert.equal(last.type, 'result', JSON.stringify(last));
      const outcome = structured(last.result);
      assert.equal(outcome.query_id, created.task.taskId);
      assert.equal(outcome.status, 'succeeded');
      assert.equal(outcome.total_rows, MEDIUM_ROWS);
      assert.equal(outcome.rows[0][0], 1000);
      assert.equal(last.result._meta['io.modelcontextprotocol/related-task'].taskId, created.task.taskId);
      const got = await tasks.getTask(created.task.taskId);
      assert.equal(got.status, 'completed');
      // The task id is a query id too.
      const status = structured(await client.callTool({ name: 'get_query_status', arguments: { query_id: created.task.taskId } }));
      assert.equal(status.status, 'succeeded');

      // A long task: tasks/result blocks, other requests go on, tasks/cancel ends both.
      const stream = tasks.callToolStream({ name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0.2 } }, CallToolResultSchema, { task: {} });
      const first = (await stream.next()).value;
      assert.equal(first.type, 'taskCreated');
      const longId = first.task.taskId;
      await stream.return();
      const blocked = tasks.getTaskResult(longId, CallToolResultSchema);
      const tables = structured(await client.callTool({ name: 'list_tables', arguments: {} }));
      assert.equal(tables.tables.length, 2, 'served while tasks/result blocks');
      assert.equal((await tasks.getTask(longId)).status, 'working');
      const listed = await tasks.listTasks();
      assert.deepEqual(listed.tasks.map((t) => t.taskId), [created.task.taskId, longId]);
      const cancelled = await tasks.cancelTask(longId);
      assert.equal(cancelled.status, 'cancelled');
      assert.equal((await tasks.getTask(longId)).status, 'cancelled');
      const unblocked = await blocked;
      assert.equal(unblocked.isError, true);
      assert.equal(unblocked.structuredContent.status, 'canceled');
      await assert.rejects(tasks.cancelTask(longId), (err) => err.code === -32602);
      await assert.rejects(tasks.getTask('no-such-task'), (err) => err.code === -32602);

      // A failing query: the task fails, tasks/result gives the tool's isError result.
      const failing = [];
      for await (const message of tasks.callToolStream(
        { name: 'execute_query', arguments: { sql: 'SELECT * FROM nope' } }, CallToolResultSchema, { task: {} })) {
        failing.push(message);
      }
      const failedId = failing[0].task.taskId;
      assert.equal((await tasks.getTask(failedId)).status, 'failed');
      const failedResult = await tasks.getTaskResult(failedId, CallToolResultSchema);
      assert.equal(failedResult.isError, true);
      assert.match(failedResult.structuredContent.error.message, /no such table/);
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });
});
