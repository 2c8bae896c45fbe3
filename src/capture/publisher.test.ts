import { CompressionTypes, type Producer, type ProducerBatch } from 'kafkajs';
import { silentLogger } from '../core/logger.js';
import type { Checkpoint, CheckpointStore } from '../state/store.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { messageKey, packRow } from '../bus/envelope.js';
import { murmur2 } from '../bus/partitioner.js';
import { auditRecordId, decodeAuditMessage, type AuditRecord } from '../governance/audit.js';
import {
  CapturePublisher,
  DEFAULT_BATCH_MAX_BYTES,
  groupByPartition,
  joinPartition,
  partitionOf,
  type PublisherOptions,
  type PublishItem,
} from './publisher.js';

/** A producer that records each request; every send succeeds. */
function recordingProducer(): { producer: Producer; requests: ProducerBatch[] } {
  const requests: ProducerBatch[] = [];
  const producer = {
    sendBatch: (batch: ProducerBatch) => {
      requests.push(batch);
      return Promise.resolve([]);
    },
  } as unknown as Producer;
  return { producer, requests };
}

/** A producer that records its requests and acknowledges the second one only on `releaseSecond()`. */
function secondSendHeld(): {
  producer: Producer;
  requests: ProducerBatch[];
  releaseSecond: () => void;
} {
  const requests: ProducerBatch[] = [];
  let releaseSecond: () => void = () => undefined;
  const secondSent = new Promise<void>((resolve) => (releaseSecond = resolve));
  const producer = {
    sendBatch: async (batch: ProducerBatch) => {
      requests.push(batch);
      if (requests.length === 2) await secondSent;
      return [];
    },
  } as unknown as Producer;
  return { producer, requests, releaseSecond };
}

function memoryStore(): CheckpointStore & { saved: Checkpoint[] } {
  const saved: Checkpoint[] = [];
  return {
    saved,
    load: () => Promise.resolve(saved.at(-1)),
    save: (_key, checkpoint) => {
      saved.push(checkpoint);
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}

function message(n: number, bytes: number): PublishItem {
  return {
    kind: 'message',
    topic: `t${n % 2}`,
    key: `k${n}`,
    value: Buffer.alloc(bytes, n % 256),
    table: 'db.t',
    op: 'c',
    commitTs: 0,
  };
}

function requestBytes(request: ProducerBatch): number {
  return (request.topicMessages ?? [])
    .flatMap((t) => t.messages)
    .reduce((sum, m) => sum + (m.value as Buffer).length + Buffer.byteLength(m.key as string), 0);
}

function publisherWith(
  producer: Producer,
  store: CheckpointStore,
  overrides: Partial<PublisherOptions> = {},
): CapturePublisher {
  return new CapturePublisher({
    producer,
    store,
    checkpointKey: 'capture',
    maxInFlightBytes: 64 * 1024 * 1024,
    batchMaxMessages: 2000,
    lingerMs: 0,
    compression: CompressionTypes.None,
    checkpointIntervalMs: 0,
    logger: silentLogger(),
    onBackpressure: () => undefined,
    onAcknowledged: () => undefined,
    onInFlightBytes: () => undefined,
    ensureTopics: () => Promise.resolve(),
    onFatal: (error) => {
      throw error;
    },
    ...overrides,
  });
}

describe('CapturePublisher', () => {
  it('sends changes enqueued while it was saving a checkpoint, without waiting for more', async () => {
    const { producer, requests } = recordingProducer();
    let paused = false;
    // The budget is full after one change: the reader is paused, so no further enqueue will come.
    const publisher = publisherWith(producer, memoryStore(), {
      maxInFlightBytes: 1,
      onBackpressure: (p) => (paused = p),
    });
    // The pump is inside its first (idle) checkpoint await right now.
    publisher.enqueue(message(1, 100));
    publisher.enqueue({ kind: 'commit', position: '0-1-1' });
    expect(paused).toBe(true);
    for (let i = 0; i < 100 && requests.length === 0; i += 1) await sleep(10);
    expect(requests).toHaveLength(1);
    expect(paused).toBe(false);
    await publisher.drain();
  });

  it("keeps every request under the broker's default message size, in order, one oversized message alone", async () => {
    const { producer, requests } = recordingProducer();
    const store = memoryStore();
    const publisher = publisherWith(producer, store);
    // 2000 rows of 3 KiB: 6 MiB under batchMaxMessages, far over one request's limit.
    for (let n = 0; n < 2000; n += 1) publisher.enqueue(message(n, 3 * 1024));
    publisher.enqueue({ kind: 'commit', position: '0-1-1' });
    publisher.enqueue(message(2000, 2 * 1024 * 1024));
    publisher.enqueue({ kind: 'commit', position: '0-1-2' });
    await publisher.drain();

    const sizes = requests.map(requestBytes);
    const counts = requests.map((r) => (r.topicMessages ?? []).flatMap((t) => t.messages).length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(2001);
    expect(counts.at(-1)).toBe(1);
    expect(sizes.slice(0, -1).every((size) => size <= DEFAULT_BATCH_MAX_BYTES)).toBe(true);
    const keys = requests.flatMap((r) =>
      (r.topicMessages ?? []).flatMap((t) => t.messages.map((m) => Number(String(m.key).slice(1)))),
    );
    // Within a topic, messages keep their order across requests.
    for (const parity of [0, 1]) {
      const ofTopic = keys.filter((k) => k % 2 === parity);
      expect(ofTopic).toEqual([...ofTopic].sort((a, b) => a - b));
    }
    expect(store.saved.at(-1)?.position).toBe('0-1-2');
  });

  it('sends tombstones and uncounted copies with the rest, and checkpoints only after the send that holds them', async () => {
    // The second request (the Debezium copies) is acknowledged only when released.
    const { producer, requests, releaseSecond } = secondSendHeld();
    const store = memoryStore();
    const acknowledged: { table: string; op: string; n: number }[] = [];
    const publisher = publisherWith(producer, store, {
      batchMaxMessages: 1,
      onAcknowledged: (counts) => acknowledged.push(...counts.values()),
    });
    type Message = Extract<PublishItem, { kind: 'message' }>;
    publisher.enqueue({ ...(message(1, 10) as Message), op: 'd' });
    const copy: Message = {
      ...(message(2, 10) as Message),
      op: 'd',
      topic: 'dbz.db.t',
      counted: false,
    };
    publisher.enqueue(copy);
    publisher.enqueue({ ...copy, value: null });
    publisher.enqueue({ kind: 'commit', position: '0-1-1' });
    for (let i = 0; i < 100 && requests.length < 2; i += 1) await sleep(10);
    await sleep(20);
    // The replication message is acknowledged, the Debezium copy is not yet: no checkpoint.
    expect(store.saved).toEqual([]);
    expect(publisher.acknowledgedPosition).toBeUndefined();
    releaseSecond();
    await publisher.drain();
    expect(store.saved.at(-1)?.position).toBe('0-1-1');
    const sent = requests.flatMap((r) => (r.topicMessages ?? []).flatMap((t) => t.messages));
    expect(sent.map((m) => m.value === null)).toEqual([false, false, true]);
    // Each change counted once, not per output.
    expect(acknowledged).toEqual([{ table: 'db.t', op: 'd', n: 1 }]);
  });

  it("counts a governed change's v2 copies once, and puts each copy on its key's partition in its topic", async () => {
    const { producer, requests } = recordingProducer();
    const acknowledged: { table: string; op: string; n: number }[] = [];
    const publisher = publisherWith(producer, memoryStore(), {
      onAcknowledged: (counts) => acknowledged.push(...counts.values()),
      partitionCounts: (topics) => Promise.resolve(new Map(topics.map((t) => [t, 3]))),
    });
    const event = {
      v: 1 as const,
      op: 'c' as const,
      region: 'eu-west',
      db: 'app',
      table: 'people',
      pk: { id: 7 },
      before: null,
      after: { id: 7, email: 'x' },
      hlc: 1,
      origin: 'eu-west',
      vv: { 'eu-west': 1 },
      gtid: null,
      commitTs: 0,
    };
    const key = messageKey('app', 'people', { id: 7 });
    for (const [topic, counted] of [
      ['cdc-zone-eu.eu-west.app.people', true],
      ['cdc-masked-us-east.eu-west.app.people', false],
    ] as const)
      publisher.enqueue({
        kind: 'row',
        topic,
        key,
        row: packRow(event),
        table: 'app.people',
        op: 'c',
        commitTs: 0,
        ...(counted ? {} : { counted: false }),
      });
    publisher.enqueue({ kind: 'commit', position: '0-1-1' });
    await publisher.drain();
    expect(acknowledged).toEqual([{ table: 'app.people', op: 'c', n: 1 }]);
    const placed = requests.flatMap((r) =>
      (r.topicMessages ?? []).flatMap((t) => t.messages.map((m) => [t.topic, m.partition])),
    );
    const partition = (murmur2(Buffer.from(key)) & 0x7fffffff) % 3;
    expect(placed).toEqual([
      ['cdc-zone-eu.eu-west.app.people', partition],
      ['cdc-masked-us-east.eu-west.app.people', partition],
    ]);
  });

  it("joins a batch's audit records per partition into few messages, in the same sendBatch as their rows", async () => {
    const { producer, requests } = recordingProducer();
    const store = memoryStore();
    const acknowledged: { table: string; op: string; n: number }[] = [];
    const publisher = publisherWith(producer, store, {
      onAcknowledged: (counts) => acknowledged.push(...counts.values()),
      partitionCounts: (topics) => Promise.resolve(new Map(topics.map((t) => [t, 3]))),
    });
    // 100 changes, each a row and two records right behind it, one transaction each.
    const enqueued: AuditRecord[] = [];
    for (let id = 1; id <= 100; id += 1) {
      publisher.enqueue(rowItem(id, 'cdc-zone-eu.eu-west.app.people'));
      for (const target of ['eu-central', 'us-east']) {
        const record = auditRecord(id, target);
        enqueued.push(record);
        publisher.enqueue(auditItem(record));
      }
      publisher.enqueue({ kind: 'commit', position: `0-1-${id}` });
    }
    await publisher.drain();

    expect(requests).toHaveLength(1);
    const topics = requests[0]?.topicMessages ?? [];
    const audit = topics.find((t) => t.topic === AUDIT)?.messages ?? [];
    const rows = topics.find((t) => t.topic === 'cdc-zone-eu.eu-west.app.people')?.messages ?? [];
    // At most one audit message per partition (3) instead of 200.
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.length).toBeLessThanOrEqual(3);
    expect(rows.length).toBeLessThanOrEqual(3);
    const read: AuditRecord[] = [];
    for (const m of audit) {
      const decoded = decodeAuditMessage(m.value);
      expect(decoded.problem).toBeUndefined();
      for (const r of decoded.records ?? []) {
        // Every record on the partition its own key hashes to, as a one-record message was.
        expect(partitionOf(`app.people#${r.keyHash}`, 3)).toBe(m.partition);
        read.push(r);
      }
      expect(partitionOf(String(m.key), 3)).toBe(m.partition);
    }
    // Every record once, each row's records in the order they were enqueued.
    expect(read.map(auditRecordId).sort()).toEqual(enqueued.map(auditRecordId).sort());
    for (let id = 1; id <= 100; id += 1)
      expect(read.filter((r) => r.keyHash === `h${id}`).map((r) => r.target)).toEqual([
        'eu-central',
        'us-east',
      ]);
    // Records are not captured changes.
    expect(acknowledged).toEqual([{ table: 'app.people', op: 'c', n: 100 }]);
    expect(store.saved.at(-1)?.position).toBe('0-1-100');
  });

  it('moves the position past a change only once the send holding its last record is acknowledged', async () => {
    const { producer, requests, releaseSecond } = secondSendHeld();
    const store = memoryStore();
    // Two items per send: the row and its first record, then its second record.
    const publisher = publisherWith(producer, store, {
      batchMaxMessages: 2,
      partitionCounts: (topics) => Promise.resolve(new Map(topics.map((t) => [t, 1]))),
    });
    publisher.enqueue(rowItem(1, 'cdc.eu-west.app.people'));
    publisher.enqueue(auditItem(auditRecord(1, 'eu-central')));
    publisher.enqueue(auditItem(auditRecord(1, 'us-east')));
    publisher.enqueue({ kind: 'commit', position: '0-1-1' });
    for (let i = 0; i < 100 && requests.length < 2; i += 1) await sleep(10);
    await sleep(20);
    expect(requests).toHaveLength(2);
    expect(requests[0]?.topicMessages?.map((t) => t.topic).sort()).toEqual([
      AUDIT,
      'cdc.eu-west.app.people',
    ]);
    // The second record is not acknowledged yet: the position stays before the change.
    expect(publisher.acknowledgedPosition).toBeUndefined();
    expect(store.saved).toEqual([]);
    releaseSecond();
    await publisher.drain();
    expect(store.saved.at(-1)?.position).toBe('0-1-1');
  });
});

const AUDIT = 'cdc._audit.eu-west';

function auditRecord(id: number, target: string): AuditRecord {
  return {
    v: 1,
    time: '2026-12-07T08:30:00.000Z',
    source: 'eu-west',
    target,
    decision: 'sent',
    db: 'app',
    table: 'people',
    op: 'c',
    keyHash: `h${id}`,
    version: { hlc: id, origin: 'eu-west' },
    gtid: `0-1-${id}`,
    policy: 'people-eu',
    policyVersion: '3f9c2a61b0de',
  };
}

function auditItem(record: AuditRecord): PublishItem {
  return {
    kind: 'audit',
    topic: AUDIT,
    key: `${record.db}.${record.table}#${record.keyHash}`,
    record: Buffer.from(JSON.stringify(record)),
    commitTs: 0,
  };
}

function rowItem(id: number, topic: string): Extract<PublishItem, { kind: 'row' }> {
  return {
    kind: 'row',
    topic,
    key: messageKey('app', 'people', { id }),
    row: packRow({
      v: 1,
      op: 'c',
      region: 'eu-west',
      db: 'app',
      table: 'people',
      pk: { id },
      before: null,
      after: { id, email: 'x' },
      hlc: id,
      origin: 'eu-west',
      vv: { 'eu-west': id },
      gtid: null,
      commitTs: 0,
    }),
    table: 'app.people',
    op: 'c',
    commitTs: 0,
  };
}

describe('joining items per partition', () => {
  it('places a key where murmur2 does, and keeps each partition in enqueue order', () => {
    const items = Array.from({ length: 50 }, (_, n) => ({ key: `k${n}`, n }));
    const grouped = groupByPartition(items, 4);
    for (const [partition, list] of grouped) {
      for (const item of list)
        expect(partition).toBe((murmur2(Buffer.from(item.key)) & 0x7fffffff) % 4);
      expect(list.map((i) => i.n)).toEqual([...list.map((i) => i.n)].sort((a, b) => a - b));
    }
    expect([...grouped.values()].flat()).toHaveLength(50);
    expect([...groupByPartition(items, 1).keys()]).toEqual([0]);
  });

  it('makes one message per run of a kind, keyed by its first item, split under the size bound', () => {
    const a = auditItem(auditRecord(1, 'eu-central')) as Extract<PublishItem, { kind: 'audit' }>;
    const b = auditItem(auditRecord(2, 'us-east')) as Extract<PublishItem, { kind: 'audit' }>;
    const row = rowItem(3, 'cdc.eu-west.app.people');
    const joined = joinPartition([a, b, row, a], 1_000_000);
    expect(joined.map((m) => [m.key, m.items])).toEqual([
      [a.key, 2],
      [row.key, 1],
      [a.key, 1],
    ]);
    expect(decodeAuditMessage(joined[0]?.value ?? null).records?.map((r) => r.keyHash)).toEqual([
      'h1',
      'h2',
    ]);
    expect(JSON.parse(joined[1]?.value.toString() ?? '')).toMatchObject({
      v: 2,
      rows: [expect.arrayContaining(['c', 3])],
    });
    // A bound below one record: a message each, every one readable.
    const alone = joinPartition([a, b, a], 10);
    expect(alone.map((m) => [m.key, m.items])).toEqual([
      [a.key, 1],
      [b.key, 1],
      [a.key, 1],
    ]);
    for (const m of alone) expect(decodeAuditMessage(m.value).records).toHaveLength(1);
    expect(joinPartition([], 10)).toEqual([]);
  });
});
