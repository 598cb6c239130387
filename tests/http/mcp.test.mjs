// tests/http/mcp.test.mjs - MCP over Streamable HTTP at /mcp, what the
// server itself must hold, over raw fetch (the SDK clients' scenarios are in
// tests/e2e): parked MCP calls hold no thread (500 waiting execute_query
// calls, constant thread count) and each gets its answer, over SSE or as a
// resumed JSON wait; clients that leave mid-wait cost nothing once their
// query settles; tasks/list shows a session only its own tasks; a session
// ended by DELETE is gone; SIGTERM answers every MCP wait at once with the
// query as it is, ends session streams, and exits 0 with every connection
// closed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeDatabase, startServer, LONG_SQL, sleep, threadCount } from './lib.mjs';

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
};
const BOTH = 'application/json, text/event-stream';

// One MCP message; {status, headers, message} (message parsed from JSON or
// from the single SSE event).
async function mcp(server, body, { accept = BOTH, session, signal } = {}) {
  const headers = { 'content-type': 'application/json', accept };
  if (session) headers['mcp-session-id'] = session;
  const response = await server.fetch('/mcp', {
    method: 'POST', headers, body: JSON.stringify(body), signal,
  });
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  let message = null;
  if (type.startsWith('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    assert.ok(data.length <= 1, `one event at most: ${text}`);
    message = data.length ? JSON.parse(data[0]) : null;
  } else if (text) {
    message = JSON.parse(text);
  }
  return { status: response.status, headers: response.headers, type, message };
}

const call = (id, name, args, extra = {}) => ({
  jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: META, ...extra },
});
const payload = (message) => JSON.parse(message.result.content[0].text);

async function metric(server, name) {
  const text = await (await server.fetch('/metrics')).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)[1]);
}

async function until(server, name, value) {
  for (let i = 0; ; i++) {
    const v = await metric(server, name);
    if (v === value) return;
    assert.ok(i < 3000, `${name}: ${v}, expected ${value}\n${server.stderr().slice(-1500)}`);
    await sleep(20);
  }
}

async function initialize(server, version = '2025-11-25') {
  const r = await mcp(server, {
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'test', version: '1' } },
  });
  assert.equal(r.status, 200);
  const session = r.headers.get('mcp-session-id');
  assert.match(session, /^[0-9a-f]{32}$/);
  const note = await mcp(server, { jsonrpc: '2.0', method: 'notifications/initialized' }, { session });
  assert.equal(note.status, 202);
  return session;
}

test('500 parked MCP calls: constant thread count; each answered (SSE or JSON) when the query ends', async () => {
  const server = await startServer(['--db', db.url, '--max-clients', '600']);
  try {
    const started = await mcp(server, call(1, 'execute_query', { sql: LONG_SQL, wait_seconds: 0 }));
    const id = payload(started.message).query_id;
    const wait = (i) => mcp(server, call(100 + i, 'fetch_query_result', { query_id: id, wait_seconds: 50 }),
      { accept: i % 2 ? BOTH : 'application/json' });
    const calls = [];
    for (let i = 0; i < 10; i++) calls.push(wait(i));
    await until(server, 'qreg_mcp_waits', 10);
    const threadsWithTen = threadCount(server.pid);
    for (let i = 10; i < 500; i++) calls.push(wait(i));
    await until(server, 'qreg_mcp_waits', 500);
    const threadsWith500 = threadCount(server.pid);
    assert.equal(threadsWith500, threadsWithTen, `threads: ${threadsWithTen} with 10, ${threadsWith500} with 500`);
    console.log(`# threads: ${threadsWithTen} with 10 parked MCP calls, ${threadsWith500} with 500`);
    const cancel = await mcp(server, call(2, 'cancel_query', { query_id: id }));
    assert.equal(payload(cancel.message).status, 'canceled');
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.message.id, 100 + i);
      assert.equal(r.type.split(';')[0], i % 2 ? 'text/event-stream' : 'application/json');
      assert.equal(payload(r.message).error.type, 'canceled', JSON.stringify(r.message));
    });
    await until(server, 'qreg_mcp_waits', 0);
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0, stderr.slice(-2000));
  }
});

test('a client that leaves mid-wait: its answer is dropped, nothing is held once the query ends', async () => {
  const server = await startServer(['--db', db.url]);
  try {
    const started = await mcp(server, call(1, 'execute_query', { sql: LONG_SQL, wait_seconds: 0 }));
    const id = payload(started.message).query_id;
    // A suspended connection is not read, so its close is seen when its wait
    // ends (an SSE one also at its next keep-alive comment, every 15 s):
    // whichever comes first, nothing is held once the query has settled.
    const leaving = [BOTH, 'application/json'].map((accept) => {
      const controller = new AbortController();
      const gone = mcp(server, call(3, 'fetch_query_result', { query_id: id, wait_seconds: 50 }),
        { accept, signal: controller.signal }).catch((e) => e.name);
      return { controller, gone };
    });
    await until(server, 'qreg_mcp_waits', 2);
    for (const { controller, gone } of leaving) {
      controller.abort();
      assert.equal(await gone, 'AbortError');
    }
    await mcp(server, call(2, 'cancel_query', { query_id: id }));
    await until(server, 'qreg_mcp_waits', 0);
    await until(server, 'qreg_http_requests_in_flight', 1); // the /metrics request itself
    const ping = await mcp(server, { jsonrpc: '2.0', id: 9, method: 'ping', params: { _meta: META } });
    assert.equal(ping.status, 200);
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0, stderr.slice(-2000));
  }
});

test('sessions: tasks/list shows a session its own tasks; DELETE ends a session and its stream', async () => {
  const server = await startServer(['--db', db.url]);
  try {
    const a = await initialize(server);
    const b = await initialize(server);
    assert.notEqual(a, b);
    const created = await mcp(server, {
      jsonrpc: '2.0', id: 1, method: 'tools/call',
      params: { name: 'execute_query', arguments: { sql: 'SELECT 1 AS one' }, task: { ttl: 60000 } },
    }, { session: a });
    assert.equal(created.status, 200);
    const taskId = created.message.result.task.taskId;
    const list = async (session) => (await mcp(server, { jsonrpc: '2.0', id: 2, method: 'tasks/list' },
      { session })).message.result.tasks.map((t) => t.taskId);
    assert.deepEqual(await list(a), [taskId]);
    assert.deepEqual(await list(b), []);
    assert.equal(await metric(server, 'qreg_mcp_sessions'), 2);

    // b's stream, then b ends: the stream ends, b is unknown, a is not.
    const stream = await server.fetch('/mcp', { headers: { accept: 'text/event-stream', 'mcp-session-id': b } });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get('content-type'), 'text/event-stream');
    const reader = stream.body.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /^: /); // a comment: the stream is open
    assert.equal(await metric(server, 'qreg_mcp_streams'), 1);
    const ended = await server.fetch('/mcp', { method: 'DELETE', headers: { 'mcp-session-id': b } });
    assert.equal(ended.status, 204);
    for (;;) if ((await reader.read()).done) break;
    const gone = await mcp(server, { jsonrpc: '2.0', id: 3, method: 'ping' }, { session: b });
    assert.equal(gone.status, 404);
    assert.equal((await mcp(server, { jsonrpc: '2.0', id: 4, method: 'ping' }, { session: a })).status, 200);
    assert.equal(await metric(server, 'qreg_mcp_sessions'), 1);
    assert.equal(await metric(server, 'qreg_mcp_streams'), 0);
    // A legacy request without a session, and a session id that never was.
    assert.equal((await mcp(server, { jsonrpc: '2.0', id: 5, method: 'tools/list' })).status, 400);
    assert.equal((await mcp(server, { jsonrpc: '2.0', id: 6, method: 'tools/list' },
      { session: '0'.repeat(32) })).status, 404);
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0, stderr.slice(-2000));
  }
});

test('SIGTERM: MCP waits answered at once with the query as it is, streams ended, exit 0', async () => {
  const server = await startServer(['--db', db.url]);
  const session = await initialize(server);
  const stream = await server.fetch('/mcp', { headers: { accept: 'text/event-stream', 'mcp-session-id': session } });
  const streamDone = stream.text();
  const waits = [];
  for (let i = 0; i < 6; i++) {
    waits.push(mcp(server, call(10 + i, 'execute_query', { sql: LONG_SQL, wait_seconds: 50 }),
      { accept: i % 2 ? BOTH : 'application/json' }));
  }
  await until(server, 'qreg_mcp_waits', 6);
  const stopping = server.stop();
  const results = await Promise.all(waits);
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.ok(['pending', 'running'].includes(payload(r.message).status), JSON.stringify(r.message));
  }
  await streamDone;
  const { code, stderr } = await stopping;
  assert.equal(code, 0, stderr.slice(-2000));
  const closed = /qreg: closed: connections opened=(\d+) closed=(\d+)/.exec(stderr);
  assert.ok(closed, stderr.slice(-2000));
  assert.equal(closed[1], closed[2]);
});
