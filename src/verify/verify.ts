import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka, Producer } from 'kafkajs';
import type mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../config/compile.js';
import { encodeRow } from '../capture/row-codec.js';
import { CdcError } from '../core/errors.js';
import { policyForTable } from '../governance/policy.js';
import type { Logger } from '../core/logger.js';
import { connectMysql, describeMysql, type MysqlConnection } from '../mysql/connection.js';
import { describeTable } from '../mysql/introspect.js';
import type { KeyValues } from '../snapshot/key-range.js';
import { Pacer } from '../snapshot/pacer.js';
import type { ProgressView } from '../snapshot/progress.js';
import {
  keyImage,
  readKeys,
  readRange,
  readTombstones,
  type TableShape,
} from '../snapshot/rows.js';
import { createChangeProducer } from '../bus/kafka.js';
import { estimateRows, selectTables } from '../snapshot/snapshot.js';
import { chunkChecksumSql, chunkEndSql, summariesEqual, type ChunkSummary } from './checksum.js';
import {
  assessKey,
  differingKeys,
  sameStates,
  type Candidate,
  type Divergence,
  type RegionState,
} from './diff.js';
import {
  assessGovernedKey,
  judgeKey,
  type GovernedDivergence,
  type GovernedTableContext,
} from './governed.js';
import {
  repairGovernedKey,
  type GovernedRepairOutcome,
  type GovernedRepairTarget,
} from './governed-repair.js';
import { repairDivergence, type RepairOutcome } from './repair.js';
import type { VerifySummary } from './report.js';
import type { RowVersion } from '../versioning/version.js';

/**
 * `verify`: compares regions while they keep taking writes.
 *
 * 1. Chunks of `chunkSize` keys (boundaries from the first region's primary
 *    key index) are summarised in every region by count and checksum.
 * 2. Where summaries differ, the chunk's rows are read from every region and
 *    compared, giving the keys that differ.
 * 3. Those keys are read again after `recheckDelayMs`, `rechecks` times: a
 *    difference that a change in flight explains disappears. A key is
 *    reported only if it still differs at the end, and a key still changing
 *    during the last recheck gets more rechecks (up to three times as many).
 *    The versions tell which region is behind (see {@link assessKey}).
 *
 * Tables under a governance policy (docs/GOVERNANCE.md, "Verify") skip the
 * checksum, which cannot apply residency or masks: each chunk's rows are
 * read from every region (paced alike) and judged in Node by `judgeKey`
 * (src/verify/governed.ts): each pair of regions only on what both may
 * hold, masked columns through their masks, and every row held where it
 * may not be (or in the wrong form) is a violation. Their results carry no
 * value and no key, only a hash of the key; `--repair` spreads the winner
 * through the governed publishing path (src/verify/governed-repair.ts).
 */

export interface VerifyRunOptions {
  /** The regions to compare; the first one's key index sets the chunk boundaries. */
  regions: readonly RuntimeOptions[];
  tables: readonly string[];
  chunkSize: number;
  chunksPerSecond: number;
  recheckDelayMs: number;
  rechecks: number;
  repair: boolean;
  kafkaOf: (options: RuntimeOptions) => Kafka;
  progress: ProgressView;
  logger: Logger;
  signal?: AbortSignal;
}

export interface VerifyResult {
  summary: VerifySummary;
  /** Divergent rows of tables without a policy. */
  divergences: Divergence[];
  /** Divergent rows and violations of governed tables (no values, no keys). */
  governed: GovernedDivergence[];
  repairs: RepairOutcome[];
  /** Repairs of governed keys: by key hash, without values. */
  governedRepairs: GovernedRepairOutcome[];
  interrupted: boolean;
}

interface TableWork {
  shape: TableShape;
  candidates: Map<string, Candidate>;
  governed: GovernedTableContext | undefined;
}

export async function runVerify(run: VerifyRunOptions): Promise<VerifyResult> {
  const started = Date.now();
  const { logger } = run;
  const reference = run.regions[0];
  if (reference === undefined || run.regions.length < 2) {
    throw new CdcError('verify needs at least two regions to compare', { code: 'VERIFY_REGIONS' });
  }
  const names = run.regions.map((r) => r.region);
  const connections = new Map<string, MysqlConnection>();
  const producers = new Map<string, Producer>();
  const summary: VerifySummary = {
    regions: names,
    tables: 0,
    chunks: 0,
    chunksDiffering: 0,
    rows: 0,
    resolvedOnRecheck: 0,
    divergent: 0,
    seconds: 0,
    governedTables: 0,
    violations: 0,
  };
  const result: VerifyResult = {
    summary,
    divergences: [],
    governed: [],
    repairs: [],
    governedRepairs: [],
    interrupted: false,
  };
  try {
    for (const options of run.regions)
      connections.set(options.region, await connectMysql(options.mysql));
    const refConnection = connections.get(reference.region) as MysqlConnection;
    const where = `region ${reference.region} (${describeMysql(reference.mysql)})`;
    const shapes = await selectTables(refConnection, reference, run.tables, where);
    for (const shape of shapes) await checkSameColumns(shape, run.regions, connections);
    summary.tables = shapes.length;
    const contexts = new Map(
      shapes.map((shape) => [shape.name, governedContext(reference, shape)] as const),
    );
    summary.governedTables = shapes.filter((s) => contexts.get(s.name) !== undefined).length;
    let governedTargets: GovernedRepairTarget[] = [];

    const pacer = new Pacer(run.chunksPerSecond);
    const work: TableWork[] = [];
    for (const shape of shapes) {
      if (run.signal?.aborted === true) break;
      run.progress.add(shape.name, shape.name, await estimateRows(refConnection, shape));
      const governed = contexts.get(shape.name);
      // Governed tables: each chunk's rows are read from every region and judged in
      // Node (judgeKey), since a checksum cannot apply residency or masks.
      const candidates = await scanTable(run, shape, connections, pacer, (after, atMost, found) =>
        governed === undefined
          ? compareRange(run, shape, connections, after, atMost, found, summary)
          : compareGovernedRange(run, shape, governed, connections, after, atMost, found, summary),
      );
      work.push({ shape, candidates, governed });
    }
    result.interrupted = run.signal?.aborted === true;
    const total = work.reduce((n, w) => n + w.candidates.size, 0);
    if (total > 0 && !result.interrupted) {
      logger.info({ keys: total }, 'rechecking rows that differed (changes may be in flight)');
      const found = await recheck(run, work, connections, summary);
      result.divergences = found.divergences;
      result.governed = found.governed.map((g) => g.divergence);
      governedTargets = found.governed;
    }
    summary.divergent =
      result.divergences.length + result.governed.filter((g) => g.pairsDiffer).length;
    summary.violations = result.governed.filter((g) => g.violations.length > 0).length;
    if (run.repair && (result.divergences.length > 0 || governedTargets.length > 0)) {
      const byRegion = new Map(run.regions.map((r) => [r.region, r]));
      const producerOf = async (region: string): Promise<Producer> => {
        let producer = producers.get(region);
        if (producer === undefined) {
          producer = createChangeProducer(run.kafkaOf(byRegion.get(region) as RuntimeOptions));
          await producer.connect();
          producers.set(region, producer);
        }
        return producer;
      };
      const shapeOf = new Map(shapes.map((s) => [s.name, s]));
      for (const d of result.divergences) {
        result.repairs.push(
          await repairDivergence(
            d,
            shapeOf.get(d.table) as TableShape,
            byRegion,
            connections,
            producerOf,
          ),
        );
      }
      for (const target of governedTargets) {
        const table = target.divergence.table;
        result.governedRepairs.push(
          await repairGovernedKey(
            target,
            shapeOf.get(table) as TableShape,
            contexts.get(table) as GovernedTableContext,
            byRegion,
            connections,
            producerOf,
            logger,
          ),
        );
      }
    }
  } finally {
    await Promise.allSettled([...producers.values()].map((p) => p.disconnect()));
    await Promise.allSettled([...connections.values()].map((c) => c.end()));
  }
  summary.seconds = (Date.now() - started) / 1000;
  return result;
}

/**
 * Every region's table must have the reference's data columns, or rows
 * cannot be compared. A column that is JSON in some regions and not in
 * others (MySQL's JSON type next to MariaDB's, which is LONGTEXT holding the
 * text as given) is compared as a JSON value: the two servers keep the same
 * document as different text. The servers' chunk checksums then differ for
 * every chunk with such values, so those chunks are compared row by row.
 */
async function checkSameColumns(
  shape: TableShape,
  regions: readonly RuntimeOptions[],
  connections: ReadonlyMap<string, MysqlConnection>,
): Promise<void> {
  const wanted = shape.dataColumns.map((c) => c.name);
  const types = new Map(shape.dataColumns.map((c) => [c.name, new Set([c.dataType])]));
  for (const options of regions.slice(1)) {
    const info = await describeTable(
      connections.get(options.region) as MysqlConnection,
      shape.schema,
      shape.table,
    );
    if (info === undefined) {
      throw new CdcError(`region ${options.region}: table ${shape.name} does not exist`, {
        code: 'TABLE_MISSING',
      });
    }
    const have = new Set(info.columns.map((c) => c.name));
    for (const c of info.columns) types.get(c.name)?.add(c.dataType);
    const missing = wanted.filter((c) => !have.has(c));
    const keyMismatch = info.primaryKey.join(',') !== shape.keyColumns.map((c) => c.name).join(',');
    if (missing.length > 0 || keyMismatch) {
      throw new CdcError(
        `region ${options.region}: table ${shape.name} differs in shape from region ${regions[0]?.region ?? '?'}` +
          (missing.length > 0 ? ` (missing column(s) ${missing.join(', ')})` : '') +
          (keyMismatch ? ` (primary key (${info.primaryKey.join(', ')}))` : ''),
        { code: 'VERIFY_SCHEMA_MISMATCH' },
      );
    }
  }
  const json = [...types].filter(([, t]) => t.has('json') && t.size > 1).map(([name]) => name);
  if (json.length > 0) shape.jsonValueColumns = new Set(json);
}

async function summarise(
  connection: MysqlConnection,
  shape: TableShape,
  after: KeyValues | null,
  atMost: KeyValues | null,
): Promise<ChunkSummary> {
  const { sql, params } = chunkChecksumSql(shape, after, atMost);
  const [rows] = await connection.query<mysql.RowDataPacket[]>(sql, params);
  const row = rows[0];
  return { n: Number(row?.n ?? 0), sum: `${String(row?.x1)}:${String(row?.x2)}` };
}

async function chunkEnd(
  connection: MysqlConnection,
  shape: TableShape,
  after: KeyValues | null,
  chunkSize: number,
  atMost: KeyValues | null = null,
): Promise<KeyValues | null> {
  const { sql, params } = chunkEndSql(shape, after, chunkSize, atMost);
  const [rows] = await connection.query<mysql.RowDataPacket[]>(sql, params);
  const row = rows[0];
  if (row === undefined) return null;
  const image = encodeRow(row, new Set());
  return shape.keyColumns.map((c) => image[c.name] ?? null);
}

/**
 * Pass 1 and 2 over one table, chunk by chunk along the first region's keys,
 * paced: the keys that differ at first sight. `compare` checks one chunk
 * `(after, atMost]`, adds what differs to `found` and returns the first
 * region's row count there.
 */
async function scanTable(
  run: VerifyRunOptions,
  shape: TableShape,
  connections: ReadonlyMap<string, MysqlConnection>,
  pacer: Pacer,
  compare: (
    after: KeyValues | null,
    atMost: KeyValues | null,
    found: Map<string, Candidate>,
  ) => Promise<number>,
): Promise<Map<string, Candidate>> {
  const reference = connections.get(run.regions[0]?.region ?? '') as MysqlConnection;
  const candidates = new Map<string, Candidate>();
  let after: KeyValues | null = null;
  let rows = 0;
  for (;;) {
    if (run.signal?.aborted === true) return candidates;
    await pacer.take();
    const atMost = await chunkEnd(reference, shape, after, run.chunkSize);
    rows += await compare(after, atMost, candidates);
    run.progress.update(shape.name, rows);
    if (atMost === null) break;
    after = atMost;
  }
  run.progress.finish(shape.name, rows);
  return candidates;
}

/**
 * Compares `(after, atMost]` in every region and adds the keys that differ.
 * Returns the first region's row count. A differing range holding more than
 * one chunk of rows in some region (the first region lacks many rows, or the
 * open-ended last chunk) is split along that region's keys first, so no read
 * ever holds more than a chunk of rows per region.
 */
async function compareRange(
  run: VerifyRunOptions,
  shape: TableShape,
  connections: ReadonlyMap<string, MysqlConnection>,
  after: KeyValues | null,
  atMost: KeyValues | null,
  candidates: Map<string, Candidate>,
  summary: VerifySummary,
): Promise<number> {
  const connectionOf = (region: string): MysqlConnection =>
    connections.get(region) as MysqlConnection;
  const sums = await Promise.all(
    run.regions.map((r) => summarise(connectionOf(r.region), shape, after, atMost)),
  );
  summary.chunks += 1;
  const referenceRows = sums[0]?.n ?? 0;
  summary.rows += referenceRows;
  if (summariesEqual(sums)) return referenceRows;
  summary.chunksDiffering += 1;
  let largest = 0;
  sums.forEach((s, i) => {
    if (s.n > (sums[largest]?.n ?? 0)) largest = i;
  });
  if ((sums[largest]?.n ?? 0) > run.chunkSize) {
    const source = connectionOf(run.regions[largest]?.region ?? '');
    summary.rows -= referenceRows; // counted again by the sub-ranges
    summary.chunks -= 1;
    let lo = after;
    let total = 0;
    for (;;) {
      const hi = (await chunkEnd(source, shape, lo, run.chunkSize, atMost)) ?? atMost;
      total += await compareRange(run, shape, connections, lo, hi, candidates, summary);
      if (hi === atMost) return total;
      lo = hi;
    }
  }
  const chunkRows = new Map(
    await Promise.all(
      run.regions.map(
        async (r) =>
          [
            r.region,
            await readRange(connectionOf(r.region), shape, r.region, after, atMost),
          ] as const,
      ),
    ),
  );
  for (const candidate of differingKeys(chunkRows)) candidates.set(candidate.id, candidate);
  return referenceRows;
}

/** The policy and types a governed table is judged with; undefined for an ungoverned table. */
function governedContext(
  options: RuntimeOptions,
  shape: TableShape,
): GovernedTableContext | undefined {
  const governance = options.governance;
  if (governance === undefined) return undefined;
  const policy = policyForTable(governance, shape.schema, shape.table);
  if (policy === undefined) return undefined;
  return {
    table: shape.name,
    policy,
    zones: governance.zones,
    regions: governance.regions,
    columns: new Map(shape.dataColumns.map((c) => [c.name, c])),
    keyColumns: shape.keyColumns,
  };
}

/**
 * Reads `(after, atMost]` in every region (at most a chunk and one row
 * each) and adds the keys {@link judgeKey} finds wrong. A region holding
 * more than a chunk there splits the range along its keys first, as
 * {@link compareRange} does. Returns the first region's row count.
 */
async function compareGovernedRange(
  run: VerifyRunOptions,
  shape: TableShape,
  context: GovernedTableContext,
  connections: ReadonlyMap<string, MysqlConnection>,
  after: KeyValues | null,
  atMost: KeyValues | null,
  candidates: Map<string, Candidate>,
  summary: VerifySummary,
): Promise<number> {
  const connectionOf = (region: string): MysqlConnection =>
    connections.get(region) as MysqlConnection;
  const read = await Promise.all(
    run.regions.map((r) =>
      readRange(connectionOf(r.region), shape, r.region, after, atMost, run.chunkSize + 1),
    ),
  );
  let largest = 0;
  read.forEach((rows, i) => {
    if (rows.length > (read[largest]?.length ?? 0)) largest = i;
  });
  if ((read[largest]?.length ?? 0) > run.chunkSize) {
    const source = connectionOf(run.regions[largest]?.region ?? '');
    let lo = after;
    let total = 0;
    for (;;) {
      const hi = (await chunkEnd(source, shape, lo, run.chunkSize, atMost)) ?? atMost;
      total += await compareGovernedRange(
        run,
        shape,
        context,
        connections,
        lo,
        hi,
        candidates,
        summary,
      );
      if (hi === atMost) return total;
      lo = hi;
    }
  }
  summary.chunks += 1;
  const referenceRows = read[0]?.length ?? 0;
  summary.rows += referenceRows;
  const byKey = new Map<string, { key: KeyValues; states: RegionState[] }>();
  run.regions.forEach((options, index) => {
    for (const row of read[index] ?? []) {
      let entry = byKey.get(row.id);
      if (entry === undefined) {
        entry = {
          key: row.key,
          states: run.regions.map((r) => ({ region: r.region, image: null, version: null })),
        };
        byKey.set(row.id, entry);
      }
      entry.states[index] = {
        region: options.region,
        image: row.image,
        version: row.version,
        ...(row.versionError === undefined ? {} : { versionError: row.versionError }),
      };
    }
  });
  let differed = false;
  for (const [id, { key, states }] of byKey) {
    if (judgeKey(context, states) === null) continue;
    candidates.set(id, { id, key });
    differed = true;
  }
  if (differed) summary.chunksDiffering += 1;
  return referenceRows;
}

/** Reads the keys' current state in every region. */
async function readStates(
  run: VerifyRunOptions,
  shape: TableShape,
  keys: readonly Candidate[],
  connections: ReadonlyMap<string, MysqlConnection>,
): Promise<Map<string, RegionState[]>> {
  const perRegion = await Promise.all(
    run.regions.map(async (options) => {
      const connection = connections.get(options.region) as MysqlConnection;
      const rows = await readKeys(
        connection,
        shape,
        options.region,
        keys.map((k) => k.key),
      );
      const absent = keys.filter((k) => !rows.has(k.id)).map((k) => k.key);
      const tombstones: Map<string, RowVersion> =
        absent.length === 0
          ? new Map<string, RowVersion>()
          : await readTombstones(connection, shape, options.internalSchema, absent);
      return { region: options.region, rows, tombstones };
    }),
  );
  const states = new Map<string, RegionState[]>();
  for (const key of keys) {
    states.set(
      key.id,
      perRegion.map(({ region, rows, tombstones }) => {
        const row = rows.get(key.id);
        if (row !== undefined) {
          return {
            region,
            image: row.image,
            version: row.version,
            ...(row.versionError === undefined ? {} : { versionError: row.versionError }),
          };
        }
        return { region, image: null, version: tombstones.get(key.id) ?? null };
      }),
    );
  }
  return states;
}

/** Pass 3: rechecks the candidates until they match or have stayed different long enough. */
async function recheck(
  run: VerifyRunOptions,
  work: readonly TableWork[],
  connections: ReadonlyMap<string, MysqlConnection>,
  summary: VerifySummary,
): Promise<{ divergences: Divergence[]; governed: GovernedRepairTarget[] }> {
  const pending = new Map<string, { table: TableWork; key: Candidate; last?: RegionState[] }>();
  for (const table of work)
    for (const key of table.candidates.values())
      pending.set(`${table.shape.name}\u0000${key.id}`, { table, key });
  const divergent = new Map<string, Divergence>();
  const governed = new Map<string, GovernedRepairTarget>();
  const maxRounds = run.rechecks * 3;
  for (let round = 1; round <= maxRounds && pending.size > 0; round += 1) {
    if (run.signal?.aborted === true) break;
    await sleep(run.recheckDelayMs);
    for (const table of work) {
      const keys = [...pending.values()].filter((p) => p.table === table).map((p) => p.key);
      if (keys.length === 0) continue;
      const states = await readStates(run, table.shape, keys, connections);
      for (const key of keys) {
        const id = `${table.shape.name}\u0000${key.id}`;
        const entry = pending.get(id);
        const state = states.get(key.id) as RegionState[];
        if (entry === undefined) continue;
        let found: boolean;
        if (table.governed === undefined) {
          const pk = keyImage(table.shape, key.key);
          const divergence = assessKey(table.shape.name, key.key, pk, state);
          if (divergence !== null) divergent.set(id, divergence);
          found = divergence !== null;
        } else {
          const divergence = assessGovernedKey(table.governed, key.key, state);
          // The states stay apart from the value-free report entry: only a repair reads them.
          if (divergence !== null) governed.set(id, { divergence, key: key.key, states: state });
          found = divergence !== null;
        }
        if (!found) {
          pending.delete(id);
          divergent.delete(id);
          governed.delete(id);
          summary.resolvedOnRecheck += 1;
          continue;
        }
        const settled = entry.last !== undefined && sameStates(entry.last, state);
        entry.last = state;
        // Judged after `rechecks` rounds, unless it is still changing.
        if (round >= run.rechecks && settled) pending.delete(id);
      }
    }
  }
  return { divergences: [...divergent.values()], governed: [...governed.values()] };
}
