// Our gRPC server (server/grpc/) speaks gRPC over node:http2 itself: check it against grpc-js,
// an independent gRPC client, and against raw HTTP/2 where the check is about the wire: data
// both ways, statuses, limits, receive windows in effect, deadlines, keepalive, idle
// connections and a graceful stop.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Metadata, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { GrpcServer, type GrpcServerOptions } from '../../server/grpc/server.js';
import type { GrpcServerCall } from '../../server/grpc/call.js';
import { GrpcStatus } from '../../proto/grpc-status.js';
import { decodePacket, encodeFramedPacket, encodePacket } from '../../proto/codec.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { createLogger } from '../../common/log.js';
import { waitFor, within } from '../support/wait.js';
import { deterministicChunks, hashOf } from '../support/targets.js';
import { freezableRelay } from '../support/frozen-relay.js';
import { createHash } from 'node:crypto';

const log = createLogger({ component: 'test', level: 'silent' });
const ECHO = '/Test/Echo';
const STATUS = '/Test/Status';
const HOLD = '/Test/Hold';

type ClientCall = ClientDuplexStream<Packet, Packet>;

/** Echoes every DATA packet back with backpressure; ends with OK when the client ends. */
function echo(call: GrpcServerCall): void {
  call.on('drain', () => call.resume());
  call.onPacket = (p) => {
    if (p.type !== PacketType.DATA) return;
    if (!call.write(packets.data(p.connectID, p.data))) call.pause();
  };
  call.onEnd = () => call.end();
}

/** Sends three packets, then the status the client asked for in its metadata. */
function statusAfterMessages(call: GrpcServerCall): void {
  for (let i = 1n; i <= 3n; i++) call.write(packets.closeResponse(i, ''));
  call.end(Number(call.header('want-status')), 'busy: 100% full');
}

describe('our gRPC server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-server-'));
  let closedReasons: string[] = [];
  const hold = (call: GrpcServerCall) => {
    call.sendHeaders();
    call.onEnd = () => call.end();
    call.onClose = (reason) => closedReasons.push(reason);
  };
  const servers: GrpcServer[] = [];

  async function start(options: Partial<GrpcServerOptions> = {}): Promise<string> {
    const server = new GrpcServer(
      { [ECHO]: echo, [STATUS]: statusAfterMessages, [HOLD]: hold },
      {
        windowBytes: 65_535,
        maxMessageBytes: 64 * 1024,
        keepaliveTimeMs: 0,
        keepaliveTimeoutMs: 1000,
        idleConnectionMs: 0,
        ...options,
      },
      log,
    );
    servers.push(server);
    const sock = join(dir, `s${servers.length}.sock`);
    await server.listenUds(sock, true);
    return sock;
  }

  const grpcClient = (sock: string) => new Client(`unix:${sock}`, credentials.createInsecure());
  const open = (client: Client, path: string, md = new Metadata()): ClientCall =>
    client.makeBidiStreamRequest<Packet, Packet>(path, encodePacket, decodePacket, md);
  const failure = (call: ClientCall) =>
    new Promise<{ code: number; details: string }>((resolve) => call.once('error', resolve));

  let sock: string;
  before(async () => {
    sock = await start();
  });
  after(() => {
    for (const s of servers) s.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('echoes 8 MiB to a grpc-js client intact, with backpressure both ways', async () => {
    const client = grpcClient(sock);
    try {
      const call = open(client, ECHO);
      const total = 8 * 1024 * 1024;
      const hash = createHash('sha256');
      let bytes = 0;
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (p: Packet) => {
          if (p.type === PacketType.DATA) {
            hash.update(p.data);
            bytes += p.data.length;
          }
        });
        call.on('end', resolve);
        call.on('error', reject);
      });
      for (const chunk of deterministicChunks(total, 3)) {
        // Under the 64 KiB message limit of this server, with the packet around it.
        for (let at = 0; at < chunk.length; at += 16_384) {
          const part = chunk.subarray(at, at + 16_384);
          if (!call.write(packets.data(1n, part))) await new Promise((r) => call.once('drain', r));
        }
      }
      call.end();
      await done;
      assert.equal(bytes, total);
      assert.equal(hash.digest('hex'), hashOf(total, 3));
    } finally {
      client.close();
    }
  });

  it('sends every message before a status in trailers, and a trailers-only status, percent-encoded', async () => {
    const client = grpcClient(sock);
    try {
      const md = new Metadata();
      md.set('want-status', String(GrpcStatus.UNAVAILABLE));
      const call = open(client, STATUS, md);
      const got: bigint[] = [];
      call.on('data', (p: Packet) => p.type === PacketType.CLOSE_RSP && got.push(p.connectID));
      const err = await failure(call);
      assert.deepEqual(got, [1n, 2n, 3n]);
      assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      assert.equal(err.details, 'busy: 100% full');

      const unknown = open(client, '/Test/Nothing');
      const err2 = await failure(unknown);
      assert.equal(err2.code, GrpcStatus.UNIMPLEMENTED);
      assert.match(err2.details, /unknown method \/Test\/Nothing/);
    } finally {
      client.close();
    }
  });

  it('ends only the stream that sends an oversized message (RESOURCE_EXHAUSTED); its neighbour goes on', async () => {
    const client = grpcClient(sock);
    try {
      const neighbour = open(client, ECHO);
      const call = open(client, ECHO);
      const failed = failure(call);
      call.write(packets.data(1n, Buffer.alloc(100_000)));
      const err = await failed;
      assert.equal(err.code, GrpcStatus.RESOURCE_EXHAUSTED);
      assert.match(err.details, /exceeds the limit of 65536/);
      const back = new Promise<Packet>((resolve) => neighbour.once('data', resolve));
      neighbour.write(packets.data(2n, Buffer.from('still here')));
      const p = await back;
      assert.equal(p.type === PacketType.DATA ? p.data.toString() : '', 'still here');
      neighbour.end();
    } finally {
      client.close();
    }
  });

  it('answers what is not a gRPC call with HTTP errors, and an undecodable packet with INTERNAL', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
    session.on('error', () => undefined);
    const answer = (headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
      new Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader>((resolve) => {
        const req = session.request(headers);
        let last: http2.IncomingHttpHeaders = {};
        req.on('response', (h) => (last = h));
        req.on('trailers', (t: http2.IncomingHttpHeaders) => (last = { ...last, ...t }));
        req.on('close', () => resolve(last));
        req.on('error', () => undefined);
        req.resume();
        req.end(body);
      });
    try {
      assert.equal((await answer({ ':method': 'GET', ':path': ECHO }))[':status'], 405);
      const json = await answer({ ':method': 'POST', ':path': ECHO, 'content-type': 'application/json' });
      assert.equal(json[':status'], 415);
      // A well-framed message whose bytes are not a Packet.
      const garbage = Buffer.from([0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
      const bad = await answer(
        { ':method': 'POST', ':path': ECHO, 'content-type': 'application/grpc' },
        garbage,
      );
      assert.equal(bad['grpc-status'], String(GrpcStatus.INTERNAL));
      assert.match(String(bad['grpc-message']), /cannot decode a packet/);
      const compressed = Buffer.from([1, 0, 0, 0, 0]);
      const zipped = await answer(
        { ':method': 'POST', ':path': ECHO, 'content-type': 'application/grpc' },
        compressed,
      );
      assert.equal(zipped['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
    } finally {
      session.destroy();
    }
  });

  it('grants the receive windows it is configured with, for the stream and the connection', async () => {
    const window = 8 * 1024 * 1024;
    const wide = await start({ windowBytes: window });
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(wide) });
    session.on('error', () => undefined);
    try {
      await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
      assert.equal(session.remoteSettings.initialWindowSize, window);
      // A round trip, so that the connection-level WINDOW_UPDATE has been applied.
      await new Promise<void>((resolve) => session.ping(() => resolve()));
      assert.equal(session.state.remoteWindowSize, 2 * window);
    } finally {
      session.destroy();
    }
  });

  it('ends a call whose grpc-timeout passes with DEADLINE_EXCEEDED', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
    session.on('error', () => undefined);
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': HOLD,
        'content-type': 'application/grpc',
        'grpc-timeout': '200m',
      });
      req.on('error', () => undefined);
      req.write(encodeFramedPacket(packets.data(1n, Buffer.from('x'))));
      const trailers = await within(
        new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve)),
        10_000,
        'status',
      );
      assert.equal(trailers['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
      assert.equal(trailers['grpc-message'], 'deadline exceeded');
    } finally {
      session.destroy();
    }
  });

  it('closes a connection whose client stops answering keepalive pings, and tells the call why', async () => {
    const pinging = await start({ keepaliveTimeMs: 100, keepaliveTimeoutMs: 500 });
    const relaySock = join(dir, 'relay.sock');
    const relay = await freezableRelay(pinging, relaySock);
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(relaySock) });
    session.on('error', () => undefined);
    closedReasons = [];
    try {
      const req = session.request({ ':method': 'POST', ':path': HOLD, 'content-type': 'application/grpc' });
      req.on('error', () => undefined);
      req.write(encodeFramedPacket(packets.data(1n, Buffer.from('x'))));
      await new Promise((r) => req.once('response', r));
      // Several keepalive rounds pass while the relay moves bytes: the call stays.
      let pings = 0;
      session.on('ping', () => pings++);
      await waitFor('pings answered', () => pings >= 3 || undefined);
      assert.deepEqual(closedReasons, []);
      relay.freeze();
      const reason = await within(
        waitFor('call closed', () => closedReasons[0]),
        10_000,
        'the server to give up',
      );
      assert.match(reason, /aborted|closed/);
    } finally {
      session.destroy();
      await relay.close();
    }
  });

  it('sends GOAWAY on a connection without streams after the idle timeout, not while a stream is open', async () => {
    const idle = await start({ idleConnectionMs: 200 });
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(idle) });
    session.on('error', () => undefined);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    try {
      const req = session.request({ ':method': 'POST', ':path': ECHO, 'content-type': 'application/grpc' });
      req.on('error', () => undefined);
      // Echo round trips over several idle periods: the connection is in use.
      for (let i = 0; i < 5; i++) {
        const back = new Promise((r) => req.once('data', r));
        req.write(encodeFramedPacket(packets.data(1n, Buffer.from('ping'))));
        await back;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(goaway, false);
      req.end();
      await new Promise((r) => req.once('close', r));
      await within(
        waitFor('GOAWAY', () => goaway || undefined),
        10_000,
        'GOAWAY',
      );
    } finally {
      session.destroy();
    }
  });

  it('stops gracefully: GOAWAY, an open call finishes, a new connection is refused', async () => {
    const stopping = await start();
    const server = servers[servers.length - 1];
    const client = grpcClient(stopping);
    try {
      const call = open(client, ECHO);
      const first = new Promise<Packet>((resolve) => call.once('data', resolve));
      call.write(packets.data(1n, Buffer.from('one')));
      await first;
      server?.stopAccepting();
      const second = new Promise<Packet>((resolve) => call.once('data', resolve));
      call.write(packets.data(1n, Buffer.from('two')));
      const p = await second;
      assert.equal(p.type === PacketType.DATA ? p.data.toString() : '', 'two');
      const ended = new Promise<void>((resolve) => call.on('end', resolve));
      call.on('data', () => undefined);
      call.end();
      await ended;
      await assert.rejects(
        new Promise((resolve, reject) => {
          const s = net.connect(stopping);
          s.on('connect', () => {
            s.destroy();
            resolve(undefined);
          });
          s.on('error', reject);
        }),
        /ENOENT|ECONNREFUSED/,
      );
    } finally {
      client.close();
    }
  });
});
