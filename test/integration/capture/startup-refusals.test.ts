/**
 * `run` refuses to start capture where it could not capture correctly, and
 * says what to fix: server settings capture depends on (DESIGN.md §1), tables
 * without a primary key, and a database `prepare` has not set up. Each
 * refusal exits with code 1 from the real executable. What the daemon can
 * repair itself (a table's version columns and triggers) it repairs instead.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { sandboxRegionOptions, uniqueName } from '../../support/config.js';
import {
  daemonOutput,
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import { connectApp, prepareRegion } from '../../support/mariadb.js';

jest.setTimeout(180_000);

const REGION = 'us-east';

describe('capture: startup refusals', () => {
  let sandbox: Sandbox;
  let dir: string;
  let app: mysql.Connection;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [REGION], redis: false });
    dir = mkdtempSync(join(tmpdir(), 'cdc-refusals-'));
  });

  afterAll(async () => {
    for (const daemon of daemons) if (isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGKILL');
    await app?.end();
    await sandbox?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** A configuration for `tables`, written to its own file. */
  function configFor(
    tables: string[],
    internalSchema?: string,
  ): {
    file: string;
    options: ReturnType<typeof sandboxRegionOptions>['options'];
  } {
    const name = uniqueName('cfg');
    const config = sandboxRegionOptions(sandbox, REGION, {
      tables,
      stateDir: join(dir, name, 'state'),
      ...(internalSchema === undefined ? {} : { internalSchema }),
    });
    return { file: writeConfigFile(join(dir, name), config.yaml), options: config.options };
  }

  /** Runs `cdc-replicator run` and waits for it to end on its own. */
  async function runUntilExit(
    configFile: string,
  ): Promise<{ code: number | string; output: string }> {
    const daemon = startDaemonProcess(configFile, REGION, join(dir, 'logs'));
    daemons.push(daemon);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      daemon.exited,
      new Promise<'still running'>(
        (resolve) => (timer = setTimeout(() => resolve('still running'), 30_000)),
      ),
    ]);
    clearTimeout(timer);
    if (code === 'still running') await stopDaemonProcess(daemon, 'SIGKILL');
    return { code, output: daemonOutput(daemon) };
  }

  /** The line `run` prints on stderr when it refuses (the pino log has the same text as JSON). */
  function refusal(output: string): string {
    const start = output.indexOf('cdc-replicator run: ');
    return start < 0 ? `(no refusal printed) ${output}` : output.slice(start);
  }

  let prepared: { file: string; options: ReturnType<typeof sandboxRegionOptions>['options'] };

  it('a prepared table starts cleanly with the right binlog settings (control for the cases below)', async () => {
    const schema = uniqueName('ok');
    prepared = configFor([`${schema}.items`]);
    app = await connectApp(prepared.options);
    await app.query(`CREATE DATABASE ${schema}`);
    await app.query(`CREATE TABLE ${schema}.items (id INT PRIMARY KEY, v INT)`);
    await prepareRegion(prepared.options);
    const daemon = startDaemonProcess(prepared.file, REGION, join(dir, 'logs'));
    daemons.push(daemon);
    await waitUntilRunning(daemon);
    expect(await stopDaemonProcess(daemon, 'SIGTERM')).toBe(0);
  });

  it.each([
    ['binlog_format', 'STATEMENT', 'ROW'],
    ['binlog_format', 'MIXED', 'ROW'],
    ['binlog_row_image', 'MINIMAL', 'FULL'],
    ['binlog_row_image', 'NOBLOB', 'FULL'],
    ['binlog_row_metadata', 'MINIMAL', 'FULL'],
  ])(
    '%s=%s is refused, naming the setting and the value to set',
    async (variable, wrong, right) => {
      await app.query(`SET GLOBAL ${variable} = '${wrong}'`);
      try {
        const { code, output } = await runUntilExit(prepared.file);
        const message = refusal(output);
        expect(code).toBe(1);
        expect(message).toContain(`${variable} is ${wrong}, needs ${right}`);
        expect(message).toContain(`SET GLOBAL ${variable} = '${right}'`);
      } finally {
        await app.query(`SET GLOBAL ${variable} = '${right}'`);
      }
    },
  );

  it('lists every wrong setting at once', async () => {
    await app.query("SET GLOBAL binlog_format = 'STATEMENT'");
    await app.query("SET GLOBAL binlog_row_image = 'MINIMAL'");
    try {
      const { code, output } = await runUntilExit(prepared.file);
      const message = refusal(output);
      expect(code).toBe(1);
      expect(message).toContain('binlog_format is STATEMENT, needs ROW');
      expect(message).toContain('binlog_row_image is MINIMAL, needs FULL');
    } finally {
      await app.query("SET GLOBAL binlog_format = 'ROW'");
      await app.query("SET GLOBAL binlog_row_image = 'FULL'");
    }
  });

  it('refuses a configured table without a primary key, by name', async () => {
    const schema = uniqueName('nopk');
    await app.query(`CREATE DATABASE ${schema}`);
    await app.query(`CREATE TABLE ${schema}.keyed (id INT PRIMARY KEY, v INT)`);
    await app.query(`CREATE TABLE ${schema}.heap (id INT, v INT, UNIQUE KEY (id))`);
    const { code, output } = await runUntilExit(configFor([`${schema}.*`]).file);
    const message = refusal(output);
    expect(code).toBe(1);
    expect(message).toContain('without a primary key');
    expect(message).toContain(`${schema}.heap`);
    expect(message).not.toContain(`${schema}.keyed`);
  });

  it('refuses a database whose internal schema is missing, saying to run prepare', async () => {
    const schema = uniqueName('raw');
    const internal = uniqueName('cdcint');
    await app.query(`CREATE DATABASE ${schema}`);
    await app.query(`CREATE TABLE ${schema}.items (id INT PRIMARY KEY, v INT)`);
    const { code, output } = await runUntilExit(configFor([`${schema}.items`], internal).file);
    const message = refusal(output);
    expect(code).toBe(1);
    expect(message).toContain('prepare has not been run');
    expect(message).toContain(`create schema ${internal}`);
    expect(message).toContain(`cdc-replicator prepare --config <file> --region ${REGION}`);
  });

  it('repairs at start what a prepared database lacks for a table (version columns, triggers) and runs', async () => {
    const schema = uniqueName('drift');
    await app.query(`CREATE DATABASE ${schema}`);
    await app.query(`CREATE TABLE ${schema}.items (id INT PRIMARY KEY, v INT)`);
    const daemon = startDaemonProcess(
      configFor([`${schema}.items`]).file,
      REGION,
      join(dir, 'logs'),
    );
    daemons.push(daemon);
    await waitUntilRunning(daemon);
    const [columns] = await app.query<mysql.RowDataPacket[]>(
      `SELECT COLUMN_NAME AS name, EXTRA AS extra FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'items' AND COLUMN_NAME LIKE '\\_cdc\\_%'`,
      [schema],
    );
    expect(columns.map((c) => [String(c.name), /INVISIBLE/i.test(String(c.extra))]).sort()).toEqual(
      [
        ['_cdc_ts', true],
        ['_cdc_ver', true],
      ],
    );
    const [triggers] = await app.query<mysql.RowDataPacket[]>(
      `SELECT TRIGGER_NAME AS name FROM information_schema.TRIGGERS
        WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = 'items' ORDER BY TRIGGER_NAME`,
      [schema],
    );
    expect(triggers.map((t) => String(t.name))).toEqual([
      '_cdc_ad_items',
      '_cdc_bi_items',
      '_cdc_bu_items',
    ]);
    expect(await stopDaemonProcess(daemon, 'SIGTERM')).toBe(0);
  });
});
