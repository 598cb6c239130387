// tests/http/drain.test.mjs - SIGTERM drains `qreg serve`: with long-polls,
// a running query, a stream being read and idle keep-alive connections in
// flight, every request gets a complete response or a clean close before
// its headers (none hangs, none gets half a JSON body), new connections are
// refused, the running query is canceled, every database connection is
// closed, and the process exits 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { makeDatabase, startServer, LONG_SQL, sleep } from './lib.mjs';

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

// One raw HTTP/1.1 exchange: resolves with everything the server sent
// before it closed ('' when it closed without an answer).
function rawExchange(port, request) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => resolve(data));
    socket.on('error', (e) => (e.code === 'ECONNRESET' ? resolve(data) : reject(e)));
  });
}

test('SIGTERM drains: every request in flight is answered whole or closed before its headers; exit 0', async () => {
  const server = await startServer(['--db', db.url, '--drain-timeout', '5']);
  const long = await server.post('/v1/statements', { sql: LONG_SQL, wait_seconds: 0 });
  assert.equal(long.status, 202);
  const id = long.body.id;
  const all = await server.post('/v1/statements', {
    sql: 'SELECT a.id, a.name, b.id FROM items a, items b WHERE b.id <= 20', wait_seconds: 60,
  });
  assert.equal(all.body.status, 'succeeded');

  // In flight when the signal comes: three long-polls, and an idle keep-alive connection.
  const polls = [1, 2, 3].map(() => server.json(`/v1/statements/${id}?wait_seconds=60`));
  const idle = new Promise((resolve) => {
    const socket = net.connect(server.port, '127.0.0.1');
    let data = '';
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
  });
  for (let i = 0; ; i++) {
    const metrics = await (await server.fetch('/metrics')).text();
    if (/^qreg_http_waits 3$/m.test(metrics)) break;
    assert.ok(i < 1500, 'the waits are held');
    await sleep(20);
  }
  // A stream begun and read slowly while the server drains.
  const stream = await server.fetch(`/v1/statements/${all.body.id}/result`, { headers: { accept: 'application/x-ndjson' } });
  assert.equal(stream.status, 200);
  const reader = stream.body.getReader();
  const first = await reader.read();
  assert.ok(first.value.length > 0);

  const exited = server.stop('SIGTERM');
  // Each long-poll comes back whole, with the statement as it was.
  for (const r of await Promise.all(polls)) {
    assert.equal(r.status, 200);
    assert.equal(r.body.id, id);
  }
  // The stream is read on to its end: all of it, or cut cleanly by the close.
  let text = Buffer.from(first.value).toString('utf8');
  let streamError = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
  } catch (e) {
    streamError = e;
  }
  const lines = text.split('\n');
  const header = JSON.parse(lines[0]);
  assert.ok(header.total_rows > 1000, 'more than one page');
  if (streamError === null) {
    assert.equal(lines.length, header.total_rows + 2, 'the whole result arrived');
    assert.equal(lines.pop(), '');
    for (const line of lines.slice(1)) JSON.parse(line);
  }
  // The keep-alive connection that never sent a request is closed without an answer.
  assert.equal(await idle, '');
  const { code, stderr } = await exited;
  assert.equal(code, 0, stderr);
  assert.match(stderr, /signal 15: draining/);
  const m = /qreg: closed: connections opened=(\d+) closed=(\d+)/.exec(stderr);
  assert.ok(m, stderr);
  assert.equal(m[1], m[2]);
  // After the exit nothing listens.
  const after = await rawExchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n').catch((e) => e.code);
  assert.ok(after === 'ECONNREFUSED' || after === '', String(after));
});

test('a request that comes while draining is answered 503 with Connection: close, or refused', async () => {
  const server = await startServer(['--db', db.url, '--drain-timeout', '3']);
  const long = await server.post('/v1/statements', { sql: LONG_SQL, wait_seconds: 0 });
  // A keep-alive connection kept open by a stream read slowly keeps the drain going.
  const socket = net.connect(server.port, '127.0.0.1');
  await new Promise((resolve) => socket.on('connect', resolve));
  let data = '';
  socket.setEncoding('latin1');
  socket.on('data', (d) => { data += d; });
  const closedSocket = new Promise((resolve) => socket.on('close', resolve));
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  while (!data.includes('{"status":"ok"}')) await sleep(10);
  const poll = server.json(`/v1/statements/${long.body.id}?wait_seconds=60`);
  for (let i = 0; ; i++) {
    const metrics = await (await server.fetch('/metrics')).text();
    if (/^qreg_http_waits 1$/m.test(metrics)) break;
    assert.ok(i < 1500);
    await sleep(20);
  }
  const exited = server.stop('SIGTERM');
  assert.equal((await poll).status, 200);
  // The kept-alive connection asks again during the drain.
  data = '';
  socket.write('GET /v1/statements HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await closedSocket;
  assert.ok(data === '' || /^HTTP\/1\.1 503 [^]*Connection: close[^]*shutting_down/i.test(data), data);
  const { code } = await exited;
  assert.equal(code, 0);
});
