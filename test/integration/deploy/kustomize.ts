/**
 * A small renderer for the kustomize features deploy/kubernetes uses, so the
 * tests can validate what `kubectl apply -k overlays/<region>` would send
 * without a kustomize binary: resources (files and nested kustomizations),
 * configMapGenerator (files), strategic-merge patches by file, namespace,
 * nameSuffix, labels and images, in kustomize's order (generate, patch,
 * then transform). Any other kustomization field, or a patch style it does not
 * implement, is an error: a feature the renderer ignored would go unchecked.
 *
 * Deliberate difference: generated ConfigMap names get a suffix from a
 * SHA-256 of their data, not kustomize's exact hash encoding. References to
 * them are rewritten the same way kustomize does for the fields used here.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

import {
  ROOT,
  asList,
  asMap,
  asString,
  isMap,
  parseYamlFile,
  readText,
  type Json,
} from './files.js';

/** One rendered Kubernetes object. */
export interface K8sObject extends Json {
  apiVersion: string;
  kind: string;
  metadata: Json & { name: string };
}

const SUPPORTED_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'configMapGenerator',
  'patches',
  'namespace',
  'nameSuffix',
  'labels',
  'images',
]);

/** Kinds the renderer knows to be cluster-scoped (no namespace is set on them). */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

/** Strategic-merge keys of the lists this renderer merges element-wise; other lists are replaced. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
};

/** Renders the kustomization in `dir` (a directory holding kustomization.yaml). */
export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  const where = relative(ROOT, file);
  const k = asMap(parseYamlFile(file)[0], where);
  const unsupported = Object.keys(k).filter((key) => !SUPPORTED_FIELDS.has(key));
  if (unsupported.length > 0) {
    throw new Error(`${where}: the test renderer does not implement ${unsupported.join(', ')}`);
  }
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') {
    throw new Error(
      `${where}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization`,
    );
  }

  // 1. Resources: files, or directories holding a kustomization.
  const objects: K8sObject[] = [];
  for (const entry of asList(k.resources ?? [], `${where} resources`)) {
    const path = join(dir, asString(entry, `${where} resources`));
    if (!existsSync(path)) throw new Error(`${where}: resource ${String(entry)} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...renderKustomization(path));
    else objects.push(...parseYamlFile(path).map((doc) => asObject(doc, relative(ROOT, path))));
  }

  // 2. Generators. Hash suffixes are applied last, after every rename.
  const generated = new Set<K8sObject>();
  for (const [i, entry] of asList(
    k.configMapGenerator ?? [],
    `${where} configMapGenerator`,
  ).entries()) {
    const spec = asMap(entry, `${where} configMapGenerator[${i}]`);
    const extra = Object.keys(spec).filter((key) => key !== 'name' && key !== 'files');
    if (extra.length > 0) {
      throw new Error(
        `${where}: configMapGenerator ${extra.join(', ')} is not implemented by the test renderer`,
      );
    }
    const data: Record<string, string> = {};
    for (const fileEntry of asList(spec.files, `${where} configMapGenerator[${i}].files`)) {
      const name = asString(fileEntry, `${where} configMapGenerator[${i}].files`);
      if (name.includes('='))
        throw new Error(`${where}: key=path file entries are not implemented`);
      data[basename(name)] = readText(join(dir, name));
    }
    const configMap: K8sObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: asString(spec.name, `${where} configMapGenerator[${i}].name`) },
      data,
    };
    generated.add(configMap);
    objects.push(configMap);
  }

  // 3. Patches (strategic merge, from files), matched by kind and name.
  for (const [i, entry] of asList(k.patches ?? [], `${where} patches`).entries()) {
    const spec = asMap(entry, `${where} patches[${i}]`);
    if (Object.keys(spec).some((key) => key !== 'path')) {
      throw new Error(
        `${where}: patches[${i}]: only { path } strategic-merge patches are implemented`,
      );
    }
    const patchFile = join(dir, asString(spec.path, `${where} patches[${i}].path`));
    for (const doc of parseYamlFile(patchFile)) {
      const patch = asObject(doc, relative(ROOT, patchFile));
      const target = objects.find(
        (o) =>
          o.kind === patch.kind &&
          o.apiVersion === patch.apiVersion &&
          o.metadata.name === patch.metadata.name,
      );
      if (target === undefined) {
        throw new Error(
          `${relative(ROOT, patchFile)}: no ${patch.kind} named ${patch.metadata.name} among the resources`,
        );
      }
      if (generated.has(target))
        throw new Error(`${where}: patching generated objects is not implemented`);
      objects[objects.indexOf(target)] = strategicMerge(
        target,
        patch,
        relative(ROOT, patchFile),
      ) as K8sObject;
    }
  }

  // 4. Transformers.
  const renames = new Map<string, string>();
  const namespace =
    k.namespace === undefined ? undefined : asString(k.namespace, `${where} namespace`);
  const suffix = k.nameSuffix === undefined ? '' : asString(k.nameSuffix, `${where} nameSuffix`);
  for (const object of objects) {
    if (namespace !== undefined && !CLUSTER_SCOPED.has(object.kind))
      object.metadata.namespace = namespace;
    if (suffix !== '') {
      const renamed = object.metadata.name + suffix;
      renames.set(`${object.kind}/${object.metadata.name}`, renamed);
      object.metadata.name = renamed;
    }
  }
  for (const [i, entry] of asList(k.labels ?? [], `${where} labels`).entries()) {
    applyLabels(objects, asMap(entry, `${where} labels[${i}]`), `${where} labels[${i}]`);
  }
  for (const [i, entry] of asList(k.images ?? [], `${where} images`).entries()) {
    applyImage(objects, asMap(entry, `${where} images[${i}]`), `${where} images[${i}]`);
  }
  for (const configMap of generated) {
    const hash = createHash('sha256')
      .update(JSON.stringify(configMap.data))
      .digest('hex')
      .slice(0, 10);
    const before = configMap.metadata.name;
    configMap.metadata.name = `${before}-${hash}`;
    renames.set(`ConfigMap/${before}`, configMap.metadata.name);
  }
  rewriteConfigMapReferences(objects, renames);
  return objects;
}

function asObject(doc: unknown, where: string): K8sObject {
  const map = asMap(doc, where);
  const metadata = asMap(map.metadata, `${where} metadata`);
  return {
    ...map,
    apiVersion: asString(map.apiVersion, `${where} apiVersion`),
    kind: asString(map.kind, `${where} kind`),
    metadata: { ...metadata, name: asString(metadata.name, `${where} metadata.name`) },
  };
}

/** Strategic merge of `patch` into `base`, returning a new value. */
export function strategicMerge(base: unknown, patch: unknown, where: string, key = ''): unknown {
  if (isMap(patch) && Object.keys(patch).some((k) => k.startsWith('$'))) {
    throw new Error(`${where}: strategic-merge directives ($patch, ...) are not implemented`);
  }
  if (isMap(base) && isMap(patch)) {
    const merged: Json = { ...base };
    for (const [k, value] of Object.entries(patch)) {
      if (value === null) delete merged[k];
      else merged[k] = k in base ? strategicMerge(base[k], value, where, k) : value;
    }
    return merged;
  }
  const mergeKey = MERGE_KEYS[key];
  if (Array.isArray(base) && Array.isArray(patch) && mergeKey !== undefined) {
    const merged: unknown[] = [...(base as unknown[])];
    for (const item of patch) {
      const itemMap = asMap(item, `${where} ${key}[]`);
      const index = merged.findIndex((m) => isMap(m) && m[mergeKey] === itemMap[mergeKey]);
      if (index === -1) merged.push(item);
      else merged[index] = strategicMerge(merged[index], item, where, '');
    }
    return merged;
  }
  return patch;
}

/** Pod templates of the workload kinds present here. */
function podSpecs(objects: K8sObject[]): Json[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind))
    .map((o) =>
      asMap(asMap(asMap(o.spec, `${o.kind} spec`).template, 'template').spec, 'template spec'),
    );
}

function applyLabels(objects: K8sObject[], spec: Json, where: string): void {
  const extra = Object.keys(spec).filter(
    (k) => !['pairs', 'includeSelectors', 'includeTemplates'].includes(k),
  );
  if (extra.length > 0) throw new Error(`${where}: ${extra.join(', ')} is not implemented`);
  const pairs = asMap(spec.pairs, `${where} pairs`);
  const add = (map: Json, field: string): void => {
    map[field] = { ...(isMap(map[field]) ? map[field] : {}), ...pairs };
  };
  const selectors = spec.includeSelectors === true;
  const templates = selectors || spec.includeTemplates === true;
  for (const object of objects) {
    add(object.metadata, 'labels');
    const objectSpec = isMap(object.spec) ? object.spec : undefined;
    if (objectSpec === undefined) continue;
    if (templates && isMap(objectSpec.template)) {
      const template = objectSpec.template;
      template.metadata = isMap(template.metadata) ? template.metadata : {};
      add(template.metadata as Json, 'labels');
    }
    if (!selectors) continue;
    // The selector fields kustomize knows; custom resources' selectors are left alone, as kustomize does.
    if (object.kind === 'Service') add(objectSpec, 'selector');
    else if (
      ['Deployment', 'StatefulSet', 'DaemonSet', 'PodDisruptionBudget'].includes(object.kind)
    ) {
      add(asMap(objectSpec.selector, `${object.kind} selector`), 'matchLabels');
    }
  }
}

function applyImage(objects: K8sObject[], spec: Json, where: string): void {
  const extra = Object.keys(spec).filter(
    (k) => !['name', 'newName', 'newTag', 'digest'].includes(k),
  );
  if (extra.length > 0) throw new Error(`${where}: ${extra.join(', ')} is not implemented`);
  const name = asString(spec.name, `${where} name`);
  let matched = 0;
  for (const podSpec of podSpecs(objects)) {
    for (const field of ['containers', 'initContainers']) {
      for (const container of asList(podSpec[field] ?? [], field)) {
        const c = asMap(container, field);
        const image = asString(c.image, `${field} image`);
        const [imageName, tag] = splitImage(image);
        if (imageName !== name) continue;
        matched += 1;
        const newName =
          spec.newName === undefined ? imageName : asString(spec.newName, `${where} newName`);
        c.image =
          spec.digest !== undefined
            ? `${newName}@${asString(spec.digest, `${where} digest`)}`
            : spec.newTag !== undefined
              ? `${newName}:${asString(spec.newTag, `${where} newTag`)}`
              : `${newName}${tag === undefined ? '' : `:${tag}`}`;
      }
    }
  }
  if (matched === 0) throw new Error(`${where}: image ${name} is used by no container`);
}

function splitImage(image: string): [string, string | undefined] {
  const at = image.indexOf('@');
  if (at !== -1) return [image.slice(0, at), undefined];
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  return colon === -1 ? [image, undefined] : [image.slice(0, colon), image.slice(colon + 1)];
}

/** ConfigMap references kustomize rewrites after renames and hash suffixes. */
function rewriteConfigMapReferences(objects: K8sObject[], renames: Map<string, string>): void {
  const rename = (ref: unknown): void => {
    if (!isMap(ref) || typeof ref.name !== 'string') return;
    // Follow the chain: suffix first, then the generator's hash.
    let name = ref.name;
    for (
      let next = renames.get(`ConfigMap/${name}`);
      next !== undefined;
      next = renames.get(`ConfigMap/${name}`)
    ) {
      name = next;
    }
    ref.name = name;
  };
  for (const podSpec of podSpecs(objects)) {
    for (const volume of asList(podSpec.volumes ?? [], 'volumes'))
      rename(asMap(volume, 'volume').configMap);
    for (const field of ['containers', 'initContainers']) {
      for (const container of asList(podSpec[field] ?? [], field)) {
        const c = asMap(container, field);
        for (const env of asList(c.env ?? [], 'env')) {
          const valueFrom = asMap(env, 'env').valueFrom;
          if (isMap(valueFrom)) rename(valueFrom.configMapKeyRef);
        }
        for (const from of asList(c.envFrom ?? [], 'envFrom'))
          rename(asMap(from, 'envFrom').configMapRef);
      }
    }
  }
}
