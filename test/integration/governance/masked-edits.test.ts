/**
 * Writes from a masked region (issue 16, docs/GOVERNANCE.md "Edits in a
 * masked region"): three regions, two in zone eu, the governance tests'
 * policy, `app.people` with one more unmasked column (`status`), daemons in
 * this process, while eu-central's application keeps writing.
 *
 * - us-east, which holds DE rows masked, edits a DE row's unmasked column:
 *   the edit reaches eu-west and eu-central, which keep the original
 *   masked-column values, and us-east ends with the same version, masked.
 * - Writing a masked column, moving the row to another zone, or inserting a
 *   DE row is refused there, loudly (the write guards).
 * - An edit while the executor (eu-west) is stopped, racing an edit of a
 *   masked column in eu-central, converges once it is back.
 * - An edit of a row the zone deleted meanwhile (us-east stopped, so it did
 *   not know) does not bring it back: the executor's notice removes it.
 * - verify exits 0, and no dead letter was written.
 */
import { jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import { waitFor, type Cluster } from '../../support/cluster.js';
import {
  DE,
  DE_MASKED,
  GOVERNED_REGIONS,
  US,
  hmacHex,
  startGovernedCluster,
  type GovernedCluster,
} from '../../support/governance.js';
import { deadLetterCounts } from '../../support/kafka.js';

jest.setTimeout(420_000);

const COLUMNS = 'id, country, email, phone, note, name, status';

const de = (id: number, status: string): Record<string, unknown> => ({
  ...DE,
  id,
  email: `${id}.${DE.email}`,
  status,
});
const masked = (id: number, status: string): Record<string, unknown> => ({
  ...DE_MASKED,
  id,
  email: hmacHex(`${id}.${DE.email}`),
  status,
});

describe('governance: edits in a masked region (3 regions, two in zone eu)', () => {
  let governed: GovernedCluster;
  let cluster: Cluster;
  let failed = false;
  let writing = true;
  let background: Promise<number> | undefined;

  async function rowOf(region: string, id: number): Promise<Record<string, unknown> | null> {
    const db = await cluster.db(region);
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM app.people WHERE id = ?`,
      [id],
    );
    await db.end();
    return rows[0] === undefined ? null : { ...rows[0] };
  }

  async function converged(id: number, plain: unknown, maskedCopy: unknown): Promise<void> {
    for (const region of GOVERNED_REGIONS) {
      const expected = region === 'us-east' ? maskedCopy : plain;
      await waitFor(
        async () => JSON.stringify(await rowOf(region, id)) === JSON.stringify(expected),
        60_000,
        async () =>
          `${region} holds ${JSON.stringify(await rowOf(region, id))}, expected ${JSON.stringify(expected)}`,
      );
    }
  }

  beforeAll(async () => {
    governed = await startGovernedCluster('masked-edits', () => failed, { startDaemons: false });
    cluster = governed.cluster;
    for (const region of GOVERNED_REGIONS) {
      const db = await cluster.db(region);
      await db.query('ALTER TABLE app.people ADD COLUMN status VARCHAR(20)');
      await db.end();
    }
    for (const region of GOVERNED_REGIONS) await cluster.startDaemon(region);
    const west = await cluster.db('eu-west');
    for (const id of [1, 2, 3]) await west.query('INSERT INTO app.people SET ?', [de(id, 'new')]);
    await west.end();
    // eu-central's application keeps writing rows of every residency throughout.
    const writer = await cluster.db('eu-central');
    background = (async () => {
      let n = 0;
      while (writing) {
        await writer.query('INSERT INTO app.people SET ?', [
          { ...US, id: 1000 + n, country: ['US', 'DE', 'CH'][n % 3], email: `w${n}@example.org` },
        ]);
        n += 1;
        await sleep(100);
      }
      return n;
    })();
    for (const id of [1, 2, 3]) await converged(id, de(id, 'new'), masked(id, 'new'));
  });

  afterEach(() => {
    const state = expect.getState() as { assertionCalls: number; numPassingAsserts: number };
    if (state.assertionCalls !== state.numPassingAsserts) failed = true;
  });

  afterAll(async () => {
    writing = false;
    await background?.catch(() => undefined);
    await governed?.stop();
  });

  it('carries an edit of an unmasked column to the zone, which keeps the originals', async () => {
    const east = await cluster.db('us-east');
    await east.query("UPDATE app.people SET status = 'vip' WHERE id = 1");
    await east.end();
    await converged(1, de(1, 'vip'), masked(1, 'vip'));
  });

  it('refuses, loudly, a masked column written, a move to another zone, or a DE insert', async () => {
    const east = await cluster.db('us-east');
    const refused = async (sql: string, params: unknown[] = []): Promise<string> => {
      try {
        await east.query(sql, params);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    const message =
      'governance people-eu: us-east may not update this row of app.people: it may hold it only masked or not at all';
    expect(await refused("UPDATE app.people SET email = 'x@example.org' WHERE id = 1")).toBe(
      message,
    );
    expect(await refused("UPDATE app.people SET status = 'a', phone = '1' WHERE id = 1")).toBe(
      message,
    );
    expect(await refused("UPDATE app.people SET country = 'CH' WHERE id = 1")).toBe(message);
    expect(await refused('INSERT INTO app.people SET ?', [de(50, 'new')])).toBe(
      'governance people-eu: us-east may not insert this row of app.people: it may hold it only masked or not at all',
    );
    await east.end();
    expect(await rowOf('eu-west', 1)).toEqual(de(1, 'vip'));
  });

  it('converges on an edit made while the executor is stopped, racing an edit of a masked column', async () => {
    await cluster.stopDaemon('eu-west');
    const east = await cluster.db('us-east');
    await east.query("UPDATE app.people SET status = 'gold' WHERE id = 2");
    await east.end();
    const central = await cluster.db('eu-central');
    await central.query("UPDATE app.people SET email = 'moved.2@example.de' WHERE id = 2");
    await central.end();
    await sleep(1000);
    await cluster.startDaemon('eu-west');
    // Either write may win (last writer wins on the whole row); every region holds the same one.
    await waitFor(
      async () => {
        const rows = await Promise.all(GOVERNED_REGIONS.map((r) => rowOf(r, 2)));
        const [west, centralRow, eastRow] = rows as Record<string, unknown>[];
        if (west === undefined || centralRow === undefined || eastRow === undefined) return false;
        return (
          JSON.stringify(west) === JSON.stringify(centralRow) &&
          eastRow.status === west.status &&
          eastRow.email === hmacHex(String(west.email))
        );
      },
      60_000,
      async () =>
        `row 2: ${JSON.stringify(await Promise.all(GOVERNED_REGIONS.map((r) => rowOf(r, 2))))}`,
    );
  });

  it('does not bring back a row the zone deleted while the masked region edited it', async () => {
    await cluster.stopDaemon('us-east');
    const west = await cluster.db('eu-west');
    await west.query('DELETE FROM app.people WHERE id = 3');
    await west.end();
    await sleep(500);
    const east = await cluster.db('us-east');
    await east.query("UPDATE app.people SET status = 'late' WHERE id = 3");
    await east.end();
    await cluster.startDaemon('us-east');
    await converged(3, null, null);
  });

  it('leaves the regions in agreement, with no dead letter', async () => {
    writing = false;
    await background;
    const verify = await governed.cli('verify', ['--recheck-delay', '1500', '--rechecks', '4']);
    expect({ code: verify.code, out: verify.stdout }).toEqual({ code: 0, out: verify.stdout });
    expect(await deadLetterCounts(cluster.sandbox, GOVERNED_REGIONS)).toEqual({});
  });
});
