// tests/http/lib.mjs - shared pieces of the tests of `qreg serve`: a
// temporary SQLite database, a server child on a free loopback port (its
// port read from its log), fetch helpers, and a small checker of responses
// against docs/openapi.json (the subset of JSON Schema that document uses).
// Node's own modules only: no npm package.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const QREG_BIN = process.env.QREG_BIN ?? path.join(repoRoot, 'build', 'qreg');
export const OPENAPI = JSON.parse(readFileSync(path.join(repoRoot, 'docs', 'openapi.json'), 'utf8'));

export const ROWS = 3000; // more than one page (1000) of a stream or a JSON page
// Runs for many seconds: only ever canceled or cut short by the tests.
export const LONG_SQL =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 80000000) ' +
  'SELECT count(*) FROM c';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A temporary directory with test.db: items(id, name, price, note) holding
// ROWS rows; name has a comma and a quote every 7th row, note is NULL on
// odd rows and '' on every 10th.
export function makeDatabase() {
  const dir = mkdtempSync(path.join(tmpdir(), 'qreg-http-'));
  const file = path.join(dir, 'test.db');
  const url = `sqlite:${file}`;
  const run = (sql) => execFileSync(QREG_BIN, ['query', '--db', url, '--allow-writes', sql], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  run('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, note TEXT)');
  run(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${ROWS}) ` +
      "INSERT INTO items SELECT x, CASE WHEN x % 7 = 0 THEN 'item \"' || x || '\", with comma' " +
      "ELSE 'item ' || x END, x * 0.5, CASE WHEN x % 2 = 1 THEN NULL WHEN x % 10 = 0 THEN '' " +
      "ELSE 'line1' || char(10) || 'line2' END FROM c");
  return { dir, file, url, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// Writes a token file of the given mode into dir.
export function tokenFile(dir, lines, mode = 0o600) {
  const file = path.join(dir, `tokens-${Math.random().toString(16).slice(2)}`);
  writeFileSync(file, lines.join('\n') + '\n');
  chmodSync(file, mode);
  return file;
}

// Runs `qreg serve` to its end (for refusals at start): {code, stderr}.
export function runServe(args, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const child = spawn(QREG_BIN, ['serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('serve did not exit')); }, timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }); });
  });
}

// Starts `qreg serve --listen 127.0.0.1:0 ARGS`; resolves once it listens.
// server.url, server.pid, server.stderr(), server.stop() (SIGTERM, resolves
// with {code, signal, stderr}).
export async function startServer(args, { token } = {}) {
  const child = spawn(QREG_BIN, ['serve', '--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${stderr}`)), 30000);
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', () => { clearTimeout(timer); reject(new Error(`serve exited:\n${stderr}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const server = {
    url,
    port,
    pid: child.pid,
    child,
    exited,
    stderr: () => stderr,
    // fetch with the token, a path relative to the server
    fetch: (p, init = {}) => fetch(url + p, { ...init, headers: { ...headers, ...(init.headers ?? {}) } }),
    async json(p, init = {}) {
      const response = await server.fetch(p, init);
      const text = await response.text();
      let body = null;
      try { body = JSON.parse(text); } catch { body = text; }
      checkResponse(p, init.method ?? 'GET', response, body);
      return { status: response.status, headers: response.headers, body };
    },
    post: (p, value) => server.json(p, {
      method: 'POST', body: JSON.stringify(value), headers: { 'content-type': 'application/json' },
    }),
    // Signals the server; resolves with its exit, and throws on a
    // sanitizer's report in its log (ASan, UBSan, LSan, TSan builds).
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const result = await exited;
      const report = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:)[^\n]*/.exec(result.stderr);
      if (report) throw new Error(`qreg serve: ${report[0]}`);
      return result;
    },
  };
  return server;
}

// The number of threads of a process (Linux).
export function threadCount(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^Threads:\s+(\d+)/m.exec(status)[1]);
}

// --- checking responses against docs/openapi.json --------------------------------------

function resolveRef(ref) {
  let node = OPENAPI;
  for (const part of ref.replace(/^#\//, '').split('/')) node = node[part];
  if (node === undefined) throw new Error(`openapi: unresolved ${ref}`);
  return node;
}

function typeOf(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Number.isInteger(value)) return 'integer';
  return typeof value;
}

// The errors of value against schema (JSON Schema 2020-12, the keywords the
// document uses).
export function validate(value, schema, where = '$') {
  if (schema.$ref) return validate(value, resolveRef(schema.$ref), where);
  const errors = [];
  if (schema.oneOf) {
    const passing = schema.oneOf.filter((s) => validate(value, s, where).length === 0).length;
    if (passing !== 1) errors.push(`${where}: matches ${passing} of oneOf`);
  }
  if (schema.type) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = typeOf(value);
    const ok = types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
    if (!ok) return [...errors, `${where}: ${actual}, expected ${types.join('|')}`];
  }
  if ('const' in schema && value !== schema.const) errors.push(`${where}: not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${where}: ${JSON.stringify(value)} not in enum`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${where}: below minimum`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${where}: above maximum`);
  }
  if (typeOf(value) === 'object') {
    for (const key of schema.required ?? []) if (!(key in value)) errors.push(`${where}: missing ${key}`);
    for (const [key, sub] of Object.entries(schema.properties ?? {})) {
      if (key in value) errors.push(...validate(value[key], sub, `${where}.${key}`));
    }
    if (schema.additionalProperties === false) {
      for (const key of Object.keys(value)) if (!(key in (schema.properties ?? {}))) errors.push(`${where}: extra ${key}`);
    }
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => errors.push(...validate(item, schema.items, `${where}[${i}]`)));
  }
  return errors;
}

// The OpenAPI operation of a request path ("/v1/statements/<id>?x" matches
// "/v1/statements/{id}").
export function operationFor(requestPath, method) {
  const pathOnly = requestPath.split('?')[0];
  for (const [template, item] of Object.entries(OPENAPI.paths)) {
    const pattern = new RegExp('^' + template.replace(/\{[^}]+\}/g, '[^/]+').replace(/\./g, '\\.') + '$');
    if (pattern.test(pathOnly)) {
      const op = item[method.toLowerCase()];
      return op ? { template, op } : null;
    }
  }
  return null;
}

// Throws unless the response is one the document describes: a listed status,
// a listed content type, a body valid against its schema, required headers.
// Routes the document does not have (404, 405 tests) are checked as problems.
export function checkResponse(requestPath, method, response, body) {
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0].trim();
  const found = operationFor(requestPath, method);
  let spec;
  if (!found) {
    if (response.status < 400) throw new Error(`openapi: ${method} ${requestPath} is not described`);
    spec = OPENAPI.components.responses.Problem;
  } else {
    spec = found.op.responses[String(response.status)];
    if (!spec) throw new Error(`openapi: ${method} ${found.template} has no response ${response.status}`);
    if (spec.$ref) spec = resolveRef(spec.$ref);
  }
  for (const [name, header] of Object.entries(spec.headers ?? {})) {
    if (header.required && !response.headers.get(name)) {
      throw new Error(`openapi: ${method} ${requestPath} ${response.status} lacks header ${name}`);
    }
  }
  if (!spec.content) { // a response described without a body (204)
    if (body !== '' && body !== null) throw new Error(`openapi: ${method} ${requestPath} ${response.status}: a body where none is described`);
    return;
  }
  const media = spec.content?.[contentType];
  if (!media) throw new Error(`openapi: ${method} ${requestPath} ${response.status}: content type ${contentType} not described`);
  if (contentType.endsWith('json')) {
    const errors = validate(body, media.schema);
    if (errors.length) throw new Error(`openapi: ${method} ${requestPath} ${response.status}:\n  ${errors.join('\n  ')}`);
  }
}

// Parses CSV (RFC 4180) into rows of fields; a field that was quoted keeps
// a marker so that "" (empty text) and an empty unquoted field (NULL) differ.
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') { value += '"'; i += 2; }
        else if (text[i] === '"') { i++; break; }
        else if (i >= text.length) throw new Error('csv: unterminated quote');
        else value += text[i++];
      }
      row.push({ quoted: true, value });
    } else {
      let end = i;
      while (end < text.length && text[end] !== ',' && text[end] !== '\r' && text[end] !== '\n') end++;
      row.push({ quoted: false, value: text.slice(i, end) });
      i = end;
    }
    if (text[i] === ',') { i++; continue; }
    if (text[i] === '\r' && text[i + 1] === '\n') { i += 2; rows.push(row); row = []; continue; }
    if (i >= text.length) { rows.push(row); break; }
    throw new Error(`csv: unexpected ${JSON.stringify(text[i])} at ${i}`);
  }
  return rows;
}
