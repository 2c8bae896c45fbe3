import { setTimeout as sleep } from 'node:timers/promises';
import { CAPTURE_CHECKPOINT_KEY } from '../../src/capture/capture-stage.js';
import type { RuntimeOptions } from '../../src/config/compile.js';
import { createCheckpointStore } from '../../src/state/index.js';
import { daemonOutput, isRunning, tail, type DaemonProcess } from './daemon-process.js';
import { positionCovers } from './mariadb.js';

/** The capture checkpoint the region's daemon saved last, if any. */
export async function loadCaptureCheckpoint(options: RuntimeOptions): Promise<string | undefined> {
  const store = await createCheckpointStore(options.checkpointStore);
  try {
    return (await store.load(CAPTURE_CHECKPOINT_KEY))?.position;
  } finally {
    await store.close();
  }
}

/**
 * Waits until the saved capture checkpoint covers `target` (a binlog
 * position). Capture saves a checkpoint only after Kafka acknowledged every
 * change before it, so this is "everything up to target is in Kafka".
 * When `daemon` is given, fails at once (with its output) if it exits.
 */
export async function waitForCaptureCheckpoint(
  options: RuntimeOptions,
  target: string,
  { timeoutMs = 60_000, daemon }: { timeoutMs?: number; daemon?: DaemonProcess } = {},
): Promise<string> {
  const store = await createCheckpointStore(options.checkpointStore);
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  try {
    for (;;) {
      last = (await store.load(CAPTURE_CHECKPOINT_KEY))?.position;
      if (last !== undefined && positionCovers(last, target)) return last;
      if (daemon !== undefined && !isRunning(daemon)) {
        throw new Error(
          `daemon exited (${String(await daemon.exited)}) with the capture checkpoint at ${last ?? '(none)'}, ` +
            `short of ${target}:\n${tail(daemonOutput(daemon))}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `capture checkpoint ${last ?? '(none)'} did not reach ${target} within ${timeoutMs} ms`,
        );
      }
      await sleep(200);
    }
  } finally {
    await store.close();
  }
}
