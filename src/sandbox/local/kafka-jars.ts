import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError } from '../../core/errors.js';

const execFileAsync = promisify(execFile);

/**
 * Kafka 3.9 is the newest line whose brokers still speak every protocol
 * version kafkajs 2.x uses (Kafka 4.0 removed the old ones, KIP-896), and it
 * runs KRaft without ZooKeeper. Its Scala 2.13 build is on Maven Central.
 */
export const KAFKA_VERSION = '3.9.1';
const SCALA_VERSION = '2.13';
/** Kafka 3.9 logs through slf4j 1.7; reload4j is the binding the Kafka distribution ships. */
const SLF4J_VERSION = '1.7.36';
const DEPENDENCY_PLUGIN_VERSION = '3.8.1';

function pom(): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cdc-replicator's test launcher: resolves Apache Kafka's broker jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cdc-replicator</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_VERSION}</artifactId>
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

/** Where resolved classpaths are cached between runs (`CDC_CACHE_DIR` overrides). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.CDC_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cdc-replicator')
  );
}

function classpathIsUsable(classpath: string): boolean {
  const jars = classpath.split(':').filter((jar) => jar.length > 0);
  return jars.length > 0 && jars.every((jar) => existsSync(jar));
}

/**
 * The Java classpath of a Kafka broker. The first call resolves it with Maven
 * into the local repository (downloading the jars once); later calls read the
 * cached list and only re-resolve if a jar has disappeared.
 */
export async function kafkaClasspath(mvnPath: string, log: (m: string) => void): Promise<string> {
  const dir = join(cacheDir(), `kafka-${KAFKA_VERSION}`);
  const classpathFile = join(dir, 'classpath.txt');
  if (existsSync(classpathFile)) {
    const cached = readFileSync(classpathFile, 'utf8').trim();
    if (classpathIsUsable(cached)) return cached;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pom.xml'), pom());
  log(`resolving Apache Kafka ${KAFKA_VERSION} jars with Maven (first run only)`);
  const tmpFile = `${classpathFile}.${process.pid}.tmp`;
  try {
    await execFileAsync(
      mvnPath,
      [
        '-B',
        '-q',
        '-f',
        join(dir, 'pom.xml'),
        'dependency:build-classpath',
        `-Dmdep.outputFile=${tmpFile}`,
      ],
      { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
    );
  } catch (err) {
    const output = (err as { stdout?: string }).stdout ?? '';
    throw new EnvironmentError(
      `could not resolve Apache Kafka ${KAFKA_VERSION} from Maven Central with ${mvnPath}; ` +
        `check that Maven can reach its repository.\n${output.slice(-2000)}`,
      { cause: err, retriable: true },
    );
  }
  const classpath = readFileSync(tmpFile, 'utf8').trim();
  if (!classpathIsUsable(classpath)) {
    throw new EnvironmentError(`Maven produced an unusable Kafka classpath in ${tmpFile}`);
  }
  renameSync(tmpFile, classpathFile); // atomic: a concurrent reader sees all or nothing
  return classpath;
}
