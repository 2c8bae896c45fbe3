import { changeTopicsOf, judgeRetention, type TopicRetention } from './topic-retention.js';

const HOUR = 3_600_000;
const HORIZON = 168 * HOUR;

function topic(
  name: string,
  retentionMs: number,
  extra: Partial<TopicRetention> = {},
): TopicRetention {
  return { topic: name, retentionMs, retentionBytes: -1, cleanupPolicy: 'delete', ...extra };
}

describe('judgeRetention', () => {
  it('accepts retention at or above the tombstone horizon, and forever', () => {
    expect(
      judgeRetention({
        topics: [topic('cdc.a.app.users', HORIZON), topic('cdc.b.app.users', -1)],
        tombstoneHorizonMs: HORIZON,
        offsetsRetentionMs: undefined,
      }),
    ).toEqual([]);
  });

  it('names the topics whose retention is shorter than the horizon, grouped by retention', () => {
    const findings = judgeRetention({
      topics: [
        topic('cdc.a.app.users', 24 * HOUR),
        topic('cdc.a.app.orders', 24 * HOUR),
        topic('cdc.b.app.users', 72 * HOUR),
        topic('cdc.b.app.orders', 200 * HOUR),
      ],
      tombstoneHorizonMs: HORIZON,
      offsetsRetentionMs: undefined,
    });
    expect(findings.map((f) => [f.kind, f.topics])).toEqual([
      ['retention_below_horizon', ['cdc.a.app.orders', 'cdc.a.app.users']],
      ['retention_below_horizon', ['cdc.b.app.users']],
    ]);
    expect(findings[0]?.message).toBe(
      'Kafka topics cdc.a.app.orders, cdc.a.app.users keep changes 24 h (retention.ms=86400000), ' +
        'less than apply.tombstoneHorizonHours (168 h): a region down longer than 24 h misses changes ' +
        'and needs a re-snapshot; set retention.ms to at least 604800000',
    );
  });

  it('ignores compacted-only topics and counts topics past five', () => {
    const many = Array.from({ length: 7 }, (_, i) => topic(`cdc.a.app.t${i}`, HOUR));
    const findings = judgeRetention({
      topics: [...many, topic('cdc.a.app.compacted', HOUR, { cleanupPolicy: 'compact' })],
      tombstoneHorizonMs: HORIZON,
      offsetsRetentionMs: undefined,
    });
    expect(findings).toHaveLength(1);
    expect(findings[0]?.topics).toHaveLength(7);
    expect(findings[0]?.message).toMatch(/cdc\.a\.app\.t4 \(\+2 more\) keep changes 1 h/);
  });

  it('warns about size-based retention', () => {
    const findings = judgeRetention({
      topics: [topic('cdc.a.app.users', -1, { retentionBytes: 1_000_000 })],
      tombstoneHorizonMs: HORIZON,
      offsetsRetentionMs: undefined,
    });
    expect(findings.map((f) => f.kind)).toEqual(['retention_by_size']);
  });

  it('warns when consumer offsets expire before the changes do, saying it replays', () => {
    const offsets = (topics: TopicRetention[], offsetsRetentionMs: number) =>
      judgeRetention({ topics, tombstoneHorizonMs: HORIZON, offsetsRetentionMs });
    expect(offsets([topic('cdc.a.app.users', HORIZON)], HORIZON)).toEqual([]);
    const [forever] = offsets([topic('cdc.a.app.users', -1)], HORIZON);
    expect(forever?.kind).toBe('offsets_expire_first');
    expect(forever?.message).toMatch(
      /offsets\.retention\.minutes \(168 h\) is shorter than .*forever .*earliest retained change: safe .*replays everything/,
    );
    expect(offsets([topic('cdc.a.app.users', 336 * HOUR)], 24 * HOUR)[0]?.message).toMatch(
      /\(24 h\) is shorter than the change topics' retention \(336 h\)/,
    );
  });
});

describe('changeTopicsOf', () => {
  it("keeps the regions' change topics, not dead letters or other prefixes", () => {
    expect(
      changeTopicsOf(
        [
          'cdc.us.app.users',
          'cdc.us-east.app.users',
          'cdc.eu._cdc._cdc_heartbeat',
          'cdc._dlq.apply.us',
          'cdc._positions.us',
          'other.us.app.users',
        ],
        'cdc',
        ['us', 'eu'],
      ),
    ).toEqual(['cdc.us.app.users', 'cdc.eu._cdc._cdc_heartbeat']);
  });

  it('keeps the governed topics of the regions too', () => {
    expect(
      changeTopicsOf(
        [
          'cdc-zone-eu.us.app.people',
          'cdc-masked-us.eu.app.people',
          'cdc-zone-eu.xx.app.people',
          'cdc-other.us.app.people',
        ],
        'cdc',
        ['us', 'eu'],
      ),
    ).toEqual(['cdc-zone-eu.us.app.people', 'cdc-masked-us.eu.app.people']);
  });
});
