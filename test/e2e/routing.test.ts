// Routing by agent identifiers through --proxy-strategies, with real agents: the agent that
// dials is read from the agent's own metrics and from the server's audit line.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { dial, ErrorCode, type TunnelError } from '../../ccm-integration/dialer/index.js';
import { AGENT_TRANSPORTS, startCluster, type AgentTransport, type Cluster } from '../support/cluster.js';
import { LabTarget, readAll } from '../support/targets.js';
import { httpGet, metric, waitMetric, type Proc } from '../support/processes.js';
import { rawExchange } from '../support/raw.js';
import { waitFor } from '../support/wait.js';

const DIALS = 'konnectivity_network_proxy_agent_dial_duration_seconds_count';

function healthPort(agent: Proc): number {
  return agent.find('proxy-agent started')?.healthPort as number;
}

async function dialsBy(agents: Record<string, Proc>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, p] of Object.entries(agents)) out[name] = await metric(healthPort(p), DIALS);
  return out;
}

async function idThrough(cluster: Cluster, address: string): Promise<string> {
  const sock = await dial(cluster.frontend, address);
  const back = readAll(sock);
  sock.end('id\n');
  return (await back).toString();
}

const READY_AGENTS = 'konnectivity_network_proxy_server_ready_backend_connections';

/**
 * A server with these --proxy-strategies and one agent per entry (agent ID → its
 * --agent-identifiers), once every agent is connected.
 */
async function routedCluster(
  mode: 'grpc' | 'http-connect',
  strategies: string,
  identifiers: Record<string, string>,
  agentTransport: AgentTransport,
): Promise<{ cluster: Cluster; agents: Record<string, Proc> }> {
  const cluster = await startCluster(mode, 'uds', {
    agents: 0,
    serverArgs: [`--proxy-strategies=${strategies}`],
    agentTransport,
  });
  const agents: Record<string, Proc> = {};
  for (const [id, ids] of Object.entries(identifiers)) {
    agents[id] = await cluster.startAgent([`--agent-id=${id}`, `--agent-identifiers=${ids}`]);
  }
  await waitMetric(cluster.server.adminPort, READY_AGENTS, Object.keys(identifiers).length);
  return { cluster, agents };
}

for (const agentTransport of AGENT_TRANSPORTS) {
  describe(`destHost routing, agents over ${agentTransport}`, () => {
    let cluster: Cluster;
    let agents: Record<string, Proc> = {};
    const targets: Record<string, LabTarget> = {};
    before(async () => {
      targets.localhost = await new LabTarget('t-localhost').start('127.0.0.1');
      targets.ipv4 = await new LabTarget('t-ipv4').start('127.0.0.2');
      targets.cidr = await new LabTarget('t-cidr').start('127.0.1.5');
      targets.other = await new LabTarget('t-other').start('127.0.0.9');
      ({ cluster, agents } = await routedCluster(
        'grpc',
        'destHost,default',
        {
          'agent-host': 'host=localhost',
          'agent-ipv4': 'ipv4=127.0.0.2&host=node-b',
          'agent-cidr': 'cidr=127.0.1.0/24',
        },
        agentTransport,
      ));
    });
    after(async () => {
      await cluster.stop();
      await Promise.all(Object.values(targets).map((t) => t.stop()));
    });

    for (const [agent, target, address] of [
      ['host', 'localhost', (t: LabTarget) => `localhost:${t.port}`],
      ['ipv4', 'ipv4', (t: LabTarget) => t.address],
      ['cidr', 'cidr', (t: LabTarget) => t.address],
    ] as const) {
      it(`sends every dial for a ${agent} identifier to that agent`, async () => {
        const t = targets[target];
        assert.ok(t);
        const before = await dialsBy(agents);
        for (let i = 0; i < 5; i++) assert.equal(await idThrough(cluster, address(t)), `${t.name}\n`);
        const after = await dialsBy(agents);
        for (const name of Object.keys(agents)) {
          assert.equal(
            (after[name] ?? 0) - (before[name] ?? 0),
            name === `agent-${agent}` ? 5 : 0,
            `dials by agent ${name}`,
          );
        }
        const audited = await waitFor('five audit lines', () => {
          const lines = cluster.server.proc.lines.filter(
            (l) => l.audit === 'dial' && l.address === address(t),
          );
          return lines.length >= 5 ? lines : undefined;
        });
        for (const l of audited) assert.equal(l.agentID, `agent-${agent}`);
      });
    }

    it('falls through to any agent when no identifier matches (destHost,default)', async () => {
      const t = targets.other;
      assert.ok(t);
      assert.equal(await idThrough(cluster, t.address), 't-other\n');
      const misses = await metric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_strategy_misses_total{strategy="destHost"}',
      );
      assert.ok(misses >= 1);
    });

    it('lists the agents on the admin port at /agents', async () => {
      const { status, body } = await httpGet(cluster.server.adminPort, '/agents');
      assert.equal(status, 200);
      const listing = JSON.parse(body) as {
        serverID: string;
        agents: {
          agentID: string;
          identifiers: { hosts: string[]; ips: string[] };
          draining: boolean;
          connectedSince: string;
          openConnections: number;
          rttMs?: number;
          receiveWindowBytes?: number;
          transport: string;
        }[];
      };
      const ids = listing.agents.map((a) => a.agentID).sort();
      assert.deepEqual(ids, ['agent-cidr', 'agent-host', 'agent-ipv4']);
      const b = listing.agents.find((a) => a.agentID === 'agent-ipv4');
      assert.ok(b);
      assert.deepEqual(b.identifiers.ips, ['127.0.0.2']);
      assert.deepEqual(b.identifiers.hosts, ['node-b']);
      assert.equal(b.draining, false);
      assert.ok(!Number.isNaN(Date.parse(b.connectedSince)));
      assert.equal(typeof b.openConnections, 'number');
      // Measured by a PING when the agent connected: a loopback round trip, well under a second.
      assert.ok(typeof b.rttMs === 'number' && b.rttMs >= 0 && b.rttMs < 1000, `rttMs ${String(b.rttMs)}`);
      assert.equal(b.transport, agentTransport);
      if (agentTransport === 'grpc') {
        assert.equal(
          b.receiveWindowBytes,
          16 * 1024 * 1024,
          'the configured agent window: no growth near by',
        );
      }
    });
  });

  describe(`destHost alone, and agents sharing an identifier, over ${agentTransport}`, () => {
    let cluster: Cluster;
    let target: LabTarget;
    let agents: Record<string, Proc> = {};
    before(async () => {
      target = await new LabTarget('shared').start('127.0.0.3');
      ({ cluster, agents } = await routedCluster(
        'http-connect',
        'destHost',
        {
          'twin-a': 'ipv4=127.0.0.3',
          'twin-b': 'ipv4=127.0.0.3',
        },
        agentTransport,
      ));
    });
    after(async () => {
      await cluster.stop();
      await target.stop();
    });

    it('fails at once with 503 when no agent matches', async () => {
      const answer = await rawExchange(
        () => net.connect(cluster.frontend.uds ?? ''),
        'CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n',
      );
      assert.match(answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
      assert.match(
        answer,
        /no agent can serve 127\.0\.0\.1 with proxy strategies destHost \(2 agents ready\)/,
      );
      await assert.rejects(
        dial(cluster.frontend, 'node-z:443'),
        (err: TunnelError) => err.code === ErrorCode.NO_AGENT,
      );
    });

    it('spreads connections evenly over agents with the same identifier', async () => {
      const before = await dialsBy(agents);
      const open: Duplex[] = [];
      for (let i = 0; i < 10; i++) {
        const s = await dial(cluster.frontend, target.address);
        s.write('echo\n');
        open.push(s);
      }
      const after = await dialsBy(agents);
      for (const s of open) s.destroy();
      assert.equal((after['twin-a'] ?? 0) - (before['twin-a'] ?? 0), 5);
      assert.equal((after['twin-b'] ?? 0) - (before['twin-b'] ?? 0), 5);
    });
  });

  describe(`defaultRoute, agents over ${agentTransport}`, () => {
    let cluster: Cluster;
    let target: LabTarget;
    let agents: Record<string, Proc> = {};
    before(async () => {
      target = await new LabTarget('anywhere').start();
      ({ cluster, agents } = await routedCluster(
        'grpc',
        'destHost,defaultRoute',
        {
          plain: 'host=node-p',
          gateway: 'default-route=true',
        },
        agentTransport,
      ));
    });
    after(async () => {
      await cluster.stop();
      await target.stop();
    });

    it('sends dials no identifier matches to the agents that declared default-route=true', async () => {
      const before = await dialsBy(agents);
      for (let i = 0; i < 5; i++) assert.equal(await idThrough(cluster, target.address), 'anywhere\n');
      const after = await dialsBy(agents);
      assert.equal((after.gateway ?? 0) - (before.gateway ?? 0), 5);
      assert.equal((after.plain ?? 0) - (before.plain ?? 0), 0);
    });
  });
}
