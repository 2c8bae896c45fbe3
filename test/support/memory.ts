import { readFileSync } from 'node:fs';

/** Resident set size of a process in bytes (Linux `/proc`), or undefined once it is gone. */
export function residentBytes(pid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

export interface RssSampler {
  /** Highest RSS seen so far, in bytes. */
  readonly peakBytes: number;
  /** Every sample taken, in bytes, oldest first. */
  readonly samples: readonly number[];
  /** Stops sampling; returns the peak. */
  stop(): number;
}

/**
 * Samples a process's RSS every `intervalMs` (the first sample is taken at
 * once), so a test can assert a memory bound held over a whole phase.
 */
export function sampleRss(pid: number, intervalMs = 250): RssSampler {
  const samples: number[] = [];
  let peak = 0;
  const take = (): void => {
    const rss = residentBytes(pid);
    if (rss === undefined) return;
    samples.push(rss);
    peak = Math.max(peak, rss);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    get peakBytes() {
      return peak;
    },
    samples,
    stop() {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/** Bytes as MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
