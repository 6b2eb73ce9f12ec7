// Which destinations the agent may dial (ours, not upstream): --allowed-destinations and
// --denied-destinations, each a comma-separated list of CIDR, CIDR:PORT or CIDR:LOW-HIGH
// (IPv6 in brackets: [fd00::/8]:443). Deny wins; an empty allow list allows everything not
// denied. Hostnames are resolved first and every address is checked, and the dial then goes
// to a checked address, so DNS cannot swap in another one between check and connect.
import net from 'node:net';
import { canonicalIp, parseCidr } from '../proto/agent-identifiers.js';

export const DEFAULT_DENIED_DESTINATIONS = '169.254.169.254/32,[fd00:ec2::254/128]';

export interface DestinationRule {
  text: string;
  family: 'ipv4' | 'ipv6';
  list: net.BlockList;
  low: number;
  high: number;
}

export class DestinationSyntaxError extends Error {
  override readonly name = 'DestinationSyntaxError';
}

/** Parses one list; throws DestinationSyntaxError naming the bad entry. */
export function parseDestinations(text: string): DestinationRule[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseRule);
}

function parseRule(text: string): DestinationRule {
  let cidr: string;
  let ports = '';
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new DestinationSyntaxError(`"${text}": missing "]" after an IPv6 CIDR`);
    cidr = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':'))
      throw new DestinationSyntaxError(`"${text}": expected ":PORT" after "]"`);
    ports = rest.slice(1);
    if (rest === ':') throw new DestinationSyntaxError(`"${text}": empty port`);
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1)
      throw new DestinationSyntaxError(`"${text}": put IPv6 addresses in brackets, e.g. [fd00::/8]:443`);
    const [c = '', p] = text.split(':');
    cidr = c;
    if (p !== undefined) {
      if (p === '') throw new DestinationSyntaxError(`"${text}": empty port`);
      ports = p;
    }
  }
  // A bare address is a /32 or /128.
  const address = cidr.split('/')[0] ?? '';
  const max = net.isIPv6(address) ? 128 : 32;
  const parsed = parseCidr(cidr.includes('/') ? cidr : `${cidr}/${max}`);
  if (!parsed) {
    throw new DestinationSyntaxError(
      canonicalIp(address)
        ? `"${text}": prefix length must be 0-${max}`
        : `"${text}": "${address}" is not an IP address`,
    );
  }
  const { family } = parsed;
  const list = new net.BlockList();
  list.addSubnet(parsed.address, parsed.prefix, family);
  let low = 1;
  let high = 65535;
  if (ports !== '') {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(ports);
    low = Number(m?.[1]);
    high = m?.[2] !== undefined ? Number(m[2]) : low;
    if (!m || low < 1 || high > 65535 || low > high)
      throw new DestinationSyntaxError(`"${text}": port must be 1-65535 or LOW-HIGH with LOW <= HIGH`);
  }
  return { text, family, list, low, high };
}

export type Verdict = { ok: true } | { ok: false; reason: string };

export class DestinationPolicy {
  constructor(
    private readonly allowed: readonly DestinationRule[],
    private readonly denied: readonly DestinationRule[],
  ) {}

  /** Checks one resolved IP address and port. */
  check(ip: string, port: number): Verdict {
    const addr = unmapIPv4(ip);
    const family = net.isIPv4(addr) ? 'ipv4' : 'ipv6';
    const hit = (r: DestinationRule) =>
      r.family === family && port >= r.low && port <= r.high && r.list.check(addr, family);
    const deny = this.denied.find(hit);
    if (deny) return { ok: false, reason: `${addr}:${port} matches denied destination ${deny.text}` };
    if (this.allowed.length > 0 && !this.allowed.some(hit))
      return { ok: false, reason: `${addr}:${port} is not in the allowed destinations` };
    return { ok: true };
  }

  /** Every address must pass: one denied address refuses the whole name. */
  checkAll(ips: readonly string[], port: number): Verdict {
    for (const ip of ips) {
      const v = this.check(ip, port);
      if (!v.ok) return v;
    }
    return { ok: true };
  }
}

/** ::ffff:10.0.0.1 is 10.0.0.1: check it against IPv4 rules, so mapping cannot bypass a deny. */
function unmapIPv4(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m?.[1] ?? ip;
}
