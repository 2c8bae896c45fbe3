import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { ManagedProcess } from '../../../src/sandbox/processes.js';
import {
  connectLog,
  connectProcess,
  debeziumClasspath,
  primeSource,
  renderProperties,
} from '../../support/debezium.js';
import { highWatermark } from '../../support/kafka.js';
import { adaptivePollMs, procSample } from '../../support/proc.js';
import { round } from '../../support/scenario.js';

/** The Debezium JDBC sink contender's settings (load.json `debeziumJdbcSink`). */
export interface SinkSettings {
  /** batch.size, and the consumer's max.poll.records with it. */
  batchSize: number;
  /** tasks.max: one per partition. */
  tasks: number;
  partitions: number;
  heapMb: number;
}

/** One feed of a workload into Kafka by the Debezium MariaDB source connector (not a measured contender). */
export interface FeedResult {
  table: string;
  messages: number;
  /** Connect spawned → the workload's last message acknowledged. */
  ms: number;
  connectCpuMs: number;
}

/** One run of the sink, from spawn until the target table equals a's. */
export interface SinkRun {
  /** Connect spawned → the first row in the target table (JVM, Connect and connector start). */
  startMs: number;
  /** First row in the target table → the target table equal to a's. */
  drainMs: number;
  /** Share of the topic's messages committed by the sink over time, s since the first row. */
  progress: [number, number][];
  /** Connect's CPU before the first row (start-up), and from it to the end. */
  connectStartupCpuMs: number;
  connectCpuMs: number;
  /** The target server's CPU from the first row to the end. */
  targetCpuMs: number;
  /** 'ok', or why the sink did not converge (then the times are not a result). */
  check: string;
}

export interface SinkTarget {
  port: number;
  /** Schema of the plain copies of the tables on the target server. */
  schema: string;
  /** Empties the target's copy of the table (without binlogging it). */
  empty(table: string): Promise<void>;
  /** Whether the target's copy of the table has any row (cheap). */
  hasRows(table: string): Promise<boolean>;
  /** 'ok' when the target's copy equals a's final content (count and CRC), else what differs. */
  check(table: string): Promise<string>;
  cpuMs(): number;
}

const PREFIX = 'dbz';
const STALL_MS = 120_000;

/**
 * The Debezium side of apply-vs-native: the MariaDB source connector of
 * capture-vs-debezium (same files, same release) feeds each workload's
 * change events into Kafka once, untimed; then the JDBC sink connector of the
 * same release, in its own Connect standalone JVM, applies them into an empty
 * plain copy of the table on the target server, timed until the copy equals
 * a's content.
 */
export class DebeziumSink {
  private readonly dir: string;
  private readonly workerTemplate: string;
  private readonly sourceTemplate: string;
  private readonly sinkTemplate: string;
  private readonly processes: ManagedProcess[] = [];
  private runs = 0;

  private constructor(
    private readonly options: {
      workDir: string;
      root: string;
      scenarioDir: string;
      broker: string;
      restPort: number;
      sourcePort: number;
      schema: string;
      tables: readonly string[];
      admin: Admin;
      settings: SinkSettings;
      target: SinkTarget;
      classpaths: { source: string; sink: string };
      log: (m: string) => void;
    },
  ) {
    this.dir = join(options.workDir, 'debezium');
    const cvd = join(options.root, 'bench', 'scenarios', 'capture-vs-debezium');
    this.workerTemplate = readFileSync(join(cvd, 'worker.properties'), 'utf8');
    this.sourceTemplate = readFileSync(join(cvd, 'connector.properties'), 'utf8');
    this.sinkTemplate = readFileSync(
      join(options.scenarioDir, 'debezium-jdbc-sink.properties'),
      'utf8',
    );
  }

  /** Resolves both connectors' jars (Maven, first run only). */
  static classpaths(log: (m: string) => void): Promise<{ source: string; sink: string }> {
    // One after the other: two Maven runs writing the same local repository at once may trip.
    return (async () => ({
      source: await debeziumClasspath(log, 'debezium-connector-mariadb'),
      sink: await debeziumClasspath(log, 'debezium-connector-jdbc'),
    }))();
  }

  /**
   * Creates the topics and primes the source connector (schema history and
   * an offset at a's current binlog position): call after the tables exist
   * and before the first workload is written.
   */
  static async prepare(options: DebeziumSink['options']): Promise<DebeziumSink> {
    const sink = new DebeziumSink(options);
    await options.admin.createTopics({
      waitForLeaders: true,
      topics: [
        ...options.tables.map((t) => ({
          topic: sink.topic(t),
          numPartitions: options.settings.partitions,
          replicationFactor: 1,
        })),
        { topic: `__debezium-heartbeat.${PREFIX}`, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    options.log('priming the Debezium source connector (schema and binlog position)');
    await primeSource(sink.source(), sink.offsetsFile, connectLog(sink.dir, 'source'));
    return sink;
  }

  private get offsetsFile(): string {
    return join(this.dir, 'source.offsets');
  }

  topic(table: string): string {
    return `${PREFIX}.${this.options.schema}.${table}`;
  }

  private worker(label: string, offsetFlushMs: number): string {
    return renderProperties(this.workerTemplate, {
      BROKER: this.options.broker,
      REST_PORT: String(this.options.restPort),
      OFFSETS_FILE: join(this.dir, `${label}.offsets`),
      OFFSET_FLUSH_MS: String(offsetFlushMs),
      SCHEMAS_ENABLE: 'true',
    });
  }

  private start(label: string, classpath: string, worker: string, connector: string) {
    const p = connectProcess({
      dir: this.dir,
      classpath,
      workerProperties: worker,
      connectorProperties: connector,
      heapMb: this.options.settings.heapMb,
      label,
    });
    this.processes.push(p);
    return p;
  }

  /** The source connector's Connect process: always the same offsets and history, so each start resumes. */
  private source(): ManagedProcess {
    return this.start(
      'source',
      this.options.classpaths.source,
      this.worker('source', 1000),
      renderProperties(this.sourceTemplate, {
        MYSQL_PORT: String(this.options.sourcePort),
        SERVER_ID: '5402',
        TOPIC_PREFIX: PREFIX,
        SCHEMA: this.options.schema,
        TABLE: `(${this.options.tables.join('|')})`,
        HISTORY_FILE: join(this.dir, 'source.history'),
      }),
    );
  }

  /**
   * Runs the source connector from where it stopped until `rows` new change
   * events of `table` are acknowledged in Kafka (one message per row change),
   * then stops it (stopping commits its offset: the next feed resumes there).
   */
  async feed(table: string, rows: number): Promise<FeedResult> {
    const topic = this.topic(table);
    const before = await highWatermark(this.options.admin, topic);
    const p = this.source();
    const started = performance.now();
    p.start();
    let seen = 0;
    let progressAt = started;
    for (;;) {
      if (!p.running)
        throw new Error(`Kafka Connect exited; see ${connectLog(this.dir, 'source')}`);
      const now = (await highWatermark(this.options.admin, topic)) - before;
      const t = performance.now();
      if (now >= rows) break;
      if (now > seen) {
        seen = now;
        progressAt = t;
      } else if (t - progressAt > STALL_MS) {
        throw new Error(
          `Debezium source: ${seen} of ${rows} change events of ${table}, none for 120 s`,
        );
      }
      await sleep(adaptivePollMs(t - started, 50));
    }
    const ms = performance.now() - started;
    const connectCpuMs = p.pid === undefined ? 0 : (procSample(p.pid)?.cpuMs ?? 0);
    await p.stop(60_000);
    return {
      table,
      messages: (await highWatermark(this.options.admin, topic)) - before,
      ms: Math.round(ms),
      connectCpuMs: Math.round(connectCpuMs),
    };
  }

  private async committed(group: string, topic: string): Promise<number> {
    const [offsets] = await this.options.admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (offsets?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  }

  /** Why the sink's tasks stopped, from Connect's REST API, or undefined while they run. */
  private async failed(name: string): Promise<string | undefined> {
    try {
      const res = await fetch(
        `http://127.0.0.1:${this.options.restPort}/connectors/${name}/status`,
      );
      if (!res.ok) return undefined;
      const status = (await res.json()) as {
        connector?: { state?: string };
        tasks?: { state?: string; trace?: string }[];
      };
      const task = status.tasks?.find((t) => t.state === 'FAILED');
      if (task !== undefined) return `sink task failed: ${(task.trace ?? '').split('\n')[0]}`;
      return status.connector?.state === 'FAILED' ? 'sink connector failed' : undefined;
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      return undefined;
    }
  }

  /**
   * One timed run: empties the target's table, starts the sink with a new
   * consumer group (so it reads the topic from the start), waits for its first
   * row, then follows its committed offsets (Kafka-side, no load on the
   * target) until they cover the topic, and then checks the table against a's
   * (count + CRC), again until equal. Not converging (a failed task, no
   * progress for 120 s, or a table that still differs 60 s after everything
   * was committed) is a failed run.
   */
  async measure(table: string): Promise<SinkRun> {
    const { target, admin, settings } = this.options;
    this.runs += 1;
    const name = `jdbc-sink-${table}-${this.runs}`;
    const topic = this.topic(table);
    await target.empty(table);
    const total = await highWatermark(admin, topic);
    const p = this.start(
      name,
      this.options.classpaths.sink,
      // The sink commits its consumer offsets every 100 ms: how the bench sees its progress.
      this.worker(name, 100),
      renderProperties(this.sinkTemplate, {
        NAME: name,
        TASKS: String(settings.tasks),
        TOPIC: topic,
        MYSQL_PORT: String(target.port),
        SCHEMA: target.schema,
        BATCH_SIZE: String(settings.batchSize),
      }),
    );
    const started = performance.now();
    p.start();
    const connectCpu = (): number => (p.pid === undefined ? 0 : (procSample(p.pid)?.cpuMs ?? 0));
    const progress: [number, number][] = [];
    let firstAt: number | undefined;
    let cpu0 = { connect: 0, target: 0 };
    let seen = 0;
    let progressAt = started;
    let allCommittedAt: number | undefined;
    let check = '';
    let doneAt: number | undefined;
    // CPU read before each check of the table, so the checksum query is not charged to the sink.
    let cpuEnd = cpu0;
    try {
      for (;;) {
        if (!p.running) {
          check = `Kafka Connect exited; see ${connectLog(this.dir, name)}`;
          break;
        }
        const now = performance.now();
        if (firstAt === undefined) {
          if (await target.hasRows(table)) {
            firstAt = performance.now();
            cpu0 = { connect: connectCpu(), target: target.cpuMs() };
          }
        } else {
          const committed = await this.committed(`connect-${name}`, topic);
          const t = performance.now();
          progress.push([round((t - firstAt) / 1000, 2), round((committed / total) * 100, 1)]);
          if (committed >= total) {
            allCommittedAt ??= t;
            cpuEnd = { connect: connectCpu(), target: target.cpuMs() };
            check = await target.check(table);
            if (check === 'ok') {
              doneAt = t;
              break;
            }
            if (t - allCommittedAt > 60_000) break;
          }
          if (committed > seen) {
            seen = committed;
            progressAt = t;
          }
        }
        if (now - progressAt > 15_000) {
          const why = await this.failed(name);
          if (why !== undefined) {
            check = `${why}; see ${connectLog(this.dir, name)}`;
            break;
          }
          if (now - progressAt > STALL_MS) {
            check = `no progress for 120 s (${seen} of ${total} messages committed)`;
            break;
          }
        }
        await sleep(adaptivePollMs(performance.now() - started, 20));
      }
      const end = doneAt ?? performance.now();
      if (doneAt === undefined) cpuEnd = { connect: connectCpu(), target: target.cpuMs() };
      return {
        startMs: Math.round((firstAt ?? end) - started),
        drainMs: Math.round(end - (firstAt ?? end)),
        progress,
        connectStartupCpuMs: Math.round(cpu0.connect),
        connectCpuMs: Math.round(cpuEnd.connect - cpu0.connect),
        targetCpuMs: Math.round(cpuEnd.target - cpu0.target),
        check: check === '' ? 'did not converge' : check,
      };
    } finally {
      await p.stop(60_000);
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.processes.map((p) => p.stop(30_000)));
  }
}
