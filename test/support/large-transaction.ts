import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import { topicName } from '../../src/bus/envelope.js';
import { startSandbox } from '../../src/sandbox/index.js';
import { waitForCaptureCheckpoint } from './checkpoint.js';
import { sandboxRegionOptions, uniqueName } from './config.js';
import {
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from './daemon-process.js';
import { topicRowCount } from './kafka.js';
import { binlogPosition, connectApp, prepareRegion } from './mariadb.js';
import { sampleRss } from './memory.js';

export interface LargeTransactionResult {
  rows: number;
  /** Changes in the table's topic once the checkpoint passed the transaction. */
  messages: number;
  /** RSS of the idle daemon before the transaction. */
  baselineRssBytes: number;
  /** Highest RSS of the daemon process while the transaction was written and captured. */
  peakRssBytes: number;
  /** Time MySQL took to execute and commit the transaction. */
  writeMs: number;
  /** From the commit until capture's checkpoint passed the transaction (all acknowledged). */
  captureMs: number;
  /** Bytes of the transaction's binlog events (binlog growth). */
  binlogBytes: number;
}

/**
 * One transaction inserting `rows` rows of about 200 bytes (one INSERT …
 * SELECT over MariaDB's sequence engine), captured by a daemon process.
 * Measures the daemon's RSS every 250 ms from before the statement until
 * capture's checkpoint passed the transaction.
 */
export async function runLargeTransaction(
  rows: number,
  { maxInFlightBytes }: { maxInFlightBytes?: number } = {},
): Promise<LargeTransactionResult> {
  const region = 'us-east';
  const sandbox = await startSandbox({ regions: [region], redis: true });
  const dir = mkdtempSync(join(tmpdir(), 'cdc-large-txn-'));
  let daemon: DaemonProcess | undefined;
  try {
    const schema = uniqueName('large');
    const config = sandboxRegionOptions(sandbox, region, {
      tables: [`${schema}.big`],
      topicPrefix: uniqueName('large'),
      extraYaml:
        maxInFlightBytes === undefined
          ? undefined
          : `capture: { maxInFlightBytes: ${maxInFlightBytes} }`,
    });
    const { options } = config;
    const app = await connectApp(options);
    try {
      await app.query(`CREATE DATABASE ${schema}`);
      await app.query(
        `CREATE TABLE ${schema}.big (id INT NOT NULL PRIMARY KEY, account INT NOT NULL, note VARCHAR(180) NOT NULL)`,
      );
      await prepareRegion(options);
      daemon = startDaemonProcess(writeConfigFile(dir, config.yaml), region, join(dir, 'logs'));
      await waitUntilRunning(daemon);
      const pid = daemon.child.pid as number;
      await sleep(1_000);
      const idle = sampleRss(pid);
      await sleep(1_000);
      const baselineRssBytes = Math.max(...idle.samples, idle.stop());

      const [logsBefore] = await app.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
      const rss = sampleRss(pid);
      const started = Date.now();
      // id, a number and ~180 characters: about 200 bytes of row per event.
      await app.query(
        `INSERT INTO ${schema}.big (id, account, note)
           SELECT seq, seq MOD 1000, CONCAT(LPAD(seq, 10, '0'), ' ', REPEAT('n', 169))
           FROM ${schema}.seq_1_to_${rows}`,
      );
      const writeMs = Date.now() - started;
      const [logsAfter] = await app.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
      await waitForCaptureCheckpoint(options, await binlogPosition(app), {
        timeoutMs: 600_000,
        daemon,
      });
      const captureMs = Date.now() - started - writeMs;
      const peakRssBytes = rss.stop();
      const messages = await topicRowCount(
        sandbox.kafka!.brokers,
        topicName(options.kafka.topicPrefix, region, schema, 'big'),
      );
      const exit = await stopDaemonProcess(daemon, 'SIGTERM');
      if (exit !== 0) throw new Error(`daemon exited with ${String(exit)} on SIGTERM, expected 0`);
      const size = (list: mysql.RowDataPacket[]): number =>
        list.reduce((sum, r) => sum + Number(r.File_size), 0);
      return {
        rows,
        messages,
        baselineRssBytes,
        peakRssBytes,
        writeMs,
        captureMs,
        binlogBytes: size(logsAfter) - size(logsBefore),
      };
    } finally {
      await app.end();
    }
  } finally {
    if (daemon !== undefined && isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGKILL');
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
