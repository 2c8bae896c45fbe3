/**
 * Writes outside the plain regions (issue 16, docs/GOVERNANCE.md "Writes
 * outside the plain regions"): in a region, the application may write only
 * rows that region may hold plain. us-east holds DE rows masked and may not
 * hold CH rows: its database refuses, loudly, inserts and updates of such
 * rows (writing a masked column, editing a masked row, moving a row into
 * CH); its own rows and deletes go through and replicate. A write that
 * bypassed the guards is not published: capture parks it, without its
 * values, and the originals in the plain regions stay.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { deadLetterTopic } from '../../../src/capture/capture-stage.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { planPrepare } from '../../../src/prepare/prepare.js';
import { waitFor, type Cluster } from '../../support/cluster.js';
import {
  CH,
  DE,
  DE_MASKED,
  GOVERNED_REGIONS,
  US,
  startGovernedCluster,
  type GovernedCluster,
} from '../../support/governance.js';
import { readTopicsToEnd } from '../../support/kafka.js';

jest.setTimeout(300_000);

const SECOND_DE = { ...DE, id: 2, email: 'second.person@example.de', note: 'second note' };

describe('governance: write guards in a region that may not hold rows plain', () => {
  let governed: GovernedCluster;
  let cluster: Cluster;
  let failed = false;

  beforeAll(async () => {
    governed = await startGovernedCluster('write-guards', () => failed);
    cluster = governed.cluster;
  });

  afterAll(async () => {
    await governed?.stop();
  });

  async function row(region: string, id: number): Promise<Record<string, unknown> | undefined> {
    const db = await cluster.db(region);
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      'SELECT id, country, email, phone, note, name FROM app.people WHERE id = ?',
      [id],
    );
    return rows[0] === undefined ? undefined : { ...rows[0] };
  }

  async function refusal(db: mysql.Connection, sql: string, values: unknown[]): Promise<string> {
    try {
      await db.query(sql, values);
    } catch (err) {
      const e = err as { sqlState?: string; message: string };
      expect(e.sqlState).toBe('45000');
      return e.message;
    }
    throw new Error(`not refused: ${sql}`);
  }

  it('installs guards only where a region may not hold every row plain, and prepare stays a no-op', async () => {
    try {
      for (const region of GOVERNED_REGIONS) {
        const db = await cluster.db(region);
        const [triggers] = await db.query<mysql.RowDataPacket[]>(
          `SELECT TRIGGER_NAME AS name FROM information_schema.TRIGGERS
            WHERE EVENT_OBJECT_SCHEMA = 'app' AND EVENT_OBJECT_TABLE = 'people' ORDER BY 1`,
        );
        const names = triggers.map((t) => String(t.name));
        if (region === 'us-east')
          expect(names).toEqual(expect.arrayContaining(['_cdc_gi_people', '_cdc_gu_people']));
        else expect(names.filter((n) => n.startsWith('_cdc_g'))).toEqual([]);
        // The vault (default none) is guarded everywhere: no region may hold its rows.
        const [vault] = await db.query<mysql.RowDataPacket[]>(
          `SELECT COUNT(*) AS n FROM information_schema.TRIGGERS
            WHERE EVENT_OBJECT_SCHEMA = 'app' AND EVENT_OBJECT_TABLE = 'vault' AND TRIGGER_NAME LIKE '\\_cdc\\_g%'`,
        );
        expect(Number(vault[0]?.n)).toBe(2);
        const options = cluster.options.get(region);
        if (options === undefined) throw new Error(region);
        const admin = await connectMysql(options.mysql);
        try {
          const plan = await planPrepare(admin, options, options.internalSchema, {
            visibleVersionColumns: true,
          });
          expect(plan.steps.map((s) => s.description)).toEqual([]);
        } finally {
          await admin.end();
        }
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('refuses, in us-east, writes of rows it may hold only masked or not at all, naming no value', async () => {
    try {
      const euWest = await cluster.db('eu-west');
      for (const r of [DE, SECOND_DE, US]) await euWest.query('INSERT INTO app.people SET ?', [r]);
      await waitFor(
        async () => JSON.stringify(await row('us-east', 1)) === JSON.stringify(DE_MASKED),
        30_000,
        async () => `us-east id 1: ${JSON.stringify(await row('us-east', 1))}`,
      );
      await waitFor(
        async () =>
          (await row('us-east', 3)) !== undefined && (await row('us-east', 2)) !== undefined,
        30_000,
        () => 'us-east never got ids 2 and 3',
      );
      const usEast = await cluster.db('us-east');
      const messages = [
        await refusal(usEast, 'INSERT INTO app.people SET ?', [{ ...DE, id: 30 }]),
        await refusal(usEast, 'INSERT INTO app.people SET ?', [{ ...CH, id: 31 }]),
        await refusal(usEast, 'UPDATE app.people SET email = ? WHERE id = 1', [
          'typed@example.com',
        ]),
        await refusal(usEast, "UPDATE app.people SET country = 'US' WHERE id = 1", []),
        await refusal(usEast, "UPDATE app.people SET country = 'CH' WHERE id = 3", []),
      ];
      expect(messages[0]).toBe(
        'governance people-eu: us-east may not insert this row of app.people: it may hold it only masked or not at all',
      );
      expect(messages[2]).toBe(
        'governance people-eu: us-east may not update this row of app.people: it may hold it only masked or not at all',
      );
      for (const m of messages)
        for (const value of [DE.email, CH.email, DE.name, CH.name, 'typed@example.com'])
          expect(m).not.toContain(value);
      // Nothing of it happened.
      expect(await row('us-east', 1)).toEqual(DE_MASKED);
      expect(await row('us-east', 30)).toBeUndefined();
      expect(await row('us-east', 3)).toMatchObject({ country: 'US' });

      // Its own rows, and deletes, go through and replicate.
      await usEast.query("UPDATE app.people SET name = 'Edited In US' WHERE id = 3");
      await usEast.query('DELETE FROM app.people WHERE id = 1');
      for (const region of ['eu-west', 'eu-central']) {
        await waitFor(
          async () => (await row(region, 3))?.name === 'Edited In US',
          30_000,
          async () => `${region} id 3: ${JSON.stringify(await row(region, 3))}`,
        );
        await waitFor(
          async () => (await row(region, 1)) === undefined,
          30_000,
          () => `${region} kept id 1 after us-east deleted it`,
        );
      }
      // eu-west may write anything.
      await euWest.query('INSERT INTO app.people SET ?', [{ ...CH, id: 32 }]);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('does not publish a write that bypassed the guards: the plain regions keep the originals', async () => {
    try {
      const usEast = await cluster.db('us-east');
      // Posing as the applier passes the triggers, but not capture.
      await usEast.query('SET @cdc_applier = 1');
      await usEast.query("UPDATE app.people SET note = 'bypassed note' WHERE id = 2");
      await usEast.query('SET @cdc_applier = NULL');
      const brokers = [...(cluster.sandbox.kafka?.brokers ?? [])];
      const topic = deadLetterTopic('cdc', 'capture', 'us-east');
      let letters: string[] = [];
      await waitFor(
        async () => {
          letters = (await readTopicsToEnd(brokers, [topic]).catch(() => [])).map((m) => m.value);
          return letters.some((l) => l.includes('governance_refused'));
        },
        30_000,
        () => `no governance_refused capture dead letter in us-east: ${letters.join('\n')}`,
      );
      const letter = letters.find((l) => l.includes('governance_refused')) ?? '';
      expect(letter).toContain('holds only masked is not published');
      expect(letter).not.toContain('bypassed note');
      expect(letter).not.toContain(SECOND_DE.email);
      // The originals stay in the plain regions.
      for (const region of ['eu-west', 'eu-central'])
        expect(await row(region, 2)).toMatchObject({
          note: SECOND_DE.note,
          email: SECOND_DE.email,
        });
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
