import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { decodeApplyMessage, RejectedEvent, type ApplyEvent } from '../apply/apply-event.js';
import {
  APPLIER_SESSION_STATEMENTS,
  buildRoutes,
  loadLocalTables,
  strategyOf,
  validateEvents,
  type TopicRoute,
} from '../apply/apply-target.js';
import { applyEvents } from '../apply/eviction.js';
import { recheckGovernance } from '../apply/governance-check.js';
import type { PipelineOptions, RuntimeOptions } from '../config/compile.js';
import { tableMatches } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import { classifyError } from '../core/retriable.js';
import { clientOptions, describeMysql, mysqlError } from '../mysql/connection.js';
import type { TableInfo } from '../mysql/introspect.js';
import type { ApplyOutcome } from '../versioning/resolve.js';
import type { ApplyDeadLetter, DeadLetter } from './record.js';

/** What replaying one dead letter did (or, in a dry run, would do). */
export type ReplayVerdict =
  /** The event won the join and was written (`conflict` when it beat a concurrent local write). */
  | { readonly kind: 'applied'; readonly conflict: boolean }
  /** The local row already holds this version or a later one: nothing to do. */
  | { readonly kind: 'stale' }
  /** A concurrent local write wins: the local row stays, its version absorbs the event's. */
  | { readonly kind: 'local_won' }
  /** The event still cannot be applied; it stays in the dead-letter topic. */
  | { readonly kind: 'failed'; readonly reason: string; readonly error: string }
  /** The dead letter carries no change event that could be applied. */
  | { readonly kind: 'not_replayable'; readonly why: string };

export interface ReplayResult {
  readonly letter: DeadLetter;
  readonly verdict: ReplayVerdict;
}

export interface ReplayOptions {
  /** Run each event's join in a transaction that is rolled back: every check runs, nothing stays. */
  readonly dryRun: boolean;
  /** Told before each wait on a retriable MySQL error. */
  readonly onRetry: (error: CdcError, delayMs: number) => void;
}

/** Deadlocks and lock waits against the running applier, or a duplicate key from a racing local insert. */
const ATTEMPTS = 5;
const RETRY_INITIAL_MS = 100;
/** Marker row of the replay in `_cdc_apply_marker`: its transactions are never captured again either. */
const REPLAY_APPLIER = 'dead-letter-replay';

/** Why a capture dead letter cannot be replayed (it has no change event), and what to do instead. */
export function captureNotReplayable(letter: { table: string | undefined }): string {
  const table = letter.table ?? 'the table';
  return (
    'a capture dead letter holds a binlog row that could not be turned into a change event, so there is no event to replay; ' +
    `once the cause is fixed, bring the row back in line with \`cdc-replicator verify --tables ${table} --repair\``
  );
}

/** The verdict of a join, from the outcomes of the message's events. */
export function verdictOf(outcomes: ReadonlyMap<ApplyOutcome, number>): ReplayVerdict {
  const n = (o: ApplyOutcome): number => outcomes.get(o) ?? 0;
  if (n('applied') + n('conflict_won') > 0)
    return { kind: 'applied', conflict: n('conflict_won') > 0 };
  if (n('conflict_lost') > 0) return { kind: 'local_won' };
  return { kind: 'stale' };
}

/**
 * Replays dead letters of one region's apply stage into that region's
 * database through the applier's own path: the message is decoded and
 * checked as the apply stage does (`decodeApplyMessage`, `recheckGovernance`, `validateEvents`
 * against the local schema as it is now) and joined by `applyChunk`, one
 * transaction per dead letter, in an applier session. The join is idempotent:
 * an event already applied, or overtaken by a newer write, comes out `stale`,
 * so running a replay twice changes nothing the second time. Nothing is
 * removed from the dead-letter topic.
 */
export async function replayDeadLetters(
  letters: readonly DeadLetter[],
  options: RuntimeOptions,
  replay: ReplayOptions,
): Promise<ReplayResult[]> {
  const wrong = letters.find((l) => l.region !== options.region);
  if (wrong !== undefined)
    throw new Error(
      `dead letter of region ${wrong.region} handed to the replay of ${options.region}`,
    );
  const verdicts = new Map<DeadLetter, ReplayVerdict>();
  const candidates: ApplyDeadLetter[] = [];
  for (const letter of letters) {
    if (letter.kind === 'apply' && letter.value !== null) candidates.push(letter);
    else verdicts.set(letter, { kind: 'not_replayable', why: whyNot(letter) });
  }
  if (candidates.length > 0) await replayCandidates(candidates, options, replay, verdicts);
  return letters.map((letter) => ({ letter, verdict: verdicts.get(letter) as ReplayVerdict }));
}

async function replayCandidates(
  candidates: readonly ApplyDeadLetter[],
  options: RuntimeOptions,
  replay: ReplayOptions,
  verdicts: Map<DeadLetter, ReplayVerdict>,
): Promise<void> {
  const pool = mysql.createPool({
    ...clientOptions(options.mysql),
    connectionLimit: 1,
    // applyChunk sends a chunk's statements as a few multi-statement queries.
    multipleStatements: true,
  });
  try {
    let connection;
    try {
      connection = await pool.getConnection();
      for (const statement of APPLIER_SESSION_STATEMENTS) await connection.query(statement);
    } catch (err) {
      connection?.release();
      throw mysqlError(options.mysql, 'connect for the dead-letter replay', err);
    }
    try {
      const tables = await loadLocalTables(connection, options);
      const routes = buildRoutes(options, tables);
      for (const letter of candidates) {
        verdicts.set(
          letter,
          await replayOne(letter, { options, tables, routes, connection, replay }),
        );
      }
    } finally {
      connection.release();
    }
  } finally {
    await pool.end();
  }
}

function whyNot(letter: DeadLetter): string {
  switch (letter.kind) {
    case 'undecodable':
      return `the record cannot be decoded (${letter.problem})`;
    case 'capture':
      return captureNotReplayable(letter);
    case 'apply':
      return 'the parked message had no value: there is no event to replay';
  }
}

interface ReplayScope {
  options: RuntimeOptions;
  tables: ReadonlyMap<string, TableInfo>;
  routes: ReadonlyMap<string, TopicRoute>;
  connection: mysql.PoolConnection;
  replay: ReplayOptions;
}

async function replayOne(letter: ApplyDeadLetter, scope: ReplayScope): Promise<ReplayVerdict> {
  const { options, tables, routes } = scope;
  const route = routes.get(letter.source.topic);
  if (route === undefined || route.heartbeat) return unrouted(letter, options);
  let events: ApplyEvent[];
  try {
    // As the apply stage: governance first, then the local schema (the policy may have changed since).
    const decoded = recheckGovernance(
      options,
      route,
      decodeApplyMessage(letter.value, route),
    ).flatMap((row) => {
      if ('error' in row) throw row.error;
      return row.events;
    });
    events = validateEvents(route, tables.get(`${route.db}.${route.table}`), decoded);
  } catch (err) {
    if (err instanceof RejectedEvent)
      return { kind: 'failed', reason: err.reason, error: err.message };
    throw err;
  }
  const table = tables.get(`${route.db}.${route.table}`) as TableInfo;
  const { strategy, name } = strategyOf(route.pipeline as PipelineOptions);
  let delay = RETRY_INITIAL_MS;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const result = await applyEvents(scope.connection, events, {
        region: options.region,
        internalSchema: options.internalSchema,
        applierId: `${options.region}/${REPLAY_APPLIER}`,
        sourceRegion: route.sourceRegion,
        table,
        strategy,
        strategyName: name,
        recordConflict: () => Math.random() < options.apply.conflictSampleRate,
        rollback: scope.replay.dryRun,
      });
      return verdictOf(result.outcomes);
    } catch (err) {
      const error = classifyError(
        err,
        `${describeMysql(options.mysql)}: replaying ${letter.topic}:${letter.partition}:${letter.offset} into ${route.db}.${route.table}`,
      );
      const duplicateKey = (err as { errno?: unknown }).errno === 1062;
      if ((error.retriable || duplicateKey) && attempt < ATTEMPTS) {
        scope.replay.onRetry(error, delay);
        await sleep(delay);
        delay *= 2;
        continue;
      }
      // MySQL itself is unavailable: stop the run rather than call every event failed.
      if (error.retriable && !duplicateKey) throw error;
      return {
        kind: 'failed',
        reason: duplicateKey ? 'constraint_violation' : 'apply_failed',
        error: error.message,
      };
    }
  }
}

/** The original topic is not one this region applies (now): say which check fails. */
function unrouted(letter: ApplyDeadLetter, options: RuntimeOptions): ReplayVerdict {
  const where = letter.table;
  if (where === undefined || letter.sourceRegion === undefined)
    return {
      kind: 'failed',
      reason: 'table_not_in_pipeline',
      error: `topic ${letter.source.topic} is not a change topic of this deployment (prefix ${options.kafka.topicPrefix}, regions ${[options.region, ...options.peers].join(', ')})`,
    };
  const dot = where.indexOf('.');
  const configured = options.pipelines.some((p) =>
    p.tables.some((t) => tableMatches(t, where.slice(0, dot), where.slice(dot + 1))),
  );
  if (letter.sourceRegion === options.region)
    return {
      kind: 'failed',
      reason: 'table_not_in_pipeline',
      error: `topic ${letter.source.topic} holds region ${options.region}'s own changes, which it never applies`,
    };
  return configured
    ? {
        kind: 'failed',
        reason: 'table_missing',
        error: `table ${where} does not exist in region ${options.region}`,
      }
    : {
        kind: 'failed',
        reason: 'table_not_in_pipeline',
        error: `${where} is not in any pipeline`,
      };
}
