// 10,000 connections opened and closed through the tunnel leave nothing behind.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dial } from '../../ccm-integration/dialer/index.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { LabTarget } from '../support/targets.js';
import { metric } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const openFds = (pid: number | undefined) =>
  pid === undefined ? 0 : readdirSync(`/proc/${String(pid)}/fd`).length;

describe('leaks', () => {
  let target: LabTarget;
  let cluster: Cluster;
  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('http-connect', 'uds');
  });
  after(async () => {
    await cluster.stop();
    await target.stop();
  });

  it('10,000 connections opened and closed leave every gauge at 0 and no open handles behind', async () => {
    const serverPid = cluster.server.proc.child.pid;
    const agentPid = cluster.agent?.child.pid;
    const agentHealth = cluster.agent?.find('proxy-agent started')?.healthPort as number;
    const fdsBefore = { server: openFds(serverPid), agent: openFds(agentPid) };
    for (let batch = 0; batch < 50; batch++) {
      const socks = await Promise.all(
        Array.from({ length: 200 }, () => dial(cluster.frontend, target.address)),
      );
      // Half close politely, half just vanish.
      socks.forEach((s, i) => {
        if (i % 2 === 0) s.end();
        else s.destroy();
      });
    }
    const admin = cluster.server.adminPort;
    await waitFor(
      'server and agent gauges back to 0',
      async () =>
        (await metric(admin, 'konnectivity_network_proxy_server_established_connections')) === 0 &&
        (await metric(admin, 'konnectivity_network_proxy_server_pending_backend_dials')) === 0 &&
        (await metric(admin, 'konnectivity_network_proxy_server_http_connections')) === 0 &&
        (await metric(agentHealth, 'konnectivity_network_proxy_agent_open_endpoint_connections')) === 0,
      60_000,
    );
    await waitFor(
      'file descriptors back to where they were',
      () => openFds(serverPid) <= fdsBefore.server + 5 && openFds(agentPid) <= fdsBefore.agent + 5,
      30_000,
    );
    assert.equal(
      await metric(admin, 'konnectivity_network_proxy_server_dial_duration_seconds_count'),
      10_000,
    );
  });
});
