import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError } from '../../core/errors.js';
import { ManagedProcess } from '../processes.js';
import { kafkaProbe } from '../probes.js';
import type { KafkaEndpoint, KafkaSecurityOptions, SandboxService } from '../types.js';
import { waitUntilReady } from '../wait.js';

const execFileAsync = promisify(execFile);

export interface LocalKafkaOptions {
  dir: string;
  brokerPort: number;
  controllerPort: number;
  heapMb: number;
  classpath: string;
  java: string;
  startTimeoutMs?: number;
  /** An extra SASL_SSL listener on `port`; absent: PLAINTEXT only. */
  security?: KafkaSecurityOptions & { port: number };
}

/** SCRAM mechanisms of the secure listener, besides PLAIN; every user gets both. */
const SCRAM_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;

/**
 * User names and passwords go into a JAAS line (`user_<name>="<pw>"`) and the
 * storage tool's `[name=..,password=..]` syntax, neither of which has a
 * quoting rule we could rely on; test credentials need nothing fancier.
 */
const SAFE_CREDENTIAL = /^[A-Za-z0-9._~@+-]+$/;

/** A PEM text as one Java properties value: newlines as `\n` escapes. */
function propertiesPem(text: string): string {
  return text.trim().split(/\r?\n/).join('\\n');
}

/**
 * Server certificate and key of the secure listener, checked here so a wrong
 * file is named at start instead of a Kafka stack trace in the broker log.
 */
function readServerPem(security: KafkaSecurityOptions): { chain: string; key: string } {
  const read = (what: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new EnvironmentError(`Kafka sandbox: cannot read the ${what} ${file}: ${String(err)}`, {
        cause: err,
      });
    }
  };
  const chain = read('server certificate', security.certFile);
  const key = read('server key', security.keyFile);
  if (!chain.includes('-----BEGIN CERTIFICATE-----')) {
    throw new EnvironmentError(`Kafka sandbox: ${security.certFile} holds no PEM certificate`);
  }
  // Kafka's PEM key store reads PKCS#8 only; PKCS#1 (`BEGIN RSA PRIVATE KEY`) fails deep inside the broker.
  if (!key.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new EnvironmentError(
      `Kafka sandbox: ${security.keyFile} is not an unencrypted PKCS#8 PEM key ("BEGIN PRIVATE KEY"); ` +
        'convert it with `openssl pkcs8 -topk8 -nocrypt`',
    );
  }
  return { chain, key };
}

function checkUsers(users: KafkaSecurityOptions['users']): void {
  if (users.length === 0) throw new EnvironmentError('Kafka sandbox: kafkaSecurity.users is empty');
  for (const [i, { username, password }] of users.entries()) {
    if (!SAFE_CREDENTIAL.test(username) || !SAFE_CREDENTIAL.test(password)) {
      throw new EnvironmentError(
        `Kafka sandbox: kafkaSecurity.users[${i}] (${JSON.stringify(username)}): user names and passwords ` +
          `may only use ${SAFE_CREDENTIAL.source}`,
      );
    }
  }
}

/** Where {@link writeKafkaConfig} writes the broker's and log4j's configuration. */
export function kafkaConfigFiles(dir: string): { propertiesFile: string; log4jFile: string } {
  return {
    propertiesFile: join(dir, 'server.properties'),
    log4jFile: join(dir, 'log4j.properties'),
  };
}

/** What {@link writeKafkaConfig} needs: the broker's directory, ports and optional secure listener. */
export type KafkaConfigOptions = Pick<
  LocalKafkaOptions,
  'dir' | 'brokerPort' | 'controllerPort' | 'security'
>;

/**
 * Writes a single-node KRaft broker's `server.properties` and log4j
 * configuration into `options.dir` (data and logs below it too); the local
 * launcher and the docker one (which mounts the directory at the same path)
 * share it, so both brokers run with the same settings.
 */
export function writeKafkaConfig(options: KafkaConfigOptions): void {
  const { dir, brokerPort, controllerPort } = options;
  const { propertiesFile, log4jFile } = kafkaConfigFiles(dir);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const plaintext = `PLAINTEXT://127.0.0.1:${brokerPort}`;
  const controller = `CONTROLLER://127.0.0.1:${controllerPort}`;
  const secure = secureListenerProperties(options.security);
  const properties = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: [plaintext, controller, ...secure.listeners].join(','),
    'advertised.listeners': [plaintext, ...secure.listeners].join(','),
    'controller.listener.names': 'CONTROLLER',
    // The broker's own traffic and the tests' tooling stay on PLAINTEXT: only clients under test use SASL_SSL.
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': [
      'PLAINTEXT:PLAINTEXT',
      'CONTROLLER:PLAINTEXT',
      ...(secure.listeners.length === 0 ? [] : ['SASL_SSL:SASL_SSL']),
    ].join(','),
    ...secure.properties,
    'log.dirs': join(dir, 'data'),
    // The replicator creates its topics explicitly; auto-creation would hide that bug.
    'auto.create.topics.enable': 'false',
    'num.partitions': '1',
    // Single node: internal topics cannot have more than one replica.
    'offsets.topic.replication.factor': '1',
    'offsets.topic.num.partitions': '5',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'transaction.state.log.num.partitions': '1',
    // Consumer groups form at once instead of waiting 3 s for more members.
    'group.initial.rebalance.delay.ms': '0',
  };
  writeFileSync(
    propertiesFile,
    Object.entries(properties)
      .map(([key, value]) => `${key}=${value}`)
      .join('\n') + '\n',
  );
  // Kafka 3.9 logs through reload4j (log4j 1.x syntax): everything to one file in the temp dir.
  writeFileSync(
    log4jFile,
    [
      'log4j.rootLogger=INFO, file',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${join(dir, 'logs', 'server.log')}`,
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
      'log4j.logger.kafka=INFO',
      'log4j.logger.org.apache.kafka=INFO',
    ].join('\n') + '\n',
  );
}

/**
 * The SASL_SSL listener's settings. The unencrypted PKCS#8 key and the
 * chain go inline (`ssl.keystore.key`, `ssl.keystore.certificate.chain`,
 * what the test runs with on Kafka 3.9.1), so there is no combined key +
 * chain file to write and keep private.
 */
function secureListenerProperties(security: LocalKafkaOptions['security']): {
  listeners: string[];
  properties: Record<string, string>;
} {
  if (security === undefined) return { listeners: [], properties: {} };
  const { chain, key } = readServerPem(security);
  const prefix = 'listener.name.sasl_ssl';
  const plainUsers = security.users
    .map(({ username, password }) => `user_${username}="${password}"`)
    .join(' ');
  return {
    listeners: [`SASL_SSL://127.0.0.1:${security.port}`],
    properties: {
      [`${prefix}.ssl.keystore.type`]: 'PEM',
      [`${prefix}.ssl.keystore.certificate.chain`]: propertiesPem(chain),
      [`${prefix}.ssl.keystore.key`]: propertiesPem(key),
      'sasl.enabled.mechanisms': ['PLAIN', ...SCRAM_MECHANISMS].join(','),
      // PLAIN checks passwords against this list; SCRAM against credentials stored at format time.
      [`${prefix}.plain.sasl.jaas.config`]: `org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
      ...Object.fromEntries(
        SCRAM_MECHANISMS.map((mechanism) => [
          `${prefix}.${mechanism.toLowerCase()}.sasl.jaas.config`,
          'org.apache.kafka.common.security.scram.ScramLoginModule required;',
        ]),
      ),
    },
  };
}

/** `--add-scram` arguments of the storage tool: in KRaft, SCRAM users live in the cluster metadata. */
export function kafkaScramArgs(security: LocalKafkaOptions['security']): string[] {
  const users = security?.users ?? [];
  return SCRAM_MECHANISMS.flatMap((mechanism) =>
    users.flatMap(({ username, password }) => [
      '--add-scram',
      `${mechanism}=[name=${username},password=${password}]`,
    ]),
  );
}

/**
 * A cluster id: 16 random bytes in URL-safe base64, what `kafka-storage
 * random-uuid` prints. Like Kafka's own Uuid.randomUuid, never one starting
 * with '-': the storage tool's argument parser would read it as an option
 * (1 start in 64 failed).
 */
export function randomClusterId(): string {
  let clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
  return clusterId;
}

/**
 * A single-node Kafka broker in KRaft mode (combined broker + controller),
 * run straight from Apache Kafka's jars. Storage is formatted once; stop and
 * start keep the data, so tests can take Kafka away and bring it back.
 */
export class LocalKafka implements SandboxService {
  readonly name = 'kafka';
  readonly endpoint: KafkaEndpoint;
  readonly #process: ManagedProcess;
  readonly #propertiesFile: string;
  readonly #log4jFile: string;
  #formatted = false;

  constructor(private readonly options: LocalKafkaOptions) {
    if (options.security !== undefined) checkUsers(options.security.users);
    this.endpoint = {
      brokers: [`127.0.0.1:${options.brokerPort}`],
      ...(options.security === undefined
        ? {}
        : { secureBrokers: [`127.0.0.1:${options.security.port}`] }),
    };
    ({ propertiesFile: this.#propertiesFile, log4jFile: this.#log4jFile } = kafkaConfigFiles(
      options.dir,
    ));
    this.#process = new ManagedProcess({
      name: this.name,
      command: options.java,
      marker: options.dir,
      logFile: join(options.dir, 'stdout.log'),
      args: [...this.#jvmArgs(), 'kafka.Kafka', this.#propertiesFile],
    });
  }

  #jvmArgs(): string[] {
    return [
      `-Xmx${this.options.heapMb}m`,
      `-Xms${Math.min(128, this.options.heapMb)}m`,
      // Two cores: a serial collector keeps GC threads from competing with the test itself.
      '-XX:+UseSerialGC',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${this.#log4jFile}`,
      `-Dkafka.logs.dir=${join(this.options.dir, 'logs')}`,
      '-cp',
      this.options.classpath,
    ];
  }

  async #format(): Promise<void> {
    if (this.#formatted) return;
    writeKafkaConfig(this.options);
    const clusterId = randomClusterId();
    try {
      await execFileAsync(this.options.java, [
        ...this.#jvmArgs(),
        'kafka.tools.StorageTool',
        'format',
        '--ignore-formatted',
        '-t',
        clusterId,
        '-c',
        this.#propertiesFile,
        ...kafkaScramArgs(this.options.security),
      ]);
    } catch (err) {
      throw new EnvironmentError(
        `formatting Kafka storage in ${this.options.dir} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`,
        { cause: err },
      );
    }
    this.#formatted = true;
  }

  async start(): Promise<void> {
    if (this.#process.running) return;
    await this.#format();
    this.#process.start();
    await waitUntilReady(
      this.name,
      this.#process,
      kafkaProbe(this.endpoint),
      this.options.startTimeoutMs ?? 60_000,
    );
  }

  stop(): Promise<void> {
    return this.#process.stop(30_000);
  }

  kill(): Promise<void> {
    return this.#process.kill();
  }

  pids(): number[] {
    const pid = this.#process.pid;
    return pid === undefined ? [] : [pid];
  }
}
