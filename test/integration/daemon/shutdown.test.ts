/**
 * Graceful shutdown of `cdc-replicator run` (issue 7): SIGTERM under load
 * drains in-flight work and exits 0 within the deadline, and the restarted
 * daemon resumes without a gap in either direction; a drain that cannot
 * finish in time exits non-zero and says what did not finish, and still
 * loses nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type mysql from 'mysql2/promise';

import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import {
  daemonOutput,
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  tail,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';

jest.setTimeout(300_000);

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.events (id INT PRIMARY KEY, region VARCHAR(10), n INT)',
];

describe('daemon shutdown', () => {
  let cluster: Cluster;
  let dir: string;
  let configFile: string;
  const daemons = new Map<string, DaemonProcess>();

  beforeAll(async () => {
    cluster = await startCluster({
      regions: ['east', 'west'],
      ddl: DDL,
      tables: ['app.events'],
      startDaemons: false,
    });
    dir = mkdtempSync(join(tmpdir(), 'cdc-shutdown-'));
    configFile = writeConfigFile(dir, cluster.yaml);
    for (const region of cluster.regions) await start(region);
  });

  afterAll(async () => {
    for (const daemon of daemons.values())
      if (isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGKILL');
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(region: string, extra: string[] = []): Promise<DaemonProcess> {
    const daemon = startDaemonProcess(configFile, region, join(dir, 'logs'), extra);
    daemons.set(region, daemon);
    await waitUntilRunning(daemon, 60_000);
    return daemon;
  }

  /** Inserts batches of rows in `region` (ids from `firstId`, step 2 so regions never collide). */
  function writer(db: mysql.Connection, region: string, firstId: number) {
    let running = true;
    let next = firstId;
    const loop = (async () => {
      while (running) {
        const rows = Array.from({ length: 20 }, () => {
          const row = [next, region, next % 7];
          next += 2;
          return row;
        });
        await db.query('INSERT INTO app.events (id, region, n) VALUES ?', [rows]);
        await sleep(20);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return (next - firstId) / 2;
      },
    };
  }

  async function converge(expectedRows: number): Promise<void> {
    const east = await cluster.db('east');
    const west = await cluster.db('west');
    await waitFor(
      async () => {
        const a = await tableContent(east, 'app.events');
        return (
          a === (await tableContent(west, 'app.events')) &&
          (JSON.parse(a) as unknown[]).length === expectedRows
        );
      },
      120_000,
      async () => {
        const [[e], [w]] = await Promise.all([
          east.query('SELECT COUNT(*) AS n FROM app.events'),
          west.query('SELECT COUNT(*) AS n FROM app.events'),
        ]);
        return `expected ${expectedRows} rows: east ${JSON.stringify(e)}, west ${JSON.stringify(w)}`;
      },
    );
  }

  it('SIGTERM under load exits 0 within the deadline and a restart resumes without a gap', async () => {
    const east = writer(await cluster.db('east'), 'east', 1);
    const west = writer(await cluster.db('west'), 'west', 2);
    await sleep(3000);
    const stopping = daemons.get('west') as DaemonProcess;
    const sentAt = Date.now();
    const code = await stopDaemonProcess(stopping, 'SIGTERM', 30_000);
    const tookMs = Date.now() - sentAt;
    if (code !== 0) throw new Error(`exit ${code}:\n${tail(daemonOutput(stopping))}`);
    expect(tookMs).toBeLessThan(30_000); // the default --drain-timeout
    expect(daemonOutput(stopping)).toContain('"msg":"daemon stopped cleanly"');
    await sleep(2000); // both regions keep writing while west's daemon is down
    await start('west');
    await sleep(3000);
    const written = (await east.stop()) + (await west.stop());
    await converge(written);
  });

  it('a drain past its deadline exits non-zero, names what did not finish, and loses nothing', async () => {
    const westDb = await cluster.db('west');
    const blocker = await cluster.db('west');
    const before = Number(
      ((await westDb.query('SELECT COUNT(*) AS n FROM app.events'))[0] as { n: number }[])[0]?.n,
    );
    await stopDaemonProcess(daemons.get('west') as DaemonProcess, 'SIGTERM');
    const west = await start('west', ['--drain-timeout', '2000']);
    // The applier of west blocks on this table lock with a transaction open.
    await blocker.query('LOCK TABLES app.events WRITE');
    const east = writer(await cluster.db('east'), 'east', 1_000_001);
    // Until west's applier really waits on the lock with a batch in hand (however long
    // capture, Kafka and the consumer take to bring it one on this machine).
    await waitFor(
      async () => {
        const [rows] = await westDb.query(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table%' AND INFO LIKE '%events%'",
        );
        return Number((rows as { n: number }[])[0]?.n) > 0;
      },
      60_000,
      () => `west's applier never blocked on the table lock:\n${tail(daemonOutput(west))}`,
    );
    const sentAt = Date.now();
    west.child.kill('SIGTERM');
    const code = await west.exited;
    const tookMs = Date.now() - sentAt;
    const output = daemonOutput(west);
    await blocker.query('UNLOCK TABLES');
    expect({ code, output: tail(output, 5) }).toEqual({ code: 1, output: expect.any(String) });
    expect(output).toMatch(/graceful stop did not finish within 2000 ms: .*apply was draining/);
    expect(tookMs).toBeLessThan(2000 + 10_000); // the deadline plus the CLI's exit grace
    const written = await east.stop();
    await start('west');
    await converge(before + written);
  });
});
