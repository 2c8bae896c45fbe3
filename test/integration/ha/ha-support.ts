/**
 * Helpers of the HA tests: what a daemon process says about its lease (from
 * its metrics endpoint and logs), and a poller that records every capture
 * checkpoint it sees so a test can prove the position never went backwards.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CAPTURE_CHECKPOINT_KEY } from '../../../src/capture/capture-stage.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import { CdcError } from '../../../src/core/errors.js';
import { createCheckpointStore } from '../../../src/state/index.js';
import { daemonOutput, tail, type DaemonProcess } from '../../support/daemon-process.js';
import { positionCovers } from '../../support/mariadb.js';

interface LogLine {
  msg?: string;
  [field: string]: unknown;
}

/** The daemon's JSON log lines with message `msg`, oldest first. */
export function logLines(daemon: DaemonProcess, msg: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of daemonOutput(daemon).split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const line = JSON.parse(text) as LogLine;
      if (line.msg === msg) lines.push(line);
    } catch {
      // stderr text or a line cut by a kill: not a log record
    }
  }
  return lines;
}

/** The port of the daemon's metrics endpoint (configured as 0, so read from its log). */
export function metricsPort(daemon: DaemonProcess): number {
  const port = logLines(daemon, 'daemon running')[0]?.metricsPort;
  if (typeof port !== 'number') {
    throw new Error(`daemon has not logged its metrics port:\n${tail(daemonOutput(daemon))}`);
  }
  return port;
}

/** `cdc_capture_leader{region}` as the daemon exports it (1 holder, 0 standby). */
export async function leaderGauge(daemon: DaemonProcess, region: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${metricsPort(daemon)}/metrics`);
  const text = await response.text();
  const match = new RegExp(`^cdc_capture_leader\\{region="${region}"\\} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`cdc_capture_leader{region="${region}"} not exported`);
  return Number(match[1]);
}

/** The fencing token the daemon logged with its last acquisition of the lease. */
export function lastToken(daemon: DaemonProcess): number | undefined {
  const token = logLines(daemon, 'capture lease acquired').at(-1)?.fenceToken;
  return typeof token === 'number' ? token : undefined;
}

/**
 * Polls the capture checkpoint every `intervalMs` until stopped and records
 * each distinct position, so a test can assert it only ever moved forward.
 */
export class CheckpointWatch {
  readonly positions: string[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(options: RuntimeOptions, intervalMs = 50) {
    this.#done = (async () => {
      const store = await createCheckpointStore(options.checkpointStore);
      try {
        while (this.#running) {
          try {
            const position = (await store.load(CAPTURE_CHECKPOINT_KEY))?.position;
            if (position !== undefined && position !== this.positions.at(-1))
              this.positions.push(position);
          } catch (err) {
            // Redis restarting under a test's feet is not what this watch checks.
            if (!(err instanceof CdcError && err.retriable)) throw err;
          }
          await sleep(intervalMs);
        }
      } finally {
        await store.close();
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }

  /** Each position next to the one before it that it does not cover: empty when monotonic. */
  regressions(): string[] {
    const problems: string[] = [];
    for (let i = 1; i < this.positions.length; i += 1) {
      const previous = this.positions[i - 1] as string;
      const current = this.positions[i] as string;
      if (!positionCovers(current, previous)) problems.push(`${previous} -> ${current}`);
    }
    return problems;
  }
}

/** Polls `check` every 50 ms; resolves with the elapsed ms once true, or fails after `timeoutMs`. */
export async function within(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}
