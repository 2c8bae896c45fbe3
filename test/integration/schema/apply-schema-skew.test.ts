/**
 * Apply's side of schema changes (issue 13, items 3–7): regions change their
 * schemas one after the other while every region writes. An event that is
 * only early (a column, a wider type or a table this region does not have
 * yet) is held with its partition, shown on `cdc_apply_held` and `/readyz`,
 * and applied by itself once the local schema allows it: nothing is
 * dead-lettered, nothing truncated, and the regions end identical.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { seededRandom, withSeed } from '../../support/random.js';

jest.setTimeout(300_000);

const REGIONS = ['r1', 'r2', 'r3'] as const;
type Region = (typeof REGIONS)[number];
/** How long the other regions wait before running the DDL the first region ran. */
const ROLLING_DELAY_MS = 20_000;

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(50), score INT)',
  'CREATE TABLE app.prices (id INT PRIMARY KEY, label VARCHAR(10), amount DECIMAL(6,2))',
];

describe('apply: schema skew across regions', () => {
  let cluster: Cluster;
  const db = new Map<Region, mysql.Connection>();
  const conn = (region: Region): mysql.Connection => db.get(region) as mysql.Connection;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: [...REGIONS],
      ddl: DDL,
      tables: ['app.*'],
      extraYaml: 'apply: { holdRecheckIntervalMs: 500, topicDiscoveryIntervalMs: 1000 }',
    });
    for (const region of REGIONS) db.set(region, await cluster.db(region));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function held(region: Region, table: string): Promise<Map<string, number>> {
    const metric = await cluster.daemons.get(region)!.metrics.applyHeld.get();
    const byReason = new Map<string, number>();
    for (const v of metric.values)
      if (v.labels.table === table)
        byReason.set(
          String(v.labels.reason),
          (byReason.get(String(v.labels.reason)) ?? 0) + v.value,
        );
    return byReason;
  }

  async function readyz(region: Region): Promise<{ status: number; body: string }> {
    const port = cluster.daemons.get(region)!.metricsPort;
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { status: response.status, body: await response.text() };
  }

  async function deadLetters(region: Region): Promise<number> {
    const metric = await cluster.daemons.get(region)!.metrics.deadLetterTotal.get();
    return metric.values.reduce((sum, v) => sum + v.value, 0);
  }

  async function contents(table: string): Promise<string[]> {
    return Promise.all(REGIONS.map(async (r) => tableContent(conn(r), table)));
  }

  async function waitConverged(table: string, timeoutMs: number): Promise<void> {
    await waitFor(
      async () => new Set(await contents(table)).size === 1,
      timeoutMs,
      async () =>
        (await contents(table)).map((c, i) => `${REGIONS[i]}: ${c.slice(0, 600)}`).join('\n'),
    );
  }

  it('rolling ADD COLUMN under writes in every region: held, not dead-lettered, identical everywhere', async () => {
    await withSeed(async (seed) => {
      const random = { next: seededRandom(seed) };
      const rows = Array.from({ length: 30 }, (_, i) => `(${i + 1}, 'u${i + 1}', 0)`);
      await conn('r1').query(`INSERT INTO app.users VALUES ${rows.join(', ')}`);
      await waitConverged('app.users', 60_000);

      const hasTier = new Map<Region, boolean>(REGIONS.map((r) => [r, false]));
      let writing = true;
      let written = 0;
      const writer = async (region: Region, offset: number): Promise<void> => {
        let next = offset;
        while (writing) {
          const c = conn(region);
          const tier = hasTier.get(region) === true;
          const roll = random.next();
          const score = Math.floor(random.next() * 1000);
          const tag = `${region}-${score}`;
          if (roll < 0.5) {
            const id = 1 + Math.floor(random.next() * 30);
            await (tier
              ? c.query('UPDATE app.users SET score = ?, tier = ? WHERE id = ?', [score, tag, id])
              : c.query('UPDATE app.users SET score = ? WHERE id = ?', [score, id]));
          } else if (roll < 0.85) {
            next += 1;
            await (tier
              ? c.query('INSERT INTO app.users (id, name, score, tier) VALUES (?, ?, ?, ?)', [
                  next,
                  `n${next}`,
                  score,
                  tag,
                ])
              : c.query('INSERT INTO app.users (id, name, score) VALUES (?, ?, ?)', [
                  next,
                  `n${next}`,
                  score,
                ]));
          } else if (next > offset) {
            await c.query('DELETE FROM app.users WHERE id = ?', [
              offset + 1 + Math.floor(random.next() * (next - offset)),
            ]);
          }
          written += 1;
          await sleep(10);
        }
      };
      const writers = REGIONS.map((r, i) => writer(r, (i + 1) * 100_000));

      await sleep(1_000);
      // r1 adds the column and writes it at once.
      await conn('r1').query('ALTER TABLE app.users ADD COLUMN tier VARCHAR(20) NULL');
      hasTier.set('r1', true);
      const alteredAt = Date.now();

      // While the others lack it: the hold shows on the gauge and on /readyz.
      const seen = new Map<Region, { metric: boolean; readyz: string | undefined }>();
      const holdStarted = new Map<Region, number>();
      while (Date.now() - alteredAt < ROLLING_DELAY_MS) {
        for (const region of ['r2', 'r3'] as const) {
          const entry = seen.get(region) ?? { metric: false, readyz: undefined };
          if (((await held(region, 'app.users')).get('column_missing') ?? 0) > 0) {
            entry.metric = true;
            if (!holdStarted.has(region)) holdStarted.set(region, Date.now());
          }
          const ready = await readyz(region);
          const line = ready.body
            .split('\n')
            .find((l) => /app\.users from r1 held \d+ s: column tier missing here/.test(l));
          if (ready.status === 503 && line !== undefined) entry.readyz = line.trim();
          seen.set(region, entry);
        }
        await sleep(250);
      }
      // The others add it ~20 s later.
      for (const region of ['r2', 'r3'] as const) {
        await conn(region).query('ALTER TABLE app.users ADD COLUMN tier VARCHAR(20) NULL');
        hasTier.set(region, true);
      }
      const holdEnded = new Map<Region, number>();
      await waitFor(
        async () => {
          for (const region of ['r2', 'r3'] as const) {
            if (holdEnded.has(region)) continue;
            if (((await held(region, 'app.users')).get('column_missing') ?? 0) === 0)
              holdEnded.set(region, Date.now());
          }
          return holdEnded.size === 2;
        },
        60_000,
        () => `holds: ${[...holdEnded.keys()].join(', ')} ended`,
      );
      await sleep(3_000);
      writing = false;
      await Promise.all(writers);

      await waitConverged('app.users', 90_000);
      for (const region of ['r2', 'r3'] as const) {
        expect({ region, metric: seen.get(region)?.metric }).toEqual({ region, metric: true });
        expect(seen.get(region)?.readyz ?? `no /readyz reason seen in ${region}`).toMatch(
          /app\.users from r1 held \d+ s: column tier missing here/,
        );
      }
      for (const region of REGIONS) expect(await deadLetters(region)).toBe(0);
      const [withTier] = await conn('r2').query<mysql.RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM app.users WHERE tier LIKE 'r1-%'",
      );
      expect(Number(withTier[0]?.n)).toBeGreaterThan(0);

      // An update that changes only the column added after prepare is a new version everywhere.
      await conn('r1').query("UPDATE app.users SET tier = 'only-tier' WHERE id = 1");
      const tierOf = async (region: Region): Promise<unknown> => {
        const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
          'SELECT tier FROM app.users WHERE id = 1',
        );
        return rows[0]?.tier;
      };
      await waitFor(
        async () => (await tierOf('r2')) === 'only-tier' && (await tierOf('r3')) === 'only-tier',
        30_000,
        async () => `r2 ${String(await tierOf('r2'))}, r3 ${String(await tierOf('r3'))}`,
      );
      for (const region of ['r2', 'r3'] as const) {
        const started = holdStarted.get(region) ?? alteredAt;
        console.log(
          `rolling ADD COLUMN: ${region} held app.users from r1 for ${((holdEnded.get(region)! - started) / 1000).toFixed(1)} s ` +
            `(other regions altered ${ROLLING_DELAY_MS / 1000} s after r1); ${written} writes in 3 regions; /readyz said: ${seen.get(region)?.readyz}`,
        );
      }
    });
  });

  it('a widened VARCHAR and DECIMAL in one region first: held, never truncated, applied once the others widen', async () => {
    await conn('r1').query(
      'ALTER TABLE app.prices MODIFY label VARCHAR(40), MODIFY amount DECIMAL(12,4)',
    );
    // Too long for VARCHAR(10); too many integer digits; a fraction DECIMAL(6,2) would round silently.
    await conn('r1').query(
      "INSERT INTO app.prices VALUES (1, 'a label longer than ten', 12.5), (2, 'short', 12345678.5), (3, 'frac', 1.2345)",
    );
    const exact = JSON.stringify([
      { id: 1, label: 'a label longer than ten', amount: '12.5000' },
      { id: 2, label: 'short', amount: '12345678.5000' },
      { id: 3, label: 'frac', amount: '1.2345' },
    ]);
    for (const region of ['r2', 'r3'] as const) {
      await waitFor(
        async () => ((await held(region, 'app.prices')).get('type_too_narrow') ?? 0) > 0,
        30_000,
        () => `no type hold of app.prices in ${region}`,
      );
      const ready = await readyz(region);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatch(
        /app\.prices from r1 held \d+ s: column (label|amount) .* cannot hold/,
      );
    }
    await sleep(2_000);
    // Nothing truncated or rounded: the held rows are simply not there yet.
    for (const region of ['r2', 'r3'] as const) {
      const [rows] = await conn(region).query('SELECT * FROM app.prices ORDER BY id');
      expect(rows).toEqual([]);
    }
    for (const region of ['r2', 'r3'] as const)
      await conn(region).query(
        'ALTER TABLE app.prices MODIFY label VARCHAR(40), MODIFY amount DECIMAL(12,4)',
      );
    await waitConverged('app.prices', 30_000);
    expect(await tableContent(conn('r2'), 'app.prices')).toBe(exact);
    for (const region of REGIONS) expect(await deadLetters(region)).toBe(0);
    await waitFor(
      async () =>
        (await held('r2', 'app.prices')).size === 0 && (await held('r3', 'app.prices')).size === 0,
      10_000,
      () => 'app.prices still held',
    );
  });

  // Needs the capture side of issue 13 item 7 (src/capture, src/prepare): a table
  // created under `app.*` is prepared by its region's daemon and captured from its
  // first row.
  it('a new table under app.* replicates without a restart; a region without it holds its events', async () => {
    await conn('r1').query('CREATE TABLE app.fresh (id INT PRIMARY KEY, v VARCHAR(20))');
    await waitFor(
      async () => {
        const [cols] = await conn('r1').query<mysql.RowDataPacket[]>(
          "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'fresh' AND COLUMN_NAME = '_cdc_ts'",
        );
        return Number(cols[0]?.n) === 1;
      },
      30_000,
      () => 'r1 did not prepare app.fresh',
    );
    await conn('r1').query("INSERT INTO app.fresh VALUES (1, 'first'), (2, 'second')");
    // r2 creates it a little later; r3 only after the hold is seen.
    await sleep(3_000);
    await conn('r2').query('CREATE TABLE app.fresh (id INT PRIMARY KEY, v VARCHAR(20))');
    await waitFor(
      async () => ((await held('r3', 'app.fresh')).get('table_missing') ?? 0) > 0,
      30_000,
      () => 'no hold of app.fresh in r3',
    );
    expect((await readyz('r3')).body).toContain('app.fresh from r1 held');
    await conn('r3').query('CREATE TABLE app.fresh (id INT PRIMARY KEY, v VARCHAR(20))');
    await conn('r3').query("INSERT INTO app.fresh VALUES (3, 'from r3')");
    await waitConverged('app.fresh', 60_000);
    expect(await tableContent(conn('r2'), 'app.fresh')).toBe(
      JSON.stringify([
        { id: 1, v: 'first' },
        { id: 2, v: 'second' },
        { id: 3, v: 'from r3' },
      ]),
    );
    for (const region of REGIONS) expect(await deadLetters(region)).toBe(0);
  });
});
