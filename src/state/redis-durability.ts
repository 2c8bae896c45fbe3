/**
 * Whether the Redis holding checkpoints can lose them (issue 12): a server
 * without persistence forgets every key when it restarts, an evicting
 * `maxmemory-policy` may drop keys under memory pressure, and a key with a
 * TTL expires whatever the policy. The daemon checks at start and then every
 * minute, logs what it finds, and with `redis.durability: fatal` reports the
 * risks as `/readyz` reasons.
 *
 * What the server says is gathered by {@link probeRedisDurability}; what it
 * means is decided by the pure {@link assessRedisDurability}, unit-tested
 * without a server. A server that refuses CONFIG (renamed command, ACL) is
 * read through INFO instead, and what neither shows is reported as
 * unverified, never as a failure.
 */
import { Redis, ReplyError, type RedisOptions } from 'ioredis';

import type { Logger } from '../core/logger.js';
import type { Secret } from '../core/secret.js';
import { nodeTlsOptions, type TlsOptions } from '../core/tls.js';
import { normalizeKeyPrefix } from './checkpoint-codec.js';
import { errorMessage } from './error-text.js';
import { redactRedisUrl, redisUrlSecrets, scrubSecrets } from './redis-url.js';

/**
 * `warn` (default): log what can lose keys. `fatal`: also keep the daemon
 * not ready (`/readyz` names the problem) while it lasts. `ignore`: no check.
 */
export type RedisDurabilityPolicy = 'warn' | 'fatal' | 'ignore';

export const REDIS_DURABILITY_POLICIES: readonly RedisDurabilityPolicy[] = [
  'warn',
  'fatal',
  'ignore',
];

/** What the server told the probe; absent fields were not readable. */
export interface RedisDurabilityFacts {
  /** `CONFIG GET` values by parameter name, when CONFIG answered. */
  readonly config?: Readonly<Record<string, string>>;
  /** Why CONFIG GET was refused (unknown command, NOPERM), when it was. */
  readonly configRefused?: string;
  /** `INFO persistence` and `INFO memory` text, when INFO answered. */
  readonly info?: string;
  readonly infoRefused?: string;
  /** Keys under the region's prefix that carry a TTL although nothing should (leases aside). */
  readonly keysWithTtl?: readonly string[];
  /** Why the keys could not be listed (SCAN or PTTL refused), when they could not. */
  readonly keysRefused?: string;
}

/**
 * `risk`: the store can lose checkpoints (not ready under `fatal`).
 * `unverified`: could not be checked. `advice`: safe, but worth changing.
 */
export type DurabilitySeverity = 'risk' | 'unverified' | 'advice';

export interface DurabilityFinding {
  readonly severity: DurabilitySeverity;
  /** One sentence naming the setting, its effect and the fix. */
  readonly problem: string;
}

/** The settings that decide durability, from CONFIG or, failing that, INFO. */
interface Settings {
  aof: boolean | undefined;
  /** True when `save` schedules RDB snapshots; undefined when unknown (INFO does not show it). */
  rdb: boolean | undefined;
  /** 0 means no limit: nothing is ever evicted. */
  maxmemoryBytes: number | undefined;
  policy: string | undefined;
}

/** `field:value` lines of an INFO reply. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

function integerOrUndefined(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]+$/.test(value)) return undefined;
  return Number(value);
}

function settingsOf(facts: RedisDurabilityFacts): Settings {
  const info = facts.info === undefined ? new Map<string, string>() : parseInfo(facts.info);
  const config = facts.config ?? {};
  const appendonly = config.appendonly ?? info.get('aof_enabled');
  const save = config.save;
  return {
    aof: appendonly === undefined ? undefined : appendonly === 'yes' || appendonly === '1',
    rdb: save === undefined ? undefined : save.trim() !== '',
    maxmemoryBytes: integerOrUndefined(config.maxmemory ?? info.get('maxmemory')),
    policy: config['maxmemory-policy'] ?? info.get('maxmemory_policy'),
  };
}

/**
 * What the facts mean for checkpoints, most serious first. Empty when the
 * server keeps every key: AOF or RDB persistence on, no eviction of keys the
 * store relies on, and no TTL on checkpoint keys.
 */
export function assessRedisDurability(facts: RedisDurabilityFacts): DurabilityFinding[] {
  const findings: DurabilityFinding[] = [];
  const { aof, rdb, maxmemoryBytes, policy } = settingsOf(facts);
  const refused = [facts.configRefused, facts.infoRefused].filter((r) => r !== undefined);
  const how = `CONFIG GET refused (${facts.configRefused ?? ''})`;

  if (aof === false && rdb === false) {
    findings.push({
      severity: 'risk',
      problem:
        'no persistence (appendonly no, save ""): a Redis restart loses every checkpoint and the fencing counter; ' +
        'turn on appendonly yes (CONFIG SET appendonly yes, and in redis.conf)',
    });
  } else if (aof === false && rdb === undefined) {
    findings.push({
      severity: 'unverified',
      problem: `appendonly is off and the RDB schedule cannot be read (${how}): without save points a Redis restart loses every checkpoint`,
    });
  } else if (aof === false && rdb === true) {
    findings.push({
      severity: 'advice',
      problem:
        'appendonly no (RDB snapshots only): a Redis restart loses checkpoints saved since the last snapshot, ' +
        'and capture then replays from an older position; appendonly yes avoids it',
    });
  } else if (aof === undefined) {
    findings.push({
      severity: 'unverified',
      problem: `cannot verify persistence: ${refused.join('; ') || 'neither CONFIG nor INFO shows it'}`,
    });
  }

  const evicts = maxmemoryBytes !== 0 && policy !== undefined && policy !== 'noeviction';
  const limit =
    maxmemoryBytes === undefined ? 'an unknown maxmemory' : `maxmemory ${maxmemoryBytes}`;
  if (evicts && policy.startsWith('allkeys-')) {
    findings.push({
      severity: 'risk',
      problem: `maxmemory-policy ${policy} with ${limit}: Redis may evict checkpoint keys under memory pressure; set maxmemory-policy noeviction`,
    });
  } else if (evicts && policy.startsWith('volatile-')) {
    findings.push({
      severity: 'advice',
      problem:
        `maxmemory-policy ${policy} with ${limit}: the capture lease (a key with a TTL) may be evicted under memory pressure, ` +
        'which hands capture over needlessly (fencing keeps checkpoints safe); noeviction avoids it',
    });
  } else if (policy === undefined) {
    findings.push({
      severity: 'unverified',
      problem: `cannot verify maxmemory-policy: ${refused.join('; ') || 'neither CONFIG nor INFO shows it'}`,
    });
  }

  const withTtl = facts.keysWithTtl ?? [];
  if (withTtl.length > 0) {
    const evictable =
      evicts && policy.startsWith('volatile-') ? `, and ${policy} may evict them sooner` : '';
    findings.push({
      severity: 'risk',
      problem: `checkpoint keys carry a TTL and will expire (${withTtl.join(', ')})${evictable}; remove it with PERSIST <key>`,
    });
  } else if (facts.keysRefused !== undefined) {
    findings.push({
      severity: 'unverified',
      problem: `cannot check checkpoint keys for a TTL: ${facts.keysRefused}`,
    });
  }
  const order: Record<DurabilitySeverity, number> = { risk: 0, unverified: 1, advice: 2 };
  return findings.sort((a, b) => order[a.severity] - order[b.severity]);
}

/**
 * True for keys that carry a TTL by design: leases, `<prefix>:lease:<name>`
 * (their fencing counters, `<prefix>:lease:<name>:fence`, must not).
 */
export function isLeaseKey(prefix: string, key: string): boolean {
  const leases = `${normalizeKeyPrefix(prefix)}:lease:`;
  return key.startsWith(leases) && !key.slice(leases.length).includes(':');
}

/** Where the probe connects: the checkpoint store's own settings. */
export interface RedisDurabilityTarget {
  readonly url: Secret;
  /** The region's key prefix (`cdc:us-east:`); only keys under it are looked at. */
  readonly keyPrefix: string;
  readonly tls?: TlsOptions | undefined;
}

const PROBE_TIMEOUT_MS = 3_000;
/** A region has a handful of keys; more than this under its prefix is not ours to scan. */
const MAX_SCANNED_KEYS = 1_000;
const CONFIG_PARAMETERS = ['appendonly', 'save', 'maxmemory', 'maxmemory-policy'] as const;

/** ioredis types its re-export of redis-errors' class as `any`. */
const RedisReplyError = ReplyError as unknown as abstract new (...args: never[]) => Error;

/**
 * Reads the facts over a short-lived connection of its own. A command the
 * server refuses (an error reply: unknown command, NOPERM) becomes a
 * `...Refused` fact; a transport failure rejects.
 */
export async function probeRedisDurability(
  target: RedisDurabilityTarget,
): Promise<RedisDurabilityFacts> {
  const url = target.url.reveal();
  const secrets = redisUrlSecrets(url);
  const options: RedisOptions & { disconnectTimeout: number } = {
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT_MS,
    commandTimeout: PROBE_TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    disconnectTimeout: 200,
    ...(target.tls === undefined ? {} : { tls: nodeTlsOptions(target.tls) }),
  };
  const client = new Redis(url, options);
  client.on('error', () => undefined); // failures surface through the commands below
  const refusal = (err: unknown): string => {
    if (err instanceof RedisReplyError) return scrubSecrets(errorMessage(err), secrets);
    throw new Error(`probing ${redactRedisUrl(url)}: ${scrubSecrets(errorMessage(err), secrets)}`, {
      cause: err,
    });
  };
  try {
    await client.connect();
    const facts: {
      config?: Record<string, string>;
      configRefused?: string;
      info?: string;
      infoRefused?: string;
      keysWithTtl?: string[];
      keysRefused?: string;
    } = {};
    try {
      const config: Record<string, string> = {};
      for (const name of CONFIG_PARAMETERS) {
        const reply: unknown = await client.call('CONFIG', 'GET', name);
        if (Array.isArray(reply) && typeof reply[1] === 'string') config[name] = reply[1];
      }
      facts.config = config;
    } catch (err) {
      facts.configRefused = refusal(err);
    }
    try {
      facts.info = `${await client.info('persistence')}\n${await client.info('memory')}`;
    } catch (err) {
      facts.infoRefused = refusal(err);
    }
    try {
      facts.keysWithTtl = await keysWithTtl(client, normalizeKeyPrefix(target.keyPrefix));
    } catch (err) {
      facts.keysRefused = refusal(err);
    }
    return facts;
  } finally {
    client.disconnect();
  }
}

async function keysWithTtl(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  let scanned = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 100);
    cursor = next;
    for (const key of keys) {
      scanned += 1;
      if (isLeaseKey(prefix, key)) continue;
      if ((await client.pttl(key)) >= 0) found.push(key);
    }
  } while (cursor !== '0' && scanned < MAX_SCANNED_KEYS);
  return found.sort();
}

/** Options of {@link RedisDurabilityWatch.start}. */
export interface RedisDurabilityWatchOptions {
  readonly target: RedisDurabilityTarget;
  readonly policy: RedisDurabilityPolicy;
  readonly logger: Logger;
  /** How often the check repeats after the first, so a fix (or a regression) shows without a restart. Default 60 s. */
  readonly recheckIntervalMs?: number;
  /** For tests: where the facts come from. Default {@link probeRedisDurability}. */
  readonly probe?: (target: RedisDurabilityTarget) => Promise<RedisDurabilityFacts>;
}

const DEFAULT_RECHECK_INTERVAL_MS = 60_000;

/**
 * Checks the checkpoint store's Redis at start and then periodically, logs
 * each change of verdict once (an error under `fatal`, else a warning), and
 * under `fatal` holds the risks as readiness reasons.
 */
export class RedisDurabilityWatch {
  #reasons: string[] = [];
  #lastLogged = '';
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  readonly #where: string;

  private constructor(private readonly options: RedisDurabilityWatchOptions) {
    this.#where = `redis checkpoint store ${redactRedisUrl(options.target.url.reveal())}`;
  }

  /** Runs the first check (resolved once it is done; it never rejects) and schedules the next ones. */
  static async start(options: RedisDurabilityWatchOptions): Promise<RedisDurabilityWatch> {
    const watch = new RedisDurabilityWatch(options);
    if (options.policy === 'ignore') return watch;
    await watch.#check();
    watch.#schedule();
    return watch;
  }

  /** `/readyz` reasons: the risks found by the last check under `fatal`, else none. */
  reasons(): string[] {
    return [...this.#reasons];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#check().finally(() => this.#schedule());
    }, this.options.recheckIntervalMs ?? DEFAULT_RECHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    const { target, policy, logger } = this.options;
    let findings: DurabilityFinding[];
    try {
      findings = assessRedisDurability(await (this.options.probe ?? probeRedisDurability)(target));
    } catch (err) {
      // Redis unreachable: the monitor's store probe reports that; keep the last verdict.
      logger.debug({ store: this.#where, err: errorMessage(err) }, 'redis durability check failed');
      return;
    }
    const risks = findings.filter((f) => f.severity === 'risk').map((f) => f.problem);
    this.#reasons =
      policy === 'fatal'
        ? risks.map((r) => `checkpoint store can lose checkpoints (redis.durability: fatal): ${r}`)
        : [];
    const problems = findings.map((f) => `${f.severity}: ${f.problem}`);
    const text = problems.join('\n');
    if (text === this.#lastLogged) return;
    const hadProblems = this.#lastLogged !== '';
    this.#lastLogged = text;
    if (problems.length === 0) {
      if (hadProblems) logger.info({ store: this.#where }, 'redis durability: no problem left');
      return;
    }
    const fields = { store: this.#where, policy, problems };
    const summary = `redis checkpoint store: ${problems.join('; ')}`;
    if (policy === 'fatal' && risks.length > 0)
      logger.error(fields, `${summary} (not ready while this lasts: redis.durability is fatal)`);
    else logger.warn(fields, summary);
  }
}
