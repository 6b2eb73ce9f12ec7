// The server's agent port over HTTP/1.1: the WebSocket upgrade at /konnectivity/v1/agent
// beside gRPC on the same TLS listener, what anything else on HTTP/1.1 gets, and bad input on
// the WebSocket path (each closed with a close code that says what, logged, the server and
// its other agents unharmed), plus a seeded fuzz run. Real server and agent processes; the
// misbehaving agents are ws clients of the test. Keepalive on both ends runs in process.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { AGENT_WEBSOCKET_PATH, CloseCode } from '../../proto/websocket.js';
import { MetadataKey } from '../../proto/metadata.js';
import { frameArb } from '../support/fuzz-inputs.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { askLabId, closedPort, hashOf, LabTarget, readAllHash } from '../support/targets.js';
import { dial } from '../../ccm-integration/dialer/index.js';
import { httpGet, metric, spawnBin, agentArgs, waitMetric, type Proc } from '../support/processes.js';
import { rawExchange } from '../support/raw.js';
import { testPki, type TestPki } from '../support/pki.js';
import { waitFor, within } from '../support/wait.js';
import { createLogger } from '../../common/log.js';
import { WebSocketAgentEndpoint } from '../../server/websocket/websocket-agent-endpoint.js';
import { WebSocketServerStream } from '../../agent/transport/websocket-server-stream.js';

const SEED = 20261201;
const READY = 'konnectivity_network_proxy_server_ready_backend_connections';
const UPGRADE_HEAD = (agentID: string) =>
  `GET ${AGENT_WEBSOCKET_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nagentid: ${agentID}\r\n\r\n`;

/** A client of the agent port with the agent's certificate (the server requires one). */
function agentTls(pki: TestPki, port: number, alpn?: string[]): () => tls.TLSSocket {
  const f = pki.pki;
  return () =>
    tls.connect({
      host: '127.0.0.1',
      port,
      ca: f.ca.cert,
      cert: f.agent.cert,
      key: f.agent.key,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    });
}

/** A misbehaving agent of the test's own: a ws client with the agent's certificate. */
function wsAgent(
  pki: TestPki,
  port: number,
  headers: Record<string, string>,
  extra: ClientOptions = {},
): WebSocket {
  const f = pki.pki;
  const ws = new WebSocket(`wss://127.0.0.1:${port}${AGENT_WEBSOCKET_PATH}`, {
    ca: f.ca.cert,
    cert: f.agent.cert,
    key: f.agent.key,
    headers,
    perMessageDeflate: false,
    ...extra,
  });
  ws.on('error', () => undefined);
  return ws;
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', (code) => reject(new Error(`closed (${code}) before it opened`)));
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
  });
}

/** The close code the server sent after a 101 in a raw answer (its frames: unmasked, short). */
function closeCodeAfterUpgrade(answer: string): number | undefined {
  const at = answer.indexOf('\r\n\r\n');
  if (!answer.startsWith('HTTP/1.1 101') || at < 0) return undefined;
  const frames = Buffer.from(answer.slice(at + 4), 'latin1');
  // Control frames (a measuring ping comes first) carry at most 125 bytes: a one-byte length.
  for (let i = 0; i + 2 <= frames.length; i += 2 + (frames[i + 1] ?? 0)) {
    if (frames[i] === 0x88 && i + 4 <= frames.length) return frames.readUInt16BE(i + 2);
  }
  return undefined;
}

describe('the agent port over HTTP/1.1', () => {
  let cluster: Cluster;
  let target: LabTarget;
  let pki: TestPki;
  let port: number;
  let wsAgentProc: Proc;

  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('http-connect', 'uds', {
      agentTransport: 'websocket',
      agents: 0,
      serverArgs: ['--v=2'], // per-agent connect lines are at debug
    });
    wsAgentProc = await cluster.startAgent(['--agent-id=ws-agent']);
    await waitMetric(cluster.server.adminPort, READY, 1);
    pki = cluster.pki;
    port = cluster.server.agentPort;
  });
  after(async () => {
    await cluster.stop();
    await target.stop();
  });

  /** The server is alive, its one real agent still serves, and no misbehaving agent is left. */
  async function unharmed(): Promise<void> {
    assert.equal(cluster.server.proc.child.exitCode, null, 'server still running');
    await waitMetric(cluster.server.adminPort, READY, 1);
    assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
  }

  it('takes gRPC and WebSocket agents on the same port, and lists each with its transport', async () => {
    const grpc = await cluster.startAgent(['--agent-id=grpc-agent', '--transport=grpc']);
    await waitMetric(cluster.server.adminPort, READY, 2);
    const { body } = await httpGet(cluster.server.adminPort, '/agents');
    const listing = JSON.parse(body) as { agents: { agentID: string; transport: string; rttMs?: number }[] };
    const byID = new Map(listing.agents.map((a) => [a.agentID, a]));
    assert.equal(byID.get('ws-agent')?.transport, 'websocket');
    assert.equal(byID.get('grpc-agent')?.transport, 'grpc');
    const rtt = byID.get('ws-agent')?.rttMs;
    assert.ok(typeof rtt === 'number' && rtt >= 0, 'a WebSocket ping measured the round trip');
    await grpc.kill();
    await unharmed();
  });

  it('a stalled reader holds back neither another connection of the agent nor memory', async () => {
    const rss = 'process_resident_memory_bytes';
    const agentHealth = wsAgentProc.find('proxy-agent started')?.healthPort as number;
    const before = {
      server: await metric(cluster.server.adminPort, rss),
      agent: await metric(agentHealth, rss),
    };
    const stalled = await dial(cluster.frontend, target.address);
    let stalledBytes = 0;
    stalled.on('data', (c: Buffer) => {
      stalledBytes += c.length;
      stalled.pause();
    });
    stalled.write(`source ${4 * 1024 * 1024 * 1024}\n`);
    await waitFor('the stalled connection to receive its first bytes', () => stalledBytes > 0);
    const bytes = 64 * 1024 * 1024;
    const other = await dial(cluster.frontend, target.address);
    other.write(`download ${bytes} 13\n`);
    const got = await within(readAllHash(other), 60_000, 'the second connection beside a stalled one');
    assert.equal(got.bytes, bytes);
    assert.equal(got.hash, hashOf(bytes, 13));
    // The stalled connection's bytes wait in the target's socket, not in our buffers.
    for (const [name, port] of [
      ['server', cluster.server.adminPort],
      ['agent', agentHealth],
    ] as const) {
      const grown = (await metric(port, rss)) - before[name];
      assert.ok(grown < 128 * 1024 * 1024, `${name} RSS grew by ${grown} bytes`);
    }
    other.destroy();
    stalled.destroy();
    await unharmed();
  });

  it('answers 404 elsewhere, 405 to another method and 426 to a plain GET; no ALPN means HTTP/1.1', async () => {
    for (const alpn of [undefined, ['http/1.1']]) {
      const ask = (head: string) => rawExchange(agentTls(pki, port, alpn), head, 5000);
      assert.match(await ask('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 404 Not Found\r\n/);
      const post = await ask(`POST ${AGENT_WEBSOCKET_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
      assert.match(post, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
      assert.match(post, /\r\nAllow: GET\r\n/i);
      assert.match(
        await ask(`GET ${AGENT_WEBSOCKET_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`),
        /^HTTP\/1\.1 426 Upgrade Required\r\n/,
      );
      const elsewhere = await ask(
        'GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
      assert.match(elsewhere, /^HTTP\/1\.1 404 Not Found\r\n[^]*agents upgrade at \/konnectivity\/v1\/agent/);
    }
    await unharmed();
  });

  it('refuses an upgrade without the agent headers with 400 and says why', async () => {
    const ws = wsAgent(pki, port, {});
    const refusal = await new Promise<{ status: number; body: string }>((resolve) => {
      ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
          req.destroy();
        });
      });
    });
    assert.equal(refusal.status, 400);
    assert.match(refusal.body, /agentID metadata is required/);
    await waitFor('the refusal logged', () =>
      cluster.server.proc.find('agent stream refused: no agentID metadata'),
    );
    await unharmed();
  });

  for (const [what, send, code] of [
    ['a text message', (ws: WebSocket) => ws.send('hello', { binary: false }), CloseCode.unsupportedData],
    [
      'a binary message that is not a packet',
      (ws: WebSocket) => ws.send(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), { binary: true }),
      CloseCode.invalidPayload,
    ],
    [
      'a message over the size limit',
      // The limit counts the packet (4 MiB by default), not the message's 5-byte prefix.
      (ws: WebSocket) => ws.send(Buffer.alloc(5 + 4 * 1024 * 1024 + 1), { binary: true }),
      CloseCode.messageTooBig,
    ],
  ] as const) {
    it(`closes an agent that sends ${what} with ${code}, and logs it`, async () => {
      const agentID = `bad-${code}`;
      const ws = wsAgent(pki, port, { [MetadataKey.agentID]: agentID });
      await opened(ws);
      const ended = closed(ws);
      send(ws);
      assert.equal((await within(ended, 10_000, 'close')).code, code);
      await waitFor('the bad input logged', () =>
        cluster.server.proc.lines.find(
          (l) =>
            l.msg === 'agent WebSocket: bad input' &&
            (l.closeCode === code || /Max payload size exceeded/.test(String(l.error))),
        ),
      );
      await waitFor('the agent disconnected', () =>
        cluster.server.proc.lines.find((l) => l.msg === 'agent disconnected' && l.agentID === agentID),
      );
      await unharmed();
    });
  }

  it('closes a connection with garbage after the upgrade as a protocol error (1002)', async () => {
    // A frame with a reserved opcode, and one without the mask every client frame must have.
    for (const garbage of [Buffer.from([0x83, 0x80, 0, 0, 0, 0]), Buffer.from([0x82, 0x02, 0x08, 0x06])]) {
      const answer = await rawExchange(
        agentTls(pki, port),
        Buffer.concat([Buffer.from(UPGRADE_HEAD('garbage-agent')), garbage]),
        10_000,
      );
      assert.equal(
        closeCodeAfterUpgrade(answer),
        CloseCode.protocolError,
        JSON.stringify(answer.slice(0, 40)),
      );
    }
    await waitFor('the bad input logged', () =>
      cluster.server.proc.lines.find((l) => l.msg === 'agent WebSocket: bad input' && l.code !== undefined),
    );
    await unharmed();
  });

  it('survives a seeded fuzz run: mutated and misframed packets as messages, and random bytes after the upgrade', async () => {
    const closedTarget = await closedPort();
    const streams = fc.sample(fc.array(frameArb(closedTarget), { minLength: 1, maxLength: 4 }), {
      seed: SEED,
      numRuns: 60,
    });
    const start = await metric(cluster.server.adminPort, 'process_resident_memory_bytes');
    for (let i = 0; i < streams.length; i += 20) {
      await Promise.all(
        streams.slice(i, i + 20).map(async (messages, j) => {
          const ws = wsAgent(pki, port, { [MetadataKey.agentID]: `fuzz-${i + j}` });
          const ended = closed(ws);
          try {
            await opened(ws);
          } catch {
            return;
          }
          for (const m of messages) ws.send(m, { binary: true });
          // Ends it ourselves when the server found nothing wrong.
          setTimeout(() => ws.close(), 200).unref();
          await within(ended, 10_000, 'fuzz stream closed');
        }),
      );
    }
    const raws = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), { seed: SEED + 1, numRuns: 40 });
    await Promise.all(
      raws.map((raw, i) =>
        rawExchange(
          agentTls(pki, port),
          Buffer.concat([Buffer.from(UPGRADE_HEAD(`raw-${i}`)), Buffer.from(raw)]),
          1000,
        ),
      ),
    );
    await unharmed();
    await waitFor('no pending dial left', async () =>
      (await metric(cluster.server.adminPort, 'konnectivity_network_proxy_server_pending_backend_dials')) ===
      0
        ? true
        : undefined,
    );
    const rss = await metric(cluster.server.adminPort, 'process_resident_memory_bytes');
    assert.ok(rss < start + 64 * 1024 * 1024, `RSS grew from ${start} to ${rss}`);
  });

  it('refuses bad --transport and --proxy-url values, naming the flag', async () => {
    const f = pki.files;
    for (const [flag, expected] of [
      ['--transport=quic', /--transport must be one of grpc, websocket, got "quic"/],
      ['--proxy-url=socks5://127.0.0.1:1080', /--proxy-url: scheme "socks5" is not supported/],
      ['--proxy-url=http://127.0.0.1:3128/path', /--proxy-url: .* has a path or query/],
    ] as const) {
      const p = spawnBin('proxy-agent', agentArgs(f, port, [flag]));
      assert.equal(await p.exited, 2, flag);
      assert.match(p.output(), expected);
    }
  });
});

describe('WebSocket keepalive, in process', () => {
  let pki: TestPki;
  before(async () => {
    pki = await testPki();
  });

  it('the agent closes its stream when the server does not answer a ping in time', async () => {
    const f = pki.pki;
    const server = https.createServer({ key: f.server.key, cert: f.server.cert });
    const wss = new WebSocketServer({ server, autoPong: false });
    wss.on('headers', (headers: string[]) => headers.push('serverid: mute-server', 'servercount: 1'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      let stream: WebSocketServerStream | undefined;
      const ended = new Promise<Error | null>((resolve) => {
        stream = new WebSocketServerStream(
          {
            transport: 'websocket',
            target: { host: '127.0.0.1', port, tls: { ca: Buffer.from(f.ca.cert) } },
          },
          { windowBytes: 65_535, maxMessageBytes: 1 << 20, keepaliveTimeMs: 100, keepaliveTimeoutMs: 300 },
          { agentid: 'keepalive-agent' },
          { onHeaders: () => undefined, onPacket: () => undefined, onEnd: resolve },
        );
      });
      const err = await within(ended, 10_000, 'the agent gives up');
      assert.match(String(err?.message), /keepalive ping not answered within 300ms/);
      assert.equal(stream?.open, false);
    } finally {
      for (const c of wss.clients) c.terminate();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('the server closes an agent stream that does not answer a ping in time', async () => {
    const f = pki.pki;
    const log = createLogger({ component: 'test', level: 'silent' });
    let closedWith: string | undefined;
    const endpoint = new WebSocketAgentEndpoint(
      (stream) => {
        stream.onClose = (reason) => (closedWith = reason);
        stream.sendHeaders({ serverid: 'test' });
        stream.resume();
      },
      { maxMessageBytes: 1 << 20, keepaliveTimeMs: 100, keepaliveTimeoutMs: 300, headerTimeoutMs: 5000 },
      log,
    );
    const server = tls.createServer({ key: f.server.key, cert: f.server.cert }, (socket) => {
      endpoint.accept(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const ws = new WebSocket(`wss://127.0.0.1:${port}${AGENT_WEBSOCKET_PATH}`, {
      ca: f.ca.cert,
      autoPong: false,
      headers: { agentid: 'mute-agent' },
    });
    ws.on('error', () => undefined);
    try {
      await opened(ws);
      await within(closed(ws), 10_000, 'the server gives up');
      assert.match(String(closedWith), /keepalive ping not answered within 300ms/);
    } finally {
      ws.terminate();
      endpoint.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
