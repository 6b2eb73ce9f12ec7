// Hostile and malformed input: each gets a clear answer or log line, ends only the offending
// stream, and leaves the process and every other connection working.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Client } from '@grpc/grpc-js';
import { PacketType, packets } from '../../proto/packet.js';
import { frontendClient, nextPacket, proxyStream } from '../support/proxy-client.js';
import { startPair, type Cluster } from '../support/cluster.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { agentArgs, metric, spawnBin } from '../support/processes.js';
import { rawExchange } from '../support/raw.js';

async function stillServes(cluster: Cluster, target: LabTarget): Promise<void> {
  assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
}

describe('bad input', () => {
  let target: LabTarget;
  let grpc: Cluster;
  let connect: Cluster;
  let pair: Awaited<ReturnType<typeof startPair>>;
  before(async () => {
    pair = await startPair();
    ({ target, grpc, connect } = pair);
  });
  after(() => pair.stop());

  it('random bytes on the gRPC Unix socket and on the agent port are dropped; both processes keep serving', async () => {
    await rawExchange(() => net.connect(grpc.frontend.uds ?? ''), randomBytes(4096));
    await rawExchange(() => net.connect(grpc.server.agentPort, '127.0.0.1'), randomBytes(4096));
    await rawExchange(() => net.connect(connect.frontend.uds ?? ''), randomBytes(4096));
    await stillServes(grpc, target);
    await stillServes(connect, target);
  });

  it('answers malformed CONNECT requests with 400, 405 and 431, never forwarding them', async () => {
    const uds = connect.frontend.uds ?? '';
    const ask = (req: string) => rawExchange(() => net.connect(uds), req);
    const before = await metric(
      connect.server.adminPort,
      'konnectivity_network_proxy_server_dial_duration_seconds_count',
    );
    assert.match(
      await ask('CONNECT :443 HTTP/1.1\r\nHost: x\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*has no host/,
    );
    assert.match(
      await ask('CONNECT example.com:99999 HTTP/1.1\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*out of range/,
    );
    assert.match(
      await ask('CONNECT example.com HTTP/1.1\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*no port/,
    );
    assert.match(await ask('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(await ask('NOT HTTP AT ALL\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request\r\n/);
    const huge = `CONNECT ${target.address} HTTP/1.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`;
    assert.match(await ask(huge), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    const after = await metric(
      connect.server.adminPort,
      'konnectivity_network_proxy_server_dial_duration_seconds_count',
    );
    assert.equal(after, before, 'no malformed request reached an agent');
    await stillServes(connect, target);
  });

  it('forwards bytes sent right after the CONNECT head', async () => {
    const answer = await rawExchange(
      () => net.connect(connect.frontend.uds ?? ''),
      `CONNECT ${target.address} HTTP/1.1\r\nHost: ${target.address}\r\n\r\nid\n`,
    );
    assert.equal(answer, 'HTTP/1.1 200 Connection Established\r\n\r\nlab\n');
  });

  describe('on the gRPC frontend', () => {
    let client: Client;
    before(() => {
      client = frontendClient(grpc.frontend.uds ?? '');
    });
    after(() => client.close());
    const open = () => proxyStream(client);

    it('answers DATA for a connection the stream does not own with a CLOSE_RSP error', async () => {
      const call = open();
      call.write(packets.data(12345n, Buffer.from('intrusion')));
      const p = await nextPacket(call);
      assert.ok(
        p.type === PacketType.CLOSE_RSP && p.connectID === 12345n && /unknown connectID/.test(p.error),
      );
      call.on('error', () => undefined); // CANCELLED, our own doing
      call.cancel();
    });

    it('ignores an unknown packet type and keeps the stream usable', async () => {
      const call = open();
      call.write({ type: PacketType.UNKNOWN, wireType: 42 });
      call.write(packets.dialRequest(target.address, 77n));
      const p = await nextPacket(call);
      assert.ok(p.type === PacketType.DIAL_RSP && p.random === 77n && p.error === '' && p.connectID > 0n);
      call.write(packets.closeRequest(p.connectID));
      call.end();
    });

    it('ends only the stream that sends an oversized gRPC message', async () => {
      const call = open();
      const failed = new Promise<{ code: number }>((resolve) => call.once('error', resolve));
      call.write(packets.data(1n, Buffer.alloc(5 * 1024 * 1024)));
      assert.equal((await failed).code, 8 /* RESOURCE_EXHAUSTED */);
      await stillServes(grpc, target);
    });
  });

  /** The agent is refused at the TLS handshake: it logs so, and the server still has one agent. */
  async function refusedAgent(args: string[]): Promise<void> {
    const agent = spawnBin('proxy-agent', args);
    try {
      await agent.waitLog('cannot connect to proxy-server');
      assert.equal(
        await metric(grpc.server.adminPort, 'konnectivity_network_proxy_server_ready_backend_connections'),
        1,
      );
      assert.equal(
        agent.lines.some((l) => l.msg === 'connected to proxy-server'),
        false,
        'the refused agent was never admitted',
      );
    } finally {
      await agent.kill();
    }
  }

  it('refuses an agent that presents no certificate when --cluster-ca-cert is set', async () => {
    const pki = grpc.pki;
    await refusedAgent(
      agentArgs({ ca: pki.files.ca, agentCert: '', agentKey: '' }, grpc.server.agentPort).filter(
        (a) => !a.startsWith('--agent-cert') && !a.startsWith('--agent-key'),
      ),
    );
  });

  it('refuses an agent whose certificate is not signed by --cluster-ca-cert', async () => {
    const pki = grpc.pki;
    await refusedAgent(
      agentArgs(
        { ca: pki.files.ca, agentCert: pki.rogueAgentCert, agentKey: pki.rogueAgentKey },
        grpc.server.agentPort,
      ),
    );
  });
});
