import { jest } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import ZongJi, { type AnyBinlogEvent, type WriteRowsEvent } from '@vlasky/zongji';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { connectionOptions, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { OWNER_LABEL } from '../../src/sandbox/docker/containers.js';
import { sandboxModesUnderTest } from '../support/sandbox-modes.js';

// Service start-up; a fresh machine's first run also downloads Kafka's jars.
jest.setTimeout(300_000);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.each(sandboxModesUnderTest())('%s service launcher', (mode) => {
  let sandbox: Sandbox;
  let startMs = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    sandbox = await startSandbox({
      regions: ['us-east', 'eu-west'],
      mode,
      log: (m) => console.log(m),
    });
    startMs = Date.now() - t0;
    console.log(`sandbox start took ${startMs} ms`);
  });

  afterAll(async () => {
    await sandbox?.stop();
  });

  it('starts one binlog-enabled MariaDB per region with unique server and GTID domain ids', async () => {
    expect(sandbox.mysql.map((m) => m.region)).toEqual(['us-east', 'eu-west']);
    const seen = new Set<string>();
    for (const endpoint of sandbox.mysql) {
      const connection = await mysql.createConnection(connectionOptions(endpoint));
      try {
        const [rows] = await connection.query<mysql.RowDataPacket[]>(
          'SELECT @@log_bin AS logBin, @@binlog_format AS format, @@binlog_row_image AS image, ' +
            '@@binlog_row_metadata AS metadata, @@server_id AS serverId, @@gtid_domain_id AS domain',
        );
        expect(rows[0]).toEqual({
          logBin: 1,
          format: 'ROW',
          image: 'FULL',
          metadata: 'FULL',
          serverId: endpoint.serverId,
          domain: endpoint.gtidDomainId,
        });
        seen.add(`${endpoint.serverId}/${endpoint.gtidDomainId}`);
      } finally {
        await connection.end();
      }
    }
    expect(seen.size).toBe(2);
    expect(new Set(sandbox.mysql.map((m) => m.port)).size).toBe(2);
  });

  it('passes a message through Kafka and back', async () => {
    const kafka = new Kafka({
      clientId: 'sandbox-test',
      brokers: sandbox.kafka!.brokers,
      logLevel: logLevel.NOTHING,
    });
    const topic = `sandbox-roundtrip-${Date.now()}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();

    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: 'k', value: 'hello from the sandbox' }],
    });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `${topic}-group` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message within 30 s')), 30_000);
      void consumer.run({
        eachMessage: ({ message }) => {
          clearTimeout(timer);
          resolve(message.value?.toString() ?? '');
          return Promise.resolve();
        },
      });
    });
    await consumer.disconnect();
    expect(received).toBe('hello from the sandbox');
  });

  it('streams an inserted row out of the binlog with microsecond temporal precision', async () => {
    const endpoint = sandbox.mysql[0]!;
    const connection = await mysql.createConnection(connectionOptions(endpoint));
    await connection.query('CREATE DATABASE sandbox_binlog');
    await connection.query(
      'CREATE TABLE sandbox_binlog.t (id INT PRIMARY KEY, dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6))',
    );

    const zongji = new ZongJi({ ...connectionOptions(endpoint), dateStrings: true });
    const row = new Promise<Record<string, unknown>>((resolve, reject) => {
      zongji.on('error', reject);
      zongji.on('binlog', (event: AnyBinlogEvent) => {
        if (event.getEventName() === 'writerows') {
          const rows = (event as WriteRowsEvent).rows;
          if (rows[0] !== undefined) resolve(rows[0]);
        }
      });
    });
    const ready = new Promise<void>((resolve) => zongji.on('ready', () => resolve()));
    zongji.start({
      serverId: 9_001,
      startAtEnd: true,
      includeEvents: ['tablemap', 'writerows'],
      includeSchema: { sandbox_binlog: ['t'] },
    });
    await ready;
    await connection.query(
      "INSERT INTO sandbox_binlog.t VALUES (1, '2024-02-29 23:59:59.123456', '2024-03-01 00:00:00.000001', '838:59:59.999999')",
    );
    const inserted = await row;
    zongji.stop();
    await connection.end();

    expect(inserted).toEqual({
      id: 1,
      dt: '2024-02-29 23:59:59.123456',
      ts: '2024-03-01 00:00:00.000001',
      tm: '838:59:59.999999',
    });
  });

  it('answers on Redis', async () => {
    const redis = new Redis(sandbox.redis!.url);
    try {
      expect(await redis.ping()).toBe('PONG');
      await redis.set('sandbox:key', 'value');
      expect(await redis.get('sandbox:key')).toBe('value');
    } finally {
      redis.disconnect();
    }
  });

  it('reports the mode it was asked for', () => {
    expect(sandbox.mode).toBe(mode);
  });

  it('keeps data and port across a kill and restart of MariaDB, and a stop and start of Redis', async () => {
    const endpoint = sandbox.mysql[1]!;
    const service = sandbox.services.mysql[1]!;
    const connection = await mysql.createConnection(connectionOptions(endpoint));
    await connection.query('CREATE DATABASE sandbox_restart');
    await connection.query('CREATE TABLE sandbox_restart.t (id INT PRIMARY KEY)');
    await connection.query('INSERT INTO sandbox_restart.t VALUES (7)');
    await connection.end();
    const [pid] = service.pids();
    await service.kill();
    expect(service.pids()).toEqual([]);
    expect(isAlive(pid!)).toBe(false);
    await service.start();
    const again = await mysql.createConnection(connectionOptions(endpoint));
    const [rows] = await again.query<mysql.RowDataPacket[]>('SELECT id FROM sandbox_restart.t');
    await again.end();
    expect(rows.map((r) => r.id as number)).toEqual([7]);

    const redisService = sandbox.services.redis!;
    const before = new Redis(sandbox.redis!.url);
    await before.set('sandbox:durable', 'kept');
    before.disconnect();
    await redisService.stop();
    await redisService.start();
    const after = new Redis(sandbox.redis!.url);
    try {
      expect(await after.get('sandbox:durable')).toBe('kept');
    } finally {
      after.disconnect();
    }
  });

  if (mode === 'docker') {
    it('runs every container with host networking (no bridge address) and removes them on stop', () => {
      const ids = execFileSync(
        'docker',
        ['ps', '-q', '--filter', `label=${OWNER_LABEL}=${hostname()}:${process.pid}`],
        { encoding: 'utf8' },
      )
        .split('\n')
        .filter((id) => id.length > 0);
      expect(ids.length).toBe(4);
      const networks = execFileSync(
        'docker',
        ['inspect', '--format', '{{.HostConfig.NetworkMode}}', ...ids],
        { encoding: 'utf8' },
      );
      expect(networks.trim().split('\n')).toEqual(['host', 'host', 'host', 'host']);
    });
  }

  it('leaves no process or scratch directory behind after stop', async () => {
    const pids = sandbox.pids();
    expect(pids.length).toBe(4); // 2 × mariadbd, kafka, redis
    expect(pids.every(isAlive)).toBe(true);
    await sandbox.stop();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(sandbox.dir)).toBe(false);
    if (mode === 'docker') {
      const left = execFileSync(
        'docker',
        ['ps', '-aq', '--filter', `label=${OWNER_LABEL}=${hostname()}:${process.pid}`],
        { encoding: 'utf8' },
      );
      expect(left.trim()).toBe('');
    }
    await sandbox.stop(); // a second stop is harmless
  });
});
