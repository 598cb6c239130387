// tests/console/console.test.mjs - the console of `qreg serve` (GET /) in a
// real headless browser: Debian's chromium driven by playwright-core, against
// a `qreg serve` with a token file on a temporary SQLite database (the items
// table of ../http/lib.mjs, made with `qreg query --allow-writes`).
//
// What a user would notice: the 401 message without a token and with a wrong
// one; the token kept in sessionStorage only; a query's rows in the table,
// NULL shown apart from empty text, paging with Prev/Next; a long query seen
// running, canceled with its button, seen canceled; hostile values and column
// names shown as text (no element made, no dialog); no script error and no
// Content-Security-Policy refusal. A screenshot goes to
// QREG_CONSOLE_SCREENSHOT (default build/console.png).
//
// Waits are bounded only to catch hangs; nothing asserts how long anything took.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { LONG_SQL, makeDatabase, startServer, tokenFile } from '../http/lib.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.QREG_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = process.env.QREG_CONSOLE_SCREENSHOT ?? path.join(repoRoot, 'build', 'console.png');
const TOKEN = 'console-browser-token-4f1c9a7e';
const HANG_MS = 60000; // a wait longer than this is a hang (sanitizer builds are slow)
const PAGE_SQL = 'SELECT id, name, note FROM items WHERE id <= 75 ORDER BY id';
const HOSTILE = '<img src=x onerror=alert(1)>';
const HOSTILE_COLUMN = '<img src=y onerror=alert(2)>';
const HOSTILE_SCRIPT = '<script>alert(3)</script>';

let db;
let server;
let browser;
let page;
const dialogs = [];
const pageErrors = [];
const consoleErrors = [];
const requests = [];

// The server child never outlives the test, whatever fails, even when the
// test is killed for hanging (playwright-core kills its browser on exit).
function killServer() {
  if (server && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
}
process.on('exit', killServer);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => { killServer(); process.exit(1); });
}

before(async () => {
  db = makeDatabase();
  server = await startServer(['--db', db.url, '--token-file', tokenFile(db.dir, [TOKEN])]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    timeout: HANG_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(HANG_MS);
  page.on('dialog', (dialog) => { dialogs.push(dialog.message()); dialog.dismiss().catch(() => {}); });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()); });
  page.on('request', (request) => requests.push(request.url()));
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    if (server) {
      const { code, stderr } = await server.stop();
      assert.equal(code, 0, stderr);
    }
    db?.remove();
  }
});

// Waits until the text of selector matches pattern (a RegExp); returns it.
async function waitText(selector, pattern) {
  await page.waitForFunction(([sel, source, flags]) => {
    const node = document.querySelector(sel);
    return node !== null && new RegExp(source, flags).test(node.textContent);
  }, [selector, pattern.source, pattern.flags], { timeout: HANG_MS });
  return page.textContent(selector);
}

// The result table as text: the header cells and the rows' cells (the row
// number column left out), with the class of each value cell.
async function resultTable() {
  return page.evaluate(() => {
    const table = document.getElementById('result');
    const header = [...table.tHead.rows[0].cells].slice(1).map((th) => th.textContent);
    const rows = [...table.tBodies[0].rows].map((tr) => [...tr.cells].slice(1)
      .map((td) => ({ text: td.textContent, null: td.classList.contains('null') })));
    return { header, rows };
  });
}

async function submit(sql) {
  await page.fill('#sql', sql);
  await page.click('#run');
}

test('without a token, and with a wrong one, the page says 401', async () => {
  const response = await page.goto(server.url + '/');
  assert.equal(response.status(), 200);
  assert.equal(await page.title(), 'qreg console');
  const message = await waitText('#auth-message', /401/);
  assert.match(message, /needs a bearer token/);
  await page.fill('#token', 'wrong-token-0123456789abcdef');
  await page.click('#token-use');
  assert.match(await waitText('#auth-message', /refused this token/), /401 Unauthorized/);
  assert.equal(await page.isVisible('#auth-message'), true);
});

test('the right token: the message goes, the token stays in this tab only', async () => {
  await page.fill('#token', TOKEN);
  await page.click('#token-use');
  await page.waitForSelector('#auth-message', { state: 'hidden' });
  await waitText('#token-state', /token set/);
  const storage = await page.evaluate(() => ({
    session: sessionStorage.getItem('qreg.token'),
    local: localStorage.length,
    url: location.href,
    input: document.getElementById('token').value,
  }));
  assert.equal(storage.session, TOKEN);
  assert.equal(storage.local, 0, 'nothing in localStorage');
  assert.equal(storage.url, server.url + '/', 'the URL is unchanged');
  assert.equal(storage.input, '', 'the token field is emptied once used');
});

test('a query: its rows in the table, NULL apart from empty text, Next and Prev', async () => {
  await submit(PAGE_SQL);
  await waitText('#page-info', /^rows 1\u201350 of 75$/);
  const first = await resultTable();
  assert.deepEqual(first.header, ['id', 'name', 'note']);
  assert.equal(first.rows.length, 50);
  assert.deepEqual(first.rows[0], [
    { text: '1', null: false }, { text: 'item 1', null: false }, { text: 'NULL', null: true }]);
  assert.deepEqual(first.rows[1], [
    { text: '2', null: false }, { text: 'item 2', null: false }, { text: 'line1\nline2', null: false }]);
  assert.deepEqual(first.rows[9][2], { text: '', null: false }, 'empty text is not NULL');
  assert.equal(first.rows[6][1].text, 'item "7", with comma');
  assert.equal(await page.isDisabled('#prev'), true);

  await page.click('#next');
  await waitText('#page-info', /^rows 51\u201375 of 75$/);
  const second = await resultTable();
  assert.equal(second.rows.length, 25);
  assert.equal(second.rows[0][0].text, '51');
  assert.equal(second.rows[24][0].text, '75');
  assert.equal(await page.isDisabled('#next'), true);

  await page.click('#prev');
  await waitText('#page-info', /^rows 1\u201350 of 75$/);
  assert.equal((await resultTable()).rows[0][0].text, '1');

  // The list shows it, succeeded, with its SQL and an elapsed time.
  const id = await page.textContent('#detail-id');
  const row = `#statements tr[data-id="${id}"]`;
  await page.waitForSelector(`${row}[data-status="succeeded"]`);
  assert.equal(await page.textContent(`${row} td.sql`), PAGE_SQL);
  assert.match(await page.textContent(`${row} td.elapsed`), /^\d+(\.\d)? (ms|s)$/);
  assert.equal(await page.locator(`${row} button`).count(), 0, 'no Cancel for a finished query');
});

test('hostile values and column names are shown as text', async () => {
  const sql = `SELECT '${HOSTILE}' AS "${HOSTILE_COLUMN}", '${HOSTILE_SCRIPT}' AS s`;
  await submit(sql);
  await waitText('#page-info', /^rows 1\u20131 of 1$/);
  const table = await resultTable();
  assert.deepEqual(table.header, [HOSTILE_COLUMN, 's']);
  assert.deepEqual(table.rows, [[{ text: HOSTILE, null: false }, { text: HOSTILE_SCRIPT, null: false }]]);
  const id = await page.textContent('#detail-id');
  await page.waitForSelector(`#statements tr[data-id="${id}"]`);
  assert.equal(await page.textContent(`#statements tr[data-id="${id}"] td.sql`), sql);
  assert.equal(await page.textContent('#detail-sql'), sql);
  // No element was made of them anywhere on the page.
  assert.equal(await page.locator('img').count(), 0, 'no img element');
  assert.equal(await page.locator('body script').count(), 1, 'only the page\'s own script');
});

test('a long query: seen running, canceled with its button, seen canceled', async () => {
  await submit(LONG_SQL);
  await page.waitForFunction((sql) => document.getElementById('detail-sql').textContent === sql, LONG_SQL);
  const id = await page.textContent('#detail-id');
  assert.match(id, /^[0-9a-f-]{36}$/);
  const row = `#statements tr[data-id="${id}"]`;
  await page.waitForSelector(`${row}[data-status="running"]`);
  assert.equal(await page.textContent(`${row} td.status`), 'running');
  await page.click(`${row} button.cancel`);
  await page.waitForSelector(`${row}[data-status="canceled"]`);
  assert.equal(await page.textContent(`${row} td.status`), 'canceled');
  assert.equal(await page.locator(`${row} button`).count(), 0, 'the Cancel button is gone');
  await waitText('#detail-status', /^canceled$/);
  assert.match(await page.textContent('#detail-error'), /^canceled: /);
  // The server agrees.
  const snapshot = await (await server.fetch(`/v1/statements/${id}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  })).json();
  assert.equal(snapshot.status, 'canceled');
});

test('a refused submission shows the problem; the next one clears it', async () => {
  await submit('   ');
  assert.match(await waitText('#submit-error', /400/), /^Invalid argument \(400\): sql: /);
  assert.equal(await page.isVisible('#submit-error'), true);
  await submit('SELECT 1 AS one');
  await waitText('#page-info', /^rows 1\u20131 of 1$/);
  await page.waitForSelector('#submit-error', { state: 'hidden' });
});

test('screenshot, and nothing went wrong in the page', async () => {
  // The first query again, for a screenshot that shows rows.
  await page.click(`#statements tr td.sql >> text="${PAGE_SQL}"`);
  await waitText('#page-info', /^rows 1\u201350 of 75$/);
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  assert.deepEqual(dialogs, [], 'no dialog opened');
  assert.deepEqual(pageErrors, [], 'no script error');
  // The only console errors are the 401 and 400 answers of the steps above
  // (Chromium logs every failed fetch); a CSP refusal would show here too.
  const unexpected = consoleErrors.filter((text) => !/status of (401|400)/.test(text));
  assert.deepEqual(unexpected, [], 'no unexpected console error');
  // Every request went to the server, none to what a hostile value names,
  // and none carried the token in its URL.
  for (const url of requests) {
    assert.ok(url.startsWith(server.url + '/'), url);
    assert.ok(!url.includes(TOKEN), 'no token in a URL');
    assert.ok(!/\/(x|y)$/.test(url), `a hostile value was loaded: ${url}`);
  }
  assert.ok(requests.some((url) => url.includes('/v1/statements?')), 'the list was polled');
  assert.doesNotMatch(server.stderr(), new RegExp(TOKEN), 'no token in the log');
});
