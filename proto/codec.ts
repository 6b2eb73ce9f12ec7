// The hot-path Packet codec: protobuf wire format written by hand, because every byte
// through the tunnel passes here twice per hop. It produces exactly the bytes the Go
// implementation produces (zero values omitted, oneof payload always present for known
// types) and reads any valid encoding: fields in any order, unknown fields skipped.
// test/unit/proto/ proves it against the generic proto-loader codec and the Go wire vectors.
import {
  PacketType,
  type Packet,
  type DataPacket,
  type DialRequestPacket,
  type DialResponsePacket,
} from './packet.js';

export class PacketDecodeError extends Error {
  override readonly name = 'PacketDecodeError';
  readonly code = 'KNP_PACKET_DECODE';
}

const EMPTY: Buffer = Buffer.alloc(0);

// Payload field numbers of the `oneof payload` in Packet, indexed by PacketType.
const PAYLOAD_FIELD = [2, 3, 5, 6, 4, 7, 8] as const;

// ---------- encoding ----------

/** Bytes needed for a varint of the 64-bit value (lo, hi as unsigned 32-bit halves). */
function varintSize(lo: number, hi: number): number {
  if (hi === 0) {
    if (lo < 0x80) return 1;
    if (lo < 0x4000) return 2;
    if (lo < 0x200000) return 3;
    if (lo < 0x10000000) return 4;
    return 5;
  }
  if (hi < 0x8) return 5;
  if (hi < 0x400) return 6;
  if (hi < 0x20000) return 7;
  if (hi < 0x1000000) return 8;
  if (hi < 0x80000000) return 9;
  return 10;
}

function smallVarintSize(n: number): number {
  return varintSize(n >>> 0, 0);
}

function writeVarint(buf: Buffer, pos: number, lo: number, hi: number): number {
  while (hi !== 0 || lo > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[pos++] = lo;
  return pos;
}

// int64 → unsigned 32-bit halves, with a fast path for the small non-negative connectIDs
// that every DATA packet carries.
let splitLo = 0;
let splitHi = 0;
function split64(v: bigint): void {
  if (v >= 0n && v < 0x100000000n) {
    splitLo = Number(v);
    splitHi = 0;
    return;
  }
  const u = BigInt.asUintN(64, v);
  splitLo = Number(u & 0xffffffffn);
  splitHi = Number(u >> 32n);
}

function writeInt64Field(buf: Buffer, pos: number, field: number, v: bigint): number {
  if (v === 0n) return pos;
  split64(v);
  buf[pos++] = field << 3;
  return writeVarint(buf, pos, splitLo, splitHi);
}

function int64FieldSize(v: bigint): number {
  if (v === 0n) return 0;
  split64(v);
  return 1 + varintSize(splitLo, splitHi);
}

function writeStringField(buf: Buffer, pos: number, field: number, s: string, n: number): number {
  if (n === 0) return pos;
  buf[pos++] = (field << 3) | 2;
  pos = writeVarint(buf, pos, n, 0);
  return pos + buf.write(s, pos, n, 'utf8');
}

function stringFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + smallVarintSize(n) + n;
}

/** Encodes a packet to protobuf bytes, identical to what the Go implementation sends. */
export function encodePacket(p: Packet): Buffer {
  switch (p.type) {
    case PacketType.DATA:
      return encodeData(p);
    case PacketType.DIAL_REQ:
      return encodeDialRequest(p);
    case PacketType.DIAL_RSP:
      return encodeDialResponse(p);
    case PacketType.CLOSE_REQ: {
      const inner = int64FieldSize(p.connectID);
      const { buf, pos } = header(PacketType.CLOSE_REQ, inner);
      writeInt64Field(buf, pos, 1, p.connectID);
      return buf;
    }
    case PacketType.CLOSE_RSP: {
      const errLen = Buffer.byteLength(p.error, 'utf8');
      const inner = stringFieldSize(errLen) + int64FieldSize(p.connectID);
      const h = header(PacketType.CLOSE_RSP, inner);
      const pos = writeStringField(h.buf, h.pos, 1, p.error, errLen);
      writeInt64Field(h.buf, pos, 2, p.connectID);
      return h.buf;
    }
    case PacketType.DIAL_CLS: {
      const inner = int64FieldSize(p.random);
      const { buf, pos } = header(PacketType.DIAL_CLS, inner);
      writeInt64Field(buf, pos, 1, p.random);
      return buf;
    }
    case PacketType.DRAIN:
      return header(PacketType.DRAIN, 0).buf;
    case PacketType.UNKNOWN: {
      // An unknown type has no payload we could know about: only the type field.
      const t = p.wireType;
      const lo = t >>> 0;
      const hi = t < 0 ? 0xffffffff : 0;
      const buf = Buffer.allocUnsafe(t === 0 ? 0 : 1 + varintSize(lo, hi));
      if (t !== 0) {
        buf[0] = 0x08;
        writeVarint(buf, 1, lo, hi);
      }
      return buf;
    }
  }
}

/**
 * Allocates type field + payload tag + payload length; returns where the payload starts.
 * `room` bytes are left free in front (for the gRPC message prefix, see encodeFramedPacket).
 */
function header(type: number, inner: number, room = 0): { buf: Buffer; pos: number } {
  const typeSize = type === 0 ? 0 : 2;
  const buf = Buffer.allocUnsafe(room + typeSize + 1 + smallVarintSize(inner) + inner);
  let pos = room;
  if (type !== 0) {
    buf[pos++] = 0x08;
    buf[pos++] = type;
  }
  buf[pos++] = ((PAYLOAD_FIELD[type] ?? 0) << 3) | 2;
  pos = writeVarint(buf, pos, inner, 0);
  return { buf, pos };
}

function encodeData(p: DataPacket, room = 0): Buffer {
  const errLen = p.error.length === 0 ? 0 : Buffer.byteLength(p.error, 'utf8');
  const dataLen = p.data.length;
  const inner =
    int64FieldSize(p.connectID) +
    stringFieldSize(errLen) +
    (dataLen === 0 ? 0 : 1 + smallVarintSize(dataLen) + dataLen);
  const h = header(PacketType.DATA, inner, room);
  const buf = h.buf;
  let pos = writeInt64Field(buf, h.pos, 1, p.connectID);
  pos = writeStringField(buf, pos, 2, p.error, errLen);
  if (dataLen !== 0) {
    buf[pos++] = 0x1a;
    pos = writeVarint(buf, pos, dataLen, 0);
    p.data.copy(buf, pos);
  }
  return buf;
}

function encodeDialRequest(p: DialRequestPacket): Buffer {
  const protoLen = Buffer.byteLength(p.protocol, 'utf8');
  const addrLen = Buffer.byteLength(p.address, 'utf8');
  const inner = stringFieldSize(protoLen) + stringFieldSize(addrLen) + int64FieldSize(p.random);
  const h = header(PacketType.DIAL_REQ, inner);
  let pos = writeStringField(h.buf, h.pos, 1, p.protocol, protoLen);
  pos = writeStringField(h.buf, pos, 2, p.address, addrLen);
  writeInt64Field(h.buf, pos, 3, p.random);
  return h.buf;
}

function encodeDialResponse(p: DialResponsePacket): Buffer {
  const errLen = Buffer.byteLength(p.error, 'utf8');
  const inner = stringFieldSize(errLen) + int64FieldSize(p.connectID) + int64FieldSize(p.random);
  const h = header(PacketType.DIAL_RSP, inner);
  let pos = writeStringField(h.buf, h.pos, 1, p.error, errLen);
  pos = writeInt64Field(h.buf, pos, 2, p.connectID);
  writeInt64Field(h.buf, pos, 3, p.random);
  return h.buf;
}

/** gRPC's message prefix: a compressed flag (0) and the big-endian message length. */
export const GRPC_PREFIX_BYTES = 5;

/**
 * A packet as one gRPC length-prefixed message, for our own HTTP/2 gRPC peers. DATA is
 * encoded straight behind the prefix (the hot path: no second copy of the payload).
 */
export function encodeFramedPacket(p: Packet): Buffer {
  let buf: Buffer;
  if (p.type === PacketType.DATA) {
    if (p.wire) return p.wire;
    buf = encodeData(p, GRPC_PREFIX_BYTES);
  } else {
    const body = encodePacket(p);
    buf = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + body.length);
    body.copy(buf, GRPC_PREFIX_BYTES);
  }
  buf[0] = 0;
  buf.writeUInt32BE(buf.length - GRPC_PREFIX_BYTES, 1);
  return buf;
}

/**
 * Room in front of a DATA payload for everything a framed DATA packet puts before it: gRPC
 * prefix, type field, payload tag and length, connectID field, data tag and length.
 */
export const DATA_HEADROOM = GRPC_PREFIX_BYTES + 2 + 1 + 5 + 11 + 1 + 5;

/**
 * Frames the payload at buf[DATA_HEADROOM, DATA_HEADROOM + dataLen) as DATA for connectID,
 * writing prefix and header just in front of it: the bytes encodeFramedPacket would produce,
 * as a view of `buf`. For a socket read straight into `buf`, the payload is never copied.
 */
export function frameDataInPlace(buf: Buffer, connectID: bigint, dataLen: number): Buffer {
  if (dataLen <= 0 || buf.length < DATA_HEADROOM + dataLen) throw new RangeError('no payload in place');
  const idSize = int64FieldSize(connectID);
  const lenSize = smallVarintSize(dataLen);
  const inner = idSize + 1 + lenSize + dataLen;
  const start = DATA_HEADROOM - (GRPC_PREFIX_BYTES + 3 + smallVarintSize(inner) + idSize + 1 + lenSize);
  buf[start] = 0;
  buf.writeUInt32BE(DATA_HEADROOM + dataLen - start - GRPC_PREFIX_BYTES, start + 1);
  let pos = start + GRPC_PREFIX_BYTES;
  buf[pos++] = 0x08;
  buf[pos++] = PacketType.DATA;
  buf[pos++] = ((PAYLOAD_FIELD[PacketType.DATA] as number) << 3) | 2;
  pos = writeVarint(buf, pos, inner, 0);
  pos = writeInt64Field(buf, pos, 1, connectID);
  buf[pos++] = 0x1a;
  writeVarint(buf, pos, dataLen, 0);
  return buf.subarray(start, DATA_HEADROOM + dataLen);
}

// ---------- decoding ----------

/** Cursor over one message's bytes; varints are read into lo/hi to keep int64 exact. */
class Reader {
  pos: number;
  lo = 0;
  hi = 0;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new PacketDecodeError('truncated varint');
      const b = buf[this.pos++] as number;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      shift += 7;
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    throw new PacketDecodeError('varint longer than 10 bytes');
  }

  /** A varint that must fit in 32 bits unsigned (tags and lengths). */
  u32(): number {
    this.varint();
    if (this.hi !== 0) throw new PacketDecodeError('length or tag out of range');
    return this.lo;
  }

  int64(): bigint {
    this.varint();
    if (this.hi === 0) return BigInt(this.lo);
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo));
  }

  /** int32 enum: the low 32 bits, signed (a negative enum is sign-extended to 10 bytes). */
  int32(): number {
    this.varint();
    return this.lo | 0;
  }

  lengthDelimited(): number {
    const n = this.u32();
    if (n > this.end - this.pos) throw new PacketDecodeError('length-delimited field past end of message');
    const start = this.pos;
    this.pos += n;
    return start;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new PacketDecodeError(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new PacketDecodeError('truncated field');
    this.pos += n;
  }
}

/**
 * Decodes protobuf bytes to a Packet. DATA payloads are views into `buf`, not copies.
 * `framed`, the same message with its gRPC prefix, becomes plain DATA's `wire`.
 */
export function decodePacket(buf: Buffer, framed?: Buffer): Packet {
  const r = new Reader(buf, 0, buf.length);
  let type = 0;
  let payloadField = 0;
  let payloadStart = 0;
  let payloadEnd = 0;
  while (r.pos < r.end) {
    const tag = r.u32();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 0) throw new PacketDecodeError('field number 0');
    if (field === 1 && wt === 0) {
      type = r.int32();
    } else if (field >= 2 && field <= 8 && wt === 2) {
      // oneof: the last payload on the wire wins, as in every protobuf runtime.
      payloadStart = r.lengthDelimited();
      payloadEnd = r.pos;
      payloadField = field;
    } else {
      r.skip(wt);
    }
  }
  if (type < 0 || type > 6) return { type: PacketType.UNKNOWN, wireType: type };
  // Read the payload only if it matches the type, like Go's nil-safe getters.
  const sub =
    payloadField === PAYLOAD_FIELD[type] ? new Reader(buf, payloadStart, payloadEnd) : new Reader(buf, 0, 0);
  switch (type) {
    case PacketType.DATA:
      return decodeData(sub, framed);
    case PacketType.DIAL_REQ: {
      const p: DialRequestPacket = { type: PacketType.DIAL_REQ, protocol: '', address: '', random: 0n };
      eachField(sub, (field, wt) => {
        if (field === 1 && wt === 2) p.protocol = str(sub);
        else if (field === 2 && wt === 2) p.address = str(sub);
        else if (field === 3 && wt === 0) p.random = sub.int64();
        else return false;
        return true;
      });
      return p;
    }
    case PacketType.DIAL_RSP: {
      const p: DialResponsePacket = { type: PacketType.DIAL_RSP, error: '', connectID: 0n, random: 0n };
      eachField(sub, (field, wt) => {
        if (field === 1 && wt === 2) p.error = str(sub);
        else if (field === 2 && wt === 0) p.connectID = sub.int64();
        else if (field === 3 && wt === 0) p.random = sub.int64();
        else return false;
        return true;
      });
      return p;
    }
    case PacketType.CLOSE_REQ: {
      let connectID = 0n;
      eachField(sub, (field, wt) => {
        if (field !== 1 || wt !== 0) return false;
        connectID = sub.int64();
        return true;
      });
      return { type: PacketType.CLOSE_REQ, connectID };
    }
    case PacketType.CLOSE_RSP: {
      let error = '';
      let connectID = 0n;
      eachField(sub, (field, wt) => {
        if (field === 1 && wt === 2) error = str(sub);
        else if (field === 2 && wt === 0) connectID = sub.int64();
        else return false;
        return true;
      });
      return { type: PacketType.CLOSE_RSP, error, connectID };
    }
    case PacketType.DIAL_CLS: {
      let random = 0n;
      eachField(sub, (field, wt) => {
        if (field !== 1 || wt !== 0) return false;
        random = sub.int64();
        return true;
      });
      return { type: PacketType.DIAL_CLS, random };
    }
    default:
      eachField(sub, () => false);
      return { type: PacketType.DRAIN };
  }
}

/** Walks a sub-message; `read` consumes a known field and returns true, or returns false to skip it. */
function eachField(r: Reader, read: (field: number, wireType: number) => boolean): void {
  while (r.pos < r.end) {
    const tag = r.u32();
    const field = tag >>> 3;
    if (field === 0) throw new PacketDecodeError('field number 0');
    if (!read(field, tag & 7)) r.skip(tag & 7);
  }
}

function str(r: Reader): string {
  const start = r.lengthDelimited();
  return r.buf.toString('utf8', start, r.pos);
}

// DATA is the hot path: no closure, no intermediate object.
function decodeData(r: Reader, framed: Buffer | undefined): DataPacket {
  let connectID = 0n;
  let error = '';
  let data: Buffer = EMPTY;
  while (r.pos < r.end) {
    const tag = r.u32();
    switch (tag) {
      case 0x08:
        connectID = r.int64();
        break;
      case 0x12:
        error = str(r);
        break;
      case 0x1a: {
        const start = r.lengthDelimited();
        data = r.buf.subarray(start, r.pos);
        break;
      }
      default:
        if (tag >>> 3 === 0) throw new PacketDecodeError('field number 0');
        r.skip(tag & 7);
    }
  }
  const wire = error === '' && data.length > 0 ? framed : undefined;
  return { type: PacketType.DATA, connectID, error, data, wire };
}
