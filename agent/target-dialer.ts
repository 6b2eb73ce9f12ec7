// Dials a target for a DIAL_REQ, with upstream's 5 s timeout, and words failures the way
// the Go agent does ("dial tcp 10.0.0.1:80: connect: connection refused"), because that
// text reaches kube-apiserver's logs and the HTTP CONNECT client.
import net from 'node:net';
import dns from 'node:dns';
import { DESTINATION_DENIED } from '../common/errors.js';
import type { DestinationPolicy } from './destination-policy.js';

export const TARGET_DIAL_TIMEOUT_MS = 5000;

export function splitHostPort(address: string): { host: string; port: number } | undefined {
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':') return undefined;
    host = address.slice(1, close);
    portText = address.slice(close + 2);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535 || host === '') return undefined;
  return { host, port };
}

export function dialErrorText(address: string, host: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${address}: connect: connection refused`;
    case 'ETIMEDOUT':
      return `dial tcp ${address}: i/o timeout`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `dial tcp: lookup ${host}: no such host`;
    case 'ENETUNREACH':
      return `dial tcp ${address}: connect: network is unreachable`;
    case 'EHOSTUNREACH':
      return `dial tcp ${address}: connect: no route to host`;
    case DENIED_CODE:
      return `dial tcp ${address}: ${DESTINATION_DENIED}: ${err.message}`;
    case 'ECONNRESET':
      return `dial tcp ${address}: connect: connection reset by peer`;
    default:
      return `dial tcp ${address}: ${err.message}`;
  }
}

/** The error code of a dial the destination policy refused. */
export const DENIED_CODE = 'EDESTDENIED';

function deniedError(reason: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(reason);
  err.code = DENIED_CODE;
  return err;
}

/**
 * A lookup for net.connect that checks every resolved address against the policy: the
 * socket then connects to exactly the addresses that were checked.
 */
function policyLookup(policy: DestinationPolicy, port: number): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '');
        return;
      }
      const verdict = policy.checkAll(
        addresses.map((a) => a.address),
        port,
      );
      const first = addresses[0];
      if (!verdict.ok) callback(deniedError(`${hostname} resolves to ${verdict.reason}`), '');
      else if (options.all) callback(null, addresses);
      else if (first) callback(null, first.address, first.family);
      else callback(Object.assign(new Error(`lookup ${hostname}: no addresses`), { code: 'ENOTFOUND' }), '');
    });
  };
}

/**
 * Starts a TCP dial; the socket allows half-open so each direction can end on its own. With
 * a policy, a refused destination fails the socket with code EDESTDENIED before any packet.
 */
export function dialTarget(
  host: string,
  port: number,
  timeoutMs: number,
  onread: net.OnReadOpts,
  policy?: DestinationPolicy,
): net.Socket {
  if (policy && net.isIP(host)) {
    const verdict = policy.check(host, port);
    if (!verdict.ok) {
      const refused = new net.Socket();
      process.nextTick(() => refused.destroy(deniedError(verdict.reason)));
      return refused;
    }
  }
  const socket = net.connect({
    host,
    port,
    allowHalfOpen: true,
    noDelay: true,
    onread,
    ...(policy && !net.isIP(host) ? { lookup: policyLookup(policy, port) } : {}),
  });
  const timer = setTimeout(() => {
    const err: NodeJS.ErrnoException = new Error('i/o timeout');
    err.code = 'ETIMEDOUT';
    socket.destroy(err);
  }, timeoutMs);
  const clear = () => {
    clearTimeout(timer);
  };
  socket.once('connect', clear);
  socket.once('close', clear);
  return socket;
}
