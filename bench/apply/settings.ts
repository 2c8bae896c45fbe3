import { join } from 'node:path';
import { parseArgs } from 'node:util';

export interface Settings {
  rows: number;
  /** Rows per multi-row INSERT of the writer in region A and of the raw reference. */
  insertRows: number;
  /** `kafka.topics.partitions` values; each gets its own backlog (its own topics). */
  partitions: number[];
  /** `apply.batchMaxEvents` values. */
  batches: number[];
  /** `apply.partitionsConcurrently` values; `undefined` = the partition count of the run. */
  concurrency: number[] | undefined;
  /** Percent of the keys B writes concurrently before its apply starts, e.g. [0, 10]. */
  conflictPercents: number[];
  cpuProfile: boolean;
  outDir: string;
}

export const USAGE = `npm run bench:apply -- [options]

  --rows N              single-row changes in the backlog (env BENCH_ROWS, default 200000)
  --insert-rows N       rows per multi-row INSERT of the writer and of the raw reference (default 1000)
  --partitions L        comma list of kafka.topics.partitions to compare (default 3,6)
  --batch L             comma list of apply.batchMaxEvents to compare (default 1000)
  --concurrency L       comma list of apply.partitionsConcurrently (default: the partition count)
  --conflicts L         comma list of % of keys written concurrently in B (default 0,10)
  --cpu-prof            profile one extra apply run (first combination, no conflicts) in-process
  --out DIR             where the JSON goes (default bench/results)`;

function usageError(message: string): Error {
  return new Error(`${message}\n\n${USAGE}`);
}

function intList(name: string, value: string, min: number, max: number): number[] {
  const list = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0)
    .map((v) => Number(v.replace(/_/g, '')));
  if (list.length === 0 || list.some((n) => !Number.isSafeInteger(n) || n < min || n > max))
    throw usageError(`--${name}: "${value}" is not a list of integers in [${min}, ${max}]`);
  return [...new Set(list)];
}

/** The command line (and BENCH_ROWS), validated; `undefined` when only help was asked for. */
export function parseSettings(
  root: string,
  argv: string[] = process.argv.slice(2),
): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      'insert-rows': { type: 'string' },
      partitions: { type: 'string' },
      batch: { type: 'string' },
      concurrency: { type: 'string' },
      conflicts: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const one = (name: string, value: string | undefined, fallback: number): number =>
    value === undefined || value === '' ? fallback : (intList(name, value, 1, 1e9)[0] as number);
  return {
    rows: one('rows', values.rows ?? process.env.BENCH_ROWS, 200_000),
    insertRows: one('insert-rows', values['insert-rows'], 1000),
    partitions: intList('partitions', values.partitions ?? '3,6', 1, 64),
    batches: intList('batch', values.batch ?? '1000', 1, 50_000),
    concurrency:
      values.concurrency === undefined
        ? undefined
        : intList('concurrency', values.concurrency, 1, 64),
    conflictPercents: intList('conflicts', values.conflicts ?? '0,10', 0, 100),
    cpuProfile: values['cpu-prof'] === true,
    outDir: values.out ?? join(root, 'bench', 'results'),
  };
}
