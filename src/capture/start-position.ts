/**
 * Where capture starts (DESIGN §6: a missing position is never a fresh
 * start). The position comes from the checkpoint store or from the Kafka
 * position topic, whichever is further ahead (both are written only over
 * acknowledged changes, so both are safe). Without either, only a region
 * whose topics never held an event starts silently at the end of the
 * binlog; otherwise the operator has to choose, and capture stops until
 * they do.
 */
import { CdcError } from '../core/errors.js';
import type { Checkpoint } from '../state/store.js';
import { furthestPosition, positionCovers } from './gtid-position.js';

/** What an operator tells `run` to do when no position can be found. */
export type LostPositionChoice =
  | { kind: 'resume-from-gtid'; position: string }
  | { kind: 'replay-from-oldest-binlog' }
  | { kind: 'accept-gap' };

/** Where a start position came from (the `from` label of `cdc_capture_starts_total`). */
export type PositionSource = 'store' | 'kafka' | 'first-start' | LostPositionChoice['kind'];

export type StartDecision =
  | {
      kind: 'resume';
      checkpoint: Checkpoint;
      from: 'store' | 'kafka';
      /** The checkpoint store lacks this position (it lost its keys, or is behind). */
      storeBehind: boolean;
    }
  | { kind: 'first-start' }
  | { kind: 'operator'; choice: LostPositionChoice }
  | { kind: 'lost'; topicsWithEvents: readonly string[] };

export interface StartInputs {
  stored: Checkpoint | undefined;
  logged: Checkpoint | undefined;
  /** The region's topics that ever held an event. */
  topicsWithEvents: readonly string[];
  choice: LostPositionChoice | undefined;
}

export function decideStartPosition(inputs: StartInputs): StartDecision {
  const { stored, logged, topicsWithEvents, choice } = inputs;
  if (stored !== undefined && logged !== undefined) {
    const best = furthestPosition(
      { ...stored, from: 'store' as const },
      { ...logged, from: 'kafka' as const },
    );
    const checkpoint = { position: best.position, savedAtMs: best.savedAtMs };
    return {
      kind: 'resume',
      checkpoint,
      from: best.from,
      storeBehind:
        best.from === 'kafka' && positionCovers(stored.position, logged.position) !== true,
    };
  }
  if (stored !== undefined)
    return { kind: 'resume', checkpoint: stored, from: 'store', storeBehind: false };
  if (logged !== undefined)
    return { kind: 'resume', checkpoint: logged, from: 'kafka', storeBehind: true };
  if (choice !== undefined) return { kind: 'operator', choice };
  if (topicsWithEvents.length > 0) return { kind: 'lost', topicsWithEvents };
  return { kind: 'first-start' };
}

/** The command-line flags of each choice, as the error and the docs name them. */
export const LOST_POSITION_FLAGS = {
  'resume-from-gtid': '--resume-from-gtid <position>',
  'replay-from-oldest-binlog': '--replay-from-oldest-binlog',
  'accept-gap': '--accept-gap',
} as const;

/** Checks a position given on the command line; returns the problem, if any. */
export function positionProblem(position: string): string | undefined {
  try {
    positionCovers(position, position);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The fatal error of a lost position: what happened, why capture will not
 * guess, and the operator's three choices with what each one means here.
 */
export function positionLostError(details: {
  where: string;
  region: string;
  storeDescription: string;
  positionTopic: string;
  topicsWithEvents: readonly string[];
  currentPosition: string;
  oldestPosition: string;
}): CdcError {
  const shown = details.topicsWithEvents.slice(0, 5).join(', ');
  const more =
    details.topicsWithEvents.length > 5 ? ` and ${details.topicsWithEvents.length - 5} more` : '';
  return new CdcError(
    `${details.where}: capture has no saved position: none in the checkpoint store ` +
      `(${details.storeDescription}) and none in Kafka (${details.positionTopic}), ` +
      `but this region's topics already hold its events (${shown}${more}). ` +
      'Starting at the end of the binlog would silently skip every change made since the last saved position, ' +
      'so capture does not start. Restart `run` with one of:\n' +
      `  ${LOST_POSITION_FLAGS['resume-from-gtid']}: resume after a GTID position known to be published ` +
      "(for example the newest event's gtid in the topics above); nothing is skipped if it is not later than that\n" +
      `  ${LOST_POSITION_FLAGS['replay-from-oldest-binlog']}: replay from the oldest binlog still on the server ` +
      `(position '${details.oldestPosition}'); safe, because applying is idempotent, but it republishes everything since\n` +
      `  ${LOST_POSITION_FLAGS['accept-gap']}: start at the current end of the binlog ('${details.currentPosition}') ` +
      'and accept that changes since the last saved position are not replicated; an audit record is written, ' +
      'and `cdc-replicator verify --repair` finds and repairs what the gap left behind',
    { code: 'CAPTURE_POSITION_LOST', retriable: false },
  );
}

/**
 * The fatal error of a saved position whose transactions the server purged
 * before capture read them: which ones, and what the operator can do.
 * Capture never skips them on its own.
 */
export function positionPurgedError(details: {
  where: string;
  position: string;
  /** The GTIDs the position still needs that are gone (empty when the server did not say). */
  missing: string;
  /** What the server has purged (MySQL `gtid_purged`), when known. */
  purged?: string;
  /** The server's own words, when it refused the binlog dump. */
  serverMessage?: string;
}): CdcError {
  const gone =
    details.missing === ''
      ? 'transactions the server has already purged from its binary logs'
      : `transactions the server has already purged from its binary logs: ${details.missing}`;
  return new CdcError(
    `${details.where}: capture cannot resume from its saved position '${details.position}': it still needs ${gone}` +
      (details.purged === undefined || details.purged === ''
        ? ''
        : ` (the server's purged GTIDs are '${details.purged}')`) +
      (details.serverMessage === undefined ? '' : ` (server: ${details.serverMessage})`) +
      '. Those changes were never published and cannot be read any more, so capture does not start; ' +
      'it never skips ahead on its own. Choose one:\n' +
      '  put the purged binlogs back (restore them from a backup, or point this region at a replica that still has them) and restart `run`: nothing is lost\n' +
      `  restart \`run\` once with ${LOST_POSITION_FLAGS['replay-from-oldest-binlog']} (republish everything the server still has) ` +
      `or ${LOST_POSITION_FLAGS['accept-gap']} (start at the end of the binlog); either writes an audit record, ` +
      'and the purged changes stay unreplicated until `cdc-replicator verify --repair` (or a snapshot of the affected tables) brings the other regions level. ' +
      'Keep binlogs longer than a daemon may be down (binlog_expire_logs_seconds).',
    { code: 'BINLOG_PURGED', retriable: false },
  );
}
