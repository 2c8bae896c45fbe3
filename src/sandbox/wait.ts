import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvironmentError } from '../core/errors.js';
import type { ManagedProcess } from './processes.js';

/** Last `lines` lines of a log file, for error messages. */
export function tailOf(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '(no log written)';
    throw err;
  }
}

/**
 * Polls `probe` until it resolves, failing fast if the process dies and
 * failing with the log tail when `timeoutMs` passes. A probe that throws means
 * "not ready yet".
 */
export async function waitUntilReady(
  what: string,
  process: ManagedProcess,
  probe: () => Promise<void>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (!process.running) {
      throw new EnvironmentError(
        `${what} exited during start-up (${process.exitDescription ?? 'unknown'}); log ${process.spec.logFile}:\n${tailOf(process.spec.logFile)}`,
      );
    }
    try {
      await probe();
      return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new EnvironmentError(
        `${what} did not answer within ${timeoutMs} ms; log ${process.spec.logFile}:\n${tailOf(process.spec.logFile)}`,
        { cause: lastError, retriable: true },
      );
    }
    await sleep(100);
  }
}
