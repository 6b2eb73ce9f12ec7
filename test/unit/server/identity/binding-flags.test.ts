// The identity binding flags, and what token authentication reads for it from a TokenReview.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenAuthenticator, type ReviewOutcome } from '../../../../common/kube/token-review.js';
import { testPki } from '../../../support/pki.js';
import { serverConfigWith } from '../../../support/server-config.js';

async function config(args: string[]) {
  const { files } = await testPki();
  return serverConfigWith(files, args);
}

const TOKEN_AUTH = [
  '--agent-namespace=kube-system',
  '--agent-service-account=konnectivity-agent',
  '--authentication-audience=system:konnectivity-server',
];

describe('identity binding flags', () => {
  it('default to enforce where the node is known, no node from certificates, no listed account', async () => {
    const c = await config([]);
    assert.deepEqual(c.identityBinding, { mode: 'auto', nodeFromCert: 'off', anyIdentifierAccounts: [] });
  });

  it('take enforce, warn and off, and cn or san-dns with a client CA', async () => {
    const { files } = await testPki();
    for (const mode of ['enforce', 'warn', 'off'] as const) {
      assert.equal((await config([`--agent-identity-binding=${mode}`])).identityBinding?.mode, mode);
    }
    const c = await config(['--agent-node-from-cert=san-dns', `--cluster-ca-cert=${files.ca}`]);
    assert.equal(c.identityBinding?.nodeFromCert, 'san-dns');
  });

  it('refuse bad values, naming the flag', async () => {
    await assert.rejects(
      config(['--agent-identity-binding=strict']),
      /--agent-identity-binding must be enforce, warn or off/,
    );
    await assert.rejects(
      config(['--agent-node-from-cert=subject']),
      /--agent-node-from-cert must be cn, san-dns or off/,
    );
    await assert.rejects(
      config(['--agent-node-from-cert=cn']),
      /--agent-node-from-cert=cn .* needs --cluster-ca-cert/,
    );
    await assert.rejects(
      config(['--agents-allowed-any-identifier=kube-system/gateway']),
      /--agents-allowed-any-identifier names service accounts: it needs agent token authentication/,
    );
    await assert.rejects(
      config([...TOKEN_AUTH, '--agents-allowed-any-identifier=gateway']),
      /"gateway" is not <namespace>\/<serviceaccount>/,
    );
    await assert.rejects(
      config([...TOKEN_AUTH, '--agents-allowed-any-identifier=Kube_System/gateway']),
      /"Kube_System" in "Kube_System\/gateway" is not a namespace name/,
    );
  });

  it('admit the listed accounts to token authentication as well', async () => {
    const c = await config([
      ...TOKEN_AUTH,
      '--agents-allowed-any-identifier=kube-system/gateway,infra/egress,kube-system/gateway',
    ]);
    assert.deepEqual(c.identityBinding?.anyIdentifierAccounts, ['kube-system/gateway', 'infra/egress']);
    assert.deepEqual(c.agentAuth?.policy.alsoAdmitted, ['kube-system/gateway', 'infra/egress']);
  });
});

describe('token authentication for identity binding', () => {
  const policy = { namespace: 'kube-system', serviceAccount: 'konnectivity-agent', audience: 'aud' };
  const review = (user: string, extra?: Record<string, string[]>) => {
    let calls = 0;
    const reviewer = (): Promise<ReviewOutcome> => {
      calls++;
      return Promise.resolve({ authenticated: true, user, audiences: ['aud'], error: '', extra });
    };
    return { reviewer, calls: () => calls };
  };

  it("reads the pod-bound token's node from status.user.extra, and keeps it in the cache", async () => {
    const r = review('system:serviceaccount:kube-system:konnectivity-agent', {
      'authentication.kubernetes.io/node-name': ['node-a'],
      'authentication.kubernetes.io/node-uid': ['uid-a'],
      'authentication.kubernetes.io/pod-name': ['konnectivity-agent-x1'],
      'authentication.kubernetes.io/pod-uid': ['uid-p'],
    });
    const auth = new TokenAuthenticator(r.reviewer, policy);
    const expected = {
      ok: true,
      user: 'system:serviceaccount:kube-system:konnectivity-agent',
      serviceAccount: 'kube-system/konnectivity-agent',
      node: { name: 'node-a', uid: 'uid-a', podName: 'konnectivity-agent-x1', podUID: 'uid-p' },
    };
    assert.deepEqual(await auth.authenticate('Bearer t1'), expected);
    assert.deepEqual(await auth.authenticate('Bearer t1'), expected);
    assert.equal(r.calls(), 1);
  });

  it('has no node for a token without node info', async () => {
    const auth = new TokenAuthenticator(
      review('system:serviceaccount:kube-system:konnectivity-agent').reviewer,
      policy,
    );
    const result = await auth.authenticate('Bearer t2');
    assert.ok(result.ok);
    assert.equal(result.node, undefined);
  });

  it('admits a listed account besides the agent account, and still refuses others', async () => {
    const listed = { ...policy, alsoAdmitted: ['kube-system/gateway'] };
    const gw = new TokenAuthenticator(review('system:serviceaccount:kube-system:gateway').reviewer, listed);
    assert.equal((await gw.authenticate('Bearer t3')).ok, true);
    const other = new TokenAuthenticator(
      review('system:serviceaccount:kube-system:default').reviewer,
      listed,
    );
    const refused = await other.authenticate('Bearer t4');
    assert.ok(!refused.ok);
    assert.equal(
      refused.reason,
      'service account "default" is not "konnectivity-agent" (nor one of kube-system/gateway)',
    );
  });
});
