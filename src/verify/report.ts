import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import type { RowVersion } from '../versioning/version.js';
import { showValue, type Divergence } from './diff.js';
import type { GovernedDivergence, Violation } from './governed.js';

/** `origin@hlc (UTC time) vv {…}`: the version as people compare them. */
export function formatVersion(version: RowVersion | null): string {
  if (version === null) return 'none';
  const vv = Object.entries(version.vv)
    .map(([region, hlc]) => `${region}:${hlc}`)
    .join(', ');
  return `${version.origin}@${version.hlc} (${microsToMysqlTimestamp(version.hlc)} UTC) vv {${vv}}`;
}

function explain(d: Divergence): string {
  switch (d.kind) {
    case 'behind':
      return `${d.lagging.join(', ')} lack${d.lagging.length === 1 ? 's' : ''} the newest version, held by ${d.winner ?? '?'} (not delivered, or lost)`;
    case 'equal-version':
      return `same version, different data in ${d.lagging.join(', ')} (a write bypassed capture or the applier); ${d.winner ?? '?'}'s copy wins`;
    case 'unversioned':
      return 'no region has a readable version; repair by hand';
  }
}

/** One divergent row: table, key, each region's version and row, the differing columns. */
export function formatDivergence(d: Divergence): string {
  const lines = [`DIVERGENT ${d.table} pk ${JSON.stringify(d.pk)}: ${explain(d)}`];
  const width = Math.max(...d.states.map((s) => s.region.length));
  for (const s of d.states) {
    const what = s.image === null ? (s.version === null ? 'no row' : 'deleted') : 'row';
    const version =
      s.versionError !== undefined ? `unreadable (${s.versionError})` : formatVersion(s.version);
    lines.push(`  ${s.region.padEnd(width)}  ${what.padEnd(7)} version ${version}`);
  }
  if (d.differingColumns.length > 0) {
    lines.push('  differing columns:');
    for (const column of d.differingColumns) {
      const values = d.states
        .filter((s) => s.image !== null)
        .map((s) => `${s.region}=${showValue(s.image?.[column])}`);
      lines.push(`    ${column}: ${values.join('  ')}`);
    }
  }
  return lines.join('\n');
}

function explainViolation(v: Violation): string {
  switch (v.kind) {
    case 'not-allowed':
      return `${v.region} holds a row it may not hold`;
    case 'plain-where-masked':
      return `${v.region} may hold this row only masked, but ${v.columns.join(', ')} hold${v.columns.length === 1 ? 's' : ''} what no mask produces (plain values)`;
    case 'masked-where-plain':
      return `${v.region} may hold this row plain, but holds the masked form of another region's original (${v.columns.join(', ')})`;
  }
}

function explainGoverned(d: GovernedDivergence): string {
  switch (d.kind) {
    case 'behind':
      return `${d.lagging.join(', ')} ${d.lagging.length === 1 ? 'differs' : 'differ'} from the newest version, held by ${d.winner ?? '?'} (not delivered, or lost)`;
    case 'equal-version':
      return `same version, different data in ${d.lagging.join(', ')} (a write bypassed capture or the applier)`;
    case 'unversioned':
      return 'no region that may hold the row has a readable version; repair by hand';
  }
}

/**
 * One governed key: never a value and never the key itself, only the key's
 * hash, the policy, each region's audience, what it holds and its version,
 * the pairs that differ and their columns, and the violations.
 */
export function formatGovernedDivergence(d: GovernedDivergence): string {
  const what = [
    ...d.violations.map(explainViolation),
    ...(d.pairsDiffer ? [explainGoverned(d)] : []),
  ];
  const head = d.violations.length > 0 ? 'NOT ALLOWED' : 'DIVERGENT';
  const lines = [`${head} ${d.table} key ${d.keyHash} (policy ${d.policy}): ${what.join('; ')}`];
  const width = Math.max(...d.states.map((s) => s.region.length));
  for (const s of d.states) {
    const version = s.versionError !== undefined ? 'unreadable' : formatVersion(s.version);
    const may = s.audience === 'none' ? 'may not hold' : `may hold ${s.audience}`;
    lines.push(
      `  ${s.region.padEnd(width)}  ${may.padEnd(16)} ${s.held.padEnd(7)} version ${version}`,
    );
  }
  for (const p of d.pairs) {
    const how = p.throughMasks ? ' (through the masks)' : '';
    lines.push(
      p.onlyIn !== undefined
        ? `  ${p.a} / ${p.b}: only ${p.onlyIn} holds the row`
        : `  ${p.a} / ${p.b}: columns ${p.columns.join(', ')} differ${how}`,
    );
  }
  return lines.join('\n');
}

export interface VerifySummary {
  regions: readonly string[];
  tables: number;
  chunks: number;
  chunksDiffering: number;
  rows: number;
  /** Keys that differed at first sight but matched on a recheck (changes in flight). */
  resolvedOnRecheck: number;
  divergent: number;
  seconds: number;
  /** Tables compared under a governance policy (row by row, through the masks). */
  governedTables: number;
  /** Governed rows held where they may not be, or in the wrong form. */
  violations: number;
}

export function formatSummary(s: VerifySummary): string {
  const parts: string[] = [];
  if (s.divergent > 0) parts.push(`${s.divergent} divergent row${s.divergent === 1 ? '' : 's'}`);
  if (s.violations > 0)
    parts.push(`${s.violations} row${s.violations === 1 ? '' : 's'} held where not allowed`);
  const verdict = parts.length === 0 ? 'regions match' : parts.join(', ');
  const governed =
    s.governedTables === 0
      ? ''
      : ` (${s.governedTables} governed: compared row by row through the masks)`;
  return (
    `verify ${s.regions.join(',')}: ${verdict}; ${s.tables} table${s.tables === 1 ? '' : 's'}${governed}, ` +
    `${s.rows} rows in ${s.chunks} chunks (${s.chunksDiffering} differed at first sight, ` +
    `${s.resolvedOnRecheck} row difference${s.resolvedOnRecheck === 1 ? ' was a change' : 's were changes'} in flight) in ${s.seconds.toFixed(1)} s`
  );
}
