import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Child-process bookkeeping for the launcher. Two promises it keeps:
 *
 * 1. Nothing it started outlives the Node process that started it on a normal
 *    exit, an uncaught error or SIGINT/SIGTERM: an `exit` hook SIGKILLs every
 *    tracked child synchronously and removes the scratch directories.
 * 2. A SIGKILLed owner cannot run hooks, so every owner also writes its pids
 *    to a registry file; the next launcher start reaps children of owners that
 *    are gone (matching each pid's command line against its scratch dir, so a
 *    recycled pid is never touched).
 */

const REGISTRY_DIR = join(tmpdir(), 'cdc-sandbox-registry');

interface RegistryEntry {
  pid: number;
  /** Substring of the child's command line (its scratch dir) that proves the pid is still ours. */
  marker: string;
}

interface RegistryFile {
  owner: number;
  children: RegistryEntry[];
  dirs: string[];
}

const live = new Map<number, RegistryEntry>();
const scratchDirs = new Set<string>();
let hooksInstalled = false;

function registryPath(): string {
  return join(REGISTRY_DIR, `${process.pid}.json`);
}

function persistRegistry(): void {
  mkdirSync(REGISTRY_DIR, { recursive: true });
  const file: RegistryFile = {
    owner: process.pid,
    children: [...live.values()],
    dirs: [...scratchDirs],
  };
  if (file.children.length === 0 && file.dirs.length === 0) {
    rmSync(registryPath(), { force: true });
    return;
  }
  writeFileSync(registryPath(), JSON.stringify(file));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else: alive, and not ours.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function commandLineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function killIfOurs(entry: RegistryEntry): void {
  const cmdline = commandLineOf(entry.pid);
  if (cmdline === undefined || !cmdline.includes(entry.marker)) return;
  try {
    process.kill(entry.pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Kills children left behind by launcher owners that died without cleaning up. */
export function reapOrphans(): number {
  let reaped = 0;
  let names: string[];
  try {
    names = readdirSync(REGISTRY_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  for (const name of names) {
    const owner = Number.parseInt(name, 10);
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue;
    const path = join(REGISTRY_DIR, name);
    let file: RegistryFile;
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as RegistryFile;
    } catch (err) {
      if (err instanceof SyntaxError) {
        rmSync(path, { force: true }); // torn write by a dying owner
        continue;
      }
      throw err;
    }
    for (const child of file.children) {
      killIfOurs(child);
      reaped += 1;
    }
    for (const dir of file.dirs) rmSync(dir, { recursive: true, force: true });
    rmSync(path, { force: true });
  }
  return reaped;
}

function killAllNow(): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // best effort while the process ends; the next launcher's reaping catches the rest
    }
  }
  cleanups.clear();
  for (const entry of live.values()) killIfOurs(entry);
  live.clear();
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  scratchDirs.clear();
  rmSync(registryPath(), { force: true });
}

function onSignal(signal: NodeJS.Signals): void {
  // A host program with its own handler (the demo, which drains its daemons
  // before stopping the services) decides; the exit hook still kills whatever
  // is left when the process ends. Otherwise kill everything now, restore the
  // default action and re-raise so the exit status stays honest.
  if (process.listenerCount(signal) > 1) return;
  killAllNow();
  process.removeListener(signal, onSignal);
  process.kill(process.pid, signal);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

const cleanups = new Set<() => void>();

/**
 * Registers a synchronous clean-up to run when the process exits or is
 * interrupted (SIGINT/SIGTERM) before its owner released it, e.g. removing
 * the docker sandbox's containers. Returns the function that unregisters it.
 */
export function trackCleanup(cleanup: () => void): () => void {
  installHooks();
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
  };
}

/** Registers a scratch directory that must be removed if the process dies. */
export function trackScratchDir(dir: string): void {
  installHooks();
  scratchDirs.add(dir);
  persistRegistry();
}

/** Forgets a scratch directory (after it was removed, or to keep it for a post-mortem). */
export function untrackScratchDir(dir: string): void {
  scratchDirs.delete(dir);
  persistRegistry();
}

/** A stopped sandbox's scratch directory: removed, or kept (and said) for a post-mortem; forgotten either way. */
export function releaseScratchDir(
  dir: string,
  keep: boolean,
  log: (message: string) => void,
): void {
  if (keep) log(`sandbox files kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
  untrackScratchDir(dir);
}

export interface ProcessSpec {
  name: string;
  command: string;
  args: readonly string[];
  /** Everything the child prints goes here. */
  logFile: string;
  /** A string in the child's command line proving a pid is ours (its scratch dir). */
  marker: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** One child process: started, watched, and stopped with a deadline. */
export class ManagedProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #exitDescription: string | undefined;

  constructor(readonly spec: ProcessSpec) {}

  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null
      ? this.#child.pid
      : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** How the last run ended, e.g. `exit code 1` or `signal SIGKILL`. */
  get exitDescription(): string | undefined {
    return this.#exitDescription;
  }

  start(): void {
    if (this.running) return;
    installHooks();
    const fd = openSync(this.spec.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.spec.command, [...this.spec.args], {
        cwd: this.spec.cwd,
        env: this.spec.env ?? process.env,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    this.#child = child;
    this.#exitDescription = undefined;
    this.#exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exitDescription = signal === null ? `exit code ${String(code)}` : `signal ${signal}`;
        if (child.pid !== undefined) live.delete(child.pid);
        persistRegistry();
        resolve();
      });
      child.once('error', (err) => {
        this.#exitDescription = `spawn failed: ${err.message}`;
        resolve();
      });
    });
    if (child.pid !== undefined) {
      live.set(child.pid, { pid: child.pid, marker: this.spec.marker });
      persistRegistry();
    }
  }

  /** Resolves when the current run has ended. */
  waitForExit(): Promise<void> {
    return this.#exited;
  }

  /** SIGTERM, then SIGKILL if the process has not exited within `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return this.#exited;
    child.kill('SIGTERM');
    const deadline = new AbortController();
    const exitedInTime = await Promise.race([
      this.#exited.then(() => true),
      sleep(timeoutMs, false, { signal: deadline.signal }).catch(() => false),
    ]);
    deadline.abort(); // release the timer so it cannot keep the event loop alive
    if (!exitedInTime) {
      child.kill('SIGKILL');
      await this.#exited;
    }
  }

  /** SIGKILL at once, like a crash. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child !== undefined && this.running) child.kill('SIGKILL');
    await this.#exited;
  }
}
