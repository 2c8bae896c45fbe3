import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/**
 * A V8 CPU profile of a section of this process (the same data as
 * `node --cpu-prof`, but only for the part being measured, so the setup,
 * the writer and the other measurements do not dilute it).
 */
export class SectionProfiler {
  readonly #session = new Session();

  async start(samplingIntervalUs = 200): Promise<void> {
    this.#session.connect();
    await this.#session.post('Profiler.enable');
    await this.#session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
    await this.#session.post('Profiler.start');
  }

  /** Stops, writes the `.cpuprofile` (open it in Chrome DevTools) and returns it. */
  async stop(file: string): Promise<CpuProfile> {
    const { profile } = await this.#session.post('Profiler.stop');
    await this.#session.post('Profiler.disable');
    this.#session.disconnect();
    writeFileSync(file, JSON.stringify(profile));
    return profile;
  }
}

export interface Hotspot {
  /** `function (file:line)` */
  name: string;
  /** Where it lives: `src/...`, a package name, `node:internal`, or a V8 pseudo-node. */
  owner: string;
  selfMs: number;
  selfPercent: number;
}

/** Where a script lives: its package and its path inside it, or our source path. */
function locate(url: string, root: string): { owner: string; file: string } {
  if (url === '') return { owner: '(native / V8)', file: '' };
  if (url.startsWith('node:')) return { owner: 'node:internal', file: url };
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = path.slice(modules + '/node_modules/'.length);
    const parts = rest.split('/');
    const owner =
      parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? rest);
    return { owner, file: rest };
  }
  // The bench runs from dist-bench/: name our files by their source path.
  const file = relative(root, path)
    .replace(/^dist-bench\//, '')
    .replace(/\.js$/, '.ts');
  return { owner: file, file };
}

/** Self time per function and per owner (file or package), largest first. */
export function hotspots(
  profile: CpuProfile,
  root: string,
): { functions: Hotspot[]; owners: Hotspot[]; totalMs: number } {
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i += 1) {
    const id = samples[i] as number;
    // Each delta is the time before its sample; attribute it to that sample.
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, deltas[i] ?? 0));
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, Hotspot>();
  const byOwner = new Map<string, Hotspot>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const { owner, file } = locate(url, root);
    const name =
      url === ''
        ? functionName || '(anonymous)'
        : `${functionName || '(anonymous)'} (${file}:${lineNumber + 1})`;
    for (const [map, key] of [
      [byFunction, name],
      [byOwner, owner],
    ] as const) {
      const entry = map.get(key) ?? { name: key, owner, selfMs: 0, selfPercent: 0 };
      entry.selfMs += us / 1000;
      map.set(key, entry);
    }
  }
  const finish = (map: Map<string, Hotspot>): Hotspot[] =>
    [...map.values()]
      .map((h) => ({
        ...h,
        selfMs: Math.round(h.selfMs),
        selfPercent: Math.round((h.selfMs * 1000 * 1000) / Math.max(1, totalUs)) / 10,
      }))
      .sort((a, b) => b.selfMs - a.selfMs);
  return {
    functions: finish(byFunction),
    owners: finish(byOwner),
    totalMs: Math.round(totalUs / 1000),
  };
}
