/**
 * The contract for daemon state that must survive restarts (DESIGN §1, §6):
 * binlog checkpoints now, the fencing side of leader leases later. Capture and
 * the HA lease code depend on this interface only; `redis-store.ts` and
 * `file-store.ts` are its adapters.
 */

/**
 * A saved capture position.
 *
 * `position` is opaque to the store: a MariaDB GTID position such as
 * `'1-101-42,2-102-7'` or a MySQL GTID set. It stays a string so the store
 * never has to understand (or mis-parse) either dialect.
 */
export interface Checkpoint {
  readonly position: string;
  /** Wall-clock time of the save, in milliseconds since the epoch (for lag and operators). */
  readonly savedAtMs: number;
  /** Small free-form annotations, e.g. the binlog file name for humans. */
  readonly meta?: Readonly<Record<string, string>>;
}

/**
 * A fencing token handed out with a leader lease: a non-negative safe
 * integer that grows with every takeover. A store remembers the highest token
 * it accepted per key and refuses saves carrying a lower one, so a daemon that
 * was paused (GC, VM freeze) while another took over cannot move the
 * checkpoint backwards when it wakes up.
 */
export type FenceToken = number;

/** Durable key → checkpoint map, namespaced by the store's key prefix. */
export interface CheckpointStore {
  /** Last saved checkpoint for key, or undefined. */
  load(key: string): Promise<Checkpoint | undefined>;
  /**
   * Saves atomically and durably; resolves only once the value would survive
   * a crash of this process.
   *
   * Fencing: a save whose `fence` is lower than the highest token recorded
   * for the key is rejected with a non-retriable `CdcError` of code
   * `FENCED`. Once a key has a recorded token, a save without any token is
   * rejected the same way: a writer that does not take part in leasing must
   * not overwrite one that does.
   */
  save(key: string, checkpoint: Checkpoint, fence?: FenceToken): Promise<void>;
  /** Waits for in-flight operations, then releases connections and handles. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * `CdcError.code` values raised by checkpoint stores. Callers branch on these
 * (and on `retriable`), never on message text.
 */
export const STATE_ERROR_CODES = {
  /** A save lost to a writer holding a newer fencing token. Never retriable. */
  fenced: 'FENCED',
  /** The backing service could not be reached in time. Retriable. */
  unavailable: 'STATE_UNAVAILABLE',
  /** Stored data that is not a checkpoint this code wrote. Never retriable: an operator must look. */
  corrupt: 'STATE_CORRUPT',
  /** The caller passed a key, checkpoint or token that cannot be stored. A bug in the caller. */
  invalidArgument: 'STATE_INVALID_ARGUMENT',
  /** The store was used after `close()`. */
  closed: 'STATE_CLOSED',
  /** A file-system operation failed. Retriable only for conditions that clear by themselves. */
  io: 'STATE_IO',
  /** Fewer Redis replicas than required acknowledged a save in time. Retriable. */
  replicationTimeout: 'STATE_REPLICATION_TIMEOUT',
} as const;

/**
 * One of {@link STATE_ERROR_CODES}, or `STATE_REDIS_<KIND>` for a Redis error
 * reply (`STATE_REDIS_WRONGPASS`, `STATE_REDIS_WRONGTYPE`, ...).
 */
export type StateErrorCode =
  (typeof STATE_ERROR_CODES)[keyof typeof STATE_ERROR_CODES] | `STATE_REDIS_${string}`;
