// tests/snowflake/catalog.mjs - the fixed data the SQL API double serves:
// column definitions (rowType entries), the encoders of values into the
// strings of Snowflake's "jsonv2" result format, and a small catalog of two
// schemas with tables and a view, among them TYPED_VALUES, one column per
// Snowflake type the driver decodes.
//
// The encodings follow Snowflake's "Handling responses" documentation of the
// SQL API (every non-null value is a JSON string):
//   FIXED          the decimal number, with `scale` digits after the point
//   REAL           the number ("1.5", "-2.5e-10"), "inf", "-inf", "NaN"
//   TEXT           the text;  BINARY  hex (upper case);  BOOLEAN "true"/"false"
//   DATE           days since 1970-01-01 ("19723" = 2024-01-01)
//   TIME           seconds since midnight, 9 decimals ("45296.123456789")
//   TIMESTAMP_NTZ  seconds since the epoch, 9 decimals (wall clock as UTC)
//   TIMESTAMP_LTZ  seconds since the epoch, 9 decimals (the instant)
//   TIMESTAMP_TZ   seconds since the epoch of the instant, 9 decimals, a space,
//                  then the offset in minutes plus 1440 ("... 1500" = +01:00)
//   VARIANT/OBJECT/ARRAY  the JSON text, pretty-printed as Snowflake does
//   NULL           JSON null (or the string "null" when nullable=false)

// --- column definitions ------------------------------------------------------
// Internal type names are upper case; the server writes them in the case it is
// configured for (real Snowflake answers lower case: "fixed", "text").
function column(name, type, { precision = null, scale = null, length = null, byteLength = null,
  nullable = true } = {}) {
  return { name, type, precision, scale, length, byteLength, nullable, collation: null };
}
export const col = {
  fixed: (name, precision = 38, scale = 0, opts) => column(name, 'FIXED', { precision, scale, ...opts }),
  real: (name, opts) => column(name, 'REAL', opts),
  text: (name, length = 16777216, opts) => column(name, 'TEXT', { length, byteLength: length * 4, ...opts }),
  boolean: (name, opts) => column(name, 'BOOLEAN', opts),
  date: (name, opts) => column(name, 'DATE', opts),
  time: (name, opts) => column(name, 'TIME', { precision: 0, scale: 9, ...opts }),
  timestampNtz: (name, opts) => column(name, 'TIMESTAMP_NTZ', { precision: 0, scale: 9, ...opts }),
  timestampLtz: (name, opts) => column(name, 'TIMESTAMP_LTZ', { precision: 0, scale: 9, ...opts }),
  timestampTz: (name, opts) => column(name, 'TIMESTAMP_TZ', { precision: 0, scale: 9, ...opts }),
  variant: (name, opts) => column(name, 'VARIANT', opts),
  object: (name, opts) => column(name, 'OBJECT', opts),
  array: (name, opts) => column(name, 'ARRAY', opts),
  binary: (name, length = 8388608, opts) => column(name, 'BINARY', { length, byteLength: length, ...opts }),
};

// --- encoders ------------------------------------------------------------------
// Each takes a readable literal and returns the jsonv2 string; they throw on
// text they cannot read (the engine turns that into a SQL error).

// A decimal literal rescaled to exactly `scale` digits after the point
// (truncating extra digits), as exact text.
export function encodeFixed(text, scale = 0) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`not a number: ${text}`);
  const intPart = (m[2] || '0').replace(/^0+(?=\d)/, '');
  const frac = (m[3] ?? '').padEnd(scale, '0').slice(0, scale);
  const zero = /^0*$/.test(intPart + frac);
  const sign = m[1] === '-' && !zero ? '-' : '';
  return scale > 0 ? `${sign}${intPart}.${frac}` : `${sign}${intPart}`;
}

export function encodeReal(value) {
  const n = typeof value === 'number' ? value : Number(String(value).trim().replace(/^[+-]?inf(inity)?$/i,
    (s) => (s.startsWith('-') ? '-Infinity' : 'Infinity')));
  if (Number.isNaN(n)) {
    if (!/^nan$/i.test(String(value).trim())) throw new Error(`not a number: ${value}`);
    return 'NaN';
  }
  if (n === Infinity) return 'inf';
  if (n === -Infinity) return '-inf';
  return String(n);
}

export function encodeBoolean(value) {
  const t = String(value).trim().toLowerCase();
  if (['true', 't', 'yes', 'y', 'on', '1'].includes(t)) return 'true';
  if (['false', 'f', 'no', 'n', 'off', '0'].includes(t)) return 'false';
  throw new Error(`not a boolean: ${value}`);
}

const DAY_MS = 86400000;

function daysSinceEpoch(y, mo, d) {
  const ms = Date.UTC(y, mo - 1, d);
  const check = new Date(ms);
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) throw new Error('no such date');
  return Math.round(ms / DAY_MS);
}

// 'YYYY-MM-DD' -> "days"
export function encodeDate(text) {
  const m = /^(-?\d{4})-(\d{2})-(\d{2})$/.exec(String(text).trim());
  if (!m) throw new Error(`not a date: ${text}`);
  return String(daysSinceEpoch(+m[1], +m[2], +m[3]));
}

// Seconds (a BigInt count) and a 9-digit fraction as "S.FFFFFFFFF".
function secondsText(seconds, fraction) {
  return `${seconds}.${fraction}`;
}

function parseClock(text) {
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/.exec(text);
  if (!m || +m[1] > 23 || +m[2] > 59 || +(m[3] ?? 0) > 59) throw new Error(`not a time: ${text}`);
  return { seconds: (+m[1]) * 3600 + (+m[2]) * 60 + (+(m[3] ?? 0)), fraction: (m[4] ?? '').padEnd(9, '0') };
}

// 'HH:MM:SS[.fffffffff]' -> "seconds.fffffffff"
export function encodeTime(text) {
  const { seconds, fraction } = parseClock(String(text).trim());
  return secondsText(seconds, fraction);
}

// 'YYYY-MM-DD[ T]HH:MM:SS[.f] [+HH:MM]' -> { seconds (UTC instant), fraction,
// offsetMinutes } (offset null when the text has none).
function parseTimestamp(text) {
  const m = /^(-?\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?))?\s*(Z|[+-]\d{2}:?\d{2})?$/
    .exec(String(text).trim());
  if (!m) throw new Error(`not a timestamp: ${text}`);
  const [y, mo, d] = m[1].split(/(?<=\d)-/).map(Number);
  const clock = parseClock(m[2] ?? '00:00:00');
  let offsetMinutes = null;
  if (m[3]) {
    if (m[3] === 'Z') offsetMinutes = 0;
    else {
      const digits = m[3].replace(':', '');
      offsetMinutes = (digits[0] === '-' ? -1 : 1) * (+digits.slice(1, 3) * 60 + +digits.slice(3, 5));
    }
  }
  const seconds = daysSinceEpoch(y, mo, d) * 86400 + clock.seconds - (offsetMinutes ?? 0) * 60;
  if (seconds < 0 && clock.fraction !== '000000000') {
    throw new Error('fractional timestamps before 1970 are not served by the double');
  }
  return { seconds, fraction: clock.fraction, offsetMinutes };
}

export function encodeTimestampNtz(text) {
  const t = parseTimestamp(text);
  if (t.offsetMinutes !== null) throw new Error('TIMESTAMP_NTZ has no offset');
  return secondsText(t.seconds, t.fraction);
}

// The session time zone of the double is UTC: a timestamp without an offset
// is read as UTC.
export function encodeTimestampLtz(text) {
  const t = parseTimestamp(text);
  return secondsText(t.seconds, t.fraction);
}

export function encodeTimestampTz(text) {
  const t = parseTimestamp(text);
  return `${secondsText(t.seconds, t.fraction)} ${(t.offsetMinutes ?? 0) + 1440}`;
}

// JSON text -> Snowflake's pretty-printed form (two-space indent).
export function encodeJson(text, want) {
  const value = typeof text === 'string' ? JSON.parse(text) : text;
  if (want === 'OBJECT' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw new Error('not an object');
  }
  if (want === 'ARRAY' && !Array.isArray(value)) throw new Error('not an array');
  return JSON.stringify(value, null, 2);
}

export function encodeBinary(hex) {
  const t = String(hex).trim();
  if (!/^([0-9a-fA-F]{2})*$/.test(t)) throw new Error(`not hex: ${hex}`);
  return t.toUpperCase();
}

export const encoders = {
  FIXED: (v, c) => encodeFixed(v, c.scale ?? 0),
  REAL: encodeReal,
  TEXT: (v) => String(v),
  BOOLEAN: encodeBoolean,
  DATE: encodeDate,
  TIME: encodeTime,
  TIMESTAMP_NTZ: encodeTimestampNtz,
  TIMESTAMP_LTZ: encodeTimestampLtz,
  TIMESTAMP_TZ: encodeTimestampTz,
  VARIANT: (v) => encodeJson(v, 'VARIANT'),
  OBJECT: (v) => encodeJson(v, 'OBJECT'),
  ARRAY: (v) => encodeJson(v, 'ARRAY'),
  BINARY: encodeBinary,
};

// A table written with readable literals -> encoded rows.
function table(kind, columns, readableRows, comment = null) {
  const rows = readableRows.map((row) => row.map((v, i) => (v === null ? null : encoders[columns[i].type](v, columns[i]))));
  return { kind, columns, rows, comment };
}

// --- TYPED_VALUES: one column per type, four rows -----------------------------
// Row 1 ordinary values, row 2 extremes, row 3 special values, row 4 NULLs.
export const TYPED_VALUES = table('TABLE', [
  col.fixed('ID', 38, 0, { nullable: false }),
  col.fixed('NUM_SMALL', 9, 0),
  col.fixed('NUM_SCALE2', 10, 2),
  col.fixed('NUM_BIG', 38, 0),
  col.fixed('NUM_BIG_SCALE', 38, 10),
  col.real('REAL_VALUE'),
  col.text('TEXT_VALUE', 200),
  col.boolean('BOOL_VALUE'),
  col.date('DATE_VALUE'),
  col.time('TIME_VALUE'),
  col.timestampNtz('TS_NTZ'),
  col.timestampLtz('TS_LTZ'),
  col.timestampTz('TS_TZ'),
  col.variant('VARIANT_VALUE'),
  col.object('OBJECT_VALUE'),
  col.array('ARRAY_VALUE'),
  col.binary('BINARY_VALUE', 16),
], [
  [1, '42', '12.34', '9007199254740993', '0.5', 1.5, 'hello', 'true', '2024-01-01', '12:34:56.123456789',
    '2024-01-01 12:34:56.123456789', '2024-01-01 12:34:56.123456789', '2024-01-01 12:34:56.123456789 +01:00',
    '{"a":1,"b":[true,null],"c":"x"}', '{"k":"v"}', '[1,2,3]', '48656C6C6F'],
  [2, '-2147483648', '-0.5', '99999999999999999999999999999999999999', '-1234567890123456789012345678.0123456789',
    -2.5e-10, 'héllo wörld ✓ 日本語 😀 "quoted" \\ back\nnew line\ttab', 'false', '1969-12-31', '00:00:00',
    '1969-12-31 00:00:00', '2000-02-29 23:59:59.999999999', '2024-07-01 08:00:00.5 -08:00', '"just a string"',
    '{}', '[]', '00FF'],
  [3, '0', '0.00', '-99999999999999999999999999999999999999', '0.0000000001', 'inf', '', 'true', '1970-01-01',
    '23:59:59.999999999', '1970-01-01 00:00:00', '1970-01-01 00:00:00', '2024-01-01 00:00:00 +05:45', '42',
    '{"nested":{"deep":[1,{"x":null}]}}', '["a",{"b":2},null]', ''],
  [4, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null],
]);

// Two more REAL specials, in their own table so TYPED_VALUES stays four rows.
export const REAL_SPECIALS = table('TABLE', [col.fixed('ID', 38, 0, { nullable: false }), col.real('R')],
  [[1, 'inf'], [2, '-inf'], [3, 'NaN'], [4, 0], [5, 1e300], [6, -0.1]]);

export const CITIES = table('TABLE', [
  col.fixed('ID', 38, 0, { nullable: false }), col.text('NAME', 100, { nullable: false }), col.text('COUNTRY', 2),
], [[1, 'Lyon', 'FR'], [2, 'Zürich', 'CH'], [3, 'Osaka', 'JP']], 'cities of the orders');

export const ORDERS = table('TABLE', [
  col.fixed('ID', 38, 0, { nullable: false }), col.fixed('CITY_ID', 38, 0), col.fixed('AMOUNT', 12, 2),
  col.timestampNtz('CREATED_AT'),
], [
  [1, 1, '19.90', '2024-03-01 10:00:00'],
  [2, 1, '250.00', '2024-03-02 11:30:00'],
  [3, 2, '120.50', '2024-03-03 09:15:00'],
  [4, 3, '5.00', '2024-03-04 18:45:30.25'],
  [5, null, null, null],
]);

// The view's rows are the orders over 100.
export const BIG_ORDERS = { ...ORDERS, kind: 'VIEW', rows: ORDERS.rows.filter((r) => r[2] !== null && Number(r[2]) > 100),
  text: 'CREATE VIEW BIG_ORDERS AS SELECT * FROM ORDERS WHERE AMOUNT > 100', comment: null };

// schema -> table name -> table. INFORMATION_SCHEMA is built by the engine.
export const SCHEMAS = {
  PUBLIC: { TYPED_VALUES, REAL_SPECIALS },
  SALES: { CITIES, ORDERS, BIG_ORDERS },
};

export const DEFAULT_DATABASE = 'QREG_DB';
export const DEFAULT_SCHEMA = 'PUBLIC';
// created_on of every catalog object: 2024-01-01 00:00:00 UTC.
export const CREATED_ON = '1704067200.000000000';

// The type as DESCRIBE and INFORMATION_SCHEMA name it.
export function sqlTypeName(c, withParams) {
  switch (c.type) {
    case 'FIXED': return withParams ? `NUMBER(${c.precision},${c.scale})` : 'NUMBER';
    case 'REAL': return 'FLOAT';
    case 'TEXT': return withParams ? `VARCHAR(${c.length})` : 'TEXT';
    case 'BINARY': return withParams ? `BINARY(${c.length})` : 'BINARY';
    case 'TIME': case 'TIMESTAMP_NTZ': case 'TIMESTAMP_LTZ': case 'TIMESTAMP_TZ':
      return withParams ? `${c.type}(${c.scale})` : c.type;
    default: return c.type;
  }
}
