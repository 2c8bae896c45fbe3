import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import type { RowVersion } from '../versioning/version.js';
import { showValue, type Divergence } from './diff.js';

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
}

export function formatSummary(s: VerifySummary): string {
  const verdict =
    s.divergent === 0
      ? 'regions match'
      : `${s.divergent} divergent row${s.divergent === 1 ? '' : 's'}`;
  return (
    `verify ${s.regions.join(',')}: ${verdict}; ${s.tables} table${s.tables === 1 ? '' : 's'}, ` +
    `${s.rows} rows in ${s.chunks} chunks (${s.chunksDiffering} differed at first sight, ` +
    `${s.resolvedOnRecheck} row difference${s.resolvedOnRecheck === 1 ? ' was a change' : 's were changes'} in flight) in ${s.seconds.toFixed(1)} s`
  );
}
