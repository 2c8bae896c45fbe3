/**
 * Daemons of several regions starting at the same moment create each
 * other's topics concurrently; none may fail because a topic it subscribes
 * to or publishes into was created a moment ago by someone else.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';

import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';

jest.setTimeout(240_000);

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.a (id INT PRIMARY KEY, v INT)',
  'CREATE TABLE app.b (id INT PRIMARY KEY, v INT)',
];

describe('daemons starting together', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: ['r1', 'r2', 'r3'],
      ddl: DDL,
      tables: ['app.*'],
      startDaemons: false,
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('three regions started at once all run and replicate', async () => {
    const results = await Promise.allSettled(cluster.regions.map((r) => cluster.startDaemon(r)));
    const failures = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`${cluster.regions[i]}: ${(r.reason as Error).message}`] : [],
    );
    expect(failures).toEqual([]);
    const r1 = await cluster.db('r1');
    await r1.query('INSERT INTO app.a VALUES (1, 1)');
    for (const region of ['r2', 'r3']) {
      const db = await cluster.db(region);
      await waitFor(
        async () => (await tableContent(db, 'app.a')).includes('"v":1'),
        60_000,
        () => tableContent(db, 'app.a'),
      );
    }
  });
});
