// The addresses load balancers get, as a cloud hands out its VIPs: cloud-config
// `loadBalancer.addresses` lists single IPs, ranges "a-b" and CIDRs, in the order they are
// tried. The pool is walked lazily, so a large CIDR costs nothing until it is used.
import {
  formatIp,
  parseCidr,
  parseIp,
  rangeContains,
  rangesOverlap,
  type IpRange,
  type IpValue,
} from './ip-address.js';
import { errorText } from '../../../../../common/log.js';

/** One entry of loadBalancer.addresses: "192.0.2.10", "192.0.2.10-192.0.2.20" or "192.0.2.0/28". */
export function parsePoolEntry(text: string): IpRange {
  const entry = text.trim();
  if (entry.includes('/')) return parseCidr(entry, true);
  const dash = entry.indexOf('-');
  if (dash >= 0) {
    const from = parseIp(entry.slice(0, dash).trim());
    const to = parseIp(entry.slice(dash + 1).trim());
    if (!from || !to)
      throw new Error(`"${text}" is not a range of two IP addresses (e.g. 192.0.2.10-192.0.2.20)`);
    if (from.family !== to.family) throw new Error(`"${text}" mixes IPv4 and IPv6`);
    if (from.value > to.value) throw new Error(`"${text}" ends before it starts`);
    return { family: from.family, first: from.value, last: to.value };
  }
  const ip = parseIp(entry);
  if (!ip) throw new Error(`"${text}" is not an IP address, a range a-b or a CIDR`);
  return { family: ip.family, first: ip.value, last: ip.value };
}

/** An entry of the pool that does not parse, or that overlaps an earlier one. */
export class PoolEntryError extends Error {
  override readonly name = 'PoolEntryError';
  constructor(
    readonly index: number,
    readonly reason: string,
  ) {
    super(`[${index}] ${reason}`);
  }
}

/** Every entry parsed, in order; throws a PoolEntryError naming the first bad one. */
export function parsePool(entries: readonly string[]): IpRange[] {
  const ranges: IpRange[] = [];
  entries.forEach((text, i) => {
    let range: IpRange;
    try {
      range = parsePoolEntry(text);
    } catch (err) {
      throw new PoolEntryError(i, errorText(err));
    }
    const clash = ranges.findIndex((r) => rangesOverlap(r, range));
    if (clash >= 0) throw new PoolEntryError(i, `"${text}" overlaps [${clash}] "${entries[clash] ?? ''}"`);
    ranges.push(range);
  });
  return ranges;
}

export class AddressPool {
  constructor(
    private readonly ranges: readonly IpRange[],
    /** The entries as written, for messages. */
    readonly entries: readonly string[],
  ) {}

  contains(ip: string): boolean {
    const value = parseIp(ip);
    return value !== undefined && this.ranges.some((r) => rangeContains(r, value));
  }

  /** Every address of the pool in order, canonical text. */
  *addresses(): Generator<string> {
    for (const range of this.ranges) {
      for (let value = range.first; value <= range.last; value++) {
        const ip: IpValue = { family: range.family, value };
        yield formatIp(ip);
      }
    }
  }
}
