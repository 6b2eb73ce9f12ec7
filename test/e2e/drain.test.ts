// Agent drain: SIGTERM to one of two agents during a transfer. The transfer completes, new
// dials go to the other agent, and the drained agent exits once its connections are done,
// or at its drain timeout if they never are.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { dial } from '../../ccm-integration/dialer/index.js';
import { AGENT_TRANSPORTS, startCluster, type Cluster } from '../support/cluster.js';
import { askLabId, LabTarget, deterministicChunks, hashOf } from '../support/targets.js';
import { httpGet, metric, type Proc, waitMetric } from '../support/processes.js';
import { waitFor, within } from '../support/wait.js';

const OPEN = 'konnectivity_network_proxy_agent_open_endpoint_connections';
const DIALS = 'konnectivity_network_proxy_agent_dial_duration_seconds_count';
const port = (agent: Proc) => agent.find('proxy-agent started')?.healthPort as number;

for (const agentTransport of AGENT_TRANSPORTS) {
  describe(`agent drain on SIGTERM, over ${agentTransport}`, () => {
    let cluster: Cluster;
    let target: LabTarget;
    let agents: Proc[];
    before(async () => {
      target = await new LabTarget('lab').start();
      cluster = await startCluster('http-connect', 'uds', { agents: 0, agentTransport });
      agents = [
        await cluster.startAgent(['--agent-id=drain-a', '--drain-timeout=60s']),
        await cluster.startAgent(['--agent-id=drain-b', '--drain-timeout=60s']),
      ];
      await waitMetric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_ready_backend_connections',
        2,
      );
    });
    after(async () => {
      await cluster.stop();
      await target.stop();
    });

    it('finishes the transfer, routes new dials to the other agent, and exits when done', async () => {
      // An echo connection the test drives: it lives across the SIGTERM.
      const sock: Duplex = await dial(cluster.frontend, target.address);
      sock.write('echo\n');
      const carrying = await waitFor('the carrying agent', async () => {
        for (const a of agents) if ((await metric(port(a), OPEN)) === 1) return a;
        return undefined;
      });
      const other = agents.find((a) => a !== carrying);
      assert.ok(other);
      const otherPort = port(other);

      carrying.child.kill('SIGTERM');
      await waitFor('server sees the drain', async () => {
        const { body } = await httpGet(cluster.server.adminPort, '/agents');
        const list = JSON.parse(body) as { agents: { agentID: string; draining: boolean }[] };
        return list.agents.some((a) => a.draining) || undefined;
      });
      assert.equal(
        await metric(
          cluster.server.adminPort,
          'konnectivity_network_proxy_server_draining_backend_connections',
        ),
        1,
      );

      // New dials all go to the agent that is not draining.
      const before = await metric(otherPort, DIALS);
      for (let i = 0; i < 5; i++) {
        assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
      }
      assert.equal((await metric(otherPort, DIALS)) - before, 5);

      // The connection on the draining agent still carries 8 MiB both ways, intact.
      const size = 8 * 1024 * 1024;
      const hash = createHash('sha256');
      let got = 0;
      const echoed = new Promise<void>((resolve) => {
        sock.on('data', (d: Buffer) => {
          hash.update(d);
          got += d.length;
          if (got >= size) resolve();
        });
      });
      for (const chunk of deterministicChunks(size, 7))
        if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
      await echoed;
      assert.equal(hash.digest('hex'), hashOf(size, 7));
      assert.equal(carrying.child.exitCode, null, 'still running while its connection is open');

      sock.destroy();
      assert.equal(await within(carrying.exited, 20_000, 'drained agent exits'), 0);
      assert.ok(carrying.find('drain over'));
    });

    it('exits at --drain-timeout when a connection never finishes', async () => {
      const agent = await cluster.startAgent(['--agent-id=drain-c', '--drain-timeout=500ms']);
      await waitFor('agent connected', () => agent.find('connected to proxy-server'));
      // Dial until a connection lands on it (the least loaded agent gets the next dial).
      const held: Duplex[] = [];
      await waitFor('a connection on the new agent', async () => {
        const s = await dial(cluster.frontend, target.address);
        s.write('echo\n');
        held.push(s);
        return (await metric(port(agent), OPEN)) >= 1 || undefined;
      });
      agent.child.kill('SIGTERM');
      assert.equal(await within(agent.exited, 20_000, 'agent exits at its drain timeout'), 0);
      const over = agent.find('drain over');
      assert.ok(over);
      assert.ok((over.open as number) >= 1, 'it left with the connection still open');
      for (const s of held) s.destroy();
    });
  });

  // Upstream's TestProxyHandle_AfterDrain: SIGTERM to the only agent, then a dial through it
  // still succeeds (a dial may already be on its way; upstream servers keep routing to it).
  describe(`drain of the only agent, over ${agentTransport}`, () => {
    let cluster: Cluster;
    let target: LabTarget;
    before(async () => {
      target = await new LabTarget('lab').start();
      cluster = await startCluster('grpc', 'uds', { agents: 0, agentTransport });
    });
    after(async () => {
      await cluster.stop();
      await target.stop();
    });

    it('serves dials that arrive after DRAIN, then exits once idle for the grace', async () => {
      const agent = await cluster.startAgent(['--agent-id=only', '--drain-timeout=60s']);
      await waitMetric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_ready_backend_connections',
        1,
      );
      agent.child.kill('SIGTERM');
      await waitFor('server sees the drain', async () => {
        const drained = await metric(
          cluster.server.adminPort,
          'konnectivity_network_proxy_server_draining_backend_connections',
        );
        return drained === 1 || undefined;
      });
      for (let i = 0; i < 3; i++) assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
      assert.equal(agent.child.exitCode, null, 'still serving');
      assert.equal(await within(agent.exited, 30_000, 'drained agent exits once idle'), 0);
      const over = agent.find('drain over');
      assert.ok(over);
      assert.equal(over.open, 0);
    });

    it('exits at once on a second signal, with a connection still open', async () => {
      const agent = await cluster.startAgent(['--agent-id=twice', '--drain-timeout=60s']);
      await waitMetric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_ready_backend_connections',
        1,
      );
      const held = await dial(cluster.frontend, target.address);
      held.on('error', () => undefined);
      held.write('echo\n');
      await waitFor(
        'the connection is open on the agent',
        async () => (await metric(port(agent), OPEN)) === 1 || undefined,
      );
      agent.child.kill('SIGTERM');
      await agent.waitLog('draining');
      agent.child.kill('SIGTERM');
      assert.equal(await within(agent.exited, 20_000, 'agent exits on the second signal'), 1);
      assert.ok(agent.find('second signal: exiting now'));
      assert.equal(agent.find('drain over'), undefined);
      held.destroy();
    });
  });
}
