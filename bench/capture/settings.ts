import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** One capture configuration to measure: a name and the keys of its YAML `capture:` block. */
export interface Variant {
  name: string;
  captureYaml: string;
}

export interface Settings {
  rows: number;
  batchRows: number;
  runs: number;
  warmup: number;
  /** Measured in turn within every round, so a busy neighbour hits all of them alike. */
  variants: Variant[];
  cpuProfile: boolean;
  outDir: string;
}

export const USAGE = `npm run bench:capture -- [options]

  --rows N          rows in the backlog (env BENCH_ROWS, default 300000)
  --batch N         rows per multi-row INSERT (env BENCH_BATCH, default 500)
  --runs N          measured rounds; the median is reported (env BENCH_RUNS, default 3)
  --warmup N        unreported rounds first, for JIT and page cache (env BENCH_WARMUP, default 1)
  --compression L   comma list of capture codecs to compare (env BENCH_COMPRESSION, default none,gzip)
  --variant NAME=YAML
                    instead of --compression: a capture configuration to compare, repeatable,
                    e.g. --variant 'b500=batchMaxMessages: 500' --variant 'b2000=batchMaxMessages: 2000'
  --capture-options 'K: V, ...'
                    extra keys of every variant's capture block (env BENCH_CAPTURE_OPTIONS)
  --cpu-prof        after the measured rounds, profile one capture run per variant (not in the figures)
  --out DIR         where the JSON goes (default bench/results)`;

function usageError(message: string): Error {
  return new Error(`${message}\n\n${USAGE}`);
}

/** The command line (and BENCH_* environment), validated; `undefined` when only help was asked for. */
export function parseSettings(
  root: string,
  argv: string[] = process.argv.slice(2),
): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      batch: { type: 'string' },
      runs: { type: 'string' },
      warmup: { type: 'string' },
      compression: { type: 'string' },
      variant: { type: 'string', multiple: true },
      'capture-options': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const env = process.env;
  const int = (name: string, value: string | undefined, fallback: number, min: number): number => {
    if (value === undefined || value === '') return fallback;
    const n = Number(value.replace(/_/g, ''));
    if (!Number.isSafeInteger(n) || n < min)
      throw usageError(`--${name}: "${value}" is not an integer ≥ ${min}`);
    return n;
  };
  const extra = (values['capture-options'] ?? env.BENCH_CAPTURE_OPTIONS ?? '').trim();
  const withExtra = (yaml: string): string => (extra === '' ? yaml : `${yaml}, ${extra}`);

  let variants: Variant[];
  if (values.variant !== undefined && values.variant.length > 0) {
    if (values.compression !== undefined)
      throw usageError('--variant and --compression exclude each other');
    variants = values.variant.map((spec) => {
      const eq = spec.indexOf('=');
      const name = spec.slice(0, eq).trim();
      if (eq <= 0 || !/^[A-Za-z0-9_.-]+$/.test(name))
        throw usageError(`--variant: "${spec}" is not NAME=YAML with NAME of letters, digits, _.-`);
      return { name, captureYaml: withExtra(spec.slice(eq + 1).trim()) };
    });
  } else {
    const codecs = (values.compression ?? env.BENCH_COMPRESSION ?? 'none,gzip')
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c.length > 0);
    if (codecs.length === 0) throw usageError('--compression: no codec given');
    for (const codec of codecs)
      if (codec !== 'none' && codec !== 'gzip')
        throw usageError(`--compression: "${codec}" is not none or gzip`);
    variants = codecs.map((codec) => ({
      name: codec,
      captureYaml: withExtra(`compression: ${codec}`),
    }));
  }
  if (new Set(variants.map((v) => v.name)).size !== variants.length)
    throw usageError('variant names must differ');

  return {
    rows: int('rows', values.rows ?? env.BENCH_ROWS, 300_000, 1),
    batchRows: int('batch', values.batch ?? env.BENCH_BATCH, 500, 1),
    runs: int('runs', values.runs ?? env.BENCH_RUNS, 3, 1),
    warmup: int('warmup', values.warmup ?? env.BENCH_WARMUP, 1, 0),
    variants,
    cpuProfile: values['cpu-prof'] === true,
    outDir: values.out ?? join(root, 'bench', 'results'),
  };
}
