// tests/http/routes.test.mjs - every route of `qreg serve` over a real socket
// against a temporary SQLite database, each response checked against
// docs/openapi.json: health, readiness, metrics, the document itself; submit
// (settled within the wait: 200 with rows; not: 202), status, long-polls
// released by completion and by their deadline, JSON pages, CSV and NDJSON
// streams of a result larger than one page (compared value by value with the
// JSON pages), cancel, list with filter and cursor, DELETE (freed, then 404), and
// every error as problem+json.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeDatabase, startServer, ROWS, LONG_SQL, OPENAPI } from './lib.mjs';

let db;
let server;

before(async () => {
  db = makeDatabase();
  server = await startServer(['--db', db.url]);
});

after(async () => {
  const { code, stderr } = await server.stop();
  db.remove();
  assert.equal(code, 0, stderr);
  const m = /qreg: closed: connections opened=(\d+) closed=(\d+)/.exec(stderr);
  assert.ok(m, stderr);
  assert.equal(m[1], m[2], 'every connection opened was closed');
});

const ALL_SQL = 'SELECT id, name, price, note FROM items ORDER BY id';

test('GET /healthz, /readyz and /v1/openapi.json', async () => {
  const health = await server.json('/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok' });
  const ready = await server.json('/readyz');
  assert.equal(ready.status, 200);
  assert.equal(ready.body.driver, 'sqlite');
  const doc = await server.json('/v1/openapi.json');
  assert.equal(doc.status, 200);
  assert.deepEqual(doc.body, OPENAPI, 'the served document is docs/openapi.json');
});

test('POST /v1/statements answers 200 with the first page when the query settles in time', async () => {
  const r = await server.post('/v1/statements', { sql: 'SELECT id, name FROM items WHERE id <= 3 ORDER BY id', wait_seconds: 30 });
  assert.equal(r.status, 200);
  assert.equal(r.body.status, 'succeeded');
  assert.deepEqual(r.body.result.rows, [[1, 'item 1'], [2, 'item 2'], [3, 'item 3']]);
  assert.deepEqual(r.body.columns.map((c) => c.name), ['id', 'name']);
  assert.equal(r.body.links.self, `/v1/statements/${r.body.id}`);
});

test('POST /v1/statements answers 202 when the query is still running; a long-poll is released by its deadline, then by the cancel', async () => {
  const r = await server.post('/v1/statements', { sql: LONG_SQL, wait_seconds: 0 });
  assert.equal(r.status, 202);
  assert.ok(['pending', 'running'].includes(r.body.status));
  const id = r.body.id;
  // The deadline releases the wait with the query still going.
  const polled = await server.json(`/v1/statements/${id}?wait_seconds=0.3`);
  assert.equal(polled.status, 200);
  assert.ok(['pending', 'running'].includes(polled.body.status), polled.body.status);
  // A long wait is released by the query settling (the cancel), long before its deadline.
  const waiting = server.json(`/v1/statements/${id}?wait_seconds=60`);
  let released = false;
  waiting.then(() => { released = true; });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(released, false, 'the long-poll waits while the query runs');
  const canceled = await server.json(`/v1/statements/${id}/cancel`, { method: 'POST' });
  assert.equal(canceled.status, 200);
  assert.equal(canceled.body.status, 'canceled');
  const done = await waiting;
  assert.equal(done.body.status, 'canceled');
  assert.equal(done.body.error.type, 'canceled');
  // Cancel of a finished query: its status, unchanged.
  const again = await server.json(`/v1/statements/${id}/cancel`, { method: 'POST' });
  assert.equal(again.body.status, 'canceled');
});

test('a long-poll is released by completion', async () => {
  const sql = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT max(x) FROM c';
  const r = await server.post('/v1/statements', { sql, wait_seconds: 0 });
  // Each poll returns when the query settles; a loaded machine (valgrind)
  // may need more than one 60 s wait, never a wrong answer.
  let polled;
  for (let i = 0; i < 10; i++) {
    polled = await server.json(`/v1/statements/${r.body.id}?wait_seconds=60`);
    assert.equal(polled.status, 200);
    if (polled.body.status !== 'running' && polled.body.status !== 'pending') break;
  }
  assert.equal(polled.body.status, 'succeeded');
  const page = await server.json(`/v1/statements/${r.body.id}/result`);
  assert.deepEqual(page.body.rows, [[3000000]]);
});

async function submitAll() {
  const r = await server.post('/v1/statements', { sql: ALL_SQL, wait_seconds: 30 });
  assert.equal(r.status, 200);
  assert.equal(r.body.row_count, ROWS);
  assert.equal(r.body.result.row_count, 1000, 'the inline page is the first 1000 rows');
  assert.equal(r.body.result.has_more, true);
  return r.body.id;
}

async function allPages(id) {
  const rows = [];
  let offset = 0;
  for (;;) {
    const page = await server.json(`/v1/statements/${id}/result?offset=${offset}&limit=700`);
    assert.equal(page.status, 200);
    rows.push(...page.body.rows);
    if (!page.body.has_more) break;
    assert.equal(page.body.next_offset, offset + page.body.row_count);
    offset = page.body.next_offset;
  }
  return rows;
}

test('GET /v1/statements/{id}/result pages as JSON', async () => {
  const id = await submitAll();
  const rows = await allPages(id);
  assert.equal(rows.length, ROWS);
  assert.deepEqual(rows[6], [7, 'item "7", with comma', 3.5, null]);
  assert.deepEqual(rows[9], [10, 'item 10', 5.0, '']);
  const end = await server.json(`/v1/statements/${id}/result?offset=${ROWS}`);
  assert.equal(end.body.row_count, 0);
});

test('CSV and NDJSON stream the whole result (several pages), value for value the JSON pages', async () => {
  const id = await submitAll();
  const rows = await allPages(id);

  const csvResponse = await server.fetch(`/v1/statements/${id}/result`, { headers: { accept: 'text/csv' } });
  assert.equal(csvResponse.status, 200);
  assert.match(csvResponse.headers.get('content-type'), /^text\/csv/);
  assert.equal(csvResponse.headers.get('transfer-encoding'), 'chunked');
  const { parseCsv } = await import('./lib.mjs');
  const csv = parseCsv(await csvResponse.text());
  assert.deepEqual(csv[0].map((f) => f.value), ['id', 'name', 'price', 'note']);
  assert.equal(csv.length, ROWS + 1);
  for (let r = 0; r < ROWS; r++) {
    const fields = csv[r + 1];
    const expected = rows[r];
    assert.equal(Number(fields[0].value), expected[0]);
    assert.equal(fields[1].value, expected[1]);
    assert.equal(Number(fields[2].value), expected[2]);
    if (expected[3] === null) assert.deepEqual(fields[3], { quoted: false, value: '' }, `row ${r} NULL`);
    else assert.deepEqual(fields[3], { quoted: expected[3] === '' || expected[3].includes('\n'), value: expected[3] });
  }

  const ndjsonResponse = await server.fetch(`/v1/statements/${id}/result`, { headers: { accept: 'application/x-ndjson' } });
  assert.equal(ndjsonResponse.status, 200);
  assert.equal(ndjsonResponse.headers.get('content-type'), 'application/x-ndjson');
  const lines = (await ndjsonResponse.text()).split('\n');
  assert.equal(lines.pop(), '', 'every line ends with a newline');
  const header = JSON.parse(lines.shift());
  assert.deepEqual(header.columns.map((c) => c.name), ['id', 'name', 'price', 'note']);
  assert.equal(header.total_rows, ROWS);
  assert.deepEqual(lines.map((l) => JSON.parse(l)), rows);

  // ?format= wins over Accept; an offset starts the stream later.
  const tail = await server.fetch(`/v1/statements/${id}/result?format=ndjson&offset=${ROWS - 2}`);
  const tailLines = (await tail.text()).trim().split('\n');
  assert.deepEqual(tailLines.slice(1).map((l) => JSON.parse(l)), rows.slice(ROWS - 2));
});

test('GET /v1/statements lists with status filter and cursor', async () => {
  const first = await server.post('/v1/statements', { sql: 'SELECT 1', wait_seconds: 30 });
  const second = await server.post('/v1/statements', { sql: 'SELECT 2', wait_seconds: 30 });
  const all = [];
  let cursor = null;
  for (;;) {
    const r = await server.json(`/v1/statements?status=succeeded&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.statements.length <= 2);
    all.push(...r.body.statements);
    cursor = r.body.next_cursor;
    if (!cursor) break;
  }
  assert.ok(all.every((s) => s.status === 'succeeded'));
  const ids = all.map((s) => s.id);
  assert.ok(ids.indexOf(first.body.id) >= 0 && ids.indexOf(first.body.id) < ids.indexOf(second.body.id), 'creation order');
  const newest = await server.json('/v1/statements?order=newest&limit=1');
  assert.equal(newest.body.statements.length, 1);
  const canceled = await server.json('/v1/statements?status=canceled,timeout');
  assert.ok(canceled.body.statements.every((s) => ['canceled', 'timeout'].includes(s.status)));
});

test('DELETE /v1/statements/{id} frees the statement: 204, then 404; a running one is canceled', async () => {
  const r = await server.post('/v1/statements', { sql: 'SELECT 1', wait_seconds: 30 });
  const d = await server.json(`/v1/statements/${r.body.id}`, { method: 'DELETE' });
  assert.equal(d.status, 204);
  const gone = await server.json(`/v1/statements/${r.body.id}`);
  assert.equal(gone.status, 404, 'the statement is gone');
  const again = await server.json(`/v1/statements/${r.body.id}`, { method: 'DELETE' });
  assert.equal(again.status, 404);
  const running = await server.post('/v1/statements', {
    sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c',
    wait_seconds: 0,
  });
  assert.equal(running.status, 202);
  const freed = await server.json(`/v1/statements/${running.body.id}`, { method: 'DELETE' });
  assert.equal(freed.status, 204);
  assert.equal((await server.json(`/v1/statements/${running.body.id}`)).status, 404);
});

test('errors are problem+json with the MCP error types', async () => {
  const unknownId = '00000000-0000-4000-8000-000000000000';
  const cases = [
    [await server.json('/nowhere'), 404, 'not_found'],
    [await server.json('/v1/statements/not-an-id'), 404, 'not_found'],
    [await server.json(`/v1/statements/${unknownId}`), 404, 'not_found'],
    [await server.json(`/v1/statements/${unknownId}/result`), 404, 'not_found'],
    [await server.json(`/v1/statements/${unknownId}/cancel`, { method: 'POST' }), 404, 'not_found'],
    [await server.json('/healthz', { method: 'POST' }), 405, 'method_not_allowed'],
    [await server.json('/v1/statements', { method: 'PUT' }), 405, 'method_not_allowed'],
    [await server.post('/v1/statements', { sql: 'SELECT 1', wait_seconds: 1000 }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { sql: 'SELECT 1', bogus: 1 }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { wait_seconds: 1 }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { sql: 42 }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { sql: '   ' }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { sql: 'SELECT 1', max_rows: 0 }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { sql: 'SELECT 1', max_result_bytes: 0 }), 400, 'invalid_argument'],
    [await server.post('/v1/statements', { sql: 'SELECT 1', max_result_bytes: 2 ** 40 }), 400, 'invalid_argument'],
    [await server.json('/v1/statements', { method: 'POST', body: '{not json' }), 400, 'invalid_argument'],
    [await server.json('/v1/statements?limit=0'), 400, 'invalid_argument'],
    [await server.json('/v1/statements?status=done'), 400, 'invalid_argument'],
    [await server.json('/v1/statements?cursor=garbage'), 400, 'invalid_argument'],
  ];
  for (const [r, status, type] of cases) {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.match(r.headers.get('content-type'), /^application\/problem\+json/);
    assert.equal(r.body.error_type, type, JSON.stringify(r.body));
    assert.equal(r.body.type, `urn:qreg:error:${type}`);
    assert.equal(r.body.status, status);
  }
  assert.equal((await server.json('/healthz', { method: 'POST' })).headers.get('allow'), 'GET, HEAD');

  // Cut short by its own byte cap and by max_rows: truncated_by says which.
  const capped = await server.post('/v1/statements',
    { sql: 'SELECT id, name FROM items ORDER BY id', max_result_bytes: 2000, wait_seconds: 30 });
  assert.equal(capped.body.status, 'succeeded');
  assert.equal(capped.body.truncated, true);
  assert.equal(capped.body.truncated_by, 'max_result_bytes');
  assert.ok(capped.body.row_count > 0 && capped.body.row_count < 1000, String(capped.body.row_count));
  const rows = await server.post('/v1/statements',
    { sql: 'SELECT id FROM items ORDER BY id', max_rows: 5, wait_seconds: 30 });
  assert.equal(rows.body.truncated_by, 'max_rows');
  assert.equal(rows.body.row_count, 5);
  const whole = await server.post('/v1/statements', { sql: 'SELECT 1 AS one', wait_seconds: 30 });
  assert.equal(whole.body.truncated, false);
  assert.equal(whole.body.truncated_by, null);
  assert.equal(whole.body.result_evicted, false);

  // A failed query: 200 with its error; its result is a 409 no_result.
  const failed = await server.post('/v1/statements', { sql: 'SELECT * FROM no_such_table', wait_seconds: 30 });
  assert.equal(failed.status, 200);
  assert.equal(failed.body.status, 'failed');
  assert.equal(failed.body.error.type, 'database');
  const noResult = await server.json(`/v1/statements/${failed.body.id}/result`);
  assert.equal(noResult.status, 409);
  assert.equal(noResult.body.error_type, 'no_result');
  assert.match(noResult.body.detail, /no such table/);

  // A running query has no result yet: 409 not_ready.
  const running = await server.post('/v1/statements', { sql: LONG_SQL, wait_seconds: 0 });
  const notReady = await server.json(`/v1/statements/${running.body.id}/result`);
  assert.equal(notReady.status, 409);
  assert.equal(notReady.body.error_type, 'not_ready');
  await server.json(`/v1/statements/${running.body.id}/cancel`, { method: 'POST' });

  // Past the end, and a format nobody offers.
  const small = await server.post('/v1/statements', { sql: 'SELECT 1', wait_seconds: 30 });
  const range = await server.json(`/v1/statements/${small.body.id}/result?offset=5`);
  assert.equal(range.status, 400);
  assert.equal(range.body.error_type, 'out_of_range');
  const unacceptable = await server.json(`/v1/statements/${small.body.id}/result`, { headers: { accept: 'image/png' } });
  assert.equal(unacceptable.status, 406);
  assert.equal(unacceptable.body.error_type, 'not_acceptable');

  // A write on a read-only server fails as a query, not as a crash.
  const write = await server.post('/v1/statements', { sql: 'DELETE FROM items', wait_seconds: 30 });
  assert.equal(write.body.status, 'failed');
});

test('GET /metrics: Prometheus text with the registry and the server counters; one log line per request', async () => {
  const r = await server.fetch('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  for (const name of ['qreg_queries{status="succeeded"}', 'qreg_connections_opened_total', 'qreg_connections{state="idle"}',
    'qreg_result_bytes', 'qreg_http_waits', 'qreg_http_request_duration_seconds_bucket{route="statements_submit",le="+Inf"}',
    'qreg_http_streamed_bytes_total']) {
    assert.ok(text.includes(name), `metrics lack ${name}`);
  }
  const succeeded = Number(/^qreg_queries\{status="succeeded"\} (\d+)$/m.exec(text)[1]);
  assert.ok(succeeded >= 5, `succeeded queries counted: ${succeeded}`);
  const streamed = Number(/^qreg_http_streamed_bytes_total (\d+)$/m.exec(text)[1]);
  assert.ok(streamed > 0);
  for (const line of text.trim().split('\n')) {
    assert.match(line, /^(# (HELP|TYPE) \w+ .+|[a-z_]+(\{[^}]*\})? [0-9.e+-]+)$/, line);
  }
  assert.match(server.stderr(), /qreg serve: 127\.0\.0\.1 "GET \/healthz" 200 [0-9.]+ms/);
  assert.match(server.stderr(), /"POST \/v1\/statements" 202 /);
});

test('connections are kept alive: two requests, one connection', async () => {
  const net = await import('node:net');
  const answer = await new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1', () => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' +
        'GET /v1/statements?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
  const statuses = answer.match(/HTTP\/1\.1 \d+/g);
  assert.deepEqual(statuses, ['HTTP/1.1 200', 'HTTP/1.1 200'], answer);
  assert.ok(!/^Connection: close/im.test(answer.split('HTTP/1.1 200')[1]), 'the first response keeps the connection');
});
