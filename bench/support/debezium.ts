import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KAFKA_VERSION, SLF4J_RELOAD4J } from '../../src/sandbox/local/kafka-jars.js';
import { mavenClasspath } from '../../src/sandbox/local/maven-classpath.js';
import { ManagedProcess } from '../../src/sandbox/processes.js';

/**
 * The Debezium release of the bench's contenders: the MariaDB source
 * connector (capture-vs-debezium, and apply-vs-native's feed) and the JDBC
 * sink connector (apply-vs-native). 3.1.0.Final is built against Kafka
 * 3.9.0, the line of the sandbox's broker, so Connect runs from the same
 * Kafka release as the broker (3.9.1).
 */
export const DEBEZIUM_VERSION = '3.1.0.Final';

/** The Debezium connectors the bench runs, by Maven artifact. */
export type DebeziumConnector = 'debezium-connector-mariadb' | 'debezium-connector-jdbc';

/**
 * Resolves (once, then cached like the sandbox's Kafka jars) the classpath of
 * Kafka Connect + one Debezium connector (the JDBC sink brings its JDBC
 * drivers, MariaDB Connector/J among them, as dependencies).
 */
export function debeziumClasspath(
  log: (m: string) => void,
  connector: DebeziumConnector = 'debezium-connector-mariadb',
): Promise<string> {
  return mavenClasspath({
    what: `Debezium ${connector} ${DEBEZIUM_VERSION} and Kafka Connect ${KAFKA_VERSION}`,
    name: `${connector}-${DEBEZIUM_VERSION}-kafka-${KAFKA_VERSION}`,
    dependencies: [
      { groupId: 'io.debezium', artifactId: connector, version: DEBEZIUM_VERSION },
      { groupId: 'org.apache.kafka', artifactId: 'connect-runtime', version: KAFKA_VERSION },
      { groupId: 'org.apache.kafka', artifactId: 'connect-json', version: KAFKA_VERSION },
      SLF4J_RELOAD4J,
    ],
    mvn: 'mvn',
    log,
  });
}

/** `key=value` lines; `${NAME}` in the template is replaced from `values`. */
export function renderProperties(
  template: string,
  values: Readonly<Record<string, string>>,
): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`properties template: no value for \${${name}}`);
    return value;
  });
}

export interface ConnectOptions {
  dir: string;
  classpath: string;
  workerProperties: string;
  connectorProperties: string;
  heapMb: number;
  label: string;
}

/** Kafka Connect standalone with the connector, as a launcher-managed JVM. */
export function connectProcess(options: ConnectOptions): ManagedProcess {
  mkdirSync(options.dir, { recursive: true });
  const worker = join(options.dir, `${options.label}-worker.properties`);
  const connector = join(options.dir, `${options.label}-connector.properties`);
  const log4j = join(options.dir, `${options.label}-log4j.properties`);
  writeFileSync(worker, options.workerProperties);
  writeFileSync(connector, options.connectorProperties);
  writeFileSync(
    log4j,
    [
      'log4j.rootLogger=INFO, file',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${connectLog(options.dir, options.label)}`,
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
    ].join('\n') + '\n',
  );
  return new ManagedProcess({
    name: `connect[${options.label}]`,
    command: 'java',
    args: [
      `-Xmx${options.heapMb}m`,
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${log4j}`,
      '-cp',
      options.classpath,
      'org.apache.kafka.connect.cli.ConnectStandalone',
      worker,
      connector,
    ],
    logFile: join(options.dir, `${options.label}-stdout.log`),
    marker: options.dir,
  });
}

/** The log file of the Connect process `label` started by connectProcess in `dir`. */
export function connectLog(dir: string, label: string): string {
  return join(dir, `${label}-connect.log`);
}

/**
 * Primes a Debezium source connector before a workload: the Connect process
 * (`snapshot.mode=no_data`) records the schema in its history and, through
 * its heartbeat, an offset at the current binlog position; once the offsets
 * file has it (and one more flush interval has passed), the process stops.
 * No row is snapshotted; a later start from that offset reads exactly the
 * binlog written after.
 */
export async function primeSource(
  process: ManagedProcess,
  offsetsFile: string,
  logFile: string,
): Promise<void> {
  process.start();
  const deadline = performance.now() + 180_000;
  while (!(existsSync(offsetsFile) && statSync(offsetsFile).size > 0)) {
    if (!process.running) throw new Error(`Kafka Connect exited while priming; see ${logFile}`);
    if (performance.now() > deadline)
      throw new Error(`Debezium stored no offset within 180 s; see ${logFile}`);
    await sleep(250);
  }
  await sleep(2000); // one more flush interval: the offset reflects the streaming position
  await process.stop(60_000);
}
