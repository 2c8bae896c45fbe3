import type mysql from 'mysql2/promise';
import type { ChangeEvent } from '../../src/bus/envelope.js';
import { qualifiedName } from '../../src/mysql/identifiers.js';
import type { ReadMessage } from './kafka.js';
import { randomInt } from './random.js';

/**
 * A random stream of inserts, updates (a few hot keys again and again, so
 * per-key order matters), deletes and re-inserts of deleted keys, in small
 * transactions. Every write stamps the row with a globally unique change
 * number `chg`, so each committed change has an identity a reader can find in
 * Kafka: `<chg>` for an insert or update (the after-image's chg) and
 * `d<chg>` for a delete (the before-image's chg). The writer records what
 * MySQL acknowledged as committed, per key, in commit order.
 */
export class ChangeWorkload {
  /** Per key, the identities of its committed changes in commit order. */
  readonly committed = new Map<number, string[]>();
  /** Identity → op (c/u/d) of every committed change. */
  readonly ops = new Map<string, 'c' | 'u' | 'd'>();
  /** Number of committed changes. */
  changes = 0;
  transactions = 0;
  /** Largest number of changes in one transaction so far. */
  largestTransaction = 0;

  readonly #table: string;
  /** key → current chg of existing rows. */
  readonly #rows = new Map<number, number>();
  readonly #existing: number[] = [];
  readonly #existingIndex = new Map<number, number>();
  readonly #deleted: number[] = [];
  #nextId = 1;
  #nextChg = 1;

  constructor(
    readonly schema: string,
    readonly table: string,
    private readonly random: () => number,
    private readonly options: {
      /** Keys 1..hotKeys take most of the updates. */
      hotKeys?: number;
      maxTransactionChanges?: number;
      payloadBytes?: number;
    } = {},
  ) {
    this.#table = qualifiedName(schema, table);
  }

  /** The table the workload writes: key, change number, payload. */
  ddl(): string {
    return `CREATE TABLE ${this.#table} (id INT NOT NULL PRIMARY KEY, chg INT NOT NULL, payload VARCHAR(${Math.max(this.#payloadBytes, 1)}) NOT NULL)`;
  }

  get #payloadBytes(): number {
    return this.options.payloadBytes ?? 80;
  }

  /** Final state per the writer: key → chg of every row that exists. */
  get rows(): ReadonlyMap<number, number> {
    return this.#rows;
  }

  /**
   * Commits transactions of 1..maxTransactionChanges changes until `changes`
   * more changes are committed. `onCommit` runs after each commit (tests use
   * it to inject faults at chosen points); `connection` needs
   * `multipleStatements` so a transaction is one round trip.
   */
  async run(
    connection: mysql.Connection,
    changes: number,
    onCommit?: (workload: ChangeWorkload) => Promise<void> | void,
  ): Promise<void> {
    const target = this.changes + changes;
    const maxSize = this.options.maxTransactionChanges ?? 5;
    while (this.changes < target) {
      const size = Math.min(randomInt(this.random, 1, maxSize), target - this.changes);
      // The model moves on as changes are planned; a failed commit fails the
      // test, so it never has to be rolled back.
      const plan = this.#plan(size);
      await connection.query(`START TRANSACTION; ${plan.map((p) => p.sql).join('; ')}; COMMIT`);
      for (const change of plan) {
        let list = this.committed.get(change.id);
        if (list === undefined) this.committed.set(change.id, (list = []));
        list.push(change.identity);
        this.ops.set(change.identity, change.op);
      }
      this.changes += size;
      this.transactions += 1;
      this.largestTransaction = Math.max(this.largestTransaction, size);
      await onCommit?.(this);
    }
  }

  /** Picks `size` operations; a later one in the transaction sees the earlier ones. */
  #plan(size: number): { sql: string; id: number; identity: string; op: 'c' | 'u' | 'd' }[] {
    const hot = this.options.hotKeys ?? 16;
    const out: { sql: string; id: number; identity: string; op: 'c' | 'u' | 'd' }[] = [];
    for (let i = 0; i < size; i += 1) {
      const r = this.random();
      const chg = this.#nextChg++;
      const payload = this.#payload(chg);
      if (this.#existing.length < hot * 2 || r < 0.2) {
        const reinsert = this.#deleted.length > 0 && this.random() < 0.3;
        const id = reinsert ? this.#takeDeleted() : this.#nextId++;
        this.#add(id, chg);
        out.push({
          sql: `INSERT INTO ${this.#table} (id, chg, payload) VALUES (${id}, ${chg}, '${payload}')`,
          id,
          identity: String(chg),
          op: 'c',
        });
      } else if (r < 0.88) {
        const hotExisting = this.random() < 0.7 ? randomInt(this.random, 1, hot) : undefined;
        const id =
          hotExisting !== undefined && this.#rows.has(hotExisting)
            ? hotExisting
            : (this.#existing[randomInt(this.random, 0, this.#existing.length - 1)] as number);
        this.#rows.set(id, chg);
        out.push({
          sql: `UPDATE ${this.#table} SET chg = ${chg}, payload = '${payload}' WHERE id = ${id}`,
          id,
          identity: String(chg),
          op: 'u',
        });
      } else {
        // chg numbers are consumed by deletes too, which keeps them simple to reason about.
        const id = this.#existing[randomInt(this.random, 0, this.#existing.length - 1)] as number;
        const before = this.#rows.get(id) as number;
        this.#remove(id);
        out.push({
          sql: `DELETE FROM ${this.#table} WHERE id = ${id}`,
          id,
          identity: `d${before}`,
          op: 'd',
        });
      }
    }
    return out;
  }

  #payload(chg: number): string {
    const head = `p${chg}-`;
    return head + 'x'.repeat(Math.max(0, this.#payloadBytes - head.length));
  }

  #add(id: number, chg: number): void {
    this.#rows.set(id, chg);
    this.#existingIndex.set(id, this.#existing.length);
    this.#existing.push(id);
  }

  #remove(id: number): void {
    this.#rows.delete(id);
    const index = this.#existingIndex.get(id) as number;
    const last = this.#existing.pop() as number;
    if (last !== id) {
      this.#existing[index] = last;
      this.#existingIndex.set(last, index);
    }
    this.#existingIndex.delete(id);
    this.#deleted.push(id);
  }

  #takeDeleted(): number {
    const index = randomInt(this.random, 0, this.#deleted.length - 1);
    const id = this.#deleted[index] as number;
    this.#deleted[index] = this.#deleted[this.#deleted.length - 1] as number;
    this.#deleted.pop();
    return id;
  }
}

/** What a topic holds compared with what the workload committed. */
export interface StreamReport {
  messages: number;
  /** Distinct committed changes found. */
  distinct: number;
  /** Messages that repeat a change already seen (at-least-once replays). */
  duplicates: number;
  /** Committed changes not found in Kafka (must be empty). */
  missing: string[];
  /** Everything else that is wrong, one line each (must be empty). */
  problems: string[];
}

/** The identity of a change event, as {@link ChangeWorkload} names committed changes. */
function identityOf(event: ChangeEvent): string {
  if (event.op === 'd') return `d${String(event.before?.chg)}`;
  return String(event.after?.chg);
}

/**
 * Checks a topic's messages (each partition in offset order) against the
 * workload and the table's final content:
 * - every committed change appears at least once, and nothing else does;
 * - per key, all messages sit in one partition, and the changes in order of
 *   first appearance are exactly the committed ones in commit order, with
 *   strictly increasing versions (a replay repeats a suffix; it never
 *   reorders);
 * - per key, the last message is the row's final state in the database (its
 *   current chg, or its delete when the row is gone).
 */
export function verifyChangeStream(
  messages: readonly ReadMessage[],
  workload: ChangeWorkload,
  finalRows: ReadonlyMap<number, number>,
): StreamReport {
  const problems: string[] = [];
  const byKey = new Map<number, { partition: number; events: ChangeEvent[] }>();
  for (const message of messages) {
    const event = JSON.parse(message.value) as ChangeEvent;
    const id = Number(event.pk.id);
    let entry = byKey.get(id);
    if (entry === undefined) byKey.set(id, (entry = { partition: message.partition, events: [] }));
    if (entry.partition !== message.partition)
      problems.push(`key ${id} in partitions ${entry.partition} and ${message.partition}`);
    entry.events.push(event);
  }

  const seen = new Set<string>();
  let duplicates = 0;
  for (const [id, { events }] of byKey) {
    const firsts: ChangeEvent[] = [];
    const seenHere = new Set<string>();
    for (const event of events) {
      const identity = identityOf(event);
      if (seenHere.has(identity)) {
        duplicates += 1;
        continue;
      }
      seenHere.add(identity);
      seen.add(identity);
      firsts.push(event);
      const op = workload.ops.get(identity);
      if (op === undefined) problems.push(`key ${id}: change ${identity} was never committed`);
      else if (op !== event.op)
        problems.push(`key ${id}: change ${identity} has op ${event.op}, committed as ${op}`);
    }
    // Missing and unknown changes are reported on their own; this is about order.
    const order = firsts.map(identityOf).filter((identity) => workload.ops.has(identity));
    const expected = (workload.committed.get(id) ?? []).filter((identity) =>
      seenHere.has(identity),
    );
    const firstDifference = order.findIndex((identity, i) => identity !== expected[i]);
    if (firstDifference >= 0)
      problems.push(
        `key ${id}: changes out of commit order from position ${firstDifference}: ` +
          `Kafka ${order.slice(firstDifference, firstDifference + 8).join(' ')} vs committed ` +
          `${expected.slice(firstDifference, firstDifference + 8).join(' ')}`,
      );
    for (let i = 1; i < firsts.length; i += 1) {
      const previous = firsts[i - 1] as ChangeEvent;
      const current = firsts[i] as ChangeEvent;
      if (!(current.hlc > previous.hlc))
        problems.push(
          `key ${id}: version did not increase from change ${identityOf(previous)} (hlc ${previous.hlc}) to ${identityOf(current)} (hlc ${current.hlc})`,
        );
    }
    const last = events[events.length - 1] as ChangeEvent;
    const finalChg = finalRows.get(id);
    if (finalChg === undefined) {
      if (last.op !== 'd')
        problems.push(`key ${id}: row is gone but the last message is ${identityOf(last)}`);
    } else if (last.op === 'd' || last.after?.chg !== finalChg) {
      problems.push(
        `key ${id}: row has chg ${finalChg} but the last message is ${identityOf(last)}`,
      );
    }
  }
  for (const id of finalRows.keys()) {
    if (!byKey.has(id)) problems.push(`key ${id}: row exists but no message has it`);
  }
  const missing: string[] = [];
  for (const [id, identities] of workload.committed) {
    for (const identity of identities) if (!seen.has(identity)) missing.push(`${id}:${identity}`);
  }
  return {
    messages: messages.length,
    distinct: seen.size,
    duplicates,
    missing,
    problems,
  };
}

/** The table's content: key → chg. */
export async function tableRows(
  connection: mysql.Connection,
  schema: string,
  table: string,
): Promise<Map<number, number>> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT id, chg FROM ${qualifiedName(schema, table)}`,
  );
  return new Map(rows.map((r) => [Number(r.id), Number(r.chg)]));
}
