import type { ChangeEvent } from '../bus/envelope.js';
import {
  debeziumMessages,
  debeziumTopic,
  serverIdOfGtid,
  tableShape,
  type DebeziumMessage,
  type DebeziumSourceInfo,
  type TableShape,
} from '../bus/debezium.js';
import type { DebeziumOutputOptions, PipelineOptions } from '../config/compile.js';
import { tableMatches } from '../config/compile.js';
import { isInternalTable } from '../mysql/internal-tables.js';
import type { BinlogCoordinates } from './source-events.js';

/**
 * The Debezium-compatible output of capture (pipelines' `output`): turns each
 * captured change of a table in such a pipeline into Debezium's messages.
 * Holds what `source` needs beyond the event: the connector flavour, the
 * server id, the binlog coordinates where the current transaction started
 * and the row's index in it. Internal tables never match (the applier's own
 * transactions never reach here: the assembler drops them).
 */
export class DebeziumOutput {
  readonly #outputs: readonly {
    pipeline: PipelineOptions;
    output: DebeziumOutputOptions;
  }[];
  readonly #shapes = new Map<string, { types: unknown; columns: string; shape: TableShape }>();
  readonly #types = new Map<string, Readonly<Record<string, string>>>();
  #coordinates: BinlogCoordinates | undefined;
  #row = 0;

  private constructor(
    pipelines: readonly PipelineOptions[],
    private readonly connector: DebeziumSourceInfo['connector'],
    private readonly serverId: number,
  ) {
    this.#outputs = pipelines.flatMap((pipeline) =>
      pipeline.output === undefined ? [] : [{ pipeline, output: pipeline.output }],
    );
  }

  /** undefined when no pipeline asks for a Debezium output. */
  static create(
    pipelines: readonly PipelineOptions[],
    connector: DebeziumSourceInfo['connector'],
    serverId: number,
  ): DebeziumOutput | undefined {
    if (!pipelines.some((p) => p.output !== undefined)) return undefined;
    return new DebeziumOutput(pipelines, connector, serverId);
  }

  /** The prefixes of the configured outputs (for logs). */
  get topicPrefixes(): string[] {
    return this.#outputs.map((o) => o.output.topicPrefix);
  }

  /** The Debezium topics a table's changes go to (none when no output covers it). */
  topicsOf(db: string, table: string): string[] {
    if (isInternalTable(table)) return [];
    return this.#outputs
      .filter(({ pipeline }) => pipeline.tables.some((t) => tableMatches(t, db, table)))
      .map(({ output }) => debeziumTopic(output.topicPrefix, db, table));
  }

  /**
   * The column types of a table's rows event, as read from the binlog. Deletes
   * reach us without types (their event is built from the tombstone): they
   * use the types of the rows event they came from, remembered here.
   */
  noteTypes(db: string, table: string, types: Readonly<Record<string, string>>): void {
    this.#types.set(`${db}\u0000${table}`, types);
  }

  /** A transaction ended at these coordinates: the next one starts there. */
  transactionEnded(coordinates: BinlogCoordinates | undefined): void {
    this.#coordinates = coordinates;
    this.#row = 0;
  }

  /** The messages of one change (none when no output covers its table). */
  messages(event: ChangeEvent, nowMs: number): DebeziumMessage[] {
    if (isInternalTable(event.table)) return [];
    const messages: DebeziumMessage[] = [];
    let counted = false;
    for (const { pipeline, output } of this.#outputs) {
      if (!pipeline.tables.some((t) => tableMatches(t, event.db, event.table))) continue;
      const source: DebeziumSourceInfo = {
        connector: this.connector,
        serverId: serverIdOfGtid(event.gtid) ?? this.serverId,
        file: this.#coordinates?.file ?? '',
        pos: this.#coordinates?.offset ?? 0,
        row: this.#row,
        nowMs,
      };
      counted = true;
      messages.push(...debeziumMessages(output, this.#shape(output, event), event, source));
    }
    if (counted) this.#row += 1;
    return messages;
  }

  #shape(output: DebeziumOutputOptions, event: ChangeEvent): TableShape {
    const image = event.after ?? event.before ?? event.pk;
    const types = this.#types.get(`${event.db}\u0000${event.table}`) ?? event.types;
    const columns = Object.keys(image).join('\u0000');
    const cacheKey = `${output.topicPrefix}\u0000${event.db}\u0000${event.table}`;
    const cached = this.#shapes.get(cacheKey);
    // The types object is shared per table description: a new one means the table changed.
    if (cached !== undefined && cached.types === types && cached.columns === columns)
      return cached.shape;
    const shape = tableShape(
      output,
      this.connector,
      event.db,
      event.table,
      Object.keys(image),
      Object.keys(event.pk),
      types,
    );
    this.#shapes.set(cacheKey, { types, columns, shape });
    return shape;
  }
}
