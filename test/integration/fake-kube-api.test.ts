// The fake Kubernetes API server against the real @kubernetes/client-node 1.4: what a
// cloud-controller-manager does (nodes, services, status subresource, the three patch types,
// finalizers, conflicts, informers, watch resume and 410, events, leases) behaves as on a real
// cluster, and the test helpers (apply, get, failNext, onRequest, waitFor) work.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { loadKubeClient, type K8sModule } from '../../common/kube/client.js';
import { FakeKubeApi, type KubeObject } from '../support/fake-kube-api.js';

/**
 * How to send a strategic merge or merge patch with client-node 1.4. Its generated patch*
 * methods pick the first content type of the spec, application/json-patch+json, so a body
 * that is not a JSON-patch array needs the header overridden for the call:
 *   await core.patchNode({ name, body }, patchAs(mod, 'StrategicMergePatch'));
 * setHeaderOptions appends a middleware that sets the header after the generated code did.
 */
function patchAs(mod: K8sModule, strategy: 'StrategicMergePatch' | 'MergePatch'): k8s.ConfigurationOptions {
  return mod.setHeaderOptions('Content-Type', mod.PatchStrategy[strategy]);
}

interface Failure {
  code: number;
  reason: string | undefined;
  message: string | undefined;
}

/** The Status of a rejected client-node call (its ApiException carries the body as text). */
async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (err) {
    const e = err as { code?: unknown; body?: unknown };
    if (typeof e.code !== 'number') throw err;
    const body = (typeof e.body === 'string' ? JSON.parse(e.body) : e.body) as
      { reason?: string; message?: string } | undefined;
    return { code: e.code, reason: body?.reason, message: body?.message };
  }
  return assert.fail('the call succeeded');
}

function taintKeys(node: k8s.V1Node): string[] {
  return (node.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`);
}

function node(name: string, labels: Record<string, string> = {}): k8s.V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: { providerID: `fake://${name}` },
    status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] },
  };
}

interface Seen {
  type: string;
  name: string | undefined;
  resourceVersion: string | undefined;
  object: k8s.KubernetesObject;
}

describe('fake Kubernetes API with client-node', () => {
  let api: FakeKubeApi;
  let dir: string;
  let mod: K8sModule;
  let config: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  const stops: (() => unknown)[] = [];

  /** A raw watch through client-node's Watch, recording every event. */
  async function watch(
    path: string,
    query: Record<string, string>,
  ): Promise<{ seen: Seen[]; done: () => boolean }> {
    const seen: Seen[] = [];
    let ended = false;
    const controller = await new mod.Watch(config).watch(
      path,
      query,
      (type: string, object: k8s.KubernetesObject) => {
        seen.push({
          type,
          name: object.metadata?.name,
          resourceVersion: object.metadata?.resourceVersion,
          object,
        });
      },
      () => {
        ended = true;
      },
    );
    stops.push(() => controller.abort());
    return { seen, done: () => ended };
  }

  before(async () => {
    api = await new FakeKubeApi().start();
    dir = mkdtempSync(join(tmpdir(), 'fake-kube-api-'));
    const client = await loadKubeClient(api.writeKubeconfig(dir));
    mod = client.k8s;
    config = client.config;
    core = config.makeApiClient(mod.CoreV1Api);
  });
  after(async () => {
    for (const stop of stops) await stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, reads and lists Nodes and Services', async () => {
    const created = await core.createNode({ body: node('node-a', { role: 'worker', gpu: 'yes' }) });
    assert.ok(created.metadata?.uid);
    assert.ok(created.metadata.creationTimestamp instanceof Date);
    assert.equal(created.metadata.generation, 1);
    await core.createNode({ body: node('node-b', { role: 'edge' }) });
    await core.createNode({ body: node('node-c', { role: 'control-plane' }) });
    const read = await core.readNode({ name: 'node-a' });
    assert.equal(read.metadata?.resourceVersion, created.metadata.resourceVersion);
    assert.equal(read.spec?.providerID, 'fake://node-a');

    const names = async (labelSelector: string) =>
      (await core.listNode({ labelSelector })).items.map((n) => n.metadata?.name);
    assert.deepEqual(await names('role=worker'), ['node-a']);
    assert.deepEqual(await names('role==worker'), ['node-a']);
    assert.deepEqual(await names('role!=worker'), ['node-b', 'node-c']);
    assert.deepEqual(await names('role in (worker, edge)'), ['node-a', 'node-b']);
    assert.deepEqual(await names('role notin (worker,edge)'), ['node-c']);
    assert.deepEqual(await names('gpu'), ['node-a']);
    assert.deepEqual(await names('!gpu,role'), ['node-b', 'node-c']);
    const byName = await core.listNode({ fieldSelector: 'metadata.name=node-b' });
    assert.deepEqual(
      byName.items.map((n) => n.metadata?.name),
      ['node-b'],
    );
    assert.ok(Number(byName.metadata?.resourceVersion) >= Number(created.metadata.resourceVersion));
    const page = await core.listNode({ limit: 2 });
    assert.equal(page.items.length, 2);
    const rest = await core.listNode({ limit: 2, _continue: page.metadata?._continue ?? '' });
    assert.deepEqual(
      rest.items.map((n) => n.metadata?.name),
      ['node-c'],
    );

    const service = (namespace: string, name: string): k8s.V1Service => ({
      metadata: { name, namespace },
      spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }] },
    });
    await core.createNamespacedService({ namespace: 'default', body: service('default', 'web') });
    await core.createNamespacedService({ namespace: 'kube-system', body: service('kube-system', 'dns') });
    const inDefault = await core.listNamespacedService({ namespace: 'default' });
    assert.deepEqual(
      inDefault.items.map((s) => s.metadata?.name),
      ['web'],
    );
    const everywhere = await core.listServiceForAllNamespaces();
    assert.deepEqual(
      everywhere.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`),
      ['default/web', 'kube-system/dns'],
    );
    const svc = await core.readNamespacedService({ namespace: 'default', name: 'web' });
    assert.equal(svc.spec?.type, 'LoadBalancer');
  });

  it('answers with Status errors: AlreadyExists, NotFound, Invalid, BadRequest, Unauthorized, MethodNotAllowed', async () => {
    assert.deepEqual(await failure(core.createNode({ body: node('node-a') })), {
      code: 409,
      reason: 'AlreadyExists',
      message: 'nodes "node-a" already exists',
    });
    assert.deepEqual(await failure(core.readNode({ name: 'nope' })), {
      code: 404,
      reason: 'NotFound',
      message: 'nodes "nope" not found',
    });
    const invalid = await failure(core.createNode({ body: { metadata: {} } }));
    assert.equal(invalid.code, 422);
    assert.equal(invalid.reason, 'Invalid');
    assert.match(invalid.message ?? '', /metadata\.name: Required value/);
    const generated = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { generateName: 'cfg-' }, data: { a: '1' } },
    });
    assert.match(generated.metadata?.name ?? '', /^cfg-[a-z0-9]{5}$/);

    const base = `http://127.0.0.1:${api.port}`;
    const auth = { authorization: `Bearer ${api.clientToken}` };
    const raw = async (path: string, init: RequestInit) => {
      const res = await fetch(base + path, init);
      return { status: res.status, body: (await res.json()) as { reason?: string; kind?: string } };
    };
    const badJson = await raw('/api/v1/namespaces/default/configmaps', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{not json',
    });
    assert.deepEqual([badJson.status, badJson.body.kind, badJson.body.reason], [400, 'Status', 'BadRequest']);
    const noToken = await raw('/api/v1/nodes', { method: 'GET' });
    assert.deepEqual([noToken.status, noToken.body.reason], [401, 'Unauthorized']);
    const notAllowed = await raw('/api/v1/services', { method: 'POST', headers: auth, body: '{}' });
    assert.deepEqual([notAllowed.status, notAllowed.body.reason], [405, 'MethodNotAllowed']);
    const badSelector = await failure(core.listNode({ labelSelector: 'role in worker' }));
    assert.deepEqual([badSelector.code, badSelector.reason], [400, 'BadRequest']);
    const badField = await failure(core.listNode({ fieldSelector: 'spec.providerID=x' }));
    assert.deepEqual([badField.code, badField.message], [400, 'field label not supported: spec.providerID']);
    const weirdPatch = await failure(
      core.patchNode(
        { name: 'node-a', body: { metadata: {} } },
        mod.setHeaderOptions('Content-Type', 'text/plain'),
      ),
    );
    assert.deepEqual([weirdPatch.code, weirdPatch.reason], [415, 'UnsupportedMediaType']);
  });

  it('status subresource: /status writes change the status only, object writes keep the status', async () => {
    const before = await core.readNode({ name: 'node-b' });
    const patched = await core.patchNodeStatus(
      {
        name: 'node-b',
        body: {
          spec: { unschedulable: true },
          status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
        },
      },
      patchAs(mod, 'MergePatch'),
    );
    assert.equal(patched.status?.conditions?.[0]?.type, 'Ready');
    assert.equal(patched.spec?.unschedulable, undefined, 'spec is not written through /status');
    assert.equal(patched.metadata?.generation, 1);
    assert.notEqual(patched.metadata.resourceVersion, before.metadata?.resourceVersion);

    const replaced = await core.replaceNodeStatus({
      name: 'node-b',
      body: {
        ...patched,
        spec: { ...patched.spec, providerID: 'fake://changed' },
        status: { ...patched.status, nodeInfo: undefined, capacity: { cpu: '4' } },
      },
    });
    assert.equal(replaced.status?.capacity?.cpu, '4');
    assert.equal(replaced.spec?.providerID, 'fake://node-b');

    const object = await core.replaceNode({
      name: 'node-b',
      body: {
        ...replaced,
        spec: { ...replaced.spec, unschedulable: true },
        status: { capacity: { cpu: '64' } },
      },
    });
    assert.equal(object.spec?.unschedulable, true);
    assert.equal(object.status?.capacity?.cpu, '4', 'status is not written through the object');
    assert.equal(object.metadata?.generation, 2, 'a spec change counts a generation');
  });

  it('strategic merge patch: taints as client-go sends them, addresses and conditions by type', async () => {
    // client-go's PatchNodeTaints: the full new taint list, with the resourceVersion it was
    // computed from. spec.taints is atomic (no patch merge key upstream), so the list replaces.
    const start = await core.readNode({ name: 'node-a' });
    const taint = {
      key: 'node.cloudprovider.kubernetes.io/uninitialized',
      value: 'true',
      effect: 'NoSchedule',
    };
    const tainted = await core.patchNode(
      {
        name: 'node-a',
        body: {
          metadata: { resourceVersion: start.metadata?.resourceVersion },
          spec: { taints: [...(start.spec?.taints ?? []), taint, { key: 'other', effect: 'NoExecute' }] },
        },
      },
      patchAs(mod, 'StrategicMergePatch'),
    );
    assert.deepEqual(taintKeys(tainted), [
      'node.cloudprovider.kubernetes.io/uninitialized:NoSchedule',
      'other:NoExecute',
    ]);
    const untainted = await core.patchNode(
      {
        name: 'node-a',
        body: {
          metadata: { resourceVersion: tainted.metadata?.resourceVersion },
          spec: { taints: (tainted.spec?.taints ?? []).filter((t) => t.key !== taint.key) },
        },
      },
      patchAs(mod, 'StrategicMergePatch'),
    );
    assert.deepEqual(taintKeys(untainted), ['other:NoExecute']);
    const stale = await failure(
      core.patchNode(
        {
          name: 'node-a',
          body: { metadata: { resourceVersion: start.metadata?.resourceVersion }, spec: { taints: [] } },
        },
        patchAs(mod, 'StrategicMergePatch'),
      ),
    );
    assert.deepEqual([stale.code, stale.reason], [409, 'Conflict']);

    // Node status as CreateTwoWayMergePatch writes it: merge by `type`, $setElementOrder, $patch: delete.
    await core.patchNodeStatus(
      {
        name: 'node-a',
        body: {
          status: {
            conditions: [
              { type: 'Ready', status: 'True' },
              { type: 'NetworkUnavailable', status: 'True' },
            ],
          },
        },
      },
      patchAs(mod, 'StrategicMergePatch'),
    );
    const status = await core.patchNodeStatus(
      {
        name: 'node-a',
        body: {
          status: {
            '$setElementOrder/addresses': [{ type: 'ExternalIP' }, { type: 'InternalIP' }],
            addresses: [{ type: 'ExternalIP', address: '203.0.113.7' }],
            conditions: [
              { type: 'NetworkUnavailable', $patch: 'delete' },
              { type: 'Ready', reason: 'KubeletReady' },
            ],
          },
        },
      },
      patchAs(mod, 'StrategicMergePatch'),
    );
    assert.deepEqual(
      status.status?.addresses?.map((a) => `${a.type}=${a.address}`),
      ['ExternalIP=203.0.113.7', 'InternalIP=10.0.0.1'],
    );
    assert.deepEqual(
      status.status.conditions?.map((c) => [c.type, c.status, c.reason]),
      [['Ready', 'True', 'KubeletReady']],
    );
  });

  it('merge patch and JSON patch', async () => {
    const merged = await core.patchNamespacedService(
      { namespace: 'default', name: 'web', body: { metadata: { labels: { tier: 'front', team: 'a' } } } },
      patchAs(mod, 'MergePatch'),
    );
    assert.deepEqual(merged.metadata?.labels, { tier: 'front', team: 'a' });
    const unlabelled = await core.patchNamespacedService(
      { namespace: 'default', name: 'web', body: { metadata: { labels: { team: null } } } },
      patchAs(mod, 'MergePatch'),
    );
    assert.deepEqual(unlabelled.metadata?.labels, { tier: 'front' });

    // Without a header override, client-node sends application/json-patch+json.
    const jsonPatched = await core.patchNamespacedService({
      namespace: 'default',
      name: 'web',
      body: [
        { op: 'test', path: '/metadata/labels/tier', value: 'front' },
        { op: 'add', path: '/metadata/annotations', value: { 'a/b': 'x' } },
        { op: 'replace', path: '/spec/ports/0/port', value: 8080 },
        { op: 'remove', path: '/metadata/labels/tier' },
      ],
    });
    assert.deepEqual(jsonPatched.metadata?.annotations, { 'a/b': 'x' });
    assert.equal(jsonPatched.spec?.ports?.[0]?.port, 8080);
    assert.equal(jsonPatched.metadata.labels?.tier, undefined);
    const failedTest = await failure(
      core.patchNamespacedService({
        namespace: 'default',
        name: 'web',
        body: [{ op: 'test', path: '/spec/type', value: 'ClusterIP' }],
      }),
    );
    assert.deepEqual([failedTest.code, failedTest.reason], [422, 'Invalid']);
  });

  it('a PUT with a stale resourceVersion is a 409 Conflict; without one it is unconditional', async () => {
    const cm = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'settings' }, data: { v: '1' } },
    });
    const updated = await core.replaceNamespacedConfigMap({
      namespace: 'default',
      name: 'settings',
      body: { ...cm, data: { v: '2' } },
    });
    const stale = await failure(
      core.replaceNamespacedConfigMap({
        namespace: 'default',
        name: 'settings',
        body: { ...cm, data: { v: '3' } },
      }),
    );
    assert.equal(stale.code, 409);
    assert.equal(stale.reason, 'Conflict');
    assert.match(stale.message ?? '', /the object has been modified/);
    const forced = await core.replaceNamespacedConfigMap({
      namespace: 'default',
      name: 'settings',
      body: { metadata: { name: 'settings' }, data: { v: '4' } },
    });
    assert.equal(forced.data?.v, '4');
    assert.equal(forced.metadata?.uid, cm.metadata?.uid);
    assert.ok(Number(forced.metadata?.resourceVersion) > Number(updated.metadata?.resourceVersion));
    const same = await core.replaceNamespacedConfigMap({
      namespace: 'default',
      name: 'settings',
      body: forced,
    });
    assert.equal(
      same.metadata?.resourceVersion,
      forced.metadata?.resourceVersion,
      'a no-op update writes nothing',
    );
  });

  it('finalizers hold a deleted object until the last one is removed, then it goes with a DELETED event', async () => {
    const finalizer = 'service.kubernetes.io/load-balancer-cleanup';
    await core.createNamespacedService({
      namespace: 'default',
      body: {
        metadata: { name: 'lb', finalizers: [finalizer, 'example.com/other'] },
        spec: { type: 'LoadBalancer' },
      },
    });
    const events = await watch('/api/v1/namespaces/default/services', {
      resourceVersion: api.resourceVersion,
      fieldSelector: 'metadata.name=lb',
    });
    await core.deleteNamespacedService({ namespace: 'default', name: 'lb', propagationPolicy: 'Foreground' });
    const held = await core.readNamespacedService({ namespace: 'default', name: 'lb' });
    assert.ok(held.metadata?.deletionTimestamp instanceof Date);
    await core
      .patchNamespacedService(
        {
          namespace: 'default',
          name: 'lb',
          body: { metadata: { finalizers: ['example.com/other', 'example.com/new'] } },
        },
        patchAs(mod, 'MergePatch'),
      )
      .then(
        () => assert.fail('a finalizer was added to an object being deleted'),
        (err: unknown) => assert.equal((err as { code: number }).code, 422),
      );
    // As the upstream service controller removes its finalizer: through services/status.
    await core.patchNamespacedServiceStatus(
      {
        namespace: 'default',
        name: 'lb',
        body: { metadata: { [`$deleteFromPrimitiveList/finalizers`]: [finalizer] } },
      },
      patchAs(mod, 'StrategicMergePatch'),
    );
    const last = await core.readNamespacedService({ namespace: 'default', name: 'lb' });
    assert.deepEqual(last.metadata?.finalizers, ['example.com/other']);
    await core.patchNamespacedService({
      namespace: 'default',
      name: 'lb',
      body: [{ op: 'remove', path: '/metadata/finalizers' }],
    });
    assert.equal((await failure(core.readNamespacedService({ namespace: 'default', name: 'lb' }))).code, 404);
    await api.waitFor('DELETED event', () => events.seen.find((e) => e.type === 'DELETED'));
    assert.deepEqual(
      events.seen.map((e) => e.type),
      ['MODIFIED', 'MODIFIED', 'DELETED'],
    );
    assert.ok(events.seen.every((e) => e.name === 'lb'));
  });

  it('makeInformer on nodes sees the existing nodes, then adds, updates and deletes', async () => {
    const added: string[] = [];
    const updated: string[] = [];
    const deleted: string[] = [];
    const informer = mod.makeInformer<k8s.V1Node>(config, '/api/v1/nodes', () => core.listNode());
    informer.on('add', (n) => added.push(n.metadata?.name ?? ''));
    informer.on('update', (n) => updated.push(n.metadata?.name ?? ''));
    informer.on('delete', (n) => deleted.push(n.metadata?.name ?? ''));
    stops.push(() => informer.stop());
    const lists = () =>
      api.requests.filter(
        (r) => r.method === 'GET' && r.path === '/api/v1/nodes' && !r.query.includes('watch='),
      ).length;
    const listsBefore = lists();
    await informer.start();
    assert.deepEqual(added, ['node-a', 'node-b', 'node-c']);

    api.apply(node('node-d', { role: 'worker' })); // seeded directly, as another client would
    await api.waitFor('informer add', () => added.includes('node-d'));
    await core.patchNode(
      { name: 'node-d', body: { metadata: { labels: { role: 'edge' } } } },
      patchAs(mod, 'StrategicMergePatch'),
    );
    await api.waitFor('informer update', () => updated.includes('node-d'));
    assert.equal(informer.get('node-d')?.metadata?.labels?.role, 'edge');
    await core.deleteNode({ name: 'node-d' });
    await api.waitFor('informer delete', () => deleted.includes('node-d'));
    assert.equal(informer.get('node-d'), undefined);

    // A dropped watch resumes from the informer's last resourceVersion, missing nothing.
    api.dropWatches();
    api.apply(node('node-e'));
    await api.waitFor('add after the watch was dropped', () => added.includes('node-e'));
    // Changes missed while the history was compacted: the resumed watch gets 410, the informer lists again.
    api.dropWatches();
    api.apply(node('node-f'));
    api.compactHistory();
    await api.waitFor('add after a 410 and a new list', () => added.includes('node-f'));
    assert.equal(lists() - listsBefore, 2, 'listed at the start and after the 410 only');
  });

  it('a watch from an old resourceVersion replays the changes after it, filtered by selectors', async () => {
    const from = api.resourceVersion;
    const cm = (name: string, labels: Record<string, string>, v: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'replay', labels },
      data: { v },
    });
    api.apply(cm('one', { app: 'x' }, '1'));
    api.apply(cm('two', { app: 'y' }, '1'));
    api.apply(cm('one', { app: 'x' }, '2'));
    api.apply(cm('two', { app: 'x' }, '2')); // enters the selector: ADDED for this watcher
    api.apply(cm('one', { app: 'y' }, '3')); // leaves it: DELETED for this watcher
    api.remove('configmaps', 'replay', 'two');
    const all = await watch('/api/v1/namespaces/replay/configmaps', { resourceVersion: from });
    const selected = await watch('/api/v1/namespaces/replay/configmaps', {
      resourceVersion: from,
      labelSelector: 'app=x',
    });
    await api.waitFor('replay', () => all.seen.length === 6 && selected.seen.length === 5);
    assert.deepEqual(
      all.seen.map((e) => `${e.type} ${e.name ?? ''}`),
      ['ADDED one', 'ADDED two', 'MODIFIED one', 'MODIFIED two', 'MODIFIED one', 'DELETED two'],
    );
    assert.deepEqual(
      selected.seen.map((e) => `${e.type} ${e.name ?? ''}`),
      ['ADDED one', 'MODIFIED one', 'ADDED two', 'DELETED one', 'DELETED two'],
    );
    const versions = all.seen.map((e) => Number(e.resourceVersion));
    assert.deepEqual(
      versions,
      [...versions].sort((a, b) => a - b),
    );
    // Without a resourceVersion: ADDED for what exists now.
    api.apply(cm('three', { app: 'z' }, '1'));
    const now = await watch('/api/v1/namespaces/replay/configmaps', {});
    await api.waitFor('initial events', () => now.seen.length === 2);
    assert.deepEqual(
      now.seen.map((e) => `${e.type} ${e.name ?? ''}`),
      ['ADDED one', 'ADDED three'],
    );
  });

  it('a watch from a resourceVersion older than the kept history gets an ERROR event with a 410 Status', async () => {
    const small = await new FakeKubeApi({ historyLimit: 3 }).start();
    stops.push(() => small.stop());
    const client = await loadKubeClient(small.writeKubeconfig(dir));
    const first = small.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'n' },
    });
    for (let i = 0; i < 4; i++) {
      small.apply({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'c', namespace: 'n' },
        data: { i: `${i}` },
      });
    }
    const seen: { type: string; object: { code?: number; reason?: string; kind?: string } }[] = [];
    let ended = false;
    const controller = await new client.k8s.Watch(client.config).watch(
      '/api/v1/namespaces/n/configmaps',
      { resourceVersion: first.metadata.resourceVersion },
      (type: string, object: { code?: number; reason?: string; kind?: string }) =>
        seen.push({ type, object }),
      () => {
        ended = true;
      },
    );
    stops.push(() => controller.abort());
    await small.waitFor('410 and the end of the stream', () => ended);
    const [event, ...more] = seen;
    assert.ok(event && more.length === 0, 'one event');
    assert.deepEqual(
      [event.type, event.object.kind, event.object.code, event.object.reason],
      ['ERROR', 'Status', 410, 'Expired'],
    );
    // The newest three changes are still there.
    const recent = await new Promise<string[]>((resolve, reject) => {
      const types: string[] = [];
      new client.k8s.Watch(client.config)
        .watch(
          '/api/v1/namespaces/n/configmaps',
          { resourceVersion: String(Number(small.resourceVersion) - 3), timeoutSeconds: '1' },
          (type: string) => types.push(type),
          () => resolve(types),
        )
        .catch(reject);
    });
    assert.deepEqual(recent, ['MODIFIED', 'MODIFIED', 'MODIFIED']);
  });

  it('Events: CoreV1Api.createNamespacedEvent, found by involvedObject; events.k8s.io too', async () => {
    const created = await core.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: { name: 'node-a.17f0c0ffee', namespace: 'default' },
        involvedObject: { kind: 'Node', name: 'node-a', uid: 'node-a' },
        reason: 'Synced',
        message: 'Node synced successfully',
        type: 'Normal',
        source: { component: 'cloud-node-controller' },
        firstTimestamp: new Date(),
        lastTimestamp: new Date(),
        count: 1,
      },
    });
    assert.equal(created.reason, 'Synced');
    const found = await core.listNamespacedEvent({
      namespace: 'default',
      fieldSelector: 'involvedObject.name=node-a,involvedObject.kind=Node',
    });
    assert.deepEqual(
      found.items.map((e) => e.message),
      ['Node synced successfully'],
    );
    const events = config.makeApiClient(mod.EventsV1Api);
    await events.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: { generateName: 'web.' },
        eventTime: new Date(),
        regarding: { kind: 'Service', name: 'web', namespace: 'default' },
        reason: 'EnsuringLoadBalancer',
        action: 'Ensuring',
        reportingController: 'service-controller',
        reportingInstance: 'ccm-1',
        type: 'Normal',
      },
    });
    assert.equal(api.list('events.events.k8s.io', 'default').length, 1);
    assert.equal(
      api.list('events', 'default').length,
      1,
      'core/v1 and events.k8s.io events are stored apart',
    );
  });

  it('Leases through CoordinationV1Api, reflected in the leases map', async () => {
    const coordination = config.makeApiClient(mod.CoordinationV1Api);
    const lease = await coordination.createNamespacedLease({
      namespace: 'kube-system',
      body: {
        metadata: { name: 'cloud-controller-manager', labels: { app: 'ccm' } },
        spec: { holderIdentity: 'ccm-1', leaseDurationSeconds: 15, renewTime: new mod.V1MicroTime() },
      },
    });
    assert.equal(api.leases.get('kube-system/cloud-controller-manager')?.spec.holderIdentity, 'ccm-1');
    const renewed = await coordination.replaceNamespacedLease({
      namespace: 'kube-system',
      name: 'cloud-controller-manager',
      body: { ...lease, spec: { ...lease.spec, renewTime: new mod.V1MicroTime(Date.now() + 1000) } },
    });
    assert.equal(
      (
        await failure(
          coordination.replaceNamespacedLease({
            namespace: 'kube-system',
            name: 'cloud-controller-manager',
            body: { ...lease, spec: { ...lease.spec, holderIdentity: 'ccm-2' } },
          }),
        )
      ).code,
      409,
    );
    assert.equal(
      api.leases.get('kube-system/cloud-controller-manager')?.metadata.resourceVersion,
      renewed.metadata?.resourceVersion,
    );
    api.putLease('kube-system', 'other', { app: 'ccm' }, 30);
    const listed = await coordination.listNamespacedLease({
      namespace: 'kube-system',
      labelSelector: 'app=ccm',
    });
    assert.deepEqual(
      listed.items.map((l) => l.metadata?.name),
      ['cloud-controller-manager', 'other'],
    );
    await coordination.deleteNamespacedLease({ namespace: 'kube-system', name: 'cloud-controller-manager' });
    assert.equal(api.leases.has('kube-system/cloud-controller-manager'), false);
  });

  it('TokenReview returns the token extra fields', async () => {
    api.tokens.set('node-token', {
      user: 'system:serviceaccount:kube-system:konnectivity-agent',
      audiences: ['system:konnectivity-server'],
      extra: { 'authentication.kubernetes.io/node-name': ['node-a'] },
    });
    const auth = config.makeApiClient(mod.AuthenticationV1Api);
    const review = await auth.createTokenReview({
      body: { spec: { token: 'node-token', audiences: ['system:konnectivity-server'] } },
    });
    assert.equal(review.status?.authenticated, true);
    assert.deepEqual(review.status.user?.extra, { 'authentication.kubernetes.io/node-name': ['node-a'] });
  });

  it('test helpers: failNext, onRequest, apply/get/list/delete', async () => {
    api.failNext('PATCH', '/api/v1/nodes/node-a/status', 500, 2);
    const patch = () =>
      core.patchNodeStatus(
        { name: 'node-a', body: { status: { phase: 'Running' } } },
        patchAs(mod, 'StrategicMergePatch'),
      );
    assert.deepEqual(await failure(patch()), {
      code: 500,
      reason: 'InternalError',
      message: 'injected failure (500)',
    });
    assert.equal((await failure(patch())).code, 500);
    assert.equal((await patch()).status?.phase, 'Running');

    const remove = api.onRequest((req) =>
      req.method === 'GET' && req.path === '/api/v1/nodes/node-c' ? { status: 429 } : undefined,
    );
    assert.deepEqual((await failure(core.readNode({ name: 'node-c' }))).reason, 'TooManyRequests');
    remove();
    assert.equal((await core.readNode({ name: 'node-c' })).metadata?.name, 'node-c');

    const svc = api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'seeded', namespace: 'default', finalizers: ['x/y'] },
      spec: { type: 'LoadBalancer' },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } },
    });
    const read = await core.readNamespacedService({ namespace: 'default', name: 'seeded' });
    assert.equal(read.status?.loadBalancer?.ingress?.[0]?.ip, '192.0.2.1');
    assert.equal(read.metadata?.uid, svc.metadata.uid);
    assert.equal(api.delete('services', 'default', 'seeded'), true);
    const held: KubeObject | undefined = api.get('services', 'default', 'seeded');
    assert.ok(held?.metadata.deletionTimestamp);
    assert.equal(api.remove('services', 'default', 'seeded'), true);
    assert.equal(api.get('services', 'default', 'seeded'), undefined);
    assert.equal(api.get('nodes', 'node-a')?.kind, 'Node');
    assert.throws(() => api.get('services', 'web'), /services is namespaced/);
    assert.throws(() => api.get('widgets', 'x'), /unknown resource "widgets"/);
    assert.deepEqual(
      api
        .changes('services')
        .slice(-2)
        .map((c) => c.type),
      ['MODIFIED', 'DELETED'],
    );
  });
});
