#!/usr/bin/env node
// bench/mcp_calls.mjs - figure 10: what a query costs an agent through
// `qreg mcp`, measured with the official MCP SDK 1.x client (the one the
// e2e tests pin, from tests/e2e/node_modules): tool calls per query for a
// ~50 ms and a ~10 s query, and sequential `SELECT 1` queries per second
// through the tools, each beside the way the tools had to be used before
// execute_query waited (wait_seconds: 0, then get_query_status until the
// query is over, then fetch_query_result - the only path before this
// change). Every tool call is a model round trip for an agent: the count is
// the figure that matters; the rate is the floor of the server and SDK.
//
//   node bench/mcp_calls.mjs [--qreg build/qreg] [--rounds 200] [--poll-ms 200]
//
// --poll-ms is how long the "before" client waits between two status polls
// (a model's own round trip is seconds; 200 ms is generous to "before").
// Prints a table and one JSON line. Owns a temporary SQLite file and the
// server child (the SDK's stdio transport).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const QREG = option('--qreg', path.join(root, 'build', 'qreg'));
const ROUNDS = Number(option('--rounds', '200'));
const POLL_MS = Number(option('--poll-ms', '200'));
const sdk = path.join(root, 'tests', 'e2e', 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm');
const { Client } = await import(pathToFileURL(path.join(sdk, 'client', 'index.js')).href);
const { StdioClientTransport } = await import(pathToFileURL(path.join(sdk, 'client', 'stdio.js')).href);

const dir = mkdtempSync(path.join(tmpdir(), 'qreg-bench-mcp-'));
const url = `sqlite:${path.join(dir, 'bench.db')}`;
execFileSync(QREG, ['query', '--db', url, '--allow-writes', 'CREATE TABLE t (x INTEGER)'], { stdio: 'ignore' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const countTo = (n) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT count(*) FROM c`;

const transport = new StdioClientTransport({ command: QREG, args: ['mcp', '--db', url], stderr: 'ignore' });
const client = new Client({ name: 'qreg-bench-mcp', version: '1' });
await client.connect(transport);
await client.listTools();
let calls = 0;
const call = async (name, a) => {
  calls++;
  const result = await client.callTool({ name, arguments: a });
  return result.structuredContent;
};

// After: execute_query waits; a query still running is fetched with a wait.
async function after(sql) {
  const r = await call('execute_query', { sql });
  if (r.status !== 'running' && r.status !== 'pending') return r;
  for (;;) {
    const page = await call('fetch_query_result', { query_id: r.query_id, wait_seconds: 30 });
    if (page && page.rows) return page;
  }
}
// Before: submit, poll the status (pausing pollMs between polls), fetch.
async function before(sql, pollMs = POLL_MS) {
  const r = await call('execute_query', { sql, wait_seconds: 0 });
  for (;;) {
    const s = await call('get_query_status', { query_id: r.query_id });
    if (!['pending', 'running'].includes(s.status)) break;
    await sleep(pollMs);
  }
  return call('fetch_query_result', { query_id: r.query_id, wait_seconds: 0 });
}
// The same, polling back to back: the fastest "before" can go.
const beforeTight = (sql) => before(sql, 0);

// Calibrate the counting query to ~50 ms and ~10 s on this machine.
const probe = await call('execute_query', { sql: countTo(1000000), wait_seconds: 50 });
const perMillion = Math.max(1, probe.elapsed_ms);
const fastN = Math.max(1000, Math.round((50 / perMillion) * 1e6));
const slowN = Math.round((10000 / perMillion) * 1e6);

async function callsPer(fn, sql, n) {
  const counts = [];
  const times = [];
  for (let i = 0; i < n; i++) {
    const c0 = calls;
    const t0 = performance.now();
    await fn(sql);
    times.push(performance.now() - t0);
    counts.push(calls - c0);
  }
  counts.sort((a, b) => a - b);
  times.sort((a, b) => a - b);
  return { calls: counts[Math.floor(n / 2)], max_calls: counts.at(-1), ms: Math.round(times[Math.floor(n / 2)]) };
}
async function rate(fn) {
  const t0 = performance.now();
  const c0 = calls;
  for (let i = 0; i < ROUNDS; i++) await fn('SELECT 1');
  const s = (performance.now() - t0) / 1000;
  return { per_s: Math.round(ROUNDS / s), calls_per_query: Number(((calls - c0) / ROUNDS).toFixed(2)) };
}

const results = {
  fast_query_ms: Math.round((fastN / 1e6) * perMillion),
  slow_query_ms: Math.round((slowN / 1e6) * perMillion),
  fast: { after: await callsPer(after, countTo(fastN), 20), before: await callsPer(before, countTo(fastN), 20) },
  slow: { after: await callsPer(after, countTo(slowN), 2), before: await callsPer(before, countTo(slowN), 2) },
  select1: { after: await rate(after), before: await rate(beforeTight) },
};
await client.close();
rmSync(dir, { recursive: true, force: true });

const row = (what, a, b) => console.log(`${what.padEnd(44)} ${String(a).padStart(10)} ${String(b).padStart(10)}`);
console.log(`figure 10: qreg mcp through the official SDK (@modelcontextprotocol/sdk), poll every ${POLL_MS} ms before`);
row('', 'after', 'before');
row(`tool calls, ~${results.fast_query_ms} ms query (median; max)`, `${results.fast.after.calls}; ${results.fast.after.max_calls}`, `${results.fast.before.calls}; ${results.fast.before.max_calls}`);
row(`tool calls, ~${results.slow_query_ms} ms query (median; max)`, `${results.slow.after.calls}; ${results.slow.after.max_calls}`, `${results.slow.before.calls}; ${results.slow.before.max_calls}`);
row('wall ms per ~50 ms query (median)', results.fast.after.ms, results.fast.before.ms);
row('sequential SELECT 1 queries/s (before: no pause)', results.select1.after.per_s, results.select1.before.per_s);
row('tool calls per SELECT 1', results.select1.after.calls_per_query, results.select1.before.calls_per_query);
console.log(JSON.stringify({ figure: 10, ...results }));
