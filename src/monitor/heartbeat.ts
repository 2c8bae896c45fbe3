import type mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../config/compile.js';
import type { Logger } from '../core/logger.js';
import { connectMysql } from '../mysql/connection.js';
import { qualifiedName } from '../mysql/identifiers.js';
import { INTERNAL_TABLES } from '../mysql/internal-tables.js';

/**
 * Writes this region's heartbeat row every interval (DESIGN.md §7). The row
 * travels like any change (binlog → capture → Kafka → remote appliers), so
 * `now - hlc` at a remote applier is the true end-to-end lag even when the
 * application is idle.
 */
export class HeartbeatWriter {
  #timer: NodeJS.Timeout | undefined;
  #connection: mysql.Connection | undefined;
  #writing = false;

  constructor(
    private readonly options: RuntimeOptions,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  async start(): Promise<void> {
    await this.#beat();
    this.#timer = setInterval(() => void this.#beat(), this.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.end().catch(() => undefined); // closing a broken connection has nothing to report
  }

  async #beat(): Promise<void> {
    if (this.#writing) return; // a slow database must not pile up beats
    this.#writing = true;
    try {
      this.#connection ??= await connectMysql(this.options.mysql);
      await this.#connection.query(
        `INSERT INTO ${qualifiedName(this.options.internalSchema, INTERNAL_TABLES.heartbeat)} (region, hlc)
         VALUES (?, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED))
         ON DUPLICATE KEY UPDATE hlc = VALUES(hlc)`,
        [this.options.region],
      );
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message },
        'heartbeat write failed; retrying next interval',
      );
      const broken = this.#connection;
      this.#connection = undefined;
      await broken?.end().catch(() => undefined); // reconnect next time
    } finally {
      this.#writing = false;
    }
  }
}
