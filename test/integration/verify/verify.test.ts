import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import { createKafka } from '../../../src/bus/kafka.js';
import { runCli } from '../../../src/cli/program.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import type { Daemon } from '../../../src/daemon/daemon.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { LogProgress } from '../../../src/snapshot/progress.js';
import { formatDivergence, formatVersion } from '../../../src/verify/report.js';
import { runVerify, type VerifyResult } from '../../../src/verify/verify.js';
import { decodeStoredVersion, effectiveVersion } from '../../../src/versioning/version.js';
import { writeConfigFile } from '../../support/daemon-process.js';
import { testLogger } from '../../support/logger.js';
import { prepareRegion } from '../../support/mariadb.js';
import { seededRandom, testSeed } from '../../support/random.js';
import {
  connect,
  content,
  deployment,
  seedRows,
  startDaemon,
  waitForSameContent,
  type Deployment,
} from '../snapshot/harness.js';
import { Writer } from '../snapshot/writer.js';

jest.setTimeout(600_000);

const COLUMNS = ['id', 'v', 'note'];
const ROWS = 20_000;

describe('verify', () => {
  let sandbox: Sandbox;
  let workDir: string;
  let d: Deployment;
  let A: RuntimeOptions;
  let B: RuntimeOptions;
  let a: mysql.Connection;
  let b: mysql.Connection;
  let configFile: string;
  const daemons: Daemon[] = [];
  const seed = testSeed();

  beforeAll(async () => {
    console.log(`verify tests: seed ${seed} (replay with CDC_TEST_SEED=${seed})`);
    sandbox = await startSandbox({ regions: ['a', 'b'], redis: true });
    workDir = mkdtempSync(join(tmpdir(), 'cdc-verify-test-'));
    d = deployment(sandbox, ['a', 'b'], ['v1.t'], 'ver1');
    A = d.options('a');
    B = d.options('b');
    a = await connect(A);
    b = await connect(B);
    for (const connection of [a, b]) {
      await connection.query(
        'CREATE DATABASE v1; CREATE TABLE v1.t (id INT NOT NULL PRIMARY KEY, v INT NOT NULL, note VARCHAR(40) NOT NULL)',
      );
      // Both regions start from the same data (loaded before replication).
      await seedRows(connection, 'v1.t', 1, ROWS, (id) => `(${id}, ${id % 89}, 'seed-${id}')`);
    }
    await prepareRegion(A);
    await prepareRegion(B);
    daemons.push(await startDaemon(A), await startDaemon(B));
    configFile = writeConfigFile(workDir, d.yaml, 'verify.yaml');
  });

  afterAll(async () => {
    await Promise.allSettled(daemons.map((daemon) => daemon.stop()));
    await Promise.allSettled([a?.end(), b?.end()]);
    await sandbox?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  function verifyOnce(recheckDelayMs = 3_000): Promise<VerifyResult> {
    const logger = testLogger('verify');
    const progress = new LogProgress(logger, 'verify', 60_000);
    return runVerify({
      regions: [A, B],
      tables: [],
      chunkSize: 1000,
      chunksPerSecond: 0,
      recheckDelayMs,
      rechecks: 3,
      repair: false,
      kafkaOf: (options) => createKafka(options.kafka, logger),
      progress,
      logger,
    }).finally(() => progress.stop());
  }

  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(
      args,
      {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
      },
      { CDC_LOG_LEVEL: 'warn' },
    );
    return { code, stdout, stderr };
  }

  it('reports no divergence while both regions take ~1k writes/s for 60 s', async () => {
    const writers = [
      new Writer(
        await connect(A),
        'v1.t',
        seededRandom(seed),
        { maxId: ROWS, newIdsFrom: 1_000_001, tag: 'a' },
        500,
      ).start(),
      new Writer(
        await connect(B),
        'v1.t',
        seededRandom(seed + 1),
        { maxId: ROWS, newIdsFrom: 2_000_001, tag: 'b' },
        500,
      ).start(),
    ];
    const runs: VerifyResult[] = [];
    const started = Date.now();
    try {
      while (Date.now() - started < 60_000) runs.push(await verifyOnce());
    } finally {
      const writes = (await Promise.all(writers.map((w) => w.stop()))).reduce((x, y) => x + y, 0);
      console.log(
        `verify under writes: ${writes} writes in ${((Date.now() - started) / 1000).toFixed(0)} s ` +
          `(${Math.round(writes / ((Date.now() - started) / 1000))}/s), ${runs.length} verify runs, ` +
          `row differences resolved on recheck: ${runs.map((r) => r.summary.resolvedOnRecheck).join(', ')}`,
      );
    }
    for (const run of runs) {
      expect(run.divergences.map(formatDivergence)).toEqual([]);
      expect(run.summary.rows).toBeGreaterThan(ROWS / 2);
    }
    expect(runs.length).toBeGreaterThanOrEqual(2);
    // The runs really saw changes in flight and let them settle instead of reporting them.
    expect(runs.reduce((n, r) => n + r.summary.resolvedOnRecheck, 0)).toBeGreaterThan(0);
    await waitForSameContent(
      new Map([
        ['a', a],
        ['b', b],
      ]),
      'v1.t',
      COLUMNS,
      120_000,
    );
  });

  it('reports rows changed outside replication exactly, and --repair makes the regions converge', async () => {
    const ids = [9_000_001, 9_000_002, 9_000_003];
    await a.query(`INSERT INTO v1.t VALUES ${ids.map((id) => `(${id}, 1, 'fresh')`).join(', ')}`);
    await waitForSameContent(
      new Map([
        ['a', a],
        ['b', b],
      ]),
      'v1.t',
      COLUMNS,
      60_000,
    );
    const [behind, equal, deleted] = ids as [number, number, number];
    // 1. Changed in b in a session capture never sees: b holds a newer version a lacks.
    await b.query(
      `SET SESSION sql_log_bin = 0; UPDATE v1.t SET note = 'bypass-b' WHERE id = ${behind}; SET SESSION sql_log_bin = 1`,
    );
    // 2. Changed in a behind the replicator's back, keeping the version: equal versions, different data.
    await a.query(
      `SET SESSION sql_log_bin = 0, @cdc_applier = 1; UPDATE v1.t SET note = 'bypass-a', _cdc_ts = _cdc_ts WHERE id = ${equal}; ` +
        'SET SESSION sql_log_bin = 1, @cdc_applier = NULL',
    );
    // 3. Deleted in a without the binlog: a has the newer tombstone, b still the row.
    await a.query(
      `SET SESSION sql_log_bin = 0; DELETE FROM v1.t WHERE id = ${deleted}; SET SESSION sql_log_bin = 1`,
    );

    const version = async (connection: mysql.Connection, region: string, id: number) => {
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT CAST(UNIX_TIMESTAMP(_cdc_ts) * 1000000 AS UNSIGNED) AS ts, CAST(_cdc_ver AS CHAR) AS ver FROM v1.t WHERE id = ${id}`,
      );
      const row = rows[0];
      if (row !== undefined) {
        return effectiveVersion({
          tsMicros: Number(row.ts),
          stored: row.ver === null ? null : decodeStoredVersion(String(row.ver)),
          self: region,
        });
      }
      const [tombs] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT CAST(ver AS CHAR) AS ver FROM _cdc._cdc_tombstones WHERE tbl = 'v1.t' AND JSON_UNQUOTE(JSON_EXTRACT(pk, '$[0]')) = '${id}'`,
      );
      return decodeStoredVersion(String(tombs[0]?.ver));
    };
    const expected = {
      behindA: formatVersion(await version(a, 'a', behind)),
      behindB: formatVersion(await version(b, 'b', behind)),
      equal: formatVersion(await version(a, 'a', equal)),
      deletedA: formatVersion(await version(a, 'a', deleted)),
      deletedB: formatVersion(await version(b, 'b', deleted)),
    };
    expect(formatVersion(await version(b, 'b', equal))).toBe(expected.equal);

    const args = ['verify', '--config', configFile, '--recheck-delay', '1000', '--rechecks', '2'];
    const first = await cli([...args, '--chunks-per-second', '50']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(1);
    const out = first.stdout;
    expect(out).toContain('verify a,b: 3 divergent rows');
    expect(out).toContain(
      `DIVERGENT v1.t pk {"id":${behind}}: a lacks the newest version, held by b (not delivered, or lost)\n` +
        `  a  row     version ${expected.behindA}\n` +
        `  b  row     version ${expected.behindB}\n` +
        `  differing columns:\n` +
        `    note: a="fresh"  b="bypass-b"\n`,
    );
    expect(out).toContain(`DIVERGENT v1.t pk {"id":${equal}}: same version, different data in`);
    expect(out).toContain(
      `  a  row     version ${expected.equal}\n  b  row     version ${expected.equal}\n`,
    );
    expect(out).toContain(`    note: a="bypass-a"  b="fresh"\n`);
    expect(out).toContain(
      `DIVERGENT v1.t pk {"id":${deleted}}: b lacks the newest version, held by a (not delivered, or lost)\n` +
        `  a  deleted version ${expected.deletedA}\n` +
        `  b  row     version ${expected.deletedB}\n`,
    );

    // Without --repair nothing changed; with it, every row is repaired through the apply path.
    const repair = await cli([...args, '--repair']);
    expect(repair.code).toBe(1);
    expect(repair.stdout).toContain('3 divergent rows');
    expect(repair.stdout.match(/^REPAIRED /gm)).toHaveLength(3);

    const deadline = Date.now() + 120_000;
    for (;;) {
      const again = await cli(args);
      if (again.code === 0) {
        expect(again.stdout).toContain('verify a,b: regions match');
        break;
      }
      if (Date.now() > deadline)
        throw new Error(`still divergent after --repair:\n${again.stdout}`);
      await sleep(1_000);
    }
    expect(await content(b, 'v1.t')).toBe(await content(a, 'v1.t'));
    const [rows] = await a.query<mysql.RowDataPacket[]>(
      `SELECT id, note FROM v1.t WHERE id IN (${ids.join(', ')}) ORDER BY id`,
    );
    // b's newer write won; the equal-version copy of the version's origin (a) won; the delete won.
    expect(rows).toEqual([
      { id: behind, note: 'bypass-b' },
      { id: equal, note: 'bypass-a' },
    ]);
    // The equal-version repair left both regions on one new version.
    expect(formatVersion(await version(a, 'a', equal))).toBe(
      formatVersion(await version(b, 'b', equal)),
    );
  });

  it('splits a range along the region that has more rows, when the first region lacks them', async () => {
    const other = deployment(sandbox, ['a', 'b'], ['v2.t'], 'ver2');
    for (const connection of [a, b]) {
      await connection.query(
        'CREATE DATABASE v2; CREATE TABLE v2.t (id INT NOT NULL PRIMARY KEY, note VARCHAR(40) NOT NULL)',
      );
    }
    await seedRows(b, 'v2.t', 1, 2_500, (id) => `(${id}, 'only-b')`);
    await prepareRegion(other.options('a'));
    await prepareRegion(other.options('b'));
    const file = writeConfigFile(workDir, other.yaml, 'verify2.yaml');
    const result = await cli([
      'verify',
      '--config',
      file,
      '--chunk-size',
      '1000',
      '--recheck-delay',
      '0',
      '--rechecks',
      '1',
    ]);
    expect(result.code).toBe(1);
    // One open-ended chunk of a (empty), split into three chunks along b's keys.
    expect(result.stdout).toContain('verify a,b: 2500 divergent rows; 1 table, 0 rows in 3 chunks');
    expect(result.stdout).toContain(
      'DIVERGENT v2.t pk {"id":2500}: a lacks the newest version, held by b',
    );
  });

  it('exits 2 for a wrong command line or configuration', async () => {
    expect((await cli(['verify', '--config', configFile, '--regions', 'a,nowhere'])).code).toBe(2);
    expect((await cli(['verify', '--config', configFile, '--regions', 'a'])).code).toBe(2);
    expect((await cli(['verify', '--config', configFile, '--chunk-size', '0'])).code).toBe(2);
    const unknown = await cli(['verify', '--config', configFile, '--tables', 'v1.nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--tables: v1.nope is not in any pipeline');
  });
});
