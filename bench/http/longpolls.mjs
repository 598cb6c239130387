#!/usr/bin/env node
// bench/http/longpolls.mjs - holds COUNT long-polls on one running statement
// of a `qreg serve`, reads what the server costs while it holds them, then
// cancels the statement and counts how every long-poll came back.
//
//   node bench/http/longpolls.mjs --url http://127.0.0.1:PORT --pid PID --id QUERY_ID
//        [--count 10000] [--wait 30]
//
// Each long-poll is GET /v1/statements/{id}?wait_seconds=WAIT on its own
// connection (an http.Agent with keepAlive and maxSockets above COUNT).
// "idle" is read before the first one is sent (the statement already
// running), "held" once /metrics says qreg_http_waits = COUNT: Threads,
// VmRSS and VmHWM of /proc/PID/status, the qreg_http_waits gauge. Then
// POST /v1/statements/{id}/cancel, and every long-poll's answer is counted
// by HTTP status and by the statement's status in its body; the same
// figures are read again once all have answered (connections still open)
// and once the server has closed its side of them (its descriptor count
// back to idle's) after the client closed its own. cpu_ms is the server's
// user + system time (main_cpu_ms: its main thread's, the HTTP one), fds
// its open descriptors; metrics_failure the last /metrics answer that had
// no gauge (null: none). Prints one
// line "JSON {...}". The caller raises `ulimit -n` (one descriptor each).
import http from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const URL_BASE = option('--url', null);
const PID = option('--pid', null);
const ID = option('--id', null);
const COUNT = Number(option('--count', '10000'));
const WAIT = Number(option('--wait', '30'));
if (!URL_BASE || !PID || !ID) throw new Error('longpolls.mjs: --url, --pid and --id are required');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function processStatus() {
  const text = readFileSync(`/proc/${PID}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)[1]);
  // utime + stime, in clock ticks (100 a second on Linux): fields 14, 15.
  const stat = readFileSync(`/proc/${PID}/stat`, 'utf8').split(') ')[1].split(' ');
  const cpuMs = (Number(stat[11]) + Number(stat[12])) * 10;
  // The same of the main thread alone: the HTTP thread (the registry's
  // worker running the statement is busy the whole time).
  const main = readFileSync(`/proc/${PID}/task/${PID}/stat`, 'utf8').split(') ')[1].split(' ');
  const mainCpuMs = (Number(main[11]) + Number(main[12])) * 10;
  return {
    threads: field('Threads'), rss_kib: field('VmRSS'), hwm_kib: field('VmHWM'), cpu_ms: cpuMs,
    main_cpu_ms: mainCpuMs,
    fds: readdirSync(`/proc/${PID}/fd`).length,
  };
}
// The metrics are read on a connection of their own (fetch), not the agent's.
// An answer without the gauge is kept (the last one) and reported.
let metricsFailure = null;
async function waitsGauge() {
  let response;
  try {
    response = await fetch(`${URL_BASE}/metrics`);
  } catch (error) {
    metricsFailure = { error: String(error.cause?.code ?? error.message) };
    return null;
  }
  const text = await response.text();
  const m = /^qreg_http_waits (\d+)/m.exec(text);
  if (!m) metricsFailure = { http_status: response.status, body: text.slice(0, 300) };
  return m ? Number(m[1]) : null;
}
async function statementStatus() {
  return (await (await fetch(`${URL_BASE}/v1/statements/${ID}`)).json()).status;
}

const idle = { ...processStatus(), waits: await waitsGauge(), statement: await statementStatus() };

const agent = new http.Agent({ keepAlive: true, maxSockets: COUNT + 16 });
const byHttpStatus = {};
const byStatementStatus = {};
const failures = {};
let answered = 0;
const t0 = performance.now();
const polls = [];
for (let i = 0; i < COUNT; i++) {
  polls.push(new Promise((resolve) => {
    const request = http.get(`${URL_BASE}/v1/statements/${ID}?wait_seconds=${WAIT}`, { agent }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => {
        byHttpStatus[response.statusCode] = (byHttpStatus[response.statusCode] ?? 0) + 1;
        let status = 'unparsed';
        try { status = JSON.parse(body).status ?? JSON.parse(body).error_type ?? 'none'; } catch { /* counted */ }
        byStatementStatus[status] = (byStatementStatus[status] ?? 0) + 1;
        answered++;
        resolve();
      });
    });
    request.on('error', (error) => {
      failures[error.code ?? error.message] = (failures[error.code ?? error.message] ?? 0) + 1;
      resolve();
    });
  }));
}

// Held: every long-poll is a wait on the server (or WAIT is running out).
let gauge = 0;
while (performance.now() - t0 < (WAIT - 5) * 1000) {
  gauge = await waitsGauge();
  if (gauge >= COUNT) break;
  await sleep(100);
}
const heldAfterMs = Math.round(performance.now() - t0);
const held = { ...processStatus(), waits: gauge, answered_before_cancel: answered };

const c0 = performance.now();
const cancel = await fetch(`${URL_BASE}/v1/statements/${ID}/cancel`, { method: 'POST' });
const cancelBody = await cancel.json();
await Promise.all(polls);
const allReturnedMs = Math.round(performance.now() - c0);
const answeredState = processStatus();
agent.destroy();
// The server sees the connections close on its next turns: "closed" is
// read once its descriptors are back to idle's (or after 15 s).
const d0 = performance.now();
while (processStatus().fds > idle.fds + 2 && performance.now() - d0 < 15000) await sleep(50);
const closedAfterMs = Math.round(performance.now() - d0);
const closed = { ...processStatus(), waits: await waitsGauge() };

console.log('JSON ' + JSON.stringify({
  count: COUNT,
  wait_seconds: WAIT,
  idle,
  held_after_ms: heldAfterMs,
  held,
  cancel: { http_status: cancel.status, status: cancelBody.status },
  all_returned_ms_after_cancel: allReturnedMs,
  returned: answered,
  by_http_status: byHttpStatus,
  by_statement_status: byStatementStatus,
  failures,
  metrics_failure: metricsFailure,
  answered: answeredState,
  closed_after_ms: closedAfterMs,
  closed,
}));
