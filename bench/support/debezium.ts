import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KAFKA_VERSION, SLF4J_RELOAD4J } from '../../../src/sandbox/local/kafka-jars.js';
import { mavenClasspath } from '../../../src/sandbox/local/maven-classpath.js';
import { ManagedProcess } from '../../../src/sandbox/processes.js';

/**
 * Debezium's MariaDB connector. 3.1.0.Final is built against Kafka 3.9.0,
 * the line of the sandbox's broker, so Connect runs from the same Kafka
 * release as the broker (3.9.1).
 */
export const DEBEZIUM_VERSION = '3.1.0.Final';
/** Resolves (once, then cached like the sandbox's Kafka jars) the classpath of Connect + Debezium. */
export function debeziumClasspath(log: (m: string) => void): Promise<string> {
  return mavenClasspath({
    what: `Debezium ${DEBEZIUM_VERSION} and Kafka Connect ${KAFKA_VERSION}`,
    name: `debezium-${DEBEZIUM_VERSION}-kafka-${KAFKA_VERSION}`,
    dependencies: [
      {
        groupId: 'io.debezium',
        artifactId: 'debezium-connector-mariadb',
        version: DEBEZIUM_VERSION,
      },
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
      `log4j.appender.file.File=${join(options.dir, `${options.label}-connect.log`)}`,
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
