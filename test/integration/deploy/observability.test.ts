/**
 * Static checks of the monitoring files: every YAML/JSON file under deploy/
 * parses; the Grafana dashboard and the Prometheus alert rules use valid
 * PromQL over metrics and labels a real daemon exports; every alert has a
 * severity, a summary, a description and a runbook that exists in
 * docs/OPERATIONS.md. (Scraping a running daemon's /metrics is checked
 * elsewhere; the registry is the same object that endpoint serves.)
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { extname, relative } from 'node:path';

import {
  ROOT,
  asList,
  asMap,
  asString,
  isMap,
  listFiles,
  parseYamlFile,
  readJsonMap,
  readText,
  readYamlMap,
  repoPath,
  type Json,
} from './files.js';
import { checkQuery, daemonSeries } from './promql.js';

const DASHBOARD = repoPath('deploy/grafana/cdc-replicator-dashboard.json');
const ALERT_RULES = repoPath('deploy/prometheus/alert-rules.yml');
const OPERATIONS = repoPath('docs/OPERATIONS.md');

/** Alerts the operations guide promises (docs/OPERATIONS.md, "Runbooks"). */
const REQUIRED_ALERTS = [
  'CdcReplicationLagHigh',
  'CdcDeadLetterIncreasing',
  'CdcHeartbeatMissing',
  'CdcLagAnomaly',
  'CdcNoCaptureLeader',
  'CdcDaemonDown',
];

/** Metrics the dashboard must chart (DESIGN.md §7 and the list). */
const DASHBOARD_METRICS = [
  'cdc_replication_lag_seconds',
  'cdc_events_captured_total',
  'cdc_events_applied_total',
  'cdc_conflicts_total',
  'cdc_dead_letter_total',
  'cdc_apply_latency_seconds_bucket',
  'cdc_apply_batch_duration_seconds_bucket',
  'cdc_capture_lag_seconds',
  'cdc_capture_position_lag_bytes',
  'cdc_kafka_consumer_lag_messages',
  'cdc_lag_anomaly',
  'cdc_capture_leader',
];

let series: Map<string, readonly string[]>;

beforeAll(async () => {
  series = await daemonSeries();
});

describe('deploy/ files', () => {
  it('every YAML and JSON file parses', () => {
    const files = listFiles(repoPath('deploy')).filter((f) =>
      ['.yml', '.yaml', '.json'].includes(extname(f)),
    );
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      if (extname(file) === '.json') expect(() => readJsonMap(file)).not.toThrow();
      else expect(parseYamlFile(file).length).toBeGreaterThan(0);
    }
  });
});

/** Grafana variables replaced by values that keep an expression valid PromQL. */
function substituteGrafanaVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '.*');
}

describe('Grafana dashboard', () => {
  const dashboard = readJsonMap(DASHBOARD);
  const panels = asList(dashboard.panels, 'panels').map((p, i) => asMap(p, `panels[${i}]`));
  const dataPanels = panels.filter((p) => p.type !== 'row');
  const variables = asList(asMap(dashboard.templating, 'templating').list, 'templating.list').map(
    (v, i) => asMap(v, `templating.list[${i}]`),
  );
  const targets = dataPanels.flatMap((panel) =>
    asList(panel.targets, `panel ${String(panel.title)} targets`).map((t) => ({
      panel: asString(panel.title, 'panel title'),
      expr: asString(asMap(t, 'target').expr, `panel ${String(panel.title)} expr`),
    })),
  );

  it('is a schemaVersion 39 dashboard with unique panel ids', () => {
    expect(dashboard.schemaVersion).toBe(39);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('takes its data source from a variable, never a fixed uid', () => {
    const datasourceVariable = variables.find((v) => v.type === 'datasource');
    expect(datasourceVariable).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const wrong = [
      ...dataPanels.map((p) => ({ where: `panel ${String(p.title)}`, ds: p.datasource })),
      ...dataPanels.flatMap((p) =>
        asList(p.targets, 'targets').map((t) => ({
          where: `panel ${String(p.title)} target`,
          ds: asMap(t, 'target').datasource,
        })),
      ),
      ...variables
        .filter((v) => v.type === 'query')
        .map((v) => ({ where: `variable ${String(v.name)}`, ds: v.datasource })),
    ].filter(({ ds }) => !isMap(ds) || ds.uid !== '${datasource}' || ds.type !== 'prometheus');
    expect(wrong.map((w) => w.where)).toEqual([]);
  });

  it('has source_region and target_region variables over real labels', () => {
    const problems: string[] = [];
    for (const name of ['source_region', 'target_region']) {
      const variable = variables.find((v) => v.name === name);
      expect(variable).toBeDefined();
      const query = asString(variable?.definition, `variable ${name} definition`);
      const match = /^label_values\(([a-z_:]+), ([a-z_]+)\)$/.exec(query);
      expect(match).not.toBeNull();
      const labels = series.get(match?.[1] ?? '');
      if (labels === undefined || !labels.includes(match?.[2] ?? '')) {
        problems.push(`${name}: ${query} names no label of a daemon metric`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('charts every metric the issue lists', () => {
    const missing = DASHBOARD_METRICS.filter(
      (metric) => !targets.some((t) => new RegExp(`\\b${metric}\\b`).test(t.expr)),
    );
    expect(missing).toEqual([]);
  });

  it('queries only metrics and labels a daemon exports, in valid PromQL', () => {
    expect(targets.length).toBeGreaterThanOrEqual(DASHBOARD_METRICS.length);
    const problems = targets.flatMap(({ panel, expr }) =>
      checkQuery(substituteGrafanaVariables(expr), series).map((p) => `${panel}: ${p}`),
    );
    expect(problems).toEqual([]);
  });
});

/**
 * Anchors of the headings of a Markdown file, as GitHub derives them:
 * lower case, punctuation dropped, spaces to hyphens, `-1`, `-2` for repeats.
 */
function markdownAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    const heading = inFence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading === null) continue;
    const slug = (heading[1] ?? '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly labels: Json;
  readonly annotations: Json;
  readonly for: string | undefined;
}

function readAlertRules(): AlertRule[] {
  const file = readYamlMap(ALERT_RULES);
  return asList(file.groups, 'groups').flatMap((group, g) =>
    asList(asMap(group, `groups[${g}]`).rules, `groups[${g}].rules`).map((rule, r) => {
      const where = `groups[${g}].rules[${r}]`;
      const map = asMap(rule, where);
      return {
        alert: asString(map.alert, `${where}.alert`),
        expr: asString(map.expr, `${where}.expr`),
        labels: asMap(map.labels, `${where}.labels`),
        annotations: asMap(map.annotations, `${where}.annotations`),
        for: map.for === undefined ? undefined : asString(map.for, `${where}.for`),
      };
    }),
  );
}

describe('Prometheus alert rules', () => {
  const rules = readAlertRules();

  it('define every alert the runbooks cover', () => {
    expect([...new Set(rules.map((r) => r.alert))].sort()).toEqual([...REQUIRED_ALERTS].sort());
  });

  it('query only metrics and labels a daemon exports, in valid PromQL', () => {
    const problems = rules.flatMap((rule) =>
      checkQuery(rule.expr, series).map((p) => `${rule.alert}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it('carry a severity, a summary, a description and a valid duration', () => {
    const problems: string[] = [];
    for (const rule of rules) {
      if (!['critical', 'warning', 'info'].includes(String(rule.labels.severity))) {
        problems.push(`${rule.alert}: severity ${String(rule.labels.severity)}`);
      }
      for (const key of ['summary', 'description']) {
        if (typeof rule.annotations[key] !== 'string' || rule.annotations[key] === '') {
          problems.push(`${rule.alert}: no ${key}`);
        }
      }
      if (rule.for !== undefined && !/^(\d+[smhd])+$/.test(rule.for)) {
        problems.push(`${rule.alert}: for ${rule.for}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('link a runbook whose anchor is a heading of docs/OPERATIONS.md, named after the alert', () => {
    const anchors = markdownAnchors(readText(OPERATIONS));
    const problems: string[] = [];
    for (const rule of rules) {
      const url = String(rule.annotations.runbook_url);
      const [path, anchor] = url.split('#');
      if (path !== relative(ROOT, OPERATIONS))
        problems.push(`${rule.alert}: ${url} is not in ${relative(ROOT, OPERATIONS)}`);
      if (anchor !== rule.alert.toLowerCase())
        problems.push(`${rule.alert}: anchor ${String(anchor)}`);
      if (anchor === undefined || !anchors.has(anchor))
        problems.push(`${rule.alert}: no heading for #${String(anchor)}`);
    }
    expect(problems).toEqual([]);
  });

  it('select the job the scrape configuration defines', () => {
    const config = readYamlMap(repoPath('deploy/prometheus/prometheus.yml'));
    const jobs = asList(config.scrape_configs, 'scrape_configs').map((c) =>
      asString(asMap(c, 'scrape_config').job_name, 'job_name'),
    );
    const selected = rules.flatMap((r) => [...r.expr.matchAll(/job="([^"]+)"/g)].map((m) => m[1]));
    expect(selected.length).toBeGreaterThan(0);
    for (const job of selected) expect(jobs).toContain(job);
  });
});

describe('markdownAnchors', () => {
  it('derives GitHub anchors, skipping fenced code', () => {
    const anchors = markdownAnchors(
      '# Operations\n## Kafka topics & retention\n```\n# not a heading\n```\n### CdcDaemonDown\n## Kafka topics & retention\n',
    );
    expect([...anchors]).toEqual([
      'operations',
      'kafka-topics--retention',
      'cdcdaemondown',
      'kafka-topics--retention-1',
    ]);
  });
});

describe('checkQuery', () => {
  it('reports syntax errors, unknown metrics and labels a metric does not have', () => {
    expect(checkQuery('sum by (region) (cdc_capture_leader{region="a", job="x"})', series)).toEqual(
      [],
    );
    expect(checkQuery('sum(rate(cdc_apply_latency_seconds_bucket[5m])', series)).toHaveLength(1);
    expect(checkQuery('cdc_replication_lag_secs > 1', series)).toEqual([
      'unknown metric cdc_replication_lag_secs',
    ]);
    expect(checkQuery('cdc_capture_leader{source_region="a"}', series)).toEqual([
      'cdc_capture_leader has no label source_region (it has: region)',
    ]);
    expect(
      checkQuery('histogram_quantile(0.9, cdc_apply_batch_events_bucket{le="1"})', series),
    ).toEqual([]);
  });
});
