/**
 * On MySQL 8, `run` refuses to start capture where MySQL's own settings would
 * hide changes from it, and says what to fix: partial JSON updates in the
 * binlog carry only a diff, not the document. The check runs before anything
 * else at start, so the region needs no `prepare`.
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
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import { connectApp } from '../../support/mariadb.js';

// A fresh machine's first run also fetches MySQL 8 through Maven.
jest.setTimeout(300_000);

const REGION = 'm1';

describe('capture on MySQL 8: startup refusals', () => {
  let sandbox: Sandbox;
  let dir: string;
  let app: mysql.Connection;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({
      regions: [{ name: REGION, engine: 'mysql8' }],
      kafka: false,
      redis: false,
    });
    dir = mkdtempSync(join(tmpdir(), 'cdc-mysql8-refusals-'));
  });

  afterAll(async () => {
    for (const daemon of daemons) if (isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGKILL');
    await app?.end();
    await sandbox?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `cdc-replicator run` on a fresh configuration and returns its exit code and refusal. */
  async function runUntilExit(): Promise<{ code: number | string; message: string }> {
    const name = uniqueName('cfg');
    const config = sandboxRegionOptions(sandbox, REGION, {
      tables: [`${uniqueName('app')}.items`],
      stateDir: join(dir, name, 'state'),
    });
    app ??= await connectApp(config.options);
    const daemon = startDaemonProcess(
      writeConfigFile(join(dir, name), config.yaml),
      REGION,
      join(dir, 'logs'),
    );
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
    const output = daemonOutput(daemon);
    const start = output.indexOf('cdc-replicator run: ');
    return { code, message: start < 0 ? `(no refusal printed) ${output}` : output.slice(start) };
  }

  it("passes the server checks with the launcher's settings (control: 8.0.12 has no binlog_transaction_compression)", async () => {
    const { message } = await runUntilExit();
    // A later start-up step may still refuse (today: 8.0.12 has no INVISIBLE columns and
    // the region is not prepared); the server checks themselves must pass.
    expect(message).toContain('region m1');
    expect(message).not.toContain('not configured for capture');
  });

  it("binlog_row_value_options=PARTIAL_JSON is refused, naming the setting, why and SET GLOBAL binlog_row_value_options = ''", async () => {
    await app.query("SET GLOBAL binlog_row_value_options = 'PARTIAL_JSON'");
    try {
      const { code, message } = await runUntilExit();
      expect(code).toBe(1);
      expect(message).toContain('binlog_row_value_options is PARTIAL_JSON, needs to be empty');
      expect(message).toContain('partial JSON updates are not decoded');
      expect(message).toContain("SET GLOBAL binlog_row_value_options = ''");
    } finally {
      await app.query("SET GLOBAL binlog_row_value_options = ''");
    }
  });
});
