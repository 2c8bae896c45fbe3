import { currentGtidPosition } from '../../../src/capture/server-check.js';
import type { MysqlConnection } from '../../../src/mysql/connection.js';
import { INTERNAL_TABLES } from '../../../src/mysql/internal-tables.js';
import { serverInfo, type ServerInfo } from '../../../src/mysql/introspect.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { GOVERNED_DDL, MASK_KEY } from '../../../test/support/governance.js';
import { seededRandom } from '../../../test/support/random.js';
import { loadProfile, Pipeline, saveCapturePosition } from '../../support/bench-env.js';
import { restartNotes, waitUntil, type DaemonProc } from '../../support/daemon-proc.js';
import { queryValue, tableChecksum } from '../../support/db.js';
import { noteText } from '../../support/mixed-workload.js';
import { adaptivePollMs, cpuMsOf } from '../../support/proc.js';
import { sumOf } from '../../support/prom.js';
import { formatInt, median } from '../../support/stats.js';
import { barChart } from '../../support/svg.js';
import {
  round,
  scaled,
  type Scenario,
  type ScenarioContext,
  type ScenarioResult,
  type Table,
} from '../../support/scenario.js';

/** The three regions of the governance tests: two in zone eu, one outside. */
const SOURCE = 'eu-west';
const TARGETS = ['eu-central', 'us-east'] as const;
type Target = (typeof TARGETS)[number];
const REGIONS = [SOURCE, ...TARGETS];
const SCHEMA = 'app';
const COLUMNS = 'id, country, email, phone, note, name';

interface Load {
  /** Row changes per case: the first half inserts, the second half updates of those rows. */
  rows: number;
  insertRowsPerStatement: number;
  updateRowsPerStatement: number;
  seed: number;
  rounds: number;
}

type CaseKey = 'ungoverned' | 'US' | 'DE' | 'CH';

/** What a target region must hold after the catch-up. */
type Expect = 'plain' | 'masked' | 'evicted';

interface Case {
  key: CaseKey;
  label: string;
  /** What capture publishes per change, for the report. */
  publishes: string;
  table: string;
  /** The scenario's pipeline file the daemons run. */
  file: string;
  country: string;
  expect: Record<Target, Expect>;
}

const CASES: readonly Case[] = [
  {
    key: 'ungoverned',
    label: '(a) ungoverned',
    publishes: '1 copy (change topic)',
    table: 'people_plain',
    file: 'pipeline-ungoverned.yaml',
    country: 'US',
    expect: { 'eu-central': 'plain', 'us-east': 'plain' },
  },
  {
    key: 'US',
    label: '(b) people-eu, all rows US',
    publishes: '1 copy (change topic): routing only',
    table: 'people',
    file: 'pipeline.yaml',
    country: 'US',
    expect: { 'eu-central': 'plain', 'us-east': 'plain' },
  },
  {
    key: 'DE',
    label: '(c) people-eu, all rows DE',
    publishes: '2 copies: zone topic + masked copy for us-east',
    table: 'people',
    file: 'pipeline.yaml',
    country: 'DE',
    expect: { 'eu-central': 'plain', 'us-east': 'masked' },
  },
  {
    key: 'CH',
    label: '(d) people-eu, all rows CH',
    publishes: '1 copy (zone topic) + 1 eviction notice for us-east',
    table: 'people',
    file: 'pipeline.yaml',
    country: 'CH',
    expect: { 'eu-central': 'plain', 'us-east': 'evicted' },
  },
];

/** One daemon timed on a backlog: from its first unit of work to the last. */
interface Timed {
  /** Spawn → the last row. */
  totalMs: number;
  /** First row → last row. */
  drainMs: number;
  rowsPerSec: number;
  /** The daemon's CPU from its first row to its last (start-up left out). */
  daemonCpuMs: number;
  /** The daemon's CPU from spawn to its first row. */
  startupCpuMs: number;
  /** The MariaDB server it reads from (capture) or writes to (apply), over the same span. */
  serverCpuMs: number;
  peakRssMb: number;
  /** Further counters read from the daemon at the end. */
  extra: Record<string, number>;
}

interface Measurement {
  case: CaseKey;
  round: number;
  rows: number;
  written: Written;
  capture: Timed;
  apply: Record<Target, Timed & { check: string }>;
}

interface Written {
  inserts: number;
  updates: number;
  statements: number;
  elapsedMs: number;
}

/** The governance tests' `app.people` table (test/support/governance.ts), under `table`. */
function peopleDdl(table: string): string {
  const ddl = GOVERNED_DDL.find((s) => s.startsWith('CREATE TABLE app.people '));
  if (ddl === undefined) throw new Error('test/support/governance.ts: no app.people table');
  return ddl.replace('CREATE TABLE app.people ', `CREATE TABLE ${SCHEMA}.${table} `);
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

function word(next: () => number, min: number, max: number): string {
  const length = min + Math.floor(next() * (max - min + 1));
  let out = '';
  for (let i = 0; i < length; i += 1) out += LETTERS[Math.floor(next() * LETTERS.length)] as string;
  return out;
}

/** One person's VALUES tuple, about 150 bytes, like the tests' DE/CH/US rows. */
function personValues(id: number, country: string, next: () => number): string {
  const first = word(next, 3, 8);
  const last = word(next, 5, 12);
  const email = `${first}.${last}.${id}@example.${country.toLowerCase()}`;
  const phone = `+${10 + Math.floor(next() * 89)} ${Math.floor(next() * 1000)} 5550 ${id}`;
  return `(${id},'${country}','${email}','${phone}','${noteText(next, 60)}','${first} ${last}')`;
}

/**
 * The workload of one case: `rows` row changes in `table`, the first half
 * inserts of new people (multi-row INSERTs), the second half updates of
 * those rows (range UPDATEs of `note` and `phone`; the residency column
 * never changes). Seeded: every case writes the same rows but for
 * `country`. The caller holds them in one open transaction (see `measure`).
 */
async function writePeople(
  connection: MysqlConnection,
  table: string,
  country: string,
  load: Load,
  rows: number,
): Promise<Written> {
  const next = seededRandom(load.seed);
  const target = `${SCHEMA}.${table}`;
  const inserts = Math.ceil(rows / 2);
  const updates = rows - inserts;
  const started = performance.now();
  let statements = 0;
  for (let id = 1; id <= inserts; id += load.insertRowsPerStatement) {
    const values: string[] = [];
    for (let i = id; i < Math.min(inserts + 1, id + load.insertRowsPerStatement); i += 1)
      values.push(personValues(i, country, next));
    await connection.query(`INSERT INTO ${target} (${COLUMNS}) VALUES ${values.join(',')}`);
    statements += 1;
  }
  // updates ≤ inserts: each row is updated once, and every row named changes (note and phone).
  for (let from = 1; from <= updates; from += load.updateRowsPerStatement) {
    const to = Math.min(updates, from + load.updateRowsPerStatement - 1);
    await connection.query(
      `UPDATE ${target} SET note = CONCAT('edited ', LEFT(note, 50)), phone = CONCAT('+1 555 ', id) WHERE id BETWEEN ${from} AND ${to}`,
    );
    statements += 1;
  }
  return { inserts, updates, statements, elapsedMs: Math.round(performance.now() - started) };
}

/**
 * Starts `daemon`, runs `ready` (if given) and waits until the counter
 * `metric` (summed over `labels`) reaches `rows`: the rate is first row →
 * last row, and the CPU of the daemon and of `serverPids` is read over the
 * same span (the daemon's start-up before its first row is reported
 * apart), as apply-vs-native reads its daemons.
 */
async function timeDaemon(
  daemon: DaemonProc,
  metric: string,
  labels: Record<string, string>,
  rows: number,
  serverPids: () => number[],
  extra: Record<string, { metric: string; labels: Record<string, string> }> = {},
  ready?: () => Promise<void>,
): Promise<Timed> {
  const cpuOf = (): number => daemon.sampler?.sample()?.cpuMs ?? 0;
  daemon.start();
  await ready?.();
  let first: { at: number; daemon: number; server: number } | undefined;
  try {
    await waitUntil(
      async () => {
        const metrics = await daemon.tryMetrics();
        if (metrics === undefined) return 0;
        const n = sumOf(metrics, metric, labels);
        if (n > 0 && first === undefined)
          first = { at: performance.now(), daemon: cpuOf(), server: cpuMsOf(serverPids()) };
        return n;
      },
      rows,
      `${daemon.options.label}: ${metric}`,
      { pollMs: (elapsed) => adaptivePollMs(elapsed, 20), check: () => daemon.check() },
    );
    const done = performance.now();
    const daemonCpu = cpuOf();
    const serverCpu = cpuMsOf(serverPids());
    const start = first ?? { at: daemon.spawnedAt, daemon: 0, server: serverCpu };
    const metrics = await daemon.metrics();
    const drainMs = Math.max(1, done - start.at);
    return {
      totalMs: Math.round(done - daemon.spawnedAt),
      drainMs: Math.round(drainMs),
      rowsPerSec: Math.round((rows * 1000) / drainMs),
      daemonCpuMs: Math.round(daemonCpu - start.daemon),
      startupCpuMs: Math.round(start.daemon),
      serverCpuMs: Math.round(serverCpu - start.server),
      peakRssMb: Math.round(daemon.sampler?.peakRssMb ?? 0),
      extra: Object.fromEntries(
        Object.entries(extra).map(([k, e]) => [k, sumOf(metrics, e.metric, e.labels)]),
      ),
    };
  } finally {
    await daemon.stop();
  }
}

async function run(context: ScenarioContext): Promise<ScenarioResult> {
  const load = loadProfile<Load>(context);
  const N = context.rows ?? scaled(load.rows, context.scale, 10_000);
  const rounds = context.scale < 0.5 || context.rows !== undefined ? 1 : load.rounds;
  const { log } = context;
  let sandbox: Sandbox | undefined;
  const daemons: DaemonProc[] = [];
  const connections = new Map<string, MysqlConnection>();
  try {
    sandbox = await startSandbox({ regions: REGIONS, kafka: true, redis: false, log });
    const sb = sandbox;
    const env = { CDC_MASK_KEY: MASK_KEY };
    const setup = {
      governed: await Pipeline.create(context, sb, 'gov-setup', env, 'pipeline.yaml'),
      ungoverned: await Pipeline.create(
        context,
        sb,
        'gov-setup-plain',
        env,
        'pipeline-ungoverned.yaml',
      ),
    };
    for (const region of REGIONS) {
      const connection = await setup.governed.connect(region);
      connections.set(region, connection);
      await connection.query(`CREATE DATABASE ${SCHEMA}`);
      await connection.query(peopleDdl('people'));
      await connection.query(peopleDdl('people_plain'));
      await setup.governed.prepare(region);
      await setup.ungoverned.prepare(region);
    }
    const conn = (region: string): MysqlConnection => connections.get(region) as MysqlConnection;
    const info: ServerInfo = await serverInfo(conn(SOURCE));
    const pidsOf = (region: string) => (): number[] =>
      sb.services.mysql[REGIONS.indexOf(region)]?.pids() ?? [];

    /** Empties a case's table and the internal tables apply writes, in every region, unlogged. */
    const reset = async (c: Case): Promise<void> => {
      for (const region of REGIONS) {
        const internal = setup.governed.options(region).internalSchema;
        const connection = conn(region);
        await connection.query('SET SESSION sql_log_bin = 0');
        await connection.query(`TRUNCATE TABLE ${SCHEMA}.${c.table}`);
        await connection.query(`TRUNCATE TABLE \`${internal}\`.\`${INTERNAL_TABLES.tombstones}\``);
        await connection.query(`TRUNCATE TABLE \`${internal}\`.\`${INTERNAL_TABLES.conflicts}\``);
        await connection.query('SET SESSION sql_log_bin = 1');
      }
    };

    const check = async (
      c: Case,
      region: Target,
      reference: { rows: number; crc: string },
    ): Promise<string> => {
      const connection = conn(region);
      const table = `${SCHEMA}.${c.table}`;
      const expect = c.expect[region];
      if (expect === 'plain') {
        const got = await tableChecksum(connection, table, COLUMNS);
        return got.rows === reference.rows && got.crc === reference.crc
          ? 'ok'
          : `${region} differs from ${SOURCE}: ${got.rows} rows crc ${got.crc} vs ${reference.rows} crc ${reference.crc}`;
      }
      if (expect === 'masked') {
        const masked = Number(
          await queryValue(
            connection,
            `SELECT COUNT(*) FROM ${table} WHERE email REGEXP '^[0-9a-f]{64}$' AND phone IS NULL AND note = '***' AND CHAR_LENGTH(name) <= 1`,
          ),
        );
        const all = Number(await queryValue(connection, `SELECT COUNT(*) FROM ${table}`));
        return all === reference.rows && masked === all
          ? 'ok'
          : `${region}: ${all} rows (${reference.rows} expected), ${masked} of them masked`;
      }
      const held = Number(await queryValue(connection, `SELECT COUNT(*) FROM ${table}`));
      const internal = setup.governed.options(region).internalSchema;
      const tombstones = Number(
        await queryValue(
          connection,
          `SELECT COUNT(*) FROM \`${internal}\`.\`${INTERNAL_TABLES.tombstones}\` WHERE tbl = '${table}'`,
        ),
      );
      return held === 0 && tombstones === reference.rows
        ? 'ok'
        : `${region}: holds ${held} rows (0 expected), ${tombstones} tombstones (${reference.rows} expected)`;
    };

    const measurements: Measurement[] = [];
    const measure = async (c: Case, r: number): Promise<void> => {
      await reset(c);
      // Own topic prefix, state and consumer groups per case and round: everything starts from nothing.
      const pipeline = await Pipeline.create(context, sb, `gov-${c.key}-r${r}`, env, c.file);
      const label = `${SCHEMA}.${c.table}`;
      const source = conn(SOURCE);
      const start = await currentGtidPosition(source, info);
      // The backlog is held in one open transaction and committed once eu-west's daemon runs:
      // the capture span then has neither the writer nor the daemon's start-up in it (its
      // applier joins its consumer group after capture streams, which would otherwise overlap
      // a backlog of a few seconds).
      await source.query('START TRANSACTION');
      let committed = false;
      let written: Written;
      let capture: Timed;
      try {
        written = await writePeople(source, c.table, c.country, load, N);
        log(
          `${c.label} #${r}: wrote ${formatInt(N)} changes (${formatInt(written.inserts)} inserts, ${formatInt(written.updates)} updates) in ${formatInt(written.elapsedMs)} ms, uncommitted`,
        );
        // Capture alone: only eu-west's daemon runs, from the GTID position before the backlog.
        await saveCapturePosition(pipeline, SOURCE, start);
        const captureDaemon = pipeline.daemon(SOURCE, 'capture');
        daemons.push(captureDaemon);
        capture = await timeDaemon(
          captureDaemon,
          'cdc_events_captured_total',
          { table: label },
          N,
          pidsOf(SOURCE),
          {
            notices: { metric: 'cdc_capture_governance_notices_total', labels: { table: label } },
            auditRecords: { metric: 'cdc_governance_decisions_total', labels: { table: label } },
            withheld: {
              metric: 'cdc_capture_governance_withheld_total',
              labels: { table: label },
            },
            deadLetters: { metric: 'cdc_dead_letter_total', labels: { stage: 'capture' } },
          },
          async () => {
            await captureDaemon.waitRunning();
            await source.query('COMMIT');
            committed = true;
          },
        );
      } finally {
        if (!committed) await source.query('ROLLBACK').catch(() => undefined);
      }
      const reference = await tableChecksum(source, label, COLUMNS);
      log(
        `${c.label} #${r}: capture ${formatInt(capture.rowsPerSec)} rows/s, ${round((capture.daemonCpuMs * 1000) / N, 1)} µs CPU/row, ${capture.extra.notices ?? 0} notices`,
      );

      // Then each target region alone, catching up on the topics capture filled.
      const apply = {} as Measurement['apply'];
      for (const region of TARGETS) {
        const daemon = pipeline.daemon(region, 'apply');
        daemons.push(daemon);
        const timed = await timeDaemon(
          daemon,
          'cdc_events_applied_total',
          { source_region: SOURCE, table: label },
          N,
          pidsOf(region),
          {
            applied: {
              metric: 'cdc_events_applied_total',
              labels: { source_region: SOURCE, table: label, result: 'applied' },
            },
            refused: {
              metric: 'cdc_dead_letter_total',
              labels: { stage: 'apply', reason: 'governance_refused' },
            },
            deadLetters: { metric: 'cdc_dead_letter_total', labels: { stage: 'apply' } },
          },
        );
        apply[region] = { ...timed, check: await check(c, region, reference) };
        log(
          `${c.label} #${r}: apply in ${region} ${formatInt(timed.rowsPerSec)} rows/s, ${round((timed.daemonCpuMs * 1000) / N, 1)} µs CPU/row, check ${apply[region].check}`,
        );
      }
      measurements.push({ case: c.key, round: r, rows: N, written, capture, apply });
    };

    log(
      `${formatInt(N)} row changes per case, ${rounds} round(s); each case: capture alone, then ${TARGETS.join(', then ')} alone`,
    );
    for (let r = 1; r <= rounds; r += 1)
      for (const c of r % 2 === 1 ? CASES : [...CASES].reverse()) await measure(c, r);

    // ---- report ----
    const of = (key: CaseKey): Measurement[] => measurements.filter((m) => m.case === key);
    const med = (key: CaseKey, f: (m: Measurement) => number): number => median(of(key).map(f));
    const perRowUs = (key: CaseKey, f: (m: Measurement) => number): number =>
      med(key, (m) => (f(m) * 1000) / m.rows);
    const captureRate = (key: CaseKey): number => med(key, (m) => m.capture.rowsPerSec);
    const applyRate = (key: CaseKey, t: Target): number => med(key, (m) => m.apply[t].rowsPerSec);
    const x = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}×` : 'n/a');
    const us = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '–');
    const base: CaseKey = 'ungoverned';
    const ratios = CASES.map((c) => ({
      case: c.key,
      capture: round(captureRate(c.key) / captureRate(base), 3),
      captureCpuPerRow: round(
        perRowUs(c.key, (m) => m.capture.daemonCpuMs) /
          perRowUs(base, (m) => m.capture.daemonCpuMs),
        3,
      ),
      apply: Object.fromEntries(
        TARGETS.map((t) => [
          t,
          {
            rate: round(applyRate(c.key, t) / applyRate(base, t), 3),
            cpuPerRow: round(
              perRowUs(c.key, (m) => m.apply[t].daemonCpuMs) /
                perRowUs(base, (m) => m.apply[t].daemonCpuMs),
              3,
            ),
          },
        ]),
      ),
    }));
    const failed = measurements.flatMap((m) =>
      TARGETS.filter((t) => m.apply[t].check !== 'ok').map(
        (t) => `${m.case} #${m.round} ${t}: ${m.apply[t].check}`,
      ),
    );
    const captureTable: Table = {
      title: `Capture: ${formatInt(N)} row changes of ${SOURCE} (half inserts, half updates) into Kafka, ${SOURCE}'s daemon alone, median of ${rounds} round(s)`,
      header: [
        'case',
        'publishes per change',
        'rows/s',
        '÷ (a)',
        'daemon CPU µs/row',
        '÷ (a)',
        'MariaDB (binlog dump) CPU µs/row',
        'notices',
        'audit records',
        'rounds (rows/s)',
      ],
      rows: CASES.map((c) => [
        c.label,
        c.publishes,
        formatInt(captureRate(c.key)),
        `**${x(captureRate(c.key) / captureRate(base))}**`,
        us(perRowUs(c.key, (m) => m.capture.daemonCpuMs)),
        x(
          perRowUs(c.key, (m) => m.capture.daemonCpuMs) /
            perRowUs(base, (m) => m.capture.daemonCpuMs),
        ),
        us(perRowUs(c.key, (m) => m.capture.serverCpuMs)),
        formatInt(med(c.key, (m) => m.capture.extra.notices ?? 0)),
        formatInt(med(c.key, (m) => m.capture.extra.auditRecords ?? 0)),
        of(c.key)
          .map((m) => formatInt(m.capture.rowsPerSec))
          .join(', '),
      ]),
      note: `rows/s = N ÷ (first change acknowledged by Kafka → N-th), from cdc_events_captured_total (a change counts once, however many copies it has), as capture-vs-debezium measures it. CPU = /proc utime+stime over the same span (the daemon's start-up before its first row left out). Notices (one Kafka message each, on the table's change topic) and audit records (joined per partition into audit batches on ${SOURCE}'s audit topic, since 2026-12-07) are the daemon's cdc_capture_governance_notices_total and cdc_governance_decisions_total for the table.`,
    };
    const applyTable: Table = {
      title: `Apply catch-up from ${SOURCE}'s topics, each region's daemon alone, median of ${rounds} round(s)`,
      header: [
        'case',
        ...TARGETS.flatMap((t) => [
          `${t}: receives`,
          `${t} rows/s`,
          '÷ (a)',
          'daemon CPU µs/row',
          '÷ (a)',
          'MariaDB CPU µs/row',
        ]),
        'check',
      ],
      rows: CASES.map((c) => [
        c.label,
        ...TARGETS.flatMap((t) => [
          { plain: 'plain rows', masked: 'masked rows', evicted: 'eviction notices' }[c.expect[t]],
          formatInt(applyRate(c.key, t)),
          `**${x(applyRate(c.key, t) / applyRate(base, t))}**`,
          us(perRowUs(c.key, (m) => m.apply[t].daemonCpuMs)),
          x(
            perRowUs(c.key, (m) => m.apply[t].daemonCpuMs) /
              perRowUs(base, (m) => m.apply[t].daemonCpuMs),
          ),
          us(perRowUs(c.key, (m) => m.apply[t].serverCpuMs)),
        ]),
        of(c.key).every((m) => TARGETS.every((t) => m.apply[t].check === 'ok')) ? 'ok' : 'FAIL',
      ]),
      note: `rows/s = N ÷ (first change applied → N-th), from the region's cdc_events_applied_total for ${SOURCE} (every outcome; an eviction notice counts as one), as apply-vs-native measures it. The daemon starts on a backlog already in Kafka, so this is the applier's own rate, capture not running. Check: eu-central equal to ${SOURCE} (count + CRC of every column); us-east equal (a, b), every row masked (c), or no row and one tombstone per key (d).`,
    };
    return {
      configuration: {
        rows: N,
        rowsFrom: context.rows !== undefined ? '--rows' : `load.json × scale ${context.scale}`,
        rounds,
        load,
        regions: { source: SOURCE, targets: TARGETS, zone: 'eu: [eu-west, eu-central]' },
        cases: CASES.map(({ key, label, table, file, country }) => ({
          key,
          label,
          table,
          file,
          country,
        })),
        governed: setup.governed.yaml,
        ungoverned: setup.ungoverned.yaml,
        mariadb: info.version,
      },
      figures: { measurements, ratios },
      tables: [captureTable, applyTable],
      plots: [
        {
          name: 'capture',
          title: 'capture rows/s per case',
          svg: barChart({
            title: `Capture into Kafka, rows/s (median, ${formatInt(N)} changes)`,
            unit: 'rows/s',
            bars: CASES.map((c) => ({ label: c.label, value: captureRate(c.key) })),
          }),
        },
        {
          name: 'apply',
          title: 'apply catch-up rows/s per case and region',
          svg: barChart({
            title: `Apply catch-up, rows/s (median, ${formatInt(N)} changes)`,
            unit: 'rows/s',
            bars: CASES.flatMap((c) =>
              TARGETS.map((t) => ({ label: `${c.label}, ${t}`, value: applyRate(c.key, t) })),
            ),
          }),
        },
      ],
      targets: [],
      notes: [
        `Issue 16's question: what a governed table costs. Same workload in every case (${formatInt(N)} changes: ${formatInt(Math.ceil(N / 2))} inserts in ${load.insertRowsPerStatement}-row INSERTs, then updates of those rows in ${load.updateRowsPerStatement}-row range UPDATEs), written in ${SOURCE} in one transaction committed once ${SOURCE}'s daemon runs (so neither the writer nor the daemon's start-up is in the capture span), on a table with the columns of the governance tests' app.people. (a) runs pipeline-ungoverned.yaml (no governance section; app.people_plain, no key-hash column); (b)-(d) run pipeline.yaml (the people-eu policy) on app.people with every row's country US, DE or CH.`,
        'Each ratio is against (a) measured in the same run; cases alternate order between rounds. The machine is usually shared, so absolute rows/s are noisy and only the same-run ratios compare.',
        'MariaDB CPU: the source server (serving the binlog) during capture, the target server during apply, over the same span as the daemon.',
        ...(failed.length === 0 ? [] : failed.map((f) => `check failed: ${f}`)),
        ...restartNotes(daemons),
      ],
    };
  } finally {
    await Promise.allSettled(daemons.map((d) => d.stop()));
    await Promise.allSettled([...connections.values()].map((c) => c.end()));
    await sandbox?.stop();
  }
}

export const governanceOverhead: Scenario = {
  name: 'governance-overhead',
  title:
    "a governed table's cost: capture and apply rows/s of the same workload ungoverned and under issue 16's people-eu policy (rows US, DE, CH)",
  run,
};
