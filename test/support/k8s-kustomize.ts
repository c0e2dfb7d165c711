import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** One Kubernetes object as plain JSON. */
export type K8sObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } & Record<string, unknown> };

/**
 * The kustomization fields this renderer implements; anything else in a kustomization.yaml is an
 * error, so k8s/ cannot start using a feature whose output nobody checks.
 */
const supportedFields = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);

/** Kinds without a namespace (the ones vecmill could plausibly ship). */
const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass']);

/** API groups whose types carry strategic-merge metadata; custom resources merge lists atomically. */
const builtinGroups = new Set(['', 'apps', 'batch', 'policy', 'autoscaling', 'networking.k8s.io', 'rbac.authorization.k8s.io']);

/**
 * Patch merge keys of the built-in types' lists (`patchMergeKey` in the Kubernetes API), by field
 * name. Lists not named here are replaced whole, as kustomize does for them.
 */
const mergeKeys: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  topologySpreadConstraints: 'topologyKey',
};

/** Reads every YAML document of a file as objects (empty documents dropped). */
export function readYamlObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return [];
    if (!isObject(value) || typeof value['kind'] !== 'string' || typeof value['apiVersion'] !== 'string' || !isObject(value['metadata'])) {
      throw new Error(`${file}: a document is not a Kubernetes object (apiVersion, kind, metadata)`);
    }
    return [value as K8sObject];
  });
}

/**
 * Builds a kustomization directory the way `kustomize build` does for the supported fields:
 * resources (files and nested kustomizations, in order), then patches, images and namespace.
 * Patches are strategic merge (an object) or JSON 6902 (a list of operations, needs a target).
 */
export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  const k = readYamlPlain(file);
  if (!isObject(k)) throw new Error(`${file}: not a mapping`);
  for (const field of Object.keys(k)) if (!supportedFields.has(field)) throw new Error(`${file}: kustomization field ${field} is not supported by this renderer`);

  let objects: K8sObject[] = [];
  for (const entry of asArray(k['resources'], 'resources', file)) {
    if (typeof entry !== 'string') throw new Error(`${file}: resources entries must be paths`);
    const path = resolve(dir, entry);
    objects = objects.concat(existsSync(path) && statSync(path).isDirectory() ? renderKustomization(path) : readYamlObjects(path));
  }
  const ids = new Set<string>();
  for (const o of objects) {
    const id = objectId(o);
    if (ids.has(id)) throw new Error(`${file}: ${id} is defined twice`);
    ids.add(id);
  }

  for (const p of asArray(k['patches'], 'patches', file)) {
    if (!isObject(p)) throw new Error(`${file}: a patch must be a mapping`);
    const text = typeof p['path'] === 'string' ? readFileSync(resolve(dir, p['path']), 'utf8') : typeof p['patch'] === 'string' ? p['patch'] : undefined;
    if (text === undefined) throw new Error(`${file}: a patch needs path or patch`);
    const docs = parseAllDocuments(text).map((d) => d.toJS() as unknown);
    const target = p['target'] === undefined ? undefined : (p['target'] as Record<string, unknown>);
    if (docs.length === 1 && Array.isArray(docs[0])) {
      if (target === undefined) throw new Error(`${file}: a JSON 6902 patch needs a target`);
      const matched = objects.filter((o) => matchesTarget(o, target));
      if (matched.length === 0) throw new Error(`${file}: patch target ${JSON.stringify(target)} matches nothing`);
      for (const o of matched) applyJson6902(o, docs[0] as unknown[]);
      continue;
    }
    for (const doc of docs) {
      if (!isObject(doc)) throw new Error(`${file}: a strategic merge patch must be an object`);
      const matched = objects.filter((o) => (target !== undefined ? matchesTarget(o, target) : sameObject(o, doc)));
      if (matched.length === 0) throw new Error(`${file}: patch for ${String(doc['kind'])}/${String((doc['metadata'] as Record<string, unknown> | undefined)?.['name'])} matches nothing`);
      objects = objects.map((o) => (matched.includes(o) ? (strategicMerge(o, doc, builtinGroups.has(group(o.apiVersion))) as K8sObject) : o));
    }
  }

  for (const image of asArray(k['images'], 'images', file)) {
    if (!isObject(image) || typeof image['name'] !== 'string') throw new Error(`${file}: images entries need a name`);
    for (const o of objects) setImages(o, image as unknown as ImageOverride);
  }

  if (k['namespace'] !== undefined) {
    if (typeof k['namespace'] !== 'string') throw new Error(`${file}: namespace must be a string`);
    for (const o of objects) if (!clusterScoped.has(o.kind)) o.metadata.namespace = k['namespace'];
  }
  return objects;
}

/** `apiVersion/kind/namespace/name`: how kustomize tells objects apart. */
export function objectId(o: K8sObject): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? '~'}/${o.metadata.name}`;
}

/**
 * A strategic merge patch: maps merge key by key, `null` deletes, lists with a merge key merge
 * item by item (new items appended), other lists and scalars are replaced. `$patch` directives
 * are not supported and fail loudly.
 */
export function strategicMerge(base: unknown, patch: unknown, withMergeKeys: boolean, field = ''): unknown {
  if (isObject(patch) && isObject(base)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (key.startsWith('$')) throw new Error(`strategic merge directive ${key} is not supported`);
      if (value === null) delete out[key];
      else out[key] = key in base ? strategicMerge(base[key], value, withMergeKeys, key) : value;
    }
    return out;
  }
  const mergeKey = withMergeKeys ? mergeKeys[field] : undefined;
  if (Array.isArray(patch) && Array.isArray(base) && mergeKey !== undefined) {
    const out = [...base];
    for (const item of patch) {
      if (!isObject(item) || item[mergeKey] === undefined) throw new Error(`${field}: items need ${mergeKey} to merge`);
      const i = out.findIndex((b) => isObject(b) && b[mergeKey] === item[mergeKey]);
      if (i === -1) out.push(item);
      else out[i] = strategicMerge(out[i], item, withMergeKeys);
    }
    return out;
  }
  return structuredClone(patch);
}

/** RFC 6902 add, replace and remove on JSON pointers (`-` appends to a list). */
export function applyJson6902(target: Record<string, unknown>, ops: readonly unknown[]): void {
  for (const op of ops) {
    if (!isObject(op) || typeof op['op'] !== 'string' || typeof op['path'] !== 'string') throw new Error(`bad JSON 6902 operation ${JSON.stringify(op)}`);
    const parts = op['path'].split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) throw new Error(`JSON 6902 path ${op['path']} names the whole document`);
    let node: unknown = target;
    for (const part of parts) {
      node = Array.isArray(node) ? node[Number(part)] : isObject(node) ? node[part] : undefined;
      if (node === undefined) throw new Error(`JSON 6902 path ${op['path']}: ${part} does not exist`);
    }
    const value = structuredClone(op['value']);
    if (Array.isArray(node)) {
      const index = last === '-' ? node.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > node.length) throw new Error(`JSON 6902 path ${op['path']}: bad index`);
      if (op['op'] === 'add') node.splice(index, 0, value);
      else if (op['op'] === 'replace' && index < node.length) node[index] = value;
      else if (op['op'] === 'remove' && index < node.length) node.splice(index, 1);
      else throw new Error(`JSON 6902 ${op['op']} at ${op['path']} is not supported`);
    } else if (isObject(node)) {
      if (op['op'] === 'add' || (op['op'] === 'replace' && last in node)) node[last] = value;
      else if (op['op'] === 'remove' && last in node) delete node[last];
      else throw new Error(`JSON 6902 ${op['op']} at ${op['path']} is not supported`);
    } else {
      throw new Error(`JSON 6902 path ${op['path']} does not lead to a list or map`);
    }
  }
}

interface ImageOverride {
  readonly name: string;
  readonly newName?: string;
  readonly newTag?: string;
  readonly digest?: string;
}

/** kustomize's `images`: rewrites `image` in every containers/initContainers list of the object. */
function setImages(node: unknown, image: ImageOverride): void {
  if (Array.isArray(node)) {
    for (const item of node) setImages(item, image);
    return;
  }
  if (!isObject(node)) return;
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'containers' || key === 'initContainers') && Array.isArray(value)) {
      for (const c of value) {
        if (!isObject(c) || typeof c['image'] !== 'string') continue;
        const m = /^(.*?)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(c['image']);
        if (m?.[1] !== image.name) continue;
        const suffix = image.digest !== undefined ? `@${image.digest}` : image.newTag !== undefined ? `:${image.newTag}` : m[2] !== undefined ? `:${m[2]}` : m[3] !== undefined ? `@${m[3]}` : '';
        c['image'] = `${image.newName ?? image.name}${suffix}`;
      }
    }
    setImages(value, image);
  }
}

function matchesTarget(o: K8sObject, target: Record<string, unknown>): boolean {
  const g = group(o.apiVersion);
  const v = o.apiVersion.split('/').pop();
  return (
    (target['kind'] === undefined || target['kind'] === o.kind) &&
    (target['name'] === undefined || target['name'] === o.metadata.name) &&
    (target['group'] === undefined || target['group'] === g) &&
    (target['version'] === undefined || target['version'] === v) &&
    (target['namespace'] === undefined || target['namespace'] === o.metadata.namespace)
  );
}

function sameObject(o: K8sObject, patch: Record<string, unknown>): boolean {
  const meta = isObject(patch['metadata']) ? patch['metadata'] : {};
  return o.kind === patch['kind'] && o.apiVersion === patch['apiVersion'] && o.metadata.name === meta['name'] && (meta['namespace'] === undefined || meta['namespace'] === o.metadata.namespace);
}

function group(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.lastIndexOf('/')) : '';
}

function readYamlPlain(file: string): unknown {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  if (docs.length !== 1 || docs[0] === undefined || docs[0].errors.length > 0) throw new Error(`${file}: expected one valid YAML document`);
  return docs[0].toJS();
}

function asArray(value: unknown, field: string, file: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${file}: ${field} must be a list`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
