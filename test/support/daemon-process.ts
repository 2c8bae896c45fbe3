import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

export interface DaemonProcess {
  child: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process ended. */
  exited: Promise<number | string>;
  logFile: string;
}

/**
 * Runs `cdc-replicator run` as its own process (built by the integration
 * globalSetup), logging to a file, so tests can SIGKILL or SIGTERM it like an
 * operator or a crash would.
 */
export function startDaemonProcess(
  configFile: string,
  region: string,
  logDir: string,
  extraArgs: string[] = [],
): DaemonProcess {
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${region}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--config', configFile, '--region', region, ...extraArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CDC_LOG_LEVEL: process.env.CDC_LOG_LEVEL ?? 'info' },
    },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return { child, exited, logFile };
}
