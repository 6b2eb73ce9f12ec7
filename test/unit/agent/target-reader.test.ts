import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { framePool, READ_FRAMES_MAX, TargetReader, STREAMING_READ } from '../../../agent/target-reader.js';
import { decodePacket, GRPC_PREFIX_BYTES } from '../../../proto/codec.js';
import type { DataPacket } from '../../../proto/packet.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `data` in pieces of varied size (small and large), then ends. */
function writeInPieces(socket: net.Socket, data: Buffer, seed: number): void {
  let pos = 0;
  let n = seed;
  const next = () => {
    while (pos < data.length) {
      n = (n * 1103515245 + 12345) % 2 ** 31;
      const size = n % 3 === 0 ? 1 + (n % 700) : 20_000 + (n % 150_000);
      const piece = data.subarray(pos, pos + size);
      pos += piece.length;
      if (!socket.write(piece)) {
        socket.once('drain', next);
        return;
      }
    }
    socket.end();
  };
  next();
}

describe('target reader', () => {
  it('frames every read of concurrent sockets as DATA; nothing handed out is overwritten', async () => {
    const sources = [randomBytes(6 * 1024 * 1024), randomBytes(3 * 1024 * 1024)];
    let accepted = 0;
    const server = net.createServer((s) => writeInPieces(s, sources[accepted++ % 2] as Buffer, accepted));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const sockets: net.Socket[] = [];
    const readers: TargetReader[] = [];
    try {
      const runs = [7n, -(2n ** 63n)].map(async (connectID) => {
        const reader = new TargetReader();
        readers.push(reader);
        const socket = net.connect({ host: '127.0.0.1', port, onread: reader.onread });
        sockets.push(socket);
        // Every packet is kept to the end: a buffer reused after it was handed out would show.
        const got: DataPacket[] = [];
        socket.once('connect', () => {
          reader.start(connectID, (p) => {
            got.push(p);
            // Pause and resume now and then, as backpressure does.
            if (got.length % 17 === 0) {
              socket.pause();
              setImmediate(() => socket.resume());
            }
          });
        });
        await once(socket, 'end');
        return { connectID, got };
      });
      const results = await Promise.all(runs);
      for (const [i, { connectID, got }] of results.entries()) {
        const source = sources[i] as Buffer;
        assert.equal(sha(Buffer.concat(got.map((p) => p.data))), sha(source), 'bytes intact and in order');
        for (const p of got) {
          assert.equal(p.connectID, connectID);
          assert.ok(p.wire, 'every packet goes out framed');
          const again = decodePacket(p.wire.subarray(GRPC_PREFIX_BYTES));
          assert.deepEqual(again, { ...p, wire: undefined });
          assert.equal(p.wire.readUInt32BE(1), p.wire.length - GRPC_PREFIX_BYTES);
        }
        assert.ok(
          got.some((p) => p.data.length >= STREAMING_READ),
          'large reads happened (the in-place path)',
        );
      }
    } finally {
      for (const s of sockets) s.destroy();
      for (const r of readers) r.close();
      server.close();
    }
  });

  it('reuses frames once given back, each once; few sockets hold a frame for a read to come', () => {
    // Reads driven as net drives them: buffer() once the handle exists, then for each read
    // callback() when it is in and buffer() for the next one.
    const got: DataPacket[] = [];
    const readers = Array.from({ length: READ_FRAMES_MAX + 8 }, (_, i) => {
      const reader = new TargetReader();
      reader.start(BigInt(i + 1), (p) => got.push(p));
      return { reader, next: (reader.onread.buffer as () => Uint8Array)() };
    });
    const fill = (r: (typeof readers)[number], bytes: number) => {
      r.next.fill(7, 0, bytes);
      r.reader.onread.callback(bytes, r.next);
      r.next = (r.reader.onread.buffer as () => Uint8Array)();
    };
    const held = framePool.heldForReads;
    // A large read: each socket would now read into a frame of its own, but only so many may.
    for (const r of readers) fill(r, STREAMING_READ);
    assert.equal(framePool.heldForReads - held, READ_FRAMES_MAX);
    for (const r of readers) r.reader.close();
    assert.equal(framePool.heldForReads, held, 'closed sockets hold none');
    assert.ok(got.every((p) => p.data.length === STREAMING_READ && p.data.every((b) => b === 7)));

    const before = framePool.pooled;
    framePool.giveBack(Buffer.alloc(100));
    assert.equal(framePool.pooled, before, 'not ours: left to the GC');
    const wire = got[0]?.wire;
    assert.ok(wire);
    framePool.giveBack(wire);
    framePool.giveBack(wire);
    assert.equal(framePool.pooled, before + 1, 'one frame back, once');
  });
});
