/**
 * The project's image, built and run (issue 17): two regions whose daemons
 * both run as containers of `cdc-replicator:local` (scripts/docker-engine.sh
 * builds it from the Dockerfile on a local Debian + Node.js 20 base), against
 * the sandbox's MariaDB, Kafka and Redis started here as local processes.
 *
 * Every container runs with host networking and every service listens on its
 * own free loopback port, so nothing here addresses a bridge network. The
 * pipeline file is mounted read-only, as a user would mount theirs; each
 * region is prepared with the image's own `prepare` command.
 *
 * Without an engine or the image this fails, saying what to run: CI runs
 * scripts/docker-engine.sh before the tests.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import mysql from 'mysql2/promise';

import { freePorts } from '../../../src/sandbox/ports.js';
import { connectionOptions, startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { docker, dockerTry, inspect, LOCAL_IMAGE, requireEngineAndImage } from './docker.js';

jest.setTimeout(300_000);

const REGIONS = ['east', 'west'] as const;
type Region = (typeof REGIONS)[number];

/** Where the pipeline file is mounted in every container. */
const CONFIG_IN_CONTAINER = '/etc/cdc-replicator/pipeline.yaml';
/** Containers of this run carry it, so afterAll removes exactly them. */
const RUN_LABEL = `org.cdc-replicator.test-run=${randomBytes(6).toString('hex')}`;

describe(`the image ${LOCAL_IMAGE}`, () => {
  let sandbox: Sandbox | undefined;
  let dir = '';
  let configFile = '';
  const metricsPort = new Map<Region, number>();
  const containers = new Map<Region, string>();
  const db = new Map<Region, mysql.Connection>();
  let started = 0;

  function dbOf(region: Region): mysql.Connection {
    const connection = db.get(region);
    if (connection === undefined) throw new Error(`no connection to ${region}`);
    return connection;
  }

  function containerOf(region: Region): string {
    const name = containers.get(region);
    if (name === undefined) throw new Error(`no container for ${region}`);
    return name;
  }

  function portOf(region: Region): number {
    const port = metricsPort.get(region);
    if (port === undefined) throw new Error(`no metrics port for ${region}`);
    return port;
  }

  /** `docker run` arguments every container of this test shares. */
  function baseArgs(): string[] {
    return [
      '--network',
      'host',
      '--label',
      RUN_LABEL,
      '--volume',
      `${configFile}:${CONFIG_IN_CONTAINER}:ro`,
    ];
  }

  /** Starts a region's daemon container; resolves with its name. */
  async function startDaemon(region: Region): Promise<string> {
    started += 1;
    const name = `cdc-image-test-${region}-${started}-${randomBytes(3).toString('hex')}`;
    await docker([
      'run',
      '--detach',
      '--name',
      name,
      ...baseArgs(),
      '--env',
      `CDC_HEALTHCHECK_URL=http://127.0.0.1:${portOf(region)}/healthz`,
      // The image's HEALTHCHECK command, checked every 2 s instead of 15 s.
      '--health-interval',
      '2s',
      LOCAL_IMAGE,
      'run',
      '--config',
      CONFIG_IN_CONTAINER,
      '--region',
      region,
    ]);
    containers.set(region, name);
    return name;
  }

  async function logsOf(container: string): Promise<string> {
    const result = await dockerTry(['logs', '--tail', '60', container]);
    return `${result.stdout}${result.stderr}`;
  }

  /** Polls `check` until it holds; fails with `describe()`'s text otherwise. */
  async function until(
    what: string,
    check: () => Promise<boolean>,
    describeState: () => Promise<string>,
    timeoutMs = 90_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return;
      await sleep(500);
    }
    throw new Error(`${what} within ${timeoutMs} ms:\n${await describeState()}`);
  }

  async function httpStatus(
    region: Region,
    path: string,
  ): Promise<{ status: number; body: string }> {
    try {
      const response = await fetch(`http://127.0.0.1:${portOf(region)}${path}`, {
        signal: AbortSignal.timeout(5_000),
      });
      return { status: response.status, body: await response.text() };
    } catch (error: unknown) {
      return { status: 0, body: (error as Error).message };
    }
  }

  async function rowsOf(region: Region): Promise<string> {
    const [rows] = await dbOf(region).query('SELECT id, v FROM app.items ORDER BY id');
    return JSON.stringify(rows);
  }

  async function waitForRow(region: Region, id: number, v: string): Promise<void> {
    await until(
      `row ${id}=${v} did not arrive in ${region}`,
      async () => (await rowsOf(region)).includes(`{"id":${id},"v":"${v}"}`),
      async () =>
        `${region} holds ${await rowsOf(region)}\n--- east:\n${await logsOf(containerOf('east'))}\n--- west:\n${await logsOf(containerOf('west'))}`,
    );
  }

  beforeAll(async () => {
    await requireEngineAndImage();
    sandbox = await startSandbox({ regions: [...REGIONS] });
    const ports = await freePorts(REGIONS.length);
    REGIONS.forEach((region, i) => metricsPort.set(region, ports[i] ?? 0));
    for (const region of REGIONS) {
      const endpoint = sandbox.mysql.find((m) => m.region === region);
      if (endpoint === undefined) throw new Error(`the sandbox has no ${region}`);
      const connection = await mysql.createConnection(connectionOptions(endpoint));
      db.set(region, connection);
      await connection.query('CREATE DATABASE app');
      await connection.query('CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(40))');
    }
    const kafka = sandbox.kafka;
    const redis = sandbox.redis;
    if (kafka === undefined || redis === undefined) throw new Error('no Kafka or Redis');
    const regionsYaml = sandbox.mysql
      .map(
        (m) =>
          `  ${m.region}:\n` +
          `    mysql: { host: ${m.host}, port: ${m.port}, user: ${m.user}, password: "${m.password}" }\n` +
          `    metrics: { port: ${portOf(m.region as Region)} }`,
      )
      .join('\n');
    dir = mkdtempSync(join(tmpdir(), 'cdc-image-test-'));
    configFile = join(dir, 'pipeline.yaml');
    writeFileSync(
      configFile,
      [
        `regions:\n${regionsYaml}`,
        `kafka: { brokers: [${kafka.brokers.map((b) => `"${b}"`).join(', ')}], topicPrefix: img }`,
        `redis: { url: "${redis.url}" }`,
        'pipelines:\n  - name: app\n    tables: ["app.items"]',
        'monitor: { heartbeatIntervalMs: 500 }',
        '',
      ].join('\n'),
    );
    // The container's user (1000) reads it through the bind mount.
    chmodSync(configFile, 0o644);
  });

  afterAll(async () => {
    const ids = (
      await dockerTry(['ps', '--all', '--quiet', '--filter', `label=${RUN_LABEL}`])
    ).stdout
      .split('\n')
      .filter((id) => id !== '');
    if (ids.length > 0) await dockerTry(['rm', '--force', ...ids]);
    for (const connection of db.values()) await connection.end().catch(() => undefined);
    await sandbox?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('prepares both regions with its prepare command', async () => {
    for (const region of REGIONS) {
      await docker([
        'run',
        '--rm',
        ...baseArgs(),
        LOCAL_IMAGE,
        'prepare',
        '--config',
        CONFIG_IN_CONTAINER,
        '--region',
        region,
      ]);
      const [triggers] = await dbOf(region).query(
        "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = 'app'",
      );
      expect((triggers as { n: number }[])[0]?.n).toBeGreaterThan(0);
    }
  });

  it('runs both daemons: /healthz and /readyz answer 200 and the HEALTHCHECK reports healthy', async () => {
    for (const region of REGIONS) await startDaemon(region);
    for (const region of REGIONS) {
      const container = containerOf(region);
      await until(
        `${region}'s /readyz did not answer 200`,
        async () => (await httpStatus(region, '/readyz')).status === 200,
        async () =>
          `/readyz: ${JSON.stringify(await httpStatus(region, '/readyz'))}\n${await logsOf(container)}`,
      );
      expect((await httpStatus(region, '/healthz')).status).toBe(200);
      // The image's own HEALTHCHECK command, run by the engine.
      expect(await inspect(container, '{{json .Config.Healthcheck.Test}}')).toContain(
        'CDC_HEALTHCHECK_URL',
      );
      await until(
        `${region}'s container did not become healthy`,
        async () => (await inspect(container, '{{.State.Health.Status}}')) === 'healthy',
        async () =>
          `${await inspect(container, '{{json .State.Health}}')}\n${await logsOf(container)}`,
        60_000,
      );
    }
  });

  it('runs the daemon as a non-root user', async () => {
    for (const region of REGIONS) {
      const container = containerOf(region);
      expect(await inspect(container, '{{.Config.User}}')).toBe('1000:1000');
      expect((await docker(['exec', container, 'id', '-u'])).trim()).toBe('1000');
      // The daemon process itself, as the host's kernel sees it.
      const pid = await inspect(container, '{{.State.Pid}}');
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/) ?? [];
      expect(uids).toHaveLength(4);
      for (const uid of uids) expect(uid).toBe('1000');
    }
  });

  it('replicates between the two regions in both directions', async () => {
    await dbOf('east').query("INSERT INTO app.items VALUES (1, 'from east')");
    await dbOf('west').query("INSERT INTO app.items VALUES (2, 'from west')");
    await waitForRow('west', 1, 'from east');
    await waitForRow('east', 2, 'from west');
    await dbOf('west').query("UPDATE app.items SET v = 'changed in west' WHERE id = 1");
    await waitForRow('east', 1, 'changed in west');
  });

  it('drains on docker stop (SIGTERM), exits 0, and a new container resumes where it stopped', async () => {
    const east = containerOf('east');
    await dbOf('east').query("INSERT INTO app.items VALUES (3, 'before stop')");
    await docker(['stop', '--time', '60', east], 90_000);
    expect(await inspect(east, '{{.State.ExitCode}}')).toBe('0');
    expect(await inspect(east, '{{.State.OOMKilled}}')).toBe('false');
    expect(await logsOf(east)).toContain('"msg":"daemon stopped cleanly"');
    await waitForRow('west', 3, 'before stop');
    // Written while east's daemon is down: the position it saved on the way out
    // is where its successor starts, so the row still arrives.
    await dbOf('east').query("INSERT INTO app.items VALUES (4, 'while stopped')");
    await startDaemon('east');
    await waitForRow('west', 4, 'while stopped');
    for (const region of REGIONS) {
      const container = containerOf(region);
      await docker(['stop', '--time', '60', container], 90_000);
      expect({ region, exit: await inspect(container, '{{.State.ExitCode}}') }).toEqual({
        region,
        exit: '0',
      });
    }
  });
});
