import { Redis, ReplyError, type RedisOptions } from 'ioredis';

import { CdcError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import type { Secret } from '../core/secret.js';
import { nodeTlsOptions, type TlsOptions } from '../core/tls.js';
import {
  assertValidFence,
  assertValidKey,
  checkedCheckpoint,
  closedError,
  decodeCheckpoint,
  fencedError,
  namespacedKey,
  normalizeKeyPrefix,
} from './checkpoint-codec.js';
import { errorMessage, isError } from './error-text.js';
import { redactRedisUrl, redisUrlSecrets, scrubSecrets } from './redis-url.js';
import {
  STATE_ERROR_CODES,
  type Checkpoint,
  type CheckpointStore,
  type FenceToken,
} from './store.js';

/** Options of {@link RedisCheckpointStore.open}. */
export interface RedisCheckpointStoreOptions {
  /** `redis://` or `rediss://` URL; may carry a password, which is never printed. */
  readonly url: Secret;
  /** Namespace for keys (`<prefix>:<key>`), e.g. `cdc:us-east`; a trailing `:` is ignored. Required. */
  readonly keyPrefix: string;
  /**
   * How long an operation (and `open`) waits for a connection, counting
   * reconnect attempts, before failing with a retriable `STATE_UNAVAILABLE`.
   * Also the TCP connect timeout. Default 5000.
   */
  readonly connectTimeoutMs?: number;
  /** How long a command may wait for its reply once sent. Default 5000. */
  readonly commandTimeoutMs?: number;
  /**
   * Makes `save` resolve only after this many replicas acknowledged the write
   * (Redis `WAIT`), so a failover to one of them keeps the checkpoint.
   * `timeoutMs` must be below `commandTimeoutMs`. Default: no waiting.
   */
  readonly waitForReplicas?: { readonly replicas: number; readonly timeoutMs: number };
  /** Certificates for a `rediss://` url (which alone uses the system CAs). */
  readonly tls?: TlsOptions | undefined;
  readonly logger?: Logger;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;
const MAX_RECONNECT_DELAY_MS = 2_000;

/** Field names inside each checkpoint hash. */
const FIELD_CHECKPOINT = 'checkpoint';
const FIELD_FENCE = 'fence';

/**
 * The fenced save, atomic because Redis runs a script without interleaving
 * other commands. Same rule as `isFencedOut` in checkpoint-codec.ts.
 * Tokens are safe integers, which Lua's doubles compare exactly.
 * Sent with EVAL rather than EVALSHA: Redis caches it either way, and EVAL
 * needs no NOSCRIPT handling after a Redis restart empties the script cache.
 *
 * KEYS[1] the checkpoint hash; ARGV[1] checkpoint JSON; ARGV[2] token, '' for none.
 * Returns {1} when saved, {0, recorded_token} when fenced out.
 */
const SAVE_SCRIPT = `
local recorded = redis.call('HGET', KEYS[1], '${FIELD_FENCE}')
local incoming = ARGV[2]
if recorded and (incoming == '' or tonumber(incoming) < tonumber(recorded)) then
  return {0, recorded}
end
if incoming == '' then
  redis.call('HSET', KEYS[1], '${FIELD_CHECKPOINT}', ARGV[1])
else
  redis.call('HSET', KEYS[1], '${FIELD_CHECKPOINT}', ARGV[1], '${FIELD_FENCE}', incoming)
end
return {1}
`;

/**
 * Redis error replies start with an upper-case error kind (`WRONGTYPE ...`):
 * that word is the protocol's error code, the one thing in a reply meant for
 * machines. Kinds listed `true` clear up by themselves (server loading, a
 * failover in progress, memory freed); everything else needs a person.
 */
const REDIS_REPLY_KIND_RETRIABLE: Readonly<Record<string, boolean>> = {
  LOADING: true,
  BUSY: true,
  TRYAGAIN: true,
  CLUSTERDOWN: true,
  MASTERDOWN: true,
  READONLY: true,
  NOREPLICAS: true,
  OOM: true,
  NOAUTH: false,
  WRONGPASS: false,
  NOPERM: false,
  WRONGTYPE: false,
};

/** ioredis types its re-export of redis-errors' class as `any`. */
const RedisReplyError = ReplyError as unknown as abstract new (...args: never[]) => Error;

function replyKind(err: Error): string {
  return /^[A-Z]+/.exec(err.message)?.[0] ?? 'ERR';
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback;
  if (!Number.isSafeInteger(result) || result <= 0) {
    throw new CdcError(`redis checkpoint store: ${name} must be a positive integer`, {
      retriable: false,
      code: STATE_ERROR_CODES.invalidArgument,
    });
  }
  return result;
}

interface Pulse {
  readonly promise: Promise<void>;
  readonly fire: () => void;
}

function newPulse(): Pulse {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

async function waitAtMost(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checkpoints in Redis, for daemons that must survive the loss of their
 * machine and for HA pairs that hand a capture over through a lease.
 *
 * Layout: one hash per key at `<prefix>:<key>` with fields `checkpoint`
 * (JSON) and `fence` (highest fencing token accepted). A save is one Lua
 * script, so the fencing check and the write are atomic.
 *
 * Durability, in Redis terms. `save` resolves once Redis executed the script
 * and replied, so the value survives a crash of this daemon. Whether it
 * survives Redis itself depends on the server's persistence:
 * - `appendonly yes` (recommended): Redis writes the AOF (into the OS page
 *   cache) before it sends the reply, so a crash of the Redis process
 *   normally loses nothing; a crash of the Redis *machine* can lose the last
 *   second with `appendfsync everysec` (nothing with `appendfsync always`).
 * - RDB snapshots only, or no persistence: a Redis restart loses everything
 *   since the last snapshot. The daemon checks this (redis-durability.ts).
 * - Replication is asynchronous, so a failover can lose the newest writes;
 *   `waitForReplicas` closes that gap with `WAIT`. (`WAITAOF`, which also
 *   waits for the fsync, needs Redis 7.2+ and is not used.)
 * A lost save moves the checkpoint back, so capture replays events rather
 * than skipping any, which the applier absorbs (DESIGN §2).
 *
 * Failures. Nothing waits forever: operations wait at most
 * `connectTimeoutMs` for a connection and `commandTimeoutMs` for a reply,
 * then fail with a retriable `STATE_UNAVAILABLE`. The client keeps
 * reconnecting in the background (backoff up to 2 s), so the same store works
 * again once Redis is back. Commands are never queued while disconnected nor
 * re-sent after a reconnect: a save that timed out must not overwrite a newer
 * one the caller made since.
 */
export class RedisCheckpointStore implements CheckpointStore {
  readonly #client: Redis;
  readonly #prefix: string;
  readonly #where: string;
  readonly #secrets: readonly string[];
  readonly #logger: Logger;
  readonly #connectTimeoutMs: number;
  readonly #waitForReplicas: RedisCheckpointStoreOptions['waitForReplicas'];
  readonly #inflight = new Set<Promise<unknown>>();
  /** Fired on every connection state change, so waiters re-check without polling. */
  #statusChange = newPulse();
  #connected = false;
  /** Set when an established connection dropped, so its return is logged. */
  #lostConnection = false;
  /** The latest connection error since the last successful connect, for messages. */
  #lastError: unknown;
  #closing: Promise<void> | undefined;

  private constructor(options: RedisCheckpointStoreOptions) {
    const url = options.url.reveal();
    this.#prefix = normalizeKeyPrefix(options.keyPrefix);
    this.#where = `redis checkpoint store ${redactRedisUrl(url)} (prefix ${this.#prefix})`;
    this.#secrets = redisUrlSecrets(url);
    this.#logger = options.logger ?? silentLogger();
    this.#connectTimeoutMs = positiveInteger(
      'connectTimeoutMs',
      options.connectTimeoutMs,
      DEFAULT_CONNECT_TIMEOUT_MS,
    );
    const commandTimeoutMs = positiveInteger(
      'commandTimeoutMs',
      options.commandTimeoutMs,
      DEFAULT_COMMAND_TIMEOUT_MS,
    );
    if (this.#prefix === '') {
      throw this.#invalid('keyPrefix must not be empty: it is what keeps regions apart');
    }
    const wait = options.waitForReplicas;
    if (wait !== undefined) {
      positiveInteger('waitForReplicas.replicas', wait.replicas, 1);
      positiveInteger('waitForReplicas.timeoutMs', wait.timeoutMs, 1);
      if (wait.timeoutMs >= commandTimeoutMs) {
        throw this.#invalid('waitForReplicas.timeoutMs must be below commandTimeoutMs');
      }
    }
    this.#waitForReplicas = wait;

    const clientOptions: RedisOptions & { disconnectTimeout: number } = {
      lazyConnect: true,
      connectTimeout: this.#connectTimeoutMs,
      commandTimeout: commandTimeoutMs,
      // Fail instead of queueing: see "Failures" above.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      // Never give up reconnecting: the daemon outlives Redis restarts.
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), MAX_RECONNECT_DELAY_MS),
      // A READONLY reply means we are talking to a demoted primary; a new
      // connection follows DNS to the new one.
      reconnectOnError: (err) => err instanceof RedisReplyError && replyKind(err) === 'READONLY',
      // ioredis arms this timer on disconnect() even when the socket is already
      // gone, and it keeps the process alive that long after close(); it is a
      // real option, missing only from the type declarations.
      disconnectTimeout: 200,
      ...(options.tls === undefined ? {} : { tls: nodeTlsOptions(options.tls) }),
    };
    this.#client = new Redis(url, clientOptions);
    this.#client.on('error', (err: unknown) => {
      this.#lastError = err;
      this.#logger.debug({ store: this.#where, err: this.#text(err) }, 'redis connection error');
      this.#pulse(); // a refused handshake (bad password) should fail waiters now, not at their deadline
    });
    this.#client.on('ready', () => {
      if (this.#lostConnection) this.#logger.info({ store: this.#where }, 'reconnected to redis');
      this.#lostConnection = false;
      this.#connected = true;
      this.#lastError = undefined;
      this.#pulse();
    });
    this.#client.on('close', () => {
      if (this.#connected && this.#closing === undefined) {
        this.#logger.warn({ store: this.#where }, 'lost the connection to redis; reconnecting');
        this.#lostConnection = true;
      }
      this.#connected = false;
      this.#pulse();
    });
    this.#client.on('end', () => this.#pulse());
  }

  /**
   * Connects and resolves once Redis answers.
   *
   * @throws CdcError `STATE_UNAVAILABLE` (retriable) when Redis cannot be
   *   reached within `connectTimeoutMs`; `STATE_REDIS_<KIND>` (not retriable)
   *   when it refuses the connection, e.g. `STATE_REDIS_WRONGPASS`;
   *   `STATE_INVALID_ARGUMENT` for bad options.
   */
  static async open(options: RedisCheckpointStoreOptions): Promise<RedisCheckpointStore> {
    const store = new RedisCheckpointStore(options);
    try {
      await store.#awaitReady('open', undefined);
    } catch (err) {
      store.#client.disconnect();
      throw err;
    }
    return store;
  }

  /** Where this store points, with the password masked; safe to log. */
  get description(): string {
    return this.#where;
  }

  load(key: string): Promise<Checkpoint | undefined> {
    return this.#track('load', async () => {
      assertValidKey(this.#where, key);
      const fullKey = namespacedKey(this.#prefix, key);
      await this.#awaitReady('load', fullKey);
      const raw = await this.#command('load', fullKey, () =>
        this.#client.hget(fullKey, FIELD_CHECKPOINT),
      );
      if (raw === null) return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch (err) {
        throw this.#corrupt(fullKey, 'not valid JSON', err);
      }
      const decoded = decodeCheckpoint(parsed);
      if ('problem' in decoded) throw this.#corrupt(fullKey, decoded.problem);
      return decoded;
    });
  }

  save(key: string, checkpoint: Checkpoint, fence?: FenceToken): Promise<void> {
    return this.#track('save', async () => {
      assertValidKey(this.#where, key);
      assertValidFence(this.#where, fence);
      const value = checkedCheckpoint(this.#where, checkpoint);
      const fullKey = namespacedKey(this.#prefix, key);
      await this.#awaitReady('save', fullKey);
      const reply = await this.#command('save', fullKey, () =>
        this.#client.eval(
          SAVE_SCRIPT,
          1,
          fullKey,
          JSON.stringify(value),
          fence === undefined ? '' : String(fence),
        ),
      );
      const recorded = this.#fencedOutBy(fullKey, reply);
      if (recorded !== undefined) throw fencedError(this.#where, fullKey, fence, recorded);
      const wait = this.#waitForReplicas;
      if (wait === undefined) return;
      const acked = await this.#command('save', fullKey, () =>
        this.#client.wait(wait.replicas, wait.timeoutMs),
      );
      if (acked < wait.replicas) {
        throw new CdcError(
          `${this.#where}: saved ${fullKey} on the primary, but only ${acked} of ` +
            `${wait.replicas} replicas acknowledged it within ${wait.timeoutMs} ms`,
          { retriable: true, code: STATE_ERROR_CODES.replicationTimeout },
        );
      }
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#pulse(); // operations still waiting for a connection give up now
      await Promise.allSettled([...this.#inflight]);
      if (this.#client.status !== 'ready') {
        this.#client.disconnect();
        return;
      }
      try {
        await this.#client.quit();
      } catch (err) {
        this.#logger.debug({ store: this.#where, err: this.#text(err) }, 'redis QUIT failed');
        this.#client.disconnect();
      }
    })();
    return this.#closing;
  }

  #pulse(): void {
    const previous = this.#statusChange;
    this.#statusChange = newPulse();
    previous.fire();
  }

  #track<T>(operation: string, task: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(closedError(this.#where, operation));
    const promise = task();
    this.#inflight.add(promise);
    const forget = (): void => {
      this.#inflight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  /** Waits (boundedly) until the client is connected, starting a connection if none is under way. */
  async #awaitReady(operation: string, key: string | undefined): Promise<void> {
    const deadline = Date.now() + this.#connectTimeoutMs;
    while (this.#client.status !== 'ready') {
      if (this.#closing !== undefined) throw closedError(this.#where, operation);
      const refusal = this.#refusal(operation, key);
      if (refusal !== undefined) throw refusal;
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw this.#unavailable(operation, key);
      const { status } = this.#client;
      if (status === 'wait' || status === 'end') {
        this.#client.connect().catch((err: unknown) => {
          // The same failure also arrives as an 'error' event; keep it for the message.
          this.#lastError = err;
        });
      }
      await waitAtMost(this.#statusChange.promise, remainingMs);
    }
  }

  async #command<T>(operation: string, key: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      throw this.#classify(operation, key, err);
    }
  }

  /** The recorded token when the save script refused the write, else undefined. */
  #fencedOutBy(key: string, reply: unknown): FenceToken | undefined {
    if (Array.isArray(reply) && reply[0] === 1) return undefined;
    if (Array.isArray(reply) && reply[0] === 0) {
      const recorded = Number(reply[1]);
      if (Number.isSafeInteger(recorded)) return recorded;
    }
    throw this.#corrupt(key, `unexpected reply to the save script: ${JSON.stringify(reply)}`);
  }

  #classify(operation: string, key: string, err: unknown): CdcError {
    if (err instanceof CdcError) return err;
    if (err instanceof RedisReplyError) {
      const kind = replyKind(err);
      return new CdcError(`${this.#where}: ${operation} ${key}: redis replied ${this.#text(err)}`, {
        retriable: REDIS_REPLY_KIND_RETRIABLE[kind] ?? false,
        code: `STATE_REDIS_${kind}`,
        cause: err,
      });
    }
    if (isError(err) && !(err instanceof TypeError || err instanceof RangeError)) {
      // Not a reply from the server, so the transport failed (closed socket,
      // timeout, not writable). The command may or may not have run; saves
      // are idempotent, so retrying is safe.
      return new CdcError(`${this.#where}: ${operation} ${key} failed: ${this.#text(err)}`, {
        retriable: true,
        code: STATE_ERROR_CODES.unavailable,
        cause: err,
      });
    }
    return classifyError(err, `${this.#where}: ${operation} ${key}`);
  }

  /**
   * A connection the server refused for a reason waiting will not fix (bad
   * password, missing ACL permission), as a non-retriable error; otherwise undefined.
   */
  #refusal(operation: string, key: string | undefined): CdcError | undefined {
    const err = this.#lastError;
    if (!(err instanceof RedisReplyError)) return undefined;
    const kind = replyKind(err);
    if (REDIS_REPLY_KIND_RETRIABLE[kind] === true) return undefined;
    const target = key === undefined ? '' : ` ${key}`;
    return new CdcError(
      `${this.#where}: cannot ${operation}${target}: redis refused the connection: ${this.#text(err)}`,
      { retriable: false, code: `STATE_REDIS_${kind}`, cause: err },
    );
  }

  #unavailable(operation: string, key: string | undefined): CdcError {
    const target = key === undefined ? '' : ` ${key}`;
    const last =
      this.#lastError === undefined ? '' : ` (last error: ${this.#text(this.#lastError)})`;
    return new CdcError(
      `${this.#where}: cannot ${operation}${target}: redis not reachable within ` +
        `${this.#connectTimeoutMs} ms${last}`,
      { retriable: true, code: STATE_ERROR_CODES.unavailable, cause: this.#lastError },
    );
  }

  #corrupt(key: string, problem: string, cause?: unknown): CdcError {
    return new CdcError(
      `${this.#where}: checkpoint ${key} is corrupt (${problem}); ` +
        'repair or delete the key: the store will not guess a position',
      { retriable: false, code: STATE_ERROR_CODES.corrupt, cause },
    );
  }

  #invalid(message: string): CdcError {
    return new CdcError(`${this.#where}: ${message}`, {
      retriable: false,
      code: STATE_ERROR_CODES.invalidArgument,
    });
  }

  /** Error text from the client or server, with any credential from the URL masked. */
  #text(err: unknown): string {
    return scrubSecrets(errorMessage(err), this.#secrets);
  }
}
