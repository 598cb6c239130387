// tests/http/threads.test.mjs - waiting clients hold no thread: the thread
// count of `qreg serve` (/proc/<pid>/status) with 1,000 long-polls held on
// a running query is the same as with 10, and the one cancel releases them
// all, each with the canceled statement.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeDatabase, startServer, LONG_SQL, sleep, threadCount } from './lib.mjs';

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

async function waitsHeld(server, count) {
  for (let i = 0; ; i++) {
    const metrics = await (await server.fetch('/metrics')).text();
    const held = Number(/^qreg_http_waits (\d+)$/m.exec(metrics)[1]);
    if (held === count) return;
    assert.ok(i < 3000, `waits held: ${held}, expected ${count}`);
    await sleep(20);
  }
}

test('1,000 concurrent long-polls: constant thread count, all released by one cancel', async () => {
  const server = await startServer(['--db', db.url, '--max-clients', '1100']);
  try {
    const long = await server.post('/v1/statements', { sql: LONG_SQL, wait_seconds: 0 });
    assert.equal(long.status, 202);
    const id = long.body.id;
    for (let i = 0; ; i++) {
      const s = await server.json(`/v1/statements/${id}`);
      if (s.body.status === 'running') break;
      assert.ok(i < 1500);
      await sleep(20);
    }
    const poll = () => server.json(`/v1/statements/${id}?wait_seconds=60`);
    const polls = [];
    for (let i = 0; i < 10; i++) polls.push(poll());
    await waitsHeld(server, 10);
    const threadsWithTen = threadCount(server.pid);
    for (let i = 10; i < 1000; i++) polls.push(poll());
    await waitsHeld(server, 1000);
    const threadsWithThousand = threadCount(server.pid);
    assert.equal(threadsWithThousand, threadsWithTen,
      `threads with 10 waits: ${threadsWithTen}, with 1000: ${threadsWithThousand}`);
    console.log(`# threads: ${threadsWithTen} with 10 long-polls, ${threadsWithThousand} with 1000`);

    const canceled = await server.json(`/v1/statements/${id}/cancel`, { method: 'POST' });
    assert.equal(canceled.body.status, 'canceled');
    const results = await Promise.all(polls);
    assert.equal(results.length, 1000);
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.body.status, 'canceled');
    }
    await waitsHeld(server, 0);
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0, stderr.slice(-2000));
  }
});
