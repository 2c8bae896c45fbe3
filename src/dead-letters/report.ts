import { decodeEnvelope, ENVELOPE_V2 } from '../bus/envelope.js';
import type { DeadLetter } from './record.js';
import type { ReplayResult, ReplayVerdict } from './replay.js';

/**
 * How dead letters and replay results are shown: a table or JSON for
 * `list`, every field and the original event for `show`, one line per dead
 * letter and the counts for `replay`.
 */

const ERROR_CHARS = 80;

/** `topic:partition:offset`, the handle `show --topic --partition --offset` takes apart. */
export function location(letter: Pick<DeadLetter, 'topic' | 'partition' | 'offset'>): string {
  return `${letter.topic}:${letter.partition}:${letter.offset}`;
}

function shorten(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

function isoTime(ms: number): string {
  return Number.isFinite(ms) && ms > 0 ? new Date(ms).toISOString() : '-';
}

function reasonOf(letter: DeadLetter): string {
  return letter.kind === 'undecodable' ? 'undecodable' : letter.reason;
}

function errorOf(letter: DeadLetter): string {
  return letter.kind === 'undecodable' ? letter.problem : letter.error;
}

/** The original change event of an apply dead letter, parsed when it is JSON. */
function originalEvent(letter: DeadLetter): unknown {
  if (letter.kind !== 'apply' || letter.value === null) return null;
  const text = letter.value.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { v?: unknown; rows?: unknown };
    if (parsed.v !== ENVELOPE_V2 || !Array.isArray(parsed.rows)) return parsed;
    // A v2 dead letter holds the one row at fault: shown as the change it is.
    try {
      const events = decodeEnvelope(text);
      return events.length === 1 ? events[0] : events;
    } catch {
      return parsed;
    }
  } catch {
    // The parked message was not JSON (that may be why it was parked): show its bytes.
    return { base64: letter.value.toString('base64') };
  }
}

/** A dead letter as plain JSON, the original event included. */
export function deadLetterJson(letter: DeadLetter): Record<string, unknown> {
  const base = {
    topic: letter.topic,
    partition: letter.partition,
    offset: letter.offset,
    time: isoTime(letter.timestampMs),
    stage: letter.stage,
    region: letter.region,
  };
  switch (letter.kind) {
    case 'apply':
      return {
        ...base,
        kind: letter.kind,
        reason: letter.reason,
        table: letter.table ?? null,
        sourceRegion: letter.sourceRegion ?? null,
        error: letter.error,
        source: letter.source,
        event: originalEvent(letter),
      };
    case 'capture':
      return {
        ...base,
        kind: letter.kind,
        reason: letter.reason,
        table: letter.table ?? null,
        error: letter.error,
        source: letter.source,
      };
    case 'undecodable':
      return { ...base, kind: letter.kind, problem: letter.problem, excerpt: letter.excerpt };
  }
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** One row per dead letter: where it is, when, which stage, region, reason and table, and the error. */
export function renderDeadLetterTable(letters: readonly DeadLetter[]): string {
  if (letters.length === 0) return 'no dead letters match\n';
  const rows = [
    ['LOCATION', 'TIME', 'STAGE', 'REGION', 'REASON', 'TABLE', 'ERROR'],
    ...letters.map((l) => [
      location(l),
      isoTime(l.timestampMs),
      l.stage,
      l.region,
      reasonOf(l),
      l.kind === 'undecodable' ? '-' : (l.table ?? '-'),
      shorten(errorOf(l), ERROR_CHARS),
    ]),
  ];
  return table(rows);
}

/** Everything a dead letter holds, the original event pretty-printed. */
export function renderDeadLetter(letter: DeadLetter): string {
  const json = deadLetterJson(letter);
  const lines = [
    `dead letter ${location(letter)}`,
    `  parked at:   ${String(json['time'])}`,
    `  stage:       ${letter.stage}`,
    `  region:      ${letter.region}`,
  ];
  const indent = (value: unknown): string =>
    JSON.stringify(value, null, 2).replace(/\n/g, '\n    ');
  switch (letter.kind) {
    case 'apply':
      lines.push(
        `  reason:      ${letter.reason}`,
        `  table:       ${letter.table ?? '-'}`,
        `  from region: ${letter.sourceRegion ?? '-'}`,
        `  error:       ${letter.error}`,
        `  original:    ${location({ topic: letter.source.topic, partition: letter.source.partition, offset: letter.source.offset ?? '?' })} key ${letter.source.key ?? '-'}`,
        `  event:\n    ${indent(json['event'])}`,
      );
      break;
    case 'capture':
      lines.push(
        `  reason:      ${letter.reason}`,
        `  table:       ${letter.table ?? '-'}`,
        `  error:       ${letter.error}`,
        `  source:\n    ${indent(letter.source)}`,
      );
      break;
    case 'undecodable':
      lines.push(
        `  undecodable: ${letter.problem}`,
        `  excerpt:     ${letter.excerpt === null ? '-' : JSON.stringify(letter.excerpt)}`,
      );
      break;
  }
  return `${lines.join('\n')}\n`;
}

/** What a verdict says, in the tense of a dry run or of a real one. */
export function describeVerdict(verdict: ReplayVerdict, dryRun: boolean): string {
  switch (verdict.kind) {
    case 'applied':
      return `${dryRun ? 'would apply' : 'applied'}${verdict.conflict ? ' (won over a concurrent local write)' : ''}`;
    case 'stale':
      return 'stale: already applied (or overtaken by a newer write); nothing to do';
    case 'local_won':
      return `${dryRun ? 'would join' : 'joined'}: a concurrent local write wins and stays`;
    case 'failed':
      return `still invalid: ${verdict.reason}: ${verdict.error}`;
    case 'not_replayable':
      return `cannot replay: ${verdict.why}`;
  }
}

/** Counts of a replay run: replayed (joined), stale, still failing (invalid or not replayable). */
export interface ReplayCounts {
  readonly replayed: number;
  readonly stale: number;
  readonly failing: number;
}

export function countReplay(results: readonly ReplayResult[]): ReplayCounts {
  let replayed = 0;
  let stale = 0;
  let failing = 0;
  for (const { verdict } of results) {
    if (verdict.kind === 'applied' || verdict.kind === 'local_won') replayed += 1;
    else if (verdict.kind === 'stale') stale += 1;
    else failing += 1;
  }
  return { replayed, stale, failing };
}

/** One line per dead letter, then the counts. */
export function renderReplay(results: readonly ReplayResult[], dryRun: boolean): string {
  const lines = results.map(
    ({ letter, verdict }) =>
      `${location(letter)} ${letter.kind === 'undecodable' ? '-' : (letter.table ?? '-')}: ${describeVerdict(verdict, dryRun)}`,
  );
  const counts = countReplay(results);
  lines.push(
    `${dryRun ? 'dry run: would replay' : 'replayed'} ${counts.replayed}, stale ${counts.stale}, still failing ${counts.failing}` +
      (counts.failing > 0 ? ' (they stay in the dead-letter topic)' : ''),
  );
  return `${lines.join('\n')}\n`;
}

/** A replay result as plain JSON. */
export function replayResultJson(result: ReplayResult): Record<string, unknown> {
  return {
    topic: result.letter.topic,
    partition: result.letter.partition,
    offset: result.letter.offset,
    stage: result.letter.stage,
    region: result.letter.region,
    table: result.letter.kind === 'undecodable' ? null : (result.letter.table ?? null),
    result: result.verdict.kind,
    ...(result.verdict.kind === 'failed'
      ? { reason: result.verdict.reason, error: result.verdict.error }
      : {}),
    ...(result.verdict.kind === 'not_replayable' ? { error: result.verdict.why } : {}),
  };
}
