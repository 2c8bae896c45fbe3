import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError } from '../../core/errors.js';
import { ManagedProcess } from '../processes.js';
import type { MySqlEndpoint, SandboxService } from '../types.js';
import { waitForSqlServer } from './sql-server.js';
import type { Mysql8Distribution } from './mysql8-dist.js';

const execFileAsync = promisify(execFile);

export interface LocalMySql8Options {
  region: string;
  /** Directory of this server alone: data, socket, logs. */
  dir: string;
  port: number;
  serverId: number;
  /** Unused by MySQL; reported in the endpoint (see {@link MySqlEndpoint.gtidDomainId}). */
  gtidDomainId: number;
  bufferPoolMb: number;
  distribution: Mysql8Distribution;
  startTimeoutMs?: number;
  /** More server options after the defaults, e.g. `--ssl-cert=...`. */
  extraArgs?: readonly string[];
}

/** The server options both `--initialize` and every start need. */
function baseArgs(options: LocalMySql8Options, dataDir: string, tmpDir: string): string[] {
  return [
    '--no-defaults', // never read the machine's my.cnf
    `--basedir=${options.distribution.baseDir}`,
    `--datadir=${dataDir}`,
    // mysqld refuses to run as root unless told to; as anyone else this is a no-op.
    `--user=${userInfo().username}`,
    `--tmpdir=${tmpDir}`,
    `--server-id=${options.serverId}`,
  ];
}

/**
 * One region's MySQL 8 as a local process, configured the way the capture
 * stage requires (DESIGN.md §1): GTIDs on, binlog on, ROW format, FULL row
 * image and FULL row metadata. The data directory is initialised once
 * (`--initialize-insecure`: root@localhost without a password, with
 * caching_sha2_password) and kept across stop/kill and start.
 */
export class LocalMySql8 implements SandboxService {
  readonly name: string;
  readonly endpoint: MySqlEndpoint;
  readonly #process: ManagedProcess;
  readonly #dataDir: string;
  readonly #tmpDir: string;

  constructor(private readonly options: LocalMySql8Options) {
    this.name = `mysql8[${options.region}]`;
    this.#dataDir = join(options.dir, 'data');
    this.#tmpDir = join(options.dir, 'tmp');
    this.endpoint = {
      engine: 'mysql8',
      region: options.region,
      host: '127.0.0.1',
      port: options.port,
      // --initialize-insecure creates root@localhost without a password; MySQL
      // maps a loopback TCP client to localhost without a DNS lookup.
      user: 'root',
      password: '',
      serverId: options.serverId,
      gtidDomainId: options.gtidDomainId,
    };
    this.#process = new ManagedProcess({
      name: this.name,
      command: options.distribution.mysqld,
      marker: options.dir,
      logFile: join(options.dir, 'mysqld.out'),
      args: [
        ...baseArgs(options, this.#dataDir, this.#tmpDir),
        '--bind-address=127.0.0.1',
        `--port=${options.port}`,
        `--socket=${join(options.dir, 'mysqld.sock')}`,
        `--pid-file=${join(options.dir, 'mysqld.pid')}`,
        `--log-error=${join(options.dir, 'error.log')}`,
        '--gtid-mode=ON',
        '--enforce-gtid-consistency=ON',
        `--log-bin=${join(this.#dataDir, 'binlog')}`,
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--binlog-row-metadata=FULL',
        '--mysqlx=OFF', // the X protocol would take another port
        '--character-set-server=utf8mb4',
        '--max-connections=500',
        `--innodb-buffer-pool-size=${options.bufferPoolMb}M`,
        // Test servers on temp dirs: the replicator's durability is under test, not MySQL's fsync.
        '--innodb-flush-log-at-trx-commit=2',
        '--performance-schema=OFF',
        ...(options.extraArgs ?? []),
      ],
    });
  }

  /** Creates the data directory on first start; an existing one (a restart) is kept. */
  async #initialise(): Promise<void> {
    mkdirSync(this.#tmpDir, { recursive: true });
    if (existsSync(join(this.#dataDir, 'mysql.ibd'))) return;
    try {
      await execFileAsync(
        this.options.distribution.mysqld,
        [
          ...baseArgs(this.options, this.#dataDir, this.#tmpDir),
          '--initialize-insecure',
          // The binlog starts at the first real start, with GTIDs on, not with the system tables.
          '--skip-log-bin',
        ],
        { maxBuffer: 16 * 1024 * 1024 },
      );
    } catch (err) {
      const { stdout, stderr } = err as { stdout?: string; stderr?: string };
      throw new EnvironmentError(
        `mysqld --initialize-insecure failed for region ${this.options.region} in ${this.#dataDir}: ` +
          `${`${stdout ?? ''}${stderr ?? ''}`.trim() || String(err)}`,
        { cause: err },
      );
    }
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
      this.options.startTimeoutMs ?? 60_000,
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
