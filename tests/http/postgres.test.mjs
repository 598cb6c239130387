// tests/http/postgres.test.mjs - one scenario of `qreg serve` on PostgreSQL:
// a private server (initdb + pg_ctl in a temporary directory, as the C
// tests' fixture does; run as the "postgres" or "nobody" user when the test
// runs as root), a plain read-only role, then: a submit answered with rows,
// a CSV stream of a result larger than one page, a long-poll on pg_sleep
// released by the cancel, and every connection closed at the end (also in
// pg_stat_activity). Skipped when no PostgreSQL server binaries are installed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { QREG_BIN, startServer, parseCsv, sleep } from './lib.mjs';

function findBindir() {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = path.join(root, v, 'bin');
    if (existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'))) return dir;
  }
  return null;
}

function userIds(name) {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', name]).toString()),
      gid: Number(execFileSync('id', ['-g', name]).toString()),
    };
  } catch {
    return null;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

const bindir = findBindir();
let pg = null;

before(async () => {
  if (!bindir) return;
  const dir = mkdtempSync('/tmp/qreg-http-pg-');
  const data = path.join(dir, 'data');
  const sock = path.join(dir, 'sock');
  mkdirSync(sock);
  let ids = {};
  if (process.getuid() === 0) {
    const user = userIds('postgres') ?? userIds('nobody');
    chownSync(dir, user.uid, user.gid);
    chownSync(sock, user.uid, user.gid);
    ids = user;
  }
  const run = (program, args) => execFileSync(path.join(bindir, program), args, { ...ids, stdio: 'pipe' });
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'qreg_test', '--no-sync', '-E', 'UTF8', '--locale=C']);
  let port;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      run('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log'), '-o',
        `-F -p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c fsync=off`]);
      break;
    } catch (e) {
      if (attempt >= 4) throw e;
    }
  }
  pg = {
    dir, data, port, run,
    admin: `postgresql://qreg_test@127.0.0.1:${port}/postgres`,
    reader: `postgresql://qreg_reader@127.0.0.1:${port}/postgres`,
    stop() {
      try { run('pg_ctl', ['stop', '-m', 'immediate', '-D', data]); } catch { /* already gone */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const adminQuery = (sql) => execFileSync(QREG_BIN, ['query', '--db', pg.admin, '--allow-writes', sql], { stdio: 'pipe' });
  adminQuery('CREATE ROLE qreg_reader LOGIN');
  adminQuery('CREATE TABLE numbers AS SELECT g AS n, md5(g::text) AS label FROM generate_series(1, 2500) g');
  adminQuery('GRANT SELECT ON numbers TO qreg_reader');
});

after(() => { if (pg) pg.stop(); });

test('PostgreSQL: rows, a CSV stream of several pages, a long-poll released by cancel, sessions closed', { skip: !bindir && 'no PostgreSQL server binaries' }, async () => {
  const server = await startServer(['--db', pg.reader]);
  let stopped = false;
  try {
    const ready = await server.json('/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.driver, 'postgres');

    const r = await server.post('/v1/statements', { sql: 'SELECT n, label FROM numbers ORDER BY n', wait_seconds: 30 });
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'succeeded');
    assert.equal(r.body.row_count, 2500);
    assert.match(r.body.backend_id, /^\d+$/, 'the backend pid');
    assert.deepEqual(r.body.result.rows[0], [1, 'c4ca4238a0b923820dcc509a6f75849b']);

    const csv = parseCsv(await (await server.fetch(`/v1/statements/${r.body.id}/result`, { headers: { accept: 'text/csv' } })).text());
    assert.deepEqual(csv[0].map((f) => f.value), ['n', 'label']);
    assert.equal(csv.length, 2501);
    assert.equal(csv[2500][0].value, '2500');

    const sleeping = await server.post('/v1/statements', { sql: 'SELECT pg_sleep(60)', wait_seconds: 0 });
    assert.equal(sleeping.status, 202);
    const poll = server.json(`/v1/statements/${sleeping.body.id}?wait_seconds=60`);
    await sleep(300);
    const canceled = await server.json(`/v1/statements/${sleeping.body.id}/cancel`, { method: 'POST' });
    assert.equal(canceled.body.status, 'canceled');
    assert.equal((await poll).body.status, 'canceled');

    // Read-only: a write fails in the database.
    const write = await server.post('/v1/statements', { sql: 'DELETE FROM numbers', wait_seconds: 30 });
    assert.equal(write.body.status, 'failed');

    const { code, stderr } = await server.stop();
    stopped = true;
    assert.equal(code, 0, stderr);
    const m = /qreg: closed: connections opened=(\d+) closed=(\d+)/.exec(stderr);
    assert.ok(m && Number(m[1]) > 0 && m[1] === m[2], stderr);
    // The superuser reads pg_stat_activity whole; a read-only registry on a
    // privileged role needs the named opt-in (docs/security.md).
    const sessions = execFileSync(QREG_BIN, ['query', '--db', `${pg.admin}?allow_privileged_role=true`, '--json',
      "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'qreg-serve'"]).toString();
    assert.equal(JSON.parse(sessions).rows[0][0], 0, 'no session of qreg serve is left');
  } finally {
    if (!stopped) await server.stop();
  }
});
