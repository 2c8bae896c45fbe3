/**
 * Smoke test of the compose stack (deploy/compose), brought up for real with
 * Debian's docker-compose (1.29) and the local images of
 * scripts/docker-engine.sh: two MariaDB regions, Kafka, Redis, both prepare
 * jobs, both daemons and Prometheus. compose.host.yml (beside this file)
 * puts every container on the host network, each service on its own free
 * loopback port, so nothing here addresses a bridge address. Grafana is left
 * out: no image of it can be built from Debian, npm or Maven Central (see
 * docs/DOCKER.md). Everything is removed afterwards (`down -v`), pass or fail.
 *
 * Part of `npm test` (about 20 s once the images exist); CDC_TEST_COMPOSE=0
 * skips it. CI runs scripts/docker-engine.sh first, which installs
 * docker-compose and builds every image named here.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import { parse, stringify } from 'yaml';

import { freePorts } from '../../../src/sandbox/ports.js';
import { randomClusterId, writeKafkaConfig } from '../../../src/sandbox/local/kafka.js';
import { requireEngineAndImage } from './docker.js';
import { repoPath } from './files.js';

const run = promisify(execFile);
const enabled = process.env.CDC_TEST_COMPOSE !== '0';

/** Local builds of scripts/docker-engine.sh, each overridable like the shipped defaults. */
const IMAGES = {
  CDC_COMPOSE_IMAGE_MYSQL: process.env.CDC_COMPOSE_IMAGE_MYSQL ?? 'cdc-local/mariadb:10.11',
  CDC_COMPOSE_IMAGE_KAFKA: process.env.CDC_COMPOSE_IMAGE_KAFKA ?? 'cdc-local/kafka:3.9.1',
  CDC_COMPOSE_IMAGE_REDIS: process.env.CDC_COMPOSE_IMAGE_REDIS ?? 'cdc-local/redis:7',
  CDC_COMPOSE_IMAGE_REPLICATOR: process.env.CDC_COMPOSE_IMAGE_REPLICATOR ?? 'cdc-replicator:local',
  CDC_COMPOSE_IMAGE_PROMETHEUS:
    process.env.CDC_COMPOSE_IMAGE_PROMETHEUS ?? 'cdc-local/prometheus:2',
};

/** Every service but grafana (see the file comment). */
const SERVICES = [
  'mysql-us-east',
  'mysql-eu-west',
  'kafka',
  'redis',
  'prepare-us-east',
  'prepare-eu-west',
  'cdc-us-east',
  'cdc-eu-west',
  'prometheus',
];
const REGIONS = ['us-east', 'eu-west'] as const;
type Region = (typeof REGIONS)[number];
const CDC_PASSWORD = 'cdc-dev-only';
const REDIS_PASSWORD = 'redis-dev-only';

const maybe = enabled ? describe : describe.skip;

maybe('the compose stack, brought up', () => {
  jest.setTimeout(240_000);
  const project = `cdc-compose-smoke-${process.pid}`;
  let dir = '';
  let env: NodeJS.ProcessEnv = {};
  let sqlPort: Record<Region, number>;
  let metricsPort: Record<Region, number>;
  let prometheusPort = 0;
  let up = false;

  /**
   * The shipped file with compose.host.yml over it. Once `resolved` is written:
   * that, their merge as `docker-compose config` prints it, without the
   * published ports (Compose v1 cannot drop a list entry in an override, and
   * refuses `ports:` next to `network_mode: host`, where they mean nothing).
   */
  let files = [
    '-f',
    repoPath('deploy/compose/docker-compose.yml'),
    '-f',
    repoPath('test/integration/deploy/compose.host.yml'),
  ];

  async function compose(args: string[], timeoutMs = 180_000): Promise<string> {
    try {
      const { stdout } = await run('docker-compose', ['-p', project, ...files, ...args], {
        env,
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    } catch (error: unknown) {
      const e = error as { stdout?: string; stderr?: string; message?: string };
      throw new Error(
        `docker-compose ${args.join(' ')} failed: ${e.message ?? ''}\n${e.stderr ?? ''}${e.stdout ?? ''}`,
      );
    }
  }

  async function logs(): Promise<string> {
    try {
      return (await compose(['logs', '--no-color', '--tail', '30'], 60_000)).slice(-20_000);
    } catch (error) {
      return String(error);
    }
  }

  beforeAll(async () => {
    for (const image of Object.values(IMAGES)) await requireEngineAndImage(image);
    try {
      await run('docker-compose', ['version'], { timeout: 30_000 });
    } catch (error) {
      throw new Error(
        `docker-compose does not run (${String(error)}); run scripts/docker-engine.sh, which installs it`,
      );
    }
    const [us, eu, kafka, controller, redis, mUs, mEu, prom] = await freePorts(8);
    sqlPort = { 'us-east': us ?? 0, 'eu-west': eu ?? 0 };
    metricsPort = { 'us-east': mUs ?? 0, 'eu-west': mEu ?? 0 };
    prometheusPort = prom ?? 0;
    dir = mkdtempSync(join(tmpdir(), 'cdc-compose-'));
    // The replicator and Prometheus run as other users; they read these files.
    chmodSync(dir, 0o755);
    writeKafkaConfig({
      dir: join(dir, 'kafka'),
      brokerPort: kafka ?? 0,
      controllerPort: controller ?? 0,
    });
    // MariaDB's init file: what the upstream image's MYSQL_* variables and
    // docker-entrypoint-initdb.d do in the shipped file. Runs at every start.
    const schema = readFileSync(repoPath('deploy/compose/mysql-init/01-app-schema.sql'), 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith('--'))
      .join('\n');
    writeFileSync(
      join(dir, 'mariadb-init.sql'),
      [
        'CREATE DATABASE IF NOT EXISTS app;',
        `CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY '${CDC_PASSWORD}';`,
        "GRANT ALL PRIVILEGES ON app.* TO 'cdc'@'%';",
        // One statement a line: MariaDB's init file runs statements as they end.
        ...schema
          .split(';')
          .map((s) => s.replace(/\s+/g, ' ').trim())
          .filter((s) => s !== '')
          .map((s) => `${s};`),
        '',
      ].join('\n'),
    );
    for (const region of REGIONS) {
      writeFileSync(
        join(dir, `pipeline-${region}.yml`),
        [
          'regions:',
          ...REGIONS.flatMap((r) => [
            `  ${r}:`,
            `    mysql: { host: 127.0.0.1, port: ${sqlPort[r]}, user: cdc, password: '\${${r === 'us-east' ? 'US_EAST' : 'EU_WEST'}_MYSQL_PASSWORD}' }`,
            `    metrics: { url: 'http://127.0.0.1:${metricsPort[r]}' }`,
          ]),
          `kafka: { brokers: ['127.0.0.1:${kafka}'], topicPrefix: cdc, topics: { partitions: 3, replicationFactor: 1 } }`,
          `redis: { url: 'redis://:\${REDIS_PASSWORD}@127.0.0.1:${redis}' }`,
          'pipelines:',
          "  - { name: app, tables: ['app.*'], conflict: { strategy: lww } }",
          'apply: { tombstoneHorizonHours: 168 }',
          `metrics: { host: 127.0.0.1, port: ${metricsPort[region]} }`,
          '',
        ].join('\n'),
      );
    }
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 2s, evaluation_interval: 2s }',
        'rule_files: [/etc/prometheus/alert-rules.yml]',
        'scrape_configs:',
        '  - job_name: cdc-replicator',
        `    static_configs: [{ targets: ['127.0.0.1:${metricsPort['us-east']}', '127.0.0.1:${metricsPort['eu-west']}'] }]`,
        '',
      ].join('\n'),
    );
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...IMAGES,
      CDC_COMPOSE_DIR: dir,
      CDC_COMPOSE_USER: `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`,
      CDC_COMPOSE_KAFKA_CLUSTER_ID: randomClusterId(),
      CDC_COMPOSE_PORT_MYSQL_US_EAST: String(us),
      CDC_COMPOSE_PORT_MYSQL_EU_WEST: String(eu),
      CDC_COMPOSE_PORT_KAFKA: String(kafka),
      CDC_COMPOSE_PORT_REDIS: String(redis),
      CDC_COMPOSE_PORT_METRICS_US_EAST: String(mUs),
      CDC_COMPOSE_PORT_METRICS_EU_WEST: String(mEu),
      CDC_COMPOSE_PORT_PROMETHEUS: String(prom),
      US_EAST_MYSQL_PASSWORD: CDC_PASSWORD,
      EU_WEST_MYSQL_PASSWORD: CDC_PASSWORD,
      REDIS_PASSWORD,
    };
    const merged = parse(await compose(['config'], 60_000)) as {
      services: Record<string, Record<string, unknown>>;
    };
    for (const [name, service] of Object.entries(merged.services)) {
      expect({ name, network: service.network_mode }).toEqual({ name, network: 'host' });
      delete service.ports;
    }
    const resolved = join(dir, 'docker-compose.resolved.yml');
    // YAML 1.1, as Compose v1 reads it: 'no' and 'yes' stay quoted strings.
    writeFileSync(resolved, stringify(merged, { version: '1.1' }));
    files = ['-f', resolved];
    up = true;
    try {
      await compose(['up', '-d', '--no-build', ...SERVICES]);
    } catch (error) {
      throw new Error(`${String(error)}\n${await logs()}`);
    }
  });

  afterAll(async () => {
    try {
      if (up) await compose(['down', '-v', '--remove-orphans', '--timeout', '10'], 120_000);
    } finally {
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    }
  });

  async function until<T>(
    what: string,
    check: () => Promise<T | undefined>,
    timeoutMs: number,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const value = await check();
        if (value !== undefined) return value;
      } catch (error) {
        last = error;
      }
      await sleep(1000);
    }
    throw new Error(
      `${what} within ${timeoutMs} ms (last error: ${String(last)}):\n${await logs()}`,
    );
  }

  async function connect(region: Region): Promise<mysql.Connection> {
    return mysql.createConnection({
      host: '127.0.0.1',
      port: sqlPort[region],
      user: 'cdc',
      password: CDC_PASSWORD,
      database: 'app',
    });
  }

  async function getJson(url: string): Promise<unknown> {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  it('starts both daemons, which answer /readyz', async () => {
    for (const region of REGIONS) {
      await until(
        `the ${region} daemon ready`,
        async () => {
          const response = await fetch(`http://127.0.0.1:${metricsPort[region]}/readyz`, {
            signal: AbortSignal.timeout(5000),
          });
          return response.ok ? true : undefined;
        },
        120_000,
      );
    }
  });

  it('replicates a write in each region to the other', async () => {
    const conns = { 'us-east': await connect('us-east'), 'eu-west': await connect('eu-west') };
    try {
      await conns['us-east'].query(
        "INSERT INTO users (id, email, name) VALUES (1, 'a@example.com', 'from us-east')",
      );
      await conns['eu-west'].query(
        "INSERT INTO users (id, email, name) VALUES (2, 'b@example.com', 'from eu-west')",
      );
      for (const region of REGIONS) {
        await until(
          `both rows in ${region}`,
          async () => {
            const [rows] = await conns[region].query('SELECT id, name FROM users ORDER BY id');
            const got = JSON.stringify(rows);
            return got ===
              JSON.stringify([
                { id: 1, name: 'from us-east' },
                { id: 2, name: 'from eu-west' },
              ])
              ? got
              : undefined;
          },
          60_000,
        );
      }
    } finally {
      await Promise.all(Object.values(conns).map((c) => c.end()));
    }
  });

  it('has Prometheus scrape both daemons and load the alert rules', async () => {
    const base = `http://127.0.0.1:${prometheusPort}`;
    const expected = REGIONS.map((r) => `127.0.0.1:${metricsPort[r]}`).sort();
    const up = await until(
      'Prometheus scraping both daemons',
      async () => {
        const body = (await getJson(`${base}/api/v1/targets`)) as {
          data: { activeTargets: { labels: { instance: string; job: string }; health: string }[] };
        };
        const healthy = body.data.activeTargets
          .filter((t) => t.labels.job === 'cdc-replicator' && t.health === 'up')
          .map((t) => t.labels.instance)
          .sort();
        return JSON.stringify(healthy) === JSON.stringify(expected) ? healthy : undefined;
      },
      60_000,
    );
    expect(up).toEqual(expected);
    const shipped = readFileSync(repoPath('deploy/prometheus/alert-rules.yml'), 'utf8');
    const names = [...shipped.matchAll(/^\s*-\s*alert:\s*(\S+)/gm)].map((m) => m[1] ?? '');
    expect(names.length).toBeGreaterThan(0);
    const rules = (await getJson(`${base}/api/v1/rules`)) as {
      data: { groups: { rules: { name: string; type: string }[] }[] };
    };
    const loaded = rules.data.groups.flatMap((g) =>
      g.rules.filter((r) => r.type === 'alerting').map((r) => r.name),
    );
    expect(loaded.sort()).toEqual([...names].sort());
  });
});
