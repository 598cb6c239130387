// tests/http/console.test.mjs - GET / of `qreg serve` without a browser: the
// page is src/http/console.html byte for byte, served without a token (even
// with a token file) under its security headers; the Content-Security-Policy
// admits exactly the page's inline script and style by their SHA-256, and the
// page itself loads nothing from elsewhere. tests/console/ runs the page in
// a real browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDatabase, startServer, tokenFile } from './lib.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PAGE = readFileSync(path.join(repoRoot, 'src', 'http', 'console.html'));
const TOKEN = 'console-test-token-0123456789';

let db;
let server;

before(async () => {
  db = makeDatabase();
  server = await startServer(['--db', db.url, '--token-file', tokenFile(db.dir, [TOKEN])]);
});

after(async () => {
  const { code, stderr } = await server.stop();
  db.remove();
  assert.equal(code, 0, stderr);
});

// The CSP source of the one element of a tag at the start of a line.
function hashSource(tag) {
  const text = PAGE.toString('utf8');
  const all = [...text.matchAll(new RegExp(`\\n<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))];
  assert.equal(all.length, 1, `one <${tag}> element in console.html`);
  assert.equal(text.split(`<${tag}`).length, 2, `no other <${tag} in console.html`);
  return `'sha256-${createHash('sha256').update(all[0][1], 'utf8').digest('base64')}'`;
}

test('GET / serves the console page without a token, with its security headers', async () => {
  const r = await server.json('/'); // checked against docs/openapi.json
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.ok(Buffer.from(r.body, 'utf8').equals(PAGE), 'the page is src/http/console.html');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const csp = Object.fromEntries(r.headers.get('content-security-policy').split(';').map((d) => {
    const [name, ...values] = d.trim().split(/\s+/);
    return [name, values.join(' ')];
  }));
  assert.deepEqual(csp, {
    'default-src': "'none'",
    'script-src': hashSource('script'),
    'style-src': hashSource('style'),
    'connect-src': "'self'",
    'img-src': "'self' data:",
    'base-uri': "'none'",
    'form-action': "'none'",
    'frame-ancestors': "'none'",
  });
  // Nothing from elsewhere: no external script, style, font or image.
  assert.doesNotMatch(r.body, /\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
  assert.doesNotMatch(r.body, /@import|url\(/i);
  const script = /\n<script>([\s\S]*?)<\/script>/.exec(r.body)[1];
  assert.doesNotMatch(script, /localStorage/, 'the token stays in sessionStorage');
  assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'values go in as text only');
});

test('HEAD / answers the headers; other methods get 405; the API still wants the token', async () => {
  const head = await server.fetch('/', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(await head.text(), '');
  const post = await server.json('/', { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  const list = await server.json('/v1/statements');
  assert.equal(list.status, 401);
  const authorized = await server.json('/v1/statements', { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(authorized.status, 200);
  assert.match(server.stderr(), /"GET \/" 200 /);
});
