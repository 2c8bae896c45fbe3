/**
 * Eviction of rows whose residency moved away from a region (issue 16,
 * docs/GOVERNANCE.md "Eviction"): three regions, two of them in zone eu,
 * the governance tests' policy, daemons in this process, while another
 * region keeps writing.
 *
 * - A US row (plain everywhere) and a DE row (masked in us-east) moved to CH
 *   (zone eu only) leave us-east within seconds and stay in the zone; us-east
 *   keeps value-free tombstones of them.
 * - They stay gone after us-east's applier replays every topic it reads
 *   from the earliest offset.
 * - A row moved back to US comes back to us-east, plain.
 * - Concurrent move and edit in two regions, one of them stopped and
 *   restarted: each region holds its projection of the winner (the newer
 *   write), in both orders, including an edit in the region that loses the
 *   row; `verify` then exits 0.
 */
import { jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { compileGovernance } from '../../../src/config/compile-governance.js';
import { topicsReadableBy } from '../../../src/governance/topics.js';
import { waitFor, type Cluster } from '../../support/cluster.js';
import {
  DE,
  GOVERNED_REGIONS,
  US,
  startGovernedCluster,
  type CliResult,
  type GovernedCluster,
} from '../../support/governance.js';
import { groupBehind } from '../../support/kafka.js';

jest.setTimeout(420_000);

const PREFIX = 'cdc';
const COLUMNS = 'id, country, email, phone, note, name';

/** A row plain everywhere, for the concurrent cases: `id` and a name. */
const person = (id: number, name: string): Record<string, unknown> => ({
  ...US,
  id,
  email: `person.${id}@example.com`,
  name,
});

describe('governance: eviction of rows whose residency moved (3 regions, two in zone eu)', () => {
  let governed: GovernedCluster;
  let cluster: Cluster;
  let admin: Admin;
  let failed = false;
  let writing = true;
  let background: Promise<number> | undefined;

  beforeAll(async () => {
    governed = await startGovernedCluster('eviction', () => failed);
    cluster = governed.cluster;
    const brokers = [...(cluster.sandbox.kafka?.brokers ?? [])];
    admin = new Kafka({ clientId: 'test-eviction', brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    // The application keeps writing in eu-central throughout: rows of every residency.
    const writer = await cluster.db('eu-central');
    background = (async () => {
      let n = 0;
      while (writing) {
        const id = 1000 + n;
        const country = ['US', 'DE', 'CH'][n % 3] as string;
        await writer.query('INSERT INTO app.people SET ?', [
          { ...person(id, `writer ${n}`), country },
        ]);
        if (n > 3)
          await writer.query('UPDATE app.people SET note = ? WHERE id = ?', [`edit ${n}`, id - 3]);
        n += 1;
        await sleep(50);
      }
      return n;
    })();
  });

  afterAll(async () => {
    writing = false;
    await background?.catch(() => undefined);
    await admin?.disconnect();
    await governed?.stop();
  });

  async function row(region: string, id: number): Promise<mysql.RowDataPacket | undefined> {
    const db = await cluster.db(region);
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM app.people WHERE id = ?`,
      [id],
    );
    return rows[0];
  }

  async function tombstonesOf(region: string): Promise<mysql.RowDataPacket[]> {
    const db = await cluster.db(region);
    const schema = cluster.options.get(region)?.internalSchema ?? '_cdc';
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      `SELECT LOWER(HEX(pk_hash)) AS h, CAST(pk AS CHAR) AS pk FROM \`${schema}\`._cdc_tombstones WHERE tbl = 'app.people'`,
    );
    return rows;
  }

  /** Waits until `region` holds `id` as `expected` (undefined: no row). */
  async function waitForRow(
    region: string,
    id: number,
    expected: Record<string, unknown> | undefined,
    timeoutMs = 30_000,
  ): Promise<void> {
    const text = (r: unknown): string => JSON.stringify(r === undefined ? null : { ...r });
    await waitFor(
      async () => text(await row(region, id)) === text(expected),
      timeoutMs,
      async () => `${region} id ${id}: ${text(await row(region, id))}, expected ${text(expected)}`,
    );
  }

  const verify = (): Promise<CliResult> =>
    governed.cli('verify', ['--recheck-delay', '1500', '--rechecks', '4']);

  it('evicts a row that moved to CH from us-east within seconds, and keeps it in the zone', async () => {
    try {
      const euWest = await cluster.db('eu-west');
      const moved = person(3, 'Moving Person');
      await euWest.query('INSERT INTO app.people SET ?', [moved]);
      await euWest.query('INSERT INTO app.people SET ?', [DE]);
      for (const region of GOVERNED_REGIONS) await waitForRow(region, 3, moved);
      await waitFor(
        async () => (await row('us-east', 1)) !== undefined,
        30_000,
        () => 'the DE row never reached us-east (masked)',
      );

      await euWest.query("UPDATE app.people SET country = 'CH' WHERE id IN (1, 3)");
      const startedMs = Date.now();
      await waitForRow('us-east', 3, undefined, 15_000);
      await waitForRow('us-east', 1, undefined, 15_000);
      const evictedInMs = Date.now() - startedMs;
      expect(evictedInMs).toBeLessThan(15_000);
      await waitForRow('eu-central', 3, { ...moved, country: 'CH' });
      await waitForRow('eu-central', 1, { ...DE, country: 'CH' });
      expect(await row('eu-west', 3)).toEqual({ ...moved, country: 'CH' });

      // us-east keeps tombstones of both keys, without their values.
      const tombstones = await tombstonesOf('us-east');
      expect(tombstones.length).toBeGreaterThanOrEqual(2);
      for (const t of tombstones.filter((t) => t.pk === '[]'))
        expect(t.h).toMatch(/^[0-9a-f]{64}$/);
      expect(tombstones.filter((t) => t.pk === '[]').length).toBeGreaterThanOrEqual(2);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('stays gone after us-east replays every topic it reads from the earliest offset', async () => {
    try {
      const governance = compileGovernance(cluster.config);
      const topics = topicsReadableBy(
        {
          topicPrefix: PREFIX,
          regions: GOVERNED_REGIONS,
          zones: governance?.zones ?? {},
          policies: governance?.policies ?? [],
          tables: ['app.people', 'app.vault'],
        },
        'us-east',
      ).map((t) => t.topic);
      const existing = new Set(await admin.listTopics());
      const replayed = topics.filter((t) => existing.has(t));
      expect(replayed).toEqual(
        expect.arrayContaining(['cdc.eu-west.app.people', 'cdc-masked-us-east.eu-west.app.people']),
      );
      const groupId = 'cdc.apply.us-east';
      await cluster.stopDaemon('us-east');
      for (const topic of replayed) await admin.resetOffsets({ groupId, topic, earliest: true });
      await cluster.startDaemon('us-east');
      // Replayed to the end: the group's committed offsets reach every partition's end
      // (the writer keeps adding, so each end is taken when it is checked).
      await waitFor(
        async () => (await groupBehind(admin, groupId, replayed)).length === 0,
        120_000,
        async () =>
          `us-east did not replay its topics to the end: ${(await groupBehind(admin, groupId, replayed)).join(', ')}`,
      );
      expect(await row('us-east', 3)).toBeUndefined();
      expect(await row('us-east', 1)).toBeUndefined();
      expect(await row('eu-central', 3)).toMatchObject({ country: 'CH' });
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('brings a row moved back to US to us-east again, plain', async () => {
    try {
      const euCentral = await cluster.db('eu-central');
      await euCentral.query(
        "UPDATE app.people SET country = 'US', name = 'Back Home' WHERE id = 3",
      );
      const expected = { ...person(3, 'Back Home'), country: 'US' };
      for (const region of GOVERNED_REGIONS) await waitForRow(region, 3, expected);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('converges on the newer of a concurrent move and edit, with a daemon stopped and restarted', async () => {
    try {
      const euWest = await cluster.db('eu-west');
      const euCentral = await cluster.db('eu-central');
      const usEast = await cluster.db('us-east');
      // 11..14 plain everywhere to start with.
      for (const id of [11, 12, 13, 14])
        await euWest.query('INSERT INTO app.people SET ?', [person(id, `p${id}`)]);
      for (const id of [11, 12, 13, 14]) await waitForRow('us-east', id, person(id, `p${id}`));
      for (const id of [11, 12, 13, 14]) await waitForRow('eu-central', id, person(id, `p${id}`));

      // eu-central stopped: its edits wait in its binlog.
      await cluster.stopDaemon('eu-central');
      // 11: eu-central edits, then eu-west moves it to CH (newer): the move wins.
      await euCentral.query("UPDATE app.people SET name = 'edited first' WHERE id = 11");
      await sleep(20);
      await euWest.query("UPDATE app.people SET country = 'CH' WHERE id = 11");
      // 12: eu-west moves it to CH, then eu-central edits it (newer, still US): the edit wins.
      await euWest.query("UPDATE app.people SET country = 'CH' WHERE id = 12");
      await sleep(20);
      await euCentral.query("UPDATE app.people SET name = 'edited last' WHERE id = 12");
      await cluster.stopDaemon('us-east');
      // 13: us-east (which loses the row to the move) edits first; eu-west's move is newer.
      await usEast.query("UPDATE app.people SET name = 'us edit first' WHERE id = 13");
      await sleep(20);
      await euWest.query("UPDATE app.people SET country = 'CH' WHERE id = 13");
      // 14: eu-west moves it first; us-east edits it later, while it still holds it: the edit wins.
      await euWest.query("UPDATE app.people SET country = 'CH' WHERE id = 14");
      await sleep(20);
      await usEast.query("UPDATE app.people SET name = 'us edit last' WHERE id = 14");
      await cluster.startDaemon('eu-central');
      await cluster.startDaemon('us-east');

      const movedFrom = (id: number): Record<string, unknown> => ({
        ...person(id, `p${id}`),
        country: 'CH',
      });
      for (const region of ['eu-west', 'eu-central']) {
        await waitForRow(region, 11, movedFrom(11), 60_000);
        await waitForRow(region, 12, person(12, 'edited last'), 60_000);
        await waitForRow(region, 13, movedFrom(13), 60_000);
        await waitForRow(region, 14, person(14, 'us edit last'), 60_000);
      }
      await waitForRow('us-east', 11, undefined, 60_000);
      await waitForRow('us-east', 12, person(12, 'edited last'), 60_000);
      await waitForRow('us-east', 13, undefined, 60_000);
      await waitForRow('us-east', 14, person(14, 'us edit last'), 60_000);

      writing = false;
      const written = await background;
      expect(written).toBeGreaterThan(10);
      const result = await verify();
      if (result.code !== 0) console.error(result.stdout, result.stderr);
      expect(result.code).toBe(0);
      expect(result.stdout).not.toContain('NOT ALLOWED');
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
