/**
 * Reading the daemons' `/metrics` in the bench: the daemon's own exposition
 * reader (src/monitor/prometheus-text.ts), plus a group-by the reports need.
 */
import { parseExposition, sumOf, type Sample } from '../../src/monitor/prometheus-text.js';

export type PromSample = Sample;
export { sumOf };

export function parseProm(text: string): PromSample[] {
  return [...parseExposition(text).samples];
}

/** Sums of a metric grouped by one label. */
export function sumBy(
  samples: readonly PromSample[],
  name: string,
  label: string,
  match: Readonly<Record<string, string>> = {},
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const key = s.labels[label] ?? '';
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}
