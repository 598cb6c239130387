// tests/e2e/lib.mjs - shared pieces of the end-to-end tests of `qreg mcp`:
// where the binary is, a fresh SQLite database per test file (made with
// `qreg query --allow-writes`, so no other SQLite tool is needed), the SQL the
// tests run, a raw JSON-RPC client over a child's stdio (for what no SDK
// sends: bad input, cancellation, exact wire shapes), the final-counter
// line the server logs on exit, and the transports the SDK scenarios run
// over: stdio (`qreg mcp` as the client's child) and Streamable HTTP (a
// `qreg serve` child on a free loopback port, its /mcp endpoint).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const QREG_BIN = process.env.QREG_BIN ?? path.join(repoRoot, 'build', 'qreg');

// The version of an installed npm package (its exports hide package.json).
export function packageVersion(name) {
  const file = path.join(repoRoot, 'tests', 'e2e', 'node_modules', ...name.split('/'), 'package.json');
  return JSON.parse(readFileSync(file, 'utf8')).version;
}

export const ITEM_ROWS = 2500;
// Finishes (with 2000 rows) after stepping through two million values.
export const MEDIUM_SQL =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) ' +
  'SELECT x FROM c WHERE x % 1000 = 0';
export const MEDIUM_ROWS = 2000;
// Runs for many seconds: only ever canceled or cut short by the tests.
export const LONG_SQL =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) ' +
  'SELECT count(*) FROM c';

// A temporary directory with test.db: items(id, name, price, data) holding
// ITEM_ROWS rows; data is the blob x'00ff' (base64 "AP8=").
export function makeDatabase() {
  const dir = mkdtempSync(path.join(tmpdir(), 'qreg-e2e-'));
  const file = path.join(dir, 'test.db');
  const url = `sqlite:${file}`;
  const run = (sql) => execFileSync(QREG_BIN, ['query', '--db', url, '--allow-writes', sql], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  run('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL DEFAULT 1.5, data BLOB)');
  run(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${ITEM_ROWS}) ` +
      "INSERT INTO items SELECT x, 'item ' || x, x * 0.5, x'00ff' FROM c");
  run('CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10');
  return { dir, file, url, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Calls fn until it returns a truthy value; fails after timeoutMs (a guard
// against hangs, never a measure of speed).
export async function until(fn, timeoutMs = 60000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// "qreg: closed: connections opened=N closed=N ... leaked_fds=N" from stderr.
export function finalStats(stderr) {
  const m = /qreg: closed: connections opened=(\d+) closed=(\d+)(?:.*leaked_fds=(\d+))?/.exec(stderr);
  if (!m) return null;
  return { opened: Number(m[1]), closed: Number(m[2]), leakedFds: m[3] === undefined ? null : Number(m[3]) };
}

// A sanitizer's report in a server's standard error (ASan, UBSan, LSan, TSan
// builds), or null.
export function sanitizerReport(stderr) {
  const m = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:)[^\n]*/.exec(stderr);
  return m ? m[0] : null;
}

// Every tool, in the order tools/list gives them.
export const TOOL_NAMES = [
  'execute_query', 'get_query_status', 'fetch_query_result', 'cancel_query', 'list_queries',
  'forget_query', 'list_schemas', 'list_tables', 'describe_table', 'search_columns', 'sample_table_data',
  'analyze_table_statistics',
];

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'timeout']);

// The qreg mcp child driven by hand: send() writes raw lines, request()
// sends a request and resolves with its response, exited resolves with the
// exit code once the process ends.
export class RawServer {
  constructor(args, env = {}) {
    this.child = spawn(QREG_BIN, ['mcp', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.stderr = '';
    this.responses = new Map(); // id -> response
    this.waiters = new Map();   // id -> resolve
    this.unmatched = [];        // responses with id null
    this.lines = [];            // every stdout line, raw
    this.nextId = 1;
    let pending = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.lines.push(line);
        const msg = JSON.parse(line); // every stdout line must be JSON
        if (msg.id === null || msg.id === undefined) {
          this.unmatched.push(msg);
        } else {
          this.responses.set(msg.id, msg);
          this.waiters.get(msg.id)?.(msg);
        }
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => { this.stderr += chunk; });
    this.stdoutClosed = new Promise((resolve) => this.child.stdout.on('end', resolve));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  send(message) {
    this.child.stdin.write(typeof message === 'string' ? message : JSON.stringify(message) + '\n');
  }

  response(id) {
    if (this.responses.has(id)) return Promise.resolve(this.responses.get(id));
    return new Promise((resolve) => this.waiters.set(id, resolve));
  }

  request(method, params, id = this.nextId++) {
    const message = { jsonrpc: '2.0', id, method };
    if (params !== undefined) message.params = params;
    this.send(message);
    return this.response(id);
  }

  async initialize(protocolVersion = '2025-11-25') {
    const reply = await this.request('initialize', {
      protocolVersion, capabilities: {}, clientInfo: { name: 'qreg-e2e-raw', version: '1' },
    });
    this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return reply;
  }

  // tools/call; returns the CallToolResult (throws on a JSON-RPC error).
  async tool(name, args, extraParams = {}) {
    const reply = await this.request('tools/call', { name, arguments: args, ...extraParams });
    if (reply.error) throw new Error(`${name}: ${JSON.stringify(reply.error)}`);
    return reply.result;
  }

  async close() {
    this.child.stdin.end();
    return this.exited;
  }
}

// 2026-07-28 request metadata.
export function modernMeta(extra = {}, capabilities = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientInfo': { name: 'qreg-e2e-raw', version: '1' },
    'io.modelcontextprotocol/clientCapabilities': capabilities,
    ...extra,
  };
}

// --- transports ---------------------------------------------------------------------

// `qreg serve --listen 127.0.0.1:0 ARGS` as a child; resolves once it
// listens (the port is read from its log). server.url is its base URL,
// server.mcpUrl its MCP endpoint; server.stop() sends SIGTERM and resolves
// with {code, signal, stderr}.
export async function startServe(args, env = {}) {
  const child = spawn(QREG_BIN, ['serve', '--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`qreg serve did not start:\n${stderr}`)), 30000);
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', () => { clearTimeout(timer); reject(new Error(`qreg serve exited:\n${stderr}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    mcpUrl: `${url}/mcp`,
    port,
    child,
    exited,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

// The options `qreg serve --help` lists (read once): an SDK scenario that
// needs a `qreg mcp` option serve lacks is skipped over HTTP, saying which.
let serveHelp = null;
function serveOptions() {
  if (serveHelp === null) {
    try {
      serveHelp = execFileSync(QREG_BIN, ['serve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    } catch (err) {
      serveHelp = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    }
  }
  return serveHelp;
}

// The transports an SDK scenario runs over, each {name, unsupported(args),
// open(args, env)}, for one SDK's transport classes ({StdioClientTransport,
// StreamableHTTPClientTransport}). args are the server's options after the
// subcommand (`--db URL ...`); open() starts the server (`qreg mcp` as the
// stdio transport's child, or a `qreg serve` child) and resolves with
// {transport, stderr(), close(client), abandon()}: connect a client to
// transport (abandon() ends the server if that fails); close(client) closes
// the client and ends the server (stdio: by the end of its standard input;
// HTTP: the session, if any, is deleted (DELETE /mcp), the client closed,
// then SIGTERM, and the server must exit 0) and resolves with the server's
// whole log once the final counters are in it.
// unsupported(args) is false, or why the transport cannot run with args.
export function transports({ StdioClientTransport, StreamableHTTPClientTransport }) {
  return [
    {
      name: 'stdio',
      unsupported: () => false,
      async open(args, env = {}) {
        const transport = new StdioClientTransport({
          command: QREG_BIN, args: ['mcp', ...args], stderr: 'pipe', env: { ...process.env, ...env },
        });
        let stderr = '';
        transport.stderr?.on('data', (chunk) => { stderr += chunk; });
        return {
          transport,
          stderr: () => stderr,
          abandon: () => transport.close(),
          async close(client) {
            await client.close();
            await until(() => finalStats(stderr), 30000, 'final stats');
            return stderr;
          },
        };
      },
    },
    {
      name: 'http',
      unsupported(args = []) {
        const help = serveOptions();
        const listed = (option) => new RegExp(`(^|\\s)${option}(\\s|=|,|$)`, 'm').test(help);
        const missing = args.filter((a) => /^--[a-z]/.test(a) && !listed(a.split('=')[0]));
        return missing.length ? `qreg serve has no ${missing.join(', ')}` : false;
      },
      async open(args, env = {}) {
        const server = await startServe(args, env);
        const transport = new StreamableHTTPClientTransport(new URL(server.mcpUrl));
        return {
          transport,
          server,
          stderr: server.stderr,
          abandon: () => server.stop('SIGKILL'),
          async close(client) {
            let ended = null;
            try {
              if (transport.sessionId) await transport.terminateSession();
            } catch (err) {
              ended = err;
            }
            await client.close();
            const { code, signal, stderr } = await server.stop();
            if (ended) throw new Error(`DELETE /mcp: ${ended.message}\n${stderr.slice(-2000)}`);
            assert.equal(signal, null, `qreg serve: killed by ${signal}\n${stderr.slice(-2000)}`);
            assert.equal(code, 0, stderr.slice(-2000));
            return stderr;
          },
        };
      },
    },
  ];
}

// Connects client over an opened link; if that fails, the server is ended
// (no child outlives its test) and the error thrown.
export async function connectClient(client, link) {
  try {
    await client.connect(link.transport);
  } catch (err) {
    await link.abandon();
    throw err;
  }
}

// A token file (mode 0600) in dir holding the given lines.
export function tokenFile(dir, lines) {
  const file = path.join(dir, `tokens-${Math.random().toString(16).slice(2)}`);
  writeFileSync(file, lines.join('\n') + '\n');
  chmodSync(file, 0o600);
  return file;
}
