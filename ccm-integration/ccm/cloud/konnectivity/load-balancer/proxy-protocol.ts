// PROXY protocol headers (haproxy's proxy-protocol.txt), written first on each backend
// connection so that the backend sees the client's address instead of the tunnel's:
//   v1: "PROXY TCP4 <src> <dst> <srcport> <dstport>\r\n" (text; UNKNOWN when not IP)
//   v2: a 12-byte signature, version/command 0x21, family 0x11 (TCP/IPv4) or 0x21 (TCP/IPv6),
//       the address block length, then source and destination addresses and ports.
// Source is the client, destination the load balancer's address and port it connected to.
import { parseIp, type IpValue } from './ip-address.js';
import type { ProxyProtocolVersion } from './balancer-spec.js';

export interface ConnectionEnds {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V2_PROXY_COMMAND = 0x21;
const V2_LOCAL_COMMAND = 0x20;
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

export function proxyProtocolHeader(version: ProxyProtocolVersion, ends: ConnectionEnds): Buffer {
  return version === 'v1' ? proxyV1(ends) : proxyV2(ends);
}

/** Both ends as numbers of one family: an IPv4 end beside an IPv6 one is mapped (::ffff:a.b.c.d). */
function sameFamily(ends: ConnectionEnds): { src: IpValue; dst: IpValue } | undefined {
  const src = parseIp(unmapped(ends.sourceAddress));
  const dst = parseIp(unmapped(ends.destinationAddress));
  if (!src || !dst) return undefined;
  if (src.family === dst.family) return { src, dst };
  const mapped = (ip: IpValue): IpValue =>
    ip.family === 6 ? ip : { family: 6, value: 0xffff00000000n | ip.value };
  return { src: mapped(src), dst: mapped(dst) };
}

function unmapped(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

export function proxyV1(ends: ConnectionEnds): Buffer {
  const both = sameFamily(ends);
  if (!both) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const family = both.src.family === 4 ? 'TCP4' : 'TCP6';
  const text = (ip: IpValue, original: string) => (ip.family === 4 ? unmapped(original) : v6Text(ip));
  return Buffer.from(
    `PROXY ${family} ${text(both.src, ends.sourceAddress)} ${text(both.dst, ends.destinationAddress)} ${ends.sourcePort} ${ends.destinationPort}\r\n`,
    'latin1',
  );
}

/** Full IPv6 text, which every v1 parser accepts (compressed forms are allowed too). */
function v6Text(ip: IpValue): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((ip.value >> shift) & 0xffffn).toString(16));
  return groups.join(':');
}

export function proxyV2(ends: ConnectionEnds): Buffer {
  const both = sameFamily(ends);
  if (!both) {
    // LOCAL: the receiver uses the connection's own addresses.
    const header = Buffer.alloc(16);
    V2_SIGNATURE.copy(header);
    header[12] = V2_LOCAL_COMMAND;
    header[13] = 0x00;
    header.writeUInt16BE(0, 14);
    return header;
  }
  const bytes = both.src.family === 4 ? 4 : 16;
  const block = bytes * 2 + 4;
  const header = Buffer.alloc(16 + block);
  V2_SIGNATURE.copy(header);
  header[12] = V2_PROXY_COMMAND;
  header[13] = both.src.family === 4 ? V2_TCP4 : V2_TCP6;
  header.writeUInt16BE(block, 14);
  writeAddress(header, 16, both.src.value, bytes);
  writeAddress(header, 16 + bytes, both.dst.value, bytes);
  header.writeUInt16BE(ends.sourcePort, 16 + bytes * 2);
  header.writeUInt16BE(ends.destinationPort, 18 + bytes * 2);
  return header;
}

function writeAddress(buf: Buffer, offset: number, value: bigint, bytes: number): void {
  for (let i = 0; i < bytes; i++) {
    buf[offset + i] = Number((value >> BigInt((bytes - 1 - i) * 8)) & 0xffn);
  }
}
