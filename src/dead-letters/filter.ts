import { parseTablePattern, tableMatches, type TablePattern } from '../config/compile.js';
import { ConfigError } from '../core/errors.js';
import { DEAD_LETTER_STAGES, type DeadLetter, type DeadLetterStage } from './record.js';

/** The selection flags of `dead-letters list|show|replay`, as typed on the command line. */
export interface DeadLetterFilterFlags {
  readonly region?: string | undefined;
  readonly stage?: string | undefined;
  readonly reason?: string | undefined;
  readonly table?: string | undefined;
  readonly since?: string | undefined;
  readonly until?: string | undefined;
  readonly topic?: string | undefined;
  readonly partition?: string | undefined;
  readonly offset?: string | undefined;
}

/** Which dead letters a command works on. Every set criterion must hold. */
export interface DeadLetterFilter {
  /** Regions whose dead-letter topics are read. */
  readonly regions: readonly string[];
  readonly stages: readonly DeadLetterStage[];
  readonly reason?: string | undefined;
  readonly table?: TablePattern | undefined;
  /** Parked at or after (ms since the epoch). */
  readonly sinceMs?: number | undefined;
  /** Parked before (ms since the epoch). */
  readonly untilMs?: number | undefined;
  /** The dead letter's own location. */
  readonly topic?: string | undefined;
  readonly partition?: number | undefined;
  readonly offset?: string | undefined;
}

/** ISO 8601: a date, optionally a time (seconds and fraction optional) and a zone; UTC when no zone is given. */
const ISO_TIME =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;

/** Parses an ISO 8601 time flag; a problem naming the flag is recorded when it is not one. */
export function parseIsoTime(flag: string, text: string, problems: string[]): number | undefined {
  const trimmed = text.trim();
  if (ISO_TIME.test(trimmed)) {
    const withT = trimmed.replace(' ', 'T');
    const zoned = !withT.includes('T') || /(?:Z|[+-]\d{2}:\d{2})$/.test(withT);
    const ms = Date.parse(zoned ? withT : `${withT}Z`);
    if (!Number.isNaN(ms)) return ms;
  }
  problems.push(
    `${flag}: must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(text)}`,
  );
  return undefined;
}

/**
 * Checks the selection flags against the configuration's regions.
 *
 * @throws ConfigError listing every bad flag, each named.
 */
export function parseDeadLetterFilter(
  flags: DeadLetterFilterFlags,
  configuredRegions: readonly string[],
): DeadLetterFilter {
  const problems: string[] = [];
  let regions = [...configuredRegions];
  if (flags.region !== undefined) {
    if (configuredRegions.includes(flags.region)) regions = [flags.region];
    else
      problems.push(
        `--region: ${JSON.stringify(flags.region)} is not a configured region (regions: ${configuredRegions.join(', ')})`,
      );
  }
  let stages: DeadLetterStage[] = [...DEAD_LETTER_STAGES];
  if (flags.stage !== undefined) {
    const stage = DEAD_LETTER_STAGES.find((s) => s === flags.stage);
    if (stage === undefined)
      problems.push(
        `--stage: must be ${DEAD_LETTER_STAGES.join(' or ')}, got ${JSON.stringify(flags.stage)}`,
      );
    else stages = [stage];
  }
  let table: TablePattern | undefined;
  if (flags.table !== undefined) {
    try {
      table = parseTablePattern(flags.table.trim());
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(
        `--table: must be schema.table or schema.*, got ${JSON.stringify(flags.table)}`,
      );
    }
  }
  const sinceMs =
    flags.since === undefined ? undefined : parseIsoTime('--since', flags.since, problems);
  const untilMs =
    flags.until === undefined ? undefined : parseIsoTime('--until', flags.until, problems);
  if (sinceMs !== undefined && untilMs !== undefined && sinceMs >= untilMs)
    problems.push('--since: must be before --until');
  let partition: number | undefined;
  if (flags.partition !== undefined) {
    partition = Number(flags.partition);
    if (!/^\d+$/.test(flags.partition.trim()) || !Number.isSafeInteger(partition))
      problems.push(
        `--partition: must be a whole number ≥ 0, got ${JSON.stringify(flags.partition)}`,
      );
  }
  let offset: string | undefined;
  if (flags.offset !== undefined) {
    offset = flags.offset.trim();
    if (!/^\d+$/.test(offset))
      problems.push(`--offset: must be a whole number ≥ 0, got ${JSON.stringify(flags.offset)}`);
    else offset = BigInt(offset).toString();
  }
  if (flags.reason !== undefined && flags.reason.trim() === '')
    problems.push('--reason: must not be empty');
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    regions,
    stages,
    reason: flags.reason?.trim(),
    table,
    sinceMs,
    untilMs,
    topic: flags.topic,
    partition,
    offset,
  };
}

/**
 * Whether a dead letter is selected. A criterion a dead letter has no value
 * for (the reason or table of an undecodable record) does not match it.
 */
export function matchesDeadLetter(filter: DeadLetterFilter, letter: DeadLetter): boolean {
  if (!filter.regions.includes(letter.region) || !filter.stages.includes(letter.stage))
    return false;
  if (filter.topic !== undefined && letter.topic !== filter.topic) return false;
  if (filter.partition !== undefined && letter.partition !== filter.partition) return false;
  if (filter.offset !== undefined && letter.offset !== filter.offset) return false;
  if (filter.sinceMs !== undefined && letter.timestampMs < filter.sinceMs) return false;
  if (filter.untilMs !== undefined && letter.timestampMs >= filter.untilMs) return false;
  if (filter.reason !== undefined) {
    if (letter.kind === 'undecodable' || letter.reason !== filter.reason) return false;
  }
  if (filter.table !== undefined) {
    if (letter.kind === 'undecodable' || letter.table === undefined) return false;
    const dot = letter.table.indexOf('.');
    if (!tableMatches(filter.table, letter.table.slice(0, dot), letter.table.slice(dot + 1)))
      return false;
  }
  return true;
}
