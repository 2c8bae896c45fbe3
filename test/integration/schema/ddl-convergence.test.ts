/**
 * DDL interleaved with the convergence workload (issue 13, randomized):
 * three regions write hot keys (inserts, updates, read-modify-write,
 * deletes) while a seeded schedule rolls DDL out region by region, with
 * random delays between regions and the rollouts overlapping: ADD COLUMN
 * (written at once where it exists), a widened VARCHAR and DECIMAL (longer
 * and finer values written at once), DROP COLUMN and RENAME COLUMN. Once
 * writes stop and every region ran every DDL, every region must hold the
 * same visible content, nothing may be held and no dead letter written.
 *
 * CDC_TEST_SEED=<n> replays one seed; otherwise CDC_DDL_SEED_COUNT fresh
 * seeds (default 2) run; `npm run test:ddl-sweep` runs more. A failure
 * names its seed.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { randomInt, seededRandom, withSeed } from '../../support/random.js';
import { deadLetterCounts } from '../../support/kafka.js';
import { heldNow, RegionLock } from '../../support/schema-change.js';

const REGIONS = ['ra', 'rb', 'rc'] as const;
type Region = (typeof REGIONS)[number];
const HOT_KEYS = 12;

function seedCount(): number {
  if (process.env.CDC_TEST_SEED !== undefined && process.env.CDC_TEST_SEED !== '') return 1;
  return Math.max(1, Number(process.env.CDC_DDL_SEED_COUNT ?? 2));
}
const SEEDS = seedCount();
jest.setTimeout(120_000 + SEEDS * 120_000);

/** A column as a region's application knows it, and what values fit it. */
interface Column {
  name: string;
  kind: 'int' | 'text' | 'decimal';
  /** text: characters; decimal: digits before and after the point. */
  length: number;
  scale: number;
}

const INITIAL: readonly Column[] = [
  { name: 'val', kind: 'int', length: 0, scale: 0 },
  { name: 'note', kind: 'text', length: 20, scale: 0 },
  { name: 'amount', kind: 'decimal', length: 6, scale: 2 },
  { name: 'legacy', kind: 'int', length: 0, scale: 0 },
  { name: 'old_name', kind: 'text', length: 20, scale: 0 },
];

/** One schema change: its statement and what the application knows after it. */
interface Change {
  label: string;
  sql: (table: string) => string;
  apply: (columns: Column[]) => Column[];
}

const CHANGES: readonly Change[] = [
  {
    label: 'ADD COLUMN extra',
    sql: (t) => `ALTER TABLE ${t} ADD COLUMN extra VARCHAR(20) NULL`,
    apply: (cs) => [...cs, { name: 'extra', kind: 'text', length: 20, scale: 0 }],
  },
  {
    label: 'widen note to VARCHAR(60)',
    sql: (t) => `ALTER TABLE ${t} MODIFY note VARCHAR(60) NULL`,
    apply: (cs) => cs.map((c) => (c.name === 'note' ? { ...c, length: 60 } : c)),
  },
  {
    label: 'widen amount to DECIMAL(12,4)',
    sql: (t) => `ALTER TABLE ${t} MODIFY amount DECIMAL(12,4) NULL`,
    apply: (cs) => cs.map((c) => (c.name === 'amount' ? { ...c, length: 8, scale: 4 } : c)),
  },
  {
    label: 'DROP COLUMN legacy',
    sql: (t) => `ALTER TABLE ${t} DROP COLUMN legacy`,
    apply: (cs) => cs.filter((c) => c.name !== 'legacy'),
  },
  {
    label: 'RENAME COLUMN old_name TO new_name',
    sql: (t) => `ALTER TABLE ${t} RENAME COLUMN old_name TO new_name`,
    apply: (cs) => cs.map((c) => (c.name === 'old_name' ? { ...c, name: 'new_name' } : c)),
  },
];

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A value that fits `column` as the region knows it now (often as long or fine as it allows). */
function valueFor(column: Column, random: () => number, tag: string): string | number | null {
  if (random() < 0.1) return null;
  switch (column.kind) {
    case 'int':
      return randomInt(random, 0, 100_000);
    case 'text': {
      const length = random() < 0.5 ? column.length : randomInt(random, 1, column.length);
      return `${tag}-${'xyzw'.repeat(20)}`.slice(0, length);
    }
    case 'decimal': {
      const digits = (n: number): string =>
        Array.from({ length: n }, () => String(randomInt(random, 0, 9))).join('');
      const integer = digits(randomInt(random, 1, column.length)).replace(/^0+(?=\d)/, '');
      return `${integer}.${digits(column.scale)}`;
    }
  }
}

/** Errors a concurrent writer may legitimately hit; the statement then simply did not happen. */
const EXPECTED_WRITE_ERRORS = new Set([1062, 1213, 1205]);

describe('DDL interleaved with concurrent writes in three regions', () => {
  let cluster: Cluster;
  const db = new Map<Region, mysql.Connection>();
  const conn = (region: Region): mysql.Connection => db.get(region) as mysql.Connection;
  const tables = Array.from({ length: SEEDS }, (_, i) => `app.t${i}`);

  beforeAll(async () => {
    cluster = await startCluster({
      regions: [...REGIONS],
      ddl: [
        'CREATE DATABASE app',
        ...tables.map(
          (t) =>
            `CREATE TABLE ${t} (id INT PRIMARY KEY, val INT NOT NULL DEFAULT 0, note VARCHAR(20) NULL, ` +
            'amount DECIMAL(8,2) NULL, legacy INT NULL, old_name VARCHAR(20) NULL)',
        ),
      ],
      tables,
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

  async function run(table: string, seed: number): Promise<void> {
    const startedMs = Date.now();
    const schedule = seededRandom(seed);
    const columns = new Map<Region, Column[]>(REGIONS.map((r) => [r, [...INITIAL]]));
    const locks = new Map<Region, RegionLock>(REGIONS.map((r) => [r, new RegionLock()]));
    const writes = new Map<Region, number>(REGIONS.map((r) => [r, 0]));
    let writing = true;

    const writer = async (region: Region, random: () => number): Promise<void> => {
      const lock = locks.get(region) as RegionLock;
      const c = conn(region);
      for (let op = 0; writing; op += 1) {
        await lock.run(async () => {
          const known = columns.get(region) as Column[];
          const id = randomInt(random, 1, HOT_KEYS);
          const tag = `${region}${op}`;
          const choice = random();
          try {
            if (choice < 0.25) {
              const names = ['id', ...known.map((k) => k.name)];
              await c.query(
                `INSERT INTO ${table} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`,
                [id, ...known.map((k) => (k.name === 'val' ? op : valueFor(k, random, tag)))],
              );
            } else if (choice < 0.65) {
              const set = known.filter((k) => k.name !== 'val' && random() < 0.5);
              const assigned = set.length > 0 ? set : [known[1] as Column];
              await c.query(
                `UPDATE ${table} SET val = ?, ${assigned.map((k) => `${k.name} = ?`).join(', ')} WHERE id = ?`,
                [op, ...assigned.map((k) => valueFor(k, random, tag)), id],
              );
            } else if (choice < 0.8) {
              await c.beginTransaction();
              try {
                const [rows] = await c.query<mysql.RowDataPacket[]>(
                  `SELECT val FROM ${table} WHERE id = ? FOR UPDATE`,
                  [id],
                );
                if (rows[0] !== undefined)
                  await c.query(`UPDATE ${table} SET val = ? WHERE id = ?`, [
                    Number(rows[0].val) + 1,
                    id,
                  ]);
                await c.commit();
              } catch (err) {
                await c.rollback();
                throw err;
              }
            } else {
              await c.query(`DELETE FROM ${table} WHERE id = ?`, [id]);
            }
            writes.set(region, (writes.get(region) ?? 0) + 1);
          } catch (err) {
            if (!EXPECTED_WRITE_ERRORS.has(Number((err as { errno?: unknown }).errno))) throw err;
          }
        });
        await sleep(randomInt(random, 2, 15));
      }
    };

    /** Rolls one change out region by region, with random delays between regions. */
    const rollOut = async (change: Change, random: () => number): Promise<string> => {
      const steps: string[] = [];
      for (const region of shuffled(REGIONS, random)) {
        const delayMs = randomInt(random, 0, 4_000);
        await sleep(delayMs);
        await (locks.get(region) as RegionLock).run(async () => {
          await conn(region).query(change.sql(table));
          columns.set(region, change.apply(columns.get(region) as Column[]));
        });
        steps.push(`${region}+${delayMs}ms`);
      }
      return `${change.label} (${steps.join(' ')})`;
    };

    const writers = REGIONS.map((r, i) => writer(r, seededRandom(seed * 31 + i + 1)));
    const plan: string[] = [];
    try {
      await sleep(1_000);
      const rollouts: Promise<string>[] = [];
      for (const change of shuffled(CHANGES, schedule)) {
        rollouts.push(rollOut(change, seededRandom(Math.floor(schedule() * 2 ** 31))));
        await sleep(randomInt(schedule, 500, 3_000));
      }
      plan.push(...(await Promise.all(rollouts)));
      await sleep(2_000);
    } finally {
      writing = false;
      await Promise.allSettled(writers);
    }
    await Promise.all(writers);
    const writtenMs = Date.now();

    await waitFor(
      async () => new Set(await contents(table)).size === 1,
      60_000,
      async () =>
        `plan: ${plan.join('; ')}\n` +
        (await contents(table)).map((c, i) => `${REGIONS[i]}: ${c.slice(0, 800)}`).join('\n'),
    );
    for (const region of REGIONS)
      await waitFor(
        async () => Object.keys(await heldNow(cluster.daemons.get(region)!)).length === 0,
        30_000,
        async () =>
          `${region} still holds ${JSON.stringify(await heldNow(cluster.daemons.get(region)!))}`,
      );
    expect(await deadLetterCounts(cluster.sandbox, REGIONS)).toEqual({});
    const [rows] = await conn('ra').query<mysql.RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM ${table}`,
    );
    console.log(
      `seed ${seed}: ${plan.join('; ')}; writes ${JSON.stringify(Object.fromEntries(writes))}; ` +
        `${String(rows[0]?.n)} rows identical in every region ${((Date.now() - writtenMs) / 1000).toFixed(1)} s after writes stopped; ` +
        `${((Date.now() - startedMs) / 1000).toFixed(1)} s in all`,
    );
  }

  for (let i = 0; i < SEEDS; i += 1) {
    it(`converges with DDL rolled out under writes (run ${i + 1} of ${SEEDS})`, async () => {
      await withSeed((seed) => run(tables[i] as string, seed));
    });
  }
});
