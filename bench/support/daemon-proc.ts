import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManagedProcess } from '../../src/sandbox/processes.js';
import { ProcSampler } from './proc.js';
import { parseProm, type PromSample } from './prom.js';

/**
 * The daemon the bench runs: its own build of the current sources in
 * dist-bench/daemon/dist (made by `npm run bench`), so that another `npm run build`
 * into dist/ while the bench runs cannot swap the program under it. Falls back
 * to dist/ when the bench was built without it.
 */
export function daemonCli(root: string): string {
  const own = join(root, 'dist-bench', 'daemon', 'dist', 'cli', 'main.js');
  return existsSync(own) ? own : join(root, 'dist', 'cli', 'main.js');
}

/**
 * The node flags of the CLI's shebang (`#!/usr/bin/env -S node <flags>`):
 * the daemon is measured with the runtime flags its installed `cdc-replicator`
 * bin (and the container image) run it with.
 */
export function daemonNodeFlags(cli: string): string[] {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\/usr\/bin\/env -S node\s+(.*)$/.exec(first);
  return match?.[1]?.trim().split(/\s+/) ?? [];
}

export interface DaemonProcOptions {
  root: string;
  configFile: string;
  region: string;
  metricsPort: number;
  logDir: string;
  env: NodeJS.ProcessEnv;
  /** Label for the log file name. */
  label: string;
  /** Node options before the script, e.g. `--cpu-prof` (not allowed in NODE_OPTIONS). */
  nodeArgs?: string[];
}

/**
 * `cdc-replicator run` as its own process (`node dist/cli/main.js run`), so
 * its RSS and CPU time are its own and read from /proc. Started through the
 * launcher's ManagedProcess, so it never outlives the bench.
 */
export class DaemonProc {
  readonly process: ManagedProcess;
  readonly logFile: string;
  sampler: ProcSampler | undefined;
  spawnedAt = 0;
  restarts = 0;
  readonly startFailures: string[] = [];

  constructor(readonly options: DaemonProcOptions) {
    this.logFile = join(options.logDir, `${options.label}.log`);
    this.process = new ManagedProcess({
      name: `daemon[${options.label}]`,
      command: process.execPath,
      args: [
        ...daemonNodeFlags(daemonCli(options.root)),
        ...(options.nodeArgs ?? []),
        daemonCli(options.root),
        'run',
        '--config',
        options.configFile,
        '--region',
        options.region,
        '--drain-timeout',
        '60000',
      ],
      logFile: this.logFile,
      marker: options.configFile,
      env: { ...process.env, CDC_LOG_LEVEL: 'info', ...options.env },
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  start(): void {
    mkdirSync(this.options.logDir, { recursive: true });
    this.spawnedAt = performance.now();
    this.process.start();
    this.sampler = new ProcSampler(() => this.process.pid);
  }

  output(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw err;
    }
  }

  #failure(): Error | undefined {
    if (this.process.running) return undefined;
    return new Error(
      `daemon ${this.options.label} exited (${this.process.exitDescription ?? 'unknown'}):\n${this.output().split('\n').slice(-30).join('\n')}`,
    );
  }

  /** Throws with the log tail if the process has died. */
  check(): void {
    const failure = this.#failure();
    if (failure !== undefined) throw failure;
  }

  /** Waits for the "daemon running" log line (capture streaming, apply subscribed). */
  async waitRunning(timeoutMs = 120_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.output().includes('"msg":"daemon running"')) return;
      this.check();
      if (performance.now() > deadline)
        throw new Error(`daemon ${this.options.label} not running after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  async metrics(): Promise<PromSample[]> {
    const response = await fetch(`http://127.0.0.1:${this.options.metricsPort}/metrics`);
    if (!response.ok) throw new Error(`metrics of ${this.options.label}: HTTP ${response.status}`);
    return parseProm(await response.text());
  }

  /**
   * Starts the process and waits until it runs. A failed start is retried
   * once and reported (`restarts`): daemons of several regions starting at
   * once used to race on each other's new topics (fixed: topics must have
   * leaders before the consumer subscribes), so a restart in a report is a
   * regression to look at.
   */
  async startAndWait(timeoutMs = 120_000): Promise<void> {
    this.start();
    try {
      await this.waitRunning(timeoutMs);
    } catch (err) {
      if (this.process.running || this.restarts > 0) throw err;
      this.restarts += 1;
      this.startFailures.push(this.output().split('\n').slice(-3).join('\n'));
      this.start();
      await this.waitRunning(timeoutMs);
    }
  }

  /** Metrics, or `undefined` while the server is not up yet. */
  async tryMetrics(): Promise<PromSample[] | undefined> {
    try {
      return await this.metrics();
    } catch (err) {
      this.check();
      if (err instanceof Error) return undefined;
      throw err;
    }
  }

  /** SIGTERM (drain), SIGKILL past the deadline; returns the peak RSS seen (MiB). */
  async stop(): Promise<void> {
    this.sampler?.sample();
    await this.process.stop(90_000);
    this.sampler?.stop();
  }
}

/** Polls `read` until it reaches `target`; fails after `stallMs` without progress or when `check` throws. */
export async function waitUntil(
  read: () => Promise<number>,
  target: number,
  what: string,
  options: {
    stallMs?: number;
    /** Fixed ms between polls, or a function of the ms since the wait began. */
    pollMs?: number | ((elapsedMs: number) => number);
    check?: () => void;
  } = {},
): Promise<void> {
  const stallMs = options.stallMs ?? 120_000;
  let seen = -1;
  const startedAt = performance.now();
  let progressAt = startedAt;
  for (;;) {
    options.check?.();
    const now = await read();
    if (now >= target) return;
    if (now > seen) {
      seen = now;
      progressAt = performance.now();
    } else if (performance.now() - progressAt > stallMs) {
      throw new Error(`${what} stalled at ${seen} of ${target}, no progress for ${stallMs} ms`);
    }
    const pollMs = options.pollMs ?? 50;
    await sleep(typeof pollMs === 'number' ? pollMs : pollMs(performance.now() - startedAt));
  }
}

/** Report lines for daemons whose start had to be retried. */
export function restartNotes(daemons: Iterable<DaemonProc>): string[] {
  return [...daemons]
    .filter((d) => d.restarts > 0)
    .map(
      (d) =>
        `daemon ${d.options.label} exited during start-up and was started again (a start-up race of concurrent daemons, not part of any figure): ${d.startFailures.join(' / ').slice(0, 400)}`,
    );
}
