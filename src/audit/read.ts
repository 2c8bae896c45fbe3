/**
 * What `cdc-replicator audit` reads: the table's primary key with its types
 * (from a region's database: the key hash depends on them) and the audit
 * topics `<prefix>._audit.<region>` of the chosen regions, each from its
 * region's Kafka cluster, from the earliest offset to their end when the
 * read starts.
 */
import type { Kafka } from 'kafkajs';

import { describeKafka } from '../bus/kafka.js';
import type { RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import { readTopicsToEnd } from '../dead-letters/reader.js';
import type { RawDeadLetter } from '../dead-letters/record.js';
import {
  auditTopic,
  decodeAuditMessage,
  dedupeAuditRecords,
  type AuditRecord,
} from '../governance/audit.js';
import type { ColumnTypeInfo } from '../governance/policy.js';
import { connectMysql, describeMysql } from '../mysql/connection.js';
import { describeTable } from '../mysql/introspect.js';
import type { AuditedTable } from './key.js';

/** The primary key of a table as one region's database describes it. */
export interface KeyDescription {
  /** The region whose database answered. */
  readonly region: string;
  /** Key columns in key order with their types; undefined when the table does not exist there. */
  readonly keyColumns: readonly ColumnTypeInfo[] | undefined;
}

/**
 * The table's key columns from the first of `regions` whose database
 * answers (in the order given). Regions that cannot be reached are skipped;
 * when none answers, a CdcError names each one's failure.
 */
export async function describeKey(
  regions: readonly RuntimeOptions[],
  table: AuditedTable,
): Promise<KeyDescription> {
  const failures: string[] = [];
  for (const options of regions) {
    let connection;
    try {
      connection = await connectMysql(options.mysql);
    } catch (err) {
      if (!(err instanceof CdcError)) throw err;
      failures.push(`${options.region} (${describeMysql(options.mysql)}): ${err.message}`);
      continue;
    }
    try {
      const info = await describeTable(connection, table.schema, table.table);
      if (info === undefined) return { region: options.region, keyColumns: undefined };
      const byName = new Map(info.columns.map((c) => [c.name, c]));
      return {
        region: options.region,
        keyColumns: info.primaryKey.map((name) => {
          const column = byName.get(name);
          return {
            name,
            dataType: column?.dataType ?? '',
            columnType: column?.columnType ?? '',
          };
        }),
      };
    } finally {
      await connection.end();
    }
  }
  throw new CdcError(
    `cannot read the primary key of ${table.schema}.${table.table}: no region's database answered: ${failures.join('; ')}`,
    { code: 'AUDIT_KEY_UNKNOWN' },
  );
}

export interface ReadAuditOptions {
  /** A Kafka client for a region's cluster (regions may use different clusters). */
  readonly kafkaOf: (options: RuntimeOptions) => Kafka;
  readonly timeoutMs: number;
  readonly onGroupLeft: (groupId: string, error: Error) => void;
}

/** A message of an audit topic that could not be read: where it is and why (never its value). */
export interface UnreadableAuditMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly problem: string;
}

export interface AuditReadResult {
  /** The records of the row, de-duplicated, oldest first. */
  readonly records: AuditRecord[];
  /** Every topic read. */
  readonly topics: string[];
  /**
   * Messages in the topics that are neither an audit batch nor an audit
   * record this version reads (malformed, or written by a newer version), in
   * topic, partition and offset order. Their records, whichever rows they
   * concern, are not in `records`.
   */
  readonly unreadable: UnreadableAuditMessage[];
}

/**
 * The records of `db.table` with `keyHash` in messages of an audit topic, in
 * message order, and the messages that could not be read. A message is an
 * audit batch (capture) or a single record (`erase`, and capture before
 * audit batches): both are read. A message that is neither, or a batch with
 * one bad record, is named in `unreadable` whole, never read in part.
 */
export function recordsOfMessages(
  messages: readonly Pick<RawDeadLetter, 'topic' | 'partition' | 'offset' | 'value'>[],
  row: AuditedTable & { readonly keyHash: string },
): { records: AuditRecord[]; unreadable: UnreadableAuditMessage[] } {
  const records: AuditRecord[] = [];
  const unreadable: UnreadableAuditMessage[] = [];
  for (const { topic, partition, offset, value } of messages) {
    const decoded = decodeAuditMessage(value);
    if (decoded.problem !== undefined) {
      unreadable.push({ topic, partition, offset, problem: decoded.problem });
      continue;
    }
    for (const record of decoded.records)
      if (record.db === row.schema && record.table === row.table && record.keyHash === row.keyHash)
        records.push(record);
  }
  return { records, unreadable };
}

/**
 * Reads the audit topic of each of `regions` whole and keeps the records of
 * `db.table` with `keyHash`. A topic that does not exist cannot be read: a
 * CdcError, as when Kafka fails or the read times out.
 */
export async function readAuditRecords(
  regions: readonly RuntimeOptions[],
  row: AuditedTable & { readonly keyHash: string },
  options: ReadAuditOptions,
): Promise<AuditReadResult> {
  const found: AuditRecord[] = [];
  const topics: string[] = [];
  const unreadable: UnreadableAuditMessage[] = [];
  for (const region of regions) {
    const prefix = region.kafka.topicPrefix;
    const topic = auditTopic(prefix, region.region);
    const description = describeKafka(region.kafka);
    const read = await readTopicsToEnd(options.kafkaOf(region), [topic], {
      topicPrefix: prefix,
      description,
      timeoutMs: options.timeoutMs,
      onGroupLeft: options.onGroupLeft,
      groupName: '_audit-reader',
    });
    if (read.missing.length > 0)
      throw new CdcError(
        `audit topic ${topic} does not exist in ${description} (region ${region.region}'s daemon creates it at start)`,
        { code: 'AUDIT_TOPIC_MISSING' },
      );
    topics.push(topic);
    const messages = recordsOfMessages(read.messages, row);
    // Loops, not push(...): a topic may hold any number of unreadable messages.
    for (const record of messages.records) found.push(record);
    for (const message of messages.unreadable) unreadable.push(message);
  }
  // Stable: records of one time keep their topic and offset order.
  found.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  return { records: dedupeAuditRecords(found), topics, unreadable };
}
