import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
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

let started = 0;

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
  started += 1;
  const logFile = join(logDir, `${region}-${Date.now()}-${started}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--config', configFile, '--region', region, ...extraArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CDC_LOG_LEVEL: process.env.CDC_LOG_LEVEL ?? 'info' },
    },
  );
  // Two sources into one file: neither may end it (the other could still
  // write); it ends once the process closed both pipes.
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | string>((resolve) => {
    // 'close' (not 'exit'): both pipes are drained by then; resolve once the file has it all.
    child.once('close', (code, signal) => log.end(() => resolve(code ?? signal ?? 'unknown')));
  });
  return { child, exited, logFile };
}

/** Writes a configuration file for daemon processes and returns its path. */
export function writeConfigFile(dir: string, yaml: string, name = 'cdc.yaml'): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** Whether the process has not ended yet. */
export function isRunning(daemon: DaemonProcess): boolean {
  return daemon.child.exitCode === null && daemon.child.signalCode === null;
}

/** What the daemon wrote so far (its JSON log lines and stderr). */
export function daemonOutput(daemon: DaemonProcess): string {
  try {
    return readFileSync(daemon.logFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/**
 * Waits until the daemon logged a line with message `msg` (the pino `msg`
 * field). Fails with the daemon's output when it exits first or time runs out.
 */
export async function waitForLogMessage(
  daemon: DaemonProcess,
  msg: string,
  timeoutMs = 30_000,
): Promise<void> {
  const needle = `"msg":${JSON.stringify(msg)}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (daemonOutput(daemon).includes(needle)) return;
    if (!isRunning(daemon)) {
      throw new Error(
        `daemon exited (${String(await daemon.exited)}) before logging "${msg}":\n${tail(daemonOutput(daemon))}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `daemon did not log "${msg}" within ${timeoutMs} ms:\n${tail(daemonOutput(daemon))}`,
      );
    }
    await sleep(100);
  }
}

/** Waits until the daemon finished starting (capture streaming). */
export function waitUntilRunning(daemon: DaemonProcess, timeoutMs = 30_000): Promise<void> {
  return waitForLogMessage(daemon, 'daemon running', timeoutMs);
}

/**
 * Sends `signal` and waits for the process to end. A process that outlives
 * `timeoutMs` is SIGKILLed and the call fails, so no test leaves one behind.
 */
export async function stopDaemonProcess(
  daemon: DaemonProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 30_000,
): Promise<number | string> {
  if (!isRunning(daemon)) return daemon.exited;
  daemon.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    daemon.exited,
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    throw new Error(
      `daemon did not exit within ${timeoutMs} ms of ${signal}:\n${tail(daemonOutput(daemon))}`,
    );
  }
  return outcome;
}

/** The last lines of a log, for failure messages. */
export function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}
