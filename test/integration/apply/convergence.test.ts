import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import {
  startDaemonProcess,
  waitUntilRunning,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import { seededRandom } from '../../support/random.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';

/**
 * The most important test of the project: random concurrent writes in three
 * regions, with a daemon killed -9 and an applier paused along the way, must
 * leave every region with the same visible content once writes stop.
 *
 * CDC_CONVERGENCE_SEEDS (comma-separated) or CDC_CONVERGENCE_SEED_COUNT pick
 * the seeds; `npm run test:convergence-sweep` runs many. A failure names its
 * seed, and CDC_CONVERGENCE_SEEDS=<seed> replays it.
 */
jest.setTimeout(900_000);

const REGIONS = ['ra', 'rb', 'rc'];
const HOT_KEYS = 8;
const WRITERS_PER_REGION = 2;
const OPS_PER_WRITER = Number(process.env.CDC_CONVERGENCE_OPS ?? 60);

function seeds(): number[] {
  const explicit = process.env.CDC_CONVERGENCE_SEEDS;
  if (explicit !== undefined && explicit !== '')
    return explicit.split(',').map((s) => Number.parseInt(s, 10));
  const count = Number(process.env.CDC_CONVERGENCE_SEED_COUNT ?? 2);
  const base = Number(process.env.CDC_CONVERGENCE_SEED_BASE ?? 1001);
  return Array.from({ length: count }, (_, i) => base + i);
}

/** Errors a concurrent writer may legitimately hit; the operation then simply did not happen. */
const EXPECTED_WRITE_ERRORS = new Set([1062, 1213, 1205]);

async function writer(
  db: mysql.Connection,
  table: string,
  random: () => number,
  tag: string,
): Promise<number> {
  const key = (): number => 1 + Math.floor(random() * HOT_KEYS);
  let committed = 0;
  for (let op = 0; op < OPS_PER_WRITER; op += 1) {
    const choice = random();
    const id = key();
    try {
      if (choice < 0.2) {
        await db.query(`INSERT INTO ${table} (id, val, note) VALUES (?, ?, ?)`, [
          id,
          Math.floor(random() * 1000),
          `${tag}-i${op}`,
        ]);
      } else if (choice < 0.45) {
        await db.query(`UPDATE ${table} SET val = ?, note = ? WHERE id = ?`, [
          Math.floor(random() * 1000),
          `${tag}-u${op}`,
          id,
        ]);
      } else if (choice < 0.6) {
        // Read-modify-write increment.
        await db.beginTransaction();
        const [rows] = await db.query<mysql.RowDataPacket[]>(
          `SELECT val FROM ${table} WHERE id = ? FOR UPDATE`,
          [id],
        );
        if (rows[0] !== undefined) {
          await db.query(`UPDATE ${table} SET val = ?, note = ? WHERE id = ?`, [
            Number(rows[0].val) + 1,
            `${tag}-inc${op}`,
            id,
          ]);
        }
        await db.commit();
      } else if (choice < 0.75) {
        await db.query(`DELETE FROM ${table} WHERE id = ?`, [id]);
      } else if (choice < 0.85) {
        // Delete then re-insert the same key.
        await db.query(`DELETE FROM ${table} WHERE id = ?`, [id]);
        await db.query(`INSERT INTO ${table} (id, val, note) VALUES (?, ?, ?)`, [
          id,
          Math.floor(random() * 1000),
          `${tag}-re${op}`,
        ]);
      } else {
        // A multi-row transaction over several hot keys.
        await db.beginTransaction();
        const a = key();
        const b = key();
        await db.query(
          `INSERT INTO ${table} (id, val, note) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE val = val + 10, note = VALUES(note)`,
          [a, Math.floor(random() * 1000), `${tag}-m${op}`],
        );
        await db.query(`UPDATE ${table} SET val = val * 2, note = ? WHERE id = ?`, [
          `${tag}-m${op}`,
          b,
        ]);
        if (random() < 0.5) await db.query(`DELETE FROM ${table} WHERE id = ?`, [key()]);
        await db.commit();
      }
      committed += 1;
    } catch (err) {
      await db.rollback().catch(() => undefined); // the statement error decides what happens next
      if (!EXPECTED_WRITE_ERRORS.has((err as { errno?: number }).errno ?? 0)) throw err;
    }
    await sleep(Math.floor(random() * 15));
  }
  return committed;
}

/**
 * The same workload on an all-MariaDB fleet and on a mixed one where rc (the
 * region whose daemon is killed -9) runs MySQL 8; CDC_CONVERGENCE_MIXED=0
 * leaves the mixed fleet out. Seed 1001 once failed on the mixed fleet in CI
 * (f397bb7: ra kept a row that rb and rc had deleted) and seed 1008 on the
 * MariaDB fleet in a sweep: two applier transactions of one region
 * (partitions of two source regions, e.g. the backlog after a pause or a
 * restart) raced on a key both read as absent, and a winning delete left the
 * other's inserted row in place. applyChunk now re-checks such keys
 * (concurrent-chunks.test.ts forces the interleaving).
 */
const FLEETS: readonly { label: string; engines: Readonly<Record<string, DatabaseEngine>> }[] = [
  { label: 'MariaDB', engines: {} },
  ...(process.env.CDC_CONVERGENCE_MIXED === '0'
    ? []
    : [{ label: 'MySQL 8 in rc', engines: { rc: 'mysql8' as const } }]),
];

describe.each(FLEETS)(
  'convergence: random concurrent writes in three regions ($label)',
  (fleet) => {
    const seedList = seeds();
    const tables = seedList.map((seed) => `conv.t_${seed}`);
    let cluster: Cluster;
    let dir: string;
    let configFile: string;
    let processDaemon: DaemonProcess | undefined;
    /** A seed failed: keep the scratch directories (servers, binlogs, rc's logs) for a post-mortem. */
    let failed = false;

    beforeAll(async () => {
      cluster = await startCluster({
        keepDir: () => failed,
        regions: REGIONS,
        engines: fleet.engines,
        tables: ['conv.*'],
        ddl: [
          'CREATE DATABASE conv',
          ...tables.map(
            (t) =>
              `CREATE TABLE ${t} (id INT PRIMARY KEY, val BIGINT NOT NULL DEFAULT 0, note VARCHAR(40))`,
          ),
        ],
        startDaemons: false,
      });
      dir = mkdtempSync(join(tmpdir(), 'cdc-convergence-'));
      configFile = join(dir, 'config.yaml');
      writeFileSync(configFile, cluster.yaml);
      // ra and rb run in this process (their appliers can be paused); rc runs
      // as its own process so it can be killed -9.
      await cluster.startDaemon('ra');
      await cluster.startDaemon('rb');
      processDaemon = startDaemonProcess(configFile, 'rc', dir);
      // A first start begins at the end of rc's binlog: writes made before it are not rc's to publish.
      await waitUntilRunning(processDaemon, 60_000);
    });

    afterAll(async () => {
      processDaemon?.child.kill('SIGKILL');
      await processDaemon?.exited;
      await cluster?.stop();
      if (dir === undefined) return;
      if (failed) console.error(`convergence: rc's logs and the configuration kept in ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    });

    const readers = new Map<string, mysql.Connection>();
    async function contents(table: string): Promise<string[]> {
      return Promise.all(
        REGIONS.map(async (r) => {
          let reader = readers.get(r);
          if (reader === undefined) {
            reader = await cluster.db(r);
            readers.set(r, reader);
          }
          return tableContent(reader, table);
        }),
      );
    }

    /**
     * For each key whose row differs between regions: in every region the
     * row with its version columns, its tombstone and its recorded conflicts.
     */
    async function divergence(table: string): Promise<string> {
      const internal = cluster.config.internalSchema;
      const perRegion = await Promise.all(
        REGIONS.map(async (r) => {
          const db = readers.get(r) ?? (await cluster.db(r));
          readers.set(r, db);
          const [rows] = await db.query<mysql.RowDataPacket[]>(
            `SELECT id, val, note, CAST(UNIX_TIMESTAMP(_cdc_ts) * 1000000 AS UNSIGNED) AS ts_us,
                    CAST(_cdc_ver AS CHAR) AS ver FROM ${table} ORDER BY id`,
          );
          const [tombs] = await db.query<mysql.RowDataPacket[]>(
            `SELECT CAST(pk AS CHAR) AS pk, CAST(ver AS CHAR) AS ver FROM ${internal}._cdc_tombstones WHERE tbl = ?`,
            [table],
          );
          const [conflicts] = await db.query<mysql.RowDataPacket[]>(
            `SELECT detected_at, CAST(pk AS CHAR) AS pk, source_region, winner, CAST(local_ver AS CHAR) AS local_ver,
                    CAST(incoming_ver AS CHAR) AS incoming_ver, CAST(local_row AS CHAR) AS local_row,
                    CAST(incoming_row AS CHAR) AS incoming_row
               FROM ${internal}._cdc_conflicts WHERE tbl = ? ORDER BY id`,
            [table],
          );
          return { region: r, rows, tombs, conflicts };
        }),
      );
      // Tombstones key by `["<id>"]`, conflicts by `{"id": <id>}`.
      const idOfPk = (pk: unknown): string => {
        const parsed = JSON.parse(String(pk)) as unknown;
        return String(Array.isArray(parsed) ? parsed[0] : (parsed as { id?: unknown }).id);
      };
      const visible = (row: mysql.RowDataPacket | undefined): string =>
        row === undefined ? '-' : JSON.stringify([row.val, row.note]);
      const ids = new Set(perRegion.flatMap((p) => p.rows.map((row) => String(row.id))));
      const diverged = [...ids].filter(
        (id) =>
          new Set(perRegion.map((p) => visible(p.rows.find((row) => String(row.id) === id)))).size >
          1,
      );
      const lines: string[] = [`diverged keys: ${diverged.join(', ') || '(none)'}`];
      for (const id of diverged) {
        for (const p of perRegion) {
          const row = p.rows.find((r) => String(r.id) === id);
          const tomb = p.tombs.find((t) => idOfPk(t.pk) === id);
          lines.push(
            `  id ${id} in ${p.region}: row ${row === undefined ? '-' : JSON.stringify({ ...row })}; tombstone ${tomb === undefined ? '-' : String(tomb.ver)}`,
          );
          const conflicts = p.conflicts.filter((c) => idOfPk(c.pk) === id);
          if (conflicts.length > 4)
            lines.push(`    (${conflicts.length - 4} earlier conflicts in ${p.region} left out)`);
          for (const c of conflicts.slice(-4))
            lines.push(`    conflict in ${p.region}: ${JSON.stringify({ ...c })}`);
        }
      }
      return lines.join('\n');
    }

    it.each(seedList.map((seed, i) => [seed, tables[i] as string]))(
      'seed %i converges after writers, a kill -9 and a paused applier',
      async (seed, table) => {
        const random = seededRandom(seed);
        const connections = await Promise.all(
          REGIONS.flatMap((r) => Array.from({ length: WRITERS_PER_REGION }, () => cluster.db(r))),
        );
        const writers = connections.map((db, i) =>
          writer(
            db,
            table,
            seededRandom(seed * 1000 + i),
            `${REGIONS[Math.floor(i / WRITERS_PER_REGION)] ?? '?'}w${i}`,
          ),
        );

        // Faults while the writers run: pause ra's applier for 3 s, kill -9 rc and restart it.
        const faults = (async () => {
          await sleep(200 + Math.floor(random() * 800));
          cluster.daemons.get('ra')?.apply?.pause();
          await sleep(3000);
          cluster.daemons.get('ra')?.apply?.resume();
          await sleep(Math.floor(random() * 1000));
          processDaemon?.child.kill('SIGKILL');
          await processDaemon?.exited;
          await sleep(500 + Math.floor(random() * 1000));
          processDaemon = startDaemonProcess(configFile, 'rc', dir);
        })();

        const committed = await Promise.all(writers);
        await faults;
        await Promise.all(connections.map((c) => c.end()));
        try {
          await waitFor(
            async () => new Set(await contents(table)).size === 1,
            120_000,
            async () =>
              (await contents(table)).map((c, i) => `${REGIONS[i] ?? '?'}: ${c}`).join('\n'),
          );
        } catch (err) {
          failed = true;
          let detail: string;
          try {
            detail = await divergence(table);
          } catch (diagErr) {
            detail = `(diagnostics failed: ${(diagErr as Error).message})`;
          }
          throw new Error(
            `seed ${seed} did not converge on the ${fleet.label} fleet (replay with CDC_CONVERGENCE_SEEDS=${seed}); rc log: ${processDaemon?.logFile ?? '-'} (kept, with the sandbox)\n${(err as Error).message}\n${detail}`,
          );
        }
        // The workload really exercised the system: operations committed in every region.
        expect(committed.every((n) => n > OPS_PER_WRITER / 3)).toBe(true);
        for (const region of ['ra', 'rb']) {
          const dead = await cluster.daemons.get(region)!.metrics.deadLetterTotal.get();
          expect({ region, deadLetters: dead.values.reduce((s, v) => s + v.value, 0) }).toEqual({
            region,
            deadLetters: 0,
          });
        }
      },
    );
  },
);
