// The dialer speaks gRPC over node:http2 itself: check it against grpc-js, an independent gRPC
// implementation, playing the proxy-server: data both ways, statuses in trailers and in a
// trailers-only answer, and a peer that is not gRPC at all.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerDuplexStream } from '@grpc/grpc-js';
import { dial, TunnelError } from '../../ccm-integration/dialer/index.js';
import { proxyServiceDefinition } from '../../proto/services.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { deterministicChunks, hashOf, readAllHash, writeAll } from '../support/targets.js';

type Call = ServerDuplexStream<Packet, Packet>;

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
});
