// A reconnecting agent resumes its TLS session: the agent keeps the server's session ticket
// and offers it on the next connect, and the server counts resumed handshakes. The agent's
// connection is cut by a TCP balancer in between, so the same server sees the reconnect.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Cluster } from '../support/cluster.js';
import { agentArgs, metric, spawnBin, waitMetric, type Proc } from '../support/processes.js';
import { TcpBalancer } from '../support/tcp-balancer.js';
import { askLabId, LabTarget } from '../support/targets.js';

const READY = 'konnectivity_network_proxy_server_ready_backend_connections';
const HANDSHAKES = 'konnectivity_network_proxy_server_agent_tls_handshakes_total';

describe('TLS session resumption for reconnecting agents', () => {
  let cluster: Cluster;
  let balancer: TcpBalancer;
  let target: LabTarget;
  let agent: Proc | undefined;

  before(async () => {
    target = await new LabTarget('resumed').start();
    cluster = await startCluster('grpc', 'uds', { agents: 0 });
    balancer = await new TcpBalancer([cluster.server.agentPort]).start();
  });
  after(async () => {
    await agent?.kill();
    await balancer.stop();
    await cluster.stop();
    await target.stop();
  });

  it('resumes after the connection breaks, and the resumed agent serves dials', async () => {
    const port = cluster.server.adminPort;
    agent = spawnBin('proxy-agent', agentArgs(cluster.pki.files, balancer.port, ['--agent-id=resumer']));
    await waitMetric(port, READY, 1);
    assert.equal(await metric(port, `${HANDSHAKES}{resumed="false"}`), 1);
    assert.equal(await metric(port, `${HANDSHAKES}{resumed="true"}`), 0);

    balancer.cutAll();
    await waitMetric(port, `${HANDSHAKES}{resumed="true"}`, 1);
    await waitMetric(port, READY, 1);
    assert.equal(await metric(port, `${HANDSHAKES}{resumed="false"}`), 1, 'no second full handshake');
    assert.equal((await askLabId(cluster.frontend, target.address)).trim(), 'resumed');
  });
});
