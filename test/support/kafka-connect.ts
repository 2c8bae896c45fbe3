import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KAFKA_VERSION, SLF4J_RELOAD4J } from '../../src/sandbox/local/kafka-jars.js';
import { mavenClasspath, type MavenArtifact } from '../../src/sandbox/local/maven-classpath.js';
import { freePorts } from '../../src/sandbox/ports.js';
import { ManagedProcess } from '../../src/sandbox/processes.js';

/**
 * Kafka Connect standalone run from Maven jars, for tests that feed our
 * topics to a real connector (the same approach as
 * bench/scenarios/capture-vs-debezium): the jars are resolved once with
 * Maven and cached; Connect runs from the same Kafka release as the
 * sandbox's broker, in a JVM the sandbox's process registry tracks.
 */

/** The Debezium release bench/scenarios/capture-vs-debezium runs (built against Kafka 3.9). */
export const DEBEZIUM_VERSION = '3.1.0.Final';

/** Classpath of Connect + the given connector artifacts (cached after the first resolution). */
export function connectClasspath(
  name: string,
  what: string,
  connectors: readonly MavenArtifact[],
  log: (m: string) => void = () => {},
): Promise<string> {
  return mavenClasspath({
    what: `${what} and Kafka Connect ${KAFKA_VERSION}`,
    name: `${name}-kafka-${KAFKA_VERSION}`,
    dependencies: [
      ...connectors,
      { groupId: 'org.apache.kafka', artifactId: 'connect-runtime', version: KAFKA_VERSION },
      { groupId: 'org.apache.kafka', artifactId: 'connect-json', version: KAFKA_VERSION },
      SLF4J_RELOAD4J,
    ],
    mvn: 'mvn',
    log,
  });
}

/** Debezium's JDBC sink connector (its JDBC drivers, MariaDB's among them, come with it). */
export function debeziumJdbcSinkClasspath(log?: (m: string) => void): Promise<string> {
  return connectClasspath(
    `debezium-jdbc-sink-${DEBEZIUM_VERSION}`,
    `Debezium JDBC sink ${DEBEZIUM_VERSION}`,
    [{ groupId: 'io.debezium', artifactId: 'debezium-connector-jdbc', version: DEBEZIUM_VERSION }],
    log,
  );
}

export interface KafkaConnectOptions {
  /** Scratch directory (inside the sandbox's, so its cleanup covers it). */
  dir: string;
  classpath: string;
  brokers: readonly string[];
  /** Extra worker settings (converters, consumer overrides). */
  worker: Readonly<Record<string, string>>;
  /** The connector's settings; `name` is required. */
  connector: Readonly<Record<string, string>> & { name: string };
  heapMb?: number;
}

export interface KafkaConnect {
  readonly restUrl: string;
  /** The tail of Connect's log, for failure messages. */
  logTail(chars?: number): string;
  /** Resolves when the connector and its tasks run; throws with the trace if one failed. */
  waitRunning(timeoutMs: number): Promise<void>;
  /** The trace of a failed connector or task, if one failed since. */
  failure(): Promise<string | undefined>;
  stop(): Promise<void>;
}

function properties(values: Readonly<Record<string, string>>): string {
  const escape = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return (
    Object.entries(values)
      .map(([k, v]) => `${k}=${escape(v)}`)
      .join('\n') + '\n'
  );
}

/** Starts Kafka Connect standalone with one connector. */
export async function startKafkaConnect(options: KafkaConnectOptions): Promise<KafkaConnect> {
  mkdirSync(options.dir, { recursive: true });
  const [restPort] = await freePorts(1);
  const restUrl = `http://127.0.0.1:${restPort}`;
  const worker = join(options.dir, 'worker.properties');
  const connector = join(options.dir, 'connector.properties');
  const log4j = join(options.dir, 'log4j.properties');
  const logFile = join(options.dir, 'connect.log');
  writeFileSync(
    worker,
    properties({
      'bootstrap.servers': options.brokers.join(','),
      listeners: restUrl,
      'offset.storage.file.filename': join(options.dir, 'offsets'),
      'offset.flush.interval.ms': '1000',
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      ...options.worker,
    }),
  );
  writeFileSync(connector, properties(options.connector));
  writeFileSync(
    log4j,
    properties({
      'log4j.rootLogger': 'INFO, file',
      'log4j.appender.file': 'org.apache.log4j.FileAppender',
      'log4j.appender.file.File': logFile,
      'log4j.appender.file.layout': 'org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern': '[%d] %p %m (%c)%n',
    }),
  );
  const process = new ManagedProcess({
    name: `connect[${options.connector.name}]`,
    command: 'java',
    args: [
      `-Xmx${options.heapMb ?? 384}m`,
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${log4j}`,
      '-cp',
      options.classpath,
      'org.apache.kafka.connect.cli.ConnectStandalone',
      worker,
      connector,
    ],
    logFile: join(options.dir, 'stdout.log'),
    marker: options.dir,
  });
  process.start();

  const logTail = (chars = 4000): string => {
    let text = '';
    for (const file of [logFile, join(options.dir, 'stdout.log')]) {
      try {
        text += readFileSync(file, 'utf8').slice(-chars);
      } catch {
        // not written yet
      }
    }
    return text;
  };

  return {
    restUrl,
    logTail,
    async waitRunning(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last = 'no answer';
      while (Date.now() < deadline) {
        if (!process.running)
          throw new Error(
            `Kafka Connect exited (${process.exitDescription ?? '?'}):\n${logTail()}`,
          );
        try {
          const response = await fetch(`${restUrl}/connectors/${options.connector.name}/status`);
          last = await response.text();
          if (response.ok) {
            const status = JSON.parse(last) as {
              connector: { state: string; trace?: string };
              tasks: { state: string; trace?: string }[];
            };
            const failed = [status.connector, ...status.tasks].find((s) => s.state === 'FAILED');
            if (failed !== undefined)
              throw new Error(`connector failed: ${failed.trace ?? last}\n${logTail()}`);
            if (
              status.connector.state === 'RUNNING' &&
              status.tasks.length > 0 &&
              status.tasks.every((t) => t.state === 'RUNNING')
            )
              return;
          }
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('connector failed')) throw err;
        }
        await sleep(500);
      }
      throw new Error(`Kafka Connect not running after ${timeoutMs} ms: ${last}\n${logTail()}`);
    },
    async failure() {
      try {
        const response = await fetch(`${restUrl}/connectors/${options.connector.name}/status`);
        const status = (await response.json()) as {
          connector: { state: string; trace?: string };
          tasks: { state: string; trace?: string }[];
        };
        const failed = [status.connector, ...status.tasks].find((s) => s.state === 'FAILED');
        return failed === undefined ? undefined : (failed.trace ?? 'FAILED');
      } catch {
        return process.running
          ? undefined
          : `Kafka Connect exited (${process.exitDescription ?? '?'})`;
      }
    },
    async stop() {
      await process.stop(15_000);
    },
  };
}
