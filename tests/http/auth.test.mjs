// tests/http/auth.test.mjs - bearer tokens of `qreg serve`: a token file
// readable by others is refused at start; without tokens a non-loopback
// --listen is refused with a clear error; with tokens every route but
// /healthz, /readyz and /v1/openapi.json needs one (401 with
// WWW-Authenticate otherwise), plain and sha256: lines both work, and no
// token ever reaches the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { makeDatabase, startServer, runServe, tokenFile } from './lib.mjs';

const PLAIN = 'plain-token-0123456789abcdef';
const HASHED = 'hashed-token-fedcba9876543210';
let db;

before(() => { db = makeDatabase(); });
after(() => db.remove());

test('a token file others may read is refused', async () => {
  const file = tokenFile(db.dir, [PLAIN], 0o644);
  const { code, stderr } = await runServe(['--db', db.url, '--token-file', file, '--listen', '127.0.0.1:0']);
  assert.equal(code, 1);
  assert.match(stderr, /mode is 0644.*0600/);
  assert.ok(!stderr.includes(PLAIN));
});

test('a malformed token file is refused without showing its content', async () => {
  const file = tokenFile(db.dir, ['short']);
  const { code, stderr } = await runServe(['--db', db.url, '--token-file', file, '--listen', '127.0.0.1:0']);
  assert.equal(code, 1);
  assert.match(stderr, /line 1: a token must have 16 to 4096 characters/);
  assert.ok(!stderr.includes('short\n'));
  const empty = tokenFile(db.dir, ['# only a comment']);
  const second = await runServe(['--db', db.url, '--token-file', empty, '--listen', '127.0.0.1:0']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /holds no token/);
});

test('without tokens only loopback addresses are allowed', async () => {
  const { code, stderr } = await runServe(['--db', db.url, '--listen', '0.0.0.0:0']);
  assert.equal(code, 1);
  assert.match(stderr, /not a loopback address, and no --token-file/);
  const bad = await runServe(['--db', db.url, '--listen', 'nonsense']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /expected HOST:PORT/);
  const badDb = await runServe(['--db', 'nosuchscheme:x', '--listen', '127.0.0.1:0']);
  assert.equal(badDb.code, 1);
  assert.match(badDb.stderr, /cannot open the registry/);
  const usage = await runServe(['--listen', '127.0.0.1:0']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--db URL is required/);
});

test('with tokens: 401 with WWW-Authenticate without a valid one; plain and hashed tokens pass', async () => {
  const digest = createHash('sha256').update(HASHED).digest('hex');
  const file = tokenFile(db.dir, ['# tokens of the test', PLAIN, '', `sha256:${digest}`]);
  // A token file allows a non-loopback address; 127.0.0.1 is still used to reach it.
  const server = await startServer(['--db', db.url, '--token-file', file]);
  try {
    const anonymous = await server.json('/v1/statements');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="qreg"');
    assert.equal(anonymous.body.error_type, 'unauthorized');
    for (const header of [`Bearer wrong-token-0123456789`, `Basic ${Buffer.from('a:b').toString('base64')}`,
      `Bearer ${HASHED}x`, `Bearer ${digest}`, 'Bearer ']) {
      const r = await server.json('/metrics', { headers: { authorization: header } });
      assert.equal(r.status, 401, header);
    }
    const posted = await server.json('/v1/statements', {
      method: 'POST', body: JSON.stringify({ sql: 'SELECT 1' }), headers: { 'content-type': 'application/json' },
    });
    assert.equal(posted.status, 401, 'no query runs without a token');
    for (const token of [PLAIN, HASHED]) {
      const r = await server.json('/v1/statements', {
        method: 'POST', body: JSON.stringify({ sql: 'SELECT 42', wait_seconds: 30 }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.result.rows, [[42]]);
    }
    // Probes and the document need no token.
    assert.equal((await server.json('/healthz')).status, 200);
    assert.equal((await server.json('/readyz')).status, 200);
    assert.equal((await server.json('/v1/openapi.json')).status, 200);
    const listed = await server.json('/v1/statements', { headers: { authorization: `bearer ${PLAIN}` } });
    assert.equal(listed.status, 200, 'the scheme is case-insensitive');
    // /readyz's own check query ("SELECT 1") is listed too, for its short TTL.
    const ours = listed.body.statements.filter((s) => s.sql === 'SELECT 42');
    assert.equal(ours.length, 2, 'only the two authorized queries ran');
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0);
    assert.ok(!stderr.includes(PLAIN) && !stderr.includes(HASHED) && !stderr.includes(digest), 'no token in the log');
    assert.match(stderr, /"GET \/v1\/statements" 401/);
  }
});
