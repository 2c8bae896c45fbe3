/**
 * Static checks of the compose stack (deploy/compose): the pipeline file
 * passes the daemon's own loader with the environment each service really
 * gets, one prepare and one daemon per region in the right order, the
 * MySQL servers are configured for capture, every image is pinned, and the
 * hosts and ports of the pipeline, the compose services and Prometheus's
 * scrape targets agree.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';

import { compileAllRegions, type RuntimeOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import {
  asList,
  asMap,
  asString,
  composeDefaults,
  imageTag,
  isMap,
  isPinnedImage,
  pipelineVariables,
  readJsonMap,
  readText,
  readYamlMap,
  repoPath,
  type Json,
} from './files.js';

const COMPOSE_DIR = repoPath('deploy/compose');
const COMPOSE_FILE = join(COMPOSE_DIR, 'docker-compose.yml');
const PIPELINE_FILE = join(COMPOSE_DIR, 'pipeline.yml');

const compose = readYamlMap(COMPOSE_FILE);
const services = asMap(compose.services, 'services');
const pipelineText = readText(PIPELINE_FILE);
const packageVersion = asString(
  readJsonMap(repoPath('package.json')).version,
  'package.json version',
);

interface CdcService {
  readonly service: string;
  readonly command: string[];
  readonly region: string;
  /** The environment compose passes, defaults applied as on a machine without .env. */
  readonly env: Record<string, string>;
  readonly spec: Json;
}

function cdcServices(subcommand: 'run' | 'prepare'): CdcService[] {
  return Object.entries(services).flatMap(([service, value]) => {
    const spec = asMap(value, service);
    if (!Array.isArray(spec.command) || spec.command[0] !== subcommand) return [];
    const command = spec.command.map((part, i) => asString(part, `${service} command[${i}]`));
    const regionAt = command.indexOf('--region');
    const env: Record<string, string> = {};
    for (const [name, raw] of Object.entries(
      asMap(spec.environment ?? {}, `${service} environment`),
    )) {
      env[name] = composeDefaults(String(raw), `${service} environment ${name}`);
    }
    return [{ service, command, region: command[regionAt + 1] ?? '', env, spec }];
  });
}

const daemons = cdcServices('run');
const prepares = cdcServices('prepare');

/** The host path a compose bind mount's source resolves to, and its target. */
function bindMounts(spec: Json, service: string): { source: string; target: string }[] {
  return asList(spec.volumes ?? [], `${service} volumes`).map((v) => {
    const [source = '', target = ''] = asString(v, `${service} volumes`).split(':');
    return { source: resolve(COMPOSE_DIR, source), target };
  });
}

/** host:port → the compose service with that name, and the port. */
function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

function containerPorts(spec: Json, service: string): number[] {
  return asList(spec.ports ?? [], `${service} ports`).map((p) =>
    Number(asString(p, `${service} ports`).split(':').at(-1)),
  );
}

/** A service's image as compose resolves it without CDC_COMPOSE_IMAGE_* set: the upstream default. */
function serviceImage(spec: Json, service: string): string {
  return composeDefaults(asString(spec.image, `${service} image`), `${service} image`);
}

describe('compose stack', () => {
  it('has one prepare and one daemon per region of the pipeline', () => {
    const config = parseConfig(pipelineText, { env: daemons[0]?.env ?? {} });
    const regions = Object.keys(config.regions).sort();
    expect(regions.length).toBeGreaterThanOrEqual(2);
    expect(daemons.map((d) => d.region).sort()).toEqual(regions);
    expect(prepares.map((p) => p.region).sort()).toEqual(regions);
  });

  it('gives every cdc-replicator service the variables pipeline.yml references, and the file then validates', () => {
    const { required } = pipelineVariables(pipelineText);
    expect(required.length).toBeGreaterThan(0);
    for (const service of [...daemons, ...prepares]) {
      expect({
        service: service.service,
        missing: required.filter((name) => !(name in service.env)),
      }).toEqual({
        service: service.service,
        missing: [],
      });
      // The daemon's own loader and compiler: what `run` does before anything else.
      const config = parseConfig(pipelineText, { env: service.env });
      expect(compileAllRegions(config).map((o) => o.region)).toContain(service.region);
    }
  });

  it('mounts pipeline.yml where --config points', () => {
    for (const service of [...daemons, ...prepares]) {
      const configPath = service.command[service.command.indexOf('--config') + 1];
      const mount = bindMounts(service.spec, service.service).find((m) => m.target === configPath);
      expect({ service: service.service, source: mount?.source }).toEqual({
        service: service.service,
        source: PIPELINE_FILE,
      });
    }
  });

  it('starts each daemon after its region prepare has succeeded, and prepare after its MySQL is healthy', () => {
    const config = parseConfig(pipelineText, { env: daemons[0]?.env ?? {} });
    for (const daemon of daemons) {
      const prepare = prepares.find((p) => p.region === daemon.region);
      const dependsOn = asMap(daemon.spec.depends_on, `${daemon.service} depends_on`);
      expect(dependsOn[prepare?.service ?? '']).toEqual({
        condition: 'service_completed_successfully',
      });
      const mysqlHost = config.regions[daemon.region]?.mysql.host ?? '';
      const prepareDeps = asMap(prepare?.spec.depends_on, `${prepare?.service} depends_on`);
      expect(prepareDeps[mysqlHost]).toEqual({ condition: 'service_healthy' });
    }
  });

  it("points each region's MySQL at a compose MySQL service configured for capture", () => {
    const config = parseConfig(pipelineText, { env: daemons[0]?.env ?? {} });
    const serverIds = new Set<string>();
    for (const [region, regionConfig] of Object.entries(config.regions)) {
      const service = asMap(
        services[regionConfig.mysql.host],
        `service ${regionConfig.mysql.host} (mysql of ${region})`,
      );
      expect(serviceImage(service, regionConfig.mysql.host)).toMatch(/^mysql:8\.4\.\d+$/);
      // The official image listens on 3306 unless told otherwise.
      const flags = asList(service.command, `${regionConfig.mysql.host} command`).map(String);
      expect(flags.some((f) => f.startsWith('--port'))).toBe(false);
      expect(regionConfig.mysql.port).toBe(3306);
      for (const flag of [
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--binlog-row-metadata=FULL',
        '--gtid-mode=ON',
        '--enforce-gtid-consistency=ON',
      ]) {
        expect({ region, flag, present: flags.includes(flag) }).toEqual({
          region,
          flag,
          present: true,
        });
      }
      const serverId = flags.find((f) => f.startsWith('--server-id='));
      expect(serverId).toBeDefined();
      serverIds.add(serverId ?? '');
      // The user the pipeline connects as is the one the image creates.
      expect(asMap(service.environment, 'environment').MYSQL_USER).toBe(regionConfig.mysql.user);
    }
    expect(serverIds.size).toBe(Object.keys(config.regions).length);
  });

  it('points Kafka and Redis at the compose services', () => {
    const options = compileAllRegions(parseConfig(pipelineText, { env: daemons[0]?.env ?? {} }));
    for (const o of options) {
      for (const broker of o.kafka.brokers) {
        const { host, port } = splitHostPort(broker);
        const kafka = asMap(services[host], `service ${host}`);
        const env = asMap(kafka.environment, `${host} environment`);
        expect(String(env.KAFKA_ADVERTISED_LISTENERS).split(',')).toContain(
          `PLAINTEXT://${host}:${port}`,
        );
        // A delete replayed after its tombstone was purged could let an older update win.
        expect(Number(env.KAFKA_LOG_RETENTION_HOURS) * 3_600_000).toBeGreaterThan(
          o.apply.tombstoneHorizonMs,
        );
      }
      expect(o.checkpointStore.kind).toBe('redis');
      if (o.checkpointStore.kind !== 'redis') continue;
      const url = new URL(o.checkpointStore.url.reveal());
      expect(
        serviceImage(asMap(services[url.hostname], `service ${url.hostname}`), url.hostname),
      ).toMatch(/^redis:/);
      expect(url.port).toBe('6379');
    }
  });

  it("exposes each daemon's metrics port, and Prometheus scrapes exactly those", () => {
    const options = new Map<string, RuntimeOptions>(
      compileAllRegions(parseConfig(pipelineText, { env: daemons[0]?.env ?? {} })).map((o) => [
        o.region,
        o,
      ]),
    );
    const prometheus = readYamlMap(repoPath('deploy/prometheus/prometheus.yml'));
    const job = asList(prometheus.scrape_configs, 'scrape_configs')
      .map((c) => asMap(c, 'scrape_config'))
      .find((c) => c.job_name === 'cdc-replicator');
    const targets = asList(job?.static_configs, 'static_configs').flatMap((s) =>
      asList(asMap(s, 'static_config').targets, 'targets').map(String),
    );
    const expected: string[] = [];
    for (const daemon of daemons) {
      const metrics = options.get(daemon.region)?.metrics;
      expect(metrics?.host).toBe('0.0.0.0');
      expect(containerPorts(daemon.spec, daemon.service)).toContain(metrics?.port);
      expected.push(`${daemon.service}:${metrics?.port}`);
      // `status` reaches every region's daemon at its metrics url, from inside the stack.
      expect(metrics?.url).toBe(`http://${daemon.service}:${metrics?.port}`);
    }
    expect(targets.sort()).toEqual(expected.sort());
  });

  it('mounts files that exist, at the paths Prometheus and Grafana read', () => {
    for (const [name, value] of Object.entries(services)) {
      for (const mount of bindMounts(asMap(value, name), name)) {
        if (mount.source.startsWith(COMPOSE_DIR) || mount.source.startsWith(dirname(COMPOSE_DIR))) {
          expect({ name, source: mount.source, exists: existsSync(mount.source) }).toEqual({
            name,
            source: mount.source,
            exists: true,
          });
        }
      }
    }
    const prometheus = readYamlMap(repoPath('deploy/prometheus/prometheus.yml'));
    const promMounts = bindMounts(asMap(services.prometheus, 'prometheus'), 'prometheus');
    for (const ruleFile of asList(prometheus.rule_files, 'rule_files').map(String)) {
      expect(promMounts.find((m) => m.target === ruleFile)?.source).toBe(
        repoPath('deploy/prometheus/alert-rules.yml'),
      );
    }
    const provider = asList(
      readYamlMap(join(COMPOSE_DIR, 'grafana/provisioning/dashboards/cdc-replicator.yml'))
        .providers,
      'providers',
    ).map((p) => asMap(p, 'provider'))[0];
    const dashboardDir = asString(asMap(provider?.options, 'options').path, 'path');
    const grafanaMounts = bindMounts(asMap(services.grafana, 'grafana'), 'grafana');
    expect(grafanaMounts.find((m) => posix.dirname(m.target) === dashboardDir)?.source).toBe(
      repoPath('deploy/grafana/cdc-replicator-dashboard.json'),
    );
  });

  it('lets CDC_COMPOSE_IMAGE_<X> replace every image', () => {
    for (const [name, value] of Object.entries(services)) {
      const image = asString(asMap(value, name).image, `${name} image`);
      expect({ name, image }).toEqual({
        name,
        image: expect.stringMatching(/^\$\{CDC_COMPOSE_IMAGE_[A-Z]+:-[^}]+\}$/),
      });
    }
  });

  it('pins every image to an exact version, the replicator to this release', () => {
    const images = Object.entries(services).map(([name, value]) => ({
      name,
      image: serviceImage(asMap(value, name), name),
    }));
    expect(images.filter(({ image }) => !isPinnedImage(image))).toEqual([]);
    for (const service of [...daemons, ...prepares]) {
      const image = serviceImage(service.spec, service.service);
      expect(image).toBe(`cdc-replicator:${packageVersion}`);
      expect(imageTag(image)).toBe(packageVersion);
      expect(isMap(service.spec.build)).toBe(true);
    }
  });
});

describe('isPinnedImage', () => {
  it('accepts exact versions and digests, refuses floating tags', () => {
    for (const image of [
      'mysql:8.4.6',
      'prom/prometheus:v3.5.0',
      'node:20.20.2-bookworm-slim',
      `x@sha256:${'a'.repeat(64)}`,
    ]) {
      expect({ image, pinned: isPinnedImage(image) }).toEqual({ image, pinned: true });
    }
    for (const image of [
      'mysql',
      'mysql:latest',
      'mysql:8',
      'mysql:8.4',
      'node:20-bookworm-slim',
      'localhost:5000/x',
    ]) {
      expect({ image, pinned: isPinnedImage(image) }).toEqual({ image, pinned: false });
    }
  });
});
