import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from '../processes.js';
import { probeRedis } from '../probes.js';
import type { RedisEndpoint, SandboxService } from '../types.js';
import { waitUntilReady } from '../wait.js';

export interface LocalRedisOptions {
  dir: string;
  port: number;
  redisServer: string;
  startTimeoutMs?: number;
}

/**
 * A redis-server on a free loopback port. Append-only persistence is on, so a
 * stop/start keeps checkpoints and leases the way a real deployment would.
 */
export class LocalRedis implements SandboxService {
  readonly name = 'redis';
  readonly endpoint: RedisEndpoint;
  readonly #process: ManagedProcess;

  constructor(private readonly options: LocalRedisOptions) {
    this.endpoint = { url: `redis://127.0.0.1:${options.port}` };
    mkdirSync(options.dir, { recursive: true });
    this.#process = new ManagedProcess({
      name: this.name,
      command: options.redisServer,
      marker: options.dir,
      logFile: join(options.dir, 'redis.log'),
      args: [
        '--port',
        String(options.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        options.dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--daemonize',
        'no',
      ],
    });
  }

  async start(): Promise<void> {
    if (this.#process.running) return;
    this.#process.start();
    await waitUntilReady(
      this.name,
      this.#process,
      () => probeRedis(this.endpoint.url),
      this.options.startTimeoutMs ?? 15_000,
    );
  }

  stop(): Promise<void> {
    return this.#process.stop(10_000);
  }

  kill(): Promise<void> {
    return this.#process.kill();
  }

  pids(): number[] {
    const pid = this.#process.pid;
    return pid === undefined ? [] : [pid];
  }
}
