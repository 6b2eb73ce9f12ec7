// The node name of a certificate-authenticated agent, read from a real mTLS handshake.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import { issue, type KeyPair } from '../../../../quickstart/pki.js';
import { nodeFromCertificate, peerCertificateOf } from '../../../../server/identity/cert-identity.js';
import { testPki } from '../../../support/pki.js';

type AltName = { type: 2; value: string } | { type: 7; ip: string };

/** A client certificate with these subjectAltNames only (the CA signs whatever it is asked). */
async function withAltNames(ca: KeyPair, cn: string, altNames: AltName[]): Promise<KeyPair> {
  const r = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'extKeyUsage', clientAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { cert: r.cert, key: r.private };
}

describe('node name from the client certificate', () => {
  const servers: tls.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  /** The server side's view of a handshake with `client`, through peerCertificateOf. */
  async function handshake(client: KeyPair): Promise<tls.PeerCertificate | undefined> {
    const { pki } = await testPki();
    const seen = new Promise<tls.PeerCertificate | undefined>((resolve) => {
      const server = tls.createServer(
        {
          cert: pki.server.cert,
          key: pki.server.key,
          ca: pki.ca.cert,
          requestCert: true,
          rejectUnauthorized: true,
        },
        (socket) => {
          // As the agent service sees it: a stream whose session has the TLS socket.
          resolve(peerCertificateOf({ session: { socket } }));
          socket.end();
        },
      );
      servers.push(server);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        const c = tls.connect({
          port,
          host: '127.0.0.1',
          ca: pki.ca.cert,
          cert: client.cert,
          key: client.key,
        });
        c.on('error', () => undefined);
        c.on('end', () => c.destroy());
        c.resume();
      });
    });
    return seen;
  }

  it('cn: the subject CN, and <name> of a kubelet-style system:node:<name>', async () => {
    const { pki } = await testPki();
    const kubelet = await handshake(await issue(pki.ca, 'system:node:node-a', 'client'));
    assert.deepEqual(nodeFromCertificate(kubelet, 'cn'), { ok: true, name: 'node-a' });
    const plain = await handshake(await issue(pki.ca, 'node-b', 'client'));
    assert.deepEqual(nodeFromCertificate(plain, 'cn'), { ok: true, name: 'node-b' });
  });

  it('san-dns: the first DNS name of the subjectAltName', async () => {
    const { pki } = await testPki();
    const cert = await handshake(
      await withAltNames(pki.ca, 'agent', [
        { type: 7, ip: '10.0.0.3' },
        { type: 2, value: 'node-c' },
        { type: 2, value: 'node-c.cluster.local' },
      ]),
    );
    assert.deepEqual(nodeFromCertificate(cert, 'san-dns'), { ok: true, name: 'node-c' });
  });

  it('refuses what is not a node name, and a missing certificate, saying why', async () => {
    const { pki } = await testPki();
    const odd = await handshake(await issue(pki.ca, 'Agent Of Node A', 'client'));
    const r = nodeFromCertificate(odd, 'cn');
    assert.ok(!r.ok);
    assert.match(r.reason, /"Agent Of Node A" from the client certificate \(cn\) is not a node name/);
    const none = await handshake(await withAltNames(pki.ca, 'agent', [{ type: 7, ip: '10.0.0.3' }]));
    assert.match(JSON.stringify(nodeFromCertificate(none, 'san-dns')), /no DNS name in its subjectAltName/);
    assert.match(JSON.stringify(nodeFromCertificate(undefined, 'cn')), /no verified client certificate/);
  });

  it('reads a transport that offers peerCertificate() itself, and finds none on a plain socket', () => {
    const cert = { subject: { CN: 'system:node:node-d' } } as tls.PeerCertificate;
    const viaMethod = peerCertificateOf({ peerCertificate: () => cert });
    assert.deepEqual(nodeFromCertificate(viaMethod, 'cn'), { ok: true, name: 'node-d' });
    assert.equal(peerCertificateOf({ session: { socket: {} } }), undefined);
    assert.equal(peerCertificateOf({}), undefined);
  });
});
