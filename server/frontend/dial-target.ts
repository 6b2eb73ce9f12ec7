// Validation of a dial's destination ("host:port", "[v6]:port"): a malformed target is the
// client's error (400 / DIAL_RSP error) and is never forwarded to an agent.
import { isIP } from 'node:net';

export type TargetCheck = { ok: true; host: string; port: number } | { ok: false; reason: string };

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})?$/;

export function checkDialTarget(address: string): TargetCheck {
  if (address.length === 0) return { ok: false, reason: 'missing target address (want host:port)' };
  if (address.length > 300) return { ok: false, reason: 'target address too long' };
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':')
      return { ok: false, reason: `malformed target "${address}" (want [ipv6]:port)` };
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (isIP(host) !== 6) return { ok: false, reason: `"${host}" is not an IPv6 address` };
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) return { ok: false, reason: `target "${address}" has no port (want host:port)` };
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.length === 0) return { ok: false, reason: `target "${address}" has no host` };
    if (host.includes(':'))
      return { ok: false, reason: `IPv6 target "${address}" must be written [addr]:port` };
    if (isIP(host) === 0 && !HOSTNAME.test(host))
      return { ok: false, reason: `"${host}" is not a valid host name or IP` };
  }
  if (!/^\d{1,5}$/.test(portText))
    return { ok: false, reason: `invalid port "${portText}" in target "${address}"` };
  const port = Number(portText);
  if (port < 1 || port > 65535) return { ok: false, reason: `port ${port} out of range 1-65535` };
  return { ok: true, host, port };
}
