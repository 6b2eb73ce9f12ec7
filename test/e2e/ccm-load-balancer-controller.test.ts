// The service controller against the `fake` provider (failures on demand), as a real
// konnectivity-ccm process and the fake Kubernetes API: retries with per-key backoff after
// provider failures, the Events upstream writes, node set changes, and cleanup when a Service
// stops being of type LoadBalancer.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCcm, type CcmInfo } from '../support/ccm.js';
import { FakeKubeApi, type KubeObject } from '../support/fake-kube-api.js';
import { httpGet } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const FINALIZER = 'service.kubernetes.io/load-balancer-cleanup';
const INGRESS_IP = '192.0.2.10';

interface ServiceShape {
  metadata: { name: string; finalizers?: string[] };
  spec: { type: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

function nodeObject(name: string, o: { ready?: boolean; unschedulable?: boolean } = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: { unschedulable: o.unschedulable ?? false },
    status: {
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
      addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
    },
  };
}

function serviceObject(name: string, type = 'LoadBalancer'): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { type, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] },
  };
}

describe('konnectivity-ccm service controller (fake provider)', () => {
  let dir: string;
  let api: FakeKubeApi;
  let ccm: CcmInfo;
  let cloudConfig: string;

  const svc = (name: string) => api.get('services', 'default', name) as ServiceShape | undefined;
  const events = (name: string, reason: string): KubeObject[] =>
    api.list('events').filter((e) => {
      const ev = e as unknown as { reason?: string; involvedObject?: { kind?: string; name?: string } };
      return ev.reason === reason && ev.involvedObject?.kind === 'Service' && ev.involvedObject.name === name;
    });
  const calls = async (method: string, result: 'ok' | 'error'): Promise<number> => {
    const { body } = await httpGet(ccm.port, '/metrics');
    const line = body
      .split('\n')
      .find(
        (l) =>
          l.startsWith('konnectivity_ccm_cloud_provider_calls_total{') &&
          l.includes(`method="${method}"`) &&
          l.includes(`result="${result}"`),
      );
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knp-ccm-svc-'));
    api = await new FakeKubeApi().start();
    cloudConfig = join(dir, 'fake-cloud.yaml');
    writeFileSync(
      cloudConfig,
      ['failures:', '  ensureLoadBalancer: 2', 'loadBalancer:', `  ingressIP: ${INGRESS_IP}`].join('\n'),
    );
    api.apply(nodeObject('node-1'));
    ccm = await startCcm([
      `--kubeconfig=${api.writeKubeconfig(dir)}`,
      '--cloud-provider=fake',
      `--cloud-config=${cloudConfig}`,
      '--leader-elect=false',
      '--controllers=service',
    ]);
  });
  after(async () => {
    await ccm.proc.kill();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('retries a failing ensure with backoff, a SyncLoadBalancerFailed Event each time, until it works', async () => {
    api.apply(serviceObject('web'));
    await waitFor(
      'web has its ingress',
      () => svc('web')?.status?.loadBalancer?.ingress?.[0]?.ip === INGRESS_IP,
    );
    assert.deepEqual(svc('web')?.metadata.finalizers, [FINALIZER]);
    assert.equal(await calls('ensureLoadBalancer', 'error'), 2);
    assert.equal(await calls('ensureLoadBalancer', 'ok'), 1);
    const failed = events('web', 'SyncLoadBalancerFailed').map((e) => (e as { message?: string }).message);
    assert.equal(failed.length, 2);
    assert.match(failed[0] ?? '', /^Error syncing load balancer: failed to ensure load balancer: fake cloud/);
    await waitFor('EnsuredLoadBalancer', () => events('web', 'EnsuredLoadBalancer').length > 0);
    // The finalizer went on before the first ensure: no status was ever written without it.
    const patches = api.requests.filter((r) => r.method === 'PATCH').map((r) => r.path);
    assert.equal(patches[0], '/api/v1/namespaces/default/services/web');
  });

  it('updates the load balancer when the eligible nodes change, and warns when none is left', async () => {
    const before = await calls('updateLoadBalancer', 'ok');
    api.apply(nodeObject('node-2'));
    await waitFor('an update for node-2', async () => (await calls('updateLoadBalancer', 'ok')) > before);
    await waitFor('UpdatedLoadBalancer', () => events('web', 'UpdatedLoadBalancer').length > 0);
    api.apply(nodeObject('node-1', { ready: false }));
    api.apply(nodeObject('node-2', { unschedulable: true }));
    await waitFor('UnAvailableLoadBalancer', () => events('web', 'UnAvailableLoadBalancer').length > 0);
    api.apply(nodeObject('node-1'));
  });

  it('deletes the load balancer and removes the finalizer when the Service is no longer of type LoadBalancer', async () => {
    const current = svc('web');
    assert.ok(current);
    current.spec.type = 'ClusterIP';
    api.apply(current);
    await waitFor('finalizer removed', () => (svc('web')?.metadata.finalizers ?? []).length === 0);
    await waitFor('status cleared', () => svc('web')?.status?.loadBalancer?.ingress === undefined);
    await waitFor('DeletedLoadBalancer', () => events('web', 'DeletedLoadBalancer').length > 0);
    assert.equal(events('web', 'DeletingLoadBalancer').length, 1);
    assert.equal(await calls('ensureLoadBalancerDeleted', 'ok'), 1);
  });
});
