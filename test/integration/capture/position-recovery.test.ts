/**
 * A lost checkpoint is never a fresh start (DESIGN §6, issue "never skip a
 * change"). The checkpoint store here is a Redis without persistence, as on
 * a default install: killed and restarted, it comes back empty. Capture
 * then resumes from the position kept in Kafka; with that gone too, it
 * refuses to guess until the operator chooses; and an applier whose
 * consumer group vanished starts from the earliest offsets, not the latest.
 */
import { jest } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import type { LostPositionChoice } from '../../../src/capture/start-position.js';
import { positionTopic } from '../../../src/capture/position-log.js';
import { applyGroupId } from '../../../src/apply/apply-stage.js';
import { CdcError } from '../../../src/core/errors.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { startCluster, waitFor, type Cluster } from '../../support/cluster.js';
import { loseRedis } from '../../support/faults.js';
import { readTopicsToEnd } from '../../support/kafka.js';
import { testLogger } from '../../support/logger.js';

jest.setTimeout(300_000);

const PREFIX = 'posrec';
const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.items (id INT PRIMARY KEY, phase VARCHAR(20), n INT)',
];

describe('capture and apply positions survive a checkpoint store that loses its keys', () => {
  let cluster: Cluster;
  let admin: ReturnType<Kafka['admin']>;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: ['east', 'west'],
      ddl: DDL,
      tables: ['app.items'],
      topicPrefix: PREFIX,
    });
    const kafka = new Kafka({
      brokers: cluster.sandbox.kafka!.brokers,
      logLevel: logLevel.NOTHING,
    });
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.disconnect();
    await cluster?.stop();
  });

  async function startDaemon(region: string, lostPosition?: LostPositionChoice): Promise<Daemon> {
    const daemon = new Daemon({
      options: cluster.options.get(region)!,
      logger: testLogger(region),
      lostPosition,
    });
    await daemon.start();
    cluster.daemons.set(region, daemon);
    return daemon;
  }

  async function count(region: string, phase: string): Promise<number> {
    const [rows] = await (
      await cluster.db(region)
    ).query('SELECT COUNT(*) AS n FROM app.items WHERE phase = ?', [phase]);
    return Number((rows as { n: number }[])[0]?.n);
  }

  async function writeRows(phase: string, from: number, rows: number): Promise<void> {
    const east = await cluster.db('east');
    for (let i = 0; i < rows; i += 50) {
      const values = Array.from(
        { length: Math.min(50, rows - i) },
        (_, k) => `(${from + i + k}, '${phase}', ${k})`,
      );
      await east.query(`INSERT INTO app.items VALUES ${values.join(', ')}`);
    }
  }

  async function arrivesInWest(phase: string, rows: number): Promise<void> {
    await waitFor(
      async () => (await count('west', phase)) === rows,
      60_000,
      async () => `west holds ${await count('west', phase)} of ${rows} '${phase}' rows`,
    );
  }

  async function startsFrom(daemon: Daemon): Promise<Record<string, number>> {
    const metric = await daemon.metrics.captureStartsTotal.get();
    return Object.fromEntries(metric.values.map((v) => [String(v.labels.from), v.value]));
  }

  /** Deletes the region's position topic and waits until the broker no longer lists it. */
  async function deletePositionTopic(region: string): Promise<void> {
    const topic = positionTopic(PREFIX, region);
    await admin.deleteTopics({ topics: [topic] });
    await waitFor(
      async () => !(await admin.listTopics()).includes(topic),
      30_000,
      () => `${topic} still listed`,
    );
  }

  it('resumes from the position kept in Kafka when Redis restarted empty while the region kept writing', async () => {
    await writeRows('before', 0, 100);
    await arrivesInWest('before', 100);

    await cluster.stopDaemon('east');
    await writeRows('while-down', 1000, 300);
    await cluster.stopDaemon('west');
    await loseRedis(cluster.sandbox);
    await startDaemon('west');
    const east = await startDaemon('east');

    await arrivesInWest('while-down', 300);
    expect(await startsFrom(east)).toEqual({ kafka: 1 });
  });

  it('refuses to guess when the position is gone from Redis and Kafka, and replays from the oldest binlog when told to', async () => {
    await cluster.stopDaemon('east');
    await writeRows('lost', 2000, 200);
    await loseRedis(cluster.sandbox);
    await deletePositionTopic('east');

    const refused = await startDaemon('east').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(CdcError);
    expect((refused as CdcError).code).toBe('CAPTURE_POSITION_LOST');
    expect((refused as CdcError).message).toContain('--replay-from-oldest-binlog');
    expect((refused as CdcError).message).toContain('--accept-gap');
    expect((refused as CdcError).message).toContain(`${PREFIX}.east.app.items`);
    expect(await count('west', 'lost')).toBe(0);

    const east = await startDaemon('east', { kind: 'replay-from-oldest-binlog' });
    await arrivesInWest('lost', 200);
    expect(await startsFrom(east)).toEqual({ 'replay-from-oldest-binlog': 1 });
    // A replay republishes what was already applied: the join keeps it idempotent.
    expect(await count('west', 'before')).toBe(100);
    expect(await count('west', 'while-down')).toBe(300);

    // The next restart finds the position again, and the option left on the command line is not used.
    await cluster.stopDaemon('east');
    const again = await startDaemon('east', { kind: 'replay-from-oldest-binlog' });
    expect(await startsFrom(again)).toEqual({ store: 1 });
  });

  it('accepts a gap only when told to, and records it in the position topic', async () => {
    await cluster.stopDaemon('east');
    await writeRows('gap', 3000, 50);
    await loseRedis(cluster.sandbox);
    await deletePositionTopic('east');

    const east = await startDaemon('east', { kind: 'accept-gap' });
    expect(await startsFrom(east)).toEqual({ 'accept-gap': 1 });
    await writeRows('after-gap', 4000, 20);
    await arrivesInWest('after-gap', 20);
    expect(await count('west', 'gap')).toBe(0); // the accepted gap, as the operator was told

    const records = await readTopicsToEnd(cluster.sandbox.kafka!.brokers, [
      positionTopic(PREFIX, 'east'),
    ]);
    const audits = records
      .map((m) => JSON.parse(m.value) as { kind?: string; action?: string })
      .filter((r) => r.kind === 'audit');
    expect(audits.map((a) => a.action)).toEqual(['accept-gap']);
  });

  it('an applier whose consumer group was deleted starts from the earliest offsets, never the latest', async () => {
    await cluster.stopDaemon('west');
    await writeRows('group-gone', 5000, 120);
    await admin.deleteGroups([applyGroupId(PREFIX, 'west')]);
    await startDaemon('west');
    await arrivesInWest('group-gone', 120);
    expect(await count('west', 'before')).toBe(100);
  });
});
