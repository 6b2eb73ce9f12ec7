// Our gRPC clients (the dialer's and the agent's) speak gRPC over node:http2 themselves: check
// them against grpc-js, an independent gRPC implementation, playing the proxy-server: data
// both ways, statuses in trailers and in a trailers-only answer, a peer that is not gRPC at
// all, and keepalive against a server that stops answering.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerDuplexStream } from '@grpc/grpc-js';
import { dial, TunnelError } from '../../ccm-integration/dialer/index.js';
import { PROXY_METHOD, proxyServiceDefinition } from '../../proto/services.js';
import { GrpcClientCall } from '../../proto/grpc-client-call.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { waitFor, within } from '../support/wait.js';
import { testPki } from '../support/pki.js';
import { deterministicChunks, hashOf, readAllHash, writeAll } from '../support/targets.js';
import { freezableRelay } from '../support/frozen-relay.js';

type Call = ServerDuplexStream<Packet, Packet>;

/** Options of a bare GrpcClientCall; each test overrides what it is about. */
const CALL_OPTIONS = {
  path: PROXY_METHOD,
  metadata: {},
  windowBytes: 65_535,
  maxMessageBytes: 1024,
  userAgent: 'test',
};

function connected(call: GrpcClientCall): Promise<void> {
  return new Promise((resolve) => call.session.once('connect', () => resolve()));
}

/** What the fake proxy does with a DIAL_REQ to each address. */
function fakeProxy(call: Call): void {
  const connectID = 42n;
  call.on('data', (p: Packet) => {
    if (p.type === PacketType.DIAL_REQ) {
      if (p.address === 'fail:1') {
        call.emit('error', { code: status.UNAVAILABLE, details: 'busy: 100% full' });
        return;
      }
      call.write(packets.dialResponse(p.random, connectID));
      if (p.address === 'reset:1') setImmediate(() => call.end());
    } else if (p.type === PacketType.DATA && p.data.length > 0) {
      call.write(packets.data(connectID, p.data)); // echo
    } else if (p.type === PacketType.CLOSE_REQ) {
      call.write(packets.closeResponse(connectID, ''));
      call.end();
    }
  });
  call.on('error', () => undefined);
}

describe('gRPC dialer against grpc-js', () => {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-dialer-'));
  const grpcSock = join(dir, 'grpc.sock');
  const plainSock = join(dir, 'plain.sock');
  const server = new Server();
  const plain = http2.createServer((_req, res) => res.writeHead(404).end('not here'));

  before(async () => {
    server.addService(proxyServiceDefinition, { Proxy: fakeProxy });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${grpcSock}`, ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await new Promise<void>((resolve) => plain.listen(plainSock, resolve));
  });

  after(async () => {
    server.forceShutdown();
    await new Promise<void>((resolve) => plain.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries 8 MiB each way intact, with backpressure, and closes with CLOSE_REQ/CLOSE_RSP', async () => {
    const s = await dial({ protocol: 'grpc', uds: grpcSock }, 'echo:1', { halfClose: false });
    const total = 8 * 1024 * 1024;
    const echoed = readAllHash(s);
    await writeAll(s, deterministicChunks(total, 7));
    s.end(); // CLOSE_REQ follows every DATA packet, so the fake answers CLOSE_RSP after the echo
    const result = await echoed;
    assert.equal(result.bytes, total);
    assert.equal(result.hash, hashOf(total, 7));
  });

  it('reports a status sent before the dial is answered, with its percent-encoded message decoded', async () => {
    await assert.rejects(dial({ protocol: 'grpc', uds: grpcSock }, 'fail:1'), (err: TunnelError) => {
      assert.match(err.message, /proxy stream failed: 14 UNAVAILABLE: busy: 100% full/);
      return true;
    });
  });

  it('ends the socket when the proxy finishes the call with OK', async () => {
    const s = await dial({ protocol: 'grpc', uds: grpcSock }, 'reset:1');
    const ended = new Promise<void>((resolve) => s.once('end', resolve));
    s.resume();
    await ended;
  });

  it('fails clearly against an HTTP/2 server that is not gRPC, and on a missing socket', async () => {
    await assert.rejects(dial({ protocol: 'grpc', uds: plainSock }, 'echo:1'), /HTTP 404/);
    await assert.rejects(dial({ protocol: 'grpc', uds: join(dir, 'missing.sock') }, 'echo:1'), /ENOENT/);
  });

  it('opens its connection with the receive windows asked for, for the stream and the connection', async () => {
    const window = 8 * 1024 * 1024;
    const call = new GrpcClientCall({ uds: grpcSock }, { ...CALL_OPTIONS, windowBytes: window });
    call.onEnd = () => undefined;
    try {
      await connected(call);
      await waitFor('SETTINGS acknowledged', () => !call.session.pendingSettingsAck);
      assert.equal(call.session.localSettings.initialWindowSize, window);
      // A round trip, so that the connection-level WINDOW_UPDATE has been applied.
      await new Promise<void>((resolve) => call.session.ping(() => resolve()));
      assert.ok(
        (call.session.state.effectiveLocalWindowSize ?? 0) >= window,
        `connection window ${String(call.session.state.effectiveLocalWindowSize)}`,
      );
    } finally {
      call.cancel();
    }
  });

  it('offers the extra ALPN protocols before h2 over TLS, and verifies the server certificate', async () => {
    const pki = await testPki();
    let offered: string[] = [];
    const tlsServer = http2.createSecureServer({
      key: readFileSync(pki.files.serverKey),
      cert: readFileSync(pki.files.serverCert),
      ALPNCallback: ({ protocols }) => {
        offered = protocols;
        return 'h2';
      },
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    const port = (tlsServer.address() as net.AddressInfo).port;
    try {
      const call = new GrpcClientCall(
        { host: '127.0.0.1', port, tls: { ca: readFileSync(pki.files.ca), alpnProtocols: ['konnectivity'] } },
        CALL_OPTIONS,
      );
      call.onEnd = () => undefined;
      await connected(call);
      assert.deepEqual(offered, ['konnectivity', 'h2']);
      call.cancel();
      // A CA that did not sign the server's certificate: refused, with the ALPN path too.
      const untrusted = new GrpcClientCall(
        { host: '127.0.0.1', port, tls: { ca: readFileSync(pki.files.serverCert), alpnProtocols: ['x'] } },
        CALL_OPTIONS,
      );
      const err = await within(
        new Promise<Error | null>((resolve) => (untrusted.onEnd = resolve)),
        10_000,
        'refusal',
      );
      assert.match(String(err?.message), /certificate/i);
    } finally {
      await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    }
  });

  it('gives up on a connection whose server stops answering keepalive pings', async () => {
    const relaySock = join(dir, 'relay.sock');
    const relay = await freezableRelay(grpcSock, relaySock);
    try {
      const call = new GrpcClientCall(
        { uds: relaySock },
        { ...CALL_OPTIONS, keepaliveTimeMs: 100, keepaliveTimeoutMs: 1000 },
      );
      const ended = new Promise<Error | null>((resolve) => (call.onEnd = resolve));
      await connected(call);
      // Pings are answered while the relay moves bytes: the call stays open over several rounds.
      for (let pongs = 0; pongs < 3; pongs++) {
        await new Promise<void>((resolve, reject) =>
          call.session.ping((err) => (err ? reject(err) : resolve())),
        );
      }
      assert.equal(call.open, true);
      relay.freeze();
      const err = await within(ended, 10_000, 'the call to give up');
      assert.match(String(err?.message), /keepalive ping not answered within 1000ms/);
      assert.equal(call.open, false);
    } finally {
      await relay.close();
    }
  });
});
