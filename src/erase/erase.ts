/**
 * `cdc-replicator erase` (docs/GOVERNANCE.md, "Erasure"): removes one row
 * in every region, whatever its residency, so that no write that has not
 * seen the erasure brings it back.
 *
 * 1. In the origin region, the erasure gets a version above everything
 *    that region knows of the key, and is applied there as the appliers
 *    apply notices (src/apply/eviction.ts): under the apply marker, so
 *    capture never publishes the delete (a delete would carry the row); the
 *    key keeps a tombstone that records the erasure and no key value; its
 *    copies in `_cdc_conflicts` go.
 * 2. An erasure notice (src/bus/envelope.ts, `notice: 'erase'`) naming
 *    every other region goes on the table's change topic of the origin,
 *    which every region reads.
 * 3. Each other region's database is polled until it holds nothing of the
 *    key that has not seen the erasure: a region still stopped, or still
 *    holding a write made before the erasure reached it, is waited for.
 *
 * Running it again is safe: a new erasure, above the old one.
 */
import mysql from 'mysql2/promise';
import type { Kafka } from 'kafkajs';

import { keyValuesInOrder, type KeyPart } from '../audit/key.js';
import { rowVersionOf, tombstoneOf, versionColumnsSql } from '../apply/batch-applier.js';
import { applyNoticeChunk, keyHashExpression } from '../apply/eviction.js';
import {
  APPLIER_SESSION_STATEMENTS,
  describeApplyTable,
  strategyOf,
  type ApplyTable,
} from '../apply/apply-target.js';
import { ENVELOPE_VERSION, encodeNotice, noticeKey, topicName } from '../bus/envelope.js';
import type { EvictionNotice, RowImage } from '../bus/envelope.js';
import { tableMatches, type RuntimeOptions } from '../config/compile.js';
import { CdcError, ConfigError } from '../core/errors.js';
import { isBinaryDataType } from '../mysql/column-types.js';
import { clientOptions, describeMysql, mysqlError } from '../mysql/connection.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { INTERNAL_TABLES } from '../mysql/internal-tables.js';
import { tombstoneKeyHash } from '../mysql/tombstone-key.js';
import {
  AUDIT_RECORD_VERSION,
  auditMessageKey,
  auditTopic,
  encodeAuditRecord,
  type AuditRecord,
} from '../governance/audit.js';
import { keyHash as auditKeyHash } from '../governance/key-hash.js';
import { policyForTable } from '../governance/policy.js';
import { policyVersion } from '../governance/version.js';
import { erasureMark, seesErasure, type ErasureMark } from '../versioning/erasure.js';
import {
  mergeVectors,
  validateRowVersion,
  vectorMax,
  type RowVersion,
} from '../versioning/version.js';
import type { ApplyEvent } from '../apply/apply-event.js';

/** One `col=value` of `--key`, the value as given (text; base64 for binary columns). */
export type ErasedKeyPart = KeyPart;

export interface EraseRequest {
  /** Every configured region, compiled; the first is where the erasure is made unless `origin` says. */
  readonly regions: readonly RuntimeOptions[];
  readonly origin: string;
  readonly schema: string;
  readonly table: string;
  readonly key: readonly ErasedKeyPart[];
  readonly timeoutMs: number;
  readonly kafkaOf: (options: RuntimeOptions) => Kafka;
  /** Progress, one line per step and region. */
  readonly onProgress: (line: string) => void;
  readonly pollMs?: number;
}

export interface EraseResult {
  /** The row's tombstone key (lowercase hex), what notices and tombstones name it by. */
  readonly keyHash: string;
  readonly version: RowVersion;
  /** Regions that confirmed, in configuration order (the origin first). */
  readonly confirmed: readonly string[];
  /** Regions that did not confirm within the timeout, each with why. */
  readonly unconfirmed: readonly { region: string; why: string }[];
}

/** The local view of one key: its row's version, or its tombstone's. */
interface KeyView {
  row: RowVersion | null;
  tombstone: RowVersion | null;
  erasure: ErasureMark | undefined;
}

function applierPool(options: RuntimeOptions): mysql.Pool {
  return mysql.createPool({
    ...clientOptions(options.mysql),
    connectionLimit: 1,
    multipleStatements: true,
  });
}

/** The key's version columns and tombstone in `options`' region, found by its tombstone key. */
async function readKey(
  connection: mysql.PoolConnection | mysql.Connection,
  options: RuntimeOptions,
  table: ApplyTable,
  keyHash: string,
): Promise<KeyView> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT ${versionColumnsSql('t')}
       FROM ${qualifiedName(table.schema, table.table)} AS t
      WHERE ${keyHashExpression(table, 't')} = X'${keyHash}'`,
  );
  const [tombs] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT CAST(ver AS CHAR) AS ver, CAST(pk AS CHAR) AS pk
       FROM ${qualifiedName(options.internalSchema, INTERNAL_TABLES.tombstones)}
      WHERE tbl = ? AND pk_hash = X'${keyHash}'`,
    [`${table.schema}.${table.table}`],
  );
  const tombstone = tombs[0] === undefined ? undefined : tombstoneOf(tombs[0]);
  return {
    row: rows[0] === undefined ? null : rowVersionOf(rows[0], options.region),
    tombstone: tombstone?.version ?? null,
    erasure: tombstone?.erasure,
  };
}

/** Whether a region's view of the key shows the erasure applied (or overtaken by a write that saw it). */
function confirms(view: KeyView, mark: ErasureMark): { ok: boolean; why: string } {
  if (view.row !== null)
    return seesErasure(view.row, mark)
      ? { ok: true, why: 'written again after the erasure' }
      : { ok: false, why: 'still holds a version of the row that has not seen the erasure' };
  if (view.tombstone !== null && seesErasure(view.tombstone, mark))
    return { ok: true, why: 'erased' };
  return { ok: false, why: 'has not applied the erasure yet' };
}

/** `--key` as the envelope encodes the key: the parts in key order, checked against the key columns. */
function keyImage(table: ApplyTable, parts: readonly ErasedKeyPart[]): RowImage {
  const values = keyValuesInOrder(`${table.schema}.${table.table}`, table.primaryKey, parts);
  return Object.fromEntries(table.primaryKey.map((column, i) => [column, values[i] ?? null]));
}

/**
 * The key's tombstone key: computed here when tombstone-key.ts reproduces
 * the trigger for these types, else read from the origin's row itself.
 */
async function keyHashOf(
  connection: mysql.PoolConnection,
  table: ApplyTable,
  pk: RowImage,
): Promise<string | undefined> {
  const columns = table.primaryKey.map(
    (name) => table.columns.find((c) => c.name === name) as ApplyTable['columns'][number],
  );
  const computed = tombstoneKeyHash(columns, pk);
  if (computed !== undefined) return computed;
  const where = columns
    .map((c) => {
      const value = pk[c.name] ?? null;
      const literal = mysql.escape(
        isBinaryDataType(c.dataType) && typeof value === 'string'
          ? Buffer.from(value, 'base64')
          : value,
      );
      return `t.${quoteId(c.name)} = ${literal}`;
    })
    .join(' AND ');
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT LOWER(HEX(${keyHashExpression(table, 't')})) AS h
       FROM ${qualifiedName(table.schema, table.table)} AS t WHERE ${where}`,
  );
  return rows[0]?.h as string | undefined;
}

/**
 * Erases the row and waits for every region to confirm.
 *
 * @throws ConfigError for a table or key that does not fit (exit 2).
 * @throws CdcError when the origin's database or Kafka cannot be used.
 */
export async function eraseRow(request: EraseRequest): Promise<EraseResult> {
  const { regions, origin, schema, table: tableName, onProgress } = request;
  const name = `${schema}.${tableName}`;
  const options = regions.find((r) => r.region === origin);
  if (options === undefined) throw new ConfigError([`--region: ${origin} is not configured`]);
  const pipeline = options.pipelines.find((p) =>
    p.tables.some((t) => tableMatches(t, schema, tableName)),
  );
  if (pipeline === undefined)
    throw new ConfigError([`--table: ${name} is not a table of any pipeline`]);

  const pool = applierPool(options);
  let keyHash: string;
  let version: RowVersion;
  let described: ApplyTable;
  try {
    let connection: mysql.PoolConnection;
    try {
      connection = await pool.getConnection();
      for (const statement of APPLIER_SESSION_STATEMENTS) await connection.query(statement);
    } catch (err) {
      throw mysqlError(options.mysql, `connect to erase ${name}`, err);
    }
    try {
      const found = await describeApplyTable(connection, schema, tableName, options.internalSchema);
      if (found === undefined)
        throw new ConfigError([`--table: ${name} does not exist in region ${origin}`]);
      described = found;
      const pk = keyImage(described, request.key);
      const hash = await keyHashOf(connection, described, pk);
      if (hash === undefined)
        throw new ConfigError([
          `--key: the tombstone key of ${name} (key ${described.primaryKey.map((c) => `${c} ${described.columns.find((i) => i.name === c)?.columnType ?? 'unknown'}`).join(', ')}) cannot be computed outside the server, and region ${origin} holds no such row to read it from; erase in a region that holds the row (--region)`,
        ]);
      keyHash = hash;
      // Above everything the origin knows of the key, so it is applied there first.
      const { strategy, name: strategyName } = strategyOf(pipeline);
      for (let attempt = 1; ; attempt += 1) {
        const view = await readKey(connection, options, described, keyHash);
        const known = [view.row, view.tombstone].filter((v): v is RowVersion => v !== null);
        const hlc = Math.max(
          Date.now() * 1000,
          ...known.map((v) => Math.max(v.hlc, vectorMax(v.vv)) + 1),
        );
        const vv = known.reduce((acc, v) => mergeVectors(acc, v.vv), { [origin]: hlc });
        version = validateRowVersion({ origin, hlc, vv: { ...vv, [origin]: hlc } });
        const event: ApplyEvent = {
          op: 'delete',
          sourceRegion: origin,
          db: schema,
          table: tableName,
          pk: {},
          after: null,
          image: null,
          version,
          commitTs: Date.now(),
          evict: { keyHash, regions: [origin], erase: true },
        };
        const result = await applyNoticeChunk(connection, [event], {
          region: origin,
          internalSchema: options.internalSchema,
          applierId: `${origin}/erase`,
          sourceRegion: origin,
          table: described,
          strategy,
          strategyName,
          recordConflict: () => false,
        });
        if ((result.outcomes.get('applied') ?? 0) > 0) break;
        // A local write slipped in between the read and the erasure: take a newer version.
        if (attempt >= 3)
          throw new CdcError(
            `${name}: the erasure could not be applied in ${origin}: local writes keep overtaking it`,
            { code: 'ERASE_RACED', retriable: false },
          );
      }
    } finally {
      connection.release();
    }
  } finally {
    await pool.end();
  }
  onProgress(
    `erased ${name} key ${keyHash} in ${origin} (origin), version ${origin}@${version.hlc}`,
  );

  const others = regions.filter((r) => r.region !== origin).map((r) => r.region);
  if (others.length > 0) {
    const notice: EvictionNotice = {
      v: ENVELOPE_VERSION,
      notice: 'erase',
      region: origin,
      db: schema,
      table: tableName,
      keyHash,
      regions: others,
      hlc: version.hlc,
      origin,
      vv: version.vv,
      gtid: null,
      commitTs: Date.now(),
    };
    const producer = request
      .kafkaOf(options)
      .producer({ idempotent: true, maxInFlightRequests: 1 });
    try {
      await producer.connect();
      await producer.sendBatch({
        acks: -1,
        topicMessages: [
          {
            topic: topicName(options.kafka.topicPrefix, origin, schema, tableName),
            messages: [{ key: noticeKey(schema, tableName, keyHash), value: encodeNotice(notice) }],
          },
          // A governed table's erasure is in its origin's audit trail, one record per region.
          ...erasureAuditMessages(options, described, request.key, version, [origin, ...others]),
        ],
      });
    } catch (err) {
      throw new CdcError(
        `${name}: erased in ${origin}, but the erasure notice could not be published (run erase again): ${(err as Error).message}`,
        { code: 'ERASE_PUBLISH_FAILED', retriable: false, cause: err },
      );
    } finally {
      await producer.disconnect().catch(() => undefined);
    }
    onProgress(`published the erasure to ${others.join(', ')}`);
  }

  const mark = erasureMark(version);
  const confirmed = [origin];
  const pending = new Map(others.map((region) => [region, 'not asked yet']));
  const deadline = Date.now() + request.timeoutMs;
  const connections = new Map<string, mysql.Connection>();
  const startedMs = Date.now();
  try {
    while (pending.size > 0) {
      for (const region of [...pending.keys()]) {
        const target = regions.find((r) => r.region === region) as RuntimeOptions;
        try {
          let connection = connections.get(region);
          if (connection === undefined) {
            connection = await mysql.createConnection(clientOptions(target.mysql));
            connections.set(region, connection);
          }
          const found = await describeApplyTable(
            connection,
            schema,
            tableName,
            target.internalSchema,
          );
          if (found === undefined) {
            pending.set(region, `${name} does not exist there`);
            continue;
          }
          const verdict = confirms(await readKey(connection, target, found, keyHash), mark);
          if (verdict.ok) {
            pending.delete(region);
            confirmed.push(region);
            onProgress(
              `confirmed in ${region} (${verdict.why}) after ${((Date.now() - startedMs) / 1000).toFixed(1)} s`,
            );
          } else pending.set(region, verdict.why);
        } catch (err) {
          connections.get(region)?.destroy();
          connections.delete(region);
          pending.set(
            region,
            `cannot read ${describeMysql(target.mysql)}: ${(err as Error).message}`,
          );
        }
      }
      if (pending.size === 0 || Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, request.pollMs ?? 500));
    }
  } finally {
    await Promise.all([...connections.values()].map((c) => c.end().catch(() => undefined)));
  }
  return {
    keyHash,
    version,
    confirmed: regions.map((r) => r.region).filter((r) => confirmed.includes(r)),
    unconfirmed: [...pending].map(([region, why]) => ({ region, why })),
  };
}

/**
 * The audit records of an erasure of a governed table (decision `erased`,
 * one per region, on the origin's audit topic; docs/GOVERNANCE.md "Audit
 * trail"), as a batch for the notice's send. None for an ungoverned table.
 */
function erasureAuditMessages(
  options: RuntimeOptions,
  table: ApplyTable,
  key: readonly ErasedKeyPart[],
  version: RowVersion,
  targets: readonly string[],
): { topic: string; messages: { key: string; value: Buffer }[] }[] {
  const governance = options.governance;
  const policy =
    governance === undefined ? undefined : policyForTable(governance, table.schema, table.table);
  if (policy === undefined || governance === undefined) return [];
  const keyColumns = table.primaryKey.map((name) => {
    const column = table.columns.find((c) => c.name === name);
    return { name, dataType: column?.dataType ?? '', columnType: column?.columnType ?? '' };
  });
  const hash = auditKeyHash(
    policy,
    keyColumns,
    keyColumns.map((c) => key.find((p) => p.column === c.name)?.value ?? null),
  );
  const time = new Date().toISOString();
  const records: AuditRecord[] = targets.map((target) => ({
    v: AUDIT_RECORD_VERSION,
    time,
    source: options.region,
    target,
    decision: 'erased',
    db: table.schema,
    table: table.table,
    op: 'd',
    keyHash: hash,
    version: { hlc: version.hlc, origin: version.origin },
    gtid: null,
    policy: policy.name,
    policyVersion: policyVersion(policy, governance.zones),
  }));
  return [
    {
      topic: auditTopic(options.kafka.topicPrefix, options.region),
      messages: records.map((r) => ({ key: auditMessageKey(r), value: encodeAuditRecord(r) })),
    },
  ];
}
