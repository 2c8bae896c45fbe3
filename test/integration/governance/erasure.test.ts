/**
 * Erasure (issue 16, docs/GOVERNANCE.md "Erasure"): `cdc-replicator erase`
 * removes a row in every region whatever its residency, with its copies in
 * `_cdc_conflicts`, leaves tombstones without key values, reports when
 * every region confirmed, and beats a concurrent update from a region that
 * was stopped and restarted (its write has a later clock but never saw the
 * erasure). Three regions, two in zone eu, daemons in this process, erase
 * run as the CLI in its own process.
 */
import { jest } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import type mysql from 'mysql2/promise';
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

jest.setTimeout(360_000);

const ERASED = { ...US, id: 5, email: 'erase.me.5521@example.com', name: 'Erase Me' };
const KEPT = { ...US, id: 6, email: 'keep.me@example.com', name: 'Keep Me' };

describe('governance: erasure across three regions', () => {
  let governed: GovernedCluster;
  let cluster: Cluster;
  let admin: Admin;
  let failed = false;

  beforeAll(async () => {
    governed = await startGovernedCluster('erasure', () => failed);
    cluster = governed.cluster;
    const brokers = [...(cluster.sandbox.kafka?.brokers ?? [])];
    admin = new Kafka({ clientId: 'test-erasure', brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.disconnect();
    await governed?.stop();
  });

  const cli = (
    command: string,
    args: string[],
    started?: (child: ChildProcess) => void,
  ): Promise<CliResult> => governed.cli(command, args, started);
  const erase = (args: string[], started?: (child: ChildProcess) => void): Promise<CliResult> =>
    cli('erase', args, started);

  async function row(region: string, id: number): Promise<mysql.RowDataPacket | undefined> {
    const db = await cluster.db(region);
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      'SELECT id, country, name FROM app.people WHERE id = ?',
      [id],
    );
    return rows[0];
  }

  const internal = (region: string): string =>
    `\`${cluster.options.get(region)?.internalSchema ?? '_cdc'}\``;

  /** Waits until `region`'s applier committed every partition of the topics `source` writes. */
  async function caughtUp(region: string, source: string): Promise<void> {
    const groupId = `cdc.apply.${region}`;
    const topics = (await admin.listTopics()).filter((t) => t.includes(`.${source}.app.people`));
    await waitFor(
      async () => (await groupBehind(admin, groupId, topics)).length === 0,
      60_000,
      async () =>
        `${region} has not applied ${source}'s topics: ${(await groupBehind(admin, groupId, topics)).join(', ')}`,
    );
  }

  it('refuses a key that is not the primary key, naming it (exit 2)', async () => {
    const result = await erase(['--table', 'app.people', '--key', 'email=x@example.com']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('the primary key of app.people is (id)');
  });

  it('erases a row everywhere, with its conflict copies, and beats a concurrent update from a stopped region', async () => {
    try {
      const euWest = await cluster.db('eu-west');
      for (const r of [ERASED, KEPT, DE]) await euWest.query('INSERT INTO app.people SET ?', [r]);
      for (const region of GOVERNED_REGIONS)
        for (const id of [5, 6, 1])
          await waitFor(
            async () => (await row(region, id)) !== undefined,
            30_000,
            () => `${region} never got id ${id}`,
          );
      // Copies of both rows in every region's conflict log (as the applier records them).
      for (const region of GOVERNED_REGIONS) {
        const db = await cluster.db(region);
        for (const r of [ERASED, KEPT])
          await db.query(
            `INSERT INTO ${internal(region)}._cdc_conflicts
               (tbl, pk, source_region, strategy, winner, local_ver, incoming_ver, local_row, incoming_row)
             VALUES ('app.people', ?, 'eu-central', 'lww', 'incoming', NULL, '{"o":"eu-central","h":1,"vv":{"eu-central":1}}', ?, ?)`,
            [JSON.stringify({ id: r.id }), JSON.stringify(r), JSON.stringify(r)],
          );
      }

      // us-east is down; the erasure is made in eu-west while it is.
      await cluster.stopDaemon('us-east');
      let child: ChildProcess | undefined;
      const running = erase(
        ['--table', 'app.people', '--key', 'id=5', '--region', 'eu-west', '--timeout', '180000'],
        (c) => {
          child = c;
        },
      );
      let out = '';
      child?.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      await waitFor(
        async () => Promise.resolve(out.includes('published the erasure')),
        60_000,
        () => `erase did not publish: ${out}`,
      );
      // Now us-east, which has not seen the erasure, updates the row: a later clock, unaware.
      const usEast = await cluster.db('us-east');
      await usEast.query("UPDATE app.people SET name = 'Written Later' WHERE id = 5");
      await cluster.startDaemon('us-east');

      const result = await running;
      if (result.code !== 0) console.error(result.stdout, result.stderr);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/erased app\.people key [0-9a-f]{64} in eu-west \(origin\)/);
      expect(result.stdout).toContain('confirmed in eu-central');
      expect(result.stdout).toContain('confirmed in us-east');
      expect(result.stdout).toMatch(
        /erased app\.people key [0-9a-f]{64} in every region \(3\): eu-west, eu-central, us-east/,
      );
      expect(result.stdout).not.toContain(ERASED.email);
      expect(result.stdout).not.toContain(ERASED.name);

      // us-east's late update reached the others and lost there.
      await caughtUp('eu-west', 'us-east');
      await caughtUp('eu-central', 'us-east');
      for (const region of GOVERNED_REGIONS) {
        expect(await row(region, 5)).toBeUndefined();
        expect(await row(region, 6)).toMatchObject({ name: 'Keep Me' });
        const db = await cluster.db(region);
        const [conflicts] = await db.query<mysql.RowDataPacket[]>(
          `SELECT CAST(pk AS CHAR) AS pk FROM ${internal(region)}._cdc_conflicts WHERE tbl = 'app.people'`,
        );
        const keys = conflicts.map((c) => JSON.parse(String(c.pk)) as { id: number });
        expect(keys.some((k) => k.id === 5)).toBe(false);
        expect(keys.some((k) => k.id === 6)).toBe(true);
        const [tombstones] = await db.query<mysql.RowDataPacket[]>(
          `SELECT CAST(pk AS CHAR) AS pk FROM ${internal(region)}._cdc_tombstones WHERE tbl = 'app.people'`,
        );
        const texts = tombstones.map((t) => String(t.pk));
        expect(texts.filter((t) => t.includes('erased'))).toHaveLength(1);
        for (const text of texts) expect(text).not.toContain('["5"]');
      }

      // The origin's audit trail records the erasure for every region, without a value.
      const audit = await cli('audit', ['--table', 'app.people', '--key', 'id=5']);
      expect(audit.code).toBe(0);
      const erasedLines = audit.stdout.split('\n').filter((l) => l.includes(' erased '));
      expect(erasedLines.map((l) => l.split('  ')[1]).sort()).toEqual([
        'eu-west -> eu-central',
        'eu-west -> eu-west',
        'eu-west -> us-east',
      ]);
      expect(audit.stdout).not.toContain(ERASED.email);

      // A DE row (masked in us-east) is erased everywhere too.
      const de = await erase(['--table', 'app.people', '--key', 'id=1', '--timeout', '120000']);
      expect(de.code).toBe(0);
      for (const region of GOVERNED_REGIONS) expect(await row(region, 1)).toBeUndefined();

      // After the erasure, a new row with the key may be written again, and replicates.
      await usEast.query('INSERT INTO app.people SET ?', [{ ...ERASED, name: 'New Person' }]);
      for (const region of GOVERNED_REGIONS)
        await waitFor(
          async () => (await row(region, 5))?.name === 'New Person',
          30_000,
          async () => `${region} id 5: ${JSON.stringify(await row(region, 5))}`,
        );
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
