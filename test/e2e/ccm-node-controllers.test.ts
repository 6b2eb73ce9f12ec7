// The cloud-node and cloud-node-lifecycle controllers of konnectivity-ccm, end to end: a real
// proxy-server (gRPC on a Unix socket, admin port for /agents), real agents that name their
// node with --agent-identifiers, the fake Kubernetes API with Nodes, and the CCM as a real
// process with the `konnectivity` provider (its kubelet probes through the tunnel) or the
// `fake` provider (failures on demand).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startCcm,
  writeGrpcUdsEgressConfig,
  writeKonnectivityCloudConfig,
  type CcmInfo,
} from '../support/ccm.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { FakeKubeApi, type KubeObject } from '../support/fake-kube-api.js';
import { httpGet, type Proc } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const UNINITIALIZED = 'node.cloudprovider.kubernetes.io/uninitialized';
const SHUTDOWN = 'node.cloudprovider.kubernetes.io/shutdown';

interface Taint {
  key: string;
  value?: string;
  effect: string;
}
interface NodeShape {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { providerID?: string; taints?: Taint[] };
  status?: { addresses?: { type: string; address: string }[] };
}

function nodeObject(
  name: string,
  o: {
    ready: boolean;
    taints?: Taint[];
    labels?: Record<string, string>;
    addresses?: { type: string; address: string }[];
  },
): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...o.labels } },
    spec: { taints: o.taints ?? [] },
    status: {
      conditions: [
        {
          type: 'Ready',
          status: o.ready ? 'True' : 'False',
          reason: o.ready ? 'KubeletReady' : 'KubeletNotReady',
        },
      ],
      addresses: o.addresses ?? [{ type: 'Hostname', address: name }],
    },
  };
}

/** The fields of a stored Node these tests read. */
function shape(o: KubeObject | undefined): NodeShape | undefined {
  return o;
}
const taintKeys = (n: NodeShape | undefined): string[] => (n?.spec?.taints ?? []).map((t) => t.key);

/** A loopback TCP port nothing listens on (bound, read back, closed). */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** konnectivity_ccm_cloud_provider_calls_total for one method and result (0 before the first). */
async function providerCalls(ccm: CcmInfo, method: string, result: 'ok' | 'error'): Promise<number> {
  const { body } = await httpGet(ccm.port, '/metrics');
  for (const line of body.split('\n')) {
    if (!line.startsWith('konnectivity_ccm_cloud_provider_calls_total{')) continue;
    if (line.includes(`method="${method}"`) && line.includes(`result="${result}"`)) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

/** The hosts the proxy-server's /agents lists. */
async function listedHosts(cluster: Cluster): Promise<string[]> {
  const { body } = await httpGet(cluster.server.adminPort, '/agents');
  const listing = JSON.parse(body) as { agents: { identifiers: { hosts: string[] } }[] };
  return listing.agents.flatMap((a) => a.identifiers.hosts).sort();
}

function eventsFor(api: FakeKubeApi, node: string, reason: string): KubeObject[] {
  return api.list('events').filter((e) => {
    const ev = e as unknown as { reason?: string; involvedObject?: { kind?: string; name?: string } };
    return ev.reason === reason && ev.involvedObject?.kind === 'Node' && ev.involvedObject.name === node;
  });
}

describe('konnectivity-ccm node controllers', () => {
  let dir: string;
  let cluster: Cluster;
  let egressFile: string;
  let kubeletPort: number;
  const agents = new Map<string, Proc>();

  const startAgent = async (node: string, ipv4 = '127.0.0.1'): Promise<void> => {
    agents.set(
      node,
      await cluster.startAgent([
        `--agent-id=agent-${node}`,
        `--agent-identifiers=host=${node}&ipv4=${ipv4}`,
        // SIGTERM drains, then exits once idle this long (the default waits seconds).
        '--drain-idle-grace=200ms',
      ]),
    );
    await waitFor(`${node} listed in /agents`, async () => (await listedHosts(cluster)).includes(node));
  };
  const stopAgent = async (node: string): Promise<void> => {
    await agents.get(node)?.kill('SIGTERM');
    await waitFor(`${node} gone from /agents`, async () => !(await listedHosts(cluster)).includes(node));
  };

  /**
   * A fake API, a konnectivity cloud-config with these extra lines (servers: the proxy-server's
   * admin URL unless given), and a CCM leading at once.
   */
  const startStack = async (
    name: string,
    cloudConfig: string[],
    options: { ccmArgs?: string[]; servers?: string[] } = {},
  ): Promise<{ api: FakeKubeApi; ccm: CcmInfo; stop: () => Promise<void> }> => {
    const servers = options.servers ?? [`http://127.0.0.1:${cluster.server.adminPort}`];
    const api = await new FakeKubeApi().start();
    const configFile = writeKonnectivityCloudConfig(
      dir,
      {
        servers,
        egressFile,
        extra: [
          'egressSelection: cluster',
          `kubeletPort: ${kubeletPort}`,
          'agentCacheTTL: 100ms',
          ...cloudConfig,
        ],
      },
      `${name}-cloud.yaml`,
    );
    let ccm: CcmInfo;
    try {
      ccm = await startCcm([
        `--kubeconfig=${api.writeKubeconfig(dir)}`,
        '--cloud-provider=konnectivity',
        `--cloud-config=${configFile}`,
        '--leader-elect=false',
        '--controllers=cloud-node,cloud-node-lifecycle',
        '--node-monitor-period=200ms',
        ...(options.ccmArgs ?? []),
      ]);
    } catch (err) {
      await api.stop();
      throw err;
    }
    return {
      api,
      ccm,
      async stop() {
        await ccm.proc.kill();
        await api.stop();
      },
    };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knp-ccm-nodes-'));
    cluster = await startCluster('grpc', 'uds', { agents: 0 });
    egressFile = writeGrpcUdsEgressConfig(dir, cluster.frontend.uds ?? '');
    kubeletPort = await deadPort();
    // node-a's agent stays up throughout: the kubelet probes of other nodes go through it.
    await startAgent('node-a');
  });
  after(async () => {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('with the konnectivity provider', () => {
    let api: FakeKubeApi;
    let ccm: CcmInfo;
    let stop: () => Promise<void>;
    before(async () => {
      // A second proxy-server that does not answer: skipped, the one that does is enough.
      const servers = [
        `http://127.0.0.1:${cluster.server.adminPort}`,
        `http://127.0.0.1:${await deadPort()}`,
      ];
      ({ api, ccm, stop } = await startStack('main', ['shutdownGrace: 1s'], { servers }));
    });
    after(() => stop());

    it('initialises a Node its agent names, in one patch of the Node and one of its status', async () => {
      api.apply(
        nodeObject('node-a', {
          ready: true,
          labels: { 'topology.kubernetes.io/zone': 'zone-1', 'topology.kubernetes.io/region': 'region-1' },
          taints: [
            { key: UNINITIALIZED, value: 'true', effect: 'NoSchedule' },
            { key: 'example.com/dedicated', value: 'ccm', effect: 'NoSchedule' },
          ],
        }),
      );
      const node = await waitFor('node-a initialised', () => {
        const n = shape(api.get('nodes', 'node-a'));
        return n && !taintKeys(n).includes(UNINITIALIZED) && (n.status?.addresses?.length ?? 0) > 1
          ? n
          : undefined;
      });
      const { spec } = node;
      assert.equal(spec?.providerID, 'konnectivity://node-a');
      // Another's taint survives the removal of ours.
      assert.deepEqual(spec.taints, [{ key: 'example.com/dedicated', value: 'ccm', effect: 'NoSchedule' }]);
      assert.deepEqual(node.status?.addresses, [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: 'node-a' },
      ]);
      assert.deepEqual(node.metadata.labels, {
        'kubernetes.io/hostname': 'node-a',
        'topology.kubernetes.io/zone': 'zone-1',
        'topology.kubernetes.io/region': 'region-1',
        'failure-domain.beta.kubernetes.io/zone': 'zone-1',
        'failure-domain.beta.kubernetes.io/region': 'region-1',
        'node.kubernetes.io/instance-type': 'konnectivity-agent',
        'beta.kubernetes.io/instance-type': 'konnectivity-agent',
      });
      await waitFor('the Synced event', () => eventsFor(api, 'node-a', 'Synced').length > 0);
      const skipped = ccm.proc.lines.filter(
        (l) => l.msg === 'proxy-server does not answer GET /agents; skipped',
      );
      assert.equal(skipped.length, 1, 'the silent server is logged once, not per listing');
      const writes = api.requests.filter(
        (r) => r.method !== 'GET' && r.path.startsWith('/api/v1/nodes/node-a'),
      );
      assert.deepEqual(
        writes.map((r) => `${r.method} ${r.path}`),
        ['PATCH /api/v1/nodes/node-a', 'PATCH /api/v1/nodes/node-a/status'],
      );
    });

    it('taints a NotReady Node shut down once its agent is gone and its kubelet does not answer through the tunnel', async () => {
      await startAgent('node-b');
      api.apply(
        nodeObject('node-b', {
          ready: false,
          addresses: [
            { type: 'InternalIP', address: '127.0.0.1' },
            { type: 'Hostname', address: 'node-b' },
          ],
        }),
      );
      // The lifecycle controller has looked at node-b with its agent up, and left it alone.
      const before = await providerCalls(ccm, 'instanceShutdown', 'ok');
      await waitFor(
        'two more instanceShutdown calls',
        async () => (await providerCalls(ccm, 'instanceShutdown', 'ok')) >= before + 2,
      );
      assert.ok(!taintKeys(shape(api.get('nodes', 'node-b'))).includes(SHUTDOWN));

      await stopAgent('node-b');
      const node = await waitFor('node-b tainted shut down', () => {
        const n = shape(api.get('nodes', 'node-b'));
        return n?.spec?.taints?.some((t) => t.key === SHUTDOWN) ? n : undefined;
      });
      assert.deepEqual(node.spec?.taints, [{ key: SHUTDOWN, effect: 'NoSchedule' }]);
      // The probe went through the tunnel: the proxy-server saw the dial to the kubelet port.
      const probes = cluster.server.proc.lines.filter(
        (l) => l.audit === 'dial' && l.address === `127.0.0.1:${kubeletPort}`,
      );
      assert.ok(probes.length > 0, 'no kubelet dial in the proxy-server audit trail');
      assert.ok(probes.every((l) => l.result !== 'ok'));
      assert.ok(api.get('nodes', 'node-b'), 'deleted although nodeDeletionGrace is 0');
    });

    it('removes the shutdown taint when the agent is back', async () => {
      await startAgent('node-b');
      await waitFor('node-b without the shutdown taint', () => {
        const n = shape(api.get('nodes', 'node-b'));
        return n && !taintKeys(n).includes(SHUTDOWN);
      });
    });

    it('removes the shutdown taint from a Ready Node', async () => {
      api.apply(nodeObject('node-ready', { ready: true, taints: [{ key: SHUTDOWN, effect: 'NoSchedule' }] }));
      await waitFor('node-ready without the shutdown taint', () => {
        const n = shape(api.get('nodes', 'node-ready'));
        return n && !taintKeys(n).includes(SHUTDOWN);
      });
    });
  });

  describe('with nodeDeletionGrace and a short --node-status-update-frequency', () => {
    let api: FakeKubeApi;
    let ccm: CcmInfo;
    let stop: () => Promise<void>;
    before(async () => {
      ({ api, ccm, stop } = await startStack('grace', ['nodeDeletionGrace: 1s', 'shutdownGrace: 1m'], {
        ccmArgs: ['--node-status-update-frequency=300ms'],
      }));
    });
    after(() => stop());

    it('deletes a NotReady Node whose agent has been gone longer than nodeDeletionGrace', async () => {
      await startAgent('node-c');
      api.apply(nodeObject('node-c', { ready: false }));
      const before = await providerCalls(ccm, 'instanceExists', 'ok');
      await waitFor(
        'two more instanceExists calls',
        async () => (await providerCalls(ccm, 'instanceExists', 'ok')) >= before + 2,
      );
      assert.ok(api.get('nodes', 'node-c'), 'deleted while its agent is connected');

      await stopAgent('node-c');
      await waitFor('node-c deleted', () => api.get('nodes', 'node-c') === undefined);
      await waitFor('the DeletingNode event', () => eventsFor(api, 'node-c', 'DeletingNode').length > 0);
    });

    it('refreshes the addresses of an initialised Node, and writes only when they change', async () => {
      await startAgent('node-r', '127.0.0.2');
      api.apply(
        nodeObject('node-r', {
          ready: true,
          addresses: [
            { type: 'InternalIP', address: '10.9.9.9' },
            { type: 'Hostname', address: 'node-r' },
          ],
        }),
      );
      await waitFor('node-r addresses refreshed', () => {
        const n = shape(api.get('nodes', 'node-r'));
        return n?.status?.addresses?.[0]?.address === '127.0.0.2' ? n : undefined;
      });
      assert.deepEqual(shape(api.get('nodes', 'node-r'))?.status?.addresses, [
        { type: 'InternalIP', address: '127.0.0.2' },
        { type: 'Hostname', address: 'node-r' },
      ]);
      const before = await providerCalls(ccm, 'instanceMetadata', 'ok');
      await waitFor(
        'three more refreshes',
        async () => (await providerCalls(ccm, 'instanceMetadata', 'ok')) >= before + 3,
      );
      assert.equal(api.count('PATCH', '/api/v1/nodes/node-r/status'), 1);
    });
  });

  describe('when no proxy-server answers', () => {
    let api: FakeKubeApi;
    let ccm: CcmInfo;
    let stop: () => Promise<void>;
    before(async () => {
      const servers = [`http://127.0.0.1:${await deadPort()}`];
      ({ api, ccm, stop } = await startStack('silent', ['nodeDeletionGrace: 1s', 'shutdownGrace: 1s'], {
        servers,
      }));
    });
    after(() => stop());

    it('reports errors, never an instance gone or shut down', async () => {
      api.apply(
        nodeObject('node-d', {
          ready: false,
          taints: [{ key: UNINITIALIZED, value: 'true', effect: 'NoSchedule' }],
        }),
      );
      // Ten failed looks at the node, 200 ms apart: well past both graces of 1 s.
      await waitFor(
        'ten failed instanceExists calls',
        async () => (await providerCalls(ccm, 'instanceExists', 'error')) >= 10,
      );
      const node = shape(api.get('nodes', 'node-d'));
      assert.ok(node, 'the Node was deleted');
      assert.deepEqual(taintKeys(node), [UNINITIALIZED]);
      assert.equal(await providerCalls(ccm, 'instanceExists', 'ok'), 0);
      assert.equal(await providerCalls(ccm, 'instanceShutdown', 'ok'), 0);
      assert.equal(await providerCalls(ccm, 'instanceMetadata', 'ok'), 0);
      assert.ok((await providerCalls(ccm, 'instanceMetadata', 'error')) > 0);
      await waitFor('a SyncFailed event naming the silent servers', () =>
        eventsFor(api, 'node-d', 'SyncFailed').find((e) =>
          String((e as { message?: string }).message).includes('no proxy-server answered GET /agents'),
        ),
      );
    });
  });

  describe('with a failing provider (fake)', () => {
    let api: FakeKubeApi;
    let ccm: CcmInfo;
    let configFile: string;
    const fakeConfig = (failures: number) =>
      [
        'instances:',
        '  node-f: { instanceType: fake-medium, addresses: [{ type: InternalIP, address: 10.0.0.6 }] }',
        '  node-g: { instanceType: fake-medium, addresses: [{ type: InternalIP, address: 10.0.0.7 }] }',
        'failures:',
        `  instanceMetadata: ${failures}`,
      ].join('\n');
    before(async () => {
      api = await new FakeKubeApi().start();
      configFile = join(dir, 'fake-cloud.yaml');
      writeFileSync(configFile, fakeConfig(3));
      ccm = await startCcm([
        `--kubeconfig=${api.writeKubeconfig(dir)}`,
        '--cloud-provider=fake',
        `--cloud-config=${configFile}`,
        '--leader-elect=false',
        '--controllers=cloud-node',
      ]);
    });
    after(async () => {
      await ccm.proc.kill();
      await api.stop();
    });

    it('keeps the taint while the provider fails and initialises the Node on the 4th call after 3 failures', async () => {
      api.apply(
        nodeObject('node-f', {
          ready: true,
          taints: [{ key: UNINITIALIZED, value: 'true', effect: 'NoSchedule' }],
        }),
      );
      await waitFor('node-f initialised', () => {
        const n = shape(api.get('nodes', 'node-f'));
        return n && !taintKeys(n).includes(UNINITIALIZED);
      });
      assert.equal(await providerCalls(ccm, 'instanceMetadata', 'error'), 3);
      assert.equal(await providerCalls(ccm, 'instanceMetadata', 'ok'), 1);
      const node = shape(api.get('nodes', 'node-f'));
      assert.equal(node?.metadata.labels?.['node.kubernetes.io/instance-type'], 'fake-medium');
      assert.equal(node.spec?.providerID, 'fake://node-f');
      // One Warning Event per failure (each message names its failure).
      await waitFor('three SyncFailed events', () => eventsFor(api, 'node-f', 'SyncFailed').length === 3);
    });

    it('backs off per Node while the provider keeps failing', async () => {
      writeFileSync(configFile, fakeConfig(-1));
      const before = await providerCalls(ccm, 'instanceMetadata', 'error');
      api.apply(
        nodeObject('node-g', {
          ready: true,
          taints: [{ key: UNINITIALIZED, value: 'true', effect: 'NoSchedule' }],
        }),
      );
      await waitFor(
        'the first failed call for node-g',
        async () => (await providerCalls(ccm, 'instanceMetadata', 'error')) > before,
      );
      // A fixed observation window, not a wait for a condition: what is measured is how many
      // calls the window holds. Per-key backoff doubling from 5 ms makes about ten in 3 s; a
      // retry loop without backoff would make hundreds.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const calls = (await providerCalls(ccm, 'instanceMetadata', 'error')) - before;
      assert.ok(calls >= 2 && calls < 20, `${calls} calls in 3 s`);
      assert.ok(taintKeys(shape(api.get('nodes', 'node-g'))).includes(UNINITIALIZED));
      assert.equal(
        api.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith('/api/v1/nodes/node-g')).length,
        0,
      );
    });
  });
});
