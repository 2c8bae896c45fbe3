/**
 * Capture's delivery guarantee under crashes (DESIGN.md §6): the checkpoint
 * moves only over what Kafka acknowledged, so a daemon killed with SIGKILL at
 * any point replays and never skips, and per-key order survives the replay.
 * The daemon runs as its own process, exactly as `cdc-replicator run`.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import { topicName } from '../../../src/bus/envelope.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { ChangeWorkload, tableRows, verifyChangeStream } from '../../support/change-workload.js';
import { loadCaptureCheckpoint, waitForCaptureCheckpoint } from '../../support/checkpoint.js';
import { sandboxRegionOptions, uniqueName } from '../../support/config.js';
import {
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import { readTopicsToEnd } from '../../support/kafka.js';
import {
  binlogPosition,
  connectApp,
  positionCovers,
  prepareRegion,
} from '../../support/mariadb.js';
import { randomInt, seededRandom, withSeed as withSeedOf } from '../../support/random.js';

jest.setTimeout(300_000);

const REGION = 'us-east';
/** Committed changes in the kill test (CDC_KILL_CHANGES overrides, e.g. for a longer soak). */
const KILL_TEST_CHANGES = Number(process.env.CDC_KILL_CHANGES ?? 50_000);
const KILLS = 4;

describe('capture: crash and restart', () => {
  let sandbox: Sandbox;
  let dir: string;
  let schema: string;
  let configFile: string;
  let options: RuntimeOptions;
  let app: mysql.Connection;
  let daemon: DaemonProcess | undefined;
  let failed = false;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [REGION], redis: true });
    dir = mkdtempSync(join(tmpdir(), 'cdc-crash-'));
    schema = uniqueName('crash');
    const config = sandboxRegionOptions(sandbox, REGION, {
      tables: [`${schema}.*`],
      topicPrefix: uniqueName('crash'),
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

  async function startDaemon(): Promise<DaemonProcess> {
    const started = startDaemonProcess(configFile, REGION, join(dir, 'logs'));
    daemon = started;
    await waitUntilRunning(started);
    return started;
  }

  function topicOf(table: string): string {
    return topicName(options.kafka.topicPrefix, REGION, schema, table);
  }

  function withSeed(body: (seed: number) => Promise<void>): Promise<void> {
    return withSeedOf(body, () => {
      failed = true;
    });
  }

  it('a SIGTERM restart in the middle of a write stream loses nothing and repeats at most one transaction', () =>
    withSeed(async (seed) => {
      const workload = new ChangeWorkload(schema, 'calm', seededRandom(seed), { hotKeys: 8 });
      await app.query(workload.ddl());
      await prepareRegion(options);
      await startDaemon();

      let restart: Promise<void> | undefined;
      const stopAt = randomInt(seededRandom(seed + 1), 500, 2500);
      await workload.run(app, 3000, (w) => {
        if (restart !== undefined || w.changes < stopAt || daemon === undefined) return;
        const stopping = daemon;
        restart = (async () => {
          expect(await stopDaemonProcess(stopping, 'SIGTERM')).toBe(0);
          await startDaemon();
        })();
        restart.catch(() => undefined); // awaited below, once the writer is done
      });
      await restart;
      await waitForCaptureCheckpoint(options, await binlogPosition(app), { daemon });
      expect(await stopDaemonProcess(daemon as DaemonProcess, 'SIGTERM')).toBe(0);

      const messages = await readTopicsToEnd(sandbox.kafka!.brokers, [topicOf('calm')]);
      const report = verifyChangeStream(messages, workload, await tableRows(app, schema, 'calm'));
      console.log(
        `SIGTERM restart after ${stopAt} of ${workload.changes} changes: ${report.messages} messages, ` +
          `${report.distinct} distinct, ${report.duplicates} duplicates`,
      );
      expect(report.missing).toEqual([]);
      expect(report.problems).toEqual([]);
      expect(report.distinct).toBe(workload.changes);
      // A graceful stop sends everything read and saves the checkpoint after
      // it; only the transaction being read when the binlog stream stopped
      // (its changes sent, its commit not yet seen) can come again.
      expect(report.duplicates).toBeLessThanOrEqual(workload.largestTransaction);
    }));

  it(`${KILLS} SIGKILLs at random points of a ${KILL_TEST_CHANGES}-change write stream: every change arrives, per-key order holds`, () =>
    withSeed(async (seed) => {
      const random = seededRandom(seed);
      const workload = new ChangeWorkload(schema, 'items', seededRandom(seed + 1));
      await app.query(workload.ddl());
      await prepareRegion(options);
      await startDaemon();

      // One kill point in each of KILLS equal slices of the middle 90% of the stream.
      const slice = (KILL_TEST_CHANGES * 0.9) / KILLS;
      const killPoints = Array.from({ length: KILLS }, (_, i) =>
        Math.floor(KILL_TEST_CHANGES * 0.05 + slice * i + random() * slice),
      );
      const kills: { atChange: number; restartMs: number }[] = [];
      let supervisor: Promise<void> = Promise.resolve();
      let busy = false;
      const started = Date.now();
      await workload.run(app, KILL_TEST_CHANGES, (w) => {
        const next = killPoints[kills.length];
        if (busy || next === undefined || w.changes < next || daemon === undefined) return;
        // Kill and restart beside the writer: the binlog keeps growing meanwhile.
        busy = true;
        const victim = daemon;
        const atChange = w.changes;
        supervisor = (async () => {
          const killedAt = Date.now();
          expect(await stopDaemonProcess(victim, 'SIGKILL')).toBe('SIGKILL');
          await startDaemon();
          kills.push({ atChange, restartMs: Date.now() - killedAt });
          busy = false;
        })();
        // Awaited once the writer is done; until then a failure must not count as unhandled.
        supervisor.catch(() => undefined);
      });
      const writeMs = Date.now() - started;
      await supervisor;
      expect(kills).toHaveLength(KILLS);

      const target = await binlogPosition(app);
      await waitForCaptureCheckpoint(options, target, { timeoutMs: 120_000, daemon });
      const drainMs = Date.now() - started - writeMs;
      expect(await stopDaemonProcess(daemon as DaemonProcess, 'SIGTERM')).toBe(0);

      const messages = await readTopicsToEnd(sandbox.kafka!.brokers, [topicOf('items')]);
      const finalRows = await tableRows(app, schema, 'items');
      expect(finalRows).toEqual(workload.rows);
      const report = verifyChangeStream(messages, workload, finalRows);
      console.log(
        `kill -9 test (seed ${seed}): ${workload.changes} changes in ${workload.transactions} transactions ` +
          `written in ${writeMs} ms, drained ${drainMs} ms later; kills at ` +
          `${kills.map((k) => `${k.atChange} (back in ${k.restartMs} ms)`).join(', ')}; ` +
          `${report.messages} messages, ${report.distinct} distinct, ${report.duplicates} duplicates ` +
          `(${(report.duplicates / KILLS).toFixed(0)} per kill)`,
      );
      expect(report.missing.slice(0, 20)).toEqual([]);
      expect(report.problems.slice(0, 20)).toEqual([]);
      expect(report.distinct).toBe(workload.changes);
      // A kill replays what was published after the last saved checkpoint:
      // about checkpointIntervalMs (500 ms) worth of changes plus the save's
      // latency. Two seconds of writes per kill is a generous ceiling; a
      // checkpoint that lagged far behind Kafka would replay much more.
      const changesPerSecond = workload.changes / (writeMs / 1000);
      expect(report.duplicates).toBeLessThanOrEqual(KILLS * Math.ceil(changesPerSecond * 2));
    }));

  // Random kills rarely land between reading a change and Kafka's ack, because
  // that gap is a few ms while Kafka is healthy. With Kafka down the gap is as
  // long as the outage: the checkpoint must stay behind what was read.
  it('a SIGKILL while Kafka is down loses nothing: the checkpoint never passes unacknowledged changes', () =>
    withSeed(async (seed) => {
      const workload = new ChangeWorkload(schema, 'stalled', seededRandom(seed));
      await app.query(workload.ddl());
      await prepareRegion(options);
      const first = await startDaemon();
      await workload.run(app, 500);
      const acknowledged = await waitForCaptureCheckpoint(options, await binlogPosition(app), {
        daemon: first,
      });

      await sandbox.services.kafka!.stop();
      await workload.run(app, 2000);
      const unacknowledged = await binlogPosition(app);
      // Several checkpoint intervals: time for a wrong save to happen.
      await sleep(3_000);
      const saved = await loadCaptureCheckpoint(options);
      expect(saved).toBeDefined();
      expect(positionCovers(saved as string, acknowledged)).toBe(true);
      expect(positionCovers(saved as string, unacknowledged)).toBe(false);
      expect(await stopDaemonProcess(first, 'SIGKILL')).toBe('SIGKILL');

      await sandbox.services.kafka!.start();
      const second = await startDaemon();
      await waitForCaptureCheckpoint(options, await binlogPosition(app), { daemon: second });
      expect(await stopDaemonProcess(second, 'SIGTERM')).toBe(0);
      const messages = await readTopicsToEnd(sandbox.kafka!.brokers, [topicOf('stalled')]);
      const report = verifyChangeStream(
        messages,
        workload,
        await tableRows(app, schema, 'stalled'),
      );
      console.log(
        `SIGKILL with Kafka down (seed ${seed}): checkpoint stayed at ${saved}; ` +
          `${report.messages} messages, ${report.distinct} distinct, ${report.duplicates} duplicates`,
      );
      expect(report.missing.slice(0, 20)).toEqual([]);
      expect(report.problems.slice(0, 20)).toEqual([]);
      expect(report.distinct).toBe(workload.changes);
    }));
});
