import cliProgress from 'cli-progress';
import type { Logger } from '../core/logger.js';

/**
 * Progress of long per-table jobs (snapshot, verify): one bar per table with
 * count, rate and ETA on a terminal; a structured log line per table every
 * few seconds otherwise (a log shipper reads those, a bar would be noise).
 */
export interface ProgressView {
  /** A task: `total` is an estimate (InnoDB's row count is approximate); `done` is where it starts. */
  add(id: string, label: string, total: number, done?: number): void;
  update(id: string, done: number): void;
  finish(id: string, done: number): void;
  /** Final render / last log lines; the view is unusable afterwards. */
  stop(): void;
}

/** Rows per second over a sliding window, and the time left at that rate. */
export class RateMeter {
  readonly #samples: { t: number; done: number }[] = [];

  constructor(private readonly windowMs = 10_000) {}

  record(tMs: number, done: number): void {
    this.#samples.push({ t: tMs, done });
    // Samples older than the window go, but two always stay so there is a rate.
    while (this.#samples.length > 2 && (this.#samples[0]?.t ?? tMs) < tMs - this.windowMs)
      this.#samples.shift();
  }

  /** Units per second over the window; 0 until two samples span some time. */
  rate(): number {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (first === undefined || last === undefined || last.t <= first.t) return 0;
    return ((last.done - first.done) * 1000) / (last.t - first.t);
  }

  /** Seconds left to reach `total` at the current rate, or undefined when unknown. */
  etaSeconds(total: number): number | undefined {
    const last = this.#samples[this.#samples.length - 1];
    const rate = this.rate();
    if (last === undefined || rate <= 0) return undefined;
    return Math.max(0, total - last.done) / rate;
  }
}

/** `1h02m`, `3m05s`, `42s`; `?` when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

interface Task {
  label: string;
  total: number;
  done: number;
  finished: boolean;
  meter: RateMeter;
}

function taskFields(task: Task): Record<string, unknown> {
  // The estimate can be below the real count; never show more than 100 %.
  const total = Math.max(task.total, task.done);
  return {
    table: task.label,
    done: task.done,
    total,
    perSecond: Math.round(task.meter.rate()),
    eta: task.finished ? '0s' : formatDuration(task.meter.etaSeconds(total)),
  };
}

/** Log lines every `intervalMs` for unfinished tasks, and one when each finishes. */
export class LogProgress implements ProgressView {
  readonly #tasks = new Map<string, Task>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    intervalMs = 5_000,
  ) {
    this.#timer = setInterval(() => this.#log(), intervalMs);
    this.#timer.unref();
  }

  add(id: string, label: string, total: number, done = 0): void {
    const meter = new RateMeter();
    meter.record(Date.now(), done);
    this.#tasks.set(id, { label, total, done, finished: false, meter });
  }

  update(id: string, done: number): void {
    const task = this.#tasks.get(id);
    if (task === undefined) return;
    task.done = done;
    task.meter.record(Date.now(), done);
  }

  finish(id: string, done: number): void {
    const task = this.#tasks.get(id);
    if (task === undefined) return;
    this.update(id, done);
    task.finished = true;
    this.logger.info(taskFields(task), `${this.what} of table finished`);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #log(): void {
    for (const task of this.#tasks.values()) {
      if (!task.finished) this.logger.info(taskFields(task), `${this.what} progress`);
    }
  }
}

/** One bar per task on a terminal (stderr, so stdout keeps only results). */
export class BarProgress implements ProgressView {
  readonly #bars = new Map<string, { bar: cliProgress.SingleBar; task: Task }>();
  readonly #multi: cliProgress.MultiBar;

  constructor(
    private readonly unit: string,
    stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.#multi = new cliProgress.MultiBar(
      {
        format: `{label} |{bar}| {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {etaText}`,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        etaBuffer: 50,
        stream,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  add(id: string, label: string, total: number, done = 0): void {
    const meter = new RateMeter();
    meter.record(Date.now(), done);
    const task: Task = { label, total, done, finished: false, meter };
    const bar = this.#multi.create(Math.max(total, done, 1), done, this.#payload(task));
    this.#bars.set(id, { bar, task });
  }

  update(id: string, done: number): void {
    const entry = this.#bars.get(id);
    if (entry === undefined) return;
    entry.task.done = done;
    entry.task.meter.record(Date.now(), done);
    if (done > entry.task.total) {
      entry.task.total = done;
      entry.bar.setTotal(done);
    }
    entry.bar.update(done, this.#payload(entry.task));
  }

  finish(id: string, done: number): void {
    const entry = this.#bars.get(id);
    if (entry === undefined) return;
    entry.task.finished = true;
    entry.task.total = done;
    entry.bar.setTotal(Math.max(done, 1));
    this.update(id, done);
  }

  stop(): void {
    this.#multi.stop();
  }

  #payload(task: Task): Record<string, string> {
    const fields = taskFields(task);
    return {
      label: task.label.padEnd(24).slice(0, 40),
      rate: String(fields.perSecond),
      etaText: String(fields.eta),
    };
  }
}

/** Bars when stderr is a terminal, log lines otherwise. */
export function createProgressView(
  logger: Logger,
  what: string,
  unit: string,
  intervalMs?: number,
): ProgressView {
  return process.stderr.isTTY ? new BarProgress(unit) : new LogProgress(logger, what, intervalMs);
}
