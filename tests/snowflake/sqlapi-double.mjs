#!/usr/bin/env node
// tests/snowflake/sqlapi-double.mjs - a test double of Snowflake's SQL API v2
// (snowflakedb/snowflake-rest-api-specs, specifications/sqlapi.yaml) on a
// loopback port, for tests that cannot reach Snowflake. Node's standard
// library only.
//
//   node tests/snowflake/sqlapi-double.mjs --port 0
//        (--public-key PEMFILE | --generate-keys DIR [--key-passphrase P])
//        [--token TOKEN | --token-file F] [--account A] [--user U]
//        [--state-file F] [--partition-rows N] [--type-case lower|upper]
//        [--bare-gzip] [--exit-with-stdin]
//
// prints "listening <port>" on stdout once it accepts connections. It owns the
// statements it was sent (a Map by handle, timers per running statement), the
// fault queue and the request log; the SQL itself is engine.mjs's, the JWT
// check jwt.mjs's. README.md documents the API, the SQL and /_control.
import http from 'node:http';
import { randomUUID, createPublicKey, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, SqlError } from './engine.mjs';
import { verifyJwt } from './jwt.mjs';

const STATEMENTS_PATH = '/api/v2/statements';
const MAX_TIMEOUT_SECONDS = 604800; // timeout 0 means this (the spec)
const DEFAULT_TIMEOUT_SECONDS = 172800; // STATEMENT_TIMEOUT_IN_SECONDS default
const MAX_BODY_BYTES = 1 << 20;

const RUNNING_MESSAGE =
  'Asynchronous execution in progress. Use provided query id to perform query monitoring and management.';

export const DEFAULT_CONFIG = {
  partitionRows: 10000, // rows per result partition
  typeCase: 'lower', // rowType[].type as real Snowflake writes it ("fixed")
  minRunMs: 0, // every statement runs at least this long
  cancelDelayMs: 0, // a cancelled statement keeps running this long
  syncWaitSeconds: 45, // async=false answers within this, else 202
  maxTokenAgeSeconds: null, // reject JWTs older than this (renewal tests)
  maxGeneratorRows: 5000000,
  bareGzip: false, // odd partitions gzip without Content-Encoding (a client must inflate them itself)
};

// Throws on a config value the double cannot use.
export function checkConfig(key, value) {
  const count = (v) => Number.isSafeInteger(v) && v >= 1;
  const nonNegative = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const checks = {
    partitionRows: count, maxGeneratorRows: count, typeCase: (v) => v === 'lower' || v === 'upper',
    minRunMs: nonNegative, cancelDelayMs: nonNegative, syncWaitSeconds: nonNegative,
    maxTokenAgeSeconds: (v) => v === null || nonNegative(v), bareGzip: (v) => typeof v === 'boolean',
  };
  if (!(key in checks)) throw new Error(`unknown config key ${key}`);
  if (!checks[key](value)) throw new Error(`bad value for ${key}: ${JSON.stringify(value)}`);
}

// --- the double ------------------------------------------------------------------
// options: { publicKey (KeyObject), token, account, user, stateFile, config }
export function createDouble(options) {
  const config = { ...DEFAULT_CONFIG, ...options.config };
  const statements = new Map(); // handle -> statement
  const byRequestId = new Map(); // requestId -> handle of its latest execution
  const executionsByRequestId = new Map(); // requestId -> times executed
  let faults = [];
  let log = [];
  let seq = 0;
  const stalled = new Set(); // responses held open by "stall" faults
  const stats = {
    requests: 0, submits: 0, executed: 0, succeeded: 0, failed: 0, cancelled: 0, timedOut: 0, writes: 0,
    retriesAnswered: 0, duplicateExecutions: 0, maxRunning: 0, authFailures: 0, faultsInjected: 0,
    partitionsServed: 0, connections: 0,
  };
  let port = null;

  const running = () => [...statements.values()].filter((s) => s.state === 'running');

  function saveState() {
    if (!options.stateFile) return;
    const tmp = `${options.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(snapshot(), null, 2));
    renameSync(tmp, options.stateFile);
  }

  function snapshot() {
    return {
      port, pid: process.pid, stats: { ...stats, running: running().length },
      running: running().map(summary),
      executedTwice: [...executionsByRequestId].filter(([, n]) => n > 1).map(([requestId, n]) => ({ requestId, executions: n })),
    };
  }

  function summary(s) {
    return {
      handle: s.handle, requestId: s.requestId, sql: s.sql, state: s.state, createdOn: s.createdOn,
      endedOn: s.endedOn ?? null, cancelRequested: s.cancelRequested, executions: executionsByRequestId.get(s.requestId),
      queryTag: s.queryTag ?? null, database: s.context.database ?? null, schema: s.context.schema ?? null,
      warehouse: s.context.warehouse ?? null, role: s.context.role ?? null, timeout: s.timeoutSeconds,
    };
  }

  // --- statements -------------------------------------------------------------------
  function statusUrl(s) {
    return `${STATEMENTS_PATH}/${s.handle}?requestId=${s.requestId}`;
  }

  function end(s, state, fields = {}) {
    if (s.state !== 'running') return;
    clearTimeout(s.runTimer);
    clearTimeout(s.timeoutTimer);
    clearTimeout(s.cancelTimer);
    Object.assign(s, { state, endedOn: Date.now() }, fields);
    if (state === 'succeeded') stats.succeeded++;
    else if (state === 'failed') stats.failed++;
    else if (state === 'cancelled') stats.cancelled++;
    else if (state === 'timedout') stats.timedOut++;
    for (const wake of s.waiters.splice(0)) wake();
    saveState();
  }

  // Starts executing body's statement under requestId.
  function execute(body, requestId, nullable, user) {
    const handle = randomUUID();
    const timeout = body.timeout === undefined ? DEFAULT_TIMEOUT_SECONDS : (body.timeout === 0 ? MAX_TIMEOUT_SECONDS : body.timeout);
    const parameters = lowerKeys(body.parameters ?? {});
    const s = {
      handle, requestId, sql: body.statement, createdOn: Date.now(), state: 'running', waiters: [], nullable,
      timeoutSeconds: timeout, cancelRequested: false, queryTag: parameters.query_tag,
      context: { database: body.database, schema: body.schema, warehouse: body.warehouse, role: body.role, user },
    };
    statements.set(handle, s);
    byRequestId.set(requestId, handle);
    const executions = (executionsByRequestId.get(requestId) ?? 0) + 1;
    executionsByRequestId.set(requestId, executions);
    if (executions === 2) stats.duplicateExecutions++;
    stats.executed++;
    stats.maxRunning = Math.max(stats.maxRunning, running().length);
    let plan;
    try {
      plan = compile(body.statement, {
        ...s.context, bindings: body.bindings, maxGeneratorRows: config.maxGeneratorRows,
        multiStatementCount: parameters.multi_statement_count === undefined ? 1 : Number(parameters.multi_statement_count),
      });
    } catch (e) {
      if (!(e instanceof SqlError)) throw e;
      plan = { error: e, waitSeconds: 0 };
    }
    if (plan.write) stats.writes++;
    const runMs = Math.max(config.minRunMs, plan.waitSeconds * 1000);
    // A run longer than the timeout never finishes (and setTimeout cannot
    // wait past 2^31 ms: the timeout, at most 7 days, always can).
    if (runMs < timeout * 1000) {
      s.runTimer = setTimeout(() => {
        if (plan.error) end(s, 'failed', { error: plan.error });
        else end(s, 'succeeded', { result: buildResult(plan, s) });
      }, runMs);
    }
    s.timeoutTimer = setTimeout(() => end(s, 'timedout'), timeout * 1000);
    saveState();
    return s;
  }

  // Rows split into partitions; partitions after the first are stored gzipped.
  function buildResult(plan, s) {
    const rows = s.nullable ? plan.rows : plan.rows.map((r) => r.map((v) => (v === null ? 'null' : v)));
    const size = Math.max(1, config.partitionRows);
    const partitions = [];
    for (let at = 0; at === 0 || at < rows.length; at += size) {
      const data = rows.slice(at, at + size);
      const json = Buffer.from(JSON.stringify({ data }));
      partitions.push({ data, rowCount: data.length, uncompressedSize: json.length, gzip: at === 0 ? null : gzipSync(json) });
    }
    const rowType = plan.columns.map((c) => ({
      name: c.name, database: s.context.database ?? '', schema: s.context.schema ?? '', table: '',
      nullable: c.nullable, type: config.typeCase === 'upper' ? c.type : c.type.toLowerCase(),
      byteLength: c.byteLength, length: c.length, precision: c.precision, scale: c.scale, collation: c.collation,
    }));
    return { rowType, numRows: rows.length, partitions };
  }

  function cancel(s) {
    s.cancelRequested = true;
    const finish = () => end(s, 'cancelled');
    if (config.cancelDelayMs > 0) {
      if (!s.cancelTimer) s.cancelTimer = setTimeout(finish, config.cancelDelayMs);
    } else finish();
  }

  // --- response bodies ------------------------------------------------------------
  function statusBody(s) {
    switch (s.state) {
      case 'running':
        return [202, { code: '333334', sqlState: '00000', message: RUNNING_MESSAGE, statementHandle: s.handle,
          createdOn: s.createdOn, statementStatusUrl: statusUrl(s) }];
      case 'failed':
        return [422, { code: s.error.code, sqlState: s.error.sqlState, message: s.error.message, statementHandle: s.handle,
          createdOn: s.createdOn, statementStatusUrl: statusUrl(s) }];
      case 'cancelled':
        return [422, { code: '000604', sqlState: '57014', message: 'SQL execution canceled', statementHandle: s.handle,
          createdOn: s.createdOn, statementStatusUrl: statusUrl(s) }];
      case 'timedout':
        return [408, { code: '000630', sqlState: '57014',
          message: `Statement reached its statement or warehouse timeout of ${s.timeoutSeconds} second(s) and was canceled.`,
          statementHandle: s.handle, createdOn: s.createdOn, statementStatusUrl: statusUrl(s) }];
      default: return null; // succeeded: a result set
    }
  }

  function sendResult(res, s, partition) {
    const { result } = s;
    const count = result.partitions.length;
    const link = (n, rel) => `<${STATEMENTS_PATH}/${s.handle}?partition=${n}>; rel="${rel}"`;
    const links = [link(0, 'first')];
    if (partition + 1 < count) links.push(link(partition + 1, 'next'));
    if (partition > 0) links.push(link(partition - 1, 'prev'));
    links.push(link(count - 1, 'last'));
    const headers = { link: links.join(',') };
    const p = result.partitions[partition];
    stats.partitionsServed++;
    if (partition > 0) {
      // bareGzip: odd partitions compressed without saying so, as some
      // servers answer; a client must recognise and inflate them itself.
      const bare = config.bareGzip && partition % 2 === 1;
      send(res, 200, p.gzip, { ...headers, 'content-type': 'application/json', ...(bare ? {} : { 'content-encoding': 'gzip' }) });
      return;
    }
    sendJson(res, 200, {
      resultSetMetaData: {
        numRows: result.numRows, format: 'jsonv2',
        partitionInfo: result.partitions.map((q, i) => ({ rowCount: q.rowCount, uncompressedSize: q.uncompressedSize,
          ...(i > 0 ? { compressedSize: q.gzip.length } : {}) })),
        rowType: result.rowType, nullable: s.nullable,
      },
      data: p.data,
      code: '090001', statementStatusUrl: statusUrl(s), requestId: s.requestId, sqlState: '00000',
      statementHandle: s.handle, message: 'Statement executed successfully.', createdOn: s.createdOn,
    }, headers);
  }

  function sendStatement(res, s, partition = 0) {
    const status = statusBody(s);
    if (status) return sendJson(res, status[0], status[1]);
    if (partition >= s.result.partitions.length) {
      return sendJson(res, 422, { code: '000709', sqlState: '02000',
        message: `Partition ${partition} does not exist: the result has ${s.result.partitions.length} partition(s).`,
        statementHandle: s.handle });
    }
    return sendResult(res, s, partition);
  }

  // --- HTTP plumbing ------------------------------------------------------------------
  function send(res, status, body, headers = {}) {
    if (res.writableEnded || res.destroyed) return;
    res.writeHead(status, { 'content-length': body.length, ...headers });
    res.end(body);
  }

  function sendJson(res, status, value, headers = {}) {
    send(res, status, Buffer.from(JSON.stringify(value)), { 'content-type': 'application/json', ...headers });
  }

  const apiError = (res, status, code, message, headers) => sendJson(res, status, { code, message }, headers);

  function readBody(req) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) reject(new Error('too large'));
        else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  // --- authentication -----------------------------------------------------------------
  // Returns { ok, user, entry } where entry is what the log may show.
  function authenticate(req) {
    const header = req.headers.authorization ?? '';
    const type = String(req.headers['x-snowflake-authorization-token-type'] ?? 'OAUTH').toUpperCase();
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return { ok: false, code: '390101', message: 'Authorization header is missing or is not "Bearer <token>".', entry: { tokenType: type } };
    const token = m[1];
    if (type === 'KEYPAIR_JWT') {
      const v = verifyJwt(token, options.publicKey, {
        expected: { account: options.account, user: options.user },
        maxAgeSeconds: config.maxTokenAgeSeconds ?? undefined,
      });
      const claims = safeClaims(token);
      const entry = { tokenType: type, sub: claims?.sub ?? null, iat: claims?.iat ?? null, exp: claims?.exp ?? null };
      if (!v.ok) return { ok: false, code: '390144', message: `JWT token is invalid. [${v.reason}]`, entry };
      return { ok: true, user: v.user, entry };
    }
    if (type === 'OAUTH' || type === 'PROGRAMMATIC_ACCESS_TOKEN') {
      const good = options.token !== undefined && token.length === options.token.length &&
        timingSafeEqual(Buffer.from(token), Buffer.from(options.token));
      if (!good) {
        return { ok: false, code: '390303', message: type === 'OAUTH' ? 'Invalid OAuth access token. ' : 'Invalid programmatic access token. ',
          entry: { tokenType: type } };
      }
      return { ok: true, user: options.user?.toUpperCase() ?? 'TOKEN_USER', entry: { tokenType: type } };
    }
    return { ok: false, code: '390145', message: `Unsupported authorization token type '${type}'.`, entry: { tokenType: type } };
  }

  // --- faults ----------------------------------------------------------------------
  // The first queued fault that matches this request's kind (and handle) is
  // consumed; null when none applies.
  function takeFault(kind, handle) {
    const i = faults.findIndex((f) => (f.on === 'any' || f.on === kind) && (!f.handle || f.handle === handle));
    if (i < 0) return null;
    const f = faults[i];
    f.remaining--;
    if (f.remaining <= 0) faults.splice(i, 1);
    stats.faultsInjected++;
    return f;
  }

  function normaliseFault(raw) {
    const f = typeof raw === 'object' && raw !== null ? raw : {};
    let action = f.action ?? 'status';
    let status = f.status;
    if (typeof action === 'number' || /^\d{3}$/.test(String(action))) { status = Number(action); action = 'status'; }
    const kinds = ['submit', 'status', 'partition', 'cancel', 'any'];
    const actions = ['status', 'reset', 'malformed', 'stall', 'slow'];
    const on = f.on ?? 'submit';
    if (!kinds.includes(on)) throw new Error(`fault "on" must be one of ${kinds.join(', ')}`);
    if (!actions.includes(action)) throw new Error(`fault "action" must be one of ${actions.join(', ')} or an HTTP status`);
    if (action === 'status' && !(Number.isInteger(status) && status >= 400 && status <= 599)) {
      throw new Error('a status fault needs "status" (400..599)');
    }
    const count = f.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new Error('fault "count" must be a positive integer');
    return { on, action, status, remaining: count, retryAfter: f.retryAfter ?? (status === 429 || status === 503 ? 1 : undefined),
      delayMs: f.delayMs ?? 1000, when: f.when ?? 'before', handle: f.handle, body: f.body };
  }

  // Applies fault f to res. Returns true when the response is finished (or
  // abandoned), false when the request goes on ("slow" waits first).
  async function applyFault(f, req, res, entry) {
    entry.fault = f.action === 'status' ? String(f.status) : f.action;
    switch (f.action) {
      case 'reset':
        (req.socket.resetAndDestroy ?? req.socket.destroy).call(req.socket);
        return true;
      case 'malformed':
        send(res, 200, Buffer.from(f.body ?? '{"statementHandle": "'), { 'content-type': 'application/json' });
        return true;
      case 'stall':
        stalled.add(res);
        res.on('close', () => stalled.delete(res));
        return true;
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, f.delayMs));
        return false;
      default: {
        const headers = f.retryAfter !== undefined ? { 'retry-after': String(f.retryAfter) } : {};
        if (f.body !== undefined) send(res, f.status, Buffer.from(f.body), { 'content-type': 'text/plain', ...headers });
        else if (f.status === 503 || f.status === 504) {
          send(res, f.status, Buffer.from(`<html><body><h1>${f.status} ${http.STATUS_CODES[f.status]}</h1></body></html>`),
            { 'content-type': 'text/html', ...headers });
        } else sendJson(res, f.status, { code: `39${f.status}0`.slice(0, 6), message: http.STATUS_CODES[f.status] }, headers);
        return true;
      }
    }
  }

  // --- /api/v2 ------------------------------------------------------------------------
  async function api(req, res, url, entry) {
    const parts = url.pathname.slice(STATEMENTS_PATH.length).split('/').filter(Boolean);
    let kind;
    if (parts.length === 0) kind = 'submit';
    else if (parts.length === 1) kind = parts[0] === 'cancel' ? null : 'status';
    else if (parts.length === 2 && parts[1] === 'cancel') kind = 'cancel';
    if (!url.pathname.startsWith(STATEMENTS_PATH) || (url.pathname.length > STATEMENTS_PATH.length &&
      url.pathname[STATEMENTS_PATH.length] !== '/') || !kind) {
      return apiError(res, 404, '390404', `No such endpoint: ${url.pathname}`);
    }
    const handle = parts[0];
    const partition = url.searchParams.get('partition');
    if (kind === 'status' && partition !== null && partition !== '0') kind = 'partition';
    entry.kind = kind;
    if (handle) entry.handle = handle;
    const wantMethod = kind === 'status' || kind === 'partition' ? 'GET' : 'POST';
    if (req.method !== wantMethod) {
      return apiError(res, 405, '390405', `Method ${req.method} not allowed.`, { allow: wantMethod });
    }

    const fault = takeFault(kind, handle);
    if (fault && fault.when !== 'after' && await applyFault(fault, req, res, entry)) return;

    const auth = authenticate(req);
    entry.auth = auth.entry;
    if (!auth.ok) {
      stats.authFailures++;
      return apiError(res, 401, auth.code, auth.message);
    }
    if (!req.headers['user-agent']) return apiError(res, 400, '391903', 'User-Agent header is missing.');

    if (kind === 'submit') return submit(req, res, url, entry, auth, fault);
    const s = statements.get(handle);
    if (!s) {
      return sendJson(res, 422, { code: '000709', sqlState: '02000', message: `Statement ${handle} not found`, statementHandle: handle });
    }
    if (kind === 'cancel') {
      if (s.state !== 'running') {
        return sendJson(res, 422, { code: '000605', sqlState: '01000', message: 'Identified SQL statement is not currently executing.',
          statementHandle: s.handle, statementStatusUrl: statusUrl(s) });
      }
      cancel(s);
      if (fault && fault.when === 'after' && await applyFault(fault, req, res, entry)) return;
      return sendJson(res, 200, { code: '000000', sqlState: '00000', message: 'successfully canceled', statementHandle: s.handle,
        statementStatusUrl: statusUrl(s) });
    }
    const n = Number(partition ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) return apiError(res, 400, '391920', `Invalid partition number '${partition}'.`);
    return sendStatement(res, s, n);
  }

  async function submit(req, res, url, entry, auth, fault) {
    const type = req.headers['content-type'];
    if (type && !/^application\/json\b/i.test(type)) return apiError(res, 415, '391909', `Unsupported media type '${type}'.`);
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return apiError(res, 400, '391900', 'Unable to parse the request body as JSON.');
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return apiError(res, 400, '391900', 'The request body is not a JSON object.');
    if (typeof body.statement !== 'string') return apiError(res, 400, '391906', 'Missing required field: statement.');
    if (body.timeout !== undefined && !(Number.isInteger(body.timeout) && body.timeout >= 0)) {
      return apiError(res, 400, '391907', 'Field timeout must be a non-negative integer.');
    }
    for (const field of ['database', 'schema', 'warehouse', 'role']) {
      if (body[field] !== undefined && typeof body[field] !== 'string') return apiError(res, 400, '391908', `Field ${field} must be a string.`);
    }
    const parameters = lowerKeys(body.parameters ?? {});
    entry.queryTag = parameters.query_tag;
    entry.multiStatementCount = parameters.multi_statement_count;
    entry.timeout = body.timeout ?? null;
    stats.submits++;
    const q = url.searchParams;
    const requestId = q.get('requestId') || randomUUID();
    const flag = (name) => q.get(name)?.toLowerCase();
    const retry = flag('retry') === 'true';
    const isAsync = flag('async') === 'true';
    const nullable = flag('nullable') !== 'false';

    let s;
    const earlier = byRequestId.get(requestId);
    if (retry && earlier) {
      s = statements.get(earlier);
      stats.retriesAnswered++;
      entry.retryAnswered = true;
    } else {
      s = execute(body, requestId, nullable, auth.user);
    }
    entry.handle = s.handle;

    if (fault && fault.when === 'after' && await applyFault(fault, req, res, entry)) return;
    if (isAsync && s.state === 'running') return sendStatement(res, s);
    if (s.state === 'running') {
      // Synchronous: answer when it ends, or with 202 after syncWaitSeconds.
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, config.syncWaitSeconds * 1000);
        s.waiters.push(() => { clearTimeout(timer); resolve(); });
        res.on('close', resolve);
      });
    }
    return sendStatement(res, s);
  }

  // --- /_control ----------------------------------------------------------------------
  async function control(req, res, url) {
    const route = `${req.method} ${url.pathname}`;
    const json = async () => {
      const text = await readBody(req);
      return text.trim() === '' ? {} : JSON.parse(text);
    };
    try {
      switch (route) {
        case 'GET /_control/stats': return sendJson(res, 200, snapshot());
        case 'GET /_control/running': {
          const list = running().map(summary);
          return sendJson(res, 200, { count: list.length, statements: list });
        }
        case 'GET /_control/statements': return sendJson(res, 200, { statements: [...statements.values()].map(summary) });
        case 'GET /_control/log': return sendJson(res, 200, { requests: log });
        case 'DELETE /_control/log': log = []; return sendJson(res, 200, { ok: true });
        case 'GET /_control/faults': return sendJson(res, 200, { faults });
        case 'DELETE /_control/faults': faults = []; return sendJson(res, 200, { ok: true });
        case 'POST /_control/faults': {
          const body = await json();
          const list = Array.isArray(body) ? body : Array.isArray(body.faults) ? body.faults : [body];
          const added = list.map(normaliseFault);
          faults.push(...added);
          return sendJson(res, 200, { faults });
        }
        case 'GET /_control/config': return sendJson(res, 200, config);
        case 'POST /_control/config': {
          const body = await json();
          for (const [k, v] of Object.entries(body)) {
            checkConfig(k, v);
          }
          for (const [k, v] of Object.entries(body)) {
            config[k] = v;
          }
          return sendJson(res, 200, config);
        }
        case 'POST /_control/reset': {
          for (const s of statements.values()) {
            clearTimeout(s.runTimer); clearTimeout(s.timeoutTimer); clearTimeout(s.cancelTimer);
          }
          statements.clear(); byRequestId.clear(); executionsByRequestId.clear();
          faults = []; log = [];
          for (const k of Object.keys(stats)) stats[k] = 0;
          Object.assign(config, DEFAULT_CONFIG, options.config);
          saveState();
          return sendJson(res, 200, { ok: true });
        }
        default: return sendJson(res, 404, { error: `no control route ${route}` });
      }
    } catch (e) {
      return sendJson(res, 400, { error: e.message });
    }
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    try {
      if (url.pathname.startsWith('/_control/')) return await control(req, res, url);
      stats.requests++;
      const q = url.searchParams;
      const entry = {
        seq: ++seq, at: Date.now(), method: req.method, path: url.pathname,
        requestId: q.get('requestId'), retry: q.get('retry'), async: q.get('async'), partition: q.get('partition'),
        nullable: q.get('nullable'), userAgent: req.headers['user-agent'] ?? null,
        contentType: req.headers['content-type'] ?? null, acceptEncoding: req.headers['accept-encoding'] ?? null,
        accept: req.headers.accept ?? null, status: null, fault: null,
      };
      log.push(entry);
      res.on('finish', () => {
        entry.status = res.statusCode;
        saveState();
      });
      if (url.pathname.startsWith('/api/')) return await api(req, res, url, entry);
      return apiError(res, 404, '390404', `No such endpoint: ${url.pathname}`);
    } catch (e) {
      process.stderr.write(`sqlapi-double: ${e.stack}\n`);
      if (!res.headersSent) sendJson(res, 500, { code: '390500', message: 'internal error of the double' });
    }
  });
  server.on('connection', () => { stats.connections++; });
  server.requestTimeout = 0; // stalls and long synchronous waits are wanted
  server.keepAliveTimeout = 30000;

  return {
    server,
    listen(wantedPort = 0) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(wantedPort, '127.0.0.1', () => {
          port = server.address().port;
          saveState();
          resolve(port);
        });
      });
    },
    close() {
      for (const s of statements.values()) {
        clearTimeout(s.runTimer); clearTimeout(s.timeoutTimer); clearTimeout(s.cancelTimer);
      }
      for (const res of stalled) res.destroy();
      saveState();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function lowerKeys(object) {
  return typeof object === 'object' && object !== null
    ? Object.fromEntries(Object.entries(object).map(([k, v]) => [k.toLowerCase(), v])) : {};
}

function safeClaims(token) {
  try {
    return JSON.parse(Buffer.from(String(token).split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

// Writes a fresh RSA key pair into dir for a test that has no key tools:
// rsa_key.p8 (PKCS#8 PEM), rsa_key.pub (SPKI PEM) and, with a passphrase,
// rsa_key_encrypted.p8 (encrypted PKCS#8, AES-256-CBC). Returns the .pub path.
function generateKeys(dir, passphrase) {
  mkdirSync(dir, { recursive: true });
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path.join(dir, 'rsa_key.p8'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  if (passphrase !== undefined) {
    writeFileSync(path.join(dir, 'rsa_key_encrypted.p8'),
      privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }), { mode: 0o600 });
  }
  const publicFile = path.join(dir, 'rsa_key.pub');
  writeFileSync(publicFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return publicFile;
}

// --- command line ----------------------------------------------------------------------
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--exit-with-stdin') { out.exitWithStdin = true; continue; }
    if (a === '--bare-gzip') { out.bareGzip = true; continue; }
    const m = /^--([a-z-]+)$/.exec(a);
    if (!m || i + 1 >= argv.length) throw new Error(`bad argument ${a}`);
    out[m[1]] = argv[++i];
  }
  return out;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
    if (!args['public-key'] === !args['generate-keys']) throw new Error('one of --public-key PEMFILE and --generate-keys DIR is required');
  } catch (e) {
    process.stderr.write(`sqlapi-double: ${e.message}\nusage: sqlapi-double.mjs --port N ` +
      '(--public-key PEMFILE | --generate-keys DIR [--key-passphrase P]) ' +
      '[--token T | --token-file F] [--account A] [--user U] [--state-file F] [--partition-rows N] ' +
      '[--type-case lower|upper] [--bare-gzip] [--exit-with-stdin]\n');
    process.exit(2);
  }
  let double;
  try {
    const config = {};
    if (args['partition-rows']) config.partitionRows = Number(args['partition-rows']);
    if (args['type-case']) config.typeCase = args['type-case'];
    if (args.bareGzip) config.bareGzip = true;
    for (const [k, v] of Object.entries(config)) checkConfig(k, v);
    const token = args['token-file'] ? readFileSync(args['token-file'], 'utf8').trim() : args.token;
    if (args['generate-keys']) args['public-key'] = generateKeys(args['generate-keys'], args['key-passphrase']);
    let publicKey;
    try {
      publicKey = createPublicKey(readFileSync(args['public-key'], 'utf8'));
    } catch (e) {
      throw new Error(`cannot read a public key from ${args['public-key']}: ${e.message}`);
    }
    if (publicKey.asymmetricKeyType !== 'rsa') throw new Error('the public key is not an RSA key');
    double = createDouble({ publicKey, token, account: args.account, user: args.user, stateFile: args['state-file'], config });
  } catch (e) {
    process.stderr.write(`sqlapi-double: ${e.message}\n`);
    process.exit(2);
  }
  let port;
  try {
    port = await double.listen(Number(args.port ?? 0));
  } catch (e) {
    process.stderr.write(`sqlapi-double: cannot listen on 127.0.0.1:${args.port ?? 0}: ${e.message}\n`);
    process.exit(2);
  }
  process.stdout.write(`listening ${port}\n`);
  const stop = async () => {
    await double.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (args.exitWithStdin) {
    process.stdin.resume();
    process.stdin.on('end', stop);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
