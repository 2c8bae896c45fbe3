import { setTimeout as sleep } from 'node:timers/promises';
import type { CdcError } from './errors.js';
import { classifyError } from './retriable.js';

export interface RetryOptions {
  /** What is being attempted, for the error message. */
  what: string;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Checked after a retriable failure: false ends the retrying with that failure. */
  keepGoing?: () => boolean;
  /** Called before each wait, e.g. to log. */
  onRetry: (error: CdcError, delayMs: number, attempt: number) => void;
}

/**
 * Runs `operation` until it succeeds, waiting with exponential backoff
 * after each failure that `classifyError` calls retriable. A non-retriable
 * failure (or `keepGoing()` turning false) is thrown, classified.
 */
export async function retryRetriable<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  let delay = options.initialDelayMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await operation(attempt);
    } catch (err) {
      const error = classifyError(err, options.what);
      if (!error.retriable || options.keepGoing?.() === false) throw error;
      options.onRetry(error, delay, attempt);
      await sleep(delay);
      delay = Math.min(delay * 2, options.maxDelayMs);
    }
  }
}
