// The agent's destination policy through real processes: refused dials reach the gRPC client
// as a DIAL_RSP error and the CONNECT client as 403, and are counted.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dial, ErrorCode, type TunnelError } from '../../ccm-integration/dialer/index.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { LabTarget, readAll } from '../support/targets.js';
import { httpGet, waitReady } from '../support/processes.js';
import { rawExchange } from '../support/raw.js';
import { waitFor } from '../support/wait.js';

async function idThrough(cluster: Cluster, address: string): Promise<string> {
  const sock = await dial(cluster.frontend, address);
  const back = readAll(sock);
  sock.end('id\n');
  return (await back).toString();
}

async function refused(cluster: Cluster, address: string): Promise<string> {
  let message = '';
  await assert.rejects(dial(cluster.frontend, address), (err: TunnelError) => {
    assert.equal(err.code, ErrorCode.DESTINATION_DENIED, `${address}: ${err.message}`);
    message = err.message;
    return true;
  });
  return message;
}

describe('agent destination policy', () => {
  let allowed: LabTarget;
  let other: LabTarget;
  let v6: LabTarget;
  let grpc: Cluster;
  let connect: Cluster;
  before(async () => {
    allowed = await new LabTarget('allowed').start();
    other = await new LabTarget('other').start();
    v6 = new LabTarget('v6');
    await new Promise<void>((r) => v6.server.listen(0, '::1', r));
    v6.port = (v6.server.address() as net.AddressInfo).port;
    grpc = await startCluster('grpc', 'uds', { agents: 0 });
    connect = await startCluster('http-connect', 'uds', { agents: 0 });
    // grpc: defaults (metadata denied) plus a deny of the "other" target's port.
    await grpc.startAgent([
      `--denied-destinations=169.254.169.254/32,[fd00:ec2::254/128],127.0.0.1/32:${other.port},[::1/128]`,
    ]);
    // http-connect: an allow list of one port; the default deny list stays.
    await connect.startAgent([`--allowed-destinations=127.0.0.0/8:${allowed.port},[::1]:${v6.port}`]);
    await Promise.all([waitReady(grpc.server), waitReady(connect.server)]);
  });
  after(async () => {
    await Promise.all([grpc.stop(), connect.stop()]);
    await Promise.all([allowed.stop(), other.stop(), v6.stop()]);
  });

  it('refuses the cloud metadata address by default, without dialing it', async () => {
    const message = await refused(connect, '169.254.169.254:80');
    assert.match(
      message,
      /destination denied by agent policy: 169\.254\.169\.254:80 matches denied destination 169\.254\.169\.254\/32/,
    );
    const answer = await rawExchange(
      () => net.connect(connect.frontend.uds ?? ''),
      'CONNECT [fd00:ec2::254]:80 HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(answer, /destination denied by agent policy/);
  });

  it('allow list: only the listed ports and addresses, IPv6 in brackets', async () => {
    assert.equal(await idThrough(connect, allowed.address), 'allowed\n');
    assert.equal(await idThrough(connect, `[::1]:${v6.port}`), 'v6\n');
    assert.match(await refused(connect, other.address), /is not in the allowed destinations/);
  });

  it('deny list with a port and an IPv6 address; everything else goes through', async () => {
    assert.equal(await idThrough(grpc, allowed.address), 'allowed\n');
    assert.match(
      await refused(grpc, other.address),
      new RegExp(`matches denied destination 127\\.0\\.0\\.1/32:${other.port}`),
    );
    assert.match(await refused(grpc, `[::1]:${v6.port}`), /matches denied destination \[::1\/128\]/);
  });

  it('resolves a hostname and checks its addresses', async () => {
    assert.equal(await idThrough(connect, `localhost:${allowed.port}`), 'allowed\n');
    assert.match(
      await refused(grpc, `localhost:${other.port}`),
      /localhost resolves to 127\.0\.0\.1:\d+ matches denied destination/,
    );
  });

  it('counts refusals in the agent metric', async () => {
    const agent = grpc.agent;
    assert.ok(agent);
    const started = agent.find('proxy-agent started');
    const port = started?.healthPort as number;
    await waitFor('metric', async () => {
      const { body } = await httpGet(port, '/metrics');
      const m = /konnectivity_network_proxy_agent_destination_denied_total (\d+)/.exec(body);
      return m && Number(m[1]) >= 3 ? true : undefined;
    });
  });
});
