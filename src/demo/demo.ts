/**
 * `cdc-replicator demo`: the replicator working, in a minute, on a fresh
 * machine. It starts the sandbox (two MariaDB regions, Kafka, Redis),
 * creates a small shop schema, prepares both regions, runs both region
 * daemons in this process, drives a mixed workload in both regions with
 * some concurrent writes to the same rows, shows a live view of every
 * region pair each second, and ends with a convergence check.
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { compileRegion, type RuntimeOptions } from '../config/compile.js';
import { parseConfig } from '../config/load.js';
import { createLogger, type Logger } from '../core/logger.js';
import { Daemon } from '../daemon/daemon.js';
import { renderStatusTable, snapshotStatus, type StatusReport } from '../monitor/status.js';
import { connectMysql, type MysqlConnection } from '../mysql/connection.js';
import { applyPrepare, planPrepare } from '../prepare/prepare.js';
import { freePorts } from '../sandbox/ports.js';
import { startSandbox, type Sandbox } from '../sandbox/index.js';
import type { TextSink } from '../cli/context.js';

export const DEMO_REGIONS = ['us-east', 'eu-west'] as const;

const SCHEMA = [
  'CREATE DATABASE IF NOT EXISTS shop',
  `CREATE TABLE IF NOT EXISTS shop.customers (
     id INT PRIMARY KEY,
     name VARCHAR(40) NOT NULL,
     balance DECIMAL(12,2) NOT NULL,
     updated_in VARCHAR(16) NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS shop.orders (
     id BIGINT PRIMARY KEY,
     customer_id INT NOT NULL,
     amount DECIMAL(12,2) NOT NULL,
     status VARCHAR(16) NOT NULL
   )`,
];

/** Customers both regions update at the same time: where conflicts come from. */
const HOT_CUSTOMERS = 5;
const CUSTOMERS = 200;
const CONVERGENCE_TIMEOUT_MS = 60_000;
const DEMO_LAG_THRESHOLD_SECONDS = 10;

export interface DemoOptions {
  /** Seconds of workload; undefined runs until `signal` aborts. */
  readonly durationSeconds: number | undefined;
  /** Writes per second per region. */
  readonly writesPerSecond: number;
  readonly out: TextSink;
  /** Redraw in place (a terminal) or print one line per second (a log). */
  readonly live: boolean;
  /** Aborted by Ctrl-C: ends the workload early, then checks and cleans up. */
  readonly signal: AbortSignal;
  /** Where the sandbox keeps its data; the OS temp dir by default. */
  readonly baseDir?: string;
}

export interface DemoResult {
  readonly converged: boolean;
  readonly rows: Record<string, number>;
  readonly writes: Record<string, number>;
  readonly conflicts: number;
}

/** Runs the whole demo and always cleans up; resolves with whether the regions converged. */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const say = (text: string): void => void options.out.write(`${text}\n`);
  const started = Date.now();
  // Which launcher (local processes or containers) is said by the sandbox's own log line.
  say('starting the sandbox: 2 MariaDB regions, Kafka (KRaft) and Redis ...');
  const sandbox = await startSandbox({
    regions: DEMO_REGIONS,
    kafka: true,
    redis: true,
    baseDir: options.baseDir,
    log: (message) => say(`  ${message}`),
  });
  const daemons: Daemon[] = [];
  const connections: MysqlConnection[] = [];
  try {
    const ports = await freePorts(DEMO_REGIONS.length);
    const yaml = demoConfigYaml(sandbox, ports);
    const configPath = join(sandbox.dir, 'demo.yaml');
    writeFileSync(configPath, yaml);
    const config = parseConfig(yaml, { env: {} });
    const regions = DEMO_REGIONS.map((region) => compileRegion(config, region));
    const logFile = join(sandbox.dir, 'daemons.log');
    const logger = createLogger({ destination: createWriteStream(logFile), pretty: false });
    say(`services up in ${secondsSince(started)} s; configuration: ${configPath}`);
    say(`daemon logs: ${logFile}`);

    for (const region of regions) {
      const admin = await connectMysql(region.mysql);
      connections.push(admin);
      for (const statement of SCHEMA) await admin.query(statement);
      const plan = await planPrepare(admin, region, region.internalSchema);
      await applyPrepare(admin, plan);
      say(`prepared ${region.region}: ${plan.steps.length} change(s)`);
    }
    for (const region of regions) {
      const daemon = new Daemon({
        options: region,
        logger: logger.child({ region: region.region }),
      });
      daemons.push(daemon);
      await daemon.start();
    }
    say(
      `daemons running (${secondsSince(started)} s); while this runs, try: ` +
        `cdc-replicator status --config ${configPath}`,
    );

    const workload = new Workload(regions, options.writesPerSecond);
    await workload.seed(connections);
    const endpoints = regions.map((r) => ({ region: r.region, url: r.metrics.url as string }));
    const view = new LiveView(options, endpoints, workload, started);
    const stopWorkload = workload.run(connections, options.signal);
    const deadline =
      options.durationSeconds === undefined
        ? Infinity
        : Date.now() + options.durationSeconds * 1000;
    while (Date.now() < deadline && !options.signal.aborted) {
      await view.frame();
      await sleep(1000, undefined, { signal: options.signal }).catch(() => undefined);
    }
    await stopWorkload();
    say(
      options.signal.aborted
        ? '\ninterrupted: workload stopped; checking convergence before cleaning up (Ctrl-C again to quit now)'
        : '\nworkload done; waiting for the regions to converge ...',
    );
    const result = await waitForConvergence(connections, regions, workload, logger);
    await view.frame();
    say(describeResult(result));
    return result;
  } finally {
    say('stopping daemons and services ...');
    await Promise.allSettled(daemons.map((d) => d.stop()));
    await Promise.allSettled(connections.map((c) => c.end()));
    await sandbox.stop();
    say(`done in ${secondsSince(started)} s`);
  }
}

function secondsSince(startMs: number): string {
  return ((Date.now() - startMs) / 1000).toFixed(1);
}

/** The configuration a user would write for the sandbox: one file, both regions. */
function demoConfigYaml(sandbox: Sandbox, metricsPorts: readonly number[]): string {
  const regions = sandbox.mysql.map(
    (m, i) =>
      `  ${m.region}:\n` +
      `    mysql: { host: ${m.host}, port: ${m.port}, user: ${m.user}, password: "${m.password}" }\n` +
      `    metrics: { host: 127.0.0.1, port: ${metricsPorts[i]} }`,
  );
  return [
    '# Written by `cdc-replicator demo` for its sandbox; removed when the demo ends.',
    `regions:\n${regions.join('\n')}`,
    `kafka: { brokers: [${(sandbox.kafka?.brokers ?? []).map((b) => `"${b}"`).join(', ')}], topicPrefix: demo }`,
    `redis: { url: "${sandbox.redis?.url ?? ''}" }`,
    'pipelines:\n  - name: shop\n    tables: ["shop.customers", "shop.orders"]\n    conflict: { strategy: lww }',
    `monitor: { lagThresholdSeconds: ${DEMO_LAG_THRESHOLD_SECONDS} }`,
    '',
  ].join('\n');
}

/**
 * A mixed workload: balance updates on customers (the hot ones from both
 * regions at once), new orders, order status changes and deletes. Order ids
 * carry the region in their low digit so inserts never collide by accident;
 * conflicts come only from the hot customers, on purpose.
 */
class Workload {
  readonly writes = new Map<string, number>();
  #nextOrder = new Map<string, number>();

  constructor(
    private readonly regions: readonly RuntimeOptions[],
    private readonly perSecond: number,
  ) {
    regions.forEach((r, i) => {
      this.writes.set(r.region, 0);
      this.#nextOrder.set(r.region, 10 + i);
    });
  }

  /** The customers exist everywhere before the clock starts (written once, replicated). */
  async seed(connections: readonly MysqlConnection[]): Promise<void> {
    const values = Array.from({ length: CUSTOMERS }, (_, i) => [
      i + 1,
      `customer-${i + 1}`,
      '100.00',
      this.regions[0]?.region ?? '',
    ]);
    await connections[0]?.query(
      'INSERT INTO shop.customers (id, name, balance, updated_in) VALUES ? ON DUPLICATE KEY UPDATE id = id',
      [values],
    );
  }

  /** Starts one writer per region; the returned function stops them and waits. */
  run(connections: readonly MysqlConnection[], signal: AbortSignal): () => Promise<void> {
    let running = true;
    const loops = this.regions.map((region, i) =>
      this.#writer(
        region.region,
        connections[i] as MysqlConnection,
        () => running && !signal.aborted,
      ),
    );
    return async () => {
      running = false;
      await Promise.all(loops);
    };
  }

  async #writer(region: string, db: MysqlConnection, keepGoing: () => boolean): Promise<void> {
    const pause = 1000 / this.perSecond;
    let step = 0;
    while (keepGoing()) {
      const tick = Date.now();
      step += 1;
      try {
        await this.#write(region, db, step);
        this.writes.set(region, (this.writes.get(region) ?? 0) + 1);
      } catch {
        // A workload write failing (e.g. at shutdown) is not the demo's subject.
      }
      await sleep(Math.max(0, pause - (Date.now() - tick)));
    }
  }

  async #write(region: string, db: MysqlConnection, step: number): Promise<void> {
    const roll = Math.random();
    if (step % 4 === 0) {
      // Both regions hit the same few customers: real concurrent conflicts.
      const id = 1 + Math.floor(Math.random() * HOT_CUSTOMERS);
      await db.query(
        'UPDATE shop.customers SET balance = balance + ?, updated_in = ? WHERE id = ?',
        [(Math.random() * 10).toFixed(2), region, id],
      );
    } else if (roll < 0.45) {
      const id = this.#nextOrder.get(region) ?? 0;
      this.#nextOrder.set(region, id + this.regions.length * 10);
      await db.query(
        "INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (?, ?, ?, 'new')",
        [id, 1 + Math.floor(Math.random() * CUSTOMERS), (Math.random() * 100).toFixed(2)],
      );
    } else if (roll < 0.75) {
      await db.query(
        "UPDATE shop.orders SET status = 'shipped' WHERE status = 'new' ORDER BY id LIMIT 1",
      );
    } else if (roll < 0.85) {
      await db.query("DELETE FROM shop.orders WHERE status = 'shipped' ORDER BY id LIMIT 1");
    } else {
      const id = HOT_CUSTOMERS + 1 + Math.floor(Math.random() * (CUSTOMERS - HOT_CUSTOMERS));
      await db.query(
        'UPDATE shop.customers SET balance = balance - 1, updated_in = ? WHERE id = ?',
        [region, id],
      );
    }
  }
}

/** One frame per second: the status table of every pair, redrawn in place on a terminal. */
class LiveView {
  #last: StatusReport | undefined;

  constructor(
    private readonly options: DemoOptions,
    private readonly endpoints: readonly { region: string; url: string }[],
    private readonly workload: Workload,
    private readonly startedMs: number,
  ) {}

  get last(): StatusReport | undefined {
    return this.#last;
  }

  async frame(): Promise<void> {
    const report = await snapshotStatus(this.endpoints, DEMO_LAG_THRESHOLD_SECONDS);
    const merged = this.#withRates(report);
    this.#last = report;
    const writes = [...this.workload.writes].map(([r, n]) => `${r} ${n}`).join(', ');
    const elapsed = secondsSince(this.startedMs);
    if (this.options.live) {
      this.options.out.write(
        `\x1b[2J\x1b[H cdc-replicator demo  (${elapsed} s, Ctrl-C to stop)\n` +
          ` writes so far: ${writes}\n\n${renderStatusTable(merged)}`,
      );
    } else {
      const pairs = merged.pairs
        .map(
          (p) =>
            `${p.source}→${p.target} lag ${p.lagSeconds?.toFixed(2) ?? '-'} s, ${p.eventsPerSecond?.toFixed(0) ?? '-'} ev/s, ${p.conflictsPerSecond?.toFixed(1) ?? '-'} conflicts/s, ${p.deadLetters ?? '-'} dead letters`,
        )
        .join(' | ');
      this.options.out.write(`[${elapsed} s] writes ${writes} | ${pairs}\n`);
    }
  }

  /** Rates from this frame and the previous one (one scrape per frame, a second apart). */
  #withRates(report: StatusReport): StatusReport {
    const previous = this.#last;
    if (previous === undefined) return report;
    const seconds = (Date.parse(report.takenAt) - Date.parse(previous.takenAt)) / 1000;
    if (seconds <= 0) return report;
    return {
      ...report,
      pairs: report.pairs.map((p) => {
        const before = previous.pairs.find((q) => q.source === p.source && q.target === p.target);
        const rate = (now?: number, then?: number): number | undefined =>
          now === undefined || then === undefined ? undefined : Math.max(0, now - then) / seconds;
        return {
          ...p,
          eventsPerSecond: rate(p.appliedTotal, before?.appliedTotal),
          conflictsPerSecond: rate(p.conflictsTotal, before?.conflictsTotal),
        };
      }),
    };
  }
}

async function tableRows(db: MysqlConnection, table: string): Promise<string[]> {
  const [rows] = await db.query(`SELECT * FROM ${table} ORDER BY id`);
  return (rows as Record<string, unknown>[]).map((row) => JSON.stringify(row));
}

/** Polls until every table holds the same rows in every region, or the timeout passes. */
async function waitForConvergence(
  connections: readonly MysqlConnection[],
  regions: readonly RuntimeOptions[],
  workload: Workload,
  logger: Logger,
): Promise<DemoResult> {
  const deadline = Date.now() + CONVERGENCE_TIMEOUT_MS;
  for (;;) {
    const rows: Record<string, number> = {};
    let same = true;
    for (const table of ['shop.customers', 'shop.orders']) {
      const contents = await Promise.all(connections.map((c) => tableRows(c, table)));
      rows[table] = contents[0]?.length ?? 0;
      const first = JSON.stringify(contents[0]);
      if (!contents.every((c) => JSON.stringify(c) === first)) same = false;
    }
    if (same || Date.now() > deadline) {
      const conflicts = await conflictCount(connections, regions);
      logger.info({ converged: same, rows }, 'demo convergence check');
      return { converged: same, rows, writes: Object.fromEntries(workload.writes), conflicts };
    }
    await sleep(500);
  }
}

/** Concurrent writes resolved, as recorded by every region's appliers. */
async function conflictCount(
  connections: readonly MysqlConnection[],
  regions: readonly RuntimeOptions[],
): Promise<number> {
  let total = 0;
  for (const [i, region] of regions.entries()) {
    const [rows] = await (connections[i] as MysqlConnection).query(
      `SELECT COUNT(*) AS n FROM \`${region.internalSchema}\`._cdc_conflicts`,
    );
    total += Number((rows as { n: number | string }[])[0]?.n ?? 0);
  }
  return total;
}

function describeResult(result: DemoResult): string {
  const tables = Object.entries(result.rows)
    .map(([table, n]) => `${table} ${n} rows`)
    .join(', ');
  const writes = Object.entries(result.writes)
    .map(([region, n]) => `${n} in ${region}`)
    .join(', ');
  return result.converged
    ? `CONVERGED: ${DEMO_REGIONS.join(' and ')} hold identical data (${tables}) after ${writes} writes; ${result.conflicts} concurrent write(s) resolved by last-writer-wins`
    : `NOT CONVERGED within ${CONVERGENCE_TIMEOUT_MS / 1000} s (${tables}); see the daemon log`;
}
