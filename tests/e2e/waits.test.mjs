// tests/e2e/waits.test.mjs - waiting requests hold no thread: 10,000
// `tasks/result` requests, each waiting on a task whose query is running or
// pending, are outstanding at once while the `qreg mcp` process keeps at most
// 16 threads (/proc/PID/task). Then half the tasks are cancelled with
// tasks/cancel (each of their waits answered with the cancelled result) and
// standard input is closed (each remaining wait answered with an error by the
// shutdown): every request gets exactly one response, and the process exits
// 0 with every connection closed. Prints the thread count and resident size,
// idle and with every wait held (docs/performance.md quotes them).
//
// QREG_E2E_WAITS changes the number of waits (default 10000).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { RawServer, LONG_SQL, makeDatabase, finalStats, sanitizerReport } from './lib.mjs';

const WAITS = Number(process.env.QREG_E2E_WAITS ?? 10000);
const MAX_THREADS = 16;

let db;
before(() => { db = makeDatabase(); });
after(() => db.remove());

// Threads (entries of /proc/PID/task, and the Threads: line) and VmRSS of a process.
function processFigures(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)[1]);
  return { tasks: readdirSync(`/proc/${pid}/task`).length, threads: field('Threads'), rssKiB: field('VmRSS') };
}

// How many responses each id got, from every line the server wrote.
function responseCounts(server) {
  const counts = new Map();
  for (const line of server.lines) {
    const { id } = JSON.parse(line);
    if (id !== null && id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

test(`${WAITS} tasks/result waits held at once: at most ${MAX_THREADS} threads, one answer each`, async () => {
  // Two connections: two queries run, every other one waits in pending.
  const server = new RawServer(['--db', db.url, '--max-connections', '2',
    '--max-records', String(WAITS + 100)]);
  const pid = server.child.pid;
  await server.initialize('2025-11-25');
  const idle = processFigures(pid);

  // WAITS tasks, each a query that runs for many seconds (or waits behind those that do).
  const created = await Promise.all(Array.from({ length: WAITS }, (_, i) => server.request('tools/call',
    { name: 'execute_query', arguments: { sql: LONG_SQL, wait_seconds: 0 }, task: { ttl: 600000 } }, `create-${i}`)));
  const taskIds = created.map((reply) => {
    assert.equal(reply.result?.task?.status, 'working', JSON.stringify(reply));
    return reply.result.task.taskId;
  });

  // One tasks/result per task. The reader takes lines in order, so once the
  // ping sent after them is answered, every one of them has been read and is
  // waiting.
  const results = taskIds.map((taskId, i) => server.request('tasks/result', { taskId }, `result-${i}`));
  await server.request('ping', undefined, 'after-results');
  const held = processFigures(pid);
  console.log(`qreg mcp, ${WAITS} tasks/result waits held: threads ${held.threads} ` +
    `(/proc/${pid}/task: ${held.tasks}), VmRSS ${(held.rssKiB / 1024).toFixed(1)} MiB; ` +
    `idle before the tasks: threads ${idle.threads}, VmRSS ${(idle.rssKiB / 1024).toFixed(1)} MiB`);
  assert.ok(held.tasks <= MAX_THREADS, `${held.tasks} threads with ${WAITS} waits held`);
  assert.ok(held.threads <= MAX_THREADS, `${held.threads} threads with ${WAITS} waits held`);
  assert.equal(results.length, WAITS);
  assert.ok(![...server.responses.keys()].some((id) => String(id).startsWith('result-')),
    'no tasks/result is answered while its query runs or waits');

  // The reader is free meanwhile: a status comes back at once.
  const status = await server.tool('get_query_status', { query_id: taskIds[0] });
  assert.equal(status.structuredContent.status, 'running');

  // Cancel the newest half: each tasks/cancel answers with the task
  // cancelled, and each of their waits ends with the cancelled result.
  const half = Math.floor(WAITS / 2);
  const cancels = await Promise.all(taskIds.slice(half).map((taskId, j) =>
    server.request('tasks/cancel', { taskId }, `cancel-${j}`)));
  for (const reply of cancels) assert.equal(reply.result?.status, 'cancelled', JSON.stringify(reply));
  const cancelled = await Promise.all(results.slice(half));
  cancelled.forEach((reply, j) => {
    assert.equal(reply.result?.isError, true, JSON.stringify(reply));
    assert.equal(reply.result.structuredContent.status, 'canceled');
    assert.equal(reply.result._meta['io.modelcontextprotocol/related-task'].taskId, taskIds[half + j]);
  });
  assert.ok(![...server.responses.keys()].some((id) => /^result-/.test(id) && Number(id.slice(7)) < half),
    'the other waits still wait');
  const afterCancel = processFigures(pid);
  assert.ok(afterCancel.tasks <= MAX_THREADS);

  // End of input: the shutdown ends the other waits, each with an error.
  const { code, signal } = await server.close();
  assert.equal(signal, null);
  assert.equal(code, 0, server.stderr.slice(-2000));
  assert.equal(sanitizerReport(server.stderr), null);
  const stats = finalStats(server.stderr);
  assert.ok(stats, server.stderr.slice(-2000));
  assert.equal(stats.opened, stats.closed);
  if (stats.leakedFds !== null) assert.equal(stats.leakedFds, 0);
  await server.stdoutClosed;
  const closed = await Promise.all(results.slice(0, half));
  for (const reply of closed) assert.equal(reply.error?.code, -32603, JSON.stringify(reply));

  // Exactly one response per request.
  const counts = responseCounts(server);
  const expected = [...taskIds.keys()].flatMap((i) => [`create-${i}`, `result-${i}`])
    .concat(taskIds.slice(half).map((_, j) => `cancel-${j}`));
  for (const id of expected) assert.equal(counts.get(id), 1, `responses to ${id}`);
  assert.equal([...counts.values()].reduce((a, b) => a + b, 0),
    expected.length + 3, 'nothing else answered (initialize, ping, get_query_status)');
});
