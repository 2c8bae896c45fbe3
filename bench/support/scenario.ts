import type { Logger } from '../../src/core/logger.js';

export interface ScenarioContext {
  root: string;
  /** Multiplies row counts and durations: 1 for the full run, e.g. 0.1 for `--quick`. */
  scale: number;
  /** `--rows N`: the row changes of scenarios that take a row count (instead of load.json × scale). */
  rows?: number;
  /** Where this scenario's files (configs, logs) go for the run. */
  workDir: string;
  /** Folder of the scenario's pipeline YAML, load profile and README. */
  scenarioDir: string;
  log: (message: string) => void;
  logger: Logger;
  /** Write a CPU profile of each measured daemon (node --cpu-prof) into this folder. */
  cpuProfDir: string | undefined;
}

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
  note?: string;
}

export interface Plot {
  /** File name suffix, e.g. `lag-5k`. */
  name: string;
  title: string;
  svg: string;
}

export interface TargetResult {
  name: string;
  target: string;
  actual: string;
  pass: boolean;
  note?: string;
}

export interface ScenarioResult {
  configuration: Record<string, unknown>;
  figures: Record<string, unknown>;
  tables: Table[];
  plots: Plot[];
  targets: TargetResult[];
  notes: string[];
}

export interface Scenario {
  name: string;
  title: string;
  run(context: ScenarioContext): Promise<ScenarioResult>;
}

/** A row count scaled for `--quick`, at least `min`. */
export function scaled(value: number, scale: number, min = 1000): number {
  return Math.max(min, Math.round(value * scale));
}

export function pct(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
