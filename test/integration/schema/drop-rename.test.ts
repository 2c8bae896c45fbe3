/**
 * DROP COLUMN and RENAME COLUMN rolled out region by region while every
 * region writes (issue 13): the application's INSERT, UPDATE and DELETE
 * keep working in the region that changed first, the others run the same
 * DDL about 10 s later, and once all have run it the regions converge with
 * no dead letter and nothing held. A region that dropped a column ignores
 * the values other regions still send for it; one that renamed a column
 * applies their values for the old name to the new one
 * (`_cdc_column_history`, written by capture when it reads the ALTER).
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { seededRandom, withSeed } from '../../support/random.js';
import { deadLetterCounts } from '../../support/kafka.js';
import { heldNow, RegionLock } from '../../support/schema-change.js';

jest.setTimeout(300_000);

const REGIONS = ['r1', 'r2', 'r3'] as const;
type Region = (typeof REGIONS)[number];
/** How long the other regions wait before running the DDL the first region ran. */
const ROLLING_DELAY_MS = 10_000;
const KEYS = 40;

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.dropped (id INT PRIMARY KEY, a VARCHAR(30) NOT NULL, b INT NOT NULL DEFAULT 7, c INT NULL)',
  'CREATE TABLE app.renamed (id INT PRIMARY KEY, a VARCHAR(30) NULL, c INT NULL)',
];

/** A region's application: the columns it knows now, and what it managed to write since the DDL. */
interface App {
  columns: string[];
  lock: RegionLock;
  afterDdl: { insert: number; update: number; delete: number };
}

describe('DROP and RENAME COLUMN rolled out region by region', () => {
  let cluster: Cluster;
  const db = new Map<Region, mysql.Connection>();
  const conn = (region: Region): mysql.Connection => db.get(region) as mysql.Connection;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: [...REGIONS],
      ddl: DDL,
      tables: ['app.*'],
      extraYaml: 'apply: { holdRecheckIntervalMs: 500 }',
    });
    for (const region of REGIONS) db.set(region, await cluster.db(region));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function contents(table: string): Promise<string[]> {
    return Promise.all(REGIONS.map(async (r) => tableContent(conn(r), table)));
  }

  /**
   * Every region writes `table` (inserts, updates of the columns it knows,
   * deletes) while `ddl` runs in r1 and, ROLLING_DELAY_MS later, in r2 and
   * r3; then the regions must end identical with nothing held or dead-lettered.
   */
  async function rollOut(
    table: string,
    before: string[],
    after: string[],
    ddl: string,
    seed: number,
  ): Promise<void> {
    const random = seededRandom(seed);
    const apps = new Map<Region, App>(
      REGIONS.map((r) => [
        r,
        { columns: before, lock: new RegionLock(), afterDdl: { insert: 0, update: 0, delete: 0 } },
      ]),
    );
    const seedRows = Array.from({ length: KEYS }, (_, i) => `(${i + 1}, 'v${i + 1}')`);
    await conn('r1').query(`INSERT INTO ${table} (id, a) VALUES ${seedRows.join(', ')}`);
    await waitFor(
      async () => new Set(await contents(table)).size === 1,
      60_000,
      () => `${table} did not converge before the DDL`,
    );

    let writing = true;
    const write = async (region: Region, offset: number): Promise<void> => {
      const app = apps.get(region) as App;
      let next = offset;
      while (writing) {
        const roll = random();
        const value = Math.floor(random() * 1000);
        await app.lock.run(async () => {
          const changed = app.columns !== before;
          const text = app.columns.find((c) => c.startsWith('a')) as string;
          const ints = app.columns.filter((c) => c !== text);
          const c = conn(region);
          try {
            if (roll < 0.5) {
              const id = 1 + Math.floor(random() * KEYS);
              const column = ints[Math.floor(random() * ints.length)] as string;
              await c.query(`UPDATE ${table} SET ${text} = ?, ${column} = ? WHERE id = ?`, [
                `${region}-${value}`,
                value,
                id,
              ]);
              if (changed) app.afterDdl.update += 1;
            } else if (roll < 0.85) {
              next += 1;
              const names = ['id', text, ...ints];
              await c.query(
                `INSERT INTO ${table} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`,
                [next, `${region}-${value}`, ...ints.map(() => value)],
              );
              if (changed) app.afterDdl.insert += 1;
            } else {
              const id =
                random() < 0.5
                  ? 1 + Math.floor(random() * KEYS)
                  : offset + 1 + Math.floor(random() * Math.max(1, next - offset));
              await c.query(`DELETE FROM ${table} WHERE id = ?`, [id]);
              if (changed) app.afterDdl.delete += 1;
            }
          } catch (err) {
            // Concurrent applier writes may deadlock a statement; it then did not happen.
            if (![1213, 1205].includes(Number((err as { errno?: unknown }).errno))) throw err;
          }
        });
        await sleep(10);
      }
    };
    const writers = REGIONS.map((r, i) => write(r, (i + 1) * 100_000));
    const runDdl = async (region: Region): Promise<void> => {
      const app = apps.get(region) as App;
      await app.lock.run(async () => {
        await conn(region).query(ddl);
        app.columns = after;
      });
    };

    try {
      await sleep(1_000);
      await runDdl('r1');
      await sleep(ROLLING_DELAY_MS);
      for (const region of ['r2', 'r3'] as const) await runDdl(region);
      await sleep(3_000);
    } finally {
      writing = false;
      await Promise.all(writers);
    }

    // The application kept working in r1 after its DDL.
    const r1 = (apps.get('r1') as App).afterDdl;
    expect(r1.insert).toBeGreaterThan(0);
    expect(r1.update).toBeGreaterThan(0);
    expect(r1.delete).toBeGreaterThan(0);

    await waitFor(
      async () => new Set(await contents(table)).size === 1,
      90_000,
      async () =>
        (await contents(table)).map((c, i) => `${REGIONS[i]}: ${c.slice(0, 600)}`).join('\n'),
    );
    for (const region of REGIONS)
      await waitFor(
        async () => Object.keys(await heldNow(cluster.daemons.get(region)!)).length === 0,
        30_000,
        async () =>
          `${region} still holds ${JSON.stringify(await heldNow(cluster.daemons.get(region)!))}`,
      );
    expect(await deadLetterCounts(cluster.sandbox, REGIONS)).toEqual({});
    const [columns] = await conn('r2').query<mysql.RowDataPacket[]>(
      `SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS
        WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) = ? AND COLUMN_NAME NOT LIKE '\\_cdc\\_%' ORDER BY ORDINAL_POSITION`,
      [table],
    );
    expect(columns.map((c) => String(c.name))).toEqual(['id', ...after]);
    const [rows] = await conn('r1').query<mysql.RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM ${table}`,
    );
    console.log(
      `${ddl}: converged with ${String(rows[0]?.n)} rows; r1 after its DDL: ${JSON.stringify(r1)}; seed ${seed}`,
    );
  }

  it('DROP COLUMN in one region, the others 10 s later: converged, nothing held, no dead letter', async () => {
    await withSeed((seed) =>
      rollOut(
        'app.dropped',
        ['a', 'b', 'c'],
        ['a', 'c'],
        'ALTER TABLE app.dropped DROP COLUMN b',
        seed,
      ),
    );
  });

  it('RENAME COLUMN in one region, the others 10 s later: values sent under the old name land in the new one', async () => {
    await withSeed((seed) =>
      rollOut(
        'app.renamed',
        ['a', 'c'],
        ['a2', 'c'],
        'ALTER TABLE app.renamed RENAME COLUMN a TO a2',
        seed,
      ),
    );
  });
});
