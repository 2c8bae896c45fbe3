/**
 * Static checks of deploy/kubernetes: the base and each region's overlay are
 * rendered as kustomize would (./kustomize.ts) and every object is validated
 * against the Kubernetes (and Prometheus Operator) schemas of kubernetes-models;
 * the generated ConfigMap's pipeline passes the daemon's own loader with the
 * environment the pod really gets; probes, ports, selectors, security
 * settings and the image pin are what the daemon and the docs need.
 */
import { describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';

import { compileAllRegions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import {
  asList,
  asMap,
  asString,
  imageTag,
  isMap,
  isPinnedImage,
  pipelineVariables,
  readJsonMap,
  repoPath,
  type Json,
} from './files.js';
import { renderKustomization, strategicMerge, type K8sObject } from './kustomize.js';

const KUBERNETES_DIR = repoPath('deploy/kubernetes');
const OVERLAYS = readdirSync(join(KUBERNETES_DIR, 'overlays')).sort();
const packageVersion = asString(readJsonMap(repoPath('package.json')).version, 'version');

/** Schema validation per kind; a kind without one fails the test rather than going unchecked. */
const VALIDATORS: Record<string, (object: K8sObject) => void> = {
  'apps/v1/Deployment': (o) => new Deployment(o).validate(),
  'v1/Service': (o) => new Service(o).validate(),
  'v1/ConfigMap': (o) => new ConfigMap(o).validate(),
  'policy/v1/PodDisruptionBudget': (o) => new PodDisruptionBudget(o).validate(),
  'monitoring.coreos.com/v1/PodMonitor': (o) => new PodMonitor(o as never).validate(),
};

function schemaProblems(objects: K8sObject[]): string[] {
  return objects.flatMap((object) => {
    const key = `${object.apiVersion}/${object.kind}`;
    const validate = VALIDATORS[key];
    if (validate === undefined) return [`${key} ${object.metadata.name}: no schema validator`];
    try {
      validate(object);
      return [];
    } catch (error: unknown) {
      return [
        `${key} ${object.metadata.name}: ${error instanceof Error ? error.message : String(error)}`,
      ];
    }
  });
}

function only(objects: K8sObject[], kind: string): K8sObject {
  const matching = objects.filter((o) => o.kind === kind);
  if (matching.length !== 1) throw new Error(`expected one ${kind}, found ${matching.length}`);
  return matching[0] as K8sObject;
}

interface Pod {
  readonly deployment: K8sObject;
  readonly labels: Json;
  readonly spec: Json;
  readonly container: Json;
  readonly env: Json[];
}

function pod(objects: K8sObject[]): Pod {
  const deployment = only(objects, 'Deployment');
  const template = asMap(asMap(deployment.spec, 'spec').template, 'template');
  const spec = asMap(template.spec, 'template spec');
  const containers = asList(spec.containers, 'containers').map((c) => asMap(c, 'container'));
  expect(containers).toHaveLength(1);
  const container = containers[0] as Json;
  return {
    deployment,
    labels: asMap(asMap(template.metadata, 'template metadata').labels, 'template labels'),
    spec,
    container,
    env: asList(container.env ?? [], 'env').map((e) => asMap(e, 'env')),
  };
}

/** True when every label of `selector` is on the pod. */
function selects(selector: unknown, labels: Json): boolean {
  return isMap(selector) && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

describe('kubernetes manifests', () => {
  it('has an overlay per region', () => {
    expect(OVERLAYS).toEqual(['eu-west', 'us-east']);
  });

  it('renders the base into schema-valid objects', () => {
    const objects = renderKustomization(join(KUBERNETES_DIR, 'base'));
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'PodDisruptionBudget',
      'PodMonitor',
      'Service',
    ]);
    expect(schemaProblems(objects)).toEqual([]);
  });

  describe.each(OVERLAYS)('overlay %s', (region) => {
    const objects = renderKustomization(join(KUBERNETES_DIR, 'overlays', region));
    const { deployment, labels, spec, container, env } = pod(objects);
    const args = asList(container.args, 'args').map(String);
    const configPath = args[args.indexOf('--config') + 1] ?? '';

    it('renders into schema-valid objects, all in the region namespace and named for it', () => {
      expect(schemaProblems(objects)).toEqual([]);
      for (const object of objects) {
        expect(object.metadata.namespace).toBe(`cdc-${region}`);
        expect(object.metadata.name).toContain(region);
      }
    });

    it('runs two daemons of this region with `run`', () => {
      expect(asMap(deployment.spec, 'spec').replicas).toBe(2);
      expect(args[0]).toBe('run');
      expect(env.find((e) => e.name === 'CDC_REGION')).toEqual({
        name: 'CDC_REGION',
        value: region,
      });
    });

    it("mounts the generated pipeline, which the daemon's loader accepts with the pod's environment", () => {
      const mount = asList(container.volumeMounts, 'volumeMounts')
        .map((m) => asMap(m, 'volumeMount'))
        .find((m) => m.mountPath === dirname(configPath));
      expect(mount?.readOnly).toBe(true);
      const volume = asList(spec.volumes, 'volumes')
        .map((v) => asMap(v, 'volume'))
        .find((v) => v.name === mount?.name);
      const configMapName = asString(asMap(volume?.configMap, 'configMap').name, 'configMap name');
      const configMap = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === configMapName,
      );
      expect(configMap).toBeDefined();
      const text = asString(
        asMap(configMap?.data, 'data')[basename(configPath)],
        basename(configPath),
      );

      const podEnv: Record<string, string> = {};
      for (const e of env) {
        // Values from Secrets are unknown here; any text shows the reference is satisfied.
        podEnv[asString(e.name, 'env name')] =
          e.value === undefined ? 'from-secret' : asString(e.value, 'env value');
      }
      const { required } = pipelineVariables(text);
      expect(required.filter((name) => !(name in podEnv))).toEqual([]);
      const options = compileAllRegions(parseConfig(text, { env: podEnv }));
      expect(options.map((o) => o.region)).toContain(region);

      const own = options.find((o) => o.region === region);
      const metricsPort = asList(container.ports, 'ports')
        .map((p) => asMap(p, 'port'))
        .find((p) => p.name === 'metrics');
      expect(metricsPort?.containerPort).toBe(own?.metrics.port);
      expect(own?.metrics.host).toBe('0.0.0.0');
    });

    it('takes every password from a Secret, never from a literal', () => {
      const secretVars = env.filter((e) => /PASSWORD|SECRET|TOKEN/.test(String(e.name)));
      expect(secretVars.length).toBeGreaterThan(0);
      for (const e of secretVars) {
        expect(e.value).toBeUndefined();
        const ref = asMap(
          asMap(e.valueFrom, `${String(e.name)} valueFrom`).secretKeyRef,
          'secretKeyRef',
        );
        expect(typeof ref.name).toBe('string');
        expect(typeof ref.key).toBe('string');
      }
    });

    it('probes /healthz for liveness and /readyz for readiness on the metrics port', () => {
      expect(asMap(container.livenessProbe, 'livenessProbe').httpGet).toMatchObject({
        path: '/healthz',
        port: 'metrics',
      });
      expect(asMap(container.readinessProbe, 'readinessProbe').httpGet).toMatchObject({
        path: '/readyz',
        port: 'metrics',
      });
    });

    it('runs as non-root on a read-only root filesystem, with requests and limits', () => {
      const podSecurity = asMap(spec.securityContext, 'pod securityContext');
      expect(podSecurity.runAsNonRoot).toBe(true);
      expect(podSecurity.runAsUser).not.toBe(0);
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      const resources = asMap(container.resources, 'resources');
      for (const kind of ['requests', 'limits']) {
        expect(Object.keys(asMap(resources[kind], kind)).sort()).toEqual(['cpu', 'memory']);
      }
      // `run` drains for up to 30 s (--drain-timeout) after SIGTERM.
      expect(Number(spec.terminationGracePeriodSeconds)).toBeGreaterThan(30);
    });

    it('pins the image to this release', () => {
      const image = asString(container.image, 'image');
      expect(isPinnedImage(image)).toBe(true);
      expect(imageTag(image)).toBe(packageVersion);
    });

    it("selects this deployment's pods from the Service, the PodDisruptionBudget and the PodMonitor", () => {
      const service = only(objects, 'Service');
      expect(selects(asMap(service.spec, 'spec').selector, labels)).toBe(true);
      const pdb = only(objects, 'PodDisruptionBudget');
      expect(selects(asMap(asMap(pdb.spec, 'spec').selector, 'selector').matchLabels, labels)).toBe(
        true,
      );
      const monitor = only(objects, 'PodMonitor');
      const monitorSpec = asMap(monitor.spec, 'spec');
      expect(selects(asMap(monitorSpec.selector, 'selector').matchLabels, labels)).toBe(true);
      expect(
        selects(asMap(asMap(deployment.spec, 'spec').selector, 'selector').matchLabels, labels),
      ).toBe(true);

      // The PodMonitor scrapes the named metrics port, under the job name the alert rules select.
      const endpoint = asMap(
        asList(monitorSpec.podMetricsEndpoints, 'podMetricsEndpoints')[0],
        'endpoint',
      );
      expect(endpoint.port).toBe('metrics');
      expect(endpoint.path).toBe('/metrics');
      expect(asList(endpoint.relabelings, 'relabelings')).toContainEqual({
        action: 'replace',
        targetLabel: 'job',
        replacement: 'cdc-replicator',
      });
    });
  });
});

describe('the test kustomize renderer', () => {
  it('merges containers and env by name and replaces other lists', () => {
    const base = {
      spec: {
        args: ['a'],
        containers: [
          {
            name: 'c',
            env: [
              { name: 'A', value: '1' },
              { name: 'B', value: '2' },
            ],
          },
        ],
      },
    };
    const patch = {
      spec: {
        args: ['b'],
        containers: [
          {
            name: 'c',
            env: [
              { name: 'B', value: '3' },
              { name: 'C', value: '4' },
            ],
          },
        ],
      },
    };
    expect(strategicMerge(base, patch, 'test')).toEqual({
      spec: {
        args: ['b'],
        containers: [
          {
            name: 'c',
            env: [
              { name: 'A', value: '1' },
              { name: 'B', value: '3' },
              { name: 'C', value: '4' },
            ],
          },
        ],
      },
    });
  });

  it('refuses strategic-merge directives it does not implement', () => {
    expect(() => strategicMerge({ a: [] }, { a: [], $patch: 'replace' }, 'test')).toThrow(
      /not implemented/,
    );
  });

  it('makes a schema error visible', () => {
    const deployment = only(renderKustomization(join(KUBERNETES_DIR, 'base')), 'Deployment');
    const broken = { ...deployment, spec: { ...asMap(deployment.spec, 'spec'), replicas: 'two' } };
    expect(schemaProblems([broken])).toEqual([expect.stringContaining('replicas')]);
  });
});
