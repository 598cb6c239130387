// tests/e2e/explore.test.mjs - the exploration tools of `qreg mcp` through
// the official SDK 1.x client on a SQLite file of known data: list_schemas,
// list_tables, describe_table (kinds, primary key, indexes, foreign keys),
// search_columns, sample_table_data (random, a column subset, a size cap)
// and analyze_table_statistics (figures computed by hand from the data
// below). Every structured result is also checked against its tool's
// outputSchema with Ajv, and tools can be switched off. The SDK scenarios run
// over both transports: stdio (`qreg mcp`) and Streamable HTTP (`qreg serve`,
// /mcp).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import AjvModule from 'ajv';
import { QREG_BIN, TOOL_NAMES, finalStats, packageVersion, sanitizerReport, transports, connectClient } from './lib.mjs';

const Ajv = AjvModule.default ?? AjvModule;
const SDK_VERSION = packageVersion('@modelcontextprotocol/sdk');

// customers(id, name, city, vip, joined): 8 rows; orders(id, customer
// REFERENCES customers, amount, placed): 6 rows; an index on orders.
const SETUP = [
  'CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, vip BOOLEAN, joined DATE)',
  "INSERT INTO customers VALUES (1, 'Ann', 'Oslo', 1, '2021-03-01'), (2, 'Bo', 'Rome', 0, '2022-07-15'), "
    + "(3, 'Cy', 'Oslo', 1, '2020-01-31'), (4, 'Di', NULL, 0, '2023-11-02'), (5, 'Ed', 'Oslo', NULL, '2022-02-02'), "
    + "(6, 'Fa', 'Lima', 0, NULL), (7, 'Gu', 'Rome', 1, '2024-05-05'), (8, 'Hi', 'Oslo', 0, '2021-09-09')",
  'CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL REFERENCES customers (id), '
    + 'amount REAL, placed DATE)',
  'CREATE INDEX orders_by_customer ON orders (customer, placed)',
  "INSERT INTO orders VALUES (1, 1, 10.0, '2024-01-01'), (2, 1, 20.0, '2024-01-02'), (3, 2, 30.0, '2024-02-01'), "
    + "(4, 3, 40.0, '2024-03-01'), (5, 3, NULL, '2024-03-02'), (6, 7, 100.0, '2024-04-01')",
  'CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 25',
];

let dir, url;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qreg-e2e-explore-'));
  url = `sqlite:${path.join(dir, 'shop.db')}`;
  for (const sql of SETUP)
    execFileSync(QREG_BIN, ['query', '--db', url, '--allow-writes', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
});
after(() => rmSync(dir, { recursive: true, force: true }));

for (const t of transports({ StdioClientTransport, StreamableHTTPClientTransport })) describe(t.name, () => {
  function connect(args = [], env = {}) {
    return connectWith(['--db', url, ...args], env);
  }

  // args: the server's options after its subcommand.
  async function connectWith(args, env = {}) {
    const link = await t.open(args, env);
    const client = new Client({ name: 'qreg-e2e-explore', version: SDK_VERSION });
    await connectClient(client, link);
    const { tools } = await client.listTools();
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validators = new Map(tools.map((t) => [t.name, ajv.compile(t.outputSchema)]));
    return {
      client,
      tools,
      instructions: client.getInstructions(),
      // Calls a tool that must succeed; its structuredContent must match the
      // tool's outputSchema and equal its text.
      async call(name, args) {
        const result = await client.callTool({ name, arguments: args });
        assert.equal(result.isError, false, JSON.stringify(result));
        const validate = validators.get(name);
        assert.ok(validate(result.structuredContent), `${name}: ${JSON.stringify(validate.errors)}`);
        assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent);
        return result.structuredContent;
      },
      async close() {
        const stderr = await link.close(client);
        assert.equal(sanitizerReport(stderr), null);
        return finalStats(stderr);
      },
    };
  }

  test(`sdk ${SDK_VERSION}: exploration tools on known data, every result valid against its outputSchema`, async () => {
    const s = await connect();
    try {
      assert.deepEqual(s.tools.map((t) => t.name), TOOL_NAMES);
      // The exploration tools, after the query tools (the last of which, forget_query, destroys).
      for (const tool of s.tools.slice(TOOL_NAMES.indexOf('list_schemas'))) {
        assert.equal(tool.annotations.readOnlyHint, true, tool.name);
        assert.ok(tool.description.length > 80, tool.name);
      }

      assert.deepEqual(await s.call('list_schemas', {}), { database: 'sqlite', schemas: ['main'], truncated: false });

      const tables = await s.call('list_tables', {});
      assert.deepEqual(tables.tables.map((t) => [t.name, t.type]),
        [['big_orders', 'view'], ['customers', 'table'], ['orders', 'table']]);

      const orders = await s.call('describe_table', { table: 'orders' });
      assert.deepEqual(orders.columns.map((c) => [c.ordinal, c.name, c.type, c.kind, c.nullable, c.primary_key]), [
        [1, 'id', 'INTEGER', 'number', true, true],
        [2, 'customer', 'INTEGER', 'number', false, false],
        [3, 'amount', 'REAL', 'number', true, false],
        [4, 'placed', 'DATE', 'date', true, false],
      ]);
      assert.deepEqual(orders.primary_key, ['id']);
      assert.deepEqual(orders.indexes, [{ name: 'orders_by_customer', columns: ['customer', 'placed'], unique: false, primary: false }]);
      assert.deepEqual(orders.foreign_keys, [{
        name: 'fk0', columns: ['customer'], referenced_schema: null, referenced_table: 'customers', referenced_columns: ['id'],
      }]);
      const missing = await s.client.callTool({ name: 'describe_table', arguments: { table: 'nope' } });
      assert.equal(missing.isError, true);
      assert.match(JSON.parse(missing.content[0].text).error.message, /list_tables/);

      const found = await s.call('search_columns', { pattern: 'AMOUNT' });
      assert.deepEqual(found.columns, [
        { schema: 'main', table: 'big_orders', column: 'amount', type: 'REAL' },
        { schema: 'main', table: 'orders', column: 'amount', type: 'REAL' },
      ]);
      assert.equal((await s.call('search_columns', { pattern: 'i', limit: 2 })).truncated, true);

      // A random sample: real rows, only the columns asked for, the size capped.
      const sample = await s.call('sample_table_data', { table: 'customers', columns: ['name', 'city'], limit: 3 });
      assert.deepEqual(sample.columns.map((c) => c.name), ['name', 'city']);
      assert.equal(sample.rows.length, 3);
      assert.equal(sample.random, true);
      const names = ['Ann', 'Bo', 'Cy', 'Di', 'Ed', 'Fa', 'Gu', 'Hi'];
      for (const [name] of sample.rows) assert.ok(names.includes(name), name);
      const all = await s.call('sample_table_data', { table: 'customers', random: false, limit: 100 });
      assert.deepEqual(all.rows.map((r) => r[1]), names);

      // Statistics, by hand: amount 10, 20, 30, 40, NULL, 100 (mean 40;
      // nearest-rank quartiles 20, 30, 40); city Oslo x4, Rome x2, Lima, NULL;
      // vip 1, 0, 1, 0, NULL, 0, 1, 0; joined from 2020-01-31 to 2024-05-05.
      const amount = await s.call('analyze_table_statistics', { table: 'orders', columns: ['amount', 'placed'] });
      assert.equal(amount.row_count, 6);
      assert.deepEqual(amount.columns[0], {
        name: 'amount', type: 'REAL', kind: 'number', count: 5, null_count: 1, distinct_count: 5,
        min: '10.0', max: '100.0', mean: 40, p25: '20.0', p50: '30.0', p75: '40.0',
      });
      assert.deepEqual(amount.columns[1], {
        name: 'placed', type: 'DATE', kind: 'date', count: 6, null_count: 0, distinct_count: 6,
        min: '2024-01-01', max: '2024-04-01',
      });
      const customers = await s.call('analyze_table_statistics', { table: 'customers' });
      assert.equal(customers.row_count, 8);
      const byName = Object.fromEntries(customers.columns.map((c) => [c.name, c]));
      assert.deepEqual(Object.keys(byName), ['id', 'name', 'city', 'vip', 'joined']);
      assert.deepEqual(byName.city.top_values, [
        { value: 'Oslo', count: 4 }, { value: 'Rome', count: 2 }, { value: 'Lima', count: 1 },
      ]);
      assert.equal(byName.city.null_count, 1);
      assert.equal(byName.city.distinct_count, 3);
      assert.equal(byName.vip.true_count, 3);
      assert.equal(byName.vip.false_count, 4);
      assert.equal(byName.vip.null_count, 1);
      assert.equal(byName.joined.min, '2020-01-31');
      assert.equal(byName.joined.max, '2024-05-05');
      assert.equal(byName.id.mean, 4.5);
      assert.equal(byName.id.p50, '4');
      assert.equal(byName.name.top_values.length, 5);
      const bad = await s.client.callTool({ name: 'analyze_table_statistics', arguments: { table: 'orders', columns: ['nope'] } });
      assert.equal(bad.isError, true);
      assert.match(JSON.parse(bad.content[0].text).error.message, /describe_table/);
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });

  test(`sdk ${SDK_VERSION}: tools switched off by flag and by environment`,
    { skip: t.unsupported(['--disable-tools']) }, async () => {
    const s = await connect(['--disable-tools', 'sample_table_data,analyze_table_statistics']);
    try {
      assert.deepEqual(s.tools.map((t) => t.name),
        TOOL_NAMES.filter((n) => n !== 'sample_table_data' && n !== 'analyze_table_statistics'));
      await assert.rejects(s.client.callTool({ name: 'sample_table_data', arguments: { table: 'orders' } }),
        /switched off/);
    } finally {
      await s.close();
    }
    const e = await connect([], { QREG_DISABLE_TOOLS: 'search_columns' });
    try {
      assert.ok(!e.tools.some((t) => t.name === 'search_columns'));
      assert.equal(e.tools.length, TOOL_NAMES.length - 1);
    } finally {
      await e.close();
    }
  });

  // Several databases from one config file: list_sources, `source` as an
  // enum on every tool, each tool on its own source, query ids finding their
  // source, per-source tool switches; bad files refused naming line and key.
  test(`sdk ${SDK_VERSION}: several sources from one --config file`,
    { skip: t.unsupported(['--config']) }, async () => {
    const second = `sqlite:${path.join(dir, `second-${t.name}.db`)}`;
    for (const sql of ['CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)', "INSERT INTO notes VALUES (1, 'hello')"])
      execFileSync(QREG_BIN, ['query', '--db', second, '--allow-writes', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
    const config = path.join(dir, `qreg-${t.name}.yaml`);
    writeFileSync(config, [
      '# two databases',
      'defaults:',
      '  timeout: 60',
      'sources:',
      '  shop:',
      `    url: ${url}`,
      '    description: orders and customers',
      '  notes:',
      `    url: ${second}`,
      '    max_connections: 2',
      '    tools:',
      '      disabled: [analyze_table_statistics]',
      '',
    ].join('\n'));
    const s = await connectWith(['--config', config]);
    try {
      assert.deepEqual(s.tools.map((t) => t.name), ['list_sources', ...TOOL_NAMES]);
      for (const tool of s.tools.slice(1))
        assert.deepEqual(tool.inputSchema.properties.source.enum, ['shop', 'notes'], tool.name);
      assert.match(s.instructions, /list_sources/);
      const sources = await s.call('list_sources', {});
      assert.deepEqual(sources.sources.map((x) => [x.name, x.database, x.read_only, x.default]),
        [['shop', 'sqlite', true, true], ['notes', 'sqlite', true, false]]);
      assert.equal(sources.sources[0].description, 'orders and customers');
      assert.deepEqual(sources.sources[1].disabled_tools, ['analyze_table_statistics']);

      assert.deepEqual((await s.call('list_tables', { source: 'notes' })).tables.map((t) => t.name), ['notes']);
      assert.deepEqual((await s.call('list_tables', {})).tables.map((t) => t.name),
        ['big_orders', 'customers', 'orders'], 'the first source by default');
      const q = await s.call('execute_query', { source: 'notes', sql: 'SELECT body FROM notes', wait_seconds: 0 });
      const rows = await s.call('fetch_query_result', { query_id: q.query_id, wait_seconds: 30 });
      assert.deepEqual(rows.rows, [['hello']], 'the query id finds its source');
      const off = await s.client.callTool({ name: 'analyze_table_statistics', arguments: { source: 'notes', table: 'notes' } });
      assert.equal(off.isError, true);
      assert.match(off.content[0].text, /switched off/);
      const unknown = await s.client.callTool({ name: 'list_tables', arguments: { source: 'nope' } });
      assert.equal(unknown.isError, true);
      assert.match(unknown.content[0].text, /shop, notes/);
    } finally {
      const stats = await s.close();
      assert.equal(stats.opened, stats.closed);
    }
  });
});

// A bad config file (no transport: `qreg mcp` refuses it before serving):
// the error names the line and the key.
test('a bad --config file is refused naming its line and key', () => {
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, `sources:\n  shop:\n    url: ${url}\n    timeout: soon\n`);
  assert.throws(() => execFileSync(QREG_BIN, ['mcp', '--config', bad], { stdio: ['ignore', 'ignore', 'pipe'] }),
    (err) => /bad\.yaml:4: sources\.shop\.timeout: expected seconds/.test(err.stderr.toString()));
  writeFileSync(bad, `sources:\n  shop:\n    url: ${url}\n    password: hunter2\n`);
  assert.throws(() => execFileSync(QREG_BIN, ['mcp', '--config', bad], { stdio: ['ignore', 'ignore', 'pipe'] }),
    (err) => /bad\.yaml:4: sources\.shop\.password: secrets only by reference/.test(err.stderr.toString())
      && !err.stderr.toString().includes('hunter2'));
});
