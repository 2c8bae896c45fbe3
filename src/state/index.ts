/**
 * Durable daemon state (DESIGN §1): binlog checkpoints in Redis, or in local
 * files when a single node runs without Redis. The daemon builds its store
 * here from the compiled configuration and hands the `CheckpointStore`
 * interface to capture; nothing else imports the adapters.
 */
import type { Logger } from '../core/logger.js';
import type { Secret } from '../core/secret.js';
import type { TlsOptions } from '../core/tls.js';
import { FileCheckpointStore } from './file-store.js';
import { RedisDurabilityWatch, type RedisDurabilityPolicy } from './redis-durability.js';
import { RedisCheckpointStore, type RedisCheckpointStoreOptions } from './redis-store.js';
import type { CheckpointStore } from './store.js';

export type { Checkpoint, CheckpointStore, FenceToken, StateErrorCode } from './store.js';
export { STATE_ERROR_CODES } from './store.js';
export { FileCheckpointStore, checkpointFileName } from './file-store.js';
export type { FileCheckpointStoreOptions } from './file-store.js';
export { RedisCheckpointStore } from './redis-store.js';
export type { RedisCheckpointStoreOptions } from './redis-store.js';
export { redactRedisUrl } from './redis-url.js';
export { RedisDurabilityWatch, REDIS_DURABILITY_POLICIES } from './redis-durability.js';
export type { RedisDurabilityPolicy } from './redis-durability.js';

/**
 * Which store to use. Structurally the same as the config compiler's
 * checkpoint store options (so its output can be passed as is), plus optional
 * Redis tuning that the configuration file does not expose yet.
 */
export type CheckpointStoreOptions =
  | ({
      readonly kind: 'redis';
      readonly url: Secret;
      /** e.g. `cdc:us-east`; a trailing `:` is ignored. */
      readonly keyPrefix: string;
      /** Certificates for a `rediss://` url. */
      readonly tls?: TlsOptions | undefined;
      /** What to do about a Redis that can lose keys (see {@link watchCheckpointStoreDurability}); default `warn`. */
      readonly durability?: RedisDurabilityPolicy | undefined;
    } & Pick<
      RedisCheckpointStoreOptions,
      'connectTimeoutMs' | 'commandTimeoutMs' | 'waitForReplicas'
    >)
  | {
      readonly kind: 'file';
      /** One directory per region: daemons must not share one (see FileCheckpointStore). */
      readonly dir: string;
      readonly keyPrefix?: string;
    };

/** Things a store needs from its host that are not configuration. */
export interface CheckpointStoreContext {
  readonly logger?: Logger;
}

/**
 * Opens the configured store: for Redis, resolves once the server answers;
 * for files, once the directory exists.
 *
 * @throws CdcError `STATE_UNAVAILABLE` (retriable) when Redis cannot be
 *   reached in time, `STATE_REDIS_<KIND>` when it refuses the connection (bad
 *   password), `STATE_IO` when the directory cannot be created.
 */
export async function createCheckpointStore(
  options: CheckpointStoreOptions,
  context: CheckpointStoreContext = {},
): Promise<CheckpointStore> {
  switch (options.kind) {
    case 'redis':
      return RedisCheckpointStore.open({ ...options, logger: context.logger });
    case 'file':
      return FileCheckpointStore.open({ ...options, logger: context.logger });
  }
}

/**
 * Starts checking whether the store can lose checkpoints (a Redis without
 * persistence, evicting keys, or checkpoint keys with a TTL): resolves after
 * the first check, which never fails the caller. Undefined for the file store
 * and under `durability: ignore`, where there is nothing to watch.
 */
export async function watchCheckpointStoreDurability(
  options: CheckpointStoreOptions,
  context: Required<CheckpointStoreContext>,
): Promise<RedisDurabilityWatch | undefined> {
  if (options.kind !== 'redis' || options.durability === 'ignore') return undefined;
  return RedisDurabilityWatch.start({
    target: options,
    policy: options.durability ?? 'warn',
    logger: context.logger,
  });
}
