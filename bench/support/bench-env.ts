import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileRegion, type RuntimeOptions } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import { connectMysql, type MysqlConnection } from '../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../src/prepare/prepare.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { freePorts } from '../../src/sandbox/ports.js';
import { DaemonProc } from './daemon-proc.js';
import type { ScenarioContext } from './scenario.js';

/** The scenario's load profile (`load.json`). */
export function loadProfile<T>(context: ScenarioContext): T {
  return JSON.parse(readFileSync(join(context.scenarioDir, 'load.json'), 'utf8')) as T;
}

/**
 * The scenario's `pipeline.yaml` with its `${BENCH_*}` references: the file
 * is what a user would write; the bench fills in the sandbox's ports through
 * the environment, exactly as `run` expands them.
 */
export class Pipeline {
  readonly yaml: string;
  readonly env: Record<string, string>;
  readonly configFile: string;

  private constructor(
    readonly context: ScenarioContext,
    readonly sandbox: Sandbox,
    readonly name: string,
    env: Record<string, string>,
    file: string,
  ) {
    this.yaml = readFileSync(join(context.scenarioDir, file), 'utf8');
    this.env = env;
    mkdirSync(join(context.workDir, name), { recursive: true });
    this.configFile = join(context.workDir, name, 'pipeline.yaml');
    writeFileSync(this.configFile, this.yaml);
  }

  /**
   * Env for the sandbox: each region's MySQL port, a free metrics port, the
   * broker, a topic prefix and state dir. `file` is the scenario's pipeline
   * file to run (default `pipeline.yaml`), for scenarios comparing two.
   */
  static async create(
    context: ScenarioContext,
    sandbox: Sandbox,
    name: string,
    extra: Record<string, string> = {},
    file = 'pipeline.yaml',
  ): Promise<Pipeline> {
    const ports = await freePorts(sandbox.mysql.length);
    const env: Record<string, string> = {
      BENCH_KAFKA_BROKER: sandbox.kafka?.brokers[0] ?? '127.0.0.1:9',
      BENCH_TOPIC_PREFIX: name.replace(/[^A-Za-z0-9]/g, ''),
      BENCH_STATE_DIR: join(context.workDir, name, 'state'),
      ...extra,
    };
    sandbox.mysql.forEach((m, i) => {
      const key = m.region.toUpperCase().replace(/[^A-Z0-9]/g, '_');
      env[`BENCH_${key}_MYSQL_PORT`] = String(m.port);
      env[`BENCH_${key}_METRICS_PORT`] = String(ports[i]);
    });
    return new Pipeline(context, sandbox, name, env, file);
  }

  options(region: string): RuntimeOptions {
    return compileRegion(parseConfig(this.yaml, { env: this.env }), region);
  }

  metricsPort(region: string): number {
    return Number(
      this.env[`BENCH_${region.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_METRICS_PORT`],
    );
  }

  /** Internal tables, hidden columns and triggers in a region (what `prepare` does). */
  async prepare(region: string): Promise<void> {
    const options = this.options(region);
    const connection = await connectMysql(options.mysql);
    try {
      await applyPrepare(
        connection,
        await planPrepare(connection, options, options.internalSchema),
      );
    } finally {
      await connection.end();
    }
  }

  async connect(region: string): Promise<MysqlConnection> {
    return connectMysql(this.options(region).mysql);
  }

  daemon(region: string, label = region): DaemonProc {
    const nodeArgs =
      this.context.cpuProfDir === undefined
        ? []
        : [
            '--cpu-prof',
            `--cpu-prof-dir=${join(this.context.cpuProfDir, `${this.name}-${label}`)}`,
          ];
    return new DaemonProc({
      root: this.context.root,
      configFile: this.configFile,
      region,
      metricsPort: this.metricsPort(region),
      logDir: join(this.context.workDir, this.name, 'logs'),
      env: this.env,
      nodeArgs,
      label: `${this.name}-${label}`,
    });
  }
}

/**
 * Makes a region's next capture start at `position` (a GTID set), like a
 * resumed daemon: in the checkpoint store and, as the newest record, in the
 * region's position topic (capture starts from the copy further ahead, so
 * a previous round's end there would win over the store).
 */
export async function saveCapturePosition(
  pipeline: Pipeline,
  region: string,
  position: string,
): Promise<void> {
  const { createCheckpointStore } = await import('../../src/state/index.js');
  const { CAPTURE_CHECKPOINT_KEY } = await import('../../src/capture/capture-stage.js');
  const { KafkaPositionLog } = await import('../../src/capture/position-log.js');
  const { createKafka, createChangeProducer } = await import('../../src/bus/kafka.js');
  const options = pipeline.options(region);
  const checkpoint = { position, savedAtMs: Date.now() };
  const store = await createCheckpointStore(options.checkpointStore, {
    logger: pipeline.context.logger,
  });
  try {
    await store.save(CAPTURE_CHECKPOINT_KEY, checkpoint);
  } finally {
    await store.close();
  }
  const kafka = createKafka(options.kafka, pipeline.context.logger);
  const log = new KafkaPositionLog({
    kafka,
    prefix: options.kafka.topicPrefix,
    region,
    topics: options.kafka.topics,
    logger: pipeline.context.logger,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(log.topic)) return;
  } finally {
    await admin.disconnect();
  }
  const producer = createChangeProducer(kafka);
  await producer.connect();
  try {
    await log.append(producer, checkpoint);
  } finally {
    await producer.disconnect();
  }
}
