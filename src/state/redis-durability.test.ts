import { Writable } from 'node:stream';

import { createLogger } from '../core/logger.js';
import { Secret } from '../core/secret.js';
import {
  RedisDurabilityWatch,
  assessRedisDurability,
  isLeaseKey,
  parseInfo,
  type RedisDurabilityFacts,
} from './redis-durability.js';

const DURABLE = {
  appendonly: 'yes',
  save: '',
  maxmemory: '0',
  'maxmemory-policy': 'noeviction',
};

function assess(facts: RedisDurabilityFacts): string[] {
  return assessRedisDurability({ keysWithTtl: [], ...facts }).map(
    (f) => `${f.severity}: ${f.problem}`,
  );
}

describe('assessRedisDurability', () => {
  it('finds nothing wrong with AOF and noeviction, or RDB and no memory limit', () => {
    expect(assess({ config: DURABLE })).toEqual([]);
    expect(
      assess({
        config: {
          ...DURABLE,
          appendonly: 'no',
          save: '3600 1 300 100',
          'maxmemory-policy': 'allkeys-lru',
        },
      }),
    ).toEqual([expect.stringMatching(/^advice: appendonly no \(RDB snapshots only\)/)]);
  });

  it('calls a server without AOF and RDB a risk, naming the fix', () => {
    expect(assess({ config: { ...DURABLE, appendonly: 'no' } })).toEqual([
      expect.stringMatching(/^risk: no persistence .*CONFIG SET appendonly yes/),
    ]);
  });

  it('calls allkeys eviction with a memory limit a risk, volatile eviction advice', () => {
    const allkeys = { ...DURABLE, maxmemory: '104857600', 'maxmemory-policy': 'allkeys-lfu' };
    expect(assess({ config: allkeys })).toEqual([
      expect.stringMatching(
        /^risk: maxmemory-policy allkeys-lfu with maxmemory 104857600: .*noeviction/,
      ),
    ]);
    const volatile = { ...allkeys, 'maxmemory-policy': 'volatile-ttl' };
    expect(assess({ config: volatile })).toEqual([
      expect.stringMatching(/^advice: maxmemory-policy volatile-ttl .*capture lease/),
    ]);
  });

  it('calls checkpoint keys with a TTL a risk whatever the policy', () => {
    expect(assess({ config: DURABLE, keysWithTtl: ['cdc:r1:capture'] })).toEqual([
      expect.stringMatching(/^risk: checkpoint keys carry a TTL .*cdc:r1:capture.*PERSIST/),
    ]);
    const volatile = { ...DURABLE, maxmemory: '1000', 'maxmemory-policy': 'volatile-lru' };
    expect(assess({ config: volatile, keysWithTtl: ['cdc:r1:capture'] })[0]).toMatch(
      /^risk: .*volatile-lru may evict them sooner/,
    );
  });

  it('reads INFO when CONFIG is refused, and says what it cannot verify', () => {
    const info =
      '# Persistence\r\naof_enabled:0\r\nrdb_changes_since_last_save:3\r\n' +
      '# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n';
    const configRefused = "ERR unknown command 'CONFIG', with args beginning with: 'GET' 'save'";
    expect(assess({ configRefused, info })).toEqual([
      expect.stringMatching(
        /^unverified: appendonly is off and the RDB schedule cannot be read \(CONFIG GET refused \(ERR unknown command 'CONFIG'/,
      ),
    ]);
    expect(assess({ configRefused, info: info.replace('aof_enabled:0', 'aof_enabled:1') })).toEqual(
      [],
    );
    expect(
      assess({ configRefused, infoRefused: 'NOPERM no permission', keysRefused: 'NOPERM scan' }),
    ).toEqual([
      expect.stringMatching(
        /^unverified: cannot verify persistence: ERR unknown command.*; NOPERM/,
      ),
      expect.stringMatching(/^unverified: cannot verify maxmemory-policy/),
      'unverified: cannot check checkpoint keys for a TTL: NOPERM scan',
    ]);
  });

  it('lists risks before the rest', () => {
    const findings = assessRedisDurability({
      config: {
        ...DURABLE,
        appendonly: 'no',
        save: '60 1',
        'maxmemory-policy': 'allkeys-lru',
        maxmemory: '5',
      },
      keysWithTtl: [],
    });
    expect(findings.map((f) => f.severity)).toEqual(['risk', 'advice']);
  });
});

describe('parseInfo and isLeaseKey', () => {
  it('parses INFO fields and skips section headers', () => {
    expect(parseInfo('# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n')).toEqual(
      new Map([
        ['maxmemory', '0'],
        ['maxmemory_policy', 'noeviction'],
      ]),
    );
  });

  it('tells leases (TTL by design) from their fencing counters and checkpoints', () => {
    expect(isLeaseKey('cdc:r1:', 'cdc:r1:lease:capture')).toBe(true);
    expect(isLeaseKey('cdc:r1', 'cdc:r1:lease:capture:fence')).toBe(false);
    expect(isLeaseKey('cdc:r1', 'cdc:r1:capture')).toBe(false);
  });
});

function logLines(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('RedisDurabilityWatch', () => {
  const target = { url: new Secret('redis://:pw@cache:6379'), keyPrefix: 'cdc:r1:' };

  /** A watch whose probe answers `facts` in turn (the last one from then on). */
  async function watchWith(
    policy: 'warn' | 'fatal',
    facts: RedisDurabilityFacts[],
  ): Promise<{
    watch: RedisDurabilityWatch;
    out: ReturnType<typeof logLines>;
    checked: (count: number) => Promise<void>;
  }> {
    const out = logLines();
    let probes = 0;
    const watch = await RedisDurabilityWatch.start({
      target,
      policy,
      logger: createLogger({ destination: out.stream }),
      recheckIntervalMs: 5,
      probe: () => {
        probes += 1;
        return Promise.resolve(facts[Math.min(probes, facts.length) - 1] as RedisDurabilityFacts);
      },
    });
    /** Resolves once `count` checks have completed (the one after it has started at most). */
    const checked = async (count: number): Promise<void> => {
      while (probes <= count) await new Promise((resolve) => setTimeout(resolve, 1));
    };
    return { watch, out, checked };
  }

  const unsafe: RedisDurabilityFacts = {
    config: { ...DURABLE, appendonly: 'no' },
    keysWithTtl: [],
  };
  const safe: RedisDurabilityFacts = { config: DURABLE, keysWithTtl: [] };

  it('under fatal, holds risks as readiness reasons until a re-check finds them fixed', async () => {
    const { watch, out, checked } = await watchWith('fatal', [unsafe, unsafe, safe]);
    try {
      expect(watch.reasons()).toEqual([
        expect.stringMatching(
          /^checkpoint store can lose checkpoints \(redis\.durability: fatal\): no persistence/,
        ),
      ]);
      await checked(3); // the second (same verdict) is not logged again
      expect(watch.reasons()).toEqual([]);
      const lines = out.lines();
      expect(lines.map((l) => [l.level, l.msg])).toEqual([
        [50, expect.stringMatching(/no persistence.*not ready while this lasts/)],
        [30, 'redis durability: no problem left'],
      ]);
      expect(JSON.stringify(lines)).not.toContain(':pw@');
    } finally {
      await watch.stop();
    }
  });

  it('under warn, logs a warning and stays ready', async () => {
    const { watch, out } = await watchWith('warn', [unsafe]);
    await watch.stop();
    expect(watch.reasons()).toEqual([]);
    expect(out.lines().map((l) => l.level)).toEqual([40]);
  });

  it('keeps the last verdict when Redis cannot be reached', async () => {
    const out = logLines();
    const watch = await RedisDurabilityWatch.start({
      target,
      policy: 'fatal',
      logger: createLogger({ destination: out.stream }),
      probe: () => Promise.reject(new Error('connect ECONNREFUSED')),
    });
    await watch.stop();
    expect(watch.reasons()).toEqual([]);
    expect(out.lines()).toEqual([]);
  });
});
