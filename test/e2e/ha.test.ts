// Several servers behind one address: three proxy-servers behind a round-robin TCP balancer,
// --server-count=3, two agents. Each agent ends with a stream to every server; each server
// tunnels; one server killed leaves the others serving, and its restart is rejoined.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type FrontendAddress } from '../../ccm-integration/dialer/index.js';
import { testPki, type TestPki } from '../support/pki.js';
import {
  agentArgs,
  metric,
  spawnBin,
  startServer,
  type Proc,
  type ServerInfo,
} from '../support/processes.js';
import { TcpBalancer } from '../support/tcp-balancer.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { waitFor } from '../support/wait.js';

const AGENTS_ON_SERVER = 'konnectivity_network_proxy_server_ready_backend_connections';
const STREAMS_OF_AGENT = 'konnectivity_network_proxy_agent_open_server_connections';

describe('three servers behind a load balancer', () => {
  let pki: TestPki;
  let target: LabTarget;
  let balancer: TcpBalancer;
  const servers: ServerInfo[] = [];
  const agents: Proc[] = [];
  const uds = (i: number) => join(pki.dir, `ha-${process.pid}-${i}.sock`);
  const serverArgs = (i: number, agentPort = 0) => [
    '--mode=grpc',
    `--uds-name=${uds(i)}`,
    `--server-id=server-${i}`,
    '--server-count=3',
    `--cluster-cert=${pki.files.serverCert}`,
    `--cluster-key=${pki.files.serverKey}`,
    `--cluster-ca-cert=${pki.files.ca}`,
    `--agent-port=${agentPort}`,
  ];
  const frontend = (i: number): FrontendAddress => ({ protocol: 'grpc', uds: uds(i) });
  const healthPort = (a: Proc) => a.find('proxy-agent started')?.healthPort as number;

  const idThrough = (i: number): Promise<string> => askLabId(frontend(i), target.address);

  async function settled(live: number[]): Promise<void> {
    await waitFor(
      `agents connected to servers ${live.join(',')}`,
      async () => {
        for (const i of live) {
          const s = servers[i];
          if (!s || (await metric(s.adminPort, AGENTS_ON_SERVER)) !== 2) return undefined;
        }
        for (const a of agents)
          if ((await metric(healthPort(a), STREAMS_OF_AGENT)) !== live.length) return undefined;
        return true;
      },
      30_000,
    );
  }

  before(async () => {
    pki = await testPki();
    target = await new LabTarget('lab').start();
    for (let i = 0; i < 3; i++) servers.push(await startServer(serverArgs(i)));
    balancer = await new TcpBalancer(servers.map((s) => s.agentPort)).start();
    for (const id of ['ha-agent-1', 'ha-agent-2']) {
      const a = spawnBin('proxy-agent', agentArgs(pki.files, balancer.port, [`--agent-id=${id}`]));
      await a.waitLog('proxy-agent started');
      agents.push(a);
    }
  });
  after(async () => {
    await Promise.all([...agents.map((a) => a.kill()), ...servers.map((s) => s.proc.kill())]);
    await balancer.stop();
    await target.stop();
  });

  it('each agent holds one stream to each of the three servers, and every server tunnels', async () => {
    await settled([0, 1, 2]);
    for (const a of agents) {
      const ids = new Set(
        a.lines.filter((l) => l.msg === 'connected to proxy-server').map((l) => l.serverID),
      );
      assert.deepEqual([...ids].sort(), ['server-0', 'server-1', 'server-2']);
      assert.equal(await metric(healthPort(a), 'konnectivity_network_proxy_agent_known_server_count'), 3);
    }
    for (let i = 0; i < 3; i++) assert.equal(await idThrough(i), 'lab\n');
  });

  it('keeps serving when one server dies, and the agents rejoin it when it comes back', async () => {
    const dead = servers[1];
    assert.ok(dead);
    await dead.proc.kill();
    await settled([0, 2]);
    assert.equal(await idThrough(0), 'lab\n');
    assert.equal(await idThrough(2), 'lab\n');

    servers[1] = await startServer(serverArgs(1, dead.agentPort));
    await settled([0, 1, 2]);
    assert.equal(await idThrough(1), 'lab\n');
  });
});
