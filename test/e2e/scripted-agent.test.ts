// A scripted agent (our own gRPC client on the agent port, with a valid certificate) to drive
// the server through what a real agent rarely does: bad packets, silence, late answers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { dial, ErrorCode, type TunnelError } from '../../ccm-integration/dialer/index.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { connectScriptedAgent, type PacketQueue, type ScriptedAgent } from '../support/scripted-agent.js';
import { httpGet, metric } from '../support/processes.js';
import { waitFor, within } from '../support/wait.js';

describe('with a scripted agent', () => {
  let cluster: Cluster;
  let agent: ScriptedAgent;
  let stream: ClientDuplexStream<Packet, Packet>;
  let inbox: PacketQueue;
  before(async () => {
    cluster = await startCluster('grpc', 'uds', { agents: 0, serverArgs: ['--backend-dial-timeout=700ms'] });
    agent = await connectScriptedAgent(cluster, 'scripted-agent');
    ({ stream, inbox } = agent);
  });
  after(async () => {
    agent.close();
    await cluster.stop();
  });

  it('survives a DIAL_RSP for an unknown dial, an unknown type and DATA for an unknown connection', async () => {
    stream.write(packets.dialResponse(424242n, 9n));
    stream.write({ type: PacketType.UNKNOWN, wireType: 99 });
    stream.write(packets.data(555n, Buffer.from('nobody')));
    // The server asks the agent to close the connection nobody waits for.
    const p = await inbox.next();
    assert.ok(p.type === PacketType.CLOSE_REQ && p.connectID === 9n);
    // The same stream still carries dials.
    const dialing = dial(cluster.frontend, 'node-1.invalid:80');
    const req = await inbox.next();
    assert.ok(req.type === PacketType.DIAL_REQ, 'the scripted agent receives the dial');
    assert.equal(req.address, 'node-1.invalid:80');
    stream.write(packets.dialResponse(req.random, 1n));
    const sock = await dialing;
    const got = new Promise<Buffer>((resolve) => sock.once('data', resolve));
    stream.write(packets.data(1n, Buffer.from('from the scripted agent')));
    assert.equal((await got).toString(), 'from the scripted agent');
    sock.destroy();
    const close = await inbox.next();
    assert.ok(
      close.type === PacketType.CLOSE_REQ && close.connectID === 1n,
      'the client leaving closes the agent side',
    );
  });

  it('sends an agent that offered no extension plain upstream packets only', async () => {
    const dialing = dial(cluster.frontend, 'node-4.invalid:80');
    const req = await inbox.next();
    assert.ok(req.type === PacketType.DIAL_REQ);
    stream.write(packets.dialResponse(req.random, 4n));
    const sock = await dialing;
    // Lots of data from the agent: an extension peer would return credit (WINDOW packets).
    for (let i = 0; i < 64; i++) stream.write(packets.data(4n, Buffer.alloc(64 * 1024, i)));
    let received = 0;
    sock.on('data', (c: Buffer) => (received += c.length));
    await waitFor('all agent data delivered', () => received === 64 * 64 * 1024);
    // The client finishes sending: an extension peer would get an EOF marker, this one CLOSE_REQ.
    sock.write('request');
    sock.end();
    const clientDone = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    const data = await inbox.next();
    assert.ok(data.type === PacketType.DATA && data.error === '' && data.data.toString() === 'request');
    const close = await inbox.next();
    assert.ok(
      close.type === PacketType.CLOSE_REQ && close.connectID === 4n,
      `got ${JSON.stringify(close.type)}`,
    );
    stream.write(packets.closeResponse(4n));
    // As upstream, the EOF ended the whole connection: the client is not left hanging.
    await within(clientDone, 10_000, 'the client connection closing');
  });

  it('a client that aborts a pending dial sends DIAL_CLS, which reaches the agent', async () => {
    const abort = new AbortController();
    const dialing = dial(cluster.frontend, 'node-2.invalid:443', { signal: abort.signal });
    const req = await inbox.next();
    assert.ok(req.type === PacketType.DIAL_REQ);
    abort.abort();
    await assert.rejects(dialing, (err: TunnelError) => err.code === ErrorCode.DIAL_CANCELLED);
    const cls = await inbox.next();
    assert.ok(cls.type === PacketType.DIAL_CLS && cls.random === req.random);
    await waitFor(
      'no pending dial left',
      async () =>
        (await metric(
          cluster.server.adminPort,
          'konnectivity_network_proxy_server_pending_backend_dials',
        )) === 0,
    );
  });

  it('a dial the agent never answers fails after --backend-dial-timeout, and the agent is told', async () => {
    const dialing = dial(cluster.frontend, 'node-3.invalid:443', { timeoutMs: 20_000 });
    const req = await inbox.next();
    assert.ok(req.type === PacketType.DIAL_REQ);
    await assert.rejects(
      dialing,
      (err: TunnelError) => err.code === ErrorCode.DIAL_FAILED && /timed out/.test(err.message),
    );
    const cls = await inbox.next();
    assert.ok(cls.type === PacketType.DIAL_CLS && cls.random === req.random);
    // A late answer is refused: the server closes the connection nobody waits for.
    stream.write(packets.dialResponse(req.random, 2n));
    const close = await inbox.next();
    assert.ok(close.type === PacketType.CLOSE_REQ && close.connectID === 2n);
  });
});

describe('with a scripted agent that negotiates flow control', () => {
  let cluster: Cluster;
  let agent: ScriptedAgent;
  let stream: ClientDuplexStream<Packet, Packet>;
  let inbox: PacketQueue;
  before(async () => {
    cluster = await startCluster('http-connect', 'uds', { agents: 0 });
    agent = await connectScriptedAgent(cluster, 'greedy-agent', 'flow-control');
    ({ stream, inbox } = agent);
  });
  after(async () => {
    agent.close();
    await cluster.stop();
  });

  it('closes a connection whose agent sends past the granted window, and tells the client', async () => {
    const dialing = dial(cluster.frontend, 'node-5.invalid:80');
    const req = await inbox.next();
    assert.ok(req.type === PacketType.DIAL_REQ);
    stream.write(packets.dialResponse(req.random, 5n));
    const sock = await dialing;
    sock.pause(); // a client that does not read: no credit comes back
    const closed = new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.once('end', () => resolve());
    });
    sock.on('error', () => undefined);
    // The server granted 8 MiB; send 16 MiB without waiting for credit.
    for (let i = 0; i < 256; i++) stream.write(packets.data(5n, Buffer.alloc(64 * 1024, 1)));
    const close = await inbox.next();
    assert.ok(
      close.type === PacketType.CLOSE_REQ && close.connectID === 5n,
      `got type ${String(close.type)}`,
    );
    sock.resume(); // the end is queued behind what the client has not read yet
    await within(closed, 10_000, 'the client connection closing');
    sock.destroy();
  });
});

describe('an agent with two streams to one server (several servers behind one address)', () => {
  let cluster: Cluster;
  const agents: ScriptedAgent[] = [];
  before(async () => {
    cluster = await startCluster('grpc', 'uds', { agents: 0 });
  });
  after(async () => {
    for (const a of agents) a.close();
    await cluster.stop();
  });

  const streamsOf = async (agentID: string): Promise<number> => {
    const { body } = await httpGet(cluster.server.adminPort, '/agents');
    return (JSON.parse(body) as { agents: { agentID: string }[] }).agents.filter((a) => a.agentID === agentID)
      .length;
  };

  /**
   * Dials once, answers the DIAL_REQ with a refusal from whichever stream it reached, and
   * returns that stream. Other packets (a DIAL_CLS for the dial before, if the client's cancel
   * overtook our refusal) are passed over.
   */
  const dialReaches = async (streams: ScriptedAgent[], host: string): Promise<ScriptedAgent> => {
    const dialing = dial(cluster.frontend, `${host}:80`);
    const [reached, req] = await waitFor('the DIAL_REQ on one of the streams', () => {
      for (const s of streams) {
        for (let p = s.inbox.take(); p; p = s.inbox.take()) {
          if (p.type === PacketType.DIAL_REQ) return [s, p] as const;
          process.stderr.write(`passed over packet type ${String(p.type)}\n`);
        }
      }
      return undefined;
    });
    reached.stream.write(packets.dialResponse(req.random, 0n, 'refused by the test'));
    await assert.rejects(dialing);
    return reached;
  };

  it("sends every dial down the agent's first stream, and down the second once the first is gone (upstream's rule)", async () => {
    const first = await connectScriptedAgent(cluster, 'twice');
    agents.push(first);
    await waitFor('the first stream listed', async () => (await streamsOf('twice')) === 1);
    // An agent behind a load balancer closes a second stream to a server it already holds as soon
    // as it reads the server's ID; a dial sent down it meanwhile would fail. This one stays open.
    const second = await connectScriptedAgent(cluster, 'twice');
    agents.push(second);
    await waitFor('both streams listed', async () => (await streamsOf('twice')) === 2);
    for (let i = 0; i < 20; i++) {
      const reached = await dialReaches([first, second], `node-${String(i)}.invalid`);
      assert.equal(reached, first, `dial ${String(i)} went down the later stream`);
    }
    first.close();
    await waitFor('the first stream gone', async () => (await streamsOf('twice')) === 1);
    assert.equal(await dialReaches([first, second], 'after.invalid'), second);
  });
});
