/**
 * `npm run bench [-- <scenario>...] [--quick | --scale F] [--cpu-prof]`:
 * runs the bench scenarios in bench/scenarios/ against services started by
 * the project's launcher and writes bench/results/<timestamp>.json, a
 * Markdown report (<timestamp>.md and latest.md) and SVG plots.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/core/logger.js';
import { KAFKA_VERSION } from '../src/sandbox/local/kafka-jars.js';
import { machineInfo, mariadbVersion, packageVersion } from './support/machine.js';
import { fileTimestamp, gitRevision, repoRoot } from './support/repo.js';
import { markdownReport, type RunFile } from './support/report.js';
import type { Scenario } from './support/scenario.js';
import { captureVsDebezium } from './scenarios/capture-vs-debezium/run.js';
import { applyVsNative } from './scenarios/apply-vs-native/run.js';
import { e2eLag } from './scenarios/e2e-lag/run.js';
import { conflicts } from './scenarios/conflicts/run.js';
import { backlogMemory } from './scenarios/backlog-memory/run.js';
import { governanceOverhead } from './scenarios/governance-overhead/run.js';

// Benchmarks run on local processes unless told otherwise: the docker
// sandbox (chosen automatically where an engine and images are present)
// adds container overhead and would make runs incomparable.
process.env['CDC_SANDBOX'] ??= 'local';

const SCENARIOS: Scenario[] = [
  captureVsDebezium,
  applyVsNative,
  e2eLag,
  conflicts,
  backlogMemory,
  governanceOverhead,
];

const USAGE = `npm run bench -- [scenario ...] [options]

  scenarios: ${SCENARIOS.map((s) => s.name).join(', ')} (default: all)
  --quick        scale 0.1 (env BENCH_SCALE overrides): a few minutes, for development
  --scale F      multiply row counts and durations by F (env BENCH_SCALE)
  --rows N       row changes of the scenarios that take a row count (governance-overhead),
                 instead of their load.json's count × scale
  --cpu-prof     run the daemons with node --cpu-prof; profiles go next to the results
  --keep         keep the scratch directory (configs, daemon logs) after the run
  --out DIR      results directory (default bench/results)`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean' },
      scale: { type: 'string' },
      rows: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      keep: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  const unknown = positionals.filter((p) => !SCENARIOS.some((s) => s.name === p));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}\n\n${USAGE}`);
  const selected =
    positionals.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => positionals.includes(s.name));
  const scaleText =
    values.scale ?? process.env.BENCH_SCALE ?? (values.quick === true ? '0.1' : '1');
  const scale = Number(scaleText);
  if (!(scale > 0 && scale <= 10))
    throw new Error(`--scale: "${scaleText}" is not a number in (0, 10]`);

  const rows = values.rows === undefined ? undefined : Number(values.rows);
  if (rows !== undefined && !(Number.isSafeInteger(rows) && rows >= 1000))
    throw new Error(`--rows: "${values.rows}" is not an integer ≥ 1000`);

  const root = repoRoot();
  const outDir = values.out ?? join(root, 'bench', 'results');
  const startedAt = new Date();
  const stamp = fileTimestamp(startedAt);
  const workRoot = mkdtempSync(join(tmpdir(), 'cdc-bench-'));
  const cpuProfDir = values['cpu-prof'] === true ? join(outDir, `${stamp}-cpuprofiles`) : undefined;
  const logger = createLogger({
    level: process.env.CDC_LOG_LEVEL ?? 'warn',
    destination: process.stderr,
    base: { bench: 'suite' },
  });
  const machine = machineInfo();
  const run: RunFile = {
    benchmark: 'suite',
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    scale,
    git: gitRevision(root),
    machine: {
      ...machine,
      mariadb: mariadbVersion(),
      kafka: KAFKA_VERSION,
      kafkajs: packageVersion(root, 'kafkajs'),
      zongji: packageVersion(root, '@vlasky/zongji'),
      mysql2: packageVersion(root, 'mysql2'),
    },
    scenarios: {},
  };
  mkdirSync(outDir, { recursive: true });
  const t0 = performance.now();
  const stampLog = (): string =>
    `${String(Math.round((performance.now() - t0) / 1000)).padStart(5)} s`;
  console.error(
    `[bench] ${selected.map((s) => s.name).join(', ')}; scale ${scale}; ${machine.nproc} cores, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; scratch ${workRoot}`,
  );
  const write = (): void => {
    run.finishedAt = new Date().toISOString();
    writeFileSync(join(outDir, `${stamp}.json`), `${JSON.stringify(run, null, 2)}\n`);
    const md = markdownReport(run, '');
    writeFileSync(join(outDir, `${stamp}.md`), md);
    copyFileSync(join(outDir, `${stamp}.md`), join(outDir, 'latest.md'));
  };
  let failed = 0;
  try {
    for (const scenario of selected) {
      const log = (message: string): void =>
        console.error(`[bench ${stampLog()}] ${scenario.name}: ${message}`);
      const started = performance.now();
      log(`start: ${scenario.title}`);
      const entry: RunFile['scenarios'][string] = {
        title: scenario.title,
        durationMs: 0,
        plots: [],
      };
      run.scenarios[scenario.name] = entry;
      try {
        const workDir = join(workRoot, scenario.name);
        mkdirSync(workDir, { recursive: true });
        const result = await scenario.run({
          root,
          scale,
          rows,
          workDir,
          scenarioDir: join(root, 'bench', 'scenarios', scenario.name),
          log,
          logger: logger.child({ scenario: scenario.name }),
          cpuProfDir,
        });
        entry.result = result;
        for (const plot of result.plots) {
          const file = `${stamp}-${scenario.name}-${plot.name}.svg`;
          writeFileSync(join(outDir, file), plot.svg);
          entry.plots.push(file);
        }
        // The SVG text lives in its own file; the JSON keeps the figures.
        result.plots = result.plots.map((p) => ({
          ...p,
          svg: `(see ${stamp}-${scenario.name}-${p.name}.svg)`,
        }));
        for (const t of result.targets)
          log(
            `target ${t.name}: wanted ${t.target}, measured ${t.actual}: ${t.pass ? 'pass' : 'MISS'}`,
          );
      } catch (err) {
        failed += 1;
        entry.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
        log(`FAILED: ${entry.error}`);
      }
      entry.durationMs = Math.round(performance.now() - started);
      log(`done in ${Math.round(entry.durationMs / 1000)} s`);
      write();
    }
  } finally {
    if (values.keep === true) console.error(`[bench] scratch kept in ${workRoot}`);
    else rmSync(workRoot, { recursive: true, force: true });
  }
  write();
  console.log(
    `\nresults: ${join(outDir, `${stamp}.json`)}\nreport:  ${join(outDir, `${stamp}.md`)} (and latest.md)`,
  );
  if (failed > 0) throw new Error(`${failed} scenario(s) failed`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
