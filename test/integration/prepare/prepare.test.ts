import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../../src/cli/program.js';
import { decodeStoredVersion, effectiveVersion } from '../../../src/versioning/index.js';
import {
  connectionOptions,
  startSandbox,
  type DatabaseEngine,
  type Sandbox,
} from '../../../src/sandbox/index.js';
import { sandboxConfigYaml } from '../../support/config.js';

jest.setTimeout(120_000);

/** The version columns of a row, for `effectiveHlc`. */
const VERSION_SELECT =
  'CAST(UNIX_TIMESTAMP(_cdc_ts) * 1000000 AS UNSIGNED) AS us, CAST(_cdc_ver AS CHAR) AS ver';

/** A row's effective version (DESIGN.md §3) in µs, as capture publishes it. */
function effectiveHlc(row: { us: string | number; ver: string | null }): bigint {
  return BigInt(
    effectiveVersion({
      tsMicros: Number(row.us),
      stored: row.ver === null ? null : decodeStoredVersion(row.ver),
      self: 'us-east',
    }).hlc,
  );
}

/** mysql2 returns MariaDB JSON columns parsed; text in other set-ups. */
function json(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value;
}

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

// MySQL 8.0.12 has no INVISIBLE columns: prepare refuses it unless told to add
// the version columns as visible ones, which it then keeps to.
describe.each<DatabaseEngine>(['mariadb', 'mysql8'])('cdc-replicator prepare on %s', (engine) => {
  const visible = engine === 'mysql8';
  /** The flag a first prepare on this server needs. */
  const choice = visible ? ['--visible-version-columns'] : [];
  let sandbox: Sandbox;
  let db: mysql.Connection;
  let dir: string;
  let configFile: string;

  beforeAll(async () => {
    sandbox = await startSandbox({
      regions: [{ name: 'us-east', engine }],
      kafka: false,
      redis: false,
    });
    db = await mysql.createConnection({
      ...connectionOptions(sandbox.mysql[0]!),
      dateStrings: true,
      timezone: 'Z',
    });
    await db.query("SET time_zone = '+00:00'");
    await db.query('CREATE DATABASE app');
    await db.query('CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(50), score INT)');
    await db.query(
      'CREATE TABLE app.pairs (a VARBINARY(8), b DATETIME(6), note TEXT, PRIMARY KEY (a, b))',
    );
    await db.query('CREATE TABLE app.nokey (x INT)');
    dir = mkdtempSync(join(tmpdir(), 'prepare-test-'));
    configFile = join(dir, 'config.yaml');
    writeFileSync(configFile, sandboxConfigYaml(sandbox, { tables: ['app.users', 'app.pairs'] }));
  });

  afterAll(async () => {
    await db?.end();
    await sandbox?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const [result] = await db.query(sql, params);
    return result as T[];
  }

  it('prints the SQL and changes nothing with --dry-run', async () => {
    const argv = ['prepare', '--config', configFile, '--region', 'us-east', '--dry-run'];
    if (visible) {
      const refused = await cli(argv);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('has no INVISIBLE columns');
      expect(refused.stderr).toContain('--visible-version-columns');
    }
    const out = await cli([...argv, ...choice]);
    expect(out.stderr).toEqual(visible ? expect.stringContaining('SELECT * now shows them') : '');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('CREATE TABLE IF NOT EXISTS `_cdc`.`_cdc_tombstones`');
    expect(out.stdout).toContain('ALTER TABLE `app`.`users` ADD COLUMN `_cdc_ts`');
    expect(out.stdout).toContain('CREATE TRIGGER `app`.`_cdc_ad_users` AFTER DELETE');
    expect(
      await rows("SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '_cdc'"),
    ).toEqual([]);
  });

  it('sets everything up, and a second run changes nothing', async () => {
    const first = await cli(['prepare', '--config', configFile, '--region', 'us-east', ...choice]);
    expect(first.stderr).toEqual(
      visible ? expect.stringContaining('applications must never write them') : '',
    );
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('create table _cdc._cdc_apply_marker');
    expect(first.stdout).toContain('add version columns to app.pairs');
    expect(first.stdout).toContain('install trigger app._cdc_bu_users');

    const tables = await rows<{ t: string }>(
      "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = '_cdc' ORDER BY 1",
    );
    expect(tables.map((r) => r.t)).toEqual([
      '_cdc_apply_marker',
      '_cdc_column_history',
      '_cdc_conflicts',
      '_cdc_heartbeat',
      '_cdc_tombstones',
    ]);
    const columns = await rows<{ c: string; extra: string }>(
      "SELECT COLUMN_NAME AS c, EXTRA AS extra FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'users' AND COLUMN_NAME LIKE '\\_cdc%' ORDER BY 1",
    );
    expect(columns.map((c) => c.c)).toEqual(['_cdc_ts', '_cdc_ver']);
    expect(columns.every((c) => /INVISIBLE/i.test(c.extra))).toBe(!visible);

    // Without the flag: the choice is on record in the tables.
    const second = await cli(['prepare', '--config', configFile, '--region', 'us-east']);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('already prepared, nothing to change');

    // A deployment prepared before the column history existed gets it from the next run.
    await db.query('DROP TABLE _cdc._cdc_column_history');
    const upgrade = await cli(['prepare', '--config', configFile, '--region', 'us-east']);
    expect(upgrade.code).toBe(0);
    expect(upgrade.stdout).toContain('create table _cdc._cdc_column_history');
  });

  it('keeps SELECT * and positional INSERTs working where the version columns are invisible', async () => {
    if (visible) {
      // The documented cost of visible version columns: trailing columns in SELECT *,
      // and an INSERT without a column list no longer matches the table.
      await expect(db.query("INSERT INTO app.users VALUES (1, 'ann', 10)")).rejects.toThrow(
        /Column count/,
      );
      await db.query("INSERT INTO app.users (id, name, score) VALUES (1, 'ann', 10)");
      const [row] = await rows<Record<string, unknown>>('SELECT * FROM app.users WHERE id = 1');
      expect(Object.keys(row!)).toEqual(['id', 'name', 'score', '_cdc_ts', '_cdc_ver']);
      return;
    }
    await db.query("INSERT INTO app.users VALUES (1, 'ann', 10)");
    expect(await rows('SELECT * FROM app.users WHERE id = 1')).toEqual([
      { id: 1, name: 'ann', score: 10 },
    ]);
  });

  it('gives local writes versions that obey the HLC rule even with the clock set back', async () => {
    await db.query("INSERT INTO app.users (id, name, score) VALUES (2, 'bob', 1)");
    const version = async (): Promise<bigint> =>
      effectiveHlc(
        (
          await rows<{ us: string; ver: string | null }>(
            `SELECT ${VERSION_SELECT} FROM app.users WHERE id = 2`,
          )
        )[0]!,
      );
    const v1 = await version();
    await db.query('SET timestamp = UNIX_TIMESTAMP() - 600'); // the session clock runs 10 minutes behind
    await db.query('UPDATE app.users SET score = 2 WHERE id = 2');
    const v2 = await version();
    await db.query('UPDATE app.users SET score = 3 WHERE id = 2');
    const v3 = await version();
    // A no-op while the clock is behind the row's version: the trigger cannot tell it from a
    // change without naming every column (which schema changes would break), so it steps the
    // version past the old one; that version replicates like any other.
    await db.query('UPDATE app.users SET score = 3 WHERE id = 2');
    const v4 = await version();
    await db.query('SET timestamp = DEFAULT');
    expect(v2).toBeGreaterThan(v1);
    expect(v3).toBeGreaterThan(v2);
    expect(v4).toBeGreaterThan(v3);
    // With the clock ahead of the version again, a no-op update keeps its version.
    await db.query('UPDATE app.users SET score = 4 WHERE id = 2');
    const v5 = await version();
    await db.query('UPDATE app.users SET score = 4 WHERE id = 2');
    expect(await version()).toBe(v5);
  });

  it('leaves a tombstone with a newer version on a local delete, and a re-insert follows it', async () => {
    await db.query(
      "INSERT INTO app.pairs (a, b, note) VALUES (UNHEX('00ff'), '2024-01-02 03:04:05.000006', 'x')",
    );
    const [before] = await rows<{ us: string; ver: string | null }>(
      `SELECT ${VERSION_SELECT} FROM app.pairs`,
    );
    await db.query("DELETE FROM app.pairs WHERE a = UNHEX('00ff')");
    const tombstones = await rows<{ tbl: string; pk: unknown; ver: unknown; hlc: string }>(
      'SELECT tbl, pk, ver, hlc FROM _cdc._cdc_tombstones',
    );
    expect(tombstones).toHaveLength(1);
    const tomb = tombstones[0]!;
    expect(tomb.tbl).toBe('app.pairs');
    expect(json(tomb.pk)).toEqual(['00FF', '2024-01-02 03:04:05.000006']);
    // mysql2 parses MariaDB JSON with big numbers inconsistently (some as strings): compare as numbers.
    const ver = json(tomb.ver) as {
      o: string;
      h: number | string;
      vv: Record<string, number | string>;
    };
    expect(ver.o).toBe('us-east');
    expect(BigInt(ver.h)).toBeGreaterThan(effectiveHlc(before!));
    expect(Object.keys(ver.vv)).toEqual(['us-east']);
    expect(Number(ver.vv['us-east'])).toBe(Number(ver.h));
    expect(String(ver.h)).toBe(String(tomb.hlc));

    await db.query('SET timestamp = UNIX_TIMESTAMP() - 600');
    await db.query(
      "INSERT INTO app.pairs (a, b, note) VALUES (UNHEX('00ff'), '2024-01-02 03:04:05.000006', 'again')",
    );
    await db.query('SET timestamp = DEFAULT');
    const [reinserted] = await rows<{ us: string; ver: string | null }>(
      `SELECT ${VERSION_SELECT} FROM app.pairs`,
    );
    // With the clock 10 minutes behind the delete, the re-insert still follows it:
    // a higher version whose vector covers the tombstone's.
    const stored = json(reinserted!.ver) as typeof ver;
    expect(effectiveHlc(reinserted!)).toBeGreaterThan(BigInt(ver.h));
    expect(BigInt(stored.vv['us-east']!)).toBeGreaterThanOrEqual(BigInt(ver.h));
  });

  it("skips the applier's own session", async () => {
    await db.query("INSERT INTO app.users (id, name, score) VALUES (3, 'cy', 0)");
    await db.query('SET @cdc_applier = 1');
    await db.query('DELETE FROM app.users WHERE id = 3');
    await db.query('SET @cdc_applier = NULL');
    const tombs = await rows("SELECT * FROM _cdc._cdc_tombstones WHERE tbl = 'app.users'");
    expect(tombs).toEqual([]);
  });

  it('refuses a table without a primary key, by name', async () => {
    const file = join(dir, 'nokey.yaml');
    writeFileSync(file, sandboxConfigYaml(sandbox, { tables: ['app.users', 'app.nokey'] }));
    const out = await cli(['prepare', '--config', file, '--region', 'us-east']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('app.nokey');
    expect(out.stderr).toContain('primary key');
  });

  it('names a configured table that does not exist', async () => {
    const file = join(dir, 'missing.yaml');
    writeFileSync(file, sandboxConfigYaml(sandbox, { tables: ['app.users', 'app.ghost'] }));
    const out = await cli(['prepare', '--config', file, '--region', 'us-east']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('app.ghost');
  });

  it('keeps versioning and application writes working through ADD, DROP and RENAME COLUMN', async () => {
    await db.query('CREATE TABLE app.evolving (id INT PRIMARY KEY, a VARCHAR(20), b VARCHAR(20))');
    writeFileSync(
      configFile,
      sandboxConfigYaml(sandbox, { tables: ['app.users', 'app.pairs', 'app.evolving'] }),
    );
    expect((await cli(['prepare', '--config', configFile, '--region', 'us-east'])).code).toBe(0);
    await db.query("INSERT INTO app.evolving (id, a, b) VALUES (1, 'a', 'b')");
    const version = async (): Promise<string> =>
      (await rows<{ ts: string }>('SELECT _cdc_ts AS ts FROM app.evolving WHERE id = 1'))[0]!.ts;

    // An update of a column added after prepare is a new version.
    await db.query('ALTER TABLE app.evolving ADD COLUMN c VARCHAR(20)');
    const beforeC = await version();
    await db.query("UPDATE app.evolving SET c = 'new' WHERE id = 1");
    expect(await version()).not.toBe(beforeC);
    const afterC = await version();
    await db.query("UPDATE app.evolving SET c = 'new' WHERE id = 1"); // no-op
    expect(await version()).toBe(afterC);

    // Dropping and renaming columns never breaks the application's writes.
    await db.query('ALTER TABLE app.evolving DROP COLUMN b');
    await db.query("UPDATE app.evolving SET a = 'z' WHERE id = 1");
    expect(await version()).not.toBe(afterC);
    await db.query('ALTER TABLE app.evolving RENAME COLUMN a TO a2');
    await db.query("INSERT INTO app.evolving (id, a2, c) VALUES (2, 'x', 'y')");
    await db.query("UPDATE app.evolving SET a2 = 'w' WHERE id = 2");
    await db.query('DELETE FROM app.evolving WHERE id = 2');
    const tombstones = await rows<{ n: number }>(
      "SELECT COUNT(*) AS n FROM _cdc._cdc_tombstones WHERE tbl = 'app.evolving'",
    );
    expect(Number(tombstones[0]!.n)).toBe(1);
  });
});
