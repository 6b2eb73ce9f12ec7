// TLS to the proxy-server's agent port: dialed directly, or inside an HTTP proxy's CONNECT
// tunnel. The server certificate is verified against host (or the configured servername)
// either way: a proxy in between sees ciphertext only.
import net from 'node:net';
import tls from 'node:tls';
import type { GrpcTarget } from '../../proto/grpc-client-call.js';

/** ALPN to offer: the agent's --alpn-proto first (as upstream), then the transport's own. */
export function alpnFor(extra: readonly string[], own: string): string[] {
  return extra.includes(own) ? [...extra] : [...extra, own];
}

export function serverTlsSocket(target: GrpcTarget, alpn: string[], tunnel?: net.Socket): tls.TLSSocket {
  const host = target.host ?? '127.0.0.1';
  const t = target.tls ?? {};
  const servername = t.servername ?? (net.isIP(host) ? undefined : host);
  return tls.connect({
    ...(tunnel ? { socket: tunnel } : { port: target.port }),
    host,
    ...(servername ? { servername } : {}),
    ...(t.ca ? { ca: t.ca } : {}),
    ...(t.cert ? { cert: t.cert } : {}),
    ...(t.key ? { key: t.key } : {}),
    ALPNProtocols: alpn,
  });
}
