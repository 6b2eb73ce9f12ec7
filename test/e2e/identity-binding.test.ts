// Identity binding: an agent may only claim its own node. Real server and agent processes, the
// real client library against the fake Kubernetes API (TokenReviews that name the pod's node,
// Nodes with addresses and podCIDRs, watched), lab targets on loopback addresses that stand
// for node IPs. Which agent served a dial is read from the server's audit line.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dial, ErrorCode, type TunnelError } from '../../ccm-integration/dialer/index.js';
import { issue } from '../../quickstart/pki.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { testPki } from '../support/pki.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { httpGet, metric, type Proc } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const AUDIENCE = 'system:konnectivity-server';
const AGENT_USER = 'system:serviceaccount:kube-system:konnectivity-agent';
const GATEWAY_USER = 'system:serviceaccount:kube-system:gateway';
const REFUSED = 'konnectivity_network_proxy_server_identifier_claims_refused_total';
const NODE_NAME = 'authentication.kubernetes.io/node-name';
const NODE_UID = 'authentication.kubernetes.io/node-uid';

interface AgentListing {
  agentID: string;
  identifiers: {
    hosts: string[];
    ips: string[];
    cidrs: { address: string; prefix: number }[];
    defaultRoute: boolean;
  };
  node: string | null;
  nodeSource: string | null;
  serviceAccount: string | null;
  binding: string;
  nodeUnknown?: string;
  refusedClaims: { claim: string; reason: string }[];
  pendingClaims: { claim: string; reason: string }[];
}

function nodeObject(name: string, ip: string, podCidr: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
    status: {
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
    },
  };
}

async function agentsOf(cluster: Cluster): Promise<AgentListing[]> {
  const { body } = await httpGet(cluster.server.adminPort, '/agents');
  return (JSON.parse(body) as { agents: AgentListing[] }).agents;
}

/** The agent's /agents entry once its claims no longer wait for the Node cache. */
function settled(cluster: Cluster, agentID: string): Promise<AgentListing> {
  return waitFor(`${agentID} bound`, async () => {
    const a = (await agentsOf(cluster)).find((x) => x.agentID === agentID);
    return a && a.pendingClaims.length === 0 ? a : undefined;
  });
}

/** Dials `target` through the cluster; answers which agent served it (from the audit line). */
async function servedBy(cluster: Cluster, target: LabTarget): Promise<string> {
  const audited = () =>
    cluster.server.proc.lines.filter((l) => l.audit === 'dial' && l.address === target.address);
  const seen = audited().length;
  assert.equal(await askLabId(cluster.frontend, target.address), `${target.name}\n`);
  const line = await waitFor('the audit line of the dial', () => audited()[seen]);
  return String(line.agentID);
}

async function refusedNoAgent(cluster: Cluster, address: string): Promise<void> {
  await assert.rejects(
    dial(cluster.frontend, address),
    (err: TunnelError) => err.code === ErrorCode.NO_AGENT,
  );
}

function startupLine(cluster: Cluster): Record<string, unknown> {
  const line = cluster.server.proc.find('agent identity binding');
  assert.ok(line, 'the start-up line saying which binding mode runs');
  return line;
}

describe('identity binding', () => {
  let api: FakeKubeApi;
  let kubeconfig: string;
  let dir: string;
  const targets: Record<string, LabTarget> = {};
  const clusters: Cluster[] = [];
  const agents: Proc[] = [];

  const tokenFile = (token: string): string => {
    const path = join(dir, `identity-token-${token}`);
    writeFileSync(path, `${token}\n`);
    return path;
  };
  /** A pod-bound token of the agent account on `node`, as kube-apiserver 1.30+ reviews it. */
  const podToken = (token: string, node: string, user = AGENT_USER): void => {
    const uid = api.get('nodes', node)?.metadata.uid ?? '';
    api.tokens.set(token, { user, audiences: [AUDIENCE], extra: { [NODE_NAME]: [node], [NODE_UID]: [uid] } });
  };
  /** `tokens` false: agents authenticate with their certificate only; `kube` false: no API at all. */
  const cluster = async (args: string[], tokens = true, kube = true): Promise<Cluster> => {
    // HTTP CONNECT: a dial no agent can serve gets 503, the dialer's KNP_NO_AGENT.
    const c = await startCluster('http-connect', 'uds', {
      agents: 0,
      serverArgs: [
        '--v=2', // per-agent connect lines are at debug
        ...(kube ? [`--kubeconfig=${kubeconfig}`] : []),
        ...(tokens
          ? [
              '--agent-namespace=kube-system',
              '--agent-service-account=konnectivity-agent',
              `--authentication-audience=${AUDIENCE}`,
            ]
          : []),
        ...args,
      ],
    });
    clusters.push(c);
    return c;
  };
  const agent = async (c: Cluster, id: string, identifiers: string, extra: string[]): Promise<Proc> => {
    const p = await c.startAgent([`--agent-id=${id}`, `--agent-identifiers=${identifiers}`, ...extra]);
    agents.push(p);
    await waitFor(`${id} connected`, () =>
      c.server.proc.lines.find((l) => l.msg === 'agent connected' && l.agentID === id),
    );
    return p;
  };
  const withToken = (token: string) => [`--service-account-token-path=${tokenFile(token)}`];

  before(async () => {
    const pki = await testPki();
    dir = pki.dir;
    api = await new FakeKubeApi().start();
    kubeconfig = api.writeKubeconfig(dir, 'identity-binding-kubeconfig');
    api.apply(nodeObject('node-a', '127.0.0.2', '127.0.10.0/24'));
    api.apply(nodeObject('node-b', '127.0.0.3', '127.0.11.0/24'));
    api.apply(nodeObject('node-c', '127.0.0.4', '127.0.12.0/24'));
    podToken('token-a', 'node-a');
    podToken('token-b', 'node-b');
    podToken('token-c', 'node-c');
    api.tokens.set('token-no-node', { user: AGENT_USER, audiences: [AUDIENCE] });
    api.tokens.set('token-gateway', { user: GATEWAY_USER, audiences: [AUDIENCE] });
    for (const [name, host] of [
      ['node-a', '127.0.0.2'],
      ['node-b', '127.0.0.3'],
      ['node-c', '127.0.0.4'],
      ['pod-on-a', '127.0.10.5'],
      ['far-net', '127.0.20.5'],
      ['elsewhere', '127.0.30.5'],
    ] as const) {
      targets[name] = await new LabTarget(name).start(host);
    }
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.kill()));
    await Promise.all(clusters.map((c) => c.stop()));
    await Promise.all(Object.values(targets).map((t) => t.stop()));
    await api.stop();
  });

  const target = (name: string): LabTarget => {
    const t = targets[name];
    assert.ok(t, name);
    return t;
  };

  describe('under enforce', () => {
    let c: Cluster;
    before(async () => {
      c = await cluster(['--agent-identity-binding=enforce', '--proxy-strategies=destHost']);
    });

    it('says at start which mode runs and why', () => {
      const line = startupLine(c);
      assert.equal(line.mode, 'enforce');
      assert.match(String(line.why), /only claims that match the agent's node are routed/);
    });

    it("never sends node-b's dials to agent A on node-a that claims node-b's host and IP", async () => {
      await agent(
        c,
        'agent-a',
        'host=node-a&ipv4=127.0.0.2&host=node-b&ipv4=127.0.0.3',
        withToken('token-a'),
      );
      const a = await settled(c, 'agent-a');
      assert.equal(a.node, 'node-a');
      assert.equal(a.nodeSource, 'token');
      assert.equal(a.binding, 'enforce');
      assert.deepEqual(
        a.refusedClaims.map((r) => r.claim),
        ['host=node-b', 'ipv4=127.0.0.3'],
      );
      assert.match(
        a.refusedClaims[1]?.reason ?? '',
        /not an InternalIP or ExternalIP address of Node node-a/,
      );
      assert.deepEqual(a.identifiers.ips, ['127.0.0.2']);
      assert.deepEqual(a.identifiers.hosts, ['node-a']);
      // B is absent: the usual no-agent error, not agent A.
      await refusedNoAgent(c, target('node-b').address);
      await refusedNoAgent(c, `node-b:${target('node-b').port}`);
      // A's own claims route as before.
      assert.equal(await servedBy(c, target('node-a')), 'agent-a');
      assert.equal(await metric(c.server.adminPort, `${REFUSED}{type="host"}`), 1);
      assert.equal(await metric(c.server.adminPort, `${REFUSED}{type="ipv4"}`), 1);
      assert.ok(
        c.server.proc.lines.find((l) => l.msg === "agent claims refused: they do not match the agent's node"),
      );
    });

    it("sends node-b's dials to agent B once it connects, never to A", async () => {
      await agent(c, 'agent-b', 'ipv4=127.0.0.3', withToken('token-b'));
      assert.deepEqual((await settled(c, 'agent-b')).refusedClaims, []);
      for (let i = 0; i < 4; i++) assert.equal(await servedBy(c, target('node-b')), 'agent-b');
    });

    it('gives an agent whose node is unknown default routing only, and says so at connect', async () => {
      await agent(c, 'agent-unknown', 'ipv4=127.0.0.9&host=node-z', withToken('token-no-node'));
      const u = await settled(c, 'agent-unknown');
      assert.equal(u.node, null);
      assert.match(u.nodeUnknown ?? '', /its token carries no node name/);
      assert.deepEqual(u.identifiers.ips, []);
      assert.deepEqual(u.identifiers.hosts, []);
      assert.equal(u.refusedClaims.length, 2);
      const line = c.server.proc.lines.find(
        (l) => l.agentID === 'agent-unknown' && String(l.msg).startsWith("agent's node is unknown"),
      );
      assert.ok(line, 'the connect-time warning');
      await refusedNoAgent(c, `node-z:${target('node-a').port}`);
    });

    it("withdraws a claim while the agent is connected when its Node's address changes", async () => {
      await agent(c, 'agent-c', 'ipv4=127.0.0.4', withToken('token-c'));
      await settled(c, 'agent-c');
      assert.equal(await servedBy(c, target('node-c')), 'agent-c');

      api.apply(nodeObject('node-c', '127.0.0.14', '127.0.12.0/24'));
      const withdrawn = await waitFor('the withdrawal', () =>
        c.server.proc.lines.find(
          (l) => l.agentID === 'agent-c' && String(l.msg).startsWith('agent claim withdrawn from routing'),
        ),
      );
      assert.equal(withdrawn.claim, 'ipv4=127.0.0.4');
      await refusedNoAgent(c, target('node-c').address);
      const listed = (await agentsOf(c)).find((a) => a.agentID === 'agent-c');
      assert.deepEqual(
        listed?.refusedClaims.map((r) => r.claim),
        ['ipv4=127.0.0.4'],
      );

      api.apply(nodeObject('node-c', '127.0.0.4', '127.0.12.0/24'));
      await waitFor('the claim routed again', () =>
        c.server.proc.lines.find(
          (l) => l.agentID === 'agent-c' && String(l.msg).startsWith('agent claim routed'),
        ),
      );
      assert.equal(await servedBy(c, target('node-c')), 'agent-c');
    });
  });

  describe('under warn', () => {
    let c: Cluster;
    before(async () => {
      c = await cluster(['--agent-identity-binding=warn', '--proxy-strategies=destHost']);
    });

    it("lets agent A's claim of node-b's IP route, and logs and counts it", async () => {
      assert.equal(startupLine(c).mode, 'warn');
      await agent(c, 'agent-a', 'ipv4=127.0.0.2&ipv4=127.0.0.3', withToken('token-a'));
      const a = await waitFor('the mismatch found', async () => {
        const x = (await agentsOf(c)).find((l) => l.agentID === 'agent-a');
        return x && x.refusedClaims.length > 0 ? x : undefined;
      });
      assert.equal(a.binding, 'warn');
      assert.deepEqual(
        a.refusedClaims.map((r) => r.claim),
        ['ipv4=127.0.0.3'],
      );
      assert.deepEqual(a.identifiers.ips, ['127.0.0.2', '127.0.0.3']);
      assert.equal(await servedBy(c, target('node-b')), 'agent-a');
      assert.equal(await metric(c.server.adminPort, `${REFUSED}{type="ipv4"}`), 1);
      assert.ok(
        c.server.proc.lines.find(
          (l) =>
            l.agentID === 'agent-a' && String(l.msg).includes('routed anyway: --agent-identity-binding=warn'),
        ),
      );
    });
  });

  describe('an agent identified by its certificate (--agent-node-from-cert=cn), default mode', () => {
    let c: Cluster;
    before(async () => {
      c = await cluster(['--agent-node-from-cert=cn', '--proxy-strategies=destHost'], false);
    });

    it('is bound to the node its certificate names, as a token agent is', async () => {
      const line = startupLine(c);
      assert.equal(line.mode, 'auto');
      assert.match(String(line.why), /enforce where the node is known/);
      const pki = await testPki();
      const cert = await issue(pki.pki.ca, 'system:node:node-a', 'client');
      const certFile = join(dir, 'node-a-agent.pem');
      const keyFile = join(dir, 'node-a-agent-key.pem');
      writeFileSync(certFile, cert.cert);
      writeFileSync(keyFile, cert.key, { mode: 0o600 });
      await agent(c, 'cert-agent-a', 'host=node-a&ipv4=127.0.0.2&ipv4=127.0.0.3', [
        `--agent-cert=${certFile}`,
        `--agent-key=${keyFile}`,
      ]);
      const a = await settled(c, 'cert-agent-a');
      assert.equal(a.node, 'node-a');
      assert.equal(a.nodeSource, 'cert');
      assert.equal(a.binding, 'enforce');
      assert.deepEqual(
        a.refusedClaims.map((r) => r.claim),
        ['ipv4=127.0.0.3'],
      );
      await refusedNoAgent(c, target('node-b').address);
      assert.equal(await servedBy(c, target('node-a')), 'cert-agent-a');

      // The same over the WebSocket transport: the certificate of the upgraded connection.
      await agent(c, 'cert-agent-ws', 'ipv4=127.0.0.3', [
        '--transport=websocket',
        `--agent-cert=${certFile}`,
        `--agent-key=${keyFile}`,
      ]);
      const ws = await settled(c, 'cert-agent-ws');
      assert.equal(ws.node, 'node-a');
      assert.deepEqual(
        ws.refusedClaims.map((r) => r.claim),
        ['ipv4=127.0.0.3'],
      );
      await refusedNoAgent(c, target('node-b').address);
    });
  });

  describe('an upstream manifest swapped onto our image (mTLS agents, no token, default flags)', () => {
    let c: Cluster;
    before(async () => {
      c = await cluster(['--proxy-strategies=destHost'], false, false);
    });

    it('routes claims unchecked, as upstream, and says why at start', async () => {
      const line = startupLine(c);
      assert.equal(line.mode, 'auto');
      assert.match(String(line.why), /no agent's node can be known .* claims are not checked, as upstream/);
      await agent(c, 'upstream-agent', 'ipv4=127.0.0.3', []);
      const a = await settled(c, 'upstream-agent');
      assert.equal(a.binding, 'unchecked');
      assert.equal(a.node, null);
      assert.equal(await servedBy(c, target('node-b')), 'upstream-agent');
    });
  });

  describe('cidr= and default-route=true (default mode)', () => {
    let c: Cluster;
    before(async () => {
      c = await cluster([
        '--agents-allowed-any-identifier=kube-system/gateway',
        '--proxy-strategies=destHost,defaultRoute',
      ]);
    });

    it('refuses them to an ordinary agent beyond its podCIDRs, and allows them to a listed account', async () => {
      assert.equal(startupLine(c).mode, 'auto');
      await agent(
        c,
        'agent-a',
        'cidr=127.0.10.0/24&cidr=127.0.20.0/24&default-route=true',
        withToken('token-a'),
      );
      await agent(c, 'gateway', 'cidr=127.0.20.0/24&default-route=true', withToken('token-gateway'));
      const a = await settled(c, 'agent-a');
      assert.equal(a.binding, 'enforce');
      assert.deepEqual(
        a.refusedClaims.map((r) => r.claim),
        ['cidr=127.0.20.0/24', 'default-route=true'],
      );
      assert.equal(a.identifiers.defaultRoute, false);
      const gw = await settled(c, 'gateway');
      assert.equal(gw.binding, 'any-identifier');
      assert.equal(gw.serviceAccount, 'kube-system/gateway');
      assert.deepEqual(gw.refusedClaims, []);
      assert.equal(gw.identifiers.defaultRoute, true);

      assert.equal(await servedBy(c, target('pod-on-a')), 'agent-a', "inside node-a's podCIDR");
      for (let i = 0; i < 3; i++) {
        assert.equal(await servedBy(c, target('far-net')), 'gateway', 'a cidr only the gateway may claim');
        assert.equal(await servedBy(c, target('elsewhere')), 'gateway', 'defaultRoute: the gateway only');
      }
      assert.equal(await metric(c.server.adminPort, `${REFUSED}{type="cidr"}`), 1);
      assert.equal(await metric(c.server.adminPort, `${REFUSED}{type="default-route"}`), 1);
    });
  });
});
