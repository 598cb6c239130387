#!/usr/bin/env node
// bench/http/mcp_stdio.mjs - the stdio side of the HTTP status figures:
// tools/call get_query_status requests per second through `qreg mcp` on
// stdio, with the same load shape as wrk -c64 (64 requests in flight, a new
// one written as soon as an answer comes back) and the same body as
// bench/http/mcp.lua (stateless protocol 2026-07-28: no initialize). A
// raw JSON-RPC client (one line per message), not the SDK: the SDK's own
// cost would hide the server's at these rates.
//
//   node bench/http/mcp_stdio.mjs --qreg BIN --db URL [--in-flight 64] [--seconds 10]
//
// First submits `SELECT 1` with execute_query (waited for) and reads the
// status of that finished query. Prints one line "JSON {...}": requests,
// requests_per_s, p50_ms, p99_ms (write of the request to its answer
// read), errors (JSON-RPC errors or isError results; any makes run.sh fail).
// Owns the server child.
import { spawn } from 'node:child_process';
import readline from 'node:readline';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const QREG = option('--qreg', 'build/qreg');
const DB = option('--db', null);
const IN_FLIGHT = Number(option('--in-flight', '64'));
const SECONDS = Number(option('--seconds', '10'));
if (!DB) throw new Error('mcp_stdio.mjs: --db URL is required');

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
};
const child = spawn(QREG, ['mcp', '--db', DB], { stdio: ['pipe', 'pipe', 'ignore'] });
const pending = new Map(); // id -> {resolve, sent}
let nextId = 1;
readline.createInterface({ input: child.stdout }).on('line', (line) => {
  const message = JSON.parse(line);
  const waiter = pending.get(message.id);
  if (!waiter) return;
  pending.delete(message.id);
  waiter.resolve(message);
});
const call = (name, toolArgs) => new Promise((resolve) => {
  const id = nextId++;
  pending.set(id, { resolve });
  child.stdin.write(JSON.stringify({
    jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: toolArgs, _meta: META },
  }) + '\n');
});

const submitted = await call('execute_query', { sql: 'SELECT 1', wait_seconds: 10 });
const queryId = submitted.result?.structuredContent?.query_id;
if (!queryId || submitted.result.structuredContent.status !== 'succeeded')
  throw new Error(`mcp_stdio.mjs: SELECT 1 did not succeed: ${JSON.stringify(submitted)}`);

// The request line is built once, as wrk's is; only the id changes.
const [head, tail] = JSON.stringify({
  jsonrpc: '2.0', id: 0, method: 'tools/call',
  params: { name: 'get_query_status', arguments: { query_id: queryId }, _meta: META },
}).split('"id":0');
const latencies = [];
let errors = 0;
let done = 0;
const end = performance.now() + SECONDS * 1000;
const start = performance.now();
await new Promise((finish) => {
  let open = 0;
  const sendOne = () => {
    const id = nextId++;
    const sent = performance.now();
    open++;
    pending.set(id, {
      resolve: (message) => {
        open--;
        const now = performance.now();
        latencies.push(now - sent);
        done++;
        if (message.error || message.result?.isError) errors++;
        if (now < end) sendOne();
        else if (open === 0) finish();
      },
    });
    child.stdin.write(`${head}"id":${id}${tail}\n`);
  };
  for (let i = 0; i < IN_FLIGHT; i++) sendOne();
});
const seconds = (performance.now() - start) / 1000;
child.stdin.end();
child.kill('SIGTERM');
latencies.sort((a, b) => a - b);
const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
console.log('JSON ' + JSON.stringify({
  requests: done,
  seconds: Number(seconds.toFixed(3)),
  requests_per_s: Number((done / seconds).toFixed(1)),
  p50_ms: Number(at(50).toFixed(3)),
  p99_ms: Number(at(99).toFixed(3)),
  errors,
}));
