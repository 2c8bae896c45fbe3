import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`), the unit of CPU times in /proc. */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface ProcSample {
  /** CPU time (user + system, all threads) since the process started, ms. */
  cpuMs: number;
  /** Resident set size now, MiB. */
  rssMb: number;
  /** Peak resident set size (VmHWM: the kernel's own high-water mark), MiB. */
  peakRssMb: number;
}

/** CPU and memory of one process from /proc; `undefined` once it is gone. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => {
      const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
      return match === null ? 0 : Number(match[1]);
    };
    return { cpuMs, rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface TimePoint {
  /** Seconds since the sampler started. */
  t: number;
  rssMb: number;
  cpuPercent: number;
}

/**
 * Samples a process every `intervalMs`: RSS over time for the plots, and the
 * last VmHWM seen, so the peak is known even if the process has exited since.
 */
export class ProcSampler {
  readonly points: TimePoint[] = [];
  #timer: NodeJS.Timeout | undefined;
  #last: ProcSample | undefined;
  #lastAt = 0;
  readonly #startedAt = performance.now();
  peakRssMb = 0;

  constructor(
    private readonly pid: () => number | undefined,
    intervalMs = 250,
  ) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): ProcSample | undefined {
    const pid = this.pid();
    if (pid === undefined) return undefined;
    const s = procSample(pid);
    if (s === undefined) return undefined;
    const now = performance.now();
    const cpuPercent =
      this.#last === undefined
        ? 0
        : ((s.cpuMs - this.#last.cpuMs) / Math.max(1, now - this.#lastAt)) * 100;
    this.#last = s;
    this.#lastAt = now;
    this.peakRssMb = Math.max(this.peakRssMb, s.peakRssMb, s.rssMb);
    this.points.push({
      t: Math.round(now - this.#startedAt) / 1000,
      rssMb: Math.round(s.rssMb * 10) / 10,
      cpuPercent: Math.round(cpuPercent),
    });
    return s;
  }

  /** CPU ms of the last sample. */
  get cpuMs(): number {
    return this.#last?.cpuMs ?? 0;
  }

  stop(): void {
    this.sample();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** CPU ms (user + system, all threads) of a set of processes, summed; processes already gone count 0. */
export function cpuMsOf(pids: readonly number[]): number {
  return pids.reduce((total, pid) => total + (procSample(pid)?.cpuMs ?? 0), 0);
}

/**
 * A poll interval that grows with the time already waited: `elapsed / 100`
 * between `minMs` and `maxMs`. The end of a run is then seen within about 1 %
 * of its duration, and a long run is not observed more often than that
 * precision needs (each poll costs the observed process CPU).
 */
export function adaptivePollMs(elapsedMs: number, minMs: number, maxMs = 250): number {
  return Math.min(maxMs, Math.max(minMs, Math.round(elapsedMs / 100)));
}
