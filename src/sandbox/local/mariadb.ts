import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError } from '../../core/errors.js';
import { ManagedProcess } from '../processes.js';
import type { MySqlEndpoint, SandboxService } from '../types.js';
import { waitForSqlServer } from './sql-server.js';

const execFileAsync = promisify(execFile);

export interface LocalMariaDbOptions {
  region: string;
  /** Directory of this server alone: data, socket, logs. */
  dir: string;
  port: number;
  serverId: number;
  gtidDomainId: number;
  bufferPoolMb: number;
  programs: { mariadbd: string; mariadbInstallDb: string };
  startTimeoutMs?: number;
  /** More server options after the defaults, e.g. `--ssl-cert=...` for the TLS tests. */
  extraArgs?: readonly string[];
}

/**
 * One region's MariaDB as a local process, configured the way the capture
 * stage requires (DESIGN.md §1): binlog on, ROW format, FULL row image and
 * FULL row metadata, and a GTID domain of its own so regions' GTIDs never mix.
 */
export class LocalMariaDb implements SandboxService {
  readonly name: string;
  readonly endpoint: MySqlEndpoint;
  readonly #process: ManagedProcess;
  readonly #dataDir: string;
  readonly #tmpDir: string;
  #initialised = false;

  constructor(private readonly options: LocalMariaDbOptions) {
    this.name = `mariadb[${options.region}]`;
    this.#dataDir = join(options.dir, 'data');
    this.#tmpDir = join(options.dir, 'tmp');
    this.endpoint = {
      engine: 'mariadb',
      region: options.region,
      host: '127.0.0.1',
      port: options.port,
      // mariadb-install-db creates root@127.0.0.1 without a password.
      user: 'root',
      password: '',
      serverId: options.serverId,
      gtidDomainId: options.gtidDomainId,
    };
    const user = userInfo().username;
    this.#process = new ManagedProcess({
      name: this.name,
      command: options.programs.mariadbd,
      marker: options.dir,
      logFile: join(options.dir, 'mariadbd.out'),
      args: [
        '--no-defaults', // never read the machine's my.cnf: the system server must not influence ours
        `--datadir=${this.#dataDir}`,
        `--user=${user}`,
        '--bind-address=127.0.0.1',
        `--port=${options.port}`,
        `--socket=${join(options.dir, 'mysqld.sock')}`,
        `--pid-file=${join(options.dir, 'mysqld.pid')}`,
        `--log-error=${join(options.dir, 'error.log')}`,
        `--tmpdir=${join(options.dir, 'tmp')}`,
        `--server-id=${options.serverId}`,
        `--gtid-domain-id=${options.gtidDomainId}`,
        `--log-bin=${join(this.#dataDir, 'binlog')}`,
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--binlog-row-metadata=FULL',
        '--skip-name-resolve',
        '--character-set-server=utf8mb4',
        '--max-connections=500',
        `--innodb-buffer-pool-size=${options.bufferPoolMb}M`,
        // Test servers on temp dirs: the replicator's durability is under test, not MariaDB's fsync.
        '--innodb-flush-log-at-trx-commit=2',
        '--performance-schema=OFF',
        ...(options.extraArgs ?? []),
      ],
    });
  }

  async #initialise(): Promise<void> {
    if (this.#initialised) return;
    mkdirSync(this.#tmpDir, { recursive: true });
    try {
      await execFileAsync(this.options.programs.mariadbInstallDb, [
        '--no-defaults',
        `--datadir=${this.#dataDir}`,
        `--user=${userInfo().username}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        // Concurrent bootstraps sharing /tmp collide on internal temp-table names.
        `--tmpdir=${this.#tmpDir}`,
      ]);
    } catch (err) {
      throw new EnvironmentError(
        `mariadb-install-db failed for region ${this.options.region} in ${this.#dataDir}: ${(err as { stderr?: string }).stderr ?? String(err)}`,
        { cause: err },
      );
    }
    this.#initialised = true;
  }

  async start(): Promise<void> {
    if (this.#process.running) return;
    await this.#initialise();
    this.#process.start();
    await waitForSqlServer(
      this.name,
      this.#process,
      this.endpoint,
      this.options.dir,
      this.options.startTimeoutMs ?? 30_000,
    );
  }

  stop(): Promise<void> {
    return this.#process.stop(30_000);
  }

  kill(): Promise<void> {
    return this.#process.kill();
  }

  pids(): number[] {
    const pid = this.#process.pid;
    return pid === undefined ? [] : [pid];
  }
}
