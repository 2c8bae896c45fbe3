/**
 * What both store adapters must agree on: how keys are namespaced, what a
 * valid checkpoint and fencing token are, how a stored checkpoint is decoded,
 * and the fencing rule itself. Keeping it in one place is what lets one
 * conformance suite hold both adapters to the same behaviour.
 */
import { CdcError } from '../core/errors.js';
import { STATE_ERROR_CODES, type Checkpoint, type FenceToken } from './store.js';

/**
 * Removes one trailing `:` so that `cdc:us-east` and `cdc:us-east:` (the
 * config compiler's form) name the same namespace; an absent prefix is `''`.
 */
export function normalizeKeyPrefix(prefix: string | undefined): string {
  if (prefix === undefined) return '';
  return prefix.endsWith(':') ? prefix.slice(0, -1) : prefix;
}

/** `<prefix>:<key>`, or the bare key when the store has no prefix. */
export function namespacedKey(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}:${key}`;
}

function invalid(where: string, message: string): CdcError {
  return new CdcError(`${where}: ${message}`, {
    retriable: false,
    code: STATE_ERROR_CODES.invalidArgument,
  });
}

/**
 * Rejects keys that cannot name a checkpoint: empty, not a string at run
 * time, or holding lone UTF-16 surrogates (both adapters store keys as UTF-8,
 * where those all turn into U+FFFD, so two different keys would collide).
 */
export function assertValidKey(where: string, key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw invalid(where, `checkpoint key must be a non-empty string, got ${JSON.stringify(key)}`);
  }
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) {
    throw invalid(where, `checkpoint key ${JSON.stringify(key)} is not valid Unicode`);
  }
}

/** Rejects tokens that could not be compared exactly once stored (see {@link FenceToken}). */
export function assertValidFence(where: string, fence: FenceToken | undefined): void {
  if (fence === undefined) return;
  if (!Number.isSafeInteger(fence) || fence < 0) {
    throw invalid(where, `fencing token must be a non-negative safe integer, got ${String(fence)}`);
  }
}

/**
 * Checks a value read back from storage (or passed in by a caller that went
 * around the type system) and returns it as a fresh Checkpoint, or a reason
 * why it is not one. Fields it does not know are dropped rather than refused,
 * so a checkpoint written by a newer version still loads after a rollback.
 */
export function decodeCheckpoint(value: unknown): Checkpoint | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: 'checkpoint is not an object' };
  }
  const record = value as Record<string, unknown>;
  const { position, savedAtMs, meta } = record;
  if (typeof position !== 'string') return { problem: 'position is not a string' };
  if (typeof savedAtMs !== 'number' || !Number.isFinite(savedAtMs)) {
    return { problem: 'savedAtMs is not a finite number' };
  }
  if (meta === undefined) return { position, savedAtMs };
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    return { problem: 'meta is not an object' };
  }
  const entries = Object.entries(meta as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') return { problem: `meta.${k} is not a string` };
  }
  // fromEntries defines own properties, so a `__proto__` key stays plain data.
  return { position, savedAtMs, meta: Object.fromEntries(entries) as Record<string, string> };
}

/** Validates a checkpoint before it is saved, returning the copy that will be stored. */
export function checkedCheckpoint(where: string, checkpoint: Checkpoint): Checkpoint {
  const decoded = decodeCheckpoint(checkpoint);
  if ('problem' in decoded) throw invalid(where, `cannot save checkpoint: ${decoded.problem}`);
  return decoded;
}

/**
 * The fencing rule shared by both adapters (the Redis adapter runs the same
 * comparison inside its Lua script): with a recorded token, a save must carry
 * a token at least as high; without one, anything goes.
 */
export function isFencedOut(
  recorded: FenceToken | undefined,
  incoming: FenceToken | undefined,
): boolean {
  if (recorded === undefined) return false;
  return incoming === undefined || incoming < recorded;
}

/** The error a fenced-out save fails with. Never retriable: only a new lease can fix it. */
export function fencedError(
  where: string,
  key: string,
  incoming: FenceToken | undefined,
  recorded: FenceToken,
): CdcError {
  const offered =
    incoming === undefined ? 'without a fencing token' : `with fencing token ${incoming}`;
  return new CdcError(
    `${where}: save of ${key} ${offered} rejected: token ${recorded} is already recorded ` +
      '(another daemon has taken over this checkpoint)',
    { retriable: false, code: STATE_ERROR_CODES.fenced },
  );
}

/** The error for operations after `close()`. */
export function closedError(where: string, operation: string): CdcError {
  return new CdcError(`${where}: ${operation} after close()`, {
    retriable: false,
    code: STATE_ERROR_CODES.closed,
  });
}
