import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QueueKeys } from 'bullmq';
import { parseAllDocuments } from 'yaml';
import { loadEnvSettings } from '@vecmill/shared/config';
import { loadWorkerConfig } from '@vecmill/shared/config';
import { DEFAULT_QUEUE_PREFIX, queueNames } from '@vecmill/shared/queue/queue-names';
import { projectRoot } from '../support/fixtures.js';
import { applyJson6902, objectId, readYamlObjects, renderKustomization, strategicMerge, type K8sObject } from '../support/k8s-kustomize.js';
import { validateK8sObject } from '../support/k8s-validate.js';
import { makeTempDir } from '../support/tmp.js';

const k8sDir = join(projectRoot, 'k8s');
const overlays = ['cpu', 'gpu'] as const;

type Json = Record<string, any>;

function find(objects: readonly K8sObject[], kind: string, name: string): Json {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o !== undefined, `${kind}/${name} is rendered`);
  return o as Json;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name) && e.name !== 'kustomization.yaml')
    .map((e) => join(e.parentPath, e.name));
}

/** Files that are patches (partial objects), not resources. */
function patchFiles(): Set<string> {
  const out = new Set<string>();
  for (const overlay of overlays) {
    const k = parseAllDocuments(readFileSync(join(k8sDir, 'overlays', overlay, 'kustomization.yaml'), 'utf8'))[0]?.toJS() as Json;
    for (const p of k['patches'] ?? []) if (typeof p.path === 'string') out.add(join(k8sDir, 'overlays', overlay, p.path));
  }
  return out;
}

function workerContainer(objects: readonly K8sObject[]): Json {
  const c = find(objects, 'Deployment', 'vecmill-worker')['spec'].template.spec.containers[0];
  assert.equal(c.name, 'worker');
  return c;
}

describe('k8s manifests', () => {
  const rendered = new Map<string, K8sObject[]>();
  before(() => {
    for (const overlay of overlays) rendered.set(overlay, renderKustomization(join(k8sDir, 'overlays', overlay)));
  });

  test('every resource file under k8s/ validates against the Kubernetes, KEDA and Prometheus Operator schemas', async () => {
    const patches = patchFiles();
    const files = yamlFiles(k8sDir).filter((f) => !patches.has(f));
    assert.ok(files.length >= 10, `found ${files.length} manifest files`);
    const problems: string[] = [];
    for (const file of files) for (const o of readYamlObjects(file)) problems.push(...(await validateK8sObject(o)).map((p) => `${file}: ${p}`));
    assert.deepEqual(problems, []);
  });

  for (const overlay of overlays) {
    test(`the ${overlay} overlay renders to valid objects in the vecmill namespace`, async () => {
      const objects = rendered.get(overlay) ?? [];
      const problems: string[] = [];
      for (const o of objects) problems.push(...(await validateK8sObject(o)));
      assert.deepEqual(problems, []);
      assert.deepEqual(
        [...new Set(objects.map((o) => o.kind))].sort(),
        ['ConfigMap', 'CronJob', 'Deployment', 'PodDisruptionBudget', 'ScaledObject', 'Secret', 'Service', 'ServiceAccount', 'ServiceMonitor', 'StatefulSet', 'TriggerAuthentication'],
      );
      for (const o of objects) assert.equal(o.metadata.namespace, 'vecmill', objectId(o));
      for (const image of objects.flatMap((o) => JSON.stringify(o).match(/"image":"[^"]+"/g) ?? [])) {
        assert.match(image, /:(\d+\.\d+\.\d+-(cpu|cuda)|7\.4\.\d+-alpine)"$/, `${image} is pinned to a version`);
      }
    });
  }

  test('the schema check catches a misspelt field and a wrong type', async () => {
    const deployment = structuredClone(find(rendered.get('cpu') ?? [], 'Deployment', 'vecmill-worker')) as K8sObject & Json;
    deployment['spec'].template.spec.containers[0].livenesProbe = deployment['spec'].template.spec.containers[0].livenessProbe;
    assert.deepEqual(await validateK8sObject(deployment), [
      'Deployment/vecmill-worker: /spec/template/spec/containers/0/livenesProbe is not a field of apps/v1 Deployment',
    ]);
    deployment['spec'].template.spec.containers[0].ports[0].containerPort = '9464';
    assert.match((await validateK8sObject(deployment)).join('\n'), /containerPort must be integer/);
  });

  test('the gpu overlay asks for one GPU on tolerated GPU nodes and runs the CUDA image with --device cuda', () => {
    const gpu = rendered.get('gpu') ?? [];
    const c = workerContainer(gpu);
    assert.equal(c.resources.limits['nvidia.com/gpu'], 1);
    assert.equal(c.resources.requests['nvidia.com/gpu'], 1);
    assert.match(c.image, /:\d+\.\d+\.\d+-cuda$/);
    assert.deepEqual(c.args.slice(-2), ['--device', 'cuda']);
    assert.equal(loadWorkerConfig(c.args.slice(1), { VECMILL_REDIS_URL: 'redis://127.0.0.1:6379' }).device, 'cuda');
    const pod = find(gpu, 'Deployment', 'vecmill-worker')['spec'].template.spec;
    assert.ok(pod.tolerations.some((t: Json) => t.key === 'nvidia.com/gpu'));
    const cpu = workerContainer(rendered.get('cpu') ?? []);
    assert.equal(cpu.resources.limits['nvidia.com/gpu'], undefined);
    assert.match(cpu.image, /:\d+\.\d+\.\d+-cpu$/);
    assert.equal(find(gpu, 'ScaledObject', 'vecmill-worker')['spec'].maxReplicaCount, 8);
    assert.equal(find(rendered.get('cpu') ?? [], 'ScaledObject', 'vecmill-worker')['spec'].maxReplicaCount, 20);
  });

  for (const overlay of overlays) {
    test(`${overlay}: the worker's flags parse, and probes, Service and ServiceMonitor all reach its metrics port`, () => {
      const objects = rendered.get(overlay) ?? [];
      const c = workerContainer(objects);
      assert.equal(c.args[0], 'worker');
      const config = loadWorkerConfig(c.args.slice(1), { VECMILL_REDIS_URL: 'redis://127.0.0.1:6379' });
      assert.deepEqual(config.queues, ['embed', 'merge']);
      assert.equal(c.env.find((e: Json) => e.name === 'VECMILL_REDIS_URL')?.valueFrom.secretKeyRef.name, 'vecmill-secrets');
      const port = c.ports.find((p: Json) => p.name === 'metrics');
      assert.equal(port.containerPort, config.metricsPort);
      for (const probe of [c.readinessProbe, c.livenessProbe]) assert.deepEqual(probe.httpGet, { path: '/healthz', port: 'metrics' });
      const service = find(objects, 'Service', 'vecmill-worker-metrics');
      const podLabels = find(objects, 'Deployment', 'vecmill-worker')['spec'].template.metadata.labels;
      for (const [k, v] of Object.entries(service['spec'].selector)) assert.equal(podLabels[k], v, `Service selects pod label ${k}`);
      assert.equal(service['spec'].ports[0].targetPort, 'metrics');
      const monitor = find(objects, 'ServiceMonitor', 'vecmill-worker');
      for (const [k, v] of Object.entries(monitor['spec'].selector.matchLabels)) assert.equal(service['metadata'].labels[k], v, `ServiceMonitor selects Service label ${k}`);
      assert.deepEqual(monitor['spec'].endpoints.map((e: Json) => [e.port, e.path]), [['metrics', '/metrics']]);
      const pdb = find(objects, 'PodDisruptionBudget', 'vecmill-worker');
      for (const [k, v] of Object.entries(pdb['spec'].selector.matchLabels)) assert.equal(podLabels[k], v);
      assert.equal(pdb['spec'].maxUnavailable, 1);
    });
  }

  test('the worker drains on termination: preStop signals tini, and the grace period outlasts a long split', () => {
    const objects = rendered.get('cpu') ?? [];
    const pod = find(objects, 'Deployment', 'vecmill-worker')['spec'].template.spec;
    const c = workerContainer(objects);
    assert.deepEqual(c.lifecycle.preStop.exec.command.slice(0, 2), ['/bin/sh', '-c']);
    assert.match(c.lifecycle.preStop.exec.command[2], /kill -TERM 1;.*while kill -0 1/);
    assert.ok(pod.terminationGracePeriodSeconds >= 600, 'at least ten minutes: a 64 MiB split on CPU takes minutes');
    const config = loadWorkerConfig(c.args.slice(1), { VECMILL_REDIS_URL: 'redis://127.0.0.1:6379' });
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.lockDurationMs * 10);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
  });

  test('KEDA scales on the BullMQ lists the workers actually use, down to zero', () => {
    const objects = rendered.get('cpu') ?? [];
    const so = find(objects, 'ScaledObject', 'vecmill-worker')['spec'];
    assert.equal(so.scaleTargetRef.name, 'vecmill-worker');
    assert.equal(so.minReplicaCount, 0);
    const keys = (queue: string): Json => new QueueKeys(DEFAULT_QUEUE_PREFIX).getKeys(queue);
    const lists = so.triggers.map((t: Json) => t.metadata.listName);
    assert.deepEqual(lists, [keys(queueNames.embed)['wait'], keys(queueNames.embed)['active'], keys(queueNames.merge)['wait'], keys(queueNames.merge)['active']]);
    assert.equal(lists[0], 'vecmill:embed:wait');
    const c = workerContainer(objects);
    const concurrency = loadWorkerConfig(c.args.slice(1), { VECMILL_REDIS_URL: 'redis://127.0.0.1:6379' }).concurrency;
    assert.equal(so.triggers[1].metadata.listLength, String(concurrency), 'one worker per `concurrency` active embed jobs keeps every busy worker');
    const redis = find(objects, 'Service', 'vecmill-redis');
    for (const t of so.triggers) {
      assert.equal(t.type, 'redis');
      assert.equal(t.metadata.address, `${redis['metadata'].name}.${redis['metadata'].namespace}.svc.cluster.local:${redis['spec'].ports[0].port}`);
      assert.equal(t.authenticationRef.name, 'vecmill-redis');
    }
    const auth = find(objects, 'TriggerAuthentication', 'vecmill-redis')['spec'].secretTargetRef[0];
    assert.deepEqual([auth.parameter, auth.name, auth.key], ['password', 'vecmill-secrets', 'REDIS_PASSWORD']);
  });

  test('the Redis StatefulSet runs infra/redis.conf (noeviction, AOF) with the Secret password on a volume', () => {
    const objects = rendered.get('cpu') ?? [];
    const conf = find(objects, 'ConfigMap', 'vecmill-redis-config')['data']['redis.conf'];
    assert.equal(conf, readFileSync(join(projectRoot, 'infra', 'redis.conf'), 'utf8'));
    const sts = find(objects, 'StatefulSet', 'vecmill-redis')['spec'];
    const c = sts.template.spec.containers[0];
    assert.deepEqual(c.args, ['redis-server', '/etc/redis/redis.conf', '--requirepass', '$(REDIS_PASSWORD)']);
    assert.equal(c.env.find((e: Json) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef.key, 'REDIS_PASSWORD');
    assert.ok(c.volumeMounts.some((m: Json) => m.mountPath === '/data' && m.name === sts.volumeClaimTemplates[0].metadata.name));
    assert.equal(sts.serviceName, 'vecmill-redis');
  });

  test('ConfigMap keys are settings vecmill reads, and the Secret templates hold placeholders only', () => {
    const objects = rendered.get('cpu') ?? [];
    const env = find(objects, 'ConfigMap', 'vecmill-config')['data'] as Record<string, string>;
    const baseline = JSON.stringify(loadEnvSettings({}));
    for (const key of Object.keys(env)) assert.notEqual(JSON.stringify(loadEnvSettings({ [key]: '/vecmill-probe' })), baseline, `vecmill reads ${key}`);
    const secrets = [...objects.filter((o) => o.kind === 'Secret'), ...readYamlObjects(join(k8sDir, 'templates', 'aws-credentials-secret.yaml'))];
    assert.ok(secrets.length >= 2);
    for (const s of secrets as Json[]) {
      assert.equal(s['data'], undefined, 'templates use stringData, readable placeholders');
      for (const [key, value] of Object.entries(s['stringData'] as Record<string, string>)) {
        if (/PASSWORD|SECRET|KEY_ID|REDIS_URL/.test(key)) assert.match(value, /CHANGE-ME/, `${s['metadata'].name}.${key} is a placeholder`);
      }
    }
    const aws = readYamlObjects(join(k8sDir, 'templates', 'aws-credentials-secret.yaml'))[0] as Json;
    const settings = loadEnvSettings(aws['stringData']);
    assert.equal(settings.s3.endpoint, aws['stringData'].VECMILL_S3_ENDPOINT);
    assert.equal(settings.s3.forcePathStyle, true);
  });

  describe('the nightly CronJob', () => {
    let tmp: { dir: string; cleanup: () => Promise<void> };
    before(async () => {
      tmp = await makeTempDir('deploy-cron');
    });
    after(() => tmp.cleanup());

    test('runs produce into today\'s folder, reusing yesterday\'s output when it was published, with the date as run id', () => {
      const objects = rendered.get('gpu') ?? [];
      const cron = find(objects, 'CronJob', 'vecmill-nightly-produce')['spec'];
      assert.equal(cron.concurrencyPolicy, 'Forbid');
      assert.match(cron.schedule, /^\d+ \d+ \* \* \*$/, 'once a day');
      const c = cron.jobTemplate.spec.template.spec.containers[0];
      assert.deepEqual(c.command, ['/usr/bin/tini', '--', '/bin/sh', '-c']);
      assert.match(c.image, /-cuda$/);
      // Run the script as the container would, with a `vecmill` on PATH that records its argv.
      const bin = join(tmp.dir, 'bin');
      spawnSync('mkdir', ['-p', bin]);
      writeFileSync(join(bin, 'vecmill'), `#!/bin/sh\nif [ "$1" = inspect ]; then exit "\${INSPECT_EXIT:-0}"; fi\nprintf '%s\\n' "$@" > "${join(tmp.dir, 'argv')}"\n`);
      chmodSync(join(bin, 'vecmill'), 0o755);
      const nightly = find(objects, 'ConfigMap', 'vecmill-nightly')['data'];
      const dayBefore = new Date().toISOString().slice(0, 10);
      const r = spawnSync('/bin/sh', ['-c', c.args[0]], { env: { PATH: `${bin}:/usr/bin:/bin`, ...nightly }, encoding: 'utf8' });
      const dayAfter = new Date().toISOString().slice(0, 10);
      assert.equal(r.status, 0, r.stderr);
      const argv = readFileSync(join(tmp.dir, 'argv'), 'utf8').trimEnd().split('\n');
      const flag = (name: string): string | undefined => argv[argv.indexOf(name) + 1];
      const today = /^nightly-(.*)$/.exec(flag('--run-id') ?? '')?.[1] ?? '';
      assert.ok(today === dayBefore || today === dayAfter, `run id date ${today} is today`);
      const yesterday = new Date(Date.parse(`${today}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
      assert.equal(argv[0], 'produce');
      assert.equal(flag('--input'), nightly.NIGHTLY_INPUT);
      assert.equal(flag('--model'), nightly.NIGHTLY_MODEL);
      assert.equal(flag('--output'), `${nightly.NIGHTLY_OUTPUT_ROOT}/${today}/`);
      assert.equal(flag('--reuse'), `${nightly.NIGHTLY_OUTPUT_ROOT}/${yesterday}/`);
      assert.equal(flag('--run-id'), `nightly-${today}`);
      assert.ok(c.env.some((e: Json) => e.name === 'VECMILL_REDIS_URL'), 'Redis comes from the Secret, never argv');
      const first = spawnSync('/bin/sh', ['-c', c.args[0]], { env: { PATH: `${bin}:/usr/bin:/bin`, INSPECT_EXIT: '1', ...nightly }, encoding: 'utf8' });
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stderr, /no published output at .*: embedding every row/);
      assert.ok(!readFileSync(join(tmp.dir, 'argv'), 'utf8').includes('--reuse'), 'no --reuse when last night was not published');
    });
  });

  test('the renderer merges as kustomize does: lists with merge keys by key, others replaced; JSON 6902 appends', () => {
    const base = { spec: { containers: [{ name: 'a', image: 'x', args: ['1', '2'], env: [{ name: 'E', value: '1' }] }], tolerations: [{ key: 'k' }] } };
    const merged = strategicMerge(base, { spec: { containers: [{ name: 'a', args: ['3'], env: [{ name: 'F', value: '2' }] }, { name: 'b', image: 'y' }], tolerations: [{ key: 'z' }] } }, true);
    assert.deepEqual(merged, {
      spec: {
        containers: [
          { name: 'a', image: 'x', args: ['3'], env: [{ name: 'E', value: '1' }, { name: 'F', value: '2' }] },
          { name: 'b', image: 'y' },
        ],
        tolerations: [{ key: 'z' }],
      },
    });
    assert.deepEqual(strategicMerge({ spec: { containers: [{ name: 'a' }], x: 1 } }, { spec: { containers: [{ name: 'b' }], x: null } }, false), { spec: { containers: [{ name: 'b' }] } });
    const doc = { a: { list: ['x'] } };
    applyJson6902(doc, [{ op: 'add', path: '/a/list/-', value: 'y' }, { op: 'replace', path: '/a/list/0', value: 'w' }]);
    assert.deepEqual(doc, { a: { list: ['w', 'y'] } });
    assert.throws(() => applyJson6902(doc, [{ op: 'move', path: '/a/list/0', from: '/a' }]), /not supported/);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  for (const overlay of overlays) {
    test(`${overlay}: the renderer's output equals \`kubectl kustomize\``, { skip: kubectl.status === 0 ? false : 'kubectl is not installed' }, () => {
      const r = spawnSync('kubectl', ['kustomize', join(k8sDir, 'overlays', overlay)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const real = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
      const byId = (list: readonly K8sObject[]): Map<string, unknown> => new Map(list.map((o) => [objectId(o), o]));
      const mine = byId(rendered.get(overlay) ?? []);
      const theirs = byId(real);
      assert.deepEqual([...mine.keys()].sort(), [...theirs.keys()].sort());
      for (const [id, o] of theirs) assert.deepEqual(mine.get(id), o, id);
    });
  }
});
