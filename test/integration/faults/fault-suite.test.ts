/**
 * Faults under writes (issue "never skip a change", Jepsen's habit): three
 * regions, each with its own daemon process, while a seeded workload writes
 * in every region, the suite does to the real processes what production
 * does, one fault after another:
 *
 * 1. kill -9 of Redis, restarted empty (a Redis without persistence);
 * 2. kill -9 of the Kafka broker, restarted on its data;
 * 3. kill -9 of one region's MariaDB, restarted on its data;
 * 4. SIGSTOP of one daemon past its lease TTL, then SIGCONT;
 * 5. one daemon stopped while its region keeps writing, Redis lost
 *    meanwhile, the daemon started again.
 *
 * After each fault the writers pause and the suite times how long the
 * regions take to hold identical data. It passes when every region
 * converges after every fault, every write acknowledged to a client is
 * present in every region, and no change was dead-lettered.
 *
 * `CDC_TEST_SEED=<n>` replays one run; `npm run test:fault-sweep` runs
 * several seeds (`CDC_FAULT_SEED_COUNT`, default 5).
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { compileRegion, type RuntimeOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { scrape } from '../../../src/monitor/prometheus-text.js';
import { freePorts } from '../../../src/sandbox/ports.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import {
  daemonOutput,
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  tail,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import { loseRedis } from '../../support/faults.js';
import { deadLetterCounts } from '../../support/kafka.js';
import { prepareRegion } from '../../support/mariadb.js';
import { randomInt, seededRandom, testSeed } from '../../support/random.js';

jest.setTimeout(900_000);

const REGIONS = ['r1', 'r2', 'r3'] as const;
type Region = (typeof REGIONS)[number];
const PREFIX = 'faults';
const LEASE_TTL_MS = 3_000;
/** Rows of the shared table every region updates and deletes (conflicts on purpose). */
const HOT_KEYS = 40;
/** How long each fault lasts while the writers keep going. */
const FAULT_MS = 5_000;
const CONVERGE_TIMEOUT_MS = 180_000;
const DDL = [
  'CREATE DATABASE app',
  // Insert-only, ids unique per region: an acknowledged insert must end up everywhere.
  'CREATE TABLE app.acked (id BIGINT PRIMARY KEY, region VARCHAR(8) NOT NULL, payload VARCHAR(64) NOT NULL)',
  // Updated and deleted from every region: must converge to one state.
  'CREATE TABLE app.hot (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(64) NOT NULL)',
];

function seeds(): number[] {
  if (process.env.CDC_TEST_SEED !== undefined && process.env.CDC_TEST_SEED !== '')
    return [testSeed()];
  const count = Number(process.env.CDC_FAULT_SEED_COUNT ?? 1);
  return Array.from({ length: Math.max(1, count) }, () => testSeed());
}

/** A region's writer: seeded operations, reconnecting through the pool when its server dies. */
class Writer {
  readonly acked: number[] = [];
  attempts = 0;
  failures = 0;
  #paused = true;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #next = 0;

  constructor(
    readonly region: Region,
    readonly index: number,
    private readonly pool: mysql.Pool,
    private readonly random: () => number,
  ) {}

  start(): void {
    this.#loop ??= this.#run();
  }

  resume(): void {
    this.#paused = false;
  }

  /** Resolves once no write is in flight. */
  async pause(): Promise<void> {
    this.#paused = true;
    while (this.#busy) await sleep(10);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  #busy = false;

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (this.#paused) {
        await sleep(20);
        continue;
      }
      this.#busy = true;
      try {
        await this.#writeOnce();
      } finally {
        this.#busy = false;
      }
      await sleep(randomInt(this.random, 5, 30));
    }
  }

  async #writeOnce(): Promise<void> {
    const roll = this.random();
    this.attempts += 1;
    try {
      if (roll < 0.5) {
        // Ids never collide across regions: region index in the high digits.
        const id = (this.index + 1) * 1_000_000_000 + this.#next;
        this.#next += 1;
        await this.pool.query('INSERT INTO app.acked VALUES (?, ?, ?)', [
          id,
          this.region,
          `p${Math.floor(this.random() * 1e9)}`,
        ]);
        this.acked.push(id);
      } else {
        const key = randomInt(this.random, 1, HOT_KEYS);
        const value = randomInt(this.random, 0, 1_000_000);
        if (roll < 0.85)
          await this.pool.query(
            'INSERT INTO app.hot VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v), note = VALUES(note)',
            [key, value, `${this.region}:${value}`],
          );
        else await this.pool.query('DELETE FROM app.hot WHERE id = ?', [key]);
      }
    } catch {
      // Not acknowledged: a server being killed, a deadlock with the applier on a hot
      // key. Applications retry; this one just goes on with its next write.
      this.failures += 1;
      await sleep(100);
    }
  }
}

interface FaultReport {
  fault: string;
  writes: number;
  convergedMs: number;
  /** Where each capture that (re)started took its position, e.g. `r2: kafka`. */
  recoveries: string[];
  /** The distinct `/readyz` reasons the daemons gave while the fault lasted. */
  seen: string[];
}

/**
 * What an operator sees: polls every daemon's `/readyz` until stopped and
 * keeps the distinct reasons (numbers blanked, so one reason counts once).
 */
function watchReadiness(ports: readonly number[]): { stop: () => Promise<string[]> } {
  const seen = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      await Promise.all(
        ports.map(async (port, i) => {
          try {
            const response = await fetch(`http://127.0.0.1:${port}/readyz`, {
              signal: AbortSignal.timeout(1_000),
            });
            const body = await response.text();
            for (const line of body.split('\n'))
              if (line.startsWith('- '))
                seen.add(`${REGIONS[i]}: ${line.slice(2).replace(/[0-9.]+/g, 'N')}`);
          } catch {
            seen.add(`${REGIONS[i]}: daemon not answering`);
          }
        }),
      );
      await sleep(500);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return [...seen].sort();
    },
  };
}

describe('faults under writes in three regions', () => {
  for (const seed of seeds()) {
    it(`every region converges after each fault, every acknowledged write is everywhere, nothing is dead-lettered (seed ${seed})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cdc-faults-'));
      let sandbox: Sandbox | undefined;
      const daemons = new Map<Region, DaemonProcess>();
      const pools = new Map<Region, mysql.Pool>();
      const writers: Writer[] = [];
      let passed = false;
      try {
        sandbox = await startSandbox({ regions: [...REGIONS], redis: true });
        const sb = sandbox;
        const metricsPorts = await freePorts(REGIONS.length);
        const yaml = faultConfigYaml(sb, metricsPorts);
        const configFile = writeConfigFile(dir, yaml);
        const options = new Map<Region, RuntimeOptions>(
          REGIONS.map((r) => [r, compileRegion(parseConfig(yaml, { env: {} }), r)]),
        );
        for (const region of REGIONS) {
          const o = options.get(region)!;
          const pool = mysql.createPool({
            host: o.mysql.host,
            port: o.mysql.port,
            user: o.mysql.user,
            password: o.mysql.password.reveal(),
            connectionLimit: 4,
            connectTimeout: 2_000,
            supportBigNumbers: true,
            bigNumberStrings: true,
          });
          pools.set(region, pool);
          for (const statement of DDL) await pool.query(statement);
          await prepareRegion(o);
        }

        const logDir = join(dir, 'logs');
        const startDaemon = async (region: Region): Promise<void> => {
          const daemon = startDaemonProcess(configFile, region, logDir);
          daemons.set(region, daemon);
          await waitUntilRunning(daemon, 120_000);
        };
        for (const region of REGIONS) await startDaemon(region);

        const random = seededRandom(seed);
        REGIONS.forEach((region, index) => {
          const writer = new Writer(
            region,
            index,
            pools.get(region)!,
            seededRandom(seed + index + 1),
          );
          writers.push(writer);
          writer.start();
        });
        const reports: FaultReport[] = [];
        const writesSoFar = (): number => writers.reduce((n, w) => n + w.attempts, 0);

        /** Capture starts per region and position source, per daemon process. */
        const startsSeen = new Map<
          Region,
          { daemon: DaemonProcess; starts: Record<string, number> }
        >();
        const newRecoveries = async (): Promise<string[]> => {
          const found: string[] = [];
          for (const [i, region] of REGIONS.entries()) {
            const daemon = daemons.get(region)!;
            const starts = await counterByLabel(
              metricsPorts[i]!,
              'cdc_capture_starts_total',
              'from',
            );
            const previous = startsSeen.get(region);
            const base = previous?.daemon === daemon ? previous.starts : {};
            for (const [from, n] of Object.entries(starts))
              for (let k = base[from] ?? 0; k < n; k += 1) found.push(`${region}: ${from}`);
            startsSeen.set(region, { daemon, starts });
          }
          return found;
        };

        /** Runs `fault` while every region writes, then pauses the writers and times convergence. */
        const underWrites = async (fault: string, body: () => Promise<void>): Promise<void> => {
          const before = writesSoFar();
          await newRecoveries();
          const readiness = watchReadiness(metricsPorts);
          for (const w of writers) w.resume();
          await sleep(randomInt(random, 1_000, 3_000));
          await body();
          await sleep(1_000);
          await Promise.all(writers.map((w) => w.pause()));
          const started = Date.now();
          await waitForConvergence(pools, writers, daemons, fault);
          const convergedMs = Date.now() - started;
          const seen = await readiness.stop();
          const recoveries = await newRecoveries();
          reports.push({ fault, writes: writesSoFar() - before, convergedMs, recoveries, seen });
          console.log(
            `seed ${seed}: after "${fault}" (${writesSoFar() - before} writes) the regions converged in ${convergedMs} ms; ` +
              `capture restarts: ${recoveries.join(', ') || 'none'}; /readyz said: ${seen.join(' | ') || 'ready throughout'}`,
          );
        };

        const victim = (): Region => REGIONS[randomInt(random, 0, REGIONS.length - 1)] as Region;

        await underWrites('kill -9 of Redis, restarted empty', async () => {
          await loseRedis(sb);
        });

        await underWrites('kill -9 of the Kafka broker, restarted', async () => {
          await sb.services.kafka!.kill();
          await sleep(FAULT_MS);
          await sb.services.kafka!.start();
        });

        const mysqlVictim = victim();
        await underWrites(`kill -9 of ${mysqlVictim}'s MariaDB, restarted`, async () => {
          const service = sb.services.mysql[REGIONS.indexOf(mysqlVictim)]!;
          await service.kill();
          await sleep(FAULT_MS / 2);
          await service.start();
        });

        const frozen = victim();
        await underWrites(`SIGSTOP of ${frozen}'s daemon past its lease TTL`, async () => {
          const daemon = daemons.get(frozen)!;
          daemon.child.kill('SIGSTOP');
          await sleep(LEASE_TTL_MS + 2_000);
          daemon.child.kill('SIGCONT');
        });

        const stopped = victim();
        await underWrites(
          `${stopped}'s daemon stopped while it writes, Redis lost meanwhile, daemon restarted`,
          async () => {
            expect(await stopDaemonProcess(daemons.get(stopped)!, 'SIGTERM')).toBe(0);
            await sleep(FAULT_MS);
            await loseRedis(sb);
            await sleep(1_000);
            await startDaemon(stopped);
          },
        );
        // The restarted daemon found no position in Redis and took the one in Kafka.
        expect(reports.at(-1)?.recoveries).toContain(`${stopped}: kafka`);

        for (const region of REGIONS) {
          const daemon = daemons.get(region)!;
          if (!isRunning(daemon))
            throw new Error(
              `${region}'s daemon exited (${String(await daemon.exited)}):\n${tail(daemonOutput(daemon))}`,
            );
        }
        expect(await deadLetterCounts(sb, REGIONS, PREFIX)).toEqual({});
        const acked = writers.reduce((n, w) => n + w.acked.length, 0);
        console.log(
          `seed ${seed}: ${acked} acknowledged inserts present in all ${REGIONS.length} regions; ` +
            `${writers.reduce((n, w) => n + w.failures, 0)} writes refused during faults; convergence per fault:\n` +
            reports
              .map(
                (r) =>
                  `  ${r.fault}: ${r.convergedMs} ms (${r.writes} writes); capture restarts: ${r.recoveries.join(', ') || 'none'}`,
              )
              .join('\n'),
        );
        expect(acked).toBeGreaterThan(0);
        passed = true;
      } catch (err) {
        if (err instanceof Error)
          err.message = `seed ${seed} (replay with CDC_TEST_SEED=${seed}; daemon logs in ${dir}/logs): ${err.message}`;
        throw err;
      } finally {
        await Promise.all(writers.map((w) => w.stop()));
        for (const daemon of daemons.values())
          if (isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGKILL');
        await Promise.all([...pools.values()].map((p) => p.end()));
        await sandbox?.stop();
        if (passed) rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

/** The suite's pipeline: three regions, metrics on known ports, a short lease TTL. */
function faultConfigYaml(sandbox: Sandbox, metricsPorts: readonly number[]): string {
  const regions = sandbox.mysql
    .map(
      (m, i) =>
        `  ${m.region}:\n    mysql: { host: ${m.host}, port: ${m.port}, user: ${m.user}, password: "${m.password}" }\n` +
        `    metrics: { port: ${metricsPorts[i]} }`,
    )
    .join('\n');
  return [
    `regions:\n${regions}`,
    `kafka: { brokers: [${sandbox.kafka!.brokers.map((b) => `"${b}"`).join(', ')}], topicPrefix: ${PREFIX} }`,
    `redis: { url: "${sandbox.redis!.url}" }`,
    `capture: { lease: { ttlMs: ${LEASE_TTL_MS} } }`,
    'pipelines:\n  - name: app\n    tables: ["app.acked", "app.hot"]',
  ].join('\n');
}

/** Each region's table contents as comparable text, or the error that kept it from answering. */
async function contents(pool: mysql.Pool): Promise<{ acked: Set<number>; text: string } | string> {
  try {
    const [acked] = await pool.query<mysql.RowDataPacket[]>(
      'SELECT id, region, payload FROM app.acked ORDER BY id',
    );
    const [hot] = await pool.query<mysql.RowDataPacket[]>(
      'SELECT id, v, note FROM app.hot ORDER BY id',
    );
    return {
      acked: new Set(acked.map((r) => Number(r.id))),
      text: JSON.stringify([acked, hot]),
    };
  } catch (err) {
    return (err as Error).message;
  }
}

async function waitForConvergence(
  pools: ReadonlyMap<Region, mysql.Pool>,
  writers: readonly Writer[],
  daemons: ReadonlyMap<Region, DaemonProcess>,
  fault: string,
): Promise<void> {
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
  let last = '';
  for (;;) {
    const states = await Promise.all(REGIONS.map((r) => contents(pools.get(r)!)));
    const problems: string[] = [];
    states.forEach((state, i) => {
      if (typeof state === 'string') problems.push(`${REGIONS[i]} unreachable: ${state}`);
    });
    if (problems.length === 0) {
      const ready = states as { acked: Set<number>; text: string }[];
      for (const [i, state] of ready.entries()) {
        const missing = writers.flatMap((w) => w.acked).filter((id) => !state.acked.has(id));
        if (missing.length > 0)
          problems.push(
            `${REGIONS[i]} lacks ${missing.length} acknowledged inserts (e.g. ${missing.slice(0, 3).join(', ')})`,
          );
      }
      const first = ready[0]!.text;
      ready.forEach((state, i) => {
        if (state.text !== first) problems.push(`${REGIONS[i]} differs from ${REGIONS[0]}`);
      });
      if (problems.length === 0) return;
    }
    last = problems.join('; ');
    for (const [region, daemon] of daemons)
      if (!isRunning(daemon))
        throw new Error(
          `after "${fault}": ${region}'s daemon exited (${String(await daemon.exited)}):\n${tail(daemonOutput(daemon))}`,
        );
    if (Date.now() > deadline)
      throw new Error(
        `after "${fault}" the regions did not converge within ${CONVERGE_TIMEOUT_MS} ms: ${last}`,
      );
    await sleep(250);
  }
}

/** One counter of a daemon's /metrics, by one of its labels. */
async function counterByLabel(
  port: number,
  name: string,
  label: string,
): Promise<Record<string, number>> {
  const { samples } = await scrape(`http://127.0.0.1:${port}`);
  return Object.fromEntries(
    samples.filter((s) => s.name === name).map((s) => [s.labels[label] ?? '', s.value]),
  );
}
