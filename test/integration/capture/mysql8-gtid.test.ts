/**
 * Capture's positions on MySQL 8, where they are GTID sets (`uuid:1-N`, every
 * executed transaction) rather than MariaDB's `domain-server-seq`: a daemon
 * killed with SIGKILL resumes from the saved set and loses nothing (the
 * same guarantee crash-recovery.test.ts checks on MariaDB), a saved set
 * whose transactions the server purged is refused by name, never skipped,
 * and the capture lag gauges read sensibly. The daemon runs as its own
 * process, exactly as `cdc-replicator run`.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import { topicName } from '../../../src/bus/envelope.js';
import { positionCovers } from '../../../src/capture/gtid-position.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { ChangeWorkload, tableRows, verifyChangeStream } from '../../support/change-workload.js';
import { loadCaptureCheckpoint } from '../../support/checkpoint.js';
import { sandboxRegionOptions, uniqueName } from '../../support/config.js';
import {
  daemonOutput,
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  tail,
  waitForLogMessage,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import { readTopicsToEnd } from '../../support/kafka.js';
import { connectApp } from '../../support/mariadb.js';
import { randomInt, seededRandom, withSeed as withSeedOf } from '../../support/random.js';

// A fresh machine's first run also fetches MySQL 8 through Maven.
jest.setTimeout(300_000);

const REGION = 'm1';
const KILL_TEST_CHANGES = Number(process.env.CDC_KILL_CHANGES ?? 6_000);
const KILLS = 2;

describe('capture on MySQL 8: GTID-set positions', () => {
  let sandbox: Sandbox;
  let dir: string;
  let schema: string;
  let configFile: string;
  let options: RuntimeOptions;
  let app: mysql.Connection;
  let daemon: DaemonProcess | undefined;
  let failed = false;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [{ name: REGION, engine: 'mysql8' }], redis: true });
    dir = mkdtempSync(join(tmpdir(), 'cdc-mysql8-gtid-'));
    schema = uniqueName('gtid');
    const config = sandboxRegionOptions(sandbox, REGION, {
      tables: [`${schema}.*`],
      topicPrefix: uniqueName('gtid'),
    });
    options = config.options;
    configFile = writeConfigFile(dir, config.yaml);
    app = await connectApp(options, { multipleStatements: true });
    await app.query(`CREATE DATABASE ${schema}`);
  });

  afterAll(async () => {
    if (daemon !== undefined && isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGKILL');
    await app?.end();
    await sandbox?.stop();
    if (dir !== undefined && !failed) rmSync(dir, { recursive: true, force: true });
    else if (dir !== undefined) console.error(`daemon logs kept in ${dir}/logs`);
  });

  function withSeed(body: (seed: number) => Promise<void>): Promise<void> {
    return withSeedOf(body, () => {
      failed = true;
    });
  }

  /** `prepare` as on 8.0.12 it must run: version columns visible (no INVISIBLE there). */
  async function prepare(): Promise<void> {
    const admin = await connectMysql(options.mysql);
    try {
      await applyPrepare(
        admin,
        await planPrepare(admin, options, options.internalSchema, { visibleVersionColumns: true }),
      );
    } finally {
      await admin.end();
    }
  }

  async function startDaemon(extraArgs: string[] = []): Promise<DaemonProcess> {
    const started = startDaemonProcess(configFile, REGION, join(dir, 'logs'), extraArgs);
    daemon = started;
    await waitUntilRunning(started);
    return started;
  }

  async function scalar(sql: string, params: unknown[] = []): Promise<string> {
    const [rows] = await app.query<mysql.RowDataPacket[]>(sql, params);
    return String(Object.values(rows[0] ?? {})[0] ?? '').replace(/\s+/g, '');
  }

  /** Everything the server executed so far (`gtid_executed`). */
  const executed = (): Promise<string> => scalar('SELECT @@GLOBAL.gtid_executed');

  /** Waits until the saved checkpoint covers `target`: everything up to it is in Kafka. */
  async function waitForCheckpoint(target: string, running: DaemonProcess): Promise<string> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const saved = await loadCaptureCheckpoint(options);
      if (saved !== undefined && positionCovers(saved, target) === true) return saved;
      if (!isRunning(running))
        throw new Error(
          `daemon exited with the checkpoint at ${saved ?? '(none)'}, short of ${target}:\n${tail(daemonOutput(running))}`,
        );
      if (Date.now() > deadline)
        throw new Error(`checkpoint ${saved ?? '(none)'} did not reach ${target}`);
      await sleep(200);
    }
  }

  /** The daemon's gauges for this region, read from its /metrics. */
  async function captureGauges(
    running: DaemonProcess,
  ): Promise<{ bytes: number | undefined; seconds: number | undefined }> {
    const line = daemonOutput(running)
      .split('\n')
      .find((l) => l.includes('"msg":"daemon running"'));
    const port = (JSON.parse(line ?? '{}') as { metricsPort?: number }).metricsPort;
    if (port === undefined) throw new Error('the daemon did not log its metrics port');
    // node:http without keep-alive: fetch's pooled socket would outlive the test.
    const text = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    const value = (name: string): number | undefined => {
      const match = new RegExp(`^${name}\\{region="${REGION}"\\} (\\S+)$`, 'm').exec(text);
      return match === null ? undefined : Number(match[1]);
    };
    return {
      bytes: value('cdc_capture_position_lag_bytes'),
      seconds: value('cdc_capture_lag_seconds'),
    };
  }

  it(`${KILLS} SIGKILLs while an application writes: the daemon resumes from its saved GTID set, every change arrives, lag gauges are sane`, () =>
    withSeed(async (seed) => {
      const random = seededRandom(seed);
      const workload = new ChangeWorkload(schema, 'items', seededRandom(seed + 1), { hotKeys: 8 });
      await app.query(workload.ddl());
      await prepare();
      await startDaemon();

      const killPoints = Array.from({ length: KILLS }, (_, i) =>
        randomInt(
          random,
          Math.floor((KILL_TEST_CHANGES * (i + 0.1)) / KILLS),
          Math.floor((KILL_TEST_CHANGES * (i + 0.8)) / KILLS),
        ),
      );
      const kills: number[] = [];
      let supervisor: Promise<void> = Promise.resolve();
      let busy = false;
      const started = Date.now();
      await workload.run(app, KILL_TEST_CHANGES, (w) => {
        const next = killPoints[kills.length];
        if (busy || next === undefined || w.changes < next || daemon === undefined) return;
        busy = true;
        const victim = daemon;
        kills.push(w.changes);
        supervisor = (async () => {
          expect(await stopDaemonProcess(victim, 'SIGKILL')).toBe('SIGKILL');
          await startDaemon();
          busy = false;
        })();
        supervisor.catch(() => undefined); // awaited once the writer is done
      });
      const writeMs = Date.now() - started;
      await supervisor;
      expect(kills).toHaveLength(KILLS);

      const running = daemon as DaemonProcess;
      const checkpoint = await waitForCheckpoint(await executed(), running);
      // A MySQL GTID set of this server's own transactions, with no gaps.
      const uuid = await scalar('SELECT @@GLOBAL.server_uuid');
      expect(checkpoint).toMatch(new RegExp(`^${uuid}:1-\\d+$`));

      // Caught up: the position lag is at most a heartbeat or two, the lag in seconds small.
      let gauges = await captureGauges(running);
      for (let i = 0; i < 50 && (gauges.bytes === undefined || gauges.bytes > 16_384); i += 1) {
        await sleep(200);
        gauges = await captureGauges(running);
      }
      expect(gauges.bytes).toBeGreaterThanOrEqual(0);
      expect(gauges.bytes).toBeLessThanOrEqual(16_384);
      expect(gauges.seconds).toBeGreaterThanOrEqual(0);
      expect(gauges.seconds).toBeLessThan(30);

      expect(await stopDaemonProcess(running, 'SIGTERM')).toBe(0);
      const messages = await readTopicsToEnd(sandbox.kafka!.brokers, [
        topicName(options.kafka.topicPrefix, REGION, schema, 'items'),
      ]);
      const finalRows = await tableRows(app, schema, 'items');
      expect(finalRows).toEqual(workload.rows);
      const report = verifyChangeStream(messages, workload, finalRows);
      console.log(
        `MySQL 8 kill -9 test (seed ${seed}): ${workload.changes} changes in ${workload.transactions} transactions ` +
          `written in ${writeMs} ms; kills at ${kills.join(', ')}; checkpoint ${checkpoint}; ` +
          `${report.messages} messages, ${report.distinct} distinct, ${report.duplicates} duplicates; ` +
          `lag gauges ${gauges.bytes} bytes, ${gauges.seconds} s`,
      );
      expect(report.missing.slice(0, 20)).toEqual([]);
      expect(report.problems.slice(0, 20)).toEqual([]);
      expect(report.distinct).toBe(workload.changes);
      // As on MariaDB: a kill replays what was published after the last saved
      // checkpoint, a fraction of a second of writes; two seconds per kill is a
      // generous ceiling.
      const changesPerSecond = workload.changes / (writeMs / 1000);
      expect(report.duplicates).toBeLessThanOrEqual(KILLS * Math.ceil(changesPerSecond * 2));
    }));

  it('refuses a saved GTID set whose transactions were purged, naming them and the choices; --replay-from-oldest-binlog then starts, with an audit record', () =>
    withSeed(async (seed) => {
      const workload = new ChangeWorkload(schema, 'purged', seededRandom(seed));
      await app.query(workload.ddl());
      await prepare();
      const first = await startDaemon();
      await workload.run(app, 200);
      await waitForCheckpoint(await executed(), first);
      expect(await stopDaemonProcess(first, 'SIGTERM')).toBe(0);
      const saved = (await loadCaptureCheckpoint(options)) as string;

      // Changes the daemon never read, then gone from the server's binlogs.
      await workload.run(app, 200);
      await app.query('FLUSH BINARY LOGS');
      const [logs] = await app.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
      const newest = String(logs[logs.length - 1]?.Log_name);
      await app.query(`PURGE BINARY LOGS TO '${newest}'`);
      const missing = await scalar('SELECT GTID_SUBTRACT(@@GLOBAL.gtid_purged, ?)', [saved]);
      expect(missing).not.toBe('');

      const refused = startDaemonProcess(configFile, REGION, join(dir, 'logs'));
      daemon = refused;
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        refused.exited,
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 60_000))),
      ]);
      clearTimeout(timer);
      if (code === 'timeout') await stopDaemonProcess(refused, 'SIGKILL');
      const output = daemonOutput(refused);
      expect(code).toBe(1);
      expect(output).toContain(`capture cannot resume from its saved position '${saved}'`);
      expect(output).toContain(`purged from its binary logs: ${missing}`);
      expect(output).toContain('never skips ahead on its own');
      expect(output).toContain('--replay-from-oldest-binlog');
      expect(output).toContain('--accept-gap');
      // Nothing was saved over the old position.
      expect(await loadCaptureCheckpoint(options)).toBe(saved);

      // The operator's explicit choice starts it, and says so.
      const replaying = await startDaemon(['--replay-from-oldest-binlog']);
      await waitForLogMessage(
        replaying,
        'operator chose to replay from the oldest binlog on the server after the server purged binlogs the saved position still needed',
      );
      expect(daemonOutput(replaying)).toContain('"audit":"replay-from-oldest-binlog"');
      await workload.run(app, 50);
      const after = await waitForCheckpoint(await executed(), replaying);
      expect(positionCovers(after, saved)).toBe(true);
      expect(await stopDaemonProcess(replaying, 'SIGTERM')).toBe(0);
    }));
});
