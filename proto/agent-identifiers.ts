// The agentIdentifiers header: URL-query encoded `host=`, `ipv4=`, `ipv6=`, `cidr=` (each
// repeatable) and `default-route=true`. The agent validates strictly at start; the server
// parses leniently (an agent it cannot fully understand still serves what it can). Unknown
// identifier types are ignored, as upstream.
import net from 'node:net';

export interface AgentIdentifiers {
  /** Lower-cased host names. */
  hosts: string[];
  /** Canonical IPv4 and IPv6 addresses. */
  ips: string[];
  /** CIDRs as written, canonical address part. */
  cidrs: { address: string; prefix: number; family: 'ipv4' | 'ipv6' }[];
  defaultRoute: boolean;
}

export interface ParsedIdentifiers {
  identifiers: AgentIdentifiers;
  /** Identifier types we do not know (ignored). */
  unknown: string[];
  /** Values that are not what their type says (ignored by the server, refused by the agent). */
  invalid: string[];
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/;

export function emptyIdentifiers(): AgentIdentifiers {
  return { hosts: [], ips: [], cidrs: [], defaultRoute: false };
}

/** The canonical text of an IP address ("FD00:0::1" → "fd00::1"), or undefined. */
export function canonicalIp(text: string): string | undefined {
  const family = net.isIP(text);
  if (family === 4) return text.split('.').map(Number).join('.');
  if (family === 6) return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  return undefined;
}

export function parseAgentIdentifiers(text: string): ParsedIdentifiers {
  const out: ParsedIdentifiers = { identifiers: emptyIdentifiers(), unknown: [], invalid: [] };
  const ids = out.identifiers;
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(text);
  } catch {
    out.invalid.push(text);
    return out;
  }
  for (const [key, raw] of params) {
    const value = raw.trim();
    switch (key) {
      case 'host': {
        const host = value.toLowerCase();
        if (HOSTNAME.test(host) || canonicalIp(host)) ids.hosts.push(canonicalIp(host) ?? host);
        else out.invalid.push(`host=${raw}`);
        break;
      }
      case 'ipv4':
      case 'ipv6': {
        const ip = canonicalIp(value);
        if (ip && net.isIP(ip) === (key === 'ipv4' ? 4 : 6)) ids.ips.push(ip);
        else out.invalid.push(`${key}=${raw}`);
        break;
      }
      case 'cidr': {
        const cidr = parseCidr(value);
        if (cidr) ids.cidrs.push(cidr);
        else out.invalid.push(`cidr=${raw}`);
        break;
      }
      case 'default-route':
        if (value === 'true') ids.defaultRoute = true;
        else if (value !== 'false') out.invalid.push(`default-route=${raw}`);
        break;
      default:
        out.unknown.push(key);
    }
  }
  return out;
}

/** "10.0.0.0/8" or "fd00::/8" → canonical address, prefix and family; undefined when malformed. */
export function parseCidr(text: string): AgentIdentifiers['cidrs'][number] | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = canonicalIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const family = net.isIPv4(address) ? 'ipv4' : 'ipv6';
  const prefix = Number(prefixText);
  if (prefix > (family === 'ipv4' ? 32 : 128)) return undefined;
  return { address, prefix, family };
}
