// The Node cache of identity binding: the real client library against the fake Kubernetes API.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadKubeClient, type KubeClient } from '../../../../common/kube/client.js';
import { createLogger } from '../../../../common/log.js';
import { NodeWatch, type NodeView } from '../../../../server/identity/node-watch.js';
import { FakeKubeApi } from '../../../support/fake-kube-api.js';
import { testPki } from '../../../support/pki.js';
import { waitFor } from '../../../support/wait.js';

const quiet = createLogger({ component: 'test', level: 'silent' });

function node(name: string, ip: string, labels: Record<string, string> = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: { podCIDRs: ['10.244.0.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  };
}

function addressesOf(view: NodeView): string[] | undefined {
  return view.state === 'found' ? view.facts.addresses : undefined;
}

describe('Node cache (list + watch, facts only)', () => {
  let api: FakeKubeApi;
  let kube: KubeClient;
  const watches: NodeWatch[] = [];

  const start = (): { watch: NodeWatch; changes: (string | undefined)[] } => {
    const watch = new NodeWatch(kube, quiet);
    watches.push(watch);
    const changes: (string | undefined)[] = [];
    watch.onChange((name) => changes.push(name));
    return { watch, changes };
  };

  before(async () => {
    api = await new FakeKubeApi().start();
    kube = await loadKubeClient(api.writeKubeconfig((await testPki()).dir, 'node-watch-kubeconfig'));
    api.apply(node('n1', '10.0.0.1'));
  });
  after(async () => {
    for (const w of watches) w.stop();
    await api.stop();
  });

  it('lists nothing until wanted, then syncs and follows adds, changes and deletes', async () => {
    const { watch, changes } = start();
    assert.deepEqual(watch.view('n1'), { state: 'syncing' });
    assert.equal(api.count('GET', '/api/v1/nodes'), 0, 'not listed before it is wanted');
    watch.want();
    await waitFor('synced', () => watch.view('n1').state === 'found');
    assert.deepEqual(addressesOf(watch.view('n1')), ['10.0.0.1']);
    assert.deepEqual(watch.view('n9'), { state: 'absent' });
    assert.deepEqual(changes, [undefined], 'a list: any Node may have changed');

    api.apply(node('n2', '10.0.0.2'));
    await waitFor('n2 added', () => watch.view('n2').state === 'found');
    api.apply(node('n1', '10.0.0.11'));
    await waitFor('n1 readdressed', () => addressesOf(watch.view('n1'))?.[0] === '10.0.0.11');
    api.apply(node('n1', '10.0.0.11', { quiet: 'change' }));
    api.remove('nodes', 'n2');
    await waitFor('n2 gone', () => watch.view('n2').state === 'absent');
    assert.deepEqual(changes, [undefined, 'n2', 'n1', 'n2'], 'a label change is not a change of facts');
  });

  it('relists when its watch can no longer resume (410 Gone)', async () => {
    const { watch, changes } = start();
    watch.want();
    await waitFor('synced', () => watch.view('n1').state === 'found');
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const unhook = api.onRequest(async (req) => {
      if (req.watch && req.path === '/api/v1/nodes') await held;
      return undefined;
    });
    api.dropWatches();
    await waitFor(
      'the re-watch held',
      () =>
        api.requests.filter((r) => r.path === '/api/v1/nodes' && /watch=/.test(r.query)).length >= 2 ||
        undefined,
    );
    api.apply(node('n1', '10.0.0.21'));
    api.compactHistory();
    unhook();
    release();
    await waitFor('relisted', () => addressesOf(watch.view('n1'))?.[0] === '10.0.0.21');
    assert.equal(changes.filter((c) => c === undefined).length, 2, 'two lists');
  });

  it('says Nodes are unavailable when the list is forbidden, and syncs once it is allowed', async () => {
    const forbid = api.onRequest((req) =>
      req.path === '/api/v1/nodes' && !req.watch ? { status: 403 } : undefined,
    );
    const { watch, changes } = start();
    watch.want();
    const refused = await waitFor('unavailable', () => {
      const v = watch.view('n1');
      return v.state === 'unavailable' ? v : undefined;
    });
    assert.match(refused.reason, /HTTP 403.*grant it get, list and watch on nodes/);
    assert.deepEqual(changes, [undefined]);
    forbid();
    await waitFor('synced after the retry', () => watch.view('n1').state === 'found');
    assert.deepEqual(changes, [undefined, undefined]);
  });
});
