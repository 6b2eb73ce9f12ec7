// The WebSocket agent transport's contract (ours, not upstream's): where the agent upgrades,
// one Packet per binary message, and the close codes either side uses. The gRPC metadata of
// /AgentService/Connect travel as headers of the upgrade request (agentid, agentidentifiers,
// authorization, the extensions header); serverid and servercount as headers of the 101.
//
// A message holds its Packet in gRPC's length-prefixed form (a 0 flag byte, the 4-byte
// big-endian length, the protobuf bytes): the very bytes the gRPC transport carries, so the
// agent sends DATA framed in place as it reads a target, and the server hands a DATA message
// on to a gRPC frontend as it came, copying neither.
import type { Packet } from './packet.js';
import { decodePacket, encodeFramedPacket, GRPC_PREFIX_BYTES, PacketDecodeError } from './codec.js';

/** Bytes of a message in front of its Packet (gRPC's prefix); size limits count the Packet. */
export const MESSAGE_PREFIX_BYTES = GRPC_PREFIX_BYTES;

/** The request path of the upgrade on the server's agent port. */
export const AGENT_WEBSOCKET_PATH = '/konnectivity/v1/agent';

/** RFC 6455 §7.4.1 close codes, by what they mean to us. */
export const CloseCode = {
  /** The stream is done (the agent stops, or the server ends the call). */
  normal: 1000,
  /** The server or agent is going away (shutdown). */
  goingAway: 1001,
  /** Garbage after the upgrade: not WebSocket framing. */
  protocolError: 1002,
  /** A text message: packets are binary. */
  unsupportedData: 1003,
  /** A binary message that is not a Packet. */
  invalidPayload: 1007,
  /** Refused by policy after the upgrade (authentication, identity). */
  policyViolation: 1008,
  /** A message larger than the receiver's limit. */
  messageTooBig: 1009,
  /** The receiver failed to handle a message (a bug), or a ping was not answered. */
  internalError: 1011,
} as const;

/** A packet as one binary message (for DATA read from a target: its frame, not a copy). */
export function packetMessage(p: Packet): Buffer {
  return encodeFramedPacket(p);
}

/** A binary message as a packet; throws PacketDecodeError when it is not one. */
export function messagePacket(message: Buffer): Packet {
  if (message.length < MESSAGE_PREFIX_BYTES)
    throw new PacketDecodeError('message shorter than its 5-byte prefix');
  if (message[0] !== 0)
    throw new PacketDecodeError(`prefix flag ${String(message[0])}: compression is not spoken`);
  const length = message.readUInt32BE(1);
  if (length !== message.length - MESSAGE_PREFIX_BYTES) {
    throw new PacketDecodeError(
      `prefix says ${length} bytes, the message holds ${message.length - MESSAGE_PREFIX_BYTES}`,
    );
  }
  return decodePacket(message.subarray(MESSAGE_PREFIX_BYTES), message);
}

/** A close reason fits in 123 bytes (RFC 6455 §5.5: control frames carry at most 125). */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let cut = text.slice(0, 120);
  while (Buffer.byteLength(cut) > 120) cut = cut.slice(0, -1);
  return `${cut}...`;
}
