// Limits: each one hit, with the dial refused at once and every other connection unharmed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connectivityState, type Client } from '@grpc/grpc-js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { frontendClient, nextPacket, proxyStream } from '../support/proxy-client.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { connectScriptedAgent, type ScriptedAgent } from '../support/scripted-agent.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { metric, waitMetric } from '../support/processes.js';
import { waitFor, within } from '../support/wait.js';
import { rawExchange } from '../support/raw.js';

/** A raw CONNECT on the frontend socket; resolves with the socket once a status line arrived. */
function openConnect(uds: string, address: string): Promise<{ socket: net.Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(uds);
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve({ socket, head });
      }
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.write(`CONNECT ${address} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

describe('limits (http-connect, scripted agent)', () => {
  let cluster: Cluster;
  let agent: ScriptedAgent;
  const sockets: net.Socket[] = [];
  before(async () => {
    cluster = await startCluster('http-connect', 'uds', {
      agents: 0,
      serverArgs: [
        '--max-pending-dials=3',
        '--max-connections-per-agent=5',
        '--frontend-header-timeout=300ms',
      ],
    });
    agent = await connectScriptedAgent(cluster, 'limits-agent');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    agent.close();
    await cluster.stop();
  });

  const uds = () => cluster.frontend.uds ?? '';
  const pendingAnswers: Promise<{ socket: net.Socket; head: string }>[] = [];

  it('refuses a dial over --max-pending-dials with 429 while the pending ones proceed', async () => {
    for (let i = 0; i < 3; i++) pendingAnswers.push(openConnect(uds(), `10.0.0.${i + 1}:80`));
    const requests: Packet[] = [];
    for (let i = 0; i < 3; i++) requests.push(await agent.inbox.next());
    assert.ok(requests.every((p) => p.type === PacketType.DIAL_REQ));
    const over = await rawExchange(
      () => net.connect(uds()),
      'CONNECT 10.0.0.9:80 HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.match(over, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
    assert.match(over, /too many pending dials \(limit 3\)/);
    // The three pending dials complete normally.
    let id = 1n;
    for (const p of requests) agent.stream.write(packets.dialResponse(p.random, id++));
    for (const answer of pendingAnswers) {
      const { socket, head } = await answer;
      sockets.push(socket);
      assert.match(head, /^HTTP\/1\.1 200 /);
    }
  });

  it('refuses a dial over --max-connections-per-agent, counting open and pending ones', async () => {
    const more = [openConnect(uds(), '10.0.1.1:80'), openConnect(uds(), '10.0.1.2:80')];
    const r1 = await agent.inbox.next();
    const r2 = await agent.inbox.next();
    const over = await rawExchange(
      () => net.connect(uds()),
      'CONNECT 10.0.1.3:80 HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.match(over, /^HTTP\/1\.1 429 /);
    assert.match(over, /agent limits-agent carries its limit of 5 connections/);
    for (const [p, id] of [
      [r1, 4n],
      [r2, 5n],
    ] as const)
      if (p.type === PacketType.DIAL_REQ) agent.stream.write(packets.dialResponse(p.random, id));
    for (const m of more) {
      const { socket, head } = await m;
      sockets.push(socket);
      assert.match(head, /^HTTP\/1\.1 200 /);
    }
    assert.equal(
      await metric(
        cluster.server.adminPort,
        'konnectivity_network_proxy_server_dial_failure_count{reason="limit"}',
      ),
      2,
    );
  });

  it('answers 408 and drops a client whose request head is not complete in time (slowloris)', async () => {
    const answer = await within(
      rawExchange(() => net.connect(uds()), 'CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: x\r\nX-Slow: '),
      10_000,
      'slow client dropped',
    );
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('leaves the established connections working', async () => {
    const first = sockets[1];
    assert.ok(first);
    first.write('still here');
    const data = await agent.inbox.next();
    assert.equal(data.type, PacketType.DATA);
    assert.equal(data.data.toString(), 'still here');
  });
});

describe('limits (grpc frontend, real agent)', () => {
  let cluster: Cluster;
  let target: LabTarget;
  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('grpc', 'uds', {
      serverArgs: [
        '--max-dials-per-second=1',
        '--max-grpc-message-size=65536',
        '--idle-connection-timeout=300ms',
      ],
    });
  });
  after(async () => {
    await cluster.stop();
    await target.stop();
  });

  /** Several Proxy streams over ONE HTTP/2 connection, as a client that reuses its channel. */
  const openStreams = (client: Client, n: number) => Array.from({ length: n }, () => proxyStream(client));
  const uds = () => cluster.frontend.uds ?? '';

  it('refuses dials over --max-dials-per-second on one connection; a new connection is not affected', async () => {
    const client = frontendClient(uds());
    try {
      const streams = openStreams(client, 5);
      const answers = streams.map(nextPacket);
      streams.forEach((s, i) => s.write(packets.dialRequest(target.address, BigInt(i + 1), 'tcp')));
      const results = await Promise.all(answers);
      const refused = results.filter(
        (p) => p.type === PacketType.DIAL_RSP && /dial rate limit/.test(p.error),
      );
      const ok = results.filter((p) => p.type === PacketType.DIAL_RSP && p.error === '');
      assert.ok(refused.length >= 1, 'at least one dial refused');
      assert.ok(ok.length >= 1, 'the first dial went through');
      for (const s of streams) s.cancel();
    } finally {
      client.close();
    }
    const fresh = frontendClient(uds());
    try {
      const [s] = openStreams(fresh, 1);
      assert.ok(s);
      const answer = nextPacket(s);
      s.write(packets.dialRequest(target.address, 99n, 'tcp'));
      const p = await answer;
      assert.equal(p.type === PacketType.DIAL_RSP ? p.error : 'not a DIAL_RSP', '');
      s.cancel();
    } finally {
      fresh.close();
    }
  });

  it('closes a connection that never speaks, and one that opens no stream, after --idle-connection-timeout', async () => {
    const silent = net.connect(cluster.frontend.uds ?? '');
    silent.on('error', () => undefined);
    silent.resume(); // read what the server sends (SETTINGS, GOAWAY) so its close is seen
    await within(
      new Promise((r) => silent.once('close', r)),
      10_000,
      'silent connection closed by the server',
    );
    const client = frontendClient(uds());
    try {
      await new Promise<void>((resolve, reject) => {
        client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve()));
      });
      // READY with no stream: the server's idle timer sends GOAWAY and the channel goes IDLE.
      await waitFor(
        'channel idle after GOAWAY',
        () => client.getChannel().getConnectivityState(false) === connectivityState.IDLE || undefined,
        10_000,
      );
    } finally {
      client.close();
    }
  });

  it('writes one audit line per dial: frontend, target, agent, result, duration, bytes each way', async () => {
    assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
    const line = await waitFor('audit line', () =>
      cluster.server.proc.lines.find(
        (l) =>
          l.audit === 'dial' && l.result === 'ok' && l.address === target.address && l.bytesToAgent === 3,
      ),
    );
    assert.equal(line.frontend, 'grpc');
    assert.equal(line.bytesFromAgent, 4);
    assert.equal(typeof line.agentID, 'string');
    assert.equal(typeof line.durationMs, 'number');
    assert.equal(line.level, 30, 'info level');
    const refused = cluster.server.proc.lines.find((l) => l.audit === 'dial' && l.result === 'refused');
    assert.match(String(refused?.error), /dial rate limit/);
  });

  it('ends a stream that sends a message over --max-grpc-message-size; the server carries on', async () => {
    const client = frontendClient(uds());
    try {
      const [s] = openStreams(client, 1);
      assert.ok(s);
      const answer = nextPacket(s);
      s.write(packets.dialRequest(target.address, 7n, 'tcp'));
      const rsp = await answer;
      assert.equal(rsp.type, PacketType.DIAL_RSP);
      const failed = new Promise<Error>((resolve) => s.once('error', resolve));
      s.write(packets.data(rsp.connectID, Buffer.alloc(100_000)));
      assert.match((await failed).message, /RESOURCE_EXHAUSTED|larger than max/i);
    } finally {
      client.close();
    }
    await waitMetric(
      cluster.server.adminPort,
      'konnectivity_network_proxy_server_established_connections',
      0,
    );
  });
});
