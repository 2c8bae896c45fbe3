/**
 * bench/apply: how fast region B's apply stage drains a backlog of N
 * single-row changes that region A published, without conflicts and with a
 * share of keys written concurrently in B, against what MariaDB alone does
 * with the same rows (multi-row INSERTs into an unprepared table).
 *
 * Method: per partition count, A's daemon captures N rows written in A
 * (B's daemon is not running) and is stopped. Each apply run resets B's
 * table (optionally writes B's concurrent versions of a share of the keys),
 * deletes B's consumer group, starts B's daemon and times `start()` until
 * `cdc_events_applied_total` (source A, every result) reaches N. The raw
 * reference runs on B's server right before each apply run.
 *
 *   npm run bench:apply -- --rows 200000 --partitions 3,6 --batch 500,2000
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Admin } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { topicName } from '../../src/bus/envelope.js';
import { createKafka } from '../../src/bus/kafka.js';
import { compileRegion, type RuntimeOptions } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger, type Logger } from '../../src/core/logger.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { connectMysql, type MysqlConnection } from '../../src/mysql/connection.js';
import { INTERNAL_TABLES } from '../../src/mysql/internal-tables.js';
import { serverInfo } from '../../src/mysql/introspect.js';
import { applyPrepare, planPrepare } from '../../src/prepare/prepare.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { KAFKA_VERSION } from '../../src/sandbox/local/kafka-jars.js';
import { hotspots, SectionProfiler, type Hotspot } from '../support/cpu-profile.js';
import { highWatermark } from '../support/kafka.js';
import { CpuMeter, machineInfo, packageVersion } from '../support/machine.js';
import { fileTimestamp, gitRevision, repoRoot } from '../support/repo.js';
import { formatInt } from '../support/stats.js';
import { parseSettings, USAGE } from './settings.js';
import { COLUMNS, insertStatements, range, runStatements, tableDdl } from '../support/workload.js';

// Benchmarks run on local processes unless told otherwise: the docker
// sandbox (chosen automatically where an engine and images are present)
// adds container overhead and would make runs incomparable.
process.env['CDC_SANDBOX'] ??= 'local';

const A = 'a';
const B = 'b';
const TABLE = 'orders';
const RAW_SCHEMA = 'bench_apply_raw';
const POLL_MS = 10;
const STALL_TIMEOUT_MS = 120_000;
/** A's rows and B's concurrent versions of the conflicting keys differ: different seeds. */
const SEED_A = 42;
const SEED_B = 7;
export const TARGET_ROWS_PER_SEC = 15_000;

const log = (message: string): void => console.error(`[bench:apply] ${message}`);

interface RunShape {
  partitions: number;
  batchMaxEvents: number;
  partitionsConcurrently: number;
}

/** The YAML a user would write for the sandbox's two regions and this run's tuning. */
function configYaml(
  sandbox: Sandbox,
  shape: RunShape,
  prefix: string,
  schema: string,
  stateDir: string,
): string {
  const regions = sandbox.mysql
    .map(
      (m) =>
        `  ${m.region}:\n    mysql: { host: ${m.host}, port: ${m.port}, user: ${m.user}, password: "${m.password}" }\n    metrics: { port: 0 }`,
    )
    .join('\n');
  const brokers = (sandbox.kafka?.brokers ?? []).map((b) => `"${b}"`).join(', ');
  return [
    `regions:\n${regions}`,
    `kafka: { brokers: [${brokers}], topicPrefix: ${prefix}, topics: { partitions: ${shape.partitions} } }`,
    `stateDir: "${stateDir}"`,
    `pipelines:\n  - name: app\n    tables: ["${schema}.${TABLE}"]`,
    `apply: { batchMaxEvents: ${shape.batchMaxEvents}, partitionsConcurrently: ${shape.partitionsConcurrently} }`,
  ].join('\n');
}

function regionOptions(yaml: string, region: string): RuntimeOptions {
  return compileRegion(parseConfig(yaml, { env: {} }), region);
}

/** What the bench reads of a prom-client counter. */
interface Counter {
  get(): Promise<{
    values: readonly { labels: Partial<Record<string, string | number>>; value: number }[];
  }>;
}

async function counterSum(
  counter: Counter,
  match: (labels: Record<string, string | number | undefined>) => boolean,
): Promise<{ total: number; by: Record<string, number> }> {
  const metric = await counter.get();
  const by: Record<string, number> = {};
  let total = 0;
  for (const v of metric.values) {
    if (!match(v.labels)) continue;
    total += v.value;
    const key = String(v.labels.result ?? v.labels.resolution ?? '');
    by[key] = (by[key] ?? 0) + v.value;
  }
  return { total, by };
}

/** Rows and an order-independent checksum of a table's visible columns, optionally over some ids only. */
async function checksum(
  connection: MysqlConnection,
  table: string,
  where: string,
): Promise<{ rows: number; crc: string }> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COUNT(*) AS n, CAST(COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', ${COLUMNS}))), 0) AS CHAR) AS x FROM ${table} WHERE ${where}`,
  );
  return { rows: Number(rows[0]?.n ?? 0), crc: String(rows[0]?.x ?? '') };
}

/** Polls `read` until it reaches `target`; fails after `STALL_TIMEOUT_MS` without progress or on a daemon failure. */
async function waitCount(
  read: () => Promise<number>,
  target: number,
  what: string,
  failed: () => Error | undefined,
  onFirst?: () => void,
): Promise<void> {
  let seen = 0;
  let progressAt = performance.now();
  for (;;) {
    const now = await read();
    if (now > 0 && seen === 0) onFirst?.();
    if (now >= target) return;
    const failure = failed();
    if (failure !== undefined) throw failure;
    if (now > seen) {
      seen = now;
      progressAt = performance.now();
    } else if (performance.now() - progressAt > STALL_TIMEOUT_MS) {
      throw new Error(
        `${what} stalled at ${seen} of ${target}, no progress for ${STALL_TIMEOUT_MS} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function startDaemon(
  options: RuntimeOptions,
  logger: Logger,
): { daemon: Daemon; failure: () => Error | undefined } {
  const daemon = new Daemon({ options, logger, drainTimeoutMs: 120_000 });
  let failure: Error | undefined;
  void daemon.failed.then((error) => (failure = error));
  return { daemon, failure: () => failure };
}

interface RunRecord extends RunShape {
  conflictPercent: number;
  rows: number;
  /** `Daemon.start()` → N-th applied event. */
  elapsedMs: number;
  startMs: number;
  /** First applied event → N-th: the steady-state part, without start-up and group join. */
  drainMs: number;
  rowsPerSec: number;
  drainRowsPerSec: number;
  raw: { insertRows: number; elapsedMs: number; rowsPerSec: number };
  applyOverRaw: number;
  outcomes: Record<string, number>;
  conflicts: Record<string, number>;
  conflictsTotal: number;
  conflictKeys: number;
  /** CPU ms while the apply run lasted: bench (B's daemon, in this process), kafka, mariadb (B), other. */
  cpuMs: Record<string, number>;
  loadAverage: number[];
  check: { pass: boolean; detail: string };
}

interface ProfileSummary {
  file: string;
  owners: Hotspot[];
  functions: Hotspot[];
}

async function main(): Promise<void> {
  const root = repoRoot();
  const settings = parseSettings(root);
  if (settings === undefined) {
    console.log(USAGE);
    return;
  }
  const startedAt = new Date();
  const machine = machineInfo();
  const logger = createLogger({
    level: process.env.CDC_LOG_LEVEL ?? 'warn',
    destination: process.stderr,
    base: { bench: 'apply' },
  });
  const N = settings.rows;
  log(
    `${N} rows; partitions ${settings.partitions.join(',')}; batchMaxEvents ${settings.batches.join(',')}; ` +
      `concurrency ${settings.concurrency?.join(',') ?? '= partitions'}; conflicts ${settings.conflictPercents.join(',')} %; load ${machine.loadAverageAtStart.join(' ')}`,
  );

  const records: RunRecord[] = [];
  const backlogs: Record<string, unknown>[] = [];
  const profiles: Record<string, ProfileSummary> = {};
  let mariadbVersion = '';
  let sandbox: Sandbox | undefined;
  const daemons: Daemon[] = [];
  const connections: MysqlConnection[] = [];
  let admin: Admin | undefined;
  try {
    sandbox = await startSandbox({ regions: [A, B], kafka: true, redis: false, log });
    const sb = sandbox;
    const meter = (): CpuMeter =>
      new CpuMeter({
        kafka: () => sb.services.kafka?.pids() ?? [],
        mariadb: () => sb.services.mysql[1]?.pids() ?? [],
        mariadbA: () => sb.services.mysql[0]?.pids() ?? [],
      });
    const idsA = range(1, N);
    const statementsA = insertStatements('SCHEMA', TABLE, idsA, settings.insertRows, SEED_A);
    const rawStatements = new Map<number, string[]>();
    const rawFor = (batch: number): string[] => {
      let list = rawStatements.get(batch);
      if (list === undefined) {
        list = insertStatements(RAW_SCHEMA, TABLE, idsA, batch, SEED_A);
        rawStatements.set(batch, list);
      }
      return list;
    };

    let admin0: Admin | undefined;
    for (const partitions of settings.partitions) {
      const schema = `bench_apply_p${partitions}`;
      const prefix = `bapply${partitions}`;
      const label = `${schema}.${TABLE}`;
      const shapeA: RunShape = {
        partitions,
        batchMaxEvents: 1000,
        partitionsConcurrently: partitions,
      };
      const optionsA = regionOptions(
        configYaml(sb, shapeA, prefix, schema, join(sb.dir, 'bench-state', `${prefix}-capture`)),
        A,
      );
      const connA = await connectMysql(optionsA.mysql);
      connections.push(connA);
      const connB = await connectMysql(
        regionOptions(configYaml(sb, shapeA, prefix, schema, sb.dir), B).mysql,
      );
      connections.push(connB);
      mariadbVersion = (await serverInfo(connB)).version;
      for (const [region, connection] of [
        [A, connA],
        [B, connB],
      ] as const) {
        await connection.query(`CREATE DATABASE \`${schema}\``);
        await connection.query(tableDdl(schema, TABLE));
        const options = regionOptions(configYaml(sb, shapeA, prefix, schema, sb.dir), region);
        await applyPrepare(
          connection,
          await planPrepare(connection, options, options.internalSchema),
        );
      }
      if (admin0 === undefined) {
        admin0 = createKafka(optionsA.kafka, logger).admin();
        await admin0.connect();
        admin = admin0;
      }

      // 1. The backlog: A's daemon captures N rows written in A; B's daemon is not running.
      log(`p=${partitions}: writing ${N} rows in A with A's daemon capturing`);
      const a = startDaemon(optionsA, logger.child({ region: A }));
      daemons.push(a.daemon);
      await a.daemon.start();
      const writeMs = await runStatements(
        connA,
        statementsA.map((s) => s.replace('`SCHEMA`', `\`${schema}\``)),
      );
      const captureStarted = performance.now();
      await waitCount(
        async () =>
          (await counterSum(a.daemon.metrics.eventsCapturedTotal, (l) => l.table === label)).total,
        N,
        'capture in A',
        a.failure,
      );
      const captureTailMs = performance.now() - captureStarted;
      await a.daemon.stop();
      const topic = topicName(prefix, A, schema, TABLE);
      const inKafka = await highWatermark(admin0, topic);
      // The captured counter moves only on Kafka's acknowledgement: N rows are there, in
      // N messages with envelope v1 or fewer with v2 (several rows per message).
      if (inKafka < 1) throw new Error(`no messages in ${topic}, expected ${N} rows`);
      backlogs.push({
        partitions,
        topic,
        messages: inKafka,
        writeMs: Math.round(writeMs),
        captureTailMs: Math.round(captureTailMs),
      });
      log(
        `p=${partitions}: ${inKafka} messages in ${topic} (written in ${Math.round(writeMs)} ms, captured ${Math.round(captureTailMs)} ms later)`,
      );

      const referenceA = new Map<number, { rows: number; crc: string }>();
      const referenceOf = async (pct: number): Promise<{ rows: number; crc: string }> => {
        let ref = referenceA.get(pct);
        if (ref === undefined) {
          ref = await checksum(connA, `\`${schema}\`.\`${TABLE}\``, `id % 100 >= ${pct}`);
          referenceA.set(pct, ref);
        }
        return ref;
      };

      // 2. Apply runs in B.
      const shapes: RunShape[] = [];
      for (const batchMaxEvents of settings.batches)
        for (const c of settings.concurrency ?? [partitions])
          shapes.push({ partitions, batchMaxEvents, partitionsConcurrently: c });
      let runId = 0;
      const applyRun = async (
        shape: RunShape,
        pct: number,
        profileFile?: string,
      ): Promise<void> => {
        runId += 1;
        // The raw reference, on B's server right before, with the apply chunk's row count per INSERT.
        await connB.query(`DROP DATABASE IF EXISTS \`${RAW_SCHEMA}\``);
        await connB.query(`CREATE DATABASE \`${RAW_SCHEMA}\``);
        await connB.query(tableDdl(RAW_SCHEMA, TABLE));
        const rawMs = await runStatements(connB, rawFor(shape.batchMaxEvents));
        await connB.query(`DROP DATABASE \`${RAW_SCHEMA}\``);

        // Reset B: empty table, no conflict records, a new consumer group, a new capture state.
        const target = `\`${schema}\`.\`${TABLE}\``;
        await connB.query(`TRUNCATE TABLE ${target}`);
        const internal = optionsA.internalSchema;
        await connB.query(`TRUNCATE TABLE \`${internal}\`.\`${INTERNAL_TABLES.conflicts}\``);
        await connB.query(`TRUNCATE TABLE \`${internal}\`.\`${INTERNAL_TABLES.tombstones}\``);
        const groupId = `${prefix}.apply.${B}`;
        await admin0?.deleteGroups([groupId]).catch(() => undefined); // absent before the first run
        const conflictIds = idsA.filter((id) => id % 100 < pct);
        if (conflictIds.length > 0)
          await runStatements(connB, insertStatements(schema, TABLE, conflictIds, 1000, SEED_B));

        const optionsB = regionOptions(
          configYaml(
            sb,
            shape,
            prefix,
            schema,
            join(sb.dir, 'bench-state', `${prefix}-b-${runId}`),
          ),
          B,
        );
        const b = startDaemon(optionsB, logger.child({ region: B }));
        daemons.push(b.daemon);
        const applied = async (): Promise<number> =>
          (
            await counterSum(
              b.daemon.metrics.eventsAppliedTotal,
              (l) => l.source_region === A && l.table === label,
            )
          ).total;
        const profiler = profileFile === undefined ? undefined : new SectionProfiler();
        await profiler?.start();
        const load = loadavg().map((l) => Math.round(l * 100) / 100);
        const cpu = meter();
        const started = performance.now();
        let firstAt = 0;
        await b.daemon.start();
        const startMs = performance.now() - started;
        await waitCount(applied, N, 'apply in B', b.failure, () => (firstAt = performance.now()));
        const elapsedMs = performance.now() - started;
        const cpuMs = cpu.read();
        if (profiler !== undefined && profileFile !== undefined) {
          const spots = hotspots(await profiler.stop(profileFile), root);
          profiles[`conflicts ${pct} %`] = {
            file: profileFile,
            owners: spots.owners.slice(0, 15),
            functions: spots.functions.slice(0, 30),
          };
        }
        await b.daemon.stop();
        const outcomes = await counterSum(
          b.daemon.metrics.eventsAppliedTotal,
          (l) => l.source_region === A && l.table === label,
        );
        const conflicts = await counterSum(
          b.daemon.metrics.conflictsTotal,
          (l) => l.table === label,
        );

        // Correctness: B equals A on every key B did not write; B holds its own, newer, versions of the others.
        const problems: string[] = [];
        const ref = await referenceOf(pct);
        const got = await checksum(connB, target, `id % 100 >= ${pct}`);
        if (got.rows !== ref.rows || got.crc !== ref.crc)
          problems.push(
            `non-conflicting keys differ: B ${got.rows} rows crc ${got.crc}, A ${ref.rows} rows crc ${ref.crc}`,
          );
        const conflicting = await checksum(connB, target, `id % 100 < ${pct}`);
        if (conflicting.rows !== conflictIds.length)
          problems.push(`B has ${conflicting.rows} of ${conflictIds.length} conflicting keys`);
        if (conflicts.total !== conflictIds.length)
          problems.push(`cdc_conflicts_total ${conflicts.total}, expected ${conflictIds.length}`);
        if (outcomes.total !== N) problems.push(`applied ${outcomes.total}, expected ${N}`);
        const check = { pass: problems.length === 0, detail: problems.join('; ') || 'ok' };

        const drainMs = elapsedMs - (firstAt - started);
        const rowsPerSec = (N * 1000) / elapsedMs;
        const rawRowsPerSec = (N * 1000) / rawMs;
        const record: RunRecord = {
          ...shape,
          conflictPercent: pct,
          rows: N,
          elapsedMs: Math.round(elapsedMs),
          startMs: Math.round(startMs),
          drainMs: Math.round(drainMs),
          rowsPerSec: Math.round(rowsPerSec),
          drainRowsPerSec: Math.round((N * 1000) / drainMs),
          raw: {
            insertRows: shape.batchMaxEvents,
            elapsedMs: Math.round(rawMs),
            rowsPerSec: Math.round(rawRowsPerSec),
          },
          applyOverRaw: Math.round((rowsPerSec / rawRowsPerSec) * 1000) / 1000,
          outcomes: outcomes.by,
          conflicts: conflicts.by,
          conflictsTotal: conflicts.total,
          conflictKeys: conflictIds.length,
          cpuMs,
          loadAverage: load,
          check,
        };
        log(
          `${profileFile !== undefined ? 'profiled ' : ''}p=${shape.partitions} c=${shape.partitionsConcurrently} batch=${shape.batchMaxEvents} conflicts=${pct}%: ` +
            `${formatInt(rowsPerSec)} rows/s (${record.elapsedMs} ms, start ${record.startMs} ms, drain ${formatInt(record.drainRowsPerSec)} rows/s), ` +
            `raw ${formatInt(rawRowsPerSec)} rows/s, ratio ${record.applyOverRaw}, check ${check.detail}`,
        );
        if (profileFile === undefined) records.push(record);
        else if (!check.pass) throw new Error(`profiled run failed its check: ${check.detail}`);
      };
      for (const shape of shapes)
        for (const pct of settings.conflictPercents) await applyRun(shape, pct);
      if (settings.cpuProfile && partitions === settings.partitions[0] && shapes[0] !== undefined) {
        mkdirSync(settings.outDir, { recursive: true });
        for (const pct of settings.conflictPercents)
          await applyRun(
            shapes[0],
            pct,
            join(settings.outDir, `apply-${fileTimestamp(startedAt)}-conflicts${pct}.cpuprofile`),
          );
      }
    }

    const headline =
      `apply bench: ${formatInt(N)} single-row changes (~200-byte rows) from A applied in B; ` +
      `${machine.nproc} cores, load ${machine.loadAverageAtStart.join(' ')} at start, node ${machine.node}, MariaDB ${mariadbVersion}, Kafka ${KAFKA_VERSION}`;
    console.log(formatReport(records, headline, profiles));

    const best = Math.max(
      ...records.filter((r) => r.conflictPercent === 0).map((r) => r.rowsPerSec),
    );
    const result = {
      benchmark: 'apply',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      git: gitRevision(root),
      machine: {
        ...machine,
        loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
        mariadb: mariadbVersion,
        kafka: KAFKA_VERSION,
        kafkajs: packageVersion(root, 'kafkajs'),
        mysql2: packageVersion(root, 'mysql2'),
      },
      configuration: {
        ...settings,
        table: tableDdl('s', TABLE).replace(/\s+/g, ' '),
        method:
          "per partition count, A's daemon captures N rows written in A (multi-row INSERTs, one change event per row) and stops; " +
          "each apply run truncates B's table, writes B's own versions of conflictPercent % of the keys (id % 100 < pct), deletes B's consumer group, " +
          "and times B's Daemon.start() until cdc_events_applied_total{source_region=a} reaches N; raw = the same N rows as multi-row INSERTs of batchMaxEvents rows " +
          "into an unprepared table on B's server, one connection, right before each apply run",
      },
      backlogs,
      runs: records,
      summary: {
        unit: 'rows/s',
        target: {
          rowsPerSec: TARGET_ROWS_PER_SEC,
          bestWithoutConflicts: best,
          pass: best >= TARGET_ROWS_PER_SEC,
        },
      },
      profiles,
    };
    mkdirSync(settings.outDir, { recursive: true });
    const file = join(settings.outDir, `apply-${fileTimestamp(startedAt)}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nresults: ${file}`);
    if (records.some((r) => !r.check.pass))
      throw new Error('a correctness check failed (see the table)');
  } finally {
    await Promise.allSettled(daemons.map((d) => d.stop()));
    await Promise.allSettled(connections.map((c) => c.end()));
    await admin?.disconnect().catch(() => undefined);
    await sandbox?.stop();
  }
}

function formatReport(
  records: readonly RunRecord[],
  headline: string,
  profiles: Readonly<Record<string, ProfileSummary>>,
): string {
  const header = [
    'partitions',
    'concurrently',
    'batchMaxEvents',
    'conflicts',
    'rows/s',
    'drain rows/s',
    'start ms',
    'raw rows/s',
    'apply/raw',
    'conflicts counted',
    'CPU% bench',
    'kafka',
    'mariadb',
    'other',
    'load1',
    'check',
  ];
  const pct = (r: RunRecord, name: string): string =>
    `${Math.round(((r.cpuMs[name] ?? 0) / r.elapsedMs) * 100)}`;
  const table: string[][] = [header];
  for (const r of records)
    table.push([
      `${r.partitions}`,
      `${r.partitionsConcurrently}`,
      `${r.batchMaxEvents}`,
      `${r.conflictPercent} %`,
      formatInt(r.rowsPerSec),
      formatInt(r.drainRowsPerSec),
      formatInt(r.startMs),
      formatInt(r.raw.rowsPerSec),
      `${(r.applyOverRaw * 100).toFixed(1)} %`,
      `${formatInt(r.conflictsTotal)} (${((r.conflictsTotal / r.rows) * 100).toFixed(1)} %)`,
      pct(r, 'bench'),
      pct(r, 'kafka'),
      pct(r, 'mariadb'),
      pct(r, 'other'),
      `${r.loadAverage[0] ?? ''}`,
      r.check.pass ? 'ok' : 'FAIL',
    ]);
  const widths = header.map((_, i) => Math.max(...table.map((cells) => (cells[i] ?? '').length)));
  const lines = ['', headline, ''];
  for (const cells of table)
    lines.push(cells.map((cell, i) => cell.padStart(widths[i] ?? 0)).join('  '));
  lines.push('');
  lines.push(
    "rows/s = N / (B's Daemon.start() → N-th applied event); drain = from the first applied event; raw = multi-row INSERTs of batchMaxEvents rows into an unprepared table, same server.",
  );
  lines.push(
    "CPU% = share of one core while the run lasted (bench = B's daemon; mariadb = B's server; other = the rest of the machine).",
  );
  const clean = records.filter((r) => r.conflictPercent === 0);
  const best = clean.reduce<RunRecord | undefined>(
    (b, r) => (b === undefined || r.rowsPerSec > b.rowsPerSec ? r : b),
    undefined,
  );
  if (best !== undefined)
    lines.push(
      `target ≥ ${formatInt(TARGET_ROWS_PER_SEC)} rows/s without conflicts: best ${formatInt(best.rowsPerSec)} ` +
        `(partitions ${best.partitions}, concurrently ${best.partitionsConcurrently}, batchMaxEvents ${best.batchMaxEvents}): ${best.rowsPerSec >= TARGET_ROWS_PER_SEC ? 'PASS' : 'MISS'}`,
    );
  for (const r of records)
    if (!r.check.pass)
      lines.push(
        `check failed (p=${r.partitions} batch=${r.batchMaxEvents} ${r.conflictPercent} %): ${r.check.detail}`,
      );
  for (const [name, profile] of Object.entries(profiles)) {
    lines.push(
      '',
      `CPU profile of one apply run, ${name}: ${profile.file}`,
      '  self time by owner:',
    );
    for (const h of profile.owners.slice(0, 12))
      lines.push(`    ${`${h.selfPercent.toFixed(1)} %`.padStart(7)}  ${h.name}`);
    lines.push('  top functions:');
    for (const h of profile.functions.slice(0, 20))
      lines.push(`    ${`${h.selfPercent.toFixed(1)} %`.padStart(7)}  ${h.name}`);
  }
  return lines.join('\n');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
