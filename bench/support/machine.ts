import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { ticksPerSecond } from './proc.js';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryTotalMb: number;
  os: string;
  node: string;
  java: string | null;
  loadAverageAtStart: number[];
}

function javaVersion(): string | null {
  // `java -version` prints to stderr.
  const out = spawnSync('java', ['-version'], { encoding: 'utf8' });
  const text = `${out.stderr ?? ''}${out.stdout ?? ''}`.trim();
  return text === '' ? null : (text.split('\n')[0]?.trim() ?? null);
}

/** `mariadbd --version`, e.g. `mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu`. */
export function mariadbVersion(): string | null {
  const out = spawnSync('mariadbd', ['--version'], { encoding: 'utf8' });
  const match = /Ver\s+(\S+)/.exec(out.stdout ?? '');
  return match?.[1] ?? null;
}

export function machineInfo(): MachineInfo {
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryTotalMb: Math.round(totalmem() / 1024 / 1024),
    os: `${type()} ${release()}`,
    node: process.version,
    java: javaVersion(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** Version of an installed dependency, from its package.json. */
export function packageVersion(root: string, name: string): string | null {
  try {
    const pkg = JSON.parse(
      readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8'),
    ) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch (err) {
    if (err instanceof Error) return null;
    throw err;
  }
}

/** CPU time (user + system, all threads) a process has used, in ms; 0 when it is gone or not on Linux. */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / ticksPerSecond();
  } catch (err) {
    if (err instanceof Error) return 0;
    throw err;
  }
}

/** Busy CPU time of the whole machine (all cores), in ms; 0 when not on Linux. */
function machineBusyMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    // cpu user nice system idle iowait irq softirq steal ...
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    const ticks = [user, nice, system, irq, softirq, steal].reduce<number>(
      (t, v) => t + (v ?? 0),
      0,
    );
    return (ticks * 1000) / ticksPerSecond();
  } catch (err) {
    if (err instanceof Error) return 0;
    throw err;
  }
}

/**
 * CPU time used by this process, by named groups of child processes, and by
 * everything else on the machine (`other`: a busy neighbour makes a run slow,
 * and the results should say so) over an interval.
 */
export class CpuMeter {
  readonly #startSelf = process.cpuUsage();
  readonly #startGroups = new Map<string, number>();
  readonly #startMachine = machineBusyMs();

  constructor(private readonly groups: Readonly<Record<string, () => readonly number[]>>) {
    for (const [name, pids] of Object.entries(groups)) this.#startGroups.set(name, sumCpu(pids()));
  }

  /** CPU ms since construction: `bench` is this Node process, then the groups, then `other`. */
  read(): Record<string, number> {
    const self = process.cpuUsage(this.#startSelf);
    const out: Record<string, number> = { bench: Math.round((self.user + self.system) / 1000) };
    for (const [name, pids] of Object.entries(this.groups))
      out[name] = Math.round(sumCpu(pids()) - (this.#startGroups.get(name) ?? 0));
    const ours = Object.values(out).reduce((t, v) => t + v, 0);
    out.other = Math.max(0, Math.round(machineBusyMs() - this.#startMachine - ours));
    return out;
  }
}

function sumCpu(pids: readonly number[]): number {
  return pids.reduce((total, pid) => total + processCpuMs(pid), 0);
}
