// konnectivity-ccm replicas contend for one coordination.k8s.io Lease, as upstream CCMs do:
// two real bin/konnectivity-ccm.js processes against the in-process fake Kubernetes API (real
// REST and watch protocol, the real client library). One leads, the other waits; a killed
// leader is replaced once its lease expires; a leader stopped with SIGTERM releases the lease
// and its standby takes over on its next attempt.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCcm, spawnCcm, type CcmInfo } from '../support/ccm.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { httpGet, metric } from '../support/processes.js';
import { waitFor, within } from '../support/wait.js';

const LEASE = 'kube-system/cloud-controller-manager';
const MASTER_STATUS = 'leader_election_master_status{name="cloud-controller-manager"}';
// Short times so that a takeover takes seconds: lease 2s > renew deadline 1.5s > 1.2 × retry 0.5s.
const LEASE_ARGS = [
  '--leader-elect-lease-duration=2s',
  '--leader-elect-renew-deadline=1500ms',
  '--leader-elect-retry-period=500ms',
];

describe('konnectivity-ccm leader election', () => {
  let api: FakeKubeApi;
  let dir: string;
  let kubeconfig: string;
  const running: CcmInfo[] = [];

  const holder = (): string | undefined => api.leases.get(LEASE)?.spec.holderIdentity;
  const transitions = (): number | undefined =>
    (api.leases.get(LEASE)?.spec as { leaseTransitions?: number } | undefined)?.leaseTransitions;
  const start = async (): Promise<CcmInfo> => {
    const ccm = await startCcm([`--kubeconfig=${kubeconfig}`, '--cloud-provider=fake', ...LEASE_ARGS]);
    running.push(ccm);
    return ccm;
  };
  const leaderOf = (candidates: CcmInfo[]): Promise<CcmInfo> =>
    waitFor('a leader', () => candidates.find((c) => c.identity === holder()));

  before(async () => {
    api = await new FakeKubeApi().start();
    dir = mkdtempSync(join(tmpdir(), 'knp-ccm-le-'));
    kubeconfig = api.writeKubeconfig(dir);
  });
  after(async () => {
    await Promise.all(running.map((c) => c.proc.kill()));
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  let leader: CcmInfo;
  let standby: CcmInfo;

  it('elects exactly one of two replicas; the other waits as a ready standby', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    leader = await leaderOf([a, b]);
    standby = leader === a ? b : a;
    await waitFor(
      'leader reports master status 1',
      async () => (await metric(leader.port, MASTER_STATUS)) === 1,
    );

    // Two renewals by the leader: the standby has tried meanwhile and must still be standing by.
    const renewals = new Set<string>();
    await waitFor('two renewals', () => {
      const lease = api.leases.get(LEASE);
      if (lease?.spec.holderIdentity === leader.identity && lease.spec.renewTime)
        renewals.add(lease.spec.renewTime);
      return renewals.size >= 3;
    });
    assert.equal(holder(), leader.identity);
    assert.equal(await metric(standby.port, MASTER_STATUS), 0);
    assert.equal(await metric(leader.port, MASTER_STATUS), 1);
    const lease = api.leases.get(LEASE);
    assert.equal(lease?.spec.leaseDurationSeconds, 2);
    assert.ok(standby.proc.find('waiting for the lease (standby)'), 'the standby says it is waiting');
    assert.equal(standby.proc.find('became leader'), undefined, 'the standby never led');

    for (const ccm of [leader, standby]) {
      const health = await httpGet(ccm.port, '/healthz');
      assert.equal(health.status, 200);
      const metrics = await httpGet(ccm.port, '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^leader_election_master_status\{name="cloud-controller-manager"\} [01]$/m);
    }
    // Ready: the leader once its Node and Service caches are filled, the standby as such.
    await waitFor('leader ready', async () => (await httpGet(leader.port, '/readyz')).status === 200);
    assert.equal((await httpGet(standby.port, '/readyz')).status, 200);
  });

  it('lets the standby take over once a SIGKILLed leader’s lease expires', async (t) => {
    const transitionsBefore = transitions() ?? 0;
    const killedAt = Date.now();
    await leader.proc.kill('SIGKILL');
    await waitFor('standby holds the lease', () => holder() === standby.identity, 30_000);
    t.diagnostic(`takeover ${Date.now() - killedAt} ms after SIGKILL (lease 2s, retry 0.5s)`);
    await waitFor(
      'new leader reports master status 1',
      async () => (await metric(standby.port, MASTER_STATUS)) === 1,
    );
    assert.equal(transitions(), transitionsBefore + 1);
    await standby.proc.waitLog('became leader');
    leader = standby;
    standby = await start();
    await waitFor('new replica waits as standby', () => standby.proc.find('waiting for the lease (standby)'));
  });

  it('releases the lease on SIGTERM so that the standby leads without waiting for expiry', async (t) => {
    const stoppedAt = Date.now();
    leader.proc.child.kill('SIGTERM');
    assert.equal(await within(leader.proc.exited, 20_000, 'leader exits'), 0);
    await waitFor('standby holds the lease', () => holder() === standby.identity, 30_000);
    t.diagnostic(`takeover ${Date.now() - stoppedAt} ms after SIGTERM`);
    // The release as client-go writes it: no holder and a 1 s lease.
    const released = api
      .changes('leases.coordination.k8s.io')
      .map((c) => c.object as { spec?: { holderIdentity?: string; leaseDurationSeconds?: number } })
      .find((o) => o.spec?.holderIdentity === '' && o.spec.leaseDurationSeconds === 1);
    assert.ok(released, 'the lease was released (holderIdentity "", leaseDurationSeconds 1)');
    assert.ok(leader.proc.find('lease released'));
    await waitFor(
      'standby reports master status 1',
      async () => (await metric(standby.port, MASTER_STATUS)) === 1,
    );
    leader = standby;
  });

  it('stops its controllers when it cannot renew, stays up as a standby, and leads again later', async () => {
    const lostBefore = leader.proc.lines.filter((l) => l.msg === 'leadership lost').length;
    // The API server refuses every request for the Lease: no renewal succeeds within the deadline.
    const unhook = api.onRequest((req) =>
      req.path.endsWith('/leases/cloud-controller-manager') ? { status: 503 } : undefined,
    );
    try {
      await waitFor(
        'leadership lost',
        () => leader.proc.lines.filter((l) => l.msg === 'leadership lost').length > lostBefore,
      );
      await leader.proc.waitLog('controllers stopped; campaigning again as a standby');
      assert.equal(await metric(leader.port, MASTER_STATUS), 0);
      assert.equal(leader.proc.child.exitCode, null, 'still running');
      assert.equal((await httpGet(leader.port, '/healthz')).status, 200);
    } finally {
      unhook();
    }
    await waitFor('leads again', async () => (await metric(leader.port, MASTER_STATUS)) === 1);
    assert.equal(holder(), leader.identity);
  });
});

describe('konnectivity-ccm command line', () => {
  it('--help lists the flags and exits 0', async () => {
    const p = spawnCcm(['--help']);
    assert.equal(await within(p.exited, 20_000, 'exit'), 0);
    assert.match(p.output(), /--leader-elect\b/);
    assert.match(p.output(), /--cloud-provider/);
  });

  it('exits 2 on an unknown flag', async () => {
    const p = spawnCcm(['--cloud-provider=fake', '--no-such-flag']);
    assert.equal(await within(p.exited, 20_000, 'exit'), 2);
    assert.match(p.stderr.join(''), /unknown flag: --no-such-flag/);
  });

  it('exits 2 on leader-election times client-go refuses', async () => {
    const p = spawnCcm([
      '--cloud-provider=fake',
      '--leader-elect-lease-duration=5s',
      '--leader-elect-renew-deadline=5s',
    ]);
    assert.equal(await within(p.exited, 20_000, 'exit'), 2);
    assert.match(
      p.stderr.join(''),
      /--leader-elect-lease-duration \(5s\) must be greater than --leader-elect-renew-deadline/,
    );
  });

  it('exits 2 on an unknown controller', async () => {
    const p = spawnCcm(['--cloud-provider=fake', '--controllers=*,-nodes']);
    assert.equal(await within(p.exited, 20_000, 'exit'), 2);
    assert.match(p.stderr.join(''), /"nodes" is not in the list of known controllers/);
  });

  it('exits 2 on an unknown provider, naming the registered ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knp-ccm-cli-'));
    try {
      const api = await new FakeKubeApi().start();
      try {
        const p = spawnCcm([`--kubeconfig=${api.writeKubeconfig(dir)}`, '--cloud-provider=aws']);
        assert.equal(await within(p.exited, 20_000, 'exit'), 2);
        const stderr = p.stderr.join('');
        assert.match(stderr, /--cloud-provider "aws" is not registered/);
        assert.match(stderr, /\bfake\b/);
        assert.match(stderr, /\bkonnectivity\b/);
      } finally {
        await api.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
