// tests/snowflake/jwt.mjs - key-pair JWTs the way Snowflake documents them
// ("Using key-pair authentication" of the SQL API): the public key's
// fingerprint, the verification the double applies to every request, and the
// signing the self-test (and any other test in Node) uses to make a token.
//
// Claims, as Snowflake builds them:
//   iss = ACCOUNT.USER.SHA256:<base64 of SHA-256 of the public key's DER
//         (SubjectPublicKeyInfo)>
//   sub = ACCOUNT.USER
//   iat = issue time, exp = expiry (seconds); exp at most one hour after iat.
// ACCOUNT is the account identifier in upper case without any region part
// (no '.'); USER is the login name in upper case.
import { createHash, createPublicKey, createPrivateKey, sign, verify } from 'node:crypto';

const MAX_LIFETIME_SECONDS = 3600;
const CLOCK_SKEW_SECONDS = 60;

const base64url = (buffer) => Buffer.from(buffer).toString('base64url');

// "SHA256:<base64>" of a public key (a KeyObject or PEM text).
export function publicKeyFingerprint(publicKey) {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const der = key.export({ type: 'spki', format: 'der' });
  return 'SHA256:' + createHash('sha256').update(der).digest('base64');
}

// The account part of sub/iss as Snowflake's key-pair documentation prepares
// it: everything from the first '.' on dropped (the region of an account
// locator, "xy12345.us-east-1" -> "XY12345"), except for a ".global"
// (replication) identifier, which is cut at its first '-'; then upper case.
export function normaliseAccount(account) {
  const cut = account.includes('.global') ? '-' : '.';
  const at = account.indexOf(cut);
  return (at > 0 ? account.slice(0, at) : account).toUpperCase();
}

// A signed token for account/user with privateKey (PEM or KeyObject).
// claimsOverride replaces claims (tests make bad tokens with it);
// headerOverride the JOSE header.
export function signJwt({ account, user, privateKey, nowSeconds, lifetimeSeconds = 3540,
  claimsOverride = {}, headerOverride = {} }) {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const now = nowSeconds ?? Math.floor(Date.now() / 1000);
  const qualified = `${normaliseAccount(account)}.${user.toUpperCase()}`;
  const claims = {
    iss: `${qualified}.${publicKeyFingerprint(createPublicKey(key))}`,
    sub: qualified,
    iat: now,
    exp: now + lifetimeSeconds,
    ...claimsOverride,
  };
  const header = { alg: 'RS256', typ: 'JWT', ...headerOverride };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('RSA-SHA256', Buffer.from(signingInput), key);
  return `${signingInput}.${base64url(signature)}`;
}

// Verifies token against publicKey (KeyObject). Returns { ok: true, account,
// user } or { ok: false, reason } — the reason names what is wrong, never the
// token. expected: optional { account, user } the claims must name;
// maxAgeSeconds: optional bound on now - iat (a double-only knob that makes
// token renewal observable in short tests).
export function verifyJwt(token, publicKey, { nowSeconds, expected = {}, maxAgeSeconds } = {}) {
  const now = nowSeconds ?? Math.floor(Date.now() / 1000);
  const parts = String(token).split('.');
  if (parts.length !== 3) return { ok: false, reason: 'not a JWS compact token' };
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'header or claims are not base64url JSON' };
  }
  if (header === null || typeof header !== 'object' || header.alg !== 'RS256') {
    return { ok: false, reason: 'alg is not RS256' };
  }
  const signature = Buffer.from(parts[2], 'base64url');
  const signedOk = signature.length > 0 &&
    verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, signature);
  if (!signedOk) return { ok: false, reason: 'signature does not verify with the registered public key' };
  if (claims === null || typeof claims !== 'object') return { ok: false, reason: 'claims are not an object' };
  const { iss, sub, iat, exp } = claims;
  if (typeof iss !== 'string' || typeof sub !== 'string') return { ok: false, reason: 'iss or sub missing' };
  // NumericDate (RFC 7519): seconds, possibly fractional. A time in
  // milliseconds is caught below as an iat in the future.
  if (!Number.isFinite(iat) || !Number.isFinite(exp)) return { ok: false, reason: 'iat or exp missing or not numbers' };
  const dot = sub.indexOf('.');
  if (dot <= 0 || dot === sub.length - 1) return { ok: false, reason: 'sub is not ACCOUNT.USER' };
  if (sub !== sub.toUpperCase()) return { ok: false, reason: 'sub is not upper case' };
  const account = sub.slice(0, dot);
  const user = sub.slice(dot + 1);
  if (iss !== `${sub}.${publicKeyFingerprint(publicKey)}`) {
    return { ok: false, reason: 'iss is not sub + ".SHA256:" + fingerprint of the registered public key' };
  }
  if (expected.account && account !== normaliseAccount(expected.account)) return { ok: false, reason: 'wrong account' };
  if (expected.user && user !== expected.user.toUpperCase()) return { ok: false, reason: 'wrong user' };
  if (iat > now + CLOCK_SKEW_SECONDS) return { ok: false, reason: 'iat is in the future' };
  if (exp <= now) return { ok: false, reason: 'token expired' };
  if (exp - iat > MAX_LIFETIME_SECONDS) return { ok: false, reason: 'exp more than one hour after iat' };
  if (maxAgeSeconds !== undefined && now - iat > maxAgeSeconds) {
    return { ok: false, reason: `token older than ${maxAgeSeconds} s (double's maxTokenAgeSeconds)` };
  }
  return { ok: true, account, user };
}
