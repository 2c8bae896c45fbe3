import { execFile, execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StartedTestContainer } from 'testcontainers';
import { EnvironmentError } from '../../core/errors.js';
import { trackCleanup } from '../processes.js';
import type { SandboxService } from '../types.js';

const execFileAsync = promisify(execFile);

/** Label on every container the docker sandbox starts: `<hostname>:<pid>` of its owner. */
export const OWNER_LABEL = 'org.cdc-replicator.sandbox-owner';
const OWNER = `${hostname()}:${process.pid}`;

type Testcontainers = typeof import('testcontainers');
let loaded: Promise<Testcontainers> | undefined;

/**
 * testcontainers, loaded on first use: the package is a devDependency (the
 * shipped daemon never starts containers), so a production install running
 * the demo in docker mode gets this error instead of a crash on import.
 * Ryuk, testcontainers' reaper, is off: its image would come from a registry,
 * and the sandbox removes its containers itself (on stop, on exit, and those
 * of dead owners at the next start).
 */
export function loadTestcontainers(): Promise<Testcontainers> {
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  loaded ??= import('testcontainers').catch((err: unknown) => {
    loaded = undefined;
    throw new EnvironmentError(
      'CDC_SANDBOX=docker needs the testcontainers package, a devDependency of the project: ' +
        'run `npm install` in a checkout (or `npm install testcontainers`), or use CDC_SANDBOX=local',
      { cause: err, code: 'PREREQUISITE_MISSING' },
    );
  });
  return loaded;
}

/** Removes containers whose owning process (on this host) is gone; returns how many. */
export function reapOrphanContainers(): number {
  let lines: string[];
  try {
    lines = execFileSync(
      'docker',
      [
        'ps',
        '-a',
        '--filter',
        `label=${OWNER_LABEL}`,
        '--format',
        `{{.ID}} {{.Label "${OWNER_LABEL}"}}`,
      ],
      { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .split('\n')
      .filter((l) => l.length > 0);
  } catch {
    return 0;
  }
  const orphans = lines
    .map((line) => line.split(' '))
    .filter(([, owner]) => {
      const [host, pid] = (owner ?? '').split(':');
      if (host !== hostname()) return false;
      const n = Number(pid);
      if (n === process.pid) return false;
      try {
        process.kill(n, 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code !== 'EPERM';
      }
    })
    .map(([id]) => id ?? '');
  if (orphans.length > 0) {
    try {
      execFileSync('docker', ['rm', '-f', '-v', ...orphans], { timeout: 30_000, stdio: 'ignore' });
    } catch {
      return 0;
    }
  }
  return orphans.length;
}

/** How one container of a service is made. */
export interface ContainerSpec {
  image: string;
  command: readonly string[];
  entrypoint?: readonly string[];
  environment?: Readonly<Record<string, string>>;
  /** host path → container path */
  binds?: readonly { source: string; target: string }[];
  /** `uid:gid`; default the image's user. */
  user?: string;
}

/**
 * One service as a container with host networking (it listens on its own
 * loopback port; no bridge address is ever used). `start` runs a fresh
 * container from the same spec, so a restart keeps the port, and the data,
 * which lives in bind-mounted directories of the sandbox's scratch dir.
 */
export class DockerService implements SandboxService {
  #container: StartedTestContainer | undefined;
  #pid: number | undefined;
  #untrack: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly spec: ContainerSpec,
    /** Resolves once the service answers; throws while it does not. */
    private readonly probe: () => Promise<void>,
    private readonly startTimeoutMs: number,
    /** Runs before each start (e.g. writes configuration). */
    private readonly prepare: () => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    if (this.#container !== undefined) return;
    this.prepare();
    const { GenericContainer } = await loadTestcontainers();
    let container = new GenericContainer(this.spec.image)
      .withNetworkMode('host')
      .withCommand([...this.spec.command])
      .withLabels({ [OWNER_LABEL]: OWNER })
      .withStartupTimeout(this.startTimeoutMs);
    if (this.spec.entrypoint !== undefined)
      container = container.withEntrypoint([...this.spec.entrypoint]);
    if (this.spec.environment !== undefined)
      container = container.withEnvironment({ ...this.spec.environment });
    if (this.spec.binds !== undefined) {
      container = container.withBindMounts(
        this.spec.binds.map((b) => ({ ...b, mode: 'rw' as const })),
      );
    }
    if (this.spec.user !== undefined) container = container.withUser(this.spec.user);
    let started: StartedTestContainer;
    try {
      started = await container.start();
    } catch (err) {
      throw new EnvironmentError(
        `${this.name}: could not start a container of ${this.spec.image}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    this.#container = started;
    const id = started.getId();
    this.#untrack = trackCleanup(() => {
      execFileSync('docker', ['rm', '-f', '-v', id], { timeout: 30_000, stdio: 'ignore' });
    });
    this.#pid = await this.#inspectPid(id);
    await this.#waitUntilReady(id);
  }

  async #inspectPid(id: string): Promise<number | undefined> {
    const { stdout } = await execFileAsync('docker', [
      'inspect',
      '--format',
      '{{.State.Running}} {{.State.Pid}}',
      id,
    ]);
    const [running, pid] = stdout.trim().split(' ');
    return running === 'true' && pid !== undefined && Number(pid) > 0 ? Number(pid) : undefined;
  }

  async #logTail(id: string): Promise<string> {
    try {
      const { stdout, stderr } = await execFileAsync('docker', ['logs', '--tail', '20', id]);
      return `${stdout}${stderr}`.trimEnd() || '(no output)';
    } catch (err) {
      return `(docker logs failed: ${String(err)})`;
    }
  }

  async #waitUntilReady(id: string): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    let lastError: unknown;
    let lastCheck = 0;
    for (;;) {
      if (Date.now() - lastCheck > 1000) {
        lastCheck = Date.now();
        if ((await this.#inspectPid(id)) === undefined) {
          const logs = await this.#logTail(id);
          await this.#remove();
          throw new EnvironmentError(
            `${this.name} exited during start-up (${this.spec.image}); its output:\n${logs}`,
          );
        }
      }
      try {
        await this.probe();
        return;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() > deadline) {
        const logs = await this.#logTail(id);
        await this.#remove();
        throw new EnvironmentError(
          `${this.name} (${this.spec.image}) did not answer within ${this.startTimeoutMs} ms; its output:\n${logs}`,
          { cause: lastError, retriable: true },
        );
      }
      await sleep(200);
    }
  }

  async #remove(): Promise<void> {
    const container = this.#container;
    this.#container = undefined;
    this.#pid = undefined;
    if (container === undefined) return;
    await execFileAsync('docker', ['rm', '-f', '-v', container.getId()]).catch(() => undefined);
    this.#untrack?.();
  }

  /** `docker stop` (SIGTERM, SIGKILL after 30 s), then the container is removed. */
  async stop(): Promise<void> {
    const container = this.#container;
    if (container === undefined) return;
    await container.stop({ timeout: 30_000, remove: true });
    this.#container = undefined;
    this.#pid = undefined;
    this.#untrack?.();
  }

  /** `docker kill` (SIGKILL, a crash), then the container is removed. */
  async kill(): Promise<void> {
    const container = this.#container;
    if (container === undefined) return;
    await execFileAsync('docker', ['kill', '--signal', 'KILL', container.getId()]).catch(
      () => undefined,
    );
    await this.#remove();
  }

  /** The host pid of the container's main process. */
  pids(): number[] {
    return this.#pid === undefined ? [] : [this.#pid];
  }
}
