import type { K8sObject } from './k8s-kustomize.js';

/** What kubernetes-models' generated classes look like from here. */
interface ModelClass {
  new (data: unknown): { validate(): void };
}

interface SchemaError {
  readonly instancePath: string;
  readonly message?: string;
}

/**
 * Where the schema of an API group lives: Kubernetes' own OpenAPI (kubernetes-models), KEDA's
 * CRDs (@kubernetes-models/keda) and the Prometheus Operator's (@kubernetes-models/prometheus-operator).
 * Each class validates with ajv code generated from those schemas.
 */
function modelModule(apiVersion: string, kind: string): string {
  const slash = apiVersion.lastIndexOf('/');
  const group = slash === -1 ? '' : apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  if (group === 'keda.sh') return `@kubernetes-models/keda/keda.sh/${version}/${kind}`;
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`;
  return `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${kind}`;
}

async function loadModel(o: K8sObject): Promise<ModelClass> {
  const specifier = modelModule(o.apiVersion, o.kind);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch {
    throw new Error(`no schema for ${o.apiVersion} ${o.kind} (looked for ${specifier})`);
  }
  const cls = mod[o.kind];
  if (typeof cls !== 'function') throw new Error(`${specifier} exports no ${o.kind}`);
  return cls as ModelClass;
}

function schemaErrors(model: ModelClass, data: unknown): readonly SchemaError[] {
  try {
    new model(data).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) throw err;
    return errors as SchemaError[];
  }
}

function pointer(path: readonly (string | number)[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/**
 * Validates one object against its schema and returns every problem as `kind/name: path message`
 * (empty when valid). Beyond the schema's types, required fields, enums and formats, it reports
 * fields the schema does not define (kubectl's strict field validation refuses them, and a typo
 * such as `livenesProbe` would otherwise pass silently). A field counts as defined when the schema
 * rejects a wrong-typed value there: an undefined field accepts anything.
 */
export async function validateK8sObject(o: K8sObject): Promise<string[]> {
  const model = await loadModel(o);
  const name = `${o.kind}/${o.metadata.name}`;
  const problems = schemaErrors(model, o).map((e) => `${name}: ${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
  if (problems.length > 0) return problems;

  const unknown: string[] = [];
  const probe = (node: unknown, path: (string | number)[]): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => probe(item, [...path, i]));
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    for (const key of Object.keys(node)) {
      const at = [...path, key];
      const where = pointer(at);
      const rejects = [true, 'vecmill-probe', { 'vecmill-probe': 1 }].some((wrong) => {
        const copy = structuredClone(o) as Record<string, unknown>;
        let parent: Record<string | number, unknown> = copy;
        for (const p of path) parent = parent[p] as Record<string | number, unknown>;
        parent[key] = wrong;
        return schemaErrors(model, copy).some((e) => e.instancePath === where || e.instancePath.startsWith(`${where}/`));
      });
      if (rejects) probe((node as Record<string, unknown>)[key], at);
      else unknown.push(`${name}: ${where} is not a field of ${o.apiVersion} ${o.kind}`);
    }
  };
  probe(o, []);
  return unknown;
}
