import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DATA_HEADROOM,
  decodePacket,
  encodeFramedPacket,
  encodePacket,
  frameDataInPlace,
  PacketDecodeError,
} from '../../../proto/codec.js';
import { GrpcFramingError, MessageDeframer } from '../../../proto/grpc-framing.js';
import { PacketType, type Packet, packetTypeNames, packets } from '../../../proto/packet.js';
import { loadGenericCodec, type GenericPacket } from '../../../proto/generic-codec.js';
import { loadWireVectors, wireVectorsMissing } from '../../support/wire-vectors.js';

const generic = loadGenericCodec();

/** proto3 JSON form (as in wire-vectors.json) → our Packet. */
function fromProtoJson(json: Record<string, unknown>): Packet {
  const typeField = json.type;
  const typeNumber =
    typeof typeField === 'number'
      ? typeField
      : typeof typeField === 'string'
        ? Number(Object.entries(packetTypeNames).find(([, n]) => n === typeField)?.[0])
        : 0;
  const body = (key: string): Record<string, string> => (json[key] ?? {}) as Record<string, string>;
  const big = (v: string | undefined): bigint => BigInt(v ?? '0');
  switch (typeNumber) {
    case 0: {
      const b = body('dialRequest');
      return { type: 0, protocol: b.protocol ?? '', address: b.address ?? '', random: big(b.random) };
    }
    case 1: {
      const b = body('dialResponse');
      return { type: 1, error: b.error ?? '', connectID: big(b.connectID), random: big(b.random) };
    }
    case 2:
      return { type: 2, connectID: big(body('closeRequest').connectID) };
    case 3: {
      const b = body('closeResponse');
      return { type: 3, error: b.error ?? '', connectID: big(b.connectID) };
    }
    case 4: {
      const b = body('data');
      return {
        type: 4,
        connectID: big(b.connectID),
        error: b.error ?? '',
        data: Buffer.from(b.data ?? '', 'base64'),
        wire: undefined,
      };
    }
    case 5:
      return { type: 5, random: big(body('closeDial').random) };
    case 6:
      return { type: 6 };
    default:
      return { type: PacketType.UNKNOWN, wireType: typeNumber };
  }
}

/** Our Packet → proto-loader object, omitting zero values as Go does. */
function toGeneric(p: Packet): GenericPacket {
  const nz = (v: bigint) => (v === 0n ? undefined : v.toString());
  const ns = (v: string) => (v === '' ? undefined : v);
  const clean = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  switch (p.type) {
    case 0:
      return {
        dialRequest: clean({ protocol: ns(p.protocol), address: ns(p.address), random: nz(p.random) }),
      };
    case 1:
      return {
        type: 'DIAL_RSP',
        dialResponse: clean({ error: ns(p.error), connectID: nz(p.connectID), random: nz(p.random) }),
      };
    case 2:
      return { type: 'CLOSE_REQ', closeRequest: clean({ connectID: nz(p.connectID) }) };
    case 3:
      return { type: 'CLOSE_RSP', closeResponse: clean({ error: ns(p.error), connectID: nz(p.connectID) }) };
    case 4:
      return {
        type: 'DATA',
        data: clean({
          connectID: nz(p.connectID),
          error: ns(p.error),
          data: p.data.length ? p.data : undefined,
        }),
      };
    case 5:
      return { type: 'DIAL_CLS', closeDial: clean({ random: nz(p.random) }) };
    case 6:
      return { type: 'DRAIN', drain: {} };
    case PacketType.UNKNOWN:
      return { type: p.wireType as unknown as string };
  }
}

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const packetArb: fc.Arbitrary<Packet> = fc
  .oneof(
    fc.record({ type: fc.constant(0 as const), protocol: fc.string(), address: fc.string(), random: int64 }),
    fc.record({ type: fc.constant(1 as const), error: fc.string(), connectID: int64, random: int64 }),
    fc.record({ type: fc.constant(2 as const), connectID: int64 }),
    fc.record({ type: fc.constant(3 as const), error: fc.string(), connectID: int64 }),
    fc.record({
      type: fc.constant(4 as const),
      connectID: int64,
      error: fc.string(),
      data: fc
        .oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 16_000, maxLength: 70_000 }))
        .map((a) => Buffer.from(a)),
      wire: fc.constant(undefined),
    }),
    fc.record({ type: fc.constant(5 as const), random: int64 }),
    fc.constant({ type: 6 as const }),
  )
  .map((p): Packet => ({ ...p })); // plain objects: fast-check records have a null prototype

describe('packet codec', () => {
  describe('upstream Go wire vectors', { skip: wireVectorsMissing ?? false }, () => {
    for (const v of wireVectorsMissing ? [] : loadWireVectors()) {
      it(`encodes ${v.name} to the Go bytes and decodes them back`, () => {
        const packet = fromProtoJson(v.packet);
        assert.equal(encodePacket(packet).toString('hex'), v.hex);
        assert.deepEqual(decodePacket(Buffer.from(v.hex, 'hex')), packet);
      });
    }
  });

  it('produces the same bytes as the generic proto-loader codec for every packet type', () => {
    fc.assert(
      fc.property(packetArb, (p) => {
        assert.deepEqual(encodePacket(p), generic.encode(toGeneric(p)));
      }),
      { numRuns: 500 },
    );
  });

  it('decodes what the generic codec encodes, and round-trips', () => {
    fc.assert(
      fc.property(packetArb, (p) => {
        assert.deepEqual(decodePacket(generic.encode(toGeneric(p))), p);
        assert.deepEqual(decodePacket(encodePacket(p)), p);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps int64 extremes exact', () => {
    for (const v of [0n, 1n, -1n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 32n, 2n ** 31n - 1n]) {
      const p: Packet = { type: 1, error: '', connectID: v, random: BigInt.asIntN(64, -v) };
      assert.deepEqual(decodePacket(encodePacket(p)), p);
      assert.equal(generic.decode(encodePacket(p)).dialResponse?.connectID ?? '0', v.toString());
    }
  });

  it('skips unknown fields and accepts fields in any order', () => {
    // type=DATA, an unknown fixed32 field 15, then data{data="hi", connectID=5} in reverse order.
    const bytes = Buffer.from('08047d01020304' + '2206' + '1a026869' + '0805', 'hex');
    assert.deepEqual(decodePacket(bytes), {
      type: 4,
      connectID: 5n,
      error: '',
      data: Buffer.from('hi'),
      wire: undefined,
    });
  });

  it('reads a payload that does not match the type as empty, like Go nil-safe getters', () => {
    // type=DATA but a dialRequest payload
    const bytes = Buffer.from('0804' + '12050a03746370', 'hex');
    assert.deepEqual(decodePacket(bytes), {
      type: 4,
      connectID: 0n,
      error: '',
      data: Buffer.alloc(0),
      wire: undefined,
    });
  });

  it('rejects truncated and malformed input with PacketDecodeError, never anything else', () => {
    for (const hex of ['08', '0804220a0801', '22ff', 'ffffffffffffffffffffff01', '0f', '0804220308']) {
      assert.throws(() => decodePacket(Buffer.from(hex, 'hex')), PacketDecodeError, hex);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodePacket(Buffer.from(bytes));
        } catch (err) {
          assert.ok(err instanceof PacketDecodeError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('gRPC message framing', () => {
  it('frames a packet as the 5-byte gRPC prefix followed by exactly the codec bytes', () => {
    fc.assert(
      fc.property(packetArb, (p) => {
        const body = encodePacket(p);
        const framed = encodeFramedPacket(p);
        assert.equal(framed[0], 0, 'not compressed');
        assert.equal(framed.readUInt32BE(1), body.length);
        assert.deepEqual(framed.subarray(5), body);
      }),
      { numRuns: 300 },
    );
  });

  it('splits framed packets cut at arbitrary points back into the same packets, in order', () => {
    fc.assert(
      fc.property(
        fc.array(packetArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (sent, cuts) => {
          const bytes = Buffer.concat(sent.map(encodeFramedPacket));
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const deframer = new MessageDeframer(1 << 20);
          const got: Packet[] = [];
          let from = 0;
          for (const at of [...points, bytes.length]) {
            deframer.push(bytes.subarray(from, at), (m) => got.push(decodePacket(m)));
            from = at;
          }
          assert.deepEqual(got, sent);
          assert.equal(deframer.partialBytes, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('frames DATA around a payload in place as the same bytes encodeFramedPacket writes', () => {
    fc.assert(
      fc.property(
        int64,
        fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 16_000, max: 65_536 })),
        (connectID, length) => {
          const data = Buffer.alloc(length, length % 251);
          const buf = Buffer.alloc(DATA_HEADROOM + length + 7, 0xee);
          data.copy(buf, DATA_HEADROOM);
          const framed = frameDataInPlace(buf, connectID, length);
          assert.deepEqual(framed, encodeFramedPacket(packets.data(connectID, data)));
          assert.equal(framed.buffer, buf.buffer, 'a view, not a copy');
        },
      ),
      { numRuns: 300 },
    );
    assert.throws(() => frameDataInPlace(Buffer.alloc(DATA_HEADROOM + 4), 1n, 5), RangeError);
    assert.throws(() => frameDataInPlace(Buffer.alloc(DATA_HEADROOM + 4), 1n, 0), RangeError);
  });

  it('keeps the framed bytes of plain DATA received whole, and sends them as they are', () => {
    fc.assert(
      fc.property(packetArb, (p) => {
        const bytes = encodeFramedPacket(p);
        let got: Packet | undefined;
        new MessageDeframer(1 << 20).push(bytes, (m, framed) => (got = decodePacket(m, framed)));
        assert.ok(got);
        const plainData = p.type === PacketType.DATA && p.error === '' && p.data.length > 0;
        assert.equal(got.type === PacketType.DATA && got.wire !== undefined, plainData);
        assert.deepEqual(encodeFramedPacket(got), bytes);
        if (plainData) assert.equal(encodeFramedPacket(got).buffer, bytes.buffer, 'forwarded without a copy');
      }),
      { numRuns: 300 },
    );
  });

  it('refuses compressed and oversized messages, and counts a message cut short', () => {
    const none = () => assert.fail('no message expected');
    assert.throws(() => new MessageDeframer(100).push(Buffer.from([1, 0, 0, 0, 0]), none), GrpcFramingError);
    assert.throws(
      () => new MessageDeframer(100).push(Buffer.from([0, 0, 0, 0, 101]), none),
      /101 bytes exceeds the limit of 100/,
    );
    const d = new MessageDeframer(100);
    d.push(Buffer.from([0, 0, 0, 0, 10, 1, 2]), none);
    assert.equal(d.partialBytes, 7);
  });
});
