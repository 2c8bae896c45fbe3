/**
 * Start-up health of the stores the daemon relies on (issue 12), against the
 * sandbox's real redis-server and Kafka broker. Redis: with
 * `redis.durability: fatal`, a daemon whose Redis has no persistence, or
 * evicts any key, runs but is not ready and `/readyz` names the problem; the
 * operator's fix (`CONFIG SET appendonly yes`, as on a real server) makes the
 * next daemon ready; with the default `warn` it is ready anyway; and a user
 * the server refuses CONFIG to is not failed for it. Kafka: a change topic
 * that keeps changes shorter than the tombstone horizon is found and named.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Redis } from 'ioredis';

import { createKafka } from '../../../src/bus/kafka.js';
import { compileRegion, type RuntimeOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { checkTopicRetention } from '../../../src/monitor/topic-retention.js';
import { startCluster, waitFor, type Cluster } from '../../support/cluster.js';
import { testLogger } from '../../support/logger.js';

jest.setTimeout(240_000);

const REGION = 'east';
const DDL = ['CREATE DATABASE app', 'CREATE TABLE app.items (id INT PRIMARY KEY, note TEXT)'];

describe('store health at start', () => {
  let cluster: Cluster;
  let redisUrl: string;
  let admin: Redis;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: [REGION],
      ddl: DDL,
      tables: ['app.items'],
      startDaemons: false,
    });
    redisUrl = cluster.sandbox.redis?.url as string;
    admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  });

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    // The sandbox's own settings: AOF on, no RDB schedule, no memory limit.
    await admin.config('SET', 'appendonly', 'yes');
    await admin.config('SET', 'maxmemory', '0');
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
  });

  afterAll(async () => {
    await daemon?.stop();
    admin?.disconnect();
    await cluster?.stop();
  });

  /** The cluster's file with redis.durability (and the url) as an operator would write them. */
  function optionsWith(redis: { durability?: string; url?: string }): RuntimeOptions {
    const block = `redis: { url: "${redis.url ?? redisUrl}"${redis.durability === undefined ? '' : `, durability: ${redis.durability}`} }`;
    const yaml = cluster.yaml.replace(`redis: { url: "${redisUrl}" }`, block);
    expect(yaml).toContain(block);
    return compileRegion(parseConfig(yaml, { env: {} }), REGION);
  }

  async function startDaemon(options: RuntimeOptions): Promise<Daemon> {
    daemon = new Daemon({ options, logger: testLogger(REGION) });
    await daemon.start();
    return daemon;
  }

  async function readyz(d: Daemon): Promise<{ status: number; body: string }> {
    const response = await fetch(`http://127.0.0.1:${d.metricsPort}/readyz`);
    return { status: response.status, body: await response.text() };
  }

  /** Waits until /readyz answers 200, or fails with its last body. */
  async function waitReady(d: Daemon): Promise<void> {
    await waitFor(
      async () => (await readyz(d)).status === 200,
      60_000,
      async () => `/readyz: ${(await readyz(d)).body}`,
    );
  }

  it('with fatal, a Redis without persistence keeps the daemon running but not ready, naming the fix', async () => {
    await admin.config('SET', 'appendonly', 'no');
    expect(await admin.config('GET', 'save')).toEqual(['save', '']);
    const d = await startDaemon(optionsWith({ durability: 'fatal' }));

    expect(d.state).toBe('running');
    const { status, body } = await readyz(d);
    expect(status).toBe(503);
    expect(body).toContain(
      '- checkpoint store can lose checkpoints (redis.durability: fatal): no persistence (appendonly no, save "")',
    );
    expect(body).toContain('CONFIG SET appendonly yes');

    // The operator turns AOF on; the daemon started next (or the one running, at its next check) is ready.
    await admin.config('SET', 'appendonly', 'yes');
    await d.stop();
    await waitReady(await startDaemon(optionsWith({ durability: 'fatal' })));
  });

  it('with fatal, an allkeys eviction policy under a memory limit is named too', async () => {
    await admin.config('SET', 'maxmemory', '500mb');
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const d = await startDaemon(optionsWith({ durability: 'fatal' }));
    const { status, body } = await readyz(d);
    expect(status).toBe(503);
    expect(body).toMatch(
      /can lose checkpoints \(redis\.durability: fatal\): maxmemory-policy allkeys-lru with maxmemory 524288000: .*noeviction/,
    );
  });

  it('with the default (warn), the same Redis leaves the daemon ready', async () => {
    await admin.config('SET', 'appendonly', 'no');
    const options = optionsWith({});
    expect(options.checkpointStore).toMatchObject({ durability: 'warn' });
    await waitReady(await startDaemon(options));
  });

  it('a user that may not run CONFIG is read through INFO, and not failed for what it cannot verify', async () => {
    await admin.call(
      'ACL',
      'SETUSER',
      'noconfig',
      'on',
      '>noconfig-pw',
      '~*',
      '&*',
      '+@all',
      '-config',
    );
    try {
      const url = redisUrl.replace('redis://', 'redis://noconfig:noconfig-pw@');
      // AOF on, read from INFO: nothing to report.
      await waitReady(await startDaemon(optionsWith({ durability: 'fatal', url })));
      await daemon?.stop();
      // AOF off: without CONFIG the RDB schedule is unknown, so the risk is unverified: still ready.
      await admin.config('SET', 'appendonly', 'no');
      await waitReady(await startDaemon(optionsWith({ durability: 'fatal', url })));
    } finally {
      // Deleting the user drops its connections: stop the daemon using it first.
      await daemon?.stop();
      daemon = undefined;
      await admin.call('ACL', 'DELUSER', 'noconfig');
    }
  });

  it('names change topics kept shorter than the tombstone horizon, and offsets that expire first', async () => {
    const options = optionsWith({});
    const kafka = createKafka(options.kafka, silentLogger());
    const kafkaAdmin = kafka.admin();
    await kafkaAdmin.connect();
    const short = `${options.kafka.topicPrefix}.${REGION}.app.short_retention`;
    const forever = `${options.kafka.topicPrefix}.${REGION}.app.kept_forever`;
    try {
      await kafkaAdmin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: short,
            numPartitions: 1,
            configEntries: [{ name: 'retention.ms', value: '3600000' }],
          },
          {
            topic: forever,
            numPartitions: 1,
            configEntries: [{ name: 'retention.ms', value: '-1' }],
          },
        ],
      });
      const check = checkTopicRetention({ kafka, options, logger: silentLogger() });
      const findings = await check.done;
      await check.stop();
      expect(findings.filter((f) => f.kind === 'retention_below_horizon')).toEqual([
        {
          kind: 'retention_below_horizon',
          topics: [short],
          message: expect.stringContaining(
            `${short} keep changes 1 h (retention.ms=3600000), less than apply.tombstoneHorizonHours (168 h)`,
          ) as unknown,
        },
      ]);
      // The broker's offsets.retention.minutes (Kafka's default, 7 days) is shorter than forever.
      expect(findings.find((f) => f.kind === 'offsets_expire_first')?.message).toMatch(
        /^the brokers' offsets\.retention\.minutes \(168 h\) is shorter than the change topics' retention \(forever/,
      );
    } finally {
      await kafkaAdmin.deleteTopics({ topics: [short, forever] }).catch(() => undefined);
      await kafkaAdmin.disconnect();
    }
  });
});
