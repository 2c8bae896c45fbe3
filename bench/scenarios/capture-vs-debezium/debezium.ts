import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheDir, KAFKA_VERSION } from '../../../src/sandbox/local/kafka-jars.js';
import { ManagedProcess } from '../../../src/sandbox/processes.js';

const execFileAsync = promisify(execFile);

/**
 * Debezium's MariaDB connector. 3.1.0.Final is built against Kafka 3.9.0,
 * the line of the sandbox's broker, so Connect runs from the same Kafka
 * release as the broker (3.9.1).
 */
export const DEBEZIUM_VERSION = '3.1.0.Final';
const SLF4J_VERSION = '1.7.36';
const DEPENDENCY_PLUGIN_VERSION = '3.8.1';

function pom(): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cdc-replicator's bench: resolves Kafka Connect and Debezium's MariaDB connector. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cdc-replicator</groupId>
  <artifactId>debezium-connect-runtime</artifactId>
  <version>${DEBEZIUM_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.debezium</groupId>
      <artifactId>debezium-connector-mariadb</artifactId>
      <version>${DEBEZIUM_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>connect-runtime</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>connect-json</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>${SLF4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>${DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
`;
}

/** Resolves (once, then cached like the sandbox's Kafka jars) the classpath of Connect + Debezium. */
export async function debeziumClasspath(log: (m: string) => void): Promise<string> {
  const dir = join(cacheDir(), `debezium-${DEBEZIUM_VERSION}-kafka-${KAFKA_VERSION}`);
  const file = join(dir, 'classpath.txt');
  const usable = (cp: string): boolean => {
    const jars = cp.split(':').filter((j) => j.length > 0);
    return jars.length > 0 && jars.every((j) => existsSync(j));
  };
  if (existsSync(file)) {
    const cached = readFileSync(file, 'utf8').trim();
    if (usable(cached)) return cached;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pom.xml'), pom());
  log(
    `resolving Debezium ${DEBEZIUM_VERSION} and Kafka Connect ${KAFKA_VERSION} with Maven (first run only)`,
  );
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await execFileAsync(
      'mvn',
      [
        '-B',
        '-q',
        '-f',
        join(dir, 'pom.xml'),
        'dependency:build-classpath',
        `-Dmdep.outputFile=${tmp}`,
      ],
      { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
    );
  } catch (err) {
    throw new Error(
      `could not resolve Debezium ${DEBEZIUM_VERSION} with Maven: ${((err as { stdout?: string }).stdout ?? String(err)).slice(-2000)}`,
      { cause: err },
    );
  }
  const classpath = readFileSync(tmp, 'utf8').trim();
  if (!usable(classpath)) throw new Error(`Maven produced an unusable classpath in ${tmp}`);
  renameSync(tmp, file);
  return classpath;
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
