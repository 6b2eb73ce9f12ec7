// Inputs for fuzzing the live server: random bytes, valid packets mutated, gRPC framing
// that sometimes lies, and writers that deliver them over HTTP/2 streams or split sockets.
import net from 'node:net';
import http2 from 'node:http2';
import fc from 'fast-check';
import { encodePacket } from '../../proto/codec.js';
import { packets, type Packet } from '../../proto/packet.js';

/** Valid packets to start mutations from; addresses point at a closed loopback port. */
export function seedPackets(closed: number): Packet[] {
  return [
    packets.dialRequest(`127.0.0.1:${closed}`, 0x7fff_ffff_ffff_fff0n),
    packets.dialResponse(123n, 1n),
    packets.dialResponse(124n, 0n, 'dial tcp: refused'),
    packets.data(1n, Buffer.from('hello')),
    packets.data(1n, Buffer.alloc(0), 'EOF'),
    packets.closeRequest(1n),
    packets.closeResponse(1n),
    packets.closeDial(5n),
    packets.drain(),
  ];
}

/** Random bytes, or a valid packet with bytes flipped, cut short or extended. */
export function messageArb(closed: number): fc.Arbitrary<Buffer> {
  const valid = fc.constantFrom(...seedPackets(closed).map((p) => encodePacket(p)));
  const mutated = fc
    .tuple(
      valid,
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
      fc.nat(),
      fc.uint8Array({ maxLength: 16 }),
    )
    .map(([bytes, flips, cut, tail]) => {
      const b = Buffer.from(bytes);
      for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
      return Buffer.concat([b.subarray(0, b.length - (cut % 3)), Buffer.from(tail)]);
    });
  return fc.oneof(
    mutated,
    fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
  );
}

/** gRPC length-prefixed framing; sometimes with a lying length or flag. */
export function frameArb(closed: number): fc.Arbitrary<Buffer> {
  return fc
    .tuple(messageArb(closed), fc.constantFrom('ok', 'ok', 'ok', 'long', 'short', 'flag'))
    .map(([msg, how]) => {
      const head = Buffer.alloc(5);
      head[0] = how === 'flag' ? 1 : 0;
      head.writeUInt32BE(
        how === 'long' ? msg.length + 50 : how === 'short' ? Math.max(0, msg.length - 1) : msg.length,
        1,
      );
      return Buffer.concat([head, msg]);
    });
}

/** Sends frames on one gRPC stream, ends it, and waits until the server closes it (or 1 s). */
export function grpcStream(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  frames: Buffer[],
): Promise<void> {
  return new Promise((resolve) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
    }, 1000);
    req.on('error', () => undefined);
    req.on('response', () => undefined);
    req.on('data', () => undefined);
    req.on('close', done);
    for (const f of frames) req.write(f);
    req.end();
  });
}

/** Writes `data` in 1-4 pieces at random-ish split points, reads whatever comes back, closes. */
export function sendSplit(uds: string, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(uds);
    const cuts = [...new Set([Math.floor(data.length / 3), Math.floor((data.length * 2) / 3)])].filter(
      (n) => n > 0,
    );
    let at = 0;
    const pieces: Buffer[] = [];
    for (const cut of cuts) {
      pieces.push(data.subarray(at, cut));
      at = cut;
    }
    pieces.push(data.subarray(at));
    const timer = setTimeout(() => s.destroy(), 1500);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    s.on('connect', () => {
      let i = 0;
      const next = () => {
        const p = pieces[i++];
        if (!p) return;
        s.write(p);
        setImmediate(next);
      };
      next();
    });
  });
}
