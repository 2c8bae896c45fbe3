import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { EnvironmentError } from '../../core/errors.js';
import { ManagedProcess } from '../processes.js';
import type { KafkaEndpoint, SandboxService } from '../types.js';
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
    this.endpoint = { brokers: [`127.0.0.1:${options.brokerPort}`] };
    this.#propertiesFile = join(options.dir, 'server.properties');
    this.#log4jFile = join(options.dir, 'log4j.properties');
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

  #writeConfig(): void {
    const { dir, brokerPort, controllerPort } = this.options;
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const properties = {
      'process.roles': 'broker,controller',
      'node.id': '1',
      'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
      listeners: `PLAINTEXT://127.0.0.1:${brokerPort},CONTROLLER://127.0.0.1:${controllerPort}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${brokerPort}`,
      'controller.listener.names': 'CONTROLLER',
      'inter.broker.listener.name': 'PLAINTEXT',
      'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
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
      this.#propertiesFile,
      Object.entries(properties)
        .map(([key, value]) => `${key}=${value}`)
        .join('\n') + '\n',
    );
    // Kafka 3.9 logs through reload4j (log4j 1.x syntax): everything to one file in the temp dir.
    writeFileSync(
      this.#log4jFile,
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

  async #format(): Promise<void> {
    if (this.#formatted) return;
    this.#writeConfig();
    // A cluster id is 16 random bytes in URL-safe base64, what `kafka-storage random-uuid` prints.
    // Like Kafka's own Uuid.randomUuid, never one starting with '-': the storage
    // tool's argument parser would read it as an option (1 start in 64 failed).
    let clusterId = randomBytes(16).toString('base64url');
    while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
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
    const kafka = new Kafka({
      clientId: 'sandbox-probe',
      brokers: this.endpoint.brokers,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1000,
      retry: { retries: 0 },
    });
    await waitUntilReady(
      this.name,
      this.#process,
      async () => {
        const admin = kafka.admin();
        try {
          await admin.connect();
          const cluster = await admin.describeCluster();
          if (cluster.brokers.length === 0 || cluster.controller === null) {
            throw new Error('no broker registered yet');
          }
        } finally {
          await admin.disconnect();
        }
      },
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
