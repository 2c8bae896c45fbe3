import { BINLOG_EVENTS, zongjiConnectionOptions } from '../../src/capture/binlog-source.js';
import ZongJi, {
  type AnyBinlogEvent,
  type DeleteRowsEvent,
  type UpdateRowsEvent,
  type WriteRowsEvent,
} from '@vlasky/zongji';
import type { MysqlOptions } from '../../src/config/compile.js';

export interface RawReadOptions {
  mysql: MysqlOptions;
  serverId: number;
  gtidSet: string;
  includeSchema: Record<string, string[] | true>;
  schema: string;
  table: string;
  /** Stop once this many rows of `schema.table` were decoded. */
  rows: number;
  timeoutMs: number;
}

export interface RawReadResult {
  rows: number;
  elapsedMs: number;
  /** Bytes of the rows events (header included) that carried those rows: what the reader decodes. */
  rowsEventBytes: number;
}

/**
 * The reader's ceiling: a bare zongji with exactly the options and event
 * filter of `src/capture/binlog-source.ts`, doing nothing but counting the
 * decoded rows. Whatever capture does on top (envelopes, versions, JSON,
 * Kafka) is the difference between this and the capture rate.
 */
export function rawRead(options: RawReadOptions): Promise<RawReadResult> {
  const { mysql } = options;
  const zongji = new ZongJi(zongjiConnectionOptions(mysql));
  return new Promise<RawReadResult>((resolve, reject) => {
    let rows = 0;
    let rowsEventBytes = 0;
    let settled = false;
    const started = performance.now();
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      const elapsedMs = performance.now() - started;
      clearTimeout(timer);
      zongji.stop();
      if (error !== undefined) reject(error);
      else resolve({ rows, elapsedMs, rowsEventBytes });
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `raw zongji read: ${rows} of ${options.rows} rows after ${options.timeoutMs} ms`,
          ),
        ),
      options.timeoutMs,
    );
    zongji.on('binlog', (event: AnyBinlogEvent) => {
      const name = event.getEventName();
      if (name !== 'writerows' && name !== 'updaterows' && name !== 'deleterows') return;
      const rowsEvent = event as WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent;
      const table = rowsEvent.tableMap[rowsEvent.tableId];
      if (table?.parentSchema !== options.schema || table.tableName !== options.table) return;
      rows += rowsEvent.rows.length;
      rowsEventBytes += rowsEvent.size;
      if (rows >= options.rows) finish();
    });
    zongji.on('error', (err: Error) => finish(err));
    zongji.start({
      serverId: options.serverId,
      gtidSet: options.gtidSet,
      includeEvents: [...BINLOG_EVENTS],
      includeSchema: options.includeSchema,
    });
  });
}
