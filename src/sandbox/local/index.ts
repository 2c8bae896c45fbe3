import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrograms } from '../prerequisites.js';
import { sandboxPortPool } from '../ports.js';
import { reapOrphans, releaseScratchDir, trackScratchDir } from '../processes.js';
import { resolveRegions } from '../regions.js';
import type { Sandbox, SandboxOptions, SandboxService } from '../types.js';
import { kafkaClasspath } from './kafka-jars.js';
import { LocalKafka } from './kafka.js';
import { LocalMariaDb } from './mariadb.js';
import { LocalMySql8 } from './mysql8.js';
import { checkMysql8Libraries, mysql8Distribution } from './mysql8-dist.js';
import { LocalRedis } from './redis.js';

/** Region i gets server_id 101+i and (on MariaDB) GTID domain 1+i: unique within the sandbox. */
const SERVER_ID_BASE = 101;

/**
 * Starts a MariaDB or MySQL 8 per region, Kafka and Redis as local processes
 * on free ports.
 */
export async function startLocalSandbox(options: SandboxOptions): Promise<Sandbox> {
  const log = options.log ?? (() => undefined);
  const regions = resolveRegions(options.regions);
  const wantMariaDb = regions.some((r) => r.engine === 'mariadb');
  const wantMysql8 = regions.some((r) => r.engine === 'mysql8');
  const wantKafka = options.kafka ?? true;
  const wantRedis = options.redis ?? true;
  const programs = requirePrograms([
    ...(wantMariaDb ? (['mariadbd', 'mariadbInstallDb'] as const) : []),
    ...(wantRedis ? (['redisServer'] as const) : []),
    ...(wantKafka ? (['java'] as const) : []),
    ...(wantKafka || wantMysql8 ? (['mvn'] as const) : []),
    ...(wantMysql8 ? (['tar'] as const) : []),
  ]);
  // Fetched (first run only) and checked before anything starts, so a missing
  // download or library is one clear error rather than a server dying later.
  const mysql8 = wantMysql8
    ? await mysql8Distribution({ mvn: programs.mvn, tar: programs.tar, log })
    : undefined;
  if (mysql8 !== undefined) await checkMysql8Libraries(mysql8.mysqld);
  const reaped = reapOrphans();
  if (reaped > 0) log(`reaped ${reaped} processes left by a launcher that was killed`);

  const dir = mkdtempSync(join(options.baseDir ?? tmpdir(), 'cdc-sandbox-'));
  trackScratchDir(dir);
  const started: SandboxService[] = [];
  const stopAll = async (): Promise<void> => {
    // Stop in reverse start order; each stop is independent, so one failure must not leak the rest.
    const results = await Promise.allSettled(started.reverse().map((service) => service.stop()));
    started.length = 0;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  };

  try {
    const takePort = await sandboxPortPool(regions.length, options.kafkaSecurity !== undefined);
    const bufferPoolMb = options.mysqlBufferPoolMb ?? 128;
    const mysql = regions.map(({ name: region, engine }, i) => {
      const server = {
        region,
        port: takePort(),
        serverId: SERVER_ID_BASE + i,
        gtidDomainId: 1 + i,
        bufferPoolMb,
      };
      if (engine === 'mariadb') {
        return new LocalMariaDb({ ...server, dir: join(dir, `mariadb-${region}`), programs });
      }
      if (mysql8 === undefined) throw new Error('MySQL 8 region without a MySQL 8 distribution');
      return new LocalMySql8({
        ...server,
        dir: join(dir, `mysql8-${region}`),
        distribution: mysql8,
      });
    });
    const redis = wantRedis
      ? new LocalRedis({
          dir: join(dir, 'redis'),
          port: takePort(),
          redisServer: programs.redisServer,
        })
      : undefined;
    const kafkaPorts = [takePort(), takePort()] as const;
    const kafkaSecurePort = options.kafkaSecurity === undefined ? undefined : takePort();

    const startAndTrack = async (service: SandboxService): Promise<void> => {
      started.push(service);
      await service.start();
    };
    const startKafka = async (): Promise<LocalKafka | undefined> => {
      if (!wantKafka) return undefined;
      const classpath = await kafkaClasspath(programs.mvn, log);
      const kafka = new LocalKafka({
        dir: join(dir, 'kafka'),
        brokerPort: kafkaPorts[0],
        controllerPort: kafkaPorts[1],
        heapMb: options.kafkaHeapMb ?? 512,
        classpath,
        java: programs.java,
        ...(options.kafkaSecurity === undefined || kafkaSecurePort === undefined
          ? {}
          : { security: { ...options.kafkaSecurity, port: kafkaSecurePort } }),
      });
      await startAndTrack(kafka);
      return kafka;
    };
    const startedAt = Date.now();
    // Kafka's JVM start dominates, so everything starts concurrently.
    const [kafka] = await Promise.all([
      startKafka(),
      ...mysql.map((server) => startAndTrack(server)),
      ...(redis === undefined ? [] : [startAndTrack(redis)]),
    ]);
    log(`sandbox services ready in ${Date.now() - startedAt} ms (${dir})`);

    let stopped: Promise<void> | undefined;
    return {
      mode: 'local',
      dir,
      mysql: mysql.map((server) => server.endpoint),
      kafka: kafka?.endpoint,
      redis: redis?.endpoint,
      services: { mysql, kafka, redis },
      pids: () =>
        [...mysql, ...(kafka ? [kafka] : []), ...(redis ? [redis] : [])].flatMap((s) => s.pids()),
      stop: () => {
        stopped ??= (async () => {
          try {
            await Promise.allSettled(
              [...mysql, ...(kafka ? [kafka] : []), ...(redis ? [redis] : [])].map((s) => s.stop()),
            );
          } finally {
            releaseScratchDir(dir, options.keepDir === true, log);
          }
        })();
        return stopped;
      },
    };
  } catch (err) {
    await stopAll().catch(() => undefined); // the start-up error is the one worth reporting
    releaseScratchDir(dir, false, log);
    throw err;
  }
}
