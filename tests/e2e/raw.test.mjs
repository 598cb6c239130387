// tests/e2e/raw.test.mjs - `qreg mcp` driven by hand-written JSON-RPC over the
// child's stdio, for what no SDK client sends: malformed and hostile input,
// exact wire shapes of each protocol revision (2025-06-18, 2025-11-25 and the
// stateless 2026-07-28 with the tasks extension, byte for byte), requests
// cancelled with notifications/cancelled, concurrency, and shutdown (stdin
// closed mid-query, SIGTERM) with every connection released.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import {
  RawServer, LONG_SQL, MEDIUM_SQL, MEDIUM_ROWS, TERMINAL, makeDatabase, modernMeta, until, finalStats,
  sleep, sanitizerReport,
} from './lib.mjs';
import { TOOL_NAMES } from './lib.mjs';

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

const sc = (result) => {
  assert.equal(result.isError, false, JSON.stringify(result));
  return result.structuredContent;
};

async function closeClean(server) {
  const { code, signal } = await server.close();
  assert.equal(signal, null);
  assert.equal(code, 0, server.stderr);
  assert.equal(sanitizerReport(server.stderr), null);
  const stats = finalStats(server.stderr);
  assert.ok(stats, server.stderr);
  assert.equal(stats.opened, stats.closed, server.stderr);
  if (stats.leakedFds !== null) assert.equal(stats.leakedFds, 0);
  return stats;
}

async function waitStatus(server, queryId, wanted) {
  return until(async () => {
    const s = sc(await server.tool('get_query_status', { query_id: queryId }));
    return wanted(s.status) ? s : null;
  }, 60000, `query ${queryId}`);
}

// Descriptors of process pid open on the database file (Linux /proc), or null.
function dbFds(pid) {
  const dir = `/proc/${pid}/fd`;
  if (!existsSync(dir)) return null;
  let n = 0;
  for (const fd of readdirSync(dir)) {
    try {
      if (readlinkSync(`${dir}/${fd}`).startsWith(db.file)) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

test('bad input gets JSON-RPC errors and the server keeps serving', async () => {
  const server = new RawServer(['--db', db.url, '--max-message-bytes', '65536']);
  try {
    // Before initialize: only ping and server/discover are answered.
    const early = await server.request('tools/list', {});
    assert.equal(early.error.code, -32602);
    assert.match(early.error.message, /initialize/);
    assert.deepEqual(early.error.data.supported, ['2026-07-28', '2025-11-25', '2025-06-18']);
    assert.deepEqual((await server.request('ping')).result, {});

    const init = await server.initialize('1999-01-01');
    assert.equal(init.result.protocolVersion, '2025-11-25', 'unknown version: our latest');
    assert.equal((await server.request('initialize', { protocolVersion: '2025-11-25', capabilities: {} })).error.code, -32600);

    const expectError = async (line, code, pattern) => {
      const before = server.unmatched.length;
      server.child.stdin.write(line); // a string or raw bytes
      const reply = await until(() => server.unmatched[before], 10000, `reply to ${line.slice(0, 40)}`);
      assert.equal(reply.error.code, code, JSON.stringify(reply));
      if (pattern) assert.match(reply.error.message, pattern);
    };
    await expectError('{"jsonrpc":"2.0","id":1,"method":\n', -32700, /Parse error/);
    await expectError('not json at all\n', -32700);
    await expectError('[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n', -32600, /batch/);
    await expectError('42\n', -32600);
    await expectError('{"jsonrpc":"1.0","id":"x","method":"ping"}\n'.replace('"x"', 'null'), -32600);
    await expectError('{"jsonrpc":"2.0","id":1.5,"method":"ping"}\n', -32600, /id/);
    await expectError(`${'['.repeat(100)}${']'.repeat(100)}\n`, -32600, /nested/);
    await expectError(`{"jsonrpc":"2.0","id":7,"method":"ping","params":${'{"a":'.repeat(80)}1${'}'.repeat(80)}}\n`, -32600, /nested/);
    await expectError(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":8,"method":"tools/list","params":{"x":"'),
      Buffer.from([0xc3, 0x28]), Buffer.from('"}}\n')]), -32700, /UTF-8/);
    await expectError(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":"'),
      Buffer.from([0xff, 0xfe]), Buffer.from('"}}\n')]), -32700, /UTF-8/);
    await expectError('{"jsonrpc":"2.0","id":10,"id":11,"method":"ping"}\n', -32700, /duplicate/);
    await expectError(`{"jsonrpc":"2.0","id":12,"method":"ping","params":{"pad":"${'x'.repeat(70000)}"}}\n`, -32600, /65536/);

    const withId = async (message, code, pattern) => {
      const reply = await server.request(message.method, message.params, message.id);
      assert.equal(reply.error?.code, code, JSON.stringify(reply));
      if (pattern) assert.match(reply.error.message, pattern);
    };
    await withId({ id: 'm', method: 'no/such/method' }, -32601, /no\/such\/method/);
    await withId({ id: 'p', method: 'tools/list', params: [] }, -32602, /params/);
    await withId({ id: 't1', method: 'tools/call', params: { name: 'drop_database' } }, -32602, /Unknown tool/);
    await withId({ id: 't2', method: 'tools/call', params: {} }, -32602, /name/);
    await withId({ id: 't3', method: 'tools/call', params: { name: 'execute_query', arguments: 'SELECT 1' } }, -32602, /arguments/);
    await withId({ id: 't4', method: 'tasks/get', params: {} }, -32602, /taskId/);
    await withId({ id: 't5', method: 'tasks/result', params: { taskId: 'nope' } }, -32602, /not found/);
    await withId({ id: 't6', method: 'tools/call', params: { name: 'list_tables', arguments: {}, task: {} } }, -32601, /task/);
    await withId({ id: 'c1', method: 'tools/list', params: { cursor: 'abc' } }, -32602, /cursor/);
    // 2026-07-28 errors in the same process.
    const unsupported = await server.request('tools/list', { _meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01', 'io.modelcontextprotocol/clientCapabilities': {} } });
    assert.equal(unsupported.error.code, -32022);
    assert.deepEqual(unsupported.error.data, { supported: ['2026-07-28', '2025-11-25', '2025-06-18'], requested: '2099-01-01' });
    await withId({ id: 'mm', method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } }, -32602, /clientCapabilities/);
    await withId({ id: 'mp', method: 'ping', params: { _meta: modernMeta() } }, -32601, /ping/);
    const noCap = await server.request('tasks/get', { taskId: 'x', _meta: modernMeta() });
    assert.equal(noCap.error.code, -32021);
    assert.deepEqual(noCap.error.data, { requiredCapabilities: { extensions: { 'io.modelcontextprotocol/tasks': {} } } });
    await withId({ id: 'ml', method: 'tasks/list', params: { _meta: modernMeta({}, { extensions: { 'io.modelcontextprotocol/tasks': {} } }) } }, -32601, /tasks\/list/);

    // Tool mistakes are tool results with isError.
    const nul = await server.tool('execute_query', { sql: 'SELECT 1\u0000; DROP TABLE items' });
    assert.equal(nul.isError, true);
    assert.match(JSON.parse(nul.content[0].text).error.message, /NUL/);
    const wrongType = await server.tool('fetch_query_result', { query_id: 42 });
    assert.equal(JSON.parse(wrongType.content[0].text).error.type, 'invalid_argument');
    // Responses to our nonexistent requests and unknown notifications are ignored.
    server.send({ jsonrpc: '2.0', id: 999, result: {} });
    server.send({ jsonrpc: '2.0', method: 'notifications/whatever', params: {} });
    server.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'never-sent' } });
    server.send('\n   \n');

    // Still serving.
    const { result } = await server.request('tools/list', {});
    assert.equal(result.tools.length, TOOL_NAMES.length);
    assert.ok(server.lines.every((line) => !line.includes('\n')));
  } finally {
    await closeClean(server);
  }
});

// Values on the wire, byte for byte, as qreg_value_json() writes them (the
// same bytes qreg query --json prints): a JSON.parse of the response would
// hide 3.0 vs 3 and big integers.
test('values on the wire: exact floats, big integers as strings, base64, embedded JSON', async () => {
  const server = new RawServer(['--db', db.url]);
  try {
    await server.initialize('2025-06-18');
    const started = sc(await server.tool('execute_query', {
      sql: "SELECT 3.0, -0.0, 0.1, 4.9406564584124654e-324, 9007199254740993, 9007199254740991, "
        + "1e308 * 10, x'00ff', 'caf\u00e9', NULL, json('{\"n\": 12345678901234567890, \"a\": [1.50, 2]}')",
    }));
    await waitStatus(server, started.query_id, (s) => TERMINAL.has(s));
    const before = server.lines.length;
    sc(await server.tool('fetch_query_result', { query_id: started.query_id }));
    const line = server.lines.slice(before).find((l) => l.includes('"structuredContent"'));
    const rows = line.slice(line.indexOf('"rows":', line.indexOf('"structuredContent"')));
    assert.ok(rows.startsWith('"rows":[[3.0,-0.0,0.1,5e-324,"9007199254740993",9007199254740991,'
      + '"Infinity","AP8=","caf\u00e9",null,{"n":12345678901234567890,"a":[1.50,2]}]]'), rows);
  } finally {
    await closeClean(server);
  }
});

test('2025-06-18: no tasks, task params ignored', async () => {
  const server = new RawServer(['--db', db.url]);
  try {
    const init = await server.initialize('2025-06-18');
    assert.equal(init.result.protocolVersion, '2025-06-18');
    assert.equal(init.result.capabilities.tasks, undefined);
    const { result } = await server.request('tools/list', {});
    assert.ok(result.tools.every((t) => t.execution === undefined));
    const call = await server.tool('execute_query', { sql: 'SELECT 1 AS one' }, { task: { ttl: 1000 } });
    assert.ok(sc(call).query_id, 'a plain tool result, not a task');
    assert.equal((await server.request('tasks/list', {})).error.code, -32601);
  } finally {
    await closeClean(server);
  }
});

test('2026-07-28 stateless over raw stdio: discover, results, tasks extension', async () => {
  const server = new RawServer(['--db', db.url]);
  const tasksCaps = { extensions: { 'io.modelcontextprotocol/tasks': {} } };
  try {
    const discover = (await server.request('server/discover', { _meta: modernMeta() })).result;
    assert.equal(discover.resultType, 'complete');
    assert.deepEqual(discover.supportedVersions, ['2026-07-28', '2025-11-25', '2025-06-18']);
    assert.deepEqual(discover.capabilities, { tools: { listChanged: false }, extensions: { 'io.modelcontextprotocol/tasks': {} } });
    assert.equal(discover._meta['io.modelcontextprotocol/serverInfo'].name, 'qreg');
    assert.ok(discover.ttlMs >= 0);
    assert.ok(['public', 'private'].includes(discover.cacheScope));

    const list = (await server.request('tools/list', { _meta: modernMeta() })).result;
    assert.equal(list.resultType, 'complete');
    assert.equal(list.tools.length, TOOL_NAMES.length);
    assert.ok(list.ttlMs >= 0 && list.cacheScope);

    // Without the extension: a plain result.
    const plain = (await server.request('tools/call', { name: 'execute_query', arguments: { sql: 'SELECT 2' }, _meta: modernMeta() })).result;
    assert.equal(plain.resultType, 'complete');
    assert.ok(plain.structuredContent.query_id);

    // With it: a task, polled with tasks/get until its result comes inline.
    const created = (await server.request('tools/call', { name: 'execute_query', arguments: { sql: MEDIUM_SQL, wait_seconds: 0 }, _meta: modernMeta({}, tasksCaps) })).result;
    assert.equal(created.resultType, 'task');
    assert.equal(created.status, 'working');
    assert.ok(Number.isInteger(created.ttlMs) && Number.isInteger(created.pollIntervalMs));
    assert.ok(created.createdAt && created.lastUpdatedAt);
    const finished = await until(async () => {
      const r = (await server.request('tasks/get', { taskId: created.taskId, _meta: modernMeta({}, tasksCaps) })).result;
      assert.equal(r.resultType, 'complete');
      return r.status === 'working' ? null : r;
    }, 60000, 'task');
    assert.equal(finished.status, 'completed');
    assert.equal(finished.result.resultType, 'complete');
    assert.equal(finished.result.structuredContent.total_rows, MEDIUM_ROWS);
    assert.equal((await server.request('tasks/update', { taskId: created.taskId, inputResponses: {}, _meta: modernMeta({}, tasksCaps) })).result.resultType, 'complete');

    const long = (await server.request('tools/call', { name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0 }, _meta: modernMeta({}, tasksCaps) })).result;
    const ack = (await server.request('tasks/cancel', { taskId: long.taskId, _meta: modernMeta({}, tasksCaps) })).result;
    assert.equal(ack.resultType, 'complete');
    const cancelled = (await server.request('tasks/get', { taskId: long.taskId, _meta: modernMeta({}, tasksCaps) })).result;
    assert.equal(cancelled.status, 'cancelled');
    assert.equal((await server.request('tasks/cancel', { taskId: 'nope', _meta: modernMeta({}, tasksCaps) })).error.code, -32602);
  } finally {
    await closeClean(server);
  }
});

test('notifications/cancelled stops the query behind a request; slow requests hold up nothing', async () => {
  // One connection: while a long query holds it, list_tables waits in pending.
  const server = new RawServer(['--db', db.url, '--max-connections', '1']);
  try {
    await server.initialize();
    const long = sc(await server.tool('execute_query', { sql: LONG_SQL, wait_seconds: 0 }));
    await waitStatus(server, long.query_id, (s) => s === 'running');
    const slowId = 'slow-list-tables';
    const slow = server.request('tools/call', { name: 'list_tables', arguments: {} }, slowId);
    // Other requests are answered meanwhile.
    let catalogQuery;
    await until(async () => {
      const listed = sc(await server.tool('list_queries', { status: 'pending' }));
      catalogQuery = listed.queries.find((q) => q.sql.includes('pragma_table_list'));
      return catalogQuery;
    }, 30000, 'the catalog query, pending');
    assert.equal((await server.request('tools/list', {})).result.tools.length, TOOL_NAMES.length);
    server.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: slowId, reason: 'test' } });
    const st = await waitStatus(server, catalogQuery.query_id, (s) => TERMINAL.has(s));
    assert.equal(st.status, 'canceled');
    // A tasks/result blocked on a long task, cancelled: no response for it.
    const task = (await server.tool('execute_query', { sql: LONG_SQL, wait_seconds: 0 }, { task: {} })).task;
    const blockedId = 'blocked-result';
    server.send({ jsonrpc: '2.0', id: blockedId, method: 'tasks/result', params: { taskId: task.taskId } });
    server.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: blockedId } });
    assert.equal(sc(await server.tool('cancel_query', { query_id: long.query_id })).status, 'canceled');
    assert.equal((await server.request('tasks/cancel', { taskId: task.taskId })).result.status, 'cancelled');
    await sleep(500);
    assert.equal(server.responses.has(slowId), false, 'no response to a cancelled request');
    assert.equal(server.responses.has(blockedId), false, 'no response to a cancelled request');
    void slow;
    // Many requests at once: every response whole, one per line.
    const many = await Promise.all(Array.from({ length: 50 }, () => server.tool('get_query_status', { query_id: long.query_id })));
    assert.ok(many.every((r) => r.structuredContent.status === 'canceled'));
    // An execute_query waiting for its query, cancelled: the query is
    // stopped too, and no response is sent.
    const waitingId = 'waiting-execute';
    server.send({ jsonrpc: '2.0', id: waitingId, method: 'tools/call',
      params: { name: 'execute_query', arguments: { sql: `${LONG_SQL} -- waited`, wait_seconds: 40 } } });
    let waited;
    await until(async () => {
      const listed = sc(await server.tool('list_queries', {}));
      waited = listed.queries.find((q) => q.sql.endsWith('-- waited'));
      return waited;
    }, 30000, 'the waited query');
    server.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: waitingId } });
    assert.equal((await waitStatus(server, waited.query_id, (x) => TERMINAL.has(x))).status, 'canceled');
    await sleep(300);
    assert.equal(server.responses.has(waitingId), false, 'no response to a cancelled request');
  } finally {
    await closeClean(server);
  }
});

test('stdin closed mid-query: exit 0, every connection released', async () => {
  const server = new RawServer(['--db', db.url]);
  await server.initialize();
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(sc(await server.tool('execute_query', { sql: LONG_SQL, wait_seconds: 0 })).query_id);
  await waitStatus(server, ids[2], (s) => s === 'running');
  const open = dbFds(server.child.pid);
  if (open !== null) assert.ok(open >= 3, `database descriptors while running: ${open}`);
  const stats = await closeClean(server);
  assert.ok(stats.opened >= 3);
  assert.match(server.stderr, /end of input/);
});

test('SIGTERM mid-query: exit 0, every connection released', async () => {
  const server = new RawServer(['--db', db.url]);
  await server.initialize();
  const q = sc(await server.tool('execute_query', { sql: LONG_SQL, wait_seconds: 0 }));
  await waitStatus(server, q.query_id, (s) => s === 'running');
  server.child.kill('SIGTERM');
  const { code } = await server.exited;
  assert.equal(code, 0, server.stderr);
  assert.equal(sanitizerReport(server.stderr), null);
  const stats = finalStats(server.stderr);
  assert.equal(stats.opened, stats.closed);
  assert.equal(stats.leakedFds, 0);
  assert.match(server.stderr, /signal 15/);
});

test('result memory: truncated_by with a hint, value_too_large, forget_query', async () => {
  const server = new RawServer(['--db', db.url]);
  const toolError = (result) => {
    assert.equal(result.isError, true, JSON.stringify(result));
    return JSON.parse(result.content[0].text).error;
  };
  try {
    await server.initialize('2025-06-18');
    const { tools } = (await server.request('tools/list', {})).result;
    const forget = tools.find((t) => t.name === 'forget_query');
    assert.deepEqual([forget.annotations.destructiveHint, forget.annotations.idempotentHint,
      forget.annotations.readOnlyHint], [true, true, false]);
    const status = tools.find((t) => t.name === 'get_query_status');
    assert.ok(status.outputSchema.required.includes('truncated_by'));
    assert.ok(tools.find((t) => t.name === 'execute_query').inputSchema.properties.max_result_bytes);

    // Cut by max_rows: the reason and a sentence saying what to do.
    const cut = sc(await server.tool('execute_query', { sql: 'SELECT id FROM items ORDER BY id', max_rows: 10 }));
    const cutStatus = await waitStatus(server, cut.query_id, (s) => TERMINAL.has(s));
    assert.deepEqual([cutStatus.truncated, cutStatus.truncated_by], [true, 'max_rows']);
    assert.match(cutStatus.truncation_hint, /raise max_rows/);
    const cutPage = sc(await server.tool('fetch_query_result', { query_id: cut.query_id }));
    assert.deepEqual([cutPage.total_rows, cutPage.truncated_by], [10, 'max_rows']);
    assert.match(cutPage.truncation_hint, /raise max_rows/);

    // One value larger than the query may store: never "succeeded, 0 rows" without a reason.
    const big = sc(await server.tool('execute_query', {
      sql: "SELECT printf('%.*c', 2000000, 'z') AS z", max_result_bytes: 1000000,
    }));
    const bigStatus = await waitStatus(server, big.query_id, (s) => TERMINAL.has(s));
    assert.deepEqual([bigStatus.status, bigStatus.row_count, bigStatus.truncated_by],
      ['succeeded', 0, 'value_too_large']);
    assert.match(bigStatus.truncation_hint, /substr/);
    const whole = sc(await server.tool('execute_query', { sql: 'SELECT 1 AS one' }));
    const wholeStatus = await waitStatus(server, whole.query_id, (s) => TERMINAL.has(s));
    assert.deepEqual([wholeStatus.truncated_by, wholeStatus.truncation_hint, wholeStatus.result_evicted],
      [null, null, false]);
    const listed = sc(await server.tool('list_queries', {}));
    assert.deepEqual(listed.queries.map((q) => q.truncated_by), [null, 'value_too_large', 'max_rows']);

    // More than the server holds for all results: refused with a clear message.
    const refused = toolError(await server.tool('execute_query', { sql: 'SELECT 1', max_result_bytes: 2 ** 50 }));
    assert.equal(refused.type, 'invalid_argument');
    assert.match(refused.message, /max_result_bytes/);

    // forget_query: gone at once, and forgetting again is harmless.
    const forgotten = sc(await server.tool('forget_query', { query_id: cut.query_id }));
    assert.deepEqual([forgotten.forgotten, forgotten.status], [true, 'succeeded']);
    assert.ok(forgotten.freed_bytes > 0);
    const again = sc(await server.tool('forget_query', { query_id: cut.query_id }));
    assert.deepEqual([again.forgotten, again.status, again.freed_bytes], [false, null, 0]);
    assert.equal(toolError(await server.tool('get_query_status', { query_id: cut.query_id })).type, 'not_found');
    // A running query is canceled, then forgotten.
    const long = sc(await server.tool('execute_query', { sql: LONG_SQL }));
    const stopped = sc(await server.tool('forget_query', { query_id: long.query_id }));
    assert.equal(stopped.forgotten, true);
    assert.ok(['pending', 'running'].includes(stopped.status), stopped.status);
  } finally {
    await closeClean(server);
  }
});
