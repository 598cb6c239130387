// tests/http/limits.test.mjs - the limits of `qreg serve`, each with a clear
// answer: a body over --max-body-bytes (413, declared or chunked), waits over
// --max-waits (503 with Retry-After), queries over --max-records (429 with
// Retry-After), a client silent past --idle-timeout (closed), connections
// over --max-clients (closed at once, the others unaffected).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { makeDatabase, startServer, LONG_SQL, sleep } from './lib.mjs';

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

async function stopClean(server) {
  const { code, stderr } = await server.stop();
  assert.equal(code, 0, stderr);
}

test('a body over --max-body-bytes is refused with 413, declared or chunked', async () => {
  const server = await startServer(['--db', db.url, '--max-body-bytes', '2048']);
  try {
    const sql = `SELECT '${'x'.repeat(4000)}'`;
    const declared = await server.post('/v1/statements', { sql });
    assert.equal(declared.status, 413);
    assert.equal(declared.body.error_type, 'request_too_large');
    const chunks = [JSON.stringify({ sql }).slice(0, 3000), JSON.stringify({ sql }).slice(3000)];
    const body = new ReadableStream({
      start(controller) {
        for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
        controller.close();
      },
    });
    const chunked = await server.json('/v1/statements', { method: 'POST', body, duplex: 'half' });
    assert.equal(chunked.status, 413);
    assert.equal(chunked.body.error_type, 'request_too_large');
    const fits = await server.post('/v1/statements', { sql: `SELECT '${'x'.repeat(1000)}'`, wait_seconds: 30 });
    assert.equal(fits.status, 200);
    assert.equal(fits.body.status, 'succeeded');
  } finally {
    await stopClean(server);
  }
});

test('waits over --max-waits get 503 with Retry-After; queries over --max-records 429', async () => {
  const server = await startServer(['--db', db.url, '--max-waits', '2', '--max-records', '1']);
  try {
    const long = await server.post('/v1/statements', { sql: LONG_SQL, wait_seconds: 0 });
    assert.equal(long.status, 202);
    const id = long.body.id;
    const held = [server.json(`/v1/statements/${id}?wait_seconds=60`), server.json(`/v1/statements/${id}?wait_seconds=60`)];
    // Both held (the metrics count them) before the third asks.
    for (let i = 0; ; i++) {
      const metrics = await (await server.fetch('/metrics')).text();
      if (/^qreg_http_waits 2$/m.test(metrics)) break;
      assert.ok(i < 1500, 'the two waits are held');
      await sleep(20);
    }
    const refused = await server.json(`/v1/statements/${id}?wait_seconds=60`);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error_type, 'too_many_waits');
    assert.equal(refused.headers.get('retry-after'), '1');
    // A status without a wait still answers.
    assert.equal((await server.json(`/v1/statements/${id}`)).status, 200);

    const full = await server.post('/v1/statements', { sql: 'SELECT 1' });
    assert.equal(full.status, 429);
    assert.equal(full.body.error_type, 'too_many_queries');
    assert.equal(full.headers.get('retry-after'), '1');

    await server.json(`/v1/statements/${id}/cancel`, { method: 'POST' });
    for (const r of await Promise.all(held)) assert.equal(r.body.status, 'canceled');
  } finally {
    await stopClean(server);
  }
});

// Opens a raw connection; resolves with it once connected.
function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

function closed(socket) {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => resolve(data));
  });
}

test('a client silent past --idle-timeout is closed, half a request included', async () => {
  const server = await startServer(['--db', db.url, '--idle-timeout', '1']);
  try {
    const socket = await connect(server.port);
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // headers never finished
    const data = await closed(socket);
    assert.ok(!data.includes('200 OK'), 'no answer to half a request');
    assert.equal((await server.json('/healthz')).status, 200, 'the server goes on');
  } finally {
    await stopClean(server);
  }
});

test('connections over --max-clients get 503 too_many_connections and are closed; the others are served', async () => {
  const server = await startServer(['--db', db.url, '--max-clients', '2']);
  try {
    const first = await connect(server.port);
    const second = await connect(server.port);
    await sleep(100);
    const third = await connect(server.port);
    const refused = closed(third);
    third.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const answer = await refused;
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /Retry-After: 1/i);
    assert.match(answer, /too_many_connections/);
    const firstAnswer = closed(first);
    first.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(await firstAnswer, /^HTTP\/1\.1 200 OK/);
    second.destroy();
  } finally {
    await stopClean(server);
  }
});
