import { describe, expect, it } from '@jest/globals';

import { parseExposition } from './prometheus-text.js';
import { buildStatus, renderStatusTable, type Scrape } from './status.js';

const endpoints = [
  { region: 'us-east', url: 'http://127.0.0.1:1' },
  { region: 'eu-west', url: 'http://127.0.0.1:2' },
];

function scraped(atMs: number, text: string) {
  return { ok: true as const, exposition: parseExposition(text), atMs };
}

function applied(source: string, target: string, result: string, n: number): string {
  return `cdc_events_applied_total{source_region="${source}",target_region="${target}",table="app.t",result="${result}"} ${n}\n`;
}

describe('buildStatus', () => {
  it('computes lag, rates and dead letters per pair and fails a pair over the threshold', () => {
    const first = new Map([
      ['us-east', scraped(0, applied('eu-west', 'us-east', 'applied', 100))],
      [
        'eu-west',
        scraped(
          0,
          applied('us-east', 'eu-west', 'applied', 10) +
            applied('us-east', 'eu-west', 'conflict_lost', 0),
        ),
      ],
    ]);
    const second = new Map([
      [
        'us-east',
        scraped(
          2000,
          applied('eu-west', 'us-east', 'applied', 300) +
            'cdc_replication_lag_seconds{source_region="eu-west",target_region="us-east"} 0.25\n' +
            'cdc_dead_letter_total{stage="capture",reason="undecodable"} 1\n',
        ),
      ],
      [
        'eu-west',
        scraped(
          2000,
          applied('us-east', 'eu-west', 'applied', 50) +
            applied('us-east', 'eu-west', 'conflict_lost', 8) +
            'cdc_replication_lag_seconds{source_region="us-east",target_region="eu-west"} 42\n' +
            'cdc_dead_letter_total{stage="apply",reason="column_missing"} 3\n' +
            'cdc_lag_anomaly{source_region="us-east",target_region="eu-west"} 1\n',
        ),
      ],
    ]);
    const report = buildStatus(endpoints, first, second, 30);
    expect(report.healthy).toBe(false);
    const toEu = report.pairs.find((p) => p.source === 'us-east' && p.target === 'eu-west');
    const toUs = report.pairs.find((p) => p.source === 'eu-west' && p.target === 'us-east');
    expect(toUs).toMatchObject({
      health: 'ok',
      lagSeconds: 0.25,
      eventsPerSecond: 100,
      deadLetters: 0,
    });
    expect(toEu).toMatchObject({
      health: 'lagging',
      lagSeconds: 42,
      eventsPerSecond: 24,
      conflictsPerSecond: 4,
      deadLetters: 4,
      anomaly: true,
    });
    const table = renderStatusTable(report);
    expect(table).toMatch(
      /us-east\s+eu-west\s+42\.000 s\s+24\.0\s+4\.0\s+4\s+LAGGING: lag 42\.0 s is over the 30 s threshold/,
    );
    expect(table).toMatch(/NOT all pairs ok/);
  });

  it('reports a daemon that does not answer as unreachable for every pair into it', () => {
    const down = {
      ok: false as const,
      error: 'http://127.0.0.1:2/metrics does not answer (ECONNREFUSED)',
    };
    const up = scraped(
      0,
      'cdc_replication_lag_seconds{source_region="eu-west",target_region="us-east"} 0.1\n',
    );
    const report = buildStatus(
      endpoints,
      new Map<string, Scrape>([
        ['us-east', up],
        ['eu-west', down],
      ]),
      new Map<string, Scrape>([
        ['us-east', up],
        ['eu-west', down],
      ]),
      30,
    );
    expect(report.healthy).toBe(false);
    expect(report.pairs.find((p) => p.target === 'eu-west')).toMatchObject({
      health: 'unreachable',
      detail: expect.stringContaining('ECONNREFUSED'),
    });
    expect(report.pairs.find((p) => p.target === 'us-east')?.health).toBe('ok');
    expect(renderStatusTable(report)).toMatch(
      /region eu-west \(http:\/\/127\.0\.0\.1:2\): .*ECONNREFUSED/,
    );
  });

  it('says when a reachable daemon reports nothing for a pair', () => {
    const empty = scraped(0, '');
    const report = buildStatus(
      endpoints,
      new Map(),
      new Map([
        ['us-east', empty],
        ['eu-west', empty],
      ]),
      30,
    );
    expect(report.pairs.map((p) => p.health)).toEqual(['no-data', 'no-data']);
  });
});
