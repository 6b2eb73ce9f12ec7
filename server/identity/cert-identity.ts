// --agent-node-from-cert: the node name of an agent that authenticated with its client
// certificate only (mTLS, no token). The certificate was verified against --cluster-ca-cert
// by the TLS handshake, so what the CA put in it is trusted as the agent's node:
//   cn       the subject CN; "system:node:<name>" (kubelet client certificates) gives <name>
//   san-dns  the first DNS name of the subjectAltName
import tls from 'node:tls';
import { isNodeName, type NodeFromCert } from './binding-options.js';

export type CertNode = { ok: true; name: string } | { ok: false; reason: string };

const NODE_USER_PREFIX = 'system:node:';

/**
 * The verified client certificate of an agent stream, when it came over TLS with one. Read
 * from the stream's own peerCertificate() when its transport offers one, else from its HTTP/2
 * session's socket (a gRPC call): checked at run time, so any agent transport fits.
 */
export function peerCertificateOf(stream: object): tls.PeerCertificate | undefined {
  if ('peerCertificate' in stream && typeof stream.peerCertificate === 'function') {
    const read = stream.peerCertificate as () => unknown;
    const cert = read.call(stream);
    return isCertificate(cert) ? cert : undefined;
  }
  const session: unknown = 'session' in stream ? stream.session : undefined;
  const socket: unknown =
    typeof session === 'object' && session !== null && 'socket' in session ? session.socket : undefined;
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  return isCertificate(cert) ? cert : undefined;
}

/** getPeerCertificate() gives {} when the peer sent none. */
function isCertificate(cert: unknown): cert is tls.PeerCertificate {
  return typeof cert === 'object' && cert !== null && 'subject' in cert;
}

export function nodeFromCertificate(
  cert: tls.PeerCertificate | undefined,
  source: Exclude<NodeFromCert, 'off'>,
): CertNode {
  if (!cert) return { ok: false, reason: 'the agent presented no verified client certificate' };
  let name: string;
  if (source === 'cn') {
    // Node types CN as a string; a subject with two CNs gives an array.
    const cn: unknown = (cert.subject as { CN?: unknown } | undefined)?.CN;
    if (typeof cn !== 'string' || cn === '')
      return { ok: false, reason: 'the client certificate has no single subject CN' };
    name = cn.startsWith(NODE_USER_PREFIX) ? cn.slice(NODE_USER_PREFIX.length) : cn;
  } else {
    const dns = dnsNames(cert.subjectaltname ?? '');
    if (dns[0] === undefined)
      return { ok: false, reason: 'the client certificate has no DNS name in its subjectAltName' };
    name = dns[0];
  }
  if (!isNodeName(name))
    return { ok: false, reason: `"${name}" from the client certificate (${source}) is not a node name` };
  return { ok: true, name };
}

/** "DNS:a, IP Address:10.0.0.1, DNS:b" → ["a", "b"] (quoted entries, which hold commas, skipped). */
function dnsNames(subjectAltName: string): string[] {
  return subjectAltName
    .split(', ')
    .filter((e) => e.startsWith('DNS:') && !e.startsWith('DNS:"'))
    .map((e) => e.slice(4).toLowerCase());
}
