import { jest } from '@jest/globals';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';

jest.setTimeout(180_000);

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(50), score INT, UNIQUE KEY (name))',
];

describe('apply: two regions replicate both ways', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ regions: ['east', 'west'], ddl: DDL, tables: ['app.users'] });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function converged(): Promise<boolean> {
    const east = await tableContent(await cluster.db('east'), 'app.users');
    const west = await tableContent(await cluster.db('west'), 'app.users');
    return east === west;
  }

  it('replicates inserts, updates and deletes in both directions without loops', async () => {
    const east = await cluster.db('east');
    const west = await cluster.db('west');
    await east.query("INSERT INTO app.users VALUES (1, 'ann', 1), (2, 'bob', 2)");
    await waitFor(
      async () => (await tableContent(west, 'app.users')).includes('bob'),
      30_000,
      () => tableContent(west, 'app.users'),
    );
    await west.query('UPDATE app.users SET score = 20 WHERE id = 2');
    await west.query("INSERT INTO app.users VALUES (3, 'cy', 3)");
    await east.query('DELETE FROM app.users WHERE id = 1');
    await waitFor(
      converged,
      30_000,
      async () =>
        `east ${await tableContent(east, 'app.users')} west ${await tableContent(west, 'app.users')}`,
    );
    expect(JSON.parse(await tableContent(east, 'app.users'))).toEqual([
      { id: 2, name: 'bob', score: 20 },
      { id: 3, name: 'cy', score: 3 },
    ]);
    // No loop: applied changes are never captured again (heartbeats flow, counted under their own table).
    const captured = async (region: string): Promise<number> => {
      const metric = await cluster.daemons.get(region)!.metrics.eventsCapturedTotal.get();
      return metric.values
        .filter((v) => v.labels.table === 'app.users')
        .reduce((sum, v) => sum + v.value, 0);
    };
    await new Promise((r) => setTimeout(r, 2000));
    expect(await captured('east')).toBe(3); // 2 inserts + 1 delete written in east
    expect(await captured('west')).toBe(2); // 1 update + 1 insert written in west
    // MariaDB never even sends capture its applier's transactions (skip_replication).
    for (const region of ['east', 'west']) {
      const read = await cluster.daemons.get(region)!.metrics.captureApplierTransactionsTotal.get();
      expect({ region, read: read.values.reduce((sum, v) => sum + v.value, 0) }).toEqual({
        region,
        read: 0,
      });
    }
  });

  it('resolves a concurrent update by last-writer-wins, the same way in both regions', async () => {
    const east = await cluster.db('east');
    const west = await cluster.db('west');
    cluster.daemons.get('east')!.apply!.pause();
    cluster.daemons.get('west')!.apply!.pause();
    await east.query('UPDATE app.users SET score = 100 WHERE id = 3');
    await new Promise((r) => setTimeout(r, 5));
    await west.query('UPDATE app.users SET score = 200 WHERE id = 3');
    cluster.daemons.get('east')!.apply!.resume();
    cluster.daemons.get('west')!.apply!.resume();
    await waitFor(
      converged,
      30_000,
      async () =>
        `east ${await tableContent(east, 'app.users')} west ${await tableContent(west, 'app.users')}`,
    );
    const [rows] = await east.query('SELECT score FROM app.users WHERE id = 3');
    expect(rows).toEqual([{ score: 200 }]);
    const conflicts = await cluster.daemons.get('east')!.metrics.conflictsTotal.get();
    expect(conflicts.values.reduce((s, v) => s + v.value, 0)).toBeGreaterThanOrEqual(1);
  });

  it('sends an event that breaks a secondary unique key to the dead letter, and keeps going', async () => {
    const east = await cluster.db('east');
    const west = await cluster.db('west');
    cluster.daemons.get('west')!.apply!.pause();
    await west.query("INSERT INTO app.users VALUES (10, 'dup', 1)");
    await east.query("INSERT INTO app.users VALUES (11, 'dup', 1)");
    await east.query("INSERT INTO app.users VALUES (12, 'after', 1)");
    cluster.daemons.get('west')!.apply!.resume();
    await waitFor(
      async () => (await tableContent(west, 'app.users')).includes('after'),
      30_000,
      () => tableContent(west, 'app.users'),
    );
    const parked = async (): Promise<number> => {
      const dlq = await cluster.daemons.get('west')!.metrics.deadLetterTotal.get();
      return dlq.values.find((v) => v.labels.reason === 'constraint_violation')?.value ?? 0;
    };
    await waitFor(
      async () => (await parked()) === 1,
      30_000,
      async () => `dead letters: ${await parked()}`,
    );
    // The row that collided stays as it was locally.
    expect(JSON.parse(await tableContent(west, 'app.users'))).toContainEqual({
      id: 10,
      name: 'dup',
      score: 1,
    });
  });
});
