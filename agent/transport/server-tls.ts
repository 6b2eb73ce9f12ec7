// TLS to the proxy-server's agent port: dialed directly, or inside an HTTP proxy's CONNECT
// tunnel. The server certificate is verified against host (or the configured servername)
// either way: a proxy in between sees ciphertext only.
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { GrpcTarget } from '../../proto/grpc-client-call.js';

/** ALPN to offer: the agent's --alpn-proto first (as upstream), then the transport's own. */
export function alpnFor(extra: readonly string[], own: string): string[] {
  return extra.includes(own) ? [...extra] : [...extra, own];
}

/**
 * The latest TLS session ticket each server gave us, by address and credentials: offered on the
 * next connect, a reconnect resumes (no certificate signing or chain checks on either side)
 * when the server still holds its ticket key. A rotated certificate or CA is a new key, so a
 * session made with the old ones is never offered.
 */
const sessions = new Map<string, Buffer>();
const MAX_SESSIONS = 64;

function sessionKey(
  host: string,
  target: GrpcTarget,
  servername: string | undefined,
  alpn: string[],
): string {
  const t = target.tls ?? {};
  const credentials = createHash('sha256');
  for (const part of [t.ca, t.cert]) credentials.update(part ?? '').update('\0');
  return `${host}:${String(target.port)}|${servername ?? ''}|${alpn.join(',')}|${credentials.digest('base64')}`;
}

/**
 * Kernel TCP keepalive on the link to the server, as Go's dialer sets for upstream's agent: a
 * server whose host vanished is noticed within this plus 10 one-second probes, without the
 * HTTP/2 pings (hourly by default, as upstream) and at no cost to the process.
 */
export const TCP_KEEPALIVE_MS = 15_000;

export function serverTlsSocket(target: GrpcTarget, alpn: string[], tunnel?: net.Socket): tls.TLSSocket {
  const host = target.host ?? '127.0.0.1';
  const t = target.tls ?? {};
  const servername = t.servername ?? (net.isIP(host) ? undefined : host);
  const key = sessionKey(host, target, servername, alpn);
  const session = sessions.get(key);
  const socket = tls.connect({
    ...(tunnel ? { socket: tunnel } : { port: target.port }),
    host,
    ...(servername ? { servername } : {}),
    ...(t.ca ? { ca: t.ca } : {}),
    ...(t.cert ? { cert: t.cert } : {}),
    ...(t.key ? { key: t.key } : {}),
    ...(session ? { session } : {}),
    ALPNProtocols: alpn,
  });
  (tunnel ?? socket).setKeepAlive(true, TCP_KEEPALIVE_MS);
  socket.on('session', (ticket: Buffer) => {
    sessions.delete(key);
    if (sessions.size >= MAX_SESSIONS) {
      const oldest = sessions.keys().next().value;
      if (oldest !== undefined) sessions.delete(oldest);
    }
    sessions.set(key, ticket);
  });
  return socket;
}
