// tests/snowflake-driver/standin.mjs - a minimal stand-in of Snowflake's SQL
// API v2 for the Snowflake driver's tests (tests/test-snowflake.c), written
// from the published specification (snowflakedb/snowflake-rest-api-specs,
// specifications/sqlapi.yaml) and Snowflake's documentation of its
// behaviour. Node's standard library only. The project's shared test double
// (tests/snowflake/sqlapi-double.mjs) replaces it once integrated.
//
//   node standin.mjs --account ACCT --user USER (--public-key PEM | --token T)
//                    [--partition-rows N]
// prints "PORT <n>" once it listens on 127.0.0.1.
//
// It verifies the key-pair JWT (RS256, iss ACCOUNT.USER.SHA256:<fingerprint>,
// sub ACCOUNT.USER, exp within an hour) or the bearer token; runs canned
// statements (see program()); answers 202 (code 333334) while a statement
// runs, 200 with partition 0 inline and later partitions gzip-compressed,
// 422 for failures and cancelled statements, 408 past the body's timeout;
// honours requestId + retry=true; injects faults queued by POST /_faults
// ([{on: "submit"|"poll"|"partition"|"cancel", kind: "429"|"503"|"504"|
// "reset"|"reset-after"|"garbage", retryAfter}]); and counts, at GET /_stats, what a
// test must prove: statements executed, executed twice, running, cancelled.
import { createServer } from 'node:http';
import { createHash, createPublicKey, randomUUID, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const account = (args.account || 'ACCT').toUpperCase();
const user = (args.user || 'USER').toUpperCase();
const partitionRows = Number(args['partition-rows'] || 1000);
let publicKey = null;
let fingerprint = null;
if (args['public-key']) {
  publicKey = createPublicKey(readFileSync(args['public-key']));
  const der = publicKey.export({ type: 'spki', format: 'der' });
  fingerprint = 'SHA256:' + createHash('sha256').update(der).digest('base64');
}

const stats = { connections: 0, submits: 0, executed: 0, executedTwice: 0, cancelled: 0, partitionsServed: 0,
                authFailures: 0, lastBody: null, lastHeaders: null };
const byHandle = new Map();
const byRequestId = new Map();
const faults = [];

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// null when authorized, else why not.
function authProblem(req) {
  const header = req.headers.authorization || '';
  if (!header.startsWith('Bearer ')) return 'no bearer token';
  const token = header.slice(7);
  const type = req.headers['x-snowflake-authorization-token-type'];
  if (args.token) {
    if (token !== args.token) return 'invalid token';
    return null;
  }
  if (type !== 'KEYPAIR_JWT') return 'token type is not KEYPAIR_JWT';
  const parts = token.split('.');
  if (parts.length !== 3) return 'not a JWT';
  let head, claims;
  try {
    head = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
  } catch {
    return 'JWT not JSON';
  }
  if (head.alg !== 'RS256') return 'JWT alg is not RS256';
  const ok = verify('sha256', Buffer.from(parts[0] + '.' + parts[1]), publicKey,
                    Buffer.from(parts[2], 'base64url'));
  if (!ok) return 'JWT signature invalid';
  if (claims.iss !== `${account}.${user}.${fingerprint}`) return 'JWT iss wrong: ' + claims.iss;
  if (claims.sub !== `${account}.${user}`) return 'JWT sub wrong';
  const now = Date.now() / 1000;
  if (!(claims.exp > now) || claims.exp - claims.iat > 3600 || claims.iat > now + 60)
    return 'JWT expired or too long';
  return null;
}

function takeFault(on) {
  const i = faults.findIndex((f) => f.on === on);
  return i < 0 ? null : faults.splice(i, 1)[0];
}

function send(res, status, body, extra = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...extra });
  res.end(text);
}

// Applies a fault before the answer; true when it answered (or cut) itself.
function applyFault(fault, req, res) {
  if (!fault) return false;
  if (fault.kind === 'reset') {
    req.socket.destroy();
    return true;
  }
  if (fault.kind === 'reset-after') return false; // handled by the caller, after the work
  if (fault.kind === 'garbage') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"statementHandle": "not json');
    return true;
  }
  const headers = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
  send(res, Number(fault.kind), { code: '000000', message: `injected ${fault.kind}` }, headers);
  return true;
}

const TYPES = {
  rowType: [
    ['DEC', 'fixed', 2], ['INT', 'fixed', 0], ['BIG', 'fixed', 0], ['R', 'real', 0],
    ['T', 'text', 0], ['B', 'boolean', 0], ['D', 'date', 0], ['TM', 'time', 9],
    ['NTZ', 'timestamp_ntz', 9], ['LTZ', 'timestamp_ltz', 9], ['TZ', 'timestamp_tz', 9],
    ['V', 'variant', 0], ['BIN', 'binary', 0], ['N', 'text', 0],
  ],
  rows: [['12.50', '42', '123456789012345678901234', '1.5', 'h\u00e9llo', 'true', '19000',
          '3723.500000000', '1719828000.123000000', '1719828000.000000000',
          '1719828000.000000000 1560', '{\n  "a": [1, 2]\n}', '00ff41', null]],
};

// What a statement does, by its text.
function program(sql) {
  let m;
  if ((m = /SYSTEM\$WAIT\(\s*(\d+(?:\.\d+)?)/i.exec(sql)))
    return { seconds: Number(m[1]), columns: [['W', 'text', 0]], rows: () => [['waited']] };
  if (/TYPES/i.test(sql))
    return { seconds: 0, columns: TYPES.rowType, rows: () => TYPES.rows };
  if ((m = /ROWCOUNT\s*=>\s*(\d+)/i.exec(sql))) {
    const n = Number(m[1]);
    return { seconds: 0.05, columns: [['N', 'fixed', 0], ['S', 'text', 0]], count: n,
             rows: (from, to) => { const out = []; for (let i = from; i < to; i++) out.push([String(i), 'row ' + i]); return out; } };
  }
  if (/NO_SUCH_TABLE/i.test(sql))
    return { seconds: 0.05, fail: { code: '002003', sqlState: '42S02',
                                    message: "SQL compilation error:\nObject 'NO_SUCH_TABLE' does not exist or not authorized." } };
  return { seconds: 0.05, columns: [['1', 'fixed', 0]], rows: () => [['1']] };
}

function statementState(st) {
  if (st.state === 'running') {
    const elapsed = (Date.now() - st.started) / 1000;
    if (st.timeout > 0 && elapsed > st.timeout && st.program.seconds > st.timeout) st.state = 'timeout';
    else if (elapsed >= st.program.seconds) st.state = st.program.fail ? 'failed' : 'done';
  }
  return st.state;
}

function rowTypeOf(columns) {
  return columns.map(([name, type, scale]) => ({ name, type, length: 0, precision: type === 'fixed' ? 38 : 0,
                                                  scale, nullable: true }));
}

function partitionBounds(st) {
  const count = st.program.count ?? st.program.rows().length;
  const parts = [];
  for (let from = 0; from < count || parts.length === 0; from += partitionRows)
    parts.push([from, Math.min(count, from + partitionRows)]);
  return parts;
}

function answerStatement(st, res, partition) {
  const state = statementState(st);
  const base = { statementHandle: st.handle, statementStatusUrl: `/api/v2/statements/${st.handle}`,
                 createdOn: st.started };
  if (state === 'running')
    return send(res, 202, { ...base, code: '333334', message: 'Asynchronous execution in progress. Use provided query id to perform query monitoring and management.' });
  if (state === 'cancelled')
    return send(res, 422, { ...base, code: '000604', sqlState: '57014', message: 'SQL execution canceled' });
  if (state === 'timeout')
    return send(res, 408, { ...base, code: '000630', sqlState: '57014', message: 'Statement reached its statement or warehouse timeout of ' + st.timeout + ' second(s) and was canceled.' });
  if (state === 'failed')
    return send(res, 422, { ...base, ...st.program.fail });
  const parts = partitionBounds(st);
  const p = partition ?? 0;
  if (p >= parts.length) return send(res, 400, { code: '000000', message: 'no such partition' });
  const rows = st.program.count !== undefined ? st.program.rows(...parts[p]) : st.program.rows();
  stats.partitionsServed++;
  if (p === 0) {
    return send(res, 200, { ...base, code: '090001', sqlState: '00000', message: 'Statement executed successfully.',
      resultSetMetaData: { format: 'jsonv2', numRows: st.program.count ?? rows.length,
                           rowType: rowTypeOf(st.program.columns),
                           partitionInfo: parts.map(([a, b]) => ({ rowCount: b - a, uncompressedSize: 100 * (b - a) })) },
      data: rows });
  }
  const body = gzipSync(Buffer.from(JSON.stringify({ data: rows })));
  // --bare-gzip: compressed without saying so (odd partitions), which a
  // client must still read.
  const bare = args['bare-gzip'] && p % 2 === 1;
  res.writeHead(200, { 'content-type': 'application/json', ...(bare ? {} : { 'content-encoding': 'gzip' }) });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const body = await readBody(req);
  if (url.pathname === '/_stats') {
    let running = 0;
    for (const st of byHandle.values()) if (statementState(st) === 'running') running++;
    return send(res, 200, { ...stats, running });
  }
  if (url.pathname === '/_faults') {
    faults.push(...JSON.parse(body));
    return send(res, 200, { queued: faults.length });
  }
  const problem = authProblem(req);
  if (problem) {
    stats.authFailures++;
    return send(res, 401, { code: '390144', message: 'JWT token is invalid. (' + problem + ')' });
  }
  if (!req.headers['user-agent']) return send(res, 400, { code: '391903', message: 'User-Agent header required' });
  let m;
  if (req.method === 'POST' && url.pathname === '/api/v2/statements') {
    stats.submits++;
    stats.lastHeaders = req.headers;
    const fault = takeFault('submit');
    if (applyFault(fault, req, res)) return;
    let request;
    try {
      request = JSON.parse(body);
    } catch {
      return send(res, 400, { code: '000000', message: 'malformed body' });
    }
    stats.lastBody = request;
    const requestId = url.searchParams.get('requestId');
    const retry = url.searchParams.get('retry') === 'true';
    let st = requestId ? byRequestId.get(requestId) : undefined;
    if (st && !retry) stats.executedTwice++;
    if (!st || !retry) {
      st = { handle: randomUUID(), sql: request.statement, started: Date.now(), state: 'running',
             timeout: Number(request.timeout || 0), program: program(request.statement || '') };
      byHandle.set(st.handle, st);
      if (requestId) byRequestId.set(requestId, st);
      stats.executed++;
    }
    if (fault && fault.kind === 'reset-after') return req.socket.destroy();
    return answerStatement(st, res, undefined);
  }
  if ((m = /^\/api\/v2\/statements\/([^/]+)\/cancel$/.exec(url.pathname)) && req.method === 'POST') {
    if (applyFault(takeFault('cancel'), req, res)) return;
    const st = byHandle.get(m[1]);
    if (!st) return send(res, 404, { code: '000000', message: 'statement not found' });
    if (statementState(st) === 'running') {
      st.state = 'cancelled';
      stats.cancelled++;
      return send(res, 200, { statementHandle: st.handle, message: 'successfully canceled' });
    }
    return send(res, 422, { statementHandle: st.handle, code: '000605', message: 'statement not running' });
  }
  if ((m = /^\/api\/v2\/statements\/([^/]+)$/.exec(url.pathname)) && req.method === 'GET') {
    const partition = url.searchParams.has('partition') ? Number(url.searchParams.get('partition')) : undefined;
    if (applyFault(takeFault(partition ? 'partition' : 'poll'), req, res)) return;
    const st = byHandle.get(m[1]);
    if (!st) return send(res, 404, { code: '000000', message: 'statement not found' });
    return answerStatement(st, res, partition);
  }
  send(res, 404, { code: '000000', message: 'no such endpoint' });
});

server.on('connection', () => stats.connections++);
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
