import { describe, expect, it } from '@jest/globals';

import { DaemonMetrics } from './metrics.js';
import { parseExposition, sumOf, valueOf } from './prometheus-text.js';

describe('parseExposition', () => {
  it('reads what prom-client writes, labels and escapes included', async () => {
    const metrics = new DaemonMetrics({ defaultMetrics: false });
    metrics.eventsAppliedTotal.inc(
      { source_region: 'us-east', target_region: 'eu-west', table: 'app.users', result: 'applied' },
      7,
    );
    metrics.deadLetterTotal.inc({ stage: 'apply', reason: 'odd "reason"\\with\nnewline' }, 2);
    metrics.applyLatencySeconds.observe(
      { source_region: 'us-east', target_region: 'eu-west' },
      0.2,
    );
    const { samples, types } = parseExposition(await metrics.registry.metrics());
    expect(
      valueOf(samples, 'cdc_events_applied_total', { source_region: 'us-east', result: 'applied' }),
    ).toBe(7);
    expect(sumOf(samples, 'cdc_dead_letter_total', { reason: 'odd "reason"\\with\nnewline' })).toBe(
      2,
    );
    expect(valueOf(samples, 'cdc_apply_latency_seconds_bucket', { le: '+Inf' })).toBe(1);
    expect(types.get('cdc_replication_lag_seconds')).toBe('gauge');
    expect(types.get('cdc_apply_latency_seconds')).toBe('histogram');
  });

  it('reads special values and timestamps', () => {
    const { samples } = parseExposition(
      'a NaN\nb +Inf 1700000000\nc{x="1"} -Inf\nd 1.5e3\ne Nan\n',
    );
    expect(samples.map((s) => s.value)).toEqual([NaN, Infinity, -Infinity, 1500, NaN]);
  });

  it('names the line of malformed input', () => {
    expect(() => parseExposition('ok 1\n{x="1"} 2\n')).toThrow(/line 2: not a metric sample/);
    expect(() => parseExposition('a{x="1} 2\n')).toThrow(/line 1: unterminated label value/);
    expect(() => parseExposition('a{x=1} 2\n')).toThrow(/line 1: malformed labels/);
    expect(() => parseExposition('a{x="1"} many\n')).toThrow(/line 1: a has no numeric value/);
  });
});
