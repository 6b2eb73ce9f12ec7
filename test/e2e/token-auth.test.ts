// ServiceAccount token authentication of agents, against an in-process fake Kubernetes API
// that answers TokenReviews: the real client library, real server and agent processes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_TRANSPORTS, startCluster, type Cluster } from '../support/cluster.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { metric, spawnBin, startServer, type Proc, waitMetric } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const AUDIENCE = 'system:konnectivity-server';
const GOOD_USER = 'system:serviceaccount:kube-system:konnectivity-agent';

for (const agentTransport of AGENT_TRANSPORTS) {
  describe(`agent token authentication, over ${agentTransport}`, () => {
    let api: FakeKubeApi;
    let cluster: Cluster;
    let target: LabTarget;
    const agents: Proc[] = [];

    const tokenFile = (name: string, token: string): string => {
      const path = join(cluster.pki.dir, `token-${name}`);
      writeFileSync(path, `\n  ${token}\n`);
      return path;
    };
    const startAgent = async (id: string, extra: string[]): Promise<Proc> => {
      const p = await cluster.startAgent([`--agent-id=${id}`, ...extra]);
      agents.push(p);
      return p;
    };
    const refusal = (id: string) =>
      waitFor(`refusal of ${id}`, () =>
        cluster.server.proc.lines.find(
          (l) => l.msg === 'agent refused: authentication failed' && l.agentID === id,
        ),
      );

    before(async () => {
      api = await new FakeKubeApi().start();
      api.tokens.set('good-token', { user: GOOD_USER, audiences: [AUDIENCE] });
      api.tokens.set('good-token-2', { user: GOOD_USER, audiences: [AUDIENCE] });
      api.tokens.set('other-audience', { user: GOOD_USER, audiences: ['https://kubernetes.default.svc'] });
      api.tokens.set('other-sa', {
        user: 'system:serviceaccount:kube-system:default',
        audiences: [AUDIENCE],
      });
      api.tokens.set('other-ns', {
        user: 'system:serviceaccount:default:konnectivity-agent',
        audiences: [AUDIENCE],
      });
      api.tokens.set('expired', { user: GOOD_USER, audiences: [AUDIENCE], expired: true });
      target = await new LabTarget('lab').start();
      const { testPki } = await import('../support/pki.js');
      const kubeconfig = api.writeKubeconfig((await testPki()).dir);
      cluster = await startCluster('grpc', 'uds', {
        agents: 0,
        agentTransport,
        serverArgs: [
          '--v=2', // per-agent connect lines are at debug
          '--agent-namespace=kube-system',
          '--agent-service-account=konnectivity-agent',
          `--authentication-audience=${AUDIENCE}`,
          `--kubeconfig=${kubeconfig}`,
        ],
      });
    });
    after(async () => {
      await Promise.all(agents.map((a) => a.kill()));
      await cluster.stop();
      await target.stop();
      await api.stop();
    });

    it('accepts a good token, reviews it once for two agents, and tunnels through them', async () => {
      const path = tokenFile('good', 'good-token');
      await startAgent('good-1', [`--service-account-token-path=${path}`]);
      await waitMetric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_ready_backend_connections',
        1,
      );
      await startAgent('good-2', [`--service-account-token-path=${path}`]);
      await waitMetric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_ready_backend_connections',
        2,
      );
      assert.equal(
        api.count('POST', '/apis/authentication.k8s.io/v1/tokenreviews'),
        1,
        'positive result cached',
      );
      assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
    });

    for (const [name, token, reason] of [
      ['wrong-audience', 'other-audience', /audiences/],
      ['wrong-sa', 'other-sa', /service account "default" is not "konnectivity-agent"/],
      ['wrong-ns', 'other-ns', /namespace "default" is not "kube-system"/],
      ['expired', 'expired', /token not authenticated: token has expired/],
      ['unknown', 'no-such-token', /token not authenticated: invalid bearer token/],
    ] as const) {
      it(`refuses an agent with a ${name} token and logs why`, async () => {
        const agent = await startAgent(name, [`--service-account-token-path=${tokenFile(name, token)}`]);
        const line = await refusal(name);
        assert.match(String(line.reason), reason);
        await waitFor('agent sees UNAUTHENTICATED', () =>
          agent.lines.find(
            (l) =>
              l.msg === 'cannot connect to proxy-server' &&
              /UNAUTHENTICATED|authentication failed/.test(String(l.error)),
          ),
        );
        await agent.kill();
      });
    }

    it('refuses an agent that sends no token', async () => {
      const agent = await startAgent('no-token', []);
      assert.match(String((await refusal('no-token')).reason), /no authorization metadata/);
      await agent.kill();
    });

    it('reads the token file again on every connect: a rotated token takes effect on the next connect', async () => {
      const path = tokenFile('rotating', 'expired');
      const agent = await startAgent('rotating', [`--service-account-token-path=${path}`]);
      await refusal('rotating');
      const before = await metric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_ready_backend_connections',
      );
      writeFileSync(path, 'good-token-2\n');
      await waitFor('rotated token accepted', () =>
        agent.lines.find((l) => l.msg === 'connected to proxy-server'),
      );
      assert.equal(
        await metric(cluster.server.adminPort, 'konnectivity_network_proxy_server_ready_backend_connections'),
        before + 1,
      );
      assert.ok(
        (await metric(
          cluster.server.adminPort,
          'konnectivity_network_proxy_server_agent_auth_failures_total',
        )) >= 7,
      );
    });

    it('a token rotated while connected is the one sent on the next connect', async () => {
      const path = tokenFile('connected', 'good-token');
      const agent = await startAgent('connected', [`--service-account-token-path=${path}`]);
      await waitFor('connected', () => agent.find('connected to proxy-server'));
      writeFileSync(path, 'expired\n'); // rotated to a token the API no longer accepts
      // The open stream is not re-checked; the next connect is: restart the server on its port.
      const agentPort = cluster.server.agentPort;
      await cluster.server.proc.kill();
      cluster.server = await startServer([...cluster.serverArgs, `--agent-port=${agentPort}`]);
      const refused = await waitFor('refusal after the restart', () =>
        cluster.server.proc.lines.find(
          (l) => l.msg === 'agent refused: authentication failed' && l.agentID === 'connected',
        ),
      );
      assert.match(String(refused.reason), /token has expired/);
      writeFileSync(path, 'good-token\n');
      await waitFor('accepted again', () =>
        cluster.server.proc.lines.find((l) => l.msg === 'agent connected' && l.agentID === 'connected'),
      );
    });

    it('refuses to start without a reachable Kubernetes configuration, saying why', async () => {
      const f = cluster.pki.files;
      const p = spawnBin(
        'proxy-server',
        [
          `--uds-name=${join(cluster.pki.dir, 'no-kube.sock')}`,
          `--cluster-cert=${f.serverCert}`,
          `--cluster-key=${f.serverKey}`,
          '--agent-namespace=kube-system',
          '--agent-service-account=konnectivity-agent',
          `--authentication-audience=${AUDIENCE}`,
        ],
        { KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '' },
      );
      assert.equal(await p.exited, 2);
      assert.match(
        p.output(),
        /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined \(or set --kubeconfig\)/,
      );
    });

    it('fails closed when the Kubernetes API cannot be reached', async () => {
      api.tokens.set('good-token-3', { user: GOOD_USER, audiences: [AUDIENCE] });
      await api.stop();
      const agent = await startAgent('api-down', [
        `--service-account-token-path=${tokenFile('api-down', 'good-token-3')}`,
      ]);
      assert.match(String((await refusal('api-down')).reason), /^token review failed: /);
      await agent.kill();
    });
  });
}
