import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvironmentError } from '../../core/errors.js';
import {
  kafkaConfigFiles,
  kafkaScramArgs,
  randomClusterId,
  writeKafkaConfig,
} from '../local/kafka.js';
import { sandboxPortPool } from '../ports.js';
import { reapOrphans, releaseScratchDir, trackScratchDir } from '../processes.js';
import { resolveRegions } from '../regions.js';
import type { MySqlEndpoint, Sandbox, SandboxOptions, SandboxService } from '../types.js';
import { DockerService, reapOrphanContainers } from './containers.js';
import { missingImages, probeDocker, resolveImages, type ImageKind } from './images.js';
import { kafkaProbe, probeRedis, probeSql } from '../probes.js';

/** Region i gets server_id 101+i and (on MariaDB) GTID domain 1+i, as in the local launcher. */
const SERVER_ID_BASE = 101;

/** Server options both engines share with the local launcher (DESIGN.md §1). */
function commonSqlArgs(port: number, serverId: number, bufferPoolMb: number): string[] {
  return [
    '--bind-address=127.0.0.1',
    `--port=${port}`,
    `--server-id=${serverId}`,
    '--log-bin=binlog',
    '--binlog-format=ROW',
    '--binlog-row-image=FULL',
    '--binlog-row-metadata=FULL',
    '--character-set-server=utf8mb4',
    '--max-connections=500',
    `--innodb-buffer-pool-size=${bufferPoolMb}M`,
    // Test servers: the replicator's durability is under test, not the server's fsync.
    '--innodb-flush-log-at-trx-commit=2',
    '--performance-schema=OFF',
  ];
}

/** `uid:gid` of this process, for containers that write into the scratch dir as-is (Kafka). */
function hostUser(): string | undefined {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  return uid === undefined || gid === undefined ? undefined : `${uid}:${gid}`;
}

/**
 * Starts the sandbox's services as containers (testcontainers), with host
 * networking and each service on its own free loopback port, configured like
 * the local launcher's processes. Images: `CDC_IMAGE_MARIADB`,
 * `CDC_IMAGE_MYSQL8`, `CDC_IMAGE_KAFKA`, `CDC_IMAGE_REDIS` (see images.ts).
 */
export async function startDockerSandbox(options: SandboxOptions): Promise<Sandbox> {
  const log = options.log ?? (() => undefined);
  const regions = resolveRegions(options.regions);
  const wantKafka = options.kafka ?? true;
  const wantRedis = options.redis ?? true;
  const kinds: ImageKind[] = [
    ...(regions.some((r) => r.engine === 'mariadb') ? (['mariadb'] as const) : []),
    ...(regions.some((r) => r.engine === 'mysql8') ? (['mysql8'] as const) : []),
    ...(wantKafka ? (['kafka'] as const) : []),
    ...(wantRedis ? (['redis'] as const) : []),
  ];
  const probe = probeDocker();
  if (!probe.engine) {
    throw new EnvironmentError(
      `CDC_SANDBOX=docker: ${probe.reason}; start one (scripts/docker-engine.sh) or use CDC_SANDBOX=local`,
      {
        code: 'PREREQUISITE_MISSING',
      },
    );
  }
  const images = resolveImages(probe.present);
  const missing = missingImages(images, kinds, probe.present);
  if (missing.length > 0) {
    // Never pulled here: a pull from inside a test would hang on a machine without a registry.
    throw new EnvironmentError(
      `CDC_SANDBOX=docker: image(s) ${missing.join(', ')} not on this machine; ` +
        '`docker pull` them, or build the local ones with scripts/docker-engine.sh ' +
        '(or point CDC_IMAGE_MARIADB, CDC_IMAGE_MYSQL8, CDC_IMAGE_KAFKA, CDC_IMAGE_REDIS at images you have)',
      { code: 'PREREQUISITE_MISSING' },
    );
  }
  const reaped = reapOrphanContainers();
  if (reaped > 0) log(`removed ${reaped} containers left by a launcher that was killed`);
  // Scratch dirs (and any local processes) of killed launchers, as the local launcher does.
  const reapedProcesses = reapOrphans();
  if (reapedProcesses > 0) {
    log(`reaped ${reapedProcesses} processes left by a launcher that was killed`);
  }

  const dir = mkdtempSync(join(options.baseDir ?? tmpdir(), 'cdc-sandbox-'));
  trackScratchDir(dir);
  const services: SandboxService[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled([...services].reverse().map((s) => s.stop()));
  };
  try {
    const takePort = await sandboxPortPool(regions.length, options.kafkaSecurity !== undefined);
    const bufferPoolMb = options.mysqlBufferPoolMb ?? 128;
    const mysql = regions.map(({ name: region, engine }, i) => {
      const endpoint: MySqlEndpoint = {
        region,
        engine,
        host: '127.0.0.1',
        port: takePort(),
        user: 'root',
        password: '',
        serverId: SERVER_ID_BASE + i,
        gtidDomainId: 1 + i,
      };
      const dataDir = join(dir, `${engine}-${region}`, 'data');
      mkdirSync(dataDir, { recursive: true });
      const args = commonSqlArgs(endpoint.port, endpoint.serverId, bufferPoolMb);
      const service =
        engine === 'mariadb'
          ? new DockerService(
              `mariadb[${region}]`,
              {
                image: images.mariadb,
                command: [
                  ...args,
                  `--gtid-domain-id=${endpoint.gtidDomainId}`,
                  '--skip-name-resolve',
                ],
                environment: { MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: '1' },
                binds: [{ source: dataDir, target: '/var/lib/mysql' }],
              },
              () => probeSql(endpoint),
              60_000,
            )
          : new DockerService(
              `mysql8[${region}]`,
              {
                image: images.mysql8,
                command: [
                  ...args,
                  '--gtid-mode=ON',
                  '--enforce-gtid-consistency=ON',
                  '--mysqlx=OFF', // the X protocol would take another (host) port
                ],
                environment: { MYSQL_ALLOW_EMPTY_PASSWORD: 'yes' },
                binds: [{ source: dataDir, target: '/var/lib/mysql' }],
              },
              () => probeSql(endpoint),
              120_000,
            );
      return { endpoint, service };
    });

    let redis: { url: string; service: DockerService } | undefined;
    if (wantRedis) {
      const port = takePort();
      const url = `redis://127.0.0.1:${port}`;
      const redisDir = join(dir, 'redis');
      mkdirSync(redisDir, { recursive: true });
      redis = {
        url,
        service: new DockerService(
          'redis',
          {
            image: images.redis,
            command: [
              'redis-server',
              '--port',
              String(port),
              '--bind',
              '127.0.0.1',
              '--dir',
              '/data',
              '--save',
              '',
              '--appendonly',
              'yes',
            ],
            binds: [{ source: redisDir, target: '/data' }],
          },
          () => probeRedis(url),
          30_000,
        ),
      };
    }

    let kafka: { brokers: string[]; secureBrokers?: string[]; service: DockerService } | undefined;
    if (wantKafka) {
      const kafkaDir = join(dir, 'kafka');
      mkdirSync(kafkaDir, { recursive: true });
      const brokerPort = takePort();
      const controllerPort = takePort();
      const security =
        options.kafkaSecurity === undefined
          ? undefined
          : { ...options.kafkaSecurity, port: takePort() };
      const config = {
        dir: kafkaDir,
        brokerPort,
        controllerPort,
        ...(security === undefined ? {} : { security }),
      };
      const endpoint = {
        brokers: [`127.0.0.1:${brokerPort}`],
        ...(security === undefined ? {} : { secureBrokers: [`127.0.0.1:${security.port}`] }),
      };
      const { propertiesFile, log4jFile } = kafkaConfigFiles(kafkaDir);
      const clusterId = randomClusterId();
      const heapMb = options.kafkaHeapMb ?? 512;
      // Credentials are limited to a safe character set (local/kafka.ts); single quotes keep
      // bash from reading `[name=..]` as a glob.
      const scram = kafkaScramArgs(security)
        .map((arg) => `'${arg}'`)
        .join(' ');
      let configured = false;
      kafka = {
        ...endpoint,
        service: new DockerService(
          'kafka',
          {
            image: images.kafka,
            // The scratch dir is mounted at the same path, so the configuration written for
            // the local broker is valid inside the container as it is.
            entrypoint: ['/bin/bash', '-c'],
            command: [
              `/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t ${clusterId} -c ${propertiesFile} ${scram} >/dev/null ` +
                `&& exec /opt/kafka/bin/kafka-server-start.sh ${propertiesFile}`,
            ],
            environment: {
              KAFKA_HEAP_OPTS: `-Xmx${heapMb}m -Xms${Math.min(128, heapMb)}m`,
              // Two cores: a serial collector keeps GC threads from competing with the test itself.
              KAFKA_JVM_PERFORMANCE_OPTS: '-XX:+UseSerialGC',
              KAFKA_LOG4J_OPTS: `-Dlog4j.configuration=file:${log4jFile}`,
              LOG_DIR: join(kafkaDir, 'logs'),
            },
            binds: [{ source: kafkaDir, target: kafkaDir }],
            ...(hostUser() === undefined ? {} : { user: hostUser() }),
          },
          kafkaProbe(endpoint),
          90_000,
          () => {
            if (configured) return;
            writeKafkaConfig(config);
            configured = true;
          },
        ),
      };
    }

    const startedAt = Date.now();
    const all = [
      ...(kafka === undefined ? [] : [kafka.service]),
      ...mysql.map((m) => m.service),
      ...(redis === undefined ? [] : [redis.service]),
    ];
    services.push(...all);
    const results = await Promise.allSettled(all.map((s) => s.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    log(
      `sandbox containers ready in ${Date.now() - startedAt} ms (${dir}; images ${kinds.map((k) => images[k]).join(', ')})`,
    );

    let stopped: Promise<void> | undefined;
    return {
      mode: 'docker',
      dir,
      mysql: mysql.map((m) => m.endpoint),
      kafka:
        kafka === undefined
          ? undefined
          : {
              brokers: kafka.brokers,
              ...(kafka.secureBrokers === undefined ? {} : { secureBrokers: kafka.secureBrokers }),
            },
      redis: redis === undefined ? undefined : { url: redis.url },
      services: {
        mysql: mysql.map((m) => m.service),
        kafka: kafka?.service,
        redis: redis?.service,
      },
      pids: () => all.flatMap((s) => s.pids()),
      stop: () => {
        stopped ??= (async () => {
          try {
            await stopAll();
          } finally {
            releaseScratchDir(dir, options.keepDir === true, log);
          }
        })();
        return stopped;
      },
    };
  } catch (err) {
    await stopAll().catch(() => undefined);
    releaseScratchDir(dir, false, log);
    throw err;
  }
}
