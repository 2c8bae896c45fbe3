/**
 * The key-hash column `prepare` adds to governed tables (docs/GOVERNANCE.md,
 * "Eviction support"): `_cdc_key_hash BINARY(32)`, VIRTUAL, indexed,
 * INVISIBLE on MariaDB, computing exactly the tombstone key the delete
 * trigger stores in `_cdc_tombstones.pk_hash`, so an eviction notice that
 * carries only that hash finds its row by an index lookup. Only governed
 * tables get it; nothing reads it as a data column.
 */
import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeApplyTable } from '../../../src/apply/apply-target.js';
import type { ChangeEvent } from '../../../src/bus/envelope.js';
import { TransactionAssembler } from '../../../src/capture/assembler.js';
import { BinlogSource } from '../../../src/capture/binlog-source.js';
import { currentGtidPosition } from '../../../src/capture/server-check.js';
import { runCli } from '../../../src/cli/program.js';
import { hasKeyHashColumn, KEY_HASH_COLUMN } from '../../../src/mysql/internal-tables.js';
import { serverInfo } from '../../../src/mysql/introspect.js';
import {
  connectionOptions,
  startSandbox,
  type DatabaseEngine,
  type Sandbox,
} from '../../../src/sandbox/index.js';
import { tableShape } from '../../../src/snapshot/rows.js';
import { sandboxConfigYaml, sandboxRegionOptions } from '../../support/config.js';

jest.setTimeout(180_000);

const GOVERNANCE = `governance:
  preview: true
  zones: { home: [us-east] }
  policies:
    - name: keep-home
      tables: [app.people, app.pairs, app.codes]
      residency: { default: home }
`;

const TABLES = ['app.people', 'app.pairs', 'app.codes', 'app.plain'];

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(argv: string[]): Promise<Output> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
  });
  return { code, stdout, stderr };
}

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])('the key-hash column on %s', (engine) => {
  // MySQL 8.0.12 has no INVISIBLE columns: visible version columns, and a visible key hash.
  const invisible = engine === 'mariadb';
  const choice = invisible ? [] : ['--visible-version-columns'];
  let sandbox: Sandbox;
  let db: mysql.Connection;
  let dir: string;
  let governed: string;
  let ungoverned: string;

  beforeAll(async () => {
    sandbox = await startSandbox({
      regions: [{ name: 'us-east', engine }],
      kafka: false,
      redis: false,
    });
    db = await mysql.createConnection(connectionOptions(sandbox.mysql[0]!));
    await db.query("SET time_zone = '+00:00'");
    await db.query('CREATE DATABASE app');
    await db.query(
      'CREATE TABLE app.people (id INT PRIMARY KEY, name VARCHAR(50)) DEFAULT CHARSET = utf8mb4',
    );
    await db.query(
      'CREATE TABLE app.pairs (name VARCHAR(40), n INT, note TEXT, PRIMARY KEY (name, n)) DEFAULT CHARSET = utf8mb4',
    );
    // CHAR and binary key columns: the generated column's RTRIM and HEX parts.
    await db.query(
      'CREATE TABLE app.codes (code CHAR(6), tag VARBINARY(8), PRIMARY KEY (code, tag)) DEFAULT CHARSET = utf8mb4',
    );
    await db.query('CREATE TABLE app.plain (id INT PRIMARY KEY, v INT)');
    dir = mkdtempSync(join(tmpdir(), 'key-hash-column-'));
    governed = join(dir, 'governed.yaml');
    ungoverned = join(dir, 'ungoverned.yaml');
    writeFileSync(governed, sandboxConfigYaml(sandbox, { tables: TABLES, extraYaml: GOVERNANCE }));
    writeFileSync(ungoverned, sandboxConfigYaml(sandbox, { tables: TABLES }));
  });

  afterAll(async () => {
    await db?.end();
    await sandbox?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const [result] = await db.query(sql, params);
    return result as T[];
  }

  const prepare = (config: string, ...flags: string[]): Promise<Output> =>
    cli(['prepare', '--config', config, '--region', 'us-east', ...choice, ...flags]);

  /** `schema.table` → EXTRA of its `_cdc_key_hash`, for the tables that have one. */
  async function keyHashColumns(): Promise<Record<string, string>> {
    const found = await rows<{ t: string; extra: string }>(
      `SELECT TABLE_NAME AS t, EXTRA AS extra FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = 'app' AND COLUMN_NAME = ? ORDER BY TABLE_NAME`,
      [KEY_HASH_COLUMN],
    );
    return Object.fromEntries(found.map((r) => [`app.${r.t}`, r.extra]));
  }

  /** Hex key hashes of a table's rows, sorted. */
  async function columnHashes(table: string): Promise<string[]> {
    const found = await rows<{ h: string }>(
      `SELECT HEX(_cdc_key_hash) AS h FROM ${table} ORDER BY 1`,
    );
    return found.map((r) => r.h);
  }

  /** Hex tombstone keys the delete trigger stored for a table, sorted. */
  async function tombstoneHashes(table: string): Promise<string[]> {
    const found = await rows<{ h: string }>(
      'SELECT HEX(pk_hash) AS h FROM _cdc._cdc_tombstones WHERE tbl = ? ORDER BY 1',
      [table],
    );
    return found.map((r) => r.h);
  }

  it('lists the column and its index in the plan of governed tables only', async () => {
    const out = await prepare(governed, '--dry-run');
    expect(out.code).toBe(0);
    for (const table of ['people', 'pairs', 'codes']) {
      expect(out.stdout).toContain(
        `add key-hash column _cdc_key_hash and its index to app.${table}`,
      );
      expect(out.stdout).toContain(
        `ALTER TABLE \`app\`.\`${table}\` ADD INDEX \`_cdc_key_hash\` (\`_cdc_key_hash\`)`,
      );
    }
    expect(out.stdout).toContain(
      'ALTER TABLE `app`.`pairs` ADD COLUMN `_cdc_key_hash` BINARY(32) AS (UNHEX(SHA2(JSON_ARRAY(CAST(`name` AS CHAR), CAST(`n` AS CHAR)), 256))) VIRTUAL' +
        (invisible ? ' INVISIBLE' : '') +
        " COMMENT 'cdc-replicator tombstone key hash ",
    );
    expect(out.stdout).toContain('JSON_ARRAY(CAST(RTRIM(`code`) AS CHAR), HEX(`tag`))');
    expect(out.stdout).not.toMatch(/app\.plain.*_cdc_key_hash|`plain` ADD COLUMN `_cdc_key_hash`/);
    if (!invisible) expect(out.stderr).toContain('key-hash column _cdc_key_hash');
    expect(await keyHashColumns()).toEqual({});
  });

  it('adds it, virtual and indexed, to governed tables only; a second run changes nothing', async () => {
    const first = await prepare(governed);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('add key-hash column _cdc_key_hash and its index to app.people');
    const columns = await keyHashColumns();
    expect(Object.keys(columns)).toEqual(['app.codes', 'app.pairs', 'app.people']);
    for (const extra of Object.values(columns)) {
      expect(extra).toMatch(/VIRTUAL GENERATED/i);
      expect(/INVISIBLE/i.test(extra)).toBe(invisible);
    }
    const indexes = await rows<{ t: string; c: string }>(
      `SELECT TABLE_NAME AS t, GROUP_CONCAT(COLUMN_NAME) AS c FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = 'app' AND INDEX_NAME = '_cdc_key_hash' GROUP BY TABLE_NAME ORDER BY 1`,
    );
    expect(indexes).toEqual([
      { t: 'codes', c: '_cdc_key_hash' },
      { t: 'pairs', c: '_cdc_key_hash' },
      { t: 'people', c: '_cdc_key_hash' },
    ]);

    const second = await prepare(governed);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('already prepared, nothing to change');
  });

  it('is what the delete trigger stores as the tombstone key, byte for byte', async () => {
    await db.query("INSERT INTO app.people (id, name) VALUES (1, 'a'), (42, 'b'), (-7, 'c')");
    await db.query(
      `INSERT INTO app.pairs (name, n, note) VALUES ('ab', 7, 'x'), ('é€😀 "q"\\\\', -3, 'y'),
         ('trailing ', 0, 'z'), ('', 2147483647, NULL)`,
    );
    await db.query(
      "INSERT INTO app.codes (code, tag) VALUES ('ab', X'00ff'), ('é  ', ''), ('', X'0102030405060708')",
    );
    for (const table of ['app.people', 'app.pairs', 'app.codes']) {
      const before = await columnHashes(table);
      expect(before).toHaveLength((await rows(`SELECT 1 FROM ${table}`)).length);
      expect(new Set(before).size).toBe(before.length);
      // Deleted by an application session: the trigger writes the tombstones.
      await db.query(`DELETE FROM ${table}`);
      expect(await tombstoneHashes(table)).toEqual(before);
    }
  });

  it('is found through its index', async () => {
    await db.query("INSERT INTO app.pairs (name, n, note) VALUES ('ab', 7, 'x'), ('cd', 8, 'y')");
    for (let i = 0; i < 200; i += 1)
      await db.query('INSERT INTO app.pairs (name, n) VALUES (?, ?)', [`row-${i}`, i]);
    const [hash] = await rows<{ h: string }>(
      "SELECT HEX(UNHEX(SHA2(JSON_ARRAY(CAST('ab' AS CHAR), CAST(7 AS CHAR)), 256))) AS h",
    );
    const where = `_cdc_key_hash = X'${hash!.h}'`;
    const plan = await rows<{ key: string | null; type: string }>(
      `EXPLAIN SELECT name, n FROM app.pairs WHERE ${where}`,
    );
    expect(plan).toEqual([expect.objectContaining({ key: '_cdc_key_hash', type: 'ref' })]);
    expect(await rows(`SELECT name, n FROM app.pairs WHERE ${where}`)).toEqual([
      { name: 'ab', n: 7 },
    ]);
  });

  it('is in the binlog row images, but never in the change events capture publishes', async () => {
    const { options } = sandboxRegionOptions(sandbox, 'us-east', {
      tables: TABLES,
      extraYaml: GOVERNANCE,
    });
    const raw: string[][] = [];
    const events: ChangeEvent[] = [];
    const assembler = new TransactionAssembler({
      region: 'us-east',
      internalSchema: '_cdc',
      isReplicated: (schema) => schema === 'app',
    });
    let failure: Error | undefined;
    const source = new BinlogSource({
      mysql: options.mysql,
      serverId: 4242,
      gtidSet: await currentGtidPosition(db, await serverInfo(db)),
      includeSchema: { app: true, _cdc: true },
      primaryKeys: new Map(),
      columnTypes: true,
      onEvent: (event) => {
        if (event.kind === 'rows' && event.table === 'pairs')
          for (const row of event.rows)
            raw.push(Object.keys('after' in row ? (row.after as object) : row));
        for (const out of assembler.push(event))
          if (out.kind === 'change' && out.event.table === 'pairs') events.push(out.event);
      },
      onError: (err) => (failure = err),
    });
    await source.start();
    try {
      await db.query("INSERT INTO app.pairs (name, n, note) VALUES ('cap', 1, 'x')");
      await db.query("UPDATE app.pairs SET note = 'y' WHERE name = 'cap'");
      await db.query("DELETE FROM app.pairs WHERE name = 'cap'");
      for (let i = 0; i < 100 && events.length < 3 && failure === undefined; i += 1)
        await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      source.stop();
    }
    expect(failure).toBeUndefined();
    // Both servers write the virtual column into FULL row images...
    expect(raw.length).toBeGreaterThanOrEqual(3);
    for (const columns of raw) expect(columns).toContain(KEY_HASH_COLUMN);
    // ...and capture leaves it out of images, keys and types.
    expect(events.map((e) => e.op)).toEqual(['c', 'u', 'd']);
    for (const event of events) {
      for (const image of [event.after, event.before, event.pk])
        if (image !== null && image !== undefined)
          expect(Object.keys(image)).not.toContain(KEY_HASH_COLUMN);
      expect(Object.keys(event.types ?? {})).not.toContain(KEY_HASH_COLUMN);
    }
    expect(events[0]?.after).toEqual({ name: 'cap', n: 1, note: 'x' });
  });

  it('is no data column to the applier, snapshot or verify', async () => {
    const table = await describeApplyTable(db, 'app', 'pairs', '_cdc');
    expect(table).toBeDefined();
    expect(hasKeyHashColumn(table!)).toBe(true);
    // Generated: never written by an upsert.
    expect(table!.generated.has(KEY_HASH_COLUMN)).toBe(true);
    // The applier's `SELECT * … LIMIT 0` probe finds no column its description lacks.
    const [, fields] = await db.query('SELECT * FROM app.pairs LIMIT 0');
    const described = new Set(table!.columns.map((c) => c.name));
    expect(fields.map((f) => f.name).filter((n) => !described.has(n))).toEqual([]);
    expect(fields.some((f) => f.name === KEY_HASH_COLUMN)).toBe(!invisible);
    // Snapshot and verify read (and checksum) the data columns only.
    expect(tableShape(table!, 'test').dataColumns.map((c) => c.name)).toEqual([
      'name',
      'n',
      'note',
    ]);
    const plain = await describeApplyTable(db, 'app', 'plain', '_cdc');
    expect(hasKeyHashColumn(plain!)).toBe(false);
  });

  it('is replaced when the primary key changes, then left alone', async () => {
    await db.query('ALTER TABLE app.pairs DROP PRIMARY KEY, ADD PRIMARY KEY (n, name)');
    const plan = await prepare(governed, '--dry-run');
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('replace key-hash column _cdc_key_hash of app.pairs');
    expect(plan.stdout).toContain('JSON_ARRAY(CAST(`n` AS CHAR), CAST(`name` AS CHAR))');
    expect(plan.stdout).not.toContain('app.people');

    const applied = await prepare(governed);
    expect(applied.code).toBe(0);
    const mismatched = await rows(
      `SELECT name, n FROM app.pairs
        WHERE NOT _cdc_key_hash <=> UNHEX(SHA2(JSON_ARRAY(CAST(n AS CHAR), CAST(name AS CHAR)), 256))`,
    );
    expect(mismatched).toEqual([]);
    const [hash] = await rows<{ h: string }>(
      "SELECT HEX(UNHEX(SHA2(JSON_ARRAY(CAST(7 AS CHAR), CAST('ab' AS CHAR)), 256))) AS h",
    );
    expect(
      await rows(
        `SELECT name, n FROM app.pairs FORCE INDEX (_cdc_key_hash) WHERE _cdc_key_hash = X'${hash!.h}'`,
      ),
    ).toEqual([{ name: 'ab', n: 7 }]);
    expect((await prepare(governed)).stdout).toContain('already prepared, nothing to change');
  });

  it('gets its index back, and is replaced when it is not what prepare declares', async () => {
    await db.query('ALTER TABLE app.people DROP INDEX _cdc_key_hash');
    await db.query(
      'ALTER TABLE app.codes DROP INDEX _cdc_key_hash, ADD INDEX _cdc_key_hash (code, _cdc_key_hash)',
    );
    await db.query(
      "ALTER TABLE app.codes MODIFY COLUMN _cdc_key_hash BINARY(32) AS (UNHEX(SHA2('x', 256))) VIRTUAL",
    );
    const out = await prepare(governed);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('add index _cdc_key_hash on _cdc_key_hash to app.people');
    expect(out.stdout).toContain('replace key-hash column _cdc_key_hash of app.codes');
    const indexes = await rows<{ t: string; c: string }>(
      `SELECT TABLE_NAME AS t, GROUP_CONCAT(COLUMN_NAME) AS c FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = 'app' AND INDEX_NAME = '_cdc_key_hash' GROUP BY TABLE_NAME ORDER BY 1`,
    );
    expect(indexes).toEqual([
      { t: 'codes', c: '_cdc_key_hash' },
      { t: 'pairs', c: '_cdc_key_hash' },
      { t: 'people', c: '_cdc_key_hash' },
    ]);
    expect(/INVISIBLE/i.test((await keyHashColumns())['app.codes'] ?? '')).toBe(invisible);
    await db.query("INSERT INTO app.codes (code, tag) VALUES ('zz ', X'01')");
    expect(
      await rows(
        `SELECT code FROM app.codes
          WHERE NOT _cdc_key_hash <=> UNHEX(SHA2(JSON_ARRAY(CAST(code AS CHAR), HEX(tag)), 256))`,
      ),
    ).toEqual([]);
    expect((await prepare(governed)).stdout).toContain('already prepared, nothing to change');
  });

  it('is dropped from a table no policy governs any more', async () => {
    const out = await prepare(ungoverned);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('drop key-hash column _cdc_key_hash from ungoverned app.people');
    expect(await keyHashColumns()).toEqual({});
    expect((await prepare(ungoverned)).stdout).toContain('already prepared, nothing to change');
  });
});
