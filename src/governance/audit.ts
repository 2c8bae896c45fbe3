/**
 * The audit trail of governed rows (issue 16, docs/GOVERNANCE.md, "Audit
 * trail"): one record per governed row change and audience (target region)
 * that says what crossed which border, in which form, under which policy,
 * and never a value: the row is named by its key hash (key-hash.ts).
 *
 * Pure: capture builds the records of a change with these functions and
 * publishes them right behind the change's copies in its origin's audit
 * topic, `<prefix>._audit.<region>`; `cdc-replicator audit` reads them back.
 */
import { GovernanceError, type GovernancePolicy, type RowValues, type Zones } from './policy.js';
import { keyHash } from './key-hash.js';
import { columnTypeInfo, type ColumnTypes } from './routing.js';
import { readersOf, type TopicAudience } from './topics.js';
import { policyVersion } from './version.js';

/** Version of the record's JSON shape (`v`). */
export const AUDIT_RECORD_VERSION = 1;

/**
 * What happened to one row change for one target:
 * - `sent`: published plain on a topic the target reads;
 * - `sent_masked`: published masked on the target's masked topic;
 * - `notice`: the target may not hold this version; an eviction notice told it;
 * - `withheld`: no region may hold the row, it was published nowhere (target `*`);
 * - `refused`: capture could not route the change, it went to the origin's
 *   capture dead letters (target `*`);
 * - `erased`: `cdc-replicator erase` erased the row there (the origin) or
 *   sent the target its erasure notice (src/erase/erase.ts).
 */
export type AuditDecision = 'sent' | 'sent_masked' | 'notice' | 'withheld' | 'refused' | 'erased';

export const AUDIT_DECISIONS: readonly AuditDecision[] = [
  'sent',
  'sent_masked',
  'notice',
  'withheld',
  'refused',
  'erased',
];

/** The target of a record that concerns no single region (`withheld`, `refused`). */
export const NO_TARGET = '*';

/** One audit record, as published (JSON). Holds no value of the row, nor its key. */
export interface AuditRecord {
  readonly v: typeof AUDIT_RECORD_VERSION;
  /** When capture decided, ISO 8601 UTC. */
  readonly time: string;
  /** The origin region (whose capture published the change). */
  readonly source: string;
  /** The region the decision is about, or `*`. */
  readonly target: string;
  readonly decision: AuditDecision;
  readonly db: string;
  readonly table: string;
  /** The change's op: `c`, `u`, `d` (or `r`). */
  readonly op: string;
  /** {@link keyHash} of the row's key. */
  readonly keyHash: string;
  /** The row version the change carries. */
  readonly version: { readonly hlc: number; readonly origin: string };
  /** The source transaction's GTID. */
  readonly gtid: string | null;
  /** The policy's name. */
  readonly policy: string;
  /** {@link policyVersion} of the policy the decision was made under. */
  readonly policyVersion: string;
}

/** `<prefix>._audit.<region>`: the audit records of the changes `region` originates. Never mirrored or granted to other regions. */
export function auditTopic(prefix: string, region: string): string {
  return `${prefix}._audit.${region}`;
}

/** The parts of a change event the audit reads (the envelope's ChangeEvent has them). */
export interface AuditedChange {
  readonly db: string;
  readonly table: string;
  readonly op: string;
  /** Primary-key columns in key order. */
  readonly pk: RowValues;
  readonly hlc: number;
  readonly origin: string;
  readonly gtid: string | null;
  /** COLUMN_TYPE of each column, as capture read them (the key hash needs the key's). */
  readonly types?: ColumnTypes | undefined;
}

/** What the records of one change depend on besides the change. */
export interface AuditContext {
  readonly policy: GovernancePolicy;
  readonly zones: Zones;
  /** Every configured region, in configuration order. */
  readonly regions: readonly string[];
  /** The region whose capture decides. */
  readonly sourceRegion: string;
  /** When the decision is made. */
  readonly time: Date;
}

/**
 * The key hash of a change's key: {@link keyHash} with the key columns'
 * types as capture read them. A key value its type's canonical text
 * refuses (a broken event, never seen from a binlog) is hashed as its text
 * instead, so the change keeps an audit record rather than stopping capture.
 */
export function changeKeyHash(
  policy: GovernancePolicy,
  pk: RowValues,
  types: ColumnTypes | undefined,
): string {
  const names = Object.keys(pk);
  const values = names.map((name) => pk[name] ?? null);
  try {
    return keyHash(
      policy,
      names.map((name) =>
        columnTypeInfo(
          name,
          types !== undefined && Object.hasOwn(types, name) ? (types[name] ?? '') : '',
        ),
      ),
      values,
    );
  } catch (err) {
    if (!(err instanceof GovernanceError)) throw err;
    return keyHash(
      policy,
      names.map((name) => columnTypeInfo(name, '')),
      values,
    );
  }
}

function record(
  context: AuditContext,
  change: AuditedChange,
  hash: string,
  version: string,
  target: string,
  decision: AuditDecision,
): AuditRecord {
  return {
    v: AUDIT_RECORD_VERSION,
    time: context.time.toISOString(),
    source: context.sourceRegion,
    target,
    decision,
    db: change.db,
    table: change.table,
    op: change.op,
    keyHash: hash,
    version: { hlc: change.hlc, origin: change.origin },
    gtid: change.gtid,
    policy: context.policy.name,
    policyVersion: version,
  };
}

/** What routing did with a change (routeChange's result, plus the notices sent). */
export interface RoutedOutcome {
  /** The copies published (`routeChange(...).copies`). */
  readonly copies: readonly {
    readonly audience: TopicAudience;
    readonly form: 'plain' | 'masked';
  }[];
  /** The regions an eviction notice of this version was sent to. */
  readonly notices?: readonly string[];
}

/**
 * The records of one routed change: for each copy, one per region reading
 * its topic (`readersOf`), the source excluded, `sent` on a plain topic and
 * `sent_masked` on a masked one; one `notice` per region an eviction notice
 * went to; and one `withheld` record (target `*`) when no copy was
 * published because no region may hold the row.
 */
export function auditRecordsForChange(
  context: AuditContext,
  change: AuditedChange,
  outcome: RoutedOutcome,
): AuditRecord[] {
  const hash = changeKeyHash(context.policy, change.pk, change.types);
  const version = policyVersion(context.policy, context.zones);
  const records: AuditRecord[] = [];
  for (const copy of outcome.copies) {
    const decision: AuditDecision = copy.form === 'masked' ? 'sent_masked' : 'sent';
    for (const target of readersOf(copy.audience, context.zones, context.regions)) {
      if (target === context.sourceRegion) continue;
      records.push(record(context, change, hash, version, target, decision));
    }
  }
  for (const target of outcome.notices ?? []) {
    if (target === context.sourceRegion) continue;
    records.push(record(context, change, hash, version, target, 'notice'));
  }
  // Routing always publishes a row some region may hold (at least its zone's topic).
  if (outcome.copies.length === 0)
    records.push(record(context, change, hash, version, NO_TARGET, 'withheld'));
  return records;
}

/** The record of a change capture could not route (published nowhere, parked in its dead letters). */
export function refusedAuditRecord(context: AuditContext, change: AuditedChange): AuditRecord {
  return record(
    context,
    change,
    changeKeyHash(context.policy, change.pk, change.types),
    policyVersion(context.policy, context.zones),
    NO_TARGET,
    'refused',
  );
}

/** The Kafka key of a record: table and key hash, so one row's records keep their order in one partition. */
export function auditMessageKey(record: Pick<AuditRecord, 'db' | 'table' | 'keyHash'>): string {
  return `${record.db}.${record.table}#${record.keyHash}`;
}

/**
 * One record as JSON: the value of a one-record message (what capture wrote
 * before audit batches, and what `cdc-replicator erase` still writes), and
 * the element of an audit batch ({@link encodeAuditBatches}).
 */
export function encodeAuditRecord(record: AuditRecord): Buffer {
  return Buffer.from(JSON.stringify(record));
}

/** Version of the batch's JSON shape (its `v`; each record inside keeps its own `v`). */
export const AUDIT_BATCH_VERSION = 1;

const BATCH_HEAD = Buffer.from(`{"v":${AUDIT_BATCH_VERSION},"audit":[`);
const COMMA = Buffer.from(',');
const BATCH_TAIL = Buffer.from(']}');

/**
 * Joins encoded records ({@link encodeAuditRecord}) into audit batch
 * messages, in order: `{"v":1,"audit":[<record>,<record>,...]}`, each
 * record byte for byte as {@link encodeAuditRecord} wrote it. A message
 * holds records while its records stay within `maxBytes` (a single larger
 * record goes alone); `records` is how many of the input each message holds.
 * Capture joins the records bound for one partition of its audit topic, so
 * a batch holds records of many rows, each row's records in their order.
 */
export function encodeAuditBatches(
  records: readonly Buffer[],
  maxBytes: number,
): { value: Buffer; records: number }[] {
  const out: { value: Buffer; records: number }[] = [];
  let start = 0;
  while (start < records.length) {
    let bytes = 0;
    let end = start;
    for (; end < records.length; end += 1) {
      const size = (records[end] as Buffer).length + 1;
      if (end > start && bytes + size > maxBytes) break;
      bytes += size;
    }
    const parts: Buffer[] = [BATCH_HEAD];
    for (let i = start; i < end; i += 1) {
      if (i > start) parts.push(COMMA);
      parts.push(records[i] as Buffer);
    }
    parts.push(BATCH_TAIL);
    out.push({ value: Buffer.concat(parts), records: end - start });
    start = end;
  }
  return out;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why a parsed value is not an audit record this version reads (field names only, never a value), or undefined. */
function recordProblem(r: unknown): string | undefined {
  if (!isObject(r)) return 'not a JSON object';
  if (r.v !== AUDIT_RECORD_VERSION)
    return typeof r.v === 'number'
      ? `record version ${r.v}, this version reads ${AUDIT_RECORD_VERSION}`
      : 'no record version (v)';
  for (const field of ['time', 'source', 'target', 'db', 'table', 'op', 'keyHash', 'policy'])
    if (!isString(r[field])) return `${field} is not a string`;
  if (!AUDIT_DECISIONS.includes(r.decision as AuditDecision))
    return `decision is not one of ${AUDIT_DECISIONS.join(', ')}`;
  const version = r.version;
  if (!isObject(version) || typeof version.hlc !== 'number' || !isString(version.origin))
    return 'version is not {hlc, origin}';
  if (!(r.gtid === null || isString(r.gtid))) return 'gtid is neither a string nor null';
  if (!isString(r.policyVersion)) return 'policyVersion is not a string';
  return undefined;
}

/** A record read back, or undefined when the text is not one (another shape, or a newer `v`). */
export function decodeAuditRecord(text: string): AuditRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  return recordProblem(parsed) === undefined ? (parsed as AuditRecord) : undefined;
}

/**
 * What one message of an audit topic holds: its records, or why it cannot
 * be read (`problem`, naming fields and positions, never a value).
 */
export type DecodedAuditMessage =
  | { readonly records: AuditRecord[]; readonly problem?: undefined }
  | { readonly problem: string; readonly records?: undefined };

/**
 * Reads one message of an audit topic, whichever writer wrote it: a batch
 * `{"v":1,"audit":[...]}` (capture since audit batches) or a single record
 * (capture before them, and `cdc-replicator erase`). The value is untrusted
 * input: anything else, including a batch with one bad record, gives a
 * `problem` and no record, so a reader reports the message rather than
 * passing over part of it; nothing here throws.
 */
export function decodeAuditMessage(value: Buffer | string | null): DecodedAuditMessage {
  if (value === null) return { problem: 'no value (a tombstone)' };
  const text = typeof value === 'string' ? value : value.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message quotes the text: left out (untrusted, and may be anything).
    return { problem: `not JSON (${text.length === 0 ? 'empty' : `${text.length} characters`})` };
  }
  if (!isObject(parsed)) return { problem: 'not a JSON object' };
  if (!Object.hasOwn(parsed, 'audit')) {
    const problem = recordProblem(parsed);
    return problem === undefined
      ? { records: [parsed as unknown as AuditRecord] }
      : { problem: `not an audit record: ${problem}` };
  }
  if (parsed.v !== AUDIT_BATCH_VERSION)
    return {
      problem:
        typeof parsed.v === 'number'
          ? `audit batch version ${parsed.v}, this version reads ${AUDIT_BATCH_VERSION}`
          : 'audit batch without a version (v)',
    };
  const list = parsed.audit;
  if (!Array.isArray(list)) return { problem: 'audit batch whose "audit" is not a list' };
  if (list.length === 0) return { problem: 'audit batch without records' };
  for (let i = 0; i < list.length; i += 1) {
    const problem = recordProblem(list[i]);
    if (problem !== undefined)
      return { problem: `audit batch record ${i + 1} of ${list.length}: ${problem}` };
  }
  return { records: list as AuditRecord[] };
}

/**
 * What identifies a record across re-sends: capture publishes at least
 * once, so a replay after a crash writes the same decision again with
 * another `time`. Records with the same GTID, table, key hash, target,
 * decision and version are the same record.
 */
export function auditRecordId(record: AuditRecord): string {
  return JSON.stringify([
    record.gtid,
    record.db,
    record.table,
    record.keyHash,
    record.target,
    record.decision,
    record.version.hlc,
    record.version.origin,
  ]);
}

/** The records without re-sends: the first of each {@link auditRecordId}, in the given order. */
export function dedupeAuditRecords(records: readonly AuditRecord[]): AuditRecord[] {
  const seen = new Set<string>();
  return records.filter((r) => {
    const id = auditRecordId(r);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * One line of `cdc-replicator audit`: time, source → target, decision,
 * table, op, key hash, version, GTID and policy with its version. No value.
 */
export function formatAuditRecord(record: AuditRecord): string {
  return [
    record.time,
    `${record.source} -> ${record.target}`,
    record.decision,
    `${record.db}.${record.table}`,
    `op ${record.op}`,
    `key ${record.keyHash}`,
    `version ${record.version.origin}@${record.version.hlc}`,
    `gtid ${record.gtid ?? 'none'}`,
    `policy ${record.policy}@${record.policyVersion}`,
  ].join('  ');
}
