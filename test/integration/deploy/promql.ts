/**
 * PromQL checks for the dashboard and the alert rules, with the parser of the
 * Prometheus project's own UI: syntax errors, and the metric and label names
 * every selector uses, so they can be compared with the daemon's registry.
 */
import { parser } from '@prometheus-io/lezer-promql';

import { DaemonMetrics } from '../../../src/monitor/metrics.js';

/** One vector selector: `metric{label=~"..."}`. */
export interface Selector {
  /** Undefined for a selector without a metric name (`{__name__=~"..."}`). */
  readonly metric: string | undefined;
  readonly labels: readonly string[];
}

export interface ParsedQuery {
  /** Positions of syntax errors; empty when the expression parses. */
  readonly errors: readonly string[];
  readonly selectors: readonly Selector[];
}

export function parsePromql(expr: string): ParsedQuery {
  const tree = parser.parse(expr);
  const errors: string[] = [];
  const selectors: Selector[] = [];
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError) {
        errors.push(
          `syntax error at ${ref.from}: ${JSON.stringify(expr.slice(ref.from, ref.from + 20))}`,
        );
        return;
      }
      if (ref.name !== 'VectorSelector') return;
      const node = ref.node;
      const identifier = node.getChild('Identifier');
      const labels: string[] = [];
      const matchers = node.getChild('LabelMatchers');
      if (matchers !== null) {
        for (const matcher of [
          ...matchers.getChildren('UnquotedLabelMatcher'),
          ...matchers.getChildren('QuotedLabelMatcher'),
        ]) {
          const name = matcher.getChild('LabelName');
          if (name !== null) labels.push(expr.slice(name.from, name.to));
        }
      }
      selectors.push({
        metric: identifier === null ? undefined : expr.slice(identifier.from, identifier.to),
        labels,
      });
    },
  });
  return { errors, selectors };
}

/** Labels every scraped series carries besides its own: added by Prometheus per target. */
export const TARGET_LABELS = ['job', 'instance'] as const;

/** Series Prometheus synthesises for every target, which no registry holds. */
const SYNTHETIC_SERIES: Record<string, readonly string[]> = { up: [] };

/**
 * Every series name a real daemon exports, with its label names: histogram
 * names expanded to `_bucket` (plus `le`), `_sum` and `_count`. Built from a
 * fresh {@link DaemonMetrics} with the default process metrics, as `run` has.
 */
export async function daemonSeries(): Promise<Map<string, readonly string[]>> {
  const metrics = new DaemonMetrics();
  const series = new Map<string, readonly string[]>(Object.entries(SYNTHETIC_SERIES));
  for (const { name, type } of await metrics.registry.getMetricsAsJSON()) {
    const metric = metrics.registry.getSingleMetric(name);
    // prom-client keeps the configured label names on the metric object; its typings omit them.
    const labelNames = (metric as unknown as { labelNames?: readonly string[] } | undefined)
      ?.labelNames;
    if (labelNames === undefined) throw new Error(`${name}: prom-client did not expose labelNames`);
    if (String(type) === 'histogram') {
      series.set(`${name}_bucket`, [...labelNames, 'le']);
      series.set(`${name}_sum`, labelNames);
      series.set(`${name}_count`, labelNames);
    } else {
      series.set(name, labelNames);
    }
  }
  return series;
}

/**
 * Problems of one expression against the daemon's series: syntax errors,
 * unknown metric names, and label matchers on labels the metric does not have.
 */
export function checkQuery(expr: string, series: ReadonlyMap<string, readonly string[]>): string[] {
  const parsed = parsePromql(expr);
  const problems = [...parsed.errors];
  for (const selector of parsed.selectors) {
    if (selector.metric === undefined) {
      problems.push('a selector without a metric name cannot be checked against the registry');
      continue;
    }
    const labels = series.get(selector.metric);
    if (labels === undefined) {
      problems.push(`unknown metric ${selector.metric}`);
      continue;
    }
    for (const label of selector.labels) {
      if (!labels.includes(label) && !(TARGET_LABELS as readonly string[]).includes(label)) {
        problems.push(
          `${selector.metric} has no label ${label} (it has: ${labels.join(', ') || 'none'})`,
        );
      }
    }
  }
  return problems;
}
