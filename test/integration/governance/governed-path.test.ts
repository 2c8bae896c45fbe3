/**
 * Snapshot, bootstrap and `verify --repair` through the governed publishing
 * path (issue 16, docs/GOVERNANCE.md "Snapshot, bootstrap and repair"):
 * three regions, two
 * in zone eu, the governance tests' policy; us-east and eu-west run while
 * their applications keep writing, and eu-central is brought up with
 * `bootstrap --from us-east`.
 *
 * The rows the snapshots copy exist only in their region's database (they
 * were written with `skip_replication`, so capture never published them),
 * as rows loaded before the replicator was installed would.
 *
 * - us-east does not hold the DE and CH rows plain, so bootstrap copies
 *   them from eu-west, and says so.
 * - eu-central ends up with every row plain; us-east gets eu-west's DE rows
 *   masked (the exact masks) and no CH row, and no plaintext of them reaches
 *   a topic us-east may read.
 * - A snapshot of us-east does not publish the DE rows it holds masked.
 * - The audit trail has the snapshot's records (`op` r); verify exits 0.
 * - `verify --repair` spreads what capture never published, through the
 *   same path: a DE row changed in eu-west (plain in the zone, masked in
 *   us-east), a DE row deleted there (a value-free notice), and a CH row
 *   us-east holds where it may not (evicted by a notice from the zone);
 *   its output names keys by hash only, and verify then exits 0.
 */
import { jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { compileGovernance } from '../../../src/config/compile-governance.js';
import { APPLIER_SESSION_FLAG } from '../../../src/mysql/internal-tables.js';
import { topicsReadableBy } from '../../../src/governance/topics.js';
import { waitFor, type Cluster } from '../../support/cluster.js';
import {
  CH,
  DE,
  DE_MASKED,
  US,
  hmacHex,
  startGovernedCluster,
  type GovernedCluster,
} from '../../support/governance.js';
import { readTopicsToEnd } from '../../support/kafka.js';

jest.setTimeout(420_000);

const COLUMNS = 'id, country, email, phone, note, name';
const US_IDS = [101, 102, 103];
const DE_IDS = [201, 202, 203];
const CH_IDS = [301, 302];

const withId = (row: Record<string, unknown>, id: number): Record<string, unknown> => ({
  ...row,
  id,
  email: `${id}.${String(row.email)}`,
});

describe('governance: snapshot and bootstrap publish through the governed path', () => {
  let governed: GovernedCluster;
  let cluster: Cluster;
  let failed = false;
  let writing = true;
  let background: Promise<number> | undefined;

  async function rowsOf(region: string, ids: readonly number[]): Promise<mysql.RowDataPacket[]> {
    const db = await cluster.db(region);
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM app.people WHERE id IN (?) ORDER BY id`,
      [ids],
    );
    await db.end();
    return rows;
  }

  /** Rows only this region's database has: written with skip_replication, so capture never sees them. */
  async function preload(region: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    const db = await cluster.db(region);
    await db.query('SET SESSION skip_replication = 1');
    for (const row of rows) await db.query('INSERT INTO app.people SET ?', [row]);
    await db.end();
  }

  beforeAll(async () => {
    governed = await startGovernedCluster('snapshot-bootstrap', () => failed, {
      startDaemons: false,
    });
    cluster = governed.cluster;
    await cluster.startDaemon('us-east');
    await cluster.startDaemon('eu-west');
    await preload(
      'us-east',
      US_IDS.map((id) => withId(US, id)),
    );
    await preload('eu-west', [
      ...DE_IDS.map((id) => withId(DE, id)),
      ...CH_IDS.map((id) => withId(CH, id)),
    ]);
    // The applications keep writing in both running regions throughout.
    const east = await cluster.db('us-east');
    const west = await cluster.db('eu-west');
    background = (async () => {
      let n = 0;
      while (writing) {
        await east.query('INSERT INTO app.people SET ?', [withId(US, 1000 + n)]);
        await west.query('INSERT INTO app.people SET ?', [withId(DE, 2000 + n)]);
        await east.query('UPDATE app.people SET note = ? WHERE id = ?', [
          `edit ${n}`,
          US_IDS[n % 3],
        ]);
        n += 1;
        await sleep(100);
      }
      return n;
    })();
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

  it('bootstraps eu-central from us-east, taking the DE and CH rows from eu-west, and says so', async () => {
    const result = await governed.cli('bootstrap', ['--region', 'eu-central', '--from', 'us-east']);
    expect(result.stderr).not.toContain(DE.email);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'bootstrap eu-central: app.people: rows whose country is DE, FR (policy people-eu): not held plain by us-east; copied from eu-west',
    );
    expect(result.stdout).toContain(
      'bootstrap eu-central: app.people: rows whose country is CH (policy people-eu): not held plain by us-east; copied from eu-west',
    );
    expect(result.stdout).toMatch(/snapshot of us-east app\.people: \d+ rows published/);
    expect(result.stdout).toMatch(/snapshot of eu-west app\.people: \d+ rows published/);

    await cluster.startDaemon('eu-central');
    const all = [...US_IDS, ...DE_IDS, ...CH_IDS];
    await waitFor(
      async () => (await rowsOf('eu-central', all)).length === all.length,
      90_000,
      async () => `eu-central holds ${(await rowsOf('eu-central', all)).length} of ${all.length}`,
    );
    const central = await rowsOf('eu-central', [...DE_IDS, ...CH_IDS]);
    expect(central.map((r) => ({ ...r }))).toEqual([
      ...DE_IDS.map((id) => withId(DE, id)),
      ...CH_IDS.map((id) => withId(CH, id)),
    ]);
  });

  it('gives us-east the DE rows masked and no CH row, with no plaintext on its topics', async () => {
    await waitFor(
      async () => (await rowsOf('us-east', DE_IDS)).length === DE_IDS.length,
      60_000,
      async () => `us-east holds ${(await rowsOf('us-east', DE_IDS)).length} DE rows`,
    );
    const east = await rowsOf('us-east', [...DE_IDS, ...CH_IDS]);
    expect(east.map((r) => ({ ...r }))).toEqual(
      DE_IDS.map((id) => {
        const row = withId(DE, id);
        return { ...DE_MASKED, id, email: hmacHex(String(row.email)) };
      }),
    );
    const options = cluster.options.get('us-east');
    const governance = compileGovernance(cluster.config);
    if (options === undefined || governance === undefined) throw new Error('no us-east options');
    const brokers = [...(cluster.sandbox.kafka?.brokers ?? [])];
    const admin = new Kafka({
      clientId: 'test-snapshot',
      brokers,
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    await admin.disconnect();
    const readable = topicsReadableBy(
      {
        topicPrefix: options.kafka.topicPrefix,
        regions: governance.regions,
        zones: governance.zones,
        policies: governance.policies,
        tables: ['app.people', 'app.vault'],
      },
      'us-east',
    )
      .map((t) => t.topic)
      .filter((topic) => existing.has(topic));
    expect(readable).toContain('cdc-masked-us-east.eu-west.app.people');
    const messages = await readTopicsToEnd(brokers, readable);
    const text = messages.map((m) => m.value).join('\n');
    for (const id of [...DE_IDS, ...CH_IDS]) {
      const row = withId(id < 300 ? DE : CH, id);
      expect(text).not.toContain(String(row.email));
    }
    expect(text).not.toContain(CH.phone);
    expect(text).not.toContain(DE.phone);
  });

  it('snapshots of us-east do not publish the DE rows it holds masked', async () => {
    const result = await governed.cli('snapshot', [
      '--region',
      'us-east',
      '--tables',
      'app.people',
      '--restart',
    ]);
    expect(result.code).toBe(0);
    const heldMasked = /governed by people-eu: (\d+) rows held masked here not published/.exec(
      result.stdout,
    );
    expect(heldMasked).not.toBeNull();
    // Its own DE rows: the preloaded ones and those the writer's eu-west rows brought.
    expect(Number(heldMasked?.[1])).toBeGreaterThanOrEqual(DE_IDS.length);
    expect(result.stdout).toContain(', 0 refused');
  });

  it('records the snapshot rows in the audit trail and leaves the regions in agreement', async () => {
    const audit = await governed.cli('audit', [
      '--table',
      'app.people',
      '--key',
      `id=${CH_IDS[0]}`,
      '--json',
    ]);
    expect(audit.code).toBe(0);
    const records = audit.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toContainEqual(
      expect.objectContaining({
        op: 'r',
        source: 'eu-west',
        target: 'eu-central',
        decision: 'sent',
      }),
    );
    expect(records.filter((r) => r.target === 'us-east' && r.decision !== 'notice')).toEqual([]);
    expect(audit.stdout).not.toContain(CH.email);

    writing = false;
    await background;
    const verify = await governed.cli('verify', ['--recheck-delay', '1500', '--rechecks', '6']);
    expect(verify.stdout).not.toContain(CH.email);
    expect({ code: verify.code, out: verify.stdout }).toEqual({ code: 0, out: verify.stdout });
  });

  it('repairs through the governed path: a changed row, a deleted row, a row held where it may not be', async () => {
    const changed = 'changed.201@example.de';
    const west = await cluster.db('eu-west');
    await west.query('SET SESSION skip_replication = 1');
    await west.query('UPDATE app.people SET email = ? WHERE id = ?', [changed, DE_IDS[0]]);
    await west.query('DELETE FROM app.people WHERE id = ?', [DE_IDS[1]]);
    await west.end();
    const east = await cluster.db('us-east');
    // Posing as the applier passes the write guards; skip_replication keeps it from capture.
    await east.query(`SET SESSION skip_replication = 1, ${APPLIER_SESSION_FLAG} = 1`);
    await east.query('INSERT INTO app.people SET ?', [withId(CH, 401)]);
    await east.end();

    const repair = await governed.cli('verify', [
      '--repair',
      '--recheck-delay',
      '500',
      '--rechecks',
      '2',
    ]);
    expect(repair.code).toBe(1);
    const lines = repair.stdout.split('\n').filter((l) => l.startsWith('REPAIR'));
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/^REPAIRED app\.people key (hmac|sha256):/);
    expect(
      lines.filter((l) => l.endsWith('republished through the governed path from eu-west')),
    ).toHaveLength(2);
    expect(
      lines.filter((l) => l.endsWith('regions holding it where it may not be sent from eu-west')),
    ).toHaveLength(1);
    for (const secret of [changed, DE.email, CH.email, '401']) {
      expect(repair.stdout).not.toContain(secret);
      expect(repair.stderr).not.toContain(secret);
    }

    const expected = (region: string): Record<string, unknown>[] => {
      const row = { ...withId(DE, DE_IDS[0] as number), email: changed };
      return [
        region === 'us-east' ? { ...DE_MASKED, id: DE_IDS[0], email: hmacHex(changed) } : row,
      ];
    };
    for (const region of ['eu-central', 'us-east'])
      await waitFor(
        async () =>
          JSON.stringify(
            (await rowsOf(region, [...DE_IDS.slice(0, 2), 401])).map((r) => ({ ...r })),
          ) === JSON.stringify(expected(region)),
        60_000,
        async () =>
          `${region} holds ${JSON.stringify(await rowsOf(region, [...DE_IDS.slice(0, 2), 401]))}`,
      );
    const verify = await governed.cli('verify', ['--recheck-delay', '1000', '--rechecks', '3']);
    expect({ code: verify.code, out: verify.stdout }).toEqual({ code: 0, out: verify.stdout });
  });
});
