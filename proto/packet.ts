// The domain model of a konnectivity Packet. Flat, one shape per packet type, with int64
// fields as bigint so the full signed 64-bit range survives (DIAL_REQ randoms come from a
// 63-bit generator and mostly exceed 2^53).

export const PacketType = {
  DIAL_REQ: 0,
  DIAL_RSP: 1,
  CLOSE_REQ: 2,
  CLOSE_RSP: 3,
  DATA: 4,
  DIAL_CLS: 5,
  DRAIN: 6,
  /** Not a wire value: a packet whose type this build does not know (kept in `wireType`). */
  UNKNOWN: -1,
} as const;

export const packetTypeNames: Readonly<Record<number, string>> = {
  0: 'DIAL_REQ',
  1: 'DIAL_RSP',
  2: 'CLOSE_REQ',
  3: 'CLOSE_RSP',
  4: 'DATA',
  5: 'DIAL_CLS',
  6: 'DRAIN',
};

export interface DialRequestPacket {
  type: typeof PacketType.DIAL_REQ;
  protocol: string;
  address: string;
  random: bigint;
}
export interface DialResponsePacket {
  type: typeof PacketType.DIAL_RSP;
  error: string;
  connectID: bigint;
  random: bigint;
}
export interface CloseRequestPacket {
  type: typeof PacketType.CLOSE_REQ;
  connectID: bigint;
}
export interface CloseResponsePacket {
  type: typeof PacketType.CLOSE_RSP;
  error: string;
  connectID: bigint;
}
export interface DataPacket {
  type: typeof PacketType.DATA;
  connectID: bigint;
  error: string;
  data: Buffer;
  /**
   * This packet's gRPC-framed bytes when they exist already (read in place, or received as
   * one message), so that sending it copies nothing. Set only on plain data (no error field);
   * whoever changes a field must drop it.
   */
  wire?: Buffer | undefined;
}
export interface CloseDialPacket {
  type: typeof PacketType.DIAL_CLS;
  random: bigint;
}
export interface DrainPacket {
  type: typeof PacketType.DRAIN;
}
export interface UnknownPacket {
  type: typeof PacketType.UNKNOWN;
  /** The enum value found on the wire. */
  wireType: number;
}

export type Packet =
  | DialRequestPacket
  | DialResponsePacket
  | CloseRequestPacket
  | CloseResponsePacket
  | DataPacket
  | CloseDialPacket
  | DrainPacket
  | UnknownPacket;

export function packetTypeName(packet: Packet): string {
  return packet.type === PacketType.UNKNOWN
    ? `UNKNOWN(${packet.wireType})`
    : (packetTypeNames[packet.type] ?? 'UNKNOWN');
}

const EMPTY = Buffer.alloc(0);

export const packets = {
  dialRequest: (address: string, random: bigint, protocol = 'tcp'): DialRequestPacket => ({
    type: PacketType.DIAL_REQ,
    protocol,
    address,
    random,
  }),
  dialResponse: (random: bigint, connectID: bigint, error = ''): DialResponsePacket => ({
    type: PacketType.DIAL_RSP,
    error,
    connectID,
    random,
  }),
  closeRequest: (connectID: bigint): CloseRequestPacket => ({ type: PacketType.CLOSE_REQ, connectID }),
  closeResponse: (connectID: bigint, error = ''): CloseResponsePacket => ({
    type: PacketType.CLOSE_RSP,
    error,
    connectID,
  }),
  /** `wire`: the packet's framed bytes when they exist already (see DataPacket.wire). */
  data: (connectID: bigint, data: Buffer, error = '', wire?: Buffer): DataPacket => ({
    type: PacketType.DATA,
    connectID,
    error,
    data,
    wire: error === '' ? wire : undefined,
  }),
  closeDial: (random: bigint): CloseDialPacket => ({ type: PacketType.DIAL_CLS, random }),
  drain: (): DrainPacket => ({ type: PacketType.DRAIN }),
  empty: EMPTY,
};

/** About what a packet takes in a send buffer: its payload plus framing, or a small constant. */
export function packetBytes(p: Packet): number {
  return p.type === PacketType.DATA ? p.data.length + 32 : 64;
}
