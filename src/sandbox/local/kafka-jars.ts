import { mavenClasspath } from './maven-classpath.js';

export { cacheDir } from './maven-classpath.js';

/**
 * Kafka 3.9 is the newest line whose brokers still speak every protocol
 * version kafkajs 2.x uses (Kafka 4.0 removed the old ones, KIP-896), and it
 * runs KRaft without ZooKeeper. Its Scala 2.13 build is on Maven Central.
 */
export const KAFKA_VERSION = '3.9.1';
const SCALA_VERSION = '2.13';
/** Kafka 3.9 logs through slf4j 1.7; reload4j is the binding the Kafka distribution ships. */
export const SLF4J_RELOAD4J = {
  groupId: 'org.slf4j',
  artifactId: 'slf4j-reload4j',
  version: '1.7.36',
} as const;

/** The Java classpath of a Kafka broker, resolved with Maven once and cached. */
export function kafkaClasspath(mvn: string, log: (m: string) => void): Promise<string> {
  return mavenClasspath({
    what: `Apache Kafka ${KAFKA_VERSION}`,
    name: `kafka-${KAFKA_VERSION}`,
    dependencies: [
      { groupId: 'org.apache.kafka', artifactId: `kafka_${SCALA_VERSION}`, version: KAFKA_VERSION },
      SLF4J_RELOAD4J,
    ],
    mvn,
    log,
  });
}
