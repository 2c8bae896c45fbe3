/**
 * Events are untrusted input (DESIGN.md §5): whoever can write to a peer's
 * topic must not be able to reach tables outside the pipeline, inject SQL
 * through identifiers, or stall a partition with garbage. Every such message
 * is parked in the dead-letter topic with its reason and its original bytes,
 * counted, and the partition keeps flowing. Honest events the local schema
 * cannot take yet (a column this region lacks) are held instead, and applied
 * once it can; a local column the winning image does not carry takes its
 * default.
 */
import { jest } from '@jest/globals';
import { Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { messageKey, topicName } from '../../../src/bus/envelope.js';
import { ensureTopics } from '../../../src/bus/kafka.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { startCluster, waitFor, type Cluster } from '../../support/cluster.js';
import { readTopics, readTopicsToEnd, type ReadMessage } from '../../support/kafka.js';

jest.setTimeout(180_000);

const REGIONS = ['east', 'west'] as const;
type Region = (typeof REGIONS)[number];

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(200), score INT)',
  'CREATE TABLE app.profiles (id INT PRIMARY KEY, name VARCHAR(50), score INT)',
  // Present in every region, but not in the pipeline.
  'CREATE TABLE app.secret (id INT PRIMARY KEY, data VARCHAR(50))',
  "INSERT INTO app.secret VALUES (1, 'top secret')",
];

/** A dead-letter record as the applier writes it. */
interface DeadLetter {
  stage: string;
  region: string;
  reason: string;
  error: string;
  source: { topic: string; partition: number; offset: string | null; key: string | null };
  value: string | null;
}

describe('apply: untrusted and unfitting events', () => {
  let cluster: Cluster;
  let brokers: string[];
  let kafka: Kafka;
  let producer: Producer;
  const db = new Map<Region, mysql.Connection>();
  const conn = (region: Region): mysql.Connection => db.get(region) as mysql.Connection;
  const options = (region: Region): RuntimeOptions => cluster.options.get(region) as RuntimeOptions;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: [...REGIONS],
      ddl: DDL,
      tables: ['app.users', 'app.profiles'],
    });
    for (const region of REGIONS) db.set(region, await cluster.db(region));
    brokers = [...(cluster.sandbox.kafka?.brokers ?? [])];
    kafka = new Kafka({ clientId: 'test-forger', brokers, logLevel: logLevel.NOTHING });
    // The partitioner capture uses: same key, same partition as a real change of that row.
    producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
  });

  afterAll(async () => {
    await producer?.disconnect();
    await cluster?.stop();
  });

  async function deadLetterCount(region: Region, reason?: string): Promise<number> {
    const metric = await cluster.daemons.get(region)!.metrics.deadLetterTotal.get();
    return metric.values
      .filter(
        (v) => v.labels.stage === 'apply' && (reason === undefined || v.labels.reason === reason),
      )
      .reduce((sum, v) => sum + v.value, 0);
  }

  async function waitForDeadLetters(region: Region, expected: number): Promise<void> {
    await waitFor(
      async () => (await deadLetterCount(region)) >= expected,
      30_000,
      async () =>
        `dead letters in ${region}: ${await deadLetterCount(region)}, expected ${expected}`,
    );
  }

  /** Every column of a table, the version columns included. */
  async function content(region: Region, table: string): Promise<string> {
    const [rows] = await conn(region).query(
      `SELECT *, _cdc_ts, _cdc_ver FROM ${table} ORDER BY id`,
    );
    return JSON.stringify(rows);
  }

  async function secretContent(region: Region): Promise<string> {
    const [rows] = await conn(region).query('SELECT * FROM app.secret ORDER BY id');
    return JSON.stringify(rows);
  }

  async function row(region: Region, table: string, id: number): Promise<unknown> {
    const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
      `SELECT * FROM ${table} WHERE id = ?`,
      [id],
    );
    return rows[0] ?? null;
  }

  async function waitForRow(
    region: Region,
    table: string,
    id: number,
    expected: unknown,
  ): Promise<void> {
    await waitFor(
      async () => JSON.stringify(await row(region, table, id)) === JSON.stringify(expected),
      30_000,
      async () =>
        `${region} ${table} id ${id}: ${JSON.stringify(await row(region, table, id))}, expected ${JSON.stringify(expected)}`,
    );
  }

  async function readDeadLetters(region: Region, atLeast: number): Promise<DeadLetter[]> {
    const messages = await readTopics(
      brokers,
      [`cdc._dlq.apply.${region}`],
      (read) => read.length >= atLeast,
      30_000,
    );
    return messages.map((m) => JSON.parse(m.value) as DeadLetter);
  }

  it('parks forged events (foreign tables, SQL in identifiers, garbage) in the dead letter, runs nothing, and keeps the partition flowing', async () => {
    const peerTopic = topicName('cdc', 'east', 'app', 'users');
    await conn('east').query("INSERT INTO app.users VALUES (1, 'ann', 1)");
    await waitForRow('west', 'app.users', 1, { id: 1, name: 'ann', score: 1 });
    const usersBefore = await content('west', 'app.users');
    const secretBefore = await secretContent('west');

    const hlc = Date.now() * 1000;
    const event = (overrides: Record<string, unknown>): string =>
      JSON.stringify({
        v: 1,
        op: 'c',
        region: 'east',
        db: 'app',
        table: 'users',
        pk: { id: 50 },
        before: null,
        after: { id: 50, name: 'forged', score: 0 },
        hlc,
        origin: 'east',
        vv: { east: hlc },
        gtid: null,
        commitTs: Math.floor(hlc / 1000),
        ...overrides,
      });
    const inject = 'id`; DROP TABLE app.users; --';
    const forged: { what: string; value: string | null; reason: string }[] = [
      {
        what: 'a table outside the pipeline',
        value: event({ table: 'secret', pk: { id: 1 }, after: { id: 1, data: 'pwned' } }),
        reason: 'table_not_in_pipeline',
      },
      {
        what: 'an internal table',
        value: event({
          db: '_cdc',
          table: '_cdc_apply_marker',
          pk: { applier: 'x' },
          after: { applier: 'x', source_region: 'east', batches: 0 },
        }),
        reason: 'table_not_in_pipeline',
      },
      {
        what: 'a table name carrying SQL',
        value: event({ table: 'users`; DROP TABLE app.users; --' }),
        reason: 'table_not_in_pipeline',
      },
      {
        what: 'a column name carrying SQL',
        value: event({ after: { id: 50, name: 'x', [inject]: 1 } }),
        reason: 'column_missing',
      },
      {
        what: 'a key column name carrying SQL (upsert)',
        value: event({ pk: { [inject]: 50 }, after: { [inject]: 50, name: 'x' } }),
        reason: 'key_mismatch',
      },
      {
        what: 'a key column name carrying SQL (delete)',
        value: event({ op: 'd', pk: { [inject]: 1 }, before: { [inject]: 1 }, after: null }),
        reason: 'key_mismatch',
      },
      { what: 'not JSON', value: '{"v":1,"op":"c","region":"east",', reason: 'malformed' },
      { what: 'no value at all', value: null, reason: 'malformed' },
      {
        what: "another region's name on east's topic",
        value: event({ region: 'west' }),
        reason: 'malformed',
      },
      {
        what: 'a version below its own vector',
        value: event({ vv: { east: hlc + 1 } }),
        reason: 'version_invalid',
      },
    ];
    // All on the partition of the real change that follows (row 60).
    const key = messageKey('app', 'users', { id: 60 });
    for (const f of forged)
      await producer.send({ topic: peerTopic, messages: [{ key, value: f.value }] });

    // A topic for a table that is not configured: the applier does not even read it.
    const secretTopic = topicName('cdc', 'east', 'app', 'secret');
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [secretTopic], options('west').kafka.topics);
    } finally {
      await admin.disconnect();
    }
    await producer.send({
      topic: secretTopic,
      messages: [
        {
          key: messageKey('app', 'secret', { id: 1 }),
          value: event({ table: 'secret', pk: { id: 1 }, after: { id: 1, data: 'pwned' } }),
        },
      ],
    });

    await waitForDeadLetters('west', forged.length);
    // Nothing ran: the table and its neighbours are as they were, in both regions.
    expect(await content('west', 'app.users')).toBe(usersBefore);
    for (const region of REGIONS) {
      const [tables] = await conn(region).query<mysql.RowDataPacket[]>(
        'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY t',
        ['app'],
      );
      expect(tables.map((t) => String(t.t))).toEqual(['profiles', 'secret', 'users']);
    }

    // Hostile-looking values are data, bound as parameters: stored literally.
    const hostile = "'); DROP TABLE app.users; --";
    await producer.send({
      topic: peerTopic,
      messages: [
        { key, value: event({ pk: { id: 51 }, after: { id: 51, name: hostile, score: 0 } }) },
      ],
    });
    // The partition still flows: a real change made after all of them arrives.
    await conn('east').query("INSERT INTO app.users VALUES (60, 'after the forgeries', 6)");
    await waitForRow('west', 'app.users', 60, { id: 60, name: 'after the forgeries', score: 6 });
    await waitForRow('west', 'app.users', 51, { id: 51, name: hostile, score: 0 });

    // Same partition, forgeries first: the real change really had to get past them.
    const onTopic = await readTopicsToEnd(brokers, [peerTopic]);
    const real = onTopic.find((m: ReadMessage) => m.value.includes('after the forgeries'));
    const first = onTopic.find((m) => m.value === forged[0]?.value);
    expect(real?.partition).toBe(first?.partition);
    expect(Number(real?.offset)).toBeGreaterThan(Number(first?.offset));

    // Each forgery is in the dead-letter topic with its reason and its original bytes.
    const letters = await readDeadLetters('west', forged.length);
    expect(letters).toHaveLength(forged.length);
    for (const f of forged) {
      const letter = letters.find(
        (l) => l.value === (f.value === null ? null : Buffer.from(f.value).toString('base64')),
      );
      expect({ what: f.what, letter }).toMatchObject({
        what: f.what,
        letter: {
          stage: 'apply',
          region: 'west',
          reason: f.reason,
          source: { topic: peerTopic, partition: real?.partition, key },
        },
      });
    }
    expect(letters.some((l) => l.source.topic === secretTopic)).toBe(false);
    const expectedByReason = new Map<string, number>();
    for (const f of forged)
      expectedByReason.set(f.reason, (expectedByReason.get(f.reason) ?? 0) + 1);
    for (const [reason, n] of expectedByReason)
      expect(await deadLetterCount('west', reason)).toBe(n);
    expect(await deadLetterCount('west')).toBe(forged.length);

    // The rows that were there are untouched; app.secret never changed anywhere.
    const [rows] = await conn('west').query('SELECT id FROM app.users ORDER BY id');
    expect(rows).toEqual([{ id: 1 }, { id: 51 }, { id: 60 }]);
    expect(await secretContent('west')).toBe(secretBefore);
    expect(await secretContent('east')).toBe(secretBefore);
  });

  it('holds an event with a column this region lacks until it has it (no dead letter); a column absent from the winning image takes its default', async () => {
    // east grows a column the other region does not have, and re-runs prepare.
    await conn('east').query(
      "ALTER TABLE app.profiles ADD COLUMN nickname VARCHAR(20) NOT NULL DEFAULT 'none'",
    );
    const admin = await connectMysql(options('east').mysql);
    try {
      await applyPrepare(
        admin,
        await planPrepare(admin, options('east'), options('east').internalSchema),
      );
    } finally {
      await admin.end();
    }

    // An insert without the column gets east's default.
    await conn('west').query("INSERT INTO app.profiles VALUES (1, 'ann', 1)");
    await waitForRow('east', 'app.profiles', 1, { id: 1, name: 'ann', score: 1, nickname: 'none' });

    // east's events now carry `nickname`, which west cannot store yet: held, not dead-lettered.
    const deadBefore = await deadLetterCount('west');
    await conn('east').query("UPDATE app.profiles SET nickname = 'annie', score = 7 WHERE id = 1");
    const west = cluster.daemons.get('west')!;
    const held = async (): Promise<number> =>
      (await west.metrics.applyHeld.get()).values
        .filter((v) => v.labels.table === 'app.profiles' && v.labels.reason === 'column_missing')
        .reduce((sum, v) => sum + v.value, 0);
    await waitFor(
      async () => (await held()) > 0,
      30_000,
      () => 'no hold of app.profiles in west',
    );
    expect(west.apply!.readiness()).toEqual([
      expect.stringMatching(/^app\.profiles from east held \d+ s: column nickname missing here$/),
    ]);
    expect(await row('west', 'app.profiles', 1)).toEqual({ id: 1, name: 'ann', score: 1 });

    // A later update from west wins; its image has no `nickname`, so east's copy
    // takes the column's default instead of keeping 'annie' (one rule everywhere).
    await conn('west').query("UPDATE app.profiles SET name = 'anna', score = 2 WHERE id = 1");
    await waitForRow('east', 'app.profiles', 1, {
      id: 1,
      name: 'anna',
      score: 2,
      nickname: 'none',
    });

    // west adds the column: the held event resumes by itself (and loses to west's newer write).
    await conn('west').query(
      "ALTER TABLE app.profiles ADD COLUMN nickname VARCHAR(20) NOT NULL DEFAULT 'none'",
    );
    await conn('east').query("INSERT INTO app.profiles VALUES (2, 'bob', 5, 'bobby')");
    await waitForRow('west', 'app.profiles', 2, {
      id: 2,
      name: 'bob',
      score: 5,
      nickname: 'bobby',
    });
    await waitFor(
      async () => (await held()) === 0 && west.apply!.readiness().length === 0,
      30_000,
      () => `still held: ${west.apply!.readiness().join('; ')}`,
    );
    expect(await row('west', 'app.profiles', 1)).toEqual({
      id: 1,
      name: 'anna',
      score: 2,
      nickname: 'none',
    });
    expect(await deadLetterCount('west')).toBe(deadBefore);
  });
});
