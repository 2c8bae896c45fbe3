/**
 * Leader leases with fencing tokens (DESIGN §6): several daemons may serve
 * one region, exactly one of them captures. The holder owns a Redis key with
 * a TTL and renews it; every acquisition increments a counter whose value is
 * the holder's fencing token, which the checkpoint store records so that a
 * holder that lost the lease (paused past its TTL) cannot move the checkpoint
 * backwards when it wakes up.
 *
 * Pure timing rules ({@link LeaseTerm}, {@link leaseTiming}, the reply
 * decoders) are separate from the Redis adapter so they can be unit-tested.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';

import { CdcError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { Secret } from '../core/secret.js';
import { nodeTlsOptions, type TlsOptions } from '../core/tls.js';
import { namespacedKey, normalizeKeyPrefix } from './checkpoint-codec.js';
import { errorMessage } from './error-text.js';
import { redactRedisUrl, redisUrlSecrets, scrubSecrets } from './redis-url.js';
import type { FenceToken } from './store.js';

/** `CdcError.code` of a capture that stopped because its lease is gone. */
export const LEASE_LOST = 'LEASE_LOST';

/** TTL and renewal period of a lease, validated. */
export interface LeaseTiming {
  readonly ttlMs: number;
  readonly renewIntervalMs: number;
}

/** Below this a TTL is shorter than one Redis round trip on a loaded machine plus scheduling jitter. */
export const MIN_LEASE_TTL_MS = 500;

/**
 * Resolves the renewal period (default a third of the TTL, so two renewals
 * may fail before the lease lapses) and checks that renewals come well
 * before expiry.
 *
 * @throws CdcError `LEASE_INVALID` for a TTL below {@link MIN_LEASE_TTL_MS}
 *   or a renewal period that is not below half the TTL.
 */
export function leaseTiming(ttlMs: number, renewIntervalMs?: number): LeaseTiming {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < MIN_LEASE_TTL_MS) {
    throw new CdcError(`lease ttlMs must be an integer of at least ${MIN_LEASE_TTL_MS}`, {
      code: 'LEASE_INVALID',
    });
  }
  const renew = renewIntervalMs ?? Math.floor(ttlMs / 3);
  if (!Number.isSafeInteger(renew) || renew <= 0 || renew * 2 > ttlMs) {
    throw new CdcError(
      `lease renewIntervalMs (${renew}) must be a positive integer of at most half of ttlMs (${ttlMs}): ` +
        'a single late renewal must not lose the lease',
      { code: 'LEASE_INVALID' },
    );
  }
  return { ttlMs, renewIntervalMs: renew };
}

/**
 * One tenure of a lease as the holder sees it, on a monotonic clock.
 *
 * Validity is counted from when a request was *sent*, not when its reply
 * came: Redis started the TTL on receipt, which is later, so the holder's
 * deadline is never after the key's expiry in Redis (clock rates being
 * equal). A standby can only take the key after that expiry, so the holder
 * always knows it lost the lease before anyone else can hold it.
 */
export class LeaseTerm {
  #validUntilMs: number;

  constructor(
    readonly token: FenceToken,
    readonly ttlMs: number,
    sentAtMs: number,
  ) {
    this.#validUntilMs = sentAtMs + ttlMs;
  }

  /** A renewal sent at `sentAtMs` succeeded. A late reply to an older request never shortens the term. */
  renewed(sentAtMs: number): void {
    this.#validUntilMs = Math.max(this.#validUntilMs, sentAtMs + this.ttlMs);
  }

  /** Whether the lease is certainly still ours at `nowMs`. */
  isHeld(nowMs: number): boolean {
    return nowMs < this.#validUntilMs;
  }

  /** Milliseconds until the term lapses without a renewal (0 when it already has). */
  remainingMs(nowMs: number): number {
    return Math.max(0, this.#validUntilMs - nowMs);
  }
}

/** What an acquisition attempt found. */
export type AcquireResult =
  | { readonly acquired: true; readonly token: FenceToken }
  | { readonly acquired: false; readonly holder: string; readonly remainingMs: number };

/** What a renewal found. */
export type RenewResult =
  { readonly renewed: true } | { readonly renewed: false; readonly holder: string };

/** `<owner> <token>`: the owner id never contains a space (see {@link defaultLeaseOwner}). */
function leaseValue(owner: string, token: FenceToken): string {
  return `${owner} ${token}`;
}

function badReply(what: string, reply: unknown): CdcError {
  return new CdcError(`unexpected reply to the lease ${what} script: ${JSON.stringify(reply)}`, {
    code: 'LEASE_CORRUPT',
  });
}

/** Decodes the acquire script's reply: `{1, token}` or `{0, holder value or false, pttl}`. */
export function decodeAcquireReply(reply: unknown): AcquireResult {
  if (!Array.isArray(reply)) throw badReply('acquire', reply);
  if (reply[0] === 1) {
    const token = Number(reply[1]);
    if (!Number.isSafeInteger(token) || token <= 0) throw badReply('acquire', reply);
    return { acquired: true, token };
  }
  if (reply[0] === 0) {
    const holder = typeof reply[1] === 'string' ? reply[1] : '(expired)';
    const pttl = Number(reply[2]);
    return { acquired: false, holder, remainingMs: Number.isFinite(pttl) && pttl > 0 ? pttl : 0 };
  }
  throw badReply('acquire', reply);
}

/** Decodes the renew script's reply: `{1}` or `{0, current value or false}`. */
export function decodeRenewReply(reply: unknown): RenewResult {
  if (Array.isArray(reply) && reply[0] === 1) return { renewed: true };
  if (Array.isArray(reply) && reply[0] === 0) {
    return { renewed: false, holder: typeof reply[1] === 'string' ? reply[1] : '(nobody)' };
  }
  throw badReply('renew', reply);
}

/**
 * The field of a checkpoint hash holding the highest token the store accepted
 * (the layout of redis-store.ts; the lease integration test checks they agree).
 */
const CHECKPOINT_FENCE_FIELD = 'fence';

/**
 * KEYS[1] lease key, KEYS[2] fencing counter, optional KEYS[3] a checkpoint
 * hash; ARGV[1] owner, ARGV[2] ttl ms.
 * SET NX and INCR in one script, so a token is handed out only with the
 * lease, and the value names the token so operators can see who holds what.
 * The token also exceeds the checkpoint's recorded fence: were the counter
 * lost (deleted by hand, or Redis restored without it), new tokens would
 * otherwise sit below the recorded one and every save would be refused.
 */
const ACQUIRE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
if #KEYS >= 3 then
  local floor = tonumber(redis.call('HGET', KEYS[3], '${CHECKPOINT_FENCE_FIELD}') or '0') or 0
  if token <= floor then
    token = floor + 1
    redis.call('SET', KEYS[2], token)
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return {1, token}
`;

/** KEYS[1] lease key; ARGV[1] expected value, ARGV[2] ttl ms. Extends only our own lease. */
const RENEW_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1}
end
return {0, current}
`;

/** KEYS[1] lease key; ARGV[1] expected value. Deletes only our own lease. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/** Options of {@link RedisLease.open}. */
export interface RedisLeaseOptions {
  readonly url: Secret;
  /** The region's key prefix, as the checkpoint store's (`cdc:us-east`). */
  readonly keyPrefix: string;
  /** What is leased, e.g. `capture`; keys are `<prefix>:lease:<name>` and `<prefix>:lease:<name>:fence`. */
  readonly name: string;
  readonly timing: LeaseTiming;
  /**
   * Key (in the same namespace) of the checkpoint the holder saves with its
   * token, e.g. `capture`: tokens are then always above the fence it recorded.
   */
  readonly fencedCheckpointKey?: string;
  /** TLS for `rediss://` (certificates from the configuration). */
  readonly tls?: TlsOptions | undefined;
  /** Identifies this daemon in the lease value; default host, pid and a random suffix. */
  readonly owner?: string;
  readonly logger?: Logger;
}

/** `host:pid:random`: readable by operators, unique across restarts of a process. */
export function defaultLeaseOwner(): string {
  return `${hostname().replace(/\s+/g, '_')}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/**
 * A lease in Redis. Stateless about who holds it: callers keep the
 * {@link LeaseTerm} and pass the token back to renew and release.
 *
 * Commands fail fast instead of queueing while disconnected (a queued renewal
 * arriving after the TTL would be meaningless), and each waits at most a
 * third of the TTL for its reply, so a holder sees a dead Redis in time to
 * stop before its term lapses.
 */
export class RedisLease {
  readonly #client: Redis;
  readonly #key: string;
  readonly #fenceKey: string;
  readonly #checkpointKey: string | undefined;
  readonly #secrets: readonly string[];
  readonly #timing: LeaseTiming;
  readonly #logger: Logger;
  readonly owner: string;
  /** Where the lease lives, password masked; safe to log. */
  readonly description: string;
  #closed = false;

  private constructor(options: RedisLeaseOptions) {
    const url = options.url.reveal();
    const prefix = normalizeKeyPrefix(options.keyPrefix);
    this.#key = namespacedKey(prefix, `lease:${options.name}`);
    this.#fenceKey = `${this.#key}:fence`;
    this.#checkpointKey =
      options.fencedCheckpointKey === undefined
        ? undefined
        : namespacedKey(prefix, options.fencedCheckpointKey);
    this.#secrets = redisUrlSecrets(url);
    this.#timing = options.timing;
    this.#logger = options.logger ?? silentLogger();
    this.owner = options.owner ?? defaultLeaseOwner();
    if (/\s/.test(this.owner)) {
      throw new CdcError('lease owner ids must not contain whitespace', { code: 'LEASE_INVALID' });
    }
    this.description = `redis lease ${this.#key} at ${redactRedisUrl(url)}`;
    const commandTimeoutMs = Math.max(100, Math.floor(options.timing.ttlMs / 3));
    const clientOptions: RedisOptions = {
      lazyConnect: true,
      connectTimeout: commandTimeoutMs,
      commandTimeout: commandTimeoutMs,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 1_000),
      ...(options.tls === undefined ? {} : { tls: nodeTlsOptions(options.tls) }),
    };
    this.#client = new Redis(url, clientOptions);
    this.#client.on('error', (err: unknown) => {
      this.#logger.debug({ lease: this.description, err: this.#text(err) }, 'lease redis error');
    });
  }

  /**
   * Creates the client and tries to connect within `waitMs`. Never fails for
   * an unreachable Redis: the caller's campaign retries, and the client keeps
   * reconnecting in the background.
   */
  static async open(options: RedisLeaseOptions, waitMs = 5_000): Promise<RedisLease> {
    const lease = new RedisLease(options);
    await lease.#waitReady(waitMs);
    return lease;
  }

  get key(): string {
    return this.#key;
  }

  /** Takes the lease if nobody holds it. */
  async tryAcquire(): Promise<AcquireResult> {
    const keys = [this.#key, this.#fenceKey];
    if (this.#checkpointKey !== undefined) keys.push(this.#checkpointKey);
    const reply = await this.#command('acquire', () =>
      this.#client.eval(
        ACQUIRE_SCRIPT,
        keys.length,
        ...keys,
        this.owner,
        String(this.#timing.ttlMs),
      ),
    );
    return decodeAcquireReply(reply);
  }

  /** Extends our lease by a TTL, or reports who holds it now. */
  async renew(token: FenceToken): Promise<RenewResult> {
    const reply = await this.#command('renew', () =>
      this.#client.eval(
        RENEW_SCRIPT,
        1,
        this.#key,
        leaseValue(this.owner, token),
        String(this.#timing.ttlMs),
      ),
    );
    return decodeRenewReply(reply);
  }

  /** Gives the lease up (only if still ours), so a standby need not wait for the TTL. */
  async release(token: FenceToken): Promise<boolean> {
    const reply = await this.#command('release', () =>
      this.#client.eval(RELEASE_SCRIPT, 1, this.#key, leaseValue(this.owner, token)),
    );
    return reply === 1;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#client.status !== 'ready') {
      this.#client.disconnect();
      return;
    }
    try {
      await this.#client.quit();
    } catch {
      // QUIT failing means the connection is already gone; nothing is left to release.
      this.#client.disconnect();
    }
  }

  async #waitReady(waitMs: number): Promise<void> {
    if (this.#client.status === 'wait') {
      this.#client.connect().catch((err: unknown) => {
        this.#logger.debug({ lease: this.description, err: this.#text(err) }, 'lease connect');
      });
    }
    const deadline = Date.now() + waitMs;
    while (this.#client.status !== 'ready' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #command(what: string, send: () => Promise<unknown>): Promise<unknown> {
    if (this.#closed) {
      throw new CdcError(`${this.description}: ${what} after close`, { code: 'LEASE_CLOSED' });
    }
    if (this.#client.status === 'wait' || this.#client.status === 'end') {
      this.#client.connect().catch(() => undefined); // the failure surfaces as this command's error
    }
    try {
      return await send();
    } catch (err) {
      // A transport failure or timeout: the caller retries within its term.
      throw new CdcError(`${this.description}: ${what} failed: ${this.#text(err)}`, {
        retriable: true,
        code: 'LEASE_UNAVAILABLE',
        cause: err,
      });
    }
  }

  #text(err: unknown): string {
    return scrubSecrets(errorMessage(err), this.#secrets);
  }
}
