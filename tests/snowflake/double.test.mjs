// tests/snowflake/double.test.mjs - the self-test of the SQL API double: it
// starts sqlapi-double.mjs as a process (as the driver's tests do), with a key
// pair made here, and drives it over HTTP: authentication (key-pair JWT
// checked for real, OAuth and programmatic access tokens), submit / poll /
// partitions / gzip, the typed values' encodings, cancel, timeout,
// requestId + retry, injected faults, the request log and the counters that
// let a test prove "nothing left running, nothing ran twice".
//
//   node --test tests/snowflake/
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { signJwt, verifyJwt, normaliseAccount, publicKeyFingerprint } from './jwt.mjs';

const DOUBLE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sqlapi-double.mjs');
const TOKEN = 'pat-for-tests-0123456789';
const ACCOUNT = 'myorg-test.us-east-1';
const USER = 'qreg_tester';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const dir = mkdtempSync(path.join(tmpdir(), 'qreg-sfdouble-'));
const publicKeyFile = path.join(dir, 'public.pem');
writeFileSync(publicKeyFile, keys.publicKey.export({ type: 'spki', format: 'pem' }));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Starts the double as a child process; resolves once it printed its port.
function startDouble(extraArgs = []) {
  return new Promise((resolve, reject) => {
    const stateFile = path.join(dir, `state-${Date.now()}-${Math.random()}.json`);
    const keyArgs = extraArgs.includes('--generate-keys') ? [] : ['--public-key', publicKeyFile];
    const child = spawn(process.execPath, [DOUBLE, '--port', '0', ...keyArgs, '--token', TOKEN,
      '--state-file', stateFile, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^listening (\d+)\n/.exec(out);
      if (m) resolve({ port: Number(m[1]), child, stateFile, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`double exited with ${code}: ${err}`)));
  });
}

function stopDouble(d) {
  return new Promise((resolve) => {
    if (d.child.exitCode !== null) return resolve(d.child.exitCode);
    d.child.once('exit', (code) => resolve(code));
    d.child.kill('SIGTERM');
  });
}

// One HTTP exchange, raw: { status, headers, body (Buffer), json }; a
// connection reset rejects with the socket's error.
function call(port, method, pathAndQuery, { body, headers = {}, auth = 'jwt', signal } = {}) {
  const h = { 'user-agent': 'qreg-double-test/1.0', accept: 'application/json', ...headers };
  if (auth === 'jwt') {
    h.authorization = `Bearer ${signJwt({ account: ACCOUNT, user: USER, privateKey: keys.privateKey })}`;
    h['x-snowflake-authorization-token-type'] = 'KEYPAIR_JWT';
  } else if (auth === 'pat') {
    h.authorization = `Bearer ${TOKEN}`;
    h['x-snowflake-authorization-token-type'] = 'PROGRAMMATIC_ACCESS_TOKEN';
  }
  let payload = null;
  if (body !== undefined) {
    payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    h['content-type'] ??= 'application/json';
    h['content-length'] = payload.length;
  }
  for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathAndQuery, headers: h, agent: false, signal }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: raw, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

let d;
const api = (method, p, opts) => call(d.port, method, p, opts);
const submit = (statement, query = '', extra = {}, opts = {}) =>
  api('POST', `/api/v2/statements${query}`, { body: { statement, ...extra }, ...opts });
const get = (handle, partition) => api('GET', `/api/v2/statements/${handle}${partition === undefined ? '' : `?partition=${partition}`}`);
const ctl = async (method, p, body) => (await call(d.port, method, `/_control/${p}`, { body, auth: null })).json;

// Polls a statement until it is no longer running (a hang guard, not a timer).
async function settle(handle) {
  for (let i = 0; i < 2000; i++) {
    const r = await get(handle);
    if (r.status !== 202) return r;
    assert.equal(r.json.code, '333334');
    await sleep(10);
  }
  throw new Error(`statement ${handle} never settled`);
}

// Every test ends with nothing running on the double.
async function assertNothingRunning() {
  const running = await ctl('GET', 'running');
  assert.equal(running.count, 0, JSON.stringify(running));
}

before(async () => { d = await startDouble(); });
after(async () => {
  assert.equal(await stopDouble(d), 0);
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => { await ctl('POST', 'reset'); });

test('jwt.mjs: fingerprint, account normalisation and claim checks', () => {
  assert.equal(normaliseAccount('xy12345.us-east-1'), 'XY12345');
  assert.equal(normaliseAccount('myorg-myaccount'), 'MYORG-MYACCOUNT');
  assert.equal(normaliseAccount('myorg-acct.global'), 'MYORG');
  assert.match(publicKeyFingerprint(keys.publicKey), /^SHA256:[A-Za-z0-9+/]{43}=$/);
  const token = signJwt({ account: ACCOUNT, user: USER, privateKey: keys.privateKey });
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  assert.equal(claims.sub, 'MYORG-TEST.QREG_TESTER');
  assert.equal(claims.iss, `MYORG-TEST.QREG_TESTER.${publicKeyFingerprint(keys.publicKey)}`);
  assert.deepEqual(verifyJwt(token, keys.publicKey, { expected: { account: ACCOUNT, user: USER } }),
    { ok: true, account: 'MYORG-TEST', user: 'QREG_TESTER' });
  assert.equal(verifyJwt(token, keys.publicKey, { expected: { user: 'someone' } }).reason, 'wrong user');
  assert.equal(verifyJwt(token, otherKeys.publicKey).ok, false);
});

test('the double prints its port, answers SELECT 1 with a ResultSet as the spec shapes it', async () => {
  const r = await submit('SELECT 1');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  const b = r.json;
  assert.equal(b.code, '090001');
  assert.equal(b.sqlState, '00000');
  assert.match(b.statementHandle, UUID);
  assert.equal(typeof b.createdOn, 'number');
  assert.ok(b.statementStatusUrl.startsWith(`/api/v2/statements/${b.statementHandle}`));
  assert.equal(b.resultSetMetaData.format, 'jsonv2');
  assert.equal(b.resultSetMetaData.numRows, 1);
  assert.deepEqual(b.resultSetMetaData.partitionInfo.map((p) => p.rowCount), [1]);
  assert.equal(b.resultSetMetaData.rowType[0].name, '1');
  assert.equal(b.resultSetMetaData.rowType[0].type, 'fixed');
  assert.deepEqual(b.data, [['1']]);
  await assertNothingRunning();
});

test('authentication: key-pair JWT verified for real, tokens compared, 401 bodies like Snowflake\'s', async () => {
  const jwt = (over = {}, key = keys.privateKey, header = {}) =>
    signJwt({ account: ACCOUNT, user: USER, privateKey: key, claimsOverride: over, headerOverride: header });
  const withJwt = (token, type = 'KEYPAIR_JWT') => submit('SELECT 1', '', {}, {
    auth: null, headers: { authorization: `Bearer ${token}`, 'x-snowflake-authorization-token-type': type },
  });
  const now = Math.floor(Date.now() / 1000);
  const fp = publicKeyFingerprint(keys.publicKey);

  assert.equal((await withJwt(jwt())).status, 200);
  assert.equal((await submit('SELECT 1', '', {}, { auth: 'pat' })).status, 200);
  assert.equal((await withJwt(TOKEN, 'OAUTH')).status, 200);

  const refused = [
    await submit('SELECT 1', '', {}, { auth: null }),
    await withJwt(jwt({}, otherKeys.privateKey)), // signed by another key
    await withJwt(jwt({ sub: 'myorg-test.qreg_tester', iss: `myorg-test.qreg_tester.${fp}` })), // lower case
    await withJwt(jwt({ iss: 'MYORG-TEST.QREG_TESTER.SHA256:AAAA' })), // wrong fingerprint
    await withJwt(jwt({ iat: now - 7200, exp: now - 3600 })), // expired
    await withJwt(jwt({ iat: now, exp: now + 3601 })), // lives longer than an hour
    await withJwt(jwt({}, keys.privateKey, { alg: 'none' })),
    await withJwt(`${jwt().split('.').slice(0, 2).join('.')}.`), // no signature
    await withJwt('not-a-token'),
    await withJwt('wrong-token', 'OAUTH'),
    await withJwt('wrong-token', 'PROGRAMMATIC_ACCESS_TOKEN'),
    await withJwt(jwt(), null), // a JWT without the header means OAUTH (the spec)
  ];
  for (const r of refused) {
    assert.equal(r.status, 401, r.text);
    assert.match(r.json.code, /^390\d{3}$/);
    assert.equal(typeof r.json.message, 'string');
  }
  const stats = await ctl('GET', 'stats');
  assert.equal(stats.stats.authFailures, 12);
  assert.equal(stats.stats.executed, 3, 'a refused request executes nothing');

  // The log shows token types and JWT claims, never a secret.
  const log = await ctl('GET', 'log');
  const text = JSON.stringify(log);
  assert.ok(!text.includes(TOKEN));
  assert.ok(!text.includes('Bearer'));
  assert.equal(log.requests[0].auth.tokenType, 'KEYPAIR_JWT');
  assert.equal(log.requests[0].auth.sub, 'MYORG-TEST.QREG_TESTER');
  assert.equal(log.requests[1].auth.tokenType, 'PROGRAMMATIC_ACCESS_TOKEN');
});

test('maxTokenAgeSeconds refuses older tokens, so a driver\'s renewal shows', async () => {
  await ctl('POST', 'config', { maxTokenAgeSeconds: 30 });
  const now = Math.floor(Date.now() / 1000);
  const old = signJwt({ account: ACCOUNT, user: USER, privateKey: keys.privateKey, nowSeconds: now - 120 });
  const headers = { authorization: `Bearer ${old}`, 'x-snowflake-authorization-token-type': 'KEYPAIR_JWT' };
  const r = await submit('SELECT 1', '', {}, { auth: null, headers });
  assert.equal(r.status, 401);
  assert.match(r.json.message, /older than 30 s/);
  assert.equal((await submit('SELECT 1')).status, 200, 'a fresh token passes');
  const ms = signJwt({ account: ACCOUNT, user: USER, privateKey: keys.privateKey, nowSeconds: Date.now() });
  const inMs = await submit('SELECT 1', '', {}, { auth: null,
    headers: { authorization: `Bearer ${ms}`, 'x-snowflake-authorization-token-type': 'KEYPAIR_JWT' } });
  assert.equal(inMs.status, 401, 'iat in milliseconds is refused');
});

test('every type of the typed table, encoded as Snowflake documents', async () => {
  const r = await submit('SELECT * FROM QREG_DB.PUBLIC.TYPED_VALUES ORDER BY ID');
  assert.equal(r.status, 200, r.text);
  const { rowType } = r.json.resultSetMetaData;
  const type = Object.fromEntries(rowType.map((c) => [c.name, c]));
  assert.deepEqual(rowType.map((c) => c.type), ['fixed', 'fixed', 'fixed', 'fixed', 'fixed', 'real', 'text', 'boolean',
    'date', 'time', 'timestamp_ntz', 'timestamp_ltz', 'timestamp_tz', 'variant', 'object', 'array', 'binary']);
  assert.equal(type.NUM_SCALE2.scale, 2);
  assert.equal(type.NUM_BIG_SCALE.precision, 38);
  assert.equal(type.NUM_BIG_SCALE.scale, 10);
  assert.equal(type.ID.nullable, false);
  const row = (id) => Object.fromEntries(rowType.map((c, i) => [c.name, r.json.data[id - 1][i]]));
  const one = row(1);
  assert.equal(one.NUM_SCALE2, '12.34');
  assert.equal(one.NUM_BIG, '9007199254740993');
  assert.equal(one.REAL_VALUE, '1.5');
  assert.equal(one.BOOL_VALUE, 'true');
  assert.equal(one.DATE_VALUE, '19723'); // 2024-01-01
  assert.equal(one.TIME_VALUE, '45296.123456789'); // 12:34:56.123456789
  assert.equal(one.TS_NTZ, '1704112496.123456789'); // 2024-01-01 12:34:56.123456789
  assert.equal(one.TS_TZ, '1704108896.123456789 1500'); // same wall clock at +01:00
  assert.deepEqual(JSON.parse(one.VARIANT_VALUE), { a: 1, b: [true, null], c: 'x' });
  assert.equal(one.BINARY_VALUE, '48656C6C6F'); // "Hello"
  const two = row(2);
  assert.equal(two.NUM_BIG, '9'.repeat(38));
  assert.equal(two.NUM_BIG_SCALE, '-1234567890123456789012345678.0123456789');
  assert.ok(two.TEXT_VALUE.includes('日本語 😀'));
  assert.equal(two.DATE_VALUE, '-1'); // 1969-12-31
  assert.equal(two.TS_TZ, '1719849600.500000000 960'); // 2024-07-01 08:00:00.5 -08:00
  assert.equal(two.VARIANT_VALUE, '"just a string"');
  assert.equal(row(3).REAL_VALUE, 'inf');
  assert.equal(row(3).TS_TZ.split(' ')[1], String(1440 + 345)); // +05:45
  assert.deepEqual(r.json.data[3].slice(1), new Array(16).fill(null));

  const specials = await submit('SELECT R FROM REAL_SPECIALS ORDER BY ID');
  assert.deepEqual(specials.json.data.map((x) => x[0]).slice(0, 3), ['inf', '-inf', 'NaN']);

  // nullable=false: NULL becomes the string "null" (the spec's nullable parameter).
  const notNull = await submit('SELECT NUM_BIG, TEXT_VALUE FROM TYPED_VALUES WHERE ID = 4', '?nullable=false');
  assert.deepEqual(notNull.json.data, [['null', 'null']]);
});

test('literals, casts and bindings give typed columns', async () => {
  const r = await submit("SELECT 1.50 AS A, 'x' B, '2024-01-01'::DATE C, '1 2'::VARCHAR D, ? E, :2 F", '',
    { bindings: { 1: { type: 'FIXED', value: '123' }, 2: { type: 'TEXT', value: 'bound' } } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.resultSetMetaData.rowType.map((c) => `${c.name}:${c.type}`),
    ['A:fixed', 'B:text', 'C:date', 'D:text', 'E:fixed', 'F:text']);
  assert.deepEqual(r.json.data, [['1.50', 'x', '19723', '1 2', '123', 'bound']]);
  const ctx = await submit('SELECT CURRENT_WAREHOUSE(), CURRENT_ROLE(), CURRENT_DATABASE()', '',
    { warehouse: 'WH', role: 'READER', database: 'QREG_DB' });
  assert.deepEqual(ctx.json.data, [['WH', 'READER', 'QREG_DB']]);
});

test('async submit: 202 with 333334, then poll, partitions with gzip after the first', async () => {
  await ctl('POST', 'config', { partitionRows: 10, minRunMs: 50 });
  const requestId = '0b0e0e0e-0000-4000-8000-000000000001';
  const r = await submit('SELECT SEQ4() AS N FROM TABLE(GENERATOR(ROWCOUNT => 25))', `?async=TRUE&requestId=${requestId}`,
    { parameters: { MULTI_STATEMENT_COUNT: '1', QUERY_TAG: 'qreg-test' } });
  assert.equal(r.status, 202);
  assert.equal(r.json.code, '333334');
  assert.match(r.json.statementHandle, UUID);
  assert.ok(r.json.statementStatusUrl.includes(r.json.statementHandle));
  const handle = r.json.statementHandle;
  const first = await settle(handle);
  assert.equal(first.status, 200);
  assert.equal(first.headers['content-encoding'], undefined);
  const meta = first.json.resultSetMetaData;
  assert.equal(meta.numRows, 25);
  assert.deepEqual(meta.partitionInfo.map((p) => p.rowCount), [10, 10, 5]);
  assert.ok(meta.partitionInfo[1].compressedSize > 0);
  assert.match(first.headers.link, /partition=1>; rel="next"/);
  const rows = [...first.json.data];
  for (let p = 1; p < meta.partitionInfo.length; p++) {
    const part = await get(handle, p);
    assert.equal(part.status, 200);
    assert.equal(part.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(part.body).length, meta.partitionInfo[p].uncompressedSize);
    assert.equal(part.body.length, meta.partitionInfo[p].compressedSize);
    rows.push(...part.json.data);
  }
  assert.deepEqual(rows.map((x) => Number(x[0])), Array.from({ length: 25 }, (_, i) => i));
  const beyond = await get(handle, 3);
  assert.equal(beyond.status, 422);
  const statements = await ctl('GET', 'statements');
  assert.equal(statements.statements[0].queryTag, 'qreg-test');
  await assertNothingRunning();
});

test('300,000 rows in 30 gzip partitions, each fetched once', async () => {
  const r = await submit('SELECT SEQ4() FROM TABLE(GENERATOR(ROWCOUNT => 300000))', '?async=true');
  const first = await settle(r.json.statementHandle);
  const info = first.json.resultSetMetaData.partitionInfo;
  assert.equal(info.length, 30);
  let count = first.json.data.length;
  let sum = first.json.data.reduce((a, x) => a + Number(x[0]), 0);
  for (let p = 1; p < info.length; p++) {
    const part = await get(r.json.statementHandle, p);
    assert.equal(part.headers['content-encoding'], 'gzip');
    count += part.json.data.length;
    sum += part.json.data.reduce((a, x) => a + Number(x[0]), 0);
  }
  assert.equal(count, 300000);
  assert.equal(sum, (299999 * 300000) / 2);
});

test('bareGzip: odd partitions gzip without Content-Encoding; partitionsServed, connections, the sent timeout', async () => {
  const before = (await ctl('GET', 'stats')).stats;
  assert.equal(before.partitionsServed, 0);
  await ctl('POST', 'config', { partitionRows: 10, bareGzip: true });
  const r = await submit('SELECT SEQ4() AS N FROM TABLE(GENERATOR(ROWCOUNT => 35))', '?async=true', { timeout: 7 });
  const handle = r.json.statementHandle;
  const first = await settle(handle);
  assert.equal(first.status, 200);
  const rows = [...first.json.data];
  for (let p = 1; p < 4; p++) {
    const part = await get(handle, p);
    assert.equal(part.status, 200);
    if (p % 2 === 1) {
      assert.equal(part.headers['content-encoding'], undefined);
      assert.equal(part.json, null); // gzip bytes: not JSON as they arrive
      assert.deepEqual(part.body.subarray(0, 2), Buffer.from([0x1f, 0x8b]));
      rows.push(...JSON.parse(gunzipSync(part.body).toString('utf8')).data);
    } else {
      assert.equal(part.headers['content-encoding'], 'gzip');
      rows.push(...part.json.data);
    }
  }
  assert.deepEqual(rows.map((x) => Number(x[0])), Array.from({ length: 35 }, (_, i) => i));
  const after = (await ctl('GET', 'stats')).stats;
  assert.equal(after.partitionsServed, 4); // partition 0 once (the settling poll) and 1..3
  // Every exchange here used its own connection (agent: false): at least
  // one per request above, control ones included.
  assert.ok(after.connections - before.connections >= 6, JSON.stringify(after));
  const log = (await ctl('GET', 'log')).requests;
  assert.equal(log.find((e) => e.kind === 'submit').timeout, 7);
  await ctl('POST', 'config', { bareGzip: false });
  assert.equal((await get(handle, 1)).headers['content-encoding'], 'gzip');
  assert.equal((await call(d.port, 'POST', '/_control/config', { body: { bareGzip: 'yes' }, auth: null })).status, 400);
});

test('SYSTEM$WAIT runs until cancelled; cancel ends it; a second cancel is refused', async () => {
  const r = await submit('CALL SYSTEM$WAIT(60)', '?async=true');
  assert.equal(r.status, 202);
  const handle = r.json.statementHandle;
  assert.equal((await get(handle)).status, 202);
  let running = await ctl('GET', 'running');
  assert.equal(running.count, 1);
  assert.equal(running.statements[0].handle, handle);
  const c = await api('POST', `/api/v2/statements/${handle}/cancel`);
  assert.equal(c.status, 200);
  assert.equal(c.json.statementHandle, handle);
  const after = await get(handle);
  assert.equal(after.status, 422);
  assert.equal(after.json.code, '000604');
  assert.equal(after.json.sqlState, '57014');
  running = await ctl('GET', 'running');
  assert.equal(running.count, 0);
  const again = await api('POST', `/api/v2/statements/${handle}/cancel`);
  assert.equal(again.status, 422);
  const unknown = await api('POST', '/api/v2/statements/00000000-0000-4000-8000-000000000000/cancel');
  assert.equal(unknown.status, 422);
  assert.equal(unknown.json.code, '000709');
  const { stats } = await ctl('GET', 'stats');
  assert.equal(stats.cancelled, 1);
  assert.equal(stats.running, 0);
});

test('a cancel that takes effect later: the statement reports running until it ended', async () => {
  await ctl('POST', 'config', { cancelDelayMs: 200 });
  const r = await submit("SELECT SYSTEM$WAIT(60, 'SECONDS')", '?async=true');
  const handle = r.json.statementHandle;
  assert.equal((await api('POST', `/api/v2/statements/${handle}/cancel`)).status, 200);
  const during = await get(handle);
  assert.equal(during.status, 202, 'still running right after the cancel was accepted');
  assert.equal((await ctl('GET', 'running')).statements[0].cancelRequested, true);
  const end = await settle(handle);
  assert.equal(end.status, 422);
  assert.equal(end.json.code, '000604');
  await assertNothingRunning();
});

test('timeout: 408 with a QueryStatus and the statement no longer runs', async () => {
  const r = await submit('CALL SYSTEM$WAIT(60)', '', { timeout: 1 });
  assert.equal(r.status, 408);
  assert.equal(r.json.code, '000630');
  assert.match(r.json.message, /timeout of 1 second/);
  assert.equal((await get(r.json.statementHandle)).status, 408);
  await assertNothingRunning();
  assert.equal((await ctl('GET', 'stats')).stats.timedOut, 1);
});

test('synchronous submit waits for the end, or answers 202 after the synchronous wait', async () => {
  const quick = await submit("CALL SYSTEM$WAIT(100, 'MILLISECONDS')");
  assert.equal(quick.status, 200);
  assert.deepEqual(quick.json.data, [['waited 100 milliseconds']]);
  await ctl('POST', 'config', { syncWaitSeconds: 0.1 });
  const slow = await submit('CALL SYSTEM$WAIT(60)');
  assert.equal(slow.status, 202);
  assert.equal((await api('POST', `/api/v2/statements/${slow.json.statementHandle}/cancel`)).status, 200);
  await assertNothingRunning();
});

test('errors: 422 with Snowflake codes, 400/404/405/415 for bad requests', async () => {
  const cases = [
    ['FROB THE TABLE', '001003', '42000', /^SQL compilation error:\nsyntax error line 1 at position 0 unexpected 'FROB'/],
    ['SELECT * FROM NO_SUCH_TABLE', '002003', '42S02', /does not exist or not authorized/],
    ['SELECT 1/0', '100051', '22012', /Division by zero/],
    ['SELECT 1; SELECT 2', '000008', '0A000', /statement count 2 did not match the desired statement count 1/],
    ['USE SCHEMA SALES', '391911', '0A000', /Unsupported statement type/],
  ];
  for (const [sql, code, sqlState, message] of cases) {
    const r = await submit(sql);
    assert.equal(r.status, 422, sql);
    assert.equal(r.json.code, code, sql);
    assert.equal(r.json.sqlState, sqlState, sql);
    assert.match(r.json.message, message);
    assert.match(r.json.statementHandle, UUID);
    // The same failure when polled.
    assert.equal((await get(r.json.statementHandle)).json.code, code);
  }
  const async422 = await submit('SELECT nope FROM TYPED_VALUES', '?async=true');
  assert.equal(async422.status, 202);
  assert.equal((await settle(async422.json.statementHandle)).json.code, '000904');

  assert.equal((await get('00000000-0000-4000-8000-000000000000')).status, 422);
  assert.equal((await api('POST', '/api/v2/statements', { body: '{"statement": ' })).status, 400);
  assert.equal((await api('POST', '/api/v2/statements', { body: { timeout: 3 } })).status, 400);
  assert.equal((await api('POST', '/api/v2/statements', { body: { statement: 'SELECT 1', timeout: -1 } })).status, 400);
  assert.equal((await api('POST', '/api/v2/statements', { body: 'statement=1', headers: { 'content-type': 'text/plain' } })).status, 415);
  assert.equal((await api('POST', '/api/v2/statements', { body: { statement: 'SELECT 1' }, headers: { 'user-agent': null } })).status, 400);
  assert.equal((await api('GET', '/api/v2/statements')).status, 405);
  assert.equal((await api('GET', '/api/v2/nothing')).status, 404);
  assert.equal((await api('GET', '/elsewhere')).status, 404);
});

test('requestId + retry=true answers the same statement; without retry it runs again and is counted', async () => {
  const requestId = '5d1c7c52-1111-4222-8333-444455556666';
  const first = await submit('CALL SYSTEM$WAIT(60)', `?async=true&requestId=${requestId}`);
  const again = await submit('CALL SYSTEM$WAIT(60)', `?async=true&requestId=${requestId}&retry=true`);
  assert.equal(again.status, 202);
  assert.equal(again.json.statementHandle, first.json.statementHandle);
  let stats = await ctl('GET', 'stats');
  assert.equal(stats.stats.executed, 1);
  assert.equal(stats.stats.retriesAnswered, 1);
  assert.deepEqual(stats.executedTwice, []);
  // A finished statement resubmitted with retry=true answers its result.
  const done = await submit('SELECT 7', `?requestId=${requestId.replace('5', '6')}`);
  const doneAgain = await submit('SELECT 7', `?requestId=${requestId.replace('5', '6')}&retry=true`);
  assert.equal(doneAgain.status, 200);
  assert.equal(doneAgain.json.statementHandle, done.json.statementHandle);
  // Without retry=true the same requestId executes again: the double counts it.
  const twice = await submit('CALL SYSTEM$WAIT(60)', `?async=true&requestId=${requestId}`);
  assert.notEqual(twice.json.statementHandle, first.json.statementHandle);
  stats = await ctl('GET', 'stats');
  assert.equal(stats.stats.duplicateExecutions, 1);
  assert.deepEqual(stats.executedTwice, [{ requestId, executions: 2 }]);
  assert.equal((await ctl('GET', 'running')).count, 2);
  for (const h of [first.json.statementHandle, twice.json.statementHandle]) {
    await api('POST', `/api/v2/statements/${h}/cancel`);
  }
  await assertNothingRunning();
});

test('faults: 429 with Retry-After, 503, 500, malformed body, slow, on the step they name', async () => {
  await ctl('POST', 'faults', { faults: [{ on: 'submit', action: 429, count: 2, retryAfter: 3 }, { on: 'submit', action: 503 },
    { on: 'submit', action: 500 }, { on: 'submit', action: 'malformed' }, { on: 'submit', action: 'slow', delayMs: 50 }] });
  const requestId = '7a7a7a7a-0000-4000-8000-000000000007';
  const q = `?requestId=${requestId}&retry=true`;
  const a = await submit('SELECT 1', q);
  assert.equal(a.status, 429);
  assert.equal(a.headers['retry-after'], '3');
  assert.equal((await submit('SELECT 1', q)).status, 429);
  const b = await submit('SELECT 1', q);
  assert.equal(b.status, 503);
  assert.equal(b.headers['retry-after'], '1');
  assert.equal((await submit('SELECT 1', q)).status, 500);
  const m = await submit('SELECT 1', q);
  assert.equal(m.status, 200);
  assert.equal(m.json, null, 'the body is not JSON');
  const ok = await submit('SELECT 1', q);
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json.data, [['1']]);
  const { stats, executedTwice } = await ctl('GET', 'stats');
  assert.equal(stats.executed, 1, 'faults before execution run nothing');
  assert.deepEqual(executedTwice, []);
  const log = (await ctl('GET', 'log')).requests;
  assert.deepEqual(log.map((e) => e.fault), ['429', '429', '503', '500', 'malformed', 'slow']);
  assert.deepEqual(log.map((e) => e.status), [429, 429, 503, 500, 200, 200]);
  assert.ok(log.every((e) => e.requestId === requestId && e.retry === 'true'));
  assert.deepEqual((await ctl('GET', 'faults')).faults, []);

  // A fault on a later partition only.
  await ctl('POST', 'config', { partitionRows: 2 });
  await ctl('POST', 'faults', { on: 'partition', action: 503 });
  const r = await submit('SELECT SEQ8() FROM TABLE(GENERATOR(ROWCOUNT => 5))');
  assert.equal(r.status, 200);
  assert.equal((await get(r.json.statementHandle, 1)).status, 503);
  assert.equal((await get(r.json.statementHandle, 1)).status, 200);

  // A fault for one statement leaves the others alone; 403 as injected.
  const other = await submit('SELECT 3');
  await ctl('POST', 'faults', { on: 'status', action: 403, handle: r.json.statementHandle });
  assert.equal((await get(other.json.statementHandle)).status, 200);
  const forbidden = await get(r.json.statementHandle);
  assert.equal(forbidden.status, 403);
  assert.equal(typeof forbidden.json.message, 'string');

  const bad = await call(d.port, 'POST', '/_control/faults', { body: { action: 'explode' }, auth: null });
  assert.equal(bad.status, 400);
  const badConfig = await call(d.port, 'POST', '/_control/config', { body: { partitionRows: 0 }, auth: null });
  assert.equal(badConfig.status, 400);
  assert.equal((await ctl('GET', 'config')).partitionRows, 2, 'a refused config changes nothing');
});

test('faults: connection reset before and after execution, and a stalled response', async () => {
  const requestId = '7a7a7a7a-0000-4000-8000-000000000008';
  await ctl('POST', 'faults', [{ on: 'submit', action: 'reset' }, { on: 'submit', action: 'reset', when: 'after' }]);
  await assert.rejects(submit('SELECT 2', `?requestId=${requestId}`), /ECONNRESET|socket hang up/);
  assert.equal((await ctl('GET', 'stats')).stats.executed, 0, 'reset before execution runs nothing');
  await assert.rejects(submit('SELECT 2', `?requestId=${requestId}&retry=true`), /ECONNRESET|socket hang up/);
  assert.equal((await ctl('GET', 'stats')).stats.executed, 1, 'reset after execution: it ran, the answer was lost');
  const retried = await submit('SELECT 2', `?requestId=${requestId}&retry=true`);
  assert.equal(retried.status, 200);
  assert.deepEqual(retried.json.data, [['2']]);
  assert.deepEqual((await ctl('GET', 'stats')).executedTwice, []);

  // A cancel whose answer is lost still cancelled the statement.
  const w = await submit('CALL SYSTEM$WAIT(60)', '?async=true');
  await ctl('POST', 'faults', { on: 'cancel', action: 'reset', when: 'after' });
  await assert.rejects(api('POST', `/api/v2/statements/${w.json.statementHandle}/cancel`), /ECONNRESET|socket hang up/);
  await assertNothingRunning();

  // Stall: the request is received and logged, no answer comes.
  await ctl('POST', 'faults', { on: 'status', action: 'stall' });
  const abort = new AbortController();
  const stalled = call(d.port, 'GET', `/api/v2/statements/${w.json.statementHandle}`, { signal: abort.signal });
  let entry;
  for (let i = 0; i < 500 && !entry; i++) {
    entry = (await ctl('GET', 'log')).requests.find((e) => e.fault === 'stall');
    if (!entry) await sleep(10);
  }
  assert.ok(entry, 'the stalled request is in the log');
  assert.equal(entry.status, null);
  abort.abort(); // the client gives up; nothing else was answered
  await assert.rejects(stalled, { name: 'AbortError' });
});

test('catalog: SHOW SCHEMAS / TABLES / VIEWS, INFORMATION_SCHEMA.COLUMNS, DESCRIBE', async () => {
  const schemas = await submit('SHOW SCHEMAS IN DATABASE QREG_DB');
  const nameAt = schemas.json.resultSetMetaData.rowType.findIndex((c) => c.name === 'name');
  assert.deepEqual(schemas.json.data.map((r) => r[nameAt]), ['INFORMATION_SCHEMA', 'PUBLIC', 'SALES']);
  const tables = await submit('SHOW TABLES IN SCHEMA QREG_DB.SALES');
  assert.deepEqual(tables.json.data.map((r) => r[1]), ['CITIES', 'ORDERS']);
  const all = await submit('SHOW TABLES', '', { schema: 'SALES' }); // the whole current database
  assert.deepEqual(all.json.data.map((r) => `${r[3]}.${r[1]}`),
    ['PUBLIC.REAL_SPECIALS', 'PUBLIC.TYPED_VALUES', 'SALES.CITIES', 'SALES.ORDERS']);
  const views = await submit("SHOW VIEWS LIKE 'big%' IN SCHEMA SALES");
  assert.deepEqual(views.json.data.map((r) => r[1]), ['BIG_ORDERS']);
  const columns = await submit("SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'SALES' AND TABLE_NAME = 'ORDERS' ORDER BY ORDINAL_POSITION");
  assert.deepEqual(columns.json.data, [['ID', 'NUMBER', '0'], ['CITY_ID', 'NUMBER', '0'], ['AMOUNT', 'NUMBER', '2'],
    ['CREATED_AT', 'TIMESTAMP_NTZ', null]]);
  const describe = await submit('DESCRIBE TABLE SALES.CITIES');
  assert.deepEqual(describe.json.data.map((r) => r.slice(0, 2)), [['ID', 'NUMBER(38,0)'], ['NAME', 'VARCHAR(100)'], ['COUNTRY', 'VARCHAR(2)']]);
  const count = await submit('SELECT COUNT(*) FROM SALES.BIG_ORDERS');
  assert.deepEqual(count.json.data, [['2']]);
  const sample = await submit('SELECT * FROM SALES.ORDERS SAMPLE (2 ROWS)');
  assert.equal(sample.json.data.length, 2);
  const write = await submit("INSERT INTO SALES.CITIES VALUES (4, 'Oslo', 'NO')");
  assert.deepEqual(write.json.data, [['1']]);
  assert.equal((await ctl('GET', 'stats')).stats.writes, 1);
});

test('--exit-with-stdin: the double exits 0 when its stdin closes', async () => {
  const child = spawn(process.execPath, [DOUBLE, '--port', '0', '--public-key', publicKeyFile, '--exit-with-stdin'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.stdin.end();
  assert.equal(await exited, 0);
});

test('--generate-keys writes a key pair (and an encrypted PKCS#8 copy) the double then accepts', async () => {
  const keyDir = path.join(dir, 'generated');
  const own = await startDouble(['--generate-keys', keyDir, '--key-passphrase', 'pass phrase']);
  try {
    const privateKey = createPrivateKey({ key: readFileSync(path.join(keyDir, 'rsa_key_encrypted.p8'), 'utf8'), passphrase: 'pass phrase' });
    assert.equal(readFileSync(path.join(keyDir, 'rsa_key.p8'), 'utf8').split('\n')[0], '-----BEGIN PRIVATE KEY-----');
    const token = signJwt({ account: ACCOUNT, user: USER, privateKey });
    const headers = { authorization: `Bearer ${token}`, 'x-snowflake-authorization-token-type': 'KEYPAIR_JWT' };
    const r = await call(own.port, 'POST', '/api/v2/statements', { body: { statement: 'SELECT 1' }, auth: null, headers });
    assert.equal(r.status, 200, r.text);
    const other = await call(own.port, 'POST', '/api/v2/statements', { body: { statement: 'SELECT 1' } });
    assert.equal(other.status, 401, 'the test key pair is not the generated one');
  } finally {
    assert.equal(await stopDouble(own), 0);
  }
});

test('the state file mirrors the counters; --type-case upper; SIGTERM exits 0', async () => {
  await submit('SELECT 1');
  const state = JSON.parse(readFileSync(d.stateFile, 'utf8'));
  assert.equal(state.port, d.port);
  assert.equal(state.stats.executed, 1);
  assert.equal(state.stats.running, 0);

  const upper = await startDouble(['--type-case', 'upper', '--partition-rows', '4', '--account', ACCOUNT, '--user', USER]);
  try {
    const r = await call(upper.port, 'POST', '/api/v2/statements', { body: { statement: 'SELECT SEQ4() FROM TABLE(GENERATOR(ROWCOUNT => 9))' } });
    assert.equal(r.json.resultSetMetaData.rowType[0].type, 'FIXED');
    assert.equal(r.json.resultSetMetaData.partitionInfo.length, 3);
    const wrongUser = signJwt({ account: ACCOUNT, user: 'someone_else', privateKey: keys.privateKey });
    const refused = await call(upper.port, 'POST', '/api/v2/statements', { body: { statement: 'SELECT 1' }, auth: null,
      headers: { authorization: `Bearer ${wrongUser}`, 'x-snowflake-authorization-token-type': 'KEYPAIR_JWT' } });
    assert.equal(refused.status, 401);
  } finally {
    assert.equal(await stopDouble(upper), 0);
  }
});
