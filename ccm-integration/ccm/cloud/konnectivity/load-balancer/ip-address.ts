// IP addresses as numbers, for the address pool's ranges and CIDRs and for source-range checks:
// an IPv4 address is a 32-bit value, an IPv6 address a 128-bit one, both as bigint.
import net from 'node:net';

export type IpFamily = 4 | 6;

export interface IpValue {
  family: IpFamily;
  value: bigint;
}

/** A contiguous run of addresses of one family, both ends included. */
export interface IpRange {
  family: IpFamily;
  first: bigint;
  last: bigint;
}

export const FAMILY_BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

/** The address `text` as a number; undefined when it is not an IP (zones, brackets and spaces refused). */
export function parseIp(text: string): IpValue | undefined {
  if (net.isIPv4(text)) return { family: 4, value: ipv4Value(text) };
  if (!net.isIPv6(text) || text.includes('%')) return undefined;
  return { family: 6, value: ipv6Value(text) };
}

function ipv4Value(text: string): bigint {
  return text.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function ipv6Value(text: string): bigint {
  let s = text;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const tailStart = s.lastIndexOf(':') + 1;
  const tail = s.slice(tailStart);
  if (tail.includes('.')) {
    const v4 = ipv4Value(tail);
    s = `${s.slice(0, tailStart)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups =
    rest === undefined
      ? headGroups
      : [...headGroups, ...Array<string>(8 - headGroups.length - restGroups.length).fill('0'), ...restGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The address in its canonical text (IPv6 compressed and lower-case, as Go prints it). */
export function formatIp(ip: IpValue): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((ip.value >> shift) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** `text` in canonical form, or undefined when it is not an IP. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : undefined;
}

/**
 * A client address as a socket reports it, in canonical form: an IPv4-mapped IPv6 address
 * (a dual-stack listener's view of an IPv4 client) as the IPv4 address it stands for.
 */
export function clientIp(text: string | undefined): string {
  if (text === undefined) return '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return canonicalIp(mapped?.[1] ?? text) ?? text;
}

/**
 * A CIDR ("10.0.0.0/24", "fd00::/64") as a range. `strict` refuses host bits (10.0.0.5/24), as a
 * pool entry must name its network; source ranges accept them, as Kubernetes does.
 */
export function parseCidr(text: string, strict: boolean): IpRange {
  const slash = text.indexOf('/');
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (slash < 0 || !ip) throw new Error(`"${text}" is not a CIDR (e.g. 192.0.2.0/28 or 2001:db8::/120)`);
  const bits = FAMILY_BITS[ip.family];
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= bits)) {
    throw new Error(`"${text}": the prefix length must be a number from 0 to ${bits}`);
  }
  const hostBits = BigInt(bits - prefix);
  const hostMask = (1n << hostBits) - 1n;
  const first = ip.value & ~hostMask;
  if (strict && first !== ip.value) {
    throw new Error(
      `"${text}" has host bits set; the network is ${formatIp({ family: ip.family, value: first })}/${prefix}`,
    );
  }
  return { family: ip.family, first, last: first | hostMask };
}

export function rangeContains(range: IpRange, ip: IpValue): boolean {
  return range.family === ip.family && ip.value >= range.first && ip.value <= range.last;
}

export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}
