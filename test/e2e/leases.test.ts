// Lease-based server counting against an in-process fake Kubernetes API (real REST and watch
// protocol, real client library): the server publishes, renews and collects Leases; the agent
// follows the number of unexpired Leases up and down.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Cluster } from '../support/cluster.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { testPki } from '../support/pki.js';
import { metric, type Proc } from '../support/processes.js';
import { waitFor, within } from '../support/wait.js';

const LABELS = { 'k8s-app': 'konnectivity-server' };
const NS = 'kube-system';

describe('server lease controller', () => {
  let api: FakeKubeApi;
  let cluster: Cluster;
  before(async () => {
    api = await new FakeKubeApi().start();
    api.putLease(NS, 'konnectivity-proxy-server-gone', LABELS, 30, 100);
    api.putLease(NS, 'someone-else', { app: 'other' }, 30, 100);
    const kubeconfig = api.writeKubeconfig((await testPki()).dir, `kubeconfig-server-${process.pid}`);
    cluster = await startCluster('grpc', 'uds', {
      agents: 0,
      serverArgs: [
        '--server-id=lease-server',
        '--enable-lease-controller',
        `--kubeconfig=${kubeconfig}`,
        '--lease-duration=2s',
        '--lease-renew-interval=200ms',
      ],
    });
  });
  after(async () => {
    await cluster.stop();
    await api.stop();
  });

  it('publishes its Lease with the labels and keeps renewing it', async () => {
    const key = `${NS}/konnectivity-proxy-server-lease-server`;
    const first = await waitFor('lease created', () => api.leases.get(key));
    assert.deepEqual(first.metadata.labels, LABELS);
    assert.equal(first.spec.holderIdentity, 'lease-server');
    assert.equal(first.spec.leaseDurationSeconds, 2);
    const firstRenew = Date.parse(first.spec.renewTime ?? '');
    await waitFor('lease renewed', () => {
      const now = api.leases.get(key);
      return now && Date.parse(now.spec.renewTime ?? '') > firstRenew ? true : undefined;
    });
  });

  it('deletes expired Leases with its labels, and only those', async () => {
    await waitFor(
      'expired lease collected',
      () => !api.leases.has(`${NS}/konnectivity-proxy-server-gone`) || undefined,
    );
    assert.ok(api.leases.has(`${NS}/someone-else`), 'a lease with other labels is left alone');
    assert.equal(
      await metric(cluster.server.adminPort, 'konnectivity_network_proxy_server_culled_leases_count'),
      1,
    );
  });

  it('deletes its own Lease on SIGTERM', async () => {
    cluster.server.proc.child.kill('SIGTERM');
    assert.equal(await within(cluster.server.proc.exited, 20_000, 'server exits'), 0);
    assert.equal(api.leases.has(`${NS}/konnectivity-proxy-server-lease-server`), false);
  });
});

describe('agent lease counting', () => {
  let api: FakeKubeApi;
  let cluster: Cluster;
  let agent: Proc;
  const known = () =>
    metric(
      agent.find('proxy-agent started')?.healthPort as number,
      'konnectivity_network_proxy_agent_known_server_count',
    );
  const leaseCount = () =>
    metric(
      agent.find('proxy-agent started')?.healthPort as number,
      'konnectivity_network_proxy_agent_server_lease_count',
    );
  const expect = (n: number) =>
    waitFor(
      `agent counts ${n} servers`,
      async () => ((await known()) === n && (await leaseCount()) === n) || undefined,
    );

  before(async () => {
    api = await new FakeKubeApi().start();
    for (const id of ['a', 'b', 'c']) api.putLease(NS, `konnectivity-proxy-server-${id}`, LABELS, 60);
    api.putLease(NS, 'konnectivity-proxy-server-stale', LABELS, 30, 100);
    api.putLease(NS, 'konnectivity-proxy-server-unlabelled', {}, 60);
    const kubeconfig = api.writeKubeconfig((await testPki()).dir, `kubeconfig-agent-${process.pid}`);
    cluster = await startCluster('grpc', 'uds', { agents: 0 });
    agent = await cluster.startAgent(['--count-server-leases', `--kubeconfig=${kubeconfig}`]);
  });
  after(async () => {
    await cluster.stop();
    await api.stop();
  });

  it('counts the unexpired, labelled Leases (above the serverCount header of 1)', async () => {
    await expect(3);
    await waitFor('connected to the one real server', () => agent.find('connected to proxy-server'));
  });

  it('follows Leases added and deleted', async () => {
    api.putLease(NS, 'konnectivity-proxy-server-d', LABELS, 60);
    await expect(4);
    api.deleteLease(NS, 'konnectivity-proxy-server-a');
    api.deleteLease(NS, 'konnectivity-proxy-server-b');
    await expect(2);
  });

  it('stops counting a Lease when it expires, without any event', async () => {
    api.putLease(NS, 'konnectivity-proxy-server-short', LABELS, 1);
    await expect(3);
    await expect(2);
  });

  it('falls back to the serverCount header when no Lease is left', async () => {
    for (const key of [...api.leases.keys()]) {
      const [ns = '', name = ''] = key.split('/');
      api.deleteLease(ns, name);
    }
    await waitFor(
      'header count',
      async () => ((await known()) === 1 && (await leaseCount()) === 0) || undefined,
    );
  });
});
