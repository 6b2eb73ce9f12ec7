// Drop-in for upstream manifests: each binary started with every flag upstream v0.33 defines
// (test/support/upstream-flags.ts) becomes healthy and tunnels. The Kubernetes API is reached
// through a kubeconfig whose server is plain http://, as client-go allows.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { testPki } from '../support/pki.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { httpGet, spawnBin, type Proc } from '../support/processes.js';
import { upstreamAgentFlags, upstreamArgs, upstreamServerFlags } from '../support/upstream-flags.js';
import { waitFor } from '../support/wait.js';

const AGENT_USER = 'system:serviceaccount:kube-system:konnectivity-agent';

describe('every upstream flag set', () => {
  let api: FakeKubeApi;
  let target: LabTarget;
  let server: Proc | undefined;
  let agent: Proc | undefined;
  let uds = '';
  let serverHealthPort = 0;

  before(async () => {
    api = await new FakeKubeApi().start();
    api.tokens.set('agent-token', { user: AGENT_USER, audiences: ['system:konnectivity-server'] });
    target = await new LabTarget('upstream-flags-lab').start();
  });
  after(async () => {
    await agent?.kill();
    await server?.kill();
    await target.stop();
    await api.stop();
  });

  it('starts the server with all of them, token auth and leases over a plain-HTTP kubeconfig', async () => {
    const { dir, files } = await testPki();
    const kubeconfig = join(dir, `kubeconfig-http-${api.port}`);
    // No insecure-skip-tls-verify: client-go takes a plain-HTTP server as it is.
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:${api.port}`,
        `users:\n- name: u\n  user:\n    token: ${api.clientToken}`,
        'contexts:\n- name: x\n  context:\n    cluster: c\n    user: u',
        'current-context: x',
        '',
      ].join('\n'),
    );
    uds = join(dir, `upstream-flags-${process.pid}.sock`);
    const tokenFile = join(dir, 'upstream-flags-token');
    writeFileSync(tokenFile, 'agent-token\n');
    const context = { ...files, kubeconfig, uds, tokenFile };

    server = spawnBin('proxy-server', upstreamArgs(upstreamServerFlags, context));
    const started = await server.waitLog('proxy-server started');
    serverHealthPort = started.healthPort as number;
    assert.equal((await httpGet(serverHealthPort, '/healthz')).status, 200);
    await waitFor('the server publishes its Lease', () =>
      [...api.leases.values()].find((l) => l.metadata.labels?.['k8s-app'] === 'konnectivity-server'),
    );
    for (const name of ['warn-on-channel-limit', 'kubeconfig-qps', 'xfr-channel-size']) {
      assert.ok(
        server.lines.some((l) => typeof l.msg === 'string' && l.msg.includes(`--${name} is accepted`)),
        `a compatibility warning for --${name}`,
      );
    }
    assert.ok(
      server.find('the kubeconfig names a plain-HTTP API server: requests and tokens travel unencrypted'),
    );
    assert.ok(
      server.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('--kube-api-content-type')),
    );

    const agentContext = { ...context, agentPort: started.agentPort as number };
    agent = spawnBin('proxy-agent', upstreamArgs(upstreamAgentFlags, agentContext));
    const agentStarted = await agent.waitLog('proxy-agent started');
    const agentHealth = agentStarted.healthPort as number;
    await waitFor(
      'agent ready',
      async () => (await httpGet(agentHealth, '/readyz')).status === 200 || undefined,
    );
    await waitFor(
      'server ready',
      async () => (await httpGet(serverHealthPort, '/readyz')).status === 200 || undefined,
    );
    assert.ok(
      api.count('POST', '/apis/authentication.k8s.io/v1/tokenreviews') >= 1,
      'the token was reviewed',
    );
    assert.ok(
      api.count('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases') >= 1,
      'leases listed',
    );
    assert.ok(
      agent.find('the kubeconfig names a plain-HTTP API server: requests and tokens travel unencrypted'),
    );
    assert.ok(
      agent.lines.some(
        (l) => typeof l.msg === 'string' && l.msg.includes('--warn-on-channel-limit is accepted'),
      ),
    );

    // The tunnel works end to end, routed by the agent's host identifier (destHost).
    const id = await askLabId({ protocol: 'grpc', uds }, `127.0.0.1:${target.port}`);
    assert.equal(id, 'upstream-flags-lab\n');
  });
});
