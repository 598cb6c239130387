// tests/snowflake/engine.mjs - the SQL the double understands: a tokenizer
// and a small parser that turn a statement's text into a plan, deterministic
// and without any state of its own. README.md lists what is recognised.
//
// compile(sql, context) returns
//   { columns, rows, waitSeconds?, write? }   (rows already jsonv2-encoded)
// or throws SqlError { code, sqlState, message } with Snowflake's codes.
// context: { database, schema, warehouse, role, user, bindings,
//            multiStatementCount, maxGeneratorRows }
import {
  col, encoders, SCHEMAS, DEFAULT_DATABASE, DEFAULT_SCHEMA, CREATED_ON, sqlTypeName,
} from './catalog.mjs';

export class SqlError extends Error {
  constructor(code, sqlState, message) {
    super(message);
    this.code = code;
    this.sqlState = sqlState;
  }
}

const compileError = (detail) => new SqlError('001003', '42000', `SQL compilation error:\n${detail}`);
const syntaxError = (token) => compileError(token
  ? `syntax error line 1 at position ${token.pos} unexpected '${token.text}'.`
  : 'syntax error line 1 at position 0 unexpected end of input.');
const noObject = (name) => new SqlError('002003', '42S02',
  `SQL compilation error:\nObject '${name}' does not exist or not authorized.`);
const invalidIdentifier = (token) => new SqlError('000904', '42000',
  `SQL compilation error: error line 1 at position ${token.pos}\ninvalid identifier '${token.text.toUpperCase()}'`);

// --- tokens -------------------------------------------------------------------
// { kind: 'word'|'quoted'|'string'|'number'|'punct'|'bind', text, value, pos, end }
// 'word' values are upper case (Snowflake folds unquoted identifiers).
export function tokenize(sql) {
  const tokens = [];
  let i = 0;
  const push = (kind, text, value, pos) => tokens.push({ kind, text, value, pos, end: i });
  while (i < sql.length) {
    const c = sql[i];
    const rest = sql.slice(i);
    if (/\s/.test(c)) { i++; continue; }
    if (rest.startsWith('--') || rest.startsWith('//')) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
      continue;
    }
    if (rest.startsWith('/*')) {
      const close = sql.indexOf('*/', i + 2);
      if (close < 0) throw compileError('syntax error line 1 at position ' + i + ' unexpected end of comment.');
      i = close + 2;
      continue;
    }
    const start = i;
    if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= sql.length) throw compileError(`syntax error line 1 at position ${start} unterminated string.`);
        if (sql[i] === "'" && sql[i + 1] === "'") { value += "'"; i += 2; continue; }
        if (sql[i] === "'") { i++; break; }
        if (sql[i] === '\\' && i + 1 < sql.length) {
          const e = sql[i + 1];
          value += { n: '\n', t: '\t', r: '\r', 0: '\0', b: '\b', f: '\f' }[e] ?? e;
          i += 2;
          continue;
        }
        value += sql[i++];
      }
      push('string', sql.slice(start, i), value, start);
      continue;
    }
    if (rest.startsWith('$$')) {
      const close = sql.indexOf('$$', i + 2);
      if (close < 0) throw compileError(`syntax error line 1 at position ${start} unterminated string.`);
      i = close + 2;
      push('string', sql.slice(start, i), sql.slice(start + 2, close), start);
      continue;
    }
    if (c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= sql.length) throw compileError(`syntax error line 1 at position ${start} unterminated identifier.`);
        if (sql[i] === '"' && sql[i + 1] === '"') { value += '"'; i += 2; continue; }
        if (sql[i] === '"') { i++; break; }
        value += sql[i++];
      }
      push('quoted', sql.slice(start, i), value, start);
      continue;
    }
    let m = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(rest);
    if (m) { i += m[0].length; push('number', m[0], m[0], start); continue; }
    m = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(rest);
    if (m) { i += m[0].length; push('word', m[0], m[0].toUpperCase(), start); continue; }
    m = /^:(\d+|[A-Za-z_][A-Za-z0-9_]*)/.exec(rest);
    if (m && !rest.startsWith('::')) { i += m[0].length; push('bind', m[0], m[1], start); continue; }
    if (c === '?') { i++; push('bind', '?', null, start); continue; }
    m = /^(::|=>|<>|!=|<=|>=|\|\|)/.exec(rest);
    if (m) { i += 2; push('punct', m[0], m[0], start); continue; }
    if ('(),;.*/+-=<>'.includes(c)) { i++; push('punct', c, c, start); continue; }
    throw compileError(`syntax error line 1 at position ${start} unexpected '${c}'.`);
  }
  return tokens;
}

// Placeholders ('?' in order, or ':N') replaced by literal tokens made from the
// request's bindings ({ "1": { type, value } }).
function bind(tokens, bindings) {
  let positional = 0;
  return tokens.map((t) => {
    if (t.kind !== 'bind') return t;
    const key = t.value === null ? String(++positional) : t.value;
    const b = bindings?.[key];
    if (!b || typeof b !== 'object') {
      throw new SqlError('002049', '42601', `SQL compilation error: error line 1 at position ${t.pos}\nBind variable ${t.text} not set.`);
    }
    if (b.value === null || b.value === undefined) return { ...t, kind: 'word', value: 'NULL' };
    const type = String(b.type ?? 'TEXT').toUpperCase();
    if ((type === 'FIXED' || type === 'REAL') && /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(String(b.value))) {
      return { ...t, kind: 'number', value: String(b.value), boundType: type };
    }
    if (type === 'BOOLEAN') return { ...t, kind: 'word', value: encoders.BOOLEAN(b.value) === 'true' ? 'TRUE' : 'FALSE' };
    return { ...t, kind: 'string', value: String(b.value), boundType: type };
  });
}

// Statements separated by top-level ';' (empty ones ignored).
function splitStatements(tokens) {
  const statements = [[]];
  for (const t of tokens) {
    if (t.kind === 'punct' && t.value === ';') statements.push([]);
    else statements[statements.length - 1].push(t);
  }
  return statements.filter((s) => s.length > 0);
}

// --- a cursor over one statement's tokens ---------------------------------------
class Cursor {
  constructor(tokens, sql) { this.tokens = tokens; this.sql = sql; this.i = 0; }
  peek(ahead = 0) { return this.tokens[this.i + ahead]; }
  next() { return this.tokens[this.i++]; }
  atEnd() { return this.i >= this.tokens.length; }
  isWord(word, ahead = 0) { const t = this.peek(ahead); return t?.kind === 'word' && t.value === word; }
  isPunct(p, ahead = 0) { const t = this.peek(ahead); return t?.kind === 'punct' && t.value === p; }
  acceptWord(word) { if (this.isWord(word)) { this.i++; return true; } return false; }
  acceptPunct(p) { if (this.isPunct(p)) { this.i++; return true; } return false; }
  expectWord(word) { if (!this.acceptWord(word)) throw syntaxError(this.peek()); }
  expectPunct(p) { if (!this.acceptPunct(p)) throw syntaxError(this.peek()); }
  expectEnd() { if (!this.atEnd()) throw syntaxError(this.peek()); }
  identifier() {
    const t = this.next();
    if (t?.kind === 'word') return t.value;
    if (t?.kind === 'quoted') return t.value;
    throw syntaxError(t);
  }
  // a.b.c -> ['A', 'B', 'C']
  qualifiedName() {
    const parts = [this.identifier()];
    while (this.acceptPunct('.')) parts.push(this.identifier());
    return parts;
  }
  // Source text of tokens [from, this.i) as Snowflake names an unaliased column.
  textSince(from) {
    const first = this.tokens[from];
    const last = this.tokens[this.i - 1];
    return this.sql.slice(first.pos, last.end).replace(/\s+/g, ' ').toUpperCase();
  }
}

// --- expressions ----------------------------------------------------------------
// A value: { column (rowType without name), value (encoded string or null) } for
// constants; column references and generator sequences are resolved per row.
const constant = (column, value) => ({ kind: 'constant', column, value });

function fixedConstant(text) {
  const digits = text.replace(/^[+-]/, '');
  const [intPart, frac = ''] = digits.split('.');
  const scale = frac.length;
  const precision = Math.max(1, intPart.replace(/^0+/, '').length + scale);
  return constant(col.fixed('', Math.min(precision, 38), scale, { nullable: false }), encoders.FIXED(text, { scale }));
}

// BigInt arithmetic on FIXED constants: + - * exactly, / with scale 6.
function arithmetic(op, left, right, token) {
  if (left.kind !== 'constant' || right.kind !== 'constant' || left.column.type !== 'FIXED' || right.column.type !== 'FIXED') {
    throw compileError(`arithmetic is only served on number literals by the double (position ${token.pos}).`);
  }
  if (left.value === null || right.value === null) return constant(col.fixed('', 38, 0), null);
  const toScaled = (v, s, to) => BigInt(v.replace('.', '')) * 10n ** BigInt(to - s);
  const ls = left.column.scale;
  const rs = right.column.scale;
  let scale = Math.max(ls, rs);
  let result;
  if (op === '+') result = toScaled(left.value, ls, scale) + toScaled(right.value, rs, scale);
  else if (op === '-') result = toScaled(left.value, ls, scale) - toScaled(right.value, rs, scale);
  else if (op === '*') { scale = ls + rs; result = BigInt(left.value.replace('.', '')) * BigInt(right.value.replace('.', '')); } else {
    if (BigInt(right.value.replace('.', '')) === 0n) throw new SqlError('100051', '22012', 'Division by zero');
    scale = Math.max(ls, 6);
    result = toScaled(left.value, ls, scale + rs) / BigInt(right.value.replace('.', ''));
  }
  const negative = result < 0n;
  let digits = (negative ? -result : result).toString().padStart(scale + 1, '0');
  if (scale > 0) digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return constant(col.fixed('', 38, scale, { nullable: false }), (negative ? '-' : '') + digits);
}

const CAST_TYPES = {
  NUMBER: 'FIXED', DECIMAL: 'FIXED', NUMERIC: 'FIXED', INT: 'FIXED', INTEGER: 'FIXED', BIGINT: 'FIXED',
  SMALLINT: 'FIXED', FLOAT: 'REAL', DOUBLE: 'REAL', REAL: 'REAL', VARCHAR: 'TEXT', TEXT: 'TEXT',
  STRING: 'TEXT', CHAR: 'TEXT', BOOLEAN: 'BOOLEAN', DATE: 'DATE', TIME: 'TIME', TIMESTAMP: 'TIMESTAMP_NTZ',
  DATETIME: 'TIMESTAMP_NTZ', TIMESTAMP_NTZ: 'TIMESTAMP_NTZ', TIMESTAMP_LTZ: 'TIMESTAMP_LTZ',
  TIMESTAMP_TZ: 'TIMESTAMP_TZ', VARIANT: 'VARIANT', OBJECT: 'OBJECT', ARRAY: 'ARRAY', BINARY: 'BINARY',
  VARBINARY: 'BINARY',
};

function cast(value, cur) {
  const typeToken = cur.peek();
  const name = cur.identifier();
  const type = CAST_TYPES[name];
  if (!type) throw compileError(`syntax error line 1 at position ${typeToken.pos} unexpected '${typeToken.text}'.`);
  let precision = 38;
  let scale = 0;
  let length = null;
  if (cur.acceptPunct('(')) {
    const first = cur.next();
    if (cur.acceptPunct(',')) scale = Number(cur.next().value);
    cur.expectPunct(')');
    if (type === 'FIXED') precision = Number(first.value);
    else if (type === 'TEXT' || type === 'BINARY') length = Number(first.value);
  }
  if (value.kind !== 'constant') throw compileError('casts are only served on literals by the double.');
  const makers = {
    FIXED: () => col.fixed('', precision, scale),
    REAL: () => col.real(''),
    TEXT: () => col.text('', length ?? 16777216),
    BOOLEAN: () => col.boolean(''),
    DATE: () => col.date(''),
    TIME: () => col.time(''),
    TIMESTAMP_NTZ: () => col.timestampNtz(''),
    TIMESTAMP_LTZ: () => col.timestampLtz(''),
    TIMESTAMP_TZ: () => col.timestampTz(''),
    VARIANT: () => col.variant(''),
    OBJECT: () => col.object(''),
    ARRAY: () => col.array(''),
    BINARY: () => col.binary('', length ?? 8388608),
  };
  const column = { ...makers[type](), nullable: value.column.nullable };
  if (value.value === null) return constant(column, null);
  let source = value.value;
  if (value.column.type === 'BOOLEAN' && type === 'FIXED') source = source === 'true' ? '1' : '0';
  try {
    return constant(column, encoders[type](source, column));
  } catch {
    const what = { FIXED: 'Numeric value', REAL: 'Numeric value', BOOLEAN: 'Boolean value', DATE: 'Date', TIME: 'Time' }[type] ??
      (type.startsWith('TIMESTAMP') ? 'Timestamp' : `${type} value`);
    throw new SqlError('100038', '22018', `${what} '${source}' is not recognized`);
  }
}

// expr := unary (op unary)* [:: type]   (left to right, no precedence needed
// for the literals the double folds)
function expression(cur, scope) {
  let left = unary(cur, scope);
  for (;;) {
    const t = cur.peek();
    if (t?.kind === 'punct' && ['+', '-', '*', '/'].includes(t.value)) {
      cur.next();
      left = arithmetic(t.value, left, unary(cur, scope), t);
    } else if (t?.kind === 'punct' && t.value === '::') {
      cur.next();
      left = cast(left, cur);
    } else return left;
  }
}

function unary(cur, scope) {
  if (cur.acceptPunct('-')) {
    const v = unary(cur, scope);
    if (v.kind === 'constant' && v.column.type === 'FIXED') return arithmetic('-', fixedConstant('0'), v, { pos: 0 });
    if (v.kind === 'constant' && v.column.type === 'REAL') {
      return constant(v.column, v.value === null ? null : encoders.REAL(-Number(v.value.replace('inf', 'Infinity'))));
    }
    throw syntaxError(cur.peek());
  }
  return primary(cur, scope);
}

function primary(cur, scope) {
  const t = cur.next();
  if (!t) throw syntaxError(undefined);
  if (t.kind === 'number') {
    if (t.boundType === 'REAL' || /[eE]/.test(t.value)) return constant(col.real('', { nullable: false }), encoders.REAL(t.value));
    return fixedConstant(t.value);
  }
  if (t.kind === 'string') {
    const len = Math.max(1, [...t.value].length);
    return constant(col.text('', len, { nullable: false }), t.value);
  }
  if (t.kind === 'punct' && t.value === '(') {
    const v = expression(cur, scope);
    cur.expectPunct(')');
    return v;
  }
  if (t.kind === 'word' && (t.value === 'TRUE' || t.value === 'FALSE')) {
    return constant(col.boolean('', { nullable: false }), t.value.toLowerCase());
  }
  if (t.kind === 'word' && t.value === 'NULL') return constant(col.text('', 16777216), null);
  if ((t.kind === 'word' || t.kind === 'quoted') && cur.isPunct('(')) return call(t, cur, scope);
  if (t.kind === 'word' || t.kind === 'quoted') {
    cur.i--;
    const nameToken = cur.peek();
    const parts = cur.qualifiedName();
    const name = parts[parts.length - 1];
    const index = scope.table?.columns.findIndex((c) => c.name === name) ?? -1;
    if (index < 0) throw invalidIdentifier({ ...nameToken, text: parts.join('.') });
    return { kind: 'column', index, column: scope.table.columns[index] };
  }
  throw syntaxError(t);
}

function args(cur, scope) {
  cur.expectPunct('(');
  const list = [];
  if (cur.acceptPunct(')')) return list;
  do list.push(expression(cur, scope)); while (cur.acceptPunct(','));
  cur.expectPunct(')');
  return list;
}

const textArg = (v, fn) => {
  if (v?.kind !== 'constant') throw compileError(`invalid argument for function ${fn}.`);
  return v.value;
};

function call(nameToken, cur, scope) {
  const name = nameToken.kind === 'word' ? nameToken.value : nameToken.value.toUpperCase();
  const ctx = scope.context;
  const contextText = (v) => constant(col.text('', 16777216), v ?? null);
  switch (name) {
    case 'SEQ4': case 'SEQ8': {
      cur.expectPunct('(');
      if (!cur.acceptPunct(')')) { cur.next(); cur.expectPunct(')'); }
      if (!scope.generator) throw compileError(`${name} can only be used with TABLE(GENERATOR(...)) in the double.`);
      return { kind: 'sequence', column: col.fixed('', name === 'SEQ4' ? 10 : 19, 0, { nullable: false }) };
    }
    case 'COUNT': {
      cur.expectPunct('(');
      cur.expectPunct('*');
      cur.expectPunct(')');
      return { kind: 'count', column: col.fixed('', 18, 0, { nullable: false }) };
    }
    case 'SYSTEM$WAIT': {
      const list = args(cur, scope);
      return waitCall(list, nameToken);
    }
    case 'PARSE_JSON': case 'TO_VARIANT': {
      const [v] = args(cur, scope);
      try {
        return constant(col.variant(''), v.value === null ? null : encoders.VARIANT(v.value));
      } catch {
        throw new SqlError('100069', '22P02', `Error parsing JSON: ${textArg(v, name)}`);
      }
    }
    case 'TO_BINARY': {
      const [v, format] = args(cur, scope);
      const f = String(format?.value ?? 'HEX').toUpperCase();
      const hex = f === 'UTF-8' || f === 'UTF8' ? Buffer.from(textArg(v, name), 'utf8').toString('hex') : textArg(v, name);
      try {
        return constant(col.binary(''), encoders.BINARY(hex));
      } catch {
        throw new SqlError('100115', '22000', `The following string is not a legal hex-encoded value: '${hex}'`);
      }
    }
    case 'CURRENT_DATABASE': args(cur, scope); return contextText(ctx.database ?? DEFAULT_DATABASE);
    case 'CURRENT_SCHEMA': args(cur, scope); return contextText(ctx.schema ?? DEFAULT_SCHEMA);
    case 'CURRENT_WAREHOUSE': args(cur, scope); return contextText(ctx.warehouse);
    case 'CURRENT_ROLE': args(cur, scope); return contextText(ctx.role);
    case 'CURRENT_USER': args(cur, scope); return contextText(ctx.user);
    case 'CURRENT_VERSION': args(cur, scope); return contextText('9.0.0');
    default:
      throw new SqlError('002140', '42601', `SQL compilation error:\nUnknown function ${name}`);
  }
}

// SYSTEM$WAIT(amount [, 'SECONDS'|'MILLISECONDS'|'MINUTES'|'HOURS'])
function waitCall(list, token) {
  const amount = Number(list[0]?.value);
  const unit = String(list[1]?.value ?? 'SECONDS').toUpperCase();
  const factor = { SECONDS: 1, MILLISECONDS: 0.001, MINUTES: 60, HOURS: 3600 }[unit];
  if (!Number.isFinite(amount) || amount < 0 || factor === undefined) {
    throw compileError(`invalid argument for function SYSTEM$WAIT at position ${token.pos}.`);
  }
  const seconds = amount * factor;
  return { ...constant(col.text('', 16777216), `waited ${list[0].value} ${unit.toLowerCase()}`), kind: 'wait', seconds };
}

// --- SELECT -----------------------------------------------------------------------
function selectItems(cur, scope) {
  const items = [];
  do {
    if (cur.acceptPunct('*')) { items.push({ star: true }); continue; }
    const from = cur.i;
    const value = expression(cur, scope);
    let name = cur.textSince(from);
    if (value.kind === 'column') name = value.column.name;
    if (cur.acceptWord('AS')) name = cur.identifier();
    else if (cur.peek()?.kind === 'quoted' || (cur.peek()?.kind === 'word' && !RESERVED.has(cur.peek().value))) {
      name = cur.identifier();
    }
    items.push({ value, name });
  } while (cur.acceptPunct(','));
  return items;
}

const RESERVED = new Set(['FROM', 'WHERE', 'ORDER', 'LIMIT', 'GROUP', 'SAMPLE', 'UNION', 'AS', 'AND', 'OR']);

// The FROM source as a table { columns, rows } or a generator { rowCount }.
function source(cur, ctx, catalogs) {
  if (cur.isWord('TABLE') && cur.isPunct('(', 1)) {
    cur.next();
    cur.expectPunct('(');
    cur.expectWord('GENERATOR');
    cur.expectPunct('(');
    let rowCount = null;
    do {
      const key = cur.identifier();
      cur.expectPunct('=>');
      const v = cur.next();
      if (v?.kind !== 'number') throw syntaxError(v);
      if (key === 'ROWCOUNT') rowCount = Number(v.value);
      else if (key !== 'TIMELIMIT') throw syntaxError(v);
    } while (cur.acceptPunct(','));
    cur.expectPunct(')');
    cur.expectPunct(')');
    if (!Number.isSafeInteger(rowCount) || rowCount < 0) throw compileError('GENERATOR needs ROWCOUNT => a count.');
    if (rowCount > ctx.maxGeneratorRows) {
      throw new SqlError('090150', '0A000', `GENERATOR ROWCOUNT ${rowCount} is over the double's limit of ${ctx.maxGeneratorRows}.`);
    }
    return { generator: { rowCount } };
  }
  const nameToken = cur.peek();
  const parts = cur.qualifiedName();
  const table = lookupTable(parts, ctx, catalogs);
  if (!table) throw noObject(parts.join('.'));
  void nameToken;
  return { table };
}

function lookupTable(parts, ctx, catalogs) {
  const database = ctx.database ?? DEFAULT_DATABASE;
  let [db, schema, name] = [database, ctx.schema ?? DEFAULT_SCHEMA, parts[parts.length - 1]];
  if (parts.length === 2) schema = parts[0];
  if (parts.length === 3) [db, schema] = parts;
  if (parts.length > 3) return null;
  if (db.toUpperCase() !== database.toUpperCase()) return null;
  return catalogs(database)[schema.toUpperCase()]?.[name] ?? null;
}

// WHERE: predicates joined by AND; each compares a column with literals.
function whereClause(cur, scope) {
  const predicates = [];
  do {
    const column = expression(cur, scope);
    if (column.kind !== 'column') throw syntaxError(cur.peek());
    const negate = cur.acceptWord('NOT');
    const t = cur.next();
    let test;
    if (t?.kind === 'word' && t.value === 'IS') {
      const not = cur.acceptWord('NOT');
      cur.expectWord('NULL');
      test = (v) => (v === null) !== not;
    } else if (t?.kind === 'word' && (t.value === 'LIKE' || t.value === 'ILIKE')) {
      const pattern = literalText(cur);
      const re = likeRegex(pattern, t.value === 'ILIKE');
      test = (v) => v !== null && re.test(v);
    } else if (t?.kind === 'word' && t.value === 'IN') {
      cur.expectPunct('(');
      const list = [];
      do list.push(literalText(cur)); while (cur.acceptPunct(','));
      cur.expectPunct(')');
      test = (v) => v !== null && list.some((x) => compare(v, x, column.column) === 0);
    } else if (t?.kind === 'punct' && ['=', '<>', '!=', '<', '>', '<=', '>='].includes(t.value)) {
      const x = literalText(cur);
      const op = t.value;
      test = (v) => {
        if (v === null || x === null) return false;
        const c = compare(v, x, column.column);
        return { '=': c === 0, '<>': c !== 0, '!=': c !== 0, '<': c < 0, '>': c > 0, '<=': c <= 0, '>=': c >= 0 }[op];
      };
    } else throw syntaxError(t);
    predicates.push((row) => test(row[column.index]) !== negate);
  } while (cur.acceptWord('AND'));
  return (row) => predicates.every((p) => p(row));
}

function literalText(cur) {
  const v = expression(cur, { context: {} });
  if (v.kind !== 'constant') throw syntaxError(cur.peek());
  return v.value;
}

function likeRegex(pattern, caseInsensitive) {
  const body = [...pattern].map((ch) => (ch === '%' ? '.*' : ch === '_' ? '.' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, caseInsensitive ? 'is' : 's');
}

const TEXTUAL = new Set(['TEXT', 'BOOLEAN', 'VARIANT', 'OBJECT', 'ARRAY', 'BINARY']);

// Compares two encoded values of column's type (numbers by value).
function compare(a, b, column) {
  if (!TEXTUAL.has(column.type)) {
    const x = Number(String(a).split(' ')[0].replace('inf', 'Infinity'));
    const y = Number(String(b).split(' ')[0].replace('inf', 'Infinity'));
    if (!Number.isNaN(x) && !Number.isNaN(y)) return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function select(cur, ctx, catalogs) {
  cur.expectWord('SELECT');
  // The select list is parsed after FROM is known: remember where it is.
  const listStart = cur.i;
  let depth = 0;
  while (!cur.atEnd() && !(depth === 0 && cur.isWord('FROM'))) {
    if (cur.isPunct('(')) depth++;
    if (cur.isPunct(')')) depth--;
    cur.i++;
  }
  let from = {};
  if (cur.acceptWord('FROM')) {
    from = source(cur, ctx, catalogs);
    if (cur.peek()?.kind === 'word' && !RESERVED.has(cur.peek().value)) cur.next(); // alias
  }
  let sample = null;
  if (cur.acceptWord('SAMPLE') || cur.acceptWord('TABLESAMPLE')) {
    cur.expectPunct('(');
    const n = cur.next();
    if (n?.kind !== 'number') throw syntaxError(n);
    cur.expectWord('ROWS');
    cur.expectPunct(')');
    sample = Number(n.value);
  }
  const scope = { table: from.table, generator: from.generator, context: ctx };
  const filter = cur.acceptWord('WHERE') ? whereClause(cur, scope) : null;
  if (filter && !from.table) throw compileError('WHERE is only served on catalog tables by the double.');
  const order = [];
  if (cur.acceptWord('ORDER')) {
    cur.expectWord('BY');
    do {
      const t = cur.peek();
      const key = t?.kind === 'number' ? { ordinal: Number(cur.next().value) } : { name: cur.qualifiedName().pop() };
      const descending = cur.acceptWord('DESC') ? true : (cur.acceptWord('ASC'), false);
      if (cur.acceptWord('NULLS')) { if (!cur.acceptWord('FIRST')) cur.expectWord('LAST'); }
      order.push({ ...key, descending, token: t });
    } while (cur.acceptPunct(','));
  }
  let limit = null;
  if (cur.acceptWord('LIMIT')) {
    const n = cur.next();
    if (n?.kind !== 'number') throw syntaxError(n);
    limit = Number(n.value);
  }
  cur.expectEnd();
  const end = cur.i;
  cur.i = listStart;
  const items = selectItems(cur, scope);
  if (!(cur.isWord('FROM') || cur.atEnd())) throw syntaxError(cur.peek());
  cur.i = end;
  return produce({ items, from, filter, order, limit, sample });
}

// Rows of a parsed SELECT.
function produce({ items, from, filter, order, limit, sample }) {
  const columns = [];
  const getters = [];
  let waitSeconds = 0;
  for (const item of items) {
    if (item.star) {
      if (!from.table) throw compileError('SELECT * needs a table in the double.');
      from.table.columns.forEach((c, index) => { columns.push({ ...c }); getters.push((row) => row[index]); });
      continue;
    }
    const v = item.value;
    columns.push({ ...v.column, name: item.name });
    if (v.kind === 'wait') waitSeconds = Math.max(waitSeconds, v.seconds);
    if (v.kind === 'column') getters.push((row) => row[v.index]);
    else if (v.kind === 'sequence') getters.push((row, n) => String(n));
    else getters.push(() => v.value);
  }
  const counting = items.some((i) => i.value?.kind === 'count');
  if (counting && items.length !== 1) throw compileError('COUNT(*) is only served alone by the double.');

  let rows;
  if (from.generator) {
    const count = Math.min(from.generator.rowCount, limit ?? Infinity, sample ?? Infinity);
    rows = [];
    const width = getters.length;
    for (let n = 0; n < count; n++) {
      const row = new Array(width);
      for (let k = 0; k < width; k++) row[k] = getters[k](null, n);
      rows.push(row);
    }
  } else {
    let source = from.table ? from.table.rows : [[]];
    if (filter) source = source.filter(filter);
    if (counting) return { columns, rows: [[String(source.length)]], waitSeconds };
    if (order.length) source = sortRows(source, order, from.table);
    if (sample !== null) source = source.slice(0, sample);
    if (limit !== null) source = source.slice(0, limit);
    rows = source.map((row) => getters.map((g) => g(row)));
    if (order.some((o) => o.ordinal)) {
      // ORDER BY ordinal sorts the output columns.
      rows = sortRows(rows, order.map((o) => ({ ...o, name: columns[o.ordinal - 1]?.name })), { columns });
    }
  }
  return { columns, rows, waitSeconds };
}

function sortRows(rows, order, table) {
  const keys = order.filter((o) => o.name !== undefined).map((o) => {
    const index = table.columns.findIndex((c) => c.name === o.name);
    if (index < 0) throw invalidIdentifier(o.token);
    return { index, column: table.columns[index], descending: o.descending };
  });
  return [...rows].sort((a, b) => {
    for (const k of keys) {
      const x = a[k.index];
      const y = b[k.index];
      let c;
      if (x === null || y === null) c = x === y ? 0 : x === null ? 1 : -1; // NULLS LAST ascending
      else c = compare(x, y, k.column);
      if (c !== 0) return k.descending ? -c : c;
    }
    return 0;
  });
}

// --- the catalog as SHOW, DESCRIBE and INFORMATION_SCHEMA see it -------------------
function objects(database) {
  const list = [];
  for (const [schema, tables] of Object.entries(SCHEMAS)) {
    for (const [name, table] of Object.entries(tables)) list.push({ database, schema, name, table });
  }
  // SHOW lists by schema, then name.
  return list.sort((a, b) => (a.schema + '.' + a.name < b.schema + '.' + b.name ? -1 : 1));
}

function informationSchema(database) {
  const all = objects(database);
  const text = (v) => v;
  const tables = {
    kind: 'VIEW',
    columns: [col.text('TABLE_CATALOG'), col.text('TABLE_SCHEMA'), col.text('TABLE_NAME'), col.text('TABLE_TYPE'),
      col.fixed('ROW_COUNT'), col.fixed('BYTES'), col.text('COMMENT')],
    rows: all.map((o) => [o.database, o.schema, o.name, o.table.kind === 'VIEW' ? 'VIEW' : 'BASE TABLE',
      o.table.kind === 'VIEW' ? null : String(o.table.rows.length),
      o.table.kind === 'VIEW' ? null : String(o.table.rows.length * 1024), o.table.comment]),
  };
  const columns = {
    kind: 'VIEW',
    columns: [col.text('TABLE_CATALOG'), col.text('TABLE_SCHEMA'), col.text('TABLE_NAME'), col.text('COLUMN_NAME'),
      col.fixed('ORDINAL_POSITION', 9, 0), col.text('COLUMN_DEFAULT'), col.text('IS_NULLABLE', 3), col.text('DATA_TYPE'),
      col.fixed('CHARACTER_MAXIMUM_LENGTH', 9, 0), col.fixed('NUMERIC_PRECISION', 9, 0), col.fixed('NUMERIC_SCALE', 9, 0),
      col.text('COMMENT')],
    rows: all.flatMap((o) => o.table.columns.map((c, i) => [o.database, o.schema, o.name, c.name, String(i + 1), null,
      c.nullable ? 'YES' : 'NO', sqlTypeName(c, false), c.type === 'TEXT' || c.type === 'BINARY' ? String(c.length) : null,
      c.type === 'FIXED' ? String(c.precision) : null, c.type === 'FIXED' ? String(c.scale) : null, null].map(text))),
  };
  const schemata = {
    kind: 'VIEW',
    columns: [col.text('CATALOG_NAME'), col.text('SCHEMA_NAME'), col.text('SCHEMA_OWNER'), col.text('COMMENT')],
    rows: ['INFORMATION_SCHEMA', ...Object.keys(SCHEMAS)].map((s) => [database, s, s === 'INFORMATION_SCHEMA' ? null : 'SYSADMIN', null]),
  };
  const views = {
    kind: 'VIEW',
    columns: [col.text('TABLE_CATALOG'), col.text('TABLE_SCHEMA'), col.text('TABLE_NAME'), col.text('VIEW_DEFINITION')],
    rows: all.filter((o) => o.table.kind === 'VIEW').map((o) => [o.database, o.schema, o.name, o.table.text]),
  };
  return { TABLES: tables, COLUMNS: columns, SCHEMATA: schemata, VIEWS: views };
}

const catalogsFor = (database) => ({ ...SCHEMAS, INFORMATION_SCHEMA: informationSchema(database) });

// SHOW [TERSE] DATABASES|SCHEMAS|TABLES|VIEWS|OBJECTS [LIKE 'p'] [IN ...] [LIMIT n]
function show(cur, ctx) {
  cur.expectWord('SHOW');
  cur.acceptWord('TERSE');
  const what = cur.identifier();
  let like = null;
  if (cur.acceptWord('LIKE')) like = likeRegex(literalText(cur), true);
  const database = (ctx.database ?? DEFAULT_DATABASE).toUpperCase();
  // Without IN, Snowflake's SHOW looks at the whole current database.
  let scope = { database, schema: null };
  if (cur.acceptWord('IN')) {
    if (cur.acceptWord('ACCOUNT')) scope = { database: null, schema: null };
    else if (cur.acceptWord('DATABASE')) scope = { database: cur.atEnd() || cur.isWord('LIMIT') ? database : cur.identifier().toUpperCase(), schema: null };
    else {
      cur.acceptWord('SCHEMA');
      const parts = cur.atEnd() || cur.isWord('LIMIT') ? [ctx.schema] : cur.qualifiedName().map((p) => p.toUpperCase());
      scope = parts.length === 2 ? { database: parts[0], schema: parts[1] } : { database, schema: parts[0] };
    }
  }
  let limit = null;
  if (cur.acceptWord('LIMIT')) limit = Number(cur.next()?.value);
  cur.expectEnd();
  if (scope.database !== null && scope.database !== database) throw noObject(scope.database);
  if (scope.schema !== null && !SCHEMAS[scope.schema] && scope.schema !== 'INFORMATION_SCHEMA') throw noObject(scope.schema);
  const named = (n) => like === null || like.test(n);
  let result;
  if (what === 'DATABASES') {
    result = {
      columns: [col.timestampLtz('created_on'), col.text('name'), col.text('is_default', 1), col.text('is_current', 1),
        col.text('origin'), col.text('owner'), col.text('comment'), col.text('options'), col.text('retention_time')],
      rows: named(database) ? [[CREATED_ON, database, 'N', 'Y', '', 'SYSADMIN', '', '', '1']] : [],
    };
  } else if (what === 'SCHEMAS') {
    const current = (ctx.schema ?? DEFAULT_SCHEMA).toUpperCase();
    result = {
      columns: [col.timestampLtz('created_on'), col.text('name'), col.text('is_default', 1), col.text('is_current', 1),
        col.text('database_name'), col.text('owner'), col.text('comment'), col.text('options'), col.text('retention_time')],
      rows: ['INFORMATION_SCHEMA', ...Object.keys(SCHEMAS)].filter(named).map((s) => [CREATED_ON, s, 'N',
        s === current ? 'Y' : 'N', database, s === 'INFORMATION_SCHEMA' ? '' : 'SYSADMIN',
        s === 'INFORMATION_SCHEMA' ? 'Views describing the contents of schemas in this database' : '', '', '1']),
    };
  } else if (what === 'TABLES' || what === 'VIEWS' || what === 'OBJECTS') {
    const wanted = objects(database).filter((o) => (scope.schema === null || o.schema === scope.schema) && named(o.name) &&
      (what === 'OBJECTS' || (what === 'VIEWS') === (o.table.kind === 'VIEW')));
    if (what === 'VIEWS') {
      result = {
        columns: [col.timestampLtz('created_on'), col.text('name'), col.text('reserved'), col.text('database_name'),
          col.text('schema_name'), col.text('owner'), col.text('comment'), col.text('text'), col.text('is_secure', 5),
          col.text('is_materialized', 5)],
        rows: wanted.map((o) => [CREATED_ON, o.name, '', o.database, o.schema, 'SYSADMIN', '', o.table.text, 'false', 'false']),
      };
    } else {
      result = {
        columns: [col.timestampLtz('created_on'), col.text('name'), col.text('database_name'), col.text('schema_name'),
          col.text('kind'), col.text('comment'), col.text('cluster_by'), col.fixed('rows'), col.fixed('bytes'),
          col.text('owner'), col.text('retention_time')],
        rows: wanted.map((o) => [CREATED_ON, o.name, o.database, o.schema, o.table.kind, o.table.comment ?? '', '',
          String(o.table.rows.length), String(o.table.rows.length * 1024), 'SYSADMIN', '1']),
      };
    }
  } else throw syntaxError(cur.tokens[1]);
  if (limit !== null) result.rows = result.rows.slice(0, limit);
  return result;
}

// DESC[RIBE] [TABLE|VIEW] name
function describe(cur, ctx) {
  cur.next();
  if (!cur.acceptWord('TABLE')) cur.acceptWord('VIEW');
  const parts = cur.qualifiedName();
  cur.expectEnd();
  const table = lookupTable(parts, ctx, catalogsFor);
  if (!table) throw noObject(parts.join('.'));
  return {
    columns: ['name', 'type', 'kind', 'null?', 'default', 'primary key', 'unique key', 'check', 'expression', 'comment']
      .map((n) => col.text(n)),
    rows: table.columns.map((c) => [c.name, sqlTypeName(c, true), 'COLUMN', c.nullable ? 'Y' : 'N', null, 'N', 'N',
      null, null, null]),
  };
}

const UNSUPPORTED = new Set(['USE', 'BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'PUT', 'GET', 'SET', 'UNSET']);
const WRITES = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'CREATE', 'DROP', 'ALTER', 'TRUNCATE', 'GRANT',
  'REVOKE', 'COPY', 'UNDROP', 'COMMENT']);

// Writes are accepted and counted, and change nothing: the catalog is fixed.
function write(cur) {
  const verb = cur.peek().value;
  if (verb === 'INSERT') {
    let tuples = 0;
    let depth = 0;
    let afterValues = false;
    for (const t of cur.tokens) {
      if (t.kind === 'word' && t.value === 'VALUES' && depth === 0) afterValues = true;
      if (t.kind === 'punct' && t.value === '(') { if (depth === 0 && afterValues) tuples++; depth++; }
      if (t.kind === 'punct' && t.value === ')') depth--;
    }
    return { columns: [col.fixed('number of rows inserted', 38, 0, { nullable: false })], rows: [[String(tuples)]], write: true };
  }
  if (verb === 'UPDATE') {
    return { columns: [col.fixed('number of rows updated', 38, 0), col.fixed('number of multi-joined rows updated', 38, 0)],
      rows: [['0', '0']], write: true };
  }
  if (verb === 'DELETE') return { columns: [col.fixed('number of rows deleted', 38, 0)], rows: [['0']], write: true };
  return { columns: [col.text('status')], rows: [['Statement executed successfully.']], write: true };
}

// --- entry point ----------------------------------------------------------------
export function compile(sql, context = {}) {
  const ctx = { maxGeneratorRows: 5000000, ...context };
  ctx.database = String(ctx.database ?? DEFAULT_DATABASE).toUpperCase();
  ctx.schema = String(ctx.schema ?? DEFAULT_SCHEMA).toUpperCase();
  if (typeof sql !== 'string' || sql.trim() === '') throw new SqlError('000900', '42000', 'SQL compilation error:\nEmpty SQL statement.');
  const statements = splitStatements(bind(tokenize(sql), ctx.bindings));
  const wanted = ctx.multiStatementCount ?? 1;
  if (statements.length === 0) throw new SqlError('000900', '42000', 'SQL compilation error:\nEmpty SQL statement.');
  if (wanted !== 0 && statements.length !== wanted) {
    throw new SqlError('000008', '0A000',
      `Actual statement count ${statements.length} did not match the desired statement count ${wanted}.`);
  }
  if (statements.length > 1) {
    throw new SqlError('000002', '0A000', 'Multi-statement requests are not served by the SQL API test double.');
  }
  const cur = new Cursor(statements[0], sql);
  const first = cur.peek();
  if (first.kind !== 'word') throw syntaxError(first);
  if (UNSUPPORTED.has(first.value) || (first.value === 'ALTER' && cur.isWord('SESSION', 1))) {
    throw new SqlError('391911', '0A000', `Unsupported statement type '${first.value}${first.value === 'ALTER' ? ' SESSION' : ''}'.`);
  }
  let plan;
  switch (first.value) {
    case 'SELECT': plan = select(cur, ctx, catalogsFor); break;
    case 'CALL': {
      cur.next();
      const nameToken = cur.next();
      if (nameToken?.value !== 'SYSTEM$WAIT') throw new SqlError('002140', '42601', `SQL compilation error:\nUnknown function ${nameToken?.text ?? ''}`);
      const wait = waitCall(args(cur, { context: ctx }), nameToken);
      cur.expectEnd();
      plan = { columns: [{ ...wait.column, name: 'SYSTEM$WAIT' }], rows: [[wait.value]], waitSeconds: wait.seconds };
      break;
    }
    case 'SHOW': plan = show(cur, ctx); break;
    case 'DESC': case 'DESCRIBE': plan = describe(cur, ctx); break;
    default:
      if (WRITES.has(first.value)) { plan = write(cur); break; }
      throw syntaxError(first);
  }
  return { waitSeconds: 0, write: false, ...plan };
}
