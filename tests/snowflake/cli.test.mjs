// tests/snowflake/cli.test.mjs - the qreg program against the SQL API double,
// configured only as a user would: the URL's endpoint and private_key_file
// options, or SNOWFLAKE_TOKEN. `qreg query`: types, 300,000 rows over gzip
// partitions cut by --max-rows, a SYSTEM$WAIT cut by --timeout and cancelled
// on the server; `qreg mcp`: execute_query over stdio. Each ends with
// nothing running on the double and nothing run twice.
//
// Needs QREG_BIN (ctest sets it); skipped without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const QREG_BIN = process.env.QREG_BIN;
const HERE = dirname(fileURLToPath(import.meta.url));
const skip = QREG_BIN ? false : 'QREG_BIN is not set';

let dir, server, port;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'qreg-sf-cli-'));
  server = spawn(process.execPath, [join(HERE, 'sqlapi-double.mjs'), '--port', '0', '--generate-keys', dir,
    '--token', 'pat-for-the-cli-test', '--partition-rows', '25000', '--exit-with-stdin'],
  { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: server.stdout });
  port = await new Promise((resolve, reject) => {
    lines.once('line', (line) => resolve(Number(/^listening (\d+)/.exec(line)?.[1])));
    server.once('exit', (code) => reject(new Error(`the double exited (${code})`)));
  });
});

after(() => {
  if (server) server.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const url = (extra = '') =>
  `snowflake://qreg_user@xy12345/QREG_DB/PUBLIC?endpoint=http://127.0.0.1:${port}` +
  `&private_key_file=${join(dir, 'rsa_key.p8')}${extra}`;

async function control(path, body) {
  const response = await fetch(`http://127.0.0.1:${port}/_control/${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return response.json();
}

async function assertNothingLeft() {
  const { stats, running, executedTwice } = await control('stats');
  assert.deepEqual(running ?? [], [], 'nothing running on the server');
  assert.equal((executedTwice ?? []).length, 0, 'nothing ran twice');
  return stats;
}

function query(args, env = {}) {
  const r = spawnSync(QREG_BIN, ['query', ...args], {
    encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120000, maxBuffer: 256 << 20,
  });
  return r;
}

test('qreg query: values and types as the one encoder writes them', { skip }, async () => {
  const r = query(['--db', url(), '--json',
    "SELECT 1::NUMBER(38,0) AS i, 12.50::NUMBER(10,2) AS d, 'héllo' AS t, TRUE AS b, " +
    "'2024-07-01'::DATE AS day, NULL AS n"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.rows, [[1, '12.50', 'héllo', true, '2024-07-01', null]]);
  await assertNothingLeft();
});

test('qreg query: 300,000 rows over gzip partitions, cut by --max-rows', { skip }, async () => {
  const before = (await control('stats')).stats;
  const r = query(['--db', url(), '--json', '--max-rows', '100000',
    'SELECT SEQ4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 300000))']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.rows.length, 100000);
  assert.equal(out.rows[99999][0], 99999);
  assert.equal(out.truncated, true);
  const after = await assertNothingLeft();
  // 4 partitions of 25,000 hold the 100,000 rows: the other 8 are never fetched.
  assert.ok(after.partitionsServed - before.partitionsServed <= 5,
    `partitions fetched: ${after.partitionsServed - before.partitionsServed}`);
});

test('qreg query: --timeout ends SYSTEM$WAIT, and the statement is cancelled on the server', { skip }, async () => {
  const before = (await control('stats')).stats;
  const r = query(['--db', url(), '--timeout', '1', 'CALL SYSTEM$WAIT(60)']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /timeout/);
  const after = await assertNothingLeft();
  assert.equal(after.cancelled, before.cancelled + 1);
});

test('qreg query: a token from SNOWFLAKE_TOKEN, never from the URL', { skip }, async () => {
  const tokenUrl = `snowflake://qreg_user@xy12345/QREG_DB/PUBLIC?endpoint=http://127.0.0.1:${port}` +
    '&authenticator=programmatic_access_token';
  const ok = query(['--db', tokenUrl, '--json', 'SELECT 42 AS answer'], { SNOWFLAKE_TOKEN: 'pat-for-the-cli-test' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout).rows, [[42]]);
  const wrong = query(['--db', tokenUrl, 'SELECT 1'], { SNOWFLAKE_TOKEN: 'not-the-token' });
  assert.notEqual(wrong.status, 0);
  assert.ok(!wrong.stderr.includes('not-the-token'), 'the token is never printed');
  await assertNothingLeft();
});

test('qreg mcp: execute_query over stdio, in one call', { skip }, async () => {
  const mcp = spawn(QREG_BIN, ['mcp', '--db', url()], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = createInterface({ input: mcp.stdout });
  const replies = new Map();
  lines.on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.id !== undefined) replies.get(msg.id)?.(msg);
  });
  const call = (id, method, params) => new Promise((resolve) => {
    replies.set(id, resolve);
    mcp.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
  });
  try {
    const init = await call(1, 'initialize', {
      protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'cli-test', version: '1' },
    });
    assert.equal(init.result.serverInfo.name, 'qreg');
    mcp.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    const r = await call(2, 'tools/call', {
      name: 'execute_query', arguments: { sql: 'SELECT SEQ4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 3))' },
    });
    assert.equal(r.result.isError, false, JSON.stringify(r.result));
    assert.equal(r.result.structuredContent.status, 'succeeded');
    assert.deepEqual(r.result.structuredContent.rows, [[0], [1], [2]]);
  } finally {
    mcp.stdin.end();
    await new Promise((resolve) => mcp.once('exit', resolve));
  }
  await assertNothingLeft();
});
